//! Scenarios are data: a YAML description of an estate (the VPC and its CIDR blocks and
//! subnets, the clusters with their nodes and ENIConfigs, the apps, the ALB, the database
//! security group) that [`seed`] builds on moto and the emulated clusters. `default` is shaped like the
//! seed customer's estate; [`large`] generates one big enough for benchmarks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::estate::Estate;
use crate::meta;

pub(crate) mod added;

/// The built-in `basic` scenario, and the base of `default`: the 2026 estate's three
/// StatefulSets (nine volumes), its stateless apps and ALB, with AWS authorization for
/// EBS declared (each driver's IAM role, a customer-managed KMS key). Most tests run on
/// it: it seeds fastest.
pub const BASIC_YAML: &str = include_str!("../scenarios/basic.yaml");

/// What the `default` scenario lays over `basic`: every other shape of stateful app (a
/// Deployment with a volume, a standalone claim, a two-member group, an Argo CD-managed
/// StatefulSet, a KEDA-scaled Deployment) and the controllers that scale blue's
/// workloads back up (Argo CD, Flux, KEDA).
pub const SHAPES_YAML: &str = include_str!("../scenarios/shapes.yaml");

/// What an overlay scenario adds to another.
#[derive(Debug, Clone, Default, Deserialize)]
struct Overlay {
    /// Appended to the platform objects.
    #[serde(default)]
    platform: Vec<Value>,
    /// Appended to the apps.
    #[serde(default)]
    apps: Vec<Value>,
    /// Appended to each named cluster's own objects.
    #[serde(default)]
    objects: BTreeMap<String, Vec<Value>>,
    /// Appended to each named cluster's objects made after its apps.
    #[serde(default)]
    after_apps: BTreeMap<String, Vec<Value>>,
}

/// The `default` scenario: `basic` with [`SHAPES_YAML`] laid over it.
pub fn default() -> Result<Scenario, ScenarioError> {
    let mut s = Scenario::parse("basic", BASIC_YAML)?;
    let overlay: Overlay =
        serde_saphyr::from_str(SHAPES_YAML).map_err(|e| ScenarioError::Parse {
            name: "default".into(),
            reason: e.to_string(),
        })?;
    s.name = "default".into();
    s.platform.extend(overlay.platform);
    s.apps.extend(overlay.apps);
    for (cluster, objects, after) in overlay
        .objects
        .into_iter()
        .map(|(c, o)| (c, o, false))
        .chain(overlay.after_apps.into_iter().map(|(c, o)| (c, o, true)))
    {
        let c = s
            .clusters
            .iter_mut()
            .find(|c| c.name == cluster)
            .ok_or_else(|| ScenarioError::Invalid(format!("default: no cluster {cluster}")))?;
        if after {
            c.after_apps.extend(objects);
        } else {
            c.objects.extend(objects);
        }
    }
    Ok(s)
}

/// The AWS managed policies for the EBS CSI driver, by the names scenarios use. moto
/// has none of them (two were published in April 2026), so seeding creates
/// customer-managed policies with the same names and documents (see
/// `policies/README.md` for their sources).
pub const EBS_CSI_POLICIES: [(&str, &str, &str); 3] = [
    (
        "classic",
        "AmazonEBSCSIDriverPolicy",
        include_str!("../policies/AmazonEBSCSIDriverPolicy.json"),
    ),
    (
        "v2",
        "AmazonEBSCSIDriverPolicyV2",
        include_str!("../policies/AmazonEBSCSIDriverPolicyV2.json"),
    ),
    (
        "cluster-scoped",
        "AmazonEBSCSIDriverEKSClusterScopedPolicy",
        include_str!("../policies/AmazonEBSCSIDriverEKSClusterScopedPolicy.json"),
    ),
];

/// Failed to load or seed a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario name is neither built in nor a readable file.
    #[error(
        "failed to find scenario {0:?}: built-in scenarios are `default`, `basic` and `large`; otherwise give a path to a YAML file"
    )]
    Unknown(String),
    /// The YAML is malformed.
    #[error("failed to parse scenario {name}: {reason}")]
    Parse {
        /// Which scenario.
        name: String,
        /// Why.
        reason: String,
    },
    /// The scenario refers to something it does not define.
    #[error("failed to seed scenario: {0}")]
    Invalid(String),
    /// An AWS call failed.
    #[error("failed to seed scenario: {0}")]
    Aws(#[from] baton_aws::Error),
    /// A Kubernetes object was refused.
    #[error("failed to seed scenario: {0}")]
    Api(#[from] crate::error::ApiError),
    /// The apps did not come up in time.
    #[error("failed to seed scenario: {0}")]
    Timeout(String),
}

/// An estate description.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// The shared VPC.
    pub vpc: VpcSpec,
    /// The database security group.
    #[serde(default)]
    pub database: Option<DatabaseSpec>,
    /// The ALB outside Kubernetes.
    #[serde(default)]
    pub alb: Option<AlbSpec>,
    /// The clusters (the first is blue, the second green).
    pub clusters: Vec<ClusterSpecYaml>,
    /// Objects every cluster gets (add-ons, storage classes).
    #[serde(default)]
    pub platform: Vec<Value>,
    /// The applications.
    #[serde(default)]
    pub apps: Vec<Value>,
    /// Customer-managed KMS keys and the apps whose volumes they encrypt.
    #[serde(default)]
    pub kms_keys: Vec<KmsKeySpec>,
    /// IAM roles for apps' ServiceAccounts (IRSA), trusting the listed clusters.
    #[serde(default)]
    pub irsa_roles: Vec<IrsaRoleSpec>,
}

/// An IAM role for ServiceAccounts (IRSA): its trust policy admits the listed
/// ServiceAccounts' tokens from the listed clusters' IAM OIDC providers only (one
/// statement per cluster, as eksctl writes them), and those ServiceAccounts are
/// annotated with its ARN in every cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IrsaRoleSpec {
    /// Role name.
    pub name: String,
    /// The clusters whose OIDC issuers the trust policy names.
    #[serde(default)]
    pub trusts: Vec<String>,
    /// ServiceAccounts (`namespace/name`) that assume it (created where missing).
    pub service_accounts: Vec<String>,
    /// A permission policy document (JSON), put inline on the role.
    #[serde(default)]
    pub policy: Option<String>,
}

/// The EBS CSI driver of one cluster, as AWS sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EbsCsiSpec {
    /// The driver controller's IAM role (IRSA: `kube-system/ebs-csi-controller-sa` is
    /// annotated with its ARN). Without one, nothing is enforced.
    #[serde(default)]
    pub role: Option<RoleSpec>,
    /// The driver runs with `--k8s-tag-cluster-id=<cluster name>` (as the EKS add-on
    /// does): new volumes carry `ebs.csi.aws.com/cluster-name`.
    #[serde(default)]
    pub tag_cluster_id: bool,
    /// `legacy`: in-tree (`kubernetes.io/aws-ebs`) claims are provisioned by the legacy
    /// in-tree plugin, with its tags (volumes made before the estate moved to CSI
    /// migration); `migrated` (default): by the CSI driver.
    #[serde(default)]
    pub in_tree: Option<String>,
}

