//! Target groups' tags (ELBv2 DescribeTags): how `baton traffic bindings` finds green's
//! target group for each of blue's, when no `--map` says.

use crate::client::Aws;
use crate::error::Error;
use crate::tags::Tags;

/// DescribeTags takes at most 20 resource ARNs a call.
const TAGS_PER_CALL: usize = 20;

impl Aws {
    /// The tags of each target group (or any ELBv2 resource), by ARN.
    pub async fn elb_tags(
        &self,
        arns: &[String],
    ) -> Result<std::collections::BTreeMap<String, Tags>, Error> {
        let mut out = std::collections::BTreeMap::new();
        for chunk in arns.chunks(TAGS_PER_CALL) {
            let call = self.call("describe the tags of", chunk.join(", "));
            let answer = self
                .elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            for d in answer.tag_descriptions() {
                let Some(arn) = d.resource_arn() else {
                    continue;
                };
                let tags: Tags = d
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                    .collect();
                out.insert(arn.to_owned(), tags);
            }
        }
        Ok(out)
    }

    /// Adds tags to a target group (or any ELBv2 resource): how the bed marks which
    /// cluster and app each of its target groups serves.
    pub async fn add_elb_tags(&self, arn: &str, tags: &Tags) -> Result<(), Error> {
        let call = self.call("tag", arn);
        let tags: Vec<_> = tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect();
        self.elb
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }
}
