//! The test bed's AWS authorization data on moto: IAM roles (the EBS CSI driver's, IRSA
//! roles of apps) with their trust policies, policies and tags, the clusters' IAM OIDC
//! providers, customer-managed KMS keys with their key policies and grants.
//! Seeding writes them through IAM and KMS as an administrator would; the emulated CSI
//! controller reads them back on every attach and detach and evaluates them itself
//! (`baton_sim::aws_auth`), because moto stores policies but enforces none.
//!
//! Bed-only: baton's own read side of IAM and KMS lives elsewhere.

use crate::client::Aws;
use crate::error::Error;
use crate::tags::Tags;

/// A role as the bed's evaluator needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleView {
    /// The role's ARN.
    pub arn: String,
    /// The role's tags (`aws:PrincipalTag/…` of its sessions).
    pub tags: Tags,
    /// Its trust policy (JSON text): who may assume it.
    pub trust: String,
    /// The documents of its attached managed policies (default versions) and inline
    /// policies, as JSON text.
    pub policies: Vec<String>,
}

/// An IAM OIDC provider (what STS checks a web identity token's issuer and audience
/// against).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcProviderView {
    /// Its ARN, `arn:aws:iam::ACCT:oidc-provider/HOST/PATH`.
    pub arn: String,
    /// The issuer URL as IAM returns it: host and path, no scheme.
    pub url: String,
    /// The audiences (`aud`) it accepts.
    pub client_ids: Vec<String>,
}

pub use crate::oidc::{EKS_ISSUER_THUMBPRINT, STS_AUDIENCE};

/// The IAM OIDC provider ARN for `issuer` in `account` (the issuer without its scheme).
pub fn oidc_provider_arn(account: &str, issuer: &str) -> String {
    format!(
        "arn:aws:iam::{account}:oidc-provider/{}",
        issuer_host_path(issuer)
    )
}

/// An issuer URL without its scheme (`https://oidc.eks.R.amazonaws.com/id/X` →
/// `oidc.eks.R.amazonaws.com/id/X`): the provider's name, and the prefix of the
/// condition keys (`…:sub`, `…:aud`) trust policies use.
pub fn issuer_host_path(issuer: &str) -> &str {
    issuer
        .strip_prefix("https://")
        .unwrap_or(issuer)
        .trim_end_matches('/')
}

/// The placeholder trust policy of a role created without one: any federated
/// principal may assume it with a web identity.
const ANY_WEB_IDENTITY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"*"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;

/// A KMS key as the bed's evaluator needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyView {
    /// The key's ARN.
    pub arn: String,
    /// The key's id.
    pub id: String,
    /// `CUSTOMER` or `AWS`.
    pub manager: String,
    /// The key policy (JSON text).
    pub policy: String,
    /// The key's grants.
    pub grants: Vec<GrantView>,
}

/// One KMS grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantView {
    /// Who may use it (an ARN).
    pub grantee: String,
    /// The operations it allows (`Decrypt`, `CreateGrant`, …).
    pub operations: Vec<String>,
}

