//! Deleting a cluster's managed node groups on a running estate (issue 21, "retire
//! blue"): what EKS does on `eksctl delete nodegroup` / `aws eks delete-nodegroup`, so
//! that `baton retire apply --release-subnets` can then delete blue's subnets (EC2
//! refuses DeleteSubnet while a network interface is in one).
//!
//! In order: the nodes are cordoned and drained (their pods deleted gracefully, as
//! EKS's drain evicts them; their controllers recreate them Pending, with nowhere to
//! go); the VPC CNI stops filling their address pools; their EC2 instances are
//! terminated; their network interfaces are deleted — on EKS they go with the instance
//! (the launch template's primary ENI and the VPC CNI's ENIs are DeleteOnTermination),
//! on moto they stay `in-use` on the terminated instance, so the bed deletes them; then
//! the Node objects go (the cloud node lifecycle controller's part) and the pods still
//! bound to them are force-deleted (the pod GC's). The API server and controllers keep
//! running: the EKS control plane stays until the cluster is deleted.
//!
//! Until the Node objects go, a failed EC2 call leaves them in place, so running it
//! again finishes the deletion (terminating a terminated instance succeeds).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use baton_aws::Filter;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::Estate;
use crate::controllers::Ctx;
use crate::controllers::api::{NODES, PODS};
use crate::error::ApiError;
use crate::meta;
use crate::ops::Part;

/// The label EKS gives a managed node group's nodes.
const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";
/// The tag EKS gives a managed node group's instances.
const NODEGROUP_TAG: &str = "eks:nodegroup-name";
/// The tag the VPC CNI gives the ENIs it creates, naming their instance.
const ENI_INSTANCE_TAG: &str = "node.k8s.amazonaws.com/instance_id";
/// How long the VPC CNI may take to finish a fill under way (a few EC2 calls).
const FILLS_STOP: Duration = Duration::from_secs(30);

/// What deleting a cluster's node groups did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedNodeGroup {
    /// The cluster.
    pub cluster: String,
    /// Its node groups (the nodes' `eks.amazonaws.com/nodegroup`, the instances'
    /// `eks:nodegroup-name`).
    pub node_groups: Vec<String>,
    /// The Node objects deleted.
    pub nodes: Vec<String>,
    /// The EC2 instances terminated.
    pub instances: Vec<String>,
    /// The ENIs deleted (the instances' primary ones and the VPC CNI's).
    pub network_interfaces: Vec<String>,
    /// Pods the drain deleted gracefully.
    pub pods_drained: usize,
    /// Pods still bound to a deleted node, force-deleted as the pod GC does.
    pub pods_collected: usize,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// Failed to delete a cluster's node groups.
#[derive(Debug, thiserror::Error)]
pub enum DeleteNodeGroupError {
    /// No cluster of that name is served; nothing was changed.
    #[error(
        "failed to delete the node groups of cluster {cluster}: no cluster {cluster} is served (clusters: {served})"
    )]
    NotFound {
        /// The cluster asked for.
        cluster: String,
        /// The clusters served.
        served: String,
    },
    /// The cluster has no node and no live instance; nothing was changed.
    #[error(
        "failed to delete the node groups of cluster {cluster}: it has no nodes (no Node object, no pending, running or stopped EC2 instance tagged eks:cluster-name={cluster})"
    )]
    NoNodes {
        /// The cluster asked for.
        cluster: String,
    },
    /// A read made to find the cluster's instances failed; nothing was changed.
    #[error(
        "failed to delete the node groups of cluster {cluster}: failed to read its instances: {source}"
    )]
    Check {
        /// The cluster asked for.
        cluster: String,
        /// The AWS error.
        source: baton_aws::Error,
    },
    /// An EC2 call failed part way; the Node objects are kept, so asking again finishes.
    #[error(
        "failed to delete the node groups of cluster {cluster} ({done}; its Node objects are kept: ask again to finish): {source}"
    )]
    Aws {
        /// The cluster asked for.
        cluster: String,
        /// What was done before the failure.
        done: &'static str,
        /// The AWS error.
        source: baton_aws::Error,
    },
}

