//! Which network addresses souk may call a seller at. Loopback, private, link-local, shared
//! (CGNAT), unspecified, multicast and cloud-metadata addresses reach souk's own host or
//! network rather than a seller on the internet, so calls to them are refused unless an operator
//! allows the network explicitly.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` is not a public address, or `None` when it is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4-mapped address (::ffff:a.b.c.d) reaches the IPv4 host.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            non_public_v6(v6)
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("a shared (CGNAT) address")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("an unspecified address")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("a multicast or reserved address")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if s == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// The networks an operator allows seller endpoints in, on top of the public internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SellerNetworks {
    /// Networks allowed even though they are not public (e.g. `127.0.0.0/8` for development).
    pub allowed: Vec<IpNet>,
}

impl SellerNetworks {
    /// Whether `ip` is inside an explicitly allowed network.
    pub fn explicitly_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// `Err(reason)` when souk must not call `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        match non_public(ip) {
            Some(_) if self.explicitly_allowed(ip) => Ok(()),
            Some(what) => Err(format!(
                "{ip} is {what}; seller endpoints must be public unless an operator allows the network (allowed_seller_networks)"
            )),
            None => Ok(()),
        }
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they reach, so one network list covers both.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The host of an absolute URL: a literal address, or a name to resolve when calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `http://10.0.0.1/`, `http://[::1]/`.
    Ip(IpAddr),
    /// `https://seller.example.com/`.
    Name(String),
}

/// The host part of `url` (scheme://[user@]host[:port]/...); `None` when there is none.
pub fn url_host(url: &str) -> Option<Host> {
    let rest = url.split_once("://")?.1;
    // As HTTP clients read it: a backslash ends the authority too.
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next()?
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    if host.is_empty() {
        return None;
    }
    Some(match host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(host.trim_end_matches('.').to_ascii_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_every_non_public_range() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(non_public(ip(bad)).is_some(), "{bad}");
            assert!(SellerNetworks::default().check(ip(bad)).is_err(), "{bad}");
        }
        for good in ["93.184.216.34", "100.128.0.1", "2606:4700::1111", "8.8.8.8"] {
            assert!(non_public(ip(good)).is_none(), "{good}");
        }
    }

    #[test]
    fn allowed_networks_are_networks_not_prefixes() {
        let n = SellerNetworks {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(n.check(ip("127.0.0.1")).is_ok());
        assert!(n.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(n.check(ip("10.0.0.1")).is_err());
        assert!(n.check(ip("::1")).is_err());
    }

    #[test]
    fn finds_the_host_of_a_url() {
        assert_eq!(
            url_host("http://127.attacker.example:80/x"),
            Some(Host::Name("127.attacker.example".into()))
        );
        assert_eq!(
            url_host("https://169.254.169.254/latest"),
            Some(Host::Ip(ip("169.254.169.254")))
        );
        assert_eq!(url_host("http://[::1]:9/x"), Some(Host::Ip(ip("::1"))));
        assert_eq!(url_host("nope"), None);
        assert_eq!(
            url_host("https://127.0.0.2:18443\\:x"),
            Some(Host::Ip(ip("127.0.0.2")))
        );
    }
}
