//! Throughput, latency and memory of the emulated Kubernetes API server (`baton-sim`).
//!
//! Starts one emulated cluster in this process, stores `BATON_BENCH_OBJECTS` ConfigMaps in
//! one namespace (inserted in-process), and drives the server over real HTTPS with kube-rs
//! from `BATON_BENCH_WORKERS` concurrent workers sharing one client: GET of one object,
//! LIST of the whole collection, LIST of one page (`limit=500`) and a merge PATCH of a
//! label. For each it reports requests/s, p50, p99 and max latency. The same operations
//! called in-process (no HTTP, one caller) are reported alongside, to tell the store's cost
//! from HTTP + TLS + JSON. Memory is the process RSS before and after inserting as many
//! realistic EBS CSI PersistentVolumes; that figure includes the watch history the store
//! keeps (100k changes by default), and a second figure for a cluster keeping one change
//! shows how much of it the history is.
//!
//! Client and server share the machine's cores, so the HTTP figures are for both ends.
//!
//! Run (release profile):
//!
//! ```text
//! cargo bench -p baton-sim --bench api
//! BATON_BENCH_OBJECTS=1000 BATON_BENCH_WORKERS=2 BATON_BENCH_SECONDS=1 cargo bench -p baton-sim --bench api
//! ```
//!
//! Settings (environment): `BATON_BENCH_OBJECTS` (default 10000), `BATON_BENCH_WORKERS`
//! (default 8), `BATON_BENCH_SECONDS` (upper bound on each phase, default 4). The table goes
//! to stdout; the same figures as JSON to `$CARGO_TARGET_DIR/bench-results/sim-api.json`
//! (`target/` of the workspace when `CARGO_TARGET_DIR` is unset).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use baton_sim::ops::{ListOptions, Part};
use baton_sim::patch::PatchType;
use baton_sim::{Cluster, ClusterSpec, ResourceDef, SimServer};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

mod support;
use support::{mib, proc_status_bytes, write_results};

const NAMESPACE: &str = "default";
/// Page size of the paged LIST.
const PAGE: u32 = 500;

/// What to run, from the environment.
#[derive(Debug, Clone, Copy)]
struct Settings {
    objects: usize,
    workers: usize,
    phase_cap: Duration,
}

impl Settings {
    fn from_env() -> Self {
        fn var(name: &str, default: usize) -> usize {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| panic!("{name}={v:?}: expected a positive integer")),
                Err(_) => default,
            }
        }
        Self {
            objects: var("BATON_BENCH_OBJECTS", 10_000),
            workers: var("BATON_BENCH_WORKERS", 8),
            phase_cap: Duration::from_secs(var("BATON_BENCH_SECONDS", 4) as u64),
        }
    }
}

/// The figures of one measured phase.
#[derive(Debug)]
struct Summary {
    name: String,
    workers: usize,
    requests: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    fn new(
        name: &str,
        workers: usize,
        mut latencies: Vec<Duration>,
        errors: Vec<String>,
        elapsed: Duration,
    ) -> Self {
        latencies.sort_unstable();
        // Nearest-rank percentile.
        let pct = |p: f64| -> Duration {
            if latencies.is_empty() {
                return Duration::ZERO;
            }
            let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
            latencies[rank.clamp(1, latencies.len()) - 1]
        };
        Self {
            name: name.to_string(),
            workers,
            requests: latencies.len(),
            errors: errors.len(),
            first_error: errors.into_iter().next(),
            elapsed,
            p50: pct(50.0),
            p99: pct(99.0),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "workers": self.workers,
            "requests": self.requests,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.rate(),
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `op(i)` for i = 0.. from `workers` concurrent tasks until `total` requests were
/// started or `cap` has passed, timing each request.
async fn run_concurrent<F, Fut>(
    name: &str,
    workers: usize,
    total: usize,
    cap: Duration,
    op: F,
) -> Summary
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + cap;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let op = op.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let result = op(i).await;
                latencies.push(t.elapsed());
                if let Err(e) = result {
                    errors.push(e);
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.expect("benchmark worker panicked");
        latencies.extend(l);
        errors.extend(e);
    }
    Summary::new(name, workers, latencies, errors, start.elapsed())
}

/// Runs `op(i)` for i = 0.. on this thread until `total` calls or `cap` has passed.
fn run_inline(
    name: &str,
    total: usize,
    cap: Duration,
    mut op: impl FnMut(usize) -> Result<(), String>,
) -> Summary {
    let start = Instant::now();
    let deadline = start + cap;
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for i in 0..total {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let result = op(i);
        latencies.push(t.elapsed());
        if let Err(e) = result {
            errors.push(e);
        }
    }
    Summary::new(name, 1, latencies, errors, start.elapsed())
}

fn cm_name(i: usize) -> String {
    format!("cm-{i:06}")
}

/// A ConfigMap of a few hundred bytes, like an application's settings.
fn config_map(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm_name(i),
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": format!("app-{}", i % 100),
                "app.kubernetes.io/part-of": "baton-bench",
            },
        },
        "data": {
            "LOG_LEVEL": "info",
            "DATABASE_URL": format!("postgres://app-{}.db.svc.cluster.local:5432/app", i % 100),
            "settings.yaml": "replicas: 3\nfeatures:\n  payments: true\n  search: false\ntimeouts:\n  read: 30s\n  write: 60s\n",
        },
    })
}

