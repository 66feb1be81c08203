//! A plain-HTTP proxy on its own loopback port in front of moto: each call is read off the
//! wire and handed to a [`Handler`], which answers it itself (a fault), forwards it
//! ([`Upstream::forward`]) or closes the connection unanswered.
//!
//! Plain tokio TCP and one exchange per connection (`Connection: close` both ways) keep it
//! small and keep every call visible: the SDK simply opens a new connection per call.
//! Request bodies are read by `Content-Length` (or up to the end of a chunked body), as
//! the SDK sends them; responses are read until moto closes.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Failed to start the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream is not an `http://host:port` URL.
    #[error("failed to start the AWS fault proxy: upstream {0:?} is not an http://host:port URL")]
    Upstream(String),
    /// No loopback port could be bound.
    #[error("failed to start the AWS fault proxy: cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
}

/// What the proxy does with one call.
#[derive(Debug)]
pub enum Reply {
    /// Write this whole HTTP response (its `Connection` header becomes `close`).
    Answer(Vec<u8>),
    /// Close the connection without an answer.
    Close,
}

/// Decides each call's [`Reply`]; called once per call, concurrently.
pub trait Handler: Send + Sync + 'static {
    /// The reply to `request`; forward it with `upstream` to let moto answer.
    fn handle(&self, request: Request, upstream: &Upstream) -> impl Future<Output = Reply> + Send;
}

/// Where calls are forwarded: moto's `host:port`.
#[derive(Debug, Clone)]
pub struct Upstream {
    authority: String,
}

impl Upstream {
    /// The response to `request` from upstream (its `Connection` header set to `close`),
    /// or a `502 Bad Gateway` saying why upstream could not be reached.
    pub async fn forward(&self, request: &Request) -> Vec<u8> {
        match self.exchange(&request.raw).await {
            Ok(response) => response,
            Err(e) => {
                let body = format!("AWS fault proxy: cannot reach {}: {e}", self.authority);
                format!(
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
        }
    }

    async fn exchange(&self, request: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut up = TcpStream::connect(&self.authority).await?;
        up.write_all(&with_connection_close(request)).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        Ok(response)
    }
}

/// A running proxy; it stops accepting when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and hands every call to `handler`, which may
    /// forward it to `upstream` (`http://127.0.0.1:PORT`, moto's endpoint).
    pub async fn start<H: Handler>(upstream: &str, handler: Arc<H>) -> Result<Self, ProxyError> {
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
        let upstream_at = Upstream { authority };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ProxyError::Bind)?;
        let addr = listener.local_addr().map_err(ProxyError::Bind)?;
        let task = tokio::spawn(async move {
            loop {
                let conn = match listener.accept().await {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "AWS fault proxy: accept failed");
                        continue;
                    }
                };
                let handler = handler.clone();
                let upstream = upstream_at.clone();
                tokio::spawn(async move {
                    // A connection broken by either side is the client's to notice; the
                    // handler has already seen the call.
                    let _ = serve(conn, &upstream, &*handler).await;
                });
            }
        });
        tracing::info!(%addr, upstream, "AWS fault proxy listening");
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:PORT`: point the SDK here instead of at moto.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection: one call, as the handler decides.
async fn serve<H: Handler>(
    mut conn: TcpStream,
    upstream: &Upstream,
    handler: &H,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut conn).await? else {
        return Ok(());
    };
    match handler.handle(request, upstream).await {
        // Dropping `conn` closes it unanswered.
        Reply::Close => Ok(()),
        Reply::Answer(response) => {
            conn.write_all(&with_connection_close(&response)).await?;
            conn.shutdown().await
        }
    }
}

/// One request as read off the wire.
#[derive(Debug)]
pub struct Request {
    raw: Vec<u8>,
    head_end: usize,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// `GET`, `POST`, …
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target: path and query.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The headers, in order, names as sent.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body as sent (still chunk-encoded if it was).
    pub fn body(&self) -> &[u8] {
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
pub fn status_of(response: &[u8]) -> Option<u16> {
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
