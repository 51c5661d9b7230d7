//! The check made during the TLS handshake (`pg_twofactor.handshake_check`): a client
//! certificate that verified against `ssl_ca_file` and whose SubjectAltName names IP
//! addresses, subnets or DNS names must name the address the client connects from.
//!
//! The login is not known yet (the startup packet follows TLS), so only the address binding
//! can be checked here; the CN, the method and `issuer=` wait for the login hook. A
//! certificate with no address entries passes unchanged, as does a client without a
//! certificate (OpenSSL calls the check only for a certificate that was sent). The matching is
//! the login hook's own ([`CertInfo::check_address`]): IPv4, IPv6, IPv4-mapped addresses,
//! subnets, and DNS names confirmed by a forward lookup of the client's reverse name.
//!
//! What cannot be decided fails closed: a certificate that cannot be read, a DNS entry whose
//! lookup failed (the reverse zone of the client's address is the client's to break, so an
//! outage of it must not open the password exchange), a client address that cannot be read.

use crate::address::ClientName;
use crate::cert::{self, AddressFailure, CertInfo};
use crate::printable::printable;

/// The reason under which the statistics count a refused handshake, and the dry run shows it.
pub const REASON: &str =
    "refused in the TLS handshake (client certificate bound to other addresses)";

/// What the handshake does with a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeVerdict {
    /// The certificate names no address: nothing to check before the login is known.
    Unbound,
    /// The client's address matched one of the certificate's SubjectAltName entries.
    Matched,
    /// The handshake fails: no startup packet, no password exchange.
    Refused(HandshakeRefusal),
}

/// Why the handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusalCause {
    /// No SubjectAltName entry names the client's address.
    #[error("{0}")]
    Mismatch(String),
    /// A DNS entry could not be checked.
    #[error("the certificate's SubjectAltName could not be checked: {0}")]
    Undecided(String),
    /// The certificate verified, but its fields could not be read.
    #[error("the certificate could not be read: {0}")]
    Unreadable(String),
    /// The client's address could not be read from the connection.
    #[error("the client's address could not be read")]
    NoClientAddress,
}

/// A refused handshake, with what the server log says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRefusal {
    pub cause: RefusalCause,
    /// The certificate's subject, issuer and SubjectAltName, when they could be read.
    pub certificate: Option<CertText>,
}

/// The certificate's names as the refusal log shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertText {
    pub subject: String,
    pub issuer: String,
    pub san: String,
}

impl HandshakeRefusal {
    /// The log line's message: `client` is the client's address as PostgreSQL logs it.
    pub fn message(&self, client: &str) -> String {
        let what = match self.cause {
            RefusalCause::Mismatch(_) => "client address does not match the certificate",
            RefusalCause::Undecided(_) => "the certificate's address binding could not be checked",
            RefusalCause::Unreadable(_) => "the client certificate could not be read",
            RefusalCause::NoClientAddress => "the client's address could not be read",
        };
        format!(
            "pg_twofactor refused the TLS handshake of client {}: {what}",
            printable(client)
        )
    }

    /// The log line's DETAIL: the certificate's names (escaped where they are read, in
    /// [`CertInfo`]: a certificate's text is the client's choice), the cause, and what did not
    /// happen.
    pub fn detail(&self) -> String {
        let names = match &self.certificate {
            Some(c) => format!(
                "Certificate subject \"{}\"; issuer \"{}\"; SubjectAltName: {}. ",
                c.subject, c.issuer, c.san
            ),
            None => String::new(),
        };
        format!(
            "{names}{} The client was refused before its startup packet: no login was attempted and no password exchanged.",
            crate::decision::sentence(&self.cause.to_string())
        )
    }
}

/// The handshake's verdict on the verified certificate `der` for the client `client` (`None`:
/// its address could not be read).
pub fn check(der: &[u8], client: Option<&ClientName<'_>>) -> HandshakeVerdict {
    // only the SubjectAltName is read for every certificate; the names for the log are read
    // for a refusal alone
    let san = match cert::san_entries(der) {
        Ok(san) => san,
        Err(e) => return refused(der, RefusalCause::Unreadable(printable(&e.to_string()))),
    };
    if !cert::has_address_entries(&san) {
        return HandshakeVerdict::Unbound;
    }
    let Some(client) = client else {
        return refused(der, RefusalCause::NoClientAddress);
    };
    match cert::check_address(&san, client) {
        Ok(true) => HandshakeVerdict::Matched,
        // has_address_entries said there are entries, so check_address compared them; should
        // the two ever disagree, refuse rather than pass an unchecked binding
        Ok(false) => refused(
            der,
            RefusalCause::Unreadable("its address entries could not be compared".into()),
        ),
        Err(AddressFailure::Mismatch(why)) => refused(der, RefusalCause::Mismatch(why)),
        Err(AddressFailure::Undecided(why)) => refused(der, RefusalCause::Undecided(why)),
    }
}

