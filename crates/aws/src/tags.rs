//! Tags and describe-filters, the two ways baton finds its resources in EC2, as plain
//! values that do not tie callers to the SDK.

use std::collections::BTreeMap;

use crate::client::Aws;
use crate::error::Error;

/// Resource tags, key → value, in a stable order for plans and reports.
pub type Tags = BTreeMap<String, String>;

/// One EC2 describe filter, e.g. `Filter::new("tag:kubernetes.io/created-for/pvc/name", ["data-db-0"])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The filter name as EC2 documents it (`vpc-id`, `availability-zone`, `tag:Key`, …).
    pub name: String,
    /// Any of these values matches.
    pub values: Vec<String>,
}

impl Filter {
    /// A filter matching any of `values`.
    pub fn new<I, S>(name: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

pub(crate) fn to_sdk_filters(filters: &[Filter]) -> Option<Vec<aws_sdk_ec2::types::Filter>> {
    if filters.is_empty() {
        return None;
    }
    Some(
        filters
            .iter()
            .map(|f| {
                aws_sdk_ec2::types::Filter::builder()
                    .name(&f.name)
                    .set_values(Some(f.values.clone()))
                    .build()
            })
            .collect(),
    )
}

/// How a filter set reads in an error message.
pub(crate) fn describe_filters(filters: &[Filter]) -> String {
    if filters.is_empty() {
        return "(all)".to_owned();
    }
    let parts: Vec<String> = filters
        .iter()
        .map(|f| format!("{}={}", f.name, f.values.join("|")))
        .collect();
    format!("matching {}", parts.join(", "))
}

pub(crate) fn from_sdk_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect()
}

pub(crate) fn to_sdk_tags(tags: &Tags) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// A tag specification for a create call, or none when there are no tags (EC2 refuses
/// an empty one).
/// What [`tag_spec`] sends, as the API names it, for a request's printed form:
/// `[{"ResourceType":"subnet","Tags":[{"Key":…,"Value":…}]}]`.
pub(crate) fn serialize_tag_spec<S: serde::Serializer>(
    kind: aws_sdk_ec2::types::ResourceType,
    tags: &Tags,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tag<'a> {
        key: &'a str,
        value: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct TagSpecification<'a> {
        resource_type: &'a str,
        tags: Vec<Tag<'a>>,
    }
    [TagSpecification {
        resource_type: kind.as_str(),
        tags: tags.iter().map(|(key, value)| Tag { key, value }).collect(),
    }]
    .serialize(s)
}

pub(crate) fn tag_spec(
    kind: aws_sdk_ec2::types::ResourceType,
    tags: &Tags,
) -> Option<Vec<aws_sdk_ec2::types::TagSpecification>> {
    if tags.is_empty() {
        return None;
    }
    Some(vec![
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(to_sdk_tags(tags)))
            .build(),
    ])
}

impl Aws {
    /// Adds or overwrites tags on EC2 resources (volumes, snapshots, subnets, …).
    pub async fn create_tags(&self, resource_ids: &[String], tags: &Tags) -> Result<(), Error> {
        let call = self.call("tag", resource_ids.join(", "));
        if resource_ids.is_empty() || tags.is_empty() {
            return Err(call.invalid("need at least one resource id and one tag"));
        }
        self.ec2
            .create_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(to_sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }
}

/// A `CreateTags` call as a value: what `--dry-run` shows is what is sent. Sets (adds or
/// overwrites) the tags on every resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewTags {
    /// The resources (volume ids, …).
    pub resources: Vec<String>,
    /// The tags.
    #[serde(serialize_with = "key_values")]
    pub tags: Tags,
}

request_line!(NewTags, "ec2", "CreateTags");

/// A `DeleteTags` call as a value: removes the keys (whatever their values) from every
/// resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemovedTags {
    /// The resources.
    pub resources: Vec<String>,
    /// The keys.
    #[serde(rename = "Tags", serialize_with = "keys_only")]
    pub keys: Vec<String>,
}

request_line!(RemovedTags, "ec2", "DeleteTags");

fn key_values<S: serde::Serializer>(tags: &Tags, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(tags.len()))?;
    for (k, v) in tags {
        seq.serialize_element(&BTreeMap::from([("Key", k), ("Value", v)]))?;
    }
    seq.end()
}

fn keys_only<S: serde::Serializer>(keys: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(keys.len()))?;
    for k in keys {
        seq.serialize_element(&BTreeMap::from([("Key", k)]))?;
    }
    seq.end()
}

impl Aws {
    /// Sends a [`NewTags`]. EC2 answers nothing but success; setting tags a resource
    /// has already is a no-op, so a repeat after a crash is harmless.
    pub async fn send_tags(&self, req: &NewTags) -> Result<(), Error> {
        self.create_tags(&req.resources, &req.tags).await
    }

    /// Sends a [`RemovedTags`]. Removing a key a resource does not have is a no-op.
    pub async fn remove_tags(&self, req: &RemovedTags) -> Result<(), Error> {
        let call = self.call("remove tags", req.resources.join(", "));
        if req.resources.is_empty() || req.keys.is_empty() {
            return Err(call.invalid("need at least one resource id and one key"));
        }
        self.ec2
            .delete_tags()
            .set_resources(Some(req.resources.clone()))
            .set_tags(Some(
                req.keys
                    .iter()
                    .map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_requests_print_as_the_api_names_them() {
        let add = NewTags {
            resources: vec!["vol-1".into(), "vol-2".into()],
            tags: [(
                "ebs.csi.aws.com/cluster-name".to_string(),
                "green".to_string(),
            )]
            .into(),
        };
        assert_eq!(
            add.to_string(),
            r#"ec2    CreateTags {"Resources":["vol-1","vol-2"],"Tags":[{"Key":"ebs.csi.aws.com/cluster-name","Value":"green"}]}"#
        );
        let remove = RemovedTags {
            resources: vec!["vol-1".into()],
            keys: vec!["kubernetes.io/cluster/blue".into()],
        };
        assert_eq!(
            remove.to_string(),
            r#"ec2    DeleteTags {"Resources":["vol-1"],"Tags":[{"Key":"kubernetes.io/cluster/blue"}]}"#
        );
    }
}
