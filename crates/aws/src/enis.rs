//! Elastic network interfaces and their private addresses: what the Amazon VPC CNI's
//! ipamd calls to give pods addresses (CreateNetworkInterface, AttachNetworkInterface,
//! AssignPrivateIpAddresses, DescribeNetworkInterfaces, and DescribeInstanceTypes for an
//! instance type's limits). Only the emulator's ipamd makes the writes; tests and people
//! read with [`Aws::describe_network_interfaces`].

use aws_sdk_ec2::types::{InstanceType, PrivateIpAddressSpecification, ResourceType};

use crate::client::Aws;
use crate::error::Error;
use crate::tags::{Filter, Tags, describe_filters, from_sdk_tags, tag_spec, to_sdk_filters};

/// An elastic network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    /// `eni-…`
    pub id: String,
    /// Its subnet.
    pub subnet_id: String,
    /// Its subnet's zone.
    pub availability_zone: String,
    /// Its primary private IPv4 address.
    pub private_ip: String,
    /// Its secondary private IPv4 addresses (a pod's, under the VPC CNI).
    pub secondary_ips: Vec<String>,
    /// Its security groups' ids.
    pub security_groups: Vec<String>,
    /// Its description (`aws-K8S-i-…` for the VPC CNI's).
    pub description: String,
    /// Where it is attached, if it is.
    pub attachment: Option<EniAttachment>,
    /// Tags.
    pub tags: Tags,
}

/// An ENI's attachment to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniAttachment {
    /// `eni-attach-…`
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// Its device index on the instance (0 is the primary ENI).
    pub device_index: i32,
}

/// An ENI to create with the addresses given (none left for EC2 to choose).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNetworkInterface {
    /// The subnet.
    pub subnet_id: String,
    /// Security groups (none: the VPC's default group).
    pub security_groups: Vec<String>,
    /// Description.
    pub description: String,
    /// The primary private address.
    pub private_ip: String,
    /// Secondary private addresses.
    pub secondary_ips: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

/// What an instance type allows its ENIs: the numbers the VPC CNI sizes pools by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EniLimits {
    /// ENIs that may be attached at once (the primary included).
    pub max_interfaces: usize,
    /// Private IPv4 addresses per ENI (its primary included).
    pub ipv4_per_interface: usize,
}

impl Aws {
    /// ENIs matching all `filters` (e.g. `attachment.instance-id`, `subnet-id`), across
    /// all pages.
    pub async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<NetworkInterface>, Error> {
        let call = self.call("describe network interfaces", describe_filters(filters));
        let items = self
            .ec2
            .describe_network_interfaces()
            .set_filters(to_sdk_filters(filters))
            .set_max_results(self.page_size.map(|n| n.max(5)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        items.iter().map(|e| interface(&call, e)).collect()
    }

    /// Creates an ENI with the given addresses.
    pub async fn create_network_interface(
        &self,
        new: &NewNetworkInterface,
    ) -> Result<NetworkInterface, Error> {
        let call = self.call(
            "create a network interface in",
            format!("{} ({})", new.subnet_id, new.private_ip),
        );
        let addresses = std::iter::once((true, &new.private_ip))
            .chain(new.secondary_ips.iter().map(|ip| (false, ip)))
            .map(|(primary, ip)| {
                PrivateIpAddressSpecification::builder()
                    .primary(primary)
                    .private_ip_address(ip)
                    .build()
            })
            .collect();
        let out = self
            .ec2
            .create_network_interface()
            .subnet_id(&new.subnet_id)
            .description(&new.description)
            .set_groups((!new.security_groups.is_empty()).then(|| new.security_groups.clone()))
            .set_private_ip_addresses(Some(addresses))
            .set_tag_specifications(tag_spec(ResourceType::NetworkInterface, &new.tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        interface(
            &call,
            out.network_interface()
                .ok_or_else(|| call.missing("the network interface"))?,
        )
    }

    /// Attaches an ENI to an instance at a device index; returns the attachment's id.
    pub async fn attach_network_interface(
        &self,
        eni_id: &str,
        instance_id: &str,
        device_index: i32,
    ) -> Result<String, Error> {
        let call = self.call(
            "attach network interface",
            format!("{eni_id} to {instance_id} at device {device_index}"),
        );
        let out = self
            .ec2
            .attach_network_interface()
            .network_interface_id(eni_id)
            .instance_id(instance_id)
            .device_index(device_index)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .attachment_id()
            .ok_or_else(|| call.missing("the attachment id"))?
            .to_owned())
    }

    /// Deletes an ENI (one that is not attached).
    pub async fn delete_network_interface(&self, eni_id: &str) -> Result<(), Error> {
        let call = self.call("delete network interface", eni_id);
        self.ec2
            .delete_network_interface()
            .network_interface_id(eni_id)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Assigns the given secondary private addresses to an ENI.
    pub async fn assign_private_ips(&self, eni_id: &str, ips: &[String]) -> Result<(), Error> {
        let call = self.call(
            "assign private addresses to",
            format!("{eni_id} ({})", ips.join(", ")),
        );
        if ips.is_empty() {
            return Ok(());
        }
        self.ec2
            .assign_private_ip_addresses()
            .network_interface_id(eni_id)
            .set_private_ip_addresses(Some(ips.to_vec()))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// What an instance type allows its ENIs (DescribeInstanceTypes' `NetworkInfo`).
    pub async fn eni_limits(&self, instance_type: &str) -> Result<EniLimits, Error> {
        let call = self.call("describe instance type", instance_type);
        let out = self
            .ec2
            .describe_instance_types()
            .instance_types(InstanceType::from(instance_type))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let network = out
            .instance_types()
            .first()
            .and_then(|t| t.network_info())
            .ok_or_else(|| call.missing("the instance type's network info"))?;
        let count = |n: Option<i32>, what: &str| {
            n.and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| call.missing(what))
        };
        Ok(EniLimits {
            max_interfaces: count(
                network.maximum_network_interfaces(),
                "MaximumNetworkInterfaces",
            )?,
            ipv4_per_interface: count(
                network.ipv4_addresses_per_interface(),
                "Ipv4AddressesPerInterface",
            )?,
        })
    }
}

fn interface(
    call: &crate::error::Call,
    e: &aws_sdk_ec2::types::NetworkInterface,
) -> Result<NetworkInterface, Error> {
    let private_ip = e
        .private_ip_address()
        .ok_or_else(|| call.missing("an ENI's primary address"))?
        .to_owned();
    let secondary_ips = e
        .private_ip_addresses()
        .iter()
        .filter(|a| a.primary() != Some(true))
        .filter_map(|a| a.private_ip_address())
        .filter(|ip| *ip != private_ip)
        .map(str::to_owned)
        .collect();
    let attachment = e.attachment().and_then(|a| {
        Some(EniAttachment {
            id: a.attachment_id()?.to_owned(),
            instance_id: a.instance_id()?.to_owned(),
            device_index: a.device_index().unwrap_or(0),
        })
    });
    Ok(NetworkInterface {
        id: e
            .network_interface_id()
            .ok_or_else(|| call.missing("an ENI id"))?
            .to_owned(),
        subnet_id: e.subnet_id().unwrap_or_default().to_owned(),
        availability_zone: e.availability_zone().unwrap_or_default().to_owned(),
        private_ip,
        secondary_ips,
        security_groups: e
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect(),
        description: e.description().unwrap_or_default().to_owned(),
        attachment,
        tags: from_sdk_tags(e.tag_set()),
    })
}
