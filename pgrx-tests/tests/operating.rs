//! Operating pg_twofactor: staged rollout (`mode=report`, `2f-exempt`), the dry run
//! (`pg_twofactor_check`) against the hook's own decisions, and `pg_twofactor_status()`.

use pg_twofactor_e2e::certs::{CertFiles, San};
use pg_twofactor_e2e::client::{psql_run, rust_login, two_factor, Login, Outcome};
use pg_twofactor_e2e::cluster::Cluster;
use pg_twofactor_e2e::scenario::{self, PASSWORD};

/// The scenario rules, with a report-mode rule, an exemption above a catch-all rule, a DNS
/// and a subnet user; every decision logged.
const RULES: &str = "\
hostssl all      md5user   all           2f-md5
hostssl all      pwuser    all           2f-password
hostssl all      mismatch  all           2f-scram-sha-256
hostssl all      sanreq    all           2f-scram-sha-256  san=required
hostssl all      test1     all           2f-scram-sha-256
hostssl all      trial,trial2  all       2f-scram-sha-256  mode=report
hostssl all      all       127.0.0.2/32  2f-exempt
hostssl all      other,trial2  all       2f-scram-sha-256
";

fn cluster() -> Cluster {
    let c = scenario::start(
        scenario::builder()
            .rules(RULES)
            .setting("pg_twofactor.log_decisions = all"),
    );
    c.create_user("trial", PASSWORD);
    c.create_user("trial2", PASSWORD);
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    c
}

fn ip(a: &str) -> San {
    San::Ip(a.parse().unwrap())
}

/// The dry run's rows for a login, in the decision log's words: (verdict with reason, rule,
/// detail) per row (a report-mode rule's finding first).
fn dry_run(c: &Cluster, login: &Login, hba_method: &str) -> Vec<(String, String, String)> {
    let pem = login
        .cert
        .as_ref()
        .map(|f| format!("$pem${}$pem$", std::fs::read_to_string(&f.cert).unwrap()))
        .unwrap_or_else(|| "NULL".into());
    let source = login
        .source
        .map_or("127.0.0.1".to_string(), |a| a.to_string());
    let rows = c.psql_admin(&format!(
        "SELECT verdict || coalesce(' (' || reason || ')', ''), coalesce(rule_file || ':' || rule_line, 'none'), coalesce(detail, '') \
         FROM pg_twofactor_check('{}', '{}', '{source}', {pem}, '{hba_method}')",
        login.user, login.dbname
    ));
    rows.lines()
        .map(|row| {
            let mut cols = row.splitn(3, '|').map(str::to_string);
            (
                cols.next().unwrap(),
                cols.next().unwrap(),
                cols.next().unwrap(),
            )
        })
        .collect()
}

/// The hook's decision lines for the one login of `user` after `mark`: (outcome, rule) each,
/// and the DETAIL lines of its refusal or warnings, in order.
fn hook_decisions(c: &Cluster, mark: usize, user: &str) -> (Vec<(String, String)>, Vec<String>) {
    let log = c.log_since(mark);
    let who = format!("; user \"{user}\";");
    let decisions = log
        .lines()
        .filter_map(|l| l.split_once("pg_twofactor decision: ").map(|(_, d)| d))
        .filter(|d| d.contains(&who))
        .map(|d| {
            let (outcome, rest) = d.split_once("; rule ").unwrap();
            let rule = rest.split_once("; pg_hba.conf").unwrap().0;
            (outcome.to_string(), rule.to_string())
        })
        .collect();
    let mut details = Vec::new();
    let mut after_refusal = false;
    for l in log.lines() {
        if l.contains("two-factor authentication failed") {
            after_refusal = true;
        } else if after_refusal {
            if let Some((_, d)) = l.split_once("DETAIL:  ") {
                details.push(d.to_string());
            }
            after_refusal = false;
        }
    }
    (decisions, details)
}

