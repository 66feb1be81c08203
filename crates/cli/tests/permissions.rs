//! `baton permissions` is derived from a table (`baton_core::permissions`); this test
//! keeps the table true. It runs baton's commands on the emulator and moto (baton's AWS
//! calls through a proxy of their own) and checks every Kubernetes request (method and
//! path as verb, group and resource) and every AWS action each command made against
//! what the table grants that command.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use baton_core::permissions;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::faults::{AwsKnobs, AwsProxy};
use baton_sim::scenario::{self, Scenario};

/// (verb, group, resource[/sub]) of one API request; None for discovery and debug paths.
fn rbac_of(method: &str, path: &str, query: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest): (&str, &[&str]) = match parts.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (g, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => return None,
        [plural] => (plural.to_string(), false),
        [plural, _name] => (plural.to_string(), true),
        [plural, _name, sub, ..] => (format!("{plural}/{sub}"), true),
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match method {
        "GET" if watch => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        _ => return None,
    };
    Some((verb.into(), group.into(), resource))
}

#[test]
fn every_call_baton_makes_is_in_the_permissions_table() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (estate, proxy) = rt.block_on(async {
        let s = Scenario::parse("default", scenario::DEFAULT_YAML).unwrap();
        let estate = Estate::start(EstateOptions {
            clusters: s.cluster_specs(),
            ..EstateOptions::default()
        })
        .await
        .expect("estate starts");
        scenario::seed(&estate, &s, Duration::from_secs(300))
            .await
            .expect("seeds");
        let knobs = Arc::new(AwsKnobs::new(1));
        knobs.set_log_capacity(100_000);
        let proxy = AwsProxy::start(&estate.aws_endpoint, knobs).await.unwrap();
        (estate, proxy)
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    estate.server.kubeconfig().write(&kubeconfig).unwrap();
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
            if !permissions::iam_allows(&granted, &action) {
                missing.push(format!("{command}: aws {action}"));
            }
        }
    };
    check("plan", &["plan", "--from", "blue", "--to", "green"], &[0]);
    check(
        "preflight",
        &["preflight", "--from", "blue", "--to", "green"],
        &[0, 1, 2],
    );
    check(
        "backup",
        &[
            "backup", "--from", "blue", "-n", "orders", "--out", "b", "--velero", "--wait",
        ],
        &[0],
    );
    check(
        "migrate",
        &[
            "migrate",
            "--from",
            "blue",
            "--to",
            "green",
            "-n",
            "orders",
            "--yes",
            "--state-dir",
            "m1",
        ],
        &[0],
    );
    check(
        "rollback",
        &["rollback", "--state-dir", "m1", "--yes"],
        &[0],
    );
    check(
        "migrate",
        &[
            "migrate",
            "--from",
            "blue",
            "--to",
            "green",
            "-n",
            "orders",
            "--yes",
            "--state-dir",
            "m2",
        ],
        &[0],
    );
    check("commit", &["commit", "--state-dir", "m2", "--yes"], &[0]);
    assert!(
        missing.is_empty(),
        "calls the table does not grant:\n{}",
        missing.join("\n")
    );
    drop(estate);
}
