//! Each volume's encryption key at the hand-over (issue 18).
//!
//! A volume encrypted with a customer-managed KMS key attaches only if the principal
//! calling `AttachVolume` (the EBS CSI controller's role) may use the key: EC2 creates a
//! grant for the instance on the caller's behalf (`kms:CreateGrant`, with
//! `kms:GrantIsForAWSResource`) and has the key decrypt the volume's data key
//! (`kms:Decrypt`). Otherwise the attach fails and the volume stays `available` — with the
//! app down, inside the window. [`evaluate`] tells, before the window, whether green's
//! driver role may do both on a key: through the key policy (naming the role, or the
//! account, which then delegates to the role's IAM policies) or through a grant.
//!
//! What it reads, and what it does not: `Allow` and `Deny` statements with `Principal`
//! `*`, an account (`arn:aws:iam::ACCOUNT:root` or `ACCOUNT`) or a role ARN; `Action`
//! and `Resource` with `*`/`?` wildcards; the conditions EC2's calls carry
//! (`kms:GrantIsForAWSResource`, `kms:ViaService`, `kms:CallerAccount`,
//! `aws:PrincipalArn`) under `Bool`, `StringEquals`, `StringEqualsIgnoreCase`,
//! `StringLike` and their `…IfExists` forms. A statement with anything else (another
//! condition key or operator, `NotPrincipal`, `NotAction`, `NotResource`) is not counted
//! as an allow and is listed in [`KeyUse::skipped`]: baton would rather ask for a grant
//! that was not needed than find out in the window. Grants' constraints (encryption
//! context) are not read: EBS's calls carry no encryption context a constraint could
//! refuse. Keys managed by AWS (`aws/ebs`) admit every principal of the account through
//! EC2 and are not evaluated.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conditions::{self, Key as Carried};
use crate::handover::glob;

/// What EC2 does with the caller's permissions on the key when it attaches a volume.
pub const ATTACH_OPERATIONS: [&str; 2] = ["CreateGrant", "Decrypt"];

/// The operations of the grant `baton volumes grant` creates for green's driver role:
/// what the EBS CSI driver's documentation asks for a customer key (attach: CreateGrant
/// and Decrypt; DescribeKey; creating encrypted volumes and snapshots from it:
/// GenerateDataKeyWithoutPlaintext, ReEncryptFrom/ReEncryptTo).
pub const GRANT_OPERATIONS: [&str; 6] = [
    "CreateGrant",
    "Decrypt",
    "DescribeKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
];

/// The name of the grants baton creates (`baton-<green's context>`, sanitized): how
/// `baton volumes grant` finds its own again, and `--revoke` removes only those.
pub fn grant_name(green_context: &str) -> String {
    let safe: String = green_context
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-:/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("{GRANT_NAME_PREFIX}{safe}");
    name.truncate(256);
    name
}

/// The prefix of the names of grants baton creates.
pub const GRANT_NAME_PREFIX: &str = "baton-";

/// A KMS key as read: `DescribeKey`, `GetKeyPolicy` (`default`), `ListGrants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The key's ARN.
    pub arn: String,
    /// `CUSTOMER` or `AWS`.
    pub manager: String,
    /// The key policy (JSON).
    pub policy: String,
    /// Its grants.
    pub grants: Vec<Grant>,
}

/// One grant on a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Its id.
    pub id: String,
    /// Its name (empty when it has none).
    pub name: String,
    /// The grantee principal's ARN.
    pub grantee: String,
    /// The operations it allows (`Decrypt`, `CreateGrant`, …).
    pub operations: Vec<String>,
}

/// Whether a role may use a key for an attach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUse {
    /// The key's ARN.
    pub key: String,
    /// The role's ARN.
    pub role: String,
    /// Managed by AWS: usable by the account's principals through EC2.
    pub aws_managed: bool,
    /// Operations of [`ATTACH_OPERATIONS`] the role may not make (empty: it may attach).
    pub missing: Vec<String>,
    /// How each allowed operation is allowed (`Decrypt: grant baton-green`, …).
    pub via: Vec<String>,
    /// Statements not understood and so not counted, for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl KeyUse {
    /// Whether the role may attach volumes under the key.
    pub fn usable(&self) -> bool {
        self.missing.is_empty()
    }
}

/// An account's id in an ARN (`arn:aws:iam::123456789012:role/x` → `123456789012`).
pub fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
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

/// Who a key policy statement names, for `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// The role itself, or everyone (`*`).
    Role,
    /// The role's account: the statement delegates to its IAM policies.
    Account,
    /// Someone else.
    Other,
}

fn names(statement: &Value, role: &str) -> Names {
    let principals = match statement.get("Principal") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Object(m)) => strings(m.get("AWS")),
        _ => vec![],
    };
    let account = account_of(role);
    let mut out = Names::Other;
    for p in principals {
        if p == "*" || p == role {
            return Names::Role;
        }
        if p == account || p == format!("arn:aws:iam::{account}:root") {
            out = Names::Account;
        }
    }
    out
}

