//! Serving clusters over HTTP: each cluster gets its own listener on 127.0.0.1 (port 0
//! picks a free one), all running on the caller's tokio runtime until shut down.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, ClusterSpec};
use crate::estate::{ClusterRequests, RequestSlot};
use crate::kubeconfig::Kubeconfig;
use crate::tls::Tls;
use tokio_rustls::TlsAcceptor;

/// Failed to start serving a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound.
    #[error("failed to listen on 127.0.0.1:{port} for cluster {cluster}: {source}")]
    Bind {
        /// Cluster name.
        cluster: String,
        /// Port asked for.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificates could not be made.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Two clusters share a name.
    #[error("failed to start clusters: the name {0:?} is used twice")]
    DuplicateName(String),
}

/// One cluster being served.
#[derive(Debug)]
pub struct RunningCluster {
    /// The cluster's state, for in-process controllers and assertions.
    pub cluster: Arc<Cluster>,
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RunningCluster {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// Several named clusters served at once.
#[derive(Debug)]
pub struct SimServer {
    clusters: Vec<RunningCluster>,
    tls: Tls,
    /// Where each cluster's `/debug/clusters` hands the requests to add a cluster.
    requests: Arc<RequestSlot>,
}

impl SimServer {
    /// Starts one listener per cluster.
    pub async fn start(specs: Vec<ClusterSpec>) -> Result<Self, ServeError> {
        let mut server = Self {
            clusters: Vec::new(),
            tls: Tls::generate()?,
            requests: Arc::default(),
        };
        for spec in specs {
            server.add(spec).await?;
        }
        Ok(server)
    }

    /// Starts serving one more cluster, with the same CA as the others.
    pub async fn add(&mut self, spec: ClusterSpec) -> Result<&RunningCluster, ServeError> {
        if self.cluster(&spec.name).is_some() {
            return Err(ServeError::DuplicateName(spec.name));
        }
        let listener = TcpListener::bind(("127.0.0.1", spec.port))
            .await
            .map_err(|source| ServeError::Bind {
                cluster: spec.name.clone(),
                port: spec.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            cluster: spec.name.clone(),
            port: spec.port,
            source,
        })?;
        let cluster = Cluster::new(spec);
        let app = crate::http::router(cluster.clone(), self.requests.clone());
        let task = tokio::spawn(serve_tls(
            listener,
            app,
            TlsAcceptor::from(self.tls.server_config.clone()),
            cluster.closing(),
        ));
        tracing::info!(cluster = %cluster.spec.name, %addr, version = %cluster.spec.git_version, "serving emulated cluster");
        self.clusters.push(RunningCluster {
            cluster,
            addr,
            task,
        });
        Ok(self.clusters.last().expect("just pushed"))
    }

    /// From now on, the clusters' `/debug/clusters` hands requests to add a cluster to
    /// the returned receiver (to whoever owns the estate, which alone can add one); a
    /// receiver taken earlier gets no more.
    pub fn cluster_requests(&self) -> ClusterRequests {
        self.requests.open()
    }

    /// The served clusters, in start order.
    pub fn clusters(&self) -> &[RunningCluster] {
        &self.clusters
    }

    /// The cluster with this name.
    pub fn cluster(&self, name: &str) -> Option<&RunningCluster> {
        self.clusters.iter().find(|c| c.cluster.spec.name == name)
    }

    /// A kubeconfig with one context per cluster (the first is current).
    pub fn kubeconfig(&self) -> Kubeconfig {
        let mut k = Kubeconfig::default();
        for c in &self.clusters {
            k.add(
                &c.cluster.spec.name,
                &c.url(),
                &c.cluster.spec.token,
                &self.tls.ca_pem,
            );
        }
        k
    }

    /// The CA certificate (PEM) the servers' certificates chain to.
    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
    }

    /// Stops every listener; open watches end.
    pub async fn shutdown(self) {
        for c in &self.clusters {
            c.cluster.close();
        }
        for c in self.clusters {
            let _ = c.task.await;
        }
    }
}

/// Accepts TLS connections and serves HTTP/1.1 on each until the cluster closes.
async fn serve_tls(
    listener: TcpListener,
    app: axum::Router,
    acceptor: TlsAcceptor,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = closing.changed() => return,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.changed() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}
