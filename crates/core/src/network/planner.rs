//! The network planner: from the VPC as read and what green asked for, the subnets and
//! blocks to add — never overlapping anything, always inside the VPC's blocks (existing
//! or proposed), and big enough, or an error that says why not.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::cidr::{self, BENCHMARK_19, CGNAT, MIN_PREFIX, RFC1918_10, RFC1918_172, RFC1918_192};
use super::plan::*;
use super::sizing::{self, SizingError};

/// Why no plan could be made. Nothing was created: planning only reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// Sizing failed (unknown type, too many pods, …).
    #[error("failed to {0}")]
    Sizing(#[from] SizingError),
    /// A zone is not in the region.
    #[error(
        "failed to plan green's subnets: zone {az} is not in region {region} (its zones: {known}); fix --azs"
    )]
    UnknownAz {
        /// The zone asked for.
        az: String,
        /// The region.
        region: String,
        /// Its zones.
        known: String,
    },
    /// Bad request values.
    #[error("failed to plan green's subnets: {0}")]
    Invalid(String),
    /// One zone needs more than a /16.
    #[error(
        "failed to plan green's subnets: {role} in {az} need {addresses} addresses, more than one subnet can hold (a /16 gives 65,531); spread green over more zones (--azs), or use prefix delegation or custom networking"
    )]
    TooBig {
        /// Zone.
        az: String,
        /// Role.
        role: Role,
        /// Addresses.
        addresses: u64,
    },
    /// More blocks than the quota allows.
    #[error(
        "failed to plan green's subnets: the VPC has {active} of its {quota} IPv4 CIDR blocks and green needs {needed} more ({sizes}); raise the quota (Service Quotas, \"IPv4 CIDR blocks per VPC\", up to 50) and pass --cidr-quota, or ask for fewer addresses (--nodes, --pods, --surge)"
    )]
    QuotaExhausted {
        /// Active blocks.
        active: u32,
        /// The quota.
        quota: u32,
        /// Blocks needed.
        needed: u32,
        /// Their sizes.
        sizes: String,
    },
    /// No block in any candidate range is free.
    #[error(
        "failed to plan green's subnets: no free /{len} block can be associated with this VPC (primary {primary}) in {ranges} outside the VPC's blocks and --avoid ranges; remove --avoid ranges or free space in the VPC"
    )]
    NoSpace {
        /// Prefix length wanted.
        len: u8,
        /// Primary.
        primary: Ipv4Net,
        /// Ranges tried.
        ranges: String,
    },
}

/// Everything the planner reads.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The VPC.
    pub vpc: &'a VpcView,
    /// The request.
    pub request: &'a Request,
    /// Blue, if known.
    pub blue: Option<&'a BlueView>,
    /// The region and its zones.
    pub region: &'a str,
    /// Zones of the region.
    pub region_azs: &'a [String],
    /// Plan id.
    pub id: &'a str,
    /// Now (RFC 3339).
    pub created: &'a str,
}

/// Ranges new pod blocks come from, in order of preference (CG-NAT first).
pub const POD_RANGES: &[Ipv4Net] = &[CGNAT, BENCHMARK_19, RFC1918_10, RFC1918_172, RFC1918_192];
/// Ranges new node blocks come from (routable private ranges first).
pub const NODE_RANGES: &[Ipv4Net] = &[RFC1918_10, RFC1918_172, RFC1918_192, CGNAT, BENCHMARK_19];

fn is_pod_range(n: Ipv4Net) -> bool {
    CGNAT.contains(&n) || BENCHMARK_19.contains(&n)
}

