//! `baton network plan/apply/mirror-rules` as a user runs them against `baton sim up`
//! (the `default` scenario on moto): bad input refused with nothing created, a plan that
//! keeps green clear of everything of blue's, apply's effects visible through EC2 and a
//! second apply changing nothing, a stale plan refused, and the database's rules mirrored
//! for green once. `--dry-run` of apply and of mirror-rules prints exactly the requests
//! the real run then sends: each printed field is found in EC2's state afterwards, and
//! nothing else changed.

mod common;

use std::collections::BTreeSet;

use baton_aws::Filter;
use common::{Sim, sim_up};
use ipnet::Ipv4Net;
use serde_json::Value;

/// The VPC's active blocks and subnets (block → tags), as EC2 reports them.
fn vpc_state(
    sim: &Sim,
    vpc: &str,
) -> (
    BTreeSet<Ipv4Net>,
    std::collections::BTreeMap<Ipv4Net, baton_aws::Tags>,
) {
    sim.ec2(async |aws| {
        let v = aws.describe_vpc(vpc).await.unwrap();
        let subnets = aws
            .describe_subnets(&[Filter::new("vpc-id", [vpc])])
            .await
            .unwrap();
        (
            v.cidr_blocks
                .iter()
                .filter(|b| b.is_active())
                .map(|b| b.cidr)
                .collect(),
            subnets.into_iter().map(|s| (s.cidr, s.tags)).collect(),
        )
    })
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// The requests a `--dry-run` printed: `ec2    Operation {json}` per line, as
/// (operation, body).
fn requests(out: &str) -> Vec<(String, Value)> {
    out.lines()
        .map(|l| {
            let (service, rest) = l.split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            assert_eq!(service, "ec2", "{l}");
            let (op, body) = rest.trim_start().split_once(' ').unwrap();
            (op.to_string(), serde_json::from_str(body).unwrap())
        })
        .collect()
}

/// One admitted IPv4 block of a security group: (group, protocol, from port, to port,
/// block).
type Permission = (String, String, Option<i32>, Option<i32>, String);

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("{v}")).to_string()
}

