//! What a report is drawn from, read from a state dir, and the series it draws: each
//! app's timeline from the migration journal, green's weight and 5xx ratio from the
//! traffic journal, the findings.

use std::path::{Path, PathBuf};

use baton_core::journal::{Event, Record, Summary};
use baton_core::machine::{Action, AppPhase};
use baton_core::preflight::Report;
use baton_core::traffic::machine::{self as shift, GateRecord, Position, ShiftState};

use super::find;
use super::record::{DemoRecord, FILE as DEMO_FILE, Finding};
use crate::commands::files::{read_json, read_lines};
use crate::exit::Refused;

/// Everything found in a state dir.
#[derive(Debug)]
pub struct Loaded {
    /// The dir.
    pub dir: PathBuf,
    /// A demo's record.
    pub demo: Option<DemoRecord>,
    /// A migration's journal.
    pub migration: Vec<Record>,
    /// A traffic shift's journal.
    pub traffic: Vec<shift::Record>,
    /// A preflight report.
    pub preflight: Option<Report>,
    /// What `baton network apply -o json` printed (the demo keeps it in
    /// `network/applied.json`), and the network plan it applied.
    pub network: Option<(serde_json::Value, Option<serde_json::Value>)>,
}

/// An EBS snapshot the migration took of a volume before handing it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTaken {
    /// `namespace/name` of the app.
    pub app: String,
    /// The claim the volume backs.
    pub claim: String,
    /// The volume.
    pub volume_id: String,
    /// The snapshot's id.
    pub snapshot_id: String,
}

/// A subnet `baton network apply` created (or found created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetMade {
    /// Its id.
    pub id: String,
    /// Its range.
    pub cidr: String,
    /// Its zone and role (`pods`, `nodes`), from the plan; empty when unknown.
    pub az: String,
    /// See `az`.
    pub role: String,
    /// `created`, or `already created` by an earlier apply.
    pub result: &'static str,
}

/// One app's timeline, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct AppTimeline {
    /// `namespace/name`.
    pub app: String,
    /// Its first journal record (prepare starts).
    pub start: i64,
    /// Blue scaled to 0: the window opens.
    pub window_open: Option<i64>,
    /// Green Ready: the window closes.
    pub window_close: Option<i64>,
    /// Its last journal record (commit or rollback done).
    pub end: i64,
    /// Its last phase.
    pub phase: Option<AppPhase>,
}

impl AppTimeline {
    /// The downtime window, in milliseconds.
    pub fn downtime_ms(&self) -> Option<i64> {
        Some(self.window_close? - self.window_open?)
    }
}

/// A point of the traffic chart.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPoint {
    /// When (ms since the epoch).
    pub at: i64,
    /// Green's percentage from then on.
    pub percent: u32,
}

/// A gate's 5xx ratio, when it was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioPoint {
    /// When (ms since the epoch).
    pub at: i64,
    /// 5xx per request over the step.
    pub ratio: f64,
    /// The gate's limit.
    pub limit: f64,
}

