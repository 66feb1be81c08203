//! The scheduler, as far as volumes decide placement: a pod goes only to a Ready node
//! that matches its nodeSelector and the node affinity of every bound PV it uses (the EBS
//! zone); claims of `WaitForFirstConsumer` classes get the chosen node annotated for the
//! provisioner. A pod that fits nowhere stays Pending with a `FailedScheduling` event
//! worded like the real scheduler's. Binding goes through `pods/binding`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{NODES, PODS, PVCS, PVS, STORAGECLASSES, pod_claims};
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

pub(crate) struct Scheduler;

/// The annotation naming the node a delayed-binding claim is provisioned for.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

impl Controller for Scheduler {
    fn name(&self) -> &'static str {
        "default-scheduler"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("", "pods"),
            ("", "nodes"),
            ("", "persistentvolumeclaims"),
            ("", "persistentvolumes"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            let pods = ctx.list(PODS, None);
            let touched = Touched::new(scope);
            let candidates: Vec<&std::sync::Arc<Value>> = pods
                .iter()
                .filter(|pod| {
                    pod["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .is_empty()
                        && !meta::is_deleting(pod)
                        && pod["spec"]["schedulerName"]
                            .as_str()
                            .unwrap_or("default-scheduler")
                            == "default-scheduler"
                })
                .filter(|pod| touched.wants(pod))
                .collect();
            if candidates.is_empty() {
                return None;
            }
            let nodes: Vec<_> = ctx
                .list(NODES, None)
                .into_iter()
                .filter(|n| node_ready(n))
                .collect();
            let mut spread = spread_index(ctx, &pods, &nodes);
            // A node's load: its pods, and the pods assumed on it — those whose claims
            // have it selected and wait to bind before the pod is (kube-scheduler's
            // assume). Without them every pod of a burst of StatefulSets would select
            // the same least-loaded node.
            let unbound = |p: &Value| {
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
            };
            let selections: HashMap<(String, String), String> =
                if pods.iter().any(|p| unbound(p) && !pod_claims(p).is_empty()) {
                    ctx.list(PVCS, None)
                        .iter()
                        .filter_map(|c| {
                            let node = c["metadata"]["annotations"][SELECTED_NODE].as_str()?;
                            let key = (meta::namespace(c).to_string(), meta::name(c).to_string());
                            Some((key, node.to_string()))
                        })
                        .collect()
                } else {
                    HashMap::new()
                };
            let mut load: BTreeMap<String, usize> = BTreeMap::new();
            for p in &pods {
                let node = if unbound(p) {
                    pod_claims(p).into_iter().find_map(|c| {
                        selections
                            .get(&(meta::namespace(p).to_string(), c))
                            .cloned()
                    })
                } else {
                    p["spec"]["nodeName"].as_str().map(String::from)
                };
                if let Some(n) = node {
                    *load.entry(n).or_default() += 1;
                }
            }
            for pod in candidates {
                schedule(ctx, pod, &nodes, &mut load, &mut spread);
            }
            None
        })
    }
}

/// Which unscheduled pods a pass looks at: all of them on a full pass or when nodes or
/// classes changed; otherwise the pods that changed and those whose claims (or the
/// volumes reserved for them) changed — nothing else can make a pending pod fit.
enum Touched {
    All,
    Some {
        pods: HashSet<(String, String)>,
        claims: HashSet<(String, String)>,
    },
}

impl Touched {
    fn new(scope: &Scope) -> Self {
        if scope.is_all() || scope.touches("", "nodes") {
            return Self::All;
        }
        let key = |o: &Value| (meta::namespace(o).to_string(), meta::name(o).to_string());
        let pods = scope.changed("", "pods").map(|(o, _)| key(o)).collect();
        let mut claims: HashSet<(String, String)> = scope
            .changed("", "persistentvolumeclaims")
            .map(|(o, _)| key(o))
            .collect();
        for (pv, old) in scope.changed("", "persistentvolumes") {
            for r in std::iter::once(pv)
                .chain(old)
                .map(|v| &v["spec"]["claimRef"])
            {
                if let (Some(ns), Some(name)) = (r["namespace"].as_str(), r["name"].as_str()) {
                    claims.insert((ns.to_string(), name.to_string()));
                }
            }
        }
        Self::Some { pods, claims }
    }

