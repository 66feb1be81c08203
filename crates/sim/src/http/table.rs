//! Server-side printing: when a client asks for `application/json;as=Table;v=v1;g=meta.k8s.io`
//! (kubectl's `get` always does), answer a `meta.k8s.io/v1` Table with the columns the real
//! API server's printers produce, so `kubectl get pods,pvc,pv,sts` shows READY, STATUS,
//! VOLUME, CLAIM… as on EKS. Kinds without a printer get NAME and AGE, like CRDs
//! without printer columns.

use serde_json::{Value, json};

use crate::meta;
use crate::resources::ResourceDef;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

/// Whether the Accept header asks for a Table.
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    })
}

/// Parses `includeObject`.
pub fn include(v: Option<&str>) -> Include {
    match v {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    }
}

/// A Table of `objs`, with list metadata `list_meta`.
pub fn table<V: std::borrow::Borrow<Value>>(
    def: &ResourceDef,
    objs: &[V],
    list_meta: Value,
    include: Include,
) -> Value {
    let cols = columns(&def.kind);
    let rows: Vec<Value> = objs.iter().map(|o| row(def, o.borrow(), include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": cols.iter().map(|(name, ty, prio)| json!({
            "name": name, "type": ty, "format": if *name == "Name" { "name" } else { "" },
            "description": "", "priority": prio,
        })).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn row(def: &ResourceDef, o: &Value, include: Include) -> Value {
    let object = match include {
        Include::None => Value::Null,
        Include::Object => o.clone(),
        Include::Metadata => {
            json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"] })
        }
    };
    json!({ "cells": cells(&def.kind, o), "object": object })
}

type Col = (&'static str, &'static str, u8);

