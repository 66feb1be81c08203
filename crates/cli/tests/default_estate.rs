//! baton against the default scenario, the 2026 estate the bed enforces AWS's
//! authorization on (issue 18): green's EBS CSI driver runs under
//! AmazonEBSCSIDriverEKSClusterScopedPolicy, and orders-db's volume is encrypted with a
//! customer-managed key whose policy names blue's driver role only.
//!
//! The first test runs the hand-by-hand runbook's order (blue let go, green's PV and claim
//! made on the same volume, green scaled up) and sees green's attach refused — the
//! failure baton exists to prevent. The second runs baton: the plan refuses the key
//! green cannot use, naming the fix; `baton volumes grant` gives it; every app moves,
//! each volume tagged for green; rollback puts blue's tags back; the grant is revoked
//! only once green no longer needs it.

mod common;

use std::time::{Duration, Instant};

use common::{plan_volume_ids, sim_up, text};
use serde_json::{Value, json};

const CLUSTER_NAME_TAG: &str = "ebs.csi.aws.com/cluster-name";

/// Waits until `f` holds, or fails with what was last seen.
fn wait_for(what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(seen) if start.elapsed() > Duration::from_secs(30) => {
                panic!("timed out waiting for {what}: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn the_runbooks_order_is_refused_by_greens_driver() {
    let sim = sim_up();
    // Blue lets go of session-cache-0's volume, as the runbook does.
    let blue_pv: Value = {
        let pvs = sim.kubectl_json("blue", &["get", "pv"]);
        pvs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pv| pv["spec"]["claimRef"]["name"] == "data-session-cache-0")
            .cloned()
            .expect("blue's PV of data-session-cache-0")
    };
    let volume = blue_pv["spec"]["awsElasticBlockStore"]["volumeID"]
        .as_str()
        .or(blue_pv["spec"]["csi"]["volumeHandle"].as_str())
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    sim.kubectl(&[
        "--context",
        "blue",
        "-n",
        "cache",
        "scale",
        "statefulset",
        "session-cache",
        "--replicas",
        "0",
    ]);
    wait_for("blue to detach the volume", || {
        let vas = sim.kubectl_json("blue", &["get", "volumeattachments"]);
        let held =
            vas["items"].as_array().unwrap().iter().any(|va| {
                va["spec"]["source"]["persistentVolumeName"] == blue_pv["metadata"]["name"]
            });
        let state = sim.ec2(async |aws| {
            aws.describe_volumes_by_id(std::slice::from_ref(&volume))
                .await
                .unwrap()[0]
                .state
                .clone()
        });
        if !held && state == baton_aws::VolumeState::Available {
            Ok(())
        } else {
            Err(format!("attachment held: {held}, EC2 state {state:?}"))
        }
    });
    // Green gets a PV on the same volume, reserved for the claim, and the claim.
    sim.kubectl_create(
        "green",
        &json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": { "name": "runbook-session-cache-0" },
            "spec": {
                "capacity": blue_pv["spec"]["capacity"],
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "gp2",
                "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": volume, "fsType": "ext4" },
                "nodeAffinity": blue_pv["spec"]["nodeAffinity"],
                "claimRef": { "namespace": "cache", "name": "data-session-cache-0" },
            }
        }),
    );
    sim.kubectl_create(
        "green",
        &json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": { "name": "data-session-cache-0", "namespace": "cache" },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "gp2",
                "volumeName": "runbook-session-cache-0",
                "resources": { "requests": { "storage": blue_pv["spec"]["capacity"]["storage"] } },
            }
        }),
    );
    sim.kubectl(&[
        "--context",
        "green",
        "-n",
        "cache",
        "scale",
        "statefulset",
        "session-cache",
        "--replicas",
        "1",
    ]);
    // Green's driver may attach only volumes tagged for green: EC2 refuses it.
    wait_for("green's attach to be refused", || {
        let vas = sim.kubectl_json("green", &["get", "volumeattachments"]);
        let errors: Vec<String> = vas["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|va| va["spec"]["source"]["persistentVolumeName"] == "runbook-session-cache-0")
            .filter_map(|va| {
                va["status"]["attachError"]["message"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        if errors
            .iter()
            .any(|m| m.contains("UnauthorizedOperation") && m.contains("ec2:AttachVolume"))
        {
            Ok(())
        } else {
            Err(format!("{vas}"))
        }
    });
    let events = sim.kubectl_json("green", &["get", "events", "-n", "cache"]);
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "FailedAttachVolume"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("UnauthorizedOperation"))),
        "{events}"
    );
    // And the volume is left available, the app down on both sides.
    let tags = sim.tags(std::slice::from_ref(&volume));
    assert!(!tags[&volume].contains_key(CLUSTER_NAME_TAG), "{tags:?}");
}

