//! Preflight's checks on hand-built worlds: each one trips on its problem and passes
//! without it; the planner's problems arrive as findings; the outcome is the exit code.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use baton_core::network::mirror::{Group, Rule};
use baton_core::plan::Plan;
use baton_core::planner::{Inputs, PlanOptions, Selection, plan};
use baton_core::preflight::{
    ApiSource, ApiUse, Facts, Kubelet, Manager, ManagerKind, Network, Outcome, Report, Severity,
    Unchecked, VpcFacts, Workload, allowed_disruptions, check,
};
use baton_core::world::{
    ClusterView, Ec2Volume, Node, ReclaimPolicy, RetentionPolicy, StatefulSet, StorageClass,
};

struct World {
    blue: ClusterView,
    green: ClusterView,
    ec2: BTreeMap<String, Ec2Volume>,
    vpcs: (BTreeSet<String>, BTreeSet<String>),
}

fn class() -> StorageClass {
    StorageClass {
        name: "gp3".into(),
        provisioner: "ebs.csi.aws.com".into(),
        default: true,
    }
}

/// orders/db on one Retain gp3 CSI volume in us-east-1a; green has it at 0, a node there,
/// the class, one VPC: nothing to report but the version step.
fn world() -> World {
    let template = common::template();
    let sts = |replicas| StatefulSet {
        namespace: "orders".into(),
        name: "db".into(),
        uid: "uid".into(),
        replicas,
        status_replicas: replicas,
        ready_replicas: replicas,
        observed: true,
        labels: BTreeMap::new(),
        templates: vec![template.clone()],
        retention: RetentionPolicy::default(),
        scalers: vec![],
        service_account: "default".into(),
        owners: vec![],
        claims: vec![],
        kind: Default::default(),
    };
    let claim = common::claim();
    let pv = common::pv();
    let node = |name: &str| Node {
        name: name.into(),
        zone: "us-east-1a".into(),
        ready: true,
    };
    World {
        blue: ClusterView {
            context: "blue".into(),
            version: "v1.27.16-eks".into(),
            statefulsets: vec![sts(1)],
            claims: vec![claim],
            volumes: vec![pv],
            nodes: vec![node("b1")],
            storage_classes: vec![class()],
            fences: vec![],
            deployments: vec![],
            mounted: Default::default(),
            template_claims: Default::default(),
        },
        green: ClusterView {
            context: "green".into(),
            version: "v1.31.4-eks".into(),
            statefulsets: vec![sts(0)],
            claims: vec![],
            volumes: vec![],
            nodes: vec![node("g1")],
            storage_classes: vec![class()],
            fences: vec![],
            deployments: vec![],
            mounted: Default::default(),
            template_claims: Default::default(),
        },
        ec2: BTreeMap::from([(
            "vol-1".into(),
            Ec2Volume {
                id: "vol-1".into(),
                az: "us-east-1a".into(),
                size_gib: 10,
                volume_type: "gp3".into(),
                encrypted: true,
                kms_key_id: None,
                multi_attach: false,
                state: "in-use".into(),
                attached_to: vec!["i-1".into()],
                tags: Default::default(),
            },
        )]),
        vpcs: (
            BTreeSet::from(["vpc-1".into()]),
            BTreeSet::from(["vpc-1".into()]),
        ),
    }
}

fn clean_facts() -> Facts {
    Facts {
        api_uses: Some(vec![]),
        green_addons: Some(vec![Workload {
            kind: "Deployment".into(),
            namespace: "kube-system".into(),
            name: "ebs-csi-controller".into(),
            desired: 2,
            ready: 2,
        }]),
        green_csi_drivers: Some(vec!["ebs.csi.aws.com".into()]),
        green_kubelets: Some(vec![Kubelet {
            node: "g1".into(),
            version: "v1.31.4-eks".into(),
        }]),
        blue_pdbs: Some(vec![]),
        blue_managers: Some(vec![]),
        network: Some(Network::default()),
        vpc: None,
        identity: None,
        unbound: Some(vec![]),
    }
}

#[test]
fn a_blue_binding_without_greens_fails_naming_traffic_bindings() {
    let w = world();
    let mut f = clean_facts();
    f.unbound = Some(vec![("web/web".into(), "arn:tg/web-blue".into())]);
    let report = run(&w, &f);
    assert_eq!(
        codes(&report, Severity::Fail),
        ["target-group-binding-missing"]
    );
    let binding = report
        .findings
        .iter()
        .find(|x| x.check == "target-group-binding-missing")
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert_eq!(binding.severity, Severity::Fail);
    assert!(binding.object.ends_with("/web/web"), "{binding:?}");
    assert!(
        binding.fix.contains("baton traffic bindings --from"),
        "{binding:?}"
    );
}

