//! What a driver role's policies demand of a volume's tags, and the tag change green's
//! driver needs, over the three AWS managed EBS CSI policies and a custom one.
//!
//! The managed documents below keep the statements that decide attach and detach, in the
//! shape AWS publishes them (aws-managed-policy reference pages; aws-ebs-csi-driver
//! #2918): the classic policy allows both on any volume; V2 only on volumes tagged
//! `ebs.csi.aws.com/cluster=true`, or carrying `kubernetes.io/created-for/pvc/name`
//! (CSI-migrated in-tree volumes); the cluster-scoped policy only where
//! `ebs.csi.aws.com/cluster-name` equals the principal's `eks-cluster-name`, and on
//! instances tagged for the cluster (a statement on instances, which volumes ignore).

use std::collections::BTreeMap;

use baton_core::handover::{Access, access, foreign_owners, plan_change};
use baton_core::world::Tags;
use serde_json::{Value, json};

fn classic() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:DescribeVolumes", "ec2:DescribeInstances"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ec2:CreateSnapshot", "ec2:ModifyVolume"], "Resource": "arn:aws:ec2:*:*:volume/*"},
        {"Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": ["arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:instance/*"]},
        {"Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": ["arn:aws:ec2:*:*:volume/*"],
         "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}}}
    ]})
}

fn v2() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadOnlyDescribeOperations", "Effect": "Allow", "Action": ["ec2:DescribeVolumes"], "Resource": "*"},
        {"Sid": "CreateAndCopyVolumesWithManagedTag", "Effect": "Allow", "Action": ["ec2:CreateVolume", "ec2:CopyVolumes"],
         "Resource": "arn:aws:ec2:*:*:volume/*",
         "Condition": {"StringEquals": {"aws:RequestTag/ebs.csi.aws.com/cluster": "true"}}},
        {"Sid": "AttachDetachManagedVolumes", "Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": "arn:aws:ec2:*:*:volume/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/ebs.csi.aws.com/cluster": "true"}}},
        {"Sid": "AttachDetachMigratedVolumes", "Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": "arn:aws:ec2:*:*:volume/*",
         "Condition": {"StringLike": {"aws:ResourceTag/kubernetes.io/created-for/pvc/name": "*"}}},
        {"Sid": "AttachDetachInstances", "Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": "arn:aws:ec2:*:*:instance/*"}
    ]})
}

fn cluster_scoped() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadOnlyDescribeOperations", "Effect": "Allow", "Action": ["ec2:DescribeVolumes"], "Resource": "*"},
        {"Sid": "AttachDetachClusterVolumes", "Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": "arn:aws:ec2:*:*:volume/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/ebs.csi.aws.com/cluster-name": "${aws:PrincipalTag/eks-cluster-name}"}}},
        {"Sid": "AttachDetachClusterInstances", "Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": "arn:aws:ec2:*:*:instance/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/eks:cluster-name": "${aws:PrincipalTag/eks-cluster-name}"}}}
    ]})
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn role(cluster: &str) -> Tags {
    tags(&[("eks-cluster-name", cluster)])
}

/// A volume the emulator's (and the driver's) provisioner made for blue.
fn blue_volume() -> Tags {
    tags(&[
        ("CSIVolumeName", "pvc-0"),
        ("ebs.csi.aws.com/cluster", "true"),
        ("ebs.csi.aws.com/cluster-name", "blue"),
        ("kubernetes.io/cluster/blue", "owned"),
        ("kubernetes.io/created-for/pvc/name", "data-db-0"),
    ])
}

fn volumes(t: Tags) -> BTreeMap<String, Tags> {
    BTreeMap::from([("vol-0".to_string(), t.clone()), ("vol-1".to_string(), t)])
}

#[test]
fn the_classic_policy_needs_no_tag() {
    let a = access(&[classic()], &role("green"));
    assert!(a.unrestricted(), "{a:?}");
    assert!(a.allows(&Tags::new()));
    assert_eq!(
        plan_change(&a, Some("blue"), None, &volumes(Tags::new()), "").unwrap(),
        None
    );
}

#[test]
fn v2_needs_the_managed_tag_or_the_migration_tag() {
    let a = access(&[v2()], &role("green"));
    assert!(!a.unrestricted());
    assert!(a.allows(&tags(&[("ebs.csi.aws.com/cluster", "true")])));
    assert!(a.allows(&tags(&[(
        "kubernetes.io/created-for/pvc/name",
        "data-db-0"
    )])));
    assert!(!a.allows(&tags(&[("ebs.csi.aws.com/cluster", "false")])));
    assert!(!a.allows(&tags(&[("kubernetes.io/cluster/blue", "owned")])));
    // Blue's CSI volumes are usable already: nothing to change.
    assert_eq!(
        plan_change(&a, Some("blue"), None, &volumes(blue_volume()), "").unwrap(),
        None
    );
    // A volume tagged by hand without either: the managed tag is added (a pattern's
    // value cannot be made up, so the migration tag is not the one written).
    let bare = tags(&[("KubernetesCluster", "blue")]);
    let c = plan_change(&a, Some("blue"), None, &volumes(bare), "why")
        .unwrap()
        .expect("a change");
    assert_eq!(c.add, tags(&[("ebs.csi.aws.com/cluster", "true")]));
    assert!(c.remove.is_empty());
    assert_eq!(
        c.blue["vol-0"],
        Tags::new(),
        "blue had none of the touched keys"
    );
}

