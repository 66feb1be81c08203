//! The emulated EKS estate baton is proven on.
//!
//! No kube-apiserver can be installed on our machines, so this crate serves a faithful
//! Kubernetes API of its own over real HTTP: several named clusters at once, each on its own
//! loopback port with a bearer token, so kube-rs and `kubectl` talk to it as to a real
//! cluster. Faithful where baton's safety is decided: resourceVersion and watch semantics,
//! optimistic concurrency, finalizers, immutable fields, server defaults, `Status` errors.

pub mod cluster;
mod crd;
mod defaults;
pub mod error;
mod gc;
mod http;
pub mod kubeconfig;
pub mod meta;
pub mod ops;
pub mod patch;
pub mod resources;
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
