//! The runner: for each app, observe → ask the phase machine → journal → act or wait →
//! journal, until the app is done or blocked. Apps run with bounded parallelism; one app's
//! failure stops that app (nothing more is changed for it) and the others go on.
//!
//! The downtime window is made of sequential round trips, so the runner reads as little
//! as it safely can: an app's world is read fresh once (and after any error); after an
//! action what the write answered (the object as the server returned it) stands in for a
//! re-read; after a wait, what the wait saw (the
//! watched cluster's side, from its shared watch cache) stands in for one — but a decision
//! made on such a cached view is carried out only if `machine::trusts_cached_view` says
//! so, and is otherwise made again on a fresh read. This migration's snapshots are read
//! only before the step that starts them, and not at all by the run that began the
//! migration (none can exist but those it made) unless one of its calls failed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_core::journal::Event;
use baton_core::machine::{
    Action, Answer, AppPhase, Decision, Mode, Observed, Seen, Wait, next, trusts_cached_view,
};
use baton_core::plan::{AppPlan, GroupPlan};
use baton_core::simulate;
use futures::StreamExt;
use serde::Serialize;

use super::state::StateDir;
use crate::commands::crash::crash_point;
use crate::commands::progress::{AppLine, Progress};
use crate::commands::retry::is_transient;

/// What the runner needs of the world: the real clusters and AWS (`engine::Live`), or, in
/// the runner's unit tests, the simulated world of `baton_core::simulate`.
#[allow(
    async_fn_in_trait,
    reason = "used within this binary only, on one task: no Send bound is needed"
)]
pub trait Hands {
    /// Starts whatever watches the waits of these apps will use, before they need them.
    fn watch(&self, apps: &[AppPlan]);
    /// Whether this run began the migration (nothing in EC2 carries its id yet).
    fn new_migration(&self) -> bool;
    /// Reads one app's world fresh (snapshots excepted: see [`Hands::snapshots`]).
    async fn observe(&self, app: &AppPlan) -> anyhow::Result<Observed>;
    /// This migration's snapshots of the app's volumes, by volume id.
    async fn snapshots(&self, app: &AppPlan) -> anyhow::Result<BTreeMap<String, String>>;
    /// Makes one change and returns what the world answered.
    async fn execute(&self, app: &AppPlan, action: &Action) -> anyhow::Result<Answer>;
    /// Waits until a condition holds and returns what it saw then.
    async fn wait(&self, app: &AppPlan, wait: Wait) -> anyhow::Result<Seen>;
}

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
    /// Commit: the fences kept paused in blue (`Kind namespace/name`), for its
    /// retirement: blue must never come back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fences_kept: Vec<String>,
}

/// Whether carrying out `d` stops blue: scaling it to 0, or pausing a fence that scales
/// it to 0 itself (KEDA's `paused-replicas: "0"`). Only in a `--max-down` slot.
fn stops_blue(d: &Decision) -> bool {
    match d {
        Decision::Act(Action::ScaleBlue { replicas: 0 }) => true,
        Decision::Act(Action::PauseFence { fence }) => fence.kind.stops_target(),
        _ => false,
    }
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

/// Runs every app in `mode`. A group's members run together, as one of the
/// `parallel.apps` and in one `--max-down` slot, each waiting at its group's gates
/// ([`Gate`]); the other apps each run alone.
pub async fn run(
    hands: &impl Hands,
    state: &StateDir,
    apps: &[AppPlan],
    groups: &[GroupPlan],
    mode: Mode,
    parallel: Parallel,
) -> Vec<Outcome> {
    let progress = Progress::new();
    hands.watch(apps);
    let slots = Slots::new(parallel.down);
    let slots = &slots;
    let boards: Vec<Board> = groups
        .iter()
        .map(|g| Board::new(g, apps))
        .filter(|b| !b.members.is_empty())
        .collect();
    let progress = &progress;
    let mut out: Vec<Outcome> = futures::stream::iter(units(apps, &boards))
        .map(|(board, members)| async move {
            let slot = RefCell::new(Slot {
                slots,
                permit: None,
                down: 0,
            });
            let slot = &slot;
            let runs = members.into_iter().enumerate().map(|(index, app)| {
                let line = progress.app(&app.key());
                async move {
                    let member = board.map(|board| Member { board, index });
                    let o = AppRun::new(hands, state, app, mode, &line, slot, member)
                        .run()
                        .await;
                    line.finish(o.phase.name());
                    o
                }
            });
            futures::future::join_all(runs).await
        })
        .buffer_unordered(parallel.apps.max(1))
        .flat_map(futures::stream::iter)
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

/// The units the run is made of: each group's members in its order, each other app
/// alone; in the order of the apps (a group where its first member is).
fn units<'a>(
    apps: &'a [AppPlan],
    boards: &'a [Board],
) -> Vec<(Option<&'a Board>, Vec<&'a AppPlan>)> {
    let mut out: Vec<(Option<&Board>, Vec<&AppPlan>)> = Vec::new();
    let mut placed = vec![false; boards.len()];
    for app in apps {
        let key = app.key();
        match boards.iter().position(|b| b.members.contains(&key)) {
            Some(i) if !placed[i] => {
                placed[i] = true;
                let b = &boards[i];
                let members = b
                    .members
                    .iter()
                    .filter_map(|m| apps.iter().find(|a| &a.key() == m))
                    .collect();
                out.push((Some(b), members));
            }
            Some(_) => {}
            None => out.push((None, vec![app])),
        }
    }
    out
}

/// What a group's member has told the others, as its run goes on.
#[derive(Debug, Clone, Copy, Default)]
struct Signal {
    /// The side it leaves is stopped: blue in a migration, green in a rollback (the
    /// workload at 0 replicas, its pods gone).
    stopped: bool,
    /// It got where the mode goes (migrated: green Ready; rolled back: blue Ready).
    done: bool,
    /// Its run ended without getting there (blocked, failed).
    ended: bool,
}

/// One group's members, in its order, and what each has signalled.
struct Board {
    name: String,
    members: Vec<String>,
    signals: Vec<tokio::sync::watch::Sender<Signal>>,
}

impl Board {
    /// The group's members among the run's apps.
    fn new(g: &GroupPlan, apps: &[AppPlan]) -> Self {
        let members: Vec<String> = g
            .members
            .iter()
            .filter(|m| apps.iter().any(|a| &a.key() == *m))
            .cloned()
            .collect();
        Self {
            name: g.name.clone(),
            signals: members
                .iter()
                .map(|_| tokio::sync::watch::Sender::new(Signal::default()))
                .collect(),
            members,
        }
    }
}

/// An app's place in its group.
struct Member<'a> {
    board: &'a Board,
    index: usize,
}

