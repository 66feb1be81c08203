//! Configuration from the environment, as users of the AWS CLI expect it: region and
//! credentials from the standard chain, `AWS_ENDPOINT_URL` and its per-service variants,
//! and an explicit endpoint that wins over both.
//!
//! Setting environment variables in a multi-threaded test binary is unsound, so each
//! test re-runs itself in a child process with the environment it needs
//! ([`in_child`]); the child runs the assertions. Nothing is `#[ignore]`d, so the
//! children do not count as skipped tests.

mod common;

use std::process::Command;
use std::time::Duration;

use baton_aws::{Aws, AwsConfig, Error, RetryPolicy};

/// Marks the child process and names the test it runs.
const CHILD: &str = "BATON_TEST_CHILD";

/// Runs `body` for the test `name`: in the child, where [`CHILD`] is `name`, `body`
/// itself; otherwise this test again, in a child with `env()` on top of a scrubbed AWS
/// environment (no shared files, no instance metadata, no profile).
fn in_child<F>(name: &str, env: impl FnOnce() -> Vec<(&'static str, String)>, body: fn() -> F)
where
    F: std::future::Future<Output = ()>,
{
    if std::env::var(CHILD).as_deref() == Ok(name) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(body());
        return;
    }
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args(["--exact", name, "--test-threads=1"])
        .env(CHILD, name);
    for var in [
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/baton-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/baton-test-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback URL where nothing listens.
fn dead_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    }
}

#[test]
fn per_service_endpoint_variables_override_the_global_one() {
    in_child(
        "per_service_endpoint_variables_override_the_global_one",
        || {
            let moto = common::moto::endpoint();
            vec![
                ("AWS_ENDPOINT_URL", dead_endpoint()),
                ("AWS_ENDPOINT_URL_EC2", moto.clone()),
                ("AWS_ENDPOINT_URL_EKS", moto.clone()),
                ("AWS_ENDPOINT_URL_CLOUDWATCH", moto),
                ("BATON_TEST_DEAD_ENDPOINT", dead_endpoint()),
                ("AWS_REGION", "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", common::SECRET.to_owned()),
            ]
        },
        child_env_endpoints,
    );
}

async fn child_env_endpoints() {
    let aws = Aws::connect(&AwsConfig::default().retry(one_attempt()))
        .await
        .expect("config from the environment");
    assert_eq!(aws.region(), "us-east-1");
    // EC2 and EKS reach moto through their own variables (moto answers not-found) …
    let err = aws
        .describe_vpc("vpc-0000000000000dead")
        .await
        .expect_err("no VPC");
    assert!(err.is_not_found(), "EC2 should reach moto: {err:?}");
    let err = aws.describe_cluster("none").await.expect_err("no cluster");
    assert!(err.is_not_found(), "EKS should reach moto: {err:?}");
    let now = std::time::SystemTime::now();
    let dims = baton_aws::AlbMetricDims {
        load_balancer: "app/x/1".into(),
        target_group: "targetgroup/x/1".into(),
    };
    aws.target_group_request_stats(&dims, now - Duration::from_secs(60), now)
        .await
        .expect("CloudWatch should reach moto");
    // … while ELBv2 has none and falls back to AWS_ENDPOINT_URL, where nobody listens.
    let err = aws
        .describe_load_balancers(&[], &[])
        .await
        .expect_err("dead global endpoint");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(common::SECRET));

    // An explicit endpoint wins over every variable.
    let dead = std::env::var("BATON_TEST_DEAD_ENDPOINT").expect("set by the parent");
    let explicit = Aws::connect(&AwsConfig::default().endpoint_url(dead).retry(one_attempt()))
        .await
        .expect("config");
    let err = explicit
        .describe_vpc("vpc-1")
        .await
        .expect_err("dead endpoint");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

#[test]
fn a_missing_region_is_a_config_error() {
    in_child(
        "a_missing_region_is_a_config_error",
        Vec::new,
        child_no_region,
    );
}

async fn child_no_region() {
    let err = Aws::connect(&AwsConfig::default())
        .await
        .expect_err("no region anywhere");
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
}
