//! The migration plan: per app (StatefulSet), the claims and volumes that move, what green
//! must have for them, and every problem found — each naming the object and the fix. A plan
//! is data: printed, saved with `--out`, handed back to `migrate --plan`, and checked for
//! staleness against the world before anything changes.

use serde::{Deserialize, Serialize};

use crate::handover::TagChange;
use crate::world::{ReclaimPolicy, RetentionPolicy, VolumeSource};

/// The plan file's format version.
pub const PLAN_VERSION: u32 = 1;

/// Everything `baton plan` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// Blue's kubeconfig context.
    pub from: String,
    /// Green's kubeconfig context.
    pub to: String,
    /// Blue's Kubernetes version.
    pub from_version: String,
    /// Green's Kubernetes version.
    pub to_version: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Problems not tied to one app (e.g. different VPCs).
    pub problems: Vec<Problem>,
    /// The apps, in the order they will move.
    pub apps: Vec<AppPlan>,
    /// Apps that stop and start together, in one window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupPlan>,
    /// Bound EBS claims that no workload mounts, in the namespaces read, that the
    /// selection left out (`namespace/name`): they move only when asked for
    /// (`--standalone-claims`, `--claim`), and the plan says they are there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unselected_claims: Vec<String>,
}

/// Workloads that must stop and start together (a database and its proxies, Kafka and
/// ZooKeeper): they move as one unit, in one window. Blue's members stop in the reverse
/// of `members`, each once the ones after it are stopped; green's start in its order,
/// each once the ones before it are Ready. Rollback undoes the group the same way round:
/// green stops in reverse, blue starts in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlan {
    /// Its name (`--group NAME=…`, or the value of `app.kubernetes.io/part-of`).
    pub name: String,
    /// The members' app keys (`namespace/name`), in the order green starts them.
    pub members: Vec<String>,
    /// How it was found: `--group`, or the label.
    pub found_by: String,
}

impl GroupPlan {
    /// The members as `a → b → c`, for people.
    pub fn order(&self) -> String {
        self.members.join(" → ")
    }
}

/// One StatefulSet's move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppPlan {
    /// StatefulSet or Deployment.
    #[serde(default, skip_serializing_if = "is_statefulset")]
    pub kind: crate::world::WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name (the same in blue and green).
    pub name: String,
    /// Blue StatefulSet's uid (a plan for a re-created app is stale).
    pub blue_uid: String,
    /// Replicas green will run (blue's `spec.replicas`, or the claims found when blue is
    /// already at 0).
    pub replicas: i32,
    /// Blue's claim retention policy (Delete is made Retain before scale-down).
    pub retention: RetentionPolicy,
    /// What green has for this app.
    pub green: GreenReadiness,
    /// The volumes that move, by ordinal then template.
    pub volumes: Vec<VolumePlan>,
    /// What stands in the way, or deserves attention.
    pub problems: Vec<Problem>,
    /// The tag change green's EBS CSI driver needs on the volumes, made in the window
    /// once blue has let go of them (None: none needed, or no driver role known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<TagChange>,
    /// What could scale blue's workload back up: paused before blue stops, restored on
    /// rollback, kept on commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fences: Vec<crate::fences::Fence>,
}

impl AppPlan {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A workload with no volumes: it moves only as a member of a group (stopped in blue,
    /// started in green, in the group's order).
    pub fn stateless(&self) -> bool {
        self.volumes.is_empty() && self.kind != crate::world::WorkloadKind::Claim
    }

    /// Whether a blocking problem stops this app.
    pub fn blocked(&self) -> bool {
        self.problems
            .iter()
            .any(|p| p.severity == Severity::Blocking)
    }
}

/// Green's side of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreenReadiness {
    /// The StatefulSet exists in green.
    pub exists: bool,
    /// Its `spec.replicas` (0 is what baton expects before the move).
    pub replicas: i32,
    /// Its volumeClaimTemplates match blue's.
    pub templates_match: bool,
    /// Zones of the app's volumes that have a ready green node.
    pub zones_ready: bool,
    /// The app is already on green (its claims bound to the planned volumes).
    pub migrated: bool,
}

