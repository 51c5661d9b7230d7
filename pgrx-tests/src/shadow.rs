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
    offline(c, login, client, &method, tls, &dry);
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

/// Whether a rules file (the main one) names a regular expression: a token starting with `/`
/// (PostgreSQL's engine decides those; the offline check cannot).
fn names_a_regex(rules: &str) -> bool {
    rules.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("");
        line.split(|c: char| c.is_whitespace() || c == ',')
            .any(|t| t.starts_with('/') || t.starts_with("\"/") || t.starts_with("+/"))
    })
}

/// `pg_twofactor-cert check` (its library, the same code as the command) must give what the
/// server's dry run gave (`dry`), where it can know what the server knows: same names (no
/// private name service), no regular expressions, no include directives it cannot read.
fn offline(c: &Cluster, login: &Login<'_>, client: &str, method: &str, tls: bool, dry: &str) {
    if c.has_own_name_service() {
        return;
    }
    // only when the file on disk is the one in force (the dry run uses the rules in force,
    // the offline check the file)
    let Some(rules_file) = sql(
        c,
        "SELECT rules_file FROM pg_twofactor_status() WHERE reload_pending IS FALSE AND file_error IS NULL AND session_rules_current",
    ) else {
        return;
    };
    if rules_file.is_empty() {
        return;
    }
    let Ok(text) = std::fs::read_to_string(&rules_file) else {
        return;
    };
    if names_a_regex(&text) || text.contains("include") || text.contains('@') {
        return;
    }
    let Some(enabled) = sql(c, "SHOW pg_twofactor.enabled_extra_auth_methods") else {
        return;
    };
    let Some(roles) = sql(
        c,
        &format!(
            "SELECT string_agg(rolname, E'\\n') FROM pg_roles WHERE rolname <> {u} AND pg_has_role({u}, oid, 'MEMBER')",
            u = literal(login.user)
        ),
    ) else {
        return;
    };
    let pem = match login.cert {
        Some(f) if tls => Some(std::fs::read_to_string(f).unwrap()),
        _ => None,
    };
    let attempt = pg_twofactor_cert::check::Login {
        args: pg_twofactor_core::dry_run::Arguments {
            user: login.user,
            database: login.dbname,
            client_addr: Some(client),
            client_cert: pem.as_deref(),
            hba_method: method,
            ssl: tls,
            replication: false,
        },
        // as the server's dry run finds it: the chain's second certificate, or the CA of
        // ssl_ca_file with the issuer's name
        issuer_key: pem.as_deref().and_then(|p| {
            use pg_twofactor_core::cert::{certificates_from_pem, issuer_key_of};
            let cas = std::fs::read(c.data.join("root.crt")).unwrap_or_default();
            issuer_key_of(
                &certificates_from_pem(p.as_bytes()),
                &certificates_from_pem(&cas),
            )
        }),
    };
    let server = pg_twofactor_cert::check::Server {
        major: crate::cluster::major_of_bindir(&c.bin),
        enabled_extra: enabled,
        member_of: roles.lines().map(str::to_string).collect(),
        client_reason: true,
    };
    let rows =
        pg_twofactor_cert::check::check(std::path::Path::new(&rules_file), &attempt, &server)
            .unwrap_or_else(|e| panic!("offline check for {login:?}: {e}"));
    let offline: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}{}|{}",
                r.verdict,
                r.reason
                    .as_ref()
                    .map_or(String::new(), |x| format!(" ({x})")),
                match (&r.rule_file, r.rule_line) {
                    (Some(f), Some(l)) => format!("{f}:{l}"),
                    _ => "none".into(),
                }
            )
        })
        .collect();
    assert_eq!(
        offline.join("\n"),
        dry,
        "pg_twofactor-cert check (left) and pg_twofactor_check (right) disagree for {login:?}"
    );
    // PG2F_DRY_RUN_SHADOW_LOG.offline: one line per login the offline check also compared
    if let Ok(path) = std::env::var("PG2F_DRY_RUN_SHADOW_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{path}.offline"))
        {
            let _ = writeln!(f, "{}\t{}", login.user, offline.join(" + "));
        }
    }
}
