//! The controllers that would scale blue's workloads back up while baton stops them: the
//! HorizontalPodAutoscaler controller, Argo CD, Flux and KEDA (`controllers/hpa.rs`,
//! `argocd.rs`, `flux.rs`, `keda.rs`). Each test is named after the fact it pins and
//! drives the emulator through kube-rs as a user would; the modelled intervals are short
//! (`Delays`, and each object's own interval fields). Waits are watches
//! (`await_condition`); a fact that something does *not* happen is a bounded wait that
//! must time out, several of the controller's periods long.

mod common;

use std::time::Duration;

use baton_sim::controllers::{ControlPlane, Ctx, Delays};
use baton_sim::scenario::{self, Scenario};
use common::Bed;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, PersistentVolumeClaim};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

const HPA_PERIOD: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(20);

struct Adv {
    _bed: Bed,
    _cp: ControlPlane,
    client: kube::Client,
}

/// One cluster with two Ready nodes, its control plane on short periods, and the
/// adversaries' CRDs installed as the `shapes` scenario installs them on blue.
async fn bed() -> Adv {
    let bed = Bed::with(vec![baton_sim::ClusterSpec::new(
        "blue",
        "v1.29.8-eks-a737599",
    )])
    .await;
    let cp = ControlPlane::start(Ctx::new(
        bed.cluster("blue").clone(),
        None,
        Delays {
            hpa_sync_period: HPA_PERIOD,
            argocd_self_heal_backoff: Duration::from_millis(300),
            ..Delays::default()
        },
    ));
    let client = bed.client("blue").await;
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..2 {
        let node: Node = serde_json::from_value(json!({
            "metadata": { "name": format!("node-{i}"), "labels": { "topology.kubernetes.io/zone": "us-east-1a", "kubernetes.io/hostname": format!("node-{i}") } },
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let ready = json!({ "status": { "conditions": [{ "type": "Ready", "status": "True" }], "addresses": [{ "type": "InternalIP", "address": format!("10.0.1.{}", 10 + i) }] } });
        nodes
            .patch_status(
                &format!("node-{i}"),
                &PatchParams::default(),
                &Patch::Merge(ready),
            )
            .await
            .unwrap();
    }
    let adv = Adv {
        _bed: bed,
        _cp: cp,
        client,
    };
    let shapes = Scenario::load("default").unwrap();
    for crd in shapes.clusters[0]
        .objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
    {
        adv.create(crd.clone()).await;
    }
    for ns in ["apps", "argocd", "flux-system"] {
        adv.create(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }))
            .await;
    }
    adv
}

fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers".to_string(),
        "ScaledObject" => "scaledobjects".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

impl Adv {
    fn api(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
        let ar = resource(api_version, kind);
        match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    async fn create(&self, obj: Value) -> DynamicObject {
        let ns = obj["metadata"]["namespace"].as_str();
        let api = self.api(
            obj["apiVersion"].as_str().unwrap(),
            obj["kind"].as_str().unwrap(),
            ns,
        );
        let o: DynamicObject = serde_json::from_value(obj).unwrap();
        api.create(&PostParams::default(), &o).await.unwrap()
    }

    async fn merge(&self, api_version: &str, kind: &str, ns: &str, name: &str, patch: Value) {
        self.api(api_version, kind, Some(ns))
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "apps")
    }

    /// `kubectl scale deployment/<name> --replicas=<n>`: the scale subresource.
    async fn scale(&self, name: &str, n: i64) {
        self.deployments()
            .patch_scale(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": n } })),
            )
            .await
            .unwrap();
    }

    async fn replicas(&self, name: &str) -> i32 {
        self.deployments()
            .get(name)
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas
            .unwrap_or(1)
    }

    /// Waits until the Deployment's `spec.replicas` is `n`.
    async fn wait_replicas(&self, name: &str, n: i32) {
        let cond = move |d: Option<&Deployment>| {
            d.and_then(|d| d.spec.as_ref())
                .is_some_and(|s| s.replicas == Some(n))
        };
        tokio::time::timeout(WAIT, await_condition(self.deployments(), name, cond))
            .await
            .unwrap_or_else(|_| panic!("deployment {name} not at {n} replicas within {WAIT:?}"))
            .unwrap();
    }

    /// Asserts the Deployment's `spec.replicas` stays `n` for `long`.
    async fn stays(&self, name: &str, n: i32, long: Duration) {
        let cond = move |d: Option<&Deployment>| {
            d.and_then(|d| d.spec.as_ref())
                .is_some_and(|s| s.replicas != Some(n))
        };
        let moved =
            tokio::time::timeout(long, await_condition(self.deployments(), name, cond)).await;
        assert!(
            moved.is_err(),
            "deployment {name} moved off {n} replicas: now {}",
            self.replicas(name).await
        );
    }

    /// Waits until an object satisfies `pred` (on its JSON); returns it.
    async fn wait_for(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool + Send + 'static,
    ) -> Value {
        let api = self.api(api_version, kind, Some(ns));
        let cond = move |o: Option<&DynamicObject>| {
            o.is_some_and(|o| pred(&serde_json::to_value(o).unwrap()))
        };
        let o = tokio::time::timeout(WAIT, await_condition(api, name, cond))
            .await
            .unwrap_or_else(|_| panic!("{kind} {ns}/{name}: {what} not seen within {WAIT:?}"))
            .unwrap()
            .unwrap();
        serde_json::to_value(o).unwrap()
    }

    async fn gone(&self, api_version: &str, kind: &str, ns: &str, name: &str) {
        let api = self.api(api_version, kind, Some(ns));
        let cond = |o: Option<&DynamicObject>| o.is_none();
        tokio::time::timeout(WAIT, await_condition(api, name, cond))
            .await
            .unwrap_or_else(|_| panic!("{kind} {ns}/{name} still there after {WAIT:?}"))
            .unwrap();
    }

    /// Event messages about an object with a reason.
    async fn events(&self, ns: &str, object: &str, reason: &str) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(object)
                    && e.reason.as_deref() == Some(reason)
            })
            .filter_map(|e| e.message)
            .collect()
    }

    /// A Deployment in namespace `apps`, with extra metadata.
    async fn deployment(&self, name: &str, replicas: i64, meta: Value) {
        let mut metadata = json!({ "name": name, "namespace": "apps" });
        for (k, v) in meta.as_object().into_iter().flatten() {
            metadata[k] = v.clone();
        }
        self.create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {
                "replicas": replicas, "selector": { "matchLabels": { "app": name } },
                "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "c", "image": "app:1" }] } },
            },
        }))
        .await;
    }
}

