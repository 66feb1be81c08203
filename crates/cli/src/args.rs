//! What the user typed: the command tree, with `--help` text that teaches.

use std::path::PathBuf;

use baton_sim::faults::{FaultSpec, LatencySpec, Target};
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
    #[command(after_long_help = FAULT_GRAMMAR)]
    Up(SimUpArgs),
    /// Change the fault rules of a running `baton sim up` without restarting it.
    ///
    /// Talks to `/debug/faults` on each cluster's API server (found through DIR/kubeconfig)
    /// and on the AWS fault proxy (AWS_ENDPOINT_URL in DIR/env). Rules use the grammar of
    /// `baton sim up --fault` (see `baton sim up --help`); a rule added here counts its
    /// matching requests from the moment it is added.
    #[command(after_help = "\
Examples:
  baton sim fault add 'blue:method=GET:resource=configmaps:nth=1:500'
  baton sim fault add 'aws:action=AttachVolume:rate=0.2:throttle'
  baton sim fault list
  baton sim fault clear blue
  baton sim fault clear")]
    Fault(SimFaultArgs),
}

#[derive(Debug, Args)]
pub struct SimFaultArgs {
    /// The state dir `baton sim up` was started with.
    #[arg(long, default_value = ".baton/sim", global = true)]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub action: FaultAction,
}

#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// Add a rule after those already set (the first that fires on a request wins).
    Add {
        /// TARGET:TRIGGER:FAULT[:MATCH…], e.g. 'blue:rate=0.05:500'.
        spec: FaultSpec,
    },
    /// Print every target's rules, one `TARGET:RULE` a line.
    List,
    /// Remove the rules of one target, or of all.
    Clear {
        /// A cluster name or `aws`; all targets when omitted.
        target: Option<Target>,
    },
}

/// The `--fault` and `--api-latency-ms` grammar, taught at the end of `sim up --help`
/// (the same grammar as `baton_sim::faults::FaultSpec`).
const FAULT_GRAMMAR: &str = "\
Fault rules (--fault SPEC, repeatable):
  SPEC is TARGET:PART:PART…, parts in any order: one trigger, one fault, any matches.
  TARGET   blue, green (any cluster of the scenario): its Kubernetes API;
           aws: AWS calls, through the fault proxy in front of moto.
  TRIGGER  rate=P           each matching request with probability P (0..1), seeded
           nth=N            only the Nth matching request (1-based)
           burst=FROM+COUNT COUNT matching requests from the FROMth on
  FAULT    cluster: 500 | 409 | 429[=RETRY_AFTER_SECS] (default 1)
                    | timeout[=DUR] (held, then 504) | hang[=DUR] (held, then dropped)
                    | reset (connection dropped at once)
           aws:     throttle (as the service throttles: EC2 503 RequestLimitExceeded, …)
                    | 500 | STATUS=CODE (e.g. 400=VolumeInUse)
                    | timeout[=DUR] (held, then dropped) | reset
           DUR is 250ms, 5s or 2m; timeout and hang hold 60s by default.
  MATCH    cluster: method=GET, resource=configmaps or statefulsets/scale, path=SUBSTRING
           aws:     action=AttachVolume, service=ec2, path=SUBSTRING
  A rule counts only the requests all its matches accept; when several rules fire on one
  request, the first given wins. Rules are armed once the scenario is seeded. Values
  cannot contain ':'.

Latency (--api-latency-ms, repeatable): MS for every cluster, or TARGET=MS; MS+JITTER adds
a seeded random 0..=JITTER ms. A targeted value overrides the plain one.

Examples:
  baton sim up --fault 'blue:rate=0.05:500'
  baton sim up --fault 'blue:method=PATCH:resource=statefulsets/scale:nth=1:409'
  baton sim up --fault 'green:burst=3+2:429=5' --api-latency-ms 20 --api-latency-ms green=80+40
  baton sim up --fault 'aws:action=AttachVolume:nth=2:throttle' \\
               --fault 'aws:service=ec2:rate=0.01:reset' --api-latency-ms aws=200+100
  baton sim up --bare --fault 'blue:method=GET:resource=configmaps:nth=1:timeout=5s'

Change the rules of a running environment with `baton sim fault`.";

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
    /// Latency added to every API request, in milliseconds: MS for every cluster's
    /// Kubernetes API, TARGET=MS for one cluster or for AWS (aws=MS); MS+JITTER adds a
    /// seeded random 0..=JITTER. Repeatable.
    #[arg(long, value_name = "[TARGET=]MS[+JITTER]")]
    pub api_latency_ms: Vec<LatencySpec>,
    /// Inject faults: TARGET:TRIGGER:FAULT[:MATCH…], e.g. 'blue:rate=0.05:500' or
    /// 'aws:action=AttachVolume:nth=2:throttle'. Repeatable; grammar below.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<FaultSpec>,
    /// Modelled time for a deleted pod's containers to stop, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub pod_stop_delay_ms: u64,
}

/// A command-line error found after parsing (a value that only the scenario can refute),
/// shaped like clap's own so it prints the same usage and exits 2.
pub fn usage_error(message: String) -> clap::Error {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    cli.build();
    let up = cli
        .find_subcommand_mut("sim")
        .and_then(|s| s.find_subcommand_mut("up"))
        .cloned();
    up.unwrap_or(cli)
        .error(clap::error::ErrorKind::ValueValidation, message)
}
