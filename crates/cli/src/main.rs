//! `baton`: upgrade EKS the blue/green way. Parsing and dispatch live in the library
//! modules; this stays thin.

#![forbid(unsafe_code)]

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
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}
