//! Each command, one module; `run` dispatches.

mod demo;
mod sim;
mod sim_fault;

use std::process::ExitCode;

use crate::args::{Cli, Command, SimCommand};

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Sim(SimCommand::Up(a)) => sim::up(a).await,
        Command::Sim(SimCommand::Fault(a)) => sim_fault::run(a).await,
    }
}
