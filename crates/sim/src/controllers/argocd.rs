//! Argo CD's application controller, for `argoproj.io/v1alpha1` Applications in the
//! namespace it is installed in (`argocd`; apps in other namespaces are not modelled),
//! while the Application CRD is served. Modelled on Argo CD 3.x
//! (`controller/appcontroller.go`, `autoSync`, `selfHealRemainingBackoff`).
//!
//! **Managed resources** are the live Deployments and StatefulSets that carry the
//! application's tracking: with `application.resourceTrackingMethod` of the `argocd-cm`
//! ConfigMap at `annotation` (3.x's default) or `annotation+label`, the annotation
//! `argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<namespace>/<name>` naming the
//! object itself (a copied annotation naming another object does not count); at `label`
//! (2.x's default), the label `app.kubernetes.io/instance: <app>`. Desired state: the
//! bed's stand-in repository, [`super::gitops`].
//!
//! Each refresh (on any change of the Application, of a workload or of `argocd-cm`, as
//! its live-state cache watches them) writes `status.resources[]` (`Synced`/`OutOfSync`
//! and health per resource), `status.sync` (status, revision), `status.health`. With
//! `spec.syncPolicy.automated` present and not `enabled: false` (the `enabled` field is
//! Argo CD ≥ 3.1's; unset means enabled) an OutOfSync application is synced:
//! - to a revision it has not synced yet, at once (a new commit), selfHeal or not;
//! - to the revision it last synced, only with `selfHeal: true`, after the self-heal
//!   back-off: none after a sync that was not a self-heal, then
//!   [`Delays::argocd_self_heal_backoff`](super::Delays) (2 s) ×3 per further attempt, at
//!   most 300 s, counted from the last operation's end and forgotten after 330 s
//!   (`--self-heal-backoff-timeout-seconds`, `-factor`, `-cap-seconds`,
//!   `-cooldown-seconds`). Without selfHeal: "Skipping auto-sync: most recent sync already
//!   to <revision>" — the drift is only reported.
//!
//! A sync re-applies the desired replicas of the OutOfSync resources and records
//! `status.operationState` (`initiatedBy.automated`, `autoHealAttemptsCount`, `syncResult`)
//! and `status.history`, with the `OperationStarted`/`OperationCompleted` Events. When
//! an automated Application first sees resources (they join its stand-in repository), it
//! records the sync that deployed them (an `operationState` for that revision), so the
//! first drift after is a self-heal, as on a cluster whose Application deployed them. The annotation
//! `argocd.argoproj.io/skip-reconcile: "true"` (Argo CD ≥ 2.7) stops all processing of an
//! Application: no status update, no sync. Deleting an Application with the finalizer
//! `resources-finalizer.argocd.argoproj.io` (or its `/background` form) deletes its
//! managed resources first (cascading delete). Not modelled: sync windows, hooks, waves,
//! prune, retries, manual syncs, AppProjects, multiple sources.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{ARGO_APPLICATIONS, CONFIGMAPS, DEPLOYMENTS, STATEFULSETS};
use super::gitops::{self, Managed};
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

/// The namespace Argo CD is installed in (its control-plane namespace).
pub(crate) const NAMESPACE: &str = "argocd";
/// The tracking annotation (`annotation` tracking).
pub const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// The tracking label (`label` tracking).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Stops all processing of an Application.
pub const SKIP_RECONCILE: &str = "argocd.argoproj.io/skip-reconcile";
/// The cascading-delete finalizers.
const FINALIZERS: [&str; 2] = [
    "resources-finalizer.argocd.argoproj.io",
    "resources-finalizer.argocd.argoproj.io/background",
];
/// The self-heal back-off's factor and cap, and how long an app stays synced before its
/// attempts count is forgotten (Argo CD 3.x's flag defaults).
const BACKOFF_FACTOR: u32 = 3;
const BACKOFF_CAP: Duration = Duration::from_secs(300);
const BACKOFF_COOLDOWN: Duration = Duration::from_secs(330);
const COMPONENT: &str = "argocd-application-controller";

#[derive(Default)]
pub(crate) struct Applications {
    /// When each Application's (by uid) last operation finished (status timestamps have
    /// one-second resolution, too coarse for the short back-offs tests use).
    finished: Mutex<HashMap<String, Instant>>,
}

