//! Nobody without the right certificate gets to try a password (`pg_twofactor.handshake_check`
//! and `clientcert=verify-ca`), judged by a client that reads every protocol message
//! ([`probe`]): a certificate bound to other addresses fails the TLS handshake, so the server
//! never asks for a password and never sends SCRAM's final message (which tells a right
//! password), whatever the login and whatever the password; a client without a certificate on
//! a verify-ca line is refused before the exchange. Each refusal has its positive control (the
//! right certificate gets a session) and its negative control (with the check off, the same
//! client does see SCRAM's final message).

use pg_twofactor_e2e::certs::{CertFiles, San};
use pg_twofactor_e2e::dns::NxDomainDns;
use pg_twofactor_e2e::scenario::PASSWORD;
use pg_twofactor_e2e::wire::{probe, Probe, RawLogin, RawOutcome};
use pg_twofactor_e2e::{psql_run, rust_login, Cluster, Login};
use std::net::{IpAddr, SocketAddr};

/// `pg_hba.conf`: `nocert` may log in without a certificate (no rule covers it); every other
/// login needs a CA-verified certificate before its password.
const HBA: &[&str] = &[
    "hostssl all nocert all scram-sha-256",
    "hostssl all all all scram-sha-256 clientcert=verify-ca",
];

/// `test1` is covered; `other` and `nocert` are not.
const RULES: &str = "hostssl all test1 all 2f-scram-sha-256\n";

const LOG_LINE: &str = "pg_twofactor refused the TLS handshake of client";

fn cluster(
    extra: impl FnOnce(
        pg_twofactor_e2e::cluster::ClusterBuilder,
    ) -> pg_twofactor_e2e::cluster::ClusterBuilder,
) -> Cluster {
    let builder = HBA
        .iter()
        .fold(Cluster::builder().rules(RULES), |b, l| b.hba(l))
        .setting("pg_twofactor.handshake_check = on");
    let c = extra(builder).start();
    for u in ["test1", "other", "nocert"] {
        c.create_user(u, PASSWORD);
    }
    c.psql_admin("CREATE EXTENSION pg_twofactor");
    c
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn raw(
    c: &Cluster,
    user: &str,
    password: &str,
    cert: Option<&CertFiles>,
    from: &str,
    to: &str,
) -> RawLogin {
    RawLogin {
        user: user.as_bytes().to_vec(),
        database: b"postgres".to_vec(),
        password: password.as_bytes().to_vec(),
        replication: None,
        source: Some(ip(from)),
        server: SocketAddr::new(ip(to), c.port),
        cert: cert.cloned(),
        query: true,
    }
}

#[track_caller]
fn assert_refused_in_handshake(p: &Probe, what: &str) {
    assert!(
        p.refused_in_handshake() && !p.asked_password() && !p.scram_final(),
        "{what}: expected a TLS alert before any protocol message, got {p:?}"
    );
}

#[track_caller]
fn assert_session(p: &Probe, user: &str, what: &str) {
    assert_eq!(
        p.result,
        Ok(RawOutcome::Session {
            current_user: user.as_bytes().to_vec()
        }),
        "{what}: {p:?}"
    );
    assert!(p.scram_final(), "{what}: {p:?}");
}

/// How many handshake refusals the server logged since `mark`, each with its DETAIL.
fn handshake_refusals(c: &Cluster, mark: usize, expected: usize) -> Vec<String> {
    let log = c.log_since_when(mark, |l| l.matches(LOG_LINE).count() >= expected);
    let lines: Vec<&str> = log.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(LOG_LINE))
        .map(|(i, l)| format!("{l}\n{}", lines.get(i + 1).copied().unwrap_or("")))
        .collect()
}

fn stats_refused(c: &Cluster) -> String {
    c.psql_admin(
        "SELECT coalesce(sum(refused), 0) FROM pg_twofactor_stats WHERE reason LIKE 'refused in the TLS handshake%'",
    )
}

