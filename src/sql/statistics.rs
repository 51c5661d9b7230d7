//! `pg_twofactor_stats` and `pg_twofactor_stats_reset()`: the decisions counted per rule and
//! reason since the server started or the statistics were reset (kept in
//! [`crate::shared_memory`]).

use super::row_shape::{self, Column, BIGINT, INT, TEXT, TIMESTAMPTZ};
use super::timestamp;
use crate::shared_memory;
use pgrx::prelude::*;

/// The columns built, as `row_shape` checks them against the SQL definition.
const COLUMNS: &[Column] = &[
    ("rule_file", TEXT),
    ("rule_line", INT),
    ("reason", TEXT),
    ("checked", BIGINT),
    ("accepted", BIGINT),
    ("refused", BIGINT),
    ("reported", BIGINT),
    ("exempted", BIGINT),
    ("not_covered", BIGINT),
    ("last_checked", TIMESTAMPTZ),
    ("last_accepted", TIMESTAMPTZ),
    ("last_refused", TIMESTAMPTZ),
    ("last_reported", TIMESTAMPTZ),
    ("stats_reset", TIMESTAMPTZ),
];

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_safe)]
fn pg_twofactor_stats(
    fcinfo: pg_sys::FunctionCallInfo,
) -> TableIterator<
    'static,
    (
        name!(rule_file, Option<String>),
        name!(rule_line, Option<i32>),
        name!(reason, Option<String>),
        name!(checked, i64),
        name!(accepted, i64),
        name!(refused, i64),
        name!(reported, i64),
        name!(exempted, i64),
        name!(not_covered, i64),
        name!(last_checked, Option<TimestampWithTimeZone>),
        name!(last_accepted, Option<TimestampWithTimeZone>),
        name!(last_refused, Option<TimestampWithTimeZone>),
        name!(last_reported, Option<TimestampWithTimeZone>),
        name!(stats_reset, Option<TimestampWithTimeZone>),
    ),
> {
    row_shape::require(fcinfo, "pg_twofactor_stats()", COLUMNS);
    let (rows, reset_at) = shared_memory::stats_rows();
    let handshake = handshake_row(reset_at);
    TableIterator::new(rows.into_iter().map(move |r| {
        let c = r.counters;
        (
            r.file,
            r.line.map(|l| l as i32),
            r.reason.map(|r| r.to_string()).or_else(|| {
                r.overflow
                    .then(|| "other rules (the statistics table is full, or the rule is in a file beyond the first 32)".to_string())
            }),
            c.checked as i64,
            c.accepted as i64,
            c.refused as i64,
            c.reported as i64,
            c.exempted as i64,
            c.not_covered as i64,
            timestamp(c.last_checked),
            timestamp(c.last_accepted),
            timestamp(c.last_refused),
            timestamp(c.last_reported),
            timestamp(reset_at),
        )
    }).chain(handshake))
}

/// The handshake check's own row: no rule (the login is not known yet), every count a refusal.
/// Shown once the check is on or has refused a handshake.
#[allow(clippy::type_complexity)]
fn handshake_row(
    reset_at: i64,
) -> Option<(
    Option<String>,
    Option<i32>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
)> {
    let (refused, last) = shared_memory::handshake_refusals();
    if refused == 0 && !crate::settings::handshake_check() {
        return None;
    }
    let refused = refused as i64;
    Some((
        None,
        None,
        Some(pg_twofactor_core::handshake::REASON.to_string()),
        refused,
        0,
        refused,
        0,
        0,
        0,
        timestamp(last),
        None,
        timestamp(last),
        None,
        timestamp(reset_at),
    ))
}

#[pg_extern(volatile, parallel_unsafe)]
fn pg_twofactor_stats_reset() {
    shared_memory::reset_stats();
}
