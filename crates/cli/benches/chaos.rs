//! The chaos benchmark: the release `baton` binary moves the `default` estate from blue to
//! green as a user would, under injected faults (about 5 % of the requests to each
//! cluster's Kubernetes API and to AWS fail: 500s, 429s and dropped connections on the
//! clusters, 500s and throttling on AWS), with `baton migrate` killed at a random mutation
//! once or twice (`BATON_CRASH_AFTER_MUTATIONS`, an abort as by `kill -9`), then resumed
//! to the end and committed, or rolled back. After every command it checks DESIGN.md's
//! invariants from outside, on every EBS volume of the plan; a violation, or a command
//! that ends with an error other than the injected crash, fails the bench (exit 1).
//!
//!   cargo bench -p baton --bench chaos -- [--runs 3] [--seed-base 1] [--max-crash-k 80]
//!       [--command-timeout-s 900] [--keep]
//!
//! Run i uses seed `--seed-base` + i for the emulator's faults (`baton sim up --seed`)
//! and for its own choices (the crash points, 1..=`--max-crash-k`, and resume or
//! rollback), so `--runs 1 --seed-base S` replays run S's choices (the faults land on the
//! same sequence of requests; concurrent requests may arrive in another order). Each run:
//!
//! 1. `baton sim up --scenario default --seed S` with the faults on blue, green and AWS;
//! 2. `baton volumes grant`, `baton identity apply`, `baton plan --standalone-claims -o
//!    json` (the volumes checked), then `baton migrate --standalone-claims` crashed at
//!    mutation k1 (and its `--resume` at k2); a run that ends before k is fine;
//! 3. `baton migrate --resume` until done and `baton commit`, or `baton rollback`.
//!
//! The invariants, per volume, after each command: `volume-deleted` (it still exists in
//! EC2), `bindable-by-another-claim` (a PV of it in either cluster with no claimRef, or
//! Available with a claimRef without uid), `attached-twice` (more than one EC2
//! attachment, or pods mounting it Running in both clusters), `data-unreachable` (no claim
//! Bound to a PV of it in either cluster), `fingerprint-regressed` (the emulated pods'
//! data fingerprint in the volume's EC2 tags went below a value seen earlier in the run,
//! or a writer in the other cluster started from less than the previous writer had
//! reached) and, after commit or rollback, `tags-unusable` (its
//! `ebs.csi.aws.com/cluster-name` tag names a cluster other than the one holding it). The
//! checker's reads meet the faults too: its clients retry transient errors, and a check
//! whose reads still fail after five tries is counted as a check failure, not a
//! violation.
//!
//! Faults injected are counted from the request logs (`/debug/requests`) of each
//! cluster's API server and of the AWS fault proxy: every client's requests, baton's, the
//! checker's and, for AWS, the emulated controllers' (the EBS CSI driver's attach and
//! detach, the provisioner's CreateVolume), from the first command on: seeding's requests,
//! made before the faults are armed, are left out. Prints a progress
//! line per run and a table; writes `$CARGO_TARGET_DIR/bench/chaos.json` (or
//! `target/bench/chaos.json`). `--keep` keeps each run's directory (the sim's state, the
//! migration's state dir with its journal); a failing run's is always kept.

// serde_json's `json!` recurses once per token: chaos.json's record is larger than the
// default limit of 128 allows.
#![recursion_limit = "256"]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use baton_core::handover::CLUSTER_NAME_TAG;
use baton_sim::controllers::{FINGERPRINT_TAG, FINGERPRINT_WRITER_TAG};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

const INVARIANTS: [&str; 6] = [
    "volume-deleted",
    "bindable-by-another-claim",
    "attached-twice",
    "data-unreachable",
    "fingerprint-regressed",
    "tags-unusable",
];

/// Per cluster: 3 % 500s, 1 % 429 (Retry-After 1 s), 1 % dropped connections.
const CLUSTER_FAULTS: [&str; 3] = ["rate=0.03:500", "rate=0.01:429=1", "rate=0.01:reset"];
/// AWS: 4 % 500s, 1 % throttling.
const AWS_FAULTS: [&str; 2] = ["rate=0.04:500", "rate=0.01:throttle"];

/// How many times a check's reads are tried before it counts as a check failure.
const CHECK_TRIES: u32 = 5;

struct Args {
    runs: u64,
    seed_base: u64,
    max_crash_k: u32,
    command_timeout: Duration,
    keep: bool,
}

