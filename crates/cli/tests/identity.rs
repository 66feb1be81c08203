//! `baton identity plan|apply` on the emulator and moto (issue 19): a role blue's
//! ServiceAccount assumes, trusted by blue's OIDC provider only, is given green's
//! statement (blue's kept) and green's provider is created; a second run changes
//! nothing; preflight fails before and passes after; a role that is missing, or whose
//! trust policy would grow past IAM's 2,048 characters, is refused naming it.

mod common;

use common::text;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";

/// The trust policy EKS's guide writes for one ServiceAccount, for an issuer.
fn trust(issuer: &str, subjects: &[&str]) -> Value {
    let host = issuer.trim_start_matches("https://");
    json!({"Version": "2012-10-17", "Statement": subjects.iter().map(|s| json!({
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{host}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{host}:sub"): s, format!("{host}:aud"): "sts.amazonaws.com"}}
    })).collect::<Vec<_>>()})
}

fn irsa(sim: &common::Sim, ns: &str, sa: &str, role: &str) {
    sim.kubectl(&[
        "--context",
        "blue",
        "-n",
        ns,
        "create",
        "serviceaccount",
        sa,
    ]);
    sim.kubectl(&[
        "--context",
        "blue",
        "-n",
        ns,
        "annotate",
        "serviceaccount",
        sa,
        &format!("eks.amazonaws.com/role-arn=arn:aws:iam::{ACCOUNT}:role/{role}"),
    ]);
}

fn plan(sim: &common::Sim) -> (Option<i32>, Value) {
    let o = sim.baton(&[
        "identity", "plan", "--from", "blue", "--to", "green", "-o", "json",
    ]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&o.stdout), text(&o.stderr)));
    (o.status.code(), v)
}

