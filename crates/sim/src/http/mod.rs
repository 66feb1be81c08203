//! The HTTP face of one cluster: authentication and RBAC (decided in `crate::auth`),
//! Kubernetes URL parsing (`/api/v1/namespaces/{ns}/{plural}/{name}/{subresource}` and
//! the `/apis/{group}/…` form), query options, and dispatch to the API semantics in `ops`.

mod clusters;
mod discovery;
mod openapi;
mod query;
mod reviews;
mod table;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::Value;

use crate::auth::{self, Identity};
use crate::cluster::Cluster;
use crate::error::{ApiError, Target};
use crate::estate::RequestSlot;
use crate::faults::{
    ApiCall, ApiFault, ApiRequest, DEBUG_FAULTS_PATH, DEBUG_REQUESTS_PATH, dropped_connection,
};
use crate::ops::{Part, ScaleChange};
use crate::patch::{self, PatchType};
use crate::resources::ResourceDef;

pub use query::Query;

/// The router serving one cluster; its `/debug/clusters` hands requests to `requests`.
pub(crate) fn router(cluster: Arc<Cluster>, requests: Arc<RequestSlot>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Served { cluster, requests })
}

/// What a cluster's handler reaches: the cluster, and the estate's owner for
/// `/debug/clusters`.
#[derive(Debug, Clone)]
struct Served {
    cluster: Arc<Cluster>,
    requests: Arc<RequestSlot>,
}

/// The request pipeline: every request gets the cluster's knobs (latency; for authorized
/// API requests, the injected faults) and goes into its request log.
async fn handle(
    State(Served { cluster, requests }): State<Served>,
    method: Method,
    uri: Uri,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let at = jiff::Timestamp::now();
    let path = uri.path().to_string();
    let raw = raw.unwrap_or_default();
    let who = cluster.authenticate(&headers);
    if method == Method::GET && path == DEBUG_REQUESTS_PATH {
        // Neither delayed, faulted nor logged: reading the log must not change it.
        if let Err(e) = admin_only(who.as_ref(), &method, &path) {
            return error_response(&e);
        }
        return json_response(StatusCode::OK, &cluster.knobs.log_document());
    }
    if path == DEBUG_FAULTS_PATH {
        if let Err(e) = admin_only(who.as_ref(), &method, &path) {
            return error_response(&e);
        }
        return match crate::faults::control(&cluster.knobs, &method, &body) {
            Ok((status, doc)) => {
                json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), &doc)
            }
            Err((405, message)) => error_response(&ApiError::method_not_allowed(message)),
            Err((_, message)) => error_response(&ApiError::bad_request(message)),
        };
    }
    if clusters::is_clusters_path(&path) {
        if let Err(e) = admin_only(who.as_ref(), &method, &path) {
            return error_response(&e);
        }
        return clusters::serve(&requests, &method, &path, &body).await;
    }
    let written = (method != Method::GET && !body.is_empty())
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten();
    let rp = parse_resource_path(&path);
    // Authentication, then RBAC (for anyone but the admin); health is public.
    let access = match who {
        _ if is_health(&path) => Ok(None),
        None => Err(ApiError::unauthorized()),
        Some(Identity::Admin) => Ok(Some(Identity::Admin)),
        Some(id) => cluster
            .authorize(&id, &auth::attributes::of(method.as_str(), &path, &raw))
            .map(|_| Some(id)),
    };
    let (delay, fault) = match &access {
        Ok(Some(_)) => {
            let call = ApiCall {
                method: &method,
                path: &path,
                resource: rp.as_ref().map(|rp| match rp.subresource {
                    Some(sub) => format!("{}/{sub}", rp.plural),
                    None => rp.plural.to_string(),
                }),
            };
            cluster.knobs.decide(&call)
        }
        _ => (cluster.knobs.delay(), None),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = match &fault {
        Some(f) => {
            let target = rp.as_ref().map(|rp| Target {
                group: rp.group,
                plural: rp.plural,
                kind: "",
                name: rp.name.unwrap_or_default(),
            });
            f.answer(target).await
        }
        None => Some(match access {
            Err(e) => error_response(&e),
            Ok(who) => serve(&cluster, who.as_ref(), &method, &path, &raw, &headers, body).await,
        }),
    };
    let status = response.as_ref().map(|r| r.status().as_u16());
    let latency = started.elapsed();
    tracing::debug!(cluster = %cluster.spec.name, %method, %path, ?status, fault = fault.as_ref().map(ApiFault::name), elapsed_us = latency.as_micros() as u64, "request");
    cluster.knobs.record(ApiRequest {
        at,
        method: method.to_string(),
        path,
        query: raw,
        status,
        latency,
        fault: fault.as_ref().map(ApiFault::name),
        body: written,
    });
    response.unwrap_or_else(dropped_connection)
}

