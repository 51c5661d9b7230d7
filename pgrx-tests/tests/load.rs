//! Many concurrent login attempts, good and bad mixed, for a fixed time: every outcome is the
//! expected one and the postmaster never restarts. As root, one client in five runs on a second
//! host (a network namespace joined by a veth pair) and logs in over that link.
//!
//! LOAD_CLIENTS (default 120) concurrent clients for LOAD_SECONDS (default 15).

use pg_twofactor_e2e::netns::{NetnsHost, HOST_ADDR, PEER_ADDR};
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{env_or, rust_login, two_factor, Login, Outcome, Pki, San};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[test]
fn concurrent_mixed_logins_all_decided_right() {
    let clients = env_or("LOAD_CLIENTS", 120) as usize;
    let seconds = env_or("LOAD_SECONDS", 15);
    let netns = NetnsHost::for_scenario("load");
    let mut builder = scenario::builder().setting(&format!("max_connections = {}", clients + 30));
    if netns.is_some() {
        builder = builder.listen(&format!("127.0.0.1,::1,{HOST_ADDR}"));
    }
    let c = scenario::start(builder);
    let pid = std::fs::read_to_string(c.data.join("postmaster.pid")).unwrap();
    let good = scenario::cert_for(&c, "test1");
    let others = scenario::cert_for(&c, "other");
    // a certificate for test1 from a CA the server does not trust (it has the same name as
    // the real CA, so OpenSSL tries the real CA's key and the signature check fails)
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = Pki::new(foreign_dir.path()).client(
        "test1-foreign",
        &["test1"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );

    // test1's certificate for the namespace host's address
    let remote = c.client_cert(
        "test1-remote",
        &["test1"],
        Some(&[San::Ip(PEER_ADDR.parse().unwrap())]),
    );

    // (kind, login, what must happen), for clients on this host
    type Check = fn(&Outcome) -> bool;
    let kinds: Vec<(&str, Login, Check)> = vec![
        (
            "both factors",
            Login::new("test1", PASSWORD).cert(&good),
            |o| matches!(o, Outcome::Accepted { current_user, .. } if current_user == "test1"),
        ),
        (
            "no certificate",
            Login::new("test1", PASSWORD),
            |o| matches!(o, Outcome::Refused { message, .. } if *message == two_factor("test1", "no client certificate")),
        ),
        (
            "someone else's certificate",
            Login::new("test1", PASSWORD).cert(&others),
            |o| matches!(o, Outcome::Refused { message, .. } if *message == two_factor("test1", "certificate CN does not match the user name")),
        ),
        (
            "from another address",
            Login::new("test1", PASSWORD).cert(&good).from("127.0.0.2"),
            |o| matches!(o, Outcome::Refused { message, .. } if *message == two_factor("test1", "client address does not match the certificate")),
        ),
        (
            "wrong password",
            Login::new("test1", "wrong").cert(&good),
            |o| matches!(o, Outcome::Refused { sqlstate, message } if sqlstate == "28P01" && message == "password authentication failed for user \"test1\""),
        ),
        (
            "certificate from an untrusted CA",
            Login::new("test1", PASSWORD).cert(&foreign),
            // the server ends the TLS handshake: the client reads its alert, or the reset that
            // follows it (TLS 1.3 sends the certificate after the client's side of the
            // handshake is done), never "Connection refused"; the server log says why (checked
            // below)
            |o| matches!(o, Outcome::Failed(m) if m.contains("SSL alert") || m.contains("reset by peer")),
        ),
        (
            "not covered",
            Login::new("other", PASSWORD),
            |o| matches!(o, Outcome::Accepted { current_user, .. } if current_user == "other"),
        ),
    ];
    // ... and for clients on the namespace host, connecting over the veth link
    let remote_kinds: Vec<(&str, Login, Check)> = vec![
        (
            "namespace host: both factors",
            Login::new("test1", PASSWORD).cert(&remote).to(HOST_ADDR),
            |o| matches!(o, Outcome::Accepted { current_user, client_addr } if current_user == "test1" && client_addr == PEER_ADDR),
        ),
        (
            "namespace host: a certificate bound to 127.0.0.1",
            Login::new("test1", PASSWORD).cert(&good).to(HOST_ADDR),
            |o| matches!(o, Outcome::Refused { message, .. } if *message == two_factor("test1", "client address does not match the certificate")),
        ),
        (
            "namespace host: no certificate",
            Login::new("test1", PASSWORD).to(HOST_ADDR),
            |o| matches!(o, Outcome::Refused { message, .. } if *message == two_factor("test1", "no client certificate")),
        ),
        (
            "namespace host: not covered",
            Login::new("other", PASSWORD).to(HOST_ADDR),
            |o| matches!(o, Outcome::Accepted { current_user, client_addr } if current_user == "other" && client_addr == PEER_ADDR),
        ),
    ];
    let tally: Mutex<BTreeMap<&str, (usize, usize)>> = Mutex::new(BTreeMap::new());
    let wrong: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|s| {
        for k in 0..clients {
            let (c, tally, wrong, netns) = (&c, &tally, &wrong, &netns);
            // one client in five on the namespace host
            let remote = netns.is_some() && k % 5 == 0;
            let kinds = if remote { &remote_kinds } else { &kinds };
            std::thread::Builder::new()
                .stack_size(512 * 1024)
                .spawn_scoped(s, move || {
                    if let (true, Some(host)) = (remote, netns) {
                        host.enter_on_this_thread();
                    }
                    let mut i = k;
                    while Instant::now() < deadline {
                        let (kind, login, check) = &kinds[i % kinds.len()];
                        let outcome = rust_login(c, login);
                        let ok = check(&outcome);
                        let mut t = tally.lock().unwrap();
                        let e = t.entry(kind).or_default();
                        if ok {
                            e.0 += 1;
                        } else {
                            e.1 += 1;
                            wrong.lock().unwrap().push(format!("{kind}: {outcome:?}"));
                        }
                        i += 1;
                    }
                })
                .unwrap();
        }
    });
    let tally = tally.into_inner().unwrap();
    let wrong = wrong.into_inner().unwrap();
    let total: usize = tally.values().map(|(a, b)| a + b).sum();
    eprintln!("load: {clients} clients, {seconds} s, {total} attempts; per kind (as expected, wrong): {tally:?}");
    assert!(
        wrong.is_empty(),
        "{} wrong outcomes, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let expected_kinds = kinds.len()
        + if netns.is_some() {
            remote_kinds.len()
        } else {
            0
        };
    assert_eq!(tally.len(), expected_kinds, "every kind ran: {tally:?}");
    let untrusted = tally["certificate from an untrusted CA"].0;
    // a failed handshake is logged after the client has seen the alert
    let log = c.log_since_when(0, |log| {
        log.matches("could not accept SSL connection: ").count() >= untrusted
    });
    assert_eq!(
        std::fs::read_to_string(c.data.join("postmaster.pid"))
            .unwrap()
            .lines()
            .next(),
        pid.lines().next(),
        "postmaster restarted"
    );
    assert!(!log.contains("terminated by signal"), "a backend crashed");
    assert!(
        !log.contains("sorry, too many clients"),
        "max_connections was reached"
    );
    assert!(
        log.matches("could not accept SSL connection: ").count() >= untrusted,
        "each untrusted certificate is refused by the TLS layer"
    );
}
