//! The StatefulSet controller: one pod per ordinal (`<sts>-<i>`), its claims from the
//! volumeClaimTemplates (`<template>-<sts>-<i>`) created just before the pod and reused if
//! they exist, OrderedReady or Parallel, scale up and down, status, and the claim
//! retention policy expressed as ownerReferences the garbage collector acts on — exactly
//! how Kubernetes does it, because baton's safety depends on `whenScaled: Delete`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{PODS, PVCS, STATEFULSETS, controller_ref, owned_by, pod_ready};
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

pub(crate) struct StatefulSets;

impl Controller for StatefulSets {
    fn name(&self) -> &'static str {
        "statefulset-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("apps", "statefulsets"),
            ("", "pods"),
            ("", "persistentvolumeclaims"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            let Some(touched) = touched(ctx, scope) else {
                // Pods by controlling owner, once per pass (not a scan of every pod per
                // set).
                let mut by_owner: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
                for p in ctx.list(PODS, None) {
                    if let Some(owner) = meta::owner_uids(&p).into_iter().next() {
                        by_owner.entry(owner).or_default().push(p);
                    }
                }
                for sts in ctx.list(STATEFULSETS, None) {
                    if !meta::is_deleting(&sts) {
                        let owned = by_owner
                            .get(meta::uid(&sts))
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        sync(ctx, &sts, owned);
                    }
                }
                return None;
            };
            // A pass woken by changes finds its sets and their pods through the store's
            // owner index, not a scan of every pod.
            for uid in touched {
                let Some(sts) = ctx.by_uid(STATEFULSETS, &uid) else {
                    continue;
                };
                if meta::is_deleting(&sts) {
                    continue;
                }
                let owned: Vec<Arc<Value>> = ctx
                    .dependents(PODS, &uid)
                    .into_iter()
                    .filter(|p| meta::owner_uids(p).first() == Some(&uid))
                    .collect();
                sync(ctx, &sts, &owned);
            }
            None
        })
    }
}

/// The sets (by uid) a pass converges: `None` for all of them; otherwise those that
/// changed, the owners of pods that changed, and the sets whose claim names
/// (`<template>-<set>-<ordinal>`) match claims that changed.
fn touched(ctx: &Ctx, scope: &Scope) -> Option<HashSet<String>> {
    if scope.is_all() {
        return None;
    }
    let mut out: HashSet<String> = scope
        .changed("apps", "statefulsets")
        .map(|(o, _)| meta::uid(o).to_string())
        .collect();
    for (pod, old) in scope.changed("", "pods") {
        out.extend(meta::owner_uids(pod));
        out.extend(old.map(meta::owner_uids).unwrap_or_default());
    }
    for (claim, _) in scope.changed("", "persistentvolumeclaims") {
        let (ns, name) = (meta::namespace(claim), meta::name(claim));
        let Some((prefix, ordinal)) = name.rsplit_once('-') else {
            continue;
        };
        if ordinal.parse::<i64>().is_err() {
            continue;
        }
        // `<template>-<set>`: each place a dash could split it, a set of that name with
        // that template.
        for (i, _) in prefix.match_indices('-') {
            let (template, set) = (&prefix[..i], &prefix[i + 1..]);
            if let Some(sts) = ctx.get(STATEFULSETS, ns, set)
                && sts["spec"]["volumeClaimTemplates"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|t| meta::name(t) == template))
            {
                out.insert(meta::uid(&sts).to_string());
            }
        }
    }
    Some(out)
}

