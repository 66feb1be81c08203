//! The kubelets of every node: a scheduled pod starts once each EBS volume it uses is
//! attached to its node (ContainerCreating until then), then runs Ready; a deleted pod
//! stops (after the modelled grace) and is removed, which lets detach and pvc-protection
//! proceed.
//!
//! A pod with readiness gates (`spec.readinessGates`) is Ready only when its containers
//! are and every gate's condition is True; the kubelet writes its own conditions and keeps
//! the others (a gate's, which its controller owns), and while the pod runs its Ready
//! follows them.
//!
//! A pod whose ServiceAccount names an IAM role (`eks.amazonaws.com/role-arn`) starts
//! only if STS would give it the role's credentials (`irsa.rs`); otherwise its
//! containers crash-loop (`CrashLoopBackOff`, a `BackOff` Warning with the SDK's error,
//! restarts with the kubelet's doubling back-off) until the role's trust admits it.
//!
//! While a pod runs, it advances a data fingerprint stored with each of its EBS volumes
//! (the EC2 tag `baton.sim/fingerprint`): on start it reads the value the volume carries,
//! counts up while running, and writes the value back when it stops (and periodically).
//! A test can so prove green continues from blue's last value — nothing lost, nothing
//! forked. `baton.sim/fingerprint-writer` names the pod and the value it started from.
//!
//! A pod's address is taken, when its sandbox is made (after its volumes), from its
//! node's warm pool of VPC addresses (`ipamd.rs`), without an AWS call; a pod whose
//! node has none free waits in `ContainerCreating`, and its address returns to the pool
//! when it stops.
//!
//! Each pod is synced by a worker of its own (at most [`CONCURRENCY`] at once), as
//! kubelets on different nodes are independent, outside the pass, so one pod's EC2 calls
//! hold up no other pod. A stopped pod's last fingerprint is written before it is
//! removed, and nothing can start on its volume before that: the volume's attachment (or,
//! on the same node, the StatefulSet's replacement pod) waits for the pod to be gone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{NODES, PODS, PVCS, PVS, VOLUMEATTACHMENTS, pod_claims};
use super::attach::{attachment_name, instance_of};
use super::binder::ebs_volume_id;
use super::ipamd::NoAddress;
use super::irsa;
use super::workers::Workers;
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;
use crate::patch::PatchType;
use crate::store::Use;

/// The EC2 tag holding a volume's data fingerprint.
pub const FINGERPRINT_TAG: &str = "baton.sim/fingerprint";
/// The EC2 tag naming the last writer of the fingerprint.
pub const FINGERPRINT_WRITER_TAG: &str = "baton.sim/fingerprint-writer";

/// Pods synced at once.
const CONCURRENCY: usize = 16;

/// The kubelet's longest back-off before restarting a failed container.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Running {
    pod: String,
    started: Instant,
    last_flush: Instant,
    /// Volume id → the fingerprint it had when this pod started.
    volumes: Vec<(String, u64)>,
}

pub(crate) struct Kubelet {
    state: Arc<State>,
    /// One per pod uid.
    pods: Workers,
    /// The periodic fingerprint writes (one key).
    flushes: Workers,
    /// Pod uid → namespace and name, for the worker keys a pass looks at again.
    names: Mutex<HashMap<String, (String, String)>>,
}

