//! A small fault-injecting HTTP proxy in front of moto: it answers the first N requests
//! with a throttling error (or not at all) and forwards the rest, counting both. Plain
//! tokio TCP and one request per connection (`Connection: close` both ways) keep it
//! small; the emulator's AWS fault knobs can grow from the same idea.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a faulted request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with EC2's XML `RequestLimitExceeded`, as EC2 throttles.
    Ec2RequestLimitExceeded,
    /// HTTP 429 with the Query-protocol XML `Throttling`, as ELBv2 throttles.
    QueryThrottling429,
    /// No answer for a minute (then the connection is closed), to exercise timeouts.
    Hang,
}

/// A running proxy; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    faults: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` that faults the first `first_n` requests.
    pub async fn start(upstream: SocketAddr, fault: Fault, first_n: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = Self {
            addr,
            requests: Arc::new(AtomicUsize::new(0)),
            faults: Arc::new(AtomicUsize::new(0)),
        };
        let state = proxy.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    // A broken connection is the client's business; the counts tell the test.
                    let _ = state.serve(conn, upstream, fault, first_n).await;
                });
            }
        });
        proxy
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with the fault so far.
    pub fn faults(&self) -> usize {
        self.faults.load(Ordering::SeqCst)
    }

    async fn serve(
        &self,
        mut conn: TcpStream,
        upstream: SocketAddr,
        fault: Fault,
        first_n: usize,
    ) -> std::io::Result<()> {
        let Some(request) = read_message(&mut conn).await? else {
            return Ok(());
        };
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        if n < first_n {
            self.faults.fetch_add(1, Ordering::SeqCst);
            match fault {
                Fault::Hang => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return Ok(());
                }
                Fault::Ec2RequestLimitExceeded => {
                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>";
                    return respond(&mut conn, "400 Bad Request", "text/xml", body).await;
                }
                Fault::QueryThrottling429 => {
                    let body = "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>";
                    return respond(&mut conn, "429 Too Many Requests", "text/xml", body).await;
                }
            }
        }
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&with_connection_close(&request)).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        conn.write_all(&with_connection_close(&response)).await?;
        conn.shutdown().await
    }
}

async fn respond(
    conn: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

/// Reads one HTTP request (head and `Content-Length` body); `None` on a closed socket.
async fn read_message(conn: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(buf))
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
