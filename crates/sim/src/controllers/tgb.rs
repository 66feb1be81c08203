//! The AWS Load Balancer Controller's TargetGroupBinding controller (and its pod
//! readiness-gate webhook), modelled on v3.5.0 of kubernetes-sigs/aws-load-balancer-controller
//! (`pkg/targetgroupbinding/resource_manager.go`, `multicluster_manager.go`,
//! `targets_manager.go`, `pkg/backend/endpoint_resolver.go`,
//! `pkg/inject/pod_readiness/pod_readiness_gate.go`). It acts while the
//! `targetgroupbindings.elbv2.k8s.aws` CRD is served (the controller is installed).
//!
//! A binding (`elbv2.k8s.aws/v1beta1`) names a Service port and a target group; the
//! controller registers the Service's endpoints there and deregisters those that leave:
//!
//! - `targetType: ip`: the pods' IPs at the Service port's targetPort, from the endpoints
//!   the EndpointSlice controller would publish (computed here from the pods: selected by
//!   the Service, not terminal, with an IP): every ready endpoint, plus a not-ready one
//!   whose pod's containers are ready, on a Ready node, not terminating (a pod held only
//!   by a readiness gate). Without a ready endpoint, those on nodes whose Ready is Unknown
//!   are taken instead (`EndpointsFailOpen`, on by default).
//! - `targetType: instance`: the instance ids (from `spec.providerID`) of the Ready nodes
//!   the default traffic-proxy selector and `spec.nodeSelector` select, not tainted for
//!   removal, at the Service port's nodePort (the Service must be NodePort or
//!   LoadBalancer).
//!
//! What it believes is in the group comes from a cache per target group (5 minutes,
//! [`Delays::lbc_targets_cache`](super::Delays)) filled by DescribeTargetHealth, updated
//! with its own registrations, refreshed only for targets not known healthy. A binding
//! whose endpoints and spec hash to its `elbv2.k8s.aws/checkpoint` annotation is not
//! reconciled at all (no AWS call). Without `multiClusterTargetGroup` it deregisters every
//! target of the group it does not want — so two clusters bound to one group deregister
//! each other's targets, whichever looks at the group later (aws-load-balancer-controller
//! issues 2173, 2757) — and with it, only targets it tracked as its own in the ConfigMap
//! `aws-lbc-targets-<binding>` of the binding's namespace (`data.targets`, comma-separated
//! `id:port`; the first reconcile only records, deregisters nothing).
//!
//! In a namespace labelled `elbv2.k8s.aws/pod-readiness-gate-inject: enabled`, a pod
//! created while an ip binding's Service selects it gets the readiness gate
//! `target-health.elbv2.k8s.aws/<binding>` ([`inject_readiness_gates`], called at pod
//! admission); the controller sets that pod condition from the target's health
//! (`True` once DescribeTargetHealth says healthy, `False` with AWS's reason before), and
//! the kubelet keeps the pod unready until it is True. Deleting a binding (finalizer
//! `elbv2.k8s.aws/resources`) deregisters its targets and sets its gate conditions True.
//!
//! Status and Events as the real one writes them: `status.observedGeneration` after a
//! reconcile that did its work; `SuccessfullyReconciled`, and Warnings
//! `FailedReconcile` (`Failed reconcile due to <the SDK's error>`, retried with
//! exponential back-off from 5 ms to 1000 s), `BackendNotFound` (then its targets are
//! cleaned up) and `FailedCleanup`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_aws::TargetHealth;
use baton_aws::testbed::lbc::Target;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{CONFIGMAPS, NODES, PODS, SERVICES, TARGETGROUPBINDINGS};
use super::workers::Workers;
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;
use crate::patch::PatchType;
use crate::resources::GroupResource;
use crate::selector::LabelSelector;
use crate::store::Txn;

/// The finalizer the controller puts on every binding it reconciles.
pub const FINALIZER: &str = "elbv2.k8s.aws/resources";
/// The annotation holding the hash of a binding's endpoints and spec at its last
/// reconcile.
pub const CHECKPOINT: &str = "elbv2.k8s.aws/checkpoint";
/// When the checkpoint was written (Unix seconds).
pub const CHECKPOINT_TIMESTAMP: &str = "elbv2.k8s.aws/checkpoint-timestamp";
/// The namespace label that turns the readiness-gate webhook on for its pods.
pub const INJECT_LABEL: &str = "elbv2.k8s.aws/pod-readiness-gate-inject";
/// The prefix of the readiness gates (`<prefix>/<binding name>`).
pub const GATE_PREFIX: &str = "target-health.elbv2.k8s.aws";
/// The AWS ALB Ingress controller's (v1) gates, which the webhook removes.
const LEGACY_GATE_PREFIX: &str = "target-health.alb.ingress.k8s.aws";
/// The multicluster ConfigMap's name prefix.
pub const TRACKED_PREFIX: &str = "aws-lbc-targets-";
/// The event recorder's name (`mgr.GetEventRecorderFor("targetGroupBinding")`).
const COMPONENT: &str = "targetGroupBinding";
/// Targets per RegisterTargets/DeregisterTargets call.
const CHUNK: usize = 200;
/// `--targetgroupbinding-max-concurrent-reconciles`.
const CONCURRENCY: usize = 3;
/// The work queue's first retry after a failure; it doubles per failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// `--targetgroupbinding-max-exponential-backoff-delay`.
const MAX_BACKOFF: Duration = Duration::from_secs(1000);

/// The readiness gate (pod condition type) of a binding.
pub fn gate(binding: &str) -> String {
    format!("{GATE_PREFIX}/{binding}")
}

fn gr(group: &str, plural: &str) -> GroupResource {
    GroupResource {
        group: group.into(),
        plural: plural.into(),
    }
}

