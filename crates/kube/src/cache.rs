//! A cluster's shared watch cache: ONE set of watches per cluster — pods, claims and
//! StatefulSets in the namespaces asked for, PVs and VolumeAttachments cluster-wide — that
//! every app's waits share, so a wait costs no LIST and opens no watch of its own. It
//! answers an app's [`Side`] from the cached objects through the same conversion as a
//! fresh read ([`convert::side`]) and lets waiters sleep until something changed.
//!
//! # What is kube-rs's and what is baton's
//!
//! Each watch is kube-runtime's [`watcher`] (LIST then WATCH, bookmarks, relist after a
//! 410 or an error, with backoff) through its [`reflector`] into a [`Store`], which holds
//! the objects by name and swaps a relist's contents in at once. Baton adds, from the
//! same event stream and after the store has applied each event:
//! - a **synced** flag per watch (set on its first `InitDone`; readers are synchronous and
//!   [`Store::wait_until_ready`] is not, and an indexed watch is synced only once its index
//!   is built too);
//! - **indexes** the store's hash map cannot answer: pods by owner uid and by
//!   `<sts>-<ordinal>` name, attachments by PV. An index holds the store's own `Arc`s and
//!   is rebuilt from the store on every `InitDone`, so it is one consistent past state of
//!   its watch (a relist replaces it at once, as the store is replaced);
//! - a **change counter** waiters subscribe to, bumped after both the store and the
//!   indexes hold an event, and the **stamp** of an app's objects.
//!
//! # Freshness
//!
//! The cache lags the cluster, baton's own writes included, and two kinds are not ordered
//! against each other (a claim's `Bound` may arrive before the PV's create), nor is an
//! index against its store for the instant between the store applying an event and baton
//! indexing it (an app's pods and attachments are read from the indexes only, so each is
//! still one past state of its watch). That is safe for what it is used for:
//! - **waits**: every wait's condition is false on the world as it was before the write
//!   that started it (pods 0, attachments 0, claims Bound to our PV, readyReplicas ≥ N with
//!   `observedGeneration == generation`), so a lagging cache only makes a wait longer,
//!   never ends it early;
//! - **the next step after a wait**, in a migration only, and never a deletion or a stop
//!   (see `baton_core::machine::trusts_cached_view`): an older view can at worst make the
//!   machine repeat a step, and every step is idempotent;
//! - **the source objects of green's claim and PV** (blue's claim and PV, which nothing
//!   changes during a move).
//!
//! A watch is read only once its first LIST has been applied (an empty unsynced store
//! would say "no pods"); after a relist the new contents replace the old at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use baton_core::machine::Side;
use baton_core::world::WorkloadKind;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::convert;

/// What baton keeps beside one watch's reflector [`Store`].
struct Shard<K: Cached> {
    /// The watch's objects, written by its reflector.
    store: Store<K>,
    /// The first LIST has been applied, to the store and to `by_key`.
    synced: bool,
    /// Index key → name → the store's object.
    by_key: BTreeMap<String, BTreeMap<String, Arc<K>>>,
    /// Name → the keys it is indexed under (the store already holds the new version
    /// when an event is indexed, so the old keys are kept here).
    keys: BTreeMap<String, Vec<String>>,
}

/// A kind the cache holds.
trait Cached:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Keys this object is indexed under.
    fn index_keys(&self) -> Vec<String> {
        Vec::new()
    }
    /// Its shard: per namespace for namespaced kinds (None for a namespace not watched).
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> Option<&'a mut Shard<Self>>;
    /// Drops what no reader of the cache looks at, before the store keeps the object:
    /// managedFields and kubectl's last-applied copy (often most of an object's bytes).
    fn trim(&mut self) {
        let meta = self.meta_mut();
        meta.managed_fields = None;
        if let Some(a) = meta.annotations.as_mut() {
            a.remove(LAST_APPLIED);
        }
    }
}

/// kubectl's copy of the last applied object, kept in an annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A pod's index key for its owner `uid`.
fn owner_key(uid: &str) -> String {
    format!("o/{uid}")
}

/// A pod's index key for the StatefulSet `sts` its name is an ordinal of.
fn ordinal_key(sts: &str) -> String {
    format!("n/{sts}")
}

