//! The phase machine of one app's move. It decides; the runner does.
//!
//! [`next`] looks at the plan and at what the runner observed of the world *now* and returns
//! the one next step. Because every decision is made from the world, not from where a
//! previous run stopped, a step repeated after a crash is harmless (the world already shows
//! its effect, so the machine moves on) and a resumed run needs nothing but a fresh
//! observation. The order is DESIGN.md §2's: Retain first; blue stopped and its volumes
//! `available` before green touches them; the green claim before its PV; the PV with
//! `claimRef.uid` and `Retain`; green scaled only once every claim is Bound.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fences::{Fence, FenceSeen};
use crate::plan::{AppPlan, VolumePlan};
use crate::world::{
    Ec2Volume, Pv, Pvc, ReclaimPolicy, RetentionPolicy, StatefulSet, Tags, WorkloadKind,
};

/// What a run is doing to an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Blue → green.
    Migrate,
    /// Back to blue, before commit.
    Rollback,
    /// Retire blue's claims and PVs of moved apps.
    Commit {
        /// Put back each green PV's original reclaim policy.
        restore_reclaim_policy: bool,
    },
}

/// One cluster's side of an app, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    /// The StatefulSet, if it exists.
    pub sts: Option<StatefulSet>,
    /// Pods of the StatefulSet that still exist (terminating included).
    pub pods: u32,
    /// VolumeAttachments that name one of the app's PVs.
    pub attachments: u32,
    /// The plan's claims that exist, by name.
    pub claims: BTreeMap<String, Pvc>,
    /// The plan's PVs that exist, by name.
    pub volumes: BTreeMap<String, Pv>,
}

/// Everything [`next`] reads about one app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Blue.
    pub blue: Side,
    /// Green.
    pub green: Side,
    /// EC2's view of the app's volumes, by id (absent: EC2 does not know it).
    pub ec2: BTreeMap<String, Ec2Volume>,
    /// Snapshots this migration started, by volume id.
    pub snapshots: BTreeMap<String, String>,
    /// This migration's id: green objects carrying it in their annotation are baton's.
    pub migration: String,
    /// The app's fences in blue as last read, by [`Fence::key`] (absent: gone, or not
    /// read). Read fresh, never from a watch cache: a wait leaves them as they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fences: BTreeMap<String, FenceSeen>,
}

impl Observed {
    /// Whether green's claim of this name is the one this migration created for the
    /// volume. Anything else holding the name — a claim GitOps or a person made, or one
    /// racing for the volume — is never adopted.
    pub fn green_claim_is_ours(&self, claim: &str, pv: &str) -> bool {
        claim_is_ours(&self.green, claim, pv, &self.migration)
    }

    /// Whether fence `f` was last read active (it could scale blue back up).
    pub fn fence_active(&self, f: &Fence) -> bool {
        self.fences.get(&f.key()).is_some_and(|seen| seen.active)
    }

    /// Takes in what a write answered: the object the API server returned (or the
    /// snapshot EC2 started) replaces what this view held of it. Returns false when the
    /// answer does not tell the write's effect (a delete, which finalizers may hold):
    /// the world must then be read again.
    pub fn absorb(&mut self, action: &Action, answer: Answer) -> bool {
        let side = match action.target() {
            "blue" => &mut self.blue,
            _ => &mut self.green,
        };
        match answer {
            Answer::Claim(c) => {
                side.claims.insert(c.name.clone(), c);
            }
            Answer::Volume(v) => {
                side.volumes.insert(v.name.clone(), v);
            }
            Answer::StatefulSet(s) => side.sts = Some(s),
            Answer::Replicas(r) => match &mut side.sts {
                Some(s) => s.replicas = r,
                None => return false,
            },
            Answer::Snapshot { volume_id, id } => {
                self.snapshots.insert(volume_id, id);
            }
            Answer::Retagged {
                volumes,
                add,
                remove,
            } => {
                for id in &volumes {
                    if let Some(v) = self.ec2.get_mut(id) {
                        retag(&mut v.tags, &add, &remove);
                    }
                }
            }
            Answer::Fence { key, seen } => {
                self.fences.insert(key, seen);
            }
            Answer::Unknown => return false,
        }
        true
    }
}

/// What a write answered, in the machine's terms: the object as the API server returned
/// it (not as baton expects it to be), or what EC2 started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A claim (created, or found already there).
    Claim(Pvc),
    /// A PV (created, patched, or found already there).
    Volume(Pv),
    /// A StatefulSet (patched).
    StatefulSet(StatefulSet),
    /// A StatefulSet's `scale` subresource: its desired replicas.
    Replicas(i32),
    /// A fence's object as the patch answered it.
    Fence {
        /// [`Fence::key`].
        key: String,
        /// What it shows now.
        seen: FenceSeen,
    },
    /// A snapshot EC2 started of a volume.
    Snapshot {
        /// The volume.
        volume_id: String,
        /// The snapshot.
        id: String,
    },
    /// EC2 took a tag change on these volumes (CreateTags and DeleteTags answer
    /// nothing but success).
    Retagged {
        /// The volumes.
        volumes: Vec<String>,
        /// Tags set.
        add: Tags,
        /// Keys removed.
        remove: Vec<String>,
    },
    /// Nothing that tells the effect (a delete).
    Unknown,
}

