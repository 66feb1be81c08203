//! EKS cluster records: version (what API removals apply), VPC and subnets (blue and
//! green must share the VPC), security groups, endpoint, status, OIDC issuer; and node
//! groups.

use crate::client::Aws;
use crate::error::Error;

/// An EKS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: Option<String>,
    /// Kubernetes version, e.g. `1.33`.
    pub version: Option<String>,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, `FAILED`, `PENDING`.
    pub status: String,
    /// The API server URL.
    pub endpoint: Option<String>,
    /// Its VPC (moto leaves this empty).
    pub vpc_id: Option<String>,
    /// The subnets of its control-plane ENIs.
    pub subnet_ids: Vec<String>,
    /// Additional security groups.
    pub security_group_ids: Vec<String>,
    /// The security group EKS created for the cluster.
    pub cluster_security_group_id: Option<String>,
    /// Its IAM OIDC issuer (`https://oidc.eks.REGION.amazonaws.com/id/ID`): the `iss`
    /// of its service account tokens, and the URL of the IAM OIDC provider IRSA's role
    /// trust policies name.
    pub oidc_issuer: Option<String>,
}

impl Aws {
    /// Describes a cluster by name.
    pub async fn describe_cluster(&self, name: &str) -> Result<Cluster, Error> {
        let call = self.call("describe EKS cluster", name);
        let out = self
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let c = out
            .cluster()
            .ok_or_else(|| call.unexpected("AWS returned no cluster"))?;
        let vpc = c.resources_vpc_config();
        Ok(Cluster {
            name: c.name().unwrap_or(name).to_owned(),
            arn: c.arn().map(str::to_owned),
            version: c.version().map(str::to_owned),
            status: c
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            endpoint: c.endpoint().map(str::to_owned),
            vpc_id: vpc
                .and_then(|v| v.vpc_id())
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
            security_group_ids: vpc
                .map(|v| v.security_group_ids().to_vec())
                .unwrap_or_default(),
            cluster_security_group_id: vpc
                .and_then(|v| v.cluster_security_group_id())
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            oidc_issuer: c
                .identity()
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
                .filter(|i| !i.is_empty())
                .map(str::to_owned),
        })
    }

    /// The names of a cluster's managed node groups, across all pages.
    pub async fn list_node_groups(&self, cluster: &str) -> Result<Vec<String>, Error> {
        let call = self.call("list node groups of", cluster);
        self.eks
            .list_nodegroups()
            .cluster_name(cluster)
            .set_max_results(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))
    }
}
