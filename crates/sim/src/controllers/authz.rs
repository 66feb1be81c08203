//! What AWS would decide for the EBS CSI controller's calls, asked before the emulated
//! driver calls EC2 (moto enforces no IAM). The driver's identity is IRSA's: the role in
//! the `eks.amazonaws.com/role-arn` annotation of `kube-system/ebs-csi-controller-sa`.
//! A cluster without that annotation has no declared role and nothing is enforced
//! (the bed's behaviour before authorization was modelled).
//!
//! On each AttachVolume/DetachVolume the role's tags and policies are read from IAM,
//! the volume's and instance's tags from EC2 and, for a volume encrypted with a
//! customer-managed key, the key policy and grants from KMS — so fixing a tag or a
//! policy on moto takes effect on the next retry — and evaluated by
//! [`crate::aws_auth`].

use base64::Engine;
use serde_json::{Value, json};

use super::Ctx;
use super::api::SERVICEACCOUNTS;
use crate::aws_auth::{self, Context, Decision, Grant, Request};

/// The EBS CSI controller's ServiceAccount.
pub const DRIVER_SA: (&str, &str) = ("kube-system", "ebs-csi-controller-sa");
/// IRSA's annotation naming the role a ServiceAccount's pods assume.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The role the driver's controller runs as, if the cluster declares one.
pub(crate) fn driver_role(ctx: &Ctx) -> Option<String> {
    ctx.get(SERVICEACCOUNTS, DRIVER_SA.0, DRIVER_SA.1)?["metadata"]["annotations"]
        [ROLE_ARN_ANNOTATION]
        .as_str()
        .filter(|a| !a.is_empty())
        .map(String::from)
}

/// A refusal, as the AWS API and the driver report it.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// EC2 answered 403 `UnauthorizedOperation`: this text is the SDK error's.
    Unauthorized(String),
    /// KMS refused the grant EC2 creates for the caller: EC2 took the AttachVolume,
    /// the volume went back to `available`, and the driver waited for an attachment
    /// that never came until the external-attacher's RPC deadline.
    KeyInaccessible(String),
    /// The evaluation could not be made (IAM/KMS unreadable, a policy the evaluator
    /// does not model): retried like any failure.
    Error(String),
}

fn principal_context(role: &baton_aws::testbed::authz::RoleView) -> Context {
    let mut c = Context::new();
    for (k, v) in &role.tags {
        c.insert(format!("aws:PrincipalTag/{k}"), vec![v.clone()]);
    }
    c.insert("aws:PrincipalArn".into(), vec![role.arn.clone()]);
    c.insert(
        "aws:PrincipalAccount".into(),
        vec![aws_auth::account_of(&role.arn).to_string()],
    );
    c
}

fn with_resource_tags(base: &Context, tags: &baton_aws::Tags) -> Context {
    let mut c = base.clone();
    for (k, v) in tags {
        c.insert(format!("aws:ResourceTag/{k}"), vec![v.clone()]);
        c.insert(format!("ec2:ResourceTag/{k}"), vec![v.clone()]);
    }
    c
}

fn parse(docs: &[String]) -> Result<Vec<Value>, String> {
    docs.iter()
        .map(|d| serde_json::from_str(d).map_err(|e| format!("policy document is not JSON: {e}")))
        .collect()
}

/// The region of a zone (`us-east-1a` → `us-east-1`).
fn region_of(zone: &str) -> &str {
    zone.trim_end_matches(|c: char| c.is_ascii_lowercase())
}

/// The instance and volume ARNs EC2 authorizes an attach or detach against.
fn arns(account: &str, zone: &str, volume: &str, instance: &str) -> (String, String) {
    let region = region_of(zone);
    (
        format!("arn:aws:ec2:{region}:{account}:volume/{volume}"),
        format!("arn:aws:ec2:{region}:{account}:instance/{instance}"),
    )
}

/// The SDK's rendering of EC2's 403 for an IRSA session (aws-sdk-go-v2 names web
/// identity sessions `aws-go-sdk-<nanos>`); the encoded message is what
/// `sts decode-authorization-message` would decode (here base64 of the bed's decision,
/// not encrypted).
fn unauthorized(
    operation: &str,
    role_arn: &str,
    resource: &str,
    decision: &Decision,
    context: &Context,
) -> String {
    let action = format!("ec2:{operation}");
    let why = match decision {
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
        _ => format!("because no identity-based policy allows the {action} action"),
    };
    let account = aws_auth::account_of(role_arn);
    let role = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let decoded = json!({
        "allowed": false,
        "explicitDeny": matches!(decision, Decision::ExplicitDeny),
        "context": { "principal": { "arn": role_arn }, "action": action, "resource": resource,
                     "conditions": context },
    });
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(decoded.to_string());
    format!(
        "operation error EC2: {operation}, https response error StatusCode: 403, RequestID: {}, api error UnauthorizedOperation: You are not authorized to perform this operation. User: arn:aws:sts::{account}:assumed-role/{role}/aws-go-sdk-{nanos} is not authorized to perform: {action} on resource: {resource} {why}. Encoded authorization failure message: {encoded}",
        uuid::Uuid::new_v4()
    )
}

