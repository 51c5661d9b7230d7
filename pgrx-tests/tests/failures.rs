//! Failure modes, each with its expected outcome: the rules file deleted or made unreadable
//! before a reload (the previous rules stay, with a clear LOG line), and a backend killed
//! during authentication (PostgreSQL's crash recovery, after which the rules are still in
//! force).

use pg_twofactor_e2e::cluster::{address_space_of, log_line_pid, set_address_space_limit};
use pg_twofactor_e2e::daemon::wait_until;
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{rust_login, two_factor, Login, Outcome, San};
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
        // the killed backend's client sees the connection drop (not a refusal, not a server
        // that is down)
        client.join().unwrap().assert_failed_with(&[
            "connection closed",
            "unexpected EOF",
            "reset by peer",
            "Broken pipe",
        ]);
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

/// The silent DNS server's address is the one every private name service uses: the scenarios
/// that bind it take turns.
static SILENT_DNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A DNS server that reads nothing and answers nothing, at the address of the clusters'
/// private resolv.conf (nameserver 127.83.0.53), held for one scenario at a time.
struct SilentDns {
    socket: std::net::UdpSocket,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl SilentDns {
    fn start() -> SilentDns {
        let turn = SILENT_DNS.lock().unwrap_or_else(|e| e.into_inner());
        SilentDns {
            socket: std::net::UdpSocket::bind("127.83.0.53:53")
                .expect("bind the silent DNS server"),
            _turn: turn,
        }
    }

    /// The resolver did ask it (and so waited for an answer). Takes every query asked so far,
    /// so that the next call sees only later ones.
    fn assert_asked(&self) {
        self.socket.set_nonblocking(true).unwrap();
        let mut query = [0u8; 512];
        assert!(
            self.socket.recv(&mut query).is_ok(),
            "no DNS query reached the silent server"
        );
        while self.socket.recv(&mut query).is_ok() {}
    }
}

/// A certificate for `user` bound to 127.0.0.7, the address these scenarios log in from.
fn cert_at_7(c: &pg_twofactor_e2e::Cluster, user: &str) -> pg_twofactor_e2e::CertFiles {
    c.client_cert(
        &format!("{user}-7"),
        &[user],
        Some(&[San::Ip("127.0.0.7".parse().unwrap())]),
    )
}

/// A hosts file that names only localhost, so 127.0.0.7's name is asked of DNS.
const HOSTS: &[u8] = b"127.0.0.1 localhost\n::1 localhost\n";

#[test]
fn a_dns_server_that_never_answers_requires_the_host_name_rules_checks() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    // The cluster's resolver (timeout 1 s, one attempt) reaches the silent server.
    let silent = SilentDns::start();
    let c = scenario::builder()
        .rules("hostssl all test1 .oracle.test 2f-scram-sha-256\n")
        .name_service(HOSTS)
        .start();
    c.create_user("test1", PASSWORD);
    let mark = c.log_mark();
    // 127.0.0.7 has no name in the hosts file, and DNS times out: whether the rule applies
    // cannot be decided, so its checks are required (and pass only with a certificate)
    rust_login(&c, &Login::new("test1", PASSWORD).from("127.0.0.7"))
        .assert_refused(&two_factor("test1", "no client certificate"));
    let log = c.log_since(mark);
    assert!(
        log.contains("Whether the rule applies cannot be decided (reverse lookup of 127.0.0.7 failed: Temporary failure in name resolution), and it refuses the login as if it applied."),
        "{log}"
    );
    // the resolver did ask the silent server (and so waited out its timeout)
    silent.assert_asked();
    // with a certificate for that address the login passes in both worlds
    let cert = cert_at_7(&c, "test1");
    rust_login(
        &c,
        &Login::new("test1", PASSWORD).from("127.0.0.7").cert(&cert),
    )
    .assert_accepted_as("test1");
}

