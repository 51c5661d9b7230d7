//! Each two-factor method accepts a good password with a good certificate and refuses every
//! other combination with the right reason, through psql and through the Rust client.

use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{psql_login, rust_login, two_factor, Cluster, Login, Outcome, San};

fn cluster() -> Cluster {
    scenario::start(
        scenario::builder()
            .setting("pg_twofactor.enabled_extra_auth_methods = '2f-md5, 2f-password'"),
    )
}

fn method_scenarios(user: &str) {
    let c = cluster();
    let good = scenario::cert_for(&c, user);
    let wrong_cn = c.client_cert(
        &format!("{user}-wrongcn"),
        &["someone-else"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    let wrong_ip = c.client_cert(
        &format!("{user}-wrongip"),
        &[user],
        Some(&[San::Ip("10.9.9.9".parse().unwrap())]),
    );

    for login in [psql_login, rust_login] {
        // good password and good certificate: a working session
        let ok = login(&c, &Login::new(user, PASSWORD).cert(&good));
        ok.assert_accepted_as(user);
        // good password, no certificate
        login(&c, &Login::new(user, PASSWORD))
            .assert_refused(&two_factor(user, "no client certificate"));
        // good password, certificate for someone else
        login(&c, &Login::new(user, PASSWORD).cert(&wrong_cn)).assert_refused(&two_factor(
            user,
            "certificate CN does not match the user name",
        ));
        // good password, certificate bound to another address
        login(&c, &Login::new(user, PASSWORD).cert(&wrong_ip)).assert_refused(&two_factor(
            user,
            "client address does not match the certificate",
        ));
        // wrong password, good certificate: PostgreSQL's own refusal stands, the hook adds nothing
        match login(&c, &Login::new(user, "wrong").cert(&good)) {
            Outcome::Refused { message, sqlstate } => {
                assert_eq!(
                    message,
                    format!("password authentication failed for user \"{user}\"")
                );
                assert!(sqlstate.is_empty() || sqlstate == "28P01", "{sqlstate}");
            }
            other => panic!("wrong password must be refused, got {other:?}"),
        }
    }
    // the log explains each two-factor refusal
    let log = c.log();
    let rules = c.data.join("pg_twofactor_hba.conf");
    assert!(
        log.contains(&format!("DETAIL:  Rule {}:", rules.display())),
        "{log}"
    );
    assert!(log.contains("The client sent no certificate."), "{log}");
    assert!(
        log.contains(&format!(
            "Certificate CN \"someone-else\" is not the login \"{user}\"."
        )),
        "{log}"
    );
    assert!(log.contains("SubjectAltName: IP:10.9.9.9. Client address 127.0.0.1 matches none of the certificate's SubjectAltName entries"), "{log}");
    assert!(!log.contains(
        &two_factor(user, "no client certificate")
            .replace("no client certificate", "internal error")
    ));
}

#[test]
fn scram_sha_256() {
    method_scenarios("test1");
}

#[test]
fn md5() {
    method_scenarios("md5user");
}

#[test]
fn password() {
    method_scenarios("pwuser");
}

#[test]
fn refusal_is_sqlstate_28000_with_log_detail() {
    let c = cluster();
    let wrong_cn = c.client_cert("wrongcn", &["nobody"], None);
    let mark = c.log_mark();
    match rust_login(&c, &Login::new("test1", PASSWORD).cert(&wrong_cn)) {
        Outcome::Refused { sqlstate, message } => {
            assert_eq!(sqlstate, "28000");
            assert_eq!(
                message,
                two_factor("test1", "certificate CN does not match the user name")
            );
        }
        other => panic!("{other:?}"),
    }
    let log = c.log_since(mark);
    let rules = c.data.join("pg_twofactor_hba.conf");
    let want = format!(
        "DETAIL:  Rule {}:6 (2f-scram-sha-256); pg_hba.conf {} (scram-sha-256); client address 127.0.0.1; certificate subject \"CN=nobody,O=pg_twofactor tests\"; SubjectAltName: none. Certificate CN \"nobody\" is not the login \"test1\".",
        rules.display(),
        c.hba_position(5)
    );
    assert!(log.contains(&want), "wanted {want}\nin\n{log}");
}
