//! What `baton network apply` still has to do for a plan, judged against the VPC as it is
//! now: associate the plan's blocks and create its subnets, skipping what is done, and
//! refusing — before any change — when the VPC no longer looks as the plan saw it.
//!
//! Done is recognised, not remembered: a block of the plan that is active counts as
//! associated; a subnet tagged with the plan's id (`baton.io/network-plan`) in the
//! planned zone and block counts as created. A subnet without that tag is never baton's.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::cidr::overlaps;
use super::plan::{NetworkPlan, PLAN_TAG, ProposedSubnet, VpcView};

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Associate this block with the VPC.
    Associate(Ipv4Net),
    /// Create this subnet (the plan's proposal, with its tags).
    CreateSubnet(ProposedSubnet),
}

/// What `apply` found and will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps {
    /// Changes still to make, blocks first.
    pub todo: Vec<Step>,
    /// Blocks of the plan already associated.
    pub blocks_done: Vec<Ipv4Net>,
    /// Subnets of the plan already created: block → id.
    pub subnets_done: BTreeMap<Ipv4Net, String>,
}

/// Why `apply` changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The plan is for another VPC.
    #[error("apply the plan: it is for {plan}, not {found}")]
    OtherVpc {
        /// The plan's VPC.
        plan: String,
        /// The VPC read.
        found: String,
    },
    /// The VPC changed since the plan.
    #[error(
        "apply the plan {id}: it is stale, the VPC changed since it was made:\n  {}\nnothing was changed; make a new plan with `baton network plan … --out FILE`",
        changes.join("\n  ")
    )]
    Stale {
        /// The plan id.
        id: String,
        /// What differs.
        changes: Vec<String>,
    },
    /// A proposal overlaps something.
    #[error(
        "apply the plan {id}: {what}; nothing was changed; make a new plan with `baton network plan … --out FILE`"
    )]
    Overlap {
        /// The plan id.
        id: String,
        /// What overlaps what.
        what: String,
    },
    /// The plan file is not a valid plan.
    #[error("apply the plan: {0}")]
    Invalid(String),
}

/// The steps left for `plan` on the VPC as it is `now`.
pub fn steps(plan: &NetworkPlan, now: &VpcView) -> Result<Steps, Refusal> {
    if plan.vpc_id != now.id {
        return Err(Refusal::OtherVpc {
            plan: plan.vpc_id.clone(),
            found: now.id.clone(),
        });
    }
    check_plan(plan)?;
    let planned_blocks: BTreeSet<Ipv4Net> = plan.new_blocks.iter().map(|b| b.cidr).collect();
    let mut changes = Vec::new();

    // Blocks: those the plan saw must still be active; any other active block must be
    // one the plan proposed.
    let active: BTreeSet<Ipv4Net> = now
        .blocks
        .iter()
        .filter(|b| b.is_active())
        .map(|b| b.cidr)
        .collect();
    let seen: BTreeSet<Ipv4Net> = plan.observed.blocks.iter().copied().collect();
    for b in seen.difference(&active) {
        changes.push(format!("CIDR block {b} is no longer associated"));
    }
    for b in active.difference(&seen) {
        if !planned_blocks.contains(b) {
            changes.push(format!("CIDR block {b} was associated by someone else"));
        }
    }

    // Subnets: ours are tagged with the plan id and match a proposal; every other subnet
    // must be one the plan saw, unchanged.
    let mut subnets_done = BTreeMap::new();
    let mut foreign: BTreeMap<&str, Ipv4Net> = BTreeMap::new();
    for s in &now.subnets {
        let ours = s.tags.get(PLAN_TAG) == Some(&plan.id)
            && plan
                .subnets
                .iter()
                .any(|p| p.cidr == s.cidr && p.az == s.az);
        if ours {
            subnets_done.insert(s.cidr, s.id.clone());
        } else {
            foreign.insert(&s.id, s.cidr);
        }
    }
    for (id, cidr) in &plan.observed.subnets {
        match foreign.get(id.as_str()) {
            None => changes.push(format!("subnet {id} ({cidr}) is gone")),
            Some(c) if c != cidr => changes.push(format!("subnet {id} is now {c}, was {cidr}")),
            Some(_) => {}
        }
    }
    for (id, cidr) in &foreign {
        if !plan.observed.subnets.contains_key(*id) {
            changes.push(format!("subnet {id} ({cidr}) was created by someone else"));
        }
    }
    if !changes.is_empty() {
        return Err(Refusal::Stale {
            id: plan.id.clone(),
            changes,
        });
    }

    // Even an unchanged VPC is checked again: no proposal may overlap a subnet that is
    // not ours, an --avoid range, or another proposal, and each sits in a block.
    let blocks_after: Vec<Ipv4Net> = active.iter().chain(&planned_blocks).copied().collect();
    for p in &plan.subnets {
        if let Some((id, c)) = foreign.iter().find(|(_, c)| overlaps(**c, p.cidr)) {
            return Err(Refusal::Overlap {
                id: plan.id.clone(),
                what: format!("proposed subnet {} overlaps subnet {id} ({c})", p.cidr),
            });
        }
        if let Some(a) = plan.request.avoid.iter().find(|a| overlaps(**a, p.cidr)) {
            return Err(Refusal::Overlap {
                id: plan.id.clone(),
                what: format!("proposed subnet {} overlaps --avoid {a}", p.cidr),
            });
        }
        if !blocks_after.iter().any(|b| b.contains(&p.cidr)) {
            return Err(Refusal::Overlap {
                id: plan.id.clone(),
                what: format!("proposed subnet {} is in none of the VPC's blocks", p.cidr),
            });
        }
    }

    let mut todo: Vec<Step> = planned_blocks
        .iter()
        .filter(|b| !active.contains(b))
        .map(|b| Step::Associate(*b))
        .collect();
    todo.extend(
        plan.subnets
            .iter()
            .filter(|p| !subnets_done.contains_key(&p.cidr))
            .cloned()
            .map(Step::CreateSubnet),
    );
    Ok(Steps {
        todo,
        blocks_done: planned_blocks.intersection(&active).copied().collect(),
        subnets_done,
    })
}

/// A plan file may have been edited: its proposals must not overlap each other or a
/// block the VPC had, and new blocks must be allowed.
fn check_plan(plan: &NetworkPlan) -> Result<(), Refusal> {
    for (k, a) in plan.subnets.iter().enumerate() {
        if let Some(b) = plan.subnets[k + 1..]
            .iter()
            .find(|b| overlaps(a.cidr, b.cidr))
        {
            return Err(Refusal::Invalid(format!(
                "proposed subnets {} and {} overlap",
                a.cidr, b.cidr
            )));
        }
    }
    for b in &plan.new_blocks {
        if let Some(o) = plan.observed.blocks.iter().find(|o| overlaps(**o, b.cidr)) {
            return Err(Refusal::Invalid(format!(
                "proposed block {} overlaps the VPC's block {o}",
                b.cidr
            )));
        }
        if let Some(why) = super::cidr::association_forbidden(plan.primary, b.cidr) {
            return Err(Refusal::Invalid(format!(
                "proposed block {}: {why}",
                b.cidr
            )));
        }
    }
    Ok(())
}
