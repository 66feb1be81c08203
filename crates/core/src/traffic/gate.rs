//! The gate after each step: is green healthy and answering well enough to go on?
//!
//! Three readings, in this order: green's healthy targets (at least `min_healthy`), the
//! requests green's group served over the step so far (at least `min_requests`, else the
//! 5xx ratio means nothing: *inconclusive*), and the ratio of its targets' 5xx answers to
//! those requests (at most `max_5xx_ratio`). An inconclusive reading is handled as the
//! user chose: hold and measure again after another interval (at most `max_holds`
//! times, then it fails), pass, or fail.

use serde::{Deserialize, Serialize};

/// What to do when too few requests reached green to judge its error rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnInconclusive {
    /// Wait another interval and measure again (bounded by `max_holds`).
    Hold,
    /// Go on to the next step.
    Pass,
    /// Roll back.
    Fail,
}

/// The thresholds of every step's gate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gates {
    /// Fewest healthy targets in green's group.
    pub min_healthy: u32,
    /// Largest ratio of green's target 5xx answers to its requests (0.01 = 1 %).
    pub max_5xx_ratio: f64,
    /// Fewest requests green must have served for the ratio to count.
    pub min_requests: u64,
    /// What too few requests means.
    pub on_inconclusive: OnInconclusive,
    /// How many times a step may hold for more requests before it fails.
    pub max_holds: u32,
}

/// What was measured for green after a step's interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Targets of green's group reported healthy.
    pub healthy: u32,
    /// Targets registered in green's group.
    pub registered: u32,
    /// Requests green's group served over the window (CloudWatch `RequestCount`).
    pub requests: f64,
    /// Of them, answered 5xx by green's targets (`HTTPCode_Target_5XX_Count`).
    pub target_5xx: f64,
    /// The window measured, in milliseconds.
    pub window_ms: u64,
}

impl Reading {
    /// 5xx per request; 0 without requests.
    pub fn ratio(&self) -> f64 {
        if self.requests > 0.0 {
            self.target_5xx / self.requests
        } else {
            0.0
        }
    }

    /// `3/3 healthy, 1200 requests, 0.25 % 5xx`.
    pub fn show(&self) -> String {
        format!(
            "{}/{} healthy, {} requests, {:.2} % 5xx",
            self.healthy,
            self.registered,
            self.requests,
            self.ratio() * 100.0
        )
    }
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "kebab-case")]
pub enum Verdict {
    /// Go on.
    Pass,
    /// Too few requests: measure again after another interval.
    Hold(String),
    /// Roll back, for this reason.
    Fail(String),
}

/// Judges a reading; `holds` is how many times this step has held already.
pub fn judge(gates: &Gates, r: &Reading, holds: u32) -> Verdict {
    if r.healthy < gates.min_healthy {
        return Verdict::Fail(format!(
            "green's target group has {} healthy of {} registered targets, fewer than --min-healthy {}",
            r.healthy, r.registered, gates.min_healthy
        ));
    }
    if r.requests < gates.min_requests as f64 {
        let why = format!(
            "green served {} requests, fewer than --min-requests {} needed to judge its 5xx ratio",
            r.requests, gates.min_requests
        );
        return match gates.on_inconclusive {
            OnInconclusive::Pass => Verdict::Pass,
            OnInconclusive::Fail => Verdict::Fail(format!("inconclusive: {why}")),
            OnInconclusive::Hold if holds < gates.max_holds => Verdict::Hold(why),
            OnInconclusive::Hold => Verdict::Fail(format!(
                "still inconclusive after {holds} re-measures: {why}"
            )),
        };
    }
    if r.ratio() > gates.max_5xx_ratio {
        return Verdict::Fail(format!(
            "green's targets answered {} of {} requests with 5xx ({:.2} %), above --max-5xx-ratio {}",
            r.target_5xx,
            r.requests,
            r.ratio() * 100.0,
            gates.max_5xx_ratio
        ));
    }
    Verdict::Pass
}

