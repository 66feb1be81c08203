//! What the user typed: the command tree, with `--help` text that teaches.

use std::path::PathBuf;
use std::time::Duration;

use baton_sim::faults::{FaultSpec, LatencySpec, Target};
use clap::{Args, Parser, Subcommand};

use crate::exit::Expected;

/// The `--fault` and `--api-latency-ms` grammar, taught at the end of `sim up --help`
/// (the same grammar as `baton_sim::faults::FaultSpec`).
macro_rules! fault_grammar {
    () => {
        "\
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

Change the rules of a running environment with `baton sim fault`."
    };
}

/// `baton sim up`'s examples (in `-h` and, before the fault grammar, `--help`).
macro_rules! sim_up_examples {
    () => {
        "\
Examples:
  baton sim up --state-dir .baton/sim
  # then, in another shell:
  source .baton/sim/env
  kubectl --context blue get sts,pvc -A
  aws ec2 describe-volumes"
    };
}

/// baton upgrades Kubernetes on AWS EKS the blue/green way: it builds on a new ("green")
/// cluster in the same VPC as the old ("blue") one and hands over network space, traffic,
/// and stateful apps whose data stays on the same EBS volumes (re-bound, never copied).
#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = crate::exit::HELP
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
    ///
    /// Starts moto (AWS) and the emulated clusters blue and green in this process, seeds
    /// the scenario, then runs, unattended and in order, the commands a user would:
    /// `network plan` and `apply` for green (and its ENIConfigs), `network mirror-rules`
    /// for the database, `preflight`, `backup`, a `traffic shift` of the ALB from blue to
    /// green in 3-second gated steps (the demo rolls out green's stateless apps, registers
    /// them in green's target group and plays the clients, publishing green's ALB metrics),
    /// `plan`, `migrate` of every StatefulSet, `commit`. Each command's output is shown
    /// under its command line. Then it checks, from EC2, the ALB and both clusters, that
    /// blue serves nothing and holds no volume, that no volume was lost and that each
    /// volume's data fingerprint in green continues from blue's.
    ///
    /// It ends with a summary (per app: downtime window, volumes, fingerprints before and
    /// after; traffic steps; findings; invariants), writes DIR/report.html, and exits 0
    /// only if every invariant held (1 otherwise). It takes about 35 s on 2 cores and needs
    /// moto (`pip install 'moto[server]'`).
    #[command(after_help = "\
Examples:
  baton demo
  baton demo --state-dir /tmp/demo --keep     # then, in another shell: source /tmp/demo/sim/env
  baton report --state-dir /tmp/demo --out /tmp/demo.html")]
    Demo(DemoArgs),
    /// Draw one self-contained HTML page from a state dir: each app's timeline (prepare,
    /// window, after), downtime per app, green's traffic weight and 5xx ratio over time,
    /// preflight findings, and a demo's steps and invariants.
    ///
    /// Reads what the dir holds: a demo's (`baton demo --state-dir`), a migration's
    /// (`journal.jsonl`) or a traffic shift's (`traffic.jsonl`), and `preflight.json`. The
    /// page fetches nothing (inline styles and SVG), so it can be mailed or archived.
    #[command(after_help = "\
Examples:
  baton report --state-dir .baton/demo
  baton report --state-dir .baton/m1 --out migration.html")]
    Report(ReportArgs),
    /// The emulated EKS environment baton is tested on, for rehearsals and for kubectl.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Show what moving blue's stateful apps to green would do, and every problem in the way.
    ///
    /// Read-only. An app is a StatefulSet with claim templates, a Deployment whose pods
    /// mount claims, or a bound claim no workload names (moved on its own). Per app: kind,
    /// what could scale blue back up (fenced by migrate), replicas, claims, PVs, each EBS volume's id, zone, size, type and
    /// encryption, CSI or in-tree, reclaim policy, green's readiness, and each problem with
    /// the object it concerns and the fix. Exit code 3 when a problem blocks the move.
    #[command(after_help = "\
Examples:
  baton plan --from blue --to green
  baton plan --from blue --to green -n orders -o yaml --out plan.yaml
  baton plan --from blue --to green --claim archive/archive-data")]
    Plan(PlanArgs),
    /// Move blue's stateful apps to green on their own EBS volumes (re-bound, never copied).
    ///
    /// Per app, in the order that keeps the data safe at every step: blue's PVs made Retain (original recorded) before
    /// anything else; whatever would scale blue back up paused (Argo CD automated sync,
    /// Flux suspend, KEDA paused-replicas; put back by rollback, kept by commit); then the window: blue scaled to 0, its pods gone, its volume
    /// attachments gone and EC2 reporting the volumes available; an EBS snapshot started
    /// (not awaited); green's claim created with volumeName; green's PV created with
    /// claimRef.uid and Retain; Bound; green scaled up; Ready. Every mutation is journaled
    /// in the state dir before and after; `--resume` continues after a crash or Ctrl-C.
    /// Blue's objects stay in place until `baton commit`, so `baton rollback` is cheap.
    ///
    /// Exit codes: 0 every app moved; 1 an app stopped safely (the summary says which and
    /// why; `--resume` continues) or an unexpected error; 2 usage (no --yes without a
    /// terminal); 3 refused, nothing changed (a blocking problem, a stale or unreadable
    /// --plan, an unknown context, a used --state-dir).
    #[command(after_help = "\
Examples:
  baton migrate --from blue --to green --dry-run
  baton migrate --from blue --to green -n orders --yes
  baton migrate --from blue --to green --plan plan.yaml --state-dir .baton/m1
  baton migrate --resume --state-dir .baton/m1")]
    Migrate(MigrateArgs),
    /// Show the phase of every app and volume of a migration, from its journal.
    #[command(after_help = "\
Examples:
  baton status --state-dir .baton/m1
  baton status --state-dir .baton/m1 -o json")]
    Status(StatusArgs),
    /// Before commit: return apps to blue, with their data (green lets go of the volumes
    /// first; blue's claims were never touched).
    ///
    /// Refused (exit 3, nothing changed) when --state-dir holds no migration or --app is
    /// not one of its apps.
    #[command(after_help = "\
Examples:
  baton rollback --state-dir .baton/m1 --dry-run
  baton rollback --state-dir .baton/m1 --app orders/postgres --yes")]
    Rollback(RollbackArgs),
    /// Retire blue's claims and PVs of migrated apps (the volumes survive: Retain).
    ///
    /// Refused (exit 3, nothing deleted) unless every app of the migration is on green.
    #[command(after_help = "\
Examples:
  baton commit --state-dir .baton/m1 --dry-run
  baton commit --state-dir .baton/m1 --restore-reclaim-policy --yes")]
    Commit(CommitArgs),
    /// Check blue and green before anything moves: what would break, and how to fix it.
    ///
    /// Read-only. Reports each finding with its severity (fail, warn, info), the object,
    /// what is wrong, why it matters and the fix. Checks: the same VPC (and --vpc) and
    /// region; version skew (and green's kubelets); green's nodes in every zone holding a
    /// volume to move; API versions green's Kubernetes no longer serves, in blue's live
    /// objects (kubectl's last-applied annotation), in Helm v3 releases (decoded from their
    /// Secrets) and in --manifests files; green's kube-system add-ons ready, the EBS CSI
    /// driver and its CSIDriver object; StorageClasses of blue's claims in green with the
    /// same provisioner; every check of `baton plan` (claim retention Delete, PVs with
    /// reclaimPolicy Delete, multi-attach volumes, HPAs scaling blue, …);
    /// PodDisruptionBudgets that allow no eviction; operators and GitOps tools that manage
    /// blue's StatefulSets; security groups that admit blue's node/pod ranges but not
    /// green's (the database).
    ///
    /// Exit codes (preflight's own): 0 pass (info only), 1 warnings, 2 failures, 3 could
    /// not check (a cluster, AWS or a manifest could not be read: the report is incomplete,
    /// whatever else it found).
    #[command(after_help = "\
