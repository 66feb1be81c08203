//! Retiring blue: proving it idle, proving green holds what blue's removal would take
//! away, and the list of blue's footprint to remove, in the order it is safe to remove
//! it. Everything here decides from what was read; `baton retire plan|apply` reads and
//! sends.
//!
//! The checks (each passes, fails — blocking — or only informs):
//! - every traffic shift baton journaled away from one of blue's target groups ended
//!   complete, and blue's groups carry weight 0 on every listener and rule that forwards
//!   to them;
//! - CloudWatch counted no request to blue's groups for the quiet time (never shorter
//!   than a group's deregistration delay);
//! - every migration baton ran from blue is committed, no PV of blue is bound to a live
//!   EBS volume and no pod of blue mounts one;
//! - green holds what blue's removal would take away: the security-group access blue's
//!   ranges have, the IAM trusts blue's pods use, the TargetGroupBindings blue has.
//!
//! The removals, in this order: blue's TargetGroupBindings (first, so blue's controller,
//! still running, deregisters its targets cleanly); blue's CIDRs from security-group rules
//! that admit green's too (never a rule that admits blue alone); blue's statements from
//! the IAM trust policies that trust green too; blue's weight-0 target groups from the
//! listener actions (with `delete_target_groups`, the groups themselves once empty); with
//! `release_subnets`, blue's subnets no network interface uses and the VPC CIDR blocks
//! left empty (never the primary). Never an EBS volume, a cluster or a node group.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::Value;

use crate::fences::Fence;
use crate::identity::{self, Provider};
use crate::machine::AppPhase;
use crate::network::mirror::{self, Group, Rule};
use crate::traffic::bindings::Binding;
use crate::traffic::split::{Forward, group_name};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Holds.
    Pass,
    /// Blocks the retirement.
    Fail,
    /// Said, not blocking.
    Note,
}

/// One check, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check (`traffic-shifted`, `blue-weight-zero`, `blue-quiet`,
    /// `migrations-committed`, `blue-volumes-released`, `green-network`, `green-trust`,
    /// `green-bindings`, `fence-kept`).
    pub check: &'static str,
    /// How it came out.
    pub status: Status,
    /// What it is about (a target group, a migration, a role…).
    pub subject: String,
    /// What was read that shows it.
    pub evidence: String,
    /// What to do when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// A migration journaled in a state dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// The state dir.
    pub dir: String,
    /// Its id.
    pub id: String,
    /// Blue's context.
    pub from: String,
    /// Green's context.
    pub to: String,
    /// Each app's last phase (None: never reached one).
    pub apps: BTreeMap<String, Option<AppPhase>>,
}

/// A traffic shift journaled in a state dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    /// The journal file.
    pub journal: String,
    /// The listener.
    pub listener: String,
    /// The rule (None: the listener's default action).
    pub rule: Option<String>,
    /// The group traffic moved from.
    pub from_group: String,
    /// The group it moved to.
    pub to_group: String,
    /// `completed`, `rolled-back`, `stopped`, or None while not ended.
    pub outcome: Option<String>,
}

/// One forward action that names a target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardUse {
    /// The load balancer.
    pub load_balancer: String,
    /// The listener.
    pub listener: String,
    /// The rule (None: the listener's default action).
    pub rule: Option<String>,
    /// The action's forward config as read.
    pub forward: Forward,
}

/// One of blue's target groups as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    /// ARN.
    pub arn: String,
    /// Why it is blue's (its binding in blue, a shift moved traffic away from it).
    pub why_blue: String,
    /// Whether green binds it too (a group both clusters register in): then it is not
    /// removed from listeners nor deleted.
    pub shared_with_green: bool,
    /// The forward actions that name it.
    pub forwards: Vec<ForwardUse>,
    /// Targets registered now.
    pub registered: usize,
    /// Requests CloudWatch counted over `quiet_seconds` (Err: why not read).
    pub requests: Result<u64, String>,
    /// The group's deregistration delay, in seconds.
    pub deregistration_delay_seconds: u64,
    /// The quiet time asked for, in seconds (at least the delay).
    pub quiet_seconds: u64,
}

/// One of blue's PVs on an EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlueVolume {
    /// PV name.
    pub pv: String,
    /// EBS volume id.
    pub volume_id: String,
    /// `namespace/name` of the claim bound to it.
    pub claim: Option<String>,
    /// `namespace/name` of blue's pods mounting that claim.
    pub pods: Vec<String>,
    /// Whether EC2 has the volume (and it is not being deleted).
    pub live: bool,
}

/// An IAM role blue's pods assume (IRSA), with its trust policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleTrust {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// `namespace/name` of the ServiceAccounts naming it.
    pub service_accounts: Vec<String>,
    /// The token audience.
    pub audience: String,
    /// Its trust policy (Err: why not read).
    pub trust: Result<Value, String>,
}

/// A subnet of blue's (its nodes' or its pods').
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subnet {
    /// `subnet-…`.
    pub id: String,
    /// Its block.
    pub cidr: Ipv4Net,
    /// Its zone.
    pub az: String,
    /// Network interfaces in it.
    pub interfaces: usize,
}

/// A CIDR block associated with the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    /// The association id (`vpc-cidr-assoc-…`).
    pub association_id: String,
    /// The block.
    pub cidr: Ipv4Net,
    /// Whether it is the VPC's primary block.
    pub primary: bool,
}

