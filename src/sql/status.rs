//! `pg_twofactor_status()`: which rules are in force, since when, whether the file on disk says
//! something else (a reload is pending or would fail), and the settings every covered login
//! depends on.

use crate::postgres::setting;
use crate::{rules_in_force, settings};
use pg_twofactor_core::methods::Method;
use pgrx::prelude::*;

fn timestamp(t: i64) -> Option<TimestampWithTimeZone> {
    TimestampWithTimeZone::try_from(t).ok()
}

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_restricted)]
fn pg_twofactor_status() -> TableIterator<
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
    ),
> {
    let server = rules_in_force::server_state();
    let (disk_digest, file_error) = match rules_in_force::read_disk() {
        Ok(set) => (Some(rules_in_force::digest(&set)), None),
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
    let methods = Method::all()
        .filter(|m| enabled.contains(*m))
        .map(|m| m.name().to_string())
        .collect();
    let ca = setting(c"ssl_ca_file").filter(|v| !v.is_empty());
    TableIterator::once((
        settings::rules_file().display().to_string(),
        server.as_ref().map(|s| s.rules as i64),
        server.as_ref().and_then(|s| timestamp(s.loaded_at)),
        reload_pending,
        server.as_ref().map(|s| format!("{:016x}", s.bytes_digest)),
        file_error,
        server
            .as_ref()
            .and_then(|s| s.error.as_ref().map(|(_, e)| e.clone())),
        server
            .as_ref()
            .and_then(|s| s.error.as_ref().and_then(|(t, _)| timestamp(*t))),
        server.as_ref().map(|s| s.generation) == Some(rules_in_force::local_state().0),
        setting(c"ssl").as_deref() == Some("on"),
        ca,
        methods,
        crate::hooks::handshake::state().to_string(),
    ))
}
