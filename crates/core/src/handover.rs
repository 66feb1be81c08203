//! Each volume's ownership tags at the hand-over (issue 18).
//!
//! The EBS CSI driver's IAM policy may let it attach and detach only volumes tagged for
//! its cluster (DESIGN.md §6): `AmazonEBSCSIDriverPolicy` has no tag condition,
//! `AmazonEBSCSIDriverPolicyV2` wants `ebs.csi.aws.com/cluster=true` (or, for CSI-migrated
//! in-tree volumes, `kubernetes.io/created-for/pvc/name`), and
//! `AmazonEBSCSIDriverEKSClusterScopedPolicy` wants `ebs.csi.aws.com/cluster-name` equal to
//! the principal's `eks-cluster-name` tag. [`access`] reads what a driver role's policy
//! documents demand of a volume; [`plan_change`] decides the tag change green's driver
//! needs on an app's volumes (and keeps blue's values for rollback); [`foreign_owners`]
//! finds ownership tags naming a cluster that is neither blue nor green.
//!
//! The change is made in the window only: re-tagged while blue still holds a volume,
//! blue's driver could no longer detach it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::world::Tags;

/// The tag the EBS CSI driver writes with `--k8s-tag-cluster-id`, which the cluster-scoped
/// policy compares with the principal's `eks-cluster-name`.
pub const CLUSTER_NAME_TAG: &str = "ebs.csi.aws.com/cluster-name";
/// The tag the driver writes on every volume it creates (`AmazonEBSCSIDriverPolicyV2`).
pub const CSI_CLUSTER_TAG: &str = "ebs.csi.aws.com/cluster";
/// The in-tree cloud provider's ownership tag, `kubernetes.io/cluster/<name>`.
pub const CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";
/// The in-tree cloud provider's legacy ownership tag, valued with the cluster's name.
pub const LEGACY_CLUSTER_TAG: &str = "KubernetesCluster";

/// The actions the hand-over needs of a driver: green's attaches, blue's detaches.
const ATTACH: &str = "ec2:AttachVolume";
const DETACH: &str = "ec2:DetachVolume";
/// A volume's ARN as a statement's `Resource` patterns are matched against.
const VOLUME_ARN: &str = "arn:aws:ec2:region:account:volume/vol-0";

/// What a driver's policies demand of a volume's tags before it may attach and detach
/// it. Each list holds alternatives, any one of which suffices; an alternative maps a
/// tag key to the value it must have (`*` and `?` as in `StringLike`). An empty
/// alternative: any volume. No alternative: none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// For `ec2:AttachVolume`.
    pub attach: Vec<Tags>,
    /// For `ec2:DetachVolume`.
    pub detach: Vec<Tags>,
    /// What was not understood and left out (a statement with `NotAction`, a condition
    /// key that is not a resource tag, an unresolved `${aws:PrincipalTag/…}`), for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl Access {
    /// Whether a volume with these tags may be attached and detached.
    pub fn allows(&self, tags: &Tags) -> bool {
        self.attach.iter().any(|a| satisfied(a, tags))
            && self.detach.iter().any(|a| satisfied(a, tags))
    }

    /// Whether any volume may be (the classic policy).
    pub fn unrestricted(&self) -> bool {
        self.attach.iter().any(Tags::is_empty) && self.detach.iter().any(Tags::is_empty)
    }

    /// The conditions for people: `ebs.csi.aws.com/cluster=true or …`.
    pub fn describe(&self) -> String {
        if self.unrestricted() {
            return "any volume".into();
        }
        let alts: Vec<String> = self.attach.iter().map(show).collect();
        if alts.is_empty() {
            "no volume (no statement allows ec2:AttachVolume on volumes)".into()
        } else {
            format!("volumes tagged {}", alts.join(" or "))
        }
    }
}

fn show(t: &Tags) -> String {
    if t.is_empty() {
        return "(anything)".into();
    }
    t.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn satisfied(required: &Tags, tags: &Tags) -> bool {
    required
        .iter()
        .all(|(k, v)| tags.get(k).is_some_and(|t| glob(v, t)))
}

/// IAM's wildcard match (`*` any run, `?` one character), case-sensitive.
pub(crate) fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::Bool(b)) => vec![b.to_string()],
        _ => vec![],
    }
}