impl Cached for Pod {
    fn index_keys(&self) -> Vec<String> {
        let owners = self.metadata.owner_references.iter().flatten();
        let mut keys: Vec<String> = owners.map(|o| owner_key(&o.uid)).collect();
        // `<sts>-<ordinal>`: the set is the name before the last dash.
        if let Some(name) = self.metadata.name.as_deref()
            && let Some((sts, _)) = name.rsplit_once('-')
            && convert::is_ordinal_pod(sts, name)
        {
            keys.push(ordinal_key(sts));
        }
        keys
    }
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> Option<&'a mut Shard<Self>> {
        Some(&mut objects.namespaces.get_mut(ns?)?.pods)
    }
    /// A pod is read for its name, labels, owners, phase and the claims its volumes
    /// mount ([`convert::side`]): its containers, annotations and container statuses go.
    fn trim(&mut self) {
        let meta = &mut self.metadata;
        meta.managed_fields = None;
        meta.annotations = None;
        if let Some(spec) = self.spec.as_mut() {
            spec.containers = Vec::new();
            spec.init_containers = None;
            spec.ephemeral_containers = None;
            spec.affinity = None;
            spec.tolerations = None;
        }
        if let Some(status) = self.status.as_mut() {
            status.container_statuses = None;
            status.init_container_statuses = None;
            status.ephemeral_container_statuses = None;
        }
    }
}

impl Cached for PersistentVolumeClaim {
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> Option<&'a mut Shard<Self>> {
        Some(&mut objects.namespaces.get_mut(ns?)?.claims)
    }
}

impl Cached for StatefulSet {
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> Option<&'a mut Shard<Self>> {
        Some(&mut objects.namespaces.get_mut(ns?)?.sets)
    }
}

impl Cached for Deployment {
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> Option<&'a mut Shard<Self>> {
        Some(&mut objects.namespaces.get_mut(ns?)?.deploys)
    }
}

impl Cached for PersistentVolume {
    fn shard<'a>(objects: &'a mut Objects, _: Option<&str>) -> Option<&'a mut Shard<Self>> {
        Some(&mut objects.pvs)
    }
}

impl Cached for VolumeAttachment {
    fn index_keys(&self) -> Vec<String> {
        convert::attached_pv(self)
            .map(String::from)
            .into_iter()
            .collect()
    }
    fn shard<'a>(objects: &'a mut Objects, _: Option<&str>) -> Option<&'a mut Shard<Self>> {
        Some(&mut objects.vas)
    }
}

fn name_of<K: Cached>(o: &K) -> String {
    o.meta().name.clone().unwrap_or_default()
}

impl<K: Cached> Shard<K> {
    /// An unsynced shard over a new store, and the store's writer for its reflector.
    fn new() -> (Self, Writer<K>) {
        let (store, writer) = reflector::store();
        let shard = Self {
            store,
            synced: false,
            by_key: BTreeMap::new(),
            keys: BTreeMap::new(),
        };
        (shard, writer)
    }

