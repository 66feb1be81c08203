//! Crash at every mutation boundary (the process aborted as by `kill -9` right after its
//! k-th mutating call), then resume or roll back: the move converges, and DESIGN.md §2's
//! invariants hold after the crash and after the recovery. Also: a claim that races for a
//! migrated volume never binds it, and a hostile claim holding the name refuses the move.

mod common;

use common::Sim;
use serde_json::{Value, json};

const APP: &[&str] = &["-n", "orders"];

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// DESIGN.md §2's invariants, as seen from outside.
fn invariants(sim: &Sim, ids: &[String], when: &str) {
    // 1: no volume of the app was deleted (the call fails for a missing id).
    let tags = sim.tags(ids);
    assert_eq!(tags.len(), ids.len(), "{when}: a volume is gone");
    // 2: every PV baton made in green is reserved for one claim uid, and Retain.
    sim.assert_green_pvs_reserved(when);
    // 4: blue's claims (never touched before commit) still hold the data's PVs.
    for c in items(&sim.kubectl_json("blue", &["get", "pvc", "-n", "orders"])) {
        assert_eq!(
            c["status"]["phase"], "Bound",
            "{when}: blue claim {}",
            c["metadata"]["name"]
        );
    }
    // Retain before any scale-down.
    let sts = sim.kubectl_json("blue", &["get", "sts", "-n", "orders", "orders-db"]);
    if sts["spec"]["replicas"] == 0 {
        for pv in items(&sim.kubectl_json("blue", &["get", "pv"])) {
            if pv["spec"]["claimRef"]["namespace"] == "orders" {
                assert_eq!(
                    pv["spec"]["persistentVolumeReclaimPolicy"], "Retain",
                    "{when}"
                );
            }
        }
    }
}

/// The ownership tag green's cluster-scoped driver policy reads.
const CLUSTER_NAME_TAG: &str = "ebs.csi.aws.com/cluster-name";

fn ready(sim: &Sim, ctx: &str) -> bool {
    let s = sim.kubectl_json(ctx, &["get", "sts", "-n", "orders", "orders-db"]);
    s["spec"]["replicas"] == 1 && s["status"]["readyReplicas"] == 1
}

#[test]
fn crash_after_every_mutation_then_resume_or_roll_back() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "orders", "-o", "json",
    ]))
    .unwrap();
    let ids = common::plan_volume_ids(&plan);
    let pv = plan["apps"][0]["volumes"][0]["pv"]
        .as_str()
        .unwrap()
        .to_string();

    // A hostile claim holding the name (and pointing at the volume) refuses the move,
    // before anything changes.
    sim.kubectl_apply("green", &json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": "data-orders-db-0", "namespace": "orders" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "100Gi" } },
                  "storageClassName": "gp3", "volumeName": pv },
    }));
    let o = sim.migrate("refused", APP);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("green-claim-taken"));
    assert!(ready(&sim, "blue"), "refused, yet blue was touched");
    sim.kubectl_delete("green", &["pvc", "-n", "orders", "data-orders-db-0"]);

    // orders-db's move makes 7 mutations: Retain, scale blue, re-tag (green's driver is
    // tag-scoped on the default estate), snapshot, claim, PV, scale green.
    for k in 1..=7 {
        let dir = format!("crash-{k}");
        sim.migrate_crashing(&dir, APP, k);
        invariants(&sim, &ids, &format!("after a crash at mutation {k}"));
        let run: Value = serde_json::from_str(
            &std::fs::read_to_string(sim.dir.path().join(&dir).join("run.json")).unwrap(),
        )
        .unwrap();
        let migration = run["migration"].as_str().unwrap();
        // The re-tag is the 3rd mutation: the volume names green from then on.
        let named_green = |sim: &Sim| {
            sim.tags(&ids)
                .values()
                .all(|t| t.get(CLUSTER_NAME_TAG).is_some_and(|v| v == "green"))
        };
        assert_eq!(named_green(&sim), k >= 3, "k={k}: {:?}", sim.tags(&ids));
        // The snapshot is the 4th: made once, and never again by a resume.
        let snapshotted = sim.snapshotted_volumes(migration);
        assert_eq!(
            snapshotted.len(),
            usize::from(k >= 4),
            "k={k}: {snapshotted:?}; the journal:\n{}",
            std::fs::read_to_string(sim.dir.path().join(&dir).join("journal.jsonl"))
                .unwrap_or_default()
        );

        // Odd k: resume to the end, then roll back. Even k: roll back from the crash.
        if k % 2 == 1 {
            sim.ok(&["migrate", "--resume", "--state-dir", &dir, "--yes"]);
            invariants(&sim, &ids, &format!("after resuming from {k}"));
            let mut want = ids.clone();
            want.sort();
            assert_eq!(
                sim.snapshotted_volumes(migration),
                want,
                "k={k}: one snapshot per volume after the resume"
            );
            assert!(ready(&sim, "green"), "k={k}: green not Ready after resume");
            let status: Value =
                serde_json::from_str(&sim.ok(&["status", "--state-dir", &dir, "-o", "json"]))
                    .unwrap();
            assert_eq!(status["apps"][0]["phase"], "migrated", "k={k}");
            assert_eq!(status["runs"], 2, "k={k}");
        }
        sim.ok(&["rollback", "--state-dir", &dir, "--yes"]);
        invariants(&sim, &ids, &format!("after rolling back from {k}"));
        // Blue's tags are back: the volume names no cluster, as blue's driver left it.
        assert!(
            sim.tags(&ids)
                .values()
                .all(|t| !t.contains_key(CLUSTER_NAME_TAG)),
            "k={k}: {:?}",
            sim.tags(&ids)
        );
        assert!(ready(&sim, "blue"), "k={k}: blue not Ready after rollback");
        let green = sim.kubectl_json("green", &["get", "pvc", "-n", "orders"]);
        assert!(items(&green).is_empty(), "k={k}: green kept a claim");
    }

    // A claim racing for a migrated volume never binds it.
    sim.migrate_ok("final", APP);
    sim.kubectl_apply("green", &json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": "thief", "namespace": "orders" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } },
                  "storageClassName": "gp3", "volumeName": pv },
    }));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let thief = sim.kubectl_json("green", &["get", "pvc", "-n", "orders", "thief"]);
    assert_eq!(thief["status"]["phase"], "Pending");
    let owner = sim.kubectl_json("green", &["get", "pvc", "-n", "orders", "data-orders-db-0"]);
    let green_pv = sim.kubectl_json("green", &["get", "pv", &pv]);
    assert_eq!(
        green_pv["spec"]["claimRef"]["uid"],
        owner["metadata"]["uid"]
    );
    invariants(&sim, &ids, "after the race");
}
