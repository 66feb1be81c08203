//! `baton backup` on the default scenario: the objects a move touches and the chosen
//! namespaces' objects, as YAML by namespace and kind with an index; Secrets only with
//! --include-secrets; an existing backup is never overwritten.

mod common;

use common::sim_up;
use serde_json::{Value, json};

fn yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn backup_writes_what_a_move_touches_and_secrets_only_when_asked() {
    let sim = sim_up();
    sim.kubectl_create(
        "blue",
        &json!({ "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "db-password", "namespace": "orders" },
        "data": { "password": "aHVudGVyMg==" } }),
    );
    sim.kubectl_create(
        "blue",
        &json!({ "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "db-config", "namespace": "orders" }, "data": { "a": "b" } }),
    );
    let out = sim.dir.path().join("b1");
    let printed = sim.ok(&[
        "backup",
        "--from",
        "blue",
        "-n",
        "orders",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(printed.contains("Secrets were not saved"), "{printed}");
    assert!(!printed.contains("hunter2") && !printed.contains("aHVudGVyMg"));

    let index = yaml(&out.join("index.yaml"));
    assert_eq!(index["context"], "blue");
    assert_eq!(index["namespaces"], json!(["orders"]));
    let objects = index["objects"].as_array().unwrap();
    let entry = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} not in the index: {index:#}"))
    };
    let sts = entry("StatefulSet", "orders-db");
    assert_eq!(sts["touched"], true);
    assert_eq!(sts["file"], "orders/statefulset.apps/orders-db.yaml");
    let claim = entry("PersistentVolumeClaim", "data-orders-db-0");
    assert_eq!(claim["touched"], true);
    let saved_claim = yaml(&out.join(claim["file"].as_str().unwrap()));
    let pv = saved_claim["spec"]["volumeName"].as_str().unwrap();
    let pv_entry = entry("PersistentVolume", pv);
    assert_eq!(pv_entry["touched"], true);
    assert!(
        pv_entry["file"]
            .as_str()
            .unwrap()
            .starts_with("_cluster/persistentvolume/")
    );
    let saved_pv = yaml(&out.join(pv_entry["file"].as_str().unwrap()));
    assert_eq!(saved_pv["metadata"]["uid"], pv_entry["uid"]);
    assert!(saved_pv["metadata"]["managedFields"].is_null());
    assert_eq!(
        entry("ConfigMap", "db-config")["touched"],
        false,
        "a namespace object"
    );
    assert!(objects.iter().all(|o| o["kind"] != "Secret"), "{index:#}");
    assert!(
        objects
            .iter()
            .all(|o| o["namespace"] == "orders" || o["namespace"] == ""),
        "only -n orders"
    );
    for o in objects {
        assert!(out.join(o["file"].as_str().unwrap()).is_file(), "{o}");
    }

    // The same directory again: refused, nothing overwritten.
    let o = sim.baton(&["backup", "--from", "blue", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a backup"));

    // With --include-secrets, and by default every namespace that has an app to move.
    let out2 = sim.dir.path().join("b2");
    sim.ok(&[
        "backup",
        "--from",
        "blue",
        "--include-secrets",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let index = yaml(&out2.join("index.yaml"));
    assert_eq!(index["namespaces"], json!(["cache", "orders", "streaming"]));
    let secret = yaml(&out2.join("orders/secret/db-password.yaml"));
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");

    // --touched-only leaves the namespaces' other objects out.
    let out3 = sim.dir.path().join("b3");
    sim.ok(&[
        "backup",
        "--from",
        "blue",
        "--touched-only",
        "--out",
        out3.to_str().unwrap(),
    ]);
    let index = yaml(&out3.join("index.yaml"));
    assert!(
        index["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["touched"] == true)
    );

    // An unknown context is refused, naming the ones there are.
    let o = sim.baton(&[
        "backup",
        "--from",
        "purple",
        "--out",
        sim.dir.path().join("b4").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"purple\"") && err.contains("blue"), "{err}");
}

/// `--velero`: a velero.io/v1 Backup of the selected namespaces, without volume
/// snapshots, followed with `--wait` to Completed (exit 0) or to PartiallyFailed/Failed
/// (exit 1, the phase and counts printed); refused (exit 3, nothing written) where
/// Velero is not installed (green has none in the default scenario).
#[test]
fn backup_velero_follows_the_backup_to_its_phase_and_refuses_without_velero() {
    let sim = sim_up();
    let out = |n: &str| sim.dir.path().join(n).to_str().unwrap().to_string();

    // The dry run prints the request that would create the Backup and changes nothing;
    // without a terminal, the real run needs --yes (asked on a terminal), nothing done.
    let o0 = out("v0");
    let dry = sim.ok(&[
        "backup",
        "--from",
        "blue",
        "-n",
        "orders",
        "--out",
        &o0,
        "--velero",
        "--dry-run",
    ]);
    assert!(dry.contains("would save"), "{dry}");
    assert!(
        dry.contains("POST   /apis/velero.io/v1/namespaces/velero/backups {")
            && dry.contains("\"includedNamespaces\":[\"orders\"]")
            && dry.contains("\"snapshotVolumes\":false"),
        "{dry}"
    );
    let unasked = sim.baton(&[
        "backup", "--from", "blue", "-n", "orders", "--out", &o0, "--velero",
    ]);
    assert_eq!(
        unasked.status.code(),
        Some(2),
        "{}",
        common::text(&unasked.stderr)
    );
    assert!(common::text(&unasked.stderr).contains("--yes"));
    assert!(!std::path::Path::new(&o0).exists(), "nothing written");
    let none = sim.kubectl_json("blue", &["-n", "velero", "get", "backups.velero.io"]);
    assert_eq!(
        none["items"].as_array().unwrap().len(),
        0,
        "nothing created: {none:#}"
    );

    let o1 = out("v1");
    let printed = sim.ok(&[
        "backup", "--from", "blue", "-n", "orders", "--out", &o1, "--velero", "--yes", "--wait",
    ]);
    assert!(printed.contains("InProgress"), "progress shown: {printed}");
    assert!(printed.contains("Completed"), "{printed}");
    assert!(std::path::Path::new(&o1).join("index.yaml").is_file());
    let list = sim.kubectl_json("blue", &["-n", "velero", "get", "backups.velero.io"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list:#}");
    let b = &items[0];
    let name = b["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("baton-blue-"), "{name}");
    assert!(printed.contains(name), "the name is printed: {printed}");
    assert_eq!(b["spec"]["includedNamespaces"], json!(["orders"]));
    assert_eq!(b["spec"]["snapshotVolumes"], false);
    assert_eq!(b["status"]["phase"], "Completed");
    let total = b["status"]["progress"]["totalItems"].as_u64().unwrap();
    assert!(total >= 3, "the orders namespace's objects: {b:#}");
    assert_eq!(b["status"]["progress"]["itemsBackedUp"], total);

    // Velero fails the backup: exit 1 with the phase, the counts and the reason.
    sim.kubectl(&[
        "--context",
        "blue",
        "annotate",
        "namespace",
        "velero",
        "baton.sim/velero-outcome=Failed",
    ]);
    let o = sim.baton(&[
        "backup",
        "--from",
        "blue",
        "--out",
        &out("v2"),
        "--velero",
        "--yes",
        "--wait",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ended Failed") && err.contains("1 errors"),
        "{err}"
    );
    assert!(err.contains("velero backup logs"), "{err}");

    sim.kubectl(&[
        "--context",
        "blue",
        "annotate",
        "--overwrite",
        "namespace",
        "velero",
        "baton.sim/velero-outcome=PartiallyFailed",
    ]);
    let o = sim.baton(&[
        "backup",
        "--from",
        "blue",
        "--out",
        &out("v3"),
        "--velero",
        "--yes",
        "--wait",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ended PartiallyFailed") && err.contains("2 errors, 1 warnings"),
        "{err}"
    );
    let list = sim.kubectl_json("blue", &["-n", "velero", "get", "backups.velero.io"]);
    let b3 = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["status"]["phase"] == "PartiallyFailed")
        .unwrap();
    assert_eq!(
        b3["spec"]["includedNamespaces"],
        json!(["cache", "orders", "streaming"]),
        "by default the namespaces of the apps that move"
    );

    // Without --wait: created, named, exit 0.
    let printed = sim.ok(&[
        "backup",
        "--from",
        "blue",
        "-n",
        "web",
        "--out",
        &out("v4"),
        "--velero",
        "--yes",
    ]);
    assert!(
        printed.contains("Velero Backup velero/baton-blue-"),
        "{printed}"
    );

    // Not installed: refused before anything is written.
    let o5 = out("v5");
    let o = sim.baton(&[
        "backup", "--from", "green", "--out", &o5, "--velero", "--yes", "--wait",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("Velero is not installed in green"), "{err}");
    assert!(!std::path::Path::new(&o5).exists(), "nothing written");
    let o = sim.baton(&[
        "backup",
        "--from",
        "blue",
        "--out",
        &o5,
        "--velero",
        "--yes",
        "--velero-namespace",
        "backups",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("no namespace \"backups\""), "{err}");
}
