//! The Amazon VPC CNI's IP address manager (ipamd) of every node: a pod's address is a
//! secondary private IPv4 address of an ENI attached to its node's EC2 instance, as on
//! EKS (<https://github.com/aws/amazon-vpc-cni-k8s/blob/master/docs/cni-proposal.md>).
//!
//! Each node has a warm pool, filled ahead of need so that starting a pod costs no AWS
//! call: the kubelet takes a free address from its node's pool in memory
//! ([`Pools::take`]) and gives it back when the pod is gone ([`Pools::release`]); this
//! controller refills pools in workers of its own, one per node, when they run low.
//! Pools follow ipamd's defaults (`WARM_ENI_TARGET=1`, no `WARM_IP_TARGET` or
//! `MINIMUM_IP_TARGET`): a node keeps at least one ENI's worth of free addresses, so a
//! new ENI, with all the secondary addresses an ENI of the instance type can hold, is
//! attached as soon as fewer remain; the pool never shrinks. How many ENIs an instance
//! may have and how many addresses each holds come from EC2's DescribeInstanceTypes
//! (`MaximumNetworkInterfaces`, `Ipv4AddressesPerInterface`: an m5.xlarge has 4 ENIs of
//! 15 addresses, one of which is the ENI's own primary address, so 14 per ENI for pods).
//!
//! Where addresses come from:
//! - a cluster without ENIConfigs: the node's own subnet. The primary ENI's free slots
//!   are filled first (AssignPrivateIpAddresses), then further ENIs are created in the
//!   node's subnet with the primary ENI's security groups.
//! - a cluster with ENIConfigs (custom networking, `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true`
//!   with `ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone`): the subnet of the
//!   ENIConfig named after the node's zone, on ENIs created there with the ENIConfig's
//!   security groups (the primary ENI's when it names none); the primary ENI serves no
//!   pod. A node whose zone has no ENIConfig gets no address (its pods wait in
//!   `ContainerCreating` with `FailedCreatePodSandBox`, not in the node's subnet), and is
//!   tried again when ENIConfigs change. Whether a node uses custom networking is decided
//!   when its pool is first filled, as ipamd reads its configuration when it starts: an
//!   ENIConfig applied later takes effect on new nodes, as on EKS, where existing nodes
//!   must be replaced.
//!
//! moto picks secondary addresses at random anywhere in the subnet's block (its network
//! and AWS's reserved addresses included), repeats them, and never checks them against
//! the addresses already in use; it accepts any address it is given. So this ipamd
//! chooses the addresses itself, free in the subnet as DescribeNetworkInterfaces shows
//! it, from the top of the block down (moto gives instances addresses from the bottom
//! up without looking at ENIs), under a lock per subnet held until EC2 has them, and
//! passes them explicitly. It also keeps the limits moto does not: ENIs per instance,
//! addresses per ENI, an ENI in its instance's zone.
//!
//! A pool survives a restart of the control plane: its first fill reads the ENIs
//! attached to the instance, and the pods of the node keep the addresses their
//! `status.podIP` names.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use baton_aws::{EniLimits, Filter, NewNetworkInterface};
use serde_json::Value;
use tokio::time::Instant;

use super::api::{Kind, NODES, PODS, pod_terminated};
use super::attach::instance_of;
use super::provisioner::ZONE_KEY;
use super::workers::{Wake, Workers};
use super::{Controller, Ctx, Scope};
use crate::meta;

/// The VPC CNI's ENIConfigs (served once their CRD is installed).
pub const ENICONFIGS: Kind = Kind {
    group: "crd.k8s.amazonaws.com",
    version: "v1alpha1",
    plural: "eniconfigs",
};

/// The well-known label of a node's instance type.
const INSTANCE_TYPE_KEY: &str = "node.kubernetes.io/instance-type";

/// Nodes filled at once.
const CONCURRENCY: usize = 16;
/// The first wait before a failed fill is tried again (doubling on each failure).
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait before a failed fill is tried again.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Addresses at the bottom of every subnet that AWS keeps (network, router, DNS, future);
/// the last one, the broadcast address, is kept too.
const RESERVED_LOW: u32 = 4;

/// Why a pod has no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoAddress {
    /// The node's pool is being read or filled: an address is on its way.
    Filling,
    /// Every address of the node's pool is in use and the pool cannot grow: the node is
    /// at its instance type's limits, or its last fill failed (why).
    Exhausted(Option<String>),
}

