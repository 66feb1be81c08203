//! How many addresses green's nodes and pods take, from the Amazon VPC CNI's rules.
//!
//! Sources (the numbers below are theirs, not baton's):
//! - Max pods in secondary-IP mode: `ENIs × (IPv4 addresses per ENI − 1) + 2` — the first
//!   address of each ENI is its own, the +2 are the host-network pods (aws-node,
//!   kube-proxy) that use the node's address. amazon-eks-ami `eni-max-pods.txt` and
//!   `max-pods-calculator.sh`; EKS User Guide, "Amazon VPC CNI".
//! - Custom networking: the primary ENI carries no pods, so one ENI fewer
//!   (`max-pods-calculator.sh --cni-custom-networking-enabled`; EKS User Guide,
//!   "Custom networking").
//! - Prefix delegation (Nitro instances only): each secondary-address slot holds a /28
//!   prefix of 16 addresses, so `ENIs × ((IPs per ENI − 1) × 16) + 2`, capped at 110 pods
//!   for instances with at most 30 vCPUs and 250 above (`max-pods-calculator.sh`; EKS
//!   User Guide, "Assign more IP addresses to Amazon EKS nodes with prefixes").
//! - Warm pools: ipamd keeps `WARM_ENI_TARGET` (default 1) whole ENIs of addresses free
//!   beyond those in use, or `WARM_IP_TARGET` addresses when that is set, or
//!   `WARM_PREFIX_TARGET` (default 1) /28 prefixes with prefix delegation
//!   (amazon-vpc-cni-k8s `docs/eni-and-ip-target.md`, `docs/prefix-and-ip-target.md`).
//!   Those addresses are taken from the subnet even though no pod uses them yet.
//! - ENIs and addresses per ENI by instance type: EC2 User Guide, "Maximum IP addresses
//!   per network interface" (`DescribeInstanceTypes` `NetworkInfo`).

use serde::{Deserialize, Serialize};

/// Addresses in one /28 prefix.
pub const PREFIX_ADDRESSES: u32 = 16;
/// Pods with host networking the max-pods formula adds (aws-node, kube-proxy): they use
/// the node's own address.
pub const HOST_NETWORK_PODS: u32 = 2;
/// Prefix-delegation max-pods cap for instances with at most 30 vCPUs.
pub const PREFIX_CAP_SMALL: u32 = 110;
/// Prefix-delegation max-pods cap above 30 vCPUs.
pub const PREFIX_CAP_LARGE: u32 = 250;
/// vCPUs above which the larger cap applies.
pub const PREFIX_CAP_VCPU_THRESHOLD: u32 = 30;

/// One EC2 instance type's network limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceType {
    /// e.g. `m5.large`.
    pub name: &'static str,
    /// Network interfaces (on the default network card).
    pub enis: u32,
    /// IPv4 addresses per interface.
    pub ips_per_eni: u32,
    /// Default vCPUs (decides the prefix-delegation cap).
    pub vcpus: u32,
    /// Built on the Nitro system (prefix delegation needs it).
    pub nitro: bool,
}

/// A small table of common EKS node types, from the EC2 User Guide's "Maximum IP
/// addresses per network interface". Pass `--max-pods-per-node` for others.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    it("t2.medium", 3, 6, 2, false),
    it("t3.medium", 3, 6, 2, true),
    it("t3.large", 3, 12, 2, true),
    it("t3.xlarge", 4, 15, 4, true),
    it("m4.large", 2, 10, 2, false),
    it("m5.large", 3, 10, 2, true),
    it("m5.xlarge", 4, 15, 4, true),
    it("m5.2xlarge", 4, 15, 8, true),
    it("m5.4xlarge", 8, 30, 16, true),
    it("m5.8xlarge", 8, 30, 32, true),
    it("m5.12xlarge", 8, 30, 48, true),
    it("m5.24xlarge", 15, 50, 96, true),
    it("m6i.large", 3, 10, 2, true),
    it("m6i.xlarge", 4, 15, 4, true),
    it("m6i.2xlarge", 4, 15, 8, true),
    it("m6i.4xlarge", 8, 30, 16, true),
    it("c5.large", 3, 10, 2, true),
    it("c5.xlarge", 4, 15, 4, true),
    it("c5.2xlarge", 4, 15, 8, true),
    it("c5.4xlarge", 8, 30, 16, true),
    it("r5.large", 3, 10, 2, true),
    it("r5.xlarge", 4, 15, 4, true),
    it("r5.2xlarge", 4, 15, 8, true),
];

