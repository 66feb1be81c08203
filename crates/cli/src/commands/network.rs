//! `baton network plan`, `apply`, `mirror-rules`: green's address space in blue's VPC.
//! The core decides (`baton_core::network`); this module reads the VPC and blue, carries
//! out the steps through `baton-aws`, and prints. Every refusal comes before the first
//! change and exits 3.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use baton_aws::{
    AssociateVpcCidrBlock, AuthorizeSecurityGroupIngress, Aws, Filter, IngressRule, NewSubnet,
};
use baton_core::network::apply::{self, Step};
use baton_core::network::mirror::{self, Group, Mirror, Rule};
use baton_core::network::plan::{
    BlockView, BlueView, EniConfigManifest, NETWORK_PLAN_VERSION, NetworkPlan, ROLE_TAG, Request,
    SubnetView, VpcView,
};
use baton_core::network::planner::{self, Inputs};
use baton_core::network::sizing::{CniMode, WarmTargets};
use ipnet::Ipv4Net;
use serde::Serialize;

use super::output::{confirm, emit_plan, render, table};
use super::stateful::world::{connect_aws, connect_blue};
use crate::args::{MirrorRulesArgs, NetworkApplyArgs, NetworkPlanArgs, Output};
use crate::commands::retry::poll_until;
use crate::exit::{Refused, code};
use crate::resolved::{AwsTarget, Blue};

/// The VPC as the planner sees it; an unknown VPC is refused.
async fn read_vpc(aws: &Aws, vpc_id: &str) -> anyhow::Result<VpcView> {
    let vpc = match aws.describe_vpc(vpc_id).await {
        Ok(v) => v,
        Err(e) if e.is_not_found() || e.code().is_some_and(|c| c.contains("Malformed")) => {
            return Err(Refused(format!(
                "failed to find VPC {vpc_id} in region {}: check --vpc (aws ec2 describe-vpcs) and --region ({e})",
                aws.region()
            ))
            .into());
        }
        Err(e) => return Err(e).context("failed to read the VPC"),
    };
    let subnets = aws
        .describe_subnets(&[Filter::new("vpc-id", [vpc_id])])
        .await
        .context("failed to read the VPC's subnets")?;
    Ok(VpcView {
        id: vpc.id,
        primary: vpc.primary_cidr,
        blocks: vpc
            .cidr_blocks
            .into_iter()
            .map(|b| BlockView {
                cidr: b.cidr,
                state: b.state,
            })
            .collect(),
        subnets: subnets
            .into_iter()
            .map(|s| SubnetView {
                id: s.id,
                az: s.availability_zone,
                cidr: s.cidr,
                available: u64::try_from(s.available_ips).unwrap_or(0),
                tags: s.tags,
            })
            .collect(),
    })
}

/// Blue's ENIConfigs and the subnets of its nodes.
async fn read_blue(blue: &Blue, aws: &Aws) -> anyhow::Result<BlueView> {
    let context = &blue.context;
    let blue = connect_blue(blue).await?;
    let (eni_configs, instances) = futures::try_join!(blue.eni_configs(), blue.node_instances())?;
    let mut node_subnets: Vec<String> = if instances.is_empty() {
        Vec::new()
    } else {
        aws.describe_instances(&[Filter::new("instance-id", instances)])
            .await
            .context("failed to read blue's nodes' EC2 instances")?
            .into_iter()
            .filter_map(|i| i.subnet_id)
            .collect()
    };
    node_subnets.sort();
    node_subnets.dedup();
    Ok(BlueView {
        context: context.to_string(),
        node_subnets,
        eni_configs,
    })
}

fn plan_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "net-{}-{:x}{:05x}",
        now.as_secs(),
        std::process::id(),
        now.subsec_nanos() & 0xfffff
    )
}

