//! The ALB's clients and the CloudWatch metrics the ALB publishes of them
//! (`crates/sim/src/traffic.rs`), read back as baton reads them (`baton_aws`): each test
//! pins one fact of a real ALB. Every test has its own estate (no nodes) on this
//! binary's moto, its own VPC, ALB, target groups and listener, and sends clients to that
//! ALB only, so tests running at once never count each other's requests.

mod common;

use std::time::SystemTime;

use baton_aws::{
    AlbDimensions, AlbMetricDims, Aws, ForwardConfig, ForwardTarget, WeightedTargetGroup,
};
use baton_sim::faults::{AwsFault, AwsRule};
use baton_sim::traffic::TICK;
use common::estate::EstateBed;

/// Requests per second the tests' clients send.
const RATE: f64 = 200.0;

struct Alb {
    bed: EstateBed,
    lb: String,
    listener: String,
    blue: String,
    green: String,
}

impl Alb {
    /// An ALB whose listener forwards 100/0 to blue/green, blue with a target, green with
    /// one when `green_targets`; no clients yet.
    async fn start(green_targets: bool) -> Self {
        let bed = EstateBed::start(0).await;
        let aws = &bed.estate.aws;
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let subnets: Vec<String> = bed.subnets.iter().map(|(_, s)| s.clone()).collect();
        let lb = aws
            .create_load_balancer(&format!("alb-{id}"), &subnets, &[])
            .await
            .unwrap();
        let blue = aws
            .create_target_group(&format!("blue-{id}"), &bed.vpc, 8080)
            .await
            .unwrap();
        let green = aws
            .create_target_group(&format!("green-{id}"), &bed.vpc, 8080)
            .await
            .unwrap();
        aws.register_ip_targets(&blue, &["10.200.0.10".to_string()], 8080)
            .await
            .unwrap();
        if green_targets {
            aws.register_ip_targets(&green, &["10.200.0.20".to_string()], 8080)
                .await
                .unwrap();
        }
        let listener = aws.create_listener(&lb, 80, &blue).await.unwrap();
        let alb = Self {
            bed,
            lb,
            listener,
            blue,
            green,
        };
        alb.weights(100, 0).await;
        alb
    }

    fn aws(&self) -> &Aws {
        &self.bed.estate.aws
    }

    async fn weights(&self, blue: u32, green: u32) {
        let group = |arn: &str, weight| WeightedTargetGroup {
            arn: arn.to_owned(),
            weight,
        };
        self.aws()
            .set_forward(
                &ForwardTarget::ListenerDefault(self.listener.clone()),
                None,
                &ForwardConfig {
                    target_groups: vec![group(&self.blue, blue), group(&self.green, green)],
                    stickiness: None,
                },
            )
            .await
            .unwrap();
    }

    fn group(&self, tg: &str) -> AlbDimensions {
        AlbDimensions::TargetGroup(AlbMetricDims::from_arns(&self.lb, tg).unwrap())
    }

    fn load_balancer(&self) -> AlbDimensions {
        AlbDimensions::LoadBalancer(self.lb.split_once(":loadbalancer/").unwrap().1.into())
    }

    /// The metric's sum under `dims` since `from` (`None`: no datapoint).
    async fn sum(&self, metric: &str, dims: &AlbDimensions, from: SystemTime) -> Option<f64> {
        self.aws()
            .alb_metric_sum(metric, dims, from, SystemTime::now() + TICK)
            .await
            .unwrap()
    }

    async fn requests(&self, tg: &str, from: SystemTime) -> f64 {
        self.sum("RequestCount", &self.group(tg), from)
            .await
            .unwrap_or(0.0)
    }
}

/// Waits `ticks` of the clients' loop.
async fn ticks(ticks: u32) {
    tokio::time::sleep(TICK * ticks).await;
}

/// A moment safely after every tick that began before now: a tick reads the weights,
/// then publishes its requests stamped with its end.
async fn settled() -> SystemTime {
    ticks(2).await;
    let at = SystemTime::now();
    ticks(1).await;
    at
}