/// A tag change's effect on one volume's tags.
pub fn retag(tags: &mut Tags, add: &Tags, remove: &[String]) {
    for k in remove {
        tags.remove(k);
    }
    tags.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
}

impl Answer {
    /// The id the journal records: a created object's uid, a snapshot's id.
    pub fn id(&self) -> Option<String> {
        match self {
            Self::Claim(c) => Some(c.uid.clone()),
            Self::Volume(v) => Some(v.uid.clone()),
            Self::Snapshot { id, .. } => Some(id.clone()),
            _ => None,
        }
    }
}

/// Whether `side`'s claim of this name is the one migration `migration` created for PV `pv`.
fn claim_is_ours(side: &Side, claim: &str, pv: &str, migration: &str) -> bool {
    side.claims
        .get(claim)
        .is_some_and(|c| c.volume_name == pv && c.migration.as_deref() == Some(migration))
}

/// A change to the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Patch a blue PV to Retain, recording its original policy in an annotation.
    RetainBlueVolume {
        /// PV name.
        pv: String,
        /// The policy it had.
        original: ReclaimPolicy,
    },
    /// Set blue's claim retention policy to Retain/Retain, recording the original.
    RetainBlueClaims {
        /// The policy it had.
        original: RetentionPolicy,
    },
    /// Pause what could scale blue's workload back up, recording in the object the
    /// value it replaces.
    PauseFence {
        /// The object.
        fence: Fence,
    },
    /// Put a fence's recorded value back (rollback).
    ResumeFence {
        /// The object.
        fence: Fence,
        /// The value to put back, as recorded when it was paused.
        original: serde_json::Value,
    },
    /// Scale blue's StatefulSet.
    ScaleBlue {
        /// Target replicas.
        replicas: i32,
    },
    /// Start an EBS snapshot of a volume (not awaited).
    StartSnapshot {
        /// Volume id.
        volume_id: String,
        /// Claim it backs.
        claim: String,
    },
    /// Create green's claim with `spec.volumeName` and no stale binding annotations.
    CreateGreenClaim {
        /// Claim name.
        claim: String,
    },
    /// Create green's PV with `claimRef {namespace, name, uid}` and Retain.
    CreateGreenVolume {
        /// PV name.
        pv: String,
        /// The claim it is reserved for.
        claim: String,
        /// That claim's uid in green.
        claim_uid: String,
    },
    /// Scale green's StatefulSet.
    ScaleGreen {
        /// Target replicas.
        replicas: i32,
    },
    /// Patch a green PV to Retain (before deleting its claim on rollback).
    RetainGreenVolume {
        /// PV name.
        pv: String,
    },
    /// Delete green's claim (rollback).
    DeleteGreenClaim {
        /// Claim name.
        claim: String,
    },
    /// Delete green's PV (rollback; Retain, so the volume stays).
    DeleteGreenVolume {
        /// PV name.
        pv: String,
    },
    /// Put a blue PV's reclaim policy back (rollback).
    RestoreBlueVolume {
        /// PV name.
        pv: String,
        /// The policy to set.
        policy: ReclaimPolicy,
    },
    /// Put blue's claim retention policy back (rollback).
    RestoreBlueClaims {
        /// The policy to set.
        policy: RetentionPolicy,
    },
    /// Delete blue's claim (commit; its PV is Retain, so the volume stays).
    DeleteBlueClaim {
        /// Claim name.
        claim: String,
    },
    /// Delete blue's PV (commit; Retain, so the volume stays).
    DeleteBlueVolume {
        /// PV name.
        pv: String,
    },
    /// Put a green PV's original reclaim policy back (commit --restore-reclaim-policy).
    RestoreGreenVolume {
        /// PV name.
        pv: String,
        /// The policy to set.
        policy: ReclaimPolicy,
    },
    /// Change the ownership tags of the app's volumes (one CreateTags, one DeleteTags):
    /// to what green's EBS CSI driver needs once blue has let go of them, or back to
    /// blue's once green has (rollback).
    RetagVolumes {
        /// The volumes.
        volumes: Vec<String>,
        /// Tags to set.
        add: Tags,
        /// Keys to remove.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove: Vec<String>,
        /// Blue's values of the touched keys per volume before the hand-over (what the
        /// journal keeps for a rollback by hand).
        blue: BTreeMap<String, Tags>,
    },
}

impl Action {
    /// Whether it deletes an object (a claim or a PV).
    pub fn deletes(&self) -> bool {
        matches!(
            self,
            Self::DeleteGreenClaim { .. }
                | Self::DeleteGreenVolume { .. }
                | Self::DeleteBlueClaim { .. }
                | Self::DeleteBlueVolume { .. }
        )
    }

