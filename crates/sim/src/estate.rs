//! The whole emulated estate: moto playing AWS, the emulated clusters serving the
//! Kubernetes API, each cluster's control plane wired to EC2, and the clients of the
//! ALBs (`traffic.rs`) — what `baton sim up`, `baton demo` and the end-to-end tests run
//! on.

use std::path::Path;
use std::sync::Arc;

use baton_aws::{Aws, AwsConfig, RetryPolicy, StaticCredentials, Timeouts};

use crate::cluster::ClusterSpec;
use crate::controllers::{ControlPlane, Ctx, Delays};
use crate::faults::{AwsKnobs, AwsProxy, ProxyError};
use crate::moto::{Moto, MotoError};
use crate::server::{ServeError, SimServer};
use crate::traffic::AlbTraffic;

mod add;
mod nodegroup;
mod requests;
pub use add::{AddClusterError, AddedCluster, NewCluster, check_name, git_version};
pub use nodegroup::{DeleteNodeGroupError, DeletedNodeGroup};
pub(crate) use requests::RequestSlot;
pub use requests::{Asked, ClusterRequest, ClusterRequests};

/// The dummy credentials moto accepts (it checks no signature).
pub const DUMMY_ACCESS_KEY: &str = "testing";
/// See [`DUMMY_ACCESS_KEY`].
pub const DUMMY_SECRET_KEY: &str = "testing";

/// Failed to bring the estate up.
#[derive(Debug, thiserror::Error)]
pub enum EstateError {
    /// moto could not be started.
    #[error(transparent)]
    Moto(#[from] MotoError),
    /// The AWS client could not be configured.
    #[error("failed to configure AWS access to {endpoint}: {source}")]
    Aws {
        /// The endpoint.
        endpoint: String,
        /// Why.
        source: baton_aws::Error,
    },
    /// A cluster could not be served.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The AWS fault proxy could not start.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// How to bring the estate up.
#[derive(Debug, Clone)]
pub struct EstateOptions {
    /// The clusters to serve.
    pub clusters: Vec<ClusterSpec>,
    /// Use this AWS endpoint instead of starting moto.
    pub aws_endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// Controller delays.
    pub delays: Delays,
    /// Seed for the AWS fault proxy's knobs (clusters carry their own in `ClusterSpec`).
    pub seed: u64,
}

impl Default for EstateOptions {
    fn default() -> Self {
        Self {
            clusters: vec![
                ClusterSpec::new("blue", "v1.27.16-eks-2f008fe"),
                ClusterSpec::new("green", "v1.31.4-eks-1f3c2b8"),
            ],
            aws_endpoint: None,
            region: "us-east-1".into(),
            delays: Delays::default(),
            seed: 0,
        }
    }
}

/// A running estate. Dropping it stops moto (if it started it); `shutdown` also stops
/// the clusters cleanly.
#[derive(Debug)]
pub struct Estate {
    /// The clusters.
    pub server: SimServer,
    /// EC2 & co. on moto, as the controllers use it.
    pub aws: Aws,
    /// The AWS endpoint URL everything uses: the fault proxy in front of moto.
    pub aws_endpoint: String,
    /// The fault-injecting proxy in front of moto (its knobs and request log).
    pub aws_proxy: AwsProxy,
    /// The region.
    pub region: String,
    /// The clients of the ALBs and the metrics the ALBs publish of them (seeding starts
    /// the scenario's; tests may send clients to their own ALBs).
    pub traffic: AlbTraffic,
    planes: Vec<ControlPlane>,
    /// The controllers' delays, for the control planes of clusters added later.
    delays: Delays,
    moto: Option<Moto>,
}

/// The AWS configuration for an emulated endpoint: dummy credentials, the region.
pub fn aws_config(endpoint: &str, region: &str) -> AwsConfig {
    AwsConfig::default()
        .endpoint_url(endpoint)
        .region(region)
        .static_credentials(StaticCredentials::new(DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY))
}

impl Estate {
    /// Starts moto (unless an endpoint is given), the clusters and their controllers.
    pub async fn start(opts: EstateOptions) -> Result<Self, EstateError> {
        let moto = match &opts.aws_endpoint {
            Some(_) => None,
            None => Some(Moto::start().await?),
        };
        let upstream = opts
            .aws_endpoint
            .clone()
            .unwrap_or_else(|| moto.as_ref().map(Moto::endpoint).unwrap_or_default());
        let aws_proxy = AwsProxy::start(&upstream, Arc::new(AwsKnobs::new(opts.seed))).await?;
        let aws_endpoint = aws_proxy.endpoint();
        let aws = Aws::connect(&aws_config(&aws_endpoint, &opts.region))
            .await
            .map_err(|source| EstateError::Aws {
                endpoint: aws_endpoint.clone(),
                source,
            })?;
        // The ALB's own reads and metrics go to moto directly (`traffic.rs`): one attempt,
        // short bounds, since the next tick retries anyway.
        let alb_aws = Aws::connect(
            &aws_config(&upstream, &opts.region)
                .retry(RetryPolicy {
                    max_attempts: 1,
                    ..RetryPolicy::default()
                })
                .timeouts(Timeouts {
                    connect: std::time::Duration::from_secs(2),
                    attempt: std::time::Duration::from_secs(10),
                    operation: std::time::Duration::from_secs(10),
                }),
        )
        .await
        .map_err(|source| EstateError::Aws {
            endpoint: upstream.clone(),
            source,
        })?;
        let traffic = AlbTraffic::start(alb_aws);
        let server = SimServer::start(opts.clusters.clone()).await?;
        let planes = server
            .clusters()
            .iter()
            .map(|c| {
                ControlPlane::start(Ctx::new(
                    c.cluster.clone(),
                    Some(aws.clone()),
                    opts.delays.clone(),
                ))
            })
            .collect();
        Ok(Self {
            server,
            aws,
            aws_endpoint,
            aws_proxy,
            region: opts.region,
            traffic,
            planes,
            delays: opts.delays,
            moto,
        })
    }

    /// The shell exports that point kubectl, aws and baton at this estate.
    pub fn env_exports(&self, kubeconfig: &Path) -> String {
        format!(
            "export KUBECONFIG={}\nexport AWS_ENDPOINT_URL={}\nexport AWS_ACCESS_KEY_ID={DUMMY_ACCESS_KEY}\nexport AWS_SECRET_ACCESS_KEY={DUMMY_SECRET_KEY}\nexport AWS_REGION={}\nexport AWS_DEFAULT_REGION={}\n",
            kubeconfig.display(),
            self.aws_endpoint,
            self.region,
            self.region
        )
    }

    /// Waits (at most until `until`) until every cluster's nodes have their pods'
    /// address pools filled (see [`ControlPlane::addresses_settled`]); whether they do.
    pub async fn addresses_settled(&self, until: tokio::time::Instant) -> bool {
        for p in &self.planes {
            if !p.addresses_settled(until).await {
                return false;
            }
        }
        true
    }

    /// Stops the ALB clients, controllers, clusters and moto.
    pub async fn shutdown(self) {
        self.traffic.stop();
        for p in self.planes {
            p.stop();
        }
        self.server.shutdown().await;
        drop(self.aws_proxy);
        drop(self.moto);
    }
}