/// What a group's gate said of a decision.
enum Gate {
    /// Carry it out.
    Go,
    /// It waited for other members: decide again on a fresh read.
    Waited,
    /// A member it waits for ended first: this one stops too, saying why.
    Blocked(String),
}

/// The gates of a group: for a decision, the other members it waits for — each with
/// whether it must be done (Ready on the side the mode goes to) or only stopped (on the
/// side it leaves) — and what, for people. Blue stops only once the members after it have
/// stopped; green starts only once the whole group has stopped in blue and the members
/// before it are Ready. A rollback the same way round, where a fence's resume counts as
/// a start (a resumed ScaledObject or GitOps object scales blue up by itself).
fn gate_of(
    mode: Mode,
    d: &Decision,
    index: usize,
    n: usize,
) -> Option<(Vec<(usize, bool)>, &'static str)> {
    let after = || (index + 1..n).map(|j| (j, false));
    let start = || {
        (0..n)
            .filter(|j| *j != index)
            .map(|j| (j, j < index))
            .collect()
    };
    match (mode, d) {
        (Mode::Migrate, d) if stops_blue(d) => {
            Some((after().collect(), "blue's pods to stop first"))
        }
        (Mode::Migrate, Decision::Act(Action::ScaleGreen { replicas })) if *replicas > 0 => Some((
            start(),
            "the group stopped in blue and the members before it Ready in green",
        )),
        (Mode::Rollback, Decision::Act(Action::ScaleGreen { replicas: 0 })) => {
            Some((after().collect(), "green's pods to stop first"))
        }
        (Mode::Rollback, Decision::Act(Action::ScaleBlue { replicas })) if *replicas > 0 => Some((
            start(),
            "the group stopped in green and the members before it Ready in blue",
        )),
        (Mode::Rollback, Decision::Act(Action::ResumeFence { .. })) => Some((
            start(),
            "the group stopped in green and the members before it Ready in blue",
        )),
        _ => None,
    }
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

/// A unit's hold on a slot (an app's, or a whole group's): kept on drop while one of its
/// apps is down.
struct Slot<'a> {
    slots: &'a Slots,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    /// The unit's apps whose blue is stopped and green not yet Ready.
    down: usize,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take()
            && self.down > 0
        {
            self.slots.keep(p);
        }
    }
}

/// Whether an app's run goes on after a step.
enum Flow {
    /// Take the next step.
    Next,
    /// The app is done, blocked or failed: its outcome is final.
    Stop,
}

/// A transient error is retried this many times in a row (observing again each time)…
const MAX_RETRIES: u32 = 6;
/// …after a pause that starts here and doubles (1 ms in unit tests, which only count).
const BACKOFF: Duration = Duration::from_millis(if cfg!(test) { 1 } else { 200 });
/// A machine that has not settled after this many steps has a bug: the app stops.
const MAX_STEPS: usize = 1000;

/// One app's run: observe → ask the phase machine → journal → act or wait → journal,
/// until the app is done or blocked.
struct AppRun<'a, 'r, H> {
    hands: &'a H,
    state: &'a StateDir,
    app: &'a AppPlan,
    mode: Mode,
    line: &'r AppLine,
    key: String,
    /// The unit's slot, shared by a group's members.
    slot: &'r RefCell<Slot<'a>>,
    /// This app is counted down in the slot.
    down: bool,
    /// Its place in its group, if it has one.
    member: Option<Member<'r>>,
    outcome: Outcome,
    last_phase: Option<AppPhase>,
    window_open: Option<Instant>,
    /// The world as last known: read fresh at the start and after an error; after an
    /// action, updated with what the write answered; after a wait, with what the wait
    /// saw (a cached view, whose decisions are checked). None: observe again.
    known: Option<Observed>,
    /// `known` holds a cluster's side from its watch cache (since the last fresh read;
    /// the answers of writes made on it do not make it fresh).
    cached: bool,
    /// The writes made since the last fresh read. A cached view that asks for one of
    /// them again lags that write (its kind's watch event has not arrived yet, while
    /// another kind's, which ended the wait, has): the step is decided on a fresh read
    /// instead, so a lagging cache never costs a mutation.
    written: Vec<Action>,
    /// This migration's snapshots of the app's volumes as read from EC2 in this run (and
    /// since the last error: a failed start may still have made one), plus the ones it
    /// started. None: not read, so the machine must not be let start one. A migration
    /// this process began has none in EC2 until it starts them.
    snapshots: Option<BTreeMap<String, String>>,
    /// Transient errors in a row.
    retries: u32,
}