/// Every node's address pool in one cluster, shared by the ipamd (fills) and the
/// kubelets (take, release).
#[derive(Default)]
pub(crate) struct Pools {
    nodes: Mutex<HashMap<String, NodePool>>,
    /// The ipamd controller's wake, once its first pass ran.
    ipamd: Mutex<Option<Arc<Wake>>>,
    /// Instance type → its ENI limits.
    limits: Mutex<HashMap<String, EniLimits>>,
    /// Subnet id → (block, zone).
    subnets: Mutex<HashMap<String, (Block, String)>>,
    /// Told whenever a fill ends.
    filled: tokio::sync::Notify,
    /// Instances whose node group is being deleted: their pools are never filled again.
    retired: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("nodes", &lock(&self.nodes).len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct NodePool {
    instance: String,
    /// What the first fill read; none before it.
    setup: Option<Setup>,
    free: BTreeSet<Ipv4Addr>,
    /// Pod uid → its address.
    assigned: HashMap<String, Ipv4Addr>,
    /// Pods waiting for an address → their kubelet's wake.
    waiting: HashMap<String, Arc<Wake>>,
    /// A worker fills it now.
    filling: bool,
    /// After a failed fill: when to try again, failures in a row, why.
    retry: Option<(Instant, u32, String)>,
    /// Its instance is being terminated: no fill starts, a fill under way stops after
    /// its current step.
    retired: bool,
}

impl NodePool {
    fn new(instance: &str) -> Self {
        Self {
            instance: instance.to_string(),
            setup: None,
            free: BTreeSet::new(),
            assigned: HashMap::new(),
            waiting: HashMap::new(),
            filling: false,
            retry: None,
            retired: false,
        }
    }

    /// Wakes the kubelets of the pods waiting for an address.
    fn wake_waiting(&mut self) {
        for (uid, wake) in self.waiting.drain() {
            wake.request_again(uid);
        }
    }

    /// What the next fill step is, if the pool is below its warm target and may grow.
    fn step(&self) -> Option<Step> {
        if self.retired {
            return None;
        }
        let s = self.setup.as_ref()?;
        let per_eni = s.limits.ipv4_per_interface.saturating_sub(1);
        if self.free.len() >= per_eni {
            return None;
        }
        if !s.custom && s.primary.addresses.len() < per_eni {
            return Some(Step::Primary(per_eni - s.primary.addresses.len()));
        }
        if s.enis.len() + 1 < s.limits.max_interfaces {
            let device = (1..).find(|d| !s.devices.contains(d)).unwrap_or(1);
            return Some(Step::NewEni {
                device,
                count: per_eni,
            });
        }
        None
    }

    /// Whether a fill is wanted now.
    fn wants_fill(&self, now: Instant) -> bool {
        !self.retired
            && !self.filling
            && self.retry.as_ref().is_none_or(|(at, _, _)| *at <= now)
            && (self.setup.is_none() || self.step().is_some())
    }
}

#[derive(Debug)]
struct Setup {
    /// Custom networking: pods' ENIs in the zone's ENIConfig subnet.
    custom: bool,
    limits: EniLimits,
    zone: String,
    primary: Eni,
    /// The ENIs attached besides the primary.
    enis: Vec<Eni>,
    /// Device indexes in use.
    devices: BTreeSet<i32>,
}

#[derive(Debug, Clone)]
struct Eni {
    id: String,
    subnet: String,
    groups: Vec<String>,
    /// Its secondary addresses (the pods').
    addresses: Vec<Ipv4Addr>,
}

/// One step of a fill.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Assign this many secondary addresses to the primary ENI.
    Primary(usize),
    /// Create and attach an ENI at `device` with `count` secondary addresses.
    NewEni { device: i32, count: usize },
}

/// A fill's next step, with what it needs of the node's setup.
#[derive(Debug)]
struct Next {
    step: Step,
    custom: bool,
    zone: String,
    primary: Eni,
}

/// An IPv4 block: its network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    network: u32,
    prefix: u8,
}

impl Block {
    fn parse(cidr: &str) -> Option<Self> {
        let (ip, len) = cidr.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = len.parse().ok().filter(|p| *p <= 32)?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Some(Self {
            network: u32::from(ip) & mask,
            prefix,
        })
    }

    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    #[cfg(test)]
    fn contains(self, ip: Ipv4Addr) -> bool {
        let ip = u64::from(u32::from(ip));
        let net = u64::from(self.network);
        ip >= net && ip < net + self.size()
    }
}

/// `n` addresses of `block` that are neither in `in_use` nor kept by AWS (the first four
/// and the last), from the top of the block down; fewer when fewer are free.
fn choose(block: Block, in_use: &HashSet<Ipv4Addr>, n: usize) -> Vec<Ipv4Addr> {
    let size = block.size();
    if size <= u64::from(RESERVED_LOW) + 1 {
        return Vec::new();
    }
    let first = u64::from(block.network) + u64::from(RESERVED_LOW);
    let last = u64::from(block.network) + size - 2;
    (first..=last)
        .rev()
        .map(|a| Ipv4Addr::from(a as u32))
        .filter(|ip| !in_use.contains(ip))
        .take(n)
        .collect()
}