    /// Which cluster (or EC2) it changes.
    pub fn target(&self) -> &'static str {
        match self {
            Self::RetainBlueVolume { .. }
            | Self::RetainBlueClaims { .. }
            | Self::ScaleBlue { .. }
            | Self::PauseFence { .. }
            | Self::ResumeFence { .. }
            | Self::RestoreBlueVolume { .. }
            | Self::RestoreBlueClaims { .. }
            | Self::DeleteBlueClaim { .. }
            | Self::DeleteBlueVolume { .. } => "blue",
            Self::StartSnapshot { .. } | Self::RetagVolumes { .. } => "ec2",
            _ => "green",
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::RetainBlueVolume { pv, original } => {
                format!("set PV {pv} to Retain (was {original})")
            }
            Self::RetainBlueClaims { original } => format!(
                "set claim retention to Retain (was whenScaled {}, whenDeleted {})",
                original.when_scaled, original.when_deleted
            ),
            Self::ScaleBlue { replicas } => format!("scale blue to {replicas}"),
            Self::PauseFence { fence } => {
                format!("pause {fence} ({})", fence.kind.field())
            }
            Self::ResumeFence { fence, original } => {
                format!("restore {fence}'s {} to {original}", fence.kind.field())
            }
            Self::StartSnapshot { volume_id, claim } => {
                format!("start snapshot of {volume_id} ({claim})")
            }
            Self::CreateGreenClaim { claim } => format!("create claim {claim}"),
            Self::CreateGreenVolume {
                pv,
                claim,
                claim_uid,
            } => {
                format!("create PV {pv} for {claim} (uid {claim_uid}), Retain")
            }
            Self::ScaleGreen { replicas } => format!("scale green to {replicas}"),
            Self::RetainGreenVolume { pv } => format!("set green PV {pv} to Retain"),
            Self::DeleteGreenClaim { claim } => format!("delete green claim {claim}"),
            Self::DeleteGreenVolume { pv } => format!("delete green PV {pv} (volume kept)"),
            Self::RestoreBlueVolume { pv, policy } => format!("restore PV {pv} to {policy}"),
            Self::RestoreBlueClaims { policy } => format!(
                "restore claim retention (whenScaled {}, whenDeleted {})",
                policy.when_scaled, policy.when_deleted
            ),
            Self::DeleteBlueClaim { claim } => format!("delete blue claim {claim}"),
            Self::DeleteBlueVolume { pv } => format!("delete blue PV {pv} (volume kept)"),
            Self::RestoreGreenVolume { pv, policy } => {
                format!("restore green PV {pv} to {policy}")
            }
            Self::RetagVolumes {
                volumes,
                add,
                remove,
                ..
            } => {
                let mut parts: Vec<String> = add.iter().map(|(k, v)| format!("{k}={v}")).collect();
                parts.extend(remove.iter().map(|k| format!("-{k}")));
                format!(
                    "tag {} volume{} {}",
                    volumes.len(),
                    if volumes.len() == 1 { "" } else { "s" },
                    parts.join(" ")
                )
            }
        }
    }
}

/// A condition the runner waits for (on a watch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Blue's pods of the app are gone, and its StatefulSet is seen at 0 replicas.
    BluePodsGone,
    /// Blue's VolumeAttachments of the app's PVs are gone.
    BlueDetached,
    /// EC2 reports every volume of the app `available`.
    VolumesAvailable,
    /// Every green claim is Bound.
    GreenBound,
    /// Green's StatefulSet has all replicas Ready.
    GreenReady,
    /// Green's pods of the app are gone, and its StatefulSet is seen at 0 replicas.
    GreenPodsGone,
    /// Green's VolumeAttachments of the app's PVs are gone.
    GreenDetached,
    /// Blue's StatefulSet has all replicas Ready.
    BlueReady,
}

/// Where a wait looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// Blue's side of the app.
    Blue,
    /// Green's side of the app.
    Green,
    /// EC2's view of the app's volumes.
    Ec2,
}

impl Wait {
    /// Where it looks.
    pub fn watched(self) -> Watched {
        match self {
            Self::BluePodsGone | Self::BlueDetached | Self::BlueReady => Watched::Blue,
            Self::GreenBound | Self::GreenReady | Self::GreenPodsGone | Self::GreenDetached => {
                Watched::Green
            }
            Self::VolumesAvailable => Watched::Ec2,
        }
    }

