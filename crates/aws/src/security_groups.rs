//! Security groups and their ingress rules: `mirror-rules` gives green's CIDRs or groups
//! the access blue's have (e.g. to the database), and preflight reports groups that
//! admit blue but not green.

use crate::client::Aws;
use crate::error::Error;
use crate::tags::{Filter, Tags, describe_filters, from_sdk_tags, to_sdk_filters};

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// `sg-…`
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// Inbound rules, one per AWS IP permission.
    pub ingress: Vec<IngressRule>,
    /// Tags.
    pub tags: Tags,
}

/// One inbound permission: a protocol and port range, and who it admits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp`, or `-1` for all.
    pub protocol: String,
    /// First port (absent for all protocols).
    pub from_port: Option<i32>,
    /// Last port.
    pub to_port: Option<i32>,
    /// Admitted IPv4 blocks.
    pub cidrs: Vec<String>,
    /// Admitted IPv6 blocks.
    pub ipv6_cidrs: Vec<String>,
    /// Admitted security groups (by id).
    pub groups: Vec<String>,
}

impl IngressRule {
    /// Whether the rule covers `port` for `protocol` (`-1` covers everything).
    pub fn covers(&self, protocol: &str, port: i32) -> bool {
        if self.protocol == "-1" {
            return true;
        }
        self.protocol == protocol
            && self.from_port.is_none_or(|from| from <= port)
            && self.to_port.is_none_or(|to| port <= to)
    }
}

fn rule(p: &aws_sdk_ec2::types::IpPermission) -> IngressRule {
    IngressRule {
        protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        cidrs: p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(str::to_owned))
            .collect(),
        ipv6_cidrs: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6().map(str::to_owned))
            .collect(),
        groups: p
            .user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect(),
    }
}

fn permission(r: &IngressRule) -> aws_sdk_ec2::types::IpPermission {
    use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
    IpPermission::builder()
        .ip_protocol(&r.protocol)
        .set_from_port(r.from_port)
        .set_to_port(r.to_port)
        .set_ip_ranges(Some(
            r.cidrs
                .iter()
                .map(|c| IpRange::builder().cidr_ip(c).build())
                .collect(),
        ))
        .set_ipv6_ranges(Some(
            r.ipv6_cidrs
                .iter()
                .map(|c| Ipv6Range::builder().cidr_ipv6(c).build())
                .collect(),
        ))
        .set_user_id_group_pairs(Some(
            r.groups
                .iter()
                .map(|g| UserIdGroupPair::builder().group_id(g).build())
                .collect(),
        ))
        .build()
}

impl Aws {
    /// Security groups by id and/or filters (e.g. `vpc-id`), across all pages.
    pub async fn describe_security_groups(
        &self,
        ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<SecurityGroup>, Error> {
        let resource = if ids.is_empty() {
            describe_filters(filters)
        } else {
            ids.join(", ")
        };
        let call = self.call("describe security groups", resource);
        let ids = (!ids.is_empty()).then(|| ids.to_vec());
        // EC2 refuses MaxResults together with GroupIds.
        let page_size = if ids.is_some() { None } else { self.page_size };
        let groups = self
            .ec2
            .describe_security_groups()
            .set_group_ids(ids)
            .set_filters(to_sdk_filters(filters))
            .set_max_results(page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        groups
            .iter()
            .map(|g| {
                Ok(SecurityGroup {
                    id: g
                        .group_id()
                        .ok_or_else(|| call.missing("a group id"))?
                        .to_owned(),
                    name: g.group_name().unwrap_or("").to_owned(),
                    vpc_id: g.vpc_id().map(str::to_owned),
                    ingress: g.ip_permissions().iter().map(rule).collect(),
                    tags: from_sdk_tags(g.tags()),
                })
            })
            .collect()
    }

    /// Adds one inbound rule to a group. Adding a rule that exists already fails with
    /// `InvalidPermission.Duplicate`, which callers may treat as done.
    pub async fn authorize_ingress(&self, group_id: &str, rule: &IngressRule) -> Result<(), Error> {
        let call = self.call("authorize ingress on", group_id);
        if rule.cidrs.is_empty() && rule.ipv6_cidrs.is_empty() && rule.groups.is_empty() {
            return Err(call.invalid("the rule admits nobody: give a CIDR block or a group"));
        }
        self.ec2
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(permission(rule))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_port_ranges_and_all_protocols() {
        let pg = IngressRule {
            protocol: "tcp".into(),
            from_port: Some(5432),
            to_port: Some(5432),
            ..Default::default()
        };
        assert!(pg.covers("tcp", 5432));
        assert!(!pg.covers("tcp", 5433));
        assert!(!pg.covers("udp", 5432));
        let all = IngressRule {
            protocol: "-1".into(),
            ..Default::default()
        };
        assert!(all.covers("tcp", 1));
    }
}
