//! Flux's kustomize-controller and helm-controller, for `kustomize.toolkit.fluxcd.io/v1`
//! Kustomizations and `helm.toolkit.fluxcd.io/v2` HelmReleases, each while its CRD is
//! served. Managed workloads are the Deployments and StatefulSets labelled
//! `kustomize.toolkit.fluxcd.io/name` + `kustomize.toolkit.fluxcd.io/namespace` (resp.
//! `helm.toolkit.fluxcd.io/name` + `/namespace`), the labels Flux puts on what it applies;
//! desired state: the bed's stand-in repository, [`super::gitops`].
//!
//! Both reconcile an object when they first see it, when its spec (generation) changes or
//! `reconcile.fluxcd.io/requestedAt` asks, and every `spec.interval` — not when a managed
//! object changes (they watch their own kinds and sources, not what they applied), so
//! drift is corrected at the next interval. `spec.suspend: true` stops every reconcile
//! ("Reconciliation is suspended for this object"; status untouched).
//! - A Kustomization applies its desired state on every reconcile (server-side apply of
//!   every object: Flux's FAQ, "kustomize-controller corrects drift via a constant,
//!   per-object Apply"), so drifted replicas are reset each interval; it writes `Ready`
//!   (`ReconciliationSucceeded`, "Applied revision: …"), `lastAppliedRevision`,
//!   `lastAttemptedRevision`, `observedGeneration` and the `inventory`, and a
//!   `Progressing` Event listing what it changed.
//! - A HelmRelease compares the cluster with its release only with
//!   `spec.driftDetection.mode` `warn` or `enabled` (default `disabled`): both emit the
//!   Warning `DriftDetected` ("Cluster state of release <ns>/<name>.v<n> has drifted from
//!   the desired state: …"), and only `enabled` corrects it (`DriftCorrected`)
//!   (helm-controller `internal/reconcile/atomic_release.go`, `correct_cluster_drift.go`).
//!   A new revision of the stand-in repository is an upgrade, applied whatever the mode.
//!   It writes `Ready` and `Released` (`InstallSucceeded`/`UpgradeSucceeded`), `history`.
//!
//! Both put the finalizer `finalizers.fluxcd.io`; deleting a Kustomization with
//! `spec.prune: true` deletes its managed workloads, deleting a HelmRelease uninstalls its
//! release (deletes them), unless suspended. Not modelled: sources and their polling
//! (a change of the stand-in repository is seen at the next interval), health checks and
//! `wait`, dependencies, retries, remediation, drift `ignore` rules, other kinds.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{DEPLOYMENTS, FLUX_HELMRELEASES, FLUX_KUSTOMIZATIONS, Kind, STATEFULSETS};
use super::gitops::{self, Managed, set_condition};
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

/// Flux's finalizer.
const FINALIZER: &str = "finalizers.fluxcd.io";
/// The annotation `flux reconcile` sets to ask for a reconcile now.
const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Kustomize,
    Helm,
}

impl Flavor {
    fn kind(self) -> Kind {
        match self {
            Self::Kustomize => FLUX_KUSTOMIZATIONS,
            Self::Helm => FLUX_HELMRELEASES,
        }
    }

    /// The label prefix Flux marks applied objects with.
    fn label(self) -> &'static str {
        match self {
            Self::Kustomize => "kustomize.toolkit.fluxcd.io",
            Self::Helm => "helm.toolkit.fluxcd.io",
        }
    }

    fn component(self) -> &'static str {
        match self {
            Self::Kustomize => "kustomize-controller",
            Self::Helm => "helm-controller",
        }
    }
}

/// The kustomize-controller.
#[derive(Default)]
pub(crate) struct Kustomizations {
    due: Mutex<HashMap<String, Instant>>,
}

/// The helm-controller.
#[derive(Default)]
pub(crate) struct HelmReleases {
    due: Mutex<HashMap<String, Instant>>,
}

impl Controller for Kustomizations {
    fn name(&self) -> &'static str {
        "kustomize-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[("kustomize.toolkit.fluxcd.io", "kustomizations")]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move { pass(ctx, Flavor::Kustomize, &self.due) })
    }
}

impl Controller for HelmReleases {
    fn name(&self) -> &'static str {
        "helm-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[("helm.toolkit.fluxcd.io", "helmreleases")]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move { pass(ctx, Flavor::Helm, &self.due) })
    }
}

