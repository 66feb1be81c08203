//! The exit-code policy through the real binary: each usage error exits 2 and each
//! refusal 3 with stderr naming the problem, nothing changed; `baton --help` and
//! README.md's table say the same. The refusals that need clusters share one
//! `baton sim up`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// `baton ARGS…` in `dir` with no cluster or AWS in reach (a kubeconfig that does not
/// exist): whatever it refuses, it refuses before connecting. Stdin is not a terminal.
fn offline(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap()
}

/// Asserts the exit code and that stderr holds every one of `names`.
#[track_caller]
fn expect(o: &Output, code: i32, names: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    for name in names {
        assert!(err.contains(name), "stderr lacks {name:?}: {err}");
    }
}

#[test]
fn usage_errors_exit_2_and_local_refusals_3_before_anything_is_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |args: &[&str]| offline(dir, args);

    // A command line that lacks what it needs: 2, with the flag named.
    expect(&run(&["plan", "--to", "green"]), 2, &["--from <CONTEXT>"]);
    expect(
        &run(&["preflight", "--from", "blue"]),
        2,
        &["--to <CONTEXT>"],
    );
    expect(&run(&["backup"]), 2, &["--from <CONTEXT>"]);
    expect(
        &run(&["migrate", "--yes"]),
        2,
        &["--from <CONTEXT>", "--to <CONTEXT>"],
    );
    // One context twice.
    for cmd in ["plan", "migrate", "preflight"] {
        expect(
            &run(&[cmd, "--from", "blue", "--to", "blue"]),
            2,
            &["--from and --to are both \"blue\"", "Usage: baton"],
        );
    }
    // A duration baton cannot read; the same flag with units (and bare seconds) parses
    // on every command that takes it, which then refuses the empty state dir.
    expect(
        &run(&[
            "migrate",
            "--from",
            "blue",
            "--to",
            "green",
            "--wait-timeout",
            "10 parsecs",
        ]),
        2,
        &["'10 parsecs'", "--wait-timeout", "not a duration", "1h30m"],
    );
    expect(
        &run(&["rollback", "--state-dir", "nowhere", "--wait-timeout", "1h"]),
        3,
        &["nowhere holds no migration"],
    );
    expect(
        &run(&[
            "commit",
            "--state-dir",
            "nowhere",
            "--wait-timeout",
            "90",
            "--parallel",
            "2",
            "--yes",
        ]),
        3,
        &["nowhere holds no migration", "nothing was changed"],
    );
    expect(
        &run(&[
            "traffic",
            "status",
            "--listener",
            "arn",
            "--window",
            "5 fortnights",
        ]),
        2,
        &["5 fortnights", "not a duration"],
    );
    expect(
        &run(&["permissions", "--command", "teleport"]),
        2,
        &["\"teleport\"", "pass one of"],
    );

    // Plan files that cannot be read: refused before any cluster is reached (none is).
    expect(
        &run(&[
            "migrate",
            "--from",
            "blue",
            "--to",
            "green",
            "--plan",
            "gone.json",
            "--yes",
        ]),
        3,
        &["refused:", "gone.json", "baton plan"],
    );
    std::fs::write(dir.join("bad.json"), "{ not a plan").unwrap();
    expect(
        &run(&[
            "migrate", "--from", "blue", "--to", "green", "--plan", "bad.json", "--yes",
        ]),
        3,
        &["bad.json", "not JSON"],
    );
    expect(
        &run(&["network", "apply", "--plan", "bad.json", "--yes"]),
        3,
        &["the network plan bad.json", "baton network plan"],
    );
    // A kubeconfig that is not there, and a dir with nothing to report.
    expect(
        &run(&["plan", "--from", "blue", "--to", "green"]),
        3,
        &["no-kubeconfig", "--kubeconfig"],
    );
    std::fs::create_dir(dir.join("empty")).unwrap();
    expect(
        &run(&["report", "--state-dir", "empty"]),
        3,
        &["holds nothing to report"],
    );
    assert!(!dir.join(".baton").exists(), "a refusal wrote state");
}

