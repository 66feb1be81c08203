//! `baton permissions` is derived from a table (`baton_core::permissions`); this test
//! keeps the table true. It runs baton's commands on the emulator and moto (baton's AWS
//! calls through a proxy of their own) as a ServiceAccount bound to nothing but the
//! ClusterRole `baton permissions -o yaml` prints, with the emulator enforcing RBAC: every
//! command must succeed, and every Kubernetes request (method and path as verb, group and
//! resource) and every AWS action each command made is checked against what the table
//! grants that command. Then one rule baton needs is taken away, and the commands that
//! need it must fail clearly (what was denied, where the rules are) and safely.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

mod common;

use baton_core::permissions;
use baton_sim::auth::attributes::{self, Attributes};
use baton_sim::estate::Estate;
use baton_sim::faults::{AwsKnobs, AwsProxy};
use serde_json::{Value, json};

/// (verb, group, resource[/sub]) of one API request, as the emulator's RBAC authorizer
/// sees it; None for discovery and debug paths.
fn rbac_of(method: &str, path: &str, query: &str) -> Option<(String, String, String)> {
    match attributes::of(method, path, query) {
        Attributes::Resource(a) => Some((a.verb.clone(), a.group.clone(), a.combined_resource())),
        Attributes::NonResource { .. } => None,
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// The `baton` ServiceAccount (namespace `baton`) on every cluster of the estate, bound to
/// the ClusterRole `baton permissions -o yaml` prints; a kubeconfig whose `blue` and
/// `green` contexts use the account's tokens (same servers and CA as the admin's).
fn as_service_account(estate: &Estate, role: &Value, kubeconfig: &Path) {
    let mut config = baton_sim::Kubeconfig::default();
    for c in estate.server.clusters() {
        let cluster = &c.cluster;
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": "baton" },
            "roleRef": { "apiGroup": RBAC, "kind": "ClusterRole", "name": "baton" },
            "subjects": [{ "kind": "ServiceAccount", "name": "baton", "namespace": "baton" }],
        });
        let named = json!({ "metadata": { "name": "baton" } });
        for (group, plural, namespace, obj) in [
            ("", "namespaces", "", &named),
            ("", "serviceaccounts", "baton", &named),
            (RBAC, "clusterroles", "", role),
            (RBAC, "clusterrolebindings", "", &binding),
        ] {
            let def = cluster.def(group, "v1", plural).expect("served");
            cluster.create(&def, namespace, obj.clone(), false).unwrap();
        }
        let (token, _) = cluster.issue_token("baton", "baton", 3600).unwrap();
        config.add(&cluster.spec.name, &c.url(), &token, estate.server.ca_pem());
    }
    config.write(kubeconfig).unwrap();
}

/// `baton migrate` of namespace `ns` from blue to green, journaled in `dir`.
fn migrate<'a>(ns: &'a str, dir: &'a str) -> [&'a str; 10] {
    [
        "migrate",
        "--from",
        "blue",
        "--to",
        "green",
        "-n",
        ns,
        "--yes",
        "--state-dir",
        dir,
    ]
}

/// Replaces the rules of the `baton` ClusterRole on every cluster.
fn set_rules(estate: &Estate, rules: &Value) {
    for c in estate.server.clusters() {
        let def = c.cluster.def(RBAC, "v1", "clusterroles").unwrap();
        let mut role = (*c.cluster.get(&def, "", "baton").unwrap()).clone();
        role["rules"] = rules.clone();
        c.cluster
            .update(&def, "", "baton", role, baton_sim::ops::Part::Main, false)
            .unwrap();
    }
}

