//! baton's Kubernetes access over kube-rs: clients per kubeconfig context (this module),
//! objects turned into baton's world views ([`convert`]), the objects baton creates in
//! green ([`manifest`]), baton's writes as values ([`request`]: what a dry run prints is
//! what a run sends), reads, sending those writes idempotently and watch-driven waits on
//! one cluster ([`cluster`]), the per-cluster watch cache those waits share ([`cache`]), and
//! what the network planner reads (blue's ENIConfigs, [`network`]), and what preflight
//! reads ([`preflight`], Helm release records in [`helm`]), and Velero Backups ([`velero`]).
//!
//! baton names clusters by kubeconfig context (`--from blue --to green`), exactly as
//! kubectl does, so an SRE's existing kubeconfig works unchanged.

pub mod backup;
pub mod bindings;
pub mod cache;
pub mod cluster;
pub mod convert;
pub mod fences;
mod fresh;
pub mod helm;
pub mod manifest;
pub mod network;
pub mod preflight;
pub mod request;
pub mod retire;
pub mod retry;
pub mod velero;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cluster::{Cluster, IrsaServiceAccount};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Failed to reach a cluster through a kubeconfig context.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig file could not be read or parsed.
    #[error("failed to read the kubeconfig {path}: {}", kubeconfig_reason(source))]
    Kubeconfig {
        /// The file tried and where its name came from (`--kubeconfig`, `$KUBECONFIG`,
        /// the default).
        path: String,
        /// Why (described in the message, so not repeated as a source).
        source: Box<kube::config::KubeconfigError>,
    },
    /// The API server could not be reached at all: nothing answered (refused, reset,
    /// timed out, a name that does not resolve) or TLS failed.
    #[error(
        "failed to reach {context} at {server} (context {context:?} in {kubeconfig}): {reason}; {attempts} {} in {:.1} s",
        if *attempts == 1 { "attempt" } else { "attempts" },
        elapsed.as_secs_f64()
    )]
    Unreachable {
        /// The context.
        context: String,
        /// The server URL the context names.
        server: String,
        /// The kubeconfig, as in [`KubeError::Kubeconfig`].
        kubeconfig: String,
        /// The innermost cause (e.g. "Connection refused (os error 111)").
        reason: String,
        /// Connections tried.
        attempts: u32,
        /// From the first try to giving up.
        elapsed: Duration,
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
    /// A call to the API server failed. A 403 names what RBAC denied and where the
    /// rules baton needs come from.
    #[error("failed to {action} in {context}: {}", describe(context, error))]
    Api {
        /// The context.
        context: String,
        /// What was being done.
        action: String,
        /// Why (described in the message, so not repeated as a source).
        error: Box<kube::Error>,
    },
    /// A wait did not end in time.
    #[error("failed to see {what} in {context} reach the expected state within {after:?}{seen}")]
    Timeout {
        /// The context.
        context: String,
        /// The app.
        what: String,
        /// The time allowed.
        after: Duration,
        /// What was seen that explains it (`; VolumeAttachment … attach error: …`), or
        /// empty.
        seen: String,
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
    #[error("failed to build a client for context {context:?}: {reason}")]
    Client {
        /// The context.
        context: String,
        /// Why, as [`plain`] tells it.
        reason: String,
    },
    /// The context's user could not produce credentials when a request was sent (an exec
    /// plugin such as `aws eks get-token` that failed, a token file that cannot be read).
    #[error("failed to get credentials for context {context:?}: {reason}")]
    Auth {
        /// The context.
        context: String,
        /// Why, as [`plain`] tells it.
        reason: String,
    },
}

/// An error's text for people: the chain's messages, each once, cut before the first
/// `Output {` — kube-rs prints an exec plugin's whole captured output as Debug bytes
/// there, which reads as noise (and might echo what the plugin printed).
pub(crate) fn plain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut layer = Some(e);
    while let Some(l) = layer {
        let mut text = l.to_string();
        if let Some(cut) = text.find("Output {") {
            text.truncate(cut);
            text = text.trim_end_matches([' ', ':', ',']).to_string();
        }
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        layer = l.source();
    }
    parts.join(": ")
}

/// An API error as people read it: the server's message, reason and code; for a 403,
/// what `context` denied and the fix.
fn describe(context: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "{context} denied \"{}\" (Forbidden: {}); baton's commands need the RBAC printed by `baton permissions -o yaml`",
            denied(&s.message).unwrap_or_else(|| s.message.clone()),
            s.message
        ),
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// `patch persistentvolumes` from the API server's wording of a 403 (`… cannot patch
/// resource "persistentvolumes" in API group …`, or `cannot get path "/x"`).
fn denied(message: &str) -> Option<String> {
    let rest = &message[message.find(" cannot ")? + " cannot ".len()..];
    let (verb, rest) = rest.split_once(' ')?;
    let rest = rest
        .strip_prefix("resource \"")
        .or_else(|| rest.strip_prefix("path \""))?;
    let what = &rest[..rest.find('"')?];
    Some(format!("{verb} {what}"))
}

