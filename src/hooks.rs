//! The hooks: `ClientAuthentication_hook` (the second factor) and `openssl_tls_init_hook`
//! (which the postmaster runs on every reload, after the new settings are in effect; we use
//! it to re-read the rules).
//!
//! The login hook chains the previous hook, does nothing when PostgreSQL already failed the
//! login, turns the `Port` into a [`LoginAttempt`], calls [`decision::decide`] and turns a
//! refusal into FATAL. Any panic or PostgreSQL error on the way is a refusal.

use crate::address::{self, KnownHost};
use crate::catalog::ServerCatalog;
use crate::decision::{self, LoginAttempt, PeerCert, Reason, Verdict};
use crate::gucs::LogDecisions;
use crate::methods::BaseMethod;
use crate::sysnet::SystemNetwork;
use crate::{elog, ffi, gucs, store};
use pgrx::pg_sys;
use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

const STATUS_OK: c_int = 0;

static mut PREV_CLIENT_AUTH: ffi::ClientAuthentication_hook_type = None;
#[cfg(has_tls_init_hook)]
static mut PREV_TLS_INIT: ffi::openssl_tls_init_hook_typ = None;

pub fn init() {
    // SAFETY: called once from _PG_init in the postmaster, single-threaded, before any
    // connection or reload can run the hooks.
    unsafe {
        PREV_CLIENT_AUTH = ffi::ClientAuthentication_hook;
        ffi::ClientAuthentication_hook = Some(client_authentication);
    }
    #[cfg(has_tls_init_hook)]
    // SAFETY: as above.
    unsafe {
        PREV_TLS_INIT = ffi::openssl_tls_init_hook;
        ffi::openssl_tls_init_hook = Some(tls_init);
    }
    #[cfg(not(has_tls_init_hook))]
    elog::warn_config(
        "pg_twofactor: this PostgreSQL version has no openssl_tls_init_hook, so the rules file is read at server start only",
        Some("Restart the server to apply changes to the rules file."),
    );
}

#[cfg(has_tls_init_hook)]
unsafe extern "C-unwind" fn tls_init(ctx: *mut ffi::SSL_CTX, is_server_start: bool) {
    // SAFETY: PREV_TLS_INIT was written once in init(), before this hook could run.
    if let Some(prev) = unsafe { PREV_TLS_INIT } {
        // SAFETY: the previous hook (PostgreSQL's default passphrase setup, or another
        // library's) expects exactly the arguments PostgreSQL gave us.
        unsafe { prev(ctx, is_server_start) };
    }
    // At server start _PG_init has already loaded the rules.
    if !is_server_start {
        // We run inside the postmaster's SIGHUP handling: never let a panic escape.
        if catch_unwind(store::reload).is_err() {
            elog::log_config("pg_twofactor: internal error while reloading the rules; the previous rules stay in force");
        }
    }
}

unsafe extern "C-unwind" fn client_authentication(port: *mut ffi::Port, status: c_int) {
    // SAFETY: PREV_CLIENT_AUTH was written once in init(), before this hook could run.
    if let Some(prev) = unsafe { PREV_CLIENT_AUTH } {
        // SAFETY: we pass PostgreSQL's own arguments on to the hook that was there before us.
        unsafe { prev(port, status) };
    }
    if status != STATUS_OK || port.is_null() {
        return; // PostgreSQL refuses this login itself
    }
    let user = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `port` is MyProcPort, valid for the whole authentication.
        unsafe { bytes((*port).user_name) }
    }))
    .unwrap_or_default();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `port` is MyProcPort, valid and fully initialised once PostgreSQL has chosen
        // the pg_hba.conf line and run its method.
        let attempt = unsafe { login_attempt(port) }?;
        let Some(rules) = store::current() else {
            return Err("no pg_twofactor rules are loaded".to_string());
        };
        let verdict = decision::decide(
            &rules,
            &attempt,
            gucs::enabled_methods(),
            &SystemNetwork,
            &ServerCatalog::new(),
        );
        log_decision(&attempt, &verdict);
        Ok(verdict)
    }));
    match outcome {
        Ok(Ok(Verdict::NotCovered)) | Ok(Ok(Verdict::Accepted { .. })) => {}
        Ok(Ok(Verdict::Refused { reason, detail, .. })) => {
            elog::fatal_auth(&Verdict::message(&user, reason), &detail)
        }
        Ok(Err(why)) => refuse_internal(&user, &why),
        Err(_) => refuse_internal(
            &user,
            "pg_twofactor: the two-factor check failed unexpectedly (see the preceding log lines)",
        ),
    }
}

/// A refusal without a decision (the Port could not be read, no rules, a panic): logged in
/// the decision log too, then FATAL.
fn refuse_internal(user: &[u8], why: &str) -> ! {
    if gucs::log_decisions() != LogDecisions::Off {
        elog::log_info(&format!(
            "pg_twofactor decision: refused (internal error); rule unknown; user \"{}\"",
            String::from_utf8_lossy(user).escape_debug()
        ));
    }
    elog::fatal_auth(&Verdict::message(user, Reason::Internal), why)
}

