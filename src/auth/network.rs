//! Who is calling, by address: the client address behind trusted proxies, and CIDR
//! allowlists.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

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
    ///
    /// `forwarded_for` holds the raw values of every `X-Forwarded-For` header in the order
    /// received. Entries are read one by one, right to left across the headers, with or
    /// without a port (`1.2.3.4:5678`, `[2001:db8::1]:443`); a garbled entry (not an
    /// address, not ASCII) ends the walk at that hop, without discarding the entries to
    /// its right.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: &[&[u8]]) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = forwarded_for
            .iter()
            .rev()
            .flat_map(|header| header.rsplit(|b| *b == b','));
        let mut client = peer;
        for hop in hops {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                // A garbled entry: nothing left of it can be trusted either.
                None => break,
            }
        }
        client
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether the global allowlist admits `ip` (an empty list admits everyone).
    pub fn allows(&self, ip: IpAddr) -> bool {
        cidrs_allow(&self.allow, ip)
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (IPv6 in brackets then).
fn parse_hop(raw: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    if !text.is_ascii() {
        return None;
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address.ip());
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
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

    /// The client behind `peer` with one `X-Forwarded-For` header, if any.
    fn client(n: &Network, peer: &str, header: Option<&str>) -> IpAddr {
        let headers: Vec<&[u8]> = header.iter().map(|h| h.as_bytes()).collect();
        n.client_ip(ip(peer), &headers)
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
            client(&n, "198.51.100.7", Some("203.0.113.9")),
            ip("198.51.100.7"),
            "an untrusted peer cannot claim another address"
        );
        assert_eq!(
            client(&n, "10.0.1.2", Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(client(&n, "10.0.1.2", None), ip("10.0.1.2"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let n = network();
        assert_eq!(
            client(&n, "10.0.1.2", Some("1.2.3.4, 203.0.113.9, 10.0.5.5")),
            ip("203.0.113.9"),
            "a client-written left entry is ignored"
        );
        assert_eq!(
            client(&n, "fd00::1", Some("2001:db8::5")),
            ip("2001:db8::5")
        );
        assert_eq!(
            client(&n, "10.0.1.2", Some("garbage, 10.0.0.9")),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn entries_may_carry_a_port() {
        let n = network();
        assert_eq!(
            client(&n, "10.0.1.2", Some("203.0.113.9:5678")),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&n, "10.0.1.2", Some("[2001:db8::1]:443")),
            ip("2001:db8::1")
        );
        assert_eq!(
            client(&n, "10.0.1.2", Some("[2001:db8::1]")),
            ip("2001:db8::1")
        );
        assert_eq!(
            client(
                &n,
                "10.0.1.2",
                Some("198.51.100.1, 10.0.0.9:80, [fd00::2]:8080")
            ),
            ip("198.51.100.1"),
            "trusted hops with ports are walked past"
        );
    }

    #[test]
    fn a_bad_entry_ends_the_walk_at_that_hop() {
        let n = network();
        for garbled in [
            "garbage",
            "203.0.113.9:port",
            "2001:db8::1]:443",
            "",
            "1.2.3.4\u{e9}",
        ] {
            assert_eq!(
                client(
                    &n,
                    "10.0.1.2",
                    Some(&format!("198.51.100.1, {garbled}, 10.0.0.9"))
                ),
                ip("10.0.0.9"),
                "{garbled:?}"
            );
        }
    }

    #[test]
    fn a_non_ascii_header_does_not_discard_the_others() {
        let n = network();
        let headers: [&[u8]; 2] = [b"198.51.100.1", b"\xff\xfe, 203.0.113.9"];
        assert_eq!(n.client_ip(ip("10.0.1.2"), &headers), ip("203.0.113.9"));
        let headers: [&[u8]; 2] = [b"198.51.100.1", b"10.0.0.9, caf\xc3\xa9"];
        assert_eq!(
            n.client_ip(ip("10.0.1.2"), &headers),
            ip("10.0.1.2"),
            "the garbled right-most entry ends the walk at the peer"
        );
        let headers: [&[u8]; 2] = [b"\xff", b"10.0.0.9"];
        assert_eq!(n.client_ip(ip("10.0.1.2"), &headers), ip("10.0.0.9"));
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
