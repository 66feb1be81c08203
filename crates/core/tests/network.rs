//! The network planner: worked examples with known answers, refusals that say why, and
//! properties over random VPC layouts (proposals never overlap anything, always sit in
//! the VPC's blocks, existing or proposed, and always hold what was asked).

use std::collections::BTreeMap;

use baton_core::network::cidr::{self, association_forbidden, overlaps};
use baton_core::network::plan::*;
use baton_core::network::planner::{Inputs, NetworkError, plan};
use baton_core::network::sizing::{CniMode, SizingError, WarmTargets};
use baton_core::network::{apply, mirror};
use ipnet::Ipv4Net;
use proptest::prelude::*;

fn n(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn azs() -> Vec<String> {
    ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
        .map(String::from)
        .to_vec()
}

/// (id, zone, block, tags) of a subnet.
type SubnetRow<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

fn vpc(blocks: &[&str], subnets: &[SubnetRow<'_>]) -> VpcView {
    VpcView {
        id: "vpc-1".into(),
        primary: n(blocks[0]),
        blocks: blocks
            .iter()
            .map(|b| BlockView {
                cidr: n(b),
                state: "associated".into(),
            })
            .collect(),
        subnets: subnets
            .iter()
            .map(|(id, az, c, tags)| SubnetView {
                id: id.to_string(),
                az: az.to_string(),
                cidr: n(c),
                available: cidr::usable(n(c)),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .collect(),
    }
}

fn request(nodes: u32, pods: u32, itype: &str) -> Request {
    Request {
        cluster: "green".into(),
        azs: azs()[..3].to_vec(),
        nodes,
        pods,
        instance_type: itype.into(),
        max_pods_per_node: None,
        mode: CniMode::default(),
        warm: WarmTargets::default(),
        surge_percent: 0,
        avoid: vec![],
        cidr_quota: cidr::DEFAULT_CIDR_QUOTA,
    }
}

fn make(v: &VpcView, r: &Request) -> Result<NetworkPlan, NetworkError> {
    plan(&Inputs {
        vpc: v,
        request: r,
        blue: None,
        region: "us-east-1",
        region_azs: &azs(),
        id: "net-test",
        created: "2025-01-01T00:00:00Z",
    })
}

/// The seed customer's VPC, as the `default` scenario builds it.
fn default_vpc() -> VpcView {
    let blue = [("kubernetes.io/cluster/blue", "shared")];
    let green = [("kubernetes.io/cluster/green", "shared")];
    let public = [("kubernetes.io/role/elb", "1")];
    vpc(
        &["10.0.0.0/16", "10.1.0.0/16", "100.64.0.0/16", "10.2.0.0/16"],
        &[
            ("subnet-ba", "us-east-1a", "10.0.0.0/20", &blue),
            ("subnet-bb", "us-east-1b", "10.0.16.0/20", &blue),
            ("subnet-bc", "us-east-1c", "10.0.32.0/20", &blue),
            ("subnet-bpa", "us-east-1a", "100.64.0.0/19", &blue),
            ("subnet-bpb", "us-east-1b", "100.64.32.0/19", &blue),
            ("subnet-bpc", "us-east-1c", "100.64.64.0/19", &blue),
            ("subnet-ga", "us-east-1a", "10.1.0.0/20", &green),
            ("subnet-gb", "us-east-1b", "10.1.16.0/20", &green),
            ("subnet-gc", "us-east-1c", "10.1.32.0/20", &green),
            ("subnet-pa", "us-east-1a", "10.0.240.0/24", &public),
            ("subnet-pb", "us-east-1b", "10.0.241.0/24", &public),
        ],
    )
}

#[test]
fn three_thousand_pods_on_m5_large_in_secondary_ip_mode() {
    let v = vpc(&["10.0.0.0/16"], &[]);
    // 29 max pods = 3 ENIs × (10 − 1) + 2; 27 of them get VPC addresses: 112 nodes.
    let e = make(&v, &request(100, 3000, "m5.large")).unwrap_err();
    assert!(
        matches!(
            e,
            NetworkError::Sizing(SizingError::TooManyPods {
                per_node: 27,
                min_nodes: 112,
                ..
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("at least 112 nodes"), "{e}");

    let p = make(&v, &request(112, 3000, "m5.large")).unwrap();
    let s = &p.sizing;
    assert_eq!(s.node.cni_max_pods, 29);
    assert_eq!(s.node.pods_per_node, 27);
    // 27 pods fill all 3 ENIs (no room for a warm one): 3 × 10 addresses per node.
    assert_eq!(s.node.node_subnet_addresses, 30);
    assert_eq!(s.nodes_per_az, 38);
    let needs: Vec<u64> = p.needs.iter().map(|n| n.addresses).collect();
    assert_eq!(needs, [1140, 1140, 1140]);
    // 1,140 addresses need a /21 (2,043 usable; a /22 has 1,019).
    let got: Vec<(String, Ipv4Net, u64)> = p
        .subnets
        .iter()
        .map(|s| (s.az.clone(), s.cidr, s.usable))
        .collect();
    assert_eq!(
        got,
        [
            ("us-east-1a".into(), n("10.0.0.0/21"), 2043),
            ("us-east-1b".into(), n("10.0.8.0/21"), 2043),
            ("us-east-1c".into(), n("10.0.16.0/21"), 2043),
        ]
    );
    assert!(p.new_blocks.is_empty());
    assert!(p.subnets.iter().all(|s| s.tags[INTERNAL_ELB_TAG] == "1"
        && s.tags["kubernetes.io/cluster/green"] == "shared"
        && s.tags[PLAN_TAG] == "net-test"));
}

#[test]
fn three_thousand_pods_on_m5_large_with_prefix_delegation() {
    let v = vpc(&["10.0.0.0/16"], &[]);
    let mut r = request(30, 3000, "m5.large");
    r.mode.prefix_delegation = true;
    let p = make(&v, &r).unwrap();
    // 3 × 9 × 16 + 2 = 434, capped at 110 for 2 vCPUs; 100 pods per node.
    assert_eq!(p.sizing.node.max_pods, 110);
    assert_eq!(p.sizing.node.pods_per_node, 100);
    // ⌈100/16⌉ = 7 prefixes + 1 warm = 8 prefixes on 1 ENI: 128 + 1 addresses.
    assert_eq!(p.sizing.node.prefixes, 8);
    assert_eq!(p.sizing.node.node_subnet_addresses, 129);
    // Per zone 10 nodes: 1,290 addresses, 80 whole /28s beside 10 single addresses.
    assert_eq!(p.needs[0].addresses, 1290);
    assert_eq!(p.needs[0].prefixes, 80);
    assert!(p.subnets.iter().all(|s| s.cidr.prefix_len() == 21));
}

#[test]
fn fragmentation_can_make_a_bigger_subnet_necessary() {
    // 2 m5.large nodes with 96 pods each: ⌈96/16⌉ + 1 warm = 7 prefixes and 1 ENI
    // address per node, 226 addresses in all: a /24 (251 usable) by count. But its 16
    // /28s lose the first and last to AWS's reserved addresses, and each of the 2 single
    // addresses may spoil another: 12 whole /28s for 14 prefixes. So a /23.
    let v = vpc(&["10.0.0.0/16"], &[]);
    let mut r = request(2, 192, "m5.large");
    r.azs.truncate(1);
    r.mode.prefix_delegation = true;
    let p = make(&v, &r).unwrap();
    assert_eq!(
        (
            p.needs[0].addresses,
            p.needs[0].prefixes,
            p.needs[0].singles
        ),
        (226, 14, 2)
    );
    assert_eq!(p.subnets[0].cidr, n("10.0.0.0/23"));
}

#[test]
fn default_scenario_puts_green_where_nothing_of_blue_is() {
    let v = default_vpc();
    let mut r = request(6, 240, "m6i.xlarge");
    r.mode.custom_networking = true;
    let blue = BlueView {
        context: "blue".into(),
        node_subnets: vec!["subnet-ba".into(), "subnet-bb".into(), "subnet-bc".into()],
        eni_configs: ["a", "b", "c"]
            .iter()
            .map(|z| EniConfigView {
                name: format!("us-east-1{z}"),
                subnet: format!("subnet-bp{z}"),
                security_groups: vec![],
            })
            .collect(),
    };
    let p = plan(&Inputs {
        vpc: &v,
        request: &r,
        blue: Some(&blue),
        region: "us-east-1",
        region_azs: &azs(),
        id: "net-default",
        created: "now",
    })
    .unwrap();
    // Green's existing node subnets hold its nodes; pods get new subnets in 100.64/16.
    assert!(p.subnets.iter().all(|s| s.role == Role::Pods));
    assert_eq!(p.subnets.len(), 3);
    for s in &p.subnets {
        assert!(n("100.64.0.0/16").contains(&s.cidr), "{s:?}");
        for b in &p.blue_ranges {
            assert!(!overlaps(*b, s.cidr), "{} collides with blue's {b}", s.cidr);
        }
    }
    assert_eq!(p.blue_ranges.len(), 6);
    assert!(p.new_blocks.is_empty());
    // Blue's pod subnets are named as such in the address map.
    let map: Vec<&SubnetUse> = p.blocks.iter().flat_map(|b| &b.subnets).collect();
    assert!(
        map.iter()
            .any(|s| s.usage == "blue pods (ENIConfig us-east-1a)")
    );
    // One ENIConfig per zone, named after it, for the new pod subnets.
    let names: Vec<&str> = p.eni_configs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["us-east-1a", "us-east-1b", "us-east-1c"]);
    let mut with_id = p.eni_configs[0].clone();
    assert!(with_id.manifest().is_none(), "no subnet id before apply");
    with_id.subnet_id = Some("subnet-new".into());
    let m = with_id.manifest().unwrap();
    assert_eq!(m.api_version, "crd.k8s.amazonaws.com/v1alpha1");
    assert_eq!(m.spec.subnet, "subnet-new");
}

#[test]
fn a_full_block_means_a_new_one_from_cgnat_within_quota() {
    // 600 m5.xlarge nodes, 24,000 pods with custom networking: 200 nodes × 45 pod
    // addresses per zone = 9,000 → a /18 each; 100.64.0.0/16 has two free /18s.
    let v = default_vpc();
    let mut r = request(600, 24_000, "m5.xlarge");
    r.mode.custom_networking = true;
    let p = make(&v, &r).unwrap();
    assert_eq!(p.needs[1].addresses, 9000);
    let pods: Vec<Ipv4Net> = p
        .subnets
        .iter()
        .filter(|s| s.role == Role::Pods)
        .map(|s| s.cidr)
        .collect();
    assert_eq!(
        pods,
        [
            n("100.64.128.0/18"),
            n("100.64.192.0/18"),
            n("100.65.0.0/18")
        ]
    );
    assert_eq!(p.new_blocks.len(), 1);
    assert_eq!(p.new_blocks[0].cidr, n("100.65.0.0/18"));

    // With the fifth block taken by someone else, no new block can be added: the third
    // pod subnet takes free space of the 10.x blocks instead, and says so.
    let mut full = v.clone();
    full.blocks.push(BlockView {
        cidr: n("10.3.0.0/16"),
        state: "associated".into(),
    });
    let p = make(&full, &r).unwrap();
    assert!(p.new_blocks.is_empty());
    assert_eq!(p.subnets.last().unwrap().cidr, n("10.0.64.0/18"));
    assert!(
        p.explanation
            .iter()
            .any(|l| l.contains("us-east-1c pods in 10.0.0.0/16")),
        "{:#?}",
        p.explanation
    );
    // And when that space is kept out of too (--avoid), the quota is exhausted.
    r.avoid = vec![n("10.0.0.0/14")];
    let e = make(&full, &r).unwrap_err();
    assert!(
        matches!(
            e,
            NetworkError::QuotaExhausted {
                active: 5,
                quota: 5,
                needed: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--cidr-quota"), "{e}");
    r.cidr_quota = 6;
    assert!(make(&full, &r).is_ok());
}

#[test]
fn a_10_slash_8_vpc_never_gets_198_19() {
    // 100.64.0.0/10 wholly avoided: the next pod range, 198.19.0.0/16, is not allowed
    // next to a 10/8 primary, so the pods go to 10/8.
    let v = vpc(&["10.0.0.0/24"], &[]);
    let mut r = request(3, 30, "m5.large");
    r.mode.custom_networking = true;
    r.avoid = vec![n("100.64.0.0/10")];
    let p = make(&v, &r).unwrap();
    for b in &p.new_blocks {
        assert!(association_forbidden(v.primary, b.cidr).is_none(), "{b:?}");
        assert!(!n("198.19.0.0/16").contains(&b.cidr));
        assert!(
            !n("10.0.0.0/16").contains(&b.cidr),
            "primary in 10.0.0.0/15"
        );
    }
}

#[test]
fn bad_input_is_refused_plainly() {
    let v = vpc(&["10.0.0.0/16"], &[]);
    let mut r = request(3, 30, "m5.large");
    r.azs = vec!["us-east-1a".into(), "eu-west-1a".into()];
    let e = make(&v, &r).unwrap_err();
    assert!(
        e.to_string()
            .contains("zone eu-west-1a is not in region us-east-1"),
        "{e}"
    );
    let e = make(&v, &request(3, 30, "x9.huge")).unwrap_err();
    assert!(e.to_string().contains("--max-pods-per-node"), "{e}");
    let mut r = request(3, 30, "m4.large");
    r.mode.prefix_delegation = true;
    assert!(make(&v, &r).unwrap_err().to_string().contains("Nitro"));
    let e = make(&v, &request(0, 30, "m5.large")).unwrap_err();
    assert!(e.to_string().contains("--nodes"), "{e}");
}

#[test]
fn apply_steps_skip_what_is_done_and_refuse_a_stale_plan() {
    let v = default_vpc();
    let mut r = request(600, 24_000, "m5.xlarge");
    r.mode.custom_networking = true;
    let p = make(&v, &r).unwrap();
    let s = apply::steps(&p, &v).unwrap();
    assert_eq!(s.todo.len(), 1 + 3);
    assert_eq!(s.todo[0], apply::Step::Associate(n("100.65.0.0/18")));

    // After everything was made, nothing is left.
    let mut after = v.clone();
    after.blocks.push(BlockView {
        cidr: n("100.65.0.0/18"),
        state: "associated".into(),
    });
    for (k, sub) in p.subnets.iter().enumerate() {
        after.subnets.push(SubnetView {
            id: format!("subnet-new{k}"),
            az: sub.az.clone(),
            cidr: sub.cidr,
            available: sub.usable,
            tags: sub.tags.clone(),
        });
    }
    let s = apply::steps(&p, &after).unwrap();
    assert!(s.todo.is_empty(), "{:?}", s.todo);
    assert_eq!(s.subnets_done.len(), 3);

    // Someone else's subnet in a proposed range: stale, nothing to do.
    let mut raced = v.clone();
    raced.subnets.push(SubnetView {
        id: "subnet-other".into(),
        az: "us-east-1a".into(),
        cidr: n("100.64.128.0/24"),
        available: 251,
        tags: BTreeMap::new(),
    });
    let e = apply::steps(&p, &raced).unwrap_err();
    assert!(
        e.to_string()
            .contains("subnet-other (100.64.128.0/24) was created by someone else"),
        "{e}"
    );
    // The same CIDR as a proposal, without the plan's tag, is not ours.
    let mut lookalike = after.clone();
    lookalike.subnets.last_mut().unwrap().tags.remove(PLAN_TAG);
    assert!(matches!(
        apply::steps(&p, &lookalike),
        Err(apply::Refusal::Stale { .. })
    ));
    // A block the plan saw, gone.
    let mut gone = v.clone();
    gone.blocks[3].state = "disassociated".into();
    assert!(
        apply::steps(&p, &gone)
            .unwrap_err()
            .to_string()
            .contains("10.2.0.0/16 is no longer associated")
    );
}

#[test]
fn mirror_of_the_default_database_group() {
    let v = default_vpc();
    let mut r = request(6, 240, "m6i.xlarge");
    r.mode.custom_networking = true;
    let p = make(&v, &r).unwrap();
    let blue: Vec<Ipv4Net> = [
        "10.0.0.0/20",
        "10.0.16.0/20",
        "10.0.32.0/20",
        "100.64.0.0/19",
        "100.64.32.0/19",
        "100.64.64.0/19",
    ]
    .map(n)
    .to_vec();
    let db = mirror::Group {
        id: "sg-db".into(),
        name: "orders-db".into(),
        rules: vec![mirror::Rule {
            protocol: "tcp".into(),
            from_port: Some(5432),
            to_port: Some(5432),
            cidrs: blue.clone(),
        }],
    };
    let m = mirror::mirror(std::slice::from_ref(&db), &blue, &p.green_ranges);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].add, p.green_ranges);
    assert_eq!(
        p.green_ranges.len(),
        6,
        "3 existing node subnets + 3 new pod subnets"
    );
}

// ---- properties over random layouts ----

/// A random VPC: a primary block, up to 4 more allowed blocks, random non-overlapping
/// subnets in them, some tagged for green, and random --avoid ranges.
fn layout() -> impl Strategy<Value = (VpcView, Vec<Ipv4Net>)> {
    let primary = prop_oneof![
        (0u8..=255, 16u8..=24)
            .prop_map(|(b, l)| Ipv4Net::new([10, b, 0, 0].into(), l).unwrap().trunc()),
        (16u8..=31, 16u8..=24)
            .prop_map(|(b, l)| Ipv4Net::new([172, b, 0, 0].into(), l).unwrap().trunc()),
        (16u8..=24).prop_map(|l| Ipv4Net::new([192, 168, 0, 0].into(), l).unwrap().trunc()),
        (64u8..=127, 16u8..=24)
            .prop_map(|(b, l)| Ipv4Net::new([100, b, 0, 0].into(), l).unwrap().trunc()),
    ];
    let extra = proptest::collection::vec(
        (
            prop_oneof![
                Just([10u8, 0]),
                Just([100, 64]),
                Just([172, 16]),
                Just([198, 19])
            ],
            0u8..=63,
            16u8..=22,
        ),
        0..4,
    );
    let subnets = proptest::collection::vec(
        (
            0usize..5,
            0u32..4096,
            18u8..=28,
            0usize..4,
            any::<bool>(),
            0u8..=100,
        ),
        0..12,
    );
    let avoid = proptest::collection::vec(
        (
            0u8..=255,
            0u8..=255,
            12u8..=24,
            prop_oneof![Just(10u8), Just(100), Just(172)],
        ),
        0..3,
    );
    (primary, extra, subnets, avoid).prop_map(|(primary, extra, subnets, avoid)| {
        let mut blocks = vec![primary];
        for (base, b, l) in extra {
            let second = match base[0] {
                10 => b,
                100 => 64 + b,
                172 => 16 + (b % 16),
                _ => 19,
            };
            let c = Ipv4Net::new([base[0], second, 0, 0].into(), l)
                .unwrap()
                .trunc();
            if association_forbidden(primary, c).is_none()
                && !blocks.iter().any(|x| overlaps(*x, c))
            {
                blocks.push(c);
            }
        }
        let mut views: Vec<SubnetView> = Vec::new();
        for (k, (bi, off, len, az, green, used)) in subnets.into_iter().enumerate() {
            let block = blocks[bi % blocks.len()];
            if len < block.prefix_len() {
                continue;
            }
            let count = 1u32 << (len - block.prefix_len());
            let start = u32::from(block.network()) + (off % count) * (1u32 << (32 - len));
            let c = Ipv4Net::new(start.into(), len).unwrap();
            if views.iter().any(|s| overlaps(s.cidr, c)) {
                continue;
            }
            let mut tags = BTreeMap::new();
            if green {
                tags.insert(
                    "kubernetes.io/cluster/green".to_string(),
                    "shared".to_string(),
                );
            }
            let usable = cidr::usable(c);
            views.push(SubnetView {
                id: format!("subnet-{k}"),
                az: azs()[az].clone(),
                cidr: c,
                available: usable * u64::from(used) / 100,
                tags,
            });
        }
        let avoid = avoid
            .into_iter()
            .map(|(a, b, l, first)| Ipv4Net::new([first, a, b, 0].into(), l).unwrap().trunc())
            .collect();
        (
            VpcView {
                id: "vpc-p".into(),
                primary,
                blocks: blocks
                    .into_iter()
                    .map(|cidr| BlockView {
                        cidr,
                        state: "associated".into(),
                    })
                    .collect(),
                subnets: views,
            },
            avoid,
        )
    })
}

fn requests() -> impl Strategy<Value = Request> {
    (
        1u32..300,
        0u32..20_000,
        proptest::sample::select(vec![
            "t3.medium",
            "m5.large",
            "m5.xlarge",
            "m5.4xlarge",
            "m4.large",
            "m5.24xlarge",
        ]),
        any::<bool>(),
        any::<bool>(),
        1usize..=3,
        0u32..=50,
        4u32..=8,
        proptest::option::of(0u32..=20),
    )
        .prop_map(
            |(nodes, pods, t, pd, cn, zones, surge, quota, warm_ip)| Request {
                cluster: "green".into(),
                azs: azs()[..zones].to_vec(),
                nodes,
                pods,
                instance_type: t.into(),
                max_pods_per_node: None,
                mode: CniMode {
                    prefix_delegation: pd,
                    custom_networking: cn,
                },
                warm: WarmTargets {
                    ip: warm_ip.filter(|_| !pd),
                    ..Default::default()
                },
                surge_percent: surge,
                avoid: vec![],
                cidr_quota: quota,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn proposals_never_overlap_and_always_fit((v, avoid) in layout(), mut r in requests()) {
        r.avoid = avoid;
        r.cidr_quota = r.cidr_quota.max(v.blocks.len() as u32);
        match make(&v, &r) {
            Ok(p) => {
                let blocks: Vec<Ipv4Net> = v.blocks.iter().map(|b| b.cidr).chain(p.new_blocks.iter().map(|b| b.cidr)).collect();
                prop_assert!(blocks.len() as u32 <= r.cidr_quota);
                for b in &p.new_blocks {
                    prop_assert!(association_forbidden(v.primary, b.cidr).is_none(), "{:?}", b);
                    prop_assert!((16..=28).contains(&b.cidr.prefix_len()));
                    for o in v.blocks.iter().map(|b| b.cidr).chain(r.avoid.iter().copied()) {
                        prop_assert!(!overlaps(o, b.cidr), "new block {} overlaps {}", b.cidr, o);
                    }
                }
                for (k, s) in p.subnets.iter().enumerate() {
                    prop_assert!((16..=28).contains(&s.cidr.prefix_len()));
                    prop_assert!(blocks.iter().any(|b| b.contains(&s.cidr)), "{} outside every block", s.cidr);
                    prop_assert!(s.in_block.contains(&s.cidr));
                    for e in &v.subnets {
                        prop_assert!(!overlaps(e.cidr, s.cidr), "{} overlaps subnet {}", s.cidr, e.cidr);
                    }
                    for a in &r.avoid {
                        prop_assert!(!overlaps(*a, s.cidr), "{} overlaps --avoid {}", s.cidr, a);
                    }
                    for o in &p.subnets[k + 1..] {
                        prop_assert!(!overlaps(o.cidr, s.cidr), "{} overlaps proposal {}", s.cidr, o.cidr);
                    }
                }
                // Capacity: every zone and role gets what the per-node figures add up to.
                let per_az = u64::from(p.sizing.nodes_per_az);
                prop_assert!(p.sizing.nodes_per_az * r.azs.len() as u32 >= r.nodes);
                prop_assert!(p.sizing.node.pods_per_node * r.nodes >= r.pods);
                prop_assert!(p.sizing.node.pods_per_node + 2 <= p.sizing.node.max_pods);
                for need in &p.needs {
                    let per_node = if need.role == Role::Nodes { p.sizing.node.node_subnet_addresses } else { p.sizing.node.pod_subnet_addresses };
                    prop_assert_eq!(need.addresses, u64::from(per_node) * per_az);
                    let new: Vec<&ProposedSubnet> = p.subnets.iter().filter(|s| s.az == need.az && s.role == need.role).collect();
                    let existing_free: u64 = need.existing.iter().map(|e| e.free).sum();
                    let new_free: u64 = new.iter().map(|s| s.usable).sum();
                    prop_assert!(existing_free + new_free >= need.addresses, "{:?}", need);
                    if need.prefixes > 0 {
                        let existing_p: u64 = need.existing.iter().map(|e| e.free_prefixes).sum();
                        let new_p: u64 = new.iter().map(|s| cidr::free_prefixes_worst_case(s.cidr, need.singles)).sum();
                        prop_assert!(existing_p + new_p >= need.prefixes, "{:?}", need);
                    }
                    if need.role == Role::Pods {
                        // One ENIConfig subnet per zone holds the zone's pods alone.
                        prop_assert_eq!(new.len() + need.existing.len(), 1);
                    }
                }
                // apply on the unchanged VPC: one step per proposal and new block.
                let steps = apply::steps(&p, &v).unwrap();
                prop_assert_eq!(steps.todo.len(), p.subnets.len() + p.new_blocks.len());
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.starts_with("failed to "), "{}", text);
                prop_assert!(matches!(e,
                    NetworkError::Sizing(_) | NetworkError::QuotaExhausted { .. } | NetworkError::NoSpace { .. } | NetworkError::TooBig { .. }),
                    "unexpected refusal: {}", text);
            }
        }
    }
}
