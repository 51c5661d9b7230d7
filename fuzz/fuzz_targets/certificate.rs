//! Any bytes as the DER of a client certificate that TLS verified: reading it never panics,
//! the decision for a covered login never accepts a certificate that cannot be read, and it
//! accepts every readable one whose only CN is the login and that names no address (the
//! positive control: a decision that refused everything would fail here, on the seeds and on
//! the known-good certificate checked first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_twofactor_core::address::{KnownHost, StaticNetwork};
use pg_twofactor_core::cert::{CertInfo, CertSummary};
use pg_twofactor_core::decision::{decide, LoginAttempt, PeerCert, Verdict};
use pg_twofactor_core::methods::{BaseMethod, MethodSet};
use pg_twofactor_core::rules::{parse_text, AnyRegex, NoCatalog, Syntax};
use std::path::Path;

/// The verdict for `user` logging in from `addr` with the certificate `der`, under a rule that
/// covers `user` everywhere.
fn verdict(der: &[u8], user: &[u8], addr: &str) -> Verdict {
    let rules = parse_text(
        Path::new("/fuzz/r.conf"),
        format!(
            "hostssl all {} all 2f-scram-sha-256\n",
            String::from_utf8_lossy(user)
        )
        .as_bytes(),
        Syntax::Pg15,
        &AnyRegex,
    )
    .into_rule_set()
    .unwrap()
    .image()
    .unwrap();
    let attempt = LoginAttempt {
        database: b"postgres".to_vec(),
        user: user.to_vec(),
        client_addr: Some(addr.parse().unwrap()),
        known_host: KnownHost::default(),
        physical_replication: false,
        ssl_in_use: true,
        cert: PeerCert::Verified(der.to_vec()),
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

static KNOWN_GOOD: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    KNOWN_GOOD.call_once(|| {
        // CN=alice, no SubjectAltName (core/src/testdata/README)
        let alice = include_bytes!("../../core/src/testdata/alice.der");
        let v = verdict(alice, b"alice", "127.0.0.1");
        assert!(
            matches!(v, Verdict::Accepted { .. }),
            "the known-good certificate was refused: {v:?}"
        );
    });
    let info = CertInfo::from_der(data).ok();
    let _ = CertSummary::from_der(data);
    for addr in ["127.0.0.1", "::1", "::ffff:10.0.0.1"] {
        let v = verdict(data, b"test1", addr);
        match &info {
            None => assert!(
                matches!(v, Verdict::Refused { .. }),
                "an unreadable certificate was not refused: {v:?}"
            ),
            Some(i) if i.check_cn(b"test1").is_ok() && !i.has_address_entries() => assert!(
                matches!(v, Verdict::Accepted { .. }),
                "a certificate whose only CN is the login and that names no address was refused: {v:?}"
            ),
            Some(_) => {}
        }
    }
});
