//! The emulated EKS estate baton is proven on.
//!
//! No kube-apiserver can be installed on our machines, so this crate serves a faithful
//! Kubernetes API of its own over real HTTP: several named clusters at once, each on its own
//! loopback port with a bearer token, so kube-rs and `kubectl` talk to it as to a real
//! cluster. Faithful where baton's safety is decided: resourceVersion and watch semantics,
//! optimistic concurrency, finalizers, immutable fields, server defaults, `Status` errors.
//!
//! Known gaps (none hides a Kubernetes rule baton's safety relies on; the last three are AWS
//! behaviour the bed models only in part, and a move that passes here may still stall on them
//! in a real account):
//! - server-side apply is approximated as a strategic merge of the applied object: fields a
//!   manager stops applying are not removed (no managedFields ownership);
//! - JSON only, but for `/openapi/v2`, which is an empty document (its protobuf is zero
//!   bytes): no protobuf objects, no aggregated discovery; `/openapi/v3` publishes only
//!   what kubectl needs to send `fieldValidation`, and unknown fields are accepted;
//!   `Table` responses carry the real printers' columns for the kinds baton's users look
//!   at (pods, claims, PVs, StatefulSets…), NAME and AGE for the rest;
//! - no admission webhooks; RBAC is enforced for service-account tokens (minted with
//!   `kubectl create token`) but not for the admin token, and without ClusterRole
//!   aggregation or the legacy Secret-based service-account tokens;
//! - DaemonSets, HorizontalPodAutoscalers and PodDisruptionBudgets are stored and served,
//!   but no controller acts on them (no daemon pods, no autoscaling, no budget status);
//! - pods are removed at once on delete unless `Cluster::graceful_pod_deletion` is set (a
//!   kubelet then finishes them);
//! - pods' addresses are the Amazon VPC CNI's (`controllers/ipamd.rs`): secondary
//!   addresses of ENIs made in EC2 and attached to the node's instance, in its subnet or
//!   its zone's ENIConfig subnet, from a warm pool sized as ipamd's defaults size it. Not
//!   modelled: prefix delegation, IPv6, security groups for pods (branch ENIs),
//!   `WARM_IP_TARGET`/`MINIMUM_IP_TARGET`, the cooldown before a released address is
//!   reused, giving surplus ENIs back, a node being NotReady until its CNI is, ENIs left
//!   behind by a deleted node, and `max-pods` (the scheduler places pods beyond what a
//!   node's ENIs hold; they wait in `ContainerCreating` with `FailedCreatePodSandBox`, as
//!   on a node whose max-pods is set too high). Pods on a node that is no EC2 instance (a
//!   control plane without AWS) are numbered from 10.64.0.0/10, in no network;
//! - moto's ENIs, which the bed's CNI works around rather than relies on: given a count
//!   (`SecondaryPrivateIpAddressCount`), CreateNetworkInterface and
//!   AssignPrivateIpAddresses pick addresses at random anywhere in the subnet's block
//!   (its network and broadcast addresses and AWS's reserved ones included), repeat them,
//!   and never check them against the addresses of other ENIs or instances; given
//!   addresses, they take them even outside the subnet or held elsewhere; there is no
//!   limit on ENIs per instance or addresses per ENI; AttachNetworkInterface takes an ENI
//!   of another zone and a device index in use; DeleteNetworkInterface deletes an
//!   attached ENI; instances get addresses from the bottom of the block without looking
//!   at ENIs'. (`AvailableIpAddressCount` does count every ENI address.) So the bed
//!   chooses free addresses itself, from the top of the block down, under a lock per
//!   subnet, passes them explicitly, and keeps the instance type's limits and the zone
//!   rule; an address another client gives an ENI or an instance at the same moment is
//!   not seen;
//! - AWS authorization only for the EBS CSI controller's AttachVolume/DetachVolume, and
//!   only where a cluster declares the driver's role (`aws_auth`, ARCHITECTURE.md);
//!   IRSA trust, snapshots, CreateVolume/DeleteVolume and the kubelets' calls are not
//!   evaluated.

pub mod auth;
pub mod aws_auth;
pub mod cluster;
pub mod controllers;
mod crd;
mod defaults;
pub mod error;
pub mod estate;
pub mod faults;
mod gc;
mod http;
pub mod kubeconfig;
pub mod meta;
/// moto's launcher, the AWS test bed's (`baton_aws::testbed::moto`).
pub use baton_aws::testbed::moto;
pub mod ops;
pub mod patch;
pub mod resources;
pub mod scenario;
pub mod selector;
pub mod server;
pub mod store;
pub mod tls;
pub mod validate;

pub use cluster::{Cluster, ClusterSpec};
pub use error::ApiError;
pub use kubeconfig::Kubeconfig;
pub use resources::{ResourceDef, ScaleSubresource};
pub use server::{RunningCluster, ServeError, SimServer};