Examples:
  baton preflight --from blue --to green
  baton preflight --from blue --to green --manifests ./deploy --vpc vpc-0abc -o json
  baton preflight --from blue --to green -n orders -n streaming")]
    Preflight(PreflightArgs),
    /// Save, as YAML, every object a move of blue's StatefulSets will touch and the
    /// selected namespaces' objects, before anything changes.
    ///
    /// Read-only on the cluster. Writes OUT/<namespace>/<kind>/<name>.yaml (cluster-scoped
    /// objects such as PVs under OUT/_cluster/) and OUT/index.yaml listing each object
    /// with its uid, resourceVersion, file and whether baton touches it. Touched: the
    /// StatefulSets with claim templates, their claims, those claims' PVs and the HPAs that
    /// target them. Namespaces: -n (repeatable), default those of the StatefulSets that
    /// move; every listable kind in them is saved (events skipped). Secrets are written
    /// only with --include-secrets. Refuses (exit 3) to write into a directory that
    /// already holds a backup index.
    ///
    /// With --velero it also creates a Velero Backup (velero.io/v1) of the same
    /// namespaces in --velero-namespace, without volume snapshots (baton snapshots the
    /// volumes it moves inside the window, when they are consistent), and prints its name;
    /// with --wait it follows the Backup's phase: exit 0 Completed, 1 PartiallyFailed or
    /// Failed. Velero not installed (its Backup kind not served, or no such namespace):
    /// exit 3 before anything is written.
    #[command(after_help = "\
Examples:
  baton backup --from blue
  baton backup --from blue -n orders -n streaming --out backups/before-move
  baton backup --from blue --touched-only --include-secrets
  baton backup --from blue --velero --dry-run
  baton backup --from blue --velero --wait --yes")]
    Backup(BackupArgs),
    /// The least IAM policy and Kubernetes ClusterRole baton's commands need.
    ///
    /// Derived from baton's table of what each command's code calls, which a test
    /// checks against every request
    /// the commands make on the emulator and moto, run as a ServiceAccount bound only to
    /// this ClusterRole with the emulator enforcing RBAC. -o json prints the IAM policy
    /// document (for `aws iam create-policy --policy-document`), -o yaml the ClusterRole
    /// (for `kubectl apply -f`, then a ClusterRoleBinding to baton's identity on both
    /// clusters); the table says which command needs what. A call a cluster denies
    /// (403) fails naming the verb and resource it needed.
    #[command(after_help = "\
Examples:
  baton permissions
  baton permissions -o json > baton-policy.json
  baton permissions -o yaml --command plan --command migrate | kubectl apply -f -")]
    Permissions(PermissionsArgs),
    /// What green's pods need of IAM before they start: their roles (IRSA) trusting
    /// green's OIDC provider.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// What green's EBS CSI driver needs of blue's volumes before the move: access to
    /// their KMS keys.
    #[command(subcommand)]
    Volumes(VolumesCommand),
    /// Green's address space inside the VPC blue uses: plan it, create it, and give it
    /// blue's security-group access.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Move an externally managed ALB's traffic from blue's target group to green's, in
    /// gated steps, reversibly.
    #[command(subcommand)]
    Traffic(TrafficCommand),
    /// After commit: prove blue idle and nothing depending on it, then remove what it
    /// still holds of the VPC, IAM and the load balancers.
    #[command(subcommand)]
    Retire(RetireCommand),
    /// Print a shell completion script for baton (commands, flags, values) to stdout.
    ///
    /// Generated from the same definitions as `--help`, so it knows every command of this
    /// version; write it again after an upgrade. New shells pick it up.
    #[command(after_help = "\
Install (once per user):
  bash   baton completion bash > ~/.local/share/bash-completion/completions/baton
         (needs the bash-completion package; or add to ~/.bashrc:
          source <(baton completion bash))
  zsh    mkdir -p ~/.zfunc && baton completion zsh > ~/.zfunc/_baton
         and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath)
  fish   baton completion fish > ~/.config/fish/completions/baton.fish
  powershell
         baton completion powershell >> $PROFILE
  elvish baton completion elvish >> ~/.config/elvish/rc.elv")]
    Completion(CompletionArgs),
    /// Print baton's man page (roff) to stdout, or write one page per command into a
    /// directory.
    ///
    /// Generated from the same definitions as `--help`. Without --dir, baton.1 (the
    /// commands, the global flags, the exit codes) goes to stdout; with --dir, baton.1 and
    /// a page per subcommand (baton-migrate.1, baton-sim-up.1, …) are written there and
    /// their paths printed on stderr.
    #[command(after_help = "\
Examples:
  baton man | man -l -          # read it now
  baton man --dir ~/.cargo/share/man/man1 && man baton-migrate
      # beside `cargo install`'s ~/.cargo/bin: man-db searches ../share/man of each
      # directory on $PATH")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write baton.1 and one page per subcommand into this directory (created if
    /// missing) instead of baton.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `baton traffic …`.
#[derive(Debug, Subcommand)]
pub enum TrafficCommand {
    /// Shift a listener's (or rule's) forward action from blue's target group to green's
    /// in weighted steps, each gated on green's health and error rate.
    ///
    /// Before the first write: the listener, rule and target groups must exist, blue's
    /// group must be in the forward action, every step's weights must be within AWS's
    /// limits (0–999, at most 5 groups), and green must have --min-healthy healthy targets;
    /// otherwise it refuses (exit 3) and changes nothing. A plain forward to blue first
    /// becomes a weighted forward with green at 0. A step is green's percentage of the
    /// traffic blue and green carry together; every other target group, stickiness and
    /// every other field and action are kept as they were. Stickiness is reported: it
    /// slows the shift, since clients pinned to blue stay there until it expires.
    ///
    /// Before each write baton reads the action back: weights other than the ones it last
    /// wrote (someone or something else changed them) stop the shift with exit 1, and
    /// baton does not touch them. After each step's --interval, the gate: green's group
    /// has at least --min-healthy healthy targets; its targets' 5xx answers per request
    /// over the step (CloudWatch HTTPCode_Target_5XX_Count / RequestCount, dimensions
    /// TargetGroup + LoadBalancer) are at most --max-5xx-ratio; fewer than --min-requests
    /// requests is inconclusive, handled by --on-inconclusive (hold: measure again after
    /// another interval, at most --max-holds times, then fail). A failed gate writes the
    /// original weights back and exits 5 with the reason.
    ///
    /// Every write is journaled (fsync'd) in --state-dir before and after it is made: after
    /// a crash, kill or Ctrl-C, `--resume` continues (a step's interval counts from when
    /// its weights were written) and `baton traffic rollback` puts the original weights
    /// back. CloudWatch publishes ALB metrics per minute, about a minute late: on AWS use
    /// intervals of several minutes.
    ///
    /// Exit codes: 0 every step passed; 1 failed or stopped on someone else's change (the
    /// message says what was found); 2 usage; 3 refused, nothing changed; 5 a gate failed
    /// and the original weights are back.
    #[command(after_help = "\
Examples:
  baton traffic shift --listener arn:aws:elasticloadbalancing:…:listener/app/web/… \\
      --from-tg arn:…:targetgroup/web-blue/… --to-tg arn:…:targetgroup/web-green/…
  baton traffic shift --listener ARN --rule ARN --from-tg ARN --to-tg ARN \\
      --steps 5,20,50,100 --interval 10m --min-healthy 3 --max-5xx-ratio 0.005 --yes
  baton traffic shift --resume --state-dir .baton/traffic")]
    Shift(TrafficShiftArgs),
    /// Show a listener's (or rule's) forward weights now and each group's gate readings:
    /// healthy targets, requests and 5xx ratio over --window.
    ///
    /// Read-only. With --state-dir, also where the shift journaled there stands.
    #[command(after_help = "\
Examples:
  baton traffic status --listener ARN
  baton traffic status --listener ARN --rule ARN --window 15m -o json
  baton traffic status --listener ARN --state-dir .baton/traffic")]
    Status(TrafficStatusArgs),
    /// Put back the weights recorded before a shift (from its journal), whatever step it
    /// reached, after a crash or after it completed.
    ///
    /// Refuses to overwrite weights someone else changed since baton last wrote them,
    /// unless --force. Exit codes: 0 the original weights are on the ALB; 1 failed or
    /// stopped on someone else's change; 2 usage (no --yes without a terminal); 3 no
    /// shift journaled in --state-dir, nothing changed.
    #[command(after_help = "\
Examples:
  baton traffic rollback --state-dir .baton/traffic
  baton traffic rollback --state-dir .baton/traffic --force --yes")]
    Rollback(TrafficRollbackArgs),
    /// Give green a TargetGroupBinding into green's target group for each of blue's, so
    /// green's AWS Load Balancer Controller registers green's pods before traffic moves.
    ///
    /// Reads blue's TargetGroupBindings (elbv2.k8s.aws/v1beta1) and finds green's target
    /// group for each: the one --map names, else the one whose tags equal blue's group's
    /// on every key but the cluster's (elbv2.k8s.aws/cluster, eks:cluster-name,
    /// kubernetes.io/cluster/NAME) and whose cluster tag names green. Green's binding is
    /// blue's spec with green's targetGroupARN; for ip targets green's namespace gets
    /// elbv2.k8s.aws/pod-readiness-gate-inject=enabled, so a green pod is Ready only once
    /// its target is healthy. A green binding into a group blue is bound to is refused
    /// unless both set multiClusterTargetGroup: the two controllers would deregister each
    /// other's targets (aws-load-balancer-controller issues 2173, 2757).
    ///
    /// Prints the plan by default (exit 3 if any binding is refused); --apply creates
    /// what is missing (journaled in --state-dir; running it again creates nothing).
    #[command(after_help = "\
Examples:
  baton traffic bindings --from blue --to green
  baton traffic bindings --from blue --to green --map web-blue=web-green -o json
  baton traffic bindings --from blue --to green --apply --dry-run
  baton traffic bindings --from blue --to green --apply --yes")]
    Bindings(TrafficBindingsArgs),
}

