//! Fault injection from the command line, as an SRE uses it: `baton sim up --fault …`
//! and `--api-latency-ms …`, proven with kubectl and EC2 from another "shell"; rules
//! changed on the running estate with `baton sim fault`; bad specs refused with a usage
//! error that names the bad part.

mod common;

use common::{baton, sim_up_with, text};
use serde_json::Value;

/// kubectl's stdout, failing the test when kubectl fails.
fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "kubectl: {}", text(&out.stderr));
    text(&out.stdout)
}

/// kubectl's stderr, failing the test when kubectl succeeds.
fn err(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "kubectl succeeded: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[test]
fn fault_flags_fail_the_chosen_requests_and_sim_fault_changes_them_at_runtime() {
    let sim = sim_up_with(&[
        "--bare",
        "--fault",
        "blue:method=GET:resource=configmaps:nth=1:500",
        "--api-latency-ms",
        "green=150",
    ]);
    let get_cm =
        |cluster| sim.kubectl_output(&["--context", cluster, "get", "configmaps", "-n", "default"]);

    // Only the 1st GET of configmaps in blue fails; discovery before it does not count.
    let e = err(get_cm("blue"));
    assert!(
        e.contains("InternalError") && e.contains("injected by baton-sim"),
        "{e}"
    );
    ok(get_cm("blue"));
    ok(get_cm("green"));

    // green's latency: every request in its log took at least 150 ms, blue's did not.
    let log = |cluster| -> Vec<Value> {
        let doc =
            ok(sim.kubectl_output(&["--context", cluster, "get", "--raw", "/debug/requests"]));
        serde_json::from_str::<Value>(&doc).unwrap()["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let micros = |r: &Value| r["latencyMicros"].as_u64().unwrap();
    let green = log("green");
    assert!(
        !green.is_empty() && green.iter().all(|r| micros(r) >= 150_000),
        "{green:?}"
    );
    assert!(log("blue").iter().any(|r| micros(r) < 150_000));

    // At runtime: every configmaps request in green gets a 409 until cleared.
    sim.fault(&["add", "green:resource=configmaps:rate=1:409"]);
    let listed = text(&sim.fault(&["list"]).stdout);
    assert_eq!(
        listed,
        "blue:method=GET:resource=configmaps:nth=1:500\ngreen:resource=configmaps:rate=1:409\n"
    );
    assert!(err(get_cm("green")).contains("Conflict"));
    assert!(err(get_cm("green")).contains("Conflict"));
    ok(get_cm("blue"));

    sim.fault(&["clear", "green"]);
    ok(get_cm("green"));
    assert_eq!(
        text(&sim.fault(&["list"]).stdout),
        "blue:method=GET:resource=configmaps:nth=1:500\n"
    );
    // A rule added at runtime counts from then: its nth=1 is the next matching request.
    sim.fault(&["add", "blue:method=GET:resource=configmaps:nth=1:409"]);
    assert!(err(get_cm("blue")).contains("Conflict"));
    ok(get_cm("blue"));
    sim.fault(&["clear"]);
    assert_eq!(text(&sim.fault(&["list"]).stdout), "");
}

#[test]
fn bad_fault_specs_are_usage_errors_naming_the_bad_part() {
    for (args, names) in [
        (&["--fault", "blue:nth=1:418"][..], "\"418\""),
        (&["--fault", "blue:rate=1.5:500"], "\"rate=1.5\""),
        (&["--fault", "nth=1:500"], "\"nth=1\" is not a target"),
        (&["--fault", "blue:nth=1"], "no fault in \"nth=1\""),
        (&["--api-latency-ms", "blue=soon"], "\"blue=soon\""),
        (
            &["--bare", "--fault", "red:nth=1:500"],
            "no cluster \"red\"",
        ),
        (
            &["--bare", "--fault", "aws:nth=1:throttle"],
            "no AWS with --bare",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = baton(
            &[
                &["sim", "up", "--state-dir", dir.path().to_str().unwrap()],
                args,
            ]
            .concat(),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?} names {names}: {stderr}");
        assert!(
            !dir.path().join("env").exists(),
            "{args:?}: nothing started before the refusal"
        );
    }
}

#[test]
fn aws_faults_reach_the_sdk_from_the_flag_and_from_sim_fault() {
    let sim = sim_up_with(&[
        "--fault",
        "aws:action=DescribeVpcs:rate=1:403=UnauthorizedOperation",
    ]);
    let facts: Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    let vpc = facts["vpc_id"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(async {
        baton_aws::Aws::connect(
            &baton_aws::AwsConfig::default()
                .endpoint_url(&sim.env["AWS_ENDPOINT_URL"])
                .region(&sim.env["AWS_REGION"])
                .static_credentials(baton_aws::StaticCredentials::new(
                    sim.env["AWS_ACCESS_KEY_ID"].as_str(),
                    sim.env["AWS_SECRET_ACCESS_KEY"].as_str(),
                )),
        )
        .await
        .unwrap()
    });
    let describe = || rt.block_on(aws.describe_vpc(&vpc));

    let e = describe().unwrap_err();
    assert_eq!(e.code(), Some("UnauthorizedOperation"), "{e}");
    assert_eq!(
        text(&sim.fault(&["list"]).stdout),
        "aws:action=DescribeVpcs:rate=1:403=UnauthorizedOperation\n"
    );

    sim.fault(&["clear", "aws"]);
    describe().unwrap();
    sim.fault(&["add", "aws:action=DescribeVpcs:nth=1:400=DryRunOperation"]);
    assert_eq!(describe().unwrap_err().code(), Some("DryRunOperation"));
    describe().unwrap();
    assert!(
        sim.stderr()
            .contains("fault armed: aws:action=DescribeVpcs")
    );
}
