//! The objects baton creates in green, built from blue's: the claim (with `volumeName`,
//! without the binding annotations that would make it `Lost`) and the PV (with
//! `claimRef {namespace, name, uid}` and `Retain`, so no other claim can ever bind it).
//! Pure, so every stripped field is pinned by a test.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::{Value, json};

use crate::convert::{MIGRATED_FROM, MIGRATION, ORIGINAL_RECLAIM};

/// Annotations that describe blue's binding, not green's: a claim carrying
/// `bind-completed` whose PV is missing goes `Lost`.
const STALE_ANNOTATIONS: [&str; 6] = [
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Where the green objects come from, for their annotations.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// The migration id.
    pub migration: &'a str,
    /// Blue's context.
    pub from: &'a str,
}

fn clean_metadata(meta: &Value, origin: &Origin<'_>, blue_uid: &str) -> Value {
    let mut annotations = meta["annotations"].as_object().cloned().unwrap_or_default();
    for k in STALE_ANNOTATIONS {
        annotations.remove(k);
    }
    annotations.insert(MIGRATION.into(), json!(origin.migration));
    annotations.insert(
        MIGRATED_FROM.into(),
        json!(format!("{}/{blue_uid}", origin.from)),
    );
    let mut out = json!({ "name": meta["name"], "annotations": annotations });
    if !meta["namespace"].is_null() {
        out["namespace"] = meta["namespace"].clone();
    }
    if let Some(labels) = meta["labels"].as_object() {
        out["labels"] = json!(labels);
    }
    out
}

/// Green's claim: blue's spec with `volumeName` set to the PV, nothing of blue's binding.
pub fn green_claim(
    blue: &PersistentVolumeClaim,
    pv_name: &str,
    origin: &Origin<'_>,
) -> PersistentVolumeClaim {
    let b = serde_json::to_value(blue).expect("a claim serializes");
    let spec = &b["spec"];
    let mut out = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": clean_metadata(&b["metadata"], origin, b["metadata"]["uid"].as_str().unwrap_or_default()),
        "spec": {
            "accessModes": spec["accessModes"],
            "resources": spec["resources"],
            "volumeName": pv_name,
        },
    });
    for key in ["storageClassName", "volumeMode"] {
        if !spec[key].is_null() {
            out["spec"][key] = spec[key].clone();
        }
    }
    serde_json::from_value(out).expect("built from a valid claim")
}

/// The claim a PV is reserved for, as [`green_volume`] reads it — namespace, name and uid,
/// nothing else — for when the uid is known without reading the claim (it came back from
/// creating it).
pub fn reserved_for(namespace: &str, name: &str, uid: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": { "namespace": namespace, "name": name, "uid": uid }
    }))
    .expect("a claim's metadata")
}