#[test]
fn the_cluster_scoped_policy_needs_the_cluster_name_of_the_role() {
    let green = access(&[cluster_scoped()], &role("green"));
    let blue = access(&[cluster_scoped()], &role("blue"));
    assert!(blue.allows(&blue_volume()));
    assert!(
        !green.allows(&blue_volume()),
        "green's driver cannot use blue's volume"
    );
    let c = plan_change(&green, Some("blue"), None, &volumes(blue_volume()), "why")
        .unwrap()
        .expect("a change");
    assert_eq!(c.add, tags(&[("ebs.csi.aws.com/cluster-name", "green")]));
    assert!(c.remove.is_empty());
    assert_eq!(
        c.blue["vol-0"],
        tags(&[("ebs.csi.aws.com/cluster-name", "blue")]),
        "blue's value kept for rollback"
    );
    assert_eq!(c.describe(), "ebs.csi.aws.com/cluster-name blue→green");
    // Made: green's driver can use it; put back: blue's can again.
    let mut t = blue_volume();
    t.extend(c.add.clone());
    assert!(c.made_on(&t) && green.allows(&t) && !blue.allows(&t));
    let (add, remove) = c.restore("vol-0", &t);
    assert_eq!(add, tags(&[("ebs.csi.aws.com/cluster-name", "blue")]));
    assert!(remove.is_empty());

    // A volume without the tag at all (driver started without --k8s-tag-cluster-id):
    // rollback removes what the hand-over added.
    let mut untagged = blue_volume();
    untagged.remove("ebs.csi.aws.com/cluster-name");
    let c = plan_change(&green, Some("blue"), None, &volumes(untagged.clone()), "")
        .unwrap()
        .unwrap();
    let mut t = untagged.clone();
    t.extend(c.add.clone());
    assert_eq!(
        c.restore("vol-1", &t),
        (
            Tags::new(),
            vec!["ebs.csi.aws.com/cluster-name".to_string()]
        )
    );

    // Without the principal tag nothing resolves: no alternative, and it says why.
    let none = access(&[cluster_scoped()], &Tags::new());
    assert!(none.attach.is_empty(), "{none:?}");
    assert!(none.skipped.iter().any(|s| s.contains("eks-cluster-name")));
    assert!(plan_change(&none, Some("blue"), None, &volumes(blue_volume()), "").is_err());
}

