//! The emulated API server driven over HTTPS by kube-rs, as baton drives real clusters:
//! typed and dynamic CRUD, watches, optimistic concurrency, finalizers, garbage
//! collection, subresources, validation, Status errors, auth and dry-run.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Bed;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Pod,
};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
    WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({ "metadata": { "name": name, "labels": { "app": "db" } }, "data": { "k": "v" } }),
    )
    .unwrap()
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn ebs_pv(name: &str, vol: &str) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "capacity": { "storage": "10Gi" },
            "accessModes": ["ReadWriteOnce"],
            "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": vol, "fsType": "ext4" },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1a"] } ] }] } },
        }
    }))
    .unwrap()
}

fn sts(name: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "c", "image": "postgres:16" }] } },
            "volumeClaimTemplates": [{ "metadata": { "name": "data" }, "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } } }],
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn typed_crud_with_server_owned_metadata() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    let mut sent = cm("settings");
    sent.metadata.uid = Some("client-chosen".into());
    let created = api.create(&PostParams::default(), &sent).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    assert_ne!(uid, "client-chosen", "the server owns uid");
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();

    let got = api.get("settings").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "v");

    let mut changed = created.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = api
        .replace("settings", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1, "resourceVersion is monotonic");

    // A write based on the old version is a conflict, as on a real server.
    let stale = api
        .replace("settings", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    let s = api_error(stale);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(s.message.contains("the object has been modified"));

    // The uid cannot be changed either.
    let mut hijack = replaced.clone();
    hijack.metadata.uid = Some("other".into());
    assert_eq!(
        api_error(
            api.replace("settings", &PostParams::default(), &hijack)
                .await
                .unwrap_err()
        )
        .code,
        409
    );

    let dup = api_error(
        api.create(&PostParams::default(), &cm("settings"))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    api.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    let gone = api_error(api.get("settings").await.unwrap_err());
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "configmaps \"settings\" not found");
}

#[tokio::test]
async fn list_selectors_and_pages() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    for i in 0..25 {
        let mut c = cm(&format!("c{i:02}"));
        if i % 5 == 0 {
            c.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
        }
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let web = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 5);
    let not_web = api
        .list(&ListParams::default().labels("app notin (web)"))
        .await
        .unwrap();
    assert_eq!(not_web.items.len(), 20);
    let one = api
        .list(&ListParams::default().fields("metadata.name=c07"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);

    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    loop {
        let page = api.list(&lp).await.unwrap();
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    assert_eq!(
        names, expected,
        "three pages give every object once, in order"
    );
}

#[tokio::test]
async fn unsupported_field_selector_is_rejected() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    let e = api_error(
        api.list(&ListParams::default().fields("data.k=v"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert!(e.message.contains("field label not supported"));
    let pods: Api<Pod> = Api::all(bed.client("blue").await);
    pods.list(&ListParams::default().fields("spec.nodeName=node-1,status.phase!=Failed"))
        .await
        .unwrap();
}

#[tokio::test]
async fn patch_types_merge_json_strategic_and_apply() {
    let bed = Bed::start().await;
    let api: Api<StatefulSet> = Api::namespaced(bed.client("green").await, "default");
    api.create(&PostParams::default(), &sts("db"))
        .await
        .unwrap();
    let pp = PatchParams::default();
    api.patch(
        "db",
        &pp,
        &Patch::Merge(json!({ "metadata": { "labels": { "tier": "data" } } })),
    )
    .await
    .unwrap();
    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "replace", "path": "/spec/replicas", "value": 2 }]))
            .unwrap();
    api.patch("db", &pp, &Patch::Json::<()>(json_patch))
        .await
        .unwrap();
    let strategic = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": "postgres:17" }] } } } });
    let after = api
        .patch("db", &pp, &Patch::Strategic(strategic))
        .await
        .unwrap();
    let spec = after.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let c = &spec.template.spec.unwrap().containers[0];
    assert_eq!(
        (c.name.as_str(), c.image.as_deref()),
        ("c", Some("postgres:17"))
    );
    assert_eq!(after.metadata.labels.unwrap()["tier"], "data");
    assert_eq!(
        after.metadata.generation,
        Some(3),
        "two spec changes bumped generation twice"
    );

    let apply = PatchParams::apply("baton").force();
    let applied = api
        .patch("db", &apply, &Patch::Apply(json!({ "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": { "name": "db", "annotations": { "a": "b" } } })))
        .await
        .unwrap();
    assert_eq!(applied.metadata.annotations.unwrap()["a"], "b");
}