/// Green's PV: blue's spec, `claimRef` naming green's claim by uid, Retain; in CSI form
/// when `convert_to_csi` and blue's is in-tree.
pub fn green_volume(
    blue: &PersistentVolume,
    claim: &PersistentVolumeClaim,
    original_reclaim: &str,
    convert_to_csi: bool,
    origin: &Origin<'_>,
) -> PersistentVolume {
    let b = serde_json::to_value(blue).expect("a PV serializes");
    let mut metadata = clean_metadata(
        &b["metadata"],
        origin,
        b["metadata"]["uid"].as_str().unwrap_or_default(),
    );
    metadata["annotations"][ORIGINAL_RECLAIM] = json!(original_reclaim);
    let mut spec = b["spec"].clone();
    spec["claimRef"] = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": claim.metadata.namespace,
        "name": claim.metadata.name,
        "uid": claim.metadata.uid,
    });
    spec["persistentVolumeReclaimPolicy"] = json!("Retain");
    if convert_to_csi
        && let Some(ebs) = spec
            .as_object_mut()
            .and_then(|m| m.remove("awsElasticBlockStore"))
    {
        let (zone, id) =
            crate::convert::parse_in_tree_id(ebs["volumeID"].as_str().unwrap_or_default());
        spec["csi"] = json!({
            "driver": "ebs.csi.aws.com",
            "volumeHandle": id,
            "fsType": ebs["fsType"].as_str().unwrap_or("ext4"),
        });
        if let Some(zone) = zone
            && spec["nodeAffinity"].is_null()
        {
            spec["nodeAffinity"] = json!({ "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": [zone] }] }] } });
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": metadata,
        "spec": spec,
    }))
    .expect("built from a valid PV")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin {
            migration: "m-1",
            from: "blue",
        }
    }

    #[test]
    fn green_claim_keeps_volume_name_and_drops_blue_binding() {
        let blue: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": "data-db-0", "namespace": "orders", "uid": "blue-uid", "resourceVersion": "42",
              "labels": { "app": "db" },
              "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "x" }],
              "finalizers": ["kubernetes.io/pvc-protection"],
              "annotations": { "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.kubernetes.io/selected-node": "ip-1", "team": "payments" } },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "10Gi" } },
              "storageClassName": "gp3", "volumeName": "pvc-9" },
            "status": { "phase": "Bound" }
        }))
        .unwrap();
        let g = serde_json::to_value(green_claim(&blue, "pvc-9", &origin())).unwrap();
        let md = &g["metadata"];
        assert!(md["uid"].is_null() && md["resourceVersion"].is_null());
        assert!(md["ownerReferences"].is_null() && md["finalizers"].is_null());
        let ann = md["annotations"].as_object().unwrap();
        assert!(!ann.contains_key("pv.kubernetes.io/bind-completed"));
        assert!(!ann.contains_key("pv.kubernetes.io/bound-by-controller"));
        assert!(!ann.contains_key("volume.kubernetes.io/selected-node"));
        assert_eq!(ann["team"], "payments");
        assert_eq!(ann[MIGRATED_FROM], "blue/blue-uid");
        assert_eq!(g["spec"]["volumeName"], "pvc-9");
        assert_eq!(g["spec"]["storageClassName"], "gp3");
        assert!(g["status"].is_null());
    }

    #[test]
    fn green_volume_is_reserved_by_uid_and_retained_and_can_become_csi() {
        let blue: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": "legacy", "uid": "pv-uid", "annotations": { "pv.kubernetes.io/bound-by-controller": "yes" } },
            "spec": { "capacity": { "storage": "10Gi" }, "accessModes": ["ReadWriteOnce"],
              "persistentVolumeReclaimPolicy": "Delete",
              "awsElasticBlockStore": { "volumeID": "aws://us-east-1b/vol-7", "fsType": "xfs" },
              "claimRef": { "namespace": "orders", "name": "data-db-0", "uid": "blue-uid", "resourceVersion": "5" } },
            "status": { "phase": "Bound" }
        }))
        .unwrap();
        let claim = reserved_for("orders", "data-db-0", "green-uid");
        let g =
            serde_json::to_value(green_volume(&blue, &claim, "Delete", true, &origin())).unwrap();
        assert_eq!(g["spec"]["claimRef"]["uid"], "green-uid");
        assert_eq!(g["spec"]["claimRef"]["name"], "data-db-0");
        assert_eq!(g["spec"]["claimRef"]["namespace"], "orders");
        assert!(g["spec"]["claimRef"]["resourceVersion"].is_null());
        assert_eq!(g["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(g["metadata"]["annotations"][ORIGINAL_RECLAIM], "Delete");
        assert!(g["spec"]["awsElasticBlockStore"].is_null());
        assert_eq!(g["spec"]["csi"]["volumeHandle"], "vol-7");
        assert_eq!(g["spec"]["csi"]["fsType"], "xfs");
        assert_eq!(
            g["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
                [0],
            "us-east-1b"
        );
        assert!(g["status"].is_null() && g["metadata"]["uid"].is_null());

        let kept =
            serde_json::to_value(green_volume(&blue, &claim, "Delete", false, &origin())).unwrap();
        assert_eq!(
            kept["spec"]["awsElasticBlockStore"]["volumeID"],
            "aws://us-east-1b/vol-7"
        );
    }
}
