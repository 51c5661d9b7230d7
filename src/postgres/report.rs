//! Reporting through PostgreSQL's `ereport`, with a DETAIL that goes to the server log only
//! (`errdetail_log`), as PostgreSQL does for its own authentication failures.

use crate::postgres::ffi;
use pg_twofactor_core::methods::FailureCode;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::ffi::{c_int, CString};

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).expect("NULs were replaced")
}

/// Reports at `level`; returns unless the level is FATAL or above (then the process exits).
fn report(
    level: u32,
    code: PgSqlErrorCode,
    message: &str,
    detail_log: Option<&str>,
    hint: Option<&str>,
) {
    let message = cstring(message);
    let detail = detail_log.map(cstring);
    let hint = hint.map(cstring);
    // SAFETY: the err* functions are called in the order elog.h's ereport() macro calls them,
    // from the process's main thread, with NUL-terminated strings formatted through "%s" so no
    // user text is interpreted as a format. errmsg/errdetail_log/errhint copy their arguments
    // into ErrorContext before we drop the CStrings. For FATAL, errfinish ends the process.
    unsafe {
        if ffi::errstart(level as c_int, std::ptr::null()) {
            ffi::errcode(code as c_int);
            ffi::errmsg(c"%s".as_ptr(), message.as_ptr());
            if let Some(d) = &detail {
                ffi::errdetail_log(c"%s".as_ptr(), d.as_ptr());
            }
            if let Some(h) = &hint {
                ffi::errhint(c"%s".as_ptr(), h.as_ptr());
            }
            ffi::errfinish(c"pg_twofactor".as_ptr(), 0, c"pg_twofactor".as_ptr());
        }
    }
}

/// Ends the connection: FATAL, SQLSTATE 28000, the message to the client, the detail to the log.
pub fn fatal_auth(message: &str, detail_log: &str) -> ! {
    report(
        pg_sys::FATAL,
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        message,
        Some(detail_log),
        None,
    );
    unreachable!("ereport(FATAL) returned")
}

/// WARNING for a would-be refusal of a `mode=report` rule: SQLSTATE 28000, the detail to the
/// log. During authentication PostgreSQL sends only ERROR and above to the client, so this goes
/// to the server log only.
pub fn warn_auth(message: &str, detail_log: &str) {
    report(
        pg_sys::WARNING,
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        message,
        Some(detail_log),
        None,
    );
}

/// WARNING with a DETAIL, both for the server log only (sent nowhere else during
/// authentication).
pub fn warn_log(message: &str, detail_log: &str) {
    report(
        pg_sys::WARNING,
        PgSqlErrorCode::ERRCODE_WARNING,
        message,
        Some(detail_log),
        None,
    );
}

/// NOTICE to the client (and the log, per log_min_messages).
pub fn notice(message: &str, hint: Option<&str>) {
    report(
        pg_sys::NOTICE,
        PgSqlErrorCode::ERRCODE_WARNING,
        message,
        None,
        hint,
    );
}

/// FATAL for a configuration problem (stops the postmaster when called during startup).
pub fn fatal_config(message: &str, hint: Option<&str>) -> ! {
    report(
        pg_sys::FATAL,
        PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
        message,
        None,
        hint,
    );
    unreachable!("ereport(FATAL) returned")
}

/// A LOG line about the configuration.
pub fn log_config(message: &str) {
    report(
        pg_sys::LOG,
        PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
        message,
        None,
        None,
    );
}

/// A LOG line with a DETAIL for the server log only, never sent to the client, whatever
/// `client_min_messages` says (LOG_SERVER_ONLY, as PostgreSQL's own TLS failures).
pub fn log_server_only(message: &str, detail: &str) {
    report(
        pg_sys::LOG_SERVER_ONLY,
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        message,
        Some(detail),
        None,
    );
}

/// A LOG line reporting that something went as intended.
pub fn log_info(message: &str) {
    report(
        pg_sys::LOG,
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        message,
        None,
        None,
    );
}

