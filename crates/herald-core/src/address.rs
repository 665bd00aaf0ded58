//! Which network addresses webhooks may be delivered to.
//!
//! By default Herald refuses loopback, private, link-local, CGNAT (shared), multicast,
//! broadcast, unspecified, documentation and other reserved addresses, IPv4 and IPv6
//! alike. IPv6 spellings that carry an IPv4 address are judged as that IPv4 address:
//! IPv4-mapped (`::ffff:0:0/96`), IPv4-translated (`::ffff:0:0:0/96`), IPv4-compatible
//! (`::/96`, deprecated) and the well-known NAT64 prefix (`64:ff9b::/96`); the rest of
//! `::/8` and the local-use NAT64 prefix (`64:ff9b:1::/48`) are refused. An allowlist
//! of networks admits chosen ranges, for local development and tests
//! (`127.0.0.1/32`, say).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The verdict on an address that is refused, naming the range it falls in.
///
/// Its text names the range but never the address: it reaches tenants (test
/// deliveries, the history, dead letters), and the address a name resolved to inside
/// the network would make Herald a DNS oracle. `addr` is there for operators' logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: the destination is a {range} address, not allowed for webhook delivery (allow it with HERALD_ALLOW_PRIVATE_NETWORKS)")]
pub struct RefusedAddress {
    pub addr: IpAddr,
    pub range: &'static str,
}

/// A network list that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a network (use CIDR notation such as 127.0.0.1/32 or ::1/128, or a bare address)"
)]
pub struct BadNetwork(pub String);

/// Decides whether an address may be connected to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl std::fmt::Display for AddressPolicy {
    /// The allowlist as [`AddressPolicy::with_allowlist`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.allowed.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

impl std::str::FromStr for AddressPolicy {
    type Err = BadNetwork;

    /// The policy of [`AddressPolicy::with_allowlist`].
    fn from_str(list: &str) -> Result<Self, BadNetwork> {
        Self::with_allowlist(list)
    }
}

impl AddressPolicy {
    /// Refuses every non-public address.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Parses a comma-separated allowlist of networks (CIDR or bare addresses).
    pub fn with_allowlist(list: &str) -> Result<Self, BadNetwork> {
        let allowed = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadNetwork(s.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// The allowed networks.
    pub fn allowlist(&self) -> &[IpNet] {
        &self.allowed
    }

    /// `Ok` if `addr` may be connected to.
    pub fn check(&self, addr: IpAddr) -> Result<(), RefusedAddress> {
        let canonical = canonical(addr);
        if self
            .allowed
            .iter()
            .any(|net| net.contains(&addr) || net.contains(&canonical))
        {
            return Ok(());
        }
        match special_range(canonical) {
            None => Ok(()),
            Some(range) => Err(RefusedAddress { addr, range }),
        }
    }
}

/// The IPv4 address an IPv6 address carries, as that IPv4 address: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, not `::` or `::1`) and NAT64 (`64:ff9b::a.b.c.d`); anything else
/// unchanged.
fn canonical(addr: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = addr else {
        return addr;
    };
    let s = v6.segments();
    let embedded = match s {
        [0, 0, 0, 0, 0, 0xffff, ..]
        | [0, 0, 0, 0, 0xffff, 0, ..]
        | [0x0064, 0xff9b, 0, 0, 0, 0, ..] => true,
        [0, 0, 0, 0, 0, 0, ..] => !v6.is_loopback() && !v6.is_unspecified(),
        _ => false,
    };
    if !embedded {
        return addr;
    }
    let [.., a, b, c, d] = v6.octets();
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The name of the special-purpose range `addr` is in, or `None` for a public address.
fn special_range(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        _ if ip.is_unspecified() => "unspecified",
        [0, ..] => "\"this network\" (0.0.0.0/8)",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        [100, b, ..] if (64..128).contains(&b) => "CGNAT shared (100.64.0.0/10)",
        _ if ip.is_link_local() => "link-local",
        [192, 0, 0, _] => "IETF protocol assignment (192.0.0.0/24)",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18 | 19, ..] => "benchmarking (198.18.0.0/15)",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        [240..=255, ..] => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_multicast() => "multicast",
        [a, ..] if a & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        [a, ..] if a & 0xffc0 == 0xfe80 => "link-local",
        [a, ..] if a & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        [0x2001, 0x0db8, ..] => "documentation",
        [0x0064, 0xff9b, 1, ..] => "NAT64 local-use (64:ff9b:1::/48)",
        [a, ..] if a < 0x0100 => "reserved (::/8)",
        [0x0100, 0, 0, 0, ..] => "discard-only (100::/64)",
        [0x2001, b, ..] if b < 0x0200 => "IETF protocol assignment (2001::/23)",
        [0x2002, ..] => "6to4 (2002::/16)",
        _ => return None,
    })
}

