//! One emulated cluster: its identity (name, Kubernetes version, bearer token), the kinds
//! it serves and its object store. The API semantics live in `ops`; HTTP in `http`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::json;

use crate::auth::{self, Attributes, Identity};
use crate::error::ApiError;
use crate::faults::Knobs;
use crate::resources::{Registry, ResourceDef};
use crate::store::{DEFAULT_HISTORY, Store};

/// What a cluster is: set before it starts.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Cluster (and kubeconfig context) name, e.g. `blue`.
    pub name: String,
    /// `gitVersion` reported by `/version`, e.g. `v1.27.16-eks-2f008fe`.
    pub git_version: String,
    /// The admin's bearer token (`system:masters`: never checked against RBAC).
    /// Service-account tokens minted by the TokenRequest API are RBAC-checked.
    pub token: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Changes kept for watch replay before 410 Gone.
    pub history: usize,
    /// Seeds the PRNGs of the cluster's [`Knobs`] (fault rates, latency jitter); by
    /// default derived from the name, so each cluster has its own stable stream.
    pub seed: u64,
}

impl ClusterSpec {
    /// A cluster with a random token on a free port.
    pub fn new(name: impl Into<String>, git_version: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            seed: name_seed(&name),
            name,
            git_version: git_version.into(),
            token: format!("baton-sim-{}", uuid::Uuid::new_v4().simple()),
            port: 0,
            history: DEFAULT_HISTORY,
        }
    }

    /// Sets the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Sets the watch history length.
    pub fn history(mut self, n: usize) -> Self {
        self.history = n;
        self
    }

    /// Sets the seed of the cluster's knobs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// FNV-1a of the name: a stable default seed that differs between clusters.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A running cluster's state, shared by the HTTP layer and in-process controllers.
#[derive(Debug)]
pub struct Cluster {
    /// What the cluster was started as.
    pub spec: ClusterSpec,
    pub(crate) registry: RwLock<Registry>,
    /// The objects.
    pub store: Store,
    next_service_ip: AtomicU32,
    /// When set, deleting a scheduled pod only marks it (a kubelet finishes it), as on a
    /// real cluster; without a kubelet, pods are removed at once.
    pub graceful_pod_deletion: AtomicBool,
    closing: tokio::sync::watch::Sender<bool>,
    /// StorageObjectInUseProtection admission: new PVCs and PVs get the
    /// `kubernetes.io/pvc-protection`/`pv-protection` finalizers. On when controllers run
    /// (something must remove them).
    pub storage_protection: AtomicBool,
    /// API latency, injected faults and the request log; change them while serving.
    pub knobs: Arc<Knobs>,
    /// Each controller's passes so far, for benchmarks: where the emulator's time goes.
    pub(crate) passes: std::sync::Mutex<std::collections::BTreeMap<&'static str, PassStats>>,
    /// Service-account tokens minted through the TokenRequest API.
    pub(crate) tokens: auth::Tokens,
    /// The in-tree `kubernetes.io/aws-ebs` plugin provisions as it did before CSI
    /// migration (its own tags, no driver tags): volumes an older estate made before
    /// it moved to the CSI driver. Off by default (migrated, as from 1.23).
    pub legacy_in_tree_ebs: AtomicBool,
}

/// One controller's passes: how many, how many looked at everything, and their total
/// wall time (awaited EC2 calls included).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PassStats {
    /// Passes run.
    pub passes: u64,
    /// Of which were asked to look at everything (start, timer, lag, resync); a
    /// controller that does not scope its work to the changes looks at everything in
    /// every pass anyway.
    pub full: u64,
    /// Wall time spent in passes, in seconds.
    pub busy_seconds: f64,
}

