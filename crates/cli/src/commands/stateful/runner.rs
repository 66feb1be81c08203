//! The runner: for each app, observe → ask the phase machine → journal → act or wait →
//! journal, until the app is done or blocked. Apps run with bounded parallelism; one app's
//! failure stops that app (nothing more is changed for it) and the others go on.
//!
//! The downtime window is made of sequential round trips, so the runner reads as little
//! as it safely can: an app's world is read fresh once (and after any error); after an
//! action its known effect stands in for a re-read; after a wait, what the wait saw (the
//! watched cluster's side, from its shared watch cache) stands in for one — but a decision
//! made on such a cached view is carried out only if `machine::trusts_cached_view` says
//! so, and is otherwise made again on a fresh read. This migration's snapshots are read
//! only before the step that starts them, and not at all by the run that began the
//! migration (none can exist but those it made) unless one of its calls failed.

use std::collections::BTreeMap;
use std::time::Instant;

use baton_core::journal::Event;
use baton_core::machine::{
    Action, AppPhase, Decision, Mode, Observed, Wait, next, trusts_cached_view,
};
use baton_core::plan::AppPlan;
use baton_core::simulate;
use futures::StreamExt;
use serde::Serialize;

use super::engine::{Engine, Seen};
use super::state::StateDir;
use crate::commands::crash::crash_point;
use crate::commands::progress::{AppLine, Progress};
use crate::commands::retry::is_transient;

/// How one app ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `namespace/name`.
    pub app: String,
    /// Final phase.
    pub phase: AppPhase,
    /// Why it stopped, when blocked or failed.
    pub problem: Option<String>,
    /// Mutations made in this run.
    pub mutations: u32,
    /// Downtime window seen in this run (blue scaled to 0 → green Ready), seconds.
    pub window_seconds: Option<f64>,
}

/// How many apps run at once.
#[derive(Debug, Clone, Copy)]
pub struct Parallel {
    /// Apps worked on at once (preparing, in their window, or finishing).
    pub apps: usize,
    /// Apps a migration takes down at once (blue stopped, green not yet Ready): the
    /// others prepare meanwhile and wait for a slot before stopping blue. Apps already
    /// down when a resumed run starts go on without one.
    pub down: usize,
}

impl Parallel {
    /// `n` apps at once, all of which may be down.
    pub fn of(n: usize) -> Self {
        Self { apps: n, down: n }
    }
}

/// Runs every app in `mode`.
pub async fn run(
    engine: &Engine,
    state: &StateDir,
    apps: &[AppPlan],
    mode: Mode,
    parallel: Parallel,
) -> Vec<Outcome> {
    let progress = Progress::new();
    engine.watch(apps);
    let slots = Slots::new(parallel.down);
    let slots = &slots;
    let mut out: Vec<Outcome> = futures::stream::iter(apps)
        .map(|app| {
            let line = progress.app(&app.key());
            async move {
                let o = run_app(engine, state, app, mode, &line, slots).await;
                line.finish(phase_name(o.phase));
                o
            }
        })
        .buffer_unordered(parallel.apps.max(1))
        .collect()
        .await;
    progress.done();
    out.sort_by(|a, b| a.app.cmp(&b.app));
    let _ = state.record(
        None,
        Event::RunEnded {
            outcome: out
                .iter()
                .map(|o| (o.app.clone(), o.phase))
                .collect::<BTreeMap<_, _>>(),
        },
    );
    out
}

/// The slots of `--max-down`: an app takes one before it stops blue and gives it back
/// when green is Ready. An app that stops inside its window (blocked or failed, blue still
/// stopped) keeps its slot, for it is still down; once every slot is kept so, the apps
/// still waiting for one stop too (blocked, blue untouched) rather than wait forever.
struct Slots {
    sem: tokio::sync::Semaphore,
    size: usize,
    kept: std::sync::atomic::AtomicUsize,
}

impl Slots {
    fn new(size: usize) -> Self {
        let size = size.max(1);
        Self {
            sem: tokio::sync::Semaphore::new(size),
            size,
            kept: Default::default(),
        }
    }