/// Everything the decision reads.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Blue's context.
    pub blue: String,
    /// Green's context.
    pub green: String,
    /// Migrations from blue.
    pub migrations: Vec<Migration>,
    /// Shifts away from blue's groups.
    pub shifts: Vec<Shift>,
    /// Blue's target groups.
    pub target_groups: Vec<TargetGroup>,
    /// Blue's PVs on EBS volumes.
    pub volumes: Vec<BlueVolume>,
    /// The VPC's security groups.
    pub security_groups: Vec<Group>,
    /// Blue's address ranges (its nodes' and pods' subnets).
    pub blue_ranges: Vec<Ipv4Net>,
    /// Green's.
    pub green_ranges: Vec<Ipv4Net>,
    /// Blue's IAM OIDC provider (None: blue's issuer not known: no trust is changed).
    pub blue_provider: Option<Provider>,
    /// Green's.
    pub green_provider: Option<Provider>,
    /// The roles blue's pods assume.
    pub roles: Vec<RoleTrust>,
    /// Blue's TargetGroupBindings.
    pub blue_bindings: Vec<Binding>,
    /// Green's.
    pub green_bindings: Vec<Binding>,
    /// The fences commit kept paused in blue, with their app.
    pub fences: Vec<(String, Fence)>,
    /// Blue's subnets (not green's), with the network interfaces in each.
    pub subnets: Vec<Subnet>,
    /// Every subnet block of the VPC (to tell which CIDR blocks would be left empty).
    pub vpc_subnets: Vec<Ipv4Net>,
    /// The VPC's blocks.
    pub blocks: Vec<Block>,
    /// Release blue's unused subnets and emptied blocks.
    pub release_subnets: bool,
    /// Delete blue's target groups once empty.
    pub delete_target_groups: bool,
}

/// One thing `apply` removes, with why it is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Removal {
    /// Delete blue's TargetGroupBinding (its controller deregisters the targets).
    Binding {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Its target group.
        target_group: String,
        /// Why it is safe.
        why: String,
    },
    /// Revoke blue's CIDRs from a rule that admits green's too.
    Revoke {
        /// The group.
        group_id: String,
        /// Its name.
        group_name: String,
        /// The rule (blue's CIDRs only).
        rule: Rule,
        /// Why it is safe.
        why: String,
    },
    /// Blue's statements out of a role's trust policy.
    Trust {
        /// The role's ARN.
        role: String,
        /// Its name.
        name: String,
        /// The policy without blue's statements.
        document: Value,
        /// Statements removed.
        removed: usize,
        /// Why it is safe.
        why: String,
    },
    /// Blue's group out of a forward action.
    Forward {
        /// The listener.
        listener: String,
        /// The rule (None: default action).
        rule: Option<String>,
        /// Blue's group.
        target_group: String,
        /// The action's config before (as read, or as the removal before left it).
        before: Forward,
        /// The action's config without it.
        forward: Forward,
        /// Why it is safe.
        why: String,
    },
    /// Delete blue's target group.
    TargetGroup {
        /// ARN.
        arn: String,
        /// Why it is safe.
        why: String,
    },
    /// Delete one of blue's subnets.
    Subnet {
        /// `subnet-…`.
        id: String,
        /// Its block.
        cidr: Ipv4Net,
        /// Why it is safe.
        why: String,
    },
    /// Disassociate a CIDR block left empty.
    Block {
        /// The association.
        association_id: String,
        /// The block.
        cidr: Ipv4Net,
        /// Why it is safe.
        why: String,
    },
}

impl Removal {
    /// Why removing it is safe.
    pub fn why(&self) -> &str {
        match self {
            Self::Binding { why, .. }
            | Self::Revoke { why, .. }
            | Self::Trust { why, .. }
            | Self::Forward { why, .. }
            | Self::TargetGroup { why, .. }
            | Self::Subnet { why, .. }
            | Self::Block { why, .. } => why,
        }
    }

    /// What it removes, in words.
    pub fn what(&self) -> String {
        match self {
            Self::Binding {
                namespace, name, ..
            } => format!("TargetGroupBinding {namespace}/{name} in blue"),
            Self::Revoke {
                group_id,
                group_name,
                rule,
                ..
            } => format!(
                "{} {} from {group_id} ({group_name})",
                rule_words(rule),
                join(&rule.cidrs)
            ),
            Self::Trust { name, removed, .. } => format!(
                "{removed} statement{} trusting blue from role {name}'s trust policy",
                if *removed == 1 { "" } else { "s" }
            ),
            Self::Forward {
                listener,
                rule,
                target_group,
                ..
            } => format!(
                "target group {} from {}",
                group_name(target_group),
                rule.as_deref().map_or_else(
                    || format!("listener {}", short(listener)),
                    |r| format!("rule {}", short(r))
                )
            ),
            Self::TargetGroup { arn, .. } => format!("target group {}", group_name(arn)),
            Self::Subnet { id, cidr, .. } => format!("subnet {id} ({cidr})"),
            Self::Block { cidr, .. } => format!("VPC CIDR block {cidr}"),
        }
    }
}

/// A listener or rule ARN's last two parts, for people.
fn short(arn: &str) -> String {
    let parts: Vec<&str> = arn.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

fn join(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn rule_words(r: &Rule) -> String {
    let proto = if r.protocol == "-1" {
        "all"
    } else {
        &r.protocol
    };
    match (r.from_port, r.to_port) {
        (Some(f), Some(t)) if f == t => format!("{proto}/{f}"),
        (Some(f), Some(t)) => format!("{proto}/{f}-{t}"),
        _ => proto.to_string(),
    }
}

/// What retiring blue takes: the checks, what `apply` removes, what stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetirePlan {
    /// Blue's context.
    pub blue: String,
    /// Green's context.
    pub green: String,
    /// Every check.
    pub checks: Vec<Check>,
    /// What `apply` removes, in order.
    pub removals: Vec<Removal>,
    /// What baton leaves of blue and why (rules admitting blue alone, subnets in use…).
    pub kept: Vec<String>,
}

impl RetirePlan {
    /// The checks that block.
    pub fn blocking(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .collect()
    }
}

fn check(
    check: &'static str,
    status: Status,
    subject: impl Into<String>,
    evidence: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        check,
        status,
        subject: subject.into(),
        evidence: evidence.into(),
        fix,
    }
}

