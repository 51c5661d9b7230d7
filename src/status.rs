//! `pg_twofactor_status()`: which rules are in force, since when, whether the file on disk says
//! something else (a reload is pending or would fail), and the settings every covered login
//! depends on. `pg_twofactor_config_problems`: the [`lint`] findings for the rules file and
//! `pg_hba.conf` as they are on disk now.

use crate::lint::{self, HbaLine, Settings};
use crate::methods::Method;
use crate::{gucs, store};
use pgrx::prelude::*;
use std::ffi::CStr;

fn timestamp(t: i64) -> Option<TimestampWithTimeZone> {
    TimestampWithTimeZone::try_from(t).ok()
}

/// The value of a server setting, as `SHOW` gives it.
fn setting(name: &CStr) -> Option<String> {
    // SAFETY: GetConfigOption returns a pointer into the GUC's current value (or null with
    // missing_ok), valid until the setting changes; it is copied before anything can change it.
    unsafe {
        let p = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    }
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
    ),
> {
    let server = store::server_state();
    let (disk_digest, file_error) = match store::read_disk() {
        Ok(set) => (Some(store::digest(&set)), None),
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
    let enabled = gucs::enabled_methods();
    let methods = Method::ALL
        .iter()
        .filter(|(m, _, _)| enabled.contains(*m))
        .map(|(_, n, _)| n.to_string())
        .collect();
    let ca = setting(c"ssl_ca_file").filter(|v| !v.is_empty());
    TableIterator::once((
        gucs::hba_file().display().to_string(),
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
        server.as_ref().map(|s| s.generation) == Some(store::local_state().0),
        setting(c"ssl").as_deref() == Some("on"),
        ca,
        methods,
    ))
}

/// The lines of `pg_hba.conf` as it is on disk now (`pg_hba_file_rules`), errors included.
fn hba_lines() -> Vec<HbaLine> {
    #[cfg(feature = "pg15")]
    const QUERY: &str = "SELECT current_setting('hba_file') AS file_name, line_number, type, database, user_name, address, netmask, auth_method, error FROM pg_catalog.pg_hba_file_rules ORDER BY line_number";
    #[cfg(not(feature = "pg15"))]
    const QUERY: &str = "SELECT file_name, line_number, type, database, user_name, address, netmask, auth_method, error FROM pg_catalog.pg_hba_file_rules ORDER BY rule_number NULLS LAST, line_number";
    Spi::connect(|client| {
        let rows = client.select(QUERY, None, &[])?;
        let mut out = Vec::new();
        for row in rows {
            out.push(HbaLine {
                file: row.get::<String>(1)?.unwrap_or_default(),
                line: row.get::<i32>(2)?.unwrap_or(0) as usize,
                conn_type: row.get::<String>(3)?.unwrap_or_default(),
                databases: row.get::<Vec<String>>(4)?.unwrap_or_default(),
                users: row.get::<Vec<String>>(5)?.unwrap_or_default(),
                address: row.get::<String>(6)?,
                netmask: row.get::<String>(7)?,
                method: row.get::<String>(8)?.unwrap_or_default(),
                error: row.get::<String>(9)?,
            });
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e| panic!("could not read pg_hba_file_rules: {e}"))
}

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_restricted)]
fn pg_twofactor_config_problems() -> TableIterator<
    'static,
    (
        name!(severity, String),
        name!(file_name, Option<String>),
        name!(line_number, Option<i32>),
        name!(problem, String),
        name!(detail, String),
    ),
> {
    let disk = store::read_disk();
    let settings = Settings {
        ssl: setting(c"ssl").as_deref() == Some("on"),
        client_reason: gucs::client_reason(),
        data_directory: setting(c"data_directory").filter(|v| !v.is_empty()),
        ssl_ca_file: setting(c"ssl_ca_file").filter(|v| !v.is_empty()),
        enabled: gucs::enabled_methods(),
    };
    let hba = hba_lines();
    let found = match &disk {
        Ok(set) => lint::findings(Ok(&set.rules), &hba, &settings),
        Err(errors) => lint::findings(Err(errors), &hba, &settings),
    };
    TableIterator::new(found.into_iter().map(|f| {
        (
            f.severity.name().to_string(),
            f.file,
            f.line.map(|l| l as i32),
            f.problem,
            f.detail,
        )
    }))
}
