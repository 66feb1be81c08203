//! Reading and rewriting the weighted forward action of a listener's default actions or
//! of a rule. Only the forward action's target groups and stickiness change: every other
//! field of that action and every other action (authentication, fixed responses, their
//! order) is sent back exactly as AWS returned it, because ModifyListener/ModifyRule
//! replace the whole action list. The one addition: an OIDC authentication action gets
//! `UseExistingClientSecret`, since AWS never returns the secret and refuses the action
//! without either.
//!
//! The write is a request value, [`ForwardChange`] (a [`ModifyListener`] or a
//! [`ModifyRule`]): [`Aws::forward_change`] reads the actions and builds it,
//! [`Aws::modify_forward`] sends it, and its `Display` is what `--dry-run` prints.

use aws_sdk_elasticloadbalancingv2::types::{
    self as sdk, Action, ActionTypeEnum, ForwardActionConfig, TargetGroupStickinessConfig,
    TargetGroupTuple,
};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::client::Aws;
use crate::error::{Call, Error};
use crate::forward::{ForwardConfig, ForwardTarget, Stickiness, WeightedTargetGroup};

/// One action of a listener or rule as baton sends it back: the action AWS returned, with
/// only a forward action's target groups and stickiness rewritten. It serializes as
/// ELBv2's `Action` (every field the SDK knows, absent ones left out); an OIDC client
/// secret, which AWS never returns, would print as `<redacted>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ElbAction(Action);

impl ElbAction {
    /// The forward config of a `forward` action.
    pub fn forward(&self) -> Option<ForwardConfig> {
        (self.0.r#type() == Some(&ActionTypeEnum::Forward))
            .then(|| forward_config(&self.0))
            .flatten()
    }
}

/// The request that replaces a listener's default actions (ELBv2 ModifyListener),
/// printed as `elbv2  ModifyListener {"ListenerArn":…,"DefaultActions":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyListener {
    /// The listener.
    pub listener_arn: String,
    /// Its whole new action list.
    pub default_actions: Vec<ElbAction>,
}

request_line!(ModifyListener, "elbv2", "ModifyListener");

/// The request that replaces a rule's actions (ELBv2 ModifyRule), printed as
/// `elbv2  ModifyRule {"RuleArn":…,"Actions":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyRule {
    /// The rule.
    pub rule_arn: String,
    /// Its whole new action list.
    pub actions: Vec<ElbAction>,
}

request_line!(ModifyRule, "elbv2", "ModifyRule");

/// A rewrite of the forward weights: ModifyListener for a listener's default action,
/// ModifyRule for a rule's.
#[derive(Debug, Clone, PartialEq)]
pub enum ForwardChange {
    /// The listener's default actions.
    Listener(ModifyListener),
    /// A rule's actions.
    Rule(ModifyRule),
}

impl ForwardChange {
    /// Where the forward action lives.
    pub fn target(&self) -> ForwardTarget {
        match self {
            ForwardChange::Listener(l) => ForwardTarget::ListenerDefault(l.listener_arn.clone()),
            ForwardChange::Rule(r) => ForwardTarget::Rule(r.rule_arn.clone()),
        }
    }

    /// The whole action list sent.
    pub fn actions(&self) -> &[ElbAction] {
        match self {
            ForwardChange::Listener(l) => &l.default_actions,
            ForwardChange::Rule(r) => &r.actions,
        }
    }

    /// The forward config the request writes.
    pub fn forward(&self) -> Option<ForwardConfig> {
        self.actions().iter().find_map(ElbAction::forward)
    }
}

impl std::fmt::Display for ForwardChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardChange::Listener(l) => l.fmt(f),
            ForwardChange::Rule(r) => r.fmt(f),
        }
    }
}

impl Aws {
    /// The weighted forward config of a listener's default action or of a rule.
    pub async fn forward(&self, target: &ForwardTarget) -> Result<ForwardConfig, Error> {
        let call = self.call("read the forward action of", target.arn());
        let actions = self.actions(&call, target).await?;
        let index = forward_index(&call, &actions)?;
        forward_config(&actions[index])
            .ok_or_else(|| call.unexpected("the forward action names no target group"))
    }

