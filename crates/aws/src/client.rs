//! The [`Aws`] handle: the SDK clients for the services baton uses, built once from an
//! [`AwsConfig`] and cheap to clone into every task.
//!
//! The SDK is built without its default HTTPS client (which would compile aws-lc's C
//! code); baton gives it a hyper client on rustls with the `ring` provider, which also
//! speaks plain http to moto and `baton sim`.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

use crate::retried::SayRetries;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls;
use aws_types::region::Region;

use crate::config::AwsConfig;
use crate::error::{Call, Error};

/// Attempts of [`Aws::reach`] before AWS is reported unreachable.
pub const PROBE_ATTEMPTS: u32 = 3;
/// [`Aws::reach`] tries again only while less than this has passed.
pub const PROBE_RETRY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest one attempt of [`Aws::reach`] waits, fetching the credentials included
/// (an SSO or assume-role fetch, a `credential_process`, may take a few seconds).
const PROBE_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(20);
/// The longest wait for a connection during [`Aws::reach`].
const PROBE_CONNECT: std::time::Duration = std::time::Duration::from_secs(3);

/// Codes with which AWS refuses the credentials themselves.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
];

/// Access to EC2/EBS, ELBv2, CloudWatch, EKS, IAM and KMS in one account and region.
#[derive(Clone)]
pub struct Aws {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) elb: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) eks: aws_sdk_eks::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    #[cfg_attr(
        not(feature = "testbed"),
        allow(
            dead_code,
            reason = "read by the volume handover (issue 18), under way"
        )
    )]
    pub(crate) kms: aws_sdk_kms::Client,
    /// STS with a short retry budget, for [`Aws::reach`] (and the test bed's account id).
    pub(crate) probe: aws_sdk_sts::Client,
    /// Where calls go, for messages: the configured endpoint or AWS's own.
    endpoint: String,
    pub(crate) page_size: Option<i32>,
    max_attempts: u32,
    bounds: String,
    region: String,
}

// Written by hand so that no client configuration (credential providers included) is
// ever formatted into a log line.
impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("region", &self.region)
            .field("page_size", &self.page_size)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Aws {
    /// Loads the configuration (explicit settings first, then the standard chain) and
    /// builds the clients. Fails when no region can be found, because every later call
    /// would fail with a less helpful message.
    pub async fn connect(config: &AwsConfig) -> Result<Self, Error> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let retry = RetryConfig::standard()
            .with_max_attempts(config.retry.max_attempts.max(1))
            .with_initial_backoff(config.retry.initial_backoff)
            .with_max_backoff(config.retry.max_backoff);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.timeouts.connect)
            .operation_attempt_timeout(config.timeouts.attempt)
            .operation_timeout(config.timeouts.operation)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(creds) = &config.credentials {
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.clone(),
                creds.session_token.clone(),
                None,
                "baton-static",
            ));
        }
        let sdk = loader.load().await;
        let Some(region) = sdk.region().map(|r| r.to_string()) else {
            return Err(Error::Config {
                reason:
                    "no AWS region: pass --region, set AWS_REGION, or set `region` in the profile"
                        .to_owned(),
            });
        };
        tracing::debug!(%region, endpoint = ?sdk.endpoint_url(), "AWS configuration loaded");
        let endpoint = sdk
            .endpoint_url()
            .map_or_else(|| format!("AWS's endpoints in {region}"), str::to_owned);
        let probe = aws_sdk_sts::config::Builder::from(&sdk)
            // reach() counts its own attempts.
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(config.timeouts.connect.min(PROBE_CONNECT))
                    .operation_attempt_timeout(PROBE_ATTEMPT)
                    .build(),
            )
            .build();
        // Each service's client from the shared configuration, saying its first retry
        // once (crate::retried).
        macro_rules! said {
            ($service:ident) => {
                $service::Client::from_conf(
                    $service::config::Builder::from(&sdk)
                        .interceptor(SayRetries)
                        .build(),
                )
            };
        }
        Ok(Self {
            probe: aws_sdk_sts::Client::from_conf(probe),
            endpoint,
            ec2: said!(aws_sdk_ec2),
            elb: said!(aws_sdk_elasticloadbalancingv2),
            cloudwatch: said!(aws_sdk_cloudwatch),
            eks: said!(aws_sdk_eks),
            iam: said!(aws_sdk_iam),
            kms: said!(aws_sdk_kms),
            page_size: config.page_size,
            max_attempts: config.retry.max_attempts.max(1),
            bounds: config.timeouts.describe(),
            region,
        })
    }

    /// Checks, before a command starts its work, that AWS answers and takes the
    /// credentials: `sts:GetCallerIdentity`, which AWS answers for any valid credentials
    /// (no IAM permission needed); any answer but a refusal of the credentials will do. Nothing answering, a wrong `AWS_ENDPOINT_URL`, or
    /// missing, expired or invalid credentials is [`Error::Unreachable`] in seconds
    /// (at most [`PROBE_ATTEMPTS`] attempts, none started after [`PROBE_RETRY_WITHIN`]), rather than after each
    /// call's patient retries (8 attempts, up to 2 minutes). Returns the caller's ARN.
    pub async fn reach(&self) -> Result<String, Error> {
        let started = std::time::Instant::now();
        let mut attempts = 0;
        let unreachable = |attempts: u32, reason: String, credentials: bool| Error::Unreachable {
            endpoint: self.endpoint.clone(),
            reason,
            attempts: format!(
                "{attempts} attempt{} in {:.1} s",
                if attempts == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            ),
            credentials,
        };
        loop {
            attempts += 1;
            match self.probe.get_caller_identity().send().await {
                Ok(who) => return Ok(who.arn().unwrap_or_default().to_owned()),
                Err(aws_sdk_sts::error::SdkError::ServiceError(e)) => {
                    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
                    let code = e.err().code().unwrap_or("");
                    if CREDENTIAL_CODES.contains(&code) {
                        let message = e.err().message().unwrap_or("no message");
                        return Err(unreachable(attempts, format!("{code}: {message}"), true));
                    }
                    // Something answered that is not STS (a web server at a wrong
                    // AWS_ENDPOINT_URL: no AWS error code, or a 404).
                    let status = e.raw().status().as_u16();
                    if code.is_empty() || status == 404 {
                        return Err(unreachable(
                            attempts,
                            format!(
                                "HTTP {status} without an AWS error: the endpoint answers, but not as AWS STS"
                            ),
                            false,
                        ));
                    }
                    // Any other answer (a 5xx, throttling): AWS is there, and the calls
                    // that matter retry patiently.
                    return Ok(String::new());
                }
                Err(e) => {
                    let reason = crate::error::transport_detail(&e);
                    // The credential chain found nothing: no retry will find more.
                    let credentials = reason.contains("credential");
                    if credentials
                        || attempts >= PROBE_ATTEMPTS
                        || started.elapsed() >= PROBE_RETRY_WITHIN
                    {
                        return Err(unreachable(attempts, reason, credentials));
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(250) * attempts).await;
        }
    }

    /// The region every call goes to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The context an operation's errors are reported in.
    pub(crate) fn call(&self, op: &'static str, resource: impl Into<String>) -> Call {
        Call {
            op,
            resource: resource.into(),
            max_attempts: self.max_attempts,
            bounds: self.bounds.clone(),
        }
    }
}
