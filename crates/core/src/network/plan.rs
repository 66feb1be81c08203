//! The network plan as data: what baton saw in the VPC, what green needs, and what to
//! add. Printed by `baton network plan`, saved with `--out`, and handed to
//! `baton network apply --plan`, which refuses it when the VPC no longer looks as it did.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::sizing::{CniMode, NodeSizing, WarmTargets};

/// The plan file's format version.
pub const NETWORK_PLAN_VERSION: u32 = 1;
/// Tag on every subnet `apply` creates: the plan's id. `apply` finds its own subnets by
/// it and never touches one without it.
pub const PLAN_TAG: &str = "baton.io/network-plan";
/// Tag on every subnet `apply` creates: `nodes` or `pods`.
pub const ROLE_TAG: &str = "baton.io/network-role";
/// The tag EKS and the AWS Load Balancer Controller look for, `kubernetes.io/cluster/<name>`.
pub fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}
/// Internal load balancers go in subnets with this tag (AWS Load Balancer Controller,
/// "Subnet auto-discovery").
pub const INTERNAL_ELB_TAG: &str = "kubernetes.io/role/internal-elb";
/// Internet-facing load balancers go in subnets with this tag.
pub const PUBLIC_ELB_TAG: &str = "kubernetes.io/role/elb";

/// What green asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Green's EKS cluster name (for the `kubernetes.io/cluster/<name>` tag).
    pub cluster: String,
    /// Zones green's nodes run in.
    pub azs: Vec<String>,
    /// Nodes (before surge).
    pub nodes: u32,
    /// Pods that need a VPC address (host-network pods do not).
    pub pods: u32,
    /// Node instance type.
    pub instance_type: String,
    /// The kubelet's max pods, when set lower than the CNI's limit.
    pub max_pods_per_node: Option<u32>,
    /// CNI mode.
    pub mode: CniMode,
    /// ipamd's warm pool.
    pub warm: WarmTargets,
    /// Extra nodes during rollouts, in percent of `nodes`.
    pub surge_percent: u32,
    /// Ranges to keep out of (on-premises networks, peered VPCs, …).
    pub avoid: Vec<Ipv4Net>,
    /// IPv4 CIDR blocks the VPC may have.
    pub cidr_quota: u32,
}

/// One subnet as the VPC reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetView {
    /// `subnet-…`
    pub id: String,
    /// Zone.
    pub az: String,
    /// Block.
    pub cidr: Ipv4Net,
    /// Free addresses (AWS's count, reserved ones excluded).
    pub available: u64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// One CIDR block association as the VPC reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    /// Block.
    pub cidr: Ipv4Net,
    /// `associated`, `associating`, `disassociated`, `failed`, …
    pub state: String,
}

impl BlockView {
    /// Associated or on its way: holds addresses and counts against the quota.
    pub fn is_active(&self) -> bool {
        matches!(self.state.as_str(), "associated" | "associating")
    }
}

/// The VPC as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcView {
    /// `vpc-…`
    pub id: String,
    /// Its primary block (decides which blocks may be associated).
    pub primary: Ipv4Net,
    /// Every IPv4 association.
    pub blocks: Vec<BlockView>,
    /// Every subnet.
    pub subnets: Vec<SubnetView>,
}

/// One of blue's ENIConfigs (custom networking: blue's pods live in its subnet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EniConfigView {
    /// Its name (usually the zone).
    pub name: String,
    /// `spec.subnet`.
    pub subnet: String,
    /// `spec.securityGroups`.
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// What baton knows of blue, from `--blue CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueView {
    /// Blue's kubeconfig context.
    pub context: String,
    /// Subnets blue's nodes run in (from their EC2 instances).
    pub node_subnets: Vec<String>,
    /// Blue's ENIConfigs.
    pub eni_configs: Vec<EniConfigView>,
}

/// A subnet's job in green.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Nodes (and their pods unless custom networking).
    Nodes,
    /// Pods, through an ENIConfig (custom networking).
    Pods,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Nodes => "nodes",
            Role::Pods => "pods",
        })
    }
}

/// Addresses one zone needs for one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    /// Zone.
    pub az: String,
    /// Role.
    pub role: Role,
    /// Addresses (prefix addresses included).
    pub addresses: u64,
    /// Whole /28 prefixes among them (prefix delegation).
    pub prefixes: u64,
    /// Single addresses beside the prefixes (ENIs' own), which may fragment /28s.
    pub singles: u64,
    /// Green's existing subnets counted for it, and what they give.
    pub existing: Vec<ExistingUse>,
    /// Addresses left to find in a new subnet (0: existing subnets suffice).
    pub shortfall: u64,
    /// Prefixes left to find.
    pub shortfall_prefixes: u64,
}

/// An existing green subnet counted towards a need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingUse {
    /// `subnet-…`
    pub id: String,
    /// Block.
    pub cidr: Ipv4Net,
    /// Free addresses.
    pub free: u64,
    /// Free whole /28s in the worst case (prefix delegation only).
    pub free_prefixes: u64,
}

