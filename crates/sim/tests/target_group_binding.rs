//! The AWS Load Balancer Controller's TargetGroupBinding as the bed models it (v3.5.0 of
//! kubernetes-sigs/aws-load-balancer-controller), against moto's ELBv2: each test pins one
//! fact of the real controller. Every test has its own estate (blue and green, nodes
//! backed by EC2 instances in a fresh VPC) on this binary's moto, its own target groups,
//! and the binding CRD the default scenario installs. Target groups are read straight
//! from moto, not through the estate's fault proxy, so a fault injected for the
//! controller does not blind the test.
//!
//! The two-cluster tests bind instance targets: the bed makes pod addresses up per
//! cluster (`lib.rs`'s gaps), so two clusters' pods may share one, while their nodes'
//! instance ids are EC2's. The multicluster tracking is the same for both target types.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use baton_aws::Aws;
use baton_sim::controllers::{CHECKPOINT, Delays, INJECT_LABEL, TGB_FINALIZER, readiness_gate};
use baton_sim::faults::{AwsFault, AwsRule};
use baton_sim::resources::GroupResource;
use baton_sim::scenario::Scenario;
use common::estate::{EstateBed, moto_endpoint};
use serde_json::{Value, json};

/// How long a test waits for the controllers to converge.
const PATIENCE: Duration = Duration::from_secs(30);

struct Bed {
    bed: EstateBed,
    /// Straight to moto (no fault proxy).
    moto: Aws,
    id: String,
    groups: std::sync::atomic::AtomicU32,
}

impl Bed {
    async fn start(nodes: usize) -> Self {
        Self::start_with(nodes, Delays::default()).await
    }

    async fn start_with(nodes: usize, delays: Delays) -> Self {
        let bed = EstateBed::start_with(nodes, delays).await;
        let moto = Aws::connect(&baton_sim::estate::aws_config(
            &moto_endpoint(),
            &bed.estate.region,
        ))
        .await
        .unwrap();
        let this = Self {
            bed,
            moto,
            id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            groups: std::sync::atomic::AtomicU32::new(0),
        };
        // The controller is installed: its CRD, as the default scenario's platform has it.
        let crd = Scenario::load("default")
            .unwrap()
            .platform
            .into_iter()
            .find(|o| o["metadata"]["name"] == "targetgroupbindings.elbv2.k8s.aws")
            .expect("the default scenario installs the TargetGroupBinding CRD");
        for c in ["blue", "green"] {
            this.create(c, crd.clone());
        }
        this
    }

    fn cluster(&self, name: &str) -> &baton_sim::Cluster {
        &self.bed.estate.server.cluster(name).unwrap().cluster
    }

    fn create(&self, cluster: &str, obj: Value) -> Value {
        let c = self.cluster(cluster);
        let def = c
            .def_by_kind(
                obj["apiVersion"].as_str().unwrap(),
                obj["kind"].as_str().unwrap(),
            )
            .unwrap_or_else(|| panic!("{} is served", obj["kind"]));
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        c.create(&def, &ns, obj, false).unwrap()
    }

    fn merge(&self, cluster: &str, api: (&str, &str, &str), ns: &str, name: &str, patch: Value) {
        let c = self.cluster(cluster);
        let def = c.def(api.0, api.1, api.2).unwrap();
        c.patch(
            &def,
            ns,
            name,
            baton_sim::patch::PatchType::Merge,
            &serde_json::to_vec(&patch).unwrap(),
            baton_sim::ops::Part::Main,
            false,
        )
        .unwrap();
    }

    fn delete(&self, cluster: &str, api: (&str, &str, &str), ns: &str, name: &str) {
        let c = self.cluster(cluster);
        let def = c.def(api.0, api.1, api.2).unwrap();
        c.delete(&def, ns, name, &Default::default()).unwrap();
    }

    fn list(&self, cluster: &str, group: &str, plural: &str, ns: &str) -> Vec<Value> {
        let gr = GroupResource {
            group: group.into(),
            plural: plural.into(),
        };
        self.cluster(cluster)
            .store
            .txn(|t| t.list(&gr, Some(ns)))
            .iter()
            .map(|o| (**o).clone())
            .collect()
    }

