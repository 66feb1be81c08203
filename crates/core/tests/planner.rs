//! The planner's refusals: every bad input of the issue is a blocking problem naming the
//! object and the fix, found before anything could change.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use baton_core::plan::{Plan, Severity};
use baton_core::planner::{Inputs, PlanOptions, Selection, plan};
use baton_core::world::{
    ClusterView, Ec2Volume, Node, ReclaimPolicy, RetentionPolicy, StatefulSet, StorageClass,
    VolumeSource,
};

use common::template;

fn sts(ctx_replicas: i32) -> StatefulSet {
    StatefulSet {
        namespace: "orders".into(),
        name: "db".into(),
        uid: "uid".into(),
        replicas: ctx_replicas,
        status_replicas: ctx_replicas,
        ready_replicas: ctx_replicas,
        observed: true,
        labels: BTreeMap::from([("tier".into(), "data".into())]),
        templates: vec![template()],
        retention: RetentionPolicy::default(),
        scalers: vec![],
        service_account: "default".into(),
        owners: vec![],
        claims: vec![],
        kind: Default::default(),
    }
}

struct World {
    blue: ClusterView,
    green: ClusterView,
    ec2: BTreeMap<String, Ec2Volume>,
    vpcs: (BTreeSet<String>, BTreeSet<String>),
    aws_region: String,
}

/// Blue runs orders/db (1 replica, one gp3 CSI volume in us-east-1a); green has it at 0 and
/// a node in us-east-1a: a clean plan.
fn world() -> World {
    let claim = common::claim();
    let pv = common::pv();
    let node = |zone: &str| Node {
        name: format!("n-{zone}"),
        zone: zone.into(),
        ready: true,
    };
    let class = StorageClass {
        name: "gp3".into(),
        provisioner: "ebs.csi.aws.com".into(),
        default: true,
    };
    World {
        blue: ClusterView {
            context: "blue".into(),
            version: "v1.27".into(),
            statefulsets: vec![sts(1)],
            claims: vec![claim],
            volumes: vec![pv],
            nodes: vec![node("us-east-1a")],
            storage_classes: vec![class.clone()],
            fences: vec![],
            deployments: vec![],
            mounted: Default::default(),
            template_claims: Default::default(),
        },
        green: ClusterView {
            context: "green".into(),
            version: "v1.31".into(),
            statefulsets: vec![sts(0)],
            claims: vec![],
            volumes: vec![],
            nodes: vec![node("us-east-1a")],
            storage_classes: vec![class],
            fences: vec![],
            deployments: vec![],
            mounted: Default::default(),
            template_claims: Default::default(),
        },
        ec2: BTreeMap::from([(
            "vol-1".into(),
            Ec2Volume {
                id: "vol-1".into(),
                az: "us-east-1a".into(),
                size_gib: 10,
                volume_type: "gp3".into(),
                encrypted: true,
                kms_key_id: None,
                multi_attach: false,
                state: "in-use".into(),
                attached_to: vec!["i-1".into()],
                tags: Default::default(),
            },
        )]),
        vpcs: (
            BTreeSet::from(["vpc-1".to_string()]),
            BTreeSet::from(["vpc-1".to_string()]),
        ),
        aws_region: "us-east-1".into(),
    }
}

fn run(w: &World, options: &PlanOptions) -> Plan {
    run_selecting(w, &Selection::default(), options)
}

fn run_selecting(w: &World, selection: &Selection, options: &PlanOptions) -> Plan {
    plan(
        &Inputs {
            blue: &w.blue,
            green: &w.green,
            ec2: &w.ec2,
            vpcs: w.vpcs.clone(),
            aws_region: w.aws_region.clone(),
            now: "2026-11-25T00:00:00Z".into(),
            drivers: Default::default(),
            pod_roles: None,
        },
        selection,
        options,
    )
}

/// The blocking problems' codes, with a check that each names an object and a fix.
fn blocking(p: &Plan) -> Vec<String> {
    p.blocking()
        .iter()
        .map(|pr| {
            assert!(!pr.object.is_empty() && !pr.fix.is_empty(), "{pr:?}");
            pr.code.clone()
        })
        .collect()
}

