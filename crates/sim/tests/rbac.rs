//! Service-account tokens and RBAC on the emulated API server, driven as an SRE drives a
//! real cluster: `kubectl create serviceaccount`, `kubectl create token`, Roles and
//! bindings, `kubectl auth can-i`, and a kubeconfig whose user is the service account.
//! The admin token is unaffected throughout.

mod common;

use common::{Bed, kubectl, ok};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, WatchParams};

/// kubectl on green, its arguments split at spaces; asserts success.
async fn on_green(bed: &Bed, line: &str) -> String {
    let args: Vec<&str> = ["--context", "green"]
        .into_iter()
        .chain(line.split_whitespace())
        .collect();
    ok(bed, &args).await
}

/// kubectl as the service account (context `sa`): fails with `stderr`.
async fn denied(bed: &Bed, args: &[&str], stderr: &str) {
    let mut all = vec!["--context", "sa"];
    all.extend_from_slice(args);
    let o = kubectl(bed, &all).await;
    assert!(!o.ok, "kubectl {all:?} should be denied:\n{}", o.stdout);
    assert!(
        o.stderr.contains(stderr),
        "kubectl {all:?}: expected {stderr:?} in:\n{}",
        o.stderr
    );
}

async fn allowed(bed: &Bed, args: &[&str]) -> String {
    let mut all = vec!["--context", "sa"];
    all.extend_from_slice(args);
    ok(bed, &all).await
}

