//! The app shapes beyond StatefulSets, on the `shapes` estate (its adversaries live):
//! Deployments whose pods mount claims move as apps — media/thumbnailer alone,
//! jobs/report-worker behind a KEDA ScaledObject whose trigger is active — with their data
//! continuing, back by rollback, and for good by commit with the ScaledObject kept paused.

mod common;

use common::fingerprint;
use serde_json::Value;

const APPS: &[&str] = &["-n", "media", "-n", "jobs"];

#[test]
fn deployments_with_volumes_move_roll_back_and_commit() {
    let sim = common::sim_up_with(&["--scenario", "default"]);
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "media", "-n", "jobs", "-o", "json",
    ]))
    .unwrap();
    let kinds: Vec<(&str, &str)> = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Deployment", "report-worker"),
            ("Deployment", "thumbnailer")
        ]
    );
    let ids = common::plan_volume_ids(&plan);
    let deploy = |ctx: &str, ns: &str, name: &str| {
        sim.kubectl_json(ctx, &["get", "deployment", "-n", ns, name])
    };
    let paused = |sim: &common::Sim| {
        sim.kubectl_json(
            "blue",
            &["get", "scaledobject", "-n", "jobs", "report-worker"],
        )["metadata"]["annotations"]["autoscaling.keda.sh/paused-replicas"]
            == "0"
    };

    sim.migrate_ok("m1", APPS);
    for (ns, name) in [("media", "thumbnailer"), ("jobs", "report-worker")] {
        let g = deploy("green", ns, name);
        assert_eq!(g["status"]["readyReplicas"], 1, "{ns}/{name}: {g}");
        assert_eq!(deploy("blue", ns, name)["spec"]["replicas"], 0);
    }
    assert!(paused(&sim), "the ScaledObject was not paused");
    // KEDA's trigger is active: without the pause it would scale blue up again.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        deploy("blue", "jobs", "report-worker")["spec"]["replicas"],
        0
    );
    let blue_last = sim.last_values(&ids, "blue");

    sim.ok(&["rollback", "--state-dir", "m1", "--yes"]);
    for (id, t) in sim.tags(&ids) {
        let (who, from, value) = fingerprint(&t);
        assert_eq!(who, "green", "{id}");
        assert_eq!(from, blue_last[&id], "green continued from blue on {id}");
        assert!(value > from, "{id}");
    }
    assert!(!paused(&sim), "rollback left the ScaledObject paused");
    for (ns, name) in [("media", "thumbnailer"), ("jobs", "report-worker")] {
        assert_eq!(deploy("blue", ns, name)["status"]["readyReplicas"], 1);
        assert_eq!(deploy("green", ns, name)["spec"]["replicas"], 0);
    }

    sim.migrate_ok("m2", APPS);
    let summary = sim.ok(&["commit", "--state-dir", "m2", "--yes"]);
    assert!(
        summary.contains("ScaledObject jobs/report-worker"),
        "{summary}"
    );
    assert!(paused(&sim));
    let blue_claims = sim.kubectl_json("blue", &["get", "pvc", "-n", "media"]);
    assert!(blue_claims["items"].as_array().unwrap().is_empty());
    assert_eq!(sim.tags(&ids).len(), ids.len(), "a volume is gone");
}

