//! The knobs over real HTTP: latency, faults at the Nth matching request or by rate, the
//! same faults from the same seed, throttling that clients ride out, and request logs
//! that count what was sent — on the emulated Kubernetes API and through the AWS fault
//! proxy in front of moto.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_aws::{Aws, RetryPolicy};
use baton_sim::ClusterSpec;
use baton_sim::estate::aws_config;
use baton_sim::faults::{
    ApiFault, ApiRule, AwsFault, AwsKnobs, AwsProxy, AwsRule, Knobs, Latency, debug_request,
};
use common::Bed;
use http::Method;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn bed() -> Bed {
    Bed::with(vec![ClusterSpec::new("blue", "v1.27.16-eks-2f008fe")]).await
}

fn knobs(bed: &Bed) -> &Arc<Knobs> {
    &bed.cluster("blue").knobs
}

/// A kube client without kube-rs' built-in retry of 429/503/504, to see raw answers.
async fn raw_client(bed: &Bed) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&bed.kubeconfig).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some("blue".into()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// The API's `Status` code and reason of a failed call.
fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API Status error, got {other:?}"),
    }
}

async fn create_statefulset(client: &kube::Client) -> Api<StatefulSet> {
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let obj: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "db" },
        "spec": {
            "serviceName": "db",
            "replicas": 1,
            "selector": { "matchLabels": { "app": "db" } },
            "template": {
                "metadata": { "labels": { "app": "db" } },
                "spec": { "containers": [{ "name": "db", "image": "postgres:16" }] }
            }
        }
    }))
    .unwrap();
    sts.create(&PostParams::default(), &obj).await.unwrap();
    sts
}

fn replicas(n: i32) -> Patch<Value> {
    Patch::Merge(json!({ "spec": { "replicas": n } }))
}

#[tokio::test]
async fn latency_delays_every_request_by_at_least_the_setting() {
    let bed = bed().await;
    let client = bed.client("blue").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    knobs(&bed).set_latency(Latency::fixed(Duration::from_millis(250)));
    knobs(&bed).clear_requests();

    let started = Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    cms.get_opt("absent").await.unwrap();
    let elapsed = started.elapsed();

    assert!(
        elapsed >= Duration::from_millis(500),
        "two requests at 250 ms each took {elapsed:?}"
    );
    let log = knobs(&bed).requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter()
            .all(|r| r.latency >= Duration::from_millis(250) && r.fault.is_none()),
        "{log:?}"
    );
    assert_eq!(log[1].status, Some(404));

    knobs(&bed).set_latency(Latency {
        fixed: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
    });
    cms.list(&ListParams::default()).await.unwrap();
    let last = knobs(&bed).requests().pop().unwrap();
    assert!(last.latency >= Duration::from_millis(100), "{last:?}");
}

