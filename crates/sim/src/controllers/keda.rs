//! KEDA's operator, for `keda.sh/v1alpha1` ScaledObjects while their CRD is served.
//! Modelled on KEDA 2.x (`controllers/keda/scaledobject_controller.go`,
//! `pkg/scaling/executor/scale_scaledobjects.go`, `apis/keda/v1alpha1/scaledobject_types.go`).
//!
//! A ScaledObject gets the finalizer `finalizer.keda.sh`, the label
//! `scaledobject.keda.sh/name`, `status.originalReplicaCount` and `scaleTargetKind`, and an
//! HPA `keda-hpa-<name>` (owned by it; `spec.advanced.horizontalPodAutoscalerConfig.name`
//! renames it) that scales the target (`scaleTargetRef`: `name`, `kind` default
//! `Deployment`, `apiVersion` default `apps/v1`) between `max(minReplicaCount, 1)` and
//! `maxReplicaCount` (default 100) on one External metric per trigger. Every
//! `pollingInterval` (default 30 s) KEDA asks its triggers whether they are active and
//! scales the target itself where the HPA cannot: 0 → `max(minReplicaCount, 1)` when a
//! trigger is active, down to 0 (`minReplicaCount` default 0) once no trigger has been
//! active for `cooldownPeriod` (default 300 s, from `status.lastActiveTime`), up to
//! `minReplicaCount` when below it. A trigger that errs makes no scale-down: `Ready=False`
//! `TriggerError`. Conditions `Ready`, `Active` (`ScalerActive`/`ScalerNotActive`),
//! `Fallback`, `Paused`.
//!
//! **Pausing** (`NeedToBePausedByAnnotation`): `autoscaling.keda.sh/paused-replicas: "N"`
//! scales the target to N (`status.pausedReplicaCount`), then stops the scale loop and
//! deletes the HPA (`Paused=True` `ScaledObjectPaused`); while paused, a target moved off N
//! is put back to N. `autoscaling.keda.sh/paused: "true"` (KEDA ≥ 2.13; a value that is
//! not a boolean pauses too) stops the loop and deletes the HPA with the target left where
//! it is. Removing the annotation resumes: `Paused=False` `ScaledObjectUnpaused`, the HPA
//! made again, the loop restarted. Deleting a ScaledObject removes its HPA (owner
//! reference) and, with `spec.advanced.restoreToOriginalReplicaCount`, puts the target
//! back to `status.originalReplicaCount`.
//!
//! **Triggers in the bed.** No event source is reachable, so a trigger's metric is read
//! from the ConfigMap [`METRICS`] in the ScaledObject's namespace, the bed's stand-in for
//! what the trigger's endpoint would answer. Modelled type: `metrics-api` (its endpoint
//! returns JSON; the value is at `metadata.valueLocation`): the ConfigMap's key
//! `valueLocation` holds the number; the trigger is active when it is above
//! `activationTargetValue` (default 0). A missing ConfigMap or key, a value that is not a
//! number, or another trigger type is a trigger error. Not modelled: other scalers,
//! `idleReplicaCount`, `fallback`, scaling modifiers, `paused-scale-in/out`,
//! ScaledJobs, TriggerAuthentications, and KEDA's metrics adapter (so the HPA's External
//! metrics fail as without an adapter: the HPA keeps the count within its bounds only).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{CONFIGMAPS, HPAS, KEDA_SCALEDOBJECTS, controller_ref};
use super::gitops::{condition, set_condition};
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

/// The ConfigMap holding the bed's trigger metrics (key: the trigger's `valueLocation`).
pub const METRICS: &str = "baton-sim-metrics";
/// Pauses at N replicas.
pub const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";
/// Pauses where the target is.
pub const PAUSED: &str = "autoscaling.keda.sh/paused";
const FINALIZER: &str = "finalizer.keda.sh";
const NAME_LABEL: &str = "scaledobject.keda.sh/name";
const COMPONENT: &str = "keda-operator";
const READY_MESSAGE: &str = "ScaledObject is defined correctly and is ready for scaling";

#[derive(Default)]
pub(crate) struct ScaledObjects {
    /// When each ScaledObject's (by uid) scale loop polls next.
    polls: Mutex<HashMap<String, Instant>>,
}

