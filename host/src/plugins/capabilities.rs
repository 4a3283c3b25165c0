//! Capabilities: what a plugin may do beyond computing, as requested in `describe` and
//! granted by the admin, and the outbound-HTTP allowlist rules.
//!
//! Stored and shown as strings: `read-contacts`, `write-fields`, `write-tags`,
//! `record-events`, `private-network`, `http:<pattern>`. A pattern is
//! `scheme://host[:port]`: scheme `http` or `https`, host a name, an IPv4 address or a
//! bracketed IPv6 address, optionally `*.` + domain (any subdomain, not the domain
//! itself), port a number or `*` (absent: the scheme's default).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    ReadContacts,
    WriteFields,
    WriteTags,
    RecordEvents,
    PrivateNetwork,
    Http(OriginPattern),
}

impl Capability {
    pub fn parse(s: &str) -> Result<Capability, String> {
        let s = s.trim();
        Ok(match s {
            "read-contacts" => Capability::ReadContacts,
            "write-fields" => Capability::WriteFields,
            "write-tags" => Capability::WriteTags,
            "record-events" => Capability::RecordEvents,
            "private-network" => Capability::PrivateNetwork,
            _ => match s.strip_prefix("http:") {
                Some(p) => Capability::Http(OriginPattern::parse(p)?),
                None => return Err(format!("unknown capability `{s}`")),
            },
        })
    }
}

/// Parses capabilities the admin grants, without duplicates, in the order given; the
/// first invalid one is the error.
pub fn parse_grants<'a>(
    list: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Capability>, String> {
    let mut granted = Vec::new();
    for text in list {
        let cap = Capability::parse(text)?;
        if !granted.contains(&cap) {
            granted.push(cap);
        }
    }
    Ok(granted)
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::ReadContacts => f.write_str("read-contacts"),
            Capability::WriteFields => f.write_str("write-fields"),
            Capability::WriteTags => f.write_str("write-tags"),
            Capability::RecordEvents => f.write_str("record-events"),
            Capability::PrivateNetwork => f.write_str("private-network"),
            Capability::Http(p) => write!(f, "http:{p}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this host (lower-case; IPv6 without brackets).
    Exact(String),
    /// Any subdomain of this domain (`*.example.com`), not the domain itself.
    Subdomains(String),
}

/// `scheme://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginPattern {
    pub scheme: String,
    pub host: HostPattern,
    /// `None`: any port.
    pub port: Option<u16>,
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// Splits `host[:port]` (IPv6 hosts in brackets). Answers (host, port text).
fn split_host_port(s: &str) -> Result<(String, Option<&str>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[` in the host")?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("`{host}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected `:port` after `]`")?),
        };
        return Ok((host.to_ascii_lowercase(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_ascii_lowercase(), Some(p))),
        None => Ok((s.to_ascii_lowercase(), None)),
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl OriginPattern {
    pub fn parse(s: &str) -> Result<OriginPattern, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}`: expected scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{s}`: the scheme must be http or https"));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{s}`: a pattern is an origin, without path, query or user"
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|e| format!("`{s}`: {e}"))?;
        let port = match port {
            None => Some(default_port(&scheme)),
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("`{s}`: bad port `{p}`"))?,
            ),
        };
        let host = if let Some(domain) = host.strip_prefix("*.") {
            if !valid_hostname(domain) || !domain.contains('.') && domain != "localhost" {
                return Err(format!("`{s}`: `*.` must be followed by a domain"));
            }
            HostPattern::Subdomains(domain.to_owned())
        } else if host.parse::<IpAddr>().is_ok() || valid_hostname(&host) {
            HostPattern::Exact(host)
        } else {
            return Err(format!("`{s}`: `{host}` is not a host name or address"));
        };
        Ok(OriginPattern { scheme, host, port })
    }

    /// Does this pattern allow a request to `scheme://host:port`?
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if !self.scheme.eq_ignore_ascii_case(scheme) || self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match &self.host {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(d) => {
                host.len() > d.len() + 1
                    && host.ends_with(d.as_str())
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.'
            }
        }
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        match &self.host {
            HostPattern::Exact(h) if h.contains(':') => write!(f, "[{h}]")?,
            HostPattern::Exact(h) => f.write_str(h)?,
            HostPattern::Subdomains(d) => write!(f, "*.{d}")?,
        }
        match self.port {
            None => f.write_str(":*"),
            Some(p) if p == default_port(&self.scheme) => Ok(()),
            Some(p) => write!(f, ":{p}"),
        }
    }
}

/// A request target, parsed from a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Parses an absolute `http(s)://` URL's origin.
    pub fn from_url(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("the URL must be absolute (http:// or https://)")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "the scheme `{scheme}` is not allowed (http or https)"
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err("credentials in the URL are not allowed".into());
        }
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        let port = match port {
            None | Some("") => default_port(&scheme),
            Some(p) => p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?,
        };
        Ok(Target { scheme, host, port })
    }
}

