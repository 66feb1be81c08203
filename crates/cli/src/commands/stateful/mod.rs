//! `baton plan`, `migrate`, `status`, `rollback`, `commit`: the stateful move's commands.
//! Each validates everything before its first mutation; the runner does the rest.

use backon::Retryable;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use baton_core::journal::{Event, Summary};
use baton_core::machine::{AppPhase, Decision, Mode, next};
use baton_core::plan::{AppPlan, Plan, Severity};
use baton_core::quantity::format_bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

pub mod dry_run;
pub mod engine;
pub mod runner;
pub mod state;
pub mod world;

use engine::{Engine, Live};
use runner::Outcome;
use state::{RunInfo, StateDir};

use super::files::write_json;
use super::output::{confirm, emit_plan, render, table};
use super::report::record::{self, Finding};
use crate::args::{
    CommitArgs, MigrateArgs, Output, PlanArgs, RollbackArgs, StatusArgs, usage_error,
};
use crate::exit::{Refused, code};
use crate::resolved::{AwsTarget, Clusters, Pace, Selection};

/// `baton plan`: exits 3 when a problem blocks the move (the table names each).
pub async fn plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let clusters = Clusters::new(&a.clusters, &["plan"])?;
    let selection = Selection::from(&a.selection);
    let (blue, green, aws) = world::connect(&clusters, &AwsTarget::from(&a.aws)).await?;
    let plan = world::make_plan(&blue, &green, &aws, &selection).await?;
    emit_plan(&plan, plan_table(&plan), a.output, a.out.as_deref(), "plan")?;
    let blocking = plan.blocking().len();
    if blocking > 0 {
        errln!(
            "refused: {blocking} blocking problem(s) (see Problems; each names its fix); `baton migrate` would change nothing"
        );
        return Ok(ExitCode::from(code::REFUSED));
    }
    Ok(ExitCode::from(code::OK))
}

fn plan_table(plan: &Plan) -> String {
    let mut out = format!(
        "Plan: {} ({}) → {} ({}), {}, {}\n\n",
        plan.from,
        plan.from_version,
        plan.to,
        plan.to_version,
        crate::commands::show::plural(plan.apps.len(), "app"),
        crate::commands::show::plural(
            plan.apps.iter().map(|a| a.volumes.len()).sum::<usize>(),
            "volume"
        )
    );
    let apps: Vec<Vec<String>> = plan
        .apps
        .iter()
        .map(|a| {
            let green = if a.green.migrated {
                "migrated".to_string()
            } else if !a.green.exists {
                "missing".into()
            } else if a.green.replicas == 0 && a.green.templates_match && a.green.zones_ready {
                "ready".into()
            } else {
                "not ready".into()
            };
            let blocking = a
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Blocking)
                .count();
            let warnings = a.problems.len() - blocking;
            let kind = match a.kind {
                baton_core::world::WorkloadKind::Claim => "claim",
                baton_core::world::WorkloadKind::Deployment => "deployment",
                baton_core::world::WorkloadKind::StatefulSet => "statefulset",
            };
            vec![
                a.key(),
                kind.into(),
                a.replicas.to_string(),
                a.volumes.len().to_string(),
                green,
                if blocking > 0 {
                    "BLOCKED".into()
                } else {
                    "ok".into()
                },
                format!(
                    "{blocking} blocking, {}",
                    crate::commands::show::plural(warnings, "warning")
                ),
            ]
        })
        .collect();
    out += &table(
        &[
            "APP", "KIND", "REPLICAS", "VOLUMES", "GREEN", "MOVE", "PROBLEMS",
        ],
        &apps,
    );
    if !plan.groups.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .groups
            .iter()
            .map(|g| vec![g.name.clone(), g.order(), g.found_by.clone()])
            .collect();
        out += "\nGroups (each moves in one window: blue's members stop last-first, green's start first-last, each once the one before is Ready):\n";
        out += &table(&["GROUP", "GREEN STARTS", "FOUND BY"], &rows);
    }
    if !plan.unselected_claims.is_empty() {
        out += &format!(
            "\nNot selected: {} that no workload mounts ({}); they move on their own with --standalone-claims, or --claim NS/NAME each\n",
            crate::commands::show::plural(plan.unselected_claims.len(), "bound EBS claim"),
            plan.unselected_claims.join(", ")
        );
    }
    let vols: Vec<Vec<String>> = plan
        .apps
        .iter()
        .flat_map(|a| {
            a.volumes.iter().map(move |v| {
                vec![
                    a.key(),
                    v.claim.clone(),
                    v.pv.clone(),
                    v.volume_id.clone(),
                    v.az.clone(),
                    format_bytes(v.capacity_bytes),
                    v.volume_type.clone(),
                    if v.encrypted { "yes" } else { "no" }.into(),
                    format!("{:?}", v.source)
                        .to_lowercase()
                        .replace("intree", "in-tree"),
                    v.reclaim_policy.to_string(),
                ]
            })
        })
        .collect();
    if !vols.is_empty() {
        out += "\n";
        out += &table(
            &[
                "APP",
                "CLAIM",
                "PV",
                "VOLUME",
                "AZ",
                "SIZE",
                "TYPE",
                "ENCRYPTED",
                "SOURCE",
                "RECLAIM",
            ],
            &vols,
        );
    }
    let problems: Vec<_> = plan
        .problems
        .iter()
        .map(|p| ("-".to_string(), p))
        .chain(
            plan.apps
                .iter()
                .flat_map(|a| a.problems.iter().map(move |p| (a.key(), p))),
        )
        .collect();
    if !problems.is_empty() {
        // Problems that say the same (the reclaim policy of nine PVs) are one entry,
        // ×N, with the objects listed.
        let findings: Vec<Finding> = problems
            .iter()
            .map(|(app, p)| Finding {
                step: String::new(),
                severity: match p.severity {
                    Severity::Blocking => "BLOCKING",
                    Severity::Warning => "warning",
                }
                .into(),
                object: format!("{} ({app})", p.object),
                message: format!("[{}] {}", p.code, p.message),
                fix: Some(p.fix.clone()),
            })
            .collect();
        out += "\nProblems:\n";
        out += &record::text(&record::group(&findings), false, None);
    }
    out
}