/// `baton network plan`.
pub async fn plan(a: NetworkPlanArgs) -> anyhow::Result<ExitCode> {
    let blue = a.from.as_ref().map(|context| Blue {
        context: context.clone(),
        kubeconfig: a.kubeconfig.clone(),
    });
    let aws = connect_aws(&AwsTarget::from(&a.aws)).await?;
    let zones = aws.availability_zones().await?;
    let vpc = read_vpc(&aws, &a.vpc).await?;
    let blue = match &blue {
        Some(b) => Some(read_blue(b, &aws).await?),
        None => None,
    };
    let request = Request {
        cluster: a.cluster_name.clone(),
        azs: a.azs.clone(),
        nodes: a.nodes,
        pods: a.pods,
        instance_type: a.instance_type.clone(),
        max_pods_per_node: a.max_pods_per_node,
        mode: CniMode {
            prefix_delegation: a.prefix_delegation,
            custom_networking: a.custom_networking,
        },
        warm: WarmTargets {
            eni: a.warm_eni_target,
            ip: a.warm_ip_target,
            prefix: a.warm_prefix_target,
        },
        surge_percent: a.surge,
        avoid: a.avoid.iter().map(Ipv4Net::trunc).collect(),
        cidr_quota: a.cidr_quota,
    };
    let id = plan_id();
    let created = jiff::Timestamp::now().to_string();
    let plan = planner::plan(&Inputs {
        vpc: &vpc,
        request: &request,
        blue: blue.as_ref(),
        region: aws.region(),
        region_azs: &zones,
        id: &id,
        created: &created,
    })
    .map_err(|e| Refused(e.to_string()))?;
    emit_plan(
        &plan,
        plan_table(&plan),
        a.output,
        a.out.as_deref(),
        "network plan",
    )?;
    Ok(ExitCode::from(code::OK))
}

fn mode_words(m: CniMode) -> &'static str {
    match (m.prefix_delegation, m.custom_networking) {
        (false, false) => "secondary-IP mode",
        (false, true) => "secondary-IP mode, custom networking",
        (true, false) => "prefix delegation",
        (true, true) => "prefix delegation, custom networking",
    }
}

fn plan_table(p: &NetworkPlan) -> String {
    let r = &p.request;
    let s = &p.sizing;
    let mut out = format!(
        "Network plan {} for {} in {} ({}), primary block {}\n{} nodes ({} with surge, {} per zone) × {}, {} pods, {}\n\n",
        p.id,
        r.cluster,
        p.vpc_id,
        p.region,
        p.primary,
        r.nodes,
        s.nodes_with_surge,
        s.nodes_per_az,
        r.instance_type,
        r.pods,
        mode_words(r.mode)
    );
    out += "The VPC's address map:\n";
    let rows: Vec<Vec<String>> = p
        .blocks
        .iter()
        .flat_map(|b| {
            let head = vec![
                b.cidr.to_string(),
                b.state.clone(),
                String::new(),
                String::new(),
                String::new(),
                format!("{} not in any subnet", b.unallocated),
                String::new(),
            ];
            std::iter::once(head).chain(b.subnets.iter().map(|sn| {
                vec![
                    String::new(),
                    String::new(),
                    sn.cidr.to_string(),
                    sn.id.clone().unwrap_or_else(|| "(new)".into()),
                    sn.az.clone(),
                    sn.usage.clone(),
                    sn.free.to_string(),
                ]
            }))
        })
        .collect();
    out += &table(
        &["BLOCK", "STATE", "SUBNET", "ID", "AZ", "USE", "FREE"],
        &rows,
    );
    out += "\nWhat green needs, per zone:\n";
    let rows: Vec<Vec<String>> = p
        .needs
        .iter()
        .map(|n| {
            let new = p.subnets.iter().find(|s| s.az == n.az && s.role == n.role);
            vec![
                n.az.clone(),
                n.role.to_string(),
                if n.prefixes > 0 {
                    format!("{} ({} /28s)", n.addresses, n.prefixes)
                } else {
                    n.addresses.to_string()
                },
                n.existing
                    .iter()
                    .map(|e| format!("{} ({} free)", e.id, e.free))
                    .collect::<Vec<_>>()
                    .join(", "),
                new.map_or("-".into(), |s| s.cidr.to_string()),
                new.map_or("-".into(), |s| s.usable.to_string()),
            ]
        })
        .collect();
    out += &table(
        &[
            "AZ",
            "ROLE",
            "NEEDED",
            "EXISTING GREEN SUBNETS",
            "NEW SUBNET",
            "USABLE",
        ],
        &rows,
    );
    if p.new_blocks.is_empty() {
        out += "\nNo new CIDR block needed.\n";
    } else {
        out += "\nCIDR blocks to associate:\n";
        for b in &p.new_blocks {
            out += &format!("  {}  {}\n", b.cidr, b.reason);
        }
    }
    if !p.eni_configs.is_empty() {
        out += "\nENIConfigs for green (custom networking; `baton network apply` prints the manifests with the new subnets' ids):\n";
        for e in &p.eni_configs {
            out += &format!(
                "  {}  subnet {}{}\n",
                e.name,
                e.subnet_cidr,
                e.subnet_id
                    .as_ref()
                    .map(|i| format!(" ({i})"))
                    .unwrap_or_default()
            );
        }
    }
    out += "\nHow it was sized:\n";
    for line in &p.explanation {
        out += &format!("  - {line}\n");
    }
    if !p.blue_ranges.is_empty() {
        out += &format!(
            "\nBlue's ranges: {}\nGreen's ranges: {}\n",
            join(&p.blue_ranges),
            join(&p.green_ranges)
        );
    }
    out
}

