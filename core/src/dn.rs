//! Distinguished names as PostgreSQL sees them: OpenSSL's `X509_NAME_print_ex` with
//! `XN_FLAG_RFC2253`, the form of `port->peer_dn` that `clientname=DN` compares, byte for byte
//! (`be-secure-openssl.c`). So an `issuer=` written as `openssl x509 -issuer -nameopt RFC2253`
//! prints it matches.
//!
//! What that form is: the RDNs last to first, separated by `,`, the values of a multi-valued
//! RDN by `+` (also last to first); each attribute by its OpenSSL short name (`CN`, `O`, `OU`,
//! `C`, `L`, `ST`, `DC`, `emailAddress`, ...) and `=`; a string value converted to UTF-8, its
//! bytes above 0x7F and control characters as `\XX`, `,+"\<>;` escaped with `\`, as are a
//! leading `#` or space and a trailing space; a value that is not a string, or of an attribute
//! without a short name (its dotted OID), as `#` and the hex of its DER.

use x509_parser::der_parser::asn1_rs::{Any, Class};
use x509_parser::x509::X509Name;

/// OpenSSL's short names of the attributes certificates use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// The characters of a string value, or `None` for a value that is not a string type.
fn chars(any: &Any<'_>) -> Option<Vec<char>> {
    if any.header.class() != Class::Universal || any.header.is_constructed() {
        return None;
    }
    let data = any.data;
    Some(match any.header.tag().0 {
        // UTF8String
        12 => String::from_utf8_lossy(data).chars().collect(),
        // NumericString, PrintableString, T61String, IA5String, VisibleString: one byte each
        // (T61String as ISO 8859-1, as OpenSSL converts it)
        18 | 19 | 20 | 22 | 26 => data.iter().map(|b| char::from(*b)).collect(),
        // BMPString: UCS-2, big-endian
        30 => data
            .chunks(2)
            .map(|c| {
                let u = u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
                char::from_u32(u).unwrap_or('\u{fffd}')
            })
            .collect(),
        // UniversalString: UCS-4, big-endian
        28 => data
            .chunks(4)
            .map(|c| {
                let u = c.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
                char::from_u32(u).unwrap_or('\u{fffd}')
            })
            .collect(),
        _ => return None,
    })
}

/// `#` and the hex of the value's DER (tag, length, contents).
fn dump(any: &Any<'_>) -> String {
    let class = match any.header.class() {
        Class::Universal => 0u8,
        Class::Application => 0x40,
        Class::ContextSpecific => 0x80,
        Class::Private => 0xc0,
    };
    let constructed = if any.header.is_constructed() { 0x20 } else { 0 };
    let mut der = vec![class | constructed | (any.header.tag().0 as u8 & 0x1f)];
    let len = any.data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(any.data);
    let mut out = String::from("#");
    for b in der {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// A string value escaped as `ASN1_STRFLGS_RFC2253` escapes it.
fn escape(value: &[char]) -> String {
    let mut out = String::new();
    let last = value.len().saturating_sub(1);
    for (i, c) in value.iter().enumerate() {
        let mut utf8 = [0u8; 4];
        for b in c.encode_utf8(&mut utf8).bytes() {
            match b {
                0x80.. | 0..=0x1f | 0x7f => out.push_str(&format!("\\{b:02X}")),
                b',' | b'+' | b'"' | b'<' | b'>' | b';' | b'\\' => {
                    out.push('\\');
                    out.push(b as char);
                }
                b'#' if i == 0 => out.push_str("\\#"),
                b' ' if i == 0 || i == last => out.push_str("\\ "),
                _ => out.push(b as char),
            }
        }
    }
    out
}

/// The name in `XN_FLAG_RFC2253` form.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    // (RDN index, attribute) in certificate order, then printed last to first
    let mut entries = Vec::new();
    for (set, rdn) in name.iter().enumerate() {
        for atv in rdn.iter() {
            entries.push((set, atv));
        }
    }
    let mut out = String::new();
    let mut previous: Option<usize> = None;
    for (set, atv) in entries.iter().rev() {
        if let Some(p) = previous {
            out.push(if p == *set { '+' } else { ',' });
        }
        previous = Some(*set);
        let oid = atv.attr_type().to_id_string();
        let value = atv.attr_value();
        match (short_name(&oid), chars(value)) {
            (Some(sn), Some(chars)) => {
                out.push_str(sn);
                out.push('=');
                out.push_str(&escape(&chars));
            }
            (Some(sn), None) => {
                out.push_str(sn);
                out.push('=');
                out.push_str(&dump(value));
            }
            (None, _) => {
                out.push_str(&oid);
                out.push('=');
                out.push_str(&dump(value));
            }
        }
    }
    out
}

/// The subjects of the certificates in a PEM bundle (an `ssl_ca_file`), in RFC 2253 form;
/// blocks that are not readable certificates are left out.
pub fn pem_subjects(pem: &[u8]) -> Vec<String> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .filter_map(|p| {
            x509_parser::parse_x509_certificate(&p.contents)
                .ok()
                .map(|(_, c)| rfc2253(c.subject()))
        })
        .collect()
}
