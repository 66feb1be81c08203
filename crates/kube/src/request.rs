//! baton's Kubernetes writes as values: each is built once, here, from what the phase
//! machine decided and what was read, and is then either printed (`--dry-run`) or sent
//! ([`crate::Cluster::send`]) — the same value, so what a dry run shows is what a run sends.
//! The way `kube::core::Request` builds an `http::Request` without sending it, but kept
//! as a value that can be shown, compared and journaled.

use std::fmt;

use baton_core::world::{ReclaimPolicy, RetentionPolicy, WorkloadKind};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Resource;
use serde::Serialize;
use serde_json::{Value, json};

use crate::convert::{ORIGINAL_RECLAIM, ORIGINAL_RETENTION};

/// The HTTP method of a write, with the body's content type it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Create (`application/json`).
    Post,
    /// A JSON merge patch (`application/merge-patch+json`).
    Patch,
    /// Delete (no body).
    Delete,
}

impl Method {
    /// `POST`, `PATCH`, `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// The body's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Post | Self::Delete => "application/json",
            Self::Patch => "application/merge-patch+json",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an answer that is not a success still means, so that a write repeated after a
/// crash is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tolerate {
    /// Every error is an error.
    Nothing,
    /// A create answered 409: the object exists; it is read and returned (the caller's
    /// machine decides whether it is the right one).
    AlreadyExists,
    /// A delete answered 404: gone already is fine.
    NotFound,
}

/// One write to one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mutation {
    /// The method.
    pub method: Method,
    /// The URL path (no query).
    pub path: String,
    /// The body (None for a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// What a non-success answer still means.
    #[serde(skip)]
    pub tolerate: Tolerate,
    /// What it does, for errors: reads after "failed to …".
    #[serde(skip)]
    pub what: String,
}

impl Mutation {
    /// The path of the object a create makes (for reading it back on a 409).
    pub fn created_path(&self) -> Option<String> {
        let name = self.body.as_ref()?["metadata"]["name"].as_str()?;
        Some(format!("{}/{name}", self.path))
    }
}

impl fmt::Display for Mutation {
    /// `METHOD path body`, the body as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<6} {}", self.method.as_str(), self.path)?;
        if let Some(b) = &self.body {
            write!(f, " {b}")?;
        }
        Ok(())
    }
}

fn pv_path(name: &str) -> String {
    format!("{}/{name}", PersistentVolume::url_path(&(), None))
}

fn claim_path(ns: &str, name: &str) -> String {
    format!("{}/{name}", PersistentVolumeClaim::url_path(&(), Some(ns)))
}

fn statefulset_path(ns: &str, name: &str) -> String {
    format!("{}/{name}", StatefulSet::url_path(&(), Some(ns)))
}

/// The annotation value that records a StatefulSet's claim retention policy before
/// baton changed it (for people and for a manual restore; rollback uses the plan's).
pub fn retention_annotation(p: &RetentionPolicy) -> String {
    format!(
        "whenScaled={},whenDeleted={}",
        p.when_scaled, p.when_deleted
    )
}

/// Sets a PV's reclaim policy. With `original`, records the policy it had in an
/// annotation — unless `current` (the PV as just read) already records one: the first
/// record is the one that counts.
pub fn set_reclaim(
    pv: &str,
    current: Option<&PersistentVolume>,
    policy: ReclaimPolicy,
    original: Option<ReclaimPolicy>,
) -> Mutation {
    let mut body = json!({ "spec": { "persistentVolumeReclaimPolicy": policy.as_str() } });
    if let Some(o) = original {
        let recorded = current
            .and_then(|p| p.metadata.annotations.as_ref())
            .is_some_and(|a| a.contains_key(ORIGINAL_RECLAIM));
        if !recorded {
            body["metadata"] = json!({ "annotations": { ORIGINAL_RECLAIM: o.as_str() } });
        }
    }
    Mutation {
        method: Method::Patch,
        path: pv_path(pv),
        body: Some(body),
        tolerate: Tolerate::Nothing,
        what: format!("set PV {pv} to {policy}"),
    }
}

/// Sets a StatefulSet's claim retention policy; with `original`, records the one it had.
pub fn set_retention(
    ns: &str,
    name: &str,
    policy: &RetentionPolicy,
    original: Option<&RetentionPolicy>,
) -> Mutation {
    let mut body = json!({ "spec": { "persistentVolumeClaimRetentionPolicy": {
        "whenScaled": policy.when_scaled, "whenDeleted": policy.when_deleted } } });
    if let Some(o) = original {
        body["metadata"] =
            json!({ "annotations": { ORIGINAL_RETENTION: retention_annotation(o) } });
    }
    Mutation {
        method: Method::Patch,
        path: statefulset_path(ns, name),
        body: Some(body),
        tolerate: Tolerate::Nothing,
        what: format!("set the claim retention of {ns}/{name}"),
    }
}

