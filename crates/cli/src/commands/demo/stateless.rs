//! What the demo does in place of the user's other tools before a traffic shift: green's
//! stateless apps rolled out (a CD pipeline would: each Deployment to blue's replicas),
//! their pods registered in green's target group (the AWS Load Balancer Controller
//! would), and clients sending requests (a traffic generator publishing the ALB's
//! CloudWatch metrics for green's group, as the ALB would, in proportion to the weight
//! the listener gives green). None of this is baton's job; the gates of `baton traffic
//! shift` read its results.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use baton_aws::{AlbMetricDims, Aws, ForwardTarget, RequestStats};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::commands::retry::poll_until;

/// Requests per second the clients send to the listener, all groups together.
pub const REQUESTS_PER_SECOND: f64 = 400.0;
/// How often the generator publishes (CloudWatch sums what it gets per window).
const TICK: Duration = Duration::from_millis(250);

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

/// Clients sending requests through the ALB, as CloudWatch sees them for green's group.
#[derive(Debug)]
pub struct Generator {
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Generator {
    /// Starts publishing green's `RequestCount` (and a zero `HTTPCode_Target_5XX_Count`)
    /// every tick: green's share of [`REQUESTS_PER_SECOND`] by the listener's weights now.
    pub fn start(aws: Aws, listener: String, lb: &str, green_tg: String) -> anyhow::Result<Self> {
        let dims = AlbMetricDims::from_arns(lb, &green_tg)
            .with_context(|| format!("{lb} and {green_tg} are not an ALB and target group"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let (stop2, published2) = (stop.clone(), published.clone());
        let task = tokio::spawn(async move {
            let target = ForwardTarget::ListenerDefault(listener);
            while !stop2.load(Ordering::SeqCst) {
                let share = match aws.forward(&target).await {
                    Ok(f) => {
                        let total: u32 = f.target_groups.iter().map(|g| g.weight).sum();
                        let green = f
                            .target_groups
                            .iter()
                            .find(|g| g.arn == green_tg)
                            .map_or(0, |g| g.weight);
                        if total == 0 {
                            0.0
                        } else {
                            f64::from(green) / f64::from(total)
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "traffic generator: could not read the listener");
                        0.0
                    }
                };
                let requests = (REQUESTS_PER_SECOND * TICK.as_secs_f64() * share).round();
                if requests > 0.0 {
                    let stats = RequestStats {
                        requests,
                        target_5xx: 0.0,
                    };
                    match aws
                        .put_target_group_request_stats(&dims, SystemTime::now(), stats)
                        .await
                    {
                        Ok(()) => {
                            published2.fetch_add(requests as u64, Ordering::SeqCst);
                        }
                        Err(e) => tracing::warn!(error = %e, "traffic generator: metrics not put"),
                    }
                }
                tokio::time::sleep(TICK).await;
            }
        });
        Ok(Self {
            stop,
            published,
            task,
        })
    }

    /// Stops; returns the requests it published for green.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        self.published.load(Ordering::SeqCst)
    }
}
