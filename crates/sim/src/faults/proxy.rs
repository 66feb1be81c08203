//! The AWS fault proxy: baton-aws's test-bed proxy ([`baton_aws::testbed::proxy`]) in
//! front of moto with [`AwsKnobs`] as its handler, applied to every call, so the SDK (in
//! baton and in the emulator's controllers) meets latency, throttling and dropped
//! connections as it would against AWS. `/debug/faults` is answered by the knobs
//! themselves (see `control`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use baton_aws::testbed::proxy::ProxyError;
use baton_aws::testbed::proxy::{Handler, Proxy, Reply, Request, Upstream, status_of};

use super::aws::{AwsCall, AwsFault, AwsKnobs, AwsRequest};
use super::control::{DEBUG_FAULTS_PATH, control};

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
