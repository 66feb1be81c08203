//! How baton finds and talks to AWS: region, profile, credentials, endpoints, retries
//! and timeouts, as users of the AWS CLI expect them.
//!
//! Everything not set here comes from the standard AWS chain (environment, shared
//! config and credentials files, SSO, web identity, instance metadata), including
//! `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_EC2`,
//! `AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2`, `AWS_ENDPOINT_URL_CLOUDWATCH` and
//! `AWS_ENDPOINT_URL_EKS`, which aws-config resolves itself. An explicit
//! [`AwsConfig::endpoint_url`] wins over all of them (tests and `baton sim` use it).

use std::fmt;
use std::time::Duration;

/// What baton needs to reach AWS; `AwsConfig::default()` is the standard chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsConfig {
    pub(crate) profile: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) credentials: Option<StaticCredentials>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeouts: Timeouts,
    pub(crate) page_size: Option<i32>,
}

impl AwsConfig {
    /// Uses this profile of the shared config files instead of `AWS_PROFILE`/default.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Uses this region instead of `AWS_REGION` or the profile's.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends every service's requests to this URL, overriding `AWS_ENDPOINT_URL*`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Uses these credentials instead of the chain; meant for emulators and tests,
    /// where mutating the process environment would race with parallel tests.
    pub fn static_credentials(mut self, credentials: StaticCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// How throttled and transient failures are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long a call may take.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Asks paginated calls for at most this many items per page (AWS's maximum when
    /// unset). Small pages exercise pagination in tests; AWS's per-call bounds apply.
    pub fn page_size(mut self, size: i32) -> Self {
        self.page_size = Some(size);
        self
    }
}

/// Retries with exponential backoff and jitter for throttling (`RequestLimitExceeded`,
/// `Throttling`, HTTP 429) and transient errors (5xx, timeouts). The total time is
/// bounded by [`Timeouts::operation`], the count by `max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled (with jitter) for each next one.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// More patient than the SDK's 3 attempts: a migration window would rather wait out
    /// a throttling burst than fail and resume.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
        }
    }
}

/// Time bounds of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP/TLS connection.
    pub connect: Duration,
    /// One attempt, from sending the request to reading the whole answer.
    pub attempt: Duration,
    /// The whole call, retries and backoff included.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(30),
            operation: Duration::from_secs(120),
        }
    }
}

impl Timeouts {
    /// How the bounds read in a timeout error.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{:?} per attempt, {:?} per call including retries",
            self.attempt, self.operation
        )
    }
}

/// An access key pair given explicitly; its `Debug` never shows the secret parts.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
}

impl StaticCredentials {
    /// A long-term key pair.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Adds the session token of temporary credentials.
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let config = AwsConfig::default().static_credentials(
            StaticCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/SECRET").session_token("TOKEN123"),
        );
        let shown = format!("{config:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("TOKEN123"), "{shown}");
    }
}
