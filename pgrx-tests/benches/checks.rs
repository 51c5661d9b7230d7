//! Per-check cost of pg_twofactor's pure logic (criterion): rule lookup at 10, 1,000 and 10,000
//! rules, certificate parsing, the SubjectAltName/address check, the TLS handshake check, the
//! whole decision, the
//! statistics and certificate records, and loading a 10,000-rule file. Run: `cargo bench -p pg_twofactor-e2e --bench checks`.
//! DNS is kept out: the network is a static table.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use pg_twofactor_core::address::{ClientName, KnownHost, StaticNetwork};
use pg_twofactor_core::cert::{CertInfo, CertKey, CertSummary};
use pg_twofactor_core::decision::{decide, LoginAttempt, PeerCert, Reason, VerifiedCert};
use pg_twofactor_core::methods::{BaseMethod, MethodSet};
use pg_twofactor_core::rules::{
    parse_text, AnyRegex, Connection, Found, NoCatalog, OwnedImage, Syntax,
};
use pg_twofactor_core::stats::{CertTable, Counted, Outcome, SeenCert, StatsTable};
use pg_twofactor_e2e::scenario::synthetic_rules;
use pg_twofactor_e2e::{Pki, San};
use std::path::Path;

/// The image of `n` synthetic rules, as the rules in force are read.
fn rule_set(n: usize) -> OwnedImage {
    parse_text(
        Path::new("/bench/pg_twofactor_hba.conf"),
        synthetic_rules(n, "bench").as_bytes(),
        Syntax::Pg15,
        &AnyRegex,
    )
    .into_rule_set()
    .unwrap()
    .image()
    .unwrap()
}

fn cert_der(san: &[San]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let files = pki.client("bench", &["bench"], Some(san));
    let pem = std::fs::read(files.cert).unwrap();
    openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap()
}

/// One rule lookup for user "bench" connecting from 127.0.0.1 to database "postgres".
fn lookup(set: &OwnedImage, net: &StaticNetwork) -> Option<usize> {
    let client = ClientName::new(net, "127.0.0.1".parse().unwrap());
    let conn = Connection {
        database: b"postgres",
        user: b"bench",
        physical_replication: false,
        client: &client,
    };
    match set.view().find(&conn, &NoCatalog) {
        Found::Rule(r) => Some(r.line),
        _ => None,
    }
}

