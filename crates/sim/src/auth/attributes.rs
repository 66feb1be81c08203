//! What a request asks to do, in RBAC's terms: the authorizer attributes the real API
//! server's `RequestInfoFactory` derives from method, path and query (verb, API group,
//! namespace, resource, subresource, name), or a non-resource path (`/version`, `/apis`).
//! The single source of that mapping for the emulator's authorizer and for tests that
//! read the request log (`crates/cli/tests/permissions.rs`).

/// The attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// A request for an API resource (`/api/v1/…/pods/db-0`).
    Resource(ResourceAttributes),
    /// Anything else (`/version`, `/api`, `/apis/apps/v1`, `/healthz`, `/debug/requests`).
    NonResource {
        /// `get`, `post`, … (the method, lower case).
        verb: String,
        /// The URL path.
        path: String,
    },
}

/// A resource request's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// API group, empty for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace, empty at the cluster scope.
    pub namespace: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`scale`, `status`, `token`), empty for the main resource.
    pub subresource: String,
    /// Object name, empty for collections (or from `fieldSelector=metadata.name=…` on a
    /// list or watch, as the real server takes it).
    pub name: String,
}

impl ResourceAttributes {
    /// `statefulsets/scale`, or the resource alone: how RBAC rules and messages name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// A namespace's own subresources: `/api/v1/namespaces/x/status` is namespace x's
/// status, not a resource called `status` in namespace x.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The attributes of a request, as kube-apiserver's `RequestInfoFactory.NewRequestInfo`.
pub fn of(method: &str, path: &str, raw_query: &str) -> Attributes {
    let non_resource = || Attributes::NonResource {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest): (&str, &str, &[&str]) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return non_resource(),
    };
    if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
        return non_resource();
    }
    let verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => return non_resource(),
    };
    let mut a = ResourceAttributes {
        verb: verb.to_string(),
        group: group.to_string(),
        version: version.to_string(),
        ..ResourceAttributes::default()
    };
    if rest[0] == "namespaces" && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    a.resource = rest[0].to_string();
    if let Some(name) = rest.get(1) {
        a.name = name.to_string();
    }
    if let Some(sub) = rest.get(2) {
        a.subresource = sub.to_string();
    }
    if a.name.is_empty() && a.verb == "get" {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw_query).unwrap_or_default();
        let watch = pairs.iter().any(|(k, v)| {
            k == "watch" && matches!(v.as_str(), "true" | "1" | "t" | "T" | "True" | "TRUE")
        });
        a.verb = if watch { "watch" } else { "list" }.to_string();
        if let Some(name) = pairs
            .iter()
            .find(|(k, _)| k == "fieldSelector")
            .and_then(|(_, v)| exact_name(v))
        {
            a.name = name.to_string();
        }
    } else if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".to_string();
    }
    Attributes::Resource(a)
}

/// The name a field selector requires exactly (`metadata.name=db-0`), if it does.
fn exact_name(selector: &str) -> Option<&str> {
    selector.split(',').find_map(|term| {
        let v = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        (!v.is_empty() && !v.contains(['/', '%'])).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: &str, path: &str, query: &str) -> ResourceAttributes {
        match of(method, path, query) {
            Attributes::Resource(a) => a,
            other => panic!("{method} {path}: not a resource request: {other:?}"),
        }
    }

    #[test]
    fn verbs_follow_the_method_and_whether_a_name_is_given() {
        let cases = [
            ("GET", "/api/v1/namespaces/orders/pods/db-0", "", "get"),
            ("GET", "/api/v1/namespaces/orders/pods", "", "list"),
            ("GET", "/api/v1/pods", "watch=true", "watch"),
            ("GET", "/api/v1/pods", "watch=1&resourceVersion=5", "watch"),
            ("GET", "/api/v1/pods", "watch=false", "list"),
            // A named GET stays a get, as on the real server.
            ("GET", "/api/v1/namespaces/a/pods/x", "watch=true", "get"),
            ("POST", "/api/v1/namespaces/a/pods", "", "create"),
            ("PUT", "/api/v1/persistentvolumes/pv-1", "", "update"),
            ("PATCH", "/api/v1/persistentvolumes/pv-1", "", "patch"),
            ("DELETE", "/api/v1/persistentvolumes/pv-1", "", "delete"),
            (
                "DELETE",
                "/api/v1/namespaces/a/pods",
                "",
                "deletecollection",
            ),
        ];
        for (method, path, query, verb) in cases {
            assert_eq!(
                res(method, path, query).verb,
                verb,
                "{method} {path}?{query}"
            );
        }
    }

    #[test]
    fn scope_group_and_subresources_come_from_the_path() {
        let a = res(
            "PATCH",
            "/apis/apps/v1/namespaces/orders/statefulsets/db/scale",
            "",
        );
        assert_eq!(
            (
                a.group.as_str(),
                a.namespace.as_str(),
                a.combined_resource(),
                a.name.as_str()
            ),
            ("apps", "orders", "statefulsets/scale".to_string(), "db")
        );
        let a = res("GET", "/apis/storage.k8s.io/v1/volumeattachments", "");
        assert_eq!(
            (a.namespace.as_str(), a.resource.as_str()),
            ("", "volumeattachments")
        );
        // A namespace is addressed in its own namespace; status is its subresource.
        let a = res("GET", "/api/v1/namespaces/orders", "");
        assert_eq!(
            (a.namespace.as_str(), a.resource.as_str(), a.name.as_str()),
            ("orders", "namespaces", "orders")
        );
        let a = res("PUT", "/api/v1/namespaces/orders/status", "");
        assert_eq!(a.combined_resource(), "namespaces/status");
        let a = res(
            "POST",
            "/api/v1/namespaces/baton/serviceaccounts/baton/token",
            "",
        );
        assert_eq!(
            (a.verb.as_str(), a.combined_resource()),
            ("create", "serviceaccounts/token".into())
        );
    }

    #[test]
    fn a_field_selected_list_names_its_object() {
        let a = res(
            "GET",
            "/api/v1/namespaces/a/pods",
            "fieldSelector=metadata.name%3Ddb-0&watch=1",
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "db-0"));
        let a = res(
            "GET",
            "/api/v1/namespaces/a/pods",
            "fieldSelector=spec.nodeName%3Dn1",
        );
        assert_eq!(a.name, "");
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v3",
            "/debug/requests",
        ] {
            assert_eq!(
                of("GET", path, ""),
                Attributes::NonResource {
                    verb: "get".into(),
                    path: path.into()
                },
                "{path}"
            );
        }
    }
}
