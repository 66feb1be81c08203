//! `baton sim add-cluster`: asks a running `baton sim up` (another process) to add a
//! cluster, through `/debug/clusters` on one of its API servers (the admin's token of
//! the state dir's kubeconfig), then adds the new cluster's context to that kubeconfig.
//! The running estate checks the request before changing anything; its refusals (a
//! name taken, a subnet not in EC2 or not in its VPC) are this command's (exit 3).

use std::process::ExitCode;

use anyhow::Context;
use baton_sim::estate::{AddedCluster, NewCluster};
use serde_json::Value;

use super::sim_fault::{Running, not_running};
use crate::args::SimAddClusterArgs;
use crate::exit::{Refused, code};

/// Where the running estate takes new clusters.
const PATH: &str = "/debug/clusters";

pub async fn run(args: SimAddClusterArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.state_dir;
    let sim = Running::find(dir)?;
    let kubeconfig = dir.join("kubeconfig");
    let not_running = |why: String| not_running(dir, why);
    let via = sim.control_context(dir)?;
    let cluster = baton_kube::Cluster::connect(&sim.kubeconfig, &via)
        .await
        .map_err(|e| not_running(e.to_string()))?;
    cluster
        .reach()
        .await
        .map_err(|e| not_running(e.to_string()))?;
    let new = NewCluster {
        name: args.name.clone(),
        version: args.version.clone(),
        subnets: args.subnets.clone(),
        nodes_per_subnet: args.nodes_per_subnet.map(usize::from),
        instance_type: args.instance_type.clone(),
    };
    errln!(
        "baton sim: adding cluster {} in {} through {via}…",
        new.name,
        new.subnets.join(", ")
    );
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(PATH)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&new)?)?;
    let client = sim.kubeconfig.client(&via).await?;
    let answer = match client.request::<Value>(request).await {
        Ok(doc) => doc,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(not_running(format!(
                "{via} answers, but the estate takes no new clusters: {}",
                status.message
            ))
            .into());
        }
        Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
            return Err(Refused(status.message).into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("failed to add cluster {} through {via}", new.name)));
        }
    };
    let added: AddedCluster = serde_json::from_value(answer)
        .with_context(|| format!("failed to read the answer of {PATH} on {via}"))?;
    baton_sim::kubeconfig::add_context(
        &kubeconfig,
        &added.name,
        &added.server,
        &added.token,
        &added.certificate_authority,
    )
    .with_context(|| {
        format!(
            "cluster {} was added at {}, but its context could not be written to {}",
            added.name,
            added.server,
            kubeconfig.display()
        )
    })?;
    outln!(
        "added cluster {} ({}) at {}: {} nodes in {}, apps stopped; context {} in {} ({:.1}s)",
        added.name,
        added.git_version,
        added.server,
        added.nodes.len(),
        args.subnets.join(", "),
        added.name,
        kubeconfig.display(),
        added.seconds
    );
    Ok(ExitCode::from(code::OK))
}
