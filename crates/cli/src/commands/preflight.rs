//! `baton preflight`: reads blue, green, EC2 and local manifests, and reports what would
//! break. The stateful move's checks come from the planner (one source of truth with
//! `baton plan`); the rest are `baton_core::preflight`'s. A read that fails becomes an
//! "unchecked" entry, never a silent pass: the report then exits 3.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use baton_aws::{Aws, Filter};
use baton_core::preflight::{self, ApiSource, ApiUse, Facts, Network, Report, Unchecked, VpcFacts};
use baton_kube::Cluster;
use ipnet::Ipv4Net;

use super::output::render;
use super::stateful::world;
use crate::args::{Output, PreflightArgs};
use crate::resolved::{AwsTarget, Clusters, Selection};

/// `baton preflight`. Anything that stops the checks from running at all (an unknown
/// context, an unreadable manifests directory, AWS unreachable) exits 3 with the reason;
/// a command line that lacks what it needs (`--from` and `--to` the same) exits 2 first.
pub async fn run(a: PreflightArgs) -> anyhow::Result<ExitCode> {
    let clusters = Clusters::new(&a.clusters, &["preflight"])?;
    let mut selection = Selection::default();
    selection.filter.namespaces.clone_from(&a.namespaces);
    selection.options.allow_multi_attach = a.allow_multi_attach;
    selection.ebs_csi_roles.clone_from(&a.ebs_csi_roles);
    match check(&a, &clusters, &selection, &AwsTarget::from(&a.aws)).await {
        Ok(report) => {
            match a.output {
                Output::Table => out!("{}", table(&report)),
                o => out!("{}", render(&report, o)?),
            }
            Ok(ExitCode::from(report.outcome.exit_code()))
        }
        Err(e) => {
            errln!("error: could not check: {e}");
            for cause in e.chain().skip(1) {
                errln!("  caused by: {cause}");
            }
            Ok(ExitCode::from(preflight::Outcome::Unchecked.exit_code()))
        }
    }
}

async fn check(
    a: &PreflightArgs,
    clusters: &Clusters,
    selection: &Selection,
    aws: &AwsTarget,
) -> anyhow::Result<Report> {
    // Local input first: a wrong path is the user's to fix before any cluster is read.
    let files = manifest_files(&a.manifests)?;
    let (blue, green, aws) = world::connect(clusters, aws).await?;
    let (plan, world) = world::read_world(&blue, &green, &aws, selection)
        .await
        .context("failed to read blue, green and EC2 for the plan's checks")?;
    let mut unchecked = Vec::new();
    let (live, helm, addons, drivers, kubelets, pdbs, managers, network, identity, unbound) = tokio::join!(
        blue.last_applied_api_uses(),
        blue.helm_api_uses(),
        green.addons(),
        green.csi_drivers(),
        green.kubelets(),
        blue.disruption_budgets(),
        blue.statefulset_managers(),
        read_network(&blue, &green, &aws, a.vpc.as_deref(), &world.vpcs.0),
        crate::commands::identity::facts(&blue, &green, &aws, &selection.filter.namespaces),
        unbound_bindings(&blue, &green, &selection.filter.namespaces),
    );
    // What was read is checked even when another source failed (that one is unchecked).
    let mut uses: Vec<ApiUse> = Vec::new();
    for (what, r) in [
        (
            "removed-api (blue's last-applied objects)",
            live.map_err(anyhow::Error::from),
        ),
        (
            "removed-api (blue's Helm releases)",
            helm.map_err(anyhow::Error::from),
        ),
    ] {
        uses.extend(keep(&mut unchecked, what, r).unwrap_or_default());
    }
    for f in &files {
        uses.extend(
            keep(
                &mut unchecked,
                "removed-api (--manifests)",
                read_manifest(f),
            )
            .unwrap_or_default(),
        );
    }
    let facts = Facts {
        api_uses: Some(uses),
        green_addons: keep(
            &mut unchecked,
            "addon-not-ready (green's kube-system)",
            addons.map_err(Into::into),
        ),
        green_csi_drivers: keep(
            &mut unchecked,
            "ebs-csi-missing (green's CSIDrivers)",
            drivers.map_err(Into::into),
        ),
        green_kubelets: keep(
            &mut unchecked,
            "kubelet-skew (green's nodes)",
            kubelets.map_err(Into::into),
        ),
        blue_pdbs: keep(
            &mut unchecked,
            "pdb-blocks (blue's PodDisruptionBudgets)",
            pdbs.map_err(Into::into),
        ),
        blue_managers: keep(
            &mut unchecked,
            "managed-by (blue's StatefulSets)",
            managers.map_err(Into::into),
        ),
        network: keep(&mut unchecked, "sg-blue-only (security groups)", network),
        identity: keep(
            &mut unchecked,
            "irsa-role-untrusted (IAM roles of blue's ServiceAccounts)",
            identity,
        ),
        unbound: keep(
            &mut unchecked,
            "target-group-binding-missing (TargetGroupBindings)",
            unbound,
        ),
        vpc: a.vpc.as_ref().map(|v| VpcFacts {
            expected: v.clone(),
            blue: world.vpcs.0.clone(),
            green: world.vpcs.1.clone(),
        }),
    };
    Ok(preflight::check(
        &plan,
        &world.blue,
        &world.green,
        &facts,
        unchecked,
    ))
}

