//! Fences on the emulator: what could scale blue's app back up inside its window (here
//! an Argo CD Application with self-heal and a Flux Kustomization that manage orders-db)
//! is paused before blue stops, exactly restored by rollback, and kept by commit, whose
//! summary lists it. The objects are made by hand (CRDs and all), as the tools' own
//! installs make them, and the bed's controllers act on them as Argo CD and Flux would.

mod common;

use common::Sim;
use serde_json::{Value, json};

const APP: &[&str] = &["-n", "orders"];
/// `migrate --dry-run` of APP.
const DRY_RUN: &[&str] = &[
    "migrate",
    "--from",
    "blue",
    "--to",
    "green",
    "-n",
    "orders",
    "--dry-run",
];

fn crd(group: &str, version: &str, kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.{group}") },
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": { "kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                       "singular": kind.to_lowercase() },
            "versions": [{ "name": version, "served": true, "storage": true,
                           "schema": { "openAPIV3Schema": { "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": true } } }],
        },
    })
}

/// Waits until blue serves `plural` (a CRD is served once established and discovery
/// lists it).
fn served(sim: &Sim, plural: &str) {
    for _ in 0..50 {
        let o = sim.kubectl_output(&["--context", "blue", "get", plural, "-A"]);
        if o.status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("blue does not serve {plural}");
}

fn automated() -> Value {
    json!({ "prune": true, "selfHeal": true })
}

/// Argo CD's Application managing orders-db, and Flux's Kustomization whose labels
/// orders-db carries.
fn install(sim: &Sim) {
    sim.kubectl_create(
        "blue",
        &crd("argoproj.io", "v1alpha1", "Application", "applications"),
    );
    sim.kubectl_create(
        "blue",
        &crd(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
            "kustomizations",
        ),
    );
    for ns in ["argocd", "flux-system"] {
        sim.kubectl(&["--context", "blue", "create", "namespace", ns]);
    }
    served(sim, "applications");
    // Argo CD 3.x tracks what it deploys with an annotation on the object; its
    // controller (the bed's) lists what it tracks in the Application's status.resources,
    // which is where baton looks.
    sim.kubectl(&[
        "--context",
        "blue",
        "annotate",
        "statefulset",
        "-n",
        "orders",
        "orders-db",
        "argocd.argoproj.io/tracking-id=orders:apps/StatefulSet:orders/orders-db",
    ]);
    sim.kubectl_create(
        "blue",
        &json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": { "name": "orders", "namespace": "argocd" },
            "spec": {
                "project": "default",
                "source": { "repoURL": "https://git.example.com/orders.git", "path": "db" },
                "destination": { "server": "https://kubernetes.default.svc", "namespace": "orders" },
                "syncPolicy": { "automated": automated(), "syncOptions": ["ServerSideApply=true"] },
            },
        }),
    );
    for _ in 0..100 {
        let app = sim.kubectl_json("blue", &["get", "application", "-n", "argocd", "orders"]);
        if app["status"]["resources"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    sim.kubectl_create(
        "blue",
        &json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": { "name": "orders", "namespace": "flux-system" },
            "spec": { "interval": "10m", "path": "./orders", "prune": true,
                      "sourceRef": { "kind": "GitRepository", "name": "estate" } },
        }),
    );
    sim.kubectl(&[
        "--context",
        "blue",
        "label",
        "statefulset",
        "-n",
        "orders",
        "orders-db",
        "kustomize.toolkit.fluxcd.io/name=orders",
        "kustomize.toolkit.fluxcd.io/namespace=flux-system",
    ]);
}

fn application(sim: &Sim) -> Value {
    sim.kubectl_json("blue", &["get", "application", "-n", "argocd", "orders"])
}

fn kustomization(sim: &Sim) -> Value {
    sim.kubectl_json(
        "blue",
        &["get", "kustomization", "-n", "flux-system", "orders"],
    )
}