#[test]
fn a_clean_world_plans_without_blocking_problems() {
    let p = run(&world(), &PlanOptions::default());
    assert_eq!(blocking(&p), Vec::<String>::new());
    assert_eq!(p.apps.len(), 1);
    let v = &p.apps[0].volumes[0];
    assert_eq!(
        (v.claim.as_str(), v.pv.as_str(), v.volume_id.as_str()),
        ("data-db-0", "pvc-1", "vol-1")
    );
    assert_eq!(
        (v.az.as_str(), v.size_gib, v.encrypted),
        ("us-east-1a", 10, true)
    );
}

#[test]
fn every_bad_input_blocks_naming_the_object_and_the_fix() {
    type Break = fn(&mut World);
    let cases: Vec<(&str, Break)> = vec![
        ("green-missing", |w| w.green.statefulsets.clear()),
        ("green-not-zero", |w| w.green.statefulsets[0].replicas = 2),
        ("templates-differ", |w| {
            w.green.statefulsets[0].templates[0].request_bytes = Some(5 << 30)
        }),
        ("templates-differ", |w| {
            w.green.statefulsets[0].templates[0].name = "other".into()
        }),
        ("zone-without-nodes", |w| {
            w.green.nodes[0].zone = "us-east-1b".into()
        }),
        ("zone-without-nodes", |w| w.green.nodes[0].ready = false),
        ("not-ebs", |w| {
            w.blue.volumes[0].volume_id = None;
            w.blue.volumes[0].source = None;
            w.blue.volumes[0].other_backend = Some("nfs".into());
        }),
        ("multi-attach", |w| {
            w.ec2.get_mut("vol-1").unwrap().multi_attach = true
        }),
        ("volume-missing", |w| w.ec2.clear()),
        ("claim-unbound", |w| {
            w.blue.claims[0].phase = "Pending".into()
        }),
        ("claim-missing", |w| w.blue.claims.clear()),
        ("pv-missing", |w| w.blue.volumes.clear()),
        ("capacity", |w| {
            w.blue.volumes[0].capacity_bytes = Some(5 << 30)
        }),
        ("access-modes", |w| {
            w.blue.claims[0].access_modes = vec!["ReadWriteMany".into()]
        }),
        ("volume-mode", |w| {
            w.blue.volumes[0].volume_mode = "Block".into()
        }),
        ("class", |w| w.blue.volumes[0].storage_class = "gp2".into()),
        ("different-vpc", |w| {
            w.vpcs.1 = BTreeSet::from(["vpc-2".to_string()])
        }),
        ("different-region", |w| {
            w.green.nodes[0].zone = "eu-west-1a".into()
        }),
        ("wrong-aws-region", |w| w.aws_region = "eu-west-1".into()),
        ("green-claim-taken", |w| {
            let mut c = w.blue.claims[0].clone();
            c.uid = "g1".into();
            c.volume_name = "pvc-other".into();
            w.green.claims.push(c);
        }),
        ("green-claim-taken", |w| {
            // Holding the name and pointing at the volume, but not made by baton.
            let mut c = w.blue.claims[0].clone();
            c.uid = "g1".into();
            c.phase = "Pending".into();
            w.green.claims.push(c);
        }),
    ];
    for (code, breaks) in cases {
        let mut w = world();
        breaks(&mut w);
        let p = run(&w, &PlanOptions::default());
        let codes = blocking(&p);
        assert!(codes.iter().any(|c| c == code), "{code}: got {codes:?}");
    }
}

#[test]
fn flags_and_warnings_that_do_not_block() {
    let mut w = world();
    w.ec2.get_mut("vol-1").unwrap().multi_attach = true;
    let p = run(
        &w,
        &PlanOptions {
            allow_multi_attach: true,
            ..Default::default()
        },
    );
    assert!(blocking(&p).is_empty(), "--allow-multi-attach");

    let mut w = world();
    w.blue.volumes[0].source = Some(VolumeSource::InTree);
    w.blue.volumes[0].reclaim_policy = ReclaimPolicy::Delete;
    w.blue.statefulsets[0].retention.when_scaled = "Delete".into();
    w.blue.statefulsets[0].scalers = vec!["HorizontalPodAutoscaler orders/db".into()];
    let p = run(&w, &PlanOptions::default());
    assert!(blocking(&p).is_empty());
    let warnings: Vec<&str> = p.apps[0]
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| p.code.as_str())
        .collect();
    for code in ["in-tree", "reclaim-delete", "retention-delete", "scaler"] {
        assert!(warnings.contains(&code), "{code} in {warnings:?}");
    }
    assert_eq!(
        p.apps[0].volumes[0].original_reclaim_policy,
        ReclaimPolicy::Delete
    );
    let p = run(
        &w,
        &PlanOptions {
            convert_to_csi: true,
            ..Default::default()
        },
    );
    assert!(
        !p.apps[0].problems.iter().any(|p| p.code == "in-tree"),
        "--convert-to-csi"
    );
}

