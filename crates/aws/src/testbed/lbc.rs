//! The ELBv2 calls the emulated AWS Load Balancer Controller makes for a
//! TargetGroupBinding (`baton_sim`'s `controllers/tgb.rs`): register and deregister
//! targets (pod IPs or instance ids, each with its port), and read the health of the
//! group's targets, all of them or the ones named.
//!
//! Bed-only: baton itself only reads target health ([`Aws::describe_target_health`]).

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;

use crate::client::Aws;
use crate::elb::{TargetHealth, target_health};
use crate::error::Error;

/// A target as ELBv2 names it: an IP address or an instance id, and a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The pod IP or the instance id.
    pub id: String,
    /// The port traffic goes to.
    pub port: i32,
}

impl Target {
    /// `id:port`, the controller's identifier of a target.
    pub fn key(&self) -> String {
        format!("{}:{}", self.id, self.port)
    }
}

fn descriptions(targets: &[Target]) -> Vec<TargetDescription> {
    targets
        .iter()
        .map(|t| TargetDescription::builder().id(&t.id).port(t.port).build())
        .collect()
}

impl Aws {
    /// RegisterTargets: `targets` into the group (one call; the caller chunks).
    pub async fn register_targets(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> Result<(), Error> {
        let call = self.call("register targets in", target_group_arn);
        self.elb
            .register_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// DeregisterTargets: `targets` out of the group (one call; the caller chunks).
    pub async fn deregister_targets(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> Result<(), Error> {
        let call = self.call("deregister targets from", target_group_arn);
        self.elb
            .deregister_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// DescribeTargetHealth of the named targets only (as the controller refreshes the
    /// targets it does not know healthy); every registered target when `targets` is
    /// empty.
    pub async fn describe_target_health_of(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> Result<Vec<TargetHealth>, Error> {
        let call = self.call("describe target health of", target_group_arn);
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .set_targets((!targets.is_empty()).then(|| descriptions(targets)))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(target_health)
            .collect())
    }
}
