//! What the garbage collector and namespace controller do, run synchronously after every
//! deletion: finalize objects whose finalizers are gone, orphan or delete dependents by
//! `ownerReferences` (Orphan/Background/Foreground propagation), and empty terminating
//! namespaces before removing them.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::meta;
use crate::resources::GroupResource;
use crate::store::Txn;

/// Upper bound on passes: each pass makes progress or stops, so this only guards bugs.
const MAX_PASSES: usize = 10_000;

impl Cluster {
    /// Runs collection passes until nothing changes.
    pub(crate) fn collect_garbage(&self, t: &mut Txn<'_>) {
        for _ in 0..MAX_PASSES {
            if !self.gc_pass(t) {
                return;
            }
        }
        tracing::error!(cluster = %self.spec.name, "garbage collection did not converge");
    }

    fn gc_pass(&self, t: &mut Txn<'_>) -> bool {
        let all: Vec<(GroupResource, Arc<Value>)> = t
            .resources()
            .into_iter()
            .flat_map(|r| t.list(&r, None).into_iter().map(move |o| (r.clone(), o)))
            .collect();
        let uids: HashSet<&str> = all.iter().map(|(_, o)| meta::uid(o)).collect();
        let dependents_of = |uid: &str| -> Vec<&(GroupResource, Arc<Value>)> {
            all.iter()
                .filter(|(_, o)| meta::owner_uids(o).iter().any(|u| u == uid))
                .collect()
        };
        for (gr, obj) in &all {
            if !meta::is_deleting(obj) {
                // Background propagation: dependents whose owners are all gone go too.
                let owners = meta::owner_uids(obj);
                if !owners.is_empty() && owners.iter().all(|u| !uids.contains(u.as_str())) {
                    self.mark_or_remove(t, gr, obj);
                    return true;
                }
                continue;
            }
            let mut fins = meta::finalizers(obj);
            if fins.iter().any(|f| f == "orphan") {
                for (dgr, dep) in dependents_of(meta::uid(obj)) {
                    let mut d = (**dep).clone();
                    let kept: Vec<Value> = d["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["uid"].as_str() != Some(meta::uid(obj)))
                        .cloned()
                        .collect();
                    d["metadata"]["ownerReferences"] = json!(kept);
                    t.put(dgr, d);
                }
                fins.retain(|f| f != "orphan");
                self.put_finalizers(t, gr, obj, fins);
                return true;
            }
            if fins.iter().any(|f| f == "foregroundDeletion") {
                let deps = dependents_of(meta::uid(obj));
                if let Some((dgr, dep)) = deps.iter().find(|(_, d)| !meta::is_deleting(d)) {
                    self.mark_or_remove(t, dgr, dep);
                    return true;
                }
                if deps.is_empty() {
                    fins.retain(|f| f != "foregroundDeletion");
                    self.put_finalizers(t, gr, obj, fins);
                    return true;
                }
                continue;
            }
            if gr.group.is_empty() && gr.plural == "namespaces" {
                if self.finalize_namespace(t, obj) {
                    return true;
                }
                continue;
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
                return true;
            }
        }
        false
    }

    /// Deletes everything in a terminating namespace; once it is empty, clears the
    /// namespace's own finalizer and removes it. Returns whether anything changed.
    fn finalize_namespace(&self, t: &mut Txn<'_>, ns_obj: &Value) -> bool {
        let ns = meta::name(ns_obj).to_string();
        let mut pending = false;
        for gr in t.resources_in_namespace(&ns) {
            for obj in t.list(&gr, Some(&ns)) {
                pending = true;
                if !meta::is_deleting(&obj) {
                    self.mark_or_remove(t, &gr, &obj);
                    return true;
                }
            }
        }
        if pending {
            return false;
        }
        let spec_fins = ns_obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if spec_fins {
            let mut n = ns_obj.clone();
            n["spec"]["finalizers"] = json!([]);
            t.put(&ns_gr(), n);
            return true;
        }
        if meta::finalizers(ns_obj).is_empty() {
            self.remove_now(t, &ns_gr(), ns_obj);
            return true;
        }
        false
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

fn ns_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        plural: "namespaces".into(),
    }
}
