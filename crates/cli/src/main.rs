//! `baton`: upgrade EKS the blue/green way. Parsing and dispatch live in the library
//! modules; this stays thin.

#![forbid(unsafe_code)]
// Results go to stdout and notes to stderr through `out`'s macros, which take a closed
// pipe quietly; the std macros would panic on one.
#![deny(clippy::print_stdout, clippy::print_stderr)]

// The same rule enforced by the compiler, not only by clippy: std's print macros are
// shadowed in every module below.
#[allow(unused_macros)]
macro_rules! println {
    ($($t:tt)*) => {
        compile_error!("write results with outln! (crate::out), which takes a closed pipe quietly")
    };
}
#[allow(unused_macros)]
macro_rules! print {
    ($($t:tt)*) => {
        compile_error!("write results with out! (crate::out), which takes a closed pipe quietly")
    };
}
#[allow(unused_macros)]
macro_rules! eprintln {
    ($($t:tt)*) => {
        compile_error!("write notes with errln! (crate::out), which takes a closed stderr quietly")
    };
}
#[allow(unused_macros)]
macro_rules! eprint {
    ($($t:tt)*) => {
        compile_error!("write notes with err! (crate::out), which takes a closed stderr quietly")
    };
}

#[macro_use]
mod out;

mod args;
mod commands;
mod exit;
mod resolved;

fn main() -> std::process::ExitCode {
    let cli = args::parse();
    exit::init_tracing(
        cli.global.verbose,
        matches!(cli.command, args::Command::Demo(_)),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::report(&anyhow::anyhow!("failed to start the async runtime: {e}")),
    };
    let ran = runtime.block_on(commands::run(cli));
    // A result that could not be written whole is said, and is not a success.
    let ran = match (ran, out::failure()) {
        (Ok(code), Some(e)) if code == std::process::ExitCode::SUCCESS => {
            Err(anyhow::Error::new(e).context("failed to write the result to stdout"))
        }
        (ran, Some(e)) => {
            errln!("error: failed to write the result to stdout: {e}");
            ran
        }
        (ran, None) => ran,
    };
    match ran {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}
