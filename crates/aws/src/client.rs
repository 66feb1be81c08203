//! The [`Aws`] handle: the SDK clients for the services baton uses, built once from an
//! [`AwsConfig`] and cheap to clone into every task.
//!
//! The SDK is built without its default HTTPS client (which would compile aws-lc's C
//! code); baton gives it a hyper client on rustls with the `ring` provider, which also
//! speaks plain http to moto and `baton sim`.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls;
use aws_types::region::Region;

use crate::config::AwsConfig;
use crate::error::{Call, Error};

/// Access to EC2/EBS, ELBv2, CloudWatch and EKS in one account and region.
#[derive(Clone)]
pub struct Aws {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) elb: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) eks: aws_sdk_eks::Client,
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
        Ok(Self {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            eks: aws_sdk_eks::Client::new(&sdk),
            page_size: config.page_size,
            max_attempts: config.retry.max_attempts.max(1),
            bounds: config.timeouts.describe(),
            region,
        })
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
