//! VPC against moto: CIDR block associations, subnets, instances across pages,
//! security groups and ingress rules.

mod common;

use baton_aws::{
    AssociateVpcCidrBlock, AuthorizeSecurityGroupIngress, Error, Filter, IngressRule, NewSubnet,
    Tags,
};
use ipnet::Ipv4Net;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("CIDR")
}

fn ingress(group_id: &str, rule: &IngressRule) -> AuthorizeSecurityGroupIngress {
    AuthorizeSecurityGroupIngress {
        group_id: group_id.to_owned(),
        rule: rule.clone(),
    }
}

#[tokio::test]
async fn vpc_lists_every_cidr_association_with_state() {
    let sdk = common::fixtures::sdk().await;
    let aws = common::aws().await;
    let vpc_id = common::fixtures::vpc(&sdk, "10.0.0.0/16").await;

    let added = aws
        .associate_vpc_cidr(&AssociateVpcCidrBlock {
            vpc_id: vpc_id.clone(),
            cidr_block: net("100.64.0.0/16"),
        })
        .await
        .expect("associate");
    assert_eq!(added.cidr, net("100.64.0.0/16"));
    assert!(
        added.association_id.starts_with("vpc-cidr-assoc"),
        "{added:?}"
    );

    let vpc = aws.describe_vpc(&vpc_id).await.expect("describe VPC");
    assert_eq!(vpc.id, vpc_id);
    assert_eq!(vpc.primary_cidr, net("10.0.0.0/16"));
    let blocks: Vec<(Ipv4Net, bool)> = vpc
        .cidr_blocks
        .iter()
        .map(|b| (b.cidr, b.is_active()))
        .collect();
    assert_eq!(
        blocks,
        [(net("10.0.0.0/16"), true), (net("100.64.0.0/16"), true)]
    );
    assert!(vpc.cidr_blocks.iter().all(|b| b.state == "associated"));
}

#[tokio::test]
async fn subnets_are_created_with_tags_and_described_with_free_ips() {
    let sdk = common::fixtures::sdk().await;
    let aws = common::aws().await;
    let vpc_id = common::fixtures::vpc(&sdk, "10.1.0.0/16").await;
    let tags: Tags = [("kubernetes.io/role/internal-elb".to_owned(), "1".to_owned())].into();

    let created = aws
        .create_subnet(&NewSubnet {
            vpc_id: vpc_id.clone(),
            availability_zone: "us-east-1a".into(),
            cidr: net("10.1.4.0/22"),
            tags: tags.clone(),
        })
        .await
        .expect("create subnet");
    assert_eq!(created.cidr, net("10.1.4.0/22"));
    assert_eq!(created.tags, tags);

    let subnets = aws
        .describe_subnets(&[Filter::new("vpc-id", [vpc_id.as_str()])])
        .await
        .expect("describe subnets");
    let [s] = subnets.as_slice() else {
        panic!("expected one subnet, got {subnets:?}")
    };
    assert_eq!(s.id, created.id);
    assert_eq!(s.vpc_id, vpc_id);
    assert_eq!(s.availability_zone, "us-east-1a");
    // 1024 addresses minus AWS's 5 reserved.
    assert_eq!(s.available_ips, 1019);
    assert_eq!(s.tags, tags);

    let overlap = aws
        .create_subnet(&NewSubnet {
            vpc_id: vpc_id.clone(),
            availability_zone: "us-east-1b".into(),
            cidr: net("10.1.5.0/24"),
            tags: Tags::new(),
        })
        .await
        .expect_err("overlapping subnet");
    assert!(
        matches!(overlap, Error::Service { ref code, .. } if code == "InvalidSubnet.Conflict"),
        "{overlap:?}"
    );
}

