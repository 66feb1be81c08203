//! EC2 instances, read to learn where nodes are: their zone decides which EBS volumes a
//! cluster can attach, so preflight checks green has a node in every volume's zone.

use crate::client::Aws;
use crate::error::Error;
use crate::tags::{Filter, Tags, describe_filters, from_sdk_tags, to_sdk_filters};

/// An EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `i-…`
    pub id: String,
    /// Its availability zone.
    pub availability_zone: String,
    /// Its type (`m5.xlarge`).
    pub instance_type: String,
    /// Its primary private IPv4 address.
    pub private_ip: Option<String>,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    /// Its subnet.
    pub subnet_id: Option<String>,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// Tags (e.g. `eks:cluster-name`, `eks:nodegroup-name`).
    pub tags: Tags,
}

impl Aws {
    /// Instances matching all `filters` (e.g. `tag:eks:cluster-name`,
    /// `instance-state-name`), across all pages.
    pub async fn describe_instances(&self, filters: &[Filter]) -> Result<Vec<Instance>, Error> {
        let call = self.call("describe instances", describe_filters(filters));
        let reservations = self
            .ec2
            .describe_instances()
            .set_filters(to_sdk_filters(filters))
            .set_max_results(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        reservations
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                Ok(Instance {
                    id: i
                        .instance_id()
                        .ok_or_else(|| call.missing("an instance id"))?
                        .to_owned(),
                    availability_zone: i
                        .placement()
                        .and_then(|p| p.availability_zone())
                        .unwrap_or("")
                        .to_owned(),
                    instance_type: i
                        .instance_type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    private_ip: i.private_ip_address().map(str::to_owned),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    subnet_id: i.subnet_id().map(str::to_owned),
                    vpc_id: i.vpc_id().map(str::to_owned),
                    tags: from_sdk_tags(i.tags()),
                })
            })
            .collect()
    }
}
