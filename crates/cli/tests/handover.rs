//! Issue 18: baton hands each volume's ownership tags to green. On the default estate
//! green's EBS CSI driver runs as a role under the cluster-scoped policy (attach and
//! detach only volumes whose `ebs.csi.aws.com/cluster-name` is the role's
//! `eks-cluster-name`), named by its ServiceAccount's IRSA annotation, and the bed
//! enforces it; the plan says the re-tag, the dry run prints the CreateTags it will send,
//! migrate leaves the volumes tagged for green, rollback puts blue's tags back.

mod common;

use std::collections::BTreeMap;

use common::sim_up;
use serde_json::json;

const KEY: &str = "ebs.csi.aws.com/cluster-name";

/// The ownership tags of the volumes (what the hand-over touches and keeps).
fn ownership(
    tags: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    tags.iter()
        .map(|(id, t)| {
            let kept = t
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("ebs.csi.aws.com/") || k.starts_with("kubernetes.io/cluster/")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (id.clone(), kept)
        })
        .collect()
}

#[test]
fn green_s_cluster_scoped_driver_gets_the_volumes_tagged_for_it_and_rollback_gives_them_back() {
    let sim = sim_up();
    // The plan: one re-tag for events-broker, said per volume, blue's values kept.
    let plan: serde_json::Value = serde_json::from_str(&sim.ok(&[
        "plan",
        "--from",
        "blue",
        "--to",
        "green",
        "-n",
        "streaming",
        "-o",
        "json",
    ]))
    .unwrap();
    let app = &plan["apps"][0];
    assert_eq!(app["name"], "events-broker");
    assert_eq!(app["handover"]["add"], json!({ KEY: "green" }), "{app:#}");
    let retag = app["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "retag")
        .unwrap_or_else(|| panic!("{app:#}"));
    assert!(
        retag["message"]
            .as_str()
            .unwrap()
            .contains("role/green-ebs-csi-driver"),
        "{retag}"
    );
    let ids = common::plan_volume_ids(&plan);
    assert!(!ids.is_empty());
    let before = ownership(&sim.tags(&ids));
    assert!(
        before
            .values()
            .all(|t| t["ebs.csi.aws.com/cluster"] == "true" && !t.contains_key(KEY))
    );

    // The dry run prints the CreateTags it would send, exactly.
    let dry = sim.ok(&[
        "migrate",
        "--from",
        "blue",
        "--to",
        "green",
        "-n",
        "streaming",
        "--dry-run",
    ]);
    let line = format!(
        r#"ec2    CreateTags {{"Resources":[{}],"Tags":[{{"Key":"{KEY}","Value":"green"}}]}}"#,
        ids.iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(dry.lines().any(|l| l == line), "{line}\nnot in\n{dry}");
    let scale = dry.find("events-broker/scale").unwrap();
    let tag = dry.find("CreateTags").unwrap();
    let claim = dry.find("persistentvolumeclaims").unwrap();
    assert!(
        scale < tag && tag < claim,
        "blue stops, then the tags, then green's claims: {dry}"
    );
    assert_eq!(
        ownership(&sim.tags(&ids)),
        before,
        "the dry run changed tags"
    );

    // Migrate: green's driver can use every volume; blue's other tags are kept.
    sim.migrate_ok("m1", &["-n", "streaming"]);
    let after = ownership(&sim.tags(&ids));
    for (id, t) in &after {
        assert_eq!(t.get(KEY).map(String::as_str), Some("green"), "{id}: {t:?}");
        assert_eq!(t["ebs.csi.aws.com/cluster"], "true", "{id}");
    }
    let journal = std::fs::read_to_string(sim.dir.path().join("m1/journal.jsonl")).unwrap();
    assert!(
        journal.contains(r#""action":"retag-volumes""#) && journal.contains(r#""blue":{"#),
        "the re-tag is journaled with blue's tags"
    );

    // Rollback: blue's tags back (the key blue never had is removed).
    sim.ok(&["rollback", "--state-dir", "m1", "--yes"]);
    assert_eq!(ownership(&sim.tags(&ids)), before, "blue's tags are back");
}