    fn keep(&self, permit: tokio::sync::SemaphorePermit<'_>) {
        permit.forget();
        let kept = self.kept.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if kept >= self.size {
            self.sem.close();
        }
    }
}

/// One app's hold on a slot: kept on drop while the app is down.
struct Slot<'a> {
    slots: &'a Slots,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    /// Blue is stopped for this app and green not yet Ready.
    down: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take()
            && self.down
        {
            self.slots.keep(p);
        }
    }
}

async fn run_app(
    engine: &Engine,
    state: &StateDir,
    app: &AppPlan,
    mode: Mode,
    line: &AppLine,
    slots: &Slots,
) -> Outcome {
    let key = app.key();
    let mut slot = Slot {
        slots,
        permit: None,
        down: false,
    };
    let mut outcome = Outcome {
        app: key.clone(),
        phase: AppPhase::Planned,
        problem: None,
        mutations: 0,
        window_seconds: None,
    };
    let mut last_phase = None;
    let mut window_open: Option<Instant> = None;
    let fail = |outcome: &mut Outcome, step: String, e: anyhow::Error| {
        let error = format!("{e:#}");
        line.error(&format!("failed to {step}: {error}"));
        let _ = state.record(
            Some(&key),
            Event::Failed {
                step: step.clone(),
                error: error.clone(),
            },
        );
        outcome.phase = AppPhase::Blocked;
        outcome.problem = Some(format!("failed to {step}: {error}"));
    };
    // Bounded: a machine that loops is a bug, not a reason to run forever.
    // The world is observed fresh at the start and after an error; after an action, its
    // known effect (with the uid or id the call returned) stands in for a re-read; after
    // a wait, what the wait saw does — a cached view, whose decisions are checked.
    let mut known: Option<Observed> = None;
    // Whether `known` holds a cluster's side from its watch cache (since the last fresh
    // read; the effects of actions made on it do not make it fresh).
    let mut cached = false;
    // This migration's snapshots of the app's volumes as read from EC2 in this run (and
    // since the last error: a failed start may still have made one), plus the ones it
    // started. None: not read, so the machine must not be let start one. A migration
    // this process began has none in EC2 until it starts them.
    let mut snapshots: Option<BTreeMap<String, String>> = engine.new_migration.then(BTreeMap::new);
    let mut retries = 0u32;
    // A transient error (5xx, 429, 409, timeouts, resets) on any call: observe again and
    // let the machine decide again — every step is idempotent — after a backoff; too many
    // in a row, or any other error, stops the app safely.
    macro_rules! retry_or_fail {
        ($step:expr, $err:expr) => {{
            let e: anyhow::Error = $err;
            if is_transient(&e) && retries < MAX_RETRIES {
                retries += 1;
                tracing::info!(app = %key, error = %format!("{e:#}"), retries, "transient error; retrying");
                tokio::time::sleep(BACKOFF * 2u32.pow(retries - 1)).await;
                known = None;
                snapshots = None;
                continue;
            }
            fail(&mut outcome, $step, e);
            return outcome;
        }};
    }
    for _ in 0..1000 {
        let mut obs = match known.take() {
            Some(o) => o,
            None => match engine.observe(app).await {
                Ok(mut o) => {
                    cached = false;
                    o.snapshots = snapshots.clone().unwrap_or_default();
                    o
                }
                Err(e) => retry_or_fail!("observe the app".into(), e),
            },
        };
        let mut d = next(mode, app, &obs);
        if matches!(d, Decision::Act(Action::StartSnapshot { .. })) && snapshots.is_none() {
            match engine.snapshots(app).await {
                Ok(s) => {
                    obs.snapshots = s.clone();
                    snapshots = Some(s);
                    d = next(mode, app, &obs);
                }
                Err(e) => retry_or_fail!("list this migration's snapshots".into(), e),
            }
        }
        if cached && !trusts_cached_view(mode, &d) {
            // Decide this one again on a fresh read.
            continue;
        }
        let stops_blue = matches!(d, Decision::Act(Action::ScaleBlue { replicas: 0 }));
        if mode == Mode::Migrate && slot.permit.is_none() {
            if stops_blue {
                // Blue stops only in a slot; the window opens after it.
                if let Ok(p) = slots.sem.try_acquire() {
                    slot.permit = Some(p);
                } else {
                    line.step(
                        phase_name(outcome.phase),
                        "waiting for a slot to stop blue (--max-down)",
                    );
                    if let Ok(p) = slots.sem.acquire().await {
                        slot.permit = Some(p);
                        // The view is older than the wait: decide on a fresh read.
                        known = None;
                        continue;
                    }
                    // Every slot is kept by an app down in its window: stop this one,
                    // as any blocked app stops (journaled, reported), blue untouched.
                    d = Decision::Blocked {
                        reason: format!(
                            "blue was not stopped: all {} --max-down slots are held by apps that stopped inside their window; fix them, then run `baton migrate --resume`",
                            slots.size
                        ),
                    };
                }
            } else if AppPhase::of(mode, &d).in_window() && !slot.down {
                // Down already (a resumed run): it goes on, in a slot if one is free.
                slot.permit = slots.sem.try_acquire().ok();
                slot.down = true;
            }
        }
        if stops_blue && slot.permit.is_some() {
            slot.down = true;
        }
        let phase = AppPhase::of(mode, &d);
        if last_phase != Some(phase) {
            let reason = match &d {
                Decision::Blocked { reason } => Some(reason.clone()),
                _ => None,
            };
            let _ = state.record(
                Some(&key),
                Event::Phase {
                    phase,
                    reason: reason.clone(),
                },
            );
            line.phase(phase_name(phase), reason.as_deref());
            if phase.in_window() && window_open.is_none() {
                window_open = Some(Instant::now());
            }
            last_phase = Some(phase);
        }
        outcome.phase = phase;
        match d {
            Decision::Act(first) => {
                // Independent steps of one kind (one per volume) go out together.
                let batch = batch_of(mode, app, &obs, first);
                let more = if batch.len() > 1 {
                    format!(" (+{} more)", batch.len() - 1)
                } else {
                    String::new()
                };
                line.step(phase_name(phase), &format!("{}{more}", batch[0].describe()));
                for action in &batch {
                    let began = Event::Began {
                        action: action.clone(),
                    };
                    if state.record(Some(&key), began).is_err() {
                        outcome.problem = Some("failed to write the journal".into());
                        outcome.phase = AppPhase::Blocked;
                        return outcome;
                    }
                }
                let results =
                    futures::future::join_all(batch.iter().map(|a| engine.execute(state, app, a)))
                        .await;
                let mut world = Some(obs);
                let mut failed = None;
                for (action, r) in batch.into_iter().zip(results) {
                    match r {
                        Ok(result) => {
                            outcome.mutations += 1;
                            crash_point();
                            world =
                                world.and_then(|o| expected(app, o, &action, result.as_deref()));
                            let _ = state.record(Some(&key), Event::Done { action, result });
                        }
                        Err(e) => {
                            failed.get_or_insert((action, e));
                        }
                    }
                }
                match failed {
                    None => {
                        retries = 0;
                        if snapshots.is_some()
                            && let Some(w) = &world
                        {
                            snapshots = Some(w.snapshots.clone());
                        }
                        known = world;
                    }
                    Some((action, e)) => retry_or_fail!(action.describe(), e),
                }
            }
            Decision::Wait { wait } => {
                line.step(
                    phase_name(phase),
                    &format!("waiting for {}", wait.describe()),
                );
                let started = Instant::now();
                // The snapshots are started right after EC2 lets go of the volumes: read
                // them while waiting for that, not after it.
                let prefetch =
                    mode == Mode::Migrate && wait == Wait::VolumesAvailable && snapshots.is_none();
                let (seen, listed) = futures::join!(engine.wait(app, wait), async {
                    if prefetch {
                        Some(engine.snapshots(app).await)
                    } else {
                        None
                    }
                });
                let seen = match seen {
                    Ok(s) => s,
                    Err(e) => retry_or_fail!(format!("wait for {}", wait.describe()), e),
                };
                retries = 0;
                let _ = state.record(
                    Some(&key),
                    Event::Waited {
                        wait,
                        millis: started.elapsed().as_millis() as u64,
                    },
                );
                // A failed prefetch is only a lost head start: the step reads them itself.
                if let Some(Ok(s)) = listed {
                    obs.snapshots = s.clone();
                    snapshots = Some(s);
                }
                cached |= !matches!(seen, Seen::Ec2(_));
                seen.update(&mut obs);
                known = Some(obs);
            }
            Decision::Done => {
                slot.down = false;
                if mode == Mode::Migrate {
                    outcome.window_seconds = window_open.map(|t| t.elapsed().as_secs_f64());
                }
                return outcome;
            }
            Decision::Blocked { reason } => {
                outcome.problem = Some(reason);
                return outcome;
            }
        }
    }
    outcome.phase = AppPhase::Blocked;
    outcome.problem = Some("the phase machine did not settle after 1000 steps (a bug)".into());
    outcome
}

