//! Rules that mean what PostgreSQL means, one scenario per fail-open case that was found (each
//! let a password alone in): quoted role names after `+` and quoted `@file` names, names that
//! are not UTF-8, continued lines, lookups that fail, and (16+) regular expressions and
//! `include`; plus IPv4-mapped SubjectAltName subnets and the decision log. Run on every
//! tested major (`PG_CONFIG` picks it).

use pg_twofactor_e2e::cluster::{bindir, major_of_bindir};
use pg_twofactor_e2e::scenario::{cert_for, PASSWORD};
use pg_twofactor_e2e::wire::{raw_login, RawLogin, RawOutcome};
use pg_twofactor_e2e::{rust_login, two_factor, Cluster, Login, San};
use std::net::SocketAddr;

fn is_16_or_later() -> bool {
    major_of_bindir(&bindir()) >= 16
}

fn scram_cluster(rules: &str) -> pg_twofactor_e2e::cluster::ClusterBuilder {
    Cluster::builder()
        .hba("hostssl all all all scram-sha-256")
        .rules(rules)
}

#[test]
fn a_quoted_role_after_plus_is_membership_and_quoted_at_files_are_read() {
    let c = scram_cluster(
        "hostssl all +\"Domain Admins\" 127.0.0.1/32 2f-scram-sha-256\n\
         hostssl all @\"users list.txt\" 127.0.0.1/32 2f-scram-sha-256\n\
         hostssl all \"+literal\" 127.0.0.1/32 2f-scram-sha-256\n",
    )
    .create_rules_at("users list.txt", "carol\n")
    .start();
    for u in ["dom", "carol", "outsider"] {
        c.create_user(u, PASSWORD);
    }
    c.psql_admin("CREATE ROLE \"Domain Admins\" NOLOGIN; GRANT \"Domain Admins\" TO dom");
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    for u in ["dom", "carol"] {
        rust_login(&c, &Login::new(u, PASSWORD))
            .assert_refused(&two_factor(u, "no client certificate"));
        rust_login(&c, &Login::new(u, PASSWORD).cert(&cert_for(&c, u))).assert_accepted_as(u);
    }
    // not covered: PostgreSQL's decision stands
    rust_login(&c, &Login::new("outsider", PASSWORD)).assert_accepted_as("outsider");
    assert_eq!(
        c.psql_admin("SELECT user_name FROM pg_twofactor_rules ORDER BY line_number"),
        "{\"+Domain Admins\"}\n{carol}\n{\"\\\"+literal\\\"\"}"
    );
}

/// A raw login to a LATIN1 cluster (names as bytes) over TLS with the `password` method.
fn latin1_login(c: &Cluster, user: &[u8], cert: Option<pg_twofactor_e2e::CertFiles>) -> RawOutcome {
    let login = RawLogin {
        user: user.to_vec(),
        database: b"postgres".to_vec(),
        password: PASSWORD.as_bytes().to_vec(),
        replication: None,
        source: None,
        server: SocketAddr::new("127.0.0.1".parse().unwrap(), c.port),
        cert,
        query: true,
    };
    raw_login(&login, &c.pki.ca_cert).unwrap()
}