fn seconds(s: u64) -> String {
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Decides.
pub fn plan(i: &Inputs) -> RetirePlan {
    let mut checks = Vec::new();
    let mut removals = Vec::new();
    let mut kept = Vec::new();
    traffic(i, &mut checks);
    volumes(i, &mut checks);
    let revokes = network(i, &mut checks, &mut kept);
    let trusts = trust(i, &mut checks);
    let bindings = bindings(i, &mut checks);
    // One line per fence, however many moved apps it paused.
    let mut fences: Vec<(&Fence, Vec<&str>)> = Vec::new();
    for (app, f) in &i.fences {
        match fences
            .iter_mut()
            .find(|(g, _)| (g.kind, &g.namespace, &g.name) == (f.kind, &f.namespace, &f.name))
        {
            Some((_, apps)) => apps.push(app),
            None => fences.push((f, vec![app])),
        }
    }
    for (f, apps) in fences {
        let apps = apps.join(", ");
        checks.push(check(
            "fence-kept",
            Status::Note,
            f.to_string(),
            format!(
                "commit kept it paused in blue for {apps} ({}); it goes with blue's cluster",
                f.kind.field()
            ),
            Some(format!(
                "make the pause permanent where the object comes from (Git, Helm values: {}), or delete it before blue's cluster, so nothing scales {apps} up in blue",
                f.kind.field()
            )),
        ));
    }
    removals.extend(bindings);
    removals.extend(revokes);
    removals.extend(trusts);
    listeners(i, &mut removals, &mut kept);
    if i.release_subnets {
        subnets(i, &mut removals, &mut kept);
    }
    RetirePlan {
        blue: i.blue.clone(),
        green: i.green.clone(),
        checks,
        removals,
        kept,
    }
}

fn traffic(i: &Inputs, checks: &mut Vec<Check>) {
    for s in &i.shifts {
        let (status, evidence, fix) = match s.outcome.as_deref() {
            Some("completed") => (
                Status::Pass,
                format!(
                    "{} moved every step from {} to {}",
                    s.journal,
                    group_name(&s.from_group),
                    group_name(&s.to_group)
                ),
                None,
            ),
            Some(o) => (
                Status::Fail,
                format!(
                    "{} ended {o}: traffic went back to {}",
                    s.journal,
                    group_name(&s.from_group)
                ),
                Some(format!(
                    "shift the traffic to green again: baton traffic shift --listener {} --from-tg {} --to-tg {}",
                    s.listener, s.from_group, s.to_group
                )),
            ),
            None => (
                Status::Fail,
                format!("{} has not ended", s.journal),
                Some(format!(
                    "finish it: baton traffic shift --resume --state-dir {}",
                    std::path::Path::new(&s.journal)
                        .parent()
                        .map_or_else(|| ".".into(), |p| p.display().to_string())
                )),
            ),
        };
        checks.push(check(
            "traffic-shifted",
            status,
            format!("shift {}", group_name(&s.from_group)),
            evidence,
            fix,
        ));
    }
    for tg in &i.target_groups {
        let name = group_name(&tg.arn).to_string();
        if tg.shared_with_green {
            checks.push(check(
                "blue-weight-zero",
                Status::Note,
                name.clone(),
                "green binds this group too: its weight and requests are green's as well, so it stays",
                None,
            ));
            continue;
        }
        if tg.forwards.is_empty() {
            checks.push(check(
                "blue-weight-zero",
                Status::Pass,
                name.clone(),
                "no listener or rule forwards to it",
                None,
            ));
        }
        for f in &tg.forwards {
            let weight = f.forward.weight_of(&tg.arn).unwrap_or(0);
            let at = f.rule.as_deref().map_or_else(
                || format!("listener {}", short(&f.listener)),
                |r| format!("rule {}", short(r)),
            );
            if weight == 0 {
                checks.push(check(
                    "blue-weight-zero",
                    Status::Pass,
                    name.clone(),
                    format!("weight 0 at {at} ({})", f.forward.show()),
                    None,
                ));
            } else {
                checks.push(check(
                    "blue-weight-zero",
                    Status::Fail,
                    name.clone(),
                    format!("{at} forwards {:.0}% to it ({})", f.forward.percent_of(&tg.arn), f.forward.show()),
                    Some(format!(
                        "move its traffic to green first: baton traffic shift --listener {}{} --from-tg {} --to-tg GREEN_TG",
                        f.listener,
                        f.rule.as_deref().map(|r| format!(" --rule {r}")).unwrap_or_default(),
                        tg.arn
                    )),
                ));
            }
        }
        let quiet = seconds(tg.quiet_seconds);
        match &tg.requests {
            Ok(0) => checks.push(check(
                "blue-quiet",
                Status::Pass,
                name.clone(),
                format!(
                    "CloudWatch RequestCount 0 over the last {quiet} (deregistration delay {})",
                    seconds(tg.deregistration_delay_seconds)
                ),
                None,
            )),
            Ok(n) => checks.push(check(
                "blue-quiet",
                Status::Fail,
                name.clone(),
                format!("CloudWatch counted {n} request(s) to it in the last {quiet}"),
                Some(format!(
                    "wait until it has served nothing for {quiet} (clients may still hold blue's addresses or its DNS), then run retire plan again"
                )),
            )),
            Err(e) => checks.push(check(
                "blue-quiet",
                Status::Fail,
                name.clone(),
                format!("its requests could not be read: {e}"),
                Some("let baton read CloudWatch (cloudwatch:GetMetricData), then run retire plan again".into()),
            )),
        }
    }
}

fn volumes(i: &Inputs, checks: &mut Vec<Check>) {
    for m in &i.migrations {
        let open: Vec<String> = m
            .apps
            .iter()
            .filter(|(_, p)| **p != Some(AppPhase::Committed))
            .map(|(a, p)| format!("{a} ({})", p.map_or("not started", |p| p.name())))
            .collect();
        if open.is_empty() {
            checks.push(check(
                "migrations-committed",
                Status::Pass,
                format!("migration {}", m.id),
                format!("{} app(s) committed ({})", m.apps.len(), m.dir),
                None,
            ));
        } else {
            checks.push(check(
                "migrations-committed",
                Status::Fail,
                format!("migration {}", m.id),
                format!("not committed: {}", open.join(", ")),
                Some(format!(
                    "finish it: baton migrate --resume --state-dir {0}, then baton commit --state-dir {0} (or baton rollback --state-dir {0} and keep blue)",
                    m.dir
                )),
            ));
        }
    }
    let live: Vec<&BlueVolume> = i.volumes.iter().filter(|v| v.live).collect();
    if live.is_empty() {
        checks.push(check(
            "blue-volumes-released",
            Status::Pass,
            "blue's PVs",
            format!(
                "no PV in blue is bound to a live EBS volume{}",
                if i.volumes.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} PV(s) name volumes EC2 no longer has)",
                        i.volumes.len()
                    )
                }
            ),
            None,
        ));
    }
    for v in live {
        checks.push(check(
            "blue-volumes-released",
            Status::Fail,
            format!("PV {}", v.pv),
            format!(
                "bound to live EBS volume {}{}{}",
                v.volume_id,
                v.claim.as_deref().map(|c| format!(", claim {c}")).unwrap_or_default(),
                if v.pods.is_empty() {
                    String::new()
                } else {
                    format!(", mounted by {}", v.pods.join(", "))
                }
            ),
            Some(match &v.claim {
                Some(c) => format!(
                    "move the app that uses claim {c} to green (baton migrate, then commit), or back it up and delete it; baton never retires a cluster that holds live data"
                ),
                None => format!(
                    "if its volume is green's or no longer needed, first make PV {0} Retain in blue (kubectl patch pv {0} -p '{{\"spec\":{{\"persistentVolumeReclaimPolicy\":\"Retain\"}}}}'), then delete it: deleted under Delete, blue's driver would delete the EBS volume too",
                    v.pv
                ),
            }),
        ));
    }
}

