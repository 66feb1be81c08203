//! Watch streams: newline-delimited `{"type": …, "object": …}` events with
//! resourceVersion semantics. Unset or "0" starts with synthetic ADDED events for what
//! exists; a version replays every change after it from history, or answers a 410 Gone
//! ERROR event when it has been compacted away. Label/field-filtered watches turn objects
//! entering or leaving the selection into ADDED/DELETED, as the real watch cache does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::meta;
use crate::ops::ListOptions;
use crate::resources::ResourceDef;
use crate::store::{Change, ChangeKind};

use super::Query;

/// How long a watch lasts without `timeoutSeconds` (the real server picks 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a bookmark is sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

struct Filter {
    namespace: Option<String>,
    opts: ListOptions,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta::namespace(obj) == ns)
            && self.opts.labels.matches(obj)
            && self.opts.fields.matches(obj)
    }

    /// The event a change becomes for this watcher, if any.
    fn event(&self, c: &Change) -> Option<(&'static str, Arc<Value>)> {
        let now = self.matches(&c.object);
        let before = c.old.as_deref().is_some_and(|o| self.matches(o));
        match c.kind {
            ChangeKind::Added => now.then_some(("ADDED", c.object.clone())),
            ChangeKind::Modified => match (before, now) {
                (true, true) => Some(("MODIFIED", c.object.clone())),
                (false, true) => Some(("ADDED", c.object.clone())),
                (true, false) => Some(("DELETED", c.object.clone())),
                (false, false) => None,
            },
            ChangeKind::Deleted => before.then_some(("DELETED", c.object.clone())),
        }
    }
}

/// An event line; object events become one-row Tables when the client asked for them.
fn event_line(
    kind: &str,
    obj: &Value,
    def: &ResourceDef,
    as_table: Option<super::table::Include>,
) -> Bytes {
    match as_table {
        Some(include) if matches!(kind, "ADDED" | "MODIFIED" | "DELETED") => {
            let md = json!({ "resourceVersion": obj["metadata"]["resourceVersion"] });
            line(
                kind,
                &super::table::table(def, std::slice::from_ref(obj), md, include),
            )
        }
        _ => line(kind, obj),
    }
}

fn line(kind: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({ "type": kind, "object": obj })).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Starts a watch and returns the streaming response.
pub fn serve(
    cluster: Arc<Cluster>,
    def: ResourceDef,
    namespace: Option<String>,
    q: &Query,
    as_table: Option<super::table::Include>,
) -> Result<Response, ApiError> {
    let filter = Filter {
        namespace: namespace.clone(),
        opts: q.list_options(&def)?,
    };
    let gr = def.key();
    let from = q
        .resource_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "0");
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(256);
    let mut initial = Vec::new();
    let (start_rv, mut changes) = match from {
        None => {
            let (rv, objs, sub) = cluster.store.subscribe_now(&gr, namespace.as_deref());
            initial.extend(
                objs.iter()
                    .filter(|o| filter.matches(o))
                    .map(|o| event_line("ADDED", o, &def, as_table)),
            );
            (rv, sub)
        }
        Some(v) => {
            let rv: u64 = v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?;
            match cluster.store.subscribe_from(&gr, rv) {
                Ok((replay, sub)) => {
                    initial.extend(
                        replay
                            .iter()
                            .filter_map(|c| filter.event(c))
                            .map(|(k, o)| event_line(k, &o, &def, as_table)),
                    );
                    let last = replay.last().map_or(rv, |c| c.rv);
                    (last.max(rv), sub)
                }
                Err(too_old) => {
                    let e = ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        too_old.oldest
                    ));
                    initial.push(line("ERROR", &e.status()));
                    return Ok(stream_response(rx, tx, initial, None));
                }
            }
        }
    };
    let timeout = q
        .timeout_seconds
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = q.bookmarks.then(|| (def.api_version(), def.kind.clone()));
    let pump_tx = tx.clone();
    let mut closing = cluster.closing();
    let task = async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        let mut seen = start_rv;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                () = pump_tx.closed() => return,
                _ = closing.changed() => return,
                _ = tick.tick(), if bookmarks.is_some() => {
                    let (api_version, kind) = bookmarks.as_ref().expect("guarded by if");
                    let bm = json!({ "kind": kind, "apiVersion": api_version, "metadata": { "resourceVersion": seen.to_string() } });
                    if pump_tx.send(Ok(line("BOOKMARK", &bm))).await.is_err() { return; }
                }
                msg = changes.recv() => match msg {
                    Ok(c) => {
                        if c.rv <= seen { continue; }
                        seen = c.rv;
                        if c.resource != gr { continue; }
                        if let Some((k, o)) = filter.event(&c)
                            && pump_tx.send(Ok(event_line(k, &o, &def, as_table))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let e = ApiError::gone("too old resource version: the watcher fell behind");
                        let _ = pump_tx.send(Ok(line("ERROR", &e.status()))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    };
    Ok(stream_response(rx, tx, initial, Some(Box::pin(task))))
}

type Pump = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn stream_response(
    rx: mpsc::Receiver<Result<Bytes, std::convert::Infallible>>,
    tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    initial: Vec<Bytes>,
    pump: Option<Pump>,
) -> Response {
    tokio::spawn(async move {
        for b in initial {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        drop(tx);
        if let Some(p) = pump {
            p.await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
