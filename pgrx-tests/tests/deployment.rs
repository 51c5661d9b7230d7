//! The advice of docs/security.md, one scenario per claim: `clientcert=verify-full`
//! on the matching `pg_hba.conf` line, `hostssl` lines only (libpq's `sslmode=prefer` retries
//! without TLS), `sslmode=verify-full` with `channel_binding=require`, and revoking a lost
//! certificate with a CRL and a reload.

use pg_twofactor_e2e::cluster::chown_to_cluster_user;
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::wire::{raw_login_trace, RawLogin, RawOutcome};
use pg_twofactor_e2e::{
    psql_login, psql_run, rust_login, two_factor, Cluster, Login, Outcome, San,
};

fn refused(sqlstate: &str, message: &str) -> Outcome {
    Outcome::Refused {
        sqlstate: sqlstate.into(),
        message: message.into(),
    }
}

#[test]
fn clientcert_verify_full_leaves_no_password_oracle_for_certificate_failures() {
    let c = Cluster::builder()
        .hba("hostssl all test1 all scram-sha-256 clientcert=verify-full")
        .rules("hostssl all test1 all 2f-scram-sha-256\n")
        .setting("pg_twofactor.log_decisions = all")
        .start();
    c.create_user("test1", PASSWORD);
    // No certificate: PostgreSQL refuses before it asks for a password, so the right and a
    // wrong password get the same answer (and pg_twofactor is never asked).
    let mark = c.log_mark();
    let no_cert = refused("28000", "connection requires a valid client certificate");
    assert_eq!(rust_login(&c, &Login::new("test1", PASSWORD)), no_cert);
    assert_eq!(rust_login(&c, &Login::new("test1", "wrong")), no_cert);
    let log = c.log_since(mark);
    assert!(!log.contains("password authentication failed"), "{log}");
    assert!(!log.contains("pg_twofactor decision"), "{log}");

    // A certificate of another user: PostgreSQL checks the CN after the password exchange and
    // reports it as a failed password, so the client cannot tell it from a wrong password.
    let other = scenario::cert_for(&c, "other");
    let mark = c.log_mark();
    let right_pw = rust_login(&c, &Login::new("test1", PASSWORD).cert(&other));
    assert_eq!(
        right_pw,
        refused("28P01", "password authentication failed for user \"test1\"")
    );
    assert_eq!(
        rust_login(&c, &Login::new("test1", "wrong").cert(&other)),
        right_pw
    );
    let log = c.log_since(mark);
    assert!(
        log.contains("provided user name (test1) and authenticated user name (other) do not match"),
        "{log}"
    );
    assert!(!log.contains("pg_twofactor decision"), "{log}");

    // The address binding is pg_twofactor's own check, after both of PostgreSQL's.
    let far = c.client_cert(
        "test1-far",
        &["test1"],
        Some(&[San::Ip("10.9.9.9".parse().unwrap())]),
    );
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&far)).assert_refused(&two_factor(
        "test1",
        "client address does not match the certificate",
    ));
    let good = scenario::cert_for(&c, "test1");
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");
}