/// Replaces `${aws:PrincipalTag/K}` with the principal's tag K; None when it lacks one.
fn resolve(value: &str, principal: &Tags) -> Option<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}')? + at;
        let var = &rest[at + 2..end];
        let key = var.strip_prefix("aws:PrincipalTag/")?;
        out.push_str(principal.get(key)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// What the policy documents (JSON, already URL-decoded) of a driver role allow on
/// volumes: per action, the alternatives of tags a volume needs. `principal` is the
/// role's tags, extended by the caller with the session tags the cluster gives it (EKS
/// Pod Identity's `eks-cluster-name`). Deny statements without conditions that cover an
/// action take it away; conditional Denies are not evaluated (listed in `skipped`).
pub fn access(documents: &[Value], principal: &Tags) -> Access {
    let mut out = Access::default();
    let mut denied = (false, false);
    for doc in documents {
        let statements = match doc.get("Statement") {
            Some(Value::Array(a)) => a.clone(),
            Some(s @ Value::Object(_)) => vec![s.clone()],
            _ => continue,
        };
        for st in &statements {
            let sid = st.get("Sid").and_then(Value::as_str).unwrap_or("(no Sid)");
            if st.get("NotAction").is_some() || st.get("NotResource").is_some() {
                out.skipped
                    .push(format!("{sid}: NotAction/NotResource is not evaluated"));
                continue;
            }
            let actions = strings(st.get("Action"));
            let covers = |a: &str| {
                actions
                    .iter()
                    .any(|p| glob(&p.to_ascii_lowercase(), &a.to_ascii_lowercase()))
            };
            let (attach, detach) = (covers(ATTACH), covers(DETACH));
            if !attach && !detach {
                continue;
            }
            if !strings(st.get("Resource"))
                .iter()
                .any(|r| glob(r, VOLUME_ARN))
            {
                continue;
            }
            let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
            if deny {
                if st.get("Condition").is_none() {
                    denied.0 |= attach;
                    denied.1 |= detach;
                } else {
                    out.skipped
                        .push(format!("{sid}: a conditional Deny is not evaluated"));
                }
                continue;
            }
            let Some(alternatives) = conditions(st.get("Condition"), principal, sid, &mut out)
            else {
                continue;
            };
            if attach {
                out.attach.extend(alternatives.iter().cloned());
            }
            if detach {
                out.detach.extend(alternatives);
            }
        }
    }
    if denied.0 {
        out.attach.clear();
    }
    if denied.1 {
        out.detach.clear();
    }
    out
}

/// A statement's conditions as alternatives of required tags, or None when it has one
/// baton cannot meet by tagging (recorded in `out.skipped`).
fn conditions(
    condition: Option<&Value>,
    principal: &Tags,
    sid: &str,
    out: &mut Access,
) -> Option<Vec<Tags>> {
    let mut alternatives = vec![Tags::new()];
    let Some(Value::Object(ops)) = condition else {
        return Some(alternatives);
    };
    for (op, keys) in ops {
        let Value::Object(keys) = keys else {
            continue;
        };
        for (key, values) in keys {
            let tag = key
                .strip_prefix("aws:ResourceTag/")
                .or_else(|| key.strip_prefix("ec2:ResourceTag/"));
            let Some(tag) = tag else {
                out.skipped.push(format!(
                    "{sid}: condition {op} on {key} is not a volume tag"
                ));
                return None;
            };
            let values: Vec<String> = match op.as_str() {
                "StringEquals" | "StringLike" => {
                    let mut resolved = Vec::new();
                    for v in strings(Some(values)) {
                        match resolve(&v, principal) {
                            Some(r) => resolved.push(r),
                            None => {
                                out.skipped.push(format!(
                                    "{sid}: {v} names a principal tag the role does not have"
                                ));
                            }
                        }
                    }
                    resolved
                }
                // "the tag exists".
                "Null" if strings(Some(values)) == ["false"] => vec!["*".into()],
                _ => {
                    out.skipped
                        .push(format!("{sid}: condition operator {op} is not evaluated"));
                    return None;
                }
            };
            if values.is_empty() {
                return None;
            }
            // Several values: any of them (an alternative each).
            alternatives = alternatives
                .into_iter()
                .flat_map(|a| {
                    values.iter().map(move |v| {
                        let mut a = a.clone();
                        a.insert(tag.to_string(), v.clone());
                        a
                    })
                })
                .collect();
        }
    }
    Some(alternatives)
}

/// The tag change an app's volumes need at the hand-over, decided by `baton plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChange {
    /// Set on every volume (CreateTags overwrites).
    pub add: Tags,
    /// Removed from every volume (DeleteTags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Blue's values of the keys the change touches, per volume id, before it: what
    /// rollback puts back (a key absent here is removed).
    pub blue: BTreeMap<String, Tags>,
    /// Why, for people: green's driver role and what it allows.
    pub why: String,
}