fn planned(w: &World) -> Plan {
    plan(
        &Inputs {
            blue: &w.blue,
            green: &w.green,
            ec2: &w.ec2,
            vpcs: w.vpcs.clone(),
            aws_region: "us-east-1".into(),
            now: "2025-01-01T00:00:00Z".into(),
            drivers: Default::default(),
            pod_roles: None,
        },
        &Selection::default(),
        &PlanOptions::default(),
    )
}

fn run(w: &World, facts: &Facts) -> Report {
    check(&planned(w), &w.blue, &w.green, facts, vec![])
}

fn codes(r: &Report, severity: Severity) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.check.clone())
        .collect()
}

#[test]
fn a_clean_world_passes_with_exit_0() {
    let r = run(&world(), &clean_facts());
    assert_eq!(r.outcome, Outcome::Pass, "{:#?}", r.findings);
    assert_eq!(r.outcome.exit_code(), 0);
    assert_eq!(codes(&r, Severity::Info), ["version-skew"]);
}

#[test]
fn the_planners_problems_become_findings_with_why_and_fix() {
    let mut w = world();
    w.ec2.get_mut("vol-1").unwrap().multi_attach = true;
    w.vpcs.1 = BTreeSet::from(["vpc-2".into()]);
    w.blue.volumes[0].reclaim_policy = ReclaimPolicy::Delete;
    w.blue.statefulsets[0].retention.when_scaled = "Delete".into();
    w.blue.statefulsets[0].scalers = vec!["HorizontalPodAutoscaler orders/db".into()];
    w.green.nodes[0].zone = "us-east-1b".into();
    let r = run(&w, &clean_facts());
    let fails = codes(&r, Severity::Fail);
    for c in ["multi-attach", "different-vpc", "zone-without-nodes"] {
        assert!(fails.contains(&c.to_string()), "{c}: {fails:?}");
    }
    let warns = codes(&r, Severity::Warn);
    for c in ["reclaim-delete", "retention-delete", "scaler"] {
        assert!(warns.contains(&c.to_string()), "{c}: {warns:?}");
    }
    assert!(
        r.findings
            .iter()
            .all(|f| !f.why.is_empty() && !f.fix.is_empty())
    );
    assert_eq!(r.outcome.exit_code(), 2);

    let mut w = world();
    w.green.nodes[0].zone = "eu-west-1a".into();
    let fails = codes(&run(&w, &clean_facts()), Severity::Fail);
    assert!(fails.contains(&"different-region".to_string()), "{fails:?}");
}

#[test]
fn version_skew_and_kubelets() {
    let mut w = world();
    w.green.version = "v1.26.0".into();
    assert!(codes(&run(&w, &clean_facts()), Severity::Fail).contains(&"version-skew".into()));
    w.green.version = w.blue.version.clone();
    let r = run(&w, &clean_facts());
    assert!(codes(&r, Severity::Info).contains(&"version-skew".into()));
    let mut f = clean_facts();
    f.green_kubelets = Some(vec![
        Kubelet {
            node: "new".into(),
            version: "v1.28.0".into(),
        },
        Kubelet {
            node: "old".into(),
            version: "v1.23.9".into(),
        },
    ]);
    let r = run(&world(), &f);
    let skew: Vec<(Severity, &str)> = r
        .findings
        .iter()
        .filter(|x| x.check == "kubelet-skew")
        .map(|x| (x.severity, x.object.as_str()))
        .collect();
    assert_eq!(
        skew,
        [(Severity::Warn, "Node green/old")],
        "1.28 ≤ 1.31 is fine, 1.23 is 8 behind"
    );
    f.green_kubelets = Some(vec![Kubelet {
        node: "n".into(),
        version: "v1.32.1".into(),
    }]);
    assert!(codes(&run(&world(), &f), Severity::Fail).contains(&"kubelet-skew".into()));
}

#[test]
fn removed_apis_count_up_to_greens_version_only() {
    let api = |v: &str, k: &str| ApiUse {
        api_version: v.into(),
        kind: k.into(),
        namespace: "web".into(),
        name: "x".into(),
        source: ApiSource::File {
            path: "a.yaml".into(),
        },
    };
    let mut f = clean_facts();
    f.api_uses = Some(vec![
        api("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema"), // removed in 1.32
        api("autoscaling/v2beta2", "HorizontalPodAutoscaler"),     // removed in 1.26
        api("apps/v1", "Deployment"),
    ]);
    let r = run(&world(), &f);
    let removed: Vec<&str> = r
        .findings
        .iter()
        .filter(|x| x.check == "removed-api")
        .map(|x| x.problem.as_str())
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(removed[0].contains("autoscaling/v2beta2") && removed[0].contains("1.26"));
    let fix = &r
        .findings
        .iter()
        .find(|x| x.check == "removed-api")
        .unwrap()
        .fix;
    assert!(fix.contains("autoscaling/v2"), "{fix}");
}