#[test]
fn a_host_line_lets_libpq_retry_without_tls_and_hostssl_lines_stop_it() {
    // scenario::HBA ends with "host all all all scram-sha-256", which matches plain connections
    let c = scenario::start(scenario::builder().setting("pg_twofactor.log_decisions = all"));
    let other = scenario::cert_for(&c, "other");
    let login = Login::new("test1", PASSWORD).cert(&other).sslmode("prefer");
    let mark = c.log_mark();
    let run = psql_run(&c, &login);
    assert!(!run.success, "{run:?}");
    // libpq tried TLS, was refused, and sent the password again over a plain connection
    assert_eq!(
        run.fatals(),
        vec![
            two_factor("test1", "certificate CN does not match the user name"),
            two_factor("test1", "no client certificate"),
        ],
        "{run:?}"
    );
    let log = c.log_since(mark);
    assert!(log.contains("The connection does not use TLS."), "{log}");
    assert_eq!(
        log.matches("pg_twofactor decision: refused").count(),
        2,
        "{log}"
    );

    // With hostssl lines only, PostgreSQL refuses the plain retry before any password exchange.
    let c = Cluster::builder()
        .hba("hostssl all all all scram-sha-256")
        .rules(scenario::RULES)
        .start();
    c.create_user("test1", PASSWORD);
    let other = scenario::cert_for(&c, "other");
    let run = psql_run(
        &c,
        &Login::new("test1", PASSWORD).cert(&other).sslmode("prefer"),
    );
    assert!(!run.success, "{run:?}");
    assert_eq!(
        run.fatals(),
        vec![
            two_factor("test1", "certificate CN does not match the user name"),
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"test1\", database \"postgres\", no encryption"
                .to_string(),
        ],
        "{run:?}"
    );
    // and a client that asks for verify-full never tries without TLS
    let run = psql_run(&c, &Login::new("test1", PASSWORD).cert(&other));
    assert_eq!(
        run.fatals(),
        vec![two_factor(
            "test1",
            "certificate CN does not match the user name"
        )]
    );
}

#[test]
fn verify_full_with_channel_binding() {
    let c = scenario::start(
        scenario::builder().setting("pg_twofactor.enabled_extra_auth_methods = '2f-password'"),
    );
    let good = scenario::cert_for(&c, "test1");
    // the recommended client settings work with a two-factor login
    psql_login(
        &c,
        &Login::new("test1", PASSWORD)
            .cert(&good)
            .param("channel_binding=require"),
    )
    .assert_accepted_as("test1");
    // channel_binding=require refuses a server that asks for the password in clear text (a
    // "password" line; an "md5" line whose role has a SCRAM secret uses SCRAM and passes)
    let pw = scenario::cert_for(&c, "pwuser");
    let run = psql_run(
        &c,
        &Login::new("pwuser", PASSWORD)
            .cert(&pw)
            .param("channel_binding=require"),
    );
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("channel binding"), "{run:?}");
    // while the same login without it works
    psql_login(&c, &Login::new("pwuser", PASSWORD).cert(&pw)).assert_accepted_as("pwuser");
}

#[test]
fn a_revoked_certificate_is_refused_after_reload_and_its_replacement_works() {
    let c = scenario::start(scenario::builder());
    let here = [San::Ip("127.0.0.1".parse().unwrap())];
    let lost = c.client_cert("test1-lost", &["test1"], Some(&here));
    let replacement = c.client_cert("test1-new", &["test1"], Some(&here));
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&lost)).assert_accepted_as("test1");

    let crl = c.data.join("root.crl");
    c.pki.revocation_list(&[&lost], &crl);
    chown_to_cluster_user(&crl);
    c.psql_admin("ALTER SYSTEM SET ssl_crl_file = 'root.crl'");
    c.reload();
    let mark = c.log_mark();
    let run = psql_run(&c, &Login::new("test1", PASSWORD).cert(&lost));
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("certificate revoked"), "{run:?}");
    let log = c.log_since_when(mark, |log| log.contains("could not accept SSL connection"));
    assert!(log.contains("could not accept SSL connection"), "{log}");
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&replacement)).assert_accepted_as("test1");
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&replacement)).assert_accepted_as("test1");
}

