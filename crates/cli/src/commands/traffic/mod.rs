//! `baton traffic shift`, `status`, `rollback`: an externally managed ALB's forward
//! weights moved from blue's target group to green's. The core decides
//! (`baton_core::traffic`); `drive` carries the decisions out and journals them; this
//! module checks the input (every refusal before the first write, exit 3), prints, and
//! maps outcomes to exit codes.

pub mod bindings;
pub mod drive;
mod dry_run;
mod journal;
mod render;

use std::process::ExitCode;

use anyhow::Context;
use baton_aws::{AlbMetricDims, Aws, ForwardTarget};
use baton_core::traffic::gate::{self, Gates, OnInconclusive};
use baton_core::traffic::machine::{Event, Outcome, ShiftPlan};
use baton_core::traffic::split;

use self::drive::{from_aws, now_ms};
use self::journal::{Journal, next_record};
use super::output::confirm;
use super::progress::Progress;
use super::stateful::world::{connect_aws, open_aws};
use crate::args::{
    Inconclusive, Output, TrafficRollbackArgs, TrafficShiftArgs, TrafficStatusArgs, usage_error,
};
use crate::exit::{Refused, code};
use crate::resolved::AwsTarget;

/// `baton traffic shift`.
pub async fn shift(a: TrafficShiftArgs) -> anyhow::Result<ExitCode> {
    let aws = connect_aws(&AwsTarget::from(&a.aws)).await?;
    if a.dry_run {
        let records = if a.resume {
            Journal::read(&a.state_dir)?
        } else {
            let plan = prepare(&aws, &a).await?;
            err!("{}", render::plan(&plan));
            vec![next_record(&[], Event::Started { plan })]
        };
        dry_run::print(&aws, records).await?;
        return Ok(ExitCode::from(code::OK));
    }
    let mut journal = if a.resume {
        let mut j = Journal::open(&a.state_dir)?;
        let state = j.state()?;
        if let Some(outcome) = &state.outcome {
            errln!("the shift in {} has already ended", a.state_dir.display());
            out!("{}", render::summary(&state, a.output)?);
            return Ok(exit_for(outcome, &a.state_dir, false));
        }
        j.record(Event::Resumed)?;
        j
    } else {
        let plan = prepare(&aws, &a).await?;
        err!("{}", render::plan(&plan));
        confirm(
            a.yes,
            &format!(
                "Shift traffic to {} in {} steps?",
                split::group_name(&plan.split.to_tg),
                plan.split.steps.len()
            ),
        )?;
        Journal::create(&a.state_dir, Event::Started { plan })?
    };
    run(&aws, &mut journal, a.output, false).await
}

/// `baton traffic rollback`.
pub async fn rollback(a: TrafficRollbackArgs) -> anyhow::Result<ExitCode> {
    // Undoing a shift: every call's patient retries, no quick verdict up front.
    let aws = open_aws(&AwsTarget::from(&a.aws)).await?;
    let reason = "asked for by `baton traffic rollback`";
    if a.dry_run {
        let mut records = Journal::read(&a.state_dir)?;
        let asked = Event::RollbackAsked {
            reason: reason.to_owned(),
            force: a.force,
        };
        records.push(next_record(&records, asked));
        dry_run::print(&aws, records).await?;
        return Ok(ExitCode::from(code::OK));
    }
    let mut journal = Journal::open(&a.state_dir)?;
    let state = journal.state()?;
    if let Some(Outcome::RolledBack(_)) = &state.outcome {
        errln!(
            "the shift in {} is already rolled back",
            a.state_dir.display()
        );
        out!("{}", render::summary(&state, a.output)?);
        return Ok(ExitCode::from(code::OK));
    }
    confirm(
        a.yes,
        &format!(
            "Put back the weights from before the shift ({})?",
            state.plan.split.original.show()
        ),
    )?;
    journal.record(Event::Resumed)?;
    journal.record(Event::RollbackAsked {
        reason: reason.to_owned(),
        force: a.force,
    })?;
    run(&aws, &mut journal, a.output, true).await
}

/// `baton traffic status`.
pub async fn status(a: TrafficStatusArgs) -> anyhow::Result<ExitCode> {
    let aws = connect_aws(&AwsTarget::from(&a.aws)).await?;
    let listener = aws
        .describe_listener(&a.listener)
        .await
        .with_context(|| format!("failed to read listener {}", a.listener))?;
    let target = match &a.rule {
        Some(rule) => ForwardTarget::Rule(rule.clone()),
        None => ForwardTarget::ListenerDefault(a.listener.clone()),
    };
    let forward = from_aws(&aws.forward(&target).await?);
    let now = now_ms();
    let since = now.saturating_sub(u64::try_from(a.window.as_millis()).unwrap_or(u64::MAX));
    let mut groups = Vec::new();
    for g in &forward.groups {
        let reading = match AlbMetricDims::from_arns(&listener.load_balancer_arn, &g.arn) {
            Some(dims) => Some(drive::measure(&aws, &dims, &g.arn, since, now).await?),
            None => None,
        };
        groups.push(render::GroupView {
            name: split::group_name(&g.arn).to_owned(),
            arn: g.arn.clone(),
            weight: g.weight,
            percent: forward.percent_of(&g.arn),
            reading,
        });
    }
    let shift = match &a.state_dir {
        Some(dir) => Some(Journal::open(dir)?.state()?),
        None => None,
    };
    let view = render::StatusView {
        listener: a.listener.clone(),
        rule: a.rule.clone(),
        load_balancer: listener.load_balancer_arn,
        window_seconds: a.window.as_secs(),
        sticky_seconds: forward.sticky_seconds(),
        groups,
        shift: shift.as_ref().map(render::ShiftView::of),
    };
    out!("{}", render::status(&view, a.output)?);
    Ok(ExitCode::from(code::OK))
}

