//! Client address matching: the ADDRESS column of a rule (as in `pg_hba.conf`) and the
//! address entries of a certificate's SubjectAltName.
//!
//! Name resolution and the server's own interfaces come in through the [`Network`] trait, so
//! the matching logic is plain Rust; `sysnet` provides the real implementation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the outside world tells us about names and interfaces.
pub trait Network {
    /// Reverse lookup of an address (`getnameinfo` with `NI_NAMEREQD`), `None` when it has no name.
    fn reverse(&self, addr: IpAddr) -> Option<String>;
    /// Forward lookup of a name (`getaddrinfo`), empty when it does not resolve.
    fn forward(&self, name: &str) -> Vec<IpAddr>;
    /// The server's own interface addresses with their netmasks (for `samehost`/`samenet`).
    fn interfaces(&self) -> Vec<(IpAddr, IpAddr)>;
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as its IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The address as (is IPv4, bits), for allocation-free mask arithmetic.
fn bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

/// `(addr & mask) == (net & mask)`, requiring the same address family (as PostgreSQL does).
pub fn in_network(addr: IpAddr, net: IpAddr, mask: IpAddr) -> bool {
    let ((a4, a), (n4, n), (m4, m)) = (bits(addr), bits(net), bits(mask));
    a4 == n4 && n4 == m4 && a & m == n & m
}

/// The netmask of a CIDR prefix length, `None` when the length is out of range for the family.
pub fn mask_from_prefix(v4: bool, bits: u32) -> Option<IpAddr> {
    if v4 {
        (bits <= 32).then(|| {
            IpAddr::V4(Ipv4Addr::from(if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            }))
        })
    } else {
        (bits <= 128).then(|| {
            IpAddr::V6(Ipv6Addr::from(if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            }))
        })
    }
}

/// Whether a string looks like an attempt at a numeric address (so a parse failure is an error
/// rather than a host name).
pub fn looks_numeric(s: &str) -> bool {
    s.contains(':') || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Whether a string is a plausible host name (letters, digits, `-`, `_`, `.`).
pub fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !s.starts_with('-')
}

/// The ADDRESS column of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrSpec {
    All,
    SameHost,
    SameNet,
    Net {
        addr: IpAddr,
        mask: IpAddr,
    },
    /// A host name; a leading `.` matches any name ending in it.
    Host(String),
}

/// Case-insensitive host name comparison; a pattern starting with `.` is a suffix match
/// (PostgreSQL's `hostname_match`).
pub fn hostname_matches(pattern: &str, actual: &str) -> bool {
    let actual = actual.trim_end_matches('.');
    if let Some(suffix) = pattern.strip_prefix('.') {
        actual.len() > suffix.len()
            && actual
                .to_ascii_lowercase()
                .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
    } else {
        pattern.trim_end_matches('.').eq_ignore_ascii_case(actual)
    }
}

/// A certificate DNS name: exact (case-insensitive), or `*.rest` matching exactly one label.
pub fn dns_name_matches(pattern: &str, actual: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let actual = actual.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(rest) => match actual.split_once('.') {
            Some((label, tail)) => !label.is_empty() && tail.eq_ignore_ascii_case(rest),
            None => false,
        },
        None => pattern.eq_ignore_ascii_case(actual),
    }
}

/// Looks up the client's host name once and confirms it: the name must resolve back to the
/// client address (PostgreSQL's `check_hostname`). Caches the result for the connection.
pub struct ClientName<'n> {
    net: &'n dyn Network,
    addr: IpAddr,
    resolved: std::cell::OnceCell<Option<String>>,
}

impl<'n> ClientName<'n> {
    pub fn new(net: &'n dyn Network, addr: IpAddr) -> Self {
        ClientName {
            net,
            addr,
            resolved: std::cell::OnceCell::new(),
        }
    }

    /// The reverse-resolved name, whether or not it is confirmed by the forward lookup.
    pub fn reverse_name(&self) -> Option<&str> {
        self.resolved
            .get_or_init(|| self.net.reverse(self.addr))
            .as_deref()
    }

    /// The reverse-resolved name if a check has already looked it up (never triggers a lookup).
    pub fn looked_up_name(&self) -> Option<&str> {
        self.resolved.get().and_then(|n| n.as_deref())
    }

    /// The client's name when the reverse lookup gives a name that resolves forward to the
    /// client address.
    pub fn confirmed(&self, pattern_matches: impl Fn(&str) -> bool) -> bool {
        let Some(name) = self.reverse_name() else {
            return false;
        };
        if !pattern_matches(name) {
            return false;
        }
        let want = canonical(self.addr);
        self.net
            .forward(name)
            .into_iter()
            .any(|a| canonical(a) == want)
    }
}

impl AddrSpec {
    /// Whether the client address matches, with `pg_hba.conf`'s semantics.
    pub fn matches(&self, client: &ClientName<'_>) -> bool {
        let addr = client.addr;
        match self {
            AddrSpec::All => true,
            AddrSpec::Net { addr: net, mask } => in_network(addr, *net, *mask),
            AddrSpec::Host(pattern) => client.confirmed(|name| hostname_matches(pattern, name)),
            AddrSpec::SameHost => client.net.interfaces().iter().any(|(a, _)| *a == addr),
            AddrSpec::SameNet => client
                .net
                .interfaces()
                .iter()
                .any(|(a, m)| in_network(addr, *a, *m)),
        }
    }
}

