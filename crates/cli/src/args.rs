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
    /// Run the emulated estate in the foreground until Ctrl-C: moto playing AWS, the
    /// clusters `blue` and `green`, their controllers, seeded with a scenario.
    ///
    /// Writes DIR/kubeconfig (contexts `blue` and `green`), DIR/env (KUBECONFIG,
    /// AWS_ENDPOINT_URL, dummy credentials, region) and DIR/scenario.json (the ids of what
    /// was created), then prints one line when ready. In another shell:
    ///
    ///   source DIR/env
    ///   kubectl --context blue get sts,pvc -A
    ///   aws ec2 describe-volumes
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
    /// Scenario to seed: `default`, `large`, or a path to a scenario YAML file.
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Use this AWS endpoint (e.g. a moto you run) instead of starting moto.
    #[arg(long, value_name = "URL")]
    pub aws_endpoint_url: Option<String>,
    /// Serve only the two bare API servers: no moto, no controllers, no scenario.
    #[arg(long, conflicts_with_all = ["scenario", "aws_endpoint_url"])]
    pub bare: bool,
    /// How long seeding may take before giving up.
    #[arg(long, default_value = "300", value_name = "SECONDS")]
    pub seed_timeout: u64,
    /// Modelled time for EC2 to attach a volume, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub attach_delay_ms: u64,
    /// Modelled time for EC2 to detach a volume, in milliseconds (real EBS: seconds).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub detach_delay_ms: u64,
    /// Modelled time from volumes attached to a pod running Ready, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub pod_start_delay_ms: u64,
    /// Seed for the emulator's fault and latency knobs (same seed, same faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Latency added to every Kubernetes API request of both clusters, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub api_latency_ms: u64,
    /// Modelled time for a deleted pod's containers to stop, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub pod_stop_delay_ms: u64,
}