fn apply_text(bed: &Bed, name: &str, text: &str) -> String {
    let p = bed.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const SA: &str = "system:serviceaccount:baton:baton";

/// green with namespaces `baton` and `orders`, ServiceAccount `baton` in `baton`, a
/// token for it, and a context `sa` in the bed's kubeconfig that uses the token against
/// green. (green: kubectl validates on the server only from v1.28 on, so on blue's v1.27
/// `apply` would look for `/openapi/v2`, which the emulator does not serve.)
async fn bed_with_service_account() -> Bed {
    let bed = Bed::start().await;
    ok(
        &bed,
        &["--context", "green", "create", "namespace", "baton"],
    )
    .await;
    ok(
        &bed,
        &["--context", "green", "create", "namespace", "orders"],
    )
    .await;
    on_green(&bed, "create serviceaccount baton -n baton").await;
    let token = on_green(&bed, "create token baton -n baton --duration 1h").await;
    let token = token.trim();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace));
    let cred = format!("--token={token}");
    ok(&bed, &["config", "set-credentials", "sa", &cred]).await;
    ok(
        &bed,
        &[
            "config",
            "set-context",
            "sa",
            "--cluster=green",
            "--user=sa",
            "--namespace=orders",
        ],
    )
    .await;
    bed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_can_do_what_its_roles_grant_and_nothing_else() {
    let bed = bed_with_service_account().await;
    // Discovery and the version are every authenticated user's; nothing else is yet.
    assert!(
        allowed(&bed, &["version", "-o", "json"])
            .await
            .contains("v1.31.4")
    );
    allowed(&bed, &["api-resources"]).await;
    denied(
        &bed,
        &["get", "pods", "-n", "orders"],
        &format!(
            "Error from server (Forbidden): pods is forbidden: User \"{SA}\" cannot list resource \"pods\" in API group \"\" in the namespace \"orders\""
        ),
    )
    .await;
    denied(
        &bed,
        &["get", "namespaces"],
        &format!("namespaces is forbidden: User \"{SA}\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"),
    )
    .await;
    denied(
        &bed,
        &["get", "--raw", "/debug/requests"],
        &format!("forbidden: User \"{SA}\" cannot get path \"/debug/requests\""),
    )
    .await;

    // A Role and RoleBinding: reads of configmaps in orders only.
    on_green(&bed, "-n orders create configmap a").await;
    on_green(&bed, "-n orders create configmap b").await;
    on_green(&bed, "-n default create configmap a").await;
    on_green(
        &bed,
        "-n orders create role cm-read --verb=get,list --resource=configmaps",
    )
    .await;
    on_green(
        &bed,
        "-n orders create rolebinding cm-read --role=cm-read --serviceaccount=baton:baton",
    )
    .await;
    let names = allowed(&bed, &["get", "configmaps", "-o", "name"]).await;
    assert!(
        names.contains("configmap/a") && names.contains("configmap/b"),
        "{names}"
    );
    denied(
        &bed,
        &["-n", "default", "get", "configmap", "a"],
        &format!("configmaps \"a\" is forbidden: User \"{SA}\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""),
    )
    .await;
    denied(
        &bed,
        &["delete", "configmap", "a"],
        "cannot delete resource \"configmaps\" in API group \"\" in the namespace \"orders\"",
    )
    .await;
    // list is not watch (kubectl words a denied watch generically, as with a real
    // server; the message is checked through kube-rs below).
    denied(
        &bed,
        &["get", "configmaps", "--watch-only", "--request-timeout=5s"],
        "Error from server (Forbidden)",
    )
    .await;

    // resourceNames: patch configmap b only.
    let role = apply_text(
        &bed,
        "patch-b.yaml",
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: patch-b}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [b]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: patch-b, namespace: orders}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: patch-b}
subjects:
- {kind: ServiceAccount, name: baton, namespace: baton}
"#,
    );
    ok(&bed, &["--context", "green", "apply", "-f", &role]).await;
    allowed(
        &bed,
        &["patch", "configmap", "b", "-p", r#"{"data":{"k":"v"}}"#],
    )
    .await;
    denied(
        &bed,
        &["patch", "configmap", "a", "-p", r#"{"data":{"k":"v"}}"#],
        &format!("configmaps \"a\" is forbidden: User \"{SA}\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"orders\""),
    )
    .await;
    // A RoleBinding to a ClusterRole grants it in its own namespace only.
    on_green(&bed, "-n default create configmap b").await;
    denied(
        &bed,
        &[
            "-n",
            "default",
            "patch",
            "configmap",
            "b",
            "-p",
            r#"{"data":{"k":"v"}}"#,
        ],
        // (kubectl reads the object first; that is denied too)
        "configmaps \"b\" is forbidden: User \"system:serviceaccount:baton:baton\" cannot",
    )
    .await;

    // kubectl auth can-i asks the server (SelfSubjectAccessReview).
    assert_eq!(
        allowed(&bed, &["auth", "can-i", "list", "configmaps"])
            .await
            .trim(),
        "yes"
    );
    let no = kubectl(
        &bed,
        &["--context", "sa", "auth", "can-i", "delete", "configmaps"],
    )
    .await;
    assert_eq!((no.code, no.stdout.trim()), (1, "no"), "{}", no.stderr);
    let no = kubectl(
        &bed,
        &[
            "--context",
            "sa",
            "auth",
            "can-i",
            "list",
            "configmaps",
            "-n",
            "default",
        ],
    )
    .await;
    assert_eq!((no.code, no.stdout.trim()), (1, "no"), "{}", no.stderr);

    // The admin is never checked.
    on_green(&bed, "-n default delete configmap a").await;
    ok(
        &bed,
        &["--context", "green", "get", "--raw", "/debug/requests"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subresources_watches_and_wildcards_are_checked_as_rbac_checks_them() {
    let bed = bed_with_service_account().await;
    let sts = apply_text(
        &bed,
        "sts.yaml",
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: orders}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:16}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scaler}
rules:
- apiGroups: [apps]
  resources: [statefulsets/scale]
  verbs: [patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: scaler}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scaler}
subjects:
- {kind: ServiceAccount, name: baton, namespace: baton}
- {kind: ServiceAccount, name: someone-else, namespace: baton}
"#,
    );
    ok(&bed, &["--context", "green", "apply", "-f", &sts]).await;
    let sa = bed.client("sa").await;
    let sets: Api<StatefulSet> = Api::namespaced(sa.clone(), "orders");
    let scale = Patch::Merge(serde_json::json!({ "spec": { "replicas": 0 } }));
    sets.patch_scale("db", &PatchParams::default(), &scale)
        .await
        .expect("patch of statefulsets/scale is granted");
    let e = sets
        .patch("db", &PatchParams::default(), &scale)
        .await
        .expect_err("the main resource is not granted");
    let kube::Error::Api(s) = e else {
        panic!("{e}")
    };
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        format!(
            "statefulsets.apps \"db\" is forbidden: User \"{SA}\" cannot patch resource \"statefulsets\" in API group \"apps\" in the namespace \"orders\""
        )
    );
    let body = serde_json::json!({ "apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": { "name": "db", "namespace": "orders" }, "spec": { "replicas": 1 } });
    let e = sets
        .replace_scale(
            "db",
            &Default::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .expect_err("update of the scale is not patch");
    let kube::Error::Api(s) = e else {
        panic!("{e}")
    };
    assert!(
        s.message.ends_with(&format!("User \"{SA}\" cannot update resource \"statefulsets/scale\" in API group \"apps\" in the namespace \"orders\"")),
        "{}",
        s.message
    );

    // watch without list: a watch opens, a list does not.
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), "orders");
    let opened = cms.watch(&WatchParams::default().timeout(1), "0").await;
    assert!(opened.is_ok(), "watch is granted");
    let e = cms
        .list(&Default::default())
        .await
        .expect_err("list is not");
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 403), "{e}");
    let pods: Api<Pod> = Api::namespaced(sa.clone(), "orders");
    let denied_watch = match pods.watch(&WatchParams::default().timeout(1), "0").await {
        Err(kube::Error::Api(s)) => s.message,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a watch of pods is not granted"),
    };
    assert_eq!(
        denied_watch,
        format!(
            "pods is forbidden: User \"{SA}\" cannot watch resource \"pods\" in API group \"\" in the namespace \"orders\""
        )
    );

    // A binding to a missing role grants nothing and says why.
    on_green(
        &bed,
        "create clusterrolebinding ghost --clusterrole=ghost --serviceaccount=baton:baton",
    )
    .await;
    denied(
        &bed,
        &["get", "nodes"],
        "cannot list resource \"nodes\" in API group \"\" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"ghost\" not found",
    )
    .await;

    // Wildcards, bound to the service account's group.
    let everything = apply_text(
        &bed,
        "everything.yaml",
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: everything}
rules:
- {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: everything}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: everything}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:serviceaccounts:baton"}
"#,
    );
    ok(&bed, &["--context", "green", "apply", "-f", &everything]).await;
    allowed(&bed, &["get", "nodes"]).await;
    allowed(&bed, &["-n", "kube-system", "create", "configmap", "x"]).await;
    allowed(&bed, &["delete", "sts", "db"]).await;
    // Still not the emulator's debug endpoints (a non-resource URL).
    denied(
        &bed,
        &["get", "--raw", "/debug/requests"],
        "cannot get path",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_need_an_existing_service_account_and_die_with_it() {
    let bed = bed_with_service_account().await;
    let missing = kubectl(
        &bed,
        &[
            "--context",
            "green",
            "create",
            "token",
            "nobody",
            "-n",
            "baton",
        ],
    )
    .await;
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains("serviceaccounts \"nobody\" not found"),
        "{}",
        missing.stderr
    );
    let short = kubectl(
        &bed,
        &[
            "--context",
            "green",
            "create",
            "token",
            "baton",
            "-n",
            "baton",
            "--duration",
            "1m",
        ],
    )
    .await;
    assert!(
        !short.ok && short.stderr.contains("less than 10 minutes"),
        "{}",
        short.stderr
    );
    // The TokenRequest answer carries the expiry kubectl and client-go read.
    let req = bed.dir.path().join("tr.json");
    std::fs::write(
        &req,
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":7200}}"#,
    )
    .unwrap();
    let tr: serde_json::Value = serde_json::from_str(
        &ok(
            &bed,
            &[
                "--context",
                "green",
                "create",
                "--raw",
                "/api/v1/namespaces/baton/serviceaccounts/baton/token",
                "-f",
                &req.display().to_string(),
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(tr["kind"], "TokenRequest");
    let expires: jiff::Timestamp = tr["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = expires.as_second() - jiff::Timestamp::now().as_second();
    assert!((7100..=7200).contains(&left), "{tr}");

    let me = allowed(&bed, &["auth", "whoami", "-o", "json"]).await;
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], SA);
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:baton",
            "system:authenticated"
        ])
    );
    on_green(&bed, "-n baton delete serviceaccount baton").await;
    denied(&bed, &["get", "--raw", "/version"], "Unauthorized").await;
    // Re-created, the account is a new one: the old token stays dead.
    on_green(&bed, "create serviceaccount baton -n baton").await;
    denied(&bed, &["get", "--raw", "/api"], "Unauthorized").await;
    ok(&bed, &["--context", "green", "get", "namespaces"]).await;
}
