//! IAM roles for service accounts at the hand-over (issue 19).
//!
//! A pod whose ServiceAccount names a role (`eks.amazonaws.com/role-arn`) gets
//! credentials through `sts:AssumeRoleWithWebIdentity`, which AWS allows only if the role's
//! trust policy trusts the cluster's IAM OIDC provider for the token's subject
//! (`system:serviceaccount:NS:NAME`) and audience (`sts.amazonaws.com`). Each EKS cluster
//! has its own issuer, so a role blue's pods use must also trust green's provider before
//! green's pods start. [`trusts`] tells whether a trust policy already admits a subject
//! from a provider; [`with_trust`] adds the statement green needs, keeping every statement
//! that is there, and refuses a document over IAM's size limit.
//!
//! What [`trusts`] reads: `Allow` and `Deny` statements whose `Principal` is `*` or names
//! the provider under `Federated`; `Action` (with `*`/`?`) covering
//! `sts:AssumeRoleWithWebIdentity`; conditions on `<issuer>:sub` and `<issuer>:aud` under
//! `StringEquals`, `StringLike` and their `…IfExists` forms. A statement with another
//! condition key or operator, or with `NotPrincipal`/`NotAction`, does not count as an
//! allow (and counts as a deny when it is one): baton would rather add a statement that
//! was not needed than find a pod that cannot start.

use serde_json::{Value, json};

use crate::conditions::{self, Key};
use crate::handover::glob;

/// The action a web identity token is exchanged with.
pub const ASSUME_WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";
/// The audience EKS's pod identity webhook puts in the projected token by default.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// IAM's default quota on a role trust policy's length, in characters (quota
/// L-C07B4B0D, "Role trust policy length"; raisable). baton counts the document as it
/// sends it: JSON without whitespace.
pub const TRUST_POLICY_LIMIT: usize = 2048;

/// A cluster's IAM OIDC provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// `arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID`.
    pub arn: String,
    /// The issuer without its scheme (`oidc.eks.REGION.amazonaws.com/id/ID`): the prefix
    /// of the condition keys `…:sub` and `…:aud`.
    pub host: String,
}

impl Provider {
    /// The provider IAM names for an issuer URL (EKS's `identity.oidc.issuer`) in an
    /// account.
    pub fn of(account: &str, issuer: &str) -> Self {
        let host = issuer
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        Self {
            arn: format!("arn:aws:iam::{account}:oidc-provider/{host}"),
            host,
        }
    }
}

/// The token subject of a ServiceAccount.
pub fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Bool(b)) => vec![b.to_string()],
        Some(Value::Array(a)) => a.iter().flat_map(|x| strings(Some(x))).collect(),
        _ => vec![],
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => vec![],
    }
}

/// Whether a statement names the provider (or everyone) as its principal.
fn names(statement: &Value, provider: &Provider) -> bool {
    match statement.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(m)) => {
            strings(m.get("Federated"))
                .iter()
                .any(|p| p == &provider.arn || p == "*")
                || strings(m.get("AWS")).iter().any(|p| p == "*")
        }
        _ => false,
    }
}

/// Whether a statement's conditions hold for the token: its `sub` and `aud` under this
/// provider's issuer; another issuer's `sub`/`aud` are absent from it.
fn holds(statement: &Value, provider: &Provider, sub: &str, aud: &str) -> Result<bool, String> {
    conditions::hold(statement, |k| {
        if k.eq_ignore_ascii_case(&format!("{}:sub", provider.host)) {
            Key::Is(sub.to_string())
        } else if k.eq_ignore_ascii_case(&format!("{}:aud", provider.host)) {
            Key::Is(aud.to_string())
        } else if k.ends_with(":sub") || k.ends_with(":aud") {
            Key::Absent
        } else {
            Key::Unread
        }
    })
}