#[test]
fn names_that_are_not_utf8_are_compared_as_bytes() {
    let c = Cluster::builder()
        .encoding("LATIN1")
        .hba("hostssl all all all password")
        .setting("pg_twofactor.enabled_extra_auth_methods = '2f-password'")
        .rules_bytes(
            b"hostssl all +gr\xfcppe all 2f-password\nhostssl all caf\xe9 all 2f-password\n",
        )
        .start();
    c.psql_admin_bytes(b"CREATE ROLE gr\xfcppe NOLOGIN");
    for u in [&b"j\xf6rg"[..], b"caf\xe9", b"caf\xe8"] {
        let mut sql = b"CREATE ROLE \"".to_vec();
        sql.extend_from_slice(u);
        sql.extend_from_slice(format!("\" LOGIN PASSWORD '{PASSWORD}'").as_bytes());
        c.psql_admin_bytes(&sql);
    }
    c.psql_admin_bytes(b"GRANT gr\xfcppe TO j\xf6rg");
    let refused = |reason: &str, user: &str| RawOutcome::Error {
        sqlstate: "28000".into(),
        message: two_factor(user, reason),
    };
    // +role covers a member whose name is not UTF-8
    assert_eq!(
        latin1_login(&c, b"j\xf6rg", None),
        refused("no client certificate", "j\u{fffd}rg")
    );
    let joerg = c.pki.client_raw_cn("joerg", b"j\xf6rg", None);
    assert_eq!(
        latin1_login(&c, b"j\xf6rg", Some(joerg)),
        RawOutcome::Session {
            current_user: b"j\xf6rg".to_vec()
        }
    );
    // the CN is compared byte for byte: the lossy text of the login is not the login
    let lossy = c.client_cert("lossy", &["caf\u{fffd}"], None);
    assert_eq!(
        latin1_login(&c, b"caf\xe9", Some(lossy)),
        refused("certificate CN does not match the user name", "caf\u{fffd}")
    );
    let cafe = c.pki.client_raw_cn("cafe", b"caf\xe9", None);
    assert_eq!(
        latin1_login(&c, b"caf\xe9", Some(cafe.clone())),
        RawOutcome::Session {
            current_user: b"caf\xe9".to_vec()
        }
    );
    // a different name that would read the same lossily is neither covered nor accepted with
    // the other login's certificate by the rules
    assert_eq!(
        latin1_login(&c, b"caf\xe8", None),
        RawOutcome::Session {
            current_user: b"caf\xe8".to_vec()
        }
    );
}

#[test]
fn a_continued_line_is_joined_as_it_is() {
    let c = scram_cluster("hostssl all someone all 2f-scram-sha-256\n").start();
    c.create_user("admin", PASSWORD);
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    rust_login(&c, &Login::new("admin", PASSWORD)).assert_accepted_as("admin");
    c.write_rules("hostssl all ad\\\nmin \\\n127.0.0.1/32 2f-scram-sha-256\n");
    let mark = c.log_mark();
    c.reload();
    assert!(
        c.log_since(mark).contains("pg_twofactor: loaded 1 rule(s)"),
        "{}",
        c.log_since(mark)
    );
    rust_login(&c, &Login::new("admin", PASSWORD))
        .assert_refused(&two_factor("admin", "no client certificate"));
    assert_eq!(
        c.psql_admin("SELECT line_number, user_name, address FROM pg_twofactor_rules"),
        "1|{admin}|127.0.0.1"
    );
}

#[test]
fn a_host_name_rule_whose_lookup_fails_requires_its_checks() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    let c = scram_cluster("hostssl all alice .oracle.test 2f-scram-sha-256\n")
        .name_service(
            b"127.0.0.1 localhost\n::1 localhost\n127.0.0.11 caf\xe9.oracle.test\n127.0.0.8 other.example\n",
        )
        .start();
    c.create_user("alice", PASSWORD);
    // 127.0.0.7 has no name in the hosts file and DNS fails ("temporary failure"): the rule
    // cannot be decided, so its checks are required
    let mark = c.log_mark();
    rust_login(&c, &Login::new("alice", PASSWORD).from("127.0.0.7"))
        .assert_refused(&two_factor("alice", "no client certificate"));
    let log = c.log_since(mark);
    assert!(
        log.contains("Whether the rule applies cannot be decided (reverse lookup of 127.0.0.7 failed: Temporary failure in name resolution), and it refuses the login as if it applied."),
        "{log}"
    );
    // a reverse name that is not UTF-8 matches like any other
    rust_login(&c, &Login::new("alice", PASSWORD).from("127.0.0.11"))
        .assert_refused(&two_factor("alice", "no client certificate"));
    let cert = c.client_cert(
        "alice11",
        &["alice"],
        Some(&[San::Ip("127.0.0.11".parse().unwrap())]),
    );
    rust_login(
        &c,
        &Login::new("alice", PASSWORD).from("127.0.0.11").cert(&cert),
    )
    .assert_accepted_as("alice");
    // a definite answer that does not match: not covered, as in PostgreSQL
    rust_login(&c, &Login::new("alice", PASSWORD).from("127.0.0.8")).assert_accepted_as("alice");
}

