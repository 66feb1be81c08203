//! What every command prints: tables for people, JSON or YAML for scripts, and the
//! question a changing command asks on a terminal.

use std::io::IsTerminal;

use anyhow::Context;
use serde::Serialize;

use crate::args::Output;
use crate::exit::{Expected, Refused};

/// Prints a plan as `output` asks (`table` is its table form) and, with `out`, writes it
/// there as YAML when `-o yaml` was asked and as JSON otherwise (a file a later command
/// reads back).
pub fn emit_plan<T: Serialize>(
    plan: &T,
    table: String,
    output: Output,
    out: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Result<()> {
    match output {
        Output::Table => print!("{table}"),
        o => print!("{}", render(plan, o)?),
    }
    if let Some(out) = out {
        let text = match output {
            Output::Yaml => render(plan, Output::Yaml)?,
            _ => render(plan, Output::Json)?,
        };
        std::fs::write(out, text).with_context(|| format!("failed to write {}", out.display()))?;
        eprintln!("{what} written to {}", out.display());
    }
    Ok(())
}

pub fn render<T: Serialize>(value: &T, output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Yaml => serde_saphyr::to_string(value).context("failed to render YAML")?,
        _ => serde_json::to_string_pretty(value)? + "\n",
    })
}

/// A table of left-aligned columns two spaces apart, headers first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}

/// Asks `question` on a terminal; without one, `--yes` is required: its absence is a
/// usage error (exit 2: the command line lacks what the command needs), and an answer
/// other than yes a refusal (exit 3, nothing changed).
pub fn confirm(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Expected::usage(format!(
            "{question} — not confirmed: pass --yes to run without a terminal"
        ))
        .into());
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return Err(Refused(format!("{question} — cancelled at the prompt")).into());
    }
    Ok(())
}