/// One claim/volume pair that moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumePlan {
    /// Claim name (`<template>-<sts>-<ordinal>`), the same in green.
    pub claim: String,
    /// The volumeClaimTemplate it comes from.
    pub template: String,
    /// Pod ordinal.
    pub ordinal: i32,
    /// Blue claim uid.
    pub blue_claim_uid: String,
    /// PV name (the same in green).
    pub pv: String,
    /// Blue PV uid.
    pub pv_uid: String,
    /// EBS volume id.
    pub volume_id: String,
    /// Availability zone.
    pub az: String,
    /// EC2 size in GiB.
    pub size_gib: i32,
    /// EBS type.
    pub volume_type: String,
    /// Encrypted at rest.
    pub encrypted: bool,
    /// The KMS key it is encrypted with (its ARN), when EC2 names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Multi-attach enabled.
    pub multi_attach: bool,
    /// CSI or in-tree in blue.
    pub source: VolumeSource,
    /// Blue PV's reclaim policy now.
    pub reclaim_policy: ReclaimPolicy,
    /// The policy to restore on rollback (and on commit with --restore-reclaim-policy).
    pub original_reclaim_policy: ReclaimPolicy,
    /// PV capacity in bytes.
    pub capacity_bytes: u64,
    /// The claim's request in bytes.
    pub request_bytes: u64,
    /// Storage class.
    pub storage_class: String,
    /// Access modes.
    pub access_modes: Vec<String>,
    /// Volume mode.
    pub volume_mode: String,
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// The app cannot move until it is fixed.
    Blocking,
    /// The app can move; read this first.
    Warning,
}

/// A finding: the object, what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Blocking or warning.
    pub severity: Severity,
    /// A stable short code for scripts (`green-missing`, `not-ebs`, …).
    pub code: String,
    /// The object, as `kind context/namespace/name`.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    /// A blocking problem.
    pub fn blocking(
        code: &str,
        object: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Blocking,
            code: code.into(),
            object: object.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// A warning.
    pub fn warning(
        code: &str,
        object: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::blocking(code, object, message, fix)
        }
    }
}

impl Plan {
    /// The group an app (by key) belongs to.
    pub fn group_of(&self, key: &str) -> Option<&GroupPlan> {
        self.groups
            .iter()
            .find(|g| g.members.iter().any(|m| m == key))
    }

    /// Every blocking problem, plan-wide and per app.
    pub fn blocking(&self) -> Vec<&Problem> {
        self.problems
            .iter()
            .chain(self.apps.iter().flat_map(|a| a.problems.iter()))
            .filter(|p| p.severity == Severity::Blocking)
            .collect()
    }

    /// How this (saved) plan differs from one made now from the world; empty when it still
    /// describes the same apps, claims and volumes.
    pub fn differences(&self, now: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        if (self.from.as_str(), self.to.as_str()) != (now.from.as_str(), now.to.as_str()) {
            out.push(format!(
                "the plan moves {} → {}, not {} → {}",
                self.from, self.to, now.from, now.to
            ));
        }
        if self.groups != now.groups {
            let show = |gs: &[GroupPlan]| {
                gs.iter()
                    .map(|g| format!("{} ({})", g.name, g.order()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!(
                "the groups are now [{}], the plan has [{}]",
                show(&now.groups),
                show(&self.groups)
            ));
        }
        for app in &self.apps {
            let Some(cur) = now.apps.iter().find(|a| a.key() == app.key()) else {
                out.push(format!("{} {} is no longer in blue", app.kind, app.key()));
                continue;
            };
            if cur.blue_uid != app.blue_uid {
                out.push(format!(
                    "{} {} was re-created (uid {} → {})",
                    app.kind,
                    app.key(),
                    app.blue_uid,
                    cur.blue_uid
                ));
            }
            for v in &app.volumes {
                match cur.volumes.iter().find(|c| c.claim == v.claim) {
                    None => out.push(format!(
                        "claim {}/{} is no longer planned",
                        app.namespace, v.claim
                    )),
                    Some(c) if c.pv_uid != v.pv_uid || c.volume_id != v.volume_id => {
                        out.push(format!(
                            "claim {}/{} now uses PV {} ({}), the plan says {} ({})",
                            app.namespace, v.claim, c.pv, c.volume_id, v.pv, v.volume_id
                        ))
                    }
                    Some(_) => {}
                }
            }
            if cur.volumes.len() > app.volumes.len() {
                out.push(format!(
                    "{} has {} volumes now, the plan has {}",
                    app.key(),
                    cur.volumes.len(),
                    app.volumes.len()
                ));
            }
        }
        out
    }
}

fn is_statefulset(k: &crate::world::WorkloadKind) -> bool {
    *k == crate::world::WorkloadKind::StatefulSet
}
