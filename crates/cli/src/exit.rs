//! The one place errors become exit codes and messages. The table below is README.md's
//! "Exit codes" table; `--help` texts that name codes say the same.
//!
//! A command returns `Ok(code)` when it ran to an outcome (0, 1 for a failure it reported
//! itself, 3 for a blocked plan it printed, 5 for a rolled-back shift), or an error. An
//! error is [`Expected`] when the code was decided where it was raised (a usage error, a
//! refusal, something not built); any other error is a failure (1).

use std::process::ExitCode;

/// Exit codes baton uses.
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// The command failed: after a mutation, or for a reason nobody foresaw (a cluster or
    /// AWS that stopped answering). The message says why.
    pub const FAILED: u8 = 1;
    /// The command line lacks what the command needs: a missing or malformed flag
    /// (clap's usage errors), `--from` and `--to` naming the same context, a value only
    /// the command can refute (an unknown `--command`, a fault target that is not in
    /// the scenario), or `--yes` missing where there is no terminal to ask on.
    pub const USAGE: u8 = 2;
    /// Refused before the first mutation; nothing was changed. A problem blocks the move
    /// (the plan names the object and the fix), or an input names something that is not
    /// there or no longer matches (an unknown context, VPC, zone, listener; a stale or
    /// unreadable plan file; a state dir without a migration; commit before every app is
    /// on green).
    pub const REFUSED: u8 = 3;
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

/// The exit codes as `baton --help` prints them; README.md's "Exit codes" table says the
/// same, word for word (`tests/exit_codes.rs` checks).
pub const HELP: &str = "\
Exit codes:
  0  success
  1  failed: after a change was made, or for a reason nobody foresaw (a cluster or AWS
     stopped answering); the message says what to do. A traffic shift that stopped on
     weights someone else changed exits 1 too
  2  usage: the command line lacks what the command needs (a missing or malformed flag,
     --from and --to naming the same context, a duration without a unit baton knows,
     --yes missing where there is no terminal to ask on)
  3  refused before the first change; nothing was changed: a problem blocks the move
     (the plan names the object and the fix), or an input names what is not there or no
     longer matches (an unknown context, VPC, zone, listener or target group; a stale or
     unreadable plan file; a state dir without a migration or shift, or one already used;
     commit before every app is on green; traffic weights or targets AWS would not take)
  4  not built: the capability asked for is not built yet
  5  traffic shift: a gate failed and the weights from before the shift are back

baton preflight has its own codes: 0 pass, 1 warnings, 2 failures, 3 could not check.";

/// An error whose exit code was decided where it was raised (nextest's `ExpectedError`
/// idea). Every other error exits [`code::FAILED`].
#[derive(Debug)]
pub enum Expected {
    /// The command line lacks what the command needs: exits [`code::USAGE`], printed as
    /// clap prints its own usage errors. Build it with `args::usage_error` (which adds
    /// the command's usage line) or [`Expected::usage`].
    Usage(clap::Error),
    /// Refused before changing anything: exits [`code::REFUSED`]. The message reads after
    /// "refused: " (most begin "failed to …") and names the object and the fix.
    Refused(String),
    /// What was asked for is not built: exits [`code::NOT_BUILT`].
    #[allow(
        dead_code,
        reason = "documented exit code, unused while every command is built"
    )]
    NotBuilt(String),
}

/// `Refused(message)` builds [`Expected::Refused`]; commands name it on its own.
pub use Expected::Refused;

impl Expected {
    /// A usage error with no command's usage line (for checks made deep in a command,
    /// such as the missing `--yes`).
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Self::Usage(clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            format!("{message}\n"),
        ))
    }

    /// The exit code this error ends the process with.
    pub fn code(&self) -> u8 {
        match self {
            Self::Usage(_) => code::USAGE,
            Self::Refused(_) => code::REFUSED,
            Self::NotBuilt(_) => code::NOT_BUILT,
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(e) => write!(f, "{}", e.to_string().trim_end()),
            Self::Refused(m) | Self::NotBuilt(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Expected {}

/// The exit code of an error: the first [`Expected`] in its chain decides it; anything
/// else is [`code::FAILED`].
pub fn code_of(e: &anyhow::Error) -> u8 {
    expected(e).map_or(code::FAILED, Expected::code)
}

fn expected(e: &anyhow::Error) -> Option<&Expected> {
    e.chain().find_map(|c| c.downcast_ref::<Expected>())
}

/// Prints an error chain the way users read it and returns its code ([`code_of`]): a
/// usage error as clap's own, a refusal as `refused: …` followed by "nothing was
/// changed", anything else as `error: …` with its causes.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let code = code_of(e);
    if let Some(Expected::Usage(usage)) = expected(e) {
        let _ = usage.print();
        return ExitCode::from(code);
    }
    let label = match code {
        code::REFUSED => "refused",
        _ => "error",
    };
    // A message may end in "hint: …" lines (what to do next); they go last, once.
    let mut hints = Vec::new();
    let mut lines = Vec::new();
    let layers = std::iter::once((label, e.to_string()))
        .chain(e.chain().skip(1).map(|c| ("  caused by", c.to_string())));
    for (prefix, text) in layers {
        let mut own = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("hint: ") {
                Some(h) if !hints.contains(&h.to_string()) => hints.push(h.to_string()),
                Some(_) => {}
                None => own.push(line),
            }
        }
        if !own.is_empty() {
            lines.push(format!("{prefix}: {}", own.join("\n")));
        }
    }
    for line in lines {
        errln!("{line}");
    }
    if code == code::REFUSED {
        errln!("nothing was changed");
    }
    for hint in hints {
        errln!("hint: {hint}");
    }
    ExitCode::from(code)
}

/// Logs go to stderr; `-v` raises the level, `RUST_LOG` overrides. `quiet_emulator`
/// (the demo, which runs the emulator in-process) keeps the emulator's own warnings out
/// of the story unless `-v` is given. Without `-v`, kube-rs's own report of a failed
/// connection stays out: baton reports the failure once, with the URL and what to do.
/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn init_tracing(verbose: u8, quiet_emulator: bool) {
    let level = match verbose {
        0 if quiet_emulator => {
            "warn,kube_client=off,aws_config=off,aws_smithy_runtime=off,baton_sim=error"
        }
        0 => "warn,kube_client=off,aws_config=off,aws_smithy_runtime=off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Whether to colour what goes to `stream`: a terminal, and `NO_COLOR` unset or empty.
pub fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
