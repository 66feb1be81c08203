//! The migrate benchmark (DESIGN.md §5): moves every StatefulSet of a scenario from blue to
//! green with the release `baton` binary, with 0 ms and 20 ms of injected API latency, and
//! the same apps in the seed runbook's naive order (every step inside the window, fixed
//! 2 s polling) on a fresh estate for a side-by-side ratio. Prints a table and writes
//! `$CARGO_TARGET_DIR/bench/migrate.json` (or `target/bench/migrate.json`).
//!
//! On the default estate green's EBS CSI driver is tag-scoped and one app's key admits
//! blue's driver only, so both orders do what that estate needs: `baton volumes grant`
//! before the move (not timed), and the ownership re-tag once blue has let go (baton's
//! one CreateTags in the window; the naive order's the same call, after its wait for
//! `available`).
//!
//!   cargo bench -p baton --bench migrate -- [--scenario large|default|FILE]
//!       [--latency-ms 0,20] [--parallel 250] [--max-down 12] [--naive-parallel 64]
//!       [--skip-naive]
//!       [--fingerprint-flush-s 300] [--delays zero|aws]
//!
//! Figures: wall time; Kubernetes and AWS calls per volume (baton's own: the emulator's
//! controllers are in-process, and baton's AWS calls go through a proxy of their own);
//! per-app window p50/p99 (blue scaled to 0 → green Ready); peak RSS of the baton process;
//! and the window's sequential API round trips, measured rather than counted: with every
//! call delayed by L ms, the window grows by L ms per call made one after another, so
//! round trips ≈ (p50 window at L ms − p50 window at 0 ms) / L ms (needs 0 in
//! `--latency-ms`). The emulator's own timing (moto above all) jitters the window by
//! ~0.1 s from run to run, so the estimate is ± 0.1 s / L: at 20 ms and a scenario of
//! three apps it can be several round trips off; add a larger L (`0,20,100`) for a
//! steadier figure. With the emulator's physical delays at zero (the default), the window
//! is all tool overhead. `--delays aws` sets them to typical AWS and kubelet figures
//! ([`AWS_DELAYS`], each with its source): then each window is also read against its floor,
//! the sum of those waits, which no tool can shorten, and the overhead is the window's
//! excess over the floor in per cent (with `--skip-naive`: the naive order would wait them
//! too, at length).
//!
//! moto is single-threaded and shared by baton and the emulated clusters, so the emulator's
//! own AWS traffic competes with baton's. The largest part of it is the running pods'
//! periodic data-fingerprint writes (one CreateTags per volume every 30 s by default: on
//! `large`, 1000 volumes make 33 calls a second, and moto ran at ~85% of a core). Real AWS
//! sees no such traffic, so the bench writes them every `--fingerprint-flush-s` (default
//! 300); a pod still writes its fingerprint when it stops, which is what the data check
//! needs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_sim::controllers::Delays;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::faults::{AwsKnobs, AwsProxy, Latency};
use baton_sim::scenario::{self, Scenario};
use serde_json::{Value, json};

struct Args {
    scenario: String,
    latencies: Vec<u64>,
    parallel: usize,
    /// baton's `--max-down` (None: its default, `--parallel`).
    max_down: Option<usize>,
    naive_parallel: usize,
    /// Skip the naive runs (for profiling baton alone).
    skip_naive: bool,
    /// How often running pods write their data fingerprints to EC2.
    fingerprint_flush: Duration,
    /// The emulator's physical delays: none (the window is all overhead) or AWS's
    /// (`--delays aws`: each window is also read against its floor).
    physical: Physical,
}

/// The emulator's physical delays during a run.
#[derive(Clone, Copy, PartialEq)]
enum Physical {
    /// All zero: the window is baton's and the emulator's overhead alone.
    Zero,
    /// Typical figures of EBS and the kubelet ([`AWS_DELAYS`]).
    Aws,
}

/// The physical waits of one app's window as AWS and the kubelet take them, typical and
/// conservative rather than flattering (seconds), with where each figure comes from. No
/// tool can shorten them: blue's pod stops, EC2 detaches the volume, attaches it to
/// green's node, green's pod starts.
const AWS_DELAYS: [(&str, u64, &str); 4] = [
    (
        "pod_stop",
        15,
        "pod deletion to volume unmounted and reported: a database's fast shutdown (1-5 s; \
         PostgreSQL docs, Server Shutdown) plus the kubelet's node status update that reports \
         the unmount (nodeStatusUpdateFrequency 10 s; kubelet config reference); grace \
         period caps it at 30 s (Kubernetes docs, Pod termination)",
    ),
    (
        "detach",
        13,
        "DetachVolume to available: 'EBS volumes typically take 10 seconds to detach' \
         (aws/karpenter-provider-aws designs/statefulset-disruption.md), seen by the EBS CSI \
         driver's poll at 11.9 s (pkg/cloud/cloud.go attachmentBackoff 1 s x1.8)",
    ),
    (
        "attach",
        10,
        "AttachVolume to attached and seen by the kubelet: '5 seconds to attach' (same \
         Karpenter design), the driver's poll at 6.0 s, the kubelet's \
         VerifyControllerAttachedVolume backoff (500 ms doubling) and volumesInUse update",
    ),
    (
        "pod_start",
        15,
        "volume attached to Ready: NodeStage/NodePublish on an existing filesystem \
         (blkid, fsck, mount: 1-2 s; EBS CSI driver node.go, mount-utils), container start, \
         and a readiness probe every 10 s by default (Kubernetes docs, Configure probes)",
    ),
];

