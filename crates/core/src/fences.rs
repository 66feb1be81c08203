//! What could scale a stopped blue workload back up inside its window, and how baton
//! pauses it ("fences" it) first.
//!
//! A move stops blue's workload by scaling it to 0. Whatever keeps a desired replica
//! count of its own undoes that within seconds:
//! - an Argo CD `Application` with automated sync re-applies the repository's replicas
//!   (self-heal at once; without self-heal, on the next commit). Fence: its
//!   `spec.syncPolicy.automated` block is removed (what the runbook calls "disable
//!   auto-sync"; Argo CD has no per-resource pause). Where an app-of-apps parent manages
//!   the Application itself, that parent must be fenced too (it is an Application).
//! - a Flux `Kustomization` re-applies its manifests on every interval, and a
//!   `HelmRelease` with drift detection corrects drift. Fence: `spec.suspend: true`.
//! - a KEDA `ScaledObject` scales its target up from 0 while a trigger is active.
//!   Fence: the annotation `autoscaling.keda.sh/paused-replicas: "0"`.
//!
//! A HorizontalPodAutoscaler needs no fence: the HPA controller does not scale a target
//! whose replicas are 0 (`ScalingActive=False`, reason `ScalingDisabled`; Kubernetes'
//! `pkg/controller/podautoscaler/horizontal.go`), unless its `minReplicas` is 0 (the
//! alpha `HPAScaleToZero` gate), which the planner warns about.
//!
//! Each fence records what it changed in the annotation [`ORIGINAL`] on the object, as
//! a JSON value (the first record counts), so rollback restores it exactly and `retire`
//! can list what commit kept.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The annotation holding the value a fence replaced (JSON; `null`: there was none).
pub const ORIGINAL: &str = "baton.io/fence-original";

/// KEDA's annotation that holds a ScaledObject's target at a replica count.
pub const KEDA_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";
/// KEDA's annotation that pauses a ScaledObject at its target's current count.
pub const KEDA_PAUSED: &str = "autoscaling.keda.sh/paused";

/// A kind of object that can scale a workload back up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FenceKind {
    /// Argo CD `argoproj.io/v1alpha1` Application.
    Application,
    /// Flux `kustomize.toolkit.fluxcd.io/v1` Kustomization.
    Kustomization,
    /// Flux `helm.toolkit.fluxcd.io/v2` HelmRelease.
    HelmRelease,
    /// KEDA `keda.sh/v1alpha1` ScaledObject.
    ScaledObject,
}

impl FenceKind {
    /// Every kind, in the order the planner reads them.
    pub const ALL: [FenceKind; 4] = [
        Self::Application,
        Self::Kustomization,
        Self::HelmRelease,
        Self::ScaledObject,
    ];

