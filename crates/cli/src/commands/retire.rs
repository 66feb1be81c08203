//! `baton retire plan|apply`: blue proved idle and nothing depending on it, then what it
//! still holds of the VPC, IAM and the load balancers removed. The decision is
//! `baton_core::retire`'s; this reads the clusters, AWS and baton's own journals, and
//! sends.
//!
//! Blue's footprint (its EKS name, target groups, subnets) is recorded in
//! DIR/retire/BLUE/footprint.json before apply changes anything, so a run again after a
//! crash — or after blue's node groups are deleted, when its nodes no longer say which
//! subnets were blue's — still knows it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use baton_aws::{
    AlbMetricDims, Aws, DeleteSubnet, DeleteTargetGroup, DisassociateVpcCidrBlock, Filter,
    ForwardTarget, IngressRule, RevokeSecurityGroupIngress, UpdateAssumeRolePolicy,
};
use baton_core::identity::Provider;
use baton_core::journal::{Record as MigrationRecord, Summary};
use baton_core::machine::AppPhase;
use baton_core::plan::Plan;
use baton_core::retire::{self, Inputs, Removal, RetirePlan, Status};
use baton_core::traffic::machine::{self as shift, Outcome};
use baton_kube::Cluster;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::args::{ClusterArgs, Output, RetireApplyArgs, RetireArgs};
use crate::commands::crash::crash_point;
use crate::commands::files::{RequestJournal, read_json, read_lines, write_json};
use crate::commands::output::{confirm, render, table};
use crate::commands::retry::poll_until;
use crate::commands::show::plural;
use crate::commands::stateful::state::RunInfo;
use crate::commands::stateful::world;
use crate::commands::traffic::drive::{from_aws, to_aws};
use crate::exit::{Refused, code};
use crate::resolved::{AwsTarget, Clusters};

const JOURNAL: &str = "retire.jsonl";
const FOOTPRINT: &str = "footprint.json";

/// Namespaces whose ServiceAccounts belong to each cluster's add-ons (their roles are
/// each cluster's own, never handed over).
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// What baton knows of blue that blue may stop saying: recorded before apply's first
/// change, merged with what is read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Footprint {
    /// Blue's EKS cluster name.
    eks_name: Option<String>,
    /// Blue's target groups.
    target_groups: BTreeSet<String>,
    /// Blue's subnets (its nodes' and pods').
    subnets: BTreeSet<String>,
}

/// What `retire plan -o json|yaml` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    plan: &'a RetirePlan,
    /// Blue's EKS name, and the commands that delete its cluster (baton does not).
    eks_cluster: Option<String>,
    delete_cluster: Vec<String>,
}

/// `baton retire plan`.
pub async fn plan(a: RetireArgs) -> anyhow::Result<ExitCode> {
    let made = make(&a, &["retire", "plan"]).await?;
    print(&made, a.output)?;
    Ok(ExitCode::from(exit_of(&made.plan)))
}

