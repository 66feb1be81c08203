//! The demo's steps: their order (data, [`ORDER`]) and what each does. A step that is a
//! baton command runs it through [`Baton`]; its one-line outcome is read back from the
//! files the command wrote (plans, journals), not from its printed text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use baton_core::journal::Summary;
use baton_core::plan::Plan;
use baton_core::preflight::{Outcome as PreflightOutcome, Report, Severity};
use baton_core::traffic::machine::{self as shift, Outcome as ShiftOutcome};
use baton_kube::KubeconfigSource;
use baton_sim::controllers::Delays;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::scenario::{self, Scenario, Seeded};
use kube::api::{Api, DynamicObject, PostParams};

use super::child::{Baton, args};
use super::stateless;
use super::{summary, verify};
use crate::args::DemoArgs;
use crate::commands::files::{read_json, read_lines};
use crate::commands::report::record::{
    self, DemoRecord, Finding, Fingerprint, Invariant, VolumeRecord, group,
};
use crate::commands::show::{self, plural};

/// The steps, in the seed's order: green's network first, then checks and a backup
/// before anything moves, traffic before data, commit last, then the proof.
pub const ORDER: [Step; 16] = [
    Step::Environment,
    Step::NetworkPlan,
    Step::NetworkApply,
    Step::MirrorRules,
    Step::VolumesGrant,
    Step::Identity,
    Step::Bindings,
    Step::Preflight,
    Step::Backup,
    Step::GreenStateless,
    Step::TrafficShift,
    Step::StatefulPlan,
    Step::Migrate,
    Step::Commit,
    Step::Verify,
    Step::Retire,
];

/// Where `baton volumes grant -o json`'s output is kept in the state dir.
pub const GRANTS_FILE: &str = "volumes-grant.json";

/// Where `baton identity apply -o json`'s output is kept in the state dir.
pub const IDENTITY_FILE: &str = "identity.json";
/// Where `baton traffic bindings --apply -o json`'s output is kept in the state dir.
pub const BINDINGS_FILE: &str = "bindings.json";
/// Where the second cycle's network plan is written.
const NEXT_PLAN_FILE: &str = "network/teal-plan.json";
/// Where `baton retire plan -o json` and `retire apply -o json` go.
const RETIRE_PLAN_FILE: &str = "retire-plan.json";
const RETIRE_FILE: &str = "retire.json";
/// The longest the demo waits for blue's target group to be quiet (its deregistration
/// delay, plus CloudWatch's reach).
const RETIRE_QUIET_WAIT: Duration = Duration::from_secs(120);
/// Where the preflight report is kept in the state dir (`baton report` shows it).
pub const PREFLIGHT_FILE: &str = "preflight.json";
/// Where `network apply -o json` and `network mirror-rules -o json` go.
const APPLIED_FILE: &str = "network/applied.json";
const MIRRORED_FILE: &str = "network/mirror-rules.json";
/// Traffic steps (green's percentage) and how long each runs before its gate.
const TRAFFIC_STEPS: &str = "10,25,50,100";
const TRAFFIC_INTERVAL: &str = "3s";
/// How often running pods write their data fingerprint to EC2 in the demo (the
/// emulator's default is 30 s): the end check waits for one write.
const FINGERPRINT_FLUSH: Duration = Duration::from_secs(2);

/// One step of the story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// moto, blue and green, seeded with the scenario.
    Environment,
    /// `baton network plan`.
    NetworkPlan,
    /// `baton network apply`, and green's ENIConfigs applied.
    NetworkApply,
    /// `baton network mirror-rules --apply`.
    MirrorRules,
    /// `baton volumes grant`.
    VolumesGrant,
    /// `baton identity apply`.
    Identity,
    /// `baton traffic bindings --apply`.
    Bindings,
    /// `baton preflight`.
    Preflight,
    /// `baton backup`.
    Backup,
    /// Green's stateless apps rolled out and registered; clients start.
    GreenStateless,
    /// `baton traffic shift`.
    TrafficShift,
    /// `baton plan`.
    StatefulPlan,
    /// `baton migrate`.
    Migrate,
    /// `baton commit`.
    Commit,
    /// The invariants, read from the world.
    Verify,
    /// `baton retire plan` once blue is quiet, then `baton retire apply`.
    Retire,
    /// Cycle 2: blue's node group deleted, as `eksctl delete nodegroup` does.
    DeleteNodeGroup,
    /// Cycle 2: `baton retire apply --release-subnets`.
    ReleaseSubnets,
    /// Cycle 2: `baton network plan|apply` for teal, from green, in the space blue freed.
    NextNetwork,
    /// Cycle 2: teal created in those subnets, as `eksctl create cluster` does.
    AddCluster,
    /// Cycle 2: green → teal, the whole hand-over and move, committed.
    NextMove,
    /// Cycle 2: green retired.
    NextRetire,
    /// Cycle 2: the invariants across both moves.
    NextVerify,
}

/// The second cycle's steps: green becomes the next blue, teal the next green.
pub const NEXT_CYCLE: [Step; 7] = [
    Step::DeleteNodeGroup,
    Step::ReleaseSubnets,
    Step::NextNetwork,
    Step::AddCluster,
    Step::NextMove,
    Step::NextRetire,
    Step::NextVerify,
];

/// The steps of `cycles` cycles (1 or 2).
pub fn order(cycles: u8) -> Vec<Step> {
    let mut steps = ORDER.to_vec();
    if cycles >= 2 {
        steps.extend(NEXT_CYCLE);
    }
    steps
}

/// The third cluster of the second cycle.
const NEXT: &str = "teal";
/// Its Kubernetes version.
const NEXT_VERSION: &str = "v1.33.1-eks-0a1b2c3";

