//! Adding a cluster to a running estate (issue 21): a third cluster in subnets that
//! exist only after the estate started (those `baton network apply` made in the space
//! a retired cluster freed), as a team runs `eksctl create cluster` into existing
//! subnets. The cluster is served on a free port with the others' CA, gets its own
//! control plane, and is seeded as the scenario seeds green (`scenario::added`).
//!
//! `baton sim up` (another process) takes these requests through `/debug/clusters` on
//! its clusters' API servers: the handler hands them to the estate's owner over a
//! channel (`requests.rs`), since only the owner may change the estate.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Estate;
use crate::cluster::ClusterSpec;
use crate::controllers::{ControlPlane, Ctx};
use crate::error::ApiError;
use crate::scenario::{self, Scenario, ScenarioError, Seeded};
use crate::server::ServeError;

/// A cluster to add: what `baton sim add-cluster` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCluster {
    /// Its name (and kubeconfig context), e.g. `teal`.
    pub name: String,
    /// Its Kubernetes version: `1.32`, `1.32.1` or a gitVersion (`v1.32.1-eks-8e1d7a4`);
    /// see [`git_version`].
    pub version: String,
    /// The EC2 subnets of its node group, in the estate's VPC, by id.
    pub subnets: Vec<String>,
    /// Nodes per subnet (default: as green's first node group).
    #[serde(default)]
    pub nodes_per_subnet: Option<usize>,
    /// The nodes' EC2 instance type (default: as green's first node group).
    #[serde(default)]
    pub instance_type: Option<String>,
}

/// A cluster added to the estate: how to reach it, and what was made for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedCluster {
    /// Its name (and kubeconfig context).
    pub name: String,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// The admin's bearer token.
    pub token: String,
    /// The CA (PEM) its certificate chains to: the other clusters'.
    pub certificate_authority: String,
    /// The gitVersion its `/version` reports.
    pub git_version: String,
    /// Its nodes, with their EC2 instances' zones.
    pub nodes: Vec<String>,
    /// Its EKS OIDC issuer.
    pub oidc_issuer: Option<String>,
    /// Its IAM OIDC provider's ARN, when green's model has one.
    pub oidc_provider: Option<String>,
    /// Its EBS CSI driver's IAM role ARN, when green's model has one.
    pub driver_role: Option<String>,
    /// The target groups made for it (name → ARN), in no listener.
    pub target_groups: BTreeMap<String, String>,
    /// How long adding took, in seconds.
    pub seconds: f64,
}

/// Failed to add a cluster.
#[derive(Debug, thiserror::Error)]
pub enum AddClusterError {
    /// Something of that name exists already (a served cluster, an EKS cluster, an IAM
    /// role or a target group its seeding would make); nothing was changed.
    #[error("failed to add cluster {name}: {why}")]
    Taken {
        /// The cluster asked for.
        name: String,
        /// What is taken, and the fix.
        why: String,
    },
    /// The request is malformed or names what is not there (a version, a subnet, the
    /// scenario's green); nothing was changed.
    #[error("failed to add cluster {name}: {why}")]
    Invalid {
        /// The cluster asked for.
        name: String,
        /// What is wrong, and the fix.
        why: String,
    },
    /// A read made to check the request failed; nothing was changed.
    #[error("failed to add cluster {name}: failed to check the request: {source}")]
    Check {
        /// The cluster asked for.
        name: String,
        /// The AWS error.
        source: baton_aws::Error,
    },
    /// The cluster could not be served.
    #[error("failed to add cluster {name}: {source}")]
    Serve {
        /// The cluster asked for.
        name: String,
        /// Why.
        source: ServeError,
    },
    /// The cluster is served, but seeding it failed part way.
    #[error(
        "failed to seed cluster {name}, which is served but partly seeded (restart `baton sim up` to start over): {source}"
    )]
    Seed {
        /// The cluster asked for.
        name: String,
        /// Why.
        source: ScenarioError,
    },
}

impl AddClusterError {
    /// Whether nothing was changed: the request was refused, or could not be checked.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            Self::Taken { .. } | Self::Invalid { .. } | Self::Check { .. }
        )
    }

    /// The error as `/debug/clusters` answers it.
    pub(crate) fn to_api_error(&self) -> ApiError {
        let (code, reason) = match self {
            Self::Taken { .. } => (409, "AlreadyExists"),
            Self::Invalid { .. } => (422, "Invalid"),
            Self::Check { .. } | Self::Serve { .. } | Self::Seed { .. } => (500, "InternalError"),
        };
        ApiError {
            code,
            reason,
            message: self.to_string(),
            details: None,
        }
    }
}

