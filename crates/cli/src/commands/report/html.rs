//! The report page: plain string building, every text escaped, styles and charts (SVG)
//! inline, so the file opens anywhere with no network. One inline script only counts
//! the chart bars the browser laid out (`data-drawn-bars` on `<body>`), so a headless
//! browser test can tell the charts rendered, not just parsed.

use std::fmt::Write as _;

use super::load::{AppTimeline, Loaded, RatioPoint, TrafficPoint, ms};
use super::record::{FINGERPRINT_LEGEND, StepStatus, group};
use crate::commands::show;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#1d2330;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #dde;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e4e6ee;vertical-align:top}
th{background:#f3f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}.skip{color:#8a6d00;font-weight:600}
.muted{color:#667}.legend span{display:inline-block;margin-right:1.2em}.sw{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
svg text{font:11px system-ui,sans-serif;fill:#333}
.prepare{fill:#9bb7e0}.window{fill:#d9534f}.after{fill:#7fbf7f}
.weight{fill:none;stroke:#2b6cb0;stroke-width:2}.ratio{fill:none;stroke:#d9534f;stroke-width:1.5}.limit{stroke:#d9534f;stroke-dasharray:4 3}
.grid{stroke:#e4e6ee}code{background:#f3f4f8;padding:0 .25em;border-radius:3px}
code.cmd{display:block;margin-top:.3em;font-size:12px;overflow-wrap:anywhere;white-space:pre-wrap}
.obj{display:block;max-width:24em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font:12px ui-monospace,monospace}
td.mono{font:12px ui-monospace,monospace;white-space:nowrap}td.num{white-space:nowrap}
svg text.axis{font-weight:600}svg text.red{fill:#b3261e}
";

const COUNT_BARS: &str = "<script>(function(){var n=0;document.querySelectorAll('svg .bar').forEach(function(b){var r=b.getBBox();if(r.width>0&&r.height>0)n++;});document.body.setAttribute('data-drawn-bars',String(n));})();</script>";

/// The whole page.
pub fn page(l: &Loaded) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>baton report</title><style>{STYLE}</style></head><body>"
    );
    header(&mut h, l);
    steps(&mut h, l);
    subnets(&mut h, l);
    let apps = l.apps();
    timeline(&mut h, &apps);
    downtime(&mut h, l, &apps);
    traffic(&mut h, l);
    findings(&mut h, l);
    invariants(&mut h, l);
    let _ = write!(
        h,
        "<p class=\"muted\">Drawn by <code>baton report</code> from {}.</p>{COUNT_BARS}</body></html>",
        esc(&l.dir.display().to_string())
    );
    h
}

fn header(h: &mut String, l: &Loaded) {
    h.push_str("<h1>baton: blue → green</h1>");
    if let Some(d) = &l.demo {
        let held = !d.invariants.is_empty() && d.invariants.iter().all(|i| i.held);
        let failed = d.steps.iter().any(|s| s.status == StepStatus::Failed);
        let verdict = if held && !failed {
            "<span class=\"ok\" id=\"verdict\">passed: every invariant held</span>"
        } else {
            "<span class=\"bad\" id=\"verdict\">failed</span>"
        };
        let took = match (ms(&d.started), d.ended.as_deref().and_then(ms)) {
            (Some(a), Some(b)) => format!(" (<span id=\"took\">{}</span>)", show::ms(b - a)),
            _ => String::new(),
        };
        let _ = write!(
            h,
            "<p>Demo on scenario <code>{}</code>, started {}{}{took}: {verdict}</p>",
            esc(&d.scenario),
            esc(&show::when(&d.started)),
            d.ended
                .as_deref()
                .map(|e| format!(", ended {}", esc(&show::when(e))))
                .unwrap_or_default()
        );
    } else {
        let _ = write!(
            h,
            "<p>State dir <code>{}</code>.</p>",
            esc(&l.dir.display().to_string())
        );
    }
    if let Some(id) = l.migration_id() {
        let _ = write!(
            h,
            "<p>Migration <code id=\"migration\">{}</code>: {}, {} taken.</p>",
            esc(&id),
            show::plural(l.apps().len(), "app"),
            show::plural(l.snapshots().len(), "EBS snapshot")
        );
    }
}

fn steps(h: &mut String, l: &Loaded) {
    let Some(d) = &l.demo else { return };
    h.push_str("<h2>Steps</h2><table id=\"steps\"><tr><th>#</th><th>step</th><th>result</th><th class=\"num\">took</th><th>what happened, and the command that ran</th></tr>");
    for (i, s) in d.steps.iter().enumerate() {
        let (class, word) = match s.status {
            StepStatus::Done => ("ok", "done"),
            StepStatus::Skipped => ("skip", "skipped"),
            StepStatus::Failed => ("bad", "failed"),
        };
        let secs = match (ms(&s.started), ms(&s.ended)) {
            (Some(a), Some(b)) => show::ms(b - a),
            _ => String::new(),
        };
        let commands: String = s
            .commands
            .iter()
            .map(|c| format!("<code class=\"cmd\">$ {}</code>", esc(c)))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td><td class=\"num\">{secs}</td><td>{}{commands}</td></tr>",
            i + 1,
            esc(&s.name),
            esc(&s.summary)
        );
    }
    h.push_str("</table>");
}

/// A percentage with at most two decimals and no trailing zeros: `1`, `0.5`, `2.25`.
fn pct(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Horizontal scale from ms to x in `[x0, x0 + width]`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    t0: i64,
    t1: i64,
    x0: f64,
    width: f64,
}

impl Scale {
    fn new(t0: i64, t1: i64, x0: f64, width: f64) -> Self {
        Self {
            t0,
            t1: t1.max(t0 + 1),
            x0,
            width,
        }
    }

    fn x(&self, t: i64) -> f64 {
        self.x0 + (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * self.width
    }

    /// Tick marks every "round" number of seconds, about eight over the span.
    fn ticks(&self, h: &mut String, top: f64, bottom: f64) {
        let span = (self.t1 - self.t0) as f64 / 1000.0;
        let step = [
            0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
        ]
        .into_iter()
        .find(|s| span / s <= 10.0)
        .unwrap_or(1200.0);
        let mut s = 0.0;
        while s <= span + 1e-9 {
            let x = self.x(self.t0 + (s * 1000.0) as i64);
            let _ = write!(
                h,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{s} s</text>",
                bottom + 14.0
            );
            s += step;
        }
    }
}

fn timeline(h: &mut String, apps: &[AppTimeline]) {
    if apps.is_empty() {
        return;
    }
    h.push_str("<h2>Timeline per app</h2><p class=\"legend\"><span><i class=\"sw prepare\" style=\"background:#9bb7e0\"></i>prepare (no downtime)</span><span><i class=\"sw\" style=\"background:#d9534f\"></i>window (downtime)</span><span><i class=\"sw\" style=\"background:#7fbf7f\"></i>after (green serves; commit)</span></p>");
    let t0 = apps.iter().map(|a| a.start).min().unwrap_or(0);
    let t1 = apps.iter().map(|a| a.end).max().unwrap_or(t0);
    let (label, width, row) = (200.0, 740.0, 30.0);
    let scale = Scale::new(t0, t1, label, width);
    let height = apps.len() as f64 * row + 30.0;
    let _ = write!(
        h,
        "<svg id=\"timeline\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" role=\"img\" aria-label=\"timeline per app\">",
        label + width + 20.0,
        label + width + 20.0
    );
    scale.ticks(h, 0.0, height - 24.0);
    for (i, a) in apps.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + 15.0,
            esc(&a.app)
        );
        let mut bar = |class: &str, from: i64, to: i64, what: &str| {
            let (x1, x2) = (scale.x(from), scale.x(to));
            // At least 2 px, so a sub-second window still shows at a minutes-long scale.
            let w = (x2 - x1).max(2.0);
            let _ = write!(
                h,
                "<rect class=\"bar {class}\" data-app=\"{}\" x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"20\"><title>{}: {what} {:.2} s</title></rect>",
                esc(&a.app),
                esc(&a.app),
                (to - from) as f64 / 1000.0
            );
        };
        let open = a.window_open.unwrap_or(a.end);
        bar("prepare", a.start, open, "prepare");
        if let (Some(o), Some(c)) = (a.window_open, a.window_close) {
            bar("window", o, c, "window");
            bar("after", c, a.end.max(c), "after");
        }
    }
    h.push_str("</svg>");
}

fn subnets(h: &mut String, l: &Loaded) {
    let subnets = l.subnets();
    if subnets.is_empty() {
        return;
    }
    h.push_str("<h2>Network: green's subnets</h2><table id=\"subnets\"><tr><th>subnet</th><th>range</th><th>zone</th><th>for</th><th>result</th></tr>");
    for s in &subnets {
        let _ = write!(
            h,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.id),
            esc(&s.cidr),
            esc(&s.az),
            esc(&s.role),
            s.result
        );
    }
    h.push_str("</table>");
}

fn downtime(h: &mut String, l: &Loaded, apps: &[AppTimeline]) {
    if apps.is_empty() {
        return;
    }
    let snapshots = l.snapshots();
    h.push_str("<h2>Downtime, snapshots and data per app</h2><table id=\"downtime\"><tr><th>app</th><th class=\"num\">window</th><th>phase</th><th>volume</th><th>EBS snapshot</th><th class=\"num\">blue at start</th><th class=\"num\">green from</th><th class=\"num\">green now</th></tr>");
    for a in apps {
        let volumes: Vec<_> = l
            .demo
            .iter()
            .flat_map(|d| &d.volumes)
            .filter(|v| v.app == a.app)
            .collect();
        // Without a demo's record (a migration's own state dir), the journal's snapshots
        // still name the volumes.
        let rows: Vec<(String, Option<&super::record::VolumeRecord>)> = if volumes.is_empty() {
            snapshots
                .iter()
                .filter(|s| s.app == a.app)
                .map(|s| (s.volume_id.clone(), None))
                .collect()
        } else {
            volumes
                .iter()
                .map(|v| (v.volume_id.clone(), Some(*v)))
                .collect()
        };
        let span = rows.len().max(1);
        let _ = write!(
            h,
            "<tr><td rowspan=\"{span}\">{}</td><td class=\"num\" rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{}</td>",
            esc(&a.app),
            a.downtime_ms().map_or("—".into(), show::ms),
            a.phase
                .map_or("—".into(), |p| esc(&format!("{p:?}").to_lowercase())),
        );
        if rows.is_empty() {
            h.push_str("<td>—</td><td></td><td></td><td></td><td></td></tr>");
        }
        for (i, (volume, v)) in rows.iter().enumerate() {
            if i > 0 {
                h.push_str("<tr>");
            }
            let snapshot = snapshots
                .iter()
                .find(|s| &s.volume_id == volume)
                .map_or("—".into(), |s| s.snapshot_id.clone());
            let value = |f: Option<u64>| f.map_or("?".into(), |n| n.to_string());
            let after = v
                .and_then(|v| v.after.as_ref())
                .filter(|f| f.cluster() == "green");
            let _ = write!(
                h,
                "<td class=\"mono\">{}</td><td class=\"mono snapshot\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(volume),
                esc(&snapshot),
                value(v.and_then(|v| v.before.as_ref()).map(|f| f.value)),
                value(after.map(|f| f.from)),
                value(after.map(|f| f.value)),
            );
        }
    }
    let _ = write!(
        h,
        "</table><p class=\"muted\">{}</p>",
        esc(FINGERPRINT_LEGEND)
    );
}

fn traffic(h: &mut String, l: &Loaded) {
    let weights = l.weights();
    if weights.is_empty() {
        return;
    }
    let ratios = l.ratios();
    h.push_str("<h2>Traffic: green's weight and 5xx ratio</h2><p class=\"legend\"><span><i class=\"sw\" style=\"background:#2b6cb0\"></i>green's share of traffic (%)</span><span><i class=\"sw\" style=\"background:#d9534f\"></i>green's 5xx ratio at each gate, right axis (dashed: the gate's maximum)</span></p>");
    traffic_chart(
        h,
        &weights,
        &ratios,
        l.traffic.last().and_then(|r| ms(&r.at)),
    );
    h.push_str("<table id=\"gates\"><tr><th>step</th><th class=\"num\">green</th><th>healthy</th><th class=\"num\">requests</th><th class=\"num\">5xx</th><th>verdict</th></tr>");
    for g in l.gates() {
        let (class, verdict) = match &g.verdict {
            baton_core::traffic::gate::Verdict::Pass => ("ok", "pass".to_string()),
            baton_core::traffic::gate::Verdict::Hold(r) => ("skip", format!("hold: {r}")),
            baton_core::traffic::gate::Verdict::Fail(r) => ("bad", format!("fail: {r}")),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{} %</td><td>{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2} %</td><td class=\"{class}\">{}</td></tr>",
            g.step + 1,
            g.percent,
            g.reading.healthy,
            g.reading.registered,
            g.reading.requests,
            g.reading.ratio() * 100.0,
            esc(&verdict)
        );
    }
    h.push_str("</table>");
    if let Some(s) = l.shift() {
        let _ = write!(
            h,
            "<p>Outcome: <strong>{}</strong></p>",
            esc(&s
                .outcome
                .map_or("not ended".to_string(), |o| format!("{o:?}")))
        );
    }
}

fn traffic_chart(
    h: &mut String,
    weights: &[TrafficPoint],
    ratios: &[RatioPoint],
    last: Option<i64>,
) {
    let t0 = weights.first().map_or(0, |p| p.at);
    let t1 = weights
        .iter()
        .map(|p| p.at)
        .chain(ratios.iter().map(|r| r.at))
        .chain(last)
        .max()
        .unwrap_or(t0);
    let (left, width, top, plot) = (70.0, 780.0, 10.0, 200.0);
    let scale = Scale::new(t0, t1, left, width);
    let bottom = top + plot;
    let (w, ht) = (left + width + 70.0, bottom + 46.0);
    let _ = write!(
        h,
        "<svg id=\"traffic\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"green's weight and 5xx ratio over time\">",
    );
    scale.ticks(h, top, bottom);
    let mid = top + plot / 2.0;
    let _ = write!(
        h,
        "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time since the shift began (s)</text><text class=\"axis\" id=\"weight-axis\" transform=\"translate(16,{mid:.1}) rotate(-90)\" text-anchor=\"middle\">green's share of traffic (%)</text>",
        left + width / 2.0,
        bottom + 34.0
    );
    for pct in [0, 25, 50, 75, 100] {
        let y = bottom - f64::from(pct) / 100.0 * plot;
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{pct} %</text>",
            left + width,
            left - 4.0,
            y + 4.0
        );
    }
    // Green's weight: a step line, held until the next write (and to the end).
    let mut d = String::new();
    let mut y_prev = bottom;
    for (i, p) in weights.iter().enumerate() {
        let x = scale.x(p.at);
        let y = bottom - f64::from(p.percent) / 100.0 * plot;
        if i == 0 {
            let _ = write!(d, "M{x:.1},{y:.1}");
        } else {
            let _ = write!(d, " L{x:.1},{y_prev:.1} L{x:.1},{y:.1}");
        }
        y_prev = y;
    }
    let _ = write!(d, " L{:.1},{y_prev:.1}", scale.x(t1));
    let _ = write!(h, "<path class=\"bar weight\" d=\"{d}\"/>");
    // 5xx ratio on its own axis (right): up to twice the limit, or the worst reading.
    let limit = ratios.first().map_or(0.01, |r| r.limit);
    let top_ratio = ratios
        .iter()
        .map(|r| r.ratio)
        .fold(limit * 2.0, f64::max)
        .max(1e-6);
    let ry = |r: f64| bottom - r / top_ratio * plot;
    let right = left + width;
    let _ = write!(
        h,
        "<line x1=\"{right}\" y1=\"{top}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#d9534f\"/><text class=\"axis red\" id=\"ratio-axis\" transform=\"translate({:.1},{mid:.1}) rotate(90)\" text-anchor=\"middle\">green 5xx ratio (%)</text>",
        right + 50.0
    );
    for r in [0.0, limit, top_ratio] {
        let _ = write!(
            h,
            "<line x1=\"{right}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#d9534f\"/><text class=\"red\" x=\"{:.1}\" y=\"{:.1}\">{} %</text>",
            right + 4.0,
            right + 7.0,
            ry(r) + 4.0,
            pct(r * 100.0),
            y = ry(r)
        );
    }
    let _ = write!(
        h,
        "<line class=\"limit\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\"/><text class=\"red\" id=\"gate-max\" x=\"{:.1}\" y=\"{:.1}\">gate max {} % 5xx</text>",
        left + 6.0,
        ry(limit) - 4.0,
        pct(limit * 100.0),
        y = ry(limit)
    );
    if !ratios.is_empty() {
        let points: Vec<String> = ratios
            .iter()
            .map(|r| format!("{:.1},{:.1}", scale.x(r.at), ry(r.ratio)))
            .collect();
        let _ = write!(
            h,
            "<polyline class=\"ratio\" points=\"{}\"/>",
            points.join(" ")
        );
        for r in ratios {
            let _ = write!(
                h,
                "<circle class=\"bar\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#d9534f\"><title>green 5xx ratio {:.2} % (gate max {} %)</title></circle>",
                scale.x(r.at),
                ry(r.ratio),
                r.ratio * 100.0,
                pct(r.limit * 100.0)
            );
        }
    }
    h.push_str("</svg>");
}

fn findings(h: &mut String, l: &Loaded) {
    let findings = l.findings();
    if let Some(p) = &l.preflight {
        let _ = write!(
            h,
            "<h2>Preflight</h2><p id=\"preflight\">Result: <strong>{}</strong> ({} → {}, {} findings, {} unchecked)</p>",
            esc(&format!("{:?}", p.outcome).to_lowercase()),
            esc(&p.from_version),
            esc(&p.to_version),
            p.findings.len(),
            p.unchecked.len()
        );
        if !p.unchecked.is_empty() {
            h.push_str("<ul>");
            for u in &p.unchecked {
                let _ = write!(
                    h,
                    "<li class=\"bad\">{}: {}</li>",
                    esc(&u.check),
                    esc(&u.reason)
                );
            }
            h.push_str("</ul>");
        }
    }
    h.push_str("<h2>Findings</h2>");
    if findings.is_empty() {
        h.push_str("<p id=\"findings\">None.</p>");
        return;
    }
    // Findings that say the same are one row, ×N, with their objects (full names on
    // hover), as the demo's summary groups them.
    let groups = group(&findings);
    let _ = write!(
        h,
        "<p class=\"muted\">{} of {}.</p>",
        show::plural(findings.len(), "finding"),
        show::plural(groups.len(), "kind")
    );
    h.push_str("<table id=\"findings\"><tr><th>step</th><th>severity</th><th class=\"num\">count</th><th>finding</th><th>objects</th></tr>");
    for g in &groups {
        let class = match g.severity {
            "fail" | "blocking" | "BLOCKING" | "error" => "bad",
            "warn" | "warning" => "skip",
            _ => "muted",
        };
        let objects: String = g
            .objects
            .iter()
            .map(|o| format!("<span class=\"obj\" title=\"{}\">{}</span>", esc(o), esc(o)))
            .collect();
        let _ = write!(
            h,
            "<tr class=\"finding\"><td>{}</td><td class=\"{class}\">{}</td><td class=\"num count\">×{}</td><td>{}{}</td><td>{objects}</td></tr>",
            esc(g.step),
            esc(g.severity),
            g.objects.len(),
            esc(g.message),
            g.fix
                .map(|f| format!("<br><span class=\"muted\">fix: {}</span>", esc(f)))
                .unwrap_or_default()
        );
    }
    h.push_str("</table>");
}

fn invariants(h: &mut String, l: &Loaded) {
    let Some(d) = &l.demo else { return };
    if d.invariants.is_empty() {
        return;
    }
    h.push_str("<h2>Invariants</h2><table id=\"invariants\"><tr><th></th><th>invariant</th><th>seen</th></tr>");
    for i in &d.invariants {
        let _ = write!(
            h,
            "<tr><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            if i.held { "ok" } else { "bad" },
            if i.held { "held" } else { "BROKEN" },
            esc(&i.name),
            esc(&i.detail)
        );
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_time_scale_maps_the_span_onto_the_width() {
        let s = Scale::new(1_000, 11_000, 100.0, 500.0);
        assert!((s.x(1_000) - 100.0).abs() < 1e-9);
        assert!((s.x(6_000) - 350.0).abs() < 1e-9);
        assert!((s.x(11_000) - 600.0).abs() < 1e-9);
        // An empty span does not divide by zero.
        assert!(Scale::new(5, 5, 0.0, 10.0).x(5).is_finite());
    }
}
