//! Defaults and initial status the real API server applies on create (the types'
//! `SetDefaults_*` functions and strategies' `PrepareForCreate`). They matter to baton:
//! a PV created without a reclaim policy is `Retain`, a StorageClass's is `Delete`, a
//! StatefulSet's claim retention is `Retain`/`Retain`.

use base64::Engine;
use serde_json::{Value, json};

fn default(v: &mut Value, key: &str, d: Value) {
    if v.get(key).is_none_or(Value::is_null) {
        v[key] = d;
    }
}

/// Resets what a client may not choose on create (status, namespace finalizers), as the
/// strategies' `PrepareForCreate` do.
pub fn prepare_for_create(kind: &str, obj: &mut Value) {
    let status = match kind {
        "Namespace" => {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
            json!({ "phase": "Active" })
        }
        "PersistentVolume" | "PersistentVolumeClaim" => json!({ "phase": "Pending" }),
        "Pod" => json!({ "phase": "Pending", "qosClass": "BestEffort" }),
        "StatefulSet" => json!({ "replicas": 0, "availableReplicas": 0 }),
        "Deployment" => json!({}),
        "Service" => json!({ "loadBalancer": {} }),
        "VolumeAttachment" => json!({ "attached": false }),
        "CustomResourceDefinition" => crate::crd::established_status(obj),
        _ => return,
    };
    obj["status"] = status;
}

/// Applies the types' defaults, as the server does when it decodes any write (create,
/// update, patch result), so a client that omits a defaulted field changes nothing.
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "PersistentVolume" => {
            default(
                &mut obj["spec"],
                "persistentVolumeReclaimPolicy",
                json!("Retain"),
            );
            default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
        }
        "PersistentVolumeClaim" => {
            default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
        }
        "StatefulSet" => {
            let spec = &mut obj["spec"];
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(
                spec,
                "updateStrategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } }),
            );
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({ "whenDeleted": "Retain", "whenScaled": "Retain" }),
            );
            if let Some(templates) = spec
                .get_mut("volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for t in templates {
                    default(&mut t["spec"], "volumeMode", json!("Filesystem"));
                    t["apiVersion"] = json!("v1");
                    t["kind"] = json!("PersistentVolumeClaim");
                    default(t, "status", json!({ "phase": "Pending" }));
                }
            }
            if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                pod_spec(pod);
            }
        }
        "Deployment" => {
            let spec = &mut obj["spec"];
            default(spec, "replicas", json!(1));
            default(
                spec,
                "strategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } }),
            );
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                pod_spec(pod);
            }
        }
        "Pod" => {
            if let Some(pod) = obj.get_mut("spec") {
                pod_spec(pod);
            }
        }
        "Service" => {
            let spec = &mut obj["spec"];
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            default(spec, "ipFamilies", json!(["IPv4"]));
            default(spec, "ipFamilyPolicy", json!("SingleStack"));
            default(spec, "internalTrafficPolicy", json!("Cluster"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    default(p, "protocol", json!("TCP"));
                    let port = p["port"].clone();
                    default(p, "targetPort", port);
                }
            }
        }
        "StorageClass" => {
            default(obj, "reclaimPolicy", json!("Delete"));
            default(obj, "volumeBindingMode", json!("Immediate"));
        }
        "Secret" => {
            default(obj, "type", json!("Opaque"));
            fold_string_data(obj);
        }
        _ => {}
    }
}

/// `stringData` is write-only: the server folds it into `data` (base64).
fn fold_string_data(obj: &mut Value) {
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    for (k, v) in sd {
        let enc = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
        obj["data"][k] = Value::String(enc);
    }
}

fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let image = c["image"].as_str().unwrap_or_default();
            let tag_latest = image
                .rsplit('/')
                .next()
                .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
            let policy = if tag_latest && !image.contains('@') {
                "Always"
            } else {
                "IfNotPresent"
            };
            default(c, "imagePullPolicy", json!(policy));
            default(c, "terminationMessagePath", json!("/dev/termination-log"));
            default(c, "terminationMessagePolicy", json!("File"));
            default(c, "resources", json!({}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_defaults_to_retain_storageclass_to_delete() {
        let mut pv = json!({ "spec": {} });
        apply("PersistentVolume", &mut pv);
        prepare_for_create("PersistentVolume", &mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["status"]["phase"], "Pending");
        let mut sc = json!({ "provisioner": "ebs.csi.aws.com" });
        apply("StorageClass", &mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        let mut kept = json!({ "spec": { "persistentVolumeReclaimPolicy": "Delete" } });
        apply("PersistentVolume", &mut kept);
        assert_eq!(kept["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    }

    #[test]
    fn statefulset_defaults() {
        let mut s = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": "db:1.2" }] } } }, "status": { "replicas": 9 } });
        apply("StatefulSet", &mut s);
        prepare_for_create("StatefulSet", &mut s);
        assert!(
            s["spec"]["template"]["spec"]
                .get("initContainers")
                .is_none(),
            "defaults add no empty fields"
        );
        assert_eq!(s["spec"]["replicas"], 1);
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
            "Retain"
        );
        assert_eq!(
            s["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(s["status"]["replicas"], 0);
    }

    #[test]
    fn secret_string_data_is_folded() {
        let mut s = json!({ "stringData": { "k": "v" } });
        apply("Secret", &mut s);
        assert_eq!(s["data"]["k"], "dg==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }
}
