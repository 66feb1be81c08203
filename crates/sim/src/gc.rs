//! What the garbage collector and namespace controller do, run synchronously after every
//! deletion: finalize objects whose finalizers are gone, orphan or delete dependents by
//! `ownerReferences` (Orphan/Background/Foreground propagation), and empty terminating
//! namespaces before removing them.
//!
//! It looks only at what the transaction's writes can have given work: each written
//! object; for a removed one, its dependents (their owners may all be gone now), its
//! owners (a foreground deletion may be waiting for it) and its namespace (a terminating
//! one may be empty now). Owners and dependents come from the store's owner index, so a
//! deletion costs the same on a cluster of ten thousand objects as on one of ten: a scan
//! of every object per deletion made the attach/detach controller's writes, holding the
//! store's lock, the bottleneck of a thousand-volume migration.

use std::collections::{HashSet, VecDeque};

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::meta;
use crate::resources::GroupResource;
use crate::store::{ObjectKey, Touched, Txn};

/// Upper bound on objects looked at: each look makes progress or stops, so this only
/// guards bugs.
const MAX_STEPS: usize = 1_000_000;

impl Cluster {
    /// Collects what the transaction's writes so far give work, and what that work gives
    /// work, until nothing changes.
    pub(crate) fn collect_garbage(&self, t: &mut Txn<'_>) {
        let mut queue: VecDeque<ObjectKey> = VecDeque::new();
        let mut queued: HashSet<ObjectKey> = HashSet::new();
        for _ in 0..MAX_STEPS {
            for touched in t.take_touched() {
                for key in affected(t, touched) {
                    if queued.insert(key.clone()) {
                        queue.push_back(key);
                    }
                }
            }
            let Some(key) = queue.pop_front() else {
                return;
            };
            queued.remove(&key);
            if let Some(obj) = t.get(&key.0, &key.1, &key.2) {
                self.collect_one(t, &key.0, &obj);
            }
        }
        tracing::error!(cluster = %self.spec.name, "garbage collection did not converge");
    }

