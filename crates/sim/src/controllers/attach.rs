//! Attach and detach: the attach/detach controller (a VolumeAttachment for every EBS PV a
//! scheduled pod uses on its node, deleted when no pod there needs it) and the CSI
//! external-attacher with the EBS driver (EC2 AttachVolume/DetachVolume to the node's
//! instance). moto accepts a second attach and a cross-zone attach; AWS does not, so
//! the attacher checks both first and fails as AWS would (`VolumeInUse`,
//! `InvalidVolume.ZoneMismatch`), leaving the pod ContainerCreating with a
//! FailedAttachVolume event.
//!
//! The VolumeAttachments of different EBS volumes are worked on concurrently (at most
//! [`CONCURRENCY`] at once), by workers outside the pass, as the external-attacher's
//! workers do; those of one volume (even through two PVs) stay in order in one worker,
//! so the one-instance rule is checked against EC2's answer after the previous attach or
//! detach of it finished.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{NODES, PODS, PVCS, PVS, VOLUMEATTACHMENTS, pod_claims, pod_terminated};
use super::binder::ebs_volume_id;
use super::provisioner::EBS_CSI;
use super::workers::Workers;
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;
use crate::store::Use;

/// The finalizer the external-attacher holds on an attached VolumeAttachment.
pub const ATTACHER_FINALIZER: &str = "external-attacher/ebs-csi-aws-com";
const RETRY: Duration = Duration::from_secs(1);
/// Volumes worked on at once.
const CONCURRENCY: usize = 16;

/// Pods by the (node, PV) their claims put them on: where attach events are reported.
type Users = HashMap<(String, String), Vec<std::sync::Arc<Value>>>;

pub(crate) struct Attacher {
    state: Arc<State>,
    /// One per EBS volume.
    volumes: Workers,
    /// The PVs each worker key (volume) was handed out for: what a pass that skipped a
    /// busy key saw, to look at again when its task ends.
    pvs_of: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl Default for Attacher {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            volumes: Workers::new(CONCURRENCY),
            pvs_of: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct State {
    /// When each VolumeAttachment was first seen wanting attach / detach.
    seen: Mutex<HashMap<(String, bool), Instant>>,
    /// Next device letter per instance.
    devices: Mutex<HashMap<String, u32>>,
    /// Each instance's zone, as EC2 reported it (an instance never changes zone).
    zones: Mutex<HashMap<String, String>>,
    /// Attachments (attach / detach) AWS refused, with how many times in a row and
    /// when to try again: the external-attacher's per-item exponential backoff
    /// (`--retry-interval-start` 1 s doubling to `--retry-interval-max` 5 min).
    backoff: Mutex<HashMap<(String, bool), (u32, Instant)>>,
}

/// A failed attach: an error the attacher retries every [`RETRY`], or a refusal by AWS
/// authorization, retried with the external-attacher's backoff.
enum Failure {
    Error(String),
    Refused(String),
}

impl From<String> for Failure {
    fn from(m: String) -> Self {
        Self::Error(m)
    }
}

impl From<&str> for Failure {
    fn from(m: &str) -> Self {
        Self::Error(m.to_string())
    }
}

/// The external-attacher's backoff bounds.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Controller for Attacher {
    fn name(&self) -> &'static str {
        "attachdetach-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("", "pods"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("storage.k8s.io", "volumeattachments"),
            ("", "nodes"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            // A key looked at again is forgotten: a pass that finds it busy records it
            // anew.
            match touched_pvs(ctx, scope).and_then(|mut pvs| {
                let mut known = lock(&self.pvs_of);
                for key in scope.again() {
                    pvs.extend(known.remove(key)?);
                }
                Some(pvs)
            }) {
                None => {
                    let pvs: HashMap<String, Arc<Value>> = ctx
                        .list(PVS, None)
                        .into_iter()
                        .map(|p| (meta::name(&p).to_string(), p))
                        .collect();
                    // One read of the claims (a lookup each, not a store transaction each).
                    let claims: HashMap<(String, String), Arc<Value>> = ctx
                        .list(PVCS, None)
                        .into_iter()
                        .map(|c| {
                            (
                                (meta::namespace(&c).to_string(), meta::name(&c).to_string()),
                                c,
                            )
                        })
                        .collect();
                    let (desired, users) = desired(
                        ctx.list(PODS, None),
                        |ns, name| claims.get(&(ns.to_string(), name.to_string())).cloned(),
                        &pvs,
                    );
                    let vas = ctx.list(VOLUMEATTACHMENTS, None);
                    self.converge(ctx, &pvs, desired, users, vas);
                }
                Some(names) if names.is_empty() => {}
                Some(names) => {
                    let pvs: HashMap<String, Arc<Value>> = names
                        .iter()
                        .filter_map(|n| ctx.get(PVS, "", n).map(|p| (n.clone(), p)))
                        .collect();
                    let (desired, users) = desired(
                        users_of(ctx, scope, &names, &pvs),
                        |ns, name| ctx.get(PVCS, ns, name),
                        &pvs,
                    );
                    let vas = names
                        .iter()
                        .flat_map(|pv| ctx.users(Use::Volume, "", pv))
                        .collect();
                    self.converge(ctx, &pvs, desired, users, vas);
                }
            }
            None
        })
    }
}

