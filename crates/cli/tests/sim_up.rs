//! `baton sim up` as a user runs it: the released binary in the foreground, then kubectl
//! and EC2 (through the env file's endpoint) in another "shell", then Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sim_up_serves_the_default_scenario_to_kubectl_and_ec2_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["sim", "up", "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // baton's progress and errors, kept to explain a failure.
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = stderr.clone();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    if !line.starts_with("baton sim ready:") {
        let _ = child.kill();
        let status = child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        panic!(
            "first line: {line:?}; {status}; stderr:\n{}",
            stderr.lock().unwrap()
        );
    }

    let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {k}=")))
            .unwrap_or_else(|| panic!("{k} missing from env file:\n{env}"))
            .to_string()
    };
    let kubectl = |args: &[&str]| {
        let o = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", var("KUBECONFIG"))
            .env("HOME", dir.path())
            .output()
            .expect("kubectl is installed");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let sts = kubectl(&["--context", "blue", "get", "sts", "-A"]);
    for want in [
        "orders-db   1/1",
        "events-broker   3/3",
        "session-cache   2/2",
    ] {
        let found = sts.lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join("   ")
                .contains(want)
        });
        assert!(found, "{want} in:\n{sts}");
    }
    let pvc = kubectl(&["--context", "blue", "get", "pvc", "-A", "--no-headers"]);
    // basic's nine, and the other shapes' five (two Deployments', a standalone claim,
    // ledger-db's and catalog-db's).
    assert_eq!(pvc.lines().count(), 14, "{pvc}");
    assert!(pvc.lines().all(|l| l.contains(" Bound ")), "{pvc}");
    let green = kubectl(&["--context", "green", "get", "sts", "-A", "--no-headers"]);
    assert!(
        green.lines().all(|l| l.contains("0/0")),
        "green's apps are stopped:\n{green}"
    );

    // EC2 through the env file's endpoint and dummy credentials shows the volumes in use.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let in_use = rt.block_on(async {
        let aws = baton_aws::Aws::connect(
            &baton_aws::AwsConfig::default()
                .endpoint_url(var("AWS_ENDPOINT_URL"))
                .region(var("AWS_REGION"))
                .static_credentials(baton_aws::StaticCredentials::new(
                    var("AWS_ACCESS_KEY_ID"),
                    var("AWS_SECRET_ACCESS_KEY"),
                )),
        )
        .await
        .unwrap();
        aws.describe_volumes(&[baton_aws::Filter::new(
            "tag-key",
            ["kubernetes.io/created-for/pvc/name"],
        )])
        .await
        .unwrap()
    });
    // Every claim's volume, attached to the node of the pod that mounts it — but the
    // standalone claim's, which nothing mounts.
    assert_eq!(in_use.len(), 14);
    let attached = in_use
        .iter()
        .filter(|v| v.state == baton_aws::VolumeState::InUse)
        .count();
    assert_eq!(attached, 13, "{in_use:?}");

    // SIGTERM: a clean stop.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sim up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
}