/// A WARNING about the configuration.
pub fn warn_config(message: &str, hint: Option<&str>) {
    report(
        pg_sys::WARNING,
        PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
        message,
        None,
        hint,
    );
}

/// Ends the connection the way PostgreSQL's own `auth_failed()` does when the base method
/// fails: `format` is one of [`BaseMethod::postgres_failure`]'s messages (one `%s`, filled with
/// the user name as the client sent it), translated like PostgreSQL's own; `detail_log` goes to
/// the server log only.
///
/// [`BaseMethod::postgres_failure`]: pg_twofactor_core::methods::BaseMethod::postgres_failure
pub fn fatal_as_postgres(
    code: FailureCode,
    format: &'static str,
    user: &[u8],
    detail_log: &str,
) -> ! {
    let sqlstate = match code {
        FailureCode::InvalidPassword => PgSqlErrorCode::ERRCODE_INVALID_PASSWORD,
        FailureCode::InvalidAuthorization => {
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
        }
    };
    let format = cstring(format);
    let user =
        CString::new(user.to_vec()).unwrap_or_else(|_| cstring(&String::from_utf8_lossy(user)));
    let detail = cstring(detail_log);
    // SAFETY: as in `report`. `format` is one of a fixed set of PostgreSQL's own messages,
    // each with exactly one `%s` (unit-tested in `methods`), so errmsg reads exactly one
    // argument, the NUL-terminated user name. errstart's null domain is PostgreSQL's own, so
    // errmsg translates the message exactly as auth_failed() would. FATAL ends the process in
    // errfinish.
    unsafe {
        if ffi::errstart(pg_sys::FATAL as c_int, std::ptr::null()) {
            ffi::errcode(sqlstate as c_int);
            ffi::errmsg(format.as_ptr(), user.as_ptr());
            ffi::errdetail_log(c"%s".as_ptr(), detail.as_ptr());
            // The same source location fields (F, L, R) as PostgreSQL's own report.
            ffi::errfinish(
                c"auth.c".as_ptr(),
                auth_failed_line(),
                c"auth_failed".as_ptr(),
            );
        }
    }
    unreachable!("ereport(FATAL) returned")
}

/// The line PostgreSQL's `auth_failed()` reports its FATAL from, for the running server's
/// major (`server_version_num`), as measured on 15.20, 16.2 and 18.3 (17.6: the line of its
/// `ereport(FATAL,` in auth_failed(), auth.c:329, read from the source by the same rule)
/// (`pgrx-tests/tests/deployment.rs` compares every field with a real wrong-password refusal).
/// Other minor releases of a major are assumed to keep the line; an unknown major gets 0,
/// and then the report carries no line field.
fn auth_failed_line() -> c_int {
    let version = crate::postgres::setting(c"server_version_num")
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    match version / 10000 {
        15 => AUTH_FAILED_LINE_15,
        16 => AUTH_FAILED_LINE_16,
        17 => AUTH_FAILED_LINE_17,
        18 => AUTH_FAILED_LINE_18,
        _ => 0,
    }
}

const AUTH_FAILED_LINE_15: c_int = 334;
const AUTH_FAILED_LINE_16: c_int = 323;
const AUTH_FAILED_LINE_17: c_int = 329;
const AUTH_FAILED_LINE_18: c_int = 317;

/// ERROR for `LOAD` / `CREATE EXTENSION` without preloading. Raised through pgrx's guarded
/// reporting (a Rust panic that `#[pg_guard]` on `_PG_init` turns into the ERROR), so no
/// `longjmp` crosses Rust frames.
pub fn error_not_preloaded() -> ! {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_twofactor must be loaded via shared_preload_libraries",
        "_PG_init",
    )
    .set_hint(
        "Add pg_twofactor to shared_preload_libraries in postgresql.conf and restart the server.",
    )
    .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report returned")
}
