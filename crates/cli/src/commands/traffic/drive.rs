//! Carries out a shift's decisions: reads the action, asks `core::traffic::machine::next`
//! what to do, does it through `baton-aws`, and journals it — until the shift ends.
//! Every write is journaled before it is made and after it landed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use baton_aws::{
    AlbMetricDims, Aws, ForwardConfig, ForwardTarget, Stickiness, WeightedTargetGroup,
};
use baton_core::traffic::duration;
use baton_core::traffic::gate::{self, Reading, Verdict};
use baton_core::traffic::machine::{Decision, Event, Outcome, Position, ShiftPlan, next};
use baton_core::traffic::split::{self, Forward, GroupWeight};

use super::journal::Journal;
use crate::commands::crash::crash_point;
use crate::commands::progress::AppLine;

/// baton's view of an AWS forward config.
pub fn from_aws(c: &ForwardConfig) -> Forward {
    Forward {
        groups: c
            .target_groups
            .iter()
            .map(|g| GroupWeight {
                arn: g.arn.clone(),
                weight: g.weight,
            })
            .collect(),
        stickiness: c.stickiness.map(|s| split::Stickiness {
            enabled: s.enabled,
            duration_seconds: s.duration_seconds,
        }),
    }
}

/// The AWS forward config of baton's view.
pub fn to_aws(f: &Forward) -> ForwardConfig {
    ForwardConfig {
        target_groups: f
            .groups
            .iter()
            .map(|g| WeightedTargetGroup {
                arn: g.arn.clone(),
                weight: g.weight,
            })
            .collect(),
        stickiness: f.stickiness.map(|s| Stickiness {
            enabled: s.enabled,
            duration_seconds: s.duration_seconds,
        }),
    }
}

/// Where the plan's forward action lives.
pub fn target(plan: &ShiftPlan) -> ForwardTarget {
    match &plan.rule_arn {
        Some(rule) => ForwardTarget::Rule(rule.clone()),
        None => ForwardTarget::ListenerDefault(plan.listener_arn.clone()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Green's readings over `[since, now)`: healthy and registered targets, requests and
/// 5xx from CloudWatch.
pub async fn measure(
    aws: &Aws,
    dims: &AlbMetricDims,
    target_group: &str,
    since_ms: u64,
    now: u64,
) -> anyhow::Result<Reading> {
    let health = aws.describe_target_health(target_group).await?;
    // CloudWatch (and moto) compare whole seconds and refuse an empty window: the
    // window is widened to whole seconds, at least one.
    let start = since_ms / 1_000 * 1_000;
    let end = now.div_ceil(1_000).max(start / 1_000 + 1) * 1_000;
    let stats = aws
        .target_group_request_stats(dims, at(start), at(end))
        .await?;
    Ok(Reading {
        healthy: u32::try_from(health.iter().filter(|t| t.is_healthy()).count()).unwrap_or(0),
        registered: u32::try_from(health.len()).unwrap_or(0),
        requests: stats.requests,
        target_5xx: stats.target_5xx,
        window_ms: now.saturating_sub(since_ms),
    })
}

/// Runs the shift in `journal` until it ends; its outcome.
pub async fn drive(aws: &Aws, journal: &mut Journal, line: &AppLine) -> anyhow::Result<Outcome> {
    let plan = journal.state()?.plan;
    let target = target(&plan);
    let dims = AlbMetricDims::from_arns(&plan.load_balancer_arn, &plan.split.to_tg)
        .context("failed to name green's CloudWatch metrics: the load balancer or target group ARN is not an ALB's")?;
    let steps = plan.split.steps.len();
    loop {
        let state = journal.state()?;
        let read = aws.forward(&target).await?;
        let observed = from_aws(&read);
        match next(&state, &observed, now_ms()) {
            Decision::Write { to, expected, new } => {
                line.phase(&describe(&plan, to, steps), Some(&new.show()));
                journal.record(Event::Writing {
                    to,
                    expected,
                    new: new.clone(),
                })?;
                // The read just made is what AWS must still hold: the narrowest check
                // ELBv2 allows (it has no conditional writes). `--dry-run` prints this
                // same request.
                match aws.set_forward(&target, Some(&read), &to_aws(&new)).await {
                    Ok(written) => {
                        crash_point();
                        journal.record(Event::Written {
                            to,
                            forward: from_aws(&written),
                            at_ms: now_ms(),
                        })?;
                    }
                    // Changed between the read and the write: the next read sees it.
                    Err(baton_aws::Error::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Decision::Confirm { to, forward } => {
                line.phase(
                    &describe(&plan, to, steps),
                    Some("found written before the crash"),
                );
                journal.record(Event::Written {
                    to,
                    forward,
                    at_ms: now_ms(),
                })?;
            }
            Decision::Wait { until_ms, step } => {
                // The action is read again when the wait is over, not during it.
                let what = describe(&plan, Position::Step(step), steps);
                loop {
                    let left = until_ms.saturating_sub(now_ms());
                    if left == 0 {
                        break;
                    }
                    let shown = Duration::from_millis(left.div_ceil(1_000) * 1_000);
                    line.step(&what, &format!("gate in {}", duration::show(shown)));
                    tokio::time::sleep(Duration::from_millis(left.min(1_000))).await;
                }
            }
            Decision::Measure { step, since_ms } => {
                let reading = measure(aws, &dims, &plan.split.to_tg, since_ms, now_ms()).await?;
                let verdict = gate::judge(&plan.gates, &reading, state.holds);
                let word = match &verdict {
                    Verdict::Pass => "pass".to_owned(),
                    Verdict::Hold(why) => format!("hold: {why}; measuring again"),
                    Verdict::Fail(why) => format!("FAIL: {why}; rolling back"),
                };
                line.phase(
                    &format!("gate of step {}/{steps}", step + 1),
                    Some(&format!("{word} ({})", reading.show())),
                );
                journal.record(Event::Measured {
                    step,
                    reading,
                    verdict,
                })?;
            }
            Decision::Finish(outcome) => {
                journal.record(match &outcome {
                    Outcome::Completed => Event::Completed,
                    Outcome::RolledBack(reason) => Event::RolledBack {
                        reason: reason.clone(),
                    },
                    Outcome::Stopped(reason) => Event::Stopped {
                        reason: reason.clone(),
                    },
                })?;
                return Ok(outcome);
            }
            Decision::Stop(reason) => {
                journal.record(Event::Stopped {
                    reason: reason.clone(),
                })?;
                return Ok(Outcome::Stopped(reason));
            }
            Decision::Over(outcome) => return Ok(outcome),
        }
    }
}

/// Which weights a write puts on the ALB, in words.
pub fn describe(plan: &ShiftPlan, to: Position, steps: usize) -> String {
    match to {
        Position::Original => "original weights".to_owned(),
        Position::Prepared => "green's group added at 0".to_owned(),
        Position::Step(i) => format!(
            "step {}/{steps}: green {}%",
            i + 1,
            plan.split.steps[i].percent
        ),
    }
}
