//! Each command, one module; `run` dispatches.

mod backup;
mod crash;
mod demo;
mod docs;
mod files;
mod identity;
mod network;
mod output;
mod permissions;
mod preflight;
mod progress;
mod report;
mod retire;
mod retry;
mod show;
mod sim;
mod sim_add_cluster;
mod sim_delete_nodegroup;
mod sim_fault;
mod stateful;
mod traffic;
mod volumes;

use std::process::ExitCode;

use crate::args::{
    Cli, Command, IdentityCommand, NetworkCommand, RetireCommand, SimCommand, TrafficCommand,
    VolumesCommand,
};

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Report(a) => report::run(a).await,
        Command::Sim(SimCommand::Up(a)) => sim::up(a).await,
        Command::Preflight(a) => preflight::run(a).await,
        Command::Backup(a) => backup::run(a).await,
        Command::Permissions(a) => permissions::run(&a),
        Command::Plan(a) => stateful::plan(a).await,
        Command::Migrate(a) => stateful::migrate(a).await,
        Command::Status(a) => stateful::status(a).await,
        Command::Rollback(a) => stateful::rollback(a).await,
        Command::Commit(a) => stateful::commit(a).await,
        Command::Sim(SimCommand::Fault(a)) => sim_fault::run(a).await,
        Command::Sim(SimCommand::AddCluster(a)) => sim_add_cluster::run(a).await,
        Command::Sim(SimCommand::DeleteNodegroup(a)) => sim_delete_nodegroup::run(a).await,
        Command::Network(NetworkCommand::Plan(a)) => network::plan(a).await,
        Command::Network(NetworkCommand::Apply(a)) => network::apply(a).await,
        Command::Network(NetworkCommand::MirrorRules(a)) => network::mirror_rules(a).await,
        Command::Volumes(VolumesCommand::Grant(a)) => volumes::grant(a).await,
        Command::Retire(RetireCommand::Plan(a)) => retire::plan(a).await,
        Command::Retire(RetireCommand::Apply(a)) => retire::apply(a).await,
        Command::Identity(IdentityCommand::Plan(a)) => identity::plan(a).await,
        Command::Identity(IdentityCommand::Apply(a)) => identity::apply(a).await,
        Command::Traffic(TrafficCommand::Shift(a)) => traffic::shift(a).await,
        Command::Traffic(TrafficCommand::Status(a)) => traffic::status(a).await,
        Command::Traffic(TrafficCommand::Rollback(a)) => traffic::rollback(a).await,
        Command::Traffic(TrafficCommand::Bindings(a)) => traffic::bindings::run(a).await,
        Command::Completion(a) => docs::completion(&a),
        Command::Man(a) => docs::man(&a),
    }
}
