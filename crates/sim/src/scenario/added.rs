//! A cluster added to a running estate (`Estate::add_cluster`): the scenario's green
//! (its second cluster) renamed — its EBS CSI driver's role and the role's tags that
//! name green, its target groups and their bindings — and placed in the subnets asked
//! for, then seeded alone through the steps seeding gives every cluster
//! ([`super::seed_cluster_aws`], [`super::seed_clusters_kube`],
//! [`super::seed_target_group`]). Its target groups join no listener: moving traffic is
//! baton's. What the scenario's IRSA roles and KMS keys trust stays as it is: they do not
//! name the new cluster until someone (`baton identity apply`, `baton volumes grant`)
//! makes them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{
    ClusterSpecYaml, Member, PlacedNodes, Placement, Scenario, ScenarioError, Seeded,
    TargetGroupSpec, seed_cluster_aws, seed_clusters_kube, seed_target_group, wait_reconciled,
};
use crate::estate::{AddClusterError, Estate, NewCluster, check_name, git_version};

/// AWS's longest target group name.
const TARGET_GROUP_NAME_MAX: usize = 32;

/// A checked request: what seeding the new cluster will make.
#[derive(Debug, Clone)]
pub(crate) struct Addition {
    spec: ClusterSpecYaml,
    placement: Placement,
    target_groups: Vec<TargetGroupSpec>,
}

impl Addition {
    /// The gitVersion the new cluster reports.
    pub(crate) fn git_version(&self) -> &str {
        &self.spec.version
    }
}

