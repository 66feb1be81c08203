//! Builds a [`Plan`] from what was read of blue, green and EC2. It checks everything the
//! PV binder will not check for a pre-bound claim (capacity, access modes, volume mode,
//! class) and everything that would make the move unsafe, so `migrate` can refuse before
//! its first mutation.

use std::collections::{BTreeMap, BTreeSet};

use crate::handover::{self, Driver, Drivers, KeyCheck};
use crate::identity::PodRoles;
use crate::plan::{AppPlan, GreenReadiness, GroupPlan, PLAN_VERSION, Plan, Problem, VolumePlan};
use crate::quantity::format_bytes;
use crate::world::{
    ClusterView, Ec2Volume, Pvc, ReclaimPolicy, StatefulSet, VolumeSource, WorkloadKind,
};

/// Which StatefulSets to plan.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// `key=value` label requirements on the StatefulSet (all must hold).
    pub labels: Vec<(String, String)>,
    /// `--claim NS/NAME`: standalone claims to move; alone (no namespace or label
    /// given), they are all that is selected.
    pub claims: Vec<(String, String)>,
    /// `--group NAME=NS/KIND/NAME,…`: workloads that move as one unit, in this order;
    /// alone (no namespace or label given), they are all that is selected.
    pub groups: Vec<DeclaredGroup>,
    /// `--standalone-claims`: every bound EBS claim no workload mounts, in the selected
    /// namespaces (all when none), moves on its own too.
    pub standalone_claims: bool,
    /// `--no-label-groups`: `app.kubernetes.io/part-of` makes no group (only `--group`
    /// does).
    pub no_label_groups: bool,
}

/// A group as `--group` declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredGroup {
    /// Its name.
    pub name: String,
    /// Its members as (namespace, kind, name), in the order green starts them.
    pub members: Vec<(String, WorkloadKind, String)>,
}

/// The label that makes workloads of one namespace a group when one of them moves.
pub const PART_OF: &str = "app.kubernetes.io/part-of";

impl Selection {
    /// Whether a StatefulSet is selected.
    pub fn selects(&self, s: &StatefulSet) -> bool {
        self.by_selectors()
            && (self.namespaces.is_empty() || self.namespaces.contains(&s.namespace))
            && self.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
    }

    /// Whether the namespace and label selectors select anything: not when only
    /// `--claim` was given.
    fn by_selectors(&self) -> bool {
        (self.claims.is_empty() && self.groups.is_empty())
            || !self.namespaces.is_empty()
            || !self.labels.is_empty()
    }

    /// Whether a standalone claim is selected: named by `--claim`, or by a namespace or
    /// label selector (never by selecting everything: an unnamed claim moves only where
    /// it was asked for).
    pub fn selects_claim(&self, c: &Pvc) -> bool {
        self.names_claim(c)
            || ((!self.namespaces.is_empty() || !self.labels.is_empty() || self.standalone_claims)
                && (self.namespaces.is_empty() || self.namespaces.contains(&c.namespace))
                && self.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
    }

    /// Whether `--claim` names it.
    fn names_claim(&self, c: &Pvc) -> bool {
        self.claims
            .iter()
            .any(|(ns, n)| *ns == c.namespace && *n == c.name)
    }
}

/// Options that change what is allowed.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--allow-multi-attach`.
    pub allow_multi_attach: bool,
    /// `--convert-to-csi`.
    pub convert_to_csi: bool,
    /// `--allow-operator KIND`: operators whose own pause the user has done.
    pub allow_operators: Vec<String>,
}

/// The inputs of one planning.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// Blue, read through `--from`.
    pub blue: &'a ClusterView,
    /// Green, read through `--to`.
    pub green: &'a ClusterView,
    /// EC2's view of the volumes blue's PVs name.
    pub ec2: &'a BTreeMap<String, Ec2Volume>,
    /// VPCs of blue's and green's nodes (empty when unknown).
    pub vpcs: (BTreeSet<String>, BTreeSet<String>),
    /// The AWS region baton's EC2 calls go to (empty when unknown).
    pub aws_region: String,
    /// When (RFC 3339).
    pub now: String,
    /// Both clusters' EBS CSI drivers and names (default: not looked for, no re-tag).
    pub drivers: Drivers,
    /// The IAM roles the apps' pods assume through IRSA, and whether green's pods may
    /// (None: no selected app's ServiceAccount names a role, or not looked for).
    pub pod_roles: Option<PodRoles>,
}