/// Whether `role_arn` may make `operation` (`AttachVolume`/`DetachVolume`) on the
/// volume and the instance, and, for an attach of a volume under a customer-managed
/// key, whether KMS lets EC2 create the grant it needs for the caller.
pub(crate) async fn authorize(
    aws: &baton_aws::Aws,
    role_arn: &str,
    operation: &str,
    volume: &baton_aws::Volume,
    instance: &baton_aws::Instance,
) -> Result<(), Refusal> {
    let role = aws
        .role_view(role_arn)
        .await
        .map_err(|e| Refusal::Error(e.to_string()))?;
    let policies = parse(&role.policies).map_err(Refusal::Error)?;
    let principal = principal_context(&role);
    let account = aws_auth::account_of(role_arn);
    let (volume_arn, instance_arn) =
        arns(account, &volume.availability_zone, &volume.id, &instance.id);
    let action = format!("ec2:{operation}");
    // EC2 authorizes every resource of the request: the volume and the instance.
    for (arn, tags) in [(&volume_arn, &volume.tags), (&instance_arn, &instance.tags)] {
        let context = with_resource_tags(&principal, tags);
        let decision = aws_auth::evaluate(
            &policies,
            &Request {
                action: &action,
                resource: arn,
                context: &context,
            },
        )
        .map_err(Refusal::Error)?;
        if !decision.allowed() {
            return Err(Refusal::Unauthorized(unauthorized(
                operation, role_arn, arn, &decision, &context,
            )));
        }
    }
    if operation != "AttachVolume" {
        return Ok(());
    }
    let Some(key) = volume.kms_key_id.as_deref() else {
        return Ok(());
    };
    let key = aws
        .kms_key_view(key)
        .await
        .map_err(|e| Refusal::Error(e.to_string()))?;
    if key.manager != "CUSTOMER" {
        return Ok(());
    }
    let key_policy: Value = serde_json::from_str(&key.policy)
        .map_err(|e| Refusal::Error(format!("key policy of {} is not JSON: {e}", key.arn)))?;
    let grants: Vec<Grant> = key
        .grants
        .iter()
        .map(|g| Grant {
            grantee: g.grantee.clone(),
            operations: g.operations.clone(),
        })
        .collect();
    let mut context = principal.clone();
    context.insert("kms:GrantIsForAWSResource".into(), vec!["true".into()]);
    context.insert(
        "kms:ViaService".into(),
        vec![format!(
            "ec2.{}.amazonaws.com",
            region_of(&volume.availability_zone)
        )],
    );
    context.insert("kms:CallerAccount".into(), vec![account.to_string()]);
    // EBS creates a grant for the instance on the caller's behalf and decrypts the
    // volume's data key (https://docs.aws.amazon.com/kms/latest/developerguide/services-ebs.html).
    for action in ["kms:CreateGrant", "kms:Decrypt"] {
        let decision = aws_auth::evaluate_kms(
            &key_policy,
            &policies,
            &grants,
            role_arn,
            &Request {
                action,
                resource: &key.arn,
                context: &context,
            },
        )
        .map_err(Refusal::Error)?;
        if !decision.allowed() {
            return Err(Refusal::KeyInaccessible(format!(
                "{action} on {} is not allowed for {role_arn}",
                key.arn
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_carry_the_zones_region() {
        let (v, i) = arns("123456789012", "us-east-1a", "vol-1", "i-1");
        assert_eq!(v, "arn:aws:ec2:us-east-1:123456789012:volume/vol-1");
        assert_eq!(i, "arn:aws:ec2:us-east-1:123456789012:instance/i-1");
    }

    #[test]
    fn the_refusal_reads_as_ec2s() {
        let m = unauthorized(
            "AttachVolume",
            "arn:aws:iam::123456789012:role/green-ebs",
            "arn:aws:ec2:us-east-1:123456789012:volume/vol-1",
            &Decision::ImplicitDeny,
            &Context::new(),
        );
        assert!(m.starts_with(
            "operation error EC2: AttachVolume, https response error StatusCode: 403, RequestID: "
        ));
        assert!(m.contains("api error UnauthorizedOperation: You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/green-ebs/aws-go-sdk-"));
        assert!(m.contains("because no identity-based policy allows the ec2:AttachVolume action. Encoded authorization failure message: "));
    }
}
