//! Test harness shared by the moto-backed test binaries: one moto server per binary,
//! an [`Aws`] handle pointed at it, SDK clients for setting up fixtures, and a
//! fault-injecting proxy. Each test creates its own VPC/resources instead of resetting
//! moto, because the tests of a binary run in parallel against the same server.

// Each test binary uses a different part of the harness; `expect` would fail in the
// binaries that happen to use all of it.
#![allow(dead_code)]

pub mod fixtures;
pub mod moto;
pub mod proxy;

use std::time::Duration;

use baton_aws::{Aws, AwsConfig, RetryPolicy, StaticCredentials, Timeouts};

/// The dummy secret key; tests check it never appears in errors.
pub const SECRET: &str = "testing-secret-never-shown";

/// Configuration for moto (or a proxy in front of it) at `endpoint`: dummy credentials,
/// us-east-1, fast retries so throttling tests stay short.
pub fn config(endpoint: &str) -> AwsConfig {
    AwsConfig::default()
        .endpoint_url(endpoint)
        .region("us-east-1")
        .static_credentials(StaticCredentials::new("testing", SECRET))
        .retry(RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        })
        .timeouts(Timeouts {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(20),
            operation: Duration::from_secs(60),
        })
}

/// An `Aws` handle on this binary's moto server.
pub async fn aws() -> Aws {
    Aws::connect(&config(&moto::endpoint()))
        .await
        .expect("connect to moto")
}

/// A name no other test in this moto server uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
