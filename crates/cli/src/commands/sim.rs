//! `baton sim up`: serves the emulated clusters in the foreground and writes the files
//! other shells need to reach them.

use std::process::ExitCode;

use anyhow::Context;
use baton_sim::{ClusterSpec, SimServer};

use crate::args::SimUpArgs;
use crate::exit::code;

pub async fn up(args: SimUpArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("failed to create state dir {}", args.state_dir.display()))?;
    let dir = std::path::absolute(&args.state_dir).context("failed to resolve the state dir")?;
    let server = SimServer::start(vec![
        ClusterSpec::new("blue", &args.blue_version).port(args.blue_port),
        ClusterSpec::new("green", &args.green_version).port(args.green_port),
    ])
    .await?;
    let kubeconfig = dir.join("kubeconfig");
    server
        .kubeconfig()
        .write(&kubeconfig)
        .with_context(|| format!("failed to write {}", kubeconfig.display()))?;
    let env = dir.join("env");
    std::fs::write(
        &env,
        format!("export KUBECONFIG={}\n", kubeconfig.display()),
    )
    .with_context(|| format!("failed to write {}", env.display()))?;
    let summary: Vec<String> = server
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
        .collect();
    println!(
        "baton sim ready: {}; kubeconfig {}; env {} (Ctrl-C to stop)",
        summary.join(", "),
        kubeconfig.display(),
        env.display()
    );
    wait_for_signal().await?;
    eprintln!("baton sim: stopping");
    server.shutdown().await;
    Ok(ExitCode::from(code::OK))
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
