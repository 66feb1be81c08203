//! `baton sim add-cluster` against a running `baton sim up` (issue 21's third cluster):
//! subnets made in a free range of the estate's VPC after it started, then the cluster
//! added into them and reached with kubectl and kube-rs through the context the command
//! wrote; bad input refused with nothing added.

mod common;

use common::{Sim, text};

/// Two subnets of the estate's VPC in its unused 10.2.0.0/16 (what `baton network
/// apply` would make there), made after the estate started.
fn new_subnets(sim: &Sim) -> (String, Vec<String>) {
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    let vpc = facts["vpc_id"].as_str().unwrap().to_string();
    let ids = sim.ec2(async |aws| {
        let mut ids = Vec::new();
        for (az, cidr) in [
            ("us-east-1a", "10.2.0.0/20"),
            ("us-east-1b", "10.2.16.0/20"),
        ] {
            let sn = aws
                .create_subnet(&baton_aws::NewSubnet {
                    vpc_id: vpc.clone(),
                    availability_zone: az.into(),
                    cidr: cidr.parse().unwrap(),
                    tags: Default::default(),
                })
                .await
                .unwrap();
            ids.push(sn.id);
        }
        ids
    });
    (vpc, ids)
}

fn contexts(sim: &Sim) -> String {
    text(&sim.kubectl(&["config", "get-contexts", "-o", "name"]))
}

#[test]
fn sim_add_cluster_adds_teal_in_new_subnets_and_kubectl_reaches_it_through_its_context() {
    let sim = common::sim_up();
    let (_, subnets) = new_subnets(&sim);
    let out = sim.baton(&[
        "sim",
        "add-cluster",
        "teal",
        "--version",
        "1.32",
        "--subnets",
        &subnets.join(","),
        "--nodes-per-subnet",
        "1",
        "--state-dir",
        "sim",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}\nsim up:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        sim.stderr()
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    assert!(
        stdout.starts_with("added cluster teal (v1.32.0-eks-") && stdout.contains("2 nodes"),
        "{stdout}"
    );
    assert_eq!(
        contexts(&sim).lines().collect::<Vec<_>>(),
        ["blue", "green", "teal"]
    );

    // kubectl through context teal: Ready nodes, green's apps at 0.
    let nodes = sim.kubectl_json("teal", &["get", "nodes"]);
    let nodes = nodes["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{n}");
        assert!(
            n["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap()
                .starts_with("v1.32.0-eks-")
        );
    }
    let sts = text(&sim.kubectl(&["--context", "teal", "get", "sts", "-A", "--no-headers"]));
    assert_eq!(sts.lines().count(), 3, "basic's three StatefulSets:\n{sts}");
    assert!(sts.lines().all(|l| l.contains(" 0/0 ")), "stopped:\n{sts}");

    // kube-rs through the same file: the version teal serves.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let version = rt.block_on(async {
        baton_kube::KubeconfigSource::file(sim.dir.path().join("sim/kubeconfig"))
            .client("teal")
            .await
            .unwrap()
            .apiserver_version()
            .await
            .unwrap()
    });
    assert!(
        version.git_version.starts_with("v1.32.0-eks-"),
        "{version:?}"
    );

    // EC2: teal's instances in the new subnets; EKS: its issuer. The facts file knows it.
    let (instances, issuer) = sim.ec2(async |aws| {
        let filter = baton_aws::Filter::new("tag:eks:cluster-name", ["teal".to_string()]);
        let instances = aws.describe_instances(&[filter]).await.unwrap();
        let issuer = aws.describe_cluster("teal").await.unwrap().oidc_issuer;
        (instances, issuer)
    });
    let mut placed: Vec<String> = instances.into_iter().filter_map(|i| i.subnet_id).collect();
    placed.sort();
    let mut want = subnets.clone();
    want.sort();
    assert_eq!(placed, want);
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(facts["nodes"]["teal"].as_array().unwrap().len(), 2);
    assert_eq!(facts["oidc_issuers"]["teal"].as_str(), issuer.as_deref());
    assert!(
        facts["target_groups"]["storefront-teal"].is_string(),
        "{facts}"
    );

    // A second teal is refused: the name is served.
    let again = sim.baton(&[
        "sim",
        "add-cluster",
        "teal",
        "--version",
        "1.32",
        "--subnets",
        &subnets[0],
        "--state-dir",
        "sim",
    ]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("a cluster teal is served already"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn sim_add_cluster_refuses_bad_input_and_adds_nothing() {
    // No running sim in the state dir.
    let nowhere = tempfile::tempdir().unwrap();
    let dir = nowhere.path().join("sim");
    let o = common::baton(&[
        "sim",
        "add-cluster",
        "teal",
        "--version",
        "1.32",
        "--subnets",
        "subnet-1",
        "--state-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("baton sim up --state-dir"),
        "{}",
        text(&o.stderr)
    );
    // Malformed version and name: usage errors.
    for args in [["teal", "--version", "1.x"], ["Teal!", "--version", "1.32"]] {
        let o = common::baton(
            &[
                &["sim", "add-cluster"][..],
                &args,
                &["--subnets", "subnet-1"],
            ]
            .concat(),
        );
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
    }

    let sim = common::sim_up();
    let (_, subnets) = new_subnets(&sim);
    let before = contexts(&sim);
    let unknown = "subnet-0123456789abcdef0";
    let o = sim.baton(&[
        "sim",
        "add-cluster",
        "teal",
        "--version",
        "1.32",
        "--subnets",
        &format!("{},{unknown}", subnets[0]),
        "--state-dir",
        "sim",
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("subnet {unknown} is not in EC2"))
            && stderr.contains("create it first"),
        "names the subnet and the fix: {stderr}"
    );
    assert!(o.stdout.is_empty());
    // Nothing was added: no context, no served cluster, no instance, no EKS cluster.
    assert_eq!(contexts(&sim), before);
    assert!(
        !sim.kubectl_output(&["--context", "teal", "get", "nodes"])
            .status
            .success()
    );
    let (instances, eks) = sim.ec2(async |aws| {
        let filter = baton_aws::Filter::new("tag:eks:cluster-name", ["teal".to_string()]);
        (
            aws.describe_instances(&[filter]).await.unwrap(),
            aws.describe_cluster("teal").await,
        )
    });
    assert!(instances.is_empty(), "{instances:?}");
    assert!(eks.unwrap_err().is_not_found());
    assert!(
        sim.stderr()
            .contains("subnet-0123456789abcdef0 is not in EC2"),
        "sim up says it too"
    );
}
