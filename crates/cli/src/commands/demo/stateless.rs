//! What the demo does in place of the user's other tools before a traffic shift: green's
//! stateless apps rolled out (a CD pipeline would: each Deployment to blue's replicas)
//! and their pods registered in green's target group, waited for (green's AWS Load
//! Balancer Controller registers them). The clients sending requests are the bed's
//! (`baton_sim::traffic`: the ALB publishes each group's share of them to CloudWatch by
//! the listener's weights). None of this is baton's job; the gates of `baton traffic
//! shift` read its results.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::commands::retry::poll_until;

/// Scales every Deployment of `namespace` in green to blue's replicas; returns
/// `(name, replicas, app label of its pods)` of those it scaled.
pub async fn roll_out(
    blue: &kube::Client,
    green: &kube::Client,
    namespace: &str,
) -> anyhow::Result<Vec<(String, i32, Option<String>)>> {
    let blue_deps = Api::<Deployment>::namespaced(blue.clone(), namespace)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("failed to list blue's Deployments in {namespace}"))?;
    let green_api = Api::<Deployment>::namespaced(green.clone(), namespace);
    let mut scaled = Vec::new();
    for d in blue_deps.items {
        let name = d.metadata.name.clone().unwrap_or_default();
        let spec = d.spec.unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let app = spec
            .selector
            .match_labels
            .and_then(|l| l.get("app").cloned());
        green_api
            .patch_scale(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } })),
            )
            .await
            .with_context(|| format!("failed to scale green's Deployment {namespace}/{name}"))?;
        scaled.push((name, replicas, app));
    }
    Ok(scaled)
}

/// Waits (up to `timeout`) until `want` targets of the target group are healthy (green's
/// load balancer controller registers green's pods through their binding); returns
/// their ids.
pub async fn healthy_targets(
    aws: &baton_aws::Aws,
    target_group_arn: &str,
    want: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let seen = std::cell::Cell::new(0);
    let look = || async {
        let healthy: Vec<String> = aws
            .describe_target_health(target_group_arn)
            .await?
            .into_iter()
            .filter(|t| t.state == "healthy")
            .map(|t| t.id)
            .collect();
        seen.set(healthy.len());
        Ok((healthy.len() >= want).then_some(healthy))
    };
    let polled = poll_until(
        look,
        Duration::from_millis(100),
        Duration::from_secs(1),
        timeout,
    );
    match polled.await? {
        Some(healthy) => Ok(healthy),
        None => anyhow::bail!("{} of {want} targets healthy after {timeout:?}", seen.get()),
    }
}