impl<'a, 'r, H: Hands> AppRun<'a, 'r, H> {
    fn new(
        hands: &'a H,
        state: &'a StateDir,
        app: &'a AppPlan,
        mode: Mode,
        line: &'r AppLine,
        slot: &'r RefCell<Slot<'a>>,
        member: Option<Member<'r>>,
    ) -> Self {
        let key = app.key();
        Self {
            hands,
            state,
            app,
            mode,
            line,
            slot,
            down: false,
            member,
            outcome: Outcome {
                app: key.clone(),
                phase: AppPhase::Planned,
                problem: None,
                mutations: 0,
                window_seconds: None,
                fences_kept: Vec::new(),
            },
            key,
            last_phase: None,
            window_open: None,
            known: None,
            cached: false,
            written: Vec::new(),
            snapshots: hands.new_migration().then(BTreeMap::new),
            retries: 0,
        }
    }

    async fn run(mut self) -> Outcome {
        let mut settled = false;
        for _ in 0..MAX_STEPS {
            if let Flow::Stop = self.step().await {
                settled = true;
                break;
            }
        }
        if !settled {
            self.outcome.phase = AppPhase::Blocked;
            self.outcome.problem = Some(format!(
                "the phase machine did not settle after {MAX_STEPS} steps (a bug)"
            ));
        }
        let done = matches!(
            self.outcome.phase,
            AppPhase::Migrated | AppPhase::RolledBack
        );
        self.signal(|s| {
            s.done |= done;
            s.stopped |= done;
            s.ended = true;
        });
        self.outcome
    }

    /// Tells the app's group (if any) what it has done.
    fn signal(&self, f: impl FnOnce(&mut Signal)) {
        if let Some(m) = &self.member {
            m.board.signals[m.index].send_modify(f);
        }
    }

    /// The group's gate for `d` (see [`gate_of`]): waits, when it must, for the members
    /// it names.
    async fn gate(&self, d: &Decision) -> Gate {
        let Some(m) = &self.member else {
            return Gate::Go;
        };
        let Some((others, what)) = gate_of(self.mode, d, m.index, m.board.members.len()) else {
            return Gate::Go;
        };
        let holds = |s: &Signal, done: bool| if done { s.done } else { s.stopped };
        let pending: Vec<(usize, bool)> = others
            .into_iter()
            .filter(|(j, done)| !holds(&m.board.signals[*j].borrow(), *done))
            .collect();
        if pending.is_empty() {
            return Gate::Go;
        }
        let names: Vec<&str> = pending
            .iter()
            .map(|(j, _)| m.board.members[*j].as_str())
            .collect();
        self.line.step(
            self.outcome.phase.name(),
            &format!(
                "waiting for {} of group {}: {what}",
                names.join(", "),
                m.board.name
            ),
        );
        let started = Instant::now();
        for &(j, done) in &pending {
            let mut rx = m.board.signals[j].subscribe();
            let seen = match rx.wait_for(|s| holds(s, done) || s.ended).await {
                Ok(s) => *s,
                Err(_) => Signal {
                    ended: true,
                    ..Signal::default()
                },
            };
            if !holds(&seen, done) {
                let other = &m.board.members[j];
                return Gate::Blocked(format!(
                    "{other} of group {} stopped before this could go on (waiting for {what}); {} was left as it is — fix {other} (its PROBLEM says how), then run the command again, or roll the group back",
                    m.board.name, self.key
                ));
            }
        }
        let _ = self.record(Event::GroupWaited {
            group: m.board.name.clone(),
            members: pending
                .iter()
                .map(|(j, _)| m.board.members[*j].clone())
                .collect(),
            condition: what.into(),
            millis: started.elapsed().as_millis() as u64,
        });
        Gate::Waited
    }

    /// Counts this app down in its unit's slot, or not.
    fn set_down(&mut self, down: bool) {
        if self.down != down {
            self.down = down;
            let mut slot = self.slot.borrow_mut();
            if down {
                slot.down += 1;
            } else {
                slot.down -= 1;
            }
        }
    }

