//! The AWS knobs the fault proxy in front of moto applies: latency, faults by rate or at
//! the Nth call of an action (`AttachVolume`, `ModifyListener`), answered in the wire
//! dialect of the service called so the SDK classifies them as AWS would (EC2's
//! `RequestLimitExceeded` with HTTP 503, ELBv2's `Throttling` with HTTP 400, …), and the
//! log of calls per action.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{KnobSet, Logged, Matches, Rule, lock};

/// Which AWS calls a rule counts; every set field must match, the default matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsMatch {
    /// The operation: the `Action=` of a Query/EC2 call, or the operation part of an
    /// `X-Amz-Target` header (`GetMetricData` in `GraniteServiceVersion20100801.GetMetricData`).
    pub action: Option<String>,
    /// The signing name from the `Authorization` credential scope: `ec2`,
    /// `elasticloadbalancing`, `eks`, `monitoring`.
    pub service: Option<String>,
    /// A substring of the URL path (for REST calls, e.g. EKS's `/clusters/blue`).
    pub path_contains: Option<String>,
}

/// A fault rule for AWS calls.
pub type AwsRule = Rule<AwsMatch, AwsFault>;

impl AwsRule {
    /// Only calls of this operation.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.matcher.action = Some(action.into());
        self
    }

    /// Only calls signed for this service (`ec2`, `elasticloadbalancing`, …).
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.matcher.service = Some(service.into());
        self
    }

    /// Only calls whose path contains `s`.
    pub fn path_contains(mut self, s: impl Into<String>) -> Self {
        self.matcher.path_contains = Some(s.into());
        self
    }
}

/// How a service speaks errors on the wire; decides the shape of an injected error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// EC2's query protocol: `<Response><Errors><Error><Code>…`.
    Ec2,
    /// The AWS Query protocol (ELBv2, CloudWatch): `<ErrorResponse><Error><Type>…`.
    Query,
    /// The AWS JSON protocol (an `X-Amz-Target` header): `{"__type": …}`.
    Json,
    /// REST-JSON (EKS): the `x-amzn-ErrorType` header and `{"message": …}`.
    RestJson,
}

/// One AWS call as the matchers see it.
#[derive(Debug, Clone)]
pub(crate) struct AwsCall {
    pub(crate) path: String,
    pub(crate) action: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) dialect: Dialect,
}

impl Matches<AwsCall> for AwsMatch {
    fn matches(&self, c: &AwsCall) -> bool {
        self.action
            .as_deref()
            .is_none_or(|a| c.action.as_deref() == Some(a))
            && self
                .service
                .as_deref()
                .is_none_or(|s| c.service.as_deref() == Some(s))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|s| c.path.contains(s))
    }
}

impl AwsCall {
    /// Reads the operation, service and dialect from a request's parts.
    pub(crate) fn from_parts(target: &str, headers: &[(String, String)], body: &[u8]) -> Self {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let content_type = header("content-type").unwrap_or_default();
        let form = content_type.starts_with("application/x-www-form-urlencoded");
        let param = |key: &str| {
            let from = |s: &[u8]| {
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(s)
                    .ok()?
                    .into_iter()
                    .find_map(|(k, v)| (k == key).then_some(v))
            };
            from(query.as_bytes()).or_else(|| if form { from(body) } else { None })
        };
        let amz_target = header("x-amz-target");
        let action = param("Action")
            .or_else(|| amz_target.map(|t| t.rsplit_once('.').map_or(t, |(_, op)| op).to_string()));
        let service = header("authorization").and_then(signing_service);
        let dialect = if amz_target.is_some() || content_type.starts_with("application/x-amz-json")
        {
            Dialect::Json
        } else if service.as_deref() == Some("ec2")
            || param("Version").as_deref() == Some("2016-11-15")
        {
            Dialect::Ec2
        } else if action.is_some() {
            Dialect::Query
        } else {
            Dialect::RestJson
        };
        Self {
            path: path.to_string(),
            action,
            service,
            dialect,
        }
    }
}

/// The service of a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request, …` → `ec2`.
fn signing_service(authorization: &str) -> Option<String> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [.., service, "aws4_request"] => Some((*service).to_string()),
        _ => None,
    }
}

