//! The shift as a state machine over its journal. It decides; the command does.
//!
//! A shift's progress lives only in its journal: [`Event`]s appended (and fsync'd) before
//! and after every write of the weights, after every gate, and at the end. [`fold`]
//! turns them back into a [`ShiftState`]; [`next`] takes that state and the weights read
//! from the ALB *now* and returns the one next thing to do. A crash at any point leaves
//! a journal from which the same decisions continue (`--resume`) or undo (`rollback`):
//!
//! - a write recorded as begun but not done is looked for on the ALB: found, it is
//!   confirmed; the old weights still there, it is made again; anything else is someone
//!   else's change;
//! - weights that are neither what baton last wrote nor what it was writing are never
//!   overwritten: the shift stops and says so (a rollback may be told to `force`);
//! - a step's interval runs from the time its weights were written, so a resumed run
//!   waits only for what is left of it.

use serde::{Deserialize, Serialize};

use super::gate::{Gates, Reading, Verdict};
use super::split::{Forward, Split};

/// Everything a shift was started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftPlan {
    /// The listener.
    pub listener_arn: String,
    /// The rule whose forward action moves; `None`: the listener's default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    /// The listener's load balancer (a CloudWatch dimension of green's metrics).
    pub load_balancer_arn: String,
    /// The weights of every step.
    pub split: Split,
    /// How long each step runs before its gate, in milliseconds.
    pub interval_ms: u64,
    /// The gate's thresholds.
    pub gates: Gates,
}

/// Which weights are on the ALB, as baton put them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Position {
    /// The action as it was before the shift.
    Original,
    /// Green's group added at weight 0.
    Prepared,
    /// A step's weights (index into the plan's steps).
    Step(usize),
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the journal (from 1).
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A shift started with this plan (always the first record).
    Started {
        /// The plan.
        plan: ShiftPlan,
    },
    /// A run continued the shift (`--resume` or `rollback`).
    Resumed,
    /// Rolling back was asked for by the user.
    RollbackAsked {
        /// Why.
        reason: String,
        /// Write the original weights even over someone else's change.
        force: bool,
    },
    /// Weights are about to be written.
    Writing {
        /// Which.
        to: Position,
        /// What baton expects on the ALB until then.
        expected: Forward,
        /// What it writes.
        new: Forward,
    },
    /// The weights were written (or found already written after a crash).
    Written {
        /// Which.
        to: Position,
        /// The action as AWS reported it afterwards.
        forward: Forward,
        /// When, in milliseconds since the Unix epoch: the step's interval starts here.
        at_ms: u64,
    },
    /// A step's gate was measured and judged.
    Measured {
        /// The step.
        step: usize,
        /// What was read.
        reading: Reading,
        /// The gate's answer.
        verdict: Verdict,
    },
    /// Every step passed its gate.
    Completed,
    /// The original weights are back.
    RolledBack {
        /// Why the shift was rolled back.
        reason: String,
    },
    /// The shift stopped without touching the weights (someone else changed them).
    Stopped {
        /// What was found.
        reason: String,
    },
}

/// How a shift ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step passed its gate.
    Completed,
    /// Back at the original weights, for this reason.
    RolledBack(String),
    /// Stopped, weights untouched, for this reason.
    Stopped(String),
}

/// One gate, for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// The step.
    pub step: usize,
    /// Green's percentage at that step.
    pub percent: u32,
    /// What was read.
    pub reading: Reading,
    /// The answer.
    pub verdict: Verdict,
}