/// One lock per subnet for the whole process (clusters and estates may share a subnet,
/// ids are unique): held from reading the subnet's addresses in use until EC2 has the
/// ones chosen, so two pools never choose the same.
static SUBNET_LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pools {
    /// An address for pod `uid` on `node` (EC2 instance `instance`): the one it holds,
    /// or the lowest free one. Without one, the pod's kubelet is woken (`kubelet`, key
    /// `uid`) when the node's pool gains or frees an address. Asks the ipamd for a fill
    /// when the pool runs low. No AWS call.
    pub(crate) fn take(
        &self,
        node: &str,
        instance: &str,
        uid: &str,
        kubelet: &Arc<Wake>,
    ) -> Result<Ipv4Addr, NoAddress> {
        let (out, fill) = {
            let mut nodes = lock(&self.nodes);
            let pool = nodes
                .entry(node.to_string())
                .or_insert_with(|| NodePool::new(instance));
            pool.retired |= lock(&self.retired).contains(instance);
            let out = if let Some(ip) = pool.assigned.get(uid) {
                Ok(*ip)
            } else if let Some(ip) = pool.setup.as_ref().and(pool.free.pop_first()) {
                pool.assigned.insert(uid.to_string(), ip);
                Ok(ip)
            } else if let Some((_, _, why)) = &pool.retry {
                Err(NoAddress::Exhausted(Some(why.clone())))
            } else if pool.setup.is_none() || pool.filling || pool.step().is_some() {
                Err(NoAddress::Filling)
            } else {
                Err(NoAddress::Exhausted(None))
            };
            if out.is_err() {
                pool.waiting.insert(uid.to_string(), kubelet.clone());
            } else {
                pool.waiting.remove(uid);
            }
            (out, pool.wants_fill(Instant::now()))
        };
        if fill {
            self.wake_ipamd(node);
        }
        out
    }

    /// Pod `uid` keeps the address it has (its `status.podIP`): no other pod gets it.
    pub(crate) fn keep(&self, node: &str, uid: &str, ip: Ipv4Addr) {
        let mut nodes = lock(&self.nodes);
        if let Some(pool) = nodes.get_mut(node)
            && pool.free.remove(&ip)
        {
            pool.assigned.insert(uid.to_string(), ip);
        }
    }

    /// Pod `uid` is gone: its address is free for the next pod (and no longer waited for).
    pub(crate) fn release(&self, uid: &str) {
        let mut nodes = lock(&self.nodes);
        for pool in nodes.values_mut() {
            pool.waiting.remove(uid);
            if let Some(ip) = pool.assigned.remove(uid) {
                pool.free.insert(ip);
                pool.wake_waiting();
            }
        }
    }

    /// Frees the addresses of pods not in `live`.
    fn release_missing(&self, live: &HashSet<&str>) {
        let mut nodes = lock(&self.nodes);
        for pool in nodes.values_mut() {
            let gone: Vec<String> = pool
                .assigned
                .keys()
                .filter(|uid| !live.contains(uid.as_str()))
                .cloned()
                .collect();
            for uid in &gone {
                if let Some(ip) = pool.assigned.remove(uid) {
                    pool.free.insert(ip);
                }
            }
            pool.waiting.retain(|uid, _| live.contains(uid.as_str()));
            if !gone.is_empty() {
                pool.wake_waiting();
            }
        }
    }

    fn wake_ipamd(&self, node: &str) {
        if let Some(w) = lock(&self.ipamd).as_ref() {
            w.request_again(node.to_string());
        }
    }

    /// Whether the node's pool (a new one for a new instance) wants a fill now.
    fn wants_fill(&self, node: &str, instance: &str) -> bool {
        let mut nodes = lock(&self.nodes);
        let pool = nodes
            .entry(node.to_string())
            .or_insert_with(|| NodePool::new(instance));
        if pool.instance != instance {
            *pool = NodePool::new(instance);
        }
        pool.retired |= lock(&self.retired).contains(instance);
        pool.wants_fill(Instant::now())
    }

    /// A fill's worker starts (the workers run one per node at a time): marks the pool
    /// as filling, unless it is gone.
    fn begin_fill(&self, node: &str) -> bool {
        let mut nodes = lock(&self.nodes);
        let Some(pool) = nodes.get_mut(node) else {
            return false;
        };
        if pool.retired {
            return false;
        }
        pool.filling = true;
        true
    }

    /// A fill ended: when to look at the pool again — after a failure, when to try again;
    /// now, if pods took addresses after the fill's last step.
    fn end_fill(&self, node: &str, result: Result<(), String>) -> Option<Instant> {
        let at = {
            let mut nodes = lock(&self.nodes);
            match nodes.get_mut(node) {
                None => None,
                Some(pool) => {
                    pool.filling = false;
                    match result {
                        Ok(()) => {
                            pool.retry = None;
                            pool.wants_fill(Instant::now()).then(Instant::now)
                        }
                        Err(why) => {
                            let failures = pool.retry.as_ref().map_or(0, |r| r.1) + 1;
                            let wait = FIRST_RETRY
                                .saturating_mul(1 << (failures - 1).min(16))
                                .min(MAX_RETRY);
                            tracing::warn!(node, error = %why, retry_in = ?wait, "ipamd: the node's address pool was not filled");
                            let at = Instant::now() + wait;
                            pool.retry = Some((at, failures, why));
                            pool.wake_waiting();
                            Some(at)
                        }
                    }
                }
            }
        };
        self.filled.notify_waiters();
        at
    }

    /// ENIConfigs changed: pools waiting to try again try now.
    fn retry_now(&self) {
        let now = Instant::now();
        for pool in lock(&self.nodes).values_mut() {
            if let Some(r) = pool.retry.as_mut() {
                r.0 = now;
            }
        }
    }

    /// When the soonest failed fill is to be tried again.
    fn next_retry(&self) -> Option<Instant> {
        lock(&self.nodes)
            .values()
            .filter_map(|p| p.retry.as_ref().map(|r| r.0))
            .min()
    }

    /// The node's next fill step, and what it needs of the node's setup.
    fn next(&self, node: &str) -> Option<Next> {
        let nodes = lock(&self.nodes);
        let pool = nodes.get(node)?;
        let step = pool.step()?;
        let s = pool.setup.as_ref()?;
        Some(Next {
            step,
            custom: s.custom,
            zone: s.zone.clone(),
            primary: s.primary.clone(),
        })
    }

    /// The first fill read the instance: its ENIs' secondary addresses make the pool,
    /// those that `holders` (pod uid → `status.podIP`) name being theirs.
    fn install(&self, node: &str, setup: Setup, holders: &HashMap<String, Ipv4Addr>) {
        let mut nodes = lock(&self.nodes);
        let Some(pool) = nodes.get_mut(node) else {
            return;
        };
        let mut all: BTreeSet<Ipv4Addr> = setup
            .enis
            .iter()
            .flat_map(|e| e.addresses.clone())
            .collect();
        if !setup.custom {
            all.extend(setup.primary.addresses.iter().copied());
        }
        for (uid, ip) in holders {
            if all.remove(ip) {
                pool.assigned.insert(uid.clone(), *ip);
            }
        }
        pool.free = all;
        pool.setup = Some(setup);
        pool.wake_waiting();
    }

    /// A step's addresses are on an ENI: they join the pool.
    fn add(&self, node: &str, eni: Option<(Eni, i32)>, primary: &[Ipv4Addr]) {
        let mut nodes = lock(&self.nodes);
        let Some(pool) = nodes.get_mut(node) else {
            return;
        };
        let Some(setup) = pool.setup.as_mut() else {
            return;
        };
        setup.primary.addresses.extend_from_slice(primary);
        pool.free.extend(primary.iter().copied());
        if let Some((eni, device)) = eni {
            pool.free.extend(eni.addresses.iter().copied());
            setup.devices.insert(device);
            setup.enis.push(eni);
        }
        pool.wake_waiting();
    }

    /// Whether every one of `nodes` (name, instance) has a pool that is read, not being
    /// filled, and at its warm target, at its limits, or waiting to try again.
    pub(crate) fn settled(&self, nodes: &[(String, String)]) -> bool {
        let pools = lock(&self.nodes);
        nodes.iter().all(|(name, instance)| {
            pools.get(name).is_some_and(|p| {
                &p.instance == instance
                    && !p.filling
                    && (p.retry.is_some() || (p.setup.is_some() && p.step().is_none()))
            })
        })
    }

    /// The instances' node group is being deleted: their pools are never filled again
    /// (the VPC CNI stops with its node). Waits (at most until `until`) until no fill of
    /// theirs is under way, so that no ENI is created or attached for them afterwards;
    /// whether none is.
    pub(crate) async fn retire(&self, instances: &HashSet<String>, until: Instant) -> bool {
        lock(&self.retired).extend(instances.iter().cloned());
        for pool in lock(&self.nodes).values_mut() {
            if instances.contains(&pool.instance) {
                pool.retired = true;
                pool.retry = None;
                pool.wake_waiting();
            }
        }
        let busy = || {
            lock(&self.nodes)
                .values()
                .any(|p| p.filling && instances.contains(&p.instance))
        };
        loop {
            let changed = self.filled.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !busy() {
                return true;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return !busy();
            }
        }
    }

    /// Waits until `settled` may have changed.
    pub(crate) async fn settled_changed(&self, nodes: &[(String, String)], until: Instant) -> bool {
        loop {
            let changed = self.filled.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.settled(nodes) {
                return true;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return self.settled(nodes);
            }
        }
    }

    async fn limits(&self, aws: &baton_aws::Aws, instance_type: &str) -> Result<EniLimits, String> {
        if let Some(l) = lock(&self.limits).get(instance_type) {
            return Ok(*l);
        }
        let l = aws
            .eni_limits(instance_type)
            .await
            .map_err(|e| e.to_string())?;
        lock(&self.limits).insert(instance_type.to_string(), l);
        Ok(l)
    }

    async fn subnet(&self, aws: &baton_aws::Aws, id: &str) -> Result<(Block, String), String> {
        if let Some(s) = lock(&self.subnets).get(id) {
            return Ok(s.clone());
        }
        let found = aws
            .describe_subnets(&[Filter::new("subnet-id", [id])])
            .await
            .map_err(|e| e.to_string())?;
        let s = found.first().ok_or_else(|| {
            format!("InvalidSubnetID.NotFound: The subnet ID '{id}' does not exist")
        })?;
        let block = Block::parse(&s.cidr.to_string())
            .ok_or_else(|| format!("subnet {id} has no IPv4 block"))?;
        let out = (block, s.availability_zone.clone());
        lock(&self.subnets).insert(id.to_string(), out.clone());
        Ok(out)
    }
}

