//! What `baton preflight` reads from a cluster beyond the planner's view: the apiVersions
//! blue's objects were last applied with, blue's Helm v3 releases, green's add-ons, CSI
//! drivers and kubelets, blue's disruption budgets and who else manages its
//! StatefulSets. A kind the cluster does not serve (404) reads as none.

use std::collections::BTreeMap;

use baton_core::preflight::{
    ApiSource, ApiUse, Kubelet, Manager, ManagerKind, Pdb, Workload, allowed_disruptions,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};

use crate::cluster::{Cluster, api_err, selector_string};
use crate::helm;
use crate::{KubeError, helm::RELEASE_TYPE};

/// The annotation `kubectl apply` stores the applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The kinds whose last-applied apiVersion preflight reads: every kind of the removals
/// table that an app or add-on is applied as, at the version clusters serve today
/// (group, version, kind, plural).
pub const LAST_APPLIED_KINDS: &[(&str, &str, &str, &str)] = &[
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
    ),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses"),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
    ),
];

fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Cluster {
    async fn list_or_none<K>(
        &self,
        api: Api<K>,
        params: &ListParams,
        what: &str,
    ) -> Result<Vec<K>, KubeError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.list(params).await {
            Ok(l) => Ok(l.items),
            Err(e) if not_served(&e) => Ok(Vec::new()),
            Err(e) => Err(api_err(&self.context, format!("list {what}"))(e)),
        }
    }

    /// The apiVersion and kind each object of [`LAST_APPLIED_KINDS`] was last applied
    /// with (objects never applied with kubectl have no record and are skipped).
    pub async fn last_applied_api_uses(&self) -> Result<Vec<ApiUse>, KubeError> {
        let lists = futures::future::try_join_all(LAST_APPLIED_KINDS.iter().map(
            |(group, version, kind, plural)| async move {
                let ar = ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk(group, version, kind),
                    plural,
                );
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                self.list_or_none(api, &ListParams::default(), plural).await
            },
        ))
        .await?;
        let mut out = Vec::new();
        for o in lists.into_iter().flatten() {
            let Some(text) = o
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LAST_APPLIED))
            else {
                continue;
            };
            let Ok(applied) = serde_json::from_str::<serde_json::Value>(text) else {
                continue;
            };
            if let (Some(v), Some(k)) = (applied["apiVersion"].as_str(), applied["kind"].as_str()) {
                out.push(ApiUse {
                    api_version: v.to_string(),
                    kind: k.to_string(),
                    namespace: o.metadata.namespace.clone().unwrap_or_default(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                    source: ApiSource::LastApplied,
                });
            }
        }
        Ok(out)
    }

    /// The apiVersions in the manifests of each Helm v3 release's current revision (the
    /// deployed one, else the newest). Release Secrets are read by Helm's `owner=helm`
    /// label and never logged. A record that does not decode is an error naming it.
    pub async fn helm_api_uses(&self) -> Result<Vec<ApiUse>, KubeError> {
        let api: Api<Secret> = Api::all(self.client.clone());
        let secrets = self
            .list_or_none(
                api,
                &ListParams::default().labels("owner=helm"),
                "Helm release secrets",
            )
            .await?;
        // (namespace, release) → (deployed, revision, decoded release)
        let mut current: BTreeMap<(String, String), (bool, u32, helm::Release)> = BTreeMap::new();
        for s in secrets {
            if s.type_.as_deref() != Some(RELEASE_TYPE) {
                continue;
            }
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let name = s.metadata.name.clone().unwrap_or_default();
            let Some(data) = s.data.as_ref().and_then(|d| d.get("release")) else {
                continue;
            };
            let release = helm::decode_release(&data.0).map_err(|e| KubeError::Decode {
                context: self.context.clone(),
                what: format!("Helm release Secret {ns}/{name}"),
                reason: e.to_string(),
            })?;
            let deployed = release.info.status == "deployed";
            let key = (ns, release.name.clone());
            let better = current
                .get(&key)
                .is_none_or(|(d, rev, _)| (deployed, release.version) > (*d, *rev));
            if better {
                current.insert(key, (deployed, release.version, release));
            }
        }
        let mut out = Vec::new();
        for ((ns, _), (_, _, r)) in current {
            let source = ApiSource::Helm {
                release: format!("{ns}/{}", r.name),
                revision: r.version,
            };
            let uses =
                helm::api_uses(&r.manifest, &ns, &source).map_err(|reason| KubeError::Decode {
                    context: self.context.clone(),
                    what: format!(
                        "the manifest of Helm release {ns}/{} revision {}",
                        r.name, r.version
                    ),
                    reason,
                })?;
            out.extend(uses);
        }
        Ok(out)
    }

    /// kube-system's Deployments and DaemonSets with their desired and ready pods.
    pub async fn addons(&self) -> Result<Vec<Workload>, KubeError> {
        const NS: &str = "kube-system";
        let all = ListParams::default();
        let (deps, dss) = futures::try_join!(
            self.list_or_none(
                Api::<Deployment>::namespaced(self.client.clone(), NS),
                &all,
                "deployments in kube-system"
            ),
            self.list_or_none(
                Api::<DaemonSet>::namespaced(self.client.clone(), NS),
                &all,
                "daemonsets in kube-system"
            ),
        )?;
        let mut out: Vec<Workload> = deps
            .iter()
            .map(|d| Workload {
                kind: "Deployment".into(),
                namespace: NS.into(),
                name: d.metadata.name.clone().unwrap_or_default(),
                desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                ready: d
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0),
            })
            .collect();
        out.extend(dss.iter().map(|d| {
            let st = d.status.as_ref();
            Workload {
                kind: "DaemonSet".into(),
                namespace: NS.into(),
                name: d.metadata.name.clone().unwrap_or_default(),
                desired: st.map_or(0, |s| s.desired_number_scheduled),
                ready: st.map_or(0, |s| s.number_ready),
            }
        }));
        Ok(out)
    }

    /// The names of the cluster's CSIDriver objects.
    pub async fn csi_drivers(&self) -> Result<Vec<String>, KubeError> {
        let list = self
            .list_or_none(
                Api::<CSIDriver>::all(self.client.clone()),
                &ListParams::default(),
                "csidrivers",
            )
            .await?;
        Ok(list.into_iter().filter_map(|d| d.metadata.name).collect())
    }

    /// Each node's kubelet version (nodes that report none are left out).
    pub async fn kubelets(&self) -> Result<Vec<Kubelet>, KubeError> {
        let nodes = self
            .list_or_none(
                Api::<Node>::all(self.client.clone()),
                &ListParams::default(),
                "nodes",
            )
            .await?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                let version = n.status?.node_info?.kubelet_version;
                (!version.is_empty()).then(|| Kubelet {
                    node: n.metadata.name.unwrap_or_default(),
                    version,
                })
            })
            .collect())
    }

    /// Every PodDisruptionBudget, with the pods it selects and the evictions it allows,
    /// computed from its spec and those pods as the disruption controller does (a status
    /// can lag or be missing).
    pub async fn disruption_budgets(&self) -> Result<Vec<Pdb>, KubeError> {
        let pdbs = self
            .list_or_none(
                Api::<PodDisruptionBudget>::all(self.client.clone()),
                &ListParams::default(),
                "poddisruptionbudgets",
            )
            .await?;
        let mut out = Vec::new();
        for p in pdbs {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let Some(spec) = p.spec else { continue };
            let Some(sel) = spec.selector.as_ref().and_then(selector_string) else {
                continue;
            };
            let api = Api::<Pod>::namespaced(self.client.clone(), &ns);
            let params = ListParams::default().labels(&sel);
            let pods = api
                .list(&params)
                .await
                .map_err(api_err(&self.context, format!("list pods in {ns}")))?
                .items;
            let healthy = pods
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count() as i32;
            let n = pods.len() as i32;
            let text = |v: &Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>| {
                v.as_ref().map(|v| match v {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
                        i.to_string()
                    }
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                        s.clone()
                    }
                })
            };
            let (min, max) = (text(&spec.min_available), text(&spec.max_unavailable));
            out.push(Pdb {
                namespace: ns,
                name: p.metadata.name.unwrap_or_default(),
                pods: n,
                healthy,
                allowed: allowed_disruptions(min.as_deref(), max.as_deref(), n, healthy),
            });
        }
        Ok(out)
    }

    /// Who else manages each StatefulSet: a controlling owner (an operator's custom
    /// resource) or GitOps tracking (Argo CD, Flux).
    pub async fn statefulset_managers(&self) -> Result<Vec<Manager>, KubeError> {
        let sets = self
            .list_or_none(
                Api::<StatefulSet>::all(self.client.clone()),
                &ListParams::default(),
                "statefulsets",
            )
            .await?;
        let mut out = Vec::new();
        for s in sets {
            let key = format!(
                "{}/{}",
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default()
            );
            for o in s.metadata.owner_references.iter().flatten() {
                if o.controller == Some(true) {
                    out.push(Manager {
                        statefulset: key.clone(),
                        by: format!("{} {} ({})", o.kind, o.name, o.api_version),
                        kind: ManagerKind::Operator,
                    });
                }
            }
            let labels = s.metadata.labels.clone().unwrap_or_default();
            let annotations = s.metadata.annotations.clone().unwrap_or_default();
            let gitops = [
                (
                    labels.get("argocd.argoproj.io/instance"),
                    "Argo CD application",
                ),
                (
                    annotations
                        .get("argocd.argoproj.io/tracking-id")
                        .and_then(|_| labels.get("app.kubernetes.io/instance").or(Some(&key))),
                    "Argo CD application",
                ),
                (
                    labels.get("kustomize.toolkit.fluxcd.io/name"),
                    "Flux Kustomization",
                ),
                (
                    labels.get("helm.toolkit.fluxcd.io/name"),
                    "Flux HelmRelease",
                ),
            ];
            if let Some((name, tool)) = gitops.iter().find_map(|(v, t)| v.map(|v| (v, t))) {
                out.push(Manager {
                    statefulset: key.clone(),
                    by: format!("{tool} {name}"),
                    kind: ManagerKind::GitOps,
                });
            }
        }
        Ok(out)
    }
}
