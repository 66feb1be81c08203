//! `baton sim up`: serves the emulated estate in the foreground and writes the files
//! other shells need to reach it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use baton_sim::controllers::Delays;
use baton_sim::estate::{ClusterRequest, DeletedNodeGroup, Estate, EstateOptions};
use baton_sim::faults::{AwsKnobs, FaultSpec, Latency, Target};
use baton_sim::scenario::{self, Scenario};
use baton_sim::{ClusterSpec, SimServer};

use crate::args::{SimUpArgs, usage_error};
use crate::exit::code;

pub async fn up(args: SimUpArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("failed to create state dir {}", args.state_dir.display()))?;
    let dir = std::path::absolute(&args.state_dir).context("failed to resolve the state dir")?;
    let kubeconfig = dir.join("kubeconfig");
    let env = dir.join("env");
    let versions = |spec: ClusterSpec| match spec.name.as_str() {
        "blue" => ClusterSpec {
            git_version: args.blue_version.clone(),
            port: args.blue_port,
            ..spec
        },
        "green" => ClusterSpec {
            git_version: args.green_version.clone(),
            port: args.green_port,
            ..spec
        },
        _ => spec,
    };
    let seeded = |c: ClusterSpec| {
        let seed = args.seed ^ c.seed;
        c.seed(seed)
    };
    if args.bare {
        let clusters: Vec<_> = ["blue", "green"]
            .map(|name| seeded(versions(ClusterSpec::new(name, ""))))
            .into();
        check_targets(&args, &clusters, false)?;
        let server = SimServer::start(clusters).await?;
        arm(&args, &server, None);
        write_files(
            &server,
            &kubeconfig,
            &env,
            &format!("export KUBECONFIG={}\n", kubeconfig.display()),
        )?;
        outln!(
            "baton sim ready (bare API servers): {}; env {} (Ctrl-C to stop)",
            summary(&server),
            env.display()
        );
        wait_for_signal().await?;
        errln!("baton sim: stopping");
        server.shutdown().await;
        return Ok(ExitCode::from(code::OK));
    }

    let mut scenario = Scenario::load(&args.scenario)?;
    if let (Some(rate), Some(alb)) = (args.alb_requests_per_second, scenario.alb.as_mut()) {
        alb.requests_per_second = Some(rate);
    }
    let clusters: Vec<_> = scenario
        .cluster_specs()
        .into_iter()
        .map(versions)
        .map(seeded)
        .collect();
    check_targets(&args, &clusters, true)?;
    errln!(
        "baton sim: starting moto and the clusters of scenario {:?}…",
        scenario.name
    );
    let delays = Delays {
        attach: delay(args.attach_delay, args.attach_delay_ms),
        detach: delay(args.detach_delay, args.detach_delay_ms),
        pod_start: delay(args.pod_start_delay, args.pod_start_delay_ms),
        pod_stop: delay(args.pod_stop_delay, args.pod_stop_delay_ms),
        ..Delays::default()
    };
    let mut estate = Estate::start(EstateOptions {
        clusters,
        aws_endpoint: args.aws_endpoint_url.clone(),
        delays,
        seed: args.seed,
        ..EstateOptions::default()
    })
    .await?;
    write_files(
        &estate.server,
        &kubeconfig,
        &env,
        &estate.env_exports(&kubeconfig),
    )?;
    errln!("baton sim: seeding (VPC, nodes, apps, ALB)…");
    let mut seeded = match scenario::seed(&estate, &scenario, args.seed_timeout).await {
        Ok(s) => s,
        Err(e) => {
            estate.shutdown().await;
            return Err(e.into());
        }
    };
    // Armed after seeding: the estate comes up whole, and an `nth` counts the requests of
    // whoever uses it.
    arm(&args, &estate.server, Some(estate.aws_proxy.knobs()));
    let facts = dir.join("scenario.json");
    std::fs::write(&facts, serde_json::to_string_pretty(&seeded)?)
        .with_context(|| format!("failed to write {}", facts.display()))?;
    outln!(
        "baton sim ready: {}; AWS {} ; scenario {:?} seeded in {:.1}s (VPC {}, facts {}); env {} (Ctrl-C to stop)",
        summary(&estate.server),
        estate.aws_endpoint,
        seeded.scenario,
        seeded.seconds,
        seeded.vpc_id,
        facts.display(),
        env.display()
    );
    // Until stopped, add the clusters `baton sim add-cluster` asks for.
    let mut requests = estate.cluster_requests();
    let signal = wait_for_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            stopped = &mut signal => {
                stopped?;
                break;
            }
            Some(request) = requests.next() => match request {
                ClusterRequest::Add(request) => {
                    let result = estate
                        .add_cluster(&scenario, &mut seeded, &request.asked, args.seed_timeout)
                        .await;
                    match &result {
                        Ok(added) => {
                            if let Some(c) = estate.server.cluster(&added.name) {
                                let target = Target::Cluster(added.name.clone());
                                c.cluster.knobs.set_latency(latency(&args, &target).unwrap_or_default());
                            }
                            std::fs::write(&facts, serde_json::to_string_pretty(&seeded)?)
                                .with_context(|| format!("failed to write {}", facts.display()))?;
                            errln!(
                                "baton sim: added cluster {} {} ({}) in {:.1}s",
                                added.name,
                                added.server,
                                added.git_version,
                                added.seconds
                            );
                        }
                        Err(e) => errln!("baton sim: {e}"),
                    }
                    request.answer(result);
                }
                ClusterRequest::DeleteNodeGroup(request) => {
                    let (cluster, drain) = &request.asked;
                    let result = estate.delete_node_group(cluster, *drain).await;
                    match &result {
                        Ok(deleted) => {
                            // The facts name the nodes that exist.
                            if let Some(nodes) = seeded.nodes.get_mut(cluster) {
                                nodes.retain(|n| !deleted.nodes.contains(n));
                            }
                            std::fs::write(&facts, serde_json::to_string_pretty(&seeded)?)
                                .with_context(|| format!("failed to write {}", facts.display()))?;
                            errln!("baton sim: {}", deleted_line(deleted));
                        }
                        Err(e) => errln!("baton sim: {e}"),
                    }
                    request.answer(result);
                }
            },
        }
    }
    errln!("baton sim: stopping");
    estate.shutdown().await;
    Ok(ExitCode::from(code::OK))
}