/// A refusal for `cause`, with the certificate's names when they can be read.
fn refused(der: &[u8], cause: RefusalCause) -> HandshakeVerdict {
    let certificate = CertInfo::from_der(der).ok().map(|c| CertText {
        san: c.san_text(),
        issuer: c.issuer(),
        subject: c.subject,
    });
    HandshakeVerdict::Refused(HandshakeRefusal { cause, certificate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::StaticNetwork;
    use std::net::IpAddr;

    // self-signed certificates made by openssl (testdata/README says how)
    const UNBOUND: &[u8] = include_bytes!("testdata/handshake-unbound.der");
    const EMAIL: &[u8] = include_bytes!("testdata/handshake-email.der");
    const LOOPBACK: &[u8] = include_bytes!("testdata/handshake-loopback.der");
    const DNS: &[u8] = include_bytes!("testdata/handshake-dns.der");
    const EVIL: &[u8] = include_bytes!("testdata/handshake-evil.der");
    const BAD_SAN: &[u8] = include_bytes!("testdata/handshake-bad-san.der");
    const BAD_OTHER: &[u8] = include_bytes!("testdata/handshake-bad-other.der");

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn verdict(der: &[u8], net: &StaticNetwork, addr: &str) -> HandshakeVerdict {
        check(der, Some(&ClientName::new(net, ip(addr))))
    }

    fn cause(v: HandshakeVerdict) -> RefusalCause {
        match v {
            HandshakeVerdict::Refused(r) => r.cause,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_certificate_without_address_entries_passes_unchanged() {
        let net = StaticNetwork::default();
        assert_eq!(
            verdict(UNBOUND, &net, "10.0.0.1"),
            HandshakeVerdict::Unbound
        );
        assert_eq!(verdict(EMAIL, &net, "10.0.0.1"), HandshakeVerdict::Unbound);
        // even with no readable client address: there is nothing to compare
        assert_eq!(check(UNBOUND, None), HandshakeVerdict::Unbound);
    }

    #[test]
    fn an_address_entry_must_name_the_client() {
        let net = StaticNetwork::default();
        let der = LOOPBACK;
        assert_eq!(verdict(der, &net, "127.0.0.1"), HandshakeVerdict::Matched);
        assert_eq!(verdict(der, &net, "::1"), HandshakeVerdict::Matched);
        // an IPv4 client reaching an IPv6 socket arrives IPv4-mapped
        assert_eq!(
            verdict(der, &net, "::ffff:127.0.0.1"),
            HandshakeVerdict::Matched
        );
        assert!(matches!(
            cause(verdict(der, &net, "127.0.0.2")),
            RefusalCause::Mismatch(m) if m.contains("127.0.0.2 matches none")
        ));
        assert!(matches!(
            cause(verdict(der, &net, "::2")),
            RefusalCause::Mismatch(_)
        ));
    }

    #[test]
    fn dns_entries_need_a_confirmed_reverse_name_and_fail_closed() {
        let der = DNS;
        let confirmed = StaticNetwork {
            hosts: vec![("client.example".into(), ip("10.1.1.1"))],
            ..Default::default()
        };
        assert_eq!(
            verdict(der, &confirmed, "10.1.1.1"),
            HandshakeVerdict::Matched
        );
        assert!(matches!(
            cause(verdict(der, &confirmed, "10.1.1.2")),
            RefusalCause::Mismatch(_)
        ));
        // the reverse lookup fails: refused, not passed on to the password exchange
        let outage = StaticNetwork {
            reverse_fails: vec![ip("10.1.1.1")],
            ..Default::default()
        };
        assert!(matches!(
            cause(verdict(der, &outage, "10.1.1.1")),
            RefusalCause::Undecided(_)
        ));
        // the forward confirmation fails: refused too
        let unconfirmed = StaticNetwork {
            hosts: vec![("client.example".into(), ip("10.1.1.1"))],
            forward_fails: vec!["client.example".into()],
            ..Default::default()
        };
        assert!(matches!(
            cause(verdict(der, &unconfirmed, "10.1.1.1")),
            RefusalCause::Undecided(_)
        ));
    }

    #[test]
    fn a_subject_alt_name_that_cannot_be_parsed_is_refused_and_only_it() {
        let net = StaticNetwork::default();
        // a broken SubjectAltName might hide addresses: refused, never "no entries"
        assert!(matches!(
            cause(verdict(BAD_SAN, &net, "127.0.0.1")),
            RefusalCause::Unreadable(why) if why.contains("SubjectAltName")
        ));
        // another broken extension says nothing about the binding: the SubjectAltName decides
        assert_eq!(
            verdict(BAD_OTHER, &net, "127.0.0.1"),
            HandshakeVerdict::Matched
        );
        assert!(matches!(
            cause(verdict(BAD_OTHER, &net, "127.0.0.2")),
            RefusalCause::Mismatch(_)
        ));
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        let net = StaticNetwork::default();
        assert!(matches!(
            cause(check(
                b"not a certificate",
                Some(&ClientName::new(&net, ip("127.0.0.1")))
            )),
            RefusalCause::Unreadable(_)
        ));
        assert_eq!(cause(check(LOOPBACK, None)), RefusalCause::NoClientAddress);
    }

    #[test]
    fn the_log_line_names_the_client_and_escapes_the_certificate() {
        let net = StaticNetwork::default();
        let der = EVIL;
        let HandshakeVerdict::Refused(r) = verdict(der, &net, "127.0.0.1") else {
            panic!("expected a refusal")
        };
        assert_eq!(
            r.message("127.0.0.1"),
            "pg_twofactor refused the TLS handshake of client 127.0.0.1: client address does not match the certificate"
        );
        let detail = r.detail();
        assert!(!detail.contains('\n'), "{detail}");
        assert!(detail.contains("SubjectAltName: IP:10.9.9.9."), "{detail}");
        assert!(detail.contains("CN=evil\\0ALOG:  forged"), "{detail}");
        assert!(detail.contains("certificate's SubjectAltName"), "{detail}");
        assert!(
            detail.ends_with("no login was attempted and no password exchanged."),
            "{detail}"
        );
    }
}
