//! Kubernetes objects → baton's world views (`baton_core::world`). Pure functions, so the
//! rules (which backend a PV has, which zone pins it, what a quantity means) are tested
//! without a cluster.

use std::collections::BTreeMap;

use baton_core::machine::Side;
use baton_core::quantity::parse_bytes;
use baton_core::world::{
    ClaimRef, ClaimTemplate, Node, Pv, Pvc, ReclaimPolicy, RetentionPolicy, StatefulSet,
    StorageClass, VolumeSource, WorkloadKind,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet as K8sStatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Node as K8sNode, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod,
    PodSpec, PodTemplateSpec,
};
use k8s_openapi::api::storage::v1::{StorageClass as K8sStorageClass, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// Annotation holding the reclaim policy a PV had before baton set Retain.
pub const ORIGINAL_RECLAIM: &str = "baton.io/original-reclaim-policy";
/// Annotation holding the claim retention policy a StatefulSet had before baton set Retain.
pub const ORIGINAL_RETENTION: &str = "baton.io/original-retention-policy";
/// Annotation naming the migration that created an object in green.
pub const MIGRATION: &str = "baton.io/migration";
/// Annotation on green's objects naming where they came from (`context/uid`).
pub const MIGRATED_FROM: &str = "baton.io/migrated-from";

const ZONE_KEYS: [&str; 3] = [
    "topology.ebs.csi.aws.com/zone",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
];

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a String> {
    meta.annotations.as_ref().and_then(|a| a.get(key))
}

fn quantity(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> Option<u64> {
    q.and_then(|q| parse_bytes(&q.0))
}

/// An in-tree volume id `aws://us-east-1a/vol-…` (or bare `vol-…`) → (zone, id).
pub fn parse_in_tree_id(id: &str) -> (Option<String>, String) {
    match id.strip_prefix("aws://") {
        Some(rest) => match rest.rsplit_once('/') {
            Some((zone, vol)) if !zone.is_empty() => (Some(zone.to_string()), vol.to_string()),
            Some((_, vol)) => (None, vol.to_string()),
            None => (None, rest.to_string()),
        },
        None => (None, id.to_string()),
    }
}

/// A PV as baton sees it.
pub fn pv(p: &PersistentVolume) -> Pv {
    let spec = p.spec.clone().unwrap_or_default();
    let (mut volume_id, mut source, mut zone, mut other) = (None, None, None, None);
    if let Some(csi) = &spec.csi {
        if csi.driver == "ebs.csi.aws.com" {
            volume_id = Some(csi.volume_handle.clone());
            source = Some(VolumeSource::Csi);
        } else {
            other = Some(format!("csi:{}", csi.driver));
        }
    } else if let Some(ebs) = &spec.aws_elastic_block_store {
        let (z, id) = parse_in_tree_id(&ebs.volume_id);
        volume_id = Some(id);
        source = Some(VolumeSource::InTree);
        zone = z;
    } else {
        other = Some(backend_name(&spec));
    }
    if let Some(terms) = spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .map(|r| &r.node_selector_terms)
    {
        for term in terms {
            for e in term.match_expressions.iter().flatten() {
                if ZONE_KEYS.contains(&e.key.as_str())
                    && e.operator == "In"
                    && let Some(z) = e.values.as_ref().and_then(|v| v.first())
                {
                    zone.get_or_insert_with(|| z.clone());
                }
            }
        }
    }
    Pv {
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        volume_id,
        source,
        other_backend: other,
        zone,
        capacity_bytes: quantity(spec.capacity.as_ref().and_then(|c| c.get("storage"))),
        access_modes: spec.access_modes.clone().unwrap_or_default(),
        volume_mode: spec
            .volume_mode
            .clone()
            .unwrap_or_else(|| "Filesystem".into()),
        storage_class: spec.storage_class_name.clone().unwrap_or_default(),
        reclaim_policy: ReclaimPolicy::parse(
            spec.persistent_volume_reclaim_policy
                .as_deref()
                .unwrap_or("Delete"),
        ),
        original_reclaim_policy: annotation(&p.metadata, ORIGINAL_RECLAIM)
            .map(|s| ReclaimPolicy::parse(s)),
        claim_ref: spec.claim_ref.as_ref().map(|r| ClaimRef {
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            uid: r.uid.clone().unwrap_or_default(),
        }),
        phase: p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        migration: annotation(&p.metadata, MIGRATION).cloned(),
    }
}

fn backend_name(spec: &k8s_openapi::api::core::v1::PersistentVolumeSpec) -> String {
    let v = serde_json::to_value(spec).unwrap_or_default();
    const NOT_BACKENDS: [&str; 8] = [
        "accessModes",
        "capacity",
        "claimRef",
        "mountOptions",
        "nodeAffinity",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "volumeMode",
    ];
    v.as_object()
        .and_then(|m| {
            m.keys()
                .find(|k| {
                    !NOT_BACKENDS.contains(&k.as_str()) && k.as_str() != "volumeAttributesClassName"
                })
                .cloned()
        })
        .unwrap_or_else(|| "an unknown backend".into())
}

fn claim_spec_parts(
    spec: &PersistentVolumeClaimSpec,
) -> (Option<u64>, Vec<String>, String, String) {
    (
        quantity(
            spec.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage")),
        ),
        spec.access_modes.clone().unwrap_or_default(),
        spec.volume_mode
            .clone()
            .unwrap_or_else(|| "Filesystem".into()),
        spec.storage_class_name.clone().unwrap_or_default(),
    )
}

/// A claim as baton sees it.
pub fn pvc(c: &PersistentVolumeClaim) -> Pvc {
    let spec = c.spec.clone().unwrap_or_default();
    let (request_bytes, access_modes, volume_mode, storage_class) = claim_spec_parts(&spec);
    Pvc {
        namespace: c.metadata.namespace.clone().unwrap_or_default(),
        name: c.metadata.name.clone().unwrap_or_default(),
        uid: c.metadata.uid.clone().unwrap_or_default(),
        volume_name: spec.volume_name.clone().unwrap_or_default(),
        phase: c
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        request_bytes,
        access_modes,
        volume_mode,
        storage_class,
        deleting: c.metadata.deletion_timestamp.is_some(),
        migration: annotation(&c.metadata, MIGRATION).cloned(),
        labels: c.metadata.labels.clone().unwrap_or_default(),
        owned: c
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| !o.is_empty()),
    }
}

/// A StatefulSet as baton sees it; `scalers` are filled by the reader.
pub fn statefulset(s: &K8sStatefulSet) -> StatefulSet {
    let spec = s.spec.clone().unwrap_or_default();
    let status = s.status.clone().unwrap_or_default();
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .map(|p| RetentionPolicy {
            when_scaled: p.when_scaled.clone().unwrap_or_else(|| "Retain".into()),
            when_deleted: p.when_deleted.clone().unwrap_or_else(|| "Retain".into()),
        })
        .unwrap_or_default();
    StatefulSet {
        kind: WorkloadKind::StatefulSet,
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        uid: s.metadata.uid.clone().unwrap_or_default(),
        replicas: spec.replicas.unwrap_or(1),
        status_replicas: status.replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        observed: status.observed_generation.is_some()
            && status.observed_generation == s.metadata.generation,
        labels: s.metadata.labels.clone().unwrap_or_default(),
        templates: spec
            .volume_claim_templates
            .iter()
            .flatten()
            .map(|t| {
                let (request_bytes, access_modes, volume_mode, storage_class) =
                    claim_spec_parts(&t.spec.clone().unwrap_or_default());
                ClaimTemplate {
                    name: t.metadata.name.clone().unwrap_or_default(),
                    storage_class,
                    request_bytes,
                    access_modes,
                    volume_mode,
                }
            })
            .collect(),
        retention,
        scalers: Vec::new(),
        service_account: service_account(&spec.template),
        owners: owners(&s.metadata),
        // Claims its pod template mounts by name (beside its templates' own).
        claims: template_claims(&spec.template)
            .map(|(v, c)| (v.to_string(), c.to_string()))
            .collect(),
    }
}

/// A Deployment as baton sees it: its claims are the ones its pod template mounts by
/// name (`scalers` are filled by the reader).
pub fn deployment(d: &Deployment) -> StatefulSet {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    StatefulSet {
        kind: WorkloadKind::Deployment,
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        replicas: spec.replicas.unwrap_or(1),
        status_replicas: status.replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        observed: status.observed_generation.is_some()
            && status.observed_generation == d.metadata.generation,
        labels: d.metadata.labels.clone().unwrap_or_default(),
        templates: Vec::new(),
        retention: RetentionPolicy::default(),
        scalers: Vec::new(),
        service_account: service_account(&spec.template),
        owners: owners(&d.metadata),
        claims: template_claims(&spec.template)
            .map(|(v, c)| (v.to_string(), c.to_string()))
            .collect(),
    }
}

/// The workload whose pods an app's side counts.
#[derive(Debug, Clone, Copy)]
pub enum Workload<'a> {
    /// Pods named `<sts>-<ordinal>` or owned by the set.
    StatefulSet(&'a K8sStatefulSet),
    /// Pods its selector matches (they are owned by its ReplicaSets).
    Deployment(&'a Deployment),
    /// No workload: the pods that mount the app's claims.
    Claim,
}

impl Workload<'_> {
    fn converted(&self) -> Option<StatefulSet> {
        match self {
            Self::StatefulSet(s) => Some(statefulset(s)),
            Self::Deployment(d) => Some(deployment(d)),
            Self::Claim => None,
        }
    }

    /// The selector of its pods.
    pub fn selector(&self) -> Option<&LabelSelector> {
        match self {
            Self::StatefulSet(s) => s.spec.as_ref().map(|s| &s.selector),
            Self::Deployment(d) => d.spec.as_ref().map(|s| &s.selector),
            Self::Claim => None,
        }
    }
}

/// Whether pod `p` mounts one of `claims`.
pub fn mounts(p: &Pod, claims: &[String]) -> bool {
    mounted(p).any(|c| claims.iter().any(|n| n == c))
}

/// The claims a pod template mounts by name, as (pod volume name, claim name).
pub fn template_claims(t: &PodTemplateSpec) -> impl Iterator<Item = (&str, &str)> {
    t.spec.iter().flat_map(spec_claims)
}

/// The claims a pod spec mounts, as (pod volume name, claim name).
fn spec_claims(s: &PodSpec) -> impl Iterator<Item = (&str, &str)> {
    s.volumes.iter().flatten().filter_map(|v| {
        Some((
            v.name.as_str(),
            v.persistent_volume_claim.as_ref()?.claim_name.as_str(),
        ))
    })
}

/// The ServiceAccount a pod template's pods run as (`default` when unset).
fn service_account(t: &PodTemplateSpec) -> String {
    t.spec
        .as_ref()
        .and_then(|p| p.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// An object's ownerReferences, as (apiVersion, kind, name).
fn owners(m: &ObjectMeta) -> Vec<(String, String, String)> {
    m.owner_references
        .iter()
        .flatten()
        .map(|o| (o.api_version.clone(), o.kind.clone(), o.name.clone()))
        .collect()
}

/// Whether a Job has finished (a `Complete` or `Failed` condition that is true): it makes
/// no more pods.
pub fn job_finished(j: &Job) -> bool {
    j.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

/// The claims pod `p` mounts.
pub fn mounted(p: &Pod) -> impl Iterator<Item = &str> {
    p.spec.iter().flat_map(spec_claims).map(|(_, c)| c)
}

/// Whether `selector` selects pod `p` (by its labels; none: an empty set).
pub fn selects_pod(selector: &LabelSelector, p: &Pod) -> bool {
    static NONE: BTreeMap<String, String> = BTreeMap::new();
    selects(selector, p.metadata.labels.as_ref().unwrap_or(&NONE))
}

/// Whether `labels` satisfy `selector` (matchLabels and matchExpressions, as the API
/// server's label selectors; an empty selector matches nothing, as a workload's must
/// not be empty).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector.match_labels.iter().flatten();
    let exprs = selector.match_expressions.iter().flatten();
    let mut any = false;
    for (k, v) in by_label {
        any = true;
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for e in exprs {
        any = true;
        let values = e.values.clone().unwrap_or_default();
        let got = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => got.is_some_and(|g| values.contains(g)),
            "NotIn" => got.is_none_or(|g| !values.contains(g)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

/// A node: name, zone, readiness.
pub fn node(n: &K8sNode) -> Node {
    let labels: BTreeMap<String, String> = n.metadata.labels.clone().unwrap_or_default();
    Node {
        name: n.metadata.name.clone().unwrap_or_default(),
        zone: ZONE_KEYS
            .iter()
            .find_map(|k| labels.get(*k).cloned())
            .unwrap_or_default(),
        ready: n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
    }
}

/// A StorageClass.
pub fn storage_class(c: &K8sStorageClass) -> StorageClass {
    StorageClass {
        name: c.metadata.name.clone().unwrap_or_default(),
        provisioner: c.provisioner.clone(),
        default: annotation(&c.metadata, "storageclass.kubernetes.io/is-default-class")
            .is_some_and(|v| v == "true"),
    }
}

/// Whether `name` is `<sts>-<ordinal>`, the name the StatefulSet controller gives its pods.
pub fn is_ordinal_pod(sts: &str, name: &str) -> bool {
    name.strip_prefix(sts)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_digit()))
}

/// The PV a VolumeAttachment attaches, if it names one.
pub fn attached_pv(va: &VolumeAttachment) -> Option<&str> {
    va.spec.source.persistent_volume_name.as_deref()
}

/// One app's [`Side`] from the objects read in its cluster: the StatefulSet `sts` (if it
/// exists) and candidates of the other kinds, which may hold more than the app's — only
/// its pods (owned by the set, or named `<sts>-<ordinal>`), the attachments of its `pvs`,
/// and its named `claims` and `pvs` count. One function for a fresh read and for the
/// watch cache, so both see the same world the same way.
#[expect(
    clippy::too_many_arguments,
    reason = "the five kinds a side is made of"
)]
pub fn side<'a>(
    sts: &str,
    set: Option<Workload<'_>>,
    pods: impl IntoIterator<Item = &'a Pod>,
    attachments: impl IntoIterator<Item = &'a VolumeAttachment>,
    claim_objects: impl IntoIterator<Item = &'a PersistentVolumeClaim>,
    pv_objects: impl IntoIterator<Item = &'a PersistentVolume>,
    claims: &[String],
    pvs: &[String],
) -> Side {
    // A pod that ended (Succeeded, Failed: an evicted one stays until pod GC) holds no
    // volume and stops with nothing: a Deployment's and a claim's count live pods only.
    let ended = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
    };
    let owned = |p: &Pod| match set {
        Some(Workload::Claim) => !ended(p) && mounts(p, claims),
        Some(Workload::Deployment(d)) => {
            if ended(p) {
                return false;
            }
            Workload::Deployment(d)
                .selector()
                .is_some_and(|s| selects_pod(s, p))
        }
        Some(Workload::StatefulSet(s)) => {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(o.uid.as_str()) == s.metadata.uid.as_deref())
                || p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| is_ordinal_pod(sts, n))
        }
        None => p
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| is_ordinal_pod(sts, n)),
    };
    let named =
        |n: &Option<String>, among: &[String]| n.as_ref().is_some_and(|n| among.contains(n));
    Side {
        sts: set.and_then(|w| w.converted()),
        pods: pods.into_iter().filter(|p| owned(p)).count() as u32,
        attachments: attachments
            .into_iter()
            .filter(|va| attached_pv(va).is_some_and(|n| pvs.iter().any(|p| p == n)))
            .count() as u32,
        claims: claim_objects
            .into_iter()
            .filter(|c| named(&c.metadata.name, claims))
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), pvc(c)))
            .collect(),
        volumes: pv_objects
            .into_iter()
            .filter(|p| named(&p.metadata.name, pvs))
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), pv(p)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn in_tree_ids_give_zone_and_volume() {
        assert_eq!(
            parse_in_tree_id("aws://us-east-1b/vol-0abc"),
            (Some("us-east-1b".into()), "vol-0abc".into())
        );
        assert_eq!(parse_in_tree_id("vol-0abc"), (None, "vol-0abc".into()));
        assert_eq!(parse_in_tree_id("aws:///vol-1"), (None, "vol-1".into()));
    }

    #[test]
    fn pv_backends_zones_and_policies() {
        let csi: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": "pvc-1", "uid": "u1", "annotations": { ORIGINAL_RECLAIM: "Delete" } },
            "spec": { "capacity": { "storage": "20Gi" }, "accessModes": ["ReadWriteOnce"],
              "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "gp3",
              "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": "vol-1" },
              "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1c"] }] }] } },
              "claimRef": { "namespace": "db", "name": "data-db-0", "uid": "c1" } },
            "status": { "phase": "Bound" }
        }))
        .unwrap();
        let v = pv(&csi);
        assert_eq!(v.volume_id.as_deref(), Some("vol-1"));
        assert_eq!(v.source, Some(VolumeSource::Csi));
        assert_eq!(v.zone.as_deref(), Some("us-east-1c"));
        assert_eq!(v.capacity_bytes, Some(20 << 30));
        assert_eq!(v.reclaim_policy, ReclaimPolicy::Retain);
        assert_eq!(v.original_reclaim_policy, Some(ReclaimPolicy::Delete));
        assert_eq!(v.claim_ref.unwrap().uid, "c1");

        let in_tree: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": "legacy" },
            "spec": { "awsElasticBlockStore": { "volumeID": "aws://us-east-1a/vol-2" } }
        }))
        .unwrap();
        let v = pv(&in_tree);
        assert_eq!(
            (v.volume_id.as_deref(), v.zone.as_deref()),
            (Some("vol-2"), Some("us-east-1a"))
        );
        assert_eq!(v.source, Some(VolumeSource::InTree));
        assert_eq!(
            v.reclaim_policy,
            ReclaimPolicy::Delete,
            "unset means Delete"
        );

        let nfs: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": "share" },
            "spec": { "capacity": { "storage": "1Gi" }, "nfs": { "server": "10.0.0.9", "path": "/x" } }
        }))
        .unwrap();
        let v = pv(&nfs);
        assert_eq!(
            (v.volume_id, v.other_backend.as_deref()),
            (None, Some("nfs"))
        );
    }
}
