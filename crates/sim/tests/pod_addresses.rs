//! Pods' addresses as the Amazon VPC CNI gives them on EKS, each test one fact: a pod's
//! address is a secondary private address of an ENI attached to its node's EC2
//! instance, from the node's own subnet when the cluster has no ENIConfig, or from the
//! subnet of the ENIConfig named after the node's zone (custom networking); a stopped
//! pod's address goes back to its node's pool for the next pod; no two pods, and no two
//! ENIs, ever hold the same address
//! (<https://docs.aws.amazon.com/eks/latest/userguide/cni-custom-network.html>). Estates
//! are seeded from small scenarios on one moto per binary, each in a VPC of its own;
//! names carry a per-test id.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use baton_aws::{Filter, NetworkInterface, Subnet};
use baton_sim::controllers::Delays;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::scenario::{self, Scenario, Seeded};
use common::estate::moto_endpoint;
use serde_json::{Value, json};

/// One test's estate.
struct Bed {
    estate: Estate,
    seeded: Seeded,
    id: String,
}

/// Nodes in one subnet: (subnet name, count, instance type).
type NodeGroup<'a> = (&'a str, usize, &'a str);

/// What a test's scenario declares.
struct Shape<'a> {
    /// Per cluster (named `NAME-ID`): its node groups.
    clusters: &'a [(&'a str, &'a [NodeGroup<'a>])],
    /// The zones (`a`, `b`) with a pod subnet, and so an ENIConfig, for the first cluster.
    pod_zones: &'a [&'a str],
    /// Replicas of the Deployment `app/web` in every cluster.
    replicas: usize,
}

fn scenario_yaml(id: &str, octet: u8, shape: &Shape<'_>) -> String {
    let first = shape.clusters[0].0;
    let cgnat = 64 + octet % 64;
    let mut subnets = vec![
        format!(
            "{{ name: nodes-a, az: us-east-1a, cidr: 10.{octet}.0.0/24, cluster: {first}-{id}, role: nodes }}"
        ),
        format!(
            "{{ name: nodes-b, az: us-east-1b, cidr: 10.{octet}.1.0/24, cluster: {first}-{id}, role: nodes }}"
        ),
    ];
    let mut extra = String::new();
    if !shape.pod_zones.is_empty() {
        extra = format!("  extra_cidrs: [100.{cgnat}.0.0/16]\n");
    }
    for zone in shape.pod_zones {
        let third = if *zone == "a" { 0 } else { 16 };
        subnets.push(format!("{{ name: pods-{zone}, az: us-east-1{zone}, cidr: 100.{cgnat}.{third}.0/20, cluster: {first}-{id}, role: pods }}"));
    }
    let clusters: Vec<String> = shape
        .clusters
        .iter()
        .map(|(name, groups)| {
            let nodes: Vec<String> = groups
                .iter()
                .map(|(subnet, count, kind)| {
                    format!("{{ subnet: {subnet}, count: {count}, instance_type: {kind} }}")
                })
                .collect();
            format!(
                "  - name: {name}-{id}\n    version: v1.31.4-eks-1f3c2b8\n    nodes: [{}]\n    apps: running\n",
                nodes.join(", ")
            )
        })
        .collect();
    format!(
        r#"
name: pods-{id}
vpc:
  cidr: 10.{octet}.0.0/16
{extra}  subnets:
    - {}
clusters:
{}
platform:
  - apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {{ name: eniconfigs.crd.k8s.amazonaws.com }}
    spec:
      group: crd.k8s.amazonaws.com
      scope: Cluster
      names: {{ kind: ENIConfig, listKind: ENIConfigList, plural: eniconfigs, singular: eniconfig }}
      versions:
        - name: v1alpha1
          served: true
          storage: true
          schema: {{ openAPIV3Schema: {{ type: object, x-kubernetes-preserve-unknown-fields: true }} }}
apps:
  - {{ apiVersion: v1, kind: Namespace, metadata: {{ name: app }} }}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {{ name: web, namespace: app, labels: {{ app: web }} }}
    spec:
      replicas: {}
      selector: {{ matchLabels: {{ app: web }} }}
      template:
        metadata: {{ labels: {{ app: web }} }}
        spec: {{ containers: [{{ name: web, image: "nginx:1.25" }}] }}
"#,
        subnets.join("\n    - "),
        clusters.join(""),
        shape.replicas,
    )
}

