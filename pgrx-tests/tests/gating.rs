//! Which logins a rule applies to and which methods are allowed: the extra-method gate and its
//! GUC, the base-method check, and connections no rule covers.

use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{psql_login, rust_login, two_factor, Login, Outcome};

#[test]
fn weak_methods_are_off_until_enabled_by_reload() {
    let c = scenario::start(scenario::builder());
    let md5 = scenario::cert_for(&c, "md5user");
    let pw = scenario::cert_for(&c, "pwuser");
    // off by default
    rust_login(&c, &Login::new("md5user", PASSWORD).cert(&md5))
        .assert_refused(&two_factor("md5user", "method not enabled"));
    psql_login(&c, &Login::new("pwuser", PASSWORD).cert(&pw))
        .assert_refused(&two_factor("pwuser", "method not enabled"));
    // the certificate is checked before the gate
    rust_login(&c, &Login::new("md5user", PASSWORD))
        .assert_refused(&two_factor("md5user", "no client certificate"));
    assert!(c
        .log()
        .contains("2f-md5 is not listed in pg_twofactor.enabled_extra_auth_methods"));

    c.psql_admin("ALTER SYSTEM SET pg_twofactor.enabled_extra_auth_methods = ' 2f-md5 '");
    c.reload();
    rust_login(&c, &Login::new("md5user", PASSWORD).cert(&md5)).assert_accepted_as("md5user");
    psql_login(&c, &Login::new("pwuser", PASSWORD).cert(&pw))
        .assert_refused(&two_factor("pwuser", "method not enabled"));

    c.psql_admin("ALTER SYSTEM SET pg_twofactor.enabled_extra_auth_methods = '2f-md5,2f-password'");
    c.reload();
    psql_login(&c, &Login::new("pwuser", PASSWORD).cert(&pw)).assert_accepted_as("pwuser");
    assert_eq!(
        c.psql_admin("SHOW pg_twofactor.enabled_extra_auth_methods"),
        "2f-md5,2f-password"
    );

    // and off again
    c.psql_admin("ALTER SYSTEM RESET pg_twofactor.enabled_extra_auth_methods");
    c.reload();
    rust_login(&c, &Login::new("md5user", PASSWORD).cert(&md5))
        .assert_refused(&two_factor("md5user", "method not enabled"));
}

#[test]
fn invalid_method_lists_are_rejected_by_name() {
    let c = scenario::start(
        scenario::builder().setting("pg_twofactor.enabled_extra_auth_methods = '2f-md5'"),
    );
    let out = c.psql_admin_raw(
        "postgres",
        "ALTER SYSTEM SET pg_twofactor.enabled_extra_auth_methods = '2f-md5, 2f-bogus'",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value for parameter \"pg_twofactor.enabled_extra_auth_methods\": \"2f-md5, 2f-bogus\""), "{err}");
    assert!(
        err.contains("Unknown two-factor method \"2f-bogus\""),
        "{err}"
    );
    let out = c.psql_admin_raw(
        "postgres",
        "ALTER SYSTEM SET pg_twofactor.enabled_extra_auth_methods = 'md5'",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown two-factor method \"md5\""));
    // a bad value in postgresql.conf is logged on reload and the previous value stays
    c.append_settings(&["pg_twofactor.enabled_extra_auth_methods = '2f-md5, scram'"]);
    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    assert!(log.contains("Unknown two-factor method \"scram\""), "{log}");
    assert_eq!(
        c.psql_admin("SHOW pg_twofactor.enabled_extra_auth_methods"),
        "2f-md5"
    );
    let md5 = scenario::cert_for(&c, "md5user");
    rust_login(&c, &Login::new("md5user", PASSWORD).cert(&md5)).assert_accepted_as("md5user");
    // the setting cannot be changed per session
    let out = c.psql_admin_raw(
        "postgres",
        "SET pg_twofactor.enabled_extra_auth_methods = '2f-password'",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be changed now"));
}

#[test]
fn first_factor_must_be_the_rules_base_method() {
    let c = scenario::start(scenario::builder());
    let cert = scenario::cert_for(&c, "mismatch");
    // pg_hba.conf lets "mismatch" in with md5, but its rule is 2f-scram-sha-256
    rust_login(&c, &Login::new("mismatch", PASSWORD).cert(&cert)).assert_refused(&two_factor(
        "mismatch",
        "pg_hba.conf method does not match the rule",
    ));
    psql_login(&c, &Login::new("mismatch", PASSWORD).cert(&cert)).assert_refused(&two_factor(
        "mismatch",
        "pg_hba.conf method does not match the rule",
    ));
    assert!(c.log().contains("2f-scram-sha-256 requires pg_hba.conf method scram-sha-256, but the connection matched a md5 line"));
}

