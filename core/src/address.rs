//! Client address matching: the ADDRESS column of a rule (as in `pg_hba.conf`) and the
//! address entries of a certificate's SubjectAltName.
//!
//! Name resolution and the server's own interfaces come in through the [`Network`] trait, so
//! the matching logic is plain Rust; `sysnet` provides the real implementation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The answer of one name-service question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// A definite "no such name" (`EAI_NONAME`, `EAI_NODATA`).
    NotFound,
    /// Anything else (timeout, `SERVFAIL`, out of memory): the question has no answer.
    Failed(String),
}

/// What the outside world tells us about names and interfaces.
pub trait Network {
    /// Reverse lookup of an address (`getnameinfo` with `NI_NAMEREQD`), the name as bytes.
    fn reverse(&self, addr: IpAddr) -> Lookup<Vec<u8>>;
    /// Forward lookup of a name (`getaddrinfo`).
    fn forward(&self, name: &[u8]) -> Lookup<Vec<IpAddr>>;
    /// The server's interface addresses with their netmasks (for `samehost`/`samenet`), a
    /// missing, zero or other-family mask already replaced by all ones (`run_ifaddr_callback`).
    fn interfaces(&self) -> Result<Vec<(IpAddr, IpAddr)>, InterfacesError>;
}

/// Why the server's interfaces could not be enumerated (`getifaddrs` failed, and why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not enumerate network interfaces: {reason}")]
pub struct InterfacesError {
    pub reason: String,
}

/// The outcome of matching one column: yes, no, or cannot be decided (and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    Unknown(String),
}

impl Tri {
    pub fn from_bool(b: bool) -> Tri {
        if b {
            Tri::Yes
        } else {
            Tri::No
        }
    }

    /// Both must hold: a `No` wins over an `Unknown`.
    pub fn and(self, other: impl FnOnce() -> Tri) -> Tri {
        match self {
            Tri::No => Tri::No,
            Tri::Yes => other(),
            Tri::Unknown(why) => match other() {
                Tri::No => Tri::No,
                _ => Tri::Unknown(why),
            },
        }
    }

