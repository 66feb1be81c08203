//! KMS for the volume hand-over: a key's manager, policy and grants (whether green's EBS
//! CSI driver may use it is `baton_core::keys`'s to decide), and the grant baton gives
//! green's driver role, as request values ([`NewGrant`], [`RevokedGrant`]).

use serde::Serialize;

use crate::client::Aws;
use crate::error::Error;

/// A KMS key as read: `DescribeKey`, `GetKeyPolicy` (`default`), `ListGrants`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KmsKey {
    /// The key's ARN.
    pub arn: String,
    /// The key's id.
    pub id: String,
    /// `CUSTOMER` or `AWS`.
    pub manager: String,
    /// The key policy (JSON text).
    pub policy: String,
    /// The key's grants.
    pub grants: Vec<KmsGrant>,
}

/// One KMS grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KmsGrant {
    /// Its id.
    pub id: String,
    /// Its name (empty when it has none).
    pub name: String,
    /// Who may use it (an ARN).
    pub grantee: String,
    /// The operations it allows (`Decrypt`, `CreateGrant`, …).
    pub operations: Vec<String>,
}

/// A `CreateGrant` call as a value: what `--dry-run` shows is what is sent. With a
/// `Name`, KMS treats a repeat of the same request as the same grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewGrant {
    /// The key (ARN).
    pub key_id: String,
    /// The role given the operations.
    pub grantee_principal: String,
    /// The operations.
    pub operations: Vec<String>,
    /// The grant's name.
    pub name: String,
}

request_line!(NewGrant, "kms", "CreateGrant");

/// A `RevokeGrant` call as a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RevokedGrant {
    /// The key (ARN).
    pub key_id: String,
    /// The grant.
    pub grant_id: String,
}

request_line!(RevokedGrant, "kms", "RevokeGrant");

impl Aws {
    /// A key's manager, policy and grants (every page).
    pub async fn kms_key(&self, key: &str) -> Result<KmsKey, Error> {
        let call = self.call("read KMS key", key);
        let described = self
            .kms
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let meta = described
            .key_metadata()
            .ok_or_else(|| call.missing("the key metadata"))?;
        let id = meta.key_id().to_owned();
        let manager = meta
            .key_manager()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| "CUSTOMER".into());
        let arn = meta.arn().unwrap_or_default().to_owned();
        let policy = if manager == "AWS" {
            // An AWS managed key's policy is readable but not baton's to judge.
            String::new()
        } else {
            self.kms
                .get_key_policy()
                .key_id(&id)
                .policy_name("default")
                .send()
                .await
                .map_err(|e| call.sdk(e))?
                .policy()
                .unwrap_or_default()
                .to_owned()
        };
        let mut grants = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .kms
                .list_grants()
                .key_id(&id)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            grants.extend(page.grants().iter().map(|g| {
                KmsGrant {
                    id: g.grant_id().unwrap_or_default().to_owned(),
                    name: g.name().unwrap_or_default().to_owned(),
                    grantee: g.grantee_principal().unwrap_or_default().to_owned(),
                    operations: g
                        .operations()
                        .iter()
                        .map(|o| o.as_str().to_owned())
                        .collect(),
                }
            }));
            match page.next_marker() {
                Some(m) if page.truncated() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        Ok(KmsKey {
            arn,
            id,
            manager,
            policy,
            grants,
        })
    }

    /// Sends a [`NewGrant`]; returns the grant's id.
    pub async fn create_grant(&self, req: &NewGrant) -> Result<String, Error> {
        let call = self.call("create a KMS grant on", &req.key_id);
        let out = self
            .kms
            .create_grant()
            .key_id(&req.key_id)
            .grantee_principal(&req.grantee_principal)
            .set_operations(Some(
                req.operations
                    .iter()
                    .map(|o| aws_sdk_kms::types::GrantOperation::from(o.as_str()))
                    .collect(),
            ))
            .name(&req.name)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        out.grant_id()
            .map(str::to_owned)
            .ok_or_else(|| call.missing("the grant id"))
    }

    /// Sends a [`RevokedGrant`].
    pub async fn revoke_grant(&self, req: &RevokedGrant) -> Result<(), Error> {
        let call = self.call("revoke a KMS grant on", &req.key_id);
        self.kms
            .revoke_grant()
            .key_id(&req.key_id)
            .grant_id(&req.grant_id)
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
    fn grant_requests_print_as_the_api_names_them() {
        let g = NewGrant {
            key_id: "arn:aws:kms:us-east-1:1:key/k".into(),
            grantee_principal: "arn:aws:iam::1:role/g".into(),
            operations: vec!["Decrypt".into()],
            name: "baton-green".into(),
        };
        assert_eq!(
            g.to_string(),
            r#"kms    CreateGrant {"KeyId":"arn:aws:kms:us-east-1:1:key/k","GranteePrincipal":"arn:aws:iam::1:role/g","Operations":["Decrypt"],"Name":"baton-green"}"#
        );
        let r = RevokedGrant {
            key_id: "k".into(),
            grant_id: "g1".into(),
        };
        assert_eq!(
            r.to_string(),
            r#"kms    RevokeGrant {"KeyId":"k","GrantId":"g1"}"#
        );
    }
}
