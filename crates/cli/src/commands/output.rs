//! What every command prints: tables for people, JSON or YAML for scripts, and the
//! question a changing command asks on a terminal.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use serde::Serialize;

use crate::args::Output;
use crate::exit::{Expected, Refused, StdoutClosed};

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

/// Writes `text` to stdout, reporting a reader that closed the pipe (`| head -1`) as
/// [`StdoutClosed`], which ends baton quietly with 0, and any other failure as an error
/// (where `print!` would panic).
pub fn print(text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_ref()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => r.context("failed to write to stdout"),
    }
}

pub fn render<T: Serialize>(value: &T, output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Yaml => serde_saphyr::to_string(value).context("failed to render YAML")?,
        _ => serde_json::to_string_pretty(value)? + "\n",
    })
}

/// A table of left-aligned columns two spaces apart, headers first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    table_aligned(headers, rows, &[])
}

/// [`table`] with the columns numbered in `right` aligned right (numbers, durations).
pub fn table_aligned(headers: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_header(headers.to_vec())
        .add_rows(rows.iter().cloned());
    // No borders: columns two spaces apart, nothing before the first or after the last.
    let last = t.column_iter_mut().count().saturating_sub(1);
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((u16::from(i > 0), u16::from(i < last)));
        if right.contains(&i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    t.trim_fmt() + "\n"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_plain_columns_two_spaces_apart_without_trailing_spaces() {
        let rows = vec![
            vec!["blue".to_string(), "1".into(), "ok".into()],
            vec![String::new(), "1200".into(), String::new()],
        ];
        assert_eq!(
            table(&["CLUSTER", "N", "STATE"], &rows),
            "CLUSTER  N     STATE\nblue     1     ok\n         1200\n"
        );
        assert_eq!(
            table_aligned(&["CLUSTER", "N", "STATE"], &rows, &[1]),
            "CLUSTER     N  STATE\nblue        1  ok\n         1200\n"
        );
    }
}
