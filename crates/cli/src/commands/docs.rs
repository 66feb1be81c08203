//! `baton completion SHELL` and `baton man`: shell completions and man pages generated from
//! the clap definitions in `crate::args`, so they cannot drift from `--help`.
//!
//! Both render into memory first (clap_complete's generators panic on a failed write) and
//! then print through [`crate::out`], so a closed pipe (`baton man | head -1`) ends baton
//! quietly rather than in a panic.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::args::{Cli, CompletionArgs, ManArgs};
use crate::exit::code;

/// The name completions and man pages are written for: the installed binary's, whatever
/// name this process was started by (`kubectl-baton` completes through kubectl's own).
const NAME: &str = "baton";

/// `baton completion SHELL`.
pub fn completion(a: &CompletionArgs) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), NAME, &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::from(code::OK))
}

/// `baton man [--dir DIR]`.
pub fn man(a: &ManArgs) -> anyhow::Result<ExitCode> {
    let mut root = Cli::command().name(NAME).disable_help_subcommand(true);
    root.build();
    match &a.dir {
        None => out!("{}", String::from_utf8_lossy(&render(&root)?)),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            for path in write_pages(&root, dir)? {
                errln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::from(code::OK))
}

/// One page: `.TH` header, name, synopsis, description, options, subcommands, the
/// after-help text (examples, exit codes), version.
fn render(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .context("failed to render the man page")?;
    Ok(page)
}

/// `cmd`'s page and, depth first, one per visible subcommand, named as man(1) finds them
/// (`baton-sim-up.1` for `man baton-sim-up`); returns the paths written.
fn write_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, render(cmd)?)
        .with_context(|| format!("failed to write {}", path.display()))?;
    let mut written = vec![path];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.extend(write_pages(sub, dir)?);
    }
    Ok(written)
}