/// Plans the selected StatefulSets.
pub fn plan(inputs: &Inputs<'_>, selection: &Selection, options: &PlanOptions) -> Plan {
    let mut problems = Vec::new();
    let (blue_vpcs, green_vpcs) = &inputs.vpcs;
    if !blue_vpcs.is_empty() && !green_vpcs.is_empty() && blue_vpcs != green_vpcs {
        problems.push(Problem::blocking(
            "different-vpc",
            format!("clusters {} and {}", inputs.blue.context, inputs.green.context),
            format!(
                "blue's nodes are in VPC {} and green's in {}; EBS volumes and their data can only be handed over inside one VPC and region",
                join(blue_vpcs),
                join(green_vpcs)
            ),
            "create green in blue's VPC (see `baton network plan`), or pass the right --to context",
        ));
    }
    problems.extend(region_problems(inputs));
    for (side, driver, context) in [
        ("blue", &inputs.drivers.blue, &inputs.blue.context),
        ("green", &inputs.drivers.green, &inputs.green.context),
    ] {
        if let Some(Driver::Unknown(why)) = driver {
            problems.push(Problem::warning(
                "ebs-csi-role-unknown",
                format!("the EBS CSI driver of {context}"),
                format!(
                    "{why}; baton cannot tell which volume tags {side}'s driver needs, and plans no re-tag"
                ),
                format!(
                    "annotate kube-system/ebs-csi-controller-sa with eks.amazonaws.com/role-arn in {context}, or pass --ebs-csi-role {context}=ARN"
                ),
            ));
        }
    }
    let mut apps: Vec<AppPlan> = inputs
        .blue
        .statefulsets
        .iter()
        .filter(|s| !s.templates.is_empty())
        .chain(
            inputs
                .blue
                .deployments
                .iter()
                .filter(|d| !d.claims.is_empty()),
        )
        .filter(|s| selection.selects(s))
        .map(|s| plan_app(inputs, s, options))
        .collect();
    // Standalone claims: bound, no workload's (a StatefulSet's template claim, even of a
    // scaled-down ordinal; a Deployment's, even at 0), and no pod mounts them — or named
    // by --claim, then refused when one does.
    for c in standalone_claims(inputs.blue, selection) {
        let mut app = plan_app(inputs, &claim_workload(c), options);
        if inputs
            .blue
            .mounted
            .contains(&(c.namespace.clone(), c.name.clone()))
        {
            app.problems.push(Problem::blocking(
                "claim-in-use",
                format!(
                    "PersistentVolumeClaim {}/{}",
                    inputs.blue.context,
                    app.key()
                ),
                "a pod mounts it: a claim moves on its own only while nothing mounts it",
                "move the workload that mounts it instead, or stop that pod, then plan again",
            ));
        }
        apps.push(app);
    }
    for (ns, name) in &selection.claims {
        if let Some(c) = inputs.blue.claim(ns, name)
            && let Some(owner) = owner_of(inputs.blue, c)
        {
            problems.push(Problem::blocking(
                "claim-of-workload",
                format!("PersistentVolumeClaim {}/{ns}/{name}", inputs.blue.context),
                format!("it belongs to {owner}: it moves with it, not on its own"),
                "move the workload instead (select it with -n or -l); a DaemonSet's, CronJob's or Job's claim moves only once nothing there mounts it (suspend or delete that in blue first)",
            ));
            continue;
        }
        if inputs
            .blue
            .claim(ns, name)
            .is_none_or(|c| c.phase != "Bound")
        {
            problems.push(Problem::blocking(
                "claim-missing",
                format!("PersistentVolumeClaim {}/{ns}/{name}", inputs.blue.context),
                "--claim names no Bound claim in blue",
                "check the namespace and name (`kubectl get pvc -n NS`)",
            ));
        }
    }
    let groups = groups(inputs, selection, options, &mut apps, &mut problems);
    // The claims that would move on their own, had they been asked for.
    let everything = Selection {
        standalone_claims: true,
        ..Selection::default()
    };
    let unselected_claims: Vec<String> = standalone_claims(inputs.blue, &everything)
        .into_iter()
        .map(|c| format!("{}/{}", c.namespace, c.name))
        .filter(|k| {
            !apps
                .iter()
                .any(|a| a.kind == WorkloadKind::Claim && &a.key() == k)
        })
        .collect();
    apps.sort_by_key(|a| (a.key(), a.kind));
    // A fence several apps share is resumed only with all of them.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for f in apps.iter().flat_map(|a| &a.fences) {
        *count.entry(f.key()).or_default() += 1;
    }
    for f in apps.iter_mut().flat_map(|a| &mut a.fences) {
        f.shared = count[&f.key()] > 1;
    }
    // An app is its namespace and name everywhere (journal, status, --app): a
    // Deployment named as a StatefulSet beside it cannot be told apart.
    for i in 1..apps.len() {
        if apps[i].key() == apps[i - 1].key() {
            let key = apps[i].key();
            let (kind, other) = (apps[i].kind, apps[i - 1].kind);
            apps[i].problems.push(Problem::blocking(
                "name-taken",
                format!("{kind} {}/{key}", inputs.blue.context),
                format!("{other} {key} has the same name; baton names apps by namespace and name"),
                "move one of them alone (select it with -l), then the other",
            ));
        }
    }
    Plan {
        version: PLAN_VERSION,
        from: inputs.blue.context.clone(),
        to: inputs.green.context.clone(),
        from_version: inputs.blue.version.clone(),
        to_version: inputs.green.version.clone(),
        created: inputs.now.clone(),
        problems,
        apps,
        groups,
        unselected_claims,
    }
}