impl TagChange {
    /// The keys it touches.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.add.keys().chain(self.remove.iter())
    }

    /// Whether a volume's tags show the change made.
    pub fn made_on(&self, tags: &Tags) -> bool {
        self.add.iter().all(|(k, v)| tags.get(k) == Some(v))
            && self.remove.iter().all(|k| !tags.contains_key(k))
    }

    /// What puts a volume's touched tags back to blue's: (tags to set, keys to remove);
    /// both empty when they are blue's already.
    pub fn restore(&self, volume_id: &str, tags: &Tags) -> (Tags, Vec<String>) {
        let empty = Tags::new();
        let blue = self.blue.get(volume_id).unwrap_or(&empty);
        let mut add = Tags::new();
        let mut remove = Vec::new();
        for k in self.keys() {
            match (blue.get(k), tags.get(k)) {
                (Some(b), now) if now != Some(b) => {
                    add.insert(k.clone(), b.clone());
                }
                (None, Some(_)) => remove.push(k.clone()),
                _ => {}
            }
        }
        (add, remove)
    }

    /// The change as `key blue→green` for people.
    pub fn describe(&self) -> String {
        let before = |k: &str| {
            let vals: std::collections::BTreeSet<&str> = self
                .blue
                .values()
                .filter_map(|t| t.get(k).map(String::as_str))
                .collect();
            if vals.is_empty() {
                "(none)".to_string()
            } else {
                vals.into_iter().collect::<Vec<_>>().join("|")
            }
        };
        let mut parts: Vec<String> = self
            .add
            .iter()
            .map(|(k, v)| format!("{k} {}→{v}", before(k)))
            .collect();
        parts.extend(
            self.remove
                .iter()
                .map(|k| format!("{k} {}→(removed)", before(k))),
        );
        parts.join(", ")
    }
}

