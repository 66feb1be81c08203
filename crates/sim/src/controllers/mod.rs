//! The emulated control plane: the controllers kube-controller-manager, the scheduler,
//! the kubelets and the EBS CSI driver would run, each a small module. They run in-process
//! on a cluster's store: every controller is level-triggered — woken by the store's change
//! stream (a watch), it converges the state it reads, not the events it was told — so a
//! missed or coalesced event is harmless. Modelled delays (attach takes 2 s) are timers the
//! controller asks to be woken at, never polling sleeps.
//!
//! Each pass is given its [`Scope`]: the changes that woke it, so a controller whose
//! work is per object (the scheduler, binder, StatefulSet controller) converges only the
//! objects those changes touch instead of re-reading a thousand claims for each one; or
//! `All`, a full pass over everything — the first pass, after a pass's own timer,
//! after the change stream lagged (changes were lost), and [`RESYNC`] after the last full
//! pass, changes or not, as an informer's resync. A resync that finds work logs a
//! warning naming the controller: its change-driven scope missed something.

pub mod api;
mod argocd;
pub(crate) mod attach;
mod authz;
mod binder;
mod deployment;
mod flux;
pub mod gitops;
mod hpa;
mod ipamd;
mod irsa;
mod keda;
mod kubelet;
mod provisioner;
mod scheduler;
mod statefulset;
mod tgb;
mod velero;
mod workers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use api::Ctx;
pub use authz::{DRIVER_SA, ROLE_ARN_ANNOTATION};
pub use irsa::AUDIENCE_ANNOTATION;
/// The EC2 tags holding each volume's data fingerprint and its last writer.
pub use kubelet::{FINGERPRINT_TAG, FINGERPRINT_WRITER_TAG};
pub use provisioner::{CSI_CONTROLLER, EBS_CSI};
pub(crate) use tgb::inject_readiness_gates;
/// The AWS Load Balancer Controller's names: its finalizer, checkpoint annotation,
/// readiness gates and the namespace label that injects them, the multicluster ConfigMap.
pub use tgb::{
    CHECKPOINT, CHECKPOINT_TIMESTAMP, FINALIZER as TGB_FINALIZER, GATE_PREFIX, INJECT_LABEL,
    TRACKED_PREFIX, gate as readiness_gate,
};

use crate::store::Change;

/// Delays the controllers model, so a test or the demo can make physics slow or instant.
#[derive(Debug, Clone)]
pub struct Delays {
    /// From a pod being scheduled with its volumes attached to it running Ready.
    pub pod_start: Duration,
    /// From a VolumeAttachment being created to EC2 attaching the volume.
    pub attach: Duration,
    /// From a VolumeAttachment being deleted to EC2 detaching the volume.
    pub detach: Duration,
    /// From a pod's deletion to its containers having stopped.
    pub pod_stop: Duration,
    /// How often a running pod's data fingerprint advances.
    pub fingerprint_every: Duration,
    /// How often running pods write their fingerprints to EC2 (they also write on stop).
    pub fingerprint_flush: Duration,
    /// From a Velero Backup being picked up to its final phase (half its items are
    /// reported backed up halfway through).
    pub velero_backup: Duration,
    /// The kubelet's first back-off before restarting a failed container (it doubles on
    /// each failure, up to 5 minutes): a pod refused its IRSA credentials crash-loops.
    pub restart_backoff: Duration,
    /// How long the AWS Load Balancer Controller trusts its view of a target group's
    /// targets (filled by DescribeTargetHealth, then updated only with its own
    /// registrations and the targets it did not know healthy): 5 minutes, as its
    /// targets cache. Another writer's targets stay unseen that long.
    pub lbc_targets_cache: Duration,
    /// `--targetgroupbinding-requeue-duration` (15 s): when the AWS Load Balancer
    /// Controller looks again at targets whose health a readiness gate waits for.
    pub lbc_requeue: Duration,
    /// `--horizontal-pod-autoscaler-sync-period` (15 s): how often the HPA controller
    /// looks at each HorizontalPodAutoscaler.
    pub hpa_sync_period: Duration,
    /// Argo CD's `--self-heal-backoff-timeout-seconds` (2 s, 3.x): the first step of the
    /// back-off between self-heals of one revision (×3 each time, at most 5 minutes; the
    /// first self-heal after a sync is not delayed).
    pub argocd_self_heal_backoff: Duration,
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            pod_start: Duration::ZERO,
            attach: Duration::ZERO,
            detach: Duration::ZERO,
            pod_stop: Duration::ZERO,
            fingerprint_every: Duration::from_millis(200),
            fingerprint_flush: Duration::from_secs(30),
            velero_backup: Duration::from_secs(1),
            restart_backoff: Duration::from_secs(10),
            lbc_targets_cache: Duration::from_secs(300),
            lbc_requeue: Duration::from_secs(15),
            hpa_sync_period: Duration::from_secs(15),
            argocd_self_heal_backoff: Duration::from_secs(2),
        }
    }
}

