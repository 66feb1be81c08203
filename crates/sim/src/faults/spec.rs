//! The text form of the knobs, shared by `baton sim up --fault`/`--api-latency-ms`, the
//! `/debug/faults` endpoints and tests: a fault rule is one line a user can type and a
//! listing can print back.
//!
//! ```text
//! SPEC    = TARGET ":" PART { ":" PART }        parts in any order
//! TARGET  = a cluster name (blue, green, …) | aws
//! PART    = TRIGGER | FAULT | MATCH             exactly one trigger and one fault
//! TRIGGER = rate=P (0..=1) | nth=N | burst=FROM+COUNT          (counts are 1-based)
//! FAULT   = cluster: 500 | 409 | 429[=SECS] | timeout[=DUR] | hang[=DUR] | reset
//!           aws:     throttle | 500 | STATUS=CODE | timeout[=DUR] | reset
//! MATCH   = cluster: method=GET | resource=PLURAL[/SUB] | path=SUBSTRING
//!           aws:     action=AttachVolume | service=ec2 | path=SUBSTRING
//! DUR     = 250ms | 5s | 2m                      (timeout and hang hold 60s by default)
//! LATENCY = [TARGET=]MS[+JITTER]                 (milliseconds)
//! ```
//!
//! Values cannot contain `:`. A rule without its target (`nth=1:500`) parses as an
//! [`ApiRule`] or [`AwsRule`]; [`FaultSpec`] adds the target. `Display` prints the
//! canonical form (matches, trigger, fault), which parses back to the same rule, except
//! that an [`AwsFault::Error`] prints without its message.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::Method;

use super::{ApiFault, ApiMatch, ApiRule, AwsFault, AwsMatch, AwsRule, Latency, Rule, Trigger};

/// How long `timeout` and `hang` hold a request when no duration is given: kube-apiserver's
/// default `--request-timeout`.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(60);

/// The `Retry-After` of a `429` given without seconds.
pub const DEFAULT_RETRY_AFTER: u32 = 1;

/// The target that names the AWS proxy rather than a cluster.
const AWS: &str = "aws";

/// Failed to parse a fault or latency spec; each message names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec does not start with a target.
    #[error(
        "{part:?} is not a target: a spec starts with a cluster name (blue, green, …) or `aws`, then `:`"
    )]
    Target {
        /// What stood where the target belongs.
        part: String,
    },
    /// A part is none of a trigger, a fault or a match of this target.
    #[error(
        "unknown part {part:?}: {side} take a trigger ({TRIGGERS}), a fault ({faults}) or a match ({matches})"
    )]
    Unknown {
        /// The part.
        part: String,
        /// `clusters` or `aws rules`.
        side: &'static str,
        /// The faults this side offers.
        faults: &'static str,
        /// The matches this side offers.
        matches: &'static str,
    },
    /// A known part with a value it cannot take.
    #[error("bad value in {part:?}: expected {expected}")]
    Value {
        /// The part.
        part: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A second trigger, fault, or the same match twice.
    #[error("{part:?} repeats the {what}: a rule has one")]
    Repeated {
        /// The second part.
        part: String,
        /// `trigger`, `fault` or the match key.
        what: &'static str,
    },
    /// The rule lacks a trigger or a fault.
    #[error("no {what} in {spec:?}: add {hint}")]
    Missing {
        /// The whole spec.
        spec: String,
        /// `trigger` or `fault`.
        what: &'static str,
        /// What to add.
        hint: &'static str,
    },
}

const TRIGGERS: &str = "rate=P, nth=N, burst=FROM+COUNT";

/// Where a rule or a latency applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The Kubernetes API of the cluster of this name.
    Cluster(String),
    /// AWS, through the fault proxy in front of moto.
    Aws,
}

impl FromStr for Target {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Target { part: s.into() };
        if s == AWS {
            return Ok(Self::Aws);
        }
        // A DNS name, as cluster names are; it also rejects a forgotten target (`rate=0.1`
        // or `500` as the first part).
        let label = s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric());
        if label {
            Ok(Self::Cluster(s.into()))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cluster(name) => f.write_str(name),
            Self::Aws => f.write_str(AWS),
        }
    }
}