    fn unindex(&mut self, name: &str) {
        for k in self.keys.remove(name).into_iter().flatten() {
            if let Some(set) = self.by_key.get_mut(&k) {
                set.remove(name);
                if set.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
    }

    fn index(&mut self, name: String, obj: Arc<K>) {
        let keys = obj.index_keys();
        self.index_under(name, obj, keys);
    }

    /// [`Self::index`] with the object's keys already computed.
    fn index_under(&mut self, name: String, obj: Arc<K>, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        for k in &keys {
            let at = self.by_key.entry(k.clone()).or_default();
            at.insert(name.clone(), obj.clone());
        }
        self.keys.insert(name, keys);
    }

    /// Follows one watch event the reflector has just applied to the store; true when
    /// what readers see changed.
    fn apply(&mut self, event: &watcher::Event<K>) -> bool {
        match event {
            watcher::Event::Apply(o) => {
                let n = name_of(o);
                self.unindex(&n);
                let keys = o.index_keys();
                if !keys.is_empty() {
                    let obj = (self.store.get(&ObjectRef::from_obj(o)))
                        .unwrap_or_else(|| Arc::new(o.clone()));
                    self.index_under(n, obj, keys);
                }
                true
            }
            watcher::Event::Delete(o) => {
                self.unindex(&name_of(o));
                true
            }
            // The store buffers a relist and shows it at InitDone; so does the index.
            watcher::Event::Init | watcher::Event::InitApply(_) => false,
            watcher::Event::InitDone => {
                self.by_key.clear();
                self.keys.clear();
                for o in self.store.state() {
                    self.index(name_of(o.as_ref()), o);
                }
                self.synced = true;
                true
            }
        }
    }

    /// The objects under an index key.
    fn indexed(&self, key: &str) -> impl Iterator<Item = (&String, &Arc<K>)> {
        self.by_key.get(key).into_iter().flatten()
    }

    /// An object by name (in `ns` for a namespaced kind), if synced and there.
    fn get(&self, ns: Option<&str>, name: &str) -> Option<Arc<K>> {
        if !self.synced {
            return None;
        }
        let key = ObjectRef::new(name);
        self.store.get(&match ns {
            Some(ns) => key.within(ns),
            None => key,
        })
    }
}

/// A namespace's watches.
struct Namespace {
    pods: Shard<Pod>,
    claims: Shard<PersistentVolumeClaim>,
    sets: Shard<StatefulSet>,
    deploys: Shard<Deployment>,
    /// The Deployments' store writer until their watch is started (by the first
    /// Deployment app of the namespace).
    deploys_writer: Option<Writer<Deployment>>,
}

/// The writers of a namespace's stores that are watched at once, for their reflectors.
type NamespaceWriters = (
    Writer<Pod>,
    Writer<PersistentVolumeClaim>,
    Writer<StatefulSet>,
);

impl Namespace {
    fn new() -> (Self, NamespaceWriters) {
        let (pods, wp) = Shard::new();
        let (claims, wc) = Shard::new();
        let (sets, ws) = Shard::new();
        let (deploys, wd) = Shard::new();
        (
            Self {
                pods,
                claims,
                sets,
                deploys,
                deploys_writer: Some(wd),
            },
            (wp, wc, ws),
        )
    }
}

/// Everything the watches hold.
struct Objects {
    namespaces: BTreeMap<String, Namespace>,
    pvs: Shard<PersistentVolume>,
    vas: Shard<VolumeAttachment>,
}

impl Objects {
    /// No namespace yet, and the writers of the PV and attachment stores.
    fn new() -> (Self, Writer<PersistentVolume>, Writer<VolumeAttachment>) {
        let (pvs, wp) = Shard::new();
        let (vas, wv) = Shard::new();
        let o = Self {
            namespaces: BTreeMap::new(),
            pvs,
            vas,
        };
        (o, wp, wv)
    }

    /// The attachments of `pvs`; None until the attachment watch is synced.
    fn attachments(&self, pvs: &[String]) -> Option<Vec<VolumeAttachment>> {
        if !self.vas.synced {
            return None;
        }
        let by_name: BTreeMap<&String, &Arc<VolumeAttachment>> =
            pvs.iter().flat_map(|pv| self.vas.indexed(pv)).collect();
        Some(by_name.values().map(|a| a.as_ref().clone()).collect())
    }

    /// What the app's side is made of; None until every watch it reads is synced.
    fn parts<'a>(
        &'a self,
        ns: &str,
        kind: WorkloadKind,
        sts: &str,
        claims: &[String],
        pvs: &[String],
    ) -> Option<Parts<'a>> {
        let n = self.namespaces.get(ns)?;
        let workload_synced = match kind {
            WorkloadKind::StatefulSet => n.sets.synced,
            WorkloadKind::Deployment => n.deploys.synced,
            WorkloadKind::Claim => true,
        };
        if !(n.pods.synced
            && n.claims.synced
            && workload_synced
            && self.pvs.synced
            && self.vas.synced)
        {
            return None;
        }
        let (set, pods) = match kind {
            WorkloadKind::StatefulSet => {
                let set = n.sets.get(Some(ns), sts);
                // The app's pods: named `<sts>-<ordinal>` or owned by the set, from the
                // index only (one state of the pod watch).
                let mut app_pods: BTreeMap<&String, &Arc<Pod>> =
                    n.pods.indexed(&ordinal_key(sts)).collect();
                if let Some(uid) = set.as_ref().and_then(|s| s.metadata.uid.as_deref()) {
                    app_pods.extend(n.pods.indexed(&owner_key(uid)));
                }
                let pods = app_pods.into_values().cloned().collect();
                (set.map(Owned::StatefulSet), pods)
            }
            WorkloadKind::Deployment => {
                // Its pods are its ReplicaSets', told by its selector: the namespace's
                // pods are scanned (Deployments with volumes are few).
                let d = n.deploys.get(Some(ns), sts);
                let pods = match d.as_ref().and_then(|d| d.spec.as_ref()) {
                    Some(spec) => n
                        .pods
                        .store
                        .state()
                        .into_iter()
                        .filter(|p| convert::selects_pod(&spec.selector, p))
                        .collect(),
                    None => Vec::new(),
                };
                (d.map(Owned::Deployment), pods)
            }
            WorkloadKind::Claim => {
                // The pods that mount it: the namespace's are scanned.
                let pods = n
                    .pods
                    .store
                    .state()
                    .into_iter()
                    .filter(|p| convert::mounts(p, claims))
                    .collect();
                (Some(Owned::Claim), pods)
            }
        };
        Some(Parts {
            pods,
            attachments: pvs.iter().flat_map(|pv| self.vas.indexed(pv)).collect(),
            claims: claims
                .iter()
                .filter_map(|c| n.claims.get(Some(ns), c))
                .collect(),
            pvs: pvs.iter().filter_map(|p| self.pvs.get(None, p)).collect(),
            set,
        })
    }
}

