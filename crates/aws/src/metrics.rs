//! CloudWatch numbers that gate a traffic step: how many requests a target group served
//! and how many of them its targets answered with 5xx, over a window, from the ALB
//! metrics (`AWS/ApplicationELB`, dimensions `TargetGroup` + `LoadBalancer`). Also the
//! write side, for the emulator to publish what its fake traffic did.
//!
//! GetMetricData is used (one call for both metrics). CloudWatch keys a metric by its
//! exact dimension set: a query for `TargetGroup` + `LoadBalancer` sums none of the
//! `LoadBalancer`-only datapoints, and moto matches the same way (it compares the sorted
//! sets; its sort key is broken, so moto matches only sets given in the same order, which
//! [`AlbDimensions`] always writes and reads in). moto keeps every datapoint with the
//! timestamp it was put with and sums those in `[start, end)`, both cut to whole
//! seconds. The CloudWatch crate is pinned to the last release that speaks the AWS Query
//! protocol, the newest protocol moto understands (see Cargo.toml).

use std::time::SystemTime;

use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, StandardUnit,
};

use crate::client::Aws;
use crate::error::Error;
use crate::time;

/// The ALB namespace.
pub const ALB_NAMESPACE: &str = "AWS/ApplicationELB";

/// The dimension values CloudWatch uses for a target group behind an ALB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbMetricDims {
    /// `app/<name>/<id>`: the load balancer ARN after `loadbalancer/`.
    pub load_balancer: String,
    /// `targetgroup/<name>/<id>`: the target group ARN's resource part.
    pub target_group: String,
}

impl AlbMetricDims {
    /// Derives the dimension values from the two ARNs, as CloudWatch does; `None` when an
    /// ARN is not an ALB/target-group ARN.
    pub fn from_arns(load_balancer_arn: &str, target_group_arn: &str) -> Option<Self> {
        let (_, lb) = load_balancer_arn.split_once(":loadbalancer/")?;
        let tg_start = target_group_arn.find(":targetgroup/")?;
        Some(Self {
            load_balancer: lb.to_owned(),
            target_group: target_group_arn[tg_start + 1..].to_owned(),
        })
    }

    fn dimensions(&self) -> Vec<Dimension> {
        AlbDimensions::TargetGroup(self.clone()).dimensions()
    }
}

/// The dimension set an ALB metric's datapoint is published under. The ALB publishes a
/// target group's `RequestCount` and `HTTPCode_Target_5XX_Count` under `TargetGroup` +
/// `LoadBalancer` and, summed over its groups, `LoadBalancer` (also per zone, which the
/// bed does not model); its own answers (`HTTPCode_ELB_5XX_Count`) under `LoadBalancer`
/// (AWS docs, "CloudWatch metrics for your Application Load Balancer").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlbDimensions {
    /// `LoadBalancer` (`app/<name>/<id>`): the whole load balancer.
    LoadBalancer(String),
    /// `TargetGroup` + `LoadBalancer`: one target group behind one load balancer.
    TargetGroup(AlbMetricDims),
    /// `TargetGroup` alone (`targetgroup/<name>/<id>`): the set of the per-target
    /// metrics (`RequestCountPerTarget`); `RequestCount` is not published under it.
    TargetGroupAlone(String),
}

impl AlbDimensions {
    fn dimensions(&self) -> Vec<Dimension> {
        let dim = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
        match self {
            AlbDimensions::LoadBalancer(lb) => vec![dim("LoadBalancer", lb)],
            // This order, always: moto matches a set only in the order it was put.
            AlbDimensions::TargetGroup(d) => vec![
                dim("TargetGroup", &d.target_group),
                dim("LoadBalancer", &d.load_balancer),
            ],
            AlbDimensions::TargetGroupAlone(tg) => vec![dim("TargetGroup", tg)],
        }
    }

    /// What the datapoints are of, for messages.
    fn resource(&self) -> &str {
        match self {
            AlbDimensions::LoadBalancer(lb) => lb,
            AlbDimensions::TargetGroup(d) => &d.target_group,
            AlbDimensions::TargetGroupAlone(tg) => tg,
        }
    }
}

/// One datapoint of an ALB metric (a count, unit `Count`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlbDatum {
    /// `RequestCount`, `HTTPCode_Target_5XX_Count`, `HTTPCode_ELB_5XX_Count`, …
    pub metric: &'static str,
    /// Its dimension set.
    pub dimensions: AlbDimensions,
    /// The count.
    pub value: f64,
}

/// Datapoints in one PutMetricData: AWS takes at most 1000 metrics per request.
const PUT_BATCH: usize = 1000;

/// Sums over a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestStats {
    /// Sum of `RequestCount`.
    pub requests: f64,
    /// Sum of `HTTPCode_Target_5XX_Count`.
    pub target_5xx: f64,
}

impl RequestStats {
    /// 5xx answers per request, 0 when there were no requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests > 0.0 {
            self.target_5xx / self.requests
        } else {
            0.0
        }
    }
}

/// CloudWatch's smallest period for standard-resolution metrics.
const PERIOD_SECONDS: i32 = 60;