/// A detail without its pg_hba.conf position (the dry run chooses no pg_hba.conf line).
fn without_hba_position(detail: &str) -> String {
    match (
        detail.find("; pg_hba.conf "),
        detail.find("; client address"),
    ) {
        (Some(a), Some(b)) => {
            let method = &detail[a..b];
            let method = &method[method.rfind(" (").unwrap_or(0)..];
            format!("{}; pg_hba.conf{method}{}", &detail[..a], &detail[b..])
        }
        _ => detail.to_string(),
    }
}

#[test]
fn dry_run_agrees_with_the_hook_on_every_kind_of_login() {
    let c = cluster();
    let here = [ip("127.0.0.1")];
    let cert = |stem: &str, cns: &[&str], san: Option<&[San]>| c.client_cert(stem, cns, san);
    let test1 = cert("test1", &["test1"], Some(&here));
    let dns = cert(
        "test1-dns",
        &["test1"],
        Some(&[San::Dns("localhost".into())]),
    );
    let subnet = cert(
        "test1-net",
        &["test1"],
        Some(&[San::Subnet(
            "127.0.0.0".parse().unwrap(),
            "255.0.0.0".parse().unwrap(),
        )]),
    );
    let elsewhere = cert("test1-away", &["test1"], Some(&[ip("10.9.9.9")]));
    let nobody = cert("nobody", &["nobody"], Some(&here));
    let no_san = cert("sanreq", &["sanreq"], None);
    let md5user = cert("md5user", &["md5user"], Some(&here));
    let mismatch = cert("mismatch", &["mismatch"], Some(&here));
    let other = cert("other", &["other"], Some(&here));
    let trial = cert("trial", &["trial"], Some(&here));
    let l = |user: &str| Login::new(user, PASSWORD);
    // (login, pg_hba.conf method PostgreSQL uses for it, expected outcome as logged)
    let cases: Vec<(Login, &str, &str)> = vec![
        (l("test1").cert(&test1), "scram-sha-256", "accepted"),
        (l("test1").cert(&dns), "scram-sha-256", "accepted"),
        (
            l("test1").cert(&subnet).from("127.0.0.5"),
            "scram-sha-256",
            "accepted",
        ),
        (
            l("test1"),
            "scram-sha-256",
            "refused (no client certificate)",
        ),
        (
            l("test1").cert(&nobody),
            "scram-sha-256",
            "refused (certificate CN does not match the user name)",
        ),
        (
            l("test1").cert(&test1).from("127.0.0.3"),
            "scram-sha-256",
            "refused (client address does not match the certificate)",
        ),
        (
            l("test1").cert(&elsewhere),
            "scram-sha-256",
            "refused (client address does not match the certificate)",
        ),
        (
            l("sanreq").cert(&no_san),
            "scram-sha-256",
            "refused (client address does not match the certificate)",
        ),
        (
            l("md5user").cert(&md5user),
            "md5",
            "refused (method not enabled)",
        ),
        (
            l("mismatch").cert(&mismatch),
            "md5",
            "refused (pg_hba.conf method does not match the rule)",
        ),
        (
            l("trial"),
            "scram-sha-256",
            "reported (no client certificate) + not covered",
        ),
        (
            l("trial").cert(&trial),
            "scram-sha-256",
            "accepted + not covered",
        ),
        (
            l("trial2"),
            "scram-sha-256",
            "reported (no client certificate) + refused (no client certificate)",
        ),
        (l("other").from("127.0.0.2"), "scram-sha-256", "exempt"),
        (l("other").cert(&other), "scram-sha-256", "accepted"),
        (
            l("other"),
            "scram-sha-256",
            "refused (no client certificate)",
        ),
    ];
    for (login, hba_method, expected) in cases {
        let mark = c.log_mark();
        let outcome = rust_login(&c, &login);
        let (hook, hook_details) = hook_decisions(&c, mark, &login.user);
        let dry = dry_run(&c, &login, hba_method);
        let what = format!(
            "{} with {:?} from {:?}",
            login.user,
            login.cert.as_ref().map(|f: &CertFiles| &f.cert),
            login.source
        );
        let joined = hook
            .iter()
            .map(|(o, _)| o.as_str())
            .collect::<Vec<_>>()
            .join(" + ");
        assert_eq!(joined, expected, "hook, {what}");
        assert_eq!(
            dry.iter()
                .map(|(v, r, _)| (v.clone(), r.clone()))
                .collect::<Vec<_>>(),
            hook,
            "dry run vs hook, {what}"
        );
        // the DETAIL of each refusal or warning is the dry run's, but for the pg_hba.conf line
        let dry_details: Vec<String> = dry
            .iter()
            .filter(|(v, _, _)| v.starts_with("refused") || v.starts_with("reported"))
            .map(|(_, _, d)| without_hba_position(d))
            .collect();
        let hook_details: Vec<String> = hook_details
            .iter()
            .map(|d| without_hba_position(d))
            .collect();
        assert_eq!(dry_details, hook_details, "details, {what}");
        // and the client saw what the hook decided
        let last = hook
            .last()
            .unwrap()
            .0
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        match (last.as_str(), &outcome) {
            ("accepted" | "not" | "exempt", o) => o.assert_accepted_as(&login.user),
            ("refused", Outcome::Refused { .. }) => {}
            (_, o) => panic!("{what}: {hook:?} but the client saw {o:?}"),
        }
    }
}

