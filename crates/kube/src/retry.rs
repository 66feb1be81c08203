//! Every request baton sends to an API server goes through [`Patient`]: a transient
//! failure is tried again with backoff rather than ending the command.
//!
//! - **Any method** is tried again after a `429 Too Many Requests` (waiting the
//!   `Retry-After` the server asked for, as API priority and fairness sends it), a `503`
//!   or a `504`: the server did not do the work, or timed out doing it, and baton's writes
//!   are idempotent. This is what kube-rs's default retry did for baton before; it is
//!   turned off ([`kube::Config::default_retry`]) so that one policy, here, decides.
//! - **A read** (`GET`, which changes nothing) is also tried again after a `409`, a
//!   `500` or a `502` and after a connection that failed or was lost before the answer (refused,
//!   reset, a read timeout). A write that failed that way is left to its caller, which
//!   knows whether repeating it is safe and journals it.
//!
//! It also bounds the requests in flight to one cluster ([`IN_FLIGHT`]; a watch, which
//! stays open, is not counted): 250 apps reading at once opened one HTTP/1.1 connection
//! each (4,600 sockets, most of baton's memory, on a 1,000-volume estate), where a queue
//! of a few dozen connections serves them as fast. A request holds its place until its
//! answer's body has been read.
//!
//! The first retry of the process is said once on stderr (a `WARN` line naming the
//! context, the request and the answer); later ones only at debug level, so a command
//! under a flaky server says so once rather than once per retry.
//!
//! Not retried: an answer that is not transient (4xx but 429), credentials the context's
//! user cannot produce (kube-rs's `AuthError`), a request whose body cannot be sent twice,
//! and a request past its last attempt, which returns what the server last said.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use std::pin::Pin;

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Attempts per request, the first included.
pub const ATTEMPTS: u32 = 9;
/// Backoff before the first retry; doubled for each next one, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Upper bound of one backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Upper bound of a server's `Retry-After` that baton honours; a longer one is waited
/// this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Requests in flight to one cluster at most (watches aside); the rest wait their turn.
/// client-go's default client allows 5 requests a second with bursts of 10; controllers
/// commonly raise that to 50–100 a second: 32 at once keeps baton's windows as short on
/// a fast server and spares a slow one.
pub const IN_FLIGHT: usize = 32;

/// Whether the process has said that it retries (once per process).
static SAID: AtomicBool = AtomicBool::new(false);

/// What went wrong with one attempt, when it is worth another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transient {
    /// The server answered with this status.
    Status(u16),
    /// No answer: the connection failed or was lost.
    Unanswered(String),
}

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => match StatusCode::from_u16(*s)
                .ok()
                .and_then(|c| c.canonical_reason())
            {
                Some(reason) => write!(f, "answered {s} {reason}"),
                None => write!(f, "answered {s}"),
            },
            Self::Unanswered(why) => write!(f, "gave no answer ({why})"),
        }
    }
}

/// Whether an answer of `status` to a request of `method` is worth another attempt.
pub fn retry_status(method: &Method, status: StatusCode) -> bool {
    match status.as_u16() {
        429 | 503 | 504 => true,
        // A read changes nothing: any server-side failure, and a 409 (which no API
        // server should answer to a read, but a proxy or a fault injector may), is
        // worth another try.
        409 | 500 | 502 => method == Method::GET,
        _ => false,
    }
}

/// The wait before attempt `attempt + 1` (`attempt` ≥ 1 is the one that failed): the
/// server's `Retry-After` seconds when it gave them (at most [`MAX_RETRY_AFTER`]),
/// else [`FIRST_BACKOFF`] doubled per attempt up to [`MAX_BACKOFF`].
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after.min(MAX_RETRY_AFTER);
    }
    let doubled = FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

/// A `Retry-After` header in seconds (the form the API server sends).
fn retry_after<B>(response: &Response<B>) -> Option<Duration> {
    let v = response.headers().get(http::header::RETRY_AFTER)?;
    v.to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// A copy of `req` for another attempt, when its body can be sent again.
fn again(req: &Request<Body>) -> Option<Request<Body>> {
    let mut copy = Request::new(req.body().try_clone()?);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    Some(copy)
}

/// Says once per process that baton retries, then only at debug level.
fn say(context: &str, method: &Method, path: &str, why: &Transient, wait: Duration) {
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "{context} {why} to {method} {path}; baton tries such requests again with backoff (said once; `-vv` shows each retry)"
        );
    } else {
        tracing::debug!(%context, %method, path, %why, ?wait, "retrying");
    }
}

/// The request service around a [`kube::Client`] that tries transient failures again
/// (see the module's documentation). Build a client on it with [`patient`].
#[derive(Clone)]
pub struct Patient {
    inner: kube::Client,
    context: Arc<str>,
    /// Places for requests in flight ([`IN_FLIGHT`]).
    places: Arc<Semaphore>,
}

/// `client` with [`Patient`] retries, for the kubeconfig context `context`. `client`
/// itself should be built with kube-rs's default retry off, or 429s are retried twice
/// over.
pub fn patient(client: kube::Client, context: &str) -> kube::Client {
    let ns = client.default_namespace().to_string();
    let valid_until = *client.valid_until();
    kube::Client::new(
        Patient {
            inner: client,
            context: context.into(),
            places: Arc::new(Semaphore::new(IN_FLIGHT)),
        },
        ns,
    )
    .with_valid_until(valid_until)
}

impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// Whether a request is a watch (it stays open as long as the watch lasts).
fn is_watch<B>(req: &Request<B>) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

/// An answer's body that holds its request's place until it has been read (or dropped).
#[derive(Debug)]
pub struct Held {
    body: Body,
    place: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = kube::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.place = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl tower_service::Service<Request<Body>> for Patient {
    type Response = Response<Held>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Held>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // kube::Client buffers; readiness is awaited in `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let client = self.inner.clone();
        let context = self.context.clone();
        let places = (!is_watch(&req)).then(|| self.places.clone());
        Box::pin(async move {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let mut next = Some(req);
            let mut attempt = 1;
            loop {
                let req = next.take().expect("a request for each attempt");
                let spare = (attempt < ATTEMPTS).then(|| again(&req)).flatten();
                let place = match &places {
                    Some(p) => Some(p.clone().acquire_owned().await.expect("never closed")),
                    None => None,
                };
                let result = client
                    .send(req)
                    .await
                    .map(|res| res.map(|body| Held { body, place }));
                let Some(spare) = spare else {
                    return result;
                };
                let (why, wait) = match &result {
                    Ok(res) if retry_status(&method, res.status()) => (
                        Transient::Status(res.status().as_u16()),
                        backoff(attempt, retry_after(res)),
                    ),
                    Err(e)
                        if method == Method::GET
                            && crate::unanswered(e)
                            && !crate::auth_failed(e) =>
                    {
                        (
                            Transient::Unanswered(crate::innermost(e)),
                            backoff(attempt, None),
                        )
                    }
                    _ => return result,
                };
                say(&context, &method, &path, &why, wait);
                drop(result);
                tokio::time::sleep(wait).await;
                next = Some(spare);
                attempt += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_server_errors_and_writes_only_what_the_server_did_not_do() {
        let get = Method::GET;
        let patch = Method::PATCH;
        for s in [409, 429, 500, 502, 503, 504] {
            assert!(retry_status(&get, StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [429, 503, 504] {
            assert!(
                retry_status(&patch, StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
        for s in [409, 500, 502] {
            assert!(
                !retry_status(&patch, StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
        for s in [200, 400, 401, 403, 404, 410, 422] {
            assert!(!retry_status(&get, StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_honours_retry_after_up_to_a_minute() {
        assert_eq!(backoff(1, None), Duration::from_millis(50));
        assert_eq!(backoff(2, None), Duration::from_millis(100));
        assert_eq!(backoff(4, None), Duration::from_millis(400));
        assert_eq!(backoff(8, None), MAX_BACKOFF);
        assert_eq!(backoff(40, None), MAX_BACKOFF);
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(backoff(1, Some(Duration::from_secs(600))), MAX_RETRY_AFTER);
    }

    #[test]
    fn a_request_with_a_body_is_copied_whole() {
        let mut req = Request::new(Body::from(b"{\"a\":1}".to_vec()));
        *req.method_mut() = Method::PATCH;
        *req.uri_mut() = "/api/v1/namespaces/x/pods/p".parse().unwrap();
        req.headers_mut().insert(
            "content-type",
            "application/merge-patch+json".parse().unwrap(),
        );
        let copy = again(&req).unwrap();
        assert_eq!(copy.method(), Method::PATCH);
        assert_eq!(copy.uri(), req.uri());
        assert_eq!(copy.headers(), req.headers());
    }

    #[test]
    fn a_watch_takes_no_place_in_flight() {
        let req = |uri: &str| Request::get(uri).body(()).unwrap();
        assert!(is_watch(&req("/api/v1/pods?watch=true&resourceVersion=5")));
        assert!(is_watch(&req(
            "/api/v1/pods?allowWatchBookmarks=true&watch=1"
        )));
        assert!(!is_watch(&req("/api/v1/pods?limit=500")));
        assert!(!is_watch(&req("/api/v1/namespaces/watch/pods")));
    }

    #[tokio::test]
    async fn an_answer_holds_its_place_until_its_body_is_read() {
        use body_reading::read_all;
        let places = Arc::new(Semaphore::new(1));
        let place = places.clone().acquire_owned().await.unwrap();
        let mut held = Held {
            body: Body::from(b"{}".to_vec()),
            place: Some(place),
        };
        assert_eq!(places.available_permits(), 0);
        assert_eq!(read_all(&mut held).await, b"{}");
        assert_eq!(places.available_permits(), 1);
    }

    /// Reads a body to its end without another crate.
    mod body_reading {
        use super::*;
        pub async fn read_all(b: &mut Held) -> Vec<u8> {
            let mut out = Vec::new();
            while let Some(f) =
                std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut *b), cx)).await
            {
                if let Ok(data) = f.unwrap().into_data() {
                    out.extend_from_slice(&data);
                }
            }
            out
        }
    }

    #[test]
    fn what_went_wrong_reads_as_an_answer() {
        assert_eq!(
            Transient::Status(500).to_string(),
            "answered 500 Internal Server Error"
        );
        assert_eq!(
            Transient::Unanswered("connection reset".into()).to_string(),
            "gave no answer (connection reset)"
        );
    }
}
