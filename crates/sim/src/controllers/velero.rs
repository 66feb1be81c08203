//! A minimal Velero backup controller, so that `baton backup --velero` is tested against
//! the phases a real Velero server writes: a new `velero.io/v1` Backup (no
//! `status.phase`) goes `InProgress` (startTimestamp, `progress.totalItems` = the objects
//! of its `spec.includedNamespaces`), then after [`Delays::velero_backup`](super::Delays)
//! `Completed` (completionTimestamp, `progress.itemsBackedUp`). Nothing is stored
//! anywhere: the emulator has no object storage, only the lifecycle.
//!
//! The annotation [`OUTCOME`] (`PartiallyFailed` or `Failed`) on a Backup, or on its
//! namespace for Backups a test does not create itself (baton's), makes it end that way,
//! with errors and warnings counts (and a failureReason for `Failed`), so tests can trip
//! baton's handling of a failed backup. It acts only while the Backup CRD is served.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{NAMESPACES, VELERO_BACKUPS};
use super::{Controller, Ctx, Scope};
use crate::meta;
use crate::ops::Part;
use crate::resources::GroupResource;

/// Annotation naming the phase a Backup should end in (`PartiallyFailed`, `Failed`).
pub(crate) const OUTCOME: &str = "baton.sim/velero-outcome";

#[derive(Default)]
pub(crate) struct Velero {
    /// When each in-progress Backup (by uid) was picked up: status timestamps have
    /// one-second resolution, too coarse for sub-second modelled delays.
    started: Mutex<HashMap<String, Instant>>,
}

impl Controller for Velero {
    fn name(&self) -> &'static str {
        "velero-backup-controller"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[("velero.io", "backups")]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            if !ctx.serves(VELERO_BACKUPS) {
                return None;
            }
            // The earliest any Backup asks to be looked at again.
            ctx.list(VELERO_BACKUPS, None)
                .iter()
                .filter(|b| !meta::is_deleting(b))
                .filter_map(|b| self.sync(ctx, b))
                .min()
        })
    }
}

impl Velero {
    /// Moves one Backup along; when to look at it again.
    fn sync(&self, ctx: &Ctx, b: &Value) -> Option<Instant> {
        let ns = meta::namespace(b);
        let name = meta::name(b);
        let uid = meta::uid(b).to_string();
        let status = &b["status"];
        let delay = ctx.delays.velero_backup;
        match status["phase"].as_str().unwrap_or_default() {
            "" | "New" => {
                let total = items_in(ctx, &b["spec"]["includedNamespaces"]);
                let now = meta::now();
                let patch = json!({ "status": {
                    "phase": "InProgress",
                    "version": 1,
                    "formatVersion": "1.1.0",
                    "startTimestamp": now,
                    "expiration": expiration(b),
                    "progress": { "totalItems": total, "itemsBackedUp": 0 },
                }});
                if ctx
                    .patch(VELERO_BACKUPS, ns, name, &patch, Part::Status)
                    .is_ok()
                {
                    self.lock().insert(uid, Instant::now());
                }
                Some(Instant::now() + delay / 2)
            }
            "InProgress" => {
                let started = *self.lock().entry(uid.clone()).or_insert_with(Instant::now);
                let total = status["progress"]["totalItems"].as_i64().unwrap_or(0);
                let done_at = started + delay;
                if Instant::now() < done_at {
                    let half = total / 2;
                    if Instant::now() >= started + delay / 2
                        && status["progress"]["itemsBackedUp"].as_i64() != Some(half)
                    {
                        let patch = json!({ "status": { "progress": { "itemsBackedUp": half } } });
                        let _ = ctx.patch(VELERO_BACKUPS, ns, name, &patch, Part::Status);
                    }
                    return Some(if Instant::now() < started + delay / 2 {
                        started + delay / 2
                    } else {
                        done_at
                    });
                }
                let ns_obj = ctx.get(NAMESPACES, "", ns);
                let outcome = b["metadata"]["annotations"][OUTCOME]
                    .as_str()
                    .or_else(|| ns_obj.as_ref()?["metadata"]["annotations"][OUTCOME].as_str());
                let mut end = json!({
                    "completionTimestamp": meta::now(),
                    "progress": { "totalItems": total, "itemsBackedUp": total },
                });
                match outcome {
                    Some("PartiallyFailed") => {
                        end["phase"] = json!("PartiallyFailed");
                        end["errors"] = json!(2);
                        end["warnings"] = json!(1);
                        end["progress"]["itemsBackedUp"] = json!((total - 2).max(0));
                    }
                    Some("Failed") => {
                        end["phase"] = json!("Failed");
                        end["errors"] = json!(1);
                        end["warnings"] = json!(0);
                        end["failureReason"] =
                            json!("error checking if backup already exists in object storage");
                        end["progress"]["itemsBackedUp"] = json!(0);
                    }
                    _ => end["phase"] = json!("Completed"),
                }
                if ctx
                    .patch(
                        VELERO_BACKUPS,
                        ns,
                        name,
                        &json!({ "status": end }),
                        Part::Status,
                    )
                    .is_ok()
                {
                    self.lock().remove(&uid);
                }
                None
            }
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.started.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How many objects a Backup of these namespaces holds (`*` or none: every namespace).
fn items_in(ctx: &Ctx, included: &Value) -> usize {
    let names: Vec<&str> = included
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let all = names.is_empty() || names.contains(&"*");
    ctx.cluster.store.txn(|t| {
        t.resources()
            .iter()
            .filter(|r: &&GroupResource| r.plural != "events")
            .map(|r| {
                t.list(r, None)
                    .iter()
                    .filter(|o| {
                        let ns = meta::namespace(o);
                        !ns.is_empty() && (all || names.contains(&ns))
                    })
                    .count()
            })
            .sum()
    })
}

/// startTimestamp + `spec.ttl` (Velero's default 720h; only hours are modelled).
fn expiration(b: &Value) -> String {
    let hours = b["spec"]["ttl"]
        .as_str()
        .and_then(|t| t.split('h').next())
        .and_then(|h| h.parse::<i64>().ok())
        .unwrap_or(720);
    (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