#[test]
fn green_is_trusted_beside_blue_and_what_cannot_be_is_refused() {
    // The default estate, but green made without its IAM OIDC provider.
    let scenario = tempfile::NamedTempFile::new().unwrap();
    let yaml = baton_sim::scenario::BASIC_YAML.replacen(
        "The apps' roles do not trust it yet.\n    oidc_provider: true\n",
        "The apps' roles do not trust it yet.\n    oidc_provider: false\n",
        1,
    );
    assert_ne!(
        yaml,
        baton_sim::scenario::BASIC_YAML,
        "the default's green moved"
    );
    std::fs::write(scenario.path(), yaml).unwrap();
    let sim = common::sim_up_with(&["--scenario", scenario.path().to_str().unwrap()]);
    let blue_issuer = sim.ec2(async |aws| {
        aws.describe_cluster("blue")
            .await
            .unwrap()
            .oidc_issuer
            .unwrap()
    });
    // Blue's issuer differs from green's on a real account; the fake one below stands in
    // for it whatever the bed's issuers are.
    let blue_issuer = format!("{blue_issuer}-blue");
    let blue_trust = trust(&blue_issuer, &["system:serviceaccount:orders:db-sa"]);
    sim.ec2(async |aws| {
        let trust = blue_trust.to_string();
        aws.create_role("orders-app", &Default::default(), Some(&trust))
            .await
            .unwrap();
    });
    irsa(&sim, "orders", "db-sa", "orders-app");

    let (code, before) = plan(&sim);
    assert_eq!(code, Some(0), "{before:#}");
    assert_eq!(before["provider_exists"], false, "{before:#}");
    assert_eq!(before["roles"][0]["green"], "add", "{before:#}");
    assert_eq!(
        before["roles"][0]["service_accounts"],
        json!(["orders/db-sa"])
    );
    // Preflight fails on both, naming the fix.
    let o = sim.baton(&["preflight", "--from", "blue", "--to", "green", "-o", "json"]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["check"].as_str())
        .collect();
    assert!(
        checks.contains(&"irsa-role-untrusted") && checks.contains(&"oidc-provider-missing"),
        "{checks:?}"
    );

    // The dry run: the provider, then each role's whole new trust (this one's, and the
    // default estate's orders-db-archive and storefront); nothing sent.
    let dry = sim.ok(&[
        "identity",
        "apply",
        "--from",
        "blue",
        "--to",
        "green",
        "--dry-run",
    ]);
    let lines: Vec<&str> = dry.lines().collect();
    assert_eq!(lines.len(), 4, "{dry}");
    assert!(
        lines[0].starts_with("iam    CreateOpenIDConnectProvider {"),
        "{dry}"
    );
    assert!(
        lines[1].starts_with("iam    UpdateAssumeRolePolicy {\"RoleName\":\"orders-app\""),
        "{dry}"
    );
    assert_eq!(plan(&sim).1, before, "the dry run changed something");
    // No terminal, no --yes: usage.
    let o = sim.baton(&["identity", "apply", "--from", "blue", "--to", "green"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    sim.ok(&[
        "identity", "apply", "--from", "blue", "--to", "green", "--yes",
    ]);
    let (code, after) = plan(&sim);
    assert_eq!(code, Some(0));
    assert_eq!(after["provider_exists"], true, "{after:#}");
    assert_eq!(after["roles"][0]["green"], "trusted", "{after:#}");
    let stored: Value = sim.ec2(async |aws| {
        let r = aws
            .role_policies(&format!("arn:aws:iam::{ACCOUNT}:role/orders-app"))
            .await
            .unwrap();
        serde_json::from_str(&r.trust).unwrap()
    });
    let federated: Vec<&str> = stored["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Principal"]["Federated"].as_str())
        .collect();
    assert_eq!(federated.len(), 2, "blue's and green's: {stored:#}");
    assert!(
        federated[0].ends_with("-blue"),
        "blue's is kept first: {stored:#}"
    );
    assert_eq!(federated[1], after["provider"].as_str().unwrap());
    // Run again: nothing to send.
    let again = sim.ok(&[
        "identity",
        "apply",
        "--from",
        "blue",
        "--to",
        "green",
        "--dry-run",
    ]);
    assert_eq!(again.trim(), "", "{again}");
    let o = sim.baton(&["preflight", "--from", "blue", "--to", "green", "-o", "json"]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        !report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"]
                .as_str()
                .is_some_and(|c| c.starts_with("irsa") || c.starts_with("oidc"))),
        "{report:#}"
    );
    let journal =
        std::fs::read_to_string(sim.dir.path().join(".baton/identity/identity.jsonl")).unwrap();
    assert_eq!(
        journal.lines().count(),
        8,
        "sending and sent, for each of 4 requests: {journal}"
    );

    // A trust policy that green's statement would push past 2,048 characters, and a
    // role that is not there: refused, named, nothing changed.
    // As many statements for blue's ServiceAccounts as fit under the limit: one more
    // (green's) does not.
    let statements = |n: usize| {
        let subs: Vec<String> = (0..n)
            .map(|i| format!("system:serviceaccount:web:sa-{i}"))
            .collect();
        trust(
            &blue_issuer,
            &subs.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let n = (1..)
        .find(|n| statements(n + 1).to_string().len() > 2048)
        .unwrap();
    let big = statements(n);
    assert!(big.to_string().len() <= 2048);
    sim.ec2(async |aws| {
        let trust = big.to_string();
        aws.create_role("web-app", &Default::default(), Some(&trust))
            .await
            .unwrap();
    });
    irsa(&sim, "web", "sa-0", "web-app");
    irsa(&sim, "web", "ghost", "nope");
    let (code, refused) = plan(&sim);
    assert_eq!(code, Some(3), "{refused:#}");
    let problem = |role: &str| {
        refused["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"].as_str().unwrap().ends_with(role))
            .and_then(|r| r["problem"].as_str())
            .unwrap_or_else(|| panic!("{role}: {refused:#}"))
            .to_string()
    };
    assert!(problem("role/web-app").contains("2048"), "{refused:#}");
    assert!(
        problem("role/nope").contains("does not exist"),
        "{refused:#}"
    );
    let o = sim.baton(&[
        "identity", "apply", "--from", "blue", "--to", "green", "--yes",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("role/nope"), "{}", text(&o.stderr));
    let unchanged: Value = sim.ec2(async |aws| {
        let r = aws
            .role_policies(&format!("arn:aws:iam::{ACCOUNT}:role/web-app"))
            .await
            .unwrap();
        serde_json::from_str(&r.trust).unwrap()
    });
    assert_eq!(unchanged, big, "a refusal changed nothing");
}

/// The default estate as the bed enforces IRSA: orders-db's and the storefront's roles
/// trust blue's OIDC provider only. The plan refuses orders-db, naming the role and
/// `identity apply`; green's storefront scaled up by hand crash-loops on STS's refusal;
/// after `identity apply` both trust policies name both providers, the storefront and
/// the moved orders-db run in green, and blue's pods are still Ready.
#[test]
fn greens_pods_get_their_role_only_after_identity_apply() {
    let sim = common::sim_up();
    sim.grant_keys();
    let o = sim.baton(&[
        "plan", "--from", "blue", "--to", "green", "-n", "orders", "-o", "json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let refused: Value = serde_json::from_slice(&o.stdout).unwrap();
    let problem = refused["apps"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "pod-role-green-untrusted")
        .unwrap_or_else(|| panic!("{refused:#}"))
        .clone();
    let detail = problem["message"].as_str().unwrap();
    assert!(detail.contains("role/orders-db-archive"), "{problem:#}");
    assert!(
        problem["fix"]
            .as_str()
            .unwrap()
            .contains("baton identity apply --from blue --to green -n orders"),
        "{problem:#}"
    );
    // What the plan prevents: a green pod whose role does not trust green.
    sim.kubectl(&[
        "--context",
        "green",
        "-n",
        "web",
        "scale",
        "deploy/web",
        "--replicas=1",
    ]);
    let refused_by_sts = || {
        let events = sim.kubectl_json("green", &["get", "events", "-n", "web"]);
        events["items"].as_array().unwrap().iter().any(|e| {
            e["reason"] == "BackOff"
                && e["message"].as_str().is_some_and(|m| {
                    m.contains("AccessDenied")
                        && m.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity")
                })
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !refused_by_sts() {
        assert!(
            std::time::Instant::now() < deadline,
            "no AccessDenied event for green's storefront"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        !ready(&sim, "green", "web"),
        "green's storefront is Ready without its role"
    );
    let (code, plan) = plan(&sim);
    assert_eq!(code, Some(0), "{plan:#}");
    let adds: Vec<_> = plan["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["role"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                r["green"].clone(),
            )
        })
        .collect();
    assert_eq!(
        adds,
        [
            ("orders-db-archive".to_string(), json!("add")),
            ("storefront".to_string(), json!("add"))
        ],
        "{plan:#}"
    );
    sim.trust_green();
    for role in ["orders-db-archive", "storefront"] {
        let trust = role_trust(&sim, role);
        let federated: Vec<&str> = trust["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["Principal"]["Federated"].as_str())
            .collect();
        assert_eq!(federated.len(), 2, "{role}: {trust:#}");
        assert_ne!(federated[0], federated[1], "{role}: {trust:#}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready(&sim, "green", "web") {
        assert!(
            std::time::Instant::now() < deadline,
            "green's storefront is not Ready after identity apply"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    sim.migrate_ok("m1", &["-n", "orders", "--wait-timeout", "60s"]);
    assert!(
        ready(&sim, "green", "orders"),
        "green's orders-db is not Ready"
    );
    assert!(
        ready(&sim, "blue", "web"),
        "blue's storefront lost its role"
    );
}

/// Whether every pod of the namespace in the context is Ready (and there is one).
fn ready(sim: &common::Sim, ctx: &str, ns: &str) -> bool {
    let pods = sim.kubectl_json(ctx, &["get", "pods", "-n", ns]);
    let items = pods["items"].as_array().unwrap();
    !items.is_empty()
        && items.iter().all(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
}

/// A role's trust policy as IAM holds it.
fn role_trust(sim: &common::Sim, role: &str) -> Value {
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/{role}");
    let read = sim.ec2(async |aws| aws.role_policies(&arn).await.unwrap());
    serde_json::from_str(&read.trust).unwrap()
}