impl Bed {
    async fn start(shape: Shape<'_>) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let octet = (u32::from_str_radix(&id[..4], 16).unwrap() % 250) as u8 + 1;
        let s = Scenario::parse("pods", &scenario_yaml(&id, octet, &shape)).unwrap();
        let estate = Estate::start(EstateOptions {
            clusters: s.cluster_specs(),
            aws_endpoint: Some(moto_endpoint()),
            delays: Delays::default(),
            ..EstateOptions::default()
        })
        .await
        .expect("estate starts");
        let seeded = scenario::seed(&estate, &s, Duration::from_secs(60))
            .await
            .expect("scenario seeds");
        Self { estate, seeded, id }
    }

    fn cluster(&self, name: &str) -> &baton_sim::Cluster {
        &self
            .estate
            .server
            .cluster(&format!("{name}-{}", self.id))
            .unwrap()
            .cluster
    }

    fn list(&self, cluster: &str, plural: &str, group: &str) -> Vec<Value> {
        common::stored(self.cluster(cluster), group, plural)
    }

    /// The pods of namespace `app` in `cluster`.
    fn pods(&self, cluster: &str) -> Vec<Value> {
        self.list(cluster, "pods", "")
            .into_iter()
            .filter(|p| p["metadata"]["namespace"] == "app")
            .collect()
    }

