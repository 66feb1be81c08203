//! `baton sim up`: serves the emulated estate in the foreground and writes the files
//! other shells need to reach it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use baton_sim::controllers::Delays;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::scenario::{self, Scenario};
use baton_sim::{ClusterSpec, SimServer};

use crate::args::SimUpArgs;
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
    if args.bare {
        let server = SimServer::start(vec![
            versions(ClusterSpec::new("blue", "")),
            versions(ClusterSpec::new("green", "")),
        ])
        .await?;
        write_files(
            &server,
            &kubeconfig,
            &env,
            &format!("export KUBECONFIG={}\n", kubeconfig.display()),
        )?;
        println!(
            "baton sim ready (bare API servers): {}; env {} (Ctrl-C to stop)",
            summary(&server),
            env.display()
        );
        wait_for_signal().await?;
        eprintln!("baton sim: stopping");
        server.shutdown().await;
        return Ok(ExitCode::from(code::OK));
    }

    let scenario = Scenario::load(&args.scenario)?;
    let clusters = scenario
        .cluster_specs()
        .into_iter()
        .map(versions)
        .map(|c| {
            let seed = args.seed ^ c.seed;
            c.seed(seed)
        })
        .collect();
    eprintln!(
        "baton sim: starting moto and the clusters of scenario {:?}…",
        scenario.name
    );
    let delays = Delays {
        attach: Duration::from_millis(args.attach_delay_ms),
        detach: Duration::from_millis(args.detach_delay_ms),
        pod_start: Duration::from_millis(args.pod_start_delay_ms),
        pod_stop: Duration::from_millis(args.pod_stop_delay_ms),
        ..Delays::default()
    };
    let estate = Estate::start(EstateOptions {
        clusters,
        aws_endpoint: args.aws_endpoint_url.clone(),
        delays,
        seed: args.seed,
        ..EstateOptions::default()
    })
    .await?;
    for c in estate.server.clusters() {
        c.cluster
            .knobs
            .set_latency(baton_sim::faults::Latency::fixed(Duration::from_millis(
                args.api_latency_ms,
            )));
    }
    write_files(
        &estate.server,
        &kubeconfig,
        &env,
        &estate.env_exports(&kubeconfig),
    )?;
    eprintln!("baton sim: seeding (VPC, nodes, apps, ALB)…");
    let seeded =
        match scenario::seed(&estate, &scenario, Duration::from_secs(args.seed_timeout)).await {
            Ok(s) => s,
            Err(e) => {
                estate.shutdown().await;
                return Err(e.into());
            }
        };
    let facts = dir.join("scenario.json");
    std::fs::write(&facts, serde_json::to_string_pretty(&seeded)?)
        .with_context(|| format!("failed to write {}", facts.display()))?;
    println!(
        "baton sim ready: {}; AWS {} ; scenario {:?} seeded in {:.1}s (VPC {}, facts {}); env {} (Ctrl-C to stop)",
        summary(&estate.server),
        estate.aws_endpoint,
        seeded.scenario,
        seeded.seconds,
        seeded.vpc_id,
        facts.display(),
        env.display()
    );
    wait_for_signal().await?;
    eprintln!("baton sim: stopping");
    estate.shutdown().await;
    Ok(ExitCode::from(code::OK))
}

fn summary(server: &SimServer) -> String {
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

fn write_files(
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
