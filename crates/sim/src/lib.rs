//! The emulated EKS estate baton is proven on.
//!
//! No kube-apiserver can be installed on our machines, so this crate serves a faithful
//! Kubernetes API of its own over real HTTP: several named clusters at once, each on its own
//! loopback port with a bearer token, so kube-rs and `kubectl` talk to it as to a real
//! cluster. Faithful where baton's safety is decided: resourceVersion and watch semantics,
//! optimistic concurrency, finalizers, immutable fields, server defaults, `Status` errors.
//!
//! Known gaps, on purpose (none of them is something baton relies on):
//! - server-side apply is approximated as a strategic merge of the applied object: fields a
//!   manager stops applying are not removed (no managedFields ownership);
//! - JSON only: no protobuf, no `Table` responses (kubectl prints its default NAME/AGE
//!   columns), no aggregated discovery, no `/openapi/v2`; `/openapi/v3` publishes only
//!   what kubectl needs to send `fieldValidation`, and unknown fields are accepted;
//! - no admission webhooks; RBAC is enforced for service-account tokens (minted with
//!   `kubectl create token`) but not for the admin token, and without ClusterRole
//!   aggregation or the legacy Secret-based service-account tokens;
//! - DaemonSets, HorizontalPodAutoscalers and PodDisruptionBudgets are stored and served,
//!   but no controller acts on them (no daemon pods, no autoscaling, no budget status);
//! - pods are removed at once on delete unless `Cluster::graceful_pod_deletion` is set (a
//!   kubelet then finishes them).

pub mod auth;
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
