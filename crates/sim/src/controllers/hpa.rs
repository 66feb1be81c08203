//! The HorizontalPodAutoscaler controller (kube-controller-manager's, modelled on
//! kubernetes `pkg/controller/podautoscaler/horizontal.go`, `reconcileAutoscaler`).
//!
//! Every HPA is looked at once per sync period (`--horizontal-pod-autoscaler-sync-period`,
//! 15 s: [`Delays::hpa_sync_period`](super::Delays)); a change to an HPA does not make it
//! look sooner (its queue adds every key with the period's delay: "Requests are always
//! added to queue with resyncPeriod delay"), and neither does a change to its target. Each
//! look reads the target's `scale` subresource and:
//! - target's `spec.replicas` 0 with `minReplicas` not 0 (unset is 1): does not scale it
//!   — `desiredReplicas` 0, `ScalingActive=False` `ScalingDisabled` "scaling is disabled
//!   since the replica count of the target is zero". This is what leaves a workload that
//!   was scaled to zero alone;
//! - above `maxReplicas`: scales it down to max ("Current number of replicas above
//!   Spec.MaxReplicas"); below `minReplicas`: up to min;
//! - within the bounds: asks its metrics. The bed serves no metrics API (no
//!   metrics-server, no custom or external metrics adapter), so, as on a cluster without
//!   one, every metric fails: `ScalingActive=False` with the metric type's reason
//!   (`FailedGetResourceMetric`, `FailedGetExternalMetric`…), only `currentReplicas`
//!   updated, and the target left as it is.
//!
//! Status (`currentReplicas`, `desiredReplicas`, `lastScaleTime`, `conditions`
//! `AbleToScale`/`ScalingActive`) is written only when it changes, as
//! `updateStatusIfNeeded` does; rescales are `SuccessfulRescale` Events. Not modelled:
//! metrics, stabilization windows and `behavior`, the scale-up rate limit, the
//! `ScalingLimited` condition (set only from metrics).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::HPAS;
use super::gitops::set_condition;
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

#[derive(Default)]
pub(crate) struct Autoscalers {
    /// When each HPA (by uid) is next due.
    due: Mutex<HashMap<String, Instant>>,
}

impl Controller for Autoscalers {
    fn name(&self) -> &'static str {
        "horizontal-pod-autoscaler"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[("autoscaling", "horizontalpodautoscalers")]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            let period = ctx.delays.hpa_sync_period;
            let hpas = ctx.list(HPAS, None);
            let now = Instant::now();
            let mut work = Vec::new();
            let next = {
                let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
                due.retain(|uid, _| hpas.iter().any(|h| meta::uid(h) == uid));
                for h in hpas.iter().filter(|h| !meta::is_deleting(h)) {
                    let at = due.entry(meta::uid(h).to_string()).or_insert(now + period);
                    if *at <= now {
                        *at = now + period;
                        work.push(h.clone());
                    }
                }
                due.values().min().copied()
            };
            for h in work {
                sync(ctx, &h);
            }
            next
        })
    }
}

