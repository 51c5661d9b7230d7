//! The rules file's life cycle: startup, reload with a valid and a broken file, the
//! `pg_twofactor_rules` view, `pg_twofactor.hba_file`, preloading, and a 10,000-rule file.

use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{psql_login, rust_login, two_factor, Cluster, Login};

const BROKEN: &str = "\
hostssl all test1 all 2f-scram-sha-256
hostssl all other all scram-sha-256
host    all other all 2f-scram-sha-256
hostssl all other 10.0.0.300/32 2f-scram-sha-256
";

#[test]
fn reload_with_a_valid_file_replaces_the_rules() {
    let c = scenario::start(scenario::builder());
    let cert = scenario::cert_for(&c, "other");
    psql_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    c.write_rules("hostssl all other 127.0.0.1/32 2f-scram-sha-256\n");
    // edited, not reloaded: the old rules are still in force ...
    psql_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    // ... while the view already shows the file on disk
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    assert_eq!(
        c.psql_admin("SELECT line_number, type, database, user_name, address, netmask, auth_method, options, error FROM pg_twofactor_rules"),
        "1|hostssl|{all}|{other}|127.0.0.1|255.255.255.255|2f-scram-sha-256||"
    );
    c.reload();
    psql_login(&c, &Login::new("other", PASSWORD))
        .assert_refused(&two_factor("other", "no client certificate"));
    psql_login(&c, &Login::new("other", PASSWORD).cert(&cert)).assert_accepted_as("other");
    rust_login(&c, &Login::new("other", PASSWORD).from("127.0.0.2")).assert_accepted_as("other");
    // test1's rule is gone
    rust_login(&c, &Login::new("test1", PASSWORD)).assert_accepted_as("test1");
    assert!(c.log().contains(&format!(
        "pg_twofactor: loaded 1 rule(s) from \"{}\"",
        c.data.join("pg_twofactor_hba.conf").display()
    )));
}

#[test]
fn reload_with_a_broken_file_keeps_the_previous_rules() {
    let c = scenario::start(scenario::builder());
    let cert = scenario::cert_for(&c, "test1");
    c.write_rules(BROKEN);
    let mark = c.log_mark();
    c.reload();
    let log = c.log_since(mark);
    let file = c.data.join("pg_twofactor_hba.conf");
    let f = file.display();
    for want in [
        format!("LOG:  authentication method \"scram-sha-256\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-scram-sha-256\" (line 2 of configuration file \"{f}\")"),
        format!("LOG:  connection type \"host\" cannot carry a two-factor method; pg_twofactor rules must be hostssl (line 3 of configuration file \"{f}\")"),
        // as in pg_hba.conf: not a number for getaddrinfo, so a host name, which takes no mask
        format!("LOG:  specifying both host name and CIDR mask is invalid: \"10.0.0.300/32\" (line 4 of configuration file \"{f}\")"),
        format!("LOG:  pg_twofactor rules file \"{f}\" was not reloaded; the previous rules stay in force"),
    ] {
        assert!(log.contains(&want), "wanted {want}\nin\n{log}");
    }
    // the standard rules are still in force
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&cert)).assert_accepted_as("test1");
    rust_login(&c, &Login::new("md5user", PASSWORD))
        .assert_refused(&two_factor("md5user", "no client certificate"));
    psql_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    // the view shows each line with its error
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    let rows = c.psql_admin("SELECT line_number, coalesce(auth_method, '-'), coalesce(error, '-') FROM pg_twofactor_rules ORDER BY line_number");
    assert_eq!(
        rows,
        "1|2f-scram-sha-256|-\n\
         2|-|authentication method \"scram-sha-256\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-scram-sha-256\"\n\
         3|-|connection type \"host\" cannot carry a two-factor method; pg_twofactor rules must be hostssl\n\
         4|-|specifying both host name and CIDR mask is invalid: \"10.0.0.300/32\""
    );
    // a missing file on reload is also logged and ignored
    std::fs::remove_file(&file).unwrap();
    let mark = c.log_mark();
    c.reload();
    assert!(c
        .log_since(mark)
        .contains("could not open pg_twofactor rules file: No such file or directory"));
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    assert!(c
        .psql_admin("SELECT error FROM pg_twofactor_rules")
        .contains("could not open pg_twofactor rules file"));
}