#[test]
fn a_resolver_outage_locks_out_nobody_no_rule_covers_and_lets_nobody_in_on_a_password() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    // The example: an exemption by host name above an enforcing rule for alice. The
    // reverse lookup of 127.0.0.7 times out, so whether the exemption applies is unknown.
    let _silent = SilentDns::start();
    let c = scenario::builder()
        .rules(
            "hostssl all all .mon.oracle.test 2f-exempt\n\
             hostssl all alice 127.0.0.0/8 2f-scram-sha-256\n",
        )
        .name_service(HOSTS)
        .setting("pg_twofactor.log_decisions = all")
        .start();
    for u in ["alice", "bob"] {
        c.create_user(u, PASSWORD);
    }
    // bob: no rule covers him in either world, so he gets in on his password, as with
    // PostgreSQL alone (0.2 refused every login that reached the undecidable exemption)
    let mark = c.log_mark();
    rust_login(&c, &Login::new("bob", PASSWORD).from("127.0.0.7")).assert_accepted_as("bob");
    let log = c.log_since(mark);
    assert!(
        log.contains("pg_twofactor decision: not covered; rule none;")
            && log.contains("; client 127.0.0.7; undecided: rule ")
            && log.contains(":1 (2f-exempt) skipped (reverse lookup of 127.0.0.7 failed: Temporary failure in name resolution)"),
        "{log}"
    );
    // alice with a valid certificate for her address: the rule below accepts
    let alice = cert_at_7(&c, "alice");
    rust_login(
        &c,
        &Login::new("alice", PASSWORD).from("127.0.0.7").cert(&alice),
    )
    .assert_accepted_as("alice");
    // alice on her password alone: refused by the rule below, and the log says the
    // undecidable exemption did not spare her
    let mark = c.log_mark();
    rust_login(&c, &Login::new("alice", PASSWORD).from("127.0.0.7"))
        .assert_refused(&two_factor("alice", "no client certificate"));
    let log = c.log_since(mark);
    assert!(
        log.contains("The rules above this one that could not be decided do not spare the login from it. Rule ")
            && log.contains(":1 (2f-exempt) could not be decided (reverse lookup of 127.0.0.7 failed: Temporary failure in name resolution), so it was skipped."),
        "{log}"
    );
    // and a wrong certificate is still refused with its reason
    let wrong = cert_at_7(&c, "bob");
    rust_login(
        &c,
        &Login::new("alice", PASSWORD).from("127.0.0.7").cert(&wrong),
    )
    .assert_refused(&two_factor(
        "alice",
        "certificate CN does not match the user name",
    ));
}

#[test]
fn a_wrong_password_makes_the_same_host_name_lookup_as_a_right_one() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    // A host-name exemption above an enforcing rule: deciding whether it applies needs the
    // reverse lookup of the client's address, which a client controlling that reverse zone
    // sees. It must be made for a wrong password as for a right one (0.2 made it only after a
    // right password).
    let silent = SilentDns::start();
    let c = scenario::builder()
        .rules(
            "hostssl all all .mon.oracle.test 2f-exempt\n\
             hostssl all test1 all 2f-scram-sha-256\n",
        )
        .name_service(HOSTS)
        .default_client_reason()
        // the dry run would make lookups of its own after each login
        .without_dry_run_shadow()
        // every decision the hook acts on is logged: a wrong password's must not be
        .setting("pg_twofactor.log_decisions = all")
        .start();
    c.create_user("test1", PASSWORD);
    let refused = |outcome: Outcome| match outcome {
        Outcome::Refused { sqlstate, message } => {
            assert_eq!(
                (sqlstate.as_str(), message.as_str()),
                ("28P01", "password authentication failed for user \"test1\"")
            );
        }
        o => panic!("{o:?}"),
    };
    // a wrong password: PostgreSQL refuses, and the lookup was asked all the same
    refused(rust_login(
        &c,
        &Login::new("test1", "wrong").from("127.0.0.7"),
    ));
    silent.assert_asked();
    // the right one without a certificate: the same answer, the same lookup
    refused(rust_login(
        &c,
        &Login::new("test1", PASSWORD).from("127.0.0.7"),
    ));
    silent.assert_asked();
    // both refusals are counted (the statistics must not tell a right password from a wrong
    // one), but only the right password's is logged as a pg_twofactor decision
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    assert_eq!(
        c.psql_admin("SELECT sum(checked), sum(refused) FROM pg_twofactor_stats WHERE rule_line IS NOT NULL AND reason IS NULL"),
        "2|2"
    );
    assert_eq!(
        (
            c.log().matches("pg_twofactor refused the login").count(),
            c.log()
                .lines()
                .filter(|l| l.contains("pg_twofactor decision: ") && l.contains("user \"test1\""))
                .count()
        ),
        (1, 1),
        "only the right password's refusal is logged as a pg_twofactor decision:\n{}",
        c.log()
    );
    // and the right password with the certificate logs in
    let cert = cert_at_7(&c, "test1");
    rust_login(
        &c,
        &Login::new("test1", PASSWORD).from("127.0.0.7").cert(&cert),
    )
    .assert_accepted_as("test1");
}

