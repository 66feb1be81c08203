//! IAM on the test bed: a role with tags and one policy attached, as an EKS add-on's
//! driver role is set up (tests give a cluster's EBS CSI driver a tag-scoped policy).

use crate::client::Aws;
use crate::tags::Tags;

/// Creates a role trusted by EKS Pod Identity, tagged `tags`, with a customer managed
/// policy `document` (JSON) attached, and returns the role's ARN. Panics on failure:
/// for tests only.
pub async fn role_with_policy(aws: &Aws, name: &str, tags: &Tags, document: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
    let role = aws
        .iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| {
                    aws_sdk_iam::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .expect("a tag has a key and a value")
                })
                .collect(),
        ))
        .send()
        .await
        .expect("create the role");
    let arn = role.role().expect("a role").arn().to_string();
    let policy = aws
        .iam
        .create_policy()
        .policy_name(format!("{name}-policy"))
        .policy_document(document)
        .send()
        .await
        .expect("create the policy");
    aws.iam
        .attach_role_policy()
        .role_name(name)
        .policy_arn(policy.policy().and_then(|p| p.arn()).expect("a policy ARN"))
        .send()
        .await
        .expect("attach the policy");
    arn
}