#[test]
fn startup_with_a_broken_file_fails_naming_file_and_line() {
    let mut c = scenario::builder().rules(BROKEN).create();
    let out = c.try_start();
    assert!(
        !out.status.success(),
        "the server must not start with a broken rules file"
    );
    let log = c.log();
    let f = c.data.join("pg_twofactor_hba.conf");
    let want = format!("FATAL:  could not load pg_twofactor rules file \"{}\": authentication method \"scram-sha-256\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-scram-sha-256\" (line 2 of configuration file \"{}\")", f.display(), f.display());
    assert!(log.contains(&want), "wanted {want}\nin\n{log}");
    assert!(
        log.contains(&format!(
            "LOG:  specifying both host name and CIDR mask is invalid: \"10.0.0.300/32\" (line 4 of configuration file \"{}\")",
            f.display()
        )),
        "{log}"
    );
    assert!(
        !log.contains("database system is ready to accept connections"),
        "{log}"
    );

    // a missing file too
    std::fs::remove_file(&f).unwrap();
    let out = c.try_start();
    assert!(!out.status.success());
    assert!(c.log().contains(&format!("FATAL:  could not load pg_twofactor rules file \"{}\": could not open pg_twofactor rules file: No such file or directory", f.display())));

    // fixed: the server starts
    c.write_rules(scenario::RULES);
    let out = c.try_start();
    assert!(out.status.success(), "{}", c.log());
}

#[test]
fn hba_file_setting_resolves_relative_to_pg_hba_conf() {
    let c = scenario::start(
        scenario::builder()
            .setting("pg_twofactor.hba_file = 'twofactor/rules.conf'")
            .create_rules_at(
                "twofactor/rules.conf",
                "hostssl all other all 2f-scram-sha-256\n",
            ),
    );
    psql_login(&c, &Login::new("other", PASSWORD))
        .assert_refused(&two_factor("other", "no client certificate"));
    // the default file exists too but is not used
    rust_login(&c, &Login::new("test1", PASSWORD)).assert_accepted_as("test1");
    // an absolute path, switched on reload
    let abs = c.root.join("elsewhere.conf");
    std::fs::write(&abs, "hostssl all test1 all 2f-scram-sha-256\n").unwrap();
    c.append_settings(&[&format!("pg_twofactor.hba_file = '{}'", abs.display())]);
    c.reload();
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    psql_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    assert_eq!(
        c.psql_admin("SHOW pg_twofactor.hba_file"),
        abs.display().to_string()
    );
    // an empty file name is refused by the setting's check
    let out = c.psql_admin_raw("postgres", "ALTER SYSTEM SET pg_twofactor.hba_file = ' '");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value for parameter \"pg_twofactor.hba_file\": \" \""),
        "{err}"
    );
    assert!(
        err.contains("The rules file name must not be empty."),
        "{err}"
    );
}

#[test]
fn ten_thousand_rules() {
    let rules = scenario::synthetic_rules(10_000, "test1");
    let c = scenario::start(scenario::builder().rules(&rules));
    assert!(c.log().contains("pg_twofactor: loaded 10000 rule(s)"));
    let cert = scenario::cert_for(&c, "test1");
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    rust_login(&c, &Login::new("test1", PASSWORD).cert(&cert)).assert_accepted_as("test1");
    rust_login(&c, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    assert_eq!(
        c.psql_admin("SELECT count(*), count(error) FROM pg_twofactor_rules"),
        "10000|0"
    );
}

#[test]
fn the_view_is_for_superusers_like_pg_hba_file_rules() {
    let c = scenario::start(scenario::builder());
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    let out = c.psql_admin_raw("other", "SELECT count(*) FROM pg_twofactor_rules");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.psql_admin_raw("other", "SELECT count(*) FROM pg_twofactor_rules()");
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    // pg_read_all_settings does not make it readable (it would show every exemption)
    c.psql_admin("GRANT pg_read_all_settings TO other");
    let out = c.psql_admin_raw("other", "SELECT count(*) FROM pg_twofactor_rules");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    // a DBA may grant it, as pg_hba_file_rules
    c.psql_admin(
        "GRANT SELECT ON pg_twofactor_rules TO other; GRANT EXECUTE ON FUNCTION pg_twofactor_rules() TO other",
    );
    let out = c.psql_admin_raw("other", "SELECT count(*) FROM pg_twofactor_rules");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "5",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.psql_admin(
            "SELECT line_number, options FROM pg_twofactor_rules WHERE user_name = '{sanreq}'"
        ),
        "5|{san=required}"
    );
}

#[test]
fn without_preloading_load_and_create_extension_fail_clearly() {
    let c = Cluster::builder()
        .without_preload()
        .hba("hostssl all all all scram-sha-256")
        .start();
    for sql in ["LOAD 'pg_twofactor'", "CREATE EXTENSION pg_twofactor"] {
        let out = c.psql_admin_raw("postgres", sql);
        assert!(!out.status.success(), "{sql} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("ERROR:  pg_twofactor must be loaded via shared_preload_libraries"),
            "{sql}: {err}"
        );
        assert!(err.contains("HINT:  Add pg_twofactor to shared_preload_libraries in postgresql.conf and restart the server."), "{err}");
    }
    // the server is unaffected
    assert_eq!(c.psql_admin("SELECT 1"), "1");
}