#[test]
fn refusals_against_clusters_exit_3_and_change_nothing() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    let pvs = || sim.kubectl_json("blue", &["get", "pv"])["items"].clone();
    let before = pvs();

    // A blocked plan: EC2 in another region than the nodes.
    let o = sim.baton(&[
        "plan",
        "--from",
        "blue",
        "--to",
        "green",
        "--region",
        "eu-west-1",
    ]);
    expect(&o, 3, &["refused:", "blocking problem"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("wrong-aws-region"));
    // A context the kubeconfig lacks, named with the ones it has.
    expect(
        &sim.baton(&["plan", "--from", "blue", "--to", "purple"]),
        3,
        &["\"purple\"", "contexts there: blue", "--to"],
    );
    sim.ok(&[
        "plan",
        "--from",
        "blue",
        "--to",
        "green",
        "--out",
        "plan.json",
    ]);

    // No --yes and no terminal: the command line lacks the answer.
    let o = sim.baton(&[
        "migrate",
        "--from",
        "blue",
        "--to",
        "green",
        "-n",
        "orders",
        "--state-dir",
        "unconfirmed",
    ]);
    expect(&o, 2, &["pass --yes"]);
    assert!(!sim.dir.path().join("unconfirmed").exists());
    assert_eq!(pvs(), before, "an unconfirmed migrate changed blue's PVs");

    // Commit before the app is on green: a migration that crashed after its first
    // mutation (blue's PV made Retain) is refused, blue's claims kept.
    let o = sim.migrate_with(
        "crashed",
        &["-n", "orders"],
        &[("BATON_CRASH_AFTER_MUTATIONS", "1".into())],
    );
    assert!(!o.status.success());
    expect(
        &sim.baton(&["commit", "--state-dir", "crashed", "--yes"]),
        3,
        &[
            "orders/orders-db is not on green yet",
            "nothing was changed",
        ],
    );
    let claims = sim.kubectl_json("blue", &["get", "pvc", "-n", "orders"]);
    assert!(!claims["items"].as_array().unwrap().is_empty());
    // Rolling back an app the migration does not have.
    expect(
        &sim.baton(&[
            "rollback",
            "--state-dir",
            "crashed",
            "--app",
            "x/y",
            "--yes",
        ]),
        3,
        &["--app x/y", "orders/orders-db"],
    );
    // A rollback after commit: the machine stops every app before any change (blue's
    // claims are gone), so the run is a refusal, not a failure.
    expect(
        &sim.baton(&["migrate", "--resume", "--state-dir", "crashed", "--yes"]),
        0,
        &[],
    );
    expect(
        &sim.baton(&["commit", "--state-dir", "crashed", "--yes"]),
        0,
        &[],
    );
    expect(
        &sim.baton(&["rollback", "--state-dir", "crashed", "--yes"]),
        3,
        &["committed?", "this run changed nothing"],
    );

    // The world changes under a saved plan: a StatefulSet leaves blue.
    sim.kubectl_delete("blue", &["sts", "-n", "cache", "session-cache"]);
    let o = sim.migrate("stale", &["--plan", "plan.json"]);
    expect(
        &o,
        3,
        &[
            "plan.json is stale",
            "cache/session-cache",
            "baton plan --out",
        ],
    );
    assert!(!sim.dir.path().join("stale").exists());
}

/// `baton --help`'s exit codes and README.md's table, row by row, word for word.
#[test]
fn help_and_readme_give_the_same_exit_codes() {
    let help = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let section = help
        .split("Exit codes:")
        .nth(1)
        .expect("--help lists the exit codes");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut from_help = Vec::new();
    // The rest of the "Exit codes:" line, then one line a code (with its continuations).
    for line in section.lines().skip(1) {
        let t = line.trim();
        match t.split_once("  ") {
            Some((code, rest)) if code.parse::<u8>().is_ok() && line.starts_with("  ") => {
                from_help.push((code.to_string(), rest.to_string()));
            }
            _ if t.is_empty() => break,
            _ => {
                let last = from_help.last_mut().expect("a code first");
                last.1 = format!("{} {t}", last.1);
            }
        }
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let table = readme
        .split("## Exit codes")
        .nth(1)
        .expect("README.md has an Exit codes section");
    let from_readme: Vec<(String, String)> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() == 4 && cells[1].parse::<u8>().is_ok())
                .then(|| (cells[1].to_string(), cells[2].to_string()))
        })
        .collect();
    let codes = |v: &[(String, String)]| v.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
    assert_eq!(
        codes(&from_help),
        ["0", "1", "2", "3", "4", "5"],
        "{section}"
    );
    assert_eq!(codes(&from_readme), codes(&from_help));
    for ((code, h), (_, r)) in from_help.iter().zip(&from_readme) {
        assert_eq!(words(h), words(r), "exit code {code}");
    }
}
