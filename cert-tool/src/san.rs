//! SubjectAltName entries: parsed from what a DBA types, encoded as DER.

use std::net::IpAddr;

/// One SubjectAltName entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Ip(IpAddr),
    /// A network: address plus mask (an 8- or 32-byte iPAddress, as in X.509 name
    /// constraints).
    Subnet(IpAddr, IpAddr),
    Dns(String),
    Email(String),
}

/// An entry that cannot be used; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SanError {
    #[error("\"{0}\" is not an IP address, a subnet (address/prefix) or a DNS name")]
    Invalid(String),
    #[error("subnet \"{text}\" has host bits set: the network is {network}/{prefix}")]
    HostBits {
        text: String,
        network: IpAddr,
        prefix: u32,
    },
    #[error("subnet \"{0}\": the prefix length must be 0 to 32 for IPv4, 0 to 128 for IPv6")]
    Prefix(String),
}

impl San {
    /// `10.1.2.3`, `fd00::1`, `10.1.0.0/16`, `fd00::/64`, `DNS:app1.example.com` (or just
    /// `app1.example.com`), `email:ops@example.com`; `IP:` may prefix an address or subnet.
    pub fn parse(text: &str) -> Result<San, SanError> {
        let invalid = || SanError::Invalid(text.to_string());
        if let Some(mail) = text.strip_prefix("email:") {
            return if mail.contains('@') && !mail.chars().any(char::is_whitespace) {
                Ok(San::Email(mail.to_string()))
            } else {
                Err(invalid())
            };
        }
        if let Some(name) = text.strip_prefix("DNS:") {
            return dns(name).ok_or_else(invalid);
        }
        let addr = text.strip_prefix("IP:").unwrap_or(text);
        if let Some((net, prefix)) = addr.split_once('/') {
            let net: IpAddr = net.parse().map_err(|_| invalid())?;
            let prefix: u32 = prefix
                .parse()
                .map_err(|_| SanError::Prefix(text.to_string()))?;
            let mask = pg_twofactor_core::address::mask_from_prefix(net.is_ipv4(), prefix)
                .ok_or_else(|| SanError::Prefix(text.to_string()))?;
            let network = apply_mask(net, mask);
            if network != net {
                return Err(SanError::HostBits {
                    text: text.to_string(),
                    network,
                    prefix,
                });
            }
            return Ok(San::Subnet(net, mask));
        }
        if let Ok(ip) = addr.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        if text.starts_with("IP:") {
            return Err(invalid());
        }
        dns(text).ok_or_else(invalid)
    }
}

/// A DNS name as a SubjectAltName may hold it (letters, digits, `-`, `.`, a leading `*.`).
fn dns(name: &str) -> Option<San> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        });
    ok.then(|| San::Dns(name.to_string()))
}

fn apply_mask(a: IpAddr, m: IpAddr) -> IpAddr {
    match (a, m) {
        (IpAddr::V4(a), IpAddr::V4(m)) => IpAddr::V4((u32::from(a) & u32::from(m)).into()),
        (IpAddr::V6(a), IpAddr::V6(m)) => IpAddr::V6((u128::from(a) & u128::from(m)).into()),
        _ => a,
    }
}

/// DER of one tag-length-value.
pub use pg_twofactor_core::dn::der_tlv;

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// DER of a SubjectAltName extension's value (GeneralNames).
pub fn san_der(entries: &[San]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        body.extend(match e {
            San::Email(s) => der_tlv(0x81, s.as_bytes()),
            San::Dns(s) => der_tlv(0x82, s.as_bytes()),
            San::Ip(a) => der_tlv(0x87, &ip_bytes(*a)),
            San::Subnet(a, m) => {
                let mut b = ip_bytes(*a);
                b.extend(ip_bytes(*m));
                der_tlv(0x87, &b)
            }
        });
    }
    der_tlv(0x30, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_as_a_dba_writes_them() {
        assert_eq!(San::parse("10.1.2.3"), Ok(San::Ip(ip("10.1.2.3"))));
        assert_eq!(San::parse("IP:fd00::1"), Ok(San::Ip(ip("fd00::1"))));
        assert_eq!(
            San::parse("10.1.0.0/16"),
            Ok(San::Subnet(ip("10.1.0.0"), ip("255.255.0.0")))
        );
        assert_eq!(
            San::parse("fd00::/64"),
            Ok(San::Subnet(ip("fd00::"), ip("ffff:ffff:ffff:ffff::")))
        );
        assert_eq!(
            San::parse("DNS:app1.example.com"),
            Ok(San::Dns("app1.example.com".into()))
        );
        assert_eq!(
            San::parse("*.example.com"),
            Ok(San::Dns("*.example.com".into()))
        );
        assert_eq!(
            San::parse("email:ops@example.com"),
            Ok(San::Email("ops@example.com".into()))
        );
        assert_eq!(
            San::parse("10.1.2.3/16").unwrap_err().to_string(),
            "subnet \"10.1.2.3/16\" has host bits set: the network is 10.1.0.0/16"
        );
        assert_eq!(
            San::parse("10.0.0.0/33").unwrap_err().to_string(),
            "subnet \"10.0.0.0/33\": the prefix length must be 0 to 32 for IPv4, 0 to 128 for IPv6"
        );
        assert_eq!(
            San::parse("app 1").unwrap_err().to_string(),
            "\"app 1\" is not an IP address, a subnet (address/prefix) or a DNS name"
        );
        assert!(San::parse("IP:app1").is_err());
        assert!(San::parse("email:nobody").is_err());
    }

    #[test]
    fn general_names_in_der() {
        let der = san_der(&[San::Ip(ip("10.0.0.1")), San::Dns("a".into())]);
        assert_eq!(der, vec![0x30, 9, 0x87, 4, 10, 0, 0, 1, 0x82, 1, b'a']);
        let sub = san_der(&[San::Subnet(ip("10.0.0.0"), ip("255.0.0.0"))]);
        assert_eq!(sub, vec![0x30, 10, 0x87, 8, 10, 0, 0, 0, 255, 0, 0, 0]);
    }
}