fn is_health(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

/// Serves one request as the API server does; `who` has been authenticated and authorized (None: a public health path).
async fn serve(
    cluster: &Arc<Cluster>,
    who: Option<&Identity>,
    method: &Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(who) = who else {
        return (StatusCode::OK, "ok").into_response();
    };
    let query = match Query::parse(raw_query) {
        Ok(q) => q,
        Err(e) => return error_response(&e),
    };
    if *method == Method::POST && path == reviews::SELF_SUBJECT_ACCESS_REVIEWS {
        return match reviews::self_subject_access_review(cluster, who, &body) {
            Ok(doc) => json_response(StatusCode::CREATED, &doc),
            Err(e) => error_response(&e),
        };
    }
    if *method == Method::POST
        && let Some(version) = reviews::self_subject_review_version(path)
    {
        return json_response(
            StatusCode::CREATED,
            &reviews::self_subject_review(who, version),
        );
    }
    route(cluster, method, path, &query, headers, body).await
}

/// The emulator's `/debug/*` endpoints: the admin's alone.
fn admin_only(who: Option<&Identity>, method: &Method, path: &str) -> Result<(), ApiError> {
    match who {
        None => Err(ApiError::unauthorized()),
        Some(Identity::Admin) => Ok(()),
        Some(Identity::User(user)) => Err(auth::rbac::forbidden(
            user,
            &auth::Attributes::NonResource {
                verb: method.as_str().to_ascii_lowercase(),
                path: path.to_string(),
            },
            "",
        )),
    }
}

/// A parsed resource URL.
#[derive(Debug)]
struct ResourcePath<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_resource_path(path: &str) -> Option<ResourcePath<'_>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if is_namespaced_tail(tail) => (Some(*ns), tail),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return None,
    };
    Some(ResourcePath {
        group,
        version,
        namespace,
        plural,
        name,
        subresource,
    })
}

/// After `/namespaces/{x}`, whether the rest addresses a resource in namespace x (and
/// not namespace x's own `status`/`finalize` subresource).
fn is_namespaced_tail(tail: &[&str]) -> bool {
    match tail {
        [] => false,
        [only] => !matches!(*only, "status" | "finalize"),
        _ => true,
    }
}

