//! Address arithmetic and AWS's rules for it, as data.
//!
//! Sources:
//! - Subnet and VPC block sizes /16 to /28; the first four and the last address of every
//!   subnet are reserved: Amazon VPC User Guide, "Subnet CIDR blocks" and "VPC CIDR
//!   blocks".
//! - IPv4 CIDR blocks per VPC: 5 by default, adjustable up to 50 (Amazon VPC User Guide,
//!   "Amazon VPC quotas").
//! - Which blocks may be associated with a VPC, by the range its primary block is in:
//!   Amazon VPC User Guide, "IPv4 CIDR block association restrictions" ([`RESTRICTIONS`]).
//! - Pods in 100.64.0.0/10 or 198.19.0.0/16 first: EKS Best Practices Guide, "Custom
//!   networking" (CG-NAT space is less likely to be used elsewhere in a corporate network).
//! - /28 prefixes need whole free aligned /28s: scattered addresses make prefix
//!   assignment fail (EKS User Guide, "Increase the available IP addresses": "Using IP
//!   prefixes can fail if IP addresses are scattered throughout the subnet CIDR").

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Addresses AWS reserves in every subnet (network, router, DNS, future use, broadcast).
pub const RESERVED_PER_SUBNET: u64 = 5;
/// The largest subnet or VPC block (smallest prefix length).
pub const MIN_PREFIX: u8 = 16;
/// The smallest subnet or VPC block.
pub const MAX_PREFIX: u8 = 28;
/// IPv4 CIDR blocks per VPC unless the quota was raised.
pub const DEFAULT_CIDR_QUOTA: u32 = 5;

/// `a.b.c.d/len`, for tables known to be valid.
pub const fn net(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len) {
        Ok(n) => n,
        Err(_) => panic!("invalid prefix length in a table"),
    }
}

/// 10.0.0.0/8.
pub const RFC1918_10: Ipv4Net = net(10, 0, 0, 0, 8);
/// 172.16.0.0/12.
pub const RFC1918_172: Ipv4Net = net(172, 16, 0, 0, 12);
/// 192.168.0.0/16.
pub const RFC1918_192: Ipv4Net = net(192, 168, 0, 0, 16);
/// 100.64.0.0/10 (shared address space, CG-NAT).
pub const CGNAT: Ipv4Net = net(100, 64, 0, 0, 10);
/// 198.19.0.0/16 (part of the benchmarking range AWS lets VPCs use).
pub const BENCHMARK_19: Ipv4Net = net(198, 19, 0, 0, 16);

/// The range a VPC's primary block sits in, as the association table names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryRange {
    /// 10.0.0.0/8.
    Ten,
    /// 172.16.0.0/12.
    OneSevenTwo,
    /// 192.168.0.0/16.
    OneNineTwo,
    /// 198.19.0.0/16.
    Benchmark,
    /// Publicly routable, or 100.64.0.0/10.
    PublicOrCgnat,
}

impl PrimaryRange {
    /// The row for a primary block.
    pub fn of(primary: Ipv4Net) -> Self {
        if RFC1918_10.contains(&primary) {
            Self::Ten
        } else if RFC1918_172.contains(&primary) {
            Self::OneSevenTwo
        } else if RFC1918_192.contains(&primary) {
            Self::OneNineTwo
        } else if BENCHMARK_19.contains(&primary) {
            Self::Benchmark
        } else {
            Self::PublicOrCgnat
        }
    }
}

/// One row of AWS's association table: what may not be associated when the primary
/// block is in `primary`. `only_if_primary_within` narrows a restriction to primaries in
/// a smaller range.
#[derive(Debug, Clone, Copy)]
pub struct Restriction {
    /// The primary block's range.
    pub primary: PrimaryRange,
    /// The primary must also be inside this (None: any primary of the row).
    pub only_if_primary_within: Option<Ipv4Net>,
    /// Blocks overlapping this may not be associated.
    pub forbidden: Ipv4Net,
}

const fn r(primary: PrimaryRange, forbidden: Ipv4Net) -> Restriction {
    Restriction {
        primary,
        only_if_primary_within: None,
        forbidden,
    }
}