/// The readiness-gate webhook (`mpod.elbv2.k8s.aws`), at a pod's creation: in a namespace
/// labelled [`INJECT_LABEL`]`=enabled`, a pod whose labels an ip binding's Service selects
/// gets that binding's gate (legacy gates removed). Called only while bindings are served.
pub(crate) fn inject_readiness_gates(t: &Txn<'_>, pod: &mut Value) {
    let ns = meta::namespace(pod).to_string();
    let enabled = t
        .get(&gr("", "namespaces"), "", &ns)
        .is_some_and(|n| n["metadata"]["labels"][INJECT_LABEL] == "enabled");
    // The webhook's objectSelector leaves the controller's own pods alone.
    if !enabled
        || pod["metadata"]["labels"]["app.kubernetes.io/name"] == "aws-load-balancer-controller"
    {
        return;
    }
    let mut gates = Vec::new();
    for b in t.list(&gr("elbv2.k8s.aws", "targetgroupbindings"), Some(&ns)) {
        if b["spec"]["targetType"] != "ip" {
            continue;
        }
        let svc_name = b["spec"]["serviceRef"]["name"].as_str().unwrap_or_default();
        let Some(svc) = t.get(&gr("", "services"), &ns, svc_name) else {
            continue;
        };
        if service_selects(&svc, pod) {
            gates.push(gate(meta::name(&b)));
        }
    }
    if gates.is_empty() {
        return;
    }
    let mut kept: Vec<Value> = pod["spec"]["readinessGates"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|g| {
            !g["conditionType"]
                .as_str()
                .is_some_and(|c| c.starts_with(LEGACY_GATE_PREFIX))
        })
        .collect();
    for g in gates {
        if !kept.iter().any(|k| k["conditionType"] == g.as_str()) {
            kept.push(json!({ "conditionType": g }));
        }
    }
    pod["spec"]["readinessGates"] = json!(kept);
}

/// Whether a Service's selector selects a pod (a Service without one selects nothing).
fn service_selects(svc: &Value, pod: &Value) -> bool {
    match svc["spec"]["selector"].as_object() {
        Some(sel) if !sel.is_empty() => {
            LabelSelector::from_object(&json!({ "matchLabels": sel })).matches(pod)
        }
        _ => false,
    }
}

fn has_gate(pod: &Value, condition: &str) -> bool {
    pod["spec"]["readinessGates"]
        .as_array()
        .is_some_and(|gs| gs.iter().any(|g| g["conditionType"] == condition))
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn condition_true(obj: &Value, kind: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == "True")
}

fn created_ms(obj: &Value) -> i64 {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_millisecond())
}

/// One endpoint the binding wants in its group.
#[derive(Debug, Clone)]
struct Endpoint {
    target: Target,
    /// The pod behind an ip endpoint.
    pod: Option<Arc<Value>>,
    /// The pod's or node's creation time (part of the checkpoint).
    created_ms: i64,
}

impl Endpoint {
    /// The checkpoint's identifier: `id:port:creation-ms`.
    fn stamped(&self) -> String {
        format!("{}:{}", self.target.key(), self.created_ms)
    }
}

/// Why a binding's endpoints could not be resolved.
#[derive(Debug)]
enum ResolveError {
    /// The Service or its port does not exist (`BackendNotFound`).
    NotFound(String),
    /// Anything else (`FailedReconcile`).
    Other(String),
}

fn key_of(b: &Value) -> String {
    format!("{}/{}", meta::namespace(b), meta::name(b))
}

/// The Service and its port the binding names.
fn service_port(ctx: &Ctx, b: &Value) -> Result<(Arc<Value>, Value), ResolveError> {
    let ns = meta::namespace(b);
    let name = b["spec"]["serviceRef"]["name"].as_str().unwrap_or_default();
    let port = &b["spec"]["serviceRef"]["port"];
    let svc = ctx.get(SERVICES, ns, name).ok_or_else(|| {
        ResolveError::NotFound(format!("backend not found: services \"{name}\" not found"))
    })?;
    let found = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| match port {
            Value::String(s) => p["name"] == s.as_str(),
            n => p["port"] == *n,
        })
        .cloned();
    let shown = match port {
        Value::String(s) => s.clone(),
        n => n.to_string(),
    };
    let p = found.ok_or_else(|| {
        ResolveError::NotFound(format!(
            "backend not found: unable to find port {shown} on service {ns}/{name}"
        ))
    })?;
    Ok((svc, p))
}

/// The port a pod serves a Service port on (`podutil.FindPort`): a number as is, a
/// name looked up among the containers' ports.
fn pod_port(pod: &Value, target_port: &Value) -> Option<i32> {
    match target_port {
        Value::String(name) => pod["spec"]["containers"]
            .as_array()?
            .iter()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_i64())
            .map(|p| p as i32),
        n => n.as_i64().map(|p| p as i32),
    }
}

fn node_ready_status(node: &Value) -> &str {
    condition(node, "Ready")
        .and_then(|c| c["status"].as_str())
        .unwrap_or("False")
}

/// The pod endpoints of an ip binding.
fn pod_endpoints(ctx: &Ctx, b: &Value) -> Result<Vec<Endpoint>, ResolveError> {
    let (svc, port) = service_port(ctx, b)?;
    let ns = meta::namespace(b);
    let target_port = match &port["targetPort"] {
        Value::Null => port["port"].clone(),
        p => p.clone(),
    };
    let publish = svc["spec"]["publishNotReadyAddresses"] == true;
    let mut ready = Vec::new();
    let mut unknown = Vec::new();
    for pod in ctx.list(PODS, Some(ns)) {
        if !service_selects(&svc, &pod)
            || matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            )
        {
            continue;
        }
        let Some(ip) = pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        let Some(p) = pod_port(&pod, &target_port) else {
            continue;
        };
        let terminating = meta::is_deleting(&pod);
        let endpoint = Endpoint {
            target: Target {
                id: ip.to_string(),
                port: p,
            },
            created_ms: created_ms(&pod),
            pod: Some(pod.clone()),
        };
        // The EndpointSlice's `ready`: never for a terminating pod.
        if publish || (condition_true(&pod, "Ready") && !terminating) {
            ready.push(endpoint);
            continue;
        }
        if !condition_true(&pod, "ContainersReady") {
            continue;
        }
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let Some(node) = ctx.get(NODES, "", node) else {
            continue;
        };
        match node_ready_status(&node) {
            "True" if !terminating => ready.push(endpoint),
            "Unknown" => unknown.push(endpoint),
            _ => {}
        }
    }
    Ok(if ready.is_empty() { unknown } else { ready })
}

