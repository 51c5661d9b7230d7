//! Property tests (proptest) of the pure logic, without a server: the rules tokenizer and
//! parser on hostile input, the SubjectAltName subnet check against a plain 128-bit model, and
//! certificates mutated at random. PROPTEST_CASES overrides the number of cases (default 512).

use pg_twofactor_core::address::{in_san_network, KnownHost, StaticNetwork};
use pg_twofactor_core::cert::CertInfo;
use pg_twofactor_core::decision::{decide, LoginAttempt, PeerCert, Verdict, VerifiedCert};
use pg_twofactor_core::methods::{BaseMethod, MethodSet};
use pg_twofactor_core::rules::{parse_text, AnyRegex, Syntax};
use pg_twofactor_e2e::{Pki, San};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: pg_twofactor_e2e::env_or("PROPTEST_CASES", 512) as u32,
        ..ProptestConfig::default()
    }
}

/// Bytes that mean something to the tokenizer, plus anything at all.
fn rules_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"hostssl ".to_vec()),
        Just(b"host ".to_vec()),
        Just(b"local ".to_vec()),
        Just(b"all ".to_vec()),
        Just(b"sameuser ".to_vec()),
        Just(b"samerole ".to_vec()),
        Just(b"replication ".to_vec()),
        Just(b"2f-scram-sha-256".to_vec()),
        Just(b"2f-md5 ".to_vec()),
        Just(b"san=required ".to_vec()),
        Just(b"127.0.0.1/32 ".to_vec()),
        Just(b"::1/200 ".to_vec()),
        Just(b"10.0.0.0 255.0.0.0 ".to_vec()),
        Just(b"samehost ".to_vec()),
        Just(b"samenet ".to_vec()),
        Just(b".example.com ".to_vec()),
        Just(b"+role ".to_vec()),
        Just(b"@missing ".to_vec()),
        Just(b"@/dev/null ".to_vec()),
        Just(b"include missing\n".to_vec()),
        Just(b"include_if_exists missing\n".to_vec()),
        Just(b"include_dir missing\n".to_vec()),
        Just(b"/^re(gex$ ".to_vec()),
        Just(b"\"".to_vec()),
        Just(b",".to_vec()),
        Just(b"\\\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"#".to_vec()),
        Just(b"\0".to_vec()),
        Just(vec![0xff, 0xfe, 0xc3]),
        Just(b" \t\r".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(pieces, 0..120).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    /// No input makes the parser panic, and every error names a line of the file it is in.
    #[test]
    fn the_rules_parser_never_panics_and_errors_name_a_line(text in rules_bytes()) {
        let path = Path::new("/nonexistent-pg2f-proptest/pg_twofactor_hba.conf");
        let lines = text.split(|&b| b == b'\n').count();
        for syntax in [Syntax::Pg15, Syntax::Pg16] {
            let parsed = parse_text(path, &text, syntax, &AnyRegex);
            for e in parsed.errors() {
                let line = e.line.unwrap_or_else(|| panic!("no line: {e}"));
                prop_assert!(line >= 1, "{e}");
                if e.file == path {
                    prop_assert!(line <= lines, "line {line} of {lines}: {e}");
                }
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    /// The SubjectAltName subnet check is a 128-bit mask comparison in which IPv4 and
    /// IPv4-mapped IPv6 addresses are the same address.
    #[test]
    fn the_san_subnet_check_agrees_with_a_128_bit_model(
        addr in any_ip(), net in any_ip(), v4_mask in any::<bool>(), prefix in 0u32..=128,
    ) {
        let (net, mask) = if v4_mask {
            (IpAddr::V4(v4_of(net)), IpAddr::V4(Ipv4Addr::from(prefix_bits(prefix.min(32), 32) as u32)))
        } else {
            (net, IpAddr::V6(Ipv6Addr::from(prefix_bits(prefix, 128))))
        };
        let net = if v4_mask { net } else { IpAddr::V6(v6_of(net)) };
        let model = {
            let m = match mask {
                IpAddr::V4(m) => (u128::MAX << 32) | u128::from(u32::from(m)),
                IpAddr::V6(m) => u128::from(m),
            };
            (as_mapped(addr) & m) == (as_mapped(net) & m)
        };
        prop_assert_eq!(in_san_network(addr, net, mask), model,
            "addr {} net {} mask {}", addr, net, mask);
    }

    /// A certificate that cannot be read is refused, never accepted; nothing panics; and an
    /// accepted certificate really has the login as its only CN.
    #[test]
    fn mutated_certificates_are_refused_unless_they_read_and_check(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut der = base_cert().to_vec();
        for (at, byte) in edits {
            let i = at % der.len();
            der[i] = byte;
        }
        if let Some(c) = cut {
            der.truncate(c % (der.len() + 1));
        }
        let verdict = decide_with(der.clone());
        match CertInfo::from_der(&der) {
            Err(_) => prop_assert!(matches!(verdict, Verdict::Refused { .. }), "{verdict:?}"),
            Ok(info) => {
                if matches!(verdict, Verdict::Accepted { .. }) {
                    prop_assert!(info.check_cn(b"bench").is_ok());
                    // and as OpenSSL (which verified it in the server) reads it: the only CN
                    // is the login, and IP SubjectAltNames, if any, include the client
                    if let Ok(x) = openssl::x509::X509::from_der(&der) {
                        let (cns, ips) = openssl_reading(&x);
                        prop_assert_eq!(cns, vec![b"bench".to_vec()]);
                        prop_assert!(
                            ips.is_empty() || ips.contains(&vec![127, 0, 0, 1]),
                            "{:?}",
                            ips
                        );
                    }
                }
            }
        }
    }
}

/// The CNs and the IP SubjectAltName entries of `x`, read by OpenSSL, independently of the
/// extension's x509-parser reading.
fn openssl_reading(x: &openssl::x509::X509Ref) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let cns = x
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .map(|e| e.data().as_slice().to_vec())
        .collect();
    let ips = x
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.ipaddress().map(<[u8]>::to_vec))
                .collect()
        })
        .unwrap_or_default();
    (cns, ips)
}

