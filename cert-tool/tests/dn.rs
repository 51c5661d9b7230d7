//! The issuer as pg_twofactor reads it (`pg_twofactor_core::dn`) is, byte for byte, what
//! OpenSSL prints with `-nameopt RFC2253` (PostgreSQL's DN form), for names with the
//! characters RFC 2253 escapes, non-ASCII text, several attributes of one kind and string
//! types other than UTF8String.

use openssl::asn1::Asn1Type;
use openssl::nid::Nid;
use openssl::x509::X509NameBuilder;
use pg_twofactor_cert::ca::{login_subject, Ca, KeyKind, Profile};
use pg_twofactor_core::cert::CertInfo;

/// OpenSSL's reading of the certificate's issuer.
fn openssl_issuer(pem: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("pg2f-dn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "{:x}.crt",
        pem.len() ^ pem.iter().map(|b| *b as usize).sum::<usize>()
    ));
    std::fs::write(&file, pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-nameopt", "RFC2253", "-in"])
        .arg(&file)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim_end_matches('\n')
        .strip_prefix("issuer=")
        .unwrap()
        .to_string()
}

#[test]
fn issuers_read_as_openssl_prints_them() {
    let names: Vec<Vec<(Nid, &str, Option<Asn1Type>)>> = vec![
        vec![
            (Nid::COMMONNAME, "DB Admin CA", None),
            (Nid::ORGANIZATIONNAME, "Example", None),
        ],
        vec![
            (Nid::COUNTRYNAME, "DE", None),
            (Nid::ORGANIZATIONNAME, "Example, Inc.", None),
            (Nid::ORGANIZATIONALUNITNAME, "a+b;c<d>\"e\\f", None),
            (Nid::COMMONNAME, "#lead and trail ", None),
        ],
        vec![
            (Nid::DOMAINCOMPONENT, "org", None),
            (Nid::DOMAINCOMPONENT, "example", None),
            (Nid::COMMONNAME, "Jörg's CA", None),
        ],
        vec![
            (
                Nid::COMMONNAME,
                "printable CA",
                Some(Asn1Type::PRINTABLESTRING),
            ),
            (
                Nid::PKCS9_EMAILADDRESS,
                "ca@example.com",
                Some(Asn1Type::IA5STRING),
            ),
            (Nid::LOCALITYNAME, " München", Some(Asn1Type::T61STRING)),
        ],
    ];
    for entries in names {
        let mut name = X509NameBuilder::new().unwrap();
        for (nid, value, ty) in &entries {
            match ty {
                Some(t) => name.append_entry_by_nid_with_type(*nid, value, *t).unwrap(),
                None => name.append_entry_by_nid(*nid, value).unwrap(),
            }
        }
        let ca = Ca::with_subject(&name.build(), 1, KeyKind::EcP256).unwrap();
        let (cert, _) = ca
            .issue(
                &login_subject("app").unwrap(),
                None,
                1,
                KeyKind::EcP256,
                Profile::Client,
            )
            .unwrap();
        let ours = CertInfo::from_der(&cert.to_der().unwrap())
            .unwrap()
            .issuer();
        assert_eq!(ours, openssl_issuer(&cert.to_pem().unwrap()), "{entries:?}");
    }
}
