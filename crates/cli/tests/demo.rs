//! `baton demo` as a newcomer runs it (its own moto and emulated clusters, nothing
//! started beforehand), then `baton report` on its state dir, the page loaded in headless
//! Chromium. The demo's exit code and summary are checked, and so is the world it leaves
//! behind through its record (`demo.json`): every invariant held, every volume's data
//! continued in green.

use std::path::Path;
use std::process::{Command, Output};

fn baton(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_demo_tells_the_whole_story_and_its_report_renders_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let o = baton(tmp.path(), &["demo", "--state-dir", "demo"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    // In the seed's order, each step done (none skipped).
    let mut at = 0;
    for step in [
        "[1/16] environment",
        "[2/16] network plan",
        "[3/16] network apply",
        "[4/16] database rules",
        "[5/16] volume keys",
        "[6/16] pod identities",
        "[7/16] target group bindings",
        "[8/16] preflight",
        "[9/16] backup",
        "[10/16] green's stateless apps",
        "[11/16] traffic shift",
        "[12/16] stateful plan",
        "[13/16] stateful move",
        "[14/16] commit",
        "[15/16] final check",
        "[16/16] retire blue",
    ] {
        let found = out[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step} missing or out of order:\n{out}"));
        at += found;
    }
    assert!(!out.contains("SKIPPED") && !out.contains("FAILED"), "{out}");
    // The commands are shown as a user would type them (long ones continued with `\`).
    let commands = shown_as_it_ran(&out, &tmp.path().join("demo"));
    for command in [
        "baton network apply --plan network/plan.json",
        "baton identity apply --from blue --to green --yes -o json > identity.json",
        "baton traffic bindings --apply --from blue --to green --yes -o json > bindings.json",
        "baton traffic shift --listener arn:aws:elasticloadbalancing:",
        "baton migrate --from blue --to green --standalone-claims --plan plan.json --yes --state-dir migration",
        "baton commit --state-dir migration --yes",
    ] {
        assert!(
            commands.iter().any(|c| c.starts_with(command)),
            "{command} not shown:\n{out}"
        );
    }
    // The summary: per app, traffic steps, findings, invariants.
    let summary = &out[out.find("══ summary ══").expect("a summary")..];
    for app in [
        "cache/session-cache",
        "orders/orders-db",
        "streaming/events-broker",
    ] {
        assert!(
            summary.contains(app),
            "{app} not in the summary:\n{summary}"
        );
    }
    assert!(summary.contains("green from"), "{summary}");
    assert!(
        summary.contains("100 %") && summary.contains("pass"),
        "{summary}"
    );
    assert!(summary.contains("[preflight] "), "{summary}");
    assert!(
        summary.contains("✓ blue serves nothing") && summary.contains("✓ blue holds no volume"),
        "{summary}"
    );
    assert!(out.contains("baton demo passed"), "{out}");
    readable(&out, summary);

    // What it recorded agrees with what it printed.
    let dir = tmp.path().join("demo");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap();
    let invariants = record["invariants"].as_array().unwrap();
    assert_eq!(invariants.len(), 7, "{record}");
    assert!(invariants.iter().all(|i| i["held"] == true), "{record}");
    // Every shape of the default estate moved: three StatefulSets (nine volumes), two
    // Deployments with a volume each, a standalone claim, the ledger group (a StatefulSet
    // and a proxy without volumes) and the Argo CD-managed StatefulSet.
    let volumes = record["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 14);
    for app in [
        "media/thumbnailer",
        "jobs/report-worker",
        "archive/archive-data",
        "ledger/ledger-db",
        "catalog/catalog-db",
    ] {
        assert!(
            volumes.iter().any(|v| v["app"] == app),
            "{app} did not move"
        );
    }
    assert!(
        out.contains("ledger/ledger-db → ledger/ledger-proxy"),
        "the plan shows the group:\n{out}"
    );
    assert!(
        out.contains("Kept paused in blue") && out.contains("Application argocd/catalog"),
        "commit lists the fences it keeps:\n{out}"
    );
    for v in volumes {
        if v["standalone"] == true {
            // Nothing mounts it on either side: found as blue left it.
            assert_eq!(v["before"], v["after"], "{v}");
        } else {
            let before = v["before"]["value"].as_u64().unwrap();
            assert!(v["before"]["writer"].as_str().unwrap().starts_with("blue/"));
            assert!(v["after"]["writer"].as_str().unwrap().starts_with("green/"));
            assert!(v["after"]["from"].as_u64().unwrap() >= before, "{v}");
        }
        // The owner tags, before and after: green's driver's tag after, never before.
        let tag = "ebs.csi.aws.com/cluster-name=green";
        let owned = |k: &str| v[k].as_array().unwrap().iter().any(|t| t == tag);
        assert!(!owned("owner_before") && owned("owner_after"), "{v}");
    }
    assert!(
        summary.contains("volumes' ownership tags") && summary.contains("after commit"),
        "{summary}"
    );
    assert!(dir.join("volumes-grant.json").exists());
    assert!(dir.join("preflight.json").exists());
    assert!(dir.join("backup/index.yaml").exists());
    // Every EBS snapshot the migration journaled is in the summary, by its volume.
    let snapshots = snapshot_ids(&dir);
    assert_eq!(snapshots.len(), 14, "{snapshots:?}");
    for (volume, snap) in &snapshots {
        assert!(
            summary
                .lines()
                .any(|l| l.contains(volume.as_str()) && l.contains(snap.as_str())),
            "{volume}'s snapshot {snap} not in the summary:\n{summary}"
        );
    }
    let migration = journal(&dir)[0]["migration"].as_str().unwrap().to_string();
    assert!(summary.contains(&migration), "{summary}");

    // A second run in the same dir replaces the first; a dir of other files is refused.
    std::fs::create_dir_all(tmp.path().join("mine")).unwrap();
    std::fs::write(tmp.path().join("mine/notes.txt"), "keep me").unwrap();
    let o = baton(tmp.path(), &["demo", "--state-dir", "mine"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("notes.txt"), "{}", text(&o));
    assert!(tmp.path().join("mine/notes.txt").exists());

    report_renders(tmp.path(), &snapshots, &migration);
}

fn journal(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("migration/journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (volume, snapshot) of every snapshot the migration's journal says it took.
fn snapshot_ids(dir: &Path) -> Vec<(String, String)> {
    journal(dir)
        .iter()
        .filter(|r| r["event"] == "done" && r["action"] == "start-snapshot")
        .map(|r| {
            (
                r["volume_id"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Each command is shown as it ran: one that prints JSON shows where its output went,
/// and that file holds the JSON.
fn shown_as_it_ran(out: &str, dir: &Path) -> Vec<String> {
    let mut commands = Vec::new();
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        let Some(start) = line.trim_start().strip_prefix("$ ") else {
            continue;
        };
        let mut command = start.to_string();
        while command.ends_with(" \\") {
            command.truncate(command.len() - 2);
            command.push(' ');
            command.push_str(lines.next().unwrap().trim());
        }
        // retire plan is asked again while blue's group is not yet quiet: once each.
        if !commands.contains(&command) {
            commands.push(command);
        }
    }
    assert_eq!(commands.len(), 15, "{commands:#?}");
    let mut to_files = 0;
    for c in &commands {
        if c.contains("-o json") {
            let (_, file) = c
                .split_once(" > ")
                .unwrap_or_else(|| panic!("`{c}` prints JSON; the demo shows no JSON"));
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{file} of `{c}`: {e}"));
            to_files += 1;
        }
    }
    assert_eq!(to_files, 8, "{commands:#?}");
    commands
}

/// Counts agree with their nouns, durations have one form, findings that say the same
/// are shown once, and what the demo writes itself stays narrow (commands' own output is
/// kept to the terminal's width only on a terminal).
fn readable(out: &str, summary: &str) {
    for wrong in [
        "1 notes",
        "1 warnings",
        "1 findings",
        "1 rules",
        "1 security-group rules",
        "1 subnets",
        "1 apps",
    ] {
        let alone = out
            .match_indices(wrong)
            .any(|(i, _)| i == 0 || !out.as_bytes()[i - 1].is_ascii_digit());
        assert!(!alone, "{wrong:?} in:\n{out}");
    }
    let compact = out.split_whitespace().find(|w| {
        w.strip_suffix('s')
            .and_then(|n| n.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
    });
    assert_eq!(compact, None, "a duration not shown as `0.63 s`:\n{out}");
    for line in out.lines().filter(|l| !l.starts_with("  │")) {
        assert!(line.chars().count() <= 130, "too long: {line}");
    }
    // The PVs with reclaim policy Delete: one entry, ×13, in the preflight step and in
    // the summary; the standalone claim's (preflight checks workloads, the plan selects
    // it with --standalone-claims) once more, from the stateful plan.
    assert_eq!(
        out.matches("warn ×13  reclaim policy is Delete").count(),
        1,
        "{out}"
    );
    assert_eq!(
        summary
            .matches("warn ×13  [preflight] reclaim policy is Delete")
            .count(),
        1,
        "{summary}"
    );
    assert_eq!(
        out.matches("reclaim policy is Delete (reclaim-delete)")
            .count(),
        3
    );
    // The fingerprint columns say what they are.
    for column in ["blue at start", "green from", "green now", "snapshot"] {
        assert!(summary.contains(column), "{column}: {summary}");
    }
}

/// `baton report`, then the page in headless Chromium: the DOM after load holds every
/// section, and the browser laid out the charts' bars.
fn report_renders(tmp: &Path, snapshots: &[(String, String)], migration: &str) {
    let o = baton(
        tmp,
        &["report", "--state-dir", "demo", "--out", "page/report.html"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = tmp.join("page/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch.
    for fetch in ["src=", "href=", "@import", "url(", "http://", "https://"] {
        assert!(!html.contains(fetch), "the page fetches something: {fetch}");
    }
    assert!(html.contains("<svg id=\"timeline\""));
    assert!(html.contains("<svg id=\"traffic\""));
    // Times to the second, not the nanosecond.
    let nanos = html
        .as_bytes()
        .windows(11)
        .any(|w| w[0] == b'.' && w[1..10].iter().all(u8::is_ascii_digit) && w[10] == b'Z');
    assert!(!nanos, "times with nanoseconds in the page");
    assert!(html.contains(" UTC"));
    let applied: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.join("demo/network/applied.json")).unwrap(),
    )
    .unwrap();
    let subnets: Vec<&str> = applied["created"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(subnets.len(), 3, "{applied}");

    // Nothing to report is refused, naming what was looked for.
    std::fs::create_dir_all(tmp.join("empty")).unwrap();
    let o = baton(tmp, &["report", "--state-dir", "empty"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("holds nothing to report"), "{}", text(&o));

    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        println!("SKIPPED: chromium not installed (the report was written, not rendered)");
        return;
    };
    let browser = |extra: &[String]| {
        let profile = tempfile::tempdir().unwrap();
        let o = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1100,2400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "chromium: {}", text(&o));
        o
    };
    let dom = String::from_utf8(browser(&["--dump-dom".into()]).stdout).unwrap();
    for expected in [
        "passed: every invariant held",
        "Timeline per app",
        "Downtime, snapshots and data per app",
        "green's weight and 5xx ratio",
        "Preflight",
        "orders/orders-db",
        "streaming/events-broker",
        "storefront",
        // The 5xx axis is labelled, in percent, with the gate's maximum.
        ">green 5xx ratio (%)</text>",
        ">gate max 1 % 5xx</text>",
        ">green's share of traffic (%)</text>",
        // The commands behind the steps.
        "$ baton migrate --from blue --to green --standalone-claims --plan plan.json --yes --state-dir migration",
        "$ baton preflight --from blue --to green",
        migration,
    ] {
        assert!(
            dom.contains(expected),
            "{expected} not in the rendered page"
        );
    }
    for (volume, snap) in snapshots {
        assert!(
            dom.contains(&format!(
                "{volume}</td><td class=\"mono snapshot\">{snap}</td>"
            )),
            "{volume}'s snapshot {snap} not in the rendered page"
        );
    }
    for subnet in &subnets {
        assert!(dom.contains(subnet), "subnet {subnet} not in the page");
    }
    // The gates' 5xx in percent, as the chart and the CLI.
    let gates = &dom[dom.find("id=\"gates\"").unwrap()..];
    let gates = &gates[..gates.find("</table>").unwrap()];
    assert_eq!(gates.matches(" %</td>").count(), 2 * 4, "{gates}");
    // Findings that say the same are one row: thirteen PVs' reclaim policy, ×13, each PV
    // named (in full, in its title).
    let findings = &dom[dom.find("id=\"findings\"").unwrap()..];
    let findings = &findings[..findings.find("</table>").unwrap()];
    let rows: Vec<&str> = findings.split("<tr class=\"finding\">").skip(1).collect();
    // The database rule; preflight's four fences, in-tree, reclaim, two re-tags (the
    // in-tree volumes hand their ownership tags over too), two managed-by and the
    // version skew; the stateful plan's reclaim and re-tag of the standalone claim
    // (which preflight, checking workloads, does not see).
    assert_eq!(rows.len(), 14, "{findings}");
    let reclaim = rows
        .iter()
        .find(|r| r.contains("reclaim policy is Delete"))
        .unwrap();
    assert!(reclaim.contains(">×13</td>"), "{reclaim}");
    assert_eq!(
        reclaim
            .matches("title=\"PersistentVolume blue/pvc-")
            .count(),
        13
    );
    // 3 apps × (prepare, window, after) bars, the weight line and 4 gate points.
    let drawn: usize = dom
        .split("data-drawn-bars=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("the page's script ran in the browser");
    assert!(
        drawn >= 3 * 3 + 1 + 4,
        "only {drawn} chart elements laid out"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-report.png");
    browser(&[format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000);
    println!("report screenshot: {}", shot.display());
}

/// `baton demo --cycles 2`: the upgrade as a routine. After the first story, blue's node
/// group goes, its subnets are released, teal is made in the space they held, and
/// everything moves again, green → teal, with every volume's data continuing and nothing
/// of blue left.
#[test]
fn two_cycles_move_everything_again_into_the_space_blue_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let o = baton(
        tmp.path(),
        &["demo", "--state-dir", "demo", "--cycles", "2"],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let mut at = 0;
    for step in [
        "[16/23] retire blue",
        "[17/23] blue's node group",
        "[18/23] blue's subnets",
        "[19/23] teal's network",
        "[20/23] teal",
        "[21/23] green → teal",
        "[22/23] retire green",
        "[23/23] final check of both cycles",
    ] {
        let found = out[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step} missing or out of order:\n{out}"));
        at += found;
    }
    assert!(!out.contains("SKIPPED") && !out.contains("FAILED"), "{out}");
    assert!(
        out.contains("✓ every volume's data continued across both moves")
            && out.contains("✓ nothing of blue is left"),
        "{out}"
    );
    // teal's subnets lie where blue's were.
    let teal = out
        .lines()
        .find(|l| l.contains("created for teal"))
        .unwrap();
    assert!(
        teal.contains("3 subnets created for teal, 3 of them"),
        "{teal}"
    );
}
