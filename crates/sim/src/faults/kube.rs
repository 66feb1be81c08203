//! The Kubernetes API knobs of one cluster: latency, faults the API server answers with
//! instead of serving (`InternalError`, `Conflict`, `TooManyRequests` with `Retry-After`,
//! a timeout, a dropped connection) and the log of requests served, so a test can make
//! one PATCH of a scale fail and a benchmark can count baton's calls. Shared as
//! `Arc<Knobs>` on the `Cluster` and changed while it serves; the HTTP pipeline consults
//! it for every request.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::{KnobSet, Logged, Matches, Rule, lock};
use crate::error::{ApiError, Target};

/// Which API requests a rule counts; every set field must match, the default matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiMatch {
    /// The HTTP method.
    pub method: Option<Method>,
    /// A substring of the URL path (`/namespaces/db/`).
    pub path_contains: Option<String>,
    /// The resource as `plural` (`statefulsets`, the object itself) or `plural/subresource`
    /// (`statefulsets/scale`), compared exactly.
    pub resource: Option<String>,
}

/// A fault rule for the Kubernetes API.
pub type ApiRule = Rule<ApiMatch, ApiFault>;

impl ApiRule {
    /// Only requests with this method.
    pub fn method(mut self, method: Method) -> Self {
        self.matcher.method = Some(method);
        self
    }

    /// Only requests whose path contains `s`.
    pub fn path_contains(mut self, s: impl Into<String>) -> Self {
        self.matcher.path_contains = Some(s.into());
        self
    }

    /// Only requests for this resource: `statefulsets` or `statefulsets/scale`.
    pub fn resource(mut self, r: impl Into<String>) -> Self {
        self.matcher.resource = Some(r.into());
        self
    }
}

/// One request as the matchers see it.
#[derive(Debug)]
pub(crate) struct ApiCall<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    /// `plural` or `plural/subresource`, when the path names a resource.
    pub(crate) resource: Option<String>,
}

impl Matches<ApiCall<'_>> for ApiMatch {
    fn matches(&self, c: &ApiCall<'_>) -> bool {
        self.method.as_ref().is_none_or(|m| m == c.method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|s| c.path.contains(s))
            && self
                .resource
                .as_deref()
                .is_none_or(|r| c.resource.as_deref() == Some(r))
    }
}

/// What a request a rule fires on gets instead of being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFault {
    /// HTTP 500, `InternalError` Status.
    Internal,
    /// HTTP 409, `Conflict` Status naming the object, as on a stale resourceVersion.
    Conflict,
    /// HTTP 429, `TooManyRequests` Status with a `Retry-After` header of these seconds
    /// (also `details.retryAfterSeconds`), as API priority and fairness answers.
    TooManyRequests {
        /// Seconds the client is asked to wait.
        retry_after: u32,
    },
    /// The request is held this long, then answered with HTTP 504, `Timeout` Status.
    Timeout(Duration),
    /// The request is held this long, then the connection is dropped without an answer.
    Hang(Duration),
    /// The connection is dropped at once without an answer (the client sees a closed
    /// connection, as after a reset).
    Reset,
}

