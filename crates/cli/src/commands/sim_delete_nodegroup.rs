//! `baton sim delete-nodegroup`: asks a running `baton sim up` (another process) to
//! delete a cluster's managed node groups, through `DELETE
//! /debug/clusters/NAME/nodegroup` on one of its API servers (the admin's token of the
//! state dir's kubeconfig). The running estate refuses an unknown cluster or one
//! without nodes before changing anything; its refusals are this command's (exit 3).

use std::process::ExitCode;

use anyhow::Context;
use baton_sim::estate::DeletedNodeGroup;
use serde_json::Value;

use super::sim::deleted_line;
use super::sim_fault::{Running, not_running};
use crate::args::SimDeleteNodegroupArgs;
use crate::exit::{Refused, code};

pub async fn run(args: SimDeleteNodegroupArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.state_dir;
    let sim = Running::find(dir)?;
    let not_running = |why: String| not_running(dir, why);
    let via = sim.control_context(dir)?;
    let client = sim
        .kubeconfig
        .client(&via)
        .await
        .map_err(|e| not_running(e.to_string()))?;
    let path = format!("/debug/clusters/{}/nodegroup", args.cluster);
    errln!(
        "baton sim: deleting the node groups of {} through {via}…",
        args.cluster
    );
    let request = http::Request::builder()
        .method(http::Method::DELETE)
        .uri(&path)
        .body(Vec::new())?;
    let answer = match client.request::<Value>(request).await {
        Ok(doc) => doc,
        Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
            return Err(Refused(status.message).into());
        }
        Err(kube::Error::HyperError(e)) => return Err(not_running(e.to_string()).into()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "failed to delete the node groups of {} through {via}",
                args.cluster
            )));
        }
    };
    let deleted: DeletedNodeGroup = serde_json::from_value(answer)
        .with_context(|| format!("failed to read the answer of {path} on {via}"))?;
    outln!("{}", deleted_line(&deleted));
    Ok(ExitCode::from(code::OK))
}