async fn run(
    aws: &Aws,
    journal: &mut Journal,
    output: Output,
    rolling_back: bool,
) -> anyhow::Result<ExitCode> {
    let progress = Progress::new();
    let line = progress.app("traffic");
    let result = drive::drive(aws, journal, &line).await;
    progress.done();
    let dir = journal.dir.display().to_string();
    let outcome = result.with_context(|| {
        format!(
            "the shift stopped; its journal is in {dir}: continue with `baton traffic shift --resume --state-dir {dir}` or put the original weights back with `baton traffic rollback --state-dir {dir}`"
        )
    })?;
    let state = journal.state()?;
    out!("{}", render::summary(&state, output)?);
    Ok(exit_for(&outcome, &journal.dir, rolling_back))
}

/// The exit code of an outcome, with its explanation on stderr.
fn exit_for(outcome: &Outcome, dir: &std::path::Path, rolling_back: bool) -> ExitCode {
    let dir = dir.display();
    match outcome {
        Outcome::Completed => ExitCode::from(code::OK),
        Outcome::RolledBack(_) if rolling_back => ExitCode::from(code::OK),
        Outcome::RolledBack(reason) => {
            errln!(
                "error: the shift was rolled back: {reason}\nthe original weights are back on the ALB"
            );
            ExitCode::from(code::ROLLED_BACK)
        }
        Outcome::Stopped(reason) => {
            errln!(
                "error: the shift stopped: {reason}\nbaton left those weights as it found them; look at who changed them, then `baton traffic rollback --state-dir {dir}` (add --force to overwrite them)"
            );
            ExitCode::from(code::FAILED)
        }
    }
}

/// Every check before the first write; a problem with the input is [`Refused`].
async fn prepare(aws: &Aws, a: &TrafficShiftArgs) -> anyhow::Result<ShiftPlan> {
    let (Some(listener_arn), Some(from), Some(to)) = (&a.listener, &a.from_tg, &a.to_tg) else {
        return Err(usage_error(
            &["traffic", "shift"],
            "--listener, --from-tg and --to-tg are required without --resume",
        )
        .into());
    };
    let listener = match aws.describe_listener(listener_arn).await {
        Ok(l) => l,
        Err(e) if e.is_not_found() => {
            return Err(Refused(format!(
                "failed to find listener {listener_arn}: check --listener (aws elbv2 describe-listeners) and --region ({e})"
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let target = match &a.rule {
        Some(rule) => {
            let rules = aws.describe_rules(listener_arn).await?;
            if !rules.iter().any(|r| &r.arn == rule) {
                return Err(Refused(format!(
                    "failed to find rule {rule} on listener {listener_arn}: check --rule (aws elbv2 describe-rules --listener-arn …)"
                ))
                .into());
            }
            ForwardTarget::Rule(rule.clone())
        }
        None => ForwardTarget::ListenerDefault(listener_arn.clone()),
    };
    let current = match aws.forward(&target).await {
        Ok(c) => from_aws(&c),
        Err(e @ baton_aws::Error::Unexpected { .. }) => {
            return Err(Refused(format!("failed to {e}")).into());
        }
        Err(e) => return Err(e.into()),
    };
    match aws
        .describe_target_groups(None, std::slice::from_ref(to))
        .await
    {
        Ok(groups) if !groups.is_empty() => {}
        Ok(_) => {
            return Err(Refused(format!(
                "failed to find --to-tg {to}: AWS lists no such target group"
            ))
            .into());
        }
        Err(e) if e.is_not_found() => {
            return Err(Refused(format!(
                "failed to find --to-tg {to}: check the ARN (aws elbv2 describe-target-groups) ({e})"
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    let split = split::plan(&current, from, to, &a.steps)
        .map_err(|e| Refused(format!("failed to plan the shift: {e}")))?;
    let gates = Gates {
        min_healthy: a.min_healthy,
        max_5xx_ratio: a.max_5xx_ratio,
        min_requests: a.min_requests,
        on_inconclusive: match a.on_inconclusive {
            Inconclusive::Hold => OnInconclusive::Hold,
            Inconclusive::Pass => OnInconclusive::Pass,
            Inconclusive::Fail => OnInconclusive::Fail,
        },
        max_holds: a.max_holds,
    };
    let health = aws.describe_target_health(to).await?;
    let healthy = health.iter().filter(|t| t.is_healthy()).count();
    gate::ready_for_traffic(
        &gates,
        u32::try_from(healthy).unwrap_or(u32::MAX),
        u32::try_from(health.len()).unwrap_or(u32::MAX),
    )
    .map_err(|e| Refused(format!("failed to start the shift: {e}")))?;
    if AlbMetricDims::from_arns(&listener.load_balancer_arn, to).is_none() {
        return Err(Refused(format!(
            "failed to name green's CloudWatch metrics: {} is not an application load balancer's listener",
            listener_arn
        ))
        .into());
    }
    Ok(ShiftPlan {
        listener_arn: listener_arn.clone(),
        rule_arn: a.rule.clone(),
        load_balancer_arn: listener.load_balancer_arn,
        split,
        interval_ms: u64::try_from(a.interval.as_millis()).unwrap_or(u64::MAX),
        gates,
    })
}
