//! What a plan is made from: both clusters and AWS connected, read, and planned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use baton_aws::{Aws, AwsConfig, Filter, VolumeState};
use baton_core::handover::{self, Driver, Drivers, KeyCheck};
use baton_core::keys::{self, KeyUse};
use baton_core::plan::Plan;
use baton_core::planner::{self, Inputs};
use baton_core::world::{ClusterView, Ec2Volume};
use baton_kube::{Cluster, KubeError, KubeconfigSource};

use crate::commands::retry::is_transient;
use crate::exit::Refused;
use crate::resolved::{AwsTarget, Blue, Clusters, Selection};

/// Connects to both contexts and AWS for a command that starts work: both contexts
/// resolved (a bad one refused) before either cluster is contacted, then each cluster
/// and AWS checked to answer ([`reach`], [`connect_aws`]), so that what is not there is
/// said in seconds.
pub async fn connect(
    clusters: &Clusters,
    aws: &AwsTarget,
) -> anyhow::Result<(Cluster, Cluster, Aws)> {
    let kubeconfig = clusters.kubeconfig.as_deref();
    let blue = open(kubeconfig, &clusters.from, Some("--from")).await?;
    let green = open(kubeconfig, &clusters.to, Some("--to")).await?;
    reach(&blue, kubeconfig).await?;
    reach(&green, kubeconfig).await?;
    Ok((blue, green, connect_aws(aws).await?))
}

/// Connects again to the clusters and AWS a migration's state dir names, to resume,
/// roll back or commit it: nothing is checked up front, so a cluster or AWS that is
/// briefly away (an API server restarting mid-window) gets every call's patient retries
/// instead of a quick verdict. The contexts and the kubeconfig must still be there.
pub async fn reconnect(
    clusters: &Clusters,
    aws: &AwsTarget,
) -> anyhow::Result<(Cluster, Cluster, Aws)> {
    let kubeconfig = clusters.kubeconfig.as_deref();
    let blue = open(kubeconfig, &clusters.from, None).await?;
    let green = open(kubeconfig, &clusters.to, None).await?;
    Ok((blue, green, open_aws(aws).await?))
}

/// Connects to blue alone, checked to answer.
pub async fn connect_blue(blue: &Blue) -> anyhow::Result<Cluster> {
    let kubeconfig = blue.kubeconfig.as_deref();
    let cluster = open(kubeconfig, &blue.context, Some("--from")).await?;
    reach(&cluster, kubeconfig).await?;
    Ok(cluster)
}

/// A client for `context`, contacting nothing; a context the kubeconfig lacks, or a
/// kubeconfig that cannot be read, is refused, with a hint naming `flag` (None: the
/// context came from a state dir).
async fn open(
    kubeconfig: Option<&Path>,
    context: &str,
    flag: Option<&str>,
) -> anyhow::Result<Cluster> {
    let source = match kubeconfig {
        Some(p) => KubeconfigSource::file(p),
        None => KubeconfigSource::default(),
    };
    match Cluster::connect(&source, context).await {
        Ok(c) => Ok(c),
        Err(e @ KubeError::UnknownContext { .. }) => Err(Refused(match flag {
            Some(flag) => format!(
                "{e}\nhint: pass the right context to {flag} (`kubectl config get-contexts` lists them), or another kubeconfig with --kubeconfig"
            ),
            None => format!(
                "{e}\nhint: the state dir names this context and kubeconfig (run.json); put the context back in that kubeconfig (`kubectl config get-contexts` lists what is there)"
            ),
        })
        .into()),
        Err(e @ KubeError::Kubeconfig { .. }) => Err(Refused(match flag {
            Some(_) => format!(
                "{e}\nhint: pass --kubeconfig FILE or set KUBECONFIG; for the emulator, `source .baton/sim/env` after `baton sim up --state-dir .baton/sim`"
            ),
            None => format!(
                "{e}\nhint: the state dir names this kubeconfig (run.json); put it back, or run from where it was"
            ),
        })
        .into()),
        Err(e @ KubeError::Client { .. }) => Err(anyhow::anyhow!(
            "{e}\nhint: check the context's cluster and user in the kubeconfig; `kubectl --context {context} get --raw /version` reads them the same way"
        )),
        Err(e) => Err(e.into()),
    }
}