/// Scales a StatefulSet or a Deployment through its `scale` subresource.
pub fn scale(kind: WorkloadKind, ns: &str, name: &str, replicas: i32) -> Mutation {
    let path = match kind {
        WorkloadKind::StatefulSet => statefulset_path(ns, name),
        WorkloadKind::Deployment => format!("{}/{name}", Deployment::url_path(&(), Some(ns))),
        // A claim has no scale: the machine never asks for one; were it asked, the API
        // server answers 404 rather than a Deployment of that name being scaled.
        WorkloadKind::Claim => claim_path(ns, name),
    };
    Mutation {
        method: Method::Patch,
        path: format!("{path}/scale"),
        body: Some(json!({ "spec": { "replicas": replicas } })),
        tolerate: Tolerate::Nothing,
        what: format!("scale {ns}/{name} to {replicas}"),
    }
}

/// Creates a claim; one of that name existing already is returned instead.
pub fn create_claim(claim: &PersistentVolumeClaim) -> Mutation {
    let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    Mutation {
        method: Method::Post,
        path: PersistentVolumeClaim::url_path(&(), Some(ns)),
        body: Some(serde_json::to_value(claim).expect("a claim serializes")),
        tolerate: Tolerate::AlreadyExists,
        what: format!("create claim {ns}/{name}"),
    }
}

/// Creates a PV; one of that name existing already is returned instead.
pub fn create_volume(pv: &PersistentVolume) -> Mutation {
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    Mutation {
        method: Method::Post,
        path: PersistentVolume::url_path(&(), None),
        body: Some(serde_json::to_value(pv).expect("a PV serializes")),
        tolerate: Tolerate::AlreadyExists,
        what: format!("create PV {name}"),
    }
}

/// Deletes a claim (gone already is fine).
pub fn delete_claim(ns: &str, name: &str) -> Mutation {
    Mutation {
        method: Method::Delete,
        path: claim_path(ns, name),
        body: None,
        tolerate: Tolerate::NotFound,
        what: format!("delete claim {ns}/{name}"),
    }
}

/// Deletes a PV (gone already is fine).
pub fn delete_volume(name: &str) -> Mutation {
    Mutation {
        method: Method::Delete,
        path: pv_path(name),
        body: None,
        tolerate: Tolerate::NotFound,
        what: format!("delete PV {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_api_servers() {
        assert_eq!(
            scale(WorkloadKind::StatefulSet, "orders", "db", 0).path,
            "/apis/apps/v1/namespaces/orders/statefulsets/db/scale"
        );
        assert_eq!(
            scale(WorkloadKind::Deployment, "media", "web", 1).path,
            "/apis/apps/v1/namespaces/media/deployments/web/scale"
        );
        assert_eq!(
            delete_claim("orders", "data-db-0").path,
            "/api/v1/namespaces/orders/persistentvolumeclaims/data-db-0"
        );
        assert_eq!(delete_volume("pv-1").path, "/api/v1/persistentvolumes/pv-1");
        assert_eq!(
            create_volume(&PersistentVolume::default()).path,
            "/api/v1/persistentvolumes"
        );
    }

    #[test]
    fn the_original_reclaim_policy_is_recorded_only_when_missing() {
        let fresh = set_reclaim(
            "pv-1",
            Some(&PersistentVolume::default()),
            ReclaimPolicy::Retain,
            Some(ReclaimPolicy::Delete),
        );
        assert_eq!(
            fresh.body.unwrap()["metadata"]["annotations"][ORIGINAL_RECLAIM],
            "Delete"
        );
        let mut recorded = PersistentVolume::default();
        recorded.metadata.annotations =
            Some([(ORIGINAL_RECLAIM.to_string(), "Recycle".to_string())].into());
        let again = set_reclaim(
            "pv-1",
            Some(&recorded),
            ReclaimPolicy::Retain,
            Some(ReclaimPolicy::Delete),
        );
        assert!(again.body.unwrap().get("metadata").is_none());
        let restore = set_reclaim("pv-1", None, ReclaimPolicy::Delete, None);
        assert_eq!(
            restore.to_string(),
            r#"PATCH  /api/v1/persistentvolumes/pv-1 {"spec":{"persistentVolumeReclaimPolicy":"Delete"}}"#
        );
    }

    #[test]
    fn the_retention_annotation_records_both_fields() {
        let p = RetentionPolicy {
            when_scaled: "Delete".into(),
            when_deleted: "Retain".into(),
        };
        let m = set_retention("ns", "db", &RetentionPolicy::default(), Some(&p));
        let note = m.body.unwrap()["metadata"]["annotations"][ORIGINAL_RETENTION]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(note, "whenScaled=Delete,whenDeleted=Retain");
    }
}