#[test]
fn gitops_is_paused_before_blue_stops_restored_by_rollback_and_kept_by_commit() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    install(&sim);

    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "orders", "-o", "json",
    ]))
    .unwrap();
    let fences: Vec<String> = plan["apps"][0]["fences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {}/{}", f["kind"], f["namespace"], f["name"]))
        .collect();
    assert_eq!(
        fences,
        [
            "\"Application\" \"argocd\"/\"orders\"",
            "\"Kustomization\" \"flux-system\"/\"orders\""
        ]
    );

    // --dry-run shows the two patches, before the scale, and sends nothing.
    let dry = sim.ok(DRY_RUN);
    let pause_app = dry
        .find("/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/orders")
        .unwrap_or_else(|| panic!("{dry}"));
    let pause_ks = dry
        .find("/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/orders")
        .unwrap_or_else(|| panic!("{dry}"));
    let scale = dry.find("statefulsets/orders-db/scale").unwrap();
    assert!(pause_app < scale && pause_ks < scale, "{dry}");
    assert_eq!(
        application(&sim)["spec"]["syncPolicy"]["automated"],
        automated()
    );

    sim.migrate_ok("m1", APP);
    let app = application(&sim);
    assert!(
        app["spec"]["syncPolicy"]["automated"].is_null(),
        "automated sync still on: {app}"
    );
    assert_eq!(
        app["spec"]["syncPolicy"]["syncOptions"],
        json!(["ServerSideApply=true"]),
        "the rest of syncPolicy is kept"
    );
    let recorded: Value = serde_json::from_str(
        app["metadata"]["annotations"]["baton.io/fence-original"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(recorded, automated());
    assert_eq!(kustomization(&sim)["spec"]["suspend"], true);
    // The journal holds each pause before and after.
    let journal = std::fs::read_to_string(sim.dir.path().join("m1/journal.jsonl")).unwrap();
    assert_eq!(
        journal.matches("\"action\":\"pause-fence\"").count(),
        4,
        "{journal}"
    );

    // Rollback: blue back, then each fence exactly as it was.
    sim.ok(&["rollback", "--state-dir", "m1", "--yes"]);
    let app = application(&sim);
    assert_eq!(app["spec"]["syncPolicy"]["automated"], automated());
    assert!(app["metadata"]["annotations"]["baton.io/fence-original"].is_null());
    let ks = kustomization(&sim);
    assert!(ks["spec"].get("suspend").is_none_or(Value::is_null), "{ks}");

    // Move again and commit: the fences stay, and commit lists them.
    sim.migrate_ok("m2", APP);
    let summary = sim.ok(&["commit", "--state-dir", "m2", "--yes"]);
    assert!(
        summary.contains("Kept paused in blue")
            && summary.contains("Application argocd/orders")
            && summary.contains("Kustomization flux-system/orders"),
        "{summary}"
    );
    assert!(application(&sim)["spec"]["syncPolicy"]["automated"].is_null());
    assert_eq!(kustomization(&sim)["spec"]["suspend"], true);
    let json = sim.ok(&["commit", "--state-dir", "m2", "--yes", "-o", "json"]);
    let outcomes: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        outcomes[0]["fences_kept"],
        json!([
            "Application argocd/orders",
            "Kustomization flux-system/orders"
        ])
    );
}

#[test]
fn an_operator_owned_statefulset_is_refused_until_allowed() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    // The operator's custom resource (a real owner: the garbage collector would take
    // a StatefulSet whose owner does not exist).
    sim.kubectl_create(
        "blue",
        &crd(
            "postgres-operator.crunchydata.com",
            "v1beta1",
            "PostgresCluster",
            "postgresclusters",
        ),
    );
    let owner = json!({ "apiVersion": "postgres-operator.crunchydata.com/v1beta1",
                        "kind": "PostgresCluster",
                        "metadata": { "name": "orders", "namespace": "orders" } });
    for _ in 0..50 {
        let o = sim.kubectl_output(&["--context", "blue", "get", "postgresclusters", "-A"]);
        if o.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    sim.kubectl_create("blue", &owner);
    let owner = sim.kubectl_json(
        "blue",
        &["get", "postgrescluster", "-n", "orders", "orders"],
    );
    let patch = json!({ "metadata": { "ownerReferences": [{
        "apiVersion": "postgres-operator.crunchydata.com/v1beta1", "kind": "PostgresCluster",
        "name": "orders", "uid": owner["metadata"]["uid"] }] } });
    sim.kubectl(&[
        "--context",
        "blue",
        "patch",
        "statefulset",
        "-n",
        "orders",
        "orders-db",
        "--type",
        "merge",
        "-p",
        &patch.to_string(),
    ]);
    let o = sim.migrate("refused", APP);
    assert_eq!(o.status.code(), Some(3), "{}", common::text(&o.stderr));
    let err = common::text(&o.stderr);
    assert!(
        err.contains("operator-owned") && err.contains("--allow-operator PostgresCluster"),
        "{err}"
    );
    let sts = sim.kubectl_json("blue", &["get", "sts", "-n", "orders", "orders-db"]);
    assert_eq!(sts["spec"]["replicas"], 1, "refused, yet blue was touched");
    sim.migrate_ok(
        "allowed",
        &["-n", "orders", "--allow-operator", "PostgresCluster"],
    );
}