    /// Does what the collector does about one object, if anything.
    fn collect_one(&self, t: &mut Txn<'_>, gr: &GroupResource, obj: &Value) {
        if !meta::is_deleting(obj) {
            // Background propagation: dependents whose owners are all gone go too.
            let owners = meta::owner_uids(obj);
            if !owners.is_empty() && owners.iter().all(|u| t.key_of_uid(u).is_none()) {
                self.mark_or_remove(t, gr, obj);
            }
            return;
        }
        let mut fins = meta::finalizers(obj);
        let uid = meta::uid(obj);
        if fins.iter().any(|f| f == "orphan") {
            for (dgr, dns, dname) in t.dependents_of(uid) {
                let Some(dep) = t.get(&dgr, &dns, &dname) else {
                    continue;
                };
                let mut d = (*dep).clone();
                let kept: Vec<Value> = d["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["uid"].as_str() != Some(uid))
                    .cloned()
                    .collect();
                d["metadata"]["ownerReferences"] = json!(kept);
                t.put(&dgr, d);
            }
            fins.retain(|f| f != "orphan");
            self.put_finalizers(t, gr, obj, fins);
            return;
        }
        if fins.iter().any(|f| f == "foregroundDeletion") {
            let deps: Vec<_> = t
                .dependents_of(uid)
                .into_iter()
                .filter_map(|(dgr, dns, dname)| t.get(&dgr, &dns, &dname).map(|d| (dgr, d)))
                .collect();
            if let Some((dgr, dep)) = deps.iter().find(|(_, d)| !meta::is_deleting(d)) {
                self.mark_or_remove(t, dgr, dep);
            } else if deps.is_empty() {
                fins.retain(|f| f != "foregroundDeletion");
                self.put_finalizers(t, gr, obj, fins);
            }
            return;
        }
        if gr.group.is_empty() && gr.plural == "namespaces" {
            self.finalize_namespace(t, obj);
            return;
        }
        // A pod in graceful deletion is removed by its kubelet once its containers
        // stopped, not here.
        let graceful_pod = gr.group.is_empty()
            && gr.plural == "pods"
            && obj["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                > 0;
        if fins.is_empty() && !graceful_pod {
            self.remove_now(t, gr, obj);
        }
    }

    /// Deletes everything in a terminating namespace; once it is empty, clears the
    /// namespace's own finalizer and removes it (each write brings the namespace back to
    /// the collector).
    fn finalize_namespace(&self, t: &mut Txn<'_>, ns_obj: &Value) {
        let ns = meta::name(ns_obj).to_string();
        let mut pending = false;
        for gr in t.resources_in_namespace(&ns) {
            for obj in t.list(&gr, Some(&ns)) {
                // As stored now: marking one may have removed another (a CRD's objects).
                let Some(obj) = t.get(&gr, &ns, meta::name(&obj)) else {
                    continue;
                };
                if !meta::is_deleting(&obj) {
                    self.mark_or_remove(t, &gr, &obj);
                }
            }
            pending |= !t.list(&gr, Some(&ns)).is_empty();
        }
        if pending {
            return;
        }
        let spec_fins = ns_obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if spec_fins {
            let mut n = ns_obj.clone();
            n["spec"]["finalizers"] = json!([]);
            t.put(&ns_gr(), n);
        } else if meta::finalizers(ns_obj).is_empty() {
            self.remove_now(t, &ns_gr(), ns_obj);
        }
    }

    /// Deletes as the GC does (background): removed at once without finalizers, marked
    /// otherwise.
    fn mark_or_remove(&self, t: &mut Txn<'_>, gr: &GroupResource, obj: &Value) {
        if meta::finalizers(obj).is_empty() && !(gr.group.is_empty() && gr.plural == "namespaces") {
            self.remove_now(t, gr, obj);
        } else if !meta::is_deleting(obj) {
            let mut o = obj.clone();
            o["metadata"]["deletionTimestamp"] = json!(meta::now());
            o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if gr.group.is_empty() && gr.plural == "namespaces" {
                o["status"]["phase"] = json!("Terminating");
            }
            t.put(gr, o);
        }
    }

    fn put_finalizers(&self, t: &mut Txn<'_>, gr: &GroupResource, obj: &Value, fins: Vec<String>) {
        let mut o = obj.clone();
        meta::set_finalizers(&mut o, fins);
        t.put(gr, o);
    }

    fn remove_now(&self, t: &mut Txn<'_>, gr: &GroupResource, obj: &Value) {
        if let Some(removed) = t.remove(gr, meta::namespace(obj), meta::name(obj))
            && let Some(def) = self.registry().all().find(|d| d.key() == *gr).cloned()
        {
            self.after_remove(t, &def, &removed);
        }
    }
}

/// What a write can have given the collector work on.
fn affected(t: &Txn<'_>, touched: Touched) -> Vec<ObjectKey> {
    let terminating_namespace = |ns: &str| -> Option<ObjectKey> {
        if ns.is_empty() {
            return None;
        }
        t.get(&ns_gr(), "", ns)
            .filter(|n| meta::is_deleting(n))
            .map(|_| (ns_gr(), String::new(), ns.to_string()))
    };
    match touched {
        Touched::Written(key) => {
            let mut out = Vec::new();
            if let Some(obj) = t.get(&key.0, &key.1, &key.2) {
                // An owner in foreground deletion waits for this dependent.
                out.extend(
                    meta::owner_uids(&obj)
                        .iter()
                        .filter_map(|u| t.key_of_uid(u)),
                );
            }
            out.extend(terminating_namespace(&key.1));
            out.push(key);
            out
        }
        Touched::Removed { key, uid, owners } => {
            let mut out = t.dependents_of(&uid);
            out.extend(owners.iter().filter_map(|u| t.key_of_uid(u)));
            out.extend(terminating_namespace(&key.1));
            out
        }
    }
}

fn ns_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        plural: "namespaces".into(),
    }
}