const MAX_RETRIES: u32 = 6;
const BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// Steps the machine would take next that are of the same kind as `first` and touch
/// other volumes: made concurrently instead of one round trip after another. Deletions
/// are not batched (their effect waits on finalizers).
fn batch_of(mode: Mode, app: &AppPlan, obs: &Observed, first: Action) -> Vec<Action> {
    let batchable = matches!(
        first,
        Action::RetainBlueVolume { .. }
            | Action::StartSnapshot { .. }
            | Action::CreateGreenClaim { .. }
            | Action::CreateGreenVolume { .. }
            | Action::RetainGreenVolume { .. }
            | Action::RestoreBlueVolume { .. }
            | Action::RestoreGreenVolume { .. }
    );
    let kind = std::mem::discriminant(&first);
    let mut batch = vec![first];
    if !batchable {
        return batch;
    }
    let mut world = obs.clone();
    simulate::apply(app, &mut world, &Decision::Act(batch[0].clone()));
    while batch.len() < 64 {
        match next(mode, app, &world) {
            Decision::Act(a) if std::mem::discriminant(&a) == kind && !batch.contains(&a) => {
                simulate::apply(app, &mut world, &Decision::Act(a.clone()));
                batch.push(a);
            }
            _ => break,
        }
    }
    batch
}

