//! The weighted forward action of an ALB listener or rule, the lever of `baton traffic
//! shift`, as a plain value with AWS's limits checked by baton itself (moto accepts
//! weights AWS refuses, and a refused step mid-shift is worse than a refused plan).

/// Where a forward action lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardTarget {
    /// The default action of a listener (by listener ARN).
    ListenerDefault(String),
    /// The action of a listener rule (by rule ARN).
    Rule(String),
}

impl ForwardTarget {
    /// The ARN of the listener or rule.
    pub fn arn(&self) -> &str {
        match self {
            ForwardTarget::ListenerDefault(arn) | ForwardTarget::Rule(arn) => arn,
        }
    }
}

/// Target groups with weights, and group-level stickiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The groups traffic is split between, in AWS's order.
    pub target_groups: Vec<WeightedTargetGroup>,
    /// Target-group stickiness; `None` when AWS reports none.
    pub stickiness: Option<Stickiness>,
}

/// One target group of a forward action and its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTargetGroup {
    /// Target group ARN.
    pub arn: String,
    /// Relative weight, 0–999.
    pub weight: u32,
}

/// Target-group stickiness of a forward action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stickiness {
    /// Whether a client keeps going to the same target group.
    pub enabled: bool,
    /// How long, in seconds (1–604800), when enabled.
    pub duration_seconds: Option<i32>,
}

/// AWS's largest forward weight.
pub const MAX_WEIGHT: u32 = 999;
/// AWS's most target groups in one forward action.
pub const MAX_TARGET_GROUPS: usize = 5;
/// AWS's longest group stickiness: 7 days.
pub const MAX_STICKINESS_SECONDS: i32 = 604_800;

impl ForwardConfig {
    /// The weight of `arn`, if it is one of the groups.
    pub fn weight_of(&self, arn: &str) -> Option<u32> {
        self.target_groups
            .iter()
            .find(|g| g.arn == arn)
            .map(|g| g.weight)
    }

    /// Checks AWS's documented limits; the error says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.target_groups.is_empty() {
            return Err("a forward action needs at least one target group".to_owned());
        }
        if self.target_groups.len() > MAX_TARGET_GROUPS {
            return Err(format!(
                "a forward action takes at most {MAX_TARGET_GROUPS} target groups, got {}",
                self.target_groups.len()
            ));
        }
        for (i, g) in self.target_groups.iter().enumerate() {
            if g.weight > MAX_WEIGHT {
                return Err(format!(
                    "weight {} of {} is above AWS's maximum of {MAX_WEIGHT}",
                    g.weight, g.arn
                ));
            }
            if self.target_groups[..i].iter().any(|o| o.arn == g.arn) {
                return Err(format!("target group {} is listed twice", g.arn));
            }
        }
        if let Some(Stickiness {
            enabled: true,
            duration_seconds: Some(d),
        }) = self.stickiness
            && !(1..=MAX_STICKINESS_SECONDS).contains(&d)
        {
            return Err(format!(
                "stickiness duration must be 1–{MAX_STICKINESS_SECONDS} seconds, got {d}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tg(arn: &str, weight: u32) -> WeightedTargetGroup {
        WeightedTargetGroup {
            arn: arn.to_owned(),
            weight,
        }
    }

    fn config(groups: Vec<WeightedTargetGroup>) -> ForwardConfig {
        ForwardConfig {
            target_groups: groups,
            stickiness: None,
        }
    }

    #[test]
    fn accepts_aws_limits() {
        assert_eq!(config(vec![tg("a", 0), tg("b", 999)]).validate(), Ok(()));
    }

    #[test]
    fn refuses_what_aws_refuses() {
        let cases = [
            (config(vec![]), "at least one"),
            (config(vec![tg("a", 1000)]), "above AWS's maximum of 999"),
            (
                config((0..6).map(|i| tg(&format!("tg{i}"), 1)).collect()),
                "at most 5",
            ),
            (config(vec![tg("a", 1), tg("a", 2)]), "listed twice"),
            (
                ForwardConfig {
                    target_groups: vec![tg("a", 1)],
                    stickiness: Some(Stickiness {
                        enabled: true,
                        duration_seconds: Some(0),
                    }),
                },
                "stickiness duration",
            ),
        ];
        for (config, expected) in cases {
            let err = config.validate().expect_err(expected);
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }
}