#[derive(Debug, Args)]
pub struct TrafficBindingsArgs {
    #[command(flatten)]
    pub clusters: ClusterArgs,
    /// Only blue's bindings in this namespace (repeatable; default: every namespace).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Green's target group for one of blue's, by name or ARN (repeatable); without it,
    /// found by tags.
    #[arg(long, value_name = "BLUE_TG=GREEN_TG", value_parser = parse_map)]
    pub map: Vec<(String, String)>,
    /// Green's cluster name as target groups' tags name it (default: its nodes'
    /// eks:cluster-name, else the --to context).
    #[arg(long, value_name = "NAME")]
    pub green_cluster: Option<String>,
    /// Create green's bindings (and label namespaces); without it, only print.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: print each request it would send, one a line, and change nothing.
    #[arg(long, requires = "apply")]
    pub dry_run: bool,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Where --apply journals (bindings.jsonl).
    #[arg(long, value_name = "DIR", default_value = ".baton/bindings")]
    pub state_dir: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

fn parse_map(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!(
            "expected BLUE_TG=GREEN_TG (names or ARNs), got {s:?}"
        )),
    }
}

/// What an inconclusive gate (too few requests) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Inconclusive {
    /// Measure again after another interval (at most --max-holds times, then fail).
    Hold,
    /// Go on to the next step.
    Pass,
    /// Roll back.
    Fail,
}

#[derive(Debug, Args)]
pub struct TrafficShiftArgs {
    /// The ALB listener whose default forward action moves (or whose --rule does).
    #[arg(long, value_name = "ARN", required_unless_present = "resume")]
    pub listener: Option<String>,
    /// Move this rule's forward action instead of the listener's default.
    #[arg(long, value_name = "ARN")]
    pub rule: Option<String>,
    /// Blue's target group (in the forward action now).
    #[arg(long, value_name = "ARN", required_unless_present = "resume")]
    pub from_tg: Option<String>,
    /// Green's target group (added at weight 0 if the action lacks it).
    #[arg(long, value_name = "ARN", required_unless_present = "resume")]
    pub to_tg: Option<String>,
    /// Green's percentage of blue's and green's traffic at each step, increasing.
    #[arg(
        long,
        value_name = "PCT,…",
        value_delimiter = ',',
        default_value = "10,25,50,100",
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub steps: Vec<u32>,
    /// How long each step runs before its gate (e.g. 5m, 30s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Fewest healthy targets green's group must have (before the first step and at
    /// every gate).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_healthy: u32,
    /// Largest ratio of green's target 5xx answers to its requests over a step.
    #[arg(long, value_name = "RATIO", default_value_t = 0.01, value_parser = parse_ratio)]
    pub max_5xx_ratio: f64,
    /// Fewest requests green must serve in a step for its 5xx ratio to count.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub min_requests: u64,
    /// What too few requests means.
    #[arg(long, value_enum, default_value = "hold")]
    pub on_inconclusive: Inconclusive,
    /// Most re-measures of one step for want of requests before it fails.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_holds: u32,
    /// Where the shift's journal is kept.
    #[arg(long, value_name = "DIR", default_value = ".baton/traffic")]
    pub state_dir: PathBuf,
    /// Continue the shift journaled in --state-dir after a crash, kill or Ctrl-C.
    #[arg(long, conflicts_with_all = ["listener", "rule", "from_tg", "to_tg"])]
    pub resume: bool,
    /// Check everything, print the planned weight steps (stderr) and, one a line on
    /// stdout, the AWS request of each write before the first gate (green added at
    /// weight 0 if the action lacks it, then step 1): `elbv2  ModifyListener
    /// {"ListenerArn":…,"DefaultActions":[…]}`, or ModifyRule with --rule, the whole
    /// action list with the new weights in it. Changes nothing: no write, no journal.
    /// With --resume: the writes that shift makes next, up to its next gate.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Output format of the final summary.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct TrafficStatusArgs {
    /// The ALB listener.
    #[arg(long, value_name = "ARN")]
    pub listener: String,
    /// A rule of the listener (default: the listener's default action).
    #[arg(long, value_name = "ARN")]
    pub rule: Option<String>,
    /// How far back the request and 5xx sums go (e.g. 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub window: Duration,
    /// Also show the shift journaled in this directory.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct TrafficRollbackArgs {
    /// The shift's state dir.
    #[arg(long, value_name = "DIR", default_value = ".baton/traffic")]
    pub state_dir: PathBuf,
    /// Write the original weights even over weights someone else set since.
    #[arg(long)]
    pub force: bool,
    /// Print the AWS request that puts the original weights back
    /// (`elbv2  ModifyListener {…}` or ModifyRule) and change nothing, the journal
    /// included.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Output format of the final summary.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Every duration flag's value parser, so `--wait-timeout`, `--interval`, `--window`,
/// `--velero-timeout`, `--seed-timeout` and the sim's delays read alike: jiff's friendly
/// format (`10m`, `90s`, `1h30m`, `1h 30m`, `500ms`, `2 hours`), and a bare number as
/// seconds (`600`), as the flags that took seconds did. Negative durations and units
/// above hours (days, which are not always 24 hours) are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{s:?} is too long a duration"));
    }
    let hint = "write e.g. 10m, 90s, 1h30m or 500ms (a bare number is seconds)";
    let d = jiff::fmt::friendly::SpanParser::new()
        .parse_duration(text)
        .map_err(|e| format!("{s:?} is not a duration: {hint} ({e})"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} is not a duration: it is negative; {hint}"))
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{s:?} is not a ratio between 0 and 1 (0.01 is 1 %)"
        )),
    }
}

/// `baton identity …`.
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Show what IAM must change so that green's pods can assume the roles blue's assume.
    ///
    /// Read-only. Every ServiceAccount of the selected namespaces in blue that names a
    /// role (`eks.amazonaws.com/role-arn`) is listed with its role; each role's trust
    /// policy is read (IAM GetRole) and checked for green's IAM OIDC provider (green's EKS
    /// issuer, from EKS DescribeCluster of the cluster its nodes name in
    /// `eks:cluster-name`), for each ServiceAccount and its token audience. Per role: the
    /// statement green needs, or that it trusts green already; whether green's provider
    /// exists. A trust policy that would exceed IAM's 2,048-character limit with green's
    /// statement, a role that does not exist or a trust policy baton cannot read refuses
    /// (exit 3), naming the role. EKS Pod Identity associations are not handed over
    /// (the command says so).
    #[command(after_help = "\