impl Step {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::NetworkPlan => "network plan",
            Self::NetworkApply => "network apply",
            Self::MirrorRules => "database rules",
            Self::VolumesGrant => "volume keys",
            Self::Identity => "pod identities",
            Self::Bindings => "target group bindings",
            Self::Preflight => "preflight",
            Self::Backup => "backup",
            Self::GreenStateless => "green's stateless apps",
            Self::TrafficShift => "traffic shift",
            Self::StatefulPlan => "stateful plan",
            Self::Migrate => "stateful move",
            Self::Commit => "commit",
            Self::Verify => "final check",
            Self::Retire => "retire blue",
            Self::DeleteNodeGroup => "blue's node group",
            Self::ReleaseSubnets => "blue's subnets",
            Self::NextNetwork => "teal's network",
            Self::AddCluster => "teal",
            Self::NextMove => "green → teal",
            Self::NextRetire => "retire green",
            Self::NextVerify => "final check of both cycles",
        }
    }

    /// What it does, in a line.
    pub fn about(self) -> &'static str {
        match self {
            Self::Environment => {
                "start moto (AWS) and the clusters blue and green, seed the scenario"
            }
            Self::NetworkPlan => "find room in blue's VPC for green's nodes and pods",
            Self::NetworkApply => "create green's subnets (and CIDR blocks), apply its ENIConfigs",
            Self::MirrorRules => "give green the security-group access blue has (the database)",
            Self::VolumesGrant => {
                "let green's EBS CSI driver use the KMS keys of blue's volumes (before the move, never in it)"
            }
            Self::Identity => {
                "make the IAM roles blue's pods assume trust green's OIDC issuer too (before green's apps start)"
            }
            Self::Bindings => {
                "give green a TargetGroupBinding into its own target group for each of blue's"
            }
            Self::Preflight => "read-only checks of blue and green before anything moves",
            Self::Backup => "save every manifest the move touches",
            Self::GreenStateless => {
                "green's target group bindings, then its stateless apps, registered by its controller"
            }
            Self::TrafficShift => "move the ALB's traffic to green in gated steps",
            Self::StatefulPlan => {
                "plan every stateful app's move (workloads, claims, groups) on its own EBS volumes"
            }
            Self::Migrate => "move every stateful app to green on the same volumes",
            Self::Commit => "retire blue's claims and PVs (the volumes stay, in green)",
            Self::Verify => {
                "blue serves nothing and holds no volume; every volume's data continued"
            }
            Self::Retire => {
                "prove blue idle once its target group is quiet, then remove its rules, trusts, bindings and listener entry"
            }
            Self::DeleteNodeGroup => {
                "delete blue's node group, as `eksctl delete nodegroup` would (baton never deletes a cluster or node group)"
            }
            Self::ReleaseSubnets => {
                "release blue's subnets, now unused, and the CIDR block they leave empty"
            }
            Self::NextNetwork => {
                "plan and create the next cluster's subnets, from green, in the space blue freed"
            }
            Self::AddCluster => "create teal in those subnets, as `eksctl create cluster` would",
            Self::NextMove => {
                "the next upgrade: green's rules, keys, identity, bindings, traffic and every app handed to teal, committed"
            }
            Self::NextRetire => {
                "prove green idle, then remove its rules, trusts, bindings and listener entry"
            }
            Self::NextVerify => {
                "every volume's data continued across both moves; nothing of blue left in rules, trusts, bindings or subnets"
            }
        }
    }
}

/// How a step ended, in a line.
#[derive(Debug)]
pub enum Outcome {
    /// It did this.
    Done(String),
    /// It did not run, for this reason.
    Skipped(String),
}

/// The running demo: its estate, the files it wrote, what it learnt on the way.
#[derive(Debug)]
pub struct Demo {
    /// The run's record (`demo.json`).
    pub record: DemoRecord,
    dir: PathBuf,
    scenario_name: String,
    env: Option<Env>,
    /// Green's target group and the requests the bed's ALB had served it when green's
    /// apps came up.
    green_served: Option<(String, u64)>,
    /// The second cycle: teal's subnets, as network apply made them.
    next_subnets: Vec<String>,
    /// The volumes' fingerprints after the first cycle.
    first_cycle: BTreeMap<String, Fingerprint>,
    plan: Option<Plan>,
    volumes: Vec<VolumeRecord>,
    /// (object, check) of every preflight finding.
    preflight_checks: Vec<(String, String)>,
}

/// The started estate and how to reach it.
struct Env {
    estate: Estate,
    scenario: Scenario,
    seeded: Seeded,
    baton: Baton,
    blue: kube::Client,
    green: kube::Client,
    /// The second cycle's next cluster, once made.
    next: Option<kube::Client>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("estate", &self.estate)
            .field("seeded", &self.seeded)
            .finish_non_exhaustive()
    }
}

/// The running estate, once the first step started it.
fn running(env: &Option<Env>) -> anyhow::Result<&Env> {
    env.as_ref().context("the environment is not running")
}

impl Demo {
    /// A demo about to start.
    pub fn new(args: &DemoArgs, dir: &Path) -> Self {
        Self {
            record: DemoRecord {
                scenario: args.scenario.clone(),
                started: jiff::Timestamp::now().to_string(),
                ..DemoRecord::default()
            },
            dir: dir.to_path_buf(),
            scenario_name: args.scenario.clone(),
            env: None,
            green_served: None,
            next_subnets: Vec::new(),
            first_cycle: BTreeMap::new(),
            plan: None,
            volumes: Vec::new(),
            preflight_checks: Vec::new(),
        }
    }

    /// Saves `demo.json` (a failure to is reported, not fatal: the run goes on).
    pub fn save(&self) {
        if let Err(e) = self.record.save(&self.dir) {
            outln!("  (demo.json not saved: {e:#})");
        }
    }

    /// The env file of the running estate.
    pub fn env_file(&self) -> Option<PathBuf> {
        self.env.as_ref().map(|_| self.dir.join("sim/env"))
    }

    /// The command lines the last step ran.
    pub fn take_commands(&self) -> Vec<String> {
        self.env
            .as_ref()
            .map(|e| e.baton.take_shown())
            .unwrap_or_default()
    }

    /// Whether the estate is running.
    pub fn is_up(&self) -> bool {
        self.env.is_some()
    }

    /// Stops the estate (its ALB's clients with it).
    pub async fn shutdown(&mut self) {
        if let Some(env) = self.env.take() {
            env.estate.shutdown().await;
        }
    }

    /// Runs one step.
    pub async fn run(&mut self, step: Step) -> anyhow::Result<Outcome> {
        match step {
            Step::Environment => self.environment().await,
            Step::NetworkPlan => self.network_plan().await,
            Step::NetworkApply => self.network_apply().await,
            Step::MirrorRules => self.mirror_rules().await,
            Step::VolumesGrant => self.volumes_grant().await,
            Step::Identity => self.identity().await,
            Step::Bindings => self.bindings().await,
            Step::Preflight => self.preflight().await,
            Step::Backup => self.backup().await,
            Step::GreenStateless => self.green_stateless().await,
            Step::TrafficShift => self.traffic_shift().await,
            Step::StatefulPlan => self.stateful_plan().await,
            Step::Migrate => self.migrate().await,
            Step::Commit => self.commit().await,
            Step::Verify => self.verify().await,
            Step::Retire => self.retire().await,
            Step::DeleteNodeGroup => self.delete_node_group().await,
            Step::ReleaseSubnets => self.release_subnets().await,
            Step::NextNetwork => self.next_network().await,
            Step::AddCluster => self.add_cluster().await,
            Step::NextMove => self.next_move().await,
            Step::NextRetire => self.next_retire().await,
            Step::NextVerify => self.next_verify().await,
        }
    }