/// Whether green is healthy enough to send it any traffic at all (checked before the
/// first write, so an empty or sick group never gets a first step).
pub fn ready_for_traffic(gates: &Gates, healthy: u32, registered: u32) -> Result<(), String> {
    if registered == 0 && gates.min_healthy > 0 {
        return Err(format!(
            "green's target group has no registered target (--min-healthy {}): nothing registers green's pods in it; where the AWS Load Balancer Controller does, give green a TargetGroupBinding into this group (`baton traffic bindings --from BLUE --to GREEN --apply` makes one for each of blue's), scale green's Service up, and wait until its targets pass the health check",
            gates.min_healthy
        ));
    }
    if healthy < gates.min_healthy {
        return Err(format!(
            "green's target group has {healthy} healthy of {registered} registered targets, fewer than --min-healthy {}: register green's pods (or instances) in it and wait until they pass the health check",
            gates.min_healthy
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATES: Gates = Gates {
        min_healthy: 2,
        max_5xx_ratio: 0.01,
        min_requests: 100,
        on_inconclusive: OnInconclusive::Hold,
        max_holds: 2,
    };

    #[test]
    fn an_empty_green_group_names_the_binding_to_make() {
        let e = ready_for_traffic(&GATES, 0, 0).unwrap_err();
        assert!(e.contains("baton traffic bindings"), "{e}");
        let e = ready_for_traffic(&GATES, 1, 3).unwrap_err();
        assert!(e.contains("1 healthy of 3"), "{e}");
        assert!(ready_for_traffic(&GATES, 2, 3).is_ok());
    }

    fn reading(healthy: u32, requests: f64, target_5xx: f64) -> Reading {
        Reading {
            healthy,
            registered: 3,
            requests,
            target_5xx,
            window_ms: 60_000,
        }
    }

    fn fails_with(v: &Verdict, text: &str) -> bool {
        matches!(v, Verdict::Fail(r) if r.contains(text))
    }

    #[test]
    fn passes_a_healthy_green_with_few_errors() {
        assert_eq!(judge(&GATES, &reading(3, 1000.0, 10.0), 0), Verdict::Pass);
    }

    #[test]
    fn fails_on_too_few_healthy_targets_before_looking_at_requests() {
        let v = judge(&GATES, &reading(1, 0.0, 0.0), 0);
        assert!(fails_with(&v, "1 healthy of 3"), "{v:?}");
    }

    #[test]
    fn fails_above_the_5xx_ratio() {
        let v = judge(&GATES, &reading(3, 1000.0, 11.0), 0);
        assert!(fails_with(&v, "1.10 %"), "{v:?}");
    }

    #[test]
    fn too_few_requests_hold_a_bounded_number_of_times_then_fail() {
        let quiet = reading(3, 99.0, 99.0);
        assert!(matches!(judge(&GATES, &quiet, 0), Verdict::Hold(_)));
        assert!(matches!(judge(&GATES, &quiet, 1), Verdict::Hold(_)));
        let v = judge(&GATES, &quiet, 2);
        assert!(fails_with(&v, "after 2 re-measures"), "{v:?}");
    }

    #[test]
    fn too_few_requests_pass_or_fail_when_asked() {
        let quiet = reading(3, 0.0, 0.0);
        let pass = Gates {
            on_inconclusive: OnInconclusive::Pass,
            ..GATES
        };
        let fail = Gates {
            on_inconclusive: OnInconclusive::Fail,
            ..GATES
        };
        assert_eq!(judge(&pass, &quiet, 0), Verdict::Pass);
        assert!(fails_with(&judge(&fail, &quiet, 0), "inconclusive"));
    }

    #[test]
    fn no_traffic_is_refused_up_front() {
        assert!(ready_for_traffic(&GATES, 2, 2).is_ok());
        let err = ready_for_traffic(&GATES, 0, 0).unwrap_err();
        assert!(err.contains("registers green's pods"), "{err}");
    }
}
