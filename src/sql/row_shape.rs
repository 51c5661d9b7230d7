//! The row shape a set-returning function's caller expects, checked against the one this
//! library builds, before any row is made.
//!
//! Every upgrade has a window in which the new library is loaded and a database still holds the
//! SQL objects of an earlier version (the package is installed and the server restarted, but
//! `ALTER EXTENSION pg_twofactor UPDATE` has not run there yet). The C symbol is the same, the
//! declared columns are not: rows formed with the wrong descriptor would crash the backend, and
//! with it every process of the server. So each function compares, by name and type, the
//! columns its SQL definition declares with its own, and raises an ERROR naming the fix instead.
//!
//! A declaration that is an exact prefix of ours is accepted (an earlier version before a column
//! was appended: `pg_twofactor_status()` of 0.3.0 against 0.4.0's, which gains
//! `handshake_check` last): the rows are formed with the caller's descriptor, which reads only
//! its own columns, so monitoring keeps working through the upgrade window.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode, PgTupleDesc};

/// A result column: its name and type.
pub type Column = (&'static str, pg_sys::Oid);

pub const TEXT: pg_sys::Oid = pg_sys::TEXTOID;
pub const TEXT_ARRAY: pg_sys::Oid = pg_sys::TEXTARRAYOID;
pub const INT: pg_sys::Oid = pg_sys::INT4OID;
pub const BIGINT: pg_sys::Oid = pg_sys::INT8OID;
pub const BOOL: pg_sys::Oid = pg_sys::BOOLOID;
pub const TIMESTAMPTZ: pg_sys::Oid = pg_sys::TIMESTAMPTZOID;

/// How the declared columns compare with the built ones.
#[derive(Debug, PartialEq, Eq)]
enum Fit {
    /// Same columns, or a prefix of them: rows can be formed with the caller's descriptor.
    Fits,
    /// Anything else: forming rows would read or write the wrong types.
    Differs,
}

fn fit(declared: &[(String, pg_sys::Oid)], built: &[Column]) -> Fit {
    let prefix = declared.len() <= built.len()
        && declared
            .iter()
            .zip(built)
            .all(|((name, oid), (want, want_oid))| name == want && oid == want_oid);
    if prefix && !declared.is_empty() {
        Fit::Fits
    } else {
        Fit::Differs
    }
}

/// The columns the caller's SQL definition declares (empty when it declares no composite
/// result).
fn declared(fcinfo: pg_sys::FunctionCallInfo) -> Vec<(String, pg_sys::Oid)> {
    let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
    // SAFETY: `fcinfo` is the call's own FunctionCallInfo, as pgrx hands it to the function;
    // get_call_result_type only reads it (and the catalog) and fills `tupdesc` with a
    // descriptor in the current memory context, or leaves it null.
    let class = unsafe { pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut tupdesc) };
    if class != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE || tupdesc.is_null() {
        return Vec::new();
    }
    // SAFETY: a valid descriptor just returned by PostgreSQL, read while it lives.
    let desc = unsafe { PgTupleDesc::from_pg_unchecked(tupdesc) };
    desc.iter()
        .filter(|a| !a.attisdropped)
        .map(|a| (a.name().to_string(), a.type_oid().value()))
        .collect()
}

fn describe(columns: impl Iterator<Item = (String, pg_sys::Oid)>) -> String {
    columns
        .map(|(name, oid)| format!("{name} {}", type_name(oid)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_name(oid: pg_sys::Oid) -> String {
    match oid {
        TEXT => "text".into(),
        TEXT_ARRAY => "text[]".into(),
        INT => "integer".into(),
        BIGINT => "bigint".into(),
        BOOL => "boolean".into(),
        TIMESTAMPTZ => "timestamp with time zone".into(),
        other => format!("type {}", other.to_u32()),
    }
}

/// Raises an ERROR unless the caller's declared result fits `built` (see the module comment).
pub fn require(fcinfo: pg_sys::FunctionCallInfo, function: &str, built: &[Column]) {
    let declared = declared(fcinfo);
    if fit(&declared, built) == Fit::Fits {
        return;
    }
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "{function}: the SQL definition of pg_twofactor in this database is older than the pg_twofactor library loaded"
        ),
        "pg_twofactor",
    )
    .set_detail(format!(
        "The SQL definition declares ({}); the library returns ({}).",
        describe(declared.into_iter()),
        describe(built.iter().map(|(n, o)| (n.to_string(), *o)))
    ))
    .set_hint("Run ALTER EXTENSION pg_twofactor UPDATE in this database.")
    .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report returned")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILT: &[Column] = &[("a", TEXT), ("b", BIGINT), ("c", BOOL)];

    fn cols(c: &[(&str, pg_sys::Oid)]) -> Vec<(String, pg_sys::Oid)> {
        c.iter().map(|(n, o)| (n.to_string(), *o)).collect()
    }

    #[test]
    fn the_same_columns_and_a_prefix_fit() {
        assert_eq!(fit(&cols(BUILT), BUILT), Fit::Fits);
        assert_eq!(fit(&cols(&BUILT[..2]), BUILT), Fit::Fits);
    }

    #[test]
    fn other_columns_differ() {
        assert_eq!(fit(&[], BUILT), Fit::Differs);
        assert_eq!(fit(&cols(&[("a", TEXT), ("c", BOOL)]), BUILT), Fit::Differs);
        assert_eq!(fit(&cols(&[("a", TEXT), ("b", INT)]), BUILT), Fit::Differs);
        assert_eq!(fit(&cols(&[("x", TEXT)]), BUILT), Fit::Differs);
        let longer = [("a", TEXT), ("b", BIGINT), ("c", BOOL), ("d", TEXT)];
        assert_eq!(fit(&cols(&longer), BUILT), Fit::Differs);
    }
}