/// `baton retire apply`.
pub async fn apply(a: RetireApplyArgs) -> anyhow::Result<ExitCode> {
    let made = make(&a.plan, &["retire", "apply"]).await?;
    let blocking = made.plan.blocking();
    if !blocking.is_empty() {
        print(&made, a.plan.output)?;
        return Err(Refused(format!(
            "failed to retire {}: {} ({}); nothing was changed",
            a.plan.blue,
            plural(blocking.len(), "blocking item"),
            blocking
                .iter()
                .map(|c| format!("{} {}", c.check, c.subject))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let requests = requests(&made, a.dry_run).await?;
    if a.dry_run {
        for r in &requests {
            outln!("{}", r.line);
        }
        errln!(
            "dry run: {} to send, none sent",
            plural(requests.len(), "request")
        );
        return Ok(ExitCode::from(code::OK));
    }
    // What blue held, kept for the runs after its nodes (which say it) are gone.
    let dir = made.dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    write_json(&dir.join(FOOTPRINT), &made.footprint)?;
    if !requests.is_empty() {
        if !a.yes {
            for r in &requests {
                errln!("{}", r.line);
            }
        }
        confirm(
            a.yes,
            &format!(
                "send the {} above (blue's footprint removed)",
                plural(requests.len(), "request")
            ),
        )?;
        let mut journal = RequestJournal::open(&dir, JOURNAL)?;
        let mut bindings_waited = false;
        for r in &requests {
            if !matches!(r.send, Send::Binding(_)) && !bindings_waited {
                wait_bindings_gone(&made).await?;
                bindings_waited = true;
            }
            if let Send::TargetGroup(d, delay) = &r.send {
                wait_targets_gone(&made.aws, &d.target_group_arn, *delay).await?;
            }
            let line = r.line.clone();
            let sent = send(&made, &r.send);
            journal
                .send(&line, async {
                    sent.await.with_context(|| {
                        format!(
                            "failed to send `{line}` (requests sent before it stay; run again to finish)"
                        )
                    })?;
                    crash_point();
                    anyhow::Ok(())
                })
                .await?;
            errln!("sent: {}", r.what);
        }
    }
    let after = make(&a.plan, &["retire", "apply"]).await?;
    print(&after, a.plan.output)?;
    Ok(ExitCode::from(exit_of(&after.plan)))
}

fn exit_of(plan: &RetirePlan) -> u8 {
    if plan.blocking().is_empty() {
        code::OK
    } else {
        code::REFUSED
    }
}

/// Everything read, and the decision.
struct Made {
    plan: RetirePlan,
    footprint: Footprint,
    /// DIR/retire/BLUE.
    dir: PathBuf,
    blue: Cluster,
    aws: Aws,
    /// Each target group's deregistration delay.
    delays: BTreeMap<String, u64>,
}

/// One request of apply.
struct Request {
    what: String,
    line: String,
    send: Send,
}

enum Send {
    Binding(baton_kube::request::Mutation),
    Revoke(RevokeSecurityGroupIngress),
    Trust(UpdateAssumeRolePolicy),
    /// The change as built for the dry run and the question, and what rebuilds it just
    /// before it is sent (the action as read then must still be `before`).
    Forward(
        baton_aws::ForwardChange,
        ForwardTarget,
        baton_aws::ForwardConfig,
        baton_aws::ForwardConfig,
    ),
    TargetGroup(DeleteTargetGroup, u64),
    Subnet(DeleteSubnet),
    Block(DisassociateVpcCidrBlock),
}

/// The requests of the plan's removals, in order, each built once: printed by
/// `--dry-run` and sent by apply.
async fn requests(made: &Made, dry_run: bool) -> anyhow::Result<Vec<Request>> {
    let mut out = Vec::new();
    for r in &made.plan.removals {
        let send = match r {
            Removal::Binding {
                namespace, name, ..
            } => Send::Binding(baton_kube::bindings::delete_binding(namespace, name)),
            Removal::Revoke { group_id, rule, .. } => Send::Revoke(RevokeSecurityGroupIngress {
                group_id: group_id.clone(),
                rule: IngressRule {
                    protocol: rule.protocol.clone(),
                    from_port: rule.from_port,
                    to_port: rule.to_port,
                    cidrs: rule.cidrs.iter().map(ToString::to_string).collect(),
                    ..Default::default()
                },
            }),
            Removal::Trust { name, document, .. } => Send::Trust(UpdateAssumeRolePolicy {
                role_name: name.clone(),
                policy_document: document.to_string(),
            }),
            Removal::Forward {
                listener,
                rule,
                before,
                forward,
                ..
            } => {
                let target = match rule {
                    Some(r) => ForwardTarget::Rule(r.clone()),
                    None => ForwardTarget::ListenerDefault(listener.clone()),
                };
                // The dry run reads the action as it is now, so a second change of the
                // same action is built on the first's result without expecting it.
                let expected = (!dry_run).then(|| to_aws(before));
                let change = made
                    .aws
                    .forward_change(&target, expected.as_ref(), &to_aws(forward))
                    .await
                    .with_context(|| format!("failed to build the change of {}", target.arn()))?;
                Send::Forward(change, target, to_aws(before), to_aws(forward))
            }
            Removal::TargetGroup { arn, .. } => Send::TargetGroup(
                DeleteTargetGroup {
                    target_group_arn: arn.clone(),
                },
                made.delays.get(arn).copied().unwrap_or(300),
            ),
            Removal::Subnet { id, .. } => Send::Subnet(DeleteSubnet {
                subnet_id: id.clone(),
            }),
            Removal::Block { association_id, .. } => Send::Block(DisassociateVpcCidrBlock {
                association_id: association_id.clone(),
            }),
        };
        let line = match &send {
            Send::Binding(m) => format!("{} {m}", made.blue.context),
            Send::Revoke(x) => x.to_string(),
            Send::Trust(x) => x.to_string(),
            Send::Forward(x, ..) => x.to_string(),
            Send::TargetGroup(x, _) => x.to_string(),
            Send::Subnet(x) => x.to_string(),
            Send::Block(x) => x.to_string(),
        };
        out.push(Request {
            what: r.what(),
            line,
            send,
        });
    }
    Ok(out)
}

async fn send(made: &Made, s: &Send) -> anyhow::Result<()> {
    let aws = &made.aws;
    match s {
        Send::Binding(m) => {
            made.blue.send(m).await?;
        }
        Send::Revoke(r) => match aws.revoke_ingress(r).await {
            // Gone since it was read (another run): what was wanted is there.
            Err(e) if e.code() == Some("InvalidPermission.NotFound") => {}
            other => other?,
        },
        Send::Trust(t) => aws.update_trust(t).await?,
        Send::Forward(_, target, before, new) => {
            // Built again now: the bindings' wait or an earlier change of the same action
            // came between; weights someone else set since are a conflict, not overwritten.
            let fresh = aws.forward_change(target, Some(before), new).await?;
            aws.modify_forward(&fresh).await?;
        }
        Send::TargetGroup(d, _) => match aws.delete_target_group(d).await {
            Err(e) if e.is_not_found() => {}
            other => other?,
        },
        Send::Subnet(d) => match aws.delete_subnet(d).await {
            Err(e) if e.code() == Some("InvalidSubnetID.NotFound") => {}
            other => other?,
        },
        Send::Block(d) => aws.disassociate_vpc_cidr(d).await?,
    }
    Ok(())
}

/// Waits until blue's deleted bindings are gone: their finalizer lets go once the
/// controller has deregistered their targets.
async fn wait_bindings_gone(made: &Made) -> anyhow::Result<()> {
    let names: BTreeSet<String> = made
        .plan
        .removals
        .iter()
        .filter_map(|r| match r {
            Removal::Binding {
                namespace, name, ..
            } => Some(format!("{namespace}/{name}")),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let look = || async {
        let left: Vec<String> = made
            .blue
            .target_group_bindings(&[])
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|b| b.key())
            .filter(|k| names.contains(k))
            .collect();
        anyhow::Ok(left.is_empty().then_some(()))
    };
    poll_until(
        look,
        Duration::from_millis(200),
        Duration::from_secs(2),
        Duration::from_secs(120),
    )
        .await?
        .with_context(|| {
            format!(
                "failed to see blue's TargetGroupBindings {} gone within 2 minutes: blue's load balancer controller has not deregistered their targets (is it running?); run the same command again to continue",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
}

/// Waits until a target group has no target left (draining takes its deregistration
/// delay).
async fn wait_targets_gone(aws: &Aws, arn: &str, delay: u64) -> anyhow::Result<()> {
    let look = || async {
        let left = aws.describe_target_health(arn).await?;
        anyhow::Ok(left.is_empty().then_some(()))
    };
    poll_until(
        look,
        Duration::from_millis(500),
        Duration::from_secs(5),
        Duration::from_secs(delay + 60),
    )
    .await?
    .with_context(|| {
        format!(
            "failed to see target group {arn} empty within its deregistration delay ({delay} s) and a minute; run the same command again to continue"
        )
    })
}

/// A forward action of a load balancer: (listener, rule — None for the default action —,
/// its forward config).
type ForwardAction = (String, Option<String>, baton_aws::ForwardConfig);

/// Every forward action of a load balancer's listeners and their rules.
async fn forward_actions(aws: &Aws, lb: &str) -> anyhow::Result<Vec<ForwardAction>> {
    let mut out = Vec::new();
    for l in aws
        .describe_listeners(lb)
        .await
        .with_context(|| format!("failed to read the listeners of {lb}"))?
    {
        for action in &l.default_actions {
            if let Some(f) = &action.forward {
                out.push((l.arn.clone(), None, f.clone()));
            }
        }
        for r in aws
            .describe_rules(&l.arn)
            .await
            .with_context(|| format!("failed to read the rules of {}", l.arn))?
        {
            // The default rule is the listener's default action, read above.
            if r.is_default {
                continue;
            }
            for action in &r.actions {
                if let Some(f) = &action.forward {
                    out.push((l.arn.clone(), Some(r.arn.clone()), f.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// A cluster's node and pod subnets (ids), and its EKS name from its nodes.
async fn subnets_of(
    cluster: &Cluster,
    aws: &Aws,
) -> anyhow::Result<(BTreeSet<String>, Option<String>)> {
    let instances = cluster.node_instances().await?;
    let mut subnets = BTreeSet::new();
    let mut names = BTreeSet::new();
    if !instances.is_empty() {
        for i in aws
            .describe_instances(&[Filter::new("instance-id", instances)])
            .await
            .with_context(|| format!("failed to read {}'s nodes' EC2 instances", cluster.context))?
        {
            if let Some(s) = i.subnet_id {
                subnets.insert(s);
            }
            if let Some(n) = i.tags.get("eks:cluster-name") {
                names.insert(n.clone());
            }
        }
    }
    for e in cluster.eni_configs().await? {
        subnets.insert(e.subnet);
    }
    let name = (names.len() == 1).then(|| names.into_iter().next().unwrap_or_default());
    Ok((subnets, name))
}

/// Migrations and shifts journaled under `root` (state dirs at most three levels down).
fn journals(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut migrations = Vec::new();
    let mut shifts = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if depth < 3 && name != "manifests" {
                    stack.push((path, depth + 1));
                }
            } else if name == "run.json" {
                migrations.push(dir.clone());
            } else if name.starts_with("traffic") && name.ends_with(".jsonl") {
                shifts.push(path);
            }
        }
    }
    migrations.sort();
    shifts.sort();
    (migrations, shifts)
}

fn outcome_word(o: &Outcome) -> &'static str {
    match o {
        Outcome::Completed => "completed",
        Outcome::RolledBack(_) => "rolled-back",
        Outcome::Stopped(_) => "stopped",
    }
}

async fn make(a: &RetireArgs, command: &[&str]) -> anyhow::Result<Made> {
    if a.blue == a.green {
        return Err(crate::args::usage_error(
            command,
            format!(
                "--blue and --green are both {:?}: blue is the cluster to retire, green the one that took over",
                a.blue
            ),
        )
        .into());
    }
    if let Some(bad) = a
        .target_groups
        .iter()
        .find(|t| !(t.starts_with("arn:") && t.contains(":targetgroup/")))
    {
        return Err(crate::args::usage_error(
            command,
            format!(
                "--target-group {bad:?} is not a target group ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID; `aws elbv2 describe-target-groups --names NAME` prints it)"
            ),
        )
        .into());
    }
    let clusters = Clusters::new(
        &ClusterArgs {
            from: a.blue.clone(),
            to: a.green.clone(),
            kubeconfig: a.kubeconfig.clone(),
        },
        command,
    )?;
    let (blue, green, aws) = world::connect(&clusters, &AwsTarget::from(&a.aws)).await?;
    let dir = a.state_dir.join("retire").join(&a.blue);
    let mut footprint: Footprint = if dir.join(FOOTPRINT).exists() {
        read_json(&dir.join(FOOTPRINT))?
    } else {
        Footprint::default()
    };

    // Baton's journals: migrations from blue, shifts.
    let (migration_dirs, shift_files) = journals(&a.state_dir);
    let mut migrations = Vec::new();
    let mut fences = Vec::new();
    for d in &migration_dirs {
        let info: RunInfo = read_json(&d.join("run.json"))?;
        if info.from != a.blue {
            continue;
        }
        let plan: Plan = read_json(&d.join("plan.json"))?;
        let records: Vec<MigrationRecord> = read_lines(&d.join("journal.jsonl"))?;
        let summary = Summary::fold(&records);
        let mut apps = BTreeMap::new();
        for app in &plan.apps {
            let phase = summary.apps.get(&app.key()).and_then(|s| s.phase);
            if phase == Some(AppPhase::Committed) {
                fences.extend(app.fences.iter().map(|f| (app.key(), f.clone())));
            }
            apps.insert(app.key(), phase);
        }
        migrations.push(retire::Migration {
            dir: d.display().to_string(),
            id: info.migration,
            from: info.from,
            to: info.to,
            apps,
        });
    }

    // Blue's bindings and target groups.
    let blue_bindings = blue.target_group_bindings(&[]).await?.unwrap_or_default();
    let green_bindings = green.target_group_bindings(&[]).await?.unwrap_or_default();
    for b in &blue_bindings {
        if b.target_group().starts_with("arn:") {
            footprint.target_groups.insert(b.target_group().to_string());
        }
    }
    footprint
        .target_groups
        .extend(a.target_groups.iter().cloned());
    let green_groups: BTreeSet<&str> = green_bindings.iter().map(|b| b.target_group()).collect();
    let mut shifts = Vec::new();
    let mut shift_lbs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &shift_files {
        let records: Vec<shift::Record> = read_lines(f)?;
        let Ok(state) = shift::fold(&records) else {
            continue;
        };
        let split = &state.plan.split;
        if !footprint.target_groups.contains(&split.from_tg) {
            continue;
        }
        shift_lbs
            .entry(split.from_tg.clone())
            .or_default()
            .insert(state.plan.load_balancer_arn.clone());
        shifts.push(retire::Shift {
            journal: f.display().to_string(),
            listener: state.plan.listener_arn.clone(),
            rule: state.plan.rule_arn.clone(),
            from_group: split.from_tg.clone(),
            to_group: split.to_tg.clone(),
            outcome: state.outcome.as_ref().map(|o| outcome_word(o).to_string()),
        });
    }
    let quiet = a.quiet_for.as_secs();
    let now = SystemTime::now();
    let mut target_groups = Vec::new();
    let mut delays = BTreeMap::new();
    let albs: Vec<baton_aws::LoadBalancer> = if footprint.target_groups.is_empty() {
        Vec::new()
    } else {
        aws.describe_load_balancers(&[], &[])
            .await
            .context("failed to list the load balancers")?
            .into_iter()
            .filter(|lb| lb.kind == "application")
            .collect()
    };
    let mut actions: BTreeMap<String, Vec<ForwardAction>> = BTreeMap::new();
    for arn in footprint.target_groups.clone() {
        let tg = match aws
            .describe_target_groups(None, std::slice::from_ref(&arn))
            .await
        {
            Ok(mut l) if !l.is_empty() => l.remove(0),
            Ok(_) => continue,
            // Deleted (by an earlier apply, or by its owner): nothing of it is left.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e).with_context(|| format!("failed to read target group {arn}")),
        };
        let delay = aws
            .deregistration_delay(&arn)
            .await
            .with_context(|| format!("failed to read the deregistration delay of {arn}"))?
            .as_secs();
        delays.insert(arn.clone(), delay);
        // The load balancers that may forward to it: those AWS lists for the group, the
        // shifts', and every ALB of its VPC (moto does not list a group a listener
        // gained by ModifyListener; AWS does).
        let mut lbs: BTreeSet<String> = tg.load_balancer_arns.iter().cloned().collect();
        lbs.extend(shift_lbs.get(&arn).cloned().unwrap_or_default());
        lbs.extend(
            albs.iter()
                .filter(|lb| lb.vpc_id.is_some() && lb.vpc_id == tg.vpc_id)
                .map(|lb| lb.arn.clone()),
        );
        let mut forwards = Vec::new();
        for lb in &lbs {
            if !actions.contains_key(lb) {
                actions.insert(lb.clone(), forward_actions(&aws, lb).await?);
            }
            for (listener, rule, f) in &actions[lb] {
                if f.weight_of(&arn).is_some() {
                    forwards.push(retire::ForwardUse {
                        load_balancer: lb.clone(),
                        listener: listener.clone(),
                        rule: rule.clone(),
                        forward: from_aws(f),
                    });
                }
            }
        }
        let registered = aws.describe_target_health(&arn).await?.len();
        let quiet_seconds = quiet.max(delay);
        let start = now - Duration::from_secs(quiet_seconds);
        let mut requests: Result<u64, String> = Ok(0);
        for lb in &lbs {
            let Some(dims) = AlbMetricDims::from_arns(lb, &arn) else {
                continue;
            };
            match aws.target_group_request_stats(&dims, start, now).await {
                Ok(s) => {
                    if let Ok(n) = &mut requests {
                        *n += s.requests.round() as u64;
                    }
                }
                Err(e) => requests = Err(e.to_string()),
            }
        }
        target_groups.push(retire::TargetGroup {
            why_blue: "blue's".into(),
            shared_with_green: green_groups.contains(arn.as_str()),
            arn,
            forwards,
            registered,
            requests,
            deregistration_delay_seconds: delay,
            quiet_seconds,
        });
    }

    // Blue's volumes.
    let pvs = blue.ebs_volumes().await?;
    let ids: Vec<String> = pvs.iter().map(|p| p.volume_id.clone()).collect();
    let live: BTreeSet<String> = if ids.is_empty() {
        BTreeSet::new()
    } else {
        aws.describe_volumes(&[Filter::new("volume-id", ids)])
            .await
            .context("failed to read blue's PVs' EBS volumes")?
            .into_iter()
            .filter(|v| {
                !matches!(
                    v.state,
                    baton_aws::VolumeState::Deleting | baton_aws::VolumeState::Deleted
                )
            })
            .map(|v| v.id)
            .collect()
    };
    let volumes = pvs
        .into_iter()
        .map(|p| retire::BlueVolume {
            live: live.contains(&p.volume_id),
            pv: p.pv,
            volume_id: p.volume_id,
            claim: p.claim,
            pods: p.pods,
        })
        .collect();

    // The network: blue's and green's subnets, the VPC's groups and blocks.
    let (blue_now, blue_name) = subnets_of(&blue, &aws).await?;
    let (green_subnets, green_name) = subnets_of(&green, &aws).await?;
    footprint.subnets.extend(blue_now);
    if blue_name.is_some() {
        footprint.eks_name = blue_name;
    }
    let blue_ids: Vec<String> = footprint
        .subnets
        .iter()
        .filter(|s| !green_subnets.contains(*s))
        .cloned()
        .collect();
    let blue_subnets = if blue_ids.is_empty() {
        Vec::new()
    } else {
        aws.describe_subnets(&[Filter::new("subnet-id", blue_ids)])
            .await
            .context("failed to read blue's subnets")?
    };
    let green_read = if green_subnets.is_empty() {
        Vec::new()
    } else {
        aws.describe_subnets(&[Filter::new("subnet-id", green_subnets.iter().cloned())])
            .await
            .context("failed to read green's subnets")?
    };
    let vpc_id = blue_subnets
        .first()
        .or(green_read.first())
        .map(|s| s.vpc_id.clone());
    let (security_groups, vpc_subnets, blocks) = match &vpc_id {
        None => (Vec::new(), Vec::new(), Vec::new()),
        Some(vpc) => {
            let filter = [Filter::new("vpc-id", [vpc.clone()])];
            let groups = aws
                .describe_security_groups(&[], &filter)
                .await
                .context("failed to read the VPC's security groups")?;
            let subnets = aws
                .describe_subnets(&filter)
                .await
                .context("failed to read the VPC's subnets")?;
            let described = aws
                .describe_vpc(vpc)
                .await
                .context("failed to read the VPC")?;
            let blocks = described
                .cidr_blocks
                .iter()
                .filter(|b| b.is_active())
                .map(|b| retire::Block {
                    association_id: b.association_id.clone(),
                    cidr: b.cidr,
                    primary: b.cidr == described.primary_cidr,
                })
                .collect();
            (
                super::network::mirror_groups(groups),
                subnets.into_iter().map(|s| s.cidr).collect(),
                blocks,
            )
        }
    };
    let mut subnets = Vec::new();
    if a.release_subnets {
        for s in &blue_subnets {
            let interfaces = aws
                .describe_network_interfaces(&[Filter::new("subnet-id", [s.id.clone()])])
                .await
                .with_context(|| format!("failed to read the network interfaces of {}", s.id))?
                .len();
            subnets.push(retire::Subnet {
                id: s.id.clone(),
                cidr: s.cidr,
                az: s.availability_zone.clone(),
                interfaces,
            });
        }
    }
    let ranges = |l: &[baton_aws::Subnet]| -> Vec<Ipv4Net> {
        let mut v: Vec<Ipv4Net> = l.iter().map(|s| s.cidr).collect();
        v.sort();
        v
    };

    // IAM: the roles blue's pods assume, both clusters' providers.
    let accounts: Vec<_> = blue
        .irsa_service_accounts(&[])
        .await?
        .into_iter()
        .filter(|sa| !SYSTEM_NAMESPACES.contains(&sa.namespace.as_str()))
        .collect();
    let mut by_role: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for sa in &accounts {
        by_role
            .entry((sa.role.clone(), sa.audience.clone()))
            .or_default()
            .push(format!("{}/{}", sa.namespace, sa.name));
    }
    let account = by_role
        .keys()
        .next()
        .map(|(r, _)| baton_core::keys::account_of(r).to_string())
        .unwrap_or_default();
    let provider = |name: &Option<String>| {
        let name = name.clone();
        let aws = &aws;
        let account = account.clone();
        async move {
            let Some(name) = name else {
                return anyhow::Ok(None);
            };
            let c = aws
                .describe_cluster(&name)
                .await
                .with_context(|| format!("failed to read EKS cluster {name}"))?;
            Ok(c.oidc_issuer.map(|i| Provider::of(&account, &i)))
        }
    };
    let (blue_provider, green_provider) = if by_role.is_empty() {
        (None, None)
    } else {
        (
            provider(&footprint.eks_name).await?,
            provider(&green_name).await?,
        )
    };
    let mut roles = Vec::new();
    for ((role, audience), sas) in by_role {
        let name = baton_aws::role_name(&role).unwrap_or(&role).to_string();
        let trust = match aws.role_policies(&role).await {
            Ok(r) => serde_json::from_str(&r.trust)
                .map_err(|e| format!("its trust policy is not JSON baton can read: {e}")),
            Err(e) if e.code() == Some("NoSuchEntity") => {
                Err("the role does not exist (a ServiceAccount names it)".to_string())
            }
            Err(e) => return Err(e).with_context(|| format!("failed to read IAM role {role}")),
        };
        roles.push(retire::RoleTrust {
            arn: role,
            name,
            service_accounts: sas,
            audience,
            trust,
        });
    }

    let inputs = Inputs {
        blue: a.blue.clone(),
        green: a.green.clone(),
        migrations,
        shifts,
        target_groups,
        volumes,
        security_groups,
        blue_ranges: ranges(&blue_subnets),
        green_ranges: ranges(&green_read),
        blue_provider,
        green_provider,
        roles,
        blue_bindings,
        green_bindings,
        fences,
        subnets,
        vpc_subnets,
        blocks,
        release_subnets: a.release_subnets,
        delete_target_groups: a.delete_target_groups,
    };
    Ok(Made {
        plan: retire::plan(&inputs),
        footprint,
        dir,
        blue,
        aws,
        delays,
    })
}

/// The commands that delete blue's cluster: baton never does.
fn delete_commands(made: &Made) -> Vec<String> {
    let region = made.aws.region();
    match &made.footprint.eks_name {
        Some(n) => vec![
            format!(
                "aws eks list-nodegroups --cluster-name {n} --region {region}  # then, for each: aws eks delete-nodegroup --cluster-name {n} --nodegroup-name NODEGROUP"
            ),
            format!("aws eks delete-cluster --name {n} --region {region}"),
            format!(
                "or, if eksctl made it: eksctl delete cluster --name {n} --region {region} — not if eksctl also made the VPC green uses: deleting that stack removes the VPC's shared network"
            ),
        ],
        None => vec![format!(
            "blue's EKS name is not known (its nodes carry no eks:cluster-name tag): delete the cluster behind context {} with the tool that made it",
            made.plan.blue
        )],
    }
}

fn print(made: &Made, output: Output) -> anyhow::Result<()> {
    let plan = &made.plan;
    // How to delete blue's cluster is said only once nothing blocks its retirement.
    let deletes = if plan.blocking().is_empty() {
        delete_commands(made)
    } else {
        Vec::new()
    };
    if output != Output::Table {
        out!(
            "{}",
            render(
                &Report {
                    plan,
                    eks_cluster: made.footprint.eks_name.clone(),
                    delete_cluster: deletes,
                },
                output
            )?
        );
        return Ok(());
    }
    outln!("Retiring {} (green: {})\n", plan.blue, plan.green);
    let rows: Vec<Vec<String>> = plan
        .checks
        .iter()
        .map(|c| {
            vec![
                c.check.to_string(),
                match c.status {
                    Status::Pass => "ok".into(),
                    Status::Fail => "BLOCKING".into(),
                    Status::Note => "note".into(),
                },
                c.subject.clone(),
                c.evidence.clone(),
            ]
        })
        .collect();
    out!(
        "{}",
        table(&["CHECK", "STATUS", "SUBJECT", "EVIDENCE"], &rows)
    );
    let fixes: Vec<&retire::Check> = plan.checks.iter().filter(|c| c.fix.is_some()).collect();
    if !fixes.is_empty() {
        outln!("\nTo do:");
        for c in fixes {
            outln!(
                "  {} {}: {}",
                if c.status == Status::Fail {
                    "BLOCKING"
                } else {
                    "note"
                },
                c.subject,
                c.fix.as_deref().unwrap_or_default()
            );
        }
    }
    if plan.removals.is_empty() {
        outln!("\nNothing of blue's left to remove.");
    } else {
        let rows: Vec<Vec<String>> = plan
            .removals
            .iter()
            .enumerate()
            .map(|(k, r)| vec![(k + 1).to_string(), r.what(), r.why().to_string()])
            .collect();
        outln!(
            "\n{} removes, in this order:",
            if plan.blocking().is_empty() {
                "retire apply"
            } else {
                "once nothing blocks, retire apply"
            }
        );
        out!("{}", table(&["#", "REMOVE", "WHY IT IS SAFE"], &rows));
    }
    if !plan.kept.is_empty() {
        outln!("\nLeft as it is:");
        for k in &plan.kept {
            outln!("  {k}");
        }
    }
    if plan.blocking().is_empty() {
        outln!(
            "\nbaton never deletes an EBS volume, a cluster or a node group. Once retire apply has run, delete blue's node groups, run retire apply --release-subnets, then delete the cluster, with the tool that made it:"
        );
        for d in &deletes {
            outln!("  {d}");
        }
    }
    if !plan.blocking().is_empty() {
        outln!(
            "\nrefused: {}; fix them and run retire plan again",
            plural(plan.blocking().len(), "blocking item")
        );
    }
    Ok(())
}
