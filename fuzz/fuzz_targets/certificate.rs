//! Any bytes as the DER of a client certificate that TLS verified: reading it never panics,
//! and the decision for a covered login never accepts a certificate that cannot be read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_twofactor_core::address::{KnownHost, StaticNetwork};
use pg_twofactor_core::cert::{CertInfo, CertSummary};
use pg_twofactor_core::decision::{decide, LoginAttempt, PeerCert, Verdict};
use pg_twofactor_core::methods::{BaseMethod, MethodSet};
use pg_twofactor_core::rules::{parse_text, AnyRegex, NoCatalog, Syntax};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let readable = CertInfo::from_der(data).is_ok();
    let _ = CertSummary::from_der(data);
    let rules = parse_text(
        Path::new("/fuzz/r.conf"),
        b"hostssl all test1 all 2f-scram-sha-256\n",
        Syntax::Pg15,
        &AnyRegex,
    )
    .into_rule_set()
    .unwrap();
    for addr in ["127.0.0.1", "::1", "::ffff:10.0.0.1"] {
        let attempt = LoginAttempt {
            database: b"postgres".to_vec(),
            user: b"test1".to_vec(),
            client_addr: Some(addr.parse().unwrap()),
            known_host: KnownHost::default(),
            physical_replication: false,
            ssl_in_use: true,
            cert: PeerCert::Verified(data.to_vec()),
            hba_method: BaseMethod::ScramSha256,
            hba_line: 1,
            hba_file: None,
        };
        let v = decide(
            &rules,
            &attempt,
            MethodSet::defaults(),
            &StaticNetwork::default(),
            &NoCatalog,
        );
        if !readable {
            assert!(
                matches!(v, Verdict::Refused { .. }),
                "an unreadable certificate was not refused: {v:?}"
            );
        }
    }
});
