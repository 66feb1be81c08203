//! The forward action's split as data, and the shift plan: the weights each step writes.
//!
//! A step is a percentage of the traffic blue and green carry *together* (their pool)
//! that goes to green. Every other target group keeps its weight, so its share never
//! moves. When blue and green are the only groups carrying traffic, the pool is rescaled
//! to 100 so each step's weights read as percentages (weights are relative: 1 and 100
//! mean the same to a lone group). Next to other groups the pool keeps its size, which
//! must then be at least 100 to split in whole percents and at most 999 (AWS's largest
//! weight), since green ends up holding all of it.
//!
//! moto accepts weights AWS refuses, so the limits are checked here, before anything is
//! written: a step refused mid-shift is worse than a plan refused at the start.

use serde::{Deserialize, Serialize};

/// AWS's largest forward weight.
pub const MAX_WEIGHT: u32 = 999;
/// AWS's most target groups in one forward action.
pub const MAX_TARGET_GROUPS: usize = 5;

/// One target group of a forward action and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupWeight {
    /// Target group ARN.
    pub arn: String,
    /// Relative weight, 0–999.
    pub weight: u32,
}

/// Target-group stickiness of a forward action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stickiness {
    /// Whether a client keeps going to the group it first reached.
    pub enabled: bool,
    /// For how long, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i32>,
}

/// A forward action's target groups (in AWS's order) and stickiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The groups and their weights.
    pub groups: Vec<GroupWeight>,
    /// Group stickiness, when AWS reports any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<Stickiness>,
}

impl Forward {
    /// The weight of a group, if it is in the action.
    pub fn weight_of(&self, arn: &str) -> Option<u32> {
        self.groups.iter().find(|g| g.arn == arn).map(|g| g.weight)
    }

    /// Whether two reads describe the same action. Stickiness that is off counts the same
    /// as none (AWS and moto report either for an action written without it).
    pub fn same_as(&self, other: &Forward) -> bool {
        let sticky = |f: &Forward| f.stickiness.filter(|s| s.enabled);
        self.groups == other.groups && sticky(self) == sticky(other)
    }

    /// The share of the traffic a group gets, in percent of the total weight.
    pub fn percent_of(&self, arn: &str) -> f64 {
        let total: u32 = self.groups.iter().map(|g| g.weight).sum();
        match (self.weight_of(arn), total) {
            (Some(w), t) if t > 0 => f64::from(w) * 100.0 / f64::from(t),
            _ => 0.0,
        }
    }

    /// Stickiness that is on, for reports: it slows a shift, because clients already
    /// pinned to blue stay there until it expires.
    pub fn sticky_seconds(&self) -> Option<i32> {
        self.stickiness
            .filter(|s| s.enabled)
            .map(|s| s.duration_seconds.unwrap_or(0))
    }

    /// AWS's limits: 1–5 groups, each once, weights 0–999.
    pub fn check_limits(&self) -> Result<(), SplitError> {
        if self.groups.is_empty() || self.groups.len() > MAX_TARGET_GROUPS {
            return Err(SplitError::TooManyGroups {
                count: self.groups.len(),
            });
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.weight > MAX_WEIGHT {
                return Err(SplitError::WeightOutOfRange {
                    arn: g.arn.clone(),
                    weight: g.weight,
                });
            }
            if self.groups[..i].iter().any(|o| o.arn == g.arn) {
                return Err(SplitError::Duplicate { arn: g.arn.clone() });
            }
        }
        Ok(())
    }

    /// The same action with `arn`'s weight set (the group must be in it).
    fn with_weight(&self, arn: &str, weight: u32) -> Forward {
        let mut f = self.clone();
        for g in &mut f.groups {
            if g.arn == arn {
                g.weight = weight;
            }
        }
        f
    }

    /// `a=1, b=0 (sticky 300 s)`: each group by its name, for messages.
    pub fn show(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{}={}", group_name(&g.arn), g.weight))
            .collect();
        match self.sticky_seconds() {
            Some(s) => format!("{} (sticky {s} s)", groups.join(", ")),
            None => groups.join(", "),
        }
    }
}

