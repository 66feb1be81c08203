//! Security groups and their ingress rules: `mirror-rules` gives green's CIDRs or groups
//! the access blue's have (e.g. to the database), and preflight reports groups that
//! admit blue but not green. Adding a rule is a request value,
//! [`AuthorizeSecurityGroupIngress`].

use serde::{Serialize, Serializer};

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

/// One inbound permission: a protocol and port range, and who it admits. It serializes
/// as EC2's `IpPermission` (empty lists left out, as they are not sent).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp`, or `-1` for all.
    #[serde(rename = "IpProtocol")]
    pub protocol: String,
    /// First port (absent for all protocols).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    /// Last port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    /// Admitted IPv4 blocks.
    #[serde(
        rename = "IpRanges",
        serialize_with = "cidr_ips",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cidrs: Vec<String>,
    /// Admitted IPv6 blocks.
    #[serde(
        rename = "Ipv6Ranges",
        serialize_with = "cidr_ipv6s",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ipv6_cidrs: Vec<String>,
    /// Admitted security groups (by id).
    #[serde(
        rename = "UserIdGroupPairs",
        serialize_with = "group_pairs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
}

/// `[{KEY: item}, …]`: how EC2 wraps each CIDR block or group id of a permission.
fn wrapped<S: Serializer>(key: &'static str, items: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{SerializeMap, SerializeSeq};
    struct One<'a>(&'static str, &'a str);
    impl Serialize for One<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(self.0, self.1)?;
            m.end()
        }
    }
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for item in items {
        seq.serialize_element(&One(key, item))?;
    }
    seq.end()
}

fn cidr_ips<S: Serializer>(items: &[String], s: S) -> Result<S::Ok, S::Error> {
    wrapped("CidrIp", items, s)
}

fn cidr_ipv6s<S: Serializer>(items: &[String], s: S) -> Result<S::Ok, S::Error> {
    wrapped("CidrIpv6", items, s)
}

fn group_pairs<S: Serializer>(items: &[String], s: S) -> Result<S::Ok, S::Error> {
    wrapped("GroupId", items, s)
}

/// The request that adds one inbound rule to a group (EC2
/// AuthorizeSecurityGroupIngress), printed as
/// `ec2    AuthorizeSecurityGroupIngress {"GroupId":"sg-…","IpPermissions":[{"IpProtocol":"tcp",…}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthorizeSecurityGroupIngress {
    /// `sg-…`
    pub group_id: String,
    /// The rule, sent as the request's one IP permission.
    #[serde(rename = "IpPermissions", serialize_with = "one_permission")]
    pub rule: IngressRule,
}

request_line!(
    AuthorizeSecurityGroupIngress,
    "ec2",
    "AuthorizeSecurityGroupIngress"
);

/// The request that removes blue's blocks from one inbound rule (EC2
/// RevokeSecurityGroupIngress): only the permission's listed CIDRs go, the rule's other
/// blocks stay. Printed as
/// `ec2    RevokeSecurityGroupIngress {"GroupId":"sg-…","IpPermissions":[{…}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RevokeSecurityGroupIngress {
    /// `sg-…`
    pub group_id: String,
    /// The protocol, ports and blocks to revoke, sent as the request's one permission.
    #[serde(rename = "IpPermissions", serialize_with = "one_permission")]
    pub rule: IngressRule,
}

request_line!(
    RevokeSecurityGroupIngress,
    "ec2",
    "RevokeSecurityGroupIngress"
);

fn one_permission<S: Serializer>(rule: &IngressRule, s: S) -> Result<S::Ok, S::Error> {
    [rule].serialize(s)
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

/// An empty list is left out of the request, as the value's JSON leaves it out.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn permission(r: &IngressRule) -> aws_sdk_ec2::types::IpPermission {
    use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
    IpPermission::builder()
        .ip_protocol(&r.protocol)
        .set_from_port(r.from_port)
        .set_to_port(r.to_port)
        .set_ip_ranges(non_empty(
            r.cidrs
                .iter()
                .map(|c| IpRange::builder().cidr_ip(c).build())
                .collect(),
        ))
        .set_ipv6_ranges(non_empty(
            r.ipv6_cidrs
                .iter()
                .map(|c| Ipv6Range::builder().cidr_ipv6(c).build())
                .collect(),
        ))
        .set_user_id_group_pairs(non_empty(
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
    pub async fn authorize_ingress(
        &self,
        req: &AuthorizeSecurityGroupIngress,
    ) -> Result<(), Error> {
        let call = self.call("authorize ingress on", &req.group_id);
        let rule = &req.rule;
        if rule.cidrs.is_empty() && rule.ipv6_cidrs.is_empty() && rule.groups.is_empty() {
            return Err(call.invalid("the rule admits nobody: give a CIDR block or a group"));
        }
        self.ec2
            .authorize_security_group_ingress()
            .group_id(&req.group_id)
            .ip_permissions(permission(rule))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Removes the request's blocks from a group's rule. A block the group no longer
    /// admits fails with `InvalidPermission.NotFound`, which callers may treat as done.
    pub async fn revoke_ingress(&self, req: &RevokeSecurityGroupIngress) -> Result<(), Error> {
        let call = self.call("revoke ingress on", &req.group_id);
        if req.rule.cidrs.is_empty() && req.rule.ipv6_cidrs.is_empty() && req.rule.groups.is_empty()
        {
            return Err(call.invalid("nothing to revoke: give a CIDR block or a group"));
        }
        self.ec2
            .revoke_security_group_ingress()
            .group_id(&req.group_id)
            .ip_permissions(permission(&req.rule))
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

    #[test]
    fn a_rule_prints_as_the_ip_permission_sent() {
        let req = AuthorizeSecurityGroupIngress {
            group_id: "sg-1".into(),
            rule: IngressRule {
                protocol: "tcp".into(),
                from_port: Some(5432),
                to_port: Some(5432),
                cidrs: vec!["100.64.0.0/20".into()],
                groups: vec!["sg-2".into()],
                ..Default::default()
            },
        };
        assert_eq!(
            req.to_string(),
            r#"ec2    AuthorizeSecurityGroupIngress {"GroupId":"sg-1","IpPermissions":[{"IpProtocol":"tcp","FromPort":5432,"ToPort":5432,"IpRanges":[{"CidrIp":"100.64.0.0/20"}],"UserIdGroupPairs":[{"GroupId":"sg-2"}]}]}"#
        );
    }
}