fn pass(ctx: &Ctx, flavor: Flavor, due: &Mutex<HashMap<String, Instant>>) -> Option<Instant> {
    let k = flavor.kind();
    if !ctx.serves(k) {
        return None;
    }
    let objs = ctx.list(k, None);
    let now = Instant::now();
    let mut next: Option<Instant> = None;
    let mut due = due.lock().unwrap_or_else(|p| p.into_inner());
    due.retain(|uid, _| objs.iter().any(|o| meta::uid(o) == uid));
    for o in objs {
        let managed = managed(ctx, flavor, &o);
        if meta::is_deleting(&o) {
            finalize(ctx, flavor, &o, &managed);
            continue;
        }
        if !meta::finalizers(&o).iter().any(|f| f == FINALIZER) {
            let mut fins = meta::finalizers(&o);
            fins.push(FINALIZER.into());
            let patch = json!({ "metadata": { "finalizers": fins } });
            let _ = ctx.patch(k, meta::namespace(&o), meta::name(&o), &patch, Part::Main);
        }
        if o["spec"]["suspend"] == true {
            continue;
        }
        let interval = o["spec"]["interval"]
            .as_str()
            .and_then(gitops::go_duration)
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(600));
        let asked = o["metadata"]["generation"] != o["status"]["observedGeneration"]
            || o["metadata"]["annotations"][REQUESTED_AT] != o["status"]["lastHandledReconcileAt"];
        let at = due.entry(meta::uid(&o).to_string()).or_insert(now);
        if asked || *at <= now {
            *at = now + interval;
            match flavor {
                Flavor::Kustomize => kustomize(ctx, &o, &managed),
                Flavor::Helm => helm(ctx, &o, &managed),
            }
        }
        next = Some(next.map_or(*at, |n| n.min(*at)));
    }
    next
}

/// The workloads carrying an object's Flux labels.
fn managed(ctx: &Ctx, flavor: Flavor, o: &Value) -> Vec<Managed> {
    let (name, ns) = (meta::name(o), meta::namespace(o));
    let (name_label, ns_label) = (
        format!("{}/name", flavor.label()),
        format!("{}/namespace", flavor.label()),
    );
    gitops::managed(ctx, |_, w| {
        let labels = &w["metadata"]["labels"];
        labels[name_label.as_str()] == name && labels[ns_label.as_str()] == ns
    })
}

/// Applies the desired replicas of `which`; the change-set lines (`Kind/ns/name
/// configured`).
fn apply(ctx: &Ctx, git: &BTreeMap<String, i64>, which: &[&Managed]) -> Vec<String> {
    let mut lines = Vec::new();
    for m in which {
        let Some(&want) = git.get(&m.key) else {
            continue;
        };
        let k = if m.kind == "Deployment" {
            DEPLOYMENTS
        } else {
            STATEFULSETS
        };
        let (ns, name) = (meta::namespace(&m.live), meta::name(&m.live));
        let patch = json!({ "spec": { "replicas": want } });
        if ctx.patch(k, ns, name, &patch, Part::Main).is_ok() {
            lines.push(format!("{}/{ns}/{name} configured", m.kind));
        }
    }
    lines
}

fn drifted<'a>(git: &BTreeMap<String, i64>, managed: &'a [Managed]) -> Vec<&'a Managed> {
    managed
        .iter()
        .filter(|m| {
            git.get(&m.key)
                .is_some_and(|&w| gitops::replicas(&m.live) != w)
        })
        .collect()
}