impl Attacher {
    /// Makes the attachments `vas` (all of them, or all of some PVs') what `desired` says
    /// for the PVs in `pvs`: creates the missing, deletes the unwanted, and hands each
    /// volume with work to its worker.
    fn converge(
        &self,
        ctx: &Ctx,
        pvs: &HashMap<String, Arc<Value>>,
        desired: BTreeMap<String, (String, String)>,
        users: Users,
        vas: Vec<Arc<Value>>,
    ) {
        let have: BTreeSet<&str> = vas.iter().map(|v| meta::name(v)).collect();
        for (name, (pv, node)) in &desired {
            if !have.contains(name.as_str()) {
                let va = json!({
                    "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                    "metadata": { "name": name },
                    "spec": { "attacher": EBS_CSI, "nodeName": node, "source": { "persistentVolumeName": pv } },
                });
                if let Err(e) = ctx.create(VOLUMEATTACHMENTS, "", va) {
                    tracing::debug!(error = %e, "volumeattachment create failed");
                }
            }
        }
        // Each EBS volume's attachments in name order, one worker per volume (by volume
        // id: two PVs may name the same volume), for the volumes with work. A created
        // attachment comes back as a change.
        let mut by_volume: BTreeMap<String, (bool, Vec<String>, BTreeSet<String>)> =
            BTreeMap::new();
        for va in &vas {
            let name = meta::name(va).to_string();
            if !desired.contains_key(&name) && !meta::is_deleting(va) {
                let _ = ctx.delete(VOLUMEATTACHMENTS, "", &name, false);
                continue;
            }
            let pv = source_pv(va);
            let volume = pvs
                .get(pv)
                .and_then(|pv| ebs_volume_id(pv))
                .unwrap_or_else(|| format!("pv/{pv}"));
            let work = if meta::is_deleting(va) {
                meta::finalizers(va).iter().any(|f| f == ATTACHER_FINALIZER)
            } else {
                va["status"]["attached"] != true
            };
            let entry = by_volume.entry(volume).or_default();
            entry.0 |= work;
            entry.1.push(name);
            entry.2.insert(pv.to_string());
        }
        let users = Arc::new(users);
        let mut pvs_of = lock(&self.pvs_of);
        for (volume, (_, vas, pvs)) in by_volume.into_iter().filter(|(_, (work, ..))| *work) {
            pvs_of.entry(volume.clone()).or_default().extend(pvs);
            let (state, wctx, users) = (self.state.clone(), ctx.for_worker(), users.clone());
            self.volumes.spawn(volume, &ctx.wake, async move {
                state.sync_volume(&wctx, &vas, &users).await
            });
        }
    }
}

