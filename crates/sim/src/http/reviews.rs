//! The APIs that are not stored objects but answers about the caller: TokenRequest
//! (`POST …/serviceaccounts/{name}/token`, what `kubectl create token` calls),
//! SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectReview
//! (`kubectl auth whoami`).

use serde_json::{Value, json};

use crate::auth::attributes::ResourceAttributes;
use crate::auth::{Attributes, DEFAULT_EXPIRATION_SECONDS, Identity};
use crate::cluster::Cluster;
use crate::error::ApiError;

/// Where SelfSubjectAccessReviews are created.
pub(super) const SELF_SUBJECT_ACCESS_REVIEWS: &str =
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// The version of a SelfSubjectReview path: v1 (GA in 1.28), and the v1beta1 and
/// v1alpha1 that kubectl releases before that ask for.
pub(super) fn self_subject_review_version(path: &str) -> Option<&str> {
    let version = path
        .strip_prefix("/apis/authentication.k8s.io/")?
        .strip_suffix("/selfsubjectreviews")?;
    matches!(version, "v1" | "v1beta1" | "v1alpha1").then_some(version)
}

/// An authentication.k8s.io SelfSubjectReview: who the caller is.
pub(super) fn self_subject_review(who: &Identity, version: &str) -> Value {
    let (username, groups) = match who {
        Identity::Admin => (
            "kubernetes-admin".to_string(),
            vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ],
        ),
        Identity::User(u) => (u.name.clone(), u.groups.clone()),
    };
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "metadata": { "creationTimestamp": null },
        "status": { "userInfo": { "username": username, "groups": groups } },
    })
}

/// An authentication.k8s.io/v1 TokenRequest for the ServiceAccount `ns/name`, answered
/// with the token in `status`.
pub(super) fn token_request(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    req: Value,
) -> Result<Value, ApiError> {
    let spec = &req["spec"];
    let seconds = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let (token, expires) = cluster.issue_token(ns, name, seconds)?;
    let audiences = match &spec["audiences"] {
        Value::Array(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!(["https://kubernetes.default.svc"]),
    };
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "name": name, "namespace": ns, "creationTimestamp": null },
        "spec": { "audiences": audiences, "expirationSeconds": seconds,
                  "boundObjectRef": spec.get("boundObjectRef").cloned().unwrap_or(Value::Null) },
        "status": { "token": token, "expirationTimestamp": expires.to_string() },
    }))
}

/// An authorization.k8s.io/v1 SelfSubjectAccessReview: may the caller do what
/// `spec.resourceAttributes` (or `spec.nonResourceAttributes`) describe?
pub(super) fn self_subject_access_review(
    cluster: &Cluster,
    who: &Identity,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut review: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))?;
    let spec = &review["spec"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let attrs = if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        Attributes::Resource(ResourceAttributes {
            verb: s(&r["verb"]),
            group: s(&r["group"]),
            version: s(&r["version"]),
            namespace: s(&r["namespace"]),
            resource: s(&r["resource"]),
            subresource: s(&r["subresource"]),
            name: s(&r["name"]),
        })
    } else if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        Attributes::NonResource {
            verb: s(&n["verb"]),
            path: s(&n["path"]),
        }
    } else {
        return Err(ApiError::invalid(
            crate::error::Target {
                group: "authorization.k8s.io",
                plural: "selfsubjectaccessreviews",
                kind: "SelfSubjectAccessReview",
                name: "",
            },
            vec![crate::error::FieldError::required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        ));
    };
    review["status"] = match cluster.authorize(who, &attrs) {
        Ok(reason) => json!({ "allowed": true, "reason": reason }),
        Err(_) => json!({ "allowed": false }),
    };
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    Ok(review)
}
