//! What `baton traffic` prints: the plan before confirmation, the summary at the end,
//! and `status` — as tables for people or JSON/YAML for scripts.

use std::time::Duration;

use baton_core::traffic::duration;
use baton_core::traffic::gate::{OnInconclusive, Reading, Verdict};
use baton_core::traffic::machine::{GateRecord, Outcome, Position, ShiftPlan, ShiftState};
use baton_core::traffic::split::Forward;
use serde::Serialize;

use crate::args::Output;
use crate::commands::output::{render, table};
use crate::commands::show::short_arn;

/// The plan, before anything is written.
pub fn plan(p: &ShiftPlan) -> String {
    let s = &p.split;
    let mut out = format!(
        "traffic shift on {}{}\n  from {} to {}\n",
        short_arn(&p.listener_arn),
        p.rule_arn
            .as_ref()
            .map(|r| format!(" {}", short_arn(r)))
            .unwrap_or_default(),
        short_arn(&s.from_tg),
        short_arn(&s.to_tg)
    );
    if let Some(secs) = s.original.sticky_seconds() {
        out += &format!(
            "  stickiness is on ({secs} s): clients already pinned to blue stay there up to {secs} s after each step, so green's real share lags its weight\n"
        );
    }
    let mut rows = vec![vec!["now".to_owned(), "-".to_owned(), s.original.show()]];
    if let Some(prepared) = &s.prepare {
        rows.push(vec![
            "add green".to_owned(),
            "0%".to_owned(),
            prepared.show(),
        ]);
    }
    for (i, step) in s.steps.iter().enumerate() {
        rows.push(vec![
            format!("step {}", i + 1),
            format!("{}%", step.percent),
            step.forward.show(),
        ]);
    }
    out += &indent(&table(&["", "green", "weights"], &rows));
    let g = &p.gates;
    let inconclusive = match g.on_inconclusive {
        OnInconclusive::Hold => format!("hold and measure again, at most {} times", g.max_holds),
        OnInconclusive::Pass => "pass".to_owned(),
        OnInconclusive::Fail => "fail".to_owned(),
    };
    let interval = Duration::from_millis(p.interval_ms);
    out += &format!(
        "  each step runs {} then its gate: at least {} healthy target(s) in green's group, at most {} % of its requests answered 5xx; fewer than {} requests: {inconclusive}\n  a failed gate puts back the weights of `now`; at least {} in all\n",
        duration::show(interval),
        g.min_healthy,
        g.max_5xx_ratio * 100.0,
        g.min_requests,
        duration::show(interval * u32::try_from(s.steps.len()).unwrap_or(u32::MAX)),
    );
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A shift's state for people and scripts.
#[derive(Debug, Serialize)]
pub struct ShiftView {
    /// `running`, `completed`, `rolled-back`, `stopped`.
    pub outcome: &'static str,
    /// Why it was rolled back or stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What baton last wrote.
    pub position: String,
    /// Green's percentage as baton last wrote it.
    pub percent: u32,
    /// The weights baton last wrote.
    pub weights: Forward,
    /// The weights before the shift.
    pub original: Forward,
    /// Every gate.
    pub gates: Vec<GateRecord>,
}

impl ShiftView {
    /// From a folded journal.
    pub fn of(s: &ShiftState) -> Self {
        let (outcome, reason) = match &s.outcome {
            None if s.rollback.is_some() => ("rolling-back", s.rollback.clone()),
            None => ("running", None),
            Some(Outcome::Completed) => ("completed", None),
            Some(Outcome::RolledBack(r)) => ("rolled-back", Some(r.clone())),
            Some(Outcome::Stopped(r)) => ("stopped", Some(r.clone())),
        };
        Self {
            outcome,
            reason,
            position: match s.position {
                Position::Original => "original".to_owned(),
                Position::Prepared => "green added at 0".to_owned(),
                Position::Step(i) => format!("step {}/{}", i + 1, s.plan.split.steps.len()),
            },
            percent: s.percent(),
            weights: s.on_alb.clone(),
            original: s.plan.split.original.clone(),
            gates: s.gates.clone(),
        }
    }
}

/// The end of a run.
pub fn summary(s: &ShiftState, output: Output) -> anyhow::Result<String> {
    let view = ShiftView::of(s);
    if output != Output::Table {
        return render(&view, output);
    }
    Ok(shift_table(&view))
}

fn shift_table(v: &ShiftView) -> String {
    let mut out = format!(
        "shift {}{}: {} (green {}%), weights {}\n",
        v.outcome,
        v.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        v.position,
        v.percent,
        v.weights.show()
    );
    if !v.gates.is_empty() {
        let rows: Vec<Vec<String>> = v
            .gates
            .iter()
            .map(|g| {
                let mut row = vec![format!("{}", g.step + 1), format!("{}%", g.percent)];
                row.extend(reading_cells(Some(&g.reading)));
                row.push(match &g.verdict {
                    Verdict::Pass => "pass".to_owned(),
                    Verdict::Hold(_) => "hold".to_owned(),
                    Verdict::Fail(_) => "FAIL".to_owned(),
                });
                row
            })
            .collect();
        out += &table(
            &[
                "step", "green", "healthy", "requests", "5xx", "window", "gate",
            ],
            &rows,
        );
    }
    out
}

fn reading_cells(r: Option<&Reading>) -> Vec<String> {
    match r {
        Some(r) => vec![
            format!("{}/{}", r.healthy, r.registered),
            format!("{}", r.requests),
            format!("{:.2} %", r.ratio() * 100.0),
            crate::commands::show::ms(i64::try_from(r.window_ms).unwrap_or(i64::MAX)),
        ],
        None => vec!["-".to_owned(); 4],
    }
}

/// One group of the action, for `status`.
#[derive(Debug, Serialize)]
pub struct GroupView {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its weight.
    pub weight: u32,
    /// Its share of the action's traffic, in percent.
    pub percent: f64,
    /// Health and requests over the window (none when the ARNs are not an ALB's).
    pub reading: Option<Reading>,
}

/// `baton traffic status`.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// The listener.
    pub listener: String,
    /// The rule, if one.
    pub rule: Option<String>,
    /// Its load balancer.
    pub load_balancer: String,
    /// How far back requests are summed.
    pub window_seconds: u64,
    /// Stickiness, when on.
    pub sticky_seconds: Option<i32>,
    /// The groups of the forward action.
    pub groups: Vec<GroupView>,
    /// The shift journaled in --state-dir.
    pub shift: Option<ShiftView>,
}

/// Renders `status`.
pub fn status(v: &StatusView, output: Output) -> anyhow::Result<String> {
    if output != Output::Table {
        return render(v, output);
    }
    let mut out = format!(
        "{}{}\n",
        short_arn(&v.listener),
        v.rule
            .as_ref()
            .map(|r| format!(" {}", short_arn(r)))
            .unwrap_or_default()
    );
    if let Some(secs) = v.sticky_seconds {
        out += &format!("stickiness on: {secs} s\n");
    }
    let rows: Vec<Vec<String>> = v
        .groups
        .iter()
        .map(|g| {
            let mut row = vec![
                g.name.clone(),
                g.weight.to_string(),
                format!("{:.1}%", g.percent),
            ];
            row.extend(reading_cells(g.reading.as_ref()));
            row
        })
        .collect();
    out += &table(
        &[
            "target group",
            "weight",
            "share",
            "healthy",
            "requests",
            "5xx",
            "window",
        ],
        &rows,
    );
    if let Some(shift) = &v.shift {
        out += &shift_table(shift);
    }
    Ok(out)
}