impl Aws {
    /// Sums of `RequestCount` and `HTTPCode_Target_5XX_Count` for the target group over
    /// `[start, end)`, in one-minute periods.
    pub async fn target_group_request_stats(
        &self,
        dims: &AlbMetricDims,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<RequestStats, Error> {
        let call = self.call("read request metrics of", &dims.target_group);
        if end <= start {
            return Err(call.invalid("the window must end after it starts"));
        }
        let query = |id: &str, name: &str| {
            MetricDataQuery::builder()
                .id(id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(ALB_NAMESPACE)
                                .metric_name(name)
                                .set_dimensions(Some(dims.dimensions()))
                                .build(),
                        )
                        .period(PERIOD_SECONDS)
                        .stat("Sum")
                        .build(),
                )
                .return_data(true)
                .build()
        };
        let pages = self
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query("requests", "RequestCount"))
            .metric_data_queries(query("target5xx", "HTTPCode_Target_5XX_Count"))
            .start_time(time::to_sdk(start))
            .end_time(time::to_sdk(end))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        let mut stats = RequestStats::default();
        for r in pages.iter().flat_map(|p| p.metric_data_results()) {
            let sum: f64 = r.values().iter().sum();
            match r.id() {
                Some("requests") => stats.requests += sum,
                Some("target5xx") => stats.target_5xx += sum,
                _ => {}
            }
        }
        Ok(stats)
    }

    /// The `Sum` of one ALB metric under exactly `dimensions` over `[start, end)`, in
    /// one-minute periods; `None` when the window holds no datapoint at all (an ALB
    /// publishes none while no requests flow), which a reader takes as 0, while `Some(0.0)`
    /// would be datapoints of 0.
    pub async fn alb_metric_sum(
        &self,
        metric: &str,
        dimensions: &AlbDimensions,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<Option<f64>, Error> {
        let call = self.call("read ALB metrics of", dimensions.resource());
        if end <= start {
            return Err(call.invalid("the window must end after it starts"));
        }
        let pages = self
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(
                MetricDataQuery::builder()
                    .id("sum")
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace(ALB_NAMESPACE)
                                    .metric_name(metric)
                                    .set_dimensions(Some(dimensions.dimensions()))
                                    .build(),
                            )
                            .period(PERIOD_SECONDS)
                            .stat("Sum")
                            .build(),
                    )
                    .return_data(true)
                    .build(),
            )
            .start_time(time::to_sdk(start))
            .end_time(time::to_sdk(end))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        // CloudWatch (and moto) return a value only for a period holding datapoints.
        let values: Vec<f64> = pages
            .iter()
            .flat_map(|p| p.metric_data_results())
            .flat_map(|r| r.values())
            .copied()
            .collect();
        Ok((!values.is_empty()).then(|| values.iter().sum()))
    }

    /// Publishes ALB datapoints stamped `at`, as the load balancer does; for the
    /// emulator's ALB clients. Nothing is sent for no datapoints.
    pub async fn put_alb_metrics(&self, at: SystemTime, data: &[AlbDatum]) -> Result<(), Error> {
        for batch in data.chunks(PUT_BATCH) {
            let call = self.call("publish ALB metrics of", batch[0].dimensions.resource());
            let datums = batch.iter().map(|d| {
                MetricDatum::builder()
                    .metric_name(d.metric)
                    .set_dimensions(Some(d.dimensions.dimensions()))
                    .timestamp(time::to_sdk(at))
                    .value(d.value)
                    .unit(StandardUnit::Count)
                    .build()
            });
            self.cloudwatch
                .put_metric_data()
                .namespace(ALB_NAMESPACE)
                .set_metric_data(Some(datums.collect()))
                .send()
                .await
                .map_err(|e| call.sdk(e))?;
        }
        Ok(())
    }

    /// Publishes one minute of ALB request metrics for a target group: what an ALB
    /// reports, for the emulator to stand in for real traffic.
    pub async fn put_target_group_request_stats(
        &self,
        dims: &AlbMetricDims,
        at: SystemTime,
        stats: RequestStats,
    ) -> Result<(), Error> {
        let call = self.call("publish request metrics of", &dims.target_group);
        let datum = |name: &str, value: f64| {
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dims.dimensions()))
                .timestamp(time::to_sdk(at))
                .value(value)
                .unit(StandardUnit::Count)
                .build()
        };
        self.cloudwatch
            .put_metric_data()
            .namespace(ALB_NAMESPACE)
            .metric_data(datum("RequestCount", stats.requests))
            .metric_data(datum("HTTPCode_Target_5XX_Count", stats.target_5xx))
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_come_from_the_arns_as_cloudwatch_names_them() {
        let dims = AlbMetricDims::from_arns(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/73e2d6bc24d8a067",
        )
        .expect("valid ARNs");
        assert_eq!(dims.load_balancer, "app/web/50dc6c495c0c9188");
        assert_eq!(dims.target_group, "targetgroup/green/73e2d6bc24d8a067");
        assert_eq!(AlbMetricDims::from_arns("vol-1", "tg"), None);
    }

    #[test]
    fn error_rate_is_zero_without_requests() {
        assert_eq!(RequestStats::default().error_rate(), 0.0);
        let stats = RequestStats {
            requests: 200.0,
            target_5xx: 5.0,
        };
        assert_eq!(stats.error_rate(), 0.025);
    }
}