/// The cached workload an app's side is made of.
enum Owned {
    StatefulSet(Arc<StatefulSet>),
    Deployment(Arc<Deployment>),
    Claim,
}

impl Owned {
    fn workload(&self) -> convert::Workload<'_> {
        match self {
            Self::StatefulSet(s) => convert::Workload::StatefulSet(s),
            Self::Deployment(d) => convert::Workload::Deployment(d),
            Self::Claim => convert::Workload::Claim,
        }
    }

    fn metadata(&self) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
        match self {
            Self::StatefulSet(s) => Some(&s.metadata),
            Self::Deployment(d) => Some(&d.metadata),
            Self::Claim => None,
        }
    }
}

#[cfg(test)]
impl Objects {
    /// The app's side; None until every watch it reads is synced.
    fn side(&self, ns: &str, sts: &str, claims: &[String], pvs: &[String]) -> Option<Side> {
        Some(
            self.parts(ns, WorkloadKind::StatefulSet, sts, claims, pvs)?
                .side(sts, claims, pvs),
        )
    }
}

/// The cached objects an app's side is made of.
struct Parts<'a> {
    set: Option<Owned>,
    pods: Vec<Arc<Pod>>,
    attachments: BTreeMap<&'a String, &'a Arc<VolumeAttachment>>,
    claims: Vec<Arc<PersistentVolumeClaim>>,
    pvs: Vec<Arc<PersistentVolume>>,
}

impl Parts<'_> {
    fn side(&self, sts: &str, claims: &[String], pvs: &[String]) -> Side {
        convert::side(
            sts,
            self.set.as_ref().map(Owned::workload),
            self.pods.iter().map(|p| p.as_ref()),
            self.attachments.values().map(|a| a.as_ref()),
            self.claims.iter().map(|c| c.as_ref()),
            self.pvs.iter().map(|p| p.as_ref()),
            claims,
            pvs,
        )
    }

    /// The objects' names and resourceVersions, hashed: equal stamps, equal sides (an
    /// object changes its resourceVersion with every write).
    fn stamp(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut add = |kind: u8, m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            (kind, &m.name, &m.resource_version).hash(&mut h);
        };
        if let Some(m) = self.set.as_ref().and_then(Owned::metadata) {
            add(0, m);
        }
        self.pods.iter().for_each(|p| add(1, &p.metadata));
        self.attachments.values().for_each(|a| add(2, &a.metadata));
        self.claims.iter().for_each(|c| add(3, &c.metadata));
        self.pvs.iter().for_each(|p| add(4, &p.metadata));
        h.finish()
    }
}

/// Whether a watch failed because RBAC denies it (403).
fn denied(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => crate::forbidden(e),
        watcher::Error::WatchError(s) => s.code == 403,
        watcher::Error::NoResourceVersion => false,
    }
}