/// The PV a VolumeAttachment attaches.
fn source_pv(va: &Value) -> &str {
    va["spec"]["source"]["persistentVolumeName"]
        .as_str()
        .unwrap_or_default()
}

/// The PVs whose attachments a pass woken by changes must look at: those of the changed
/// PVs, claims, attachments and pods (through their claims); `reconcile` adds those of
/// the worker keys to look at again. `None` asks for a full pass: it was asked for, or
/// a node changed.
fn touched_pvs(ctx: &Ctx, scope: &Scope) -> Option<BTreeSet<String>> {
    if scope.is_all() || scope.touches("", "nodes") {
        return None;
    }
    let mut out = BTreeSet::new();
    for pv in scope.changed("", "persistentvolumes").flat_map(both) {
        out.insert(meta::name(pv).to_string());
    }
    for claim in scope.changed("", "persistentvolumeclaims").flat_map(both) {
        if let Some(v) = claim["spec"]["volumeName"]
            .as_str()
            .filter(|v| !v.is_empty())
        {
            out.insert(v.to_string());
        }
    }
    for va in scope
        .changed("storage.k8s.io", "volumeattachments")
        .flat_map(both)
    {
        out.insert(source_pv(va).to_string());
    }
    for pod in scope.changed("", "pods").flat_map(both) {
        for claim in pod_claims(pod) {
            if let Some(c) = ctx.get(PVCS, meta::namespace(pod), &claim)
                && let Some(v) = c["spec"]["volumeName"].as_str().filter(|v| !v.is_empty())
            {
                out.insert(v.to_string());
            }
        }
    }
    out.remove("");
    Some(out)
}

/// A change's object now and before.
fn both<'a>((now, old): (&'a Value, Option<&'a Value>)) -> impl Iterator<Item = &'a Value> {
    std::iter::once(now).chain(old)
}

/// The pods that may use the PVs `names`: those that mount a claim that names one of
/// them (each PV's claimRef, and changed claims).
fn users_of(
    ctx: &Ctx,
    scope: &Scope,
    names: &BTreeSet<String>,
    pvs: &HashMap<String, Arc<Value>>,
) -> Vec<Arc<Value>> {
    let mut claims: BTreeSet<(String, String)> = BTreeSet::new();
    for pv in pvs.values() {
        let r = &pv["spec"]["claimRef"];
        if let (Some(ns), Some(name)) = (r["namespace"].as_str(), r["name"].as_str()) {
            claims.insert((ns.to_string(), name.to_string()));
        }
    }
    for (claim, _) in scope.changed("", "persistentvolumeclaims") {
        if claim["spec"]["volumeName"]
            .as_str()
            .is_some_and(|v| names.contains(v))
        {
            claims.insert((
                meta::namespace(claim).to_string(),
                meta::name(claim).to_string(),
            ));
        }
    }
    // A pod mounting two of them is one user.
    let mut pods: BTreeMap<(String, String), Arc<Value>> = BTreeMap::new();
    for (ns, claim) in &claims {
        for pod in ctx.users(Use::Claim, ns, claim) {
            pods.insert((ns.clone(), meta::name(&pod).to_string()), pod);
        }
    }
    pods.into_values().collect()
}