/// The ipamd controller.
pub(crate) struct Ipamd {
    fills: Workers,
}

impl Default for Ipamd {
    fn default() -> Self {
        Self {
            fills: Workers::new(CONCURRENCY),
        }
    }
}

impl Controller for Ipamd {
    fn name(&self) -> &'static str {
        "ipamd"
    }

    fn watches(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("", "nodes"),
            ("", "pods"),
            ("crd.k8s.amazonaws.com", "eniconfigs"),
        ]
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Ctx,
        scope: &'a Scope,
    ) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send + 'a>> {
        Box::pin(async move {
            let pools = &ctx.pools;
            {
                let mut w = lock(&pools.ipamd);
                if w.is_none() {
                    *w = Some(ctx.wake.clone());
                }
            }
            ctx.aws.as_ref()?;
            // Pods that are gone or finished give their addresses back (the kubelet
            // does it for the pods it stops; this is for the rest, e.g. force-deleted).
            if scope.is_all() {
                let pods = ctx.list(PODS, None);
                let live: HashSet<&str> = pods
                    .iter()
                    .filter(|p| !pod_terminated(p))
                    .map(|p| meta::uid(p))
                    .collect();
                pools.release_missing(&live);
            } else {
                for (pod, _) in scope.changed("", "pods") {
                    let current = ctx.get(PODS, meta::namespace(pod), meta::name(pod));
                    let gone = current
                        .is_none_or(|c| meta::uid(&c) != meta::uid(pod) || pod_terminated(&c));
                    if gone {
                        pools.release(meta::uid(pod));
                    }
                }
            }
            if scope.touches(ENICONFIGS.group, ENICONFIGS.plural) {
                pools.retry_now();
            }
            let nodes: Vec<std::sync::Arc<Value>> = if scope.is_all()
                || scope.touches("", "nodes")
                || scope.touches(ENICONFIGS.group, ENICONFIGS.plural)
            {
                let all = ctx.list(NODES, None);
                if scope.is_all() {
                    let names: HashSet<&str> = all.iter().map(|n| meta::name(n)).collect();
                    lock(&pools.nodes).retain(|name, _| names.contains(name.as_str()));
                }
                all
            } else {
                scope
                    .again()
                    .iter()
                    .filter_map(|name| ctx.get(NODES, "", name))
                    .collect()
            };
            for node in nodes {
                let Some(instance) = instance_of(&node) else {
                    continue;
                };
                let name = meta::name(&node).to_string();
                if !pools.wants_fill(&name, &instance) {
                    continue;
                }
                // A fill already under way for the node is marked by the workers, and
                // its end asks for a pass over the node again.
                let wctx = ctx.for_worker();
                self.fills.spawn(name.clone(), &ctx.wake, async move {
                    if !wctx.pools.begin_fill(&name) {
                        return None;
                    }
                    let result = fill(&wctx, &name, &instance).await;
                    wctx.pools.end_fill(&name, result)
                });
            }
            pools.next_retry()
        })
    }
}

