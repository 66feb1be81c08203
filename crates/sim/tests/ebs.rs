//! The emulated estate with EBS on moto: each test pins one storage fact that baton's
//! safety depends on — provisioning in the node's zone, one attachment at a time, zone
//! rules, reclaim policies, in-tree PVs through the CSI driver, and the data fingerprint
//! carried from blue to green.

mod common;

use std::time::Duration;

use common::estate::EstateBed;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use serde_json::json;

async fn wait<K, C>(api: Api<K>, name: &str, cond: C)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: Condition<K>,
{
    tokio::time::timeout(Duration::from_secs(30), await_condition(api, name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name} did not reach the condition within 30s"))
        .unwrap();
}

fn ready(n: i32) -> impl Condition<StatefulSet> {
    move |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref())
            .is_some_and(|st| st.ready_replicas.unwrap_or(0) == n && st.replicas == n)
    }
}

async fn storage_class(
    client: &kube::Client,
    name: &str,
    provisioner: &str,
    reclaim: &str,
    mode: &str,
) {
    let sc: StorageClass = serde_json::from_value(json!({
        "metadata": { "name": name }, "provisioner": provisioner, "reclaimPolicy": reclaim,
        "volumeBindingMode": mode, "parameters": { "type": "gp3" },
    }))
    .unwrap();
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
}

fn sts(name: &str, replicas: i32, class: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "serviceName": name, "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "c", "image": "postgres:16" }] } },
            "volumeClaimTemplates": [{ "metadata": { "name": "data" }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": class, "resources": { "requests": { "storage": "4Gi" } } } }],
        }
    }))
    .unwrap()
}

/// A one-replica StatefulSet claiming `size` from statically provisioned volumes.
fn sized_sts(name: &str, size: &str) -> StatefulSet {
    let mut s = sts(name, 1, "");
    let template = &mut s
        .spec
        .as_mut()
        .unwrap()
        .volume_claim_templates
        .as_mut()
        .unwrap()[0];
    template
        .spec
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests = Some(serde_json::from_value(json!({ "storage": size })).unwrap());
    s
}

async fn volume(bed: &EstateBed, id: &str) -> baton_aws::Volume {
    bed.estate
        .aws
        .describe_volumes_by_id(&[id.to_string()])
        .await
        .unwrap()
        .remove(0)
}