    /// Whether it holds on the cluster side it watches (see [`Wait::watched`]): the
    /// conditions under which [`next`] no longer asks for it. `migration` is this
    /// migration's id (green's claims count only when it made them). Always false for
    /// [`Wait::VolumesAvailable`], which looks at EC2 ([`Wait::holds_on_ec2`]).
    pub fn holds_on(self, app: &AppPlan, migration: &str, side: &Side) -> bool {
        let ready = |s: &Side| {
            s.sts
                .as_ref()
                .is_some_and(|x| x.ready_replicas >= app.replicas && x.observed)
        };
        match self {
            // Both follow a scale to 0: the view must show that scale too, or a cache
            // whose pod deletions overtook the StatefulSet's update would ask for the
            // scale again (harmless, but a mutation more than the move makes).
            Self::BluePodsGone | Self::GreenPodsGone => {
                side.pods == 0 && side.sts.as_ref().is_none_or(|s| s.replicas == 0)
            }
            Self::BlueDetached | Self::GreenDetached => side.attachments == 0,
            Self::GreenBound => app.volumes.iter().all(|v| holds(v, side, migration)),
            Self::GreenReady | Self::BlueReady => ready(side),
            Self::VolumesAvailable => false,
        }
    }

    /// Whether it holds on EC2's view of the volumes (only [`Wait::VolumesAvailable`]
    /// looks there): every volume of the app known and `available`.
    pub fn holds_on_ec2(self, app: &AppPlan, ec2: &BTreeMap<String, Ec2Volume>) -> bool {
        self == Self::VolumesAvailable
            && app.volumes.iter().all(|v| {
                ec2.get(&v.volume_id)
                    .is_some_and(|e| e.state == "available")
            })
    }

    /// One line for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BluePodsGone => "blue's pods to stop",
            Self::BlueDetached => "blue's volume attachments to go",
            Self::VolumesAvailable => "EC2 to report the volumes available",
            Self::GreenBound => "green's claims to bind",
            Self::GreenReady => "green's pods to be Ready",
            Self::GreenPodsGone => "green's pods to stop",
            Self::GreenDetached => "green's volume attachments to go",
            Self::BlueReady => "blue's pods to be Ready",
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Make this change.
    Act(Action),
    /// Wait for this.
    Wait {
        /// The condition.
        wait: Wait,
    },
    /// Nothing left to do in this mode.
    Done,
    /// The app cannot go on safely; nothing more is changed for it.
    Blocked {
        /// Why, naming the object and the fix.
        reason: String,
    },
}

/// Where an app stands, for people and the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppPhase {
    /// Nothing changed yet.
    Planned,
    /// Making volumes and claims Retain (no downtime).
    Preparing,
    /// Blue is being scaled down: the window is open.
    Draining,
    /// Blue is stopped; volumes are being handed to green.
    HandingOver,
    /// Waiting for green's claims to bind.
    Binding,
    /// Green is scaling up.
    Starting,
    /// Green runs the app on blue's volumes; the window is closed.
    Migrated,
    /// Going back to blue.
    RollingBack,
    /// Back on blue.
    RolledBack,
    /// Retiring blue's claims and PVs.
    Committing,
    /// Done for good.
    Committed,
    /// Stopped safely on a problem.
    Blocked,
}

impl AppPhase {
    /// The phase a decision puts an app in.
    pub fn of(mode: Mode, d: &Decision) -> Self {
        match (mode, d) {
            (_, Decision::Blocked { .. }) => Self::Blocked,
            (Mode::Rollback, Decision::Done) => Self::RolledBack,
            (Mode::Rollback, _) => Self::RollingBack,
            (Mode::Commit { .. }, Decision::Done) => Self::Committed,
            (Mode::Commit { .. }, _) => Self::Committing,
            (Mode::Migrate, Decision::Done) => Self::Migrated,
            (Mode::Migrate, Decision::Act(a)) => match a {
                Action::RetainBlueVolume { .. } | Action::RetainBlueClaims { .. } => {
                    Self::Preparing
                }
                Action::ScaleBlue { .. } => Self::Draining,
                // A ScaledObject paused at 0 stops blue itself; the others do not.
                Action::PauseFence { fence } if fence.kind.stops_target() => Self::Draining,
                Action::PauseFence { .. } => Self::Preparing,
                Action::ScaleGreen { .. } => Self::Starting,
                _ => Self::HandingOver,
            },
            (Mode::Migrate, Decision::Wait { wait }) => match wait {
                Wait::BluePodsGone | Wait::BlueDetached | Wait::VolumesAvailable => Self::Draining,
                Wait::GreenBound => Self::Binding,
                _ => Self::Starting,
            },
        }
    }

    /// The phase as words, for people.
    pub fn name(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Preparing => "preparing (Retain first)",
            Self::Draining => "window open: stopping blue",
            Self::HandingOver => "handing volumes to green",
            Self::Binding => "binding in green",
            Self::Starting => "starting green",
            Self::Migrated => "migrated",
            Self::RollingBack => "rolling back",
            Self::RolledBack => "rolled back",
            Self::Committing => "committing",
            Self::Committed => "committed",
            Self::Blocked => "blocked",
        }
    }

    /// Whether blue is stopped for this app (the downtime window is open).
    pub fn in_window(self) -> bool {
        matches!(
            self,
            Self::Draining | Self::HandingOver | Self::Binding | Self::Starting
        )
    }
}