    /// The request that rewrites the forward action of `target` to `new`, keeping every
    /// other field and action as AWS returns them now. When `expected` is given, refuses
    /// with [`Error::Conflict`] if the current weights differ from it (someone else moved
    /// traffic since baton last looked). Reads only; [`Aws::modify_forward`] sends it.
    pub async fn forward_change(
        &self,
        target: &ForwardTarget,
        expected: Option<&ForwardConfig>,
        new: &ForwardConfig,
    ) -> Result<ForwardChange, Error> {
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
        for a in &mut actions {
            keep_client_secret(a);
        }
        let actions = actions.into_iter().map(ElbAction).collect();
        Ok(match target {
            ForwardTarget::ListenerDefault(arn) => ForwardChange::Listener(ModifyListener {
                listener_arn: arn.clone(),
                default_actions: actions,
            }),
            ForwardTarget::Rule(arn) => ForwardChange::Rule(ModifyRule {
                rule_arn: arn.clone(),
                actions,
            }),
        })
    }

    /// Sends a [`ForwardChange`]. Returns the forward config as AWS reports it after the
    /// change.
    pub async fn modify_forward(&self, req: &ForwardChange) -> Result<ForwardConfig, Error> {
        let target = req.target();
        let call = self.call("set the forward weights of", target.arn());
        let actions: Vec<Action> = req.actions().iter().map(|a| a.0.clone()).collect();
        let written = match req {
            ForwardChange::Listener(l) => {
                let out = self
                    .elb
                    .modify_listener()
                    .listener_arn(&l.listener_arn)
                    .set_default_actions(Some(actions))
                    .send()
                    .await
                    .map_err(|e| call.sdk(e))?;
                out.listeners()
                    .first()
                    .map(|l| l.default_actions().to_vec())
                    .unwrap_or_default()
            }
            ForwardChange::Rule(r) => {
                let out = self
                    .elb
                    .modify_rule()
                    .rule_arn(&r.rule_arn)
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

    /// [`Aws::forward_change`] then [`Aws::modify_forward`]: the weights set in one call.
    pub async fn set_forward(
        &self,
        target: &ForwardTarget,
        expected: Option<&ForwardConfig>,
        new: &ForwardConfig,
    ) -> Result<ForwardConfig, Error> {
        let req = self.forward_change(target, expected, new).await?;
        self.modify_forward(&req).await
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

/// AWS never returns an OIDC client secret, and refuses to modify an OIDC action that
/// has neither the secret nor `UseExistingClientSecret`: keep the one it has.
fn keep_client_secret(action: &mut Action) {
    if let Some(oidc) = &mut action.authenticate_oidc_config
        && oidc.client_secret.is_none()
    {
        oidc.use_existing_client_secret = Some(true);
    }
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

/// Writes `key: value` when there is a value (AWS leaves absent fields out).
fn put<M: SerializeMap, T: Serialize>(
    m: &mut M,
    key: &'static str,
    value: Option<T>,
) -> Result<(), M::Error> {
    match value {
        Some(v) => m.serialize_entry(key, &v),
        None => Ok(()),
    }
}

/// Extra query parameters of an authentication action, in a stable order.
fn params(
    p: Option<&std::collections::HashMap<String, String>>,
) -> Option<std::collections::BTreeMap<&str, &str>> {
    p.map(|p| p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
}

// ELBv2's `Action` and its parts, field by field in the API's names. The SDK's types
// are not `Serialize`; the value keeps the SDK's action (it is what is sent) and only
// its printing is spelled out here. `every_sdk_field_is_printed` fails when an SDK
// update adds a field this does not print.
impl Serialize for ElbAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = &self.0;
        let mut m = s.serialize_map(None)?;
        put(&mut m, "Type", a.r#type().map(|t| t.as_str()))?;
        put(&mut m, "Order", a.order())?;
        put(&mut m, "TargetGroupArn", a.target_group_arn())?;
        put(&mut m, "ForwardConfig", a.forward_config().map(Forward))?;
        put(
            &mut m,
            "AuthenticateOidcConfig",
            a.authenticate_oidc_config().map(Oidc),
        )?;
        put(
            &mut m,
            "AuthenticateCognitoConfig",
            a.authenticate_cognito_config().map(Cognito),
        )?;
        put(
            &mut m,
            "JwtValidationConfig",
            a.jwt_validation_config().map(Jwt),
        )?;
        put(&mut m, "RedirectConfig", a.redirect_config().map(Redirect))?;
        put(
            &mut m,
            "FixedResponseConfig",
            a.fixed_response_config().map(Fixed),
        )?;
        m.end()
    }
}

struct Forward<'a>(&'a ForwardActionConfig);

impl Serialize for Forward<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Tuple<'a>(&'a TargetGroupTuple);
        impl Serialize for Tuple<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                put(&mut m, "TargetGroupArn", self.0.target_group_arn())?;
                put(&mut m, "Weight", self.0.weight())?;
                m.end()
            }
        }
        struct Sticky<'a>(&'a TargetGroupStickinessConfig);
        impl Serialize for Sticky<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                put(&mut m, "Enabled", self.0.enabled())?;
                put(&mut m, "DurationSeconds", self.0.duration_seconds())?;
                m.end()
            }
        }
        let f = self.0;
        let mut m = s.serialize_map(None)?;
        put(
            &mut m,
            "TargetGroups",
            f.target_groups
                .as_ref()
                .map(|t| t.iter().map(Tuple).collect::<Vec<_>>()),
        )?;
        put(
            &mut m,
            "TargetGroupStickinessConfig",
            f.target_group_stickiness_config().map(Sticky),
        )?;
        m.end()
    }
}

