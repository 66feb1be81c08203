//! What `--dry-run` shows is what a run sends. On the emulator, for migrate, rollback and
//! commit in turn: the dry run of the step prints its requests; the step then runs for
//! real with the emulator's request log on; the two are compared request by request
//! (cluster, method, path, body; the migration id and the uids only the run can know
//! normalised), and the snapshots EC2 holds are compared with the `CreateSnapshot` calls
//! the dry run showed. Together the three runs make every kind of action the phase
//! machine has, which the test checks too.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

mod common;

use baton_sim::estate::Estate;
use baton_sim::patch::PatchType;
use serde_json::{Value, json};

/// One request: `context method path body`, normalised.
type Line = String;

const MIGRATION: &str = "baton.io/migration";
/// What the dry run shows for the uid a claim's create returns.
const UID_OF_CREATED_CLAIM: &str = "<uid returned by creating the claim>";

/// Replaces what only a run knows: this migration's id, and the uid of the claim a PV's
/// `claimRef` reserves it for — after checking it is the one expected of that claim
/// (`claim_uid(namespace, name)`: the dry run's placeholder, or the uid green's claim
/// really has). Any other uid stays, so it must match as it is.
fn normalise(mut body: Value, migration: &str, claim_uid: &dyn Fn(&str, &str) -> String) -> Value {
    fn walk(v: &mut Value, migration: &str, claim_uid: &dyn Fn(&str, &str) -> String) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get_mut("claimRef")
                    && let Some(uid) = r.get("uid").and_then(Value::as_str)
                {
                    let (ns, name) = (r["namespace"].as_str(), r["name"].as_str());
                    let want = claim_uid(ns.unwrap_or_default(), name.unwrap_or_default());
                    assert_eq!(uid, want, "claimRef.uid of {ns:?}/{name:?}");
                    r["uid"] = json!("<claim uid>");
                }
                for x in m.values_mut() {
                    walk(x, migration, claim_uid);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, migration, claim_uid)),
            Value::String(s) if s.contains(migration) && !migration.is_empty() => {
                *s = s.replace(migration, "<migration>");
            }
            _ => {}
        }
    }
    walk(&mut body, migration, claim_uid);
    body
}