/// A cluster's watches and what they hold. Dropping it stops the watches.
pub(crate) struct WatchCache {
    client: kube::Client,
    context: String,
    objects: Arc<RwLock<Objects>>,
    /// Bumped after every change readers can see.
    changes: watch::Sender<u64>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            t.abort();
        }
    }
}

impl WatchCache {
    /// Starts the cluster-wide watches (PVs, VolumeAttachments); namespaces are added by
    /// [`WatchCache::watch_namespace`]. Must be called within a tokio runtime.
    pub(crate) fn start(client: kube::Client, context: &str) -> Self {
        let (objects, pv_writer, va_writer) = Objects::new();
        let cache = Self {
            client: client.clone(),
            context: context.to_string(),
            objects: Arc::new(RwLock::new(objects)),
            changes: watch::Sender::new(0),
            tasks: Mutex::default(),
        };
        cache.spawn(
            Api::<PersistentVolume>::all(client.clone()),
            pv_writer,
            None,
        );
        cache.spawn(Api::<VolumeAttachment>::all(client), va_writer, None);
        cache
    }

    /// Watches pods, claims and StatefulSets in `ns` too (once), and its Deployments when
    /// an app there is one (once): a namespace of StatefulSets costs no Deployment watch.
    pub(crate) fn watch_namespace(&self, ns: &str, kind: WorkloadKind) {
        let (writers, deploys) = {
            let mut o = self.objects.write().unwrap_or_else(PoisonError::into_inner);
            let writers = if o.namespaces.contains_key(ns) {
                None
            } else {
                let (namespace, writers) = Namespace::new();
                o.namespaces.insert(ns.to_string(), namespace);
                Some(writers)
            };
            let deploys = match kind {
                WorkloadKind::Deployment => o
                    .namespaces
                    .get_mut(ns)
                    .and_then(|n| n.deploys_writer.take()),
                WorkloadKind::StatefulSet | WorkloadKind::Claim => None,
            };
            (writers, deploys)
        };
        let c = &self.client;
        if let Some((pods, claims, sets)) = writers {
            self.spawn(Api::<Pod>::namespaced(c.clone(), ns), pods, Some(ns));
            self.spawn(Api::namespaced(c.clone(), ns), claims, Some(ns));
            self.spawn(
                Api::<StatefulSet>::namespaced(c.clone(), ns),
                sets,
                Some(ns),
            );
        }
        if let Some(deploys) = deploys {
            self.spawn(
                Api::<Deployment>::namespaced(c.clone(), ns),
                deploys,
                Some(ns),
            );
        }
    }

    /// Runs one watch through its reflector into `writer`'s store, and keeps baton's
    /// shard (synced flag, index) and the change counter in step with it.
    fn spawn<K: Cached>(&self, api: Api<K>, writer: Writer<K>, ns: Option<&str>) {
        let objects = self.objects.clone();
        let changes = self.changes.clone();
        let context = self.context.clone();
        let ns = ns.map(String::from);
        let kind = K::kind(&()).to_string();
        // The watcher relists and rewatches on its own (with backoff) after an error or
        // an expired resourceVersion; errors are only worth a debug line here.
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(K::trim)
            .reflect(writer)
            .boxed();
        let task = tokio::spawn(async move {
            let mut warned = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        // The store holds the event already; the index follows, then
                        // the waiters are told.
                        let changed = {
                            let mut o = objects.write().unwrap_or_else(PoisonError::into_inner);
                            K::shard(&mut o, ns.as_deref()).is_some_and(|s| s.apply(&event))
                        };
                        if changed {
                            changes.send_modify(|n| *n = n.wrapping_add(1));
                        }
                    }
                    Err(error) if denied(&error) && !warned => {
                        // Waits still end (they re-read now and then), only slower: say
                        // why once, with the fix.
                        warned = true;
                        tracing::warn!(%context, %kind, ?ns, %error, "watch denied; waits fall back to reads every 5-30 s; baton's commands need the RBAC printed by `baton permissions -o yaml`");
                    }
                    Err(error) => {
                        tracing::debug!(%context, %kind, ?ns, %error, "watch failed; it restarts");
                    }
                }
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
    }