/// The groups: the ones `--group` declares (each member must be a workload in blue, and
/// in one group only), then, per namespace, the workloads sharing an
/// `app.kubernetes.io/part-of` value with an app that moves — ordered with the members
/// that have volumes first (the data tier starts first), then by name; `--group` declares
/// another order. Members not planned yet (a proxy without volumes, one not selected)
/// are planned here.
fn groups(
    inputs: &Inputs<'_>,
    selection: &Selection,
    options: &PlanOptions,
    apps: &mut Vec<AppPlan>,
    problems: &mut Vec<Problem>,
) -> Vec<GroupPlan> {
    let blue = inputs.blue;
    let mut out: Vec<GroupPlan> = Vec::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let add = |apps: &mut Vec<AppPlan>, s: &StatefulSet| {
        if !apps.iter().any(|a| a.key() == s.key() && a.kind == s.kind) {
            apps.push(plan_app(inputs, s, options));
        }
    };
    for (i, g) in selection.groups.iter().enumerate() {
        if selection.groups[..i].iter().any(|o| o.name == g.name) {
            problems.push(Problem::blocking(
                "group-duplicate",
                format!("--group {}", g.name),
                "two groups have this name",
                "give each --group its own name",
            ));
            continue;
        }
        let mut members = Vec::new();
        for (ns, kind, name) in &g.members {
            let key = format!("{ns}/{name}");
            let object = format!("{kind} {}/{key}", blue.context);
            let Some(s) = blue.workload(*kind, ns, name) else {
                problems.push(Problem::blocking(
                    "group-member-missing",
                    object,
                    format!("--group {} names it, but blue has no such {kind}", g.name),
                    "check the member's namespace, kind and name (`kubectl get statefulsets,deployments -n NS`)",
                ));
                continue;
            };
            if let Some(other) = taken.insert(key.clone(), g.name.clone()) {
                problems.push(Problem::blocking(
                    "group-overlap",
                    object,
                    format!("it is a member of groups {other} and {}", g.name),
                    "name each workload in one --group only",
                ));
                continue;
            }
            add(apps, s);
            members.push(key);
        }
        out.push(GroupPlan {
            name: g.name.clone(),
            members,
            found_by: "--group".into(),
        });
    }
    // By label: (namespace, value) of every moving workload that carries it.
    let values: BTreeSet<(String, String)> = apps
        .iter()
        .filter(|_| !selection.no_label_groups)
        .filter(|a| a.kind != WorkloadKind::Claim && !taken.contains_key(&a.key()))
        .filter_map(|a| {
            let s = blue.workload(a.kind, &a.namespace, &a.name)?;
            Some((a.namespace.clone(), s.labels.get(PART_OF)?.clone()))
        })
        .collect();
    for (ns, value) in values {
        let mut members: Vec<&StatefulSet> = blue
            .statefulsets
            .iter()
            .chain(&blue.deployments)
            .filter(|s| s.namespace == ns && s.labels.get(PART_OF) == Some(&value))
            .filter(|s| !taken.contains_key(&s.key()))
            .collect();
        if members.len() < 2 {
            continue;
        }
        members.sort_by_key(|s| {
            (
                s.templates.is_empty() && s.claims.is_empty(),
                s.name.clone(),
            )
        });
        for s in &members {
            add(apps, s);
            taken.insert(s.key(), value.clone());
        }
        out.push(GroupPlan {
            // The value, or (another group has it) namespace/value, numbered if need be.
            name: {
                let taken = |n: &str| out.iter().any(|g| g.name == n);
                let mut name = value.clone();
                if taken(&name) {
                    name = format!("{ns}/{value}");
                }
                let mut n = 2;
                while taken(&name) {
                    name = format!("{ns}/{value}#{n}");
                    n += 1;
                }
                name
            },
            members: members.iter().map(|s| s.key()).collect(),
            found_by: format!("label {PART_OF}={value} in namespace {ns}"),
        });
    }
    out
}

/// Blue's claims that move on their own: selected, Bound, named by no workload (a
/// `--claim` one even when a pod mounts it: the plan refuses it, saying so).
fn standalone_claims<'a>(blue: &'a ClusterView, selection: &Selection) -> Vec<&'a Pvc> {
    blue.claims
        .iter()
        .filter(|c| c.phase == "Bound" && selection.selects_claim(c))
        .filter(|c| owner_of(blue, c).is_none())
        .filter(|c| {
            // Found by the selectors: an EBS claim nothing mounts. Named: planned, and
            // refused when mounted.
            selection.names_claim(c)
                || (!blue
                    .mounted
                    .contains(&(c.namespace.clone(), c.name.clone()))
                    && blue
                        .volume(&c.volume_name)
                        .is_some_and(|pv| pv.volume_id.is_some()))
        })
        .collect()
}

