//! How a refusal happens: other authentication hooks see it as a failure (auth_delay),
//! `pg_twofactor.client_reason = off` makes it look exactly like PostgreSQL's own failure of the
//! base method, and misspelt `pg_twofactor.*` settings are reported.

use pg_twofactor_e2e::cluster::{log_line_millis, log_line_pid};
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{psql_login, rust_login, two_factor, Cluster, Login, Outcome, San};

/// The log line of `pid` that contains `what`.
fn line_of<'a>(log: &'a str, pid: &str, what: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains(&format!("[{pid}]")) && l.contains(what))
        .unwrap_or_else(|| panic!("no line of [{pid}] with {what:?} in\n{log}"))
}

/// Server-side milliseconds from our decision to the FATAL that ended the connection, for the
/// one refused login logged after `mark`.
fn decision_to_fatal_ms(c: &Cluster, mark: usize) -> i64 {
    let log = c.log_since(mark);
    let decision = log
        .lines()
        .find(|l| l.contains("pg_twofactor decision: refused"))
        .unwrap_or_else(|| panic!("no refusal in\n{log}"));
    let pid = log_line_pid(decision).expect("a [%p] field");
    let fatal = line_of(&log, pid, "FATAL:");
    let mut ms = log_line_millis(fatal).unwrap() - log_line_millis(decision).unwrap();
    if ms < 0 {
        ms += 24 * 3600 * 1000; // across midnight
    }
    ms
}

#[test]
fn auth_delay_delays_two_factor_refusals_and_not_accepted_logins() {
    // auth_delay is loaded before pg_twofactor, so it is the hook pg_twofactor chains to.
    // ten minutes: an accepted login that got this delay would hit psql's 30-second
    // connect_timeout and fail the test instead of logging in
    let c = scenario::start(scenario::with_auth_delay(scenario::builder(), 600_000));
    let cert = scenario::cert_for(&c, "test1");
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&cert)).assert_accepted_as("test1");
    psql_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    assert!(c.log().contains("pg_twofactor decision: accepted; rule "));

    // Now a delay the refusals below can wait for. auth_delay sleeps only when the status it
    // is given is a failure, so the time from our decision to the FATAL is at least the delay.
    c.append_settings(&["auth_delay.milliseconds = 1500"]);
    c.reload();
    for (login, reason) in [
        (Login::new("test1", PASSWORD), "no client certificate"),
        (
            Login::new("test1", PASSWORD).cert(&scenario::cert_for(&c, "other")),
            "certificate CN does not match the user name",
        ),
    ] {
        let mark = c.log_mark();
        rust_login(&c, &login).assert_refused(&two_factor("test1", reason));
        let ms = decision_to_fatal_ms(&c, mark);
        assert!(
            ms >= 1500,
            "auth_delay did not delay the refusal ({reason}): {ms} ms from decision to FATAL\n{}",
            c.log_since(mark)
        );
    }
}

#[test]
fn client_reason_off_by_default_looks_like_a_wrong_password() {
    let c = scenario::start(
        scenario::builder()
            .default_client_reason()
            .setting("pg_twofactor.enabled_extra_auth_methods = '2f-md5, 2f-password'")
            .setting("pg_twofactor.log_decisions = refused"),
    );
    // on, as a DBA may choose: the client is told why
    c.psql_admin("ALTER SYSTEM SET pg_twofactor.client_reason = on");
    c.reload();
    let wrong_cn = scenario::cert_for(&c, "other");
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&wrong_cn)).assert_refused(&two_factor(
        "test1",
        "certificate CN does not match the user name",
    ));
    // and the configuration check warns about it
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    assert_eq!(
        c.psql_admin("SELECT severity, problem FROM pg_twofactor_config_problems WHERE problem LIKE '%client_reason%'"),
        "warning|pg_twofactor.client_reason is on"
    );

    // off, the default
    c.psql_admin("ALTER SYSTEM RESET pg_twofactor.client_reason");
    c.reload();
    assert_eq!(c.psql_admin("SHOW pg_twofactor.client_reason"), "off");
    assert_eq!(
        c.psql_admin("SELECT count(*) FROM pg_twofactor_config_problems WHERE problem LIKE '%client_reason%'"),
        "0"
    );
    // (user, first factor) for scram-sha-256, md5 and password
    for user in ["test1", "md5user", "pwuser"] {
        let good = scenario::cert_for(&c, user);
        let far = c.client_cert(
            &format!("{user}-far"),
            &[user],
            Some(&[San::Ip("10.9.9.9".parse().unwrap())]),
        );
        let wrong_password = rust_login(&c, &Login::new(user, "wrong").cert(&good));
        match &wrong_password {
            Outcome::Refused { sqlstate, message } => {
                assert_eq!(sqlstate, "28P01");
                assert_eq!(
                    message,
                    &format!("password authentication failed for user \"{user}\"")
                );
            }
            o => panic!("{o:?}"),
        }
        let mark = c.log_mark();
        for (login, reason) in [
            (Login::new(user, PASSWORD), "no client certificate"),
            (
                Login::new(user, PASSWORD).cert(&wrong_cn),
                "certificate CN does not match the user name",
            ),
            (
                Login::new(user, PASSWORD).cert(&far),
                "client address does not match the certificate",
            ),
        ] {
            assert_eq!(
                rust_login(&c, &login),
                wrong_password,
                "{user}: {reason} must look like a wrong password"
            );
            // psql shows the same text
            assert_eq!(
                psql_login(&c, &login),
                Outcome::Refused {
                    sqlstate: String::new(),
                    message: format!("password authentication failed for user \"{user}\""),
                }
            );
            // the log still tells them apart
            let log = c.log_since(mark);
            assert!(
                log.contains(&format!(
                    "pg_twofactor refused the login ({})",
                    two_factor(user, reason)
                )),
                "{log}"
            );
        }
        // and the session still works with both factors
        rust_login(&c, &Login::new(user, PASSWORD).cert(&good)).assert_accepted_as(user);
    }
    // a pg_hba.conf method that does not match the rule: PostgreSQL's failure of that method
    let mismatch = scenario::cert_for(&c, "mismatch");
    match rust_login(&c, &Login::new("mismatch", PASSWORD).cert(&mismatch)) {
        Outcome::Refused { sqlstate, message } => {
            assert_eq!(sqlstate, "28P01");
            assert_eq!(
                message,
                "password authentication failed for user \"mismatch\""
            );
        }
        o => panic!("{o:?}"),
    }
    let log = c.log();
    assert!(
        log.contains("pg_twofactor.client_reason is off, so the client was sent PostgreSQL's own md5 failure"),
        "{log}"
    );

    // back on with a reload
    c.psql_admin("ALTER SYSTEM SET pg_twofactor.client_reason = on");
    c.reload();
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    // only superusers see or change it
    c.psql_admin("CREATE ROLE plain LOGIN");
    let out = c.psql_admin_raw("plain", "SHOW pg_twofactor.client_reason");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("to examine \"pg_twofactor.client_reason\""),
        "{err}"
    );
}

