//! The expected effect of each step on an [`Observed`] world: what the world looks like
//! once an action has been made and its physics have played out. `migrate --dry-run` walks
//! the machine on it to print every mutation in order without making one, and the tests
//! walk it to prove the machine ends, in every mode and from every intermediate state.

use std::collections::BTreeMap;

use crate::fences::FenceSeen;
use crate::machine::{Action, Decision, Mode, Observed, Side, Wait, next, retag};
use crate::plan::{AppPlan, GreenReadiness, VolumePlan};
use crate::world::{
    ClaimRef, Ec2Volume, Pv, Pvc, ReclaimPolicy, RetentionPolicy, StatefulSet, VolumeSource,
};

/// Applies a decision's expected effect. `Done` and `Blocked` change nothing.
pub fn apply(app: &AppPlan, obs: &mut Observed, d: &Decision) {
    match d {
        Decision::Act(a) => apply_action(app, obs, a),
        Decision::Wait { wait } => apply_wait(app, obs, *wait),
        Decision::Done | Decision::Blocked { .. } => {}
    }
}

fn apply_action(app: &AppPlan, obs: &mut Observed, a: &Action) {
    match a {
        Action::RetainBlueVolume { pv, original } => {
            if let Some(p) = obs.blue.volumes.get_mut(pv) {
                p.reclaim_policy = ReclaimPolicy::Retain;
                p.original_reclaim_policy.get_or_insert(*original);
            }
        }
        Action::RetainBlueClaims { .. } => {
            if let Some(s) = &mut obs.blue.sts {
                s.retention = RetentionPolicy::default();
            }
        }
        Action::PauseFence { fence } => {
            let seen = obs.fences.entry(fence.key()).or_insert(FenceSeen {
                active: true,
                original: None,
            });
            seen.active = false;
            seen.original.get_or_insert(serde_json::Value::Bool(true));
        }
        Action::ResumeFence { fence, .. } => {
            obs.fences.insert(
                fence.key(),
                FenceSeen {
                    active: true,
                    original: None,
                },
            );
        }
        Action::ScaleBlue { replicas } => {
            if let Some(s) = &mut obs.blue.sts {
                s.replicas = *replicas;
                s.ready_replicas = s.ready_replicas.min(*replicas);
            }
        }
        Action::StartSnapshot { volume_id, .. } => {
            obs.snapshots
                .insert(volume_id.clone(), format!("snap-of-{volume_id}"));
        }
        Action::CreateGreenClaim { claim } => {
            let Some(v) = app.volumes.iter().find(|v| &v.claim == claim) else {
                return;
            };
            obs.green.claims.insert(
                claim.clone(),
                Pvc {
                    namespace: app.namespace.clone(),
                    name: claim.clone(),
                    uid: format!("green-uid-{claim}"),
                    volume_name: v.pv.clone(),
                    phase: "Pending".into(),
                    request_bytes: Some(v.request_bytes),
                    access_modes: v.access_modes.clone(),
                    volume_mode: v.volume_mode.clone(),
                    storage_class: v.storage_class.clone(),
                    deleting: false,
                    migration: Some(obs.migration.clone()),
                    labels: Default::default(),
                    owned: false,
                },
            );
        }
        Action::CreateGreenVolume {
            pv,
            claim,
            claim_uid,
        } => {
            let Some(v) = app.volumes.iter().find(|v| &v.pv == pv) else {
                return;
            };
            obs.green.volumes.insert(
                pv.clone(),
                Pv {
                    name: pv.clone(),
                    uid: format!("green-uid-{pv}"),
                    volume_id: Some(v.volume_id.clone()),
                    source: Some(v.source),
                    other_backend: None,
                    zone: Some(v.az.clone()),
                    capacity_bytes: Some(v.capacity_bytes),
                    access_modes: v.access_modes.clone(),
                    volume_mode: v.volume_mode.clone(),
                    storage_class: v.storage_class.clone(),
                    reclaim_policy: ReclaimPolicy::Retain,
                    original_reclaim_policy: Some(v.original_reclaim_policy),
                    claim_ref: Some(ClaimRef {
                        namespace: app.namespace.clone(),
                        name: claim.clone(),
                        uid: claim_uid.clone(),
                    }),
                    phase: "Available".into(),
                    migration: Some(obs.migration.clone()),
                },
            );
        }
        Action::ScaleGreen { replicas } => {
            if let Some(s) = &mut obs.green.sts {
                s.replicas = *replicas;
                s.ready_replicas = s.ready_replicas.min(*replicas);
            }
        }
        Action::RetainGreenVolume { pv } => {
            if let Some(p) = obs.green.volumes.get_mut(pv) {
                p.reclaim_policy = ReclaimPolicy::Retain;
            }
        }
        Action::DeleteGreenClaim { claim } => {
            obs.green.claims.remove(claim);
            for p in obs.green.volumes.values_mut() {
                if p.claim_ref.as_ref().is_some_and(|r| &r.name == claim) {
                    p.phase = "Released".into();
                }
            }
        }
        Action::DeleteGreenVolume { pv } => {
            obs.green.volumes.remove(pv);
        }
        Action::RestoreBlueVolume { pv, policy } => {
            if let Some(p) = obs.blue.volumes.get_mut(pv) {
                p.reclaim_policy = *policy;
            }
        }
        Action::RestoreBlueClaims { policy } => {
            if let Some(s) = &mut obs.blue.sts {
                s.retention = policy.clone();
            }
        }
        Action::DeleteBlueClaim { claim } => {
            obs.blue.claims.remove(claim);
        }
        Action::DeleteBlueVolume { pv } => {
            obs.blue.volumes.remove(pv);
        }
        Action::RestoreGreenVolume { pv, policy } => {
            if let Some(p) = obs.green.volumes.get_mut(pv) {
                p.reclaim_policy = *policy;
            }
        }
        Action::RetagVolumes {
            volumes,
            add,
            remove,
            ..
        } => {
            for id in volumes {
                if let Some(e) = obs.ec2.get_mut(id) {
                    retag(&mut e.tags, add, remove);
                }
            }
        }
    }
}

