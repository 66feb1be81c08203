//! `kubectl-baton`: kubectl runs an executable named `kubectl-NAME` on the PATH for
//! `kubectl NAME …`, so `cargo install` puts this beside `baton` and `kubectl baton …`
//! works. It replaces itself with the `baton` in its own directory (or, failing that, the
//! first `baton` on the PATH), with the same arguments and argv[0] `kubectl-baton`, so
//! baton's help and usage lines read `kubectl baton …` and its exit code is kubectl's.
//!
//! Std only and none of baton's modules: it costs nothing to build. (krew needs none of
//! this: it links `kubectl-baton` to the `baton` binary itself, and baton reads the name
//! from argv[0] the same way.)

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const BATON: &str = if cfg!(windows) { "baton.exe" } else { "baton" };

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "kubectl-baton".into());
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BATON)));
    let Some(baton) = beside
        .clone()
        .filter(|p| p.is_file())
        .or_else(|| on_path(&beside))
    else {
        let beside = beside.map_or_else(
            || "(the directory of kubectl-baton is unknown)".to_string(),
            |p| p.display().to_string(),
        );
        eprintln!(
            "kubectl-baton: cannot find the baton binary it runs: not at {beside}, and no \
             {BATON} in any directory of $PATH.\n\
             Install both with `cargo install --path crates/cli --locked` in a checkout of \
             baton (they go to ~/.cargo/bin, which must be on $PATH)."
        );
        return ExitCode::from(1);
    };
    let mut cmd = Command::new(&baton);
    cmd.args(args);
    run(cmd, argv0, &baton)
}

/// The first `baton` in a directory of $PATH other than the one already tried.
fn on_path(tried: &Option<PathBuf>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(BATON))
        .find(|p| p.is_file() && Some(p) != tried.as_ref())
}

#[cfg(unix)]
fn run(mut cmd: Command, argv0: OsString, baton: &Path) -> ExitCode {
    use std::os::unix::process::CommandExt;
    // Only returns if the exec failed.
    let err = cmd.arg0(argv0).exec();
    eprintln!("kubectl-baton: failed to run {}: {err}", baton.display());
    ExitCode::from(1)
}

/// Without exec: baton as a child, its exit code passed on (help reads `baton …`).
#[cfg(not(unix))]
fn run(mut cmd: Command, _argv0: OsString, baton: &Path) -> ExitCode {
    match cmd.status() {
        Ok(status) => status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .map_or(ExitCode::FAILURE, ExitCode::from),
        Err(err) => {
            eprintln!("kubectl-baton: failed to run {}: {err}", baton.display());
            ExitCode::from(1)
        }
    }
}