/// Reads the node's instance if its pool is new, then adds addresses until the pool
/// is at its warm target or its limits.
async fn fill(ctx: &Ctx, node: &str, instance: &str) -> Result<(), String> {
    let aws = ctx.aws.as_ref().ok_or_else(|| "no EC2".to_string())?;
    let pools = &ctx.pools;
    let new = lock(&pools.nodes)
        .get(node)
        .is_some_and(|p| p.setup.is_none());
    if new {
        let setup = read_instance(ctx, aws, node, instance).await?;
        let holders: HashMap<String, Ipv4Addr> = ctx
            .list(PODS, None)
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .filter_map(|p| {
                let ip = p["status"]["podIP"].as_str()?.parse().ok()?;
                Some((meta::uid(p).to_string(), ip))
            })
            .collect();
        pools.install(node, setup, &holders);
    }
    while let Some(s) = pools.next(node) {
        match s.step {
            Step::Primary(count) => {
                let subnet = &s.primary.subnet;
                let (_held, ips) = choose_in_subnet(pools, aws, subnet, count).await?;
                let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
                aws.assign_private_ips(&s.primary.id, &list)
                    .await
                    .map_err(|e| e.to_string())?;
                pools.add(node, None, &ips);
            }
            Step::NewEni { device, count } => {
                let (subnet, groups) = if s.custom {
                    eni_config(ctx, node, &s.zone)?
                } else {
                    (s.primary.subnet.clone(), s.primary.groups.clone())
                };
                let groups = if groups.is_empty() {
                    s.primary.groups.clone()
                } else {
                    groups
                };
                let (_, zone) = pools.subnet(aws, &subnet).await?;
                if zone != s.zone {
                    // AWS's answer to AttachNetworkInterface across zones (moto attaches).
                    return Err(format!(
                        "InvalidParameterCombination: subnet {subnet} is in {zone}, instance {instance} in {}: you may not attach a network interface to an instance if they are not in the same availability zone",
                        s.zone
                    ));
                }
                let (held, ips) = choose_in_subnet(pools, aws, &subnet, count + 1).await?;
                let tags = baton_aws::Tags::from([
                    (
                        "node.k8s.amazonaws.com/instance_id".to_string(),
                        instance.to_string(),
                    ),
                    (
                        "cluster.k8s.amazonaws.com/name".to_string(),
                        ctx.cluster.spec.name.clone(),
                    ),
                ]);
                let eni = aws
                    .create_network_interface(&NewNetworkInterface {
                        subnet_id: subnet.clone(),
                        security_groups: groups.clone(),
                        description: format!("aws-K8S-{instance}"),
                        private_ip: ips[0].to_string(),
                        secondary_ips: ips[1..].iter().map(ToString::to_string).collect(),
                        tags,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                drop(held);
                if let Err(e) = aws
                    .attach_network_interface(&eni.id, instance, device)
                    .await
                {
                    // ipamd deletes an ENI it could not attach.
                    let _ = aws.delete_network_interface(&eni.id).await;
                    return Err(e.to_string());
                }
                let eni = Eni {
                    id: eni.id,
                    subnet,
                    groups,
                    addresses: ips[1..].to_vec(),
                };
                pools.add(node, Some((eni, device)), &[]);
            }
        }
    }
    Ok(())
}

/// `n` free addresses of the subnet, and its lock, to hold until EC2 has them.
async fn choose_in_subnet(
    pools: &Pools,
    aws: &baton_aws::Aws,
    subnet: &str,
    n: usize,
) -> Result<(tokio::sync::OwnedMutexGuard<()>, Vec<Ipv4Addr>), String> {
    let (block, _) = pools.subnet(aws, subnet).await?;
    let subnet_lock = lock(&SUBNET_LOCKS)
        .entry(subnet.to_string())
        .or_default()
        .clone();
    let held = subnet_lock.lock_owned().await;
    let in_use: HashSet<Ipv4Addr> = aws
        .describe_network_interfaces(&[Filter::new("subnet-id", [subnet])])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .flat_map(|e| std::iter::once(&e.private_ip).chain(&e.secondary_ips))
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let ips = choose(block, &in_use, n);
    if ips.len() < n {
        return Err(format!(
            "InsufficientFreeAddressesInSubnet: subnet {subnet} has {} free addresses, {n} wanted",
            ips.len()
        ));
    }
    Ok((held, ips))
}

/// The node's instance as ipamd reads it when it starts: its type's limits, its ENIs,
/// and whether the cluster uses custom networking.
async fn read_instance(
    ctx: &Ctx,
    aws: &baton_aws::Aws,
    node: &str,
    instance: &str,
) -> Result<Setup, String> {
    // The instance type, as ipamd reads it from the instance metadata: the node's label
    // (the kubelet's, from the same source), or EC2 for a node without one.
    let node_object = ctx.get(NODES, "", node);
    let labelled = node_object
        .as_ref()
        .and_then(|n| n["metadata"]["labels"][INSTANCE_TYPE_KEY].as_str())
        .map(String::from);
    let instance_type = match labelled {
        Some(t) => t,
        None => aws
            .describe_instances(&[Filter::new("instance-id", [instance])])
            .await
            .map_err(|e| e.to_string())?
            .first()
            .map(|i| i.instance_type.clone())
            .ok_or_else(|| format!("node {node}: instance {instance} does not exist"))?,
    };
    let limits = ctx.pools.limits(aws, &instance_type).await?;
    let attached = aws
        .describe_network_interfaces(&[Filter::new("attachment.instance-id", [instance])])
        .await
        .map_err(|e| e.to_string())?;
    let eni = |e: &baton_aws::NetworkInterface| Eni {
        id: e.id.clone(),
        subnet: e.subnet_id.clone(),
        groups: e.security_groups.clone(),
        addresses: e
            .secondary_ips
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect(),
    };
    let device =
        |e: &baton_aws::NetworkInterface| e.attachment.as_ref().map_or(-1, |a| a.device_index);
    let primary = attached
        .iter()
        .find(|e| device(e) == 0)
        .map(eni)
        .ok_or_else(|| {
            format!("node {node}: instance {instance} has no primary network interface")
        })?;
    let enis: Vec<Eni> = attached.iter().filter(|e| device(e) > 0).map(eni).collect();
    let devices = attached.iter().map(device).filter(|d| *d > 0).collect();
    let custom = ctx.serves(ENICONFIGS) && !ctx.list(ENICONFIGS, None).is_empty();
    let primary_zone = attached
        .iter()
        .find(|e| device(e) == 0)
        .map(|e| e.availability_zone.clone())
        .unwrap_or_default();
    let zone = node_object
        .and_then(|n| n["metadata"]["labels"][ZONE_KEY].as_str().map(String::from))
        .unwrap_or(primary_zone);
    Ok(Setup {
        custom,
        limits,
        zone,
        primary,
        enis,
        devices,
    })
}

/// The subnet and security groups of the ENIConfig named after the node's zone.
fn eni_config(ctx: &Ctx, node: &str, zone: &str) -> Result<(String, Vec<String>), String> {
    let config = ctx
        .serves(ENICONFIGS)
        .then(|| ctx.get(ENICONFIGS, "", zone))
        .flatten()
        .ok_or_else(|| {
            format!("node {node}: custom networking, and no ENIConfig named {zone} (the node's {ZONE_KEY})")
        })?;
    let subnet = config["spec"]["subnet"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("ENIConfig {zone} names no subnet"))?
        .to_string();
    let groups = config["spec"]["securityGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(String::from))
        .collect();
    Ok((subnet, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_chosen_in_the_block_from_the_top_past_those_in_use_and_reserved() {
        let block = Block::parse("10.1.0.0/28").unwrap();
        let in_use: HashSet<Ipv4Addr> = [ip("10.1.0.14"), ip("10.1.0.12")].into();
        assert_eq!(
            choose(block, &in_use, 3),
            [ip("10.1.0.13"), ip("10.1.0.11"), ip("10.1.0.10")],
            "the broadcast address .15 is AWS's"
        );
        // 16 addresses, 5 AWS's, 2 in use: 9 left, the lowest .4.
        let all = choose(block, &in_use, 100);
        assert_eq!(all.len(), 9);
        assert_eq!(all.last(), Some(&ip("10.1.0.4")));
        assert!(all.iter().all(|a| block.contains(*a)));
        assert!(choose(Block::parse("10.1.0.0/30").unwrap(), &HashSet::new(), 1).is_empty());
    }

    #[test]
    fn blocks_parse_to_their_network() {
        let b = Block::parse("100.64.32.7/19").unwrap();
        assert_eq!(Ipv4Addr::from(b.network), ip("100.64.32.0"));
        assert!(b.contains(ip("100.64.63.255")));
        assert!(!b.contains(ip("100.64.64.0")));
        assert!(Block::parse("nonsense").is_none());
    }

    fn setup(custom: bool, primary: usize, enis: usize) -> Setup {
        let eni = |id: &str, n: usize, base: u8| Eni {
            id: id.into(),
            subnet: "subnet-1".into(),
            groups: vec![],
            addresses: (0..n)
                .map(|i| Ipv4Addr::new(10, 0, base, i as u8 + 10))
                .collect(),
        };
        Setup {
            custom,
            // m5.xlarge
            limits: EniLimits {
                max_interfaces: 4,
                ipv4_per_interface: 15,
            },
            zone: "us-east-1a".into(),
            primary: eni("eni-0", primary, 0),
            enis: (0..enis)
                .map(|i| eni(&format!("eni-{}", i + 1), 14, i as u8 + 1))
                .collect(),
            devices: (1..=enis as i32).collect(),
        }
    }

    fn pool(s: Setup) -> (Pools, Arc<Wake>) {
        let pools = Pools::default();
        lock(&pools.nodes).insert("n".into(), NodePool::new("i-1"));
        pools.install("n", s, &HashMap::new());
        (pools, Arc::new(Wake::default()))
    }

    #[test]
    fn without_custom_networking_the_primary_eni_fills_first_then_one_enis_worth_stays_warm() {
        let (pools, _) = pool(setup(false, 0, 0));
        assert_eq!(pools.next("n").unwrap().step, Step::Primary(14));
        let (pools, wake) = pool(setup(false, 14, 0));
        assert!(pools.next("n").is_none(), "14 free: one ENI's worth");
        pools.take("n", "i-1", "pod-a", &wake).unwrap();
        assert_eq!(
            pools.next("n").unwrap().step,
            Step::NewEni {
                device: 1,
                count: 14
            },
            "13 free: below one ENI's worth"
        );
    }

    #[test]
    fn with_custom_networking_the_primary_eni_serves_no_pod_and_the_limits_hold() {
        let (pools, wake) = pool(setup(true, 0, 0));
        assert_eq!(
            pools.next("n").unwrap().step,
            Step::NewEni {
                device: 1,
                count: 14
            }
        );
        assert_eq!(
            pools.take("n", "i-1", "pod-a", &wake),
            Err(NoAddress::Filling),
            "the first ENI is on its way"
        );
        // Three ENIs besides the primary: an m5.xlarge's four, nothing more to add.
        let (pools, wake) = pool(setup(true, 0, 3));
        for i in 0..42 {
            pools.take("n", "i-1", &format!("pod-{i}"), &wake).unwrap();
        }
        assert!(pools.next("n").is_none());
        assert_eq!(
            pools.take("n", "i-1", "pod-43", &wake),
            Err(NoAddress::Exhausted(None))
        );
    }

    #[test]
    fn a_pod_keeps_its_address_and_a_released_one_goes_to_the_next_pod() {
        let (pools, wake) = pool(setup(false, 2, 0));
        let a = pools.take("n", "i-1", "pod-a", &wake).unwrap();
        assert_eq!(
            pools.take("n", "i-1", "pod-a", &wake),
            Ok(a),
            "the same pod, the same address"
        );
        let b = pools.take("n", "i-1", "pod-b", &wake).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            pools.take("n", "i-1", "pod-c", &wake),
            Err(NoAddress::Filling),
            "two free was below the warm target"
        );
        pools.release("pod-a");
        assert_eq!(
            wake.take_again(),
            ["pod-c"],
            "the waiting pod's kubelet is woken"
        );
        assert_eq!(pools.take("n", "i-1", "pod-c", &wake), Ok(a));
        pools.release_missing(&["pod-c"].into());
        assert_eq!(
            pools.take("n", "i-1", "pod-d", &wake),
            Ok(b),
            "pod-b is gone"
        );
    }

    #[test]
    fn addresses_taken_during_a_fill_get_the_pool_looked_at_again_when_it_ends() {
        let (pools, wake) = pool(setup(false, 14, 0));
        assert!(!pools.wants_fill("n", "i-1"), "at its warm target");
        assert!(pools.begin_fill("n"));
        // Taken while the fill runs (it had found nothing to do): no pass is asked for
        // then, as a fill is under way...
        pools.take("n", "i-1", "pod-a", &wake).unwrap();
        assert!(!pools.wants_fill("n", "i-1"));
        // ...so its end asks for one, and the next pass fills.
        assert!(pools.end_fill("n", Ok(())).is_some());
        assert!(pools.wants_fill("n", "i-1"));
        assert!(
            pools.wants_fill("n", "i-1"),
            "asking does not mark the pool"
        );
        // A failed fill is tried again later, not at once.
        assert!(pools.begin_fill("n"));
        let at = pools.end_fill("n", Err("throttled".into())).unwrap();
        assert!(at > Instant::now());
        assert!(!pools.wants_fill("n", "i-1"));
    }

    #[test]
    fn a_restarted_pool_leaves_pods_their_addresses() {
        let pools = Pools::default();
        lock(&pools.nodes).insert("n".into(), NodePool::new("i-1"));
        let s = setup(false, 3, 0);
        let held = s.primary.addresses[0];
        pools.install("n", s, &HashMap::from([("pod-a".to_string(), held)]));
        let wake = Arc::new(Wake::default());
        assert_eq!(pools.take("n", "i-1", "pod-a", &wake), Ok(held));
        let others: Vec<_> = (0..2)
            .map(|i| pools.take("n", "i-1", &format!("p{i}"), &wake).unwrap())
            .collect();
        assert!(!others.contains(&held));
    }
}