/// Is this request allowed by the granted capabilities? (Addresses are checked
/// separately, after resolution: see `address_allowed`.)
pub fn origin_allowed(granted: &[Capability], target: &Target) -> bool {
    granted.iter().any(|c| matches!(c, Capability::Http(p) if p.matches(&target.scheme, &target.host, target.port)))
}

/// Loopback, private, link-local, unique-local, CGNAT, unspecified, multicast, broadcast,
/// documentation and other special-purpose addresses: refused unless `private-network`
/// is granted.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link local fe80::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (may reach v4 private)
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0) // ::/96 v4-compatible
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // 0.0.0.0/8
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF 192.0.0.0/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved
}

/// May a connection go to `ip`?
pub fn address_allowed(granted: &[Capability], ip: IpAddr) -> bool {
    !is_private(ip) || granted.contains(&Capability::PrivateNetwork)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<Capability> {
        list.iter().map(|c| Capability::parse(c).unwrap()).collect()
    }

    #[test]
    fn parses_and_prints_capabilities() {
        for (input, canonical) in [
            ("read-contacts", "read-contacts"),
            ("write-fields", "write-fields"),
            ("write-tags", "write-tags"),
            ("record-events", "record-events"),
            ("private-network", "private-network"),
            (
                "http:https://api.example.com",
                "http:https://api.example.com",
            ),
            (
                "http:https://api.example.com:443",
                "http:https://api.example.com",
            ),
            (
                "http:HTTPS://API.Example.com:8443",
                "http:https://api.example.com:8443",
            ),
            ("http:http://127.0.0.1:*", "http:http://127.0.0.1:*"),
            ("http:https://*.example.com", "http:https://*.example.com"),
            ("http:http://[::1]:8080", "http:http://[::1]:8080"),
        ] {
            assert_eq!(
                Capability::parse(input).unwrap().to_string(),
                canonical,
                "{input}"
            );
        }
        for bad in [
            "",
            "root",
            "http:",
            "http:example.com",
            "http:ftp://example.com",
            "http:https://example.com/path",
            "http:https://user@example.com",
            "http:https://example.com:0",
            "http:https://example.com:99999",
            "http:https://*",
            "http:https://*.com",
            "http:https://exa mple.com",
            "http:https://[::1",
            "http:https://[nope]:80",
        ] {
            assert!(Capability::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn origin_matching() {
        let table: &[(&[&str], &str, bool)] = &[
            (
                &["http:https://api.example.com"],
                "https://api.example.com/v1/x",
                true,
            ),
            (
                &["http:https://api.example.com"],
                "https://api.example.com:443/",
                true,
            ),
            (
                &["http:https://api.example.com"],
                "https://API.example.COM/",
                true,
            ),
            (
                &["http:https://api.example.com"],
                "http://api.example.com/",
                false,
            ),
            (
                &["http:https://api.example.com"],
                "https://api.example.com:8443/",
                false,
            ),
            (
                &["http:https://api.example.com"],
                "https://evil.com/?https://api.example.com",
                false,
            ),
            (
                &["http:https://api.example.com"],
                "https://api.example.com.evil.com/",
                false,
            ),
            (
                &["http:https://api.example.com"],
                "https://evil.com#api.example.com",
                false,
            ),
            (
                &["http:https://*.example.com"],
                "https://a.example.com/",
                true,
            ),
            (
                &["http:https://*.example.com"],
                "https://a.b.example.com/",
                true,
            ),
            (
                &["http:https://*.example.com"],
                "https://example.com/",
                false,
            ),
            (
                &["http:https://*.example.com"],
                "https://badexample.com/",
                false,
            ),
            (&["http:http://127.0.0.1:*"], "http://127.0.0.1:5000/", true),
            (
                &["http:http://127.0.0.1:8080"],
                "http://127.0.0.1:8081/",
                false,
            ),
            (&["http:http://[::1]:8080"], "http://[::1]:8080/x", true),
            (&["read-contacts"], "https://api.example.com/", false),
            (&[], "https://api.example.com/", false),
        ];
        for (granted, url, want) in table {
            let target = Target::from_url(url).unwrap();
            assert_eq!(
                origin_allowed(&caps(granted), &target),
                *want,
                "{granted:?} {url}"
            );
        }
        for bad in [
            "ftp://x.com/",
            "x.com",
            "https://user:pw@x.com/",
            "https://:80/",
            "https://x.com:port/",
        ] {
            assert!(Target::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_addresses_need_the_capability() {
        let private = [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ];
        let public = [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ];
        let none = caps(&[]);
        let granted = caps(&["private-network"]);
        for ip in private {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!address_allowed(&none, ip), "{ip} is private");
            assert!(
                address_allowed(&granted, ip),
                "{ip} allowed with private-network"
            );
        }
        for ip in public {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(address_allowed(&none, ip), "{ip} is public");
        }
    }
}
