//! baton's Kubernetes access over kube-rs: clients per kubeconfig context (this module),
//! objects turned into baton's world views ([`convert`]), the objects baton creates in
//! green ([`manifest`]), reads, idempotent mutations and watch-driven waits on one
//! cluster ([`cluster`]), the per-cluster watch cache those waits share ([`cache`]), and
//! what the network planner reads (blue's ENIConfigs, [`network`]), and what preflight
//! reads ([`preflight`], Helm release records in [`helm`]), and Velero Backups ([`velero`]).
//!
//! baton names clusters by kubeconfig context (`--from blue --to green`), exactly as
//! kubectl does, so an SRE's existing kubeconfig works unchanged.

pub mod backup;
pub mod cache;
pub mod cluster;
pub mod convert;
pub mod helm;
pub mod manifest;
pub mod network;
pub mod preflight;
pub mod velero;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cluster::Cluster;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Failed to reach a cluster through a kubeconfig context.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig file could not be read or parsed.
    #[error("failed to read kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file (or `$KUBECONFIG`/default) tried.
        path: String,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// The context does not exist in the kubeconfig.
    #[error("failed to find context {context:?} in {path} (contexts there: {available})")]
    UnknownContext {
        /// The context asked for.
        context: String,
        /// The kubeconfig file.
        path: String,
        /// The contexts the file has.
        available: String,
    },
    /// A call to the API server failed.
    #[error("failed to {action} in {context}: {}", describe(error))]
    Api {
        /// The context.
        context: String,
        /// What was being done.
        action: String,
        /// Why (described in the message, so not repeated as a source).
        error: Box<kube::Error>,
    },
    /// A wait did not end in time.
    #[error("failed to see {what} in {context} reach the expected state within {after:?}")]
    Timeout {
        /// The context.
        context: String,
        /// The app.
        what: String,
        /// The time allowed.
        after: Duration,
    },
    /// An object read could not be decoded (e.g. a Helm release record).
    #[error("failed to decode {what} in {context}: {reason}")]
    Decode {
        /// The context.
        context: String,
        /// The object.
        what: String,
        /// Why.
        reason: String,
    },
    /// The client could not be built from the context (TLS, auth plugin, …).
    #[error("failed to build a client for context {context:?}: {source}")]
    Client {
        /// The context.
        context: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An API error as people read it: the server's message, reason and code.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// Whether a failed call may succeed if made again.
pub fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500..=599),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

impl KubeError {
    /// Whether retrying may succeed: the server was busy, failed (5xx), throttled (429),
    /// reported a conflict (409; baton's writes are idempotent), or the connection failed.
    pub fn is_transient(&self) -> bool {
        match self {
            KubeError::Api { error, .. } => transient(error),
            KubeError::Timeout { .. } => false,
            _ => false,
        }
    }
}

/// Where to find the kubeconfig: an explicit file, or `$KUBECONFIG`/`~/.kube/config`.
#[derive(Debug, Clone, Default)]
pub struct KubeconfigSource {
    /// An explicit file (`--kubeconfig`); None reads the environment's default.
    pub path: Option<PathBuf>,
}

impl KubeconfigSource {
    /// Reads a specific file.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Self {
            path: Some(path.as_ref().to_path_buf()),
        }
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into()),
        }
    }

    fn load(&self) -> Result<Kubeconfig, KubeError> {
        let loaded = match &self.path {
            Some(p) => Kubeconfig::read_from(p),
            None => Kubeconfig::read(),
        };
        loaded.map_err(|source| KubeError::Kubeconfig {
            path: self.describe(),
            source,
        })
    }

    /// The context names in the kubeconfig.
    pub fn contexts(&self) -> Result<Vec<String>, KubeError> {
        Ok(self.load()?.contexts.into_iter().map(|c| c.name).collect())
    }

    /// A client for one context, failing clearly when the context is unknown.
    pub async fn client(&self, context: &str) -> Result<kube::Client, KubeError> {
        let kubeconfig = self.load()?;
        if !kubeconfig.contexts.iter().any(|c| c.name == context) {
            let available: Vec<String> =
                kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
            return Err(KubeError::UnknownContext {
                context: context.to_string(),
                path: self.describe(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            });
        }
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| KubeError::Client {
                context: context.to_string(),
                source: Box::new(e),
            })?;
        kube::Client::try_from(config).map_err(|e| KubeError::Client {
            context: context.to_string(),
            source: Box::new(e),
        })
    }
}
