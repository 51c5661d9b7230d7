//! `pg_twofactor_config_problems`: the [`config_check`] findings for the rules file and
//! `pg_hba.conf` as they are on disk now, with the server's settings.

use super::row_shape::{self, Column, INT, TEXT};
use crate::postgres::setting;
use crate::{rules_in_force, settings};
use pg_twofactor_core::config_check::{self, HbaFileRule, ServerSettings};
use pgrx::prelude::*;

/// The lines of `pg_hba.conf` as it is on disk now (`pg_hba_file_rules`), errors included.
fn hba_lines() -> Vec<HbaFileRule> {
    #[cfg(feature = "pg15")]
    const QUERY: &str = "SELECT current_setting('hba_file') AS file_name, line_number, type, database, user_name, address, netmask, auth_method, options, error FROM pg_catalog.pg_hba_file_rules ORDER BY line_number";
    #[cfg(not(feature = "pg15"))]
    const QUERY: &str = "SELECT file_name, line_number, type, database, user_name, address, netmask, auth_method, options, error FROM pg_catalog.pg_hba_file_rules ORDER BY rule_number NULLS LAST, line_number";
    Spi::connect(|client| {
        let rows = client.select(QUERY, None, &[])?;
        let mut out = Vec::new();
        for row in rows {
            out.push(HbaFileRule {
                file: row.get::<String>(1)?.unwrap_or_default(),
                line: row.get::<i32>(2)?.unwrap_or(0) as usize,
                conn_type: row.get::<String>(3)?.unwrap_or_default(),
                databases: row.get::<Vec<String>>(4)?.unwrap_or_default(),
                users: row.get::<Vec<String>>(5)?.unwrap_or_default(),
                address: row.get::<String>(6)?,
                netmask: row.get::<String>(7)?,
                method: row.get::<String>(8)?.unwrap_or_default(),
                options: row.get::<Vec<String>>(9)?.unwrap_or_default(),
                error: row.get::<String>(10)?,
            });
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e| panic!("could not read pg_hba_file_rules: {e}"))
}

/// The columns built, as `row_shape` checks them against the SQL definition.
const COLUMNS: &[Column] = &[
    ("severity", TEXT),
    ("file_name", TEXT),
    ("line_number", INT),
    ("problem", TEXT),
    ("detail", TEXT),
];

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_restricted)]
fn pg_twofactor_config_problems(
    fcinfo: pg_sys::FunctionCallInfo,
) -> TableIterator<
    'static,
    (
        name!(severity, String),
        name!(file_name, Option<String>),
        name!(line_number, Option<i32>),
        name!(problem, String),
        name!(detail, String),
    ),
> {
    row_shape::require(fcinfo, "pg_twofactor_config_problems()", COLUMNS);
    let disk = rules_in_force::read_disk();
    let data_directory = setting(c"data_directory").filter(|v| !v.is_empty());
    let ssl_ca_file = setting(c"ssl_ca_file").filter(|v| !v.is_empty());
    // the CA file as the server reads it: a relative path is in the data directory
    let ca_pem = ssl_ca_file.as_ref().and_then(|f| {
        let path = match &data_directory {
            Some(d) => std::path::Path::new(d).join(f),
            None => std::path::PathBuf::from(f),
        };
        // as the rules files are read: a regular file of bounded size, never blocking on a FIFO
        pg_twofactor_core::rules::token::read_limited(&path).ok()
    });
    let ca_names = ca_pem
        .as_ref()
        .map(|pem| pg_twofactor_core::dn::pem_subjects(pem));
    let ca_keys = ca_pem.as_ref().map(|pem| {
        pg_twofactor_core::cert::certificates_from_pem(pem)
            .iter()
            .filter_map(|der| pg_twofactor_core::cert::spki_sha256(der).ok())
            .collect()
    });
    let server = ServerSettings {
        ssl: setting(c"ssl").as_deref() == Some("on"),
        client_reason: settings::client_reason(),
        data_directory,
        ssl_ca_file,
        ca_names,
        ca_keys,
        enabled: settings::enabled_methods(),
        handshake_check: settings::handshake_check(),
        preload_libraries: setting(c"shared_preload_libraries")
            .unwrap_or_default()
            .split(',')
            .map(|l| l.trim().trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect(),
    };
    let hba = hba_lines();
    let found = match &disk {
        Ok(set) => config_check::findings(Ok(&set.rules), &hba, &server),
        Err(errors) => config_check::findings(Err(errors), &hba, &server),
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
