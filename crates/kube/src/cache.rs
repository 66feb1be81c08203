//! A cluster's shared watch cache: ONE set of watches per cluster — pods, claims and
//! StatefulSets in the namespaces asked for, PVs and VolumeAttachments cluster-wide — that
//! every app's waits share, so a wait costs no LIST and opens no watch of its own. It
//! answers an app's [`Side`] from the cached objects through the same conversion as a
//! fresh read ([`convert::side`]) and lets waiters sleep until something changed.
//!
//! # Freshness
//!
//! The cache lags the cluster, baton's own writes included, and two kinds are not ordered
//! against each other (a claim's `Bound` may arrive before the PV's create). That is safe
//! for what it is used for:
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
//! A shard is read only once its first LIST has been applied (an empty unsynced shard
//! would say "no pods"); after a relist the new contents replace the old at once, as
//! kube-rs's own reflector does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use baton_core::machine::Side;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::convert;

/// One watch's objects by name, with an optional index (pods by owner uid, attachments
/// by PV name).
struct Shard<K> {
    /// The first LIST has been applied.
    synced: bool,
    live: BTreeMap<String, Arc<K>>,
    /// Index key → names.
    by_key: BTreeMap<String, BTreeSet<String>>,
    /// A relist in progress (it replaces `live` when done).
    relisting: Option<BTreeMap<String, Arc<K>>>,
}

impl<K> Default for Shard<K> {
    fn default() -> Self {
        Self {
            synced: false,
            live: BTreeMap::new(),
            by_key: BTreeMap::new(),
            relisting: None,
        }
    }
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
    /// Its shard: per namespace for namespaced kinds.
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> &'a mut Shard<Self>;
}

impl Cached for Pod {
    fn index_keys(&self) -> Vec<String> {
        self.metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect()
    }
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> &'a mut Shard<Self> {
        objects
            .pods
            .entry(ns.unwrap_or_default().to_string())
            .or_default()
    }
}

impl Cached for PersistentVolumeClaim {
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> &'a mut Shard<Self> {
        objects
            .claims
            .entry(ns.unwrap_or_default().to_string())
            .or_default()
    }
}

impl Cached for StatefulSet {
    fn shard<'a>(objects: &'a mut Objects, ns: Option<&str>) -> &'a mut Shard<Self> {
        objects
            .sets
            .entry(ns.unwrap_or_default().to_string())
            .or_default()
    }
}

impl Cached for PersistentVolume {
    fn shard<'a>(objects: &'a mut Objects, _: Option<&str>) -> &'a mut Shard<Self> {
        &mut objects.pvs
    }
}

impl Cached for VolumeAttachment {
    fn index_keys(&self) -> Vec<String> {
        convert::attached_pv(self)
            .map(String::from)
            .into_iter()
            .collect()
    }
    fn shard<'a>(objects: &'a mut Objects, _: Option<&str>) -> &'a mut Shard<Self> {
        &mut objects.vas
    }
}

impl<K: Cached> Shard<K> {
    fn unindex(&mut self, name: &str) {
        if let Some(old) = self.live.get(name) {
            for k in old.index_keys() {
                if let Some(set) = self.by_key.get_mut(&k) {
                    set.remove(name);
                    if set.is_empty() {
                        self.by_key.remove(&k);
                    }
                }
            }
        }
    }

    fn index(&mut self, name: &str, obj: &K) {
        for k in obj.index_keys() {
            self.by_key.entry(k).or_default().insert(name.to_string());
        }
    }

    /// Applies one watch event; true when what readers see changed.
    fn apply(&mut self, event: watcher::Event<K>) -> bool {
        let name = |o: &K| o.meta().name.clone().unwrap_or_default();
        match event {
            watcher::Event::Apply(o) => {
                let n = name(&o);
                self.unindex(&n);
                self.index(&n, &o);
                self.live.insert(n, Arc::new(o));
                true
            }
            watcher::Event::Delete(o) => {
                let n = name(&o);
                self.unindex(&n);
                self.live.remove(&n);
                true
            }
            watcher::Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(o) => {
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&o), Arc::new(o));
                false
            }
            watcher::Event::InitDone => {
                let live = self.relisting.take().unwrap_or_default();
                self.by_key.clear();
                for (n, o) in &live {
                    self.index(n, o);
                }
                self.live = live;
                self.synced = true;
                true
            }
        }
    }

    /// The objects under an index key.
    fn indexed(&self, key: &str) -> impl Iterator<Item = (&String, &Arc<K>)> {
        self.by_key
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|n| self.live.get_key_value(n))
    }
}