#[test]
fn a_saved_plan_is_stale_when_the_world_moved() {
    let w = world();
    let saved = run(&w, &PlanOptions::default());
    assert!(
        saved
            .differences(&run(&w, &PlanOptions::default()))
            .is_empty()
    );

    let mut moved = world();
    moved.blue.volumes[0].uid = "p2".into();
    let diffs = saved.differences(&run(&moved, &PlanOptions::default()));
    assert!(diffs.iter().any(|d| d.contains("data-db-0")), "{diffs:?}");

    let mut gone = world();
    gone.blue.statefulsets.clear();
    let diffs = saved.differences(&run(&gone, &PlanOptions::default()));
    assert!(
        diffs.iter().any(|d| d.contains("no longer in blue")),
        "{diffs:?}"
    );
}

#[test]
fn selection_by_namespace_and_label() {
    let w = world();
    let p = |sel: Selection| run_selecting(&w, &sel, &PlanOptions::default()).apps.len();
    assert_eq!(
        p(Selection {
            groups: vec![],
            standalone_claims: false,
            no_label_groups: false,
            claims: vec![],
            namespaces: vec!["orders".into()],
            labels: vec![]
        }),
        1
    );
    assert_eq!(
        p(Selection {
            groups: vec![],
            standalone_claims: false,
            no_label_groups: false,
            claims: vec![],
            namespaces: vec!["web".into()],
            labels: vec![]
        }),
        0
    );
    assert_eq!(
        p(Selection {
            groups: vec![],
            standalone_claims: false,
            no_label_groups: false,
            claims: vec![],
            namespaces: vec![],
            labels: vec![("tier".into(), "data".into())]
        }),
        1
    );
    assert_eq!(
        p(Selection {
            groups: vec![],
            standalone_claims: false,
            no_label_groups: false,
            claims: vec![],
            namespaces: vec![],
            labels: vec![("tier".into(), "web".into())]
        }),
        0
    );
}

#[test]
fn zones_name_their_region() {
    use baton_core::planner::region_of_zone;
    for (zone, region) in [
        ("us-east-1a", Some("us-east-1")),
        ("eu-central-2c", Some("eu-central-2")),
        ("us-east-1-bos-1a", Some("us-east-1")),
        ("us-gov-west-1b", Some("us-gov-west-1")),
        ("ap-northeast-3a", Some("ap-northeast-3")),
        ("zone-a", None),
        ("", None),
    ] {
        assert_eq!(region_of_zone(zone).as_deref(), region, "{zone}");
    }
}

