//! `baton preflight` end to end on the default scenario: every check is first seen to
//! pass (absent) on the seeded estate, then tripped by one change each and seen to
//! fail or warn (and `baton plan` to block on the planner's share of them); the
//! security-group finding's own fix makes it pass; a read that fails gives exit 3; a
//! green older than blue (an estate of its own) fails; bad input is refused clearly.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Sim, sim_up, sim_up_with};
use serde_json::{Value, json};

fn preflight(sim: &Sim, extra: &[&str]) -> (i32, Value) {
    json_of(sim, "preflight", extra)
}

/// `baton COMMAND --from blue --to green -o json EXTRA…`: its exit code and its JSON.
fn json_of(sim: &Sim, command: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![command, "--from", "blue", "--to", "green", "-o", "json"];
    args.extend_from_slice(extra);
    let o = sim.baton(&args);
    let out: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} {extra:?}: {e}\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap(), out)
}

fn checks(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect()
}

fn findings<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

/// Every check that the trips below set off.
const TRIPPED: &[(&str, &str)] = &[
    ("removed-api", "fail"),
    ("addon-not-ready", "fail"),
    ("ebs-csi-missing", "fail"),
    ("class-missing-in-green", "warn"),
    ("class-provisioner", "warn"),
    ("retention-delete", "warn"),
    ("scaler", "warn"),
    ("pdb-blocks", "warn"),
    ("managed-by", "warn"),
    ("zone-without-nodes", "fail"),
    ("vpc", "fail"),
    ("kubelet-skew", "fail"),
    ("kubelet-skew", "warn"),
    ("multi-attach", "fail"),
    ("different-vpc", "fail"),
    ("different-region", "fail"),
];

/// The planner's checks among [`TRIPPED`] that block `baton plan` as well.
const PLAN_BLOCKS: &[&str] = &["multi-attach", "different-vpc", "different-region"];