struct Oidc<'a>(&'a sdk::AuthenticateOidcActionConfig);

impl Serialize for Oidc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.0;
        let mut m = s.serialize_map(None)?;
        put(&mut m, "Issuer", o.issuer())?;
        put(&mut m, "AuthorizationEndpoint", o.authorization_endpoint())?;
        put(&mut m, "TokenEndpoint", o.token_endpoint())?;
        put(&mut m, "UserInfoEndpoint", o.user_info_endpoint())?;
        put(&mut m, "ClientId", o.client_id())?;
        // Never printed: secrets stay out of output and logs.
        put(
            &mut m,
            "ClientSecret",
            o.client_secret().map(|_| "<redacted>"),
        )?;
        put(&mut m, "SessionCookieName", o.session_cookie_name())?;
        put(&mut m, "Scope", o.scope())?;
        put(&mut m, "SessionTimeout", o.session_timeout())?;
        put(
            &mut m,
            "AuthenticationRequestExtraParams",
            params(o.authentication_request_extra_params()),
        )?;
        put(
            &mut m,
            "OnUnauthenticatedRequest",
            o.on_unauthenticated_request().map(|b| b.as_str()),
        )?;
        put(
            &mut m,
            "UseExistingClientSecret",
            o.use_existing_client_secret(),
        )?;
        m.end()
    }
}

struct Cognito<'a>(&'a sdk::AuthenticateCognitoActionConfig);

impl Serialize for Cognito<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        put(&mut m, "UserPoolArn", c.user_pool_arn())?;
        put(&mut m, "UserPoolClientId", c.user_pool_client_id())?;
        put(&mut m, "UserPoolDomain", c.user_pool_domain())?;
        put(&mut m, "SessionCookieName", c.session_cookie_name())?;
        put(&mut m, "Scope", c.scope())?;
        put(&mut m, "SessionTimeout", c.session_timeout())?;
        put(
            &mut m,
            "AuthenticationRequestExtraParams",
            params(c.authentication_request_extra_params()),
        )?;
        put(
            &mut m,
            "OnUnauthenticatedRequest",
            c.on_unauthenticated_request().map(|b| b.as_str()),
        )?;
        m.end()
    }
}

struct Jwt<'a>(&'a sdk::JwtValidationActionConfig);

impl Serialize for Jwt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Claim<'a>(&'a sdk::JwtValidationActionAdditionalClaim);
        impl Serialize for Claim<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let c = self.0;
                let mut m = s.serialize_map(None)?;
                put(&mut m, "Format", c.format().map(|f| f.as_str()))?;
                put(&mut m, "Name", c.name())?;
                put(&mut m, "Values", c.values.as_ref())?;
                m.end()
            }
        }
        let j = self.0;
        let mut m = s.serialize_map(None)?;
        put(&mut m, "JwksEndpoint", j.jwks_endpoint())?;
        put(&mut m, "Issuer", j.issuer())?;
        put(
            &mut m,
            "AdditionalClaims",
            j.additional_claims
                .as_ref()
                .map(|c| c.iter().map(Claim).collect::<Vec<_>>()),
        )?;
        m.end()
    }
}

