//! EBS snapshots: the safety net taken inside the downtime window. Creating one returns
//! as soon as EC2 has fixed the point in time; baton never waits for `completed`.

use std::time::SystemTime;

use aws_sdk_ec2::types::ResourceType;

use crate::client::Aws;
use crate::error::Error;
use crate::tags::{Filter, Tags, describe_filters, from_sdk_tags, tag_spec, to_sdk_filters};
use crate::time;

/// A `CreateSnapshot` call as a value: what `--dry-run` shows is what is sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewSnapshot {
    /// The volume to snapshot.
    pub volume_id: String,
    /// The snapshot's description.
    pub description: String,
    /// Tags the snapshot is created with (sent as one tag specification of the
    /// snapshot; none when empty).
    #[serde(
        rename = "TagSpecifications",
        serialize_with = "snapshot_tag_spec",
        skip_serializing_if = "Tags::is_empty"
    )]
    pub tags: Tags,
}

request_line!(NewSnapshot, "ec2", "CreateSnapshot");

/// A snapshot's tags as [`tag_spec`] sends them.
fn snapshot_tag_spec<S: serde::Serializer>(tags: &Tags, s: S) -> Result<S::Ok, S::Error> {
    crate::tags::serialize_tag_spec(ResourceType::Snapshot, tags, s)
}

/// An EBS snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `snap-…`
    pub id: String,
    /// The volume it was taken of.
    pub volume_id: String,
    /// `pending`, `completed`, `error`, …
    pub state: String,
    /// Progress as EC2 reports it, e.g. `100%`.
    pub progress: Option<String>,
    /// The point in time the snapshot holds.
    pub started: Option<SystemTime>,
    /// Description given at creation.
    pub description: Option<String>,
    /// Tags.
    pub tags: Tags,
}

fn snapshot(s: &aws_sdk_ec2::types::Snapshot) -> Option<Snapshot> {
    Some(Snapshot {
        id: s.snapshot_id()?.to_owned(),
        volume_id: s.volume_id().unwrap_or("").to_owned(),
        state: s.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        progress: s.progress().map(str::to_owned),
        started: s.start_time().and_then(time::from_sdk),
        description: s.description().map(str::to_owned),
        tags: from_sdk_tags(s.tags()),
    })
}

impl Aws {
    /// Starts a snapshot, and returns at once.
    pub async fn create_snapshot(&self, req: &NewSnapshot) -> Result<Snapshot, Error> {
        let NewSnapshot {
            volume_id,
            description,
            tags,
        } = req;
        let call = self.call("snapshot", volume_id);
        let out = self
            .ec2
            .create_snapshot()
            .volume_id(volume_id)
            .description(description)
            .set_tag_specifications(tag_spec(ResourceType::Snapshot, tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(Snapshot {
            id: out
                .snapshot_id()
                .ok_or_else(|| call.missing("the snapshot id"))?
                .to_owned(),
            volume_id: out.volume_id().unwrap_or(volume_id).to_owned(),
            state: out
                .state()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            progress: out.progress().map(str::to_owned),
            started: out.start_time().and_then(time::from_sdk),
            description: out.description().map(str::to_owned),
            tags: from_sdk_tags(out.tags()),
        })
    }

    /// Snapshots by id and/or filters (e.g. `volume-id`, `tag:baton/run`), owned by
    /// this account, across all pages.
    pub async fn describe_snapshots(
        &self,
        ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Snapshot>, Error> {
        let resource = if ids.is_empty() {
            describe_filters(filters)
        } else {
            ids.join(", ")
        };
        let call = self.call("describe snapshots", resource);
        let ids = (!ids.is_empty()).then(|| ids.to_vec());
        // Without an owner filter EC2 would list every public snapshot in the region.
        let page_size = if ids.is_some() { None } else { self.page_size };
        let items = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_snapshot_ids(ids)
            .set_filters(to_sdk_filters(filters))
            .set_max_results(page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        items
            .iter()
            .map(|s| snapshot(s).ok_or_else(|| call.missing("a snapshot id")))
            .collect()
    }
}