/// A PersistentVolume as the EBS CSI driver provisions it, bound to a claim.
fn persistent_volume(i: usize) -> Value {
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    // 17 hex digits, as EBS volume IDs.
    let handle = format!(
        "vol-{:017x}",
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 4
    );
    let claim_uid = uuid::Uuid::new_v4().to_string();
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pvc-{claim_uid}"),
            "annotations": {
                "pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com",
                "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
            },
            "finalizers": [
                "external-provisioner.volume.kubernetes.io/finalizer",
                "kubernetes.io/pv-protection",
            ],
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": { "storage": "100Gi" },
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "name": format!("data-db-{}", i % 3),
                "namespace": format!("team-{:04}", i / 3),
                "resourceVersion": (1000 + i).to_string(),
                "uid": claim_uid,
            },
            "csi": {
                "driver": "ebs.csi.aws.com",
                "fsType": "ext4",
                "volumeAttributes": {
                    "storage.kubernetes.io/csiProvisionerIdentity": "1718000000000-2441-ebs.csi.aws.com",
                },
                "volumeHandle": handle,
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [{
                        "matchExpressions": [{
                            "key": "topology.ebs.csi.aws.com/zone",
                            "operator": "In",
                            "values": [zones[i % zones.len()]],
                        }],
                    }],
                },
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "gp3",
            "volumeMode": "Filesystem",
        },
    })
}

/// Creates `n` objects in-process; returns the time taken and the mean JSON size stored.
fn insert(
    cluster: &Cluster,
    def: &ResourceDef,
    namespace: &str,
    n: usize,
    make: impl Fn(usize) -> Value,
) -> (Duration, usize) {
    let start = Instant::now();
    let mut json_bytes = 0;
    for i in 0..n {
        let stored = cluster
            .create(def, namespace, make(i), false)
            .unwrap_or_else(|e| panic!("creating {} #{i}: {e:?}", def.kind));
        json_bytes += serde_json::to_vec(&stored).map_or(0, |b| b.len());
    }
    (start.elapsed(), json_bytes / n.max(1))
}

/// Memory taken by `n` PVs in `cluster`, as the growth of this process's RSS.
#[derive(Debug)]
struct Memory {
    label: &'static str,
    history: usize,
    before: u64,
    after: u64,
    objects: usize,
    insert: Duration,
    json_bytes_per_object: usize,
}

impl Memory {
    fn measure(label: &'static str, cluster: &Cluster, objects: usize) -> Self {
        let def = cluster
            .def("", "v1", "persistentvolumes")
            .expect("persistentvolumes is built in");
        let before = proc_status_bytes("VmRSS").unwrap_or(0);
        let (insert, json_bytes_per_object) = insert(cluster, &def, "", objects, persistent_volume);
        let after = proc_status_bytes("VmRSS").unwrap_or(0);
        Self {
            label,
            history: cluster.spec.history,
            before,
            after,
            objects,
            insert,
            json_bytes_per_object,
        }
    }

    fn growth(&self) -> u64 {
        self.after.saturating_sub(self.before)
    }

    fn per_object(&self) -> u64 {
        self.growth() / self.objects.max(1) as u64
    }

    fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "objects": self.objects,
            "watch_history_limit": self.history,
            "rss_before_bytes": self.before,
            "rss_after_bytes": self.after,
            "rss_growth_bytes": self.growth(),
            "rss_growth_bytes_per_object": self.per_object(),
            "stored_json_bytes_per_object": self.json_bytes_per_object,
            "insert_seconds": self.insert.as_secs_f64(),
            "inserts_per_second": self.objects as f64 / self.insert.as_secs_f64().max(f64::EPSILON),
        })
    }
}