/// Crash after every mutation of a fenced move, then resume or roll back: blue is never
/// seen stopped with a fence active, rollback leaves each fence as it was, and a resumed
/// move ends with them paused.
#[test]
fn a_crash_at_any_mutation_never_leaves_blue_stopped_unfenced() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    install(&sim);
    let fenced = |sim: &Sim| {
        application(sim)["spec"]["syncPolicy"]["automated"].is_null()
            && kustomization(sim)["spec"]["suspend"] == true
    };
    let stopped = |sim: &Sim| {
        sim.kubectl_json("blue", &["get", "sts", "-n", "orders", "orders-db"])["spec"]["replicas"]
            == 0
    };
    // orders-db's move: Retain, two pauses, scale blue, re-tag, snapshot, claim, PV,
    // scale green.
    for k in 1..=9 {
        let dir = format!("crash-{k}");
        sim.migrate_crashing(&dir, APP, k);
        assert!(
            !stopped(&sim) || fenced(&sim),
            "k={k}: blue stopped while a fence is active"
        );
        if k % 2 == 1 {
            sim.ok(&["migrate", "--resume", "--state-dir", &dir, "--yes"]);
            assert!(fenced(&sim), "k={k}: resumed without its fences");
        }
        sim.ok(&["rollback", "--state-dir", &dir, "--yes"]);
        let app = application(&sim);
        assert_eq!(app["spec"]["syncPolicy"]["automated"], automated(), "k={k}");
        assert!(
            app["metadata"]["annotations"]["baton.io/fence-original"].is_null(),
            "k={k}"
        );
        assert!(
            kustomization(&sim)["spec"]
                .get("suspend")
                .is_none_or(Value::is_null),
            "k={k}"
        );
        assert!(!stopped(&sim), "k={k}: blue not back");
    }
}

