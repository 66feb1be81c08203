//! Deleting blue's managed node groups on a running estate (issue 21, "retire blue"):
//! the `basic` scenario seeded, then `Estate::delete_node_group("blue")` as EKS does on
//! `aws eks delete-nodegroup` — blue's nodes drained and gone, its instances terminated,
//! no network interface left in its node or pod subnets (so DeleteSubnet may go), its
//! API server still serving, green untouched.
//!
//! moto 5 refuses no DeleteSubnet (it deletes a subnet with network interfaces in it),
//! so the bed cannot show EC2's `DependencyViolation`; this pins that fact, and asserts
//! what the refusal would depend on instead: no ENI left in blue's subnets.

mod common;

use std::time::Duration;

use baton_aws::{DeleteSubnet, Filter};
use baton_sim::estate::{DeleteNodeGroupError, Estate, EstateOptions};
use baton_sim::scenario::{self, Scenario};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_blues_node_groups_terminates_its_instances_and_frees_its_subnets() {
    let s = Scenario::load("basic").unwrap();
    let estate = Estate::start(EstateOptions {
        clusters: s.cluster_specs(),
        aws_endpoint: Some(common::estate::moto_endpoint()),
        ..EstateOptions::default()
    })
    .await
    .expect("estate starts");
    let seeded = scenario::seed(&estate, &s, Duration::from_secs(120))
        .await
        .expect("basic seeds");
    let aws = estate.aws.clone();
    let subnets = |prefix: &str| -> Vec<String> {
        seeded
            .subnets
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, id)| id.clone())
            .collect()
    };
    let (blue_subnets, green_subnets) = (subnets("blue-"), subnets("green-"));
    assert_eq!(blue_subnets.len(), 6, "blue's node and pod subnets");
    let enis_in = async |ids: &[String]| {
        aws.describe_network_interfaces(&[Filter::new("subnet-id", ids.iter().cloned())])
            .await
            .unwrap()
    };
    let instances_of = async |cluster: &str| {
        aws.describe_instances(&[Filter::new("tag:eks:cluster-name", [cluster])])
            .await
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    estate.server.kubeconfig().write(&path).unwrap();
    let client = async |ctx: &str| {
        baton_kube::KubeconfigSource::file(&path)
            .client(ctx)
            .await
            .unwrap()
    };
    let (kube_blue, kube_green) = (client("blue").await, client("green").await);
    let nodes = |c: &kube::Client| Api::<Node>::all(c.clone());

    // Before: blue's ENIs in its node subnets (the instances' own) and its pod subnets
    // (the VPC CNI's, custom networking).
    let before = enis_in(&blue_subnets).await;
    let pod_subnets = subnets("blue-pods-");
    assert!(
        before.iter().any(|e| pod_subnets.contains(&e.subnet_id)),
        "the VPC CNI's ENIs in blue's pod subnets: {before:?}"
    );
    let green_nodes_before = nodes(&kube_green)
        .list(&ListParams::default())
        .await
        .unwrap();
    let green_enis_before = enis_in(&green_subnets).await.len();
    assert!(green_enis_before > 0);

    // moto's DeleteSubnet, pinned: it does not refuse a subnet holding an ENI (EC2 answers
    // DependencyViolation). If this starts failing, moto enforces it: assert the refusal
    // of blue's subnet below, and update ARCHITECTURE.md's bed section.
    let scratch = aws
        .create_subnet(&baton_aws::NewSubnet {
            vpc_id: seeded.vpc_id.clone(),
            availability_zone: "us-east-1a".into(),
            cidr: "10.2.0.0/24".parse().unwrap(),
            tags: Default::default(),
        })
        .await
        .unwrap()
        .id;
    let held = aws
        .create_network_interface(&baton_aws::NewNetworkInterface {
            subnet_id: scratch.clone(),
            security_groups: Vec::new(),
            description: "holds the subnet".into(),
            private_ip: "10.2.0.10".into(),
            secondary_ips: Vec::new(),
            tags: Default::default(),
        })
        .await
        .unwrap();
    assert!(
        aws.delete_subnet(&DeleteSubnet {
            subnet_id: scratch.clone()
        })
        .await
        .is_ok(),
        "moto deletes a subnet with an ENI in it"
    );
    aws.delete_network_interface(&held.id).await.unwrap();

    // Refused, nothing changed: a cluster not served.
    let e = estate
        .delete_node_group("teal", Duration::from_secs(60))
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, DeleteNodeGroupError::NotFound { .. }) && e.refused(),
        "{e}"
    );
    assert!(e.to_string().contains("clusters: blue, green"), "{e}");

    let blue_nodes: Vec<String> = seeded.nodes["blue"].clone();
    let deleted = estate
        .delete_node_group("blue", Duration::from_secs(60))
        .await
        .expect("blue's node groups are deleted");
    eprintln!("{deleted:?}");
    let mut want = blue_nodes.clone();
    want.sort();
    assert_eq!(deleted.nodes, want);
    assert_eq!(deleted.instances.len(), 6);
    assert_eq!(
        deleted.node_groups,
        ["blue-us-east-1a", "blue-us-east-1b", "blue-us-east-1c"]
    );
    assert!(deleted.pods_drained > 0, "blue's apps ran on its nodes");
    let mut gone: Vec<String> = before.iter().map(|e| e.id.clone()).collect();
    gone.sort();
    assert_eq!(
        deleted.network_interfaces, gone,
        "every ENI of blue's subnets"
    );

    // Blue: no Node, instances terminated, no ENI in its node or pod subnets.
    let check_blue = async || {
        assert!(
            nodes(&kube_blue)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty(),
            "blue has no node"
        );
        let instances = instances_of("blue").await;
        assert_eq!(instances.len(), 6);
        for i in &instances {
            assert_eq!(i.state, "terminated", "{i:?}");
        }
        let left = enis_in(&blue_subnets).await;
        assert!(left.is_empty(), "ENIs left in blue's subnets: {left:?}");
    };
    check_blue().await;
    // The API server still serves; the controllers recreate the drained apps' pods,
    // Pending with nowhere to run.
    let pods = Api::<Pod>::all(kube_blue.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        !pods.items.is_empty(),
        "blue's controllers recreate its pods"
    );
    for p in &pods.items {
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"), "{p:?}");
        assert!(
            p.spec.as_ref().unwrap().node_name.is_none(),
            "bound to a deleted node: {p:?}"
        );
    }
    // And blue's controllers (ipamd, kubelet) make nothing again after a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    check_blue().await;

    // Green untouched: its nodes Ready, its instances running, its ENIs in place.
    let green_nodes = nodes(&kube_green)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(green_nodes.items.len(), green_nodes_before.items.len());
    assert!(green_nodes.items.iter().all(ready));
    assert!(
        instances_of("green")
            .await
            .iter()
            .all(|i| i.state == "running")
    );
    assert_eq!(enis_in(&green_subnets).await.len(), green_enis_before);

    // Asked again: refused, blue has no nodes.
    let again = estate
        .delete_node_group("blue", Duration::from_secs(60))
        .await
        .expect_err("refused");
    assert!(
        matches!(&again, DeleteNodeGroupError::NoNodes { .. }) && again.refused(),
        "{again}"
    );

    // Blue's subnets can go (EC2 would have refused while ENIs were in them).
    aws.delete_subnet(&DeleteSubnet {
        subnet_id: seeded.subnets["blue-a"].clone(),
    })
    .await
    .expect("blue-a is deleted");
    estate.shutdown().await;
}
