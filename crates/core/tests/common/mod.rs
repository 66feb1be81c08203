//! The hand-built world the planner's and preflight's tests start from: orders/db with one
//! claim template and one Retain gp3 CSI volume in us-east-1a, claimed by data-db-0.

#![allow(dead_code)] // each test file uses part of it

use baton_core::world::{ClaimRef, ClaimTemplate, Pv, Pvc, ReclaimPolicy, VolumeSource};

/// The `data` template: 10 GiB gp3, ReadWriteOnce, Filesystem.
pub fn template() -> ClaimTemplate {
    ClaimTemplate {
        name: "data".into(),
        storage_class: "gp3".into(),
        request_bytes: Some(10 << 30),
        access_modes: vec!["ReadWriteOnce".into()],
        volume_mode: "Filesystem".into(),
    }
}

/// orders/data-db-0, Bound to pvc-1.
pub fn claim() -> Pvc {
    Pvc {
        namespace: "orders".into(),
        name: "data-db-0".into(),
        uid: "c1".into(),
        volume_name: "pvc-1".into(),
        phase: "Bound".into(),
        request_bytes: Some(10 << 30),
        access_modes: vec!["ReadWriteOnce".into()],
        volume_mode: "Filesystem".into(),
        storage_class: "gp3".into(),
        deleting: false,
        migration: None,
        labels: Default::default(),
        owned: false,
    }
}

/// pvc-1: EBS vol-1 in us-east-1a (CSI), Retain, Bound to orders/data-db-0.
pub fn pv() -> Pv {
    Pv {
        name: "pvc-1".into(),
        uid: "p1".into(),
        volume_id: Some("vol-1".into()),
        source: Some(VolumeSource::Csi),
        other_backend: None,
        zone: Some("us-east-1a".into()),
        capacity_bytes: Some(10 << 30),
        access_modes: vec!["ReadWriteOnce".into()],
        volume_mode: "Filesystem".into(),
        storage_class: "gp3".into(),
        reclaim_policy: ReclaimPolicy::Retain,
        original_reclaim_policy: None,
        claim_ref: Some(ClaimRef {
            namespace: "orders".into(),
            name: "data-db-0".into(),
            uid: "c1".into(),
        }),
        phase: "Bound".into(),
        migration: None,
    }
}