/// Whether `net` lies inside one of `ranges`.
fn inside(net: &Ipv4Net, ranges: &[Ipv4Net]) -> bool {
    ranges.iter().any(|r| r.contains(net))
}

fn network(i: &Inputs, checks: &mut Vec<Check>, kept: &mut Vec<String>) -> Vec<Removal> {
    let mut out = Vec::new();
    if i.blue_ranges.is_empty() {
        kept.push("security groups: blue's ranges are not known (no node or pod subnet read), so no rule is changed".into());
        return out;
    }
    if i.green_ranges.is_empty() {
        // Without green's ranges, every rule would look like it admits green already.
        checks.push(check(
            "green-network",
            Status::Fail,
            "security groups",
            format!(
                "green's ranges are not known (none of its nodes' or ENIConfigs' subnets was read), so baton cannot tell whether green is admitted where blue's ranges ({}) are",
                join(&i.blue_ranges)
            ),
            Some(format!(
                "check that {}'s nodes run on EC2 instances baton can read (ec2:DescribeInstances), then run retire plan again",
                i.green
            )),
        ));
        return out;
    }
    let missing = mirror::mirror(&i.security_groups, &i.blue_ranges, &i.green_ranges);
    if missing.is_empty() {
        checks.push(check(
            "green-network",
            Status::Pass,
            "security groups",
            format!(
                "every rule admitting blue's ranges ({}) admits green's ({}) on the same ports",
                join(&i.blue_ranges),
                join(&i.green_ranges)
            ),
            None,
        ));
    }
    for m in &missing {
        checks.push(check(
            "green-network",
            Status::Fail,
            format!("{} ({})", m.group_id, m.group_name),
            format!(
                "admits blue's {} on {} but not green's {}",
                join(&m.blue),
                rule_words(&Rule {
                    protocol: m.protocol.clone(),
                    from_port: m.from_port,
                    to_port: m.to_port,
                    cidrs: Vec::new()
                }),
                join(&m.add)
            ),
            Some(format!(
                "give green the same access (baton network mirror-rules --from-cidrs {} --to-cidrs {} --apply), or remove the rule if nothing needs it",
                join(&i.blue_ranges).replace(", ", ","),
                join(&i.green_ranges).replace(", ", ",")
            )),
        ));
    }
    for g in &i.security_groups {
        for r in &g.rules {
            let blue: Vec<Ipv4Net> = r
                .cidrs
                .iter()
                .copied()
                .filter(|c| inside(c, &i.blue_ranges))
                .collect();
            if blue.is_empty() {
                continue;
            }
            let lacks_green = missing.iter().any(|m| {
                m.group_id == g.id
                    && m.protocol == r.protocol
                    && m.from_port == r.from_port
                    && m.to_port == r.to_port
            });
            let rule = Rule {
                protocol: r.protocol.clone(),
                from_port: r.from_port,
                to_port: r.to_port,
                cidrs: blue,
            };
            if lacks_green {
                kept.push(format!(
                    "{} {} in {} ({}): it admits blue alone; baton never removes such a rule",
                    rule_words(&rule),
                    join(&rule.cidrs),
                    g.id,
                    g.name
                ));
                continue;
            }
            out.push(Removal::Revoke {
                group_id: g.id.clone(),
                group_name: g.name.clone(),
                why: format!(
                    "green's {} are admitted on {} in the same group",
                    join(&i.green_ranges),
                    rule_words(&rule)
                ),
                rule,
            });
        }
    }
    out
}