#[test]
fn regular_expressions_and_include_follow_the_major() {
    let rules = "hostssl all /^adm_ all 2f-scram-sha-256\n";
    if !is_16_or_later() {
        // 15: a name starting with "/" is just a name, as in PostgreSQL 15's pg_hba.conf
        let c = scram_cluster(rules).start();
        c.create_user("adm_x", PASSWORD);
        c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
        rust_login(&c, &Login::new("adm_x", PASSWORD)).assert_accepted_as("adm_x");
        c.write_rules("include extra.conf\n");
        c.reload();
        assert_eq!(
            c.psql_admin("SELECT line_number, error FROM pg_twofactor_rules"),
            "1|invalid connection type \"include\""
        );
        return;
    }
    let c = scram_cluster(&format!(
        "{rules}include extra.conf\ninclude_if_exists none.conf\n"
    ))
    .create_rules_at(
        "extra.conf",
        "# extra\nhostssl all bob all 2f-scram-sha-256\n",
    )
    .setting("pg_twofactor.log_decisions = all")
    .start();
    for u in ["adm_x", "bob", "carol"] {
        c.create_user(u, PASSWORD);
    }
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    rust_login(&c, &Login::new("adm_x", PASSWORD))
        .assert_refused(&two_factor("adm_x", "no client certificate"));
    let mark = c.log_mark();
    rust_login(&c, &Login::new("bob", PASSWORD))
        .assert_refused(&two_factor("bob", "no client certificate"));
    let extra = c.data.join("extra.conf");
    assert!(
        c.log_since(mark).contains(&format!(
            "pg_twofactor decision: refused (no client certificate); rule {}:2;",
            extra.display()
        )),
        "{}",
        c.log_since(mark)
    );
    rust_login(&c, &Login::new("carol", PASSWORD)).assert_accepted_as("carol");
    assert_eq!(
        c.psql_admin("SELECT rule_number, file_name, line_number, user_name FROM pg_twofactor_rules ORDER BY rule_number"),
        format!(
            "1|{}|1|{{/^adm_}}\n2|{}|2|{{bob}}",
            c.data.join("pg_twofactor_hba.conf").display(),
            extra.display()
        )
    );
}

#[test]
fn an_ipv4_mapped_subnet_in_subjectaltname_matches_ipv4_clients() {
    let c = scram_cluster("hostssl all test1 all 2f-scram-sha-256\n").start();
    c.create_user("test1", PASSWORD);
    let v6 = |s: &str| s.parse().unwrap();
    let mask104 = v6("ffff:ffff:ffff:ffff:ffff:ffff:ff00:0");
    let here = c.client_cert(
        "mapped",
        &["test1"],
        Some(&[San::Subnet(v6("::ffff:127.0.0.0"), mask104)]),
    );
    rust_login(
        &c,
        &Login::new("test1", PASSWORD).from("127.0.0.2").cert(&here),
    )
    .assert_accepted_as("test1");
    let elsewhere = c.client_cert(
        "mapped10",
        &["test1"],
        Some(&[San::Subnet(v6("::ffff:10.0.0.0"), mask104)]),
    );
    rust_login(
        &c,
        &Login::new("test1", PASSWORD)
            .from("127.0.0.2")
            .cert(&elsewhere),
    )
    .assert_refused(&two_factor(
        "test1",
        "client address does not match the certificate",
    ));
}