impl Default for Kubelet {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            pods: Workers::new(CONCURRENCY),
            flushes: Workers::new(1),
            names: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct State {
    starting: Mutex<HashMap<String, Instant>>,
    stopping: Mutex<HashMap<String, Instant>>,
    running: Mutex<HashMap<String, Running>>,
    /// Crash-looping pods (uid) → when their containers are restarted.
    backoff: Mutex<HashMap<String, Instant>>,
    next_ip: Mutex<u32>,
}

impl Controller for Kubelet {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("", "pods"),
            ("storage.k8s.io", "volumeattachments"),
            ("", "persistentvolumeclaims"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            let pods = match scope.is_all() {
                true => {
                    let pods = ctx.list(PODS, None);
                    let live: HashSet<&str> = pods.iter().map(|p| meta::uid(p)).collect();
                    lock(&self.names).retain(|uid, _| live.contains(uid.as_str()));
                    pods
                }
                false => self.touched(ctx, scope),
            };
            for pod in pods {
                let Some(node) = pod["spec"]["nodeName"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                else {
                    continue;
                };
                if pod["status"]["phase"] == "Running"
                    && !meta::is_deleting(&pod)
                    && !crash_looping(&pod)
                {
                    follow_readiness_gates(ctx, &pod);
                }
                // Only a stopping or a starting pod has work.
                if !(meta::is_deleting(&pod)
                    || pod["status"]["phase"] == "Pending"
                    || crash_looping(&pod))
                {
                    continue;
                }
                let uid = meta::uid(&pod).to_string();
                lock(&self.names).insert(
                    uid.clone(),
                    (meta::namespace(&pod).into(), meta::name(&pod).into()),
                );
                let (state, wctx) = (self.state.clone(), ctx.for_worker());
                self.pods.spawn(uid, &ctx.wake, async move {
                    state.sync_pod(&wctx, &pod, &node).await
                });
            }
            if self.flushes.busy(FLUSH) {
                // Its end asks for the next one.
                return None;
            }
            let next = self.state.next_flush(ctx);
            if next.is_some_and(|at| at <= Instant::now()) {
                let (state, wctx) = (self.state.clone(), ctx.for_worker());
                self.flushes.spawn(FLUSH.into(), &ctx.wake, async move {
                    state.flush_due(&wctx).await
                });
                return None;
            }
            next
        })
    }
}

/// The periodic fingerprint writes' worker key.
const FLUSH: &str = "fingerprints";