fn args() -> Args {
    let mut a = Args {
        runs: 3,
        seed_base: 1,
        max_crash_k: 80,
        command_timeout: Duration::from_secs(900),
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--runs" => a.runs = it.next().and_then(|s| s.parse().ok()).expect("--runs N"),
            "--seed-base" => {
                a.seed_base = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seed-base S")
            }
            "--max-crash-k" => {
                a.max_crash_k = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&k| k >= 1)
                    .expect("--max-crash-k K (≥ 1)")
            }
            "--command-timeout-s" => {
                a.command_timeout = Duration::from_secs(
                    it.next()
                        .and_then(|s| s.parse().ok())
                        .expect("--command-timeout-s SECONDS"),
                )
            }
            "--keep" => a.keep = true,
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// Every `--fault` of `baton sim up`: the same rules on both clusters, and AWS's.
fn fault_specs() -> Vec<String> {
    let mut specs = Vec::new();
    for cluster in ["blue", "green"] {
        specs.extend(CLUSTER_FAULTS.iter().map(|r| format!("{cluster}:{r}")));
    }
    specs.extend(AWS_FAULTS.iter().map(|r| format!("aws:{r}")));
    specs
}

/// A rule's `rate=P`.
fn rate(rule: &str) -> f64 {
    rule.split(':')
        .find_map(|p| p.strip_prefix("rate="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0)
}

/// The chance that a request meets one of `rules` (each rule draws on its own).
fn combined_rate(rules: &[&str]) -> f64 {
    1.0 - rules.iter().map(|r| 1.0 - rate(r)).product::<f64>()
}

/// A running `baton sim up` (its own process, its state in `dir/sim`).
struct Sim {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Kept open: the sim may print more on stdout.
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Sim {
    async fn up(seed: u64) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("baton-chaos-{seed}-"))
            .tempdir()
            .map_err(|e| e.to_string())?;
        let err = std::fs::File::create(dir.path().join("sim.err")).map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(BATON);
        cmd.args(["sim", "up", "--state-dir"])
            .arg(dir.path().join("sim"))
            .args(["--scenario", "default", "--seed", &seed.to_string()]);
        for f in fault_specs() {
            cmd.args(["--fault", &f]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(900), lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(l))) => l,
            other => format!("{other:?}"),
        };
        if !line.starts_with("baton sim ready") {
            let _ = child.kill().await;
            return Err(format!(
                "first line {line:?}; its stderr ends:\n{}",
                tail(
                    &std::fs::read_to_string(dir.path().join("sim.err")).unwrap_or_default(),
                    20
                )
            ));
        }
        let env = std::fs::read_to_string(dir.path().join("sim/env"))
            .map_err(|e| e.to_string())?
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Self {
            child,
            dir,
            env,
            _stdout: lines,
        })
    }

    fn var(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// SIGTERM (the sim stops moto and its servers), then kill; returns the directory.
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        self.dir
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Ok,
    /// Aborted at its injected crash point.
    Crashed,
    /// Any other end: an error exit, another signal, a timeout.
    Failed,
}

struct Ran {
    end: End,
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: String,
    seconds: f64,
}