#[test]
fn volume_ownership_tags_and_the_drivers_decide_the_handover() {
    use baton_core::handover::{Access, Driver, Drivers};
    let mut w = world();
    let id = w.ec2.keys().next().unwrap().clone();
    w.ec2.get_mut(&id).unwrap().tags = [
        (
            "ebs.csi.aws.com/cluster-name".to_string(),
            "blue".to_string(),
        ),
        (
            "kubernetes.io/cluster/blue".to_string(),
            "owned".to_string(),
        ),
    ]
    .into();
    let run_with = |w: &World, drivers: Drivers| {
        plan(
            &Inputs {
                blue: &w.blue,
                green: &w.green,
                ec2: &w.ec2,
                vpcs: w.vpcs.clone(),
                aws_region: w.aws_region.clone(),
                now: String::new(),
                drivers,
                pod_roles: None,
            },
            &Selection::default(),
            &PlanOptions::default(),
        )
    };
    let scoped = |c: &str| Access {
        attach: vec![[("ebs.csi.aws.com/cluster-name".to_string(), c.to_string())].into()],
        detach: vec![[("ebs.csi.aws.com/cluster-name".to_string(), c.to_string())].into()],
        skipped: vec![],
    };
    let known = Drivers {
        blue_name: Some("blue".into()),
        green_name: Some("green".into()),
        blue: Some(Driver::Unknown("no role".into())),
        green: Some(Driver::Known {
            role: "arn:aws:iam::1:role/green-ebs".into(),
            access: scoped("green"),
        }),
        green_keys: Default::default(),
    };

    // Green's cluster-scoped driver: a re-tag planned and said; blue's unknown driver
    // is a warning naming the flag.
    let p = run_with(&w, known.clone());
    assert!(blocking(&p).is_empty(), "{p:#?}");
    let change = p.apps[0].handover.as_ref().expect("a re-tag");
    assert_eq!(change.add["ebs.csi.aws.com/cluster-name"], "green");
    assert_eq!(change.blue[&id]["ebs.csi.aws.com/cluster-name"], "blue");
    let retag = p.apps[0]
        .problems
        .iter()
        .find(|x| x.code == "retag")
        .unwrap();
    assert!(retag.message.contains("blue→green") && retag.message.contains("green-ebs"));
    let unknown = p
        .problems
        .iter()
        .find(|x| x.code == "ebs-csi-role-unknown")
        .unwrap();
    assert!(
        unknown.fix.contains("--ebs-csi-role blue=ARN"),
        "{unknown:?}"
    );

    // No role known for green: no re-tag (today's behaviour).
    let mut none = known.clone();
    none.green = Some(Driver::Unknown("no role".into()));
    assert!(run_with(&w, none).apps[0].handover.is_none());

    // A green driver no tag can help (its policies allow no attach): refused, since the
    // window would stall on green's attach; with a statement baton could not read, a
    // warning only.
    let mut nothing = known.clone();
    nothing.green = Some(Driver::Known {
        role: "arn:aws:iam::1:role/green-ebs".into(),
        access: Access::default(),
    });
    let p = run_with(&w, nothing.clone());
    assert_eq!(blocking(&p), ["green-driver-cannot-attach"], "{p:#?}");
    if let Some(Driver::Known { access, .. }) = &mut nothing.green {
        access
            .skipped
            .push("S1: NotAction/NotResource is not evaluated".into());
    }
    let p = run_with(&w, nothing);
    assert!(blocking(&p).is_empty(), "{p:#?}");
    assert!(
        p.apps[0]
            .problems
            .iter()
            .any(|x| x.code == "green-driver-cannot-attach" && x.message.contains("S1")),
        "{p:#?}"
    );

    // A volume claimed by a third cluster is refused, naming the volume, tag and cluster.
    w.ec2
        .get_mut(&id)
        .unwrap()
        .tags
        .insert("KubernetesCluster".into(), "payments".into());
    let p = run_with(&w, known);
    assert_eq!(blocking(&p), ["volume-foreign-cluster"]);
    let f = &p.blocking()[0];
    assert!(
        f.object.contains(&id)
            && f.message.contains("KubernetesCluster")
            && f.message.contains("payments")
    );
    assert!(p.apps[0].handover.is_none());
}