impl Cluster {
    /// Each running controller's passes since the last call (or the start), by name.
    pub fn take_controller_passes(&self) -> std::collections::BTreeMap<&'static str, PassStats> {
        std::mem::take(
            &mut *self
                .passes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(crate) fn count_pass(
        &self,
        controller: &'static str,
        full: bool,
        took: std::time::Duration,
    ) {
        let mut p = self
            .passes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = p.entry(controller).or_default();
        s.passes += 1;
        s.full += u64::from(full);
        s.busy_seconds += took.as_secs_f64();
    }

    /// A cluster with the built-in kinds and the namespaces every cluster has.
    pub fn new(spec: ClusterSpec) -> Arc<Self> {
        let knobs = Arc::new(Knobs::new(spec.seed));
        let c = Arc::new(Self {
            store: Store::new(spec.history),
            spec,
            registry: RwLock::new(Registry::builtin()),
            next_service_ip: AtomicU32::new(1),
            graceful_pod_deletion: AtomicBool::new(false),
            closing: tokio::sync::watch::Sender::new(false),
            storage_protection: AtomicBool::new(false),
            knobs,
            passes: std::sync::Mutex::default(),
            tokens: auth::Tokens::default(),
            legacy_in_tree_ebs: AtomicBool::new(false),
        });
        c.bootstrap();
        c
    }

    fn bootstrap(&self) {
        let ns_def = self
            .def("", "v1", "namespaces")
            .expect("namespaces is built in");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.create(&ns_def, "", json!({ "metadata": { "name": ns } }), false)
                .expect("bootstrap namespaces are valid");
        }
        let svc = self
            .def("", "v1", "services")
            .expect("services is built in");
        self.create(
            &svc,
            "default",
            json!({ "metadata": { "name": "kubernetes", "labels": { "component": "apiserver", "provider": "kubernetes" } },
                    "spec": { "ports": [{ "name": "https", "port": 443, "targetPort": 443 }] } }),
            false,
        )
        .expect("bootstrap service is valid");
    }

    /// The kind served at group/version/plural.
    pub fn def(&self, group: &str, version: &str, plural: &str) -> Option<ResourceDef> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(group, version, plural)
            .cloned()
    }

    /// The kind with this apiVersion and Kind.
    pub fn def_by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_kind(api_version, kind)
            .cloned()
    }

    /// A copy of the registry (for discovery).
    pub fn registry(&self) -> Registry {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves a custom kind (e.g. `velero.io/v1` Backup) from now on.
    pub fn register_kind(&self, def: ResourceDef) {
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .register(def);
    }

    pub(crate) fn unregister_kind(&self, group: &str, plural: &str) {
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .unregister(group, plural);
    }

    /// Turns on what a cluster with running controllers has: storage-object-in-use
    /// protection and graceful pod deletion.
    pub fn enable_controllers(&self) {
        self.storage_protection.store(true, Ordering::Relaxed);
        self.graceful_pod_deletion.store(true, Ordering::Relaxed);
    }

    /// A receiver that turns true when the cluster stops serving.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Stops serving: listeners close and open watches end.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// The next ClusterIP from 10.100.0.0/16, as EKS's default service range.
    pub(crate) fn allocate_service_ip(&self) -> String {
        let n = self.next_service_ip.fetch_add(1, Ordering::Relaxed);
        format!("10.100.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }
}

/// Authentication and authorization, as `auth` decides them on this cluster's admin
/// token, minted tokens and RBAC objects.
impl Cluster {
    /// The identity of a request's bearer token, or None (401).
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Option<Identity> {
        self.tokens
            .authenticate(&self.spec.token, &self.store, headers)
    }

    /// Mints a token for the ServiceAccount `namespace/name` (404 if it does not exist),
    /// valid for `seconds` (at least 600, as the real API requires).
    pub fn issue_token(
        &self,
        namespace: &str,
        name: &str,
        seconds: i64,
    ) -> Result<(String, jiff::Timestamp), ApiError> {
        self.tokens.issue(namespace, name, seconds, || {
            let def = self
                .def("", "v1", "serviceaccounts")
                .expect("serviceaccounts is built in");
            self.get(&def, namespace, name)
        })
    }

    /// Whether `who` may do what `attrs` describe: `Ok` with the reason, or the 403.
    pub fn authorize(&self, who: &Identity, attrs: &Attributes) -> Result<String, ApiError> {
        auth::authorize(&self.store, who, attrs)
    }
}
