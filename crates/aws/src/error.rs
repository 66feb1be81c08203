//! The one error type of `baton-aws`, and the single place where SDK errors become it.
//!
//! Every message reads after "failed to …" and names the operation and the resource,
//! e.g. "failed to snapshot vol-0abc: InvalidVolume.NotFound: The volume 'vol-0abc' does
//! not exist." The variants separate what a caller decides on differently: a missing
//! resource, throttling that outlasted the retry budget, a timeout, our own validation
//! refusing input, and any other AWS answer. Credentials never reach an error: the SDK's
//! errors carry codes, messages and transport causes, never signing material.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Why an AWS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// AWS says the resource does not exist (`InvalidVolume.NotFound`,
    /// `TargetGroupNotFound`, `ResourceNotFoundException`, …).
    #[error("{op} {resource}: {code}: {message}")]
    NotFound {
        /// What baton was doing, e.g. "snapshot".
        op: &'static str,
        /// The resource it was doing it to, e.g. "vol-0abc".
        resource: String,
        /// The AWS error code.
        code: String,
        /// The AWS error message.
        message: String,
    },
    /// AWS throttled every attempt (`RequestLimitExceeded`, `Throttling`, HTTP 429)
    /// until the retry budget ran out.
    #[error(
        "{op} {resource}: AWS throttled every attempt and baton gave up after at most {max_attempts} attempts: {code}: {message}"
    )]
    Throttled {
        /// What baton was doing.
        op: &'static str,
        /// The resource it was doing it to.
        resource: String,
        /// The last throttling code AWS sent.
        code: String,
        /// The last throttling message AWS sent.
        message: String,
        /// The configured attempt bound.
        max_attempts: u32,
    },
    /// No answer within the configured attempt or operation timeout.
    #[error("{op} {resource}: no answer from AWS in time ({bounds})")]
    Timeout {
        /// What baton was doing.
        op: &'static str,
        /// The resource it was doing it to.
        resource: String,
        /// The configured bounds, for the user to raise them.
        bounds: String,
    },
    /// baton's own validation refused the input before any call was made (AWS or moto
    /// may accept values AWS documents as invalid, so baton checks them itself).
    #[error("{op} {resource}: invalid input: {reason}")]
    InvalidInput {
        /// What baton was about to do.
        op: &'static str,
        /// The resource it was about to do it to.
        resource: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// AWS answered, but the resource is not in a shape baton can work on (e.g. a
    /// listener without a forward action) or the answer lacks a field baton needs.
    #[error("{op} {resource}: {reason}")]
    Unexpected {
        /// What baton was doing.
        op: &'static str,
        /// The resource it was doing it to.
        resource: String,
        /// What was found instead.
        reason: String,
    },
    /// The resource changed since the caller last read it (e.g. someone else moved the
    /// forward weights), so baton refused to overwrite it.
    #[error("{op} {resource}: it was changed by someone else: {reason}")]
    Conflict {
        /// What baton was about to do.
        op: &'static str,
        /// The resource it was about to do it to.
        resource: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// Any other error AWS answered with.
    #[error("{op} {resource}: {code}: {message}")]
    Service {
        /// What baton was doing.
        op: &'static str,
        /// The resource it was doing it to.
        resource: String,
        /// The AWS error code.
        code: String,
        /// The AWS error message.
        message: String,
        /// The HTTP status of the answer.
        status: u16,
    },
    /// The request never got an AWS answer: connection refused, DNS, TLS, a body that
    /// could not be read, or a request the SDK could not build.
    #[error("{op} {resource}: {detail}")]
    Transport {
        /// What baton was doing.
        op: &'static str,
        /// The resource it was doing it to.
        resource: String,
        /// The cause chain.
        detail: String,
    },
    /// AWS could not be reached at all, or refused the credentials, when baton checked
    /// before starting ([`crate::Aws::reach`]).
    #[error("failed to reach AWS at {endpoint}: {reason}; {attempts}")]
    Unreachable {
        /// The endpoint tried (`AWS_ENDPOINT_URL`/`--endpoint-url` or AWS's own).
        endpoint: String,
        /// The innermost cause, or AWS's code and message for refused credentials.
        reason: String,
        /// How many attempts over how long, as people read it ("3 attempts in 0.8 s").
        attempts: String,
        /// Whether the credentials were the problem (missing, expired, invalid).
        credentials: bool,
    },
    /// The AWS configuration (region, profile, credentials chain) could not be loaded.
    #[error("load the AWS configuration: {reason}")]
    Config {
        /// What is missing and where baton looked.
        reason: String,
    },
}

impl Error {
    /// True when AWS said the resource does not exist.
    /// Whether retrying the same call may succeed (throttling, timeouts, connection
    /// errors, AWS-side 5xx); the caller's steps are idempotent, so a retry is safe.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Throttled { .. } | Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::Service { code, .. } => {
                code.contains("Internal")
                    || code.contains("Unavailable")
                    || code.contains("RequestLimitExceeded")
                    || code.starts_with("HTTP 5")
            }
            _ => false,
        }
    }

    /// Whether AWS said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The AWS error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::NotFound { code, .. }
            | Error::Throttled { code, .. }
            | Error::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Codes AWS services use for throttling; the SDK retries these, so seeing one in a