#[test]
fn a_certificate_bound_elsewhere_never_reaches_a_password() {
    let c = cluster(|b| b.setting("pg_twofactor.log_decisions = all"));
    let away = c.client_cert("test1-away", &["test1"], Some(&[San::Ip(ip("10.9.9.9"))]));
    let others_away = c.client_cert("other-away", &["other"], Some(&[San::Ip(ip("10.9.9.9"))]));
    let home = c.client_cert("test1-home", &["test1"], Some(&[San::Ip(ip("127.0.0.1"))]));
    let unbound = c.client_cert("test1-unbound", &["test1"], None);
    let ca = c.pki.ca_cert.clone();
    assert_eq!(
        c.psql_admin("SELECT handshake_check FROM pg_twofactor_status()"),
        "on"
    );

    // Positive control: the right certificate, the right password: a session, after SCRAM.
    let p = probe(
        &raw(&c, "test1", PASSWORD, Some(&home), "127.0.0.1", "127.0.0.1"),
        &ca,
    );
    assert_session(&p, "test1", "bound to 127.0.0.1");
    assert_eq!(p.trace.auth_codes, vec![10, 11, 12, 0]);
    // ... and a wrong password with it: asked, no server-final message.
    let p = probe(
        &raw(&c, "test1", "wrong", Some(&home), "127.0.0.1", "127.0.0.1"),
        &ca,
    );
    assert!(p.asked_password() && !p.scram_final(), "{p:?}");
    assert!(
        matches!(&p.result, Ok(RawOutcome::Error { sqlstate, .. }) if sqlstate == "28P01"),
        "{p:?}"
    );

    // A certificate bound to 10.9.9.9, used from 127.0.0.1: the handshake fails, for the
    // covered login and for any other, for the right and a wrong password alike.
    let mark = c.log_mark();
    let mut attempts = 0;
    for (cert, name) in [
        (&away, "test1's certificate"),
        (&others_away, "other's certificate"),
    ] {
        for user in ["test1", "other", "nocert"] {
            for password in [PASSWORD, "wrong"] {
                let p = probe(
                    &raw(&c, user, password, Some(cert), "127.0.0.1", "127.0.0.1"),
                    &ca,
                );
                assert_refused_in_handshake(
                    &p,
                    &format!("{name} as {user} with password {password:?}"),
                );
                attempts += 1;
            }
        }
    }
    // one log line per refusal, with the client address and a DETAIL naming subject, issuer and
    // SubjectAltName; counted in the statistics' own row
    let lines = handshake_refusals(&c, mark, attempts);
    assert_eq!(lines.len(), attempts, "{lines:#?}");
    for l in &lines {
        assert!(
            l.contains("of client 127.0.0.1: client address does not match the certificate")
                && l.contains("Certificate subject \"CN=")
                && l.contains(",O=pg_twofactor tests\"; issuer")
                && l.contains("issuer \"")
                && l.contains("SubjectAltName: IP:10.9.9.9.")
                && l.contains("127.0.0.1 matches none of the certificate's SubjectAltName entries"),
            "{l}"
        );
    }
    // nothing of the login reached the hook: no decision was logged
    assert!(
        !c.log_since(mark)
            .contains(pg_twofactor_core::decision_log::PREFIX),
        "{}",
        c.log_since(mark)
    );
    assert_eq!(stats_refused(&c), attempts.to_string());

    // The dry run says the same, for any login: refused in the handshake, no rule.
    let pem = std::fs::read_to_string(&away.cert).unwrap();
    for user in ["test1", "other"] {
        assert_eq!(
            c.psql_admin(&format!(
                "SELECT coalesce(rule_line::text, '-') || '|' || verdict || '|' || reason FROM pg_twofactor_check('{user}', 'postgres', '127.0.0.1', $pem${pem}$pem$)"
            )),
            format!("-|refused|{}", pg_twofactor_core::handshake::REASON)
        );
    }

    // A certificate without SubjectAltName addresses passes the handshake: the rules decide.
    let p = probe(
        &raw(
            &c,
            "test1",
            PASSWORD,
            Some(&unbound),
            "127.0.0.1",
            "127.0.0.1",
        ),
        &ca,
    );
    assert_session(&p, "test1", "no SubjectAltName");
    // A login no rule covers, without a certificate, on a line without clientcert: unaffected.
    rust_login(&c, &Login::new("nocert", PASSWORD)).assert_accepted_as("nocert");

    // No certificate on a verify-ca line: refused before any password exchange (PostgreSQL's
    // own check), for the right and a wrong password alike.
    for password in [PASSWORD, "wrong"] {
        let p = probe(
            &raw(&c, "test1", password, None, "127.0.0.1", "127.0.0.1"),
            &ca,
        );
        assert!(!p.asked_password() && !p.scram_final(), "{p:?}");
        assert_eq!(
            p.result,
            Ok(RawOutcome::Error {
                sqlstate: "28000".into(),
                message: "connection requires a valid client certificate".into()
            })
        );
    }

    // Negative control: with the check off (a reload), the same client with the certificate
    // bound elsewhere is asked for the password and sees SCRAM's final message for the right
    // one: exactly what the check prevents.
    c.append_settings(&["pg_twofactor.handshake_check = off"]);
    c.reload();
    assert_eq!(
        c.psql_admin("SELECT handshake_check FROM pg_twofactor_status()"),
        "off"
    );
    let p = probe(
        &raw(&c, "test1", PASSWORD, Some(&away), "127.0.0.1", "127.0.0.1"),
        &ca,
    );
    assert!(
        p.asked_password() && p.scram_final(),
        "without the check: {p:?}"
    );
    assert!(matches!(&p.result, Ok(RawOutcome::Error { .. })), "{p:?}");

    // On again (another reload, so a new TLS context): refused in the handshake again.
    c.append_settings(&["pg_twofactor.handshake_check = on"]);
    c.reload();
    for password in [PASSWORD, "wrong"] {
        let p = probe(
            &raw(&c, "test1", password, Some(&away), "127.0.0.1", "127.0.0.1"),
            &ca,
        );
        assert_refused_in_handshake(&p, "after a reload");
    }
    assert_eq!(stats_refused(&c), (attempts + 2).to_string());
    // the statistics reset clears the row's count too
    c.psql_admin("SELECT pg_twofactor_stats_reset()");
    assert_eq!(stats_refused(&c), "0");
}