#[test]
fn network_plan_apply_and_mirror_rules_on_the_default_scenario() {
    let sim = sim_up();
    let seeded: Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    let vpc = seeded["vpc_id"].as_str().unwrap().to_string();
    let before = vpc_state(&sim, &vpc);
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "network",
            "plan",
            "--vpc",
            &vpc,
            "--cluster-name",
            "green",
            "--azs",
            "us-east-1a,us-east-1b,us-east-1c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: &[String]| sim.baton(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ok = |args: &[String]| sim.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Bad input: refused (exit 3) with a message naming the object and the fix.
    let o = sim.baton(&[
        "network",
        "plan",
        "--vpc",
        "vpc-0nope",
        "--cluster-name",
        "green",
        "--azs",
        "us-east-1a",
        "--nodes",
        "3",
        "--pods",
        "30",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("failed to find VPC vpc-0nope"),
        "{}",
        text(&o)
    );
    let mut args = base(&["--nodes", "3", "--pods", "30"]);
    args[7] = "us-east-1a,eu-west-1a".into();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("zone eu-west-1a is not in region us-east-1"),
        "{}",
        text(&o)
    );
    let o = run(&base(&["--nodes", "3", "--pods", "3000"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("at least 112 nodes"), "{}", text(&o));
    let big = [
        "--nodes",
        "600",
        "--pods",
        "24000",
        "--instance-type",
        "m5.xlarge",
        "--custom-networking",
    ];
    let mut quota = base(&big);
    quota.extend(["--cidr-quota", "4", "--avoid", "10.0.0.0/8"].map(String::from));
    let o = run(&quota);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("the VPC has 4 of its 4 IPv4 CIDR blocks"),
        "{}",
        text(&o)
    );
    assert_eq!(
        vpc_state(&sim, &vpc),
        before,
        "a refused plan changed the VPC"
    );

    // The default plan: green's pods in free CG-NAT space, clear of all of blue's ranges.
    let small_args = base(&[
        "--nodes",
        "6",
        "--pods",
        "240",
        "--instance-type",
        "m6i.xlarge",
        "--custom-networking",
        "--blue",
        "blue",
    ]);
    let table = ok(&small_args);
    assert!(
        table.contains("blue pods (ENIConfig us-east-1a)"),
        "{table}"
    );
    assert!(table.contains("blue nodes (blue)"), "{table}");
    let small_json = [
        small_args.as_slice(),
        &["-o", "json", "--out", "small.json"].map(String::from),
    ]
    .concat();
    let small: Value = serde_json::from_str(&ok(&small_json)).unwrap();
    let blue: Vec<Ipv4Net> = serde_json::from_value(small["blue_ranges"].clone()).unwrap();
    assert_eq!(
        blue,
        [
            "10.0.0.0/20",
            "10.0.16.0/20",
            "10.0.32.0/20",
            "100.64.0.0/19",
            "100.64.32.0/19",
            "100.64.64.0/19"
        ]
        .map(net)
    );
    let proposed: Vec<Ipv4Net> = small["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cidr"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(proposed.len(), 3, "one pod subnet per zone");
    for p in &proposed {
        assert!(net("100.64.0.0/16").contains(p), "{p}");
        for existing in before.1.keys() {
            assert!(
                !p.contains(&existing.network()) && !existing.contains(&p.network()),
                "{p} collides with {existing}"
            );
        }
    }
    assert_eq!(vpc_state(&sim, &vpc), before, "plan changed the VPC");

    // A plan that needs a new block: applied, visible through EC2, and again changes nothing.
    let mut big_args = base(&big);
    big_args.extend(["--blue", "blue", "-o", "yaml", "--out", "big.yaml"].map(String::from));
    let o = run(&big_args);
    assert!(o.status.success(), "{}", text(&o));
    // Its dry run: the requests, one a line, and nothing changed.
    let before_apply = vpc_state(&sim, &vpc);
    let dry = requests(&sim.ok(&["network", "apply", "--plan", "big.yaml", "--dry-run"]));
    assert_eq!(
        dry.iter().map(|(op, _)| op.as_str()).collect::<Vec<_>>(),
        [
            "AssociateVpcCidrBlock",
            "CreateSubnet",
            "CreateSubnet",
            "CreateSubnet"
        ],
        "{dry:?}"
    );
    assert_eq!(
        vpc_state(&sim, &vpc),
        before_apply,
        "a dry run changed the VPC"
    );
    let applied: Value = serde_json::from_str(&sim.ok(&[
        "network",
        "apply",
        "--plan",
        "big.yaml",
        "--yes",
        "-o",
        "json",
        "--eni-configs",
        "eni.yaml",
    ]))
    .unwrap();
    assert_eq!(
        applied["associated"],
        serde_json::json!(["100.65.0.0/18"]),
        "{applied}"
    );
    assert_eq!(
        applied["created"].as_object().unwrap().len(),
        3,
        "{applied}"
    );
    let plan_id = applied["plan"].as_str().unwrap().to_string();
    let after = vpc_state(&sim, &vpc);
    assert!(after.0.contains(&net("100.65.0.0/18")));
    let ours: Vec<(&Ipv4Net, &baton_aws::Tags)> = after
        .1
        .iter()
        .filter(|(_, t)| t.get("baton.io/network-plan") == Some(&plan_id))
        .collect();
    assert_eq!(ours.len(), 3);
    for (cidr, tags) in &ours {
        assert_eq!(tags["kubernetes.io/cluster/green"], "shared", "{cidr}");
        assert_eq!(tags["baton.io/network-role"], "pods", "{cidr}");
    }
    // What the dry run printed is what was sent: every field is in EC2 now, and EC2
    // gained exactly those blocks and subnets.
    let subnets = sim.ec2(async |aws| {
        aws.describe_subnets(&[Filter::new("vpc-id", [vpc.as_str()])])
            .await
            .unwrap()
    });
    let mut printed_blocks = BTreeSet::new();
    let mut printed_subnets = BTreeSet::new();
    for (op, body) in &dry {
        assert_eq!(str_of(&body["VpcId"]), vpc, "{body}");
        let cidr = net(&str_of(&body["CidrBlock"]));
        if op == "AssociateVpcCidrBlock" {
            printed_blocks.insert(cidr);
            continue;
        }
        printed_subnets.insert(cidr);
        let s = subnets
            .iter()
            .find(|s| s.cidr == cidr)
            .unwrap_or_else(|| panic!("{cidr} not created: {body}"));
        assert_eq!(s.vpc_id, vpc);
        assert_eq!(s.availability_zone, str_of(&body["AvailabilityZone"]));
        let spec = &body["TagSpecifications"][0];
        assert_eq!(spec["ResourceType"], "subnet", "{body}");
        let sent: baton_aws::Tags = spec["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (str_of(&t["Key"]), str_of(&t["Value"])))
            .collect();
        assert_eq!(s.tags, sent, "{cidr}");
    }
    assert_eq!(
        printed_blocks,
        after.0.difference(&before_apply.0).copied().collect(),
        "the blocks associated"
    );
    assert_eq!(
        printed_subnets,
        after
            .1
            .keys()
            .filter(|c| !before_apply.1.contains_key(c))
            .copied()
            .collect(),
        "the subnets created"
    );
    let eni = std::fs::read_to_string(sim.dir.path().join("eni.yaml")).unwrap();
    assert_eq!(eni.matches("kind: ENIConfig").count(), 3, "{eni}");
    assert!(eni.contains("subnet: subnet-"), "{eni}");
    let again: Value = serde_json::from_str(&sim.ok(&[
        "network", "apply", "--plan", "big.yaml", "--yes", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(again["created"].as_object().unwrap().len(), 0, "{again}");
    assert_eq!(
        again["already_created"].as_object().unwrap().len(),
        3,
        "{again}"
    );
    assert_eq!(again["eni_configs"].as_array().unwrap().len(), 3, "{again}");
    assert_eq!(
        vpc_state(&sim, &vpc),
        after,
        "a second apply changed the VPC"
    );
    assert_eq!(
        sim.ok(&["network", "apply", "--plan", "big.yaml", "--dry-run"]),
        "",
        "an applied plan has no request left"
    );

    // The small plan was made before that: stale now, refused, nothing created.
    let o = sim.baton(&["network", "apply", "--plan", "small.json", "--yes"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("stale"), "{}", text(&o));
    assert!(
        text(&o).contains("was associated by someone else"),
        "{}",
        text(&o)
    );
    assert_eq!(
        vpc_state(&sim, &vpc),
        after,
        "a refused apply changed the VPC"
    );

    // The database admits blue's ranges only; mirror-rules gives green the same.
    let db = seeded["security_groups"]["orders-db"]
        .as_str()
        .unwrap()
        .to_string();
    let admitted = |sim: &Sim| -> BTreeSet<String> {
        sim.ec2(async |aws| {
            aws.describe_security_groups(std::slice::from_ref(&db), &[])
                .await
                .unwrap()[0]
                .ingress
                .iter()
                .filter(|r| r.covers("tcp", 5432))
                .flat_map(|r| r.cidrs.clone())
                .collect()
        })
    };
    let blue_only = admitted(&sim);
    let shown = sim.ok(&["network", "mirror-rules", "--plan", "big.yaml"]);
    assert!(
        shown.contains("orders-db") && shown.contains("5432"),
        "{shown}"
    );
    assert!(shown.contains("Not added"), "{shown}");
    assert_eq!(
        admitted(&sim),
        blue_only,
        "mirror-rules without --apply changed a group"
    );
    // The dry run prints one AuthorizeSecurityGroupIngress per rule, changes nothing;
    // --apply then adds exactly those permissions.
    let permissions = |sim: &Sim| -> BTreeSet<Permission> {
        sim.ec2(async |aws| {
            aws.describe_security_groups(&[], &[Filter::new("vpc-id", [vpc.as_str()])])
                .await
                .unwrap()
                .into_iter()
                .flat_map(|g| {
                    g.ingress
                        .into_iter()
                        .flat_map(|r| {
                            r.cidrs
                                .into_iter()
                                .map(|c| (r.protocol.clone(), r.from_port, r.to_port, c))
                                .collect::<Vec<_>>()
                        })
                        .map(|(p, f, t, c)| (g.id.clone(), p, f, t, c))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    };
    let rules_before = permissions(&sim);
    let dry = requests(&sim.ok(&["network", "mirror-rules", "--plan", "big.yaml", "--dry-run"]));
    assert!(!dry.is_empty());
    assert_eq!(permissions(&sim), rules_before, "a dry run added a rule");
    let mut printed = BTreeSet::new();
    for (op, body) in &dry {
        assert_eq!(op, "AuthorizeSecurityGroupIngress", "{body}");
        let [p] = body["IpPermissions"].as_array().unwrap().as_slice() else {
            panic!("one permission per request: {body}")
        };
        let port = |k: &str| {
            p.get(k)
                .map(|v| i32::try_from(v.as_i64().unwrap()).unwrap())
        };
        for range in p["IpRanges"].as_array().unwrap() {
            printed.insert((
                str_of(&body["GroupId"]),
                str_of(&p["IpProtocol"]),
                port("FromPort"),
                port("ToPort"),
                str_of(&range["CidrIp"]),
            ));
        }
    }
    let green: Vec<String> = serde_json::from_str::<Value>(&sim.ok(&[
        "network",
        "mirror-rules",
        "--plan",
        "big.yaml",
        "--apply",
        "--yes",
        "-o",
        "json",
    ]))
    .unwrap()
    .as_array()
    .unwrap()
    .iter()
    .flat_map(|m| {
        m["add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
    })
    .collect();
    assert_eq!(
        green.len(),
        6,
        "3 existing node subnets and 3 new pod subnets: {green:?}"
    );
    assert_eq!(
        permissions(&sim)
            .difference(&rules_before)
            .cloned()
            .collect::<BTreeSet<_>>(),
        printed,
        "--apply added what the dry run printed"
    );
    let now = admitted(&sim);
    for g in &green {
        assert!(now.contains(g), "{g} not admitted on 5432: {now:?}");
    }
    assert!(blue_only.is_subset(&now));
    let second = sim.ok(&[
        "network",
        "mirror-rules",
        "--plan",
        "big.yaml",
        "--apply",
        "--yes",
    ]);
    assert!(second.contains("No rule to add"), "{second}");
    assert_eq!(admitted(&sim), now);
    // The explicit form finds the same group.
    let explicit = sim.ok(&[
        "network",
        "mirror-rules",
        "--from-cidrs",
        "10.0.0.0/20",
        "--to-cidrs",
        "10.2.0.0/24",
        "--security-group",
        &db,
    ]);
    assert!(
        explicit.contains("10.2.0.0/24") && explicit.contains(&db),
        "{explicit}"
    );
}
