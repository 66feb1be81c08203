//! Green's TargetGroupBindings, decided from blue's (`baton traffic bindings`).
//!
//! With an ALB managed outside Kubernetes, each cluster's AWS Load Balancer Controller
//! registers its own pods into its own target group through a `TargetGroupBinding`
//! (`elbv2.k8s.aws/v1beta1`). Green needs, for each of blue's bindings, the same binding
//! into green's target group. Two clusters bound to one target group deregister each
//! other's targets (aws-load-balancer-controller issues 2173, 2757) unless both bindings
//! set `multiClusterTargetGroup: true`; and weighting traffic between the clusters, as
//! `baton traffic shift` does, needs a target group per cluster anyway.
//!
//! Green's target group is the one `--map` names for blue's, else the one whose tags
//! equal blue's group's on every key but those naming the cluster
//! ([`CLUSTER_TAG_KEYS`], `kubernetes.io/cluster/<name>`), and whose cluster tag names
//! green. Anything else (none, several) is refused with the reason.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Tag keys whose value names the cluster a target group belongs to (the load balancer
/// controller's own, EKS's). `kubernetes.io/cluster/<name>` names it in the key.
pub const CLUSTER_TAG_KEYS: [&str; 2] = ["elbv2.k8s.aws/cluster", "eks:cluster-name"];

/// The namespace label that makes the controller's webhook add a readiness gate to new
/// pods of bound Services (a pod is Ready only once its target is healthy).
pub const READINESS_GATE_LABEL: (&str, &str) =
    ("elbv2.k8s.aws/pod-readiness-gate-inject", "enabled");

/// One TargetGroupBinding as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Binding {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its whole `spec`.
    pub spec: Value,
}

impl Binding {
    /// `spec.targetGroupARN`.
    pub fn target_group(&self) -> &str {
        self.spec["targetGroupARN"].as_str().unwrap_or_default()
    }

    /// `spec.serviceRef.name`.
    pub fn service(&self) -> &str {
        self.spec["serviceRef"]["name"].as_str().unwrap_or_default()
    }

    /// `spec.targetType` (`ip` or `instance`; the controller defaults it from the group).
    pub fn target_type(&self) -> Option<&str> {
        self.spec["targetType"].as_str()
    }

    /// `spec.multiClusterTargetGroup`.
    pub fn multi_cluster(&self) -> bool {
        self.spec["multiClusterTargetGroup"]
            .as_bool()
            .unwrap_or(false)
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One target group as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroupView {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// What to do for one of blue's bindings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BindingPlan {
    /// Blue's binding, `namespace/name`.
    pub binding: String,
    /// Its Service.
    pub service: String,
    /// `ip` or `instance` (empty: the controller's default).
    pub target_type: String,
    /// Blue's target group ARN.
    pub blue_target_group: String,
    /// Green's (empty when not found).
    pub green_target_group: String,
    /// `create`, `exists` (green has it already) or `refused`.
    pub action: String,
    /// Why it is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The binding green gets (for `create`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub green: Option<Binding>,
    /// Green's namespace needs the readiness-gate label (ip targets, not labelled yet).
    pub label_namespace: bool,
}

/// The cluster a target group's tags name, if they name exactly one.
fn cluster_of(tags: &BTreeMap<String, String>) -> Option<String> {
    let mut named: Vec<String> = tags
        .iter()
        .filter_map(|(k, v)| {
            if CLUSTER_TAG_KEYS.contains(&k.as_str()) {
                Some(v.clone())
            } else {
                k.strip_prefix("kubernetes.io/cluster/").map(String::from)
            }
        })
        .collect();
    named.sort();
    named.dedup();
    match named.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn without_cluster(tags: &BTreeMap<String, String>) -> BTreeMap<&String, &String> {
    tags.iter()
        .filter(|(k, _)| {
            !CLUSTER_TAG_KEYS.contains(&k.as_str()) && !k.starts_with("kubernetes.io/cluster/")
        })
        .collect()
}

/// Green's target group for blue's `blue_tg`, by tags; Err: why none can be chosen.
pub fn counterpart<'a>(
    blue_tg: &TargetGroupView,
    groups: &'a [TargetGroupView],
    green: &str,
) -> Result<&'a TargetGroupView, String> {
    let wanted = without_cluster(&blue_tg.tags);
    if wanted.is_empty() {
        return Err(format!(
            "target group {} has no tags but its cluster's to find green's by; pass --map {}=GREEN_TG",
            blue_tg.name, blue_tg.name
        ));
    }
    let found: Vec<&TargetGroupView> = groups
        .iter()
        .filter(|g| g.arn != blue_tg.arn)
        .filter(|g| cluster_of(&g.tags).as_deref() == Some(green))
        .filter(|g| without_cluster(&g.tags) == wanted)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no target group is tagged for cluster {green} with {}'s other tags ({}); create green's, or pass --map {}=GREEN_TG",
            blue_tg.name,
            wanted
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            blue_tg.name
        )),
        many => Err(format!(
            "{} target groups are tagged for cluster {green} like {} ({}); pass --map {}=GREEN_TG",
            many.len(),
            blue_tg.name,
            many.iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            blue_tg.name
        )),
    }
}

