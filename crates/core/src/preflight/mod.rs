//! Preflight: read-only checks of blue and green before anything moves. Each finding
//! names its severity, the object, what is wrong, why it matters, and the fix; the report's
//! outcome is the documented exit code.
//!
//! The stateful move's own checks are the planner's ([`crate::planner`]): its problems
//! become findings here, so `baton plan` and `baton preflight` can never disagree. What
//! the planner does not look at (removed APIs, add-ons, StorageClass provisioners,
//! disruption budgets, operators and GitOps, security groups, version skew, an expected
//! VPC) is checked here, on [`Facts`] the adapters read.

pub mod removals;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::network::mirror::{self, Group};
use crate::plan::{Plan, Problem, Severity as PlanSeverity};
use crate::world::ClusterView;
use removals::{parse_version, removed_by};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The move would break or lose something: fix it first.
    Fail,
    /// The move can go ahead; read this first.
    Warn,
    /// Worth knowing; nothing to do.
    Info,
}

impl Severity {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Warn => "warn",
            Self::Info => "info",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// fail, warn or info.
    pub severity: Severity,
    /// A stable short code for scripts (`removed-api`, `sg-blue-only`, …).
    pub check: String,
    /// The object, as `Kind context/namespace/name` (or what else it is).
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// Why it matters.
    pub why: String,
    /// What to do.
    pub fix: String,
}

/// A check that could not run, and why: the report is then incomplete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unchecked {
    /// What could not be checked.
    pub check: String,
    /// Why (the failed read, with its error).
    pub reason: String,
}

/// Everything preflight found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Blue's context.
    pub from: String,
    /// Green's context.
    pub to: String,
    /// Blue's Kubernetes version.
    pub from_version: String,
    /// Green's Kubernetes version.
    pub to_version: String,
    /// Findings, most serious first.
    pub findings: Vec<Finding>,
    /// Checks that could not run.
    pub unchecked: Vec<Unchecked>,
    /// pass, warnings, failures or unchecked.
    pub outcome: Outcome,
}

/// The report's verdict, which is also the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Nothing but info (exit 0).
    Pass,
    /// Warnings, no failures (exit 1).
    Warnings,
    /// At least one failure (exit 2).
    Failures,
    /// Something could not be read, so the report is incomplete (exit 3), whatever else
    /// it found: a clean report must never come from a read that failed.
    Unchecked,
}

impl Outcome {
    /// The documented exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Warnings => 1,
            Self::Failures => 2,
            Self::Unchecked => 3,
        }
    }

    /// From findings and unchecked reads.
    pub fn of(findings: &[Finding], unchecked: &[Unchecked]) -> Self {
        if !unchecked.is_empty() {
            Self::Unchecked
        } else if findings.iter().any(|f| f.severity == Severity::Fail) {
            Self::Failures
        } else if findings.iter().any(|f| f.severity == Severity::Warn) {
            Self::Warnings
        } else {
            Self::Pass
        }
    }
}

/// Where an apiVersion was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiSource {
    /// A live object's `kubectl.kubernetes.io/last-applied-configuration`.
    LastApplied,
    /// A Helm v3 release's stored manifest (release name and revision).
    Helm {
        /// Release name.
        release: String,
        /// Revision.
        revision: u32,
    },
    /// A local manifest file.
    File {
        /// The path as given.
        path: String,
    },
}

/// One object's apiVersion and kind, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiUse {
    /// `apps/v1beta2`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Namespace ("" for cluster-scoped or unknown).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Where.
    pub source: ApiSource,
}

/// A kube-system workload of green (an add-on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Deployment or DaemonSet.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pods wanted.
    pub desired: i32,
    /// Pods ready.
    pub ready: i32,
}

/// A PodDisruptionBudget of blue, with the pods it selects counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pdb {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pods it selects.
    pub pods: i32,
    /// Of those, Ready.
    pub healthy: i32,
    /// Evictions it allows now (computed from spec and pods, as the disruption
    /// controller does).
    pub allowed: i32,
}

/// Something other than baton that manages one of blue's StatefulSets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// The StatefulSet, `namespace/name`.
    pub statefulset: String,
    /// Who: `PostgresCluster db (acid.zalan.do/v1)` or `Argo CD application shop`.
    pub by: String,
    /// An operator (owner reference) or GitOps (labels/annotations).
    pub kind: ManagerKind,
}

