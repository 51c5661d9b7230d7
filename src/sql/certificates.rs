//! `pg_twofactor_certificates`: the client certificates seen since the server started, with
//! their expiry (kept in [`crate::shared_memory`]).

use super::row_shape::{self, Column, BIGINT, INT, TEXT, TIMESTAMPTZ};
use super::timestamp;
use crate::shared_memory;
use pgrx::prelude::*;

/// The columns built, as `row_shape` checks them against the SQL definition.
const COLUMNS: &[Column] = &[
    ("common_name", TEXT),
    ("serial", TEXT),
    ("issuer", TEXT),
    ("not_after", TIMESTAMPTZ),
    ("days_left", INT),
    ("subject_alt_name", TEXT),
    ("last_user", TEXT),
    ("last_client_addr", TEXT),
    ("last_seen", TIMESTAMPTZ),
    ("last_accepted", TIMESTAMPTZ),
    ("logins", BIGINT),
];

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_safe)]
fn pg_twofactor_certificates(
    fcinfo: pg_sys::FunctionCallInfo,
) -> TableIterator<
    'static,
    (
        name!(common_name, String),
        name!(serial, String),
        name!(issuer, String),
        name!(not_after, Option<TimestampWithTimeZone>),
        name!(days_left, i32),
        name!(subject_alt_name, String),
        name!(last_user, String),
        name!(last_client_addr, Option<String>),
        name!(last_seen, Option<TimestampWithTimeZone>),
        name!(last_accepted, Option<TimestampWithTimeZone>),
        name!(logins, i64),
    ),
> {
    row_shape::require(fcinfo, "pg_twofactor_certificates()", COLUMNS);
    let rows = shared_memory::certificate_rows();
    let now = shared_memory::now();
    TableIterator::new(rows.into_iter().map(move |r| {
        // whole days left, rounded down (negative once expired)
        let days = (r.not_after - now).div_euclid(86_400_000_000);
        let addr = r.last_address.as_str();
        (
            r.common_name.as_str().to_string(),
            r.serial.as_str().to_string(),
            r.issuer.as_str().to_string(),
            TimestampWithTimeZone::try_from(r.not_after).ok(),
            days.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            r.san.as_str().to_string(),
            r.last_user.as_str().to_string(),
            (!addr.is_empty()).then(|| addr.to_string()),
            timestamp(r.last_seen),
            timestamp(r.last_accepted),
            r.logins as i64,
        )
    }))
}