/// The workload a claim belongs to, if any: a StatefulSet's template claim (even of a
/// scaled-down ordinal) or one its pod template mounts, a Deployment's (even at 0), or
/// an owner reference's (an operator's, a controller's).
fn owner_of(blue: &ClusterView, c: &Pvc) -> Option<String> {
    if c.owned {
        return Some("its ownerReferences".into());
    }
    let sts = blue
        .statefulsets
        .iter()
        .filter(|s| s.namespace == c.namespace)
        .find(|s| {
            s.claims.iter().any(|(_, n)| *n == c.name)
                || s.templates.iter().any(|t| {
                    c.name
                        .strip_prefix(&format!("{}-{}-", t.name, s.name))
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
        });
    if let Some(s) = sts {
        return Some(format!("StatefulSet {}", s.key()));
    }
    blue.deployments
        .iter()
        .filter(|d| d.namespace == c.namespace)
        .find(|d| d.claims.iter().any(|(_, n)| *n == c.name))
        .map(|d| format!("Deployment {}", d.key()))
        .or_else(|| {
            blue.template_claims
                .get(&(c.namespace.clone(), c.name.clone()))
                .cloned()
        })
}

/// A standalone claim as the app the planner plans: no pods, its one claim.
fn claim_workload(c: &Pvc) -> StatefulSet {
    StatefulSet {
        kind: WorkloadKind::Claim,
        namespace: c.namespace.clone(),
        name: c.name.clone(),
        uid: c.uid.clone(),
        replicas: 0,
        status_replicas: 0,
        ready_replicas: 0,
        observed: true,
        labels: c.labels.clone(),
        templates: Vec::new(),
        retention: crate::world::RetentionPolicy::default(),
        scalers: Vec::new(),
        service_account: "default".into(),
        owners: Vec::new(),
        claims: vec![(String::new(), c.name.clone())],
    }
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn plan_app(inputs: &Inputs<'_>, s: &StatefulSet, options: &PlanOptions) -> AppPlan {
    let (blue, green) = (inputs.blue, inputs.green);
    let key = s.key();
    let kind = s.kind;
    let sts_obj = |ctx: &str| format!("{kind} {ctx}/{key}");
    let mut problems = Vec::new();

    // Replicas to move: blue's, or (blue already at 0) the ordinals whose claims exist
    // (a Deployment's claims are there whatever its replicas: one).
    // A group's member without volumes: blue's replicas, or (blue at 0, moved already)
    // green's.
    let stateless = kind != WorkloadKind::Claim && s.templates.is_empty() && s.claims.is_empty();
    let replicas = if kind == WorkloadKind::Claim {
        0
    } else if s.replicas > 0 {
        s.replicas
    } else if stateless {
        green
            .workload(kind, &s.namespace, &s.name)
            .map_or(0, |g| g.replicas)
    } else if kind == WorkloadKind::Deployment {
        problems.push(Problem::warning(
            "blue-at-zero",
            sts_obj(&blue.context),
            "blue is already at 0 replicas; green will run 1 on its claims",
            "nothing, if blue was stopped on purpose",
        ));
        1
    } else {
        let mut n = 0;
        while s.templates.iter().all(|t| {
            blue.claim(&s.namespace, &format!("{}-{}-{n}", t.name, s.name))
                .is_some()
        }) {
            n += 1;
        }
        if n > 0 {
            problems.push(Problem::warning(
                "blue-at-zero",
                sts_obj(&blue.context),
                format!("blue is already at 0 replicas; green will run {n} (the claims found)"),
                "nothing, if blue was stopped on purpose",
            ));
        }
        n
    };
    if s.retention.deletes_claims() {
        problems.push(Problem::warning(
            "retention-delete",
            sts_obj(&blue.context),
            format!(
                "persistentVolumeClaimRetentionPolicy is whenScaled: {}, whenDeleted: {}; scaling blue down would delete its claims",
                s.retention.when_scaled, s.retention.when_deleted
            ),
            "nothing: baton makes every PV Retain and the policy Retain before scaling blue down",
        ));
    }
    for scaler in &s.scalers {
        problems.push(Problem::warning(
            "scaler",
            format!("{scaler} in {}", blue.context),
            format!(
                "{scaler} has minReplicas 0 (HPAScaleToZero): unlike an HPA with a minimum, it can scale {key} in blue up from 0 during the move"
            ),
            "set its minReplicas to 1 in blue (an HPA leaves a target at 0 alone), or delete it there, before `baton migrate`",
        ));
    }
    // Operators: a custom resource owning the workload reconciles it back.
    for (api_version, kind, name) in &s.owners {
        let builtin = !api_version.contains('/') || api_version.starts_with("apps/");
        if builtin {
            continue;
        }
        let allowed = options
            .allow_operators
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind));
        if allowed {
            problems.push(Problem::warning(
                "operator-owned",
                sts_obj(&blue.context),
                format!(
                    "owned by {kind} {}/{name} ({api_version}); --allow-operator {kind} says its operator is paused",
                    s.namespace
                ),
                "keep the operator paused until the move is committed or rolled back",
            ));
        } else {
            problems.push(Problem::blocking(
                "operator-owned",
                sts_obj(&blue.context),
                format!(
                    "owned by {kind} {}/{name} ({api_version}): its operator would scale blue back up or fight the move, and baton cannot pause it",
                    s.namespace
                ),
                format!(
                    "pause that operator's reconciliation of {kind} {name} the way it documents, then pass --allow-operator {kind}"
                ),
            ));
        }
    }
    // GitOps and autoscalers that re-apply or scale it: fenced in the move.
    let mut fences = Vec::new();
    for f in &blue.fences {
        if f.active && f.manages(kind.as_str(), &s.namespace, &s.name, &s.labels) {
            problems.push(Problem::warning(
                "fenced",
                format!("{} in {}", f.fence, blue.context),
                format!(
                    "{} would scale {key} in blue back up inside its window; baton pauses it ({}) before blue stops, restores it on rollback and keeps it paused after commit",
                    f.fence, f.fence.kind.field()
                ),
                "after commit, make the pause permanent where the object comes from (Git, Helm values), or retire blue",
            ));
            fences.push(f.fence.clone());
        }
    }
    fences.sort();

    // Green's workload.
    let green_sts = green.workload(kind, &s.namespace, &s.name);
    let mut readiness = GreenReadiness {
        exists: green_sts.is_some() || kind == WorkloadKind::Claim,
        replicas: green_sts.map_or(0, |g| g.replicas),
        templates_match: false,
        zones_ready: true,
        migrated: false,
    };
    match green_sts {
        // A claim needs no workload in green.
        None if kind == WorkloadKind::Claim => readiness.templates_match = true,
        None => problems.push(Problem::blocking(
            "green-missing",
            sts_obj(&green.context),
            format!("{kind} {key} does not exist in {}", green.context),
            match kind {
                WorkloadKind::StatefulSet => format!(
                    "deploy it in {} with replicas: 0 and the same volumeClaimTemplates",
                    green.context
                ),
                WorkloadKind::Deployment | WorkloadKind::Claim => format!(
                    "deploy it in {} with replicas: 0, its pods mounting the same claims",
                    green.context
                ),
            },
        )),
        Some(g) if kind == WorkloadKind::Deployment => {
            let want: BTreeSet<&String> = s.claims.iter().map(|(_, c)| c).collect();
            let have: BTreeSet<&String> = g.claims.iter().map(|(_, c)| c).collect();
            readiness.templates_match = want == have;
            if want != have {
                problems.push(Problem::blocking(
                    "claims-differ",
                    sts_obj(&green.context),
                    format!(
                        "green's pods mount claims {have:?}, blue's {want:?}: green would not start on the moved volumes"
                    ),
                    "make green's Deployment mount the same claims (by name) as blue's",
                ));
            }
        }
        Some(g) => {
            let mismatch: Vec<String> = template_differences(s, g);
            readiness.templates_match = mismatch.is_empty();
            if !mismatch.is_empty() {
                problems.push(Problem::blocking(
                    "templates-differ",
                    sts_obj(&green.context),
                    format!("volumeClaimTemplates differ from blue's: {}", mismatch.join("; ")),
                    "make green's volumeClaimTemplates the same as blue's (name, class, size, access modes, volume mode)",
                ));
            }
        }
    }

    let green_zones: BTreeSet<&str> = green
        .nodes
        .iter()
        .filter(|n| n.ready)
        .map(|n| n.zone.as_str())
        .collect();
    let mut volumes = Vec::new();
    let mut all_ours = true;
    // The claims that move: a StatefulSet's per ordinal and template, a Deployment's by
    // name (pod volume name as the template, ordinal 0).
    let wanted: Vec<(String, String, i32)> = match kind {
        WorkloadKind::StatefulSet => (0..replicas)
            .flat_map(|ordinal| {
                s.templates.iter().map(move |t| {
                    (
                        format!("{}-{}-{ordinal}", t.name, s.name),
                        t.name.clone(),
                        ordinal,
                    )
                })
            })
            .collect(),
        WorkloadKind::Deployment | WorkloadKind::Claim => s
            .claims
            .iter()
            .map(|(volume, claim)| (claim.clone(), volume.clone(), 0))
            .collect(),
    };
    {
        for (claim_name, template, ordinal) in wanted {
            let claim_obj = format!(
                "PersistentVolumeClaim {}/{}/{claim_name}",
                blue.context, s.namespace
            );
            let Some(claim) = blue.claim(&s.namespace, &claim_name) else {
                problems.push(Problem::blocking(
                    "claim-missing",
                    claim_obj,
                    "the claim for this ordinal does not exist in blue",
                    "let blue's StatefulSet create it (all pods Running), or scale blue to the replicas that have data",
                ));
                all_ours = false;
                continue;
            };
            if claim.phase != "Bound" || claim.volume_name.is_empty() {
                problems.push(Problem::blocking(
                    "claim-unbound",
                    claim_obj,
                    format!(
                        "the claim is {}, not Bound",
                        if claim.phase.is_empty() {
                            "Pending"
                        } else {
                            &claim.phase
                        }
                    ),
                    "wait until it is Bound in blue (or fix its provisioning) before moving it",
                ));
                all_ours = false;
                continue;
            }
            let pv_obj = format!("PersistentVolume {}/{}", blue.context, claim.volume_name);
            let Some(pv) = blue.volume(&claim.volume_name) else {
                problems.push(Problem::blocking(
                    "pv-missing",
                    pv_obj,
                    "the claim's volume does not exist",
                    "repair the claim in blue first; baton only moves bound claims",
                ));
                all_ours = false;
                continue;
            };
            let (Some(volume_id), Some(source)) = (pv.volume_id.clone(), pv.source) else {
                problems.push(Problem::blocking(
                    "not-ebs",
                    pv_obj,
                    format!(
                        "the volume is backed by {}, not EBS; baton hands over only EBS volumes",
                        pv.other_backend.as_deref().unwrap_or("something else")
                    ),
                    "move this app another way (e.g. a Velero backup and restore) and leave it out with --namespace/--selector",
                ));
                all_ours = false;
                continue;
            };
            let Some(ec2) = inputs.ec2.get(&volume_id) else {
                problems.push(Problem::blocking(
                    "volume-missing",
                    format!("EBS volume {volume_id}"),
                    format!("EC2 does not know {volume_id}, which PV {} names", pv.name),
                    "check the AWS account and region (--profile, --region) match blue's",
                ));
                all_ours = false;
                continue;
            };
            if source == VolumeSource::InTree && !options.convert_to_csi {
                problems.push(Problem::warning(
                    "in-tree",
                    pv_obj.clone(),
                    "in-tree awsElasticBlockStore PV: green reaches it only through CSI migration",
                    "pass --convert-to-csi to create green's PV in CSI form (ebs.csi.aws.com)",
                ));
            }
            if ec2.multi_attach && !options.allow_multi_attach {
                problems.push(Problem::blocking(
                    "multi-attach",
                    format!("EBS volume {volume_id}"),
                    "multi-attach is enabled: blue and green could both write it at once",
                    "stop every writer yourself and pass --allow-multi-attach",
                ));
            }
            if !green_zones.contains(ec2.az.as_str()) {
                readiness.zones_ready = false;
                problems.push(Problem::blocking(
                    "zone-without-nodes",
                    format!("EBS volume {volume_id}"),
                    format!(
                        "the volume is in {}, where {} has no ready node",
                        ec2.az, green.context
                    ),
                    format!("add a node group to {} in {}", green.context, ec2.az),
                ));
            }
            let request = claim.request_bytes.unwrap_or(0);
            let capacity = pv.capacity_bytes.unwrap_or(0);
            if capacity < request {
                problems.push(Problem::blocking(
                    "capacity",
                    pv_obj.clone(),
                    format!(
                        "capacity {} is smaller than the claim's request {}; the binder would not check this for a pre-bound claim",
                        format_bytes(capacity),
                        format_bytes(request)
                    ),
                    "expand the volume in blue first (or lower the request in green's template)",
                ));
            }
            if !claim
                .access_modes
                .iter()
                .all(|m| pv.access_modes.contains(m))
            {
                problems.push(Problem::blocking(
                    "access-modes",
                    pv_obj.clone(),
                    format!(
                        "the claim asks for {:?} but the volume offers {:?}",
                        claim.access_modes, pv.access_modes
                    ),
                    "make the template's accessModes a subset of the PV's",
                ));
            }
            if claim.volume_mode != pv.volume_mode {
                problems.push(Problem::blocking(
                    "volume-mode",
                    pv_obj.clone(),
                    format!(
                        "volume mode {} differs from the claim's {}",
                        pv.volume_mode, claim.volume_mode
                    ),
                    "use the PV's volumeMode in the template",
                ));
            }
            if claim.storage_class != pv.storage_class {
                problems.push(Problem::blocking(
                    "class",
                    pv_obj.clone(),
                    format!(
                        "storage class {:?} differs from the claim's {:?}",
                        pv.storage_class, claim.storage_class
                    ),
                    "use the PV's storageClassName in the template",
                ));
            }
            if !claim.storage_class.is_empty()
                && !green
                    .storage_classes
                    .iter()
                    .any(|c| c.name == claim.storage_class)
            {
                problems.push(Problem::warning(
                    "class-missing-in-green",
                    format!("StorageClass {}/{}", green.context, claim.storage_class),
                    "green has no StorageClass of this name: the moved claims bind, but new ones (scale-up) cannot be provisioned",
                    format!("create StorageClass {} in {}", claim.storage_class, green.context),
                ));
            }
            let original = pv.original_reclaim_policy.unwrap_or(pv.reclaim_policy);
            if original != ReclaimPolicy::Retain {
                problems.push(Problem::warning(
                    "reclaim-delete",
                    pv_obj.clone(),
                    format!("reclaim policy is {original}"),
                    "nothing: baton sets Retain before anything else and records the original (restored on rollback, or on commit with --restore-reclaim-policy)",
                ));
            }

            // Green's claim of that name: absent, ours (a resumed move), or someone else's.
            let mut ours = false;
            if let Some(gc) = green.claim(&s.namespace, &claim_name) {
                if gc.volume_name == pv.name && gc.migration.is_some() {
                    ours = gc.phase == "Bound"
                        && green
                            .volume(&pv.name)
                            .and_then(|gpv| gpv.claim_ref.as_ref())
                            .is_some_and(|r| r.uid == gc.uid);
                } else {
                    problems.push(Problem::blocking(
                        "green-claim-taken",
                        format!("PersistentVolumeClaim {}/{}/{claim_name}", green.context, s.namespace),
                        if gc.volume_name.is_empty() {
                            "green already has a claim of this name, not bound to the planned volume".to_string()
                        } else {
                            format!("green's claim is bound to another volume ({})", gc.volume_name)
                        },
                        format!(
                            "if that claim holds nothing you need, delete it: kubectl --context {} -n {} delete pvc {claim_name}",
                            green.context, s.namespace
                        ),
                    ));
                }
            }
            all_ours &= ours;
            volumes.push(VolumePlan {
                claim: claim_name,
                template,
                ordinal,
                blue_claim_uid: claim.uid.clone(),
                pv: pv.name.clone(),
                pv_uid: pv.uid.clone(),
                volume_id,
                az: ec2.az.clone(),
                size_gib: ec2.size_gib,
                volume_type: ec2.volume_type.clone(),
                encrypted: ec2.encrypted,
                kms_key_id: ec2.kms_key_id.clone(),
                multi_attach: ec2.multi_attach,
                source,
                reclaim_policy: pv.reclaim_policy,
                original_reclaim_policy: original,
                capacity_bytes: capacity,
                request_bytes: request,
                storage_class: claim.storage_class.clone(),
                access_modes: claim.access_modes.clone(),
                volume_mode: claim.volume_mode.clone(),
            });
        }
    }
    // A claim that another workload's pod template also mounts (a backup CronJob, a
    // DaemonSet): its next pod in blue would mount the volume green holds.
    for v in &volumes {
        if let Some(other) = blue
            .template_claims
            .get(&(s.namespace.clone(), v.claim.clone()))
        {
            problems.push(Problem::blocking(
                "claim-also-mounted",
                format!("PersistentVolumeClaim {}/{}/{}", blue.context, s.namespace, v.claim),
                format!(
                    "{other} mounts it too: its next pod in blue would mount the volume green holds"
                ),
                format!(
                    "suspend or delete {other} in blue (a CronJob: spec.suspend: true) for the move, and run it in green afterwards"
                ),
            ));
        }
    }
    // A Deployment of several replicas on a ReadWriteOnce claim runs only while every
    // replica shares one node; green would schedule them anywhere.
    if kind == WorkloadKind::Deployment && replicas > 1 {
        let rwo: Vec<&str> = volumes
            .iter()
            .filter(|v| {
                v.access_modes
                    .iter()
                    .any(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod")
            })
            .map(|v| v.claim.as_str())
            .collect();
        if !rwo.is_empty() {
            problems.push(Problem::blocking(
                "rwo-shared",
                sts_obj(&blue.context),
                format!(
                    "{replicas} replicas share the ReadWriteOnce claim(s) {}: that works only while every replica runs on one node, and green would place them anywhere",
                    rwo.join(", ")
                ),
                "scale it to 1 in blue (or make it a StatefulSet with a claim per replica), then plan again",
            ));
        }
    }
    let handover = handover_problems(inputs, &volumes, &mut problems);
    key_problems(inputs, &volumes, &mut problems);
    identity_problems(inputs, s, &mut problems);
    readiness.migrated = if stateless {
        s.replicas == 0 && readiness.replicas > 0
    } else {
        all_ours && !volumes.is_empty()
    };
    if readiness.exists && readiness.replicas > 0 && !readiness.migrated {
        problems.push(Problem::blocking(
            "green-not-zero",
            sts_obj(&green.context),
            format!(
                "green runs {} replicas; it must be at 0 until its claims are bound to blue's volumes",
                readiness.replicas
            ),
            format!(
                "kubectl --context {} -n {} scale {} {} --replicas=0 (and delete any claims it created)",
                green.context,
                s.namespace,
                kind.as_str().to_lowercase(),
                s.name
            ),
        ));
    }
    if replicas == 0 && kind != WorkloadKind::Claim {
        problems.push(Problem::warning(
            "nothing-to-move",
            sts_obj(&blue.context),
            if stateless {
                "blue and green are at 0 replicas: there is nothing to stop or start"
            } else {
                "blue is at 0 replicas and has no claims: there is nothing to hand over"
            },
            "nothing",
        ));
    }
    AppPlan {
        kind,
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        blue_uid: s.uid.clone(),
        replicas,
        retention: s.retention.clone(),
        green: readiness,
        volumes,
        problems,
        handover,
        fences,
    }
}

/// The volumes' ownership tags: any naming a cluster that is neither blue nor green
/// refuses the app; green's driver needing tags the volumes lack plans a re-tag in the
/// window (a warning says which and why).
fn handover_problems(
    inputs: &Inputs<'_>,
    volumes: &[VolumePlan],
    problems: &mut Vec<Problem>,
) -> Option<handover::TagChange> {
    let d = &inputs.drivers;
    let tags: BTreeMap<String, crate::world::Tags> = volumes
        .iter()
        .filter_map(|v| {
            inputs
                .ec2
                .get(&v.volume_id)
                .map(|e| (v.volume_id.clone(), e.tags.clone()))
        })
        .collect();
    if let (Some(b), Some(g)) = (&d.blue_name, &d.green_name) {
        let mut foreign = false;
        for (id, t) in &tags {
            for (key, cluster) in handover::foreign_owners(t, b, g) {
                foreign = true;
                problems.push(Problem::blocking(
                    "volume-foreign-cluster",
                    format!("EBS volume {id}"),
                    format!(
                        "its tag {key} names cluster {cluster}, which is neither blue ({b}) nor green ({g}); that cluster's EBS CSI driver may still use it"
                    ),
                    format!(
                        "find out why {id} names {cluster}; if it belongs to {b}, fix the tag (aws ec2 create-tags / delete-tags --resources {id}), then plan again"
                    ),
                ));
            }
        }
        if foreign {
            return None;
        }
    }
    let Some(Driver::Known { role, access }) = &d.green else {
        return None;
    };
    let why = format!(
        "green's EBS CSI driver role {role} may attach and detach only {}",
        access.describe()
    );
    match handover::plan_change(
        access,
        d.blue_name.as_deref(),
        d.green_name.as_deref(),
        &tags,
        &why,
    ) {
        Ok(None) => None,
        Ok(Some(change)) => {
            // One per volume, alike, so that people see them grouped by volume.
            for id in tags.keys() {
                problems.push(Problem::warning(
                    "retag",
                    format!("EBS volume {id}"),
                    format!(
                        "baton re-tags it in the window, after blue has let go of it ({}): {why}",
                        change.describe()
                    ),
                    "nothing: rollback puts blue's tags back, commit keeps green's",
                ));
            }
            Some(change)
        }
        Err(reason) => {
            // No tag lets green's driver attach them: the window would stall on green's
            // attach. Sure only when every statement was read; else a warning.
            let fix = "give green's driver role a policy that allows ec2:AttachVolume and ec2:DetachVolume on these volumes (e.g. AmazonEBSCSIDriverPolicy), or pass --ebs-csi-role with the right role";
            let object = format!("the EBS CSI driver of {}", inputs.green.context);
            if access.skipped.is_empty() {
                problems.push(Problem::blocking(
                    "green-driver-cannot-attach",
                    object,
                    format!(
                        "{reason} (role {role}): green's attach would fail in the window, with the app down"
                    ),
                    fix,
                ));
            } else {
                problems.push(Problem::warning(
                    "green-driver-cannot-attach",
                    object,
                    format!(
                        "{reason} (role {role}), as far as baton reads its policies (not read: {})",
                        access.skipped.join("; ")
                    ),
                    fix,
                ));
            }
            None
        }
    }
}

/// The volumes' KMS keys: one green's driver cannot use refuses the app (its attach
/// would fail in the window, with the app down); one baton could not check is a warning.
fn key_problems(inputs: &Inputs<'_>, volumes: &[VolumePlan], problems: &mut Vec<Problem>) {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for v in volumes {
        if let Some(key) = inputs
            .ec2
            .get(&v.volume_id)
            .and_then(|e| e.kms_key_id.as_deref())
        {
            by_key.entry(key).or_default().push(&v.volume_id);
        }
    }
    let (from, to) = (&inputs.blue.context, &inputs.green.context);
    for (key, vols) in by_key {
        let object = format!("KMS key {key}");
        let which = format!("{} ({})", plural_volumes(vols.len()), vols.join(", "));
        match inputs.drivers.green_keys.get(key) {
            Some(KeyCheck::Checked(u)) if u.usable() => {}
            Some(KeyCheck::Checked(u)) => {
                let unread = if u.skipped.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; statements baton does not evaluate were not counted: {}",
                        u.skipped.join("; ")
                    )
                };
                problems.push(Problem::blocking(
                    "volume-key-green-cannot-use",
                    object,
                    format!(
                        "green's EBS CSI driver role {} may not use this key ({} allowed neither by the key policy, nor by the role's IAM policies through it, nor by a grant): green's attach of {which} would fail in the window, with the app down{unread}",
                        u.role,
                        u.missing.join(", ")
                    ),
                    format!(
                        "before the move, run `baton volumes grant --from {from} --to {to}` (a KMS grant on the key for {}), or add that role to the key policy's key-user statements; then plan again",
                        u.role
                    ),
                ));
            }
            Some(KeyCheck::Unknown(why)) => problems.push(Problem::warning(
                "volume-key-unchecked",
                object,
                format!(
                    "{which} are encrypted with it and baton could not tell whether green's EBS CSI driver may use it: {why}"
                ),
                "give baton kms:DescribeKey, kms:GetKeyPolicy and kms:ListGrants on the key (see `baton permissions`), or check the key policy and grants by hand; green's attach fails in the window if its driver cannot use the key",
            )),
            None => {}
        }
    }
}