#[tokio::test]
async fn nth_fault_hits_exactly_the_nth_matching_request() {
    let bed = bed().await;
    let client = bed.bare("blue").await;
    let sts = create_statefulset(&client).await;
    knobs(&bed).inject(
        ApiRule::nth(3, ApiFault::Conflict)
            .method(Method::PATCH)
            .resource("statefulsets/scale"),
    );
    let pp = PatchParams::default();

    // Matching: 1st, 2nd scale PATCH; the GET of the scale and the PATCH of the object
    // itself in between do not count.
    sts.patch_scale("db", &pp, &replicas(2)).await.unwrap();
    sts.get_scale("db").await.unwrap();
    sts.patch(
        "db",
        &pp,
        &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })),
    )
    .await
    .unwrap();
    sts.patch_scale("db", &pp, &replicas(3)).await.unwrap();
    // The 3rd matching request fails as on a stale resourceVersion …
    let (code, reason) = api_error(sts.patch_scale("db", &pp, &replicas(4)).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    // … and was not served: the scale stays at 3. The 4th goes through.
    assert_eq!(
        sts.get_scale("db").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    sts.patch_scale("db", &pp, &replicas(5)).await.unwrap();
    assert_eq!(sts.get("db").await.unwrap().spec.unwrap().replicas, Some(5));

    let faulted: Vec<_> = knobs(&bed)
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .collect();
    assert_eq!(faulted.len(), 1, "{faulted:?}");
    assert_eq!(
        (
            faulted[0].method.as_str(),
            faulted[0].status,
            faulted[0].fault
        ),
        ("PATCH", Some(409), Some("Conflict"))
    );
    assert!(faulted[0].path.ends_with("/statefulsets/db/scale"));
}

#[tokio::test]
async fn rate_one_fails_every_matching_request_and_rate_zero_none() {
    let bed = bed().await;
    let client = bed.bare("blue").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");

    knobs(&bed).inject(
        ApiRule::rate(1.0, ApiFault::Internal)
            .method(Method::GET)
            .path_contains("/configmaps"),
    );
    for _ in 0..10 {
        let (code, reason) = api_error(cms.list(&ListParams::default()).await);
        assert_eq!((code, reason.as_str()), (500, "InternalError"));
        pods.list(&ListParams::default()).await.unwrap();
    }
    assert_eq!(knobs(&bed).faults(), 10);

    knobs(&bed).clear_faults();
    knobs(&bed).clear_requests();
    knobs(&bed).inject(ApiRule::rate(0.0, ApiFault::Internal));
    for _ in 0..10 {
        cms.list(&ListParams::default()).await.unwrap();
    }
    assert_eq!(knobs(&bed).faults(), 0);
    assert_eq!(knobs(&bed).count("GET", "/configmaps"), 10);
}

#[tokio::test]
async fn same_seed_gives_the_same_faults() {
    let bed = bed().await;
    let cms: Api<ConfigMap> = Api::namespaced(bed.bare("blue").await, "default");
    knobs(&bed).inject(ApiRule::rate(0.5, ApiFault::Internal).path_contains("/configmaps"));

    let run = |seed: u64| {
        let cms = cms.clone();
        let knobs = knobs(&bed).clone();
        async move {
            knobs.reseed(seed);
            let mut failed = Vec::new();
            for _ in 0..40 {
                failed.push(cms.list(&ListParams::default()).await.is_err());
            }
            failed
        }
    };
    let first = run(42).await;
    let again = run(42).await;
    let other = run(7).await;
    assert_eq!(first, again, "same seed, same faults");
    assert_ne!(first, other, "another seed, other faults");
    let failures = first.iter().filter(|f| **f).count();
    assert!(
        (5..=35).contains(&failures),
        "about half of 40 fail, got {failures}"
    );
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_and_kube_rs_waits_for_it() {
    let bed = bed().await;
    knobs(&bed).inject(
        ApiRule::nth(1, ApiFault::TooManyRequests { retry_after: 2 }).path_contains("/namespaces"),
    );

    // Raw: the 429 with its header and Status.
    let raw = raw_client(&bed).await;
    let req = http::Request::get("/api/v1/namespaces")
        .body(kube::client::Body::from(Vec::new()))
        .unwrap();
    let resp = raw.send(req).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let status: Value =
        serde_json::from_slice(&resp.into_body().collect_bytes().await.unwrap()).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], 2);

    // kube-rs' default client retries a 429 after the server's Retry-After.
    knobs(&bed).reseed(0);
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(bed.client("blue").await);
    let started = Instant::now();
    ns.list(&ListParams::default()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let statuses: Vec<_> = knobs(&bed).requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(429), Some(429), Some(200)]);
}

#[tokio::test]
async fn timeout_holds_then_answers_504_and_reset_answers_nothing() {
    let bed = bed().await;
    let raw = raw_client(&bed).await;
    let cms: Api<ConfigMap> = Api::namespaced(raw, "default");
    knobs(&bed).inject(ApiRule::nth(
        1,
        ApiFault::Timeout(Duration::from_millis(300)),
    ));
    knobs(&bed).inject(ApiRule::nth(2, ApiFault::Reset));

    let started = Instant::now();
    let (code, reason) = api_error(cms.list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (504, "Timeout"));
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The connection closes before any answer: a transport error, not a Status.
    match cms.list(&ListParams::default()).await {
        Err(kube::Error::Service(e)) => {
            assert!(format!("{e:?}").contains("SendRequest"), "{e:?}")
        }
        other => panic!("a reset must fail the request unanswered, got {other:?}"),
    }
    cms.list(&ListParams::default()).await.unwrap();

    let log = knobs(&bed).requests();
    let seen: Vec<_> = log.iter().map(|r| (r.status, r.fault)).collect();
    assert_eq!(
        seen,
        vec![
            (Some(504), Some("Timeout")),
            (None, Some("Reset")),
            (Some(200), None)
        ]
    );
}

#[tokio::test]
async fn request_log_counts_what_was_sent_and_is_served_at_debug_requests() {
    let bed = bed().await;
    let client = bed.client("blue").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    knobs(&bed).clear_requests();

    for i in 0..3 {
        pods.list(&ListParams::default().labels("app=db"))
            .await
            .unwrap();
        let cm: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": format!("cm-{i}") } })).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    cms.delete("cm-0", &Default::default()).await.unwrap();

    let k = knobs(&bed);
    assert_eq!(k.count("GET", "/pods"), 3);
    assert_eq!(k.count(Method::POST, "/configmaps"), 3);
    assert_eq!(k.count("DELETE", "/configmaps/cm-0"), 1);
    assert_eq!(k.count("*", ""), 7);
    let log = k.requests();
    assert!(log[0].query.contains("labelSelector=app%3Ddb"), "{log:?}");
    assert_eq!(log[1].status, Some(201));

    let req = http::Request::get("/debug/requests")
        .body(Vec::new())
        .unwrap();
    let doc: Value = client.request(req).await.unwrap();
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items.len(), 7, "reading the log does not add to it");
    assert_eq!(items[6]["method"], "DELETE");
    assert_eq!(k.requests().len(), 7);
}