/// What psql prints for a certificate bound elsewhere, over TLS 1.2 and TLS 1.3, and that the
/// right certificate still logs in with psql.
#[test]
fn psql_gets_a_clean_tls_failure() {
    let c = cluster(|b| b);
    let away = c.client_cert("test1-away", &["test1"], Some(&[San::Ip(ip("10.9.9.9"))]));
    let home = c.client_cert("test1-home", &["test1"], Some(&[San::Ip(ip("127.0.0.1"))]));
    for tls in ["TLSv1.2", "TLSv1.3"] {
        let mark = c.log_mark();
        let run = psql_run(
            &c,
            &Login::new("test1", PASSWORD)
                .cert(&away)
                .param(&format!("ssl_max_protocol_version={tls}")),
        );
        assert!(!run.success, "{tls}: {run:?}");
        assert!(
            run.stderr.contains("SSL error") && run.stderr.contains("alert handshake failure"),
            "{tls}: {}",
            run.stderr
        );
        // no FATAL: the server never got as far as a login
        assert!(run.fatals().is_empty(), "{tls}: {}", run.stderr);
        assert_eq!(handshake_refusals(&c, mark, 1).len(), 1, "{tls}");
        let ok = psql_run(
            &c,
            &Login::new("test1", PASSWORD)
                .cert(&home)
                .param(&format!("ssl_max_protocol_version={tls}")),
        );
        assert!(
            ok.success && ok.stdout.starts_with("test1|"),
            "{tls}: {ok:?}"
        );
    }
}

/// The names the server knows (its own hosts file; every other name is unknown to its DNS).
const HOSTS: &[u8] = b"127.0.0.1 app1.pg2f.test localhost\n::1 localhost\n";

