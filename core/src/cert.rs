//! Client certificate checks: the CN against the login, SubjectAltName against the address.

use crate::address::{self, ClientName, Tri};
use crate::printable::printable;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use x509_parser::prelude::*;

/// A SubjectAltName entry, as far as pg_twofactor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanEntry {
    Ip(IpAddr),
    /// An 8- or 32-byte iPAddress: address plus mask, as in X.509 name constraints.
    Subnet {
        addr: IpAddr,
        mask: IpAddr,
    },
    Dns(String),
    /// An iPAddress of another length: an address entry that matches nothing.
    BadIp(Vec<u8>),
    /// Any other kind (e-mail, URI, ...): ignored by the address check.
    Other(String),
}

impl SanEntry {
    fn is_address(&self) -> bool {
        matches!(
            self,
            SanEntry::Ip(_) | SanEntry::Subnet { .. } | SanEntry::Dns(_) | SanEntry::BadIp(_)
        )
    }
}

impl fmt::Display for SanEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SanEntry::Ip(a) => write!(f, "IP:{a}"),
            SanEntry::Subnet { addr, mask } => write!(f, "IP:{addr}/{mask}"),
            SanEntry::Dns(n) => write!(f, "DNS:{n}"),
            SanEntry::BadIp(b) => write!(f, "IP:<{} bytes>", b.len()),
            SanEntry::Other(s) => f.write_str(s),
        }
    }
}

/// What the checks need from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject as PostgreSQL prints a DN (RFC 2253, control characters escaped), for the
    /// log.
    pub subject: String,
    /// Every CN attribute: the bytes of its value, as PostgreSQL's `peer_cn` holds them
    /// (`X509_NAME_get_text_by_NID` copies the ASN.1 string's bytes, whatever its type).
    pub common_names: Vec<Vec<u8>>,
    pub san: Vec<SanEntry>,
    /// The issuer's name as the certificate encodes it (DER); [`CertInfo::issuer`] prints it.
    pub issuer_der: Vec<u8>,
    /// What the certificates seen and the expiry warning need, read in the same pass.
    pub key: CertKey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("could not parse the client certificate: {0}")]
    Parse(String),
}

/// Why a certificate's CN does not name the login (the DETAIL sentence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CnError {
    #[error("the certificate has no CN")]
    None,
    #[error("certificate CN \"{}\" is not the login \"{}\"", printable(.cn), printable(.login))]
    NotTheLogin { cn: String, login: String },
    #[error("the certificate has {0} CN attributes; exactly one is required")]
    Several(usize),
}

/// A PEM text that does not hold a certificate (the message follows the name of where it came
/// from: `client_cert is not a PEM certificate: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("is not a PEM certificate: {0}")]
    NotPem(String),
    #[error("holds a PEM \"{0}\" block, not a CERTIFICATE")]
    NotCertificate(String),
}

/// The DER of the first certificate in `pem`.
pub fn der_from_pem(pem: &str) -> Result<Vec<u8>, PemError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PemError::NotPem(e.to_string()))?;
    if block.label != "CERTIFICATE" {
        return Err(PemError::NotCertificate(block.label));
    }
    Ok(block.contents)
}

/// Every CERTIFICATE block of a PEM text, in order (other blocks skipped).
pub fn certificates_from_pem(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .map_while(Result::ok)
        .filter(|block| block.label == "CERTIFICATE")
        .map(|block| block.contents)
        .collect()
}