    fn wants(&self, pod: &Value) -> bool {
        match self {
            Self::All => true,
            Self::Some { pods, claims } => {
                let ns = meta::namespace(pod);
                pods.contains(&(ns.to_string(), meta::name(pod).to_string()))
                    || pod_claims(pod)
                        .into_iter()
                        .any(|c| claims.contains(&(ns.to_string(), c)))
            }
        }
    }
}

fn zone_of(node: &Value) -> &str {
    node["metadata"]["labels"][super::provisioner::ZONE_KEY]
        .as_str()
        .unwrap_or_default()
}

/// Where each controller's pods are: owner uid → (pod uid, zone), from nodeName or, for
/// a pod not bound yet, the node a WaitForFirstConsumer claim of it selected. Built once
/// per pass so spreading does not rescan every pod for every pod.
type Spread = HashMap<String, Vec<(String, String)>>;

fn spread_index(
    ctx: &Ctx,
    pods: &[std::sync::Arc<Value>],
    nodes: &[std::sync::Arc<Value>],
) -> Spread {
    let zones: BTreeMap<&str, &str> = nodes.iter().map(|n| (meta::name(n), zone_of(n))).collect();
    let mut out = Spread::new();
    for p in pods {
        let Some(owner) = meta::owner_uids(p).into_iter().next() else {
            continue;
        };
        let node = p["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(String::from)
            .or_else(|| {
                pod_claims(p).iter().find_map(|c| {
                    ctx.get(PVCS, meta::namespace(p), c).and_then(|pvc| {
                        pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
                            .as_str()
                            .map(String::from)
                    })
                })
            });
        if let Some(z) = node.as_deref().and_then(|n| zones.get(n)) {
            out.entry(owner)
                .or_default()
                .push((meta::uid(p).to_string(), z.to_string()));
        }
    }
    out
}

/// How many of `pod`'s siblings are in each zone.
fn sibling_zones(spread: &Spread, pod: &Value) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Some(owner) = meta::owner_uids(pod).into_iter().next() else {
        return out;
    };
    for (uid, zone) in spread.get(&owner).into_iter().flatten() {
        if uid != meta::uid(pod) {
            *out.entry(zone.clone()).or_default() += 1;
        }
    }
    out
}

