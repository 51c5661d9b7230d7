//! `pg_twofactor_status()`: which rules are in force, since when, whether the file on disk says
//! something else (a reload is pending or would fail), and the settings every covered login
//! depends on.

use super::row_shape::{self, Column, BIGINT, BOOL, TEXT, TEXT_ARRAY, TIMESTAMPTZ};
use crate::postgres::setting;
use crate::{rules_in_force, settings};
use pg_twofactor_core::digests::{self, EnforcementSettings};
use pg_twofactor_core::methods::Method;
use pg_twofactor_core::rules::token;
use pgrx::prelude::*;

fn timestamp(t: i64) -> Option<TimestampWithTimeZone> {
    TimestampWithTimeZone::try_from(t).ok()
}

/// The columns built, as `row_shape` checks them against the SQL definition.
const COLUMNS: &[Column] = &[
    ("rules_file", TEXT),
    ("rules_loaded", BIGINT),
    ("loaded_at", TIMESTAMPTZ),
    ("reload_pending", BOOL),
    ("rules_digest", TEXT),
    ("file_error", TEXT),
    ("last_reload_error", TEXT),
    ("last_reload_error_at", TIMESTAMPTZ),
    ("session_rules_current", BOOL),
    ("ssl", BOOL),
    ("ssl_ca_file", TEXT),
    ("enabled_methods", TEXT_ARRAY),
    ("handshake_check", TEXT),
    ("settings_digest", TEXT),
];

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_restricted)]
fn pg_twofactor_status(
    fcinfo: pg_sys::FunctionCallInfo,
) -> TableIterator<
    'static,
    (
        name!(rules_file, String),
        name!(rules_loaded, Option<i64>),
        name!(loaded_at, Option<TimestampWithTimeZone>),
        name!(reload_pending, Option<bool>),
        name!(rules_digest, Option<String>),
        name!(file_error, Option<String>),
        name!(last_reload_error, Option<String>),
        name!(last_reload_error_at, Option<TimestampWithTimeZone>),
        name!(session_rules_current, bool),
        name!(ssl, bool),
        name!(ssl_ca_file, Option<String>),
        name!(enabled_methods, Vec<String>),
        name!(handshake_check, String),
        name!(settings_digest, String),
    ),
> {
    row_shape::require(fcinfo, "pg_twofactor_status()", COLUMNS);
    let server = rules_in_force::server_state();
    let quote = may_read_rules();
    let (disk_digest, file_error) = match rules_in_force::read_disk() {
        Ok(set) => (Some(set.digest()), None),
        Err(errors) => (
            None,
            Some(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
    };
    let reload_pending = server.as_ref().map(|s| disk_digest != Some(s.digest));
    let enabled = settings::enabled_methods();
    let methods: Vec<String> = Method::all()
        .filter(|m| enabled.contains(*m))
        .map(|m| m.name().to_string())
        .collect();
    let ca = setting(c"ssl_ca_file").filter(|v| !v.is_empty());
    let ssl = setting(c"ssl").as_deref() == Some("on");
    let settings_digest = settings_digest(&methods, ssl, ca.as_deref());
    TableIterator::once((
        settings::rules_file().display().to_string(),
        server.as_ref().map(|s| s.rules as i64),
        server.as_ref().and_then(|s| timestamp(s.loaded_at)),
        reload_pending,
        server.as_ref().map(|s| token::hex(&s.bytes_digest)),
        file_error.map(|e| quoted_or_counted(e, quote)),
        server.as_ref().and_then(|s| {
            s.error
                .as_ref()
                .map(|(_, e)| quoted_or_counted(e.clone(), quote))
        }),
        server
            .as_ref()
            .and_then(|s| s.error.as_ref().and_then(|(t, _)| timestamp(*t))),
        server.as_ref().map(|s| s.generation) == Some(rules_in_force::local_state().0),
        ssl,
        ca,
        methods,
        crate::hooks::handshake::state().to_string(),
        settings_digest,
    ))
}

/// Whether the caller may read the rules themselves: EXECUTE on `pg_twofactor_rules()`
/// (superusers, and roles a DBA granted it; `pg_read_all_settings`, which may call this
/// function, may not by default).
fn may_read_rules() -> bool {
    const QUERY: &str =
        "SELECT coalesce(bool_or(has_function_privilege(p.oid, 'EXECUTE')), false) \
        FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.objid \
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid \
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.deptype = 'e' \
        AND e.extname = 'pg_twofactor' AND p.proname = 'pg_twofactor_rules'";
    // a read-only SPI connection (Spi::get_one would assign a transaction id, which a hot
    // standby refuses); any failure reads as "may not": the text is then withheld
    Spi::connect(|client| {
        client
            .select(QUERY, Some(1), &[])?
            .first()
            .get_one::<bool>()
    })
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The rules file's errors quote its lines: shown as they are to a caller who may read the
/// rules, otherwise only how many there are.
fn quoted_or_counted(errors: String, quote: bool) -> String {
    if quote {
        return errors;
    }
    let n = errors
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
        .max(1);
    format!(
        "{n} error{} in the rules file (their text quotes the rules: pg_twofactor_rules shows it to roles allowed to read the rules)",
        if n == 1 { "" } else { "s" }
    )
}

/// `settings_digest` ([`digests::settings_digest`]): the enabled methods, the handshake check,
/// `ssl`, and the bytes of `ssl_ca_file` and `ssl_crl_file` as they are on disk now (relative
/// paths are in the data directory, this process's working directory).
fn settings_digest(methods: &[String], ssl: bool, ca: Option<&str>) -> String {
    let read = |path: &str| std::fs::read(path).map_err(|e| e.kind().to_string());
    let ca = ca.map(read);
    let crl = setting(c"ssl_crl_file")
        .filter(|v| !v.is_empty())
        .map(|p| read(&p));
    digests::settings_digest(&EnforcementSettings {
        enabled_methods: methods,
        handshake_check: settings::handshake_check(),
        ssl,
        ca_file: ca.as_ref().map(|r| r.as_deref().map_err(Clone::clone)),
        crl_file: crl.as_ref().map(|r| r.as_deref().map_err(Clone::clone)),
    })
}