impl Physical {
    fn delays(self, fingerprint_flush: Duration) -> Delays {
        let base = Delays {
            fingerprint_flush,
            ..Delays::default()
        };
        match self {
            Self::Zero => base,
            Self::Aws => {
                let secs = |name: &str| {
                    let (_, s, _) = AWS_DELAYS.iter().find(|(n, _, _)| *n == name).unwrap();
                    Duration::from_secs(*s)
                };
                Delays {
                    pod_stop: secs("pod_stop"),
                    detach: secs("detach"),
                    attach: secs("attach"),
                    pod_start: secs("pod_start"),
                    ..base
                }
            }
        }
    }

    /// One physical wait, in seconds (0 without delays).
    fn wait(self, name: &str) -> f64 {
        match self {
            Self::Zero => 0.0,
            Self::Aws => AWS_DELAYS
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or(0.0, |(_, s, _)| *s as f64),
        }
    }

    /// The physical parts of one app's window, as the emulator's controllers order
    /// them: (stopping its pods, detaching its volumes, attaching and starting). Pods
    /// that stop and start together (a Deployment, a StatefulSet with `Parallel` pod
    /// management, one replica): stop, detach, attach + start. An `OrderedReady`
    /// StatefulSet of N replicas stops its pods one after another (each detach overlaps
    /// the next stop but the last) and green starts them one after another, each attached
    /// before it starts: N × stop, detach, N × (attach + start). An app without volumes
    /// (a group's proxy) detaches and attaches nothing.
    fn parts(self, replicas: u32, ordered: bool, volumes: bool) -> (f64, f64, f64) {
        let n = if ordered { replicas as f64 } else { 1.0 };
        let attach = if volumes { self.wait("attach") } else { 0.0 };
        let detach = if volumes { self.wait("detach") } else { 0.0 };
        (
            n * self.wait("pod_stop"),
            detach,
            n * (attach + self.wait("pod_start")),
        )
    }
}

