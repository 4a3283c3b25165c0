//! The visitor's IP address: which one to believe, whether it may be tracked, and how
//! to anonymise it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Loopback, private (RFC 1918, unique local), link-local, CGNAT and unspecified addresses.
pub fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(&IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The client of a request that came from `peer`: `client_ip` over every
/// `X-Forwarded-For` line, believing the proxies `proxies` names (see `client_ip`).
pub fn client_of(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    proxies: Option<&[Block]>,
) -> IpAddr {
    client_ip(peer, forwarded_for(headers).as_deref(), proxies)
}

/// Every `X-Forwarded-For` line as one list: a proxy may add a line of its own instead
/// of appending to the one the client sent, and the last hops are the ones to believe.
pub fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

/// The client: the socket peer, unless the peer is a trusted proxy, in which case the
/// right-most address of `X-Forwarded-For` that is not a trusted proxy (the last hop a
/// trusted proxy saw). Trusted proxies are the `[server] trusted_proxies` blocks, or by
/// default any private address. Any other peer cannot spoof its address with headers.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, proxies: Option<&[Block]>) -> IpAddr {
    let trusted = |ip: &IpAddr| match proxies {
        None => is_private(ip),
        Some(blocks) => blocks.iter().any(|b| b.contains(ip)),
    };
    if !trusted(&peer) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    // From the right, each hop is what a trusted proxy saw. A hop that cannot be read
    // ends the walk: what lies left of it was written by no one to believe.
    let mut client = peer;
    for hop in list.rsplit(',') {
        let Some(ip) = hop_address(hop.trim()) else {
            break;
        };
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    client
}

/// A forwarded hop's address: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:443` (some proxies add the port).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// A CIDR block or a single address from the configuration.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Block {
    addr: IpAddr,
    prefix: u8,
}

/// `addr/prefix`, or the address alone for a single one (`127.0.0.*` shows as
/// `127.0.0.0/24`).
impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        match self.prefix == full {
            true => write!(f, "{}", self.addr),
            false => write!(f, "{}/{}", self.addr, self.prefix),
        }
    }
}

impl TryFrom<String> for Block {
    type Error = String;
    fn try_from(s: String) -> Result<Block, String> {
        Block::parse(&s)
    }
}

impl Block {
    /// An address, a CIDR block (`10.0.0.0/8`), or Mautic's IPv4 wildcard form with
    /// trailing `*` octets (`192.168.*.*`).
    pub fn parse(s: &str) -> Result<Block, String> {
        if s.contains('*') {
            return Self::parse_wildcard(s);
        }
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}' has an invalid prefix length"))?,
            None => max,
        };
        Ok(Block { addr, prefix })
    }

    fn parse_wildcard(s: &str) -> Result<Block, String> {
        let bad = || format!("'{s}' is not an IP address, CIDR block or a.b.c.* wildcard");
        let octets: Vec<&str> = s.trim().split('.').collect();
        let fixed = octets.iter().take_while(|o| **o != "*").count();
        if octets.len() != 4 || fixed == 0 || octets[fixed..].iter().any(|o| *o != "*") {
            return Err(bad());
        }
        let zeroed: Vec<&str> = octets
            .iter()
            .map(|o| if *o == "*" { "0" } else { o })
            .collect();
        let addr: IpAddr = zeroed.join(".").parse().map_err(|_| bad())?;
        Ok(Block {
            addr,
            prefix: 8 * fixed as u8,
        })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                (u32::from(a) & mask) == (u32::from(*b) & mask)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                (u128::from(a) & mask) == (u128::from(*b) & mask)
            }
            (IpAddr::V6(_), IpAddr::V4(b)) => self.contains(&IpAddr::V6(b.to_ipv6_mapped())),
            (IpAddr::V4(_), IpAddr::V6(b)) => b
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(&IpAddr::V4(v4))),
        }
    }
}

