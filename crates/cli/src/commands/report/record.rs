//! `demo.json`: what a demo run did and found (written by `baton demo`, read here), beside the journals of the commands it ran
//! (`migration/`, `traffic/`), saved after every step so that `baton report` can draw a
//! run that stopped half-way as well as one that finished.

use std::path::Path;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::commands::files::write_json;
use crate::commands::show;

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
    /// The baton commands it ran, as shown (`baton network plan …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
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
    /// Its ownership tags (`key=value`: the ones EBS CSI drivers' policies and the
    /// in-tree provider read) before the move.
    #[serde(default)]
    pub owner_before: Vec<String>,
    /// The same after commit.
    #[serde(default)]
    pub owner_after: Vec<String>,
    /// A claim that moved on its own: nothing mounts it on either side, so nothing
    /// advances its fingerprint; its data continues when green finds it as blue left it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standalone: bool,
}

/// What the fingerprint columns (blue at start, green from, green now) mean.
pub const FINGERPRINT_LEGEND: &str = "fingerprint: a counter each app's pods advance on their volume. blue at start: read before the move; green from: the value green's pod found on the volume and continued from (blue's last write: blue kept writing until it stopped); green now: read after commit. green from ≥ blue at start, and green now ≥ green from: nothing lost, nothing forked.";

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
    /// What it says.
    pub message: String,
    /// What to do about it, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Findings that say the same thing (step, severity, message and fix) about several
/// objects: shown once, `×N`, with the objects listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingGroup<'a> {
    /// Which step reported them.
    pub step: &'a str,
    /// Their severity.
    pub severity: &'a str,
    /// What they say.
    pub message: &'a str,
    /// Their fix.
    pub fix: Option<&'a str>,
    /// The objects, in the order reported.
    pub objects: Vec<&'a str>,
}

/// `findings` grouped by what they say, in the order each was first reported.
pub fn group(findings: &[Finding]) -> Vec<FindingGroup<'_>> {
    let mut groups: Vec<FindingGroup<'_>> = Vec::new();
    for f in findings {
        let key = (
            f.step.as_str(),
            f.severity.as_str(),
            f.message.as_str(),
            f.fix.as_deref(),
        );
        match groups
            .iter_mut()
            .find(|g| (g.step, g.severity, g.message, g.fix) == key)
        {
            Some(g) => g.objects.push(&f.object),
            None => groups.push(FindingGroup {
                step: key.0,
                severity: key.1,
                message: key.2,
                fix: key.3,
                objects: vec![&f.object],
            }),
        }
    }
    groups
}

/// Grouped findings, one block per group: severity ×N and what it says, the objects
/// (UUIDs cut, see the report or the JSON for the full names), the fix.
pub fn text(groups: &[FindingGroup<'_>], with_step: bool, width: Option<usize>) -> String {
    let mut o = String::new();
    let head = groups.iter().map(|g| g.lead().chars().count()).max();
    let head = head.unwrap_or(0);
    let pad = " ".repeat(2 + head + 2);
    for g in groups {
        let step = if with_step {
            format!("[{}] ", g.step)
        } else {
            String::new()
        };
        let text = format!("{step}{}", g.message);
        let _ = writeln!(
            o,
            "  {:<head$}  {}",
            g.lead(),
            show::wrap(&text, pad.len(), &pad, width)
        );
        let (kind, names) = g.objects_shown();
        let on = match kind {
            Some(kind) => format!("on {kind}: {}", names.join(", ")),
            None => format!("on {}", names.join(", ")),
        };
        let _ = writeln!(
            o,
            "{pad}{}",
            show::wrap(&on, pad.len(), &format!("{pad}   "), width)
        );
        if let Some(fix) = g.fix {
            let fix = format!("fix: {fix}");
            let _ = writeln!(
                o,
                "{pad}{}",
                show::wrap(&fix, pad.len(), &format!("{pad}     "), width)
            );
        }
    }
    o
}

impl FindingGroup<'_> {
    /// `warn ×9`, or `warn` alone for one object.
    pub fn lead(&self) -> String {
        match self.objects.len() {
            1 => self.severity.to_string(),
            n => format!("{} ×{n}", self.severity),
        }
    }

    /// The objects for reading, UUIDs cut: when they are all of one kind (their first
    /// word), the kind counted once (`9 PersistentVolumes`) and the names after it.
    pub fn objects_shown(&self) -> (Option<String>, Vec<String>) {
        let kind = |o: &str| split_kind(o).map(|(k, _)| k.to_string());
        let first = self.objects.first().and_then(|o| kind(o));
        match first {
            Some(k)
                if self.objects.len() > 1
                    && self.objects.iter().all(|o| kind(o).as_ref() == Some(&k)) =>
            {
                (
                    Some(show::plural(self.objects.len(), &k)),
                    self.objects
                        .iter()
                        .map(|o| show::short_name(split_kind(o).map_or(*o, |(_, n)| n)))
                        .collect(),
                )
            }
            _ => (
                None,
                self.objects.iter().map(|o| show::short_name(o)).collect(),
            ),
        }
    }
}

/// An object's kind and name: `PersistentVolume` and `blue/pvc-1 (ns/app)`; a kind
/// led by an acronym keeps its noun (`EBS volume` and `vol-1`, `KMS key` and its ARN).
fn split_kind(object: &str) -> Option<(&str, &str)> {
    let (first, rest) = object.split_once(' ')?;
    let acronym = first.len() <= 4 && first.chars().all(|c| c.is_ascii_uppercase());
    match rest.split_once(' ') {
        Some((noun, name)) if acronym => Some((&object[..first.len() + 1 + noun.len()], name)),
        _ => Some((first, rest)),
    }
}

impl DemoRecord {
    /// Whether the run passed: no step failed and every invariant was checked and held.
    pub fn passed(&self) -> bool {
        !self.invariants.is_empty()
            && self.invariants.iter().all(|i| i.held)
            && self.steps.iter().all(|s| s.status != StepStatus::Failed)
    }

    /// Saves it (atomically) in `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_json(&dir.join(FILE), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(object: &str, message: &str) -> Finding {
        Finding {
            step: "preflight".into(),
            severity: "warn".into(),
            object: object.into(),
            message: message.into(),
            fix: Some("nothing".into()),
        }
    }

    #[test]
    fn findings_that_say_the_same_are_grouped_with_their_objects() {
        let f = [
            finding("pv a", "reclaim policy is Delete"),
            finding("pv b", "in-tree"),
            finding("pv c", "reclaim policy is Delete"),
        ];
        let g = group(&f);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].message, "reclaim policy is Delete");
        assert_eq!(g[0].objects, ["pv a", "pv c"]);
        assert_eq!(g[1].objects, ["pv b"]);
    }
}