/// Finds a target group by ARN or name.
pub fn find<'a>(groups: &'a [TargetGroupView], arn_or_name: &str) -> Option<&'a TargetGroupView> {
    groups
        .iter()
        .find(|g| g.arn == arn_or_name || g.name == arn_or_name)
}

/// The inputs of [`plan`].
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Blue's bindings (the selected namespaces').
    pub blue: &'a [Binding],
    /// Green's bindings (every namespace's).
    pub green: &'a [Binding],
    /// `--map`: blue's target group (ARN or name) → green's (ARN or name).
    pub map: &'a BTreeMap<String, String>,
    /// Every target group of the account and region, with its tags.
    pub groups: &'a [TargetGroupView],
    /// Green's cluster name, as target groups' tags name it.
    pub green_cluster: &'a str,
    /// Green's namespaces that carry the readiness-gate label already.
    pub labelled: &'a [String],
}

/// What green needs for each of blue's bindings.
pub fn plan(inputs: &Inputs<'_>) -> Vec<BindingPlan> {
    let blue_groups: BTreeMap<&str, &Binding> =
        inputs.blue.iter().map(|b| (b.target_group(), b)).collect();
    inputs
        .blue
        .iter()
        .map(|b| {
            let mut line = BindingPlan {
                binding: b.key(),
                service: b.service().to_string(),
                target_type: b.target_type().unwrap_or_default().to_string(),
                blue_target_group: b.target_group().to_string(),
                green_target_group: String::new(),
                action: "refused".into(),
                problem: None,
                green: None,
                label_namespace: false,
            };
            let green_tg = match green_group(inputs, b) {
                Ok(g) => g,
                Err(why) => {
                    line.problem = Some(why);
                    return line;
                }
            };
            line.green_target_group = green_tg.clone();
            if let Some(shared) = blue_groups.get(green_tg.as_str()) {
                let both = shared.multi_cluster() && b.multi_cluster();
                if !both {
                    line.problem = Some(format!(
                        "green's binding would register into {green_tg}, which blue's binding {} registers into too: without multiClusterTargetGroup: true on both, each cluster's load balancer controller deregisters the other's targets (aws-load-balancer-controller issues 2173, 2757); give green a target group of its own (--map), or set multiClusterTargetGroup on blue's binding first",
                        shared.key()
                    ));
                    return line;
                }
            }
            let mut spec = b.spec.clone();
            spec["targetGroupARN"] = Value::String(green_tg.clone());
            let wanted = Binding {
                namespace: b.namespace.clone(),
                name: b.name.clone(),
                spec,
            };
            line.label_namespace = b.target_type() != Some("instance")
                && !inputs.labelled.contains(&b.namespace);
            match inputs
                .green
                .iter()
                .find(|g| g.namespace == b.namespace && g.name == b.name)
            {
                Some(g) if g.target_group() == green_tg => line.action = "exists".into(),
                Some(g) => {
                    line.problem = Some(format!(
                        "green already has binding {} into {}, not {green_tg}; delete or fix it by hand",
                        g.key(),
                        g.target_group()
                    ))
                }
                None => {
                    line.action = "create".into();
                    line.green = Some(wanted);
                }
            }
            line
        })
        .collect()
}

