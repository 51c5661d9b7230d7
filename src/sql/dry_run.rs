//! `pg_twofactor_check(...)`: the dry run. What would the hook decide for this login, with the
//! rules in force and this server's settings? It builds a [`LoginAttempt`] from its arguments
//! and calls [`decision::decide_all`], the hook's own decision path; nobody logs in. One row
//! for the deciding rule (or `not covered`), preceded by one for the first `mode=report` rule
//! the login matched, if any.
//!
//! What it cannot know is taken as given: that PostgreSQL's own method (the password) passed
//! with `hba_method`, and that the TLS layer verified the certificate against `ssl_ca_file`
//! (and its CRL); a certificate outside its validity dates gets a WARNING, since the TLS layer
//! refuses it before the hook runs.

use super::row_shape::{self, Column, INT, TEXT};
use crate::postgres::catalog::ServerCatalog;
use crate::{postgres, rules_in_force, settings};
use pg_twofactor_core::cert::{der_from_pem, CertSummary};
use pg_twofactor_core::decision;
use pg_twofactor_core::dry_run::{attempt, handshake_refusal, handshake_row, rows, Arguments};
use pg_twofactor_core::os::network::SystemNetwork;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};

fn error(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(code, message, "pg_twofactor_check");
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("an ERROR report returned")
}

/// The memory a dry run may need at most (the certificate read, the rules searched, the rows
/// made), asked for before it starts ([`pg_twofactor_core::rules::token::memory_available`]).
const DRY_RUN_MEMORY: u64 = 32 * 1024 * 1024;

/// Warns when the certificate would not get through PostgreSQL's TLS layer at all.
fn warn_if_not_valid_now(pem: &str) {
    let Ok(der) = der_from_pem(pem) else { return };
    let Ok(cert) = CertSummary::from_der(&der) else {
        pgrx::warning!(
            "client_cert could not be read; a login with it is refused (\"internal error\")"
        );
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now < cert.not_before || now > cert.not_after {
        pgrx::warning!(
            "client_cert is not valid now (valid from {} to {}); PostgreSQL's TLS layer refuses it before pg_twofactor sees it",
            pg_twofactor_core::expiry::utc(cert.not_before),
            pg_twofactor_core::expiry::utc(cert.not_after)
        );
    }
}

/// The columns built, as `row_shape` checks them against the SQL definition.
const COLUMNS: &[Column] = &[
    ("rule_file", TEXT),
    ("rule_line", INT),
    ("rule_method", TEXT),
    ("rule_mode", TEXT),
    ("verdict", TEXT),
    ("reason", TEXT),
    ("message", TEXT),
    ("detail", TEXT),
];

#[allow(clippy::type_complexity, clippy::too_many_arguments)] // the SQL signature (and fcinfo)
#[pg_extern(volatile, parallel_restricted)]
fn pg_twofactor_check(
    user_name: &str,
    database: &str,
    client_addr: Option<pgrx::Inet>,
    client_cert: Option<&str>,
    hba_method: default!(&str, "'scram-sha-256'"),
    ssl: default!(bool, true),
    replication: default!(bool, false),
    fcinfo: pg_sys::FunctionCallInfo,
) -> TableIterator<
    'static,
    (
        name!(rule_file, Option<String>),
        name!(rule_line, Option<i32>),
        name!(rule_method, Option<String>),
        name!(rule_mode, Option<String>),
        name!(verdict, String),
        name!(reason, Option<String>),
        name!(message, Option<String>),
        name!(detail, Option<String>),
    ),
> {
    row_shape::require(fcinfo, "pg_twofactor_check()", COLUMNS);
    if let Err(e) = pg_twofactor_core::rules::token::memory_available(DRY_RUN_MEMORY) {
        error(
            PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
            format!(
                "not enough memory for the dry run: it needs up to {} MB ({})",
                DRY_RUN_MEMORY / (1024 * 1024),
                pg_twofactor_core::rules::token::os_message(&e)
            ),
            None,
        );
    }
    let addr = client_addr.map(|a| a.0);
    let args = Arguments {
        user: user_name,
        database,
        client_addr: addr.as_deref(),
        client_cert,
        hba_method,
        ssl,
        replication,
    };
    let mut attempt = attempt(postgres::MAJOR, &args).unwrap_or_else(|e| {
        error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e.to_string(),
            None,
        )
    });
    if let (Some(pem), true) = (client_cert, ssl) {
        warn_if_not_valid_now(pem);
        attempt.issuer_key = issuer_key(pem);
    }
    if let Some(server) = rules_in_force::server_state() {
        if server.generation != rules_in_force::local_state().0 {
            error(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "this session started before the rules file was last reloaded, so it holds older rules than new logins get".into(),
                Some("Reconnect and run the check again."),
            );
        }
    }
    // with pg_twofactor.handshake_check on, a certificate bound elsewhere never gets as far
    // as a rule
    let refused_in_handshake = settings::handshake_check()
        .then(|| handshake_refusal(&attempt, &SystemNetwork::unbounded()))
        .flatten();
    let rows = match refused_in_handshake {
        Some(refusal) => vec![handshake_row(&attempt, &refusal)],
        None => decide(&attempt),
    };
    TableIterator::new(rows.into_iter().map(|row| {
        (
            row.rule_file,
            row.rule_line,
            row.rule_method,
            row.rule_mode,
            row.verdict,
            row.reason,
            row.message,
            row.detail,
        )
    }))
}

/// The key `issuer_key=` compares for `pem` (the client's certificate, then any intermediates
/// it would send): the second certificate's, or that of the CA of `ssl_ca_file` that bears the
/// issuer's name ([`pg_twofactor_core::cert::issuer_key_of`]).
fn issuer_key(pem: &str) -> Option<[u8; 32]> {
    use pg_twofactor_core::cert::{certificates_from_pem, issuer_key_of};
    let cas = postgres::setting(c"ssl_ca_file")
        .filter(|f| !f.is_empty())
        .and_then(|f| std::fs::read(f).ok())
        .map(|bytes| certificates_from_pem(&bytes))
        .unwrap_or_default();
    issuer_key_of(&certificates_from_pem(pem.as_bytes()), &cas)
}

/// The dry run's rows from the rules in force (an ERROR when none are loaded).
fn decide(attempt: &decision::LoginAttempt) -> Vec<pg_twofactor_core::dry_run::DryRun> {
    rules_in_force::with_current(|rules| {
        let d = decision::decide_all(
            rules,
            attempt,
            settings::enabled_methods(),
            &SystemNetwork::unbounded(),
            &ServerCatalog::new(),
        );
        rows(attempt, &d, settings::client_reason())
    })
    .unwrap_or_else(|| {
        error(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "no pg_twofactor rules are loaded".into(),
            None,
        )
    })
}
