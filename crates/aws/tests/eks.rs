//! EKS against moto: cluster records and node groups across pages.

mod common;

use aws_sdk_eks::types::VpcConfigRequest;

#[tokio::test]
async fn describes_cluster_and_lists_node_groups_across_pages() {
    let sdk = common::fixtures::sdk().await;
    let vpc = common::fixtures::vpc(&sdk, "10.40.0.0/16").await;
    let a = common::fixtures::subnet(&sdk, &vpc, "us-east-1a", "10.40.1.0/24").await;
    let b = common::fixtures::subnet(&sdk, &vpc, "us-east-1b", "10.40.2.0/24").await;
    let name = common::unique("green");
    sdk.eks
        .create_cluster()
        .name(&name)
        .version("1.33")
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids(&a)
                .subnet_ids(&b)
                .security_group_ids("sg-0123456789abcdef0")
                .build(),
        )
        .send()
        .await
        .expect("create cluster");
    for group in ["system", "apps", "stateful"] {
        sdk.eks
            .create_nodegroup()
            .cluster_name(&name)
            .nodegroup_name(group)
            .node_role("arn:aws:iam::123456789012:role/node")
            .subnets(&a)
            .send()
            .await
            .expect("create node group");
    }
    let aws = baton_aws::Aws::connect(&common::config(&common::moto::endpoint()).page_size(1))
        .await
        .expect("connect");

    let cluster = aws.describe_cluster(&name).await.expect("describe cluster");
    assert_eq!(cluster.name, name);
    assert_eq!(cluster.version.as_deref(), Some("1.33"));
    assert_eq!(cluster.status, "ACTIVE");
    assert!(
        cluster
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("https://")),
        "{cluster:?}"
    );
    assert_eq!(cluster.subnet_ids, [a.clone(), b.clone()]);
    assert_eq!(cluster.security_group_ids, ["sg-0123456789abcdef0"]);

    let mut groups = aws.list_node_groups(&name).await.expect("list node groups");
    groups.sort();
    assert_eq!(groups, ["apps", "stateful", "system"]);
}

#[tokio::test]
async fn unknown_cluster_is_not_found() {
    let aws = common::aws().await;
    let err = aws
        .describe_cluster("no-such-cluster")
        .await
        .expect_err("missing");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    assert!(
        format!("failed to {err}").starts_with(
            "failed to describe EKS cluster no-such-cluster: ResourceNotFoundException"
        ),
        "{err}"
    );
}
