//! The real `kubectl` binary against the emulated API server: what an SRE types during a
//! migration must work here as on EKS. kubectl is required: these tests fail (they do not
//! skip) when it is missing, and `.ci/run` checks for it first.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Bed, kubectl, ok};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn json_of(bed: &Bed, args: &[&str]) -> Value {
    serde_json::from_str(&ok(bed, args).await).expect("kubectl -o json prints JSON")
}

fn write(bed: &Bed, name: &str, text: &str) -> String {
    let p = bed.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const STS: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: default
  labels: {app: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: postgres:16
        env: [{name: MODE, value: primary}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: gp3
      resources: {requests: {storage: 10Gi}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_create_then_reapply_a_change() {
    let bed = Bed::start().await;
    let file = write(&bed, "sts.yaml", STS);
    let created = ok(&bed, &["--context", "green", "apply", "-f", &file]).await;
    assert!(created.contains("statefulset.apps/db created"), "{created}");
    // Re-applying the same file changes nothing on the server. (kubectl still says
    // "configured" for a StatefulSet, as against a real cluster: its atomic
    // volumeClaimTemplates list differs from the server-defaulted one.)
    ok(&bed, &["--context", "green", "apply", "-f", &file]).await;
    let again = json_of(
        &bed,
        &["--context", "green", "get", "sts", "db", "-o", "json"],
    )
    .await;
    assert_eq!(
        again["metadata"]["generation"], 1,
        "defaults re-applied by the server are no change"
    );
    let cm = write(
        &bed,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}\n",
    );
    ok(&bed, &["--context", "green", "apply", "-f", &cm]).await;
    let unchanged = ok(&bed, &["--context", "green", "apply", "-f", &cm]).await;
    assert!(
        unchanged.contains("configmap/settings unchanged"),
        "{unchanged}"
    );
    // The same on blue (v1.27): gcloud's kubectl runs its 1.27 client there, which reads
    // /openapi/v2 for apply.
    let on_blue = ok(&bed, &["--context", "blue", "apply", "-f", &cm]).await;
    assert!(on_blue.contains("configmap/settings created"), "{on_blue}");
    let on_blue = ok(&bed, &["--context", "blue", "apply", "-f", &cm]).await;
    assert!(
        on_blue.contains("configmap/settings unchanged"),
        "{on_blue}"
    );
    let file = write(
        &bed,
        "sts.yaml",
        &STS.replace("postgres:16", "postgres:17")
            .replace("value: primary", "value: replica"),
    );
    let configured = ok(&bed, &["--context", "green", "apply", "-f", &file]).await;
    assert!(configured.contains("configured"), "{configured}");
    let sts = json_of(
        &bed,
        &["--context", "green", "get", "sts", "db", "-o", "json"],
    )
    .await;
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "postgres:17");
    assert_eq!(c["env"][0]["value"], "replica");
    assert_eq!(sts["metadata"]["generation"], 2);
    assert!(
        sts["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    // Blue is another cluster: nothing there.
    let o = kubectl(&bed, &["--context", "blue", "get", "sts", "db"]).await;
    assert!(!o.ok && o.stderr.contains("NotFound"), "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_describe_in_yaml_and_json() {
    let bed = Bed::start().await;
    let file = write(&bed, "sts.yaml", STS);
    ok(&bed, &["--context", "green", "apply", "-f", &file]).await;
    let yaml = ok(
        &bed,
        &["--context", "green", "get", "sts", "db", "-o", "yaml"],
    )
    .await;
    assert!(
        yaml.contains("kind: StatefulSet") && yaml.contains("whenScaled: Retain"),
        "{yaml}"
    );
    let list = json_of(
        &bed,
        &[
            "--context",
            "green",
            "get",
            "statefulsets",
            "-A",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let names = ok(&bed, &["--context", "green", "get", "ns", "-o", "name"]).await;
    assert!(names.contains("namespace/kube-system"), "{names}");
    let described = ok(&bed, &["--context", "green", "describe", "sts", "db"]).await;
    assert!(
        described.contains("Name:")
            && described.contains("postgres:16")
            && described.contains("StorageClass:  gp3"),
        "{described}"
    );
    let version = json_of(&bed, &["--context", "blue", "version", "-o", "json"]).await;
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        "v1.27.16-eks-2f008fe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merge_json_and_strategic() {
    let bed = Bed::start().await;
    let file = write(&bed, "sts.yaml", STS);
    ok(&bed, &["--context", "green", "apply", "-f", &file]).await;
    ok(
        &bed,
        &[
            "--context",
            "green",
            "patch",
            "sts",
            "db",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"data"}}}"#,
        ],
    )
    .await;
    ok(
        &bed,
        &[
            "--context",
            "green",
            "patch",
            "sts",
            "db",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/annotations/baton.io~1note","value":"x"}]"#,
        ],
    )
    .await;
    ok(&bed, &["--context", "green", "patch", "sts", "db", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"envoy:1"}]}}}}"#]).await;
    let sts = json_of(
        &bed,
        &["--context", "green", "get", "sts", "db", "-o", "json"],
    )
    .await;
    assert_eq!(sts["metadata"]["labels"]["tier"], "data");
    assert_eq!(sts["metadata"]["annotations"]["baton.io/note"], "x");
    let containers: Vec<&str> = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        containers,
        ["db", "sidecar"],
        "strategic merge adds by name"
    );
    // A forbidden change reads as the real server's error.
    let o = kubectl(
        &bed,
        &[
            "--context",
            "green",
            "patch",
            "sts",
            "db",
            "--type=merge",
            "-p",
            r#"{"spec":{"serviceName":"other"}}"#,
        ],
    )
    .await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains("is invalid") && o.stderr.contains("Forbidden"),
        "{}",
        o.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_delete() {
    let bed = Bed::start().await;
    let file = write(&bed, "sts.yaml", STS);
    ok(&bed, &["--context", "green", "apply", "-f", &file]).await;
    let scaled = ok(
        &bed,
        &["--context", "green", "scale", "sts", "db", "--replicas=3"],
    )
    .await;
    assert!(scaled.contains("scaled"), "{scaled}");
    let replicas = ok(
        &bed,
        &[
            "--context",
            "green",
            "get",
            "sts",
            "db",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )
    .await;
    assert_eq!(replicas, "3");
    // --current-replicas is a precondition kubectl checks against the scale subresource.
    let o = kubectl(
        &bed,
        &[
            "--context",
            "green",
            "scale",
            "sts",
            "db",
            "--current-replicas=1",
            "--replicas=0",
        ],
    )
    .await;
    assert!(!o.ok, "stale precondition must fail");
    let deleted = ok(&bed, &["--context", "green", "delete", "sts", "db"]).await;
    assert!(deleted.contains("deleted"), "{deleted}");
    let o = kubectl(&bed, &["--context", "green", "get", "sts", "db"]).await;
    assert!(!o.ok && o.stderr.contains("not found"), "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_events() {
    let bed = Bed::start().await;
    let mut child = Command::new("kubectl")
        .args([
            "--context",
            "blue",
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "--no-headers",
        ])
        .env("KUBECONFIG", &bed.kubeconfig)
        .env("HOME", bed.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl must be installed");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Give the watch a moment to be established, then change things.
    tokio::time::sleep(Duration::from_millis(700)).await;
    ok(
        &bed,
        &[
            "--context",
            "blue",
            "create",
            "configmap",
            "watched",
            "--from-literal=a=1",
        ],
    )
    .await;
    ok(
        &bed,
        &["--context", "blue", "label", "configmap", "watched", "x=y"],
    )
    .await;
    ok(
        &bed,
        &["--context", "blue", "delete", "configmap", "watched"],
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("watch event within 10s")
            .unwrap()
            .expect("kubectl still streaming");
        let words: Vec<&str> = line.split_whitespace().take(2).collect();
        seen.push(words.join(" "));
    }
    child.kill().await.ok();
    assert_eq!(
        seen,
        ["ADDED watched", "MODIFIED watched", "DELETED watched"]
    );
}
