//! CustomResourceDefinitions: creating one serves its kind, deleting one stops serving it
//! and removes its objects, as the real apiextensions server does. The emulator also
//! registers kinds directly (`Cluster::register_kind`), e.g. Velero's `Backup`.

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::resources::{ResourceDef, ScaleSubresource};
use crate::store::Txn;

/// The kinds a CRD object serves (one per served version).
pub fn defs_of(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| {
            let sub = &v["subresources"];
            ResourceDef {
                group: s(&spec["group"]),
                version: s(&v["name"]),
                kind: s(&names["kind"]),
                plural: s(&names["plural"]),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| s(&names["kind"]).to_lowercase(), String::from),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: list(&names["shortNames"]),
                categories: list(&names["categories"]),
                status_subresource: !sub["status"].is_null(),
                scale: sub["scale"].as_object().map(|sc| ScaleSubresource {
                    spec_replicas: json_path_to_pointer(sc.get("specReplicasPath")),
                    status_replicas: json_path_to_pointer(sc.get("statusReplicasPath")),
                    label_selector: sc
                        .get("labelSelectorPath")
                        .map(|p| json_path_to_pointer(Some(p))),
                }),
                field_labels: Vec::new(),
            }
        })
        .collect()
}

fn json_path_to_pointer(p: Option<&Value>) -> String {
    let p = p.and_then(Value::as_str).unwrap_or(".spec.replicas");
    p.replace('.', "/")
}

/// Serves a created or updated CRD's kinds.
pub(crate) fn register(cluster: &Cluster, crd: &Value) {
    for def in defs_of(crd) {
        cluster.register_kind(def);
    }
}

/// Stops serving a deleted CRD's kinds and removes their objects.
pub(crate) fn unregister(cluster: &Cluster, t: &mut Txn<'_>, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    cluster.unregister_kind(group, plural);
    let gr = crate::resources::GroupResource {
        group: group.into(),
        plural: plural.into(),
    };
    for obj in t.list(&gr, None) {
        t.remove(&gr, crate::meta::namespace(&obj), crate::meta::name(&obj));
    }
}

/// The status a CRD gets once its names are accepted.
pub fn established_status(crd: &Value) -> Value {
    let versions: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": versions,
        "conditions": [
            { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found" },
            { "type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted" },
        ],
    })
}
