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

use crate::cluster::Cluster;
use pg_twofactor_core::decision_log::LogRecord;

/// The login a client just made, as the shadow needs it (the clients in
/// [`crate::client`] describe theirs; the shadow does not depend on them).
#[derive(Debug)]
pub struct Login<'a> {
    pub user: &'a str,
    pub dbname: &'a str,
    /// The client certificate's PEM file, if the login presented one.
    pub cert: Option<&'a std::path::Path>,
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The hook's decision lines for `login` after `mark` (a report-mode rule's finding, then
/// the verdict), read with the extension's own [`LogRecord`].
fn decisions(c: &Cluster, login: &Login<'_>, mark: usize) -> Vec<LogRecord> {
    c.log_since(mark)
        .lines()
        .filter_map(LogRecord::find)
        .filter(|r| r.user == login.user && r.database.as_deref() == Some(login.dbname))
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
pub fn compare(c: &Cluster, login: &Login<'_>, mark: usize, tls: bool, accepted: bool) {
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
    // what the client got must be what the hook logged: a session is never a logged refusal
    // (a hook that logs one thing and does another fails here, whatever the dry run says)
    assert!(
        !accepted || last.outcome != "refused",
        "dry-run shadow: {login:?} got a session, but the hook logged a refusal: {last}"
    );
    let (Some(client), Some((hba_file, hba_line))) = (&last.client, last.hba_file_line()) else {
        return; // a refusal without a decision
    };
    if client == "local" {
        return;
    }
    let file_clause = hba_file
        .map(|f| format!(" AND file_name = {}", literal(f)))
        .unwrap_or_default();
    let Some(method) = sql(
        c,
        &format!(
            "SELECT auth_method FROM pg_hba_file_rules WHERE line_number = {hba_line}{file_clause}"
        ),
    ) else {
        return;
    };
    let pem = match login.cert {
        Some(f) if tls => literal(&std::fs::read_to_string(f).unwrap()),
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
            literal(login.user),
            literal(login.dbname),
            literal(client),
            literal(&method)
        ),
    ) else {
        return;
    };
    let hook: Vec<String> = lines
        .iter()
        .map(|l| format!("{}|{}", l.verdict(), l.rule))
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
            let outcomes: Vec<String> = lines.iter().map(LogRecord::verdict).collect();
            let _ = writeln!(f, "{}\t{}", login.user, outcomes.join(" + "));
        }
    }
}