/// Checks that `cluster` answers and takes its credentials ([`Cluster::reach`]),
/// turning what does not into an error that says where to look next.
async fn reach(cluster: &Cluster, kubeconfig: Option<&Path>) -> anyhow::Result<()> {
    let context = &cluster.context;
    let kubectl = match kubeconfig {
        Some(p) => format!("kubectl --kubeconfig {} --context {context}", p.display()),
        None => format!("kubectl --context {context}"),
    };
    match cluster.reach().await {
        Ok(()) => Ok(()),
        Err(e @ KubeError::Unreachable { .. }) => Err(anyhow::anyhow!(
            "{e}\nhint: is the cluster up, and is {context:?} the right context? `{kubectl} cluster-info` tries the same server; for the emulator, is `baton sim up` running and this shell's KUBECONFIG its kubeconfig (`source .baton/sim/env`)?"
        )),
        Err(e @ KubeError::Auth { .. }) => Err(anyhow::anyhow!(
            "{e}\nhint: the kubeconfig's user for {context:?} could not produce credentials; for EKS (`aws eks get-token`), `aws sso login` renews an expired session; `{kubectl} get --raw /version` shows the plugin's own message"
        )),
        Err(e) => Err(e.into()),
    }
}

/// AWS access as `aws` says, checked to answer and to take the credentials
/// ([`Aws::reach`]) before any work.
pub async fn connect_aws(aws: &AwsTarget) -> anyhow::Result<Aws> {
    let aws = open_aws(aws).await?;
    match aws.reach().await {
        Ok(caller) => {
            tracing::info!(%caller, region = aws.region(), "AWS answers");
            Ok(aws)
        }
        Err(
            e @ baton_aws::Error::Unreachable {
                credentials: true, ..
            },
        ) => Err(anyhow::anyhow!(
            "{e}\nhint: baton found no usable AWS credentials, or AWS refused them: `aws sts get-caller-identity` (with the same --profile or AWS_PROFILE) checks them; `aws sso login` renews an SSO session; for the emulator, `source .baton/sim/env`"
        )),
        Err(e) => Err(anyhow::anyhow!(
            "{e}\nhint: `aws sts get-caller-identity` tries the same endpoint; check --endpoint-url or AWS_ENDPOINT_URL, and the network; for the emulator, is `baton sim up` running and this shell's environment its own (`source .baton/sim/env`)?"
        )),
    }
}

/// AWS access as `aws` says, contacting nothing (each call retries patiently): for
/// the commands that continue or undo work already under way.
pub async fn open_aws(aws: &AwsTarget) -> anyhow::Result<Aws> {
    let mut cfg = AwsConfig::default();
    if let Some(p) = &aws.profile {
        cfg = cfg.profile(p);
    }
    if let Some(r) = &aws.region {
        cfg = cfg.region(r);
    }
    if let Some(url) = &aws.endpoint_url {
        cfg = cfg.endpoint_url(url);
    }
    match Aws::connect(&cfg).await {
        Ok(aws) => Ok(aws),
        Err(e @ baton_aws::Error::Config { .. }) => Err(anyhow::anyhow!(
            "failed to set up AWS access: {e}\nhint: for the emulator, `source .baton/sim/env` sets the region, endpoint and credentials"
        )),
        Err(e) => Err(anyhow::Error::new(e).context("failed to set up AWS access")),
    }
}

/// Reads both clusters and EC2 and plans (each read tries transient failures again).
pub async fn make_plan(
    blue: &Cluster,
    green: &Cluster,
    aws: &Aws,
    selection: &Selection,
) -> anyhow::Result<Plan> {
    Ok(read_world(blue, green, aws, selection).await?.0)
}