/// The nodes an instance binding sends traffic through: the default traffic-proxy
/// selector and `spec.nodeSelector`.
fn node_selected(b: &Value, node: &Value) -> bool {
    let default = LabelSelector::from_object(&json!({ "matchExpressions": [
        { "key": "node-role.kubernetes.io/master", "operator": "DoesNotExist" },
        { "key": "node.kubernetes.io/exclude-from-external-load-balancers", "operator": "DoesNotExist" },
        { "key": "alpha.service-controller.kubernetes.io/exclude-balancer", "operator": "DoesNotExist" },
        { "key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"] },
    ] }));
    let custom = match &b["spec"]["nodeSelector"] {
        Value::Null => LabelSelector::default(),
        s => LabelSelector::from_object(s),
    };
    default.matches(node) && custom.matches(node)
}

/// Not being removed by the cluster autoscaler or Karpenter.
fn suitable_as_proxy(node: &Value) -> bool {
    !node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            t["key"] == "ToBeDeletedByClusterAutoscaler"
                || (t["key"] == "karpenter.sh/disrupted" && t["effect"] == "NoSchedule")
        })
}

fn instance_id(node: &Value) -> Result<String, ResolveError> {
    let name = meta::name(node);
    let provider = node["spec"]["providerID"].as_str().unwrap_or_default();
    if provider.is_empty() {
        return Err(ResolveError::Other(format!(
            "providerID is not specified for node: {name}"
        )));
    }
    let id = provider.rsplit('/').next().unwrap_or_default();
    if !id.starts_with("i-") || id.contains('/') {
        return Err(ResolveError::Other(format!(
            "providerID {provider} is invalid for EC2 instances, node: {name}"
        )));
    }
    Ok(id.to_string())
}