#[tokio::test]
async fn alb_counts_requests_only_for_groups_with_weight() {
    let alb = Alb::start(true).await;
    let start = SystemTime::now();
    alb.bed.estate.traffic.send(&alb.lb, RATE);
    ticks(4).await;
    assert!(alb.requests(&alb.blue, start).await > 0.0);
    assert_eq!(
        alb.sum("RequestCount", &alb.group(&alb.green), start).await,
        None,
        "weight 0: green gets nothing"
    );
    // 75/25: the requests follow the weights.
    alb.weights(3, 1).await;
    let from = settled().await;
    ticks(4).await;
    let (blue, green) = (
        alb.requests(&alb.blue, from).await,
        alb.requests(&alb.green, from).await,
    );
    let share = green / (blue + green);
    assert!(
        (0.2..=0.3).contains(&share),
        "green's share {share}: {green} of {blue} + {green}"
    );
}

#[tokio::test]
async fn alb_moves_requests_when_the_listener_weights_change() {
    let alb = Alb::start(true).await;
    let start = SystemTime::now();
    alb.bed.estate.traffic.send(&alb.lb, RATE);
    ticks(3).await;
    assert!(alb.requests(&alb.blue, start).await > 0.0);

    alb.weights(0, 100).await;
    let quiet_from = settled().await;
    let blue_then = alb.requests(&alb.blue, start).await;
    ticks(3).await;
    assert_eq!(
        alb.requests(&alb.blue, start).await,
        blue_then,
        "blue's sum stops growing"
    );
    assert_eq!(
        alb.sum("RequestCount", &alb.group(&alb.blue), quiet_from)
            .await,
        None,
        "no datapoint for blue since the change"
    );
    let green_then = alb.requests(&alb.green, start).await;
    assert!(green_then > 0.0);
    ticks(2).await;
    assert!(
        alb.requests(&alb.green, start).await > green_then,
        "green's grows"
    );

    // Back by hand: blue serves again.
    alb.weights(100, 0).await;
    let from = settled().await;
    ticks(2).await;
    assert!(alb.requests(&alb.blue, from).await > 0.0);
}

#[tokio::test]
async fn alb_answers_503_itself_for_a_group_without_targets() {
    let alb = Alb::start(false).await;
    alb.weights(0, 100).await;
    let start = SystemTime::now();
    alb.bed.estate.traffic.send(&alb.lb, RATE);
    ticks(4).await;
    assert_eq!(
        alb.sum("RequestCount", &alb.group(&alb.green), start).await,
        None,
        "a group without targets serves nothing"
    );
    let lb = alb.load_balancer();
    let refused = alb.sum("HTTPCode_ELB_5XX_Count", &lb, start).await;
    assert!(refused.is_some_and(|n| n > 0.0), "{refused:?}");
    assert_eq!(alb.sum("HTTPCode_ELB_503_Count", &lb, start).await, refused);
    assert_eq!(
        alb.sum("RequestCount", &lb, start).await,
        None,
        "RequestCount counts only requests a target answered"
    );
    // A target registered: the group serves.
    alb.aws()
        .register_ip_targets(&alb.green, &["10.200.0.30".to_string()], 8080)
        .await
        .unwrap();
    let from = settled().await;
    ticks(2).await;
    assert!(alb.requests(&alb.green, from).await > 0.0);
}