#[test]
fn report_mode_logs_a_warning_and_lets_the_login_in() {
    let c = cluster();
    let mark = c.log_mark();
    rust_login(&c, &Login::new("trial", PASSWORD)).assert_accepted_as("trial");
    let log = c.log_since(mark);
    assert!(
        log.contains(&format!(
            "WARNING:  {} (mode=report: not enforced)",
            two_factor("trial", "no client certificate")
        )),
        "{log}"
    );
    assert!(
        log.contains("DETAIL:  Rule ") && log.contains("The client sent no certificate."),
        "{log}"
    );
    // an enforcing rule for the same kind of login still refuses
    rust_login(&c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    // and a report rule above an enforcing rule does not switch it off: the report rule's
    // finding is logged, the enforcing rule below decides
    let mark = c.log_mark();
    rust_login(&c, &Login::new("trial2", PASSWORD))
        .assert_refused(&two_factor("trial2", "no client certificate"));
    let log = c.log_since(mark);
    assert!(
        log.contains("WARNING:  two-factor authentication failed for user \"trial2\": no client certificate (mode=report: not enforced)")
            && log.contains("FATAL:  two-factor authentication failed for user \"trial2\": no client certificate"),
        "{log}"
    );
    // the rules view shows each rule's mode; an exemption has none
    assert_eq!(
        c.psql_admin("SELECT line_number || ' ' || auth_method || ' ' || coalesce(mode, '-') FROM pg_twofactor_rules WHERE line_number >= 5"),
        "5 2f-scram-sha-256 enforce\n6 2f-scram-sha-256 report\n7 2f-exempt -\n8 2f-scram-sha-256 enforce"
    );
}

#[test]
fn dry_run_arguments_and_permissions() {
    let c = cluster();
    let err = |sql: &str| {
        let out = c.psql_admin_raw("postgres", sql);
        assert!(!out.status.success(), "{sql} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err(
        "SELECT * FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL, 'scram')"
    )
    .contains("ERROR:  unrecognized pg_hba.conf authentication method \"scram\""));
    assert!(err(
        "SELECT * FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', 'not a certificate')"
    )
    .contains("ERROR:  client_cert is not a PEM certificate"));
    // a Unix-socket login (no address) is never covered
    assert_eq!(
        c.psql_admin("SELECT verdict FROM pg_twofactor_check('test1', 'postgres', NULL, NULL)"),
        "not covered"
    );
    // without TLS a covered login is refused, as the hook refuses it
    assert_eq!(
        c.psql_admin("SELECT verdict || ': ' || reason FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL, ssl => false)"),
        "refused: no client certificate"
    );
    // superusers only, like pg_hba_file_rules (pg_read_all_settings may read the status)
    c.psql_admin("CREATE ROLE plain LOGIN; CREATE ROLE reader LOGIN IN ROLE pg_read_all_settings");
    let out = c.psql_admin_raw(
        "plain",
        "SELECT * FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL)",
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("permission denied for function pg_twofactor_check"));
    let out = c.psql_admin_raw("plain", "SELECT * FROM pg_twofactor_status()");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("permission denied for function pg_twofactor_status"));
    let check = "SELECT verdict FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL)";
    let out = c.psql_admin_raw("reader", check);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("permission denied for function pg_twofactor_check"),
        "{out:?}"
    );
    let out = c.psql_admin_raw(
        "reader",
        "SELECT rules_loaded > 0 FROM pg_twofactor_status()",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t", "{out:?}");
    // a DBA may grant it
    c.psql_admin("GRANT EXECUTE ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean) TO reader");
    let out = c.psql_admin_raw("reader", check);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused",
        "{out:?}"
    );
}