fn set_ec2(app: &AppPlan, obs: &mut Observed, state: &str, node: Option<&str>) {
    for v in &app.volumes {
        if let Some(e) = obs.ec2.get_mut(&v.volume_id) {
            e.state = state.into();
            e.attached_to = node.map(|n| vec![n.to_string()]).unwrap_or_default();
        }
    }
}

fn apply_wait(app: &AppPlan, obs: &mut Observed, w: Wait) {
    let volumes = app.volumes.len() as u32;
    match w {
        Wait::BluePodsGone => obs.blue.pods = 0,
        Wait::BlueDetached => obs.blue.attachments = 0,
        Wait::GreenPodsGone => obs.green.pods = 0,
        Wait::GreenDetached => obs.green.attachments = 0,
        Wait::VolumesAvailable => set_ec2(app, obs, "available", None),
        Wait::GreenBound => {
            for v in &app.volumes {
                if let Some(c) = obs.green.claims.get_mut(&v.claim) {
                    c.phase = "Bound".into();
                }
                if let Some(p) = obs.green.volumes.get_mut(&v.pv) {
                    p.phase = "Bound".into();
                }
            }
        }
        Wait::GreenReady => {
            if let Some(s) = &mut obs.green.sts {
                s.ready_replicas = s.replicas;
                s.status_replicas = s.replicas;
                s.observed = true;
                obs.green.pods = s.replicas as u32;
            }
            obs.green.attachments = volumes;
            set_ec2(app, obs, "in-use", Some("green-node"));
        }
        Wait::BlueReady => {
            if let Some(s) = &mut obs.blue.sts {
                s.ready_replicas = s.replicas;
                s.status_replicas = s.replicas;
                s.observed = true;
                obs.blue.pods = s.replicas as u32;
            }
            obs.blue.attachments = volumes;
            set_ec2(app, obs, "in-use", Some("blue-node"));
        }
    }
}

/// The steps [`next`](crate::machine::next) would take after `first`, on the same view, that are of the same
/// kind and touch other volumes: independent, so the runner makes them together instead
/// of one round trip after another (at most 64). Deletions are not batched (their
/// effect waits on finalizers), nor is anything that is not per volume.
pub fn batch(mode: Mode, app: &AppPlan, obs: &Observed, first: Action) -> Vec<Action> {
    let batchable = matches!(
        first,
        Action::RetainBlueVolume { .. }
            | Action::StartSnapshot { .. }
            | Action::CreateGreenClaim { .. }
            | Action::CreateGreenVolume { .. }
            | Action::RetainGreenVolume { .. }
            | Action::RestoreBlueVolume { .. }
            | Action::RestoreGreenVolume { .. }
    );
    let kind = std::mem::discriminant(&first);
    let mut batch = vec![first];
    if !batchable {
        return batch;
    }
    // What the machine would decide once the batch so far is made: its expected effect,
    // only to find the other volumes' steps (nothing here stands in for a read).
    let mut world = obs.clone();
    apply(app, &mut world, &Decision::Act(batch[0].clone()));
    while batch.len() < 64 {
        match next(mode, app, &world) {
            Decision::Act(a) if std::mem::discriminant(&a) == kind && !batch.contains(&a) => {
                apply(app, &mut world, &Decision::Act(a.clone()));
                batch.push(a);
            }
            _ => break,
        }
    }
    batch
}

