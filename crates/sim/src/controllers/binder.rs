//! The PV controller: binding claims to volumes and reclaiming released volumes, with
//! every fact of DESIGN.md §2 —
//! - a PV whose `claimRef` names a claim (with or without uid) is reserved for it, and
//!   binds at once without size/class checks;
//! - a claim's `spec.volumeName` binds to that PV if the PV is free or reserved for it;
//! - an unbound claim without either matches an Available PV by class, access modes,
//!   volume mode, selector and size (smallest fit), or waits for provisioning;
//! - a bound PV whose claim is gone, or has another uid, is Released and its reclaim
//!   policy runs: Retain keeps it, Delete deletes the EBS volume through EC2 and the PV;
//! - a bound claim whose PV is gone (or bound elsewhere) is Lost;
//! - `kubernetes.io/pvc-protection` lets go once no pod uses the claim, and
//!   `kubernetes.io/pv-protection` once the PV is not Bound.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{PODS, PVCS, PVS, STORAGECLASSES, pod_claims, pod_terminated};
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;

#[derive(Default)]
pub(crate) struct Binder {
    index: Mutex<PvIndex>,
}

/// The PVs that are not being deleted, as a pass needs them: by the claim their
/// `claimRef` names, and the unreserved Available ones by name.
#[derive(Default)]
struct PvIndex {
    /// PV name → the claim it is reserved for (None: unreserved).
    claim_of: HashMap<String, Option<(String, String)>>,
    reserved: HashMap<(String, String), Vec<Arc<Value>>>,
    available: BTreeMap<String, Arc<Value>>,
}

impl PvIndex {
    fn put(&mut self, pv: Arc<Value>) {
        if meta::is_deleting(&pv) {
            return;
        }
        let name = meta::name(&pv).to_string();
        let r = &pv["spec"]["claimRef"];
        if r.is_null() {
            if pv["status"]["phase"] == "Available" {
                self.available.insert(name.clone(), pv.clone());
            }
            self.claim_of.insert(name, None);
        } else {
            let key = (
                r["namespace"].as_str().unwrap_or_default().to_string(),
                r["name"].as_str().unwrap_or_default().to_string(),
            );
            self.reserved
                .entry(key.clone())
                .or_default()
                .push(pv.clone());
            self.claim_of.insert(name, Some(key));
        }
    }