#[tokio::test]
async fn immutable_fields_are_invalid() {
    let bed = Bed::start().await;
    let client = bed.client("green").await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(&PostParams::default(), &ebs_pv("pv-a", "vol-0aaa"))
        .await
        .unwrap();
    let e = api_error(
        pvs.patch(
            "pv-a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "csi": { "volumeHandle": "vol-0bbb" } } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.contains("spec.persistentvolumesource: Forbidden"),
        "{}",
        e.message
    );
    // The reclaim policy is mutable: that is how baton protects volumes.
    let retained = pvs
        .patch(
            "pv-a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "persistentVolumeReclaimPolicy": "Delete" } })),
        )
        .await
        .unwrap();
    assert_eq!(
        retained
            .spec
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Delete")
    );

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "data-db-0" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } }, "storageClassName": "" }
    }))
    .unwrap();
    pvcs.create(&PostParams::default(), &pvc).await.unwrap();
    // volumeName may be set while empty (pre-binding), then never changed.
    pvcs.patch(
        "data-db-0",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "volumeName": "pv-a" } })),
    )
    .await
    .unwrap();
    let e = api_error(
        pvcs.patch(
            "data-db-0",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "volumeName": "pv-b" } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("spec is immutable after creation"),
        "{}",
        e.message
    );

    let stss: Api<StatefulSet> = Api::namespaced(client, "default");
    stss.create(&PostParams::default(), &sts("db"))
        .await
        .unwrap();
    let e = api_error(
        stss.patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "serviceName": "other" } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("updates to statefulset spec for fields other than"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn create_validation_names_and_namespaces() {
    let bed = Bed::start().await;
    let client = bed.client("blue").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let e = api_error(
        api.create(&PostParams::default(), &cm("Not_Valid"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message
            .contains("metadata.name: Invalid value: \"Not_Valid\""),
        "{}",
        e.message
    );
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let e = api_error(
        missing
            .create(&PostParams::default(), &cm("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
    assert_eq!(e.message, "namespaces \"nowhere\" not found");
    let mut with_rv = cm("rv");
    with_rv.metadata.resource_version = Some("5".into());
    assert_eq!(
        api_error(
            api.create(&PostParams::default(), &with_rv)
                .await
                .unwrap_err()
        )
        .code,
        400
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    let mut c = cm("held");
    c.metadata.finalizers = Some(vec!["baton.io/test".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = api.get("held").await.unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "kept with deletionTimestamp"
    );
    // No new finalizers while deleting.
    let e = api_error(
        api.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": ["baton.io/test", "x/y"] } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    assert_eq!(api_error(api.get("held").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn delete_preconditions_and_propagation() {
    let bed = Bed::start().await;
    let client = bed.client("blue").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = cms
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let owner_ref = json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.clone().unwrap() }]);
    for name in ["dep-a", "dep-b"] {
        let mut d = cm(name);
        d.metadata.owner_references = Some(serde_json::from_value(owner_ref.clone()).unwrap());
        cms.create(&PostParams::default(), &d).await.unwrap();
    }
    let wrong = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let e = api_error(cms.delete("owner", &wrong).await.unwrap_err());
    assert_eq!(e.code, 409);
    assert!(e.message.contains("Precondition failed"));

    // Orphan: dependents stay, without the owner reference.
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let a = cms.get("dep-a").await.unwrap();
    assert!(a.metadata.owner_references.unwrap_or_default().is_empty());

    // Background (default): dependents follow their owner.
    let owner2 = cms
        .create(&PostParams::default(), &cm("owner2"))
        .await
        .unwrap();
    let mut d = cm("dep-c");
    d.metadata.owner_references = Some(serde_json::from_value(json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner2.metadata.uid.unwrap() }])).unwrap());
    cms.create(&PostParams::default(), &d).await.unwrap();
    // ... through every generation: dep-c owns dep-e.
    let dep_c = cms.get("dep-c").await.unwrap();
    let mut e = cm("dep-e");
    e.metadata.owner_references = Some(serde_json::from_value(json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "dep-c", "uid": dep_c.metadata.uid.unwrap() }])).unwrap());
    cms.create(&PostParams::default(), &e).await.unwrap();
    cms.delete("owner2", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(api_error(cms.get("dep-c").await.unwrap_err()).code, 404);
    assert_eq!(api_error(cms.get("dep-e").await.unwrap_err()).code, 404);

    // Foreground: the owner waits for a dependent held by a finalizer.
    let owner3 = cms
        .create(&PostParams::default(), &cm("owner3"))
        .await
        .unwrap();
    let mut d = cm("dep-d");
    d.metadata.finalizers = Some(vec!["baton.io/hold".into()]);
    d.metadata.owner_references = Some(serde_json::from_value(json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner3", "uid": owner3.metadata.uid.unwrap() }])).unwrap());
    cms.create(&PostParams::default(), &d).await.unwrap();
    cms.delete("owner3", &DeleteParams::foreground())
        .await
        .unwrap();
    let waiting = cms.get("owner3").await.unwrap();
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    cms.patch(
        "dep-d",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("dep-d").await.unwrap_err()).code, 404);
    assert_eq!(api_error(cms.get("owner3").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn namespace_deletion_empties_then_removes() {
    let bed = Bed::start().await;
    let client = bed.client("blue").await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": "apps" } })).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["baton.io/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.create(&PostParams::default(), &cm("free"))
        .await
        .unwrap();
    nss.delete("apps", &DeleteParams::default()).await.unwrap();
    let ns = nss.get("apps").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert_eq!(api_error(cms.get("free").await.unwrap_err()).code, 404);
    let e = api_error(
        cms.create(&PostParams::default(), &cm("late"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    assert_eq!(api_error(nss.get("apps").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn scale_and_status_subresources() {
    let bed = Bed::start().await;
    let api: Api<StatefulSet> = Api::namespaced(bed.client("green").await, "default");
    api.create(&PostParams::default(), &sts("db"))
        .await
        .unwrap();
    let scale = api.get_scale("db").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=db"));
    api.patch_scale(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
    )
    .await
    .unwrap();
    assert_eq!(api.get("db").await.unwrap().spec.unwrap().replicas, Some(0));

    // Main-resource writes keep status; the status subresource changes only status.
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "replicas": 7 } })),
    )
    .await
    .unwrap();
    assert_eq!(api.get("db").await.unwrap().status.unwrap().replicas, 0);
    let s = api
        .patch_status("db", &PatchParams::default(), &Patch::Merge(json!({ "status": { "replicas": 3, "readyReplicas": 3 }, "spec": { "replicas": 9 } })))
        .await
        .unwrap();
    assert_eq!(s.status.unwrap().replicas, 3);
    assert_eq!(s.spec.unwrap().replicas, Some(0));
}

/// `pods/binding` sets the node and the PodScheduled condition in one write, keeping the
/// conditions the kubelet wrote; a second binding is a conflict.
#[tokio::test]
async fn pod_binding_sets_node_and_scheduled_condition_once() {
    let bed = Bed::start().await;
    let api: Api<Pod> = Api::namespaced(bed.client("green").await, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "p" },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] },
    }))
    .unwrap();
    api.create(&PostParams::default(), &pod).await.unwrap();
    api.patch_status(
        "p",
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "status": { "conditions": [{ "type": "Ready", "status": "True" }] } }),
        ),
    )
    .await
    .unwrap();
    let binding = |node: &str| {
        json!({
            "apiVersion": "v1", "kind": "Binding", "metadata": { "name": "p" },
            "target": { "kind": "Node", "name": node },
        })
    };
    api.create_subresource::<_, kube::core::Status>(
        "binding",
        "p",
        &PostParams::default(),
        &binding("node-a"),
    )
    .await
    .unwrap();
    let bound = api.get("p").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("node-a"));
    let conditions: Vec<(String, String)> = bound
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert!(
        conditions.contains(&("Ready".into(), "True".into())),
        "{conditions:?}"
    );
    assert!(
        conditions.contains(&("PodScheduled".into(), "True".into())),
        "{conditions:?}"
    );

    let again = api
        .create_subresource::<_, kube::core::Status>(
            "binding",
            "p",
            &PostParams::default(),
            &binding("node-b"),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(again).code, 409);
}
#[tokio::test]
async fn dry_run_changes_nothing() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let would = api.create(&dry, &cm("ghost")).await.unwrap();
    assert_eq!(would.metadata.name.as_deref(), Some("ghost"));
    assert_eq!(api_error(api.get("ghost").await.unwrap_err()).code, 404);
    // Dry-run still validates.
    assert_eq!(
        api_error(api.create(&dry, &cm("Bad!")).await.unwrap_err()).code,
        422
    );

    api.create(&PostParams::default(), &cm("real"))
        .await
        .unwrap();
    let before = api.get("real").await.unwrap();
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let patched = api
        .patch(
            "real",
            &pp,
            &Patch::Merge(json!({ "data": { "k": "dry" } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["k"], "dry");
    let after = api.get("real").await.unwrap();
    assert_eq!(after.data, before.data);
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    api.delete(
        "real",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    api.get("real").await.unwrap();
}

#[tokio::test]
async fn watch_streams_changes_in_order_and_410_after_compaction() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    let start = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &start)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("w")).await.unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "2" } })),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        seen.push(match ev {
            WatchEvent::Added(c) => format!("ADDED {}", c.metadata.resource_version.unwrap()),
            WatchEvent::Modified(c) => format!("MODIFIED {}", c.data.unwrap()["k"]),
            WatchEvent::Deleted(_) => "DELETED".to_string(),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("unexpected error event {e:?}"),
        });
    }
    assert!(seen[0].starts_with("ADDED"));
    assert_eq!(seen[1..], ["MODIFIED 2".to_string(), "DELETED".to_string()]);

    // Replaying from a version still in history works; after compaction it is 410 Gone.
    let mut replay = api
        .watch(&WatchParams::default().timeout(2), &start)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        replay.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    bed.cluster("blue").store.compact();
    let mut old = api
        .watch(&WatchParams::default().timeout(2), &start)
        .await
        .unwrap()
        .boxed();
    match old.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn label_filtered_watch_sees_objects_leave_the_selection() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    api.create(&PostParams::default(), &cm("f")).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=db").timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        stream.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "app": "web" } } })),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, WatchEvent::Deleted(_)),
        "leaving the selection is a DELETED event: {ev:?}"
    );
}

