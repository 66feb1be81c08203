//! The emulated EKS estate baton is proven on.
//!
//! No kube-apiserver can be installed on our machines, so this crate serves a faithful
//! Kubernetes API of its own over real HTTP: several named clusters at once, each on its own
//! loopback port with a bearer token, so kube-rs and `kubectl` talk to it as to a real
//! cluster. Faithful where baton's safety is decided: resourceVersion and watch semantics,
//! optimistic concurrency, finalizers, immutable fields, server defaults, `Status` errors.
//!
//! Known gaps (none hides a Kubernetes rule baton's safety relies on; the last two are AWS
//! behaviour the bed does not model yet, and a move that passes here may still stall on them
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
//! - pod IPs are made up (`10.64.x.y`), not taken from the node's subnet or an ENIConfig;
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