#[test]
fn a_custom_policy_on_the_in_tree_ownership_tag_hands_that_tag_over() {
    // An inline policy scoped on the in-tree provider's tag, with a Null condition and
    // a Deny of snapshots that does not matter here.
    let custom = json!({"Statement": {
    "Effect": "Allow", "Action": "ec2:*Volume",
    "Resource": "*",
    "Condition": {
        "StringEquals": {"ec2:ResourceTag/kubernetes.io/cluster/green": "owned"},
        "Null": {"aws:ResourceTag/CSIVolumeName": "false"}
    }}});
    let deny =
        json!({"Statement": [{"Effect": "Deny", "Action": "ec2:CreateSnapshot", "Resource": "*"}]});
    let a = access(&[custom, deny], &Tags::new());
    assert_eq!(a.attach.len(), 1, "{a:?}");
    let c = plan_change(&a, Some("blue"), None, &volumes(blue_volume()), "")
        .unwrap()
        .unwrap();
    assert_eq!(c.add, tags(&[("kubernetes.io/cluster/green", "owned")]));
    assert_eq!(c.remove, ["kubernetes.io/cluster/blue"]);
    assert_eq!(
        c.blue["vol-0"],
        tags(&[("kubernetes.io/cluster/blue", "owned")])
    );

    // An unconditional Deny of attach takes everything away; a condition on something
    // that is not a volume tag is left out, and said.
    let deny_attach =
        json!({"Statement": [{"Effect": "Deny", "Action": "ec2:AttachVolume", "Resource": "*"}]});
    assert!(
        access(&[classic(), deny_attach], &Tags::new())
            .attach
            .is_empty()
    );
    let odd = json!({"Statement": [{"Effect": "Allow", "Action": "ec2:AttachVolume", "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]});
    let a: Access = access(&[odd], &Tags::new());
    assert!(a.attach.is_empty() && !a.skipped.is_empty());
}

#[test]
fn ownership_tags_naming_a_third_cluster_are_found() {
    let mut t = blue_volume();
    assert!(foreign_owners(&t, "blue", "green").is_empty());
    t.insert("KubernetesCluster".into(), "payments".into());
    t.insert("kubernetes.io/cluster/green".into(), "owned".into());
    assert_eq!(
        foreign_owners(&t, "blue", "green"),
        [("KubernetesCluster".to_string(), "payments".to_string())]
    );
}

/// The documents the test bed enforces (`crates/sim/policies`, as AWS publishes them):
/// baton's reading of each says what the bed decides — classic: any volume; V2: the
/// managed tag or the migration tag; cluster-scoped: the role's cluster name.
#[test]
fn the_published_documents_read_as_the_fixtures_do() {
    let doc = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
    let classic = doc(include_str!(
        "../../sim/policies/AmazonEBSCSIDriverPolicy.json"
    ));
    let v2 = doc(include_str!(
        "../../sim/policies/AmazonEBSCSIDriverPolicyV2.json"
    ));
    let scoped = doc(include_str!(
        "../../sim/policies/AmazonEBSCSIDriverEKSClusterScopedPolicy.json"
    ));
    assert!(access(&[classic], &role("green")).unrestricted());
    let a = access(&[v2], &role("green"));
    assert!(!a.unrestricted());
    assert!(a.allows(&tags(&[("ebs.csi.aws.com/cluster", "true")])));
    assert!(a.allows(&tags(&[("kubernetes.io/created-for/pvc/name", "d")])));
    assert!(!a.allows(&tags(&[("kubernetes.io/cluster/blue", "owned")])));
    let green = access(std::slice::from_ref(&scoped), &role("green"));
    assert!(green.allows(&tags(&[("ebs.csi.aws.com/cluster-name", "green")])));
    assert!(!green.allows(&tags(&[("ebs.csi.aws.com/cluster-name", "blue")])));
    assert!(!green.allows(&blue_volume()));
    let c = plan_change(&green, Some("blue"), None, &volumes(blue_volume()), "why")
        .unwrap()
        .expect("a change");
    assert_eq!(c.add, tags(&[("ebs.csi.aws.com/cluster-name", "green")]));
}

/// Blue's ownership tags go with the volume: left naming blue, the volume reads as
/// blue's to whatever retires blue's resources by them, and as a third cluster's to the
/// next move (green → teal refused it, `volume-foreign-cluster`).
#[test]
fn blues_ownership_tags_are_handed_to_green_and_rollback_puts_them_back() {
    let in_tree = tags(&[
        ("KubernetesCluster", "blue"),
        ("kubernetes.io/cluster/blue", "owned"),
        ("kubernetes.io/created-for/pvc/name", "data-cache-0"),
    ]);
    // Green's classic driver needs no tag, yet the ownership moves.
    let classic = access(&[classic()], &role("green"));
    let c = plan_change(
        &classic,
        Some("blue"),
        Some("green"),
        &volumes(in_tree.clone()),
        "",
    )
    .unwrap()
    .expect("the ownership tags change");
    assert_eq!(
        c.add,
        tags(&[
            ("KubernetesCluster", "green"),
            ("kubernetes.io/cluster/green", "owned")
        ])
    );
    assert_eq!(c.remove, vec!["kubernetes.io/cluster/blue".to_string()]);
    let mut after = in_tree.clone();
    after.remove("kubernetes.io/cluster/blue");
    after.extend(c.add.clone());
    assert!(c.made_on(&after));
    assert!(foreign_owners(&after, "green", "teal").is_empty());
    // Rollback puts blue's back and takes green's away.
    let (add, remove) = c.restore("vol-0", &after);
    assert_eq!(
        add,
        tags(&[
            ("KubernetesCluster", "blue"),
            ("kubernetes.io/cluster/blue", "owned")
        ])
    );
    assert_eq!(remove, vec!["kubernetes.io/cluster/green".to_string()]);
    // The cluster-scoped driver's own tag and the ownership move in one change.
    let scoped = access(&[cluster_scoped()], &role("green"));
    let c = plan_change(&scoped, Some("blue"), Some("green"), &volumes(in_tree), "")
        .unwrap()
        .expect("a change");
    assert_eq!(c.add["ebs.csi.aws.com/cluster-name"], "green");
    assert_eq!(c.add["KubernetesCluster"], "green");
    assert_eq!(c.remove, vec!["kubernetes.io/cluster/blue".to_string()]);
    // Without green's name, nothing of ownership is guessed.
    assert_eq!(
        plan_change(&classic, Some("blue"), None, &volumes(blue_volume()), "").unwrap(),
        None
    );
}

/// A policy that keys on an ownership tag as blue left it (a team's shared policy
/// admitting `KubernetesCluster=blue`): that tag is not moved, for green's attach
/// would be refused in the window.
#[test]
fn an_ownership_tag_greens_policy_needs_is_left_as_it_is() {
    let shared = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": "arn:aws:ec2:*:*:volume/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/KubernetesCluster": "blue"}}},
        {"Effect": "Allow", "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
         "Resource": "arn:aws:ec2:*:*:instance/*"}
    ]});
    let green = access(&[shared], &role("green"));
    let in_tree = tags(&[
        ("KubernetesCluster", "blue"),
        ("kubernetes.io/cluster/blue", "owned"),
    ]);
    assert!(green.allows(&in_tree));
    let c = plan_change(&green, Some("blue"), Some("green"), &volumes(in_tree), "");
    // Moving the ownership would lock green out: nothing moves.
    assert_eq!(c, Ok(None));
}
