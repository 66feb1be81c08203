//! Reading and rewriting the weighted forward action of a listener's default actions or
//! of a rule. Only the forward action's target groups and stickiness change: every other
//! field of that action and every other action (authentication, fixed responses, their
//! order) is sent back exactly as AWS returned it, because ModifyListener/ModifyRule
//! replace the whole action list.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupStickinessConfig, TargetGroupTuple,
};

use crate::client::Aws;
use crate::error::{Call, Error};
use crate::forward::{ForwardConfig, ForwardTarget, Stickiness, WeightedTargetGroup};

impl Aws {
    /// The weighted forward config of a listener's default action or of a rule.
    pub async fn forward(&self, target: &ForwardTarget) -> Result<ForwardConfig, Error> {
        let call = self.call("read the forward action of", target.arn());
        let actions = self.actions(&call, target).await?;
        let index = forward_index(&call, &actions)?;
        forward_config(&actions[index])
            .ok_or_else(|| call.unexpected("the forward action names no target group"))
    }

    /// Rewrites the forward action to `new`, keeping everything else. When `expected`
    /// is given, refuses with [`Error::Conflict`] if the current weights differ from it
    /// (someone else moved traffic since baton last looked). Returns the config as AWS
    /// reports it after the change.
    pub async fn set_forward(
        &self,
        target: &ForwardTarget,
        expected: Option<&ForwardConfig>,
        new: &ForwardConfig,
    ) -> Result<ForwardConfig, Error> {
        let call = self.call("set the forward weights of", target.arn());
        new.validate().map_err(|reason| call.invalid(reason))?;
        let mut actions = self.actions(&call, target).await?;
        let index = forward_index(&call, &actions)?;
        if let Some(expected) = expected {
            let current = forward_config(&actions[index]);
            if current.as_ref() != Some(expected) {
                return Err(call.conflict(format!(
                    "expected {}, found {}",
                    show(Some(expected)),
                    show(current.as_ref())
                )));
            }
        }
        rewrite(&mut actions[index], new);
        let written = match target {
            ForwardTarget::ListenerDefault(arn) => {
                let out = self
                    .elb
                    .modify_listener()
                    .listener_arn(arn)
                    .set_default_actions(Some(actions))
                    .send()
                    .await
                    .map_err(|e| call.sdk(e))?;
                out.listeners()
                    .first()
                    .map(|l| l.default_actions().to_vec())
                    .unwrap_or_default()
            }
            ForwardTarget::Rule(arn) => {
                let out = self
                    .elb
                    .modify_rule()
                    .rule_arn(arn)
                    .set_actions(Some(actions))
                    .send()
                    .await
                    .map_err(|e| call.sdk(e))?;
                out.rules()
                    .first()
                    .map(|r| r.actions().to_vec())
                    .unwrap_or_default()
            }
        };
        let index = forward_index(&call, &written)?;
        forward_config(&written[index]).ok_or_else(|| {
            call.unexpected("AWS answered with a forward action without target groups")
        })
    }

    /// The current actions of the listener's default or of the rule, as AWS returns them.
    async fn actions(&self, call: &Call, target: &ForwardTarget) -> Result<Vec<Action>, Error> {
        match target {
            ForwardTarget::ListenerDefault(arn) => {
                let out = self
                    .elb
                    .describe_listeners()
                    .listener_arns(arn)
                    .send()
                    .await
                    .map_err(|e| call.sdk(e))?;
                let listener = out
                    .listeners()
                    .first()
                    .ok_or_else(|| call.unexpected("AWS returned no listener"))?;
                Ok(listener.default_actions().to_vec())
            }
            ForwardTarget::Rule(arn) => {
                let out = self
                    .elb
                    .describe_rules()
                    .rule_arns(arn)
                    .send()
                    .await
                    .map_err(|e| call.sdk(e))?;
                let rule = out
                    .rules()
                    .first()
                    .ok_or_else(|| call.unexpected("AWS returned no rule"))?;
                Ok(rule.actions().to_vec())
            }
        }
    }
}

fn forward_index(call: &Call, actions: &[Action]) -> Result<usize, Error> {
    actions
        .iter()
        .position(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
        .ok_or_else(|| {
            let kinds: Vec<&str> = actions
                .iter()
                .map(|a| a.r#type().map_or("?", |t| t.as_str()))
                .collect();
            call.unexpected(format!(
                "it has no forward action (actions: {}); baton only re-weights existing forward actions",
                kinds.join(", ")
            ))
        })
}

/// Puts `new` into the action. `TargetGroupArn` is cleared: AWS refuses it next to a
/// forward config with several groups, and the config alone says the same for one.
fn rewrite(action: &mut Action, new: &ForwardConfig) {
    let tuples = new
        .target_groups
        .iter()
        .map(|g| {
            TargetGroupTuple::builder()
                .target_group_arn(&g.arn)
                .weight(i32::try_from(g.weight).unwrap_or(i32::MAX))
                .build()
        })
        .collect();
    let stickiness = new.stickiness.map(|s| {
        TargetGroupStickinessConfig::builder()
            .enabled(s.enabled)
            .set_duration_seconds(s.duration_seconds)
            .build()
    });
    action.target_group_arn = None;
    action.forward_config = Some(
        ForwardActionConfig::builder()
            .set_target_groups(Some(tuples))
            .set_target_group_stickiness_config(stickiness)
            .build(),
    );
}

fn show(config: Option<&ForwardConfig>) -> String {
    match config {
        None => "no target groups".to_owned(),
        Some(c) => c
            .target_groups
            .iter()
            .map(|g| {
                format!(
                    "{}={}",
                    g.arn.rsplit('/').nth(1).unwrap_or(&g.arn),
                    g.weight
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Reads the forward config of an SDK action: the weighted config when present, else
/// the single `TargetGroupArn` form (weight 1), as AWS treats it.
pub(crate) fn forward_config(a: &Action) -> Option<ForwardConfig> {
    if let Some(fc) = a.forward_config()
        && !fc.target_groups().is_empty()
    {
        return Some(ForwardConfig {
            target_groups: fc
                .target_groups()
                .iter()
                .filter_map(|t| {
                    Some(WeightedTargetGroup {
                        arn: t.target_group_arn()?.to_owned(),
                        weight: t.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0)),
                    })
                })
                .collect(),
            stickiness: fc.target_group_stickiness_config().map(|s| Stickiness {
                enabled: s.enabled().unwrap_or(false),
                duration_seconds: s.duration_seconds(),
            }),
        });
    }
    a.target_group_arn().map(|arn| ForwardConfig {
        target_groups: vec![WeightedTargetGroup {
            arn: arn.to_owned(),
            weight: 1,
        }],
        stickiness: None,
    })
}
