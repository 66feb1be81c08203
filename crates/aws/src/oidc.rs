//! IAM for IRSA at the hand-over: a cluster's IAM OIDC provider (is it there; create it
//! as EKS expects) and a role's trust policy replaced, as request values
//! ([`NewOidcProvider`], [`UpdateAssumeRolePolicy`]) that `--dry-run` prints and the run
//! sends.

use serde::Serialize;

use crate::client::Aws;
use crate::error::Error;

/// The audience EKS's pod identity webhook gives service account tokens: the client id
/// an IRSA provider must list.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// The thumbprint eksctl and the EKS console register for an EKS issuer (IAM now
/// trusts EKS issuers' certificates through its own CA library; moto checks none).
pub const EKS_ISSUER_THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// A `CreateOpenIDConnectProvider` call as a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewOidcProvider {
    /// The issuer URL (`https://oidc.eks.REGION.amazonaws.com/id/ID`).
    pub url: String,
    /// The audiences (`sts.amazonaws.com`).
    #[serde(rename = "ClientIDList")]
    pub client_id_list: Vec<String>,
    /// SHA-1 thumbprints of the issuer's certificate chain (IAM verifies EKS issuers with
    /// its own trusted CAs; the list may still not be empty in older API versions).
    pub thumbprint_list: Vec<String>,
}

request_line!(NewOidcProvider, "iam", "CreateOpenIDConnectProvider");

/// An `UpdateAssumeRolePolicy` call as a value: the whole new trust document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAssumeRolePolicy {
    /// The role's name.
    pub role_name: String,
    /// The trust policy (JSON, without whitespace: what IAM's size limit counts).
    pub policy_document: String,
}

request_line!(UpdateAssumeRolePolicy, "iam", "UpdateAssumeRolePolicy");

impl Aws {
    /// The ARNs of the account's IAM OIDC providers.
    pub async fn oidc_providers(&self) -> Result<Vec<String>, Error> {
        let call = self.call("list IAM OIDC providers of", "the account");
        let out = self
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn().map(str::to_owned))
            .collect())
    }

    /// Sends a [`NewOidcProvider`]; returns the provider's ARN.
    pub async fn create_oidc_provider(&self, req: &NewOidcProvider) -> Result<String, Error> {
        let call = self.call("create the IAM OIDC provider", &req.url);
        let out = self
            .iam
            .create_open_id_connect_provider()
            .url(&req.url)
            .set_client_id_list(Some(req.client_id_list.clone()))
            .set_thumbprint_list(Some(req.thumbprint_list.clone()))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        out.open_id_connect_provider_arn()
            .map(str::to_owned)
            .ok_or_else(|| call.missing("the provider ARN"))
    }

    /// A cluster's EKS Pod Identity associations: (namespace, service account, role ARN),
    /// every page.
    pub async fn pod_identity_associations(
        &self,
        cluster: &str,
    ) -> Result<Vec<(String, String, String)>, Error> {
        let call = self.call("list the EKS Pod Identity associations of", cluster);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .eks
                .list_pod_identity_associations()
                .cluster_name(cluster)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
            for a in page.associations() {
                let id = a.association_id().unwrap_or_default();
                let described = self
                    .eks
                    .describe_pod_identity_association()
                    .cluster_name(cluster)
                    .association_id(id)
                    .send()
                    .await
                    .map_err(|e| call.sdk(e))?;
                if let Some(d) = described.association() {
                    out.push((
                        d.namespace().unwrap_or_default().to_owned(),
                        d.service_account().unwrap_or_default().to_owned(),
                        d.role_arn().unwrap_or_default().to_owned(),
                    ));
                }
            }
            match page.next_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        Ok(out)
    }

    /// Sends an [`UpdateAssumeRolePolicy`].
    pub async fn update_trust(&self, req: &UpdateAssumeRolePolicy) -> Result<(), Error> {
        let call = self.call("replace the trust policy of", &req.role_name);
        self.iam
            .update_assume_role_policy()
            .role_name(&req.role_name)
            .policy_document(&req.policy_document)
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
    fn identity_requests_print_as_the_api_names_them() {
        let p = NewOidcProvider {
            url: "https://oidc.eks.us-east-1.amazonaws.com/id/G".into(),
            client_id_list: vec![STS_AUDIENCE.into()],
            thumbprint_list: vec!["9e99a48a9960b14926bb7f3b02e22da2b0ab7280".into()],
        };
        assert_eq!(
            p.to_string(),
            r#"iam    CreateOpenIDConnectProvider {"Url":"https://oidc.eks.us-east-1.amazonaws.com/id/G","ClientIDList":["sts.amazonaws.com"],"ThumbprintList":["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]}"#
        );
        let u = UpdateAssumeRolePolicy {
            role_name: "orders-db".into(),
            policy_document: "{}".into(),
        };
        assert_eq!(
            u.to_string(),
            r#"iam    UpdateAssumeRolePolicy {"RoleName":"orders-db","PolicyDocument":"{}"}"#
        );
    }
}