/// The world after an action, from its known effect and what the call returned; None
/// (observe again) when the effect depends on something not returned.
fn expected(
    app: &AppPlan,
    mut obs: Observed,
    action: &Action,
    result: Option<&str>,
) -> Option<Observed> {
    simulate::apply(app, &mut obs, &Decision::Act(action.clone()));
    match action {
        Action::CreateGreenClaim { claim } => {
            obs.green.claims.get_mut(claim)?.uid = result?.to_string();
        }
        Action::CreateGreenVolume { pv, .. } => {
            obs.green.volumes.get_mut(pv)?.uid = result?.to_string();
        }
        Action::StartSnapshot { volume_id, .. } => {
            obs.snapshots.insert(volume_id.clone(), result?.to_string());
        }
        // Deletions may be held by finalizers; scaling changes pods: look again.
        Action::DeleteBlueClaim { .. }
        | Action::DeleteBlueVolume { .. }
        | Action::DeleteGreenClaim { .. }
        | Action::DeleteGreenVolume { .. } => return None,
        _ => {}
    }
    Some(obs)
}

/// The phase as a word.
pub fn phase_name(p: AppPhase) -> &'static str {
    match p {
        AppPhase::Planned => "planned",
        AppPhase::Preparing => "preparing (Retain first)",
        AppPhase::Draining => "window open: stopping blue",
        AppPhase::HandingOver => "handing volumes to green",
        AppPhase::Binding => "binding in green",
        AppPhase::Starting => "starting green",
        AppPhase::Migrated => "migrated",
        AppPhase::RollingBack => "rolling back",
        AppPhase::RolledBack => "rolled back",
        AppPhase::Committing => "committing",
        AppPhase::Committed => "committed",
        AppPhase::Blocked => "blocked",
    }
}