#[test]
fn addons_csi_and_classes() {
    let mut f = clean_facts();
    f.green_addons.as_mut().unwrap().push(Workload {
        kind: "DaemonSet".into(),
        namespace: "kube-system".into(),
        name: "aws-node".into(),
        desired: 3,
        ready: 1,
    });
    f.green_csi_drivers = Some(vec![]);
    let fails = codes(&run(&world(), &f), Severity::Fail);
    assert!(
        fails.contains(&"addon-not-ready".into()) && fails.contains(&"ebs-csi-missing".into()),
        "{fails:?}"
    );

    let mut w = world();
    w.green.storage_classes[0].provisioner = "kubernetes.io/aws-ebs".into();
    let r = run(&w, &clean_facts());
    assert!(
        codes(&r, Severity::Info).contains(&"class-provisioner".into()),
        "in-tree EBS and CSI are one backend"
    );
    w.green.storage_classes[0].provisioner = "efs.csi.aws.com".into();
    assert!(codes(&run(&w, &clean_facts()), Severity::Warn).contains(&"class-provisioner".into()));
    w.green.storage_classes.clear();
    let r = run(&w, &clean_facts());
    let missing: Vec<_> = r
        .findings
        .iter()
        .filter(|x| x.check == "class-missing-in-green")
        .collect();
    assert_eq!(
        missing.len(),
        1,
        "the planner's and preflight's are one finding"
    );
}

#[test]
fn operators_and_gitops_managing_a_moved_app_warn() {
    let mut f = clean_facts();
    f.blue_managers = Some(vec![
        Manager {
            statefulset: "orders/db".into(),
            by: "PostgresCluster db (postgres-operator.crunchydata.com/v1beta1)".into(),
            kind: ManagerKind::Operator,
        },
        Manager {
            statefulset: "other/app".into(),
            by: "Argo CD application other".into(),
            kind: ManagerKind::GitOps,
        },
    ]);
    let r = run(&world(), &f);
    let managed: Vec<&str> = r
        .findings
        .iter()
        .filter(|x| x.check == "managed-by")
        .map(|x| x.object.as_str())
        .collect();
    assert_eq!(
        managed,
        ["StatefulSet blue/orders/db"],
        "only apps that move"
    );
}

#[test]
fn gitops_that_migrate_fences_is_only_information() {
    use baton_core::fences::{FenceKind, FenceObject};
    let mut w = world();
    w.blue.fences = vec![FenceObject::of(
        FenceKind::Application,
        &serde_json::json!({ "metadata": { "name": "orders", "namespace": "argocd" },
                             "spec": { "syncPolicy": { "automated": { "selfHeal": true } } },
                             "status": { "resources": [
                                 { "kind": "StatefulSet", "namespace": "orders", "name": "db" } ] } }),
    )];
    let mut f = clean_facts();
    f.blue_managers = Some(vec![Manager {
        statefulset: "orders/db".into(),
        by: "Argo CD application orders".into(),
        kind: ManagerKind::GitOps,
    }]);
    let r = run(&w, &f);
    let found = r.findings.iter().find(|x| x.check == "managed-by").unwrap();
    assert_eq!(found.severity, Severity::Info, "{found:?}");
    assert!(found.why.contains("Application argocd/orders"), "{found:?}");
    // Tracking labels but no object in blue to pause (Argo CD in another cluster): warn.
    let r = run(&world(), &f);
    let found = r.findings.iter().find(|x| x.check == "managed-by").unwrap();
    assert_eq!(found.severity, Severity::Warn, "{found:?}");
}

#[test]
fn security_groups_admitting_blue_but_not_green_fail() {
    let net = |cidrs: &[&str]| Network {
        groups: vec![Group {
            id: "sg-db".into(),
            name: "orders-db".into(),
            rules: vec![Rule {
                protocol: "tcp".into(),
                from_port: Some(5432),
                to_port: Some(5432),
                cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            }],
        }],
        blue: vec!["10.0.0.0/20".parse().unwrap()],
        green: vec!["10.1.0.0/20".parse().unwrap()],
    };
    let mut f = clean_facts();
    f.network = Some(net(&["10.0.0.0/20"]));
    let r = run(&world(), &f);
    let sg = r
        .findings
        .iter()
        .find(|x| x.check == "sg-blue-only")
        .expect("tripped");
    assert_eq!(sg.severity, Severity::Fail);
    assert!(
        sg.fix.contains("--security-group sg-db") && sg.fix.contains("--to-cidrs 10.1.0.0/20"),
        "{}",
        sg.fix
    );
    f.network = Some(net(&["10.0.0.0/20", "10.1.0.0/20"]));
    assert!(!codes(&run(&world(), &f), Severity::Fail).contains(&"sg-blue-only".into()));
}

