//! The EBS CSI driver's provisioning half (with the external-provisioner sidecar): for a
//! claim of a StorageClass whose provisioner is `ebs.csi.aws.com` — or the in-tree
//! `kubernetes.io/aws-ebs`, served by the same driver under CSI migration — create the
//! volume through EC2 in the right zone (any zone with nodes for `Immediate`, the selected
//! node's zone for `WaitForFirstConsumer`), then a PV pre-bound to the claim with
//! nodeAffinity on the zone. Idempotent: a volume already tagged for the claim is reused.
//!
//! Claims are provisioned concurrently (at most [`CONCURRENCY`] EC2 calls in flight), as
//! the external-provisioner runs several workers. Looking a volume up by its tag is an
//! EC2 call whose cost grows with every volume (and moto's with every tag), so it is made
//! only when an earlier attempt may have left one: for claims that existed before this
//! provisioner started, and for claims whose CreateVolume this provisioner already sent.
//! A claim first seen later has a fresh uid, so no volume can be tagged with its PV name.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{DEPLOYMENTS, NODES, PVCS, PVS, STORAGECLASSES};
use super::binder::parse_quantity;
use super::{Controller, Ctx, Scope};
use crate::meta;

#[derive(Default)]
pub(crate) struct Provisioner {
    /// Claims (by uid) a volume may already exist for: those present at this
    /// provisioner's first pass (`None` before it), and those it sent CreateVolume for.
    maybe_created: Mutex<Option<HashSet<String>>>,
}

/// Claims provisioned at once.
const CONCURRENCY: usize = 16;

/// The CSI driver name.
pub const EBS_CSI: &str = "ebs.csi.aws.com";
/// The in-tree provisioner, migrated to the CSI driver.
pub const IN_TREE_EBS: &str = "kubernetes.io/aws-ebs";
/// The zone label the EBS CSI driver puts in PV nodeAffinity.
pub const EBS_ZONE_KEY: &str = "topology.ebs.csi.aws.com/zone";
/// The well-known zone label of nodes.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// The EC2 tag the driver names a volume's PV by.
pub const CSI_VOLUME_NAME_TAG: &str = "CSIVolumeName";