    fn remove(&mut self, name: &str) {
        self.available.remove(name);
        if let Some(Some(key)) = self.claim_of.remove(name)
            && let Some(pvs) = self.reserved.get_mut(&key)
        {
            pvs.retain(|pv| meta::name(pv) != name);
            if pvs.is_empty() {
                self.reserved.remove(&key);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

impl Controller for Binder {
    fn name(&self) -> &'static str {
        "persistentvolume-binder-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "pods"),
            ("storage.k8s.io", "storageclasses"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            // The volumes by the claim they are reserved for, and the unreserved
            // Available ones, kept up to date from the changes (rebuilt on a full pass),
            // so that a pass is not a scan of every PV, nor each claim one.
            let (touched, mut available) = {
                let mut index = lock(&self.index);
                if scope.is_all() {
                    *index = PvIndex::default();
                    for pv in ctx.list(PVS, None) {
                        index.put(pv);
                    }
                } else {
                    for (pv, _) in scope.changed("", "persistentvolumes") {
                        let name = meta::name(pv);
                        index.remove(name);
                        if let Some(now) = ctx.get(PVS, "", name) {
                            index.put(now);
                        }
                    }
                }
                let touched = Touched::new(scope, &index.reserved);
                (
                    touched,
                    index.available.values().cloned().collect::<Vec<_>>(),
                )
            };
            let claims: Vec<Arc<Value>> = match &touched.claims {
                None => ctx.list(PVCS, None),
                Some(keys) => keys
                    .iter()
                    .filter_map(|(ns, name)| ctx.get(PVCS, ns, name))
                    .collect(),
            };
            let reserved: HashMap<(String, String), Vec<Arc<Value>>> = {
                let index = lock(&self.index);
                claims
                    .iter()
                    .filter_map(|pvc| {
                        let key = (
                            meta::namespace(pvc).to_string(),
                            meta::name(pvc).to_string(),
                        );
                        let pvs = index.reserved.get(&key)?.clone();
                        Some((key, pvs))
                    })
                    .collect()
            };
            for pvc in &claims {
                let key = (
                    meta::namespace(pvc).to_string(),
                    meta::name(pvc).to_string(),
                );
                sync_claim(
                    ctx,
                    pvc,
                    reserved.get(&key).map(Vec::as_slice).unwrap_or_default(),
                    &mut available,
                );
            }
            let volumes: Vec<Arc<Value>> = match &touched.volumes {
                None => ctx.list(PVS, None),
                Some(names) => names.iter().filter_map(|n| ctx.get(PVS, "", n)).collect(),
            };
            let mut retry = None;
            for pv in &volumes {
                if let Some(at) = sync_volume(ctx, pv).await {
                    retry = Some(retry.map_or(at, |r: Instant| r.min(at)));
                }
            }
            for pvc in &claims {
                // Re-read: this pass may have changed it.
                if let Some(pvc) = ctx.get(PVCS, meta::namespace(pvc), meta::name(pvc)) {
                    release_claim_protection(ctx, &pvc);
                }
            }
            retry
        })
    }
}

/// What a pass converges: every claim and volume (`None`) on a full pass or when a
/// class changed; otherwise the claims and volumes that changed and those related to
/// them — the claim a volume's claimRef names, the volumes reserved for or named by a
/// claim, the claims of a pod that changed (pvc-protection) — and every claim when an
/// unreserved volume changed (it may now match any pending claim).
struct Touched {
    claims: Option<BTreeSet<(String, String)>>,
    volumes: Option<BTreeSet<String>>,
}

impl Touched {
    fn new(scope: &Scope, reserved: &HashMap<(String, String), Vec<Arc<Value>>>) -> Self {
        if scope.is_all() || scope.touches("storage.k8s.io", "storageclasses") {
            return Self {
                claims: None,
                volumes: None,
            };
        }
        let mut claims = BTreeSet::new();
        let mut volumes = BTreeSet::new();
        let mut all_claims = false;
        for (pv, old) in scope.changed("", "persistentvolumes") {
            volumes.insert(meta::name(pv).to_string());
            if pv["spec"]["claimRef"].is_null() {
                all_claims = true;
            }
            for r in std::iter::once(pv)
                .chain(old)
                .map(|v| &v["spec"]["claimRef"])
            {
                if let (Some(ns), Some(name)) = (r["namespace"].as_str(), r["name"].as_str()) {
                    claims.insert((ns.to_string(), name.to_string()));
                }
            }
        }
        for (pvc, old) in scope.changed("", "persistentvolumeclaims") {
            let key = (
                meta::namespace(pvc).to_string(),
                meta::name(pvc).to_string(),
            );
            for v in std::iter::once(pvc).chain(old) {
                if let Some(n) = v["spec"]["volumeName"].as_str().filter(|n| !n.is_empty()) {
                    volumes.insert(n.to_string());
                }
            }
            for pv in reserved.get(&key).into_iter().flatten() {
                volumes.insert(meta::name(pv).to_string());
            }
            claims.insert(key);
        }
        for (pod, old) in scope.changed("", "pods") {
            for p in std::iter::once(pod).chain(old) {
                for c in pod_claims(p) {
                    claims.insert((meta::namespace(p).to_string(), c));
                }
            }
        }
        Self {
            claims: (!all_claims).then_some(claims),
            volumes: Some(volumes),
        }
    }
}

fn claim_key(pvc: &Value) -> (&str, &str) {
    (meta::namespace(pvc), meta::name(pvc))
}

/// Whether the PV's claimRef names this claim (uid, when set, must match too).
fn reserved_for(pv: &Value, pvc: &Value) -> bool {
    let r = &pv["spec"]["claimRef"];
    let (ns, name) = claim_key(pvc);
    r["namespace"] == ns
        && r["name"] == name
        && r["uid"]
            .as_str()
            .is_none_or(|u| u.is_empty() || u == meta::uid(pvc))
}

/// One claim. `reserved` are the PVs whose claimRef names it; `available` the
/// unreserved Available ones.
fn sync_claim(ctx: &Ctx, pvc: &Value, reserved: &[Arc<Value>], available: &mut Vec<Arc<Value>>) {
    if meta::is_deleting(pvc) {
        return;
    }
    let (ns, name) = claim_key(pvc);
    let phase = pvc["status"]["phase"].as_str().unwrap_or("Pending");
    let volume_name = pvc["spec"]["volumeName"].as_str().unwrap_or_default();
    if phase == "Bound" || (phase == "Lost") {
        // A bound claim whose volume vanished, or is bound to someone else, is Lost.
        let ok = ctx
            .get(PVS, "", volume_name)
            .is_some_and(|pv| reserved_for(&pv, pvc));
        if !ok && phase == "Bound" {
            mark_lost(ctx, pvc);
        } else if ok && phase == "Lost" {
            finish_claim(ctx, pvc, volume_name, false);
        }
        return;
    }
    if !volume_name.is_empty() {
        match ctx.get(PVS, "", volume_name) {
            None => {
                if pvc["metadata"]["annotations"][BIND_COMPLETED].is_string() {
                    mark_lost(ctx, pvc);
                } else {
                    ctx.event(
                        pvc,
                        false,
                        "FailedBinding",
                        &format!("volume \"{volume_name}\" not found"),
                        "persistentvolume-controller",
                    );
                }
            }
            Some(pv) if pv["spec"]["claimRef"].is_null() => {
                bind_volume(ctx, &pv, pvc, true);
            }
            Some(pv) if reserved_for(&pv, pvc) => {
                bind_volume(ctx, &pv, pvc, false);
                if let Some(pv) = ctx.get(PVS, "", volume_name) {
                    finish_claim(ctx, pvc, meta::name(&pv), false);
                }
            }
            Some(_) => {
                ctx.event(
                    pvc,
                    true,
                    "FailedBinding",
                    "volume already bound to a different claim.",
                    "persistentvolume-controller",
                );
            }
        }
        return;
    }
    // Pre-bound by the PV's claimRef?
    if let Some(pv) = reserved.iter().find(|pv| reserved_for(pv, pvc)) {
        bind_volume(ctx, pv, pvc, false);
        finish_claim(ctx, pvc, meta::name(pv), true);
        return;
    }
    // Match an Available volume.
    if let Some(pv) = best_match(available, pvc) {
        // Taken: a later claim of this pass must not match it too (its copy in
        // `available` is older than this bind).
        available.retain(|p| meta::name(p) != meta::name(&pv));
        bind_volume(ctx, &pv, pvc, true);
        finish_claim(ctx, pvc, meta::name(&pv), true);
        return;
    }
    // Nothing fits: dynamic provisioning, or wait.
    let class = pvc["spec"]["storageClassName"].as_str().unwrap_or_default();
    if class.is_empty() {
        ctx.event(
            pvc,
            false,
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
            "persistentvolume-controller",
        );
        return;
    }
    match ctx.get(STORAGECLASSES, "", class) {
        None => ctx.event(
            pvc,
            true,
            "ProvisioningFailed",
            &format!("storageclass.storage.k8s.io \"{class}\" not found"),
            "persistentvolume-controller",
        ),
        Some(sc) => {
            let provisioner = sc["provisioner"].as_str().unwrap_or_default();
            if pvc["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"]
                != provisioner
            {
                let _ = ctx.patch(
                    PVCS,
                    ns,
                    name,
                    &json!({ "metadata": { "annotations": {
                    "volume.kubernetes.io/storage-provisioner": provisioner,
                    "volume.beta.kubernetes.io/storage-provisioner": provisioner,
                } } }),
                    Part::Main,
                );
                if sc["volumeBindingMode"] == "WaitForFirstConsumer" {
                    ctx.event(
                        pvc,
                        false,
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding",
                        "persistentvolume-controller",
                    );
                } else {
                    ctx.event(pvc, false, "ExternalProvisioning", &format!("Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."), "persistentvolume-controller");
                }
            }
        }
    }
}

/// A claim that was bound and whose volume is gone (or bound elsewhere) is Lost.
fn mark_lost(ctx: &Ctx, pvc: &Value) {
    let (ns, name) = claim_key(pvc);
    let _ = ctx.patch(
        PVCS,
        ns,
        name,
        &json!({ "status": { "phase": "Lost" } }),
        Part::Status,
    );
    ctx.event(
        pvc,
        true,
        "ClaimLost",
        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        "persistentvolume-controller",
    );
}

/// The smallest Available, unreserved PV that satisfies the claim.
fn best_match(pvs: &[Arc<Value>], pvc: &Value) -> Option<Arc<Value>> {
    let want_class = pvc["spec"]["storageClassName"].as_str().unwrap_or_default();
    let want_mode = pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem");
    let want_size = parse_quantity(
        pvc["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .unwrap_or("0"),
    );
    let want_access: Vec<&str> = pvc["spec"]["accessModes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let selector = (!pvc["spec"]["selector"].is_null())
        .then(|| crate::selector::LabelSelector::from_object(&pvc["spec"]["selector"]));
    pvs.iter()
        .filter(|pv| {
            !meta::is_deleting(pv)
                && pv["status"]["phase"] == "Available"
                && pv["spec"]["claimRef"].is_null()
        })
        .filter(|pv| pv["spec"]["storageClassName"].as_str().unwrap_or_default() == want_class)
        .filter(|pv| pv["spec"]["volumeMode"].as_str().unwrap_or("Filesystem") == want_mode)
        .filter(|pv| {
            let have: Vec<&str> = pv["spec"]["accessModes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            want_access.iter().all(|m| have.contains(m))
        })
        .filter(|pv| selector.as_ref().is_none_or(|s| s.matches(pv)))
        .filter(|pv| {
            parse_quantity(pv["spec"]["capacity"]["storage"].as_str().unwrap_or("0")) >= want_size
        })
        .min_by_key(|pv| parse_quantity(pv["spec"]["capacity"]["storage"].as_str().unwrap_or("0")))
        .cloned()
}

/// Points the PV at the claim (claimRef with uid) and marks it Bound.
fn bind_volume(ctx: &Ctx, pv: &Value, pvc: &Value, by_controller: bool) {
    let (ns, name) = claim_key(pvc);
    let claim_ref = json!({
        "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": name,
        "uid": meta::uid(pvc), "resourceVersion": meta::resource_version(pvc),
    });
    let needs_ref = pv["spec"]["claimRef"]["uid"].as_str().unwrap_or_default() != meta::uid(pvc);
    if needs_ref {
        let mut patch = json!({ "spec": { "claimRef": claim_ref } });
        if by_controller {
            patch["metadata"] = json!({ "annotations": { BOUND_BY_CONTROLLER: "yes" } });
        }
        if let Err(e) = ctx.patch(PVS, "", meta::name(pv), &patch, Part::Main) {
            tracing::debug!(error = %e, "bind volume failed");
            return;
        }
    }
    if pv["status"]["phase"] != "Bound" {
        let _ = ctx.patch(
            PVS,
            "",
            meta::name(pv),
            &json!({ "status": { "phase": "Bound" } }),
            Part::Status,
        );
    }
}

/// Completes the claim's side: volumeName, bind-completed, status Bound with capacity.
fn finish_claim(ctx: &Ctx, pvc: &Value, pv_name: &str, by_controller: bool) {
    let (ns, name) = claim_key(pvc);
    let Some(pv) = ctx.get(PVS, "", pv_name) else {
        return;
    };
    let mut annotations = json!({ BIND_COMPLETED: "yes" });
    if by_controller {
        annotations[BOUND_BY_CONTROLLER] = json!("yes");
    }
    let patch =
        json!({ "metadata": { "annotations": annotations }, "spec": { "volumeName": pv_name } });
    if let Err(e) = ctx.patch(PVCS, ns, name, &patch, Part::Main) {
        tracing::debug!(error = %e, "finish claim failed");
        return;
    }
    let status = json!({ "status": {
        "phase": "Bound",
        "accessModes": pv["spec"]["accessModes"],
        "capacity": pv["spec"]["capacity"],
    } });
    let _ = ctx.patch(PVCS, ns, name, &status, Part::Status);
}

/// Phases and reclaim for one volume. Returns a retry time when EC2 refused a delete.
async fn sync_volume(ctx: &Ctx, pv: &Value) -> Option<Instant> {
    let name = meta::name(pv);
    if meta::is_deleting(pv) {
        if pv["status"]["phase"] != "Bound"
            && meta::finalizers(pv).iter().any(|f| f == PV_PROTECTION)
        {
            let fins: Vec<String> = meta::finalizers(pv)
                .into_iter()
                .filter(|f| f != PV_PROTECTION)
                .collect();
            let _ = ctx.patch(
                PVS,
                "",
                name,
                &json!({ "metadata": { "finalizers": fins } }),
                Part::Main,
            );
        }
        return None;
    }
    let claim_ref = &pv["spec"]["claimRef"];
    let phase = pv["status"]["phase"].as_str().unwrap_or("Pending");
    if claim_ref.is_null() {
        if phase != "Available" {
            let _ = ctx.patch(
                PVS,
                "",
                name,
                &json!({ "status": { "phase": "Available" } }),
                Part::Status,
            );
        }
        return None;
    }
    let ns = claim_ref["namespace"].as_str().unwrap_or_default();
    let claim = ctx.get(PVCS, ns, claim_ref["name"].as_str().unwrap_or_default());
    let ref_uid = claim_ref["uid"].as_str().unwrap_or_default();
    let claim_gone = match &claim {
        None => !ref_uid.is_empty(),
        Some(c) => !ref_uid.is_empty() && meta::uid(c) != ref_uid,
    };
    if !claim_gone {
        if ref_uid.is_empty() && phase != "Available" {
            // Reserved for a claim name, not bound yet.
            let _ = ctx.patch(
                PVS,
                "",
                name,
                &json!({ "status": { "phase": "Available" } }),
                Part::Status,
            );
        }
        return None;
    }
    // The claim this volume was bound to no longer exists: Released, then reclaim.
    if phase != "Released" && phase != "Failed" {
        let _ = ctx.patch(
            PVS,
            "",
            name,
            &json!({ "status": { "phase": "Released" } }),
            Part::Status,
        );
    }
    if pv["spec"]["persistentVolumeReclaimPolicy"] != "Delete" {
        return None;
    }
    let Some(volume_id) = ebs_volume_id(pv) else {
        ctx.event(
            pv,
            true,
            "VolumeFailedDelete",
            "no volume plugin can delete this volume",
            "persistentvolume-controller",
        );
        return None;
    };
    let Some(aws) = &ctx.aws else {
        ctx.event(
            pv,
            true,
            "VolumeFailedDelete",
            "the emulator runs without EC2: cannot delete the EBS volume",
            "persistentvolume-controller",
        );
        return None;
    };
    match aws.delete_volume(&volume_id).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            ctx.event(
                pv,
                true,
                "VolumeFailedDelete",
                &e.to_string(),
                "ebs.csi.aws.com",
            );
            return Some(Instant::now() + std::time::Duration::from_secs(1));
        }
    }
    tracing::info!(pv = name, volume = volume_id, cluster = %ctx.cluster.spec.name, "reclaim policy Delete: EBS volume deleted");
    let _ = ctx.delete(PVS, "", name, false);
    None
}

/// Removes pvc-protection from a deleting claim no pod uses any more.
fn release_claim_protection(ctx: &Ctx, pvc: &Value) {
    if !meta::is_deleting(pvc) || !meta::finalizers(pvc).iter().any(|f| f == PVC_PROTECTION) {
        return;
    }
    let (ns, name) = claim_key(pvc);
    let in_use = ctx
        .list(PODS, Some(ns))
        .iter()
        .any(|p| !pod_terminated(p) && pod_claims(p).iter().any(|c| c == name));
    if !in_use {
        let fins: Vec<String> = meta::finalizers(pvc)
            .into_iter()
            .filter(|f| f != PVC_PROTECTION)
            .collect();
        let _ = ctx.patch(
            PVCS,
            ns,
            name,
            &json!({ "metadata": { "finalizers": fins } }),
            Part::Main,
        );
    }
}

/// The EBS volume id of a PV: CSI `volumeHandle`, or in-tree `aws://<az>/vol-…`.
pub(crate) fn ebs_volume_id(pv: &Value) -> Option<String> {
    let spec = &pv["spec"];
    if spec["csi"]["driver"] == "ebs.csi.aws.com" {
        return spec["csi"]["volumeHandle"].as_str().map(String::from);
    }
    spec["awsElasticBlockStore"]["volumeID"]
        .as_str()
        .and_then(|v| v.rsplit('/').next())
        .map(String::from)
}

/// Bytes in a Kubernetes quantity (`10Gi`, `500M`, `1073741824`); 0 when it is not one.
pub(crate) fn parse_quantity(q: &str) -> u64 {
    baton_core::quantity::parse_bytes(q).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1Gi"), 1 << 30);
        assert_eq!(parse_quantity("10G"), 10_000_000_000);
        assert!(parse_quantity("2Gi") > parse_quantity("2G"));
        assert_eq!(parse_quantity("bogus"), 0);
    }

    #[test]
    fn volume_ids() {
        assert_eq!(ebs_volume_id(&json!({ "spec": { "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": "vol-1" } } })).as_deref(), Some("vol-1"));
        assert_eq!(ebs_volume_id(&json!({ "spec": { "awsElasticBlockStore": { "volumeID": "aws://us-east-1a/vol-2" } } })).as_deref(), Some("vol-2"));
        assert_eq!(
            ebs_volume_id(&json!({ "spec": { "hostPath": { "path": "/x" } } })),
            None
        );
    }

    /// Two claims that one pass binds (a burst of creates) never get the same volume:
    /// the pass's list of Available volumes is older than its own binds.
    #[tokio::test]
    async fn one_pass_binds_two_claims_to_two_volumes() {
        use crate::controllers::{Controller, Scope};
        let ctx = Ctx::for_test();
        for name in ["pv-a", "pv-b"] {
            ctx.create(
                PVS,
                "",
                json!({ "apiVersion": "v1", "kind": "PersistentVolume", "metadata": { "name": name },
                        "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"],
                                  "hostPath": { "path": "/x" } },
                        "status": { "phase": "Available" } }),
            )
            .unwrap();
        }
        for name in ["one", "two"] {
            ctx.create(
                PVCS,
                "default",
                json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": { "name": name },
                        "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                  "resources": { "requests": { "storage": "1Gi" } } } }),
            )
            .unwrap();
        }
        // The first pass makes the volumes Available (status is not taken on create); the
        // second binds both claims.
        Binder::default().reconcile(&ctx, &Scope::All).await;
        Binder::default().reconcile(&ctx, &Scope::All).await;
        let volume = |c: &str| {
            ctx.get(PVCS, "default", c)
                .and_then(|c| c["spec"]["volumeName"].as_str().map(String::from))
        };
        let (one, two) = (volume("one"), volume("two"));
        assert!(one.is_some() && two.is_some(), "{one:?} {two:?}");
        assert_ne!(one, two, "two claims bound to one volume");
        for (claim, pv) in [("one", one.unwrap()), ("two", two.unwrap())] {
            let pv = ctx.get(PVS, "", &pv).unwrap();
            assert_eq!(pv["spec"]["claimRef"]["name"], claim, "{pv}");
        }
    }
}
