//! A cluster added to a running estate (issue 21): the `default` scenario seeded, then
//! `teal` added in subnets made only afterwards, as `baton network apply` makes them in
//! the space a retired cluster frees. Refusals change nothing; the added cluster is
//! seeded as green is, and its own EBS CSI driver provisions and attaches its volumes.

mod common;

use std::time::Duration;

use baton_sim::estate::{AddClusterError, Estate, EstateOptions, NewCluster};
use baton_sim::scenario::{self, Scenario};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};

fn new(name: &str, version: &str, subnets: &[&str]) -> NewCluster {
    NewCluster {
        name: name.into(),
        version: version.into(),
        subnets: subnets.iter().map(|s| s.to_string()).collect(),
        nodes_per_subnet: Some(1),
        instance_type: None,
    }
}

/// Polls `f` until it returns `Some`, for at most 60 s.
async fn eventually<T, F: AsyncFnMut() -> Option<T>>(what: &str, mut f: F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} after 60s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_cluster_is_seeded_as_green_in_new_subnets_and_its_driver_attaches_its_volumes() {
    let s = Scenario::load("default").unwrap();
    let mut estate = Estate::start(EstateOptions {
        clusters: s.cluster_specs(),
        aws_endpoint: Some(common::estate::moto_endpoint()),
        ..EstateOptions::default()
    })
    .await
    .expect("estate starts");
    let mut seeded = scenario::seed(&estate, &s, Duration::from_secs(120))
        .await
        .expect("default seeds");
    let aws = estate.aws.clone();
    // teal's subnets, in the VPC's unused 10.2.0.0/16, made after the estate started.
    let mut subnets = Vec::new();
    for (az, cidr) in [
        ("us-east-1a", "10.2.0.0/20"),
        ("us-east-1b", "10.2.16.0/20"),
    ] {
        let sn = aws
            .create_subnet(&baton_aws::NewSubnet {
                vpc_id: seeded.vpc_id.clone(),
                availability_zone: az.into(),
                cidr: cidr.parse().unwrap(),
                tags: Default::default(),
            })
            .await
            .unwrap();
        subnets.push(sn.id);
    }
    let (a, b) = (subnets[0].as_str(), subnets[1].as_str());
    let other_vpc = aws
        .create_vpc("10.250.0.0/16", &Default::default())
        .await
        .unwrap();
    let outside = aws
        .create_subnet(&baton_aws::NewSubnet {
            vpc_id: other_vpc.clone(),
            availability_zone: "us-east-1a".into(),
            cidr: "10.250.0.0/24".parse().unwrap(),
            tags: Default::default(),
        })
        .await
        .unwrap()
        .id;

    // Refusals, each before anything changes.
    let timeout = Duration::from_secs(120);
    let refusals = [
        (
            new("teal", "1.32", &[a, "subnet-0123456789abcdef0"]),
            "subnet-0123456789abcdef0 is not in EC2",
        ),
        (
            new("teal", "1.32", &[a, &outside]),
            "not in the estate's VPC",
        ),
        (
            new("green", "1.32", &[a, b]),
            "a cluster green is served already",
        ),
        (new("teal", "2.x", &[a, b]), "is not MAJOR.MINOR"),
        (new("Teal", "1.32", &[a, b]), "is not a cluster name"),
    ];
    for (asked, says) in refusals {
        let e = estate
            .add_cluster(&s, &mut seeded, &asked, timeout)
            .await
            .expect_err("refused");
        assert!(e.refused(), "{e}");
        assert!(e.to_string().contains(says), "{says:?} in: {e}");
        if asked.name != "green" {
            assert!(estate.server.cluster(&asked.name).is_none(), "{e}");
        }
    }
    assert!(
        matches!(
            estate
                .add_cluster(&s, &mut seeded, &new("green", "1.32", &[a, b]), timeout)
                .await,
            Err(AddClusterError::Taken { .. })
        ),
        "a served name is taken"
    );
    assert!(
        aws.describe_instances(&[baton_aws::Filter::new(
            "tag:eks:cluster-name",
            ["teal".to_string()]
        )])
        .await
        .unwrap()
        .is_empty(),
        "refusals ran no instance"
    );
    assert!(
        aws.describe_cluster("teal")
            .await
            .unwrap_err()
            .is_not_found(),
        "refusals made no EKS cluster"
    );

    let added = estate
        .add_cluster(&s, &mut seeded, &new("teal", "1.32", &[a, b]), timeout)
        .await
        .expect("teal is added");
    eprintln!("teal added in {:.1}s", added.seconds);
    assert!(added.git_version.starts_with("v1.32.0-eks-"));
    assert_eq!(added.nodes.len(), 2, "{added:?}");
    let served = estate.server.cluster("teal").expect("teal is served");
    assert_eq!(added.server, served.url());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    estate.server.kubeconfig().write(&path).unwrap();
    let client = |ctx: &'static str| {
        let path = path.clone();
        async move {
            baton_kube::KubeconfigSource::file(&path)
                .client(ctx)
                .await
                .unwrap()
        }
    };
    let (teal, green) = (client("teal").await, client("green").await);

    // Its nodes are Ready, on EC2 instances tagged as a managed node group's, one in
    // each subnet given.
    let nodes = Api::<Node>::all(teal.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(nodes.len(), 2);
    for n in &nodes {
        let ready = n.status.as_ref().unwrap().conditions.as_ref().unwrap();
        assert!(
            ready
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            "{n:?}"
        );
        let kubelet = &n
            .status
            .as_ref()
            .unwrap()
            .node_info
            .as_ref()
            .unwrap()
            .kubelet_version;
        assert_eq!(kubelet, &added.git_version);
    }
    let instances = aws
        .describe_instances(&[baton_aws::Filter::new(
            "tag:eks:cluster-name",
            ["teal".to_string()],
        )])
        .await
        .unwrap();
    let mut in_subnets: Vec<String> = instances
        .iter()
        .map(|i| i.subnet_id.clone().unwrap())
        .collect();
    in_subnets.sort();
    let mut want = subnets.clone();
    want.sort();
    assert_eq!(in_subnets, want);

    // Every app green has, at 0 replicas.
    let names = |objs: Vec<String>| {
        let mut v = objs;
        v.sort();
        v
    };
    for (kind, teal_apps, green_apps) in [
        (
            "StatefulSet",
            Api::<StatefulSet>::all(teal.clone())
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|o| (o.metadata.name.unwrap(), o.spec.unwrap().replicas))
                .collect::<Vec<_>>(),
            Api::<StatefulSet>::all(green.clone())
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|o| o.metadata.name.unwrap())
                .collect::<Vec<_>>(),
        ),
        (
            "Deployment",
            Api::<Deployment>::all(teal.clone())
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|o| o.metadata.namespace.as_deref() != Some("kube-system"))
                .map(|o| (o.metadata.name.unwrap(), o.spec.unwrap().replicas))
                .collect(),
            Api::<Deployment>::all(green.clone())
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|o| o.metadata.namespace.as_deref() != Some("kube-system"))
                .map(|o| o.metadata.name.unwrap())
                .collect(),
        ),
    ] {
        assert!(teal_apps.len() >= 3, "{kind}: {teal_apps:?}");
        assert!(
            teal_apps.iter().all(|(_, r)| *r == Some(0)),
            "{kind} at 0: {teal_apps:?}"
        );
        assert_eq!(
            names(teal_apps.into_iter().map(|(n, _)| n).collect()),
            names(green_apps),
            "{kind}: teal has green's"
        );
    }
    for shape in ["thumbnailer", "ledger-db", "catalog-db", "report-worker"] {
        assert!(
            served.cluster.store.txn(|t| {
                ["statefulsets", "deployments"].iter().any(|p| {
                    t.list(
                        &baton_sim::resources::GroupResource {
                            group: "apps".into(),
                            plural: (*p).into(),
                        },
                        None,
                    )
                    .iter()
                    .any(|o| o["metadata"]["name"] == shape)
                })
            }),
            "the overlay's {shape} is in teal"
        );
    }

    // Its EKS record has an issuer of its own, and the account its IAM OIDC provider.
    let issuer = aws
        .describe_cluster("teal")
        .await
        .unwrap()
        .oidc_issuer
        .expect("teal has an OIDC issuer");
    assert_ne!(Some(&issuer), seeded.oidc_issuers.get("green"));
    assert_eq!(added.oidc_issuer.as_ref(), Some(&issuer));
    let provider = aws
        .oidc_provider(added.oidc_provider.as_ref().expect("a provider"))
        .await
        .unwrap()
        .expect("teal's IAM OIDC provider exists");
    assert_eq!(
        provider.url.trim_start_matches("https://"),
        issuer.trim_start_matches("https://")
    );

    // Its driver's role is green's, renamed: cluster-scoped, tagged for teal.
    let role = aws
        .role_view(added.driver_role.as_ref().expect("a driver role"))
        .await
        .unwrap();
    assert!(
        role.arn.ends_with("role/teal-ebs-csi-driver"),
        "{}",
        role.arn
    );
    assert_eq!(role.tags["eks-cluster-name"], "teal");

    // Its target group, tagged as green's is, in no listener.
    let tg = &added.target_groups["storefront-teal"];
    let tags = &aws.elb_tags(std::slice::from_ref(tg)).await.unwrap()[tg];
    assert_eq!(tags["elbv2.k8s.aws/cluster"], "teal");
    assert_eq!(tags["app"], "web");
    let listener = aws
        .describe_listener(seeded.listener_arn.as_ref().unwrap())
        .await
        .unwrap();
    assert!(
        !format!("{listener:?}").contains(tg.as_str()),
        "{listener:?}"
    );

    // The IRSA ServiceAccounts are annotated as in the other clusters.
    let sa = served.cluster.store.txn(|t| {
        t.get(
            &baton_sim::resources::GroupResource {
                group: String::new(),
                plural: "serviceaccounts".into(),
            },
            "web",
            "storefront",
        )
    });
    assert_eq!(
        sa.expect("web/storefront")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        seeded.irsa_roles["storefront"].as_str()
    );

    // Scaled to 1, one of its StatefulSets gets fresh volumes that teal's own driver
    // provisions (tagged for teal) and attaches to a teal instance.
    let sets: Api<StatefulSet> = Api::namespaced(teal.clone(), "streaming");
    sets.patch(
        "events-broker",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": { "replicas": 1 } })),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(teal.clone(), "streaming");
    eventually("events-broker-0 Ready in teal", async || {
        let p = pods.get_opt("events-broker-0").await.unwrap()?;
        let ready = p
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(())
    })
    .await;
    let pvs = Api::<PersistentVolume>::all(teal.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(!pvs.is_empty());
    let ids: Vec<String> = pvs
        .iter()
        .map(|pv| {
            pv.spec
                .as_ref()
                .unwrap()
                .csi
                .as_ref()
                .unwrap()
                .volume_handle
                .clone()
        })
        .collect();
    let teal_instances: Vec<&String> = instances.iter().map(|i| &i.id).collect();
    for v in aws.describe_volumes_by_id(&ids).await.unwrap() {
        assert_eq!(v.tags["ebs.csi.aws.com/cluster-name"], "teal", "{v:?}");
        assert_eq!(v.state, baton_aws::VolumeState::InUse, "{v:?}");
        assert!(
            v.attachments
                .iter()
                .any(|at| teal_instances.contains(&&at.instance_id)),
            "{v:?} attached to a teal instance"
        );
    }
    estate.shutdown().await;
}