    fn get(&self, cluster: &str, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let gr = GroupResource {
            group: group.into(),
            plural: plural.into(),
        };
        self.cluster(cluster)
            .store
            .txn(|t| t.get(&gr, ns, name))
            .map(|o| (*o).clone())
    }

    fn pods(&self, cluster: &str, ns: &str) -> Vec<Value> {
        self.list(cluster, "", "pods", ns)
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect()
    }

    fn binding(&self, cluster: &str, ns: &str, name: &str) -> Value {
        self.get(cluster, "elbv2.k8s.aws", "targetgroupbindings", ns, name)
            .expect("the binding exists")
    }

    /// Events about `name` in `ns`: (type, reason, message).
    fn events(&self, cluster: &str, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        self.list(cluster, "", "events", ns)
            .iter()
            .filter(|e| e["involvedObject"]["name"] == name)
            .map(|e| (s(&e["type"]), s(&e["reason"]), s(&e["message"])))
            .collect()
    }

    /// A fresh target group of `target_type` on HTTP 8080 in the bed's VPC.
    async fn target_group(&self, target_type: &str) -> String {
        let n = 1 + self
            .groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bed
            .estate
            .aws
            .create_target_group_of_type(
                &format!("tgb-{}-{n}", self.id),
                &self.bed.vpc,
                8080,
                target_type,
            )
            .await
            .unwrap()
    }

    /// The group's targets as moto has them: (id, port).
    async fn targets(&self, arn: &str) -> BTreeSet<(String, i32)> {
        self.moto
            .describe_target_health(arn)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.id, t.port.unwrap_or_default()))
            .collect()
    }

    /// The app `web` in `ns`: its namespace (with the readiness-gate label when asked),
    /// a Service `web` (port 80 → targetPort 8080, `type`), a Deployment of `replicas`.
    fn web(&self, cluster: &str, ns: &str, gates: bool, service_type: &str, replicas: i64) {
        let labels = if gates {
            json!({ INJECT_LABEL: "enabled" })
        } else {
            json!({})
        };
        self.create(
            cluster,
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns, "labels": labels } }),
        );
        self.create(
            cluster,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "web", "namespace": ns },
                "spec": { "type": service_type, "selector": { "app": "web" },
                          "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }] },
            }),
        );
        self.deployment(cluster, ns, replicas);
    }

    fn deployment(&self, cluster: &str, ns: &str, replicas: i64) {
        self.create(
            cluster,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "web", "namespace": ns },
                "spec": {
                    "replicas": replicas,
                    "selector": { "matchLabels": { "app": "web" } },
                    "template": { "metadata": { "labels": { "app": "web" } },
                                  "spec": { "containers": [{ "name": "web", "image": "nginx:1.25" }] } },
                },
            }),
        );
    }

    fn scale(&self, cluster: &str, ns: &str, replicas: i64) {
        self.merge(
            cluster,
            ("apps", "v1", "deployments"),
            ns,
            "web",
            json!({ "spec": { "replicas": replicas } }),
        );
    }

    /// A TargetGroupBinding of Service `web` port 80.
    fn bind(&self, cluster: &str, ns: &str, name: &str, arn: &str, target_type: &str, multi: bool) {
        let mut spec = json!({
            "serviceRef": { "name": "web", "port": 80 },
            "targetGroupARN": arn,
            "targetType": target_type,
        });
        if multi {
            spec["multiClusterTargetGroup"] = json!(true);
        }
        self.create(
            cluster,
            json!({
                "apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding",
                "metadata": { "name": name, "namespace": ns },
                "spec": spec,
            }),
        );
    }

    /// The Ready pods' IPs at `port`.
    fn ready_ips(&self, cluster: &str, ns: &str, port: i32) -> BTreeSet<(String, i32)> {
        self.pods(cluster, ns)
            .iter()
            .filter(|p| ready(p))
            .filter_map(|p| p["status"]["podIP"].as_str())
            .map(|ip| (ip.to_string(), port))
            .collect()
    }

    /// The instance ids of the cluster's nodes at `port`.
    fn instances(&self, cluster: &str, port: i32) -> BTreeSet<(String, i32)> {
        self.list(cluster, "", "nodes", "")
            .iter()
            .filter_map(|n| n["spec"]["providerID"].as_str())
            .map(|p| (p.rsplit('/').next().unwrap().to_string(), port))
            .collect()
    }

    fn node_port(&self, cluster: &str, ns: &str) -> i32 {
        let svc = self.get(cluster, "", "services", ns, "web").unwrap();
        svc["spec"]["ports"][0]["nodePort"]
            .as_i64()
            .expect("a NodePort Service has its node port") as i32
    }
}

