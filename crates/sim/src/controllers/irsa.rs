//! IAM roles for service accounts (IRSA), as STS decides them: a pod whose
//! ServiceAccount carries `eks.amazonaws.com/role-arn` gets that role's credentials
//! only through `sts:AssumeRoleWithWebIdentity` with its cluster's service account
//! token, and STS (which moto does not model: it hands out credentials for any token
//! and any role) admits the token only if
//!
//! 1. the role's account has an IAM OIDC provider for the token's issuer — each EKS
//!    cluster has its own issuer, so blue's provider is not green's;
//! 2. the token's audience is one of that provider's client ids;
//! 3. the role's trust policy allows the provider, with the token's `sub`
//!    (`system:serviceaccount:NS:NAME`) and `aud` as condition keys
//!    ([`crate::aws_auth::evaluate_trust`]).
//!
//! The emulated kubelet asks before it starts a pod's containers
//! (`kubelet.rs`); a refusal is what the pod's AWS SDK would report, and the pod
//! crash-loops until the trust is fixed on moto. The token's signature, expiry and the
//! provider's thumbprint are not checked (the bed mints no tokens).

use serde_json::Value;

use super::Ctx;
use super::api::SERVICEACCOUNTS;
use super::authz::{DRIVER_SA, ROLE_ARN_ANNOTATION};
use crate::aws_auth::{self, Context, Request};
use crate::meta;
use baton_aws::testbed::authz::{STS_AUDIENCE, issuer_host_path, oidc_provider_arn};

/// The ServiceAccount annotation setting the token's audience (the pod identity
/// webhook's `eks.amazonaws.com/audience`; default `sts.amazonaws.com`).
pub const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";

/// The action a web identity assumes a role with.
const ACTION: &str = "sts:AssumeRoleWithWebIdentity";

/// Who asks for a role: a ServiceAccount's token of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct WebIdentity<'a> {
    /// The cluster's OIDC issuer (`https://oidc.eks.REGION.amazonaws.com/id/ID`).
    pub issuer: &'a str,
    /// The ServiceAccount's namespace.
    pub namespace: &'a str,
    /// The ServiceAccount's name.
    pub service_account: &'a str,
    /// The role it asks for.
    pub role_arn: &'a str,
    /// The token's audience.
    pub audience: &'a str,
}

impl WebIdentity<'_> {
    /// The token's `sub` claim.
    fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
}

/// Why a pod got no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// STS refused the token: the SDK's error text.
    Sts(String),
    /// The decision could not be made (IAM or EKS unreadable, a trust policy that is
    /// not JSON or uses an operator the evaluator does not model).
    Error(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sts(m) | Self::Error(m) => f.write_str(m),
        }
    }
}

/// STS's answer as aws-sdk-go-v2 renders an API error.
fn sts_error(status: u16, code: &str, message: &str) -> Refusal {
    Refusal::Sts(format!(
        "operation error STS: AssumeRoleWithWebIdentity, https response error StatusCode: {status}, RequestID: {}, api error {code}: {message}",
        uuid::Uuid::new_v4()
    ))
}

/// The token's claims as a trust policy sees them (`ISSUER:sub`, `ISSUER:aud`).
fn claims(who: &WebIdentity<'_>) -> Context {
    let issuer = issuer_host_path(who.issuer);
    Context::from([
        (format!("{issuer}:sub"), vec![who.subject()]),
        (format!("{issuer}:aud"), vec![who.audience.to_string()]),
    ])
}

