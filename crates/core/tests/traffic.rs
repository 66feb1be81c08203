//! The traffic shift's machine walked on a simulated ALB: a full shift, a failed gate and
//! its rollback, holds for want of requests, someone else's change, and a crash after
//! every single effect (journal line or write) followed by a resume or a rollback.

use baton_core::traffic::gate::{Gates, OnInconclusive, Reading, judge};
use baton_core::traffic::machine::{
    Decision, Event, Outcome, Position, Record, ShiftPlan, fold, next,
};
use baton_core::traffic::split::{self, Forward, GroupWeight};

const BLUE: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/blue/1";
const GREEN: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/green/2";
const INTERVAL: u64 = 60_000;

fn plain_blue() -> Forward {
    Forward {
        groups: vec![GroupWeight {
            arn: BLUE.to_owned(),
            weight: 1,
        }],
        stickiness: None,
    }
}

fn plan(steps: &[u32], on_inconclusive: OnInconclusive) -> ShiftPlan {
    ShiftPlan {
        listener_arn: "listener".to_owned(),
        rule_arn: None,
        load_balancer_arn: "lb".to_owned(),
        split: split::plan(&plain_blue(), BLUE, GREEN, steps).unwrap(),
        interval_ms: INTERVAL,
        gates: Gates {
            min_healthy: 1,
            max_5xx_ratio: 0.01,
            min_requests: 100,
            on_inconclusive,
            max_holds: 2,
        },
    }
}

fn healthy(requests: f64, target_5xx: f64) -> Reading {
    Reading {
        healthy: 3,
        registered: 3,
        requests,
        target_5xx,
        window_ms: INTERVAL,
    }
}

/// An ALB, a clock and a journal; effects can be cut short to model a crash.
struct World {
    alb: Forward,
    now: u64,
    journal: Vec<Record>,
    /// Every action the ALB held, in order.
    history: Vec<Forward>,
    /// Effects left before the process "dies" (None: never).
    budget: Option<usize>,
}

impl World {
    fn new(plan: ShiftPlan) -> Self {
        let mut w = Self {
            alb: plan.split.original.clone(),
            now: 1_000_000,
            journal: Vec::new(),
            history: vec![plan.split.original.clone()],
            budget: None,
        };
        w.record(Event::Started { plan });
        w
    }

