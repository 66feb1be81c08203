//! baton against the faithful bed of issue 18. On `estate-2026` green's EBS CSI driver
//! runs under AmazonEBSCSIDriverEKSClusterScopedPolicy: before baton handed the ownership
//! tags over, every green attach was refused with `UnauthorizedOperation` (this test, at
//! the commit that added the scenario, pinned that). Now baton re-tags in the window, so
//! no attach is refused for its tags; what still stops is orders-db, whose customer key
//! names blue's driver role only: its attach times out and the volume stays available
//! until a KMS grant for green's role exists (`baton volumes grant`, not built yet).

mod common;

use common::sim_up_with;

#[test]
fn on_estate_2026_tags_are_handed_over_and_only_the_key_green_cannot_use_stops() {
    let sim = sim_up_with(&["--scenario", "estate-2026"]);
    // Blue runs: its driver (classic policy) attached every volume, the encrypted
    // orders-db ones included (the key names blue's role).
    let blue_pods = sim.kubectl_json("blue", &["get", "pods", "-A"]);
    assert!(
        blue_pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"]["phase"] == "Running"),
        "{blue_pods}"
    );
    let o = sim.migrate("migration", &["--wait-timeout", "15s", "--parallel", "1"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "migrate succeeded on estate-2026:\n{stdout}\n{stderr}"
    );
    // No attach was refused for its tags: every moved volume names green.
    let vas = sim.kubectl_json("green", &["get", "volumeattachments"]);
    let errors: Vec<&str> = vas["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|va| va["status"]["attachError"]["message"].as_str())
        .collect();
    assert!(
        errors.iter().all(|m| !m.contains("UnauthorizedOperation")),
        "green's attachments: {vas}\nmigrate: {stdout}\n{stderr}"
    );
    // orders-db's attach, under a key green's role may not use, timed out.
    assert!(
        errors.iter().any(|m| m.contains("DeadlineExceeded")),
        "green's attachments: {vas}\nmigrate: {stdout}\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("orders/orders-db") && l.contains("blocked")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("cache/session-cache") && l.contains("migrated")),
        "{stdout}"
    );
    // The app is left not Ready on green.
    let sts = sim.kubectl_json("green", &["get", "statefulsets", "-A"]);
    let moved: Vec<&serde_json::Value> = sts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["spec"]["replicas"].as_i64().unwrap_or(0) > 0)
        .filter(|s| s["metadata"]["namespace"] == "orders")
        .collect();
    assert!(
        !moved.is_empty(),
        "migrate scaled nothing up on green: {stderr}"
    );
    assert!(
        moved
            .iter()
            .all(|s| s["status"]["readyReplicas"].as_i64().unwrap_or(0)
                < s["spec"]["replicas"].as_i64().unwrap()),
        "{sts}"
    );
    eprintln!("migrate's output:\n{stdout}\n{stderr}");
}
