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
    sim.grant_keys();
    sim.trust_green();
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

/// The most apps the journal shows in their window (blue stopped, green not yet Ready)
/// at once, and how many windows it shows.
fn windows_at_once(journal: &str) -> (usize, usize) {
    let (mut down, mut most, mut windows) = (std::collections::BTreeSet::new(), 0, 0);
    for line in journal.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        if r["event"] != "phase" {
            continue;
        }
        let app = r["app"].as_str().unwrap().to_string();
        let in_window = matches!(
            r["phase"].as_str().unwrap(),
            "draining" | "handing-over" | "binding" | "starting"
        );
        if in_window && down.insert(app.clone()) {
            windows += 1;
        } else if !in_window {
            down.remove(&app);
        }
        most = most.max(down.len());
    }
    (most, windows)
}

#[test]
fn max_down_bounds_the_apps_in_their_window_at_once() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    sim.migrate_ok("m", &["--parallel", "3", "--max-down", "1"]);
    let journal = std::fs::read_to_string(sim.dir.path().join("m/journal.jsonl")).unwrap();
    let (most, windows) = windows_at_once(&journal);
    assert!(windows >= 3, "every app had its window: {windows}");
    assert_eq!(most, 1, "one app down at a time");
    // Without the bound, three apps at once stop blue together.
    sim.ok(&["rollback", "--state-dir", "m", "--yes"]);
    sim.migrate_ok("m2", &["--parallel", "3"]);
    let journal = std::fs::read_to_string(sim.dir.path().join("m2/journal.jsonl")).unwrap();
    assert!(windows_at_once(&journal).0 > 1, "the check sees overlap");
}

#[test]
fn an_app_stopped_inside_its_window_keeps_its_slot_and_the_rest_stay_up() {
    // Every PV create in green fails: the first app to stop blue fails inside its window.
    let sim = common::sim_up_with(&[
        "--fault",
        "green:method=POST:resource=persistentvolumes:rate=1:500",
    ]);
    sim.grant_keys();
    sim.trust_green();
    let o = sim.migrate("m", &["--parallel", "3", "--max-down", "1", "-o", "json"]);
    assert!(!o.status.success(), "the run must report its stopped apps");
    let status: Value =
        serde_json::from_str(&sim.ok(&["status", "--state-dir", "m", "-o", "json"])).unwrap();
    let apps = status["apps"].as_array().unwrap();
    let waited: Vec<&Value> = apps
        .iter()
        .filter(|a| {
            a["problem"]
                .as_str()
                .is_some_and(|p| p.contains("blue was not stopped"))
        })
        .collect();
    assert_eq!(
        waited.len(),
        apps.len() - 1,
        "one app is down; the others never stopped blue: {status:#}"
    );
    // Their StatefulSets still run in blue; the one that failed is at 0.
    let mut stopped = 0;
    for a in apps {
        let (ns, name) = a["app"].as_str().unwrap().split_once('/').unwrap();
        let set = sim.kubectl_json("blue", &["get", "statefulset", name, "-n", ns]);
        if set["spec"]["replicas"] == 0 {
            stopped += 1;
        } else {
            assert!(waited.contains(&a), "{a:#}");
        }
    }
    assert_eq!(stopped, 1);

    // Once green takes PVs again, a resumed run moves them all.
    sim.ok(&["sim", "fault", "--state-dir", "sim", "clear"]);
    sim.ok(&[
        "migrate",
        "--resume",
        "--state-dir",
        "m",
        "--yes",
        "--max-down",
        "1",
    ]);
    let status: Value =
        serde_json::from_str(&sim.ok(&["status", "--state-dir", "m", "-o", "json"])).unwrap();
    for a in status["apps"].as_array().unwrap() {
        assert_eq!(a["phase"], "migrated", "{a:#}");
    }
}