/// The decision log (`pg_twofactor.log_decisions`): one LOG line per decision.
fn log_decision(attempt: &LoginAttempt, verdict: &Verdict) {
    let what = match (gucs::log_decisions(), verdict) {
        (LogDecisions::Off, _) => return,
        (LogDecisions::Refused, Verdict::Refused { .. }) | (LogDecisions::All, _) => verdict,
        (LogDecisions::Refused, _) => return,
    };
    let outcome = match what {
        Verdict::NotCovered => "not covered".to_string(),
        Verdict::Accepted { .. } => "accepted".to_string(),
        Verdict::Refused { reason, .. } => format!("refused ({reason})"),
    };
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    elog::log_info(&format!(
        "pg_twofactor decision: {outcome}; rule {}; pg_hba.conf {}; user \"{}\"; database \"{}\"; client {}",
        what.rule_position(),
        attempt.hba_position(),
        lossy(&attempt.user).escape_debug(),
        lossy(&attempt.database).escape_debug(),
        attempt
            .client_addr
            .map_or_else(|| "local".to_string(), |a| a.to_string()),
    ));
}

/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn bytes(p: *const std::ffi::c_char) -> Vec<u8> {
    if p.is_null() {
        Vec::new()
    } else {
        // SAFETY: per the contract.
        unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
    }
}

fn base_method(m: ffi::UserAuth::Type) -> BaseMethod {
    use ffi::UserAuth as U;
    match m {
        U::uaSCRAM => BaseMethod::ScramSha256,
        U::uaMD5 => BaseMethod::Md5,
        U::uaPassword => BaseMethod::Password,
        U::uaLDAP => BaseMethod::Ldap,
        U::uaTrust => BaseMethod::Other("trust".into()),
        U::uaCert => BaseMethod::Other("cert".into()),
        U::uaRADIUS => BaseMethod::Radius,
        U::uaPAM => BaseMethod::Other("pam".into()),
        U::uaIdent => BaseMethod::Other("ident".into()),
        U::uaPeer => BaseMethod::Other("peer".into()),
        U::uaGSS => BaseMethod::Other("gss".into()),
        U::uaReject | U::uaImplicitReject => BaseMethod::Other("reject".into()),
        other => BaseMethod::Other(format!("method #{other}")),
    }
}

/// The DER of the client's certificate.
///
/// # Safety
/// `peer` is the X509 that PostgreSQL's TLS layer stored in the Port (owned by the Port).
unsafe fn peer_der(peer: *mut ffi::X509) -> Result<Vec<u8>, String> {
    // SAFETY: i2d_X509 with a null output pointer only computes the length.
    let len = unsafe { ffi::i2d_X509(peer, std::ptr::null_mut()) };
    if len <= 0 {
        return Err("could not DER-encode the client certificate".into());
    }
    let mut buf = vec![0u8; len as usize];
    let mut out = buf.as_mut_ptr();
    // SAFETY: `buf` has the `len` bytes i2d_X509 said it needs; it advances `out` past them.
    let written = unsafe { ffi::i2d_X509(peer, &mut out) };
    if written != len {
        return Err("could not DER-encode the client certificate".into());
    }
    Ok(buf)
}

/// Reads what the decision needs out of the Port. Names stay bytes in the server encoding.
///
/// # Safety
/// `port` is MyProcPort during ClientAuthentication, after PostgreSQL's own method ran.
unsafe fn login_attempt(port: *mut ffi::Port) -> Result<LoginAttempt, String> {
    // SAFETY: see the function contract; every pointer read here is owned by the Port.
    unsafe {
        let p = &*port;
        let client_addr = address::sockaddr_ip(&p.raddr.addr as *const _ as *const libc::sockaddr);
        let cert = if !p.ssl_in_use || p.peer.is_null() {
            PeerCert::None
        } else if !p.peer_cert_valid {
            PeerCert::Unverified
        } else {
            PeerCert::Verified(peer_der(p.peer)?)
        };
        if p.hba.is_null() {
            return Err("PostgreSQL chose no pg_hba.conf line".into());
        }
        let hba = &*p.hba;
        #[cfg(has_hba_sourcefile)]
        let hba_file = (!hba.sourcefile.is_null()).then(|| {
            CStr::from_ptr(hba.sourcefile)
                .to_string_lossy()
                .into_owned()
        });
        #[cfg(not(has_hba_sourcefile))]
        let hba_file = None;
        let remote_hostname = (!p.remote_hostname.is_null()).then(|| bytes(p.remote_hostname));
        Ok(LoginAttempt {
            database: bytes(p.database_name),
            user: bytes(p.user_name),
            client_addr,
            known_host: KnownHost {
                name: remote_hostname,
                resolv: p.remote_hostname_resolv,
                errcode: p.remote_hostname_errcode,
            },
            physical_replication: pg_sys::am_walsender && !pg_sys::am_db_walsender,
            ssl_in_use: p.ssl_in_use,
            cert,
            hba_method: base_method(hba.auth_method),
            hba_line: hba.linenumber,
            hba_file,
        })
    }
}