/// IPv6, and a DNS SubjectAltName confirmed by the forward lookup of the client's reverse name,
/// both checked in the handshake with the rules' own matching.
#[test]
fn ipv6_and_dns_names_are_checked_in_the_handshake() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    let _dns = NxDomainDns::start();
    let c = cluster(|b| b.listen("127.0.0.1,::1").name_service(HOSTS));
    let ca = c.pki.ca_cert.clone();
    let v6_home = c.client_cert("v6-home", &["test1"], Some(&[San::Ip(ip("::1"))]));
    let v6_away = c.client_cert("v6-away", &["test1"], Some(&[San::Ip(ip("fd00::1"))]));
    let named = c.client_cert(
        "named",
        &["test1"],
        Some(&[San::Dns("app1.pg2f.test".into())]),
    );
    let p = probe(
        &raw(&c, "test1", PASSWORD, Some(&v6_home), "::1", "::1"),
        &ca,
    );
    assert_session(&p, "test1", "IPv6, bound to ::1");
    for password in [PASSWORD, "wrong"] {
        let p = probe(
            &raw(&c, "test1", password, Some(&v6_away), "::1", "::1"),
            &ca,
        );
        assert_refused_in_handshake(&p, "IPv6, bound to fd00::1");
    }
    // 127.0.0.1 is app1.pg2f.test both ways; 127.0.0.3 has no name
    let p = probe(
        &raw(
            &c,
            "test1",
            PASSWORD,
            Some(&named),
            "127.0.0.1",
            "127.0.0.1",
        ),
        &ca,
    );
    assert_session(&p, "test1", "DNS name of 127.0.0.1");
    let mark = c.log_mark();
    for password in [PASSWORD, "wrong"] {
        let p = probe(
            &raw(
                &c,
                "test1",
                password,
                Some(&named),
                "127.0.0.3",
                "127.0.0.1",
            ),
            &ca,
        );
        assert_refused_in_handshake(&p, "DNS name, from 127.0.0.3");
    }
    let lines = handshake_refusals(&c, mark, 2);
    assert!(
        lines.iter().all(|l| l.contains("of client 127.0.0.3")
            && l.contains("SubjectAltName: DNS:app1.pg2f.test.")),
        "{lines:#?}"
    );
}

/// Builds `fixtures/pg2f_steal_verify.c` against the cluster's server headers and installs it
/// beside pg_twofactor (needs root, as installing an extension does).
fn install_callback_thief(c: &Cluster) {
    let pg_config = c.bin.join("pg_config");
    let dir = |flag: &str| {
        let out = std::process::Command::new(&pg_config)
            .arg(flag)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let target = std::path::Path::new(&dir("--pkglibdir")).join("pg2f_steal_verify.so");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-I"])
        .arg(dir("--includedir-server"))
        .arg("-o")
        .arg(&target)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/pg2f_steal_verify.c"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A library loaded after pg_twofactor takes OpenSSL's certificate-verify callback (OpenSSL
/// keeps one per context): with the handshake check on, a login whose certificate never went
/// through it is refused as an internal error that says why, never let through unchecked;
/// with the check off, the same login works (positive control).
#[test]
fn a_stolen_verify_callback_refuses_instead_of_passing_unchecked() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("installing a test library needs root") {
        return;
    }
    let mut c = cluster(|b| b.default_client_reason());
    install_callback_thief(&c);
    c.append_settings(&["shared_preload_libraries = 'pg_twofactor, pg2f_steal_verify'"]);
    c.restart();
    let ca = c.pki.ca_cert.clone();
    let away = c.client_cert("test1-away", &["test1"], Some(&[San::Ip(ip("10.9.9.9"))]));
    let home = c.client_cert("test1-home", &["test1"], Some(&[San::Ip(ip("127.0.0.1"))]));
    // the handshake check cannot run: the certificate bound elsewhere reaches the password
    // exchange, but no login with a certificate gets a session, covered or not
    let mark = c.log_mark();
    for (user, cert) in [("test1", &home), ("other", &away), ("other", &home)] {
        let p = probe(
            &raw(&c, user, PASSWORD, Some(cert), "127.0.0.1", "127.0.0.1"),
            &ca,
        );
        assert!(
            matches!(&p.result, Ok(RawOutcome::Error { sqlstate, .. }) if sqlstate == "28P01"),
            "{user}: expected PostgreSQL's password failure (28P01), got {p:?}"
        );
    }
    let log = c.log_since(mark);
    assert_eq!(
        log.matches("did not go through the TLS handshake check: another library may have replaced OpenSSL's certificate-verify callback").count(),
        3,
        "{log}"
    );
    assert_eq!(
        c.psql_admin("SELECT handshake_check FROM pg_twofactor_status()"),
        "on"
    );
    // positive control: with the check off, the library does no harm to the rest
    c.append_settings(&["pg_twofactor.handshake_check = off"]);
    c.reload();
    let p = probe(
        &raw(&c, "test1", PASSWORD, Some(&home), "127.0.0.1", "127.0.0.1"),
        &ca,
    );
    assert_session(&p, "test1", "check off, thief loaded");
}