Examples:
  baton identity plan --from blue --to green
  baton identity plan --from blue --to green -n orders -o json")]
    Plan(IdentityArgs),
    /// Make the changes `identity plan` shows: green's IAM OIDC provider created if it is
    /// missing, and green's statement added to each role's trust policy (blue's kept).
    ///
    /// Each request is journaled before and after in --state-dir (identity.jsonl); a run
    /// again changes nothing (it plans afresh: what is there is not sent again). With
    /// --dry-run it prints each request as it would be sent (`iam    UpdateAssumeRolePolicy
    /// {"RoleName":…,"PolicyDocument":…}`) and changes nothing. Asks on a terminal; --yes
    /// without one.
    #[command(after_help = "\
Examples:
  baton identity apply --from blue --to green --dry-run
  baton identity apply --from blue --to green --yes")]
    Apply(IdentityApplyArgs),
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    pub clusters: ClusterArgs,
    /// Only ServiceAccounts in this namespace (repeatable; default: every namespace but
    /// kube-system, kube-public and kube-node-lease, whose add-ons green runs under its
    /// own roles).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct IdentityApplyArgs {
    #[command(flatten)]
    pub plan: IdentityArgs,
    /// Print each IAM request it would send, one a line, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Where the journal is kept (identity.jsonl).
    #[arg(long, value_name = "DIR", default_value = ".baton/identity")]
    pub state_dir: PathBuf,
}

/// `baton volumes …`.
#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// Let green's EBS CSI driver use the customer-managed KMS keys of blue's volumes:
    /// one KMS grant per key, made before the move (never in its window).
    ///
    /// EC2 attaches a volume encrypted with a customer-managed key only for a caller that
    /// may use the key; a green driver role that the key policy does not admit would have
    /// its attach fail inside the window, with the app down (`baton plan` refuses such a
    /// volume, naming this command). For each key of the selected StatefulSets' volumes
    /// that green's driver role (its ServiceAccount's eks.amazonaws.com/role-arn, or
    /// --ebs-csi-role) cannot use, baton sends one CreateGrant: grantee that role,
    /// operations CreateGrant, Decrypt, DescribeKey, GenerateDataKeyWithoutPlaintext,
    /// ReEncryptFrom and ReEncryptTo (what the driver's documentation asks of a key),
    /// named baton-<green's context>. A grant cannot carry the key policy condition
    /// kms:GrantIsForAWSResource; it is limited to this key and this role instead. Keys
    /// green can already use (key policy, IAM through the key policy, or a grant) and
    /// AWS managed keys are left alone, so a second run changes nothing.
    ///
    /// Every request is journaled before and after in --state-dir (grants.jsonl). Commit
    /// leaves the grants (green's driver needs them for every later attach); --revoke
    /// removes the grants baton made for green's role, refusing (exit 3) one that a
    /// volume green's PVs name still needs.
    ///
    /// Exit codes: 0 done (or nothing to do); 2 usage (no --yes without a terminal);
    /// 3 refused, nothing changed (green's driver role unknown, a key baton cannot read,
    /// a grant green still needs).
    #[command(after_help = "\
Examples:
  baton volumes grant --from blue --to green --dry-run
  baton volumes grant --from blue --to green --yes
  baton volumes grant --from blue --to green -n orders --ebs-csi-role green=arn:aws:iam::123456789012:role/green-ebs-csi
  baton volumes grant --from blue --to green --revoke --yes      # after a rollback")]
    Grant(VolumesGrantArgs),
}

#[derive(Debug, Args)]
pub struct VolumesGrantArgs {
    #[command(flatten)]
    pub clusters: ClusterArgs,
    /// Only StatefulSets in this namespace (repeatable; default: all).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Only StatefulSets with this label (KEY=VALUE, repeatable: all must match).
    #[arg(short = 'l', long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The IAM role a cluster's EBS CSI driver runs as (CONTEXT=ARN), when its
    /// ServiceAccount kube-system/ebs-csi-controller-sa has no eks.amazonaws.com/role-arn
    /// (EKS Pod Identity) or to override it: green's is the grantee.
    #[arg(long = "ebs-csi-role", value_name = "CONTEXT=ARN", value_parser = parse_role)]
    pub ebs_csi_roles: Vec<(String, String)>,
    /// Remove the grants baton made for green's driver role instead (after a rollback,
    /// or once the key policy admits green's role).
    #[arg(long)]
    pub revoke: bool,
    /// Print each KMS request it would send, one a line
    /// (`kms    CreateGrant {"KeyId":…,"GranteePrincipal":…,"Operations":[…],"Name":…}`),
    /// and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Where the journal of the grants is kept (grants.jsonl).
    #[arg(long, value_name = "DIR", default_value = ".baton/grants")]
    pub state_dir: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `baton network …`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Plan green's node and pod subnets in blue's VPC, sized for N nodes and M pods.
    ///
    /// Read-only. Reads every CIDR block of the VPC (and its state), every subnet and its
    /// free addresses, and with --from (blue's context) blue's ENIConfigs and its nodes'
    /// subnets. Prints the address map (each block, its subnets and who uses them), the
    /// per-node sizing from the VPC CNI's rules (max pods = ENIs × (IPs per ENI − 1) + 2;
    /// one ENI fewer with custom networking; /28 prefixes capped at 110/250 pods with
    /// prefix delegation; warm pools), the subnets to create per zone with usable vs needed addresses, and a new
    /// CIDR block to associate when the free space does not fit (pod blocks from
    /// 100.64.0.0/10 or 198.19.0.0/16 first, only ranges AWS allows next to the primary
    /// block, within the per-VPC block quota). Green's existing subnets (tagged
    /// kubernetes.io/cluster/<name>) are counted first. Nothing overlaps any block, subnet
    /// or --avoid range. Exit code 3 when the request cannot be met; the message says why.
    #[command(after_help = "\
Examples:
  baton network plan --vpc vpc-0abc --cluster-name green \\
      --azs us-east-1a,us-east-1b,us-east-1c --nodes 112 --pods 3000 --instance-type m5.large
  baton network plan --vpc vpc-0abc --cluster-name green --azs us-east-1a,us-east-1b \\
      --nodes 20 --pods 1500 --custom-networking --from blue -o yaml --out net.yaml
  baton network plan … --prefix-delegation --surge 25 --avoid 10.128.0.0/9 --cidr-quota 6")]
    Plan(NetworkPlanArgs),
    /// Create what a network plan proposes: associate its CIDR blocks, create its subnets.
    ///
    /// Subnets get the tags EKS and the AWS Load Balancer Controller look for
    /// (kubernetes.io/cluster/<green>=shared; kubernetes.io/role/internal-elb=1 on node
    /// subnets) and baton.io/network-plan=<plan id>, by which a second run finds them and
    /// changes nothing. Refuses (exit 3, nothing changed) when the VPC changed since the
    /// plan (a block or subnet added, removed or resized) or a proposal overlaps anything.
    /// Never touches a subnet it did not create. Prints green's ENIConfig manifests once
    /// the pod subnets exist (custom networking).
    #[command(after_help = "\
Examples:
  baton network apply --plan net.yaml
  baton network apply --plan net.yaml --yes --eni-configs green-eniconfigs.yaml
  kubectl --context green apply -f green-eniconfigs.yaml")]
    Apply(NetworkApplyArgs),
    /// Give green's ranges the security-group access blue's have (e.g. the database).
    ///
    /// Finds every inbound rule that admits one of blue's ranges and adds the same
    /// protocol and ports for each of green's, unless the group already admits it. Prints
    /// the rules; adds them only with --apply (a second run finds nothing to add). Blue's
    /// and green's ranges come from --from-cidrs/--to-cidrs, or from a network plan made
    /// with --from (blue's node and ENIConfig subnets; green's existing and planned ones).
    #[command(after_help = "\
Examples:
  baton network mirror-rules --from-cidrs 10.0.0.0/20,100.64.0.0/19 --to-cidrs 10.1.0.0/20
  baton network mirror-rules --plan net.yaml --security-group sg-0db --apply")]
    MirrorRules(MirrorRulesArgs),
}

