//! `baton`: upgrade EKS the blue/green way. Parsing and dispatch live in the library
//! modules; this stays thin.

#![forbid(unsafe_code)]
// Results go to stdout and notes to stderr through `out`'s macros, which take a closed
// pipe quietly; the std macros would panic on one.
#![deny(clippy::print_stdout, clippy::print_stderr)]

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
    // A result that could not be written whole is not a success.
    let ran = match (ran, out::failure()) {
        (Ok(code), Some(e)) if code == std::process::ExitCode::SUCCESS => {
            Err(anyhow::Error::new(e).context("failed to write the result to stdout"))
        }
        (ran, _) => ran,
    };
    match ran {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}
