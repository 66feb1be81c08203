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
//! Pods are synced concurrently (at most [`CONCURRENCY`] at once), as kubelets on
//! different nodes are independent: first the stopping ones, so a stopped pod's last
//! fingerprint is written before any pod started in the same pass reads it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{NODES, PODS, PVCS, PVS, VOLUMEATTACHMENTS, pod_claims};
use super::attach::attachment_name;
use super::binder::ebs_volume_id;
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

#[derive(Default)]
pub(crate) struct Kubelet {
    starting: Mutex<HashMap<String, Instant>>,
    stopping: Mutex<HashMap<String, Instant>>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
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
            let mut wake: Option<Instant> = None;
            let mut soonest = |at: Instant| wake = Some(wake.map_or(at, |w| w.min(at)));
            let (stopping, others): (Vec<_>, Vec<_>) = ctx
                .list(PODS, None)
                .into_iter()
                .filter(|p| {
                    p["spec"]["nodeName"]
                        .as_str()
                        .is_some_and(|n| !n.is_empty())
                })
                .partition(|p| meta::is_deleting(p));
            for pods in [stopping, others] {
                let syncs: Vec<_> = pods
                    .iter()
                    .map(|pod| {
                        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
                        self.sync_pod(ctx, pod, node)
                    })
                    .collect();
                let wakes: Vec<Option<Instant>> = futures::stream::iter(syncs)
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await;
                for at in wakes.into_iter().flatten() {
                    soonest(at);
                }
            }
            if let Some(at) = self.flush_due(ctx).await {
                soonest(at);
            }
            wake
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Kubelet {
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
            if let Some(r) = self.running.lock().await.remove(&uid) {
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
            self.running.lock().await.insert(uid.clone(), r);
        }
        lock(&self.starting).remove(&uid);
        None
    }

    /// Writes fingerprints that are due; returns when the next flush is due.
    async fn flush_due(&self, ctx: &Ctx) -> Option<Instant> {
        let every = ctx.delays.fingerprint_flush;
        let mut running = self.running.lock().await;
        let due: Vec<String> = running
            .iter()
            .filter(|(_, r)| !r.volumes.is_empty() && r.last_flush.elapsed() >= every)
            .map(|(uid, _)| uid.clone())
            .collect();
        let writes: Vec<_> = due.iter().map(|uid| flush(ctx, &running[uid])).collect();
        futures::stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        let flushed = Instant::now();
        for uid in &due {
            if let Some(r) = running.get_mut(uid) {
                r.last_flush = flushed;
            }
        }
        running
            .values()
            .filter(|r| !r.volumes.is_empty())
            .map(|r| r.last_flush + every)
            .min()
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