/// The value of a read that succeeded; a failed one is recorded as unchecked.
fn keep<T>(unchecked: &mut Vec<Unchecked>, check: &str, r: anyhow::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            unchecked.push(Unchecked {
                check: check.into(),
                reason: format!("{e:#}"),
            });
            None
        }
    }
}

/// Every manifest file under the given paths (a directory recursively; only *.yaml,
/// *.yml, *.json), sorted; a path that cannot be read is an error naming it.
fn manifest_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "failed to read the manifests directory {}: pass a readable directory or file to --manifests",
                dir.display()
            )
        })?;
        for e in entries {
            let path = e
                .with_context(|| format!("failed to list {}", dir.display()))?
                .path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else {
            walk(p, &mut out)?;
        }
    }
    out.sort();
    Ok(out)
}

fn read_manifest(path: &Path) -> anyhow::Result<Vec<ApiUse>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    baton_kube::helm::api_uses(
        &text,
        "",
        &ApiSource::File {
            path: path.display().to_string(),
        },
    )
    .map_err(|e| anyhow::anyhow!("failed to parse {} as YAML or JSON: {e}", path.display()))
}

/// The security groups of the VPC (`--vpc`, else blue's nodes'), and both clusters'
/// node ranges (their instances' subnets) and pod ranges (their ENIConfigs' subnets).
async fn read_network(
    blue: &Cluster,
    green: &Cluster,
    aws: &Aws,
    vpc: Option<&str>,
    blue_vpcs: &BTreeSet<String>,
) -> anyhow::Result<Network> {
    let (b, g) = futures::try_join!(ranges(blue, aws), ranges(green, aws))?;
    let vpc = vpc
        .map(String::from)
        .or_else(|| blue_vpcs.iter().next().cloned());
    let filters: Vec<Filter> = vpc
        .iter()
        .map(|v| Filter::new("vpc-id", [v.clone()]))
        .collect();
    let groups = aws
        .describe_security_groups(&[], &filters)
        .await
        .context("failed to read the security groups")?;
    Ok(Network {
        groups: super::network::mirror_groups(groups),
        blue: b,
        green: g,
    })
}

async fn ranges(cluster: &Cluster, aws: &Aws) -> anyhow::Result<Vec<Ipv4Net>> {
    let (enis, instances) = futures::try_join!(cluster.eni_configs(), cluster.node_instances())?;
    let mut subnets: BTreeSet<String> = enis
        .into_iter()
        .map(|e| e.subnet)
        .filter(|s| !s.is_empty())
        .collect();
    if !instances.is_empty() {
        let found = aws
            .describe_instances(&[Filter::new("instance-id", instances)])
            .await
            .with_context(|| {
                format!("failed to read {}'s nodes' EC2 instances", cluster.context)
            })?;
        subnets.extend(found.into_iter().filter_map(|i| i.subnet_id));
    }
    if subnets.is_empty() {
        return Ok(Vec::new());
    }
    let found = aws
        .describe_subnets(&[Filter::new("subnet-id", subnets)])
        .await
        .with_context(|| format!("failed to read {}'s subnets", cluster.context))?;
    let mut out: Vec<Ipv4Net> = found.into_iter().map(|s| s.cidr).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn table(r: &Report) -> String {
    let count = |s| r.findings.iter().filter(|f| f.severity == s).count();
    let mut out = format!(
        "Preflight: {} ({}) → {} ({}): {} fail, {} warn, {} info\n",
        r.from,
        r.from_version,
        r.to,
        r.to_version,
        count(preflight::Severity::Fail),
        count(preflight::Severity::Warn),
        count(preflight::Severity::Info),
    );
    for f in &r.findings {
        out += &format!(
            "\n{:<5} [{}] {}\n      problem: {}\n      why:     {}\n      fix:     {}\n",
            f.severity.as_str().to_uppercase(),
            f.check,
            f.object,
            f.problem,
            f.why,
            f.fix
        );
    }
    if !r.unchecked.is_empty() {
        out += "\nCould not check (the report is incomplete):\n";
        for u in &r.unchecked {
            out += &format!("  {}: {}\n", u.check, u.reason);
        }
    }
    out += &format!(
        "\nResult: {} (exit {})\n",
        match r.outcome {
            preflight::Outcome::Pass => "pass",
            preflight::Outcome::Warnings => "warnings",
            preflight::Outcome::Failures => "failures",
            preflight::Outcome::Unchecked => "could not check everything",
        },
        r.outcome.exit_code()
    );
    out
}

/// Blue's TargetGroupBindings without a green binding of the same namespace and name
/// (none when blue runs no load balancer controller).
async fn unbound_bindings(
    blue: &baton_kube::Cluster,
    green: &baton_kube::Cluster,
    namespaces: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let Some(blue_bindings) = blue.target_group_bindings(namespaces).await? else {
        return Ok(Vec::new());
    };
    let green_bindings = green
        .target_group_bindings(namespaces)
        .await?
        .unwrap_or_default();
    Ok(blue_bindings
        .iter()
        .filter(|b| {
            !green_bindings
                .iter()
                .any(|g| g.namespace == b.namespace && g.name == b.name)
        })
        .map(|b| (b.key(), b.target_group().to_string()))
        .collect())
}
