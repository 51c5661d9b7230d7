//! Least privilege and robustness of the SQL surface: what each predefined role may read
//! (the rules and the dry run are superuser-only, like `pg_hba_file_rules`), the parallel
//! labels, and SQL calls with oversized or malformed arguments, and under a memory limit, that
//! give an ERROR and never take the server down.

use pg_twofactor_e2e::cluster::{address_space_of, set_address_space_limit};
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{rust_login, two_factor, Cluster, Login};

/// Each object of the extension, as a query that reads it.
const OBJECTS: &[(&str, &str)] = &[
    ("rules", "SELECT count(*) FROM pg_twofactor_rules"),
    (
        "check",
        "SELECT count(*) FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL)",
    ),
    ("status", "SELECT count(*) FROM pg_twofactor_status()"),
    ("stats", "SELECT count(*) FROM pg_twofactor_stats"),
    (
        "certificates",
        "SELECT count(*) FROM pg_twofactor_certificates",
    ),
    (
        "config_problems",
        "SELECT count(*) FROM pg_twofactor_config_problems",
    ),
    ("stats_reset", "SELECT pg_twofactor_stats_reset()"),
    ("library_version", "SELECT pg_twofactor_library_version()"),
    // PostgreSQL's own, for comparison
    (
        "pg_hba_file_rules",
        "SELECT count(*) FROM pg_hba_file_rules",
    ),
];

/// Which of [`OBJECTS`] `role` may read: "name" when it may, "-name" when refused with
/// "permission denied".
fn readable(c: &Cluster, role: &str) -> Vec<String> {
    OBJECTS
        .iter()
        .map(|(name, sql)| {
            let out = c.psql_admin_raw(role, sql);
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                name.to_string()
            } else {
                assert!(err.contains("permission denied"), "{role}: {sql}: {err}");
                format!("-{name}")
            }
        })
        .collect()
}

#[test]
fn each_predefined_role_reads_what_postgresql_would_let_it() {
    let c = scenario::start(scenario::builder());
    c.psql_admin("CREATE EXTENSION pg_twofactor");
    for (role, member_of) in [
        ("plain", None),
        ("settings", Some("pg_read_all_settings")),
        ("stats", Some("pg_read_all_stats")),
        ("monitor", Some("pg_monitor")),
    ] {
        c.psql_admin(&format!("CREATE ROLE {role} LOGIN"));
        if let Some(r) = member_of {
            c.psql_admin(&format!("GRANT {r} TO {role}"));
        }
    }
    let expect = |allowed: &[&str]| -> Vec<String> {
        OBJECTS
            .iter()
            .map(|(n, _)| {
                if allowed.contains(n) {
                    n.to_string()
                } else {
                    format!("-{n}")
                }
            })
            .collect()
    };
    // The rules (where the second factor is not needed, above all) and the dry run are
    // superuser-only like pg_hba_file_rules; the status and the statistics name no rule's
    // content; resetting the statistics and the configuration check are the superuser's; the
    // library's version is everyone's, as version() is.
    assert_eq!(readable(&c, "plain"), expect(&["library_version"]));
    assert_eq!(
        readable(&c, "settings"),
        expect(&["status", "library_version"])
    );
    assert_eq!(
        readable(&c, "stats"),
        expect(&["stats", "certificates", "library_version"])
    );
    assert_eq!(
        readable(&c, "monitor"),
        expect(&["status", "stats", "certificates", "library_version"])
    );
    assert_eq!(
        readable(&c, "postgres"),
        OBJECTS
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
    );
    // a DBA may grant the rules and the dry run, as for pg_hba_file_rules
    c.psql_admin(
        "GRANT SELECT ON pg_twofactor_rules TO monitor; \
         GRANT EXECUTE ON FUNCTION pg_twofactor_rules() TO monitor; \
         GRANT EXECUTE ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean) TO monitor",
    );
    assert_eq!(
        readable(&c, "monitor"),
        expect(&[
            "rules",
            "check",
            "status",
            "stats",
            "certificates",
            "library_version"
        ])
    );

    // parallel labels: what reads this session's rules in force runs in the leader only, and
    // what writes shared memory never in parallel
    assert_eq!(
        c.psql_admin(
            "SELECT string_agg(proname || '=' || proparallel::text, ' ' ORDER BY proname) FROM pg_proc \
             WHERE proname LIKE 'pg\\_twofactor\\_%'"
        ),
        "pg_twofactor_certificates=s pg_twofactor_check=r pg_twofactor_config_problems=r \
         pg_twofactor_library_version=s pg_twofactor_rules=s pg_twofactor_stats=s pg_twofactor_stats_reset=u pg_twofactor_status=r"
    );
}

