//! CloudWatch against moto: request and 5xx sums of one target group over a window.

mod common;

use std::time::{Duration, SystemTime};

use baton_aws::{AlbMetricDims, Error, RequestStats};

fn dims(name: &str) -> AlbMetricDims {
    AlbMetricDims::from_arns(
        &format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/{name}/50dc6c495c0c9188"),
        &format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/73e2d6bc24d8a067"),
    )
    .expect("ALB ARNs")
}

#[tokio::test]
async fn sums_requests_and_5xx_of_one_target_group_over_the_window() {
    let aws = common::aws().await;
    let green = dims(&common::unique("green"));
    let blue = dims(&common::unique("blue"));
    let now = SystemTime::now();
    let minutes_ago = |m: u64| now - Duration::from_secs(60 * m);
    let put = |d: AlbMetricDims, at: SystemTime, requests: f64, target_5xx: f64| {
        let aws = aws.clone();
        async move {
            aws.put_target_group_request_stats(
                &d,
                at,
                RequestStats {
                    requests,
                    target_5xx,
                },
            )
            .await
            .expect("put metrics");
        }
    };
    put(green.clone(), minutes_ago(3), 100.0, 3.0).await;
    put(green.clone(), minutes_ago(2), 50.0, 2.0).await;
    put(green.clone(), minutes_ago(30), 1000.0, 1000.0).await;
    put(blue.clone(), minutes_ago(2), 999.0, 999.0).await;

    let stats = aws
        .target_group_request_stats(&green, minutes_ago(10), now)
        .await
        .expect("read metrics");
    assert_eq!(
        stats,
        RequestStats {
            requests: 150.0,
            target_5xx: 5.0
        }
    );
    assert!((stats.error_rate() - 5.0 / 150.0).abs() < 1e-9);

    let quiet = aws
        .target_group_request_stats(&dims(&common::unique("unused")), minutes_ago(10), now)
        .await
        .expect("read metrics of an idle group");
    assert_eq!(quiet, RequestStats::default());
}

#[tokio::test]
async fn an_empty_window_is_refused() {
    let aws = common::aws().await;
    let now = SystemTime::now();
    let err = aws
        .target_group_request_stats(&dims("x"), now, now)
        .await
        .expect_err("empty window");
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn alb_metrics_are_summed_per_exact_dimension_set() {
    use baton_aws::{AlbDatum, AlbDimensions};
    let aws = common::aws().await;
    let group = dims(&common::unique("exact"));
    let now = SystemTime::now();
    let datum = |metric, dimensions, value| AlbDatum {
        metric,
        dimensions,
        value,
    };
    aws.put_alb_metrics(
        now - Duration::from_secs(5),
        &[
            datum(
                "RequestCount",
                AlbDimensions::TargetGroup(group.clone()),
                40.0,
            ),
            datum(
                "RequestCount",
                AlbDimensions::LoadBalancer(group.load_balancer.clone()),
                70.0,
            ),
            datum(
                "HTTPCode_ELB_5XX_Count",
                AlbDimensions::LoadBalancer(group.load_balancer.clone()),
                3.0,
            ),
        ],
    )
    .await
    .expect("put metrics");
    let sum = |metric: &'static str, d: AlbDimensions| {
        let aws = aws.clone();
        async move {
            aws.alb_metric_sum(metric, &d, now - Duration::from_secs(60), now)
                .await
                .expect("read metrics")
        }
    };
    let lb = || AlbDimensions::LoadBalancer(group.load_balancer.clone());
    assert_eq!(
        sum("RequestCount", AlbDimensions::TargetGroup(group.clone())).await,
        Some(40.0)
    );
    assert_eq!(sum("RequestCount", lb()).await, Some(70.0));
    assert_eq!(sum("HTTPCode_ELB_5XX_Count", lb()).await, Some(3.0));
    assert_eq!(
        sum(
            "RequestCount",
            AlbDimensions::TargetGroupAlone(group.target_group.clone())
        )
        .await,
        None,
        "no datapoint was put under TargetGroup alone"
    );
    // A datapoint of 0 is one: it is told apart from none.
    aws.put_alb_metrics(
        now - Duration::from_secs(5),
        &[datum(
            "HTTPCode_Target_5XX_Count",
            AlbDimensions::TargetGroup(group.clone()),
            0.0,
        )],
    )
    .await
    .expect("put metrics");
    assert_eq!(
        sum(
            "HTTPCode_Target_5XX_Count",
            AlbDimensions::TargetGroup(group.clone())
        )
        .await,
        Some(0.0)
    );
    assert_eq!(
        sum("HTTPCode_Target_5XX_Count", lb()).await,
        None,
        "nothing under the load balancer's set"
    );
    // The gate's reading sees the group's own set only.
    let stats = aws
        .target_group_request_stats(&group, now - Duration::from_secs(60), now)
        .await
        .expect("read metrics");
    assert_eq!(stats.requests, 40.0);
}
