//! The object store of one emulated cluster: objects by resource/namespace/name, one
//! resourceVersion counter for the whole cluster (as etcd's revision), and a bounded history
//! of changes that watches replay from. A watch from a version older than the history is
//! answered with 410 Gone, as after an etcd compaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::meta;
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

/// Where an object is: its resource, namespace (or "") and name.
pub type ObjectKey = (GroupResource, String, String);

/// A write of the current transaction, for the garbage collector to look at.
#[derive(Debug, Clone)]
pub enum Touched {
    /// Created or updated.
    Written(ObjectKey),
    /// Removed: where it was, its uid and its owners' uids.
    Removed {
        /// Where it was.
        key: ObjectKey,
        /// Its uid.
        uid: String,
        /// The uids in its `ownerReferences`.
        owners: Vec<String>,
    },
}

/// Objects by uid and by owner, kept with every write, so that the garbage collector
/// finds an object's owners and dependents without scanning every object.
#[derive(Debug, Default)]
struct OwnerIndex {
    by_uid: HashMap<String, ObjectKey>,
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
}

impl OwnerIndex {
    fn add(&mut self, key: &ObjectKey, obj: &Value) {
        let uid = meta::uid(obj);
        if !uid.is_empty() {
            self.by_uid.insert(uid.to_string(), key.clone());
        }
        for owner in meta::owner_uids(obj) {
            self.dependents
                .entry(owner)
                .or_default()
                .insert(key.clone());
        }
    }

