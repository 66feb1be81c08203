//! `baton sim delete-nodegroup` against a running `baton sim up` (issue 21, "retire
//! blue"): blue's node groups deleted as `eksctl delete nodegroup` would, seen through
//! kubectl (no nodes) and EC2 (instances terminated, no ENI in blue's subnets); an
//! unknown cluster, a second deletion and bad input refused with nothing changed.

mod common;

use common::{Sim, text};

/// Blue's subnet ids (nodes and pods), from the facts file.
fn blue_subnets(sim: &Sim) -> Vec<String> {
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    facts["subnets"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("blue-"))
        .map(|(_, id)| id.as_str().unwrap().to_string())
        .collect()
}

fn nodes(sim: &Sim, ctx: &str) -> usize {
    sim.kubectl_json(ctx, &["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn sim_delete_nodegroup_removes_blues_nodes_instances_and_enis() {
    let sim = common::sim_up();
    let subnets = blue_subnets(&sim);
    assert_eq!(subnets.len(), 6);
    let green_nodes = nodes(&sim, "green");
    assert_eq!(nodes(&sim, "blue"), 6);

    // Refused, nothing changed: a cluster the estate does not serve.
    let o = sim.baton(&["sim", "delete-nodegroup", "teal", "--state-dir", "sim"]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no cluster teal is served (clusters: blue, green)"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty());
    assert_eq!(nodes(&sim, "blue"), 6);

    let out = sim.baton(&["sim", "delete-nodegroup", "blue", "--state-dir", "sim"]);
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
        stdout.starts_with("deleted the node groups of blue (blue-us-east-1a, blue-us-east-1b, blue-us-east-1c): 6 nodes drained and deleted")
            && stdout.contains("6 instances terminated"),
        "{stdout}"
    );

    // kubectl: blue has no nodes, green keeps its own; blue's API server still serves.
    assert_eq!(nodes(&sim, "blue"), 0);
    assert_eq!(nodes(&sim, "green"), green_nodes);
    // EC2: blue's instances terminated, green's running, no ENI in blue's subnets.
    let (blue, green, enis) = sim.ec2(async |aws| {
        let of = |c: &str| baton_aws::Filter::new("tag:eks:cluster-name", [c.to_string()]);
        (
            aws.describe_instances(&[of("blue")]).await.unwrap(),
            aws.describe_instances(&[of("green")]).await.unwrap(),
            aws.describe_network_interfaces(&[baton_aws::Filter::new(
                "subnet-id",
                subnets.clone(),
            )])
            .await
            .unwrap(),
        )
    });
    assert_eq!(blue.len(), 6);
    assert!(blue.iter().all(|i| i.state == "terminated"), "{blue:?}");
    assert!(green.iter().all(|i| i.state == "running"), "{green:?}");
    assert!(enis.is_empty(), "ENIs left in blue's subnets: {enis:?}");
    let enis_went: usize = stdout
        .split(" instances terminated, ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        enis_went >= 6,
        "each instance's primary ENI at least: {stdout}"
    );
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    assert!(
        facts["nodes"]["blue"].as_array().unwrap().is_empty(),
        "{facts}"
    );

    // Again: refused, blue has no nodes.
    let again = sim.baton(&["sim", "delete-nodegroup", "blue", "--state-dir", "sim"]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("it has no nodes"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn sim_delete_nodegroup_refuses_without_a_running_sim_and_bad_input() {
    let nowhere = tempfile::tempdir().unwrap();
    let dir = nowhere.path().join("sim");
    let o = common::baton(&[
        "sim",
        "delete-nodegroup",
        "blue",
        "--state-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("baton sim up --state-dir"),
        "{}",
        text(&o.stderr)
    );
    for args in [&["Blue!"][..], &[][..], &["blue", "green"][..]] {
        let o = common::baton(&[&["sim", "delete-nodegroup"][..], args].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
    }
    let help = common::baton(&["sim", "delete-nodegroup", "--help"]);
    let help = text(&help.stdout);
    assert!(
        help.contains("eksctl delete nodegroup")
            && help.contains("baton sim delete-nodegroup blue"),
        "{help}"
    );
}