/// One kustomize-controller reconcile: apply everything, record the status.
fn kustomize(ctx: &Ctx, o: &Value, managed: &[Managed]) {
    let (git, _) = gitops::record(ctx, FLUX_KUSTOMIZATIONS, o, managed);
    let revision = format!("main@sha1:{}", gitops::revision(&git));
    let lines = apply(ctx, &git, &drifted(&git, managed));
    if !lines.is_empty() {
        ctx.event(
            o,
            false,
            "Progressing",
            &lines.join("\n"),
            "kustomize-controller",
        );
    }
    let mut status = o["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let was_ready = gitops::condition(&conds, "Ready") == Some("True");
    set_condition(
        &mut conds,
        "Ready",
        "True",
        "ReconciliationSucceeded",
        &format!("Applied revision: {revision}"),
    );
    if !was_ready {
        let interval = o["spec"]["interval"].as_str().unwrap_or("10m");
        ctx.event(
            o,
            false,
            "ReconciliationSucceeded",
            &format!("Reconciliation finished, next run in {interval}"),
            "kustomize-controller",
        );
    }
    status["conditions"] = json!(conds);
    status["lastAppliedRevision"] = json!(revision);
    status["lastAttemptedRevision"] = json!(revision);
    status["inventory"] = json!({ "entries": managed.iter().map(|m| json!({
        "id": format!("{}_{}_apps_{}", meta::namespace(&m.live), meta::name(&m.live), m.kind),
        "v": "v1",
    })).collect::<Vec<_>>() });
    write(ctx, FLUX_KUSTOMIZATIONS, o, status);
}

/// One helm-controller reconcile: an upgrade for a new revision, else drift detection
/// as `spec.driftDetection.mode` says.
fn helm(ctx: &Ctx, o: &Value, managed: &[Managed]) {
    let (git, _) = gitops::record(ctx, FLUX_HELMRELEASES, o, managed);
    let digest = format!("sha256:{}", gitops::revision(&git));
    let mut status = o["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let release_ns = o["spec"]["targetNamespace"]
        .as_str()
        .unwrap_or(meta::namespace(o))
        .to_string();
    let release = o["spec"]["releaseName"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| match o["spec"]["targetNamespace"].as_str() {
            Some(t) => format!("{t}-{}", meta::name(o)),
            None => meta::name(o).to_string(),
        });
    let chart = o["spec"]["chart"]["spec"]["chart"]
        .as_str()
        .unwrap_or(meta::name(o));
    let chart_version = o["spec"]["chart"]["spec"]["version"]
        .as_str()
        .unwrap_or("0.1.0");
    let mut history = status["history"].as_array().cloned().unwrap_or_default();
    let version = history
        .first()
        .and_then(|h| h["version"].as_i64())
        .unwrap_or(0);
    let full = |v: i64| format!("{release_ns}/{release}.v{v}");
    let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let drift = drifted(&git, managed);
    if version == 0 || status["lastAttemptedConfigDigest"] != digest.as_str() {
        // Installed (what the bed finds deployed), or upgraded to a new revision.
        let v = version + 1;
        apply(ctx, &git, &drift);
        let (reason, what) = if version == 0 {
            ("InstallSucceeded", "install")
        } else {
            ("UpgradeSucceeded", "upgrade")
        };
        let msg = format!(
            "Helm {what} succeeded for release {} with chart {chart}@{chart_version}",
            full(v)
        );
        set_condition(&mut conds, "Ready", "True", reason, &msg);
        set_condition(&mut conds, "Released", "True", reason, &msg);
        ctx.event(o, false, reason, &msg, "helm-controller");
        history.insert(
            0,
            json!({
                "name": release, "namespace": release_ns, "version": v, "status": "deployed",
                "chartName": chart, "chartVersion": chart_version, "configDigest": digest,
                "firstDeployed": meta::now(), "lastDeployed": meta::now(),
            }),
        );
        history.truncate(5);
        status["history"] = json!(history);
        status["lastAttemptedConfigDigest"] = json!(digest);
    } else if !drift.is_empty() {
        let mode = o["spec"]["driftDetection"]["mode"]
            .as_str()
            .unwrap_or("disabled");
        if mode == "warn" || mode == "enabled" {
            let summary: Vec<String> = drift
                .iter()
                .map(|m| {
                    format!(
                        "{}/{}/{} changed (0 additions, 1 changes, 0 removals)",
                        m.kind,
                        meta::namespace(&m.live),
                        meta::name(&m.live)
                    )
                })
                .collect();
            ctx.event(
                o,
                true,
                "DriftDetected",
                &format!(
                    "Cluster state of release {} has drifted from the desired state:\n{}",
                    full(version),
                    summary.join("\n")
                ),
                "helm-controller",
            );
        }
        if mode == "enabled" {
            let lines = apply(ctx, &git, &drift);
            ctx.event(
                o,
                false,
                "DriftCorrected",
                &format!(
                    "Cluster state of release {} has been corrected:\n{}",
                    full(version),
                    lines.join("\n")
                ),
                "helm-controller",
            );
        }
    }
    status["conditions"] = json!(conds);
    status["lastAttemptedRevision"] = json!(chart_version);
    status["lastAttemptedGeneration"] = o["metadata"]["generation"].clone();
    status["storageNamespace"] = json!(release_ns);
    write(ctx, FLUX_HELMRELEASES, o, status);
}

/// Writes the status when it changed (with `observedGeneration` and the handled
/// reconcile request).
fn write(ctx: &Ctx, k: Kind, o: &Value, mut status: Value) {
    status["observedGeneration"] = o["metadata"]["generation"].clone();
    if let Some(at) = o["metadata"]["annotations"][REQUESTED_AT].as_str() {
        status["lastHandledReconcileAt"] = json!(at);
    }
    if status == o["status"] {
        return;
    }
    let _ = ctx.patch(
        k,
        meta::namespace(o),
        meta::name(o),
        &json!({ "status": status }),
        Part::Status,
    );
}

/// Deletion: prune (a Kustomization with `spec.prune`) or uninstall (a HelmRelease),
/// unless suspended; then the finalizer goes.
fn finalize(ctx: &Ctx, flavor: Flavor, o: &Value, managed: &[Managed]) {
    let fins = meta::finalizers(o);
    if !fins.iter().any(|f| f == FINALIZER) {
        return;
    }
    let suspended = o["spec"]["suspend"] == true;
    let removes = match flavor {
        Flavor::Kustomize => o["spec"]["prune"] == true,
        Flavor::Helm => true,
    };
    if removes && !suspended {
        for m in managed {
            let k = if m.kind == "Deployment" {
                DEPLOYMENTS
            } else {
                STATEFULSETS
            };
            let _ = ctx.delete(k, meta::namespace(&m.live), meta::name(&m.live), false);
        }
        ctx.event(
            o,
            false,
            "Progressing",
            &managed
                .iter()
                .map(|m| {
                    format!(
                        "{}/{}/{} deleted",
                        m.kind,
                        meta::namespace(&m.live),
                        meta::name(&m.live)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            flavor.component(),
        );
    }
    let keep: Vec<String> = fins.into_iter().filter(|f| f != FINALIZER).collect();
    let _ = ctx.patch(
        flavor.kind(),
        meta::namespace(o),
        meta::name(o),
        &json!({ "metadata": { "finalizers": keep } }),
        Part::Main,
    );
}