/// A port outside [`PortPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: port {port} is not allowed for webhook delivery (allowed: {allowed}; HERALD_ALLOWED_PORTS)")]
pub struct RefusedPort {
    pub port: u16,
    pub allowed: String,
}

/// A port list that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a port or a port range (use a list such as 443,8000-8999)")]
pub struct BadPorts(pub String);

/// Which destination ports webhooks may be delivered to: a comma-separated list of
/// ports and inclusive ranges (`443,8000-8999`); empty allows every port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPolicy {
    allowed: Vec<(u16, u16)>,
}

impl PortPolicy {
    /// Allows every port.
    pub fn any() -> Self {
        Self::default()
    }

    /// `Ok` if `port` may be connected to.
    pub fn check(&self, port: u16) -> Result<(), RefusedPort> {
        if self.allowed.is_empty()
            || self
                .allowed
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&port))
        {
            return Ok(());
        }
        Err(RefusedPort {
            port,
            allowed: self.to_string(),
        })
    }
}

impl std::fmt::Display for PortPolicy {
    /// The list as [`PortPolicy::from_str`](std::str::FromStr) reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self
            .allowed
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        f.write_str(&list.join(","))
    }
}

impl std::str::FromStr for PortPolicy {
    type Err = BadPorts;

    fn from_str(list: &str) -> Result<Self, BadPorts> {
        let port = |s: &str, whole: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| BadPorts(whole.to_owned()))
        };
        let allowed = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| match item.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (port(lo, item)?, port(hi, item)?);
                    if lo > hi {
                        return Err(BadPorts(item.to_owned()));
                    }
                    Ok((lo, hi))
                }
                None => port(item, item).map(|p| (p, p)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        AddressPolicy::strict().check(s.parse().unwrap()).is_err()
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert!(!refused(a), "{a} should be allowed");
        }
    }

    #[test]
    fn every_special_range_is_refused() {
        for a in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "fec0::1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "100::1",
            "2002::1",
        ] {
            assert!(refused(a), "{a} should be refused");
        }
    }

    fn range(s: &str) -> &'static str {
        AddressPolicy::strict()
            .check(s.parse().unwrap())
            .unwrap_err()
            .range
    }

    #[test]
    fn ipv4_mapped_is_judged_as_ipv4() {
        assert!(refused("::ffff:127.0.0.1"));
        assert!(refused("::ffff:10.1.2.3"));
        assert!(refused("::ffff:169.254.169.254"));
        assert_eq!(range("::ffff:192.168.0.1"), "private");
        assert!(!refused("::ffff:8.8.8.8"));
    }

    #[test]
    fn ipv4_translated_is_judged_as_ipv4() {
        // ::ffff:0:0:0/96 (RFC 2765): before, these fell through as public IPv6.
        assert_eq!(range("::ffff:0:127.0.0.1"), "loopback");
        assert_eq!(range("::ffff:0:10.0.0.1"), "private");
        assert_eq!(range("::ffff:0:169.254.169.254"), "link-local");
        assert!(!refused("::ffff:0:8.8.8.8"));
    }

    #[test]
    fn ipv4_compatible_is_judged_as_ipv4() {
        assert_eq!(range("::127.0.0.1"), "loopback");
        assert_eq!(range("::10.0.0.1"), "private");
        assert_eq!(range("::169.254.169.254"), "link-local");
        assert!(!refused("::8.8.8.8"));
        // `::` and `::1` stay themselves.
        assert_eq!(range("::"), "unspecified");
        assert_eq!(range("::1"), "loopback");
    }

    #[test]
    fn the_rest_of_the_reserved_zero_prefix_is_refused() {
        for a in [
            "::1:0:0:1",
            "0:0:0:1::1",
            "0:1::8.8.8.8",
            "ff::1",
            "::fffe:0:0:1",
        ] {
            assert_eq!(range(a), "reserved (::/8)", "{a}");
        }
    }

    #[test]
    fn nat64_is_judged_by_the_ipv4_it_carries() {
        // Before, the whole well-known prefix was refused.
        assert!(!refused("64:ff9b::8.8.8.8"));
        assert!(!refused("64:ff9b::5db8:d822"), "93.184.216.34");
        assert_eq!(range("64:ff9b::10.0.0.1"), "private");
        assert_eq!(range("64:ff9b::127.0.0.1"), "loopback");
        assert_eq!(range("64:ff9b::169.254.169.254"), "link-local");
    }

    #[test]
    fn local_use_nat64_is_refused() {
        for a in ["64:ff9b:1::1", "64:ff9b:1::8.8.8.8", "64:ff9b:1:ffff::1"] {
            assert_eq!(range(a), "NAT64 local-use (64:ff9b:1::/48)", "{a}");
        }
    }

    #[test]
    fn the_allowlist_admits_exactly_its_networks() {
        let p = AddressPolicy::with_allowlist("127.0.0.1/32, ::1, 10.1.0.0/16").unwrap();
        assert!(p.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("::1".parse().unwrap()).is_ok());
        assert!(p.check("10.1.200.3".parse().unwrap()).is_ok());
        assert!(p.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(p.check("10.2.0.1".parse().unwrap()).is_err());
        assert_eq!(
            AddressPolicy::with_allowlist("").unwrap(),
            AddressPolicy::strict()
        );
        assert!(AddressPolicy::with_allowlist("localhost").is_err());
    }

    #[test]
    fn refusals_name_the_range_and_the_setting() {
        let err = AddressPolicy::strict()
            .check("169.254.169.254".parse().unwrap())
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("link-local") && msg.contains("HERALD_ALLOW_PRIVATE_NETWORKS"),
            "{msg}"
        );
        assert!(msg.contains("refused"), "{msg}");
    }

    #[test]
    fn refusals_never_name_the_address() {
        for a in [
            "169.254.169.254",
            "10.20.30.40",
            "fd12:3456::1",
            "::ffff:0:10.9.8.7",
            "64:ff9b::10.9.8.7",
        ] {
            let addr: IpAddr = a.parse().unwrap();
            let err = AddressPolicy::strict().check(addr).unwrap_err();
            let msg = err.to_string();
            assert!(
                !msg.contains(a) && !msg.contains(&addr.to_string()),
                "{msg}"
            );
            assert!(!msg.contains("10.9.8.7"), "{msg}");
            assert_eq!(err.addr, addr, "kept for logs");
        }
    }

    fn ports(list: &str) -> PortPolicy {
        list.parse().unwrap()
    }

    #[test]
    fn every_port_is_allowed_by_default() {
        assert_eq!(ports(""), PortPolicy::any());
        assert_eq!(ports(" , "), PortPolicy::any());
        for p in [1, 22, 80, 443, 6379, 65535] {
            assert!(PortPolicy::any().check(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn a_port_list_allows_exactly_its_ports_and_ranges() {
        let policy = ports("443, 8000-8999,80");
        for p in [80, 443, 8000, 8500, 8999] {
            assert!(policy.check(p).is_ok(), "{p}");
        }
        for p in [22, 79, 444, 7999, 9000, 6379] {
            let err = policy.check(p).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("refused")
                    && msg.contains(&p.to_string())
                    && msg.contains("HERALD_ALLOWED_PORTS"),
                "{msg}"
            );
        }
        assert_eq!(policy.to_string(), "443,8000-8999,80");
        assert_eq!(ports(&policy.to_string()), policy);
        assert_eq!(ports("443-443").to_string(), "443");
    }

    #[test]
    fn bad_port_lists_are_refused() {
        for bad in [
            "https",
            "0",
            "65536",
            "9000-8000",
            "80-",
            "-80",
            "1-2-3",
            "443;80",
        ] {
            assert!(bad.parse::<PortPolicy>().is_err(), "{bad}");
        }
    }
}