/// Whether `decision`, made from a *cached* view of the clusters (a watch cache, which
/// may lag them — baton's own writes included — and does not order one kind's changes
/// against another's), may be carried out without a fresh read first.
///
/// The rule, which keeps every destructive or irreversible step on fresh state:
/// - only in [`Mode::Migrate`]: Rollback and Commit delete objects and hand volumes back,
///   so each of their steps after a wait is decided on a fresh read;
/// - waits: yes — every wait's condition is false on the world before the write it
///   follows (pods 0, attachments 0, claims Bound to our PV, readyReplicas ≥ N with
///   `observedGeneration == generation`), so a lagging view only makes a wait longer;
/// - creations, scaling, snapshots, Retain: yes — a view older than one of baton's own
///   writes can at worst ask for that write again, which would find it made (every step
///   is idempotent); the runner does not send it but reads fresh instead; a snapshot is never started from a view that has not read this
///   migration's snapshots (the runner's job);
/// - [`Decision::Done`]: yes — green Ready on the volumes is never seen before it happens;
/// - a deletion: never (none is decided in Migrate; the guard stays for safety);
/// - [`Decision::Blocked`]: never — a view mixing moments may look inconsistent, and an
///   app is stopped only on what a fresh read shows.
pub fn trusts_cached_view(mode: Mode, decision: &Decision) -> bool {
    mode == Mode::Migrate
        && match decision {
            Decision::Act(a) => !a.deletes(),
            Decision::Wait { .. } | Decision::Done => true,
            Decision::Blocked { .. } => false,
        }
}

/// What a wait saw when its condition held: the side of the cluster it watched (from
/// that cluster's watch cache, so it may lag: see [`trusts_cached_view`]), or EC2's view
/// of the volumes (a fresh read).
#[derive(Debug, Clone)]
pub enum Seen {
    /// Blue's side.
    Blue(Side),
    /// Green's side.
    Green(Side),
    /// EC2's volumes, by id.
    Ec2(BTreeMap<String, Ec2Volume>),
}

impl Seen {
    /// Puts what was seen into `obs`, in place of what it held of the same source.
    pub fn update(self, obs: &mut Observed) {
        match self {
            Seen::Blue(s) => obs.blue = s,
            Seen::Green(s) => obs.green = s,
            Seen::Ec2(v) => obs.ec2 = v,
        }
    }

    /// Whether it came from a watch cache (which may lag the cluster).
    pub fn cached(&self) -> bool {
        !matches!(self, Seen::Ec2(_))
    }
}

/// The next step for one app.
pub fn next(mode: Mode, app: &AppPlan, obs: &Observed) -> Decision {
    match mode {
        Mode::Migrate => next_migrate(app, obs),
        Mode::Rollback => next_rollback(app, obs),
        Mode::Commit {
            restore_reclaim_policy,
        } => next_commit(app, obs, restore_reclaim_policy),
    }
}

fn act(a: Action) -> Decision {
    Decision::Act(a)
}

fn wait(w: Wait) -> Decision {
    Decision::Wait { wait: w }
}

fn blocked(reason: impl Into<String>) -> Decision {
    Decision::Blocked {
        reason: reason.into(),
    }
}

/// Green holds this volume: its claim, made by this migration, is bound to the planned
/// PV, whose claimRef carries that claim's uid.
fn green_holds(v: &VolumePlan, obs: &Observed) -> bool {
    holds(v, &obs.green, &obs.migration)
}

/// [`green_holds`] on one side, for [`Wait::GreenBound`] (which sees green alone).
fn holds(v: &VolumePlan, side: &Side, migration: &str) -> bool {
    let Some(claim) = side.claims.get(&v.claim) else {
        return false;
    };
    claim_is_ours(side, &v.claim, &v.pv, migration)
        && claim.phase == "Bound"
        && side
            .volumes
            .get(&v.pv)
            .and_then(|pv| pv.claim_ref.as_ref())
            .is_some_and(|r| r.uid == claim.uid)
}

/// Green's PV for this volume (same name, same EBS volume).
fn green_pv<'a>(v: &VolumePlan, obs: &'a Observed) -> Option<&'a Pv> {
    obs.green
        .volumes
        .get(&v.pv)
        .filter(|pv| pv.volume_id.as_deref() == Some(v.volume_id.as_str()))
}

fn retain_first(app: &AppPlan, obs: &Observed) -> Option<Decision> {
    for v in &app.volumes {
        if let Some(pv) = obs.blue.volumes.get(&v.pv)
            && pv.reclaim_policy != ReclaimPolicy::Retain
        {
            return Some(act(Action::RetainBlueVolume {
                pv: v.pv.clone(),
                original: pv.reclaim_policy,
            }));
        }
    }
    if let Some(sts) = &obs.blue.sts
        && sts.retention.deletes_claims()
    {
        return Some(act(Action::RetainBlueClaims {
            original: sts.retention.clone(),
        }));
    }
    None
}