/// A fault rule with its target: `blue:method=GET:resource=configmaps:nth=1:500`.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultSpec {
    /// A rule for one cluster's Kubernetes API.
    Api {
        /// The cluster's name.
        cluster: String,
        /// The rule.
        rule: ApiRule,
    },
    /// A rule for AWS calls through the fault proxy.
    Aws(AwsRule),
}

impl FaultSpec {
    /// Where the rule applies.
    pub fn target(&self) -> Target {
        match self {
            Self::Api { cluster, .. } => Target::Cluster(cluster.clone()),
            Self::Aws(_) => Target::Aws,
        }
    }

    /// The rule without its target, as `/debug/faults` takes it.
    pub fn rule_text(&self) -> String {
        match self {
            Self::Api { rule, .. } => rule.to_string(),
            Self::Aws(rule) => rule.to_string(),
        }
    }
}

impl FromStr for FaultSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (target, rule) = s.split_once(':').unwrap_or((s, ""));
        Ok(match target.parse::<Target>()? {
            Target::Cluster(cluster) => Self::Api {
                cluster,
                rule: rule.parse()?,
            },
            Target::Aws => Self::Aws(rule.parse()?),
        })
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.target(), self.rule_text())
    }
}

/// A latency and where it applies (everywhere when no target): `blue=20`, `aws=100+50`,
/// `20`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySpec {
    /// Where; `None` is every cluster (not AWS).
    pub target: Option<Target>,
    /// How much.
    pub latency: Latency,
}

impl FromStr for LatencySpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (target, value) = match s.split_once('=') {
            Some((t, v)) => (Some(t.parse()?), v),
            None => (None, s),
        };
        let bad = || SpecError::Value {
            part: s.into(),
            expected: "[TARGET=]MS[+JITTER_MS], e.g. 20, blue=20 or aws=100+50",
        };
        let (fixed, jitter) = value.split_once('+').unwrap_or((value, "0"));
        let ms = |v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad())
        };
        Ok(Self {
            target,
            latency: Latency {
                fixed: ms(fixed)?,
                jitter: ms(jitter)?,
            },
        })
    }
}

impl fmt::Display for LatencySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.target {
            write!(f, "{t}=")?;
        }
        write!(f, "{}", self.latency.fixed.as_millis())?;
        if !self.latency.jitter.is_zero() {
            write!(f, "+{}", self.latency.jitter.as_millis())?;
        }
        Ok(())
    }
}

/// The matches one side takes, in text.
trait MatchText: Default {
    /// The keys, for error messages.
    const KEYS: &'static str;
    /// Sets the match for `key`; `None` when `key` is not one of this side's.
    fn set(&mut self, part: &str, key: &str, value: &str) -> Option<Result<(), SpecError>>;
    /// The set matches as parts, in canonical order.
    fn parts(&self) -> Vec<String>;
}

/// The faults one side takes, in text.
trait FaultText: Sized {
    /// The faults, for error messages.
    const KINDS: &'static str;
    /// `clusters` or `aws rules`, for error messages.
    const SIDE: &'static str;
    /// The fault `kind[=arg]` names; `None` when it names none of this side's.
    fn parse(part: &str, kind: &str, arg: Option<&str>) -> Option<Result<Self, SpecError>>;
    /// The fault as a part.
    fn part(&self) -> String;
}

/// Sets an optional match once.
fn set_once(
    slot: &mut Option<String>,
    part: &str,
    key: &'static str,
    value: String,
) -> Result<(), SpecError> {
    if slot.is_some() {
        return Err(SpecError::Repeated {
            part: part.into(),
            what: key,
        });
    }
    if value.is_empty() {
        return Err(SpecError::Value {
            part: part.into(),
            expected: "a value after `=`",
        });
    }
    *slot = Some(value);
    Ok(())
}