/// The context EC2's calls to KMS carry for an attach by `role` of a volume under `key`.
fn context(key: &str, role: &str) -> Vec<(&'static str, String)> {
    vec![
        ("kms:grantisforawsresource", "true".into()),
        (
            "kms:viaservice",
            format!("ec2.{}.amazonaws.com", region_of(key)),
        ),
        ("kms:calleraccount", account_of(role).into()),
        ("aws:principalarn", role.into()),
    ]
}

/// Whether a statement's conditions hold in `ctx`; a key outside it is one EC2's calls
/// do not carry, unless it is a `kms:` or `aws:` key baton does not model.
fn conditions_hold(statement: &Value, ctx: &[(&str, String)]) -> Result<bool, String> {
    conditions::hold(statement, |k| {
        let lower = k.to_ascii_lowercase();
        match ctx.iter().find(|(c, _)| *c == lower) {
            Some((_, v)) => Carried::Is(v.clone()),
            None if lower.starts_with("kms:") || lower.starts_with("aws:") => Carried::Unread,
            None => Carried::Absent,
        }
    })
}

fn covers(statement: &Value, action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    strings(statement.get("Action"))
        .iter()
        .any(|p| glob(&p.to_ascii_lowercase(), &action))
}

/// One policy's verdict on an action: (allowed, explicitly denied).
fn decide(
    doc: &Value,
    action: &str,
    resource: &str,
    principal: impl Fn(&Value) -> Option<Names>,
    ctx: &[(&str, String)],
    skipped: &mut Vec<String>,
    source: &str,
) -> (Option<Names>, bool) {
    let mut allowed: Option<Names> = None;
    let mut denied = false;
    for st in statements(doc) {
        let sid = st.get("Sid").and_then(Value::as_str).unwrap_or("(no Sid)");
        let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
        if st.get("NotAction").is_some()
            || st.get("NotResource").is_some()
            || st.get("NotPrincipal").is_some()
        {
            skipped.push(format!(
                "{source} {sid}: NotAction/NotResource/NotPrincipal is not evaluated"
            ));
            continue;
        }
        if !covers(st, action) {
            continue;
        }
        let resources = strings(st.get("Resource"));
        if !resources.iter().any(|r| glob(r, resource)) {
            continue;
        }
        let Some(who) = principal(st) else { continue };
        match conditions_hold(st, ctx) {
            Ok(true) if deny => denied = true,
            Ok(true) => {
                allowed = match (allowed, who) {
                    (Some(Names::Role), _) | (_, Names::Role) => Some(Names::Role),
                    _ => Some(who),
                }
            }
            Ok(false) => {}
            Err(why) => {
                if deny {
                    // A Deny whose conditions are not understood may apply: count it.
                    denied = true;
                }
                skipped.push(format!("{source} {sid}: {why}"));
            }
        }
    }
    (allowed, denied)
}

