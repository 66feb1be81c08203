//! ALB state baton reads around a traffic shift: load balancers, listeners, rules,
//! target groups and target health. The forward action itself is read and written in
//! [`crate::elb_forward`].

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types as sdk;

use crate::client::Aws;
use crate::elb_forward::forward_config;
use crate::error::{Call, Error};
use crate::forward::ForwardConfig;

/// The target group attribute holding its deregistration delay, in seconds.
pub const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";

/// A load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// `application`, `network`, `gateway`.
    pub kind: String,
    /// `internet-facing` or `internal`.
    pub scheme: String,
    /// `active`, `provisioning`, `active_impaired`, `failed`.
    pub state: String,
    /// Its DNS name.
    pub dns_name: String,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// Its security groups.
    pub security_groups: Vec<String>,
    /// The zones it serves.
    pub availability_zones: Vec<String>,
}

/// A listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its ARN.
    pub arn: String,
    /// Its load balancer.
    pub load_balancer_arn: String,
    /// Port.
    pub port: Option<i32>,
    /// `HTTP`, `HTTPS`, …
    pub protocol: Option<String>,
    /// Its default actions.
    pub default_actions: Vec<ActionSummary>,
}

/// One action of a listener or rule, enough to see what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSummary {
    /// `forward`, `fixed-response`, `redirect`, `authenticate-oidc`, …
    pub kind: String,
    /// Its order among the actions.
    pub order: Option<i32>,
    /// The forward config of a `forward` action.
    pub forward: Option<ForwardConfig>,
}

/// A listener rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its ARN.
    pub arn: String,
    /// `default` or a number.
    pub priority: String,
    /// Whether this is the listener's default rule.
    pub is_default: bool,
    /// Conditions as field → values (`path-pattern`, `host-header`, …).
    pub conditions: Vec<RuleCondition>,
    /// Its actions.
    pub actions: Vec<ActionSummary>,
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCondition {
    /// `path-pattern`, `host-header`, `http-header`, …
    pub field: String,
    /// The values it matches.
    pub values: Vec<String>,
}

/// A target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// `HTTP`, `HTTPS`, `TCP`, …
    pub protocol: Option<String>,
    /// Port.
    pub port: Option<i32>,
    /// `instance`, `ip`, `lambda`, `alb`.
    pub target_type: Option<String>,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// Health check path.
    pub health_check_path: Option<String>,
    /// The load balancers routing to it.
    pub load_balancer_arns: Vec<String>,
}

