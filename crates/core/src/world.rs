//! What baton knows of the world, as plain data: the parts of two clusters and of EC2 that
//! the planner and the phase machine read. The adapters (`baton-kube`, `baton-aws`) fill
//! these from real objects; tests build them by hand. Nothing here talks to anything.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Resource tags, key → value.
pub type Tags = BTreeMap<String, String>;

/// `persistentVolumeReclaimPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReclaimPolicy {
    /// The volume survives the claim's deletion.
    Retain,
    /// The volume is deleted with the claim.
    Delete,
    /// Deprecated; treated like Delete for safety decisions.
    Recycle,
}

impl ReclaimPolicy {
    /// Parses the API's spelling; anything unknown is treated as Delete (the unsafe side).
    pub fn parse(s: &str) -> Self {
        match s {
            "Retain" => Self::Retain,
            "Recycle" => Self::Recycle,
            _ => Self::Delete,
        }
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retain => "Retain",
            Self::Delete => "Delete",
            Self::Recycle => "Recycle",
        }
    }
}

impl std::fmt::Display for ReclaimPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a PV reaches its EBS volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeSource {
    /// `csi: {driver: ebs.csi.aws.com}`.
    Csi,
    /// In-tree `awsElasticBlockStore` (works on new clusters through CSI migration).
    InTree,
}

/// A PersistentVolume, as far as baton cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pv {
    /// Object name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The EBS volume id, when the PV is EBS-backed.
    pub volume_id: Option<String>,
    /// CSI or in-tree, when EBS-backed.
    pub source: Option<VolumeSource>,
    /// The other backend's name when not EBS-backed (e.g. `nfs`, `csi:efs.csi.aws.com`).
    pub other_backend: Option<String>,
    /// The zone pinned by nodeAffinity (or the in-tree volume id's zone).
    pub zone: Option<String>,
    /// `spec.capacity.storage` in bytes.
    pub capacity_bytes: Option<u64>,
    /// `spec.accessModes`.
    pub access_modes: Vec<String>,
    /// `spec.volumeMode` (Filesystem when unset).
    pub volume_mode: String,
    /// `spec.storageClassName` ("" when unset).
    pub storage_class: String,
    /// `spec.persistentVolumeReclaimPolicy`.
    pub reclaim_policy: ReclaimPolicy,
    /// The reclaim policy baton recorded before changing it (its annotation), if any.
    pub original_reclaim_policy: Option<ReclaimPolicy>,
    /// `spec.claimRef`.
    pub claim_ref: Option<ClaimRef>,
    /// `status.phase`.
    pub phase: String,
    /// The migration that created this PV (baton's annotation), if any.
    pub migration: Option<String>,
}

/// `spec.claimRef` of a PV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRef {
    /// Claim namespace.
    pub namespace: String,
    /// Claim name.
    pub name: String,
    /// Claim uid; empty when the PV is only reserved for the name.
    pub uid: String,
}

/// A PersistentVolumeClaim, as far as baton cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pvc {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.volumeName` ("" when unset).
    pub volume_name: String,
    /// `status.phase` (Pending, Bound, Lost).
    pub phase: String,
    /// `spec.resources.requests.storage` in bytes.
    pub request_bytes: Option<u64>,
    /// `spec.accessModes`.
    pub access_modes: Vec<String>,
    /// `spec.volumeMode` (Filesystem when unset).
    pub volume_mode: String,
    /// `spec.storageClassName` ("" when unset).
    pub storage_class: String,
    /// Being deleted.
    pub deleting: bool,
    /// The migration that created this claim (baton's annotation), if any.
    pub migration: Option<String>,
    /// Labels (for `--selector`, when the claim moves on its own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// It has ownerReferences (an operator's, a controller's): never moved on its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owned: bool,
}

/// `persistentVolumeClaimRetentionPolicy` of a StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// `whenScaled` (Retain when unset).
    pub when_scaled: String,
    /// `whenDeleted` (Retain when unset).
    pub when_deleted: String,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            when_scaled: "Retain".into(),
            when_deleted: "Retain".into(),
        }
    }
}

impl RetentionPolicy {
    /// Whether scaling down or deleting the StatefulSet deletes its claims.
    pub fn deletes_claims(&self) -> bool {
        self.when_scaled == "Delete" || self.when_deleted == "Delete"
    }
}

/// One volumeClaimTemplate, reduced to what must match between blue and green.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimTemplate {
    /// Template name.
    pub name: String,
    /// Storage class ("" when unset: the cluster default).
    pub storage_class: String,
    /// Requested bytes.
    pub request_bytes: Option<u64>,
    /// Access modes.
    pub access_modes: Vec<String>,
    /// Volume mode (Filesystem when unset).
    pub volume_mode: String,
}

/// The kind of workload an app is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum WorkloadKind {
    /// A StatefulSet: its claims come from its volumeClaimTemplates, one per ordinal.
    #[default]
    StatefulSet,
    /// A Deployment whose pods mount claims by name.
    Deployment,
    /// A bound claim that no workload mounts, moved on its own.
    Claim,
}