    /// The run's `--max-down` slots.
    fn slots(&self) -> &'a Slots {
        self.slot.borrow().slots
    }

    fn has_slot(&self) -> bool {
        self.slot.borrow().permit.is_some()
    }

    /// Puts a permit in the unit's slot (another member may have put one first: this
    /// one goes back).
    fn put_permit(&self, p: tokio::sync::SemaphorePermit<'a>) {
        let mut slot = self.slot.borrow_mut();
        if slot.permit.is_none() {
            slot.permit = Some(p);
        }
    }

    fn record(&self, event: Event) -> anyhow::Result<()> {
        self.state.record(Some(&self.key), event)
    }

    /// A transient error (5xx, 429, 409, timeouts, resets) on any call: observe again
    /// and let the machine decide again — every step is idempotent — after a backoff.
    /// Too many in a row, or any other error, stops the app safely.
    async fn failed(&mut self, step: String, e: anyhow::Error) -> Flow {
        if is_transient(&e) && self.retries < MAX_RETRIES {
            self.retries += 1;
            tracing::info!(app = %self.key, error = %format!("{e:#}"), retries = self.retries, "transient error; retrying");
            tokio::time::sleep(BACKOFF * 2u32.pow(self.retries - 1)).await;
            self.known = None;
            self.snapshots = None;
            return Flow::Next;
        }
        let error = format!("{e:#}");
        self.line.error(&format!("failed to {step}: {error}"));
        let _ = self.record(Event::Failed {
            step: step.clone(),
            error: error.clone(),
        });
        self.outcome.phase = AppPhase::Blocked;
        self.outcome.problem = Some(format!("failed to {step}: {error}"));
        Flow::Stop
    }

    /// The world to decide on: as known, or read fresh.
    async fn world(&mut self) -> Result<Observed, anyhow::Error> {
        if let Some(o) = self.known.take() {
            return Ok(o);
        }
        let mut o = self.hands.observe(self.app).await?;
        self.cached = false;
        self.written.clear();
        o.snapshots = self.snapshots.clone().unwrap_or_default();
        Ok(o)
    }

    async fn step(&mut self) -> Flow {
        let mut obs = match self.world().await {
            Ok(o) => o,
            Err(e) => return self.failed("observe the app".into(), e).await,
        };
        let mut d = next(self.mode, self.app, &obs);
        if matches!(d, Decision::Act(Action::StartSnapshot { .. })) && self.snapshots.is_none() {
            match self.hands.snapshots(self.app).await {
                Ok(s) => {
                    obs.snapshots = s.clone();
                    self.snapshots = Some(s);
                    d = next(self.mode, self.app, &obs);
                }
                Err(e) => {
                    return self
                        .failed("list this migration's snapshots".into(), e)
                        .await;
                }
            }
        }
        if self.cached
            && (!trusts_cached_view(self.mode, &d)
                || matches!(&d, Decision::Act(a) if self.written.contains(a)))
        {
            // Decide this one again on a fresh read.
            return Flow::Next;
        }
        // A group's member tells the others what it sees, then passes its group's gate.
        let (side, leaving) = match self.mode {
            Mode::Rollback => (&obs.green, true),
            _ => (&obs.blue, self.mode == Mode::Migrate),
        };
        // Stopped, and (leaving blue) nothing left that would scale it back up.
        let fenced =
            self.mode != Mode::Migrate || !self.app.fences.iter().any(|f| obs.fence_active(f));
        if leaving && fenced && side.pods == 0 && side.sts.as_ref().is_none_or(|s| s.replicas == 0)
        {
            self.signal(|s| s.stopped = true);
        }
        match self.gate(&d).await {
            Gate::Go => {}
            Gate::Waited => {
                self.known = None;
                return Flow::Next;
            }
            Gate::Blocked(reason) => d = Decision::Blocked { reason },
        }
        match self.take_slot(d).await {
            Some(d) => self.carry_out(obs, d).await,
            // The view is older than the wait for a slot: decide on a fresh read.
            None => Flow::Next,
        }
    }

    /// `--max-down`: blue stops only in a slot, and the window opens after it. Returns
    /// the decision to carry out — Blocked when every slot is kept by an app down in its
    /// window — or None when a slot was waited for (decide again on a fresh read).
    async fn take_slot(&mut self, d: Decision) -> Option<Decision> {
        if self.mode != Mode::Migrate || self.has_slot() {
            return Some(d);
        }
        if stops_blue(&d) {
            if let Ok(p) = self.slots().sem.try_acquire() {
                self.put_permit(p);
                return Some(d);
            }
            self.line.step(
                self.outcome.phase.name(),
                "waiting for a slot to stop blue (--max-down)",
            );
            if let Ok(p) = self.slots().sem.acquire().await {
                self.put_permit(p);
                self.known = None;
                return None;
            }
            // Every slot is kept by an app down in its window: stop this one, as any
            // blocked app stops (journaled, reported), blue untouched.
            return Some(Decision::Blocked {
                reason: format!(
                    "blue was not stopped: all {} --max-down slots are held by apps that stopped inside their window; fix them, then run `baton migrate --resume`",
                    self.slots().size
                ),
            });
        }
        if AppPhase::of(self.mode, &d).in_window() && !self.down {
            // Down already (a resumed run): it goes on, in a slot if one is free.
            if let Ok(p) = self.slots().sem.try_acquire() {
                self.put_permit(p);
            }
            self.set_down(true);
        }
        Some(d)
    }

    async fn carry_out(&mut self, obs: Observed, d: Decision) -> Flow {
        if stops_blue(&d) && self.has_slot() {
            self.set_down(true);
        }
        let phase = AppPhase::of(self.mode, &d);
        if self.last_phase != Some(phase) {
            let reason = match &d {
                Decision::Blocked { reason } => Some(reason.clone()),
                _ => None,
            };
            let _ = self.record(Event::Phase {
                phase,
                reason: reason.clone(),
            });
            self.line.phase(phase.name(), reason.as_deref());
            // A claim moving on its own stops nothing: it has no window.
            if phase.in_window()
                && self.window_open.is_none()
                && self.app.kind != baton_core::world::WorkloadKind::Claim
            {
                self.window_open = Some(Instant::now());
            }
            self.last_phase = Some(phase);
        }
        self.outcome.phase = phase;
        match d {
            Decision::Act(first) => self.act(obs, first).await,
            Decision::Wait { wait } => self.wait(obs, wait).await,
            Decision::Done => {
                self.set_down(false);
                if self.mode == Mode::Migrate {
                    self.outcome.window_seconds =
                        self.window_open.map(|t| t.elapsed().as_secs_f64());
                }
                Flow::Stop
            }
            Decision::Blocked { reason } => {
                self.outcome.problem = Some(reason);
                Flow::Stop
            }
        }
    }

    /// Makes a step and the independent steps of its kind (one per volume) together,
    /// each journaled before and after.
    async fn act(&mut self, obs: Observed, first: Action) -> Flow {
        let batch = simulate::batch(self.mode, self.app, &obs, first);
        let more = if batch.len() > 1 {
            format!(" (+{} more)", batch.len() - 1)
        } else {
            String::new()
        };
        self.line.step(
            self.outcome.phase.name(),
            &format!("{}{more}", batch[0].describe()),
        );
        for action in &batch {
            if self
                .record(Event::Began {
                    action: action.clone(),
                })
                .is_err()
            {
                self.outcome.problem = Some("failed to write the journal".into());
                self.outcome.phase = AppPhase::Blocked;
                return Flow::Stop;
            }
        }
        let results =
            futures::future::join_all(batch.iter().map(|a| self.hands.execute(self.app, a))).await;
        let mut world = Some(obs);
        let mut failed = None;
        for (action, r) in batch.into_iter().zip(results) {
            match r {
                Ok(answer) => {
                    self.outcome.mutations += 1;
                    self.written.push(action.clone());
                    crash_point();
                    let result = answer.id();
                    // The answer stands in for a re-read; one that does not tell the
                    // write's effect (a delete's) means reading again.
                    if let Some(w) = &mut world
                        && !w.absorb(&action, answer)
                    {
                        world = None;
                    }
                    let _ = self.record(Event::Done { action, result });
                }
                Err(e) => {
                    failed.get_or_insert((action, e));
                }
            }
        }
        if let Some((action, e)) = failed {
            return self.failed(action.describe(), e).await;
        }
        self.retries = 0;
        if self.snapshots.is_some()
            && let Some(w) = &world
        {
            self.snapshots = Some(w.snapshots.clone());
        }
        self.known = world;
        Flow::Next
    }

    async fn wait(&mut self, mut obs: Observed, wait: Wait) -> Flow {
        self.line.step(
            self.outcome.phase.name(),
            &format!("waiting for {}", wait.describe()),
        );
        let started = Instant::now();
        // The snapshots are started right after EC2 lets go of the volumes: read them
        // while waiting for that, not after it.
        let prefetch = self.mode == Mode::Migrate
            && wait == Wait::VolumesAvailable
            && self.snapshots.is_none();
        let (seen, listed) = futures::join!(self.hands.wait(self.app, wait), async {
            if prefetch {
                Some(self.hands.snapshots(self.app).await)
            } else {
                None
            }
        });
        let seen = match seen {
            Ok(s) => s,
            Err(e) => {
                return self
                    .failed(format!("wait for {}", wait.describe()), e)
                    .await;
            }
        };
        self.retries = 0;
        let _ = self.record(Event::Waited {
            wait,
            millis: started.elapsed().as_millis() as u64,
        });
        // A failed prefetch is only a lost head start: the step reads them itself.
        if let Some(Ok(s)) = listed {
            obs.snapshots = s.clone();
            self.snapshots = Some(s);
        }
        self.cached |= seen.cached();
        seen.update(&mut obs);
        self.known = Some(obs);
        Flow::Next
    }
}