#[tokio::test]
async fn instances_come_back_from_every_page_with_zone_and_ip() {
    let sdk = common::fixtures::sdk().await;
    let aws = baton_aws::Aws::connect(&common::config(&common::moto::endpoint()).page_size(5))
        .await
        .expect("connect");
    let run = common::unique("nodes");
    let vpc_id = common::fixtures::vpc(&sdk, "10.2.0.0/16").await;
    let a = common::fixtures::subnet(&sdk, &vpc_id, "us-east-1a", "10.2.1.0/24").await;
    let b = common::fixtures::subnet(&sdk, &vpc_id, "us-east-1b", "10.2.2.0/24").await;
    let mut ids = Vec::new();
    // Seven reservations: moto pages DescribeInstances by reservation.
    for i in 0..7 {
        let subnet = if i % 2 == 0 { &a } else { &b };
        ids.push(common::fixtures::instance(&sdk, subnet, "eks:cluster-name", &run).await);
    }
    let found = aws
        .describe_instances(&[Filter::new("tag:eks:cluster-name", [run.as_str()])])
        .await
        .expect("describe instances");
    let mut got: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    let zones: std::collections::BTreeSet<&str> =
        found.iter().map(|i| i.availability_zone.as_str()).collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b"].into());
    for i in &found {
        assert_eq!(i.vpc_id.as_deref(), Some(vpc_id.as_str()));
        assert_eq!(i.state, "running");
        assert!(
            i.private_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("10.2.")),
            "{i:?}"
        );
        assert_eq!(i.tags.get("eks:cluster-name"), Some(&run));
    }
}

#[tokio::test]
async fn security_group_ingress_is_authorized_and_read_back() {
    let sdk = common::fixtures::sdk().await;
    let aws = common::aws().await;
    let vpc_id = common::fixtures::vpc(&sdk, "10.3.0.0/16").await;
    let create = |name: &'static str| {
        let sdk = sdk.clone();
        let vpc_id = vpc_id.clone();
        async move {
            sdk.ec2
                .create_security_group()
                .group_name(name)
                .description(name)
                .vpc_id(vpc_id)
                .send()
                .await
                .expect("create security group")
                .group_id()
                .expect("group id")
                .to_owned()
        }
    };
    let db = create("database").await;
    let nodes = create("green-nodes").await;

    let by_cidr = IngressRule {
        protocol: "tcp".into(),
        from_port: Some(5432),
        to_port: Some(5432),
        cidrs: vec!["100.64.0.0/16".into()],
        ..Default::default()
    };
    let by_group = IngressRule {
        protocol: "tcp".into(),
        from_port: Some(6379),
        to_port: Some(6380),
        groups: vec![nodes.clone()],
        ..Default::default()
    };
    aws.authorize_ingress(&ingress(&db, &by_cidr))
        .await
        .expect("authorize CIDR");
    aws.authorize_ingress(&ingress(&db, &by_group))
        .await
        .expect("authorize group");

    let groups = aws
        .describe_security_groups(std::slice::from_ref(&db), &[])
        .await
        .expect("describe");
    let [g] = groups.as_slice() else {
        panic!("expected one group, got {groups:?}")
    };
    assert_eq!(g.name, "database");
    assert_eq!(g.vpc_id.as_deref(), Some(vpc_id.as_str()));
    assert!(g.ingress.contains(&by_cidr), "{:?}", g.ingress);
    assert!(g.ingress.contains(&by_group), "{:?}", g.ingress);

    let in_vpc = aws
        .describe_security_groups(&[], &[Filter::new("vpc-id", [vpc_id.as_str()])])
        .await
        .expect("describe by VPC");
    let names: std::collections::BTreeSet<&str> = in_vpc.iter().map(|g| g.name.as_str()).collect();
    assert!(
        names.contains("database") && names.contains("green-nodes"),
        "{names:?}"
    );

    let duplicate = aws
        .authorize_ingress(&ingress(&db, &by_cidr))
        .await
        .expect_err("duplicate rule");
    assert_eq!(
        duplicate.code(),
        Some("InvalidPermission.Duplicate"),
        "{duplicate:?}"
    );

    let nobody = aws
        .authorize_ingress(&ingress(
            &db,
            &IngressRule {
                protocol: "tcp".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("rule admitting nobody");
    assert!(matches!(nobody, Error::InvalidInput { .. }), "{nobody:?}");
}

#[tokio::test]
async fn unknown_vpc_is_not_found() {
    let aws = common::aws().await;
    let err = aws
        .describe_vpc("vpc-0000000000000dead")
        .await
        .expect_err("no such VPC");
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        format!("failed to {err}")
            .starts_with("failed to describe VPC vpc-0000000000000dead: InvalidVpcID.NotFound"),
        "{err}"
    );
}

#[tokio::test]
async fn the_regions_zones_are_listed_and_others_are_not() {
    let aws = common::aws().await;
    let zones = aws.availability_zones().await.expect("describe zones");
    assert!(zones.contains(&"us-east-1a".to_string()), "{zones:?}");
    assert!(
        zones.iter().all(|z| z.starts_with("us-east-1")),
        "{zones:?}"
    );
}
