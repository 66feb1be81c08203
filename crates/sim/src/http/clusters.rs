//! `/debug/clusters` on each cluster's API server (the admin's alone, like the other
//! `/debug/*` endpoints): `POST` a [`NewCluster`] (JSON) and the estate's owner adds the
//! cluster to the running estate (`Estate::add_cluster`); the answer is the
//! [`crate::estate::AddedCluster`] (`201`) or a `Status` naming what was refused (`409`
//! a name taken, `422` a bad version or subnet, `404` an estate that takes no new
//! clusters). Neither delayed, faulted nor logged: it changes the bed, not the API.

use axum::response::Response;
use http::{Method, StatusCode};

use super::{error_response, json_response};
use crate::error::ApiError;
use crate::estate::{NewCluster, RequestSlot};

/// Where new clusters are asked for.
pub(crate) const DEBUG_CLUSTERS_PATH: &str = "/debug/clusters";

/// Carries out one request: parsed here, decided by the estate's owner.
pub(crate) async fn serve(requests: &RequestSlot, method: &Method, body: &[u8]) -> Response {
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
    match requests.submit(new).await {
        Some(Ok(added)) => json_response(
            StatusCode::CREATED,
            &serde_json::to_value(&added).expect("serializes"),
        ),
        Some(Err(e)) => error_response(&e.to_api_error()),
        None => error_response(&ApiError {
            code: 404,
            reason: "NotFound",
            message: "this estate takes no new clusters: its API servers run bare (`baton sim up --bare`) or without an owner taking requests".into(),
            details: None,
        }),
    }
}