fn cond<'a>(o: &'a Value, kind: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

// --- HorizontalPodAutoscaler -----------------------------------------------------------

fn hpa(name: &str, target: &str, min: Option<i64>, max: i64) -> Value {
    let mut spec = json!({
        "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": target },
        "maxReplicas": max,
        "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } } }],
    });
    if let Some(m) = min {
        spec["minReplicas"] = json!(m);
    }
    json!({ "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": name, "namespace": "apps" }, "spec": spec })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_leaves_a_target_scaled_to_zero_alone() {
    let a = bed().await;
    a.deployment("web", 2, json!({})).await;
    a.create(hpa("web", "web", None, 5)).await;
    // Within bounds, the bed's HPA asks metrics no API serves, and keeps the count.
    let h = a
        .wait_for(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "apps",
            "web",
            "a metrics failure",
            |h| cond(h, "ScalingActive")["reason"] == "FailedGetResourceMetric",
        )
        .await;
    assert_eq!(h["status"]["currentReplicas"], 2);
    assert_eq!(cond(&h, "AbleToScale")["reason"], "SucceededGetScale");
    assert_eq!(a.replicas("web").await, 2);

    a.scale("web", 0).await;
    let h = a
        .wait_for(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "apps",
            "web",
            "ScalingDisabled",
            |h| cond(h, "ScalingActive")["reason"] == "ScalingDisabled",
        )
        .await;
    let active = cond(&h, "ScalingActive");
    assert_eq!(active["status"], "False");
    assert_eq!(
        active["message"],
        "scaling is disabled since the replica count of the target is zero"
    );
    assert_eq!(h["status"]["desiredReplicas"], 0);
    assert_eq!(h["status"]["currentReplicas"], 0);
    // minReplicas is 1 (unset), and still the HPA does not bring it back.
    a.stays("web", 0, HPA_PERIOD * 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_scales_a_target_into_its_bounds() {
    let a = bed().await;
    a.deployment("api", 1, json!({})).await;
    a.create(hpa("api", "api", Some(3), 5)).await;
    a.wait_replicas("api", 3).await;
    let h = a
        .wait_for(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "apps",
            "api",
            "a rescale",
            |h| h["status"]["desiredReplicas"] == 3,
        )
        .await;
    assert_eq!(cond(&h, "AbleToScale")["reason"], "SucceededRescale");
    assert!(!h["status"]["lastScaleTime"].is_null());
    assert_eq!(
        a.events("apps", "api", "SuccessfulRescale").await,
        ["New size: 3; reason: Current number of replicas below Spec.MinReplicas"]
    );
    a.scale("api", 8).await;
    a.wait_replicas("api", 5).await;
    // minReplicas 0 lets it scale a target at zero: 0 is then within bounds.
    a.merge(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "apps",
        "api",
        json!({ "spec": { "minReplicas": 0 } }),
    )
    .await;
    a.scale("api", 0).await;
    let h = a
        .wait_for(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "apps",
            "api",
            "a look at 0",
            |h| h["status"]["currentReplicas"] == 0,
        )
        .await;
    assert_eq!(
        cond(&h, "ScalingActive")["reason"],
        "FailedGetResourceMetric"
    );
}

// --- Argo CD -------------------------------------------------------------------------

fn application(name: &str, sync_policy: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": { "name": name, "namespace": "argocd", "annotations": annotations },
        "spec": {
            "project": "default",
            "source": { "repoURL": "https://git.example.com/apps.git", "targetRevision": "main", "path": name },
            "destination": { "server": "https://kubernetes.default.svc", "namespace": "apps" },
            "syncPolicy": sync_policy,
        },
    })
}

