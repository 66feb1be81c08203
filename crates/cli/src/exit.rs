//! The one place errors become exit codes and messages (documented in README.md).

use std::process::ExitCode;

/// Exit codes baton uses.
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// The command failed (the message says why).
    pub const FAILED: u8 = 1;
    /// The command line was wrong (clap's usage error).
    pub const USAGE: u8 = 2;
    /// Nothing was changed: a problem blocks the move (the plan names it and the fix).
    pub const BLOCKED: u8 = 3;
    /// The capability asked for is not built yet (no command returns it today; kept so
    /// the documented code keeps its meaning for the next one that needs it).
    #[allow(
        dead_code,
        reason = "documented exit code, unused while every command is built"
    )]
    pub const NOT_BUILT: u8 = 4;
    /// A traffic shift's gate failed and the weights from before the shift are back.
    pub const ROLLED_BACK: u8 = 5;
}

/// A command refused its input before changing anything (a stale or impossible plan, an
/// unknown VPC or zone): exits [`code::BLOCKED`]. The message reads after "failed to …"
/// and names the object and the fix.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Prints an error chain the way users read it and returns its code: a usage error found
/// after parsing prints as clap's own and exits [`code::USAGE`], a [`Refused`] input
/// [`code::BLOCKED`], anything else [`code::FAILED`].
pub fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(usage) = e.downcast_ref::<clap::Error>() {
        let _ = usage.print();
        return ExitCode::from(code::USAGE);
    }
    if let Some(refused) = e.downcast_ref::<Refused>() {
        eprintln!("refused: {refused}\nnothing was changed");
        return ExitCode::from(code::BLOCKED);
    }
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::from(code::FAILED)
}

/// Logs go to stderr; `-v` raises the level, `RUST_LOG` overrides. `quiet_emulator`
/// (the demo, which runs the emulator in-process) keeps the emulator's own warnings out
/// of the story unless `-v` is given.
pub fn init_tracing(verbose: u8, quiet_emulator: bool) {
    let level = match verbose {
        0 if quiet_emulator => "warn,baton_sim=error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