fn ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Polls `probe` until it returns Some, or panics with `what` and the last `show`.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the group's targets are exactly `want` (not empty), and checks they stay
/// so for a moment.
async fn targets_become(
    b: &Bed,
    arn: &str,
    what: &str,
    want: impl Fn() -> BTreeSet<(String, i32)>,
) {
    let seen = eventually(what, async || {
        let w = want();
        (!w.is_empty() && b.targets(arn).await == w).then_some(w)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        b.targets(arn).await,
        seen,
        "{what}: the targets did not stay"
    );
}

/// The Ready pods' IPs at 8080 once the app's `n` pods are all Ready; empty before.
fn when_ready(b: &Bed, cluster: &str, n: usize) -> BTreeSet<(String, i32)> {
    let pods = b.pods(cluster, "web");
    if pods.len() == n && pods.iter().all(ready) {
        b.ready_ips(cluster, "web", 8080)
    } else {
        BTreeSet::new()
    }
}

/// Waits until the controller has reconciled the binding (its observed generation).
async fn reconciled(b: &Bed, cluster: &str, name: &str) -> Value {
    eventually("the binding's status", async || {
        let tgb = b.binding(cluster, "web", name);
        (tgb["status"]["observedGeneration"] == tgb["metadata"]["generation"]).then_some(tgb)
    })
    .await
}

fn instance_of(b: &Bed, cluster: &str, node: &str) -> String {
    b.get(cluster, "", "nodes", "", node).unwrap()["spec"]["providerID"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_binding_registers_the_ready_pods_ips_at_the_target_port() {
    let b = Bed::start(2).await;
    let arn = b.target_group("ip").await;
    b.web("blue", "web", false, "ClusterIP", 3);
    b.bind("blue", "web", "web", &arn, "ip", false);
    targets_become(
        &b,
        &arn,
        "the three pods' IPs at 8080 (the targetPort, not 80)",
        || when_ready(&b, "blue", 3),
    )
    .await;

    let tgb = reconciled(&b, "blue", "web").await;
    assert!(
        tgb["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == TGB_FINALIZER),
        "{tgb}"
    );
    let checkpoint = tgb["metadata"]["annotations"][CHECKPOINT].as_str().unwrap();
    assert_eq!(
        checkpoint.split('/').map(str::len).collect::<Vec<_>>(),
        [64, 64]
    );
    assert!(
        b.events("blue", "web", "web")
            .iter()
            .any(|(t, r, m)| t == "Normal"
                && r == "SuccessfullyReconciled"
                && m == "Successfully reconciled"),
        "{:?}",
        b.events("blue", "web", "web")
    );
    // An unlabelled namespace: no readiness gates.
    assert!(
        b.pods("blue", "web")
            .iter()
            .all(|p| p["spec"]["readinessGates"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_down_deregisters_the_pods_that_leave_and_deleting_the_binding_all_of_them() {
    let b = Bed::start(2).await;
    let arn = b.target_group("ip").await;
    b.web("blue", "web", false, "ClusterIP", 3);
    b.bind("blue", "web", "web", &arn, "ip", false);
    targets_become(&b, &arn, "the three pods registered", || {
        when_ready(&b, "blue", 3)
    })
    .await;
    let before = b.targets(&arn).await;

    b.scale("blue", "web", 1);
    targets_become(&b, &arn, "only the remaining pod", || {
        when_ready(&b, "blue", 1)
    })
    .await;
    let after = b.targets(&arn).await;
    assert!(after.len() < before.len(), "{before:?} → {after:?}");

    // The finalizer holds the binding until its targets are out of the group.
    b.delete(
        "blue",
        ("elbv2.k8s.aws", "v1beta1", "targetgroupbindings"),
        "web",
        "web",
    );
    eventually("the binding gone and its group empty", async || {
        let gone = b
            .get("blue", "elbv2.k8s.aws", "targetgroupbindings", "web", "web")
            .is_none();
        (gone && b.targets(&arn).await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_binding_registers_the_nodes_instance_ids_at_the_node_port() {
    let b = Bed::start(3).await;
    let arn = b.target_group("instance").await;
    b.web("blue", "web", false, "NodePort", 1);
    let port = b.node_port("blue", "web");
    assert!((30000..=32767).contains(&port), "{port}");
    b.bind("blue", "web", "web", &arn, "instance", false);
    targets_become(&b, &arn, "every node's instance at the node port", || {
        b.instances("blue", port)
    })
    .await;

    // A node labelled out of external load balancers leaves the group.
    exclude(&b, "blue", "blue-node-0");
    let excluded = instance_of(&b, "blue", "blue-node-0");
    targets_become(&b, &arn, "the other nodes only", || {
        let mut all = b.instances("blue", port);
        all.remove(&(excluded.clone(), port));
        all
    })
    .await;
}

/// blue and green bound to one instance group, blue first. Their controllers' views of
/// the group last 300 ms (the real one's 5 minutes), so each sees the other's targets on
/// its next reconcile after that.
async fn two_clusters_on_one_group(multi: bool) -> (Bed, String, i32, i32) {
    let b = Bed::start_with(
        2,
        Delays {
            lbc_targets_cache: Duration::from_millis(300),
            ..Delays::default()
        },
    )
    .await;
    let arn = b.target_group("instance").await;
    b.web("blue", "web", false, "NodePort", 1);
    b.web("green", "web", false, "NodePort", 1);
    let (blue_port, green_port) = (b.node_port("blue", "web"), b.node_port("green", "web"));
    b.bind("blue", "web", "web", &arn, "instance", multi);
    targets_become(&b, &arn, "blue's nodes registered", || {
        b.instances("blue", blue_port)
    })
    .await;
    b.bind("green", "web", "web", &arn, "instance", multi);
    (b, arn, blue_port, green_port)
}

/// Labels a node out of external load balancers.
fn exclude(b: &Bed, cluster: &str, node: &str) {
    b.merge(
        cluster,
        ("", "v1", "nodes"),
        "",
        node,
        json!({ "metadata": { "labels": { "node.kubernetes.io/exclude-from-external-load-balancers": "true" } } }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_bound_to_one_group_without_multi_cluster_deregister_each_others_targets() {
    let (b, arn, blue_port, green_port) = two_clusters_on_one_group(false).await;
    // Green's controller, seeing blue's targets in the group it owns, removes them.
    targets_become(&b, &arn, "green's nodes only", || {
        b.instances("green", green_port)
    })
    .await;
    // Blue's, on its next reconcile (its endpoints change: a node leaves) with a fresh
    // view of the group, does the same to green.
    tokio::time::sleep(Duration::from_millis(400)).await;
    exclude(&b, "blue", "blue-node-1");
    let gone = instance_of(&b, "blue", "blue-node-1");
    targets_become(&b, &arn, "blue's remaining node only", || {
        let mut all = b.instances("blue", blue_port);
        all.remove(&(gone.clone(), blue_port));
        all
    })
    .await;
    assert!(
        b.list("blue", "", "configmaps", "web").is_empty(),
        "no tracking without multiClusterTargetGroup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_bound_to_one_group_with_multi_cluster_on_both_keep_each_others_targets() {
    let (b, arn, blue_port, green_port) = two_clusters_on_one_group(true).await;
    let both = || {
        let mut all = b.instances("blue", blue_port);
        all.extend(b.instances("green", green_port));
        all
    };
    targets_become(&b, &arn, "both clusters' nodes", both).await;
    // Blue looks again (a node leaves) with a fresh view of the group: green's targets
    // stay.
    tokio::time::sleep(Duration::from_millis(400)).await;
    exclude(&b, "blue", "blue-node-1");
    let blue_1 = instance_of(&b, "blue", "blue-node-1");
    targets_become(
        &b,
        &arn,
        "both clusters' nodes but the excluded one",
        || {
            let mut all = both();
            all.remove(&(blue_1.clone(), blue_port));
            all
        },
    )
    .await;
    // Each tracks what it registered in aws-lbc-targets-<binding>.
    for (cluster, port) in [("blue", blue_port), ("green", green_port)] {
        let cm = b
            .get(cluster, "", "configmaps", "web", "aws-lbc-targets-web")
            .unwrap_or_else(|| panic!("{cluster} tracks its targets"));
        let mut want: Vec<String> = b
            .instances(cluster, port)
            .into_iter()
            .filter(|(id, _)| cluster != "blue" || *id != blue_1)
            .map(|(id, p)| format!("{id}:{p}"))
            .collect();
        want.sort();
        assert_eq!(cm["data"]["targets"], want.join(","), "{cluster}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_gate_keeps_a_new_pod_unready_until_its_target_is_healthy() {
    let b = Bed::start(2).await;
    let arn = b.target_group("ip").await;
    // The binding (and its Service) first, then the pods: the webhook gates pods at
    // creation only.
    b.create(
        "blue",
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "web", "labels": { INJECT_LABEL: "enabled" } } }),
    );
    b.create(
        "blue",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "web", "namespace": "web" },
            "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 8080 }] },
        }),
    );
    b.bind("blue", "web", "web", &arn, "ip", false);
    b.deployment("blue", "web", 2);
    let gate = readiness_gate("web");
    assert_eq!(gate, "target-health.elbv2.k8s.aws/web");
    eventually("both pods Ready through their gates", async || {
        let pods = b.pods("blue", "web");
        (pods.len() == 2
            && pods
                .iter()
                .all(|p| ready(p) && condition(p, &gate).is_some_and(|c| c["status"] == "True")))
        .then_some(())
    })
    .await;
    for p in b.pods("blue", "web") {
        assert_eq!(
            p["spec"]["readinessGates"],
            json!([{ "conditionType": gate }])
        );
    }
    let old: BTreeSet<String> = b
        .pods("blue", "web")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    // The controller cannot read target health for now.
    b.bed.estate.aws_proxy.knobs().inject(
        AwsRule::rate(
            1.0,
            AwsFault::Error {
                status: 403,
                code: "AccessDenied".into(),
                message:
                    "User is not authorized to perform: elasticloadbalancing:DescribeTargetHealth"
                        .into(),
            },
        )
        .action("DescribeTargetHealth"),
    );
    b.scale("blue", "web", 3);
    let new = eventually(
        "the new pod running, registered, held by its gate",
        async || {
            let pods = b.pods("blue", "web");
            let p = pods
                .into_iter()
                .find(|p| !old.contains(p["metadata"]["name"].as_str().unwrap()))?;
            let ip = p["status"]["podIP"].as_str()?.to_string();
            let registered = b.targets(&arn).await.contains(&(ip, 8080));
            let gate_false = condition(&p, &gate).is_some_and(|c| c["status"] == "False");
            (registered && gate_false).then_some(p)
        },
    )
    .await;
    let others: Vec<Value> = b
        .pods("blue", "web")
        .into_iter()
        .filter(|p| old.contains(p["metadata"]["name"].as_str().unwrap()))
        .collect();
    assert!(
        others
            .iter()
            .all(|p| p["status"]["podIP"] != new["status"]["podIP"]),
        "precondition: the new pod has an address of its own"
    );
    let name = new["metadata"]["name"].as_str().unwrap().to_string();
    // Held for a while: its containers are ready, it is not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = b.get("blue", "", "pods", "web", &name).unwrap();
    assert_eq!(
        condition(&held, "ContainersReady").unwrap()["status"],
        "True"
    );
    let r = condition(&held, "Ready").unwrap();
    assert_eq!(r["status"], "False", "{held}");
    assert_eq!(r["reason"], "ReadinessGatesNotReady");
    assert_eq!(
        r["message"],
        format!("the status of pod readiness gate \"{gate}\" is not \"True\", but False")
    );
    let g = condition(&held, &gate).unwrap();
    assert_eq!(g["reason"], "Elb.RegistrationInProgress");
    assert_eq!(g["message"], "Target registration is in progress");
    assert!(
        b.events("blue", "web", "web")
            .iter()
            .any(|(t, r, m)| t == "Warning"
                && r == "FailedReconcile"
                && m.contains("DescribeTargetHealth")
                && m.contains("AccessDenied")),
        "{:?}",
        b.events("blue", "web", "web")
    );
    let deployment = b.get("blue", "apps", "deployments", "web", "web").unwrap();
    assert_eq!(deployment["status"]["readyReplicas"], 2);

    // Health readable again: the controller sees it healthy, the pod turns Ready.
    b.bed.estate.aws_proxy.knobs().clear_faults();
    eventually("the new pod Ready", async || {
        let p = b.get("blue", "", "pods", "web", &name)?;
        (ready(&p) && condition(&p, &gate).is_some_and(|c| c["status"] == "True")).then_some(())
    })
    .await;
    eventually("the Deployment's three ready replicas", async || {
        let d = b.get("blue", "apps", "deployments", "web", "web")?;
        (d["status"]["readyReplicas"] == 3).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_whose_target_group_is_gone_gets_a_warning_once_its_endpoints_change() {
    let b = Bed::start(2).await;
    let arn = b.target_group("ip").await;
    b.web("blue", "web", false, "ClusterIP", 1);
    b.bind("blue", "web", "web", &arn, "ip", false);
    targets_become(&b, &arn, "the pod registered", || when_ready(&b, "blue", 1)).await;
    reconciled(&b, "blue", "web").await;
    b.bed
        .estate
        .aws
        .delete_target_group(&baton_aws::DeleteTargetGroup {
            target_group_arn: arn.clone(),
        })
        .await
        .unwrap();
    let failed = |b: &Bed| {
        b.events("blue", "web", "web")
            .into_iter()
            .filter(|(t, r, _)| t == "Warning" && r == "FailedReconcile")
            .collect::<Vec<_>>()
    };
    // Nothing the binding reads changed: its checkpoint holds and no AWS call is made
    // (aws-load-balancer-controller issue 4235: noticed when a pod is replaced).
    b.merge(
        "blue",
        ("", "v1", "services"),
        "web",
        "web",
        json!({ "metadata": { "labels": { "touched": "yes" } } }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(failed(&b).is_empty(), "{:?}", failed(&b));

    b.scale("blue", "web", 2);
    let events = eventually("a FailedReconcile warning", async || {
        let f = failed(&b);
        (!f.is_empty()).then_some(f)
    })
    .await;
    let (_, _, message) = &events[0];
    assert!(
        message.starts_with("Failed reconcile due to operation error Elastic Load Balancing v2: ")
            && message.contains("https response error StatusCode: 400, RequestID: ")
            && message.contains(", TargetGroupNotFound: "),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_to_a_missing_service_gets_backend_not_found() {
    let b = Bed::start(1).await;
    let arn = b.target_group("ip").await;
    b.create(
        "blue",
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "web" } }),
    );
    b.bind("blue", "web", "web", &arn, "ip", false);
    eventually("a BackendNotFound warning", async || {
        b.events("blue", "web", "web")
            .into_iter()
            .find(|(t, r, m)| {
                t == "Warning"
                    && r == "BackendNotFound"
                    && m == "backend not found: services \"web\" not found"
            })
    })
    .await;
}