/// Nothing a monitoring role reads tells whether a password was right, or quotes the rules:
/// a refusal is counted, and a certificate's use recorded, whether or not the password was right
/// (the certificates and statistics views of `pg_read_all_stats`), and the rules file's errors,
/// which quote its lines, reach `pg_read_all_settings` as a count only.
#[test]
fn no_non_superuser_surface_tells_a_right_password_or_quotes_the_rules() {
    use pg_twofactor_e2e::San;
    let c = scenario::start(scenario::builder());
    c.psql_admin("CREATE EXTENSION pg_twofactor");
    c.psql_admin("CREATE ROLE stats LOGIN; GRANT pg_read_all_stats TO stats");
    c.psql_admin("CREATE ROLE settings LOGIN; GRANT pg_read_all_settings TO settings");
    let here = [San::Ip("127.0.0.1".parse().unwrap())];
    // two certificates for someone else, each tried for test1: one with test1's password,
    // one with a wrong one; both are refused
    let right = c.pki.client("right-pw", &["mallory-right"], Some(&here));
    let wrong = c.pki.client("wrong-pw", &["mallory-wrong"], Some(&here));
    c.psql_admin("SELECT pg_twofactor_stats_reset()");
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&right)).assert_refused(&two_factor(
        "test1",
        "certificate CN does not match the user name",
    ));
    rust_login(&c, &Login::new("test1", "not-the-password").cert(&wrong))
        .assert_refused_with("28P01", "password authentication failed for user \"test1\"");
    let seen = |cn: &str| {
        let out = c.psql_admin_raw(
            "stats",
            &format!(
                "SELECT last_user, last_client_addr, last_accepted IS NULL, logins \
                 FROM pg_twofactor_certificates WHERE common_name = '{cn}'"
            ),
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        seen("mallory-right"),
        "test1|127.0.0.1|t|1",
        "{}\n{}",
        c.psql_admin("SELECT * FROM pg_twofactor_certificates"),
        c.log()
    );
    assert_eq!(
        seen("mallory-wrong"),
        seen("mallory-right"),
        "{}\n{}",
        c.psql_admin("SELECT * FROM pg_twofactor_certificates"),
        c.log()
    );
    let refused = c.psql_admin_raw(
        "stats",
        "SELECT refused, accepted FROM pg_twofactor_stats \
         WHERE reason = 'certificate CN does not match the user name'",
    );
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout).trim(),
        "2|0",
        "{refused:?}"
    );

    // a rules file that fails to reload: its error quotes a line
    c.write_rules(
        "hostssl all test1 all 2f-scram-sha-256\nhostssl secret_db_name all all 2f-nonsense\n",
    );
    c.reload();
    let status = |role: &str| {
        let out = c.psql_admin_raw(
            role,
            "SELECT coalesce(file_error, '') || ' | ' || coalesce(last_reload_error, '') FROM pg_twofactor_status()",
        );
        assert!(out.status.success(), "{role}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let superuser = status("postgres");
    assert!(superuser.contains("2f-nonsense"), "{superuser}");
    let monitor = status("settings");
    assert!(
        !monitor.contains("secret_db_name") && !monitor.contains("2f-nonsense"),
        "{monitor}"
    );
    assert_eq!(
        monitor,
        "1 error in the rules file (their text quotes the rules: pg_twofactor_rules shows it to roles allowed to read the rules) | \
         1 error in the rules file (their text quotes the rules: pg_twofactor_rules shows it to roles allowed to read the rules)"
    );
    // a role the DBA lets read the rules reads their errors too
    c.psql_admin("GRANT EXECUTE ON FUNCTION pg_twofactor_rules() TO settings");
    assert_eq!(status("settings"), superuser);
}

/// Runs `sql` as the superuser; the ERROR it must end with.
fn error_of(c: &Cluster, sql: &str) -> String {
    let out = c.psql_admin_raw("postgres", sql);
    assert!(!out.status.success(), "{sql} succeeded");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn oversized_and_malformed_sql_arguments_are_errors_and_the_server_never_restarts() {
    // (the memory limit below is set as the cluster's OS user)
    if !pg_twofactor_e2e::cluster::can_run_as_root("limiting the server's memory needs root") {
        return;
    }
    let c = scenario::start(scenario::builder());
    c.psql_admin("CREATE EXTENSION pg_twofactor");
    let pid = c.postmaster_pid();
    let long = "x".repeat(64);
    // a 1 MB certificate, made by the server (a command line cannot carry it)
    let huge = "E'-----BEGIN CERTIFICATE-----\\n' || repeat('QUFB', 262144) || E'\\n-----END CERTIFICATE-----\\n'";
    let huge_len =
        "-----BEGIN CERTIFICATE-----\n".len() + 4 * 262144 + "\n-----END CERTIFICATE-----\n".len();
    // the sizes a login could have, and no more
    for (sql, error) in [
        (
            format!("SELECT * FROM pg_twofactor_check('{long}', 'postgres', '127.0.0.1', NULL)"),
            "ERROR:  user_name is 64 bytes long, more than the 63 bytes PostgreSQL keeps of a user name".to_string(),
        ),
        (
            format!("SELECT * FROM pg_twofactor_check('test1', '{long}', '127.0.0.1', NULL)"),
            "ERROR:  database is 64 bytes long, more than the 63 bytes PostgreSQL keeps of a database name".into(),
        ),
        (
            format!("SELECT * FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL, '{long}')"),
            "ERROR:  hba_method is 64 bytes long, more than the 32 bytes of any authentication method name".into(),
        ),
        (
            format!("SELECT * FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', {huge})"),
            format!("ERROR:  client_cert is {huge_len} bytes long, more than the 138797 bytes of a certificate a TLS client can send (OpenSSL's 100 kB limit, in PEM)"),
        ),
        (
            "SELECT * FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', 'junk')".into(),
            "ERROR:  client_cert is not a PEM certificate".into(),
        ),
    ] {
        let e = error_of(&c, &sql);
        assert!(e.starts_with(&error), "{e}\nexpected {error}");
    }
    // a PEM certificate that is not DER: the dry run says a login with it is refused
    assert_eq!(
        c.psql_admin(
            "SELECT verdict || ' ' || reason FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', \
             E'-----BEGIN CERTIFICATE-----\\nQUFBQUFB\\n-----END CERTIFICATE-----\\n')"
        ),
        "refused internal error"
    );

    // Under a memory limit (24 MB beyond the postmaster's size, inherited by every backend
    // forked from now on) the dry run finds that it could not get the memory it may need and
    // says so; nothing aborts.
    set_address_space_limit(pid, Some(address_space_of(pid) + 24 * 1024 * 1024));
    let e = error_of(
        &c,
        "SELECT * FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL)",
    );
    assert!(
        e.starts_with("ERROR:  not enough memory for the dry run: it needs up to 32 MB"),
        "{e}"
    );
    for (_, sql) in OBJECTS {
        // each either answers or fails with an ERROR: the server stays up
        let out = c.psql_admin_raw("postgres", sql);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || err.contains("ERROR:"),
            "{sql}: {err}"
        );
    }
    set_address_space_limit(pid, None);
    assert_eq!(c.postmaster_pid(), pid);
    let log = c.log();
    assert!(!log.contains("terminated by signal"), "{log}");
    assert!(!log.contains("was terminated"), "{log}");
    assert!(!log.contains("all server processes terminated"), "{log}");
    // and logins go on
    let good = scenario::cert_for(&c, "test1");
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&good)).assert_accepted_as("test1");
}
