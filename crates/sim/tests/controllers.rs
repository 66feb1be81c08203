//! The emulated control plane without AWS: StatefulSet and Deployment controllers, the
//! PV binder with statically provisioned (hostPath) volumes, scheduler, kubelet and
//! storage-object-in-use protection. Each test is named after the Kubernetes fact it pins.
//! Waits use watches (`await_condition`), never sleeps.

mod common;

use std::time::Duration;

use baton_sim::controllers::{ControlPlane, Ctx, Delays};
use common::Bed;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use serde_json::json;

async fn bed() -> (Bed, ControlPlane) {
    let bed = Bed::with(vec![baton_sim::ClusterSpec::new(
        "blue",
        "v1.29.8-eks-a737599",
    )])
    .await;
    let cp = ControlPlane::start(Ctx::new(
        bed.cluster("blue").clone(),
        None,
        Delays::default(),
    ));
    let nodes: Api<Node> = Api::all(bed.client("blue").await);
    for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let node: Node = serde_json::from_value(json!({
            "metadata": { "name": format!("node-{i}"), "labels": { "topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": format!("node-{i}") } },
            "spec": {},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let ready = json!({ "status": { "conditions": [{ "type": "Ready", "status": "True" }], "addresses": [{ "type": "InternalIP", "address": format!("10.0.1.{}", 10 + i) }] } });
        nodes
            .patch_status(
                &format!("node-{i}"),
                &PatchParams::default(),
                &Patch::Merge(ready),
            )
            .await
            .unwrap();
    }
    (bed, cp)
}

fn host_pv(name: &str, zone: &str) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "hostPath": { "path": format!("/data/{name}") },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone] }] }] } },
        }
    }))
    .unwrap()
}

fn sts(name: &str, replicas: i32, policy: &str, when_scaled: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "serviceName": name, "replicas": replicas, "podManagementPolicy": policy,
            "persistentVolumeClaimRetentionPolicy": { "whenScaled": when_scaled, "whenDeleted": "Retain" },
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "c", "image": "db:1" }] } },
            "volumeClaimTemplates": [{ "metadata": { "name": "data" }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": { "requests": { "storage": "1Gi" } } } }],
        }
    }))
    .unwrap()
}

fn ready_replicas(n: i32) -> impl Condition<StatefulSet> {
    move |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref())
            .is_some_and(|st| st.ready_replicas.unwrap_or(0) == n && st.replicas == n)
    }
}

async fn wait<K, C>(api: Api<K>, name: &str, cond: C)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: Condition<K>,
{
    tokio::time::timeout(Duration::from_secs(20), await_condition(api, name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name} did not reach the condition within 20s"))
        .unwrap();
}

#[tokio::test]
async fn statefulset_claims_are_named_template_sts_ordinal_and_bind_before_pods_run() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for (i, z) in ["us-east-1a", "us-east-1b", "us-east-1a"]
        .iter()
        .enumerate()
    {
        pvs.create(&PostParams::default(), &host_pv(&format!("pv-{i}"), z))
            .await
            .unwrap();
    }
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    stss.create(
        &PostParams::default(),
        &sts("db", 3, "OrderedReady", "Retain"),
    )
    .await
    .unwrap();
    wait(stss.clone(), "db", ready_replicas(3)).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        let pvc = pvcs.get(&format!("data-db-{i}")).await.unwrap();
        assert_eq!(pvc.status.as_ref().unwrap().phase.as_deref(), Some("Bound"));
        let pv = pvs
            .get(pvc.spec.as_ref().unwrap().volume_name.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(
            pv.spec.as_ref().unwrap().claim_ref.as_ref().unwrap().uid,
            pvc.metadata.uid,
            "claimRef carries the claim's uid"
        );
        assert!(
            pvc.metadata
                .finalizers
                .unwrap()
                .contains(&"kubernetes.io/pvc-protection".to_string())
        );
        let pod = pods.get(&format!("db-{i}")).await.unwrap();
        // The pod landed in its volume's zone.
        let node = pod.spec.unwrap().node_name.unwrap();
        let zone = pv
            .spec
            .unwrap()
            .node_affinity
            .unwrap()
            .required
            .unwrap()
            .node_selector_terms[0]
            .match_expressions
            .as_ref()
            .unwrap()[0]
            .values
            .clone()
            .unwrap()[0]
            .clone();
        let node_zone = Api::<Node>::all(client.clone())
            .get(&node)
            .await
            .unwrap()
            .metadata
            .labels
            .unwrap()["topology.kubernetes.io/zone"]
            .clone();
        assert_eq!(zone, node_zone);
    }
}