    /// A receiver that wakes after the next change; mark it seen before reading.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The app's side as the cache holds it; None until every watch it reads is synced,
    /// and None also when none of the app's objects changed
    /// since the call that set `stamp` (a waiter woken by another app's change skips
    /// converting the same side again).
    pub(crate) fn side_if_changed(
        &self,
        ns: &str,
        kind: WorkloadKind,
        sts: &str,
        claims: &[String],
        pvs: &[String],
        stamp: &mut Option<u64>,
    ) -> Option<Side> {
        let o = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        let parts = o.parts(ns, kind, sts, claims, pvs)?;
        let now = parts.stamp();
        if *stamp == Some(now) {
            return None;
        }
        *stamp = Some(now);
        Some(parts.side(sts, claims, pvs))
    }

    /// The VolumeAttachments of `pvs` as cached; None until the attachment watch is synced.
    pub(crate) fn attachments(&self, pvs: &[String]) -> Option<Vec<VolumeAttachment>> {
        self.objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .attachments(pvs)
    }

    /// A claim as cached, if its namespace is watched and synced and it is there.
    pub(crate) fn claim(&self, ns: &str, name: &str) -> Option<PersistentVolumeClaim> {
        let o = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        let claim = o.namespaces.get(ns)?.claims.get(Some(ns), name)?;
        Some(claim.as_ref().clone())
    }