fn bench(c: &mut Criterion) {
    let net = StaticNetwork::default();
    let client_ip = "127.0.0.1".parse().unwrap();

    let mut g = c.benchmark_group("rule_lookup_last_of");
    for n in [10, 1_000, 10_000] {
        let set = rule_set(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| black_box(lookup(set, &net)))
        });
    }
    g.finish();

    // worst case for the user index: every rule is for user "all", so all are examined
    let mut g = c.benchmark_group("rule_lookup_last_of_all_user_rules");
    for n in [1_000, 10_000] {
        let mut text: String = (0..n - 1)
            .map(|i| {
                format!(
                    "hostssl db{i} all 10.{}.{}.0/24 2f-scram-sha-256\n",
                    i / 256 % 256,
                    i % 256
                )
            })
            .collect();
        text.push_str("hostssl all all 127.0.0.1/32 2f-scram-sha-256\n");
        let set = parse_text(
            Path::new("/bench/r.conf"),
            text.as_bytes(),
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap();
        assert_eq!(set.view().len(), n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| black_box(lookup(set, &net)))
        });
    }
    g.finish();

    let der = cert_der(&[
        San::Ip("10.1.1.1".parse().unwrap()),
        San::Ip("127.0.0.1".parse().unwrap()),
    ]);
    c.bench_function("certificate_parse", |b| {
        b.iter(|| black_box(CertInfo::from_der(&der).unwrap()))
    });

    let info = CertInfo::from_der(&der).unwrap();
    c.bench_function("cn_and_address_check", |b| {
        b.iter(|| {
            let client = ClientName::new(&net, client_ip);
            black_box(info.check_cn(b"bench").is_ok() && info.check_address(&client).is_ok())
        })
    });
    let subnet_der = cert_der(&[San::Subnet(
        "127.0.0.0".parse().unwrap(),
        "255.0.0.0".parse().unwrap(),
    )]);
    let subnet = CertInfo::from_der(&subnet_der).unwrap();
    c.bench_function("address_check_subnet", |b| {
        b.iter(|| {
            let client = ClientName::new(&net, client_ip);
            black_box(subnet.check_address(&client).is_ok())
        })
    });

    // the TLS handshake check (pg_twofactor.handshake_check): the SubjectAltName alone, read
    // and matched, for a certificate bound to the client and for one bound elsewhere (a
    // refusal also reads the names for the log line)
    let elsewhere = cert_der(&[San::Ip("10.9.9.9".parse().unwrap())]);
    let mut g = c.benchmark_group("handshake_check");
    for (name, der) in [("matched", &der), ("refused", &elsewhere)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let client = ClientName::new(&net, client_ip);
                black_box(pg_twofactor_core::handshake::check(der, Some(&client)))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("whole_decision_rules");
    for n in [10, 1_000, 10_000] {
        let set = rule_set(n);
        let attempt = LoginAttempt {
            database: b"postgres".to_vec(),
            user: b"bench".to_vec(),
            client_addr: Some(client_ip),
            known_host: KnownHost::default(),
            physical_replication: false,
            ssl_in_use: true,
            cert: PeerCert::Verified(VerifiedCert::new(der.clone())),
            hba_method: BaseMethod::ScramSha256,
            hba_line: 1,
            hba_file: None,
            issuer_key: None,
        };
        // a fresh attempt each time: a login reads its certificate once, and a reused attempt
        // would keep the first iteration's reading
        g.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter_batched(
                || attempt.clone(),
                |attempt| {
                    black_box(decide(
                        set.view(),
                        &attempt,
                        MethodSet::defaults(),
                        &net,
                        &NoCatalog,
                    ))
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    // what the hook adds to each login for the statistics and the certificates view (issue
    // 11): one statistics record (rule row and reason row) and one certificate summary and
    // record; in the server they run under an LWLock in shared memory
    let mut stats = Box::<StatsTable>::default();
    for i in 0..1_000u32 {
        stats.record(
            &Counted {
                rule: Some(("/bench/pg_twofactor_hba.conf", i, 7)),
                outcome: Outcome::Accepted,
                reason: None,
            },
            1,
        );
    }
    c.bench_function("statistics_record_refusal", |b| {
        b.iter(|| {
            stats.record(
                black_box(&Counted {
                    rule: Some(("/bench/pg_twofactor_hba.conf", 500, 7)),
                    outcome: Outcome::Refused,
                    reason: Some(Reason::NoCertificate),
                }),
                2,
            )
        })
    });
    c.bench_function("certificate_summary", |b| {
        b.iter(|| black_box(CertSummary::from_der(&der).unwrap()))
    });
    // what a login reads of a certificate already seen (its summary is printed only for a
    // new one, or for an expiry warning)
    c.bench_function("certificate_key", |b| {
        b.iter(|| black_box(CertKey::from_der(&der).unwrap()))
    });
    let mut certs = Box::<CertTable>::default();
    let summary = CertSummary::from_der(&der).unwrap();
    c.bench_function("certificates_record", |b| {
        b.iter(|| {
            certs.record(
                black_box(&SeenCert {
                    id: summary.id,
                    summary: Some(&summary),
                    not_after: 0,
                    user: "bench",
                    address: "127.0.0.1",
                    accepted: true,
                }),
                3,
            )
        })
    });

    let text = synthetic_rules(10_000, "bench");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg_twofactor_hba.conf");
    std::fs::write(&path, &text).unwrap();
    let mut g = c.benchmark_group("load_file");
    g.sample_size(20);
    g.bench_function("10000_rules", |b| {
        b.iter(|| {
            black_box(
                pg_twofactor_core::rules::parse_file(&path, Syntax::Pg15, &AnyRegex)
                    .into_rule_set()
                    .unwrap()
                    .rules
                    .len(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