async fn route(
    cluster: &Arc<Cluster>,
    method: &Method,
    path: &str,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET {
        if let Some(doc) = discovery::document(cluster, path) {
            return json_response(StatusCode::OK, &doc);
        }
        if let Some(doc) = openapi::document(cluster, path) {
            return json_response(StatusCode::OK, &doc);
        }
        if path == openapi::V2_PATH {
            return (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, openapi::V2_PROTOBUF)],
                openapi::v2_document(),
            )
                .into_response();
        }
    }
    let Some(rp) = parse_resource_path(path) else {
        return error_response(&ApiError::no_route());
    };
    let Some(def) = cluster.def(rp.group, rp.version, rp.plural) else {
        return error_response(&ApiError::no_route());
    };
    if rp.namespace.is_some() && !def.namespaced {
        return error_response(&ApiError::no_route());
    }
    match dispatch(cluster, method, &def, &rp, q, headers, &body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn dispatch(
    cluster: &Arc<Cluster>,
    method: &Method,
    def: &ResourceDef,
    rp: &ResourcePath<'_>,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let ns = rp.namespace.unwrap_or_default();
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let include = table::include(q.include_object.as_deref());
    match (rp.name, rp.subresource) {
        (None, None) => match *method {
            Method::GET if q.watch => {
                let as_table = table::wanted(accept).then_some(include);
                Ok(watch::serve(
                    cluster.clone(),
                    def.clone(),
                    rp.namespace.map(String::from),
                    q,
                    as_table,
                )?)
            }
            Method::GET => {
                let list = cluster.list(def, rp.namespace, &q.list_options(def)?)?;
                if table::wanted(accept) {
                    return Ok(ok(table::table(
                        def,
                        &list.items,
                        list.metadata.clone(),
                        include,
                    )));
                }
                Ok(bytes_response(StatusCode::OK, list.to_json()))
            }
            Method::POST => {
                if def.namespaced && rp.namespace.is_none() {
                    return Err(ApiError::method_not_allowed(format!(
                        "POST is not supported on cluster-wide {}",
                        def.plural
                    )));
                }
                let obj = decode_body(body, content_type)?;
                let created = cluster.create(def, ns, obj, q.dry_run)?;
                Ok(json_response(StatusCode::CREATED, &created))
            }
            Method::DELETE => {
                let opts = q.delete_options(body)?;
                Ok(ok(cluster.delete_collection(
                    def,
                    rp.namespace,
                    &q.list_options(def)?,
                    &opts,
                )?))
            }
            _ => Err(not_allowed(method, def)),
        },
        (Some(name), None) => match *method {
            Method::GET => {
                let obj = (*cluster.get(def, ns, name)?).clone();
                if table::wanted(accept) {
                    let md = serde_json::json!({ "resourceVersion": obj["metadata"]["resourceVersion"] });
                    return Ok(ok(table::table(
                        def,
                        std::slice::from_ref(&obj),
                        md,
                        include,
                    )));
                }
                Ok(ok(obj))
            }
            Method::PUT => {
                let obj = decode_body(body, content_type)?;
                Ok(ok(cluster.update(
                    def,
                    ns,
                    name,
                    obj,
                    Part::Main,
                    q.dry_run,
                )?))
            }
            Method::PATCH => {
                let kind = PatchType::from_content_type(content_type)
                    .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
                let existed = cluster.get(def, ns, name).is_ok();
                let out = cluster.patch(def, ns, name, kind, body, Part::Main, q.dry_run)?;
                let code = if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok(json_response(code, &out))
            }
            Method::DELETE => {
                let opts = q.delete_options(body)?;
                Ok(ok(cluster.delete(def, ns, name, &opts)?))
            }
            _ => Err(not_allowed(method, def)),
        },
        (Some(name), Some("status")) if def.status_subresource => match *method {
            Method::GET => Ok(ok((*cluster.get(def, ns, name)?).clone())),
            Method::PUT => {
                let obj = decode_body(body, content_type)?;
                Ok(ok(cluster.update(
                    def,
                    ns,
                    name,
                    obj,
                    Part::Status,
                    q.dry_run,
                )?))
            }
            Method::PATCH => {
                let kind = PatchType::from_content_type(content_type)
                    .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
                Ok(ok(cluster.patch(
                    def,
                    ns,
                    name,
                    kind,
                    body,
                    Part::Status,
                    q.dry_run,
                )?))
            }
            _ => Err(not_allowed(method, def)),
        },
        (Some(name), Some("scale")) if def.scale.is_some() => match *method {
            Method::GET => Ok(ok(cluster.get_scale(def, ns, name)?)),
            Method::PUT => {
                let obj = decode_body(body, content_type)?;
                Ok(ok(cluster.write_scale(
                    def,
                    ns,
                    name,
                    ScaleChange::Replace(&obj),
                    q.dry_run,
                )?))
            }
            Method::PATCH => {
                let kind = PatchType::from_content_type(content_type)
                    .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
                Ok(ok(cluster.write_scale(
                    def,
                    ns,
                    name,
                    ScaleChange::Patch(kind, body),
                    q.dry_run,
                )?))
            }
            _ => Err(not_allowed(method, def)),
        },
        (Some(name), Some("token")) if def.kind == "ServiceAccount" && def.group.is_empty() => {
            match *method {
                Method::POST => {
                    let req = decode_body(body, content_type)?;
                    Ok(json_response(
                        StatusCode::CREATED,
                        &reviews::token_request(cluster, ns, name, req)?,
                    ))
                }
                _ => Err(not_allowed(method, def)),
            }
        }
        (Some(name), Some("binding")) if def.kind == "Pod" && def.group.is_empty() => match *method
        {
            Method::POST => {
                let b = decode_body(body, content_type)?;
                Ok(json_response(
                    StatusCode::CREATED,
                    &cluster.bind_pod(ns, name, &b)?,
                ))
            }
            _ => Err(not_allowed(method, def)),
        },
        _ => Err(ApiError::no_route()),
    }
}

fn not_allowed(method: &Method, def: &ResourceDef) -> ApiError {
    ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({method} {})",
        def.plural
    ))
}

fn decode_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    match ct {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the object provided is unrecognized: {e}"))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => patch::parse_yaml_or_json(body),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response {
    bytes_response(code, serde_json::to_vec(v).unwrap_or_default())
}

/// A response of JSON bytes already serialized.
pub(crate) fn bytes_response(code: StatusCode, body: Vec<u8>) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The `Status` response of an error.
pub(crate) fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_paths() {
        let p = parse_resource_path("/api/v1/namespaces/default/pods/db-0/status").unwrap();
        assert_eq!(
            (
                p.group,
                p.version,
                p.namespace,
                p.plural,
                p.name,
                p.subresource
            ),
            (
                "",
                "v1",
                Some("default"),
                "pods",
                Some("db-0"),
                Some("status")
            )
        );
        let p = parse_resource_path("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (p.namespace, p.plural, p.name),
            (None, "namespaces", Some("default"))
        );
        let p = parse_resource_path("/api/v1/namespaces/x/status").unwrap();
        assert_eq!(
            (p.namespace, p.plural, p.name, p.subresource),
            (None, "namespaces", Some("x"), Some("status"))
        );
        let p = parse_resource_path("/apis/apps/v1/namespaces/a/statefulsets/db/scale").unwrap();
        assert_eq!(
            (p.group, p.plural, p.subresource),
            ("apps", "statefulsets", Some("scale"))
        );
        let p = parse_resource_path("/apis/storage.k8s.io/v1/persistentvolumes").unwrap();
        assert_eq!(
            (p.group, p.plural, p.name),
            ("storage.k8s.io", "persistentvolumes", None)
        );
        assert!(parse_resource_path("/version").is_none());
    }
}
