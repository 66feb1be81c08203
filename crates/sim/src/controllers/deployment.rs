//! The Deployment controller, simplified where baton does not look: pods are created
//! directly for the Deployment (no ReplicaSet objects), named `<deploy>-<hash>-<suffix>`;
//! scale, replacement of failed pods, and status with the Available condition.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{DEPLOYMENTS, PODS, controller_ref, owned_by, pod_ready};
use super::statefulset::revision_hash;
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

pub(crate) struct Deployments;

impl Controller for Deployments {
    fn name(&self) -> &'static str {
        "deployment-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[("apps", "deployments"), ("", "pods")]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            for d in ctx.list(DEPLOYMENTS, None) {
                if !meta::is_deleting(&d) {
                    sync(ctx, &d);
                }
            }
            None
        })
    }
}

fn sync(ctx: &Ctx, d: &Value) {
    let ns = meta::namespace(d);
    let name = meta::name(d);
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let mut pods: Vec<std::sync::Arc<Value>> = ctx
        .list(PODS, Some(ns))
        .into_iter()
        .filter(|p| owned_by(p, meta::uid(d)) && !meta::is_deleting(p))
        .collect();
    for p in pods.iter().filter(|p| p["status"]["phase"] == "Failed") {
        let _ = ctx.delete(PODS, ns, meta::name(p), false);
    }
    pods.retain(|p| p["status"]["phase"] != "Failed");
    let hash = revision_hash(&d["spec"]["template"]);
    for _ in pods.len()..replicas {
        let suffix: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(5)
            .collect();
        let mut labels = d["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        labels.insert("pod-template-hash".into(), json!(hash));
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("{name}-{hash}-{suffix}"), "namespace": ns, "labels": labels, "ownerReferences": [controller_ref(d)] },
            "spec": d["spec"]["template"]["spec"],
        });
        if let Err(e) = ctx.create(PODS, ns, pod) {
            ctx.event(d, true, "FailedCreate", &e.message, "deployment-controller");
        }
    }
    if pods.len() > replicas {
        // Newest first, as the ReplicaSet controller prefers to delete.
        pods.sort_by(|a, b| {
            b["metadata"]["creationTimestamp"]
                .as_str()
                .cmp(&a["metadata"]["creationTimestamp"].as_str())
        });
        for p in pods.iter().take(pods.len() - replicas) {
            let _ = ctx.delete(PODS, ns, meta::name(p), false);
        }
    }
    let now: Vec<std::sync::Arc<Value>> = ctx
        .list(PODS, Some(ns))
        .into_iter()
        .filter(|p| owned_by(p, meta::uid(d)) && !meta::is_deleting(p))
        .collect();
    let ready = now.iter().filter(|p| pod_ready(p)).count();
    let available = if ready >= replicas { "True" } else { "False" };
    let status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": now.len(),
        "updatedReplicas": now.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": replicas.saturating_sub(ready),
        "conditions": [{ "type": "Available", "status": available, "reason": if available == "True" { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" } }],
    });
    let differs = [
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "availableReplicas",
    ]
    .iter()
    .any(|k| d["status"][*k] != status[*k])
        || d["status"]["conditions"][0]["status"] != available;
    if differs {
        let _ = ctx.patch(
            DEPLOYMENTS,
            ns,
            name,
            &json!({ "status": status }),
            Part::Status,
        );
    }
}