/// The dry run's requests (`context METHOD path [body]` lines; EC2's `ec2 Operation
/// body`), normalised; the migration id is read from the bodies that carry it.
fn dry_run_lines(stdout: &str) -> Vec<Line> {
    let migration = stdout
        .split(&format!("\"{MIGRATION}\":\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    let body = |text: &str| -> String {
        let text = text.trim();
        if text.is_empty() {
            return String::new();
        }
        let v: Value = serde_json::from_str(text).expect("a dry-run body is JSON");
        let placeholder = |_: &str, _: &str| UID_OF_CREATED_CLAIM.to_string();
        format!(" {}", normalise(v, &migration, &placeholder))
    };
    stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("  ("))
        .map(|l| {
            let (context, rest) = l.split_once(char::is_whitespace).unwrap();
            let (method, rest) = rest.trim_start().split_once(char::is_whitespace).unwrap();
            let rest = rest.trim_start();
            if context == "ec2" {
                return format!("{context} {method}{}", body(rest));
            }
            let (path, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            format!("{context} {method} {path}{}", body(rest))
        })
        .collect()
}

/// The kinds of action a state dir's journal began (`retain-blue-volume`, …).
fn action_kinds(state: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"] == "began")
        .filter_map(|r| r["action"].as_str().map(String::from))
        .collect()
}

struct Bed {
    rt: tokio::runtime::Runtime,
    estate: Estate,
    dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

impl Bed {
    fn start() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let estate = rt.block_on(common::default_estate());
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        estate.server.kubeconfig().write(&kubeconfig).unwrap();
        for c in estate.server.clusters() {
            c.cluster.knobs.set_log_capacity(100_000);
        }
        Self {
            rt,
            estate,
            dir,
            kubeconfig,
        }
    }

    fn baton(&self, args: &[&str]) -> (String, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AWS_ENDPOINT_URL", &self.estate.aws_endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", &self.estate.region)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "baton {args:?}:\n{out}\n{err}");
        (out, err)
    }

    /// `baton migrate --yes` into a state dir.
    fn migrate(&self, state: &str) {
        self.baton(&[
            "migrate",
            "--from",
            "blue",
            "--to",
            "green",
            "--yes",
            "--state-dir",
            state,
        ]);
    }

    fn clear_logs(&self) {
        for c in self.estate.server.clusters() {
            c.cluster.knobs.clear_requests();
        }
    }

    /// The writes baton sent since the logs were cleared, normalised. A delete sent again
    /// while its object was still terminating (a PV's protection finalizer) is the same
    /// request made twice, idempotent (404 is "gone already"): it counts once.
    fn sent(&self, migration: &str) -> Vec<Line> {
        let green = &self.estate.server.cluster("green").unwrap().cluster;
        let claims = green.def("", "v1", "persistentvolumeclaims").unwrap();
        let claim_uid = |ns: &str, name: &str| {
            let c = green
                .get(&claims, ns, name)
                .expect("green's claim is there");
            c["metadata"]["uid"].as_str().unwrap().to_string()
        };
        let mut out = Vec::new();
        let mut deleted = BTreeSet::new();
        for c in self.estate.server.clusters() {
            for r in c.cluster.knobs.requests() {
                if r.method == "GET" || r.path.starts_with("/debug") {
                    continue;
                }
                let again = r.method == "DELETE"
                    && !deleted.insert((c.cluster.spec.name.clone(), r.path.clone()));
                // Only a PV may be deleted again (while its protection finalizer holds
                // it), and then "gone already" is an answer too.
                let answered = match r.status {
                    Some(404) => again && r.path.starts_with("/api/v1/persistentvolumes/"),
                    Some(s) => {
                        s < 300 && (!again || r.path.starts_with("/api/v1/persistentvolumes/"))
                    }
                    None => false,
                };
                assert!(answered, "{} {} answered {:?}", r.method, r.path, r.status);
                if again {
                    continue;
                }
                let body = match &r.body {
                    Some(b) if r.method != "DELETE" => {
                        format!(" {}", normalise(b.clone(), migration, &claim_uid))
                    }
                    _ => String::new(),
                };
                out.push(format!(
                    "{} {} {}{body}",
                    c.cluster.spec.name, r.method, r.path
                ));
            }
        }
        out
    }

    fn migration(&self, state: &Path) -> String {
        let run: Value =
            serde_json::from_str(&std::fs::read_to_string(state.join("run.json")).unwrap())
                .unwrap();
        run["migration"].as_str().unwrap().to_string()
    }
}