#[test]
fn an_expected_vpc_the_nodes_are_not_in_fails() {
    let mut f = clean_facts();
    f.vpc = Some(VpcFacts {
        expected: "vpc-1".into(),
        blue: BTreeSet::from(["vpc-1".into()]),
        green: BTreeSet::from(["vpc-1".into()]),
    });
    assert_eq!(run(&world(), &f).outcome, Outcome::Pass);
    f.vpc.as_mut().unwrap().expected = "vpc-9".into();
    let r = run(&world(), &f);
    assert_eq!(r.findings.iter().filter(|x| x.check == "vpc").count(), 2);
}

#[test]
fn disruption_budgets_allow_what_the_controller_would() {
    // (minAvailable, maxUnavailable, pods, healthy) → allowed
    let cases = [
        (Some("1"), None, 1, 1, 0),
        (Some("1"), None, 3, 3, 2),
        (Some("50%"), None, 3, 3, 1), // 50% of 3 rounds up to 2
        (None, Some("0"), 2, 2, 0),
        (None, Some("1"), 3, 2, 0),   // one already down
        (None, Some("34%"), 3, 3, 2), // 1.02 rounds up, as the controller does
        (None, Some("33%"), 3, 3, 1),
        (None, None, 2, 2, 0),
    ];
    for (min, max, pods, healthy, want) in cases {
        assert_eq!(
            allowed_disruptions(min, max, pods, healthy),
            want,
            "{min:?} {max:?} {pods} {healthy}"
        );
    }
    let mut f = clean_facts();
    f.blue_pdbs = Some(vec![baton_core::preflight::Pdb {
        namespace: "orders".into(),
        name: "db".into(),
        pods: 1,
        healthy: 1,
        allowed: 0,
    }]);
    assert_eq!(codes(&run(&world(), &f), Severity::Warn), ["pdb-blocks"]);
    assert_eq!(run(&world(), &f).outcome.exit_code(), 1);
}

#[test]
fn an_unchecked_read_is_exit_3_whatever_else_was_found() {
    let mut w = world();
    w.green.version = "v1.20.0".into();
    let r = check(
        &planned(&w),
        &w.blue,
        &w.green,
        &clean_facts(),
        vec![Unchecked {
            check: "pdb-blocks".into(),
            reason: "500".into(),
        }],
    );
    assert!(!codes(&r, Severity::Fail).is_empty());
    assert_eq!(r.outcome, Outcome::Unchecked);
    assert_eq!(r.outcome.exit_code(), 3);
}

#[test]
fn roles_that_do_not_trust_greens_provider_fail_with_the_identity_fix() {
    use baton_core::preflight::{IdentityFacts, RoleTrust};
    let w = world();
    let role = |name: &str, trusted: bool, problem: Option<&str>| RoleTrust {
        role: format!("arn:aws:iam::1:role/{name}"),
        service_accounts: vec![format!("orders/{name}")],
        trusted,
        problem: problem.map(String::from),
    };
    let mut facts = clean_facts();
    facts.identity = Some(IdentityFacts {
        provider: "arn:aws:iam::1:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/G".into(),
        provider_exists: false,
        roles: vec![
            role("ok", true, None),
            role("blue-only", false, None),
            role("gone", false, Some("the role does not exist")),
        ],
    });
    let r = run(&w, &facts);
    let mut fails = codes(&r, Severity::Fail);
    fails.sort();
    assert_eq!(
        fails,
        [
            "irsa-role-untrusted",
            "irsa-role-unusable",
            "oidc-provider-missing"
        ],
        "{r:#?}"
    );
    let untrusted = r
        .findings
        .iter()
        .find(|f| f.check == "irsa-role-untrusted")
        .unwrap();
    assert!(
        untrusted.object.ends_with("role/blue-only"),
        "{untrusted:?}"
    );
    assert!(
        untrusted.fix.starts_with("baton identity apply --from "),
        "{untrusted:?}"
    );
    // Every role trusted and the provider there: nothing.
    facts.identity = Some(IdentityFacts {
        provider: "p".into(),
        provider_exists: true,
        roles: vec![role("ok", true, None)],
    });
    assert!(codes(&run(&w, &facts), Severity::Fail).is_empty());
}
