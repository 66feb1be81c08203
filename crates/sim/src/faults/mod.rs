//! Knobs that make the emulated estate misbehave on purpose, deterministically: latency,
//! injected faults (by rate or at the Nth matching request) and a bounded request log, for
//! the Kubernetes API of each cluster ([`Knobs`]) and for AWS through a proxy in front of
//! moto ([`AwsKnobs`], [`AwsProxy`]).
//!
//! A real migration meets a slow API server, a 409 on a scale, a throttled `AttachVolume`;
//! baton must be shown to ride them out, and a failing run must replay the same way. So
//! every random choice comes from a PRNG seeded with a `u64`: the same seed and the same
//! sequence of requests give the same faults and delays. (Concurrent requests reach the
//! knobs in whatever order they arrive; the sequence is what is deterministic.)
//!
//! This module holds what both sides share: [`Trigger`], [`Latency`], the generic
//! [`Rule`], the rule engine and the ring-buffer log; `spec` gives rules and latencies a
//! text form (`blue:method=GET:nth=1:500`) for the command line and `/debug/faults`.

mod aws;
mod control;
mod kube;
mod proxy;
mod spec;

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use aws::{AwsFault, AwsKnobs, AwsMatch, AwsRequest, AwsRule, Dialect};
pub(crate) use control::{DEBUG_FAULTS_PATH, DEBUG_REQUESTS_PATH, control};
pub(crate) use kube::{ApiCall, dropped_connection};
pub use kube::{ApiFault, ApiMatch, ApiRequest, ApiRule, Knobs};
pub use proxy::{AwsProxy, DebugError, ProxyError, debug_request};
pub use spec::{DEFAULT_HOLD, DEFAULT_RETRY_AFTER, FaultSpec, LatencySpec, SpecError, Target};

/// Requests kept in a log before the oldest are dropped.
pub const DEFAULT_LOG_CAPACITY: usize = 10_000;

/// When a rule fires, counted over the requests its matcher accepts (1-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Matching requests `from`, `from + 1`, … `from + count - 1`: `Burst { from: 3,
    /// count: 1 }` is the 3rd matching request only.
    Burst {
        /// The first matching request that fails, 1-based.
        from: u64,
        /// How many consecutive matching requests fail.
        count: u64,
    },
    /// Each matching request fails with this probability (clamped to 0.0..=1.0), drawn
    /// from the seeded PRNG.
    Rate(f64),
}

impl Trigger {
    /// Only the `n`th matching request (1-based).
    pub fn nth(n: u64) -> Self {
        Self::Burst { from: n, count: 1 }
    }
}

/// A delay added to every request: `fixed` plus a uniform draw from `0..=jitter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Always added.
    pub fixed: Duration,
    /// Upper bound of the seeded random extra.
    pub jitter: Duration,
}

impl Latency {
    /// A fixed delay without jitter.
    pub fn fixed(d: Duration) -> Self {
        Self {
            fixed: d,
            jitter: Duration::ZERO,
        }
    }
}

/// One fault rule: which requests it looks at (`M`), when it fires, and what it does (`F`).
/// Built with [`Rule::nth`], [`Rule::burst`] or [`Rule::rate`], then narrowed with the
/// matcher methods of [`ApiRule`] or [`AwsRule`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rule<M, F> {
    /// Which requests count for this rule; the default matches all.
    pub matcher: M,
    /// When it fires.
    pub trigger: Trigger,
    /// What a request it fires on gets.
    pub fault: F,
}

impl<M: Default, F> Rule<M, F> {
    /// Fails only the `n`th matching request (1-based).
    pub fn nth(n: u64, fault: F) -> Self {
        Self::new(Trigger::nth(n), fault)
    }

    /// Fails `count` consecutive matching requests from the `from`th on (1-based).
    pub fn burst(from: u64, count: u64, fault: F) -> Self {
        Self::new(Trigger::Burst { from, count }, fault)
    }

    /// Fails each matching request with probability `p`.
    pub fn rate(p: f64, fault: F) -> Self {
        Self::new(Trigger::Rate(p), fault)
    }

    fn new(trigger: Trigger, fault: F) -> Self {
        Self {
            matcher: M::default(),
            trigger,
            fault,
        }
    }
}

/// What a matcher looks at.
pub(crate) trait Matches<R: ?Sized> {
    fn matches(&self, request: &R) -> bool;
}

/// A rule with its count of matching requests seen so far.
#[derive(Debug)]
struct Armed<M, F> {
    rule: Rule<M, F>,
    seen: u64,
}