fn columns(kind: &str) -> Vec<Col> {
    match kind {
        "Pod" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        "PersistentVolumeClaim" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Volume", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ],
        "PersistentVolume" => vec![
            ("Name", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("Reclaim Policy", "string", 0),
            ("Status", "string", 0),
            ("Claim", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Reason", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ],
        "StatefulSet" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        "Deployment" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        "Node" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        "Namespace" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        "Service" => vec![
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
        ],
        "StorageClass" => vec![
            ("Name", "string", 0),
            ("Provisioner", "string", 0),
            ("ReclaimPolicy", "string", 0),
            ("VolumeBindingMode", "string", 0),
            ("AllowVolumeExpansion", "string", 0),
            ("Age", "string", 0),
        ],
        "VolumeAttachment" => vec![
            ("Name", "string", 0),
            ("Attacher", "string", 0),
            ("PV", "string", 0),
            ("Node", "string", 0),
            ("Attached", "boolean", 0),
            ("Age", "string", 0),
        ],
        "Event" => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        "ConfigMap" => vec![
            ("Name", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ],
        "Secret" => vec![
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ],
        _ => vec![("Name", "string", 0), ("Age", "string", 0)],
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn access_modes(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn containers_images(spec: &Value) -> (String, String) {
    let cs = spec["containers"].as_array().cloned().unwrap_or_default();
    (
        cs.iter()
            .map(|c| s(&c["name"]))
            .collect::<Vec<_>>()
            .join(","),
        cs.iter()
            .map(|c| s(&c["image"]))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(meta::name(o));
    let age = json!(age(o["metadata"]["creationTimestamp"].as_str()));
    let st = &o["status"];
    let spec = &o["spec"];
    match kind {
        "Pod" => {
            let statuses = st["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c["restartCount"].as_i64())
                .sum();
            let waiting = statuses
                .iter()
                .find_map(|c| c["state"]["waiting"]["reason"].as_str().map(String::from));
            let status = if meta::is_deleting(o) {
                "Terminating".to_string()
            } else {
                waiting.unwrap_or_else(|| s(&st["phase"]))
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(or_none(s(&st["podIP"]))),
                json!(or_none(s(&spec["nodeName"]))),
                json!(or_none(s(&st["nominatedNodeName"]))),
                json!(readiness_gates(spec, st)),
            ]
        }
        "PersistentVolumeClaim" => {
            let status = if meta::is_deleting(o) {
                "Terminating".to_string()
            } else {
                s(&st["phase"])
            };
            vec![
                name,
                json!(status),
                json!(s(&spec["volumeName"])),
                json!(s(&st["capacity"]["storage"])),
                json!(access_modes(&st["accessModes"])),
                json!(or_none(s(&spec["storageClassName"]))),
                json!("<unset>"),
                age,
                json!(s(&spec["volumeMode"])),
            ]
        }
        "PersistentVolume" => {
            let claim = if spec["claimRef"].is_null() {
                String::new()
            } else {
                format!(
                    "{}/{}",
                    s(&spec["claimRef"]["namespace"]),
                    s(&spec["claimRef"]["name"])
                )
            };
            let status = if meta::is_deleting(o) {
                "Terminating".to_string()
            } else {
                s(&st["phase"])
            };
            vec![
                name,
                json!(s(&spec["capacity"]["storage"])),
                json!(access_modes(&spec["accessModes"])),
                json!(s(&spec["persistentVolumeReclaimPolicy"])),
                json!(status),
                json!(claim),
                json!(s(&spec["storageClassName"])),
                json!("<unset>"),
                json!(s(&st["reason"])),
                age,
                json!(s(&spec["volumeMode"])),
            ]
        }
        "StatefulSet" => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    st["readyReplicas"].as_i64().unwrap_or(0),
                    spec["replicas"].as_i64().unwrap_or(0)
                )),
                age,
                json!(c),
                json!(i),
            ]
        }
        "Deployment" => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    st["readyReplicas"].as_i64().unwrap_or(0),
                    spec["replicas"].as_i64().unwrap_or(0)
                )),
                json!(st["updatedReplicas"].as_i64().unwrap_or(0)),
                json!(st["availableReplicas"].as_i64().unwrap_or(0)),
                age,
                json!(c),
                json!(i),
            ]
        }
        "Node" => {
            let ready = st["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let mut status = if ready {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if spec["unschedulable"] == true {
                status.push_str(",SchedulingDisabled");
            }
            let addr = |t: &str| {
                st["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .map(|a| s(&a["address"]))
                    .unwrap_or_default()
            };
            vec![
                name,
                json!(status),
                json!("<none>"),
                age,
                json!(s(&st["nodeInfo"]["kubeletVersion"])),
                json!(or_none(addr("InternalIP"))),
                json!(or_none(addr("ExternalIP"))),
                json!(s(&st["nodeInfo"]["osImage"])),
                json!(s(&st["nodeInfo"]["containerRuntimeVersion"])),
            ]
        }
        "Namespace" => vec![name, json!(s(&st["phase"])), age],
        "Service" => {
            let ports = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", s(&p["port"]), s(&p["protocol"])))
                .collect::<Vec<_>>()
                .join(",");
            vec![
                name,
                json!(s(&spec["type"])),
                json!(or_none(s(&spec["clusterIP"]))),
                json!("<none>"),
                json!(or_none(ports)),
                age,
            ]
        }
        "StorageClass" => {
            let default = o["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                == "true";
            let shown = if default {
                format!("{} (default)", meta::name(o))
            } else {
                meta::name(o).to_string()
            };
            vec![
                json!(shown),
                json!(s(&o["provisioner"])),
                json!(s(&o["reclaimPolicy"])),
                json!(s(&o["volumeBindingMode"])),
                json!(
                    o["allowVolumeExpansion"]
                        .as_bool()
                        .unwrap_or(false)
                        .to_string()
                ),
                age,
            ]
        }
        "VolumeAttachment" => vec![
            name,
            json!(s(&spec["attacher"])),
            json!(s(&spec["source"]["persistentVolumeName"])),
            json!(s(&spec["nodeName"])),
            json!(st["attached"].as_bool().unwrap_or(false)),
            age,
        ],
        "Event" => {
            let last = o["lastTimestamp"]
                .as_str()
                .or(o["metadata"]["creationTimestamp"].as_str());
            let obj = format!(
                "{}/{}",
                s(&o["involvedObject"]["kind"]).to_lowercase(),
                s(&o["involvedObject"]["name"])
            );
            vec![
                json!(self::age(last)),
                json!(s(&o["type"])),
                json!(s(&o["reason"])),
                json!(obj),
                json!(s(&o["message"])),
            ]
        }
        "ConfigMap" => vec![
            name,
            json!(
                o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len())
            ),
            age,
        ],
        "Secret" => vec![
            name,
            json!(s(&o["type"])),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            age,
        ],
        _ => vec![name, age],
    }
}

/// A Kubernetes-style human duration since `ts` ("5s", "3m12s", "4h", "12d").
fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86400 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

/// kubectl's READINESS GATES cell: `<none>` without gates, else how many of the pod's
/// gates have their condition True, of how many (`1/1`).
fn readiness_gates(spec: &Value, status: &Value) -> String {
    let gates: Vec<&str> = spec["readinessGates"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|g| g["conditionType"].as_str())
                .collect()
        })
        .unwrap_or_default();
    if gates.is_empty() {
        return "<none>".into();
    }
    let conditions = status["conditions"].as_array();
    let met = gates
        .iter()
        .filter(|gate| {
            conditions.is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == **gate && c["status"] == "True")
            })
        })
        .count();
    format!("{met}/{}", gates.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_negotiation() {
        assert!(wanted(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }

    #[test]
    fn pvc_and_pv_rows_show_binding() {
        let pvc = json!({ "metadata": { "name": "data-db-0" }, "spec": { "volumeName": "pv-1", "storageClassName": "gp3", "volumeMode": "Filesystem" }, "status": { "phase": "Bound", "capacity": { "storage": "10Gi" }, "accessModes": ["ReadWriteOnce"] } });
        let c = cells("PersistentVolumeClaim", &pvc);
        assert_eq!(c[1], "Bound");
        assert_eq!(c[2], "pv-1");
        assert_eq!(c[4], "RWO");
        let pv = json!({ "metadata": { "name": "pv-1" }, "spec": { "capacity": { "storage": "10Gi" }, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain", "claimRef": { "namespace": "db", "name": "data-db-0" } }, "status": { "phase": "Bound" } });
        let c = cells("PersistentVolume", &pv);
        assert_eq!(
            (c[3].as_str(), c[4].as_str(), c[5].as_str()),
            (Some("Retain"), Some("Bound"), Some("db/data-db-0"))
        );
    }

    #[test]
    fn pod_rows_count_readiness_gates_met_as_kubectl_does() {
        let gate = "target-health.elbv2.k8s.aws/web";
        let pod = |status: &str| {
            json!({ "metadata": { "name": "web-1" },
                    "spec": { "nodeName": "n1", "containers": [{ "name": "c" }],
                              "readinessGates": [{ "conditionType": gate }] },
                    "status": { "phase": "Running", "podIP": "10.1.0.9",
                                "conditions": [{ "type": gate, "status": status }] } })
        };
        assert_eq!(cells("Pod", &pod("False"))[8], "0/1");
        assert_eq!(cells("Pod", &pod("True"))[8], "1/1");
        let plain =
            json!({ "metadata": { "name": "db-0" }, "spec": { "containers": [] }, "status": {} });
        assert_eq!(cells("Pod", &plain)[8], "<none>");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let ago = |s: i64| {
            (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s))
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        assert_eq!(age(Some(&ago(5))), "5s");
        assert_eq!(age(Some(&ago(192))), "3m12s");
        assert_eq!(age(Some(&ago(4 * 3600 + 60))), "4h1m");
        assert_eq!(age(Some(&ago(12 * 86400))), "12d");
    }
}