/// Polls EC2 (which has no watch) until `f` holds.
async fn until_volume(
    bed: &EstateBed,
    id: &str,
    what: &str,
    f: impl Fn(&baton_aws::Volume) -> bool,
) -> baton_aws::Volume {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = volume(bed, id).await;
        if f(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "volume {id} never became {what}: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pv_of(client: &kube::Client, ns: &str, claim: &str) -> PersistentVolume {
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get(claim)
        .await
        .unwrap();
    Api::<PersistentVolume>::all(client.clone())
        .get(pvc.spec.unwrap().volume_name.as_deref().unwrap())
        .await
        .unwrap()
}

fn volume_id(pv: &PersistentVolume) -> String {
    let spec = pv.spec.as_ref().unwrap();
    match &spec.csi {
        Some(c) => c.volume_handle.clone(),
        None => spec
            .aws_elastic_block_store
            .as_ref()
            .unwrap()
            .volume_id
            .rsplit('/')
            .next()
            .unwrap()
            .to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csi_provisioner_creates_the_volume_in_the_selected_node_zone_and_attaches_it() {
    let bed = EstateBed::start(2).await;
    let blue = bed.client("blue").await;
    storage_class(
        &blue,
        "gp3",
        "ebs.csi.aws.com",
        "Delete",
        "WaitForFirstConsumer",
    )
    .await;
    let stss: Api<StatefulSet> = Api::namespaced(blue.clone(), "default");
    stss.create(&PostParams::default(), &sts("db", 2, "gp3"))
        .await
        .unwrap();
    wait(stss.clone(), "db", ready(2)).await;
    for i in 0..2 {
        let pv = pv_of(&blue, "default", &format!("data-db-{i}")).await;
        let spec = pv.spec.clone().unwrap();
        assert_eq!(spec.csi.as_ref().unwrap().driver, "ebs.csi.aws.com");
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        let term = &spec
            .node_affinity
            .unwrap()
            .required
            .unwrap()
            .node_selector_terms[0]
            .match_expressions
            .clone()
            .unwrap()[0];
        assert_eq!(term.key, "topology.ebs.csi.aws.com/zone");
        let pod = Api::<Pod>::namespaced(blue.clone(), "default")
            .get(&format!("db-{i}"))
            .await
            .unwrap();
        let node = pod.spec.unwrap().node_name.unwrap();
        let v = until_volume(&bed, &volume_id(&pv), "in-use", |v| {
            v.state == baton_aws::VolumeState::InUse
        })
        .await;
        assert_eq!(
            term.values.as_ref().unwrap()[0],
            v.availability_zone,
            "PV pins the volume's zone"
        );
        assert_eq!(v.size_gib, 4);
        let inst = bed
            .estate
            .aws
            .describe_instances(&[baton_aws::Filter::new(
                "instance-id",
                [v.attachments[0].instance_id.clone()],
            )])
            .await
            .unwrap();
        assert_eq!(inst[0].availability_zone, v.availability_zone);
        assert!(node.starts_with("blue-node-"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_attached_to_one_instance_cannot_attach_to_another_and_data_continues_after_the_move()
 {
    let bed = EstateBed::start(2).await;
    let (blue, green) = (bed.client("blue").await, bed.client("green").await);
    storage_class(
        &blue,
        "gp3",
        "ebs.csi.aws.com",
        "Delete",
        "WaitForFirstConsumer",
    )
    .await;
    storage_class(
        &green,
        "gp3",
        "ebs.csi.aws.com",
        "Delete",
        "WaitForFirstConsumer",
    )
    .await;
    let blue_sts: Api<StatefulSet> = Api::namespaced(blue.clone(), "default");
    blue_sts
        .create(&PostParams::default(), &sts("db", 1, "gp3"))
        .await
        .unwrap();
    wait(blue_sts.clone(), "db", ready(1)).await;
    let blue_pv = pv_of(&blue, "default", "data-db-0").await;
    let vol = volume_id(&blue_pv);
    let zone = until_volume(&bed, &vol, "in-use", |v| {
        v.state == baton_aws::VolumeState::InUse
    })
    .await
    .availability_zone;
    // Protect the volume first, as baton does.
    Api::<PersistentVolume>::all(blue.clone())
        .patch(
            &blue_pv.metadata.name.clone().unwrap(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "persistentVolumeReclaimPolicy": "Retain" } })),
        )
        .await
        .unwrap();

    // Green: claim first, then the PV pre-bound to the claim's uid, Retain.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(green.clone(), "default");
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({ "metadata": { "name": "data-db-0", "labels": { "app": "db" } }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "gp3", "volumeName": "moved-data-db-0", "resources": { "requests": { "storage": "4Gi" } } } })).unwrap();
    let created = pvcs.create(&PostParams::default(), &pvc).await.unwrap();
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": { "name": "moved-data-db-0" },
        "spec": {
            "capacity": { "storage": "4Gi" }, "accessModes": ["ReadWriteOnce"], "storageClassName": "gp3", "persistentVolumeReclaimPolicy": "Retain",
            "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": vol, "fsType": "ext4" },
            "claimRef": { "namespace": "default", "name": "data-db-0", "uid": created.metadata.uid.clone().unwrap() },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": [zone] }] }] } },
        }
    }))
    .unwrap();
    Api::<PersistentVolume>::all(green.clone())
        .create(&PostParams::default(), &pv)
        .await
        .unwrap();
    wait(
        pvcs.clone(),
        "data-db-0",
        |p: Option<&PersistentVolumeClaim>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await;

    // Green's pod while blue still holds the volume: EC2 (as AWS, unlike moto) refuses.
    let green_sts: Api<StatefulSet> = Api::namespaced(green.clone(), "default");
    green_sts
        .create(&PostParams::default(), &sts("db", 1, "gp3"))
        .await
        .unwrap();
    let message = common::event_message(&green, "default", "db-0", "FailedAttachVolume").await;
    assert!(message.contains("VolumeInUse"), "{message}");
    let waiting = Api::<Pod>::namespaced(green.clone(), "default")
        .get("db-0")
        .await
        .unwrap();
    assert_eq!(
        waiting.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "ContainerCreating while the volume is elsewhere"
    );
    assert_eq!(
        volume(&bed, &vol).await.attachments.len(),
        1,
        "still attached only to blue's node"
    );

    // Blue lets go: its pod stops (writing its fingerprint), the volume detaches, green attaches.
    blue_sts
        .patch_scale(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    wait(green_sts.clone(), "db", ready(1)).await;
    let after_blue = volume(&bed, &vol).await;
    let blue_value: u64 = after_blue.tags["baton.sim/fingerprint"].parse().unwrap();
    assert!(blue_value > 0, "blue's pod advanced the fingerprint");
    assert_eq!(after_blue.attachments.len(), 1);

    green_sts
        .patch_scale(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    let done = until_volume(&bed, &vol, "available", |v| {
        v.state == baton_aws::VolumeState::Available
    })
    .await;
    let writer = &done.tags["baton.sim/fingerprint-writer"];
    assert_eq!(
        writer,
        &format!("green/default/db-0 from {blue_value}"),
        "green continued from blue's last value"
    );
    assert!(done.tags["baton.sim/fingerprint"].parse::<u64>().unwrap() > blue_value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_across_zones_fails_with_zone_mismatch() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "only-a", 0).await;
    let green = bed.client("green").await;
    let v = bed
        .estate
        .aws
        .create_volume(&baton_aws::NewVolume {
            availability_zone: "us-east-1b".into(),
            size_gib: 1,
            volume_type: "gp3".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A PV that forgot its zone affinity: the scheduler lets it through, EC2 does not.
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": { "name": "no-affinity" },
        "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"], "storageClassName": "", "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": v.id } }
    }))
    .unwrap();
    Api::<PersistentVolume>::all(green.clone())
        .create(&PostParams::default(), &pv)
        .await
        .unwrap();
    let stss: Api<StatefulSet> = Api::namespaced(green.clone(), "default");
    let s = sized_sts("x", "1Gi");
    stss.create(&PostParams::default(), &s).await.unwrap();
    let message = common::event_message(&green, "default", "x-0", "FailedAttachVolume").await;
    assert!(message.contains("InvalidVolume.ZoneMismatch"), "{message}");
    assert!(volume(&bed, &v.id).await.attachments.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_delete_deletes_the_ebs_volume_and_retain_keeps_it() {
    let bed = EstateBed::start(1).await;
    let blue = bed.client("blue").await;
    storage_class(
        &blue,
        "gp3-delete",
        "ebs.csi.aws.com",
        "Delete",
        "Immediate",
    )
    .await;
    storage_class(
        &blue,
        "gp3-retain",
        "ebs.csi.aws.com",
        "Retain",
        "Immediate",
    )
    .await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(blue.clone(), "default");
    let mut ids = Vec::new();
    for class in ["gp3-delete", "gp3-retain"] {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({ "metadata": { "name": class }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": class, "resources": { "requests": { "storage": "1Gi" } } } })).unwrap();
        pvcs.create(&PostParams::default(), &pvc).await.unwrap();
        wait(pvcs.clone(), class, |p: Option<&PersistentVolumeClaim>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        })
        .await;
        let pv = pv_of(&blue, "default", class).await;
        ids.push((pv.metadata.name.clone().unwrap(), volume_id(&pv)));
        pvcs.delete(class, &DeleteParams::default()).await.unwrap();
    }
    let pvs: Api<PersistentVolume> = Api::all(blue.clone());
    wait(pvs.clone(), &ids[0].0, |p: Option<&PersistentVolume>| {
        p.is_none()
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match bed
            .estate
            .aws
            .describe_volumes_by_id(std::slice::from_ref(&ids[0].1))
            .await
        {
            Err(e) if e.is_not_found() => break,
            Ok(v) if v.is_empty() || v[0].state == baton_aws::VolumeState::Deleted => break,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Delete policy did not delete the EBS volume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait(pvs.clone(), &ids[1].0, |p: Option<&PersistentVolume>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Released")
    })
    .await;
    assert_eq!(
        volume(&bed, &ids[1].1).await.state,
        baton_aws::VolumeState::Available,
        "Retain keeps the volume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_tree_aws_ebs_volumes_attach_through_the_csi_driver() {
    let bed = EstateBed::start(1).await;
    let blue = bed.client("blue").await;
    storage_class(
        &blue,
        "gp2",
        "kubernetes.io/aws-ebs",
        "Delete",
        "WaitForFirstConsumer",
    )
    .await;
    let stss: Api<StatefulSet> = Api::namespaced(blue.clone(), "default");
    stss.create(&PostParams::default(), &sts("legacy", 1, "gp2"))
        .await
        .unwrap();
    if tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(stss.clone(), "legacy", ready(1)),
    )
    .await
    .is_err()
    {
        panic!("not ready:\n{}", bed.dump("blue"));
    }
    let pv = pv_of(&blue, "default", "data-legacy-0").await;
    let ebs = pv
        .spec
        .as_ref()
        .unwrap()
        .aws_elastic_block_store
        .as_ref()
        .expect("an in-tree PV");
    assert!(
        ebs.volume_id.starts_with("aws://us-east-1"),
        "{}",
        ebs.volume_id
    );
    until_volume(&bed, &volume_id(&pv), "in-use", |v| {
        v.state == baton_aws::VolumeState::InUse
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_attach_io2_volume_may_attach_to_two_instances() {
    let bed = EstateBed::start(0).await;
    bed.add_node("blue", "a1", 0).await;
    bed.add_node("green", "a2", 0).await;
    let v = bed
        .estate
        .aws
        .create_volume(&baton_aws::NewVolume {
            availability_zone: "us-east-1a".into(),
            size_gib: 4,
            volume_type: "io2".into(),
            iops: Some(1000),
            multi_attach: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for ctx in ["blue", "green"] {
        let client = bed.client(ctx).await;
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": "shared" },
            "spec": { "capacity": { "storage": "4Gi" }, "accessModes": ["ReadWriteOnce"], "storageClassName": "", "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": v.id } }
        }))
        .unwrap();
        Api::<PersistentVolume>::all(client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .unwrap();
        let stss: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
        let s = sized_sts("multi", "4Gi");
        stss.create(&PostParams::default(), &s).await.unwrap();
        wait(stss, "multi", ready(1)).await;
    }
    // Both clusters' pods run on the one volume: each attach went through. (moto keeps a
    // single attachment record per volume, so EC2's view cannot show both.)
    for ctx in ["blue", "green"] {
        let vas =
            Api::<k8s_openapi::api::storage::v1::VolumeAttachment>::all(bed.client(ctx).await)
                .list(&ListParams::default())
                .await
                .unwrap();
        assert_eq!(vas.items.len(), 1);
        assert_eq!(
            vas.items[0].status.as_ref().map(|s| s.attached),
            Some(true),
            "attached in {ctx}"
        );
    }
    assert!(volume(&bed, &v.id).await.multi_attach);
}

/// What a run of EC2 calls answered, with ids replaced by the order they were made in
/// (each moto makes its own): every volume's tags and attachments, which volumes a tag
/// filter and an id filter find, every snapshot's volume and tags.
async fn tagged_estate(aws: &baton_aws::Aws) -> Vec<String> {
    use baton_aws::{Filter, NewVolume};
    let tags = |kv: &[(&str, &str)]| -> baton_aws::Tags {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut ids = Vec::new();
    for t in [
        tags(&[("app", "db"), ("team", "a")]),
        tags(&[("app", "cache")]),
        tags(&[]),
    ] {
        let v = aws
            .create_volume(&NewVolume {
                availability_zone: "us-east-1a".into(),
                size_gib: 1,
                volume_type: "gp3".into(),
                tags: t,
                iops: None,
                multi_attach: false,
                kms_key_id: None,
            })
            .await
            .unwrap();
        ids.push(v.id);
    }
    aws.create_tags(&ids[1..], &tags(&[("fingerprint", "42")]))
        .await
        .unwrap();
    let snap = aws
        .create_snapshot(&baton_aws::NewSnapshot {
            volume_id: ids[0].clone(),
            description: "check".into(),
            tags: tags(&[("made-by", "test")]),
        })
        .await
        .unwrap();
    let name = |id: &str| {
        ids.iter()
            .position(|i| i == id)
            .map_or_else(|| id.to_string(), |n| format!("vol#{n}"))
    };
    let mut out = Vec::new();
    for v in aws.describe_volumes_by_id(&ids).await.unwrap() {
        out.push(format!("{} {:?} {:?}", name(&v.id), v.tags, v.state));
    }
    for (label, f) in [
        ("tag:fingerprint=42", Filter::new("tag:fingerprint", ["42"])),
        ("tag-key=app", Filter::new("tag-key", ["app"])),
        (
            "volume-id=vol#2,vol#0",
            Filter::new("volume-id", [ids[2].clone(), ids[0].clone()]),
        ),
    ] {
        let mut found: Vec<String> = aws
            .describe_volumes(std::slice::from_ref(&f))
            .await
            .unwrap()
            .iter()
            .map(|v| name(&v.id))
            .collect();
        found.sort();
        out.push(format!("{label}: {found:?}"));
    }
    for s in aws
        .describe_snapshots(std::slice::from_ref(&snap.id), &[])
        .await
        .unwrap()
    {
        out.push(format!("snapshot of {} {:?}", name(&s.volume_id), s.tags));
    }
    out
}

/// The emulator starts moto through `moto_server.py`, which replaces moto's tag lookup
/// and caches per-request work; the answers must be the ones moto gives as it ships.
#[tokio::test]
async fn moto_as_the_emulator_starts_it_answers_as_moto_ships() {
    let mut answers = Vec::new();
    for patched in [false, true] {
        let moto = baton_sim::moto::Moto::start_with(patched).await.unwrap();
        let aws = baton_aws::Aws::connect(&baton_sim::estate::aws_config(
            &moto.endpoint(),
            "us-east-1",
        ))
        .await
        .unwrap();
        answers.push(tagged_estate(&aws).await);
    }
    assert_eq!(answers[0], answers[1], "stock moto vs moto_server.py");
    // And the answers say something: tags were found, filters matched.
    let text = answers[1].join("\n");
    for want in [
        r#"vol#0 {"app": "db", "team": "a"}"#,
        r#"vol#1 {"app": "cache", "fingerprint": "42"}"#,
        r#"vol#2 {"fingerprint": "42"}"#,
        r#"["vol#1", "vol#2"]"#,
        r#"["vol#0", "vol#1"]"#,
        r#"["vol#0", "vol#2"]"#,
        r#"snapshot of vol#0 {"made-by": "test"}"#,
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

/// The external-attacher holds a PV while its volume is attached (csi-attacher puts its
/// finalizer `external-attacher/ebs-csi-aws-com` on the PV): a PV deleted while attached
/// stays, Terminating, and attached until the pod has gone and EC2 has detached the
/// volume; then the attacher lets the PV go. Without
/// it the emulator once lost the detach (it reads the volume's id from the PV) and left
/// the volume attached to a node with no VolumeAttachment — a rollback then waited for
/// `available` for ever (chaos bench, seed 21).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pv_deleted_while_attached_waits_for_the_detach() {
    let bed = EstateBed::start(2).await;
    let blue = bed.client("blue").await;
    storage_class(
        &blue,
        "gp3",
        "ebs.csi.aws.com",
        "Retain",
        "WaitForFirstConsumer",
    )
    .await;
    let stss: Api<StatefulSet> = Api::namespaced(blue.clone(), "default");
    stss.create(&PostParams::default(), &sts("db", 1, "gp3"))
        .await
        .unwrap();
    wait(stss.clone(), "db", ready(1)).await;
    let pv = pv_of(&blue, "default", "data-db-0").await;
    let id = volume_id(&pv);
    let name = pv.metadata.name.clone().unwrap();
    until_volume(&bed, &id, "in-use", |v| {
        v.state == baton_aws::VolumeState::InUse
    })
    .await;
    let pvs: Api<PersistentVolume> = Api::all(blue.clone());
    let held = pvs.get(&name).await.unwrap();
    assert!(
        held.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "external-attacher/ebs-csi-aws-com"),
        "{:?}",
        held.metadata.finalizers
    );
    pvs.delete(&name, &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let terminating = pvs.get(&name).await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        volume(&bed, &id).await.state,
        baton_aws::VolumeState::InUse,
        "still attached while the pod runs"
    );
    // The pod goes: the volume detaches, then the PV goes.
    stss.patch(
        "db",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({ "spec": { "replicas": 0 } })),
    )
    .await
    .unwrap();
    until_volume(&bed, &id, "available", |v| {
        v.state == baton_aws::VolumeState::Available && v.attachments.is_empty()
    })
    .await;
    // The attacher lets the PV go (pv-protection still holds it while its claim binds it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let fins = pvs
            .get_opt(&name)
            .await
            .unwrap()
            .and_then(|p| p.metadata.finalizers)
            .unwrap_or_default();
        if !fins
            .iter()
            .any(|f| f == "external-attacher/ebs-csi-aws-com")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the attacher never let the PV go: {fins:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