/// Compares what the dry run showed with what the run sent (as multisets: a batch of
/// independent steps goes out concurrently, in any order).
fn compare(step: &str, shown: &[Line], sent: &[Line]) {
    let kube_shown: Vec<Line> = shown
        .iter()
        .filter(|l| !l.starts_with("ec2 "))
        .cloned()
        .collect();
    let mut a = kube_shown.clone();
    let mut b = sent.to_vec();
    a.sort();
    b.sort();
    assert!(!a.is_empty(), "{step}: the dry run showed no request");
    if a != b {
        let only_shown: Vec<_> = a.iter().filter(|l| !b.contains(l)).collect();
        let only_sent: Vec<_> = b.iter().filter(|l| !a.contains(l)).collect();
        panic!(
            "{step}: the dry run and the run differ\nshown, not sent:\n  {}\nsent, not shown:\n  {}",
            only_shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            only_sent
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

#[test]
fn dry_runs_show_exactly_what_runs_send() {
    let bed = Bed::start();
    let state = bed.dir.path().join("state");
    let state_s = state.to_str().unwrap();
    // One StatefulSet whose claims scaling would delete: migrate records and sets
    // Retain/Retain, rollback puts it back.
    bed.rt.block_on(async {
        let blue = bed.estate.server.cluster("blue").unwrap();
        let def = blue.cluster.def("apps", "v1", "statefulsets").unwrap();
        blue.cluster
            .patch(
                &def,
                "cache",
                "session-cache",
                PatchType::Merge,
                br#"{"spec":{"persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete","whenDeleted":"Delete"}}}"#,
                baton_sim::ops::Part::Main,
                false,
            )
            .unwrap();
        // And a KEDA ScaledObject scaling it (its CRD as KEDA installs it): migrate
        // pauses it, rollback restores it.
        let def = common::serve_scaled_objects(&blue.cluster);
        let scaled = serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": { "name": "session-cache", "namespace": "cache" },
            "spec": { "scaleTargetRef": { "kind": "StatefulSet", "name": "session-cache" },
                      "minReplicaCount": 1,
                      "triggers": [{ "type": "cpu", "metadata": { "value": "60" } }] },
        });
        blue.cluster
            .create(&def, "cache", scaled, false)
            .unwrap();
    });

    // volumes grant (before the move, as the default estate needs): the CreateGrant shown
    // is the grant KMS then holds.
    let (shown, _) = bed.baton(&[
        "volumes",
        "grant",
        "--from",
        "blue",
        "--to",
        "green",
        "--dry-run",
    ]);
    let shown: Vec<Value> = shown
        .lines()
        .filter_map(|l| l.strip_prefix("kms    CreateGrant "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    assert_eq!(shown.len(), 1, "one key to grant: {shown:?}");
    bed.baton(&[
        "volumes", "grant", "--from", "blue", "--to", "green", "--yes",
    ]);
    let key = shown[0]["KeyId"].as_str().unwrap().to_string();
    let held: Vec<Value> = bed
        .rt
        .block_on(bed.estate.aws.kms_key(&key))
        .unwrap()
        .grants
        .iter()
        .map(|g| {
            serde_json::json!({
                "KeyId": key, "GranteePrincipal": g.grantee,
                "Operations": g.operations, "Name": g.name,
            })
        })
        .collect();
    assert_eq!(held, shown, "the grant made is the one shown");

    // identity apply (before green's apps start, as the default estate needs): each
    // trust policy shown is the one IAM then holds.
    let (shown, _) = bed.baton(&[
        "identity",
        "apply",
        "--from",
        "blue",
        "--to",
        "green",
        "--dry-run",
    ]);
    let shown: Vec<Value> = shown
        .lines()
        .filter_map(|l| l.strip_prefix("iam    UpdateAssumeRolePolicy "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    assert_eq!(
        shown.len(),
        2,
        "orders-db's and the storefront's roles: {shown:?}"
    );
    bed.baton(&[
        "identity", "apply", "--from", "blue", "--to", "green", "--yes",
    ]);
    let account = bed.rt.block_on(bed.estate.aws.account_id()).unwrap();
    for update in &shown {
        let role = update["RoleName"].as_str().unwrap();
        let held = bed
            .rt
            .block_on(
                bed.estate
                    .aws
                    .role_policies(&format!("arn:aws:iam::{account}:role/{role}")),
            )
            .unwrap()
            .trust;
        let held: Value = serde_json::from_str(&held).unwrap();
        let sent: Value = serde_json::from_str(update["PolicyDocument"].as_str().unwrap()).unwrap();
        assert_eq!(held, sent, "{role}'s trust is the one shown");
    }

    // migrate
    let (shown, _) = bed.baton(&["migrate", "--from", "blue", "--to", "green", "--dry-run"]);
    let shown = dry_run_lines(&shown);
    bed.clear_logs();
    bed.migrate(state_s);
    let migration = bed.migration(&state);
    compare("migrate", &shown, &bed.sent(&migration));
    // Each CreateSnapshot shown is a snapshot EC2 now holds, as shown.
    let snapshots = bed.rt.block_on(async {
        bed.estate
            .aws
            .describe_snapshots(
                &[],
                &[baton_aws::Filter::new(
                    format!("tag:{MIGRATION}"),
                    [migration.clone()],
                )],
            )
            .await
            .unwrap()
    });
    let mut made: Vec<Line> = snapshots
        .iter()
        .map(|s| {
            // The call that made it, as baton-aws prints a CreateSnapshot.
            let made = baton_aws::NewSnapshot {
                volume_id: s.volume_id.clone(),
                description: s.description.clone().unwrap_or_default(),
                tags: s.tags.clone(),
            };
            let body = normalise(serde_json::to_value(&made).unwrap(), &migration, &|_, _| {
                String::new()
            });
            format!("ec2 CreateSnapshot {body}")
        })
        .collect();
    let mut shown_snapshots: Vec<Line> = shown
        .iter()
        .filter(|l| l.starts_with("ec2 CreateSnapshot "))
        .cloned()
        .collect();
    // Each CreateTags shown (the ownership tags green's driver needs) is on its volumes.
    let retags: Vec<Value> = shown
        .iter()
        .filter_map(|l| l.strip_prefix("ec2 CreateTags "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    assert!(
        !retags.is_empty(),
        "green's tag-scoped driver needs a re-tag"
    );
    for r in &retags {
        let ids: Vec<String> = r["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let volumes = bed
            .rt
            .block_on(bed.estate.aws.describe_volumes_by_id(&ids))
            .unwrap();
        for v in volumes {
            for t in r["Tags"].as_array().unwrap() {
                assert_eq!(
                    v.tags.get(t["Key"].as_str().unwrap()).map(String::as_str),
                    t["Value"].as_str(),
                    "{}: {r}",
                    v.id
                );
            }
        }
    }
    made.sort();
    shown_snapshots.sort();
    assert!(!made.is_empty(), "the migration took no snapshot");
    assert_eq!(shown_snapshots, made, "snapshots shown vs made");

    // rollback: green's PVs made Delete first, so that rollback sets them Retain again.
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("plan.json")).unwrap()).unwrap();
    let first = plan["apps"][0]["volumes"][0]["pv"]
        .as_str()
        .unwrap()
        .to_string();
    bed.rt.block_on(async {
        let green = bed.estate.server.cluster("green").unwrap();
        let def = green.cluster.def("", "v1", "persistentvolumes").unwrap();
        green
            .cluster
            .patch(
                &def,
                "",
                &first,
                PatchType::Merge,
                br#"{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}"#,
                baton_sim::ops::Part::Main,
                false,
            )
            .unwrap();
    });
    let (shown, _) = bed.baton(&["rollback", "--state-dir", state_s, "--dry-run"]);
    let shown = dry_run_lines(&shown);
    bed.clear_logs();
    bed.baton(&["rollback", "--state-dir", state_s, "--yes"]);
    compare("rollback", &shown, &bed.sent(&migration));

    // migrate again, then commit with the original reclaim policies put back.
    let state2 = bed.dir.path().join("state2");
    let state2_s = state2.to_str().unwrap();
    bed.migrate(state2_s);
    let migration = bed.migration(&state2);
    let (shown, _) = bed.baton(&[
        "commit",
        "--state-dir",
        state2_s,
        "--restore-reclaim-policy",
        "--dry-run",
    ]);
    let shown = dry_run_lines(&shown);
    bed.clear_logs();
    bed.baton(&[
        "commit",
        "--state-dir",
        state2_s,
        "--restore-reclaim-policy",
        "--yes",
    ]);
    compare("commit", &shown, &bed.sent(&migration));

    // Every kind of action the machine has was made, and so compared.
    let mut kinds = action_kinds(&state);
    kinds.extend(action_kinds(&state2));
    for want in [
        "retain-blue-volume",
        "retain-blue-claims",
        "scale-blue",
        "start-snapshot",
        "create-green-claim",
        "create-green-volume",
        "scale-green",
        "retain-green-volume",
        "delete-green-claim",
        "delete-green-volume",
        "restore-blue-volume",
        "restore-blue-claims",
        "delete-blue-claim",
        "delete-blue-volume",
        "restore-green-volume",
        "pause-fence",
        "resume-fence",
    ] {
        assert!(kinds.contains(want), "no {want} was made; made: {kinds:#?}");
    }
}
