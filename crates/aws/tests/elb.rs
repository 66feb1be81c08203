//! ELBv2 against moto: load balancers, listeners, rules and target groups across pages,
//! target health, and weighted-forward round trips that leave everything else alone.

mod common;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, ProtocolEnum,
    RuleCondition, TargetDescription, TargetGroupStickinessConfig, TargetGroupTuple,
};
use baton_aws::{Error, ForwardConfig, ForwardTarget, Stickiness, WeightedTargetGroup};
use common::fixtures::Sdk;

/// An ALB with a blue and a green target group, a listener forwarding 100/0 with
/// stickiness, a weighted rule with two conditions, and a fixed-response rule.
struct Alb {
    lb_arn: String,
    lb_name: String,
    blue: String,
    green: String,
    listener: String,
    weighted_rule: String,
    fixed_rule: String,
    node: String,
}

async fn alb(sdk: &Sdk, octet: u8) -> Alb {
    let vpc = common::fixtures::vpc(sdk, &format!("10.{octet}.0.0/16")).await;
    let a = common::fixtures::subnet(sdk, &vpc, "us-east-1a", &format!("10.{octet}.1.0/24")).await;
    let b = common::fixtures::subnet(sdk, &vpc, "us-east-1b", &format!("10.{octet}.2.0/24")).await;
    let node = common::fixtures::instance(sdk, &a, "role", "node").await;
    let lb_name = common::unique("alb");
    let lb = sdk
        .elb
        .create_load_balancer()
        .name(&lb_name)
        .subnets(&a)
        .subnets(&b)
        .send()
        .await
        .expect("create load balancer");
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .expect("LB ARN")
        .to_owned();
    let tg = |color: &'static str| {
        let sdk = sdk.clone();
        let vpc = vpc.clone();
        async move {
            sdk.elb
                .create_target_group()
                .name(common::unique(color))
                .protocol(ProtocolEnum::Http)
                .port(8080)
                .vpc_id(vpc)
                .health_check_path("/healthz")
                .send()
                .await
                .expect("create target group")
                .target_groups()[0]
                .target_group_arn()
                .expect("TG ARN")
                .to_owned()
        }
    };
    let blue = tg("blue").await;
    let green = tg("green").await;
    sdk.elb
        .register_targets()
        .target_group_arn(&green)
        .targets(TargetDescription::builder().id(&node).port(8080).build())
        .send()
        .await
        .expect("register target");
    let weighted = |blue_w: i32, green_w: i32, stickiness: Option<TargetGroupStickinessConfig>| {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(&blue)
                            .weight(blue_w)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(&green)
                            .weight(green_w)
                            .build(),
                    )
                    .set_target_group_stickiness_config(stickiness)
                    .build(),
            )
            .build()
    };
    let listener = sdk
        .elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(weighted(
            100,
            0,
            Some(
                TargetGroupStickinessConfig::builder()
                    .enabled(true)
                    .duration_seconds(300)
                    .build(),
            ),
        ))
        .send()
        .await
        .expect("create listener")
        .listeners()[0]
        .listener_arn()
        .expect("listener ARN")
        .to_owned();
    let rule = |priority: i32, conditions: Vec<RuleCondition>, action: Action| {
        let sdk = sdk.clone();
        let listener = listener.clone();
        async move {
            sdk.elb
                .create_rule()
                .listener_arn(listener)
                .priority(priority)
                .set_conditions(Some(conditions))
                .actions(action)
                .send()
                .await
                .expect("create rule")
                .rules()[0]
                .rule_arn()
                .expect("rule ARN")
                .to_owned()
        }
    };
    let condition =
        |field: &str, value: &str| RuleCondition::builder().field(field).values(value).build();
    let weighted_rule = rule(
        10,
        vec![
            condition("path-pattern", "/api/*"),
            condition("host-header", "shop.example.com"),
        ],
        weighted(90, 10, None),
    )
    .await;
    let fixed_rule = rule(
        20,
        vec![condition("path-pattern", "/maintenance")],
        Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .content_type("text/plain")
                    .message_body("down for maintenance")
                    .build(),
            )
            .build(),
    )
    .await;
    Alb {
        lb_arn,
        lb_name,
        blue,
        green,
        listener,
        weighted_rule,
        fixed_rule,
        node,
    }
}

