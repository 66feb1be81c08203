//! IAM roles for service accounts, as the bed enforces them (issue 19): each test pins
//! one fact of EKS and STS. A pod whose ServiceAccount names a role gets its
//! credentials only if the role's account has an IAM OIDC provider for the pod's
//! cluster's issuer, the token's audience is one of the provider's client ids, and the
//! role's trust policy admits that provider, ServiceAccount and audience
//! (https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html).
//! Each EKS cluster has its own issuer, so a role trusting only blue is refused in
//! green. Estates are seeded from small scenarios on one moto per binary; names carry a
//! per-test id so tests sharing moto never see each other's clusters or roles.

mod common;

use std::time::Duration;

use baton_sim::controllers::Delays;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::scenario::{self, Scenario, Seeded};
use common::estate::moto_endpoint;
use serde_json::{Value, json};

const REFUSED: &str = "operation error STS: AssumeRoleWithWebIdentity, https response error StatusCode: 403, RequestID: ";
const NOT_AUTHORIZED: &str =
    "api error AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity";

/// One test's estate: blue (apps running) and green (apps stopped), one node each, the
/// app `orders/orders-api` (a Deployment running as ServiceAccount `orders-api`) and
/// the IRSA role `orders-ID` for that ServiceAccount.
struct Irsa {
    estate: Estate,
    seeded: Seeded,
    blue: String,
    green: String,
    role: String,
}

/// What the scenario declares: which clusters have an IAM OIDC provider, which the
/// role trusts.
struct Shape<'a> {
    blue_provider: bool,
    green_provider: bool,
    trusts: &'a [&'a str],
}

fn scenario_yaml(id: &str, octet: u8, shape: &Shape<'_>) -> String {
    let trusts: Vec<String> = shape.trusts.iter().map(|c| format!("{c}-{id}")).collect();
    format!(
        r#"
name: irsa-{id}
vpc:
  cidr: 10.{octet}.0.0/16
  subnets:
    - {{ name: blue-a, az: us-east-1a, cidr: 10.{octet}.0.0/24, cluster: blue-{id}, role: nodes }}
    - {{ name: green-a, az: us-east-1a, cidr: 10.{octet}.1.0/24, cluster: green-{id}, role: nodes }}
clusters:
  - name: blue-{id}
    version: v1.31.4-eks-1f3c2b8
    nodes: [{{ subnet: blue-a, count: 1, instance_type: m5.large }}]
    apps: running
    oidc_provider: {}
    ebs_csi: {{ role: {{ name: blue-ebs-{id}, policy: classic }} }}
  - name: green-{id}
    version: v1.31.4-eks-1f3c2b8
    nodes: [{{ subnet: green-a, count: 1, instance_type: m5.large }}]
    apps: stopped
    oidc_provider: {}
apps:
  - {{ apiVersion: v1, kind: Namespace, metadata: {{ name: orders }} }}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {{ name: orders-api, namespace: orders, labels: {{ app: orders-api }} }}
    spec:
      replicas: 1
      selector: {{ matchLabels: {{ app: orders-api }} }}
      template:
        metadata: {{ labels: {{ app: orders-api }} }}
        spec:
          serviceAccountName: orders-api
          containers: [{{ name: api, image: example/orders:1 }}]
irsa_roles:
  - name: orders-{id}
    trusts: [{}]
    service_accounts: [orders/orders-api]
"#,
        shape.blue_provider,
        shape.green_provider,
        trusts.join(", ")
    )
}

impl Irsa {
    async fn start(shape: Shape<'_>) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let octet = (u32::from_str_radix(&id[..4], 16).unwrap() % 250) as u8 + 1;
        let s = Scenario::parse("irsa", &scenario_yaml(&id, octet, &shape)).unwrap();
        let estate = Estate::start(EstateOptions {
            clusters: s.cluster_specs(),
            aws_endpoint: Some(moto_endpoint()),
            delays: Delays {
                restart_backoff: Duration::from_millis(100),
                ..Delays::default()
            },
            ..EstateOptions::default()
        })
        .await
        .expect("estate starts");
        let seeded = scenario::seed(&estate, &s, Duration::from_secs(30))
            .await
            .expect("scenario seeds");
        Self {
            estate,
            seeded,
            blue: format!("blue-{id}"),
            green: format!("green-{id}"),
            role: format!("orders-{id}"),
        }
    }