/// A shift's state, folded from its journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftState {
    /// The plan.
    pub plan: ShiftPlan,
    /// Which weights baton last put on the ALB.
    pub position: Position,
    /// Those weights as AWS reported them.
    pub on_alb: Forward,
    /// When they were written (ms since the epoch).
    pub written_at_ms: Option<u64>,
    /// A write begun but not recorded as done: (which, expected, new).
    pub in_flight: Option<(Position, Forward, Forward)>,
    /// Re-measures of the current step for want of requests.
    pub holds: u32,
    /// Whether the current step's gate passed.
    pub passed: bool,
    /// Rolling back, for this reason.
    pub rollback: Option<String>,
    /// The rollback may overwrite someone else's change.
    pub force: bool,
    /// How it ended, if it has.
    pub outcome: Option<Outcome>,
    /// Every gate so far.
    pub gates: Vec<GateRecord>,
    /// Runs (the first and each resume).
    pub runs: u32,
}

impl ShiftState {
    /// Green's percentage now (of blue's and green's traffic), as baton last wrote it.
    pub fn percent(&self) -> u32 {
        match self.position {
            Position::Step(i) => self.plan.split.steps.get(i).map_or(0, |s| s.percent),
            Position::Original | Position::Prepared => 0,
        }
    }
}

/// Why a journal cannot be read as a shift.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// No `started` record first.
    #[error("read the shift: its journal does not begin with a `started` record")]
    NotStarted,
    /// A step index beyond the plan.
    #[error("read the shift: record {seq} names step {step}, but the plan has {steps}")]
    NoSuchStep {
        /// The record.
        seq: u64,
        /// The step.
        step: usize,
        /// Steps in the plan.
        steps: usize,
    },
}

/// Folds a journal, in order, into the shift's state.
pub fn fold<'a>(records: impl IntoIterator<Item = &'a Record>) -> Result<ShiftState, JournalError> {
    let mut records = records.into_iter();
    let Some(Record {
        event: Event::Started { plan },
        ..
    }) = records.next()
    else {
        return Err(JournalError::NotStarted);
    };
    let mut s = ShiftState {
        on_alb: plan.split.original.clone(),
        plan: plan.clone(),
        position: Position::Original,
        written_at_ms: None,
        in_flight: None,
        holds: 0,
        passed: false,
        rollback: None,
        force: false,
        outcome: None,
        gates: Vec::new(),
        runs: 1,
    };
    let steps = s.plan.split.steps.len();
    for r in records {
        let check = |p: &Position| match p {
            Position::Step(step) if *step >= steps => Err(JournalError::NoSuchStep {
                seq: r.seq,
                step: *step,
                steps,
            }),
            _ => Ok(()),
        };
        match &r.event {
            Event::Started { .. } => return Err(JournalError::NotStarted),
            Event::Resumed => s.runs += 1,
            Event::RollbackAsked { reason, force } => {
                s.rollback = Some(reason.clone());
                s.force = *force;
                s.outcome = None;
            }
            Event::Writing { to, expected, new } => {
                check(to)?;
                s.in_flight = Some((*to, expected.clone(), new.clone()));
            }
            Event::Written { to, forward, at_ms } => {
                check(to)?;
                s.in_flight = None;
                s.position = *to;
                s.on_alb = forward.clone();
                s.written_at_ms = Some(*at_ms);
                s.holds = 0;
                s.passed = false;
                // A rollback forced over an outside change is done with it once written.
                if *to == Position::Original {
                    s.force = false;
                }
            }
            Event::Measured {
                step,
                reading,
                verdict,
            } => {
                check(&Position::Step(*step))?;
                match verdict {
                    Verdict::Pass => s.passed = true,
                    Verdict::Hold(_) => s.holds += 1,
                    Verdict::Fail(reason) => {
                        s.rollback.get_or_insert_with(|| reason.clone());
                    }
                }
                s.gates.push(GateRecord {
                    step: *step,
                    percent: s.plan.split.steps[*step].percent,
                    reading: *reading,
                    verdict: verdict.clone(),
                });
            }
            Event::Completed => s.outcome = Some(Outcome::Completed),
            Event::RolledBack { reason } => {
                s.outcome = Some(Outcome::RolledBack(reason.clone()));
                s.rollback = None;
            }
            Event::Stopped { reason } => s.outcome = Some(Outcome::Stopped(reason.clone())),
        }
    }
    Ok(s)
}

