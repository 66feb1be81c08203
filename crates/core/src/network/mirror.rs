//! Giving green the network access blue has: every security-group rule that admits one
//! of blue's ranges (e.g. the database's port from blue's node and pod subnets) gets the
//! same protocol and ports for each of green's ranges, unless the group already admits
//! that range there.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::cidr::overlaps;

/// An inbound rule as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`, or `-1` (all).
    pub protocol: String,
    /// First port (None: all).
    pub from_port: Option<i32>,
    /// Last port.
    pub to_port: Option<i32>,
    /// Admitted IPv4 blocks.
    pub cidrs: Vec<Ipv4Net>,
}

impl Rule {
    /// Whether this rule admits everything `other` would on protocol and ports.
    fn covers_ports_of(&self, other: &Rule) -> bool {
        if self.protocol == "-1" {
            return true;
        }
        self.protocol == other.protocol
            && match (self.from_port, self.to_port, other.from_port, other.to_port) {
                (None, None, _, _) => true,
                (Some(f), Some(t), Some(of), Some(ot)) => f <= of && ot <= t,
                _ => false,
            }
    }
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// `sg-…`
    pub id: String,
    /// Name.
    pub name: String,
    /// Inbound rules.
    pub rules: Vec<Rule>,
}

/// One rule to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    /// Group id.
    pub group_id: String,
    /// Group name.
    pub group_name: String,
    /// Protocol.
    pub protocol: String,
    /// First port.
    pub from_port: Option<i32>,
    /// Last port.
    pub to_port: Option<i32>,
    /// Blue's ranges the existing rule admits.
    pub blue: Vec<Ipv4Net>,
    /// Green's ranges to admit.
    pub add: Vec<Ipv4Net>,
}

/// The rules to add so that green's ranges (`to`) get what blue's (`from`) have.
/// Already-admitted green ranges are left out, so a second run finds nothing.
pub fn mirror(groups: &[Group], from: &[Ipv4Net], to: &[Ipv4Net]) -> Vec<Mirror> {
    let mut out: Vec<Mirror> = Vec::new();
    for g in groups {
        for rule in &g.rules {
            let blue: Vec<Ipv4Net> = rule
                .cidrs
                .iter()
                .copied()
                .filter(|c| from.iter().any(|f| overlaps(*f, *c)))
                .collect();
            if blue.is_empty() {
                continue;
            }
            let add: Vec<Ipv4Net> = to
                .iter()
                .copied()
                .filter(|t| {
                    !g.rules
                        .iter()
                        .any(|r| r.covers_ports_of(rule) && r.cidrs.iter().any(|c| c.contains(t)))
                })
                .collect();
            if add.is_empty() {
                continue;
            }
            // One entry per group, protocol and ports, however many rules matched.
            match out.iter_mut().find(|m| {
                m.group_id == g.id
                    && m.protocol == rule.protocol
                    && m.from_port == rule.from_port
                    && m.to_port == rule.to_port
            }) {
                Some(m) => {
                    for b in blue {
                        if !m.blue.contains(&b) {
                            m.blue.push(b);
                        }
                    }
                    for a in add {
                        if !m.add.contains(&a) {
                            m.add.push(a);
                        }
                    }
                }
                None => out.push(Mirror {
                    group_id: g.id.clone(),
                    group_name: g.name.clone(),
                    protocol: rule.protocol.clone(),
                    from_port: rule.from_port,
                    to_port: rule.to_port,
                    blue,
                    add,
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn pg(cidrs: &[&str]) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from_port: Some(5432),
            to_port: Some(5432),
            cidrs: cidrs.iter().map(|c| n(c)).collect(),
        }
    }

    #[test]
    fn a_rule_admitting_blue_is_mirrored_for_green_once() {
        let groups = [Group {
            id: "sg-db".into(),
            name: "orders-db".into(),
            rules: vec![
                pg(&["10.0.0.0/20", "100.64.0.0/19"]),
                Rule {
                    protocol: "tcp".into(),
                    from_port: Some(22),
                    to_port: Some(22),
                    cidrs: vec![n("192.0.2.0/24")],
                },
            ],
        }];
        let blue = [n("10.0.0.0/20"), n("100.64.0.0/19")];
        let green = [n("10.1.0.0/20"), n("100.64.96.0/19")];
        let m = mirror(&groups, &blue, &green);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].from_port, Some(5432));
        assert_eq!(m[0].add, green.to_vec());

        // Once green's ranges are admitted, nothing is left to add.
        let mut after = groups.clone();
        after[0].rules.push(pg(&["10.1.0.0/20", "100.64.96.0/19"]));
        assert!(mirror(&after, &blue, &green).is_empty());
    }

    #[test]
    fn a_wider_rule_already_admitting_green_needs_nothing() {
        let groups = [Group {
            id: "sg-db".into(),
            name: "db".into(),
            rules: vec![pg(&["10.0.0.0/20"]), pg(&["10.0.0.0/8"])],
        }];
        assert!(mirror(&groups, &[n("10.0.0.0/20")], &[n("10.1.0.0/20")]).is_empty());
        // A rule for all protocols counts too; one for another port does not.
        let other_port = [Group {
            id: "sg".into(),
            name: "x".into(),
            rules: vec![
                pg(&["10.0.0.0/20"]),
                Rule {
                    protocol: "tcp".into(),
                    from_port: Some(80),
                    to_port: Some(80),
                    cidrs: vec![n("10.1.0.0/20")],
                },
            ],
        }];
        assert_eq!(
            mirror(&other_port, &[n("10.0.0.0/20")], &[n("10.1.0.0/20")]).len(),
            1
        );
    }

    #[test]
    fn rules_not_admitting_blue_are_left_alone() {
        let groups = [Group {
            id: "sg".into(),
            name: "x".into(),
            rules: vec![pg(&["192.0.2.0/24"])],
        }];
        assert!(mirror(&groups, &[n("10.0.0.0/20")], &[n("10.1.0.0/20")]).is_empty());
    }
}
