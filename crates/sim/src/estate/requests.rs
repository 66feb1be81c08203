//! How another process changes a running estate: `baton sim up` owns its estate, so
//! the clusters' `/debug/clusters` endpoints (`http/clusters.rs`) hand each request to
//! it over a channel and wait for its answer. Only the owner may change the estate.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{
    AddClusterError, AddedCluster, DeleteNodeGroupError, DeletedNodeGroup, Estate, NewCluster,
};

/// One request to change the running estate, waiting for its answer.
#[derive(Debug)]
pub enum ClusterRequest {
    /// `POST /debug/clusters`: add this cluster ([`Estate::add_cluster`]).
    Add(Asked<NewCluster, Result<AddedCluster, AddClusterError>>),
    /// `DELETE /debug/clusters/NAME/nodegroup`: delete the node groups of the cluster
    /// named, draining at most so long ([`Estate::delete_node_group`]).
    DeleteNodeGroup(Asked<(String, Duration), Result<DeletedNodeGroup, DeleteNodeGroupError>>),
}

/// What is asked, and where its answer goes.
#[derive(Debug)]
pub struct Asked<Q, A> {
    /// What is asked for.
    pub asked: Q,
    reply: oneshot::Sender<A>,
}

impl<Q, A> Asked<Q, A> {
    /// Answers the request (the asker may have gone: then nobody hears it).
    pub fn answer(self, answer: A) {
        let _ = self.reply.send(answer);
    }
}

/// The requests of a running estate, in the order they came.
#[derive(Debug)]
pub struct ClusterRequests {
    rx: mpsc::Receiver<ClusterRequest>,
}

impl ClusterRequests {
    /// The next request; `None` once the clusters stopped serving.
    pub async fn next(&mut self) -> Option<ClusterRequest> {
        self.rx.recv().await
    }
}

impl Estate {
    /// From now on, `/debug/clusters` requests come to the returned receiver: whoever
    /// owns the estate answers each ([`Estate::add_cluster`],
    /// [`Estate::delete_node_group`]).
    pub fn cluster_requests(&self) -> ClusterRequests {
        self.server.cluster_requests()
    }
}

/// Where the clusters' `/debug/clusters` hands requests: to the receiver last opened.
#[derive(Debug, Default)]
pub(crate) struct RequestSlot(std::sync::Mutex<Option<mpsc::Sender<ClusterRequest>>>);

impl RequestSlot {
    /// Hands requests to a new receiver from now on.
    pub(crate) fn open(&self) -> ClusterRequests {
        let (tx, rx) = mpsc::channel(8);
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        ClusterRequests { rx }
    }

    /// Asks the estate's owner; its answer, or `None` when nobody takes requests.
    pub(crate) async fn submit<Q, A>(
        &self,
        asked: Q,
        request: impl FnOnce(Asked<Q, A>) -> ClusterRequest,
    ) -> Option<A> {
        let tx = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        let (reply, answer) = oneshot::channel();
        tx.send(request(Asked { asked, reply })).await.ok()?;
        answer.await.ok()
    }
}