    fn drop(&mut self, key: &ObjectKey, obj: &Value) {
        let uid = meta::uid(obj);
        if self.by_uid.get(uid) == Some(key) {
            self.by_uid.remove(uid);
        }
        for owner in meta::owner_uids(obj) {
            if let Some(deps) = self.dependents.get_mut(&owner) {
                deps.remove(key);
                if deps.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
    }
}

/// What an object uses, for [`UseIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Use {
    /// A pod mounting a PersistentVolumeClaim (in its namespace).
    Claim,
    /// A VolumeAttachment attaching a PersistentVolume.
    Volume,
}

/// Objects by what they use, kept with every write as the owners are: pods by the claims
/// they mount, VolumeAttachments by their PV. So the kubelets and the attacher find a
/// volume's users without scanning every pod or attachment of a large estate, as an
/// informer's indexer does.
#[derive(Debug, Default)]
struct UseIndex {
    users: HashMap<(Use, String, String), BTreeSet<ObjectKey>>,
}

impl UseIndex {
    /// What `obj` (of `resource`) uses: (use, namespace, name).
    fn uses(resource: &GroupResource, obj: &Value) -> Vec<(Use, String, String)> {
        match (resource.group.as_str(), resource.plural.as_str()) {
            ("", "pods") => {
                let ns = meta::namespace(obj);
                obj["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
                    .map(|c| (Use::Claim, ns.to_string(), c.to_string()))
                    .collect()
            }
            ("storage.k8s.io", "volumeattachments") => {
                obj["spec"]["source"]["persistentVolumeName"]
                    .as_str()
                    .map(|pv| (Use::Volume, String::new(), pv.to_string()))
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn add(&mut self, key: &ObjectKey, obj: &Value) {
        for u in Self::uses(&key.0, obj) {
            self.users.entry(u).or_default().insert(key.clone());
        }
    }

    fn drop(&mut self, key: &ObjectKey, obj: &Value) {
        for u in Self::uses(&key.0, obj) {
            if let Some(users) = self.users.get_mut(&u) {
                users.remove(key);
                if users.is_empty() {
                    self.users.remove(&u);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    rv: u64,
    objects: HashMap<GroupResource, Objects>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Highest rv whose change has been dropped from history.
    compacted: u64,
    owners: OwnerIndex,
    uses: UseIndex,
    /// The writes of the transaction in progress (cleared when one starts).
    touched: Vec<Touched>,
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
                owners: OwnerIndex::default(),
                uses: UseIndex::default(),
                touched: Vec::new(),
            }),
            tx,
        }
    }

    /// Runs `f` with exclusive access; every change it makes is committed in order.
    pub fn txn<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.touched.clear();
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
        let from = (namespace.to_string(), String::new());
        self.inner
            .objects
            .iter()
            .filter(|(_, objs)| {
                objs.range(from.clone()..)
                    .next()
                    .is_some_and(|((n, _), _)| n == namespace)
            })
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Where the object with `uid` is, if it exists.
    pub fn key_of_uid(&self, uid: &str) -> Option<ObjectKey> {
        self.inner.owners.by_uid.get(uid).cloned()
    }

    /// The objects that use `name` (in `namespace`, or "") as `how`: the pods that
    /// mount a claim, the VolumeAttachments of a PV.
    pub fn users(&self, how: Use, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        let Some(keys) = self
            .inner
            .uses
            .users
            .get(&(how, namespace.to_string(), name.to_string()))
        else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|(r, ns, n)| {
                self.inner
                    .objects
                    .get(r)?
                    .get(&(ns.clone(), n.clone()))
                    .cloned()
            })
            .collect()
    }

    /// Where the objects that name `uid` as an owner are.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjectKey> {
        self.inner
            .owners
            .dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The writes of this transaction not taken yet, oldest first.
    pub fn take_touched(&mut self) -> Vec<Touched> {
        std::mem::take(&mut self.inner.touched)
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
            .insert(key.clone(), obj.clone());
        let full = (resource.clone(), key.0, key.1);
        if let Some(old) = &old {
            self.inner.owners.drop(&full, old);
            self.inner.uses.drop(&full, old);
        }
        self.inner.owners.add(&full, &obj);
        self.inner.uses.add(&full, &obj);
        self.inner.touched.push(Touched::Written(full));
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
        let full = (resource.clone(), namespace.to_string(), name.to_string());
        self.inner.owners.drop(&full, &old);
        self.inner.uses.drop(&full, &old);
        self.inner.touched.push(Touched::Removed {
            key: full,
            uid: meta::uid(&old).to_string(),
            owners: meta::owner_uids(&old),
        });
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
    fn the_owner_index_follows_every_write() {
        let s = Store::new(10);
        let owned = |uid: &str, owner: &str| {
            json!({ "metadata": { "name": uid, "namespace": "default", "uid": uid,
                                  "ownerReferences": [{ "uid": owner }] } })
        };
        s.txn(|t| {
            t.put(
                &gr(),
                json!({ "metadata": { "name": "o", "namespace": "default", "uid": "o" } }),
            );
            t.put(&gr(), owned("a", "o"));
            t.put(&gr(), owned("b", "o"));
            let touched = t.take_touched();
            assert_eq!(touched.len(), 3, "{touched:?}");
            assert!(t.take_touched().is_empty(), "taken once");
        });
        let key = |n: &str| (gr(), "default".to_string(), n.to_string());
        s.txn(|t| {
            assert!(
                t.take_touched().is_empty(),
                "a transaction starts with none"
            );
            assert_eq!(t.key_of_uid("o"), Some(key("o")));
            assert_eq!(t.dependents_of("o"), vec![key("a"), key("b")]);
            // b's owner changes; a goes.
            t.put(&gr(), owned("b", "x"));
            t.remove(&gr(), "default", "a");
            assert_eq!(t.dependents_of("o"), Vec::<ObjectKey>::new());
            assert_eq!(t.dependents_of("x"), vec![key("b")]);
            assert_eq!(t.key_of_uid("a"), None);
            match &t.take_touched()[1] {
                Touched::Removed {
                    key: k,
                    uid,
                    owners,
                } => {
                    assert_eq!(
                        (k, uid.as_str(), owners.as_slice()),
                        (&key("a"), "a", &["o".to_string()][..])
                    );
                }
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn the_use_index_follows_every_write() {
        let s = Store::new(10);
        let pods = GroupResource {
            group: String::new(),
            plural: "pods".into(),
        };
        let vas = GroupResource {
            group: "storage.k8s.io".into(),
            plural: "volumeattachments".into(),
        };
        let pod = |claim: &str| json!({ "metadata": { "name": "web-0", "namespace": "a" }, "spec": { "volumes": [{ "name": "d", "persistentVolumeClaim": { "claimName": claim } }] } });
        let names = |objs: Vec<Arc<Value>>| -> Vec<String> {
            objs.iter().map(|o| meta::name(o).to_string()).collect()
        };
        s.txn(|t| {
            t.put(&pods, pod("data-web-0"));
            t.put(&vas, json!({ "metadata": { "name": "csi-1" }, "spec": { "source": { "persistentVolumeName": "pv-1" } } }));
            assert_eq!(names(t.users(Use::Claim, "a", "data-web-0")), ["web-0"]);
            assert!(t.users(Use::Claim, "b", "data-web-0").is_empty(), "by namespace");
            assert_eq!(names(t.users(Use::Volume, "", "pv-1")), ["csi-1"]);
            // An update moves it; a removal drops it.
            t.put(&pods, pod("other"));
            assert!(t.users(Use::Claim, "a", "data-web-0").is_empty());
            assert_eq!(names(t.users(Use::Claim, "a", "other")), ["web-0"]);
            t.remove(&vas, "", "csi-1");
            assert!(t.users(Use::Volume, "", "pv-1").is_empty());
        });
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