#[cfg(test)]
mod tests {
    //! The runner against the simulated world of `baton_core::simulate`: slots, retries
    //! and the cache-trust rule, without a cluster.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use baton_core::machine::{Side, Watched};
    use baton_core::plan::Plan;
    use baton_core::world::{ReclaimPolicy, RetentionPolicy};

    use super::*;
    use crate::commands::stateful::state::RunInfo;

    /// The simulated world: one [`Observed`] per app, changed by each action and wait as
    /// `simulate` expects; it counts what the runner asked of it.
    #[derive(Default)]
    struct Simulated {
        worlds: Mutex<BTreeMap<String, Observed>>,
        /// Transient failures still to answer to executes, per app.
        flaky: Mutex<BTreeMap<String, u32>>,
        observes: AtomicUsize,
        /// Apps down now (blue stopped, green not Ready), and the most ever at once.
        down: Mutex<(usize, usize)>,
        /// Per tag change made: what held the volumes then (blue's pods and
        /// attachments, green's, and whether EC2 had every volume available).
        retags: Mutex<Vec<Holders>>,
        /// Blue's PVs as the apps began: when set, the wait for blue's attachments
        /// answers with them, as a watch cache whose PV events lag would.
        lagging_pvs: Option<BTreeMap<String, Side>>,
        /// Every action carried out, with its app, in order.
        log: Mutex<Vec<(String, Action)>>,
    }

    /// Blue's pods and attachments, green's, and whether EC2 had every volume available.
    type Holders = (u32, u32, u32, u32, bool);

    impl Simulated {
        fn with(apps: &[(AppPlan, Observed)]) -> Self {
            let s = Self::default();
            for (app, obs) in apps {
                s.worlds.lock().unwrap().insert(app.key(), obs.clone());
            }
            s
        }

        fn world(&self, app: &AppPlan) -> Observed {
            self.worlds.lock().unwrap()[&app.key()].clone()
        }
    }

    fn transient() -> anyhow::Error {
        baton_kube::KubeError::Api {
            context: "green".into(),
            action: "create claim".into(),
            error: Box::new(kube::Error::Api(Box::new(kube::core::Status {
                code: 503,
                ..Default::default()
            }))),
        }
        .into()
    }

    impl Hands for Simulated {
        fn watch(&self, _: &[AppPlan]) {}

        fn new_migration(&self) -> bool {
            true
        }

        async fn observe(&self, app: &AppPlan) -> anyhow::Result<Observed> {
            self.observes.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(self.world(app))
        }

        async fn snapshots(&self, app: &AppPlan) -> anyhow::Result<BTreeMap<String, String>> {
            Ok(self.world(app).snapshots)
        }

