//! Which API versions each Kubernetes release stopped serving, as data.
//!
//! Source: the Kubernetes "Deprecated API Migration Guide", section "Removed APIs by
//! release" (kubernetes.io/docs/reference/using-api/deprecation-guide/, from
//! kubernetes/website `content/en/docs/reference/using-api/deprecation-guide.md`). Every
//! row is one (group/version, kind) the guide lists, the minor release that stopped
//! serving it, and the replacement it names. Releases after v1.32 have removed none (as of
//! v1.33). A new release's rows are added here, nowhere else.

use serde::{Deserialize, Serialize};

/// One removed (apiVersion, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// The apiVersion no longer served (`extensions/v1beta1`).
    pub api_version: &'static str,
    /// The kind.
    pub kind: &'static str,
    /// The 1.x minor release that stopped serving it.
    pub removed_in: u32,
    /// What to use instead (`networking.k8s.io/v1`), or "" when nothing replaces it.
    pub replacement: &'static str,
}

const fn r(
    api_version: &'static str,
    kind: &'static str,
    removed_in: u32,
    replacement: &'static str,
) -> Removal {
    Removal {
        api_version,
        kind,
        removed_in,
        replacement,
    }
}

/// The guide's table, oldest release first.
pub const REMOVALS: &[Removal] = &[
    // v1.16
    r(
        "extensions/v1beta1",
        "NetworkPolicy",
        16,
        "networking.k8s.io/v1",
    ),
    r(
        "extensions/v1beta1",
        "PodSecurityPolicy",
        16,
        "policy/v1beta1",
    ),
    r("extensions/v1beta1", "DaemonSet", 16, "apps/v1"),
    r("apps/v1beta2", "DaemonSet", 16, "apps/v1"),
    r("extensions/v1beta1", "Deployment", 16, "apps/v1"),
    r("apps/v1beta1", "Deployment", 16, "apps/v1"),
    r("apps/v1beta2", "Deployment", 16, "apps/v1"),
    r("apps/v1beta1", "StatefulSet", 16, "apps/v1"),
    r("apps/v1beta2", "StatefulSet", 16, "apps/v1"),
    r("extensions/v1beta1", "ReplicaSet", 16, "apps/v1"),
    r("apps/v1beta1", "ReplicaSet", 16, "apps/v1"),
    r("apps/v1beta2", "ReplicaSet", 16, "apps/v1"),
    // v1.22
    r(
        "admissionregistration.k8s.io/v1beta1",
        "MutatingWebhookConfiguration",
        22,
        "admissionregistration.k8s.io/v1",
    ),
    r(
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
        22,
        "admissionregistration.k8s.io/v1",
    ),
    r(
        "apiextensions.k8s.io/v1beta1",
        "CustomResourceDefinition",
        22,
        "apiextensions.k8s.io/v1",
    ),
    r(
        "apiregistration.k8s.io/v1beta1",
        "APIService",
        22,
        "apiregistration.k8s.io/v1",
    ),
    r(
        "authentication.k8s.io/v1beta1",
        "TokenReview",
        22,
        "authentication.k8s.io/v1",
    ),
    r(
        "authorization.k8s.io/v1beta1",
        "SubjectAccessReview",
        22,
        "authorization.k8s.io/v1",
    ),
    r(
        "authorization.k8s.io/v1beta1",
        "LocalSubjectAccessReview",
        22,
        "authorization.k8s.io/v1",
    ),
    r(
        "authorization.k8s.io/v1beta1",
        "SelfSubjectAccessReview",
        22,
        "authorization.k8s.io/v1",
    ),
    r(
        "certificates.k8s.io/v1beta1",
        "CertificateSigningRequest",
        22,
        "certificates.k8s.io/v1",
    ),
    r(
        "coordination.k8s.io/v1beta1",
        "Lease",
        22,
        "coordination.k8s.io/v1",
    ),
    r("extensions/v1beta1", "Ingress", 22, "networking.k8s.io/v1"),
    r(
        "networking.k8s.io/v1beta1",
        "Ingress",
        22,
        "networking.k8s.io/v1",
    ),
    r(
        "networking.k8s.io/v1beta1",
        "IngressClass",
        22,
        "networking.k8s.io/v1",
    ),
    r(
        "rbac.authorization.k8s.io/v1beta1",
        "ClusterRole",
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    r(
        "rbac.authorization.k8s.io/v1beta1",
        "ClusterRoleBinding",
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    r(
        "rbac.authorization.k8s.io/v1beta1",
        "Role",
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    r(
        "rbac.authorization.k8s.io/v1beta1",
        "RoleBinding",
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    r(
        "scheduling.k8s.io/v1beta1",
        "PriorityClass",
        22,
        "scheduling.k8s.io/v1",
    ),
    r(
        "storage.k8s.io/v1beta1",
        "CSIDriver",
        22,
        "storage.k8s.io/v1",
    ),
    r("storage.k8s.io/v1beta1", "CSINode", 22, "storage.k8s.io/v1"),
    r(
        "storage.k8s.io/v1beta1",
        "StorageClass",
        22,
        "storage.k8s.io/v1",
    ),
    r(
        "storage.k8s.io/v1beta1",
        "VolumeAttachment",
        22,
        "storage.k8s.io/v1",
    ),
    // v1.25
    r("batch/v1beta1", "CronJob", 25, "batch/v1"),
    r(
        "discovery.k8s.io/v1beta1",
        "EndpointSlice",
        25,
        "discovery.k8s.io/v1",
    ),
    r("events.k8s.io/v1beta1", "Event", 25, "events.k8s.io/v1"),
    r(
        "autoscaling/v2beta1",
        "HorizontalPodAutoscaler",
        25,
        "autoscaling/v2",
    ),
    r("policy/v1beta1", "PodDisruptionBudget", 25, "policy/v1"),
    r("policy/v1beta1", "PodSecurityPolicy", 25, ""),
    r("node.k8s.io/v1beta1", "RuntimeClass", 25, "node.k8s.io/v1"),
    // v1.26
    r(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "FlowSchema",
        26,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    r(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
        26,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    r(
        "autoscaling/v2beta2",
        "HorizontalPodAutoscaler",
        26,
        "autoscaling/v2",
    ),
    // v1.27
    r(
        "storage.k8s.io/v1beta1",
        "CSIStorageCapacity",
        27,
        "storage.k8s.io/v1",
    ),
    // v1.29
    r(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "FlowSchema",
        29,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    r(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "PriorityLevelConfiguration",
        29,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    // v1.32
    r(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "FlowSchema",
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    r(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "PriorityLevelConfiguration",
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// The removal of (apiVersion, kind), if a release up to `minor` stopped serving it.
pub fn removed_by(api_version: &str, kind: &str, minor: u32) -> Option<&'static Removal> {
    REMOVALS
        .iter()
        .find(|r| r.api_version == api_version && r.kind == kind && r.removed_in <= minor)
}

/// (major, minor) of a version string as `/version` or a node reports it
/// (`v1.31.4-eks-1f3c2b8`, `1.27`, `v1.29.0+k3s1`).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_counts_from_its_release_on() {
        assert!(removed_by("policy/v1beta1", "PodDisruptionBudget", 24).is_none());
        let r = removed_by("policy/v1beta1", "PodDisruptionBudget", 25).unwrap();
        assert_eq!(r.replacement, "policy/v1");
        assert!(removed_by("policy/v1", "PodDisruptionBudget", 40).is_none());
        assert!(removed_by("extensions/v1beta1", "Ingress", 31).is_some());
        assert!(
            removed_by("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", 31).is_none(),
            "removed in 1.32"
        );
    }

    #[test]
    fn versions_parse_in_the_forms_clusters_report() {
        assert_eq!(parse_version("v1.31.4-eks-1f3c2b8"), Some((1, 31)));
        assert_eq!(parse_version("1.27"), Some((1, 27)));
        assert_eq!(parse_version("v1.29+"), Some((1, 29)));
        assert_eq!(parse_version("latest"), None);
    }

    #[test]
    fn the_table_has_no_duplicate_rows() {
        for (i, a) in REMOVALS.iter().enumerate() {
            for b in &REMOVALS[i + 1..] {
                assert!(
                    (a.api_version, a.kind) != (b.api_version, b.kind),
                    "{a:?} twice"
                );
            }
        }
    }
}