struct Redirect<'a>(&'a sdk::RedirectActionConfig);

impl Serialize for Redirect<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        put(&mut m, "Protocol", r.protocol())?;
        put(&mut m, "Port", r.port())?;
        put(&mut m, "Host", r.host())?;
        put(&mut m, "Path", r.path())?;
        put(&mut m, "Query", r.query())?;
        put(&mut m, "StatusCode", r.status_code().map(|c| c.as_str()))?;
        m.end()
    }
}

struct Fixed<'a>(&'a sdk::FixedResponseActionConfig);

impl Serialize for Fixed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let mut m = s.serialize_map(None)?;
        put(&mut m, "MessageBody", f.message_body())?;
        put(&mut m, "StatusCode", f.status_code())?;
        put(&mut m, "ContentType", f.content_type())?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names of an SDK struct, from the `Debug` of an empty one (no nesting).
    fn sdk_fields(debug: &str) -> Vec<String> {
        let body = &debug[debug.find('{').unwrap() + 1..debug.rfind('}').unwrap()];
        body.split(", ")
            .filter_map(|f| f.split_once(':').map(|(k, _)| k.trim().to_owned()))
            .collect()
    }

    /// `target_group_arn` → `TargetGroupArn`.
    fn pascal(field: &str) -> String {
        field
            .trim_start_matches("r#")
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn keys(v: &serde_json::Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn full_action() -> Action {
        let params: std::collections::HashMap<String, String> =
            [("prompt".to_owned(), "login".to_owned())].into();
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(2)
            .target_group_arn("tg")
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("tg")
                            .weight(7)
                            .build(),
                    )
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder()
                            .enabled(true)
                            .duration_seconds(60)
                            .build(),
                    )
                    .build(),
            )
            .authenticate_oidc_config(
                sdk::AuthenticateOidcActionConfig::builder()
                    .issuer("i")
                    .authorization_endpoint("a")
                    .token_endpoint("t")
                    .user_info_endpoint("u")
                    .client_id("c")
                    .client_secret("hunter2")
                    .session_cookie_name("s")
                    .scope("openid")
                    .session_timeout(60)
                    .set_authentication_request_extra_params(Some(params.clone()))
                    .on_unauthenticated_request(
                        sdk::AuthenticateOidcActionConditionalBehaviorEnum::Deny,
                    )
                    .use_existing_client_secret(false)
                    .build(),
            )
            .authenticate_cognito_config(
                sdk::AuthenticateCognitoActionConfig::builder()
                    .user_pool_arn("p")
                    .user_pool_client_id("c")
                    .user_pool_domain("d")
                    .session_cookie_name("s")
                    .scope("openid")
                    .session_timeout(60)
                    .set_authentication_request_extra_params(Some(params))
                    .on_unauthenticated_request(
                        sdk::AuthenticateCognitoActionConditionalBehaviorEnum::Allow,
                    )
                    .build(),
            )
            .jwt_validation_config(
                sdk::JwtValidationActionConfig::builder()
                    .jwks_endpoint("j")
                    .issuer("i")
                    .additional_claims(
                        sdk::JwtValidationActionAdditionalClaim::builder()
                            .format(sdk::JwtValidationActionAdditionalClaimFormatEnum::SingleString)
                            .name("n")
                            .values("v")
                            .build(),
                    )
                    .build(),
            )
            .redirect_config(
                sdk::RedirectActionConfig::builder()
                    .protocol("HTTPS")
                    .port("443")
                    .host("h")
                    .path("/p")
                    .query("q")
                    .status_code(sdk::RedirectActionStatusCodeEnum::Http301)
                    .build(),
            )
            .fixed_response_config(
                sdk::FixedResponseActionConfig::builder()
                    .message_body("m")
                    .status_code("503")
                    .content_type("text/plain")
                    .build(),
            )
            .build()
    }

    /// Every field of the SDK's action and of its parts is printed under its API name;
    /// an SDK update that adds one fails here.
    #[test]
    fn every_sdk_field_is_printed() {
        let a = full_action();
        let json = serde_json::to_value(ElbAction(a.clone())).unwrap();
        let cases: [(&str, String, &serde_json::Value); 9] = [
            ("Action", format!("{:?}", Action::builder().build()), &json),
            (
                "ForwardActionConfig",
                format!("{:?}", ForwardActionConfig::builder().build()),
                &json["ForwardConfig"],
            ),
            (
                "TargetGroupTuple",
                format!("{:?}", TargetGroupTuple::builder().build()),
                &json["ForwardConfig"]["TargetGroups"][0],
            ),
            (
                "TargetGroupStickinessConfig",
                format!("{:?}", TargetGroupStickinessConfig::builder().build()),
                &json["ForwardConfig"]["TargetGroupStickinessConfig"],
            ),
            (
                "AuthenticateCognitoActionConfig",
                format!(
                    "{:?}",
                    sdk::AuthenticateCognitoActionConfig::builder().build()
                ),
                &json["AuthenticateCognitoConfig"],
            ),
            (
                "JwtValidationActionConfig",
                format!("{:?}", sdk::JwtValidationActionConfig::builder().build()),
                &json["JwtValidationConfig"],
            ),
            (
                "JwtValidationActionAdditionalClaim",
                format!(
                    "{:?}",
                    sdk::JwtValidationActionAdditionalClaim::builder().build()
                ),
                &json["JwtValidationConfig"]["AdditionalClaims"][0],
            ),
            (
                "RedirectActionConfig",
                format!("{:?}", sdk::RedirectActionConfig::builder().build()),
                &json["RedirectConfig"],
            ),
            (
                "FixedResponseActionConfig",
                format!("{:?}", sdk::FixedResponseActionConfig::builder().build()),
                &json["FixedResponseConfig"],
            ),
        ];
        for (name, debug, printed) in cases {
            let mut expected: Vec<String> = sdk_fields(&debug).iter().map(|f| pascal(f)).collect();
            expected.sort();
            let mut got = keys(printed);
            got.sort();
            assert_eq!(got, expected, "{name}: {debug}");
        }
        let oidc = format!("{:?}", sdk::AuthenticateOidcActionConfig::builder().build());
        let mut expected: Vec<String> = sdk_fields(&oidc).iter().map(|f| pascal(f)).collect();
        expected.sort();
        let mut got = keys(&json["AuthenticateOidcConfig"]);
        got.sort();
        assert_eq!(got, expected, "{oidc}");
        assert_eq!(json["AuthenticateOidcConfig"]["ClientSecret"], "<redacted>");
        assert!(!json.to_string().contains("hunter2"));
    }

    #[test]
    fn a_listener_change_prints_as_the_request_sent() {
        let mut forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("arn:blue")
            .build();
        rewrite(
            &mut forward,
            &ForwardConfig {
                target_groups: vec![
                    crate::WeightedTargetGroup {
                        arn: "arn:blue".into(),
                        weight: 90,
                    },
                    crate::WeightedTargetGroup {
                        arn: "arn:green".into(),
                        weight: 10,
                    },
                ],
                stickiness: None,
            },
        );
        let change = ForwardChange::Listener(ModifyListener {
            listener_arn: "arn:listener".into(),
            default_actions: vec![ElbAction(forward)],
        });
        assert_eq!(
            change.to_string(),
            r#"elbv2  ModifyListener {"ListenerArn":"arn:listener","DefaultActions":[{"Type":"forward","ForwardConfig":{"TargetGroups":[{"TargetGroupArn":"arn:blue","Weight":90},{"TargetGroupArn":"arn:green","Weight":10}]}}]}"#
        );
        assert_eq!(change.forward().unwrap().weight_of("arn:green"), Some(10));
        let ForwardChange::Listener(l) = change else {
            unreachable!()
        };
        let rule = ForwardChange::Rule(ModifyRule {
            rule_arn: "arn:rule".into(),
            actions: l.default_actions,
        });
        assert_eq!(rule.target(), ForwardTarget::Rule("arn:rule".into()));
        assert!(
            rule.to_string().starts_with(
                r#"elbv2  ModifyRule {"RuleArn":"arn:rule","Actions":[{"Type":"forward","#
            ),
            "{rule}"
        );
    }

    #[test]
    fn an_oidc_action_keeps_its_client_secret() {
        let mut a = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .authenticate_oidc_config(
                sdk::AuthenticateOidcActionConfig::builder()
                    .issuer("i")
                    .client_id("c")
                    .build(),
            )
            .build();
        keep_client_secret(&mut a);
        assert_eq!(
            a.authenticate_oidc_config()
                .unwrap()
                .use_existing_client_secret(),
            Some(true)
        );
    }
}