/// An IAM role for the EBS CSI driver.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleSpec {
    /// Role name.
    pub name: String,
    /// `classic` (AmazonEBSCSIDriverPolicy), `v2` (AmazonEBSCSIDriverPolicyV2),
    /// `cluster-scoped` (AmazonEBSCSIDriverEKSClusterScopedPolicy), or a policy document
    /// (JSON) attached inline.
    pub policy: String,
    /// Role tags (e.g. `eks-cluster-name`, which the cluster-scoped policy reads).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A customer-managed KMS key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KmsKeySpec {
    /// Name (the key's description, and the StorageClass that encrypts with it).
    pub name: String,
    /// Clusters whose driver roles the key policy names (allowed to use the key for
    /// EBS: CreateGrant for AWS resources, Decrypt, …).
    #[serde(default)]
    pub admit: Vec<String>,
    /// The key policy also allows the account root (`arn:aws:iam::ACCT:root`), i.e.
    /// delegates to IAM policies (the default key policy's first statement).
    #[serde(default)]
    pub delegate_to_iam: bool,
    /// Apps (`namespace/name`) whose volumes are encrypted with the key.
    #[serde(default)]
    pub apps: Vec<String>,
}

/// The VPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VpcSpec {
    /// Primary CIDR block.
    pub cidr: String,
    /// Further CIDR blocks to associate.
    #[serde(default)]
    pub extra_cidrs: Vec<String>,
    /// Subnets.
    pub subnets: Vec<SubnetSpec>,
}

/// One subnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubnetSpec {
    /// Name (a tag, and how the scenario refers to it).
    pub name: String,
    /// Zone.
    pub az: String,
    /// Block.
    pub cidr: String,
    /// The cluster it belongs to, if any.
    #[serde(default)]
    pub cluster: Option<String>,
    /// `nodes`, `pods` or `public`.
    pub role: String,
}

/// The database security group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseSpec {
    /// Group name.
    pub name: String,
    /// TCP port.
    pub port: i32,
    /// The cluster whose subnets it admits.
    pub admit: String,
}

/// The ALB.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlbSpec {
    /// Name.
    pub name: String,
    /// Public subnets by name.
    pub subnets: Vec<String>,
    /// Listener port.
    pub port: i32,
    /// Target groups.
    pub target_groups: Vec<TargetGroupSpec>,
    /// The target group the listener forwards to.
    pub forward_to: String,
    /// Requests per second the ALB's clients send to its listener (`traffic.rs`); 0: no
    /// clients. Default [`crate::traffic::DEFAULT_REQUESTS_PER_SECOND`].
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Every target group's deregistration delay (`deregistration_delay.timeout_seconds`,
    /// 0–3600); AWS's default, 300 s, when unset.
    #[serde(default)]
    pub deregistration_delay_seconds: Option<u64>,
}

/// One target group, fed by an app's pods: through a TargetGroupBinding in its cluster
/// (the AWS Load Balancer Controller registers the Service's endpoints), or, without
/// one, registered once by seeding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetGroupSpec {
    /// Name.
    pub name: String,
    /// The cluster whose pods are its targets.
    pub cluster: String,
    /// The app label of those pods.
    pub app: String,
    /// Their namespace.
    pub namespace: String,
    /// The TargetGroupBinding (ip targets) that keeps the group's targets, created in
    /// `cluster`'s `namespace` once the group exists.
    #[serde(default)]
    pub binding: Option<BindingSpec>,
}

/// A TargetGroupBinding of a scenario's target group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindingSpec {
    /// The binding's name (its pods' readiness gate is `target-health.elbv2.k8s.aws/<name>`).
    pub name: String,
    /// The Service whose endpoints are the targets.
    pub service: String,
    /// The Service's port, by number or name.
    pub port: ServicePortRef,
    /// `multiClusterTargetGroup`: other clusters may register in the same group.
    #[serde(default)]
    pub multi_cluster: bool,
}

/// A Service port by number or by name (`serviceRef.port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServicePortRef {
    /// The port's number.
    Number(i32),
    /// The port's name.
    Name(String),
}

/// One cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSpecYaml {
    /// Name and kubeconfig context.
    pub name: String,
    /// gitVersion.
    pub version: String,
    /// Node groups.
    pub nodes: Vec<NodeGroupSpec>,
    /// `running` (apps at their replicas) or `stopped` (apps at 0, and none of the apps'
    /// standalone claims: a move brings those with their volumes).
    pub apps: String,
    /// Objects only this cluster gets, after the platform's (e.g. Velero on blue).
    #[serde(default)]
    pub objects: Vec<Value>,
    /// Objects only this cluster gets once its apps are created: what manages them
    /// (GitOps objects, autoscalers), which find them deployed, as on a cluster where they
    /// deployed them.
    #[serde(default)]
    pub after_apps: Vec<Value>,
    /// The EBS CSI driver's identity and flags.
    #[serde(default)]
    pub ebs_csi: Option<EbsCsiSpec>,
    /// The account has an IAM OIDC provider for the cluster's issuer (what `eksctl
    /// utils associate-iam-oidc-provider` creates). Without one, no pod of the cluster
    /// can assume an IRSA role; with one, the EBS CSI driver's role trusts it.
    #[serde(default)]
    pub oidc_provider: bool,
}

/// Nodes in one subnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeGroupSpec {
    /// Subnet name.
    pub subnet: String,
    /// How many.
    pub count: usize,
    /// EC2 instance type.
    pub instance_type: String,
}

/// What seeding created, for users and tests (written as `scenario.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Seeded {
    /// Scenario name.
    pub scenario: String,
    /// The VPC.
    pub vpc_id: String,
    /// Subnet name → id.
    pub subnets: BTreeMap<String, String>,
    /// Security group name → id.
    pub security_groups: BTreeMap<String, String>,
    /// The ALB.
    pub load_balancer_arn: Option<String>,
    /// The listener.
    pub listener_arn: Option<String>,
    /// Target group name → ARN.
    pub target_groups: BTreeMap<String, String>,
    /// Target group name → its TargetGroupBinding, `cluster/namespace/name`.
    #[serde(default)]
    pub target_group_bindings: BTreeMap<String, String>,
    /// Cluster → node names.
    pub nodes: BTreeMap<String, Vec<String>>,
    /// Cluster → the EBS CSI driver's role ARN.
    #[serde(default)]
    pub driver_roles: BTreeMap<String, String>,
    /// KMS key name → ARN.
    #[serde(default)]
    pub kms_keys: BTreeMap<String, String>,
    /// Cluster → its EKS OIDC issuer.
    #[serde(default)]
    pub oidc_issuers: BTreeMap<String, String>,
    /// Cluster → its IAM OIDC provider's ARN (clusters that have one).
    #[serde(default)]
    pub oidc_providers: BTreeMap<String, String>,
    /// IRSA role name → ARN.
    #[serde(default)]
    pub irsa_roles: BTreeMap<String, String>,
    /// How long seeding took.
    pub seconds: f64,
}

impl Scenario {
    /// A built-in scenario by name, or a YAML file by path.
    pub fn load(name: &str) -> Result<Self, ScenarioError> {
        match name {
            "default" => default(),
            "basic" => Self::parse("basic", BASIC_YAML),
            "large" => Ok(large(250, 4)),
            "xlarge" => Ok(xlarge()),
            path => {
                let text = std::fs::read_to_string(path)
                    .map_err(|_| ScenarioError::Unknown(path.to_string()))?;
                Self::parse(path, &text)
            }
        }
    }

    /// Parses YAML.
    pub fn parse(name: &str, yaml: &str) -> Result<Self, ScenarioError> {
        serde_saphyr::from_str(yaml).map_err(|e| ScenarioError::Parse {
            name: name.to_string(),
            reason: e.to_string(),
        })
    }