/// For a dry run without a TLS handshake: the [`spki_sha256`] of the certificate that issued
/// `chain[0]`: `chain[1]` when the client's chain names it, else the one CA of `cas` whose
/// subject is the issuer's name (when several have that name with different keys, the issuer
/// cannot be known without verifying signatures, and `None` says so).
pub fn issuer_key_of(chain: &[Vec<u8>], cas: &[Vec<u8>]) -> Option<[u8; 32]> {
    if let Some(issuer) = chain.get(1) {
        return spki_sha256(issuer).ok();
    }
    let leaf = parse(chain.first()?).ok()?;
    let wanted = leaf.issuer().as_raw();
    let mut keys: Vec<[u8; 32]> = cas
        .iter()
        .filter(|der| parse(der).is_ok_and(|ca| ca.subject().as_raw() == wanted))
        .filter_map(|der| spki_sha256(der).ok())
        .collect();
    keys.dedup();
    match keys.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

fn san_entry(name: &GeneralName<'_>) -> SanEntry {
    match name {
        GeneralName::IPAddress(b) => match b.len() {
            4 | 16 => ip_from(b)
                .map(SanEntry::Ip)
                .unwrap_or_else(|| SanEntry::BadIp(b.to_vec())),
            8 | 32 => {
                let (a, m) = b.split_at(b.len() / 2);
                match (ip_from(a), ip_from(m)) {
                    (Some(addr), Some(mask)) => SanEntry::Subnet { addr, mask },
                    _ => SanEntry::BadIp(b.to_vec()),
                }
            }
            _ => SanEntry::BadIp(b.to_vec()),
        },
        GeneralName::DNSName(n) => SanEntry::Dns(n.to_string()),
        GeneralName::RFC822Name(e) => SanEntry::Other(format!("email:{e}")),
        GeneralName::URI(u) => SanEntry::Other(format!("URI:{u}")),
        other => SanEntry::Other(format!("{other:?}")),
    }
}

/// A whole DER certificate, nothing after it.
fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Parse(
            "trailing data after the certificate".into(),
        ));
    }
    Ok(cert)
}

/// The SubjectAltName entries of a certificate (none without the extension); a
/// SubjectAltName that cannot be parsed is an error, never "no entries".
fn san_of(cert: &X509Certificate<'_>) -> Result<Vec<SanEntry>, CertError> {
    let mut san = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(s) => {
                san.extend(s.general_names.iter().map(san_entry))
            }
            ParsedExtension::ParseError { error }
                if ext.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME =>
            {
                return Err(CertError::Parse(format!("SubjectAltName: {error}")))
            }
            _ => {}
        }
    }
    Ok(san)
}

