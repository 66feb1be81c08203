//! AWS authorization for EBS, as the bed enforces it (issue 18): each test pins one fact
//! of the EBS CSI driver's managed policies or of KMS, driven through kube-rs against
//! the emulated clusters, with the driver's role, the policies and the keys on moto.
//! Policies: kubernetes-sigs/aws-ebs-csi-driver#2918 and the AWS managed policy
//! reference pages (see crates/sim/policies/README.md); KMS:
//! https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html.

mod common;

use std::time::Duration;

use common::estate::EstateBed;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, ServiceAccount};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

const CLASSIC: &str = include_str!("../policies/AmazonEBSCSIDriverPolicy.json");
const V2: &str = include_str!("../policies/AmazonEBSCSIDriverPolicyV2.json");
const CLUSTER_SCOPED: &str =
    include_str!("../policies/AmazonEBSCSIDriverEKSClusterScopedPolicy.json");

const DENIED: &str =
    "api error UnauthorizedOperation: You are not authorized to perform this operation.";

/// Gives `cluster`'s EBS CSI driver its own IAM role (tagged `eks-cluster-name`) with
/// the managed policy `policy` (seeded as a customer-managed policy of that name, as
/// the scenarios do), through IRSA's ServiceAccount annotation. Returns the role ARN.
async fn driver_role(bed: &EstateBed, cluster: &str, policy: (&str, &str)) -> String {
    let aws = &bed.estate.aws;
    let name = format!("{cluster}-ebs-csi-{}", uuid::Uuid::new_v4().simple());
    let tags = baton_aws::Tags::from([("eks-cluster-name".to_string(), cluster.to_string())]);
    let arn = aws.create_role(&name, &tags, None).await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(policy.1).unwrap();
    aws.attach_new_policy(&name, policy.0, &doc.to_string())
        .await
        .unwrap();
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": { "name": "ebs-csi-controller-sa", "namespace": "kube-system",
                      "annotations": { "eks.amazonaws.com/role-arn": arn } }
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(bed.client(cluster).await, "kube-system")
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    arn
}

/// A volume made outside Kubernetes in us-east-1a (subnet 0's zone).
async fn hand_made_volume(bed: &EstateBed, tags: &[(&str, &str)], kms: Option<&str>) -> String {
    bed.estate
        .aws
        .create_volume(&baton_aws::NewVolume {
            availability_zone: "us-east-1a".into(),
            size_gib: 1,
            volume_type: "gp3".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kms_key_id: kms.map(String::from),
            ..Default::default()
        })
        .await
        .unwrap()
        .id
}

/// A PV for `volume` (zone a) and a one-replica StatefulSet `name` whose claim binds it.
async fn use_volume(client: &kube::Client, name: &str, volume: &str) {
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": { "name": format!("{name}-pv") },
        "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                  "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": volume, "fsType": "ext4" },
                  "claimRef": { "namespace": "default", "name": format!("data-{name}-0") },
                  "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                      { "key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1a"] }] }] } } }
    }))
    .unwrap();
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .unwrap();
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "serviceName": name, "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "c", "image": "postgres:16" }] } },
            "volumeClaimTemplates": [{ "metadata": { "name": "data" }, "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": { "requests": { "storage": "1Gi" } } } }],
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
}

async fn ready(bed: &EstateBed, cluster: &str, name: &str) {
    let api = Api::<StatefulSet>::namespaced(bed.client(cluster).await, "default");
    let cond = |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref())
            .is_some_and(|st| st.ready_replicas == Some(1))
    };
    if tokio::time::timeout(Duration::from_secs(30), await_condition(api, name, cond))
        .await
        .is_err()
    {
        panic!("{name} not ready within 30 s:\n{}", bed.dump(cluster));
    }
}

async fn volume(bed: &EstateBed, id: &str) -> baton_aws::Volume {
    bed.estate
        .aws
        .describe_volumes_by_id(&[id.to_string()])
        .await
        .unwrap()
        .remove(0)
}