impl DeleteNodeGroupError {
    /// Whether nothing was changed: the request was refused, or could not be checked.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            Self::NotFound { .. } | Self::NoNodes { .. } | Self::Check { .. }
        )
    }

    /// The error as `/debug/clusters/NAME/nodegroup` answers it.
    pub(crate) fn to_api_error(&self) -> ApiError {
        let (code, reason) = match self {
            Self::NotFound { .. } => (404, "NotFound"),
            Self::NoNodes { .. } => (409, "Conflict"),
            Self::Check { .. } | Self::Aws { .. } => (500, "InternalError"),
        };
        ApiError {
            code,
            reason,
            message: self.to_string(),
            details: None,
        }
    }
}

impl Estate {
    /// Deletes every managed node group of `cluster`, as EKS does on `aws eks
    /// delete-nodegroup` (see the module's comment for the order): its nodes drained
    /// (waiting at most `drain` for their pods to stop) and deleted, its instances
    /// terminated, their ENIs deleted. An unknown cluster, or one without nodes, is
    /// refused with nothing changed ([`DeleteNodeGroupError::refused`]).
    pub async fn delete_node_group(
        &self,
        cluster: &str,
        drain: Duration,
    ) -> Result<DeletedNodeGroup, DeleteNodeGroupError> {
        let started = std::time::Instant::now();
        let Some(plane) = self
            .planes
            .iter()
            .find(|p| p.ctx().cluster.spec.name == cluster)
        else {
            return Err(DeleteNodeGroupError::NotFound {
                cluster: cluster.to_string(),
                served: self
                    .server
                    .clusters()
                    .iter()
                    .map(|c| c.cluster.spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let ctx = plane.ctx();
        let nodes = ctx.list(NODES, None);
        let live = self
            .aws
            .describe_instances(&[
                Filter::new("tag:eks:cluster-name", [cluster]),
                Filter::new(
                    "instance-state-name",
                    ["pending", "running", "stopping", "stopped"],
                ),
            ])
            .await
            .map_err(|source| DeleteNodeGroupError::Check {
                cluster: cluster.to_string(),
                source,
            })?;
        if nodes.is_empty() && live.is_empty() {
            return Err(DeleteNodeGroupError::NoNodes {
                cluster: cluster.to_string(),
            });
        }
        let names: BTreeSet<String> = nodes.iter().map(|n| meta::name(n).to_string()).collect();
        let instances: BTreeSet<String> = nodes
            .iter()
            .filter_map(|n| crate::controllers::attach::instance_of(n))
            .chain(live.iter().map(|i| i.id.clone()))
            .collect();
        let node_groups: BTreeSet<String> = nodes
            .iter()
            .filter_map(|n| n["metadata"]["labels"][NODEGROUP_LABEL].as_str())
            .map(String::from)
            .chain(
                live.iter()
                    .filter_map(|i| i.tags.get(NODEGROUP_TAG).cloned()),
            )
            .collect();

        // Cordon every node first, so no drained pod lands on a node yet to drain.
        for name in &names {
            let _ = ctx.patch(
                NODES,
                "",
                name,
                &json!({ "spec": { "unschedulable": true } }),
                Part::Main,
            );
        }
        let pods_drained = drain_pods(ctx, &names);
        if !drained(ctx, &names, Instant::now() + drain).await {
            tracing::warn!(
                cluster,
                ?drain,
                "node group deletion: pods still stopping after the drain; their nodes go anyway, as EKS terminates them"
            );
        }
        let retired: HashSet<String> = instances.iter().cloned().collect();
        if !plane
            .retire_instances(&retired, Instant::now() + FILLS_STOP)
            .await
        {
            tracing::warn!(
                cluster,
                "node group deletion: an address pool fill is still under way"
            );
        }
        let failed = |done: &'static str| {
            move |source| DeleteNodeGroupError::Aws {
                cluster: cluster.to_string(),
                done,
                source,
            }
        };
        let ids: Vec<String> = instances.into_iter().collect();
        self.aws
            .terminate_instances(&ids)
            .await
            .map_err(failed("its nodes were cordoned and drained"))?;
        let network_interfaces = delete_enis(&self.aws, &ids)
            .await
            .map_err(failed("its instances were terminated"))?;
        // The cloud node lifecycle controller's part: the instances are gone.
        for name in &names {
            let _ = ctx.delete(NODES, "", name, false);
        }
        let pods_collected = collect_orphans(ctx, &names);
        Ok(DeletedNodeGroup {
            cluster: cluster.to_string(),
            node_groups: node_groups.into_iter().collect(),
            nodes: names.into_iter().collect(),
            instances: ids,
            network_interfaces,
            pods_drained,
            pods_collected,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// The pods bound to `nodes`, by (namespace, name).
fn bound(ctx: &Ctx, nodes: &BTreeSet<String>) -> BTreeMap<(String, String), bool> {
    ctx.list(PODS, None)
        .iter()
        .filter(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| nodes.contains(n))
        })
        .map(|p| {
            let key = (meta::namespace(p).to_string(), meta::name(p).to_string());
            (key, meta::is_deleting(p))
        })
        .collect()
}

/// Deletes the pods bound to `nodes` gracefully (drain's evictions; the bed's
/// evictions do not wait for PodDisruptionBudgets); how many.
fn drain_pods(ctx: &Ctx, nodes: &BTreeSet<String>) -> usize {
    bound(ctx, nodes)
        .into_iter()
        .filter(|(_, deleting)| !deleting)
        .filter(|((ns, name), _)| ctx.delete(PODS, ns, name, false).is_ok())
        .count()
}

/// Waits (at most until `until`) until no pod is bound to `nodes`; whether none is.
async fn drained(ctx: &Ctx, nodes: &BTreeSet<String>, until: Instant) -> bool {
    let mut changes = ctx.cluster.store.subscribe();
    loop {
        if bound(ctx, nodes).is_empty() {
            return true;
        }
        // Any change (or a lagged stream) is a reason to look again.
        match tokio::time::timeout_at(until, changes.recv()).await {
            Err(_) => return bound(ctx, nodes).is_empty(),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return false,
            Ok(_) => {}
        }
    }
}

/// Force-deletes the pods still bound to the deleted `nodes`, as the pod GC does for
/// pods of a node that no longer exists; how many.
fn collect_orphans(ctx: &Ctx, nodes: &BTreeSet<String>) -> usize {
    bound(ctx, nodes)
        .into_keys()
        .filter(|(ns, name)| ctx.delete(PODS, ns, name, true).is_ok())
        .count()
}

/// Deletes the ENIs of the terminated `instances`: those attached to them (moto leaves
/// them `in-use` on a terminated instance) and those the VPC CNI made for them and
/// could not attach; their ids.
async fn delete_enis(
    aws: &baton_aws::Aws,
    instances: &[String],
) -> Result<Vec<String>, baton_aws::Error> {
    if instances.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = BTreeSet::new();
    for filter in ["attachment.instance-id", &format!("tag:{ENI_INSTANCE_TAG}")] {
        let found = aws
            .describe_network_interfaces(&[Filter::new(filter, instances.iter().cloned())])
            .await?;
        ids.extend(found.into_iter().map(|e| e.id));
    }
    for id in &ids {
        match aws.delete_network_interface(id).await {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    Ok(ids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_answer_4xx_and_failures_5xx() {
        let unknown = DeleteNodeGroupError::NotFound {
            cluster: "teal".into(),
            served: "blue, green".into(),
        };
        assert!(unknown.refused());
        assert_eq!(unknown.to_api_error().code, 404);
        assert!(unknown.to_string().contains("clusters: blue, green"));
        let none = DeleteNodeGroupError::NoNodes {
            cluster: "blue".into(),
        };
        assert!(none.refused());
        assert_eq!(none.to_api_error().code, 409);
        let failed = DeleteNodeGroupError::Aws {
            cluster: "blue".into(),
            done: "its instances were terminated",
            source: baton_aws::Error::Unexpected {
                op: "terminate instances",
                resource: "i-1".into(),
                reason: "down".into(),
            },
        };
        assert!(!failed.refused());
        assert_eq!(failed.to_api_error().code, 500);
        assert!(failed.to_string().contains("ask again to finish"));
    }
}
