//! A small evaluator of AWS authorization for the calls the emulated EBS CSI controller
//! makes on behalf of its IAM role (moto stores IAM policies and KMS key policies but
//! enforces none). It decides as AWS's policy evaluation logic does for one principal
//! in one account
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>):
//! an explicit Deny in any applicable policy wins, else an Allow from any, else the
//! implicit deny. What it reads:
//!
//! - identity policies (the role's attached managed and inline policies): `Effect`,
//!   `Action`/`NotAction` with `*` and `?` wildcards (service prefix and name matched
//!   case-insensitively), `Resource`/`NotResource` ARN patterns, and `Condition` with
//!   the operators `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringLike`, `StringNotLike`, `Bool`, `Null`, their `…IfExists` forms and the
//!   `ForAnyValue:`/`ForAllValues:` set qualifiers; policy variables `${…}` (e.g.
//!   `${aws:PrincipalTag/eks-cluster-name}`) in condition values and resources;
//! - KMS key policies: statements whose `Principal` is `*`, an account
//!   (`arn:aws:iam::ACCT:root` or `ACCT`, which delegates to the account's IAM
//!   policies) or a role ARN; and grants (grantee principal and operations);
//! - role trust policies for `sts:AssumeRoleWithWebIdentity` (IRSA): statements whose
//!   `Principal` is `*` or whose `Principal.Federated` names the token's IAM OIDC
//!   provider, with the token's claims as condition keys (`ISSUER:sub`, `ISSUER:aud`).
//!
//! Not modelled: service control and resource control policies, permission boundaries,
//! session policies, `NotPrincipal`, cross-account access, trust policies for other
//! principals (`AWS`, `Service`) and other `sts:` actions, numeric/date/IP/ARN
//! condition operators, condition keys other than those the caller puts in the request
//! context, grant constraints and grant tokens, and the AWS managed key `aws/ebs`
//! (whose policy admits every principal of the account through EC2).

use std::collections::BTreeMap;

use serde_json::Value;

/// A request's context keys → values (multi-valued keys such as `aws:TagKeys` have
/// several). Keys are matched case-insensitively, as IAM does.
pub type Context = BTreeMap<String, Vec<String>>;

/// The outcome of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An Allow applied and no Deny did.
    Allow,
    /// No Allow applied.
    ImplicitDeny,
    /// A Deny applied.
    ExplicitDeny,
}

impl Decision {
    /// Whether the request goes through.
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

/// One request: who does what on which resource, with which context.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `service:Action`, e.g. `ec2:AttachVolume`.
    pub action: &'a str,
    /// The resource ARN.
    pub resource: &'a str,
    /// The request context (resource tags, principal tags, …).
    pub context: &'a Context,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => Vec::new(),
    }
}