/// "IPv4 CIDR block association restrictions" (Amazon VPC User Guide), row by row.
/// Everything not forbidden here is permitted (other blocks of the same RFC 1918 range,
/// 100.64.0.0/10, publicly routable blocks).
pub const RESTRICTIONS: &[Restriction] = &[
    r(PrimaryRange::Ten, RFC1918_172),
    r(PrimaryRange::Ten, RFC1918_192),
    Restriction {
        primary: PrimaryRange::Ten,
        only_if_primary_within: Some(net(10, 0, 0, 0, 15)),
        forbidden: net(10, 0, 0, 0, 16),
    },
    r(PrimaryRange::Ten, BENCHMARK_19),
    r(PrimaryRange::OneSevenTwo, RFC1918_10),
    r(PrimaryRange::OneSevenTwo, RFC1918_192),
    r(PrimaryRange::OneSevenTwo, net(172, 31, 0, 0, 16)),
    r(PrimaryRange::OneSevenTwo, BENCHMARK_19),
    r(PrimaryRange::OneNineTwo, RFC1918_10),
    r(PrimaryRange::OneNineTwo, RFC1918_172),
    r(PrimaryRange::OneNineTwo, BENCHMARK_19),
    r(PrimaryRange::Benchmark, RFC1918_10),
    r(PrimaryRange::Benchmark, RFC1918_172),
    r(PrimaryRange::Benchmark, RFC1918_192),
    r(PrimaryRange::PublicOrCgnat, RFC1918_10),
    r(PrimaryRange::PublicOrCgnat, RFC1918_172),
    r(PrimaryRange::PublicOrCgnat, RFC1918_192),
    r(PrimaryRange::PublicOrCgnat, BENCHMARK_19),
];

/// Ranges no VPC block may use (not unicast, or used by AWS/hosts): "this network",
/// loopback, link-local, multicast, reserved. 172.17.0.0/16 is not forbidden by AWS but
/// some AWS services (and Docker) use it, and the VPC User Guide says to avoid it, so
/// baton never proposes it.
pub const NEVER_PROPOSED: &[Ipv4Net] = &[
    net(0, 0, 0, 0, 8),
    net(127, 0, 0, 0, 8),
    net(169, 254, 0, 0, 16),
    net(224, 0, 0, 0, 3),
    net(172, 17, 0, 0, 16),
];

/// Why `block` may not be associated with a VPC whose primary block is `primary`, if it
/// may not.
pub fn association_forbidden(primary: Ipv4Net, block: Ipv4Net) -> Option<String> {
    let row = PrimaryRange::of(primary);
    for rule in RESTRICTIONS.iter().filter(|r| r.primary == row) {
        if rule
            .only_if_primary_within
            .is_some_and(|w| !w.contains(&primary))
        {
            continue;
        }
        if overlaps(rule.forbidden, block) {
            return Some(format!(
                "AWS does not allow a block from {} in a VPC whose primary block is {primary}",
                rule.forbidden
            ));
        }
    }
    NEVER_PROPOSED
        .iter()
        .find(|n| overlaps(**n, block))
        .map(|n| format!("{n} is not usable for a VPC"))
}

/// Whether two blocks share any address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Addresses in a block.
pub fn size(n: Ipv4Net) -> u64 {
    1u64 << (32 - n.prefix_len())
}

/// Addresses a new subnet of this block offers (all but AWS's 5).
pub fn usable(n: Ipv4Net) -> u64 {
    size(n).saturating_sub(RESERVED_PER_SUBNET)
}

/// Whole aligned /28s a subnet can still give as prefixes, in the worst case: the first
/// and the last /28 hold reserved addresses, and each address in use may sit in a /28 of
/// its own (AWS gives out single addresses wherever it likes).
pub fn free_prefixes_worst_case(n: Ipv4Net, used_addresses: u64) -> u64 {
    if n.prefix_len() > MAX_PREFIX {
        return 0;
    }
    let total = 1u64 << (MAX_PREFIX - n.prefix_len());
    total.saturating_sub(2).saturating_sub(used_addresses)
}

/// The smallest subnet prefix length (/28 … /16) that holds `addresses` usable addresses,
/// or, for prefix delegation, `prefixes` whole /28s next to `singles` single addresses in
/// the worst case; None when not even a /16 does.
pub fn subnet_prefix_for(addresses: u64, prefixes: u64, singles: u64) -> Option<u8> {
    (MIN_PREFIX..=MAX_PREFIX).rev().find(|&len| {
        let n = net(10, 0, 0, 0, len);
        usable(n) >= addresses
            && (prefixes == 0 || free_prefixes_worst_case(n, singles) >= prefixes)
    })
}