fn split(alb: &Alb, blue: u32, green: u32, stickiness: Option<Stickiness>) -> ForwardConfig {
    ForwardConfig {
        target_groups: vec![
            WeightedTargetGroup {
                arn: alb.blue.clone(),
                weight: blue,
            },
            WeightedTargetGroup {
                arn: alb.green.clone(),
                weight: green,
            },
        ],
        stickiness,
    }
}

const STICKY: Option<Stickiness> = Some(Stickiness {
    enabled: true,
    duration_seconds: Some(300),
});

#[tokio::test]
async fn describes_load_balancers_listeners_rules_target_groups_and_health() {
    let sdk = common::fixtures::sdk().await;
    let alb = alb(&sdk, 20).await;
    let other = self::alb(&sdk, 21).await;
    let aws = baton_aws::Aws::connect(&common::config(&common::moto::endpoint()).page_size(1))
        .await
        .expect("connect");

    let lbs = aws
        .describe_load_balancers(&[alb.lb_name.clone(), other.lb_name.clone()], &[])
        .await
        .expect("describe load balancers");
    let arns: Vec<&str> = lbs.iter().map(|lb| lb.arn.as_str()).collect();
    assert_eq!(arns.len(), 2, "both pages: {arns:?}");
    assert!(arns.contains(&alb.lb_arn.as_str()) && arns.contains(&other.lb_arn.as_str()));
    let lb = lbs.iter().find(|lb| lb.arn == alb.lb_arn).expect("ours");
    assert_eq!(lb.name, alb.lb_name);
    assert_eq!(lb.kind, "application");
    assert_eq!(lb.availability_zones.len(), 2);

    let listeners = aws
        .describe_listeners(&alb.lb_arn)
        .await
        .expect("listeners");
    let [l] = listeners.as_slice() else {
        panic!("one listener expected: {listeners:?}")
    };
    assert_eq!(l.arn, alb.listener);
    assert_eq!(l.port, Some(80));
    assert_eq!(l.protocol.as_deref(), Some("HTTP"));
    assert_eq!(l.default_actions[0].kind, "forward");
    assert_eq!(
        l.default_actions[0].forward,
        Some(split(&alb, 100, 0, STICKY))
    );

    // Page size 1: the default rule and two more come from three pages.
    let rules = aws.describe_rules(&alb.listener).await.expect("rules");
    assert_eq!(rules.len(), 3, "{rules:?}");
    let weighted = rules
        .iter()
        .find(|r| r.arn == alb.weighted_rule)
        .expect("weighted rule");
    assert_eq!(weighted.priority, "10");
    assert_eq!(weighted.conditions.len(), 2);
    assert_eq!(weighted.conditions[0].field, "path-pattern");
    assert_eq!(weighted.conditions[0].values, ["/api/*"]);
    // Created without stickiness: AWS and moto may report it absent or disabled.
    let forward = weighted.actions[0]
        .forward
        .as_ref()
        .expect("forward config");
    assert_eq!(
        forward.target_groups,
        split(&alb, 90, 10, None).target_groups
    );
    assert!(forward.stickiness.is_none_or(|s| !s.enabled), "{forward:?}");
    let fixed = rules
        .iter()
        .find(|r| r.arn == alb.fixed_rule)
        .expect("fixed rule");
    assert_eq!(fixed.actions[0].kind, "fixed-response");
    assert!(rules.iter().any(|r| r.is_default));

    let tgs = aws
        .describe_target_groups(Some(&alb.lb_arn), &[])
        .await
        .expect("target groups of LB");
    let mut tg_arns: Vec<&str> = tgs.iter().map(|t| t.arn.as_str()).collect();
    tg_arns.sort();
    let mut expected = [alb.blue.as_str(), alb.green.as_str()];
    expected.sort();
    assert_eq!(tg_arns, expected);
    let green = tgs.iter().find(|t| t.arn == alb.green).expect("green");
    assert_eq!(green.port, Some(8080));
    assert_eq!(green.health_check_path.as_deref(), Some("/healthz"));
    assert_eq!(green.load_balancer_arns, std::slice::from_ref(&alb.lb_arn));

    let health = aws
        .describe_target_health(&alb.green)
        .await
        .expect("health");
    let [h] = health.as_slice() else {
        panic!("one target expected: {health:?}")
    };
    assert_eq!(h.id, alb.node);
    assert_eq!(h.port, Some(8080));
    assert!(h.is_healthy(), "{h:?}");
    assert!(
        aws.describe_target_health(&alb.blue)
            .await
            .expect("blue health")
            .is_empty()
    );
}

