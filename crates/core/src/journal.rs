//! Journal records: one JSON line per event, appended (and fsync'd by the runner) before
//! and after every mutation, so a run's history survives a crash and `baton status` can
//! tell every app's and volume's phase from the file alone. [`Summary::fold`] reads them
//! back. Records carry object names and ids, never secrets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::machine::{Action, AppPhase, Mode, Wait};

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the journal (from 1).
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// `namespace/name` of the app, for app events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A run started.
    RunStarted {
        /// Its mode.
        mode: Mode,
        /// The migration id (in baton's annotations and snapshot tags).
        migration: String,
        /// Resumed from an earlier run.
        resumed: bool,
    },
    /// A mutation is about to be made.
    Began {
        /// The mutation.
        #[serde(flatten)]
        action: Action,
    },
    /// The mutation was made (or the world already showed it).
    Done {
        /// The mutation.
        #[serde(flatten)]
        action: Action,
        /// What it produced (a created object's uid, a snapshot id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    },
    /// The mutation failed; the app stops here, safely.
    Failed {
        /// What was being done.
        step: String,
        /// The error.
        error: String,
    },
    /// A wait ended.
    Waited {
        /// The condition.
        wait: Wait,
        /// How long it took, in milliseconds.
        millis: u64,
    },
    /// A group's member waited for others of its group (blue stopping last-first, green
    /// starting first-last).
    GroupWaited {
        /// The group.
        group: String,
        /// The members it waited for.
        members: Vec<String>,
        /// For what, in words.
        condition: String,
        /// How long, in milliseconds.
        millis: u64,
    },
    /// The app entered a phase.
    Phase {
        /// The phase.
        phase: AppPhase,
        /// Why (for Blocked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A run ended.
    RunEnded {
        /// Apps per final phase.
        outcome: BTreeMap<String, AppPhase>,
    },
}

/// What the journal says, folded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// The migration id.
    pub migration: Option<String>,
    /// Runs started.
    pub runs: u32,
    /// Per app: phase, the last error or block reason, and per-volume progress.
    pub apps: BTreeMap<String, AppSummary>,
}

/// One app in the journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppSummary {
    /// Last phase recorded.
    pub phase: Option<AppPhase>,
    /// Last failure or block reason.
    pub problem: Option<String>,
    /// When the window opened (blue scaled to 0), RFC 3339.
    pub window_opened: Option<String>,
    /// When green was Ready again.
    pub window_closed: Option<String>,
    /// Mutations made.
    pub mutations: u32,
    /// Per claim: the last completed step.
    pub volumes: BTreeMap<String, String>,
}

impl Summary {
    /// Folds records in order.
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut s = Self::default();
        for r in records {
            if let Event::RunStarted { migration, .. } = &r.event {
                s.runs += 1;
                s.migration = Some(migration.clone());
                continue;
            }
            let Some(app) = &r.app else { continue };
            let a = s.apps.entry(app.clone()).or_default();
            match &r.event {
                Event::Done { action, .. } => {
                    a.mutations += 1;
                    if let Action::ScaleBlue { replicas: 0 } = action
                        && a.window_opened.is_none()
                    {
                        a.window_opened = Some(r.at.clone());
                    }
                    if let Some((claim, step)) = volume_step(action) {
                        a.volumes.insert(claim, step.into());
                    }
                }
                Event::Failed { step, error } => a.problem = Some(format!("{step}: {error}")),
                Event::Phase { phase, reason } => {
                    a.phase = Some(*phase);
                    if let Some(r) = reason {
                        a.problem = Some(r.clone());
                    }
                    if *phase == AppPhase::Migrated && a.window_opened.is_some() {
                        a.window_closed.get_or_insert_with(|| r.at.clone());
                    }
                }
                _ => {}
            }
        }
        s
    }
}

fn volume_step(a: &Action) -> Option<(String, &'static str)> {
    match a {
        Action::StartSnapshot { claim, .. } => Some((claim.clone(), "snapshot-started")),
        Action::CreateGreenClaim { claim } => Some((claim.clone(), "green-claim-created")),
        Action::CreateGreenVolume { claim, .. } => Some((claim.clone(), "green-pv-created")),
        Action::DeleteGreenClaim { claim } => Some((claim.clone(), "green-claim-deleted")),
        Action::DeleteBlueClaim { claim } => Some((claim.clone(), "blue-claim-deleted")),
        _ => None,
    }
}