#[test]
fn a_lookup_slower_than_authentication_timeout_gives_up_first_and_refuses_with_the_cause() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    // The resolver would wait 30 s for this silent server; authentication_timeout is 2 s. The
    // hook gives up before PostgreSQL's timeout fires (which would close the connection
    // without telling the client anything) and refuses with the cause.
    let silent = SilentDns::start();
    let c = scenario::builder()
        .rules(
            "hostssl all test1 .oracle.test 2f-scram-sha-256\n\
             hostssl all test1 127.0.0.1/32 2f-scram-sha-256\n",
        )
        .name_service(HOSTS)
        .resolver_options("options timeout:30 attempts:1")
        .setting("authentication_timeout = 2s")
        // the dry run is not bounded (no authentication_timeout in a session): it would wait
        // the resolver's 30 s
        .without_dry_run_shadow()
        .start();
    c.create_user("test1", PASSWORD);
    let good = scenario::cert_for(&c, "test1");
    let mark = c.log_mark();
    // (as if the undecidable rule applied, test1's certificate is for 127.0.0.1, not .7)
    rust_login(
        &c,
        &Login::new("test1", PASSWORD).from("127.0.0.7").cert(&good),
    )
    .assert_refused(&two_factor(
        "test1",
        "client address does not match the certificate",
    ));
    let log = c.log_since_when(mark, |l| l.contains("pg_twofactor decision: refused"));
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
    silent.assert_asked();
    // the server goes on: the next login (no lookup needed) is accepted
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");
}

#[test]
fn a_reload_without_the_memory_to_load_the_rules_keeps_the_previous_rules() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("limiting the postmaster's memory needs root") {
        return;
    }
    let c = scenario::start(scenario::builder());
    let pid = c.postmaster_pid();
    let good = scenario::cert_for(&c, "test1");
    // The postmaster may grow 48 MB beyond its size now (its backends inherit the limit, and a
    // login needs far less). The new file (about 3 MB) needs over 100 MB to load.
    set_address_space_limit(pid, Some(address_space_of(pid) + 48 * 1024 * 1024));
    let big = format!(
        "hostssl all other all 2f-scram-sha-256\n{}{}",
        scenario::synthetic_rules(60_000, "nobody"),
        scenario::RULES
    );
    c.write_rules(&big);
    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    assert!(
        log.contains(
            "could not load pg_twofactor rules file: not enough memory to load the rules: "
        ) && log.contains("Cannot allocate memory"),
        "{log}"
    );
    assert!(
        log.contains("was not reloaded; the previous rules stay in force"),
        "{log}"
    );
    let problem = c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor; SELECT last_reload_error FROM pg_twofactor_status()");
    assert!(problem.contains("not enough memory"), "{problem}");
    // the postmaster is the same process, and the previous rules are enforced
    assert_eq!(c.postmaster_pid(), pid);
    rust_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");

    // with the memory back, the same file loads at the next reload
    set_address_space_limit(pid, None);
    c.reload();
    rust_login(&c, &Login::new("other", PASSWORD))
        .assert_refused(&two_factor("other", "no client certificate"));
    assert_eq!(c.postmaster_pid(), pid);
    assert!(!c.log().contains("terminated by signal"), "{}", c.log());
}