#[derive(Debug, Args)]
pub struct NetworkPlanArgs {
    /// The VPC blue runs in (green goes in the same one).
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: String,
    /// Green's EKS cluster name (tags: kubernetes.io/cluster/<name>).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: String,
    /// Zones for green's nodes, comma-separated.
    #[arg(long, value_name = "AZ,…", value_delimiter = ',', required = true)]
    pub azs: Vec<String>,
    /// Green's nodes (spread evenly over the zones).
    #[arg(long, value_name = "N")]
    pub nodes: u32,
    /// Green's pods that need a VPC address (host-network pods do not).
    #[arg(long, value_name = "M")]
    pub pods: u32,
    /// Node instance type (ENIs and addresses per ENI from baton's table).
    #[arg(long, value_name = "TYPE", default_value = "m5.large")]
    pub instance_type: String,
    /// The kubelet's max pods, if set below what the CNI can address.
    #[arg(long, value_name = "P")]
    pub max_pods_per_node: Option<u32>,
    /// The VPC CNI assigns /28 prefixes (ENABLE_PREFIX_DELEGATION=true; Nitro only).
    #[arg(long)]
    pub prefix_delegation: bool,
    /// Pods get addresses from per-zone pod subnets through ENIConfigs
    /// (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true).
    #[arg(long)]
    pub custom_networking: bool,
    /// Extra nodes during rollouts, in percent of --nodes (each counted with full pods).
    #[arg(long, value_name = "PCT", default_value_t = 0)]
    pub surge: u32,
    /// The CNI's WARM_ENI_TARGET.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warm_eni_target: u32,
    /// The CNI's WARM_IP_TARGET (overrides the ENI target; not with prefix delegation).
    #[arg(long, value_name = "N", conflicts_with = "prefix_delegation")]
    pub warm_ip_target: Option<u32>,
    /// The CNI's WARM_PREFIX_TARGET (prefix delegation).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warm_prefix_target: u32,
    /// A range green must stay out of (on-premises, peered VPCs, …). Repeatable.
    #[arg(long, value_name = "CIDR")]
    pub avoid: Vec<ipnet::Ipv4Net>,
    /// IPv4 CIDR blocks the VPC may have (AWS's default quota is 5).
    #[arg(long, value_name = "Q", default_value_t = 5)]
    pub cidr_quota: u32,
    /// Blue's kubeconfig context (formerly --blue): read its ENIConfigs and its nodes'
    /// subnets. Without it the plan knows none of blue's ranges.
    #[arg(
        long,
        value_name = "CONTEXT",
        alias = "blue",
        visible_alias = "context"
    )]
    pub from: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE", requires = "from")]
    pub kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Also write the plan (JSON or YAML, by the -o format; JSON for table) to this file,
    /// for `baton network apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct NetworkApplyArgs {
    /// The plan (`baton network plan --out FILE`).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Read the VPC, work out what is left to do, print each AWS request apply would
    /// send, one a line (`ec2    AssociateVpcCidrBlock {"VpcId":…,"CidrBlock":…}`, then
    /// `ec2    CreateSubnet {…}` per subnet, with its tags), and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Also write green's ENIConfig manifests (YAML, for kubectl apply -f) to this file.
    #[arg(long, value_name = "FILE")]
    pub eni_configs: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct MirrorRulesArgs {
    /// Blue's ranges, comma-separated.
    #[arg(
        long,
        value_name = "CIDR,…",
        value_delimiter = ',',
        requires = "to_cidrs",
        conflicts_with = "plan"
    )]
    pub from_cidrs: Vec<ipnet::Ipv4Net>,
    /// Green's ranges, comma-separated.
    #[arg(
        long,
        value_name = "CIDR,…",
        value_delimiter = ',',
        requires = "from_cidrs",
        conflicts_with = "plan"
    )]
    pub to_cidrs: Vec<ipnet::Ipv4Net>,
    /// Take blue's and green's ranges (and the VPC) from a network plan made with --from.
    #[arg(long, value_name = "FILE", required_unless_present = "from_cidrs")]
    pub plan: Option<PathBuf>,
    /// Only this security group (repeatable; default: every group of the VPC).
    #[arg(long = "security-group", value_name = "SG")]
    pub security_groups: Vec<String>,
    /// Only groups of this VPC (default: the plan's; every group without a plan).
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: Option<String>,
    /// Add the rules (without it they are only printed).
    #[arg(long)]
    pub apply: bool,
    /// Print the AWS request --apply would send for each rule, one a line
    /// (`ec2    AuthorizeSecurityGroupIngress {"GroupId":…,"IpPermissions":[…]}`),
    /// instead of the table, and add nothing.
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// With --apply: do not ask for confirmation (required without a terminal).
    #[arg(short, long, requires = "apply")]
    pub yes: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables for people.
    Table,
    /// JSON for scripts.
    Json,
    /// YAML for scripts and review.
    Yaml,
}

/// Blue and green as kubeconfig contexts: `--from`, `--to`, `--kubeconfig`, the same
/// flags for every command that reads both clusters (resolved by
/// [`crate::resolved::Clusters::new`], which refuses one context named twice).
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// Blue's kubeconfig context (the cluster being left).
    #[arg(long, value_name = "CONTEXT")]
    pub from: String,
    /// Green's kubeconfig context (the new cluster).
    #[arg(long, value_name = "CONTEXT")]
    pub to: String,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// Blue alone, for the commands that read only the cluster being left: `--from` and
/// `--kubeconfig`, as in [`ClusterArgs`].
#[derive(Debug, Args, Clone)]
pub struct BlueArgs {
    /// Blue's kubeconfig context (the cluster being left).
    #[arg(
        long,
        value_name = "CONTEXT",
        alias = "blue",
        visible_alias = "context"
    )]
    pub from: String,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// How a migration, a rollback and a commit pace themselves.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Apps worked on at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// Longest wait for one condition (pods gone, volume available, Bound, Ready), e.g.
    /// 10m, 90s or 1h30m (a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub wait_timeout: Duration,
}

/// AWS access: the standard credential chain, with these overrides.
#[derive(Debug, Args, Clone)]
pub struct AwsArgs {
    /// AWS profile (default: the standard chain, AWS_PROFILE).
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region (default: AWS_REGION / the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// Send every AWS call to this URL, as the aws CLI's --endpoint-url does (default:
    /// AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>, or AWS's own endpoints).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

/// Which apps (StatefulSets, Deployments with volumes, standalone claims).
#[derive(Debug, Args, Clone, Default)]
pub struct SelectionArgs {
    /// Only apps in this namespace (repeatable; default: all).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Only apps with this label (KEY=VALUE, repeatable: all must match).
    #[arg(short = 'l', long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// A bound claim that no workload mounts, moved on its own (NS/NAME, repeatable);
    /// without -n or -l, only these are selected. Claims nothing names are also found by
    /// -n/-l; one a pod mounts is refused.
    #[arg(long = "claim", value_name = "NS/NAME", value_parser = parse_claim)]
    pub claims: Vec<(String, String)>,
    /// Also move every bound EBS claim that no workload mounts, each on its own, in the
    /// selected namespaces (all when none): without it, such a claim moves only where -n,
    /// -l or --claim asks for it.
    #[arg(long)]
    pub standalone_claims: bool,
    /// Workloads that stop and start together, in one window (NAME=NS/KIND/NAME,…,
    /// repeatable; KIND is statefulset or deployment). Blue's members stop in the reverse
    /// of this order, green's start in it, each waiting for the one before to be Ready;
    /// rollback undoes the whole group. Members without volumes (a proxy) move too.
    /// Workloads of one namespace sharing an app.kubernetes.io/part-of value with a moving
    /// app form a group by themselves (with volumes first, then by name); declare the order
    /// here when it matters. Without -n or -l, only the groups (and --claim) are selected.
    #[arg(long = "group", value_name = "NAME=NS/KIND/NAME,…", value_parser = parse_group)]
    pub groups: Vec<baton_core::planner::DeclaredGroup>,
    /// Make no group from app.kubernetes.io/part-of (where a chart sets it on every
    /// workload of a release): only --group makes groups.
    #[arg(long)]
    pub no_label_groups: bool,
    /// Allow volumes with EBS multi-attach (you make sure nothing writes from both sides).
    #[arg(long)]
    pub allow_multi_attach: bool,
    /// Create green's PVs for in-tree awsElasticBlockStore volumes in CSI form.
    #[arg(long)]
    pub convert_to_csi: bool,
    /// Move workloads owned by a custom resource of this KIND (repeatable): you have
    /// paused its operator the way it documents, so it will not scale blue back up or
    /// fight the move (baton cannot pause an operator itself).
    #[arg(long = "allow-operator", value_name = "KIND")]
    pub allow_operators: Vec<String>,
    /// The IAM role a cluster's EBS CSI driver runs as (CONTEXT=ARN, repeatable), when its
    /// ServiceAccount kube-system/ebs-csi-controller-sa has no eks.amazonaws.com/role-arn
    /// (EKS Pod Identity) or to override it: its policies decide which tags green's driver
    /// needs on the volumes, which baton sets in the window.
    #[arg(long = "ebs-csi-role", value_name = "CONTEXT=ARN", value_parser = parse_role)]
    pub ebs_csi_roles: Vec<(String, String)>,
}

fn parse_claim(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "expected NS/NAME (a claim's namespace and name), got {s:?}"
        )),
    }
}