/// The rules, the seeded PRNGs and the latency of one side (one cluster, or AWS).
#[derive(Debug)]
pub(crate) struct Engine<M, F> {
    rules: Vec<Armed<M, F>>,
    latency: Latency,
    /// Fault draws and jitter draws use separate streams, so turning jitter on does not
    /// change which requests fail.
    fault_rng: StdRng,
    jitter_rng: StdRng,
}

/// Mixed into the seed of the jitter stream so it differs from the fault stream.
const JITTER_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

impl<M, F: Clone> Engine<M, F> {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            latency: Latency::default(),
            fault_rng: StdRng::seed_from_u64(seed),
            jitter_rng: StdRng::seed_from_u64(seed ^ JITTER_STREAM),
        }
    }

    /// Restarts both PRNG streams and every rule's count.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.fault_rng = StdRng::seed_from_u64(seed);
        self.jitter_rng = StdRng::seed_from_u64(seed ^ JITTER_STREAM);
        for r in &mut self.rules {
            r.seen = 0;
        }
    }

    pub(crate) fn set_latency(&mut self, latency: Latency) {
        self.latency = latency;
    }

    pub(crate) fn add(&mut self, rule: Rule<M, F>) {
        self.rules.push(Armed { rule, seen: 0 });
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn rules(&self) -> Vec<Rule<M, F>>
    where
        M: Clone,
    {
        self.rules.iter().map(|a| a.rule.clone()).collect()
    }

    /// The delay and the fault (if any) for one request. Every rule whose matcher accepts
    /// the request counts it (and draws, for a rate), so a rule's Nth does not depend on
    /// the other rules; the first rule that fires decides the fault.
    pub(crate) fn decide<R: ?Sized>(&mut self, request: &R) -> (Duration, Option<F>)
    where
        M: Matches<R>,
    {
        let mut fault = None;
        for armed in &mut self.rules {
            if !armed.rule.matcher.matches(request) {
                continue;
            }
            armed.seen += 1;
            let fires = match armed.rule.trigger {
                Trigger::Burst { from, count } => armed.seen >= from && armed.seen - from < count,
                Trigger::Rate(p) => self.fault_rng.random_bool(p.clamp(0.0, 1.0)),
            };
            if fires && fault.is_none() {
                fault = Some(armed.rule.fault.clone());
            }
        }
        (self.delay(), fault)
    }

    pub(crate) fn delay(&mut self) -> Duration {
        let Latency { fixed, jitter } = self.latency;
        if jitter.is_zero() {
            return fixed;
        }
        let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
        fixed + Duration::from_nanos(self.jitter_rng.random_range(0..=nanos))
    }
}

/// A bounded log: the newest `capacity` records, oldest first.
#[derive(Debug)]
pub(crate) struct Ring<R> {
    items: VecDeque<R>,
    capacity: usize,
    dropped: u64,
}

impl<R: Clone> Ring<R> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, r: R) {
        if self.capacity == 0 {
            self.dropped += 1;
            return;
        }
        while self.items.len() >= self.capacity {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(r);
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.items.len() > capacity {
            self.items.pop_front();
            self.dropped += 1;
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<R> {
        self.items.iter().cloned().collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &R> {
        self.items.iter()
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.dropped = 0;
    }

    /// Records pushed out (or never kept) since the last clear.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// A logged request that may have been answered with an injected fault.
pub trait Logged: Clone {
    /// Whether an injected fault answered it.
    fn faulted(&self) -> bool;

    /// The record as an item of `GET /debug/requests`.
    fn document(&self) -> serde_json::Value;
}

/// Knobs and their log: the engine that decides latency and faults from seeded PRNGs, and
/// the bounded log of what went through. Interior mutability throughout, so a test can
/// change the knobs while the server or proxy runs. [`Knobs`] (Kubernetes API) and
/// [`AwsKnobs`] (the AWS proxy) are this with their own matchers, faults and records.
#[derive(Debug)]
pub struct KnobSet<M, F, R> {
    engine: std::sync::Mutex<Engine<M, F>>,
    log: std::sync::Mutex<Ring<R>>,
}

impl<M, F: Clone, R: Logged> KnobSet<M, F, R> {
    /// No latency, no faults, an empty log of [`DEFAULT_LOG_CAPACITY`], PRNGs from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            engine: std::sync::Mutex::new(Engine::new(seed)),
            log: std::sync::Mutex::new(Ring::new(DEFAULT_LOG_CAPACITY)),
        }
    }

    /// Restarts the PRNGs from `seed` and every rule's count of matching requests.
    pub fn reseed(&self, seed: u64) {
        lock(&self.engine).reseed(seed);
    }

    /// Sets the delay added to every request from now on.
    pub fn set_latency(&self, latency: Latency) {
        lock(&self.engine).set_latency(latency);
    }

    /// Adds a fault rule (after those already set; the first that fires wins).
    pub fn inject(&self, rule: Rule<M, F>) {
        lock(&self.engine).add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.engine).clear();
    }

    /// The fault rules, in the order they were added.
    pub fn rules(&self) -> Vec<Rule<M, F>>
    where
        M: Clone,
    {
        lock(&self.engine).rules()
    }

    /// The logged requests, oldest first.
    pub fn requests(&self) -> Vec<R> {
        lock(&self.log).to_vec()
    }

    /// Requests answered with an injected fault, among those logged.
    pub fn faults(&self) -> usize {
        lock(&self.log).iter().filter(|r| r.faulted()).count()
    }

    /// Empties the log.
    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }

