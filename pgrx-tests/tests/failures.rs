//! Failure modes, each with its expected outcome: the rules file deleted or made unreadable
//! before a reload (the previous rules stay, with a clear LOG line), and a backend killed
//! during authentication (PostgreSQL's crash recovery, after which the rules are still in
//! force).

use pg_twofactor_e2e::cluster::log_line_pid;
use pg_twofactor_e2e::daemon::wait_until;
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{rust_login, two_factor, Login, Outcome};
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_deleted_or_unreadable_rules_file_keeps_the_previous_rules() {
    let c = scenario::start(scenario::builder());
    let rules = c.data.join("pg_twofactor_hba.conf");
    let good = scenario::cert_for(&c, "test1");

    // unreadable for the server's OS user
    std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    assert!(
        log.contains("could not open pg_twofactor rules file"),
        "{log}"
    );
    assert!(log.contains("Permission denied"), "{log}");
    assert!(
        log.contains("was not reloaded; the previous rules stay in force"),
        "{log}"
    );
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");

    // deleted
    std::fs::remove_file(&rules).unwrap();
    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    assert!(log.contains("No such file or directory"), "{log}");
    assert!(
        log.contains("was not reloaded; the previous rules stay in force"),
        "{log}"
    );
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));

    // and back: the file's new content applies
    std::fs::write(&rules, "hostssl all other all 2f-scram-sha-256\n").unwrap();
    pg_twofactor_e2e::cluster::chown_to_cluster_user(&rules);
    c.reload();
    rust_login(&c, &Login::new("test1", PASSWORD)).assert_accepted_as("test1");
    rust_login(&c, &Login::new("other", PASSWORD))
        .assert_refused(&two_factor("other", "no client certificate"));
}

#[test]
fn a_backend_killed_during_authentication_leaves_the_rules_in_force() {
    // auth_delay holds a refused login in authentication (3 s) long enough to kill it there
    let c = scenario::start(scenario::with_auth_delay(scenario::builder(), 3000));
    let good = scenario::cert_for(&c, "test1");
    let mark = c.log_mark();
    std::thread::scope(|s| {
        let client = s.spawn(|| rust_login(&c, &Login::new("test1", PASSWORD)));
        let mut victim = None;
        wait_until(
            || {
                victim = c
                    .log_since(mark)
                    .lines()
                    .find(|l| l.contains("pg_twofactor decision: refused (no client certificate)"))
                    .and_then(log_line_pid)
                    .map(str::to_string);
                victim.is_some()
            },
            || format!("no refusal decision logged:\n{}", c.log_since(mark)),
        );
        let pid: i32 = victim.unwrap().parse().unwrap();
        // SAFETY: kill(2) with a process id and a signal number; no memory involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        assert!(
            matches!(client.join().unwrap(), Outcome::Failed(_)),
            "the killed backend's client sees the connection drop"
        );
    });
    wait_until(
        || {
            let log = c.log_since(mark);
            log.contains("all server processes terminated; reinitializing")
                && log
                    .split("all server processes terminated; reinitializing")
                    .nth(1)
                    .is_some_and(|after| {
                        after.contains("database system is ready to accept connections")
                    })
        },
        || format!("no crash recovery:\n{}", c.log_since(mark)),
    );
    let log = c.log_since(mark);
    assert!(log.contains("was terminated by signal 9: Killed"), "{log}");
    // after PostgreSQL's crash recovery the same rules are in force, no reload needed
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");
    rust_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
}

#[test]
fn a_dns_server_that_never_answers_refuses_a_host_name_rule() {
    if !pg_twofactor_e2e::cluster::is_root() {
        eprintln!("skipped: a private name service needs root");
        return;
    }
    // The cluster's resolver (a private resolv.conf: nameserver 127.83.0.53, timeout 1 s, one
    // attempt) reaches this socket, which reads nothing and answers nothing.
    let silent = std::net::UdpSocket::bind("127.83.0.53:53").expect("bind the silent DNS server");
    let c = scenario::builder()
        .rules("hostssl all test1 .oracle.test 2f-scram-sha-256\n")
        .name_service(b"127.0.0.1 localhost\n::1 localhost\n")
        .start();
    c.create_user("test1", PASSWORD);
    let mark = c.log_mark();
    // 127.0.0.7 has no name in the hosts file, and DNS times out: the rule cannot be decided,
    // so it applies, and the login is refused with the cause in the log
    rust_login(&c, &Login::new("test1", PASSWORD).from("127.0.0.7"))
        .assert_refused(&two_factor("test1", "internal error"));
    let log = c.log_since(mark);
    assert!(
        log.contains("reverse lookup of 127.0.0.7 failed: Temporary failure in name resolution"),
        "{log}"
    );
    // the resolver did ask the silent server (and so waited out its timeout)
    silent.set_nonblocking(true).unwrap();
    let mut query = [0u8; 512];
    assert!(
        silent.recv(&mut query).is_ok(),
        "no DNS query reached the silent server"
    );
}

#[test]
fn a_lookup_slower_than_authentication_timeout_gives_up_first_and_refuses_with_the_cause() {
    if !pg_twofactor_e2e::cluster::is_root() {
        eprintln!("skipped: a private name service needs root");
        return;
    }
    // The resolver would wait 30 s for this silent server; authentication_timeout is 2 s. The
    // hook gives up before PostgreSQL's timeout fires (which would close the connection
    // without telling the client anything) and refuses with the cause.
    let silent = std::net::UdpSocket::bind("127.83.0.53:53").expect("bind the silent DNS server");
    let c = scenario::builder()
        .rules(
            "hostssl all test1 .oracle.test 2f-scram-sha-256\n\
             hostssl all test1 127.0.0.1/32 2f-scram-sha-256\n",
        )
        .name_service(b"127.0.0.1 localhost\n::1 localhost\n")
        .resolver_options("options timeout:30 attempts:1")
        .setting("authentication_timeout = 2s")
        .start();
    c.create_user("test1", PASSWORD);
    let good = scenario::cert_for(&c, "test1");
    let mark = c.log_mark();
    rust_login(
        &c,
        &Login::new("test1", PASSWORD).from("127.0.0.7").cert(&good),
    )
    .assert_refused(&two_factor("test1", "internal error"));
    let log = c.log_since_when(mark, |l| l.contains("internal error"));
    assert!(
        log.contains(
            "reverse lookup of 127.0.0.7 failed: no answer before authentication_timeout (2 s) ran out"
        ),
        "{log}"
    );
    assert!(
        !log.contains("canceling authentication due to timeout"),
        "PostgreSQL's timeout fired first:\n{log}"
    );
    silent.set_nonblocking(true).unwrap();
    let mut query = [0u8; 512];
    assert!(
        silent.recv(&mut query).is_ok(),
        "no DNS query reached the silent server"
    );
    // the server goes on: the next login (no lookup needed) is accepted
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");
}
