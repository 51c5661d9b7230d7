//! 2f-ldap: PostgreSQL's own `ldap` method checks the directory password against a real slapd
//! (simple bind, search+bind, StartTLS and LDAPS); pg_twofactor adds the certificate checks.

use pg_twofactor_e2e::ldap::{self, Slapd};
use pg_twofactor_e2e::{psql_login, rust_login, scenario, two_factor, Cluster, Login, San};

/// What the roles' PostgreSQL passwords are; never the directory passwords.
const PG_PASSWORD: &str = "not-the-directory-password";

fn dir_pw(uid: &str) -> String {
    format!("{uid}-directory-pw")
}

fn ldap_refused(user: &str) -> String {
    format!("LDAP authentication failed for user \"{user}\"")
}

struct Env {
    cluster: Cluster,
    slapd: Slapd,
}

/// slapd with alice, bob, carol, dave; a cluster whose pg_hba.conf sends each to the directory
/// in a different way, and a 2f-ldap rule for all of them.
fn setup() -> Env {
    // The cluster's PKI must exist before slapd (which uses it), so create, then start.
    let hba_placeholder = "# ldap lines are added once slapd's ports are known";
    let mut cluster = Cluster::builder()
        .hba(hba_placeholder)
        .rules("hostssl all alice,ALICE,bob,carol,dave,eve,gina all 2f-ldap\n")
        .create();
    let slapd = Slapd::start(&cluster.pki);
    for uid in ["alice", "bob", "carol", "dave", "gina"] {
        slapd.add_user(uid, &dir_pw(uid));
    }
    let p = slapd.port;
    let s = slapd.ldaps_port;
    let people = ldap::PEOPLE_DN;
    let search = format!(
        "ldapbasedn=\"{people}\" ldapbinddn=\"{}\" ldapbindpasswd=\"{}\"",
        ldap::ADMIN_DN,
        ldap::ADMIN_PASSWORD
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hba = format!(
        "local all all trust\n\
         hostssl all alice,ALICE all ldap ldapserver=127.0.0.1 ldapport={p} ldapprefix=\"uid=\" ldapsuffix=\",{people}\"\n\
         hostssl all bob all ldap ldapserver=127.0.0.1 ldapport={p} {search} ldapsearchattribute=uid\n\
         hostssl all carol all ldap ldapserver=127.0.0.1 ldapport={p} ldaptls=1 {search} ldapsearchfilter=\"(uid=$username)\"\n\
         hostssl all dave all ldap ldapscheme=ldaps ldapserver=127.0.0.1 ldapport={s} ldapprefix=\"uid=\" ldapsuffix=\",{people}\"\n\
         hostssl all gina all ldap ldapserver=127.0.0.1 ldapport={closed} ldapprefix=\"uid=\" ldapsuffix=\",{people}\"\n\
         hostssl all all all scram-sha-256\n"
    );
    std::fs::write(cluster.data.join("pg_hba.conf"), hba).unwrap();
    let out = cluster.try_start();
    assert!(out.status.success(), "{}", cluster.log());
    for role in ["alice", "ALICE", "bob", "carol", "dave", "eve", "gina"] {
        cluster.create_user(role, PG_PASSWORD);
    }
    Env { cluster, slapd }
}

#[test]
fn directory_password_and_certificate_both_needed() {
    let Env {
        cluster: c,
        slapd: _slapd,
    } = setup();
    // simple bind (ldapprefix/ldapsuffix)
    let alice = scenario::cert_for(&c, "alice");
    psql_login(&c, &Login::new("alice", &dir_pw("alice")).cert(&alice)).assert_accepted_as("alice");
    rust_login(&c, &Login::new("alice", &dir_pw("alice")).cert(&alice)).assert_accepted_as("alice");
    // search+bind with ldapsearchattribute
    let bob = scenario::cert_for(&c, "bob");
    rust_login(&c, &Login::new("bob", &dir_pw("bob")).cert(&bob)).assert_accepted_as("bob");
    // search+bind with ldapsearchfilter over StartTLS
    let carol = scenario::cert_for(&c, "carol");
    psql_login(&c, &Login::new("carol", &dir_pw("carol")).cert(&carol)).assert_accepted_as("carol");
    // simple bind over LDAPS
    let dave = scenario::cert_for(&c, "dave");
    rust_login(&c, &Login::new("dave", &dir_pw("dave")).cert(&dave)).assert_accepted_as("dave");

    // wrong directory password (the PostgreSQL password is not the directory's): PostgreSQL refuses
    for (user, cert) in [
        ("alice", &alice),
        ("bob", &bob),
        ("carol", &carol),
        ("dave", &dave),
    ] {
        rust_login(&c, &Login::new(user, PG_PASSWORD).cert(cert))
            .assert_refused(&ldap_refused(user));
        rust_login(&c, &Login::new(user, "wrong").cert(cert)).assert_refused(&ldap_refused(user));
    }
    let log = c.log();
    assert!(log.contains("LDAP login failed for user \"uid=alice,ou=people,dc=example,dc=net\" on server \"127.0.0.1\": Invalid credentials"), "{log}");
    assert!(!log.contains("two-factor authentication failed"), "{log}");
}

#[test]
fn certificate_reasons_with_a_good_directory_password() {
    let Env {
        cluster: c,
        slapd: _slapd,
    } = setup();
    let pw = dir_pw("alice");
    let bobs = scenario::cert_for(&c, "bob");
    let elsewhere = c.client_cert(
        "alice-elsewhere",
        &["alice"],
        Some(&[San::Ip("10.1.1.1".parse().unwrap())]),
    );
    psql_login(&c, &Login::new("alice", &pw))
        .assert_refused(&two_factor("alice", "no client certificate"));
    rust_login(&c, &Login::new("alice", &pw).cert(&bobs)).assert_refused(&two_factor(
        "alice",
        "certificate CN does not match the user name",
    ));
    rust_login(&c, &Login::new("alice", &pw).cert(&elsewhere)).assert_refused(&two_factor(
        "alice",
        "client address does not match the certificate",
    ));
    let alice = scenario::cert_for(&c, "alice");
    rust_login(&c, &Login::new("alice", &pw).cert(&alice).from("127.0.0.2")).assert_refused(
        &two_factor("alice", "client address does not match the certificate"),
    );
    assert!(c
        .log()
        .contains(&format!("pg_hba.conf {} (ldap)", c.hba_position(2))));
}

#[test]
fn login_differing_in_case_from_the_cn_is_refused() {
    let Env {
        cluster: c,
        slapd: _slapd,
    } = setup();
    // The directory compares DNs case-insensitively, so ALICE binds as alice with alice's
    // password; the certificate's CN "alice" is still not the login "ALICE".
    let alice = scenario::cert_for(&c, "alice");
    rust_login(&c, &Login::new("ALICE", &dir_pw("alice")).cert(&alice)).assert_refused(
        &two_factor("ALICE", "certificate CN does not match the user name"),
    );
    assert!(c
        .log()
        .contains("Certificate CN \"alice\" is not the login \"ALICE\""));
    let upper = c.client_cert(
        "ALICE",
        &["ALICE"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    rust_login(&c, &Login::new("ALICE", &dir_pw("alice")).cert(&upper)).assert_accepted_as("ALICE");
    rust_login(&c, &Login::new("alice", &dir_pw("alice")).cert(&upper)).assert_refused(
        &two_factor("alice", "certificate CN does not match the user name"),
    );
}

#[test]
fn a_2f_ldap_rule_needs_an_ldap_line() {
    let Env {
        cluster: c,
        slapd: _slapd,
    } = setup();
    // eve's pg_hba.conf line is scram-sha-256: her PostgreSQL password works, the rule does not
    let eve = scenario::cert_for(&c, "eve");
    rust_login(&c, &Login::new("eve", PG_PASSWORD).cert(&eve)).assert_refused(&two_factor(
        "eve",
        "pg_hba.conf method does not match the rule",
    ));
    assert!(c.log().contains(
        "2f-ldap requires pg_hba.conf method ldap, but the connection matched a scram-sha-256 line"
    ));
}

#[test]
fn directory_down_or_unreachable_is_refused() {
    let Env {
        cluster: c,
        mut slapd,
    } = setup();
    // gina's pg_hba.conf line points at a port nobody listens on
    let gina = scenario::cert_for(&c, "gina");
    rust_login(&c, &Login::new("gina", &dir_pw("gina")).cert(&gina))
        .assert_refused(&ldap_refused("gina"));
    // the directory goes away
    let alice = scenario::cert_for(&c, "alice");
    rust_login(&c, &Login::new("alice", &dir_pw("alice")).cert(&alice)).assert_accepted_as("alice");
    slapd.stop();
    let mark = c.log_mark();
    rust_login(&c, &Login::new("alice", &dir_pw("alice")).cert(&alice))
        .assert_refused(&ldap_refused("alice"));
    let bob = scenario::cert_for(&c, "bob");
    psql_login(&c, &Login::new("bob", &dir_pw("bob")).cert(&bob))
        .assert_refused(&ldap_refused("bob"));
    let log = c.log_since(mark);
    assert!(log.contains("Can't contact LDAP server"), "{log}");
    assert!(c.log().contains("Can't contact LDAP server"));
    assert!(!c.log().contains("two-factor authentication failed"));
}

#[test]
fn client_reason_off_makes_certificate_refusals_look_like_a_wrong_directory_password() {
    let Env {
        cluster: c,
        slapd: _slapd,
    } = setup();
    c.append_settings(&["pg_twofactor.client_reason = off"]);
    c.reload();
    let pw = dir_pw("alice");
    let alice = scenario::cert_for(&c, "alice");
    let bobs = scenario::cert_for(&c, "bob");
    let wrong_password = rust_login(&c, &Login::new("alice", "wrong").cert(&alice));
    wrong_password.assert_refused(&ldap_refused("alice"));
    let mark = c.log_mark();
    assert_eq!(rust_login(&c, &Login::new("alice", &pw)), wrong_password);
    assert_eq!(
        rust_login(&c, &Login::new("alice", &pw).cert(&bobs)),
        wrong_password
    );
    assert_eq!(
        rust_login(&c, &Login::new("alice", &pw).cert(&alice).from("127.0.0.2")),
        wrong_password
    );
    let log = c.log_since(mark);
    for reason in [
        "no client certificate",
        "certificate CN does not match the user name",
        "client address does not match the certificate",
    ] {
        assert!(
            log.contains(&format!(
                "pg_twofactor refused the login ({})",
                two_factor("alice", reason)
            )),
            "{log}"
        );
    }
    rust_login(&c, &Login::new("alice", &pw).cert(&alice)).assert_accepted_as("alice");
}
