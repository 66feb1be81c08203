//! How fast the emulated estate comes up: seeding a scenario (`baton sim up`'s wait) and
//! one StatefulSet scale-up on the seeded estate (`baton-sim`).
//!
//! For each scenario (`default`, then `large`: 250 StatefulSets × 4 claims = 1000 EBS
//! PVs in blue) it starts a fresh estate in this process — its own moto, the AWS fault
//! proxy, the clusters and their controllers, zero modelled delays — seeds the scenario
//! and reports the wall time until every app is Ready, what exists then (PVs, pods,
//! objects across all clusters), the AWS calls by action (from the proxy's request log),
//! the process's peak RSS (`VmHWM`, moto not included; monotonic, so `large` runs last),
//! and the time to scale one stopped StatefulSet in green from 0 to 3 replicas until all
//! three are Ready (claims provisioned, bound, attached, pods running).
//!
//! While seeding, a progress line every 10 s shows bound PVs and ready pods.
//!
//! Run (release profile; the debug figure comes from the dev profile):
//!
//! ```text
//! cargo bench -p baton-sim --bench seed
//! cargo bench -p baton-sim --bench seed --profile dev
//! BATON_BENCH_SCENARIOS=default cargo bench -p baton-sim --bench seed
//! ```
//!
//! Settings (environment): `BATON_BENCH_SCENARIOS` (comma-separated, default
//! `default,large`), `BATON_BENCH_TIMEOUT` (seconds allowed per seeding, default 600). The
//! table goes to stdout; the same figures as JSON to
//! `$CARGO_TARGET_DIR/bench-results/sim-seed.json` (`target/` of the workspace when
//! `CARGO_TARGET_DIR` is unset).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_sim::Cluster;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::ops::Part;
use baton_sim::patch::PatchType;
use baton_sim::resources::GroupResource;
use baton_sim::scenario::{self, Scenario};
use serde_json::{Value, json};

mod support;
use support::{mib, proc_status_bytes, write_results};

/// Replicas of the scale-up.
const SCALE_TO: i64 = 3;

/// What one scenario measured.
#[derive(Debug)]
struct Row {
    scenario: String,
    seconds: f64,
    error: Option<String>,
    pvs: usize,
    pods: usize,
    objects: usize,
    aws_calls: BTreeMap<String, usize>,
    peak_rss: Option<u64>,
    scale_up: Option<(String, Result<Duration, String>)>,
}

impl Row {
    fn aws_total(&self) -> usize {
        self.aws_calls.values().sum()
    }

    fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "seed_seconds": self.seconds,
            "seed_error": self.error,
            "pvs": self.pvs,
            "pods": self.pods,
            "objects": self.objects,
            "aws_calls_total": self.aws_total(),
            "aws_calls": self.aws_calls,
            "peak_rss_bytes": self.peak_rss,
            "scale_up": self.scale_up.as_ref().map(|(sts, r)| json!({
                "statefulset": sts,
                "replicas": SCALE_TO,
                "seconds": r.as_ref().ok().map(Duration::as_secs_f64),
                "error": r.as_ref().err(),
            })),
        })
    }
}

fn gr(group: &str, plural: &str) -> GroupResource {
    GroupResource {
        group: group.into(),
        plural: plural.into(),
    }
}

fn count(cluster: &Cluster, group: &str, plural: &str) -> usize {
    cluster
        .store
        .txn(|t| t.list(&gr(group, plural), None).len())
}

/// Prints bound PVs and ready pods of every cluster every 10 s until dropped.
fn progress(estate: &Estate) -> tokio::task::JoinHandle<()> {
    let clusters: Vec<Arc<Cluster>> = estate
        .server
        .clusters()
        .iter()
        .map(|c| c.cluster.clone())
        .collect();
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let line: Vec<String> = clusters
                .iter()
                .map(|c| {
                    let pvs = c.store.txn(|t| t.list(&gr("", "persistentvolumes"), None));
                    let bound = pvs
                        .iter()
                        .filter(|p| p["status"]["phase"] == "Bound")
                        .count();
                    let pods = c.store.txn(|t| t.list(&gr("", "pods"), None));
                    let ready = pods
                        .iter()
                        .filter(|p| baton_sim::controllers::api::pod_ready(p))
                        .count();
                    format!(
                        "{}: {bound}/{} PVs bound, {ready}/{} pods ready",
                        c.spec.name,
                        pvs.len(),
                        pods.len()
                    )
                })
                .collect();
            println!(
                "  … {:>4.0}s {}",
                started.elapsed().as_secs_f64(),
                line.join("; ")
            );
        }
    })
}

/// Scales `name` in `cluster` to `replicas` and waits (on the change stream) until the set
/// reports them all ready.
async fn scale(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    replicas: i64,
    timeout: Duration,
) -> Result<Duration, String> {
    let def = cluster
        .def("apps", "v1", "statefulsets")
        .expect("statefulsets is built in");
    let mut changes = cluster.store.subscribe();
    let started = Instant::now();
    let body = serde_json::to_vec(&json!({ "spec": { "replicas": replicas } })).expect("JSON");
    cluster
        .patch(&def, ns, name, PatchType::Merge, &body, Part::Main, false)
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let sts = cluster
            .store
            .txn(|t| t.get(&gr("apps", "statefulsets"), ns, name))
            .ok_or("the StatefulSet vanished")?;
        if sts["status"]["readyReplicas"].as_i64() == Some(replicas)
            && sts["status"]["replicas"].as_i64() == Some(replicas)
        {
            return Ok(started.elapsed());
        }
        tokio::select! {
            _ = changes.recv() => {}
            () = tokio::time::sleep_until(deadline) => {
                return Err(format!("not {replicas}/{replicas} ready after {timeout:?}: status {}", sts["status"]));
            }
        }
    }
}