/// On the `shapes` estate the adversaries are live: catalog-db's Argo CD Application
/// self-heals at once, ledger-db's Flux Kustomization re-applies on its interval. With
/// their fences the two StatefulSets move, blue stays at 0 while Argo CD would have
/// healed it many times over, rollback hands Argo CD back a blue it agrees with, and a
/// commit keeps both paused.
#[test]
fn live_gitops_controllers_are_held_off_by_the_fences() {
    let sim = common::sim_up_with(&["--scenario", "default"]);
    sim.grant_keys();
    sim.trust_green();
    let apps = ["-n", "catalog", "-n", "ledger"];
    let blue_replicas = |ns: &str, name: &str| {
        sim.kubectl_json("blue", &["get", "sts", "-n", ns, name])["spec"]["replicas"].clone()
    };
    let argo =
        |sim: &Sim| sim.kubectl_json("blue", &["get", "application", "-n", "argocd", "catalog"]);
    let flux = |sim: &Sim| {
        sim.kubectl_json(
            "blue",
            &["get", "kustomization", "-n", "flux-system", "ledger"],
        )
    };
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "catalog", "-n", "ledger", "-o", "json",
    ]))
    .unwrap();
    let fenced: Vec<String> = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["fences"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            format!(
                "{}/{}",
                f["kind"].as_str().unwrap(),
                f["name"].as_str().unwrap()
            )
        })
        .collect();
    // ledger-proxy moves with ledger-db (their group), under the same Kustomization.
    assert_eq!(
        fenced,
        [
            "Application/catalog",
            "Kustomization/ledger",
            "Kustomization/ledger"
        ]
    );
    assert_eq!(
        plan["groups"][0]["members"],
        json!(["ledger/ledger-db", "ledger/ledger-proxy"])
    );

    sim.migrate_ok("m1", &apps);
    // Argo CD heals drift within a second: after five, blue must still be at 0.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(blue_replicas("catalog", "catalog-db"), 0);
    assert_eq!(blue_replicas("ledger", "ledger-db"), 0);
    assert!(argo(&sim)["spec"]["syncPolicy"]["automated"].is_null());
    assert_eq!(flux(&sim)["spec"]["suspend"], true);
    let green = sim.kubectl_json("green", &["get", "sts", "-n", "catalog", "catalog-db"]);
    assert_eq!(green["status"]["readyReplicas"], 1, "{green}");

    sim.ok(&["rollback", "--state-dir", "m1", "--yes"]);
    assert_eq!(
        argo(&sim)["spec"]["syncPolicy"]["automated"],
        json!({ "prune": true, "selfHeal": true })
    );
    assert!(flux(&sim)["spec"].get("suspend").is_none_or(Value::is_null));
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(blue_replicas("catalog", "catalog-db"), 1);
    let green = sim.kubectl_json("green", &["get", "sts", "-n", "catalog", "catalog-db"]);
    assert_eq!(green["spec"]["replicas"], 0);

    sim.migrate_ok("m2", &apps);
    let summary = sim.ok(&["commit", "--state-dir", "m2", "--yes"]);
    assert!(
        summary.contains("Application argocd/catalog")
            && summary.contains("Kustomization flux-system/ledger"),
        "{summary}"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(blue_replicas("catalog", "catalog-db"), 0, "blue came back");
}

/// The fenced move under injected faults on both clusters (500s, 409s, 429s) with the
/// adversaries live: the run completes or stops cleanly, blue is never stopped with a
/// fence active, a resume finishes it, and rollback restores the fences.
#[test]
fn fences_hold_under_faults() {
    let sim = common::sim_up_with(&[
        "--scenario",
        "default",
        "--seed",
        "7",
        "--fault",
        "blue:rate=0.05:500",
        "--fault",
        "green:rate=0.05:500",
        "--fault",
        "blue:rate=0.03:409",
        "--fault",
        "blue:rate=0.03:429=1",
    ]);
    let apps = ["-n", "catalog", "-n", "ledger", "--wait-timeout", "60"];
    let first = sim.migrate("m", &apps);
    let code = first.status.code();
    assert!(
        matches!(code, Some(0) | Some(1) | Some(3)),
        "exit {code:?}: {}",
        common::text(&first.stderr)
    );
    let clear = sim.baton(&["sim", "fault", "--state-dir", "sim", "clear"]);
    assert!(clear.status.success(), "{}", common::text(&clear.stderr));
    let argo =
        |sim: &Sim| sim.kubectl_json("blue", &["get", "application", "-n", "argocd", "catalog"]);
    let stopped = |ns: &str, name: &str| {
        sim.kubectl_json("blue", &["get", "sts", "-n", ns, name])["spec"]["replicas"] == 0
    };
    if stopped("catalog", "catalog-db") {
        assert!(
            argo(&sim)["spec"]["syncPolicy"]["automated"].is_null(),
            "catalog-db stopped with its Application self-healing"
        );
    }
    if code != Some(0) {
        if sim.dir.path().join("m/run.json").exists() {
            sim.ok(&["migrate", "--resume", "--state-dir", "m", "--yes"]);
        } else {
            sim.migrate_ok("m", &apps);
        }
    }
    assert!(stopped("catalog", "catalog-db") && stopped("ledger", "ledger-db"));
    sim.ok(&["rollback", "--state-dir", "m", "--yes"]);
    assert_eq!(
        argo(&sim)["spec"]["syncPolicy"]["automated"],
        json!({ "prune": true, "selfHeal": true })
    );
    assert!(!stopped("catalog", "catalog-db") && !stopped("ledger", "ledger-db"));
}