#[tokio::test]
async fn listener_forward_round_trip_keeps_everything_else() {
    let sdk = common::fixtures::sdk().await;
    let alb = alb(&sdk, 22).await;
    let aws = common::aws().await;
    let target = ForwardTarget::ListenerDefault(alb.listener.clone());
    let rules_before = aws.describe_rules(&alb.listener).await.expect("rules");

    let current = aws.forward(&target).await.expect("read forward");
    assert_eq!(current, split(&alb, 100, 0, STICKY));

    let next = split(&alb, 50, 50, STICKY);
    let written = aws
        .set_forward(&target, Some(&current), &next)
        .await
        .expect("write forward");
    assert_eq!(written, next);
    assert_eq!(aws.forward(&target).await.expect("read back"), next);

    let listener = aws
        .describe_listener(&alb.listener)
        .await
        .expect("listener");
    assert_eq!(listener.port, Some(80));
    assert_eq!(listener.protocol.as_deref(), Some("HTTP"));
    assert_eq!(listener.default_actions.len(), 1);
    // The default rule mirrors the listener's default action; the others must not move.
    let rules_after = aws
        .describe_rules(&alb.listener)
        .await
        .expect("rules after");
    let (defaults, others): (Vec<_>, Vec<_>) = rules_after.into_iter().partition(|r| r.is_default);
    assert_eq!(defaults[0].actions[0].forward, Some(next.clone()));
    let others_before: Vec<_> = rules_before.into_iter().filter(|r| !r.is_default).collect();
    assert_eq!(others, others_before, "other rules are untouched");

    // Stickiness off is written too, not silently kept.
    let unsticky = split(
        &alb,
        0,
        100,
        Some(Stickiness {
            enabled: false,
            duration_seconds: None,
        }),
    );
    aws.set_forward(&target, None, &unsticky)
        .await
        .expect("write");
    let read = aws.forward(&target).await.expect("read");
    assert_eq!(read.target_groups, unsticky.target_groups);
    assert_eq!(read.stickiness.map(|s| s.enabled), Some(false));
}

#[tokio::test]
async fn rule_forward_round_trip_keeps_conditions_priority_and_other_rules() {
    let sdk = common::fixtures::sdk().await;
    let alb = alb(&sdk, 23).await;
    let aws = common::aws().await;
    let before = aws.describe_rules(&alb.listener).await.expect("rules");
    let listener_before = aws
        .describe_listener(&alb.listener)
        .await
        .expect("listener");
    let target = ForwardTarget::Rule(alb.weighted_rule.clone());

    let current = aws.forward(&target).await.expect("read forward");
    assert_eq!(
        current.target_groups,
        split(&alb, 90, 10, None).target_groups
    );
    let next = split(&alb, 25, 75, STICKY);
    aws.set_forward(&target, Some(&current), &next)
        .await
        .expect("write forward");
    assert_eq!(aws.forward(&target).await.expect("read back"), next);

    let after = aws
        .describe_rules(&alb.listener)
        .await
        .expect("rules after");
    for old in &before {
        let new = after
            .iter()
            .find(|r| r.arn == old.arn)
            .expect("rule still there");
        assert_eq!(new.priority, old.priority);
        assert_eq!(new.conditions, old.conditions);
        if old.arn == alb.weighted_rule {
            assert_eq!(new.actions.len(), 1);
            assert_eq!(new.actions[0].kind, "forward");
        } else {
            assert_eq!(new, old, "other rules are untouched");
        }
    }
    assert_eq!(
        aws.describe_listener(&alb.listener)
            .await
            .expect("listener after"),
        listener_before
    );
}