fn parse_group(s: &str) -> Result<baton_core::planner::DeclaredGroup, String> {
    use baton_core::world::WorkloadKind;
    let (name, list) = s
        .split_once('=')
        .filter(|(n, l)| !n.is_empty() && !l.is_empty())
        .ok_or_else(|| format!("expected NAME=NS/KIND/NAME,NS/KIND/NAME,…, got {s:?}"))?;
    let mut members = Vec::new();
    for m in list.split(',') {
        let parts: Vec<&str> = m.split('/').collect();
        let [ns, kind, n] = parts[..] else {
            return Err(format!(
                "group {name}: member {m:?} is not NS/KIND/NAME (e.g. db/statefulset/postgres)"
            ));
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            other => {
                return Err(format!(
                    "group {name}: member {m:?} has kind {other:?}; a group's members are statefulsets or deployments"
                ));
            }
        };
        if ns.is_empty() || n.is_empty() {
            return Err(format!(
                "group {name}: member {m:?} lacks a namespace or name"
            ));
        }
        if members
            .iter()
            .any(|(a, _, b): &(String, WorkloadKind, String)| a == ns && b == n)
        {
            return Err(format!("group {name}: {ns}/{n} is named twice"));
        }
        members.push((ns.to_string(), kind, n.to_string()));
    }
    if members.len() < 2 {
        return Err(format!(
            "group {name} has one member; a group is two or more workloads (one alone moves without --group)"
        ));
    }
    Ok(baton_core::planner::DeclaredGroup {
        name: name.to_string(),
        members,
    })
}

fn parse_role(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, arn)) if !c.is_empty() && arn.starts_with("arn:") && arn.contains(":role/") => {
            Ok((c.to_string(), arn.to_string()))
        }
        _ => Err(format!(
            "{s:?} is not CONTEXT=ARN of an IAM role (arn:aws:iam::ACCOUNT:role/NAME)"
        )),
    }
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub clusters: ClusterArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Also write the plan (JSON or YAML, by the -o format; JSON for table) to this file,
    /// for `baton migrate --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The cluster to save: blue.
    #[command(flatten)]
    pub blue: BlueArgs,
    /// A namespace to save (repeatable; default: those of the StatefulSets that move).
    /// Also limits the StatefulSets whose objects count as touched.
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Where to write (default: ./.baton/backup/<context>-<UTC time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also write Secrets (they hold credentials: keep the directory private).
    #[arg(long)]
    pub include_secrets: bool,
    /// Only the objects baton touches, not the rest of the namespaces.
    #[arg(long)]
    pub touched_only: bool,
    /// Also create a Velero Backup (velero.io/v1) of the same namespaces, named
    /// baton-<context>-<UTC time>. Refused (exit 3) when Velero is not installed.
    #[arg(long)]
    pub velero: bool,
    /// The namespace Velero runs in (where its Backups live).
    #[arg(long, value_name = "NS", default_value = "velero", requires = "velero")]
    pub velero_namespace: String,
    /// Follow the Velero Backup's phase until Velero finishes it: exit 0 when Completed,
    /// 1 when PartiallyFailed or Failed (the phase and the counts are printed).
    #[arg(long, requires = "velero")]
    pub wait: bool,
    /// How long --wait follows the Velero Backup before giving up (exit 1; the Backup
    /// goes on), e.g. 1h, 30m or 90s.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration, requires = "wait")]
    pub velero_timeout: Duration,
    /// Output format: the table (what was saved, Velero's progress) for people; with
    /// json or yaml the same lines go to stderr and stdout holds one summary object.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Write nothing and create nothing: say what would be saved and print the request
    /// that would create the Velero Backup, exactly as it would be sent.
    #[arg(long)]
    pub dry_run: bool,
    /// With --velero: do not ask before creating the Velero Backup (required without a
    /// terminal).
    #[arg(short, long, requires = "velero")]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PermissionsArgs {
    /// table (both, by command), json (the IAM policy) or yaml (the ClusterRole).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Only what these commands need (repeatable; matched against the table's command
    /// names, e.g. plan, migrate, backup, network, traffic; default: all).
    #[arg(long = "command", value_name = "NAME")]
    pub commands: Vec<String>,
    /// The ClusterRole's name.
    #[arg(long, value_name = "NAME", default_value = "baton")]
    pub role_name: String,
}