/// RFC 3339 to ms since the epoch.
pub fn ms(at: &str) -> Option<i64> {
    at.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

impl Loaded {
    /// Reads what `dir` holds; a dir with none of a demo's, a migration's or a shift's
    /// files is an error naming what was looked for.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let demo = match find(dir, &[DEMO_FILE]) {
            Some(p) => Some(read_json::<DemoRecord>(&p)?),
            None => None,
        };
        let migration = match find(dir, &["migration/journal.jsonl", "journal.jsonl"]) {
            Some(p) => read_lines(&p)?,
            None => Vec::new(),
        };
        let traffic = match find(dir, &["traffic/traffic.jsonl", "traffic.jsonl"]) {
            Some(p) => read_lines(&p)?,
            None => Vec::new(),
        };
        let preflight = match find(dir, &["preflight.json"]) {
            Some(p) => Some(read_json::<Report>(&p)?),
            None => None,
        };
        let network = match find(dir, &["network/applied.json"]) {
            Some(p) => {
                let plan = find(dir, &["network/plan.json"])
                    .map(|p| read_json::<serde_json::Value>(&p))
                    .transpose()?;
                Some((read_json::<serde_json::Value>(&p)?, plan))
            }
            None => None,
        };
        if demo.is_none() && migration.is_empty() && traffic.is_empty() && preflight.is_none() {
            return Err(Refused(format!(
                "{} holds nothing to report: no {DEMO_FILE}, migration journal (journal.jsonl), traffic journal (traffic.jsonl) or preflight.json; pass the --state-dir of `baton demo`, `baton migrate` or `baton traffic shift`",
                dir.display()
            ))
            .into());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            demo,
            migration,
            traffic,
            preflight,
            network,
        })
    }

    /// The migration's id (from its journal).
    pub fn migration_id(&self) -> Option<String> {
        Summary::fold(&self.migration).migration
    }

    /// Every snapshot the migration took, in the journal's order.
    pub fn snapshots(&self) -> Vec<SnapshotTaken> {
        self.migration
            .iter()
            .filter_map(|r| match (&r.app, &r.event) {
                (
                    Some(app),
                    Event::Done {
                        action: Action::StartSnapshot { volume_id, claim },
                        result: Some(id),
                    },
                ) => Some(SnapshotTaken {
                    app: app.clone(),
                    claim: claim.clone(),
                    volume_id: volume_id.clone(),
                    snapshot_id: id.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The subnets `network apply` made, by range.
    pub fn subnets(&self) -> Vec<SubnetMade> {
        let Some((applied, plan)) = &self.network else {
            return Vec::new();
        };
        let planned = |cidr: &str, key: &str| {
            plan.as_ref()
                .and_then(|p| p["subnets"].as_array())
                .and_then(|s| s.iter().find(|s| s["cidr"] == cidr))
                .and_then(|s| s[key].as_str())
                .unwrap_or_default()
                .to_string()
        };
        [
            ("created", "created"),
            ("already_created", "already created"),
        ]
        .into_iter()
        .flat_map(|(key, result)| {
            applied[key]
                .as_object()
                .into_iter()
                .flatten()
                .map(move |(cidr, id)| SubnetMade {
                    id: id.as_str().unwrap_or_default().to_string(),
                    cidr: cidr.clone(),
                    az: planned(cidr, "az"),
                    role: planned(cidr, "role"),
                    result,
                })
        })
        .collect()
    }

    /// Each app's timeline, in the order apps first appear in the journal.
    pub fn apps(&self) -> Vec<AppTimeline> {
        let summary = Summary::fold(&self.migration);
        let mut out: Vec<AppTimeline> = Vec::new();
        for r in &self.migration {
            let (Some(app), Some(at)) = (&r.app, ms(&r.at)) else {
                continue;
            };
            match out.iter_mut().find(|a| &a.app == app) {
                Some(a) => a.end = a.end.max(at),
                None => out.push(AppTimeline {
                    app: app.clone(),
                    start: at,
                    window_open: None,
                    window_close: None,
                    end: at,
                    phase: None,
                }),
            }
            if let Event::Phase { phase, .. } = &r.event
                && let Some(a) = out.iter_mut().find(|a| &a.app == app)
            {
                a.phase = Some(*phase);
            }
        }
        for a in &mut out {
            if let Some(s) = summary.apps.get(&a.app) {
                a.window_open = s.window_opened.as_deref().and_then(ms);
                a.window_close = s.window_closed.as_deref().and_then(ms);
            }
        }
        out
    }

    /// The shift, folded (None without a journal or with an unreadable one).
    pub fn shift(&self) -> Option<ShiftState> {
        shift::fold(&self.traffic).ok()
    }

    /// Every gate of the shift.
    pub fn gates(&self) -> Vec<GateRecord> {
        self.shift().map(|s| s.gates).unwrap_or_default()
    }

    /// Green's percentage over time: one point per write of the weights.
    pub fn weights(&self) -> Vec<TrafficPoint> {
        let Some(state) = self.shift() else {
            return Vec::new();
        };
        let steps = &state.plan.split.steps;
        let mut out = Vec::new();
        if let Some(first) = self.traffic.first().and_then(|r| ms(&r.at)) {
            out.push(TrafficPoint {
                at: first,
                percent: 0,
            });
        }
        for r in &self.traffic {
            if let shift::Event::Written { to, at_ms, .. } = &r.event {
                let percent = match to {
                    Position::Step(i) => steps.get(*i).map_or(0, |s| s.percent),
                    Position::Original | Position::Prepared => 0,
                };
                out.push(TrafficPoint {
                    at: i64::try_from(*at_ms).unwrap_or(i64::MAX),
                    percent,
                });
            }
        }
        out
    }

    /// Green's 5xx ratio at each gate.
    pub fn ratios(&self) -> Vec<RatioPoint> {
        let Some(state) = self.shift() else {
            return Vec::new();
        };
        self.traffic
            .iter()
            .filter_map(|r| match &r.event {
                shift::Event::Measured { reading, .. } => Some(RatioPoint {
                    at: ms(&r.at)?,
                    ratio: reading.ratio(),
                    limit: state.plan.gates.max_5xx_ratio,
                }),
                _ => None,
            })
            .collect()
    }

    /// What to read: the demo's findings (which include preflight's), or preflight's.
    pub fn findings(&self) -> Vec<Finding> {
        if let Some(d) = &self.demo {
            return d.findings.clone();
        }
        self.preflight
            .iter()
            .flat_map(|p| &p.findings)
            .map(|f| Finding {
                step: "preflight".into(),
                severity: f.severity.as_str().into(),
                object: f.object.clone(),
                message: format!("{} ({})", f.problem, f.check),
                fix: Some(f.fix.clone()),
            })
            .collect()
    }
}