/// Whether `trust` lets a token from `provider` for `sub` and `aud` assume the role;
/// Err lists the statements baton could not read when none it read allows it.
pub fn trusts(trust: &Value, provider: &Provider, sub: &str, aud: &str) -> Result<bool, String> {
    let mut allowed = false;
    let mut unread = Vec::new();
    for st in statements(trust) {
        let sid = st.get("Sid").and_then(Value::as_str).unwrap_or("(no Sid)");
        let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
        if st.get("NotPrincipal").is_some() || st.get("NotAction").is_some() {
            if deny {
                return Ok(false);
            }
            unread.push(format!("{sid}: NotPrincipal/NotAction is not read"));
            continue;
        }
        let action = ASSUME_WEB_IDENTITY.to_ascii_lowercase();
        if !strings(st.get("Action"))
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &action))
            || !names(st, provider)
        {
            continue;
        }
        match holds(st, provider, sub, aud) {
            Ok(true) if deny => return Ok(false),
            Ok(true) => allowed = true,
            Ok(false) => {}
            Err(_) if deny => return Ok(false),
            Err(why) => unread.push(format!("{sid}: {why}")),
        }
    }
    if allowed || unread.is_empty() {
        Ok(allowed)
    } else {
        Err(unread.join("; "))
    }
}

/// Why a trust policy cannot be given green's statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The document with green's statement is over IAM's limit.
    #[error(
        "the trust policy with green's statement would be {size} characters, over IAM's limit of {limit} (quota \"Role trust policy length\", L-C07B4B0D); raise the quota, or remove statements for clusters that are gone"
    )]
    TooLarge {
        /// Its length without whitespace.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document is not a policy baton can add to.
    #[error("the trust policy has no Statement list baton can add to")]
    Unreadable,
}

/// The length IAM counts: the document as JSON without whitespace.
pub fn size(doc: &Value) -> usize {
    doc.to_string().chars().count()
}

/// `trust` with one more statement letting green's `provider` issue tokens for
/// `subjects` with audience `aud`, every other statement kept as it is. Subjects it
/// trusts already are left out; none left: the document unchanged.
pub fn with_trust(
    trust: &Value,
    provider: &Provider,
    subjects: &[String],
    aud: &str,
    limit: usize,
) -> Result<Value, TrustError> {
    let missing: Vec<&String> = subjects
        .iter()
        .filter(|s| !matches!(trusts(trust, provider, s, aud), Ok(true)))
        .collect();
    if missing.is_empty() {
        return Ok(trust.clone());
    }
    let mut doc = trust.clone();
    let list = match doc.get_mut("Statement") {
        Some(Value::Array(a)) => a,
        Some(s @ Value::Object(_)) => {
            *s = Value::Array(vec![s.clone()]);
            match s {
                Value::Array(a) => a,
                _ => unreachable!("just made an array"),
            }
        }
        _ => return Err(TrustError::Unreadable),
    };
    let sub: Value = match missing.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    list.push(json!({
        "Effect": "Allow",
        "Principal": { "Federated": provider.arn },
        "Action": ASSUME_WEB_IDENTITY,
        "Condition": { "StringEquals": {
            format!("{}:sub", provider.host): sub,
            format!("{}:aud", provider.host): aud,
        }},
    }));
    let size = size(&doc);
    if size > limit {
        return Err(TrustError::TooLarge { size, limit });
    }
    Ok(doc)
}

