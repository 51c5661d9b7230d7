//! Logins run continuously while the rules file is rewritten and reloaded many times a second,
//! valid and invalid versions alternating, and `pg_twofactor.enabled_extra_auth_methods`
//! flipping. Nothing gets in that a version in force would refuse, a covered user is never
//! without rules, no login is refused spuriously, and the postmaster never restarts.
//!
//! RELOAD_LOAD_SECONDS (default 15) sets the duration.

use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{rust_login, two_factor, Login, Outcome};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A valid rules file: `pad` comment lines first (so the line of test1's rule tells which
/// version decided), then, in odd versions, a rule for "other", then the scenario's rules.
fn valid_version(pad: usize, cover_other: bool) -> String {
    let mut text = String::new();
    for i in 0..pad {
        text.push_str(&format!("# padding {i}\n"));
    }
    if cover_other {
        text.push_str("hostssl all other all 2f-scram-sha-256\n");
    }
    text.push_str(scenario::RULES);
    text
}

/// The line of test1's rule in a valid version.
fn test1_line(pad: usize, cover_other: bool) -> usize {
    let before = valid_version(pad, cover_other);
    let idx = before
        .lines()
        .position(|l| l.contains(" test1 "))
        .expect("test1 has a rule");
    idx + 1
}

#[derive(Default, Debug)]
struct Tally {
    test1_nocert_refused: usize,
    test1_cert_accepted: usize,
    other_accepted: usize,
    other_refused: usize,
    md5_accepted: usize,
    md5_refused: usize,
    wrong: Vec<String>,
}

#[test]
fn reloads_under_load_never_open_a_window() {
    let seconds = pg_twofactor_e2e::env_or("RELOAD_LOAD_SECONDS", 15);
    let c = scenario::start(
        scenario::builder()
            .setting("pg_twofactor.log_decisions = all")
            .setting("include_if_exists = 'twofactor_extra.conf'"),
    );
    let pid = std::fs::read_to_string(c.data.join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse::<i32>()
        .unwrap();
    let test1 = scenario::cert_for(&c, "test1");
    let md5 = scenario::cert_for(&c, "md5user");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));

    // valid versions use these paddings; test1's rule is then at one of these lines
    let pads = [0usize, 1, 2, 3, 4, 5, 6];
    let valid_lines: BTreeSet<usize> = pads
        .iter()
        .flat_map(|&p| [test1_line(p, false), test1_line(p, true)])
        .collect();

    let rules_path = c.data.join("pg_twofactor_hba.conf");
    let extra_path = c.data.join("twofactor_extra.conf");
    let reloader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // an atomic replacement, as configuration management does
                let text = if n % 2 == 1 {
                    // invalid: a valid file plus one bad line (and test1's rule moved)
                    format!(
                        "# broken\n# broken\n# broken\n# broken\n# broken\n# broken\n# broken\n# broken\n{}hostssl all test1 all 2f-bogus\n",
                        scenario::RULES
                    )
                } else {
                    valid_version(pads[(n / 2) % pads.len()], n.is_multiple_of(4))
                };
                let tmp = rules_path.with_extension("tmp");
                std::fs::write(&tmp, text).unwrap();
                pg_twofactor_e2e::cluster::chown_to_cluster_user(&tmp);
                std::fs::rename(&tmp, &rules_path).unwrap();
                let methods = if n.is_multiple_of(3) {
                    "'2f-md5'"
                } else {
                    "''"
                };
                let tmp = extra_path.with_extension("tmp");
                std::fs::write(
                    &tmp,
                    format!("pg_twofactor.enabled_extra_auth_methods = {methods}\n"),
                )
                .unwrap();
                pg_twofactor_e2e::cluster::chown_to_cluster_user(&tmp);
                std::fs::rename(&tmp, &extra_path).unwrap();
                // SAFETY: kill(2) with a process id and a signal number; no memory involved.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
                n += 1;
                std::thread::sleep(Duration::from_millis(40));
            }
            n
        })
    };

    let deadline = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|s| {
        for k in 0..3 {
            let (c, tally, test1, md5) = (&c, &tally, &test1, &md5);
            s.spawn(move || {
                let mut i = k;
                while Instant::now() < deadline {
                    let (what, outcome) = match i % 4 {
                        0 => ("test1 without a certificate", rust_login(c, &Login::new("test1", PASSWORD))),
                        1 => ("test1 with its certificate", rust_login(c, &Login::new("test1", PASSWORD).cert(test1))),
                        2 => ("other without a certificate", rust_login(c, &Login::new("other", PASSWORD))),
                        _ => ("md5user with its certificate", rust_login(c, &Login::new("md5user", PASSWORD).cert(md5))),
                    };
                    let mut t = tally.lock().unwrap();
                    let refused = |o: &Outcome, m: &str| matches!(o, Outcome::Refused { message, .. } if message == m);
                    match i % 4 {
                        0 if refused(&outcome, &two_factor("test1", "no client certificate")) => t.test1_nocert_refused += 1,
                        1 if matches!(&outcome, Outcome::Accepted { current_user, .. } if current_user == "test1") => t.test1_cert_accepted += 1,
                        2 if matches!(&outcome, Outcome::Accepted { current_user, .. } if current_user == "other") => t.other_accepted += 1,
                        2 if refused(&outcome, &two_factor("other", "no client certificate")) => t.other_refused += 1,
                        3 if matches!(&outcome, Outcome::Accepted { current_user, .. } if current_user == "md5user") => t.md5_accepted += 1,
                        3 if refused(&outcome, &two_factor("md5user", "method not enabled")) => t.md5_refused += 1,
                        _ => t.wrong.push(format!("{what}: {outcome:?}")),
                    }
                    i += 1;
                }
            });
        }
    });
    stop.store(true, Ordering::Relaxed);
    let reloads = reloader.join().unwrap();
    let t = tally.lock().unwrap();
    let log = c.log();
    eprintln!(
        "reload under load: {seconds} s, {reloads} reload signals, {} rule loads, {} rejected versions, {} logins: {t:?}",
        log.matches("pg_twofactor: loaded ").count(),
        log.matches("was not reloaded; the previous rules stay in force").count(),
        t.test1_nocert_refused
            + t.test1_cert_accepted
            + t.other_accepted
            + t.other_refused
            + t.md5_accepted
            + t.md5_refused
            + t.wrong.len()
    );
    assert!(t.wrong.is_empty(), "unexpected outcomes: {:?}", t.wrong);
    assert!(reloads > seconds as usize * 5, "{reloads} reloads");
    assert!(t.test1_nocert_refused > 0 && t.test1_cert_accepted > 0);
    // both versions and both settings were in force at some point
    assert!(t.other_accepted > 0 && t.other_refused > 0, "{t:?}");
    assert!(t.md5_accepted > 0 && t.md5_refused > 0, "{t:?}");
    assert!(log.contains("was not reloaded; the previous rules stay in force"));
    // every decision about test1 used test1's rule of a valid version
    for line in log
        .lines()
        .filter(|l| l.contains("pg_twofactor decision:") && l.contains("user \"test1\""))
    {
        let at = line
            .split("pg_twofactor_hba.conf:")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no rule line in {line}"));
        assert!(valid_lines.contains(&at), "decided by line {at}: {line}");
    }
    // the decision log agrees with what the clients saw, login by login
    assert_eq!(decisions(&log, "accepted", "test1"), t.test1_cert_accepted);
    assert_eq!(
        decisions(&log, "refused (no client certificate)", "test1"),
        t.test1_nocert_refused
    );
    assert_eq!(
        decisions(&log, "refused (no client certificate)", "other"),
        t.other_refused
    );
    assert_eq!(decisions(&log, "accepted", "md5user"), t.md5_accepted);
    assert_eq!(
        decisions(&log, "refused (method not enabled)", "md5user"),
        t.md5_refused
    );
    // the postmaster never restarted and no backend died by a signal
    let now_pid = std::fs::read_to_string(c.data.join("postmaster.pid")).unwrap();
    assert!(
        now_pid.starts_with(&format!("{pid}\n")),
        "postmaster restarted"
    );
    assert!(!log.contains("terminated by signal"), "{log}");
    assert!(!log.contains("server process"), "a backend crashed");
}

/// How many decision-log lines say `verdict` about `user`.
fn decisions(log: &str, verdict: &str, user: &str) -> usize {
    let head = format!("pg_twofactor decision: {verdict};");
    let who = format!("; user \"{user}\";");
    log.lines()
        .filter(|l| l.contains(&head) && l.contains(&who))
        .count()
}