/// Whether STS gives `who` the role's credentials, checked in STS's order: the
/// provider, the audience, the trust policy.
pub(crate) async fn assume(aws: &baton_aws::Aws, who: &WebIdentity<'_>) -> Result<(), Refusal> {
    let provider_arn = oidc_provider_arn(aws_auth::account_of(who.role_arn), who.issuer);
    let provider = aws
        .oidc_provider(&provider_arn)
        .await
        .map_err(|e| Refusal::Error(e.to_string()))?;
    let Some(provider) = provider else {
        return Err(sts_error(
            400,
            "InvalidIdentityToken",
            &format!(
                "No OpenIDConnect provider found in your account for {}",
                who.issuer
            ),
        ));
    };
    if !provider.client_ids.iter().any(|c| c == who.audience) {
        return Err(sts_error(
            400,
            "InvalidIdentityToken",
            "Incorrect token audience",
        ));
    }
    let denied = || {
        sts_error(
            403,
            "AccessDenied",
            &format!("Not authorized to perform {ACTION}"),
        )
    };
    let role = match aws.role_view(who.role_arn).await {
        Ok(r) => r,
        // STS says the same of a role that does not exist.
        Err(e) if e.code() == Some("NoSuchEntity") => return Err(denied()),
        Err(e) => return Err(Refusal::Error(e.to_string())),
    };
    let trust: Value = serde_json::from_str(&role.trust)
        .map_err(|e| Refusal::Error(format!("trust policy of {} is not JSON: {e}", role.arn)))?;
    let context = claims(who);
    let decision = aws_auth::evaluate_trust(
        &trust,
        &provider_arn,
        &Request {
            action: ACTION,
            resource: who.role_arn,
            context: &context,
        },
    )
    .map_err(Refusal::Error)?;
    if decision.allowed() {
        Ok(())
    } else {
        Err(denied())
    }
}

/// What a pod's ServiceAccount asks of IRSA.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodRole {
    /// The ServiceAccount's name.
    service_account: String,
    /// The role it names.
    role_arn: String,
    /// Its tokens' audience.
    audience: String,
}

/// The role a pod's ServiceAccount (`spec.serviceAccountName`, default `default`)
/// names, with the token audience, if it names one. The EBS CSI controller's is left
/// out: the emulated driver is no pod, and `authz.rs` takes its role as assumed.
fn pod_role(ctx: &Ctx, pod: &Value) -> Option<PodRole> {
    let ns = meta::namespace(pod);
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    if (ns, sa) == DRIVER_SA {
        return None;
    }
    let account = ctx.get(SERVICEACCOUNTS, ns, sa)?;
    let annotations = &account["metadata"]["annotations"];
    let role = annotations[ROLE_ARN_ANNOTATION]
        .as_str()
        .filter(|r| !r.is_empty())?;
    let audience = annotations[AUDIENCE_ANNOTATION]
        .as_str()
        .filter(|a| !a.is_empty())
        .unwrap_or(STS_AUDIENCE);
    Some(PodRole {
        service_account: sa.to_string(),
        role_arn: role.to_string(),
        audience: audience.to_string(),
    })
}

/// Whether a pod may start as far as IRSA goes: yes when its ServiceAccount names no
/// role; else whether STS gives it the role, for its cluster's issuer (read from EKS).
pub(crate) async fn pod_credentials(ctx: &Ctx, pod: &Value) -> Result<(), Refusal> {
    let Some(asked) = pod_role(ctx, pod) else {
        return Ok(());
    };
    let Some(aws) = &ctx.aws else {
        return Err(Refusal::Error(format!(
            "no AWS endpoint to assume {} with",
            asked.role_arn
        )));
    };
    let cluster = &ctx.cluster.spec.name;
    let issuer = aws
        .describe_cluster(cluster)
        .await
        .map_err(|e| Refusal::Error(e.to_string()))?
        .oidc_issuer
        .ok_or_else(|| Refusal::Error(format!("EKS cluster {cluster} has no OIDC issuer")))?;
    assume(
        aws,
        &WebIdentity {
            issuer: &issuer,
            namespace: meta::namespace(pod),
            service_account: &asked.service_account,
            role_arn: &asked.role_arn,
            audience: &asked.audience,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_keyed_by_the_issuer_without_its_scheme() {
        let who = WebIdentity {
            issuer: "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
            namespace: "orders",
            service_account: "orders-db",
            role_arn: "arn:aws:iam::123456789012:role/orders",
            audience: "sts.amazonaws.com",
        };
        let c = claims(&who);
        assert_eq!(
            c["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"],
            ["system:serviceaccount:orders:orders-db"]
        );
        assert_eq!(
            c["oidc.eks.us-east-1.amazonaws.com/id/ABC:aud"],
            ["sts.amazonaws.com"]
        );
    }

    #[test]
    fn refusals_read_as_the_go_sdks() {
        let Refusal::Sts(m) = sts_error(
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ) else {
            panic!("an STS refusal");
        };
        assert!(m.starts_with("operation error STS: AssumeRoleWithWebIdentity, https response error StatusCode: 403, RequestID: "));
        assert!(m.ends_with(
            "api error AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"
        ));
    }
}