const fn it(
    name: &'static str,
    enis: u32,
    ips_per_eni: u32,
    vcpus: u32,
    nitro: bool,
) -> InstanceType {
    InstanceType {
        name,
        enis,
        ips_per_eni,
        vcpus,
        nitro,
    }
}

/// The instance type by name, if the table has it.
pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// How the VPC CNI gives pods addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CniMode {
    /// `ENABLE_PREFIX_DELEGATION=true`: /28 prefixes instead of single addresses.
    pub prefix_delegation: bool,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true`: pods in the ENIConfig's subnet, not the
    /// node's.
    pub custom_networking: bool,
}

/// ipamd's warm pool settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmTargets {
    /// `WARM_ENI_TARGET` (default 1): whole free ENIs kept attached.
    pub eni: u32,
    /// `WARM_IP_TARGET`: free addresses kept; overrides the ENI target when set.
    pub ip: Option<u32>,
    /// `WARM_PREFIX_TARGET` (default 1): free /28 prefixes kept (prefix delegation).
    pub prefix: u32,
}

impl Default for WarmTargets {
    fn default() -> Self {
        Self {
            eni: 1,
            ip: None,
            prefix: 1,
        }
    }
}

/// The per-node figures the plan is sized on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSizing {
    /// Instance type name.
    pub instance_type: String,
    /// Max pods the CNI can address on one node (formula, before any kubelet cap).
    pub cni_max_pods: u32,
    /// Max pods used for the plan: `cni_max_pods`, or lower if `--max-pods-per-node`.
    pub max_pods: u32,
    /// Pods with a VPC address one node can hold: `max_pods − 2` host-network pods.
    pub addressed_pods_per_node: u32,
    /// Pods per node in the plan: pods ÷ nodes, rounded up.
    pub pods_per_node: u32,
    /// ENIs that carry pods on one node.
    pub pod_enis: u32,
    /// Addresses one node takes in its node subnet (its own, and with pods in the node
    /// subnet, every ENI's and pod's, warm ones included).
    pub node_subnet_addresses: u32,
    /// Addresses one node takes in the pod subnet (custom networking; 0 otherwise).
    pub pod_subnet_addresses: u32,
    /// /28 prefixes one node holds (prefix delegation; 0 otherwise), in the pod subnet
    /// with custom networking, else in the node subnet. Included in the address counts.
    pub prefixes: u32,
    /// The formula and the warm pool, in words.
    pub explanation: Vec<String>,
}

/// Why a size cannot be met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    /// The instance type is not in the table and no max pods was given.
    #[error(
        "size nodes of type {0}: baton's table does not know its ENI limits; pass --max-pods-per-node (and check `aws ec2 describe-instance-types --instance-types {0}`) or use one of: {1}"
    )]
    UnknownInstanceType(String, String),
    /// Prefix delegation on a non-Nitro type.
    #[error(
        "use prefix delegation on {0}: it is not a Nitro instance type, and prefixes are only assigned to Nitro instances; drop --prefix-delegation or choose a Nitro type (e.g. m5.large)"
    )]
    NotNitro(String),
    /// Custom networking on a type with one ENI.
    #[error(
        "use custom networking on {0}: it has a single network interface, so no ENI is left for pods; choose a larger type"
    )]
    NoPodEni(String),
    /// More pods than nodes can hold.
    #[error(
        "fit {pods} pods on {nodes} nodes of type {instance_type}: each holds at most {per_node} pods with a VPC address ({why}); that needs at least {min_nodes} nodes — raise --nodes, {hint}"
    )]
    TooManyPods {
        /// Pods asked for.
        pods: u32,
        /// Nodes asked for.
        nodes: u32,
        /// Instance type.
        instance_type: String,
        /// Addressed pods per node.
        per_node: u32,
        /// The formula.
        why: String,
        /// The fewest nodes that would do.
        min_nodes: u32,
        /// What else would help.
        hint: String,
    },
    /// A zero count.
    #[error("size green: {0}")]
    Invalid(String),
}

fn ceil_div(a: u32, b: u32) -> u32 {
    if b == 0 { 0 } else { a.div_ceil(b) }
}

/// Max pods the CNI can give addresses to on one node of `t` in `mode` (the EKS formula).
pub fn cni_max_pods(t: &InstanceType, mode: CniMode) -> u32 {
    let enis = pod_enis(t, mode);
    if mode.prefix_delegation {
        let raw = enis * (t.ips_per_eni - 1) * PREFIX_ADDRESSES + HOST_NETWORK_PODS;
        let cap = if t.vcpus > PREFIX_CAP_VCPU_THRESHOLD {
            PREFIX_CAP_LARGE
        } else {
            PREFIX_CAP_SMALL
        };
        raw.min(cap)
    } else {
        enis * (t.ips_per_eni - 1) + HOST_NETWORK_PODS
    }
}

/// ENIs that carry pods: all of them, or all but the primary with custom networking.
pub fn pod_enis(t: &InstanceType, mode: CniMode) -> u32 {
    if mode.custom_networking {
        t.enis.saturating_sub(1)
    } else {
        t.enis
    }
}

fn formula(t: &InstanceType, mode: CniMode) -> String {
    let enis = pod_enis(t, mode);
    let eni_words = if mode.custom_networking {
        format!(
            "{enis} ENIs for pods ({} minus the primary, custom networking)",
            t.enis
        )
    } else {
        format!("{enis} ENIs")
    };
    if mode.prefix_delegation {
        let raw = enis * (t.ips_per_eni - 1) * PREFIX_ADDRESSES + HOST_NETWORK_PODS;
        let cap = cni_max_pods(t, mode);
        format!(
            "{eni_words} × ({} − 1) /28 prefixes × 16 + 2 = {raw}, capped at {cap} for {} vCPUs",
            t.ips_per_eni, t.vcpus
        )
    } else {
        format!(
            "{eni_words} × ({} addresses − 1) + 2 = {}",
            t.ips_per_eni,
            cni_max_pods(t, mode)
        )
    }
}

/// The per-node figures for `pods` spread over `nodes` nodes of type `t`.
/// `max_pods_override` is the kubelet's `--max-pods` if the user sets one.
pub fn size_nodes(
    t: &InstanceType,
    mode: CniMode,
    warm: WarmTargets,
    nodes: u32,
    pods: u32,
    max_pods_override: Option<u32>,
) -> Result<NodeSizing, SizingError> {
    if nodes == 0 {
        return Err(SizingError::Invalid("--nodes must be at least 1".into()));
    }
    if mode.prefix_delegation && !t.nitro {
        return Err(SizingError::NotNitro(t.name.into()));
    }
    let enis = pod_enis(t, mode);
    if enis == 0 {
        return Err(SizingError::NoPodEni(t.name.into()));
    }
    let cni_max = cni_max_pods(t, mode);
    let max_pods = max_pods_override.map_or(cni_max, |m| m.min(cni_max));
    let per_node = max_pods.saturating_sub(HOST_NETWORK_PODS);
    let mut explanation = vec![format!("max pods on {}: {}", t.name, formula(t, mode))];
    if let Some(m) = max_pods_override {
        if m > cni_max {
            explanation.push(format!(
                "--max-pods-per-node {m} is above what the CNI can address ({cni_max}); sized on {cni_max}"
            ));
        } else {
            explanation.push(format!("kubelet max pods set to {m} (--max-pods-per-node)"));
        }
    }
    explanation.push(format!(
        "{per_node} pods per node get a VPC address ({max_pods} − 2 host-network pods that use the node's own)"
    ));
    let pods_per_node = ceil_div(pods, nodes);
    if pods_per_node > per_node {
        let min_nodes = ceil_div(pods, per_node.max(1));
        let hint = if mode.prefix_delegation {
            "choose a larger instance type".to_string()
        } else if t.nitro {
            "choose a larger instance type, or use --prefix-delegation".to_string()
        } else {
            "choose a larger (Nitro) instance type".to_string()
        };
        return Err(SizingError::TooManyPods {
            pods,
            nodes,
            instance_type: t.name.into(),
            per_node,
            why: formula(t, mode),
            min_nodes,
            hint,
        });
    }
    explanation.push(format!(
        "{pods} pods on {nodes} nodes: {pods_per_node} per node (rounded up)"
    ));

    let slot = t.ips_per_eni - 1; // secondary slots per ENI
    let (eni_addrs, secondary, prefixes, warm_words) = if mode.prefix_delegation {
        let in_use = ceil_div(pods_per_node, PREFIX_ADDRESSES);
        let prefixes = (in_use + warm.prefix).min(enis * slot);
        let attached = ceil_div(prefixes, slot).max(1);
        (
            attached,
            prefixes * PREFIX_ADDRESSES,
            prefixes,
            format!(
                "{in_use} /28 prefixes in use + WARM_PREFIX_TARGET {} = {prefixes} prefixes ({} addresses) on {attached} ENIs",
                warm.prefix,
                prefixes * PREFIX_ADDRESSES
            ),
        )
    } else if let Some(ip) = warm.ip {
        let allocated = (pods_per_node + ip).min(enis * slot);
        let attached = ceil_div(allocated, slot).max(1);
        (
            attached,
            allocated,
            0,
            format!(
                "{pods_per_node} pod addresses + WARM_IP_TARGET {ip} = {allocated} secondary addresses on {attached} ENIs"
            ),
        )
    } else {
        let used = ceil_div(pods_per_node, slot).max(u32::from(!mode.custom_networking));
        let attached = (used + warm.eni).min(enis);
        (
            attached,
            attached * slot,
            0,
            format!(
                "{used} ENIs in use + WARM_ENI_TARGET {} = {attached} ENIs, each with all its {slot} secondary addresses",
                warm.eni
            ),
        )
    };
    let pod_side = eni_addrs + secondary;
    let (node_subnet, pod_subnet) = if mode.custom_networking {
        (1, pod_side)
    } else {
        // The primary ENI's own address is the node's.
        (pod_side, 0)
    };
    explanation.push(format!("warm pool per node: {warm_words}"));
    if mode.custom_networking {
        explanation.push(format!(
            "per node: 1 address in the node subnet (the primary ENI), {pod_subnet} in the pod subnet ({eni_addrs} ENI addresses + {secondary} for pods)"
        ));
    } else {
        explanation.push(format!(
            "per node: {node_subnet} addresses in the node subnet ({eni_addrs} ENI addresses, the node's own among them, + {secondary} for pods)"
        ));
    }
    Ok(NodeSizing {
        instance_type: t.name.into(),
        cni_max_pods: cni_max,
        max_pods,
        addressed_pods_per_node: per_node,
        pods_per_node,
        pod_enis: enis,
        node_subnet_addresses: node_subnet,
        pod_subnet_addresses: pod_subnet,
        prefixes,
        explanation,
    })
}

/// The instance types the table knows, for error messages.
pub fn known_types() -> String {
    INSTANCE_TYPES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> &'static InstanceType {
        instance_type(name).unwrap()
    }

    const SECONDARY: CniMode = CniMode {
        prefix_delegation: false,
        custom_networking: false,
    };

    #[test]
    fn max_pods_match_eni_max_pods_txt() {
        // Values published in amazon-eks-ami eni-max-pods.txt.
        for (name, want) in [
            ("m5.large", 29),
            ("m5.xlarge", 58),
            ("m5.4xlarge", 234),
            ("t3.medium", 17),
            ("c5.large", 29),
            ("m5.24xlarge", 737),
        ] {
            assert_eq!(cni_max_pods(t(name), SECONDARY), want, "{name}");
        }
    }

    #[test]
    fn custom_networking_uses_one_eni_fewer() {
        let mode = CniMode {
            custom_networking: true,
            ..Default::default()
        };
        assert_eq!(cni_max_pods(t("m5.large"), mode), 2 * 9 + 2);
        assert_eq!(cni_max_pods(t("m5.xlarge"), mode), 3 * 14 + 2);
    }

    #[test]
    fn prefix_delegation_is_capped_by_vcpus() {
        let pd = CniMode {
            prefix_delegation: true,
            ..Default::default()
        };
        assert_eq!(cni_max_pods(t("m5.large"), pd), 110); // 3×9×16+2 = 434
        assert_eq!(cni_max_pods(t("t3.medium"), pd), 110); // 3×5×16+2 = 242
        assert_eq!(cni_max_pods(t("m5.8xlarge"), pd), 250); // 32 vCPUs
        let pd_cn = CniMode {
            prefix_delegation: true,
            custom_networking: true,
        };
        assert_eq!(cni_max_pods(t("m5.large"), pd_cn), 110); // 2×9×16+2 = 290
    }

    #[test]
    fn prefix_delegation_needs_nitro() {
        let pd = CniMode {
            prefix_delegation: true,
            ..Default::default()
        };
        let e = size_nodes(t("m4.large"), pd, WarmTargets::default(), 3, 30, None).unwrap_err();
        assert_eq!(e, SizingError::NotNitro("m4.large".into()));
    }

    #[test]
    fn warm_eni_target_takes_a_whole_spare_eni() {
        // 9 pods fill the primary ENI of an m5.large; one more ENI is kept warm.
        let s = size_nodes(t("m5.large"), SECONDARY, WarmTargets::default(), 1, 9, None).unwrap();
        assert_eq!(s.node_subnet_addresses, 2 * 10);
        // At the ENI limit no warm ENI can be added.
        let s = size_nodes(
            t("m5.large"),
            SECONDARY,
            WarmTargets::default(),
            1,
            27,
            None,
        )
        .unwrap();
        assert_eq!(s.node_subnet_addresses, 3 * 10);
    }

    #[test]
    fn warm_ip_target_reserves_only_that_many() {
        let warm = WarmTargets {
            ip: Some(2),
            ..Default::default()
        };
        let s = size_nodes(t("m5.large"), SECONDARY, warm, 1, 9, None).unwrap();
        // 11 secondary addresses need 2 ENIs, whose own addresses count too.
        assert_eq!(s.node_subnet_addresses, 11 + 2);
    }

    #[test]
    fn custom_networking_moves_pod_addresses_to_the_pod_subnet() {
        let mode = CniMode {
            custom_networking: true,
            ..Default::default()
        };
        let s = size_nodes(t("m5.large"), mode, WarmTargets::default(), 2, 20, None).unwrap();
        assert_eq!(s.node_subnet_addresses, 1);
        // 10 pods: 2 pod ENIs in use, the warm one would be a third but only 2 exist.
        assert_eq!(s.pod_subnet_addresses, 2 * 10);
    }

    #[test]
    fn too_many_pods_names_the_fewest_nodes() {
        let e = size_nodes(
            t("m5.large"),
            SECONDARY,
            WarmTargets::default(),
            100,
            3000,
            None,
        )
        .unwrap_err();
        match e {
            SizingError::TooManyPods {
                min_nodes,
                per_node,
                ..
            } => {
                assert_eq!(per_node, 27);
                assert_eq!(min_nodes, 112);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kubelet_max_pods_lowers_the_limit_but_never_raises_it() {
        let s = size_nodes(
            t("m5.large"),
            SECONDARY,
            WarmTargets::default(),
            10,
            100,
            Some(12),
        )
        .unwrap();
        assert_eq!(s.max_pods, 12);
        assert!(
            size_nodes(
                t("m5.large"),
                SECONDARY,
                WarmTargets::default(),
                10,
                110,
                Some(12)
            )
            .is_err()
        );
        let s = size_nodes(
            t("m5.large"),
            SECONDARY,
            WarmTargets::default(),
            10,
            100,
            Some(500),
        )
        .unwrap();
        assert_eq!(s.max_pods, 29);
    }
}
