//! `baton traffic bindings`: green's TargetGroupBindings, one for each of blue's, into
//! green's target group. The decision is `baton_core::traffic::bindings`'; this reads,
//! prints and (with `--apply`) sends.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use baton_core::traffic::bindings::{self, BindingPlan, READINESS_GATE_LABEL, TargetGroupView};
use baton_kube::request::Mutation;
use serde::Serialize;

use crate::args::{Output, TrafficBindingsArgs};
use crate::commands::files::RequestJournal;
use crate::commands::output::{confirm, render, table};
use crate::commands::show::plural;
use crate::commands::stateful::world;
use crate::exit::{Refused, code};
use crate::resolved::{AwsTarget, Clusters};

const JOURNAL: &str = "bindings.jsonl";

/// What the command prints for scripts.
#[derive(Debug, Serialize)]
struct Report {
    from: String,
    to: String,
    green_cluster: String,
    bindings: Vec<BindingPlan>,
}

/// `baton traffic bindings`.
pub async fn run(a: TrafficBindingsArgs) -> anyhow::Result<ExitCode> {
    let clusters = Clusters::new(&a.clusters, &["traffic", "bindings"])?;
    let (blue, green, aws) = world::connect(&clusters, &AwsTarget::from(&a.aws)).await?;
    let report = read(&a, &blue, &green, &aws).await?;
    let refused: Vec<&BindingPlan> = report
        .bindings
        .iter()
        .filter(|b| b.action == "refused")
        .collect();
    if !a.apply || !refused.is_empty() {
        print(&report, a.output)?;
        if refused.is_empty() {
            return Ok(ExitCode::from(code::OK));
        }
        return Err(Refused(format!(
            "failed to plan green's binding for {}: {}",
            plural(refused.len(), "of blue's TargetGroupBindings"),
            refused
                .iter()
                .map(|b| format!("{}: {}", b.binding, b.problem.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .into());
    }
    let requests = requests(&report.bindings);
    if a.dry_run {
        for (_, m) in &requests {
            outln!("{m}");
        }
        errln!(
            "dry run: {} to send to {}, none sent",
            plural(requests.len(), "request"),
            green.context
        );
        return Ok(ExitCode::from(code::OK));
    }
    if !requests.is_empty() {
        if !a.yes {
            for (_, m) in &requests {
                errln!("{m}");
            }
        }
        confirm(
            a.yes,
            &format!(
                "send the {} above to {}",
                plural(requests.len(), "request"),
                green.context
            ),
        )?;
        let mut journal = RequestJournal::open(&a.state_dir, JOURNAL)?;
        for (what, m) in &requests {
            let send = async {
                green.send(m).await.with_context(|| {
                    format!("failed to {what} (requests sent before it stay; run again to finish)")
                })
            };
            journal.send(&m.to_string(), send).await?;
        }
    }
    let after = read(&a, &blue, &green, &aws).await?;
    print(&after, a.output)?;
    Ok(ExitCode::from(
        if after.bindings.iter().all(|b| b.action == "exists") {
            code::OK
        } else {
            code::REFUSED
        },
    ))
}

/// The namespace labels first (so the pods green's binding selects get their readiness
/// gates), then the bindings.
fn requests(plans: &[BindingPlan]) -> Vec<(String, Mutation)> {
    let mut out = Vec::new();
    let mut labelled = std::collections::BTreeSet::new();
    for p in plans.iter().filter(|p| p.action == "create") {
        let Some(b) = &p.green else { continue };
        if p.label_namespace && labelled.insert(b.namespace.clone()) {
            let m = baton_kube::bindings::label_namespace(
                &b.namespace,
                READINESS_GATE_LABEL.0,
                READINESS_GATE_LABEL.1,
            );
            out.push((m.what.clone(), m));
        }
    }
    for p in plans.iter().filter(|p| p.action == "create") {
        if let Some(b) = &p.green {
            let m = baton_kube::bindings::create_binding(b);
            out.push((m.what.clone(), m));
        }
    }
    out
}

/// Reads both clusters' bindings and the account's target groups, and decides.
async fn read(
    a: &TrafficBindingsArgs,
    blue: &baton_kube::Cluster,
    green: &baton_kube::Cluster,
    aws: &baton_aws::Aws,
) -> anyhow::Result<Report> {
    let Some(blue_bindings) = blue.target_group_bindings(&a.namespaces).await? else {
        return Err(Refused(format!(
            "{} does not serve TargetGroupBindings (elbv2.k8s.aws/v1beta1): it runs no AWS Load Balancer Controller, so it has no bindings to hand over",
            blue.context
        ))
        .into());
    };
    let Some(green_bindings) = green.target_group_bindings(&[]).await? else {
        return Err(Refused(format!(
            "{} does not serve TargetGroupBindings (elbv2.k8s.aws/v1beta1): install the AWS Load Balancer Controller in green first",
            green.context
        ))
        .into());
    };
    let green_cluster = match &a.green_cluster {
        Some(n) => n.clone(),
        None => world::eks_name(green, aws)
            .await?
            .unwrap_or_else(|| green.context.clone()),
    };
    let groups = aws
        .describe_target_groups(None, &[])
        .await
        .context("failed to list the target groups")?;
    let arns: Vec<String> = groups.iter().map(|g| g.arn.clone()).collect();
    let tags = aws
        .elb_tags(&arns)
        .await
        .context("failed to read the target groups' tags")?;
    let views: Vec<TargetGroupView> = groups
        .into_iter()
        .map(|g| TargetGroupView {
            tags: tags.get(&g.arn).cloned().unwrap_or_default(),
            arn: g.arn,
            name: g.name,
        })
        .collect();
    let labelled = green
        .namespaces_labelled(READINESS_GATE_LABEL.0, READINESS_GATE_LABEL.1)
        .await?;
    let map: BTreeMap<String, String> = a.map.iter().cloned().collect();
    let plans = bindings::plan(&bindings::Inputs {
        blue: &blue_bindings,
        green: &green_bindings,
        map: &map,
        groups: &views,
        green_cluster: &green_cluster,
        labelled: &labelled,
    });
    Ok(Report {
        from: blue.context.clone(),
        to: green.context.clone(),
        green_cluster,
        bindings: plans,
    })
}

fn short(arn: &str) -> &str {
    // arn:…:targetgroup/NAME/ID → NAME
    arn.split('/').nth(1).unwrap_or(arn)
}

fn print(report: &Report, output: Output) -> anyhow::Result<()> {
    if output != Output::Table {
        out!("{}", render(report, output)?);
        return Ok(());
    }
    if report.bindings.is_empty() {
        outln!(
            "{} has no TargetGroupBinding in the selected namespaces",
            report.from
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .bindings
        .iter()
        .map(|b| {
            vec![
                b.binding.clone(),
                b.service.clone(),
                if b.target_type.is_empty() {
                    "-".into()
                } else {
                    b.target_type.clone()
                },
                short(&b.blue_target_group).to_string(),
                if b.green_target_group.is_empty() {
                    "-".into()
                } else {
                    short(&b.green_target_group).to_string()
                },
                match (&b.problem, b.action.as_str()) {
                    (Some(p), _) => format!("refused: {p}"),
                    (None, "create") if b.label_namespace => {
                        "create (and label the namespace for readiness gates)".into()
                    }
                    (None, a) => a.to_string(),
                },
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &["BINDING", "SERVICE", "TYPE", "BLUE TG", "GREEN TG", "GREEN"],
            &rows
        )
    );
    Ok(())
}
