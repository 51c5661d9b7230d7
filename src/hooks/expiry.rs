//! `pg_twofactor.expiry_warning`: a login whose client certificate expires soon gets a WARNING
//! in the server log (at authentication) and a NOTICE to the client. During authentication
//! PostgreSQL sends the client nothing below ERROR, so the NOTICE waits for the commit of the
//! transaction that `InitPostgres` opened before authentication (and commits once the session
//! is set up): by then the client has its AuthenticationOk and reads notices.

use crate::postgres::report;
use pg_twofactor_core::cert::{CertKey, CertSummary};
use pg_twofactor_core::expiry::{notice, utc};
use pgrx::pg_sys;
use std::cell::RefCell;
use std::ffi::c_void;

thread_local! {
    static PENDING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// At a login that pg_twofactor lets in: warns when the certificate (`der`, whose key is
/// `key`) expires soon. Its names are printed only then.
pub fn check(user: &[u8], der: &[u8], key: CertKey, warn_secs: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let Some(text) = notice(key.not_after, now, warn_secs) else {
        return;
    };
    let Ok(cert) = CertSummary::from_der(der) else {
        return;
    };
    report::warn_log(
        &format!(
            "client certificate of user \"{}\" expires on {}",
            String::from_utf8_lossy(user),
            utc(cert.not_after)
        ),
        &format!(
            "Certificate CN \"{}\", serial {}, issuer \"{}\"; pg_twofactor.expiry_warning is {} day(s).",
            cert.common_name,
            cert.serial,
            cert.issuer,
            warn_secs / 86_400
        ),
    );
    PENDING.with(|p| *p.borrow_mut() = Some(text));
    // SAFETY: registers a plain function with no argument; it unregisters itself when it runs.
    unsafe { pg_sys::RegisterXactCallback(Some(at_commit), std::ptr::null_mut()) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_commit(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    if event != pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT
        && event != pg_sys::XactEvent::XACT_EVENT_ABORT
    {
        return;
    }
    // SAFETY: CallXactCallbacks lets a callback unregister itself while it runs.
    unsafe { pg_sys::UnregisterXactCallback(Some(at_commit), std::ptr::null_mut()) };
    let text = PENDING.with(|p| p.borrow_mut().take());
    if let (Some(text), pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT) = (text, event) {
        report::notice(
            &text,
            Some("Ask for a new client certificate before this one expires."),
        );
    }
}