    /// The cluster specs for the emulated API servers.
    pub fn cluster_specs(&self) -> Vec<crate::ClusterSpec> {
        self.clusters
            .iter()
            .map(|c| crate::ClusterSpec::new(&c.name, &c.version))
            .collect()
    }
}

/// A generated scenario for benchmarks: `statefulsets` single-replica apps with
/// `claims_per_app` volumes each (so 250 × 4 = 1000 PVs), in one namespace, on four nodes
/// per zone in three zones.
pub fn large(statefulsets: usize, claims_per_app: usize) -> Scenario {
    generated("large", statefulsets, claims_per_app, 1, 4)
}

/// Five times `large`: 1,250 single-replica StatefulSets with four volumes each (5,000
/// PVs) in five namespaces, on 14 nodes per zone in three zones (42 per cluster). Not
/// fewer: blue's pods take their addresses from ENIConfig subnets (custom networking),
/// so an m5.xlarge node has 3 ENIs × 14 = 42 pod addresses although it admits 58 pods;
/// on 30 nodes the scheduler put 43 on some, and those waited for an address forever,
/// as they would on EKS.
pub fn xlarge() -> Scenario {
    generated("xlarge", 1250, 4, 5, 14)
}

/// `statefulsets` apps named `app-NNNN` with `claims_per_app` volumes each, dealt round
/// the namespaces `bulk` (one) or `bulk-0` … (several), on `nodes_per_zone` nodes in each
/// of basic's three zones per cluster.
fn generated(
    name: &str,
    statefulsets: usize,
    claims_per_app: usize,
    namespaces: usize,
    nodes_per_zone: usize,
) -> Scenario {
    let mut s = Scenario::parse("basic", BASIC_YAML).expect("the built-in basic scenario parses");
    s.name = name.into();
    s.alb = None;
    // Its apps are all alike: no app under the default's customer-managed key.
    s.kms_keys.clear();
    let names: Vec<String> = match namespaces {
        0 | 1 => vec!["bulk".to_string()],
        n => (0..n).map(|i| format!("bulk-{i}")).collect(),
    };
    s.apps = names
        .iter()
        .map(|ns| json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }))
        .collect();
    for i in 0..statefulsets {
        let name = format!("app-{i:04}");
        let ns = &names[i % names.len()];
        let templates: Vec<Value> = (0..claims_per_app)
            .map(|c| json!({ "metadata": { "name": format!("vol{c}") }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "gp3", "resources": { "requests": { "storage": "1Gi" } } } }))
            .collect();
        s.apps.push(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": { "name": name, "namespace": ns, "labels": { "app": name } },
            "spec": {
                "serviceName": name, "replicas": 1, "selector": { "matchLabels": { "app": name } },
                "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "app", "image": "example/stateful:1" }] } },
                "volumeClaimTemplates": templates,
            }
        }));
    }
    for c in &mut s.clusters {
        for n in &mut c.nodes {
            n.count = nodes_per_zone;
        }
    }
    s
}

fn tags(pairs: &[(&str, &str)]) -> baton_aws::Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds the scenario on the estate: AWS resources on moto, Kubernetes objects on the
/// clusters; then waits until the running clusters' apps are Ready (watch-driven).
pub async fn seed(
    estate: &Estate,
    s: &Scenario,
    timeout: Duration,
) -> Result<Seeded, ScenarioError> {
    let started = std::time::Instant::now();
    let aws = &estate.aws;
    let mut out = Seeded {
        scenario: s.name.clone(),
        ..Default::default()
    };
    out.vpc_id = aws
        .create_vpc(
            &s.vpc.cidr,
            &tags(&[("Name", &format!("baton-sim-{}", s.name))]),
        )
        .await?;
    for cidr in &s.vpc.extra_cidrs {
        let net = cidr
            .parse()
            .map_err(|e| ScenarioError::Invalid(format!("CIDR {cidr}: {e}")))?;
        aws.associate_vpc_cidr(&baton_aws::AssociateVpcCidrBlock {
            vpc_id: out.vpc_id.clone(),
            cidr_block: net,
        })
        .await?;
    }
    for sn in &s.vpc.subnets {
        let mut t = tags(&[("Name", &sn.name), ("baton.sim/role", &sn.role)]);
        if let Some(c) = &sn.cluster {
            t.insert(format!("kubernetes.io/cluster/{c}"), "shared".into());
        }
        match sn.role.as_str() {
            "public" => t.insert("kubernetes.io/role/elb".into(), "1".into()),
            _ => t.insert("kubernetes.io/role/internal-elb".into(), "1".into()),
        };
        let cidr = sn.cidr.parse().map_err(|e| {
            ScenarioError::Invalid(format!("subnet {} CIDR {}: {e}", sn.name, sn.cidr))
        })?;
        let created = aws
            .create_subnet(&baton_aws::NewSubnet {
                vpc_id: out.vpc_id.clone(),
                availability_zone: sn.az.clone(),
                cidr,
                tags: t,
            })
            .await?;
        out.subnets.insert(sn.name.clone(), created.id);
    }
    if let Some(db) = &s.database {
        let cidrs: Vec<String> = s
            .vpc
            .subnets
            .iter()
            .filter(|sn| sn.cluster.as_deref() == Some(db.admit.as_str()))
            .map(|sn| sn.cidr.clone())
            .collect();
        let sg = aws
            .create_security_group(
                &out.vpc_id,
                &db.name,
                "database",
                Some((db.port, &cidrs)),
                &tags(&[("Name", &db.name)]),
            )
            .await?;
        out.security_groups.insert(db.name.clone(), sg);
    }
    let members: Vec<Member<'_>> = s
        .clusters
        .iter()
        .map(|c| {
            Ok(Member {
                spec: c,
                placement: Placement::of_scenario(s, c, &out)?,
            })
        })
        .collect::<Result<_, ScenarioError>>()?;
    let account = aws.account_id().await?;
    for m in &members {
        seed_cluster_aws(estate, &account, m, &mut out).await?;
    }
    seed_authorization(aws, &account, s, &mut out).await?;
    seed_clusters_kube(estate, s, &members, &mut out, timeout, started).await?;
    if let Some(alb) = &s.alb {
        let subnets: Vec<String> =
            alb.subnets
                .iter()
                .map(|n| {
                    out.subnets.get(n).cloned().ok_or_else(|| {
                        ScenarioError::Invalid(format!("ALB subnet {n} is not defined"))
                    })
                })
                .collect::<Result<_, _>>()?;
        let lb = aws.create_load_balancer(&alb.name, &subnets, &[]).await?;
        let mut bindings = Vec::new();
        for tg in &alb.target_groups {
            bindings.extend(
                seed_target_group(estate, tg, alb.deregistration_delay_seconds, &mut out).await?,
            );
        }
        for (cluster, ns, name) in &bindings {
            wait_reconciled(cluster, ns, name, timeout.saturating_sub(started.elapsed())).await?;
        }
        let to = out.target_groups.get(&alb.forward_to).ok_or_else(|| {
            ScenarioError::Invalid(format!(
                "forward_to {} is not a target group",
                alb.forward_to
            ))
        })?;
        out.listener_arn = Some(aws.create_listener(&lb, alb.port, to).await?);
        estate.traffic.send(
            &lb,
            alb.requests_per_second
                .unwrap_or(crate::traffic::DEFAULT_REQUESTS_PER_SECOND),
        );
        out.load_balancer_arn = Some(lb);
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// One cluster as seeding builds it: what the scenario says of it, and where its nodes
/// and pods go. A scenario's own clusters are seeded together at the start; one added
/// to a running estate later (`Estate::add_cluster`) goes through the same steps alone.
#[derive(Debug, Clone)]
struct Member<'a> {
    /// The cluster as the scenario declares it (or, for an added one, as the scenario
    /// declares green, renamed).
    pub spec: &'a ClusterSpecYaml,
    /// Its subnets, by id.
    pub placement: Placement,
}

/// Where one cluster's nodes and pods go, by subnet id.
#[derive(Debug, Clone, Default)]
struct Placement {
    /// The EKS cluster's subnets (its node subnets).
    pub eks_subnets: Vec<String>,
    /// Its node groups.
    pub node_groups: Vec<PlacedNodes>,
    /// Custom networking: its pod subnets as (zone, subnet id), one ENIConfig per zone.
    pub pod_subnets: Vec<(String, String)>,
}

/// Nodes in one subnet.
#[derive(Debug, Clone)]
struct PlacedNodes {
    /// The subnet's id.
    pub subnet_id: String,
    /// Its zone.
    pub az: String,
    /// How many nodes.
    pub count: usize,
    /// EC2 instance type.
    pub instance_type: String,
}

impl Placement {
    /// A scenario cluster's placement: its node groups' subnets and its `pods` subnets,
    /// as seeding created them.
    fn of_scenario(s: &Scenario, c: &ClusterSpecYaml, out: &Seeded) -> Result<Self, ScenarioError> {
        let own = |role: &'static str| {
            s.vpc
                .subnets
                .iter()
                .filter(move |sn| sn.cluster.as_deref() == Some(&c.name) && sn.role == role)
        };
        let node_groups = c
            .nodes
            .iter()
            .map(|ng| {
                let subnet = s
                    .vpc
                    .subnets
                    .iter()
                    .find(|sn| sn.name == ng.subnet)
                    .ok_or_else(|| {
                        ScenarioError::Invalid(format!(
                            "node group subnet {} is not defined",
                            ng.subnet
                        ))
                    })?;
                Ok(PlacedNodes {
                    subnet_id: out.subnets[&ng.subnet].clone(),
                    az: subnet.az.clone(),
                    count: ng.count,
                    instance_type: ng.instance_type.clone(),
                })
            })
            .collect::<Result<_, ScenarioError>>()?;
        Ok(Self {
            eks_subnets: own("nodes")
                .map(|sn| out.subnets[&sn.name].clone())
                .collect(),
            node_groups,
            pod_subnets: own("pods")
                .map(|sn| (sn.az.clone(), out.subnets[&sn.name].clone()))
                .collect(),
        })
    }
}