/// How long a controller works from changes alone before its next full pass — taken
/// even when nothing changes, as an informer's resync, so no missed wake can leave work
/// undone for longer than this.
pub(crate) const RESYNC: Duration = Duration::from_secs(10);

/// How long a pass woken by a change waits for the rest of its burst.
const COALESCE: Duration = Duration::from_millis(5);

/// What a pass must look at.
#[derive(Debug)]
pub(crate) enum Scope {
    /// Everything.
    All,
    /// At least the objects these changes (of watched resources) touch, oldest first.
    Changes(Vec<Arc<Change>>),
    /// As `Changes`, and the worker keys whose tasks ended after a pass that skipped
    /// them (they were busy) wanted them: what that pass saw must be looked at again.
    Again(Vec<Arc<Change>>, Vec<String>),
}

impl Scope {
    /// Whether the pass must look at everything.
    pub(crate) fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }

    /// The changes to `(group, plural)`: the object after (or last, for a deletion) and
    /// before the change.
    pub(crate) fn changed<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
    ) -> impl Iterator<Item = (&'a Value, Option<&'a Value>)> + 'a {
        let changes: &[Arc<Change>] = match self {
            Self::All => &[],
            Self::Changes(c) | Self::Again(c, _) => c,
        };
        changes
            .iter()
            .filter(move |c| c.resource.group == group && c.resource.plural == plural)
            .map(|c| (c.object.as_ref(), c.old.as_deref()))
    }

    /// The worker keys to look at again ([`Scope::Again`]); none otherwise.
    pub(crate) fn again(&self) -> &[String] {
        match self {
            Self::Again(_, keys) => keys,
            _ => &[],
        }
    }

    /// Whether any change is to `(group, plural)`.
    pub(crate) fn touches(&self, group: &str, plural: &str) -> bool {
        self.changed(group, plural).next().is_some()
    }
}

/// One controller: a name, the resources whose changes wake it, and a pass.
pub(crate) trait Controller: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &'static str;
    /// `(group, plural)` of every resource whose changes should wake this controller.
    fn watches(&self) -> &'static [(&'static str, &'static str)];
    /// One level-triggered pass over what `scope` asks for (a controller may always do
    /// more). Returns when to run again at the latest, for modelled delays that have not
    /// elapsed yet.
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>>;
}

/// The running controllers of one cluster; dropping it does not stop them, `stop` does.
#[derive(Debug)]
pub struct ControlPlane {
    tasks: Vec<JoinHandle<()>>,
    /// The cluster's handle, for [`ControlPlane::addresses_settled`].
    ctx: Ctx,
}

impl ControlPlane {
    /// Starts every controller on the cluster. Storage-object-in-use protection and
    /// graceful pod deletion turn on, as on a real cluster whose controllers run.
    pub fn start(ctx: Ctx) -> Self {
        ctx.cluster.enable_controllers();
        let controllers: Vec<Arc<dyn Controller>> = vec![
            Arc::new(statefulset::StatefulSets),
            Arc::new(deployment::Deployments),
            Arc::new(binder::Binder::default()),
            Arc::new(provisioner::Provisioner::default()),
            Arc::new(scheduler::Scheduler),
            Arc::new(attach::Attacher::default()),
            Arc::new(kubelet::Kubelet::default()),
            Arc::new(ipamd::Ipamd::default()),
            Arc::new(velero::Velero::default()),
            Arc::new(tgb::TargetGroupBindings::default()),
            Arc::new(hpa::Autoscalers::default()),
            Arc::new(argocd::Applications::default()),
            Arc::new(flux::Kustomizations::default()),
            Arc::new(flux::HelmReleases::default()),
            Arc::new(keda::ScaledObjects::default()),
        ];
        let tasks = controllers
            .into_iter()
            .map(|c| tokio::spawn(run(c, ctx.for_controller())))
            .collect();
        Self { tasks, ctx }
    }