/// Each app's floor (see [`Physical::parts`]), from the plan baton wrote and the apps'
/// pod management in blue. Read before the move changes replicas.
async fn floors(bed: &Bed, physical: Physical) -> BTreeMap<String, f64> {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let mut out = BTreeMap::new();
    if physical == Physical::Zero {
        return out;
    }
    let plan: Value = std::fs::read_to_string(bed.dir.path().join("state/plan.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let kubeconfig = bed.dir.path().join("kubeconfig");
    let blue = baton_kube::KubeconfigSource::file(&kubeconfig)
        .client("blue")
        .await
        .expect("blue's client");
    // (stop, detach, start) per app with pods.
    let mut parts: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for app in plan["apps"].as_array().into_iter().flatten() {
        let (Some(ns), Some(name)) = (app["namespace"].as_str(), app["name"].as_str()) else {
            continue;
        };
        let replicas = app["replicas"].as_u64().unwrap_or(0) as u32;
        if replicas == 0 {
            continue;
        }
        let ordered = match app["kind"].as_str() {
            Some("StatefulSet") | None => kube::Api::<StatefulSet>::namespaced(blue.clone(), ns)
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|s| s.spec)
                .and_then(|s| s.pod_management_policy)
                .is_none_or(|p| p == "OrderedReady"),
            // A claim nothing mounts has no pod: no floor.
            Some("Claim") => continue,
            _ => false,
        };
        let volumes = app["volumes"].as_array().is_some_and(|v| !v.is_empty());
        parts.insert(
            format!("{ns}/{name}"),
            physical.parts(replicas, ordered, volumes),
        );
    }
    // A group moves in one window: blue stops its members in reverse order, green starts
    // them in order, so member i's window holds the stops and starts of members 0..=i
    // and the longest detach among them.
    for (key, (stop, detach, start)) in &parts {
        let group = plan["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|g| {
                let members: Vec<&str> = g["members"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                members.contains(&key.as_str()).then_some(members)
            });
        let floor = match group {
            Some(members) => {
                let upto: Vec<(f64, f64, f64)> = members
                    .iter()
                    .take_while(|m| **m != key.as_str())
                    .filter_map(|m| parts.get(*m).copied())
                    .chain([(*stop, *detach, *start)])
                    .collect();
                upto.iter().map(|p| p.0 + p.2).sum::<f64>()
                    + upto.iter().map(|p| p.1).fold(0.0, f64::max)
            }
            None => stop + detach + start,
        };
        out.insert(key.clone(), floor);
    }
    out
}

fn args() -> Args {
    let mut a = Args {
        scenario: "large".into(),
        latencies: vec![0, 20],
        parallel: 250,
        max_down: Some(12),
        naive_parallel: 64,
        skip_naive: false,
        fingerprint_flush: Duration::from_secs(300),
        physical: Physical::Zero,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--scenario" => a.scenario = it.next().expect("--scenario NAME"),
            "--latency-ms" => {
                a.latencies = it
                    .next()
                    .expect("--latency-ms 0,20")
                    .split(',')
                    .map(|s| s.parse().expect("milliseconds"))
                    .collect()
            }
            "--parallel" => a.parallel = it.next().and_then(|s| s.parse().ok()).expect("N"),
            "--max-down" => a.max_down = it.next().and_then(|s| s.parse().ok()),
            "--naive-parallel" => {
                a.naive_parallel = it.next().and_then(|s| s.parse().ok()).expect("N")
            }
            "--skip-naive" => a.skip_naive = true,
            "--delays" => {
                a.physical = match it.next().as_deref() {
                    Some("zero") => Physical::Zero,
                    Some("aws") => Physical::Aws,
                    other => panic!("--delays zero|aws, not {other:?}"),
                }
            }
            "--fingerprint-flush-s" => {
                a.fingerprint_flush =
                    Duration::from_secs(it.next().and_then(|s| s.parse().ok()).expect("SECONDS"))
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

struct Bed {
    estate: Estate,
    baton_aws: AwsProxy,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    seed_seconds: f64,
}

async fn bed(scenario: &Scenario, latency_ms: u64, delays: Delays) -> Bed {
    let estate = Estate::start(EstateOptions {
        clusters: scenario.cluster_specs(),
        delays,
        ..EstateOptions::default()
    })
    .await
    .expect("estate starts");
    let seeded = scenario::seed(&estate, scenario, Duration::from_secs(1800))
        .await
        .expect("scenario seeds");
    // baton's AWS calls go through a proxy of their own, so they are counted apart from
    // the emulated controllers' (and get the injected latency).
    let knobs = Arc::new(AwsKnobs::new(1));
    knobs.set_log_capacity(1_000_000);
    knobs.set_latency(Latency::fixed(Duration::from_millis(latency_ms)));
    let baton_aws = AwsProxy::start(&estate.aws_endpoint, knobs)
        .await
        .expect("proxy starts");
    for c in estate.server.clusters() {
        c.cluster.knobs.set_log_capacity(1_000_000);
        c.cluster.knobs.clear_requests();
        c.cluster
            .knobs
            .set_latency(Latency::fixed(Duration::from_millis(latency_ms)));
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    estate.server.kubeconfig().write(&kubeconfig).unwrap();
    let env = vec![
        ("KUBECONFIG".into(), kubeconfig.display().to_string()),
        ("AWS_ENDPOINT_URL".into(), baton_aws.endpoint()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_REGION".into(), estate.region.clone()),
    ];
    Bed {
        estate,
        baton_aws,
        dir,
        env,
        seed_seconds: seeded.seconds,
    }
}

/// baton's Kubernetes calls by kind of call: `GET pods` (a read by name), `LIST pods`,
/// `WATCH pods`, `PATCH statefulsets`, … (what the load on the API server is made of).
fn k8s_calls_by_kind(bed: &Bed) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for c in bed.estate.server.clusters() {
        for r in c.cluster.knobs.requests() {
            let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
            // /api/v1/…, /apis/GROUP/VERSION/…: drop the prefix, then [namespaces, NS,]
            // PLURAL [, NAME [, SUB]].
            let rest: &[&str] = match parts.first() {
                Some(&"api") => parts.get(2..).unwrap_or_default(),
                _ => parts.get(3..).unwrap_or_default(),
            };
            let rest = match rest {
                ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
                other => other,
            };
            let (plural, named) = (rest.first().copied().unwrap_or("?"), rest.len() > 1);
            let verb = match (r.method.as_str(), named) {
                ("GET", false) if r.query.contains("watch=") => "WATCH",
                ("GET", false) => "LIST",
                (m, _) => m,
            };
            *by.entry(format!("{verb} {plural}")).or_default() += 1;
        }
    }
    by
}

fn k8s_calls(bed: &Bed) -> usize {
    bed.estate
        .server
        .clusters()
        .iter()
        .map(|c| c.cluster.knobs.requests().len())
        .sum()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// A field of `/proc/PID/status` (`VmHWM`, `VmRSS`, `Threads`), its number only.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    proc_status(pid, "VmHWM")
}

/// Before the move, as the runbook and baton's tour both do: green's EBS CSI driver role
/// given the customer-managed KMS keys of blue's volumes (`baton volumes grant`), and the
/// IAM roles blue's pods assume made to trust green (`baton identity apply`); nothing
/// on a scenario without such keys or roles. Not timed.
async fn authorize_green(bed: &Bed) {
    for (command, dir) in [
        (["volumes", "grant"], "grants"),
        (["identity", "apply"], "identity"),
    ] {
        let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(command)
            .args(["--from", "blue", "--to", "green", "--yes"])
            .arg("--state-dir")
            .arg(bed.dir.path().join(dir))
            .envs(bed.env.iter().cloned())
            .output()
            .await
            .expect("baton runs");
        assert!(
            o.status.success(),
            "baton {}: {}",
            command.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

async fn run_baton(bed: &Bed, parallel: usize, max_down: Option<usize>) -> Value {
    authorize_green(bed).await;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "migrate", "--from", "blue", "--to", "green", "--yes", "-o", "json",
        ])
        .args(["--parallel", &parallel.to_string()])
        .args(max_down.map(|n| format!("--max-down={n}")))
        .arg("--state-dir")
        .arg(bed.dir.path().join("state"))
        .envs(bed.env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("baton runs");
    let pid = child.id().unwrap_or(0);
    let mut peak = 0;
    // Where the memory goes over the run: resident KiB and threads, sampled with the
    // wall clock so that the journal's phases can be laid over them.
    let mut samples: Vec<(jiff::Timestamp, u64, u64)> = Vec::new();
    let stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut s = String::new();
        let mut out = stdout;
        out.read_to_string(&mut s).await.unwrap();
        s
    });
    loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if let (Some(rss), Some(threads)) = (proc_status(pid, "VmRSS"), proc_status(pid, "Threads"))
        {
            samples.push((jiff::Timestamp::now(), rss, threads));
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let out: Value = serde_json::from_str(&reader.await.unwrap()).expect("baton -o json");
    let outcomes = out.as_array().cloned().unwrap_or_default();
    let mut windows: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| o["window_seconds"].as_f64())
        .collect();
    let migrated = outcomes.iter().filter(|o| o["phase"] == "migrated").count();
    // What the apps waited for, from the journal: total and p50 seconds per condition.
    let mut waits: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let journal =
        std::fs::read_to_string(bed.dir.path().join("state/journal.jsonl")).unwrap_or_default();
    // Where the wall time went: from the run's start to the first app stopping blue
    // (preparing), and from there to the last app Ready in green (the windows).
    let (mut begun, mut first_down, mut last_up) = (None, None, None);
    for line in journal.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let at = e["at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        match (e["event"].as_str(), e["phase"].as_str()) {
            (Some("run-started"), _) => begun = begun.or(at),
            (Some("phase"), Some("draining")) => first_down = first_down.or(at),
            (Some("phase"), Some("migrated")) => last_up = at.or(last_up),
            _ => {}
        }
    }
    let span = |a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>| {
        a.zip(b)
            .and_then(|(a, b)| b.duration_since(a).try_into().ok())
            .map(|d: Duration| d.as_secs_f64())
    };
    let (preparing, windows_span) = (span(begun, first_down), span(first_down, last_up));
    // Resident memory while reading and planning (to the first window) and while moving.
    let most = |keep: &dyn Fn(jiff::Timestamp) -> bool| {
        samples
            .iter()
            .filter(|(at, _, _)| keep(*at))
            .map(|(_, rss, _)| *rss)
            .max()
            .map(|k| k as f64 / 1024.0)
    };
    let rss_planning = first_down.and_then(|f| most(&|at| at < f));
    let rss_moving = first_down.and_then(|f| most(&|at| at >= f));
    let threads = samples.iter().map(|(_, _, t)| *t).max();
    // Per app, the seconds it spent waiting on the world (its own waits and its group's).
    let mut waited_by_app: BTreeMap<String, f64> = BTreeMap::new();
    for line in journal.lines() {
        if let Ok(e) = serde_json::from_str::<Value>(line)
            && (e["event"] == "waited" || e["event"] == "group-waited")
            && let Some(app) = e["app"].as_str()
        {
            *waited_by_app.entry(app.to_string()).or_default() +=
                e["millis"].as_f64().unwrap_or(0.0) / 1000.0;
        }
    }
    for line in journal.lines() {
        if let Ok(e) = serde_json::from_str::<Value>(line)
            && e["event"] == "waited"
        {
            let wait = e["wait"].as_str().unwrap_or("?").to_string();
            let secs = e["millis"].as_f64().unwrap_or(0.0) / 1000.0;
            waits.entry(wait).or_default().push(secs);
        }
    }
    let waits: BTreeMap<String, Value> = waits
        .into_iter()
        .map(|(k, mut v)| {
            let total: f64 = v.iter().sum();
            let n = v.len();
            let p50 = percentile(&mut v, 0.5);
            (
                k,
                json!({ "count": n, "total_seconds": total, "p50_seconds": p50 }),
            )
        })
        .collect();
    json!({
        "waits": waits,
        "wall_seconds": wall,
        "start_to_first_window_seconds": preparing,
        "first_window_to_last_ready_seconds": windows_span,
        "apps": outcomes.len(),
        "migrated": migrated,
        "waited_by_app": waited_by_app,
        "windows_by_app": outcomes
            .iter()
            .filter_map(|o| Some((o["app"].as_str()?.to_string(), o["window_seconds"].as_f64()?)))
            .collect::<BTreeMap<String, f64>>(),
        "window_p50": percentile(&mut windows, 0.5),
        "window_p99": percentile(&mut windows, 0.99),
        "peak_rss_mib": peak as f64 / 1024.0,
        "rss_planning_mib": rss_planning,
        "rss_moving_mib": rss_moving,
        "max_threads": threads,
    })
}

/// The seed runbook's order, per app: every step inside the window, fixed 2 s polls,
/// Retain patched only after scale-down, the snapshot awaited.
mod naive {
    use super::*;
    use baton_core::machine::Side;
    use baton_core::plan::AppPlan;
    use baton_kube::Cluster;
    use baton_kube::manifest::{Origin, green_claim, green_volume};
    use baton_kube::request;

    const POLL: Duration = Duration::from_secs(2);

    async fn poll_side(c: &Cluster, app: &AppPlan, done: impl Fn(&Side) -> bool) {
        let claims: Vec<String> = app.volumes.iter().map(|v| v.claim.clone()).collect();
        let pvs: Vec<String> = app.volumes.iter().map(|v| v.pv.clone()).collect();
        loop {
            tokio::time::sleep(POLL).await;
            if done(
                &c.side(&app.namespace, app.kind, &app.name, &claims, &pvs)
                    .await
                    .unwrap(),
            ) {
                return;
            }
        }
    }

    pub async fn move_app(
        blue: &Cluster,
        green: &Cluster,
        aws: &baton_aws::Aws,
        app: &AppPlan,
    ) -> f64 {
        let t0 = Instant::now();
        let ns = &app.namespace;
        blue.send(&request::scale(app.kind, ns, &app.name, 0))
            .await
            .unwrap();
        poll_side(blue, app, |s| s.pods == 0).await;
        let ids: Vec<String> = app.volumes.iter().map(|v| v.volume_id.clone()).collect();
        loop {
            tokio::time::sleep(POLL).await;
            let v = aws
                .describe_volumes(&[baton_aws::Filter::new("volume-id", ids.iter().cloned())])
                .await
                .unwrap();
            if v.iter()
                .all(|v| v.state == baton_aws::VolumeState::Available)
            {
                break;
            }
        }
        // Green's driver runs under the cluster-scoped policy: the volumes must name
        // green before it may attach them (and not before blue has detached them).
        aws.send_tags(&baton_aws::NewTags {
            resources: ids.clone(),
            tags: [(
                baton_core::handover::CLUSTER_NAME_TAG.to_string(),
                "green".to_string(),
            )]
            .into(),
        })
        .await
        .unwrap();
        let origin = Origin {
            migration: "naive",
            from: "blue",
        };
        for v in &app.volumes {
            blue.send(&request::set_reclaim(
                &v.pv,
                None,
                baton_core::world::ReclaimPolicy::Retain,
                None,
            ))
            .await
            .unwrap();
            let snap = aws
                .create_snapshot(&baton_aws::NewSnapshot {
                    volume_id: v.volume_id.clone(),
                    description: "runbook".into(),
                    tags: Default::default(),
                })
                .await
                .unwrap();
            loop {
                let s = aws
                    .describe_snapshots(std::slice::from_ref(&snap.id), &[])
                    .await
                    .unwrap();
                if s.iter().all(|s| s.state == "completed") {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
            let bc = blue.claim(ns, &v.claim).await.unwrap().unwrap();
            let gc: k8s_openapi::api::core::v1::PersistentVolumeClaim = serde_json::from_value(
                green
                    .send(&request::create_claim(&green_claim(&bc, &v.pv, &origin)))
                    .await
                    .unwrap()
                    .unwrap(),
            )
            .unwrap();
            let bpv = blue.volume(&v.pv).await.unwrap().unwrap();
            green
                .send(&request::create_volume(&green_volume(
                    &bpv, &gc, "Delete", false, &origin,
                )))
                .await
                .unwrap();
        }
        poll_side(green, app, |s| {
            app.volumes
                .iter()
                .all(|v| s.claims.get(&v.claim).is_some_and(|c| c.phase == "Bound"))
        })
        .await;
        green
            .send(&request::scale(app.kind, ns, &app.name, app.replicas))
            .await
            .unwrap();
        let r = app.replicas;
        poll_side(green, app, |s| {
            s.sts.as_ref().is_some_and(|x| x.ready_replicas >= r)
        })
        .await;
        t0.elapsed().as_secs_f64()
    }
}

async fn run_naive(bed: &Bed, parallel: usize) -> Value {
    use futures::StreamExt;
    authorize_green(bed).await;
    let kubeconfig = baton_kube::KubeconfigSource::file(bed.dir.path().join("kubeconfig"));
    let blue = baton_kube::Cluster::connect(&kubeconfig, "blue")
        .await
        .unwrap();
    let green = baton_kube::Cluster::connect(&kubeconfig, "green")
        .await
        .unwrap();
    let aws = baton_aws::Aws::connect(&baton_sim::estate::aws_config(
        &bed.baton_aws.endpoint(),
        &bed.estate.region,
    ))
    .await
    .unwrap();
    let (b, g) = (
        blue.view(&[]).await.unwrap(),
        green.view(&[]).await.unwrap(),
    );
    let ids: Vec<String> = b
        .volumes
        .iter()
        .filter_map(|v| v.volume_id.clone())
        .collect();
    let mut ec2 = BTreeMap::new();
    for chunk in ids.chunks(200) {
        for v in aws
            .describe_volumes(&[baton_aws::Filter::new("volume-id", chunk.iter().cloned())])
            .await
            .unwrap()
        {
            ec2.insert(
                v.id.clone(),
                baton_core::world::Ec2Volume {
                    id: v.id.clone(),
                    az: v.availability_zone.clone(),
                    size_gib: v.size_gib,
                    volume_type: v.volume_type.clone(),
                    encrypted: v.encrypted,
                    kms_key_id: v.kms_key_id.clone(),
                    multi_attach: v.multi_attach,
                    state: "in-use".into(),
                    attached_to: vec![],
                    tags: Default::default(),
                },
            );
        }
    }
    let plan = baton_core::planner::plan(
        &baton_core::planner::Inputs {
            blue: &b,
            green: &g,
            ec2: &ec2,
            vpcs: Default::default(),
            aws_region: String::new(),
            now: String::new(),
            drivers: Default::default(),
            pod_roles: None,
        },
        &Default::default(),
        &Default::default(),
    );
    let started = Instant::now();
    let mut windows: Vec<f64> =
        futures::stream::iter(plan.apps.iter().filter(|a| !a.volumes.is_empty()))
            .map(|app| naive::move_app(&blue, &green, &aws, app))
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
    json!({
        "wall_seconds": started.elapsed().as_secs_f64(),
        "apps": windows.len(),
        "window_p50": percentile(&mut windows, 0.5),
        "window_p99": percentile(&mut windows, 0.99),
    })
}

#[tokio::main]
async fn main() {
    let a = args();
    let scenario = Scenario::load(&a.scenario).expect("scenario loads");
    let mut results = Vec::new();
    println!(
        "{:<10} {:>7} {:>8} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>7} {:>7}",
        "run",
        "lat ms",
        "volumes",
        "wall s",
        "k8s/vol",
        "aws/vol",
        "win p50 s",
        "win p99 s",
        "rss MiB",
        "seed s",
        "ratio",
        "win RTs"
    );
    // p50 windows at 0 ms (baton, naive): the base the round trips are measured from.
    let zero = a.latencies.contains(&0);
    let mut base: Option<(f64, f64)> = None;
    let round_trips = |p50: f64, base: Option<f64>, lat: u64| {
        if lat == 0 {
            return None;
        }
        base.map(|b| (p50 - b) / (lat as f64 / 1000.0))
    };
    let rts = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
    let mut latencies = a.latencies.clone();
    if zero {
        // 0 first, so every other latency has its base when its row is printed.
        latencies.sort_by_key(|&l| l != 0);
    }
    for &lat in &latencies {
        let bed_b = bed(&scenario, lat, a.physical.delays(a.fingerprint_flush)).await;
        let volumes = bed_b.estate.server.cluster("blue").map_or(0, |c| {
            c.cluster
                .store
                .txn(|t| {
                    t.list(
                        &baton_sim::resources::GroupResource {
                            group: String::new(),
                            plural: "persistentvolumes".into(),
                        },
                        None,
                    )
                })
                .len()
        });
        for c in bed_b.estate.server.clusters() {
            c.cluster.take_controller_passes();
        }
        let b = run_baton(&bed_b, a.parallel, a.max_down).await;
        let app_floors = floors(&bed_b, a.physical).await;
        // Where the emulator's time went during baton's run, per cluster and controller.
        let mut passes = BTreeMap::new();
        for c in bed_b.estate.server.clusters() {
            for (name, p) in c.cluster.take_controller_passes() {
                passes.insert(format!("{}/{name}", c.cluster.spec.name), p);
            }
        }
        let k8s = k8s_calls(&bed_b);
        let aws_calls = bed_b.baton_aws.knobs().requests().len();
        let mut aws_by_action: BTreeMap<String, usize> = BTreeMap::new();
        for r in bed_b.baton_aws.knobs().requests() {
            *aws_by_action
                .entry(r.action.clone().unwrap_or_default())
                .or_default() += 1;
        }
        let k8s_by_kind = k8s_calls_by_kind(&bed_b);
        let seed_b = bed_b.seed_seconds;
        bed_b.estate.shutdown().await;

        let n = if a.skip_naive {
            json!({ "wall_seconds": 0.0, "window_p50": 0.0, "window_p99": 0.0 })
        } else {
            let bed_n = bed(&scenario, lat, a.physical.delays(a.fingerprint_flush)).await;
            let n = run_naive(&bed_n, a.naive_parallel).await;
            bed_n.estate.shutdown().await;
            n
        };

        let per = |x: usize| x as f64 / volumes.max(1) as f64;
        let ratio = n["window_p50"].as_f64().unwrap_or(0.0)
            / b["window_p50"].as_f64().unwrap_or(1.0).max(1e-9);
        let (b50, n50) = (
            b["window_p50"].as_f64().unwrap_or(0.0),
            n["window_p50"].as_f64().unwrap_or(0.0),
        );
        if lat == 0 {
            base = Some((b50, n50));
        }
        let (b_rts, n_rts) = (
            round_trips(b50, base.map(|b| b.0), lat),
            round_trips(n50, base.map(|b| b.1), lat),
        );
        println!(
            "{:<10} {:>7} {:>8} {:>8.1} {:>9.1} {:>9.1} {:>10.2} {:>10.2} {:>9.1} {:>9.1} {:>7} {:>7}",
            "baton",
            lat,
            volumes,
            b["wall_seconds"].as_f64().unwrap(),
            per(k8s),
            per(aws_calls),
            b["window_p50"].as_f64().unwrap(),
            b["window_p99"].as_f64().unwrap(),
            b["peak_rss_mib"].as_f64().unwrap(),
            seed_b,
            "",
            rts(b_rts)
        );
        println!(
            "{:<10} {:>7} {:>8} {:>8.1} {:>9} {:>9} {:>10.2} {:>10.2} {:>9} {:>9} {:>6.1}x {:>7}",
            "naive",
            lat,
            volumes,
            n["wall_seconds"].as_f64().unwrap(),
            "-",
            "-",
            n["window_p50"].as_f64().unwrap(),
            n["window_p99"].as_f64().unwrap(),
            "-",
            "-",
            ratio,
            rts(n_rts)
        );
        let mut kinds: Vec<_> = k8s_by_kind.iter().collect();
        kinds.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        let top: Vec<String> = kinds
            .iter()
            .take(8)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("           baton's k8s calls: {}", top.join(", "));
        let mut busy: Vec<_> = passes.iter().collect();
        busy.sort_by(|x, y| y.1.busy_seconds.total_cmp(&x.1.busy_seconds));
        let busy: Vec<String> = busy
            .iter()
            .take(6)
            .map(|(k, p)| format!("{k} {:.1} s/{} passes", p.busy_seconds, p.passes))
            .collect();
        println!("           emulator controllers: {}", busy.join(", "));
        let waits: Vec<String> = b["waits"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, w)| {
                        format!("{k} p50 {:.2} s", w["p50_seconds"].as_f64().unwrap_or(0.0))
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!("           baton's waits: {}", waits.join(", "));
        let secs = |k: &str| b[k].as_f64().map_or("-".into(), |v| format!("{v:.1} s"));
        println!(
            "           baton's wall: start to first window {}, first window to last Ready {}",
            secs("start_to_first_window_seconds"),
            secs("first_window_to_last_ready_seconds")
        );
        let mib = |k: &str| b[k].as_f64().map_or("-".into(), |v| format!("{v:.0} MiB"));
        let per_1000 = b["peak_rss_mib"].as_f64().unwrap_or(0.0) * 1000.0 / volumes.max(1) as f64;
        // Below 1,000 volumes the fixed cost (binary, runtime, connections) is most of it.
        let per_1000 = if volumes >= 1000 {
            format!("{per_1000:.0} MiB per 1,000 volumes")
        } else {
            "fixed cost dominates below 1,000 volumes".into()
        };
        println!(
            "           baton's memory: peak {} ({per_1000}); resident while reading and planning {}, while moving {}; at most {} threads",
            mib("peak_rss_mib"),
            mib("rss_planning_mib"),
            mib("rss_moving_mib"),
            b["max_threads"]
        );
        // Each app's window against its floor: the excess in per cent, p50 and p99 over
        // the apps, and the total excess over the total floor.
        let windows = b["windows_by_app"].as_object().cloned().unwrap_or_default();
        let mut excess: Vec<f64> = Vec::new();
        let (mut sum_floor, mut sum_window) = (0.0, 0.0);
        for (app, floor) in &app_floors {
            if let Some(w) = windows.get(app).and_then(Value::as_f64) {
                excess.push((w - floor) / floor * 100.0);
                sum_floor += floor;
                sum_window += w;
            }
        }
        // baton's own time in each window: the window less what the app waited on the
        // world (pods stopping, volumes detaching, green Ready: the emulator's and moto's
        // pace, slowed when the machine is busy).
        let waited = b["waited_by_app"].as_object().cloned().unwrap_or_default();
        let mut own: Vec<f64> = app_floors
            .keys()
            .filter_map(|app| {
                let w = windows.get(app)?.as_f64()?;
                Some((w - waited.get(app).and_then(Value::as_f64).unwrap_or(0.0)).max(0.0))
            })
            .collect();
        let own_total: f64 = own.iter().sum();
        if !own.is_empty() && sum_floor > 0.0 {
            println!(
                "           baton's own time in the windows (window less the waits on the world): p50 {:.2} s, p99 {:.2} s, all {:.1} % of the floors",
                percentile(&mut own, 0.5),
                percentile(&mut own, 0.99),
                own_total / sum_floor * 100.0
            );
        }
        let over_p50 = (!excess.is_empty()).then(|| percentile(&mut excess, 0.5));
        let over_p99 = (!excess.is_empty()).then(|| percentile(&mut excess, 0.99));
        let over_total = (sum_floor > 0.0).then(|| (sum_window - sum_floor) / sum_floor * 100.0);
        if let (Some(p50), Some(p99), Some(total)) = (over_p50, over_p99, over_total) {
            println!(
                "           windows against their floors ({} apps; one pod's waits: {}): overhead p50 {p50:+.1} %, p99 {p99:+.1} %, all windows {total:+.1} % ({sum_window:.1} s over {sum_floor:.1} s)",
                excess.len(),
                AWS_DELAYS
                    .iter()
                    .map(|(n, s, _)| format!("{n} {s} s"))
                    .collect::<Vec<_>>()
                    .join(" + "),
            );
        }
        results.push(json!({
            "floors_by_app": app_floors,
            "overhead_p50_percent": over_p50,
            "overhead_p99_percent": over_p99,
            "overhead_total_percent": over_total,
            "own_percent_of_floors": (sum_floor > 0.0).then(|| own_total / sum_floor * 100.0),
            "physical_delays": match a.physical {
                Physical::Zero => json!("zero"),
                Physical::Aws => json!(AWS_DELAYS
                    .iter()
                    .map(|(n, s, src)| json!({ "wait": n, "seconds": s, "source": src }))
                    .collect::<Vec<_>>()),
            },
            "scenario": scenario.name,
            "latency_ms": lat,
            "volumes": volumes,
            "parallel": a.parallel,
            "max_down": a.max_down.unwrap_or(a.parallel),
            "naive_parallel": a.naive_parallel,
            "fingerprint_flush_seconds": a.fingerprint_flush.as_secs(),
            "baton": b,
            "baton_k8s_calls": k8s,
            "baton_aws_calls": aws_calls,
            "baton_aws_calls_by_action": aws_by_action,
            "baton_k8s_calls_by_kind": k8s_by_kind,
            "emulator_controller_passes": passes,
            "k8s_calls_per_volume": per(k8s),
            "aws_calls_per_volume": per(aws_calls),
            "naive": n,
            "window_ratio_naive_over_baton": ratio,
            // (p50 window at this latency − at 0 ms) / this latency; null at 0 ms or
            // without a 0 ms run.
            "baton_window_round_trips": b_rts,
            "naive_window_round_trips": n_rts,
        }));
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("migrate.json");
    std::fs::write(&file, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("wrote {}", file.display());
}