    /// One effect; false when the process died before it.
    fn effect(&mut self) -> bool {
        match &mut self.budget {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }

    fn record(&mut self, event: Event) -> bool {
        if !self.effect() {
            return false;
        }
        self.journal.push(Record {
            seq: self.journal.len() as u64 + 1,
            at: String::new(),
            event,
        });
        true
    }

    fn write(&mut self, f: &Forward) -> bool {
        if !self.effect() {
            return false;
        }
        self.alb = f.clone();
        self.history.push(f.clone());
        true
    }

    /// Runs decisions until the shift ends or the process dies; the outcome if it ended.
    fn run(&mut self, reading: &dyn Fn(usize) -> Reading) -> Option<Outcome> {
        for _ in 0..1000 {
            let state = fold(&self.journal).unwrap();
            match next(&state, &self.alb, self.now) {
                Decision::Write { to, expected, new } => {
                    assert!(
                        self.alb.same_as(&expected),
                        "writes only over what it expects"
                    );
                    if !self.record(Event::Writing {
                        to,
                        expected,
                        new: new.clone(),
                    }) || !self.write(&new)
                        || !self.record(Event::Written {
                            to,
                            forward: new,
                            at_ms: self.now,
                        })
                    {
                        return None;
                    }
                }
                Decision::Confirm { to, forward } => {
                    if !self.record(Event::Written {
                        to,
                        forward,
                        at_ms: self.now,
                    }) {
                        return None;
                    }
                }
                Decision::Wait { until_ms, .. } => {
                    assert!(until_ms > self.now);
                    self.now = until_ms;
                }
                Decision::Measure { step, since_ms } => {
                    assert!(
                        self.now - since_ms >= INTERVAL,
                        "the whole interval is measured"
                    );
                    let r = reading(step);
                    let verdict = judge(&state.plan.gates, &r, state.holds);
                    if !self.record(Event::Measured {
                        step,
                        reading: r,
                        verdict,
                    }) {
                        return None;
                    }
                }
                Decision::Finish(o) => {
                    let event = match &o {
                        Outcome::Completed => Event::Completed,
                        Outcome::RolledBack(reason) => Event::RolledBack {
                            reason: reason.clone(),
                        },
                        Outcome::Stopped(reason) => Event::Stopped {
                            reason: reason.clone(),
                        },
                    };
                    return self.record(event).then_some(o);
                }
                Decision::Stop(reason) => {
                    self.record(Event::Stopped {
                        reason: reason.clone(),
                    });
                    return Some(Outcome::Stopped(reason));
                }
                Decision::Over(o) => return Some(o),
            }
        }
        panic!("the shift did not end");
    }

    fn green_percent(&self) -> f64 {
        self.alb.percent_of(GREEN)
    }
}

#[test]
fn a_full_shift_walks_every_step_after_its_gate() {
    let mut w = World::new(plan(&[10, 25, 50, 100], OnInconclusive::Hold));
    assert_eq!(w.run(&|_| healthy(1000.0, 1.0)), Some(Outcome::Completed));
    let greens: Vec<u32> = w
        .history
        .iter()
        .map(|f| f.weight_of(GREEN).unwrap_or(0))
        .collect();
    assert_eq!(
        greens,
        [0, 0, 10, 25, 50, 100],
        "prepare at 0, then the steps"
    );
    assert_eq!(w.green_percent(), 100.0);
    let state = fold(&w.journal).unwrap();
    assert_eq!(state.gates.len(), 4);
    assert_eq!(state.position, Position::Step(3));
    // Each step ran its full interval: 4 intervals from start to end.
    assert_eq!(w.now, 1_000_000 + 4 * INTERVAL);
}

#[test]
fn a_failed_gate_rolls_back_to_the_original_action() {
    let mut w = World::new(plan(&[10, 50, 100], OnInconclusive::Hold));
    let out = w.run(&|step| {
        if step == 1 {
            healthy(1000.0, 50.0)
        } else {
            healthy(1000.0, 0.0)
        }
    });
    let Some(Outcome::RolledBack(reason)) = out else {
        panic!("{out:?}")
    };
    assert!(reason.contains("5xx"), "{reason}");
    assert_eq!(
        w.alb,
        plain_blue(),
        "green's group is gone again, blue at 1"
    );
    assert_eq!(
        w.history.iter().filter_map(|f| f.weight_of(GREEN)).max(),
        Some(50)
    );
}

#[test]
fn too_few_requests_hold_then_fail_after_the_bound() {
    let mut w = World::new(plan(&[10, 100], OnInconclusive::Hold));
    let out = w.run(&|_| healthy(5.0, 0.0));
    assert!(
        matches!(&out, Some(Outcome::RolledBack(r)) if r.contains("after 2 re-measures")),
        "{out:?}"
    );
    // Measured three times (two holds, then the failure), an interval apart.
    assert_eq!(fold(&w.journal).unwrap().gates.len(), 3);
    assert_eq!(w.alb, plain_blue());

    let mut w = World::new(plan(&[10, 100], OnInconclusive::Pass));
    assert_eq!(w.run(&|_| healthy(5.0, 0.0)), Some(Outcome::Completed));
}

#[test]
fn someone_elses_change_stops_the_shift_without_touching_it() {
    let mut w = World::new(plan(&[10, 50, 100], OnInconclusive::Hold));
    // Run until the first step is written, then an operator sets 70/30 by hand.
    w.budget = Some(7); // writing/write/written ×2 (prepare, step 10), its gate
    assert_eq!(w.run(&|_| healthy(1000.0, 0.0)), None);
    assert_eq!(w.alb.weight_of(GREEN), Some(10));
    let theirs = Forward {
        groups: vec![
            GroupWeight {
                arn: BLUE.to_owned(),
                weight: 70,
            },
            GroupWeight {
                arn: GREEN.to_owned(),
                weight: 30,
            },
        ],
        stickiness: None,
    };
    w.alb = theirs.clone();
    w.budget = None;
    let out = w.run(&|_| healthy(1000.0, 0.0));
    assert!(
        matches!(&out, Some(Outcome::Stopped(r)) if r.contains("changed by someone else")),
        "{out:?}"
    );
    assert_eq!(w.alb, theirs, "their weights are kept");

    // A rollback is refused too, unless forced.
    w.record(Event::RollbackAsked {
        reason: "asked".to_owned(),
        force: false,
    });
    assert!(matches!(
        w.run(&|_| healthy(1000.0, 0.0)),
        Some(Outcome::Stopped(_))
    ));
    assert_eq!(w.alb, theirs);
    w.record(Event::RollbackAsked {
        reason: "asked".to_owned(),
        force: true,
    });
    assert!(matches!(
        w.run(&|_| healthy(1000.0, 0.0)),
        Some(Outcome::RolledBack(_))
    ));
    assert_eq!(w.alb, plain_blue());
}

#[test]
fn a_crash_after_any_effect_resumes_to_the_end() {
    let full = {
        let mut w = World::new(plan(&[10, 50, 100], OnInconclusive::Hold));
        w.run(&|_| healthy(1000.0, 0.0));
        w
    };
    let effects = full.journal.len() + full.history.len();
    for k in 0..effects {
        let mut w = World::new(plan(&[10, 50, 100], OnInconclusive::Hold));
        w.budget = Some(k);
        if w.run(&|_| healthy(1000.0, 0.0)).is_some() {
            continue; // finished within k effects
        }
        w.budget = None;
        w.record(Event::Resumed);
        assert_eq!(
            w.run(&|_| healthy(1000.0, 0.0)),
            Some(Outcome::Completed),
            "crash after {k}"
        );
        assert_eq!(w.alb, full.alb, "crash after {k}");
        // No weights other than the plan's were ever written.
        let planned: Vec<&Forward> = full.history.iter().collect();
        assert!(
            w.history.iter().all(|f| planned.contains(&f)),
            "crash after {k}"
        );
    }
}

#[test]
fn a_crash_after_any_effect_rolls_back_from_the_record() {
    let mut k = 0;
    loop {
        let mut w = World::new(plan(&[10, 50, 100], OnInconclusive::Hold));
        w.budget = Some(k);
        if w.run(&|_| healthy(1000.0, 0.0)).is_some() {
            break;
        }
        w.budget = None;
        w.record(Event::RollbackAsked {
            reason: "operator".to_owned(),
            force: false,
        });
        let out = w.run(&|_| healthy(1000.0, 0.0));
        assert_eq!(
            out,
            Some(Outcome::RolledBack("operator".to_owned())),
            "crash after {k}"
        );
        assert_eq!(w.alb, plain_blue(), "crash after {k}");
        k += 1;
    }
    assert!(k > 10, "crash points exercised: {k}");
}

#[test]
fn a_resumed_step_waits_only_for_what_is_left_of_its_interval() {
    let mut w = World::new(plan(&[10, 100], OnInconclusive::Hold));
    w.budget = Some(6); // through `written` of step 10
    w.run(&|_| healthy(1000.0, 0.0));
    let written = fold(&w.journal).unwrap().written_at_ms.unwrap();
    let state = fold(&w.journal).unwrap();
    let later = written + INTERVAL / 3;
    assert_eq!(
        next(&state, &w.alb, later),
        Decision::Wait {
            until_ms: written + INTERVAL,
            step: 0
        }
    );
}
