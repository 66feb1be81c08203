//! EBS volumes: what baton reads to plan a move (zone, size, type, encryption, state,
//! attachments, multi-attach, tags) and the calls the emulator's CSI and attach
//! controllers make (create, delete, attach, detach), as EBS's CSI driver makes them.

use std::time::SystemTime;

use aws_sdk_ec2::types::{ResourceType, VolumeType};

use crate::client::Aws;
use crate::error::Error;
use crate::tags::{Filter, Tags, describe_filters, from_sdk_tags, tag_spec, to_sdk_filters};
use crate::time;

/// An EBS volume as baton sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// `vol-…`
    pub id: String,
    /// The one availability zone the volume can attach in.
    pub availability_zone: String,
    /// Size in GiB.
    pub size_gib: i32,
    /// `gp3`, `io2`, …
    pub volume_type: String,
    /// Provisioned IOPS, where the type has them.
    pub iops: Option<i32>,
    /// Provisioned throughput in MiB/s (gp3).
    pub throughput: Option<i32>,
    /// Whether the volume is encrypted.
    pub encrypted: bool,
    /// The KMS key of an encrypted volume.
    pub kms_key_id: Option<String>,
    /// The snapshot the volume was created from.
    pub snapshot_id: Option<String>,
    /// Lifecycle state.
    pub state: VolumeState,
    /// Current attachments (more than one only for multi-attach io1/io2).
    pub attachments: Vec<Attachment>,
    /// Whether the volume may attach to several instances at once.
    pub multi_attach: bool,
    /// Tags.
    pub tags: Tags,
    /// When the volume was created.
    pub created: Option<SystemTime>,
}

/// A volume's lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeState {
    /// Being created.
    Creating,
    /// Attached to nothing: free to attach.
    Available,
    /// Attached to at least one instance.
    InUse,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Deleted,
    /// Impaired.
    Error,
    /// A state this version of baton does not know.
    Other(String),
}