/// Everything the watches hold.
#[derive(Default)]
struct Objects {
    pods: BTreeMap<String, Shard<Pod>>,
    claims: BTreeMap<String, Shard<PersistentVolumeClaim>>,
    sets: BTreeMap<String, Shard<StatefulSet>>,
    pvs: Shard<PersistentVolume>,
    vas: Shard<VolumeAttachment>,
}

impl Objects {
    /// The attachments of `pvs`; None until the attachment watch is synced.
    fn attachments(&self, pvs: &[String]) -> Option<Vec<VolumeAttachment>> {
        if !self.vas.synced {
            return None;
        }
        let by_name: BTreeMap<&String, &Arc<VolumeAttachment>> =
            pvs.iter().flat_map(|pv| self.vas.indexed(pv)).collect();
        Some(by_name.values().map(|a| a.as_ref().clone()).collect())
    }

    /// What the app's side is made of; None until every shard it reads is synced.
    fn parts<'a>(
        &'a self,
        ns: &str,
        sts: &str,
        claims: &'a [String],
        pvs: &'a [String],
    ) -> Option<Parts<'a>> {
        let o = self;
        let (pods, claim_shard, sets) = (o.pods.get(ns)?, o.claims.get(ns)?, o.sets.get(ns)?);
        if !(pods.synced && claim_shard.synced && sets.synced && o.pvs.synced && o.vas.synced) {
            return None;
        }
        let set = sets.live.get(sts);
        // Candidates only (the conversion filters): pods named `<sts>-…` or owned by the
        // set, and the attachments of the app's PVs.
        let prefix = format!("{sts}-");
        let mut app_pods: BTreeMap<&String, &Arc<Pod>> = pods
            .live
            .range(prefix.clone()..)
            .take_while(|(n, _)| n.starts_with(&prefix))
            .collect();
        if let Some(uid) = set.and_then(|s| s.metadata.uid.as_deref()) {
            app_pods.extend(pods.indexed(uid));
        }
        Some(Parts {
            set,
            pods: app_pods,
            attachments: pvs.iter().flat_map(|pv| o.vas.indexed(pv)).collect(),
            claims: claims
                .iter()
                .filter_map(|c| claim_shard.live.get(c))
                .collect(),
            pvs: pvs.iter().filter_map(|p| o.pvs.live.get(p)).collect(),
        })
    }
}

#[cfg(test)]
impl Objects {
    /// The app's side; None until every shard it reads is synced.
    fn side(&self, ns: &str, sts: &str, claims: &[String], pvs: &[String]) -> Option<Side> {
        Some(self.parts(ns, sts, claims, pvs)?.side(sts, claims, pvs))
    }
}

/// The cached objects an app's side is made of.
struct Parts<'a> {
    set: Option<&'a Arc<StatefulSet>>,
    pods: BTreeMap<&'a String, &'a Arc<Pod>>,
    attachments: BTreeMap<&'a String, &'a Arc<VolumeAttachment>>,
    claims: Vec<&'a Arc<PersistentVolumeClaim>>,
    pvs: Vec<&'a Arc<PersistentVolume>>,
}