/// How a StatefulSet is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerKind {
    /// A controlling owner reference to a custom resource.
    Operator,
    /// Argo CD or Flux tracking labels/annotations (self-heal re-applies replicas).
    GitOps,
}

/// Green's nodes' kubelet versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubelet {
    /// Node name.
    pub node: String,
    /// `status.nodeInfo.kubeletVersion`.
    pub version: String,
}

/// The network facts for the security-group check.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Network {
    /// The VPC's security groups.
    pub groups: Vec<Group>,
    /// Blue's node and pod ranges.
    pub blue: Vec<Ipv4Net>,
    /// Green's node and pod ranges.
    pub green: Vec<Ipv4Net>,
}

/// What preflight reads beyond the planner's inputs. A field left `None` was not read
/// (its failure is an [`Unchecked`] the caller records).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// apiVersions in blue's live objects, Helm releases and local manifests.
    pub api_uses: Option<Vec<ApiUse>>,
    /// Green's kube-system Deployments and DaemonSets.
    pub green_addons: Option<Vec<Workload>>,
    /// Green's CSIDriver object names.
    pub green_csi_drivers: Option<Vec<String>>,
    /// Green's nodes' kubelets.
    pub green_kubelets: Option<Vec<Kubelet>>,
    /// Blue's disruption budgets.
    pub blue_pdbs: Option<Vec<Pdb>>,
    /// Operators and GitOps tools managing blue's StatefulSets.
    pub blue_managers: Option<Vec<Manager>>,
    /// Security groups and both clusters' ranges.
    pub network: Option<Network>,
    /// `--vpc`, and the VPCs of blue's and green's nodes.
    pub vpc: Option<VpcFacts>,
    /// The IAM roles blue's ServiceAccounts assume (IRSA), and green's OIDC provider.
    #[serde(default)]
    pub identity: Option<IdentityFacts>,
    /// Blue's TargetGroupBindings (`namespace/name` → target group ARN) that green has
    /// no binding of the same namespace and name for.
    #[serde(default)]
    pub unbound: Option<Vec<(String, String)>>,
}

/// What `baton identity plan` reads: green's IAM OIDC provider, and per role whether its
/// trust policy lets green's provider issue tokens for the ServiceAccounts using it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityFacts {
    /// Green's provider's ARN.
    pub provider: String,
    /// Whether it exists in IAM.
    pub provider_exists: bool,
    /// Per role.
    pub roles: Vec<RoleTrust>,
}

/// One role blue's ServiceAccounts assume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTrust {
    /// The role's ARN.
    pub role: String,
    /// `NS/NAME` of the ServiceAccounts naming it.
    pub service_accounts: Vec<String>,
    /// Whether its trust policy admits them from green's provider.
    pub trusted: bool,
    /// Why it cannot be given green's trust (missing role, unreadable or over-long
    /// trust policy), when so.
    pub problem: Option<String>,
}

/// The VPC the user expects, and where the nodes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcFacts {
    /// `--vpc`.
    pub expected: String,
    /// Blue's nodes' VPCs.
    pub blue: BTreeSet<String>,
    /// Green's nodes' VPCs.
    pub green: BTreeSet<String>,
}

/// The EBS CSI driver's name.
pub const EBS_CSI_DRIVER: &str = "ebs.csi.aws.com";
const IN_TREE_EBS: &str = "kubernetes.io/aws-ebs";