/// Decides the tag change green's driver (`green`, what its policies allow) needs on an
/// app's volumes (`volumes`: id → tags now). None when every volume is usable by it
/// already. Blue's ownership tag of a family green's needs is handed over with it: when
/// green needs `kubernetes.io/cluster/<green>`, blue's `kubernetes.io/cluster/<blue>` is
/// removed. Err when no tags would let green's driver attach and detach them (a
/// required tag whose value baton cannot know, or no statement at all).
pub fn plan_change(
    green: &Access,
    blue_name: Option<&str>,
    green_name: Option<&str>,
    volumes: &BTreeMap<String, Tags>,
    why: &str,
) -> Result<Option<TagChange>, String> {
    let (own_add, own_remove) = ownership_handover(blue_name, green_name, volumes);
    if volumes.values().all(|t| green.allows(t)) {
        if own_add.is_empty() && own_remove.is_empty() {
            return Ok(None);
        }
        // Only the ownership tags move, and only if green's driver may still use the
        // volumes so tagged.
        let after = |t: &Tags| {
            let mut t = t.clone();
            for k in &own_remove {
                t.remove(k);
            }
            t.extend(own_add.clone());
            t
        };
        if !volumes.values().all(|t| green.allows(&after(t))) {
            return Ok(None);
        }
        return Ok(Some(change_of(own_add, own_remove, volumes, why)));
    }
    let mut best: Option<Tags> = None;
    for a in &green.attach {
        for d in &green.detach {
            let Some(merged) = merge(a, d) else {
                continue;
            };
            // A pattern cannot be written: such a key must be there already.
            let writable = merged.iter().all(|(k, v)| {
                !(v.contains('*') || v.contains('?'))
                    || volumes
                        .values()
                        .all(|t| t.get(k).is_some_and(|x| glob(v, x)))
            });
            if !writable {
                continue;
            }
            let cost = |m: &Tags| {
                m.iter()
                    .filter(|(k, v)| volumes.values().any(|t| t.get(*k) != Some(*v)))
                    .count()
            };
            if best.as_ref().is_none_or(|b| cost(&merged) < cost(b)) {
                best = Some(merged);
            }
        }
    }
    let Some(target) = best else {
        if green.attach.is_empty() || green.detach.is_empty() {
            return Err(
                "green's EBS CSI driver may attach or detach no volume: no statement of its policies allows ec2:AttachVolume and ec2:DetachVolume on volumes"
                    .to_string(),
            );
        }
        return Err(format!(
            "green's EBS CSI driver may attach and detach only {}, and baton cannot tag the volumes so",
            green.describe()
        ));
    };
    let needed = target.clone();
    let add: Tags = target
        .into_iter()
        .filter(|(_, v)| !(v.contains('*') || v.contains('?')))
        .filter(|(k, v)| volumes.values().any(|t| t.get(k) != Some(v)))
        .collect();
    let mut add = add;
    let mut remove = Vec::new();
    if let Some(blue) = blue_name {
        let blue_key = format!("{CLUSTER_TAG_PREFIX}{blue}");
        if add.keys().any(|k| k.starts_with(CLUSTER_TAG_PREFIX))
            && !add.contains_key(&blue_key)
            && volumes.values().any(|t| t.contains_key(&blue_key))
        {
            remove.push(blue_key);
        }
    }
    // Blue's ownership tags go with the volume too, unless green's driver needs them as
    // they are (a key its policy names is left to what it needs), and only if green's
    // driver may still use the volumes so tagged.
    let (mut with_add, mut with_remove) = (add.clone(), remove.clone());
    for (k, v) in own_add {
        if !needed.contains_key(&k) {
            with_add.entry(k).or_insert(v);
        }
    }
    for k in own_remove {
        if !needed.contains_key(&k) && !with_add.contains_key(&k) && !with_remove.contains(&k) {
            with_remove.push(k);
        }
    }
    let after = |t: &Tags| {
        let mut t = t.clone();
        for k in &with_remove {
            t.remove(k);
        }
        t.extend(with_add.clone());
        t
    };
    if volumes.values().all(|t| green.allows(&after(t))) {
        (add, remove) = (with_add, with_remove);
    }
    Ok(Some(change_of(add, remove, volumes, why)))
}

/// The change with blue's values of every key it touches, per volume.
fn change_of(
    add: Tags,
    remove: Vec<String>,
    volumes: &BTreeMap<String, Tags>,
    why: &str,
) -> TagChange {
    let blue = volumes
        .iter()
        .map(|(id, t)| {
            let kept: Tags = add
                .keys()
                .chain(remove.iter())
                .filter_map(|k| t.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            (id.clone(), kept)
        })
        .collect();
    TagChange {
        add,
        remove,
        blue,
        why: why.to_string(),
    }
}

/// Blue's ownership tags on the volumes handed to green: `KubernetesCluster` and
/// `ebs.csi.aws.com/cluster-name` naming blue get green's name, and
/// `kubernetes.io/cluster/<blue>` becomes `kubernetes.io/cluster/<green>` with its value
/// (`owned`, `shared`). Left naming blue, the volumes would read as blue's to whatever
/// retires blue's resources by those tags, and as a third cluster's to the next move.
/// Empty when either name is unknown.
fn ownership_handover(
    blue_name: Option<&str>,
    green_name: Option<&str>,
    volumes: &BTreeMap<String, Tags>,
) -> (Tags, Vec<String>) {
    let (Some(blue), Some(green)) = (blue_name, green_name) else {
        return (Tags::new(), Vec::new());
    };
    if blue == green {
        return (Tags::new(), Vec::new());
    }
    let mut add = Tags::new();
    let mut remove = Vec::new();
    for key in [LEGACY_CLUSTER_TAG, CLUSTER_NAME_TAG] {
        if volumes
            .values()
            .any(|t| t.get(key).map(String::as_str) == Some(blue))
        {
            add.insert(key.to_string(), green.to_string());
        }
    }
    let blue_key = format!("{CLUSTER_TAG_PREFIX}{blue}");
    if let Some(value) = volumes.values().find_map(|t| t.get(&blue_key)) {
        add.insert(format!("{CLUSTER_TAG_PREFIX}{green}"), value.clone());
        remove.push(blue_key);
    }
    (add, remove)
}

fn merge(a: &Tags, b: &Tags) -> Option<Tags> {
    let mut out = a.clone();
    for (k, v) in b {
        match out.get(k) {
            None => {
                out.insert(k.clone(), v.clone());
            }
            Some(x) if x == v || glob(v, x) => {}
            Some(x) if glob(x, v) => {
                out.insert(k.clone(), v.clone());
            }
            Some(_) => return None,
        }
    }
    Some(out)
}

/// The clusters a volume's ownership tags name (`ebs.csi.aws.com/cluster-name`,
/// `kubernetes.io/cluster/<name>`, `KubernetesCluster`), as (tag key, cluster name).
pub fn owners(tags: &Tags) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in tags {
        if k == CLUSTER_NAME_TAG || k == LEGACY_CLUSTER_TAG {
            out.push((k.clone(), v.clone()));
        } else if let Some(name) = k.strip_prefix(CLUSTER_TAG_PREFIX) {
            out.push((k.clone(), name.to_string()));
        }
    }
    out
}