fn ordinal_of(pod_name: &str, sts_name: &str) -> Option<i64> {
    pod_name
        .strip_prefix(sts_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The claim of template `tmpl` for ordinal `i`.
pub(crate) fn claim_name(tmpl: &str, sts: &str, i: i64) -> String {
    format!("{tmpl}-{sts}-{i}")
}

/// Converges one set; `owned` are the pods it controls as of this pass.
fn sync(ctx: &Ctx, sts: &Value, owned: &[std::sync::Arc<Value>]) {
    let ns = meta::namespace(sts);
    let name = meta::name(sts);
    let uid = meta::uid(sts);
    let spec = &sts["spec"];
    let replicas = spec["replicas"].as_i64().unwrap_or(1);
    let start = spec["ordinals"]["start"].as_i64().unwrap_or(0);
    let parallel = spec["podManagementPolicy"] == "Parallel";
    let templates: Vec<Value> = spec["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let when_deleted = spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"]
        .as_str()
        .unwrap_or("Retain");
    let when_scaled = spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"]
        .as_str()
        .unwrap_or("Retain");

    let pods: BTreeMap<i64, std::sync::Arc<Value>> = owned
        .iter()
        .filter_map(|p| ordinal_of(meta::name(p), name).map(|i| (i, p.clone())))
        .collect();
    let revision_before = ctx.cluster.store.current_rv();
    // The set's pods by name, and those this pass creates: what status is counted from.
    let mut names: Vec<String> = owned.iter().map(|p| meta::name(p).to_string()).collect();
    let wanted = start..start + replicas;

    // Claim ownership follows the retention policy (the real controller's
    // updateClaimOwnerRefs): the set owns every claim when whenDeleted is Delete; a
    // condemned pod owns its claims when whenScaled is Delete.
    for i in pods.keys().copied().chain(wanted.clone()) {
        let condemned = !wanted.contains(&i);
        for t in &templates {
            let claim = claim_name(meta::name(t), name, i);
            let Some(pvc) = ctx.get(PVCS, ns, &claim) else {
                continue;
            };
            let mut refs: Vec<Value> = pvc["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r["kind"] != "StatefulSet" && r["kind"] != "Pod")
                .collect();
            if when_deleted == "Delete" {
                refs.push(json!({ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": uid }));
            }
            if condemned
                && when_scaled == "Delete"
                && let Some(pod) = pods.get(&i)
            {
                refs.push(json!({ "apiVersion": "v1", "kind": "Pod", "name": meta::name(pod), "uid": meta::uid(pod) }));
            }
            let current = pvc["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if current != refs {
                let patch = if refs.is_empty() {
                    json!({ "metadata": { "ownerReferences": null } })
                } else {
                    json!({ "metadata": { "ownerReferences": refs } })
                };
                if let Err(e) = ctx.patch(PVCS, ns, &claim, &patch, Part::Main) {
                    tracing::debug!(error = %e, claim, "claim owner update failed");
                }
            }
        }
    }

    // Scale up / replace.
    for i in wanted.clone() {
        match pods.get(&i) {
            Some(pod) => {
                if pod["status"]["phase"] == "Failed" && !meta::is_deleting(pod) {
                    let _ = ctx.delete(PODS, ns, meta::name(pod), false);
                }
                if !parallel && (!pod_ready(pod) || meta::is_deleting(pod)) {
                    break;
                }
            }
            None => {
                if !create_claims(ctx, sts, &templates, i) {
                    break;
                }
                let pod = pod_for(sts, &templates, i);
                match ctx.create(PODS, ns, pod) {
                    Ok(p) => {
                        names.push(meta::name(&p).to_string());
                        ctx.event(
                            sts,
                            false,
                            "SuccessfulCreate",
                            &format!(
                                "create Pod {} in StatefulSet {name} successful",
                                meta::name(&p)
                            ),
                            "statefulset-controller",
                        )
                    }
                    Err(e) => ctx.event(
                        sts,
                        true,
                        "FailedCreate",
                        &format!(
                            "create Pod {name}-{i} in StatefulSet {name} failed error: {}",
                            e.message
                        ),
                        "statefulset-controller",
                    ),
                }
                if !parallel {
                    break;
                }
            }
        }
    }

    // Scale down, highest ordinal first; OrderedReady one at a time.
    let condemned: Vec<&std::sync::Arc<Value>> = pods
        .iter()
        .rev()
        .filter(|(i, _)| !wanted.contains(i))
        .map(|(_, p)| p)
        .collect();
    let terminating = condemned.iter().any(|p| meta::is_deleting(p));
    for pod in condemned {
        if meta::is_deleting(pod) {
            continue;
        }
        if !parallel && terminating {
            break;
        }
        if ctx.delete(PODS, ns, meta::name(pod), false).is_ok() {
            ctx.event(
                sts,
                false,
                "SuccessfulDelete",
                &format!(
                    "delete Pod {} in StatefulSet {name} successful",
                    meta::name(pod)
                ),
                "statefulset-controller",
            );
        }
        if !parallel {
            break;
        }
    }

    // Status from what exists now: the set's pods re-read by name if anything was
    // written meanwhile (a pod someone else creates for the set wakes the next pass).
    let now: Vec<std::sync::Arc<Value>> = if ctx.cluster.store.current_rv() == revision_before {
        owned.to_vec()
    } else {
        names
            .iter()
            .filter_map(|n| ctx.get(PODS, ns, n))
            .filter(|p| owned_by(p, uid))
            .collect()
    };
    let ready = now
        .iter()
        .filter(|p| pod_ready(p) && !meta::is_deleting(p))
        .count();
    let revision = format!("{name}-{}", revision_hash(&sts["spec"]["template"]));
    let status = json!({
        "observedGeneration": sts["metadata"]["generation"],
        "replicas": now.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": now.len(),
        "updatedReplicas": now.len(),
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    let differs = [
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "currentReplicas",
        "updatedReplicas",
        "currentRevision",
    ]
    .iter()
    .any(|k| sts["status"][*k] != status[*k]);
    if differs {
        let _ = ctx.patch(
            STATEFULSETS,
            ns,
            name,
            &json!({ "status": status }),
            Part::Status,
        );
    }
}

/// Creates the missing claims of ordinal `i`; false while one is still being deleted.
fn create_claims(ctx: &Ctx, sts: &Value, templates: &[Value], i: i64) -> bool {
    let ns = meta::namespace(sts);
    let name = meta::name(sts);
    for t in templates {
        let claim = claim_name(meta::name(t), name, i);
        match ctx.get(PVCS, ns, &claim) {
            Some(existing) if meta::is_deleting(&existing) => {
                ctx.event(
                    sts,
                    true,
                    "FailedCreate",
                    &format!("pod {name}-{i}: PVC {claim} is being deleted"),
                    "statefulset-controller",
                );
                return false;
            }
            Some(_) => {}
            None => {
                let mut labels = t["metadata"]["labels"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in sts["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    labels.insert(k.clone(), v.clone());
                }
                let mut md = json!({ "name": claim, "namespace": ns, "labels": labels });
                if let Some(a) = t["metadata"]["annotations"].as_object() {
                    md["annotations"] = json!(a);
                }
                if sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete" {
                    md["ownerReferences"] = json!([{ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": meta::uid(sts) }]);
                }
                let pvc = json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": md, "spec": t["spec"] });
                match ctx.create(PVCS, ns, pvc) {
                    Ok(_) => ctx.event(
                        sts,
                        false,
                        "SuccessfulCreate",
                        &format!(
                            "create Claim {claim} Pod {name}-{i} in StatefulSet {name} success"
                        ),
                        "statefulset-controller",
                    ),
                    Err(e) if e.code == 409 => {}
                    Err(e) => {
                        ctx.event(sts, true, "FailedCreate", &format!("create Claim {claim} for Pod {name}-{i} in StatefulSet {name} failed error: {}", e.message), "statefulset-controller");
                        return false;
                    }
                }
            }
        }
    }
    true
}

fn pod_for(sts: &Value, templates: &[Value], i: i64) -> Value {
    let name = meta::name(sts);
    let pod_name = format!("{name}-{i}");
    let template = &sts["spec"]["template"];
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
    labels.insert("apps.kubernetes.io/pod-index".into(), json!(i.to_string()));
    labels.insert(
        "controller-revision-hash".into(),
        json!(format!("{name}-{}", revision_hash(template))),
    );
    let mut spec = template["spec"].clone();
    let mut volumes: Vec<Value> = spec["volumes"].as_array().cloned().unwrap_or_default();
    for t in templates {
        let vname = meta::name(t);
        volumes.retain(|v| v["name"] != vname);
        volumes.push(json!({ "name": vname, "persistentVolumeClaim": { "claimName": claim_name(vname, name, i) } }));
    }
    if !volumes.is_empty() {
        spec["volumes"] = json!(volumes);
    }
    spec["hostname"] = json!(pod_name);
    if let Some(svc) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(svc);
    }
    let mut md = json!({ "name": pod_name, "namespace": meta::namespace(sts), "labels": labels, "ownerReferences": [controller_ref(sts)] });
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        md["annotations"] = json!(a);
    }
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec })
}

/// A short stable hash of a pod template, as controller-revision-hash.
pub(crate) fn revision_hash(template: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in template.to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{:x}", h & 0xff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::resources::GroupResource;
    use crate::store::{Change, ChangeKind};

    fn change(plural: &str, obj: Value) -> Arc<Change> {
        Arc::new(Change {
            rv: 1,
            resource: GroupResource {
                group: String::new(),
                plural: plural.into(),
            },
            kind: ChangeKind::Modified,
            object: Arc::new(obj),
            old: None,
        })
    }

    #[test]
    fn a_pass_from_changes_converges_the_sets_they_concern() {
        let ctx = Ctx::for_test();
        let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "ns" } });
        ctx.create(super::super::api::NAMESPACES, "", ns).unwrap();
        let mut uids = std::collections::BTreeMap::new();
        for (name, templates) in [
            ("web", &["data"][..]),
            ("db", &["data", "logs"]),
            ("cache", &["data"]),
        ] {
            let templates: Vec<Value> = templates
                .iter()
                .map(|t| json!({ "metadata": { "name": t }, "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } } }))
                .collect();
            let sts = json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": { "name": name, "namespace": "ns" },
                "spec": {
                    "serviceName": name, "replicas": 0,
                    "selector": { "matchLabels": { "app": name } },
                    "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "c", "image": "i" }] } },
                    "volumeClaimTemplates": templates,
                },
            });
            let made = ctx.create(STATEFULSETS, "ns", sts).unwrap();
            uids.insert(name, meta::uid(&made).to_string());
        }
        let scope = Scope::Changes(vec![
            change(
                "persistentvolumeclaims",
                json!({ "metadata": { "name": "logs-db-3", "namespace": "ns" } }),
            ),
            // Not a claim name of any set: no ordinal, or another namespace.
            change(
                "persistentvolumeclaims",
                json!({ "metadata": { "name": "data-web-x", "namespace": "ns" } }),
            ),
            change(
                "persistentvolumeclaims",
                json!({ "metadata": { "name": "data-cache-0", "namespace": "other" } }),
            ),
            change(
                "pods",
                json!({ "metadata": { "name": "web-0", "namespace": "ns", "ownerReferences": [{ "uid": uids["web"] }] } }),
            ),
        ]);
        let mut got: Vec<String> = touched(&ctx, &scope).unwrap().into_iter().collect();
        got.sort();
        let mut want = vec![uids["db"].clone(), uids["web"].clone()];
        want.sort();
        assert_eq!(got, want);
        assert!(
            touched(&ctx, &Scope::All).is_none(),
            "a full pass takes all"
        );
    }
}