/// Runs every check: the planner's problems (as findings) and preflight's own.
pub fn check(
    plan: &Plan,
    blue: &ClusterView,
    green: &ClusterView,
    facts: &Facts,
    unchecked: Vec<Unchecked>,
) -> Report {
    let mut findings: Vec<Finding> = plan
        .problems
        .iter()
        .chain(plan.apps.iter().flat_map(|a| a.problems.iter()))
        .map(from_problem)
        .collect();
    findings.extend(version_skew(blue, green, facts));
    if let Some(v) = &facts.vpc {
        findings.extend(expected_vpc(v, blue, green));
    }
    if let Some(uses) = &facts.api_uses {
        findings.extend(removed_apis(uses, green));
    }
    findings.extend(addons(plan, blue, green, facts));
    findings.extend(storage_classes(blue, green));
    if let Some(pdbs) = &facts.blue_pdbs {
        findings.extend(disruption_budgets(pdbs, &blue.context));
    }
    if let Some(m) = &facts.blue_managers {
        findings.extend(managers(plan, m, &blue.context));
    }
    if let Some(n) = &facts.network {
        findings.extend(security_groups(n, &blue.context, &green.context));
    }
    if let Some(i) = &facts.identity {
        findings.extend(identity(i, &blue.context, &green.context));
    }
    for (binding, tg) in facts.unbound.iter().flatten() {
        findings.push(finding(
            Severity::Fail,
            "target-group-binding-missing",
            format!("TargetGroupBinding {}/{binding}", blue.context),
            format!(
                "{} has no binding like it: nothing registers green's pods in a target group of green's (blue's registers into {tg})",
                green.context
            ),
            "with an ALB managed outside Kubernetes, each cluster's load balancer controller registers its own pods through its own binding; a traffic shift to a green group nobody registers into sends requests to no target",
            format!(
                "baton traffic bindings --from {} --to {} --apply",
                blue.context, green.context
            ),
        ));
    }
    // The planner reports a missing class per claim; one finding per object is enough.
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert((f.check.clone(), f.object.clone(), f.problem.clone())));
    // Findings that say the same stand together (one check may say different things, e.g.
    // a re-tag with or without the ownership tags), each list in the objects' order.
    findings.sort_by(|a, b| {
        (a.severity, &a.check, &a.problem, &a.object)
            .cmp(&(b.severity, &b.check, &b.problem, &b.object))
    });
    let outcome = Outcome::of(&findings, &unchecked);
    Report {
        from: blue.context.clone(),
        to: green.context.clone(),
        from_version: blue.version.clone(),
        to_version: green.version.clone(),
        findings,
        unchecked,
        outcome,
    }
}

fn finding(
    severity: Severity,
    check: &str,
    object: impl Into<String>,
    problem: impl Into<String>,
    why: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        severity,
        check: check.into(),
        object: object.into(),
        problem: problem.into(),
        why: why.into(),
        fix: fix.into(),
    }
}

/// Why each of the planner's problems matters (the planner says what and the fix).
fn why_of(code: &str) -> &'static str {
    match code {
        "different-vpc" => {
            "an EBS volume can only be handed to nodes that reach it; baton moves volumes, not data"
        }
        "different-region" | "wrong-aws-region" => {
            "EBS volumes never leave their region, and EC2 answers for one region only"
        }
        "zone-without-nodes" => {
            "an EBS volume attaches only to nodes in its own zone: the pod would stay Pending in green"
        }
        "multi-attach" => {
            "a multi-attach volume can be written from blue and green at once, corrupting the data"
        }
        "retention-delete" => {
            "a StatefulSet with a Delete retention policy deletes its claims (and with Delete PVs, the volumes) when scaled down"
        }
        "reclaim-delete" => {
            "deleting the claim of a Delete PV deletes the EBS volume with the data"
        }
        "scaler" => {
            "an HPA with minReplicas 0 (HPAScaleToZero) can scale blue up from 0 after baton stopped it, so both clusters would write the volume (one with a minimum leaves a target at 0 alone)"
        }
        "class-missing-in-green" => {
            "moved claims bind, but green cannot provision the claims of a scale-up"
        }
        "green-missing" | "templates-differ" | "green-not-zero" | "green-claim-taken" => {
            "green must hold the app at 0 replicas with the same claim templates, or it cannot take over blue's volumes"
        }
        "in-tree" => {
            "the in-tree EBS plugin is gone from new clusters: green mounts such a PV only if CSI migration routes it to the EBS CSI driver"
        }
        "blue-at-zero" | "nothing-to-move" => "the move hands over only the claims that exist",
        "retag" => {
            "green's EBS CSI driver policy lets it attach only volumes tagged for it; baton changes the tags in the window, once blue's driver has detached them (earlier, blue could not detach)"
        }
        "volume-foreign-cluster" => {
            "a volume another cluster claims as its own may be attached or deleted by that cluster's driver"
        }
        "volume-key-green-cannot-use" | "volume-key-unchecked" => {
            "EC2 attaches a volume under a customer-managed KMS key only for a caller that may use the key; otherwise the attach fails and the volume stays available, with the app down in the window (keys are fixed before the move, never in it)"
        }
        "ebs-csi-role-unknown" | "green-driver-cannot-attach" => {
            "without knowing what green's EBS CSI driver may attach, a tag-scoped policy can fail green's attach inside the window"
        }
        _ => "the stateful move refuses an app with this problem (see `baton plan`)",
    }
}