/// Why a kubeconfig could not be read, without kube's own "failed to read kubeconfig
/// from '\"path\"'" around it (the error already names the file).
fn kubeconfig_reason(e: &kube::config::KubeconfigError) -> String {
    match e {
        kube::config::KubeconfigError::ReadConfig(io, _) => io.to_string(),
        other => other.to_string(),
    }
}

/// The innermost cause of an error: what a person can act on ("Connection refused (os
/// error 111)", "invalid peer certificate: UnknownIssuer") rather than the layers
/// around it ("client error (Connect)").
pub(crate) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// Whether a call failed before any HTTP answer: the connection could not be made or
/// was lost, or TLS failed. An answer of any status means the server is there.
/// Credentials that could not be produced (an exec plugin, a token file) arrive the same
/// way, as a service error, and are not this: see [`auth_failed`].
pub fn unanswered(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_)) && !auth_failed(e)
}

/// Whether the request was never sent because the context's user could not produce
/// credentials (kube-rs's `AuthError`, somewhere in the chain).
pub fn auth_failed(e: &kube::Error) -> bool {
    let mut layer: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(l) = layer {
        if l.is::<kube::client::AuthError>() {
            return true;
        }
        layer = l.source();
    }
    false
}

/// Whether the API server refused the call for lack of permission (RBAC).
pub fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
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

    /// Whether the API server denied the call (403: RBAC lacks a rule baton needs).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, KubeError::Api { error, .. } if forbidden(error))
    }
}

/// The longest wait for a TCP connection to an API server. A reachable one answers in
/// milliseconds, even across regions; kubectl's dialer gives up after 30 s, which would
/// make a wrong endpoint look like a hang.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

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

    /// The file and where its name came from, as errors print it.
    pub fn describe(&self) -> String {
        match (&self.path, std::env::var("KUBECONFIG")) {
            (Some(p), _) => format!("{} (--kubeconfig)", p.display()),
            (None, Ok(k)) if !k.is_empty() => format!("{k} ($KUBECONFIG)"),
            (None, _) => "~/.kube/config (the default: no --kubeconfig, $KUBECONFIG unset)".into(),
        }
    }

    fn load(&self) -> Result<Kubeconfig, KubeError> {
        let loaded = match &self.path {
            Some(p) => Kubeconfig::read_from(p),
            None => Kubeconfig::read(),
        };
        loaded.map_err(|source| KubeError::Kubeconfig {
            path: self.describe(),
            source: Box::new(source),
        })
    }

    /// The context names in the kubeconfig.
    pub fn contexts(&self) -> Result<Vec<String>, KubeError> {
        Ok(self.load()?.contexts.into_iter().map(|c| c.name).collect())
    }

    /// A client for one context, failing clearly when the context is unknown.
    /// Transient failures are tried again ([`retry::patient`]).
    pub async fn client(&self, context: &str) -> Result<kube::Client, KubeError> {
        let (client, _) = self.connection(context).await?;
        Ok(retry::patient(client, context))
    }

    /// A client for one context and the server URL it talks to. Connecting takes at most
    /// [`CONNECT_TIMEOUT`] (kube's default is 30 s), so a server that is not there is
    /// reported in seconds. The client does not retry: [`KubeconfigSource::client`] and
    /// [`Cluster`] wrap it in [`retry::patient`].
    pub async fn connection(&self, context: &str) -> Result<(kube::Client, String), KubeError> {
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
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| KubeError::Client {
                context: context.to_string(),
                reason: plain(&e),
            })?;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        // One retry policy for every request: `retry::patient`'s, around this client.
        config.default_retry = false;
        let server = config.cluster_url.to_string();
        let server = server.strip_suffix('/').unwrap_or(&server).to_string();
        let client = kube::Client::try_from(config).map_err(|e| KubeError::Client {
            context: context.to_string(),
            reason: plain(&e),
        })?;
        Ok((client, server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_call_says_what_was_denied_and_where_the_rules_are() {
        let status = kube::core::Status::failure(
            "persistentvolumes \"pvc-123\" is forbidden: User \"system:serviceaccount:baton:baton\" cannot patch resource \"persistentvolumes\" in API group \"\" at the cluster scope",
            "Forbidden",
        )
        .with_code(403);
        let e = KubeError::Api {
            context: "green".into(),
            action: "set PV pvc-123 to Retain".into(),
            error: Box::new(kube::Error::Api(Box::new(status))),
        };
        assert!(e.is_forbidden() && !e.is_transient());
        assert_eq!(
            e.to_string(),
            "failed to set PV pvc-123 to Retain in green: green denied \"patch persistentvolumes\" (Forbidden: persistentvolumes \"pvc-123\" is forbidden: User \"system:serviceaccount:baton:baton\" cannot patch resource \"persistentvolumes\" in API group \"\" at the cluster scope); baton's commands need the RBAC printed by `baton permissions -o yaml`"
        );
        assert_eq!(
            denied("forbidden: User \"x\" cannot get path \"/debug/requests\"").as_deref(),
            Some("get /debug/requests")
        );
        assert_eq!(denied("no such thing"), None);
    }
}