fn join(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A network plan file; one that cannot be read, parsed or is of another version is
/// refused (nothing was changed), naming the file and how to make one.
fn read_plan(path: &Path) -> anyhow::Result<NetworkPlan> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Refused(format!(
            "failed to read the network plan {} ({e}); make one with `baton network plan … --out FILE`",
            path.display()
        ))
    })?;
    let plan: NetworkPlan = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(json) => serde_saphyr::from_str(&text).map_err(|yaml| {
            Refused(format!(
                "failed to read the network plan {}: it is neither JSON ({json}) nor YAML ({yaml}); make one with `baton network plan … --out FILE`",
                path.display()
            ))
        })?,
    };
    if plan.version != NETWORK_PLAN_VERSION {
        return Err(Refused(format!(
            "failed to read the network plan {}: version {} is not {NETWORK_PLAN_VERSION}; make a new one with `baton network plan … --out FILE`",
            path.display(),
            plan.version
        ))
        .into());
    }
    Ok(plan)
}

/// What `apply` did, for `-o json|yaml`.
#[derive(Debug, Serialize)]
struct Applied {
    plan: String,
    vpc_id: String,
    associated: Vec<Ipv4Net>,
    created: BTreeMap<Ipv4Net, String>,
    already_associated: Vec<Ipv4Net>,
    already_created: BTreeMap<Ipv4Net, String>,
    eni_configs: Vec<EniConfigManifest>,
}

/// One change `network apply` makes, as the request sent.
enum Change {
    Associate(AssociateVpcCidrBlock),
    CreateSubnet(NewSubnet),
}

impl Change {
    /// The request of a step: built here once, then listed, printed by `--dry-run` and sent.
    fn of(vpc_id: &str, step: &Step) -> Self {
        match step {
            Step::Associate(b) => Change::Associate(AssociateVpcCidrBlock {
                vpc_id: vpc_id.to_owned(),
                cidr_block: *b,
            }),
            Step::CreateSubnet(p) => Change::CreateSubnet(NewSubnet {
                vpc_id: vpc_id.to_owned(),
                availability_zone: p.az.clone(),
                cidr: p.cidr,
                tags: p.tags.clone(),
            }),
        }
    }

