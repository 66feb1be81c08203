//! baton's AWS access over aws-sdk-rust: EBS volumes and snapshots, the VPC (CIDR
//! blocks, subnets, instances, security groups), ALB listeners/rules/target groups with
//! weighted forward actions, CloudWatch request metrics, and EKS cluster records.
//!
//! One [`Aws`] handle (cheap to clone) built from an [`AwsConfig`] holds the clients.
//! Every operation returns baton's own small types, never SDK types, so the core and
//! the emulator depend on this crate's API only; every failure is an [`Error`] naming
//! the operation and resource. The same code runs against AWS and against moto.
//!
//! The changes baton makes to a network and to an ALB are values first, like an
//! `http::Request` built before it is sent: [`AssociateVpcCidrBlock`], [`NewSubnet`]
//! (CreateSubnet), [`AuthorizeSecurityGroupIngress`] and [`ForwardChange`]
//! (ModifyListener / ModifyRule). A command builds each once; `--dry-run` prints it
//! (`Display`: the service, the operation and the request's fields as compact JSON in
//! the API's own names) and the run sends that same value.

/// Makes a request value print as one line: `ec2    CreateSubnet {"VpcId":…}`.
/// The body is the value's `Serialize` form, whose field names are the API's.
macro_rules! request_line {
    ($ty:ty, $service:literal, $operation:literal) => {
        impl $ty {
            /// The AWS service the request goes to (as the AWS CLI names it).
            pub const SERVICE: &'static str = $service;
            /// The API operation.
            pub const OPERATION: &'static str = $operation;
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let body = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
                write!(f, "{:<6} {} {body}", $service, $operation)
            }
        }
    };
}

mod client;
mod config;
mod ebs;
mod eks;
mod elb;
mod elb_forward;
mod elb_tags;
mod enis;
mod error;
mod forward;
mod iam;
mod instances;
mod kms;
mod metrics;
mod oidc;
mod retried;
mod security_groups;
mod seed;
mod snapshots;
mod tags;
#[cfg(feature = "testbed")]
pub mod testbed;
mod time;
mod vpc;

pub use client::Aws;
pub use config::{AwsConfig, RetryPolicy, StaticCredentials, Timeouts};
pub use ebs::{Attachment, AttachmentState, NewVolume, Volume, VolumeState};
pub use eks::Cluster;
pub use elb::{
    ActionSummary, DEREGISTRATION_DELAY, DeleteTargetGroup, Listener, LoadBalancer, Rule,
    RuleCondition, TargetGroup, TargetHealth,
};
pub use elb_forward::{ElbAction, ForwardChange, ModifyListener, ModifyRule};
pub use enis::{EniAttachment, EniLimits, NetworkInterface, NewNetworkInterface};
pub use error::Error;
pub use forward::{
    ForwardConfig, ForwardTarget, MAX_STICKINESS_SECONDS, MAX_TARGET_GROUPS, MAX_WEIGHT,
    Stickiness, WeightedTargetGroup,
};
pub use iam::{RolePolicies, decode_document, role_name};
pub use instances::Instance;
pub use kms::{KmsGrant, KmsKey, NewGrant, RevokedGrant};
pub use metrics::{ALB_NAMESPACE, AlbDatum, AlbDimensions, AlbMetricDims, RequestStats};
pub use oidc::{EKS_ISSUER_THUMBPRINT, NewOidcProvider, STS_AUDIENCE, UpdateAssumeRolePolicy};
pub use security_groups::{
    AuthorizeSecurityGroupIngress, IngressRule, RevokeSecurityGroupIngress, SecurityGroup,
};
pub use seed::NODE_AMI;
pub use snapshots::{NewSnapshot, Snapshot};
pub use tags::{Filter, NewTags, RemovedTags, Tags};
pub use vpc::{
    AssociateVpcCidrBlock, CidrBlock, DeleteSubnet, DisassociateVpcCidrBlock, NewSubnet, Subnet,
    Vpc,
};