        async fn execute(&self, app: &AppPlan, action: &Action) -> anyhow::Result<Answer> {
            tokio::task::yield_now().await;
            if let Some(n) = self.flaky.lock().unwrap().get_mut(&app.key())
                && *n > 0
            {
                *n -= 1;
                return Err(transient());
            }
            self.log.lock().unwrap().push((app.key(), action.clone()));
            let mut worlds = self.worlds.lock().unwrap();
            let w = worlds.get_mut(&app.key()).unwrap();
            if let Action::RetagVolumes { volumes, .. } = action {
                self.retags.lock().unwrap().push((
                    w.blue.pods,
                    w.blue.attachments,
                    w.green.pods,
                    w.green.attachments,
                    volumes.iter().all(|v| w.ec2[v].state == "available"),
                ));
            }
            simulate::apply(app, w, &Decision::Act(action.clone()));
            if matches!(action, Action::ScaleBlue { replicas: 0 }) {
                let mut d = self.down.lock().unwrap();
                d.0 += 1;
                d.1 = d.1.max(d.0);
            }
            let side = if action.target() == "blue" {
                &w.blue
            } else {
                &w.green
            };
            Ok(match action {
                Action::CreateGreenClaim { claim } => Answer::Claim(side.claims[claim].clone()),
                Action::CreateGreenVolume { pv, .. }
                | Action::RetainBlueVolume { pv, .. }
                | Action::RetainGreenVolume { pv }
                | Action::RestoreBlueVolume { pv, .. }
                | Action::RestoreGreenVolume { pv, .. } => Answer::Volume(side.volumes[pv].clone()),
                Action::StartSnapshot { volume_id, .. } => Answer::Snapshot {
                    volume_id: volume_id.clone(),
                    id: w.snapshots[volume_id].clone(),
                },
                Action::ScaleBlue { replicas } | Action::ScaleGreen { replicas } => {
                    Answer::Replicas(*replicas)
                }
                Action::RetainBlueClaims { .. } | Action::RestoreBlueClaims { .. } => {
                    Answer::StatefulSet(side.sts.clone().unwrap())
                }
                Action::RetagVolumes {
                    volumes,
                    add,
                    remove,
                    ..
                } => Answer::Retagged {
                    volumes: volumes.clone(),
                    add: add.clone(),
                    remove: remove.clone(),
                },
                _ => Answer::Unknown,
            })
        }

        async fn wait(&self, app: &AppPlan, wait: Wait) -> anyhow::Result<Seen> {
            // Long enough for the other apps to run meanwhile.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let mut worlds = self.worlds.lock().unwrap();
            let w = worlds.get_mut(&app.key()).unwrap();
            simulate::apply(app, w, &Decision::Wait { wait });
            if wait == Wait::GreenReady {
                self.down.lock().unwrap().0 -= 1;
            }
            if wait == Wait::BlueDetached
                && let Some(first) = &self.lagging_pvs
            {
                let mut blue = w.blue.clone();
                blue.volumes = first[&app.key()].volumes.clone();
                return Ok(Seen::Blue(blue));
            }
            // A cluster's side as its watch cache would show it; EC2's read fresh.
            Ok(match wait.watched() {
                Watched::Blue => Seen::Blue(w.blue.clone()),
                Watched::Green => Seen::Green(w.green.clone()),
                Watched::Ec2 => Seen::Ec2(w.ec2.clone()),
            })
        }
    }

    fn apps(n: usize) -> Vec<(AppPlan, Observed)> {
        (0..n)
            .map(|i| {
                let (app, mut obs) = simulate::example(
                    "orders",
                    &format!("db{i}"),
                    2,
                    ReclaimPolicy::Delete,
                    RetentionPolicy::default(),
                );
                obs.migration = "m-1".into();
                (app, obs)
            })
            .collect()
    }