fn next_migrate(app: &AppPlan, obs: &Observed) -> Decision {
    let key = app.key();
    if let Some(d) = retain_first(app, obs) {
        return d;
    }
    let claim = app.kind == WorkloadKind::Claim;
    // A claim moving on its own has no workload; a pod mounting it stops the move.
    if claim && obs.blue.pods > 0 {
        return blocked(format!(
            "{} pod(s) in blue mount claim {key}: a claim moves on its own only while nothing mounts it; stop them (or move their workload instead), then resume",
            obs.blue.pods
        ));
    }
    if claim && app.volumes.iter().all(|v| green_holds(v, obs)) {
        return Decision::Done;
    }
    let none = StatefulSet::none();
    let green = match &obs.green.sts {
        Some(g) => g,
        None if claim => &none,
        None => {
            return blocked(format!(
                "{} {key} does not exist in green; deploy it with replicas: 0, then resume",
                app.kind
            ));
        }
    };
    // A group's member without volumes has moved once blue is stopped and fenced: green
    // may start.
    let blue_stopped = obs.blue.pods == 0 && obs.blue.sts.as_ref().is_none_or(|s| s.replicas == 0);
    let fenced = app.fences.iter().all(|f| !obs.fence_active(f));
    let moved = if app.stateless() {
        blue_stopped && fenced
    } else {
        app.volumes.iter().all(|v| green_holds(v, obs))
    };
    if moved {
        if green.replicas < app.replicas {
            return act(Action::ScaleGreen {
                replicas: app.replicas,
            });
        }
        if green.ready_replicas < app.replicas || !green.observed {
            return wait(Wait::GreenReady);
        }
        return Decision::Done;
    }
    if green.replicas > 0 {
        return blocked(format!(
            "green runs {} replicas of {key} but does not hold its volumes; scale it to 0 in green (and delete the claims it made), then resume",
            green.replicas
        ));
    }
    for v in &app.volumes {
        if !obs.blue.volumes.contains_key(&v.pv) {
            return blocked(format!(
                "blue's PV {} is gone before green holds it; find volume {} (Retain kept it) before going on",
                v.pv, v.volume_id
            ));
        }
        if let Some(gc) = obs.green.claims.get(&v.claim)
            && !obs.green_claim_is_ours(&v.claim, &v.pv)
        {
            return blocked(format!(
                "green's claim {}/{} was not created by this migration (volumeName {:?}); baton never hands a volume to a claim it did not make — delete that claim if it holds nothing you need, then resume",
                app.namespace, v.claim, gc.volume_name
            ));
        }
        if let Some(gpv) = obs.green.volumes.get(&v.pv)
            && gpv.volume_id.as_deref() != Some(v.volume_id.as_str())
        {
            return blocked(format!(
                "green already has a PV named {} for another volume ({}); remove it, then resume",
                v.pv,
                gpv.volume_id.as_deref().unwrap_or("not EBS")
            ));
        }
    }

    // Nothing may scale blue back up once it is stopped: its fences are paused after
    // every check that can stop the app and before blue stops (and again, should one be
    // undone while the app moves). The other kinds first: a ScaledObject paused at 0
    // stops blue itself.
    let mut fences: Vec<&Fence> = app.fences.iter().collect();
    fences.sort_by_key(|f| f.kind.stops_target());
    for f in fences {
        if obs.fence_active(f) {
            return act(Action::PauseFence { fence: f.clone() });
        }
    }
    // The window: stop blue and wait until EC2 lets go of the volumes.
    let blue_replicas = obs.blue.sts.as_ref().map_or(0, |s| s.replicas);
    if blue_replicas > 0 {
        return act(Action::ScaleBlue { replicas: 0 });
    }
    if obs.blue.pods > 0 {
        return wait(Wait::BluePodsGone);
    }
    if obs.blue.attachments > 0 {
        return wait(Wait::BlueDetached);
    }
    for v in &app.volumes {
        match obs.ec2.get(&v.volume_id) {
            None => {
                return blocked(format!(
                    "EC2 does not know volume {} (claim {}); check the account and region",
                    v.volume_id, v.claim
                ));
            }
            Some(e) if e.state == "available" => {}
            Some(e) if e.state == "in-use" || e.state == "creating" => {
                return wait(Wait::VolumesAvailable);
            }
            Some(e) => {
                return blocked(format!(
                    "volume {} is {} in EC2; it must be available to hand over",
                    v.volume_id, e.state
                ));
            }
        }
    }

    // Blue has let go of every volume: its ownership tags may now become green's.
    if let Some(change) = &app.handover {
        let volumes: Vec<String> = app
            .volumes
            .iter()
            .filter(|v| {
                obs.ec2
                    .get(&v.volume_id)
                    .is_some_and(|e| !change.made_on(&e.tags))
            })
            .map(|v| v.volume_id.clone())
            .collect();
        if !volumes.is_empty() {
            return act(Action::RetagVolumes {
                volumes,
                add: change.add.clone(),
                remove: change.remove.clone(),
                blue: change.blue.clone(),
            });
        }
    }

    // Hand over, volume by volume: snapshot started, claim, then PV with the claim's uid.
    for v in &app.volumes {
        if !obs.snapshots.contains_key(&v.volume_id) {
            return act(Action::StartSnapshot {
                volume_id: v.volume_id.clone(),
                claim: v.claim.clone(),
            });
        }
    }
    for v in &app.volumes {
        if !obs.green.claims.contains_key(&v.claim) {
            return act(Action::CreateGreenClaim {
                claim: v.claim.clone(),
            });
        }
    }
    for v in &app.volumes {
        let claim = &obs.green.claims[&v.claim];
        match green_pv(v, obs) {
            None => {
                return act(Action::CreateGreenVolume {
                    pv: v.pv.clone(),
                    claim: v.claim.clone(),
                    claim_uid: claim.uid.clone(),
                });
            }
            Some(pv) => {
                let reserved = pv.claim_ref.as_ref().map(|r| r.uid.as_str());
                if reserved != Some(claim.uid.as_str()) {
                    return blocked(format!(
                        "green's PV {} is reserved for claim uid {:?}, not for green's claim {} ({}); delete that PV (it is Retain, the volume stays), then resume",
                        v.pv,
                        reserved.unwrap_or(""),
                        v.claim,
                        claim.uid
                    ));
                }
            }
        }
    }
    wait(Wait::GreenBound)
}