impl VolumeState {
    fn parse(s: &str) -> Self {
        match s {
            "creating" => Self::Creating,
            "available" => Self::Available,
            "in-use" => Self::InUse,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            "error" => Self::Error,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One attachment of a volume to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The volume.
    pub volume_id: String,
    /// `i-…`
    pub instance_id: String,
    /// Device name, e.g. `/dev/xvdba`.
    pub device: String,
    /// Attachment state.
    pub state: AttachmentState,
    /// Whether terminating the instance deletes the volume.
    pub delete_on_termination: bool,
}

/// The state of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentState {
    /// Being attached.
    Attaching,
    /// Attached.
    Attached,
    /// Being detached.
    Detaching,
    /// Detached.
    Detached,
    /// Attached but the instance holds it busy.
    Busy,
    /// A state this version of baton does not know.
    Other(String),
}

impl AttachmentState {
    fn parse(s: &str) -> Self {
        match s {
            "attaching" => Self::Attaching,
            "attached" => Self::Attached,
            "detaching" => Self::Detaching,
            "detached" => Self::Detached,
            "busy" => Self::Busy,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// What to create: the emulator's provisioner creates volumes as the EBS CSI driver does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVolume {
    /// Zone to create in.
    pub availability_zone: String,
    /// Size in GiB.
    pub size_gib: i32,
    /// `gp3`, `gp2`, `io2`, …
    pub volume_type: String,
    /// Tags set at creation.
    pub tags: Tags,
    /// Provisioned IOPS (io1/io2, optional for gp3).
    pub iops: Option<i32>,
    /// Multi-attach (io1/io2 only).
    pub multi_attach: bool,
    /// A KMS key (id or ARN) to encrypt the volume with; `None` leaves encryption to
    /// the account's default.
    pub kms_key_id: Option<String>,
}

fn volume(v: &aws_sdk_ec2::types::Volume) -> Option<Volume> {
    Some(Volume {
        id: v.volume_id()?.to_owned(),
        availability_zone: v.availability_zone()?.to_owned(),
        size_gib: v.size().unwrap_or_default(),
        volume_type: v
            .volume_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        iops: v.iops(),
        throughput: v.throughput(),
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(str::to_owned),
        snapshot_id: v.snapshot_id().filter(|s| !s.is_empty()).map(str::to_owned),
        state: VolumeState::parse(v.state().map(|s| s.as_str()).unwrap_or("")),
        attachments: v.attachments().iter().filter_map(attachment).collect(),
        multi_attach: v.multi_attach_enabled().unwrap_or(false),
        tags: from_sdk_tags(v.tags()),
        created: v.create_time().and_then(time::from_sdk),
    })
}

fn attachment(a: &aws_sdk_ec2::types::VolumeAttachment) -> Option<Attachment> {
    Some(Attachment {
        volume_id: a.volume_id()?.to_owned(),
        instance_id: a.instance_id()?.to_owned(),
        device: a.device().unwrap_or("").to_owned(),
        state: AttachmentState::parse(a.state().map(|s| s.as_str()).unwrap_or("")),
        delete_on_termination: a.delete_on_termination().unwrap_or(false),
    })
}

impl Aws {
    /// The named volumes. A missing id fails the whole call with [`Error::NotFound`], as
    /// EC2 does, so a caller never mistakes a deleted volume for an empty answer.
    pub async fn describe_volumes_by_id(&self, ids: &[String]) -> Result<Vec<Volume>, Error> {
        let call = self.call("describe volumes", ids.join(", "));
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // EC2 refuses MaxResults together with VolumeIds, so no page size here; the
        // paginator still follows a NextToken if one comes back.
        let pages = self
            .ec2
            .describe_volumes()
            .set_volume_ids(Some(ids.to_vec()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        pages
            .iter()
            .map(|v| volume(v).ok_or_else(|| call.missing("a volume id or zone")))
            .collect()
    }

    /// Every volume matching all `filters` (all volumes when empty), across all pages.
    pub async fn describe_volumes(&self, filters: &[Filter]) -> Result<Vec<Volume>, Error> {
        let call = self.call("describe volumes", describe_filters(filters));
        let pages = self
            .ec2
            .describe_volumes()
            .set_filters(to_sdk_filters(filters))
            .set_max_results(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        pages
            .iter()
            .map(|v| volume(v).ok_or_else(|| call.missing("a volume id or zone")))
            .collect()
    }

    /// Creates a volume and returns it as EC2 reports it (usually `creating`).
    pub async fn create_volume(&self, new: &NewVolume) -> Result<Volume, Error> {
        let call = self.call("create a volume in", &new.availability_zone);
        if new.size_gib < 1 {
            return Err(call.invalid(format!("size must be at least 1 GiB, got {}", new.size_gib)));
        }
        let out = self
            .ec2
            .create_volume()
            .availability_zone(&new.availability_zone)
            .size(new.size_gib)
            .volume_type(VolumeType::from(new.volume_type.as_str()))
            .set_iops(new.iops)
            .set_multi_attach_enabled(new.multi_attach.then_some(true))
            .set_encrypted(new.kms_key_id.is_some().then_some(true))
            .set_kms_key_id(new.kms_key_id.clone())
            .set_tag_specifications(tag_spec(ResourceType::Volume, &new.tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(Volume {
            id: out
                .volume_id()
                .ok_or_else(|| call.missing("the volume id"))?
                .to_owned(),
            availability_zone: out
                .availability_zone()
                .unwrap_or(&new.availability_zone)
                .to_owned(),
            size_gib: out.size().unwrap_or(new.size_gib),
            volume_type: out
                .volume_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_else(|| new.volume_type.clone()),
            iops: out.iops(),
            throughput: out.throughput(),
            encrypted: out.encrypted().unwrap_or(false),
            kms_key_id: out.kms_key_id().map(str::to_owned),
            snapshot_id: out
                .snapshot_id()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            state: VolumeState::parse(out.state().map(|s| s.as_str()).unwrap_or("creating")),
            attachments: Vec::new(),
            multi_attach: out.multi_attach_enabled().unwrap_or(false),
            tags: from_sdk_tags(out.tags()),
            created: out.create_time().and_then(time::from_sdk),
        })
    }

    /// Deletes a volume. Only the emulator's reclaimer calls this (a PV with reclaim
    /// policy Delete); baton's migration never deletes a volume.
    pub async fn delete_volume(&self, volume_id: &str) -> Result<(), Error> {
        let call = self.call("delete volume", volume_id);
        self.ec2
            .delete_volume()
            .volume_id(volume_id)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Attaches a volume to an instance at `device`; returns at once (EC2 reports
    /// `attaching`; poll [`Aws::describe_volumes_by_id`] for `attached`).
    pub async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<Attachment, Error> {
        let call = self.call(
            "attach",
            format!("{volume_id} to {instance_id} at {device}"),
        );
        let out = self
            .ec2
            .attach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .device(device)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(Attachment {
            volume_id: out.volume_id().unwrap_or(volume_id).to_owned(),
            instance_id: out.instance_id().unwrap_or(instance_id).to_owned(),
            device: out.device().unwrap_or(device).to_owned(),
            state: AttachmentState::parse(out.state().map(|s| s.as_str()).unwrap_or("")),
            delete_on_termination: out.delete_on_termination().unwrap_or(false),
        })
    }

    /// Detaches a volume from the given instance; returns at once. The instance id is
    /// required on purpose: it makes the call refuse to detach from the wrong node (and
    /// moto answers HTTP 500 without it).
    pub async fn detach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
    ) -> Result<Attachment, Error> {
        let call = self.call("detach", format!("{volume_id} from {instance_id}"));
        let out = self
            .ec2
            .detach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(Attachment {
            volume_id: out.volume_id().unwrap_or(volume_id).to_owned(),
            instance_id: out.instance_id().unwrap_or(instance_id).to_owned(),
            device: out.device().unwrap_or("").to_owned(),
            state: AttachmentState::parse(out.state().map(|s| s.as_str()).unwrap_or("")),
            delete_on_termination: out.delete_on_termination().unwrap_or(false),
        })
    }
}