async fn run(name: &str, timeout: Duration) -> Row {
    let scenario = Scenario::load(name).unwrap_or_else(|e| panic!("{e}"));
    let estate = Estate::start(EstateOptions {
        clusters: scenario.cluster_specs(),
        ..EstateOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("estate for {name}: {e}"));
    let knobs = estate.aws_proxy.knobs();
    knobs.set_log_capacity(1_000_000);
    knobs.clear_requests();
    println!("\nseeding {name:?}…");
    let ticker = progress(&estate);
    let started = Instant::now();
    let seeded = scenario::seed(&estate, &scenario, timeout).await;
    let seconds = started.elapsed().as_secs_f64();
    ticker.abort();
    let aws_calls = knobs.counts();
    let clusters: Vec<&Arc<Cluster>> = estate
        .server
        .clusters()
        .iter()
        .map(|c| &c.cluster)
        .collect();
    let mut row = Row {
        scenario: name.to_string(),
        seconds,
        error: seeded.as_ref().err().map(ToString::to_string),
        pvs: clusters
            .iter()
            .map(|c| count(c, "", "persistentvolumes"))
            .sum(),
        pods: clusters.iter().map(|c| count(c, "", "pods")).sum(),
        objects: clusters
            .iter()
            .map(|c| {
                c.store.txn(|t| {
                    t.resources()
                        .iter()
                        .map(|r| t.list(r, None).len())
                        .sum::<usize>()
                })
            })
            .sum(),
        aws_calls,
        peak_rss: None,
        scale_up: None,
    };
    if seeded.is_ok() {
        // The first stopped StatefulSet in a cluster whose apps are stopped (green).
        let target = scenario
            .clusters
            .iter()
            .filter(|c| c.apps == "stopped")
            .find_map(|c| {
                let cluster = &estate.server.cluster(&c.name)?.cluster;
                let sts = cluster
                    .store
                    .txn(|t| t.list(&gr("apps", "statefulsets"), None))
                    .into_iter()
                    .find(|s| s["spec"]["replicas"] == 0)?;
                Some((cluster.clone(), sts))
            });
        if let Some((cluster, sts)) = target {
            let ns = sts["metadata"]["namespace"].as_str().unwrap_or_default();
            let sname = sts["metadata"]["name"].as_str().unwrap_or_default();
            let r = scale(&cluster, ns, sname, SCALE_TO, Duration::from_secs(120)).await;
            row.scale_up = Some((format!("{}/{ns}/{sname}", cluster.spec.name), r));
        }
    }
    row.peak_rss = proc_status_bytes("VmHWM");
    estate.shutdown().await;
    row
}

fn print_table(rows: &[Row]) {
    println!(
        "\n  {:<10} {:>9} {:>6} {:>6} {:>8} {:>9} {:>10} {:>12}",
        "scenario", "seed s", "PVs", "pods", "objects", "AWS calls", "peak MiB", "scale 0→3 s"
    );
    for r in rows {
        let scale = match &r.scale_up {
            Some((_, Ok(d))) => format!("{:.2}", d.as_secs_f64()),
            Some((_, Err(_))) => "failed".into(),
            None => "-".into(),
        };
        println!(
            "  {:<10} {:>9.1} {:>6} {:>6} {:>8} {:>9} {:>10.1} {:>12}",
            r.scenario,
            r.seconds,
            r.pvs,
            r.pods,
            r.objects,
            r.aws_total(),
            r.peak_rss.map_or(0.0, mib),
            scale
        );
    }
    for r in rows {
        let calls: Vec<String> = r
            .aws_calls
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect();
        println!("\n  {} AWS calls: {}", r.scenario, calls.join(", "));
        if let Some(e) = &r.error {
            println!("  {} seeding failed: {e}", r.scenario);
        }
        if let Some((sts, Err(e))) = &r.scale_up {
            println!("  {} scale-up of {sts} failed: {e}", r.scenario);
        }
    }
}

fn main() {
    let scenarios: Vec<String> = std::env::var("BATON_BENCH_SCENARIOS")
        .unwrap_or_else(|_| "default,large".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let timeout = Duration::from_secs(
        std::env::var("BATON_BENCH_TIMEOUT")
            .ok()
            .map(|v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("BATON_BENCH_TIMEOUT={v:?}: expected seconds"))
            })
            .unwrap_or(600),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "baton-sim seeding benchmark: scenarios {scenarios:?}, {profile} build, {cores} cores, seeding timeout {}s",
        timeout.as_secs()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rows: Vec<Row> = runtime.block_on(async {
        let mut rows = Vec::new();
        for s in &scenarios {
            rows.push(run(s, timeout).await);
        }
        rows
    });
    print_table(&rows);
    let report = json!({
        "benchmark": "baton-sim seed",
        "timestamp": jiff::Timestamp::now().to_string(),
        "profile": profile,
        "cores": cores,
        "seed_timeout_seconds": timeout.as_secs(),
        "scenarios": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    });
    write_results("sim-seed.json", &report);
    let failed = rows
        .iter()
        .filter(|r| r.error.is_some() || matches!(r.scale_up, Some((_, Err(_)))))
        .count();
    assert_eq!(failed, 0, "some scenarios failed; see the table");
}
