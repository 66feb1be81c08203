//! The kinds the emulated API server serves: names, scope, subresources and the field
//! labels each supports. Built-in kinds are a table; custom kinds (CRDs, or registered
//! directly by the emulator, e.g. `velero.io/v1` Backup) are added at run time.

use std::collections::BTreeMap;

/// How the `scale` subresource maps onto the parent object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSubresource {
    /// JSON pointer of the desired replicas in the parent (`/spec/replicas`).
    pub spec_replicas: String,
    /// JSON pointer of the observed replicas (`/status/replicas`).
    pub status_replicas: String,
    /// JSON pointer of the label selector (`/spec/selector`).
    pub label_selector: Option<String>,
}

/// One served resource (a `metav1.APIResource` plus what the server needs to serve it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group, empty for core.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Kind, e.g. `PersistentVolumeClaim`.
    pub kind: String,
    /// URL plural, e.g. `persistentvolumeclaims`.
    pub plural: String,
    /// Lower-case singular.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names kubectl accepts (`pvc`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether `/status` is a separate subresource (then main-resource writes keep status).
    pub status_subresource: bool,
    /// The `scale` subresource, if served.
    pub scale: Option<ScaleSubresource>,
    /// Field labels usable in fieldSelector besides metadata.name/metadata.namespace.
    pub field_labels: Vec<String>,
}

impl ResourceDef {
    /// `apiVersion` as objects carry it (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key of this resource in the store: group and plural (versions share storage).
    pub fn key(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Whether objects of this kind carry a spec whose changes bump `metadata.generation`.
    pub fn has_spec(&self) -> bool {
        !matches!(
            self.kind.as_str(),
            "ConfigMap"
                | "Secret"
                | "Event"
                | "StorageClass"
                | "CSIDriver"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "Role"
                | "RoleBinding"
        )
    }
}

/// Group and plural: the storage identity of a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group, empty for core.
    pub group: String,
    /// URL plural.
    pub plural: String,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    fields: &'static [&'static str],
}

/// The built-in kinds. Field labels follow the real server's conversion functions
/// (`pkg/registry/core/pod/strategy.go` ToSelectableFields and friends).
const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short: &["ns"],
        status: true,
        scale: false,
        fields: &["status.phase"],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        short: &["no"],
        status: true,
        scale: false,
        fields: &["spec.unschedulable"],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        short: &["po"],
        status: true,
        scale: false,
        fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "PersistentVolume",
        plural: "persistentvolumes",
        namespaced: false,
        short: &["pv"],
        status: true,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        namespaced: true,
        short: &["pvc"],
        status: true,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short: &["cm"],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short: &[],
        status: false,
        scale: false,
        fields: &["type"],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        short: &["svc"],
        status: true,
        scale: false,
        fields: &["spec.clusterIP", "spec.type"],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        short: &["sa"],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short: &["ev"],
        status: false,
        scale: false,
        fields: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        namespaced: true,
        short: &["sts"],
        status: true,
        scale: true,
        fields: &[],
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short: &["deploy"],
        status: true,
        scale: true,
        fields: &[],
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        namespaced: true,
        short: &["ds"],
        status: true,
        scale: false,
        fields: &[],
    },
    // Stored and served (a claim their pod templates mount is theirs, not standalone);
    // no Job or CronJob controller runs them.
    Builtin {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        namespaced: true,
        short: &[],
        status: true,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        namespaced: true,
        short: &["cj"],
        status: true,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "autoscaling",
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        namespaced: true,
        short: &["hpa"],
        status: true,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        namespaced: true,
        short: &["pdb"],
        status: true,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "storage.k8s.io",
        version: "v1",
        kind: "StorageClass",
        plural: "storageclasses",
        namespaced: false,
        short: &["sc"],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "storage.k8s.io",
        version: "v1",
        kind: "CSIDriver",
        plural: "csidrivers",
        namespaced: false,
        short: &[],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "storage.k8s.io",
        version: "v1",
        kind: "VolumeAttachment",
        plural: "volumeattachments",
        namespaced: false,
        short: &[],
        status: true,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        short: &[],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        short: &[],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
        short: &[],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
        short: &[],
        status: false,
        scale: false,
        fields: &[],
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        namespaced: false,
        short: &["crd", "crds"],
        status: true,
        scale: false,
        fields: &[],
    },
];

/// The kinds a cluster serves, keyed by group, version and plural.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: BTreeMap<(String, String, String), ResourceDef>,
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        for b in BUILTINS {
            r.register(ResourceDef {
                group: b.group.into(),
                version: b.version.into(),
                kind: b.kind.into(),
                plural: b.plural.into(),
                singular: b.kind.to_lowercase(),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: if matches!(b.kind, "Pod" | "Service" | "StatefulSet" | "Deployment") {
                    vec!["all".into()]
                } else {
                    vec![]
                },
                status_subresource: b.status,
                scale: b.scale.then(|| ScaleSubresource {
                    spec_replicas: "/spec/replicas".into(),
                    status_replicas: "/status/replicas".into(),
                    label_selector: Some("/spec/selector".into()),
                }),
                field_labels: b.fields.iter().map(|s| s.to_string()).collect(),
            });
        }
        r
    }

    /// Adds or replaces a kind.
    pub fn register(&mut self, def: ResourceDef) {
        self.defs.insert(
            (def.group.clone(), def.version.clone(), def.plural.clone()),
            def,
        );
    }

    /// Removes every version of a custom group/plural (CRD deleted).
    pub fn unregister(&mut self, group: &str, plural: &str) {
        self.defs
            .retain(|(g, _, p), _| !(g == group && p == plural));
    }

    /// The kind served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// The kind with this apiVersion and Kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceDef> {
        self.defs
            .values()
            .find(|d| d.api_version() == api_version && d.kind == kind)
    }

    /// Every kind, in group/version/plural order.
    pub fn all(&self) -> impl Iterator<Item = &ResourceDef> {
        self.defs.values()
    }

    /// The groups (non-core), each with its versions, in order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.values().filter(|d| !d.group.is_empty()) {
            let versions = out.entry(d.group.clone()).or_default();
            if !versions.contains(&d.version) {
                versions.push(d.version.clone());
            }
        }
        out
    }

    /// Kinds served in one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceDef> + 'a {
        self.defs
            .values()
            .filter(move |d| d.group == group && d.version == version)
    }
}
