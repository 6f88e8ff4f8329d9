//! Who is calling, by address: the client address behind trusted proxies, and CIDR
//! allowlists.

use std::net::IpAddr;

use ipnet::IpNet;

/// Resolves client addresses and checks allowlists.
#[derive(Debug, Clone, Default)]
pub struct Network {
    trusted_proxies: Vec<IpNet>,
    allow: Vec<IpNet>,
}

impl Network {
    pub fn new(trusted_proxies: Vec<IpNet>, allow: Vec<IpNet>) -> Network {
        Network {
            trusted_proxies,
            allow,
        }
    }

    /// The client's address: the socket peer, unless the peer is a trusted proxy; then the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to
    /// its left could have been written by the client).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in header.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                // A garbled entry: nothing left of it can be trusted either.
                Err(_) => break,
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether the global allowlist admits `ip` (an empty list admits everyone).
    pub fn allows(&self, ip: IpAddr) -> bool {
        cidrs_allow(&self.allow, ip)
    }
}

/// Whether `ip` is in one of `cidrs`; an empty list allows every address.
pub fn cidrs_allow(cidrs: &[IpNet], ip: IpAddr) -> bool {
    cidrs.is_empty() || cidrs.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn network() -> Network {
        Network::new(
            vec!["10.0.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
            vec![
                "203.0.113.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
        )
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let n = network();
        assert_eq!(
            n.client_ip(ip("198.51.100.7"), Some("203.0.113.9")),
            ip("198.51.100.7"),
            "an untrusted peer cannot claim another address"
        );
        assert_eq!(
            n.client_ip(ip("10.0.1.2"), Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(n.client_ip(ip("10.0.1.2"), None), ip("10.0.1.2"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let n = network();
        assert_eq!(
            n.client_ip(ip("10.0.1.2"), Some("1.2.3.4, 203.0.113.9, 10.0.5.5")),
            ip("203.0.113.9"),
            "a client-written left entry is ignored"
        );
        assert_eq!(
            n.client_ip(ip("fd00::1"), Some("2001:db8::5")),
            ip("2001:db8::5")
        );
        assert_eq!(
            n.client_ip(ip("10.0.1.2"), Some("garbage, 10.0.0.9")),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn allowlists_cover_both_families() {
        let n = network();
        assert!(n.allows(ip("203.0.113.200")));
        assert!(n.allows(ip("2001:db8:1::1")));
        assert!(!n.allows(ip("198.51.100.1")));
        assert!(!n.allows(ip("2001:db9::1")));
        assert!(Network::default().allows(ip("198.51.100.1")));
    }
}