    async fn environment(&mut self) -> anyhow::Result<Outcome> {
        let scenario = Scenario::load(&self.scenario_name)?;
        let sim = self.dir.join("sim");
        std::fs::create_dir_all(&sim)
            .with_context(|| format!("failed to create {}", sim.display()))?;
        let estate = Estate::start(EstateOptions {
            clusters: scenario.cluster_specs(),
            delays: Delays {
                fingerprint_flush: FINGERPRINT_FLUSH,
                ..Delays::default()
            },
            ..EstateOptions::default()
        })
        .await?;
        let kubeconfig = sim.join("kubeconfig");
        let exports = estate.env_exports(&kubeconfig);
        crate::commands::sim::write_files(&estate.server, &kubeconfig, &sim.join("env"), &exports)?;
        outln!(
            "  moto and the fault proxy at {}\n  clusters {}",
            estate.aws_endpoint,
            crate::commands::sim::summary(&estate.server)
        );
        outln!("  seeding the scenario (VPC, nodes, apps, ALB, database security group)…");
        let seeded = match scenario::seed(&estate, &scenario, Duration::from_secs(300)).await {
            Ok(s) => s,
            Err(e) => {
                estate.shutdown().await;
                return Err(e.into());
            }
        };
        crate::commands::files::write_json(&sim.join("scenario.json"), &seeded)?;
        let source = KubeconfigSource::file(&kubeconfig);
        let blue = source.client("blue").await?;
        let green = source.client("green").await?;
        let baton = Baton::new(&exports, &self.dir)?;
        let done = format!(
            "scenario {:?} seeded in {}: VPC {}, {}, ALB {}",
            seeded.scenario,
            show::secs(seeded.seconds),
            seeded.vpc_id,
            plural(seeded.nodes.values().map(Vec::len).sum::<usize>(), "node"),
            if seeded.listener_arn.is_some() {
                "forwarding to blue"
            } else {
                "none"
            }
        );
        self.env = Some(Env {
            estate,
            scenario,
            seeded,
            baton,
            blue,
            green,
            next: None,
        });
        Ok(Outcome::Done(done))
    }

    async fn network_plan(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (green, azs, nodes, pods, instance_type) = sizing(env)?;
        std::fs::create_dir_all(self.dir.join("network"))?;
        let mut a = args([
            "network",
            "plan",
            "--vpc",
            &env.seeded.vpc_id,
            "--cluster-name",
            &green,
            "--azs",
            &azs,
            "--nodes",
            &nodes,
            "--pods",
            &pods,
            "--instance-type",
            &instance_type,
            "--custom-networking",
            "--out",
            "network/plan.json",
        ]);
        if let Some(blue) = env.scenario.clusters.first() {
            a.extend(args(["--from", &blue.name]));
        }
        env.baton.ok(&a).await?;
        let plan: serde_json::Value = read_json(&self.dir.join("network/plan.json"))?;
        let count = |k: &str| plan[k].as_array().map_or(0, Vec::len);
        Ok(Outcome::Done(format!(
            "plan {}: {} to create, {} to associate, for {nodes} nodes and {pods} pods in {azs}",
            plan["id"].as_str().unwrap_or("?"),
            plural(count("subnets"), "subnet"),
            plural(count("new_blocks"), "CIDR block"),
        )))
    }