impl Parts<'_> {
    fn side(&self, sts: &str, claims: &[String], pvs: &[String]) -> Side {
        convert::side(
            sts,
            self.set.map(|s| s.as_ref()),
            self.pods.values().map(|p| p.as_ref()),
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
        if let Some(s) = self.set {
            add(0, &s.metadata);
        }
        self.pods.values().for_each(|p| add(1, &p.metadata));
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
    namespaces: Mutex<BTreeSet<String>>,
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
        let cache = Self {
            client: client.clone(),
            context: context.to_string(),
            objects: Arc::default(),
            changes: watch::Sender::new(0),
            namespaces: Mutex::default(),
            tasks: Mutex::default(),
        };
        cache.spawn(Api::<PersistentVolume>::all(client.clone()), None);
        cache.spawn(Api::<VolumeAttachment>::all(client), None);
        cache
    }

    /// Watches pods, claims and StatefulSets in `ns` too (once).
    pub(crate) fn watch_namespace(&self, ns: &str) {
        let added = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ns.to_string());
        if added {
            let c = &self.client;
            self.spawn(Api::<Pod>::namespaced(c.clone(), ns), Some(ns));
            self.spawn(
                Api::<PersistentVolumeClaim>::namespaced(c.clone(), ns),
                Some(ns),
            );
            self.spawn(Api::<StatefulSet>::namespaced(c.clone(), ns), Some(ns));
        }
    }

    fn spawn<K: Cached>(&self, api: Api<K>, ns: Option<&str>) {
        let objects = self.objects.clone();
        let changes = self.changes.clone();
        let context = self.context.clone();
        let ns = ns.map(String::from);
        let kind = K::kind(&()).to_string();
        // The watcher relists and rewatches on its own (with backoff) after an error or
        // an expired resourceVersion; errors are only worth a debug line here.
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let task = tokio::spawn(async move {
            let mut warned = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        let changed = {
                            let mut o = objects.write().unwrap_or_else(PoisonError::into_inner);
                            K::shard(&mut o, ns.as_deref()).apply(event)
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

    /// The app's side as the cache holds it; None until every shard it reads is synced,
    /// and None also when none of the app's objects changed
    /// since the call that set `stamp` (a waiter woken by another app's change skips
    /// converting the same side again).
    pub(crate) fn side_if_changed(
        &self,
        ns: &str,
        sts: &str,
        claims: &[String],
        pvs: &[String],
        stamp: &mut Option<u64>,
    ) -> Option<Side> {
        let o = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        let parts = o.parts(ns, sts, claims, pvs)?;
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
        let shard = o.claims.get(ns).filter(|s| s.synced)?;
        shard.live.get(name).map(|c| c.as_ref().clone())
    }

    /// A PV as cached, if the PV watch is synced and it is there.
    pub(crate) fn volume(&self, name: &str) -> Option<PersistentVolume> {
        let o = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        if !o.pvs.synced {
            return None;
        }
        o.pvs.live.get(name).map(|p| p.as_ref().clone())
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

    #[test]
    fn a_relist_replaces_the_shard_and_its_index_at_once() {
        let mut s = Shard::<Pod>::default();
        assert!(!s.synced);
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(pod("db-0", "u1")));
        assert!(s.live.is_empty(), "a relist shows nothing until it is done");
        assert!(s.apply(watcher::Event::InitDone));
        assert!(s.synced);
        assert_eq!(s.indexed("u1").count(), 1);

        s.apply(watcher::Event::Apply(pod("db-0", "u2")));
        assert_eq!(s.indexed("u1").count(), 0, "the old owner is unindexed");
        assert_eq!(s.indexed("u2").count(), 1);

        // A relist that misses an object (deleted while the watch was down) drops it.
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(pod("db-1", "u2")));
        assert_eq!(
            s.live.len(),
            1,
            "the old contents stay until the relist is done"
        );
        s.apply(watcher::Event::InitDone);
        assert_eq!(s.live.keys().collect::<Vec<_>>(), ["db-1"]);
        assert_eq!(
            s.indexed("u2").map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["db-1"]
        );
        s.apply(watcher::Event::Delete(pod("db-1", "u2")));
        assert_eq!(s.indexed("u2").count(), 0);
    }

    fn synced<K: Cached>(objects: Vec<K>) -> Shard<K> {
        let mut s = Shard::default();
        s.apply(watcher::Event::Init);
        for o in objects {
            s.apply(watcher::Event::InitApply(o));
        }
        s.apply(watcher::Event::InitDone);
        s
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
            Some(&set),
            &pods,
            &vas,
            &claims,
            &pvs,
            &claim_names,
            &pv_names,
        );
        assert_eq!((fresh.pods, fresh.attachments), (3, 2));

        let mut objects = Objects {
            pvs: synced(pvs),
            vas: synced(vas),
            ..Objects::default()
        };
        assert_eq!(
            objects.side("db", "db", &claim_names, &pv_names),
            None,
            "namespace not watched"
        );
        objects.pods.insert("db".into(), synced(pods));
        objects.claims.insert("db".into(), synced(claims));
        objects.sets.insert("db".into(), Shard::default());
        assert_eq!(
            objects.side("db", "db", &claim_names, &pv_names),
            None,
            "not synced yet"
        );
        objects.sets.insert("db".into(), synced(vec![set]));
        assert_eq!(
            objects.side("db", "db", &claim_names, &pv_names),
            Some(fresh)
        );
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
            let mut o = Objects {
                pvs: synced(vec![]),
                vas: synced(vec![]),
                ..Objects::default()
            };
            o.pods.insert("ns".into(), synced(pods));
            o.claims.insert("ns".into(), synced(vec![]));
            o.sets.insert("ns".into(), synced(vec![]));
            o
        };
        let stamp = |o: &Objects| o.parts("ns", "db", &[], &[]).unwrap().stamp();
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
}
