//! IAM reads for the volume hand-over: an EBS CSI driver role's tags and the documents of
//! the policies attached to it (managed: their default version; inline), which decide
//! which volume tags its driver may attach and detach (`baton_core::handover`).

use crate::client::Aws;
use crate::error::Error;
use crate::tags::Tags;

/// A role and its permission policies, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicies {
    /// The role's ARN.
    pub arn: String,
    /// The role's tags (`${aws:PrincipalTag/K}` resolves to these).
    pub tags: Tags,
    /// Its trust policy (`AssumeRolePolicyDocument`, JSON, URL-decoded): who may assume
    /// it, e.g. which clusters' OIDC providers for IRSA.
    pub trust: String,
    /// Each policy's document (JSON, URL-decoded), with where it came from: the managed
    /// policy's ARN, or `inline:NAME`.
    pub documents: Vec<(String, String)>,
}

/// The role name in a role ARN (`arn:aws:iam::123456789012:role/path/name` → `name`).
pub fn role_name(arn: &str) -> Option<&str> {
    let (_, resource) = arn.split_once(":role/")?;
    resource.rsplit('/').next().filter(|n| !n.is_empty())
}

/// IAM returns policy documents URL-encoded (RFC 3986: `+` stays `+`); moto and some tools return them
/// as they are. A document that does not start with `{` is decoded.
pub fn decode_document(doc: &str) -> String {
    let trimmed = doc.trim_start();
    if trimmed.starts_with('{') {
        return doc.to_string();
    }
    let bytes = doc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Aws {
    /// Reads a role's tags, its trust policy and every permission policy document
    /// attached to it.
    pub async fn role_policies(&self, role_arn: &str) -> Result<RolePolicies, Error> {
        let call = self.call("read the IAM role", role_arn);
        let name = role_name(role_arn)
            .ok_or_else(|| call.invalid("not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"))?;
        let role = self
            .iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let tags = role
            .role()
            .map(|r| {
                r.tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let trust = role
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .map(decode_document)
            .unwrap_or_default();
        let mut documents = Vec::new();

        let call = self.call("list the role's managed policies", role_arn);
        let mut arns = Vec::new();
        let mut marker = None;
        loop {
            let out = self
                .iam
                .list_attached_role_policies()
                .role_name(name)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            arns.extend(
                out.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string)),
            );
            match (out.is_truncated(), out.marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for arn in arns {
            let call = self.call("read the managed policy", &arn);
            let policy = self
                .iam
                .get_policy()
                .policy_arn(&arn)
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            let version = policy
                .policy()
                .and_then(|p| p.default_version_id())
                .ok_or_else(|| call.missing("the default version id"))?
                .to_string();
            let doc = self
                .iam
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(&version)
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            let text = doc
                .policy_version()
                .and_then(|v| v.document())
                .ok_or_else(|| call.missing("the policy document"))?;
            documents.push((arn.clone(), decode_document(text)));
        }

        let call = self.call("list the role's inline policies", role_arn);
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let out = self
                .iam
                .list_role_policies()
                .role_name(name)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            names.extend(out.policy_names().iter().cloned());
            match (out.is_truncated(), out.marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for policy in names {
            let call = self.call("read the inline policy", format!("{role_arn} {policy}"));
            let out = self
                .iam
                .get_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            documents.push((
                format!("inline:{policy}"),
                decode_document(out.policy_document()),
            ));
        }
        Ok(RolePolicies {
            arn: role_arn.to_string(),
            tags,
            trust,
            documents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_and_documents() {
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/eks/green-ebs-csi"),
            Some("green-ebs-csi")
        );
        assert_eq!(role_name("arn:aws:iam::123456789012:user/me"), None);
        assert_eq!(
            decode_document("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(decode_document(r#"{"a":"100%"}"#), r#"{"a":"100%"}"#);
    }
}