/// What a plan was made from: both views and the VPCs of blue's and green's nodes.
#[derive(Debug)]
pub struct World {
    /// Blue's view.
    pub blue: ClusterView,
    /// Green's view.
    pub green: ClusterView,
    /// VPCs of blue's and green's nodes.
    pub vpcs: (BTreeSet<String>, BTreeSet<String>),
    /// Both clusters' EBS CSI drivers, and whether green's may use the volumes' keys.
    pub drivers: Drivers,
}

/// [`make_plan`], also returning what the plan was made from (preflight checks more of
/// it than the planner).
pub async fn read_world(
    blue: &Cluster,
    green: &Cluster,
    aws: &Aws,
    selection: &Selection,
) -> anyhow::Result<(Plan, World)> {
    // Each read tries transient failures again itself (baton_kube::retry for the
    // clusters, the SDK's standard retry for AWS); what still fails here is not transient.
    read_and_plan(blue, green, aws, selection).await
}

async fn read_and_plan(
    blue: &Cluster,
    green: &Cluster,
    aws: &Aws,
    selection: &Selection,
) -> anyhow::Result<(Plan, World)> {
    for (context, _) in &selection.ebs_csi_roles {
        if context != &blue.context && context != &green.context {
            return Err(Refused(format!(
                "--ebs-csi-role names context {context:?}, which is neither --from ({}) nor --to ({})\nhint: pass --ebs-csi-role {}=ARN or {}=ARN",
                blue.context, green.context, blue.context, green.context
            ))
            .into());
        }
    }
    // The selected namespaces (all when none), and those of the claims and groups named
    // by --claim and --group (only those when no namespace or label is given).
    let f = &selection.filter;
    let named = f.claims.iter().map(|(ns, _)| ns).chain(
        f.groups
            .iter()
            .flat_map(|g| g.members.iter().map(|(ns, _, _)| ns)),
    );
    let everywhere = f.namespaces.is_empty()
        && (!f.labels.is_empty()
            || f.standalone_claims
            || (f.claims.is_empty() && f.groups.is_empty()));
    let namespaces: Vec<String> = if everywhere {
        Vec::new()
    } else {
        f.namespaces
            .iter()
            .chain(named)
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let namespaces = &namespaces;
    let (b, g) = futures::try_join!(blue.view(namespaces), green.view(namespaces))?;
    let ids: Vec<String> = b
        .volumes
        .iter()
        .filter_map(|v| v.volume_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ec2 = describe(aws, &ids).await?;
    let (bi, gi) = futures::try_join!(blue.node_instances(), green.node_instances())?;
    let ((blue_vpcs, blue_name), (green_vpcs, green_name)) =
        futures::try_join!(nodes_of(aws, &bi), nodes_of(aws, &gi))?;
    let vpcs = (blue_vpcs, green_vpcs);
    // Green's driver decides the re-tag; blue's is not read (nothing in the plan depends
    // on it: blue's tags are the volumes' tags now, and rollback puts them back as read).
    let (green_driver, documents) =
        driver(green, aws, &selection.ebs_csi_roles, green_name.as_deref()).await?;
    let green_keys = keys(aws, &ec2, &green_driver, &documents).await?;
    let apps: Vec<_> = b
        .statefulsets
        .iter()
        .filter(|s| selection.filter.selects(s))
        .collect();
    let pod_roles = crate::commands::identity::pod_roles(blue, green, aws, &apps).await?;
    let drivers = Drivers {
        blue_name,
        green_name,
        blue: None,
        green: Some(green_driver),
        green_keys,
    };
    let inputs = Inputs {
        blue: &b,
        green: &g,
        ec2: &ec2,
        vpcs: vpcs.clone(),
        aws_region: aws.region().to_string(),
        now: jiff::Timestamp::now().to_string(),
        drivers,
        pod_roles,
    };
    let plan = planner::plan(&inputs, &selection.filter, &selection.options);
    let drivers = inputs.drivers;
    Ok((
        plan,
        World {
            blue: b,
            green: g,
            vpcs,
            drivers,
        },
    ))
}

/// The VPCs of a cluster's nodes, and its EKS name as they carry it (`eks:cluster-name`,
/// which EKS sets on managed node groups' instances; None when they disagree or lack it).
async fn nodes_of(
    aws: &Aws,
    instances: &[String],
) -> anyhow::Result<(BTreeSet<String>, Option<String>)> {
    if instances.is_empty() {
        return Ok((BTreeSet::new(), None));
    }
    let found = aws
        .describe_instances(&[Filter::new("instance-id", instances.iter().cloned())])
        .await
        .context("failed to read the nodes' EC2 instances")?;
    let names: BTreeSet<String> = found
        .iter()
        .filter_map(|i| i.tags.get(EKS_CLUSTER_NAME_TAG).cloned())
        .collect();
    let name = (names.len() == 1).then(|| names.into_iter().next().unwrap_or_default());
    Ok((found.into_iter().filter_map(|i| i.vpc_id).collect(), name))
}

/// A cluster's EKS name as its nodes carry it (`eks:cluster-name`; None when they lack
/// it or disagree).
pub async fn eks_name(cluster: &Cluster, aws: &Aws) -> anyhow::Result<Option<String>> {
    let instances = cluster.node_instances().await?;
    Ok(nodes_of(aws, &instances).await?.1)
}

/// The tag EKS puts on a managed node group's instances.
const EKS_CLUSTER_NAME_TAG: &str = "eks:cluster-name";
/// The session tag EKS Pod Identity gives a pod's credentials (and the tag an IRSA role
/// carries for the cluster-scoped EBS CSI policy).
const PRINCIPAL_CLUSTER_TAG: &str = "eks-cluster-name";

/// A cluster's EBS CSI driver: its role (`--ebs-csi-role CONTEXT=ARN`, else its
/// ServiceAccount's IRSA annotation) and what that role's policies let it attach and
/// detach. A role given by flag is taken to be used through EKS Pod Identity, whose
/// session tag `eks-cluster-name` (the cluster's EKS name, `name`) the role's own tags
/// do not override. What cannot be found or read is `Driver::Unknown`, with why (a
/// transient error fails the read, which is retried).
async fn driver(
    cluster: &Cluster,
    aws: &Aws,
    flags: &[(String, String)],
    name: Option<&str>,
) -> anyhow::Result<(Driver, Vec<serde_json::Value>)> {
    let context = &cluster.context;
    let flagged = flags
        .iter()
        .find(|(c, _)| c == context)
        .map(|(_, a)| a.clone());
    let from_flag = flagged.is_some();
    let role = match flagged {
        Some(r) => r,
        None => match cluster.ebs_csi_role().await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Ok(unknown(format!(
                    "no IAM role found for {context}'s EBS CSI driver (ServiceAccount kube-system/ebs-csi-controller-sa has no eks.amazonaws.com/role-arn)"
                )));
            }
            Err(e) => {
                let e = anyhow::Error::new(e);
                if is_transient(&e) {
                    return Err(e);
                }
                return Ok(unknown(format!(
                    "could not read {context}'s EBS CSI ServiceAccount: {e:#}"
                )));
            }
        },
    };
    let read = match aws.role_policies(&role).await {
        Ok(r) => r,
        Err(e) => {
            let e = anyhow::Error::new(e);
            if is_transient(&e) {
                return Err(e);
            }
            return Ok(unknown(format!(
                "could not read {context}'s EBS CSI driver role: {e:#}"
            )));
        }
    };
    let mut principal = read.tags.clone();
    if from_flag && let Some(n) = name {
        principal.insert(PRINCIPAL_CLUSTER_TAG.to_string(), n.to_string());
    }
    let mut documents = Vec::new();
    for (source, text) in &read.documents {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => documents.push(v),
            Err(e) => {
                return Ok(unknown(format!(
                    "the policy {source} of {role} is not JSON baton can read: {e}"
                )));
            }
        }
    }
    let access = handover::access(&documents, &principal);
    Ok((Driver::Known { role, access }, documents))
}