fn next_rollback(app: &AppPlan, obs: &Observed) -> Decision {
    let key = app.key();
    for v in &app.volumes {
        if !obs.blue.claims.contains_key(&v.claim) || !obs.blue.volumes.contains_key(&v.pv) {
            return blocked(format!(
                "blue's claim {} or PV {} is gone (committed?); rollback needs them — the app stays on green",
                v.claim, v.pv
            ));
        }
    }
    let claim = app.kind == WorkloadKind::Claim;
    if obs.blue.sts.is_none() && !claim {
        return blocked(format!(
            "{} {key} is gone from blue; re-create it there (replicas 0), then roll back",
            app.kind
        ));
    }
    // Stop green and make it let go of the volumes (its PVs Retain first).
    if let Some(g) = &obs.green.sts
        && g.replicas > 0
    {
        return act(Action::ScaleGreen { replicas: 0 });
    }
    if claim && obs.green.pods > 0 {
        return blocked(format!(
            "{} pod(s) in green mount claim {key}; stop them, then roll back",
            obs.green.pods
        ));
    }
    if obs.green.pods > 0 {
        return wait(Wait::GreenPodsGone);
    }
    if obs.green.attachments > 0 {
        return wait(Wait::GreenDetached);
    }
    for v in &app.volumes {
        if let Some(pv) = green_pv(v, obs)
            && pv.reclaim_policy != ReclaimPolicy::Retain
        {
            return act(Action::RetainGreenVolume { pv: v.pv.clone() });
        }
    }
    for v in &app.volumes {
        if obs.green_claim_is_ours(&v.claim, &v.pv)
            && obs.green.claims.get(&v.claim).is_some_and(|c| !c.deleting)
        {
            return act(Action::DeleteGreenClaim {
                claim: v.claim.clone(),
            });
        }
    }
    for v in &app.volumes {
        if green_pv(v, obs).is_some() {
            return act(Action::DeleteGreenVolume { pv: v.pv.clone() });
        }
    }
    // Blue starts only on volumes EC2 has released (a claim: blue's PV is usable again).
    let none = StatefulSet::none();
    let blue = obs.blue.sts.as_ref().unwrap_or(&none);
    if blue.replicas < app.replicas || claim {
        for v in &app.volumes {
            if obs
                .ec2
                .get(&v.volume_id)
                .is_some_and(|e| e.state != "available")
            {
                return wait(Wait::VolumesAvailable);
            }
        }
        // Green has let go: blue's driver gets its tags back before blue starts.
        if let Some(d) = restore_tags(app, obs) {
            return d;
        }
        // Then what baton paused, before blue starts: a KEDA ScaledObject paused at 0
        // holds its target at 0 (it would undo the scale-up), and the others may scale
        // blue as they did before the move.
        if let Some(d) = resume_fences(app, obs) {
            return d;
        }
        if !claim {
            return act(Action::ScaleBlue {
                replicas: app.replicas,
            });
        }
    }
    if blue.ready_replicas < app.replicas || !blue.observed {
        return wait(Wait::BlueReady);
    }
    for v in &app.volumes {
        if let Some(pv) = obs.blue.volumes.get(&v.pv)
            && pv.reclaim_policy != v.original_reclaim_policy
        {
            return act(Action::RestoreBlueVolume {
                pv: v.pv.clone(),
                policy: v.original_reclaim_policy,
            });
        }
    }
    if blue.retention != app.retention {
        return act(Action::RestoreBlueClaims {
            policy: app.retention.clone(),
        });
    }
    // Blue never stopped (a run that ended after a pause, before the scale): the fences
    // are resumed here.
    if let Some(d) = resume_fences(app, obs) {
        return d;
    }
    Decision::Done
}