impl Kubelet {
    /// The pods a pass woken by changes must look at: the changed pods, those that mount
    /// a changed claim or the claim of a changed attachment's PV (as the kubelet's volume
    /// manager is woken for its pods' volumes), and
    /// those of the worker keys to look at again. Each as it is now; a deleted one is
    /// gone.
    fn touched(&self, ctx: &Ctx, scope: &Scope) -> Vec<Arc<Value>> {
        let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
        for (pod, _) in scope.changed("", "pods") {
            keys.insert((meta::namespace(pod).into(), meta::name(pod).into()));
        }
        {
            let names = lock(&self.names);
            keys.extend(
                scope
                    .again()
                    .iter()
                    .filter_map(|uid| names.get(uid).cloned()),
            );
        }
        let mut claims: BTreeSet<(String, String)> = BTreeSet::new();
        for (claim, _) in scope.changed("", "persistentvolumeclaims") {
            claims.insert((meta::namespace(claim).into(), meta::name(claim).into()));
        }
        for (va, _) in scope.changed("storage.k8s.io", "volumeattachments") {
            let pv = va["spec"]["source"]["persistentVolumeName"]
                .as_str()
                .and_then(|name| ctx.get(PVS, "", name));
            let r = pv.as_ref().map(|pv| &pv["spec"]["claimRef"]);
            if let Some((Some(ns), Some(name))) =
                r.map(|r| (r["namespace"].as_str(), r["name"].as_str()))
            {
                claims.insert((ns.into(), name.into()));
            }
        }
        for (ns, claim) in &claims {
            for pod in ctx.users(Use::Claim, ns, claim) {
                keys.insert((ns.clone(), meta::name(&pod).into()));
            }
        }
        keys.into_iter()
            .filter_map(|(ns, name)| ctx.get(PODS, &ns, &name))
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    async fn sync_pod(&self, ctx: &Ctx, pod: &Value, node: &str) -> Option<Instant> {
        let uid = meta::uid(pod).to_string();
        let ns = meta::namespace(pod);
        let name = meta::name(pod);
        if meta::is_deleting(pod) {
            let stop_at = *lock(&self.stopping)
                .entry(uid.clone())
                .or_insert_with(|| Instant::now() + ctx.delays.pod_stop);
            if Instant::now() < stop_at {
                return Some(stop_at);
            }
            let stopped = lock(&self.running).remove(&uid);
            if let Some(r) = stopped {
                flush(ctx, &r).await;
            }
            if ctx.delete(PODS, ns, name, true).is_ok() {
                ctx.event(pod, false, "Killing", "Stopping container", "kubelet");
            }
            // The sandbox is gone: the CNI gives its address back to the node's pool.
            ctx.pools.release(&uid);
            lock(&self.stopping).remove(&uid);
            lock(&self.starting).remove(&uid);
            lock(&self.backoff).remove(&uid);
            return None;
        }
        if pod["status"]["phase"] != "Pending" && !crash_looping(pod) {
            return None;
        }
        if let Some(&restart_at) = lock(&self.backoff).get(&uid)
            && Instant::now() < restart_at
        {
            return Some(restart_at);
        }
        let volumes = match volumes_ready(ctx, pod, node) {
            Ok(v) => v,
            Err(waiting) => {
                container_creating(ctx, pod, node);
                tracing::trace!(pod = name, waiting, "pod waits for its volumes");
                return None;
            }
        };
        let start_at = *lock(&self.starting)
            .entry(uid.clone())
            .or_insert_with(|| Instant::now() + ctx.delays.pod_start);
        if Instant::now() < start_at {
            return Some(start_at);
        }
        // The sandbox's network: the pod's address, from its node's warm pool (no AWS
        // call); without one the pod waits, and is woken when its node's pool has one.
        let pod_ip = match self.pod_ip(ctx, pod, node) {
            Ok(ip) => ip,
            Err(why) => {
                container_creating(ctx, pod, node);
                if let NoAddress::Exhausted(detail) = &why {
                    let sandbox = meta::uid(pod).replace('-', "").repeat(2);
                    ctx.event(pod, true, "FailedCreatePodSandBox", &format!("Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"{sandbox}\": plugin type=\"aws-cni\" name=\"aws-cni\" failed (add): add cmd: failed to assign an IP address to container"), "kubelet");
                    tracing::debug!(pod = name, node, ?detail, "no address for the pod");
                }
                return None;
            }
        };
        if let Err(refusal) = irsa::pod_credentials(ctx, pod).await {
            lock(&self.starting).remove(&uid);
            return Some(self.back_off(ctx, pod, node, &pod_ip, &refusal));
        }
        let mut fingerprints = Vec::new();
        if let Some(aws) = &ctx.aws
            && !volumes.is_empty()
        {
            match aws.describe_volumes_by_id(&volumes).await {
                Ok(vs) => {
                    for v in vs {
                        let value = v
                            .tags
                            .get(FINGERPRINT_TAG)
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0);
                        fingerprints.push((v.id, value));
                    }
                }
                Err(e) => {
                    ctx.event(
                        pod,
                        true,
                        "FailedMount",
                        &format!("MountVolume.SetUp failed: {e}"),
                        "kubelet",
                    );
                    return Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
        let now = meta::now();
        let restarts = restarts(pod);
        let statuses: Vec<Value> = containers(pod)
            .iter()
            .map(|c| json!({
                "name": c["name"], "image": c["image"], "imageID": format!("{}@sha256:0", c["image"].as_str().unwrap_or_default()),
                "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()),
                "ready": true, "started": true, "restartCount": restarts, "state": { "running": { "startedAt": now } },
            }))
            .collect();
        let status = json!({ "status": {
            "phase": "Running",
            "conditions": with_others(pod, json!([
                { "type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now },
                { "type": "Initialized", "status": "True", "lastTransitionTime": now },
                ready_condition(pod, &now),
                { "type": "ContainersReady", "status": "True", "lastTransitionTime": now },
                { "type": "PodScheduled", "status": "True", "lastTransitionTime": now },
            ])),
            "hostIP": host_ip(ctx, node),
            "podIP": pod_ip, "podIPs": [{ "ip": pod_ip }],
            "startTime": start_time(pod, &now),
            "containerStatuses": statuses,
        } });
        if ctx.patch(PODS, ns, name, &status, Part::Status).is_ok() {
            ctx.event(pod, false, "Started", "Started container", "kubelet");
            let started = Instant::now();
            let r = Running {
                pod: format!("{}/{ns}/{name}", ctx.cluster.spec.name),
                started,
                last_flush: started,
                volumes: fingerprints,
            };
            lock(&self.running).insert(uid.clone(), r);
        }
        lock(&self.starting).remove(&uid);
        lock(&self.backoff).remove(&uid);
        None
    }

    /// The pod's address: the one it has (kept in its node's pool); its node's for a
    /// host-network pod; on a node that is an EC2 instance, a free one of the node's pool
    /// (the VPC CNI's, `ipamd.rs`), taken without an AWS call; on a node that is none (a
    /// control plane without AWS), the next of 10.64.0.0/10, in no network.
    fn pod_ip(&self, ctx: &Ctx, pod: &Value, node: &str) -> Result<String, NoAddress> {
        if pod["spec"]["hostNetwork"] == true
            && let Some(ip) = host_ip(ctx, node).as_str()
        {
            return Ok(ip.to_string());
        }
        let instance = ctx
            .aws
            .as_ref()
            .and_then(|_| ctx.get(NODES, "", node))
            .and_then(|n| instance_of(&n));
        let uid = meta::uid(pod);
        if let Some(ip) = pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty()) {
            if let (Some(_), Ok(addr)) = (&instance, ip.parse()) {
                ctx.pools.keep(node, uid, addr);
            }
            return Ok(ip.to_string());
        }
        if let Some(instance) = instance {
            return ctx
                .pools
                .take(node, &instance, uid, &ctx.wake)
                .map(|ip| ip.to_string());
        }
        let n = {
            let mut ip = lock(&self.next_ip);
            *ip += 1;
            *ip
        };
        Ok(format!(
            "10.{}.{}.{}",
            64 + (n >> 16) % 64,
            (n >> 8) & 0xff,
            (n & 0xff).max(2)
        ))
    }

    /// The pod's containers ran and failed (its SDK got no credentials): the pod runs
    /// not Ready, its containers wait in `CrashLoopBackOff`, and a `BackOff` Warning
    /// says why. Returns when they are restarted.
    fn back_off(
        &self,
        ctx: &Ctx,
        pod: &Value,
        node: &str,
        pod_ip: &str,
        why: &irsa::Refusal,
    ) -> Instant {
        let (ns, name, uid) = (meta::namespace(pod), meta::name(pod), meta::uid(pod));
        let restarts = restarts(pod);
        let delay = backoff(ctx.delays.restart_backoff, restarts);
        let restart_at = Instant::now() + delay;
        lock(&self.backoff).insert(uid.to_string(), restart_at);
        let now = meta::now();
        let names: Vec<&str> = containers_names(pod);
        let statuses: Vec<Value> = containers(pod)
            .iter()
            .map(|c| {
                let cname = c["name"].as_str().unwrap_or_default();
                json!({
                    "name": c["name"], "image": c["image"], "imageID": format!("{}@sha256:0", c["image"].as_str().unwrap_or_default()),
                    "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()),
                    "ready": false, "started": false, "restartCount": restarts,
                    "state": { "waiting": { "reason": "CrashLoopBackOff",
                        "message": format!("back-off {}s restarting failed container={cname} pod={name}_{ns}({uid})", delay.as_secs()) } },
                    "lastState": { "terminated": { "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now } },
                })
            })
            .collect();
        let unready = format!("containers with unready status: [{}]", names.join(" "));
        let status = json!({ "status": {
            "phase": "Running",
            "conditions": with_others(pod, json!([
                { "type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now },
                { "type": "Initialized", "status": "True", "lastTransitionTime": now },
                { "type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": unready, "lastTransitionTime": now },
                { "type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "message": unready, "lastTransitionTime": now },
                { "type": "PodScheduled", "status": "True", "lastTransitionTime": now },
            ])),
            "hostIP": host_ip(ctx, node),
            "podIP": pod_ip, "podIPs": [{ "ip": pod_ip }],
            "startTime": start_time(pod, &now),
            "containerStatuses": statuses,
        } });
        if ctx.patch(PODS, ns, name, &status, Part::Status).is_ok() {
            for c in names {
                ctx.event(
                    pod,
                    true,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {c} in pod {name}_{ns}({uid}): {why}"
                    ),
                    "kubelet",
                );
            }
        }
        tracing::debug!(pod = name, %why, "pod refused its IAM role's credentials");
        restart_at
    }

    /// When the next periodic fingerprint write is due, if any pod runs on EBS volumes.
    fn next_flush(&self, ctx: &Ctx) -> Option<Instant> {
        let every = ctx.delays.fingerprint_flush;
        lock(&self.running)
            .values()
            .filter(|r| !r.volumes.is_empty())
            .map(|r| r.last_flush + every)
            .min()
    }

    /// Writes the fingerprints that are due; returns when the next write is due.
    async fn flush_due(&self, ctx: &Ctx) -> Option<Instant> {
        let every = ctx.delays.fingerprint_flush;
        let due: Vec<(String, Running)> = lock(&self.running)
            .iter()
            .filter(|(_, r)| !r.volumes.is_empty() && r.last_flush.elapsed() >= every)
            .map(|(uid, r)| (uid.clone(), r.clone()))
            .collect();
        let writes: Vec<_> = due.iter().map(|(_, r)| flush(ctx, r)).collect();
        futures::stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        let flushed = Instant::now();
        let mut running = lock(&self.running);
        for (uid, _) in &due {
            if let Some(r) = running.get_mut(uid) {
                r.last_flush = flushed;
            }
        }
        drop(running);
        self.next_flush(ctx)
    }
}

/// The fingerprint a running pod has reached on a volume that started at `base`.
fn advanced(ctx: &Ctx, r: &Running, base: u64) -> u64 {
    let every = ctx.delays.fingerprint_every.max(Duration::from_millis(1));
    base + 1 + (r.started.elapsed().as_millis() / every.as_millis()) as u64
}

async fn flush(ctx: &Ctx, r: &Running) {
    let Some(aws) = &ctx.aws else { return };
    for (volume, base) in &r.volumes {
        let value = advanced(ctx, r, *base);
        let tags = baton_aws::Tags::from([
            (FINGERPRINT_TAG.to_string(), value.to_string()),
            (
                FINGERPRINT_WRITER_TAG.to_string(),
                format!("{} from {base}", r.pod),
            ),
        ]);
        if let Err(e) = aws.create_tags(std::slice::from_ref(volume), &tags).await {
            tracing::warn!(error = %e, volume, "fingerprint not written");
        }
    }
}

/// The Ready condition of a pod whose containers are ready: True only if every
/// readiness gate's condition is True (the kubelet's `GeneratePodReadyCondition`).
fn ready_condition(pod: &Value, now: &str) -> Value {
    let conditions = pod["status"]["conditions"].as_array();
    let unready: Vec<String> = pod["spec"]["readinessGates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["conditionType"].as_str())
        .filter_map(
            |gate| match conditions.and_then(|cs| cs.iter().find(|c| c["type"] == gate)) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate \"{gate}\" does not exist."
                )),
                Some(c) if c["status"] != "True" => Some(format!(
                    "the status of pod readiness gate \"{gate}\" is not \"True\", but {}",
                    c["status"].as_str().unwrap_or_default()
                )),
                Some(_) => None,
            },
        )
        .collect();
    if unready.is_empty() {
        json!({ "type": "Ready", "status": "True", "lastTransitionTime": now })
    } else {
        json!({ "type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
                "message": unready.join(", "), "lastTransitionTime": now })
    }
}

/// The kubelet's conditions followed by the pod's conditions of other types (a
/// readiness gate's, which another controller owns), as its status manager keeps them.
fn with_others(pod: &Value, kubelet: Value) -> Value {
    let mut all = kubelet.as_array().cloned().unwrap_or_default();
    let owned: Vec<Value> = all.iter().map(|c| c["type"].clone()).collect();
    all.extend(
        pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| !owned.contains(&c["type"]))
            .cloned(),
    );
    json!(all)
}

/// A running pod with readiness gates and ready containers: its Ready condition follows
/// the gates' conditions (written by their controllers), as the kubelet recomputes it.
/// Only that condition is written (a strategic merge, by type).
fn follow_readiness_gates(ctx: &Ctx, pod: &Value) {
    let conditions = pod["status"]["conditions"].as_array();
    let find = |t: &str| conditions.and_then(|cs| cs.iter().find(|c| c["type"] == t));
    if pod["spec"]["readinessGates"]
        .as_array()
        .is_none_or(Vec::is_empty)
        || find("ContainersReady").is_none_or(|c| c["status"] != "True")
    {
        return;
    }
    let now = meta::now();
    let mut want = ready_condition(pod, &now);
    let have = find("Ready");
    let same = |k: &str| have.is_some_and(|h| h[k] == want[k]);
    if same("status") && same("reason") && same("message") {
        return;
    }
    if same("status") {
        want["lastTransitionTime"] = have.map_or(Value::Null, |h| h["lastTransitionTime"].clone());
    }
    for k in ["reason", "message"] {
        if want.get(k).is_none() {
            want[k] = Value::Null;
        }
    }
    let patch = json!({ "status": { "conditions": [want] } });
    let (ns, name) = (meta::namespace(pod), meta::name(pod));
    if let Err(e) = ctx.patch_as(PODS, ns, name, PatchType::Strategic, &patch, Part::Status) {
        tracing::debug!(pod = name, error = %e.message, "Ready not updated from readiness gates");
    }
}

/// Whether the pod's containers wait to be restarted after failing.
fn crash_looping(pod: &Value) -> bool {
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
}

/// The restart count of the pod's next containers: one more than a crash-looping
/// pod's, none for a first start.
fn restarts(pod: &Value) -> u64 {
    if crash_looping(pod) {
        pod["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
            + 1
    } else {
        0
    }
}

/// The kubelet's back-off after `restarts` restarts: `first`, doubled each time, at
/// most five minutes.
fn backoff(first: Duration, restarts: u64) -> Duration {
    let factor = 1u32 << restarts.min(16);
    first.saturating_mul(factor).min(MAX_BACKOFF)
}

/// When the pod was first started (kept across restarts).
fn start_time(pod: &Value, now: &str) -> Value {
    match &pod["status"]["startTime"] {
        Value::Null => json!(now),
        t => t.clone(),
    }
}

fn containers_names(pod: &Value) -> Vec<&str> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

fn containers(pod: &Value) -> Vec<Value> {
    pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The pod waits in `ContainerCreating` (its volumes, its sandbox's address).
fn container_creating(ctx: &Ctx, pod: &Value, node: &str) {
    if pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating" {
        return;
    }
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .map(|c| json!({ "name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false, "restartCount": 0, "state": { "waiting": { "reason": "ContainerCreating" } } }))
        .collect();
    let _ = ctx.patch(
        PODS,
        meta::namespace(pod),
        meta::name(pod),
        &json!({ "status": { "containerStatuses": statuses, "hostIP": host_ip(ctx, node) } }),
        Part::Status,
    );
}

fn host_ip(ctx: &Ctx, node: &str) -> Value {
    ctx.get(NODES, "", node)
        .and_then(|n| {
            n["status"]["addresses"].as_array().and_then(|a| {
                a.iter()
                    .find(|x| x["type"] == "InternalIP")
                    .map(|x| x["address"].clone())
            })
        })
        .unwrap_or(Value::Null)
}

/// The EBS volume ids of the pod once every claim is bound and every EBS volume is
/// attached to the node; otherwise what it waits for.
fn volumes_ready(ctx: &Ctx, pod: &Value, node: &str) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for claim in pod_claims(pod) {
        let pvc = ctx
            .get(PVCS, meta::namespace(pod), &claim)
            .ok_or_else(|| format!("claim {claim} missing"))?;
        if pvc["status"]["phase"] != "Bound" {
            return Err(format!("claim {claim} not bound"));
        }
        let pv_name = pvc["spec"]["volumeName"].as_str().unwrap_or_default();
        let pv = ctx
            .get(PVS, "", pv_name)
            .ok_or_else(|| format!("volume {pv_name} missing"))?;
        if let Some(id) = ebs_volume_id(&pv) {
            let attached = ctx
                .get(VOLUMEATTACHMENTS, "", &attachment_name(pv_name, node))
                .is_some_and(|va| va["status"]["attached"] == true);
            if !attached {
                return Err(format!("volume {pv_name} not attached to {node}"));
            }
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_back_off_doubles_up_to_five_minutes() {
        let first = Duration::from_secs(10);
        assert_eq!(backoff(first, 0), Duration::from_secs(10));
        assert_eq!(backoff(first, 1), Duration::from_secs(20));
        assert_eq!(backoff(first, 4), Duration::from_secs(160));
        assert_eq!(backoff(first, 5), MAX_BACKOFF);
        assert_eq!(backoff(first, 1000), MAX_BACKOFF);
    }

    #[test]
    fn a_pod_is_ready_only_when_every_readiness_gate_is_true() {
        let pod = |conditions: Value| {
            json!({ "spec": { "readinessGates": [{ "conditionType": "a/x" }, { "conditionType": "b/y" }] },
                    "status": { "conditions": conditions } })
        };
        let missing = ready_condition(&pod(json!([])), "now");
        assert_eq!(missing["status"], "False");
        assert_eq!(missing["reason"], "ReadinessGatesNotReady");
        assert_eq!(
            missing["message"],
            "corresponding condition of pod readiness gate \"a/x\" does not exist., corresponding condition of pod readiness gate \"b/y\" does not exist."
        );
        let one = ready_condition(
            &pod(
                json!([{ "type": "a/x", "status": "True" }, { "type": "b/y", "status": "False" }]),
            ),
            "now",
        );
        assert_eq!(
            one["message"],
            "the status of pod readiness gate \"b/y\" is not \"True\", but False"
        );
        let all = ready_condition(
            &pod(json!([{ "type": "a/x", "status": "True" }, { "type": "b/y", "status": "True" }])),
            "now",
        );
        assert_eq!(all["status"], "True");
        assert!(all.get("reason").is_none());
        let none = ready_condition(&json!({ "spec": {} }), "now");
        assert_eq!(
            none["status"], "True",
            "no gates, ready with its containers"
        );
    }

    #[test]
    fn the_kubelet_keeps_conditions_it_does_not_own() {
        let pod = json!({ "status": { "conditions": [
            { "type": "Ready", "status": "False" },
            { "type": "a/x", "status": "True", "reason": "theirs" },
        ] } });
        let out = with_others(&pod, json!([{ "type": "Ready", "status": "True" }]));
        assert_eq!(
            out,
            json!([{ "type": "Ready", "status": "True" }, { "type": "a/x", "status": "True", "reason": "theirs" }])
        );
    }

    #[test]
    fn restarts_count_only_after_a_failure() {
        let fresh = json!({ "status": { "phase": "Pending" } });
        assert_eq!(restarts(&fresh), 0);
        let looping = json!({ "status": { "containerStatuses": [{ "restartCount": 2,
            "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] } });
        assert!(crash_looping(&looping));
        assert_eq!(restarts(&looping), 3);
    }
}
