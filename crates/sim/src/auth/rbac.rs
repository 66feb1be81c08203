//! The RBAC authorizer (rbac.authorization.k8s.io/v1) for identities other than the
//! cluster admin: the ClusterRoleBindings, and the RoleBindings of the request's
//! namespace, that name the user (or one of its groups, or its service account) grant the
//! rules of the Role or ClusterRole they reference. Read from the store on every request,
//! as the real authorizer reads its informers, so a binding applies as soon as it is
//! written. The defaults every cluster binds to `system:authenticated` (discovery, public
//! info, self-reviews) are built in rather than stored.

use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};

use super::attributes::{Attributes, ResourceAttributes};
use crate::error::ApiError;
use crate::resources::GroupResource;
use crate::store::Store;

/// An authenticated user other than the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `system:serviceaccount:baton:baton`.
    pub name: String,
    /// `system:serviceaccounts`, `system:serviceaccounts:baton`, `system:authenticated`.
    pub groups: Vec<String>,
}

impl User {
    /// The user a service account's token authenticates as.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with what allowed it (`RBAC: allowed by ClusterRoleBinding "x" …`).
    Allow(String),
    /// Not allowed; the reason is empty unless a binding's role could not be found.
    Deny(String),
}

pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn rbac(plural: &str) -> GroupResource {
    GroupResource {
        group: RBAC_GROUP.into(),
        plural: plural.into(),
    }
}

static CLUSTER_ROLES: LazyLock<GroupResource> = LazyLock::new(|| rbac("clusterroles"));
static CLUSTER_ROLE_BINDINGS: LazyLock<GroupResource> =
    LazyLock::new(|| rbac("clusterrolebindings"));
static ROLES: LazyLock<GroupResource> = LazyLock::new(|| rbac("roles"));
static ROLE_BINDINGS: LazyLock<GroupResource> = LazyLock::new(|| rbac("rolebindings"));

/// `system:discovery`, `system:public-info-viewer` and `system:basic-user`, which every
/// cluster binds to `system:authenticated`.
static DEFAULT_RULES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    vec![
        json!({ "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                    "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                "verbs": ["get"] }),
        json!({ "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"] }),
        json!({ "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                "verbs": ["create"] }),
    ]
});

/// Whether `user` may do what `attrs` describe, given the cluster's stored RBAC objects.
pub fn authorize(store: &Store, user: &User, attrs: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == "system:authenticated")
        && DEFAULT_RULES.iter().any(|r| rule_allows(r, attrs))
    {
        return Decision::Allow(
            "RBAC: allowed by the default discovery and self-review roles".into(),
        );
    }
    let namespace = match attrs {
        Attributes::Resource(a) => a.namespace.as_str(),
        Attributes::NonResource { .. } => "",
    };
    let (cluster_bindings, bindings) = store.txn(|t| {
        let rb = if namespace.is_empty() {
            Vec::new()
        } else {
            t.list(&ROLE_BINDINGS, Some(namespace))
        };
        (t.list(&CLUSTER_ROLE_BINDINGS, None), rb)
    });
    let mut errors = Vec::new();
    for b in cluster_bindings.iter().chain(&bindings) {
        let binding_ns = b["metadata"]["namespace"].as_str().unwrap_or_default();
        let applies = b["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, user, binding_ns)));
        if !applies {
            continue;
        }
        let role_kind = b["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = b["roleRef"]["name"].as_str().unwrap_or_default();
        let role = store.txn(|t| match role_kind {
            "ClusterRole" => t.get(&CLUSTER_ROLES, "", role_name),
            "Role" if !binding_ns.is_empty() => t.get(&ROLES, binding_ns, role_name),
            _ => None,
        });
        let Some(role) = role else {
            errors.push(format!(
                "{}.{RBAC_GROUP} \"{role_name}\" not found",
                role_kind.to_ascii_lowercase()
            ));
            continue;
        };
        if rules_of(&role).iter().any(|r| rule_allows(r, attrs)) {
            return Decision::Allow(allowed_by(b, binding_ns, role_kind, role_name, user));
        }
    }
    Decision::Deny(match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    })
}