#[tokio::test]
async fn scale_down_with_when_scaled_delete_deletes_claims_and_retain_keeps_them() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for i in 0..4 {
        pvs.create(
            &PostParams::default(),
            &host_pv(&format!("pv-{i}"), "us-east-1a"),
        )
        .await
        .unwrap();
    }
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    stss.create(
        &PostParams::default(),
        &sts("keep", 1, "Parallel", "Retain"),
    )
    .await
    .unwrap();
    stss.create(
        &PostParams::default(),
        &sts("drop", 1, "Parallel", "Delete"),
    )
    .await
    .unwrap();
    wait(stss.clone(), "keep", ready_replicas(1)).await;
    wait(stss.clone(), "drop", ready_replicas(1)).await;
    for name in ["keep", "drop"] {
        stss.patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    }
    wait(stss.clone(), "keep", ready_replicas(0)).await;
    wait(stss.clone(), "drop", ready_replicas(0)).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    wait(
        pvcs.clone(),
        "data-drop-0",
        |p: Option<&PersistentVolumeClaim>| p.is_none(),
    )
    .await;
    assert!(
        pvcs.get("data-keep-0").await.is_ok(),
        "whenScaled: Retain keeps the claim"
    );
    // The dropped claim's PV (hostPath, Retain by default for static PVs) becomes Released
    // (the binder's next pass after the claim went), and is not deleted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let phases: Vec<Option<String>> = pvs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|pv| pv.status.and_then(|s| s.phase))
            .collect();
        let released = phases
            .iter()
            .filter(|p| p.as_deref() == Some("Released"))
            .count();
        if released == 1 {
            assert_eq!(phases.len(), 4, "no PV deleted: {phases:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "one PV Released within 10 s: {phases:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pv_prebound_by_claim_ref_without_uid_binds_only_that_claim_name() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let mut pv = host_pv("reserved", "us-east-1a");
    pv.spec.as_mut().unwrap().claim_ref =
        Some(serde_json::from_value(json!({ "namespace": "default", "name": "wanted" })).unwrap());
    pv.spec.as_mut().unwrap().capacity =
        Some(serde_json::from_value(json!({ "storage": "100Mi" })).unwrap());
    pvs.create(&PostParams::default(), &pv).await.unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim = |name: &str| -> PersistentVolumeClaim {
        serde_json::from_value(json!({ "metadata": { "name": name }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": { "requests": { "storage": "1Gi" } } } })).unwrap()
    };
    pvcs.create(&PostParams::default(), &claim("other"))
        .await
        .unwrap();
    pvcs.create(&PostParams::default(), &claim("wanted"))
        .await
        .unwrap();
    // Bound although it asks for more than the PV has: with claimRef set, the binder skips size checks.
    wait(
        pvcs.clone(),
        "wanted",
        |p: Option<&PersistentVolumeClaim>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await;
    let other = pvcs.get("other").await.unwrap();
    assert_eq!(other.status.unwrap().phase.as_deref(), Some("Pending"));
    let bound = pvs.get("reserved").await.unwrap();
    assert_eq!(
        bound.spec.unwrap().claim_ref.unwrap().uid,
        pvcs.get("wanted").await.unwrap().metadata.uid
    );
}

#[tokio::test]
async fn pv_with_claim_ref_uid_of_a_missing_claim_is_released() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let mut pv = host_pv("early", "us-east-1a");
    pv.spec.as_mut().unwrap().claim_ref = Some(serde_json::from_value(json!({ "namespace": "default", "name": "later", "uid": "11111111-2222-3333-4444-555555555555" })).unwrap());
    pvs.create(&PostParams::default(), &pv).await.unwrap();
    wait(pvs.clone(), "early", |p: Option<&PersistentVolume>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Released")
    })
    .await;
}

#[tokio::test]
async fn claim_whose_bound_volume_disappears_is_lost() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(&PostParams::default(), &host_pv("gone", "us-east-1a"))
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({ "metadata": { "name": "c" }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "gone", "resources": { "requests": { "storage": "1Gi" } } } })).unwrap();
    pvcs.create(&PostParams::default(), &pvc).await.unwrap();
    wait(pvcs.clone(), "c", |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Bound")
    })
    .await;
    // pv-protection holds a bound PV: force it away by removing the finalizer after delete.
    pvs.delete("gone", &DeleteParams::default()).await.unwrap();
    assert!(
        pvs.get("gone")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some(),
        "pv-protection holds a bound PV"
    );
    pvs.patch(
        "gone",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    wait(pvcs.clone(), "c", |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Lost")
    })
    .await;
}

