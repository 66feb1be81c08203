//! The AWS fault proxy: baton-aws's test-bed proxy ([`baton_aws::testbed::proxy`]) in
//! front of moto with [`AwsKnobs`] as its handler, applied to every call, so the SDK (in
//! baton and in the emulator's controllers) meets latency, throttling and dropped
//! connections as it would against AWS. `/debug/faults` is answered by the knobs
//! themselves (see `control`), and `GET /debug/requests` with the call log, as on the
//! clusters' API servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use baton_aws::testbed::proxy::ProxyError;
use baton_aws::testbed::proxy::{Handler, Proxy, Reply, Request, Upstream, status_of};

use super::aws::{AwsCall, AwsFault, AwsKnobs, AwsRequest};
use super::control::{DEBUG_FAULTS_PATH, DEBUG_REQUESTS_PATH, control};

/// A running proxy; it stops accepting when dropped.
#[derive(Debug)]
pub struct AwsProxy {
    proxy: Proxy,
    knobs: Arc<AwsKnobs>,
}

impl AwsProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:PORT`,
    /// moto's endpoint), applying `knobs`.
    pub async fn start(upstream: &str, knobs: Arc<AwsKnobs>) -> Result<Self, ProxyError> {
        let proxy = Proxy::start(upstream, knobs.clone()).await?;
        Ok(Self { proxy, knobs })
    }

    /// `http://127.0.0.1:PORT`: point the SDK here instead of at moto.
    pub fn endpoint(&self) -> String {
        self.proxy.endpoint()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// Its knobs and log.
    pub fn knobs(&self) -> &Arc<AwsKnobs> {
        &self.knobs
    }
}

impl Handler for AwsKnobs {
    /// One call: the control endpoint, or delayed, then faulted or forwarded, and logged.
    async fn handle(&self, request: Request, upstream: &Upstream) -> Reply {
        let started = Instant::now();
        let at = jiff::Timestamp::now();
        let call = AwsCall::from_parts(request.target(), request.headers(), request.body());
        if request.method() == "GET" && call.path == DEBUG_REQUESTS_PATH {
            // Neither delayed, faulted nor logged: reading the log must not change it.
            return Reply::Answer(json_response(200, &self.log_document().to_string()));
        }
        if call.path == DEBUG_FAULTS_PATH {
            let method = http::Method::from_bytes(request.method().as_bytes()).unwrap_or_default();
            let (status, doc) = match control(self, &method, request.body()) {
                Ok(answer) => answer,
                Err((status, message)) => (status, serde_json::json!({ "message": message })),
            };
            return Reply::Answer(json_response(status, &doc.to_string()));
        }
        let (delay, fault) = self.decide(&call);
        tokio::time::sleep(delay).await;
        let record = |status: Option<u16>, fault: Option<&AwsFault>| AwsRequest {
            at,
            method: request.method().to_string(),
            path: call.path.clone(),
            action: call.action.clone(),
            service: call.service.clone(),
            status,
            latency: started.elapsed(),
            fault: fault.map(AwsFault::name),
        };
        if let Some(fault) = fault {
            let request_id = uuid::Uuid::new_v4().to_string();
            let answer = fault.response(call.dialect, &request_id);
            if let AwsFault::Timeout(hold) = fault {
                tokio::time::sleep(hold).await;
            }
            let status = answer.as_deref().and_then(status_of);
            self.record(record(status, Some(&fault)));
            // Timeout and Reset close the connection unanswered.
            return answer.map_or(Reply::Close, Reply::Answer);
        }
        let response = upstream.forward(&request).await;
        self.record(record(status_of(&response), None));
        Reply::Answer(response)
    }
}

/// Why [`debug_request`] got no answer it could read.
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    /// `endpoint` is not `http://HOST:PORT`.
    #[error("{0:?} is not an http:// URL")]
    Endpoint(String),
    /// The connection failed.
    #[error("failed to reach the AWS fault proxy at {endpoint}: {source}")]
    Io {
        endpoint: String,
        source: std::io::Error,
    },
    /// It answered, but not with HTTP and a JSON body.
    #[error("the AWS fault proxy at {endpoint} did not answer HTTP with JSON: {head:?}")]
    Malformed { endpoint: String, head: String },
    /// It answered with an error status; `message` is the body's.
    #[error("the AWS fault proxy answered {status}: {message}")]
    Status { status: u16, message: String },
}

/// One request to a running proxy's `/debug/` endpoints (`/debug/faults`,
/// `/debug/requests`) at `endpoint` (`http://127.0.0.1:PORT`, the estate's
/// `AWS_ENDPOINT_URL`): plain HTTP/1.1, one connection each, as the proxy closes them.
/// Returns the JSON body of a 2xx answer.
pub async fn debug_request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<serde_json::Value, DebugError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = endpoint
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .ok_or_else(|| DebugError::Endpoint(endpoint.to_string()))?;
    let io = |source| DebugError::Io {
        endpoint: endpoint.to_string(),
        source,
    };
    let mut conn = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(io)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.map_err(io)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let malformed = || DebugError::Malformed {
        endpoint: endpoint.to_string(),
        head: head.lines().next().unwrap_or_default().to_string(),
    };
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(malformed)?;
    let doc: serde_json::Value = serde_json::from_str(body).map_err(|_| malformed())?;
    if !(200..300).contains(&status) {
        return Err(DebugError::Status {
            status,
            message: doc["message"].as_str().unwrap_or_default().to_string(),
        });
    }
    Ok(doc)
}

/// A whole JSON response (with `Connection: close`).
fn json_response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("OK"),
        body.len()
    )
    .into_bytes()
}
