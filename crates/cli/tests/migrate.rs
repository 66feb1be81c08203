//! The stateful move as a user runs it, against `baton sim up`: plan, a refused bad input,
//! dry-run (changes nothing), migrate, rollback, migrate again, commit — with the data
//! fingerprints proving green continued from blue's last value and blue from green's.

mod common;

use std::path::Path;

use common::{fingerprint, sim_up};

#[test]
fn every_default_app_moves_rolls_back_and_commits_with_its_data() {
    let sim = sim_up();
    sim.grant_keys();
    sim.trust_green();

    // Bad input changes nothing.
    let o = sim.baton(&["plan", "--from", "blue", "--to", "purple"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("purple"));

    let plan: serde_json::Value = serde_json::from_str(&sim.ok(&[
        "plan",
        "--from",
        "blue",
        "--to",
        "green",
        "-o",
        "json",
        "--out",
        "plan.json",
    ]))
    .unwrap();
    let apps: Vec<&str> = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["session-cache", "orders-db", "events-broker"]);
    let ids = common::plan_volume_ids(&plan);
    assert_eq!(ids.len(), 9);

    // Dry run: every mutation printed, none made.
    let before = sim.kubectl_json("blue", &["get", "pv"]);
    let dry = sim.ok(&["migrate", "--from", "blue", "--to", "green", "--dry-run"]);
    assert!(dry.contains("PATCH  /apis/apps/v1/namespaces/orders/statefulsets/orders-db/scale"));
    assert!(dry.contains("CreateSnapshot"));
    // Creates show the whole object: green's claim with volumeName, its PV reserved by uid.
    assert!(dry.contains(r#""volumeName":"pvc-"#), "{dry}");
    assert!(
        dry.contains(r#""uid":"<uid returned by creating the claim>""#),
        "{dry}"
    );
    let after = sim.kubectl_json("blue", &["get", "pv"]);
    assert_eq!(
        before["items"], after["items"],
        "dry run changed blue's PVs"
    );
    assert!(
        !sim.dir.path().join(".baton").exists(),
        "dry run wrote state"
    );

    // An unreadable plan file is refused before anything changes.
    std::fs::write(sim.dir.path().join("bad.json"), "{ not a plan").unwrap();
    let o = sim.baton(&[
        "migrate", "--from", "blue", "--to", "green", "--plan", "bad.json", "--yes",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.json"));

    // EC2 in another region than the clusters' nodes: refused, naming the region to use.
    let wrong_region = "migrate --from blue --to green --region eu-west-1 --yes";
    let o = sim.baton(&wrong_region.split(' ').collect::<Vec<_>>());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(
        text.contains("wrong-aws-region") && text.contains("--region us-east-1"),
        "{text}"
    );
    assert_eq!(
        before["items"],
        sim.kubectl_json("blue", &["get", "pv"])["items"],
        "a refused migrate changed blue's PVs"
    );

    // A StatefulSet whose claims would be deleted on scale-down is made safe first.
    sim.kubectl(&[
        "--context", "blue", "-n", "streaming", "patch", "sts", "events-broker", "--type=merge", "-p",
        r#"{"spec":{"persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete","whenDeleted":"Delete"}}}"#,
    ]);
    let replanned: serde_json::Value = serde_json::from_str(&sim.ok(&[
        "plan",
        "--from",
        "blue",
        "--to",
        "green",
        "-o",
        "json",
        "--out",
        "plan.json",
    ]))
    .unwrap();
    assert!(
        replanned.to_string().contains("retention-delete"),
        "the plan warns about the retention policy"
    );

    // Migrate from the saved plan.
    sim.ok(&[
        "migrate",
        "--from",
        "blue",
        "--to",
        "green",
        "--plan",
        "plan.json",
        "--yes",
        "--state-dir",
        "m1",
    ]);
    let green_claims = sim.kubectl_json("green", &["get", "pvc", "-A"]);
    let green_pvs = sim.kubectl_json("green", &["get", "pv"]);
    for c in green_claims["items"].as_array().unwrap() {
        assert_eq!(c["status"]["phase"], "Bound");
        let pv = green_pvs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["metadata"]["name"] == c["spec"]["volumeName"])
            .unwrap();
        assert_eq!(
            pv["spec"]["claimRef"]["uid"], c["metadata"]["uid"],
            "claimRef.uid is green's claim"
        );
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        let handle = pv["spec"]["csi"]["volumeHandle"]
            .as_str()
            .or_else(|| pv["spec"]["awsElasticBlockStore"]["volumeID"].as_str())
            .unwrap();
        assert!(
            ids.iter().any(|id| handle.ends_with(id.as_str())),
            "green uses blue's volume {handle}"
        );
    }
    assert_eq!(green_claims["items"].as_array().unwrap().len(), 9);
    let green_sts = sim.kubectl_json("green", &["get", "sts", "-A"]);
    for s in green_sts["items"].as_array().unwrap() {
        assert_eq!(s["status"]["readyReplicas"], s["spec"]["replicas"]);
    }
    // Scaling blue down deleted none of its claims (Retain first).
    let blue_claims = sim.kubectl_json("blue", &["get", "pvc", "-n", "streaming"]);
    assert_eq!(blue_claims["items"].as_array().unwrap().len(), 6);
    // Blue flushed its last value when it stopped.
    let blue_last = sim.last_values(&ids, "blue");
    let status: serde_json::Value =
        serde_json::from_str(&sim.ok(&["status", "--state-dir", "m1", "-o", "json"])).unwrap();
    assert!(
        status["apps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["phase"] == "migrated")
    );

    // Rollback: green stops (flushing what it wrote from blue's value), blue runs again.
    sim.ok(&["rollback", "--state-dir", "m1", "--yes"]);
    for (id, t) in sim.tags(&ids) {
        let (who, from, value) = fingerprint(&t);
        assert_eq!(who, "green", "{id}");
        assert_eq!(
            from, blue_last[&id],
            "green continued from blue's last value on {id}"
        );
        assert!(value > from, "{id}");
    }
    let green_after = sim.kubectl_json("green", &["get", "pvc,pv", "-A"]);
    assert!(
        green_after["items"].as_array().unwrap().is_empty(),
        "green let go"
    );
    let blue_pvs = sim.kubectl_json("blue", &["get", "pv"]);
    for p in blue_pvs["items"].as_array().unwrap() {
        assert_eq!(
            p["spec"]["persistentVolumeReclaimPolicy"], "Delete",
            "original policy restored"
        );
    }

    let broker = sim.kubectl_json("blue", &["get", "sts", "-n", "streaming", "events-broker"]);
    assert_eq!(
        broker["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"], "Delete",
        "rollback restores the retention policy"
    );

    // Migrate again (fresh state), then commit.
    sim.migrate_ok("m2", &[]);
    let o = sim.migrate("m2", &[]);
    assert!(!o.status.success(), "a used state dir is refused");
    sim.ok(&["commit", "--state-dir", "m2", "--yes"]);
    let blue_claims = sim.kubectl_json("blue", &["get", "pvc", "-A"]);
    assert!(blue_claims["items"].as_array().unwrap().is_empty());
    // The first plan no longer matches the world: refused, nothing changed.
    let o = sim.baton(&[
        "migrate",
        "--from",
        "blue",
        "--to",
        "green",
        "--plan",
        "plan.json",
        "--yes",
        "--state-dir",
        "m3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stale"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!sim.dir.path().join("m3").exists());
    // Every volume survives, in use by green.
    let rt = sim.tags(&ids);
    assert_eq!(rt.len(), 9, "no volume was deleted");
    assert!(Path::new(&sim.dir.path().join("m2/journal.jsonl")).exists());
}
