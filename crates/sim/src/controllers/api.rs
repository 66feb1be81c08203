//! What controllers use to read and write a cluster in-process (the same `ops` the HTTP
//! layer serves, so every write is validated and versioned like a client's), and to
//! record Events as `kubectl describe` shows them.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::meta;
use crate::ops::{DeleteOptions, Part};
use crate::patch::PatchType;
use crate::resources::{GroupResource, ResourceDef};

use super::Delays;

/// A kind by group, version and plural.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural.
    pub plural: &'static str,
}

/// Pods.
pub const PODS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "pods",
};
/// PersistentVolumes.
pub const PVS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "persistentvolumes",
};
/// PersistentVolumeClaims.
pub const PVCS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "persistentvolumeclaims",
};
/// Nodes.
pub const NODES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "nodes",
};
/// Namespaces.
pub const NAMESPACES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "namespaces",
};
/// Events.
pub const EVENTS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "events",
};
/// StatefulSets.
pub const STATEFULSETS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "statefulsets",
};
/// Deployments.
pub const DEPLOYMENTS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "deployments",
};
/// ServiceAccounts.
pub const SERVICEACCOUNTS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "serviceaccounts",
};
/// StorageClasses.
pub const STORAGECLASSES: Kind = Kind {
    group: "storage.k8s.io",
    version: "v1",
    plural: "storageclasses",
};
/// VolumeAttachments.
pub const VOLUMEATTACHMENTS: Kind = Kind {
    group: "storage.k8s.io",
    version: "v1",
    plural: "volumeattachments",
};

/// Services.
pub const SERVICES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "services",
};
/// ConfigMaps.
pub const CONFIGMAPS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "configmaps",
};

/// The AWS Load Balancer Controller's TargetGroupBindings (served only once their CRD
/// is installed).
pub const TARGETGROUPBINDINGS: Kind = Kind {
    group: "elbv2.k8s.aws",
    version: "v1beta1",
    plural: "targetgroupbindings",
};

/// Velero's Backups (served only once their CRD is installed).
pub const VELERO_BACKUPS: Kind = Kind {
    group: "velero.io",
    version: "v1",
    plural: "backups",
};

/// HorizontalPodAutoscalers.
pub const HPAS: Kind = Kind {
    group: "autoscaling",
    version: "v2",
    plural: "horizontalpodautoscalers",
};

/// Argo CD's Applications (served only once their CRD is installed).
pub const ARGO_APPLICATIONS: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    plural: "applications",
};

/// Flux's Kustomizations (served only once their CRD is installed).
pub const FLUX_KUSTOMIZATIONS: Kind = Kind {
    group: "kustomize.toolkit.fluxcd.io",
    version: "v1",
    plural: "kustomizations",
};

/// Flux's HelmReleases (served only once their CRD is installed).
pub const FLUX_HELMRELEASES: Kind = Kind {
    group: "helm.toolkit.fluxcd.io",
    version: "v2",
    plural: "helmreleases",
};

/// KEDA's ScaledObjects (served only once their CRD is installed).
pub const KEDA_SCALEDOBJECTS: Kind = Kind {
    group: "keda.sh",
    version: "v1alpha1",
    plural: "scaledobjects",
};

/// A controller's handle on its cluster (and on AWS, for the storage controllers).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    /// EC2 on moto (or AWS), for the CSI driver, attacher, reclaimer and fingerprints.
    /// Without it, storage that needs EC2 stays pending with an event saying why.
    pub aws: Option<baton_aws::Aws>,
    /// Modelled delays.
    pub delays: Arc<Delays>,
    /// Events this control plane recorded, for aggregation without listing them.
    pub(crate) events: Arc<std::sync::Mutex<EventCache>>,
    /// Counts writes through this handle during a resync (each controller has its own).
    pub(crate) audit: Arc<Audit>,
    /// Its workers' requests for a pass (each controller has its own).
    pub(crate) wake: Arc<super::workers::Wake>,
    /// The nodes' pod address pools (the VPC CNI's), which the ipamd fills and the
    /// kubelets take from: one per cluster, shared by its controllers.
    pub(crate) pools: Arc<super::ipamd::Pools>,
}

/// Writes (other than Events) that changed an object while auditing is on: a resync pass
/// turns it on to tell whether it found work the passes woken by changes missed. Off,
/// it costs nothing (a patch does not read the object first to compare versions).
#[derive(Debug, Default)]
pub(crate) struct Audit {
    on: std::sync::atomic::AtomicBool,
    writes: std::sync::atomic::AtomicU64,
}

