//! 2f-radius: PostgreSQL's own `radius` method checks password + one-time code against a real
//! FreeRADIUS (password followed by the current TOTP code); pg_twofactor adds the certificate.

use pg_twofactor_e2e::radius::{self, FreeRadius, RadiusUser, SHARED_SECRET};
use pg_twofactor_e2e::{psql_login, rust_login, scenario, two_factor, Cluster, Login, San};

const PG_PASSWORD: &str = "not-the-radius-password";

fn radius_refused(user: &str) -> String {
    format!("RADIUS authentication failed for user \"{user}\"")
}

struct Env {
    cluster: Cluster,
    _radius: FreeRadius,
    alice: RadiusUser,
    wrongsecret: RadiusUser,
    down: RadiusUser,
}

/// FreeRADIUS with alice, wrongsecret and down; a cluster sending them to it (wrongsecret with
/// the wrong shared secret, down to a port nobody listens on) and a 2f-radius rule for each.
fn setup(enable_radius: bool) -> Env {
    let alice = RadiusUser::new("alice");
    let wrongsecret = RadiusUser::new("wrongsecret");
    let down = RadiusUser::new("down");
    let radius = FreeRadius::start(&[&alice, &wrongsecret, &down]);
    let p = radius.port;
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b = Cluster::builder()
        .hba(&format!("hostssl all alice all radius radiusservers=127.0.0.1 radiusports={p} radiussecrets={SHARED_SECRET}"))
        .hba(&format!("hostssl all wrongsecret all radius radiusservers=127.0.0.1 radiusports={p} radiussecrets=not-the-shared-secret"))
        .hba(&format!("hostssl all down all radius radiusservers=127.0.0.1 radiusports={closed} radiussecrets={SHARED_SECRET}"))
        .hba("hostssl all all all scram-sha-256")
        .rules("hostssl all alice,wrongsecret,down,carol all 2f-radius\n");
    if enable_radius {
        b = b.setting("pg_twofactor.enabled_extra_auth_methods = '2f-radius'");
    }
    let cluster = b.start();
    for role in ["alice", "wrongsecret", "down", "carol"] {
        cluster.create_user(role, PG_PASSWORD);
    }
    Env {
        cluster,
        _radius: radius,
        alice,
        wrongsecret,
        down,
    }
}

