//! What the user typed, resolved (ripgrep's `LowArgs` → `HiArgs`): each command turns the
//! clap values of `args` into these plain, validated values before it connects to
//! anything, and only these reach the adapters (`commands::stateful::world`, the network
//! and traffic commands' AWS access). A value that cannot be resolved is a usage error
//! (exit 2) naming the flag.

use std::path::PathBuf;
use std::time::Duration;

use baton_core::planner::{self, PlanOptions};

use crate::args::{AwsArgs, BlueArgs, ClusterArgs, RunArgs, SelectionArgs, usage_error};
use crate::exit::Expected;

/// Blue and green: two different kubeconfig contexts of one kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clusters {
    /// Blue's context (`--from`).
    pub from: String,
    /// Green's context (`--to`).
    pub to: String,
    /// The kubeconfig file (`--kubeconfig`; none: `$KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
}

impl Clusters {
    /// Resolves `--from`, `--to` and `--kubeconfig` of the command at `command` (its path
    /// under `baton`, for the usage line): one context named twice is a usage error.
    pub fn new(a: &ClusterArgs, command: &[&str]) -> Result<Self, Expected> {
        if a.from == a.to {
            return Err(usage_error(
                command,
                format!(
                    "--from and --to are both {:?}: blue and green must be different clusters (pass green's context to --to)",
                    a.from
                ),
            ));
        }
        Ok(Self {
            from: a.from.clone(),
            to: a.to.clone(),
            kubeconfig: a.kubeconfig.clone(),
        })
    }
}

/// Blue alone: a kubeconfig context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blue {
    /// Blue's context (`--from`).
    pub context: String,
    /// The kubeconfig file (none: `$KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
}

impl From<&BlueArgs> for Blue {
    fn from(a: &BlueArgs) -> Self {
        Self {
            context: a.from.clone(),
            kubeconfig: a.kubeconfig.clone(),
        }
    }
}

/// Where AWS calls go: the standard credential chain with these overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsTarget {
    /// `--profile` (none: the chain's, `AWS_PROFILE`).
    pub profile: Option<String>,
    /// `--region` (none: `AWS_REGION` or the profile's).
    pub region: Option<String>,
    /// `--endpoint-url` (none: `AWS_ENDPOINT_URL` and its per-service variants).
    pub endpoint_url: Option<String>,
}

impl From<&AwsArgs> for AwsTarget {
    fn from(a: &AwsArgs) -> Self {
        Self {
            profile: a.profile.clone(),
            region: a.region.clone(),
            endpoint_url: a.endpoint_url.clone(),
        }
    }
}

/// Which StatefulSets a plan covers, and what it allows.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Namespaces and labels (`-n`, `-l`).
    pub filter: planner::Selection,
    /// `--allow-multi-attach`, `--convert-to-csi`, `--allow-operator`.
    pub options: PlanOptions,
    /// `--ebs-csi-role CONTEXT=ARN`.
    pub ebs_csi_roles: Vec<(String, String)>,
}

impl From<&SelectionArgs> for Selection {
    fn from(a: &SelectionArgs) -> Self {
        Self {
            filter: planner::Selection {
                namespaces: a.namespaces.clone(),
                labels: a.labels.clone(),
                claims: a.claims.clone(),
                groups: a.groups.clone(),
                standalone_claims: a.standalone_claims,
                no_label_groups: a.no_label_groups,
            },
            options: PlanOptions {
                allow_multi_attach: a.allow_multi_attach,
                convert_to_csi: a.convert_to_csi,
                allow_operators: a.allow_operators.clone(),
            },
            ebs_csi_roles: a.ebs_csi_roles.clone(),
        }
    }
}

/// How a migration, a rollback or a commit paces itself (`--parallel`, `--max-down`,
/// `--wait-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Apps worked on at once.
    pub apps: usize,
    /// Apps down at once (blue stopped, green not yet Ready); at most `apps`.
    pub down: usize,
    /// The longest wait for one condition.
    pub wait_timeout: Duration,
}

impl Pace {
    /// `--parallel` and `--wait-timeout`, with migrate's `--max-down` (default: all the
    /// apps in progress). A `--max-down` above `--parallel` cannot take effect: it is
    /// capped, not refused.
    pub fn new(a: &RunArgs, max_down: Option<u16>) -> Self {
        let apps = usize::from(a.parallel);
        Self {
            apps,
            down: max_down.map_or(apps, |d| usize::from(d).min(apps)),
            wait_timeout: a.wait_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_duration;

    #[test]
    fn durations_read_with_units_and_bare_seconds() {
        let cases = [
            ("10m", 600_000),
            ("90s", 90_000),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            ("500ms", 500),
            ("600", 600_000),
            ("0", 0),
            ("4m30s", 270_000),
            ("2 hours", 7_200_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn what_baton_prints_as_a_duration_reads_back() {
        for ms in [0, 500, 30_000, 270_000, 3_723_000] {
            let d = Duration::from_millis(ms);
            let shown = baton_core::traffic::duration::show(d);
            assert_eq!(parse_duration(&shown), Ok(d), "{shown}");
        }
    }

    #[test]
    fn durations_that_are_not_are_refused_with_the_form_to_use() {
        for text in ["", "10 parsecs", "m", "-5s", "5s ago", "3d", "1.5.2s"] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains("not a duration"), "{text}: {err}");
            assert!(err.contains("10m"), "{text}: {err}");
        }
        assert!(parse_duration("99999999999999999999999").is_err());
    }

    #[test]
    fn one_context_twice_is_a_usage_error() {
        let a = ClusterArgs {
            from: "blue".into(),
            to: "blue".into(),
            kubeconfig: None,
        };
        let e = Clusters::new(&a, &["plan"]).unwrap_err();
        assert_eq!(e.code(), crate::exit::code::USAGE);
        assert!(e.to_string().contains("\"blue\""), "{e}");
        let a = ClusterArgs {
            to: "green".into(),
            ..a
        };
        assert_eq!(Clusters::new(&a, &["plan"]).unwrap().to, "green");
    }

    #[test]
    fn max_down_defaults_to_and_is_capped_by_parallel() {
        let run = RunArgs {
            parallel: 4,
            wait_timeout: Duration::from_secs(600),
        };
        assert_eq!(Pace::new(&run, None).down, 4);
        assert_eq!(Pace::new(&run, Some(2)).down, 2);
        assert_eq!(Pace::new(&run, Some(9)).down, 4);
    }
}
