//! EBS against moto: volumes (by id, by filter, across pages), attach/detach,
//! snapshots, tags, and not-found errors.

mod common;

use baton_aws::{AttachmentState, Error, Filter, NewVolume, Tags, VolumeState};

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn volumes_by_filter_come_back_from_every_page() {
    let run = common::unique("pages");
    let aws = baton_aws::Aws::connect(&common::config(&common::moto::endpoint()).page_size(5))
        .await
        .expect("connect");
    for i in 0..12 {
        aws.create_volume(&NewVolume {
            availability_zone: "us-east-1a".into(),
            size_gib: 1 + i,
            volume_type: "gp3".into(),
            tags: tags(&[("run", &run)]),
            ..Default::default()
        })
        .await
        .expect("create volume");
    }
    let found = aws
        .describe_volumes(&[Filter::new("tag:run", [run.as_str()])])
        .await
        .expect("describe volumes");
    let mut sizes: Vec<i32> = found.iter().map(|v| v.size_gib).collect();
    sizes.sort();
    assert_eq!(sizes, (1..=12).collect::<Vec<_>>());
    assert!(found.iter().all(|v| v.tags.get("run") == Some(&run)));
}

#[tokio::test]
async fn volume_fields_encryption_iops_multi_attach_and_attachments() {
    let sdk = common::fixtures::sdk().await;
    let aws = common::aws().await;
    let run = common::unique("fields");
    let vpc = common::fixtures::vpc(&sdk, "10.10.0.0/16").await;
    let subnet = common::fixtures::subnet(&sdk, &vpc, "us-east-1b", "10.10.1.0/24").await;
    let node = common::fixtures::instance(&sdk, &subnet, "run", &run).await;

    let io2 = sdk
        .ec2
        .create_volume()
        .availability_zone("us-east-1b")
        .size(20)
        .volume_type(aws_sdk_ec2::types::VolumeType::Io2)
        .iops(3000)
        .encrypted(true)
        .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/baton-test")
        .multi_attach_enabled(true)
        .send()
        .await
        .expect("create io2 volume");
    let id = io2.volume_id().expect("volume id").to_owned();

    let attached = aws
        .attach_volume(&id, &node, "/dev/xvdba")
        .await
        .expect("attach");
    assert_eq!(attached.instance_id, node);
    assert_eq!(attached.device, "/dev/xvdba");

    let vols = aws
        .describe_volumes_by_id(std::slice::from_ref(&id))
        .await
        .expect("describe by id");
    let [v] = vols.as_slice() else {
        panic!("expected one volume, got {vols:?}")
    };
    assert_eq!(v.id, id);
    assert_eq!(v.availability_zone, "us-east-1b");
    assert_eq!(v.size_gib, 20);
    assert_eq!(v.volume_type, "io2");
    assert_eq!(v.iops, Some(3000));
    assert!(v.encrypted);
    assert_eq!(
        v.kms_key_id.as_deref(),
        Some("arn:aws:kms:us-east-1:123456789012:key/baton-test")
    );
    assert!(v.multi_attach);
    assert_eq!(v.state, VolumeState::InUse);
    assert_eq!(v.attachments.len(), 1);
    assert_eq!(v.attachments[0].instance_id, node);
    assert_eq!(v.attachments[0].device, "/dev/xvdba");
    assert_eq!(v.attachments[0].state, AttachmentState::Attached);

    aws.detach_volume(&id, &node).await.expect("detach");
    let after = aws
        .describe_volumes_by_id(std::slice::from_ref(&id))
        .await
        .expect("describe after detach");
    assert_eq!(after[0].state, VolumeState::Available);
    assert!(after[0].attachments.is_empty());
}

#[tokio::test]
async fn snapshot_returns_at_once_with_tags_and_is_described() {
    let aws = common::aws().await;
    let run = common::unique("snap");
    let vol = aws
        .create_volume(&NewVolume {
            availability_zone: "us-east-1c".into(),
            size_gib: 8,
            volume_type: "gp3".into(),
            tags: Tags::new(),
            ..Default::default()
        })
        .await
        .expect("create volume");
    let snap = aws
        .create_snapshot(&baton_aws::NewSnapshot {
            volume_id: vol.id.clone(),
            description: "baton pre-move".into(),
            tags: tags(&[("baton/run", &run)]),
        })
        .await
        .expect("snapshot");
    assert!(snap.id.starts_with("snap-"), "{snap:?}");
    assert_eq!(snap.volume_id, vol.id);
    assert_eq!(snap.tags.get("baton/run"), Some(&run));

    let by_tag = aws
        .describe_snapshots(&[], &[Filter::new("tag:baton/run", [run.as_str()])])
        .await
        .expect("describe by tag");
    assert_eq!(
        by_tag.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [snap.id.as_str()]
    );
    let by_id = aws
        .describe_snapshots(std::slice::from_ref(&snap.id), &[])
        .await
        .expect("describe by id");
    assert_eq!(by_id[0].volume_id, vol.id);
    assert_eq!(by_id[0].description.as_deref(), Some("baton pre-move"));
}

#[tokio::test]
async fn create_tags_adds_to_existing_tags() {
    let aws = common::aws().await;
    let vol = aws
        .create_volume(&NewVolume {
            availability_zone: "us-east-1a".into(),
            size_gib: 1,
            volume_type: "gp2".into(),
            tags: tags(&[("app", "db")]),
            ..Default::default()
        })
        .await
        .expect("create volume");
    aws.create_tags(
        std::slice::from_ref(&vol.id),
        &tags(&[("baton/counter", "41")]),
    )
    .await
    .expect("tag");
    let v = &aws
        .describe_volumes_by_id(std::slice::from_ref(&vol.id))
        .await
        .expect("describe")[0];
    assert_eq!(v.tags, tags(&[("app", "db"), ("baton/counter", "41")]));
}

#[tokio::test]
async fn unknown_volume_is_not_found_with_operation_and_resource() {
    let aws = common::aws().await;
    let missing = "vol-0123456789abcdef0".to_owned();
    let err = aws
        .create_snapshot(&baton_aws::NewSnapshot {
            volume_id: missing.clone(),
            description: "x".into(),
            tags: Tags::new(),
        })
        .await
        .expect_err("no such volume");
    assert!(err.is_not_found(), "{err:?}");
    let shown = format!("failed to {err}");
    assert!(
        shown.starts_with("failed to snapshot vol-0123456789abcdef0: InvalidVolume.NotFound: "),
        "{shown}"
    );
    assert!(!shown.contains(common::SECRET));
    assert!(!format!("{aws:?}").contains(common::SECRET));

    let err = aws
        .describe_volumes_by_id(&[missing])
        .await
        .expect_err("no such volume");
    assert!(
        matches!(err, Error::NotFound { ref code, .. } if code == "InvalidVolume.NotFound"),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_size_is_refused_before_calling_aws() {
    let aws = common::aws().await;
    let err = aws
        .create_volume(&NewVolume {
            availability_zone: "us-east-1a".into(),
            size_gib: 0,
            volume_type: "gp3".into(),
            tags: Tags::new(),
            ..Default::default()
        })
        .await
        .expect_err("size 0");
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}