/// The node endpoints of an instance binding.
fn node_endpoints(ctx: &Ctx, b: &Value) -> Result<Vec<Endpoint>, ResolveError> {
    let (svc, port) = service_port(ctx, b)?;
    if !matches!(
        svc["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    ) {
        return Err(ResolveError::Other(format!(
            "service type must be either 'NodePort' or 'LoadBalancer': {}/{}",
            meta::namespace(&svc),
            meta::name(&svc)
        )));
    }
    let node_port = port["nodePort"].as_i64().unwrap_or(0) as i32;
    let candidates: Vec<Arc<Value>> = ctx
        .list(NODES, None)
        .into_iter()
        .filter(|n| node_selected(b, n) && suitable_as_proxy(n))
        .collect();
    let mut chosen: Vec<&Arc<Value>> = candidates
        .iter()
        .filter(|n| node_ready_status(n) == "True")
        .collect();
    if chosen.is_empty() {
        chosen = candidates
            .iter()
            .filter(|n| node_ready_status(n) == "Unknown")
            .collect();
    }
    chosen
        .into_iter()
        .map(|n| {
            Ok(Endpoint {
                target: Target {
                    id: instance_id(n)?,
                    port: node_port,
                },
                pod: None,
                created_ms: created_ms(n),
            })
        })
        .collect()
}

fn endpoints(ctx: &Ctx, b: &Value) -> Result<Vec<Endpoint>, ResolveError> {
    match b["spec"]["targetType"].as_str() {
        Some("ip") => pod_endpoints(ctx, b),
        Some("instance") => node_endpoints(ctx, b),
        _ => Err(ResolveError::Other(format!(
            "targetType is not specified: {}",
            key_of(b)
        ))),
    }
}

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sha256(sorted endpoint identifiers)/sha256(spec)`.
fn checkpoint(endpoints: &[Endpoint], b: &Value) -> String {
    let mut ids: Vec<String> = endpoints.iter().map(Endpoint::stamped).collect();
    ids.sort();
    format!(
        "{}/{}",
        sha256_hex(&ids.join(",")),
        sha256_hex(&b["spec"].to_string())
    )
}

fn saved_checkpoint(b: &Value) -> &str {
    b["metadata"]["annotations"][CHECKPOINT]
        .as_str()
        .unwrap_or_default()
}

/// Whether a pod of the endpoints has its gate condition written but not True.
fn gate_flip_pending(endpoints: &[Endpoint], condition_type: &str) -> bool {
    endpoints.iter().any(|e| {
        e.pod
            .as_ref()
            .and_then(|p| condition(p, condition_type))
            .is_some_and(|c| c["status"] != "True")
    })
}

/// A target in the controller's view of its group.
#[derive(Debug, Clone)]
struct Known {
    target: Target,
    /// Unknown right after this controller registered it.
    health: Option<TargetHealth>,
}

impl Known {
    fn healthy(&self) -> bool {
        self.health.as_ref().is_some_and(|h| h.state == "healthy")
    }

    fn draining(&self) -> bool {
        self.health
            .as_ref()
            .is_some_and(|h| h.state == "draining" || h.state == "unhealthy.draining")
    }

    fn not_registered(&self) -> bool {
        self.health.as_ref().is_some_and(|h| {
            h.state == "unused" && h.reason.as_deref() == Some("Target.NotRegistered")
        })
    }
}

fn known(h: TargetHealth) -> Known {
    Known {
        target: Target {
            id: h.id.clone(),
            port: h.port.unwrap_or_default(),
        },
        health: Some(h),
    }
}

/// The targets of one group as the controller last saw them.
#[derive(Debug)]
struct Cached {
    expires: Instant,
    targets: Vec<Known>,
}

/// What one reconcile ended with.
enum Outcome {
    /// The checkpoint matched: nothing done.
    Deferred,
    /// Done; the checkpoint to save.
    Done(String),
    /// Targets are being probed for the readiness gates: again after the requeue time.
    Requeue,
}

pub(crate) struct TargetGroupBindings {
    state: Arc<State>,
    workers: Workers,
}

impl Default for TargetGroupBindings {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            workers: Workers::new(CONCURRENCY),
        }
    }
}

#[derive(Default)]
struct State {
    /// Target group ARN → its targets as this controller knows them.
    targets: Mutex<HashMap<String, Cached>>,
    /// Binding → the targets of its multicluster ConfigMap (in-memory copy).
    tracked: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Binding → consecutive failures and when to retry.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// Binding → when a requeue (targets being probed) is due.
    requeue: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller for TargetGroupBindings {
    fn name(&self) -> &'static str {
        "aws-load-balancer-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("elbv2.k8s.aws", "targetgroupbindings"),
            ("", "services"),
            ("", "pods"),
            ("", "nodes"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            if !ctx.serves(TARGETGROUPBINDINGS) || ctx.aws.is_none() {
                return None;
            }
            let bindings = ctx.list(TARGETGROUPBINDINGS, None);
            if bindings.is_empty() {
                return None;
            }
            // The namespaces whose bindings a change may concern (None: all of them).
            let touched: Option<HashSet<String>> = (!scope.is_all() && !scope.touches("", "nodes"))
                .then(|| {
                    [
                        ("elbv2.k8s.aws", "targetgroupbindings"),
                        ("", "services"),
                        ("", "pods"),
                    ]
                    .iter()
                    .flat_map(|(g, p)| scope.changed(g, p))
                    .map(|(o, _)| meta::namespace(o).to_string())
                    .collect()
                });
            let again: HashSet<&str> = scope.again().iter().map(String::as_str).collect();
            let now = Instant::now();
            let mut wake: Option<Instant> = None;
            let mut later = |at: Instant| wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
            for b in bindings {
                let key = key_of(&b);
                let backoff = lock(&self.state.failures).get(&key).map(|(_, at)| *at);
                let requeue = lock(&self.state.requeue).get(&key).copied();
                let due =
                    backoff.is_some_and(|at| at <= now) || requeue.is_some_and(|at| at <= now);
                for at in [backoff, requeue]
                    .into_iter()
                    .flatten()
                    .filter(|at| *at > now)
                {
                    later(at);
                }
                // A change to what the binding reads queues it at once (client-go's
                // queue takes an added item before its back-off ends); a full pass
                // (an informer's resync) waits out the back-off.
                let triggered = match &touched {
                    Some(ns) => ns.contains(meta::namespace(&b)),
                    None => backoff.is_none_or(|at| at <= now),
                };
                if !(triggered || due || again.contains(key.as_str())) || !needs_work(ctx, &b) {
                    continue;
                }
                let (state, wctx) = (self.state.clone(), ctx.for_worker());
                self.workers.spawn(key.clone(), &ctx.wake, async move {
                    state.run(&wctx, &key).await
                });
            }
            wake
        })
    }
}

/// Whether a reconcile of the binding would do anything (the checkpoint test, which
/// costs no AWS call).
fn needs_work(ctx: &Ctx, b: &Value) -> bool {
    let finalized = meta::finalizers(b).iter().any(|f| f == FINALIZER);
    if meta::is_deleting(b) {
        return finalized;
    }
    if !finalized {
        return true;
    }
    match endpoints(ctx, b) {
        Err(_) => true,
        Ok(eps) => {
            let ip = b["spec"]["targetType"] == "ip";
            saved_checkpoint(b) != checkpoint(&eps, b)
                || (ip && gate_flip_pending(&eps, &gate(meta::name(b))))
        }
    }
}

/// An AWS error as the controller's Go SDK prints it (`operation error Elastic Load
/// Balancing v2: OP, https response error StatusCode: N, RequestID: ID, CODE: MESSAGE`;
/// errors ELBv2 does not model read `api error CODE: MESSAGE`).
fn sdk_error(op: &str, e: &baton_aws::Error) -> String {
    const MODELED: [&str; 6] = [
        "TargetGroupNotFound",
        "InvalidTarget",
        "TooManyTargets",
        "TooManyRegistrationsForTargetId",
        "HealthUnavailable",
        "LoadBalancerNotFound",
    ];
    let (status, code, message) = match e {
        baton_aws::Error::NotFound { code, message, .. } => (400, code, message),
        baton_aws::Error::Throttled { code, message, .. } => (400, code, message),
        baton_aws::Error::Service {
            code,
            message,
            status,
            ..
        } => (*status, code, message),
        other => {
            return format!("operation error Elastic Load Balancing v2: {op}, {other}");
        }
    };
    let api = if MODELED.contains(&code.as_str()) {
        ""
    } else {
        "api error "
    };
    format!(
        "operation error Elastic Load Balancing v2: {op}, https response error StatusCode: {status}, RequestID: {}, {api}{code}: {message}",
        uuid::Uuid::new_v4()
    )
}

/// A failed reconcile: its message (the Event's) and whether AWS said the group is gone.
#[derive(Debug)]
struct Failure {
    message: String,
    group_gone: bool,
}

impl Failure {
    fn aws(op: &str, e: &baton_aws::Error) -> Self {
        Self {
            message: sdk_error(op, e),
            group_gone: matches!(
                e.code(),
                Some("TargetGroupNotFound" | "InvalidTarget" | "ValidationError")
            ),
        }
    }

    fn kube(what: &str, b: &Value, e: &crate::error::ApiError) -> Self {
        Self {
            message: format!("failed to {what}: {}: {}", key_of(b), e.message),
            group_gone: false,
        }
    }

    fn other(message: String) -> Self {
        Self {
            message,
            group_gone: false,
        }
    }
}

impl State {
    /// One reconcile of a binding (a worker's task); when to look at it again.
    async fn run(&self, ctx: &Ctx, key: &str) -> Option<Instant> {
        lock(&self.requeue).remove(key);
        let (ns, name) = key.split_once('/').unwrap_or_default();
        let b = ctx.get(TARGETGROUPBINDINGS, ns, name)?;
        let result = if meta::is_deleting(&b) {
            self.finalize(ctx, &b).await
        } else {
            self.reconcile(ctx, &b).await
        };
        match result {
            Ok(again) => {
                lock(&self.failures).remove(key);
                if let Some(at) = again {
                    lock(&self.requeue).insert(key.to_string(), at);
                }
                again
            }
            Err(_) => {
                let mut failures = lock(&self.failures);
                let n = failures.get(key).map_or(0, |(n, _)| *n);
                let factor = 1u32 << n.min(20);
                let at = Instant::now() + FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF);
                failures.insert(key.to_string(), (n + 1, at));
                Some(at)
            }
        }
    }

    /// A live binding: finalizer, targets, status, events.
    async fn reconcile(&self, ctx: &Ctx, b: &Value) -> Result<Option<Instant>, ()> {
        let (ns, name) = (meta::namespace(b), meta::name(b));
        if !meta::finalizers(b).iter().any(|f| f == FINALIZER) {
            let mut list = meta::finalizers(b);
            list.push(FINALIZER.to_string());
            let patch = json!({ "metadata": { "finalizers": list } });
            if let Err(e) = ctx.patch(TARGETGROUPBINDINGS, ns, name, &patch, Part::Main) {
                ctx.event(
                    b,
                    true,
                    "FailedAddFinalizer",
                    &format!("Failed add finalizer due to {}", e.message),
                    COMPONENT,
                );
                return Err(());
            }
        }
        let outcome = match self.resources(ctx, b).await {
            Ok(o) => o,
            Err(f) => {
                ctx.event(
                    b,
                    true,
                    "FailedReconcile",
                    &format!("Failed reconcile due to {}", f.message),
                    COMPONENT,
                );
                return Err(());
            }
        };
        let new = match outcome {
            Outcome::Deferred => return Ok(None),
            Outcome::Requeue => return Ok(Some(Instant::now() + ctx.delays.lbc_requeue)),
            Outcome::Done(new) => new,
        };
        // Read again: the reconcile may have reset the checkpoint.
        let Some(current) = ctx.get(TARGETGROUPBINDINGS, ns, name) else {
            return Ok(None);
        };
        if new != saved_checkpoint(b)
            && let Err(e) = save_checkpoint(ctx, &current, &new)
        {
            ctx.event(
                b,
                true,
                "FailedReconcile",
                &format!(
                    "Failed reconcile due to {}",
                    Failure::kube("update targetGroupBinding checkpoint", b, &e).message
                ),
                COMPONENT,
            );
            return Err(());
        }
        let generation = current["metadata"]["generation"].clone();
        if current["status"]["observedGeneration"] != generation {
            let patch = json!({ "status": { "observedGeneration": generation } });
            if let Err(e) = ctx.patch(TARGETGROUPBINDINGS, ns, name, &patch, Part::Status) {
                ctx.event(
                    b,
                    true,
                    "FailedUpdateStatus",
                    &format!("Failed update status due to {}", e.message),
                    COMPONENT,
                );
                return Err(());
            }
        }
        ctx.event(
            b,
            false,
            "SuccessfullyReconciled",
            "Successfully reconciled",
            COMPONENT,
        );
        Ok(None)
    }

    /// The resource manager's Reconcile: the targets of one binding.
    async fn resources(&self, ctx: &Ctx, b: &Value) -> Result<Outcome, Failure> {
        let ip = b["spec"]["targetType"] == "ip";
        let old = saved_checkpoint(b).to_string();
        let eps = match endpoints(ctx, b) {
            Ok(eps) => eps,
            Err(ResolveError::NotFound(message)) => {
                ctx.event(b, true, "BackendNotFound", &message, COMPONENT);
                self.cleanup(ctx, b).await?;
                return Ok(Outcome::Done(String::new()));
            }
            Err(ResolveError::Other(message)) => return Err(Failure::other(message)),
        };
        let new = checkpoint(&eps, b);
        let gate_type = gate(meta::name(b));
        if old == new && !(ip && gate_flip_pending(&eps, &gate_type)) {
            return Ok(Outcome::Deferred);
        }
        let targets = self.list_targets(ctx, b).await?;
        let wanted: HashMap<String, &Endpoint> = eps.iter().map(|e| (e.target.key(), e)).collect();
        let present: HashMap<String, &Known> = targets
            .iter()
            .filter(|t| !t.draining())
            .map(|t| (t.target.key(), t))
            .collect();
        let mut missing: Vec<&Endpoint> = eps
            .iter()
            .filter(|e| !present.contains_key(&e.target.key()))
            .collect();
        missing.sort_by_key(|e| e.target.key());
        let mut unwanted: Vec<Target> = present
            .iter()
            .filter(|(k, _)| !wanted.contains_key(*k))
            .map(|(_, t)| t.target.clone())
            .collect();
        unwanted.sort();
        let matched: Vec<(&Endpoint, &Known)> = eps
            .iter()
            .filter_map(|e| present.get(&e.target.key()).map(|t| (e, *t)))
            .collect();
        let probing = ip
            && matched.iter().any(|(e, t)| {
                e.pod
                    .as_ref()
                    .is_some_and(|p| has_gate(p, &gate_type) && !t.healthy())
            });
        if (!missing.is_empty() || !unwanted.is_empty() || probing) && !old.is_empty() {
            // Any change resets the checkpoint first, so a crash in between cannot leave
            // a checkpoint that hides work.
            let current = ctx
                .get(TARGETGROUPBINDINGS, meta::namespace(b), meta::name(b))
                .unwrap_or_else(|| Arc::new(b.clone()));
            save_checkpoint(ctx, &current, "")
                .map_err(|e| Failure::kube("update targetGroupBinding checkpoint", b, &e))?;
        }
        let mut track = false;
        if !unwanted.is_empty() {
            track = self.deregister(ctx, b, &unwanted).await?;
        }
        if !missing.is_empty() {
            // Recorded before registering, so a registration whose answer is lost is
            // still this cluster's to deregister.
            track = false;
            self.track(ctx, b, true, &eps)?;
            let targets: Vec<Target> = missing.iter().map(|e| e.target.clone()).collect();
            self.register(ctx, b, &targets).await?;
        }
        self.track(ctx, b, track, &eps)?;
        if !ip {
            return Ok(Outcome::Done(new));
        }
        let mut probe = false;
        for (e, t) in &matched {
            if let Some(pod) = &e.pod {
                probe |= set_gate(ctx, pod, &gate_type, t.health.as_ref());
            }
        }
        let registering = TargetHealth {
            id: String::new(),
            port: None,
            state: "initial".into(),
            reason: Some("Elb.RegistrationInProgress".into()),
            description: Some("Target registration is in progress".into()),
        };
        for e in &missing {
            if let Some(pod) = &e.pod {
                probe |= set_gate(ctx, pod, &gate_type, Some(&registering));
            }
        }
        Ok(if probe {
            Outcome::Requeue
        } else {
            Outcome::Done(new)
        })
    }

    /// A deleted binding: clean up, then let it go.
    async fn finalize(&self, ctx: &Ctx, b: &Value) -> Result<Option<Instant>, ()> {
        if !meta::finalizers(b).iter().any(|f| f == FINALIZER) {
            return Ok(None);
        }
        if let Err(f) = self.cleanup(ctx, b).await {
            ctx.event(
                b,
                true,
                "FailedCleanup",
                &format!("Failed cleanup due to {}", f.message),
                COMPONENT,
            );
            let now = meta::now();
            let ready = json!({
                "type": "Ready", "status": "False", "reason": "FailedCleanup",
                "message": f.message, "lastTransitionTime": now,
                "observedGeneration": b["metadata"]["generation"],
            });
            let patch = json!({ "status": { "conditions": [ready] } });
            let _ = ctx.patch(
                TARGETGROUPBINDINGS,
                meta::namespace(b),
                meta::name(b),
                &patch,
                Part::Status,
            );
            return Err(());
        }
        let rest: Vec<String> = meta::finalizers(b)
            .into_iter()
            .filter(|f| f != FINALIZER)
            .collect();
        let patch = json!({ "metadata": { "finalizers": rest } });
        if let Err(e) = ctx.patch(
            TARGETGROUPBINDINGS,
            meta::namespace(b),
            meta::name(b),
            &patch,
            Part::Main,
        ) && e.code != 404
        {
            ctx.event(
                b,
                true,
                "FailedRemoveFinalizer",
                &format!("Failed remove finalizer due to {}", e.message),
                COMPONENT,
            );
            return Err(());
        }
        Ok(None)
    }

    /// The resource manager's Cleanup: deregister the binding's targets (a group that is
    /// gone has none), drop its multicluster ConfigMap, and mark its pods' gates True.
    async fn cleanup(&self, ctx: &Ctx, b: &Value) -> Result<(), Failure> {
        match self.list_targets(ctx, b).await {
            Ok(targets) => {
                let all: Vec<Target> = targets.into_iter().map(|t| t.target).collect();
                match self.deregister(ctx, b, &all).await {
                    Err(f) if !f.group_gone => return Err(f),
                    _ => {}
                }
            }
            Err(f) if !f.group_gone => return Err(f),
            Err(_) => {}
        }
        lock(&self.tracked).remove(&key_of(b));
        if b["spec"]["multiClusterTargetGroup"] == true
            && let Err(e) = ctx.delete(CONFIGMAPS, meta::namespace(b), &tracked_name(b), false)
            && e.code != 404
        {
            return Err(Failure::kube("delete the tracked targets", b, &e));
        }
        let gate_type = gate(meta::name(b));
        let deleted = TargetHealth {
            id: String::new(),
            port: None,
            state: "healthy".into(),
            reason: None,
            description: Some("Target Group Binding is deleted".into()),
        };
        for pod in ctx.list(PODS, Some(meta::namespace(b))) {
            if has_gate(&pod, &gate_type) {
                set_gate(ctx, &pod, &gate_type, Some(&deleted));
            }
        }
        Ok(())
    }

    /// The group's targets as the controller sees them: cached for
    /// [`Delays::lbc_targets_cache`](super::Delays) after a full DescribeTargetHealth,
    /// with only the targets not known healthy described again.
    async fn list_targets(&self, ctx: &Ctx, b: &Value) -> Result<Vec<Known>, Failure> {
        let aws = ctx.aws.as_ref().expect("checked by the pass");
        let arn = arn(b);
        let cached = lock(&self.targets)
            .get(&arn)
            .filter(|c| c.expires > Instant::now())
            .map(|c| c.targets.clone());
        let Some(cached) = cached else {
            let all = aws
                .describe_target_health_of(&arn, &[])
                .await
                .map_err(|e| Failure::aws("DescribeTargetHealth", &e))?;
            let targets: Vec<Known> = all.into_iter().map(known).collect();
            lock(&self.targets).insert(
                arn,
                Cached {
                    expires: Instant::now() + ctx.delays.lbc_targets_cache,
                    targets: targets.clone(),
                },
            );
            return Ok(targets);
        };
        let (mut fresh, stale): (Vec<Known>, Vec<Known>) =
            cached.into_iter().partition(Known::healthy);
        if !stale.is_empty() {
            let ask: Vec<Target> = stale.iter().map(|t| t.target.clone()).collect();
            let answers = aws
                .describe_target_health_of(&arn, &ask)
                .await
                .map_err(|e| Failure::aws("DescribeTargetHealth", &e))?;
            fresh.extend(
                answers
                    .into_iter()
                    .map(known)
                    .filter(|t| !t.not_registered()),
            );
        }
        if let Some(c) = lock(&self.targets).get_mut(&arn) {
            c.targets = fresh.clone();
        }
        Ok(fresh)
    }

    /// Registers targets (in chunks), and records them in the cached view with their
    /// health unknown.
    async fn register(&self, ctx: &Ctx, b: &Value, targets: &[Target]) -> Result<(), Failure> {
        let aws = ctx.aws.as_ref().expect("checked by the pass");
        let arn = arn(b);
        for chunk in targets.chunks(CHUNK) {
            aws.register_targets(&arn, chunk)
                .await
                .map_err(|e| Failure::aws("RegisterTargets", &e))?;
            if let Some(c) = lock(&self.targets).get_mut(&arn) {
                for t in chunk {
                    c.targets.retain(|k| k.target != *t);
                    c.targets.push(Known {
                        target: t.clone(),
                        health: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// Deregisters the targets this binding may (all of them, or with
    /// `multiClusterTargetGroup` only those it tracked); whether the tracked set must be
    /// written.
    async fn deregister(&self, ctx: &Ctx, b: &Value, targets: &[Target]) -> Result<bool, Failure> {
        let (targets, track) = if b["spec"]["multiClusterTargetGroup"] == true {
            match self.tracked(ctx, b) {
                // First reconcile of a shared group: nothing is known to be ours.
                None => (Vec::new(), true),
                Some(mine) => (
                    targets
                        .iter()
                        .filter(|t| mine.contains(&t.key()))
                        .cloned()
                        .collect(),
                    false,
                ),
            }
        } else {
            (targets.to_vec(), false)
        };
        if targets.is_empty() {
            return Ok(track);
        }
        let aws = ctx.aws.as_ref().expect("checked by the pass");
        let arn = arn(b);
        for chunk in targets.chunks(CHUNK) {
            aws.deregister_targets(&arn, chunk)
                .await
                .map_err(|e| Failure::aws("DeregisterTargets", &e))?;
            if let Some(c) = lock(&self.targets).get_mut(&arn) {
                c.targets.retain(|k| !chunk.contains(&k.target));
            }
        }
        Ok(true)
    }

    /// The multicluster ConfigMap's targets: the in-memory copy, else the ConfigMap (None
    /// when there is none yet).
    fn tracked(&self, ctx: &Ctx, b: &Value) -> Option<BTreeSet<String>> {
        let key = key_of(b);
        if let Some(t) = lock(&self.tracked).get(&key) {
            return Some(t.clone());
        }
        let cm = ctx.get(CONFIGMAPS, meta::namespace(b), &tracked_name(b))?;
        let set: BTreeSet<String> = cm["data"]["targets"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        lock(&self.tracked).insert(key, set.clone());
        Some(set)
    }

    /// Writes the binding's endpoints as its tracked targets (multicluster only): when
    /// asked, or when this controller has no copy yet.
    fn track(
        &self,
        ctx: &Ctx,
        b: &Value,
        requested: bool,
        eps: &[Endpoint],
    ) -> Result<(), Failure> {
        if b["spec"]["multiClusterTargetGroup"] != true {
            return Ok(());
        }
        let key = key_of(b);
        if !requested && lock(&self.tracked).contains_key(&key) {
            return Ok(());
        }
        let set: BTreeSet<String> = eps.iter().map(|e| e.target.key()).collect();
        let csv = set.iter().cloned().collect::<Vec<_>>().join(",");
        let ns = meta::namespace(b);
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": tracked_name(b), "namespace": ns },
            "data": { "targets": csv },
        });
        let written = match ctx.update(CONFIGMAPS, ns, cm.clone()) {
            Err(e) if e.code == 404 => ctx.create(CONFIGMAPS, ns, cm),
            other => other,
        };
        written.map_err(|e| Failure::kube("persist the tracked targets", b, &e))?;
        lock(&self.tracked).insert(key, set);
        Ok(())
    }
}

fn arn(b: &Value) -> String {
    b["spec"]["targetGroupARN"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn tracked_name(b: &Value) -> String {
    format!("{TRACKED_PREFIX}{}", meta::name(b))
}

/// Writes the checkpoint (and its timestamp) on the binding.
fn save_checkpoint(ctx: &Ctx, b: &Value, value: &str) -> Result<Value, crate::error::ApiError> {
    let at = jiff::Timestamp::now().as_second().to_string();
    let patch =
        json!({ "metadata": { "annotations": { CHECKPOINT: value, CHECKPOINT_TIMESTAMP: at } } });
    ctx.patch(
        TARGETGROUPBINDINGS,
        meta::namespace(b),
        meta::name(b),
        &patch,
        Part::Main,
    )
}

/// Sets a pod's gate condition from its target's health (`True` when healthy, `False`
/// otherwise, `Unknown` without health), as a strategic merge of that one condition with
/// the pod's uid as precondition; whether the target must be probed again.
fn set_gate(ctx: &Ctx, pod: &Value, gate_type: &str, health: Option<&TargetHealth>) -> bool {
    if !has_gate(pod, gate_type) {
        return false;
    }
    let status = match health {
        None => "Unknown",
        Some(h) if h.state == "healthy" => "True",
        Some(_) => "False",
    };
    let reason = health.and_then(|h| h.reason.clone()).unwrap_or_default();
    let message = health
        .and_then(|h| h.description.clone())
        .unwrap_or_default();
    let probe = status != "True";
    let existing = condition(pod, gate_type);
    if existing.is_some_and(|c| {
        c["status"] == status
            && c["reason"].as_str().unwrap_or_default() == reason
            && c["message"].as_str().unwrap_or_default() == message
    }) {
        return probe;
    }
    let transition = match existing {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(meta::now()),
    };
    let mut cond = json!({
        "type": gate_type, "status": status,
        "lastProbeTime": null, "lastTransitionTime": transition,
    });
    if !reason.is_empty() {
        cond["reason"] = json!(reason);
    }
    if !message.is_empty() {
        cond["message"] = json!(message);
    }
    let patch = json!({
        "metadata": { "uid": meta::uid(pod) },
        "status": { "conditions": [cond] },
    });
    match ctx.patch_as(
        PODS,
        meta::namespace(pod),
        meta::name(pod),
        PatchType::Strategic,
        &patch,
        Part::Status,
    ) {
        Ok(_) => probe,
        Err(e) if e.code == 404 => false,
        Err(e) => {
            tracing::debug!(pod = meta::name(pod), error = %e.message, "gate condition not set");
            probe
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(spec: Value) -> Value {
        json!({ "metadata": { "name": "web", "namespace": "web" }, "spec": spec })
    }

    #[test]
    fn a_checkpoint_hashes_the_stamped_endpoints_and_the_spec() {
        let e = |ip: &str, ms: i64| Endpoint {
            target: Target {
                id: ip.into(),
                port: 8080,
            },
            pod: None,
            created_ms: ms,
        };
        let b = binding(json!({ "targetType": "ip" }));
        let one = checkpoint(&[e("10.0.0.1", 1), e("10.0.0.2", 2)], &b);
        assert_eq!(
            one,
            checkpoint(&[e("10.0.0.2", 2), e("10.0.0.1", 1)], &b),
            "order does not count"
        );
        assert_ne!(one, checkpoint(&[e("10.0.0.1", 1)], &b));
        assert_ne!(
            one,
            checkpoint(&[e("10.0.0.1", 1), e("10.0.0.2", 3)], &b),
            "a pod replaced at the same address is a change"
        );
        let other = binding(json!({ "targetType": "ip", "multiClusterTargetGroup": true }));
        assert_ne!(
            one,
            checkpoint(&[e("10.0.0.1", 1), e("10.0.0.2", 2)], &other)
        );
        let (eps, spec) = one.split_once('/').unwrap();
        assert_eq!((eps.len(), spec.len()), (64, 64));
    }

    #[test]
    fn go_sdk_errors_name_the_operation_and_modeled_codes_plainly() {
        let gone = baton_aws::Error::NotFound {
            op: "describe target health of",
            resource: "arn".into(),
            code: "TargetGroupNotFound".into(),
            message: "One or more target groups not found".into(),
        };
        let m = sdk_error("DescribeTargetHealth", &gone);
        assert!(m.starts_with("operation error Elastic Load Balancing v2: DescribeTargetHealth, https response error StatusCode: 400, RequestID: "), "{m}");
        assert!(
            m.ends_with(", TargetGroupNotFound: One or more target groups not found"),
            "{m}"
        );
        let denied = baton_aws::Error::Service {
            op: "register targets in",
            resource: "arn".into(),
            code: "AccessDenied".into(),
            message: "no".into(),
            status: 403,
        };
        assert!(sdk_error("RegisterTargets", &denied).ends_with("api error AccessDenied: no"));
    }

    #[test]
    fn instance_ids_come_from_the_provider_id() {
        let node = |p: &str| json!({ "metadata": { "name": "n" }, "spec": { "providerID": p } });
        assert_eq!(
            instance_id(&node("aws:///us-east-1a/i-0abc")).unwrap(),
            "i-0abc"
        );
        assert!(matches!(
            instance_id(&node("")),
            Err(ResolveError::Other(m)) if m == "providerID is not specified for node: n"
        ));
        assert!(instance_id(&node("kind://docker/n")).is_err());
    }

    #[test]
    fn the_default_node_selector_leaves_out_excluded_and_fargate_nodes() {
        let b = binding(json!({ "nodeSelector": { "matchLabels": { "pool": "web" } } }));
        let node = |labels: Value| json!({ "metadata": { "name": "n", "labels": labels } });
        assert!(node_selected(&b, &node(json!({ "pool": "web" }))));
        assert!(!node_selected(&b, &node(json!({ "pool": "db" }))));
        assert!(!node_selected(
            &b,
            &node(
                json!({ "pool": "web", "node.kubernetes.io/exclude-from-external-load-balancers": "" })
            )
        ));
        assert!(!node_selected(
            &b,
            &node(json!({ "pool": "web", "eks.amazonaws.com/compute-type": "fargate" }))
        ));
        let tainted = json!({ "spec": { "taints": [{ "key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule" }] } });
        assert!(!suitable_as_proxy(&tainted));
    }

    #[test]
    fn named_target_ports_are_looked_up_in_the_containers() {
        let pod = json!({ "spec": { "containers": [{ "name": "c", "ports": [{ "name": "http", "containerPort": 8080 }] }] } });
        assert_eq!(pod_port(&pod, &json!("http")), Some(8080));
        assert_eq!(pod_port(&pod, &json!("grpc")), None);
        assert_eq!(pod_port(&pod, &json!(9090)), Some(9090));
    }
}