/// archive/archive-data is bound and nothing mounts it: it moves on its own, named by
/// --claim or found by -n, with nothing scaled; a pod that mounts it refuses the move.
#[test]
fn a_standalone_claim_moves_on_its_own_and_a_mounted_one_is_refused() {
    let sim = common::sim_up_with(&["--scenario", "default"]);
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "archive", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(plan["apps"][0]["kind"], "Claim", "{plan}");
    let ids = common::plan_volume_ids(&plan);
    // Selecting everything leaves it out, and says so.
    let all = sim.baton(&["plan", "--from", "blue", "--to", "green"]);
    let table = common::text(&all.stdout);
    assert!(
        table.contains(
            "Not selected: 1 bound EBS claim that no workload mounts (archive/archive-data)"
        ),
        "{table}"
    );

    sim.migrate_ok("m1", &["--claim", "archive/archive-data"]);
    let green = sim.kubectl_json("green", &["get", "pvc", "-n", "archive", "archive-data"]);
    assert_eq!(green["status"]["phase"], "Bound", "{green}");
    let journal = std::fs::read_to_string(sim.dir.path().join("m1/journal.jsonl")).unwrap();
    assert!(
        !journal.contains("\"action\":\"scale-"),
        "a claim scales nothing: {journal}"
    );
    sim.ok(&["rollback", "--state-dir", "m1", "--yes"]);
    let gone = sim.kubectl_json("green", &["get", "pvc", "-n", "archive"]);
    assert!(gone["items"].as_array().unwrap().is_empty(), "{gone}");

    // A pod mounting it in blue: -n no longer finds it, --claim is refused (exit 3).
    sim.kubectl_create(
        "blue",
        &serde_json::json!({ "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "reader", "namespace": "archive" },
            "spec": { "containers": [{ "name": "c", "image": "busybox" }],
                      "volumes": [{ "name": "d", "persistentVolumeClaim": { "claimName": "archive-data" } }] } }),
    );
    let o = sim.migrate("m2", &["--claim", "archive/archive-data"]);
    assert_eq!(o.status.code(), Some(3), "{}", common::text(&o.stderr));
    assert!(common::text(&o.stderr).contains("claim-in-use"));
    sim.kubectl_delete("blue", &["pod", "-n", "archive", "reader"]);

    // A CronJob whose pod template mounts it: no pod now, but its next run's would. It is
    // the CronJob's: -n finds nothing, --claim is refused naming it.
    sim.kubectl_create(
        "blue",
        &serde_json::json!({ "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": { "name": "compact", "namespace": "archive" },
            "spec": { "schedule": "0 3 * * *", "jobTemplate": { "spec": { "template": {
                "spec": { "restartPolicy": "OnFailure",
                          "containers": [{ "name": "c", "image": "busybox" }],
                          "volumes": [{ "name": "d", "persistentVolumeClaim": { "claimName": "archive-data" } }] } } } } } }),
    );
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "archive", "-o", "json",
    ]))
    .unwrap();
    assert!(plan["apps"].as_array().unwrap().is_empty(), "{plan}");
    let o = sim.migrate("m4", &["--claim", "archive/archive-data"]);
    assert_eq!(o.status.code(), Some(3), "{}", common::text(&o.stderr));
    let err = common::text(&o.stderr);
    assert!(
        err.contains("claim-of-workload") && err.contains("CronJob archive/compact"),
        "{err}"
    );
    // Suspended, it makes no pod: the claim moves on its own again.
    sim.kubectl(&[
        "--context",
        "blue",
        "patch",
        "cronjob",
        "-n",
        "archive",
        "compact",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "archive", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(plan["apps"][0]["kind"], "Claim", "{plan}");
    sim.kubectl_delete("blue", &["cronjob", "-n", "archive", "compact"]);

    sim.migrate_ok("m3", &["-n", "archive"]);
    sim.ok(&["commit", "--state-dir", "m3", "--yes"]);
    let blue = sim.kubectl_json("blue", &["get", "pvc", "-n", "archive"]);
    assert!(blue["items"].as_array().unwrap().is_empty(), "{blue}");
    assert_eq!(sim.tags(&ids).len(), 1, "the volume is gone");
}

/// A crash after every mutation of a Deployment's move (and of a claim's), then resume
/// or rollback: no volume is lost, green's PVs stay reserved, blue's claims stay Bound,
/// and the move converges either way.
#[test]
fn a_crash_at_any_mutation_of_a_deployment_or_a_claim_converges() {
    let sim = common::sim_up_with(&["--scenario", "default"]);
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "media", "-n", "archive", "-o", "json",
    ]))
    .unwrap();
    let ids = common::plan_volume_ids(&plan);
    assert_eq!(ids.len(), 2);
    let apps = ["-n", "media", "-n", "archive", "--parallel", "1"];
    // thumbnailer: Retain, scale blue, re-tag, snapshot, claim, PV, scale green;
    // archive-data: Retain, re-tag, snapshot, claim, PV.
    for k in 1..=12 {
        let dir = format!("crash-{k}");
        sim.migrate_crashing(&dir, &apps, k);
        assert_eq!(sim.tags(&ids).len(), 2, "k={k}: a volume is gone");
        sim.assert_green_pvs_reserved(&format!("k={k}"));
        for ns in ["media", "archive"] {
            let c = sim.kubectl_json("blue", &["get", "pvc", "-n", ns]);
            for claim in c["items"].as_array().unwrap() {
                assert_eq!(claim["status"]["phase"], "Bound", "k={k}: {claim}");
            }
        }
        if k % 2 == 1 {
            sim.ok(&["migrate", "--resume", "--state-dir", &dir, "--yes"]);
            let g = sim.kubectl_json(
                "green",
                &["get", "deployment", "-n", "media", "thumbnailer"],
            );
            assert_eq!(g["status"]["readyReplicas"], 1, "k={k}: {g}");
        }
        sim.ok(&["rollback", "--state-dir", &dir, "--yes"]);
        let b = sim.kubectl_json("blue", &["get", "deployment", "-n", "media", "thumbnailer"]);
        assert_eq!(b["status"]["readyReplicas"], 1, "k={k}: blue not back: {b}");
        let g = sim.kubectl_json("green", &["get", "pvc", "-A"]);
        assert!(g["items"].as_array().unwrap().is_empty(), "k={k}: {g}");
    }
}

