//! `baton demo`: the whole blue→green story, unattended, on the emulated estate (moto and
//! the emulator's two clusters, started in this process as `baton sim up` starts them).
//!
//! The story is a list of [`Step`]s in the seed's order ([`steps::ORDER`]); a small runner
//! shows each one's progress, records it in `demo.json` and stops at the first failure.
//! Every step that is a baton command runs that command (`child.rs`), so the demo shows
//! and exercises what a user would type; what is not baton's job (rolling out green's
//! stateless apps, registering targets, clients sending requests) is done beside it in
//! `stateless.rs`. The end is checked from the world, not from what the steps said
//! (`verify.rs`), and summed up in a table and in `report.html`.

mod child;
mod stateless;
mod steps;
mod summary;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use self::steps::{Demo, Outcome, Step};
use crate::args::DemoArgs;
use crate::commands::report::record::{self, StepRecord, StepStatus};
use crate::commands::show;
use crate::exit::code;

/// What a previous demo leaves in its state dir; replaced by the next run there.
const OWN: &[&str] = &[
    record::FILE,
    "sim",
    "network",
    "traffic",
    "migration",
    "plan.json",
    "preflight.json",
    "backup",
    "report.html",
    "retire",
    "retire-plan.json",
    "retire.json",
    "retire-subnets.json",
    "retire-plan-green.json",
    "retire-green.json",
    "grants-teal",
    "identity-teal",
    "bindings-teal",
    "traffic-teal",
    "migration-teal",
];

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = prepare_dir(&args.state_dir)?;
    let started = Instant::now();
    let mut demo = Demo::new(&args, &dir);
    let order = steps::order(args.cycles);
    outln!(
        "baton demo: scenario {:?}, state in {} — {} steps, each shown as it runs",
        args.scenario,
        dir.display(),
        order.len()
    );
    let mut failed = false;
    let interrupted = tokio::select! {
        () = run_steps(&mut demo, &order, &mut failed) => false,
        r = tokio::signal::ctrl_c() => { r.context("failed to listen for Ctrl-C")?; true }
    };
    if interrupted {
        outln!("\nbaton demo: interrupted (Ctrl-C) during the step above");
        failed = true;
    }
    demo.record.ended = Some(jiff::Timestamp::now().to_string());
    demo.save();
    let report = dir.join("report.html");
    if let Err(e) = crate::commands::report::write(&dir, &report) {
        outln!("report not written: {e:#}");
    }
    summary::print(&dir, &demo.record);
    let ok = !failed && demo.record.passed();
    let last = format!(
        "baton demo {} in {}. Report: {} (open it in a browser; `baton report --state-dir {}` redraws it).",
        if ok {
            "passed: every invariant held"
        } else {
            "FAILED"
        },
        show::secs(started.elapsed().as_secs_f64()),
        report.display(),
        dir.display()
    );
    outln!("\n{}", show::wrap(&last, 0, "  ", show::width()));
    if args.keep
        && !interrupted
        && let Some(env) = demo.env_file()
    {
        outln!(
            "\nKept: moto, blue and green stay up until you press Ctrl-C here. In another shell:\n  source {}    # KUBECONFIG (contexts blue and green) and AWS_ENDPOINT_URL, dummy credentials\n  kubectl --context green get sts,pvc,pv -A\n  kubectl --context blue get sts,pvc,pv -A\n  aws ec2 describe-volumes --query 'Volumes[].[VolumeId,State,Tags]'\n  baton status --state-dir {}",
            env.display(),
            dir.join("migration").display()
        );
        if let Err(e) = tokio::signal::ctrl_c().await {
            outln!("failed to listen for Ctrl-C ({e}); stopping now");
        }
    }
    if demo.is_up() {
        outln!("\nstopping the estate (moto, blue, green)…");
        demo.shutdown().await;
        outln!(
            "stopped; the demo's files stay in {} (the clusters and moto are gone)",
            dir.display()
        );
    }
    Ok(ExitCode::from(if ok { code::OK } else { code::FAILED }))
}

/// Runs the steps in order until one fails.
async fn run_steps(demo: &mut Demo, order: &[Step], failed: &mut bool) {
    for (i, step) in order.iter().enumerate() {
        outln!(
            "\n[{}/{}] {} — {}",
            i + 1,
            order.len(),
            step.name(),
            step.about()
        );
        let began = jiff::Timestamp::now();
        let clock = Instant::now();
        let (status, text) = match demo.run(*step).await {
            Ok(Outcome::Done(s)) => (StepStatus::Done, s),
            Ok(Outcome::Skipped(s)) => (StepStatus::Skipped, s),
            Err(e) => (StepStatus::Failed, format!("{e:#}")),
        };
        let mark = match status {
            StepStatus::Done => "✓",
            StepStatus::Skipped => "SKIPPED:",
            StepStatus::Failed => "✗ FAILED:",
        };
        let line = format!(
            "{mark} {text} ({})",
            show::secs(clock.elapsed().as_secs_f64())
        );
        outln!("  {}", show::wrap(&line, 2, "    ", show::width()));
        demo.record.steps.push(StepRecord {
            name: step.name().to_string(),
            status,
            started: began.to_string(),
            ended: jiff::Timestamp::now().to_string(),
            summary: text,
            commands: demo.take_commands(),
        });
        demo.save();
        if status == StepStatus::Failed {
            *failed = true;
            return;
        }
    }
}

/// Creates the state dir, clearing what an earlier demo left there; a dir that holds
/// something else is refused rather than mixed with.
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create the state dir {}", dir.display()))?;
    let dir = std::path::absolute(dir).context("failed to resolve the state dir")?;
    let entries: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let foreign: Vec<&String> = entries
        .iter()
        .filter(|e| !OWN.contains(&e.as_str()))
        .collect();
    if !foreign.is_empty() || (!entries.is_empty() && !dir.join(record::FILE).exists()) {
        return Err(crate::exit::Refused(format!(
            "run the demo in {}: it holds files that are not a demo's ({}); choose another --state-dir",
            dir.display(),
            entries.join(", ")
        ))
        .into());
    }
    for e in &entries {
        let p = dir.join(e);
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.with_context(|| format!("failed to clear the last demo's {}", p.display()))?;
    }
    Ok(dir)
}