/// Drops the host part: the last octet of IPv4, all but the first 48 bits of IPv6.
pub fn anonymize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_ranges() {
        for p in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(&ip(p)), "{p}");
        }
        for p in [
            "8.8.8.8",
            "192.0.2.1",
            "2001:db8::1",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert!(!is_private(&ip(p)), "{p}");
        }
    }

    #[test]
    fn every_forwarded_line_is_read() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(super::forwarded_for(&headers), None);
        headers.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        headers.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        let list = super::forwarded_for(&headers);
        assert_eq!(list.as_deref(), Some("6.6.6.6,1.2.3.4"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), list.as_deref(), None),
            ip("1.2.3.4"),
            "the proxy's own line, not the client's"
        );
    }

    #[test]
    fn forwarded_for() {
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), None),
            ip("203.0.113.9"),
            "a public peer cannot spoof"
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("1.2.3.4, 10.0.0.2"), None),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("6.6.6.6, 1.2.3.4"), None),
            ip("1.2.3.4"),
            "right-most public hop"
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("garbage"), None),
            ip("127.0.0.1")
        );
        for (list, client) in [
            ("6.6.6.6, 1.2.3.4:5678", "1.2.3.4"),
            ("6.6.6.6, [2001:db8::1]:443", "2001:db8::1"),
            ("6.6.6.6, [2001:db8::7]", "2001:db8::7"),
            ("6.6.6.6, unknown", "127.0.0.1"),
            ("6.6.6.6, unknown, 10.0.0.2", "10.0.0.2"),
        ] {
            assert_eq!(
                client_ip(ip("127.0.0.1"), Some(list), None),
                ip(client),
                "{list}: an unreadable hop ends the walk, the client's own words are not read"
            );
        }
        assert_eq!(client_ip(ip("127.0.0.1"), None, None), ip("127.0.0.1"));
        // Listed proxies only: another private peer is the client itself, and a listed
        // proxy's forwarded hops are read past the proxies listed.
        let proxies = [
            Block::parse("10.0.0.5").unwrap(),
            Block::parse("10.1.0.0/16").unwrap(),
        ];
        assert_eq!(
            client_ip(ip("192.168.1.20"), Some("6.6.6.6"), Some(&proxies)),
            ip("192.168.1.20"),
            "a LAN client is no proxy"
        );
        assert_eq!(
            client_ip(
                ip("10.0.0.5"),
                Some("6.6.6.6, 192.168.1.20, 10.1.2.3"),
                Some(&proxies)
            ),
            ip("192.168.1.20")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("6.6.6.6"), Some(&[])),
            ip("127.0.0.1"),
            "none trusted: the header is ignored"
        );
    }

    #[test]
    fn blocks_show_as_cidr() {
        for (written, shown) in [
            ("192.0.2.0/24", "192.0.2.0/24"),
            ("127.0.0.*", "127.0.0.0/24"),
            ("10.0.0.5", "10.0.0.5"),
            ("fd00::/8", "fd00::/8"),
        ] {
            assert_eq!(Block::parse(written).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn blocks() {
        let cases = [
            ("10.0.0.0/8", "10.200.1.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("192.0.2.0/24", "::ffff:192.0.2.9", true),
            ("127.0.0.*", "127.0.0.42", true),
            ("127.0.0.*", "127.0.1.1", false),
            ("192.168.*.*", "192.168.7.9", true),
            ("192.168.*.*", "192.169.0.1", false),
        ];
        for (block, addr, want) in cases {
            assert_eq!(
                Block::parse(block).unwrap().contains(&ip(addr)),
                want,
                "{block} {addr}"
            );
        }
        assert!(Block::parse("10.0.0.0/33").is_err());
        assert!(Block::parse("nope").is_err());
        for bad in ["10.*.0.1", "*.*.*.*", "10.0.*", "10.0.0.*/8", "2001:db8::*"] {
            assert!(Block::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anonymizing() {
        assert_eq!(anonymize(ip("203.0.113.77")), ip("203.0.113.0"));
        assert_eq!(anonymize(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1::"));
    }
}