    /// Waits (at most until `until`) until the address pool of every node that is an EC2
    /// instance has been read and filled to its warm target (or to its instance type's
    /// limits, or its fill failed and waits to be tried again), so that what EC2 shows
    /// of the nodes' ENIs no longer changes on its own. Whether it did.
    pub async fn addresses_settled(&self, until: Instant) -> bool {
        if self.ctx.aws.is_none() {
            return true;
        }
        let nodes: Vec<(String, String)> = self
            .ctx
            .list(api::NODES, None)
            .iter()
            .filter_map(|n| Some((crate::meta::name(n).to_string(), attach::instance_of(n)?)))
            .collect();
        self.ctx.pools.settled_changed(&nodes, until).await
    }

    /// The cluster's handle, as its controllers use it.
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The instances' node group is being deleted: the VPC CNI fills their nodes' address
    /// pools no more. Waits (at most until `until`) until no fill of theirs is under way,
    /// so no ENI is made or attached for them afterwards; whether none is.
    pub(crate) async fn retire_instances(
        &self,
        instances: &std::collections::HashSet<String>,
        until: Instant,
    ) -> bool {
        self.ctx.pools.retire(instances, until).await
    }

    /// Stops the controllers.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

fn relevant(watches: &[(&str, &str)], change: &Change) -> bool {
    watches
        .iter()
        .any(|(g, p)| change.resource.group == *g && change.resource.plural == *p)
}

async fn run(c: Arc<dyn Controller>, ctx: Ctx) {
    let mut changes = ctx.cluster.store.subscribe();
    let mut closing = ctx.cluster.closing();
    let mut scope = Scope::All;
    let mut why = Why::Start;
    let mut last_full = Instant::now();
    loop {
        if scope.is_all() {
            last_full = Instant::now();
        }
        if why == Why::Resync {
            ctx.audit.start();
        }
        let began = Instant::now();
        let wake_at = c.reconcile(&ctx, &scope).await;
        ctx.cluster
            .count_pass(c.name(), scope.is_all(), began.elapsed());
        let writes = ctx.audit.stop();
        if writes > 0 {
            // Passes woken by changes should have left nothing for a resync to do: this
            // names the controller whose scope missed an object, to be fixed there.
            tracing::warn!(
                controller = c.name(),
                cluster = %ctx.cluster.spec.name,
                writes,
                "a resync found work that passes woken by changes missed"
            );
        }
        let resync_at = last_full + RESYNC;
        let timer_at = wake_at;
        let due = timer_at.map_or(resync_at, |w| w.min(resync_at));
        let sleep = tokio::time::sleep_until(due);
        tokio::pin!(sleep);
        let mut seen = Vec::new();
        let mut again = Vec::new();
        let mut full = false;
        why = Why::Changes;
        loop {
            tokio::select! {
                msg = changes.recv() => match msg {
                    Ok(change) if relevant(c.watches(), &change) => {
                        seen.push(change);
                        break;
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        full = true;
                        why = Why::Lagged;
                        break;
                    }
                    Err(RecvError::Closed) => return,
                },
                () = &mut sleep => {
                    full = true;
                    why = if timer_at.is_some_and(|w| w <= Instant::now()) {
                        Why::Timer
                    } else {
                        Why::Resync
                    };
                    break;
                }
                () = ctx.wake.notified() => {
                    again = ctx.wake.take_again();
                    if !again.is_empty() {
                        why = Why::Worker;
                        break;
                    }
                }
                _ = closing.changed() => return,
            }
        }
        // Coalesce a burst of changes into one pass: writes come in bursts (one object's
        // several writes, many apps' at once), and on a busy estate most of a pass is
        // its fixed cost, so a change waits COALESCE for the rest of its burst.
        if !seen.is_empty() {
            tokio::time::sleep(COALESCE).await;
        }
        loop {
            match changes.try_recv() {
                Ok(change) if relevant(c.watches(), &change) => seen.push(change),
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => {
                    full = true;
                    why = Why::Lagged;
                }
                Err(_) => break,
            }
        }
        again.extend(ctx.wake.take_again());
        if why == Why::Resync && !seen.is_empty() {
            // Changes came with the timer: this pass is not only a resync.
            why = Why::Changes;
        }
        if last_full.elapsed() >= RESYNC && !full {
            full = true;
            if seen.is_empty() {
                why = Why::Resync;
            }
        }
        scope = if full {
            Scope::All
        } else if again.is_empty() {
            Scope::Changes(seen)
        } else {
            Scope::Again(seen, again)
        };
        tracing::trace!(controller = c.name(), cluster = %ctx.cluster.spec.name, ?why, "reconcile");
    }
}

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Start,
    Changes,
    /// A worker finished its object's work, or its key's modelled delay ended.
    Worker,
    Lagged,
    Timer,
    Resync,
}