fn unknown(why: String) -> (Driver, Vec<serde_json::Value>) {
    (Driver::Unknown(why), Vec::new())
}

/// The customer-managed keys of the volumes, read through KMS, and whether green's
/// driver role may use each for an attach (`baton_core::keys`). A key that cannot be
/// read (no `kms:DescribeKey`/`kms:GetKeyPolicy`/`kms:ListGrants` for baton's
/// credentials, or a key in another account) is `KeyCheck::Unknown`, with why.
async fn keys(
    aws: &Aws,
    ec2: &BTreeMap<String, Ec2Volume>,
    green: &Driver,
    documents: &[serde_json::Value],
) -> anyhow::Result<BTreeMap<String, KeyCheck>> {
    let ids: BTreeSet<&String> = ec2.values().filter_map(|v| v.kms_key_id.as_ref()).collect();
    let mut out = BTreeMap::new();
    for id in ids {
        let check = match aws.kms_key(id).await {
            Ok(k) => match green {
                Driver::Known { role, .. } => {
                    KeyCheck::Checked(keys::evaluate(&key_of(&k), role, documents))
                }
                Driver::Unknown(_) if k.manager == "AWS" => KeyCheck::Checked(KeyUse {
                    key: k.arn.clone(),
                    aws_managed: true,
                    ..KeyUse::default()
                }),
                Driver::Unknown(why) => {
                    KeyCheck::Unknown(format!("green's EBS CSI driver role is unknown ({why})"))
                }
            },
            Err(e) => {
                let e = anyhow::Error::new(e);
                if is_transient(&e) {
                    return Err(e);
                }
                KeyCheck::Unknown(format!("baton could not read the key: {e:#}"))
            }
        };
        out.insert(id.clone(), check);
    }
    Ok(out)
}