#[derive(Debug, Args)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub clusters: ClusterArgs,
    /// Only the StatefulSets of this namespace are checked as apps to move (repeatable;
    /// default: all). Cluster-wide checks still look at everything.
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// A directory (searched recursively for *.yaml, *.yml, *.json) or file of manifests
    /// to be applied to green: checked for removed API versions. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub manifests: Vec<PathBuf>,
    /// The VPC blue and green must both be in.
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: Option<String>,
    /// Accept Multi-Attach EBS volumes, as `baton migrate --allow-multi-attach` will
    /// (you stop every writer yourself): the multi-attach check then passes.
    #[arg(long)]
    pub allow_multi_attach: bool,
    /// The IAM role a cluster's EBS CSI driver runs as (CONTEXT=ARN, repeatable), as for
    /// `baton plan`: its policies decide the tags baton sets on the volumes in the window.
    #[arg(long = "ebs-csi-role", value_name = "CONTEXT=ARN", value_parser = parse_role)]
    pub ebs_csi_roles: Vec<(String, String)>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Blue and green (required, except with --resume, which reads them from the state
    /// dir).
    #[command(flatten)]
    pub clusters: Option<ClusterArgs>,
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Use a saved plan (refused if the world no longer matches it).
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub plan: Option<PathBuf>,
    /// Print every request the move would send (Kubernetes and EC2), in order, exactly
    /// as it would be sent, and send none.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunArgs,
    /// Apps down at once (blue stopped, green not yet Ready; default: --parallel). The
    /// other apps in progress prepare meanwhile and stop blue when a slot frees, so on
    /// a busy estate each app's window is shorter and fewer services are down together.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_down: Option<u16>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Where the plan, the original manifests and the journal are kept (default:
    /// ./.baton/<from>-to-<to>).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Continue the migration in --state-dir after a crash, kill or Ctrl-C (blue, green
    /// and the plan are the state dir's).
    #[arg(long, requires = "state_dir", conflicts_with_all = ["from", "to", "kubeconfig"])]
    pub resume: bool,
    /// Output format of the final summary.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The migration's state dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The migration's state dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Only this app (NAMESPACE/NAME); default: every app of the migration.
    #[arg(long, value_name = "NS/NAME")]
    pub app: Option<String>,
    /// Print every request rollback would send, in order, and send none.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Output format of the per-app outcome (a dry run prints requests, one a line).
    #[arg(
        short,
        long,
        value_enum,
        default_value = "table",
        conflicts_with = "dry_run"
    )]
    pub output: Output,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The migration's state dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Put each green PV's original reclaim policy back (e.g. Delete).
    #[arg(long)]
    pub restore_reclaim_policy: bool,
    /// Print every request commit would send, in order, and send none.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Output format of the per-app outcome (a dry run prints requests, one a line).
    #[arg(
        short,
        long,
        value_enum,
        default_value = "table",
        conflicts_with = "dry_run"
    )]
    pub output: Output,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Scenario to run: `default` (the 2026 estate: green's EBS CSI driver on the
    /// cluster-scoped IAM policy, one app under a customer KMS key blue's driver alone may
    /// use; every shape of stateful app — StatefulSets, Deployments with volumes, a
    /// standalone claim, a group, apps under Argo CD, Flux and KEDA), `basic` (its three
    /// StatefulSets only), `large` (250 StatefulSets, 1,000 volumes), `xlarge` (1,250
    /// StatefulSets, 5,000 volumes in five namespaces), or a path to a scenario YAML file
    /// (see crates/sim/scenarios/basic.yaml).
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Leave the environment running at the end (until Ctrl-C) and print the env file to
    /// source for kubectl and aws.
    #[arg(long)]
    pub keep: bool,
    /// Where the demo keeps its files: sim/ (kubeconfig, env), network/, preflight.json,
    /// backup/, traffic/, plan.json, migration/, demo.json, report.html. A previous
    /// demo's files there are replaced; a dir holding anything else is refused.
    #[arg(long, value_name = "DIR", default_value = ".baton/demo")]
    pub state_dir: PathBuf,
    /// How many upgrades to run: 2 also deletes blue's node group, releases its subnets,
    /// creates a third cluster (teal) in the space they held, and moves everything again,
    /// green → teal, then retires green.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub cycles: u8,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The state dir to draw: a demo's, a migration's or a traffic shift's.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Where to write the page (default: DIR/report.html). `--out`, not `-o`: elsewhere
    /// `-o` is the output format.
    #[arg(long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run the emulated estate in the foreground until Ctrl-C: moto playing AWS, the
    /// clusters `blue` and `green`, their controllers, seeded with a scenario.
    ///
    /// Writes DIR/kubeconfig (contexts `blue` and `green`), DIR/env (KUBECONFIG,
    /// AWS_ENDPOINT_URL, dummy credentials, region) and DIR/scenario.json (the ids of what
    /// was created), then prints one line when ready. In another shell, `source DIR/env`
    /// points kubectl and aws at it.
    #[command(
        after_help = sim_up_examples!(),
        after_long_help = concat!(sim_up_examples!(), "\n\n", fault_grammar!())
    )]
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
    /// Add a cluster to a running `baton sim up`, in subnets that exist now, seeded as
    /// green was: its apps at 0 replicas.
    ///
    /// As a team runs `eksctl create cluster --with-oidc` into existing subnets: the
    /// cluster's API server (same CA, its own token), its control plane, its EKS record
    /// and IAM OIDC provider, its EBS CSI driver's IAM role as green's (its name and its
    /// `eks-cluster-name` tag naming NAME), NODES-PER-SUBNET nodes in each subnet (EC2
    /// instances tagged `eks:cluster-name=NAME`), the scenario's add-ons and apps (at 0),
    /// its IRSA ServiceAccounts annotated (their roles do not trust NAME until `baton
    /// identity apply`), and green's ALB target groups made for NAME (e.g.
    /// `storefront-NAME`, in no listener). Then context NAME is added to DIR/kubeconfig.
    ///
    /// Refused (exit 3, nothing added): a name already served, a subnet not in EC2 or
    /// not in the estate's VPC, no running `baton sim up` in DIR. A malformed name or
    /// version is a usage error (exit 2). Adding takes a few seconds; `sim up` prints it.
    #[command(
        disable_version_flag = true,
        after_help = "\
Examples:
  # subnets in a free range of the estate's VPC (or those `baton network apply` made):
  VPC=$(jq -r .vpc_id .baton/sim/scenario.json)
  A=$(aws ec2 create-subnet --vpc-id $VPC --availability-zone us-east-1a \\
        --cidr-block 10.2.0.0/20 --query Subnet.SubnetId --output text)
  B=$(aws ec2 create-subnet --vpc-id $VPC --availability-zone us-east-1b \\
        --cidr-block 10.2.16.0/20 --query Subnet.SubnetId --output text)
  baton sim add-cluster teal --version 1.32 --subnets $A,$B
  kubectl --context teal get nodes,sts -A"
    )]
    AddCluster(SimAddClusterArgs),
    /// Delete a cluster's managed node groups in a running `baton sim up`, as `eksctl
    /// delete nodegroup` (or `aws eks delete-nodegroup`) does on EKS.
    ///
    /// The cluster's nodes are cordoned and drained (their pods deleted; their
    /// controllers recreate them Pending, with nowhere to run), their EC2 instances
    /// terminated, the network interfaces in their subnets (each instance's primary one
    /// and the VPC CNI's) deleted with them, and their Node objects removed; pods still
    /// bound to them are force-deleted, as the pod GC does. The cluster's API server keeps
    /// serving (the EKS control plane stays until the cluster is deleted). This is the
    /// step between `baton retire apply` and `baton retire apply --release-subnets`: EC2
    /// refuses to delete a subnet while a network interface is in it, and retire leaves
    /// such a subnet alone.
    ///
    /// Prints one line: how many nodes, instances and network interfaces went. Refused
    /// (exit 3, nothing changed): a cluster the estate does not serve, one without
    /// nodes, no running `baton sim up` in DIR.
    #[command(after_help = "\
Examples:
  baton sim delete-nodegroup blue
  kubectl --context blue get nodes                   # No resources found
  aws ec2 describe-instances --filters Name=tag:eks:cluster-name,Values=blue \\
      --query 'Reservations[].Instances[].State.Name'  # terminated
  baton retire apply --blue blue --green green --release-subnets --yes
                                                     # blue's subnets, no ENI left in them")]
    DeleteNodegroup(SimDeleteNodegroupArgs),
}

#[derive(Debug, Args)]
pub struct SimDeleteNodegroupArgs {
    /// The cluster whose node groups go (its kubeconfig context, e.g. blue).
    #[arg(value_name = "CLUSTER", value_parser = parse_cluster_name)]
    pub cluster: String,
    /// The state dir `baton sim up` was started with.
    #[arg(long, value_name = "DIR", default_value = ".baton/sim")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SimAddClusterArgs {
    /// The new cluster's name and kubeconfig context (lowercase letters, digits, '-').
    #[arg(value_name = "NAME", value_parser = parse_cluster_name)]
    pub name: String,
    /// Its Kubernetes version: 1.32, 1.32.1 or an EKS gitVersion (v1.32.1-eks-8e1d7a4).
    #[arg(long, value_name = "V", value_parser = parse_cluster_version)]
    pub version: String,
    /// The EC2 subnets of its node group, by id, comma-separated (in the estate's VPC).
    #[arg(long, value_name = "ID,…", value_delimiter = ',', required = true)]
    pub subnets: Vec<String>,
    /// Nodes per subnet [default: as green's node groups, 2 in `default`].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=50))]
    pub nodes_per_subnet: Option<u16>,
    /// The nodes' EC2 instance type [default: green's, m6i.xlarge in `default`].
    #[arg(long, value_name = "T")]
    pub instance_type: Option<String>,
    /// The state dir `baton sim up` was started with.
    #[arg(long, value_name = "DIR", default_value = ".baton/sim")]
    pub state_dir: PathBuf,
}

/// A cluster name the emulator takes (`baton_sim::estate::check_name`).
fn parse_cluster_name(s: &str) -> Result<String, String> {
    baton_sim::estate::check_name(s).map(|()| s.to_string())
}

