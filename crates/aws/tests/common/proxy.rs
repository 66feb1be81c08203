//! The test bed's fault proxy (`baton_aws::testbed::proxy`, the one the emulator runs in
//! front of moto) with a handler that answers the first N requests with a throttling
//! error (or not at all) and forwards the rest, counting both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton_aws::testbed::proxy::{Handler, Proxy, Reply, Request, Upstream};

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

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    proxy: Proxy,
    counts: Arc<FirstN>,
}

/// Faults the first `first_n` requests; counts requests and faults.
#[derive(Debug)]
struct FirstN {
    fault: Fault,
    first_n: usize,
    requests: AtomicUsize,
    faults: AtomicUsize,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` that faults the first `first_n` requests.
    pub async fn start(upstream: SocketAddr, fault: Fault, first_n: usize) -> Self {
        let counts = Arc::new(FirstN {
            fault,
            first_n,
            requests: AtomicUsize::new(0),
            faults: AtomicUsize::new(0),
        });
        let proxy = Proxy::start(&format!("http://{upstream}"), counts.clone())
            .await
            .expect("start the fault proxy");
        Self { proxy, counts }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        self.proxy.endpoint()
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with the fault so far.
    pub fn faults(&self) -> usize {
        self.counts.faults.load(Ordering::SeqCst)
    }
}

impl Handler for FirstN {
    async fn handle(&self, request: Request, upstream: &Upstream) -> Reply {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        if n >= self.first_n {
            return Reply::Answer(upstream.forward(&request).await);
        }
        self.faults.fetch_add(1, Ordering::SeqCst);
        let (status, body) = match self.fault {
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return Reply::Close;
            }
            Fault::Ec2RequestLimitExceeded => (
                "400 Bad Request",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>",
            ),
            Fault::QueryThrottling429 => (
                "429 Too Many Requests",
                "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
            ),
        };
        Reply::Answer(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }
}
