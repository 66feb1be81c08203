//! Test bed with AWS: one moto server per test binary (kept on its own thread and runtime,
//! stopped when the binary exits), and per test an estate on it with nodes backed by
//! EC2 instances in a fresh VPC, so tests sharing moto never see each other's resources.

use std::sync::OnceLock;
use std::time::Duration;

use baton_sim::controllers::Delays;
use baton_sim::estate::{Estate, EstateOptions};
use baton_sim::{ClusterSpec, Kubeconfig};
use serde_json::json;

static MOTO: OnceLock<String> = OnceLock::new();

/// This binary's moto endpoint.
pub fn moto_endpoint() -> String {
    MOTO.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                match baton_sim::moto::Moto::start().await {
                    Ok(m) => {
                        tx.send(Ok(m.endpoint())).ok();
                        std::future::pending::<()>().await;
                    }
                    Err(e) => {
                        tx.send(Err(e.to_string())).ok();
                    }
                }
            });
        });
        rx.recv()
            .expect("moto thread answers")
            .unwrap_or_else(|e| panic!("{e}"))
    })
    .clone()
}

pub struct EstateBed {
    pub estate: Estate,
    pub dir: tempfile::TempDir,
    pub kubeconfig: std::path::PathBuf,
    pub vpc: String,
    pub subnets: Vec<(String, String)>,
}

impl EstateBed {
    /// blue and green, with `nodes` nodes per cluster spread over us-east-1a/b.
    pub async fn start(nodes: usize) -> Self {
        Self::start_with(
            nodes,
            Delays {
                fingerprint_every: Duration::from_millis(20),
                ..Delays::default()
            },
        )
        .await
    }

    /// As [`EstateBed::start`], with the controllers' modelled delays given.
    pub async fn start_with(nodes: usize, delays: Delays) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let opts = EstateOptions {
            clusters: vec![
                ClusterSpec::new("blue", "v1.27.16-eks-2f008fe"),
                ClusterSpec::new("green", "v1.31.4-eks-1f3c2b8"),
            ],
            aws_endpoint: Some(moto_endpoint()),
            delays,
            ..EstateOptions::default()
        };
        let estate = Estate::start(opts).await.expect("estate starts");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let kc: Kubeconfig = estate.server.kubeconfig();
        kc.write(&kubeconfig).unwrap();
        // A VPC of our own: 10.<random>.0.0/16.
        let second = rand_octet();
        let vpc = estate
            .aws
            .create_vpc(&format!("10.{second}.0.0/16"), &Default::default())
            .await
            .unwrap();
        let mut subnets = Vec::new();
        for (i, az) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
            let s = estate
                .aws
                .create_subnet(&baton_aws::NewSubnet {
                    vpc_id: vpc.clone(),
                    availability_zone: az.to_string(),
                    cidr: format!("10.{second}.{i}.0/24").parse().unwrap(),
                    tags: Default::default(),
                })
                .await
                .unwrap();
            subnets.push((az.to_string(), s.id));
        }
        let bed = Self {
            estate,
            dir,
            kubeconfig,
            vpc,
            subnets,
        };
        for cluster in ["blue", "green"] {
            for n in 0..nodes {
                bed.add_node(cluster, &format!("{cluster}-node-{n}"), n % 2)
                    .await;
            }
        }
        bed
    }

    /// Runs an instance in subnet `subnet` and registers it as a Ready node.
    pub async fn add_node(&self, cluster: &str, name: &str, subnet: usize) -> String {
        let (az, subnet_id) = &self.subnets[subnet];
        let tags = baton_aws::Tags::from([("eks:cluster-name".to_string(), cluster.to_string())]);
        let inst = self
            .estate
            .aws
            .run_instance(subnet_id, "m5.large", &tags)
            .await
            .unwrap();
        let c = &self.estate.server.cluster(cluster).unwrap().cluster;
        let nodes = c.def("", "v1", "nodes").unwrap();
        c.create(&nodes, "", json!({
            "metadata": { "name": name, "labels": { "topology.kubernetes.io/zone": az, "topology.ebs.csi.aws.com/zone": az, "kubernetes.io/hostname": name } },
            "spec": { "providerID": format!("aws:///{az}/{}", inst.id) },
        }), false)
        .unwrap();
        let body = serde_json::to_vec(&json!({ "status": { "conditions": [{ "type": "Ready", "status": "True" }], "addresses": [{ "type": "InternalIP", "address": inst.private_ip }] } })).unwrap();
        c.patch(
            &nodes,
            "",
            name,
            baton_sim::patch::PatchType::Merge,
            &body,
            baton_sim::ops::Part::Status,
            false,
        )
        .unwrap();
        inst.id
    }

    pub async fn client(&self, context: &str) -> kube::Client {
        baton_kube::KubeconfigSource::file(&self.kubeconfig)
            .client(context)
            .await
            .unwrap()
    }
}

fn rand_octet() -> u8 {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let pid = (std::process::id() % 50) as u8;
    pid.wrapping_mul(5)
        .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
        % 250
        + 1
}

impl EstateBed {
    /// A readable dump of a cluster's pods, claims, volumes, attachments and events, for
    /// failing tests.
    pub fn dump(&self, cluster: &str) -> String {
        let c = &self.estate.server.cluster(cluster).unwrap().cluster;
        let mut out = String::new();
        for (g, p) in [
            ("", "pods"),
            ("", "persistentvolumeclaims"),
            ("", "persistentvolumes"),
            ("storage.k8s.io", "volumeattachments"),
            ("", "events"),
        ] {
            let gr = baton_sim::resources::GroupResource {
                group: g.into(),
                plural: p.into(),
            };
            for o in c.store.txn(|t| t.list(&gr, None)) {
                let line = match p {
                    "events" => format!(
                        "{} {} {}",
                        o["involvedObject"]["name"], o["reason"], o["message"]
                    ),
                    _ => format!(
                        "{} phase={} status={}",
                        o["metadata"]["name"], o["status"]["phase"], o["status"]
                    ),
                };
                out.push_str(&format!("{p}: {line}\n"));
            }
        }
        out
    }
}