/// `*` matches any run of characters, `?` any one.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn lookup<'c>(context: &'c Context, key: &str) -> Option<&'c Vec<String>> {
    context
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Replaces `${key}` by the context's (single) value; `None` when a variable has no
/// value, which makes the value match nothing (as AWS treats an unresolvable variable).
fn substitute(value: &str, context: &Context) -> Option<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let key = &after[..end];
        match key {
            "*" => out.push('*'),
            "?" => out.push('?'),
            "$" => out.push('$'),
            _ => out.push_str(lookup(context, key)?.first()?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Whether one condition operator block (`"StringEquals": {key: values}`) holds.
fn operator_holds(op: &str, block: &Value, context: &Context) -> Result<bool, String> {
    let (set, op) = if let Some(o) = op.strip_prefix("ForAnyValue:") {
        (Some(true), o)
    } else if let Some(o) = op.strip_prefix("ForAllValues:") {
        (Some(false), o)
    } else {
        (None, op)
    };
    let (op, if_exists) = match op.strip_suffix("IfExists") {
        Some(o) => (o, true),
        None => (op, false),
    };
    let Value::Object(keys) = block else {
        return Err(format!("condition operator {op} is not an object"));
    };
    for (key, wanted) in keys {
        let wanted = strings(wanted);
        let present = lookup(context, key).filter(|v| !v.is_empty());
        if op == "Null" {
            let want_null = wanted.iter().any(|w| w == "true");
            if want_null != present.is_none() {
                return Ok(false);
            }
            continue;
        }
        let negated = matches!(op, "StringNotEquals" | "StringNotLike");
        let Some(values) = present else {
            // A missing key: ForAllValues holds over the empty set; a negated operator
            // holds; …IfExists holds; everything else fails.
            if set == Some(false) || negated || if_exists {
                continue;
            }
            return Ok(false);
        };
        let one = |v: &str| -> Result<bool, String> {
            let resolved: Vec<String> = wanted
                .iter()
                .filter_map(|w| substitute(w, context))
                .collect();
            Ok(match op {
                "StringEquals" => resolved.iter().any(|w| w == v),
                "StringNotEquals" => !resolved.iter().any(|w| w == v),
                "StringEqualsIgnoreCase" => resolved.iter().any(|w| w.eq_ignore_ascii_case(v)),
                "StringLike" => resolved.iter().any(|w| glob(w, v, false)),
                "StringNotLike" => !resolved.iter().any(|w| glob(w, v, false)),
                "Bool" => resolved.iter().any(|w| w.eq_ignore_ascii_case(v)),
                other => return Err(format!("condition operator {other} is not modelled")),
            })
        };
        let holds = match set {
            Some(true) => values
                .iter()
                .map(|v| one(v))
                .try_fold(false, |a, r| Ok::<_, String>(a || r?))?,
            Some(false) => values
                .iter()
                .map(|v| one(v))
                .try_fold(true, |a, r| Ok::<_, String>(a && r?))?,
            // A single-valued operator on a key with several values: any of them.
            None => values
                .iter()
                .map(|v| one(v))
                .try_fold(false, |a, r| Ok::<_, String>(a || r?))?,
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

fn conditions_hold(statement: &Value, context: &Context) -> Result<bool, String> {
    let Value::Object(ops) = &statement["Condition"] else {
        return Ok(true);
    };
    for (op, block) in ops {
        if !operator_holds(op, block, context)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn action_matches(statement: &Value, action: &str) -> bool {
    if !statement["Action"].is_null() {
        strings(&statement["Action"])
            .iter()
            .any(|a| glob(a, action, true))
    } else if !statement["NotAction"].is_null() {
        !strings(&statement["NotAction"])
            .iter()
            .any(|a| glob(a, action, true))
    } else {
        false
    }
}

fn resource_matches(statement: &Value, resource: &str, context: &Context) -> bool {
    let matches = |v: &Value| {
        strings(v)
            .iter()
            .filter_map(|r| substitute(r, context))
            .any(|r| glob(&r, resource, false))
    };
    if !statement["Resource"].is_null() {
        matches(&statement["Resource"])
    } else if !statement["NotResource"].is_null() {
        !matches(&statement["NotResource"])
    } else {
        // Key policies name no resource: the key itself.
        true
    }
}

/// Which statements of `policies` (with their policy's index) apply to the request,
/// and how the request is decided by them alone.
pub fn evaluate(policies: &[Value], req: &Request<'_>) -> Result<Decision, String> {
    evaluate_where(policies, req, |_| true)
}

/// As [`evaluate`], counting only the statements `applies` accepts (a key policy's
/// statements for one principal).
fn evaluate_where(
    policies: &[Value],
    req: &Request<'_>,
    applies: impl Fn(&Value) -> bool,
) -> Result<Decision, String> {
    let mut allowed = false;
    for doc in policies {
        for s in statements(doc) {
            if !applies(s)
                || !action_matches(s, req.action)
                || !resource_matches(s, req.resource, req.context)
                || !conditions_hold(s, req.context)?
            {
                continue;
            }
            match s["Effect"].as_str() {
                Some("Deny") => return Ok(Decision::ExplicitDeny),
                Some("Allow") => allowed = true,
                other => return Err(format!("statement effect {other:?} is not Allow or Deny")),
            }
        }
    }
    Ok(if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    })
}

/// The account in an ARN (`arn:aws:iam::123456789012:role/x` → `123456789012`).
pub fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

/// Who a key policy statement's `Principal` names, as it concerns `principal` (a role
/// ARN): the role itself (or `*`), or its account (delegation to IAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Principal,
    Account,
    Other,
}

fn named(statement: &Value, principal: &str) -> Named {
    let p = &statement["Principal"];
    let names = if p.is_string() {
        strings(p)
    } else {
        strings(&p["AWS"])
    };
    let account = account_of(principal);
    let mut out = Named::Other;
    for n in names {
        if n == "*" || n == principal {
            return Named::Principal;
        }
        if n == account || n == format!("arn:aws:iam::{account}:root") {
            out = Named::Account;
        }
    }
    out
}

/// Whether a trust policy statement's `Principal` is `*` or federates `provider` (an
/// IAM OIDC provider ARN; `{"Federated": "*"}` names any).
fn federates(statement: &Value, provider: &str) -> bool {
    let p = &statement["Principal"];
    if p.is_string() {
        return strings(p).iter().any(|n| n == "*");
    }
    strings(&p["Federated"])
        .iter()
        .any(|n| n == "*" || n == provider)
}

/// Decides `sts:AssumeRoleWithWebIdentity` on a role (`req.resource`, its ARN) for a
/// token from the IAM OIDC provider `provider`, by the role's trust policy `trust`, as
/// STS does once the token and the provider have been checked
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-idp_oidc.html>):
/// only statements naming that provider (or `*`) count; the token's claims are the
/// context (`ISSUER:sub`, `ISSUER:aud`, with ISSUER the provider's host and path); a
/// Deny wins, and without an Allow the role is not assumed.
pub fn evaluate_trust(
    trust: &Value,
    provider: &str,
    req: &Request<'_>,
) -> Result<Decision, String> {
    evaluate_where(std::slice::from_ref(trust), req, |s| federates(s, provider))
}

/// One KMS grant: its grantee and operations.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The grantee principal ARN.
    pub grantee: String,
    /// Operations (`Decrypt`, `CreateGrant`, …).
    pub operations: Vec<String>,
}

/// Decides a KMS request (`kms:CreateGrant`, `kms:Decrypt`, …) by `principal` (a role
/// ARN) on a key, as KMS does for a same-account caller
/// (<https://docs.aws.amazon.com/kms/latest/developerguide/determining-access.html>):
/// a Deny in the key policy or the IAM policies wins; the key policy allows the role
/// itself; a key policy statement allowing the account delegates to the IAM policies,
/// which must then allow it; a grant to the role for that operation allows it.
pub fn evaluate_kms(
    key_policy: &Value,
    iam_policies: &[Value],
    grants: &[Grant],
    principal: &str,
    req: &Request<'_>,
) -> Result<Decision, String> {
    let direct = evaluate_where(std::slice::from_ref(key_policy), req, |s| {
        named(s, principal) == Named::Principal
    })?;
    let delegated = evaluate_where(std::slice::from_ref(key_policy), req, |s| {
        named(s, principal) == Named::Account
    })?;
    let iam = evaluate(iam_policies, req)?;
    if [&direct, &delegated, &iam]
        .iter()
        .any(|d| **d == Decision::ExplicitDeny)
    {
        return Ok(Decision::ExplicitDeny);
    }
    let operation = req.action.strip_prefix("kms:").unwrap_or(req.action);
    let granted = grants
        .iter()
        .any(|g| g.grantee == principal && g.operations.iter().any(|o| o == operation));
    let allowed = direct.allowed() || (delegated.allowed() && iam.allowed()) || granted;
    Ok(if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CLUSTER_SCOPED: &str =
        include_str!("../policies/AmazonEBSCSIDriverEKSClusterScopedPolicy.json");
    const V2: &str = include_str!("../policies/AmazonEBSCSIDriverPolicyV2.json");
    const CLASSIC: &str = include_str!("../policies/AmazonEBSCSIDriverPolicy.json");

    const VOL: &str = "arn:aws:ec2:us-east-1:123456789012:volume/vol-1";
    const INST: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-1";

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        let mut c = Context::new();
        for (k, v) in pairs {
            c.entry(k.to_string()).or_default().push(v.to_string());
        }
        c
    }

    fn decide(doc: &str, action: &str, resource: &str, c: &Context) -> Decision {
        let p: Value = serde_json::from_str(doc).unwrap();
        evaluate(
            &[p],
            &Request {
                action,
                resource,
                context: c,
            },
        )
        .unwrap()
    }

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("arn:aws:ec2:*:*:volume/*", VOL, false));
        assert!(!glob("arn:aws:ec2:*:*:volume/*", INST, false));
        assert!(glob("ec2:*Volume", "ec2:AttachVolume", true));
        assert!(glob("EC2:attachvolume", "ec2:AttachVolume", true));
        assert!(glob("vol-?", "vol-1", false));
        assert!(!glob("vol-?", "vol-12", false));
    }

    #[test]
    fn cluster_scoped_policy_allows_its_clusters_volume_and_instance() {
        let c = ctx(&[
            ("aws:PrincipalTag/eks-cluster-name", "green"),
            ("ec2:ResourceTag/ebs.csi.aws.com/cluster-name", "green"),
            ("aws:ResourceTag/ebs.csi.aws.com/cluster-name", "green"),
        ]);
        assert_eq!(
            decide(CLUSTER_SCOPED, "ec2:AttachVolume", VOL, &c),
            Decision::Allow
        );
        let i = ctx(&[
            ("aws:PrincipalTag/eks-cluster-name", "green"),
            ("ec2:ResourceTag/eks:cluster-name", "green"),
        ]);
        assert_eq!(
            decide(CLUSTER_SCOPED, "ec2:AttachVolume", INST, &i),
            Decision::Allow
        );
        assert_eq!(
            decide(CLUSTER_SCOPED, "ec2:DetachVolume", INST, &i),
            Decision::Allow
        );
    }

    #[test]
    fn cluster_scoped_policy_denies_another_clusters_volume_and_instance() {
        let c = ctx(&[
            ("aws:PrincipalTag/eks-cluster-name", "green"),
            ("ec2:ResourceTag/ebs.csi.aws.com/cluster-name", "blue"),
        ]);
        assert_eq!(
            decide(CLUSTER_SCOPED, "ec2:AttachVolume", VOL, &c),
            Decision::ImplicitDeny
        );
        let i = ctx(&[
            ("aws:PrincipalTag/eks-cluster-name", "green"),
            ("ec2:ResourceTag/eks:cluster-name", "blue"),
        ]);
        assert_eq!(
            decide(CLUSTER_SCOPED, "ec2:AttachVolume", INST, &i),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn an_untagged_principal_matches_nothing_through_a_variable() {
        // ${aws:PrincipalTag/eks-cluster-name} unresolved: even a volume tagged with
        // an empty cluster name is not the role's.
        let c = ctx(&[("ec2:ResourceTag/ebs.csi.aws.com/cluster-name", "")]);
        assert_eq!(
            decide(CLUSTER_SCOPED, "ec2:AttachVolume", VOL, &c),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn v2_policy_admits_driver_and_in_tree_volumes_only() {
        let csi = ctx(&[("ec2:ResourceTag/ebs.csi.aws.com/cluster", "true")]);
        assert_eq!(decide(V2, "ec2:AttachVolume", VOL, &csi), Decision::Allow);
        let in_tree = ctx(&[(
            "ec2:ResourceTag/kubernetes.io/created-for/pvc/name",
            "data-x-0",
        )]);
        assert_eq!(
            decide(V2, "ec2:DetachVolume", VOL, &in_tree),
            Decision::Allow
        );
        let hand_made = ctx(&[("ec2:ResourceTag/Name", "db")]);
        assert_eq!(
            decide(V2, "ec2:AttachVolume", VOL, &hand_made),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(V2, "ec2:AttachVolume", INST, &Context::new()),
            Decision::Allow
        );
    }

    #[test]
    fn classic_policy_has_no_tag_conditions_on_attach() {
        assert_eq!(
            decide(CLASSIC, "ec2:AttachVolume", VOL, &Context::new()),
            Decision::Allow
        );
        assert_eq!(
            decide(CLASSIC, "ec2:DetachVolume", INST, &Context::new()),
            Decision::Allow
        );
        assert_eq!(
            decide(
                CLASSIC,
                "kms:CreateGrant",
                "arn:aws:kms:us-east-1:123456789012:key/k",
                &Context::new()
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn explicit_deny_wins_and_default_is_deny() {
        let allow = json!({"Statement": {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}});
        let deny = json!({"Statement": [{"Effect": "Deny", "Action": "ec2:AttachVolume", "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/locked": "yes"}}}]});
        let req = |c: &Context, p: &[Value]| {
            evaluate(
                p,
                &Request {
                    action: "ec2:AttachVolume",
                    resource: VOL,
                    context: c,
                },
            )
            .unwrap()
        };
        let locked = ctx(&[("aws:ResourceTag/locked", "yes")]);
        assert_eq!(
            req(&locked, &[allow.clone(), deny.clone()]),
            Decision::ExplicitDeny
        );
        assert_eq!(
            req(&Context::new(), &[allow.clone(), deny]),
            Decision::Allow
        );
        assert_eq!(req(&Context::new(), &[]), Decision::ImplicitDeny);
        let not_action =
            json!({"Statement": {"Effect": "Allow", "NotAction": "ec2:Attach*", "Resource": "*"}});
        assert_eq!(req(&Context::new(), &[not_action]), Decision::ImplicitDeny);
    }

    #[test]
    fn tag_key_sets_and_null_hold_as_documented() {
        let p = json!({"Statement": {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
            "Condition": {"Null": {"aws:TagKeys": "false"},
                "ForAllValues:StringNotEquals": {"aws:TagKeys": ["ebs.csi.aws.com/cluster-name"]}}}});
        let req = |c: &Context| {
            evaluate(
                std::slice::from_ref(&p),
                &Request {
                    action: "ec2:CreateTags",
                    resource: VOL,
                    context: c,
                },
            )
            .unwrap()
        };
        assert_eq!(req(&ctx(&[("aws:TagKeys", "team")])), Decision::Allow);
        assert_eq!(
            req(&ctx(&[
                ("aws:TagKeys", "team"),
                ("aws:TagKeys", "ebs.csi.aws.com/cluster-name")
            ])),
            Decision::ImplicitDeny
        );
        assert_eq!(
            req(&Context::new()),
            Decision::ImplicitDeny,
            "Null false needs the key"
        );
        let any = json!({"Statement": {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
            "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["kubernetes.io/*"]}}}});
        let req_any = |c: &Context| {
            evaluate(
                std::slice::from_ref(&any),
                &Request {
                    action: "ec2:CreateTags",
                    resource: VOL,
                    context: c,
                },
            )
            .unwrap()
        };
        assert_eq!(
            req_any(&ctx(&[
                ("aws:TagKeys", "a"),
                ("aws:TagKeys", "kubernetes.io/x")
            ])),
            Decision::Allow
        );
        assert_eq!(req_any(&Context::new()), Decision::ImplicitDeny);
    }

    #[test]
    fn missing_keys_fail_positive_operators_and_pass_negated_ones() {
        let p = |op: &str| {
            json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {op: {"aws:ResourceTag/team": "a"}}}})
        };
        let d = |op: &str| {
            evaluate(
                &[p(op)],
                &Request {
                    action: "ec2:AttachVolume",
                    resource: VOL,
                    context: &Context::new(),
                },
            )
            .unwrap()
        };
        assert_eq!(d("StringEquals"), Decision::ImplicitDeny);
        assert_eq!(d("StringNotEquals"), Decision::Allow);
        assert_eq!(d("StringEqualsIfExists"), Decision::Allow);
        assert!(
            evaluate(
                &[p("NumericEquals")],
                &Request {
                    action: "x",
                    resource: VOL,
                    context: &ctx(&[("aws:ResourceTag/team", "1")])
                }
            )
            .is_err(),
            "an unmodelled operator is an error, never a silent allow"
        );
    }

    const BLUE_ISSUER: &str =
        "oidc.eks.us-east-1.amazonaws.com/id/B1B1B1B1B1B1B1B1B1B1B1B1B1B1B1B1";
    const GREEN_ISSUER: &str =
        "oidc.eks.us-east-1.amazonaws.com/id/6E6E6E6E6E6E6E6E6E6E6E6E6E6E6E6E";
    const APP_ROLE: &str = "arn:aws:iam::123456789012:role/orders";

    fn provider(issuer: &str) -> String {
        format!("arn:aws:iam::123456789012:oidc-provider/{issuer}")
    }

    /// The trust policy eksctl writes for one ServiceAccount of one cluster.
    fn irsa_trust(issuer: &str, op: &str, sub: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": provider(issuer)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {op: {format!("{issuer}:sub"): sub,
                               format!("{issuer}:aud"): "sts.amazonaws.com"}}}]})
    }

    /// A token of `issuer` for ServiceAccount `sub`, against `trust`.
    fn assume(trust: &Value, issuer: &str, sub: &str) -> Decision {
        let c = ctx(&[
            (&format!("{issuer}:sub"), sub),
            (&format!("{issuer}:aud"), "sts.amazonaws.com"),
        ]);
        evaluate_trust(
            trust,
            &provider(issuer),
            &Request {
                action: "sts:AssumeRoleWithWebIdentity",
                resource: APP_ROLE,
                context: &c,
            },
        )
        .unwrap()
    }

    const ORDERS_SA: &str = "system:serviceaccount:orders:orders-db";

    #[test]
    fn a_trust_policy_admits_its_own_clusters_service_account() {
        let t = irsa_trust(BLUE_ISSUER, "StringEquals", ORDERS_SA);
        assert_eq!(assume(&t, BLUE_ISSUER, ORDERS_SA), Decision::Allow);
    }

    #[test]
    fn another_clusters_issuer_is_implicitly_denied() {
        let t = irsa_trust(BLUE_ISSUER, "StringEquals", ORDERS_SA);
        assert_eq!(assume(&t, GREEN_ISSUER, ORDERS_SA), Decision::ImplicitDeny);
    }

    #[test]
    fn another_service_account_is_implicitly_denied() {
        let t = irsa_trust(BLUE_ISSUER, "StringEquals", ORDERS_SA);
        assert_eq!(
            assume(&t, BLUE_ISSUER, "system:serviceaccount:orders:default"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn string_like_admits_every_service_account_of_a_namespace() {
        let t = irsa_trust(BLUE_ISSUER, "StringLike", "system:serviceaccount:orders:*");
        assert_eq!(assume(&t, BLUE_ISSUER, ORDERS_SA), Decision::Allow);
        assert_eq!(
            assume(&t, BLUE_ISSUER, "system:serviceaccount:billing:api"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn a_deny_in_the_trust_policy_wins() {
        let mut t = irsa_trust(BLUE_ISSUER, "StringLike", "system:serviceaccount:orders:*");
        t["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Deny",
            "Principal": {"Federated": provider(BLUE_ISSUER)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {format!("{BLUE_ISSUER}:sub"): ORDERS_SA}}}));
        assert_eq!(assume(&t, BLUE_ISSUER, ORDERS_SA), Decision::ExplicitDeny);
        assert_eq!(
            assume(&t, BLUE_ISSUER, "system:serviceaccount:orders:web"),
            Decision::Allow
        );
    }

    #[test]
    fn statements_for_other_principals_do_not_count() {
        let t = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:*"}]});
        assert_eq!(assume(&t, BLUE_ISSUER, ORDERS_SA), Decision::ImplicitDeny);
        let any = json!({"Statement": {"Effect": "Allow", "Principal": {"Federated": "*"},
            "Action": "sts:AssumeRoleWithWebIdentity"}});
        assert_eq!(assume(&any, GREEN_ISSUER, ORDERS_SA), Decision::Allow);
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/blue-ebs-csi";
    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/k";

    fn kms(key_policy: Value, iam: &[Value], grants: &[Grant], principal: &str) -> Decision {
        let c = ctx(&[("kms:GrantIsForAWSResource", "true")]);
        evaluate_kms(
            &key_policy,
            iam,
            grants,
            principal,
            &Request {
                action: "kms:CreateGrant",
                resource: KEY,
                context: &c,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_key_policy_naming_the_role_admits_it_and_no_other() {
        let kp = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE},
            "Action": ["kms:CreateGrant", "kms:Decrypt"], "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}]});
        assert_eq!(kms(kp.clone(), &[], &[], ROLE), Decision::Allow);
        assert_eq!(
            kms(kp, &[], &[], "arn:aws:iam::123456789012:role/green-ebs-csi"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn account_delegation_needs_an_iam_allow() {
        let kp = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*", "Resource": "*"}]});
        let iam = json!({"Statement": [{"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": KEY}]});
        assert_eq!(kms(kp.clone(), &[], &[], ROLE), Decision::ImplicitDeny);
        assert_eq!(kms(kp.clone(), &[iam], &[], ROLE), Decision::Allow);
        let other_account = "arn:aws:iam::999999999999:role/x";
        let iam = json!({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]});
        assert_eq!(kms(kp, &[iam], &[], other_account), Decision::ImplicitDeny);
    }

    #[test]
    fn a_grant_for_the_operation_admits_the_grantee() {
        let kp = json!({"Statement": []});
        let g = Grant {
            grantee: ROLE.into(),
            operations: vec!["CreateGrant".into(), "Decrypt".into()],
        };
        assert_eq!(
            kms(kp.clone(), &[], std::slice::from_ref(&g), ROLE),
            Decision::Allow
        );
        let g = Grant {
            grantee: ROLE.into(),
            operations: vec!["Decrypt".into()],
        };
        assert_eq!(kms(kp, &[], &[g], ROLE), Decision::ImplicitDeny);
    }
}