/// final error means the retry budget ran out.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "EC2ThrottledException",
    "SlowDown",
];

/// The operation and resource a call is about, plus the bounds it ran under, so that
/// any SDK error can be turned into an [`Error`] that says all of it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) op: &'static str,
    pub(crate) resource: String,
    pub(crate) max_attempts: u32,
    pub(crate) bounds: String,
}

impl Call {
    /// Our own validation failed for this call.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            op: self.op,
            resource: self.resource.clone(),
            reason: reason.into(),
        }
    }

    /// AWS answered with something baton cannot use.
    pub(crate) fn unexpected(&self, reason: impl Into<String>) -> Error {
        Error::Unexpected {
            op: self.op,
            resource: self.resource.clone(),
            reason: reason.into(),
        }
    }

    /// The resource is not as the caller last saw it.
    pub(crate) fn conflict(&self, reason: impl Into<String>) -> Error {
        Error::Conflict {
            op: self.op,
            resource: self.resource.clone(),
            reason: reason.into(),
        }
    }

    /// A field baton needs was absent from the answer.
    pub(crate) fn missing(&self, field: &str) -> Error {
        self.unexpected(format!("AWS answered without {field}"))
    }

    /// Maps an SDK error: the only place that inspects SDK error shapes.
    pub(crate) fn sdk<E>(&self, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let op = self.op;
        let resource = self.resource.clone();
        match err {
            SdkError::TimeoutError(_) => Error::Timeout {
                op,
                resource,
                bounds: self.bounds.clone(),
            },
            SdkError::DispatchFailure(ref failure) if failure.is_timeout() => Error::Timeout {
                op,
                resource,
                bounds: self.bounds.clone(),
            },
            SdkError::ServiceError(ref service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or("").to_owned();
                let message = service
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {status} without a message"));
                classify(self, code, message, status)
            }
            other => Error::Transport {
                op,
                resource,
                detail: transport_detail(&other),
            },
        }
    }
}

/// Why a request got no answer, as people read it: each layer of the cause chain once
/// ("dispatch failure: an error occurred while loading credentials: …"), without the
/// Debug dump of every layer that `DisplayErrorContext` appends, and without the layers
/// that say nothing ("other", "service error") or repeat the one above.
pub(crate) fn transport_detail(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut layer = Some(e);
    while let Some(l) = layer {
        let text = l.to_string();
        let empty = matches!(text.as_str(), "other" | "service error" | "io error" | "");
        if !empty && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        layer = l.source();
    }
    parts.join(": ")
}

/// Sorts an AWS error answer into not-found, throttled or other.
fn classify(call: &Call, code: String, message: String, status: u16) -> Error {
    let op = call.op;
    let resource = call.resource.clone();
    if THROTTLING_CODES.contains(&code.as_str()) || status == 429 {
        let code = if code.is_empty() {
            "HTTP 429".to_owned()
        } else {
            code
        };
        return Error::Throttled {
            op,
            resource,
            code,
            message,
            max_attempts: call.max_attempts,
        };
    }
    if code.contains("NotFound") {
        return Error::NotFound {
            op,
            resource,
            code,
            message,
        };
    }
    let code = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        code
    };
    Error::Service {
        op,
        resource,
        code,
        message,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call {
        Call {
            op: "snapshot",
            resource: "vol-0abc".to_owned(),
            max_attempts: 4,
            bounds: "20s per attempt, 60s in total".to_owned(),
        }
    }

    #[test]
    fn not_found_reads_after_failed_to() {
        let err = classify(
            &call(),
            "InvalidVolume.NotFound".to_owned(),
            "The volume 'vol-0abc' does not exist.".to_owned(),
            400,
        );
        assert!(err.is_not_found());
        assert_eq!(
            format!("failed to {err}"),
            "failed to snapshot vol-0abc: InvalidVolume.NotFound: The volume 'vol-0abc' does not exist."
        );
    }

    #[test]
    fn throttling_codes_and_429_are_throttled() {
        for (code, status) in [
            ("RequestLimitExceeded", 503),
            ("Throttling", 400),
            ("", 429),
        ] {
            let err = classify(&call(), code.to_owned(), "slow down".to_owned(), status);
            assert!(
                matches!(
                    err,
                    Error::Throttled {
                        max_attempts: 4,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn other_codes_are_service_errors_with_status() {
        let err = classify(&call(), "IncorrectState".to_owned(), "busy".to_owned(), 400);
        assert!(matches!(err, Error::Service { status: 400, .. }));
        assert_eq!(err.code(), Some("IncorrectState"));
    }
}
