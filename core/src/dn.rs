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
        30 => code_points::<2>(data),
        // UniversalString: UCS-4, big-endian
        28 => code_points::<4>(data),
        _ => return None,
    })
}

/// The characters of big-endian code units of `N` bytes (a short last unit padded with zero
/// bytes); a unit that is no character (a surrogate, beyond U+10FFFF) as U+FFFD.
fn code_points<const N: usize>(data: &[u8]) -> Vec<char> {
    data.chunks(N)
        .map(|unit| {
            let mut be = [0u8; 4];
            be[4 - N..4 - N + unit.len()].copy_from_slice(unit);
            char::from_u32(u32::from_be_bytes(be)).unwrap_or('\u{fffd}')
        })
        .collect()
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
    let der = der_tlv(
        class | constructed | (any.header.tag().0 as u8 & 0x1f),
        any.data,
    );
    let mut out = String::from("#");
    for b in der {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// The DER of one value: its identifier byte, its length (short form below 128, else long
/// form), its contents.
pub fn der_tlv(identifier: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut der = vec![identifier];
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 + bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(contents);
    der
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

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    fn oid(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
        let mut out = vec![(arcs[0] * 40 + arcs[1]) as u8];
        for &arc in &arcs[2..] {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                groups.push((rest & 0x7f) as u8 | 0x80);
                rest >>= 7;
            }
            out.extend(groups.into_iter().rev());
        }
        der_tlv(0x06, &out)
    }

    /// One attribute: its OID and its value's DER.
    fn atv(dotted: &str, value: Vec<u8>) -> Vec<u8> {
        der_tlv(0x30, &[oid(dotted), value].concat())
    }

    /// A name of RDNs, each a set of attributes, in certificate order.
    fn name(rdns: &[&[Vec<u8>]]) -> String {
        let der = der_tlv(
            0x30,
            &rdns
                .iter()
                .map(|r| der_tlv(0x31, &r.concat()))
                .collect::<Vec<_>>()
                .concat(),
        );
        let (rest, name) = X509Name::from_der(&der).unwrap();
        assert!(rest.is_empty());
        rfc2253(&name)
    }

    /// A name of one attribute whose value is `value` (DER).
    fn one(dotted: &str, value: Vec<u8>) -> String {
        name(&[&[atv(dotted, value)]])
    }

    const CN: &str = "2.5.4.3";

    #[test]
    fn every_short_name_openssl_prints() {
        for (dotted, short) in [
            ("2.5.4.3", "CN"),
            ("2.5.4.4", "SN"),
            ("2.5.4.5", "serialNumber"),
            ("2.5.4.6", "C"),
            ("2.5.4.7", "L"),
            ("2.5.4.8", "ST"),
            ("2.5.4.9", "street"),
            ("2.5.4.10", "O"),
            ("2.5.4.11", "OU"),
            ("2.5.4.12", "title"),
            ("2.5.4.13", "description"),
            ("2.5.4.15", "businessCategory"),
            ("2.5.4.17", "postalCode"),
            ("2.5.4.41", "name"),
            ("2.5.4.42", "GN"),
            ("2.5.4.43", "initials"),
            ("2.5.4.44", "generationQualifier"),
            ("2.5.4.46", "dnQualifier"),
            ("2.5.4.65", "pseudonym"),
            ("2.5.4.97", "organizationIdentifier"),
            ("0.9.2342.19200300.100.1.1", "UID"),
            ("0.9.2342.19200300.100.1.25", "DC"),
            ("1.2.840.113549.1.9.1", "emailAddress"),
            ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
            ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
            ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
        ] {
            assert_eq!(
                one(dotted, der_tlv(0x13, b"v")),
                format!("{short}=v"),
                "{dotted}"
            );
        }
        // no short name: the dotted OID and the value's DER
        assert_eq!(one("1.2.3.4", der_tlv(0x13, b"v")), "1.2.3.4=#130176");
    }

    #[test]
    fn every_string_type_as_utf8() {
        let e_acute = r"CN=\C3\A9";
        assert_eq!(one(CN, der_tlv(0x0c, "é".as_bytes())), e_acute); // UTF8String
        assert_eq!(one(CN, der_tlv(0x12, b"0 1")), "CN=0 1"); // NumericString
        assert_eq!(one(CN, der_tlv(0x13, b"ab")), "CN=ab"); // PrintableString
        assert_eq!(one(CN, der_tlv(0x14, &[0xe9])), e_acute); // T61String, as ISO 8859-1
        assert_eq!(one(CN, der_tlv(0x16, b"a@b")), "CN=a@b"); // IA5String
        assert_eq!(one(CN, der_tlv(0x1a, b"ab")), "CN=ab"); // VisibleString
                                                            // BMPString and UniversalString, big-endian, beyond one byte (U+0410) and ASCII
        assert_eq!(
            one(CN, der_tlv(0x1e, &[0x04, 0x10, 0x00, 0x41])),
            r"CN=\D0\90A"
        );
        assert_eq!(
            one(CN, der_tlv(0x1c, &[0, 0, 0x04, 0x10, 0, 0, 0, 0x41])),
            r"CN=\D0\90A"
        );
        // a surrogate is no character
        assert_eq!(one(CN, der_tlv(0x1e, &[0xd8, 0x00])), r"CN=\EF\BF\BD");
    }

    #[test]
    fn values_that_are_not_strings_as_their_der() {
        assert_eq!(one(CN, der_tlv(0x02, &[0x01])), "CN=#020101"); // INTEGER
                                                                   // a string type's tag in another class, or constructed, is no string
        assert_eq!(one(CN, der_tlv(0x8c, b"v")), "CN=#8C0176"); // [12], context-specific
        assert_eq!(one(CN, der_tlv(0x4c, b"v")), "CN=#4C0176"); // [APPLICATION 12]
        assert_eq!(one(CN, der_tlv(0xcc, b"v")), "CN=#CC0176"); // [PRIVATE 12]
        assert_eq!(
            one(CN, der_tlv(0x2c, &der_tlv(0x0c, b"v"))),
            "CN=#2C030C0176"
        ); // constructed UTF8String
        assert_eq!(
            one(CN, der_tlv(0xa0, &der_tlv(0x0c, b"v"))),
            "CN=#A0030C0176"
        );
        // lengths in short and long form
        let short = vec![0x41u8; 0x7f];
        assert_eq!(
            one(CN, der_tlv(0x04, &short)),
            format!("CN=#047F{}", "41".repeat(0x7f))
        );
        let long = vec![0x41u8; 0x80];
        assert_eq!(
            one(CN, der_tlv(0x04, &long)),
            format!("CN=#048180{}", "41".repeat(0x80))
        );
        let longer = vec![0x41u8; 0x123];
        assert_eq!(
            one(CN, der_tlv(0x04, &longer)),
            format!("CN=#04820123{}", "41".repeat(0x123))
        );
    }

    #[test]
    fn values_escaped_as_rfc_2253_says() {
        let utf8 = |s: &str| one(CN, der_tlv(0x0c, s.as_bytes()));
        assert_eq!(utf8(r#"a,b+c"d<e>f;g\h"#), r#"CN=a\,b\+c\"d\<e\>f\;g\\h"#);
        assert_eq!(utf8("#a#"), r"CN=\#a#");
        assert_eq!(utf8(" a b "), r"CN=\ a b\ ");
        assert_eq!(utf8(" "), r"CN=\ ");
        assert_eq!(utf8("a\u{1}\u{1f}\u{7f}~"), r"CN=a\01\1F\7F~");
    }

    #[test]
    fn rdns_last_to_first_and_the_values_of_one_rdn_joined_by_plus() {
        let printable = |s: &str| der_tlv(0x13, s.as_bytes());
        assert_eq!(
            name(&[
                &[atv("2.5.4.6", printable("RU"))],
                &[atv("2.5.4.10", printable("Org"))],
                &[
                    atv(CN, printable("a")),
                    atv("0.9.2342.19200300.100.1.1", printable("b"))
                ],
            ]),
            "UID=b+CN=a,O=Org,C=RU"
        );
        assert_eq!(name(&[]), "");
    }

    #[test]
    fn the_subjects_of_the_certificates_of_a_bundle() {
        let alice = include_str!("testdata/alice.pem");
        let (_, cert) =
            x509_parser::parse_x509_certificate(include_bytes!("testdata/alice.der")).unwrap();
        let subject = rfc2253(cert.subject());
        assert!(subject.contains("CN=alice"), "{subject}");
        // a key block and a block that is no certificate are left out
        let bundle = format!(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{alice}\n\
             -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(pem_subjects(bundle.as_bytes()), vec![subject]);
        assert!(pem_subjects(b"").is_empty());
    }
}
