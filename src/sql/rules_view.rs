//! `pg_twofactor_rules`: the rules file as it is on disk now, errors included, shaped like
//! `pg_hba_file_rules` of PostgreSQL 16+ (`rule_number`, `file_name`, `line_number`, ...), so a
//! DBA can check an edit before reloading. Rules pulled in by `include*` (16+) carry their own
//! file name and line number.

use super::row_shape::{self, Column, INT, TEXT, TEXT_ARRAY};
use crate::postgres::catalog::PgRegexCheck;
use crate::settings;
use pg_twofactor_core::rules::{self, Action};
use pgrx::prelude::*;

type Row = (
    Option<i32>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    Option<String>,
    Option<String>,
);

fn rows() -> Vec<Row> {
    let mut parsed = rules::parse_file(
        &settings::rules_file(),
        crate::postgres::SYNTAX,
        &PgRegexCheck,
    );
    let mut out: Vec<Row> = Vec::new();
    if let Some(e) = &parsed.file_error {
        out.push((
            None,
            Some(e.file.display().to_string()),
            e.line.map(|l| l as i32),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some(e.message()),
        ));
    }
    let mut rule_number = 0;
    for (file, line, result) in parsed.lines.drain(..) {
        let file = Some(file.display().to_string());
        out.push(match result {
            Ok(rule) => {
                rule_number += 1;
                let d = rule.display;
                (
                    Some(rule_number),
                    file,
                    Some(line as i32),
                    Some(d.conn_type),
                    Some(d.databases),
                    Some(d.users),
                    d.address,
                    d.netmask,
                    Some(d.method),
                    (!d.options.is_empty()).then_some(d.options),
                    (rule.action != Action::Exempt).then(|| rule.options.mode.name().to_string()),
                    None,
                )
            }
            Err(e) => (
                None,
                file,
                Some(line as i32),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some(e.message()),
            ),
        });
    }
    out
}

/// The columns built, as `row_shape` checks them against the SQL definition.
const COLUMNS: &[Column] = &[
    ("rule_number", INT),
    ("file_name", TEXT),
    ("line_number", INT),
    ("type", TEXT),
    ("database", TEXT_ARRAY),
    ("user_name", TEXT_ARRAY),
    ("address", TEXT),
    ("netmask", TEXT),
    ("auth_method", TEXT),
    ("options", TEXT_ARRAY),
    ("mode", TEXT),
    ("error", TEXT),
];

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_safe)]
fn pg_twofactor_rules(
    fcinfo: pg_sys::FunctionCallInfo,
) -> TableIterator<
    'static,
    (
        name!(rule_number, Option<i32>),
        name!(file_name, Option<String>),
        name!(line_number, Option<i32>),
        name!(type, Option<String>),
        name!(database, Option<Vec<String>>),
        name!(user_name, Option<Vec<String>>),
        name!(address, Option<String>),
        name!(netmask, Option<String>),
        name!(auth_method, Option<String>),
        name!(options, Option<Vec<String>>),
        name!(mode, Option<String>),
        name!(error, Option<String>),
    ),
> {
    row_shape::require(fcinfo, "pg_twofactor_rules()", COLUMNS);
    TableIterator::new(rows())
}