fn from_problem(p: &Problem) -> Finding {
    finding(
        match p.severity {
            PlanSeverity::Blocking => Severity::Fail,
            PlanSeverity::Warning => Severity::Warn,
        },
        &p.code,
        &p.object,
        &p.message,
        why_of(&p.code),
        &p.fix,
    )
}

fn clusters(blue: &ClusterView, green: &ClusterView) -> String {
    format!("clusters {} and {}", blue.context, green.context)
}

fn version_skew(blue: &ClusterView, green: &ClusterView, facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(b), Some(g)) = (parse_version(&blue.version), parse_version(&green.version)) else {
        out.push(finding(
            Severity::Warn,
            "version-skew",
            clusters(blue, green),
            format!(
                "cannot tell the versions apart: blue reports {:?}, green {:?}",
                blue.version, green.version
            ),
            "the removed-API check needs green's minor version",
            "check that both contexts reach EKS API servers",
        ));
        return out;
    };
    if g < b {
        out.push(finding(
            Severity::Fail,
            "version-skew",
            clusters(blue, green),
            format!("green runs {} but blue runs {}: that is a downgrade", green.version, blue.version),
            "objects stored by the newer version may use APIs or fields the older one does not serve",
            "create green at blue's version or newer",
        ));
    } else if g == b {
        out.push(finding(
            Severity::Info,
            "version-skew",
            clusters(blue, green),
            format!("blue and green both run 1.{}", b.1),
            "a blue/green move at one version changes the cluster, not Kubernetes",
            "nothing",
        ));
    } else {
        out.push(finding(
            Severity::Info,
            "version-skew",
            clusters(blue, green),
            format!("1.{} → 1.{}: {} minor versions at once", b.1, g.1, g.1 - b.1),
            "blue/green may skip versions an in-place upgrade must step through; APIs removed on the way are checked below",
            "nothing",
        ));
    }
    for k in facts.green_kubelets.iter().flatten() {
        let Some(kv) = parse_version(&k.version) else {
            continue;
        };
        let object = format!("Node {}/{}", green.context, k.node);
        if kv > g {
            out.push(finding(
                Severity::Fail,
                "kubelet-skew",
                object,
                format!(
                    "kubelet {} is newer than green's control plane {}",
                    k.version, green.version
                ),
                "a kubelet must never be newer than its API server",
                "replace the node group with one at green's version",
            ));
        } else if kv.0 == g.0 && g.1 - kv.1 > 3 {
            out.push(finding(
                Severity::Warn,
                "kubelet-skew",
                object,
                format!(
                    "kubelet {} is more than 3 minor versions behind green's {}",
                    k.version, green.version
                ),
                "Kubernetes supports kubelets up to 3 minor versions older than the API server",
                "upgrade the node group to green's version",
            ));
        }
    }
    out
}

fn expected_vpc(v: &VpcFacts, blue: &ClusterView, green: &ClusterView) -> Vec<Finding> {
    let mut out = Vec::new();
    for (ctx, vpcs) in [(&blue.context, &v.blue), (&green.context, &v.green)] {
        let other: Vec<&String> = vpcs.iter().filter(|x| **x != v.expected).collect();
        if !other.is_empty() {
            out.push(finding(
                Severity::Fail,
                "vpc",
                format!("cluster {ctx}"),
                format!(
                    "its nodes are in {}, not in --vpc {}",
                    other
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    v.expected
                ),
                "blue and green must share the VPC the volumes and the database are reached in",
                "pass the right --vpc or the right context",
            ));
        }
    }
    out
}