/// The IAM role the app's pods assume: one green's pods could not assume refuses the
/// app (they would crash-loop on STS's AccessDenied in the window, with the app down);
/// one baton could not check is a warning.
fn identity_problems(inputs: &Inputs<'_>, s: &StatefulSet, problems: &mut Vec<Problem>) {
    let Some(roles) = &inputs.pod_roles else {
        return;
    };
    let account = format!("{}/{}", s.namespace, s.service_account);
    let Some(role) = roles.accounts.get(&account) else {
        return;
    };
    let (from, to) = (&inputs.blue.context, &inputs.green.context);
    let object = format!("ServiceAccount {account}");
    let fix = format!(
        "before the move, run `baton identity apply --from {from} --to {to} -n {}` (it creates green's IAM OIDC provider if it is missing and adds green's statement to the role's trust policy, keeping blue's); then plan again",
        s.namespace
    );
    let facts = match &roles.green {
        Ok(f) => f,
        Err(why) => {
            problems.push(Problem::warning(
                "pod-role-unchecked",
                object,
                format!(
                    "the pods of {} assume IAM role {role}, and baton could not tell whether green's pods may: {why}",
                    s.key()
                ),
                format!(
                    "run `baton identity plan --from {from} --to {to} -n {}` to see why; green's pods crash-loop in the window if the role does not trust green",
                    s.namespace
                ),
            ));
            return;
        }
    };
    let Some(trust) = facts
        .roles
        .iter()
        .find(|r| r.role == *role && r.service_accounts.contains(&account))
    else {
        problems.push(Problem::warning(
            "pod-role-unchecked",
            object,
            format!(
                "the pods of {} assume IAM role {role}, whose trust of green was not read",
                s.key()
            ),
            fix,
        ));
        return;
    };
    if trust.trusted && facts.provider_exists {
        return;
    }
    let why = match (&trust.problem, trust.trusted) {
        (Some(p), _) => format!("green cannot be given the role: {p}"),
        (None, true) => format!(
            "its trust policy names green's IAM OIDC provider {}, which does not exist in IAM",
            facts.provider
        ),
        (None, false) if !facts.provider_exists => format!(
            "green's IAM OIDC provider {} does not exist, and the role's trust policy does not admit {} from it",
            facts.provider,
            crate::identity::subject(&s.namespace, &s.service_account)
        ),
        (None, false) => format!(
            "its trust policy does not admit {} from green's IAM OIDC provider {}",
            crate::identity::subject(&s.namespace, &s.service_account),
            facts.provider
        ),
    };
    problems.push(Problem::blocking(
        "pod-role-green-untrusted",
        object,
        format!(
            "the pods of {} assume IAM role {role}; {why}: green's pods would crash-loop on AccessDenied from sts:AssumeRoleWithWebIdentity in the window, with the app down",
            s.key()
        ),
        fix,
    ));
}

