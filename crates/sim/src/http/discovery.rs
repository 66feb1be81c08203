//! Discovery documents kubectl and kube-rs read before anything else: `/version`, `/api`,
//! `/api/v1`, `/apis`, `/apis/{group}` and `/apis/{group}/{version}` (the legacy,
//! unaggregated forms, which clients fall back to when the server answers plain JSON).

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::resources::{Registry, ResourceDef};

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The discovery document at `path`, if it is a discovery path.
pub fn document(cluster: &Cluster, path: &str) -> Option<Value> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reg = cluster.registry();
    match segs.as_slice() {
        ["version"] => Some(version(&cluster.spec.git_version)),
        ["api"] => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }],
        })),
        ["api", "v1"] => Some(resource_list(&reg, "", "v1")),
        ["apis"] => Some(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": reg.groups().iter().map(|(g, vs)| group(g, vs)).collect::<Vec<_>>(),
        })),
        ["apis", g] => reg.groups().get(*g).map(|vs| {
            let mut d = group(g, vs);
            d["kind"] = json!("APIGroup");
            d["apiVersion"] = json!("v1");
            d
        }),
        ["apis", g, v] if reg.in_group_version(g, v).next().is_some() => {
            Some(resource_list(&reg, g, v))
        }
        _ => None,
    }
}

/// `/version` for a gitVersion like `v1.27.16-eks-2f008fe`.
fn version(git_version: &str) -> Value {
    let core = git_version.trim_start_matches('v');
    let mut parts = core.split(['.', '-']);
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    let minor = if git_version.contains("-eks") {
        format!("{minor}+")
    } else {
        minor
    };
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn group(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({ "name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null) })
}

fn resource_list(reg: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for d in reg.in_group_version(group, version) {
        resources.push(resource(d));
        if d.status_subresource {
            resources.push(json!({ "name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"] }));
        }
        if d.scale.is_some() {
            resources.push(json!({ "name": format!("{}/scale", d.plural), "singularName": "", "namespaced": d.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"] }));
        }
        if d.kind == "Pod" && d.group.is_empty() {
            resources.push(json!({ "name": "pods/binding", "singularName": "", "namespaced": true, "kind": "Binding", "verbs": ["create"] }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources })
}

fn resource(d: &ResourceDef) -> Value {
    let mut r = json!({
        "name": d.plural,
        "singularName": d.singular,
        "namespaced": d.namespaced,
        "kind": d.kind,
        "verbs": VERBS,
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    r
}
