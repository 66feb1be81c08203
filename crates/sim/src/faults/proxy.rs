//! The AWS fault proxy: a plain-HTTP proxy on its own loopback port in front of moto that
//! applies [`AwsKnobs`] to every call and forwards the rest unchanged, so the SDK (in
//! baton and in the emulator's controllers) meets latency, throttling and dropped
//! connections as it would against AWS.
//!
//! Plain tokio TCP and one exchange per connection (`Connection: close` both ways) keep it
//! small and keep every call visible: the SDK simply opens a new connection per call.
//! Request bodies are read by `Content-Length` (or up to the end of a chunked body), as
//! the SDK sends them; responses are streamed back until moto closes. `/debug/faults`
//! is answered by the proxy itself (see `control`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::aws::{AwsCall, AwsFault, AwsKnobs, AwsRequest};
use super::control::{DEBUG_FAULTS_PATH, control};

/// Failed to start the AWS fault proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream is not an `http://host:port` URL.
    #[error("failed to start the AWS fault proxy: upstream {0:?} is not an http://host:port URL")]
    Upstream(String),
    /// No loopback port could be bound.
    #[error("failed to start the AWS fault proxy: cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
}

/// A running proxy; it stops accepting when dropped.
#[derive(Debug)]
pub struct AwsProxy {
    addr: SocketAddr,
    knobs: Arc<AwsKnobs>,
    task: JoinHandle<()>,
}

impl AwsProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:PORT`,
    /// moto's endpoint), applying `knobs`.
    pub async fn start(upstream: &str, knobs: Arc<AwsKnobs>) -> Result<Self, ProxyError> {
        let authority = upstream
            .strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ProxyError::Upstream(upstream.to_string()))?;
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ProxyError::Bind)?;
        let addr = listener.local_addr().map_err(ProxyError::Bind)?;
        let state = knobs.clone();
        let task = tokio::spawn(async move {
            loop {
                let conn = match listener.accept().await {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "AWS fault proxy: accept failed");
                        continue;
                    }
                };
                let knobs = state.clone();
                let upstream = authority.clone();
                tokio::spawn(async move {
                    // A connection broken by either side is the client's to notice; the
                    // log already holds what the proxy saw.
                    let _ = serve(conn, &upstream, &knobs).await;
                });
            }
        });
        tracing::info!(%addr, upstream, "AWS fault proxy listening");
        Ok(Self { addr, knobs, task })
    }

    /// `http://127.0.0.1:PORT`: point the SDK here instead of at moto.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its knobs and log.
    pub fn knobs(&self) -> &Arc<AwsKnobs> {
        &self.knobs
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection: one call, faulted or forwarded.
async fn serve(mut conn: TcpStream, upstream: &str, knobs: &AwsKnobs) -> std::io::Result<()> {
    let Some(request) = read_request(&mut conn).await? else {
        return Ok(());
    };
    let started = Instant::now();
    let at = jiff::Timestamp::now();
    let call = AwsCall::from_parts(&request.target, &request.headers, request.body());
    if call.path == DEBUG_FAULTS_PATH {
        let method = http::Method::from_bytes(request.method.as_bytes()).unwrap_or_default();
        let (status, doc) = match control(knobs, &method, request.body()) {
            Ok(answer) => answer,
            Err((status, message)) => (status, serde_json::json!({ "message": message })),
        };
        conn.write_all(&json_response(status, &doc.to_string()))
            .await?;
        return conn.shutdown().await;
    }
    let (delay, fault) = knobs.decide(&call);
    tokio::time::sleep(delay).await;
    let record = |status: Option<u16>, fault: Option<&AwsFault>| AwsRequest {
        at,
        method: request.method.clone(),
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
        knobs.record(record(status, Some(&fault)));
        // Timeout and Reset drop `conn` here, unanswered.
        if let Some(answer) = answer {
            conn.write_all(&answer).await?;
            conn.shutdown().await?;
        }
        return Ok(());
    }
    let response = match forward(&request.raw, upstream).await {
        Ok(r) => r,
        Err(e) => {
            let body = format!("baton-sim AWS fault proxy: cannot reach {upstream}: {e}");
            format!(
                "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    };
    knobs.record(record(status_of(&response), None));
    conn.write_all(&with_connection_close(&response)).await?;
    conn.shutdown().await
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

async fn forward(request: &[u8], upstream: &str) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&with_connection_close(request)).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    Ok(response)
}

/// One request as read off the wire.
#[derive(Debug)]
struct Request {
    raw: Vec<u8>,
    head_end: usize,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn body(&self) -> &[u8] {
        &self.raw[self.head_end..]
    }
}

/// Reads one request: the head, then a `Content-Length` body or a chunked one up to its
/// last chunk. `None` when the client closes first.
async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    loop {
        let complete = if chunked {
            raw.len() >= head_end + 5 && raw.ends_with(b"0\r\n\r\n")
        } else {
            raw.len() >= head_end + length
        };
        if complete {
            break;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request {
        raw,
        head_end,
        method,
        target,
        headers,
    }))
}

/// The status code of an HTTP response (`HTTP/1.1 503 …` → 503).
fn status_of(response: &[u8]) -> Option<u16> {
    let line_end = find(response, b"\r\n")?;
    std::str::from_utf8(&response[..line_end])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The same message with its `Connection` header replaced by `Connection: close`, so
/// each side closes after one exchange.
fn with_connection_close(message: &[u8]) -> Vec<u8> {
    let Some(head_end) = find(message, b"\r\n\r\n") else {
        return message.to_vec();
    };
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut out: Vec<u8> = Vec::with_capacity(message.len() + 20);
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&message[head_end + 4..]);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_connection_and_reads_status() {
        let msg = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
        let out = with_connection_close(msg);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        assert_eq!(status_of(&out), Some(200));
        assert_eq!(status_of(b"garbage"), None);
    }
}
