//! The emulated EKS estate baton is proven on.
//!
//! No kube-apiserver can be installed on our machines, so this crate serves a faithful
//! Kubernetes API of its own over real HTTP: several named clusters at once, each on its own
//! loopback port with a bearer token, so kube-rs and `kubectl` talk to it as to a real
//! cluster. Faithful where baton's safety is decided: resourceVersion and watch semantics,
//! optimistic concurrency, finalizers, immutable fields, server defaults, `Status` errors.
//!
//! Known gaps (none hides a Kubernetes rule baton's safety relies on; the last four are AWS
//! behaviour the bed models only in part, and a move or a traffic shift that passes here
//! may still stall on them in a real account):
//! - server-side apply is approximated as a strategic merge of the applied object: fields a
//!   manager stops applying are not removed (no managedFields ownership);
//! - JSON only, but for `/openapi/v2`, which is an empty document (its protobuf is zero
//!   bytes): no protobuf objects, no aggregated discovery; `/openapi/v3` publishes only
//!   what kubectl needs to send `fieldValidation`, and unknown fields are accepted;
//!   `Table` responses carry the real printers' columns for the kinds baton's users look
//!   at (pods, claims, PVs, StatefulSets…), NAME and AGE for the rest;
//! - no admission webhooks but the AWS Load Balancer Controller's pod readiness-gate
//!   injection (where its CRD is served); its TargetGroupBinding webhooks are not modelled
//!   (defaulting `targetType`, `ipAddressType`, `vpcID` and the protocol from
//!   DescribeTargetGroups, refusing a binding whose group does not exist or is already
//!   bound in the cluster without `multiClusterTargetGroup`): such a binding is accepted
//!   and fails when reconciled. RBAC is enforced for service-account tokens (minted with
//!   `kubectl create token`) but not for the admin token, and without ClusterRole
//!   aggregation or the legacy Secret-based service-account tokens;
//! - a Service's node ports are allocated and checked (30000–32767, free), its cluster IP
//!   allocated, but no EndpointSlices or Endpoints are served: the AWS Load Balancer
//!   Controller computes from the pods the endpoints the EndpointSlice controller would
//!   publish;
//! - DaemonSets and PodDisruptionBudgets are stored and served, but no controller acts on
//!   them (no daemon pods, no budget status). HorizontalPodAutoscalers are acted on
//!   (`controllers/hpa.rs`) without metrics: no metrics API is served, so an HPA only keeps
//!   its target within its bounds (and leaves a target at 0 alone), never scales on load;
//!   no `behavior`, stabilization or `ScalingLimited`;
//! - the adversaries of a move are modelled as far as they scale workloads
//!   (`controllers/argocd.rs`, `flux.rs`, `keda.rs`, while their CRDs are served): their
//!   desired state is each workload's `spec.replicas` kept in the object's
//!   `baton.sim/git-replicas` annotation (filled when first seen), the bed's stand-in for a
//!   Git repository; only Deployments and StatefulSets, only replicas; Argo CD only in
//!   namespace `argocd`, without sync windows, hooks, prune, retries, AppProjects; Flux
//!   without sources, health checks, dependencies or drift ignore rules; KEDA with one
//!   trigger type (`metrics-api`, its value read from the ConfigMap `baton-sim-metrics`),
//!   no metrics adapter, fallback, idle replicas or ScaledJobs;
//! - pods are removed at once on delete unless `Cluster::graceful_pod_deletion` is set (a
//!   kubelet then finishes them);
//! - pods' addresses are the Amazon VPC CNI's (`controllers/ipamd.rs`): secondary
//!   addresses of ENIs made in EC2 and attached to the node's instance, in its subnet or
//!   its zone's ENIConfig subnet, from a warm pool sized as ipamd's defaults size it. Not
//!   modelled: prefix delegation, IPv6, security groups for pods (branch ENIs),
//!   `WARM_IP_TARGET`/`MINIMUM_IP_TARGET`, the cooldown before a released address is
//!   reused, giving surplus ENIs back, a node being NotReady until its CNI is, ENIs left
//!   behind by a deleted node, and `max-pods` (the scheduler places pods beyond what a
//!   node's ENIs hold; they wait in `ContainerCreating` with `FailedCreatePodSandBox`, as
//!   on a node whose max-pods is set too high). Pods on a node that is no EC2 instance (a
//!   control plane without AWS) are numbered from 10.64.0.0/10, in no network;
//! - moto's ENIs, which the bed's CNI works around rather than relies on: given a count
//!   (`SecondaryPrivateIpAddressCount`), CreateNetworkInterface and
//!   AssignPrivateIpAddresses pick addresses at random anywhere in the subnet's block
//!   (its network and broadcast addresses and AWS's reserved ones included), repeat them,
//!   and never check them against the addresses of other ENIs or instances; given
//!   addresses, they take them even outside the subnet or held elsewhere; there is no
//!   limit on ENIs per instance or addresses per ENI; AttachNetworkInterface takes an ENI
//!   of another zone and a device index in use; DeleteNetworkInterface deletes an
//!   attached ENI; instances get addresses from the bottom of the block without looking
//!   at ENIs'. (`AvailableIpAddressCount` does count every ENI address.) So the bed
//!   chooses free addresses itself, from the top of the block down, under a lock per
//!   subnet, passes them explicitly, and keeps the instance type's limits and the zone
//!   rule; an address another client gives an ENI or an instance at the same moment is
//!   not seen. TerminateInstances deletes no ENI (an instance run without a network
//!   interface spec gets a primary ENI with DeleteOnTermination false, and the VPC CNI's
//!   stay `in-use` on the terminated instance), so deleting a node group deletes them
//!   itself; and DeleteSubnet refuses nothing (EC2's `DependencyViolation` for a subnet
//!   holding an ENI is not answered: tests assert no ENI is left instead);
//! - the AWS Load Balancer Controller is its TargetGroupBinding controller only
//!   (`controllers/tgb.rs`, modelled on v3.5.0): no Ingress, Service or Gateway
//!   reconcilers, no `networking` (security-group rules), `targetGroupName` lookup,
//!   `iamRoleArnToAssume`, QUIC server ids, `--max-targets-per-target-group`, nor
//!   `AvailabilityZone: all` for pod IPs outside the VPC; its deferred checkpoint reset
//!   (30–45 minutes after a 10-hour resync) is not modelled, so a binding whose endpoints
//!   and spec do not change is not looked at again in a bed's run (as in the first 10 hours
//!   of a real one);
//! - AWS authorization only for the EBS CSI controller's AttachVolume/DetachVolume (only
//!   where a cluster declares the driver's role: `aws_auth`, ARCHITECTURE.md) and for a
//!   pod's IRSA role (its trust policy and the cluster's OIDC provider, as STS checks them:
//!   no token signature, thumbprint or trust-policy size limit); snapshots,
//!   CreateVolume/DeleteVolume, the kubelets' and ipamd's EC2 calls and the AWS Load
//!   Balancer Controller's ELBv2 calls are not evaluated;
//! - moto's ELBv2, which the bed takes as it is: a target group keys its targets by id
//!   only (registering an address at a second port replaces the first, deregistering
//!   `id:port` removes the id whatever the port; the emulated controller deregisters before
//!   it registers, as the real one, so a changed target port still converges); registered
//!   targets are `healthy` at once (no `initial` while health checks run, no `unused` in a
//!   group no load balancer uses, no `draining` for the deregistration delay: deregistered
//!   targets vanish), so a pod's readiness gate turns True on the reconcile after its
//!   registration, and tests hold a gate by refusing DescribeTargetHealth through the AWS
//!   fault proxy; RegisterTargets checks neither the group's target type nor that an IP is
//!   in its VPC; DescribeTargetHealth of an address never registered answers `unavailable`
//!   (AWS: `unused`, `Target.NotRegistered`), and DeregisterTargets of a target not
//!   registered answers `InvalidTarget`; the deregistration delay is stored and read
//!   back (AWS's default 300 s; moto refuses 3600, which AWS takes) but nothing drains;
//! - the ALBs' clients and CloudWatch metrics (`traffic.rs`): a steady rate per listener,
//!   spread evenly over its rules and split by the forward weights, published every
//!   second (the ALB: every minute) as `RequestCount` and `HTTPCode_Target_5XX_Count`
//!   per target group and load balancer and the load balancer's own 503s for a group
//!   without targets; no zones, rule conditions, stickiness, draining, latency or bytes.
//!   moto's CloudWatch sums datapoints by exact dimension set, but only in the order they
//!   were put (its sort of dimensions is broken), and ignores the namespace when a query
//!   names dimensions.

pub mod auth;
pub mod aws_auth;
pub mod cluster;
pub mod controllers;
mod crd;
mod defaults;
pub mod error;
pub mod estate;
pub mod faults;
mod gc;
mod http;
pub mod kubeconfig;
pub mod meta;
/// moto's launcher, the AWS test bed's (`baton_aws::testbed::moto`).
pub use baton_aws::testbed::moto;
pub mod ops;
pub mod patch;
pub mod resources;
pub mod scenario;
pub mod selector;
pub mod server;
pub mod store;
pub mod tls;
pub mod traffic;
pub mod validate;

pub use cluster::{Cluster, ClusterSpec};
pub use error::ApiError;
pub use kubeconfig::Kubeconfig;
pub use resources::{ResourceDef, ScaleSubresource};
pub use server::{RunningCluster, ServeError, SimServer};