/// An `Aws` client through the proxy, with short backoff so retries are quick.
async fn aws_through(proxy: &AwsProxy) -> Aws {
    let config = aws_config(&proxy.endpoint(), "us-east-1").retry(RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    });
    Aws::connect(&config).await.unwrap()
}

#[tokio::test]
async fn aws_throttling_burst_is_retried_by_the_sdk_and_logged_per_action() {
    let moto = common::estate::moto_endpoint();
    let knobs = Arc::new(AwsKnobs::new(1));
    let proxy = AwsProxy::start(&moto, knobs.clone()).await.unwrap();
    let aws = aws_through(&proxy).await;

    let vpc = aws
        .create_vpc("10.201.0.0/16", &Default::default())
        .await
        .unwrap();
    // EC2: the 2nd and 3rd DescribeVpcs are throttled (503 RequestLimitExceeded).
    knobs.inject(AwsRule::burst(2, 2, AwsFault::Throttle).action("DescribeVpcs"));
    // ELBv2: the 1st DescribeLoadBalancers is throttled (400 Throttling, Query dialect).
    knobs.inject(AwsRule::nth(1, AwsFault::Throttle).action("DescribeLoadBalancers"));

    aws.describe_vpc(&vpc).await.unwrap();
    aws.describe_vpc(&vpc).await.unwrap();
    aws.describe_load_balancers(&[], &[]).await.unwrap();

    assert_eq!(knobs.count("CreateVpc"), 1);
    assert_eq!(knobs.count("DescribeVpcs"), 4, "1 + 1 with two retries");
    assert_eq!(knobs.count("DescribeLoadBalancers"), 2);
    let faulted: Vec<_> = knobs
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .map(|r| (r.action.unwrap(), r.service.unwrap(), r.status))
        .collect();
    assert_eq!(
        faulted,
        vec![
            ("DescribeVpcs".into(), "ec2".into(), Some(503)),
            ("DescribeVpcs".into(), "ec2".into(), Some(503)),
            (
                "DescribeLoadBalancers".into(),
                "elasticloadbalancing".into(),
                Some(400)
            ),
        ]
    );
    assert_eq!(knobs.counts()["DescribeVpcs"], 4);

    // The same log over HTTP, as the chaos bench reads it; reading it adds nothing.
    for _ in 0..2 {
        let doc = debug_request(&proxy.endpoint(), "GET", "/debug/requests", "")
            .await
            .unwrap();
        assert_eq!(doc["kind"], "RequestLog");
        assert_eq!(doc["dropped"], 0);
        let items = doc["items"].as_array().unwrap();
        assert_eq!(items.len(), 7, "{doc}");
        let faults: Vec<_> = items
            .iter()
            .filter(|r| !r["fault"].is_null())
            .map(|r| (r["action"].as_str().unwrap(), r["status"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            faults,
            [
                ("DescribeVpcs", 503),
                ("DescribeVpcs", 503),
                ("DescribeLoadBalancers", 400)
            ]
        );
        assert_eq!(items[0]["action"], "CreateVpc");
        assert_eq!(items[0]["service"], "ec2");
    }
}

#[tokio::test]
async fn aws_errors_reach_the_caller_with_their_code_and_timeouts_are_retried() {
    let moto = common::estate::moto_endpoint();
    let knobs = Arc::new(AwsKnobs::new(1));
    let proxy = AwsProxy::start(&moto, knobs.clone()).await.unwrap();
    let aws = aws_through(&proxy).await;
    let vpc = aws
        .create_vpc("10.202.0.0/16", &Default::default())
        .await
        .unwrap();

    // A non-retryable error in EC2's dialect reaches baton with its code, once.
    knobs.inject(
        AwsRule::nth(
            1,
            AwsFault::Error {
                status: 400,
                code: "VolumeInUse".into(),
                message: "vol-1 is already attached to an instance".into(),
            },
        )
        .action("DescribeVpcs"),
    );
    let err = aws.describe_vpc(&vpc).await.unwrap_err();
    assert_eq!(err.code(), Some("VolumeInUse"), "{err}");
    assert_eq!(knobs.count("DescribeVpcs"), 1);

    // 500s at a rate of 1.0 exhaust the SDK's attempts.
    knobs.clear_faults();
    knobs.clear_requests();
    knobs.inject(AwsRule::rate(1.0, AwsFault::Internal).action("DescribeVpcs"));
    let err = aws.describe_vpc(&vpc).await.unwrap_err();
    assert_eq!(err.code(), Some("InternalError"), "{err}");
    assert_eq!(knobs.count("DescribeVpcs"), 4, "every attempt failed");

    // A call held and then dropped is retried, and the retry goes through.
    knobs.clear_faults();
    knobs.clear_requests();
    knobs.inject(
        AwsRule::nth(1, AwsFault::Timeout(Duration::from_millis(300))).action("DescribeVpcs"),
    );
    let started = Instant::now();
    aws.describe_vpc(&vpc).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let statuses: Vec<_> = knobs.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![None, Some(200)]);
}