/// One `reconcileAutoscaler`.
fn sync(ctx: &Ctx, hpa: &Value) {
    let ns = meta::namespace(hpa);
    let spec = &hpa["spec"];
    let target = &spec["scaleTargetRef"];
    let (api_version, kind, name) = (
        target["apiVersion"].as_str().unwrap_or_default(),
        target["kind"].as_str().unwrap_or_default(),
        target["name"].as_str().unwrap_or_default(),
    );
    let mut status = hpa["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let scale = ctx
        .scalable(api_version, kind)
        .ok_or_else(|| format!("no matches for kind \"{kind}\" in group \"{api_version}\""))
        .and_then(|def| {
            ctx.get_def(&def, ns, name)
                .ok_or_else(|| format!("{}.{} \"{name}\" not found", def.plural, def.group))
        });
    let workload = match scale {
        Ok(w) => w,
        Err(e) => {
            ctx.event(hpa, true, "FailedGetScale", &e, "horizontal-pod-autoscaler");
            set_condition(
                &mut conds,
                "AbleToScale",
                "False",
                "FailedGetScale",
                &format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            status["conditions"] = json!(conds);
            write(ctx, hpa, status);
            return;
        }
    };
    set_condition(
        &mut conds,
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    let current = workload["spec"]["replicas"].as_i64().unwrap_or(1);
    // The API server defaults minReplicas to 1; the controller reads an unset one as 1.
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    let max = spec["maxReplicas"].as_i64().unwrap_or(i64::MAX);
    let (desired, reason) = if current == 0 && min != 0 {
        set_condition(
            &mut conds,
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, None)
    } else if current > max {
        (
            max,
            Some("Current number of replicas above Spec.MaxReplicas"),
        )
    } else if current < min {
        (
            min,
            Some("Current number of replicas below Spec.MinReplicas"),
        )
    } else {
        // computeReplicasForMetrics: no metrics API answers in the bed.
        let (reason, message) = metrics_unavailable(hpa);
        ctx.event(hpa, true, reason, &message, "horizontal-pod-autoscaler");
        set_condition(
            &mut conds,
            "ScalingActive",
            "False",
            reason,
            &format!("the HPA was unable to compute the replica count: {message}"),
        );
        status["currentReplicas"] = json!(current);
        if status["desiredReplicas"].is_null() {
            status["desiredReplicas"] = json!(0);
        }
        status["conditions"] = json!(conds);
        write(ctx, hpa, status);
        return;
    };
    if let Some(reason) = reason {
        if let Err(e) = ctx.scale(api_version, kind, ns, name, desired) {
            ctx.event(
                hpa,
                true,
                "FailedRescale",
                &format!(
                    "New size: {desired}; reason: {reason}; error: {}",
                    e.message
                ),
                "horizontal-pod-autoscaler",
            );
            set_condition(
                &mut conds,
                "AbleToScale",
                "False",
                "FailedUpdateScale",
                &format!(
                    "the HPA controller was unable to update the target scale: {}",
                    e.message
                ),
            );
            status["currentReplicas"] = json!(current);
            status["conditions"] = json!(conds);
            write(ctx, hpa, status);
            return;
        }
        set_condition(
            &mut conds,
            "AbleToScale",
            "True",
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
        );
        ctx.event(
            hpa,
            false,
            "SuccessfulRescale",
            &format!("New size: {desired}; reason: {reason}"),
            "horizontal-pod-autoscaler",
        );
        status["lastScaleTime"] = json!(meta::now());
    }
    status["currentReplicas"] = json!(current);
    status["desiredReplicas"] = json!(desired);
    status["conditions"] = json!(conds);
    write(ctx, hpa, status);
}

/// Why the first metric fails where no metrics API is served, as the controller words it.
fn metrics_unavailable(hpa: &Value) -> (&'static str, String) {
    let first = &hpa["spec"]["metrics"][0];
    match first["type"].as_str().unwrap_or("Resource") {
        "External" => {
            let metric = first["external"]["metric"]["name"].as_str().unwrap_or_default();
            (
                "FailedGetExternalMetric",
                format!(
                    "unable to get external metric {}/{metric}: unable to fetch metrics from external metrics API: the server could not find the requested resource",
                    meta::namespace(hpa)
                ),
            )
        }
        "Pods" => (
            "FailedGetPodsMetric",
            "unable to get metric: unable to fetch metrics from custom metrics API: the server could not find the requested resource".into(),
        ),
        "Object" => (
            "FailedGetObjectMetric",
            "unable to get metric: unable to fetch metrics from custom metrics API: the server could not find the requested resource".into(),
        ),
        "ContainerResource" => (
            "FailedGetContainerResourceMetric",
            "failed to get container resource metric: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)".into(),
        ),
        _ => {
            let resource = first["resource"]["name"].as_str().unwrap_or("cpu");
            (
                "FailedGetResourceMetric",
                format!(
                    "failed to get {resource} utilization: unable to get metrics for resource {resource}: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)"
                ),
            )
        }
    }
}

/// `updateStatusIfNeeded`: writes the status only when it changed.
fn write(ctx: &Ctx, hpa: &Value, mut status: Value) {
    status["observedGeneration"] = hpa["metadata"]["generation"].clone();
    if status == hpa["status"] {
        return;
    }
    let _ = ctx.patch(
        HPAS,
        meta::namespace(hpa),
        meta::name(hpa),
        &json!({ "status": status }),
        Part::Status,
    );
}