/// The VolumeAttachment name for a PV on a node, as the CSI plugin derives it.
pub(crate) fn attachment_name(pv: &str, node: &str) -> String {
    let mut out = String::from("csi-");
    for seed in [
        0xcbf29ce484222325u64,
        0x84222325cbf29ce4,
        0x9e3779b97f4a7c15,
        0x2545f4914f6cdd1d,
    ] {
        let mut h = seed;
        for b in pv
            .bytes()
            .chain([0])
            .chain(EBS_CSI.bytes())
            .chain([0])
            .chain(node.bytes())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The attachments `pods` need (each PV in `pvs` an EBS PV its Bound claim names, on
/// the pod's node): VolumeAttachment name → (PV, node); and the pods on each (node, PV),
/// terminated or not, for events. PVs not in `pvs` are left out.
fn desired(
    pods: Vec<Arc<Value>>,
    claim: impl Fn(&str, &str) -> Option<Arc<Value>>,
    pvs: &HashMap<String, Arc<Value>>,
) -> (BTreeMap<String, (String, String)>, Users) {
    let mut out = BTreeMap::new();
    let mut users = Users::new();
    for pod in pods {
        let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            continue;
        };
        let terminated = pod_terminated(&pod);
        for name in pod_claims(&pod) {
            let Some(pvc) = claim(meta::namespace(&pod), &name) else {
                continue;
            };
            let Some(pv_name) = pvc["spec"]["volumeName"].as_str() else {
                continue;
            };
            let Some(pv) = pvs.get(pv_name) else {
                continue;
            };
            users
                .entry((node.to_string(), pv_name.to_string()))
                .or_default()
                .push(pod.clone());
            if terminated || pvc["status"]["phase"] != "Bound" {
                continue;
            }
            if ebs_volume_id(pv).is_some() {
                out.insert(
                    attachment_name(pv_name, node),
                    (pv_name.to_string(), node.to_string()),
                );
            }
        }
    }
    (out, users)
}

/// The EC2 instance behind a node (`spec.providerID` = `aws:///<zone>/<instance>`).
pub(crate) fn instance_of(node: &Value) -> Option<String> {
    node["spec"]["providerID"]
        .as_str()
        .and_then(|p| p.rsplit('/').next())
        .filter(|i| i.starts_with("i-"))
        .map(String::from)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn first_seen(&self, va: &str, detach: bool) -> Instant {
        *self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((va.to_string(), detach))
            .or_insert_with(Instant::now)
    }

    fn forget(&self, va: &str, detach: bool) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(va.to_string(), detach));
    }

    /// When a refused attachment may be tried again, if it must wait.
    fn backing_off(&self, va: &str, detach: bool) -> Option<Instant> {
        lock(&self.backoff)
            .get(&(va.to_string(), detach))
            .map(|(_, at)| *at)
            .filter(|at| Instant::now() < *at)
    }

    /// Records a refusal; returns when to try again.
    fn refused(&self, va: &str, detach: bool) -> Instant {
        let mut b = lock(&self.backoff);
        let entry = b
            .entry((va.to_string(), detach))
            .or_insert((0, Instant::now()));
        let wait = BACKOFF_START
            .saturating_mul(1u32 << entry.0.min(16))
            .min(BACKOFF_MAX);
        entry.0 += 1;
        entry.1 = Instant::now() + wait;
        entry.1
    }

    fn device_for(&self, instance: &str) -> String {
        let mut d = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let n = d.entry(instance.to_string()).or_insert(0);
        let letters = (b'a' + (*n / 26 % 26) as u8) as char;
        let second = (b'a' + (*n % 26) as u8) as char;
        *n += 1;
        format!("/dev/xvd{letters}{second}")
    }

    /// One volume's attachments (by name), in order, each as stored now (the pass that
    /// handed them out may be older); the soonest wake-up any of them asks for.
    async fn sync_volume(&self, ctx: &Ctx, vas: &[String], users: &Users) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        for name in vas {
            let Some(va) = ctx.get(VOLUMEATTACHMENTS, "", name) else {
                continue;
            };
            let step = if meta::is_deleting(&va) {
                self.detach(ctx, &va).await
            } else {
                self.attach(ctx, &va, users).await
            };
            if let Some(at) = step {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        wake
    }

    async fn attach(&self, ctx: &Ctx, va: &Value, users: &Users) -> Option<Instant> {
        if va["status"]["attached"] == true {
            return None;
        }
        let name = meta::name(va);
        let ready_at = self.first_seen(name, false) + ctx.delays.attach;
        if Instant::now() < ready_at {
            return Some(ready_at);
        }
        if let Some(at) = self.backing_off(name, false) {
            return Some(at);
        }
        let pv_name = va["spec"]["source"]["persistentVolumeName"]
            .as_str()
            .unwrap_or_default();
        let node_name = va["spec"]["nodeName"].as_str().unwrap_or_default();
        // The external-attacher puts its finalizers on before it calls the driver
        // (csi_handler.go): a VolumeAttachment or PV deleted while the attach is in flight
        // waits for the detach, rather than leaving the volume attached with nothing
        // pointing at it.
        if let Some(pv) = ctx.get(PVS, "", pv_name) {
            hold(ctx, PVS, &pv, true);
        }
        hold(ctx, VOLUMEATTACHMENTS, va, true);
        let outcome = self.attach_on_ec2(ctx, pv_name, node_name).await;
        let pods = users
            .get(&(node_name.to_string(), pv_name.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        match outcome {
            Ok(device) => {
                let status = json!({ "status": { "attached": true, "attachmentMetadata": { "devicePath": device }, "attachError": null } });
                let _ = ctx.patch(VOLUMEATTACHMENTS, "", name, &status, Part::Status);
                for p in pods {
                    ctx.event(
                        p,
                        false,
                        "SuccessfulAttachVolume",
                        &format!("AttachVolume.Attach succeeded for volume \"{pv_name}\" "),
                        "attachdetach-controller",
                    );
                }
                self.forget(name, false);
                lock(&self.backoff).remove(&(name.to_string(), false));
                None
            }
            Err(failure) => {
                let (message, retry_at) = match failure {
                    Failure::Error(m) => (m, Instant::now() + RETRY),
                    Failure::Refused(m) => {
                        let at = self.refused(name, false);
                        (m, at)
                    }
                };
                let status = json!({ "status": { "attached": false, "attachError": { "time": meta::now(), "message": message } } });
                if va["status"]["attachError"]["message"] != message {
                    let _ = ctx.patch(VOLUMEATTACHMENTS, "", name, &status, Part::Status);
                }
                for p in pods {
                    ctx.event(
                        p,
                        true,
                        "FailedAttachVolume",
                        &format!("AttachVolume.Attach failed for volume \"{pv_name}\" : {message}"),
                        "attachdetach-controller",
                    );
                }
                Some(retry_at)
            }
        }
    }

    /// Attaches through EC2 with AWS's rules; returns the device path or the error text.
    async fn attach_on_ec2(
        &self,
        ctx: &Ctx,
        pv_name: &str,
        node_name: &str,
    ) -> Result<String, Failure> {
        let pv = ctx
            .get(PVS, "", pv_name)
            .ok_or_else(|| format!("persistentvolume \"{pv_name}\" not found"))?;
        let volume_id = ebs_volume_id(&pv).ok_or("not an EBS volume")?;
        let node = ctx
            .get(NODES, "", node_name)
            .ok_or_else(|| format!("node \"{node_name}\" not found"))?;
        let instance = instance_of(&node)
            .ok_or_else(|| format!("node {node_name} has no EC2 instance in spec.providerID"))?;
        let aws = ctx
            .aws
            .as_ref()
            .ok_or("the emulator runs without EC2: cannot attach EBS volumes")?;
        let rpc = |m: String| {
            format!(
                "rpc error: code = Internal desc = Could not attach volume \"{volume_id}\" to node \"{instance}\": {m}"
            )
        };
        let volume = aws
            .describe_volumes_by_id(std::slice::from_ref(&volume_id))
            .await
            .map_err(|e| rpc(e.to_string()))?;
        let volume = volume.into_iter().next().ok_or_else(|| {
            rpc(format!(
                "InvalidVolume.NotFound: The volume '{volume_id}' does not exist."
            ))
        })?;
        let known = lock(&self.zones).get(&instance).cloned();
        let zone = match known {
            Some(z) => z,
            None => {
                let instances = aws
                    .describe_instances(&[baton_aws::Filter::new(
                        "instance-id",
                        [instance.clone()],
                    )])
                    .await
                    .map_err(|e| rpc(e.to_string()))?;
                let zone = instances
                    .first()
                    .map(|i| i.availability_zone.clone())
                    .ok_or_else(|| {
                        rpc(format!(
                            "InvalidInstanceID.NotFound: The instance ID '{instance}' does not exist"
                        ))
                    })?;
                lock(&self.zones).insert(instance.clone(), zone.clone());
                zone
            }
        };
        if let Some(a) = volume
            .attachments
            .iter()
            .find(|a| a.instance_id == instance)
        {
            return Ok(a.device.clone());
        }
        // AWS authorizes a request before it validates it.
        if let Some(role) = super::authz::driver_role(ctx) {
            let inst = describe_instance(aws, &instance)
                .await
                .map_err(|e| rpc(e.to_string()))?;
            match super::authz::authorize(aws, &role, "AttachVolume", &volume, &inst).await {
                Ok(()) => {}
                Err(super::authz::Refusal::Unauthorized(m)) => {
                    return Err(Failure::Refused(rpc(format!(
                        "could not attach volume \"{volume_id}\" to node \"{instance}\": {m}"
                    ))));
                }
                // EC2 accepted the AttachVolume, KMS refused EBS the grant, the volume
                // went back to `available`; the driver polled for an attachment that
                // never came until the external-attacher's deadline (the deadline's
                // length is not modelled; the modelled attach delay stands for it).
                Err(super::authz::Refusal::KeyInaccessible(why)) => {
                    tracing::debug!(volume = %volume_id, %why, "attach refused by KMS");
                    return Err(Failure::Refused(
                        "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
                            .to_string(),
                    ));
                }
                Err(super::authz::Refusal::Error(m)) => return Err(rpc(m).into()),
            }
        }
        if !volume.attachments.is_empty() && !volume.multi_attach {
            return Err(rpc(format!(
                "operation error EC2: AttachVolume, api error VolumeInUse: {volume_id} is already attached to an instance"
            )).into());
        }
        if volume.availability_zone != zone {
            return Err(rpc(format!(
                "operation error EC2: AttachVolume, api error InvalidVolume.ZoneMismatch: The volume '{volume_id}' is not in the same availability zone as instance '{instance}'"
            )).into());
        }
        let device = self.device_for(&instance);
        aws.attach_volume(&volume_id, &instance, &device)
            .await
            .map_err(|e| rpc(e.to_string()))?;
        Ok(device)
    }

    async fn detach(&self, ctx: &Ctx, va: &Value) -> Option<Instant> {
        let name = meta::name(va);
        if !meta::finalizers(va).iter().any(|f| f == ATTACHER_FINALIZER) {
            return None;
        }
        let ready_at = self.first_seen(name, true) + ctx.delays.detach;
        if Instant::now() < ready_at {
            return Some(ready_at);
        }
        let pv_name = va["spec"]["source"]["persistentVolumeName"]
            .as_str()
            .unwrap_or_default();
        let node_name = va["spec"]["nodeName"].as_str().unwrap_or_default();
        let volume_id = ctx.get(PVS, "", pv_name).and_then(|pv| ebs_volume_id(&pv));
        let instance = ctx.get(NODES, "", node_name).and_then(|n| instance_of(&n));
        if let (Some(v), Some(i), Some(aws)) = (&volume_id, &instance, &ctx.aws) {
            if let Some(at) = self.backing_off(name, true) {
                return Some(at);
            }
            let attached_here = aws
                .describe_volumes_by_id(std::slice::from_ref(v))
                .await
                .map(|vs| {
                    vs.into_iter()
                        .find(|vol| vol.attachments.iter().any(|a| &a.instance_id == i))
                });
            match attached_here {
                Ok(Some(volume)) => {
                    if let Some(role) = super::authz::driver_role(ctx) {
                        let refusal = match describe_instance(aws, i).await {
                            Ok(inst) => {
                                super::authz::authorize(aws, &role, "DetachVolume", &volume, &inst)
                                    .await
                                    .err()
                            }
                            Err(e) => Some(super::authz::Refusal::Error(e.to_string())),
                        };
                        if let Some(r) = refusal {
                            let (m, at) = match r {
                                super::authz::Refusal::Unauthorized(m) => (
                                    format!(
                                        "could not detach volume \"{v}\" from node \"{i}\": {m}"
                                    ),
                                    self.refused(name, true),
                                ),
                                super::authz::Refusal::KeyInaccessible(m)
                                | super::authz::Refusal::Error(m) => (m, Instant::now() + RETRY),
                            };
                            let msg = format!(
                                "rpc error: code = Internal desc = Could not detach volume \"{v}\" from node \"{i}\": {m}"
                            );
                            let _ = ctx.patch(VOLUMEATTACHMENTS, "", name, &json!({ "status": { "detachError": { "time": meta::now(), "message": msg } } }), Part::Status);
                            return Some(at);
                        }
                    }
                    if let Err(e) = aws.detach_volume(v, i).await {
                        let msg =
                            format!("DetachVolume.Detach failed for volume \"{pv_name}\" : {e}");
                        let _ = ctx.patch(VOLUMEATTACHMENTS, "", name, &json!({ "status": { "detachError": { "time": meta::now(), "message": msg } } }), Part::Status);
                        return Some(Instant::now() + RETRY);
                    }
                }
                Ok(None) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::debug!(error = %e, "describe before detach failed");
                    return Some(Instant::now() + RETRY);
                }
            }
        }
        hold(ctx, VOLUMEATTACHMENTS, va, false);
        release_pv(ctx, pv_name, name);
        self.forget(name, true);
        lock(&self.backoff).remove(&(name.to_string(), true));
        None
    }
}

/// Puts the external-attacher's finalizer on `obj` (`held`) or takes it off, patching
/// only when that changes its finalizers.
fn hold(ctx: &Ctx, kind: super::api::Kind, obj: &Value, held: bool) {
    let fins = meta::finalizers(obj);
    if fins.iter().any(|f| f == ATTACHER_FINALIZER) == held {
        return;
    }
    let mut kept: Vec<String> = fins
        .into_iter()
        .filter(|f| f != ATTACHER_FINALIZER)
        .collect();
    if held {
        kept.push(ATTACHER_FINALIZER.into());
    }
    let _ = ctx.patch(
        kind,
        "",
        meta::name(obj),
        &json!({ "metadata": { "finalizers": kept } }),
        Part::Main,
    );
}

/// Takes the external-attacher's finalizer off PV `pv` once no VolumeAttachment but
/// `detached` (whose detach just completed) still names it, as csi-attacher does.
fn release_pv(ctx: &Ctx, pv: &str, detached: &str) {
    let Some(obj) = ctx.get(PVS, "", pv) else {
        return;
    };
    let still = ctx
        .users(Use::Volume, "", pv)
        .iter()
        .any(|va| meta::name(va) != detached);
    if !still {
        hold(ctx, PVS, &obj, false);
    }
}

/// One instance as EC2 describes it (its tags are read fresh: they decide
/// authorization).
async fn describe_instance(
    aws: &baton_aws::Aws,
    instance: &str,
) -> Result<baton_aws::Instance, String> {
    aws.describe_instances(&[baton_aws::Filter::new(
        "instance-id",
        [instance.to_string()],
    )])
    .await
    .map_err(|e| e.to_string())?
    .into_iter()
    .next()
    .ok_or_else(|| {
        format!("InvalidInstanceID.NotFound: The instance ID '{instance}' does not exist")
    })
}