#[tokio::test]
async fn refuses_stale_weights_invalid_weights_and_actions_without_forward() {
    let sdk = common::fixtures::sdk().await;
    let alb = alb(&sdk, 24).await;
    let aws = common::aws().await;
    let target = ForwardTarget::ListenerDefault(alb.listener.clone());
    let current = aws.forward(&target).await.expect("read");

    let stale = split(&alb, 80, 20, STICKY);
    let err = aws
        .set_forward(&target, Some(&stale), &split(&alb, 50, 50, STICKY))
        .await
        .expect_err("stale expectation");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");

    // moto would accept 1000; AWS would not, so baton refuses before calling.
    let err = aws
        .set_forward(&target, None, &split(&alb, 1000, 0, None))
        .await
        .expect_err("weight above 999");
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("999"), "{err}");

    let six = ForwardConfig {
        target_groups: (0..6)
            .map(|i| WeightedTargetGroup {
                arn: format!("{}-{i}", alb.blue),
                weight: 1,
            })
            .collect(),
        stickiness: None,
    };
    let err = aws
        .set_forward(&target, None, &six)
        .await
        .expect_err("six groups");
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(aws.forward(&target).await.expect("unchanged"), current);

    let fixed = ForwardTarget::Rule(alb.fixed_rule.clone());
    let err = aws.forward(&fixed).await.expect_err("no forward action");
    assert!(matches!(err, Error::Unexpected { .. }), "{err:?}");
    assert!(err.to_string().contains("fixed-response"), "{err}");
}

#[tokio::test]
async fn unknown_listener_and_target_group_are_not_found() {
    let aws = common::aws().await;
    let missing_listener = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/none/0123456789abcdef/0123456789abcdef";
    let err = aws
        .forward(&ForwardTarget::ListenerDefault(missing_listener.to_owned()))
        .await
        .expect_err("no such listener");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.code(), Some("ListenerNotFound"));

    let missing_tg =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/none/0123456789abcdef";
    let err = aws
        .describe_target_health(missing_tg)
        .await
        .expect_err("no such target group");
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        format!("failed to {err}").starts_with(&format!(
            "failed to describe target health of {missing_tg}: TargetGroupNotFound"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn deregistration_delay_is_aws_default_until_set_and_unknown_groups_are_not_found() {
    let aws = common::aws().await;
    let vpc = aws
        .create_vpc("10.25.0.0/16", &Default::default())
        .await
        .expect("create VPC");
    let tg = aws
        .create_target_group(&common::unique("delay"), &vpc, 8080)
        .await
        .expect("create target group");
    assert_eq!(
        aws.deregistration_delay(&tg).await.expect("read delay"),
        std::time::Duration::from_secs(300),
        "AWS's default"
    );
    aws.set_deregistration_delay(&tg, std::time::Duration::from_secs(10))
        .await
        .expect("set delay");
    assert_eq!(
        aws.deregistration_delay(&tg).await.expect("read delay"),
        std::time::Duration::from_secs(10)
    );
    let missing =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/none/0123456789abcdef";
    let err = aws
        .deregistration_delay(missing)
        .await
        .expect_err("no such target group");
    assert!(err.is_not_found(), "{err:?}");
}