/// Checks a request against the running estate, changing nothing: the name is free
/// (no served cluster, EKS cluster, IAM role or target group it would make has it), the
/// version reads, the scenario has a green to model the cluster on, and each subnet is
/// in EC2 and in the estate's VPC.
pub(crate) async fn check(
    estate: &Estate,
    s: &Scenario,
    seeded: &Seeded,
    new: &NewCluster,
) -> Result<Addition, AddClusterError> {
    let name = new.name.as_str();
    let invalid = |why: String| AddClusterError::Invalid {
        name: name.to_string(),
        why,
    };
    let taken = |why: String| AddClusterError::Taken {
        name: name.to_string(),
        why,
    };
    let check_err = |source| AddClusterError::Check {
        name: name.to_string(),
        source,
    };
    check_name(name).map_err(invalid)?;
    if estate.server.cluster(name).is_some() {
        return Err(taken(format!(
            "a cluster {name} is served already; pick another name"
        )));
    }
    let version = git_version(&new.version).map_err(invalid)?;
    let green = s.clusters.get(1).ok_or_else(|| {
        invalid(format!(
            "scenario {} has no second cluster (green) to model {name} on",
            s.name
        ))
    })?;
    let spec = modelled(green, name, &version);
    let target_groups = target_groups(s, &green.name, name);
    if new.subnets.is_empty() {
        return Err(invalid(
            "no subnet given: name its node subnets by id (--subnets subnet-…,subnet-…)".into(),
        ));
    }
    let unique: BTreeSet<&String> = new.subnets.iter().collect();
    if unique.len() != new.subnets.len() {
        return Err(invalid(format!(
            "a subnet is named twice in {}: name each once",
            new.subnets.join(",")
        )));
    }
    let first = green.nodes.first();
    let count = new.nodes_per_subnet.or(first.map(|n| n.count)).unwrap_or(1);
    if !(1..=50).contains(&count) {
        return Err(invalid(format!("{count} nodes per subnet: give 1 to 50")));
    }
    let instance_type = new
        .instance_type
        .clone()
        .or(first.map(|n| n.instance_type.clone()))
        .unwrap_or_else(|| "m6i.xlarge".into());
    let aws = &estate.aws;
    if let Err(e) = aws.eni_limits(&instance_type).await {
        return Err(match e.code() {
            Some(c)
                if c.starts_with("InvalidInstanceType")
                    || c.starts_with("InvalidParameterValue") =>
            {
                invalid(format!(
                    "EC2 has no instance type {instance_type:?}: give one such as m6i.xlarge ({e})"
                ))
            }
            _ => check_err(e),
        });
    }
    let found = aws
        .describe_subnets(&[baton_aws::Filter::new("subnet-id", new.subnets.clone())])
        .await
        .map_err(check_err)?;
    let mut node_groups = Vec::new();
    for id in &new.subnets {
        let Some(subnet) = found.iter().find(|f| &f.id == id) else {
            return Err(invalid(format!(
                "subnet {id} is not in EC2: create it first in the estate's VPC {} (`baton network apply`, or `aws ec2 create-subnet --vpc-id {} …`)",
                seeded.vpc_id, seeded.vpc_id
            )));
        };
        if subnet.vpc_id != seeded.vpc_id {
            return Err(invalid(format!(
                "subnet {id} is in {}, not in the estate's VPC {}: give subnets of {}",
                subnet.vpc_id, seeded.vpc_id, seeded.vpc_id
            )));
        }
        node_groups.push(PlacedNodes {
            subnet_id: id.clone(),
            az: subnet.availability_zone.clone(),
            count,
            instance_type: instance_type.clone(),
        });
    }
    match aws.describe_cluster(name).await {
        Ok(_) => {
            return Err(taken(format!(
                "EKS already has a cluster {name}; pick another name"
            )));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(check_err(e)),
    }
    if let Some(role) = spec.ebs_csi.as_ref().and_then(|d| d.role.as_ref()) {
        let account = aws.account_id().await.map_err(check_err)?;
        let arn = format!("arn:aws:iam::{account}:role/{}", role.name);
        match aws.role_policies(&arn).await {
            Ok(_) => {
                return Err(taken(format!(
                    "IAM already has the role {} its EBS CSI driver would get; pick another name",
                    role.name
                )));
            }
            Err(e) if e.code() == Some("NoSuchEntity") || e.is_not_found() => {}
            Err(e) => return Err(check_err(e)),
        }
    }
    if !target_groups.is_empty() {
        let existing: BTreeSet<String> = aws
            .describe_target_groups(None, &[])
            .await
            .map_err(check_err)?
            .into_iter()
            .map(|tg| tg.name)
            .collect();
        for tg in &target_groups {
            if tg.name.len() > TARGET_GROUP_NAME_MAX {
                return Err(invalid(format!(
                    "its target group would be named {} ({} characters; AWS allows {TARGET_GROUP_NAME_MAX}): pick a shorter name",
                    tg.name,
                    tg.name.len()
                )));
            }
            if existing.contains(&tg.name) {
                return Err(taken(format!(
                    "ELB already has the target group {} it would get; pick another name",
                    tg.name
                )));
            }
        }
    }
    Ok(Addition {
        spec,
        placement: Placement {
            eks_subnets: new.subnets.clone(),
            node_groups,
            pod_subnets: Vec::new(),
        },
        target_groups,
    })
}

/// Seeds a checked addition on the estate, which already serves it and runs its
/// control plane; the target groups made for it (name → ARN).
pub(crate) async fn seed(
    estate: &Estate,
    s: &Scenario,
    seeded: &mut Seeded,
    a: &Addition,
    timeout: Duration,
) -> Result<BTreeMap<String, String>, ScenarioError> {
    let started = std::time::Instant::now();
    let member = Member {
        spec: &a.spec,
        placement: a.placement.clone(),
    };
    let account = estate.aws.account_id().await?;
    seed_cluster_aws(estate, &account, &member, seeded).await?;
    seed_clusters_kube(estate, s, &[member], seeded, timeout, started).await?;
    let mut made = BTreeMap::new();
    let delay = s.alb.as_ref().and_then(|a| a.deregistration_delay_seconds);
    for tg in &a.target_groups {
        if let Some((cluster, ns, binding)) = seed_target_group(estate, tg, delay, seeded).await? {
            wait_reconciled(
                &cluster,
                &ns,
                &binding,
                timeout.saturating_sub(started.elapsed()),
            )
            .await?;
        }
        made.insert(tg.name.clone(), seeded.target_groups[&tg.name].clone());
    }
    Ok(made)
}

/// `green` as the cluster `name` at `version`: its apps stopped, its EBS CSI driver's
/// role renamed, the role's tags naming green naming it.
fn modelled(green: &ClusterSpecYaml, name: &str, version: &str) -> ClusterSpecYaml {
    let mut spec = green.clone();
    spec.name = name.to_string();
    spec.version = version.to_string();
    spec.apps = "stopped".into();
    spec.nodes.clear();
    if let Some(role) = spec.ebs_csi.as_mut().and_then(|d| d.role.as_mut()) {
        role.name = renamed(&role.name, &green.name, name);
        for value in role.tags.values_mut() {
            if *value == green.name {
                *value = name.to_string();
            }
        }
    }
    spec
}

/// The ALB's target groups of cluster `green`, made for `name`.
fn target_groups(s: &Scenario, green: &str, name: &str) -> Vec<TargetGroupSpec> {
    s.alb
        .iter()
        .flat_map(|alb| &alb.target_groups)
        .filter(|tg| tg.cluster == green)
        .map(|tg| {
            let mut tg = tg.clone();
            tg.name = renamed(&tg.name, green, name);
            tg.cluster = name.to_string();
            if let Some(b) = tg.binding.as_mut() {
                b.name = renamed(&b.name, green, name);
            }
            tg
        })
        .collect()
}

/// `storefront-green` → `storefront-teal`; a name without green's gets `-teal` after it.
fn renamed(what: &str, green: &str, name: &str) -> String {
    if what.contains(green) {
        what.replace(green, name)
    } else {
        format!("{what}-{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_cluster_is_green_renamed_with_its_apps_stopped() {
        let s = Scenario::load("default").unwrap();
        let green = &s.clusters[1];
        let teal = modelled(green, "teal", "v1.32.0-eks-1234567");
        assert_eq!(
            (
                teal.name.as_str(),
                teal.version.as_str(),
                teal.apps.as_str()
            ),
            ("teal", "v1.32.0-eks-1234567", "stopped")
        );
        let driver = teal.ebs_csi.as_ref().unwrap();
        let role = driver.role.as_ref().unwrap();
        assert_eq!(role.name, "teal-ebs-csi-driver");
        assert_eq!(role.policy, "cluster-scoped");
        assert_eq!(role.tags["eks-cluster-name"], "teal");
        assert!(driver.tag_cluster_id);
        assert!(teal.oidc_provider);
        assert_eq!(teal.after_apps, green.after_apps);
        let groups = target_groups(&s, "green", "teal");
        let names: Vec<_> = groups
            .iter()
            .map(|t| (t.name.as_str(), t.cluster.as_str(), t.app.as_str()))
            .collect();
        assert_eq!(names, [("storefront-teal", "teal", "web")]);
        assert_eq!(renamed("shared", "green", "teal"), "shared-teal");
    }
}