#[test]
fn by_default_the_client_gets_postgresqls_own_error_but_scram_shows_a_right_password() {
    // With client_reason = off every field of the ErrorResponse (severity, SQLSTATE, message,
    // and the source file, line and function PostgreSQL reports) is what PostgreSQL itself
    // sends for a wrong password. But PostgreSQL sends SCRAM's server-final message (its own
    // proof) as soon as the password checks out, before any ClientAuthentication_hook runs: a
    // client that speaks the protocol itself learns that the password was right. That is
    // PostgreSQL's behaviour (its own clientcert=verify-full CN check comes after it too) and
    // is documented as a limit.
    let c = scenario::start(
        scenario::builder()
            .default_client_reason()
            .setting("pg_twofactor.enabled_extra_auth_methods = '2f-md5, 2f-password'"),
    );
    let raw = |c: &Cluster, user: &str, password: &str| RawLogin {
        user: user.as_bytes().to_vec(),
        database: b"postgres".to_vec(),
        password: password.as_bytes().to_vec(),
        replication: None,
        source: None,
        server: std::net::SocketAddr::new([127, 0, 0, 1].into(), c.port),
        cert: None,
        query: false,
    };
    // (user, authentication messages for a wrong password, for the right one)
    for (user, wrong_codes, right_codes) in [
        ("test1", vec![10, 11], vec![10, 11, 12]),
        // an md5 line with a SCRAM secret: PostgreSQL uses SCRAM
        ("md5user", vec![10, 11], vec![10, 11, 12]),
        ("pwuser", vec![3], vec![3]),
    ] {
        let (wrong, wrong_trace) =
            raw_login_trace(&raw(&c, user, "wrong"), &c.pki.ca_cert).unwrap();
        let (right, right_trace) =
            raw_login_trace(&raw(&c, user, PASSWORD), &c.pki.ca_cert).unwrap();
        let same = RawOutcome::Error {
            sqlstate: "28P01".into(),
            message: format!("password authentication failed for user \"{user}\""),
        };
        assert_eq!(wrong, same);
        assert_eq!(right, same);
        assert_eq!(
            right_trace.error_fields, wrong_trace.error_fields,
            "{user}: every field of the error must be PostgreSQL's"
        );
        assert!(
            wrong_trace.error_fields.iter().any(|(t, _)| *t == b'F'),
            "{wrong_trace:?}"
        );
        assert_eq!(wrong_trace.auth_codes, wrong_codes, "{user}");
        assert_eq!(right_trace.auth_codes, right_codes, "{user}");
    }
    // and the raw client's SCRAM is real: with the certificate it logs in
    let cert = scenario::cert_for(&c, "test1");
    let login = RawLogin {
        cert: Some(cert),
        query: true,
        ..raw(&c, "test1", PASSWORD)
    };
    let (outcome, trace) = raw_login_trace(&login, &c.pki.ca_cert).unwrap();
    assert_eq!(
        outcome,
        RawOutcome::Session {
            current_user: b"test1".to_vec()
        }
    );
    assert_eq!(trace.auth_codes, vec![10, 11, 12, 0]);

    // With clientcert=verify-ca or verify-full, a client without a certificate never gets to
    // SCRAM: the right and a wrong password get the same refusal, before any exchange.
    for clientcert in ["verify-ca", "verify-full"] {
        let c = Cluster::builder()
            .hba(&format!(
                "hostssl all test1 all scram-sha-256 clientcert={clientcert}"
            ))
            .rules("hostssl all test1 all 2f-scram-sha-256\n")
            .default_client_reason()
            .start();
        c.create_user("test1", PASSWORD);
        for password in [PASSWORD, "wrong"] {
            let (outcome, trace) =
                raw_login_trace(&raw(&c, "test1", password), &c.pki.ca_cert).unwrap();
            assert_eq!(
                outcome,
                RawOutcome::Error {
                    sqlstate: "28000".into(),
                    message: "connection requires a valid client certificate".into(),
                },
                "{clientcert}"
            );
            assert!(trace.auth_codes.is_empty(), "{clientcert}: {trace:?}");
        }
        // and with the certificate the session works
        let cert = scenario::cert_for(&c, "test1");
        let login = RawLogin {
            cert: Some(cert),
            query: true,
            ..raw(&c, "test1", PASSWORD)
        };
        assert_eq!(
            raw_login_trace(&login, &c.pki.ca_cert).unwrap().0,
            RawOutcome::Session {
                current_user: b"test1".to_vec()
            },
            "{clientcert}"
        );
    }
}
