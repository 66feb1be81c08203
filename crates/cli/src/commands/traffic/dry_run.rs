//! `traffic shift --dry-run` and `traffic rollback --dry-run`: the AWS requests of the
//! writes the shift would make next, each built by `baton-aws` exactly as the run builds
//! it and printed as it would be sent; nothing is written, the journal included.
//!
//! The shift's decisions are followed in memory from its records (a new shift: only its
//! plan) and the action read now: each write is assumed to land as sent, and a write
//! found already made after a crash is confirmed, until the next step's gate (a wait or
//! a measurement, which a dry run cannot foresee) or the end. So a new shift prints the
//! write that adds green at weight 0, when the action lacks green, and the first step's.

use baton_aws::Aws;
use baton_core::traffic::machine::{Decision, Event, Outcome, Position, Record, fold, next};

use super::drive::{self, from_aws, now_ms, to_aws};
use super::journal::next_record;

/// Prints each request on stdout and what the shift does after them on stderr.
pub async fn print(aws: &Aws, mut records: Vec<Record>) -> anyhow::Result<()> {
    let mut state = fold(&records)?;
    let plan = state.plan.clone();
    let target = drive::target(&plan);
    let steps = plan.split.steps.len();
    let read = aws.forward(&target).await?;
    let mut observed = from_aws(&read);
    let mut writes = 0;
    // Every decision but a write, a confirmation or an ending waits for a gate: at most
    // the original, prepared and one step's write, a confirmation and a rollback.
    for _ in 0..8 {
        let push = |records: &mut Vec<Record>, event: Event| {
            records.push(next_record(records, event));
        };
        match next(&state, &observed, now_ms()) {
            Decision::Write { to, expected, new } => {
                // The first write is checked against the action as read now, as the run
                // checks it; the later ones assume the earlier landed as sent.
                let expect = (writes == 0).then_some(&read);
                let req = aws.forward_change(&target, expect, &to_aws(&new)).await?;
                outln!("{req}");
                writes += 1;
                errln!(
                    "  request {writes}: {} ({})",
                    drive::describe(&plan, to, steps),
                    new.show()
                );
                push(
                    &mut records,
                    Event::Writing {
                        to,
                        expected,
                        new: new.clone(),
                    },
                );
                push(
                    &mut records,
                    Event::Written {
                        to,
                        forward: new.clone(),
                        at_ms: now_ms(),
                    },
                );
                observed = new;
            }
            Decision::Confirm { to, forward } => {
                errln!(
                    "  ({} is on the ALB already, written before a crash: recorded, not sent again)",
                    drive::describe(&plan, to, steps)
                );
                push(
                    &mut records,
                    Event::Written {
                        to,
                        forward,
                        at_ms: now_ms(),
                    },
                );
            }
            Decision::Wait { step, .. } | Decision::Measure { step, .. } => {
                errln!(
                    "  then {} holds until its gate; what is written after it depends on the gates",
                    drive::describe(&plan, Position::Step(step), steps)
                );
                break;
            }
            Decision::Finish(outcome) | Decision::Over(outcome) => {
                let end = match outcome {
                    Outcome::Completed => "completed".to_owned(),
                    Outcome::RolledBack(reason) => format!("rolled back ({reason})"),
                    Outcome::Stopped(reason) => format!("stopped ({reason})"),
                };
                errln!("  then the shift ends: {end}");
                break;
            }
            Decision::Stop(reason) => {
                errln!("  the shift would stop without writing: {reason}");
                break;
            }
        }
        state = fold(&records)?;
    }
    errln!("dry run: {writes} request(s), nothing was changed");
    Ok(())
}