fn removed_apis(uses: &[ApiUse], green: &ClusterView) -> Vec<Finding> {
    let Some((_, minor)) = parse_version(&green.version) else {
        return Vec::new();
    };
    uses.iter()
        .filter_map(|u| {
            let r = removed_by(&u.api_version, &u.kind, minor)?;
            let name = if u.namespace.is_empty() {
                u.name.clone()
            } else {
                format!("{}/{}", u.namespace, u.name)
            };
            let (object, fix) = match &u.source {
                ApiSource::LastApplied => (
                    format!("{} {name} (last-applied in blue)", u.kind),
                    format!(
                        "change the manifest it is applied from to {}",
                        if r.replacement.is_empty() { "a supported API" } else { r.replacement }
                    ),
                ),
                ApiSource::Helm { release, revision } => (
                    format!("{} {name} (Helm release {release} revision {revision})", u.kind),
                    format!(
                        "upgrade the chart to one using {} (or rewrite the stored release with the helm-mapkubeapis plugin) before installing it in green",
                        if r.replacement.is_empty() { "a supported API" } else { r.replacement }
                    ),
                ),
                ApiSource::File { path } => (
                    format!("{} {name} ({path})", u.kind),
                    format!(
                        "change apiVersion to {}",
                        if r.replacement.is_empty() { "a supported API (this kind has none: remove it)" } else { r.replacement }
                    ),
                ),
            };
            Some(finding(
                Severity::Fail,
                "removed-api",
                object,
                format!("uses {} {}, removed in Kubernetes 1.{}", u.api_version, u.kind, r.removed_in),
                format!("green ({}) no longer serves it: applying this to green fails", green.version),
                fix,
            ))
        })
        .collect()
}

fn uses_ebs(plan: &Plan, blue: &ClusterView) -> bool {
    plan.apps.iter().any(|a| !a.volumes.is_empty())
        || blue.volumes.iter().any(|v| v.volume_id.is_some())
}

fn addons(plan: &Plan, blue: &ClusterView, green: &ClusterView, facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in facts.green_addons.iter().flatten() {
        if w.ready < w.desired {
            out.push(finding(
                Severity::Fail,
                "addon-not-ready",
                format!("{} {}/{}/{}", w.kind, green.context, w.namespace, w.name),
                format!("{} of {} pods ready", w.ready, w.desired),
                "apps moved to green depend on its add-ons (DNS, storage, networking)",
                format!(
                    "kubectl --context {} -n {} describe {} {}",
                    green.context,
                    w.namespace,
                    w.kind.to_lowercase(),
                    w.name
                ),
            ));
        }
    }
    if !uses_ebs(plan, blue) {
        return out;
    }
    if let Some(drivers) = &facts.green_csi_drivers
        && !drivers.iter().any(|d| d == EBS_CSI_DRIVER)
    {
        out.push(finding(
            Severity::Fail,
            "ebs-csi-missing",
            format!("CSIDriver {}/{EBS_CSI_DRIVER}", green.context),
            "green has no CSIDriver object for the EBS CSI driver",
            "green attaches EBS volumes (CSI and migrated in-tree ones) only through the EBS CSI driver",
            "install the aws-ebs-csi-driver add-on in green (eksctl/EKS add-on aws-ebs-csi-driver)",
        ));
    }
    if let Some(addons) = &facts.green_addons
        && !addons.iter().any(|w| w.name.contains("ebs-csi-controller"))
    {
        out.push(finding(
            Severity::Fail,
            "ebs-csi-missing",
            format!("Deployment {}/kube-system/ebs-csi-controller", green.context),
            "green runs no EBS CSI controller in kube-system",
            "without the controller, green can neither attach blue's volumes nor provision new ones",
            "install the aws-ebs-csi-driver add-on in green",
        ));
    }
    out
}