impl Controller for ScaledObjects {
    fn name(&self) -> &'static str {
        "keda-operator"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("keda.sh", "scaledobjects"),
            ("autoscaling", "horizontalpodautoscalers"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            if !ctx.serves(KEDA_SCALEDOBJECTS) {
                return None;
            }
            let sos = ctx.list(KEDA_SCALEDOBJECTS, None);
            self.lock()
                .retain(|uid, _| sos.iter().any(|s| meta::uid(s) == uid));
            sos.iter().filter_map(|so| self.sync(ctx, so)).min()
        })
    }
}

/// The scale target's `apiVersion`, `kind`, `name`.
fn target_ref(so: &Value) -> (String, String, String) {
    let r = &so["spec"]["scaleTargetRef"];
    (
        r["apiVersion"].as_str().unwrap_or("apps/v1").to_string(),
        r["kind"].as_str().unwrap_or("Deployment").to_string(),
        r["name"].as_str().unwrap_or_default().to_string(),
    )
}

fn hpa_name(so: &Value) -> String {
    so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("keda-hpa-{}", meta::name(so)))
}

impl ScaledObjects {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.polls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One reconcile of a ScaledObject (and its scale loop's poll, when due).
    fn sync(&self, ctx: &Ctx, so: &Value) -> Option<Instant> {
        let ns = meta::namespace(so);
        let name = meta::name(so);
        let (api_version, kind, target) = target_ref(so);
        if meta::is_deleting(so) {
            if meta::finalizers(so).iter().any(|f| f == FINALIZER) {
                if so["spec"]["advanced"]["restoreToOriginalReplicaCount"] == true
                    && let Some(n) = so["status"]["originalReplicaCount"].as_i64()
                {
                    let _ = ctx.scale(&api_version, &kind, ns, &target, n);
                }
                let keep: Vec<String> = meta::finalizers(so)
                    .into_iter()
                    .filter(|f| f != FINALIZER)
                    .collect();
                let patch = json!({ "metadata": { "finalizers": keep } });
                let _ = ctx.patch(KEDA_SCALEDOBJECTS, ns, name, &patch, Part::Main);
            }
            return None;
        }
        if !meta::finalizers(so).iter().any(|f| f == FINALIZER)
            || so["metadata"]["labels"][NAME_LABEL] != name
        {
            let mut fins = meta::finalizers(so);
            if !fins.iter().any(|f| f == FINALIZER) {
                fins.push(FINALIZER.into());
            }
            let patch =
                json!({ "metadata": { "finalizers": fins, "labels": { NAME_LABEL: name } } });
            let _ = ctx.patch(KEDA_SCALEDOBJECTS, ns, name, &patch, Part::Main);
        }
        let mut status = so["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
        for t in ["Ready", "Active", "Fallback", "Paused"] {
            if condition(&conds, t).is_none() {
                set_condition(&mut conds, t, "Unknown", "", "");
            }
        }
        let wake = self.converge(ctx, so, &mut status, &mut conds);
        status["conditions"] = json!(conds);
        if status != so["status"] {
            // A merge patch removes a field by naming it null.
            let mut patch = status.clone();
            for k in so["status"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                if status.get(k).is_none() {
                    patch[k] = Value::Null;
                }
            }
            let _ = ctx.patch(
                KEDA_SCALEDOBJECTS,
                ns,
                name,
                &json!({ "status": patch }),
                Part::Status,
            );
        }
        wake
    }

    fn converge(
        &self,
        ctx: &Ctx,
        so: &Value,
        status: &mut Value,
        conds: &mut Vec<Value>,
    ) -> Option<Instant> {
        let ns = meta::namespace(so);
        let (api_version, kind, target) = target_ref(so);
        let fail = |conds: &mut Vec<Value>, msg: String| {
            ctx.event(so, true, "ScaledObjectCheckFailed", &msg, COMPONENT);
            set_condition(conds, "Ready", "False", "ScaledObjectCheckFailed", &msg);
            set_condition(
                conds,
                "Active",
                "Unknown",
                "UnknownState",
                "ScaledObject check failed",
            );
        };
        let annotations = &so["metadata"]["annotations"];
        let paused_replicas = annotations[PAUSED_REPLICAS]
            .as_str()
            .and_then(|v| v.parse::<i64>().ok());
        let paused = annotations[PAUSED]
            .as_str()
            .is_some_and(|v| v.parse::<bool>().unwrap_or(true));
        if target.is_empty() {
            fail(
                conds,
                "ScaledObject doesn't have correct scaleTargetRef specification: ScaledObject.spec.scaleTargetRef.name is missing".into(),
            );
            return Some(Instant::now() + Duration::from_secs(1));
        }
        let live = ctx
            .scalable(&api_version, &kind)
            .and_then(|def| ctx.get_def(&def, ns, &target).map(|o| (def, o)));
        let Some((def, live)) = live else {
            fail(
                conds,
                format!(
                    "ScaledObject doesn't have correct scaleTargetRef specification: {kind} {ns}/{target} not found or has no scale subresource"
                ),
            );
            return Some(Instant::now() + Duration::from_secs(1));
        };
        let current = live["spec"]["replicas"].as_i64().unwrap_or(1);
        if status["originalReplicaCount"].is_null() {
            status["originalReplicaCount"] = json!(current);
        }
        status["scaleTargetKind"] = json!(format!("{api_version}.{kind}"));
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        status["scaleTargetGVKR"] =
            json!({ "group": group, "version": version, "kind": kind, "resource": def.plural });
        let hpa = hpa_name(so);
        // Pausing: at N replicas, or where it is.
        if let Some(n) = paused_replicas {
            if current != n {
                let _ = ctx.scale(&api_version, &kind, ns, &target, n);
            }
            status["pausedReplicaCount"] = json!(n);
        }
        if paused_replicas.is_some() || paused {
            self.lock().remove(meta::uid(so));
            let _ = ctx.delete(HPAS, ns, &hpa, false);
            let newly = condition(conds, "Paused") != Some("True");
            set_condition(
                conds,
                "Paused",
                "True",
                "ScaledObjectPaused",
                "ScaledObject is paused",
            );
            let msg = if newly {
                "ScaledObject is paused"
            } else {
                READY_MESSAGE
            };
            set_condition(conds, "Ready", "True", "ScaledObjectReady", msg);
            return None;
        }
        if let Some(obj) = status.as_object_mut() {
            obj.remove("pausedReplicaCount");
        }
        if condition(conds, "Paused") == Some("True") {
            set_condition(
                conds,
                "Paused",
                "False",
                "ScaledObjectUnpaused",
                "pause annotation removed for ScaledObject",
            );
        }
        self.ensure_hpa(ctx, so, &hpa, (&api_version, &kind, &target));
        if condition(conds, "Fallback") != Some("False") {
            set_condition(
                conds,
                "Fallback",
                "False",
                "NoFallbackFound",
                "No fallbacks are active on this scaled object",
            );
        }
        // The scale loop: a poll every pollingInterval.
        let interval =
            Duration::from_secs(so["spec"]["pollingInterval"].as_u64().unwrap_or(30).max(1));
        let now = Instant::now();
        let due = *self.lock().entry(meta::uid(so).to_string()).or_insert(now);
        if due > now {
            if condition(conds, "Ready") != Some("True")
                && condition(conds, "Ready") != Some("False")
            {
                set_condition(conds, "Ready", "True", "ScaledObjectReady", READY_MESSAGE);
            }
            return Some(due);
        }
        self.lock()
            .insert(meta::uid(so).to_string(), now + interval);
        let (active, error) = triggers(ctx, so);
        let min = so["spec"]["minReplicaCount"].as_i64().unwrap_or(0);
        let cooldown = Duration::from_secs(so["spec"]["cooldownPeriod"].as_u64().unwrap_or(300));
        if error.is_none() || active {
            set_condition(conds, "Ready", "True", "ScaledObjectReady", READY_MESSAGE);
        }
        if active {
            if current == 0 || current < min {
                let to = min.max(1);
                let _ = ctx.scale(&api_version, &kind, ns, &target, to);
            }
            status["lastActiveTime"] = json!(meta::now());
        } else if let Some(e) = &error {
            ctx.event(so, true, "KEDAScalerFailed", e, COMPONENT);
            set_condition(
                conds,
                "Ready",
                "False",
                "TriggerError",
                "Triggers defined in ScaledObject are not working correctly",
            );
        } else if current > 0 && min == 0 {
            // scaleToZeroOrIdle: once the cooldown since the last activity has passed.
            let last = status["lastActiveTime"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            let since = last
                .and_then(|t| Duration::try_from(jiff::Timestamp::now() - t).ok())
                .unwrap_or(Duration::MAX);
            if since >= cooldown {
                let _ = ctx.scale(&api_version, &kind, ns, &target, 0);
                ctx.event(
                    so,
                    false,
                    "KEDAScaleTargetDeactivated",
                    &format!("Deactivated {api_version}.{kind} {ns}/{target} from {current} to 0"),
                    COMPONENT,
                );
            }
        } else if current < min {
            let _ = ctx.scale(&api_version, &kind, ns, &target, min);
        }
        if active && current == 0 {
            ctx.event(
                so,
                false,
                "KEDAScaleTargetActivated",
                &format!(
                    "Scaled {api_version}.{kind} {ns}/{target} from {current} to {}",
                    min.max(1)
                ),
                COMPONENT,
            );
        }
        if active {
            set_condition(
                conds,
                "Active",
                "True",
                "ScalerActive",
                "Scaling is performed because triggers are active",
            );
        } else {
            set_condition(
                conds,
                "Active",
                "False",
                "ScalerNotActive",
                "Scaling is not performed because triggers are not active",
            );
        }
        Some(now + interval)
    }

    /// Creates or updates `keda-hpa-<name>`.
    fn ensure_hpa(&self, ctx: &Ctx, so: &Value, hpa: &str, target: (&str, &str, &str)) {
        let ns = meta::namespace(so);
        let name = meta::name(so);
        let min = so["spec"]["minReplicaCount"]
            .as_i64()
            .filter(|&m| m > 0)
            .unwrap_or(1);
        let max = so["spec"]["maxReplicaCount"].as_i64().unwrap_or(100);
        let metrics: Vec<Value> = so["spec"]["triggers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| {
                let kind = t["type"].as_str().unwrap_or("unknown");
                let metric = match t["metadata"]["valueLocation"].as_str() {
                    Some(loc) if kind == "metrics-api" => format!(
                        "s{i}-metric-api-{}",
                        loc.replace(['.', '_'], "-").to_lowercase()
                    ),
                    _ => format!("s{i}-{kind}"),
                };
                let value = t["metadata"]["targetValue"].as_str().unwrap_or("1");
                json!({ "type": "External", "external": {
                    "metric": { "name": metric, "selector": { "matchLabels": { NAME_LABEL: name } } },
                    "target": { "type": "AverageValue", "averageValue": value },
                } })
            })
            .collect();
        let spec = json!({
            "scaleTargetRef": { "apiVersion": target.0, "kind": target.1, "name": target.2 },
            "minReplicas": min, "maxReplicas": max, "metrics": metrics,
        });
        match ctx.get(HPAS, ns, hpa) {
            Some(h) if h["spec"] == spec => {}
            Some(_) => {
                let _ = ctx.patch(HPAS, ns, hpa, &json!({ "spec": spec }), Part::Main);
            }
            None => {
                let obj = json!({
                    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {
                        "name": hpa, "namespace": ns,
                        "labels": {
                            "app.kubernetes.io/managed-by": "keda-operator",
                            "app.kubernetes.io/name": hpa,
                            "app.kubernetes.io/part-of": name,
                            NAME_LABEL: name,
                        },
                        "ownerReferences": [controller_ref(so)],
                    },
                    "spec": spec,
                });
                if let Err(e) = ctx.create(HPAS, ns, obj) {
                    ctx.event(so, true, "ScaledObjectCheckFailed", &e.message, COMPONENT);
                }
            }
        }
    }
}

/// Whether any trigger is active, and the first trigger error.
fn triggers(ctx: &Ctx, so: &Value) -> (bool, Option<String>) {
    let cm = ctx.get(CONFIGMAPS, meta::namespace(so), METRICS);
    let mut active = false;
    let mut error = None;
    for t in so["spec"]["triggers"].as_array().into_iter().flatten() {
        let kind = t["type"].as_str().unwrap_or_default();
        let value = if kind != "metrics-api" {
            Err(format!(
                "trigger type {kind:?} is not modelled by the bed (only metrics-api)"
            ))
        } else {
            let loc = t["metadata"]["valueLocation"].as_str().unwrap_or_default();
            cm.as_ref()
                .and_then(|c| c["data"][loc].as_str())
                .ok_or_else(|| {
                    format!(
                        "error requesting metrics endpoint: no value at {loc:?} (the bed reads it from ConfigMap {METRICS})"
                    )
                })
                .and_then(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| format!("error parsing metric value {v:?}"))
                })
        };
        match value {
            Ok(v) => {
                let activation = t["metadata"]["activationTargetValue"]
                    .as_str()
                    .and_then(|a| a.parse::<f64>().ok())
                    .unwrap_or(0.0);
                active |= v > activation;
            }
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (active, error)
}