#[tokio::test]
async fn pvc_protection_holds_a_claim_while_a_pod_uses_it() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &host_pv("p", "us-east-1a"))
        .await
        .unwrap();
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    stss.create(
        &PostParams::default(),
        &sts("app", 1, "OrderedReady", "Retain"),
    )
    .await
    .unwrap();
    wait(stss.clone(), "app", ready_replicas(1)).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    pvcs.delete("data-app-0", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        pvcs.get("data-app-0")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    stss.patch_scale(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
    )
    .await
    .unwrap();
    wait(
        pvcs.clone(),
        "data-app-0",
        |p: Option<&PersistentVolumeClaim>| p.is_none(),
    )
    .await;
}

#[tokio::test]
async fn pod_without_a_node_in_its_volume_zone_stays_pending_with_failed_scheduling() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &host_pv("far", "us-east-1c"))
        .await
        .unwrap();
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    stss.create(
        &PostParams::default(),
        &sts("far", 1, "OrderedReady", "Retain"),
    )
    .await
    .unwrap();
    let message = common::event_message_containing(
        &client,
        "default",
        "far-0",
        "FailedScheduling",
        "volume node affinity conflict",
    )
    .await;
    assert!(
        message.contains("volume node affinity conflict"),
        "{message}"
    );
    let pod = Api::<Pod>::namespaced(client, "default")
        .get("far-0")
        .await
        .unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn deployment_scales_pods_and_reports_available() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web" } }, "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "w", "image": "nginx:1" }] } } }
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let avail = |n: i32| {
        move |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.available_replicas.unwrap_or(0) == n && s.replicas.unwrap_or(0) == n
            })
        }
    };
    wait(deploys.clone(), "web", avail(3)).await;
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
        )
        .await
        .unwrap();
    wait(deploys.clone(), "web", avail(1)).await;
    // Status counts the pods that are not terminating; the two deleted ones are gone
    // once their deletion has run (at once, or after a graceful stop).
    let pods = Api::<Pod>::namespaced(client, "default");
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len();
        if left == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1, "the scaled-down pods are not gone");
}

#[tokio::test]
async fn statefulset_at_zero_replicas_creates_no_claims_and_reuses_an_existing_claim() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    stss.create(
        &PostParams::default(),
        &sts("idle", 0, "OrderedReady", "Retain"),
    )
    .await
    .unwrap();
    wait(stss.clone(), "idle", |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref())
            .is_some_and(|st| st.observed_generation == Some(1))
    })
    .await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    assert!(
        pvcs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no claims at 0 replicas"
    );
    // A claim with the template's name, made beforehand (as baton makes green's), is used as is.
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &host_pv("pre", "us-east-1a"))
        .await
        .unwrap();
    let pre: PersistentVolumeClaim = serde_json::from_value(json!({ "metadata": { "name": "data-idle-0", "labels": { "made-by": "test" } }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "pre", "resources": { "requests": { "storage": "1Gi" } } } })).unwrap();
    let made = pvcs.create(&PostParams::default(), &pre).await.unwrap();
    stss.patch_scale(
        "idle",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
    )
    .await
    .unwrap();
    wait(stss.clone(), "idle", ready_replicas(1)).await;
    let used = pvcs.get("data-idle-0").await.unwrap();
    assert_eq!(
        used.metadata.uid, made.metadata.uid,
        "the existing claim was reused, not replaced"
    );
    assert_eq!(used.spec.unwrap().volume_name.as_deref(), Some("pre"));
}

#[tokio::test]
async fn a_claim_carrying_bind_completed_whose_volume_is_missing_goes_lost_without_it_it_waits() {
    let (bed, _cp) = bed().await;
    let client = bed.client("blue").await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim = |name: &str, stale: bool| -> PersistentVolumeClaim {
        let mut md = json!({ "name": name });
        if stale {
            // Copied from another cluster without stripping the binding annotations.
            md["annotations"] = json!({ "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes" });
        }
        serde_json::from_value(json!({ "metadata": md, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "not-yet", "resources": { "requests": { "storage": "1Gi" } } } })).unwrap()
    };
    pvcs.create(&PostParams::default(), &claim("stale", true))
        .await
        .unwrap();
    pvcs.create(&PostParams::default(), &claim("clean", false))
        .await
        .unwrap();
    wait(
        pvcs.clone(),
        "stale",
        |p: Option<&PersistentVolumeClaim>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Lost")
        },
    )
    .await;
    // The clean claim waits for its volume, and binds once it appears.
    assert_eq!(
        pvcs.get("clean")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Pending")
    );
    Api::<PersistentVolume>::all(client)
        .create(&PostParams::default(), &host_pv("not-yet", "us-east-1a"))
        .await
        .unwrap();
    wait(
        pvcs.clone(),
        "clean",
        |p: Option<&PersistentVolumeClaim>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await;
}
