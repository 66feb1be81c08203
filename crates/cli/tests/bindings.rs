//! `baton traffic bindings` on the emulator and moto: for blue's TargetGroupBinding,
//! green gets the same binding into green's target group (and the readiness-gate label
//! on its namespace); the dry run shows the requests and changes nothing; a second run
//! creates nothing; a green binding into blue's group without multiClusterTargetGroup is
//! refused; a cluster without the controller's CRD is refused naming it.

mod common;

use common::{Sim, text};
use serde_json::{Value, json};

fn target_groups(sim: &Sim) -> (String, String) {
    let seeded: Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    let s = |k: &str| seeded["target_groups"][k].as_str().unwrap().to_string();
    (s("storefront-blue"), s("storefront-green"))
}

fn bindings(sim: &Sim, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["traffic", "bindings", "--from", "blue", "--to", "green"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", "json"]);
    let o = sim.baton(&args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code(), v, text(&o.stderr))
}

#[test]
fn green_gets_blues_binding_into_its_own_target_group() {
    let sim = common::sim_up();
    let (blue_tg, green_tg) = target_groups(&sim);
    // The default estate: blue's web pods reach storefront-blue through binding
    // web/storefront-blue; green has none. Green's group is found by its tags.
    let blue_binding = sim.kubectl_json(
        "blue",
        &["get", "targetgroupbindings", "-n", "web", "storefront-blue"],
    );
    assert_eq!(blue_binding["spec"]["targetGroupARN"], blue_tg.as_str());
    let (code, plan, err) = bindings(&sim, &[]);
    assert_eq!(code, Some(0), "{err}");
    let line = &plan["bindings"][0];
    assert_eq!(line["action"], "create", "{plan:#}");
    assert_eq!(line["green_target_group"], green_tg.as_str());
    assert_eq!(line["label_namespace"], true);

    // The dry run: the label, then the binding; nothing sent.
    let o = sim.baton(&[
        "traffic",
        "bindings",
        "--from",
        "blue",
        "--to",
        "green",
        "--apply",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let dry = text(&o.stdout);
    let lines: Vec<&str> = dry.lines().collect();
    assert_eq!(lines.len(), 2, "{dry}");
    assert!(
        lines[0].starts_with("PATCH  /api/v1/namespaces/web ")
            && lines[0].contains("elbv2.k8s.aws/pod-readiness-gate-inject"),
        "{dry}"
    );
    assert!(
        lines[1]
            .starts_with("POST   /apis/elbv2.k8s.aws/v1beta1/namespaces/web/targetgroupbindings ")
            && lines[1].contains(&green_tg),
        "{dry}"
    );
    let none = sim.kubectl_json("green", &["get", "targetgroupbindings", "-A"]);
    assert_eq!(none["items"], json!([]), "the dry run created something");
    // No terminal and no --yes: usage.
    let o = sim.baton(&[
        "traffic", "bindings", "--from", "blue", "--to", "green", "--apply",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    let (code, after, err) = bindings(&sim, &["--apply", "--yes"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(after["bindings"][0]["action"], "exists", "{after:#}");
    let made = sim.kubectl_json(
        "green",
        &["get", "targetgroupbindings", "-n", "web", "storefront-blue"],
    );
    assert_eq!(made["spec"]["targetGroupARN"], green_tg.as_str());
    assert_eq!(
        made["spec"]["serviceRef"],
        json!({ "name": "web", "port": 80 })
    );
    let ns = sim.kubectl_json("green", &["get", "namespace", "web"]);
    assert_eq!(
        ns["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"],
        "enabled"
    );
    // Again: nothing to send.
    let (code, _, err) = bindings(&sim, &["--apply", "--yes"]);
    assert_eq!(code, Some(0), "{err}");
    let journal =
        std::fs::read_to_string(sim.dir.path().join(".baton/bindings/bindings.jsonl")).unwrap();
    assert_eq!(
        journal.lines().count(),
        4,
        "sending and sent, twice: {journal}"
    );

    // Green bound into blue's own group, blue's binding not multi-cluster: refused.
    sim.kubectl_delete(
        "green",
        &["targetgroupbindings", "-n", "web", "storefront-blue"],
    );
    let (code, refused, err) = bindings(
        &sim,
        &[
            "--map",
            "storefront-blue=storefront-blue",
            "--apply",
            "--yes",
        ],
    );
    assert_eq!(code, Some(3), "{err}");
    let problem = refused["bindings"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("multiClusterTargetGroup"), "{problem}");
    let none = sim.kubectl_json("green", &["get", "targetgroupbindings", "-A"]);
    assert_eq!(none["items"], json!([]), "a refusal created something");

    // A green without the controller's CRD: refused, naming it.
    sim.kubectl_delete("green", &["crd", "targetgroupbindings.elbv2.k8s.aws"]);
    let (code, _, err) = bindings(&sim, &["--map", &format!("storefront-blue={green_tg}")]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("install the AWS Load Balancer Controller"),
        "{err}"
    );
}