    fn state_dir() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let info = RunInfo {
            migration: "m-1".into(),
            from: "blue".into(),
            to: "green".into(),
            kubeconfig: None,
            convert_to_csi: false,
            allow_multi_attach: false,
        };
        let plan = Plan {
            version: baton_core::plan::PLAN_VERSION,
            from: "blue".into(),
            to: "green".into(),
            from_version: "v1.29".into(),
            to_version: "v1.30".into(),
            created: "2026-12-02T00:00:00Z".into(),
            problems: vec![],
            apps: vec![],
            groups: vec![],
            unselected_claims: vec![],
        };
        let state = StateDir::create(dir.path(), &info, &plan).unwrap();
        (dir, state)
    }

    async fn run_all(
        world: &Simulated,
        apps: &[AppPlan],
        mode: Mode,
        parallel: Parallel,
    ) -> Vec<Outcome> {
        let (_dir, state) = state_dir();
        run(world, &state, apps, &[], mode, parallel).await
    }

    #[tokio::test]
    async fn every_app_moves_and_no_more_than_max_down_are_down_at_once() {
        let fixtures = apps(4);
        let world = Simulated::with(&fixtures);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        let out = run_all(&world, &plans, Mode::Migrate, Parallel { apps: 4, down: 1 }).await;
        assert!(out.iter().all(|o| o.phase == AppPhase::Migrated), "{out:?}");
        assert_eq!(world.down.lock().unwrap().1, 1, "--max-down 1 was exceeded");
        for (app, _) in &fixtures {
            let w = world.world(app);
            assert_eq!(w.green.sts.as_ref().unwrap().ready_replicas, 2);
            assert!(w.green_claim_is_ours(&app.volumes[0].claim, &app.volumes[0].pv));
        }
    }

    /// Three apps as one group, the last without volumes (a proxy).
    fn group() -> (Vec<(AppPlan, Observed)>, GroupPlan) {
        let mut fixtures = apps(3);
        let (proxy, obs) = &mut fixtures[2];
        proxy.volumes.clear();
        obs.blue.claims.clear();
        obs.blue.volumes.clear();
        obs.blue.attachments = 0;
        obs.ec2.clear();
        // A KEDA ScaledObject scales it: resuming that starts blue by itself.
        let fence = baton_core::fences::Fence {
            kind: baton_core::fences::FenceKind::ScaledObject,
            namespace: "orders".into(),
            name: "db2".into(),
            shared: false,
            version: None,
        };
        obs.fences.insert(
            fence.key(),
            baton_core::fences::FenceSeen {
                active: true,
                original: None,
            },
        );
        proxy.fences.push(fence);
        let g = GroupPlan {
            name: "ledger".into(),
            members: fixtures.iter().map(|(a, _)| a.key()).collect(),
            found_by: "--group".into(),
        };
        (fixtures, g)
    }

    /// The apps whose `pick`ed actions were carried out, in order.
    fn order(world: &Simulated, pick: impl Fn(&Action) -> bool) -> Vec<String> {
        let log = world.log.lock().unwrap();
        log.iter()
            .filter(|(_, a)| pick(a))
            .map(|(k, _)| k.trim_start_matches("orders/").to_string())
            .collect()
    }

    #[tokio::test]
    async fn a_group_stops_blue_last_first_and_starts_green_first_last_then_rolls_back_the_same_way()
     {
        let (fixtures, g) = group();
        let world = Simulated::with(&fixtures);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        let (dir, state) = state_dir();
        // One unit at a time and one down: a group is one unit in one slot (its members
        // waiting on each other must not wait for a slot or a turn too).
        let one = Parallel { apps: 1, down: 1 };
        let out = run(
            &world,
            &state,
            &plans,
            std::slice::from_ref(&g),
            Mode::Migrate,
            one,
        )
        .await;
        assert!(out.iter().all(|o| o.phase == AppPhase::Migrated), "{out:?}");
        let stops = |a: &Action| matches!(a, Action::ScaleBlue { replicas: 0 });
        let starts = |a: &Action| matches!(a, Action::ScaleGreen { replicas } if *replicas > 0);
        assert_eq!(order(&world, stops), ["db2", "db1", "db0"]);
        assert_eq!(order(&world, starts), ["db0", "db1", "db2"]);
        // Every stop before any start: one window.
        let log = world.log.lock().unwrap().clone();
        let last_stop = log.iter().rposition(|(_, a)| stops(a)).unwrap();
        let first_start = log.iter().position(|(_, a)| starts(a)).unwrap();
        assert!(last_stop < first_start, "{log:?}");
        assert_eq!(
            world
                .world(&plans[2])
                .green
                .sts
                .as_ref()
                .unwrap()
                .ready_replicas,
            2
        );
        // The waits for the group are journaled, naming whom each waited for.
        let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
        assert!(
            journal.contains(r#""event":"group-waited","group":"ledger","members":["orders/db0"]"#),
            "{journal}"
        );

        world.log.lock().unwrap().clear();
        let out = run(
            &world,
            &state,
            &plans,
            std::slice::from_ref(&g),
            Mode::Rollback,
            one,
        )
        .await;
        assert!(
            out.iter().all(|o| o.phase == AppPhase::RolledBack),
            "{out:?}"
        );
        let green_stops = |a: &Action| matches!(a, Action::ScaleGreen { replicas: 0 });
        assert_eq!(order(&world, green_stops), ["db2", "db1", "db0"]);
        // The proxy's ScaledObject resumed (which starts it in blue by itself) only once
        // the members before it are back.
        let blue_starts = |a: &Action| {
            matches!(a, Action::ResumeFence { .. })
                || matches!(a, Action::ScaleBlue { replicas } if *replicas > 0)
        };
        assert_eq!(order(&world, blue_starts), ["db0", "db1", "db2", "db2"]);
    }

    #[tokio::test]
    async fn a_group_member_that_stops_stops_the_members_waiting_for_it() {
        let (mut fixtures, g) = group();
        // The first member's green claim is someone else's: it blocks in its window.
        let (app, obs) = &mut fixtures[0];
        let mut taken = obs.blue.claims[&app.volumes[0].claim].clone();
        taken.uid = "someone-else".into();
        taken.volume_name = String::new();
        obs.green.claims.insert(taken.name.clone(), taken);
        let world = Simulated::with(&fixtures);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        let (_dir, state) = state_dir();
        let out = run(&world, &state, &plans, &[g], Mode::Migrate, Parallel::of(3)).await;
        assert!(out.iter().all(|o| o.phase == AppPhase::Blocked), "{out:?}");
        assert!(
            out[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("not created by this migration")
        );
        for o in &out[1..] {
            let p = o.problem.as_deref().unwrap();
            assert!(p.contains("orders/db0 of group ledger stopped"), "{p}");
        }
        let starts = |a: &Action| matches!(a, Action::ScaleGreen { replicas } if *replicas > 0);
        assert!(
            order(&world, starts).is_empty(),
            "green started without db0"
        );
    }

    #[tokio::test]
    async fn without_max_down_apps_overlap_in_their_windows() {
        let fixtures = apps(4);
        let world = Simulated::with(&fixtures);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        let out = run_all(&world, &plans, Mode::Migrate, Parallel::of(4)).await;
        assert!(out.iter().all(|o| o.phase == AppPhase::Migrated));
        assert!(world.down.lock().unwrap().1 > 1, "the test needs overlap");
    }

    #[tokio::test]
    async fn transient_errors_are_retried_on_a_fresh_read_and_too_many_stop_the_app() {
        let fixtures = apps(2);
        let world = Simulated::with(&fixtures);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        world.flaky.lock().unwrap().insert(plans[0].key(), 2);
        // Every call fails: a batch of two spends two a round.
        world.flaky.lock().unwrap().insert(plans[1].key(), u32::MAX);
        let out = run_all(&world, &plans, Mode::Migrate, Parallel::of(2)).await;
        assert_eq!(out[0].phase, AppPhase::Migrated, "{out:?}");
        assert_eq!(out[1].phase, AppPhase::Blocked, "{out:?}");
        assert!(
            out[1].problem.as_deref().unwrap().contains("503"),
            "{:?}",
            out[1].problem
        );
        let left = world.flaky.lock().unwrap()[&plans[1].key()];
        assert_eq!(
            u32::MAX - left,
            2 * (MAX_RETRIES + 1),
            "one try and {MAX_RETRIES} retries of a batch of two"
        );
        // Blocked on its first action: nothing of blue was changed.
        assert_eq!(
            world.world(&plans[1]).blue,
            fixtures[1].1.blue,
            "a failed app changed blue"
        );
    }

    #[tokio::test]
    async fn a_cached_view_decides_only_what_it_may() {
        // Waits answer from a cluster's cache: Migrate trusts them for its next steps
        // (no read after a wait), Rollback never does (a fresh read after every wait).
        let fixtures = apps(1);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        let world = Simulated::with(&fixtures);
        let out = run_all(&world, &plans, Mode::Migrate, Parallel::of(1)).await;
        assert_eq!(out[0].phase, AppPhase::Migrated);
        assert_eq!(
            world.observes.load(Ordering::SeqCst),
            1,
            "migrate read again"
        );

        world.observes.store(0, Ordering::SeqCst);
        let out = run_all(&world, &plans, Mode::Rollback, Parallel::of(1)).await;
        assert_eq!(out[0].phase, AppPhase::RolledBack, "{out:?}");
        // Rollback waits for green's pods, green's attachments and blue Ready: each
        // decision after them is made on a fresh read.
        assert!(
            world.observes.load(Ordering::SeqCst) >= 4,
            "rollback trusted a cached view ({} reads)",
            world.observes.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn a_cached_view_lagging_a_write_is_read_again_not_written_again() {
        // The wait for blue's attachments answers with blue's PVs as they were before
        // Retain (their watch events behind the attachments'): the runner must read
        // fresh rather than send the Retain again.
        let fixtures = apps(1);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        let world = Simulated::with(&fixtures);
        let out = run_all(&world, &plans, Mode::Migrate, Parallel::of(1)).await;
        let mutations = out[0].mutations;

        let mut world = Simulated::with(&fixtures);
        world.lagging_pvs = Some(
            fixtures
                .iter()
                .map(|(a, o)| (a.key(), o.blue.clone()))
                .collect(),
        );
        let out = run_all(&world, &plans, Mode::Migrate, Parallel::of(1)).await;
        assert_eq!(out[0].phase, AppPhase::Migrated, "{out:?}");
        assert_eq!(out[0].mutations, mutations, "a lagging view cost a write");
        assert_eq!(
            world.observes.load(Ordering::SeqCst),
            2,
            "one fresh read at the start, one for the lagging view"
        );
    }

    #[tokio::test]
    async fn volumes_are_re_tagged_only_while_no_node_holds_them() {
        use baton_core::handover::{Access, plan_change};
        let mut fixtures = apps(2);
        let scoped: baton_core::world::Tags = [(
            "ebs.csi.aws.com/cluster-name".to_string(),
            "green".to_string(),
        )]
        .into();
        let green = Access {
            attach: vec![scoped.clone()],
            detach: vec![scoped],
            skipped: vec![],
        };
        for (app, obs) in &mut fixtures {
            let tags = obs
                .ec2
                .iter()
                .map(|(id, e)| (id.clone(), e.tags.clone()))
                .collect();
            app.handover = plan_change(&green, Some("blue"), None, &tags, "test").unwrap();
        }
        let original: Vec<_> = fixtures.iter().map(|(_, o)| o.ec2.clone()).collect();
        let world = Simulated::with(&fixtures);
        let plans: Vec<AppPlan> = fixtures.iter().map(|(a, _)| a.clone()).collect();
        let out = run_all(&world, &plans, Mode::Migrate, Parallel::of(2)).await;
        assert!(out.iter().all(|o| o.phase == AppPhase::Migrated), "{out:?}");
        for app in &plans {
            assert!(
                world
                    .world(app)
                    .ec2
                    .values()
                    .all(|e| e.tags["ebs.csi.aws.com/cluster-name"] == "green")
            );
        }
        let out = run_all(&world, &plans, Mode::Rollback, Parallel::of(2)).await;
        assert!(
            out.iter().all(|o| o.phase == AppPhase::RolledBack),
            "{out:?}"
        );
        for (app, before) in plans.iter().zip(&original) {
            let tags = |m: &BTreeMap<String, baton_core::world::Ec2Volume>| {
                m.values().map(|e| e.tags.clone()).collect::<Vec<_>>()
            };
            assert_eq!(
                tags(&world.world(app).ec2),
                tags(before),
                "blue's tags back"
            );
        }
        let retags = world.retags.lock().unwrap();
        // One call per app each way.
        assert_eq!(retags.len(), 4, "{retags:?}");
        for r in retags.iter() {
            assert_eq!(
                *r,
                (0, 0, 0, 0, true),
                "re-tagged while a node held a volume"
            );
        }
    }
}