#[test]
fn baton_grants_the_key_then_hands_every_default_app_over_and_back() {
    let sim = sim_up();
    // The plan refuses orders-db: green's driver role may not use its key.
    let o = sim.baton(&["plan", "--from", "blue", "--to", "green", "-o", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids = plan_volume_ids(&plan);
    let orders = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "orders-db")
        .unwrap();
    let key = orders["volumes"][0]["kms_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let refusal = orders["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "volume-key-green-cannot-use")
        .unwrap_or_else(|| panic!("{orders:#}"));
    assert_eq!(refusal["severity"], "Blocking");
    assert!(
        refusal["object"].as_str().unwrap().contains(&key),
        "{refusal}"
    );
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("role/green-ebs-csi-driver"),
        "{refusal}"
    );
    assert!(
        refusal["fix"]
            .as_str()
            .unwrap()
            .contains("baton volumes grant --from blue --to green"),
        "{refusal}"
    );
    // Only that, and orders-db's IAM role (trusting blue only, handed over by `identity
    // apply`): the other apps' volumes are re-tagged in the window, not refused.
    let blocking: Vec<(&str, &str)> = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            a["problems"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["severity"] == "Blocking")
                .map(|p| (a["name"].as_str().unwrap(), p["code"].as_str().unwrap()))
        })
        .collect();
    assert_eq!(
        blocking,
        [
            ("orders-db", "volume-key-green-cannot-use"),
            ("orders-db", "pod-role-green-untrusted")
        ],
        "{plan:#}"
    );
    let grants = |sim: &common::Sim| sim.ec2(async |aws| aws.kms_key(&key).await.unwrap().grants);

    // --dry-run prints the request and sends nothing.
    let dry = sim.ok(&[
        "volumes",
        "grant",
        "--from",
        "blue",
        "--to",
        "green",
        "--dry-run",
    ]);
    let line = dry.lines().next().unwrap();
    assert!(line.starts_with("kms    CreateGrant {"), "{dry}");
    let req: Value = serde_json::from_str(&line[line.find('{').unwrap()..]).unwrap();
    assert_eq!(req["KeyId"], key.as_str());
    assert!(
        req["GranteePrincipal"]
            .as_str()
            .unwrap()
            .ends_with(":role/green-ebs-csi-driver")
    );
    assert!(grants(&sim).is_empty());
    // Without a terminal it wants --yes.
    let o = sim.baton(&["volumes", "grant", "--from", "blue", "--to", "green"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(grants(&sim).is_empty());

    let given: Value = serde_json::from_str(&sim.ok(&[
        "volumes", "grant", "--from", "blue", "--to", "green", "--yes", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(given["keys"][0]["action"], "granted", "{given:#}");
    let made = grants(&sim);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].name, "baton-green");
    assert_eq!(made[0].grantee, req["GranteePrincipal"].as_str().unwrap());
    // Run again, it changes nothing.
    let again: Value = serde_json::from_str(&sim.ok(&[
        "volumes", "grant", "--from", "blue", "--to", "green", "--yes", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(again["keys"][0]["action"], "none", "{again:#}");
    assert_eq!(grants(&sim), made);

    sim.trust_green();
    sim.ok(&["plan", "--from", "blue", "--to", "green"]);
    sim.migrate_ok("m1", &[]);
    let tags = sim.tags(&ids);
    for id in &ids {
        assert_eq!(
            tags[id].get(CLUSTER_NAME_TAG).map(String::as_str),
            Some("green"),
            "{id}: {:?}",
            tags[id]
        );
    }
    // Green holds orders-db's volume: the grant it needs is not revoked.
    let o = sim.baton(&[
        "volumes", "grant", "--from", "blue", "--to", "green", "--revoke", "--yes",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("green still needs the grant"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(grants(&sim), made);

    // Rollback puts blue's tags back.
    sim.ok(&[
        "rollback",
        "--state-dir",
        "m1",
        "--app",
        "orders/orders-db",
        "--yes",
    ]);
    let volume = orders["volumes"][0]["volume_id"]
        .as_str()
        .unwrap()
        .to_string();
    let tags = sim.tags(std::slice::from_ref(&volume));
    assert!(!tags[&volume].contains_key(CLUSTER_NAME_TAG), "{tags:?}");
    assert_eq!(tags[&volume]["ebs.csi.aws.com/cluster"], "true");
    // Once green lets go, the grant baton made can go.
    sim.ok(&[
        "volumes", "grant", "--from", "blue", "--to", "green", "--revoke", "--yes",
    ]);
    assert!(grants(&sim).is_empty());
    let journal =
        std::fs::read_to_string(sim.dir.path().join(".baton/grants/grants.jsonl")).unwrap();
    let events: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        events,
        ["granting", "granted", "revoking", "revoked"],
        "{journal}"
    );
}
