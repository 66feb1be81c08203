//! `baton sim fault`: adds, lists and clears the fault rules of a running `baton sim up`
//! through the `/debug/faults` endpoints its clusters (kube-rs, with the state dir's
//! kubeconfig) and its AWS fault proxy (plain HTTP, AWS_ENDPOINT_URL of the env file)
//! serve.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use baton_kube::KubeconfigSource;
use baton_sim::faults::Target;
use http::Method;
use serde_json::Value;

use crate::args::{FaultAction, SimFaultArgs};
use crate::exit::{Refused, code};

/// Where the clusters and the AWS proxy serve their rules.
const PATH: &str = "/debug/faults";

pub async fn run(args: SimFaultArgs) -> anyhow::Result<ExitCode> {
    let sim = Running::find(&args.state_dir)?;
    match args.action {
        FaultAction::Add { spec } => {
            let target = spec.target();
            let rules = sim.call(&target, Method::POST, spec.rule_text()).await?;
            outln!("added {spec}; {target} has {} rule(s)", rules.len());
        }
        FaultAction::List => {
            for target in sim.targets()? {
                for rule in sim.call(&target, Method::GET, String::new()).await? {
                    outln!("{target}:{rule}");
                }
            }
        }
        FaultAction::Clear { target } => {
            let targets = match target {
                Some(t) => vec![t],
                None => sim.targets()?,
            };
            for target in targets {
                sim.call(&target, Method::DELETE, String::new()).await?;
                outln!("cleared the rules of {target}");
            }
        }
    }
    Ok(ExitCode::from(code::OK))
}

/// How to reach a running `baton sim up`: its kubeconfig and, unless it is bare, the
/// AWS fault proxy.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) kubeconfig: KubeconfigSource,
    aws_endpoint: Option<String>,
}

/// The refusal of a command that needs a running `baton sim up` in `dir` and found none
/// answering, saying why.
pub(crate) fn not_running(dir: &Path, why: impl std::fmt::Display) -> crate::exit::Expected {
    Refused(format!(
        "failed to reach a running `baton sim up` in {}: {why}\nhint: start it with `baton sim up --state-dir {}` (in another shell), or pass the --state-dir it was started with",
        dir.display(),
        dir.display()
    ))
}

impl Running {
    /// The first context of the sim's kubeconfig: the API server its control requests
    /// (`/debug/clusters`) go to.
    pub(crate) fn control_context(&self, dir: &Path) -> Result<String, crate::exit::Expected> {
        self.kubeconfig
            .contexts()
            .map_err(|e| not_running(dir, e))?
            .into_iter()
            .next()
            .ok_or_else(|| not_running(dir, "its kubeconfig has no context"))
    }

    pub(crate) fn find(dir: &Path) -> anyhow::Result<Self> {
        let env_file = dir.join("env");
        let env = std::fs::read_to_string(&env_file).map_err(|e| {
            Refused(format!(
                "failed to read {} ({e}): is `baton sim up --state-dir {}` running? pass the --state-dir it was started with",
                env_file.display(),
                dir.display()
            ))
        })?;
        let aws_endpoint = env
            .lines()
            .find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL="))
            .map(String::from);
        Ok(Self {
            kubeconfig: KubeconfigSource::file(dir.join("kubeconfig")),
            aws_endpoint,
        })
    }

    /// Every cluster of the kubeconfig, then `aws` if there is AWS.
    fn targets(&self) -> anyhow::Result<Vec<Target>> {
        let mut targets: Vec<Target> = self
            .kubeconfig
            .contexts()?
            .into_iter()
            .map(Target::Cluster)
            .collect();
        targets.extend(self.aws_endpoint.as_ref().map(|_| Target::Aws));
        Ok(targets)
    }

    /// One request to a target's rules; the rules after it, in their text form.
    async fn call(
        &self,
        target: &Target,
        method: Method,
        rule: String,
    ) -> anyhow::Result<Vec<String>> {
        let doc = match target {
            Target::Cluster(name) => {
                let client = self.kubeconfig.client(name).await?;
                let request = http::Request::builder()
                    .method(method)
                    .uri(PATH)
                    .body(rule.into_bytes())?;
                client
                    .request::<Value>(request)
                    .await
                    .with_context(|| format!("failed to change the rules of cluster {name}"))?
            }
            Target::Aws => {
                let endpoint = self
                    .aws_endpoint
                    .as_deref()
                    .context("failed to find AWS: this environment was started with --bare")?;
                baton_sim::faults::debug_request(endpoint, method.as_str(), PATH, &rule)
                    .await
                    .with_context(|| format!("failed to change the AWS rules at {endpoint}"))?
            }
        };
        let items = doc["items"]
            .as_array()
            .context("failed to read the rules: no items")?;
        Ok(items
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect())
    }
}
