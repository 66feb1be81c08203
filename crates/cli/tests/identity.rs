//! `baton identity plan|apply` on the emulator and moto (issue 19): a role blue's
//! ServiceAccount assumes, trusted by blue's OIDC provider only, is given green's
//! statement (blue's kept) and green's provider is created; a second run changes
//! nothing; preflight fails before and passes after; a role that is missing, or whose
//! trust policy would grow past IAM's 2,048 characters, is refused naming it.

mod common;

use common::{sim_up, text};
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
    let sim = sim_up();
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

    // The dry run: the provider, then the role's whole new trust; nothing sent.
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
    assert_eq!(lines.len(), 2, "{dry}");
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
        4,
        "sending and sent, twice: {journal}"
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

/// The default estate with blue's IAM OIDC provider and orders' default ServiceAccount
/// assuming a role that trusts blue only, as the bed enforces it: moved without the
/// hand-over, green's pod crash-loops on STS's refusal; after `identity apply` it runs.
#[test]
fn greens_pods_get_their_role_only_after_identity_apply() {
    let scenario = tempfile::NamedTempFile::new().unwrap();
    let yaml = baton_sim::scenario::DEFAULT_YAML
        .replacen("name: default\n", "name: irsa\n", 1)
        .replacen(
            "  - name: blue\n    version: v1.27.16-eks-2f008fe\n",
            "  - name: blue\n    version: v1.27.16-eks-2f008fe\n    oidc_provider: true\n",
            1,
        )
        + "\nirsa_roles:\n  - { name: orders-app, trusts: [blue], service_accounts: [orders/default] }\n";
    assert!(
        yaml.contains("oidc_provider: true"),
        "the default's blue moved"
    );
    std::fs::write(scenario.path(), yaml).unwrap();
    let sim = common::sim_up_with(&["--scenario", scenario.path().to_str().unwrap()]);
    sim.grant_keys();
    let o = sim.migrate(
        "m1",
        &["-n", "orders", "--wait-timeout", "8s", "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let events = sim.kubectl_json("green", &["get", "events", "-n", "orders"]);
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "BackOff"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("AssumeRoleWithWebIdentity"))),
        "{events:#}"
    );
    sim.ok(&["rollback", "--state-dir", "m1", "--yes"]);
    let (code, plan) = plan(&sim);
    assert_eq!(code, Some(0), "{plan:#}");
    assert_eq!(plan["roles"][0]["green"], "add", "{plan:#}");
    sim.ok(&[
        "identity", "apply", "--from", "blue", "--to", "green", "--yes",
    ]);
    sim.migrate_ok("m2", &["-n", "orders", "--wait-timeout", "60s"]);
    let pods = sim.kubectl_json("green", &["get", "pods", "-n", "orders"]);
    assert!(
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"]["conditions"].as_array().is_some_and(|c| c
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"))),
        "{pods:#}"
    );
}
