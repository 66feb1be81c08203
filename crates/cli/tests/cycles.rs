//! The upgrade as a routine: the whole story twice on one estate, as a user runs it.
//! blue → green (identity, keys, bindings, rules, traffic, the stateful move, commit),
//! blue retired and its node group deleted, its subnets released; then green → teal, a
//! third cluster whose subnets `network plan` places in the space blue freed, the same
//! volumes moving again with their data continuing, and green retired the same way.
//! At the end nothing of blue is left in the security groups, the IAM trusts, the
//! bindings or the subnets.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Sim, fingerprint, plan_volume_ids, sim_up_with, text};
use serde_json::Value;

/// The estate's ids as `sim up` wrote them (re-read: an added cluster adds its group).
fn seeded(sim: &Sim) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap()
}

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

/// Until `retire plan` passes (blue's group quiet for its deregistration delay), at most
/// two minutes; the last plan.
fn wait_retirable(sim: &Sim, from: &str, to: &str) -> Value {
    let started = Instant::now();
    loop {
        let o = sim.baton(&[
            "retire",
            "plan",
            "--blue",
            from,
            "--green",
            to,
            "--state-dir",
            ".",
            "--quiet-for",
            "1s",
            "-o",
            "json",
        ]);
        let plan: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("retire plan -o json: {}", text(&o.stderr)));
        if code(&o) == Some(0) {
            return plan;
        }
        let blocking: Vec<&Value> = plan["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .collect();
        assert!(
            blocking.iter().all(|c| c["check"] == "blue-quiet")
                && started.elapsed() < Duration::from_secs(120),
            "retire {from} is blocked by more than quiet time: {blocking:#?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// One cycle: `from`'s apps, traffic and identity handed to `to`, committed, `from`
/// retired. Returns the moved volumes' ids.
fn cycle(sim: &Sim, from: &str, to: &str, mirror: &[&str]) -> (Vec<String>, Vec<String>) {
    let ids = seeded(sim);
    let listener = ids["listener_arn"].as_str().unwrap().to_string();
    let tg = |c: &str| {
        ids["target_groups"][format!("storefront-{c}")]
            .as_str()
            .unwrap_or_else(|| panic!("storefront-{c} in {ids}"))
            .to_string()
    };
    let (from_tg, to_tg) = (tg(from), tg(to));
    let dir = |what: &str| format!("{what}-{from}-{to}");
    let pair = ["--from", from, "--to", to];
    // Before anything moves: rules, keys, identity, bindings, green's stateless apps.
    sim.ok(&[
        &["network", "mirror-rules"][..],
        mirror,
        &["--apply", "--yes"],
    ]
    .concat());
    sim.ok(&[
        &["volumes", "grant"][..],
        &pair,
        &["--yes", "--state-dir", &dir("grants")],
    ]
    .concat());
    sim.ok(&[
        &["identity", "apply"][..],
        &pair,
        &["--yes", "--state-dir", &dir("identity")],
    ]
    .concat());
    sim.ok(&[
        &["traffic", "bindings"][..],
        &pair,
        &["--apply", "--yes", "--state-dir", &dir("bindings")],
    ]
    .concat());
    sim.kubectl(&[
        "--context",
        to,
        "-n",
        "web",
        "scale",
        "deployment/web",
        "--replicas=3",
    ]);
    // Its load balancer controller registers them: wait for healthy targets.
    let started = Instant::now();
    loop {
        let healthy = sim.ec2(async |aws| {
            aws.describe_target_health(&to_tg)
                .await
                .unwrap()
                .iter()
                .filter(|t| t.is_healthy())
                .count()
        });
        if healthy >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{to}'s web pods never became healthy targets of {to_tg} ({healthy})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Traffic, gated on the bed's ALB clients.
    sim.ok(&[
        "traffic",
        "shift",
        "--listener",
        &listener,
        "--from-tg",
        &from_tg,
        "--to-tg",
        &to_tg,
        "--steps",
        "50,100",
        "--interval",
        "3s",
        "--min-requests",
        "1",
        "--on-inconclusive",
        "pass",
        "--state-dir",
        &format!("traffic/{}", dir("shift")),
        "--yes",
    ]);
    // The stateful move, every shape, and its commit.
    let plan: Value = serde_json::from_str(
        &sim.ok(&[&["plan"][..], &pair, &["--standalone-claims", "-o", "json"]].concat()),
    )
    .unwrap();
    let volumes = plan_volume_ids(&plan);
    assert!(volumes.len() >= 14, "{plan}");
    // A standalone claim no pod mounts: nobody writes its data.
    let unmounted: Vec<String> = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["kind"]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case("claim"))
        })
        .flat_map(|a| a["volumes"].as_array().unwrap().iter())
        .map(|v| v["volume_id"].as_str().unwrap().to_string())
        .collect();
    let state = dir("move");
    sim.ok(&[
        &["migrate"][..],
        &pair,
        &["--standalone-claims", "--state-dir", &state, "--yes"],
    ]
    .concat());
    sim.ok(&["commit", "--state-dir", &state, "--yes"]);

    // Blue served requests until the shift: inside the default quiet time retire
    // refuses, naming its group.
    let o = sim.baton(&[
        "retire",
        "plan",
        "--blue",
        from,
        "--green",
        to,
        "--state-dir",
        ".",
    ]);
    let out = text(&o.stdout);
    assert_eq!(code(&o), Some(3), "{out}{}", text(&o.stderr));
    assert!(
        out.contains("blue-quiet") && out.contains(&format!("storefront-{from}")),
        "{out}"
    );
    wait_retirable(sim, from, to);
    let retire = |extra: &[&str]| {
        sim.baton(
            &[
                &["retire", "apply", "--blue", from, "--green", to][..],
                &["--state-dir", ".", "--quiet-for", "1s"],
                extra,
            ]
            .concat(),
        )
    };
    // A crash after the second removal (as kill -9 would, before its journal line):
    // running the same command again finishes the work.
    let o = sim.baton_with(
        &[
            &["retire", "apply", "--blue", from, "--green", to][..],
            &["--state-dir", ".", "--quiet-for", "1s", "--yes"],
        ]
        .concat(),
        &[("BATON_CRASH_AFTER_MUTATIONS", "2".to_string())],
    );
    assert_ne!(code(&o), Some(0), "it crashed: {}", text(&o.stderr));
    let journal =
        std::fs::read_to_string(sim.dir.path().join(format!("retire/{from}/retire.jsonl")))
            .unwrap();
    assert_eq!(
        journal.matches("\"sending\"").count(),
        journal.matches("\"sent\"").count() + 1,
        "the journal shows the request in flight: {journal}"
    );
    // Run again, with the target group deleted too once its targets are gone.
    let o = retire(&["--delete-target-groups", "--yes"]);
    assert_eq!(code(&o), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    let gone = sim.ec2(async |aws| {
        aws.describe_target_groups(None, std::slice::from_ref(&from_tg))
            .await
    });
    assert!(
        gone.as_ref().is_err_and(|e| e.is_not_found()),
        "{from}'s target group was deleted: {gone:?}"
    );
    let o = retire(&["--dry-run"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "", "a second apply sends nothing");
    (volumes, unmounted)
}

/// What of a cluster is left in the VPC's security groups, the roles' trusts, its
/// bindings: (rules admitting its ranges, trust statements naming its provider).
fn leftovers(sim: &Sim, ranges: &[&str], provider_id: &str) -> (Vec<String>, Vec<String>) {
    let groups = sim.ec2(async |aws| aws.describe_security_groups(&[], &[]).await.unwrap());
    let rules: Vec<String> = groups
        .iter()
        .flat_map(|g| {
            g.ingress.iter().flat_map(move |r| {
                r.cidrs
                    .iter()
                    .filter(|c| ranges.contains(&c.as_str()))
                    .map(move |c| format!("{} {c}", g.id))
            })
        })
        .collect();
    let mut trusts = Vec::new();
    for role in ["orders-db-archive", "storefront"] {
        let r = sim.ec2(async |aws| {
            aws.role_policies(&format!("arn:aws:iam::123456789012:role/{role}"))
                .await
                .unwrap()
        });
        if r.trust.contains(provider_id) {
            trusts.push(role.to_string());
        }
    }
    (rules, trusts)
}

fn issuer_id(sim: &Sim, cluster: &str) -> String {
    let c = sim.ec2(async |aws| aws.describe_cluster(cluster).await.unwrap());
    c.oidc_issuer
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

fn subnet_cidrs(sim: &Sim) -> BTreeMap<String, String> {
    sim.ec2(async |aws| aws.describe_subnets(&[]).await.unwrap())
        .into_iter()
        .map(|s| (s.id, s.cidr.to_string()))
        .collect()
}

#[test]
fn the_upgrade_runs_twice_and_the_first_cluster_leaves_nothing_behind() {
    let sim = sim_up_with(&["--scenario", "default"]);
    let ids = seeded(&sim);
    let vpc = ids["vpc_id"].as_str().unwrap().to_string();
    let blue_ranges = [
        "10.0.0.0/20",
        "10.0.16.0/20",
        "10.0.32.0/20",
        "100.64.0.0/19",
        "100.64.32.0/19",
        "100.64.64.0/19",
    ];
    let green_ranges = ["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/20"];
    let blue_provider = issuer_id(&sim, "blue");
    let before = subnet_cidrs(&sim);

    // Cycle 1: blue → green, blue retired.
    let (volumes, unmounted) = cycle(
        &sim,
        "blue",
        "green",
        &[
            "--vpc",
            &vpc,
            "--from-cidrs",
            &blue_ranges.join(","),
            "--to-cidrs",
            &green_ranges.join(","),
        ],
    );
    let written = |sim: &Sim| -> BTreeMap<String, (String, u64, u64)> {
        sim.tags(&volumes)
            .iter()
            .map(|(id, t)| {
                // A volume nothing ever wrote (an unmounted claim) has no fingerprint.
                let f = if t.contains_key("baton.sim/fingerprint") {
                    fingerprint(t)
                } else {
                    ("nobody".to_string(), 0, 0)
                };
                (id.clone(), f)
            })
            .collect()
    };
    let after_first = written(&sim);
    // Blue's node group deleted (`eksctl delete nodegroup`), then its subnets released.
    sim.ok(&["sim", "delete-nodegroup", "--state-dir", "sim", "blue"]);
    let o = sim.baton(&[
        "retire",
        "apply",
        "--blue",
        "blue",
        "--green",
        "green",
        "--state-dir",
        ".",
        "--quiet-for",
        "1s",
        "--release-subnets",
        "--yes",
    ]);
    assert_eq!(code(&o), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    let now = subnet_cidrs(&sim);
    for cidr in blue_ranges {
        assert!(
            !now.values().any(|c| c == cidr),
            "blue's subnet {cidr} was released: {now:?}"
        );
        assert!(before.values().any(|c| c == cidr), "{before:?}");
    }

    // Cycle 2: teal placed in the space blue freed, green → teal.
    let o = sim.ok(&[
        "network",
        "plan",
        "--vpc",
        &vpc,
        "--cluster-name",
        "teal",
        "--from",
        "green",
        "--azs",
        "us-east-1a,us-east-1b,us-east-1c",
        "--nodes",
        "6",
        "--pods",
        "240",
        "--instance-type",
        "m6i.xlarge",
        "--out",
        "teal-plan.json",
    ]);
    let plan: Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("teal-plan.json")).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e}: {o}"));
    let planned: Vec<String> = plan["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cidr"].as_str().unwrap().to_string())
        .collect();
    assert!(!planned.is_empty(), "{plan}");
    for cidr in &planned {
        let net: ipnet::Ipv4Net = cidr.parse().unwrap();
        assert!(
            blue_ranges
                .iter()
                .any(|b| b.parse::<ipnet::Ipv4Net>().unwrap().contains(&net)
                    || net.contains(&b.parse::<ipnet::Ipv4Net>().unwrap())),
            "teal's {cidr} is in the space blue freed ({blue_ranges:?})"
        );
    }
    let applied: Value = serde_json::from_str(&sim.ok(&[
        "network",
        "apply",
        "--plan",
        "teal-plan.json",
        "--yes",
        "-o",
        "json",
    ]))
    .unwrap();
    let subnets: Vec<String> = applied["created"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    sim.ok(&[
        "sim",
        "add-cluster",
        "teal",
        "--version",
        "v1.33.1-eks-0a1b2c3",
        "--subnets",
        &subnets.join(","),
        "--state-dir",
        "sim",
    ]);
    let green_provider = issuer_id(&sim, "green");
    let (moved, _) = cycle(&sim, "green", "teal", &["--plan", "teal-plan.json"]);
    let mut a = volumes.clone();
    let mut b = moved.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same volumes moved again");
    // Each volume's data went on from where the first move left it: never back, and
    // written by green or teal since (blue, only for a claim no pod mounts).
    for (id, (who, from, value)) in written(&sim) {
        let (first_who, _, first) = &after_first[&id];
        assert!(
            value >= *first,
            "{id}: {who} wrote {value} after {first_who} had written {first}"
        );
        if who == "teal" {
            assert!(
                from >= *first,
                "{id}: teal continued from {from}, not {first}"
            );
        }
        assert!(
            !["blue", "nobody"].contains(&who.as_str()) || unmounted.contains(&id),
            "{id}: still last written by blue after two moves"
        );
    }

    // Nothing of blue, nor now of green, in the rules and trusts; no binding in either.
    let (rules, trusts) = leftovers(&sim, &blue_ranges, &blue_provider);
    assert!(
        rules.is_empty() && trusts.is_empty(),
        "{rules:?} {trusts:?}"
    );
    let (rules, trusts) = leftovers(&sim, &green_ranges, &green_provider);
    assert!(
        rules.is_empty() && trusts.is_empty(),
        "{rules:?} {trusts:?}"
    );
    for c in ["blue", "green"] {
        let tgbs = sim.kubectl_json(c, &["get", "targetgroupbindings", "-A"]);
        assert_eq!(tgbs["items"].as_array().unwrap().len(), 0, "{c}: {tgbs}");
    }
}
