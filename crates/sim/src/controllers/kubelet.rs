//! The kubelets of every node: a scheduled pod starts once each EBS volume it uses is
//! attached to its node (ContainerCreating until then), then runs Ready; a deleted pod
//! stops (after the modelled grace) and is removed, which lets detach and pvc-protection
//! proceed.
//!
//! While a pod runs, it advances a data fingerprint stored with each of its EBS volumes
//! (the EC2 tag `baton.sim/fingerprint`): on start it reads the value the volume carries,
//! counts up while running, and writes the value back when it stops (and periodically).
//! A test can so prove green continues from blue's last value — nothing lost, nothing
//! forked. `baton.sim/fingerprint-writer` names the pod and the value it started from.
//!
//! Each pod is synced by a worker of its own (at most [`CONCURRENCY`] at once), as
//! kubelets on different nodes are independent, outside the pass, so one pod's EC2 calls
//! hold up no other pod. A stopped pod's last fingerprint is written before it is
//! removed, and nothing can start on its volume before that: the volume's attachment (or,
//! on the same node, the StatefulSet's replacement pod) waits for the pod to be gone.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{NODES, PODS, PVCS, PVS, VOLUMEATTACHMENTS, pod_claims};
use super::attach::attachment_name;
use super::binder::ebs_volume_id;
use super::workers::Workers;
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

/// The EC2 tag holding a volume's data fingerprint.
pub const FINGERPRINT_TAG: &str = "baton.sim/fingerprint";
/// The EC2 tag naming the last writer of the fingerprint.
pub const FINGERPRINT_WRITER_TAG: &str = "baton.sim/fingerprint-writer";

/// Pods synced at once.
const CONCURRENCY: usize = 16;

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
}

impl Default for Kubelet {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            pods: Workers::new(CONCURRENCY),
            flushes: Workers::new(1),
        }
    }
}

#[derive(Default)]
struct State {
    starting: Mutex<HashMap<String, Instant>>,
    stopping: Mutex<HashMap<String, Instant>>,
    running: Mutex<HashMap<String, Running>>,
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
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            for pod in ctx.list(PODS, None) {
                let Some(node) = pod["spec"]["nodeName"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                else {
                    continue;
                };
                // Only a stopping or a starting pod has work.
                if !(meta::is_deleting(&pod) || pod["status"]["phase"] == "Pending") {
                    continue;
                }
                let (state, wctx) = (self.state.clone(), ctx.for_worker());
                self.pods
                    .spawn(meta::uid(&pod).to_string(), &ctx.wake, async move {
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
            lock(&self.stopping).remove(&uid);
            lock(&self.starting).remove(&uid);
            return None;
        }
        if pod["status"]["phase"] != "Pending" {
            return None;
        }
        let volumes = match volumes_ready(ctx, pod, node) {
            Ok(v) => v,
            Err(waiting) => {
                if pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    != "ContainerCreating"
                {
                    let statuses: Vec<Value> = containers(pod)
                        .iter()
                        .map(|c| json!({ "name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false, "restartCount": 0, "state": { "waiting": { "reason": "ContainerCreating" } } }))
                        .collect();
                    let _ = ctx.patch(PODS, ns, name, &json!({ "status": { "containerStatuses": statuses, "hostIP": host_ip(ctx, node) } }), Part::Status);
                }
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
        let n = {
            let mut ip = lock(&self.next_ip);
            *ip += 1;
            *ip
        };
        let pod_ip = format!(
            "10.{}.{}.{}",
            64 + (n >> 16) % 64,
            (n >> 8) & 0xff,
            (n & 0xff).max(2)
        );
        let statuses: Vec<Value> = containers(pod)
            .iter()
            .map(|c| json!({
                "name": c["name"], "image": c["image"], "imageID": format!("{}@sha256:0", c["image"].as_str().unwrap_or_default()),
                "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()),
                "ready": true, "started": true, "restartCount": 0, "state": { "running": { "startedAt": now } },
            }))
            .collect();
        let status = json!({ "status": {
            "phase": "Running",
            "conditions": [
                { "type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now },
                { "type": "Initialized", "status": "True", "lastTransitionTime": now },
                { "type": "Ready", "status": "True", "lastTransitionTime": now },
                { "type": "ContainersReady", "status": "True", "lastTransitionTime": now },
                { "type": "PodScheduled", "status": "True", "lastTransitionTime": now },
            ],
            "hostIP": host_ip(ctx, node),
            "podIP": pod_ip, "podIPs": [{ "ip": pod_ip }],
            "startTime": now,
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
        None
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

fn containers(pod: &Value) -> Vec<Value> {
    pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
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