/// A cluster's AWS side before its nodes: its EKS cluster security group, its EKS
/// record (the version its API server serves, its node subnets and security group),
/// its OIDC issuer, the IAM OIDC provider where the scenario declares one, and its EBS
/// CSI driver's IAM role.
async fn seed_cluster_aws(
    estate: &Estate,
    account: &str,
    m: &Member<'_>,
    out: &mut Seeded,
) -> Result<(), ScenarioError> {
    let aws = &estate.aws;
    let c = m.spec;
    let sg_name = format!("eks-cluster-sg-{}", c.name);
    let sg = aws
        .create_security_group(
            &out.vpc_id,
            &sg_name,
            "EKS cluster security group",
            None,
            &tags(&[("aws:eks:cluster-name", &c.name)]),
        )
        .await?;
    out.security_groups.insert(sg_name, sg.clone());
    let cluster = &served(estate, &c.name)?.cluster;
    // EKS and the kubelets report the version the API server serves.
    let minor = cluster
        .spec
        .git_version
        .trim_start_matches('v')
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    aws.create_eks_cluster(&c.name, &minor, &m.placement.eks_subnets, &[sg])
        .await?;
    let issuer = aws
        .describe_cluster(&c.name)
        .await?
        .oidc_issuer
        .ok_or_else(|| {
            ScenarioError::Invalid(format!("EKS cluster {} has no OIDC issuer", c.name))
        })?;
    if c.oidc_provider {
        let arn = aws.create_eks_oidc_provider(&issuer).await?;
        out.oidc_providers.insert(c.name.clone(), arn);
    }
    out.oidc_issuers.insert(c.name.clone(), issuer);
    seed_driver_role(aws, account, c, out).await
}

/// Each cluster's Kubernetes side: its CRDs and ENIConfigs, its nodes (EC2 instances
/// as a managed node group tags them), the platform's and its own objects, the EBS CSI
/// driver's and the apps' IRSA annotations and the KMS keys' classes; once every
/// cluster's add-ons run and address pools are filled, the apps (at 0 in a `stopped`
/// cluster) and what manages them, waited for until Ready.
async fn seed_clusters_kube(
    estate: &Estate,
    s: &Scenario,
    members: &[Member<'_>],
    out: &mut Seeded,
    timeout: Duration,
    started: std::time::Instant,
) -> Result<(), ScenarioError> {
    for m in members {
        let names = seed_cluster_objects(estate, s, m, out).await?;
        out.nodes.insert(m.spec.name.clone(), names);
    }
    // The add-ons run and the nodes' pod address pools are filled (every cluster's at
    // once) before the apps come, as on clusters whose apps are deployed once their nodes
    // have joined: the apps' pods then find their nodes ready, and their placement does
    // not depend on how far the nodes' first ENIs have come.
    for m in members {
        wait_ready(
            &served(estate, &m.spec.name)?.cluster,
            timeout.saturating_sub(started.elapsed()),
        )
        .await?;
    }
    settled(estate, timeout, started).await?;
    for m in members {
        seed_cluster_apps(&served(estate, &m.spec.name)?.cluster, s, m.spec)?;
    }
    for m in members {
        wait_ready(
            &served(estate, &m.spec.name)?.cluster,
            timeout.saturating_sub(started.elapsed()),
        )
        .await?;
    }
    // The pods' address pools refill after the last pods start: wait for them, so that
    // what EC2 shows of the nodes' ENIs and the subnets' free addresses is settled.
    settled(estate, timeout, started).await
}

/// One cluster's objects before its apps, and its nodes; the nodes' names.
async fn seed_cluster_objects(
    estate: &Estate,
    s: &Scenario,
    m: &Member<'_>,
    out: &Seeded,
) -> Result<Vec<String>, ScenarioError> {
    let aws = &estate.aws;
    let c = m.spec;
    let cluster = &served(estate, &c.name)?.cluster;
    // The cluster's CRDs and ENIConfigs come before its nodes, as on EKS, where the
    // VPC CNI reads a node's ENIConfig when the node starts (custom networking).
    for obj in s
        .platform
        .iter()
        .chain(&c.objects)
        .filter(|o| o["kind"] == "CustomResourceDefinition")
    {
        apply(cluster, obj.clone())?;
    }
    // Custom networking: the cluster's pod subnets, one ENIConfig per zone named
    // after it (what ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone selects).
    for (az, subnet_id) in &m.placement.pod_subnets {
        apply(
            cluster,
            json!({
                "apiVersion": "crd.k8s.amazonaws.com/v1alpha1",
                "kind": "ENIConfig",
                "metadata": { "name": az },
                "spec": {
                    "subnet": subnet_id,
                    "securityGroups": [out.security_groups[&format!("eks-cluster-sg-{}", c.name)]],
                },
            }),
        )?;
    }
    let mut names = Vec::new();
    for ng in &m.placement.node_groups {
        for _ in 0..ng.count {
            let group = format!("{}-{}", c.name, ng.az);
            let inst = aws
                .run_instance(
                    &ng.subnet_id,
                    &ng.instance_type,
                    &tags(&[
                        ("eks:cluster-name", &c.name),
                        ("eks:nodegroup-name", &group),
                        (&format!("kubernetes.io/cluster/{}", c.name), "owned"),
                    ]),
                )
                .await?;
            let ip = inst.private_ip.clone().unwrap_or_default();
            let name = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
            create_node(
                cluster,
                &name,
                &inst.id,
                &ng.az,
                &estate.region,
                &ng.instance_type,
                &group,
                &cluster.spec.git_version,
                &ip,
            )?;
            names.push(name);
        }
    }
    let driver = c.ebs_csi.clone().unwrap_or_default();
    cluster.legacy_in_tree_ebs.store(
        driver.in_tree.as_deref() == Some("legacy"),
        std::sync::atomic::Ordering::Relaxed,
    );
    for obj in s
        .platform
        .iter()
        .chain(&c.objects)
        .filter(|o| o["kind"] != "CustomResourceDefinition")
    {
        let mut obj = obj.clone();
        if driver.tag_cluster_id && is_csi_controller(&obj) {
            for container in obj["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .filter(|c| c["name"] == "ebs-plugin")
            {
                let mut args = container["args"].as_array().cloned().unwrap_or_default();
                args.push(json!(format!("--k8s-tag-cluster-id={}", c.name)));
                container["args"] = json!(args);
            }
        }
        apply(cluster, obj)?;
    }
    if let Some(role) = out.driver_roles.get(&c.name) {
        apply(
            cluster,
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": { "name": crate::controllers::DRIVER_SA.1, "namespace": crate::controllers::DRIVER_SA.0,
                              "annotations": { crate::controllers::ROLE_ARN_ANNOTATION: role } },
            }),
        )?;
    }
    for role in &s.irsa_roles {
        for sa in &role.service_accounts {
            annotate_service_account(cluster, sa, &out.irsa_roles[&role.name])?;
        }
    }
    for key in &s.kms_keys {
        apply(
            cluster,
            json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": { "name": key.name },
                "provisioner": crate::controllers::EBS_CSI,
                "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
                "parameters": { "type": "gp3", "encrypted": "true", "kmsKeyId": out.kms_keys[&key.name] },
            }),
        )?;
    }
    Ok(names)
}