fn tracked(app: &str, name: &str) -> Value {
    json!({ "annotations": { "argocd.argoproj.io/tracking-id": format!("{app}:apps/Deployment:apps/{name}") } })
}

async fn synced_app(a: &Adv, name: &str) -> Value {
    a.wait_for(
        "argoproj.io/v1alpha1",
        "Application",
        "argocd",
        name,
        "Synced with its resource",
        |o| {
            o["status"]["sync"]["status"] == "Synced"
                && o["status"]["resources"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_healing_application_scales_a_drifted_workload_back() {
    let a = bed().await;
    a.deployment("shop", 2, tracked("shop", "shop")).await;
    a.create(application(
        "shop",
        json!({ "automated": { "selfHeal": true } }),
        json!({}),
    ))
    .await;
    let app = synced_app(&a, "shop").await;
    assert_eq!(app["status"]["resources"][0]["kind"], "Deployment");
    assert_eq!(app["status"]["resources"][0]["status"], "Synced");
    assert_eq!(app["status"]["operationState"]["phase"], "Succeeded");
    // The stand-in repository: what it found, at the replicas it found.
    assert_eq!(
        app["metadata"]["annotations"][baton_sim::controllers::gitops::GIT],
        r#"{"apps/Deployment/apps/shop":2}"#
    );

    a.scale("shop", 0).await;
    a.wait_replicas("shop", 2).await;
    let app = a
        .wait_for(
            "argoproj.io/v1alpha1",
            "Application",
            "argocd",
            "shop",
            "a self-heal",
            |o| o["status"]["operationState"]["operation"]["sync"]["autoHealAttemptsCount"] == 1,
        )
        .await;
    let op = &app["status"]["operationState"];
    assert_eq!(op["operation"]["initiatedBy"]["automated"], true);
    assert_eq!(op["phase"], "Succeeded");
    assert_eq!(
        op["syncResult"]["resources"][0]["message"],
        "deployment.apps/shop configured"
    );
    assert_eq!(app["status"]["history"].as_array().unwrap().len(), 2);

    // Again: healed once more, after the back-off (the attempts count grows).
    a.scale("shop", 0).await;
    a.wait_replicas("shop", 2).await;
    a.wait_for(
        "argoproj.io/v1alpha1",
        "Application",
        "argocd",
        "shop",
        "a second self-heal",
        |o| o["status"]["operationState"]["operation"]["sync"]["autoHealAttemptsCount"] == 2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_without_self_heal_only_reports_drift() {
    let a = bed().await;
    a.deployment("blog", 2, tracked("blog", "blog")).await;
    a.deployment("wiki", 2, tracked("wiki", "wiki")).await;
    a.create(application(
        "blog",
        json!({ "automated": { "prune": true } }),
        json!({}),
    ))
    .await;
    // automated.enabled: false (Argo CD ≥ 3.1) turns automated sync off, selfHeal or not.
    a.create(application(
        "wiki",
        json!({ "automated": { "enabled": false, "selfHeal": true } }),
        json!({}),
    ))
    .await;
    synced_app(&a, "blog").await;
    synced_app(&a, "wiki").await;
    a.scale("blog", 0).await;
    a.scale("wiki", 0).await;
    for name in ["blog", "wiki"] {
        let app = a
            .wait_for(
                "argoproj.io/v1alpha1",
                "Application",
                "argocd",
                name,
                "OutOfSync",
                |o| o["status"]["sync"]["status"] == "OutOfSync",
            )
            .await;
        assert_eq!(app["status"]["resources"][0]["status"], "OutOfSync");
    }
    a.stays("blog", 0, Duration::from_secs(2)).await;
    assert_eq!(a.replicas("wiki").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revision_is_synced_by_an_automated_application_even_without_self_heal() {
    let a = bed().await;
    a.deployment("docs", 2, tracked("docs", "docs")).await;
    a.create(application("docs", json!({ "automated": {} }), json!({})))
        .await;
    let before = synced_app(&a, "docs").await["status"]["sync"]["revision"].clone();
    // A commit to the stand-in repository: replicas 3.
    a.merge(
        "argoproj.io/v1alpha1",
        "Application",
        "argocd",
        "docs",
        json!({ "metadata": { "annotations": {
        baton_sim::controllers::gitops::GIT: r#"{"apps/Deployment/apps/docs":3}"# } } }),
    )
    .await;
    a.wait_replicas("docs", 3).await;
    let app = a
        .wait_for(
            "argoproj.io/v1alpha1",
            "Application",
            "argocd",
            "docs",
            "the new revision synced",
            move |o| {
                o["status"]["sync"]["status"] == "Synced"
                    && o["status"]["sync"]["revision"] != before
            },
        )
        .await;
    assert!(
        app["status"]["operationState"]["operation"]["sync"]["autoHealAttemptsCount"].is_null()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_reconcile_stops_an_application_until_it_is_removed() {
    let a = bed().await;
    a.deployment("cart", 2, tracked("cart", "cart")).await;
    a.create(application(
        "cart",
        json!({ "automated": { "selfHeal": true } }),
        json!({}),
    ))
    .await;
    synced_app(&a, "cart").await;
    a.merge(
        "argoproj.io/v1alpha1",
        "Application",
        "argocd",
        "cart",
        json!({ "metadata": { "annotations": {
        "argocd.argoproj.io/skip-reconcile": "true" } } }),
    )
    .await;
    a.scale("cart", 0).await;
    a.stays("cart", 0, Duration::from_secs(2)).await;
    let app = a
        .api("argoproj.io/v1alpha1", "Application", Some("argocd"))
        .get("cart")
        .await
        .unwrap();
    let app = serde_json::to_value(app).unwrap();
    assert_eq!(
        app["status"]["sync"]["status"], "Synced",
        "no status update while skipped"
    );
    a.merge(
        "argoproj.io/v1alpha1",
        "Application",
        "argocd",
        "cart",
        json!({ "metadata": { "annotations": {
        "argocd.argoproj.io/skip-reconcile": null } } }),
    )
    .await;
    a.wait_replicas("cart", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_tracking_is_what_argocd_cm_says() {
    let a = bed().await;
    a.deployment(
        "feed",
        2,
        json!({ "labels": { "app.kubernetes.io/instance": "feed" } }),
    )
    .await;
    a.create(application(
        "feed",
        json!({ "automated": { "selfHeal": true } }),
        json!({}),
    ))
    .await;
    // Annotation tracking (3.x's default): the label does not make it managed.
    let app = a
        .wait_for(
            "argoproj.io/v1alpha1",
            "Application",
            "argocd",
            "feed",
            "a status",
            |o| o["status"]["sync"]["status"] == "Synced",
        )
        .await;
    assert_eq!(app["status"]["resources"], json!([]));
    a.create(json!({ "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "argocd-cm", "namespace": "argocd" },
        "data": { "application.resourceTrackingMethod": "label" } }))
        .await;
    synced_app(&a, "feed").await;
    a.scale("feed", 0).await;
    a.wait_replicas("feed", 2).await;
}

// --- Flux ----------------------------------------------------------------------------

fn flux_labels(kind: &str, name: &str) -> Value {
    json!({ "labels": { format!("{kind}.toolkit.fluxcd.io/name"): name, format!("{kind}.toolkit.fluxcd.io/namespace"): "flux-system" } })
}

fn kustomization(name: &str, suspend: bool) -> Value {
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": { "name": name, "namespace": "flux-system" },
        "spec": { "interval": "300ms", "path": format!("./{name}"), "prune": true, "suspend": suspend,
                  "sourceRef": { "kind": "GitRepository", "name": "flux-system" } },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kustomization_resets_drifted_replicas_at_its_next_interval() {
    let a = bed().await;
    a.deployment("pay", 2, flux_labels("kustomize", "pay"))
        .await;
    a.create(kustomization("pay", false)).await;
    let ks = a
        .wait_for(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            "flux-system",
            "pay",
            "Ready",
            |o| cond(o, "Ready")["status"] == "True",
        )
        .await;
    assert_eq!(cond(&ks, "Ready")["reason"], "ReconciliationSucceeded");
    let revision = ks["status"]["lastAppliedRevision"].as_str().unwrap();
    assert!(revision.starts_with("main@sha1:"), "{revision}");
    assert_eq!(
        ks["status"]["inventory"]["entries"],
        json!([{ "id": "apps_pay_apps_Deployment", "v": "v1" }])
    );
    assert_eq!(
        ks["metadata"]["finalizers"],
        json!(["finalizers.fluxcd.io"])
    );
    a.scale("pay", 0).await;
    a.wait_replicas("pay", 2).await;
    assert_eq!(
        a.events("flux-system", "pay", "Progressing").await,
        ["Deployment/apps/pay configured"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_kustomization_leaves_drift_alone() {
    let a = bed().await;
    a.deployment("mail", 2, flux_labels("kustomize", "mail"))
        .await;
    a.create(kustomization("mail", false)).await;
    a.wait_for(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "flux-system",
        "mail",
        "Ready",
        |o| cond(o, "Ready")["status"] == "True",
    )
    .await;
    a.merge(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "flux-system",
        "mail",
        json!({ "spec": { "suspend": true } }),
    )
    .await;
    a.scale("mail", 0).await;
    // Several intervals (300 ms) pass without a reconcile.
    a.stays("mail", 0, Duration::from_secs(2)).await;
    a.merge(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "flux-system",
        "mail",
        json!({ "spec": { "suspend": false } }),
    )
    .await;
    a.wait_replicas("mail", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pruning_kustomization_deletes_what_it_applied() {
    let a = bed().await;
    a.deployment("tmp", 1, flux_labels("kustomize", "tmp"))
        .await;
    a.create(kustomization("tmp", false)).await;
    a.wait_for(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "flux-system",
        "tmp",
        "Ready",
        |o| cond(o, "Ready")["status"] == "True",
    )
    .await;
    a.api(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        Some("flux-system"),
    )
    .delete("tmp", &DeleteParams::default())
    .await
    .unwrap();
    a.gone(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "flux-system",
        "tmp",
    )
    .await;
    a.gone("apps/v1", "Deployment", "apps", "tmp").await;
}

fn helm_release(name: &str, mode: Option<&str>) -> Value {
    let mut spec = json!({ "interval": "300ms", "chart": { "spec": { "chart": name, "version": "1.2.3",
        "sourceRef": { "kind": "HelmRepository", "name": "charts" } } } });
    if let Some(m) = mode {
        spec["driftDetection"] = json!({ "mode": m });
    }
    json!({ "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": { "name": name, "namespace": "flux-system" }, "spec": spec })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_release_corrects_drift_only_with_drift_detection_enabled() {
    let a = bed().await;
    for (name, mode) in [
        ("on", Some("enabled")),
        ("warn", Some("warn")),
        ("off", None),
    ] {
        a.deployment(name, 2, flux_labels("helm", name)).await;
        a.create(helm_release(name, mode)).await;
        let hr = a
            .wait_for(
                "helm.toolkit.fluxcd.io/v2",
                "HelmRelease",
                "flux-system",
                name,
                "Ready",
                |o| cond(o, "Ready")["status"] == "True",
            )
            .await;
        assert_eq!(cond(&hr, "Ready")["reason"], "InstallSucceeded");
        assert_eq!(
            cond(&hr, "Ready")["message"],
            format!(
                "Helm install succeeded for release flux-system/{name}.v1 with chart {name}@1.2.3"
            )
        );
    }
    for name in ["on", "warn", "off"] {
        a.scale(name, 0).await;
    }
    a.wait_replicas("on", 2).await;
    assert_eq!(
        a.events("flux-system", "on", "DriftCorrected").await,
        [
            "Cluster state of release flux-system/on.v1 has been corrected:\nDeployment/apps/on configured"
        ]
    );
    a.stays("warn", 0, Duration::from_secs(2)).await;
    assert_eq!(a.replicas("off").await, 0);
    assert_eq!(
        a.events("flux-system", "warn", "DriftDetected").await,
        [
            "Cluster state of release flux-system/warn.v1 has drifted from the desired state:\nDeployment/apps/warn changed (0 additions, 1 changes, 0 removals)"
        ]
    );
    assert!(
        a.events("flux-system", "off", "DriftDetected")
            .await
            .is_empty()
    );
}

// --- KEDA ----------------------------------------------------------------------------

async fn metric(a: &Adv, value: &str) {
    let api: Api<ConfigMap> = Api::namespaced(a.client.clone(), "apps");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "baton-sim-metrics", "namespace": "apps" },
        "data": { "queue.depth": value },
    }))
    .unwrap();
    let pp = PatchParams::apply("test").force();
    api.patch("baton-sim-metrics", &pp, &Patch::Apply(&cm))
        .await
        .unwrap();
}

async fn scaled_object(a: &Adv, name: &str, cooldown: i64, annotations: Value) {
    a.create(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": name, "namespace": "apps", "annotations": annotations },
        "spec": {
            "scaleTargetRef": { "name": name }, "pollingInterval": 1, "cooldownPeriod": cooldown,
            "minReplicaCount": 0, "maxReplicaCount": 4,
            "triggers": [{ "type": "metrics-api", "metadata": {
                "url": "http://queue.apps.svc:8080/stats", "valueLocation": "queue.depth", "targetValue": "10" } }],
        },
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_trigger_scales_a_target_up_from_zero() {
    let a = bed().await;
    metric(&a, "0").await;
    a.deployment("worker", 0, json!({})).await;
    scaled_object(&a, "worker", 300, json!({})).await;
    let so = a
        .wait_for(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "apps",
            "worker",
            "Active=False",
            |o| cond(o, "Active")["status"] == "False",
        )
        .await;
    assert_eq!(cond(&so, "Active")["reason"], "ScalerNotActive");
    assert_eq!(cond(&so, "Ready")["status"], "True");
    assert_eq!(so["status"]["originalReplicaCount"], 0);
    assert_eq!(
        so["metadata"]["labels"]["scaledobject.keda.sh/name"],
        "worker"
    );
    let h = a
        .wait_for(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "apps",
            "keda-hpa-worker",
            "KEDA's HPA",
            |_| true,
        )
        .await;
    assert_eq!(h["spec"]["minReplicas"], 1);
    assert_eq!(h["spec"]["maxReplicas"], 4);
    assert_eq!(h["metadata"]["ownerReferences"][0]["kind"], "ScaledObject");
    // The HPA alone leaves a target at zero alone (minReplicas 1).
    a.stays("worker", 0, Duration::from_millis(1500)).await;

    metric(&a, "7").await;
    a.wait_replicas("worker", 1).await;
    let so = a
        .wait_for(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "apps",
            "worker",
            "Active=True",
            |o| cond(o, "Active")["status"] == "True",
        )
        .await;
    assert_eq!(cond(&so, "Active")["reason"], "ScalerActive");
    assert!(!so["status"]["lastActiveTime"].is_null());
    // 300 s of cooldown: an idle trigger does not scale it back down yet.
    metric(&a, "0").await;
    a.stays("worker", 1, Duration::from_millis(2500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_trigger_scales_a_target_to_zero_after_the_cooldown() {
    let a = bed().await;
    metric(&a, "3").await;
    a.deployment("batch", 2, json!({})).await;
    scaled_object(&a, "batch", 1, json!({})).await;
    a.wait_for(
        "keda.sh/v1alpha1",
        "ScaledObject",
        "apps",
        "batch",
        "Active=True",
        |o| cond(o, "Active")["status"] == "True",
    )
    .await;
    metric(&a, "0").await;
    a.wait_replicas("batch", 0).await;
    // A trigger that errs scales nothing down: Ready=False TriggerError.
    a.scale("batch", 2).await;
    metric(&a, "not-a-number").await;
    let so = a
        .wait_for(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "apps",
            "batch",
            "TriggerError",
            |o| cond(o, "Ready")["reason"] == "TriggerError",
        )
        .await;
    assert_eq!(cond(&so, "Ready")["status"], "False");
    a.stays("batch", 2, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replicas_holds_a_scaled_object_target_at_that_count() {
    let a = bed().await;
    metric(&a, "5").await;
    a.deployment("render", 2, json!({})).await;
    scaled_object(&a, "render", 1, json!({})).await;
    a.wait_for(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "apps",
        "keda-hpa-render",
        "KEDA's HPA",
        |_| true,
    )
    .await;
    a.merge(
        "keda.sh/v1alpha1",
        "ScaledObject",
        "apps",
        "render",
        json!({ "metadata": { "annotations": {
        "autoscaling.keda.sh/paused-replicas": "0" } } }),
    )
    .await;
    a.wait_replicas("render", 0).await;
    let so = a
        .wait_for(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "apps",
            "render",
            "Paused=True",
            |o| cond(o, "Paused")["status"] == "True",
        )
        .await;
    assert_eq!(cond(&so, "Paused")["reason"], "ScaledObjectPaused");
    assert_eq!(so["status"]["pausedReplicaCount"], 0);
    a.gone(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "apps",
        "keda-hpa-render",
    )
    .await;
    // The trigger is active, yet the target stays at 0; moved off, it is put back.
    a.stays("render", 0, Duration::from_millis(2500)).await;
    a.scale("render", 3).await;
    a.wait_replicas("render", 0).await;

    a.merge(
        "keda.sh/v1alpha1",
        "ScaledObject",
        "apps",
        "render",
        json!({ "metadata": { "annotations": {
        "autoscaling.keda.sh/paused-replicas": null } } }),
    )
    .await;
    let so = a
        .wait_for(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "apps",
            "render",
            "Paused=False",
            |o| cond(o, "Paused")["status"] == "False",
        )
        .await;
    assert_eq!(cond(&so, "Paused")["reason"], "ScaledObjectUnpaused");
    assert!(so["status"]["pausedReplicaCount"].is_null());
    a.wait_replicas("render", 1).await;
    a.wait_for(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "apps",
        "keda-hpa-render",
        "KEDA's HPA again",
        |_| true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leaves_a_scaled_object_target_where_it_is() {
    let a = bed().await;
    metric(&a, "5").await;
    a.deployment("index", 2, json!({})).await;
    scaled_object(
        &a,
        "index",
        1,
        json!({ "autoscaling.keda.sh/paused": "true" }),
    )
    .await;
    let so = a
        .wait_for(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "apps",
            "index",
            "Paused=True",
            |o| cond(o, "Paused")["status"] == "True",
        )
        .await;
    assert!(so["status"]["pausedReplicaCount"].is_null());
    // Idle trigger, 1 s cooldown: paused, nothing scales it down.
    metric(&a, "0").await;
    a.stays("index", 2, Duration::from_millis(2500)).await;
    let hpas = a.api("autoscaling/v2", "HorizontalPodAutoscaler", Some("apps"));
    assert!(hpas.get_opt("keda-hpa-index").await.unwrap().is_none());
    a.merge(
        "keda.sh/v1alpha1",
        "ScaledObject",
        "apps",
        "index",
        json!({ "metadata": { "annotations": {
        "autoscaling.keda.sh/paused": null } } }),
    )
    .await;
    a.wait_replicas("index", 0).await;
}

// --- The `shapes` scenario -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shapes_scenario_seeds_blue_ready_with_every_claim_bound() {
    use baton_sim::estate::{Estate, EstateOptions};
    let s = Scenario::load("default").unwrap();
    let estate = Estate::start(EstateOptions {
        clusters: s.cluster_specs(),
        aws_endpoint: Some(common::estate::moto_endpoint()),
        ..EstateOptions::default()
    })
    .await
    .expect("estate starts");
    let started = std::time::Instant::now();
    let seeded = scenario::seed(&estate, &s, Duration::from_secs(120))
        .await
        .expect("shapes seeds");
    eprintln!("shapes seeded in {:.1}s", started.elapsed().as_secs_f64());
    let kc = tempfile::tempdir().unwrap();
    let path = kc.path().join("kubeconfig");
    estate.server.kubeconfig().write(&path).unwrap();
    let blue = baton_kube::KubeconfigSource::file(&path)
        .client("blue")
        .await
        .unwrap();
    let green = baton_kube::KubeconfigSource::file(&path)
        .client("green")
        .await
        .unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::all(blue.clone());
    let claims = claims.list(&ListParams::default()).await.unwrap().items;
    let mut names: Vec<String> = claims
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c.metadata.namespace.as_deref().unwrap(),
                c.metadata.name.as_deref().unwrap()
            )
        })
        .collect();
    names.sort();
    for want in [
        "archive/archive-data",
        "catalog/data-catalog-db-0",
        "jobs/report-worker-data",
        "ledger/data-ledger-db-0",
        "media/thumbnailer-data",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "blue has claim {want}: {names:?}"
        );
    }
    for c in &claims {
        assert_eq!(
            c.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Bound"),
            "claim {:?} is bound",
            c.metadata.name
        );
    }
    let deploys: Api<Deployment> = Api::all(blue.clone());
    for d in deploys.list(&ListParams::default()).await.unwrap().items {
        let st = d.status.unwrap_or_default();
        assert_eq!(
            st.ready_replicas.unwrap_or(0),
            d.spec.unwrap().replicas.unwrap_or(1),
            "{:?} ready",
            d.metadata.name
        );
    }
    // Green: the same apps at 0, no standalone claims, no GitOps or autoscaling kinds.
    let green_claims: Api<PersistentVolumeClaim> = Api::all(green.clone());
    assert!(
        green_claims
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let green_deploys: Api<Deployment> = Api::namespaced(green.clone(), "jobs");
    assert_eq!(
        green_deploys
            .get("report-worker")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );
    let green_cluster = &estate.server.cluster("green").unwrap().cluster;
    assert!(
        green_cluster
            .def("argoproj.io", "v1alpha1", "applications")
            .is_none()
    );
    assert!(
        green_cluster
            .def("keda.sh", "v1alpha1", "scaledobjects")
            .is_none()
    );
    // Blue's adversaries act: the Application and the Kustomization are Synced/Ready,
    // KEDA's HPA exists and its trigger is active.
    let blue_cluster = &estate.server.cluster("blue").unwrap().cluster;
    let get = |group: &str, plural: &str, ns: &str, name: &str| {
        let gr = baton_sim::resources::GroupResource {
            group: group.into(),
            plural: plural.into(),
        };
        blue_cluster
            .store
            .txn(|t| t.get(&gr, ns, name))
            .map(|o| (*o).clone())
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let app = get("argoproj.io", "applications", "argocd", "catalog");
        let ks = get(
            "kustomize.toolkit.fluxcd.io",
            "kustomizations",
            "flux-system",
            "ledger",
        );
        let so = get("keda.sh", "scaledobjects", "jobs", "report-worker");
        let hpa = get(
            "autoscaling",
            "horizontalpodautoscalers",
            "jobs",
            "keda-hpa-report-worker",
        );
        let ok = app.as_ref().is_some_and(|a| {
            a["status"]["sync"]["status"] == "Synced"
                && a["status"]["resources"]
                    .as_array()
                    .is_some_and(|r| r.len() == 1)
        }) && ks.as_ref().is_some_and(|k| {
            cond(k, "Ready")["status"] == "True"
                && k["status"]["inventory"]["entries"]
                    .as_array()
                    .is_some_and(|e| e.len() == 2)
        }) && so
            .as_ref()
            .is_some_and(|s| cond(s, "Active")["status"] == "True")
            && hpa.is_some();
        if ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "blue's adversaries did not settle: {app:?} {ks:?} {so:?} {hpa:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seeded.seconds > 0.0);
    estate.shutdown().await;
}