impl Controller for Applications {
    fn name(&self) -> &'static str {
        "argocd-application-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("argoproj.io", "applications"),
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("", "configmaps"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            if !ctx.serves(ARGO_APPLICATIONS) {
                return None;
            }
            let method = ctx
                .get(CONFIGMAPS, NAMESPACE, "argocd-cm")
                .and_then(|cm| {
                    cm["data"]["application.resourceTrackingMethod"]
                        .as_str()
                        .map(String::from)
                })
                .unwrap_or_else(|| "annotation".into());
            ctx.list(ARGO_APPLICATIONS, Some(NAMESPACE))
                .iter()
                .filter(|app| app["metadata"]["annotations"][SKIP_RECONCILE] != "true")
                .filter_map(|app| self.sync(ctx, app, &method))
                .min()
        })
    }
}

/// Whether a workload carries an application's tracking.
fn tracks(method: &str, app: &str, kind: &str, o: &Value) -> bool {
    if method == "label" {
        return o["metadata"]["labels"][INSTANCE_LABEL] == app;
    }
    let want = format!("{app}:apps/{kind}:{}/{}", meta::namespace(o), meta::name(o));
    o["metadata"]["annotations"][TRACKING_ID] == want.as_str()
}

impl Applications {
    /// One refresh (and automated sync) of an Application; when to look again.
    fn sync(&self, ctx: &Ctx, app: &Value, method: &str) -> Option<Instant> {
        let ns = meta::namespace(app);
        let name = meta::name(app);
        let managed = gitops::managed(ctx, |kind, o| tracks(method, name, kind, o));
        if meta::is_deleting(app) {
            self.finalize(ctx, app, &managed);
            return None;
        }
        let (git, grew) = gitops::record(ctx, ARGO_APPLICATIONS, app, &managed);
        let revision = gitops::revision(&git);
        let mut status = app["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let automated = &app["spec"]["syncPolicy"]["automated"];
        let auto = automated.is_object() && automated["enabled"] != false;
        let drifted = drift(&git, &managed);
        let mut wake = None;
        let first_sight = status["operationState"].is_null() || grew;
        if auto && first_sight && drifted.is_empty() {
            // The sync that deployed what it finds for the first time (module docs).
            let resources = managed.iter().map(|m| (m, "created")).collect::<Vec<_>>();
            status["operationState"] = operation(app, &revision, 0, &resources);
            push_history(&mut status, app, &revision);
            self.lock()
                .insert(meta::uid(app).to_string(), Instant::now());
        } else if auto && !drifted.is_empty() {
            let op = &status["operationState"];
            let attempted = op["syncResult"]["revision"] == revision.as_str();
            let mut attempts = op["operation"]["sync"]["autoHealAttemptsCount"]
                .as_u64()
                .unwrap_or(0) as u32;
            let since = self.since_finished(app);
            if since > BACKOFF_COOLDOWN {
                attempts = 0;
            }
            let go = if !attempted {
                attempts = 0;
                true
            } else if automated["selfHeal"] != true {
                false
            } else {
                let delay = backoff(ctx.delays.argocd_self_heal_backoff, attempts);
                if delay > since {
                    wake = Some(Instant::now() + (delay - since));
                    false
                } else {
                    attempts += 1;
                    true
                }
            };
            if go {
                self.apply(ctx, app, &mut status, &git, &managed, &revision, attempts);
            }
        }
        // Compare again after a sync: what it applied is now live.
        let managed = if status["operationState"] != app["status"]["operationState"] {
            gitops::managed(ctx, |kind, o| tracks(method, name, kind, o))
        } else {
            managed
        };
        compare(ctx, app, &mut status, &git, &managed, &revision);
        if status != app["status"] {
            status["reconciledAt"] = json!(meta::now());
            let _ = ctx.patch(
                ARGO_APPLICATIONS,
                ns,
                name,
                &json!({ "status": status }),
                Part::Main,
            );
        }
        wake
    }

    /// A sync of the OutOfSync resources to the desired state, recorded as an operation.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        ctx: &Ctx,
        app: &Value,
        status: &mut Value,
        git: &BTreeMap<String, i64>,
        managed: &[Managed],
        revision: &str,
        attempts: u32,
    ) {
        let short = &revision[..7];
        ctx.event(
            app,
            false,
            "OperationStarted",
            &format!("Initiated automated sync to '{short}'"),
            COMPONENT,
        );
        let mut synced = Vec::new();
        for m in managed {
            let Some(&want) = git.get(&m.key) else {
                continue;
            };
            if gitops::replicas(&m.live) == want {
                continue;
            }
            let k = if m.kind == "Deployment" {
                DEPLOYMENTS
            } else {
                STATEFULSETS
            };
            let patch = json!({ "spec": { "replicas": want } });
            let ok = ctx
                .patch(
                    k,
                    meta::namespace(&m.live),
                    meta::name(&m.live),
                    &patch,
                    Part::Main,
                )
                .is_ok();
            synced.push((m, if ok { "configured" } else { "failed" }));
        }
        let now = Instant::now();
        status["operationState"] = operation(app, revision, attempts, &synced);
        push_history(status, app, revision);
        self.lock().insert(meta::uid(app).to_string(), now);
        ctx.event(
            app,
            false,
            "OperationCompleted",
            &format!("Sync operation to {revision} succeeded"),
            COMPONENT,
        );
    }