#[tokio::test]
async fn alb_publishes_no_datapoint_without_requests() {
    let alb = Alb::start(true).await;
    let start = SystemTime::now();
    alb.bed.estate.traffic.send(&alb.lb, RATE);
    ticks(4).await;
    assert!(alb.requests(&alb.blue, start).await > 0.0);
    for (metric, tg) in [
        ("RequestCount", &alb.green),
        ("HTTPCode_Target_5XX_Count", &alb.green),
        ("HTTPCode_Target_5XX_Count", &alb.blue),
    ] {
        assert_eq!(
            alb.sum(metric, &alb.group(tg), start).await,
            None,
            "{metric} of {tg}: no datapoint, not a 0"
        );
    }
    assert_eq!(
        alb.sum("HTTPCode_ELB_5XX_Count", &alb.load_balancer(), start)
            .await,
        None
    );
    // No clients: nothing at all.
    alb.bed.estate.traffic.send(&alb.lb, 0.0);
    let from = settled().await;
    ticks(2).await;
    assert_eq!(
        alb.sum("RequestCount", &alb.load_balancer(), from).await,
        None
    );
}

#[tokio::test]
async fn alb_publishes_target_group_and_load_balancer_dimensions() {
    let alb = Alb::start(true).await;
    alb.weights(1, 1).await;
    let start = SystemTime::now() - TICK;
    alb.bed.estate.traffic.send(&alb.lb, RATE);
    ticks(4).await;
    alb.bed.estate.traffic.send(&alb.lb, 0.0);
    ticks(3).await;
    let served = |tg: &str| alb.bed.estate.traffic.served(tg) as f64;
    let (blue, green) = (served(&alb.blue), served(&alb.green));
    assert!(blue > 0.0 && green > 0.0, "{blue} {green}");
    assert_eq!(alb.requests(&alb.blue, start).await, blue);
    assert_eq!(alb.requests(&alb.green, start).await, green);
    assert_eq!(
        alb.sum("RequestCount", &alb.load_balancer(), start).await,
        Some(blue + green),
        "the load balancer's set sums its groups"
    );
    assert_eq!(
        alb.sum(
            "RequestCount",
            &AlbDimensions::TargetGroupAlone(
                AlbMetricDims::from_arns(&alb.lb, &alb.blue)
                    .unwrap()
                    .target_group
            ),
            start
        )
        .await,
        None,
        "AWS lists no TargetGroup-only set for RequestCount"
    );
    // What `baton traffic shift` and `baton retire plan` read.
    let stats = alb
        .aws()
        .target_group_request_stats(
            &AlbMetricDims::from_arns(&alb.lb, &alb.blue).unwrap(),
            start,
            SystemTime::now(),
        )
        .await
        .unwrap();
    assert_eq!(stats.requests, blue);
    assert_eq!(stats.target_5xx, 0.0);
}

#[tokio::test]
async fn alb_counts_target_5xx_for_the_share_its_targets_fail() {
    let alb = Alb::start(true).await;
    alb.bed.estate.traffic.target_errors(&alb.blue, 0.1);
    let start = SystemTime::now();
    alb.bed.estate.traffic.send(&alb.lb, RATE);
    ticks(4).await;
    let stats = alb
        .aws()
        .target_group_request_stats(
            &AlbMetricDims::from_arns(&alb.lb, &alb.blue).unwrap(),
            start,
            SystemTime::now() + TICK,
        )
        .await
        .unwrap();
    assert!(stats.requests > 0.0);
    assert!(
        (0.08..=0.1 + 1e-9).contains(&stats.error_rate()),
        "{stats:?}: one request in ten"
    );
    assert_eq!(
        alb.sum("HTTPCode_Target_5XX_Count", &alb.load_balancer(), start)
            .await,
        Some(stats.target_5xx)
    );
}

#[tokio::test]
async fn alb_clients_keep_going_through_aws_faults() {
    let alb = Alb::start(true).await;
    // Every AWS call through the estate's endpoint is throttled: baton's and the
    // controllers' calls, not the ALB's own.
    alb.bed
        .estate
        .aws_proxy
        .knobs()
        .inject(AwsRule::rate(1.0, AwsFault::Throttle));
    let start = SystemTime::now();
    alb.bed.estate.traffic.send(&alb.lb, RATE);
    ticks(4).await;
    alb.bed.estate.aws_proxy.knobs().clear_faults();
    assert!(alb.requests(&alb.blue, start).await > 0.0);
}