impl Controller for Provisioner {
    fn name(&self) -> &'static str {
        "ebs-csi-provisioner"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("", "persistentvolumeclaims"),
            ("storage.k8s.io", "storageclasses"),
            ("", "nodes"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        _scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            let claims = ctx.list(PVCS, None);
            {
                let mut maybe = lock(&self.maybe_created);
                if maybe.is_none() {
                    *maybe = Some(claims.iter().map(|c| meta::uid(c).to_string()).collect());
                }
            }
            let passes: Vec<_> = claims.iter().map(|pvc| self.provision(ctx, pvc)).collect();
            let results: Vec<Result<(), Instant>> = futures::stream::iter(passes)
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            results.into_iter().filter_map(Result::err).min()
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Provisioner {
    /// Whether a volume for this claim may exist already (see the module comment).
    fn may_exist(&self, uid: &str) -> bool {
        lock(&self.maybe_created)
            .as_ref()
            .is_none_or(|m| m.contains(uid))
    }

    fn sending_create(&self, uid: &str) {
        lock(&self.maybe_created)
            .get_or_insert_with(HashSet::new)
            .insert(uid.to_string());
    }

    async fn provision(&self, ctx: &Ctx, pvc: &Value) -> Result<(), Instant> {
        if meta::is_deleting(pvc)
            || pvc["status"]["phase"] != "Pending"
            || !pvc["spec"]["volumeName"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        {
            return Ok(());
        }
        let provisioner =
            pvc["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"]
                .as_str()
                .unwrap_or_default();
        if provisioner != EBS_CSI && provisioner != IN_TREE_EBS {
            return Ok(());
        }
        let class_name = pvc["spec"]["storageClassName"].as_str().unwrap_or_default();
        let Some(sc) = ctx.get(STORAGECLASSES, "", class_name) else {
            return Ok(());
        };
        let pv_name = format!("pvc-{}", meta::uid(pvc));
        if ctx.get(PVS, "", &pv_name).is_some() {
            return Ok(());
        }
        let zone = if sc["volumeBindingMode"] == "WaitForFirstConsumer" {
            let Some(node) =
                pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].as_str()
            else {
                return Ok(());
            };
            match ctx
                .get(NODES, "", node)
                .and_then(|n| n["metadata"]["labels"][ZONE_KEY].as_str().map(String::from))
            {
                Some(z) => z,
                None => {
                    ctx.event(
                        pvc,
                        true,
                        "ProvisioningFailed",
                        &format!("selected node {node} has no {ZONE_KEY} label"),
                        EBS_CSI,
                    );
                    return Ok(());
                }
            }
        } else {
            match pick_zone(ctx, &sc) {
                Some(z) => z,
                None => {
                    ctx.event(pvc, true, "ProvisioningFailed", "no zone to provision in: no ready node has a zone label and the class allows no topology", EBS_CSI);
                    return Ok(());
                }
            }
        };
        let Some(aws) = &ctx.aws else {
            ctx.event(
                pvc,
                true,
                "ProvisioningFailed",
                "the emulator runs without EC2: cannot create EBS volumes",
                EBS_CSI,
            );
            return Ok(());
        };
        let bytes = parse_quantity(
            pvc["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .unwrap_or("1Gi"),
        );
        let size_gib = bytes.div_ceil(1 << 30).max(1) as i32;
        let volume_type = sc["parameters"]["type"]
            .as_str()
            .unwrap_or(if provisioner == IN_TREE_EBS {
                "gp2"
            } else {
                "gp3"
            })
            .to_string();
        ctx.event(
            pvc,
            false,
            "Provisioning",
            &format!(
                "External provisioner is provisioning volume for claim \"{}/{}\"",
                meta::namespace(pvc),
                meta::name(pvc)
            ),
            EBS_CSI,
        );
        // Reuse a volume created for this claim by an earlier pass that did not finish.
        let existing = if self.may_exist(meta::uid(pvc)) {
            // The CSI driver finds its volume by CSIVolumeName; the legacy in-tree
            // plugin wrote no such tag, only the created-for ones.
            aws.describe_volumes(&[baton_aws::Filter::new(
                format!("tag:{PV_NAME_TAG}"),
                [pv_name.clone()],
            )])
            .await
        } else {
            Ok(Vec::new())
        };
        let volume = match existing {
            Ok(mut vs) if !vs.is_empty() => vs.remove(0),
            Ok(_) => {
                let legacy = provisioner == IN_TREE_EBS
                    && ctx
                        .cluster
                        .legacy_in_tree_ebs
                        .load(std::sync::atomic::Ordering::Relaxed);
                let tags = volume_tags(
                    &ctx.cluster.spec.name,
                    legacy,
                    tag_cluster_id(ctx).as_deref(),
                    pvc,
                    &pv_name,
                );
                let new = baton_aws::NewVolume {
                    availability_zone: zone.clone(),
                    size_gib,
                    volume_type,
                    tags,
                    iops: sc["parameters"]["iops"]
                        .as_str()
                        .and_then(|i| i.parse().ok()),
                    multi_attach: false,
                    kms_key_id: sc["parameters"]["kmsKeyId"].as_str().map(String::from),
                };
                self.sending_create(meta::uid(pvc));
                match aws.create_volume(&new).await {
                    Ok(v) => v,
                    Err(e) => {
                        ctx.event(
                            pvc,
                            true,
                            "ProvisioningFailed",
                            &format!(
                                "failed to provision volume with StorageClass \"{class_name}\": {e}"
                            ),
                            EBS_CSI,
                        );
                        return Err(Instant::now() + std::time::Duration::from_secs(1));
                    }
                }
            }
            Err(e) => {
                ctx.event(pvc, true, "ProvisioningFailed", &e.to_string(), EBS_CSI);
                return Err(Instant::now() + std::time::Duration::from_secs(1));
            }
        };
        let source = if provisioner == IN_TREE_EBS {
            json!({ "awsElasticBlockStore": { "volumeID": format!("aws://{zone}/{}", volume.id), "fsType": "ext4" } })
        } else {
            json!({ "csi": { "driver": EBS_CSI, "volumeHandle": volume.id, "fsType": "ext4",
                             "volumeAttributes": { "storage.kubernetes.io/csiProvisionerIdentity": "baton-sim-ebs-csi" } } })
        };
        let zone_key = if provisioner == IN_TREE_EBS {
            ZONE_KEY
        } else {
            EBS_ZONE_KEY
        };
        let mut spec = json!({
            "capacity": { "storage": format!("{size_gib}Gi") },
            "accessModes": pvc["spec"]["accessModes"],
            "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": class_name,
            "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
            "claimRef": { "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta::namespace(pvc),
                          "name": meta::name(pvc), "uid": meta::uid(pvc), "resourceVersion": meta::resource_version(pvc) },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": zone_key, "operator": "In", "values": [zone] } ] }] } },
        });
        for (k, v) in source.as_object().expect("built as an object") {
            spec[k] = v.clone();
        }
        let mut annotations = json!({ "pv.kubernetes.io/provisioned-by": provisioner });
        if provisioner == IN_TREE_EBS {
            annotations["pv.kubernetes.io/migrated-to"] = json!(EBS_CSI);
        }
        let pv = json!({ "apiVersion": "v1", "kind": "PersistentVolume", "metadata": { "name": pv_name, "annotations": annotations }, "spec": spec });
        match ctx.create(PVS, "", pv) {
            Ok(_) => ctx.event(
                pvc,
                false,
                "ProvisioningSucceeded",
                &format!("Successfully provisioned volume {pv_name}"),
                EBS_CSI,
            ),
            Err(e) if e.code == 409 => {}
            Err(e) => ctx.event(pvc, true, "ProvisioningFailed", &e.message, EBS_CSI),
        }
        Ok(())
    }
}

/// The tag both provisioners write naming the PV (the external-provisioner passes it
/// to the CSI driver with `--extra-create-metadata`, as the EKS add-on runs it).
pub const PV_NAME_TAG: &str = "kubernetes.io/created-for/pv/name";
/// The tag the CSI driver writes on every volume it creates.
pub const CSI_CLUSTER_TAG: &str = "ebs.csi.aws.com/cluster";
/// The tag the CSI driver writes (v1.58+) when started with `--k8s-tag-cluster-id`, which
/// `AmazonEBSCSIDriverEKSClusterScopedPolicy` matches against the role's
/// `eks-cluster-name` tag.
pub const CSI_CLUSTER_NAME_TAG: &str = "ebs.csi.aws.com/cluster-name";
/// The namespace and Deployment of the EBS CSI controller.
pub const CSI_CONTROLLER: (&str, &str) = ("kube-system", "ebs-csi-controller");

/// The `--k8s-tag-cluster-id` the EBS CSI controller's `ebs-plugin` container runs with
/// (the Deployment's args; the EKS add-on sets it to the cluster's name).
pub(crate) fn tag_cluster_id(ctx: &Ctx) -> Option<String> {
    let d = ctx.get(DEPLOYMENTS, CSI_CONTROLLER.0, CSI_CONTROLLER.1)?;
    let containers = d["spec"]["template"]["spec"]["containers"].as_array()?;
    let args: Vec<&str> = containers
        .iter()
        .filter(|c| c["name"] == "ebs-plugin")
        .flat_map(|c| c["args"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--k8s-tag-cluster-id=") {
            return Some(v.to_string()).filter(|v| !v.is_empty());
        }
        if *a == "--k8s-tag-cluster-id" {
            return it.next().map(|v| v.to_string()).filter(|v| !v.is_empty());
        }
    }
    None
}

/// The tags a new volume gets from its provisioner.
///
/// The EBS CSI driver (also serving in-tree claims under CSI migration): `CSIVolumeName`,
/// `ebs.csi.aws.com/cluster=true` and the external-provisioner's created-for tags; with
/// `--k8s-tag-cluster-id=ID` also `kubernetes.io/cluster/ID=owned`, `Name=ID-dynamic-PV`,
/// `KubernetesCluster=ID` and `ebs.csi.aws.com/cluster-name=ID`
/// (aws-ebs-csi-driver `pkg/driver/controller.go` CreateVolume, docs/tagging.md).
///
/// The legacy in-tree `kubernetes.io/aws-ebs` plugin (before CSI migration): the
/// created-for tags, `Name=kubernetes-dynamic-PV`, and the cloud provider's
/// `kubernetes.io/cluster/CLUSTER=owned` and `KubernetesCluster=CLUSTER`
/// (legacy-cloud-providers/aws `tags.go` buildTags) — no driver tags.
pub(crate) fn volume_tags(
    cluster: &str,
    legacy_in_tree: bool,
    tag_cluster_id: Option<&str>,
    pvc: &Value,
    pv_name: &str,
) -> baton_aws::Tags {
    let mut tags = baton_aws::Tags::from([
        (
            "kubernetes.io/created-for/pvc/name".to_string(),
            meta::name(pvc).to_string(),
        ),
        (
            "kubernetes.io/created-for/pvc/namespace".to_string(),
            meta::namespace(pvc).to_string(),
        ),
        (PV_NAME_TAG.to_string(), pv_name.to_string()),
    ]);
    if legacy_in_tree {
        tags.insert(format!("kubernetes.io/cluster/{cluster}"), "owned".into());
        tags.insert("KubernetesCluster".into(), cluster.into());
        tags.insert("Name".into(), format!("kubernetes-dynamic-{pv_name}"));
        return tags;
    }
    tags.insert(CSI_VOLUME_NAME_TAG.into(), pv_name.into());
    tags.insert(CSI_CLUSTER_TAG.into(), "true".into());
    if let Some(id) = tag_cluster_id {
        tags.insert(format!("kubernetes.io/cluster/{id}"), "owned".into());
        tags.insert("Name".into(), format!("{id}-dynamic-{pv_name}"));
        tags.insert("KubernetesCluster".into(), id.into());
        tags.insert(CSI_CLUSTER_NAME_TAG.into(), id.into());
    }
    tags
}

/// A zone for an Immediate claim: the class's allowed topology, else the first zone (in
/// name order) that has a node.
fn pick_zone(ctx: &Ctx, sc: &Value) -> Option<String> {
    let allowed: Vec<String> = sc["allowedTopologies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["matchLabelExpressions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|e| e["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    if let Some(z) = allowed.into_iter().min() {
        return Some(z);
    }
    ctx.list(NODES, None)
        .iter()
        .filter_map(|n| n["metadata"]["labels"][ZONE_KEY].as_str().map(String::from))
        .min()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claim() -> Value {
        json!({ "metadata": { "name": "data-db-0", "namespace": "orders" } })
    }

    #[test]
    fn the_csi_driver_writes_the_cluster_name_tag_only_with_a_cluster_id() {
        let plain = volume_tags("green", false, None, &claim(), "pvc-1");
        assert_eq!(plain[CSI_VOLUME_NAME_TAG], "pvc-1");
        assert_eq!(plain[CSI_CLUSTER_TAG], "true");
        assert_eq!(plain["kubernetes.io/created-for/pvc/name"], "data-db-0");
        assert_eq!(plain["kubernetes.io/created-for/pvc/namespace"], "orders");
        assert_eq!(plain[PV_NAME_TAG], "pvc-1");
        assert!(!plain.contains_key(CSI_CLUSTER_NAME_TAG));
        assert!(!plain.contains_key("kubernetes.io/cluster/green"));
        let tagged = volume_tags("green", false, Some("green"), &claim(), "pvc-1");
        assert_eq!(tagged[CSI_CLUSTER_NAME_TAG], "green");
        assert_eq!(tagged["kubernetes.io/cluster/green"], "owned");
        assert_eq!(tagged["KubernetesCluster"], "green");
        assert_eq!(tagged["Name"], "green-dynamic-pvc-1");
    }

    #[test]
    fn the_legacy_in_tree_plugin_writes_no_driver_tags() {
        let t = volume_tags("blue", true, Some("blue"), &claim(), "pvc-1");
        assert_eq!(t["kubernetes.io/cluster/blue"], "owned");
        assert_eq!(t["KubernetesCluster"], "blue");
        assert_eq!(t["Name"], "kubernetes-dynamic-pvc-1");
        assert_eq!(t["kubernetes.io/created-for/pvc/name"], "data-db-0");
        for k in [CSI_VOLUME_NAME_TAG, CSI_CLUSTER_TAG, CSI_CLUSTER_NAME_TAG] {
            assert!(!t.contains_key(k), "{k}");
        }
    }
}