    /// Keeps only the newest `n` requests from now on.
    pub fn set_log_capacity(&self, n: usize) {
        lock(&self.log).set_capacity(n);
    }

    /// Requests pushed out of the full log since it was last cleared.
    pub fn dropped_requests(&self) -> u64 {
        lock(&self.log).dropped()
    }

    /// The log as `GET /debug/requests` serves it (on a cluster's API server and on the
    /// AWS proxy): `{"kind": "RequestLog", "dropped": N, "items": [...]}`, oldest first.
    pub(crate) fn log_document(&self) -> serde_json::Value {
        let log = lock(&self.log);
        let items: Vec<serde_json::Value> = log.iter().map(Logged::document).collect();
        serde_json::json!({ "kind": "RequestLog", "dropped": log.dropped(), "items": items })
    }

    /// The delay and the fault (if any) for one request.
    pub(crate) fn decide<C: ?Sized>(&self, call: &C) -> (Duration, Option<F>)
    where
        M: Matches<C>,
    {
        lock(&self.engine).decide(call)
    }

    /// The delay for a request no fault applies to.
    pub(crate) fn delay(&self) -> Duration {
        lock(&self.engine).delay()
    }

    pub(crate) fn record(&self, r: R) {
        lock(&self.log).push(r);
    }
}

/// Locks a mutex, taking the data of a poisoned one (a panicking test thread must not take
/// the emulator down with it).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Clone)]
    struct Even;
    impl Matches<u64> for Even {
        fn matches(&self, r: &u64) -> bool {
            r.is_multiple_of(2)
        }
    }

    fn fired(
        engine: &mut Engine<Even, &'static str>,
        requests: impl Iterator<Item = u64>,
    ) -> Vec<u64> {
        requests.filter(|r| engine.decide(r).1.is_some()).collect()
    }

    #[test]
    fn burst_counts_only_matching_requests() {
        let mut e = Engine::new(1);
        e.add(Rule::<Even, _>::burst(2, 2, "boom"));
        // Matching (even) requests are 0, 2, 4, 6, …: the 2nd and 3rd are 2 and 4.
        assert_eq!(fired(&mut e, 0..10), vec![2, 4]);
        e.reseed(1);
        assert_eq!(
            fired(&mut e, 0..10),
            vec![2, 4],
            "reseed restarts the count"
        );
    }

    #[test]
    fn rate_extremes_and_same_seed_same_faults() {
        let mut all = Engine::new(7);
        all.add(Rule::<Even, _>::rate(1.0, "boom"));
        assert_eq!(fired(&mut all, 0..6), vec![0, 2, 4]);
        let mut none = Engine::new(7);
        none.add(Rule::<Even, _>::rate(0.0, "boom"));
        assert!(fired(&mut none, 0..100).is_empty());

        let run = |seed| {
            let mut e = Engine::new(seed);
            e.add(Rule::<Even, _>::rate(0.3, "boom"));
            fired(&mut e, 0..400)
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let n = run(42).len();
        assert!(
            (20..=100).contains(&n),
            "about 30% of 200 matching, got {n}"
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_does_not_move_faults() {
        let mut e = Engine::new(3);
        e.add(Rule::<Even, _>::rate(0.5, "boom"));
        let plain = fired(&mut e, 0..100);
        e.reseed(3);
        e.set_latency(Latency {
            fixed: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
        });
        let mut with_jitter = Vec::new();
        for r in 0..100u64 {
            let (d, f) = e.decide(&r);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(15));
            if f.is_some() {
                with_jitter.push(r);
            }
        }
        assert_eq!(plain, with_jitter);
    }

    #[test]
    fn ring_keeps_the_newest() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.to_vec(), vec![2, 3, 4]);
        assert_eq!(r.dropped(), 2);
        r.set_capacity(1);
        assert_eq!(r.to_vec(), vec![4]);
    }
}