/// A target group's name from its ARN (`…:targetgroup/NAME/ID`), or the ARN itself.
pub fn group_name(arn: &str) -> &str {
    arn.split_once(":targetgroup/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(arn)
}

/// Why a shift cannot be planned; each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// `--steps` is empty, out of 1–100 or not increasing.
    #[error("use steps between 1 and 100 in increasing order (e.g. 10,25,50,100), not {steps:?}")]
    BadSteps {
        /// What was given.
        steps: Vec<u32>,
    },
    /// Blue and green are the same group.
    #[error(
        "move traffic between two different target groups: --from-tg and --to-tg are both {arn}"
    )]
    SameGroup {
        /// The group.
        arn: String,
    },
    /// Blue's group is not in the action.
    #[error(
        "find --from-tg {arn} in the forward action: it forwards to {present} (pass the group blue serves from)"
    )]
    FromNotInAction {
        /// The group asked for.
        arn: String,
        /// What the action forwards to.
        present: String,
    },
    /// Adding green would exceed AWS's group limit.
    #[error(
        "add green's group: the action already has {MAX_TARGET_GROUPS} target groups, AWS's maximum; remove one first"
    )]
    NoRoomForGreen,
    /// Too many or no groups.
    #[error("a forward action takes 1 to {MAX_TARGET_GROUPS} target groups, not {count}")]
    TooManyGroups {
        /// How many.
        count: usize,
    },
    /// A weight AWS refuses.
    #[error("weight {weight} of {arn} is above AWS's maximum of {MAX_WEIGHT}")]
    WeightOutOfRange {
        /// The group.
        arn: String,
        /// The weight.
        weight: u32,
    },
    /// A group listed twice.
    #[error("target group {arn} is listed twice")]
    Duplicate {
        /// The group.
        arn: String,
    },
    /// Blue and green carry no traffic.
    #[error("shift traffic that exists: blue's and green's groups both have weight 0 in {current}")]
    NothingToShift {
        /// The action now.
        current: String,
    },
    /// Next to other groups, blue's and green's weights are too small to split in percents.
    #[error(
        "split blue's and green's weights ({pool} together) in percent steps: next to other groups carrying traffic they must add up to at least 100; scale every weight of {current} by the same factor first"
    )]
    PoolTooSmall {
        /// Blue's and green's weights together.
        pool: u32,
        /// The action now.
        current: String,
    },
    /// Next to other groups, green would need a weight above 999 at 100 %.
    #[error(
        "give green all of blue's traffic: blue's and green's weights add up to {pool}, and green's weight cannot exceed AWS's maximum of {MAX_WEIGHT}; lower the weights of {current} (keeping their ratio) first"
    )]
    PoolTooLarge {
        /// Blue's and green's weights together.
        pool: u32,
        /// The action now.
        current: String,
    },
}

/// One step of a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Green's share of blue's and green's traffic, in percent.
    pub percent: u32,
    /// The action this step writes.
    pub forward: Forward,
}

/// Which weights a shift writes, decided once from the action as first read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Blue's target group.
    pub from_tg: String,
    /// Green's target group.
    pub to_tg: String,
    /// The action before the shift: what rollback writes back.
    pub original: Forward,
    /// When green's group was not in the action: the action with green added at 0,
    /// written before the first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare: Option<Forward>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Plans the weights of every step from the action as read now.
