//! `baton report`: one self-contained HTML page from a state dir's files — a demo's
//! (`demo.json`, `migration/`, `traffic/`, `preflight.json`) or a single command's
//! (`journal.jsonl` of a migration, `traffic.jsonl` of a shift). Nothing is fetched from
//! anywhere: styles and charts (SVG) are inline.

mod html;
mod load;
pub mod record;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

pub use self::load::{Loaded, ms};
use crate::args::ReportArgs;
use crate::exit::code;

pub async fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.state_dir.join("report.html"));
    let loaded = write(&a.state_dir, &out)?;
    outln!(
        "report written to {} ({} apps, {} traffic gates, {} findings)",
        out.display(),
        loaded.apps().len(),
        loaded.gates().len(),
        loaded.findings().len()
    );
    Ok(ExitCode::from(code::OK))
}

/// Reads `dir` and writes its report to `out`; returns what was read.
pub fn write(dir: &Path, out: &Path) -> anyhow::Result<Loaded> {
    let loaded = Loaded::read(dir)?;
    let page = html::page(&loaded);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::write(out, page).with_context(|| format!("failed to write {}", out.display()))?;
    Ok(loaded)
}

/// The first of `names` that exists under `dir`.
fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.exists())
}