    async fn network_apply(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let ran = env
            .baton
            .run_to_file(
                &args([
                    "network",
                    "apply",
                    "--plan",
                    "network/plan.json",
                    "--yes",
                    "--eni-configs",
                    "network/eniconfigs.yaml",
                    "-o",
                    "json",
                ]),
                APPLIED_FILE,
            )
            .await?;
        if ran.code != Some(0) {
            bail!("`baton network apply` exited {:?}", ran.code);
        }
        let applied: serde_json::Value =
            serde_json::from_str(&ran.stdout).context("failed to read network apply's output")?;
        let ids = |key: &str| -> Vec<(String, String)> {
            applied[key]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(cidr, id)| (cidr.clone(), id.as_str().unwrap_or("?").to_string()))
                .collect()
        };
        let (created, already) = (ids("created"), ids("already_created"));
        outln!("  {APPLIED_FILE}, in short:");
        for (what, list) in [("created", &created), ("already there", &already)] {
            for (cidr, id) in list {
                outln!("    subnet {id}  {cidr:<16}  {what}");
            }
        }
        // What `kubectl --context green apply -f network/eniconfigs.yaml` does.
        let text = std::fs::read_to_string(self.dir.join("network/eniconfigs.yaml"))
            .context("failed to read the ENIConfig manifests")?;
        let resource = baton_kube::network::eni_config_resource();
        let api = Api::<DynamicObject>::all_with(env.green.clone(), &resource);
        let mut applied = 0;
        for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
            let obj: DynamicObject =
                serde_saphyr::from_str(doc).context("failed to parse an ENIConfig manifest")?;
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => applied += 1,
                Err(kube::Error::Api(s)) if s.code == 409 => applied += 1,
                Err(e) => {
                    return Err(e).context("failed to create an ENIConfig in green");
                }
            }
        }
        outln!(
            "  network/eniconfigs.yaml applied to green (as `kubectl --context green apply -f` would): {}",
            plural(applied, "ENIConfig")
        );
        Ok(Outcome::Done(format!(
            "{} created, {} already there; {} in green name them",
            plural(created.len(), "subnet"),
            already.len(),
            plural(applied, "ENIConfig")
        )))
    }

    async fn mirror_rules(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let ran = env
            .baton
            .run_to_file(
                &args([
                    "network",
                    "mirror-rules",
                    "--plan",
                    "network/plan.json",
                    "--apply",
                    "--yes",
                    "-o",
                    "json",
                ]),
                MIRRORED_FILE,
            )
            .await?;
        let mirrored: serde_json::Value =
            serde_json::from_str(&ran.stdout).context("failed to read mirror-rules' output")?;
        let mut added = 0;
        if ran.code != Some(0) {
            bail!("`baton network mirror-rules` exited {:?}", ran.code);
        }
        outln!("  {MIRRORED_FILE}, in short:");
        let mut rules = 0;
        for m in mirrored.as_array().into_iter().flatten() {
            let name = m["group_name"]
                .as_str()
                .or(m["group_id"].as_str())
                .unwrap_or("?");
            let port = match (m["from_port"].as_i64(), m["to_port"].as_i64()) {
                (Some(f), Some(t)) if f == t => format!("port {f}"),
                (Some(f), Some(t)) => format!("ports {f}-{t}"),
                _ => "every port".into(),
            };
            let cidrs: Vec<&str> = m["add"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .collect();
            let said = format!(
                "{port} now admits green's {} too: {}",
                plural(cidrs.len(), "range"),
                cidrs.join(", ")
            );
            outln!(
                "    {}",
                show::wrap(
                    &format!("security group {name}, {said}"),
                    4,
                    "      ",
                    show::width()
                )
            );
            rules += 1;
            added += cidrs.len();
            self.record.findings.push(Finding {
                step: Step::MirrorRules.name().into(),
                severity: "info".into(),
                object: format!("security group {name}"),
                message: said,
                fix: None,
            });
        }
        Ok(Outcome::Done(format!(
            "{} gained {} of green's",
            plural(rules, "security-group rule"),
            plural(added, "range")
        )))
    }

    async fn bindings(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let bound = env
            .scenario
            .alb
            .iter()
            .flat_map(|a| &a.target_groups)
            .any(|t| t.binding.is_some());
        if !bound {
            return Ok(Outcome::Skipped(
                "blue registers no target group through a TargetGroupBinding".into(),
            ));
        }
        // Green's load balancer controller registers green's pods once green has a
        // binding for each of blue's (and, for ip targets, new pods wait for theirs).
        let after =
            blue_to_green_json(env, &["traffic", "bindings", "--apply"], BINDINGS_FILE).await?;
        let made = after["bindings"].as_array().cloned().unwrap_or_default();
        if made.is_empty() {
            return Ok(Outcome::Skipped("blue has no TargetGroupBinding".into()));
        }
        outln!("  {BINDINGS_FILE}, in short:");
        for b in &made {
            let short = |k: &str| {
                b[k].as_str()
                    .and_then(|a| a.split('/').nth(1))
                    .unwrap_or("?")
                    .to_string()
            };
            outln!(
                "    {} (Service {}): {} → {}",
                b["binding"].as_str().unwrap_or("?"),
                b["service"].as_str().unwrap_or("?"),
                short("blue_target_group"),
                short("green_target_group")
            );
        }
        Ok(Outcome::Done(format!(
            "green has {} into its own target groups",
            plural(made.len(), "TargetGroupBinding")
        )))
    }

    async fn identity(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let after = blue_to_green_json(env, &["identity", "apply"], IDENTITY_FILE).await?;
        let roles = after["roles"].as_array().cloned().unwrap_or_default();
        if roles.is_empty() {
            return Ok(Outcome::Skipped(
                "no ServiceAccount of blue's apps names an IAM role".into(),
            ));
        }
        outln!("  {IDENTITY_FILE}, in short:");
        outln!(
            "    green's IAM OIDC provider {}",
            after["provider"]
                .as_str()
                .and_then(|p| p.split_once(":oidc-provider/"))
                .map_or("?", |(_, host)| host)
        );
        for r in &roles {
            outln!(
                "    role {} ({}): {}",
                r["role"]
                    .as_str()
                    .and_then(|r| r.rsplit_once('/'))
                    .map_or("?", |(_, name)| name),
                r["service_accounts"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default(),
                r["green"].as_str().unwrap_or("?")
            );
        }
        let sent = std::fs::read_to_string(self.dir.join(".baton/identity/identity.jsonl"))
            .map(|j| {
                j.lines()
                    .filter(|l| l.contains("\"event\":\"sent\""))
                    .count()
            })
            .unwrap_or(0);
        Ok(Outcome::Done(format!(
            "{} trust green's OIDC issuer beside blue's ({} sent)",
            plural(roles.len(), "IAM role"),
            plural(sent, "IAM request")
        )))
    }

    async fn volumes_grant(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let report = blue_to_green_json(env, &["volumes", "grant"], GRANTS_FILE).await?;
        let keys = report["keys"].as_array().cloned().unwrap_or_default();
        outln!("  {GRANTS_FILE}, in short:");
        let mut granted = 0;
        for k in &keys {
            let action = k["action"].as_str().unwrap_or("?");
            granted += usize::from(action == "granted");
            outln!(
                "    {} ({}): {action}{}",
                k["key"].as_str().unwrap_or("?"),
                plural(k["volumes"].as_array().map_or(0, Vec::len), "volume"),
                k["grant_id"]
                    .as_str()
                    .map(|g| format!(" (grant {g})"))
                    .unwrap_or_default()
            );
        }
        if keys.is_empty() {
            return Ok(Outcome::Skipped(
                "no volume is under a customer-managed KMS key green's driver cannot use".into(),
            ));
        }
        Ok(Outcome::Done(format!(
            "{} for green's EBS CSI driver role {}",
            plural(granted, "KMS grant"),
            report["role"].as_str().unwrap_or("?")
        )))
    }

    async fn preflight(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (blue, green) = cluster_names(env);
        let ran = env
            .baton
            .run_to_file(
                &args([
                    "preflight",
                    "--from",
                    &blue,
                    "--to",
                    &green,
                    "--vpc",
                    &env.seeded.vpc_id,
                    "-o",
                    "json",
                ]),
                PREFLIGHT_FILE,
            )
            .await?;
        // Its own exit codes: 0 pass, 1 warnings (read them, go on), 2 failures, 3 could
        // not check.
        let report: Report = serde_json::from_str(&ran.stdout)
            .with_context(|| format!("preflight exited {:?} without a report", ran.code))?;
        let mine: Vec<Finding> = report
            .findings
            .iter()
            .map(|f| Finding {
                step: Step::Preflight.name().into(),
                severity: f.severity.as_str().into(),
                object: f.object.clone(),
                message: format!("{} ({})", f.problem, f.check),
                fix: Some(f.fix.clone()),
            })
            .collect();
        outln!(
            "  {PREFLIGHT_FILE}, in short (exit {}; the same findings grouped):",
            ran.code.map_or("on a signal".into(), |c| c.to_string())
        );
        out!("{}", record::text(&group(&mine), false, show::width()));
        for u in &report.unchecked {
            outln!("  not checked: {}: {}", u.check, u.reason);
        }
        self.preflight_checks.extend(
            report
                .findings
                .iter()
                .map(|f| (f.object.clone(), f.check.clone())),
        );
        self.record.findings.extend(mine);
        let count = |sev: Severity| report.findings.iter().filter(|f| f.severity == sev).count();
        let said = format!(
            "{}: {}, {}, {}, {} unchecked",
            format!("{:?}", report.outcome).to_lowercase(),
            plural(count(Severity::Fail), "failure"),
            plural(count(Severity::Warn), "warning"),
            plural(count(Severity::Info), "note"),
            report.unchecked.len()
        );
        match report.outcome {
            PreflightOutcome::Pass | PreflightOutcome::Warnings => Ok(Outcome::Done(said)),
            PreflightOutcome::Failures | PreflightOutcome::Unchecked => {
                bail!("preflight says stop: {said}")
            }
        }
    }

    async fn backup(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (blue, _) = cluster_names(env);
        env.baton
            .ok(&args(["backup", "--from", &blue, "--out", "backup"]))
            .await?;
        let index: serde_json::Value = read_json(&self.dir.join("backup/index.yaml"))?;
        let objects = index["objects"].as_array().map_or(0, Vec::len);
        Ok(Outcome::Done(format!(
            "{} of blue saved in backup/ (index.yaml)",
            plural(objects, "object")
        )))
    }

    async fn green_stateless(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (Some(alb), Some(_)) = (&env.scenario.alb, &env.seeded.listener_arn) else {
            return Ok(Outcome::Skipped(
                "the scenario has no ALB: there is no traffic to shift".into(),
            ));
        };
        let green_name = &env.scenario.clusters[1].name;
        let mut done = Vec::new();
        let mut green_tg = None;
        for tg in alb
            .target_groups
            .iter()
            .filter(|t| &t.cluster == green_name)
        {
            let scaled = stateless::roll_out(&env.blue, &env.green, &tg.namespace).await?;
            let want = scaled
                .iter()
                .filter(|(_, _, app)| app.as_deref() == Some(tg.app.as_str()))
                .map(|(_, r, _)| usize::try_from(*r).unwrap_or(0))
                .sum::<usize>()
                .max(1);
            let arn = env
                .seeded
                .target_groups
                .get(&tg.name)
                .with_context(|| format!("target group {} was not seeded", tg.name))?;
            let ips =
                stateless::healthy_targets(&env.estate.aws, arn, want, Duration::from_secs(120))
                    .await
                    .with_context(|| {
                        format!(
                            "green's load balancer controller did not register its pods in {}",
                            tg.name
                        )
                    })?;
            outln!(
                "  green: {} scaled up; its controller registered {} in {}",
                scaled
                    .iter()
                    .map(|(n, r, _)| format!("{}/{n} to {r}", tg.namespace))
                    .collect::<Vec<_>>()
                    .join(", "),
                ips.join(", "),
                tg.name
            );
            done.push(format!("{} in {}", plural(ips.len(), "target"), tg.name));
            green_tg = Some(arn.clone());
        }
        let green_tg = green_tg.context("the scenario's ALB has no target group of green's")?;
        outln!(
            "  clients: {} requests/s through the listener since seeding (the bed's); the ALB publishes each group's share to CloudWatch",
            alb.requests_per_second
                .unwrap_or(baton_sim::traffic::DEFAULT_REQUESTS_PER_SECOND)
        );
        let served = env.estate.traffic.served(&green_tg);
        self.green_served = Some((green_tg, served));
        Ok(Outcome::Done(done.join(", ")))
    }

    /// Blue's and green's target groups of the scenario's ALB.
    fn groups(env: &Env) -> Option<(String, String, String)> {
        let alb = env.scenario.alb.as_ref()?;
        let blue = &env.scenario.clusters.first()?.name;
        let green = &env.scenario.clusters.get(1)?.name;
        let arn = |cluster: &str| {
            alb.target_groups
                .iter()
                .find(|t| t.cluster == cluster)
                .and_then(|t| env.seeded.target_groups.get(&t.name).cloned())
        };
        Some((env.seeded.listener_arn.clone()?, arn(blue)?, arn(green)?))
    }

    async fn traffic_shift(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let Some((listener, blue, green)) = Self::groups(env) else {
            return Ok(Outcome::Skipped(
                "the scenario has no ALB with a target group for each cluster".into(),
            ));
        };
        let ran = env
            .baton
            .run(&args([
                "traffic",
                "shift",
                "--listener",
                &listener,
                "--from-tg",
                &blue,
                "--to-tg",
                &green,
                "--steps",
                TRAFFIC_STEPS,
                "--interval",
                TRAFFIC_INTERVAL,
                "--min-healthy",
                "1",
                "--max-5xx-ratio",
                "0.01",
                "--min-requests",
                "50",
                "--state-dir",
                "traffic",
                "--yes",
            ]))
            .await?;
        if let Some((green_tg, before)) = &self.green_served {
            let served = env.estate.traffic.served(green_tg).saturating_sub(*before);
            outln!("  {served} requests reached green during the shift");
        }
        let records: Vec<shift::Record> = read_lines(&self.dir.join("traffic/traffic.jsonl"))?;
        let state = shift::fold(&records)?;
        let gates = state
            .gates
            .iter()
            .map(|g| format!("{} % {}", g.percent, g.reading.show()))
            .collect::<Vec<_>>()
            .join("; ");
        let passed = state
            .gates
            .iter()
            .filter(|g| g.verdict == baton_core::traffic::gate::Verdict::Pass)
            .count();
        let worst = state
            .gates
            .iter()
            .map(|g| g.reading.ratio())
            .fold(0.0, f64::max);
        match (&state.outcome, ran.code) {
            (Some(ShiftOutcome::Completed), Some(0)) => Ok(Outcome::Done(format!(
                "green carries 100 % after {}: {} of {} passed, worst 5xx {:.2} %",
                plural(state.gates.len(), "gated step"),
                passed,
                plural(state.gates.len(), "gate"),
                worst * 100.0
            ))),
            (outcome, code) => bail!("the shift ended {outcome:?} (exit {code:?}); gates: {gates}"),
        }
    }

    async fn stateful_plan(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (blue, green) = cluster_names(env);
        env.baton
            .ok(&args([
                "plan",
                "--from",
                &blue,
                "--to",
                &green,
                "--standalone-claims",
                "--out",
                "plan.json",
            ]))
            .await?;
        let plan: Plan = read_json(&self.dir.join("plan.json"))?;
        // Preflight runs the planner's checks too: what it reported already is not
        // repeated.
        let reported: BTreeSet<(String, String)> = self.preflight_checks.iter().cloned().collect();
        for p in plan
            .problems
            .iter()
            .chain(plan.apps.iter().flat_map(|a| &a.problems))
            .filter(|p| !reported.contains(&(p.object.clone(), p.code.clone())))
        {
            self.record.findings.push(Finding {
                step: Step::StatefulPlan.name().into(),
                severity: format!("{:?}", p.severity).to_lowercase(),
                object: p.object.clone(),
                message: format!("{} ({})", p.message, p.code),
                fix: Some(p.fix.clone()),
            });
        }
        let volumes: usize = plan.apps.iter().map(|a| a.volumes.len()).sum();
        let done = format!(
            "{}, {}; {}",
            plural(plan.apps.len(), "app"),
            plural(volumes, "EBS volume"),
            plural(
                plan.problems.len() + plan.apps.iter().map(|a| a.problems.len()).sum::<usize>(),
                "finding"
            )
        );
        self.plan = Some(plan);
        Ok(Outcome::Done(done))
    }

    async fn migrate(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let plan = self.plan.as_ref().context("there is no plan")?;
        let ids: Vec<String> = plan
            .apps
            .iter()
            .flat_map(|a| a.volumes.iter().map(|v| v.volume_id.clone()))
            .collect();
        let before = verify::fingerprints(&env.estate.aws, &ids).await?;
        let owners = verify::ownership(&env.estate.aws, &ids).await?;
        let values: Vec<u64> = before.values().map(|f| f.value).collect();
        outln!(
            "  data fingerprints read before the move (blue writing): {} of {}, {}\n  (the summary compares them with green's)",
            before.len(),
            plural(ids.len(), "volume"),
            match (values.iter().min(), values.iter().max()) {
                (Some(a), Some(b)) if a == b => format!("all at {a}"),
                (Some(a), Some(b)) => format!("values {a} to {b}"),
                _ => "none read".into(),
            }
        );
        self.volumes = verify::volumes_of(plan, &before);
        for v in &mut self.volumes {
            v.owner_before = owners.get(&v.volume_id).cloned().unwrap_or_default();
        }
        self.record.volumes = self.volumes.clone();
        let (blue, green) = cluster_names(env);
        env.baton
            .ok(&args([
                "migrate",
                "--from",
                &blue,
                "--to",
                &green,
                "--standalone-claims",
                "--plan",
                "plan.json",
                "--yes",
                "--state-dir",
                "migration",
            ]))
            .await?;
        let records: Vec<baton_core::journal::Record> =
            read_lines(&self.dir.join("migration/journal.jsonl"))?;
        let summary = Summary::fold(&records);
        let windows: Vec<String> = summary
            .apps
            .iter()
            .map(|(app, s)| format!("{app} {}", summary::window(s)))
            .collect();
        let snapshots = records
            .iter()
            .filter(|r| {
                matches!(
                    &r.event,
                    baton_core::journal::Event::Done {
                        action: baton_core::machine::Action::StartSnapshot { .. },
                        result: Some(_),
                    }
                )
            })
            .count();
        Ok(Outcome::Done(format!(
            "{} on green, {} taken; downtime windows: {}",
            plural(summary.apps.len(), "app"),
            plural(snapshots, "EBS snapshot"),
            windows.join(", ")
        )))
    }

    fn migration(&self) -> anyhow::Result<Summary> {
        let records: Vec<baton_core::journal::Record> =
            read_lines(&self.dir.join("migration/journal.jsonl"))?;
        Ok(Summary::fold(&records))
    }

    async fn commit(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        env.baton
            .ok(&args(["commit", "--state-dir", "migration", "--yes"]))
            .await?;
        Ok(Outcome::Done(
            "blue's claims and PVs of the moved apps deleted; the volumes stay, in green".into(),
        ))
    }

    async fn verify(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let plan = self.plan.as_ref().context("there is no plan")?;
        outln!(
            "  waiting {} s for green's pods to write their data fingerprints…",
            FINGERPRINT_FLUSH.as_secs() + 1
        );
        tokio::time::sleep(FINGERPRINT_FLUSH + Duration::from_secs(1)).await;
        let ids: Vec<String> = self.volumes.iter().map(|v| v.volume_id.clone()).collect();
        let after = verify::fingerprints(&env.estate.aws, &ids).await?;
        let owners = verify::ownership(&env.estate.aws, &ids).await?;
        for v in &mut self.volumes {
            v.after = after.get(&v.volume_id).cloned();
            v.owner_after = owners.get(&v.volume_id).cloned().unwrap_or_default();
        }
        self.record.volumes = self.volumes.clone();
        let migration = self.migration()?;
        let traffic = match Self::groups(env) {
            Some((listener, blue, green)) => {
                let records: Vec<shift::Record> =
                    read_lines(&self.dir.join("traffic/traffic.jsonl"))?;
                let outcome = shift::fold(&records).ok().and_then(|s| s.outcome);
                Some((listener, blue, green, outcome))
            }
            None => None,
        };
        let world = verify::World {
            aws: &env.estate.aws,
            blue: &env.blue,
            green: &env.green,
            plan,
            migration: &migration,
            traffic: traffic
                .as_ref()
                .map(|(listener, blue, green, outcome)| verify::Traffic {
                    outcome: outcome.clone(),
                    listener,
                    blue_tg: blue,
                    green_tg: green,
                }),
            volumes: &self.volumes,
        };
        let invariants = verify::invariants(&world).await?;
        let broken = print_invariants(&invariants);
        let total = invariants.len();
        self.record.invariants = invariants;
        if broken > 0 {
            bail!("{broken} of {total} invariants did not hold");
        }
        Ok(Outcome::Done(format!("all {total} invariants held")))
    }

    async fn retire(&mut self) -> anyhow::Result<Outcome> {
        let (blue, green) = cluster_names(running(&self.env)?);
        self.retire_cluster(&blue, &green, "").await
    }

    /// Retires `blue` for `green`: retire plan asked until blue's group is quiet, retire
    /// apply, then a dry run that must send nothing. `suffix` names its files apart.
    async fn retire_cluster(
        &mut self,
        blue: &str,
        green: &str,
        suffix: &str,
    ) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let plan_file = RETIRE_PLAN_FILE.replace(".json", &format!("{suffix}.json"));
        let retire_file = RETIRE_FILE.replace(".json", &format!("{suffix}.json"));
        let (blue, green) = (blue.to_string(), green.to_string());
        // The quiet time is at least blue's group's deregistration delay: retire plan
        // raises a shorter --quiet-for to it.
        let line = |verb: &str, extra: &[&str]| -> Vec<String> {
            [
                "retire",
                verb,
                "--blue",
                &blue,
                "--green",
                &green,
                "--state-dir",
                ".",
                "--quiet-for",
                "1s",
            ]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
        };
        let started = std::time::Instant::now();
        let plan = loop {
            let ran = env
                .baton
                .run_to_file(&line("plan", &["-o", "json"]), &plan_file)
                .await?;
            let plan: serde_json::Value =
                serde_json::from_str(&ran.stdout).context("failed to read retire plan's output")?;
            let blocking: Vec<String> = plan["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["status"] == "fail")
                .map(|c| {
                    format!(
                        "{} {}: {}",
                        c["check"].as_str().unwrap_or("?"),
                        c["subject"].as_str().unwrap_or("?"),
                        c["evidence"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            match ran.code {
                Some(0) => break plan,
                Some(3)
                    if plan["checks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| c["status"] == "fail")
                        .all(|c| c["check"] == "blue-quiet")
                        && started.elapsed() < RETIRE_QUIET_WAIT =>
                {
                    outln!(
                        "  blue's target group served requests within its quiet time; asking again in 3 s"
                    );
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                code => bail!(
                    "`baton retire plan` exited {code:?}: {}",
                    blocking.join("; ")
                ),
            }
        };
        let checks = plan["checks"].as_array().map_or(0, Vec::len);
        let ran = env
            .baton
            .run_to_file(&line("apply", &["--yes", "-o", "json"]), &retire_file)
            .await?;
        if ran.code != Some(0) {
            bail!("`baton retire apply` exited {:?}", ran.code);
        }
        let count = |kind: &str| {
            plan["removals"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["kind"] == kind)
                .count()
        };
        let after: serde_json::Value =
            serde_json::from_str(&ran.stdout).context("failed to read retire apply's output")?;
        let left = after["removals"].as_array().map_or(0, Vec::len);
        if left > 0 {
            bail!("retire apply left {} to remove", plural(left, "item"));
        }
        // Again: nothing to send.
        let again = env.baton.ok(&line("apply", &["--dry-run"])).await?;
        if !again.stdout.trim().is_empty() {
            bail!("a second retire apply would send:\n{}", again.stdout);
        }
        Ok(Outcome::Done(format!(
            "{} held; {blue}'s {} deleted, its ranges taken out of {}, its statements out of {}, its target group out of {}; a second apply sends nothing",
            plural(checks, "check"),
            plural(count("binding"), "TargetGroupBinding"),
            plural(count("revoke"), "security-group rule"),
            plural(count("trust"), "role trust policy"),
            plural(count("forward"), "listener action"),
        )))
    }

    async fn delete_node_group(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (blue, _) = cluster_names(env);
        outln!(
            "  as `eksctl delete nodegroup --cluster {blue}` would (on the emulator: `baton sim delete-nodegroup {blue}`)"
        );
        let deleted = env
            .estate
            .delete_node_group(&blue, Duration::from_secs(60))
            .await?;
        Ok(Outcome::Done(crate::commands::sim::deleted_line(&deleted)))
    }

    async fn release_subnets(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (blue, green) = cluster_names(env);
        let ran = env
            .baton
            .run_to_file(
                &args([
                    "retire",
                    "apply",
                    "--blue",
                    &blue,
                    "--green",
                    &green,
                    "--state-dir",
                    ".",
                    "--quiet-for",
                    "1s",
                    "--release-subnets",
                    "--yes",
                    "-o",
                    "json",
                ]),
                "retire-subnets.json",
            )
            .await?;
        if ran.code != Some(0) {
            bail!(
                "`baton retire apply --release-subnets` exited {:?}",
                ran.code
            );
        }
        let sent: Vec<serde_json::Value> =
            read_lines(&self.dir.join(format!("retire/{blue}/retire.jsonl")))?;
        let count = |op: &str| {
            sent.iter()
                .filter(|e| e["event"] == "sent")
                .filter(|e| e["request"].as_str().is_some_and(|r| r.contains(op)))
                .count()
        };
        Ok(Outcome::Done(format!(
            "{} and {} released",
            plural(count(" DeleteSubnet "), "subnet"),
            plural(count(" DisassociateVpcCidrBlock "), "CIDR block")
        )))
    }

    async fn next_network(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (blue, green) = cluster_names(env);
        // Sized as green was.
        let (_, azs, nodes, pods, instance_type) = sizing(env)?;
        env.baton
            .ok(&args([
                "network",
                "plan",
                "--vpc",
                &env.seeded.vpc_id,
                "--cluster-name",
                NEXT,
                "--from",
                &green,
                "--azs",
                &azs,
                "--nodes",
                &nodes,
                "--pods",
                &pods,
                "--instance-type",
                &instance_type,
                "--out",
                NEXT_PLAN_FILE,
            ]))
            .await?;
        let ran = env
            .baton
            .run_to_file(
                &args([
                    "network",
                    "apply",
                    "--plan",
                    NEXT_PLAN_FILE,
                    "--yes",
                    "-o",
                    "json",
                ]),
                "network/teal-applied.json",
            )
            .await?;
        if ran.code != Some(0) {
            bail!("`baton network apply` exited {:?}", ran.code);
        }
        let applied: serde_json::Value =
            serde_json::from_str(&ran.stdout).context("failed to read network apply's output")?;
        let created: Vec<(String, String)> = applied["created"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(cidr, id)| (cidr.clone(), id.as_str().unwrap_or_default().to_string()))
            .collect();
        // Where blue's subnets were.
        let freed: Vec<ipnet::Ipv4Net> = env
            .scenario
            .vpc
            .subnets
            .iter()
            .filter(|s| s.cluster.as_deref() == Some(blue.as_str()))
            .filter_map(|s| s.cidr.parse().ok())
            .collect();
        let in_freed = created
            .iter()
            .filter(|(cidr, _)| {
                cidr.parse::<ipnet::Ipv4Net>()
                    .is_ok_and(|c| freed.iter().any(|f| f.contains(&c) || c.contains(f)))
            })
            .count();
        for (cidr, id) in &created {
            outln!("    subnet {id}  {cidr}");
        }
        self.next_subnets = created.into_iter().map(|(_, id)| id).collect();
        Ok(Outcome::Done(format!(
            "{} created for {NEXT}, {in_freed} of them in the space blue's subnets held",
            plural(self.next_subnets.len(), "subnet")
        )))
    }

    async fn add_cluster(&mut self) -> anyhow::Result<Outcome> {
        let subnets = self.next_subnets.clone();
        let kubeconfig = self.dir.join("sim/kubeconfig");
        let env = self
            .env
            .as_mut()
            .context("the environment is not running")?;
        outln!(
            "  as `eksctl create cluster --name {NEXT} --version 1.33` into them would (on the emulator: `baton sim add-cluster {NEXT} --subnets …`)"
        );
        let added = env
            .estate
            .add_cluster(
                &env.scenario,
                &mut env.seeded,
                &baton_sim::estate::NewCluster {
                    name: NEXT.into(),
                    version: NEXT_VERSION.into(),
                    subnets,
                    nodes_per_subnet: None,
                    instance_type: None,
                },
                Duration::from_secs(300),
            )
            .await?;
        baton_sim::kubeconfig::add_context(
            &kubeconfig,
            NEXT,
            &added.server,
            &added.token,
            &added.certificate_authority,
        )
        .with_context(|| format!("failed to add context {NEXT} to {}", kubeconfig.display()))?;
        crate::commands::files::write_json(&self.dir.join("sim/scenario.json"), &env.seeded)?;
        env.next = Some(KubeconfigSource::file(&kubeconfig).client(NEXT).await?);
        Ok(Outcome::Done(format!(
            "{NEXT} ({}) serves at {} with {}; its apps at 0",
            added.git_version,
            added.server,
            plural(added.nodes.len(), "node")
        )))
    }

    async fn next_move(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (_, green) = cluster_names(env);
        let teal = env.next.as_ref().context("teal is not running")?;
        let ids: Vec<String> = self.volumes.iter().map(|v| v.volume_id.clone()).collect();
        self.first_cycle = verify::fingerprints(&env.estate.aws, &ids).await?;
        let pair = ["--from", green.as_str(), "--to", NEXT];
        let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
            head.iter()
                .chain(pair.iter())
                .chain(tail)
                .map(|s| s.to_string())
                .collect()
        };
        env.baton
            .ok(&args([
                "network",
                "mirror-rules",
                "--plan",
                NEXT_PLAN_FILE,
                "--apply",
                "--yes",
            ]))
            .await?;
        env.baton
            .ok(&with(
                &["volumes", "grant"],
                &["--yes", "--state-dir", "grants-teal"],
            ))
            .await?;
        env.baton
            .ok(&with(
                &["identity", "apply"],
                &["--yes", "--state-dir", "identity-teal"],
            ))
            .await?;
        env.baton
            .ok(&with(
                &["traffic", "bindings"],
                &["--apply", "--yes", "--state-dir", "bindings-teal"],
            ))
            .await?;
        // Teal's stateless apps, as green's were.
        let (listener, _, green_tg) =
            Self::groups(env).context("the scenario has no ALB to shift")?;
        let teal_tg = env
            .seeded
            .target_groups
            .iter()
            .find(|(name, _)| name.ends_with(&format!("-{NEXT}")))
            .map(|(_, arn)| arn.clone())
            .context("teal has no target group")?;
        let alb = env.scenario.alb.as_ref().context("no ALB")?;
        let green_name = &env.scenario.clusters[1].name;
        for tg in alb
            .target_groups
            .iter()
            .filter(|t| &t.cluster == green_name)
        {
            let scaled = stateless::roll_out(&env.green, teal, &tg.namespace).await?;
            let want = scaled
                .iter()
                .filter(|(_, _, app)| app.as_deref() == Some(tg.app.as_str()))
                .map(|(_, r, _)| usize::try_from(*r).unwrap_or(0))
                .sum::<usize>()
                .max(1);
            stateless::healthy_targets(&env.estate.aws, &teal_tg, want, Duration::from_secs(120))
                .await
                .context("teal's load balancer controller did not register its pods")?;
        }
        env.baton
            .ok(&args([
                "traffic",
                "shift",
                "--listener",
                &listener,
                "--from-tg",
                &green_tg,
                "--to-tg",
                &teal_tg,
                "--steps",
                TRAFFIC_STEPS,
                "--interval",
                TRAFFIC_INTERVAL,
                "--state-dir",
                "traffic-teal",
                "--yes",
            ]))
            .await?;
        env.baton
            .ok(&with(
                &["migrate"],
                &[
                    "--standalone-claims",
                    "--state-dir",
                    "migration-teal",
                    "--yes",
                ],
            ))
            .await?;
        env.baton
            .ok(&args(["commit", "--state-dir", "migration-teal", "--yes"]))
            .await?;
        let records: Vec<baton_core::journal::Record> =
            read_lines(&self.dir.join("migration-teal/journal.jsonl"))?;
        let summary = Summary::fold(&records);
        let committed = summary
            .apps
            .values()
            .filter(|a| a.phase == Some(baton_core::machine::AppPhase::Committed))
            .count();
        Ok(Outcome::Done(format!(
            "traffic on {NEXT}; {} moved from {green} and committed",
            plural(committed, "app")
        )))
    }

    async fn next_retire(&mut self) -> anyhow::Result<Outcome> {
        let (_, green) = cluster_names(running(&self.env)?);
        self.retire_cluster(&green, NEXT, "-green").await
    }

    async fn next_verify(&mut self) -> anyhow::Result<Outcome> {
        let env = running(&self.env)?;
        let (blue, _) = cluster_names(env);
        outln!(
            "  waiting {} s for teal's pods to write their data fingerprints…",
            FINGERPRINT_FLUSH.as_secs() + 1
        );
        tokio::time::sleep(FINGERPRINT_FLUSH + Duration::from_secs(1)).await;
        let ids: Vec<String> = self.volumes.iter().map(|v| v.volume_id.clone()).collect();
        let now = verify::fingerprints(&env.estate.aws, &ids).await?;
        let mut invariants = Vec::new();
        let mut broken = Vec::new();
        for id in &ids {
            let first = self.first_cycle.get(id);
            let last = now.get(id);
            let held = match (first, last) {
                (Some(f), Some(l)) => {
                    l.value >= f.value && (l.cluster() != NEXT || l.from >= f.value)
                }
                (None, None) => true,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if !held {
                broken.push(id.clone());
            }
        }
        invariants.push(Invariant {
            name: "every volume's data continued across both moves".into(),
            held: broken.is_empty(),
            detail: if broken.is_empty() {
                format!(
                    "{}: each value at least what green left, teal's continuing from it",
                    plural(ids.len(), "volume")
                )
            } else {
                format!("went back or vanished: {}", broken.join(", "))
            },
        });
        // Nothing of blue in the VPC's rules or subnets, nor in the roles' trusts.
        let blue_ranges: Vec<ipnet::Ipv4Net> = env
            .scenario
            .vpc
            .subnets
            .iter()
            .filter(|s| s.cluster.as_deref() == Some(blue.as_str()))
            .filter_map(|s| s.cidr.parse().ok())
            .collect();
        let groups = env.estate.aws.describe_security_groups(&[], &[]).await?;
        let mut rules = Vec::new();
        for g in &groups {
            for r in &g.ingress {
                for c in &r.cidrs {
                    if c.parse::<ipnet::Ipv4Net>()
                        .is_ok_and(|c| blue_ranges.contains(&c))
                    {
                        rules.push(format!("{} {c}", g.id));
                    }
                }
            }
        }
        let subnets: Vec<String> = env
            .estate
            .aws
            .describe_subnets(&[])
            .await?
            .into_iter()
            .filter(|s| blue_ranges.contains(&s.cidr))
            .map(|s| s.id)
            .collect();
        let issuer = env
            .estate
            .aws
            .describe_cluster(&blue)
            .await?
            .oidc_issuer
            .unwrap_or_default();
        let host = issuer.trim_start_matches("https://");
        let mut trusts = Vec::new();
        for arn in env.seeded.irsa_roles.values() {
            let r = env.estate.aws.role_policies(arn).await?;
            if !host.is_empty() && r.trust.contains(host) {
                trusts.push(arn.clone());
            }
        }
        let bindings = baton_kube::Cluster::connect(
            &KubeconfigSource::file(self.dir.join("sim/kubeconfig")),
            &blue,
        )
        .await?
        .target_group_bindings(&[])
        .await?
        .unwrap_or_default();
        let left = rules.len() + subnets.len() + trusts.len() + bindings.len();
        invariants.push(Invariant {
            name: "nothing of blue is left".into(),
            held: left == 0,
            detail: if left == 0 {
                "no security-group rule admits blue's ranges, none of its subnets exists, no role trusts its OIDC provider, it has no TargetGroupBinding".into()
            } else {
                format!(
                    "rules {rules:?}, subnets {subnets:?}, trusts {trusts:?}, bindings {:?}",
                    bindings.iter().map(|b| b.key()).collect::<Vec<_>>()
                )
            },
        });
        let failed = print_invariants(&invariants);
        let total = invariants.len();
        self.record.invariants.extend(invariants);
        if failed > 0 {
            bail!("{failed} of {total} invariants of the second cycle did not hold");
        }
        Ok(Outcome::Done(format!(
            "all {total} invariants of the second cycle held"
        )))
    }
}

/// Runs `baton COMMAND --from BLUE --to GREEN --yes -o json > FILE` in the demo's dir,
/// which must exit 0, and reads what it printed.
async fn blue_to_green_json(
    env: &Env,
    command: &[&str],
    file: &str,
) -> anyhow::Result<serde_json::Value> {
    let (blue, green) = cluster_names(env);
    let line: Vec<String> = command
        .iter()
        .copied()
        .chain(["--from", &blue, "--to", &green, "--yes", "-o", "json"])
        .map(String::from)
        .collect();
    let ran = env.baton.run_to_file(&line, file).await?;
    let shown = command.join(" ");
    if ran.code != Some(0) {
        bail!("`baton {shown}` exited {:?}", ran.code);
    }
    serde_json::from_str(&ran.stdout).with_context(|| format!("failed to read {shown}'s output"))
}

/// Prints each invariant as held (✓) or not (✗); how many did not hold.
fn print_invariants(invariants: &[Invariant]) -> usize {
    for i in invariants {
        outln!(
            "  {} {}: {}",
            if i.held { "✓" } else { "✗" },
            i.name,
            i.detail
        );
    }
    invariants.iter().filter(|i| !i.held).count()
}

/// Green's name and what its network plan asks for, from the scenario's green: (name,
/// zones, nodes, pods, instance type), the counts as arguments.
fn sizing(env: &Env) -> anyhow::Result<(String, String, String, String, String)> {
    let green = env
        .scenario
        .clusters
        .get(1)
        .context("the scenario has no second (green) cluster")?;
    let zone_of: BTreeMap<&str, &str> = env
        .scenario
        .vpc
        .subnets
        .iter()
        .map(|s| (s.name.as_str(), s.az.as_str()))
        .collect();
    let azs: BTreeSet<&str> = green
        .nodes
        .iter()
        .filter_map(|n| zone_of.get(n.subnet.as_str()).copied())
        .collect();
    let nodes: usize = green.nodes.iter().map(|n| n.count).sum();
    let instance_type = green
        .nodes
        .first()
        .map_or("m5.large", |n| n.instance_type.as_str());
    // 40 pods a node: what the seed's customer runs, well within an m6i.xlarge.
    let pods = nodes * 40;
    Ok((
        green.name.clone(),
        azs.into_iter().collect::<Vec<_>>().join(","),
        nodes.to_string(),
        pods.to_string(),
        instance_type.to_string(),
    ))
}

/// Blue's and green's context names (the scenario's first and second clusters).
fn cluster_names(env: &Env) -> (String, String) {
    let name = |i: usize, d: &str| {
        env.scenario
            .clusters
            .get(i)
            .map_or(d.to_string(), |c| c.name.clone())
    };
    (name(0, "blue"), name(1, "green"))
}