/// The SHA-256 of a DER certificate's SubjectPublicKeyInfo, as
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum` prints it: what
/// the rule option `issuer_key=` pins, taken of the issuing CA's certificate.
pub fn spki_sha256(der: &[u8]) -> Result<[u8; 32], CertError> {
    use sha2::{Digest, Sha256};
    let cert = parse(der)?;
    Ok(Sha256::digest(cert.tbs_certificate.subject_pki.raw).into())
}

/// Only the SubjectAltName entries of a DER certificate: what the TLS handshake check reads
/// for every client certificate (no subject or issuer text is made).
pub fn san_entries(der: &[u8]) -> Result<Vec<SanEntry>, CertError> {
    san_of(&parse(der)?)
}

/// What identifies a certificate and when it expires: all a login needs of it for the
/// certificates seen, once its row exists, and for the expiry warning, until one is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertKey {
    /// A hash of issuer and serial ([`CertSummary::id`]).
    pub id: u64,
    /// notAfter, seconds since 1970.
    pub not_after: i64,
}

impl CertKey {
    pub fn from_der(der: &[u8]) -> Result<CertKey, CertError> {
        Ok(CertKey::of(&parse(der)?))
    }

    fn of(cert: &X509Certificate<'_>) -> CertKey {
        CertKey {
            id: certificate_id(cert),
            not_after: cert.validity().not_after.timestamp(),
        }
    }
}

/// A hash of the issuer's name and the serial number: the same in every process (SipHash with
/// fixed keys).
fn certificate_id(cert: &X509Certificate<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    #[allow(deprecated)] // SipHasher: fixed keys, the same in every process
    let mut h = std::hash::SipHasher::new();
    cert.issuer().as_raw().hash(&mut h);
    cert.raw_serial().hash(&mut h);
    h.finish()
}

/// What the certificates view shows of a certificate (not what the checks use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The CN attributes, comma-separated, read lossily, escaped ([`printable`]).
    pub common_name: String,
    /// The serial number in hexadecimal, as `openssl x509 -serial` prints it.
    pub serial: String,
    /// The issuer as PostgreSQL prints a DN (RFC 2253, control characters escaped), the form
    /// `issuer=` takes.
    pub issuer: String,
    /// notBefore and notAfter, seconds since 1970.
    pub not_before: i64,
    pub not_after: i64,
    /// The SubjectAltName entries as the log shows them (escaped).
    pub san: String,
    /// Identifies the certificate: a hash of issuer and serial.
    pub id: u64,
}

impl CertSummary {
    pub fn from_der(der: &[u8]) -> Result<CertSummary, CertError> {
        let cert = parse(der)?;
        let info = CertInfo::from_x509(&cert)?;
        let mut serial = String::with_capacity(2 * cert.raw_serial().len());
        for b in cert.raw_serial().iter().skip_while(|b| **b == 0) {
            use std::fmt::Write;
            let _ = write!(serial, "{b:02X}");
        }
        let serial = if serial.is_empty() {
            "00".into()
        } else {
            serial
        };
        let issuer = crate::dn::rfc2253(cert.issuer());
        let id = certificate_id(&cert);
        Ok(CertSummary {
            common_name: info
                .common_names
                .iter()
                .map(|c| printable(&String::from_utf8_lossy(c)))
                .collect::<Vec<_>>()
                .join(", "),
            serial,
            issuer,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            san: info.san_text(),
            id,
        })
    }
}

/// Builds the certificate parser's own tables (x509-parser makes a hash map of extension
/// parsers on the first certificate a process parses). Called in the postmaster before any
/// fork, so that no login builds them again: every backend inherits them.
pub fn build_parser_tables() {
    // any well-formed certificate with extensions does; this one is the tests' `alice`
    let _ = CertInfo::from_der(include_bytes!("testdata/alice.der"));
}

impl CertInfo {
    /// Reads the fields pg_twofactor checks from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, CertError> {
        CertInfo::from_x509(&parse(der)?)
    }

    fn from_x509(cert: &X509Certificate<'_>) -> Result<CertInfo, CertError> {
        let subject = cert.subject();
        let common_names = subject
            .iter_common_name()
            .map(|cn| cn.attr_value().data.to_vec())
            .collect();
        Ok(CertInfo {
            subject: crate::dn::rfc2253(subject),
            common_names,
            san: san_of(cert)?,
            issuer_der: cert.issuer().as_raw().to_vec(),
            key: CertKey::of(cert),
        })
    }

    /// The issuer as OpenSSL prints it with `-nameopt RFC2253` (PostgreSQL's DN form), for
    /// the rule option `issuer=` and the log: printed only when asked (most logins never
    /// need it). An issuer that cannot be read back prints as `?`, which no rule names.
    pub fn issuer(&self) -> String {
        use x509_parser::prelude::FromDer;
        match x509_parser::x509::X509Name::from_der(&self.issuer_der) {
            Ok((_, name)) => crate::dn::rfc2253(&name),
            Err(_) => "?".into(),
        }
    }

    /// The SubjectAltName entries, comma-separated, escaped ([`printable`]), for the log.
    pub fn san_text(&self) -> String {
        if self.san.is_empty() {
            return "none".into();
        }
        self.san
            .iter()
            .map(|e| printable(&e.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The CN check: exactly one CN, its bytes equal to the login's bytes (PostgreSQL's
    /// `strcmp(peer_cn, user_name)` for `clientcert=verify-full`).
    pub fn check_cn(&self, login: &[u8]) -> Result<(), CnError> {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self.common_names.as_slice() {
            [] => Err(CnError::None),
            [cn] if cn.as_slice() == login => Ok(()),
            [cn] => Err(CnError::NotTheLogin {
                cn: lossy(cn),
                login: lossy(login),
            }),
            many => Err(CnError::Several(many.len())),
        }
    }

    /// Whether the certificate has IP, subnet or DNS entries in its SubjectAltName.
    pub fn has_address_entries(&self) -> bool {
        has_address_entries(&self.san)
    }

    /// The address check: with IP/subnet/DNS entries present, the client address must match one
    /// (an IPv4 address and its IPv4-mapped IPv6 form are the same on either side).
    /// `Ok(true)` when it matched an entry, `Ok(false)` when there were no entries to check.
    pub fn check_address(&self, client: &ClientName<'_>) -> Result<bool, AddressFailure> {
        check_address(&self.san, client)
    }
}

/// Whether SubjectAltName entries include IP, subnet or DNS entries.
pub fn has_address_entries(san: &[SanEntry]) -> bool {
    san.iter().any(SanEntry::is_address)
}

/// [`CertInfo::check_address`] over the SubjectAltName entries alone: the one address check of
/// the login hook, the dry run and the TLS handshake.
pub fn check_address(san: &[SanEntry], client: &ClientName<'_>) -> Result<bool, AddressFailure> {
    if !has_address_entries(san) {
        return Ok(false);
    }
    let addr = client.addr;
    let numeric = san.iter().any(|e| match e {
        SanEntry::Ip(ip) => address::canonical(*ip) == address::canonical(addr),
        SanEntry::Subnet { addr: net, mask } => address::in_san_network(addr, *net, *mask),
        _ => false,
    });
    if numeric {
        return Ok(true);
    }
    let by_name = Tri::any(san.iter().filter_map(|e| match e {
        SanEntry::Dns(pattern) => {
            Some(client.confirmed(|name| address::dns_name_matches(pattern, name)))
        }
        _ => None,
    }));
    match by_name {
        Tri::Yes => Ok(true),
        // (both texts may name what the client's reverse zone or certificate chose)
        Tri::Unknown(why) => Err(AddressFailure::Undecided(printable(&why))),
        Tri::No => {
            let name = match client.looked_up_name() {
                Some(n) => format!(" (reverse lookup: {})", printable(&n.to_string())),
                None => String::new(),
            };
            Err(AddressFailure::Mismatch(format!(
                "client address {}{name} matches none of the certificate's SubjectAltName entries",
                address::canonical(addr)
            )))
        }
    }
}

/// Why the address check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressFailure {
    /// No entry matches the client.
    Mismatch(String),
    /// A DNS entry could not be checked (a lookup failed).
    Undecided(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::StaticNetwork;

    fn info(cns: &[Option<&str>], san: Vec<SanEntry>) -> CertInfo {
        CertInfo {
            subject: "CN=x".into(),
            common_names: cns.iter().map(|c| c.unwrap().as_bytes().to_vec()).collect(),
            san,
            issuer_der: Vec::new(),
            key: CertKey {
                id: 0,
                not_after: 0,
            },
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_entries_are_ip_subnet_and_dns_entries_only() {
        let some = |san: Vec<SanEntry>| info(&[Some("a")], san).has_address_entries();
        assert!(!some(vec![]));
        assert!(!some(vec![SanEntry::Other("email:a@example.org".into())]));
        assert!(some(vec![SanEntry::Ip(ip("10.0.0.1"))]));
        assert!(some(vec![SanEntry::Dns("a.example".into())]));
        assert!(some(vec![SanEntry::BadIp(vec![1, 2, 3])]));
        assert!(some(vec![SanEntry::Subnet {
            addr: ip("10.0.0.0"),
            mask: ip("255.0.0.0")
        }]));
    }

    #[test]
    fn cn_must_be_single_and_exact() {
        assert_eq!(info(&[Some("test1")], vec![]).check_cn(b"test1"), Ok(()));
        assert_eq!(
            info(&[Some("Test1")], vec![])
                .check_cn(b"test1")
                .unwrap_err()
                .to_string(),
            "certificate CN \"Test1\" is not the login \"test1\""
        );
        assert_eq!(
            info(&[], vec![])
                .check_cn(b"test1")
                .unwrap_err()
                .to_string(),
            "the certificate has no CN"
        );
        assert_eq!(
            info(&[Some("test1"), Some("test1")], vec![])
                .check_cn(b"test1")
                .unwrap_err()
                .to_string(),
            "the certificate has 2 CN attributes; exactly one is required"
        );
        // bytes, not text: a LATIN1 login is compared with the CN's bytes as they are
        let latin1 = CertInfo {
            common_names: vec![b"j\xf6rg".to_vec()],
            ..info(&[], vec![])
        };
        assert_eq!(latin1.check_cn(b"j\xf6rg"), Ok(()));
        assert!(latin1.check_cn("jörg".as_bytes()).is_err());
        // a prefix or a trailing NUL is not the same login
        assert!(info(&[Some("test1\0")], vec![]).check_cn(b"test1").is_err());
        assert!(info(&[Some("test")], vec![]).check_cn(b"test1").is_err());
    }

    #[test]
    fn san_entries_from_raw_ip_bytes() {
        let g = |b: &'static [u8]| san_entry(&GeneralName::IPAddress(b));
        assert_eq!(g(&[10, 0, 0, 1]), SanEntry::Ip(ip("10.0.0.1")));
        assert_eq!(
            g(&[10, 0, 0, 0, 255, 255, 0, 0]),
            SanEntry::Subnet {
                addr: ip("10.0.0.0"),
                mask: ip("255.255.0.0")
            }
        );
        assert_eq!(g(&[1, 2, 3]), SanEntry::BadIp(vec![1, 2, 3]));
        assert_eq!(
            san_entry(&GeneralName::RFC822Name("a@b")),
            SanEntry::Other("email:a@b".into())
        );
        assert_eq!(
            SanEntry::Subnet {
                addr: ip("10.0.0.0"),
                mask: ip("255.0.0.0")
            }
            .to_string(),
            "IP:10.0.0.0/255.0.0.0"
        );
    }

    #[test]
    fn address_check() {
        let net = StaticNetwork {
            hosts: vec![
                ("localhost".into(), ip("127.0.0.1")),
                ("app.example.com".into(), ip("10.1.1.1")),
                ("flaky.example.com".into(), ip("10.1.1.2")),
            ],
            forward_fails: vec!["flaky.example.com".into()],
            ..Default::default()
        };
        let check = |san: Vec<SanEntry>, client: &str| {
            info(&[Some("u")], san).check_address(&ClientName::new(&net, ip(client)))
        };
        let mismatch = |s: &str| Err(AddressFailure::Mismatch(s.into()));
        assert_eq!(check(vec![], "127.0.0.1"), Ok(false));
        assert_eq!(
            check(vec![SanEntry::Other("email:a@b".into())], "127.0.0.1"),
            Ok(false)
        );
        assert_eq!(
            check(vec![SanEntry::Ip(ip("127.0.0.1"))], "127.0.0.1"),
            Ok(true)
        );
        assert_eq!(
            check(vec![SanEntry::Ip(ip("127.0.0.1"))], "::ffff:127.0.0.1"),
            Ok(true)
        );
        assert_eq!(
            check(vec![SanEntry::Ip(ip("::ffff:127.0.0.1"))], "127.0.0.1"),
            Ok(true)
        );
        assert_eq!(
            check(vec![SanEntry::Ip(ip("127.0.0.1"))], "127.0.0.2"),
            mismatch(
                "client address 127.0.0.2 matches none of the certificate's SubjectAltName entries"
            )
        );
        let sub = SanEntry::Subnet {
            addr: ip("127.0.0.0"),
            mask: ip("255.255.255.0"),
        };
        assert_eq!(check(vec![sub.clone()], "127.0.0.77"), Ok(true));
        assert_eq!(check(vec![sub.clone()], "::ffff:127.0.0.77"), Ok(true));
        assert!(check(vec![sub], "127.0.1.1").is_err());
        // a 32-byte IPv4-mapped subnet matches IPv4 clients
        let mapped = SanEntry::Subnet {
            addr: ip("::ffff:10.0.0.0"),
            mask: address::mask_from_prefix(false, 104).unwrap(),
        };
        assert_eq!(check(vec![mapped.clone()], "10.200.0.1"), Ok(true));
        assert!(check(vec![mapped], "11.0.0.1").is_err());
        assert_eq!(check(vec![SanEntry::Ip(ip("::1"))], "::1"), Ok(true));
        assert_eq!(
            check(vec![SanEntry::Dns("localhost".into())], "127.0.0.1"),
            Ok(true)
        );
        assert_eq!(
            check(vec![SanEntry::Dns("*.example.com".into())], "10.1.1.1"),
            Ok(true)
        );
        assert_eq!(
            check(vec![SanEntry::Dns("nonexistent.invalid".into())], "127.0.0.1"),
            mismatch("client address 127.0.0.1 (reverse lookup: localhost) matches none of the certificate's SubjectAltName entries")
        );
        // a lookup that fails cannot be decided; an IP entry that matches needs no lookup
        assert!(matches!(
            check(vec![SanEntry::Dns("*.example.com".into())], "10.1.1.2"),
            Err(AddressFailure::Undecided(w)) if w.contains("flaky.example.com")
        ));
        assert_eq!(
            check(
                vec![
                    SanEntry::Dns("*.example.com".into()),
                    SanEntry::Ip(ip("10.1.1.2"))
                ],
                "10.1.1.2"
            ),
            Ok(true)
        );
        // the reverse name is only reported when a DNS entry made us look it up
        assert_eq!(
            check(vec![SanEntry::Ip(ip("10.0.0.1"))], "127.0.0.1"),
            mismatch(
                "client address 127.0.0.1 matches none of the certificate's SubjectAltName entries"
            )
        );
        // a malformed iPAddress still demands a match, and matches nothing
        assert!(check(vec![SanEntry::BadIp(vec![1, 2, 3])], "127.0.0.1").is_err());
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(matches!(
            CertInfo::from_der(b"not a certificate"),
            Err(CertError::Parse(_))
        ));
    }

    const ALICE: &[u8] = include_bytes!("testdata/alice.der");
    /// Named CN=alice like [`ALICE`], with another key.
    const ALICE_TWIN: &[u8] = include_bytes!("testdata/handshake-dns.der");
    const EVIL: &[u8] = include_bytes!("testdata/handshake-evil.der");

    #[test]
    fn the_serial_in_hex_as_openssl_prints_it() {
        // as `openssl x509 -noout -serial` prints each (README of testdata/)
        let serial = |der: &[u8]| CertSummary::from_der(der).unwrap().serial;
        assert_eq!(serial(ALICE), "60DA647C9CAD4FF58300AA543F80A5CAF77A24E1");
        // DER INTEGER 00 FF: the sign byte is not part of the number
        assert_eq!(serial(include_bytes!("testdata/serial-255.der")), "FF");
    }

    /// A certificate's key names it by issuer and serial: the same for the same certificate,
    /// different for another, and the id its summary shows; notAfter as the summary has it.
    #[test]
    fn a_certificate_key_identifies_it_by_issuer_and_serial() {
        let other = include_bytes!("testdata/serial-255.der");
        let key = CertKey::from_der(ALICE).unwrap();
        let summary = CertSummary::from_der(ALICE).unwrap();
        assert_eq!(key, CertKey::from_der(ALICE).unwrap());
        assert_eq!((key.id, key.not_after), (summary.id, summary.not_after));
        assert_ne!(key.id, CertKey::from_der(other).unwrap().id);
        assert!(key.id > 1, "not a constant");
        assert!(CertKey::from_der(b"not a certificate").is_err());
        // the checks' reading of a certificate carries the same key
        assert_eq!(CertInfo::from_der(ALICE).unwrap().key, key);
    }

    #[test]
    fn the_key_pin_is_the_sha256_of_the_subject_public_key_info() {
        // as `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`
        assert_eq!(
            crate::rules::token::hex(&spki_sha256(ALICE).unwrap()),
            "d4bb3458a35b1ec8b8aa3c68e22d720fe9fdde50de884aa59d78312d66960eac"
        );
        assert_ne!(
            spki_sha256(ALICE).unwrap(),
            spki_sha256(ALICE_TWIN).unwrap()
        );
        assert!(spki_sha256(b"not a certificate").is_err());
    }

    #[test]
    fn every_certificate_block_of_a_pem_text_is_read_in_order() {
        let text = [
            include_str!("testdata/alice.pem"),
            "-----BEGIN EXTRA-----\nAAAA\n-----END EXTRA-----\n",
            include_str!("testdata/handshake-dns.pem"),
        ]
        .concat();
        assert_eq!(
            certificates_from_pem(text.as_bytes()),
            vec![ALICE.to_vec(), ALICE_TWIN.to_vec()]
        );
        assert!(certificates_from_pem(b"no PEM here").is_empty());
    }

    #[test]
    fn the_issuer_key_comes_from_the_chain_or_the_one_ca_of_that_name() {
        let key = |der: &[u8]| Some(spki_sha256(der).unwrap());
        // the chain names the issuer: its second certificate, whatever the CAs
        assert_eq!(
            issuer_key_of(&[ALICE.to_vec(), EVIL.to_vec()], &[]),
            key(EVIL)
        );
        // else the CA whose subject is the issuer's name (alice.der is self-signed)
        assert_eq!(
            issuer_key_of(&[ALICE.to_vec()], &[ALICE.to_vec()]),
            key(ALICE)
        );
        assert_eq!(
            issuer_key_of(
                &[ALICE.to_vec()],
                &[EVIL.to_vec(), ALICE.to_vec(), ALICE.to_vec()]
            ),
            key(ALICE)
        );
        // no CA of that name, or two of that name with different keys: unknown
        assert_eq!(issuer_key_of(&[ALICE.to_vec()], &[EVIL.to_vec()]), None);
        assert_eq!(issuer_key_of(&[ALICE.to_vec()], &[]), None);
        assert_eq!(
            issuer_key_of(&[ALICE.to_vec()], &[ALICE.to_vec(), ALICE_TWIN.to_vec()]),
            None
        );
        assert_eq!(issuer_key_of(&[], &[ALICE.to_vec()]), None);
    }
}