impl ApiFault {
    /// A short name for logs: `InternalError`, `Conflict`, `TooManyRequests`, `Timeout`,
    /// `Hang`, `Reset`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Internal => "InternalError",
            Self::Conflict => "Conflict",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::Timeout(_) => "Timeout",
            Self::Hang(_) => "Hang",
            Self::Reset => "Reset",
        }
    }

    /// Waits as the fault says, then the response to send; `None` means the connection
    /// is to be dropped unanswered. `target` names the object of the request, for the
    /// `Conflict` message.
    pub(crate) async fn answer(&self, target: Option<Target<'_>>) -> Option<Response> {
        let error = match self {
            Self::Internal => ApiError::internal(
                "an error on the server (\"injected by baton-sim knobs\") has prevented the request from succeeding",
            ),
            Self::Conflict => match target {
                Some(t) => ApiError::conflict_stale(t),
                None => ApiError {
                    code: 409,
                    reason: "Conflict",
                    message: "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again".into(),
                    details: None,
                },
            },
            Self::TooManyRequests { retry_after } => {
                let mut e = ApiError::too_many_requests();
                e.details = Some(json!({ "retryAfterSeconds": retry_after }));
                let mut r = crate::http::error_response(&e);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from(*retry_after));
                return Some(r);
            }
            Self::Timeout(hold) => {
                tokio::time::sleep(*hold).await;
                ApiError {
                    code: 504,
                    reason: "Timeout",
                    message: "Timeout: request did not complete within requested timeout - context deadline exceeded".into(),
                    details: None,
                }
            }
            Self::Hang(hold) => {
                tokio::time::sleep(*hold).await;
                return None;
            }
            Self::Reset => return None,
        };
        Some(crate::http::error_response(&error))
    }
}

/// A response whose body fails before its first byte: hyper then closes the connection
/// without finishing the answer, which the client sees as a dropped connection. (An axum
/// handler cannot close its connection directly; this is the nearest it can do.)
pub(crate) fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection dropped by baton-sim knobs",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from_stream(failing))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// One request in a cluster's log.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// When it arrived.
    pub at: jiff::Timestamp,
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// The HTTP status answered; `None` when the connection was dropped by a fault.
    pub status: Option<u16>,
    /// From arrival to the response head (for a watch: until the stream starts),
    /// injected latency included.
    pub latency: Duration,
    /// The injected fault's [`ApiFault::name`], if one was.
    pub fault: Option<&'static str>,
    /// A write's JSON body (POST, PUT, PATCH, DELETE with one), as sent: what a test
    /// compares with what `--dry-run` showed.
    pub body: Option<Value>,
}

impl Logged for ApiRequest {
    fn faulted(&self) -> bool {
        self.fault.is_some()
    }

    fn document(&self) -> Value {
        json!({
            "at": self.at.to_string(),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "latencyMicros": u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX),
            "fault": self.fault,
            "body": self.body,
        })
    }
}

/// A cluster's API knobs and request log (set them from a test while the server runs).
pub type Knobs = KnobSet<ApiMatch, ApiFault, ApiRequest>;

impl Knobs {
    /// How many logged requests have this method (any when `""` or `"*"`) and a path
    /// containing `path_contains`.
    pub fn count(&self, method: impl AsRef<str>, path_contains: &str) -> usize {
        let method = method.as_ref();
        let any = method.is_empty() || method == "*";
        lock(&self.log)
            .iter()
            .filter(|r| {
                (any || r.method.eq_ignore_ascii_case(method)) && r.path.contains(path_contains)
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(method: &'a Method, path: &'a str, resource: Option<&str>) -> ApiCall<'a> {
        ApiCall {
            method,
            path,
            resource: resource.map(String::from),
        }
    }

    #[test]
    fn matcher_needs_every_set_field() {
        let m = ApiRule::nth(1, ApiFault::Conflict)
            .method(Method::PATCH)
            .resource("statefulsets/scale")
            .matcher;
        let scale = "/apis/apps/v1/namespaces/a/statefulsets/db/scale";
        assert!(m.matches(&call(&Method::PATCH, scale, Some("statefulsets/scale"))));
        assert!(!m.matches(&call(&Method::GET, scale, Some("statefulsets/scale"))));
        assert!(!m.matches(&call(
            &Method::PATCH,
            "/apis/apps/v1/namespaces/a/statefulsets/db",
            Some("statefulsets")
        )));
        let p = ApiRule::rate(1.0, ApiFault::Internal)
            .path_contains("/namespaces/a/")
            .matcher;
        assert!(p.matches(&call(&Method::GET, "/api/v1/namespaces/a/pods", None)));
        assert!(!p.matches(&call(&Method::GET, "/api/v1/namespaces/b/pods", None)));
        assert!(ApiMatch::default().matches(&call(&Method::DELETE, "/version", None)));
    }
}
