//! The downtime window is made of round trips to the clusters, one after another, so a
//! run's waits must not pay for watches of their own: each cluster is watched once, by
//! one set of watches that every app's waits share (counted in the emulator's request
//! logs), however many apps and waits the run has.

mod common;

use serde_json::Value;

/// The cluster's request log (every request baton made to it, in order).
fn requests(sim: &common::Sim, ctx: &str) -> Value {
    serde_json::from_slice(&sim.kubectl(&["--context", ctx, "get", "--raw", "/debug/requests"]))
        .unwrap()
}

#[test]
fn a_run_watches_each_cluster_once_whatever_its_apps_and_waits() {
    let sim = common::sim_up();
    sim.migrate_ok("m", &[]);
    let status: Value =
        serde_json::from_str(&sim.ok(&["status", "--state-dir", "m", "-o", "json"])).unwrap();
    let apps = status["apps"].as_array().unwrap();
    let namespaces: std::collections::BTreeSet<&str> = apps
        .iter()
        .map(|a| a["app"].as_str().unwrap().split('/').next().unwrap())
        .collect();
    assert!(apps.len() >= 3 && namespaces.len() >= 3, "{status}");
    for a in apps {
        assert_eq!(a["phase"], "migrated", "{a}");
    }
    // Every app waited several times in each cluster (pods gone, attachments gone; bound,
    // Ready); a wait that watched for itself would open five watches each time.
    for ctx in ["blue", "green"] {
        let log = requests(&sim, ctx);
        assert_eq!(log["dropped"], 0, "{ctx}: the log lost requests");
        let watches: Vec<&str> = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["query"]
                    .as_str()
                    .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
            })
            .map(|r| r["path"].as_str().unwrap())
            .collect();
        // PVs and VolumeAttachments once; pods, claims and StatefulSets once per namespace.
        assert_eq!(
            watches.len(),
            2 + 3 * namespaces.len(),
            "{ctx}: watches opened: {watches:#?}"
        );
    }
}