#[tokio::test]
async fn kube_runtime_watcher_converges() {
    use kube::runtime::{WatchStreamExt, watcher};
    let bed = Bed::start().await;
    let client = bed.client("blue").await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("r{i}")))
            .await
            .unwrap();
    }
    let mut objs = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut names = Vec::new();
    while names.len() < 3 {
        let o = tokio::time::timeout(Duration::from_secs(5), objs.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        names.push(o.metadata.name.unwrap());
    }
    api.create(&PostParams::default(), &cm("late"))
        .await
        .unwrap();
    let o = tokio::time::timeout(Duration::from_secs(5), objs.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(o.metadata.name.as_deref(), Some("late"));
}

#[tokio::test]
async fn dynamic_api_for_crds_and_registered_kinds() {
    let bed = Bed::start().await;
    let client = bed.client("blue").await;
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "backups.velero.io" },
        "spec": { "group": "velero.io", "scope": "Namespaced",
                  "names": { "kind": "Backup", "plural": "backups", "singular": "backup", "listKind": "BackupList" },
                  "versions": [{ "name": "v1", "served": true, "storage": true, "subresources": { "status": {} },
                                 "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }] }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("velero.io", "v1", "Backup"),
        "backups",
    );
    let backups: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let b: DynamicObject = serde_json::from_value(json!({ "apiVersion": "velero.io/v1", "kind": "Backup", "metadata": { "name": "pre-move" }, "spec": { "includedNamespaces": ["db"] } })).unwrap();
    backups.create(&PostParams::default(), &b).await.unwrap();
    let got = backups.get("pre-move").await.unwrap();
    assert_eq!(got.data["spec"]["includedNamespaces"][0], "db");
    let discovered = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    assert!(discovered.groups().any(|g| g.name() == "velero.io"));

    // Deleting the CRD stops serving the kind and removes its objects.
    crds.delete("backups.velero.io", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_error(backups.get("pre-move").await.unwrap_err()).code,
        404
    );

    // A kind registered in-process (as the emulator does for its own controllers).
    bed.cluster("green").register_kind(baton_sim::ResourceDef {
        group: "example.io".into(),
        version: "v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
        singular: "widget".into(),
        namespaced: false,
        short_names: vec![],
        categories: vec![],
        status_subresource: false,
        scale: None,
        field_labels: vec![],
    });
    let war = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.io", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::all_with(bed.client("green").await, &war);
    let w: DynamicObject = serde_json::from_value(
        json!({ "apiVersion": "example.io/v1", "kind": "Widget", "metadata": { "name": "w1" } }),
    )
    .unwrap();
    widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn auth_and_versions_per_cluster() {
    let bed = Bed::start().await;
    let blue = bed.client("blue").await;
    let green = bed.client("green").await;
    assert_eq!(
        blue.apiserver_version().await.unwrap().git_version,
        "v1.27.16-eks-2f008fe"
    );
    assert_eq!(green.apiserver_version().await.unwrap().minor, "31+");
    // Clusters are separate: an object in blue is not in green.
    Api::<ConfigMap>::namespaced(blue.clone(), "default")
        .create(&PostParams::default(), &cm("only-blue"))
        .await
        .unwrap();
    assert_eq!(
        api_error(
            Api::<ConfigMap>::namespaced(green, "default")
                .get("only-blue")
                .await
                .unwrap_err()
        )
        .code,
        404
    );

    // Blue's token is not green's.
    let mut kc = kube::config::Kubeconfig::read_from(&bed.kubeconfig).unwrap();
    let blue_token = kc
        .auth_infos
        .iter()
        .find(|a| a.name == "blue-admin")
        .unwrap()
        .auth_info
        .clone()
        .unwrap()
        .token
        .unwrap();
    for a in &mut kc.auth_infos {
        if a.name == "green-admin" {
            a.auth_info.as_mut().unwrap().token = Some(blue_token.clone());
        }
    }
    let opts = kube::config::KubeConfigOptions {
        context: Some("green".into()),
        ..Default::default()
    };
    let wrong = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .unwrap(),
    )
    .unwrap();
    let e = api_error(
        Api::<ConfigMap>::namespaced(wrong, "default")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn unknown_context_is_a_clear_error() {
    let bed = Bed::start().await;
    let Err(err) = baton_kube::KubeconfigSource::file(&bed.kubeconfig)
        .client("purple")
        .await
    else {
        panic!("an unknown context must not give a client");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("\"purple\"") && msg.contains("blue, green"),
        "{msg}"
    );
}

#[tokio::test]
async fn method_not_allowed_and_unknown_paths() {
    let bed = Bed::start().await;
    let client = bed.client("blue").await;
    let req = http::Request::delete("/apis/apps/v1/namespaces/default/statefulsets/db/scale")
        .body(Vec::new())
        .unwrap();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &sts("db"))
        .await
        .unwrap();
    let e = api_error(client.request::<serde_json::Value>(req).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (405, "MethodNotAllowed"));
    let req = http::Request::get("/apis/nothing.io/v1/things")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        api_error(client.request::<serde_json::Value>(req).await.unwrap_err()).code,
        404
    );
}

#[tokio::test]
async fn list_continue_token_expires_after_compaction() {
    let bed = Bed::start().await;
    let api: Api<ConfigMap> = Api::namespaced(bed.client("blue").await, "default");
    for i in 0..4 {
        api.create(&PostParams::default(), &cm(&format!("p{i}")))
            .await
            .unwrap();
    }
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    api.create(&PostParams::default(), &cm("p9")).await.unwrap();
    bed.cluster("blue").store.compact();
    let e = api_error(
        api.list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 410);
}
