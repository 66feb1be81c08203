//! Test bed for the API server tests: clusters on free loopback ports, a kubeconfig file
//! for them, and kube-rs clients built from that file the way baton builds them.

#![allow(dead_code)]

use std::path::PathBuf;

use baton_kube::KubeconfigSource;
use baton_sim::{ClusterSpec, SimServer};

/// Running clusters plus their kubeconfig on disk (removed on drop).
pub struct Bed {
    pub server: SimServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Bed {
    /// `blue` at v1.27 and `green` at v1.31.
    pub async fn start() -> Self {
        Self::with(vec![
            ClusterSpec::new("blue", "v1.27.16-eks-2f008fe"),
            ClusterSpec::new("green", "v1.31.4-eks-1f3c2b8"),
        ])
        .await
    }

    pub async fn with(specs: Vec<ClusterSpec>) -> Self {
        let server = SimServer::start(specs).await.expect("clusters start");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .kubeconfig()
            .write(&kubeconfig)
            .expect("kubeconfig written");
        Self {
            server,
            dir,
            kubeconfig,
        }
    }

    pub async fn client(&self, context: &str) -> kube::Client {
        KubeconfigSource::file(&self.kubeconfig)
            .client(context)
            .await
            .expect("client for context")
    }

    /// A client that does not retry (baton's clients retry transient failures): for
    /// tests that watch the emulator's injected faults reach the caller.
    pub async fn bare(&self, context: &str) -> kube::Client {
        KubeconfigSource::file(&self.kubeconfig)
            .connection(context)
            .await
            .expect("client for context")
            .0
    }

    pub fn cluster(&self, name: &str) -> &std::sync::Arc<baton_sim::Cluster> {
        &self.server.cluster(name).expect("cluster exists").cluster
    }
}

pub mod estate;

/// The message of the first Event about `object` with `reason`, waited for on a watch
/// (the emulator serves field-selected watches on events).
pub async fn event_message(client: &kube::Client, ns: &str, object: &str, reason: &str) -> String {
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.name={object},reason={reason}");
    let mut events = std::pin::pin!(
        watcher(api, watcher::Config::default().fields(&selector)).applied_objects()
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(20), events.try_next())
        .await
        .unwrap_or_else(|_| panic!("no {reason} event for {object} within 20s"))
        .expect("event watch")
        .expect("event stream open");
    event.message.unwrap_or_default()
}

/// The first `reason` Event message of `object` containing `text`, waiting up to 20 s
/// (a scheduler reports what blocks a pod now, so an earlier reason may come first).
pub async fn event_message_containing(
    client: &kube::Client,
    ns: &str,
    object: &str,
    reason: &str,
    text: &str,
) -> String {
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.name={object},reason={reason}");
    let mut events = std::pin::pin!(
        watcher(api, watcher::Config::default().fields(&selector)).applied_objects()
    );
    let found = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(e) = events.try_next().await.expect("event watch") {
            let m = e.message.unwrap_or_default();
            if m.contains(text) {
                return m;
            }
        }
        String::new()
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {reason} event for {object} saying {text:?} within 20s"))
}

/// What a kubectl run printed.
pub struct Out {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real kubectl against the bed's kubeconfig.
pub async fn kubectl(bed: &Bed, args: &[&str]) -> Out {
    let out = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &bed.kubeconfig)
        .env("HOME", bed.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("kubectl must be installed (see CONTRIBUTING.md); it is part of the test bed");
    Out {
        ok: out.status.success(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// kubectl that must succeed; its stdout.
pub async fn ok(bed: &Bed, args: &[&str]) -> String {
    let o = kubectl(bed, args).await;
    assert!(o.ok, "kubectl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout
}

/// Every object of `group`/`plural` in `cluster`'s store, straight from the store (no
/// API round trip), as values.
pub fn stored(cluster: &baton_sim::Cluster, group: &str, plural: &str) -> Vec<serde_json::Value> {
    let gr = baton_sim::resources::GroupResource {
        group: group.into(),
        plural: plural.into(),
    };
    cluster
        .store
        .txn(|t| t.list(&gr, None))
        .iter()
        .map(|o| (**o).clone())
        .collect()
}