#[test]
fn a_rules_file_cut_short_on_a_full_disk_is_not_loaded() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a small file system needs root") {
        return;
    }
    // the rules file lives on a 64 kB tmpfs
    let dir = tempfile::Builder::new()
        .prefix("pg2f-small-fs-")
        .tempdir()
        .unwrap();
    let small = dir.path().to_path_buf();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let rules = small.join("rules.conf");
    std::fs::write(&rules, scenario::RULES).unwrap();
    pg_twofactor_e2e::cluster::chown_to_cluster_user(&rules);
    let c = scenario::start(
        scenario::builder().setting(&format!("pg_twofactor.hba_file = '{}'", rules.display())),
    );
    let good = scenario::cert_for(&c, "test1");

    // fill the file system
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(small.join("filler")).unwrap();
        let chunk = [b'#'; 1024];
        while filler.write_all(&chunk).is_ok() {}
    }
    // the DBA rewrites the rules file in place: a rule for "other" first, then the old rules
    // behind 150 more. Only what fits in the rules file's own freed block is written.
    let mut new = String::from("hostssl all other all 2f-scram-sha-256\n");
    for i in 0..150 {
        new.push_str(&format!(
            "hostssl all user{i:03} 127.0.0.1/32 2f-scram-sha-256\n"
        ));
    }
    new.push_str(scenario::RULES);
    let err = std::fs::write(&rules, &new).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    let written = std::fs::read(&rules).unwrap();
    assert!(
        !written.is_empty() && written.len() < new.len() && !written.ends_with(b"\n"),
        "the write was cut inside a line ({} of {} bytes)",
        written.len(),
        new.len()
    );
    let cut_line = written.iter().filter(|b| **b == b'\n').count() + 1;

    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    assert!(
        log.contains(&format!(
            "line {cut_line} of configuration file \"{}\"",
            rules.display()
        )),
        "{log}"
    );
    assert!(
        log.contains("was not reloaded; the previous rules stay in force"),
        "{log}"
    );
    // the previous rules: "other" is not covered, test1 is
    rust_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");

    // a file that ends inside its last rule but is otherwise valid loads, with a WARNING
    std::fs::remove_file(small.join("filler")).unwrap();
    let whole: Vec<&str> = scenario::RULES.lines().collect();
    std::fs::write(&rules, whole.join("\n")).unwrap();
    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    assert!(
        log.contains(&format!(
            "WARNING:  pg_twofactor rules file \"{}\" does not end with a newline",
            rules.display()
        )),
        "{log}"
    );
    // and with the newline back, no warning
    std::fs::write(&rules, scenario::RULES).unwrap();
    let mark = c.log_mark();
    c.reload();
    assert!(
        !c.log_since(mark).contains("does not end with a newline"),
        "{}",
        c.log_since(mark)
    );
}

/// A hosts file that names 127.0.0.8 (forward and reverse) and nothing else but localhost:
/// every other name is asked of DNS, which fails at once ("temporary failure").
const HOSTS_WITH_APP8: &[u8] = b"127.0.0.1 localhost\n::1 localhost\n127.0.0.8 app8.oracle.test\n";

/// A cluster whose rule covers `test1` from anywhere, with [`HOSTS_WITH_APP8`] as its name
/// service (`None` when not root: a private name service needs root).
fn app8_cluster() -> Option<pg_twofactor_e2e::Cluster> {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return None;
    }
    let c = scenario::builder()
        .rules("hostssl all test1 all 2f-scram-sha-256\n")
        .name_service(HOSTS_WITH_APP8)
        .start();
    c.create_user("test1", PASSWORD);
    Some(c)
}