/// Green's target group ARN for blue's binding: `--map`'s, else by tags.
fn green_group(inputs: &Inputs<'_>, b: &Binding) -> Result<String, String> {
    let blue_tg = b.target_group();
    let blue_view = find(inputs.groups, blue_tg);
    let mapped = inputs
        .map
        .iter()
        .find(|(k, _)| k.as_str() == blue_tg || blue_view.is_some_and(|v| v.name == **k));
    if let Some((_, to)) = mapped {
        return find(inputs.groups, to)
            .map(|g| g.arn.clone())
            .ok_or_else(|| format!("--map names target group {to}, which does not exist"));
    }
    let Some(blue_view) = blue_view else {
        return Err(format!(
            "blue's binding names target group {blue_tg}, which does not exist; pass --map BLUE_TG=GREEN_TG"
        ));
    };
    counterpart(blue_view, inputs.groups, inputs.green_cluster).map(|g| g.arn.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tg(name: &str, tags: &[(&str, &str)]) -> TargetGroupView {
        TargetGroupView {
            arn: format!("arn:tg/{name}"),
            name: name.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn binding(ns: &str, name: &str, tg: &str, multi: bool) -> Binding {
        Binding {
            namespace: ns.into(),
            name: name.into(),
            spec: json!({"serviceRef": {"name": "web", "port": 80}, "targetGroupARN": tg,
                         "targetType": "ip", "multiClusterTargetGroup": multi}),
        }
    }

    fn groups() -> Vec<TargetGroupView> {
        vec![
            tg(
                "web-blue",
                &[("elbv2.k8s.aws/cluster", "blue"), ("app", "web")],
            ),
            tg(
                "web-green",
                &[("elbv2.k8s.aws/cluster", "green"), ("app", "web")],
            ),
            tg(
                "api-green",
                &[("kubernetes.io/cluster/green", "owned"), ("app", "api")],
            ),
        ]
    }

    fn run(blue: &[Binding], green: &[Binding], map: &[(&str, &str)]) -> Vec<BindingPlan> {
        let map = map
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        plan(&Inputs {
            blue,
            green,
            map: &map,
            groups: &groups(),
            green_cluster: "green",
            labelled: &[],
        })
    }

    #[test]
    fn greens_group_is_found_by_the_tags_but_the_clusters() {
        let p = run(&[binding("web", "web", "arn:tg/web-blue", false)], &[], &[]);
        assert_eq!(p[0].action, "create", "{p:?}");
        assert_eq!(p[0].green_target_group, "arn:tg/web-green");
        let green = p[0].green.as_ref().unwrap();
        assert_eq!(green.target_group(), "arn:tg/web-green");
        assert_eq!(green.service(), "web");
        assert!(p[0].label_namespace);
    }

    #[test]
    fn a_map_wins_over_tags_and_a_missing_group_is_refused() {
        let p = run(
            &[binding("web", "web", "arn:tg/web-blue", false)],
            &[],
            &[("web-blue", "api-green")],
        );
        assert_eq!(p[0].green_target_group, "arn:tg/api-green");
        let p = run(
            &[binding("web", "web", "arn:tg/web-blue", false)],
            &[],
            &[("web-blue", "nope")],
        );
        assert_eq!(p[0].action, "refused");
        assert!(p[0].problem.as_ref().unwrap().contains("nope"));
    }

    #[test]
    fn sharing_blues_group_needs_multi_cluster_on_both() {
        let map = [("web-blue", "web-blue")];
        let p = run(
            &[binding("web", "web", "arn:tg/web-blue", false)],
            &[],
            &map,
        );
        assert_eq!(p[0].action, "refused");
        assert!(
            p[0].problem
                .as_ref()
                .unwrap()
                .contains("multiClusterTargetGroup")
        );
        let p = run(&[binding("web", "web", "arn:tg/web-blue", true)], &[], &map);
        assert_eq!(p[0].action, "create", "{p:?}");
    }

    #[test]
    fn a_binding_green_has_is_kept_and_a_different_one_refused() {
        let blue = [binding("web", "web", "arn:tg/web-blue", false)];
        let same = [binding("web", "web", "arn:tg/web-green", false)];
        assert_eq!(run(&blue, &same, &[])[0].action, "exists");
        let other = [binding("web", "web", "arn:tg/api-green", false)];
        assert_eq!(run(&blue, &other, &[])[0].action, "refused");
    }

    #[test]
    fn untagged_or_ambiguous_groups_are_refused_naming_map() {
        let mut g = groups();
        g[0].tags.retain(|k, _| k != "app");
        let p = plan(&Inputs {
            blue: &[binding("web", "web", "arn:tg/web-blue", false)],
            green: &[],
            map: &BTreeMap::new(),
            groups: &g,
            green_cluster: "green",
            labelled: &[],
        });
        assert!(
            p[0].problem.as_ref().unwrap().contains("--map web-blue="),
            "{p:?}"
        );
        let mut g = groups();
        g.push(tg(
            "web-green-2",
            &[("eks:cluster-name", "green"), ("app", "web")],
        ));
        let p = plan(&Inputs {
            blue: &[binding("web", "web", "arn:tg/web-blue", false)],
            green: &[],
            map: &BTreeMap::new(),
            groups: &g,
            green_cluster: "green",
            labelled: &["web".into()],
        });
        assert!(
            p[0].problem.as_ref().unwrap().contains("2 target groups"),
            "{p:?}"
        );
    }
}