/// A volume's ownership tags as `key=value`, for people: the ones the EBS CSI driver's
/// policies read (`ebs.csi.aws.com/cluster-name`, `ebs.csi.aws.com/cluster`) and the
/// in-tree provider's (`kubernetes.io/cluster/<name>`, `KubernetesCluster`).
pub fn ownership(tags: &Tags) -> Vec<String> {
    tags.iter()
        .filter(|(k, _)| {
            *k == CLUSTER_NAME_TAG
                || *k == CSI_CLUSTER_TAG
                || *k == LEGACY_CLUSTER_TAG
                || k.starts_with(CLUSTER_TAG_PREFIX)
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// The ownership tags of a volume that name a cluster which is neither blue nor green.
pub fn foreign_owners(tags: &Tags, blue: &str, green: &str) -> Vec<(String, String)> {
    owners(tags)
        .into_iter()
        .filter(|(_, c)| c != blue && c != green)
        .collect()
}

/// What the planner knows of one cluster's EBS CSI driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Driver {
    /// Its role and what its policies allow.
    Known {
        /// The role's ARN.
        role: String,
        /// What it may attach and detach.
        access: Access,
    },
    /// No role was found (no annotated ServiceAccount, no `--ebs-csi-role`), or it could
    /// not be read: why.
    Unknown(String),
}

/// Both clusters' drivers and names, for the planner.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Drivers {
    /// Blue's EKS cluster name, when known (its nodes' `eks:cluster-name`).
    pub blue_name: Option<String>,
    /// Green's.
    pub green_name: Option<String>,
    /// Blue's driver (None: not looked for).
    pub blue: Option<Driver>,
    /// Green's.
    pub green: Option<Driver>,
    /// The volumes' KMS keys (as EC2 names them), and whether green's driver may use
    /// each for an attach.
    #[serde(default)]
    pub green_keys: BTreeMap<String, KeyCheck>,
}

/// Whether green's driver may use one KMS key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyCheck {
    /// Read and evaluated.
    Checked(crate::keys::KeyUse),
    /// Not read or not evaluated: why.
    Unknown(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("*", ""));
        assert!(glob("arn:aws:ec2:*:*:volume/*", VOLUME_ARN));
        assert!(!glob("arn:aws:ec2:*:*:instance/*", VOLUME_ARN));
        assert!(glob("ec2:*", "ec2:attachvolume"));
        assert!(glob("t?ue", "true"));
        assert!(!glob("true", "truex"));
    }

    #[test]
    fn principal_tags_are_resolved() {
        let p = Tags::from([("eks-cluster-name".to_string(), "green".to_string())]);
        assert_eq!(
            resolve("${aws:PrincipalTag/eks-cluster-name}", &p).as_deref(),
            Some("green")
        );
        assert_eq!(resolve("${aws:PrincipalTag/other}", &p), None);
        assert_eq!(resolve("x-${aws:username}", &p), None);
    }
}