/// The one next thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Record `Writing`, write `new` (refusing if the ALB no longer shows `expected`),
    /// record `Written`.
    Write {
        /// Which weights.
        to: Position,
        /// What must be on the ALB now.
        expected: Forward,
        /// What to write.
        new: Forward,
    },
    /// The write begun before a crash is on the ALB: record it as `Written` now.
    Confirm {
        /// Which weights.
        to: Position,
        /// The action as read.
        forward: Forward,
    },
    /// Wait until this time (ms since the epoch), then decide again.
    Wait {
        /// Until when.
        until_ms: u64,
        /// The step running.
        step: usize,
    },
    /// Measure green over `[since_ms, now)`, judge it, record `Measured`.
    Measure {
        /// The step.
        step: usize,
        /// When its weights were written.
        since_ms: u64,
    },
    /// Record the end.
    Finish(Outcome),
    /// Someone else changed the weights: record `Stopped` and touch nothing.
    Stop(String),
    /// The journal already records the end.
    Over(Outcome),
}

/// Decides from the shift's state and the action as read now (`observed`) at `now_ms`.
pub fn next(s: &ShiftState, observed: &Forward, now_ms: u64) -> Decision {
    if let Some(o) = &s.outcome {
        return Decision::Over(o.clone());
    }
    let original = &s.plan.split.original;
    if let Some((to, expected, new)) = &s.in_flight {
        if observed.same_as(new) {
            return Decision::Confirm {
                to: *to,
                forward: observed.clone(),
            };
        }
        if observed.same_as(expected) {
            return Decision::Write {
                to: *to,
                expected: expected.clone(),
                new: new.clone(),
            };
        }
        if s.rollback.is_some() && s.force {
            return rollback_over(observed, original);
        }
        return Decision::Stop(format!(
            "the weights were changed by someone else: baton was writing [{}] over [{}] and found [{}]",
            new.show(),
            expected.show(),
            observed.show()
        ));
    }
    if !observed.same_as(&s.on_alb) {
        if s.rollback.is_some() && s.force {
            return rollback_over(observed, original);
        }
        return Decision::Stop(format!(
            "the weights were changed by someone else: baton last wrote [{}] and found [{}]",
            s.on_alb.show(),
            observed.show()
        ));
    }
    if let Some(reason) = &s.rollback {
        if observed.same_as(original) {
            return Decision::Finish(Outcome::RolledBack(reason.clone()));
        }
        return rollback_over(observed, original);
    }
    let steps = &s.plan.split.steps;
    let write = |to: Position, new: &Forward| Decision::Write {
        to,
        expected: s.on_alb.clone(),
        new: new.clone(),
    };
    match s.position {
        Position::Original => match &s.plan.split.prepare {
            Some(prepared) => write(Position::Prepared, prepared),
            None => write(Position::Step(0), &steps[0].forward),
        },
        Position::Prepared => write(Position::Step(0), &steps[0].forward),
        Position::Step(i) if s.passed => match steps.get(i + 1) {
            Some(step) => write(Position::Step(i + 1), &step.forward),
            None => Decision::Finish(Outcome::Completed),
        },
        Position::Step(i) => {
            let since = s.written_at_ms.unwrap_or(now_ms);
            let due =
                since.saturating_add(s.plan.interval_ms.saturating_mul(u64::from(s.holds) + 1));
            if now_ms < due {
                Decision::Wait {
                    until_ms: due,
                    step: i,
                }
            } else {
                Decision::Measure {
                    step: i,
                    since_ms: since,
                }
            }
        }
    }
}

fn rollback_over(observed: &Forward, original: &Forward) -> Decision {
    Decision::Write {
        to: Position::Original,
        expected: observed.clone(),
        new: original.clone(),
    }
}