#[test]
fn misspelt_settings_are_reported_at_start_and_reload() {
    // (without the dry-run shadow, which turns the decision log on: the defaults are checked)
    let c = scenario::start(
        scenario::builder()
            .setting("pg_twofactor.hba_flie = 'x.conf'")
            .without_dry_run_shadow(),
    );
    let log = c.log();
    assert!(
        log.contains(
            "WARNING:  invalid configuration parameter name \"pg_twofactor.hba_flie\", removing it"
        ),
        "{log}"
    );
    assert!(
        log.contains("\"pg_twofactor\" is now a reserved prefix."),
        "{log}"
    );
    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    assert!(
        log.contains("invalid configuration parameter name \"pg_twofactor.hba_flie\""),
        "{log}"
    );
    assert!(
        log.contains("\"pg_twofactor\" is a reserved prefix."),
        "{log}"
    );
    // a session cannot create one either
    let out = c.psql_admin_raw("postgres", "SET pg_twofactor.log_decision = 'all'");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid configuration parameter name \"pg_twofactor.log_decision\""),
        "{err}"
    );
    // the real settings still work, and rules are enforced
    assert_eq!(c.psql_admin("SHOW pg_twofactor.log_decisions"), "off");
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
}

#[test]
fn a_refusal_overrules_postgresqls_connection_authenticated_line_in_the_log() {
    // With log_connections, PostgreSQL logs "connection authenticated" as soon as the password
    // checks out, before any ClientAuthentication_hook runs; the refusal must say that it
    // overrules that line.
    let c = scenario::start(scenario::builder().setting("log_connections = on"));
    let mark = c.log_mark();
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    let log = c.log_since(mark);
    let authenticated = log
        .lines()
        .position(|l| l.contains("connection authenticated: identity=\"test1\""))
        .unwrap_or_else(|| panic!("no connection authenticated line in\n{log}"));
    let pid = log_line_pid(log.lines().nth(authenticated).unwrap()).unwrap();
    let overruled = log
        .lines()
        .position(|l| {
            l.contains(&format!("[{pid}]"))
                && l.contains("pg_twofactor: the login of user \"test1\" that PostgreSQL logged as authenticated is refused by pg_twofactor (no client certificate)")
        })
        .unwrap_or_else(|| panic!("no overruling line of [{pid}] in\n{log}"));
    assert!(authenticated < overruled, "{log}");
    // a wrong password: PostgreSQL logs no such line, and neither does pg_twofactor
    let mark = c.log_mark();
    rust_login(&c, &Login::new("test1", "wrong"))
        .assert_refused_with("28P01", "password authentication failed for user \"test1\"");
    let log = c.log_since(mark);
    assert!(
        !log.contains("connection authenticated: identity=\"test1\""),
        "{log}"
    );
    assert!(!log.contains("logged as authenticated"), "{log}");
    // and with the certificate the session works (no overruling line)
    let mark = c.log_mark();
    rust_login(
        &c,
        &Login::new("test1", PASSWORD).cert(&scenario::cert_for(&c, "test1")),
    )
    .assert_accepted_as("test1");
    assert!(!c.log_since(mark).contains("logged as authenticated"));
}
