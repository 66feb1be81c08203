//! Calls that build an estate: a VPC, instances (the nodes), security groups, an ALB with
//! target groups and a listener, EKS cluster records. Only the emulator makes them, to
//! seed moto with a scenario; none of baton's commands does.

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, TargetDescription, TargetTypeEnum,
};

use crate::client::Aws;
use crate::error::Error;
use crate::instances::Instance;
use crate::tags::{Tags, tag_spec};

/// The AMI the emulator's nodes run (moto does not check AMI ids).
pub const NODE_AMI: &str = "ami-0baton0sim0eks00";

impl Aws {
    /// Creates a VPC with a primary CIDR block.
    pub async fn create_vpc(&self, cidr: &str, tags: &Tags) -> Result<String, Error> {
        let call = self.call("create a VPC for", cidr);
        let out = self
            .ec2
            .create_vpc()
            .cidr_block(cidr)
            .set_tag_specifications(tag_spec(ResourceType::Vpc, tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .vpc()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| call.missing("the VPC id"))?
            .to_owned())
    }

    /// Runs one instance in a subnet (an EKS node).
    pub async fn run_instance(
        &self,
        subnet_id: &str,
        instance_type: &str,
        tags: &Tags,
    ) -> Result<Instance, Error> {
        let call = self.call("run an instance in", subnet_id);
        let out = self
            .ec2
            .run_instances()
            .image_id(NODE_AMI)
            .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet_id)
            .set_tag_specifications(tag_spec(ResourceType::Instance, tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let i = out
            .instances()
            .first()
            .ok_or_else(|| call.missing("the instance"))?;
        Ok(Instance {
            id: i
                .instance_id()
                .ok_or_else(|| call.missing("the instance id"))?
                .to_owned(),
            availability_zone: i
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap_or_default()
                .to_owned(),
            instance_type: instance_type.to_owned(),
            private_ip: i.private_ip_address().map(str::to_owned),
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            subnet_id: i.subnet_id().map(str::to_owned),
            vpc_id: i.vpc_id().map(str::to_owned),
            tags: tags.clone(),
        })
    }

    /// Terminates instances (a node group's, when the emulator deletes it); each one's
    /// id and its state after the call (`shutting-down` or `terminated`). Terminating
    /// one already terminated succeeds, as on EC2.
    pub async fn terminate_instances(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, Error> {
        let call = self.call("terminate instances", ids.join(", "));
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        out.terminating_instances()
            .iter()
            .map(|c| {
                Ok((
                    c.instance_id()
                        .ok_or_else(|| call.missing("an instance id"))?
                        .to_owned(),
                    c.current_state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_owned())
                        .unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// Creates a security group in a VPC, optionally admitting TCP `port` from `cidrs`.
    pub async fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
        ingress: Option<(i32, &[String])>,
        tags: &Tags,
    ) -> Result<String, Error> {
        let call = self.call("create security group", name);
        let out = self
            .ec2
            .create_security_group()
            .vpc_id(vpc_id)
            .group_name(name)
            .description(description)
            .set_tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let id = out
            .group_id()
            .ok_or_else(|| call.missing("the group id"))?
            .to_owned();
        if let Some((port, cidrs)) = ingress {
            let ranges = cidrs
                .iter()
                .map(|c| IpRange::builder().cidr_ip(c).build())
                .collect();
            self.ec2
                .authorize_security_group_ingress()
                .group_id(&id)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(port)
                        .to_port(port)
                        .set_ip_ranges(Some(ranges))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
        }
        Ok(id)
    }

    /// Creates an application load balancer; returns its ARN.
    pub async fn create_load_balancer(
        &self,
        name: &str,
        subnets: &[String],
        security_groups: &[String],
    ) -> Result<String, Error> {
        let call = self.call("create load balancer", name);
        let out = self
            .elb
            .create_load_balancer()
            .name(name)
            .set_subnets(Some(subnets.to_vec()))
            .set_security_groups(Some(security_groups.to_vec()))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or_else(|| call.missing("the load balancer ARN"))?
            .to_owned())
    }

    /// Creates an IP target group on HTTP `port`; returns its ARN.
    pub async fn create_target_group(
        &self,
        name: &str,
        vpc_id: &str,
        port: i32,
    ) -> Result<String, Error> {
        self.create_target_group_of_type(name, vpc_id, port, "ip")
            .await
    }

    /// Creates a target group of `target_type` (`ip` or `instance`) on HTTP `port`;
    /// returns its ARN.
    pub async fn create_target_group_of_type(
        &self,
        name: &str,
        vpc_id: &str,
        port: i32,
        target_type: &str,
    ) -> Result<String, Error> {
        let call = self.call("create target group", name);
        let out = self
            .elb
            .create_target_group()
            .name(name)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(port)
            .vpc_id(vpc_id)
            .target_type(TargetTypeEnum::from(target_type))
            .health_check_path("/healthz")
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .ok_or_else(|| call.missing("the target group ARN"))?
            .to_owned())
    }

    /// Creates an HTTP listener whose default action forwards to one target group.
    pub async fn create_listener(
        &self,
        load_balancer_arn: &str,
        port: i32,
        target_group_arn: &str,
    ) -> Result<String, Error> {
        let call = self.call("create a listener on", load_balancer_arn);
        let out = self
            .elb
            .create_listener()
            .load_balancer_arn(load_balancer_arn)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(port)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(target_group_arn)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .ok_or_else(|| call.missing("the listener ARN"))?
            .to_owned())
    }

    /// Sets a target group's deregistration delay (ModifyTargetGroupAttributes
    /// `deregistration_delay.timeout_seconds`, whole seconds, 0–3600).
    pub async fn set_deregistration_delay(
        &self,
        target_group_arn: &str,
        delay: std::time::Duration,
    ) -> Result<(), Error> {
        let call = self.call("set the deregistration delay of", target_group_arn);
        self.elb
            .modify_target_group_attributes()
            .target_group_arn(target_group_arn)
            .attributes(
                aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                    .key(crate::elb::DEREGISTRATION_DELAY)
                    .value(delay.as_secs().to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Registers IP targets on `port`.
    pub async fn register_ip_targets(
        &self,
        target_group_arn: &str,
        ips: &[String],
        port: i32,
    ) -> Result<(), Error> {
        let call = self.call("register targets in", target_group_arn);
        if ips.is_empty() {
            return Ok(());
        }
        self.elb
            .register_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(ip_targets(ips, port)))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Deregisters IP targets on `port` (a green pod going away; tests that take
    /// green's targets out of its group).
    pub async fn deregister_ip_targets(
        &self,
        target_group_arn: &str,
        ips: &[String],
        port: i32,
    ) -> Result<(), Error> {
        let call = self.call("deregister targets from", target_group_arn);
        if ips.is_empty() {
            return Ok(());
        }
        self.elb
            .deregister_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(ip_targets(ips, port)))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Creates an EKS cluster record.
    pub async fn create_eks_cluster(
        &self,
        name: &str,
        version: &str,
        subnets: &[String],
        security_groups: &[String],
    ) -> Result<(), Error> {
        let call = self.call("create EKS cluster", name);
        let vpc = aws_sdk_eks::types::VpcConfigRequest::builder()
            .set_subnet_ids(Some(subnets.to_vec()))
            .set_security_group_ids(Some(security_groups.to_vec()))
            .build();
        self.eks
            .create_cluster()
            .name(name)
            .version(version)
            .role_arn("arn:aws:iam::123456789012:role/baton-sim-eks")
            .resources_vpc_config(vpc)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }
}

/// IP targets on `port`, as ELBv2's register and deregister calls take them.
fn ip_targets(ips: &[String], port: i32) -> Vec<TargetDescription> {
    ips.iter()
        .map(|ip| TargetDescription::builder().id(ip).port(port).build())
        .collect()
}
