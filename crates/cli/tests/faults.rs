//! Migrate under injected faults on both APIs (500s, 409s, 429s, timeouts on the clusters;
//! 500s and throttling on baton's EC2 calls), over several seeds, on the whole default
//! estate — StatefulSets, Deployments with volumes, a standalone claim, a group, apps
//! under Argo CD, Flux and KEDA, their fences: every run completes or stops cleanly,
//! DESIGN.md's invariants hold, and a resume after the faults are cleared finishes the
//! move.

mod common;

use serde_json::Value;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn migrate_under_faults_completes_or_stops_cleanly_and_resumes() {
    for seed in ["1", "2", "3"] {
        let sim = common::sim_up_with(&[
            "--scenario",
            "default",
            "--seed",
            seed,
            "--fault",
            "blue:rate=0.05:500",
            "--fault",
            "green:rate=0.05:500",
            "--fault",
            "blue:rate=0.03:409",
            "--fault",
            "green:rate=0.03:429=1",
            "--fault",
            "green:rate=0.02:timeout=1s",
            "--fault",
            "aws:action=CreateSnapshot:rate=0.2:500",
            "--fault",
            "aws:action=DescribeSnapshots:rate=0.1:throttle",
        ]);
        // Every request is tried again on a transient failure (baton_kube::retry, the
        // SDK's retry): under 5 % faults each command succeeds the first time.
        for args in [
            [
                "volumes", "grant", "--from", "blue", "--to", "green", "--yes",
            ],
            [
                "identity", "apply", "--from", "blue", "--to", "green", "--yes",
            ],
        ] {
            let o = sim.baton(&args);
            assert!(
                o.status.success(),
                "seed {seed}: {args:?} ended under transient faults: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let o = sim.baton(&[
            "plan",
            "--from",
            "blue",
            "--to",
            "green",
            "--standalone-claims",
            "-o",
            "json",
        ]);
        assert!(
            o.status.success(),
            "seed {seed}: plan ended under transient faults: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
        let ids = common::plan_volume_ids(&plan);
        let first = sim.migrate(
            "m",
            &["--standalone-claims", "--wait-timeout", "60", "-o", "json"],
        );
        let code = first.status.code();
        assert!(
            // 3: every app stopped before its first change.
            matches!(code, Some(0) | Some(1) | Some(3)),
            "seed {seed}: exit {code:?}: {}",
            String::from_utf8_lossy(&first.stderr)
        );
        let clear = sim.baton(&["sim", "fault", "--state-dir", "sim", "clear"]);
        assert!(
            clear.status.success(),
            "{}",
            String::from_utf8_lossy(&clear.stderr)
        );

        // Invariants after the faulty run.
        assert_eq!(
            sim.tags(&ids).len(),
            ids.len(),
            "seed {seed}: a volume is gone"
        );
        sim.assert_green_pvs_reserved(&format!("seed {seed}"));
        for c in items(&sim.kubectl_json("blue", &["get", "pvc", "-A"])) {
            assert_eq!(
                c["status"]["phase"], "Bound",
                "seed {seed}: blue claim lost"
            );
        }

        if code == Some(1) {
            if sim.dir.path().join("m/run.json").exists() {
                sim.ok(&["migrate", "--resume", "--state-dir", "m", "--yes"]);
            } else {
                // Stopped before its first mutation (while planning): nothing to resume.
                sim.migrate_ok("m", &["--standalone-claims"]);
            }
        }
        let status: Value =
            serde_json::from_str(&sim.ok(&["status", "--state-dir", "m", "-o", "json"])).unwrap();
        for a in status["apps"].as_array().unwrap() {
            assert_eq!(a["phase"], "migrated", "seed {seed}: {a}");
        }
        for s in items(&sim.kubectl_json("green", &["get", "sts", "-A"])) {
            assert_eq!(
                s["status"]["readyReplicas"], s["spec"]["replicas"],
                "seed {seed}"
            );
        }
        for d in items(&sim.kubectl_json("green", &["get", "deploy", "-A"])) {
            if d["spec"]["replicas"].as_i64().unwrap_or(0) > 0 {
                assert_eq!(
                    d["status"]["readyReplicas"], d["spec"]["replicas"],
                    "seed {seed}: {}",
                    d["metadata"]["name"]
                );
            }
        }
        // Blue stays stopped behind its fences (Argo CD, Flux, KEDA are live there).
        for kind in ["sts", "deploy"] {
            for w in items(&sim.kubectl_json("blue", &["get", kind, "-A"])) {
                let moved = status["apps"].as_array().unwrap().iter().any(|a| {
                    a["app"].as_str()
                        == Some(&format!(
                            "{}/{}",
                            w["metadata"]["namespace"].as_str().unwrap(),
                            w["metadata"]["name"].as_str().unwrap()
                        ))
                });
                if moved {
                    assert_eq!(
                        w["spec"]["replicas"], 0,
                        "seed {seed}: blue's {}",
                        w["metadata"]["name"]
                    );
                }
            }
        }
        eprintln!("seed {seed}: first run exit {code:?}");
    }
}

/// A transient failure of a read never ends a command: the plan's first read of
/// HorizontalPodAutoscalers answered 500 (which once ended `migrate` before it started),
/// three of green's reads in a row answered 500, a read was reset, and EC2 answered
/// DescribeVolumes with a 500 — `plan` still plans, and says once per API that it retried.
#[test]
fn a_transient_error_on_a_read_is_tried_again_and_said_once() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    for rule in [
        "blue:resource=horizontalpodautoscalers:nth=1:500",
        "green:method=GET:burst=2+3:500",
        "blue:method=GET:nth=4:reset",
        "aws:action=DescribeVolumes:nth=1:500",
    ] {
        sim.fault(&["add", rule]);
    }
    let o = sim.baton(&["plan", "--from", "blue", "--to", "green", "-o", "json"]);
    let err = common::text(&o.stderr);
    assert!(
        o.status.success(),
        "plan failed: {err}\n{}",
        common::text(&o.stdout)
    );
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["apps"].as_array().map(Vec::len), Some(3), "{plan}");
    assert_eq!(
        err.matches("baton tries such requests again").count(),
        1,
        "the clusters' retries are said once: {err}"
    );
    assert_eq!(
        err.matches("baton tries such calls again").count(),
        1,
        "AWS's retries are said once: {err}"
    );
}
