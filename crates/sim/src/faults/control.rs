//! Fault rules changed while the estate runs, for an SRE trying baton against a flaky API
//! without a restart: `/debug/faults` on each cluster's API server (same bearer token as
//! the API) and on the AWS fault proxy. `GET` lists the rules in their text form, `POST`
//! adds the rule in the body (`method=GET:nth=1:500`, without a target), `DELETE` removes
//! them all. Like `/debug/requests` (the request log, on both too), these requests are
//! neither delayed, faulted nor logged.

use std::fmt::Display;
use std::str::FromStr;

use http::Method;
use serde_json::{Value, json};

use super::{KnobSet, Logged, Rule, SpecError};

/// Where the rules are served.
pub(crate) const DEBUG_FAULTS_PATH: &str = "/debug/faults";

/// Where the request log is served (`GET`): on each cluster's API server and on the AWS
/// fault proxy, `{"kind": "RequestLog", "dropped": N, "items": […]}`, the newest records
/// oldest first and how many older ones the bounded log let go.
pub(crate) const DEBUG_REQUESTS_PATH: &str = "/debug/requests";

/// Why a control request was refused: an HTTP status and a message.
pub(crate) type Refusal = (u16, String);

/// Carries out one control request on `knobs`: the status and the rules document
/// (`{"kind": "FaultRules", "items": ["nth=1:500", …]}`) after it.
pub(crate) fn control<M, F, R>(
    knobs: &KnobSet<M, F, R>,
    method: &Method,
    body: &[u8],
) -> Result<(u16, Value), Refusal>
where
    M: Clone,
    F: Clone,
    R: Logged,
    Rule<M, F>: FromStr<Err = SpecError> + Display,
{
    let status = match *method {
        Method::GET => 200,
        Method::POST => {
            let text =
                std::str::from_utf8(body).map_err(|_| (400, "the rule is not UTF-8".into()))?;
            let rule = text
                .trim()
                .parse()
                .map_err(|e: SpecError| (400, format!("failed to parse the rule: {e}")))?;
            knobs.inject(rule);
            201
        }
        Method::DELETE => {
            knobs.clear_faults();
            200
        }
        _ => {
            return Err((
                405,
                format!("{DEBUG_FAULTS_PATH} takes GET, POST or DELETE"),
            ));
        }
    };
    let items: Vec<String> = knobs.rules().iter().map(ToString::to_string).collect();
    Ok((status, json!({ "kind": "FaultRules", "items": items })))
}