    /// The change in words, for the listing before confirmation.
    fn describe(&self) -> String {
        match self {
            Change::Associate(r) => {
                format!("associate CIDR block {} with {}", r.cidr_block, r.vpc_id)
            }
            Change::CreateSubnet(r) => format!(
                "create subnet {} in {}{}{}",
                r.cidr,
                r.availability_zone,
                r.tags
                    .get(ROLE_TAG)
                    .map(|role| format!(" for green's {role}"))
                    .unwrap_or_default(),
                r.tags
                    .get("Name")
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Associate(r) => r.fmt(f),
            Change::CreateSubnet(r) => r.fmt(f),
        }
    }
}

/// `baton network apply`.
pub async fn apply(a: NetworkApplyArgs) -> anyhow::Result<ExitCode> {
    let mut plan = read_plan(&a.plan)?;
    let aws = connect_aws(&AwsTarget::from(&a.aws)).await?;
    if aws.region() != plan.region {
        return Err(Refused(format!(
            "failed to apply the network plan {}: it is for region {}, and AWS calls go to {}; pass --region {}",
            plan.id,
            plan.region,
            aws.region(),
            plan.region
        ))
        .into());
    }
    let vpc = read_vpc(&aws, &plan.vpc_id).await?;
    let steps = apply::steps(&plan, &vpc).map_err(|e| Refused(format!("failed to {e}")))?;
    let changes: Vec<Change> = steps
        .todo
        .iter()
        .map(|s| Change::of(&plan.vpc_id, s))
        .collect();
    if a.dry_run {
        for c in &changes {
            outln!("{c}");
        }
        errln!(
            "dry run: {} change(s) in {}, none made{}",
            changes.len(),
            plan.vpc_id,
            if changes.is_empty() {
                " (the plan is applied already)"
            } else {
                ""
            }
        );
        return Ok(ExitCode::from(code::OK));
    }
    if !changes.is_empty() {
        errln!("network plan {} on {}:", plan.id, plan.vpc_id);
        for c in &changes {
            errln!("  {}", c.describe());
        }
        confirm(
            a.yes,
            &format!("make these {} changes in {}?", changes.len(), plan.vpc_id),
        )?;
    }
    let mut done = Applied {
        plan: plan.id.clone(),
        vpc_id: plan.vpc_id.clone(),
        associated: Vec::new(),
        created: BTreeMap::new(),
        already_associated: steps.blocks_done.clone(),
        already_created: steps.subnets_done.clone(),
        eni_configs: Vec::new(),
    };
    for change in &changes {
        match change {
            Change::Associate(r) => {
                aws.associate_vpc_cidr(r).await?;
                wait_associated(&aws, &r.vpc_id, r.cidr_block).await?;
                done.associated.push(r.cidr_block);
            }
            Change::CreateSubnet(r) => {
                let s = aws.create_subnet(r).await.with_context(|| {
                    format!(
                        "failed to create subnet {} (what was made so far stays; run the same command again to finish)",
                        r.cidr
                    )
                })?;
                done.created.insert(r.cidr, s.id);
            }
        }
    }
    let ids: BTreeMap<Ipv4Net, String> = done
        .created
        .iter()
        .chain(&done.already_created)
        .map(|(c, i)| (*c, i.clone()))
        .collect();
    for e in &mut plan.eni_configs {
        if e.subnet_id.is_none() {
            e.subnet_id = ids.get(&e.subnet_cidr).cloned();
        }
    }
    done.eni_configs = plan
        .eni_configs
        .iter()
        .filter_map(|e| e.manifest())
        .collect();
    let manifests = done
        .eni_configs
        .iter()
        .map(|m| render(m, Output::Yaml))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join("---\n");
    if let Some(path) = &a.eni_configs {
        std::fs::write(path, &manifests)
            .with_context(|| format!("failed to write {}", path.display()))?;
        errln!("ENIConfig manifests written to {}", path.display());
    }
    match a.output {
        Output::Table => {
            let mut rows: Vec<Vec<String>> = Vec::new();
            for b in &done.associated {
                rows.push(vec![
                    "block".into(),
                    b.to_string(),
                    "-".into(),
                    "associated".into(),
                ]);
            }
            for b in &done.already_associated {
                rows.push(vec![
                    "block".into(),
                    b.to_string(),
                    "-".into(),
                    "already associated".into(),
                ]);
            }
            for (c, id) in &done.created {
                rows.push(vec![
                    "subnet".into(),
                    c.to_string(),
                    id.clone(),
                    "created".into(),
                ]);
            }
            for (c, id) in &done.already_created {
                rows.push(vec![
                    "subnet".into(),
                    c.to_string(),
                    id.clone(),
                    "already created".into(),
                ]);
            }
            out!("{}", table(&["KIND", "CIDR", "ID", "RESULT"], &rows));
            if !manifests.is_empty() {
                out!("\nENIConfigs for green (kubectl --context <green> apply -f -):\n{manifests}");
            }
        }
        o => out!("{}", render(&done, o)?),
    }
    Ok(ExitCode::from(code::OK))
}

/// AWS associates a block asynchronously (`associating` → `associated`); subnets can only
/// be created in an associated block. Looked at again with backoff (200 ms doubling to
/// 5 s) for up to 5 minutes; an AWS error or a failed association ends the wait at once.
async fn wait_associated(aws: &Aws, vpc_id: &str, block: Ipv4Net) -> anyhow::Result<()> {
    let look = || async {
        let vpc = aws.describe_vpc(vpc_id).await?;
        match vpc.cidr_blocks.iter().find(|b| b.cidr == block) {
            Some(b) if b.state == "associated" => Ok(Some(())),
            Some(b) if !b.is_active() => bail!(
                "failed to associate {block} with {vpc_id}: its association is {}; see the VPC's CIDR blocks in the console",
                b.state
            ),
            _ => Ok(None),
        }
    };
    let polled = poll_until(
        look,
        Duration::from_millis(200),
        Duration::from_secs(5),
        Duration::from_secs(300),
    );
    polled.await?.with_context(|| {
        format!(
            "failed to see {block} associated with {vpc_id} within 5 minutes; run the same command again to continue"
        )
    })
}

/// `baton network mirror-rules`.
/// Security groups as the mirror planner reads them (IPv4 rules only).
pub(crate) fn mirror_groups(groups: Vec<baton_aws::SecurityGroup>) -> Vec<Group> {
    groups
        .into_iter()
        .map(|g| Group {
            id: g.id,
            name: g.name,
            rules: g
                .ingress
                .into_iter()
                .map(|r| Rule {
                    protocol: r.protocol,
                    from_port: r.from_port,
                    to_port: r.to_port,
                    cidrs: r.cidrs.iter().filter_map(|c| c.parse().ok()).collect(),
                })
                .collect(),
        })
        .collect()
}

pub async fn mirror_rules(a: MirrorRulesArgs) -> anyhow::Result<ExitCode> {
    let (from, to, plan_vpc) = match &a.plan {
        Some(path) => {
            let plan = read_plan(path)?;
            if plan.blue_ranges.is_empty() {
                return Err(Refused(format!(
                    "failed to take blue's ranges from {}: the plan was made without --from, so it knows none; make it with --from CONTEXT (blue's), or pass --from-cidrs and --to-cidrs",
                    path.display()
                ))
                .into());
            }
            (plan.blue_ranges, plan.green_ranges, Some(plan.vpc_id))
        }
        None => (a.from_cidrs.clone(), a.to_cidrs.clone(), None),
    };
    if let Some(overlap) = from.iter().find(|f| {
        to.iter()
            .any(|t| baton_core::network::cidr::overlaps(**f, *t))
    }) {
        return Err(Refused(format!(
            "failed to mirror rules: blue's range {overlap} overlaps one of green's; blue and green must not share addresses"
        ))
        .into());
    }
    let aws = connect_aws(&AwsTarget::from(&a.aws)).await?;
    let vpc = a.vpc.clone().or(plan_vpc);
    let filters: Vec<Filter> = vpc
        .iter()
        .map(|v| Filter::new("vpc-id", [v.clone()]))
        .collect();
    let groups = aws
        .describe_security_groups(&a.security_groups, &filters)
        .await
        .context("failed to read the security groups")?;
    let groups = mirror_groups(groups);
    let mirrors = mirror::mirror(&groups, &from, &to);
    // One request per mirror, built once: printed by --dry-run, sent by --apply.
    let requests: Vec<AuthorizeSecurityGroupIngress> = mirrors
        .iter()
        .map(|m| AuthorizeSecurityGroupIngress {
            group_id: m.group_id.clone(),
            rule: IngressRule {
                protocol: m.protocol.clone(),
                from_port: m.from_port,
                to_port: m.to_port,
                cidrs: m.add.iter().map(ToString::to_string).collect(),
                ..Default::default()
            },
        })
        .collect();
    if a.dry_run {
        for r in &requests {
            outln!("{r}");
        }
        errln!("dry run: {} rule(s) to add, none added", requests.len());
        return Ok(ExitCode::from(code::OK));
    }
    if a.apply && !requests.is_empty() {
        // What the question is about, when there is one (the table after says what
        // was added; --dry-run prints these lines on stdout).
        if !a.yes {
            for r in &requests {
                errln!("{r}");
            }
        }
        confirm(
            a.yes,
            &format!(
                "add {} to the security groups above",
                crate::commands::show::plural(requests.len(), "rule")
            ),
        )?;
        for r in &requests {
            match aws.authorize_ingress(r).await {
                Ok(()) => {}
                // Someone added it since we read: what we wanted is there.
                Err(e) if e.code() == Some("InvalidPermission.Duplicate") => {}
                Err(e) => {
                    return Err(e).context(format!(
                        "failed to add the rule to {} (rules added before it stay; run again to finish)",
                        r.group_id
                    ));
                }
            }
        }
    }
    match a.output {
        Output::Table => out!("{}", mirror_table(&mirrors, a.apply)),
        o => out!("{}", render(&mirrors, o)?),
    }
    Ok(ExitCode::from(code::OK))
}

fn ports(m: &Mirror) -> String {
    match (m.from_port, m.to_port) {
        (Some(f), Some(t)) if f == t => f.to_string(),
        (Some(f), Some(t)) => format!("{f}-{t}"),
        _ => "all".into(),
    }
}

fn mirror_table(mirrors: &[Mirror], applied: bool) -> String {
    if mirrors.is_empty() {
        return "No rule to add: every rule admitting blue's ranges admits green's too.\n".into();
    }
    let rows: Vec<Vec<String>> = mirrors
        .iter()
        .map(|m| {
            vec![
                m.group_id.clone(),
                m.group_name.clone(),
                if m.protocol == "-1" {
                    "all".into()
                } else {
                    m.protocol.clone()
                },
                ports(m),
                join(&m.blue),
                join(&m.add),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "GROUP",
            "NAME",
            "PROTOCOL",
            "PORTS",
            "ADMITS (BLUE)",
            "ADD (GREEN)",
        ],
        &rows,
    );
    out += if applied {
        "\nAdded.\n"
    } else {
        "\nNot added: pass --apply to add these rules (--dry-run prints the requests it sends).\n"
    };
    out
}