/// Rollback's fence step: the first fence baton paused (its record is there), put back.
fn resume_fences(app: &AppPlan, obs: &Observed) -> Option<Decision> {
    app.fences
        .iter()
        .filter(|f| !f.shared)
        .find_map(|f| match obs.fences.get(&f.key()) {
            Some(FenceSeen {
                active: false,
                original: Some(original),
            }) => Some(act(Action::ResumeFence {
                fence: f.clone(),
                original: original.clone(),
            })),
            _ => None,
        })
}

/// Rollback's tag step: the volumes whose touched tags are not blue's, grouped by the
/// change that puts them back (one group, and so one call, when blue's values were the
/// same on every volume); the first group's.
fn restore_tags(app: &AppPlan, obs: &Observed) -> Option<Decision> {
    let change = app.handover.as_ref()?;
    // (tags to set, keys to remove) → the volumes that need exactly that.
    type Change = (Vec<(String, String)>, Vec<String>);
    let mut groups: BTreeMap<Change, Vec<String>> = BTreeMap::new();
    for v in &app.volumes {
        let Some(e) = obs.ec2.get(&v.volume_id) else {
            continue;
        };
        let (add, remove) = change.restore(&v.volume_id, &e.tags);
        if add.is_empty() && remove.is_empty() {
            continue;
        }
        groups
            .entry((add.into_iter().collect(), remove))
            .or_default()
            .push(v.volume_id.clone());
    }
    let ((add, remove), volumes) = groups.into_iter().next()?;
    Some(act(Action::RetagVolumes {
        volumes,
        add: add.into_iter().collect(),
        remove,
        blue: change.blue.clone(),
    }))
}

fn next_commit(app: &AppPlan, obs: &Observed, restore: bool) -> Decision {
    let key = app.key();
    // A group's member without volumes has nothing to hand over: it is on green once
    // green runs it, Ready.
    if app.stateless()
        && obs.green.sts.as_ref().is_none_or(|g| {
            g.replicas < app.replicas || g.ready_replicas < app.replicas || !g.observed
        })
    {
        return blocked(format!(
            "{key} does not run in green yet ({} of {} Ready); finish `baton migrate --resume` or roll back",
            obs.green.sts.as_ref().map_or(0, |g| g.ready_replicas),
            app.replicas
        ));
    }
    if !app.volumes.iter().all(|v| green_holds(v, obs)) {
        return blocked(format!(
            "{key} is not on green yet (its claims are not all bound to blue's volumes); finish `baton migrate --resume` or roll back"
        ));
    }
    if obs.blue.sts.as_ref().is_some_and(|s| s.replicas > 0) {
        return blocked(format!(
            "blue runs {key} again; scale it to 0 in blue (green holds the volumes), then commit"
        ));
    }
    if app.kind == WorkloadKind::Claim && obs.blue.pods > 0 {
        return blocked(format!(
            "{} pod(s) in blue mount claim {key} again; stop them (green holds the volume), then commit",
            obs.blue.pods
        ));
    }
    // Blue must never come back (with its claims gone it would provision new, empty
    // volumes): its fences stay, and one undone since the move is paused again.
    for f in &app.fences {
        if obs.fence_active(f) {
            return act(Action::PauseFence { fence: f.clone() });
        }
    }
    // Deleting blue's claim or PV must never delete the volume.
    for v in &app.volumes {
        if let Some(pv) = obs.blue.volumes.get(&v.pv)
            && pv.reclaim_policy != ReclaimPolicy::Retain
        {
            return act(Action::RetainBlueVolume {
                pv: v.pv.clone(),
                original: pv.reclaim_policy,
            });
        }
    }
    for v in &app.volumes {
        if obs.blue.claims.get(&v.claim).is_some_and(|c| !c.deleting) {
            return act(Action::DeleteBlueClaim {
                claim: v.claim.clone(),
            });
        }
    }
    for v in &app.volumes {
        if obs.blue.volumes.contains_key(&v.pv) {
            return act(Action::DeleteBlueVolume { pv: v.pv.clone() });
        }
    }
    if restore {
        for v in &app.volumes {
            if let Some(pv) = obs.green.volumes.get(&v.pv)
                && pv.reclaim_policy != v.original_reclaim_policy
            {
                return act(Action::RestoreGreenVolume {
                    pv: v.pv.clone(),
                    policy: v.original_reclaim_policy,
                });
            }
        }
    }
    Decision::Done
}
