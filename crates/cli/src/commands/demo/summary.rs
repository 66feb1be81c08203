//! The table the demo ends with, drawn from the same files `baton report` reads: per app
//! the downtime window, volumes and data fingerprints; the traffic steps; the findings;
//! the invariants.

use std::fmt::Write as _;
use std::path::Path;

use baton_core::journal::AppSummary;

use crate::commands::output;
use crate::commands::report::Loaded;
use crate::commands::report::record::{DemoRecord, StepStatus};

/// An app's window as `0.71 s`, from its journal summary.
pub fn window(s: &AppSummary) -> String {
    let ms = |t: &Option<String>| t.as_deref().and_then(crate::commands::report::ms);
    match (ms(&s.window_opened), ms(&s.window_closed)) {
        (Some(a), Some(b)) => format!("{:.2} s", (b - a) as f64 / 1000.0),
        _ => "not closed".into(),
    }
}

/// Prints the summary of the run in `dir`.
pub fn print(dir: &Path, record: &DemoRecord) {
    out!("{}", render(dir, record));
}

fn render(dir: &Path, record: &DemoRecord) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n══ summary ══");
    let loaded = Loaded::read(dir).ok();
    let apps = loaded.as_ref().map(Loaded::apps).unwrap_or_default();
    if !apps.is_empty() {
        let mut rows = Vec::new();
        for a in &apps {
            let vols: Vec<_> = record.volumes.iter().filter(|v| v.app == a.app).collect();
            let window = a
                .downtime_ms()
                .map_or("—".into(), |d| format!("{:.2} s", d as f64 / 1000.0));
            for (i, v) in vols.iter().enumerate() {
                let (before, after) = v.fingerprints();
                let fingerprint = format!("{}: {before} → {after}", v.volume_id);
                rows.push(if i == 0 {
                    vec![
                        a.app.clone(),
                        window.clone(),
                        vols.len().to_string(),
                        fingerprint,
                    ]
                } else {
                    vec![String::new(), String::new(), String::new(), fingerprint]
                });
            }
            if vols.is_empty() {
                rows.push(vec![a.app.clone(), window, "—".into(), String::new()]);
            }
        }
        let headers = [
            "app",
            "window",
            "volumes",
            "data fingerprint: blue before → green from … now",
        ];
        let _ = write!(o, "\n{}", output::table_aligned(&headers, &rows, &[1, 2]));
    }
    let gates = loaded.as_ref().map(Loaded::gates).unwrap_or_default();
    if !gates.is_empty() {
        let _ = writeln!(o, "\ntraffic steps (green's share, its gate):");
        for g in &gates {
            let _ = writeln!(
                o,
                "  {:>3} %  {}  {:?}",
                g.percent,
                g.reading.show(),
                g.verdict
            );
        }
    }
    let _ = writeln!(o, "\nfindings:");
    if record.findings.is_empty() {
        let _ = writeln!(o, "  none");
    }
    // One line per kind of finding, with the objects it concerns (the report lists each).
    let mut kinds: Vec<(&str, &str, &str, Vec<&str>)> = Vec::new();
    for f in &record.findings {
        match kinds
            .iter_mut()
            .find(|k| (k.0, k.1, k.2) == (f.step.as_str(), f.severity.as_str(), f.message.as_str()))
        {
            Some(k) => k.3.push(&f.object),
            None => kinds.push((&f.step, &f.severity, &f.message, vec![&f.object])),
        }
    }
    for (step, severity, message, objects) in kinds {
        let more = match objects.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let _ = writeln!(
            o,
            "  [{step}] {severity} ×{}: {}{more}: {message}",
            objects.len(),
            objects[0]
        );
    }
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