/// One Flux Kustomization managing two apps: rolling back one leaves it paused (it still
/// fences the other, whose blue must not come back while green holds its volumes); the
/// rollback of the other puts it back, even when that PATCH first fails.
#[test]
fn a_fence_two_apps_share_is_resumed_only_with_both() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    install(&sim);
    sim.kubectl(&[
        "--context",
        "blue",
        "label",
        "statefulset",
        "-n",
        "streaming",
        "events-broker",
        "kustomize.toolkit.fluxcd.io/name=orders",
        "kustomize.toolkit.fluxcd.io/namespace=flux-system",
    ]);
    sim.migrate_ok("m", &["-n", "orders", "-n", "streaming"]);
    assert_eq!(kustomization(&sim)["spec"]["suspend"], true);
    let o = sim.baton(&[
        "rollback",
        "--state-dir",
        "m",
        "--app",
        "orders/orders-db",
        "--yes",
    ]);
    assert!(o.status.success(), "{}", common::text(&o.stderr));
    assert!(
        common::text(&o.stderr).contains("stays paused"),
        "{}",
        common::text(&o.stderr)
    );
    assert_eq!(
        kustomization(&sim)["spec"]["suspend"],
        true,
        "resumed while events-broker is still on green"
    );
    // The Application is orders-db's alone: put back with it.
    assert_eq!(
        application(&sim)["spec"]["syncPolicy"]["automated"],
        automated()
    );
    // The dry run of the rollback of both shows the restore it will send.
    let dry = sim.ok(&["rollback", "--state-dir", "m", "--dry-run"]);
    assert!(
        dry.contains("PATCH  /apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/orders"),
        "{dry}"
    );
    // The restore's PATCH answers 500 once, after every app went back: an idempotent
    // PATCH of the recorded original, it is tried again rather than ending the rollback.
    sim.fault(&["add", "blue:method=PATCH:resource=kustomizations:nth=1:500"]);
    sim.ok(&["rollback", "--state-dir", "m", "--yes"]);
    assert!(
        kustomization(&sim)["spec"]
            .get("suspend")
            .is_none_or(Value::is_null),
        "{}",
        kustomization(&sim)
    );
}

/// An estate on an older Flux (2.0, 2.1) serves HelmRelease at `v2beta1` only: baton reads
/// it there, and pauses and restores it at the version it was read at.
#[test]
fn a_helmrelease_of_an_older_flux_is_fenced_at_the_version_it_is_served() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    let (group, version) = ("helm.toolkit.fluxcd.io", "v2beta1");
    sim.kubectl_create("blue", &crd(group, version, "HelmRelease", "helmreleases"));
    served(&sim, "helmreleases");
    // helm-controller labels what it installs with its HelmRelease's name and namespace.
    sim.kubectl(&[
        "--context",
        "blue",
        "label",
        "statefulset",
        "-n",
        "orders",
        "orders-db",
        "helm.toolkit.fluxcd.io/name=orders",
        "helm.toolkit.fluxcd.io/namespace=orders",
    ]);
    sim.kubectl_create(
        "blue",
        &json!({
            "apiVersion": format!("{group}/{version}"), "kind": "HelmRelease",
            "metadata": { "name": "orders", "namespace": "orders" },
            "spec": { "interval": "10m", "chart": { "spec": { "chart": "postgresql",
                      "sourceRef": { "kind": "HelmRepository", "name": "bitnami" } } } },
        }),
    );
    let release =
        |sim: &Sim| sim.kubectl_json("blue", &["get", "helmreleases", "-n", "orders", "orders"]);
    let plan: Value = serde_json::from_str(&sim.ok(&[
        "plan", "--from", "blue", "--to", "green", "-n", "orders", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(
        plan["apps"][0]["fences"],
        json!([{ "kind": "HelmRelease", "namespace": "orders", "name": "orders", "version": version }]),
        "{plan}"
    );
    let dry = sim.ok(DRY_RUN);
    assert!(
        dry.contains(&format!(
            "PATCH  /apis/{group}/{version}/namespaces/orders/helmreleases/orders"
        )),
        "{dry}"
    );
    sim.migrate_ok("m", APP);
    assert_eq!(release(&sim)["spec"]["suspend"], true);
    sim.ok(&["rollback", "--state-dir", "m", "--yes"]);
    assert!(
        release(&sim)["spec"]
            .get("suspend")
            .is_none_or(Value::is_null),
        "{}",
        release(&sim)
    );
}