    /// A PV as cached, if the PV watch is synced and it is there.
    pub(crate) fn volume(&self, name: &str) -> Option<PersistentVolume> {
        let o = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        Some(o.pvs.get(None, name)?.as_ref().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, owner: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "db",
              "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x", "uid": owner }] }
        }))
        .unwrap()
    }

    /// A shard and its store's writer, fed as the watch task feeds them: the reflector's
    /// writer first, then the shard.
    struct Fed<K: Cached> {
        shard: Shard<K>,
        writer: Writer<K>,
    }

    impl<K: Cached> Fed<K> {
        fn new() -> Self {
            let (shard, writer) = Shard::new();
            Self { shard, writer }
        }
        fn feed(&mut self, event: watcher::Event<K>) -> bool {
            self.writer.apply_watcher_event(&event);
            self.shard.apply(&event)
        }
        fn names(&self, key: &str) -> Vec<&str> {
            let names = self.shard.indexed(key).map(|(n, _)| n.as_str());
            names.collect()
        }
    }

    #[test]
    fn a_relist_replaces_the_store_and_the_index_at_once() {
        let mut s = Fed::<Pod>::new();
        assert!(!s.shard.synced);
        assert!(!s.feed(watcher::Event::Init));
        assert!(!s.feed(watcher::Event::InitApply(pod("db-0", "u1"))));
        assert!(
            s.shard.store.is_empty(),
            "a relist shows nothing until done"
        );
        assert!(s.names(&owner_key("u1")).is_empty());
        assert_eq!(s.shard.get(Some("db"), "db-0"), None, "unsynced");
        assert!(s.feed(watcher::Event::InitDone));
        assert!(s.shard.synced);
        assert_eq!(s.names(&owner_key("u1")), ["db-0"]);
        assert_eq!(s.names(&ordinal_key("db")), ["db-0"]);
        assert!(s.shard.get(Some("db"), "db-0").is_some());

        assert!(s.feed(watcher::Event::Apply(pod("db-0", "u2"))));
        assert!(
            s.names(&owner_key("u1")).is_empty(),
            "the old owner is unindexed"
        );
        assert_eq!(s.names(&owner_key("u2")), ["db-0"]);
        let indexed = s.shard.indexed(&owner_key("u2")).next().unwrap().1;
        let stored = s.shard.get(Some("db"), "db-0").unwrap();
        assert!(
            Arc::ptr_eq(indexed, &stored),
            "the index holds the store's object"
        );

        // A relist that misses an object (deleted while the watch was down) drops it.
        s.feed(watcher::Event::Init);
        s.feed(watcher::Event::InitApply(pod("db-1", "u2")));
        assert_eq!(s.shard.store.len(), 1);
        assert_eq!(
            s.names(&ordinal_key("db")),
            ["db-0"],
            "the old contents stay until the relist is done"
        );
        s.feed(watcher::Event::InitDone);
        let stored: Vec<String> = s
            .shard
            .store
            .state()
            .iter()
            .map(|p| name_of(p.as_ref()))
            .collect();
        assert_eq!(stored, ["db-1"]);
        assert_eq!(s.names(&owner_key("u2")), ["db-1"]);
        assert_eq!(s.names(&ordinal_key("db")), ["db-1"]);
        s.feed(watcher::Event::Delete(pod("db-1", "u2")));
        assert!(s.names(&owner_key("u2")).is_empty());
        assert!(s.names(&ordinal_key("db")).is_empty());
        assert!(s.shard.by_key.is_empty() && s.shard.keys.is_empty());
    }

    #[test]
    fn pods_are_indexed_by_owner_and_by_the_set_their_name_is_an_ordinal_of() {
        let keys = |name: &str| {
            let mut p = pod(name, "u");
            p.metadata.owner_references = None;
            p.index_keys()
        };
        assert_eq!(keys("db-0"), [ordinal_key("db")]);
        assert_eq!(keys("db-extra-12"), [ordinal_key("db-extra")]);
        assert!(keys("db-x").is_empty() && keys("db-").is_empty() && keys("db").is_empty());
        assert_eq!(
            pod("odd", "u1").index_keys(),
            [owner_key("u1")],
            "owned, not an ordinal"
        );
    }

    fn synced<K: Cached>(objects: Vec<K>) -> Shard<K> {
        let mut s = Fed::new();
        s.feed(watcher::Event::Init);
        for o in objects {
            s.feed(watcher::Event::InitApply(o));
        }
        s.feed(watcher::Event::InitDone);
        s.shard
    }

    /// Objects with the PV and attachment watches synced and no namespace.
    fn cluster_synced(pvs: Vec<PersistentVolume>, vas: Vec<VolumeAttachment>) -> Objects {
        let (mut o, _, _) = Objects::new();
        o.pvs = synced(pvs);
        o.vas = synced(vas);
        o
    }

    #[test]
    fn the_cached_side_is_the_fresh_reads_side() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": { "name": "db", "namespace": "db", "uid": "set-uid", "generation": 2 },
            "spec": { "replicas": 0, "selector": {}, "serviceName": "db", "template": {} },
            "status": { "replicas": 1, "readyReplicas": 0, "observedGeneration": 2 }
        }))
        .unwrap();
        let pods = vec![
            pod("db-0", "set-uid"),
            pod("db-1", "other"),       // by name
            pod("odd-name", "set-uid"), // by owner
            pod("db-extra-0", "other"), // another set's
            pod("dbx-0", "other"),
        ];
        let va = |name: &str, pv: &str| -> VolumeAttachment {
            serde_json::from_value(json!({ "metadata": { "name": name },
              "spec": { "attacher": "ebs.csi.aws.com", "nodeName": "n1", "source": { "persistentVolumeName": pv } } }))
            .unwrap()
        };
        let vas = vec![va("a1", "pv-a"), va("a2", "pv-b"), va("a3", "pv-other")];
        let claim = |name: &str| -> PersistentVolumeClaim {
            serde_json::from_value(json!({ "metadata": { "name": name, "namespace": "db", "uid": format!("{name}-uid") },
              "spec": { "volumeName": "pv-a" }, "status": { "phase": "Bound" } }))
            .unwrap()
        };
        let claims = vec![claim("data-db-0"), claim("data-other-0")];
        let pv = |name: &str| -> PersistentVolume {
            serde_json::from_value(json!({ "metadata": { "name": name },
              "spec": { "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": format!("vol-{name}") } } }))
            .unwrap()
        };
        let pvs = vec![pv("pv-a"), pv("pv-b"), pv("pv-other")];
        let (claim_names, pv_names) = (
            vec!["data-db-0".to_string(), "data-db-1".to_string()],
            vec!["pv-a".to_string(), "pv-b".to_string()],
        );
        let fresh = convert::side(
            "db",
            Some(convert::Workload::StatefulSet(&set)),
            &pods,
            &vas,
            &claims,
            &pvs,
            &claim_names,
            &pv_names,
        );
        assert_eq!((fresh.pods, fresh.attachments), (3, 2));

        let mut objects = cluster_synced(pvs, vas);
        assert_eq!(
            objects.side("db", "db", &claim_names, &pv_names),
            None,
            "namespace not watched"
        );
        let namespace = Namespace {
            pods: synced(pods),
            claims: synced(claims),
            sets: Shard::new().0,
            deploys: synced(vec![]),
            deploys_writer: None,
        };
        objects.namespaces.insert("db".into(), namespace);
        assert_eq!(
            objects.side("db", "db", &claim_names, &pv_names),
            None,
            "not synced yet"
        );
        objects.namespaces.get_mut("db").unwrap().sets = synced(vec![set]);
        assert_eq!(
            objects.side("db", "db", &claim_names, &pv_names),
            Some(fresh)
        );
        let attached = objects.attachments(&["pv-b".into()]).unwrap();
        assert_eq!(attached.len(), 1);
        assert_eq!(attached[0].metadata.name.as_deref(), Some("a2"));
    }

    #[test]
    fn a_stamp_changes_with_the_apps_objects_only() {
        let pod = |name: &str, rv: &str| -> Pod {
            serde_json::from_value(
                json!({ "metadata": { "name": name, "namespace": "ns", "resourceVersion": rv } }),
            )
            .unwrap()
        };
        let objects = |pods: Vec<Pod>| {
            let mut o = cluster_synced(vec![], vec![]);
            let namespace = Namespace {
                pods: synced(pods),
                claims: synced(vec![]),
                sets: synced(vec![]),
                deploys: synced(vec![]),
                deploys_writer: None,
            };
            o.namespaces.insert("ns".into(), namespace);
            o
        };
        let stamp = |o: &Objects| {
            o.parts("ns", WorkloadKind::StatefulSet, "db", &[], &[])
                .unwrap()
                .stamp()
        };
        let base = stamp(&objects(vec![pod("db-0", "1"), pod("web-0", "1")]));
        assert_eq!(
            base,
            stamp(&objects(vec![pod("db-0", "1"), pod("web-0", "7")])),
            "another app's pod changed"
        );
        assert_ne!(
            base,
            stamp(&objects(vec![pod("db-0", "2"), pod("web-0", "1")])),
            "its pod changed"
        );
        assert_ne!(
            base,
            stamp(&objects(vec![pod("web-0", "1")])),
            "its pod went"
        );
    }

    #[test]
    fn a_trimmed_object_reads_as_the_whole_one() {
        let whole: Pod = serde_json::from_value(json!({
            "metadata": { "name": "db-0", "namespace": "db", "resourceVersion": "9",
              "labels": { "app": "db" },
              "annotations": { LAST_APPLIED: "{\"big\":1}", "note": "x" },
              "managedFields": [{ "manager": "kubectl", "operation": "Apply" }],
              "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u" }] },
            "spec": { "containers": [{ "name": "c", "image": "postgres", "env": [{ "name": "A", "value": "1" }] }],
              "nodeName": "n1",
              "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "data-db-0" } }] },
            "status": { "phase": "Running", "containerStatuses": [{ "name": "c", "image": "postgres",
              "imageID": "", "ready": true, "restartCount": 0 }] }
        }))
        .unwrap();
        let mut trimmed = whole.clone();
        Cached::trim(&mut trimmed);
        assert!(trimmed.metadata.managed_fields.is_none());
        assert!(trimmed.spec.as_ref().unwrap().containers.is_empty());
        let claims = ["data-db-0".to_string()];
        assert_eq!(
            convert::mounts(&trimmed, &claims),
            convert::mounts(&whole, &claims)
        );
        assert!(convert::mounts(&trimmed, &claims));
        let selector = serde_json::from_value(json!({ "matchLabels": { "app": "db" } })).unwrap();
        assert!(convert::selects_pod(&selector, &trimmed));
        assert_eq!(
            trimmed.metadata.owner_references,
            whole.metadata.owner_references
        );
        assert_eq!(
            trimmed.metadata.resource_version,
            whole.metadata.resource_version
        );
        assert_eq!(
            trimmed.status.as_ref().unwrap().phase,
            whole.status.as_ref().unwrap().phase
        );

        let mut claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": "data-db-0", "annotations": { LAST_APPLIED: "{}", "keep": "y" },
              "managedFields": [{ "manager": "kubectl" }] },
            "spec": { "volumeName": "pv-a" }
        }))
        .unwrap();
        Cached::trim(&mut claim);
        assert!(claim.metadata.managed_fields.is_none());
        let kept: Vec<&String> = claim
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kept, ["keep"]);
    }
}