#[test]
fn status_shows_rules_in_force_pending_reloads_and_failed_reloads() {
    let c = cluster();
    let status = |cols: &str| c.psql_admin(&format!("SELECT {cols} FROM pg_twofactor_status()"));
    assert_eq!(
        status("rules_loaded, reload_pending, file_error IS NULL, last_reload_error IS NULL, session_rules_current, ssl, ssl_ca_file, enabled_methods"),
        "8|f|t|t|t|t|root.crt|{2f-scram-sha-256,2f-ldap}"
    );
    assert_eq!(
        status("rules_file"),
        c.data.join("pg_twofactor_hba.conf").display().to_string()
    );
    // an edit not yet reloaded
    c.write_rules(&format!("{RULES}hostssl all late all 2f-scram-sha-256\n"));
    assert_eq!(status("rules_loaded, reload_pending"), "8|t");
    c.reload();
    assert_eq!(status("rules_loaded, reload_pending"), "9|f");
    // a comment-only edit enforces nothing new
    c.write_rules(&format!(
        "# reviewed\n{RULES}hostssl all late all 2f-scram-sha-256\n"
    ));
    assert_eq!(
        status("reload_pending"),
        "t",
        "the lines moved, so the rules' positions changed"
    );
    c.reload();
    // a broken file: shown before the reload, and the failed reload afterwards
    c.write_rules("hostssl all all all 2f-nothing\n");
    let e = status("reload_pending, file_error");
    assert!(
        e.starts_with("t|invalid authentication method \"2f-nothing\""),
        "{e}"
    );
    c.reload();
    let e = status("rules_loaded, last_reload_error, last_reload_error_at IS NOT NULL");
    assert!(
        e.starts_with("9|invalid authentication method \"2f-nothing\""),
        "{e}"
    );
    assert!(e.ends_with("|t"), "{e}");
    // fixing it clears the error
    c.write_rules(RULES);
    c.reload();
    assert_eq!(
        status("rules_loaded, reload_pending, last_reload_error IS NULL"),
        "8|f|t"
    );
}