impl MatchText for ApiMatch {
    const KEYS: &'static str = "method=, resource=, path=";

    fn set(&mut self, part: &str, key: &str, value: &str) -> Option<Result<(), SpecError>> {
        Some(match key {
            "method" => {
                let upper = value.to_ascii_uppercase();
                let known = ["GET", "POST", "PUT", "PATCH", "DELETE"];
                match Method::from_bytes(upper.as_bytes()) {
                    _ if self.method.is_some() => Err(SpecError::Repeated {
                        part: part.into(),
                        what: "method",
                    }),
                    Ok(m) if known.contains(&upper.as_str()) => {
                        self.method = Some(m);
                        Ok(())
                    }
                    _ => Err(SpecError::Value {
                        part: part.into(),
                        expected: "GET, POST, PUT, PATCH or DELETE",
                    }),
                }
            }
            "resource" => set_once(&mut self.resource, part, "resource", value.into()),
            "path" => set_once(&mut self.path_contains, part, "path", value.into()),
            _ => return None,
        })
    }

    fn parts(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &self.method {
            out.push(format!("method={m}"));
        }
        if let Some(r) = &self.resource {
            out.push(format!("resource={r}"));
        }
        if let Some(p) = &self.path_contains {
            out.push(format!("path={p}"));
        }
        out
    }
}

impl MatchText for AwsMatch {
    const KEYS: &'static str = "action=, service=, path=";

    fn set(&mut self, part: &str, key: &str, value: &str) -> Option<Result<(), SpecError>> {
        Some(match key {
            "action" => set_once(&mut self.action, part, "action", value.into()),
            "service" => set_once(&mut self.service, part, "service", value.into()),
            "path" => set_once(&mut self.path_contains, part, "path", value.into()),
            _ => return None,
        })
    }

    fn parts(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = &self.action {
            out.push(format!("action={a}"));
        }
        if let Some(s) = &self.service {
            out.push(format!("service={s}"));
        }
        if let Some(p) = &self.path_contains {
            out.push(format!("path={p}"));
        }
        out
    }
}

/// `hold` for `timeout`/`hang`: the duration given, or [`DEFAULT_HOLD`].
fn hold(part: &str, arg: Option<&str>) -> Result<Duration, SpecError> {
    arg.map_or(Ok(DEFAULT_HOLD), |a| {
        parse_duration(a).ok_or_else(|| SpecError::Value {
            part: part.into(),
            expected: "a duration such as 250ms, 5s or 2m",
        })
    })
}

fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..split].parse().ok()?;
    match &s[split..] {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The `=arg` of a fault that takes none is an error.
fn no_arg<T>(part: &str, arg: Option<&str>, fault: T) -> Result<T, SpecError> {
    match arg {
        None => Ok(fault),
        Some(_) => Err(SpecError::Value {
            part: part.into(),
            expected: "no `=` value for this fault",
        }),
    }
}

impl FaultText for ApiFault {
    const KINDS: &'static str =
        "500, 409, 429[=RETRY_AFTER_SECS], timeout[=DUR], hang[=DUR], reset";
    const SIDE: &'static str = "clusters";

    fn parse(part: &str, kind: &str, arg: Option<&str>) -> Option<Result<Self, SpecError>> {
        Some(match kind {
            "500" => no_arg(part, arg, Self::Internal),
            "409" => no_arg(part, arg, Self::Conflict),
            "429" => arg
                .map_or(Ok(DEFAULT_RETRY_AFTER), |a| {
                    a.parse().map_err(|_| SpecError::Value {
                        part: part.into(),
                        expected: "whole seconds for Retry-After, e.g. 429=5",
                    })
                })
                .map(|retry_after| Self::TooManyRequests { retry_after }),
            "timeout" => hold(part, arg).map(Self::Timeout),
            "hang" => hold(part, arg).map(Self::Hang),
            "reset" => no_arg(part, arg, Self::Reset),
            _ => return None,
        })
    }

    fn part(&self) -> String {
        match self {
            Self::Internal => "500".into(),
            Self::Conflict => "409".into(),
            Self::TooManyRequests { retry_after } => format!("429={retry_after}"),
            Self::Timeout(d) => format!("timeout={}", format_duration(*d)),
            Self::Hang(d) => format!("hang={}", format_duration(*d)),
            Self::Reset => "reset".into(),
        }
    }
}

impl FaultText for AwsFault {
    const KINDS: &'static str = "throttle, 500, STATUS=CODE, timeout[=DUR], reset";
    const SIDE: &'static str = "aws rules";

    fn parse(part: &str, kind: &str, arg: Option<&str>) -> Option<Result<Self, SpecError>> {
        Some(match kind {
            "throttle" => no_arg(part, arg, Self::Throttle),
            "500" if arg.is_none() => Ok(Self::Internal),
            "timeout" => hold(part, arg).map(Self::Timeout),
            "reset" => no_arg(part, arg, Self::Reset),
            _ => {
                let status: u16 = kind.parse().ok()?;
                match arg {
                    Some(code) if (400..=599).contains(&status) && !code.is_empty() => {
                        Ok(Self::Error {
                            status,
                            code: code.into(),
                            message: format!("{code} (injected by baton-sim)"),
                        })
                    }
                    _ => Err(SpecError::Value {
                        part: part.into(),
                        expected: "STATUS=CODE with a 4xx/5xx status, e.g. 400=VolumeInUse",
                    }),
                }
            }
        })
    }

    fn part(&self) -> String {
        match self {
            Self::Throttle => "throttle".into(),
            Self::Internal => "500".into(),
            Self::Error { status, code, .. } => format!("{status}={code}"),
            Self::Timeout(d) => format!("timeout={}", format_duration(*d)),
            Self::Reset => "reset".into(),
        }
    }
}

fn parse_trigger(part: &str, key: &str, value: &str) -> Option<Result<Trigger, SpecError>> {
    let count = |v: &str| v.parse::<u64>().ok().filter(|n| *n >= 1);
    let bad = |expected| SpecError::Value {
        part: part.into(),
        expected,
    };
    Some(match key {
        "rate" => value
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .map(Trigger::Rate)
            .ok_or_else(|| bad("a probability from 0 to 1, e.g. rate=0.05")),
        "nth" => count(value)
            .map(Trigger::nth)
            .ok_or_else(|| bad("a request number from 1, e.g. nth=7")),
        "burst" => value
            .split_once('+')
            .and_then(|(from, n)| Some((count(from)?, count(n)?)))
            .map(|(from, count)| Trigger::Burst { from, count })
            .ok_or_else(|| bad("FROM+COUNT, both from 1, e.g. burst=3+2")),
        _ => return None,
    })
}

fn format_trigger(t: &Trigger) -> String {
    match t {
        Trigger::Burst { from, count: 1 } => format!("nth={from}"),
        Trigger::Burst { from, count } => format!("burst={from}+{count}"),
        Trigger::Rate(p) => format!("rate={p}"),
    }
}

/// Parses the parts of a rule without its target.
fn parse_rule<M: MatchText, F: FaultText>(s: &str) -> Result<Rule<M, F>, SpecError> {
    let mut matcher = M::default();
    let mut trigger = None;
    let mut fault = None;
    for part in s.split(':').filter(|p| !p.is_empty()) {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (part, None),
        };
        let v = value.unwrap_or_default();
        if let Some(t) = parse_trigger(part, key, v) {
            if trigger.replace(t?).is_some() {
                return Err(SpecError::Repeated {
                    part: part.into(),
                    what: "trigger",
                });
            }
        } else if let Some(f) = F::parse(part, key, value) {
            if fault.replace(f?).is_some() {
                return Err(SpecError::Repeated {
                    part: part.into(),
                    what: "fault",
                });
            }
        } else if let Some(set) = matcher.set(part, key, v) {
            set?;
        } else {
            return Err(SpecError::Unknown {
                part: part.into(),
                side: F::SIDE,
                faults: F::KINDS,
                matches: M::KEYS,
            });
        }
    }
    let missing = |what, hint| SpecError::Missing {
        spec: s.into(),
        what,
        hint,
    };
    Ok(Rule {
        matcher,
        trigger: trigger.ok_or_else(|| missing("trigger", TRIGGERS))?,
        fault: fault.ok_or_else(|| missing("fault", F::KINDS))?,
    })
}