fn example_set(
    namespace: &str,
    name: &str,
    replicas: i32,
    retention: RetentionPolicy,
) -> StatefulSet {
    StatefulSet {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("{namespace}-{name}-uid"),
        replicas,
        status_replicas: replicas,
        ready_replicas: replicas,
        observed: true,
        labels: BTreeMap::new(),
        templates: vec![],
        retention,
        scalers: vec![],
        service_account: "default".into(),
        owners: vec![],
        claims: vec![],
        kind: Default::default(),
    }
}

/// A hand-built app for tests and examples: blue runs `replicas` pods of
/// `namespace/name` with one 10 GiB gp3 CSI claim each (`data-NAME-i` on `pvc-i`, EBS
/// `vol-i` in us-east-1a, attached, tagged `ebs.csi.aws.com/cluster=true` and
/// `kubernetes.io/cluster/blue=owned`); green has the set at 0; migration `m-1`.
pub fn example(
    namespace: &str,
    name: &str,
    replicas: i32,
    reclaim: ReclaimPolicy,
    retention: RetentionPolicy,
) -> (AppPlan, Observed) {
    let mut obs = Observed {
        blue: Side {
            sts: Some(example_set(namespace, name, replicas, retention.clone())),
            pods: replicas as u32,
            attachments: replicas as u32,
            ..Default::default()
        },
        green: Side {
            sts: Some(example_set(namespace, name, 0, RetentionPolicy::default())),
            ..Default::default()
        },
        migration: "m-1".into(),
        ..Default::default()
    };
    let mut volumes = Vec::new();
    for i in 0..replicas {
        let claim = format!("data-{name}-{i}");
        let pv = format!("pvc-{i}");
        let vol = format!("vol-{i}");
        obs.blue.claims.insert(
            claim.clone(),
            Pvc {
                name: claim.clone(),
                uid: format!("blue-claim-{i}"),
                volume_name: pv.clone(),
                namespace: namespace.into(),
                phase: "Bound".into(),
                request_bytes: Some(10 << 30),
                access_modes: vec!["ReadWriteOnce".into()],
                volume_mode: "Filesystem".into(),
                storage_class: "gp3".into(),
                deleting: false,
                migration: None,
                labels: Default::default(),
                owned: false,
            },
        );
        obs.blue.volumes.insert(
            pv.clone(),
            Pv {
                name: pv.clone(),
                uid: format!("pv-uid-{i}"),
                volume_id: Some(vol.clone()),
                reclaim_policy: reclaim,
                claim_ref: Some(ClaimRef {
                    namespace: namespace.into(),
                    name: claim.clone(),
                    uid: format!("blue-claim-{i}"),
                }),
                source: Some(VolumeSource::Csi),
                other_backend: None,
                zone: Some("us-east-1a".into()),
                capacity_bytes: Some(10 << 30),
                access_modes: vec!["ReadWriteOnce".into()],
                volume_mode: "Filesystem".into(),
                storage_class: "gp3".into(),
                original_reclaim_policy: None,
                phase: "Bound".into(),
                migration: None,
            },
        );
        obs.ec2.insert(
            vol.clone(),
            Ec2Volume {
                id: vol.clone(),
                az: "us-east-1a".into(),
                size_gib: 10,
                volume_type: "gp3".into(),
                encrypted: true,
                kms_key_id: None,
                multi_attach: false,
                state: "in-use".into(),
                attached_to: vec![format!("i-blue-{i}")],
                tags: [
                    ("ebs.csi.aws.com/cluster".to_string(), "true".to_string()),
                    (
                        "kubernetes.io/cluster/blue".to_string(),
                        "owned".to_string(),
                    ),
                ]
                .into(),
            },
        );
        volumes.push(VolumePlan {
            claim,
            template: "data".into(),
            ordinal: i,
            blue_claim_uid: format!("blue-claim-{i}"),
            pv,
            pv_uid: format!("pv-uid-{i}"),
            volume_id: vol,
            az: "us-east-1a".into(),
            size_gib: 10,
            volume_type: "gp3".into(),
            encrypted: true,
            kms_key_id: None,
            multi_attach: false,
            source: VolumeSource::Csi,
            reclaim_policy: reclaim,
            original_reclaim_policy: reclaim,
            capacity_bytes: 10 << 30,
            request_bytes: 10 << 30,
            storage_class: "gp3".into(),
            access_modes: vec!["ReadWriteOnce".into()],
            volume_mode: "Filesystem".into(),
        });
    }
    let app = AppPlan {
        kind: Default::default(),
        namespace: namespace.into(),
        name: name.into(),
        blue_uid: format!("{namespace}-{name}-uid"),
        replicas,
        retention,
        green: GreenReadiness {
            exists: true,
            replicas: 0,
            templates_match: true,
            zones_ready: true,
            migrated: false,
        },
        volumes,
        problems: vec![],
        handover: None,
        fences: vec![],
    };
    (app, obs)
}
