//! Velero through its `velero.io/v1` Backup custom resource, as `velero backup create`
//! does: whether the cluster serves it, creating a Backup, and following its phase on a
//! watch until Velero finishes it. baton speaks to the API server only, never to Velero's
//! object storage.

use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::KubeError;
use crate::cluster::{Cluster, api_err};
use crate::request::{Method, Mutation, Tolerate};

/// A Backup's phase, as Velero writes it in `status.phase`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VeleroPhase {
    /// Not picked up yet (no phase, or `New`).
    New,
    /// Being backed up (`InProgress`, `WaitingForPluginOperations…`, `Finalizing…`).
    InProgress(String),
    /// Done, every item backed up.
    Completed,
    /// Done with errors: some items were not backed up.
    PartiallyFailed,
    /// Failed (`Failed`, or `FailedValidation` of its spec).
    Failed(String),
    /// A phase this baton does not know (treated as still running).
    Other(String),
}

impl VeleroPhase {
    fn parse(s: &str) -> Self {
        match s {
            "" | "New" => Self::New,
            "Completed" => Self::Completed,
            "PartiallyFailed" => Self::PartiallyFailed,
            "Failed" | "FailedValidation" => Self::Failed(s.into()),
            s if s == "InProgress"
                || s.starts_with("WaitingFor")
                || s.starts_with("Finalizing") =>
            {
                Self::InProgress(s.into())
            }
            other => Self::Other(other.into()),
        }
    }

    /// Whether Velero is done with the Backup.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::PartiallyFailed | Self::Failed(_)
        )
    }
}

impl std::fmt::Display for VeleroPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::New => f.write_str("New"),
            Self::Completed => f.write_str("Completed"),
            Self::PartiallyFailed => f.write_str("PartiallyFailed"),
            Self::InProgress(s) | Self::Failed(s) | Self::Other(s) => f.write_str(s),
        }
    }
}

/// What a Backup's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeleroStatus {
    /// Its phase.
    pub phase: VeleroPhase,
    /// `progress.totalItems`.
    pub total_items: u64,
    /// `progress.itemsBackedUp`.
    pub items_backed_up: u64,
    /// `errors`.
    pub errors: u64,
    /// `warnings`.
    pub warnings: u64,
    /// `failureReason`, or the validation errors.
    pub failure_reason: Option<String>,
}

impl VeleroStatus {
    fn of(obj: &Value) -> Self {
        let s = &obj["status"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let reason = s["failureReason"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(String::from)
            .or_else(|| {
                s["validationErrors"].as_array().map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            });
        Self {
            phase: VeleroPhase::parse(s["phase"].as_str().unwrap_or_default()),
            total_items: n(&s["progress"]["totalItems"]),
            items_backed_up: n(&s["progress"]["itemsBackedUp"]),
            errors: n(&s["errors"]),
            warnings: n(&s["warnings"]),
            failure_reason: reason,
        }
    }
}

fn backups() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("velero.io", "v1", "Backup"),
        "backups",
    )
}

/// What a Backup baton creates asks Velero for.
#[derive(Debug, Clone)]
pub struct VeleroRequest {
    /// Velero's namespace (where Backups live).
    pub namespace: String,
    /// The Backup's name.
    pub name: String,
    /// `spec.includedNamespaces`.
    pub included_namespaces: Vec<String>,
    /// Labels on the Backup (who made it and why).
    pub labels: Vec<(String, String)>,
}

