//! The real `baton` binary as a user runs it, for the CLI's end-to-end tests: `baton sim
//! up` in the foreground of its own process (state dir `DIR/sim`), other commands,
//! kubectl and EC2 from "another shell" against it.
#![allow(dead_code)] // each test binary uses part of this

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A running `baton sim up`; stopped (SIGTERM, then kill) when dropped.
pub struct Sim {
    child: Child,
    pub dir: tempfile::TempDir,
    /// The env file's variables.
    pub env: BTreeMap<String, String>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `baton ARGS…`, run to completion (no estate needed).
pub fn baton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `default` scenario seeded on an in-process estate (the emulator's clusters and
/// moto), for tests that read its request logs and state directly rather than through a
/// `baton sim up`.
pub async fn default_estate() -> baton_sim::estate::Estate {
    use baton_sim::scenario::{self, Scenario};
    let s = Scenario::parse("basic", scenario::BASIC_YAML).unwrap();
    let estate = baton_sim::estate::Estate::start(baton_sim::estate::EstateOptions {
        clusters: s.cluster_specs(),
        ..Default::default()
    })
    .await
    .expect("estate starts");
    scenario::seed(&estate, &s, Duration::from_secs(300))
        .await
        .expect("seeds");
    estate
}

/// `baton sim up` on the `basic` scenario (the default's three StatefulSets and nine
/// volumes, without its other shapes and GitOps controllers: it seeds fastest).
pub fn sim_up() -> Sim {
    sim_up_with(&[])
}

/// `baton sim up` with extra arguments (faults, seed, delays); on `basic` unless they
/// name a `--scenario` (the whole default estate is `--scenario default`) or ask for
/// `--bare` API servers.
pub fn sim_up_with(args: &[&str]) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let basic: &[&str] = if args.contains(&"--scenario") || args.contains(&"--bare") {
        &[]
    } else {
        &["--scenario", "basic"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["sim", "up", "--state-dir"])
        .arg(dir.path().join("sim"))
        .args(basic)
        .args(args)
        .stdout(Stdio::piped())
        // Kept in a file to explain a failure (a pipe nobody reads could fill up).
        .stderr(std::fs::File::create(dir.path().join("sim.err")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.starts_with("baton sim ready") {
        let _ = child.kill();
        let _ = child.wait();
        let err = std::fs::read_to_string(dir.path().join("sim.err")).unwrap_or_default();
        panic!("first line: {line:?}; sim up's stderr:\n{err}");
    }
    let env = std::fs::read_to_string(dir.path().join("sim/env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Sim { child, dir, env }
}

impl Sim {
    /// What `sim up` printed on stderr so far (its progress and errors).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sim.err")).unwrap_or_default()
    }

    /// `baton volumes grant --from blue --to green --yes`, which must succeed: on the
    /// default estate green's EBS CSI driver may use orders-db's KMS key only then (the
    /// plan refuses that app before).
    pub fn grant_keys(&self) {
        self.ok(&[
            "volumes",
            "grant",
            "--from",
            "blue",
            "--to",
            "green",
            "--yes",
            "--state-dir",
            "grants",
        ]);
    }

    /// `baton identity apply --from blue --to green --yes`, which must succeed: on the
    /// default estate orders-db's and the storefront's IAM roles trust blue's OIDC
    /// provider only, so green's pods using them crash-loop (and the plan refuses
    /// orders-db) until green is trusted.
    pub fn trust_green(&self) {
        self.ok(&[
            "identity",
            "apply",
            "--from",
            "blue",
            "--to",
            "green",
            "--yes",
            "--state-dir",
            "identity",
        ]);
    }

    /// `baton sim fault --state-dir DIR/sim ARGS…`, which must succeed.
    pub fn fault(&self, args: &[&str]) -> Output {
        let out = self.baton(&[&["sim", "fault", "--state-dir", "sim"][..], args].concat());
        assert!(
            out.status.success(),
            "sim fault {args:?}: {}",
            text(&out.stderr)
        );
        out
    }

    pub fn baton(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .envs(&self.env)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// baton with extra environment (e.g. a crash point).
    pub fn baton_with(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .envs(&self.env)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// `kubectl ARGS…` against the estate, whatever its outcome.
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.env["KUBECONFIG"])
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is installed")
    }

    /// `kubectl ARGS…` against the estate, which must succeed; returns its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Vec<u8> {
        let o = self.kubectl_output(args);
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }

    /// `kubectl apply` of one JSON object.
    pub fn kubectl_apply(&self, ctx: &str, obj: &serde_json::Value) {
        let path = self.dir.path().join("apply.json");
        std::fs::write(&path, obj.to_string()).unwrap();
        self.kubectl(&["--context", ctx, "create", "-f", path.to_str().unwrap()]);
    }

    /// `kubectl create` of one object without client-side validation, which needs the
    /// emulator's OpenAPI schema of the kind (it publishes only a few).
    pub fn kubectl_create(&self, ctx: &str, obj: &serde_json::Value) {
        let path = self.dir.path().join("create.json");
        std::fs::write(&path, obj.to_string()).unwrap();
        self.kubectl(&[
            "--context",
            ctx,
            "create",
            "--validate=false",
            "-f",
            path.to_str().unwrap(),
        ]);
    }

    /// `kubectl delete` of one object.
    pub fn kubectl_delete(&self, ctx: &str, args: &[&str]) {
        self.kubectl(&[&["--context", ctx, "delete"], args].concat());
    }

    /// `baton migrate --from blue --to green --yes --state-dir DIR EXTRA…`.
    pub fn migrate(&self, dir: &str, extra: &[&str]) -> Output {
        self.migrate_with(dir, extra, &[])
    }

    /// [`Sim::migrate`] killed after its `k`th mutation (`BATON_CRASH_AFTER_MUTATIONS`):
    /// the run must not succeed.
    pub fn migrate_crashing(&self, dir: &str, extra: &[&str], k: u32) {
        let o = self.migrate_with(
            dir,
            extra,
            &[("BATON_CRASH_AFTER_MUTATIONS", k.to_string())],
        );
        assert!(!o.status.success(), "k={k}: the run should have crashed");
    }

    /// [`Sim::migrate`] with extra environment (e.g. a crash point).
    pub fn migrate_with(&self, dir: &str, extra: &[&str], env: &[(&str, String)]) -> Output {
        let mut args = vec![
            "migrate",
            "--from",
            "blue",
            "--to",
            "green",
            "--yes",
            "--state-dir",
            dir,
        ];
        args.extend_from_slice(extra);
        self.baton_with(&args, env)
    }

    /// [`Sim::migrate`], which must succeed.
    pub fn migrate_ok(&self, dir: &str, extra: &[&str]) {
        let o = self.migrate(dir, extra);
        assert!(
            o.status.success(),
            "migrate {dir} {extra:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Invariant 2: every PV baton made in green is reserved for one claim uid, and
    /// (before commit) Retain.
    pub fn assert_green_pvs_reserved(&self, when: &str) {
        let pvs = self.kubectl_json("green", &["get", "pv"]);
        for pv in pvs["items"].as_array().into_iter().flatten() {
            if pv["metadata"]["annotations"]["baton.io/migration"].is_string() {
                assert!(
                    pv["spec"]["claimRef"]["uid"]
                        .as_str()
                        .is_some_and(|u| !u.is_empty()),
                    "{when}: green PV {} bindable by any claim",
                    pv["metadata"]["name"]
                );
                assert_eq!(
                    pv["spec"]["persistentVolumeReclaimPolicy"], "Retain",
                    "{when}"
                );
            }
        }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.baton(args);
        assert!(
            o.status.success(),
            "baton {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn kubectl_json(&self, ctx: &str, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(
            &self.kubectl(&[&["--context", ctx], args, &["-o", "json"]].concat()),
        )
        .unwrap()
    }

    async fn aws(&self) -> baton_aws::Aws {
        baton_aws::Aws::connect(
            &baton_aws::AwsConfig::default()
                .endpoint_url(&self.env["AWS_ENDPOINT_URL"])
                .region(&self.env["AWS_REGION"])
                .static_credentials(baton_aws::StaticCredentials::new("testing", "testing")),
        )
        .await
        .unwrap()
    }

    /// Runs `f` against the estate's AWS endpoint, as `baton` reaches it.
    pub fn ec2<T>(&self, f: impl AsyncFnOnce(&baton_aws::Aws) -> T) -> T {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async { f(&self.aws().await).await })
    }

    /// The volume ids of the snapshots tagged with a migration id (one entry per snapshot).
    pub fn snapshotted_volumes(&self, migration: &str) -> Vec<String> {
        self.ec2(async |aws| {
            let filter = baton_aws::Filter::new("tag:baton.io/migration", [migration.to_string()]);
            let mut ids: Vec<String> = aws
                .describe_snapshots(&[], &[filter])
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.volume_id)
                .collect();
            ids.sort();
            ids
        })
    }

    /// EC2 tags of the volumes, by volume id.
    pub fn tags(&self, ids: &[String]) -> BTreeMap<String, BTreeMap<String, String>> {
        self.ec2(async |aws| {
            aws.describe_volumes_by_id(ids)
                .await
                .unwrap()
                .into_iter()
                .map(|v| (v.id, v.tags))
                .collect()
        })
    }

    /// Each volume's fingerprint value, checked to have been written last by `cluster`.
    pub fn last_values(&self, ids: &[String], cluster: &str) -> BTreeMap<String, u64> {
        self.tags(ids)
            .iter()
            .map(|(id, t)| {
                let (who, _, value) = fingerprint(t);
                assert_eq!(who, cluster, "{id}");
                (id.clone(), value)
            })
            .collect()
    }
}

/// (writer cluster, started-from value, value) of a volume's fingerprint.
pub fn fingerprint(tags: &BTreeMap<String, String>) -> (String, u64, u64) {
    let writer = &tags["baton.sim/fingerprint-writer"];
    let (who, from) = writer.split_once(" from ").unwrap();
    (
        who.split('/').next().unwrap().to_string(),
        from.parse().unwrap(),
        tags["baton.sim/fingerprint"].parse().unwrap(),
    )
}

/// Serves KEDA's ScaledObject kind on `cluster` (its CRD as KEDA installs it, schema
/// left open) and returns the kind once the API server serves it.
pub fn serve_scaled_objects(
    cluster: &baton_sim::cluster::Cluster,
) -> baton_sim::resources::ResourceDef {
    let crds = cluster
        .def("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .unwrap();
    let crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "scaledobjects.keda.sh" },
        "spec": { "group": "keda.sh", "scope": "Namespaced",
                  "names": { "kind": "ScaledObject", "listKind": "ScaledObjectList",
                             "plural": "scaledobjects", "singular": "scaledobject" },
                  "versions": [{ "name": "v1alpha1", "served": true, "storage": true,
                                 "schema": { "openAPIV3Schema": { "type": "object",
                                             "x-kubernetes-preserve-unknown-fields": true } } }] },
    });
    cluster.create(&crds, "", crd, false).unwrap();
    for _ in 0..100 {
        if let Some(def) = cluster.def("keda.sh", "v1alpha1", "scaledobjects") {
            return def;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the ScaledObject CRD is not served");
}

/// The EBS volume ids of a plan (`baton plan -o json`).
pub fn plan_volume_ids(plan: &serde_json::Value) -> Vec<String> {
    plan["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["volumes"].as_array().into_iter().flatten())
        .map(|v| v["volume_id"].as_str().unwrap().to_string())
        .collect()
}
