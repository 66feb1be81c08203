//! baton's AWS access over aws-sdk-rust: EBS volumes and snapshots, the VPC (CIDR
//! blocks, subnets, instances, security groups), ALB listeners/rules/target groups with
//! weighted forward actions, CloudWatch request metrics, and EKS cluster records.
//!
//! One [`Aws`] handle (cheap to clone) built from an [`AwsConfig`] holds the clients.
//! Every operation returns baton's own small types, never SDK types, so the core and
//! the emulator depend on this crate's API only; every failure is an [`Error`] naming
//! the operation and resource. The same code runs against AWS and against moto.

mod client;
mod config;
mod ebs;
mod eks;
mod elb;
mod elb_forward;
mod error;
mod forward;
mod instances;
mod metrics;
mod security_groups;
mod seed;
mod snapshots;
mod tags;
mod time;
mod vpc;

pub use client::Aws;
pub use config::{AwsConfig, RetryPolicy, StaticCredentials, Timeouts};
pub use ebs::{Attachment, AttachmentState, NewVolume, Volume, VolumeState};
pub use eks::Cluster;
pub use elb::{
    ActionSummary, Listener, LoadBalancer, Rule, RuleCondition, TargetGroup, TargetHealth,
};
pub use error::Error;
pub use forward::{
    ForwardConfig, ForwardTarget, MAX_STICKINESS_SECONDS, MAX_TARGET_GROUPS, MAX_WEIGHT,
    Stickiness, WeightedTargetGroup,
};
pub use instances::Instance;
pub use metrics::{ALB_NAMESPACE, AlbMetricDims, RequestStats};
pub use security_groups::{IngressRule, SecurityGroup};
pub use seed::NODE_AMI;
pub use snapshots::{NewSnapshot, Snapshot};
pub use tags::{Filter, Tags};
pub use vpc::{CidrBlock, NewSubnet, Subnet, Vpc};