impl WorkloadKind {
    /// `StatefulSet`, `Deployment`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatefulSet => "StatefulSet",
            Self::Deployment => "Deployment",
            Self::Claim => "PersistentVolumeClaim",
        }
    }

    /// The API resource (`statefulsets`, `deployments`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::StatefulSet => "statefulsets",
            Self::Deployment => "deployments",
            Self::Claim => "persistentvolumeclaims",
        }
    }

    fn is_statefulset(&self) -> bool {
        *self == Self::StatefulSet
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload (a StatefulSet, or a Deployment with volumes), as far as baton cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatefulSet {
    /// StatefulSet or Deployment.
    #[serde(default, skip_serializing_if = "WorkloadKind::is_statefulset")]
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas` (pods that exist).
    pub status_replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `metadata.generation` == `status.observedGeneration`.
    pub observed: bool,
    /// Labels (for `--selector`).
    pub labels: BTreeMap<String, String>,
    /// `spec.volumeClaimTemplates`.
    pub templates: Vec<ClaimTemplate>,
    /// `spec.persistentVolumeClaimRetentionPolicy`.
    pub retention: RetentionPolicy,
    /// Names of HorizontalPodAutoscalers (or other known scalers) targeting it.
    pub scalers: Vec<String>,
    /// The ServiceAccount its pods run as (`spec.template.spec.serviceAccountName`,
    /// `default` when unset): the IAM role they assume through IRSA hangs off it.
    #[serde(default = "default_service_account")]
    pub service_account: String,
    /// Its ownerReferences, as (apiVersion, kind, name): a custom resource among them
    /// is an operator that reconciles it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<(String, String, String)>,
    /// A Deployment's claims, as (pod volume name, claim name), from its pod template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<(String, String)>,
}

fn default_service_account() -> String {
    "default".into()
}

impl StatefulSet {
    /// No workload: what a claim that moves on its own stands on (0 replicas, none
    /// Ready, observed).
    pub fn none() -> Self {
        Self {
            kind: WorkloadKind::Claim,
            namespace: String::new(),
            name: String::new(),
            uid: String::new(),
            replicas: 0,
            status_replicas: 0,
            ready_replicas: 0,
            observed: true,
            labels: BTreeMap::new(),
            templates: Vec::new(),
            retention: RetentionPolicy::default(),
            scalers: Vec::new(),
            service_account: default_service_account(),
            owners: Vec::new(),
            claims: Vec::new(),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A node: its name and zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Name.
    pub name: String,
    /// `topology.kubernetes.io/zone` (or the EBS CSI topology label).
    pub zone: String,
    /// Ready condition True.
    pub ready: bool,
}

/// A StorageClass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageClass {
    /// Name.
    pub name: String,
    /// `provisioner`.
    pub provisioner: String,
    /// Marked as the default class.
    pub default: bool,
}

/// Everything the planner reads from one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The kubeconfig context it was read through.
    pub context: String,
    /// `/version` gitVersion.
    pub version: String,
    /// StatefulSets (of the selected namespaces).
    pub statefulsets: Vec<StatefulSet>,
    /// Deployments of the selected namespaces (those whose pods mount claims are apps;
    /// the others can be a group's members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<StatefulSet>,
    /// The claims some pod mounts, as (namespace, claim) (of the selected namespaces).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub mounted: BTreeSet<(String, String)>,
    /// Claims that other workloads' pod templates mount — a DaemonSet's, a CronJob's, a
    /// Job's not finished — as (namespace, claim) → the workload (`CronJob ns/name`): such
    /// a claim is theirs, never moved on its own (their next pod would mount it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_claims: BTreeMap<(String, String), String>,
    /// Claims (of the selected namespaces).
    pub claims: Vec<Pvc>,
    /// All PVs.
    pub volumes: Vec<Pv>,
    /// All nodes.
    pub nodes: Vec<Node>,
    /// All StorageClasses.
    pub storage_classes: Vec<StorageClass>,
    /// Objects that can scale workloads back up (Argo CD Applications, Flux
    /// Kustomizations and HelmReleases, KEDA ScaledObjects) of every namespace, for
    /// the kinds the cluster serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fences: Vec<crate::fences::FenceObject>,
}

impl ClusterView {
    /// A StatefulSet by namespace and name.
    pub fn statefulset(&self, ns: &str, name: &str) -> Option<&StatefulSet> {
        self.statefulsets
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
    }

    /// A workload of `kind` by namespace and name.
    pub fn workload(&self, kind: WorkloadKind, ns: &str, name: &str) -> Option<&StatefulSet> {
        let list = match kind {
            WorkloadKind::StatefulSet => &self.statefulsets,
            WorkloadKind::Deployment => &self.deployments,
            WorkloadKind::Claim => return None,
        };
        list.iter().find(|s| s.namespace == ns && s.name == name)
    }

    /// A claim by namespace and name.
    pub fn claim(&self, ns: &str, name: &str) -> Option<&Pvc> {
        self.claims
            .iter()
            .find(|c| c.namespace == ns && c.name == name)
    }

    /// A PV by name.
    pub fn volume(&self, name: &str) -> Option<&Pv> {
        self.volumes.iter().find(|v| v.name == name)
    }
}

/// EC2's view of an EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ec2Volume {
    /// `vol-…`.
    pub id: String,
    /// Availability zone.
    pub az: String,
    /// Size in GiB.
    pub size_gib: i32,
    /// gp2, gp3, io2, …
    pub volume_type: String,
    /// Encrypted at rest.
    pub encrypted: bool,
    /// The KMS key it is encrypted with (as EC2 names it: the key's ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// io1/io2 multi-attach enabled.
    pub multi_attach: bool,
    /// `available`, `in-use`, `creating`, …
    pub state: String,
    /// Instances it is attached to.
    pub attached_to: Vec<String>,
    /// Its tags (the EBS CSI driver's IAM policy may allow it only volumes tagged for
    /// its cluster: see [`crate::handover`]).
    #[serde(default)]
    pub tags: Tags,
}