impl Audit {
    /// Starts counting from zero.
    pub(crate) fn start(&self) {
        self.writes.store(0, std::sync::atomic::Ordering::Relaxed);
        self.on.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops counting; how many writes changed an object since `start` (none when it was
    /// not started: the count is taken, so no later pass reports it again).
    pub(crate) fn stop(&self) -> u64 {
        self.on.store(false, std::sync::atomic::Ordering::Relaxed);
        self.writes.swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    fn on(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self, k: Kind, changed: bool) {
        if self.on() && changed && k.plural != EVENTS.plural {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// (involved uid, reason, message).
type EventKey = (String, String, String);

/// What `Ctx::event` remembers, as client-go's event correlator does: when each event
/// was last recorded (so a level-triggered pass does not rewrite the same event on every
/// wake-up), and which stored Event carries it (so aggregating is a get, not a scan of
/// every Event in the namespace).
#[derive(Debug, Default)]
pub(crate) struct EventCache {
    recent: std::collections::HashMap<EventKey, std::time::Instant>,
    /// Event key → (namespace, name); filled from the stored Events on first use, so a
    /// control plane restarted on a cluster keeps counting the Events it finds there.
    names: Option<std::collections::HashMap<EventKey, (String, String)>>,
}

/// How long an identical event is not recorded again.
const EVENT_QUIET: std::time::Duration = std::time::Duration::from_secs(30);

impl Ctx {
    /// A context for a fresh cluster without EC2 and with no modelled delays (unit tests).
    #[cfg(test)]
    pub(crate) fn for_test() -> Self {
        Self::new(
            crate::cluster::Cluster::new(crate::cluster::ClusterSpec::new("t", "v1.31.0")),
            None,
            Delays::default(),
        )
    }

    /// A context for a cluster, with EC2 access when given.
    pub fn new(cluster: Arc<Cluster>, aws: Option<baton_aws::Aws>, delays: Delays) -> Self {
        Self {
            cluster,
            aws,
            delays: Arc::new(delays),
            events: Arc::default(),
            audit: Arc::default(),
            wake: Arc::default(),
            pools: Arc::default(),
        }
    }

    /// The same handle with its own write audit, for one controller.
    pub(crate) fn for_controller(&self) -> Self {
        Self {
            audit: Arc::default(),
            wake: Arc::default(),
            ..self.clone()
        }
    }

    /// The same handle for a worker's task: its writes are not a resync pass's (the
    /// audit counts only what a pass itself writes).
    pub(crate) fn for_worker(&self) -> Self {
        Self {
            audit: Arc::default(),
            ..self.clone()
        }
    }

    /// Whether the cluster serves a kind (custom kinds only once their CRD is installed).
    pub fn serves(&self, k: Kind) -> bool {
        self.cluster.def(k.group, k.version, k.plural).is_some()
    }

    fn def(&self, k: Kind) -> ResourceDef {
        self.cluster
            .def(k.group, k.version, k.plural)
            .expect("controllers use built-in kinds, or check `serves` first")
    }

    /// Every object of a kind (in a namespace, or all).
    pub fn list(&self, k: Kind, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let gr = GroupResource {
            group: k.group.into(),
            plural: k.plural.into(),
        };
        self.cluster.store.txn(|t| t.list(&gr, namespace))
    }

    /// One object.
    pub fn get(&self, k: Kind, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let gr = GroupResource {
            group: k.group.into(),
            plural: k.plural.into(),
        };
        self.cluster.store.txn(|t| t.get(&gr, namespace, name))
    }

    /// The objects that use `name` (in `namespace`, or "") as `how`, from the store's
    /// index: the pods that mount a claim, the VolumeAttachments of a PV.
    pub fn users(&self, how: crate::store::Use, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        self.cluster.store.txn(|t| t.users(how, namespace, name))
    }

    /// The object of kind `k` with `uid`, from the store's owner index.
    pub fn by_uid(&self, k: Kind, uid: &str) -> Option<Arc<Value>> {
        self.cluster.store.txn(|t| {
            let (gr, ns, name) = t.key_of_uid(uid)?;
            if gr.group != k.group || gr.plural != k.plural {
                return None;
            }
            t.get(&gr, &ns, &name)
        })
    }

    /// The objects of kind `k` that name `uid` among their owners, from the store's
    /// owner index.
    pub fn dependents(&self, k: Kind, uid: &str) -> Vec<Arc<Value>> {
        self.cluster.store.txn(|t| {
            t.dependents_of(uid)
                .into_iter()
                .filter(|(gr, ..)| gr.group == k.group && gr.plural == k.plural)
                .filter_map(|(gr, ns, name)| t.get(&gr, &ns, &name))
                .collect()
        })
    }

    /// Creates an object.
    pub fn create(&self, k: Kind, namespace: &str, obj: Value) -> Result<Value, ApiError> {
        let out = self.cluster.create(&self.def(k), namespace, obj, false);
        self.audit.count(k, out.is_ok());
        out
    }

    /// Merge-patches an object (or its status).
    pub fn patch(
        &self,
        k: Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        self.patch_as(k, namespace, name, PatchType::Merge, patch, part)
    }

    /// Patches an object (or its status) with a patch of the given type (a strategic
    /// merge patch merges lists such as a pod's conditions by their keys).
    pub fn patch_as(
        &self,
        k: Kind,
        namespace: &str,
        name: &str,
        kind: PatchType,
        patch: &Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let body = serde_json::to_vec(patch).expect("a JSON value serializes");
        // A no-op patch returns the object unchanged: compare versions (only when audited).
        let before = self
            .audit
            .on()
            .then(|| self.get(k, namespace, name))
            .flatten();
        let out = self
            .cluster
            .patch(&self.def(k), namespace, name, kind, &body, part, false);
        if let (Some(b), Ok(a)) = (&before, &out) {
            self.audit
                .count(k, meta::resource_version(b) != meta::resource_version(a));
        }
        out
    }

    /// Replaces an object (PUT; unconditional when `obj` names no resourceVersion).
    pub fn update(&self, k: Kind, namespace: &str, obj: Value) -> Result<Value, ApiError> {
        let name = meta::name(&obj).to_string();
        let out = self
            .cluster
            .update(&self.def(k), namespace, &name, obj, Part::Main, false);
        self.audit.count(k, out.is_ok());
        out
    }

    /// Writes a workload's `scale` subresource (`spec.replicas`), as autoscalers do: any
    /// kind served with one, named by `apiVersion` and `kind` as a `scaleTargetRef` is.
    pub fn scale(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        replicas: i64,
    ) -> Result<Value, ApiError> {
        let def = self.scalable(api_version, kind).ok_or_else(|| {
            ApiError::not_found(crate::error::Target {
                group: "",
                plural: "scale",
                kind: "Scale",
                name,
            })
        })?;
        let body = serde_json::to_vec(&json!({ "spec": { "replicas": replicas } }))
            .expect("a JSON value serializes");
        let before = self
            .audit
            .on()
            .then(|| self.cluster.get_scale(&def, namespace, name));
        let out = self.cluster.write_scale(
            &def,
            namespace,
            name,
            crate::ops::ScaleChange::Patch(PatchType::Merge, &body),
            false,
        );
        if let (Some(Ok(b)), Ok(a)) = (&before, &out) {
            self.audit.count(
                DEPLOYMENTS,
                meta::resource_version(b) != meta::resource_version(a),
            );
        }
        out
    }

    /// The served kind a `scaleTargetRef` names, if it has a `scale` subresource.
    pub fn scalable(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.cluster
            .def_by_kind(api_version, kind)
            .filter(|d| d.scale.is_some())
    }

    /// One object of a kind given by definition.
    pub fn get_def(&self, def: &ResourceDef, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.cluster
            .store
            .txn(|t| t.get(&def.key(), namespace, name))
    }

    /// Deletes an object (grace 0 finishes a pod's deletion, as the kubelet does).
    pub fn delete(
        &self,
        k: Kind,
        namespace: &str,
        name: &str,
        grace_zero: bool,
    ) -> Result<Value, ApiError> {
        let opts = DeleteOptions {
            grace_period: grace_zero.then_some(0),
            ..Default::default()
        };
        let out = self.cluster.delete(&self.def(k), namespace, name, &opts);
        self.audit.count(k, out.is_ok());
        out
    }

    /// Records an Event about `obj` (aggregated by reason and message, with a count).
    pub fn event(&self, obj: &Value, warning: bool, reason: &str, message: &str, component: &str) {
        let ns = match meta::namespace(obj) {
            "" => "default",
            ns => ns,
        };
        let uid = meta::uid(obj);
        let key = (uid.to_string(), reason.to_string(), message.to_string());
        let known = {
            let mut cache = self.events.lock().unwrap_or_else(|p| p.into_inner());
            if cache
                .recent
                .get(&key)
                .is_some_and(|t| t.elapsed() < EVENT_QUIET)
            {
                return;
            }
            cache.recent.insert(key.clone(), std::time::Instant::now());
            if cache.names.is_none() {
                cache.names = Some(
                    self.list(EVENTS, None)
                        .iter()
                        .map(|e| {
                            let k = (
                                e["involvedObject"]["uid"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string(),
                                e["reason"].as_str().unwrap_or_default().to_string(),
                                e["message"].as_str().unwrap_or_default().to_string(),
                            );
                            let at = (meta::namespace(e).to_string(), meta::name(e).to_string());
                            (k, at)
                        })
                        .collect(),
                );
            }
            cache.names.as_ref().and_then(|n| n.get(&key).cloned())
        };
        let now = meta::now();
        // The Event recorded before, if it is still there (and still this event).
        let existing = known
            .filter(|(ens, _)| ens == ns)
            .and_then(|(ens, ename)| self.get(EVENTS, &ens, &ename))
            .filter(|e| {
                e["involvedObject"]["uid"] == uid
                    && e["reason"] == reason
                    && e["message"] == message
            });
        if let Some(e) = existing {
            let count = e["count"].as_i64().unwrap_or(1) + 1;
            let _ = self.patch(
                EVENTS,
                ns,
                meta::name(&e),
                &json!({ "count": count, "lastTimestamp": now }),
                Part::Main,
            );
            return;
        }
        let name = format!("{}.{:x}", meta::name(obj), rand::random::<u64>());
        let ev = json!({
            "metadata": { "name": name, "namespace": ns },
            "involvedObject": {
                "kind": obj["kind"], "namespace": meta::namespace(obj), "name": meta::name(obj),
                "uid": uid, "apiVersion": obj["apiVersion"], "resourceVersion": meta::resource_version(obj),
            },
            "reason": reason,
            "message": message,
            "type": if warning { "Warning" } else { "Normal" },
            "source": { "component": component },
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        match self.create(EVENTS, ns, ev) {
            Ok(_) => {
                let mut cache = self.events.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(names) = cache.names.as_mut() {
                    names.insert(key, (ns.to_string(), name));
                }
            }
            Err(e) => tracing::debug!(error = %e, "event not recorded"),
        }
    }
}

/// Whether an object is owned (by ownerReferences) by the object with `uid`.
pub fn owned_by(obj: &Value, uid: &str) -> bool {
    meta::owner_uids(obj).iter().any(|u| u == uid)
}

/// An ownerReference to `owner` as its controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta::name(owner),
        "uid": meta::uid(owner), "controller": true, "blockOwnerDeletion": true,
    })
}

/// Whether a pod is Running with its Ready condition true.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The claim names a pod's volumes use.
pub fn pod_claims(pod: &Value) -> Vec<String> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v["persistentVolumeClaim"]["claimName"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Whether a pod has finished (it no longer holds its volumes' use).
pub fn pod_terminated(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, ClusterSpec};

    /// A resync's audit counts writes that changed an object — not Events, not no-op
    /// patches, not writes made while it is off.
    #[test]
    fn the_audit_counts_only_changing_writes_while_on() {
        let ctx = Ctx::new(
            Cluster::new(ClusterSpec::new("t", "v1.31.0")),
            None,
            Delays::default(),
        )
        .for_controller();
        let node = json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "n" } });
        ctx.create(NODES, "", node.clone()).unwrap();
        let label = |v: &str| json!({ "metadata": { "labels": { "l": v } } });
        ctx.patch(NODES, "", "n", &label("a"), Part::Main).unwrap();
        // Writes of passes that are not audited count for no later one (they once did:
        // every pass after a create warned that a resync had found work).
        assert_eq!(ctx.audit.stop(), 0);

        ctx.audit.start();
        ctx.patch(NODES, "", "n", &label("a"), Part::Main).unwrap(); // no-op
        ctx.event(&node, false, "Reason", "message", "test");
        assert_eq!(ctx.audit.stop(), 0);

        ctx.audit.start();
        ctx.patch(NODES, "", "n", &label("b"), Part::Main).unwrap();
        ctx.delete(NODES, "", "n", false).unwrap();
        assert_eq!(ctx.audit.stop(), 2);
        assert_eq!(ctx.audit.stop(), 0, "a count is reported once");
    }
}