#[test]
fn every_check_passes_on_the_seeded_estate_and_trips_on_its_problem() {
    let sim = sim_up();
    let facts: Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    let vpc = facts["vpc_id"].as_str().unwrap().to_string();

    // The seeded estate: the database's group (admits blue alone) and orders-db's KMS
    // key (admits blue's driver alone) fail, blue's Delete PVs warn, and so do the
    // volumes baton re-tags in the window.
    let (code, base) = preflight(&sim, &["--vpc", &vpc]);
    assert_eq!(code, 2, "{base:#}");
    assert_eq!(base["outcome"], "failures");
    let seen = checks(&base);
    assert!(
        seen.contains("sg-blue-only")
            && seen.contains("volume-key-green-cannot-use")
            && seen.contains("retag")
            && seen.contains("reclaim-delete"),
        "{seen:?}"
    );
    for (check, _) in TRIPPED {
        assert!(
            !seen.contains(*check),
            "{check} found on the seeded estate: {base:#}"
        );
    }
    assert!(base["unchecked"].as_array().unwrap().is_empty());
    // Blue 1.27 → green 1.31 is an upgrade: version-skew says so, and nothing more.
    let skew = findings(&base, "version-skew");
    assert!(
        !skew.is_empty() && skew.iter().all(|f| f["severity"] == "info"),
        "{skew:#?}"
    );

    // The security-group finding's fix, run as printed, makes it pass (with --yes: a
    // test has no terminal to answer its question on).
    let sg = findings(&base, "sg-blue-only");
    assert_eq!(sg.len(), 1, "{base:#}");
    assert!(sg[0]["object"].as_str().unwrap().contains("orders-db"));
    let fix = sg[0]["fix"].as_str().unwrap();
    let mut argv: Vec<&str> = fix.split_whitespace().skip(1).collect();
    argv.push("--yes");
    sim.ok(&argv);
    // The key's fix too: `baton volumes grant`, before the move.
    let key = findings(&base, "volume-key-green-cannot-use");
    assert_eq!(key.len(), 1, "{base:#}");
    assert!(
        key[0]["object"]
            .as_str()
            .unwrap()
            .starts_with("KMS key arn:aws:kms:")
    );
    let fix = key[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("`baton volumes grant --from blue --to green`"),
        "{fix}"
    );
    sim.grant_keys();
    sim.trust_green();
    // Blue's storefront binding has no green counterpart until traffic bindings makes it.
    let (_, unbound) = preflight(&sim, &[]);
    assert!(
        checks(&unbound).contains("target-group-binding-missing"),
        "{unbound:#}"
    );
    sim.ok(&[
        "traffic", "bindings", "--from", "blue", "--to", "green", "--apply", "--yes",
    ]);
    let (code, after) = preflight(&sim, &[]);
    assert!(!checks(&after).contains("sg-blue-only"), "{after:#}");
    assert_eq!(code, 1, "only warnings are left: {after:#}");

    // Trips.
    // A Deployment last applied as apps/v1beta2 (removed in 1.16). kubectl create would
    // rewrite the annotation, so it is patched in afterwards, as an old apply left it.
    sim.kubectl_create("blue",
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "legacy", "namespace": "web" },
            "spec": { "replicas": 0, "selector": { "matchLabels": { "app": "legacy" } },
                      "template": { "metadata": { "labels": { "app": "legacy" } },
                                    "spec": { "containers": [{ "name": "c", "image": "nginx" }] } } }
        }),
    );
    let applied = json!({ "apiVersion": "apps/v1beta2", "kind": "Deployment",
                          "metadata": { "name": "legacy", "namespace": "web" } });
    let annotation = json!({ "metadata": { "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": applied.to_string() } } });
    patch(
        &sim,
        "blue",
        &[
            "-n",
            "web",
            "deployment",
            "legacy",
            "--type=merge",
            "-p",
            &annotation.to_string(),
        ],
    );
    // A Helm v3 release whose manifest has a policy/v1beta1 PodDisruptionBudget (1.25),
    // stored as Helm stores it: base64(gzip(JSON)), base64'd again as Secret data.
    let release = json!({
        "name": "shop", "namespace": "web", "version": 2, "info": { "status": "deployed" },
        "manifest": "---\n# Source: shop/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: shop\nspec:\n  minAvailable: 1\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: shop\n"
    });
    let helm = baton_kube::helm::encode_release(&release);
    sim.kubectl_create("blue",
        &json!({
            "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
            "metadata": { "name": "sh.helm.release.v1.shop.v2", "namespace": "web",
                          "labels": { "owner": "helm", "name": "shop", "status": "deployed", "version": "2" } },
            "data": { "release": base64::engine::general_purpose::STANDARD.encode(helm) }
        }),
    );
    // Local manifests: one removed Ingress version, one current.
    let dir = sim.dir.path().join("manifests/nested");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("old-ingress.yaml"), "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: web\n").unwrap();
    std::fs::write(
        dir.join("ingress.yml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web2\n",
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "not a manifest").unwrap();
    // An add-on in green that cannot become ready (no node matches it).
    sim.kubectl_create("green",
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "metrics-server", "namespace": "kube-system" },
            "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "metrics-server" } },
                      "template": { "metadata": { "labels": { "app": "metrics-server" } },
                                    "spec": { "nodeSelector": { "no-such": "node" },
                                              "containers": [{ "name": "m", "image": "metrics-server" }] } } }
        }),
    );
    // No EBS CSI driver object in green.
    sim.kubectl_delete("green", &["csidriver", "ebs.csi.aws.com"]);
    // gp2 (session-cache's class) missing in green.
    sim.kubectl_delete("green", &["storageclass", "gp2"]);
    // A class of the same name, another provisioner, used by a claim in blue.
    for (ctx, prov) in [("blue", "example.com/fast"), ("green", "example.com/other")] {
        sim.kubectl_create(
            ctx,
            &json!({ "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": { "name": "fast" }, "provisioner": prov }),
        );
    }
    sim.kubectl_create(
        "blue",
        &json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": "scratch", "namespace": "web" },
        "spec": { "storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
                  "resources": { "requests": { "storage": "1Gi" } } } }),
    );
    // session-cache deletes its claims when scaled down.
    patch(
        &sim,
        "blue",
        &[
            "-n",
            "cache",
            "sts",
            "session-cache",
            "--type=merge",
            "-p",
            r#"{"spec":{"persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete"}}}"#,
        ],
    );
    // An HPA that can scale events-broker back up from 0: minReplicas 0, as a cluster
    // with the alpha HPAScaleToZero gate allows (with a minimum, an HPA leaves a target
    // at 0 alone, and nothing is reported).
    sim.kubectl_create("blue",
        &json!({ "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "events-broker", "namespace": "streaming" },
        "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "events-broker" },
                  "minReplicas": 0, "maxReplicas": 6 } }),
    );
    // A budget that allows no eviction of orders-db's one pod.
    sim.kubectl_create(
        "blue",
        &json!({ "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": { "name": "orders-db", "namespace": "orders" },
        "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "orders-db" } } } }),
    );
    // Argo CD tracks events-broker (self-heal would scale it back up).
    patch(
        &sim,
        "blue",
        &[
            "-n",
            "streaming",
            "sts",
            "events-broker",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"argocd.argoproj.io/instance":"streaming"}}}"#,
        ],
    );
    // Green's node groups drift from its control plane (1.31): one node's kubelet is
    // newer, another's four minors older.
    let green_nodes = sim.kubectl_json("green", &["get", "nodes"]);
    let in_zone = |zone: &str| {
        green_nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone)
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (newer, older) = (in_zone("us-east-1a"), in_zone("us-east-1b"));
    for (node, version) in [
        (&newer, "v1.32.1-eks-5e0fdde"),
        (&older, "v1.27.16-eks-2f008fe"),
    ] {
        let status = json!({ "status": { "nodeInfo": { "kubeletVersion": version } } });
        patch(
            &sim,
            "green",
            &[
                "node",
                node,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
        );
    }
    // A blue app on an io2 volume with EBS Multi-Attach enabled.
    let shared = multi_attach_app(&sim);
    // A green node that runs in another VPC (an instance there, named by its providerID)…
    let (other_vpc, instance) = sim.ec2(async |aws| {
        let vpc = aws
            .create_vpc("10.9.0.0/16", &Default::default())
            .await
            .unwrap();
        let subnet = aws
            .create_subnet(&baton_aws::NewSubnet {
                vpc_id: vpc.clone(),
                availability_zone: "us-east-1a".into(),
                cidr: "10.9.0.0/24".parse().unwrap(),
                tags: Default::default(),
            })
            .await
            .unwrap();
        let tags = [("eks:cluster-name".to_string(), "green".to_string())].into();
        let instance = aws
            .run_instance(&subnet.id, "m6i.xlarge", &tags)
            .await
            .unwrap();
        (vpc, instance)
    });
    let ip = instance.private_ip.unwrap();
    sim.kubectl_create(
        "green",
        &node(
            &format!("ip-{}.ec2.internal", ip.replace('.', "-")),
            "us-east-1a",
            &instance.id,
        ),
    );
    // …and one in another region (EC2 in us-east-1 does not know its instance).
    sim.kubectl_create(
        "green",
        &node(
            "ip-10-1-200-7.eu-west-1.compute.internal",
            "eu-west-1a",
            "i-0e1e2e3e4e5e6e7e8",
        ),
    );
    // Green loses its nodes in us-east-1c, where volumes are.
    let nodes = sim.kubectl_json(
        "green",
        &[
            "get",
            "nodes",
            "-l",
            "topology.kubernetes.io/zone=us-east-1c",
        ],
    );
    for n in nodes["items"].as_array().unwrap() {
        sim.kubectl_delete("green", &["node", n["metadata"]["name"].as_str().unwrap()]);
    }

    let manifests = sim.dir.path().join("manifests");
    let (code, tripped) = preflight(
        &sim,
        &[
            "--manifests",
            manifests.to_str().unwrap(),
            "--vpc",
            "vpc-00000000000000000",
        ],
    );
    assert_eq!(code, 2, "{tripped:#}");
    for (check, severity) in TRIPPED {
        let found = findings(&tripped, check);
        assert!(!found.is_empty(), "{check} not found: {tripped:#}");
        assert!(
            found.iter().any(|f| f["severity"] == *severity),
            "{check}: {found:#?}"
        );
        for f in found {
            assert_explained(f);
        }
    }
    let one = |check: &str, severity: &str| -> Vec<String> {
        findings(&tripped, check)
            .iter()
            .filter(|f| f["severity"] == severity)
            .map(|f| f["object"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        one("kubelet-skew", "fail"),
        [format!("Node green/{newer}")],
        "{tripped:#}"
    );
    assert_eq!(one("kubelet-skew", "warn"), [format!("Node green/{older}")]);
    assert_eq!(
        one("multi-attach", "fail"),
        [format!("EBS volume {shared}")]
    );
    let vpc_problem = findings(&tripped, "different-vpc")[0]["problem"]
        .as_str()
        .unwrap();
    assert!(vpc_problem.contains(&other_vpc), "{vpc_problem}");
    let region_problem = findings(&tripped, "different-region")[0]["problem"]
        .as_str()
        .unwrap();
    assert!(region_problem.contains("eu-west-1"), "{region_problem}");

    // `baton plan` blocks on the planner's share, the same problems; multi-attach is
    // the user's to allow.
    let plan = |extra: &[&str]| -> (i32, BTreeSet<String>) {
        let (code, plan) = json_of(&sim, "plan", extra);
        let blocking = plan["problems"]
            .as_array()
            .unwrap()
            .iter()
            .chain(
                plan["apps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|a| a["problems"].as_array().unwrap()),
            )
            .filter(|p| p["severity"] == "Blocking")
            .map(|p| p["code"].as_str().unwrap().to_string())
            .collect();
        (code, blocking)
    };
    let (code, blocking) = plan(&[]);
    assert_eq!(code, 3, "{blocking:?}");
    for check in PLAN_BLOCKS {
        assert!(blocking.contains(*check), "{check} not in {blocking:?}");
    }
    let (_, allowed) = plan(&["--allow-multi-attach"]);
    assert!(!allowed.contains("multi-attach"), "{allowed:?}");
    assert!(allowed.contains("different-vpc"), "{allowed:?}");
    // preflight accepts the volume the same way.
    let (_, accepted) = preflight(&sim, &["--allow-multi-attach"]);
    assert!(!checks(&accepted).contains("multi-attach"), "{accepted:#}");
    assert!(checks(&accepted).contains("different-vpc"), "{accepted:#}");

    let removed: Vec<String> = findings(&tripped, "removed-api")
        .iter()
        .map(|f| f["object"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(removed.len(), 3, "{removed:#?}");
    assert!(
        removed
            .iter()
            .any(|o| o.contains("Deployment web/legacy (last-applied")),
        "{removed:?}"
    );
    assert!(
        removed
            .iter()
            .any(|o| o.contains("PodDisruptionBudget web/shop (Helm release web/shop revision 2)")),
        "{removed:?}"
    );
    assert!(
        removed.iter().any(|o| o.contains("old-ingress.yaml")),
        "{removed:?}"
    );
    assert!(
        !removed.iter().any(|o| o.contains("ingress.yml")),
        "a current API is not flagged"
    );

    // The table says the same, and never shows Secret data.
    let o = sim.baton(&["preflight", "--from", "blue", "--to", "green"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2));
    assert!(text.contains("Result: failures (exit 2)"), "{text}");
    assert!(!text.contains("H4sI"), "release data leaked: {text}");

    // A read that fails makes the report incomplete: exit 3, naming what was not checked.
    let faults = sim.dir.path().join("sim");
    sim.ok(&[
        "sim",
        "fault",
        "--state-dir",
        faults.to_str().unwrap(),
        "add",
        "blue:resource=poddisruptionbudgets:rate=1:500",
    ]);
    let (code, partial) = preflight(&sim, &[]);
    assert_eq!(code, 3, "{partial:#}");
    assert_eq!(partial["outcome"], "unchecked");
    let unchecked = partial["unchecked"].as_array().unwrap();
    assert!(
        unchecked
            .iter()
            .any(|u| u["check"].as_str().unwrap().contains("pdb-blocks")),
        "{partial:#}"
    );
    assert!(
        checks(&partial).contains("removed-api"),
        "the other checks still ran"
    );
}

/// Green older than blue fails version-skew. An estate of its own: the seeded one is an
/// upgrade (1.27 → 1.31), and the versions the API servers report are set at start.
#[test]
fn a_green_older_than_blue_fails_version_skew() {
    let sim = sim_up_with(&["--green-version", "v1.26.15-eks-4ad5bc1"]);
    let (code, report) = preflight(&sim, &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["to_version"], "v1.26.15-eks-4ad5bc1");
    let skew = findings(&report, "version-skew");
    assert_eq!(skew.len(), 1, "{skew:#?}");
    assert_eq!(skew[0]["severity"], "fail");
    assert!(
        skew[0]["problem"].as_str().unwrap().contains("downgrade"),
        "{skew:#?}"
    );
    assert_explained(skew[0]);
    // Green's kubelets run the version its control plane serves: no kubelet skew.
    assert!(findings(&report, "kubelet-skew").is_empty(), "{report:#}");
}

/// A finding says what, what is wrong, why it matters and what to do.
fn assert_explained(f: &Value) {
    for field in ["object", "problem", "why", "fix"] {
        assert!(
            !f[field].as_str().unwrap().is_empty(),
            "{} without {field}: {f:#}",
            f["check"]
        );
    }
}

fn patch(sim: &Sim, ctx: &str, args: &[&str]) {
    sim.kubectl(&[&["--context", ctx, "patch"], args].concat());
}

/// Creates, in blue, an app on an io2 volume with EBS Multi-Attach enabled: the volume
/// (made in EC2 as a user would), a PV for it, its claim bound to that PV and a
/// StatefulSet of one replica using the claim; green gets the same StatefulSet at 0
/// replicas, as for any app to move. Returns the volume id once blue's claim is Bound.
fn multi_attach_app(sim: &Sim) -> String {
    let volume = sim.ec2(async |aws| {
        aws.create_volume(&baton_aws::NewVolume {
            availability_zone: "us-east-1a".into(),
            size_gib: 10,
            volume_type: "io2".into(),
            iops: Some(1000),
            multi_attach: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .id
    });
    sim.kubectl_create(
        "blue",
        &json!({ "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": { "name": "shared-log-data" },
        "spec": { "capacity": { "storage": "10Gi" }, "accessModes": ["ReadWriteOnce"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": volume, "fsType": "ext4" },
                  "claimRef": { "namespace": "orders", "name": "data-shared-log-0" },
                  "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                      { "key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1a"] }] }] } } } }),
    );
    sim.kubectl_create(
        "blue",
        &json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": "data-shared-log-0", "namespace": "orders", "labels": { "app": "shared-log" } },
        "spec": { "storageClassName": "", "accessModes": ["ReadWriteOnce"], "volumeName": "shared-log-data",
                  "resources": { "requests": { "storage": "10Gi" } } } }),
    );
    for (ctx, replicas) in [("blue", 1), ("green", 0)] {
        sim.kubectl_create(ctx,
            &json!({ "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": { "name": "shared-log", "namespace": "orders", "labels": { "app": "shared-log" } },
            "spec": { "serviceName": "shared-log", "replicas": replicas,
                      "selector": { "matchLabels": { "app": "shared-log" } },
                      "template": { "metadata": { "labels": { "app": "shared-log" } },
                                    "spec": { "containers": [{ "name": "log", "image": "busybox",
                                              "volumeMounts": [{ "name": "data", "mountPath": "/data" }] }] } },
                      "volumeClaimTemplates": [{ "metadata": { "name": "data" },
                          "spec": { "storageClassName": "", "accessModes": ["ReadWriteOnce"],
                                    "resources": { "requests": { "storage": "10Gi" } } } }] } }),
        );
    }
    // The planner checks a volume only behind a Bound claim.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let claim = sim.kubectl_json("blue", &["-n", "orders", "get", "pvc", "data-shared-log-0"]);
        if claim["status"]["phase"] == "Bound" {
            return volume;
        }
        assert!(Instant::now() < deadline, "never Bound: {claim:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node as an EKS node registers: zone and region labels, the EC2 instance behind it.
fn node(name: &str, zone: &str, instance: &str) -> Value {
    let region = zone.trim_end_matches(|c: char| c.is_ascii_lowercase());
    json!({ "apiVersion": "v1", "kind": "Node",
    "metadata": { "name": name, "labels": {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": region } },
    "spec": { "providerID": format!("aws:///{zone}/{instance}") } })
}

#[test]
fn bad_input_is_refused_with_what_to_fix_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: blue\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: t}\ncurrent-context: blue\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let k = kubeconfig.to_str().unwrap();
    let (code, err) = run(&[
        "preflight",
        "--kubeconfig",
        k,
        "--from",
        "blue",
        "--to",
        "purple",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("could not check")
            && err.contains("\"purple\"")
            && err.contains("contexts there: blue"),
        "{err}"
    );

    let missing = dir.path().join("no-such-dir");
    let (code, err) = run(&[
        "preflight",
        "--kubeconfig",
        k,
        "--from",
        "blue",
        "--to",
        "purple",
        "--manifests",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("failed to read the manifests directory") && err.contains("no-such-dir"),
        "{err}"
    );

    let (code, err) = run(&["preflight", "--from", "blue"]);
    assert_eq!(code, 2, "a usage error: {err}");
    assert!(err.contains("--to"), "{err}");
}
