//! Dry-run shadowing: with `PG2F_DRY_RUN_SHADOW=1`, every login a scenario makes with
//! [`rust_login`](crate::client::rust_login) or a single-attempt
//! [`psql_login`](crate::client::psql_login) is put to `pg_twofactor_check` right after it, and
//! the dry run's verdict, reason and rule must equal the hook's decision from the decision log
//! (clusters of such runs log every decision). So the whole suite runs each of its login
//! scenarios both ways.
//!
//! Not shadowed: logins made from threads a scenario spawns (the load scenarios, whose
//! decisions interleave and whose rules change underneath), standbys (read-only), clusters
//! without the library or with a non-UTF-8 encoding, refusals made without a decision, and
//! clusters that opt out ([`ClusterBuilder::without_dry_run_shadow`](crate::cluster::ClusterBuilder::without_dry_run_shadow)).

use crate::client::Login;
use crate::cluster::Cluster;

pub fn enabled() -> bool {
    std::env::var("PG2F_DRY_RUN_SHADOW").is_ok_and(|v| v == "1")
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One decision-log line: (verdict with reason, rule, pg_hba.conf file and line, client).
struct Line {
    outcome: String,
    rule: String,
    hba_file: Option<String>,
    hba_line: String,
    client: String,
}

/// The hook's decision lines for `login` after `mark` (a report-mode rule's finding, then
/// the verdict).
fn decisions(c: &Cluster, login: &Login, mark: usize) -> Vec<Line> {
    let log = c.log_since(mark);
    let who = format!(
        "; user \"{}\"; database \"{}\"; client ",
        login.user.escape_debug(),
        login.dbname.escape_debug()
    );
    log.lines()
        .filter_map(|l| l.split_once("pg_twofactor decision: ").map(|(_, d)| d))
        .filter(|d| d.contains(&who))
        .filter_map(|line| {
            let (outcome, rest) = line.split_once("; rule ")?;
            let (rule, rest) = rest.split_once("; pg_hba.conf ")?;
            let (hba, rest) = rest.split_once("; user ")?;
            let client = rest.rsplit_once("; client ")?.1;
            // (an address holds no "; "; what follows it lists the undecidable rules)
            let client = client.split_once("; ").map_or(client, |(c, _)| c);
            let (hba_file, hba_line) = match hba.strip_prefix("line ") {
                Some(n) => (None, n.to_string()),
                None => {
                    let (f, n) = hba.rsplit_once(':')?;
                    (Some(f.to_string()), n.to_string())
                }
            };
            Some(Line {
                outcome: outcome.to_string(),
                rule: rule.to_string(),
                hba_file,
                hba_line,
                client: client.to_string(),
            })
        })
        .collect()
}

/// Runs SQL for the shadow; `None` when the server cannot answer because it is starting, in
/// recovery or stopping (a scenario that crashes or stops it).
fn sql(c: &Cluster, query: &str) -> Option<String> {
    let out = c.psql_admin_raw("postgres", query);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("the database system is")
            || stderr.contains("Connection refused")
            || stderr.contains("No such file")
        {
            return None;
        }
        panic!("dry-run shadow: {query}: {stderr}");
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Compares the dry run with the hook for the login just made (see the module comment).
/// `accepted`: the login got a session, so it passed the hook, which must have logged a
/// decision this can read (a change of the decision log's format fails here instead of
/// silently ending every comparison).
pub fn compare(c: &Cluster, login: &Login, mark: usize, tls: bool, accepted: bool) {
    if !c.shadow || std::thread::current().name().is_none() {
        return;
    }
    let lines = decisions(c, login, mark);
    let Some(last) = lines.last() else {
        assert!(
            !accepted || !c.logs_all_decisions(),
            "dry-run shadow: the accepted login {login:?} left no decision line it can read in\n{}",
            c.log_since(mark)
        );
        return; // PostgreSQL refused first, or the TLS handshake failed: no decision
    };
    if last.rule == "unknown" || last.client == "local" {
        return;
    }
    let file_clause = last
        .hba_file
        .as_ref()
        .map(|f| format!(" AND file_name = {}", literal(f)))
        .unwrap_or_default();
    let Some(method) = sql(
        c,
        &format!(
            "SELECT auth_method FROM pg_hba_file_rules WHERE line_number = {}{file_clause}",
            last.hba_line
        ),
    ) else {
        return;
    };
    let pem = match &login.cert {
        Some(f) if tls => literal(&std::fs::read_to_string(&f.cert).unwrap()),
        _ => "NULL".into(),
    };
    if sql(c, "CREATE EXTENSION IF NOT EXISTS pg_twofactor").is_none() {
        return;
    }
    let Some(dry) = sql(
        c,
        &format!(
            "SELECT verdict || coalesce(' (' || reason || ')', '') || '|' || coalesce(rule_file || ':' || rule_line, 'none') \
             FROM pg_twofactor_check({}, {}, {}, {pem}, {}, {tls})",
            literal(&login.user),
            literal(&login.dbname),
            literal(&last.client),
            literal(&method)
        ),
    ) else {
        return;
    };
    let hook: Vec<String> = lines
        .iter()
        .map(|l| format!("{}|{}", l.outcome, l.rule))
        .collect();
    assert_eq!(
        dry,
        hook.join("\n"),
        "dry run (left) and hook (right) disagree for {login:?}"
    );
    // PG2F_DRY_RUN_SHADOW_LOG: one line per login compared, for the figures .ci/test prints
    if let Ok(path) = std::env::var("PG2F_DRY_RUN_SHADOW_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let outcomes: Vec<&str> = lines.iter().map(|l| l.outcome.as_str()).collect();
            let _ = writeln!(f, "{}\t{}", login.user, outcomes.join(" + "));
        }
    }
}