/// The health of one registered target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// Instance id, IP address, …
    pub id: String,
    /// Port.
    pub port: Option<i32>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`, …
    pub state: String,
    /// AWS's reason code for a non-healthy state.
    pub reason: Option<String>,
    /// AWS's explanation.
    pub description: Option<String>,
}

impl TargetHealth {
    /// Whether the target takes traffic.
    pub fn is_healthy(&self) -> bool {
        self.state == "healthy"
    }
}

/// The request that deletes a target group (ELBv2 DeleteTargetGroup), printed as
/// `elbv2  DeleteTargetGroup {"TargetGroupArn":"arn:…"}`. AWS refuses a group a
/// listener or rule still forwards to (`ResourceInUse`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteTargetGroup {
    /// The group.
    pub target_group_arn: String,
}

request_line!(DeleteTargetGroup, "elbv2", "DeleteTargetGroup");

fn action(a: &sdk::Action) -> ActionSummary {
    let kind = a
        .r#type()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    ActionSummary {
        forward: (kind == "forward").then(|| forward_config(a)).flatten(),
        kind,
        order: a.order(),
    }
}

fn condition(c: &sdk::RuleCondition) -> RuleCondition {
    // AWS fills either the legacy `Values` or a typed config; read whichever is there.
    let mut values = c.values().to_vec();
    if values.is_empty() {
        if let Some(p) = c.path_pattern_config() {
            values = p.values().to_vec();
        } else if let Some(h) = c.host_header_config() {
            values = h.values().to_vec();
        } else if let Some(m) = c.http_request_method_config() {
            values = m.values().to_vec();
        } else if let Some(s) = c.source_ip_config() {
            values = s.values().to_vec();
        } else if let Some(h) = c.http_header_config() {
            values = h
                .values()
                .iter()
                .map(|v| format!("{}: {v}", h.http_header_name().unwrap_or("")))
                .collect();
        } else if let Some(q) = c.query_string_config() {
            values = q
                .values()
                .iter()
                .map(|kv| format!("{}={}", kv.key().unwrap_or(""), kv.value().unwrap_or("")))
                .collect();
        }
    }
    RuleCondition {
        field: c.field().unwrap_or("").to_owned(),
        values,
    }
}

pub(crate) fn rule(call: &Call, r: &sdk::Rule) -> Result<Rule, Error> {
    Ok(Rule {
        arn: r
            .rule_arn()
            .ok_or_else(|| call.missing("a rule ARN"))?
            .to_owned(),
        priority: r.priority().unwrap_or("").to_owned(),
        is_default: r.is_default().unwrap_or(false),
        conditions: r.conditions().iter().map(condition).collect(),
        actions: r.actions().iter().map(action).collect(),
    })
}

impl Aws {
    /// Load balancers by name or ARN (all when both are empty), across all pages.
    pub async fn describe_load_balancers(
        &self,
        names: &[String],
        arns: &[String],
    ) -> Result<Vec<LoadBalancer>, Error> {
        let call = self.call("describe load balancers", names_or_arns(names, arns));
        let items = self
            .elb
            .describe_load_balancers()
            .set_names((!names.is_empty()).then(|| names.to_vec()))
            .set_load_balancer_arns((!arns.is_empty()).then(|| arns.to_vec()))
            .set_page_size(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        items
            .iter()
            .map(|lb| {
                Ok(LoadBalancer {
                    arn: lb
                        .load_balancer_arn()
                        .ok_or_else(|| call.missing("a load balancer ARN"))?
                        .to_owned(),
                    name: lb.load_balancer_name().unwrap_or("").to_owned(),
                    kind: lb
                        .r#type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    scheme: lb
                        .scheme()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    state: lb
                        .state()
                        .and_then(|s| s.code())
                        .map(|c| c.as_str().to_owned())
                        .unwrap_or_default(),
                    dns_name: lb.dns_name().unwrap_or("").to_owned(),
                    vpc_id: lb.vpc_id().map(str::to_owned),
                    security_groups: lb.security_groups().to_vec(),
                    availability_zones: lb
                        .availability_zones()
                        .iter()
                        .filter_map(|z| z.zone_name().map(str::to_owned))
                        .collect(),
                })
            })
            .collect()
    }

    /// The listeners of a load balancer, across all pages.
    pub async fn describe_listeners(
        &self,
        load_balancer_arn: &str,
    ) -> Result<Vec<Listener>, Error> {
        let call = self.call("describe listeners of", load_balancer_arn);
        let items = self
            .elb
            .describe_listeners()
            .load_balancer_arn(load_balancer_arn)
            .set_page_size(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        items.iter().map(|l| listener(&call, l)).collect()
    }

    /// One listener by ARN.
    pub async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, Error> {
        let call = self.call("describe listener", listener_arn);
        let out = self
            .elb
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let l = out
            .listeners()
            .first()
            .ok_or_else(|| call.unexpected("AWS returned no listener"))?;
        listener(&call, l)
    }

    /// The rules of a listener (its default rule included), across all pages.
    pub async fn describe_rules(&self, listener_arn: &str) -> Result<Vec<Rule>, Error> {
        let call = self.call("describe rules of", listener_arn);
        let items = self
            .elb
            .describe_rules()
            .listener_arn(listener_arn)
            .set_page_size(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        items.iter().map(|r| rule(&call, r)).collect()
    }

    /// Target groups by ARN, or of a load balancer when `arns` is empty, across all pages.
    pub async fn describe_target_groups(
        &self,
        load_balancer_arn: Option<&str>,
        arns: &[String],
    ) -> Result<Vec<TargetGroup>, Error> {
        let resource = match load_balancer_arn {
            Some(lb) if arns.is_empty() => format!("of {lb}"),
            _ => arns.join(", "),
        };
        let call = self.call("describe target groups", resource);
        let items = self
            .elb
            .describe_target_groups()
            .set_load_balancer_arn(load_balancer_arn.map(str::to_owned))
            .set_target_group_arns((!arns.is_empty()).then(|| arns.to_vec()))
            .set_page_size(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| call.sdk(e))?;
        items
            .iter()
            .map(|tg| {
                Ok(TargetGroup {
                    arn: tg
                        .target_group_arn()
                        .ok_or_else(|| call.missing("a target group ARN"))?
                        .to_owned(),
                    name: tg.target_group_name().unwrap_or("").to_owned(),
                    protocol: tg.protocol().map(|p| p.as_str().to_owned()),
                    port: tg.port(),
                    target_type: tg.target_type().map(|t| t.as_str().to_owned()),
                    vpc_id: tg.vpc_id().map(str::to_owned),
                    health_check_path: tg.health_check_path().map(str::to_owned),
                    // moto lists a load balancer once per listener or rule that
                    // uses the group; AWS lists each once.
                    load_balancer_arns: dedup(tg.load_balancer_arns()),
                })
            })
            .collect()
    }

    /// Deletes a target group.
    pub async fn delete_target_group(&self, req: &DeleteTargetGroup) -> Result<(), Error> {
        let call = self.call("delete target group", &req.target_group_arn);
        self.elb
            .delete_target_group()
            .target_group_arn(&req.target_group_arn)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(())
    }

    /// How long the group's load balancer keeps sending a deregistered target the
    /// requests already in flight before it is removed: the attribute
    /// `deregistration_delay.timeout_seconds` (DescribeTargetGroupAttributes). AWS's
    /// default is 300 s, its range 0–3600 s. A target deregistered is `draining` for that
    /// long and still serves requests, so a group is proven idle only over at least its
    /// delay.
    pub async fn deregistration_delay(&self, target_group_arn: &str) -> Result<Duration, Error> {
        let call = self.call("read the deregistration delay of", target_group_arn);
        let out = self
            .elb
            .describe_target_group_attributes()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        let value = out
            .attributes()
            .iter()
            .find(|a| a.key() == Some(DEREGISTRATION_DELAY))
            .and_then(|a| a.value())
            .ok_or_else(|| call.missing(DEREGISTRATION_DELAY))?;
        let seconds: u64 = value.trim().parse().map_err(|_| {
            call.unexpected(format!(
                "{DEREGISTRATION_DELAY} is {value:?}, not a number of seconds"
            ))
        })?;
        Ok(Duration::from_secs(seconds))
    }

    /// The health of every target registered in a target group.
    pub async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, Error> {
        let call = self.call("describe target health of", target_group_arn);
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| call.sdk(e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(target_health)
            .collect())
    }
}

/// One target's health as baton reads it (none without a target id).
pub(crate) fn target_health(d: &sdk::TargetHealthDescription) -> Option<TargetHealth> {
    let target = d.target()?;
    let health = d.target_health();
    Some(TargetHealth {
        id: target.id()?.to_owned(),
        port: target.port(),
        state: health
            .and_then(|h| h.state())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        reason: health
            .and_then(|h| h.reason())
            .map(|r| r.as_str().to_owned()),
        description: health.and_then(|h| h.description()).map(str::to_owned),
    })
}

fn listener(call: &Call, l: &sdk::Listener) -> Result<Listener, Error> {
    Ok(Listener {
        arn: l
            .listener_arn()
            .ok_or_else(|| call.missing("a listener ARN"))?
            .to_owned(),
        load_balancer_arn: l.load_balancer_arn().unwrap_or("").to_owned(),
        port: l.port(),
        protocol: l.protocol().map(|p| p.as_str().to_owned()),
        default_actions: l.default_actions().iter().map(action).collect(),
    })
}

fn dedup(arns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(arns.len());
    for arn in arns {
        if !out.contains(arn) {
            out.push(arn.clone());
        }
    }
    out
}

fn names_or_arns(names: &[String], arns: &[String]) -> String {
    match (names.is_empty(), arns.is_empty()) {
        (true, true) => "(all)".to_owned(),
        _ => names
            .iter()
            .chain(arns)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    }
}
