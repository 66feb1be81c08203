//! Where baton writes: results to stdout ([`outln!`], [`out!`]), everything for people
//! (progress, notes, questions) to stderr ([`errln!`], [`err!`]). The crate denies
//! `println!`/`eprintln!` so that every write goes through here.
//!
//! A reader that goes away is not an error: after `baton … | head -1` the rest of the
//! output is dropped and the command finishes what it was doing, exiting as it would
//! have (a migration must not stop halfway because its reader left; it is journaled, but
//! an app in its window would stay down). Any other failure to write stdout (a full disk
//! behind `> plan.json`) is kept and turns a successful exit into a failure
//! ([`failure`]), so a truncated result never looks whole. Writes to stderr never fail
//! the command.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader has gone: further results are dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first failure to write stdout other than a closed pipe.
static STDOUT_FAILED: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes to stdout (use [`out!`]/[`outln!`]).
pub fn stdout(args: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert(e);
        }
    }
}

/// Writes to stderr, ignoring a closed one (use [`err!`]/[`errln!`]).
pub fn stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// The first failure to write stdout other than a closed pipe, if any (taken once).
pub fn failure() -> Option<std::io::Error> {
    // A last partial line may still sit in the buffer.
    if !STDOUT_CLOSED.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().lock().flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Some(e);
    }
    STDOUT_FAILED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// `print!` to stdout, quiet when the reader has gone.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*)) };
}

/// `println!` to stdout, quiet when the reader has gone.
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!`, ignoring a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => { $crate::out::stderr(format_args!($($arg)*)) };
}

/// `eprintln!`, ignoring a closed stderr.
macro_rules! errln {
    () => { $crate::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}