fn plural_volumes(n: usize) -> String {
    if n == 1 {
        "1 volume".into()
    } else {
        format!("{n} volumes")
    }
}

fn template_differences(blue: &StatefulSet, green: &StatefulSet) -> Vec<String> {
    let mut out = Vec::new();
    for b in &blue.templates {
        match green.templates.iter().find(|g| g.name == b.name) {
            None => out.push(format!("template {} is missing", b.name)),
            Some(g) => {
                if g.storage_class != b.storage_class {
                    out.push(format!(
                        "{}: class {:?} vs blue's {:?}",
                        b.name, g.storage_class, b.storage_class
                    ));
                }
                if g.request_bytes != b.request_bytes {
                    out.push(format!(
                        "{}: size {} vs blue's {}",
                        b.name,
                        g.request_bytes.map(format_bytes).unwrap_or_default(),
                        b.request_bytes.map(format_bytes).unwrap_or_default()
                    ));
                }
                if g.access_modes != b.access_modes {
                    out.push(format!(
                        "{}: access modes {:?} vs blue's {:?}",
                        b.name, g.access_modes, b.access_modes
                    ));
                }
                if g.volume_mode != b.volume_mode {
                    out.push(format!(
                        "{}: volume mode {} vs blue's {}",
                        b.name, g.volume_mode, b.volume_mode
                    ));
                }
            }
        }
    }
    for g in &green.templates {
        if !blue.templates.iter().any(|b| b.name == g.name) {
            out.push(format!("template {} is only in green", g.name));
        }
    }
    out
}

