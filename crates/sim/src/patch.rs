//! The PATCH bodies the server accepts: JSON merge patch (RFC 7386), JSON patch (RFC 6902)
//! and Kubernetes strategic merge patch, the last as far as kubectl apply/patch/scale and
//! controllers use it: list merge keys of the built-in types, `$patch` (delete/replace/merge),
//! `$deleteFromPrimitiveList/…`, `$retainKeys`, and `$setElementOrder/…` (accepted; the
//! order it carries is cosmetic and not applied).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Which patch format a request's Content-Type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply; see [`apply_server_side`]).
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or_default().trim();
        match ct {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies a patch of the given type to `target`, in place.
pub fn apply(kind: PatchType, target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        PatchType::Merge => {
            let patch: Value = parse_json(body)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            json_patch::patch(target, &patch).map_err(|e| {
                ApiError::new_unprocessable(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })
        }
        PatchType::Strategic => {
            let patch: Value = parse_json(body)?;
            strategic_merge(target, &patch)
        }
        PatchType::Apply => {
            let patch = parse_yaml_or_json(body)?;
            apply_server_side(target, &patch)
        }
    }
}

/// Server-side apply, approximated: the applied configuration is strategically merged
/// onto the live object. Fields the manager stops applying are not removed (the real server
/// tracks ownership in managedFields to do that); baton does not rely on removal.
pub fn apply_server_side(target: &mut Value, applied: &Value) -> Result<(), ApiError> {
    if !applied.is_object() {
        return Err(ApiError::bad_request("apply patch must be an object"));
    }
    strategic_merge(target, applied)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Parses a body that may be YAML or JSON (JSON is YAML).
pub fn parse_yaml_or_json(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// The merge key of a list field, per the built-in types' `patchMergeKey` tags. `None`
/// means the list is atomic and a patch replaces it.
fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "conditions" | "addresses" => Some("type"),
        "ownerReferences" => Some("uid"),
        "topologySpreadConstraints" => Some("topologyKey"),
        // Container ports merge on containerPort; Service ports on port.
        "ports" => match sample {
            Some(v) if v.get("containerPort").is_some() => Some("containerPort"),
            _ => Some("port"),
        },
        _ => None,
    }
}

/// Lists of scalars whose patch strategy is "merge" (set union).
fn is_primitive_merge_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies a strategic merge patch `patch` onto `target`. `field` names the field that
/// holds `target` in its parent (empty at the root).
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match pmap.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut m = pmap.clone();
            m.remove("$patch");
            *target = Value::Object(strip_directives(m));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let tmap = target.as_object_mut().expect("made an object above");
    let retain: Option<Vec<String>> = pmap.get("$retainKeys").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    });
    for (k, v) in pmap {
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) =
                (tmap.get_mut(list_field), v.as_array())
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            tmap.remove(k);
            continue;
        }
        match (tmap.get_mut(k), v) {
            (Some(t @ Value::Object(_)), Value::Object(_)) => {
                strategic_merge(t, v)?;
                if t.is_null() {
                    tmap.remove(k);
                }
            }
            (Some(Value::Array(t)), Value::Array(p)) => merge_list(t, p, k)?,
            (_, Value::Object(_)) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, v)?;
                if !fresh.is_null() {
                    tmap.insert(k.clone(), fresh);
                }
            }
            (_, Value::Array(p)) => {
                let mut fresh = Vec::new();
                merge_list(&mut fresh, p, k)?;
                tmap.insert(k.clone(), Value::Array(fresh));
            }
            _ => {
                tmap.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(keep) = retain {
        tmap.retain(|k, _| keep.iter().any(|r| r == k));
    }
    Ok(())
}

fn merge_list(target: &mut Vec<Value>, patch: &[Value], field: &str) -> Result<(), ApiError> {
    let replace = patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace {
        *target = patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .cloned()
            .map(|p| match p {
                Value::Object(m) => Value::Object(strip_directives(m)),
                other => other,
            })
            .collect();
        return Ok(());
    }
    if is_primitive_merge_list(field) {
        for p in patch {
            if !target.contains(p) {
                target.push(p.clone());
            }
        }
        return Ok(());
    }
    let sample = patch.first().or(target.first());
    let Some(key) = merge_key(field, sample) else {
        *target = patch.to_vec();
        return Ok(());
    };
    for p in patch {
        let Some(pk) = p.get(key) else {
            return Err(ApiError::bad_request(format!(
                "map: {p} does not contain declared merge key: {key}"
            )));
        };
        let pos = target.iter().position(|t| t.get(key) == Some(pk));
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut target[i], p)?,
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, p)?;
                target.push(fresh);
            }
        }
    }
    Ok(())
}

fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value) -> Value {
        let mut t = target;
        strategic_merge(&mut t, &patch).unwrap();
        t
    }

    #[test]
    fn containers_merge_by_name_and_scalars_replace() {
        let t = json!({ "spec": { "containers": [
            { "name": "a", "image": "a:1", "ports": [{ "containerPort": 80 }] },
            { "name": "b", "image": "b:1" } ] } });
        let got = smp(
            t,
            json!({ "spec": { "containers": [{ "name": "b", "image": "b:2" }] } }),
        );
        assert_eq!(got["spec"]["containers"][0]["image"], "a:1");
        assert_eq!(got["spec"]["containers"][1]["image"], "b:2");
    }

    #[test]
    fn patch_delete_directive_removes_list_element() {
        let t = json!({ "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "2" }] });
        let got = smp(t, json!({ "env": [{ "name": "A", "$patch": "delete" }] }));
        assert_eq!(got, json!({ "env": [{ "name": "B", "value": "2" }] }));
    }

    #[test]
    fn atomic_lists_are_replaced_and_null_deletes() {
        let t = json!({ "spec": { "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "x": 1 } });
        let got = smp(
            t,
            json!({ "spec": { "accessModes": ["ReadWriteOnce"], "x": null } }),
        );
        assert_eq!(got, json!({ "spec": { "accessModes": ["ReadWriteOnce"] } }));
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let t = json!({ "metadata": { "finalizers": ["a", "b"] } });
        let got = smp(t.clone(), json!({ "metadata": { "finalizers": ["c"] } }));
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let got = smp(
            t,
            json!({ "metadata": { "$deleteFromPrimitiveList/finalizers": ["a"] } }),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn replace_and_retain_keys_directives() {
        let t = json!({ "spec": { "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1 } } } });
        let got = smp(
            t.clone(),
            json!({ "spec": { "strategy": { "$retainKeys": ["type"], "type": "Recreate" } } }),
        );
        assert_eq!(got["spec"]["strategy"], json!({ "type": "Recreate" }));
        let got = smp(
            t,
            json!({ "spec": { "strategy": { "$patch": "replace", "type": "Recreate" } } }),
        );
        assert_eq!(got["spec"]["strategy"], json!({ "type": "Recreate" }));
    }

    #[test]
    fn service_ports_merge_on_port() {
        let t =
            json!({ "ports": [{ "port": 80, "name": "http" }, { "port": 443, "name": "https" }] });
        let got = smp(t, json!({ "ports": [{ "port": 443, "name": "tls" }] }));
        assert_eq!(got["ports"][1]["name"], "tls");
        assert_eq!(got["ports"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn set_element_order_is_accepted() {
        let t = json!({ "containers": [{ "name": "a" }] });
        let got = smp(
            t,
            json!({ "$setElementOrder/containers": [{ "name": "a" }], "containers": [{ "name": "a", "image": "x" }] }),
        );
        assert_eq!(
            got,
            json!({ "containers": [{ "name": "a", "image": "x" }] })
        );
    }

    #[test]
    fn merge_and_json_patch_types() {
        let mut t = json!({ "a": { "b": 1, "c": 2 } });
        apply(PatchType::Merge, &mut t, br#"{"a":{"b":null,"d":3}}"#).unwrap();
        assert_eq!(t, json!({ "a": { "c": 2, "d": 3 } }));
        apply(
            PatchType::Json,
            &mut t,
            br#"[{"op":"replace","path":"/a/c","value":5}]"#,
        )
        .unwrap();
        assert_eq!(t["a"]["c"], 5);
        let err = apply(
            PatchType::Json,
            &mut t,
            br#"[{"op":"test","path":"/a/c","value":6}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }
}