/// The ledger group (ledger-db with a volume, ledger-proxy without; one Flux
/// Kustomization applies both) crashed after each of its mutations, then resumed or
/// rolled back: at no point does any member run in green while one runs in blue (one
/// window), blue never stops unfenced, and either way the group converges — resumed, both
/// Ready in green; rolled back, both Ready in blue with the Kustomization as it was.
#[test]
fn a_group_crashed_at_any_mutation_keeps_one_window_and_converges() {
    let sim = common::sim_up_with(&["--scenario", "default"]);
    let replicas = |ctx: &str, kind: &str, name: &str| {
        sim.kubectl_json(ctx, &["get", kind, "-n", "ledger", name])["spec"]["replicas"]
            .as_i64()
            .unwrap()
    };
    let suspended = || {
        sim.kubectl_json(
            "blue",
            &["get", "kustomization", "-n", "flux-system", "ledger"],
        )["spec"]["suspend"]
            == true
    };
    let members = [("sts", "ledger-db"), ("deploy", "ledger-proxy")];
    let apps = ["-n", "ledger", "--parallel", "1", "--max-down", "1"];
    // ledger-db: Retain, pause, scale blue, re-tag, snapshot, claim, PV, scale green;
    // ledger-proxy: scale blue, scale green (the shared Kustomization is paused once).
    for k in 1..=10 {
        let dir = format!("crash-{k}");
        sim.migrate_crashing(&dir, &apps, k);
        let green_runs = members.iter().any(|(k, n)| replicas("green", k, n) > 0);
        let blue_runs = members.iter().any(|(k, n)| replicas("blue", k, n) > 0);
        assert!(
            !(green_runs && blue_runs),
            "k={k}: the group runs on both sides"
        );
        let blue_stopped = members.iter().any(|(k, n)| replicas("blue", k, n) == 0);
        assert!(!blue_stopped || suspended(), "k={k}: blue stopped unfenced");
        sim.assert_green_pvs_reserved(&format!("k={k}"));
        if k % 2 == 1 {
            sim.ok(&["migrate", "--resume", "--state-dir", &dir, "--yes"]);
            for (kind, name) in members {
                let g = sim.kubectl_json("green", &["get", kind, "-n", "ledger", name]);
                assert_eq!(
                    g["status"]["readyReplicas"], g["spec"]["replicas"],
                    "k={k}: {g}"
                );
                assert_eq!(replicas("blue", kind, name), 0, "k={k}: {name}");
            }
        }
        sim.ok(&["rollback", "--state-dir", &dir, "--yes"]);
        for (kind, name) in members {
            let b = sim.kubectl_json("blue", &["get", kind, "-n", "ledger", name]);
            assert!(b["spec"]["replicas"].as_i64().unwrap() > 0, "k={k}: {b}");
            assert_eq!(
                b["status"]["readyReplicas"], b["spec"]["replicas"],
                "k={k}: blue's {name} not back: {b}"
            );
            assert_eq!(replicas("green", kind, name), 0, "k={k}: {name}");
        }
        assert!(!suspended(), "k={k}: the Kustomization stays suspended");
    }
}

/// `--group` may name any Deployment as a member — one without volumes and without a
/// part-of label too (a proxy in another namespace): it is planned and stops and starts
/// with the group.
#[test]
fn a_declared_group_takes_a_deployment_without_volumes_or_labels() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan",
        "--from",
        "blue",
        "--to",
        "green",
        "--group",
        "shop=orders/statefulset/orders-db,web/deployment/api",
        "--no-label-groups",
        "-o",
        "json",
    ]))
    .unwrap_or_else(|_| panic!("plan failed"));
    assert_eq!(
        plan["groups"][0]["members"],
        serde_json::json!(["orders/orders-db", "web/api"]),
        "{plan}"
    );
    let api = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "api")
        .expect("the proxy is planned");
    assert_eq!(api["kind"], "Deployment");
    assert!(api["volumes"].as_array().unwrap().is_empty());
}