/// `baton ARGS…` against the sim, with `BATON_CRASH_AFTER_MUTATIONS=k` when given.
async fn baton(sim: &Sim, args: &[String], crash: Option<u32>, timeout: Duration) -> Ran {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(BATON);
    cmd.args(args)
        .envs(sim.env.iter().cloned())
        .current_dir(sim.dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(k) = crash {
        cmd.env("BATON_CRASH_AFTER_MUTATIONS", k.to_string());
    }
    let out = tokio::time::timeout(timeout, cmd.output()).await;
    let seconds = started.elapsed().as_secs_f64();
    let (status, stdout, stderr) = match out {
        Ok(Ok(o)) => (
            Some(o.status),
            o.stdout,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Ok(Err(e)) => (None, Vec::new(), format!("failed to run baton: {e}")),
        Err(_) => (
            None,
            Vec::new(),
            format!("killed after {} s without an end", timeout.as_secs()),
        ),
    };
    let end = match status {
        Some(s) if s.success() => End::Ok,
        // SIGABRT from the crash hook, which says so on stderr first.
        Some(s)
            if crash.is_some()
                && s.signal() == Some(6)
                && stderr.contains("(BATON_CRASH_AFTER_MUTATIONS)") =>
        {
            End::Crashed
        }
        _ => End::Failed,
    };
    Ran {
        end,
        status,
        stdout,
        stderr,
        seconds,
    }
}

/// A volume of the plan: its id and the claim that holds it in blue.
#[derive(Debug, Clone)]
struct Vol {
    id: String,
    app: String,
    claim: String,
}

/// The volumes of a plan (`baton plan -o json`), with their apps and claims.
fn plan_volumes(plan: &Value) -> Vec<Vol> {
    let mut out = Vec::new();
    for a in plan["apps"].as_array().into_iter().flatten() {
        let app = format!(
            "{}/{}",
            a["namespace"].as_str().unwrap_or("?"),
            a["name"].as_str().unwrap_or("?")
        );
        for v in a["volumes"].as_array().into_iter().flatten() {
            if let Some(id) = v["volume_id"].as_str() {
                out.push(Vol {
                    id: id.to_string(),
                    app: app.clone(),
                    claim: v["claim"].as_str().unwrap_or("?").to_string(),
                });
            }
        }
    }
    out
}

/// What one cluster holds, read for a check: its PVs, claims and pods, as JSON.
struct ClusterView {
    name: &'static str,
    pvs: Vec<Value>,
    claims: Vec<Value>,
    pods: Vec<Value>,
}

/// The EBS volume a PV is for (CSI, or in-tree as `aws://ZONE/vol-…`).
fn pv_volume_id(pv: &Value) -> Option<&str> {
    let spec = &pv["spec"];
    let handle = spec["csi"]["volumeHandle"].as_str();
    let handle = handle.or(spec["awsElasticBlockStore"]["volumeID"].as_str())?;
    handle.rsplit('/').next()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The fingerprint history of one volume, as far as the checks saw it.
struct Seen {
    highest: u64,
    /// The cluster of the pod that wrote last.
    cluster: String,
    /// The highest value seen from `cluster` since it became the writer.
    reached: u64,
}

/// The volume's fingerprint (`cluster/ns/pod from BASE` wrote VALUE) against what was
/// seen before: why it regressed, if it did.
fn fingerprint(seen: &mut BTreeMap<String, Seen>, v: &baton_aws::Volume) -> Vec<String> {
    let parsed = (|| {
        let value: u64 = v.tags.get(FINGERPRINT_TAG)?.parse().ok()?;
        let (writer, from) = v.tags.get(FINGERPRINT_WRITER_TAG)?.split_once(" from ")?;
        Some((writer, from.parse::<u64>().ok()?, value))
    })();
    // None until a pod writes it: every 30 s while it runs, and when it stops.
    let Some((writer, from, value)) = parsed else {
        return Vec::new();
    };
    let cluster = writer.split('/').next().unwrap_or("").to_string();
    let s = seen.entry(v.id.clone()).or_insert(Seen {
        highest: value,
        cluster: cluster.clone(),
        reached: value,
    });
    let mut out = Vec::new();
    if value < s.highest {
        out.push(format!(
            "fingerprint {value} (written by {writer} from {from}) is below {} seen earlier",
            s.highest
        ));
    }
    if cluster != s.cluster {
        if from < s.reached {
            out.push(format!(
                "the writer moved from {} to {cluster} ({writer}), which started from {from} while {} had reached {}",
                s.cluster, s.cluster, s.reached
            ));
        }
        s.cluster = cluster;
        s.reached = value;
    }
    s.reached = s.reached.max(value);
    s.highest = s.highest.max(value);
    out
}

struct Checker {
    clusters: Vec<(&'static str, kube::Client)>,
    aws: baton_aws::Aws,
    /// The AWS fault proxy (`http://127.0.0.1:PORT`), whose request log is counted.
    aws_endpoint: String,
    vols: Vec<Vol>,
    seen: BTreeMap<String, Seen>,
    /// Per cluster, and "aws": requests of its log already counted (the log's `dropped` +
    /// position).
    logged: BTreeMap<&'static str, u64>,
    /// Checks made (each on every volume).
    checks: u64,
}

/// Requests and injected faults counted from the request logs.
#[derive(Default)]
struct Faults {
    /// The clusters' API servers.
    k8s: Count,
    /// The AWS fault proxy.
    aws: Count,
}

#[derive(Default)]
struct Count {
    injected: u64,
    requests: u64,
    /// Requests that left the log before they were counted.
    missed: u64,
}

impl Count {
    /// Adds what a request log (`{"dropped": N, "items": […]}`) holds beyond the `counted`
    /// first requests it ever logged, and moves `counted` to its end.
    fn add(&mut self, log: &Value, counted: &mut u64) {
        let dropped = log["dropped"].as_u64().unwrap_or(0);
        let items = log["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.missed += dropped.saturating_sub(*counted);
        for r in items
            .iter()
            .skip((*counted).saturating_sub(dropped) as usize)
        {
            self.requests += 1;
            self.injected += u64::from(!r["fault"].is_null());
        }
        *counted = dropped + items.len() as u64;
    }
}

/// `GET path` on a cluster, through its retrying client.
async fn get(client: &kube::Client, name: &str, path: &str) -> Result<Value, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client
        .request(request)
        .await
        .map_err(|e| format!("{name}: failed to GET {path}: {e}"))
}

impl Checker {
    async fn connect(sim: &Sim) -> Result<Self, String> {
        let source = baton_kube::KubeconfigSource::file(sim.var("KUBECONFIG"));
        let mut clusters = Vec::new();
        for name in ["blue", "green"] {
            clusters.push((name, source.client(name).await.map_err(|e| e.to_string())?));
        }
        let aws = baton_aws::Aws::connect(
            &baton_aws::AwsConfig::default()
                .endpoint_url(sim.var("AWS_ENDPOINT_URL"))
                .region(sim.var("AWS_REGION"))
                .static_credentials(baton_aws::StaticCredentials::new(
                    sim.var("AWS_ACCESS_KEY_ID"),
                    sim.var("AWS_SECRET_ACCESS_KEY"),
                )),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Self {
            clusters,
            aws,
            aws_endpoint: sim.var("AWS_ENDPOINT_URL").to_string(),
            vols: Vec::new(),
            seen: BTreeMap::new(),
            logged: BTreeMap::new(),
            checks: 0,
        })
    }

    /// One read of both clusters and of EC2.
    async fn read(
        &self,
    ) -> Result<(Vec<ClusterView>, BTreeMap<String, baton_aws::Volume>), String> {
        let mut views = Vec::new();
        for (name, c) in &self.clusters {
            let items = |v: Value| v["items"].as_array().cloned().unwrap_or_default();
            views.push(ClusterView {
                name,
                pvs: items(get(c, name, "/api/v1/persistentvolumes").await?),
                claims: items(get(c, name, "/api/v1/persistentvolumeclaims").await?),
                pods: items(get(c, name, "/api/v1/pods").await?),
            });
        }
        let ids = self.vols.iter().map(|v| v.id.clone());
        // A filter, not VolumeIds: a deleted volume is then missing from the answer
        // rather than failing the whole call.
        let ec2 = self
            .aws
            .describe_volumes(&[baton_aws::Filter::new("volume-id", ids)])
            .await
            .map_err(|e| format!("EC2: failed to describe the volumes: {e}"))?;
        Ok((views, ec2.into_iter().map(|v| (v.id.clone(), v)).collect()))
    }

    /// The invariants after `when`; `holder` is the cluster that must hold the volumes
    /// (after commit or rollback). Violations, or why the check could not be made.
    async fn check(&mut self, when: &str, holder: Option<&str>) -> Result<Vec<Value>, String> {
        let mut read = self.read().await;
        for _ in 1..CHECK_TRIES {
            if read.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            read = self.read().await;
        }
        let (views, ec2) = read?;
        self.checks += 1;
        let mut out = Vec::new();
        for vol in &self.vols {
            let mut violation = |invariant: &str, seen: String| {
                out.push(json!({
                    "invariant": invariant, "after": when, "volume": vol.id,
                    "app": vol.app, "claim": vol.claim, "seen": seen,
                }))
            };
            let gone = |v: &&baton_aws::Volume| {
                use baton_aws::VolumeState::{Deleted, Deleting};
                matches!(v.state, Deleting | Deleted)
            };
            let Some(v) = ec2.get(&vol.id).filter(|v| !gone(v)) else {
                let state = ec2.get(&vol.id).map(|v| format!("is {:?}", v.state));
                violation(
                    "volume-deleted",
                    format!("EC2 {}", state.unwrap_or("has no such volume".into())),
                );
                continue;
            };
            let (mut bound, mut running) = (Vec::new(), Vec::<(&str, String)>::new());
            for c in &views {
                let pvs: Vec<&Value> = c
                    .pvs
                    .iter()
                    .filter(|pv| pv_volume_id(pv) == Some(&vol.id))
                    .collect();
                for pv in &pvs {
                    let (name, phase) =
                        (text(&pv["metadata"]["name"]), text(&pv["status"]["phase"]));
                    let r = &pv["spec"]["claimRef"];
                    if r.is_null() {
                        violation(
                            "bindable-by-another-claim",
                            format!("{} PV {name} has no claimRef (phase {phase:?})", c.name),
                        );
                    } else if phase == "Available" && text(&r["uid"]).is_empty() {
                        violation(
                            "bindable-by-another-claim",
                            format!(
                                "{} PV {name} is Available with a claimRef to {}/{} without a uid",
                                c.name,
                                text(&r["namespace"]),
                                text(&r["name"])
                            ),
                        );
                    }
                }
                // The claims on this volume's PVs, and the pods running with them.
                let on_volume = c.claims.iter().filter(|claim| {
                    pvs.iter()
                        .any(|pv| pv["metadata"]["name"] == claim["spec"]["volumeName"])
                });
                for claim in on_volume {
                    let (ns, name) = (
                        &claim["metadata"]["namespace"],
                        text(&claim["metadata"]["name"]),
                    );
                    if claim["status"]["phase"] == "Bound" {
                        bound.push(name);
                    }
                    let mounts = |pod: &&Value| {
                        pod["metadata"]["namespace"] == *ns
                            && pod["status"]["phase"] == "Running"
                            && pod["spec"]["volumes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|v| v["persistentVolumeClaim"]["claimName"] == name)
                    };
                    for pod in c.pods.iter().filter(mounts) {
                        running.push((
                            c.name,
                            format!("{}/{}", text(ns), text(&pod["metadata"]["name"])),
                        ));
                    }
                }
            }
            let attached: Vec<&str> = v
                .attachments
                .iter()
                .filter(|a| a.state != baton_aws::AttachmentState::Detached)
                .map(|a| a.instance_id.as_str())
                .collect();
            if attached.len() > 1 {
                violation(
                    "attached-twice",
                    format!("EC2 attachments to {}", attached.join(", ")),
                );
            }
            if running.iter().any(|(c, _)| *c != running[0].0) {
                let pods: Vec<String> = running.iter().map(|(c, p)| format!("{c}:{p}")).collect();
                violation(
                    "attached-twice",
                    format!("pods Running in both clusters: {}", pods.join(", ")),
                );
            }
            if bound.is_empty() {
                violation(
                    "data-unreachable",
                    "no claim in either cluster is Bound to a PV of the volume".into(),
                );
            }
            for seen in fingerprint(&mut self.seen, v) {
                violation("fingerprint-regressed", seen);
            }
            if let Some(holder) = holder
                && let Some(named) = v.tags.get(CLUSTER_NAME_TAG)
                && named != holder
            {
                violation(
                    "tags-unusable",
                    format!("{CLUSTER_NAME_TAG}={named}, but {holder} holds the volume"),
                );
            }
        }
        Ok(out)
    }

    /// The faults the clusters and AWS injected since the last count, from their request
    /// logs (`/debug/requests`: the newest 10 000 requests and how many were dropped
    /// before).
    async fn count_faults(&mut self, into: &mut Faults) -> Result<(), String> {
        for (name, client) in &self.clusters {
            let log = get(client, name, "/debug/requests").await?;
            into.k8s.add(&log, self.logged.entry(name).or_insert(0));
        }
        let log =
            baton_sim::faults::debug_request(&self.aws_endpoint, "GET", "/debug/requests", "")
                .await
                .map_err(|e| e.to_string())?;
        into.aws.add(&log, self.logged.entry("aws").or_insert(0));
        Ok(())
    }
}

/// One run's record.
#[derive(Default)]
struct Run {
    seed: u64,
    /// The plan's EBS volumes, which the checks look at.
    volumes: usize,
    crash_points: Vec<u32>,
    crashes: u32,
    rollback: bool,
    path: &'static str,
    steps: Vec<Value>,
    failed: Vec<Value>,
    violations: Vec<Value>,
    check_failures: Vec<Value>,
    faults: Faults,
    /// Checks made, and volumes whose fingerprint they saw.
    checks: u64,
    fingerprinted: usize,
    seconds: f64,
    kept: Option<PathBuf>,
}

impl Run {
    /// One command, then the checks (and the fault count) after it.
    async fn step(
        &mut self,
        sim: &Sim,
        checker: Option<&mut Checker>,
        args: &[String],
        crash: Option<u32>,
        timeout: Duration,
    ) -> Ran {
        let line = format!("baton {}", args.join(" "));
        let ran = baton(sim, args, crash, timeout).await;
        let code = ran.status.and_then(|s| s.code());
        let signal = ran.status.and_then(|s| s.signal());
        self.steps.push(json!({
            "command": line,
            "crash_after_mutations": crash,
            "end": format!("{:?}", ran.end).to_lowercase(),
            "exit_code": code,
            "signal": signal,
            "seconds": ran.seconds,
        }));
        if ran.end == End::Failed {
            self.failed.push(json!({
                "command": line,
                "exit_code": code,
                "signal": signal,
                "stderr_tail": tail(&ran.stderr, 15),
            }));
        }
        if let Some(checker) = checker {
            self.after(checker, &line, None).await;
        }
        ran
    }

    async fn after(&mut self, checker: &mut Checker, when: &str, holder: Option<&str>) {
        match checker.check(when, holder).await {
            Ok(v) => self.violations.extend(v),
            Err(e) => self
                .check_failures
                .push(json!({ "after": when, "error": e })),
        }
        if let Err(e) = checker.count_faults(&mut self.faults).await {
            self.check_failures
                .push(json!({ "after": when, "error": e }));
        }
    }
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

async fn run(a: &Args, seed: u64) -> Run {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let crashes = rng.random_range(1..=2u32);
    let mut r = Run {
        seed,
        crash_points: (0..crashes)
            .map(|_| rng.random_range(1..=a.max_crash_k))
            .collect(),
        rollback: rng.random_bool(0.5),
        path: "none",
        ..Run::default()
    };
    let sim = match Sim::up(seed).await {
        Ok(sim) => sim,
        Err(e) => {
            r.failed.push(json!({
                "command": format!("baton sim up --scenario default --seed {seed} --fault …"),
                "exit_code": null,
                "stderr_tail": e,
            }));
            r.seconds = started.elapsed().as_secs_f64();
            return r;
        }
    };
    let keep = walk(a, &sim, &mut r).await;
    let dir = sim.stop().await;
    if keep || a.keep {
        r.kept = Some(dir.keep());
    }
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// The user's commands and the checks after each; whether the run's directory is worth
/// keeping (something failed).
async fn walk(a: &Args, sim: &Sim, r: &mut Run) -> bool {
    let mut checker = match Checker::connect(sim).await {
        Ok(c) => c,
        Err(e) => {
            r.check_failures
                .push(json!({ "after": "baton sim up", "error": e }));
            return true;
        }
    };
    // The requests of seeding, made before `sim up` armed the faults, are not counted: the
    // counts start with the first command.
    if let Err(e) = checker.count_faults(&mut Faults::default()).await {
        r.check_failures
            .push(json!({ "after": "baton sim up", "error": e }));
        return true;
    }
    let keep = commands(a, sim, r, &mut checker).await;
    r.checks = checker.checks;
    r.fingerprinted = checker.seen.len();
    keep
}

async fn commands(a: &Args, sim: &Sim, r: &mut Run, checker: &mut Checker) -> bool {
    let t = a.command_timeout;
    for args in [
        s(&[
            "volumes", "grant", "--from", "blue", "--to", "green", "--yes",
        ]),
        s(&[
            "identity", "apply", "--from", "blue", "--to", "green", "--yes",
        ]),
    ] {
        if r.step(sim, None, &args, None, t).await.end != End::Ok {
            return true;
        }
    }
    let plan_args = s(&[
        "plan",
        "--from",
        "blue",
        "--to",
        "green",
        "--standalone-claims",
        "-o",
        "json",
    ]);
    let plan = r.step(sim, None, &plan_args, None, t).await;
    if plan.end != End::Ok {
        return true;
    }
    let Ok(plan) = serde_json::from_slice::<Value>(&plan.stdout) else {
        r.failed.push(json!({
            "command": format!("baton {}", plan_args.join(" ")),
            "exit_code": 0,
            "stderr_tail": "stdout is not JSON",
        }));
        return true;
    };
    checker.vols = plan_volumes(&plan);
    r.volumes = checker.vols.len();
    // The first check: the estate before the move (after grant, identity and plan).
    r.after(checker, "baton plan (before the move)", None).await;

    let m = sim.dir.path().join("m").display().to_string();
    let fresh = s(&[
        "migrate",
        "--from",
        "blue",
        "--to",
        "green",
        "--standalone-claims",
        "--yes",
        "--state-dir",
        &m,
    ]);
    let resume = s(&["migrate", "--resume", "--state-dir", &m, "--yes"]);
    let started = |m: &str| Path::new(m).join("run.json").exists();
    let mut completed = false;
    for k in r.crash_points.clone() {
        let args = if started(&m) { &resume } else { &fresh };
        match r.step(sim, Some(&mut *checker), args, Some(k), t).await.end {
            End::Crashed => r.crashes += 1,
            End::Ok => {
                completed = true;
                break;
            }
            End::Failed => return true,
        }
    }
    let holder = if r.rollback {
        r.path = "rollback";
        let args = s(&["rollback", "--state-dir", &m, "--yes"]);
        if r.step(sim, Some(&mut *checker), &args, None, t).await.end != End::Ok {
            return true;
        }
        "blue"
    } else {
        // Resumed: continued after a crash (by the second crash's run or this one).
        r.path = if r.crashes > 0 { "resume" } else { "completed" };
        if !completed {
            let args = if started(&m) { &resume } else { &fresh };
            if r.step(sim, Some(&mut *checker), args, None, t).await.end != End::Ok {
                return true;
            }
        }
        let args = s(&["commit", "--state-dir", &m, "--yes"]);
        if r.step(sim, Some(&mut *checker), &args, None, t).await.end != End::Ok {
            return true;
        }
        "green"
    };
    r.after(
        checker,
        &format!("the run's end ({holder} holds the volumes)"),
        Some(holder),
    )
    .await;
    !r.violations.is_empty() || !r.check_failures.is_empty()
}

#[tokio::main]
async fn main() {
    let a = args();
    let started = Instant::now();
    println!(
        "chaos: {} run(s) from seed {}; faults {}",
        a.runs,
        a.seed_base,
        fault_specs().join(" ")
    );
    let mut runs = Vec::new();
    for i in 0..a.runs {
        let seed = a.seed_base + i;
        let r = run(&a, seed).await;
        println!(
            "seed {:<4} volumes {} crashes {} (k={}) {:<9} failed commands {} violations {} check failures {} k8s faults {} aws faults {} {:>6.1} s{}",
            r.seed,
            r.volumes,
            r.crashes,
            r.crash_points
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            r.path,
            r.failed.len(),
            r.violations.len(),
            r.check_failures.len(),
            r.faults.k8s.injected,
            r.faults.aws.injected,
            r.seconds,
            r.kept
                .as_ref()
                .map_or(String::new(), |p| format!("; kept {}", p.display()))
        );
        for f in &r.failed {
            println!(
                "  FAILED {} (exit {}, signal {}):\n    {}",
                f["command"].as_str().unwrap_or("?"),
                f["exit_code"],
                f["signal"],
                f["stderr_tail"]
                    .as_str()
                    .unwrap_or("")
                    .replace('\n', "\n    ")
            );
        }
        for v in &r.violations {
            println!(
                "  VIOLATION {} on {} ({} {}) after {}: {}",
                v["invariant"].as_str().unwrap_or("?"),
                v["volume"].as_str().unwrap_or("?"),
                v["app"].as_str().unwrap_or("?"),
                v["claim"].as_str().unwrap_or("?"),
                v["after"].as_str().unwrap_or("?"),
                v["seen"].as_str().unwrap_or("?")
            );
        }
        for c in &r.check_failures {
            println!(
                "  CHECK FAILED after {}: {}",
                c["after"].as_str().unwrap_or("?"),
                c["error"].as_str().unwrap_or("?")
            );
        }
        if !r.failed.is_empty() || !r.violations.is_empty() {
            println!(
                "  reproduce: cargo bench -p baton --bench chaos -- --runs 1 --seed-base {seed}"
            );
        }
        runs.push(r);
    }

    let total = |f: &dyn Fn(&Run) -> u64| runs.iter().map(f).sum::<u64>();
    let crashes = total(&|r| u64::from(r.crashes));
    let rollbacks = total(&|r| u64::from(r.path == "rollback"));
    let resumes = total(&|r| u64::from(r.path == "resume"));
    let failed = total(&|r| r.failed.len() as u64);
    let check_failures = total(&|r| r.check_failures.len() as u64);
    let k8s_faults = total(&|r| r.faults.k8s.injected);
    let k8s_requests = total(&|r| r.faults.k8s.requests);
    let k8s_missed = total(&|r| r.faults.k8s.missed);
    let aws_faults = total(&|r| r.faults.aws.injected);
    let aws_requests = total(&|r| r.faults.aws.requests);
    let aws_missed = total(&|r| r.faults.aws.missed);
    let by_invariant: BTreeMap<&str, u64> = INVARIANTS
        .iter()
        .map(|i| {
            (
                *i,
                total(&|r| r.violations.iter().filter(|v| v["invariant"] == *i).count() as u64),
            )
        })
        .collect();
    let violations: u64 = by_invariant.values().sum();
    let cluster_rate = combined_rate(&CLUSTER_FAULTS);
    let aws_rate = combined_rate(&AWS_FAULTS);

    println!();
    let row = |k: &str, v: String| println!("{k:<44} {v:>12}");
    row("runs", runs.len().to_string());
    row(
        "crashes (migrate aborted at mutation k)",
        crashes.to_string(),
    );
    row("rollbacks", rollbacks.to_string());
    row("resumes", resumes.to_string());
    let at_least = |n: u64, missed: u64| {
        if missed > 0 {
            format!("≥ {n}")
        } else {
            n.to_string()
        }
    };
    row(
        "faults injected, Kubernetes (all clients)",
        at_least(k8s_faults, k8s_missed),
    );
    row("  of Kubernetes requests", k8s_requests.to_string());
    row(
        "faults injected, AWS (all clients)",
        at_least(aws_faults, aws_missed),
    );
    row("  of AWS requests", aws_requests.to_string());
    row("failed commands", failed.to_string());
    row(
        "check failures (reads failed 5 times)",
        check_failures.to_string(),
    );
    for (i, n) in &by_invariant {
        row(&format!("violations: {i}"), n.to_string());
    }
    row("violations", violations.to_string());
    row(
        "wall time",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );

    let results = json!({
        "scenario": "default",
        "run_count": runs.len(),
        "seed_base": a.seed_base,
        "max_crash_k": a.max_crash_k,
        "faults": fault_specs(),
        "cluster_fault_rate": cluster_rate,
        "aws_fault_rate": aws_rate,
        "crashes": crashes,
        "rollbacks": rollbacks,
        "resumes": resumes,
        "k8s_faults_injected": k8s_faults,
        "k8s_requests": k8s_requests,
        // Requests that left a cluster's log (10 000 kept) before they were counted.
        "k8s_requests_not_counted": k8s_missed,
        "aws_faults_injected": aws_faults,
        "aws_requests": aws_requests,
        // Calls that left the proxy's log (10 000 kept) before they were counted.
        "aws_requests_not_counted": aws_missed,
        "failed_commands": failed,
        "check_failures": check_failures,
        "violations": violations,
        "violations_by_invariant": by_invariant,
        "wall_seconds": started.elapsed().as_secs_f64(),
        "runs": runs.iter().map(|r| json!({
            "seed": r.seed,
            "volumes": r.volumes,
            "checks": r.checks,
            "fingerprinted_volumes": r.fingerprinted,
            "crash_points": r.crash_points,
            "crashes": r.crashes,
            "path": r.path,
            "seconds": r.seconds,
            "k8s_faults_injected": r.faults.k8s.injected,
            "k8s_requests": r.faults.k8s.requests,
            "k8s_requests_not_counted": r.faults.k8s.missed,
            "aws_faults_injected": r.faults.aws.injected,
            "aws_requests": r.faults.aws.requests,
            "aws_requests_not_counted": r.faults.aws.missed,
            "steps": r.steps,
            "failed_commands": r.failed,
            "violations": r.violations,
            "check_failures": r.check_failures,
            "kept": r.kept,
            "reproduce": format!("cargo bench -p baton --bench chaos -- --runs 1 --seed-base {}", r.seed),
        })).collect::<Vec<_>>(),
    });
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("chaos.json");
    std::fs::write(&file, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("wrote {}", file.display());
    if violations > 0 || failed > 0 {
        std::process::exit(1);
    }
}
