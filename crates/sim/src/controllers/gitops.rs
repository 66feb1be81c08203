//! What the GitOps controllers (Argo CD's `Application`, Flux's `Kustomization` and
//! `HelmRelease`) share in the bed: the workloads they manage, the desired state that
//! stands in for their Git repository, and status conditions as Kubernetes writes them.
//!
//! **The repository.** The bed runs no Git server and renders no manifests. A GitOps
//! object's desired state is the `spec.replicas` of each workload it manages, kept in the
//! object's annotation [`GIT`] as JSON (`{"apps/StatefulSet/catalog/catalog-db": 1}`).
//! The controller fills it the first time it sees a managed workload, with the replicas
//! that workload has then (the bed's stand-in for "what the repository declares": the
//! scenario's workloads are what was deployed from it). A test that writes the annotation
//! itself models a commit to the repository: a new revision, which every controller
//! applies (Argo CD's automated sync and Flux's reconcile apply new revisions whatever
//! their drift settings). Only replicas are compared: other drift is not modelled, and a
//! managed workload that is deleted is reported missing, not recreated (the bed keeps no
//! manifest to recreate it from).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Ctx;
use super::api::{DEPLOYMENTS, Kind, STATEFULSETS};
use crate::meta;
use crate::ops::Part;

/// The annotation holding a GitOps object's desired replicas (the bed's repository).
pub const GIT: &str = "baton.sim/git-replicas";

/// The workload kinds the GitOps controllers compare (those with replicas baton moves).
pub(crate) const WORKLOADS: [(Kind, &str); 2] =
    [(DEPLOYMENTS, "Deployment"), (STATEFULSETS, "StatefulSet")];

/// A managed workload: its key in [`GIT`] and the live object.
#[derive(Debug, Clone)]
pub(crate) struct Managed {
    /// `<group>/<Kind>/<namespace>/<name>`.
    pub key: String,
    /// Kind (`Deployment`).
    pub kind: &'static str,
    /// The live object.
    pub live: Arc<Value>,
}

/// `<group>/<Kind>/<namespace>/<name>`, the key of a workload in [`GIT`].
pub(crate) fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("apps/{kind}/{namespace}/{name}")
}

/// The workloads `pick` selects, in every namespace.
pub(crate) fn managed(ctx: &Ctx, pick: impl Fn(&str, &Value) -> bool) -> Vec<Managed> {
    let mut out = Vec::new();
    for (k, kind) in WORKLOADS {
        for o in ctx.list(k, None) {
            if !meta::is_deleting(&o) && pick(kind, &o) {
                out.push(Managed {
                    key: key(kind, meta::namespace(&o), meta::name(&o)),
                    kind,
                    live: o,
                });
            }
        }
    }
    out
}

/// The desired replicas an object's [`GIT`] annotation declares.
pub(crate) fn desired(obj: &Value) -> BTreeMap<String, i64> {
    obj["metadata"]["annotations"][GIT]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The desired state, with the workloads seen for the first time added at their live
/// replicas (written back to the object's annotation when it grew); whether it grew.
pub(crate) fn record(
    ctx: &Ctx,
    k: Kind,
    obj: &Value,
    managed: &[Managed],
) -> (BTreeMap<String, i64>, bool) {
    let mut git = desired(obj);
    let mut grew = false;
    for m in managed {
        if !git.contains_key(&m.key) {
            git.insert(m.key.clone(), replicas(&m.live));
            grew = true;
        }
    }
    if grew {
        let text = serde_json::to_string(&git).expect("a map serializes");
        let patch = json!({ "metadata": { "annotations": { GIT: text } } });
        let _ = ctx.patch(k, meta::namespace(obj), meta::name(obj), &patch, Part::Main);
    }
    (git, grew)
}

/// A workload's `spec.replicas` (1 when unset, the API server's default).
pub(crate) fn replicas(o: &Value) -> i64 {
    o["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// A revision for a desired state: a commit-like hash of it, so a change of the stand-in
/// repository is a new revision.
pub(crate) fn revision(git: &BTreeMap<String, i64>) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::new();
    for salt in 0u8..3 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        git.hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(40);
    out
}

/// A workload's health as Argo CD's gitops-engine assesses it
/// (`pkg/health/health_deployment.go`, `health_statefulset.go`): `Healthy` once its
/// replicas are updated and available (ready, for a StatefulSet), `Progressing` before,
/// `Suspended` for a paused Deployment.
pub(crate) fn health(kind: &str, o: &Value) -> (&'static str, String) {
    let want = replicas(o);
    let st = &o["status"];
    let observed = st["observedGeneration"].as_i64().unwrap_or(0)
        >= o["metadata"]["generation"].as_i64().unwrap_or(0);
    if kind == "Deployment" && o["spec"]["paused"] == true {
        return ("Suspended", "Deployment is paused".into());
    }
    if !observed {
        return (
            "Progressing",
            "Waiting for rollout to finish: observed generation is behind".into(),
        );
    }
    let ready = if kind == "Deployment" {
        st["availableReplicas"].as_i64().unwrap_or(0)
    } else {
        st["readyReplicas"].as_i64().unwrap_or(0)
    };
    if ready < want {
        let what = if kind == "Deployment" {
            "available"
        } else {
            "ready"
        };
        (
            "Progressing",
            format!("Waiting for rollout to finish: {ready} of {want} replicas are {what}..."),
        )
    } else {
        ("Healthy", String::new())
    }
}

/// Sets a condition in a list as `meta.SetStatusCondition` does: its
/// `lastTransitionTime` changes only when its status does.
pub(crate) fn set_condition(
    conds: &mut Vec<Value>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let now = meta::now();
    match conds.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conds.push(json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now,
        })),
    }
}

/// A condition's status, if set.
pub(crate) fn condition<'a>(conds: &'a [Value], kind: &str) -> Option<&'a str> {
    conds
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
}

/// A Go duration (`10m`, `1m30s`, `500ms`, `1h`), as Kubernetes' `metav1.Duration` takes.
pub(crate) fn go_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += Duration::from_secs_f64(n * secs);
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_go_does() {
        assert_eq!(go_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(go_duration("10"), None, "a unit is required");
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn a_changed_desired_state_is_a_new_revision() {
        let mut git = BTreeMap::from([("apps/Deployment/a/b".to_string(), 1)]);
        let one = revision(&git);
        assert_eq!(one.len(), 40);
        git.insert("apps/Deployment/a/b".into(), 0);
        assert_ne!(revision(&git), one);
    }
}