#[test]
fn what_could_scale_blue_back_up_is_fenced_and_an_operator_refused_unless_allowed() {
    use baton_core::fences::{FenceKind, FenceObject};
    use serde_json::json;
    let mut w = world();
    w.blue.fences = vec![
        // A self-healing Application that lists orders/db among its resources.
        FenceObject::of(
            FenceKind::Application,
            &json!({ "metadata": { "name": "orders", "namespace": "argocd" },
                     "spec": { "syncPolicy": { "automated": { "selfHeal": true } } },
                     "status": { "resources": [
                         { "group": "apps", "kind": "StatefulSet", "namespace": "orders", "name": "db" } ] } }),
        ),
        // One already without automated sync: nothing to fence.
        FenceObject::of(
            FenceKind::Application,
            &json!({ "metadata": { "name": "manual", "namespace": "argocd" },
                     "spec": { "syncPolicy": {} },
                     "status": { "resources": [
                         { "kind": "StatefulSet", "namespace": "orders", "name": "db" } ] } }),
        ),
        // A ScaledObject of another workload.
        FenceObject::of(
            FenceKind::ScaledObject,
            &json!({ "metadata": { "name": "other", "namespace": "orders" },
                     "spec": { "scaleTargetRef": { "name": "worker" } } }),
        ),
    ];
    let p = run(&w, &PlanOptions::default());
    assert!(blocking(&p).is_empty());
    let fences: Vec<String> = p.apps[0].fences.iter().map(ToString::to_string).collect();
    assert_eq!(fences, ["Application argocd/orders"]);
    assert!(p.apps[0].problems.iter().any(|p| p.code == "fenced"));

    // An HPA with a minimum leaves a target at 0 alone: no warning; minReplicas 0 warns.
    w.blue.statefulsets[0].scalers = vec![];
    let p = run(&w, &PlanOptions::default());
    assert!(!p.apps[0].problems.iter().any(|p| p.code == "scaler"));

    // Owned by a custom resource: refused, unless --allow-operator names its kind.
    w.blue.statefulsets[0].owners = vec![(
        "postgres-operator.crunchydata.com/v1beta1".into(),
        "PostgresCluster".into(),
        "orders".into(),
    )];
    let p = run(&w, &PlanOptions::default());
    assert_eq!(blocking(&p), ["operator-owned"]);
    let refusal = &p.apps[0]
        .problems
        .iter()
        .find(|p| p.code == "operator-owned")
        .unwrap();
    assert!(
        refusal.fix.contains("--allow-operator PostgresCluster"),
        "{refusal:?}"
    );
    let p = run(
        &w,
        &PlanOptions {
            allow_operators: vec!["postgrescluster".into()],
            ..Default::default()
        },
    );
    assert!(blocking(&p).is_empty());
    // A StatefulSet owned by a built-in kind is no operator's.
    w.blue.statefulsets[0].owners = vec![("apps/v1".into(), "Deployment".into(), "x".into())];
    assert!(blocking(&run(&w, &PlanOptions::default())).is_empty());
}

#[test]
fn a_deployment_moves_the_claims_its_pods_mount_and_is_refused_with_replicas_on_rwo() {
    use baton_core::world::WorkloadKind;
    let mut w = world();
    let deployment = |replicas: i32, claims: &[&str]| StatefulSet {
        kind: WorkloadKind::Deployment,
        name: "web".into(),
        templates: vec![],
        claims: claims
            .iter()
            .map(|c| ("data".to_string(), c.to_string()))
            .collect(),
        replicas,
        ..sts(replicas)
    };
    // Blue's claim data-db-0 is mounted by the Deployment orders/web instead.
    w.blue.statefulsets.clear();
    w.green.statefulsets.clear();
    w.blue.deployments = vec![deployment(1, &["data-db-0"])];
    w.green.deployments = vec![deployment(0, &["data-db-0"])];
    let p = run(&w, &PlanOptions::default());
    assert!(blocking(&p).is_empty(), "{:?}", p.apps[0].problems);
    let app = &p.apps[0];
    assert_eq!(app.kind, WorkloadKind::Deployment);
    assert_eq!(app.key(), "orders/web");
    assert_eq!(
        (
            app.volumes[0].claim.as_str(),
            app.volumes[0].template.as_str()
        ),
        ("data-db-0", "data")
    );

    // Two replicas on one ReadWriteOnce claim: refused.
    w.blue.deployments = vec![deployment(2, &["data-db-0"])];
    assert_eq!(blocking(&run(&w, &PlanOptions::default())), ["rwo-shared"]);

    // Green's pods mounting another claim: refused.
    w.blue.deployments = vec![deployment(1, &["data-db-0"])];
    w.green.deployments = vec![deployment(0, &["other"])];
    assert_eq!(
        blocking(&run(&w, &PlanOptions::default())),
        ["claims-differ"]
    );

    // No Deployment in green.
    w.green.deployments.clear();
    assert_eq!(
        blocking(&run(&w, &PlanOptions::default())),
        ["green-missing"]
    );
}

