//! Retries and timeouts through the fault-injecting proxy in front of moto: throttling
//! bursts that the retry policy rides out, one it gives up on within its bounds, and a
//! server that never answers.

mod common;

use std::time::{Duration, Instant};

use baton_aws::{Aws, Error, Filter, RetryPolicy, Timeouts};
use common::proxy::{Fault, FaultProxy};

async fn through(proxy: &FaultProxy, retry: RetryPolicy, timeouts: Timeouts) -> Aws {
    Aws::connect(
        &common::config(&proxy.endpoint())
            .retry(retry)
            .timeouts(timeouts),
    )
    .await
    .expect("connect through proxy")
}

fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        attempt: Duration::from_secs(10),
        operation: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn ec2_throttling_burst_is_ridden_out() {
    let proxy = FaultProxy::start(common::moto::addr(), Fault::Ec2RequestLimitExceeded, 3).await;
    let aws = through(&proxy, retry(5), timeouts()).await;
    let vols = aws
        .describe_volumes(&[Filter::new("tag:none", ["none"])])
        .await
        .expect("succeeds after three throttled attempts");
    assert!(vols.is_empty());
    assert_eq!(proxy.faults(), 3);
    assert_eq!(
        proxy.requests(),
        4,
        "three throttled attempts and one that got through"
    );
}

#[tokio::test]
async fn elb_429_throttling_burst_is_ridden_out() {
    let proxy = FaultProxy::start(common::moto::addr(), Fault::QueryThrottling429, 2).await;
    let aws = through(&proxy, retry(4), timeouts()).await;
    let missing =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/none/0123456789abcdef";
    // The answer that finally gets through is moto's own not-found: proof it got there.
    let err = aws
        .describe_target_health(missing)
        .await
        .expect_err("moto answers not found");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(proxy.requests(), 3);
}

#[tokio::test]
async fn endless_throttling_gives_up_within_the_attempt_bound() {
    let proxy = FaultProxy::start(
        common::moto::addr(),
        Fault::Ec2RequestLimitExceeded,
        usize::MAX,
    )
    .await;
    let aws = through(&proxy, retry(3), timeouts()).await;
    let started = Instant::now();
    let err = aws
        .create_snapshot(&baton_aws::NewSnapshot {
            volume_id: "vol-0123456789abcdef0".into(),
            description: "x".into(),
            tags: Default::default(),
        })
        .await
        .expect_err("never gets through");
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Throttled { max_attempts: 3, ref code, .. } if code == "RequestLimitExceeded"),
        "{err:?}"
    );
    assert_eq!(proxy.requests(), 3, "exactly max_attempts attempts");
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
    let shown = format!("failed to {err}");
    assert!(
        shown.starts_with("failed to snapshot vol-0123456789abcdef0: AWS throttled every attempt"),
        "{shown}"
    );
    assert!(!shown.contains(common::SECRET) && !format!("{err:?}").contains(common::SECRET));
}

#[tokio::test]
async fn endless_throttling_gives_up_at_the_operation_timeout() {
    let proxy = FaultProxy::start(
        common::moto::addr(),
        Fault::Ec2RequestLimitExceeded,
        usize::MAX,
    )
    .await;
    let patient = RetryPolicy {
        max_attempts: 1000,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(300),
    };
    let bounded = Timeouts {
        operation: Duration::from_millis(1500),
        ..timeouts()
    };
    let aws = through(&proxy, patient, bounded).await;
    let started = Instant::now();
    let err = aws
        .describe_volumes(&[])
        .await
        .expect_err("never gets through");
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    assert!(proxy.requests() >= 3, "it did retry: {}", proxy.requests());
}

#[tokio::test]
async fn a_silent_server_times_out_per_attempt_then_gives_up() {
    let proxy = FaultProxy::start(common::moto::addr(), Fault::Hang, usize::MAX).await;
    let quick = Timeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_millis(300),
        operation: Duration::from_secs(5),
    };
    let aws = through(&proxy, retry(2), quick).await;
    let started = Instant::now();
    let err = aws.describe_vpc("vpc-1").await.expect_err("no answer");
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    assert_eq!(
        proxy.requests(),
        2,
        "one retry after the first attempt timed out"
    );
    assert!(err.to_string().contains("per attempt"), "{err}");
}