/// The positive control of the mutation property: the certificate it mutates is accepted
/// unmutated (so a decision that refused everything would fail here), and both readings agree
/// on its CN and SubjectAltName.
#[test]
fn the_unmutated_certificate_is_accepted() {
    let der = base_cert().to_vec();
    let verdict = decide_with(der.clone());
    assert!(matches!(verdict, Verdict::Accepted { .. }), "{verdict:?}");
    let x = openssl::x509::X509::from_der(&der).unwrap();
    assert_eq!(
        openssl_reading(&x),
        (vec![b"bench".to_vec()], vec![vec![127, 0, 0, 1]])
    );
    let info = CertInfo::from_der(&der).unwrap();
    assert!(info.check_cn(b"bench").is_ok());
    assert_eq!(info.san_text(), "IP:127.0.0.1");
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        // near the interesting prefixes
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(
            10,
            (a % 4) as u8,
            (b % 4) as u8,
            1
        ))),
    ]
}

fn prefix_bits(prefix: u32, width: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        let ones = u128::MAX << (128 - prefix);
        ones >> (128 - width)
    }
}

fn v4_of(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a
            .to_ipv4_mapped()
            .unwrap_or(Ipv4Addr::from(u128::from(a) as u32)),
    }
}

fn v6_of(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The address in 128 bits, IPv4 as IPv4-mapped IPv6.
fn as_mapped(a: IpAddr) -> u128 {
    u128::from(v6_of(a))
}

/// A real certificate (CN=bench, SubjectAltName IP 127.0.0.1), made once.
fn base_cert() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let files = pki.client(
            "bench",
            &["bench"],
            Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
        );
        openssl::x509::X509::from_pem(&std::fs::read(files.cert).unwrap())
            .unwrap()
            .to_der()
            .unwrap()
    })
}

/// The decision for user "bench" from 127.0.0.1 with `der` as its verified certificate, under
/// a rule that covers it.
fn decide_with(der: Vec<u8>) -> Verdict {
    static RULES: OnceLock<pg_twofactor_core::rules::OwnedImage> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        parse_text(
            Path::new("/proptest/pg_twofactor_hba.conf"),
            b"hostssl all bench all 2f-scram-sha-256\n",
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap()
    });
    let attempt = LoginAttempt {
        database: b"postgres".to_vec(),
        user: b"bench".to_vec(),
        client_addr: Some("127.0.0.1".parse().unwrap()),
        known_host: KnownHost::default(),
        physical_replication: false,
        ssl_in_use: true,
        cert: PeerCert::Verified(VerifiedCert::new(der)),
        hba_method: BaseMethod::ScramSha256,
        hba_line: 1,
        hba_file: None,
        issuer_key: None,
    };
    decide(
        rules.view(),
        &attempt,
        MethodSet::defaults(),
        &StaticNetwork::default(),
        &NoCatalog,
    )
}

struct NoCatalog;
impl pg_twofactor_core::rules::Catalog for NoCatalog {
    fn is_member(&self, _: &[u8], _: &[u8]) -> bool {
        false
    }
    fn regex_match(
        &self,
        _: &[u8],
        _: &[u8],
    ) -> Result<bool, pg_twofactor_core::rules::RegexError> {
        Ok(false)
    }
}