#[test]
fn a_bound_claim_no_workload_names_moves_on_its_own_and_a_mounted_one_is_refused() {
    use baton_core::world::WorkloadKind;
    let mut w = world();
    let mut archive = common::claim();
    archive.name = "archive".into();
    archive.volume_name = "pvc-1".into();
    // orders/db's data-db-0 is its template's; archive is no one's.
    w.blue.claims.push(archive);
    w.blue.volumes[0].claim_ref.as_mut().unwrap().name = "archive".into();
    let sel = |claims: &[(&str, &str)], namespaces: &[&str]| Selection {
        groups: vec![],
        standalone_claims: false,
        no_label_groups: false,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        labels: vec![],
        claims: claims
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    };
    let run_sel = |w: &World, s: &Selection| run_selecting(w, s, &PlanOptions::default());
    // -n orders: the StatefulSet and the standalone claim.
    let p = run_sel(&w, &sel(&[], &["orders"]));
    let kinds: Vec<(WorkloadKind, String)> =
        p.apps.iter().map(|a| (a.kind, a.name.clone())).collect();
    assert!(
        kinds.contains(&(WorkloadKind::Claim, "archive".into())),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&(WorkloadKind::Claim, "data-db-0".into())),
        "{kinds:?}"
    );
    // --claim alone: only it.
    let p = run_sel(&w, &sel(&[("orders", "archive")], &[]));
    assert_eq!(p.apps.len(), 1);
    assert_eq!(p.apps[0].kind, WorkloadKind::Claim);
    // Mounted: not found by the selectors, refused when named.
    w.blue.mounted.insert(("orders".into(), "archive".into()));
    let p = run_sel(&w, &sel(&[], &["orders"]));
    assert!(p.apps.iter().all(|a| a.kind != WorkloadKind::Claim));
    let p = run_sel(&w, &sel(&[("orders", "archive")], &[]));
    assert_eq!(blocking(&p), ["claim-in-use"]);
    // A --claim that names nothing.
    let p = run_sel(&w, &sel(&[("orders", "nope")], &[]));
    assert_eq!(blocking(&p), ["claim-missing"]);
    // A --claim that names a workload's claim: it moves with the workload.
    let p = run_sel(&w, &sel(&[("orders", "data-db-0")], &[]));
    assert_eq!(blocking(&p), ["claim-of-workload"]);
    // Nothing selected at all: no claim moves on its own unless asked for, but the plan
    // says it is there…
    w.blue.mounted.clear();
    let p = run_sel(&w, &sel(&[], &[]));
    assert!(p.apps.iter().all(|a| a.kind != WorkloadKind::Claim));
    assert_eq!(p.unselected_claims, ["orders/archive"]);
    // …or --standalone-claims says so.
    let all = Selection {
        standalone_claims: true,
        ..sel(&[], &[])
    };
    let p = run_sel(&w, &all);
    assert!(p.apps.iter().any(|a| a.name == "archive"));
    assert!(p.unselected_claims.is_empty());
    // A CronJob's pod template mounts it: its next run would, so it is the CronJob's.
    w.blue.template_claims.insert(
        ("orders".into(), "archive".into()),
        "CronJob orders/backup".into(),
    );
    assert!(run_sel(&w, &all).apps.iter().all(|a| a.name != "archive"));
    let p = run_sel(&w, &sel(&[("orders", "archive")], &[]));
    assert_eq!(blocking(&p), ["claim-of-workload"]);
    assert!(
        p.problems[0].message.contains("CronJob orders/backup"),
        "{:?}",
        p.problems
    );
    // A StatefulSet's claim that a CronJob mounts too: the StatefulSet may not move
    // while the CronJob could start a pod on it in blue.
    w.blue.template_claims.insert(
        ("orders".into(), "data-db-0".into()),
        "CronJob orders/dump".into(),
    );
    let p = run_sel(&w, &sel(&[], &["orders"]));
    assert!(
        blocking(&p).contains(&"claim-also-mounted".to_string()),
        "{:?}",
        p.blocking()
    );
}

