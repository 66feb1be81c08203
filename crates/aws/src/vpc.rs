//! The VPC as the network planner needs it: every CIDR block association (up to five
//! per VPC, each with a state), subnets with zone, free addresses and tags, the region's
//! zones; and the two changes `baton network apply` makes, as request values: associate
//! a CIDR block ([`AssociateVpcCidrBlock`]), create a subnet ([`NewSubnet`]).

use aws_sdk_ec2::types::ResourceType;
use ipnet::Ipv4Net;
use serde::{Serialize, Serializer};

use crate::client::Aws;
use crate::error::{Call, Error};
use crate::tags::{Filter, Tags, describe_filters, from_sdk_tags, tag_spec, to_sdk_filters};

/// A VPC and its IPv4 CIDR blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    /// `vpc-…`
    pub id: String,
    /// The primary CIDR block.
    pub primary_cidr: Ipv4Net,
    /// Every IPv4 association, primary included, in AWS's order.
    pub cidr_blocks: Vec<CidrBlock>,
    /// Tags.
    pub tags: Tags,
}

/// One IPv4 CIDR block association of a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrBlock {
    /// `vpc-cidr-assoc-…`
    pub association_id: String,
    /// The block.
    pub cidr: Ipv4Net,
    /// `associating`, `associated`, `disassociating`, `disassociated`, `failing`, `failed`.
    pub state: String,
}

impl CidrBlock {
    /// Whether the block counts: associated or on its way (a failed or removed block
    /// neither holds addresses nor uses the per-VPC quota).
    pub fn is_active(&self) -> bool {
        matches!(self.state.as_str(), "associating" | "associated")
    }
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// `subnet-…`
    pub id: String,
    /// The VPC it is in.
    pub vpc_id: String,
    /// Its availability zone, e.g. `us-east-1a`.
    pub availability_zone: String,
    /// Its zone id, e.g. `use1-az1` (stable across accounts).
    pub availability_zone_id: Option<String>,
    /// Its IPv4 block.
    pub cidr: Ipv4Net,
    /// Unused IPv4 addresses (AWS already subtracts its 5 reserved ones).
    pub available_ips: i32,
    /// Tags (e.g. `kubernetes.io/role/internal-elb`).
    pub tags: Tags,
}

/// The request that associates another IPv4 block with a VPC (EC2
/// AssociateVpcCidrBlock), printed as
/// `ec2    AssociateVpcCidrBlock {"VpcId":"vpc-…","CidrBlock":"100.64.0.0/16"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssociateVpcCidrBlock {
    /// The VPC.
    pub vpc_id: String,
    /// The block.
    pub cidr_block: Ipv4Net,
}

request_line!(AssociateVpcCidrBlock, "ec2", "AssociateVpcCidrBlock");

/// The request that frees one of a VPC's secondary blocks (EC2
/// DisassociateVpcCidrBlock), printed as
/// `ec2    DisassociateVpcCidrBlock {"AssociationId":"vpc-cidr-assoc-…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisassociateVpcCidrBlock {
    /// The block's association.
    pub association_id: String,
}

request_line!(DisassociateVpcCidrBlock, "ec2", "DisassociateVpcCidrBlock");

/// The request that deletes a subnet (EC2 DeleteSubnet), printed as
/// `ec2    DeleteSubnet {"SubnetId":"subnet-…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSubnet {
    /// The subnet.
    pub subnet_id: String,
}

request_line!(DeleteSubnet, "ec2", "DeleteSubnet");

/// A subnet to create: the request of EC2 CreateSubnet, printed as
/// `ec2    CreateSubnet {"VpcId":…,"AvailabilityZone":…,"CidrBlock":…,"TagSpecifications":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewSubnet {
    /// The VPC.
    pub vpc_id: String,
    /// The zone.
    pub availability_zone: String,
    /// The block, inside one of the VPC's associated CIDR blocks.
    #[serde(rename = "CidrBlock")]
    pub cidr: Ipv4Net,
    /// Tags set at creation (sent as one tag specification of the subnet; none when
    /// empty, since EC2 refuses an empty one).
    #[serde(
        rename = "TagSpecifications",
        serialize_with = "subnet_tag_spec",
        skip_serializing_if = "Tags::is_empty"
    )]
    pub tags: Tags,
}

request_line!(NewSubnet, "ec2", "CreateSubnet");

/// A subnet's tags as [`crate::tags::tag_spec`] sends them.
fn subnet_tag_spec<S: Serializer>(tags: &Tags, s: S) -> Result<S::Ok, S::Error> {
    crate::tags::serialize_tag_spec(ResourceType::Subnet, tags, s)
}

fn parse_cidr(call: &Call, what: &str, s: Option<&str>) -> Result<Ipv4Net, Error> {
    let s = s.ok_or_else(|| call.missing(what))?;
    s.parse()
        .map_err(|_| call.unexpected(format!("{what} {s:?} is not an IPv4 CIDR block")))
}

fn subnet(call: &Call, s: &aws_sdk_ec2::types::Subnet) -> Result<Subnet, Error> {
    Ok(Subnet {
        id: s
            .subnet_id()
            .ok_or_else(|| call.missing("a subnet id"))?
            .to_owned(),
        vpc_id: s.vpc_id().unwrap_or("").to_owned(),
        availability_zone: s.availability_zone().unwrap_or("").to_owned(),
        availability_zone_id: s.availability_zone_id().map(str::to_owned),
        cidr: parse_cidr(call, "the subnet CIDR block", s.cidr_block())?,
        available_ips: s.available_ip_address_count().unwrap_or(0),
        tags: from_sdk_tags(s.tags()),
    })
}

