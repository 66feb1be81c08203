//! `demo.json`: what a demo run did and found (written by `baton demo`, read here), beside the journals of the commands it ran
//! (`migration/`, `traffic/`), saved after every step so that `baton report` can draw a
//! run that stopped half-way as well as one that finished.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::commands::files::write_json;

/// The file's name in the demo's state dir.
pub const FILE: &str = "demo.json";

/// One demo run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DemoRecord {
    /// The scenario.
    pub scenario: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it ended.
    #[serde(default)]
    pub ended: Option<String>,
    /// Every step, in order, as far as the run got.
    pub steps: Vec<StepRecord>,
    /// Each migrated volume's data fingerprint before and after.
    #[serde(default)]
    pub volumes: Vec<VolumeRecord>,
    /// The invariants checked at the end.
    #[serde(default)]
    pub invariants: Vec<Invariant>,
    /// What the commands reported that a user should read (plan warnings, rules added).
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// It ran and succeeded.
    Done,
    /// It did not run, for the reason in its summary.
    Skipped,
    /// It failed; the demo stopped there.
    Failed,
}

/// One step of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub name: String,
    /// How it ended.
    pub status: StepStatus,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it ended.
    pub ended: String,
    /// One line of what it did, or why it was skipped or failed.
    pub summary: String,
}

/// A volume's fingerprint (the counter the emulated app advances on its data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The pod that wrote it last (`cluster/namespace/pod`).
    pub writer: String,
    /// The value that pod started from.
    pub from: u64,
    /// The value.
    pub value: u64,
}

impl Fingerprint {
    /// The cluster that wrote it last.
    pub fn cluster(&self) -> &str {
        self.writer.split('/').next().unwrap_or_default()
    }
}

/// One migrated volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// `namespace/name` of its app.
    pub app: String,
    /// Its claim.
    pub claim: String,
    /// The EBS volume.
    pub volume_id: String,
    /// Read on EC2 before the move (blue writing).
    pub before: Option<Fingerprint>,
    /// Read on EC2 after commit (green writing).
    pub after: Option<Fingerprint>,
}

impl VolumeRecord {
    /// Its fingerprint before the move and after commit, as the summary and the report
    /// print them (`?` when unread): `41` and `green from 41 now 57`.
    pub fn fingerprints(&self) -> (String, String) {
        let before = self
            .before
            .as_ref()
            .map_or("?".into(), |f| f.value.to_string());
        let after = self.after.as_ref().map_or("?".into(), |f| {
            format!("{} from {} now {}", f.cluster(), f.from, f.value)
        });
        (before, after)
    }
}

/// A checked invariant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invariant {
    /// What must hold.
    pub name: String,
    /// Whether it held.
    pub held: bool,
    /// What was seen.
    pub detail: String,
}

/// Something a command reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// Which step reported it.
    pub step: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// The object it concerns.
    pub object: String,
    /// What it says (and the fix, when there is one).
    pub message: String,
}

impl DemoRecord {
    /// Saves it (atomically) in `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_json(&dir.join(FILE), self)
    }
}