/// A six-digit code that is none of the codes the server would accept now.
fn wrong_code(u: &RadiusUser) -> String {
    let t = radius::now();
    let near: Vec<String> = (0..5)
        .map(|k| radius::totp_at(&u.secret, t + k * 30 - 60))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[test]
fn password_with_current_code_and_certificate() {
    let env = setup(true);
    let c = &env.cluster;
    let cert = scenario::cert_for(c, "alice");
    let a = &env.alice;
    psql_login(
        c,
        &Login::new("alice", &a.password_with_current_code()).cert(&cert),
    )
    .assert_accepted_as("alice");
    rust_login(
        c,
        &Login::new("alice", &a.password_with_current_code()).cert(&cert),
    )
    .assert_accepted_as("alice");

    // stale code (five minutes old), wrong code, right code with the wrong password, no code
    let stale = format!(
        "{}{}",
        a.password,
        radius::totp_at(&a.secret, radius::now() - 300)
    );
    let wrong = format!("{}{}", a.password, wrong_code(a));
    let bad_pw = format!("wrong-pw{}", radius::totp_now(&a.secret));
    for typed in [
        stale,
        wrong,
        bad_pw,
        a.password.clone(),
        PG_PASSWORD.to_string(),
    ] {
        rust_login(c, &Login::new("alice", &typed).cert(&cert))
            .assert_refused(&radius_refused("alice"));
    }
    assert!(!c.log().contains("two-factor authentication failed"));
}

#[test]
fn certificate_reasons_with_a_good_code() {
    let env = setup(true);
    let c = &env.cluster;
    let a = &env.alice;
    psql_login(c, &Login::new("alice", &a.password_with_current_code()))
        .assert_refused(&two_factor("alice", "no client certificate"));
    let other = c.client_cert(
        "not-alice",
        &["mallory"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    rust_login(
        c,
        &Login::new("alice", &a.password_with_current_code()).cert(&other),
    )
    .assert_refused(&two_factor(
        "alice",
        "certificate CN does not match the user name",
    ));
    let cert = scenario::cert_for(c, "alice");
    rust_login(
        c,
        &Login::new("alice", &a.password_with_current_code())
            .cert(&cert)
            .from("127.0.0.2"),
    )
    .assert_refused(&two_factor(
        "alice",
        "client address does not match the certificate",
    ));
    // carol's pg_hba.conf line is scram-sha-256, not radius
    let carol = scenario::cert_for(c, "carol");
    rust_login(c, &Login::new("carol", PG_PASSWORD).cert(&carol)).assert_refused(&two_factor(
        "carol",
        "pg_hba.conf method does not match the rule",
    ));
    assert!(c
        .log()
        .contains(&format!("pg_hba.conf {} (radius)", c.hba_position(2))));
    assert!(c.log().contains("2f-radius requires pg_hba.conf method radius, but the connection matched a scram-sha-256 line"));
}

#[test]
fn off_until_enabled() {
    let env = setup(false);
    let c = &env.cluster;
    let cert = scenario::cert_for(c, "alice");
    rust_login(
        c,
        &Login::new("alice", &env.alice.password_with_current_code()).cert(&cert),
    )
    .assert_refused(&two_factor("alice", "method not enabled"));
    c.psql_admin("ALTER SYSTEM SET pg_twofactor.enabled_extra_auth_methods = '2f-radius'");
    c.reload();
    rust_login(
        c,
        &Login::new("alice", &env.alice.password_with_current_code()).cert(&cert),
    )
    .assert_accepted_as("alice");
}

#[test]
fn radius_down_or_wrong_shared_secret_is_refused() {
    let env = setup(true);
    let c = &env.cluster;
    let ws = scenario::cert_for(c, "wrongsecret");
    rust_login(
        c,
        &Login::new("wrongsecret", &env.wrongsecret.password_with_current_code()).cert(&ws),
    )
    .assert_refused(&radius_refused("wrongsecret"));
    let down = scenario::cert_for(c, "down");
    rust_login(
        c,
        &Login::new("down", &env.down.password_with_current_code()).cert(&down),
    )
    .assert_refused(&radius_refused("down"));
    let log = c.log();
    assert!(
        log.contains("RADIUS response from 127.0.0.1 has incorrect MD5 signature"),
        "{log}"
    );
    assert!(
        log.contains("timeout waiting for RADIUS response from 127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains("two-factor authentication failed"), "{log}");
}

#[test]
fn client_reason_off_makes_certificate_refusals_look_like_a_wrong_code() {
    let env = setup(true);
    let c = &env.cluster;
    c.append_settings(&["pg_twofactor.client_reason = off"]);
    c.reload();
    let a = &env.alice;
    let cert = scenario::cert_for(c, "alice");
    let wrong = format!("{}{}", a.password, wrong_code(a));
    let wrong_code = rust_login(c, &Login::new("alice", &wrong).cert(&cert));
    wrong_code.assert_refused(&radius_refused("alice"));
    let mark = c.log_mark();
    assert_eq!(
        rust_login(c, &Login::new("alice", &a.password_with_current_code())),
        wrong_code
    );
    let other = c.client_cert(
        "not-alice",
        &["mallory"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    assert_eq!(
        rust_login(
            c,
            &Login::new("alice", &a.password_with_current_code()).cert(&other)
        ),
        wrong_code
    );
    let log = c.log_since(mark);
    for reason in [
        "no client certificate",
        "certificate CN does not match the user name",
    ] {
        assert!(
            log.contains(&format!(
                "pg_twofactor refused the login ({})",
                two_factor("alice", reason)
            )),
            "{log}"
        );
    }
    rust_login(
        c,
        &Login::new("alice", &a.password_with_current_code()).cert(&cert),
    )
    .assert_accepted_as("alice");
}