/// The first aligned block of prefix length `len` inside `within` that overlaps none of
/// `taken`.
pub fn first_free(within: Ipv4Net, len: u8, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    if len < within.prefix_len() || len > 32 {
        return None;
    }
    let step = 1u64 << (32 - len);
    let start = u64::from(u32::from(within.network()));
    let end = start + size(within);
    let mut at = start;
    while at + step <= end {
        let candidate = Ipv4Net::new(Ipv4Addr::from(at as u32), len).ok()?;
        match taken
            .iter()
            .filter(|t| overlaps(**t, candidate))
            .map(|t| u64::from(u32::from(t.broadcast())) + 1)
            .max()
        {
            None => return Some(candidate),
            Some(past) => {
                // Jump past the blocker, to the next aligned start.
                let next = past.max(at + step);
                at = next.div_ceil(step) * step;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn association_table_rows() {
        // (primary, block, allowed)
        for (p, b, ok) in [
            ("10.0.0.0/16", "100.64.0.0/16", true),
            ("10.0.0.0/16", "10.2.0.0/16", true),
            ("10.0.0.0/16", "198.19.0.0/16", false),
            ("10.0.0.0/16", "172.20.0.0/16", false),
            ("10.0.0.0/16", "192.168.0.0/20", false),
            ("10.0.0.0/16", "10.0.128.0/24", false), // primary in 10.0.0.0/15
            ("10.4.0.0/16", "10.0.128.0/24", true),
            ("172.31.0.0/16", "172.31.128.0/20", false),
            ("172.20.0.0/16", "172.21.0.0/16", true),
            ("172.20.0.0/16", "100.64.0.0/16", true),
            ("192.168.0.0/16", "10.1.0.0/16", false),
            ("198.19.0.0/16", "100.64.0.0/16", true),
            ("198.19.0.0/16", "10.0.0.0/16", false),
            ("100.64.0.0/16", "198.19.0.0/16", false),
            ("100.64.0.0/16", "100.65.0.0/16", true),
            ("10.0.0.0/16", "172.17.0.0/16", false),
        ] {
            assert_eq!(
                association_forbidden(n(p), n(b)).is_none(),
                ok,
                "primary {p}, block {b}"
            );
        }
    }

    #[test]
    fn reserved_addresses_and_sizes() {
        assert_eq!(usable(n("10.0.0.0/24")), 251);
        assert_eq!(usable(n("10.0.0.0/28")), 11);
        assert_eq!(subnet_prefix_for(251, 0, 0), Some(24));
        assert_eq!(subnet_prefix_for(252, 0, 0), Some(23));
        assert_eq!(subnet_prefix_for(65_531, 0, 0), Some(16));
        assert_eq!(subnet_prefix_for(65_532, 0, 0), None);
    }

    #[test]
    fn free_addresses_are_not_free_prefixes() {
        // A /24 has 16 /28s; the first and last hold reserved addresses.
        assert_eq!(free_prefixes_worst_case(n("10.0.0.0/24"), 0), 14);
        // 14 scattered addresses can spoil every other /28 although 237 stay free.
        assert_eq!(free_prefixes_worst_case(n("10.0.0.0/24"), 14), 0);
        assert_eq!(free_prefixes_worst_case(n("10.0.0.0/27"), 0), 0);
        // 10 prefixes beside 3 single addresses: a /24 (14 − 3 = 11 ≥ 10).
        assert_eq!(subnet_prefix_for(163, 10, 3), Some(24));
        assert_eq!(subnet_prefix_for(163, 12, 3), Some(23));
    }

    #[test]
    fn first_free_skips_what_is_taken_and_stays_aligned() {
        let taken = [n("10.0.0.0/20"), n("10.0.16.0/22")];
        assert_eq!(
            first_free(n("10.0.0.0/16"), 20, &taken),
            Some(n("10.0.32.0/20"))
        );
        assert_eq!(
            first_free(n("10.0.0.0/16"), 22, &taken),
            Some(n("10.0.20.0/22"))
        );
        assert_eq!(first_free(n("10.0.0.0/24"), 16, &[]), None);
        assert_eq!(first_free(n("10.0.0.0/20"), 20, &taken), None);
    }
}