/// Whether `role`, whose IAM policy documents are `documents`, may attach volumes
/// encrypted with `key`.
pub fn evaluate(key: &Key, role: &str, documents: &[Value]) -> KeyUse {
    let mut out = KeyUse {
        key: key.arn.clone(),
        role: role.to_string(),
        aws_managed: key.manager == "AWS",
        ..KeyUse::default()
    };
    if out.aws_managed {
        return out;
    }
    let ctx = context(&key.arn, role);
    let policy: Value = match serde_json::from_str(&key.policy) {
        Ok(v) => v,
        Err(e) => {
            out.skipped.push(format!("the key policy is not JSON: {e}"));
            Value::Null
        }
    };
    for op in ATTACH_OPERATIONS {
        let action = format!("kms:{op}");
        let (by_key, key_denies) = decide(
            &policy,
            &action,
            &key.arn,
            |st| match names(st, role) {
                Names::Other => None,
                n => Some(n),
            },
            &ctx,
            &mut out.skipped,
            "key policy",
        );
        let mut iam_allows = false;
        let mut iam_denies = false;
        for (i, doc) in documents.iter().enumerate() {
            let (a, d) = decide(
                doc,
                &action,
                &key.arn,
                |_| Some(Names::Role),
                &ctx,
                &mut out.skipped,
                &format!("IAM policy {}", i + 1),
            );
            iam_allows |= a.is_some();
            iam_denies |= d;
        }
        let grant = key
            .grants
            .iter()
            .find(|g| g.grantee == role && g.operations.iter().any(|o| o == op));
        let via = if key_denies || iam_denies {
            None
        } else if by_key == Some(Names::Role) {
            Some("the key policy".to_string())
        } else if by_key == Some(Names::Account) && iam_allows {
            Some("the key policy's account delegation and the role's IAM policy".to_string())
        } else {
            grant.map(|g| {
                if g.name.is_empty() {
                    format!("grant {}", g.id)
                } else {
                    format!("grant {}", g.name)
                }
            })
        };
        match via {
            Some(v) => out.via.push(format!("{action}: {v}")),
            None => out.missing.push(action),
        }
    }
    out.skipped.sort();
    out.skipped.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::123456789012:role/green-ebs-csi";
    const BLUE: &str = "arn:aws:iam::123456789012:role/blue-ebs-csi";
    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/k";

    fn key(policy: Value, grants: Vec<Grant>) -> Key {
        Key {
            arn: KEY.into(),
            manager: "CUSTOMER".into(),
            policy: policy.to_string(),
            grants,
        }
    }

    /// KMS's default key-user statements, naming `roles`.
    fn admitting(roles: &[&str]) -> Value {
        json!({"Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "use", "Effect": "Allow", "Principal": {"AWS": roles},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
             "Resource": "*"},
            {"Sid": "attach", "Effect": "Allow", "Principal": {"AWS": roles},
             "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
        ]})
    }

    #[test]
    fn a_key_policy_naming_only_blue_leaves_green_out() {
        let u = evaluate(&key(admitting(&[BLUE]), vec![]), ROLE, &[]);
        assert_eq!(u.missing, vec!["kms:CreateGrant", "kms:Decrypt"]);
        assert!(evaluate(&key(admitting(&[BLUE]), vec![]), BLUE, &[]).usable());
    }

    #[test]
    fn the_account_delegates_to_the_roles_iam_policy() {
        let iam = json!({"Statement": [{"Effect": "Allow",
            "Action": ["kms:CreateGrant", "kms:Decrypt"], "Resource": KEY}]});
        let u = evaluate(&key(admitting(&[BLUE]), vec![]), ROLE, &[iam]);
        assert!(u.usable(), "{u:?}");
        let elsewhere = json!({"Statement": [{"Effect": "Allow",
            "Action": "kms:*", "Resource": "arn:aws:kms:us-east-1:123456789012:key/other"}]});
        assert!(!evaluate(&key(admitting(&[BLUE]), vec![]), ROLE, &[elsewhere]).usable());
    }

    #[test]
    fn a_grant_for_both_operations_admits_the_grantee_only() {
        let g = Grant {
            id: "g1".into(),
            name: "baton-green".into(),
            grantee: ROLE.into(),
            operations: GRANT_OPERATIONS.iter().map(|s| s.to_string()).collect(),
        };
        let u = evaluate(&key(admitting(&[BLUE]), vec![g.clone()]), ROLE, &[]);
        assert!(u.usable(), "{u:?}");
        assert!(u.via.iter().all(|v| v.ends_with("grant baton-green")));
        let decrypt_only = Grant {
            operations: vec!["Decrypt".into()],
            ..g
        };
        let u = evaluate(&key(admitting(&[BLUE]), vec![decrypt_only]), ROLE, &[]);
        assert_eq!(u.missing, vec!["kms:CreateGrant"]);
    }

    #[test]
    fn an_explicit_deny_beats_a_grant() {
        let mut p = admitting(&[ROLE]);
        p["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Sid": "no", "Effect": "Deny",
            "Principal": {"AWS": ROLE}, "Action": "kms:Decrypt", "Resource": "*"}));
        let g = Grant {
            id: "g".into(),
            name: String::new(),
            grantee: ROLE.into(),
            operations: vec!["Decrypt".into()],
        };
        assert_eq!(
            evaluate(&key(p, vec![g]), ROLE, &[]).missing,
            vec!["kms:Decrypt"]
        );
    }

    #[test]
    fn conditions_baton_cannot_read_do_not_count_as_allows() {
        let p = json!({"Statement": [{"Sid": "odd", "Effect": "Allow", "Principal": {"AWS": ROLE},
            "Action": "kms:*", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]});
        let u = evaluate(&key(p, vec![]), ROLE, &[]);
        assert!(!u.usable());
        assert!(u.skipped.iter().any(|s| s.contains("odd")), "{u:?}");
        let via_ec2 = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE},
            "Action": "kms:*", "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}}]});
        assert!(evaluate(&key(via_ec2, vec![]), ROLE, &[]).usable());
        let other_region = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE},
            "Action": "kms:*", "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "ec2.eu-west-1.amazonaws.com"}}}]});
        assert!(!evaluate(&key(other_region, vec![]), ROLE, &[]).usable());
    }

    #[test]
    fn aws_managed_keys_are_not_evaluated() {
        let mut k = key(json!({}), vec![]);
        k.manager = "AWS".into();
        assert!(evaluate(&k, ROLE, &[]).usable());
    }

    #[test]
    fn grant_names_are_kms_safe() {
        assert_eq!(
            grant_name("arn:aws:eks:us-east-1:1:cluster/green"),
            "baton-arn:aws:eks:us-east-1:1:cluster/green"
        );
        assert_eq!(grant_name("kind green@x"), "baton-kind-green-x");
    }
}