/// What a call a rule fires on gets instead of reaching moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsFault {
    /// Throttling as the service answers it: EC2 `RequestLimitExceeded` (HTTP 503), Query
    /// `Throttling` (400, `Sender`), JSON `ThrottlingException` (400), REST-JSON
    /// `ThrottlingException` (429). The SDK retries all of them with backoff.
    Throttle,
    /// HTTP 500: EC2 `InternalError`, elsewhere `InternalFailure`.
    Internal,
    /// Any error, in the call's dialect: e.g. HTTP 400 `VolumeInUse`.
    Error {
        /// HTTP status.
        status: u16,
        /// The AWS error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The call is held this long, then the connection is closed without an answer.
    Timeout(Duration),
    /// The connection is closed at once without an answer.
    Reset,
}

impl AwsFault {
    /// A short name for logs: `Throttle`, `Internal`, the error code, `Timeout`, `Reset`.
    pub fn name(&self) -> String {
        match self {
            Self::Throttle => "Throttle".into(),
            Self::Internal => "Internal".into(),
            Self::Error { code, .. } => code.clone(),
            Self::Timeout(_) => "Timeout".into(),
            Self::Reset => "Reset".into(),
        }
    }

    /// The HTTP status, code and message of an error fault in this dialect; `None` for
    /// the faults that answer nothing.
    fn error(&self, dialect: Dialect) -> Option<(u16, String, String)> {
        let (status, code, message) = match (self, dialect) {
            (Self::Throttle, Dialect::Ec2) => {
                (503, "RequestLimitExceeded", "Request limit exceeded.")
            }
            (Self::Throttle, Dialect::Query) => (400, "Throttling", "Rate exceeded"),
            (Self::Throttle, Dialect::Json) => (400, "ThrottlingException", "Rate exceeded"),
            (Self::Throttle, Dialect::RestJson) => (429, "ThrottlingException", "Rate exceeded"),
            (Self::Internal, Dialect::Ec2) => {
                (500, "InternalError", "An internal error has occurred.")
            }
            (Self::Internal, _) => (
                500,
                "InternalFailure",
                "The request processing has failed because of an unknown error, exception or failure.",
            ),
            (
                Self::Error {
                    status,
                    code,
                    message,
                },
                _,
            ) => return Some((*status, code.clone(), message.clone())),
            (Self::Timeout(_) | Self::Reset, _) => return None,
        };
        Some((status, code.to_string(), message.to_string()))
    }

    /// The whole HTTP/1.1 response of an error fault (with `Connection: close`); `None`
    /// for the faults that answer nothing.
    pub(crate) fn response(&self, dialect: Dialect, request_id: &str) -> Option<Vec<u8>> {
        let (status, code, message) = self.error(dialect)?;
        let (content_type, extra, body) = match dialect {
            Dialect::Ec2 => (
                "text/xml;charset=UTF-8",
                String::new(),
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
                    xml_escape(&code),
                    xml_escape(&message)
                ),
            ),
            Dialect::Query => (
                "text/xml",
                String::new(),
                format!(
                    "<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                    if status >= 500 { "Receiver" } else { "Sender" },
                    xml_escape(&code),
                    xml_escape(&message)
                ),
            ),
            Dialect::Json => (
                "application/x-amz-json-1.1",
                String::new(),
                serde_json::json!({ "__type": code, "message": message }).to_string(),
            ),
            Dialect::RestJson => (
                "application/json",
                format!("x-amzn-ErrorType: {code}\r\n"),
                serde_json::json!({ "message": message }).to_string(),
            ),
        };
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: {request_id}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        Some([head.into_bytes(), body.into_bytes()].concat())
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One call in the proxy's log.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsRequest {
    /// When it arrived.
    pub at: jiff::Timestamp,
    /// `POST`, `GET`, …
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The operation, when the request names one (see [`AwsMatch::action`]).
    pub action: Option<String>,
    /// The signing service, when the request is signed.
    pub service: Option<String>,
    /// The HTTP status answered (502 when moto could not be reached); `None` when the
    /// connection was closed without an answer.
    pub status: Option<u16>,
    /// From arrival to the answer being written, injected latency included.
    pub latency: Duration,
    /// The injected fault's [`AwsFault::name`], if one was.
    pub fault: Option<String>,
}