/// A subnet to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedSubnet {
    /// Zone.
    pub az: String,
    /// Role.
    pub role: Role,
    /// Block.
    pub cidr: Ipv4Net,
    /// The VPC block it sits in (existing or proposed).
    pub in_block: Ipv4Net,
    /// Usable addresses (size − 5).
    pub usable: u64,
    /// Addresses it must hold.
    pub needed: u64,
    /// /28 prefixes it must hold (prefix delegation), worst case beside its singles.
    pub needed_prefixes: u64,
    /// Tags `apply` sets.
    pub tags: BTreeMap<String, String>,
}

/// A CIDR block to associate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedBlock {
    /// Block.
    pub cidr: Ipv4Net,
    /// Why this one (range preference, size).
    pub reason: String,
}

/// One line of the VPC's address map: a block and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUse {
    /// Block.
    pub cidr: Ipv4Net,
    /// Its association state, or `proposed`.
    pub state: String,
    /// Subnets in it (existing and proposed), in address order.
    pub subnets: Vec<SubnetUse>,
    /// Addresses of the block not in any subnet (before the proposals).
    pub unallocated: u64,
}

/// A subnet in the address map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetUse {
    /// `subnet-…`, or None for a proposal.
    pub id: Option<String>,
    /// Its `Name` tag.
    pub name: Option<String>,
    /// Zone.
    pub az: String,
    /// Block.
    pub cidr: Ipv4Net,
    /// Who uses it, in words (e.g. `blue pods (ENIConfig us-east-1a)`).
    pub usage: String,
    /// Free addresses (usable ones for a proposal).
    pub free: u64,
}

/// An ENIConfig green needs (custom networking): one per zone, named after it, so that
/// `ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone` picks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EniConfigPlan {
    /// Name (the zone).
    pub name: String,
    /// The pod subnet's block.
    pub subnet_cidr: Ipv4Net,
    /// The pod subnet's id, when it exists (after `apply`, or an existing subnet).
    pub subnet_id: Option<String>,
}

/// An ENIConfig manifest (`crd.k8s.amazonaws.com/v1alpha1`, cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EniConfigManifest {
    /// `crd.k8s.amazonaws.com/v1alpha1`.
    pub api_version: String,
    /// `ENIConfig`.
    pub kind: String,
    /// Name, and the subnet's block as an annotation for review.
    pub metadata: ManifestMeta,
    /// The subnet.
    pub spec: EniConfigSpec,
}

/// Manifest metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestMeta {
    /// Name.
    pub name: String,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// ENIConfig spec. Without `securityGroups` the CNI gives pod ENIs the node's primary
/// ENI's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EniConfigSpec {
    /// `subnet-…`
    pub subnet: String,
}

impl EniConfigPlan {
    /// The manifest, once the subnet has an id.
    pub fn manifest(&self) -> Option<EniConfigManifest> {
        Some(EniConfigManifest {
            api_version: "crd.k8s.amazonaws.com/v1alpha1".into(),
            kind: "ENIConfig".into(),
            metadata: ManifestMeta {
                name: self.name.clone(),
                annotations: [(
                    "baton.io/subnet-cidr".to_string(),
                    self.subnet_cidr.to_string(),
                )]
                .into(),
            },
            spec: EniConfigSpec {
                subnet: self.subnet_id.clone()?,
            },
        })
    }
}

/// What the plan saw, to tell whether the VPC changed before `apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Active blocks.
    pub blocks: Vec<Ipv4Net>,
    /// Every subnet: id → block.
    pub subnets: BTreeMap<String, Ipv4Net>,
}

/// Sizing totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizing {
    /// Per node.
    pub node: NodeSizing,
    /// Nodes with surge.
    pub nodes_with_surge: u32,
    /// Nodes per zone (rounded up).
    pub nodes_per_az: u32,
}

/// Everything `baton network plan` decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// [`NETWORK_PLAN_VERSION`].
    pub version: u32,
    /// Unique id; tagged on what `apply` creates.
    pub id: String,
    /// When (RFC 3339).
    pub created: String,
    /// The VPC.
    pub vpc_id: String,
    /// Its primary block.
    pub primary: Ipv4Net,
    /// The region.
    pub region: String,
    /// What was asked.
    pub request: Request,
    /// Blue, when `--blue` was given.
    pub blue: Option<BlueView>,
    /// Blue's ranges (its nodes' subnets and ENIConfig subnets), for `mirror-rules`.
    pub blue_ranges: Vec<Ipv4Net>,
    /// Green's ranges once applied (existing ones counted, and proposed).
    pub green_ranges: Vec<Ipv4Net>,
    /// Per-node figures.
    pub sizing: Sizing,
    /// Needs per zone and role.
    pub needs: Vec<Need>,
    /// Blocks to associate.
    pub new_blocks: Vec<ProposedBlock>,
    /// Subnets to create.
    pub subnets: Vec<ProposedSubnet>,
    /// The address map, before and with the proposals.
    pub blocks: Vec<BlockUse>,
    /// ENIConfigs for green (custom networking).
    pub eni_configs: Vec<EniConfigPlan>,
    /// What was seen (staleness).
    pub observed: Observed,
    /// The sizing and the choices, in words.
    pub explanation: Vec<String>,
}