    /// Any of `items` may hold: a `Yes` wins over an `Unknown`.
    pub fn any<I: IntoIterator<Item = Tri>>(items: I) -> Tri {
        let mut unknown = None;
        for t in items {
            match t {
                Tri::Yes => return Tri::Yes,
                Tri::Unknown(why) => {
                    unknown.get_or_insert(why);
                }
                Tri::No => {}
            }
        }
        unknown.map_or(Tri::No, Tri::Unknown)
    }
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
pub fn bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

/// `(addr & mask) == (net & mask)`, requiring the same address family (PostgreSQL's
/// `check_ip`: an IPv4-mapped client never matches an IPv4 rule).
pub fn in_network(addr: IpAddr, net: IpAddr, mask: IpAddr) -> bool {
    let ((a4, a), (n4, n), (m4, m)) = (bits(addr), bits(net), bits(mask));
    a4 == n4 && n4 == m4 && a & m == n & m
}

/// Whether `addr` is in the SubjectAltName subnet `net`/`mask`, IPv4 and IPv4-mapped IPv6
/// being the same address on either side.
pub fn in_san_network(addr: IpAddr, net: IpAddr, mask: IpAddr) -> bool {
    let v4 = canonical(addr);
    let mapped = match v4 {
        IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
        v6 => v6,
    };
    [addr, v4, mapped]
        .into_iter()
        .any(|a| in_network(a, net, mask))
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

/// `pg_sockaddr_cidr_mask`: the mask of a `/bits` suffix read as `strtol` reads it (leading
/// blanks and a sign allowed, nothing after the digits).
pub fn cidr_mask(v4: bool, text: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(text).ok()?;
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().unwrap_or(u64::MAX);
    if neg && n != 0 {
        return None;
    }
    mask_from_prefix(v4, u32::try_from(n).ok()?)
}

pub use crate::os::{gai_message, numeric_host, sockaddr_ip};

/// `pg_strcasecmp` equality: ASCII letters folded, and a byte with the high bit set folded by
/// the process's `LC_CTYPE` (`isupper`/`tolower`), as PostgreSQL does in the same process.
fn pg_strcase_eq(a: &[u8], b: &[u8]) -> bool {
    fn fold(c: u8) -> u8 {
        if c.is_ascii_uppercase() {
            c.to_ascii_lowercase()
        } else if c >= 0x80 {
            crate::os::ctype_lower(c)
        } else {
            c
        }
    }
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

/// `hostname_match`: case-insensitive as `pg_strcasecmp`; a pattern starting with `.` matches
/// a name that ends in it (and `.example.com` does not match `example.com`). Bytes, as
/// PostgreSQL compares.
pub fn hostname_matches(pattern: &[u8], actual: &[u8]) -> bool {
    if pattern.first() == Some(&b'.') {
        actual.len() >= pattern.len()
            && pg_strcase_eq(&actual[actual.len() - pattern.len()..], pattern)
    } else {
        pg_strcase_eq(pattern, actual)
    }
}

/// A certificate DNS name: exact (case-insensitive), or `*.rest` matching exactly one label.
pub fn dns_name_matches(pattern: &str, actual: &[u8]) -> bool {
    let pattern = pattern.trim_end_matches('.').as_bytes();
    let mut actual = actual;
    while let Some(rest) = actual.strip_suffix(b".") {
        actual = rest;
    }
    match pattern.strip_prefix(b"*.") {
        Some(rest) => match actual.iter().position(|&c| c == b'.') {
            Some(i) => i > 0 && actual[i + 1..].eq_ignore_ascii_case(rest),
            None => false,
        },
        None => pattern.eq_ignore_ascii_case(actual),
    }
}

/// What PostgreSQL already knows about the client's host name when our hook runs
/// (`port->remote_hostname`, `remote_hostname_resolv`, `remote_hostname_errcode`).
#[derive(Debug, Clone, Default)]
pub struct KnownHost {
    pub name: Option<Vec<u8>>,
    /// +1 confirmed, -1 does not resolve back, -2 lookup error, 0 not checked.
    pub resolv: i32,
    pub errcode: i32,
}

#[derive(Debug, Clone)]
struct HostState {
    name: Option<Vec<u8>>,
    resolv: i32,
    /// Why a lookup failed for a reason other than "no such name" (resolv == -2).
    failure: Option<String>,
}

/// The client's host name, looked up at most once and confirmed by a forward lookup, with
/// PostgreSQL's `check_hostname` state machine; seeded with what PostgreSQL already found.
pub struct ClientName<'n> {
    net: &'n dyn Network,
    pub addr: IpAddr,
    state: std::cell::RefCell<HostState>,
    interfaces: std::cell::OnceCell<Result<Vec<(IpAddr, IpAddr)>, InterfacesError>>,
}

fn definite(errcode: i32) -> bool {
    errcode == libc::EAI_NONAME || errcode == libc::EAI_NODATA
}

impl<'n> ClientName<'n> {
    pub fn new(net: &'n dyn Network, addr: IpAddr) -> Self {
        Self::with_known(net, addr, KnownHost::default())
    }

    /// Starts from PostgreSQL's own findings for this connection.
    pub fn with_known(net: &'n dyn Network, addr: IpAddr, known: KnownHost) -> Self {
        let failure = (known.resolv == -2 && !definite(known.errcode)).then(|| {
            format!(
                "host name lookup for {addr} failed: {}",
                gai_message(known.errcode)
            )
        });
        ClientName {
            net,
            addr,
            state: std::cell::RefCell::new(HostState {
                name: known.name,
                resolv: known.resolv,
                failure,
            }),
            interfaces: std::cell::OnceCell::new(),
        }
    }

    /// The reverse-resolved name if a check has already looked it up (never triggers a lookup).
    pub fn looked_up_name(&self) -> Option<String> {
        self.state
            .borrow()
            .name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
    }

    fn failed(&self) -> Tri {
        match &self.state.borrow().failure {
            Some(why) => Tri::Unknown(why.clone()),
            None => Tri::No,
        }
    }

    /// `check_hostname` with any name pattern: the client's reverse name matches and resolves
    /// back to the client address. A lookup error other than "no such name" is `Unknown`.
    pub fn confirmed(&self, pattern_matches: impl Fn(&[u8]) -> bool) -> Tri {
        if self.state.borrow().resolv < 0 {
            return self.failed();
        }
        if self.state.borrow().name.is_none() {
            match self.net.reverse(self.addr) {
                Lookup::Found(n) => self.state.borrow_mut().name = Some(n),
                Lookup::NotFound => {
                    self.state.borrow_mut().resolv = -2;
                    return Tri::No;
                }
                Lookup::Failed(why) => {
                    let why = format!("reverse lookup of {} failed: {why}", self.addr);
                    let mut s = self.state.borrow_mut();
                    s.resolv = -2;
                    s.failure = Some(why.clone());
                    return Tri::Unknown(why);
                }
            }
        }
        let name = self.state.borrow().name.clone().unwrap_or_default();
        if !pattern_matches(&name) {
            return Tri::No;
        }
        if self.state.borrow().resolv == 1 {
            return Tri::Yes;
        }
        match self.net.forward(&name) {
            Lookup::Found(addrs) => {
                // same family, same address (ipv4eq/ipv6eq): no IPv4-mapped folding here
                let found = addrs.contains(&self.addr);
                self.state.borrow_mut().resolv = if found { 1 } else { -1 };
                Tri::from_bool(found)
            }
            Lookup::NotFound => {
                self.state.borrow_mut().resolv = -2;
                Tri::No
            }
            Lookup::Failed(why) => {
                let why = format!(
                    "forward lookup of \"{}\" failed: {why}",
                    String::from_utf8_lossy(&name)
                );
                let mut s = self.state.borrow_mut();
                s.resolv = -2;
                s.failure = Some(why.clone());
                Tri::Unknown(why)
            }
        }
    }

    /// The server's interfaces, enumerated once per connection.
    fn interfaces(&self) -> Result<&[(IpAddr, IpAddr)], &InterfacesError> {
        self.interfaces
            .get_or_init(|| self.net.interfaces())
            .as_deref()
    }
}

/// The ADDRESS column of a rule: a host name as `B`, owned when parsed, borrowed from the
/// rules image when read ([`crate::rules::image`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddrSpec<B = Vec<u8>> {
    All,
    SameHost,
    SameNet,
    Net {
        addr: IpAddr,
        mask: IpAddr,
    },
    /// A host name (bytes); a leading `.` matches any name ending in it.
    Host(B),
}

impl AddrSpec<&[u8]> {
    /// The column with a host name of its own.
    pub fn to_owned_spec(&self) -> AddrSpec {
        match *self {
            AddrSpec::All => AddrSpec::All,
            AddrSpec::SameHost => AddrSpec::SameHost,
            AddrSpec::SameNet => AddrSpec::SameNet,
            AddrSpec::Net { addr, mask } => AddrSpec::Net { addr, mask },
            AddrSpec::Host(name) => AddrSpec::Host(name.to_vec()),
        }
    }
}

impl<B: AsRef<[u8]>> AddrSpec<B> {
    /// Whether the client address matches, with `pg_hba.conf`'s semantics (`check_hba`).
    pub fn matches(&self, client: &ClientName<'_>) -> Tri {
        let addr = client.addr;
        match self {
            AddrSpec::All => Tri::Yes,
            AddrSpec::Net { addr: net, mask } => Tri::from_bool(in_network(addr, *net, *mask)),
            AddrSpec::Host(pattern) => {
                client.confirmed(|name| hostname_matches(pattern.as_ref(), name))
            }
            AddrSpec::SameHost | AddrSpec::SameNet => match client.interfaces() {
                Err(why) => Tri::Unknown(why.to_string()),
                Ok(ifaces) => Tri::from_bool(ifaces.iter().any(|(a, m)| {
                    let mask = if matches!(self, AddrSpec::SameHost) {
                        mask_from_prefix(a.is_ipv4(), if a.is_ipv4() { 32 } else { 128 })
                            .unwrap_or(*m)
                    } else {
                        *m
                    };
                    in_network(addr, *a, mask)
                })),
            },
        }
    }
}

/// A [`Network`] given as data: a host table, a list of interfaces, and names whose lookups
/// fail. Used where lookups must be deterministic (unit tests, benchmarks).
#[derive(Default)]
pub struct StaticNetwork {
    pub hosts: Vec<(String, IpAddr)>,
    pub ifaces: Vec<(IpAddr, IpAddr)>,
    /// Addresses whose reverse lookup fails (not "no name": fails).
    pub reverse_fails: Vec<IpAddr>,
    /// Names whose forward lookup fails.
    pub forward_fails: Vec<String>,
    /// Interface enumeration fails.
    pub interfaces_fail: bool,
}

impl Network for StaticNetwork {
    fn reverse(&self, addr: IpAddr) -> Lookup<Vec<u8>> {
        if self.reverse_fails.contains(&addr) {
            return Lookup::Failed("Temporary failure in name resolution".into());
        }
        match self.hosts.iter().find(|(_, a)| *a == addr) {
            Some((n, _)) => Lookup::Found(n.as_bytes().to_vec()),
            None => Lookup::NotFound,
        }
    }
    fn forward(&self, name: &[u8]) -> Lookup<Vec<IpAddr>> {
        if self.forward_fails.iter().any(|n| n.as_bytes() == name) {
            return Lookup::Failed("Temporary failure in name resolution".into());
        }
        let found: Vec<IpAddr> = self
            .hosts
            .iter()
            .filter(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
            .collect();
        if found.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::Found(found)
        }
    }
    fn interfaces(&self) -> Result<Vec<(IpAddr, IpAddr)>, InterfacesError> {
        if self.interfaces_fail {
            return Err(InterfacesError {
                reason: "Cannot allocate memory".into(),
            });
        }
        Ok(self.ifaces.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_cidr_suffix_has_one_sign_at_most() {
        // strtol takes one sign: "++5" and "-+0" are no numbers (Rust's parse would take "+5")
        assert_eq!(cidr_mask(true, b"++5"), None);
        assert_eq!(cidr_mask(true, b"-+0"), None);
        assert_eq!(cidr_mask(true, b"+5"), mask_from_prefix(true, 5));
        assert_eq!(cidr_mask(true, b"-0"), mask_from_prefix(true, 0));
        assert_eq!(cidr_mask(true, b""), None);
    }

    #[test]
    fn a_wildcard_dns_name_needs_a_first_label() {
        assert!(dns_name_matches("*.example.com", b"a.example.com"));
        assert!(!dns_name_matches("*.example.com", b".example.com"));
        assert!(!dns_name_matches("*.example.com", b"example.com"));
        assert!(!dns_name_matches("*.example.com", b"a.b.example.com"));
    }

    #[test]
    fn cidr_masks() {
        assert_eq!(mask_from_prefix(true, 24), Some(ip("255.255.255.0")));
        assert_eq!(mask_from_prefix(true, 0), Some(ip("0.0.0.0")));
        assert_eq!(mask_from_prefix(true, 33), None);
        assert_eq!(
            mask_from_prefix(false, 64),
            Some(ip("ffff:ffff:ffff:ffff::"))
        );
        assert_eq!(mask_from_prefix(false, 129), None);
        // strtol's reading of the suffix
        assert_eq!(cidr_mask(true, b"+24"), Some(ip("255.255.255.0")));
        assert_eq!(cidr_mask(true, b" 8"), Some(ip("255.0.0.0")));
        assert_eq!(cidr_mask(true, b"-0"), Some(ip("0.0.0.0")));
        assert_eq!(cidr_mask(true, b""), None);
        assert_eq!(cidr_mask(true, b"24x"), None);
        assert_eq!(cidr_mask(true, b"-1"), None);
        assert_eq!(cidr_mask(true, b"99999999999999999999999"), None);
    }

    #[test]
    fn numeric_hosts_as_getaddrinfo_reads_them() {
        assert_eq!(numeric_host(b"10.1.2.3"), Ok(Some(ip("10.1.2.3"))));
        assert_eq!(numeric_host(b"127.1"), Ok(Some(ip("127.0.0.1"))));
        assert_eq!(
            numeric_host(b"::ffff:1.2.3.4"),
            Ok(Some(ip("::ffff:1.2.3.4")))
        );
        // not numeric: PostgreSQL takes these as host names
        assert_eq!(numeric_host(b"10.0.0.300"), Ok(None));
        assert_eq!(numeric_host(b"db.example.com"), Ok(None));
        assert_eq!(numeric_host(b"fe80::zz"), Ok(None));
    }

    #[test]
    fn network_membership_requires_same_family() {
        let m24 = ip("255.255.255.0");
        assert!(in_network(ip("10.1.2.3"), ip("10.1.2.0"), m24));
        assert!(!in_network(ip("10.1.3.3"), ip("10.1.2.0"), m24));
        assert!(!in_network(ip("::ffff:10.1.2.3"), ip("10.1.2.0"), m24));
    }

    #[test]
    fn san_subnets_fold_ipv4_mapped_addresses_both_ways() {
        let m104 = mask_from_prefix(false, 104).unwrap();
        let mapped_net = ip("::ffff:10.0.0.0");
        assert!(in_san_network(ip("10.1.2.3"), mapped_net, m104));
        assert!(in_san_network(ip("::ffff:10.1.2.3"), mapped_net, m104));
        assert!(!in_san_network(ip("11.1.2.3"), mapped_net, m104));
        let m8 = ip("255.0.0.0");
        assert!(in_san_network(ip("::ffff:10.1.2.3"), ip("10.0.0.0"), m8));
        assert!(in_san_network(ip("10.1.2.3"), ip("10.0.0.0"), m8));
        assert!(!in_san_network(ip("fd00::1"), ip("10.0.0.0"), m8));
    }

    #[test]
    fn mapped_addresses_canonicalise() {
        assert_eq!(canonical(ip("::ffff:127.0.0.2")), ip("127.0.0.2"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
    }

    #[test]
    fn host_name_patterns() {
        assert!(hostname_matches(b"db.example.com", b"DB.Example.com"));
        assert!(hostname_matches(b".example.com", b"a.b.example.com"));
        assert!(!hostname_matches(b".example.com", b"example.com"));
        assert!(!hostname_matches(b"example.com", b"a.example.com"));
        // as PostgreSQL: no trailing-dot folding, bytes beyond ASCII compared as they are
        assert!(!hostname_matches(b"db.example.com", b"db.example.com."));
        assert!(hostname_matches(b".example.com", b"\xff.example.com"));
        assert!(dns_name_matches("*.example.com", b"app.example.com"));
        assert!(!dns_name_matches("*.example.com", b"a.b.example.com"));
        assert!(!dns_name_matches("*.example.com", b"example.com"));
        assert!(dns_name_matches("localhost", b"localhost."));
    }

    fn net() -> StaticNetwork {
        StaticNetwork {
            hosts: vec![
                ("good.example.com".into(), ip("10.0.0.7")),
                ("liar.example.com".into(), ip("10.0.0.8")),
            ],
            ifaces: vec![(ip("192.168.5.1"), ip("255.255.255.0"))],
            ..Default::default()
        }
    }

    #[test]
    fn addr_spec_matching() {
        let net = net();
        let c = |a: &str| ClientName::new(&net, ip(a));
        let host = AddrSpec::Host(b"good.example.com".to_vec());
        assert_eq!(host.matches(&c("10.0.0.7")), Tri::Yes);
        assert_eq!(host.matches(&c("10.0.0.8")), Tri::No);
        assert_eq!(host.matches(&c("10.0.0.99")), Tri::No);
        assert_eq!(
            AddrSpec::Host(b".example.com".to_vec()).matches(&c("10.0.0.8")),
            Tri::Yes
        );
        assert_eq!(
            AddrSpec::<Vec<u8>>::SameHost.matches(&c("192.168.5.1")),
            Tri::Yes
        );
        assert_eq!(
            AddrSpec::<Vec<u8>>::SameHost.matches(&c("192.168.5.2")),
            Tri::No
        );
        assert_eq!(
            AddrSpec::<Vec<u8>>::SameNet.matches(&c("192.168.5.2")),
            Tri::Yes
        );
        assert_eq!(
            AddrSpec::<Vec<u8>>::SameNet.matches(&c("192.168.6.2")),
            Tri::No
        );
        assert_eq!(AddrSpec::<Vec<u8>>::All.matches(&c("::1")), Tri::Yes);
    }

    /// A network answering every reverse lookup with `reverse` and every forward lookup with
    /// `forward`, counting the questions.
    struct Scripted {
        reverse: Lookup<Vec<u8>>,
        forward: Lookup<Vec<IpAddr>>,
        asked: std::cell::Cell<usize>,
    }

    impl Network for Scripted {
        fn reverse(&self, _: IpAddr) -> Lookup<Vec<u8>> {
            self.asked.set(self.asked.get() + 1);
            self.reverse.clone()
        }
        fn forward(&self, _: &[u8]) -> Lookup<Vec<IpAddr>> {
            self.asked.set(self.asked.get() + 1);
            self.forward.clone()
        }
        fn interfaces(&self) -> Result<Vec<(IpAddr, IpAddr)>, InterfacesError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn a_lookup_that_found_nothing_or_failed_is_never_asked_again() {
        let found = |n: &str| Lookup::Found(n.as_bytes().to_vec());
        for (reverse, forward, outcome) in [
            (Lookup::NotFound, Lookup::NotFound, Tri::No),
            (
                Lookup::Failed("SERVFAIL".into()),
                Lookup::NotFound,
                Tri::Unknown("reverse lookup of 10.0.0.9 failed: SERVFAIL".into()),
            ),
            (found("h.example.com"), Lookup::NotFound, Tri::No),
            (
                found("h.example.com"),
                Lookup::Failed("SERVFAIL".into()),
                Tri::Unknown("forward lookup of \"h.example.com\" failed: SERVFAIL".into()),
            ),
        ] {
            let net = Scripted {
                reverse,
                forward,
                asked: std::cell::Cell::new(0),
            };
            let client = ClientName::new(&net, ip("10.0.0.9"));
            let rule = AddrSpec::Host(b".example.com".to_vec());
            assert_eq!(rule.matches(&client), outcome);
            let asked = net.asked.get();
            // a second host-name rule reads what the first found (PostgreSQL's check_hostname)
            assert_eq!(rule.matches(&client), outcome);
            assert_eq!(net.asked.get(), asked, "{outcome:?}: asked again");
        }
    }

    #[test]
    fn a_name_that_does_not_resolve_back_is_no_match() {
        // 10.0.0.9 claims (by reverse lookup) to be liar.example.com, which resolves elsewhere
        let mut n = net();
        n.hosts.push(("liar.example.com".into(), ip("10.0.0.8")));
        struct Liar(StaticNetwork);
        impl Network for Liar {
            fn reverse(&self, a: IpAddr) -> Lookup<Vec<u8>> {
                if a == "10.0.0.9".parse::<IpAddr>().unwrap() {
                    Lookup::Found(b"liar.example.com".to_vec())
                } else {
                    self.0.reverse(a)
                }
            }
            fn forward(&self, n: &[u8]) -> Lookup<Vec<IpAddr>> {
                self.0.forward(n)
            }
            fn interfaces(&self) -> Result<Vec<(IpAddr, IpAddr)>, InterfacesError> {
                self.0.interfaces()
            }
        }
        let liar = Liar(n);
        let client = ClientName::new(&liar, ip("10.0.0.9"));
        assert_eq!(
            AddrSpec::Host(b"liar.example.com".to_vec()).matches(&client),
            Tri::No
        );
        // known bad (-1): later host rules do not look again, and do not match
        assert_eq!(
            AddrSpec::Host(b".example.com".to_vec()).matches(&client),
            Tri::No
        );
    }

    #[test]
    fn lookups_that_fail_are_undecided_not_no_match() {
        let mut n = net();
        n.reverse_fails.push(ip("10.0.0.50"));
        n.hosts.push(("flaky.example.com".into(), ip("10.0.0.51")));
        n.forward_fails.push("flaky.example.com".into());
        n.interfaces_fail = true;
        let host = AddrSpec::Host(b".example.com".to_vec());
        let c50 = ClientName::new(&n, ip("10.0.0.50"));
        assert!(
            matches!(host.matches(&c50), Tri::Unknown(w) if w.contains("reverse lookup of 10.0.0.50 failed"))
        );
        // remembered for the connection, as PostgreSQL does
        assert!(matches!(host.matches(&c50), Tri::Unknown(_)));
        let c51 = ClientName::new(&n, ip("10.0.0.51"));
        assert!(
            matches!(host.matches(&c51), Tri::Unknown(w) if w.contains("forward lookup of \"flaky.example.com\" failed"))
        );
        // a name the pattern does not cover needs no forward lookup: a definite no
        let c51 = ClientName::new(&n, ip("10.0.0.51"));
        assert_eq!(
            AddrSpec::Host(b"other.example.org".to_vec()).matches(&c51),
            Tri::No
        );
        let c = ClientName::new(&n, ip("192.168.5.1"));
        assert!(
            matches!(AddrSpec::<Vec<u8>>::SameNet.matches(&c), Tri::Unknown(w) if w.contains("interfaces"))
        );
    }

    #[test]
    fn what_postgresql_already_found_is_reused() {
        let n = StaticNetwork::default(); // would answer "no name" to everything
        let known = KnownHost {
            name: Some(b"app.example.com".to_vec()),
            resolv: 1,
            errcode: 0,
        };
        let c = ClientName::with_known(&n, ip("10.9.9.9"), known);
        assert_eq!(
            AddrSpec::Host(b".example.com".to_vec()).matches(&c),
            Tri::Yes
        );
        let failed = KnownHost {
            name: None,
            resolv: -2,
            errcode: libc::EAI_AGAIN,
        };
        let c = ClientName::with_known(&n, ip("10.9.9.9"), failed);
        assert!(matches!(
            AddrSpec::Host(b"x".to_vec()).matches(&c),
            Tri::Unknown(_)
        ));
        let no_name = KnownHost {
            name: None,
            resolv: -2,
            errcode: libc::EAI_NONAME,
        };
        let c = ClientName::with_known(&n, ip("10.9.9.9"), no_name);
        assert_eq!(AddrSpec::Host(b"x".to_vec()).matches(&c), Tri::No);
    }

    #[test]
    fn tri_combinators() {
        let u = || Tri::Unknown("u".into());
        assert_eq!(Tri::any([Tri::No, u(), Tri::Yes]), Tri::Yes);
        assert_eq!(Tri::any([Tri::No, u()]), u());
        assert_eq!(Tri::any([Tri::No]), Tri::No);
        assert_eq!(u().and(|| Tri::No), Tri::No);
        assert_eq!(u().and(|| Tri::Yes), u());
        assert_eq!(Tri::Yes.and(u), u());
    }
}