/// The statements of a trust policy as a list (one statement may stand alone).
fn statements(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Whether a statement's principal is (only) this federated provider.
fn names_provider(st: &Value, provider: &Provider) -> bool {
    match &st["Principal"]["Federated"] {
        Value::String(s) => s == &provider.arn,
        Value::Array(a) => a.iter().any(|v| v.as_str() == Some(&provider.arn)),
        _ => false,
    }
}

/// The trust policy without the statements that name `provider` (an array of providers
/// loses that one only). None when nothing names it.
pub fn without_provider(doc: &Value, provider: &Provider) -> Option<(Value, usize)> {
    let list = statements(doc);
    let mut removed = 0;
    let mut keep = Vec::new();
    for st in list {
        if !names_provider(&st, provider) {
            keep.push(st);
            continue;
        }
        match &st["Principal"]["Federated"] {
            Value::Array(a) if a.len() > 1 => {
                let mut st = st.clone();
                let rest: Vec<Value> = a
                    .iter()
                    .filter(|v| v.as_str() != Some(&provider.arn))
                    .cloned()
                    .collect();
                st["Principal"]["Federated"] = Value::Array(rest);
                removed += 1;
                keep.push(st);
            }
            _ => removed += 1,
        }
    }
    if removed == 0 {
        return None;
    }
    let mut out = doc.clone();
    out["Statement"] = Value::Array(keep);
    Some((out, removed))
}

fn trust(i: &Inputs, checks: &mut Vec<Check>) -> Vec<Removal> {
    let mut out = Vec::new();
    let (Some(blue), Some(green)) = (&i.blue_provider, &i.green_provider) else {
        if !i.roles.is_empty() {
            checks.push(check(
                "green-trust",
                Status::Fail,
                "IAM roles of blue's pods",
                "blue's or green's OIDC issuer could not be read, so no trust can be checked",
                Some(
                    "check `aws eks describe-cluster` for both clusters (identity.oidc.issuer)"
                        .into(),
                ),
            ));
        }
        return out;
    };
    for r in &i.roles {
        let trust = match &r.trust {
            Ok(t) => t,
            Err(e) => {
                checks.push(check(
                    "green-trust",
                    Status::Fail,
                    format!("role {}", r.name),
                    format!("its trust policy could not be read: {e}"),
                    Some("let baton read it (iam:GetRole), then run retire plan again".into()),
                ));
                continue;
            }
        };
        let subjects: Vec<String> = r
            .service_accounts
            .iter()
            .map(|s| {
                let (ns, name) = s.split_once('/').unwrap_or((s, ""));
                identity::subject(ns, name)
            })
            .collect();
        let untrusted: Vec<&String> = r
            .service_accounts
            .iter()
            .zip(&subjects)
            .filter(|(_, sub)| {
                !matches!(identity::trusts(trust, green, sub, &r.audience), Ok(true))
            })
            .map(|(sa, _)| sa)
            .collect();
        if !untrusted.is_empty() {
            checks.push(check(
                "green-trust",
                Status::Fail,
                format!("role {}", r.name),
                format!(
                    "green's provider is not trusted for {}",
                    untrusted
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(format!(
                    "trust green first: baton identity apply --from {} --to {}",
                    i.blue, i.green
                )),
            ));
            continue;
        }
        checks.push(check(
            "green-trust",
            Status::Pass,
            format!("role {}", r.name),
            format!(
                "trusts green's provider for {}",
                r.service_accounts.join(", ")
            ),
            None,
        ));
        if let Some((document, removed)) = without_provider(trust, blue) {
            out.push(Removal::Trust {
                role: r.arn.clone(),
                name: r.name.clone(),
                document,
                removed,
                why: format!(
                    "green's pods assume it through green's provider; blue's provider is {}",
                    blue.host
                ),
            });
        }
    }
    out
}

fn bindings(i: &Inputs, checks: &mut Vec<Check>) -> Vec<Removal> {
    let mut out = Vec::new();
    for b in &i.blue_bindings {
        let green = i
            .green_bindings
            .iter()
            .find(|g| g.namespace == b.namespace && g.service() == b.service());
        match green {
            None => checks.push(check(
                "green-bindings",
                Status::Fail,
                format!("TargetGroupBinding {}", b.key()),
                format!(
                    "green has no binding of Service {}/{}",
                    b.namespace,
                    b.service()
                ),
                Some(format!(
                    "bind green's pods first: baton traffic bindings --from {} --to {} --apply",
                    i.blue, i.green
                )),
            )),
            Some(g) => {
                checks.push(check(
                    "green-bindings",
                    Status::Pass,
                    format!("TargetGroupBinding {}", b.key()),
                    format!(
                        "green's {} registers Service {} in {}",
                        g.key(),
                        g.service(),
                        group_name(g.target_group())
                    ),
                    None,
                ));
                out.push(Removal::Binding {
                    namespace: b.namespace.clone(),
                    name: b.name.clone(),
                    target_group: b.target_group().to_string(),
                    why: format!(
                        "green's {} serves the same Service; blue's controller deregisters blue's targets as it lets go",
                        g.key()
                    ),
                });
            }
        }
    }
    out
}

fn listeners(i: &Inputs, removals: &mut Vec<Removal>, kept: &mut Vec<String>) {
    // Several of blue's groups in one action: each removal applies to the action as the
    // previous one left it.
    let mut actions: BTreeMap<(String, Option<String>), Forward> = BTreeMap::new();
    for tg in &i.target_groups {
        if tg.shared_with_green {
            continue;
        }
        let mut all_zero = true;
        for f in &tg.forwards {
            if f.forward.weight_of(&tg.arn).unwrap_or(0) != 0 {
                all_zero = false;
                continue;
            }
            let key = (f.listener.clone(), f.rule.clone());
            let current = actions.entry(key).or_insert_with(|| f.forward.clone());
            let before = current.clone();
            let rest: Vec<_> = current
                .groups
                .iter()
                .filter(|g| g.arn != tg.arn)
                .cloned()
                .collect();
            if rest.is_empty() || rest.iter().all(|g| g.weight == 0) {
                kept.push(format!(
                    "{} stays in its action: nothing else there takes traffic",
                    group_name(&tg.arn)
                ));
                all_zero = false;
                continue;
            }
            current.groups = rest;
            if current.groups.len() == 1 {
                current.stickiness = None;
            }
            removals.push(Removal::Forward {
                listener: f.listener.clone(),
                rule: f.rule.clone(),
                target_group: tg.arn.clone(),
                before,
                forward: current.clone(),
                why: "its weight is 0: it takes no new request".into(),
            });
        }
        if i.delete_target_groups {
            if all_zero && tg.registered == 0 {
                removals.push(Removal::TargetGroup {
                    arn: tg.arn.clone(),
                    why: "no listener forwards to it once removed above, and it has no target"
                        .into(),
                });
            } else if all_zero {
                removals.push(Removal::TargetGroup {
                    arn: tg.arn.clone(),
                    why: format!(
                        "deleted once its {} target(s) are gone (blue's binding, removed above, deregisters them)",
                        tg.registered
                    ),
                });
            }
        }
    }
}

fn subnets(i: &Inputs, removals: &mut Vec<Removal>, kept: &mut Vec<String>) {
    let mut released: Vec<Ipv4Net> = Vec::new();
    for s in &i.subnets {
        if s.interfaces > 0 {
            kept.push(format!(
                "subnet {} ({}) still holds {} network interface(s): delete blue's cluster and node groups first, then run retire apply --release-subnets again",
                s.id, s.cidr, s.interfaces
            ));
            continue;
        }
        released.push(s.cidr);
        removals.push(Removal::Subnet {
            id: s.id.clone(),
            cidr: s.cidr,
            why: format!("blue's, in {}, and no network interface uses it", s.az),
        });
    }
    for b in &i.blocks {
        if b.primary {
            continue;
        }
        let holds: Vec<&Ipv4Net> = i
            .vpc_subnets
            .iter()
            .filter(|s| b.cidr.contains(*s))
            .collect();
        let after: Vec<&&Ipv4Net> = holds.iter().filter(|s| !released.contains(s)).collect();
        if !holds.is_empty() && after.is_empty() {
            removals.push(Removal::Block {
                association_id: b.association_id.clone(),
                cidr: b.cidr,
                why: "only blue's released subnets were in it".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::traffic::split::GroupWeight;

    const BLUE_TG: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/blue/1";
    const GREEN_TG: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/green/2";
    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/lb/3/4";

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn forward(blue: u32, green: u32) -> Forward {
        Forward {
            groups: vec![
                GroupWeight {
                    arn: BLUE_TG.into(),
                    weight: blue,
                },
                GroupWeight {
                    arn: GREEN_TG.into(),
                    weight: green,
                },
            ],
            stickiness: None,
        }
    }

    fn provider(id: &str) -> Provider {
        Provider::of(
            "1",
            &format!("https://oidc.eks.us-east-1.amazonaws.com/id/{id}"),
        )
    }

    fn eks_trust(p: &Provider, sub: &str) -> Value {
        json!({"Effect": "Allow", "Principal": {"Federated": p.arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{}:sub", p.host): sub, format!("{}:aud", p.host): "sts.amazonaws.com"}}})
    }

    fn binding(ns: &str, name: &str, service: &str, tg: &str) -> Binding {
        Binding {
            namespace: ns.into(),
            name: name.into(),
            spec: json!({"serviceRef": {"name": service, "port": 80}, "targetGroupARN": tg}),
        }
    }

    /// Blue retired as the default estate leaves it after a move: traffic on green,
    /// quiet, committed, green trusted, bound and admitted.
    fn idle() -> Inputs {
        let sub = identity::subject("web", "storefront");
        Inputs {
            blue: "blue".into(),
            green: "green".into(),
            migrations: vec![Migration {
                dir: ".baton/blue-to-green".into(),
                id: "m1".into(),
                from: "blue".into(),
                to: "green".into(),
                apps: [("orders/orders-db".to_string(), Some(AppPhase::Committed))].into(),
            }],
            shifts: vec![Shift {
                journal: ".baton/traffic/traffic.jsonl".into(),
                listener: LISTENER.into(),
                rule: None,
                from_group: BLUE_TG.into(),
                to_group: GREEN_TG.into(),
                outcome: Some("completed".into()),
            }],
            target_groups: vec![TargetGroup {
                arn: BLUE_TG.into(),
                why_blue: "blue's binding web/storefront-blue".into(),
                shared_with_green: false,
                forwards: vec![ForwardUse {
                    load_balancer: "lb".into(),
                    listener: LISTENER.into(),
                    rule: None,
                    forward: forward(0, 100),
                }],
                registered: 3,
                requests: Ok(0),
                deregistration_delay_seconds: 300,
                quiet_seconds: 900,
            }],
            volumes: vec![],
            security_groups: vec![Group {
                id: "sg-db".into(),
                name: "orders-db".into(),
                rules: vec![
                    Rule {
                        protocol: "tcp".into(),
                        from_port: Some(5432),
                        to_port: Some(5432),
                        cidrs: vec![net("10.0.0.0/20"), net("10.9.0.0/24")],
                    },
                    Rule {
                        protocol: "tcp".into(),
                        from_port: Some(5432),
                        to_port: Some(5432),
                        cidrs: vec![net("10.1.0.0/20")],
                    },
                ],
            }],
            blue_ranges: vec![net("10.0.0.0/20")],
            green_ranges: vec![net("10.1.0.0/20")],
            blue_provider: Some(provider("B")),
            green_provider: Some(provider("G")),
            roles: vec![RoleTrust {
                arn: "arn:aws:iam::1:role/storefront".into(),
                name: "storefront".into(),
                service_accounts: vec!["web/storefront".into()],
                audience: "sts.amazonaws.com".into(),
                trust: Ok(json!({"Version": "2012-10-17", "Statement": [
                    eks_trust(&provider("B"), &sub), eks_trust(&provider("G"), &sub)]})),
            }],
            blue_bindings: vec![binding("web", "storefront-blue", "web", BLUE_TG)],
            green_bindings: vec![binding("web", "storefront-green", "web", GREEN_TG)],
            fences: vec![],
            subnets: vec![Subnet {
                id: "subnet-b".into(),
                cidr: net("10.0.0.0/20"),
                az: "us-east-1a".into(),
                interfaces: 0,
            }],
            vpc_subnets: vec![net("10.0.0.0/20"), net("10.1.0.0/20"), net("100.64.0.0/19")],
            blocks: vec![
                Block {
                    association_id: "a-primary".into(),
                    cidr: net("10.0.0.0/16"),
                    primary: true,
                },
                Block {
                    association_id: "a-green".into(),
                    cidr: net("10.1.0.0/16"),
                    primary: false,
                },
            ],
            release_subnets: false,
            delete_target_groups: false,
        }
    }

    fn failing(p: &RetirePlan) -> Vec<&'static str> {
        p.blocking().iter().map(|c| c.check).collect()
    }

    #[test]
    fn an_idle_blue_passes_and_its_footprint_is_removed_bindings_first() {
        let p = plan(&idle());
        assert!(p.blocking().is_empty(), "{:#?}", p.checks);
        let kinds: Vec<&str> = p
            .removals
            .iter()
            .map(|r| match r {
                Removal::Binding { .. } => "binding",
                Removal::Revoke { .. } => "revoke",
                Removal::Trust { .. } => "trust",
                Removal::Forward { .. } => "forward",
                Removal::TargetGroup { .. } => "tg",
                Removal::Subnet { .. } => "subnet",
                Removal::Block { .. } => "block",
            })
            .collect();
        assert_eq!(kinds, ["binding", "revoke", "trust", "forward"]);
        // Only blue's block leaves the rule; the unrelated 10.9.0.0/24 stays.
        let Removal::Revoke { rule, .. } = &p.removals[1] else {
            unreachable!()
        };
        assert_eq!(rule.cidrs, vec![net("10.0.0.0/20")]);
        // Green's statement stays, blue's goes.
        let Removal::Trust {
            document, removed, ..
        } = &p.removals[2]
        else {
            unreachable!()
        };
        assert_eq!(*removed, 1);
        let sub = identity::subject("web", "storefront");
        assert_eq!(
            identity::trusts(document, &provider("G"), &sub, "sts.amazonaws.com"),
            Ok(true)
        );
        assert_eq!(
            identity::trusts(document, &provider("B"), &sub, "sts.amazonaws.com"),
            Ok(false)
        );
        let Removal::Forward { forward, .. } = &p.removals[3] else {
            unreachable!()
        };
        assert_eq!(forward.groups.len(), 1);
        assert_eq!(forward.groups[0].arn, GREEN_TG);
    }

    #[test]
    fn weight_on_blue_or_requests_inside_the_quiet_time_block() {
        let mut i = idle();
        i.target_groups[0].forwards[0].forward = forward(10, 90);
        i.target_groups[0].requests = Ok(42);
        let p = plan(&i);
        assert_eq!(failing(&p), ["blue-weight-zero", "blue-quiet"]);
        let quiet = p.blocking()[1];
        assert!(
            quiet.evidence.contains("42") && quiet.subject == "blue",
            "{quiet:?}"
        );
        // No forward removal for a group still weighted.
        assert!(
            !p.removals
                .iter()
                .any(|r| matches!(r, Removal::Forward { .. }))
        );
    }

    #[test]
    fn an_unfinished_shift_or_migration_blocks_with_the_command_that_finishes_it() {
        let mut i = idle();
        i.shifts[0].outcome = None;
        i.migrations[0]
            .apps
            .insert("cache/session-cache".into(), Some(AppPhase::Migrated));
        let p = plan(&i);
        assert_eq!(failing(&p), ["traffic-shifted", "migrations-committed"]);
        assert!(
            p.blocking()[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("--resume --state-dir .baton/traffic")
        );
        assert!(
            p.blocking()[1]
                .fix
                .as_deref()
                .unwrap()
                .contains("baton commit --state-dir .baton/blue-to-green")
        );
    }

    #[test]
    fn a_live_volume_in_blue_blocks_naming_pv_volume_claim_and_pods() {
        let mut i = idle();
        i.volumes = vec![
            BlueVolume {
                pv: "pvc-1".into(),
                volume_id: "vol-1".into(),
                claim: Some("jobs/scratch".into()),
                pods: vec!["jobs/runner-0".into()],
                live: true,
            },
            BlueVolume {
                pv: "pvc-gone".into(),
                volume_id: "vol-gone".into(),
                claim: None,
                pods: vec![],
                live: false,
            },
        ];
        let p = plan(&i);
        let b = p.blocking();
        assert_eq!(b.len(), 1);
        assert!(
            b[0].evidence.contains("vol-1")
                && b[0].evidence.contains("jobs/scratch")
                && b[0].evidence.contains("jobs/runner-0"),
            "{:?}",
            b[0]
        );
    }

    #[test]
    fn green_lacking_access_trust_or_binding_blocks_and_nothing_of_it_is_removed() {
        let mut i = idle();
        i.security_groups[0].rules.pop();
        let sub = identity::subject("web", "storefront");
        i.roles[0].trust = Ok(json!({"Statement": [eks_trust(&provider("B"), &sub)]}));
        i.green_bindings.clear();
        let p = plan(&i);
        assert_eq!(
            failing(&p),
            ["green-network", "green-trust", "green-bindings"]
        );
        assert!(
            p.removals
                .iter()
                .all(|r| matches!(r, Removal::Forward { .. }))
        );
        assert!(
            p.kept.iter().any(|k| k.contains("admits blue alone")),
            "{:?}",
            p.kept
        );
        assert!(
            p.blocking()[1]
                .fix
                .as_deref()
                .unwrap()
                .contains("baton identity apply")
        );
    }

    #[test]
    fn unknown_green_ranges_block_and_revoke_nothing() {
        let mut i = idle();
        i.green_ranges.clear();
        let p = plan(&i);
        assert_eq!(failing(&p), ["green-network"]);
        assert!(
            !p.removals
                .iter()
                .any(|r| matches!(r, Removal::Revoke { .. }))
        );
    }

    #[test]
    fn a_broad_rule_that_merely_overlaps_blue_is_never_cut() {
        let mut i = idle();
        i.security_groups[0].rules = vec![Rule {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            cidrs: vec![net("10.0.0.0/8")],
        }];
        let p = plan(&i);
        assert!(p.blocking().is_empty(), "{:#?}", p.blocking());
        assert!(
            !p.removals
                .iter()
                .any(|r| matches!(r, Removal::Revoke { .. }))
        );
    }

    #[test]
    fn released_subnets_take_their_emptied_block_but_never_the_primary() {
        let mut i = idle();
        i.release_subnets = true;
        i.subnets.push(Subnet {
            id: "subnet-pods".into(),
            cidr: net("100.64.0.0/19"),
            az: "us-east-1a".into(),
            interfaces: 0,
        });
        i.subnets.push(Subnet {
            id: "subnet-busy".into(),
            cidr: net("10.0.16.0/20"),
            az: "us-east-1b".into(),
            interfaces: 2,
        });
        i.vpc_subnets.push(net("10.0.16.0/20"));
        i.blocks.push(Block {
            association_id: "a-pods".into(),
            cidr: net("100.64.0.0/16"),
            primary: false,
        });
        let p = plan(&i);
        let gone: Vec<String> = p
            .removals
            .iter()
            .filter_map(|r| match r {
                Removal::Subnet { id, .. } => Some(id.clone()),
                Removal::Block { cidr, .. } => Some(cidr.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(gone, ["subnet-b", "subnet-pods", "100.64.0.0/16"]);
        assert!(p.kept.iter().any(|k| k.contains("subnet-busy")));
    }

    #[test]
    fn a_group_green_binds_too_stays_and_does_not_block() {
        let mut i = idle();
        i.target_groups[0].shared_with_green = true;
        i.target_groups[0].requests = Ok(500);
        i.target_groups[0].forwards[0].forward = forward(100, 0);
        let p = plan(&i);
        assert!(p.blocking().is_empty(), "{:#?}", p.blocking());
        assert!(
            !p.removals
                .iter()
                .any(|r| matches!(r, Removal::Forward { .. }))
        );
    }

    #[test]
    fn a_fence_kept_for_two_apps_is_said_once_naming_both_and_does_not_block() {
        let mut i = idle();
        let fence = |shared| Fence {
            kind: crate::fences::FenceKind::Kustomization,
            namespace: "flux-system".into(),
            name: "ledger".into(),
            shared,
            version: None,
        };
        i.fences = vec![
            ("ledger/ledger-db".into(), fence(true)),
            ("ledger/ledger-proxy".into(), fence(false)),
        ];
        let p = plan(&i);
        let notes: Vec<&Check> = p
            .checks
            .iter()
            .filter(|c| c.check == "fence-kept")
            .collect();
        assert_eq!(notes.len(), 1, "{notes:#?}");
        assert!(
            notes[0]
                .evidence
                .contains("ledger/ledger-db, ledger/ledger-proxy")
        );
        assert!(p.blocking().is_empty());
    }

    #[test]
    fn a_second_plan_after_apply_removes_nothing() {
        let mut i = idle();
        let p = plan(&i);
        // As apply leaves the world.
        i.blue_bindings.clear();
        for r in &p.removals {
            match r {
                Removal::Revoke { group_id, rule, .. } => {
                    let g = i
                        .security_groups
                        .iter_mut()
                        .find(|g| &g.id == group_id)
                        .unwrap();
                    for x in &mut g.rules {
                        x.cidrs.retain(|c| !rule.cidrs.contains(c));
                    }
                }
                Removal::Trust { document, .. } => i.roles[0].trust = Ok(document.clone()),
                Removal::Forward { forward, .. } => {
                    i.target_groups[0].forwards[0].forward = forward.clone();
                }
                _ => {}
            }
        }
        i.target_groups[0].forwards.clear();
        let again = plan(&i);
        assert!(again.blocking().is_empty(), "{:#?}", again.blocking());
        assert!(again.removals.is_empty(), "{:#?}", again.removals);
    }
}