    /// API group.
    pub fn group(self) -> &'static str {
        match self {
            Self::Application => "argoproj.io",
            Self::Kustomization => "kustomize.toolkit.fluxcd.io",
            Self::HelmRelease => "helm.toolkit.fluxcd.io",
            Self::ScaledObject => "keda.sh",
        }
    }

    /// API version (without the group): the current one.
    pub fn version(self) -> &'static str {
        self.versions()[0]
    }

    /// The API versions baton reads it at, newest first: an estate on an older Flux
    /// serves only an older one (Flux 2.0–2.2: HelmRelease `v2beta1`/`v2beta2`,
    /// Kustomization `v1` since 2.0 and `v1beta2` before). The fenced field (`suspend`)
    /// is the same in each.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Self::Application | Self::ScaledObject => &["v1alpha1"],
            Self::Kustomization => &["v1", "v1beta2"],
            Self::HelmRelease => &["v2", "v2beta2", "v2beta1"],
        }
    }

    /// Resource (plural).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Application => "applications",
            Self::Kustomization => "kustomizations",
            Self::HelmRelease => "helmreleases",
            Self::ScaledObject => "scaledobjects",
        }
    }

    /// Kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Application => "Application",
            Self::Kustomization => "Kustomization",
            Self::HelmRelease => "HelmRelease",
            Self::ScaledObject => "ScaledObject",
        }
    }

    /// The field a fence changes, for people.
    pub fn field(self) -> &'static str {
        match self {
            Self::Application => "spec.syncPolicy.automated",
            Self::Kustomization | Self::HelmRelease => "spec.suspend",
            Self::ScaledObject => "metadata.annotations[autoscaling.keda.sh/paused-replicas]",
        }
    }

    /// Whether its pause itself scales the target to 0 (KEDA's `paused-replicas: "0"`):
    /// pausing it stops blue, so it happens where blue would be stopped.
    pub fn stops_target(self) -> bool {
        self == Self::ScaledObject
    }

    /// The value of the fenced field on `obj` (`null` when unset).
    pub fn current(self, obj: &Value) -> Value {
        match self {
            Self::Application => obj["spec"]["syncPolicy"]["automated"].clone(),
            Self::Kustomization | Self::HelmRelease => obj["spec"]["suspend"].clone(),
            Self::ScaledObject => obj["metadata"]["annotations"][KEDA_PAUSED_REPLICAS].clone(),
        }
    }

    /// Whether `obj` can scale its workloads now (a fence is needed).
    pub fn active(self, obj: &Value) -> bool {
        match self {
            // Argo CD 3.x also reads `automated.enabled: false` as off.
            Self::Application => {
                let a = &obj["spec"]["syncPolicy"]["automated"];
                a.is_object() && a["enabled"] != json!(false)
            }
            Self::Kustomization | Self::HelmRelease => obj["spec"]["suspend"] != json!(true),
            Self::ScaledObject => {
                let notes = &obj["metadata"]["annotations"];
                notes[KEDA_PAUSED_REPLICAS] != json!("0") && notes[KEDA_PAUSED] != json!("true")
            }
        }
    }

    /// The merge patch that fences `obj`, recording the value it replaces — unless a
    /// record exists already (a repeated pause keeps the first).
    pub fn pause(self, obj: &Value) -> Value {
        let recorded = obj["metadata"]["annotations"][ORIGINAL].is_string();
        let mut patch = match self {
            Self::Application => json!({ "spec": { "syncPolicy": { "automated": null } } }),
            Self::Kustomization | Self::HelmRelease => json!({ "spec": { "suspend": true } }),
            Self::ScaledObject => {
                json!({ "metadata": { "annotations": { KEDA_PAUSED_REPLICAS: "0" } } })
            }
        };
        if !recorded {
            patch["metadata"]["annotations"][ORIGINAL] =
                Value::String(self.current(obj).to_string());
        }
        patch
    }

    /// The merge patch that puts back `original` (the recorded value) and removes the
    /// record.
    pub fn restore(self, original: &Value) -> Value {
        let mut patch = match self {
            Self::Application => json!({ "spec": { "syncPolicy": { "automated": original } } }),
            Self::Kustomization | Self::HelmRelease => {
                json!({ "spec": { "suspend": original } })
            }
            Self::ScaledObject => {
                json!({ "metadata": { "annotations": { KEDA_PAUSED_REPLICAS: original } } })
            }
        };
        patch["metadata"]["annotations"][ORIGINAL] = Value::Null;
        patch
    }
}

impl std::fmt::Display for FenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// One object a move fences.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// Its kind.
    pub kind: FenceKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// It also fences other apps of the plan (one Application managing several
    /// StatefulSets): an app's rollback does not resume it; the rollback of all of them
    /// does, once every one has let go (`baton rollback`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// The API version it was read at, when not its kind's current one (an older Flux's
    /// HelmRelease `v2beta1`): its reads and patches use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Fence {
    /// `Kind namespace/name`: the key the observations use.
    pub fn key(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// The API version its reads and patches use.
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or(self.kind.version())
    }
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// A fence's object as last read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceSeen {
    /// It can scale its workloads now.
    pub active: bool,
    /// The value baton recorded when it fenced it (None: no record, baton did not).
    pub original: Option<Value>,
}

impl FenceSeen {
    /// What `obj` (a fence's object as read) shows.
    pub fn of(kind: FenceKind, obj: &Value) -> Self {
        Self {
            active: kind.active(obj),
            original: obj["metadata"]["annotations"][ORIGINAL]
                .as_str()
                .map(|s| serde_json::from_str(s).unwrap_or(Value::Null)),
        }
    }
}

/// An object that can scale workloads, as the planner reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceObject {
    /// Which object.
    pub fence: Fence,
    /// It can scale its workloads now.
    pub active: bool,
    /// The workloads it scales or re-applies, as (kind, namespace, name): an Argo CD
    /// Application's `status.resources`, a ScaledObject's `scaleTargetRef`. Flux objects
    /// list none: their workloads name them in labels.
    pub targets: Vec<(String, String, String)>,
}