/// The region of an availability zone (`us-east-1a` → `us-east-1`, a Local Zone
/// `us-east-1-bos-1a` → `us-east-1`, `us-gov-west-1b` → `us-gov-west-1`): the name up to
/// and including the digits of its first part that starts with a digit.
pub fn region_of_zone(zone: &str) -> Option<String> {
    let parts: Vec<&str> = zone.split('-').collect();
    let at = parts
        .iter()
        .position(|p| p.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = parts[at].chars().take_while(char::is_ascii_digit).collect();
    (at > 0).then(|| format!("{}-{digits}", parts[..at].join("-")))
}

/// Blue and green must be in one region, the one baton's AWS calls go to: EBS volumes
/// never leave their region, and EC2 answers for one region only (a cluster elsewhere
/// would look as if its nodes and volumes did not exist).
fn region_problems(inputs: &Inputs<'_>) -> Vec<Problem> {
    let regions = |v: &ClusterView| -> BTreeSet<String> {
        v.nodes
            .iter()
            .filter_map(|n| region_of_zone(&n.zone))
            .collect()
    };
    let (blue, green) = (regions(inputs.blue), regions(inputs.green));
    let object = format!(
        "clusters {} and {}",
        inputs.blue.context, inputs.green.context
    );
    let mut out = Vec::new();
    if !blue.is_empty() && !green.is_empty() && blue != green {
        out.push(Problem::blocking(
            "different-region",
            object,
            format!(
                "blue's nodes are in {} and green's in {}; EBS volumes cannot leave their region",
                join(&blue),
                join(&green)
            ),
            "create green in blue's region and VPC, or pass the right --to context",
        ));
        return out;
    }
    let here = &inputs.aws_region;
    if !here.is_empty() && !blue.is_empty() && !blue.contains(here) {
        out.push(Problem::blocking(
            "wrong-aws-region",
            object,
            format!(
                "the clusters' nodes are in {} but baton's AWS calls go to {here}",
                join(&blue)
            ),
            format!(
                "pass --region {} (or set AWS_REGION / the profile's region)",
                blue.iter().next().map_or("", String::as_str)
            ),
        ));
    }
    out
}