pub fn plan(
    current: &Forward,
    from_tg: &str,
    to_tg: &str,
    steps: &[u32],
) -> Result<Split, SplitError> {
    if steps.is_empty()
        || steps.iter().any(|&p| p == 0 || p > 100)
        || steps.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(SplitError::BadSteps {
            steps: steps.to_vec(),
        });
    }
    if from_tg == to_tg {
        return Err(SplitError::SameGroup {
            arn: from_tg.to_owned(),
        });
    }
    current.check_limits()?;
    let Some(blue) = current.weight_of(from_tg) else {
        return Err(SplitError::FromNotInAction {
            arn: from_tg.to_owned(),
            present: current.show(),
        });
    };
    let prepare = match current.weight_of(to_tg) {
        Some(_) => None,
        None if current.groups.len() >= MAX_TARGET_GROUPS => {
            return Err(SplitError::NoRoomForGreen);
        }
        None => {
            let mut f = current.clone();
            f.groups.push(GroupWeight {
                arn: to_tg.to_owned(),
                weight: 0,
            });
            Some(f)
        }
    };
    let start = prepare.clone().unwrap_or_else(|| current.clone());
    let green = start.weight_of(to_tg).unwrap_or(0);
    let others: u32 = start
        .groups
        .iter()
        .filter(|g| g.arn != from_tg && g.arn != to_tg)
        .map(|g| g.weight)
        .sum();
    let pool = if others == 0 {
        100
    } else {
        let pool = blue + green;
        if pool == 0 {
            return Err(SplitError::NothingToShift {
                current: current.show(),
            });
        }
        if pool < 100 {
            return Err(SplitError::PoolTooSmall {
                pool,
                current: current.show(),
            });
        }
        if pool > MAX_WEIGHT {
            return Err(SplitError::PoolTooLarge {
                pool,
                current: current.show(),
            });
        }
        pool
    };
    let steps = steps
        .iter()
        .map(|&percent| {
            // Round half up, in integers: pool × percent / 100.
            let to_green = (pool * percent + 50) / 100;
            let forward = start
                .with_weight(to_tg, to_green)
                .with_weight(from_tg, pool - to_green);
            forward.check_limits()?;
            Ok(Step { percent, forward })
        })
        .collect::<Result<Vec<_>, SplitError>>()?;
    Ok(Split {
        from_tg: from_tg.to_owned(),
        to_tg: to_tg.to_owned(),
        original: current.clone(),
        prepare,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLUE: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/blue/1";
    const GREEN: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/green/2";
    const CANARY: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/canary/3";

    fn fwd(groups: &[(&str, u32)]) -> Forward {
        Forward {
            groups: groups
                .iter()
                .map(|(arn, weight)| GroupWeight {
                    arn: (*arn).to_owned(),
                    weight: *weight,
                })
                .collect(),
            stickiness: None,
        }
    }

    fn weights(split: &Split) -> Vec<Vec<u32>> {
        split
            .steps
            .iter()
            .map(|s| s.forward.groups.iter().map(|g| g.weight).collect())
            .collect()
    }

    #[test]
    fn a_plain_forward_to_blue_gets_green_at_zero_first_then_percent_steps() {
        let current = fwd(&[(BLUE, 1)]);
        let split = plan(&current, BLUE, GREEN, &[10, 25, 50, 100]).unwrap();
        assert_eq!(split.prepare, Some(fwd(&[(BLUE, 1), (GREEN, 0)])));
        assert_eq!(
            weights(&split),
            [vec![90, 10], vec![75, 25], vec![50, 50], vec![0, 100]]
        );
        assert_eq!(split.original, current);
    }

    #[test]
    fn other_groups_keep_their_weights_and_their_share() {
        let sticky = Some(Stickiness {
            enabled: true,
            duration_seconds: Some(300),
        });
        let current = Forward {
            stickiness: sticky,
            ..fwd(&[(CANARY, 50), (BLUE, 150), (GREEN, 50)])
        };
        let split = plan(&current, BLUE, GREEN, &[50, 100]).unwrap();
        assert_eq!(split.prepare, None);
        assert_eq!(weights(&split), [vec![50, 100, 100], vec![50, 0, 200]]);
        for s in &split.steps {
            assert_eq!(s.forward.stickiness, sticky, "stickiness is kept");
            assert_eq!(s.forward.percent_of(CANARY), 20.0);
        }
    }

    #[test]
    fn rounds_half_up_and_always_sums_to_the_pool() {
        let current = fwd(&[(CANARY, 1), (BLUE, 333)]);
        let split = plan(&current, BLUE, GREEN, &[1, 33, 50, 99, 100]).unwrap();
        for s in &split.steps {
            let blue = s.forward.weight_of(BLUE).unwrap();
            let green = s.forward.weight_of(GREEN).unwrap();
            assert_eq!(blue + green, 333, "{s:?}");
        }
        assert_eq!(split.steps[2].forward.weight_of(GREEN), Some(167));
    }

    #[test]
    fn refuses_bad_input_with_what_to_change() {
        let cases: Vec<(Forward, &str, &str, Vec<u32>, &str)> = vec![
            (fwd(&[(BLUE, 1)]), BLUE, GREEN, vec![], "increasing order"),
            (
                fwd(&[(BLUE, 1)]),
                BLUE,
                GREEN,
                vec![0, 50],
                "between 1 and 100",
            ),
            (
                fwd(&[(BLUE, 1)]),
                BLUE,
                GREEN,
                vec![50, 101],
                "between 1 and 100",
            ),
            (fwd(&[(BLUE, 1)]), BLUE, GREEN, vec![50, 25], "increasing"),
            (
                fwd(&[(BLUE, 1)]),
                BLUE,
                BLUE,
                vec![100],
                "different target groups",
            ),
            (
                fwd(&[(CANARY, 1)]),
                BLUE,
                GREEN,
                vec![100],
                "forwards to canary=1",
            ),
            (
                fwd(&[(BLUE, 1), ("a", 1), ("b", 1), ("c", 1), ("d", 1)]),
                BLUE,
                GREEN,
                vec![100],
                "remove one first",
            ),
            (
                fwd(&[(BLUE, 1000)]),
                BLUE,
                GREEN,
                vec![100],
                "maximum of 999",
            ),
            (
                fwd(&[(CANARY, 1), (BLUE, 10)]),
                BLUE,
                GREEN,
                vec![100],
                "at least 100",
            ),
            (
                fwd(&[(CANARY, 1), (BLUE, 600), (GREEN, 600)]),
                BLUE,
                GREEN,
                vec![100],
                "lower the weights",
            ),
            (
                fwd(&[(CANARY, 1), (BLUE, 0)]),
                BLUE,
                GREEN,
                vec![100],
                "weight 0",
            ),
        ];
        for (current, from, to, steps, expected) in cases {
            let err = plan(&current, from, to, &steps).expect_err(expected);
            assert!(
                err.to_string().contains(expected),
                "{err} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn stickiness_off_reads_the_same_as_none() {
        let a = fwd(&[(BLUE, 1)]);
        let off = Forward {
            stickiness: Some(Stickiness {
                enabled: false,
                duration_seconds: None,
            }),
            ..a.clone()
        };
        let on = Forward {
            stickiness: Some(Stickiness {
                enabled: true,
                duration_seconds: Some(60),
            }),
            ..a.clone()
        };
        assert!(a.same_as(&off));
        assert!(!a.same_as(&on));
        assert!(!a.same_as(&fwd(&[(BLUE, 2)])));
        assert_eq!(on.sticky_seconds(), Some(60));
        assert_eq!(on.show(), "blue=1 (sticky 60 s)");
    }
}
