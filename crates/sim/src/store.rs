//! The object store of one emulated cluster: objects by resource/namespace/name, one
//! resourceVersion counter for the whole cluster (as etcd's revision), and a bounded history
//! of changes that watches replay from. A watch from a version older than the history is
//! answered with 410 Gone, as after an etcd compaction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::GroupResource;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated (including deletionTimestamp set).
    Modified,
    /// Removed from the store.
    Deleted,
}

/// One committed change, as watches see it.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// Which resource.
    pub resource: GroupResource,
    /// Added, modified or deleted.
    pub kind: ChangeKind,
    /// The object after the change (for Deleted: the last state, with the deleting rv).
    pub object: Arc<Value>,
    /// The object before the change, for selector transitions in filtered watches.
    pub old: Option<Arc<Value>>,
}

/// A watch start older than the retained history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld {
    /// The oldest resourceVersion a watch can still start from.
    pub oldest: u64,
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

/// The changes to replay and the receiver for the live ones that follow.
pub type Subscription = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

#[derive(Debug)]
struct Inner {
    rv: u64,
    objects: HashMap<GroupResource, Objects>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Highest rv whose change has been dropped from history.
    compacted: u64,
}

/// The store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
}

/// Default number of changes kept for watch replay.
pub const DEFAULT_HISTORY: usize = 100_000;

impl Store {
    /// An empty store keeping `history_limit` changes for watches.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted: 0,
            }),
            tx,
        }
    }

    /// Runs `f` with exclusive access; every change it makes is committed in order.
    pub fn txn<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut txn = Txn {
            inner: guard,
            tx: &self.tx,
        };
        f(&mut txn)
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.txn(|t| t.current_rv())
    }

    /// Drops the whole change history, as an etcd compaction does: watches from any version
    /// before now get 410 Gone.
    pub fn compact(&self) {
        self.txn(|t| {
            t.inner.compacted = t.inner.rv;
            t.inner.history.clear();
        });
    }

    /// Starts a watch: the changes after `from` still in history, and a receiver for the
    /// ones after that, taken atomically so nothing is missed or seen twice.
    pub fn subscribe_from(
        &self,
        resource: &GroupResource,
        from: u64,
    ) -> Result<Subscription, TooOld> {
        self.txn(|t| {
            if from < t.inner.compacted {
                return Err(TooOld {
                    oldest: t.inner.compacted,
                });
            }
            let replay = t
                .inner
                .history
                .iter()
                .filter(|c| c.rv > from && &c.resource == resource)
                .cloned()
                .collect();
            Ok((replay, self.tx.subscribe()))
        })
    }

    /// Subscribes to every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Subscribes to changes from now on, with a snapshot of the current objects of one
    /// resource, atomically.
    pub fn subscribe_now(
        &self,
        resource: &GroupResource,
        namespace: Option<&str>,
    ) -> (u64, Vec<Arc<Value>>, broadcast::Receiver<Arc<Change>>) {
        self.txn(|t| {
            let objs = t.list(resource, namespace);
            (t.current_rv(), objs, self.tx.subscribe())
        })
    }

    /// The oldest resourceVersion a watch or continue token can still start from.
    pub fn oldest_rv(&self) -> u64 {
        self.txn(|t| t.inner.compacted)
    }
}

/// One page of a list.
#[derive(Debug, Default)]
pub struct Page {
    /// The objects on the page.
    pub items: Vec<Arc<Value>>,
    /// Whether matching objects follow.
    pub more: bool,
    /// Objects after the page, matching or not (the server's `remainingItemCount` when
    /// no selector is given).
    pub remaining: usize,
}

/// Exclusive access to the store for one logical operation.
#[derive(Debug)]
pub struct Txn<'a> {
    inner: MutexGuard<'a, Inner>,
    tx: &'a broadcast::Sender<Arc<Change>>,
}