    /// Cascading delete: the managed resources, then the finalizer.
    fn finalize(&self, ctx: &Ctx, app: &Value, managed: &[Managed]) {
        let fins = meta::finalizers(app);
        if !fins.iter().any(|f| FINALIZERS.contains(&f.as_str())) {
            return;
        }
        for m in managed {
            let k = if m.kind == "Deployment" {
                DEPLOYMENTS
            } else {
                STATEFULSETS
            };
            let _ = ctx.delete(k, meta::namespace(&m.live), meta::name(&m.live), false);
        }
        let keep: Vec<&String> = fins
            .iter()
            .filter(|f| !FINALIZERS.contains(&f.as_str()))
            .collect();
        let _ = ctx.patch(
            ARGO_APPLICATIONS,
            meta::namespace(app),
            meta::name(app),
            &json!({ "metadata": { "finalizers": keep } }),
            Part::Main,
        );
        self.lock().remove(meta::uid(app));
    }

    /// How long ago the Application's last operation finished (long ago when none did).
    fn since_finished(&self, app: &Value) -> Duration {
        if let Some(at) = self.lock().get(meta::uid(app)) {
            return at.elapsed();
        }
        app["status"]["operationState"]["finishedAt"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .and_then(|t| Duration::try_from(jiff::Timestamp::now() - t).ok())
            .unwrap_or(Duration::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.finished.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The self-heal back-off after `attempts` self-heals: none before the first, then
/// `initial` ×3 per attempt, capped (`wait.Backoff.Step` taken `attempts` times).
fn backoff(initial: Duration, attempts: u32) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let factor = BACKOFF_FACTOR.saturating_pow(attempts - 1);
    initial.saturating_mul(factor).min(BACKOFF_CAP)
}

/// The managed resources whose replicas differ from the desired state's.
fn drift<'a>(git: &BTreeMap<String, i64>, managed: &'a [Managed]) -> Vec<&'a Managed> {
    managed
        .iter()
        .filter(|m| {
            git.get(&m.key)
                .is_some_and(|&want| gitops::replicas(&m.live) != want)
        })
        .collect()
}

/// `status.resources`, `status.sync`, `status.health`, with `ResourceUpdated` Events when
/// the sync or health status changes.
fn compare(
    ctx: &Ctx,
    app: &Value,
    status: &mut Value,
    git: &BTreeMap<String, i64>,
    managed: &[Managed],
    revision: &str,
) {
    let rank = |h: &str| match h {
        "Missing" => 4,
        "Degraded" => 3,
        "Suspended" => 2,
        "Progressing" => 1,
        _ => 0,
    };
    let mut resources = Vec::new();
    let mut out_of_sync = false;
    let mut app_health = "Healthy";
    for (key, &want) in git {
        let mut parts = key.splitn(4, '/');
        let (_, kind, ns, name) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let live = managed.iter().find(|m| &m.key == key);
        let (sync, health, message) = match live {
            Some(m) => {
                let (h, msg) = gitops::health(m.kind, &m.live);
                let s = if gitops::replicas(&m.live) == want {
                    "Synced"
                } else {
                    "OutOfSync"
                };
                (s, h, msg)
            }
            None => ("OutOfSync", "Missing", String::new()),
        };
        out_of_sync |= sync == "OutOfSync";
        if rank(health) > rank(app_health) {
            app_health = health;
        }
        let mut health_obj = json!({ "status": health });
        if !message.is_empty() {
            health_obj["message"] = json!(message);
        }
        resources.push(json!({
            "group": "apps", "version": "v1", "kind": kind, "namespace": ns, "name": name,
            "status": sync, "health": health_obj,
        }));
    }
    let sync_status = if out_of_sync { "OutOfSync" } else { "Synced" };
    let before_sync = app["status"]["sync"]["status"]
        .as_str()
        .unwrap_or("Unknown");
    if before_sync != sync_status {
        ctx.event(
            app,
            false,
            "ResourceUpdated",
            &format!("Updated sync status: {before_sync} -> {sync_status}"),
            COMPONENT,
        );
    }
    let before_health = app["status"]["health"]["status"].as_str().unwrap_or("");
    if !before_health.is_empty() && before_health != app_health {
        ctx.event(
            app,
            false,
            "ResourceUpdated",
            &format!("Updated health status: {before_health} -> {app_health}"),
            COMPONENT,
        );
    }
    status["resources"] = json!(resources);
    status["sync"] = json!({
        "status": sync_status,
        "revision": revision,
        "comparedTo": { "source": app["spec"]["source"], "destination": app["spec"]["destination"] },
    });
    status["health"] = json!({ "status": app_health });
    status["sourceType"] = json!("Directory");
}

/// An automated sync operation, finished.
fn operation(app: &Value, revision: &str, attempts: u32, resources: &[(&Managed, &str)]) -> Value {
    let now = meta::now();
    let results: Vec<Value> = resources
        .iter()
        .map(|(m, what)| {
            json!({
                "group": "apps", "version": "v1", "kind": m.kind,
                "namespace": meta::namespace(&m.live), "name": meta::name(&m.live),
                "status": if *what == "failed" { "SyncFailed" } else { "Synced" },
                "message": format!("{}.apps/{} {what}", m.kind.to_lowercase(), meta::name(&m.live)),
                "hookPhase": "Running", "syncPhase": "Sync",
            })
        })
        .collect();
    let failed = resources.iter().any(|(_, w)| *w == "failed");
    let mut sync = json!({ "revision": revision, "syncStrategy": { "hook": {} } });
    if attempts > 0 {
        sync["autoHealAttemptsCount"] = json!(attempts);
        sync["resources"] = json!(
            resources
                .iter()
                .map(
                    |(m, _)| json!({ "group": "apps", "kind": m.kind, "name": meta::name(&m.live) })
                )
                .collect::<Vec<_>>()
        );
    }
    json!({
        "operation": { "sync": sync, "initiatedBy": { "automated": true }, "retry": { "limit": 5 } },
        "phase": if failed { "Failed" } else { "Succeeded" },
        "message": if failed { "one or more objects failed to apply" } else { "successfully synced (all tasks run)" },
        "startedAt": now, "finishedAt": now,
        "syncResult": { "revision": revision, "source": app["spec"]["source"], "resources": results },
    })
}

/// A `status.history` entry for a sync (at most `spec.revisionHistoryLimit`, 10).
fn push_history(status: &mut Value, app: &Value, revision: &str) {
    let mut history = status["history"].as_array().cloned().unwrap_or_default();
    let id = history
        .last()
        .and_then(|h| h["id"].as_i64())
        .map_or(0, |i| i + 1);
    history.push(json!({
        "revision": revision, "deployedAt": meta::now(), "deployStartedAt": meta::now(),
        "id": id, "source": app["spec"]["source"], "initiatedBy": { "automated": true },
    }));
    let limit = app["spec"]["revisionHistoryLimit"].as_u64().unwrap_or(10) as usize;
    let skip = history.len().saturating_sub(limit);
    status["history"] = json!(history.into_iter().skip(skip).collect::<Vec<_>>());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_heal_back_off_is_none_then_two_six_eighteen_seconds_capped() {
        let b = Duration::from_secs(2);
        assert_eq!(backoff(b, 0), Duration::ZERO);
        assert_eq!(backoff(b, 1), Duration::from_secs(2));
        assert_eq!(backoff(b, 2), Duration::from_secs(6));
        assert_eq!(backoff(b, 3), Duration::from_secs(18));
        assert_eq!(backoff(b, 9), Duration::from_secs(300));
    }

    #[test]
    fn annotation_tracking_names_the_object_itself() {
        let o = json!({ "metadata": { "name": "db", "namespace": "catalog",
            "annotations": { TRACKING_ID: "catalog:apps/StatefulSet:catalog/db" },
            "labels": { INSTANCE_LABEL: "other" } } });
        assert!(tracks("annotation", "catalog", "StatefulSet", &o));
        assert!(!tracks("annotation", "catalog", "Deployment", &o));
        assert!(!tracks("label", "catalog", "StatefulSet", &o));
        assert!(tracks("label", "other", "StatefulSet", &o));
    }
}