/// Whether a node's Ready condition is True and it is schedulable.
pub(crate) fn node_ready(node: &Value) -> bool {
    node["spec"]["unschedulable"].as_bool() != Some(true)
        && node["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Whether node labels satisfy a `nodeSelectorTerms` list (any term, all expressions).
pub(crate) fn matches_terms(labels: &Value, terms: &Value) -> bool {
    let Some(terms) = terms.as_array() else {
        return true;
    };
    terms.iter().any(|t| {
        t["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let key = e["key"].as_str().unwrap_or_default();
                let have = labels[key].as_str();
                let values: Vec<&str> = e["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                match e["operator"].as_str().unwrap_or_default() {
                    "In" => have.is_some_and(|h| values.contains(&h)),
                    "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
    })
}

enum Fit {
    Ok,
    No(&'static str),
}

fn schedule(
    ctx: &Ctx,
    pod: &Value,
    nodes: &[std::sync::Arc<Value>],
    load: &mut BTreeMap<String, usize>,
    spread: &mut Spread,
) {
    let ns = meta::namespace(pod);
    let mut delayed_claims = Vec::new();
    let mut affinities = Vec::new();
    // The node the pod's claims have selected: the pass counted the pod on it.
    let mut assumed: Option<String> = None;
    for claim in pod_claims(pod) {
        let Some(pvc) = ctx.get(PVCS, ns, &claim) else {
            ctx.event(
                pod,
                true,
                "FailedScheduling",
                &format!(
                    "0/{} nodes are available: persistentvolumeclaim \"{claim}\" not found.",
                    nodes.len()
                ),
                "default-scheduler",
            );
            return;
        };
        if assumed.is_none() {
            assumed = pvc["metadata"]["annotations"][SELECTED_NODE]
                .as_str()
                .map(String::from);
        }
        if meta::is_deleting(&pvc) {
            ctx.event(
                pod,
                true,
                "FailedScheduling",
                &format!(
                    "0/{} nodes are available: persistentvolumeclaim \"{claim}\" is being deleted.",
                    nodes.len()
                ),
                "default-scheduler",
            );
            return;
        }
        if pvc["status"]["phase"] == "Bound" {
            if let Some(pv) = ctx.get(
                PVS,
                "",
                pvc["spec"]["volumeName"].as_str().unwrap_or_default(),
            ) {
                affinities
                    .push(pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"].clone());
            }
            continue;
        }
        let class = pvc["spec"]["storageClassName"].as_str().unwrap_or_default();
        let wffc = ctx
            .get(STORAGECLASSES, "", class)
            .is_some_and(|sc| sc["volumeBindingMode"] == "WaitForFirstConsumer");
        if !wffc
            || !pvc["spec"]["volumeName"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        {
            ctx.event(pod, true, "FailedScheduling", &format!("0/{} nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/{} nodes are available: {} Preemption is not helpful for scheduling.", nodes.len(), nodes.len(), nodes.len()), "default-scheduler");
            return;
        }
        delayed_claims.push(pvc);
    }
    let selector = &pod["spec"]["nodeSelector"];
    let required = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let siblings = sibling_zones(spread, pod);
    let mut best: Option<&std::sync::Arc<Value>> = None;
    for node in nodes {
        let labels = &node["metadata"]["labels"];
        let fit = if selector
            .as_object()
            .is_some_and(|s| s.iter().any(|(k, v)| &labels[k] != v))
            || !matches_terms(labels, required)
        {
            Fit::No("node(s) didn't match Pod's node affinity/selector")
        } else if affinities.iter().any(|a| !matches_terms(labels, a)) {
            Fit::No("node(s) had volume node affinity conflict")
        } else {
            Fit::Ok
        };
        match fit {
            Fit::Ok => {
                // Spread siblings across zones first (the default topology spread), then
                // prefer the least loaded node.
                let score = |n: &Value| {
                    (
                        siblings.get(zone_of(n)).copied().unwrap_or(0),
                        load.get(meta::name(n)).copied().unwrap_or(0),
                    )
                };
                if best.is_none_or(|b| score(node) < score(b)) {
                    best = Some(node);
                }
            }
            Fit::No(why) => *reasons.entry(why).or_default() += 1,
        }
    }
    // A node already selected for a delayed claim stays selected while it fits: its
    // volume may be being provisioned in that node's zone right now.
    let selected = delayed_claims.iter().find_map(|pvc| {
        pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].as_str()
    });
    if let Some(chosen) = selected.and_then(|name| {
        nodes.iter().find(|n| {
            meta::name(n) == name
                && selector
                    .as_object()
                    .is_none_or(|s| s.iter().all(|(k, v)| &n["metadata"]["labels"][k] == v))
                && matches_terms(&n["metadata"]["labels"], required)
                && affinities
                    .iter()
                    .all(|a| matches_terms(&n["metadata"]["labels"], a))
        })
    }) {
        best = Some(chosen);
    }
    let Some(node) = best else {
        let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let msg = if nodes.is_empty() {
            "0/0 nodes are available: no nodes available to schedule pods.".to_string()
        } else {
            format!(
                "0/{} nodes are available: {}.",
                nodes.len(),
                detail.join(", ")
            )
        };
        ctx.event(pod, true, "FailedScheduling", &msg, "default-scheduler");
        let cond = json!({ "status": { "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg }] } });
        if pod["status"]["conditions"][0]["message"] != cond["status"]["conditions"][0]["message"] {
            let _ = ctx.patch(PODS, ns, meta::name(pod), &cond, Part::Status);
        }
        return;
    };
    let node_name = meta::name(node).to_string();
    if let Some(owner) = meta::owner_uids(pod).into_iter().next() {
        let entry = spread.entry(owner).or_default();
        entry.retain(|(uid, _)| uid != meta::uid(pod));
        entry.push((meta::uid(pod).to_string(), zone_of(node).to_string()));
    }
    for pvc in &delayed_claims {
        if pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].as_str()
            != Some(node_name.as_str())
        {
            let patch = json!({ "metadata": { "annotations": { "volume.kubernetes.io/selected-node": node_name } } });
            let _ = ctx.patch(PVCS, ns, meta::name(pvc), &patch, Part::Main);
        }
    }
    // Counted on its node from now on, as the pass counted pods assumed there.
    let newly_placed = assumed.as_deref() != Some(node_name.as_str());
    // Delayed-binding claims must bind (provisioner, binder) before the pod is bound, and
    // the pod is bound by a pass that saw them Bound, so their volumes' zones constrain
    // the node: one that raced this pass may have been provisioned elsewhere.
    if !delayed_claims.is_empty() {
        if newly_placed {
            *load.entry(node_name).or_default() += 1;
        }
        return;
    }
    let binding = json!({ "apiVersion": "v1", "kind": "Binding", "metadata": { "name": meta::name(pod) }, "target": { "kind": "Node", "name": node_name } });
    match ctx.cluster.bind_pod(ns, meta::name(pod), &binding) {
        Ok(_) => {
            if newly_placed {
                *load.entry(node_name.clone()).or_default() += 1;
            }
            ctx.event(
                pod,
                false,
                "Scheduled",
                &format!(
                    "Successfully assigned {ns}/{} to {node_name}",
                    meta::name(pod)
                ),
                "default-scheduler",
            );
        }
        Err(e) => tracing::debug!(error = %e, "binding failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ctx: &Ctx, name: &str, zone: &str) {
        ctx.create(
            NODES,
            "",
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": { "name": name, "labels": { super::super::provisioner::ZONE_KEY: zone } },
                "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
            }),
        )
        .unwrap();
    }

    fn selected(ctx: &Ctx) -> Option<String> {
        ctx.get(PVCS, "default", "data").and_then(|c| {
            c["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
                .as_str()
                .map(String::from)
        })
    }

    fn node_of_pod(ctx: &Ctx) -> Option<String> {
        ctx.get(PODS, "default", "app")
            .and_then(|p| p["spec"]["nodeName"].as_str().map(String::from))
    }

    /// A pod whose claims wait for their first consumer is assumed on the node they
    /// select: the next pods of the burst see it there, and spread over the nodes rather
    /// than all selecting the first least-loaded one (whose addresses, on EKS, would run
    /// out).
    #[tokio::test]
    async fn pods_with_delayed_claims_count_on_the_node_their_claims_selected() {
        let ctx = Ctx::for_test();
        for (n, z) in [
            ("node-a", "zone-a"),
            ("node-b", "zone-b"),
            ("node-c", "zone-c"),
        ] {
            node(&ctx, n, z);
        }
        ctx.create(
            STORAGECLASSES,
            "",
            json!({ "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": { "name": "gp3" }, "provisioner": "ebs.csi.aws.com",
                    "volumeBindingMode": "WaitForFirstConsumer" }),
        )
        .unwrap();
        let claim_and_pod = |i: usize| {
            ctx.create(
                PVCS,
                "default",
                json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": { "name": format!("data-{i}") },
                        "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "gp3",
                                  "resources": { "requests": { "storage": "1Gi" } } } }),
            )
            .unwrap();
            ctx.create(
                PODS,
                "default",
                json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": format!("app-{i}") },
                        "spec": { "containers": [{ "name": "c", "image": "x" }],
                                  "volumes": [{ "name": "d", "persistentVolumeClaim": { "claimName": format!("data-{i}") } }] } }),
            )
            .unwrap();
        };
        let selections = |ctx: &Ctx| -> Vec<String> {
            let mut out: Vec<String> = ctx
                .list(PVCS, Some("default"))
                .iter()
                .filter_map(|c| {
                    c["metadata"]["annotations"][SELECTED_NODE]
                        .as_str()
                        .map(String::from)
                })
                .collect();
            out.sort();
            out
        };
        // Three in one pass.
        for i in 0..3 {
            claim_and_pod(i);
        }
        Scheduler.reconcile(&ctx, &Scope::All).await;
        assert_eq!(selections(&ctx), ["node-a", "node-b", "node-c"]);
        // Three more in a later pass, while the first three still wait for their volumes.
        for i in 3..6 {
            claim_and_pod(i);
        }
        Scheduler.reconcile(&ctx, &Scope::All).await;
        assert_eq!(
            selections(&ctx),
            ["node-a", "node-a", "node-b", "node-b", "node-c", "node-c"]
        );
    }

    /// The race behind a pod stuck on ZoneMismatch: while a delayed claim is unbound, a
    /// pass keeps the node the claim selected (its volume may be being provisioned in that
    /// zone) and does not bind the pod; only a pass that sees the claim Bound does, within
    /// the volume's zone.
    #[tokio::test]
    async fn a_delayed_claim_keeps_its_selected_node_and_the_pod_waits_for_it_to_bind() {
        let ctx = Ctx::for_test();
        node(&ctx, "node-a", "zone-a");
        node(&ctx, "node-b", "zone-b");
        ctx.create(
            STORAGECLASSES,
            "",
            json!({ "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": { "name": "gp3" }, "provisioner": "ebs.csi.aws.com",
                    "volumeBindingMode": "WaitForFirstConsumer" }),
        )
        .unwrap();
        // node-a (first, equally loaded) is what the scheduler would pick on its own.
        ctx.create(
            PVCS,
            "default",
            json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": { "name": "data", "annotations": {
                        "volume.kubernetes.io/selected-node": "node-b" } },
                    "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "gp3",
                              "resources": { "requests": { "storage": "1Gi" } } } }),
        )
        .unwrap();
        ctx.create(
            PODS,
            "default",
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "app" },
                    "spec": { "containers": [{ "name": "c", "image": "x" }],
                              "volumes": [{ "name": "d", "persistentVolumeClaim": { "claimName": "data" } }] } }),
        )
        .unwrap();
        Scheduler.reconcile(&ctx, &Scope::All).await;
        assert_eq!(selected(&ctx).as_deref(), Some("node-b"));
        assert_eq!(
            node_of_pod(&ctx),
            None,
            "not bound while its claim is unbound"
        );

        // The volume was provisioned in zone-b and the claim bound to it.
        ctx.create(
            PVS,
            "",
            json!({ "apiVersion": "v1", "kind": "PersistentVolume", "metadata": { "name": "pv-b" },
                    "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"],
                              "storageClassName": "gp3",
                              "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": "vol-1" },
                              "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                                  { "key": super::super::provisioner::ZONE_KEY, "operator": "In", "values": ["zone-b"] }] }] } } } }),
        )
        .unwrap();
        ctx.patch(
            PVCS,
            "default",
            "data",
            &json!({ "spec": { "volumeName": "pv-b" } }),
            Part::Main,
        )
        .unwrap();
        ctx.patch(
            PVCS,
            "default",
            "data",
            &json!({ "status": { "phase": "Bound" } }),
            Part::Status,
        )
        .unwrap();
        Scheduler.reconcile(&ctx, &Scope::All).await;
        assert_eq!(node_of_pod(&ctx).as_deref(), Some("node-b"));
    }
}