#[test]
fn the_decision_log_says_what_was_decided_and_why() {
    // (the dry-run shadow would turn the decision log on: this scenario checks its default)
    let c = scram_cluster("hostssl all test1 127.0.0.1/32 2f-scram-sha-256\n")
        .without_dry_run_shadow()
        .start();
    for u in ["test1", "other"] {
        c.create_user(u, PASSWORD);
    }
    let hba_line = c.hba_position(2);
    let rules = c.data.join("pg_twofactor_hba.conf");
    let cert = cert_for(&c, "test1");
    let attempts = |c: &Cluster| {
        let mark = c.log_mark();
        rust_login(c, &Login::new("test1", PASSWORD))
            .assert_refused(&two_factor("test1", "no client certificate"));
        rust_login(c, &Login::new("test1", PASSWORD).cert(&cert)).assert_accepted_as("test1");
        rust_login(c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
        c.log_since(mark)
    };
    let lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter_map(|l| l.split("LOG:  ").nth(1))
            .filter(|l| l.starts_with("pg_twofactor decision"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(lines(&attempts(&c)), Vec::<String>::new(), "off by default");
    c.append_settings(&["pg_twofactor.log_decisions = refused"]);
    c.reload();
    assert_eq!(
        lines(&attempts(&c)),
        vec![format!("pg_twofactor decision: refused (no client certificate); rule {}:1; pg_hba.conf {hba_line}; user \"test1\"; database \"postgres\"; client 127.0.0.1", rules.display())]
    );
    c.append_settings(&["pg_twofactor.log_decisions = all"]);
    c.reload();
    assert_eq!(
        lines(&attempts(&c)),
        vec![
            format!("pg_twofactor decision: refused (no client certificate); rule {}:1; pg_hba.conf {hba_line}; user \"test1\"; database \"postgres\"; client 127.0.0.1", rules.display()),
            format!("pg_twofactor decision: accepted; rule {}:1; pg_hba.conf {hba_line}; user \"test1\"; database \"postgres\"; client 127.0.0.1", rules.display()),
            format!("pg_twofactor decision: not covered; rule none; pg_hba.conf {hba_line}; user \"other\"; database \"postgres\"; client 127.0.0.1"),
        ]
    );
    // checked like PostgreSQL's own settings; set in the configuration, not per session;
    // superuser-only
    let err = |user: &str, sql: &str| {
        String::from_utf8_lossy(&c.psql_admin_raw(user, sql).stderr).into_owned()
    };
    let e = err(
        "postgres",
        "ALTER SYSTEM SET pg_twofactor.log_decisions = 'sometimes'",
    );
    assert!(
        e.contains("invalid value for parameter \"pg_twofactor.log_decisions\": \"sometimes\""),
        "{e}"
    );
    let e = err("postgres", "SET pg_twofactor.log_decisions = 'off'");
    assert!(e.contains("cannot be changed now"), "{e}");
    let e = err("other", "SHOW pg_twofactor.log_decisions");
    assert!(
        e.contains("to examine \"pg_twofactor.log_decisions\""),
        "{e}"
    );
}

#[test]
fn fifos_and_devices_in_rules_are_refused_without_hanging() {
    let c = scram_cluster("hostssl all test1 all 2f-scram-sha-256\n").start();
    c.create_user("test1", PASSWORD);
    let fifo = c.data.join("names.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    for (rules, why) in [
        (
            "hostssl all @names.fifo all 2f-scram-sha-256\n",
            "not a regular file",
        ),
        (
            "hostssl all @/dev/zero all 2f-scram-sha-256\n",
            "not a regular file",
        ),
    ] {
        c.write_rules(rules);
        let mark = c.log_mark();
        c.reload();
        let log = c.log_since(mark);
        assert!(
            log.contains(why) && log.contains("the previous rules stay in force"),
            "{log}"
        );
        // the previous rules are in force and the server answers
        rust_login(&c, &Login::new("test1", PASSWORD))
            .assert_refused(&two_factor("test1", "no client certificate"));
    }
}