    fn cluster(&self, name: &str) -> &baton_sim::Cluster {
        &self.estate.server.cluster(name).unwrap().cluster
    }

    fn list(&self, cluster: &str, group: &str, plural: &str) -> Vec<Value> {
        common::stored(self.cluster(cluster), group, plural)
    }

    /// The app's pods in `cluster`.
    fn pods(&self, cluster: &str) -> Vec<Value> {
        self.list(cluster, "", "pods")
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "orders-api")
            .collect()
    }

    /// The messages of the `BackOff` Warnings on the app's pods in `cluster`.
    fn back_offs(&self, cluster: &str) -> Vec<String> {
        self.list(cluster, "", "events")
            .into_iter()
            .filter(|e| e["reason"] == "BackOff" && e["type"] == "Warning")
            .filter(|e| {
                e["involvedObject"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("orders-api"))
            })
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect()
    }

    /// Scales the app in `cluster` to one replica.
    fn start_app(&self, cluster: &str) {
        let c = self.cluster(cluster);
        let def = c.def("apps", "v1", "deployments").unwrap();
        c.patch(
            &def,
            "orders",
            "orders-api",
            baton_sim::patch::PatchType::Merge,
            &serde_json::to_vec(&json!({ "spec": { "replicas": 1 } })).unwrap(),
            baton_sim::ops::Part::Main,
            false,
        )
        .unwrap();
    }

    /// Waits until `f` holds of the cluster's app pods.
    async fn until(&self, cluster: &str, what: &str, f: impl Fn(&[Value]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !f(&self.pods(cluster)) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{cluster}: {what} not within 20 s; pods: {:#?}; back-offs: {:#?}",
                    self.pods(cluster),
                    self.back_offs(cluster)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first `BackOff` Warning of the app in `cluster`, once there is one.
    async fn refusal(&self, cluster: &str) -> String {
        self.until(cluster, "CrashLoopBackOff", |pods| {
            pods.iter().any(crash_looping)
        })
        .await;
        // The kubelet writes the pod's status, then the Warning.
        self.until(cluster, "a BackOff Warning", |_| {
            !self.back_offs(cluster).is_empty()
        })
        .await;
        self.back_offs(cluster)
            .into_iter()
            .next()
            .expect("a BackOff Warning with the crash loop")
    }
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn crash_looping(pod: &Value) -> bool {
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_has_its_own_issuer() {
    let bed = Irsa::start(Shape {
        blue_provider: true,
        green_provider: true,
        trusts: &["blue"],
    })
    .await;
    let aws = &bed.estate.aws;
    let blue = aws.describe_cluster(&bed.blue).await.unwrap();
    let green = aws.describe_cluster(&bed.green).await.unwrap();
    let (blue, green) = (blue.oidc_issuer.unwrap(), green.oidc_issuer.unwrap());
    assert_ne!(blue, green, "one issuer per cluster");
    for issuer in [&blue, &green] {
        let id = issuer
            .strip_prefix("https://oidc.eks.us-east-1.amazonaws.com/id/")
            .unwrap_or_else(|| panic!("an EKS issuer: {issuer}"));
        assert!(
            id.len() == 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "32 upper-case hex digits: {id}"
        );
    }
    // The providers seeding created are the issuers', as eksctl registers them.
    let provider = aws
        .oidc_provider(&bed.seeded.oidc_providers[&bed.green])
        .await
        .unwrap()
        .expect("green's provider exists");
    assert_eq!(provider.url, green.trim_start_matches("https://"));
    assert_eq!(provider.client_ids, ["sts.amazonaws.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_trusting_its_clusters_provider_lets_the_pod_start() {
    let bed = Irsa::start(Shape {
        blue_provider: true,
        green_provider: true,
        trusts: &["blue"],
    })
    .await;
    // Seeding waited for blue's app: its pod assumed the role.
    let pods = bed.pods(&bed.blue);
    assert!(pods.iter().all(ready) && !pods.is_empty(), "{pods:#?}");
    assert!(bed.back_offs(&bed.blue).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_trusting_only_blues_provider_is_refused_in_green() {
    let bed = Irsa::start(Shape {
        blue_provider: true,
        green_provider: true,
        trusts: &["blue"],
    })
    .await;
    bed.start_app(&bed.green);
    let message = bed.refusal(&bed.green).await;
    assert!(message.contains(REFUSED), "{message}");
    assert!(message.ends_with(NOT_AUTHORIZED), "{message}");
    let pod = bed.pods(&bed.green).remove(0);
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(!ready(&pod), "a pod without credentials is not Ready");
    // It keeps failing, restart after restart.
    bed.until(&bed.green, "a restart", |pods| {
        pods.iter().any(|p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        })
    })
    .await;
    assert!(bed.pods(&bed.green).iter().all(|p| !ready(p)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_oidc_provider_refuses_the_token() {
    let bed = Irsa::start(Shape {
        blue_provider: true,
        green_provider: false,
        trusts: &["blue", "green"],
    })
    .await;
    bed.start_app(&bed.green);
    let message = bed.refusal(&bed.green).await;
    let issuer = &bed.seeded.oidc_issuers[&bed.green];
    assert!(
        message.contains("https response error StatusCode: 400")
            && message.ends_with(&format!(
                "api error InvalidIdentityToken: No OpenIDConnect provider found in your account for {issuer}"
            )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_the_provider_does_not_list_is_refused() {
    let bed = Irsa::start(Shape {
        blue_provider: true,
        green_provider: true,
        trusts: &["blue", "green"],
    })
    .await;
    let c = bed.cluster(&bed.green);
    let def = c.def("", "v1", "serviceaccounts").unwrap();
    c.patch(
        &def,
        "orders",
        "orders-api",
        baton_sim::patch::PatchType::Merge,
        &serde_json::to_vec(&json!({ "metadata": { "annotations": {
            baton_sim::controllers::AUDIENCE_ANNOTATION: "orders.example.com" } } }))
        .unwrap(),
        baton_sim::ops::Part::Main,
        false,
    )
    .unwrap();
    bed.start_app(&bed.green);
    let message = bed.refusal(&bed.green).await;
    assert!(
        message.ends_with("api error InvalidIdentityToken: Incorrect token audience"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixing_the_trust_policy_lets_the_pod_start() {
    let bed = Irsa::start(Shape {
        blue_provider: true,
        green_provider: true,
        trusts: &["blue"],
    })
    .await;
    bed.start_app(&bed.green);
    bed.refusal(&bed.green).await;
    // The role now trusts green's provider too (a second statement, as for a second
    // cluster in the EKS guide).
    let aws = &bed.estate.aws;
    let mut trust: Value = serde_json::from_str(
        &aws.role_view(&bed.seeded.irsa_roles[&bed.role])
            .await
            .unwrap()
            .trust,
    )
    .unwrap();
    let issuer = bed.seeded.oidc_issuers[&bed.green].trim_start_matches("https://");
    trust["Statement"].as_array_mut().unwrap().push(json!({
        "Effect": "Allow",
        "Principal": { "Federated": bed.seeded.oidc_providers[&bed.green] },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": { "StringEquals": {
            format!("{issuer}:sub"): "system:serviceaccount:orders:orders-api",
            format!("{issuer}:aud"): "sts.amazonaws.com" } },
    }));
    aws.update_trust(&baton_aws::UpdateAssumeRolePolicy {
        role_name: baton_aws::role_name(&bed.role)
            .unwrap_or(&bed.role)
            .to_string(),
        policy_document: trust.to_string(),
    })
    .await
    .unwrap();
    bed.until(&bed.green, "Ready", |pods| {
        !pods.is_empty() && pods.iter().all(ready)
    })
    .await;
    let pod = bed.pods(&bed.green).remove(0);
    assert!(
        pod["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "it started on a restart: {pod:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_role_trusts_its_own_clusters_provider() {
    let bed = Irsa::start(Shape {
        blue_provider: true,
        green_provider: true,
        trusts: &["blue"],
    })
    .await;
    let role = bed
        .estate
        .aws
        .role_view(&bed.seeded.driver_roles[&bed.blue])
        .await
        .unwrap();
    let trust: Value = serde_json::from_str(&role.trust).unwrap();
    let issuer = bed.seeded.oidc_issuers[&bed.blue].trim_start_matches("https://");
    assert_eq!(
        trust["Statement"][0]["Principal"]["Federated"],
        bed.seeded.oidc_providers[&bed.blue]
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"][format!("{issuer}:sub")],
        json!(["system:serviceaccount:kube-system:ebs-csi-controller-sa"])
    );
}