fn rules_of(role: &Arc<Value>) -> &[Value] {
    role["rules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The real authorizer's reason for an allowed request.
fn allowed_by(binding: &Value, ns: &str, role_kind: &str, role_name: &str, user: &User) -> String {
    let name = binding["metadata"]["name"].as_str().unwrap_or_default();
    let binding = if ns.is_empty() {
        format!("ClusterRoleBinding \"{name}\"")
    } else {
        format!("RoleBinding \"{name}/{ns}\"")
    };
    let role = if role_kind == "Role" {
        format!("Role \"{role_name}/{ns}\"")
    } else {
        format!("ClusterRole \"{role_name}\"")
    };
    format!(
        "RBAC: allowed by {binding} of {role} to User \"{}\"",
        user.name
    )
}

/// Whether a binding's subject is this user, as `appliesToUser`: a `User` by name, a
/// `Group` among the user's groups, a `ServiceAccount` by namespace (the binding's when
/// omitted) and name.
fn subject_matches(s: &Value, user: &User, binding_ns: &str) -> bool {
    let name = s["name"].as_str().unwrap_or_default();
    match s["kind"].as_str().unwrap_or_default() {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
}

/// Whether one PolicyRule allows the request (`rbac/v1.RuleAllows`).
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verb_matches = |verb: &str| strings(&rule["verbs"]).any(|v| v == "*" || v == verb);
    match attrs {
        Attributes::Resource(a) => {
            verb_matches(&a.verb)
                && strings(&rule["apiGroups"]).any(|g| g == "*" || g == a.group)
                && resource_matches(rule, a)
                && {
                    let mut names = strings(&rule["resourceNames"]).peekable();
                    names.peek().is_none() || names.any(|n| n == a.name)
                }
        }
        Attributes::NonResource { verb, path } => {
            verb_matches(verb)
                && strings(&rule["nonResourceURLs"]).any(|u| {
                    u == "*"
                        || u == path
                        || u.strip_suffix('*')
                            .is_some_and(|prefix| path.starts_with(prefix))
                })
        }
    }
}

/// `*`, the resource (with its subresource, `statefulsets/scale`), or `*/scale` for
/// that subresource of any resource.
fn resource_matches(rule: &Value, a: &ResourceAttributes) -> bool {
    let combined = a.combined_resource();
    strings(&rule["resources"]).any(|r| {
        r == "*"
            || r == combined
            || (!a.subresource.is_empty()
                && r.strip_prefix("*/").is_some_and(|sub| sub == a.subresource))
    })
}

/// The 403 the real server answers a denied request with
/// (`responsewriters.ForbiddenStatusError` and `apierrors.NewForbidden`).
pub fn forbidden(user: &User, attrs: &Attributes, reason: &str) -> ApiError {
    let (mut msg, group, resource, name) = match attrs {
        Attributes::Resource(a) => {
            let resource = a.combined_resource();
            let scope = if a.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", a.namespace)
            };
            (
                format!(
                    "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
                    user.name, a.verb, a.group
                ),
                a.group.as_str(),
                a.resource.as_str(),
                a.name.as_str(),
            )
        }
        Attributes::NonResource { verb, path } => (
            format!("User \"{}\" cannot {verb} path \"{path}\"", user.name),
            "",
            "",
            "",
        ),
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {msg}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} \"{name}\" is forbidden: {msg}")
    };
    let mut details = serde_json::Map::new();
    for (k, v) in [("name", name), ("group", group), ("kind", resource)] {
        if !v.is_empty() {
            details.insert(k.into(), json!(v));
        }
    }
    ApiError {
        details: Some(Value::Object(details)),
        ..ApiError::forbidden(message)
    }
}

#[cfg(test)]
mod tests {
    use super::super::attributes;
    use super::*;

    fn attrs(method: &str, path: &str) -> Attributes {
        attributes::of(method, path, "")
    }

    #[test]
    fn rules_match_verbs_groups_resources_names_and_wildcards() {
        let rule = json!({ "apiGroups": ["apps"], "resources": ["statefulsets/scale"], "verbs": ["patch"] });
        let scale = attrs("PATCH", "/apis/apps/v1/namespaces/a/statefulsets/db/scale");
        assert!(rule_allows(&rule, &scale));
        assert!(!rule_allows(
            &rule,
            &attrs("PATCH", "/apis/apps/v1/namespaces/a/statefulsets/db")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("PUT", "/apis/apps/v1/namespaces/a/statefulsets/db/scale")
        ));
        let any_scale = json!({ "apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"] });
        assert!(rule_allows(&any_scale, &scale));
        assert!(!rule_allows(
            &any_scale,
            &attrs("GET", "/apis/apps/v1/namespaces/a/statefulsets/db")
        ));
        let named = json!({ "apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "patch"], "resourceNames": ["pv-1"] });
        assert!(rule_allows(
            &named,
            &attrs("PATCH", "/api/v1/persistentvolumes/pv-1")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("PATCH", "/api/v1/persistentvolumes/pv-2")
        ));
        assert!(
            !rule_allows(&named, &attrs("GET", "/api/v1/persistentvolumes")),
            "a list names nothing"
        );
        let urls = json!({ "nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"] });
        assert!(rule_allows(&urls, &attrs("GET", "/apis/apps/v1")));
        assert!(rule_allows(&urls, &attrs("GET", "/healthz")));
        assert!(!rule_allows(&urls, &attrs("GET", "/version")));
        assert!(
            !rule_allows(&urls, &attrs("GET", "/api/v1/pods")),
            "URLs grant no resource"
        );
    }

    #[test]
    fn forbidden_is_worded_as_the_real_server_words_it() {
        let u = User::service_account("baton", "baton");
        let e = forbidden(&u, &attrs("PATCH", "/api/v1/persistentvolumes/pvc-123"), "");
        assert_eq!(
            e.status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"persistentvolumes \"pvc-123\" is forbidden: User \"system:serviceaccount:baton:baton\" cannot patch resource \"persistentvolumes\" in API group \"\" at the cluster scope",
                   "reason":"Forbidden","details":{"name":"pvc-123","kind":"persistentvolumes"},"code":403})
        );
        let e = forbidden(
            &u,
            &attrs(
                "PUT",
                "/apis/apps/v1/namespaces/orders/statefulsets/db/scale",
            ),
            "",
        );
        assert_eq!(
            e.message,
            "statefulsets.apps \"db\" is forbidden: User \"system:serviceaccount:baton:baton\" cannot update resource \"statefulsets/scale\" in API group \"apps\" in the namespace \"orders\""
        );
        let e = forbidden(&u, &attrs("GET", "/debug/requests"), "");
        assert_eq!(
            e.message,
            "forbidden: User \"system:serviceaccount:baton:baton\" cannot get path \"/debug/requests\""
        );
    }
}