/// One cluster's apps (at 0 replicas and without standalone claims when it is
/// `stopped`; a KMS key's apps' claims in the key's class), then what manages them.
fn seed_cluster_apps(
    cluster: &Cluster,
    s: &Scenario,
    c: &ClusterSpecYaml,
) -> Result<(), ScenarioError> {
    for obj in &s.apps {
        if c.apps == "stopped" && obj["kind"] == "PersistentVolumeClaim" {
            continue;
        }
        let mut obj = obj.clone();
        if c.apps == "stopped" && !obj["spec"]["replicas"].is_null() {
            obj["spec"]["replicas"] = json!(0);
        }
        let app = format!("{}/{}", meta::namespace(&obj), meta::name(&obj));
        if let Some(key) = s.kms_keys.iter().find(|k| k.apps.contains(&app)) {
            for t in obj["spec"]["volumeClaimTemplates"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                t["spec"]["storageClassName"] = json!(key.name);
            }
        }
        apply(cluster, obj)?;
    }
    for obj in &c.after_apps {
        apply(cluster, obj.clone())?;
    }
    Ok(())
}

/// One target group of the ALB, tagged with the cluster and app it serves (as teams
/// tag the groups they make for TargetGroupBindings, with the load balancer
/// controller's cluster tag key), fed through its binding when it has one (returned:
/// cluster, namespace, name, to wait for) or else registered once with the app's pods.
async fn seed_target_group(
    estate: &Estate,
    tg: &TargetGroupSpec,
    deregistration_delay_seconds: Option<u64>,
    out: &mut Seeded,
) -> Result<Option<(std::sync::Arc<Cluster>, String, String)>, ScenarioError> {
    let aws = &estate.aws;
    let arn = aws.create_target_group(&tg.name, &out.vpc_id, 8080).await?;
    if let Some(delay) = deregistration_delay_seconds {
        aws.set_deregistration_delay(&arn, Duration::from_secs(delay))
            .await?;
    }
    let tags: baton_aws::Tags = [
        ("elbv2.k8s.aws/cluster".to_string(), tg.cluster.clone()),
        ("app".to_string(), tg.app.clone()),
    ]
    .into();
    aws.add_elb_tags(&arn, &tags).await?;
    let cluster = &estate
        .server
        .cluster(&tg.cluster)
        .ok_or_else(|| {
            ScenarioError::Invalid(format!("target group cluster {} is not served", tg.cluster))
        })?
        .cluster;
    let bound = match &tg.binding {
        Some(b) => {
            apply(cluster, binding(tg, b, &arn))?;
            out.target_group_bindings.insert(
                tg.name.clone(),
                format!("{}/{}/{}", tg.cluster, tg.namespace, b.name),
            );
            Some((cluster.clone(), tg.namespace.clone(), b.name.clone()))
        }
        None => {
            let ips = pod_ips(cluster, &tg.namespace, &tg.app);
            aws.register_ip_targets(&arn, &ips, 8080).await?;
            None
        }
    };
    out.target_groups.insert(tg.name.clone(), arn);
    Ok(bound)
}

/// Waits until every node's pod address pool is filled (see
/// [`Estate::addresses_settled`]), within what is left of `timeout`.
async fn settled(
    estate: &Estate,
    timeout: Duration,
    started: std::time::Instant,
) -> Result<(), ScenarioError> {
    let until = tokio::time::Instant::now() + timeout.saturating_sub(started.elapsed());
    if estate.addresses_settled(until).await {
        Ok(())
    } else {
        Err(ScenarioError::Timeout(format!(
            "the nodes' pod address pools were not filled after {timeout:?}"
        )))
    }
}

/// The emulated API server of a scenario's cluster.
fn served<'e>(
    estate: &'e Estate,
    name: &str,
) -> Result<&'e crate::server::RunningCluster, ScenarioError> {
    estate
        .server
        .cluster(name)
        .ok_or_else(|| ScenarioError::Invalid(format!("cluster {name} is not served")))
}