/// What the planner knows of the IAM roles the apps' pods assume: which of blue's
/// ServiceAccounts name a role, and whether green's pods could assume each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRoles {
    /// `NS/NAME` of blue's ServiceAccounts that name an IAM role → the role's ARN.
    pub accounts: std::collections::BTreeMap<String, String>,
    /// Green's IAM OIDC provider and each role's trust of it, as read; Err: why they
    /// could not be read.
    pub green: Result<crate::preflight::IdentityFacts, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";

    fn blue() -> Provider {
        Provider::of(ACCOUNT, "https://oidc.eks.us-east-1.amazonaws.com/id/B1")
    }

    fn green() -> Provider {
        Provider::of(ACCOUNT, "https://oidc.eks.us-east-1.amazonaws.com/id/G2")
    }

    /// The trust policy eksctl and the EKS guide write for one ServiceAccount.
    fn eks_trust(p: &Provider, sub: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": p.arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{}:sub", p.host): sub, format!("{}:aud", p.host): "sts.amazonaws.com"}}}]})
    }

    #[test]
    fn providers_are_named_as_iam_names_them() {
        assert_eq!(
            blue().arn,
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/B1"
        );
        assert_eq!(blue().host, "oidc.eks.us-east-1.amazonaws.com/id/B1");
    }

    #[test]
    fn a_trust_for_blues_provider_admits_blue_only() {
        let sub = subject("orders", "db");
        let t = eks_trust(&blue(), &sub);
        assert_eq!(trusts(&t, &blue(), &sub, DEFAULT_AUDIENCE), Ok(true));
        assert_eq!(trusts(&t, &green(), &sub, DEFAULT_AUDIENCE), Ok(false));
        assert_eq!(
            trusts(&t, &blue(), &subject("orders", "other"), DEFAULT_AUDIENCE),
            Ok(false)
        );
        assert_eq!(trusts(&t, &blue(), &sub, "other"), Ok(false));
    }

    #[test]
    fn string_like_subjects_and_denies_are_read() {
        let b = blue();
        let t = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Federated": b.arn}, "Action": "sts:*",
             "Condition": {"StringLike": {format!("{}:sub", b.host): "system:serviceaccount:orders:*"}}},
            {"Effect": "Deny", "Principal": {"Federated": b.arn}, "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": {format!("{}:sub", b.host): "system:serviceaccount:orders:bad"}}}]});
        assert_eq!(
            trusts(&t, &b, &subject("orders", "db"), DEFAULT_AUDIENCE),
            Ok(true)
        );
        assert_eq!(
            trusts(&t, &b, &subject("orders", "bad"), DEFAULT_AUDIENCE),
            Ok(false)
        );
        assert_eq!(
            trusts(&t, &b, &subject("web", "db"), DEFAULT_AUDIENCE),
            Ok(false)
        );
    }

    #[test]
    fn a_condition_baton_cannot_read_is_said_not_counted() {
        let b = blue();
        let t = json!({"Statement": [{"Sid": "odd", "Effect": "Allow",
            "Principal": {"Federated": b.arn}, "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]});
        let r = trusts(&t, &b, &subject("orders", "db"), DEFAULT_AUDIENCE);
        assert!(r.as_ref().is_err_and(|e| e.contains("odd")), "{r:?}");
    }

    #[test]
    fn greens_statement_is_added_once_and_blues_kept() {
        let subs = vec![subject("orders", "db"), subject("web", "api")];
        let t = eks_trust(&blue(), &subs[0]);
        let both = with_trust(&t, &green(), &subs, DEFAULT_AUDIENCE, TRUST_POLICY_LIMIT).unwrap();
        for s in &subs {
            assert_eq!(trusts(&both, &green(), s, DEFAULT_AUDIENCE), Ok(true));
        }
        assert_eq!(
            trusts(&both, &blue(), &subs[0], DEFAULT_AUDIENCE),
            Ok(true),
            "blue's statement is kept"
        );
        assert_eq!(both["Statement"].as_array().unwrap().len(), 2);
        // Again: nothing to add.
        assert_eq!(
            with_trust(&both, &green(), &subs, DEFAULT_AUDIENCE, TRUST_POLICY_LIMIT).unwrap(),
            both
        );
    }

    #[test]
    fn a_document_over_the_limit_is_refused_with_its_size() {
        let subs: Vec<String> = (0..60).map(|i| subject("ns", &format!("sa-{i}"))).collect();
        let t = eks_trust(&blue(), &subs[0]);
        match with_trust(&t, &green(), &subs, DEFAULT_AUDIENCE, TRUST_POLICY_LIMIT) {
            Err(TrustError::TooLarge { size, limit }) => {
                assert!(size > limit && limit == 2048, "{size}");
            }
            other => panic!("{other:?}"),
        }
    }
}