/// `baton migrate`.
pub async fn migrate(a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let pace = Pace::new(&a.run, a.max_down);
    let aws_target = AwsTarget::from(&a.aws);
    if a.resume {
        let dir = a.state_dir.clone().expect("clap requires --state-dir");
        let (state, plan, engine) = reopen(&dir, &aws_target, pace.wait_timeout).await?;
        let outcomes = start(
            &engine,
            &state,
            &plan.apps,
            &plan.groups,
            Mode::Migrate,
            parallel(pace),
            true,
        )
        .await?;
        return finish(&outcomes, Mode::Migrate, a.output, &dir);
    }
    let Some(clusters) = &a.clusters else {
        return Err(usage_error(
            &["migrate"],
            "--from and --to (blue's and green's kubeconfig contexts) are required, unless --resume continues a migration in --state-dir",
        )
        .into());
    };
    let clusters = Clusters::new(clusters, &["migrate"])?;
    let selection = Selection::from(&a.selection);
    // The saved plan is local input: read it before connecting to anything.
    let saved: Option<Plan> = match &a.plan {
        Some(file) => Some(super::files::read_json(file).map_err(|e| {
            Refused(format!(
                "failed to read the plan {}: {e:#}; make one with `baton plan --from … --to … --out {}`",
                file.display(),
                file.display()
            ))
        })?),
        None => None,
    };
    let (from, to) = (clusters.from.clone(), clusters.to.clone());
    let (blue, green, aws) = world::connect(&clusters, &aws_target).await?;
    let plan = world::make_plan(&blue, &green, &aws, &selection).await?;
    if let (Some(saved), Some(file)) = (&saved, &a.plan) {
        let diffs = saved.differences(&plan);
        if !diffs.is_empty() {
            return Err(Refused(format!(
                "the plan in {} is stale, the world changed since it was made:\n  {}\nmake a new one with `baton plan --out {}`, review it, and pass that",
                file.display(),
                diffs.join("\n  "),
                file.display()
            ))
            .into());
        }
    }
    let blocking = plan.blocking();
    if !blocking.is_empty() {
        err!("{}", plan_table(&plan));
        errln!(
            "\nrefused: {} blocking problem(s); nothing was changed",
            blocking.len()
        );
        return Ok(ExitCode::from(code::REFUSED));
    }
    // What moves: apps with volumes, and groups' members (a proxy without volumes stops
    // and starts with its database).
    let apps: Vec<_> = plan
        .apps
        .iter()
        .filter(|a| !a.volumes.is_empty() || plan.group_of(&a.key()).is_some())
        .cloned()
        .collect();
    if apps.is_empty() {
        errln!("nothing to move: no selected StatefulSet or Deployment has volumes");
        return Ok(ExitCode::from(code::OK));
    }
    // Unique per run, not per second: green claims are "ours" by this id, and a run that
    // began the migration trusts that no snapshot carries it yet.
    let now = jiff::Timestamp::now();
    let migration = format!(
        "{from}-to-{to}-{}-{:x}{:08x}",
        now.as_second(),
        std::process::id(),
        now.subsec_nanosecond()
    );
    let engine = Engine {
        blue,
        green,
        aws,
        migration: migration.clone(),
        new_migration: true,
        convert_to_csi: selection.options.convert_to_csi,
        wait_timeout: pace.wait_timeout,
    };
    if a.dry_run {
        dry_run::print(&engine, &apps, &plan.groups, Mode::Migrate).await?;
        return Ok(ExitCode::from(code::OK));
    }
    confirm(
        a.yes,
        &format!(
            "Move {} ({}) from {from} to {to}?",
            crate::commands::show::plural(apps.len(), "app"),
            crate::commands::show::plural(
                apps.iter().map(|a| a.volumes.len()).sum::<usize>(),
                "volume"
            )
        ),
    )?;
    let dir = a
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".baton").join(format!("{from}-to-{to}")));
    let info = RunInfo {
        migration: migration.clone(),
        from: from.clone(),
        to: to.clone(),
        kubeconfig: clusters
            .kubeconfig
            .clone()
            .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from)),
        convert_to_csi: selection.options.convert_to_csi,
        allow_multi_attach: selection.options.allow_multi_attach,
    };
    let saved = Plan {
        apps: apps.clone(),
        ..plan
    };
    let state = StateDir::create(&dir, &info, &saved)?;
    // One GET per app, several at once: with hundreds of apps, one after another would
    // cost as many round trips before the first app starts.
    let blue = &engine.blue;
    let sets: Vec<_> = futures::stream::iter(&apps)
        .map(|app| async move {
            let set = blue.workload(app.kind, &app.namespace, &app.name).await;
            set.map(|s| (app, s))
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    for (app, set) in sets {
        if let Some(s) = set {
            let kind = app.kind.as_str().to_lowercase();
            state.save_manifest(&from, &kind, &app.namespace, &app.name, &s)?;
        }
    }
    errln!("migration {migration}: state in {}", dir.display());
    let outcomes = start(
        &engine,
        &state,
        &apps,
        &saved.groups,
        Mode::Migrate,
        parallel(pace),
        false,
    )
    .await?;
    finish(&outcomes, Mode::Migrate, a.output, &dir)
}

/// Journals the run's start and runs every app in `mode`.
async fn start(
    engine: &Engine,
    state: &StateDir,
    apps: &[AppPlan],
    groups: &[baton_core::plan::GroupPlan],
    mode: Mode,
    parallel: runner::Parallel,
    resumed: bool,
) -> anyhow::Result<Vec<Outcome>> {
    state.record(
        None,
        Event::RunStarted {
            mode,
            migration: engine.migration.clone(),
            resumed,
        },
    )?;
    let live = Live { engine, state };
    Ok(runner::run(&live, state, apps, groups, mode, parallel).await)
}

fn parallel(pace: Pace) -> runner::Parallel {
    runner::Parallel {
        apps: pace.apps,
        down: pace.down,
    }
}

/// Prints how each app ended. Exits 0 when every app got where `mode` goes, 3 when some
/// stopped and the run changed nothing at all (a refusal), 1 when some stopped after a
/// change.
fn finish(
    outcomes: &[Outcome],
    mode: Mode,
    output: Output,
    dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    match output {
        Output::Table => {
            let rows: Vec<Vec<String>> = outcomes
                .iter()
                .map(|o| {
                    vec![
                        o.app.clone(),
                        o.phase.name().into(),
                        o.mutations.to_string(),
                        o.window_seconds
                            .map(crate::commands::show::secs)
                            .unwrap_or_else(|| "-".into()),
                        o.problem.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out!(
                "{}",
                table(&["APP", "PHASE", "MUTATIONS", "WINDOW", "PROBLEM"], &rows)
            );
        }
        o => out!("{}", render(&outcomes, o)?),
    }
    let bad = outcomes
        .iter()
        .filter(|o| o.phase == AppPhase::Blocked)
        .count();
    if bad > 0 {
        let dir = dir.display();
        let again = match mode {
            Mode::Migrate => {
                format!("`baton migrate --resume --state-dir {dir}` (or `baton rollback`)")
            }
            Mode::Rollback => format!("`baton rollback --state-dir {dir}` again"),
            Mode::Commit { .. } => format!("`baton commit --state-dir {dir}` again"),
        };
        errln!("{bad} app(s) stopped safely; fix what the PROBLEM column says, then {again}");
        if outcomes.iter().all(|o| o.mutations == 0) {
            errln!("this run changed nothing");
            return Ok(ExitCode::from(code::REFUSED));
        }
        return Ok(ExitCode::from(code::FAILED));
    }
    Ok(ExitCode::from(code::OK))
}

/// `baton status`.
pub async fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let state = StateDir::open(&a.state_dir)?;
    let info = state.info()?;
    let plan = state.plan()?;
    let summary = Summary::fold(&state.records()?);
    #[derive(Serialize)]
    struct Status<'a> {
        migration: &'a str,
        from: &'a str,
        to: &'a str,
        runs: u32,
        apps: Vec<AppStatus>,
    }
    #[derive(Serialize)]
    struct AppStatus {
        app: String,
        phase: Option<AppPhase>,
        problem: Option<String>,
        window_opened: Option<String>,
        window_closed: Option<String>,
        volumes: Vec<VolumeStatus>,
    }
    #[derive(Serialize)]
    struct VolumeStatus {
        claim: String,
        pv: String,
        volume_id: String,
        step: String,
    }
    let apps: Vec<AppStatus> = plan
        .apps
        .iter()
        .map(|app| {
            let s = summary.apps.get(&app.key()).cloned().unwrap_or_default();
            AppStatus {
                app: app.key(),
                phase: s.phase,
                problem: s.problem.clone(),
                window_opened: s.window_opened.clone(),
                window_closed: s.window_closed.clone(),
                volumes: app
                    .volumes
                    .iter()
                    .map(|v| VolumeStatus {
                        claim: v.claim.clone(),
                        pv: v.pv.clone(),
                        volume_id: v.volume_id.clone(),
                        step: s
                            .volumes
                            .get(&v.claim)
                            .cloned()
                            .unwrap_or_else(|| "planned".into()),
                    })
                    .collect(),
            }
        })
        .collect();
    let st = Status {
        migration: &info.migration,
        from: &info.from,
        to: &info.to,
        runs: summary.runs,
        apps,
    };
    match a.output {
        Output::Table => {
            outln!(
                "Migration {} ({} → {}), {} run(s)\n",
                st.migration,
                st.from,
                st.to,
                st.runs
            );
            let rows: Vec<Vec<String>> = st
                .apps
                .iter()
                .flat_map(|a| {
                    a.volumes.iter().map(move |v| {
                        vec![
                            a.app.clone(),
                            a.phase.map(AppPhase::name).unwrap_or("planned").into(),
                            v.claim.clone(),
                            v.volume_id.clone(),
                            v.step.clone(),
                            a.problem.clone().unwrap_or_default(),
                        ]
                    })
                })
                .collect();
            out!(
                "{}",
                table(
                    &["APP", "PHASE", "CLAIM", "VOLUME", "STEP", "PROBLEM"],
                    &rows
                )
            );
        }
        o => out!("{}", render(&st, o)?),
    }
    Ok(ExitCode::from(code::OK))
}

/// The migration in `dir`, its plan, and an engine on the clusters it names.
async fn reopen(
    dir: &std::path::Path,
    aws: &AwsTarget,
    wait: Duration,
) -> anyhow::Result<(StateDir, Plan, Engine)> {
    let state = StateDir::open(dir)?;
    let info = state.info()?;
    let plan = state.plan()?;
    let clusters = Clusters {
        from: info.from.clone(),
        to: info.to.clone(),
        kubeconfig: info.kubeconfig.clone(),
    };
    let (blue, green, aws) = world::reconnect(&clusters, aws).await?;
    Ok((
        state,
        plan,
        Engine {
            blue,
            green,
            aws,
            migration: info.migration,
            new_migration: false,
            convert_to_csi: info.convert_to_csi,
            wait_timeout: wait,
        },
    ))
}

/// `baton rollback`.
pub async fn rollback(a: RollbackArgs) -> anyhow::Result<ExitCode> {
    let pace = Pace::new(&a.run, None);
    let (state, plan, engine) =
        reopen(&a.state_dir, &AwsTarget::from(&a.aws), pace.wait_timeout).await?;
    let apps: Vec<_> = match &a.app {
        Some(key) => {
            let found: Vec<_> = plan
                .apps
                .iter()
                .filter(|p| &p.key() == key)
                .cloned()
                .collect();
            if found.is_empty() {
                return Err(Refused(format!(
                    "failed to find --app {key} in the migration in {}: pass one of its apps ({}), or leave --app out to roll back all",
                    a.state_dir.display(),
                    plan.apps
                        .iter()
                        .map(|p| p.key())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into());
            }
            // A group rolls back whole.
            match plan.group_of(key) {
                Some(g) => {
                    errln!(
                        "{key} is in group {}: rolling back its members {}",
                        g.name,
                        g.order()
                    );
                    plan.apps
                        .iter()
                        .filter(|p| g.members.contains(&p.key()))
                        .cloned()
                        .collect()
                }
                None => found,
            }
        }
        None => plan.apps.clone(),
    };
    if a.dry_run {
        dry_run::print(&engine, &apps, &plan.groups, Mode::Rollback).await?;
        let keys: Vec<String> = apps.iter().map(AppPlan::key).collect();
        let restores = shared_fence_restores(&engine, &plan, |k| keys.iter().any(|x| x == k));
        let restores = restores.await?;
        if !restores.is_empty() {
            outln!("# fences the apps share (once every one is back)");
            for (_, m) in restores {
                outln!("{:<6} {m}", engine.blue.context);
            }
        }
        return Ok(ExitCode::from(code::OK));
    }
    confirm(
        a.yes,
        &format!(
            "Return {} to {}?",
            crate::commands::show::plural(apps.len(), "app"),
            engine.blue.context
        ),
    )?;
    let outcomes = start(
        &engine,
        &state,
        &apps,
        &plan.groups,
        Mode::Rollback,
        runner::Parallel::of(pace.apps),
        false,
    )
    .await?;
    let code = finish(&outcomes, Mode::Rollback, a.output, &a.state_dir)?;
    resume_shared_fences(&engine, &state, &plan, &outcomes).await?;
    Ok(code)
}

/// The fences several apps share whose every app is in `back` (rolled back, or in a dry
/// run about to be), each with the restore to send: before that, a shared fence still
/// fences the others. One paused by someone else, or put back already, has none.
async fn shared_fence_restores(
    engine: &Engine,
    plan: &Plan,
    back: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<(baton_core::machine::Action, baton_kube::request::Mutation)>> {
    use baton_core::fences::FenceSeen;
    use baton_core::machine::Action;
    let mut shared: Vec<&baton_core::fences::Fence> = plan
        .apps
        .iter()
        .flat_map(|a| a.fences.iter().filter(|f| f.shared))
        .collect();
    shared.sort();
    shared.dedup_by_key(|f| f.key());
    let mut out = Vec::new();
    for f in shared {
        let left: Vec<String> = plan
            .apps
            .iter()
            .filter(|a| a.fences.iter().any(|x| x.key() == f.key()))
            .map(AppPlan::key)
            .filter(|k| !back(k))
            .collect();
        if !left.is_empty() {
            errln!(
                "{f} stays paused: it also fences {}, not rolled back",
                left.join(", ")
            );
            continue;
        }
        let Some(obj) = engine.blue.fence(f).await? else {
            continue;
        };
        if let FenceSeen {
            active: false,
            original: Some(original),
        } = FenceSeen::of(f.kind, &obj)
        {
            let m = baton_kube::fences::restore(f, &original);
            out.push((
                Action::ResumeFence {
                    fence: f.clone(),
                    original,
                },
                m,
            ));
        }
    }
    Ok(out)
}

/// Puts back the shared fences of the apps rolled back, journaled as the apps' steps are.
async fn resume_shared_fences(
    engine: &Engine,
    state: &StateDir,
    plan: &Plan,
    outcomes: &[Outcome],
) -> anyhow::Result<()> {
    use baton_core::journal::Event;
    let rolled_back = |key: &str| {
        outcomes
            .iter()
            .any(|o| o.app == key && o.phase == AppPhase::RolledBack)
    };
    for (action, m) in shared_fence_restores(engine, plan, rolled_back).await? {
        state.record(
            None,
            Event::Began {
                action: action.clone(),
            },
        )?;
        // An idempotent PATCH (the recorded original): a transient failure is worth
        // another try rather than ending the rollback after every app went back.
        let send = || engine.blue.send(&m);
        send.retry(
            backon::ExponentialBuilder::default()
                .with_min_delay(std::time::Duration::from_millis(200))
                .with_max_times(6),
        )
        .when(|e: &baton_kube::KubeError| e.is_transient())
        .await?;
        errln!("{}", action.describe());
        state.record(
            None,
            Event::Done {
                action,
                result: None,
            },
        )?;
    }
    Ok(())
}

/// `baton commit`.
pub async fn commit(a: CommitArgs) -> anyhow::Result<ExitCode> {
    let pace = Pace::new(&a.run, None);
    let (state, plan, engine) =
        reopen(&a.state_dir, &AwsTarget::from(&a.aws), pace.wait_timeout).await?;
    let mode = Mode::Commit {
        restore_reclaim_policy: a.restore_reclaim_policy,
    };
    // Refuse before the first deletion unless every app is on green.
    for app in &plan.apps {
        let obs = engine.observe(app).await?;
        if let Decision::Blocked { reason } = next(mode, app, &obs) {
            return Err(Refused(format!(
                "failed to commit the migration in {}: {reason}",
                a.state_dir.display()
            ))
            .into());
        }
    }
    if a.dry_run {
        dry_run::print(&engine, &plan.apps, &plan.groups, mode).await?;
        return Ok(ExitCode::from(code::OK));
    }
    confirm(
        a.yes,
        &format!(
            "Delete blue's claims and PVs of {} in {} (the EBS volumes stay)?",
            crate::commands::show::plural(plan.apps.len(), "app"),
            engine.blue.context
        ),
    )?;
    let mut outcomes = start(
        &engine,
        &state,
        &plan.apps,
        &plan.groups,
        mode,
        runner::Parallel::of(pace.apps),
        false,
    )
    .await?;
    for o in &mut outcomes {
        if o.phase == AppPhase::Committed
            && let Some(app) = plan.apps.iter().find(|p| p.key() == o.app)
        {
            o.fences_kept = app.fences.iter().map(ToString::to_string).collect();
        }
    }
    let _ = write_json(&a.state_dir.join("committed.json"), &outcomes);
    let code = finish(&outcomes, mode, a.output, &a.state_dir)?;
    if a.output == Output::Table {
        print_kept_fences(&plan.apps, &outcomes);
    }
    Ok(code)
}

/// Commit's list of what stays paused in blue, with the change to make where each
/// object comes from.
fn print_kept_fences(apps: &[AppPlan], outcomes: &[Outcome]) {
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .flat_map(|o| {
            let app = apps.iter().find(|a| a.key() == o.app);
            o.fences_kept.iter().map(move |f| {
                let field = app
                    .and_then(|a| a.fences.iter().find(|x| &x.to_string() == f))
                    .map(|x| x.kind.field())
                    .unwrap_or_default();
                vec![f.clone(), field.to_string(), o.app.clone()]
            })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    out!(
        "\nKept paused in blue (blue must never scale these apps up again: their claims are gone):\n{}",
        table(&["FENCE", "FIELD", "APP"], &rows)
    );
    outln!(
        "Make each pause permanent where the object comes from (Git, Helm values), or remove the object with blue when you retire it."
    );
}