/// What deleting a cluster's node groups did, in one line (`sim up` and `sim
/// delete-nodegroup` print it).
pub(crate) fn deleted_line(d: &DeletedNodeGroup) -> String {
    format!(
        "deleted the node groups of {} ({}): {} nodes drained and deleted ({} pods evicted), {} instances terminated, {} network interfaces deleted ({:.1}s)",
        d.cluster,
        if d.node_groups.is_empty() {
            "unnamed".to_string()
        } else {
            d.node_groups.join(", ")
        },
        d.nodes.len(),
        d.pods_drained + d.pods_collected,
        d.instances.len(),
        d.network_interfaces.len(),
        d.seconds
    )
}

/// A modelled delay: `--attach-delay 2s`, or the flag's old form in milliseconds
/// (`--attach-delay-ms 2000`, hidden; clap refuses both at once).
fn delay(given: Duration, old_ms: Option<u64>) -> Duration {
    old_ms.map_or(given, Duration::from_millis)
}

/// Every `--fault` and `--api-latency-ms` target must exist in the estate about to start:
/// a cluster of the scenario, or `aws` when there is AWS. Otherwise it is a usage error,
/// reported before anything starts.
fn check_targets(args: &SimUpArgs, clusters: &[ClusterSpec], aws: bool) -> anyhow::Result<()> {
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    let targets = args
        .faults
        .iter()
        .map(|f| ("--fault", f.to_string(), f.target()))
        .chain(args.api_latency_ms.iter().filter_map(|l| {
            let target = l.target.clone()?;
            Some(("--api-latency-ms", l.to_string(), target))
        }));
    for (flag, value, target) in targets {
        let problem = match &target {
            Target::Aws if !aws => "there is no AWS with --bare".to_string(),
            Target::Cluster(name) if !names.contains(&name.as_str()) => format!(
                "there is no cluster {name:?} (clusters: {})",
                names.join(", ")
            ),
            _ => continue,
        };
        return Err(usage_error(
            &["sim", "up"],
            format!("invalid value '{value}' for '{flag}': {problem}"),
        )
        .into());
    }
    Ok(())
}

/// The latency `--api-latency-ms` gives a target: its own, else (for a cluster) the
/// plain one.
fn latency(args: &SimUpArgs, target: &Target) -> Option<Latency> {
    let pick = |t: Option<&Target>| {
        args.api_latency_ms
            .iter()
            .rev()
            .find(|l| l.target.as_ref() == t)
            .map(|l| l.latency)
    };
    pick(Some(target)).or_else(|| match target {
        Target::Cluster(_) => pick(None),
        Target::Aws => None,
    })
}

/// Sets the latencies (a targeted one over the plain one) and adds the fault rules, in
/// the order given.
fn arm(args: &SimUpArgs, server: &SimServer, aws: Option<&std::sync::Arc<AwsKnobs>>) {
    for c in server.clusters() {
        let target = Target::Cluster(c.cluster.spec.name.clone());
        c.cluster
            .knobs
            .set_latency(latency(args, &target).unwrap_or_default());
    }
    if let Some(aws) = aws {
        aws.set_latency(latency(args, &Target::Aws).unwrap_or_default());
    }
    for fault in &args.faults {
        match fault {
            FaultSpec::Api { cluster, rule } => {
                if let Some(c) = server.cluster(cluster) {
                    c.cluster.knobs.inject(rule.clone());
                }
            }
            FaultSpec::Aws(rule) => {
                if let Some(aws) = aws {
                    aws.inject(rule.clone());
                }
            }
        }
        errln!("baton sim: fault armed: {fault}");
    }
}

pub(crate) fn summary(server: &SimServer) -> String {
    server
        .clusters()
        .iter()
        .map(|c| {
            format!(
                "{} {} ({})",
                c.cluster.spec.name,
                c.url(),
                c.cluster.spec.git_version
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn write_files(
    server: &SimServer,
    kubeconfig: &Path,
    env: &Path,
    exports: &str,
) -> anyhow::Result<()> {
    server
        .kubeconfig()
        .write(kubeconfig)
        .with_context(|| format!("failed to write {}", kubeconfig.display()))?;
    std::fs::write(env, exports).with_context(|| format!("failed to write {}", env.display()))?;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("failed to listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
