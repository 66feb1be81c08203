//! `/debug/clusters` on each cluster's API server (the admin's alone, like the other
//! `/debug/*` endpoints), which the estate's owner carries out (`estate/requests.rs`):
//!
//! - `POST /debug/clusters` with a [`NewCluster`] (JSON) adds the cluster to the running
//!   estate (`Estate::add_cluster`): the [`crate::estate::AddedCluster`] (`201`), or a
//!   `Status` naming what was refused (`409` a name taken, `422` a bad version or
//!   subnet).
//! - `DELETE /debug/clusters/NAME/nodegroup` deletes the cluster's node groups
//!   (`Estate::delete_node_group`): the [`crate::estate::DeletedNodeGroup`] (`200`), or
//!   `404` an unknown cluster, `409` one without nodes.
//!
//! An estate that takes no requests answers `404`. Neither delayed, faulted nor logged:
//! they change the bed, not the API.

use std::time::Duration;

use axum::response::Response;
use http::{Method, StatusCode};

use super::{error_response, json_response};
use crate::error::ApiError;
use crate::estate::{ClusterRequest, NewCluster, RequestSlot};

/// Where new clusters are asked for.
pub(crate) const DEBUG_CLUSTERS_PATH: &str = "/debug/clusters";

/// How long a node group's drain waits for its pods to stop (EKS waits up to 15
/// minutes for PodDisruptionBudgets; the bed's pods stop in their modelled grace).
const DRAIN: Duration = Duration::from_secs(60);

/// Whether `path` is one of `/debug/clusters`'.
pub(crate) fn is_clusters_path(path: &str) -> bool {
    path == DEBUG_CLUSTERS_PATH
        || path
            .strip_prefix(DEBUG_CLUSTERS_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Carries out one request: parsed here, decided by the estate's owner.
pub(crate) async fn serve(
    requests: &RequestSlot,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response {
    if path == DEBUG_CLUSTERS_PATH {
        return add(requests, method, body).await;
    }
    let rest = path
        .strip_prefix(DEBUG_CLUSTERS_PATH)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or_default();
    match rest.split_once('/') {
        Some((name, "nodegroup")) if !name.is_empty() => {
            delete_node_group(requests, method, name).await
        }
        _ => error_response(&ApiError {
            code: 404,
            reason: "NotFound",
            message: format!(
                "{path} is not served: {DEBUG_CLUSTERS_PATH} takes POST, {DEBUG_CLUSTERS_PATH}/NAME/nodegroup DELETE"
            ),
            details: None,
        }),
    }
}

async fn add(requests: &RequestSlot, method: &Method, body: &[u8]) -> Response {
    if *method != Method::POST {
        return error_response(&ApiError::method_not_allowed(format!(
            "{DEBUG_CLUSTERS_PATH} takes POST"
        )));
    }
    let new: NewCluster = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return error_response(&ApiError::bad_request(format!(
                "failed to read the new cluster: {e}"
            )));
        }
    };
    match requests.submit(new, ClusterRequest::Add).await {
        Some(Ok(added)) => json_response(
            StatusCode::CREATED,
            &serde_json::to_value(&added).expect("serializes"),
        ),
        Some(Err(e)) => error_response(&e.to_api_error()),
        None => no_owner("takes no new clusters"),
    }
}

async fn delete_node_group(requests: &RequestSlot, method: &Method, name: &str) -> Response {
    if *method != Method::DELETE {
        return error_response(&ApiError::method_not_allowed(format!(
            "{DEBUG_CLUSTERS_PATH}/{name}/nodegroup takes DELETE"
        )));
    }
    match requests
        .submit((name.to_string(), DRAIN), ClusterRequest::DeleteNodeGroup)
        .await
    {
        Some(Ok(deleted)) => json_response(
            StatusCode::OK,
            &serde_json::to_value(&deleted).expect("serializes"),
        ),
        Some(Err(e)) => error_response(&e.to_api_error()),
        None => no_owner("deletes no node groups"),
    }
}

fn no_owner(what: &str) -> Response {
    error_response(&ApiError {
        code: 404,
        reason: "NotFound",
        message: format!(
            "this estate {what}: its API servers run bare (`baton sim up --bare`) or without an owner taking requests"
        ),
        details: None,
    })
}