    /// Waits until `f` holds of the cluster's pods.
    async fn until(&self, cluster: &str, what: &str, f: impl Fn(&[Value]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !f(&self.pods(cluster)) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{cluster}: {what} not within 30 s; pods: {:#?}",
                    self.pods(cluster)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates the bare pod `app/NAME` in `cluster`.
    fn create_pod(&self, cluster: &str, name: &str) {
        self.create_pod_in(cluster, name, None);
    }

    /// Creates the bare pod `app/NAME` in `cluster`, in zone `us-east-1ZONE` if given.
    fn create_pod_in(&self, cluster: &str, name: &str, zone: Option<&str>) {
        let c = self.cluster(cluster);
        let def = c.def("", "v1", "pods").unwrap();
        let mut pod = json!({ "metadata": { "name": name, "namespace": "app" },
                              "spec": { "containers": [{ "name": "c", "image": "busybox:1.36" }] } });
        if let Some(z) = zone {
            pod["spec"]["nodeSelector"] =
                json!({ "topology.kubernetes.io/zone": format!("us-east-1{z}") });
        }
        c.create(&def, "app", pod, false).unwrap();
    }

    /// Waits for a `FailedCreatePodSandBox` Warning on pod `app/NAME`: its node gave it
    /// no address.
    async fn no_address(&self, cluster: &str, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.list(cluster, "events", "");
            if events.iter().any(|e| {
                e["involvedObject"]["name"] == name
                    && e["reason"] == "FailedCreatePodSandBox"
                    && e["type"] == "Warning"
                    && e["message"]
                        .as_str()
                        .unwrap()
                        .ends_with("failed to assign an IP address to container")
            }) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no FailedCreatePodSandBox for {name}: {:#?}",
                self.pods(cluster)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn delete_pod(&self, cluster: &str, name: &str) {
        let c = self.cluster(cluster);
        let def = c.def("", "v1", "pods").unwrap();
        c.delete(&def, "app", name, &Default::default()).unwrap();
    }

    /// The EC2 instance of a node (its `spec.providerID`).
    fn instance(&self, cluster: &str, node: &str) -> String {
        let nodes = self.list(cluster, "nodes", "");
        let n = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == node)
            .unwrap_or_else(|| panic!("node {node}"));
        n["spec"]["providerID"]
            .as_str()
            .and_then(|p| p.rsplit('/').next())
            .unwrap()
            .to_string()
    }

    async fn subnet(&self, id: &str) -> Subnet {
        self.estate
            .aws
            .describe_subnets(&[Filter::new("subnet-id", [id])])
            .await
            .unwrap()
            .remove(0)
    }

    /// The subnet of a node's instance.
    async fn node_subnet(&self, cluster: &str, node: &str) -> Subnet {
        let instance = self.instance(cluster, node);
        let found = self
            .estate
            .aws
            .describe_instances(&[Filter::new("instance-id", [&instance])])
            .await
            .unwrap();
        self.subnet(found[0].subnet_id.as_deref().unwrap()).await
    }

    /// The ENIs attached to a node's instance.
    async fn enis(&self, cluster: &str, node: &str) -> Vec<NetworkInterface> {
        let instance = self.instance(cluster, node);
        self.estate
            .aws
            .describe_network_interfaces(&[Filter::new("attachment.instance-id", [&instance])])
            .await
            .unwrap()
    }

    /// Every ENI of the test's VPC.
    async fn vpc_enis(&self) -> Vec<NetworkInterface> {
        self.estate
            .aws
            .describe_network_interfaces(&[Filter::new("vpc-id", [&self.seeded.vpc_id])])
            .await
            .unwrap()
    }
}

fn ip(pod: &Value) -> Ipv4Addr {
    pod["status"]["podIP"]
        .as_str()
        .unwrap_or_else(|| panic!("pod {} has no address", pod["metadata"]["name"]))
        .parse()
        .unwrap()
}

fn node(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap()
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["status"]["podIP"].is_string()
}

/// The ENIs holding `addr` as a secondary address.
fn holding(enis: &[NetworkInterface], addr: Ipv4Addr) -> Vec<&NetworkInterface> {
    enis.iter()
        .filter(|e| e.secondary_ips.iter().any(|s| *s == addr.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_address_lies_in_its_nodes_subnet_when_the_cluster_has_no_eniconfig() {
    let bed = Bed::start(Shape {
        clusters: &[(
            "c",
            &[("nodes-a", 1, "m5.large"), ("nodes-b", 1, "m5.large")],
        )],
        pod_zones: &[],
        replicas: 4,
    })
    .await;
    assert!(
        bed.list("c", "eniconfigs", "crd.k8s.amazonaws.com")
            .is_empty()
    );
    let pods = bed.pods("c");
    assert_eq!(pods.len(), 4);
    let node_ips: HashSet<String> = bed
        .list("c", "nodes", "")
        .iter()
        .flat_map(|n| n["status"]["addresses"].as_array().unwrap().clone())
        .filter_map(|a| a["address"].as_str().map(String::from))
        .collect();
    for pod in &pods {
        let subnet = bed.node_subnet("c", node(pod)).await;
        assert!(
            subnet.cidr.contains(&ip(pod)),
            "pod {} on {} has {}, outside its node's subnet {}",
            pod["metadata"]["name"],
            node(pod),
            ip(pod),
            subnet.cidr
        );
        assert!(
            !node_ips.contains(&ip(pod).to_string()),
            "a pod (not host-network) has an address of its own"
        );
        // The address is the ENI's secondary one, on an ENI in the node's subnet.
        let enis = bed.enis("c", node(pod)).await;
        let on = holding(&enis, ip(pod));
        assert_eq!(on.len(), 1, "{} on {enis:#?}", ip(pod));
        assert_eq!(on[0].subnet_id, subnet.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_address_lies_in_its_zones_eniconfig_subnet_when_the_cluster_has_one() {
    let bed = Bed::start(Shape {
        clusters: &[(
            "c",
            &[("nodes-a", 1, "m5.large"), ("nodes-b", 1, "m5.large")],
        )],
        pod_zones: &["a", "b"],
        replicas: 4,
    })
    .await;
    let configs: BTreeMap<String, Value> = bed
        .list("c", "eniconfigs", "crd.k8s.amazonaws.com")
        .into_iter()
        .map(|e| (e["metadata"]["name"].as_str().unwrap().to_string(), e))
        .collect();
    assert_eq!(
        configs.keys().collect::<Vec<_>>(),
        ["us-east-1a", "us-east-1b"]
    );
    let nodes = bed.list("c", "nodes", "");
    let pods = bed.pods("c");
    assert_eq!(pods.len(), 4);
    for pod in &pods {
        let n = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == node(pod))
            .unwrap();
        let zone = n["metadata"]["labels"]["topology.kubernetes.io/zone"]
            .as_str()
            .unwrap();
        let config = &configs[zone]["spec"];
        let pods_subnet = bed.subnet(config["subnet"].as_str().unwrap()).await;
        assert!(
            pods_subnet.cidr.contains(&ip(pod)),
            "pod {} in {zone} has {}, outside ENIConfig {zone}'s subnet {}",
            pod["metadata"]["name"],
            ip(pod),
            pods_subnet.cidr
        );
        let node_subnet = bed.node_subnet("c", node(pod)).await;
        assert!(!node_subnet.cidr.contains(&ip(pod)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_network_interfaces_shows_the_eni_attached_to_the_nodes_instance_holding_the_pods_address()
 {
    let bed = Bed::start(Shape {
        clusters: &[(
            "c",
            &[("nodes-a", 1, "m5.large"), ("nodes-b", 1, "m5.large")],
        )],
        pod_zones: &["a", "b"],
        replicas: 3,
    })
    .await;
    let configs = bed.list("c", "eniconfigs", "crd.k8s.amazonaws.com");
    for pod in bed.pods("c") {
        let instance = bed.instance("c", node(&pod));
        let enis = bed.enis("c", node(&pod)).await;
        let on = holding(&enis, ip(&pod));
        assert_eq!(
            on.len(),
            1,
            "one ENI of {instance} holds {}: {enis:#?}",
            ip(&pod)
        );
        let eni = on[0];
        let attachment = eni.attachment.as_ref().expect("attached");
        assert_eq!(attachment.instance_id, instance);
        assert!(
            attachment.device_index >= 1,
            "under custom networking the primary ENI serves no pod"
        );
        // Made in the ENIConfig's subnet with its security groups, as ipamd makes them.
        let config = configs
            .iter()
            .find(|c| c["spec"]["subnet"] == eni.subnet_id.as_str())
            .unwrap_or_else(|| panic!("no ENIConfig names {}", eni.subnet_id));
        let groups: Vec<&str> = config["spec"]["securityGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert_eq!(eni.security_groups, groups);
        assert_eq!(eni.description, format!("aws-K8S-{instance}"));
        assert_eq!(eni.tags["node.k8s.amazonaws.com/instance_id"], instance);
        // The same ENI, found by the address.
        let by_address = bed
            .estate
            .aws
            .describe_network_interfaces(&[
                Filter::new("vpc-id", [&bed.seeded.vpc_id]),
                Filter::new("subnet-id", [&eni.subnet_id]),
            ])
            .await
            .unwrap();
        assert_eq!(
            holding(&by_address, ip(&pod))
                .iter()
                .map(|e| &e.id)
                .collect::<Vec<_>>(),
            [&eni.id]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pods_address_is_released_for_the_next_pod() {
    // A t3.micro holds 2 ENIs of 2 addresses: without custom networking, one secondary
    // address on each ENI, so two pods.
    let bed = Bed::start(Shape {
        clusters: &[("c", &[("nodes-a", 1, "t3.micro")])],
        pod_zones: &[],
        replicas: 0,
    })
    .await;
    bed.create_pod("c", "a");
    bed.create_pod("c", "b");
    bed.until("c", "a and b running", |pods| {
        pods.len() == 2 && pods.iter().all(running)
    })
    .await;
    let pods = bed.pods("c");
    let a = ip(pods.iter().find(|p| p["metadata"]["name"] == "a").unwrap());
    let b = ip(pods.iter().find(|p| p["metadata"]["name"] == "b").unwrap());
    assert_ne!(a, b);
    // The node's addresses are all in use: the third pod waits for one.
    bed.create_pod("c", "c");
    bed.no_address("c", "c").await;
    let c = bed
        .pods("c")
        .into_iter()
        .find(|p| p["metadata"]["name"] == "c")
        .unwrap();
    assert_eq!(c["status"]["phase"], "Pending");
    assert_eq!(
        c["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    assert!(c["status"]["podIP"].is_null());
    // a stops: its address goes to c.
    bed.delete_pod("c", "a");
    bed.until("c", "c running", |pods| {
        pods.iter()
            .any(|p| p["metadata"]["name"] == "c" && running(p))
    })
    .await;
    let c = bed
        .pods("c")
        .into_iter()
        .find(|p| p["metadata"]["name"] == "c")
        .unwrap();
    assert_eq!(ip(&c), a, "c has the address a gave back");
    assert!(bed.pods("c").iter().all(|p| p["metadata"]["name"] != "a"));
    // EC2 still shows it on the node's ENI: the pool keeps its addresses.
    let enis = bed.enis("c", node(&c)).await;
    assert_eq!(holding(&enis, a).len(), 1);
    assert_eq!(enis.len(), 2, "a t3.micro's two ENIs, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_never_share_an_address() {
    // Two clusters' nodes in one subnet, filling their pools at once, and more pods
    // than one ENI holds on each node.
    let bed = Bed::start(Shape {
        clusters: &[
            ("blue", &[("nodes-a", 2, "m5.large")]),
            ("green", &[("nodes-a", 2, "m5.large")]),
        ],
        pod_zones: &[],
        replicas: 24,
    })
    .await;
    let mut seen: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for cluster in ["blue", "green"] {
        let pods = bed.pods(cluster);
        assert_eq!(pods.len(), 24);
        for pod in &pods {
            let who = format!("{cluster}/{}", pod["metadata"]["name"].as_str().unwrap());
            if let Some(other) = seen.insert(ip(pod), who.clone()) {
                panic!("{who} and {other} share {}", ip(pod));
            }
        }
    }
    // Nor do ENIs: every address of the VPC is on one ENI once, inside its subnet and
    // none of AWS's reserved ones.
    let enis = bed.vpc_enis().await;
    let mut addresses: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    for eni in &enis {
        let subnet = bed.subnet(&eni.subnet_id).await;
        let net = u32::from(subnet.cidr.network());
        let broadcast = u32::from(subnet.cidr.broadcast());
        for a in std::iter::once(&eni.private_ip).chain(&eni.secondary_ips) {
            let a: Ipv4Addr = a.parse().unwrap();
            if let Some(other) = addresses.insert(a, &eni.id) {
                panic!("{a} is on {} and {other}", eni.id);
            }
            assert!(subnet.cidr.contains(&a), "{a} outside {}", subnet.cidr);
            assert!(
                u32::from(a) >= net + 4 && u32::from(a) < broadcast,
                "{a} is reserved in {}",
                subnet.cidr
            );
        }
    }
    for a in seen.keys() {
        assert!(addresses.contains_key(a), "{a} is on no ENI");
    }
    // The subnet's free addresses count every one of them.
    let subnet = bed.subnet(&bed.seeded.subnets["nodes-a"]).await;
    let used = addresses
        .keys()
        .filter(|a| subnet.cidr.contains(*a))
        .count();
    assert_eq!(subnet.available_ips as usize, 256 - 5 - used);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_custom_networking_a_zone_without_an_eniconfig_gives_no_address_until_one_exists() {
    // ENIConfigs (custom networking) for us-east-1a only.
    let bed = Bed::start(Shape {
        clusters: &[(
            "c",
            &[("nodes-a", 1, "m5.large"), ("nodes-b", 1, "m5.large")],
        )],
        pod_zones: &["a"],
        replicas: 0,
    })
    .await;
    bed.create_pod_in("c", "in-b", Some("b"));
    bed.no_address("c", "in-b").await;
    let pod = bed.pods("c").remove(0);
    assert!(pod["status"]["podIP"].is_null(), "{pod:#?}");
    // Nor did the node fall back to its own subnet: only its primary ENI is attached.
    assert_eq!(bed.enis("c", node(&pod)).await.len(), 1);

    // us-east-1b's pod subnet and ENIConfig come: the node's pool is filled from it.
    let pods_a = bed.subnet(&bed.seeded.subnets["pods-a"]).await;
    let octets = pods_a.cidr.network().octets();
    let pods_b = bed
        .estate
        .aws
        .create_subnet(&baton_aws::NewSubnet {
            vpc_id: bed.seeded.vpc_id.clone(),
            availability_zone: "us-east-1b".into(),
            cidr: format!("{}.{}.16.0/20", octets[0], octets[1])
                .parse()
                .unwrap(),
            tags: Default::default(),
        })
        .await
        .unwrap();
    let c = bed.cluster("c");
    let def = c
        .def("crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs")
        .unwrap();
    c.create(
        &def,
        "",
        json!({ "apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
                "metadata": { "name": "us-east-1b" }, "spec": { "subnet": pods_b.id } }),
        false,
    )
    .unwrap();
    bed.until("c", "in-b running", |pods| pods.iter().all(running))
        .await;
    let pod = bed.pods("c").remove(0);
    assert!(
        pods_b.cidr.contains(&ip(&pod)),
        "{} outside {}",
        ip(&pod),
        pods_b.cidr
    );
}