impl Txn<'_> {
    /// The current resourceVersion (of the last change).
    pub fn current_rv(&self) -> u64 {
        self.inner.rv
    }

    /// One object.
    pub fn get(&self, resource: &GroupResource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.inner
            .objects
            .get(resource)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource, in namespace/name order; `namespace` None means all.
    pub fn list(&self, resource: &GroupResource, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(objs) = self.inner.objects.get(resource) else {
            return Vec::new();
        };
        match namespace {
            None => objs.values().cloned().collect(),
            Some(ns) => objs
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    /// One page of a list: up to `limit` objects (0 = all) that `keep` accepts, in
    /// namespace/name order, starting after `after`. Walks only as far as the page needs
    /// plus one more match; returns whether more matches follow and how many objects (of
    /// any kind of match) remain after the page.
    pub fn page(
        &self,
        resource: &GroupResource,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
        limit: usize,
        keep: &dyn Fn(&Value) -> bool,
    ) -> Page {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let Some(objs) = self.inner.objects.get(resource) else {
            return Page::default();
        };
        let start = match (after, namespace) {
            (Some(a), _) => Excluded(a.clone()),
            (None, Some(ns)) => Included((ns.to_string(), String::new())),
            (None, None) => Unbounded,
        };
        let mut range = objs
            .range((start, Unbounded))
            .take_while(|((n, _), _)| namespace.is_none_or(|ns| ns == n));
        let mut page = Page::default();
        for (_, v) in range.by_ref() {
            if !keep(v) {
                continue;
            }
            if limit > 0 && page.items.len() == limit {
                page.more = true;
                page.remaining = 1 + range.count();
                break;
            }
            page.items.push(v.clone());
        }
        page
    }

    /// Every resource that holds objects in `namespace` (for namespace deletion).
    pub fn resources_in_namespace(&self, namespace: &str) -> Vec<GroupResource> {
        self.inner
            .objects
            .iter()
            .filter(|(_, objs)| objs.keys().any(|(n, _)| n == namespace))
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Every stored resource.
    pub fn resources(&self) -> Vec<GroupResource> {
        self.inner.objects.keys().cloned().collect()
    }

    /// Writes an object (create or update), stamping the next resourceVersion into it.
    pub fn put(&mut self, resource: &GroupResource, mut obj: Value) -> Arc<Value> {
        let rv = self.inner.rv + 1;
        self.inner.rv = rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        let old = self
            .inner
            .objects
            .entry(resource.clone())
            .or_default()
            .insert(key, obj.clone());
        let kind = if old.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(Change {
            rv,
            resource: resource.clone(),
            kind,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Removes an object; the DELETED event carries its last state at a new resourceVersion.
    pub fn remove(
        &mut self,
        resource: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let old = self
            .inner
            .objects
            .get_mut(resource)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        let rv = self.inner.rv + 1;
        self.inner.rv = rv;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let last = Arc::new(last);
        self.record(Change {
            rv,
            resource: resource.clone(),
            kind: ChangeKind::Deleted,
            object: last.clone(),
            old: Some(old),
        });
        Some(last)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        if self.inner.history.len() >= self.inner.history_limit
            && let Some(dropped) = self.inner.history.pop_front()
        {
            self.inner.compacted = dropped.rv;
        }
        self.inner.history.push_back(change.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }
}

/// The store key of an object: (namespace or "", name).
pub fn key_of(obj: &Value) -> (String, String) {
    let md = &obj["metadata"];
    (
        md["namespace"].as_str().unwrap_or_default().to_string(),
        md["name"].as_str().unwrap_or_default().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gr() -> GroupResource {
        GroupResource {
            group: String::new(),
            plural: "configmaps".into(),
        }
    }

    fn cm(name: &str) -> Value {
        json!({ "metadata": { "name": name, "namespace": "default" } })
    }

    #[test]
    fn resource_versions_are_monotonic_and_stamped() {
        let s = Store::new(10);
        let a = s.txn(|t| t.put(&gr(), cm("a")));
        let b = s.txn(|t| t.put(&gr(), cm("b")));
        let ra: u64 = a["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let rb: u64 = b["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rb > ra);
        let d = s.txn(|t| t.remove(&gr(), "default", "a")).unwrap();
        let rd: u64 = d["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rd > rb);
        assert_eq!(s.current_rv(), rd);
    }

    #[test]
    fn history_replays_after_a_version_and_expires() {
        let s = Store::new(2);
        let start = s.current_rv();
        for n in ["a", "b", "c"] {
            s.txn(|t| t.put(&gr(), cm(n)));
        }
        // Three changes, two kept: starting from before the first one is too old.
        assert!(s.subscribe_from(&gr(), start).is_err());
        let (replay, _) = s.subscribe_from(&gr(), start + 1).unwrap();
        assert_eq!(replay.len(), 2);
        s.compact();
        assert!(s.subscribe_from(&gr(), start + 2).is_err());
    }

    #[test]
    fn list_is_scoped_to_namespace() {
        let s = Store::new(10);
        s.txn(|t| {
            t.put(
                &gr(),
                json!({ "metadata": { "name": "x", "namespace": "a" } }),
            );
            t.put(
                &gr(),
                json!({ "metadata": { "name": "y", "namespace": "b" } }),
            );
            t.put(
                &gr(),
                json!({ "metadata": { "name": "z", "namespace": "b" } }),
            );
        });
        assert_eq!(s.txn(|t| t.list(&gr(), Some("b")).len()), 2);
        assert_eq!(s.txn(|t| t.list(&gr(), None).len()), 3);
        let after = s.txn(|t| {
            t.page(
                &gr(),
                Some("b"),
                Some(&("b".into(), "y".into())),
                0,
                &|_| true,
            )
            .items
            .len()
        });
        assert_eq!(after, 1);
        let first = s.txn(|t| t.page(&gr(), None, None, 2, &|_| true));
        assert_eq!(
            (first.items.len(), first.more, first.remaining),
            (2, true, 1)
        );
        let selective = s.txn(|t| t.page(&gr(), None, None, 1, &|o| o["metadata"]["name"] != "y"));
        assert_eq!(selective.items.len(), 1);
        assert!(selective.more, "z still matches after x");
    }
}