impl VeleroRequest {
    /// The write that creates the Backup, as `--dry-run` prints it and
    /// [`Cluster::create_velero_backup`] sends it: no volume snapshots and no file-system
    /// backup (baton snapshots the volumes it moves itself, inside the window).
    pub fn mutation(&self) -> Mutation {
        let labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        Mutation {
            method: Method::Post,
            path: format!("/apis/velero.io/v1/namespaces/{}/backups", self.namespace),
            body: Some(json!({
                "apiVersion": "velero.io/v1", "kind": "Backup",
                "metadata": { "name": self.name, "namespace": self.namespace, "labels": labels },
                "spec": {
                    "includedNamespaces": self.included_namespaces,
                    "snapshotVolumes": false,
                    "defaultVolumesToFsBackup": false,
                },
            })),
            tolerate: Tolerate::Nothing,
            what: format!("create Velero Backup {}/{}", self.namespace, self.name),
        }
    }
}

impl Cluster {
    /// Whether the cluster serves Velero's `velero.io/v1` Backup (its CRD is installed);
    /// `Err` only when discovery itself failed.
    pub async fn serves_velero(&self) -> Result<bool, KubeError> {
        match self.client.list_api_group_resources("velero.io/v1").await {
            Ok(list) => Ok(list.resources.iter().any(|r| r.name == "backups")),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(api_err(&self.context, "discover velero.io/v1")(e)),
        }
    }

    /// Whether a namespace exists.
    pub async fn has_namespace(&self, ns: &str) -> Result<bool, KubeError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        api.get_opt(ns)
            .await
            .map(|n| n.is_some())
            .map_err(api_err(&self.context, format!("get namespace {ns}")))
    }

    /// Creates a Backup. Volumes are not snapshotted by Velero (see the CLI's reasons),
    /// nor copied by its file-system backup.
    pub async fn create_velero_backup(&self, r: &VeleroRequest) -> Result<(), KubeError> {
        self.send(&r.mutation()).await.map(|_| ())
    }

    /// Follows a Backup on a watch until its phase is final (or `timeout` passes),
    /// calling `progress` on each status change; returns the final status.
    pub async fn follow_velero_backup(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
        mut progress: impl FnMut(&VeleroStatus),
    ) -> Result<VeleroStatus, KubeError> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &backups());
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher(api, config).applied_objects().boxed();
        let follow = async {
            let mut last: Option<VeleroStatus> = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(o) => {
                        let status =
                            VeleroStatus::of(&serde_json::to_value(&o).unwrap_or_default());
                        if last.as_ref() != Some(&status) {
                            progress(&status);
                        }
                        if status.phase.is_final() {
                            return Ok(status);
                        }
                        last = Some(status);
                    }
                    // The watcher relists and rewatches by itself after an error.
                    Err(e) => {
                        tracing::debug!(error = %e, "the Velero Backup watch failed; retrying")
                    }
                }
            }
            Err(KubeError::Timeout {
                seen: String::new(),
                context: self.context.clone(),
                what: format!("Velero Backup {ns}/{name} (the watch ended)"),
                after: timeout,
            })
        };
        tokio::time::timeout(timeout, follow)
            .await
            .unwrap_or_else(|_| {
                Err(KubeError::Timeout {
                    seen: String::new(),
                    context: self.context.clone(),
                    what: format!("Velero Backup {ns}/{name}"),
                    after: timeout,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_only_the_last_three_are_final() {
        for (s, fin) in [
            ("", false),
            ("New", false),
            ("InProgress", false),
            ("WaitingForPluginOperations", false),
            ("FinalizingPartiallyFailed", false),
            ("Completed", true),
            ("PartiallyFailed", true),
            ("Failed", true),
            ("FailedValidation", true),
            ("Deleting", false),
        ] {
            assert_eq!(VeleroPhase::parse(s).is_final(), fin, "{s}");
        }
        let st = VeleroStatus::of(&json!({ "status": {
            "phase": "PartiallyFailed", "errors": 2, "warnings": 1,
            "progress": { "totalItems": 10, "itemsBackedUp": 8 } } }));
        assert_eq!(st.phase, VeleroPhase::PartiallyFailed);
        assert_eq!(
            (st.total_items, st.items_backed_up, st.errors, st.warnings),
            (10, 8, 2, 1)
        );
    }
}