impl FenceObject {
    /// Reads one object of `kind`.
    pub fn of(kind: FenceKind, obj: &Value) -> Self {
        let namespace = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let targets = match kind {
            FenceKind::Application => obj["status"]["resources"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| {
                            Some((
                                r["kind"].as_str()?.to_string(),
                                r["namespace"].as_str().unwrap_or_default().to_string(),
                                r["name"].as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            FenceKind::ScaledObject => {
                let t = &obj["spec"]["scaleTargetRef"];
                t["name"]
                    .as_str()
                    .map(|n| {
                        vec![(
                            t["kind"].as_str().unwrap_or("Deployment").to_string(),
                            namespace.clone(),
                            n.to_string(),
                        )]
                    })
                    .unwrap_or_default()
            }
            FenceKind::Kustomization | FenceKind::HelmRelease => Vec::new(),
        };
        Self {
            fence: Fence {
                kind,
                namespace,
                name: obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                shared: false,
                // `group/version` as the object was served.
                version: obj["apiVersion"]
                    .as_str()
                    .and_then(|v| v.rsplit_once('/'))
                    .map(|(_, v)| v)
                    .filter(|v| *v != kind.version())
                    .map(str::to_string),
            },
            active: kind.active(obj),
            targets,
        }
    }

    /// Whether it scales or re-applies workload `kind` `namespace/name`, whose labels are
    /// `labels` (Flux's ownership labels name their Kustomization or HelmRelease).
    pub fn manages(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        let by_label = |prefix: &str| {
            labels.get(&format!("{prefix}/name")) == Some(&self.fence.name)
                && labels.get(&format!("{prefix}/namespace")) == Some(&self.fence.namespace)
        };
        match self.fence.kind {
            FenceKind::Kustomization => by_label("kustomize.toolkit.fluxcd.io"),
            FenceKind::HelmRelease => by_label("helm.toolkit.fluxcd.io"),
            FenceKind::Application | FenceKind::ScaledObject => self
                .targets
                .iter()
                .any(|(k, ns, n)| k == kind && ns == namespace && n == name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_records_what_it_replaces_once_and_a_restore_puts_it_back() {
        let automated = json!({ "prune": true, "selfHeal": true });
        let app = json!({ "metadata": { "name": "catalog", "namespace": "argocd" },
                          "spec": { "syncPolicy": { "automated": automated } } });
        let k = FenceKind::Application;
        assert!(k.active(&app));
        let patch = k.pause(&app);
        assert_eq!(patch["spec"]["syncPolicy"]["automated"], Value::Null);
        let recorded = patch["metadata"]["annotations"][ORIGINAL].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(recorded).unwrap(), automated);

        // Paused (the patch applied): no longer active, the record is read back.
        let paused = json!({ "metadata": { "annotations": { ORIGINAL: recorded } },
                             "spec": { "syncPolicy": {} } });
        let seen = FenceSeen::of(k, &paused);
        assert!(!seen.active);
        assert_eq!(seen.original.as_ref(), Some(&automated));
        // A second pause keeps the first record.
        assert!(k.pause(&paused)["metadata"].get("annotations").is_none());

        let restore = k.restore(&automated);
        assert_eq!(restore["spec"]["syncPolicy"]["automated"], automated);
        assert_eq!(restore["metadata"]["annotations"][ORIGINAL], Value::Null);
    }

    #[test]
    fn each_kind_reads_active_as_its_controller_does() {
        let k = FenceKind::Kustomization;
        assert!(k.active(&json!({ "spec": {} })));
        assert!(!k.active(&json!({ "spec": { "suspend": true } })));
        let s = FenceKind::ScaledObject;
        assert!(s.active(&json!({ "metadata": {} })));
        assert!(
            !s.active(&json!({ "metadata": { "annotations": { KEDA_PAUSED_REPLICAS: "0" } } }))
        );
        assert!(!s.active(&json!({ "metadata": { "annotations": { KEDA_PAUSED: "true" } } })));
        // Paused at 2 would scale a stopped target back to 2.
        assert!(s.active(&json!({ "metadata": { "annotations": { KEDA_PAUSED_REPLICAS: "2" } } })));
        let a = FenceKind::Application;
        assert!(!a.active(&json!({ "spec": { "syncPolicy": {} } })));
        assert!(
            !a.active(&json!({ "spec": { "syncPolicy": { "automated": { "enabled": false } } } }))
        );
        // A Flux pause restored to "unset" removes the field.
        assert_eq!(k.restore(&Value::Null)["spec"]["suspend"], Value::Null);
    }

    #[test]
    fn objects_name_the_workloads_they_scale() {
        let so = FenceObject::of(
            FenceKind::ScaledObject,
            &json!({ "metadata": { "name": "rw", "namespace": "jobs" },
                     "spec": { "scaleTargetRef": { "name": "report-worker" } } }),
        );
        let none = Default::default();
        assert!(so.manages("Deployment", "jobs", "report-worker", &none));
        assert!(!so.manages("StatefulSet", "jobs", "report-worker", &none));
        let ks = FenceObject::of(
            FenceKind::Kustomization,
            &json!({ "metadata": { "name": "ledger", "namespace": "flux-system" } }),
        );
        let labels = [
            (
                "kustomize.toolkit.fluxcd.io/name".to_string(),
                "ledger".to_string(),
            ),
            (
                "kustomize.toolkit.fluxcd.io/namespace".to_string(),
                "flux-system".to_string(),
            ),
        ]
        .into();
        assert!(ks.manages("StatefulSet", "ledger", "ledger-db", &labels));
        assert!(!ks.manages("StatefulSet", "ledger", "ledger-db", &none));
    }
}