/// A trust policy admitting `service_accounts` (`namespace/name`) of each of `issuers`'
/// clusters through their IAM OIDC providers, one statement per cluster, as eksctl and
/// the EKS guide write it
/// (<https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html>).
fn irsa_trust(account: &str, issuers: &[&String], service_accounts: &[String]) -> Value {
    use baton_aws::testbed::authz::{STS_AUDIENCE, issuer_host_path, oidc_provider_arn};
    let subjects: Vec<String> = service_accounts
        .iter()
        .map(|sa| format!("system:serviceaccount:{}", sa.replacen('/', ":", 1)))
        .collect();
    let statements: Vec<Value> = issuers
        .iter()
        .map(|issuer| {
            let host = issuer_host_path(issuer);
            json!({
                "Effect": "Allow",
                "Principal": { "Federated": oidc_provider_arn(account, issuer) },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": { "StringEquals": {
                    format!("{host}:sub"): subjects,
                    format!("{host}:aud"): STS_AUDIENCE,
                } },
            })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// Creates the ServiceAccount `namespace/name` (and its namespace) with IRSA's role
/// annotation, or annotates the one that exists.
fn annotate_service_account(cluster: &Cluster, sa: &str, role: &str) -> Result<(), ScenarioError> {
    let (ns, name) = sa.split_once('/').ok_or_else(|| {
        ScenarioError::Invalid(format!("service account {sa:?} is not namespace/name"))
    })?;
    apply(
        cluster,
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }),
    )?;
    let def = cluster
        .def("", "v1", "serviceaccounts")
        .expect("serviceaccounts is built in");
    let annotations = json!({ crate::controllers::ROLE_ARN_ANNOTATION: role });
    let account =
        json!({ "metadata": { "name": name, "namespace": ns, "annotations": annotations } });
    match cluster.create(&def, ns, account, false) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => {
            let patch = json!({ "metadata": { "annotations": annotations } });
            cluster.patch(
                &def,
                ns,
                name,
                crate::patch::PatchType::Merge,
                &serde_json::to_vec(&patch).expect("serializes"),
                crate::ops::Part::Main,
                false,
            )?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn is_csi_controller(obj: &Value) -> bool {
    obj["kind"] == "Deployment"
        && meta::namespace(obj) == crate::controllers::CSI_CONTROLLER.0
        && meta::name(obj) == crate::controllers::CSI_CONTROLLER.1
}

/// A cluster's EBS CSI driver's IAM role, where the scenario declares one: its policy
/// and tags, trusting its own cluster's OIDC provider where it has one.
async fn seed_driver_role(
    aws: &baton_aws::Aws,
    account: &str,
    c: &ClusterSpecYaml,
    out: &mut Seeded,
) -> Result<(), ScenarioError> {
    let Some(role) = c.ebs_csi.as_ref().and_then(|d| d.role.as_ref()) else {
        return Ok(());
    };
    let tags: baton_aws::Tags = role.tags.clone().into_iter().collect();
    let trust = out.oidc_providers.contains_key(&c.name).then(|| {
        let (ns, sa) = crate::controllers::DRIVER_SA;
        irsa_trust(
            account,
            &[&out.oidc_issuers[&c.name]],
            &[format!("{ns}/{sa}")],
        )
        .to_string()
    });
    let arn = aws.create_role(&role.name, &tags, trust.as_deref()).await?;
    match EBS_CSI_POLICIES.iter().find(|(k, _, _)| *k == role.policy) {
        Some((_, name, doc)) => {
            aws.attach_new_policy(&role.name, name, &minified(doc)?)
                .await?;
        }
        None if role.policy.trim_start().starts_with('{') => {
            aws.put_role_policy(&role.name, "ebs-csi-driver", &minified(&role.policy)?)
                .await?;
        }
        None => {
            return Err(ScenarioError::Invalid(format!(
                "role {}: policy {:?} is none of classic, v2, cluster-scoped or a JSON document",
                role.name, role.policy
            )));
        }
    }
    out.driver_roles.insert(c.name.clone(), arn);
    Ok(())
}

/// The IRSA roles of apps and the customer KMS keys (with key policies naming the
/// admitted clusters' driver roles, made before), on moto.
async fn seed_authorization(
    aws: &baton_aws::Aws,
    account: &str,
    s: &Scenario,
    out: &mut Seeded,
) -> Result<(), ScenarioError> {
    for role in &s.irsa_roles {
        seed_irsa_role(aws, account, role, out).await?;
    }
    for key in &s.kms_keys {
        let mut statements = Vec::new();
        if key.delegate_to_iam {
            statements.push(json!({
                "Sid": "Enable IAM User Permissions", "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": "kms:*", "Resource": "*",
            }));
        }
        let admitted: Vec<&String> = key
            .admit
            .iter()
            .map(|c| {
                out.driver_roles.get(c).ok_or_else(|| {
                    ScenarioError::Invalid(format!(
                        "KMS key {} admits cluster {c}, which declares no EBS CSI driver role",
                        key.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        if !admitted.is_empty() {
            // The key-user statements of KMS's default key policy ("Allow use of the
            // key", "Allow attachment of persistent resources"), naming the roles:
            // https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
            statements.push(json!({
                "Sid": "Allow use of the key by the EBS CSI driver", "Effect": "Allow",
                "Principal": { "AWS": admitted },
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
            }));
            statements.push(json!({
                "Sid": "Allow attachment of persistent resources", "Effect": "Allow",
                "Principal": { "AWS": admitted },
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": "*",
                "Condition": { "Bool": { "kms:GrantIsForAWSResource": "true" } },
            }));
        }
        let policy = json!({ "Version": "2012-10-17", "Statement": statements });
        let (_, arn) = aws.create_kms_key(&key.name, &policy.to_string()).await?;
        out.kms_keys.insert(key.name.clone(), arn);
    }
    Ok(())
}

/// One IRSA role: its trust policy names the trusted clusters' issuers (a cluster
/// without an IAM OIDC provider is named all the same, as a role can be written before
/// the provider exists), and its permission policy is put inline.
async fn seed_irsa_role(
    aws: &baton_aws::Aws,
    account: &str,
    role: &IrsaRoleSpec,
    out: &mut Seeded,
) -> Result<(), ScenarioError> {
    let issuers: Vec<&String> = role
        .trusts
        .iter()
        .map(|c| {
            out.oidc_issuers.get(c).ok_or_else(|| {
                ScenarioError::Invalid(format!(
                    "IRSA role {} trusts cluster {c}, which the scenario does not define",
                    role.name
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let trust = irsa_trust(account, &issuers, &role.service_accounts).to_string();
    let arn = aws
        .create_role(&role.name, &baton_aws::Tags::new(), Some(&trust))
        .await?;
    if let Some(policy) = &role.policy {
        aws.put_role_policy(&role.name, "app", &minified(policy)?)
            .await?;
    }
    out.irsa_roles.insert(role.name.clone(), arn);
    Ok(())
}

fn minified(doc: &str) -> Result<String, ScenarioError> {
    serde_json::from_str::<Value>(doc)
        .map(|v| v.to_string())
        .map_err(|e| ScenarioError::Invalid(format!("policy document is not JSON: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn create_node(
    cluster: &Cluster,
    name: &str,
    instance: &str,
    az: &str,
    region: &str,
    instance_type: &str,
    group: &str,
    version: &str,
    ip: &str,
) -> Result<(), ScenarioError> {
    let def = cluster.def("", "v1", "nodes").expect("nodes is built in");
    cluster.create(&def, "", json!({
        "metadata": { "name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/zone": az, "topology.kubernetes.io/region": region,
            "topology.ebs.csi.aws.com/zone": az, "node.kubernetes.io/instance-type": instance_type,
            "eks.amazonaws.com/nodegroup": group,
        } },
        "spec": { "providerID": format!("aws:///{az}/{instance}") },
    }), false)?;
    let status = json!({ "status": {
        "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status" }],
        "addresses": [{ "type": "InternalIP", "address": ip }, { "type": "Hostname", "address": name }],
        "capacity": { "cpu": "4", "memory": "16Gi", "pods": "58" },
        "allocatable": { "cpu": "3920m", "memory": "15Gi", "pods": "58" },
        "nodeInfo": { "kubeletVersion": version, "containerRuntimeVersion": "containerd://1.7.11", "osImage": "Amazon Linux 2", "architecture": "amd64", "operatingSystem": "linux" },
    } });
    cluster.patch(
        &def,
        "",
        name,
        crate::patch::PatchType::Merge,
        &serde_json::to_vec(&status).expect("serializes"),
        crate::ops::Part::Status,
        false,
    )?;
    Ok(())
}

/// Creates an object given as a manifest (its kind must be served).
fn apply(cluster: &Cluster, obj: Value) -> Result<(), ScenarioError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let def = cluster.def_by_kind(&api_version, &kind).ok_or_else(|| {
        ScenarioError::Invalid(format!("kind {api_version}/{kind} is not served"))
    })?;
    let ns = meta::namespace(&obj).to_string();
    match cluster.create(&def, &ns, obj, false) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A target group's TargetGroupBinding (ip targets), as an operator writes it.
fn binding(tg: &TargetGroupSpec, b: &BindingSpec, arn: &str) -> Value {
    let port = match &b.port {
        ServicePortRef::Number(n) => json!(n),
        ServicePortRef::Name(s) => json!(s),
    };
    let mut spec = json!({
        "serviceRef": { "name": b.service, "port": port },
        "targetGroupARN": arn,
        "targetType": "ip",
    });
    if b.multi_cluster {
        spec["multiClusterTargetGroup"] = json!(true);
    }
    json!({
        "apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding",
        "metadata": { "name": b.name, "namespace": tg.namespace },
        "spec": spec,
    })
}

/// Waits (on the change stream) until the AWS Load Balancer Controller has reconciled
/// a binding: its `status.observedGeneration` is its generation, which it writes only
/// after the targets are registered.
async fn wait_reconciled(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), ScenarioError> {
    use tokio::sync::broadcast::error::RecvError;
    let gr = crate::resources::GroupResource {
        group: "elbv2.k8s.aws".into(),
        plural: "targetgroupbindings".into(),
    };
    let mut changes = cluster.store.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let b = cluster.store.txn(|t| t.get(&gr, ns, name));
        if b.as_ref().is_some_and(|b| {
            !b["metadata"]["generation"].is_null()
                && b["status"]["observedGeneration"] == b["metadata"]["generation"]
        }) {
            return Ok(());
        }
        tokio::select! {
            msg = changes.recv() => if let Err(RecvError::Closed) = msg {
                return Err(ScenarioError::Timeout(format!("cluster {} stopped", cluster.spec.name)));
            },
            () = tokio::time::sleep_until(deadline) => {
                return Err(ScenarioError::Timeout(format!(
                    "cluster {}: TargetGroupBinding {ns}/{name} not reconciled after {timeout:?}",
                    cluster.spec.name
                )));
            }
        }
    }
}

fn pod_ips(cluster: &Cluster, ns: &str, app: &str) -> Vec<String> {
    let gr = crate::resources::GroupResource {
        group: String::new(),
        plural: "pods".into(),
    };
    cluster
        .store
        .txn(|t| t.list(&gr, Some(ns)))
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
        .collect()
}

/// Waits (on the change stream) until every StatefulSet and Deployment has its desired
/// replicas ready.
pub async fn wait_ready(cluster: &Cluster, timeout: Duration) -> Result<(), ScenarioError> {
    use tokio::sync::broadcast::error::RecvError;
    let mut changes = cluster.store.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    // Readiness is read from workload status only, so only their changes (or a lag that
    // may have hidden one) call for another look.
    let workload = |c: &crate::store::Change| {
        c.resource.group == "apps"
            && (c.resource.plural == "statefulsets" || c.resource.plural == "deployments")
    };
    loop {
        let pending = not_ready(cluster);
        if pending.is_empty() {
            return Ok(());
        }
        loop {
            tokio::select! {
                msg = changes.recv() => match msg {
                    Ok(c) if !workload(&c) => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        return Err(ScenarioError::Timeout(format!("cluster {} stopped", cluster.spec.name)));
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(ScenarioError::Timeout(format!("cluster {}: not ready after {:?}: {}", cluster.spec.name, timeout, first_of(&pending, 10))));
                }
            }
        }
        // Workloads become Ready in bursts: one look per burst, not per change.
        tokio::time::sleep(
            Duration::from_millis(50)
                .min(deadline.saturating_duration_since(tokio::time::Instant::now())),
        )
        .await;
    }
}

/// The first `n` of `items`, and how many more there are.
fn first_of(items: &[String], n: usize) -> String {
    let shown = items[..items.len().min(n)].join(", ");
    match items.len().saturating_sub(n) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

fn not_ready(cluster: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    for (g, plural) in [("apps", "statefulsets"), ("apps", "deployments")] {
        let gr = crate::resources::GroupResource {
            group: g.into(),
            plural: plural.into(),
        };
        for o in cluster.store.txn(|t| t.list(&gr, None)) {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = o["status"]["readyReplicas"].as_i64().unwrap_or(0);
            if ready != want || o["status"]["replicas"].as_i64().unwrap_or(0) != want {
                out.push(format!(
                    "{}/{} {ready}/{want}",
                    meta::namespace(&o),
                    meta::name(&o)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_has_the_seed_shape() {
        let s = Scenario::load("default").unwrap();
        assert_eq!(1 + s.vpc.extra_cidrs.len(), 4, "four IPv4 CIDR blocks");
        let zones: std::collections::BTreeSet<&str> =
            s.vpc.subnets.iter().map(|sn| sn.az.as_str()).collect();
        assert_eq!(zones.len(), 3);
        let stateful: Vec<&Value> = s
            .apps
            .iter()
            .filter(|a| a["kind"] == "StatefulSet")
            .collect();
        assert!(
            stateful
                .iter()
                .any(|a| a["spec"]["volumeClaimTemplates"].as_array().unwrap().len() == 2)
        );
        assert!(
            stateful
                .iter()
                .any(|a| a["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "gp2"),
            "one in-tree app"
        );
        assert_eq!(s.clusters[1].apps, "stopped");
    }

    #[test]
    fn the_default_is_the_2026_estate_with_authorization_declared() {
        let s = Scenario::load("default").unwrap();
        let blue = s.clusters[0].ebs_csi.as_ref().unwrap();
        let green = s.clusters[1].ebs_csi.as_ref().unwrap();
        assert_eq!(blue.role.as_ref().unwrap().policy, "classic");
        assert_eq!(blue.in_tree.as_deref(), Some("legacy"));
        assert_eq!(green.role.as_ref().unwrap().policy, "cluster-scoped");
        assert_eq!(
            green.role.as_ref().unwrap().tags["eks-cluster-name"],
            "green"
        );
        assert!(green.tag_cluster_id && !blue.tag_cluster_id);
        assert_eq!(s.kms_keys[0].admit, ["blue"]);
        assert_eq!(s.kms_keys[0].apps, ["orders/orders-db"]);
        for (_, name, doc) in EBS_CSI_POLICIES {
            let v: Value = serde_json::from_str(doc).unwrap();
            assert!(v["Statement"].is_array(), "{name}");
        }
    }

    #[test]
    fn an_irsa_trust_names_each_clusters_provider_and_the_service_accounts() {
        let blue = "https://oidc.eks.us-east-1.amazonaws.com/id/B1".to_string();
        let green = "https://oidc.eks.us-east-1.amazonaws.com/id/6E".to_string();
        let t = irsa_trust(
            "123456789012",
            &[&blue, &green],
            &["orders/api".to_string()],
        );
        let statements = t["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2, "one statement per cluster");
        let s = &statements[1];
        assert_eq!(
            s["Principal"]["Federated"],
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/6E"
        );
        assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
        let cond = &s["Condition"]["StringEquals"];
        assert_eq!(
            cond["oidc.eks.us-east-1.amazonaws.com/id/6E:sub"],
            json!(["system:serviceaccount:orders:api"])
        );
        assert_eq!(
            cond["oidc.eks.us-east-1.amazonaws.com/id/6E:aud"],
            "sts.amazonaws.com"
        );
    }

    #[test]
    fn irsa_fields_parse_and_default_off() {
        let mut yaml = BASIC_YAML
            .split("\nirsa_roles:")
            .next()
            .unwrap()
            .to_string();
        yaml.push_str(
            "\nirsa_roles:\n  - { name: orders, trusts: [blue], service_accounts: [orders/api] }\n",
        );
        let s = Scenario::parse("t", &yaml).unwrap();
        assert_eq!(s.irsa_roles[0].trusts, ["blue"]);
        assert_eq!(s.irsa_roles[0].service_accounts, ["orders/api"]);
        let default = Scenario::load("default").unwrap();
        let trusted: Vec<_> = default.irsa_roles.iter().map(|r| &r.trusts).collect();
        assert_eq!(
            trusted,
            [&["blue"], &["blue"]],
            "the default's roles trust blue only"
        );
        let providers: Vec<_> = default.clusters.iter().map(|c| c.oidc_provider).collect();
        assert_eq!(
            providers,
            [true, true],
            "both clusters have IAM OIDC providers"
        );
    }

    #[test]
    fn blue_keeps_its_target_group_through_a_binding_and_green_has_none() {
        let s = Scenario::load("default").unwrap();
        let alb = s.alb.as_ref().unwrap();
        let group = |n: &str| alb.target_groups.iter().find(|t| t.name == n).unwrap();
        let blue = group("storefront-blue");
        let b = blue.binding.as_ref().unwrap();
        assert_eq!(
            (
                b.name.as_str(),
                b.service.as_str(),
                &b.port,
                b.multi_cluster
            ),
            ("storefront-blue", "web", &ServicePortRef::Number(80), false)
        );
        assert!(group("storefront-green").binding.is_none());
        let tgb = binding(
            blue,
            b,
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/y",
        );
        assert_eq!(tgb["metadata"]["namespace"], "web");
        assert_eq!(
            tgb["spec"],
            json!({ "serviceRef": { "name": "web", "port": 80 }, "targetType": "ip",
                    "targetGroupARN": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/y" })
        );
        assert!(
            s.platform
                .iter()
                .any(|o| o["metadata"]["name"] == "targetgroupbindings.elbv2.k8s.aws"),
            "both clusters run the AWS Load Balancer Controller"
        );
        let svc = s
            .apps
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "web")
            .unwrap();
        assert_eq!(
            svc["spec"]["ports"][0]["targetPort"], 8080,
            "the target groups' port"
        );
        let web = s
            .apps
            .iter()
            .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "web")
            .unwrap();
        assert!(
            web["metadata"]["labels"][crate::controllers::INJECT_LABEL].is_null(),
            "no readiness gates in the default estate"
        );
        assert!(large(1, 1).alb.is_none());
    }

    #[test]
    fn a_binding_takes_a_named_port_and_multi_cluster() {
        let yaml = BASIC_YAML.replace(
            "binding: { name: storefront-blue, service: web, port: 80 }",
            "binding: { name: shared, service: web, port: http, multi_cluster: true }",
        );
        let s = Scenario::parse("t", &yaml).unwrap();
        let b = s.alb.unwrap().target_groups[0].binding.clone().unwrap();
        assert_eq!(b.port, ServicePortRef::Name("http".into()));
        assert!(b.multi_cluster);
    }

    #[test]
    fn large_scenario_has_enough_volumes() {
        let s = large(250, 4);
        let claims: usize = s
            .apps
            .iter()
            .filter_map(|a| a["spec"]["volumeClaimTemplates"].as_array())
            .map(Vec::len)
            .sum();
        assert!(claims >= 1000);
        assert_eq!(
            s.apps.iter().filter(|a| a["kind"] == "StatefulSet").count(),
            250
        );
    }

    #[test]
    fn xlarge_is_five_times_large_over_five_namespaces() {
        let s = Scenario::load("xlarge").unwrap();
        let sets: Vec<&Value> = s
            .apps
            .iter()
            .filter(|a| a["kind"] == "StatefulSet")
            .collect();
        assert_eq!(sets.len(), 1250);
        let claims: usize = sets
            .iter()
            .filter_map(|a| a["spec"]["volumeClaimTemplates"].as_array())
            .map(Vec::len)
            .sum();
        assert_eq!(claims, 5000);
        let namespaces: std::collections::BTreeSet<&str> = sets
            .iter()
            .filter_map(|a| a["metadata"]["namespace"].as_str())
            .collect();
        assert_eq!(namespaces.len(), 5);
        for c in &s.clusters {
            let nodes: usize = c.nodes.iter().map(|n| n.count).sum();
            assert_eq!(nodes, 42, "{}", c.name);
            // With room to spare: the scheduler does not spread pods exactly evenly.
            assert!(
                1250 * 5 / 4 <= nodes * 42,
                "{}: the pods fit the nodes' addresses",
                c.name
            );
        }
    }

    #[test]
    fn unknown_scenario_is_a_clear_error() {
        let e = Scenario::load("/nonexistent/nope.yaml").unwrap_err();
        assert!(
            e.to_string()
                .contains("built-in scenarios are `default`, `basic` and `large`")
        );
    }

    #[test]
    fn default_is_basic_plus_the_shapes_and_adversaries_on_blue_only() {
        let basic = Scenario::load("basic").unwrap();
        let s = Scenario::load("default").unwrap();
        assert_eq!(s.name, "default");
        assert_eq!(s.apps[..basic.apps.len()], basic.apps[..]);
        let named = |objs: &[Value], kind: &str| -> Vec<String> {
            objs.iter()
                .filter(|o| o["kind"] == kind)
                .map(|o| format!("{}/{}", meta::namespace(o), meta::name(o)))
                .collect()
        };
        let blue = &s.clusters[0].after_apps;
        assert_eq!(named(blue, "Application"), ["argocd/catalog"]);
        assert_eq!(named(blue, "Kustomization"), ["flux-system/ledger"]);
        assert_eq!(named(blue, "ScaledObject"), ["jobs/report-worker"]);
        let green = &s.clusters[1].objects;
        for kind in [
            "CustomResourceDefinition",
            "Application",
            "Kustomization",
            "ScaledObject",
        ] {
            assert!(named(green, kind).is_empty(), "green has no {kind}");
        }
        assert_eq!(
            named(&s.apps, "PersistentVolumeClaim"),
            [
                "media/thumbnailer-data",
                "archive/archive-data",
                "jobs/report-worker-data"
            ]
        );
        // The unmounted claim binds at once: its class is Immediate.
        let archive = s
            .apps
            .iter()
            .find(|o| meta::name(o) == "archive-data")
            .unwrap();
        let class = s
            .platform
            .iter()
            .find(|o| {
                o["kind"] == "StorageClass"
                    && o["metadata"]["name"] == archive["spec"]["storageClassName"]
            })
            .unwrap();
        assert_eq!(class["volumeBindingMode"], "Immediate");
    }
}