/// A DNS SubjectAltName the server cannot check (the reverse lookup of the client fails) refuses
/// the login as an internal error, never accepts it; an IP entry for the same client needs no
/// lookup and lets the login in.
#[test]
fn a_dns_subjectaltname_that_cannot_be_checked_refuses_the_login() {
    let Some(c) = app8_cluster() else { return };
    let by_name = c.client_cert(
        "test1-dns7",
        &["test1"],
        Some(&[San::Dns("app7.oracle.test".into())]),
    );
    let mark = c.log_mark();
    rust_login(
        &c,
        &Login::new("test1", PASSWORD)
            .from("127.0.0.7")
            .cert(&by_name),
    )
    .assert_refused(&two_factor("test1", "internal error"));
    let log = c.log_since(mark);
    assert!(
        log.contains("SubjectAltName: DNS:app7.oracle.test"),
        "{log}"
    );
    assert!(log.contains("127.0.0.7"), "{log}");
    // the positive control: the same client with an IP entry
    let by_address = cert_at_7(&c, "test1");
    rust_login(
        &c,
        &Login::new("test1", PASSWORD)
            .from("127.0.0.7")
            .cert(&by_address),
    )
    .assert_accepted_as("test1");
}

/// A DNS SubjectAltName names one host, exactly (or one label under `*.`): a certificate for
/// `oracle.test` does not match the client `app8.oracle.test`, one for `app8.oracle.test` or
/// `*.oracle.test` does.
#[test]
fn a_dns_subjectaltname_matches_exactly_not_as_a_suffix() {
    let Some(c) = app8_cluster() else { return };
    let cert =
        |stem: &str, name: &str| c.client_cert(stem, &["test1"], Some(&[San::Dns(name.into())]));
    let login = |files: &pg_twofactor_e2e::CertFiles| {
        rust_login(
            &c,
            &Login::new("test1", PASSWORD).from("127.0.0.8").cert(files),
        )
    };
    login(&cert("parent", "oracle.test")).assert_refused(&two_factor(
        "test1",
        "client address does not match the certificate",
    ));
    login(&cert("sibling", "pp8.oracle.test")).assert_refused(&two_factor(
        "test1",
        "client address does not match the certificate",
    ));
    login(&cert("exact", "app8.oracle.test")).assert_accepted_as("test1");
    login(&cert("wildcard", "*.oracle.test")).assert_accepted_as("test1");
}

/// A hosts file that lies one way: the reverse lookup of 127.0.0.5 says `trusted.oracle.test`,
/// whose forward lookup (the first line only, see `first_hosts_line_only`) is 127.0.0.6.
const HOSTS_LYING_ABOUT_5: &[u8] = b"127.0.0.1 localhost\n::1 localhost\n\
127.0.0.6 trusted.oracle.test\n127.0.0.5 trusted.oracle.test\n";

/// A reverse name proves nothing until it resolves back to the client (PostgreSQL's
/// `check_hostname`): whoever owns the reverse zone of 127.0.0.5 can make it say
/// `trusted.oracle.test`. An exemption for that name must not apply to 127.0.0.5, whether
/// PostgreSQL already looked the name up for its log (`log_hostname = on`: the name it keeps is
/// unconfirmed) or not; it applies to 127.0.0.6, the host the name really is.
#[test]
fn a_reverse_name_that_does_not_resolve_back_exempts_nobody() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    for log_hostname in ["off", "on"] {
        let c = scenario::builder()
            .rules(
                "hostssl all test1 trusted.oracle.test 2f-exempt\n\
                 hostssl all test1 all 2f-scram-sha-256\n",
            )
            .name_service(HOSTS_LYING_ABOUT_5)
            .first_hosts_line_only()
            .setting(&format!("log_hostname = {log_hostname}"))
            .setting("log_connections = on")
            .start();
        c.create_user("test1", PASSWORD);
        let mark = c.log_mark();
        rust_login(&c, &Login::new("test1", PASSWORD).from("127.0.0.5"))
            .assert_refused(&two_factor("test1", "no client certificate"));
        if log_hostname == "on" {
            // PostgreSQL did look the name up (its connection line names it)
            let log = c.log_since(mark);
            assert!(
                log.contains("trusted.oracle.test"),
                "log_hostname = on: {log}"
            );
        }
        // the positive control: the host the name really is
        rust_login(&c, &Login::new("test1", PASSWORD).from("127.0.0.6"))
            .assert_accepted_as("test1");
    }
}