/// The role name in a role ARN (`arn:aws:iam::ACCT:role/path/NAME` → `NAME`).
pub fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl Aws {
    /// Creates an IAM role with tags and a trust policy (without one, a placeholder that
    /// admits `sts:AssumeRoleWithWebIdentity` for any federated principal); returns its
    /// ARN.
    pub async fn create_role(
        &self,
        name: &str,
        tags: &Tags,
        trust: Option<&str>,
    ) -> Result<String, Error> {
        let call = self.call("create IAM role", name);
        let trust = trust.unwrap_or(ANY_WEB_IDENTITY);
        let out = self
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
                            .expect("key and value are set")
                    })
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        out.role()
            .map(|r| r.arn().to_owned())
            .ok_or_else(|| call.missing("the role"))
    }

    /// Creates the IAM OIDC provider for an EKS cluster's issuer, as eksctl's
    /// `utils associate-iam-oidc-provider` does (client id `sts.amazonaws.com`, the
    /// usual EKS thumbprint) — baton's own request; returns its ARN.
    pub async fn create_eks_oidc_provider(&self, issuer: &str) -> Result<String, Error> {
        self.create_oidc_provider(&crate::NewOidcProvider {
            url: issuer.to_owned(),
            client_id_list: vec![STS_AUDIENCE.to_owned()],
            thumbprint_list: vec![EKS_ISSUER_THUMBPRINT.to_owned()],
        })
        .await
    }

    /// The IAM OIDC provider of that ARN, if the account has it.
    pub async fn oidc_provider(&self, arn: &str) -> Result<Option<OidcProviderView>, Error> {
        let call = self.call("read IAM OIDC provider", arn);
        let out = match self
            .iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = call.sdk(e);
                return match err.code() {
                    Some("NoSuchEntity") => Ok(None),
                    _ => Err(err),
                };
            }
        };
        Ok(Some(OidcProviderView {
            arn: arn.to_owned(),
            url: out.url().unwrap_or_default().to_owned(),
            client_ids: out.client_id_list().to_vec(),
        }))
    }

    /// Creates a customer-managed policy (or finds the one of that name) and attaches
    /// it to a role; returns the policy's ARN.
    pub async fn attach_new_policy(
        &self,
        role: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<String, Error> {
        let call = self.call("create IAM policy", policy_name);
        let arn = match self
            .iam
            .create_policy()
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
        {
            Ok(out) => out
                .policy()
                .and_then(|p| p.arn())
                .map(str::to_owned)
                .ok_or_else(|| call.missing("the policy ARN"))?,
            Err(e) => {
                let err = call.sdk(e);
                if err.code() != Some("EntityAlreadyExists") {
                    return Err(err);
                }
                let account = self.account_id().await?;
                format!("arn:aws:iam::{account}:policy/{policy_name}")
            }
        };
        let call = self.call("attach IAM policy to role", role);
        self.iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(&arn)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(arn)
    }

    /// Puts an inline policy on a role.
    pub async fn put_role_policy(
        &self,
        role: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), Error> {
        let call = self.call("put inline policy on role", role);
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// Sets tags on a role.
    pub async fn tag_role(&self, role: &str, tags: &Tags) -> Result<(), Error> {
        let call = self.call("tag IAM role", role);
        self.iam
            .tag_role()
            .role_name(role)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| {
                        aws_sdk_iam::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .expect("key and value are set")
                    })
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// The account the credentials belong to.
    pub async fn account_id(&self) -> Result<String, Error> {
        let call = self.call("get the caller identity of", "these credentials");
        let out = self
            .probe
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        out.account()
            .map(str::to_owned)
            .ok_or_else(|| call.missing("the account"))
    }

    /// A role's tags, trust policy and policy documents (attached managed policies'
    /// default versions and inline policies), read through IAM: the same read baton's
    /// plan makes.
    pub async fn role_view(&self, role_arn: &str) -> Result<RoleView, Error> {
        let read = self.role_policies(role_arn).await?;
        Ok(RoleView {
            arn: read.arn,
            tags: read.tags,
            trust: read.trust,
            policies: read.documents.into_iter().map(|(_, text)| text).collect(),
        })
    }

    /// Creates a customer-managed symmetric KMS key with a key policy; returns its id
    /// and ARN.
    pub async fn create_kms_key(
        &self,
        description: &str,
        policy: &str,
    ) -> Result<(String, String), Error> {
        let call = self.call("create KMS key", description);
        let out = self
            .kms
            .create_key()
            .description(description)
            .policy(policy)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| call.missing("the key metadata"))?;
        Ok((
            meta.key_id().to_owned(),
            meta.arn()
                .map(str::to_owned)
                .ok_or_else(|| call.missing("the key ARN"))?,
        ))
    }

    /// Grants `grantee` the `operations` on a key.
    pub async fn create_kms_grant(
        &self,
        key: &str,
        grantee: &str,
        operations: &[&str],
    ) -> Result<(), Error> {
        let call = self.call("create KMS grant on", key);
        self.kms
            .create_grant()
            .key_id(key)
            .grantee_principal(grantee)
            .set_operations(Some(
                operations
                    .iter()
                    .map(|o| aws_sdk_kms::types::GrantOperation::from(*o))
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// A key's manager, policy and grants, read through KMS (the same read baton's
    /// plan makes).
    pub async fn kms_key_view(&self, key: &str) -> Result<KeyView, Error> {
        let k = self.kms_key(key).await?;
        Ok(KeyView {
            arn: k.arn,
            id: k.id,
            manager: k.manager,
            policy: k.policy,
            grants: k
                .grants
                .into_iter()
                .map(|g| GrantView {
                    grantee: g.grantee,
                    operations: g.operations,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_come_from_arns() {
        assert_eq!(role_name("arn:aws:iam::123456789012:role/x/ebs"), "ebs");
    }

    #[test]
    fn provider_arns_name_the_issuer_without_its_scheme() {
        let issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF";
        assert_eq!(
            oidc_provider_arn("123456789012", issuer),
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
        );
        assert_eq!(
            issuer_host_path(issuer),
            "oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
        );
    }
}
