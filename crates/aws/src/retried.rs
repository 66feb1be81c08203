//! Says once per process, on stderr, that an AWS call is being tried again: the SDK's
//! standard retry (see [`crate::RetryPolicy`]) rides out throttling, 5xx answers and
//! lost connections on its own, silently; a command under a flaky or throttling API
//! should say why it is slower, once, not once per retry (later retries are debug lines).

use std::sync::atomic::{AtomicBool, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Whether the process has said that it retries.
static SAID: AtomicBool = AtomicBool::new(false);

/// The interceptor every AWS client of baton carries.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SayRetries;

impl Intercept for SayRetries {
    fn name(&self) -> &'static str {
        "SayRetries"
    }

    fn read_before_attempt(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempt < 2 {
            return Ok(());
        }
        let call = cfg.load::<Metadata>().map_or_else(
            || "an AWS call".to_owned(),
            |m| format!("{}:{}", m.service(), m.name()),
        );
        if !SAID.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{call} failed transiently (throttled, a 5xx answer or a lost connection); baton tries such calls again with backoff (said once; `-vv` shows each retry)"
            );
        } else {
            tracing::debug!(%call, attempt, "retrying");
        }
        Ok(())
    }
}
