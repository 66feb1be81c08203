//! The summary the demo ends with, drawn from the same files `baton report` reads: the
//! migration and its length; per app the downtime window, and per volume its snapshot
//! and data fingerprints; green's subnets; the traffic steps; the findings, grouped; the
//! invariants.

use std::fmt::Write as _;
use std::path::Path;

use baton_core::journal::AppSummary;

use crate::commands::output;
use crate::commands::report::record::{self, DemoRecord, StepStatus, group};
use crate::commands::report::{Loaded, ms};
use crate::commands::show;

/// An app's window as `0.71 s`, from its journal summary.
pub fn window(s: &AppSummary) -> String {
    let at = |t: &Option<String>| t.as_deref().and_then(ms);
    match (at(&s.window_opened), at(&s.window_closed)) {
        (Some(a), Some(b)) => show::ms(b - a),
        // Nothing was stopped: a claim moving on its own.
        (None, None) => "none".into(),
        _ => "not closed".into(),
    }
}

/// Prints the summary of the run in `dir`.
pub fn print(dir: &Path, record: &DemoRecord) {
    out!("{}", render(dir, record, show::width()));
}

/// `text` with each line indented by `pad`.
fn indent(text: &str, pad: &str) -> String {
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

fn render(dir: &Path, record: &DemoRecord, width: Option<usize>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n══ summary ══\n");
    let loaded = Loaded::read(dir).ok();
    let apps = loaded.as_ref().map(Loaded::apps).unwrap_or_default();
    let snapshots = loaded.as_ref().map(Loaded::snapshots).unwrap_or_default();
    let took = match (ms(&record.started), record.ended.as_deref().and_then(ms)) {
        (Some(a), Some(b)) => format!(" in {}", show::ms(b - a)),
        _ => String::new(),
    };
    let _ = writeln!(
        o,
        "scenario {:?}, run{took}\n{}\n",
        record.scenario,
        match loaded.as_ref().and_then(Loaded::migration_id) {
            Some(id) => format!(
                "migration {id}: {}, {}, {} taken",
                show::plural(apps.len(), "app"),
                show::plural(record.volumes.len(), "volume"),
                show::plural(snapshots.len(), "EBS snapshot")
            ),
            None => "no migration ran".into(),
        }
    );
    if !apps.is_empty() {
        let mut rows = Vec::new();
        for a in &apps {
            let vols: Vec<_> = record.volumes.iter().filter(|v| v.app == a.app).collect();
            let window = a.downtime_ms().map_or("—".into(), show::ms);
            for (i, v) in vols.iter().enumerate() {
                let snapshot = snapshots
                    .iter()
                    .find(|s| s.volume_id == v.volume_id)
                    .map_or("—".into(), |s| s.snapshot_id.clone());
                let value = |f: Option<u64>| f.map_or("?".into(), |n| n.to_string());
                let after = v.after.as_ref().filter(|f| f.cluster() == "green");
                let (app, window) = if i == 0 {
                    (a.app.clone(), window.clone())
                } else {
                    (String::new(), String::new())
                };
                rows.push(vec![
                    app,
                    window,
                    v.volume_id.clone(),
                    snapshot,
                    value(v.before.as_ref().map(|f| f.value)),
                    value(after.map(|f| f.from)),
                    value(after.map(|f| f.value)),
                ]);
            }
            if vols.is_empty() {
                rows.push(vec![a.app.clone(), window, "—".into()]);
            }
        }
        let headers = [
            "app",
            "window",
            "volume",
            "snapshot",
            "blue at start",
            "green from",
            "green now",
        ];
        o += &indent(&output::table_aligned(&headers, &rows, &[1, 4, 5, 6]), "  ");
        let _ = writeln!(
            o,
            "  {}",
            show::wrap(record::FINGERPRINT_LEGEND, 2, "  ", width)
        );
        let owned: Vec<Vec<String>> = record
            .volumes
            .iter()
            .filter(|v| !v.owner_before.is_empty() || !v.owner_after.is_empty())
            .map(|v| {
                // One tag a line; after commit as the change from before (+ added or
                // changed, − removed), which is what the hand-over did.
                let before = if v.owner_before.is_empty() {
                    "(none)".to_string()
                } else {
                    v.owner_before.join("\n")
                };
                let key = |t: &String| t.split_once('=').map_or(t.clone(), |(k, _)| k.into());
                let mut change: Vec<String> = v
                    .owner_after
                    .iter()
                    .filter(|t| !v.owner_before.contains(t))
                    .map(|t| format!("+{t}"))
                    .collect();
                change.extend(
                    v.owner_before
                        .iter()
                        .filter(|t| !v.owner_after.iter().any(|a| key(a) == key(t)))
                        .map(|t| format!("−{}", key(t))),
                );
                let after = if change.is_empty() {
                    "(unchanged)".to_string()
                } else {
                    change.join("\n")
                };
                vec![v.volume_id.clone(), before, after]
            })
            .collect();
        if !owned.is_empty() {
            let _ = writeln!(
                o,
                "\nvolumes' ownership tags (what each cluster's EBS CSI driver policy reads):"
            );
            o += &indent(
                &output::table(&["volume", "before the move", "after commit"], &owned),
                "  ",
            );
        }
    }
    let subnets = loaded.as_ref().map(Loaded::subnets).unwrap_or_default();
    if !subnets.is_empty() {
        let _ = writeln!(o, "\ngreen's subnets (network apply):");
        let rows: Vec<Vec<String>> = subnets
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.cidr.clone(),
                    s.az.clone(),
                    s.role.clone(),
                    s.result.to_string(),
                ]
            })
            .collect();
        o += &indent(
            &output::table(&["subnet", "range", "zone", "for", "result"], &rows),
            "  ",
        );
    }
    let gates = loaded.as_ref().map(Loaded::gates).unwrap_or_default();
    if !gates.is_empty() {
        let _ = writeln!(o, "\ntraffic steps (green's share, then its gate):");
        let rows: Vec<Vec<String>> = gates
            .iter()
            .map(|g| {
                vec![
                    format!("{} %", g.percent),
                    format!("{}/{}", g.reading.healthy, g.reading.registered),
                    g.reading.requests.to_string(),
                    format!("{:.2} %", g.reading.ratio() * 100.0),
                    match &g.verdict {
                        baton_core::traffic::gate::Verdict::Pass => "pass".into(),
                        baton_core::traffic::gate::Verdict::Hold(r) => format!("hold: {r}"),
                        baton_core::traffic::gate::Verdict::Fail(r) => format!("FAIL: {r}"),
                    },
                ]
            })
            .collect();
        o += &indent(
            &output::table_aligned(
                &["green", "healthy", "requests", "5xx", "gate"],
                &rows,
                &[0, 2, 3],
            ),
            "  ",
        );
    }
    let groups = group(&record.findings);
    let _ = writeln!(
        o,
        "\nfindings ({}):",
        if record.findings.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} of {}",
                show::plural(record.findings.len(), "finding"),
                show::plural(groups.len(), "kind")
            )
        }
    );
    o += &record::text(&groups, true, width);
    let skipped: Vec<_> = record
        .steps
        .iter()
        .filter(|s| s.status != StepStatus::Done)
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(o, "\nsteps not done:");
        for s in skipped {
            let _ = writeln!(o, "  {} ({:?}): {}", s.name, s.status, s.summary);
        }
    }
    let _ = writeln!(o, "\ninvariants:");
    if record.invariants.is_empty() {
        let _ = writeln!(o, "  not checked (the run stopped before the final check)");
    }
    for i in &record.invariants {
        let _ = writeln!(
            o,
            "  {} {}: {}",
            if i.held { "✓" } else { "✗" },
            i.name,
            i.detail
        );
    }
    o
}