#[test]
fn trust_in_pg_hba_does_not_satisfy_a_rule() {
    let c = pg_twofactor_e2e::Cluster::builder()
        .hba("hostssl all all all trust")
        .rules("hostssl all test1 all 2f-scram-sha-256\n")
        .start();
    c.create_user("test1", PASSWORD);
    let cert = scenario::cert_for(&c, "test1");
    rust_login(&c, &Login::new("test1", "anything").cert(&cert)).assert_refused(&two_factor(
        "test1",
        "pg_hba.conf method does not match the rule",
    ));
}

#[test]
fn connections_no_rule_covers_are_left_alone() {
    let c = scenario::start(scenario::builder());
    // "other" has no rule: password alone, with or without TLS, with or without a certificate
    psql_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    psql_login(&c, &Login::new("other", PASSWORD).without_tls()).assert_accepted_as("other");
    rust_login(&c, &Login::new("other", PASSWORD).from("127.0.0.7")).assert_accepted_as("other");
    let foreign = scenario::cert_for(&c, "test1");
    rust_login(
        &c,
        &Login::new("other", PASSWORD)
            .cert(&foreign)
            .from("127.0.0.8"),
    )
    .assert_accepted_as("other");
    // PostgreSQL's own refusals are unchanged
    match psql_login(&c, &Login::new("other", "wrong")) {
        Outcome::Refused { message, .. } => {
            assert_eq!(message, "password authentication failed for user \"other\"")
        }
        o => panic!("{o:?}"),
    }
    // a covered user cannot sidestep the rule by not using TLS
    psql_login(&c, &Login::new("test1", PASSWORD).without_tls())
        .assert_refused(&two_factor("test1", "no client certificate"));
    assert!(c.log().contains("The connection does not use TLS."));
    // Unix-socket connections are not covered (they carry no address)
    assert_eq!(
        String::from_utf8_lossy(&c.psql_admin_raw("test1", "SELECT current_user").stdout).trim(),
        "test1"
    );
}

#[test]
fn rule_columns_follow_pg_hba_matching() {
    let rules = "\
hostssl sales    +auditors  all            2f-scram-sha-256
hostssl sameuser all        127.0.0.2/32   2f-scram-sha-256
hostssl \"all\"  all        all            2f-scram-sha-256
hostssl all      test1      127.0.0.0 255.255.255.0  2f-scram-sha-256
";
    let c = scenario::start(scenario::builder().rules(rules));
    for sql in [
        "CREATE ROLE auditors",
        "GRANT auditors TO other",
        "CREATE DATABASE sales",
        "CREATE DATABASE other",
        "CREATE DATABASE \"all\"",
    ] {
        c.psql_admin(sql);
    }
    let none = |u: &str| Login::new(u, PASSWORD);
    // +auditors on database sales covers "other" (a member), not "md5user"
    rust_login(&c, &none("other").db("sales"))
        .assert_refused(&two_factor("other", "no client certificate"));
    rust_login(&c, &none("other").db("postgres")).assert_accepted_as("other");
    // sameuser from 127.0.0.2: database "other" for user "other"
    rust_login(&c, &none("other").db("other").from("127.0.0.2"))
        .assert_refused(&two_factor("other", "no client certificate"));
    rust_login(&c, &none("other").db("other").from("127.0.0.3")).assert_accepted_as("other");
    // a quoted "all" is the database named all
    rust_login(&c, &none("other").db("all"))
        .assert_refused(&two_factor("other", "no client certificate"));
    // address plus netmask
    rust_login(&c, &none("test1").from("127.0.0.9"))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &none("test1").to("::1").from("::1")).assert_accepted_as("test1");
}

#[test]
fn the_methods_list_takes_postgresql_list_syntax() {
    let c = scenario::start(scenario::builder());
    // GUC_LIST_INPUT: several values, as for search_path
    c.psql_admin(
        "ALTER SYSTEM SET pg_twofactor.enabled_extra_auth_methods = '2f-md5', '2f-password'",
    );
    c.reload();
    assert_eq!(
        c.psql_admin("SHOW pg_twofactor.enabled_extra_auth_methods"),
        "2f-md5, 2f-password"
    );
    let md5 = scenario::cert_for(&c, "md5user");
    let pw = scenario::cert_for(&c, "pwuser");
    rust_login(&c, &Login::new("md5user", PASSWORD).cert(&md5)).assert_accepted_as("md5user");
    psql_login(&c, &Login::new("pwuser", PASSWORD).cert(&pw)).assert_accepted_as("pwuser");
    let out = c.psql_admin_raw(
        "postgres",
        "ALTER SYSTEM SET pg_twofactor.enabled_extra_auth_methods = '2f-md5', 'md5'",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unknown two-factor method \"md5\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