/// Makes the plan.
pub fn plan(i: &Inputs<'_>) -> Result<NetworkPlan, NetworkError> {
    let r = i.request;
    validate(i)?;
    let t = sizing::instance_type(&r.instance_type);
    let t = match (t, r.max_pods_per_node) {
        (Some(t), _) => *t,
        (None, _) => {
            return Err(SizingError::UnknownInstanceType(
                r.instance_type.clone(),
                sizing::known_types(),
            )
            .into());
        }
    };
    let node = sizing::size_nodes(&t, r.mode, r.warm, r.nodes, r.pods, r.max_pods_per_node)?;
    let nodes_with_surge =
        (u64::from(r.nodes) * (100 + u64::from(r.surge_percent))).div_ceil(100) as u32;
    let azs = r.azs.len() as u32;
    let nodes_per_az = nodes_with_surge.div_ceil(azs);
    let mut explanation = node.explanation.clone();
    explanation.push(format!(
        "{} nodes + {}% surge = {nodes_with_surge} nodes, {nodes_per_az} per zone over {azs} zones (rounded up; surge nodes are counted with a full share of pods)",
        r.nodes, r.surge_percent
    ));

    let active: Vec<Ipv4Net> = i
        .vpc
        .blocks
        .iter()
        .filter(|b| b.is_active())
        .map(|b| b.cidr)
        .collect();
    let green_tag = cluster_tag(&r.cluster);
    let pd = r.mode.prefix_delegation;
    let per_az = u64::from(nodes_per_az);

    // Needs per zone and role, minus what green's existing subnets already give.
    let mut needs = Vec::new();
    for az in &r.azs {
        let existing: Vec<&SubnetView> = i
            .vpc
            .subnets
            .iter()
            .filter(|s| &s.az == az && s.tags.contains_key(&green_tag))
            .filter(|s| !s.tags.contains_key(PUBLIC_ELB_TAG))
            .collect();
        let node_singles = if r.mode.custom_networking {
            1
        } else {
            u64::from(node.node_subnet_addresses) - u64::from(node.prefixes) * 16
        };
        let node_need = (
            u64::from(node.node_subnet_addresses) * per_az,
            if r.mode.custom_networking {
                0
            } else {
                u64::from(node.prefixes) * per_az
            },
            node_singles * per_az,
        );
        let nodes_existing: Vec<&SubnetView> = existing
            .iter()
            .copied()
            .filter(|s| s.tags.get(ROLE_TAG).map(String::as_str) != Some("pods"))
            .collect();
        needs.push(need(az, Role::Nodes, node_need, &nodes_existing, pd, true));
        if r.mode.custom_networking {
            let pod_prefixes = u64::from(node.prefixes) * per_az;
            let pod_need = (
                u64::from(node.pod_subnet_addresses) * per_az,
                pod_prefixes,
                u64::from(node.pod_subnet_addresses) * per_az - pod_prefixes * 16,
            );
            let pods_existing: Vec<&SubnetView> = existing
                .iter()
                .copied()
                .filter(|s| s.tags.get(ROLE_TAG).map(String::as_str) == Some("pods"))
                .collect();
            // One ENIConfig per zone names one subnet, so one subnet must hold it all.
            needs.push(need(az, Role::Pods, pod_need, &pods_existing, pd, false));
        }
    }

    // Subnets to find space for, largest first (aligned blocks pack without gaps).
    let mut wants = Vec::new();
    for (k, n) in needs.iter().enumerate() {
        if n.shortfall == 0 && n.shortfall_prefixes == 0 {
            continue;
        }
        let len = cidr::subnet_prefix_for(n.shortfall, n.shortfall_prefixes, n.singles)
            .ok_or_else(|| NetworkError::TooBig {
                az: n.az.clone(),
                role: n.role,
                addresses: n.shortfall,
            })?;
        wants.push(Want { need: k, len });
    }
    wants.sort_by_key(|w| (w.len, w.need));

    let mut taken: Vec<Ipv4Net> = i.vpc.subnets.iter().map(|s| s.cidr).collect();
    taken.extend(r.avoid.iter().copied());
    let mut placed: BTreeMap<usize, (Ipv4Net, Ipv4Net)> = BTreeMap::new();
    // Pods go to CG-NAT/198.19 blocks, nodes to the others. Only when the quota leaves no
    // room for a new block of the right kind do they take free space of the other kind.
    let free_slots = r.cidr_quota.saturating_sub(active.len() as u32);
    for same_kind in [true, false] {
        let pending: Vec<&Want> = wants
            .iter()
            .filter(|w| !placed.contains_key(&w.need))
            .collect();
        if pending.is_empty() || (!same_kind && blocks_needed(&needs, &pending) <= free_slots) {
            break;
        }
        let mut fell_back = Vec::new();
        for w in pending {
            let role = needs[w.need].role;
            let kind = active
                .iter()
                .filter(|b| (is_pod_range(**b) == (role == Role::Pods)) == same_kind);
            for b in kind {
                if let Some(s) = cidr::first_free(*b, w.len, &taken) {
                    taken.push(s);
                    placed.insert(w.need, (s, *b));
                    if !same_kind {
                        fell_back.push(format!("{} {} in {b}", needs[w.need].az, role));
                    }
                    break;
                }
            }
        }
        if !fell_back.is_empty() {
            explanation.push(format!(
                "the CIDR block quota ({}) leaves no room for a new block, so free space of the other kind is used: {}",
                r.cidr_quota,
                fell_back.join(", ")
            ));
        }
    }

    // What did not fit goes into new blocks.
    let unplaced: Vec<&Want> = wants
        .iter()
        .filter(|w| !placed.contains_key(&w.need))
        .collect();
    let mut new_blocks: Vec<ProposedBlock> = Vec::new();
    if !unplaced.is_empty() {
        let by_role = |role: Role| -> Vec<&Want> {
            unplaced
                .iter()
                .copied()
                .filter(|w| needs[w.need].role == role)
                .collect()
        };
        let groups: Vec<(Role, Vec<&Want>)> = [Role::Pods, Role::Nodes]
            .into_iter()
            .map(|role| (role, by_role(role)))
            .filter(|(_, g)| !g.is_empty())
            .collect();
        let count = |g: &[&Want]| blocks_for(g.iter().map(|w| w.len)).len() as u32;
        let separate: u32 = groups.iter().map(|(_, g)| count(g)).sum();
        let combined = count(&unplaced);
        let grouping: Vec<(Role, Vec<&Want>)> = if separate <= free_slots || combined >= separate {
            groups
        } else {
            explanation.push(
                "one new block holds both node and pod subnets: the CIDR block quota has room for no more".into(),
            );
            vec![(unplaced_role(&needs, &unplaced), unplaced.clone())]
        };
        let needed: u32 = grouping.iter().map(|(_, g)| count(g)).sum();
        if needed > free_slots {
            let sizes = grouping
                .iter()
                .flat_map(|(_, g)| blocks_for(g.iter().map(|w| w.len)))
                .map(|l| format!("/{l}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(NetworkError::QuotaExhausted {
                active: active.len() as u32,
                quota: r.cidr_quota,
                needed,
                sizes,
            });
        }
        let mut block_taken: Vec<Ipv4Net> = active.clone();
        block_taken.extend(i.vpc.subnets.iter().map(|s| s.cidr));
        block_taken.extend(r.avoid.iter().copied());
        block_taken.extend(forbidden_for(i.vpc.primary));
        for (role, group) in grouping {
            let ranges = if role == Role::Pods {
                POD_RANGES
            } else {
                NODE_RANGES
            };
            let mut rest: Vec<&Want> = group;
            for len in blocks_for(rest.iter().map(|w| w.len)) {
                let block = ranges
                    .iter()
                    .find_map(|range| cidr::first_free(*range, len, &block_taken))
                    .ok_or_else(|| NetworkError::NoSpace {
                        len,
                        primary: i.vpc.primary,
                        ranges: ranges
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                block_taken.push(block);
                let mut left = Vec::new();
                for w in rest {
                    match cidr::first_free(block, w.len, &taken) {
                        Some(s) => {
                            taken.push(s);
                            placed.insert(w.need, (s, block));
                        }
                        None => left.push(w),
                    }
                }
                rest = left;
                let range = ranges
                    .iter()
                    .find(|r| r.contains(&block))
                    .expect("found in a range");
                new_blocks.push(ProposedBlock {
                    cidr: block,
                    reason: format!(
                        "for green's {role} subnets: the first free /{len} in {range}{}, the smallest block that holds them",
                        if role == Role::Pods && is_pod_range(block) {
                            " (pod ranges come from 100.64.0.0/10 or 198.19.0.0/16 first)"
                        } else {
                            ""
                        }
                    ),
                });
            }
            if let Some(w) = rest.first() {
                // blocks_for sizes blocks to hold every subnet; say so plainly if not.
                return Err(NetworkError::NoSpace {
                    len: w.len,
                    primary: i.vpc.primary,
                    ranges: "the new blocks".into(),
                });
            }
        }
    }

    // The proposals.
    let mut subnets = Vec::new();
    for (k, (s, block)) in &placed {
        let n = &needs[*k];
        let mut tags: BTreeMap<String, String> = [
            (green_tag.clone(), "shared".to_string()),
            (PLAN_TAG.to_string(), i.id.to_string()),
            (ROLE_TAG.to_string(), n.role.to_string()),
            (
                "Name".to_string(),
                format!("{}-{}-{}", r.cluster, n.role, n.az),
            ),
        ]
        .into();
        if n.role == Role::Nodes {
            tags.insert(INTERNAL_ELB_TAG.to_string(), "1".to_string());
        }
        subnets.push(ProposedSubnet {
            az: n.az.clone(),
            role: n.role,
            cidr: *s,
            in_block: *block,
            usable: cidr::usable(*s),
            needed: n.shortfall,
            needed_prefixes: n.shortfall_prefixes,
            tags,
        });
    }
    subnets.sort_by(|a, b| (a.role, &a.az).cmp(&(b.role, &b.az)));

    let eni_configs: Vec<EniConfigPlan> = needs
        .iter()
        .filter(|n| n.role == Role::Pods)
        .map(|n| {
            match subnets
                .iter()
                .find(|s| s.role == Role::Pods && s.az == n.az)
            {
                Some(s) => EniConfigPlan {
                    name: n.az.clone(),
                    subnet_cidr: s.cidr,
                    subnet_id: None,
                },
                None => {
                    let e = &n.existing[0];
                    EniConfigPlan {
                        name: n.az.clone(),
                        subnet_cidr: e.cidr,
                        subnet_id: Some(e.id.clone()),
                    }
                }
            }
        })
        .collect();

    // Blue's ranges and the address map.
    let by_id: BTreeMap<&str, &SubnetView> =
        i.vpc.subnets.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut blue_ranges: BTreeSet<Ipv4Net> = BTreeSet::new();
    let mut usage: BTreeMap<&str, String> = BTreeMap::new();
    if let Some(b) = i.blue {
        for id in &b.node_subnets {
            if let Some(s) = by_id.get(id.as_str()) {
                blue_ranges.insert(s.cidr);
                usage.insert(&s.id, format!("blue nodes ({})", b.context));
            }
        }
        for e in &b.eni_configs {
            if let Some(s) = by_id.get(e.subnet.as_str()) {
                blue_ranges.insert(s.cidr);
                usage.insert(&s.id, format!("blue pods (ENIConfig {})", e.name));
            }
        }
    }
    let counted: BTreeSet<&str> = needs
        .iter()
        .flat_map(|n| n.existing.iter().map(|e| e.id.as_str()))
        .collect();
    let describe = |s: &SubnetView| -> String {
        if let Some(u) = usage.get(s.id.as_str()) {
            return u.clone();
        }
        let clusters: Vec<&str> = s
            .tags
            .keys()
            .filter_map(|k| k.strip_prefix("kubernetes.io/cluster/"))
            .collect();
        let public = s.tags.contains_key(PUBLIC_ELB_TAG);
        let who = if clusters.is_empty() {
            "no cluster".to_string()
        } else {
            clusters.join(", ")
        };
        if counted.contains(s.id.as_str()) {
            format!("{who} (existing; its free addresses count for green)")
        } else if public {
            format!("{who}, public load balancers")
        } else {
            who
        }
    };
    let mut map_blocks: Vec<BlockUse> =
        i.vpc
            .blocks
            .iter()
            .map(|b| (b.cidr, b.state.clone()))
            .chain(new_blocks.iter().map(|b| (b.cidr, "proposed".to_string())))
            .map(|(block, state)| {
                let mut in_block: Vec<SubnetUse> = i
                    .vpc
                    .subnets
                    .iter()
                    .filter(|s| block.contains(&s.cidr))
                    .map(|s| SubnetUse {
                        id: Some(s.id.clone()),
                        name: s.tags.get("Name").cloned(),
                        az: s.az.clone(),
                        cidr: s.cidr,
                        usage: describe(s),
                        free: s.available,
                    })
                    .collect();
                let allocated: u64 = in_block.iter().map(|s| cidr::size(s.cidr)).sum();
                in_block.extend(subnets.iter().filter(|p| p.in_block == block).map(|p| {
                    SubnetUse {
                        id: None,
                        name: p.tags.get("Name").cloned(),
                        az: p.az.clone(),
                        cidr: p.cidr,
                        usage: format!("green {} (proposed)", p.role),
                        free: p.usable,
                    }
                }));
                in_block.sort_by_key(|s| s.cidr);
                BlockUse {
                    cidr: block,
                    state,
                    unallocated: cidr::size(block).saturating_sub(allocated),
                    subnets: in_block,
                }
            })
            .collect();
    map_blocks.sort_by_key(|b| (b.state == "proposed", b.cidr));

    let mut green_ranges: BTreeSet<Ipv4Net> = subnets.iter().map(|s| s.cidr).collect();
    for n in &needs {
        green_ranges.extend(n.existing.iter().map(|e| e.cidr));
    }
    for n in &needs {
        let have: u64 = n.existing.iter().map(|e| e.free).sum();
        let line = if n.shortfall == 0 && n.shortfall_prefixes == 0 {
            format!(
                "{} {}: {} addresses needed, green's existing subnets have {have} free",
                n.az, n.role, n.addresses
            )
        } else {
            let s = subnets
                .iter()
                .find(|s| s.az == n.az && s.role == n.role)
                .expect("placed");
            format!(
                "{} {}: {} addresses needed{}, {have} free in green's existing subnets; new {} gives {} usable ({} addresses − 5 reserved by AWS){}",
                n.az,
                n.role,
                n.addresses,
                if n.prefixes > 0 {
                    format!(" ({} as /28 prefixes)", n.prefixes)
                } else {
                    String::new()
                },
                s.cidr,
                s.usable,
                cidr::size(s.cidr),
                if n.prefixes > 0 {
                    format!(
                        ", and at least {} whole /28s even if its {} single addresses each spoil one",
                        cidr::free_prefixes_worst_case(s.cidr, n.singles),
                        n.singles
                    )
                } else {
                    String::new()
                }
            )
        };
        explanation.push(line);
    }
    if new_blocks.is_empty() {
        explanation.push(format!(
            "no new CIDR block needed: the VPC's {} active blocks have room ({} of {} allowed)",
            active.len(),
            active.len(),
            r.cidr_quota
        ));
    } else {
        explanation.push(format!(
            "{} new CIDR block(s) to associate: {} of {} allowed blocks after apply",
            new_blocks.len(),
            active.len() + new_blocks.len(),
            r.cidr_quota
        ));
    }

    Ok(NetworkPlan {
        version: NETWORK_PLAN_VERSION,
        id: i.id.to_string(),
        created: i.created.to_string(),
        vpc_id: i.vpc.id.clone(),
        primary: i.vpc.primary,
        region: i.region.to_string(),
        request: r.clone(),
        blue: i.blue.cloned(),
        blue_ranges: blue_ranges.into_iter().collect(),
        green_ranges: green_ranges.into_iter().collect(),
        sizing: Sizing {
            node,
            nodes_with_surge,
            nodes_per_az,
        },
        needs,
        new_blocks,
        subnets,
        blocks: map_blocks,
        eni_configs,
        observed: Observed {
            blocks: active,
            subnets: i
                .vpc
                .subnets
                .iter()
                .map(|s| (s.id.clone(), s.cidr))
                .collect(),
        },
        explanation,
    })
}

fn validate(i: &Inputs<'_>) -> Result<(), NetworkError> {
    let r = i.request;
    if r.azs.is_empty() {
        return Err(NetworkError::Invalid("--azs names no zone".into()));
    }
    let mut seen = BTreeSet::new();
    for az in &r.azs {
        if !seen.insert(az) {
            return Err(NetworkError::Invalid(format!(
                "zone {az} is given twice in --azs"
            )));
        }
        if !i.region_azs.contains(az) {
            return Err(NetworkError::UnknownAz {
                az: az.clone(),
                region: i.region.to_string(),
                known: i.region_azs.join(", "),
            });
        }
    }
    if r.nodes == 0 {
        return Err(NetworkError::Invalid("--nodes must be at least 1".into()));
    }
    if r.cluster.is_empty() {
        return Err(NetworkError::Invalid("--cluster-name is empty".into()));
    }
    let active = i.vpc.blocks.iter().filter(|b| b.is_active()).count() as u32;
    if r.cidr_quota < active {
        return Err(NetworkError::Invalid(format!(
            "--cidr-quota {} is below the {active} blocks the VPC already has",
            r.cidr_quota
        )));
    }
    Ok(())
}

/// The need of one zone and role, with what existing subnets give. `summable`: several
/// subnets may share it (node groups can span subnets; an ENIConfig names one subnet).
fn need(
    az: &str,
    role: Role,
    (addresses, prefixes, singles): (u64, u64, u64),
    existing: &[&SubnetView],
    pd: bool,
    summable: bool,
) -> Need {
    let uses: Vec<ExistingUse> = existing
        .iter()
        .map(|s| {
            let used = cidr::usable(s.cidr).saturating_sub(s.available);
            ExistingUse {
                id: s.id.clone(),
                cidr: s.cidr,
                free: s.available,
                free_prefixes: if pd {
                    cidr::free_prefixes_worst_case(s.cidr, used)
                } else {
                    0
                },
            }
        })
        .collect();
    let (existing, shortfall, shortfall_prefixes) = if summable {
        let free: u64 = uses.iter().map(|u| u.free).sum();
        let free_p: u64 = uses.iter().map(|u| u.free_prefixes).sum();
        let short_p = prefixes.saturating_sub(free_p);
        let short = addresses.saturating_sub(free);
        if short == 0 && short_p == 0 {
            (uses, 0, 0)
        } else {
            // The new subnet takes what the existing ones cannot.
            (uses, short.max(short_p * 16), short_p)
        }
    } else {
        match uses
            .iter()
            .find(|u| u.free >= addresses && u.free_prefixes >= prefixes)
        {
            Some(u) => (vec![u.clone()], 0, 0),
            None => (Vec::new(), addresses, prefixes),
        }
    };
    Need {
        az: az.to_string(),
        role,
        addresses,
        prefixes,
        singles,
        existing,
        shortfall,
        shortfall_prefixes,
    }
}

/// Prefix lengths of the blocks that hold subnets of these lengths: aligned blocks taken
/// largest first pack without gaps, so a block holds them while their sizes add up to
/// no more than its own. Each block is /16 at most.
fn blocks_for(lens: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut lens: Vec<u8> = lens.collect();
    lens.sort_unstable();
    let max = cidr::size(cidr::net(0, 0, 0, 0, MIN_PREFIX));
    let mut blocks = Vec::new();
    let mut sum = 0u64;
    for l in lens {
        let s = 1u64 << (32 - l);
        if sum + s > max {
            blocks.push(sum);
            sum = 0;
        }
        sum += s;
    }
    if sum > 0 {
        blocks.push(sum);
    }
    blocks
        .into_iter()
        .map(|s| 32 - s.next_power_of_two().trailing_zeros() as u8)
        .map(|l| l.min(cidr::MAX_PREFIX))
        .collect()
}

/// New blocks the unplaced subnets need: one set per role, or one shared set when that
/// takes fewer.
fn blocks_needed(needs: &[Need], unplaced: &[&Want]) -> u32 {
    let count = |role: Role| {
        blocks_for(
            unplaced
                .iter()
                .filter(|w| needs[w.need].role == role)
                .map(|w| w.len),
        )
        .len() as u32
    };
    let separate = count(Role::Pods) + count(Role::Nodes);
    let combined = blocks_for(unplaced.iter().map(|w| w.len)).len() as u32;
    separate.min(combined)
}

/// A subnet still to place: the index of its need and its prefix length.
#[derive(Debug)]
struct Want {
    need: usize,
    len: u8,
}

/// The role whose ranges a shared new block comes from: pods' when any pod subnet is in
/// it (CG-NAT first), else nodes'.
fn unplaced_role(needs: &[Need], unplaced: &[&Want]) -> Role {
    if unplaced.iter().any(|w| needs[w.need].role == Role::Pods) {
        Role::Pods
    } else {
        Role::Nodes
    }
}

/// Ranges that may not be associated with a VPC whose primary block is `primary`.
pub fn forbidden_for(primary: Ipv4Net) -> Vec<Ipv4Net> {
    let row = cidr::PrimaryRange::of(primary);
    cidr::RESTRICTIONS
        .iter()
        .filter(|r| r.primary == row)
        .filter(|r| {
            r.only_if_primary_within
                .is_none_or(|w| w.contains(&primary))
        })
        .map(|r| r.forbidden)
        .chain(cidr::NEVER_PROPOSED.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::cidr::overlaps;

    #[test]
    fn blocks_hold_their_subnets_and_stop_at_16() {
        assert_eq!(blocks_for([18u8, 18, 18].into_iter()), vec![16]);
        assert_eq!(blocks_for([24u8].into_iter()), vec![24]);
        assert_eq!(blocks_for([24u8, 24].into_iter()), vec![23]);
        assert_eq!(blocks_for([16u8, 17].into_iter()), vec![16, 17]);
        assert!(overlaps(RFC1918_10, "10.1.0.0/16".parse().unwrap()));
    }
}