#[test]
fn a_session_older_than_the_last_reload_says_so() {
    let c = cluster();
    c.write_rules(&format!("hostssl all late all 2f-exempt\n{RULES}"));
    // one session: reload, wait (bounded) until the postmaster has loaded the new rules, then ask
    let out = c.psql_admin_raw(
        "postgres",
        "SELECT pg_reload_conf();
         DO $$ BEGIN
           FOR i IN 1..600 LOOP
             EXIT WHEN (SELECT rules_loaded FROM pg_twofactor_status()) = 9;
             PERFORM pg_sleep(0.05);
           END LOOP;
         END $$;
         SELECT 'current=' || session_rules_current FROM pg_twofactor_status();
         SELECT * FROM pg_twofactor_check('late', 'postgres', '127.0.0.1', NULL);",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("current=false"), "{stdout}{stderr}");
    assert!(
        stderr.contains("ERROR:  this session started before the rules file was last reloaded"),
        "{stderr}"
    );
    // a new session has the new rules
    assert_eq!(
        c.psql_admin("SELECT verdict || ' ' || rule_line FROM pg_twofactor_check('late', 'postgres', '127.0.0.1', NULL)"),
        "exempt 1"
    );
}

#[test]
fn statistics_count_every_connection_under_parallel_logins() {
    let c = cluster();
    let test1 = scenario::cert_for(&c, "test1");
    let nobody = c.client_cert("nobody", &["nobody"], Some(&[ip("127.0.0.1")]));
    c.psql_admin("SELECT pg_twofactor_stats_reset()");
    let l = |user: &str| Login::new(user, PASSWORD);
    // each kind of login and what it must get: a session as that user, or exactly that refusal
    let kinds: Vec<(Login, Result<&str, String>)> = vec![
        (l("test1").cert(&test1), Ok("test1")),
        (
            l("test1"),
            Err(two_factor("test1", "no client certificate")),
        ),
        (
            l("test1").cert(&nobody),
            Err(two_factor(
                "test1",
                "certificate CN does not match the user name",
            )),
        ),
        (l("trial"), Ok("trial")),
        (l("other").from("127.0.0.2"), Ok("other")),
    ];
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 10;
    let seen: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let mut outcomes = Vec::new();
                    for _ in 0..ROUNDS {
                        for (login, _) in &kinds {
                            outcomes.push(rust_login(&c, login));
                        }
                    }
                    outcomes
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    // every client saw the expected outcome, refusals with their reason
    for outcomes in &seen {
        for (i, o) in outcomes.iter().enumerate() {
            match &kinds[i % kinds.len()].1 {
                Ok(user) => o.assert_accepted_as(user),
                Err(message) => o.assert_refused(message),
            }
        }
    }
    let n = CLIENTS * ROUNDS;
    let stats = c.psql_admin(
        "SELECT rule_line, coalesce(reason, '-'), checked, accepted, refused, reported, exempted \
         FROM pg_twofactor_stats WHERE rule_file IS NOT NULL ORDER BY 1, 2",
    );
    let want = [
        format!("5|-|{}|{n}|{}|0|0", 3 * n, 2 * n),
        format!("5|certificate CN does not match the user name|{n}|0|{n}|0|0"),
        format!("5|no client certificate|{n}|0|{n}|0|0"),
        format!("6|-|{n}|0|0|{n}|0"),
        format!("6|no client certificate|{n}|0|0|{n}|0"),
        format!("7|-|{n}|0|0|0|{n}"),
    ];
    assert_eq!(stats, want.join("\n"));
    assert_eq!(
        c.psql_admin("SELECT count(*) FROM pg_twofactor_stats WHERE rule_file IS NOT NULL AND (last_checked IS NULL OR stats_reset IS NULL)"),
        "0"
    );
    // a rule whose line changes starts again; the others keep counting
    c.write_rules(&RULES.replace(
        "test1     all           2f-scram-sha-256",
        "test1     all           2f-scram-sha-256  san=optional",
    ));
    c.reload();
    rust_login(&c, &l("test1").cert(&test1)).assert_accepted_as("test1");
    rust_login(&c, &l("trial")).assert_accepted_as("trial");
    assert_eq!(
        c.psql_admin("SELECT rule_line || ':' || checked FROM pg_twofactor_stats WHERE rule_file IS NOT NULL AND reason IS NULL ORDER BY 1"),
        format!("5:1\n6:{}\n7:{n}", n + 1)
    );
    // reset
    c.psql_admin("SELECT pg_twofactor_stats_reset()");
    assert_eq!(
        c.psql_admin("SELECT count(*) FROM pg_twofactor_stats WHERE rule_file IS NOT NULL"),
        "0"
    );
    // who may read and reset
    c.psql_admin("CREATE ROLE plain LOGIN; CREATE ROLE monitor LOGIN IN ROLE pg_read_all_stats");
    let out = c.psql_admin_raw("plain", "SELECT * FROM pg_twofactor_stats");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    let out = c.psql_admin_raw("monitor", "SELECT count(*) FROM pg_twofactor_certificates");
    assert!(out.status.success(), "{out:?}");
    let out = c.psql_admin_raw("monitor", "SELECT pg_twofactor_stats_reset()");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
}

#[test]
fn certificates_seen_and_expiry_warnings() {
    let c = cluster();
    let here = [ip("127.0.0.1")];
    let soon = c
        .pki
        .client_valid_for("test1-soon", "test1", Some(&here), 3);
    let later = scenario::cert_for(&c, "test1");
    let mark = c.log_mark();
    let run = psql_run(&c, &Login::new("test1", PASSWORD).cert(&soon));
    assert!(run.success, "{run:?}");
    assert!(
        run.stderr
            .contains("NOTICE:  your client certificate expires on ")
            && run.stderr.contains(" days)")
            && run
                .stderr
                .contains("HINT:  Ask for a new client certificate before this one expires."),
        "{run:?}"
    );
    let log = c.log_since(mark);
    assert!(
        log.contains("WARNING:  client certificate of user \"test1\" expires on ")
            && log.contains("pg_twofactor.expiry_warning is 14 day(s)."),
        "{log}"
    );
    // a certificate valid for longer: no notice
    let run = psql_run(&c, &Login::new("test1", PASSWORD).cert(&later));
    assert!(run.success && !run.stderr.contains("NOTICE"), "{run:?}");
    // a refused login gets no notice (it gets its refusal, with its reason)
    let run = psql_run(&c, &Login::new("other", PASSWORD).cert(&soon));
    assert!(
        !run.success
            && run.stderr.contains(&two_factor(
                "other",
                "certificate CN does not match the user name"
            ))
            && !run.stderr.contains("NOTICE"),
        "{run:?}"
    );

    // the view: soonest expiry first, with what the last login showed
    let serial = |f: &CertFiles| {
        openssl::x509::X509::from_pem(&std::fs::read(&f.cert).unwrap())
            .unwrap()
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_string()
    };
    let rows = c.psql_admin(
        "SELECT common_name, serial, days_left, subject_alt_name, last_user, last_client_addr, logins, last_accepted IS NOT NULL \
         FROM pg_twofactor_certificates",
    );
    assert_eq!(
        rows,
        format!(
            "test1|{}|2|IP:127.0.0.1|other|127.0.0.1|2|t\ntest1|{}|29|IP:127.0.0.1|test1|127.0.0.1|1|t",
            serial(&soon),
            serial(&later)
        )
    );
    assert!(c
        .psql_admin("SELECT issuer FROM pg_twofactor_certificates LIMIT 1")
        .contains("CN="));

    // expiry_warning = 0 turns it off
    c.append_settings(&["pg_twofactor.expiry_warning = 0"]);
    c.reload();
    let run = psql_run(&c, &Login::new("test1", PASSWORD).cert(&soon));
    assert!(run.success && !run.stderr.contains("NOTICE"), "{run:?}");
    // and units as PostgreSQL spells them
    c.append_settings(&["pg_twofactor.expiry_warning = '5d'"]);
    c.reload();
    assert_eq!(c.psql_admin("SHOW pg_twofactor.expiry_warning"), "5d");
    let run = psql_run(&c, &Login::new("test1", PASSWORD).cert(&soon));
    assert!(
        run.success
            && run
                .stderr
                .contains("NOTICE:  your client certificate expires"),
        "{run:?}"
    );
}

#[test]
fn config_problems_lists_each_flaw_and_is_empty_once_fixed() {
    // (client_reason left at its default, off: on would be a finding of its own)
    let mut c = scenario::start(scenario::builder().default_client_reason().rules(
        "\
hostssl all alice all         2f-scram-sha-256
hostssl all alice 10.0.0.0/8  2f-scram-sha-256
hostssl all bob   all         2f-md5
hostssl all carol 10.0.0.0/8  2f-password  mode=report
hostssl all all   10.9.9.9/32 2f-exempt
",
    ));
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    let problems = |c: &Cluster| {
        c.psql_admin(
            "SELECT severity || ' ' || coalesce(regexp_replace(file_name, '.*/', '') || ':' || line_number, '-') || ' ' || problem FROM pg_twofactor_config_problems",
        )
    };
    // (the harness keeps the rules file in the data directory, beside pg_hba.conf)
    assert_eq!(
        problems(&c),
        "\
warning - rules file inside the data directory
warning pg_twofactor_hba.conf:1 pg_twofactor.handshake_check is off
warning pg_hba.conf:5 covered login without clientcert: a client without a certificate can test passwords
warning pg_hba.conf:6 pg_hba.conf line accepts connections without TLS for a covered login
warning pg_twofactor_hba.conf:2 rule is shadowed by an earlier rule
warning pg_twofactor_hba.conf:3 method not enabled
warning pg_twofactor_hba.conf:3 no pg_hba.conf line can satisfy the rule
warning pg_twofactor_hba.conf:4 method not enabled
warning pg_twofactor_hba.conf:4 2f-password for addresses other than loopback
warning pg_twofactor_hba.conf:4 no pg_hba.conf line can satisfy the rule
info pg_twofactor_hba.conf:4 rule in report mode
info pg_twofactor_hba.conf:5 exemption"
    );
    assert!(c
        .psql_admin("SELECT detail FROM pg_twofactor_config_problems WHERE line_number = 2")
        .contains(&format!(
            "Rule {}:1 matches every connection",
            c.data.join("pg_twofactor_hba.conf").display()
        )));
    // auth_delay loaded after pg_twofactor: its hook runs first and never sees a two-factor
    // refusal (shared_preload_libraries takes a restart)
    c.append_settings(&["shared_preload_libraries = 'pg_twofactor, auth_delay'"]);
    c.restart();
    assert_eq!(
        c.psql_admin("SELECT severity || ' ' || problem FROM pg_twofactor_config_problems WHERE problem LIKE '%loaded after%'"),
        "warning auth_delay is loaded after pg_twofactor"
    );
    c.append_settings(&["shared_preload_libraries = 'auth_delay, pg_twofactor'"]);
    c.restart();
    // settings: no ssl_ca_file
    c.psql_admin("ALTER SYSTEM SET ssl_ca_file = ''");
    c.reload();
    assert!(
        problems(&c).starts_with("error - ssl_ca_file is not set\n"),
        "{}",
        problems(&c)
    );
    c.psql_admin("ALTER SYSTEM RESET ssl_ca_file");
    c.reload();
    // a rules file with an error
    c.write_rules("hostssl all all all 2f-nothing\n");
    assert!(problems(&c).starts_with("error pg_twofactor_hba.conf:1 the rules file has an error"));
    // fixed: one rule, in a file outside the data directory, no clear-text pg_hba.conf line for
    // it, clientcert=verify-ca on its line, and the handshake check on
    let outside = c.root.join("pg_twofactor_hba.conf");
    std::fs::write(&outside, "hostssl all alice all 2f-scram-sha-256\n").unwrap();
    pg_twofactor_e2e::cluster::chown_to_cluster_user(&outside);
    c.append_settings(&[
        &format!("pg_twofactor.hba_file = '{}'", outside.display()),
        "pg_twofactor.handshake_check = on",
    ]);
    c.reload();
    let hba = std::fs::read_to_string(c.data.join("pg_hba.conf")).unwrap();
    std::fs::write(
        c.data.join("pg_hba.conf"),
        hba.replace(
            "host all all all scram-sha-256",
            "hostnossl all alice all reject",
        )
        .replace(
            "hostssl all all all scram-sha-256",
            "hostssl all all all scram-sha-256 clientcert=verify-ca",
        ),
    )
    .unwrap();
    assert_eq!(problems(&c), "");
    // superusers only: it reads pg_hba_file_rules
    c.psql_admin("CREATE ROLE reader LOGIN IN ROLE pg_read_all_settings");
    let out = c.psql_admin_raw("reader", "SELECT * FROM pg_twofactor_config_problems");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
}