/// `rules` without `verb` on `resource` (other verbs and resources of each rule kept).
fn without(rules: &Value, resource: &str, verb: &str) -> Value {
    let mut out = Vec::new();
    for r in rules.as_array().unwrap() {
        let resources: Vec<&str> = r["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !resources.contains(&resource) {
            out.push(r.clone());
            continue;
        }
        let rest: Vec<&str> = resources
            .iter()
            .copied()
            .filter(|x| *x != resource)
            .collect();
        if !rest.is_empty() {
            let mut kept = r.clone();
            kept["resources"] = json!(rest);
            out.push(kept);
        }
        let verbs: Vec<&str> = r["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|v| *v != verb)
            .collect();
        if !verbs.is_empty() {
            let mut kept = r.clone();
            kept["resources"] = json!([resource]);
            kept["verbs"] = json!(verbs);
            out.push(kept);
        }
    }
    Value::Array(out)
}

#[test]
fn every_call_baton_makes_is_in_the_permissions_table() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (estate, proxy) = rt.block_on(async {
        let estate = common::default_estate().await;
        let knobs = Arc::new(AwsKnobs::new(1));
        knobs.set_log_capacity(100_000);
        let proxy = AwsProxy::start(&estate.aws_endpoint, knobs).await.unwrap();
        (estate, proxy)
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let printed = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["permissions", "-o", "yaml"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    let role: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&printed.stdout))
        .expect("the ClusterRole is YAML");
    assert_eq!(role["metadata"]["name"], "baton");
    as_service_account(&estate, &role, &kubeconfig);
    for c in estate.server.clusters() {
        c.cluster.knobs.set_log_capacity(100_000);
    }
    let run = |args: &[&str]| {
        for c in estate.server.clusters() {
            c.cluster.knobs.clear_requests();
        }
        proxy.knobs().clear_requests();
        let o = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("AWS_ENDPOINT_URL", proxy.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", &estate.region)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let mut kube = BTreeSet::new();
        for c in estate.server.clusters() {
            for r in c.cluster.knobs.requests() {
                kube.extend(rbac_of(&r.method, &r.path, &r.query));
            }
        }
        let aws: BTreeSet<String> = proxy
            .knobs()
            .requests()
            .iter()
            .filter_map(|r| Some(format!("{}:{}", r.service.clone()?, r.action.clone()?)))
            .collect();
        (o, kube, aws)
    };
    let mut missing = Vec::new();
    let mut seen_kube = BTreeSet::new();
    let mut seen_aws = BTreeSet::new();
    let mut check = |command: &str, args: &[&str], codes: &[i32]| {
        let (o, kube, aws) = run(args);
        seen_kube.extend(kube.clone());
        seen_aws.extend(aws.clone());
        assert!(
            codes.contains(&o.status.code().unwrap_or(-1)),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let granted = permissions::select(&[command.to_string()]);
        assert!(!granted.is_empty(), "{command} is in the table");
        for (verb, group, resource) in &kube {
            if !permissions::kube_allows(&granted, group, resource, verb) {
                missing.push(format!("{command}: k8s {verb} {group}/{resource}"));
            }
        }
        for action in &aws {
            // CloudWatch signs as `monitoring`; IAM names it `cloudwatch`.
            let action = action.replace("monitoring:", "cloudwatch:");
            if !permissions::iam_allows(&granted, &action)
                && !permissions::NEEDS_NO_PERMISSION.contains(&action.as_str())
            {
                missing.push(format!("{command}: aws {action}"));
            }
        }
    };
    check(
        "volumes grant",
        &[
            "volumes",
            "grant",
            "--from",
            "blue",
            "--to",
            "green",
            "--dry-run",
        ],
        &[0],
    );
    check(
        "volumes grant",
        &[
            "volumes", "grant", "--from", "blue", "--to", "green", "--yes",
        ],
        &[0],
    );
    // Refused (orders-db's role trusts blue only) once its IAM reads are done.
    check("plan", &["plan", "--from", "blue", "--to", "green"], &[3]);
    check(
        "identity",
        &["identity", "plan", "--from", "blue", "--to", "green"],
        &[0],
    );
    check(
        "identity",
        &[
            "identity", "apply", "--from", "blue", "--to", "green", "--yes",
        ],
        &[0],
    );
    check("plan", &["plan", "--from", "blue", "--to", "green"], &[0]);
    // Green's counterpart of blue's web binding: printed, then made (with the
    // readiness-gate label on green's namespace).
    check(
        "traffic bindings",
        &["traffic", "bindings", "--from", "blue", "--to", "green"],
        &[0],
    );
    check(
        "traffic bindings",
        &[
            "traffic", "bindings", "--from", "blue", "--to", "green", "--apply", "--yes",
        ],
        &[0],
    );
    let green = &estate.server.cluster("green").unwrap().cluster;
    let tgb = green
        .def("elbv2.k8s.aws", "v1beta1", "targetgroupbindings")
        .unwrap();
    assert_eq!(
        green.store.txn(|t| t.list(&tgb.key(), None)).len(),
        1,
        "green's binding was made"
    );
    check(
        "preflight",
        &["preflight", "--from", "blue", "--to", "green"],
        &[0, 1, 2],
    );
    check(
        "backup",
        &[
            "backup", "--from", "blue", "-n", "orders", "--out", "b", "--velero", "--yes", "--wait",
        ],
        &[0],
    );
    check(
        "volumes grant",
        &[
            "volumes",
            "grant",
            "--from",
            "blue",
            "--to",
            "green",
            "--dry-run",
        ],
        &[0],
    );
    check(
        "volumes grant",
        &[
            "volumes", "grant", "--from", "blue", "--to", "green", "--yes",
        ],
        &[0],
    );
    // A KEDA ScaledObject scales orders-db: the move pauses it (get, patch) and the
    // rollback restores it, both with the table's rights only.
    let blue_cluster = &estate.server.cluster("blue").unwrap().cluster;
    let scaled_objects = common::serve_scaled_objects(blue_cluster);
    blue_cluster
        .create(
            &scaled_objects,
            "orders",
            json!({ "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                    "metadata": { "name": "orders-db", "namespace": "orders" },
                    "spec": { "scaleTargetRef": { "kind": "StatefulSet", "name": "orders-db" },
                              "minReplicaCount": 1 } }),
            false,
        )
        .unwrap();
    let paused = || {
        blue_cluster
            .get(&scaled_objects, "orders", "orders-db")
            .unwrap()["metadata"]["annotations"]["autoscaling.keda.sh/paused-replicas"]
            == "0"
    };
    check("migrate", &migrate("orders", "m1"), &[0]);
    assert!(paused(), "migrate paused the ScaledObject");
    check(
        "rollback",
        &["rollback", "--state-dir", "m1", "--yes"],
        &[0],
    );
    assert!(!paused(), "rollback restored the ScaledObject");
    check("migrate", &migrate("orders", "m2"), &[0]);
    check("commit", &["commit", "--state-dir", "m2", "--yes"], &[0]);
    // After the rollback of m1 and the commit of m2, green holds orders-db's volume: the
    // revoke is refused after reading what it needs.
    check(
        "volumes grant",
        &[
            "volumes", "grant", "--from", "blue", "--to", "green", "--revoke", "--yes",
        ],
        &[3],
    );
    // Blue still runs the apps m2 did not move: retire refuses after reading all it
    // reads (with --release-subnets, the subnets' network interfaces too).
    check(
        "retire",
        &[
            "retire",
            "plan",
            "--blue",
            "blue",
            "--green",
            "green",
            "--state-dir",
            ".",
            "--release-subnets",
            "--delete-target-groups",
        ],
        &[3],
    );
    check(
        "retire",
        &[
            "retire",
            "apply",
            "--blue",
            "blue",
            "--green",
            "green",
            "--state-dir",
            ".",
            "--yes",
        ],
        &[3],
    );
    assert!(
        missing.is_empty(),
        "calls the table does not grant:\n{}",
        missing.join("\n")
    );

    // Without create on persistentvolumes, a migrate stops in the window, at green's PV,
    // and says so; the journal records where, and once the rule is back it resumes.
    let rules = role["rules"].clone();
    set_rules(&estate, &without(&rules, "persistentvolumes", "create"));
    let (o, kube, _) = run(&migrate("cache", "m3"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("green denied \"create persistentvolumes\"")
            && stderr.contains("cannot create resource \"persistentvolumes\" in API group \"\" at the cluster scope")
            && stderr.contains("baton permissions -o yaml"),
        "{stderr}"
    );
    assert!(
        kube.contains(&(
            "create".into(),
            String::new(),
            "persistentvolumeclaims".into()
        )),
        "it stopped in the window, after green's claim: {kube:?}"
    );
    // Blue's volumes are kept whatever happens next (Retain was set before the window).
    let blue = &estate.server.cluster("blue").unwrap().cluster;
    let pv_def = blue.def("", "v1", "persistentvolumes").unwrap();
    let pvs: Vec<Value> = blue
        .store
        .txn(|t| t.list(&pv_def.key(), None))
        .iter()
        .filter(|pv| pv["spec"]["claimRef"]["namespace"] == "cache")
        .map(|pv| (**pv).clone())
        .collect();
    assert!(!pvs.is_empty());
    for pv in &pvs {
        assert_eq!(
            pv["spec"]["persistentVolumeReclaimPolicy"], "Retain",
            "{pv}"
        );
    }
    let (o, _, _) = run(&["status", "--state-dir", "m3", "-o", "json"]);
    let status: Value = serde_json::from_slice(&o.stdout).expect("status -o json");
    let app = &status["apps"][0];
    assert!(
        app["problem"]
            .as_str()
            .is_some_and(|p| p.contains("create persistentvolumes")),
        "{status}"
    );
    set_rules(&estate, &rules);
    let (o, _, _) = run(&["migrate", "--resume", "--state-dir", "m3", "--yes"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (o, _, _) = run(&["rollback", "--state-dir", "m3", "--yes"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Without patch on persistentvolumes, a migrate refuses at its first write (blue's PV
    // to Retain), before anything is scaled down: blue keeps running.
    set_rules(&estate, &without(&rules, "persistentvolumes", "patch"));
    let (o, kube, _) = run(&migrate("streaming", "m4"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("blue denied \"patch persistentvolumes\"")
            && stderr.contains("baton permissions"),
        "{stderr}"
    );
    assert!(
        !kube
            .iter()
            .any(|(verb, _, resource)| resource.starts_with("statefulsets") && verb == "patch"),
        "nothing is scaled when the first write is denied: {kube:?}"
    );

    // A preflight that may not read something reports it unchecked (exit 3), not passed.
    let reads: Vec<Value> = rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["resources"] != json!(["*"]) && r["resources"] != json!(["poddisruptionbudgets"])
        })
        .cloned()
        .collect();
    set_rules(&estate, &Value::Array(reads));
    let (o, _, _) = run(&["preflight", "--from", "blue", "--to", "green"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("denied \"list poddisruptionbudgets\""),
        "{out}"
    );
    drop(estate);
}