impl Aws {
    /// The VPC with all its IPv4 CIDR block associations.
    pub async fn describe_vpc(&self, vpc_id: &str) -> Result<Vpc, Error> {
        let call = self.call("describe VPC", vpc_id);
        let out = self
            .ec2
            .describe_vpcs()
            .vpc_ids(vpc_id)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let vpc = out
            .vpcs()
            .first()
            .ok_or_else(|| call.unexpected("AWS returned no VPC"))?;
        let cidr_blocks = vpc
            .cidr_block_association_set()
            .iter()
            .map(|a| {
                Ok(CidrBlock {
                    association_id: a.association_id().unwrap_or("").to_owned(),
                    cidr: parse_cidr(&call, "a CIDR block", a.cidr_block())?,
                    state: a
                        .cidr_block_state()
                        .and_then(|s| s.state())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Vpc {
            id: vpc.vpc_id().unwrap_or(vpc_id).to_owned(),
            primary_cidr: parse_cidr(&call, "the primary CIDR block", vpc.cidr_block())?,
            cidr_blocks,
            tags: from_sdk_tags(vpc.tags()),
        })
    }

    /// Associates another IPv4 block with a VPC. baton's planner checks overlaps and
    /// the allowed ranges before building the request, because moto does not.
    pub async fn associate_vpc_cidr(
        &self,
        req: &AssociateVpcCidrBlock,
    ) -> Result<CidrBlock, Error> {
        let call = self.call(
            "associate a CIDR block with",
            format!("{} ({})", req.vpc_id, req.cidr_block),
        );
        let out = self
            .ec2
            .associate_vpc_cidr_block()
            .vpc_id(&req.vpc_id)
            .cidr_block(req.cidr_block.to_string())
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let assoc = out
            .cidr_block_association()
            .ok_or_else(|| call.missing("the association"))?;
        Ok(CidrBlock {
            association_id: assoc
                .association_id()
                .ok_or_else(|| call.missing("the association id"))?
                .to_owned(),
            cidr: parse_cidr(&call, "the CIDR block", assoc.cidr_block())?,
            state: assoc
                .cidr_block_state()
                .and_then(|s| s.state())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        })
    }

    /// Subnets matching all `filters` (e.g. `vpc-id`), across all pages.
    pub async fn describe_subnets(&self, filters: &[Filter]) -> Result<Vec<Subnet>, Error> {
        let call = self.call("describe subnets", describe_filters(filters));
        let items = self
            .ec2
            .describe_subnets()
            .set_filters(to_sdk_filters(filters))
            .set_max_results(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        items.iter().map(|s| subnet(&call, s)).collect()
    }

    /// The names of the region's availability zones that are available to this account
    /// (`us-east-1a`, …), to refuse a zone that is not in the region before anything is
    /// created.
    pub async fn availability_zones(&self) -> Result<Vec<String>, Error> {
        let call = self.call("describe availability zones of", self.region().to_owned());
        let out = self
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let mut zones: Vec<String> = out
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(str::to_owned))
            .collect();
        zones.sort();
        Ok(zones)
    }

    /// Creates a subnet with its tags.
    pub async fn create_subnet(&self, new: &NewSubnet) -> Result<Subnet, Error> {
        let call = self.call(
            "create subnet",
            format!("{} in {} ({})", new.cidr, new.vpc_id, new.availability_zone),
        );
        let out = self
            .ec2
            .create_subnet()
            .vpc_id(&new.vpc_id)
            .availability_zone(&new.availability_zone)
            .cidr_block(new.cidr.to_string())
            .set_tag_specifications(tag_spec(ResourceType::Subnet, &new.tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        subnet(
            &call,
            out.subnet().ok_or_else(|| call.missing("the subnet"))?,
        )
    }

    /// Deletes a subnet. EC2 refuses one that still holds network interfaces
    /// (`DependencyViolation`); an id already gone answers `InvalidSubnetID.NotFound`.
    pub async fn delete_subnet(&self, req: &DeleteSubnet) -> Result<(), Error> {
        let call = self.call("delete subnet", &req.subnet_id);
        self.ec2
            .delete_subnet()
            .subnet_id(&req.subnet_id)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Disassociates a secondary CIDR block (EC2 refuses the primary, and a block that
    /// still holds subnets).
    pub async fn disassociate_vpc_cidr(&self, req: &DisassociateVpcCidrBlock) -> Result<(), Error> {
        let call = self.call("disassociate CIDR block", &req.association_id);
        self.ec2
            .disassociate_vpc_cidr_block()
            .association_id(&req.association_id)
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
    fn requests_print_as_sent() {
        let net = |s: &str| -> Ipv4Net { s.parse().unwrap() };
        let associate = AssociateVpcCidrBlock {
            vpc_id: "vpc-1".into(),
            cidr_block: net("100.64.0.0/16"),
        };
        assert_eq!(
            associate.to_string(),
            r#"ec2    AssociateVpcCidrBlock {"VpcId":"vpc-1","CidrBlock":"100.64.0.0/16"}"#
        );
        let mut subnet = NewSubnet {
            vpc_id: "vpc-1".into(),
            availability_zone: "us-east-1a".into(),
            cidr: net("100.64.0.0/20"),
            tags: Tags::new(),
        };
        assert_eq!(
            subnet.to_string(),
            r#"ec2    CreateSubnet {"VpcId":"vpc-1","AvailabilityZone":"us-east-1a","CidrBlock":"100.64.0.0/20"}"#
        );
        subnet.tags.insert("Name".into(), "green-pods".into());
        assert_eq!(
            serde_json::to_value(&subnet).unwrap()["TagSpecifications"],
            serde_json::json!([{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "green-pods"}]}])
        );
    }
}