/// A version the emulator reads (`baton_sim::estate::git_version`), kept as typed.
fn parse_cluster_version(s: &str) -> Result<String, String> {
    baton_sim::estate::git_version(s).map(|_| s.to_string())
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
    /// Scenario to seed: `default` (the 2026 estate with every shape of stateful app and
    /// the GitOps and autoscaling controllers that would scale blue back up), `basic` (the
    /// default's three StatefulSets and stateless apps, without the other shapes), `large`
    /// (250 StatefulSets, 1,000 volumes), `xlarge` (1,250 StatefulSets, 5,000 volumes in
    /// five namespaces), or a path to a scenario YAML file.
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Use this AWS endpoint (e.g. a moto you run) instead of starting moto.
    #[arg(long, value_name = "URL")]
    pub aws_endpoint_url: Option<String>,
    /// Serve only the two bare API servers: no moto, no controllers, no scenario.
    #[arg(long, conflicts_with_all = ["scenario", "aws_endpoint_url"])]
    pub bare: bool,
    /// How long seeding may take before giving up, e.g. 5m or 90s (a bare number is
    /// seconds).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub seed_timeout: Duration,
    /// Modelled time for EC2 to attach a volume, e.g. 200ms or 2s.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub attach_delay: Duration,
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "attach_delay")]
    // --attach-delay-ms MS, the flag's old form (milliseconds), hidden.
    pub attach_delay_ms: Option<u64>,
    /// Modelled time for EC2 to detach a volume, e.g. 500ms (real EBS: seconds).
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub detach_delay: Duration,
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "detach_delay")]
    // --detach-delay-ms MS, the flag's old form (milliseconds), hidden.
    pub detach_delay_ms: Option<u64>,
    /// Modelled time from volumes attached to a pod running Ready, e.g. 300ms.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub pod_start_delay: Duration,
    #[arg(
        long,
        value_name = "MS",
        hide = true,
        conflicts_with = "pod_start_delay"
    )]
    // --pod-start-delay-ms MS, the flag's old form (milliseconds), hidden.
    pub pod_start_delay_ms: Option<u64>,
    /// Requests per second the emulated clients send to the scenario's ALB, whose
    /// CloudWatch metrics the bed publishes from them (overrides the scenario's
    /// `alb.requests_per_second`); 0: no clients, the ALB publishes nothing.
    #[arg(long, value_name = "N", conflicts_with = "bare")]
    pub alb_requests_per_second: Option<f64>,
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
    /// Modelled time for a deleted pod's containers to stop, e.g. 500ms.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub pod_stop_delay: Duration,
    #[arg(
        long,
        value_name = "MS",
        hide = true,
        conflicts_with = "pod_stop_delay"
    )]
    // --pod-stop-delay-ms MS, the flag's old form (milliseconds), hidden.
    pub pod_stop_delay_ms: Option<u64>,
}

/// The command tree as `--help`, usage lines and errors show it: named `kubectl baton` when
/// kubectl started baton as its plugin, `baton` otherwise.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    if argv0.is_some_and(|a| is_plugin_name(&a)) {
        cmd.bin_name("kubectl baton")
    } else {
        cmd
    }
}

/// Whether baton was started by the name kubectl gives its plugin: `kubectl-baton`, the
/// shim `cargo install` puts beside baton (which execs baton with that argv[0]) or the
/// link krew makes to baton itself. kubectl passes the plugin's path as argv[0].
fn is_plugin_name(argv0: &std::path::Path) -> bool {
    argv0.file_stem().is_some_and(|s| s == "kubectl-baton")
}

/// Parses the command line as [`command`] names it; clap's own errors (and `--help`,
/// `--version`) print and exit here, as `Cli::parse` would.
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let mut cmd = command();
    Cli::from_arg_matches_mut(&mut cmd.clone().get_matches())
        .map_err(|e| e.format(&mut cmd))
        .unwrap_or_else(|e| e.exit())
}

/// A command-line error found after parsing (what only another flag, the scenario or the
/// terminal can refute), shaped like clap's own: it names the problem, prints the usage
/// line of the command at `path` (e.g. `["sim", "up"]`) and exits 2.
pub fn usage_error(path: &[&str], message: impl std::fmt::Display) -> Expected {
    let mut cmd = command();
    cmd.build();
    for name in path {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub.clone(),
            None => break,
        }
    }
    Expected::Usage(cmd.error(clap::error::ErrorKind::ValueValidation, message.to_string()))
}

#[derive(Debug, Subcommand)]
pub enum RetireCommand {
    /// Prove blue idle and nothing depending on it, and print what `retire apply` would
    /// remove and why each item is safe (reads only).
    ///
    /// Checks, each with its evidence: every traffic shift journaled under --state-dir
    /// away from blue's target groups completed; blue's groups (those its
    /// TargetGroupBindings fill, those a shift moved from, and --target-group) carry
    /// weight 0 on every listener and rule that forwards to them; CloudWatch counted no
    /// request to them for --quiet-for (never less than a group's deregistration delay);
    /// every migration from blue journaled under --state-dir is committed; no PV in blue
    /// is bound to a live EBS volume; green holds blue's security-group access, the IAM
    /// trusts of blue's pods' roles and a binding for each of blue's. It lists the fences
    /// commit kept paused in blue, with the change to make where they come from. A
    /// blocking item exits 3, naming it and the fix.
    #[command(after_help = "\
Examples:
  baton retire plan --blue blue --green green
  baton retire plan --blue blue --green green --quiet-for 30m -o json")]
    Plan(RetireArgs),
    /// Remove blue's footprint, once `retire plan` passes: blue's TargetGroupBindings
    /// first (its controller deregisters their targets), blue's CIDRs from rules that
    /// admit green's too, blue's statements from trust policies that trust green too,
    /// blue's weight-0 target groups from listener actions; with --delete-target-groups
    /// the groups too, once empty; with --release-subnets blue's subnets no network
    /// interface uses and CIDR blocks left empty (never the primary).
    ///
    /// Never an EBS volume, a cluster or a node group: it prints the command that
    /// deletes blue's cluster. Each request is journaled before and after in
    /// --state-dir/retire/BLUE/retire.jsonl; a run again plans afresh and sends only what
    /// is left, so an interrupted run is resumed by running it again. --dry-run prints
    /// each request as it would be sent and changes nothing. Asks on a terminal; --yes
    /// without one.
    #[command(after_help = "\
Examples:
  baton retire apply --blue blue --green green --dry-run
  baton retire apply --blue blue --green green --yes
  baton retire apply --blue blue --green green --release-subnets --delete-target-groups --yes")]
    Apply(RetireApplyArgs),
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// Blue's kubeconfig context (the cluster to retire).
    #[arg(long, value_name = "CONTEXT", visible_alias = "from")]
    pub blue: String,
    /// Green's kubeconfig context (the cluster that took over).
    #[arg(long, value_name = "CONTEXT", visible_alias = "to")]
    pub green: String,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// How long blue's target groups must have served no request (e.g. 15m, 30s); at
    /// least each group's deregistration delay, which is used when longer.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub quiet_for: Duration,
    /// Another of blue's target groups to check and retire (repeatable; ARN).
    #[arg(long = "target-group", value_name = "ARN")]
    pub target_groups: Vec<String>,
    /// Where baton's other commands keep their state dirs (migrations' and traffic
    /// shifts' journals are read from under it); retire journals in DIR/retire/BLUE.
    #[arg(long, value_name = "DIR", default_value = ".baton")]
    pub state_dir: PathBuf,
    /// Also release blue's subnets that no network interface uses, and the VPC CIDR
    /// blocks they leave empty (never the primary block).
    #[arg(long)]
    pub release_subnets: bool,
    /// Also delete blue's target groups once no listener forwards to them and their
    /// targets are gone.
    #[arg(long)]
    pub delete_target_groups: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct RetireApplyArgs {
    #[command(flatten)]
    pub plan: RetireArgs,
    /// Print each request it would send, one a line, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(short, long)]
    pub yes: bool,
}
