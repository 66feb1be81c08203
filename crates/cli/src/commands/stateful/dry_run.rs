//! `migrate --dry-run`: each mutation as the API request it would be (cluster, method,
//! path, body), in the order the phase machine would make them on the observed world.

use anyhow::Context;
use baton_core::machine::Action;
use baton_core::plan::AppPlan;
use baton_kube::convert::{ORIGINAL_RECLAIM, ORIGINAL_RETENTION};
use baton_kube::manifest::{Origin, green_claim, green_volume, reserved_for};
use serde_json::json;

use super::engine::{Engine, SNAPSHOT_TAG};

/// Stands for the uid the claim's create returns, in the PV that reserves the volume for it.
const UID_OF_CREATED_CLAIM: &str = "<uid returned by creating the claim>";

/// One line per request; creates show the whole object baton would send.
pub async fn request(engine: &Engine, app: &AppPlan, a: &Action) -> anyhow::Result<String> {
    let ns = &app.namespace;
    let name = &app.name;
    let origin = Origin {
        migration: &engine.migration,
        from: &engine.blue.context,
    };
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
            let blue = engine
                .blue
                .claim(ns, claim)
                .await?
                .with_context(|| format!("blue's claim {ns}/{claim} is gone"))?;
            (
                &engine.green.context,
                "POST",
                format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
                serde_json::to_value(green_claim(&blue, &pv, &origin))?,
            )
        }
        Action::CreateGreenVolume { pv, claim, .. } => {
            let v = app
                .volumes
                .iter()
                .find(|v| &v.pv == pv)
                .context("PV not in the plan")?;
            let blue = engine
                .blue
                .volume(pv)
                .await?
                .with_context(|| format!("blue's PV {pv} is gone"))?;
            // The claim does not exist yet: its uid is whatever its create returns.
            let green = reserved_for(ns, claim, UID_OF_CREATED_CLAIM);
            (
                &engine.green.context,
                "POST",
                "/api/v1/persistentvolumes".to_string(),
                serde_json::to_value(green_volume(
                    &blue,
                    &green,
                    v.original_reclaim_policy.as_str(),
                    engine.convert_to_csi,
                    &origin,
                ))?,
            )
        }
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
    Ok(if body.is_null() {
        format!("{ctx:<6} {method:<6} {path}")
    } else {
        format!("{ctx:<6} {method:<6} {path} {body}")
    })
}