fn storage_classes(blue: &ClusterView, green: &ClusterView) -> Vec<Finding> {
    let used: BTreeSet<&str> = blue
        .claims
        .iter()
        .map(|c| c.storage_class.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    let mut out = Vec::new();
    for name in used {
        let object = format!("StorageClass {}/{name}", green.context);
        let Some(b) = blue.storage_classes.iter().find(|c| c.name == name) else {
            continue;
        };
        match green.storage_classes.iter().find(|c| c.name == name) {
            None => out.push(finding(
                Severity::Warn,
                "class-missing-in-green",
                object,
                "green has no StorageClass of this name: the moved claims bind, but new ones (scale-up) cannot be provisioned",
                why_of("class-missing-in-green"),
                format!("create StorageClass {name} in {}", green.context),
            )),
            Some(g) if g.provisioner != b.provisioner => {
                let ebs_both = [g.provisioner.as_str(), b.provisioner.as_str()]
                    .iter()
                    .all(|p| *p == EBS_CSI_DRIVER || *p == IN_TREE_EBS);
                out.push(finding(
                    if ebs_both { Severity::Info } else { Severity::Warn },
                    "class-provisioner",
                    object,
                    format!(
                        "provisioner is {} in green but {} in blue",
                        g.provisioner, b.provisioner
                    ),
                    if ebs_both {
                        "both are EBS: the in-tree name provisions through the CSI driver (CSI migration)"
                    } else {
                        "green's claims of this class would be provisioned by a different backend than blue's"
                    },
                    if ebs_both {
                        "nothing".to_string()
                    } else {
                        format!("give StorageClass {name} the provisioner {} in green", b.provisioner)
                    },
                ));
            }
            Some(_) => {}
        }
    }
    out
}

fn disruption_budgets(pdbs: &[Pdb], ctx: &str) -> Vec<Finding> {
    pdbs.iter()
        .filter(|p| p.pods > 0 && p.allowed <= 0)
        .map(|p| {
            finding(
                Severity::Warn,
                "pdb-blocks",
                format!("PodDisruptionBudget {ctx}/{}/{}", p.namespace, p.name),
                format!(
                    "allows no eviction now ({} of {} selected pods healthy)",
                    p.healthy, p.pods
                ),
                "baton scales StatefulSets (no evictions), but draining or retiring blue's nodes evicts, and this budget blocks every drain of its pods' nodes",
                format!(
                    "relax it (minAvailable/maxUnavailable) or delete it in {ctx} before retiring blue's nodes"
                ),
            )
        })
        .collect()
}

fn managers(plan: &Plan, managers: &[Manager], ctx: &str) -> Vec<Finding> {
    let moved: BTreeSet<String> = plan.apps.iter().map(|a| a.key()).collect();
    managers
        .iter()
        .filter(|m| moved.contains(&m.statefulset))
        .map(|m| {
            let fences: Vec<String> = plan
                .apps
                .iter()
                .filter(|a| a.key() == m.statefulset)
                .flat_map(|a| a.fences.iter().map(ToString::to_string))
                .collect();
            if m.kind == ManagerKind::GitOps && !fences.is_empty() {
                return finding(
                    Severity::Info,
                    "managed-by",
                    format!("StatefulSet {ctx}/{}", m.statefulset),
                    format!("managed by {}", m.by),
                    format!(
                        "GitOps would scale blue back up during the move; `baton migrate` pauses {} before blue stops, rollback restores, commit keeps the pause",
                        fences.join(", ")
                    ),
                    "nothing before the move; after commit, make the pause permanent in Git",
                );
            }
            let (why, fix) = match m.kind {
                ManagerKind::Operator => (
                    "an operator reconciles its StatefulSet: it can scale blue back up, or recreate what baton stopped",
                    format!("pause the operator's reconciliation of {} (or scale the operator to 0 in {ctx}) before `baton migrate`", m.by),
                ),
                ManagerKind::GitOps => (
                    "GitOps self-heal re-applies the replicas from Git: blue would be scaled back up during the move, and baton found no Application, Kustomization or HelmRelease in this cluster to pause (an Argo CD that runs in another cluster?)",
                    format!("disable auto-sync/self-heal of {} (or suspend the Flux Kustomization) before `baton migrate`", m.by),
                ),
            };
            finding(
                Severity::Warn,
                "managed-by",
                format!("StatefulSet {ctx}/{}", m.statefulset),
                format!("managed by {}", m.by),
                why,
                fix,
            )
        })
        .collect()
}

fn security_groups(n: &Network, blue_ctx: &str, green_ctx: &str) -> Vec<Finding> {
    if n.blue.is_empty() || n.green.is_empty() {
        return Vec::new();
    }
    let mut by_group: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut blue_cidrs: BTreeSet<String> = BTreeSet::new();
    let mut green_cidrs: BTreeSet<String> = BTreeSet::new();
    for m in mirror::mirror(&n.groups, &n.blue, &n.green) {
        let ports = match (m.from_port, m.to_port) {
            _ if m.protocol == "-1" => "all traffic".to_string(),
            (Some(f), Some(t)) if f == t => format!("{}/{f}", m.protocol),
            (Some(f), Some(t)) => format!("{}/{f}-{t}", m.protocol),
            _ => format!("{}/all ports", m.protocol),
        };
        blue_cidrs.extend(m.blue.iter().map(ToString::to_string));
        green_cidrs.extend(m.add.iter().map(ToString::to_string));
        by_group
            .entry((m.group_id, m.group_name))
            .or_default()
            .push(format!(
                "{ports} from {} but not from {}",
                join(&m.blue),
                join(&m.add)
            ));
    }
    by_group
        .into_iter()
        .map(|((id, name), rules)| {
            finding(
                Severity::Fail,
                "sg-blue-only",
                format!("SecurityGroup {id} ({name})"),
                format!("admits {blue_ctx}'s ranges but not {green_ctx}'s: {}", rules.join("; ")),
                format!("apps moved to {green_ctx} could not reach what this group protects (e.g. the database)"),
                format!(
                    "baton network mirror-rules --security-group {id} --from-cidrs {} --to-cidrs {} --apply",
                    blue_cidrs.iter().cloned().collect::<Vec<_>>().join(","),
                    green_cidrs.iter().cloned().collect::<Vec<_>>().join(",")
                ),
            )
        })
        .collect()
}

fn identity(i: &IdentityFacts, blue_ctx: &str, green_ctx: &str) -> Vec<Finding> {
    let fix = format!("baton identity apply --from {blue_ctx} --to {green_ctx}");
    let why = format!(
        "{green_ctx}'s pods get a role's credentials only if its trust policy trusts {green_ctx}'s IAM OIDC provider; otherwise they fail with AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"
    );
    let mut out = Vec::new();
    if !i.provider_exists && !i.roles.is_empty() {
        out.push(finding(
            Severity::Fail,
            "oidc-provider-missing",
            format!("IAM OIDC provider {}", i.provider),
            format!("{green_ctx}'s issuer has no IAM OIDC provider: no role can trust it"),
            why.clone(),
            fix.clone(),
        ));
    }
    for r in &i.roles {
        let object = format!("IAM role {}", r.role);
        let sas = r.service_accounts.join(", ");
        match &r.problem {
            Some(p) => out.push(finding(
                Severity::Fail,
                "irsa-role-unusable",
                object,
                format!("named by {blue_ctx}'s ServiceAccounts {sas}: {p}"),
                why.clone(),
                "fix the role or the ServiceAccounts' eks.amazonaws.com/role-arn, then `baton identity plan`",
            )),
            None if !r.trusted => out.push(finding(
                Severity::Fail,
                "irsa-role-untrusted",
                object,
                format!(
                    "its trust policy does not let {green_ctx}'s OIDC provider issue tokens for {sas}"
                ),
                why.clone(),
                fix.clone(),
            )),
            None => {}
        }
    }
    out
}

fn join(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The disruptions a budget allows, as the disruption controller computes them:
/// `minAvailable` (a count or a percentage of the selected pods, rounded up) or
/// `maxUnavailable` (likewise), against the pods that are healthy now.
pub fn allowed_disruptions(
    min_available: Option<&str>,
    max_unavailable: Option<&str>,
    pods: i32,
    healthy: i32,
) -> i32 {
    let scaled = |v: &str| -> i32 {
        match v.strip_suffix('%') {
            Some(p) => {
                let p: i64 = p.trim().parse().unwrap_or(0);
                ((i64::from(pods) * p + 99) / 100) as i32
            }
            None => v.trim().parse().unwrap_or(0),
        }
    };
    match (min_available, max_unavailable) {
        (Some(min), _) => healthy - scaled(min),
        (None, Some(max)) => healthy - (pods - scaled(max)),
        (None, None) => healthy - pods,
    }
    .max(0)
}