/// A [`Network`] given as data: a host table and a list of interfaces. Used where lookups must
/// be deterministic (unit tests, the rules view).
#[derive(Default)]
pub struct StaticNetwork {
    pub hosts: Vec<(String, IpAddr)>,
    pub ifaces: Vec<(IpAddr, IpAddr)>,
}

impl Network for StaticNetwork {
    fn reverse(&self, addr: IpAddr) -> Option<String> {
        self.hosts
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(n, _)| n.clone())
    }
    fn forward(&self, name: &str) -> Vec<IpAddr> {
        self.hosts
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
            .collect()
    }
    fn interfaces(&self) -> Vec<(IpAddr, IpAddr)> {
        self.ifaces.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_masks() {
        assert_eq!(mask_from_prefix(true, 24), Some(ip("255.255.255.0")));
        assert_eq!(mask_from_prefix(true, 0), Some(ip("0.0.0.0")));
        assert_eq!(mask_from_prefix(true, 32), Some(ip("255.255.255.255")));
        assert_eq!(mask_from_prefix(true, 33), None);
        assert_eq!(
            mask_from_prefix(false, 64),
            Some(ip("ffff:ffff:ffff:ffff::"))
        );
        assert_eq!(mask_from_prefix(false, 129), None);
    }

    #[test]
    fn network_membership_requires_same_family() {
        let m24 = ip("255.255.255.0");
        assert!(in_network(ip("10.1.2.3"), ip("10.1.2.0"), m24));
        assert!(!in_network(ip("10.1.3.3"), ip("10.1.2.0"), m24));
        assert!(!in_network(ip("::ffff:10.1.2.3"), ip("10.1.2.0"), m24));
        assert!(in_network(
            ip("fd00::5"),
            ip("fd00::"),
            mask_from_prefix(false, 64).unwrap()
        ));
    }

    #[test]
    fn mapped_addresses_canonicalise() {
        assert_eq!(canonical(ip("::ffff:127.0.0.2")), ip("127.0.0.2"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn host_name_patterns() {
        assert!(hostname_matches("db.example.com", "DB.Example.com"));
        assert!(hostname_matches(".example.com", "a.b.example.com"));
        assert!(!hostname_matches(".example.com", "example.com"));
        assert!(!hostname_matches("example.com", "a.example.com"));
        assert!(dns_name_matches("*.example.com", "app.example.com"));
        assert!(!dns_name_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_name_matches("*.example.com", "example.com"));
        assert!(dns_name_matches("localhost", "localhost."));
        assert!(!dns_name_matches("localhost", "localhost2"));
    }

    #[test]
    fn numeric_and_host_name_shapes() {
        assert!(looks_numeric("10.0.0.300"));
        assert!(looks_numeric("fe80::zz"));
        assert!(!looks_numeric("db1.example.com"));
        assert!(is_host_name("db1.example.com"));
        assert!(!is_host_name("db!.example"));
        assert!(!is_host_name("-bad"));
    }

    #[test]
    fn addr_spec_matching() {
        let net = StaticNetwork {
            hosts: vec![
                ("good.example.com".into(), ip("10.0.0.7")),
                ("liar.example.com".into(), ip("10.0.0.8")),
            ],
            ifaces: vec![(ip("192.168.5.1"), ip("255.255.255.0"))],
        };
        // 10.0.0.9 claims (by reverse lookup) to be liar.example.com, which resolves elsewhere
        struct Liar<'a>(&'a StaticNetwork);
        impl Network for Liar<'_> {
            fn reverse(&self, a: IpAddr) -> Option<String> {
                if a == "10.0.0.9".parse::<IpAddr>().unwrap() {
                    Some("liar.example.com".into())
                } else {
                    self.0.reverse(a)
                }
            }
            fn forward(&self, n: &str) -> Vec<IpAddr> {
                self.0.forward(n)
            }
            fn interfaces(&self) -> Vec<(IpAddr, IpAddr)> {
                self.0.interfaces()
            }
        }
        let liar = Liar(&net);
        let c = |a: &str| ClientName::new(&liar, ip(a));
        let host = AddrSpec::Host("good.example.com".into());
        assert!(host.matches(&c("10.0.0.7")));
        assert!(!host.matches(&c("10.0.0.8")));
        assert!(AddrSpec::Host(".example.com".into()).matches(&c("10.0.0.8")));
        assert!(!AddrSpec::Host("liar.example.com".into()).matches(&c("10.0.0.9")));
        assert!(AddrSpec::SameHost.matches(&c("192.168.5.1")));
        assert!(!AddrSpec::SameHost.matches(&c("192.168.5.2")));
        assert!(AddrSpec::SameNet.matches(&c("192.168.5.2")));
        assert!(!AddrSpec::SameNet.matches(&c("192.168.6.2")));
        assert!(AddrSpec::All.matches(&c("::1")));
        let n = AddrSpec::Net {
            addr: ip("10.0.0.0"),
            mask: ip("255.0.0.0"),
        };
        assert!(n.matches(&c("10.9.9.9")) && !n.matches(&c("11.0.0.1")));
    }
}