fn print_table(title: &str, rows: &[Summary]) {
    println!("\n{title}");
    println!(
        "  {:<34} {:>7} {:>8} {:>6} {:>10} {:>9} {:>9} {:>9}",
        "operation", "workers", "requests", "errors", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    for r in rows {
        println!(
            "  {:<34} {:>7} {:>8} {:>6} {:>10.1} {:>9.3} {:>9.3} {:>9.3}",
            r.name,
            r.workers,
            r.requests,
            r.errors,
            r.rate(),
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        );
        if let Some(e) = &r.first_error {
            println!("    first error: {e}");
        }
    }
}

fn main() {
    let settings = Settings::from_env();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(settings, cores));
}

async fn bench(settings: Settings, cores: usize) {
    let Settings {
        objects,
        workers,
        phase_cap,
    } = settings;
    println!(
        "baton-sim API benchmark: {objects} objects, {workers} workers, {cores} cores, each phase at most {}s",
        phase_cap.as_secs()
    );

    let server = SimServer::start(vec![ClusterSpec::new("blue", "v1.31.0")])
        .await
        .expect("start the emulated cluster");
    let cluster = server
        .cluster("blue")
        .expect("cluster blue")
        .cluster
        .clone();

    // Memory first, before any traffic has grown the heap: PVs in the served cluster (default
    // watch history), then the same in an unserved cluster keeping one change.
    let mem_served = Memory::measure("served cluster (watch history included)", &cluster, objects);
    let store_only = Cluster::new(ClusterSpec::new("mem", "v1.31.0").history(1));
    let mem_store = Memory::measure(
        "cluster keeping 1 change (store only)",
        &store_only,
        objects,
    );
    drop(store_only);

    let cm_def = cluster
        .def("", "v1", "configmaps")
        .expect("configmaps is built in");
    let (cm_insert, cm_json) = insert(&cluster, &cm_def, NAMESPACE, objects, config_map);
    println!(
        "inserted {objects} ConfigMaps in-process in {:.2}s ({:.0}/s, {cm_json} B of JSON each)",
        cm_insert.as_secs_f64(),
        objects as f64 / cm_insert.as_secs_f64().max(f64::EPSILON)
    );

    let kubeconfig =
        Kubeconfig::from_yaml(&server.kubeconfig().to_yaml()).expect("parse the kubeconfig");
    let options = KubeConfigOptions {
        context: Some("blue".into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("client config from the kubeconfig");
    let client = kube::Client::try_from(config).expect("kube client");
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);

    // Warm-up: one connection per worker, and the first requests' one-off costs.
    let warm = run_concurrent("warm-up", workers, workers * 4, phase_cap, {
        let api = api.clone();
        move |i| {
            let api = api.clone();
            async move {
                api.get(&cm_name(i % objects))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    })
    .await;
    assert_eq!(
        warm.errors, 0,
        "warm-up requests failed: {:?}",
        warm.first_error
    );

    let mut http = Vec::new();
    http.push(
        run_concurrent("GET configmap", workers, 20_000, phase_cap, {
            let api = api.clone();
            move |i| {
                let api = api.clone();
                async move {
                    let name = cm_name(i.wrapping_mul(7919) % objects);
                    let cm = api.get(&name).await.map_err(|e| e.to_string())?;
                    if cm.metadata.name.as_deref() != Some(name.as_str()) {
                        return Err(format!("asked for {name}, got {:?}", cm.metadata.name));
                    }
                    Ok(())
                }
            }
        })
        .await,
    );
    http.push(
        run_concurrent(
            &format!("LIST configmaps (all {objects})"),
            workers,
            200,
            phase_cap,
            {
                let api = api.clone();
                move |_| {
                    let api = api.clone();
                    async move {
                        let list = api
                            .list(&ListParams::default())
                            .await
                            .map_err(|e| e.to_string())?;
                        if list.items.len() != objects {
                            return Err(format!("{} items, not {objects}", list.items.len()));
                        }
                        Ok(())
                    }
                }
            },
        )
        .await,
    );
    let page = (PAGE as usize).min(objects);
    http.push(
        run_concurrent(
            &format!("LIST configmaps limit={PAGE}"),
            workers,
            5_000,
            phase_cap,
            {
                let api = api.clone();
                move |_| {
                    let api = api.clone();
                    async move {
                        let list = api
                            .list(&ListParams::default().limit(PAGE))
                            .await
                            .map_err(|e| e.to_string())?;
                        if list.items.len() != page {
                            return Err(format!("{} items, not {page}", list.items.len()));
                        }
                        Ok(())
                    }
                }
            },
        )
        .await,
    );
    http.push(
        run_concurrent(
            "PATCH configmap (merge, label)",
            workers,
            20_000,
            phase_cap,
            {
                let api = api.clone();
                move |i| {
                    let api = api.clone();
                    async move {
                        let name = cm_name(i.wrapping_mul(7919) % objects);
                        let patch =
                            json!({ "metadata": { "labels": { "bench": format!("p{i}") } } });
                        let cm = api
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .map_err(|e| e.to_string())?;
                        let label = cm.metadata.labels.and_then(|l| l.get("bench").cloned());
                        if label != Some(format!("p{i}")) {
                            return Err(format!(
                                "{name}: label bench is {label:?} after patch {i}"
                            ));
                        }
                        Ok(())
                    }
                }
            },
        )
        .await,
    );

    // The same operations without HTTP, from one caller, for comparison.
    let inline = vec![
        run_inline("get (in-process)", 200_000, phase_cap, |i| {
            cluster
                .get(&cm_def, NAMESPACE, &cm_name(i.wrapping_mul(7919) % objects))
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        }),
        run_inline(
            &format!("list all {objects} (in-process)"),
            200,
            phase_cap,
            |_| {
                cluster
                    .list(&cm_def, Some(NAMESPACE), &ListOptions::default())
                    .map(drop)
                    .map_err(|e| format!("{e:?}"))
            },
        ),
        run_inline(
            &format!("list limit={PAGE} (in-process)"),
            5_000,
            phase_cap,
            |_| {
                let opts = ListOptions {
                    limit: PAGE as usize,
                    ..Default::default()
                };
                cluster
                    .list(&cm_def, Some(NAMESPACE), &opts)
                    .map(drop)
                    .map_err(|e| format!("{e:?}"))
            },
        ),
        run_inline("patch merge (in-process)", 20_000, phase_cap, |i| {
            let body = json!({ "metadata": { "labels": { "bench": format!("q{i}") } } });
            cluster
                .patch(
                    &cm_def,
                    NAMESPACE,
                    &cm_name(i.wrapping_mul(7919) % objects),
                    PatchType::Merge,
                    body.to_string().as_bytes(),
                    Part::Main,
                    false,
                )
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        }),
    ];
    let rss_end = proc_status_bytes("VmRSS").unwrap_or(0);

    print_table(
        "over HTTPS with kube-rs (client and server in this process)",
        &http,
    );
    print_table("in-process Cluster API, one caller (no HTTP)", &inline);
    println!("\nmemory (process RSS growth while inserting {objects} EBS CSI PersistentVolumes)");
    for m in [&mem_served, &mem_store] {
        println!(
            "  {:<42} history {:>6}: {:>8.1} MiB total, {:>6} B per PV ({} B of JSON each), inserted at {:.0}/s",
            m.label,
            m.history,
            mib(m.growth()),
            m.per_object(),
            m.json_bytes_per_object,
            m.objects as f64 / m.insert.as_secs_f64().max(f64::EPSILON),
        );
    }
    println!(
        "  process RSS at the end (after {} patches, kept in the watch history): {:.1} MiB",
        http.last().map_or(0, |s| s.requests) + inline.last().map_or(0, |s| s.requests),
        mib(rss_end)
    );

    let report = json!({
        "benchmark": "baton-sim api",
        "timestamp": jiff::Timestamp::now().to_string(),
        "cores": cores,
        "objects": objects,
        "workers": workers,
        "phase_cap_seconds": phase_cap.as_secs(),
        "page_limit": PAGE,
        "configmap_insert": {
            "seconds": cm_insert.as_secs_f64(),
            "inserts_per_second": objects as f64 / cm_insert.as_secs_f64().max(f64::EPSILON),
            "stored_json_bytes_per_object": cm_json,
        },
        "http": http.iter().map(Summary::to_json).collect::<Vec<_>>(),
        "in_process": inline.iter().map(Summary::to_json).collect::<Vec<_>>(),
        "memory": {
            "note": "RSS growth of the whole process while inserting the PVs; the served cluster's figure is server memory for the PVs including the watch history",
            "served": mem_served.to_json(),
            "history_1": mem_store.to_json(),
            "rss_end_bytes": rss_end,
        },
    });
    write_results("sim-api.json", &report);

    let failed: usize = http.iter().chain(&inline).map(|s| s.errors).sum();
    server.shutdown().await;
    assert_eq!(failed, 0, "some requests failed; see the table");
}
