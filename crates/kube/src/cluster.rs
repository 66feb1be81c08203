//! One cluster reached through a kubeconfig context: what baton reads (a [`ClusterView`]
//! for planning, an app's [`Side`] for each decision), the mutations the phase machine asks
//! for — each idempotent, so a repeat after a crash is harmless — and waits that wake on
//! the events of the cluster's shared watch cache ([`crate::cache`]) rather than on a timer.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use baton_core::machine::Side;
use baton_core::world::{ClusterView, WorkloadKind};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod, PodTemplateSpec,
};
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use crate::cache::WatchCache;
use crate::convert;
use crate::request::{Method, Mutation, Tolerate};
use crate::{KubeError, KubeconfigSource};

/// Field manager baton writes as.
pub const MANAGER: &str = "baton";

/// The EBS CSI driver controller's ServiceAccount (namespace, name), as the add-on and
/// the Helm chart install it.
pub const EBS_CSI_SERVICE_ACCOUNT: (&str, &str) = ("kube-system", "ebs-csi-controller-sa");

/// The IRSA annotation naming the IAM role a ServiceAccount's pods assume.
pub const IRSA_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The IRSA annotation naming the audience of a ServiceAccount's projected token.
pub const IRSA_AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";

/// A ServiceAccount whose pods assume an IAM role through IRSA.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IrsaServiceAccount {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The role's ARN.
    pub role: String,
    /// The audience of its pods' tokens.
    pub audience: String,
}

/// The longest [`Cluster::reach`] waits for one answer: a server that takes the
/// connection and then says nothing is as good as down.
pub const REACH_ANSWER: Duration = Duration::from_secs(10);

/// A cluster through one context. Clones share the client and the watch cache.
#[derive(Clone)]
pub struct Cluster {
    /// The kubeconfig context.
    pub context: String,
    /// The API server's URL, as the context names it.
    pub server: String,
    /// The kubeconfig, as errors name it ([`KubeconfigSource::describe`]).
    kubeconfig: String,
    /// Tries transient failures again ([`crate::retry`]).
    pub(crate) client: kube::Client,
    /// The same connection without retries, for [`Cluster::reach`], which counts its own.
    bare: kube::Client,
    /// Started by the first [`Cluster::watch`] or wait; stopped when the last clone goes.
    cache: Arc<OnceLock<WatchCache>>,
    /// The fresh LIST of VolumeAttachments that concurrent [`Cluster::side`] reads share.
    attachments: Arc<crate::fresh::Shared<VolumeAttachment>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("context", &self.context)
            .finish()
    }
}

pub(crate) fn api_err(
    context: &str,
    action: impl Into<String>,
) -> impl FnOnce(kube::Error) -> KubeError {
    let action = action.into();
    let context = context.to_string();
    move |error| KubeError::Api {
        context,
        action,
        error: Box::new(error),
    }
}

static LIST: std::sync::LazyLock<ListParams> = std::sync::LazyLock::new(ListParams::default);

/// Objects per page of the planner's lists.
const PAGE: u32 = 500;

/// Every object of `api` in pages of `page`, each mapped by `f` as its page arrives
/// ([`Cluster::list_map`]). A continue token that expired (410 Gone, when the server
/// compacted past the list's version) starts the list again, as kubectl does.
async fn list_pages<K, T>(
    api: Api<K>,
    page: u32,
    mut f: impl FnMut(K) -> T,
) -> Result<Vec<T>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(page);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let list = match api.list(&params).await {
            Ok(list) => list,
            Err(e) if token.is_some() && is_status(&e, 410) => {
                out.clear();
                token = None;
                continue;
            }
            Err(e) => return Err(e),
        };
        out.extend(list.items.into_iter().map(&mut f));
        match list.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// A label selector in the API's string form (`a=b,c in (d,e),!f`), through