/// The VolumeAttachment of PV `pv`, once one exists whose status `f` accepts.
async fn attachment(
    client: &kube::Client,
    pv: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let api = Api::<VolumeAttachment>::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for va in api.list(&ListParams::default()).await.unwrap() {
            let v = serde_json::to_value(&va).unwrap();
            if v["spec"]["source"]["persistentVolumeName"] == pv && f(&v) {
                return v;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attachment of {pv} as wanted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_policy_attaches_a_volume_tagged_for_its_cluster() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "green-a", 0).await;
    driver_role(
        &bed,
        "green",
        ("AmazonEBSCSIDriverEKSClusterScopedPolicy", CLUSTER_SCOPED),
    )
    .await;
    let v = hand_made_volume(&bed, &[("ebs.csi.aws.com/cluster-name", "green")], None).await;
    use_volume(&bed.client("green").await, "db", &v).await;
    ready(&bed, "green", "db").await;
    assert_eq!(volume(&bed, &v).await.attachments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_policy_denies_a_volume_tagged_for_another_cluster_until_it_is_retagged() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "green-a", 0).await;
    driver_role(
        &bed,
        "green",
        ("AmazonEBSCSIDriverEKSClusterScopedPolicy", CLUSTER_SCOPED),
    )
    .await;
    let v = hand_made_volume(&bed, &[("ebs.csi.aws.com/cluster-name", "blue")], None).await;
    let green = bed.client("green").await;
    use_volume(&green, "db", &v).await;
    let message = common::event_message(&green, "default", "db-0", "FailedAttachVolume").await;
    assert!(message.contains(DENIED), "{message}");
    assert!(
        message.contains(
            "is not authorized to perform: ec2:AttachVolume on resource: arn:aws:ec2:us-east-1:"
        ),
        "{message}"
    );
    assert!(
        message.contains("Encoded authorization failure message: "),
        "{message}"
    );
    let va = attachment(&green, "db-pv", |va| !va["status"]["attachError"].is_null()).await;
    let error = va["status"]["attachError"]["message"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "rpc error: code = Internal desc = Could not attach volume \"{v}\""
        )),
        "{error}"
    );
    assert!(error.contains(DENIED), "{error}");
    assert!(va["status"]["attachError"]["time"].is_string());
    assert!(
        volume(&bed, &v).await.attachments.is_empty(),
        "no EC2 call on a denial"
    );
    // Retagged for green, the attacher's next retry attaches it.
    bed.estate
        .aws
        .create_tags(
            std::slice::from_ref(&v),
            &baton_aws::Tags::from([(
                "ebs.csi.aws.com/cluster-name".to_string(),
                "green".to_string(),
            )]),
        )
        .await
        .unwrap();
    ready(&bed, "green", "db").await;
    assert_eq!(volume(&bed, &v).await.attachments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_policy_denies_an_instance_of_another_cluster() {
    let bed = EstateBed::start(0).await;
    // A green node whose instance EKS tagged for blue (eks:cluster-name=blue).
    let (az, subnet) = bed.subnets[0].clone();
    let inst = bed
        .estate
        .aws
        .run_instance(
            &subnet,
            "m5.large",
            &baton_aws::Tags::from([("eks:cluster-name".to_string(), "blue".to_string())]),
        )
        .await
        .unwrap();
    let c = &bed.estate.server.cluster("green").unwrap().cluster;
    let nodes = c.def("", "v1", "nodes").unwrap();
    c.create(&nodes, "", json!({
        "metadata": { "name": "stray", "labels": { "topology.kubernetes.io/zone": az, "topology.ebs.csi.aws.com/zone": az } },
        "spec": { "providerID": format!("aws:///{az}/{}", inst.id) },
    }), false).unwrap();
    let body = serde_json::to_vec(
        &json!({ "status": { "conditions": [{ "type": "Ready", "status": "True" }] } }),
    )
    .unwrap();
    c.patch(
        &nodes,
        "",
        "stray",
        baton_sim::patch::PatchType::Merge,
        &body,
        baton_sim::ops::Part::Status,
        false,
    )
    .unwrap();
    driver_role(
        &bed,
        "green",
        ("AmazonEBSCSIDriverEKSClusterScopedPolicy", CLUSTER_SCOPED),
    )
    .await;
    let v = hand_made_volume(&bed, &[("ebs.csi.aws.com/cluster-name", "green")], None).await;
    let green = bed.client("green").await;
    use_volume(&green, "db", &v).await;
    let message = common::event_message(&green, "default", "db-0", "FailedAttachVolume").await;
    assert!(message.contains(DENIED), "{message}");
    assert!(
        message.contains(&format!(
            "on resource: arn:aws:ec2:us-east-1:123456789012:instance/{}",
            inst.id
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_policy_denies_a_detach_by_the_wrong_cluster() {
    let bed = EstateBed::start(0).await;
    bed.add_node("blue", "blue-a", 0).await;
    driver_role(
        &bed,
        "blue",
        ("AmazonEBSCSIDriverEKSClusterScopedPolicy", CLUSTER_SCOPED),
    )
    .await;
    let v = hand_made_volume(&bed, &[("ebs.csi.aws.com/cluster-name", "blue")], None).await;
    let blue = bed.client("blue").await;
    use_volume(&blue, "db", &v).await;
    ready(&bed, "blue", "db").await;
    // Re-tagged for green before blue let go of it (the order DESIGN.md §6 warns of).
    bed.estate
        .aws
        .create_tags(
            std::slice::from_ref(&v),
            &baton_aws::Tags::from([(
                "ebs.csi.aws.com/cluster-name".to_string(),
                "green".to_string(),
            )]),
        )
        .await
        .unwrap();
    Api::<StatefulSet>::namespaced(blue.clone(), "default")
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    let va = attachment(&blue, "db-pv", |va| !va["status"]["detachError"].is_null()).await;
    let error = va["status"]["detachError"]["message"].as_str().unwrap();
    assert!(
        error.contains(&format!("Could not detach volume \"{v}\"")),
        "{error}"
    );
    assert!(
        error.contains("operation error EC2: DetachVolume"),
        "{error}"
    );
    assert!(error.contains(DENIED), "{error}");
    assert_eq!(
        volume(&bed, &v).await.attachments.len(),
        1,
        "still attached to blue's node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_policy_denies_an_untagged_hand_made_volume_and_classic_attaches_it() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "green-a", 0).await;
    bed.add_node("blue", "blue-a", 0).await;
    driver_role(&bed, "green", ("AmazonEBSCSIDriverPolicyV2", V2)).await;
    driver_role(&bed, "blue", ("AmazonEBSCSIDriverPolicy", CLASSIC)).await;
    let denied = hand_made_volume(&bed, &[("Name", "hand-made")], None).await;
    let green = bed.client("green").await;
    use_volume(&green, "db", &denied).await;
    let message = common::event_message(&green, "default", "db-0", "FailedAttachVolume").await;
    assert!(message.contains(DENIED), "{message}");
    assert!(volume(&bed, &denied).await.attachments.is_empty());
    let allowed = hand_made_volume(&bed, &[("Name", "hand-made")], None).await;
    use_volume(&bed.client("blue").await, "db", &allowed).await;
    ready(&bed, "blue", "db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_policy_attaches_an_in_tree_volume_through_its_created_for_tag() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "green-a", 0).await;
    driver_role(&bed, "green", ("AmazonEBSCSIDriverPolicyV2", V2)).await;
    let v = hand_made_volume(
        &bed,
        &[
            ("kubernetes.io/created-for/pvc/name", "data-db-0"),
            ("KubernetesCluster", "blue"),
        ],
        None,
    )
    .await;
    use_volume(&bed.client("green").await, "db", &v).await;
    ready(&bed, "green", "db").await;
}

/// A customer-managed key whose policy names `principals` for EBS use.
async fn customer_key(bed: &EstateBed, principals: &[&str]) -> String {
    let policy = json!({ "Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": { "AWS": principals },
        "Action": ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*",
    }]});
    bed.estate
        .aws
        .create_kms_key("test key", &policy.to_string())
        .await
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_key_without_the_role_is_denied_and_the_volume_stays_available() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "green-a", 0).await;
    driver_role(&bed, "green", ("AmazonEBSCSIDriverPolicy", CLASSIC)).await;
    let key = customer_key(&bed, &["arn:aws:iam::123456789012:role/someone-else"]).await;
    let v = hand_made_volume(&bed, &[], Some(&key)).await;
    assert!(volume(&bed, &v).await.encrypted);
    let green = bed.client("green").await;
    use_volume(&green, "db", &v).await;
    let message = common::event_message(&green, "default", "db-0", "FailedAttachVolume").await;
    assert!(
        message.contains("rpc error: code = DeadlineExceeded desc = context deadline exceeded"),
        "{message}"
    );
    let vol = volume(&bed, &v).await;
    assert!(vol.attachments.is_empty(), "{vol:?}");
    assert_eq!(vol.state, baton_aws::VolumeState::Available);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_grant_lets_the_role_in() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "green-a", 0).await;
    let role = driver_role(&bed, "green", ("AmazonEBSCSIDriverPolicy", CLASSIC)).await;
    let key = customer_key(&bed, &["arn:aws:iam::123456789012:role/someone-else"]).await;
    let v = hand_made_volume(&bed, &[], Some(&key)).await;
    let green = bed.client("green").await;
    use_volume(&green, "db", &v).await;
    common::event_message(&green, "default", "db-0", "FailedAttachVolume").await;
    bed.estate
        .aws
        .create_kms_grant(&key, &role, &["CreateGrant", "Decrypt"])
        .await
        .unwrap();
    ready(&bed, "green", "db").await;
    assert_eq!(volume(&bed, &v).await.attachments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_policy_naming_the_role_lets_it_in() {
    let bed = EstateBed::start(0).await;
    bed.add_node("green", "green-a", 0).await;
    let role = driver_role(&bed, "green", ("AmazonEBSCSIDriverPolicy", CLASSIC)).await;
    let key = customer_key(&bed, &[&role]).await;
    let v = hand_made_volume(&bed, &[], Some(&key)).await;
    use_volume(&bed.client("green").await, "db", &v).await;
    ready(&bed, "green", "db").await;
}
