//! Query parameters of Kubernetes API requests, parsed once per request.

use serde_json::Value;

use crate::error::ApiError;
use crate::ops::{DeleteOptions, ListOptions};
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};

/// The query options the server honours.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// `watch=true|1`.
    pub watch: bool,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`.
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `propagationPolicy`.
    pub propagation: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `includeObject` (for Table responses).
    pub include_object: Option<String>,
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True")
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
        let mut q = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "watch" => q.watch = truthy(&v),
                "dryRun" => match v.as_str() {
                    "All" => q.dry_run = true,
                    "" => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dryRun value: \"{other}\": supported values: \"All\""
                        )));
                    }
                },
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "limit" => {
                    q.limit = v
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit: {v}")))?
                }
                "continue" if !v.is_empty() => q.continue_token = Some(v),
                "resourceVersion" => q.resource_version = Some(v),
                "allowWatchBookmarks" => q.bookmarks = truthy(&v),
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds: {v}"))
                    })?)
                }
                "propagationPolicy" => q.propagation = Some(v),
                "includeObject" => q.include_object = Some(v),
                "gracePeriodSeconds" => {
                    q.grace_period = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid gracePeriodSeconds: {v}"))
                    })?)
                }
                // Accepted and not needed here: fieldManager, fieldValidation, force, pretty,
                // resourceVersionMatch, sendInitialEvents, orphanDependents.
                _ => {}
            }
        }
        Ok(q)
    }

    /// List options, with the field selector checked against the kind's field labels.
    pub fn list_options(&self, def: &ResourceDef) -> Result<ListOptions, ApiError> {
        let labels = self
            .label_selector
            .as_deref()
            .map(LabelSelector::parse)
            .transpose()?
            .unwrap_or_default();
        let supported = |f: &str| {
            f == "metadata.name"
                || (f == "metadata.namespace" && def.namespaced)
                || def.field_labels.iter().any(|l| l == f)
        };
        let fields = self
            .field_selector
            .as_deref()
            .map(|s| FieldSelector::parse(s, &supported))
            .transpose()?
            .unwrap_or_default();
        Ok(ListOptions {
            labels,
            fields,
            limit: self.limit,
            continue_token: self.continue_token.clone(),
        })
    }

    /// Delete options from the query and an optional `DeleteOptions` body.
    pub fn delete_options(&self, body: &[u8]) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            propagation: self.propagation.clone(),
            dry_run: self.dry_run,
            grace_period: self.grace_period,
            ..Default::default()
        };
        if body.iter().any(|b| !b.is_ascii_whitespace()) {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
            if let Some(p) = v["propagationPolicy"].as_str() {
                o.propagation = Some(p.to_string());
            } else if v["orphanDependents"].as_bool() == Some(true) {
                o.propagation = Some("Orphan".into());
            }
            if let Some(d) = v["dryRun"].as_array()
                && d.iter().any(|x| x == "All")
            {
                o.dry_run = true;
            }
            if let Some(g) = v["gracePeriodSeconds"].as_i64() {
                o.grace_period = Some(g);
            }
            o.uid = v["preconditions"]["uid"].as_str().map(String::from);
            o.resource_version = v["preconditions"]["resourceVersion"]
                .as_str()
                .map(String::from);
        }
        Ok(o)
    }
}