/// `kube::core::Selector`; None when it is empty (it would select everything) or has an
/// operator the API does not define.
pub(crate) fn selector_string(sel: &LabelSelector) -> Option<String> {
    kube::core::Selector::try_from(sel.clone())
        .ok()
        .filter(|s| !s.selects_all())
        .map(|s| s.to_string())
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl Cluster {
    /// Connects through `context`.
    pub async fn connect(source: &KubeconfigSource, context: &str) -> Result<Self, KubeError> {
        let (bare, server) = source.connection(context).await?;
        Ok(Self {
            context: context.to_string(),
            server,
            kubeconfig: source.describe(),
            client: crate::retry::patient(bare.clone(), context),
            bare,
            cache: Arc::default(),
            attachments: Arc::default(),
        })
    }

    /// Checks that the API server answers at all (`GET /version`, which every
    /// authenticated and anonymous caller may read), before a command starts its work:
    /// a server that is down, a wrong URL or a TLS failure is [`KubeError::Unreachable`]
    /// within seconds (refused or reset connections are tried again while less than 2 s
    /// have passed, at most 3 times; one attempt waits at most [`REACH_ANSWER`]), and
    /// credentials the context's user cannot produce (an exec plugin that fails) are
    /// [`KubeError::Auth`], rather than either surfacing after a read's retries. Any
    /// HTTP answer, even an error, means the server is there.
    pub async fn reach(&self) -> Result<(), KubeError> {
        let started = std::time::Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reason =
                match tokio::time::timeout(REACH_ANSWER, self.bare.apiserver_version()).await {
                    Err(_) => format!("no answer within {} s", REACH_ANSWER.as_secs()),
                    Ok(Err(e)) if crate::auth_failed(&e) => {
                        return Err(KubeError::Auth {
                            context: self.context.clone(),
                            reason: crate::plain(&e),
                        });
                    }
                    Ok(Err(e)) if crate::unanswered(&e) => crate::innermost(&e),
                    Ok(_) => return Ok(()),
                };
            let elapsed = started.elapsed();
            if attempts < 3 && elapsed < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(250) * attempts).await;
                continue;
            }
            return Err(KubeError::Unreachable {
                context: self.context.clone(),
                server: self.server.clone(),
                kubeconfig: self.kubeconfig.clone(),
                reason,
                attempts,
                elapsed,
            });
        }
    }

    fn cache(&self) -> &WatchCache {
        self.cache
            .get_or_init(|| WatchCache::start(self.client.clone(), &self.context))
    }

    /// Starts the shared watches of pods, claims and StatefulSets in the apps'
    /// namespaces, of Deployments where an app is one (and of PVs and VolumeAttachments),
    /// so that their first LIST is done before the first wait needs them. Waits start
    /// what they need themselves; this only moves the cost earlier.
    pub fn watch(&self, apps: &[(String, WorkloadKind)]) {
        let cache = self.cache();
        for (ns, kind) in apps {
            cache.watch_namespace(ns, *kind);
        }
    }

    /// A claim as the watch cache holds it (it may lag the cluster): None when it is not
    /// there or its namespace is not watched (yet).
    pub fn cached_claim(&self, ns: &str, name: &str) -> Option<PersistentVolumeClaim> {
        self.cache.get()?.claim(ns, name)
    }

    /// A PV as the watch cache holds it (it may lag the cluster): None when it is not
    /// there or the cache has not started (yet).
    pub fn cached_volume(&self, name: &str) -> Option<PersistentVolume> {
        self.cache.get()?.volume(name)
    }

    /// The server's gitVersion.
    pub async fn version(&self) -> Result<String, KubeError> {
        let v = self
            .client
            .apiserver_version()
            .await
            .map_err(api_err(&self.context, "read the server version"))?;
        Ok(v.git_version)
    }

    async fn list<K>(&self, api: Api<K>, what: &str) -> Result<Vec<K>, KubeError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.list_map(api, what, |k| k).await
    }

    /// Every object of `api`, each mapped by `f` as its page arrives: pages of
    /// [`PAGE`] objects (`limit` and `continue`, as kubectl reads), so a kind of 5,000
    /// objects is never one body and one vector of whole objects in memory, only what
    /// `f` keeps of them. A transient failure is tried again by the client
    /// (crate::retry); a continue token that expired (410) starts the list again.
    async fn list_map<K, T>(
        &self,
        api: Api<K>,
        what: &str,
        f: impl FnMut(K) -> T,
    ) -> Result<Vec<T>, KubeError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        list_pages(api, PAGE, f)
            .await
            .map_err(api_err(&self.context, format!("list {what}")))
    }

    /// [`Cluster::list_map`] of a kind the cluster may not serve: none when it does not
    /// (404).
    async fn list_served<K>(&self, api: Api<K>, what: &str) -> Result<Vec<K>, KubeError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match list_pages(api, PAGE, |k| k).await {
            Ok(items) => Ok(items),
            Err(e) if is_status(&e, 404) => Ok(Vec::new()),
            Err(e) => Err(api_err(&self.context, format!("list {what}"))(e)),
        }
    }

    fn namespaced<K>(&self, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Everything the planner reads, for the given namespaces (all when empty).
    pub async fn view(&self, namespaces: &[String]) -> Result<ClusterView, KubeError> {
        let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        };
        let mut view = ClusterView {
            context: self.context.clone(),
            version: self.version().await?,
            ..Default::default()
        };
        for ns in scopes {
            // Each page is converted as it comes: only what the planner reads is kept.
            let (sets, deploys, mounted, claims, scalers) = futures::try_join!(
                self.list_map(self.namespaced::<StatefulSet>(ns), "statefulsets", |s| {
                    convert::statefulset(&s)
                }),
                self.list_map(self.namespaced::<Deployment>(ns), "deployments", |d| {
                    convert::deployment(&d)
                }),
                self.list_map(self.namespaced::<Pod>(ns), "pods", |p| {
                    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                    if matches!(phase, Some("Succeeded" | "Failed")) {
                        return Vec::new();
                    }
                    let ns = p.metadata.namespace.clone().unwrap_or_default();
                    convert::mounted(&p)
                        .map(|c| (ns.clone(), c.to_string()))
                        .collect::<Vec<_>>()
                }),
                self.list_map(
                    self.namespaced::<PersistentVolumeClaim>(ns),
                    "persistentvolumeclaims",
                    |c| convert::pvc(&c)
                ),
                self.scalers(ns),
            )?;
            // Other workloads whose next pod would mount a claim.
            let (daemons, cronjobs, jobs) = futures::try_join!(
                self.list_served(self.namespaced::<DaemonSet>(ns), "daemonsets"),
                self.list_served(self.namespaced::<CronJob>(ns), "cronjobs"),
                self.list_served(self.namespaced::<Job>(ns), "jobs"),
            )?;
            let mut templates = |kind: &str, meta: &ObjectMeta, t: Option<&PodTemplateSpec>| {
                let ns = meta.namespace.clone().unwrap_or_default();
                let name = meta.name.as_deref().unwrap_or_default();
                for (_, c) in t.into_iter().flat_map(convert::template_claims) {
                    view.template_claims
                        .entry((ns.clone(), c.to_string()))
                        .or_insert_with(|| format!("{kind} {ns}/{name}"));
                }
            };
            for d in &daemons {
                templates(
                    "DaemonSet",
                    &d.metadata,
                    d.spec.as_ref().map(|s| &s.template),
                );
            }
            // A suspended CronJob or Job makes no pod (the fix the plan names).
            let suspended = |s: Option<bool>| s == Some(true);
            for c in cronjobs
                .iter()
                .filter(|c| !suspended(c.spec.as_ref().and_then(|s| s.suspend)))
            {
                let t = c
                    .spec
                    .as_ref()
                    .and_then(|s| s.job_template.spec.as_ref())
                    .map(|s| &s.template);
                templates("CronJob", &c.metadata, t);
            }
            for j in jobs.iter().filter(|j| {
                !convert::job_finished(j) && !suspended(j.spec.as_ref().and_then(|s| s.suspend))
            }) {
                templates("Job", &j.metadata, j.spec.as_ref().map(|s| &s.template));
            }
            let scaled = |s: &mut baton_core::world::StatefulSet| {
                s.scalers = scalers
                    .get(&(
                        s.kind.as_str().to_string(),
                        s.namespace.clone(),
                        s.name.clone(),
                    ))
                    .cloned()
                    .unwrap_or_default();
            };
            for mut s in sets {
                scaled(&mut s);
                view.statefulsets.push(s);
            }
            // Every Deployment: with volumes an app; without, a group's member (a proxy
            // named by --group or sharing a part-of label).
            for mut d in deploys {
                scaled(&mut d);
                view.deployments.push(d);
            }
            view.claims.extend(claims);
            view.mounted.extend(mounted.into_iter().flatten());
        }
        let (pvs, nodes, classes, fences) = futures::try_join!(
            self.list_map(
                Api::<PersistentVolume>::all(self.client.clone()),
                "persistentvolumes",
                |v| convert::pv(&v)
            ),
            self.list_map(Api::<Node>::all(self.client.clone()), "nodes", |n| {
                convert::node(&n)
            }),
            self.list_map(
                Api::<StorageClass>::all(self.client.clone()),
                "storageclasses",
                |c| convert::storage_class(&c)
            ),
            self.fence_objects(),
        )?;
        view.fences = fences;
        view.volumes = pvs;
        view.nodes = nodes;
        view.storage_classes = classes;
        Ok(view)
    }

    /// HorizontalPodAutoscalers with `minReplicas: 0` (the alpha HPAScaleToZero gate),
    /// by their target's (kind, namespace, name): the only ones that scale a target up
    /// from 0 (with a minimum, the HPA controller leaves a target at 0 alone:
    /// `ScalingDisabled`). A cluster that does not serve autoscaling/v2 has none.
    async fn scalers(
        &self,
        ns: Option<&str>,
    ) -> Result<BTreeMap<(String, String, String), Vec<String>>, KubeError> {
        let api = self.namespaced::<HorizontalPodAutoscaler>(ns);
        let params = ListParams::default();
        let items = match api.list(&params).await {
            Ok(l) => l.items,
            Err(e) if is_status(&e, 404) => Vec::new(),
            Err(e) => return Err(api_err(&self.context, "list horizontalpodautoscalers")(e)),
        };
        let mut out: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        for h in items {
            let Some(spec) = h.spec else { continue };
            if spec.min_replicas == Some(0) {
                out.entry((
                    spec.scale_target_ref.kind.clone(),
                    h.metadata.namespace.clone().unwrap_or_default(),
                    spec.scale_target_ref.name.clone(),
                ))
                .or_default()
                .push(format!(
                    "HorizontalPodAutoscaler {}/{}",
                    h.metadata.namespace.unwrap_or_default(),
                    h.metadata.name.unwrap_or_default()
                ));
            }
        }
        Ok(out)
    }

    /// EC2 instance ids of the nodes (from `spec.providerID`).
    pub async fn node_instances(&self) -> Result<Vec<String>, KubeError> {
        let nodes = self
            .list(Api::<Node>::all(self.client.clone()), "nodes")
            .await?;
        Ok(nodes
            .iter()
            .filter_map(|n| n.spec.as_ref()?.provider_id.as_deref())
            .filter_map(|p| p.rsplit('/').next())
            .filter(|id| id.starts_with("i-"))
            .map(String::from)
            .collect())
    }

    /// The IAM role the EBS CSI driver's controller runs as, from its ServiceAccount's
    /// IRSA annotation ([`EBS_CSI_SERVICE_ACCOUNT`], `eks.amazonaws.com/role-arn`); None
    /// when the ServiceAccount or the annotation is not there (EKS Pod Identity keeps
    /// the role outside the cluster: `--ebs-csi-role` names it then).
    pub async fn ebs_csi_role(&self) -> Result<Option<String>, KubeError> {
        let (ns, name) = EBS_CSI_SERVICE_ACCOUNT;
        let api =
            Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(self.client.clone(), ns);
        let sa = api.get_opt(name).await.map_err(api_err(
            &self.context,
            format!("get ServiceAccount {ns}/{name}"),
        ))?;
        Ok(sa
            .and_then(|s| s.metadata.annotations)
            .and_then(|a| a.get(IRSA_ROLE_ANNOTATION).cloned())
            .filter(|r| !r.is_empty()))
    }

    /// The ServiceAccounts of `namespaces` (every namespace when empty) that name an IAM
    /// role through IRSA (`eks.amazonaws.com/role-arn`), with the token audience their
    /// pods get (`eks.amazonaws.com/audience`, default `sts.amazonaws.com`), sorted.
    pub async fn irsa_service_accounts(
        &self,
        namespaces: &[String],
    ) -> Result<Vec<IrsaServiceAccount>, KubeError> {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let apis: Vec<(String, Api<ServiceAccount>)> = if namespaces.is_empty() {
            vec![("all namespaces".into(), Api::all(self.client.clone()))]
        } else {
            namespaces
                .iter()
                .map(|ns| (ns.clone(), Api::namespaced(self.client.clone(), ns)))
                .collect()
        };
        let mut out = Vec::new();
        for (where_, api) in apis {
            let params = kube::api::ListParams::default();
            let list = api.list(&params).await.map_err(api_err(
                &self.context,
                format!("list ServiceAccounts in {where_}"),
            ))?;
            for sa in list.items {
                let annotations = sa.metadata.annotations.unwrap_or_default();
                let Some(role) = annotations
                    .get(IRSA_ROLE_ANNOTATION)
                    .filter(|r| !r.is_empty())
                else {
                    continue;
                };
                out.push(IrsaServiceAccount {
                    namespace: sa.metadata.namespace.unwrap_or_default(),
                    name: sa.metadata.name.unwrap_or_default(),
                    role: role.clone(),
                    audience: annotations
                        .get(IRSA_AUDIENCE_ANNOTATION)
                        .cloned()
                        .unwrap_or_else(|| "sts.amazonaws.com".into()),
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// A claim, if it exists.
    pub async fn claim(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, KubeError> {
        let api = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns);
        api.get_opt(name)
            .await
            .map_err(api_err(&self.context, format!("get claim {ns}/{name}")))
    }

    /// A StatefulSet as baton sees it (no scalers), if it exists; transient failures are
    /// retried (a read).
    pub async fn statefulset(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<baton_core::world::StatefulSet>, KubeError> {
        let api = Api::<StatefulSet>::namespaced(self.client.clone(), ns);
        let set = api.get_opt(name).await.map_err(api_err(
            &self.context,
            format!("get StatefulSet {ns}/{name}"),
        ))?;
        Ok(set.as_ref().map(convert::statefulset))
    }

    /// A workload of `kind` as baton sees it (no scalers), if it exists; transient
    /// failures are retried (a read).
    pub async fn workload(
        &self,
        kind: WorkloadKind,
        ns: &str,
        name: &str,
    ) -> Result<Option<baton_core::world::StatefulSet>, KubeError> {
        match kind {
            WorkloadKind::StatefulSet => self.statefulset(ns, name).await,
            WorkloadKind::Deployment => {
                let api = Api::<Deployment>::namespaced(self.client.clone(), ns);
                let d = api.get_opt(name).await.map_err(api_err(
                    &self.context,
                    format!("get Deployment {ns}/{name}"),
                ))?;
                Ok(d.as_ref().map(convert::deployment))
            }
            WorkloadKind::Claim => Ok(None),
        }
    }

    /// A PV, if it exists.
    pub async fn volume(&self, name: &str) -> Result<Option<PersistentVolume>, KubeError> {
        let api = Api::<PersistentVolume>::all(self.client.clone());
        api.get_opt(name)
            .await
            .map_err(api_err(&self.context, format!("get PV {name}")))
    }

    /// One app's side, read fresh: its StatefulSet, its pods, the attachments of its PVs,
    /// and the named claims and PVs.
    ///
    /// Claims and PVs are read by name and pods through the StatefulSet's selector, so the
    /// cost does not grow with the cluster (a 1000-volume cluster made whole-kind LISTs
    /// the largest load on both sides). A pod relabelled out of its set is no longer
    /// counted; the volume it may still hold is, through its attachment and EC2's state.
    /// VolumeAttachments cannot be selected by PV (no labels, no field selector), so they
    /// are LISTed whole, one LIST shared by the reads that asked before it was sent
    /// ([`crate::fresh`]); a wait's safety-net re-read takes them from the watch cache.
    pub async fn side(
        &self,
        ns: &str,
        kind: WorkloadKind,
        sts: &str,
        claims: &[String],
        pvs: &[String],
    ) -> Result<Side, KubeError> {
        self.read_side(ns, kind, sts, claims, pvs, None).await
    }

    /// [`Cluster::side`], with the attachments taken from `cached` when given (the
    /// watch cache's, already narrowed to the app's PVs) instead of a LIST.
    async fn read_side(
        &self,
        ns: &str,
        kind: WorkloadKind,
        sts: &str,
        claims: &[String],
        pvs: &[String],
        cached: Option<Vec<VolumeAttachment>>,
    ) -> Result<Side, KubeError> {
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let vas: Api<VolumeAttachment> = Api::all(self.client.clone());
        let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let pv_api: Api<PersistentVolume> = Api::all(self.client.clone());
        let ctx = &self.context;
        // Each read tries a transient failure again itself (crate::retry), so one failed
        // call of several does not cost the caller a whole observation.
        let ((set, pod_list), va_list, claim_objects, pv_objects) = futures::try_join!(
            async {
                let (set, deploy) = match kind {
                    WorkloadKind::StatefulSet => (
                        sets.get_opt(sts)
                            .await
                            .map_err(api_err(ctx, format!("get StatefulSet {ns}/{sts}")))?,
                        None,
                    ),
                    WorkloadKind::Deployment => (
                        None,
                        deploys
                            .get_opt(sts)
                            .await
                            .map_err(api_err(ctx, format!("get Deployment {ns}/{sts}")))?,
                    ),
                    WorkloadKind::Claim => (None, None),
                };
                // Without a workload (or a selector) only ordinal names tell its pods:
                // all of the namespace's are read.
                let selector = match (&set, &deploy) {
                    (Some(s), _) => s.spec.as_ref().map(|x| &x.selector),
                    (_, Some(d)) => d.spec.as_ref().map(|x| &x.selector),
                    _ => None,
                };
                let params = match selector.and_then(selector_string) {
                    Some(sel) => ListParams::default().labels(&sel),
                    None => ListParams::default(),
                };
                let pod_list = pods
                    .list(&params)
                    .await
                    .map_err(api_err(ctx, format!("list pods in {ns}")))?;
                Ok(((set, deploy), pod_list.items))
            },
            async {
                match cached {
                    Some(items) => Ok(Arc::new(items)),
                    // Cluster-wide: one LIST serves every app that asked before it was
                    // sent (crate::fresh), rather than one LIST each.
                    None => self
                        .attachments
                        .get(|| async { vas.list(&LIST).await.map(|l| l.items) })
                        .await
                        .map_err(api_err(ctx, "list volumeattachments")),
                }
            },
            futures::future::try_join_all(claims.iter().map(|name| {
                let claims_api = &claims_api;
                async move {
                    claims_api
                        .get_opt(name)
                        .await
                        .map_err(api_err(ctx, format!("get claim {ns}/{name}")))
                }
            })),
            futures::future::try_join_all(pvs.iter().map(|name| {
                let pv_api = &pv_api;
                async move {
                    pv_api
                        .get_opt(name)
                        .await
                        .map_err(api_err(ctx, format!("get PV {name}")))
                }
            })),
        )?;
        let (set, deploy) = set;
        let workload = match (&set, &deploy) {
            (Some(s), _) => Some(convert::Workload::StatefulSet(s)),
            (_, Some(d)) => Some(convert::Workload::Deployment(d)),
            _ if kind == WorkloadKind::Claim => Some(convert::Workload::Claim),
            _ => None,
        };
        Ok(convert::side(
            sts,
            workload,
            &pod_list,
            va_list.iter(),
            claim_objects.iter().flatten(),
            pv_objects.iter().flatten(),
            claims,
            pvs,
        ))
    }

    /// Sends one write built by [`crate::request`] and returns the object the API
    /// server answered with (None for a delete). A create that finds the object there
    /// already returns that object, and a delete that finds it gone succeeds
    /// ([`Tolerate`]), so a write repeated after a crash is harmless.
    pub async fn send(&self, m: &Mutation) -> Result<Option<Value>, KubeError> {
        let body = match &m.body {
            Some(b) => serde_json::to_vec(b).expect("JSON serializes"),
            None => Vec::new(),
        };
        let req = http::Request::builder()
            .method(m.method.as_str())
            .uri(&m.path)
            .header(http::header::CONTENT_TYPE, m.method.content_type())
            .body(body)
            .expect("a request of a valid path and method builds");
        match self.client.request::<Value>(req).await {
            Ok(_) if m.method == Method::Delete => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(e) if m.tolerate == Tolerate::NotFound && is_status(&e, 404) => Ok(None),
            Err(e) if m.tolerate == Tolerate::AlreadyExists && is_status(&e, 409) => {
                let path = m.created_path().unwrap_or_else(|| m.path.clone());
                let get = http::Request::get(&path)
                    .body(Vec::new())
                    .expect("a GET of a valid path builds");
                self.client
                    .request::<Value>(get)
                    .await
                    .map(Some)
                    .map_err(api_err(&self.context, format!("read back {path}")))
            }
            Err(e) => Err(api_err(&self.context, m.what.clone())(e)),
        }
    }

    /// Waits until `done(side)` holds on the shared watch cache, looking again whenever
    /// it changes (no LIST, no watch of its own), and with a fresh read as a safety net
    /// for a watch that went quiet: after 5 s, then at doubling gaps up to 30 s (a long
    /// wait on a busy cluster would otherwise re-read every app every 5 s). Returns the side that satisfied it — from
    /// the cache, so it may lag the cluster: `done` must be false on the world as it was
    /// before the write this wait follows (see [`crate::cache`]).
    pub async fn wait_for(
        &self,
        (ns, kind, sts): (&str, WorkloadKind, &str),
        claims: &[String],
        pvs: &[String],
        timeout: Duration,
        done: impl Fn(&Side) -> bool,
    ) -> Result<Side, KubeError> {
        const RECHECK: Duration = Duration::from_secs(5);
        const RECHECK_MAX: Duration = Duration::from_secs(30);
        let mut gap = RECHECK;
        let cache = self.cache();
        cache.watch_namespace(ns, kind);
        let mut changes = cache.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut recheck = tokio::time::Instant::now() + RECHECK;
        // Most wake-ups are other apps' changes: the side is converted and tested again
        // only when one of this app's objects changed.
        let mut stamp = None;
        loop {
            // Seen before reading: a change applied after this wakes the next select.
            changes.borrow_and_update();
            if let Some(side) = cache.side_if_changed(ns, kind, sts, claims, pvs, &mut stamp)
                && done(&side)
            {
                return Ok(side);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(KubeError::Timeout {
                    context: self.context.clone(),
                    what: format!("{ns}/{sts}"),
                    after: timeout,
                    seen: attach_errors(&cache.attachments(pvs).unwrap_or_default()),
                });
            }
            let timer = tokio::time::sleep_until(recheck.min(deadline));
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The cache is gone (cannot happen while we hold it): the timer.
                        tokio::time::sleep_until(recheck.min(deadline)).await;
                    }
                }
                () = timer => {}
            }
            if tokio::time::Instant::now() >= recheck {
                gap = (gap * 2).min(RECHECK_MAX);
                recheck = tokio::time::Instant::now() + gap;
                // Attachments from the cache: they cannot be read by PV, and EC2's
                // volume state, read fresh, is what a handover waits on last.
                let side = self
                    .read_side(ns, kind, sts, claims, pvs, cache.attachments(pvs))
                    .await?;
                if done(&side) {
                    return Ok(side);
                }
            }
        }
    }
}

/// The attach and detach errors the external-attacher reported on these attachments, as
/// `; VolumeAttachment NAME (PV P): attach error: MESSAGE` (empty when there are none):
/// why a wait for pods to run or for volumes to be let go did not end.
fn attach_errors(vas: &[k8s_openapi::api::storage::v1::VolumeAttachment]) -> String {
    let mut out = String::new();
    for va in vas {
        let Some(status) = &va.status else { continue };
        let pv = va
            .spec
            .source
            .persistent_volume_name
            .as_deref()
            .unwrap_or("?");
        let name = va.metadata.name.as_deref().unwrap_or("?");
        for (what, e) in [
            ("attach", &status.attach_error),
            ("detach", &status.detach_error),
        ] {
            if let Some(m) = e.as_ref().and_then(|e| e.message.as_deref()) {
                out.push_str(&format!(
                    "; VolumeAttachment {name} (PV {pv}): {what} error: {m}"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An API server of five PVs that serves them in pages, and answers 410 Gone the
    /// first time the token of the third page is used (its version was compacted).
    #[derive(Default, Clone)]
    struct Paged {
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl tower_service::Service<http::Request<kube::client::Body>> for Paged {
        type Response = http::Response<kube::client::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
            let query = req.uri().query().unwrap_or_default().to_string();
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(String::from)
            };
            let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
            let from: usize = param("continue").map_or(0, |t| t.parse().unwrap());
            let mut seen = self.seen.lock().unwrap();
            seen.push(query.clone());
            let first_use_of_page_three = from == 4
                && !seen[..seen.len() - 1]
                    .iter()
                    .any(|q| q.contains("continue=4"));
            let (status, body) = if first_use_of_page_three {
                (
                    410,
                    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410, "message": "The provided continue parameter is too old" }),
                )
            } else {
                let to = if limit == 0 { 5 } else { (from + limit).min(5) };
                let items: Vec<Value> = (from..to)
                    .map(|i| json!({ "metadata": { "name": format!("pv-{i}") } }))
                    .collect();
                let more = if to < 5 {
                    to.to_string()
                } else {
                    String::new()
                };
                (
                    200,
                    json!({ "kind": "PersistentVolumeList", "apiVersion": "v1", "metadata": { "continue": more }, "items": items }),
                )
            };
            std::future::ready(Ok(http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(body.to_string().into_bytes()))
                .unwrap()))
        }
    }

    #[tokio::test]
    async fn a_list_is_read_in_pages_and_started_again_when_its_token_expired() {
        let server = Paged::default();
        let client = kube::Client::new(server.clone(), "default");
        let api = Api::<PersistentVolume>::all(client);
        let names = list_pages(api, 2, |pv: PersistentVolume| pv.metadata.name.unwrap())
            .await
            .unwrap();
        assert_eq!(names, ["pv-0", "pv-1", "pv-2", "pv-3", "pv-4"]);
        let seen = server.seen.lock().unwrap().clone();
        assert!(seen.iter().all(|q| q.contains("limit=2")), "{seen:?}");
        // Two pages, the expired token of the third, then all three from the start.
        assert_eq!(seen.len(), 6, "{seen:?}");
    }

    #[test]
    fn a_selector_reads_as_the_api_string_and_an_empty_one_as_none() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": { "app": "db", "tier": "data" },
            "matchExpressions": [
                { "key": "zone", "operator": "In", "values": ["a", "b"] },
                { "key": "canary", "operator": "NotIn", "values": ["yes"] },
                { "key": "owned", "operator": "Exists" },
                { "key": "legacy", "operator": "DoesNotExist" }
            ]
        }))
        .unwrap();
        assert_eq!(
            selector_string(&sel).as_deref(),
            Some("app=db,tier=data,zone in (a,b),canary notin (yes),owned,!legacy")
        );
        assert_eq!(selector_string(&LabelSelector::default()), None);
        let odd: LabelSelector = serde_json::from_value(json!({
            "matchExpressions": [{ "key": "k", "operator": "Near", "values": ["x"] }]
        }))
        .unwrap();
        assert_eq!(
            selector_string(&odd),
            None,
            "unknown operators read everything"
        );
    }
}