#[test]
fn workloads_sharing_part_of_or_declared_with_group_move_as_one_unit_in_order() {
    use baton_core::planner::{DeclaredGroup, PART_OF};
    use baton_core::world::WorkloadKind;
    let mut w = world();
    // orders/db (volumes) and orders/proxy (none) share app.kubernetes.io/part-of=orders;
    // orders/other carries another value.
    let proxy = |name: &str, replicas: i32, part_of: &str| StatefulSet {
        kind: WorkloadKind::Deployment,
        name: name.into(),
        uid: format!("uid-{name}"),
        templates: vec![],
        labels: BTreeMap::from([(PART_OF.to_string(), part_of.to_string())]),
        replicas,
        ..sts(replicas)
    };
    w.blue.statefulsets[0]
        .labels
        .insert(PART_OF.into(), "orders".into());
    w.blue.deployments = vec![proxy("proxy", 2, "orders"), proxy("other", 1, "shop")];
    w.green.deployments = vec![proxy("proxy", 0, "orders"), proxy("other", 0, "shop")];
    let p = run(&w, &PlanOptions::default());
    assert!(blocking(&p).is_empty(), "{:?}", p.blocking());
    assert_eq!(p.groups.len(), 1, "{:?}", p.groups);
    let g = &p.groups[0];
    // The member with volumes starts first.
    assert_eq!(g.members, ["orders/db", "orders/proxy"]);
    assert!(g.found_by.contains("part-of=orders"), "{}", g.found_by);
    let proxy_plan = p.apps.iter().find(|a| a.name == "proxy").unwrap();
    assert!(proxy_plan.stateless());
    assert_eq!(proxy_plan.replicas, 2);
    // A workload without volumes in no group is not planned.
    assert!(p.apps.iter().all(|a| a.name != "other"));

    // --group declares the order, and alone selects only its members.
    let declared = Selection {
        groups: vec![DeclaredGroup {
            name: "pair".into(),
            members: vec![
                ("orders".into(), WorkloadKind::Deployment, "proxy".into()),
                ("orders".into(), WorkloadKind::StatefulSet, "db".into()),
            ],
        }],
        ..Selection::default()
    };
    let p = run_selecting(&w, &declared, &PlanOptions::default());
    assert!(blocking(&p).is_empty(), "{:?}", p.blocking());
    assert_eq!(p.groups.len(), 1, "the label group is the declared one now");
    assert_eq!(p.groups[0].members, ["orders/proxy", "orders/db"]);
    assert_eq!(p.groups[0].found_by, "--group");

    // A member blue lacks, or one named by two groups: refused, naming it.
    let mut bad = declared.clone();
    bad.groups[0]
        .members
        .push(("orders".into(), WorkloadKind::StatefulSet, "gone".into()));
    bad.groups.push(DeclaredGroup {
        name: "again".into(),
        members: vec![("orders".into(), WorkloadKind::StatefulSet, "db".into())],
    });
    let p = run_selecting(&w, &bad, &PlanOptions::default());
    let codes = blocking(&p);
    assert!(
        codes.contains(&"group-member-missing".to_string()),
        "{codes:?}"
    );
    assert!(codes.contains(&"group-overlap".to_string()), "{codes:?}");

    // Two --group of one name: refused.
    let mut twice = declared.clone();
    twice.groups.push(twice.groups[0].clone());
    assert!(
        blocking(&run_selecting(&w, &twice, &PlanOptions::default()))
            .contains(&"group-duplicate".to_string())
    );
    // --no-label-groups: the label makes no group, and the proxy is not planned.
    let unlabelled = Selection {
        no_label_groups: true,
        ..Selection::default()
    };
    let p = run_selecting(&w, &unlabelled, &PlanOptions::default());
    assert!(p.groups.is_empty(), "{:?}", p.groups);
    assert!(p.apps.iter().all(|a| a.name != "proxy"));

    // A saved plan whose groups differ is stale.
    let labelled = run(&w, &PlanOptions::default());
    let now = run_selecting(&w, &declared, &PlanOptions::default());
    assert!(
        labelled
            .differences(&now)
            .iter()
            .any(|d| d.contains("groups")),
        "{:?}",
        labelled.differences(&now)
    );

    // Once moved (blue at 0, green running), the member without volumes plans as migrated.
    w.blue.deployments[0].replicas = 0;
    w.green.deployments[0].replicas = 2;
    let p = run(&w, &PlanOptions::default());
    let proxy_plan = p.apps.iter().find(|a| a.name == "proxy").unwrap();
    assert!(proxy_plan.green.migrated, "{proxy_plan:?}");
    assert_eq!(proxy_plan.replicas, 2);
}
