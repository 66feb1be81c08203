//! Validation the real API server does for the objects baton touches: name formats,
//! required fields, and the immutability rules whose violation would otherwise let a
//! test pass here and fail on a real cluster (PV sources, PVC specs, StatefulSet specs).

use serde_json::Value;

use crate::error::FieldError;
use crate::resources::ResourceDef;
use crate::selector::LabelSelector;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// Why a name is not a DNS-1123 label, or None if it is one.
pub fn dns1123_label(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= DNS1123_LABEL_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| {
        if name.len() > DNS1123_LABEL_MAX {
            format!("must be no more than {DNS1123_LABEL_MAX} characters")
        } else {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
        }
    })
}

/// Why a name is not a DNS-1123 subdomain, or None if it is one.
pub fn dns1123_subdomain(name: &str) -> Option<String> {
    if name.len() > DNS1123_SUBDOMAIN_MAX {
        return Some(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    // Unlike a label, a subdomain's dot-separated parts have no 63-character limit of
    // their own (VolumeAttachment names are `csi-` + 64 hex digits).
    let part_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = !name.is_empty() && name.split('.').all(part_ok);
    (!ok).then(|| "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string())
}

/// Kinds whose names must be DNS-1123 labels rather than subdomains.
fn name_is_label(kind: &str) -> bool {
    matches!(kind, "Namespace" | "Service" | "StatefulSet")
}

/// Errors in a new object (create, or the result of an update).
pub fn validate_object(def: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let why = if name_is_label(&def.kind) {
        dns1123_label(name)
    } else {
        dns1123_subdomain(name)
    };
    if let Some(why) = why {
        errs.push(FieldError::invalid("metadata.name", name, why));
    }
    for (map, what) in [("labels", "label"), ("annotations", "annotation")] {
        for key in obj["metadata"][map]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
        {
            if key.is_empty() || key.len() > 316 {
                errs.push(FieldError::invalid(
                    format!("metadata.{map}"),
                    key,
                    format!("invalid {what} key"),
                ));
            }
        }
    }
    let spec = &obj["spec"];
    match def.kind.as_str() {
        "PersistentVolume" => validate_pv(spec, &mut errs),
        "PersistentVolumeClaim" => validate_pvc(spec, &mut errs),
        "StatefulSet" | "Deployment" => validate_workload(spec, &mut errs),
        "VolumeAttachment" => {
            for f in ["attacher", "nodeName"] {
                if spec[f].as_str().unwrap_or_default().is_empty() {
                    errs.push(FieldError::required(format!("spec.{f}"), ""));
                }
            }
        }
        "StorageClass" if obj["provisioner"].as_str().unwrap_or_default().is_empty() => {
            errs.push(FieldError::required("provisioner", ""));
        }
        _ => {}
    }
    errs
}

/// The volume source keys of a PV (exactly one must be set).
const PV_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "csi",
    "hostPath",
    "local",
    "nfs",
    "gcePersistentDisk",
    "azureDisk",
    "azureFile",
    "iscsi",
    "fc",
    "cephfs",
    "rbd",
    "cinder",
    "flexVolume",
    "glusterfs",
    "vsphereVolume",
];

fn validate_pv(spec: &Value, errs: &mut Vec<FieldError>) {
    if spec["capacity"]["storage"].is_null() {
        errs.push(FieldError::required(
            "spec.capacity",
            "must specify capacity",
        ));
    }
    if spec["accessModes"].as_array().is_none_or(Vec::is_empty) {
        errs.push(FieldError::required("spec.accessModes", ""));
    }
    let sources = PV_SOURCES.iter().filter(|s| !spec[**s].is_null()).count();
    if sources == 0 {
        errs.push(FieldError::required("spec", "must specify a volume type"));
    } else if sources > 1 {
        errs.push(FieldError::forbidden(
            "spec",
            "may not specify more than 1 volume type",
        ));
    }
    if let Some(p) = spec["persistentVolumeReclaimPolicy"].as_str()
        && !matches!(p, "Retain" | "Delete" | "Recycle")
    {
        errs.push(FieldError::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            p,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    if let Some(h) = spec["csi"]["volumeHandle"].as_str()
        && h.is_empty()
    {
        errs.push(FieldError::required("spec.csi.volumeHandle", ""));
    }
}

fn validate_pvc(spec: &Value, errs: &mut Vec<FieldError>) {
    if spec["accessModes"].as_array().is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    if spec["resources"]["requests"]["storage"].is_null() {
        errs.push(FieldError::required("spec.resources[storage]", ""));
    }
}

fn validate_workload(spec: &Value, errs: &mut Vec<FieldError>) {
    if spec["selector"].is_null() {
        errs.push(FieldError::required("spec.selector", ""));
        return;
    }
    let sel = LabelSelector::from_object(&spec["selector"]);
    if sel.is_empty() {
        errs.push(FieldError::invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ));
    }
    let template = serde_json::json!({ "metadata": { "labels": spec["template"]["metadata"]["labels"].clone() } });
    if !sel.matches(&template) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            template["metadata"]["labels"].to_string(),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(r) = spec["replicas"].as_i64()
        && r < 0
    {
        errs.push(FieldError::invalid(
            "spec.replicas",
            r.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// Errors in an update: immutable fields changed.
pub fn validate_update(def: &ResourceDef, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (os, ns) = (&old["spec"], &new["spec"]);
    match def.kind.as_str() {
        "PersistentVolume" => {
            let changed = PV_SOURCES.iter().any(|s| os[*s] != ns[*s]);
            if changed {
                errs.push(FieldError::forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                ));
            }
            if !os["volumeMode"].is_null() && os["volumeMode"] != ns["volumeMode"] {
                errs.push(FieldError::invalid(
                    "spec.volumeMode",
                    ns["volumeMode"].to_string(),
                    "field is immutable",
                ));
            }
        }
        "PersistentVolumeClaim" => {
            // Kubernetes: the spec is immutable except resources.requests (growing only),
            // volumeAttributesClassName, and volumeName while it is still empty.
            let mut a = os.clone();
            let mut b = ns.clone();
            for v in [&mut a, &mut b] {
                if let Some(m) = v.as_object_mut() {
                    m.remove("resources");
                    m.remove("volumeAttributesClassName");
                }
            }
            if os["volumeName"].as_str().unwrap_or_default().is_empty()
                && let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object())
            {
                match bm.get("volumeName") {
                    Some(v) => am.insert("volumeName".into(), v.clone()),
                    None => am.remove("volumeName"),
                };
            }
            let limits_changed = os["resources"]["limits"] != ns["resources"]["limits"];
            if a != b || limits_changed {
                errs.push(FieldError::forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
            }
        }
        "StatefulSet" => {
            let mutable = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            if strip(os, &mutable) != strip(ns, &mutable) {
                errs.push(FieldError::forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
            }
        }
        "Deployment" if os["selector"] != ns["selector"] => {
            errs.push(FieldError::invalid(
                "spec.selector",
                ns["selector"].to_string(),
                "field is immutable",
            ));
        }
        "StorageClass" => {
            for f in [
                "provisioner",
                "parameters",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                if old[f] != new[f] {
                    errs.push(FieldError::forbidden(
                        f,
                        format!("updates to {f} are forbidden."),
                    ));
                }
            }
        }
        "VolumeAttachment" if os != ns => {
            errs.push(FieldError::invalid(
                "spec",
                ns.to_string(),
                "field is immutable",
            ));
        }
        "Pod" => {
            let mut a = os.clone();
            let mut b = ns.clone();
            for v in [&mut a, &mut b] {
                for list in ["containers", "initContainers"] {
                    for c in v[list].as_array_mut().into_iter().flatten() {
                        if let Some(m) = c.as_object_mut() {
                            m.remove("image");
                        }
                    }
                }
                if let Some(m) = v.as_object_mut() {
                    m.remove("activeDeadlineSeconds");
                    m.remove("tolerations");
                    m.remove("terminationGracePeriodSeconds");
                }
            }
            if os["nodeName"].as_str().unwrap_or_default().is_empty()
                && let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object())
            {
                match bm.get("nodeName") {
                    Some(v) => am.insert("nodeName".into(), v.clone()),
                    None => am.remove("nodeName"),
                };
            }
            if a != b {
                errs.push(FieldError::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
            }
        }
        "Secret" | "ConfigMap" if old["immutable"].as_bool() == Some(true) => {
            for f in ["data", "binaryData", "immutable"] {
                if old[f] != new[f] {
                    errs.push(FieldError::forbidden(
                        f,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        _ => {}
    }
    errs
}

fn strip(spec: &Value, keys: &[&str]) -> Value {
    let mut v = spec.clone();
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    fn def(kind: &str) -> ResourceDef {
        Registry::builtin()
            .all()
            .find(|d| d.kind == kind)
            .unwrap()
            .clone()
    }

    #[test]
    fn names() {
        assert!(dns1123_subdomain("data-db-0").is_none());
        assert!(dns1123_subdomain("a.b-c").is_none());
        assert!(dns1123_subdomain("Bad_Name").is_some());
        assert!(dns1123_subdomain("-a").is_some());
        assert!(dns1123_label("a.b").is_some());
        assert!(dns1123_label(&"a".repeat(64)).is_some());
        assert!(dns1123_subdomain(&format!("csi-{}", "a".repeat(64))).is_none());
        assert!(dns1123_subdomain(&"a".repeat(254)).is_some());
    }

    #[test]
    fn pv_source_is_immutable() {
        let old =
            json!({ "spec": { "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": "vol-1" } } });
        let new =
            json!({ "spec": { "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": "vol-2" } } });
        let errs = validate_update(&def("PersistentVolume"), &old, &new);
        assert_eq!(errs[0].field, "spec.persistentvolumesource");
        let policy_only = json!({ "spec": { "csi": old["spec"]["csi"].clone(), "persistentVolumeReclaimPolicy": "Retain" } });
        assert!(validate_update(&def("PersistentVolume"), &old, &policy_only).is_empty());
    }

    #[test]
    fn pvc_spec_is_immutable_except_requests_and_empty_volume_name() {
        let d = def("PersistentVolumeClaim");
        let old = json!({ "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } } });
        let grow = json!({ "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "2Gi" } } } });
        assert!(validate_update(&d, &old, &grow).is_empty());
        let bind = json!({ "spec": { "accessModes": ["ReadWriteOnce"], "volumeName": "pv-1", "resources": { "requests": { "storage": "1Gi" } } } });
        assert!(validate_update(&d, &old, &bind).is_empty());
        let rebind = json!({ "spec": { "accessModes": ["ReadWriteOnce"], "volumeName": "pv-2", "resources": { "requests": { "storage": "1Gi" } } } });
        assert!(!validate_update(&d, &bind, &rebind).is_empty());
        let modes = json!({ "spec": { "accessModes": ["ReadWriteMany"], "resources": { "requests": { "storage": "1Gi" } } } });
        assert!(!validate_update(&d, &old, &modes).is_empty());
    }

    #[test]
    fn statefulset_claim_templates_are_immutable_replicas_are_not() {
        let d = def("StatefulSet");
        let old = json!({ "spec": { "replicas": 1, "serviceName": "db", "volumeClaimTemplates": [{ "metadata": { "name": "data" } }] } });
        let scaled = json!({ "spec": { "replicas": 3, "serviceName": "db", "volumeClaimTemplates": [{ "metadata": { "name": "data" } }] } });
        assert!(validate_update(&d, &old, &scaled).is_empty());
        let vct = json!({ "spec": { "replicas": 1, "serviceName": "db", "volumeClaimTemplates": [{ "metadata": { "name": "other" } }] } });
        assert_eq!(
            validate_update(&d, &old, &vct)[0].kind,
            crate::error::FieldErrorKind::Forbidden
        );
    }

    #[test]
    fn workload_selector_must_match_template() {
        let spec = json!({ "spec": { "selector": { "matchLabels": { "app": "a" } }, "template": { "metadata": { "labels": { "app": "b" } } } }, "metadata": { "name": "x" } });
        let errs = validate_object(&def("Deployment"), &spec);
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.template.metadata.labels")
        );
    }
}
