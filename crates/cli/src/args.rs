//! What the user typed: the command tree, with `--help` text that teaches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// baton upgrades Kubernetes on AWS EKS the blue/green way: it builds on a new ("green")
/// cluster in the same VPC as the old ("blue") one and hands over network space, traffic,
/// and stateful apps whose data stays on the same EBS volumes (re-bound, never copied).
#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole blue→green story on the embedded emulator (no cloud account needed).
    Demo(DemoArgs),
    /// The emulated EKS environment baton is tested on, for rehearsals and for kubectl.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Scenario to run.
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Leave the environment running at the end.
    #[arg(long)]
    pub keep: bool,
    /// Where to keep the demo's journal and files.
    #[arg(long, default_value = ".baton/demo")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run the emulated clusters `blue` and `green` in the foreground until Ctrl-C.
    ///
    /// Writes DIR/kubeconfig (contexts `blue` and `green`) and DIR/env, then prints one
    /// line when ready. In another shell:
    ///
    ///   source DIR/env && kubectl --context green get namespaces
    Up(SimUpArgs),
}

#[derive(Debug, Args)]
pub struct SimUpArgs {
    /// Directory for the kubeconfig and env file (created if missing).
    #[arg(long, default_value = ".baton/sim")]
    pub state_dir: PathBuf,
    /// Kubernetes version blue reports.
    #[arg(long, default_value = "v1.27.16-eks-2f008fe")]
    pub blue_version: String,
    /// Kubernetes version green reports.
    #[arg(long, default_value = "v1.31.4-eks-1f3c2b8")]
    pub green_version: String,
    /// Port for blue's API server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub blue_port: u16,
    /// Port for green's API server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub green_port: u16,
}