/// baton_aws's key as the core's evaluator takes it.
pub fn key_of(k: &baton_aws::KmsKey) -> keys::Key {
    keys::Key {
        arn: k.arn.clone(),
        manager: k.manager.clone(),
        policy: k.policy.clone(),
        grants: k
            .grants
            .iter()
            .map(|g| keys::Grant {
                id: g.id.clone(),
                name: g.name.clone(),
                grantee: g.grantee.clone(),
                operations: g.operations.clone(),
            })
            .collect(),
    }
}

/// EC2's view of the volumes (unknown ids are simply absent).
pub async fn describe(aws: &Aws, ids: &[String]) -> anyhow::Result<BTreeMap<String, Ec2Volume>> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(200) {
        let vols = aws
            .describe_volumes(&[Filter::new("volume-id", chunk.iter().cloned())])
            .await
            .context("failed to describe the EBS volumes")?;
        for v in vols {
            out.insert(
                v.id.clone(),
                Ec2Volume {
                    id: v.id.clone(),
                    az: v.availability_zone.clone(),
                    size_gib: v.size_gib,
                    volume_type: v.volume_type.clone(),
                    encrypted: v.encrypted,
                    kms_key_id: v.kms_key_id.clone(),
                    multi_attach: v.multi_attach,
                    state: match &v.state {
                        VolumeState::Available => "available".into(),
                        VolumeState::InUse => "in-use".into(),
                        VolumeState::Creating => "creating".into(),
                        VolumeState::Deleting => "deleting".into(),
                        VolumeState::Deleted => "deleted".into(),
                        VolumeState::Error => "error".into(),
                        VolumeState::Other(s) => s.clone(),
                    },
                    attached_to: v
                        .attachments
                        .iter()
                        .map(|a| a.instance_id.clone())
                        .collect(),
                    tags: v.tags.clone(),
                },
            );
        }
    }
    Ok(out)
}