/// The gitVersion a cluster reports for a version as a user writes it: `1.32`,
/// `v1.32`, `1.32.1` or a whole gitVersion (`v1.32.1-eks-8e1d7a4`). Without a patch
/// it is `.0`; without a build suffix it gets EKS's form, `-eks-` and seven hex digits
/// derived from the version (the same version, the same suffix).
pub fn git_version(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "version {text:?} is not MAJOR.MINOR[.PATCH] (e.g. 1.32) or an EKS gitVersion (e.g. v1.32.1-eks-8e1d7a4)"
        )
    };
    let bare = text.strip_prefix('v').unwrap_or(text);
    let (numbers, suffix) = match bare.split_once('-') {
        Some((n, s)) => (n, Some(s)),
        None => (bare, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()))
        || parts[0] != "1"
    {
        return Err(bad());
    }
    let suffix = match suffix {
        Some(s)
            if !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                }) =>
        {
            s.to_string()
        }
        Some(_) => return Err(bad()),
        None => {
            let h = numbers.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("eks-{:07x}", h & 0x0fff_ffff)
        }
    };
    let patch = parts.get(2).copied().unwrap_or("0");
    Ok(format!("v{}.{}.{patch}-{suffix}", parts[0], parts[1]))
}

/// Whether `name` can name a cluster: a DNS label (lowercase letters, digits and `-`,
/// at most 63), as kubeconfig contexts, tags and the names derived from it need.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a cluster name: use lowercase letters, digits and '-' (at most 63, starting and ending with a letter or digit)"
        ))
    }
}

impl Estate {
    /// Adds a cluster to the running estate, seeded as `scenario` seeds green (its
    /// apps stopped), with its node group in the given subnets of the estate's VPC;
    /// `seeded` (what seeding the scenario made) gains what is made for it. Everything
    /// is checked before anything changes: a taken name, a malformed version, subnets
    /// not in EC2 or not in the estate's VPC are refused ([`AddClusterError::refused`]).
    pub async fn add_cluster(
        &mut self,
        scenario: &Scenario,
        seeded: &mut Seeded,
        new: &NewCluster,
        timeout: Duration,
    ) -> Result<AddedCluster, AddClusterError> {
        let started = std::time::Instant::now();
        let addition = scenario::added::check(self, scenario, seeded, new).await?;
        let name = new.name.clone();
        let git_version = addition.git_version().to_string();
        let running = self
            .server
            .add(ClusterSpec::new(&name, &git_version))
            .await
            .map_err(|source| AddClusterError::Serve {
                name: name.clone(),
                source,
            })?;
        let (cluster, server) = (running.cluster.clone(), running.url());
        self.planes.push(ControlPlane::start(Ctx::new(
            cluster.clone(),
            Some(self.aws.clone()),
            self.delays.clone(),
        )));
        let target_groups = scenario::added::seed(self, scenario, seeded, &addition, timeout)
            .await
            .map_err(|source| AddClusterError::Seed {
                name: name.clone(),
                source,
            })?;
        Ok(AddedCluster {
            server,
            token: cluster.spec.token.clone(),
            certificate_authority: self.server.ca_pem().to_string(),
            git_version,
            nodes: seeded.nodes.get(&name).cloned().unwrap_or_default(),
            oidc_issuer: seeded.oidc_issuers.get(&name).cloned(),
            oidc_provider: seeded.oidc_providers.get(&name).cloned(),
            driver_role: seeded.driver_roles.get(&name).cloned(),
            target_groups,
            seconds: started.elapsed().as_secs_f64(),
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_become_eks_git_versions() {
        assert_eq!(
            git_version("v1.32.1-eks-8e1d7a4").unwrap(),
            "v1.32.1-eks-8e1d7a4"
        );
        let short = git_version("1.32").unwrap();
        assert!(short.starts_with("v1.32.0-eks-"), "{short}");
        assert_eq!(short.len(), "v1.32.0-eks-".len() + 7, "{short}");
        assert_eq!(git_version("v1.32").unwrap(), short, "stable");
        assert!(git_version("1.33.2").unwrap().starts_with("v1.33.2-eks-"));
        for bad in [
            "", "1", "2.30", "1.x", "1.32.1.4", "v1.32-", "1.32-EKS", "latest",
        ] {
            let e = git_version(bad).unwrap_err();
            assert!(e.contains("MAJOR.MINOR"), "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(check_name("teal").is_ok());
        assert!(check_name("green-2").is_ok());
        for bad in ["", "Teal", "-teal", "teal-", "te_al", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_answer_4xx_and_failures_5xx() {
        let taken = AddClusterError::Taken {
            name: "teal".into(),
            why: "a cluster teal is served already".into(),
        };
        assert!(taken.refused());
        assert_eq!(taken.to_api_error().code, 409);
        let invalid = AddClusterError::Invalid {
            name: "teal".into(),
            why: "subnet subnet-1 is not in EC2".into(),
        };
        assert_eq!(invalid.to_api_error().code, 422);
        assert!(
            invalid
                .to_api_error()
                .message
                .contains("failed to add cluster teal: subnet subnet-1")
        );
        let seed = AddClusterError::Seed {
            name: "teal".into(),
            source: ScenarioError::Timeout("slow".into()),
        };
        assert!(!seed.refused());
        assert_eq!(seed.to_api_error().code, 500);
    }
}
