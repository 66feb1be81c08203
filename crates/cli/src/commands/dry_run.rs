//! `migrate --dry-run`: each mutation as the API request it would be (cluster, method,
//! path, body), in the order the phase machine would make them on the observed world.

use baton_core::machine::Action;
use baton_core::plan::AppPlan;
use baton_kube::convert::{MIGRATION, ORIGINAL_RECLAIM, ORIGINAL_RETENTION};
use serde_json::json;

use super::engine::{Engine, SNAPSHOT_TAG};

/// One line per request.
pub fn request(engine: &Engine, app: &AppPlan, a: &Action) -> String {
    let ns = &app.namespace;
    let name = &app.name;
    let (ctx, method, path, body) = match a {
        Action::RetainBlueVolume { pv, original } => (
            &engine.blue.context,
            "PATCH",
            format!("/api/v1/persistentvolumes/{pv}"),
            json!({ "metadata": { "annotations": { ORIGINAL_RECLAIM: original.as_str() } }, "spec": { "persistentVolumeReclaimPolicy": "Retain" } }),
        ),
        Action::RetainBlueClaims { original } => (
            &engine.blue.context,
            "PATCH",
            format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}"),
            json!({ "metadata": { "annotations": { ORIGINAL_RETENTION: format!("whenScaled={},whenDeleted={}", original.when_scaled, original.when_deleted) } },
                    "spec": { "persistentVolumeClaimRetentionPolicy": { "whenScaled": "Retain", "whenDeleted": "Retain" } } }),
        ),
        Action::ScaleBlue { replicas } => (
            &engine.blue.context,
            "PATCH",
            format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}/scale"),
            json!({ "spec": { "replicas": replicas } }),
        ),
        Action::ScaleGreen { replicas } => (
            &engine.green.context,
            "PATCH",
            format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}/scale"),
            json!({ "spec": { "replicas": replicas } }),
        ),
        Action::StartSnapshot { volume_id, claim } => (
            &"ec2".to_string(),
            "CreateSnapshot",
            volume_id.clone(),
            json!({ "VolumeId": volume_id, "TagSpecifications": { SNAPSHOT_TAG: engine.migration, "baton.io/claim": format!("{ns}/{claim}") } }),
        ),
        Action::CreateGreenClaim { claim } => {
            let pv = app
                .volumes
                .iter()
                .find(|v| &v.claim == claim)
                .map(|v| v.pv.clone())
                .unwrap_or_default();
            (
                &engine.green.context,
                "POST",
                format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
                json!({ "metadata": { "name": claim, "namespace": ns, "annotations": { MIGRATION: engine.migration } },
                        "spec": { "volumeName": pv, "...": "blue's accessModes, resources, storageClassName, volumeMode" } }),
            )
        }
        Action::CreateGreenVolume {
            pv,
            claim,
            claim_uid,
        } => (
            &engine.green.context,
            "POST",
            "/api/v1/persistentvolumes".to_string(),
            json!({ "metadata": { "name": pv, "annotations": { MIGRATION: engine.migration } },
                    "spec": { "claimRef": { "namespace": ns, "name": claim, "uid": claim_uid }, "persistentVolumeReclaimPolicy": "Retain", "...": "blue's PV spec" } }),
        ),
        Action::RetainGreenVolume { pv } => (
            &engine.green.context,
            "PATCH",
            format!("/api/v1/persistentvolumes/{pv}"),
            json!({ "spec": { "persistentVolumeReclaimPolicy": "Retain" } }),
        ),
        Action::DeleteGreenClaim { claim } => (
            &engine.green.context,
            "DELETE",
            format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"),
            json!(null),
        ),
        Action::DeleteGreenVolume { pv } => (
            &engine.green.context,
            "DELETE",
            format!("/api/v1/persistentvolumes/{pv}"),
            json!(null),
        ),
        Action::RestoreBlueVolume { pv, policy } => (
            &engine.blue.context,
            "PATCH",
            format!("/api/v1/persistentvolumes/{pv}"),
            json!({ "spec": { "persistentVolumeReclaimPolicy": policy.as_str() } }),
        ),
        Action::RestoreBlueClaims { policy } => (
            &engine.blue.context,
            "PATCH",
            format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}"),
            json!({ "spec": { "persistentVolumeClaimRetentionPolicy": { "whenScaled": policy.when_scaled, "whenDeleted": policy.when_deleted } } }),
        ),
        Action::DeleteBlueClaim { claim } => (
            &engine.blue.context,
            "DELETE",
            format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"),
            json!(null),
        ),
        Action::DeleteBlueVolume { pv } => (
            &engine.blue.context,
            "DELETE",
            format!("/api/v1/persistentvolumes/{pv}"),
            json!(null),
        ),
        Action::RestoreGreenVolume { pv, policy } => (
            &engine.green.context,
            "PATCH",
            format!("/api/v1/persistentvolumes/{pv}"),
            json!({ "spec": { "persistentVolumeReclaimPolicy": policy.as_str() } }),
        ),
    };
    if body.is_null() {
        format!("{ctx:<6} {method:<6} {path}")
    } else {
        format!("{ctx:<6} {method:<6} {path} {body}")
    }
}
