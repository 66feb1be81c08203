//! Today's baton against the faithful bed of issue 18: on `estate-2026` green's EBS CSI
//! driver runs under AmazonEBSCSIDriverEKSClusterScopedPolicy, so blue's volumes, handed
//! over as they are (no `ebs.csi.aws.com/cluster-name=green`), cannot attach in green.
//! This pins how the current migration fails there; it changes when baton learns to
//! hand volumes over (issue 18, the handover).

mod common;

use common::sim_up_with;

#[test]
fn todays_migrate_stops_on_estate_2026_with_greens_attach_denied() {
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
    // Green's attach was refused by AWS, and that is visible on green.
    let vas = sim.kubectl_json("green", &["get", "volumeattachments"]);
    let errors: Vec<&str> = vas["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|va| va["status"]["attachError"]["message"].as_str())
        .collect();
    assert!(
        errors.iter().any(|m| m.contains(
            "api error UnauthorizedOperation: You are not authorized to perform this operation."
        ) && m.contains(":assumed-role/green-ebs-csi-driver/")),
        "green's attachments: {vas}\nmigrate: {stdout}\n{stderr}"
    );
    assert!(
        vas["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|va| va["status"]["attached"] != true),
        "{vas}"
    );
    let events = sim.kubectl_json(
        "green",
        &[
            "get",
            "events",
            "-A",
            "--field-selector",
            "reason=FailedAttachVolume",
        ],
    );
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("UnauthorizedOperation")),
        "{events}"
    );
    // The app is left not Ready on green.
    let sts = sim.kubectl_json("green", &["get", "statefulsets", "-A"]);
    let moved: Vec<&serde_json::Value> = sts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["spec"]["replicas"].as_i64().unwrap_or(0) > 0)
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