fn format_rule<M: MatchText, F: FaultText>(
    rule: &Rule<M, F>,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let mut parts = rule.matcher.parts();
    parts.push(format_trigger(&rule.trigger));
    parts.push(rule.fault.part());
    f.write_str(&parts.join(":"))
}

impl FromStr for ApiRule {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        parse_rule(s)
    }
}

impl fmt::Display for ApiRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_rule(self, f)
    }
}

impl FromStr for AwsRule {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        parse_rule(s)
    }
}

impl fmt::Display for AwsRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_rule(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> FaultSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> String {
        match s.parse::<FaultSpec>() {
            Ok(r) => panic!("{s} parsed as {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn cluster_rules_parse_into_the_api_types() {
        let cases = [
            (
                "blue:rate=0.05:500",
                ApiRule::rate(0.05, ApiFault::Internal),
            ),
            (
                "green:409:nth=7:method=patch:resource=statefulsets/scale",
                ApiRule::nth(7, ApiFault::Conflict)
                    .method(Method::PATCH)
                    .resource("statefulsets/scale"),
            ),
            (
                "blue:burst=3+2:429=5:path=/namespaces/db/",
                ApiRule::burst(3, 2, ApiFault::TooManyRequests { retry_after: 5 })
                    .path_contains("/namespaces/db/"),
            ),
            (
                "blue:nth=1:429",
                ApiRule::nth(1, ApiFault::TooManyRequests { retry_after: 1 }),
            ),
            (
                "blue:nth=1:timeout",
                ApiRule::nth(1, ApiFault::Timeout(DEFAULT_HOLD)),
            ),
            (
                "blue:nth=1:timeout=250ms",
                ApiRule::nth(1, ApiFault::Timeout(Duration::from_millis(250))),
            ),
            (
                "blue:nth=1:hang=2m",
                ApiRule::nth(1, ApiFault::Hang(Duration::from_secs(120))),
            ),
            (
                "prod-1.27:rate=1:reset",
                ApiRule::rate(1.0, ApiFault::Reset),
            ),
        ];
        for (text, rule) in cases {
            let cluster = text.split(':').next().unwrap().to_string();
            assert_eq!(spec(text), FaultSpec::Api { cluster, rule }, "{text}");
        }
    }

    #[test]
    fn aws_rules_parse_into_the_aws_types() {
        let cases = [
            (
                "aws:action=AttachVolume:nth=2:throttle",
                AwsRule::nth(2, AwsFault::Throttle).action("AttachVolume"),
            ),
            (
                "aws:service=ec2:rate=0.1:500",
                AwsRule::rate(0.1, AwsFault::Internal).service("ec2"),
            ),
            (
                "aws:path=/clusters/blue:burst=1+3:timeout=5s",
                AwsRule::burst(1, 3, AwsFault::Timeout(Duration::from_secs(5)))
                    .path_contains("/clusters/blue"),
            ),
            ("aws:nth=4:reset", AwsRule::nth(4, AwsFault::Reset)),
        ];
        for (text, rule) in cases {
            assert_eq!(spec(text), FaultSpec::Aws(rule), "{text}");
        }
        let FaultSpec::Aws(rule) = spec("aws:action=AttachVolume:nth=1:400=VolumeInUse") else {
            panic!("an AWS rule");
        };
        assert!(
            matches!(&rule.fault, AwsFault::Error { status: 400, code, .. } if code == "VolumeInUse"),
            "{rule:?}"
        );
    }

    #[test]
    fn display_prints_the_canonical_form_that_parses_back() {
        for (typed, canonical) in [
            ("blue:500:rate=0.05", "blue:rate=0.05:500"),
            (
                "green:nth=1:resource=configmaps:method=get:409",
                "green:method=GET:resource=configmaps:nth=1:409",
            ),
            ("blue:burst=2+1:429", "blue:nth=2:429=1"),
            (
                "blue:burst=2+3:timeout=1500ms",
                "blue:burst=2+3:timeout=1500ms",
            ),
            ("blue:nth=1:hang", "blue:nth=1:hang=60s"),
            (
                "aws:throttle:nth=2:action=AttachVolume",
                "aws:action=AttachVolume:nth=2:throttle",
            ),
            ("aws:rate=1:503=Unavailable", "aws:rate=1:503=Unavailable"),
        ] {
            let parsed = spec(typed);
            assert_eq!(parsed.to_string(), canonical, "{typed}");
            assert_eq!(spec(canonical), parsed, "{canonical} parses back");
        }
    }

    #[test]
    fn bad_specs_name_the_bad_part() {
        for (text, wanted) in [
            ("", "\"\" is not a target"),
            ("rate=0.05:500", "\"rate=0.05\" is not a target"),
            ("Blue:nth=1:500", "\"Blue\" is not a target"),
            (
                "blue:rate=1.5:500",
                "bad value in \"rate=1.5\": expected a probability",
            ),
            ("blue:rate:500", "bad value in \"rate\""),
            ("blue:nth=0:500", "bad value in \"nth=0\""),
            (
                "blue:burst=3:500",
                "bad value in \"burst=3\": expected FROM+COUNT",
            ),
            ("blue:nth=1:418", "unknown part \"418\": clusters take"),
            ("blue:nth=1:500:throttle", "unknown part \"throttle\""),
            (
                "blue:nth=1:500:action=AttachVolume",
                "unknown part \"action=AttachVolume\"",
            ),
            (
                "aws:nth=1:409",
                "bad value in \"409\": expected STATUS=CODE",
            ),
            (
                "aws:nth=1:500:method=GET",
                "unknown part \"method=GET\": aws rules take",
            ),
            (
                "blue:nth=1:429=soon",
                "bad value in \"429=soon\": expected whole seconds",
            ),
            (
                "blue:nth=1:timeout=5",
                "bad value in \"timeout=5\": expected a duration",
            ),
            ("blue:nth=1:reset=5s", "bad value in \"reset=5s\""),
            (
                "blue:nth=1:500:method=FETCH",
                "bad value in \"method=FETCH\"",
            ),
            ("blue:nth=1:500:path=", "bad value in \"path=\""),
            (
                "blue:nth=1:rate=0.5:500",
                "\"rate=0.5\" repeats the trigger",
            ),
            ("blue:nth=1:500:409", "\"409\" repeats the fault"),
            (
                "blue:nth=1:500:path=/a:path=/b",
                "\"path=/b\" repeats the path",
            ),
            ("blue:500", "no trigger in \"500\": add rate=P"),
            ("blue:nth=3", "no fault in \"nth=3\": add 500, 409"),
            ("aws:nth=3", "no fault in \"nth=3\": add throttle"),
        ] {
            let e = error(text);
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }

    #[test]
    fn latency_specs_name_a_target_or_all_clusters() {
        let ms = Duration::from_millis;
        for (text, target, fixed, jitter) in [
            ("20", None, 20, 0),
            ("blue=20", Some(Target::Cluster("blue".into())), 20, 0),
            ("aws=100+50", Some(Target::Aws), 100, 50),
        ] {
            let spec: LatencySpec = text.parse().unwrap();
            assert_eq!(spec.target, target, "{text}");
            assert_eq!(
                spec.latency,
                Latency {
                    fixed: ms(fixed),
                    jitter: ms(jitter)
                }
            );
            assert_eq!(spec.to_string(), text);
        }
        for bad in ["", "fast", "blue=", "blue=20+", "Blue=20"] {
            assert!(bad.parse::<LatencySpec>().is_err(), "{bad}");
        }
    }
}