impl Logged for AwsRequest {
    fn faulted(&self) -> bool {
        self.fault.is_some()
    }

    /// No body: the proxy does not keep them (they may carry secrets).
    fn document(&self) -> serde_json::Value {
        serde_json::json!({
            "at": self.at.to_string(),
            "method": self.method,
            "path": self.path,
            "action": self.action,
            "service": self.service,
            "status": self.status,
            "latencyMicros": u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX),
            "fault": self.fault,
        })
    }
}

/// The AWS fault proxy's knobs and call log (set them from a test while the proxy runs).
pub type AwsKnobs = KnobSet<AwsMatch, AwsFault, AwsRequest>;

impl AwsKnobs {
    /// How many logged calls were of this operation (retries included: each attempt is a
    /// call).
    pub fn count(&self, action: &str) -> usize {
        lock(&self.log)
            .iter()
            .filter(|r| r.action.as_deref() == Some(action))
            .count()
    }

    /// Logged calls per operation (calls naming none are counted under their path).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in lock(&self.log).iter() {
            let key = r.action.clone().unwrap_or_else(|| r.path.clone());
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const EC2_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=abc";

    #[test]
    fn reads_action_service_and_dialect() {
        let ec2 = AwsCall::from_parts(
            "/",
            &h(&[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", EC2_AUTH),
            ]),
            b"Action=AttachVolume&Version=2016-11-15&VolumeId=vol-1",
        );
        assert_eq!(ec2.action.as_deref(), Some("AttachVolume"));
        assert_eq!(ec2.service.as_deref(), Some("ec2"));
        assert_eq!(ec2.dialect, Dialect::Ec2);

        let elb = AwsCall::from_parts("/?Action=ModifyListener&Version=2015-12-01", &h(&[]), b"");
        assert_eq!(
            (elb.action.as_deref(), elb.dialect),
            (Some("ModifyListener"), Dialect::Query)
        );

        let json = AwsCall::from_parts(
            "/",
            &h(&[(
                "X-Amz-Target",
                "GraniteServiceVersion20100801.GetMetricData",
            )]),
            b"{}",
        );
        assert_eq!(
            (json.action.as_deref(), json.dialect),
            (Some("GetMetricData"), Dialect::Json)
        );

        let rest = AwsCall::from_parts("/clusters/blue", &h(&[]), b"");
        assert_eq!((rest.action, rest.dialect), (None, Dialect::RestJson));
    }

    #[test]
    fn throttling_is_shaped_per_dialect() {
        let text = |d| String::from_utf8(AwsFault::Throttle.response(d, "r-1").unwrap()).unwrap();
        let ec2 = text(Dialect::Ec2);
        assert!(ec2.starts_with("HTTP/1.1 503 "), "{ec2}");
        assert!(ec2.contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code>"));
        let elb = text(Dialect::Query);
        assert!(elb.starts_with("HTTP/1.1 400 "), "{elb}");
        assert!(elb.contains("<Error><Type>Sender</Type><Code>Throttling</Code>"));
        let rest = text(Dialect::RestJson);
        assert!(
            rest.starts_with("HTTP/1.1 429 ")
                && rest.contains("x-amzn-ErrorType: ThrottlingException")
        );
        assert!(AwsFault::Reset.response(Dialect::Ec2, "r").is_none());
    }

    #[test]
    fn matcher_needs_every_set_field() {
        let call = AwsCall::from_parts(
            "/?Action=AttachVolume",
            &h(&[("Authorization", EC2_AUTH)]),
            b"",
        );
        let m = |r: AwsRule| r.matcher.matches(&call);
        assert!(m(AwsRule::nth(1, AwsFault::Throttle).action("AttachVolume")));
        assert!(m(AwsRule::nth(1, AwsFault::Throttle)
            .action("AttachVolume")
            .service("ec2")));
        assert!(!m(
            AwsRule::nth(1, AwsFault::Throttle).action("DetachVolume")
        ));
        assert!(!m(
            AwsRule::nth(1, AwsFault::Throttle).service("elasticloadbalancing")
        ));
    }
}
