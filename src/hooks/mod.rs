//! The hooks: `ClientAuthentication_hook` (the second factor) and `openssl_tls_init_hook`
//! (which the postmaster runs on every reload, after the new settings are in effect; we use
//! it to re-read the rules).
//!
//! The login hook does nothing when PostgreSQL already failed the login; otherwise it turns
//! the `Port` into a [`LoginAttempt`] and calls [`decision::decide`]. Then it chains the
//! previous hook with the status that will apply (`STATUS_ERROR` when it refuses, so
//! `auth_delay` and failed-login counters see the failure), and only then raises the FATAL.
//! Any panic or PostgreSQL error on the way is a refusal.

use crate::postgres::catalog::ServerCatalog;
use crate::postgres::{connection, ffi, report};
use crate::settings::LogDecisions;
use crate::{rules_in_force, settings, shared_memory};
use pg_twofactor_core::address::{self, KnownHost};
use pg_twofactor_core::decision::{self, LoginAttempt, PeerCert, Reason, Verdict, VerifiedCert};
use pg_twofactor_core::decision_log::LogRecord;
use pg_twofactor_core::methods::BaseMethod;
use pg_twofactor_core::os::network::SystemNetwork;
pub mod expiry;
pub mod handshake;
use pgrx::pg_sys;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

const STATUS_OK: c_int = 0;
const STATUS_ERROR: c_int = -1;
const STATUS_EOF: c_int = -2;

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
    report::warn_config(
        "pg_twofactor: this PostgreSQL version has no openssl_tls_init_hook, so the rules file is read at server start only",
        Some("Restart the server to apply changes to the rules file."),
    );
    // once, here, rather than in each login's backend
    pg_twofactor_core::cert::build_parser_tables();
}

#[cfg(has_tls_init_hook)]
unsafe extern "C-unwind" fn tls_init(ctx: *mut ffi::SSL_CTX, is_server_start: bool) {
    // SAFETY: PREV_TLS_INIT was written once in init(), before this hook could run.
    if let Some(prev) = unsafe { PREV_TLS_INIT } {
        // SAFETY: the previous hook (PostgreSQL's default passphrase setup, or another
        // library's) expects exactly the arguments PostgreSQL gave us.
        unsafe { prev(ctx, is_server_start) };
    }
    // SAFETY: PostgreSQL's new context, as handed to this hook.
    unsafe { handshake::install(ctx) };
    // At server start _PG_init has already loaded the rules.
    if !is_server_start {
        // We run inside the postmaster's SIGHUP handling: never let a panic escape.
        if catch_unwind(rules_in_force::reload).is_err() {
            report::log_config("pg_twofactor: internal error while reloading the rules; the previous rules stay in force");
        }
    }
}

unsafe extern "C-unwind" fn client_authentication(port: *mut ffi::Port, status: c_int) {
    // Decide first, so that the hooks before us see the status that really applies. The
    // decision runs whether or not PostgreSQL accepted the password (its lookups, its work),
    // so that nothing a client can observe depends on the password being right; when
    // PostgreSQL refused, the result is thrown away (PostgreSQL refuses the login itself). A
    // client that hung up during the exchange (STATUS_EOF) sent no password at all.
    let refusal = if port.is_null() || status == STATUS_EOF {
        None
    } else {
        let applies = status == STATUS_OK;
        // SAFETY: `port` is MyProcPort, valid and fully initialised once PostgreSQL has
        // chosen the pg_hba.conf line and run its method.
        let refusal = unsafe { decide(port, applies) };
        refusal.filter(|_| applies)
    };
    let applied = if refusal.is_some() {
        STATUS_ERROR
    } else {
        status
    };
    // SAFETY: PREV_CLIENT_AUTH was written once in init(), before this hook could run.
    if let Some(prev) = unsafe { PREV_CLIENT_AUTH } {
        // SAFETY: PostgreSQL's own Port, with the status PostgreSQL will act on: ours when we
        // refuse (auth_delay then delays, failed-login counters count), PostgreSQL's otherwise.
        // An ERROR or FATAL raised there ends the process (during authentication there is no
        // exception handler, so ERROR is promoted to FATAL): no longjmp lands in our frames.
        unsafe { prev(port, applied) };
    }
    if let Some(refusal) = refusal {
        refusal.raise();
    }
}

/// A refusal decided by the hook, raised after the previous hooks ran.
struct Refusal {
    user: Vec<u8>,
    reason: Reason,
    detail: String,
    /// The method of the pg_hba.conf line PostgreSQL used, when it could be read.
    hba_method: Option<BaseMethod>,
}

impl Refusal {
    /// FATAL: with `pg_twofactor.client_reason = on` the two-factor message; with `off`
    /// exactly PostgreSQL's own failure of the base method, the two-factor message going to
    /// the server log only.
    fn raise(self) -> ! {
        let message = Verdict::message(&self.user, self.reason);
        if logs_authenticated_connections() {
            report::log_info(&format!(
                "pg_twofactor: the login of user \"{}\" that PostgreSQL logged as authenticated is refused by pg_twofactor ({})",
                String::from_utf8_lossy(&self.user).escape_debug(),
                self.reason
            ));
        }
        if settings::client_reason() {
            report::fatal_auth(&message, &self.detail)
        }
        let method = self
            .hba_method
            .unwrap_or_else(|| BaseMethod::Other("unknown".into()));
        let (code, format) = method.postgres_failure();
        report::fatal_as_postgres(
            code,
            format,
            &self.user,
            &format!(
                "pg_twofactor refused the login ({message}); pg_twofactor.client_reason is off, so the client was sent PostgreSQL's own {method} failure. {}",
                self.detail
            ),
        )
    }
}

/// Whether PostgreSQL logs `connection authenticated: ...` lines (`log_connections` on in
/// 15-17, a bool there; on 18 `on`, `all` or a list naming `authentication`). Such a line is
/// logged before this hook runs: `identity="..."` when the password check passed (all
/// majors), and from 17 on also `user="..."` for a method that sets no identity (`trust`). A
/// refusal then says that it overrules it, so nobody reading the log takes the session for
/// established.
fn logs_authenticated_connections() -> bool {
    let Some(value) = crate::postgres::setting(c"log_connections") else {
        return false;
    };
    let value = value.to_ascii_lowercase();
    matches!(value.trim(), "on" | "true" | "yes" | "1" | "all")
        || value.split(',').any(|v| v.trim() == "authentication")
}

/// The verdict for a login: `None` lets it in. Never panics or raises: anything unexpected is
/// an internal-error refusal. `applies`: PostgreSQL accepted the password, so the verdict is
/// logged, counted and acted on; otherwise the same work is done (the lookups above all) and
/// nothing is logged, counted or warned about, and the caller throws the verdict away.
///
/// # Safety
/// `port` is MyProcPort during ClientAuthentication, after PostgreSQL's own method ran.
unsafe fn decide(port: *mut ffi::Port, applies: bool) -> Option<Refusal> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per the function contract.
        let mut attempt = unsafe { login_attempt(port) }?;
        handshake_check_ran(&attempt)?;
        // the deadline is read only if a lookup is needed (most logins make none)
        let network = SystemNetwork::bounded_by(connection::authentication_deadline);
        let (verdict, report, cert) = rules_in_force::with_current(|rules| {
            if rules.pins_issuer_key() {
                // SAFETY: per the function contract.
                attempt.issuer_key = unsafe { issuer_key(port) };
            }
            let d = decision::decide_all(
                rules,
                &attempt,
                settings::enabled_methods(),
                &network,
                &ServerCatalog::new(),
            );
            // counted whether or not the password was right (see shared_memory::record)
            let cert = record(&attempt, &d, applies);
            if !applies {
                return (d.verdict, None, None);
            }
            if let Some((observed, _)) = &d.report {
                log_decision(&attempt, observed, "");
            }
            log_decision(&attempt, &d.verdict, &d.undecided_text());
            (d.verdict, d.report.map(|(v, _)| v), cert)
        })
        .ok_or_else(|| "No pg_twofactor rules are loaded.".to_string())?;
        if let Some(Verdict::Reported { reason, detail, .. }) = &report {
            report::warn_auth(
                &format!(
                    "{} (mode=report: not enforced)",
                    Verdict::message(&attempt.user, *reason)
                ),
                detail,
            );
        }
        if !matches!(verdict, Verdict::Refused { .. }) {
            if let (Some(key), PeerCert::Verified(verified)) = (cert, &attempt.cert) {
                let warned = catch_unwind(AssertUnwindSafe(|| {
                    let der = verified.der();
                    expiry::check(&attempt.user, der, key, settings::expiry_warning_secs())
                }));
                if warned.is_err() {
                    report::log_info("pg_twofactor: could not check the client certificate's expiry; the login goes on");
                }
            }
        }
        Ok::<_, String>((attempt, verdict))
    }));
    match outcome {
        Ok(Ok((_, Verdict::NotCovered)))
        | Ok(Ok((_, Verdict::Accepted { .. })))
        | Ok(Ok((_, Verdict::Reported { .. })))
        | Ok(Ok((_, Verdict::Exempt { .. }))) => None,
        Ok(Ok((attempt, Verdict::Refused { reason, detail, .. }))) => Some(Refusal {
            user: attempt.user,
            reason,
            detail,
            hba_method: Some(attempt.hba_method),
        }),
        Ok(Err(_)) | Err(_) if !applies => {
            // counted like any refusal, whatever the password (see shared_memory::record)
            let _ = catch_unwind(shared_memory::record_internal);
            None
        }
        Ok(Err(why)) => {
            // SAFETY: per the function contract.
            Some(unsafe { internal(port, &why) })
        }
        Err(_) => {
            let why = "The two-factor check failed unexpectedly (see the preceding log lines).";
            // SAFETY: per the function contract.
            Some(unsafe { internal(port, why) })
        }
    }
}

/// With `pg_twofactor.handshake_check` on, a verified client certificate must have gone through
/// the handshake check; if it did not (another library set OpenSSL's certificate-verify
/// callback after ours, and OpenSSL keeps only one), nothing checked its address binding before
/// the password, so the login is refused, whoever it is, rather than silently unprotected.
fn handshake_check_ran(attempt: &LoginAttempt) -> Result<(), String> {
    if settings::handshake_check()
        && matches!(attempt.cert, PeerCert::Verified(_))
        && !handshake::ran()
    {
        return Err("pg_twofactor.handshake_check is on, but the client certificate did not go through the TLS handshake check: another library may have replaced OpenSSL's certificate-verify callback (load pg_twofactor last in shared_preload_libraries).".into());
    }
    Ok(())
}

/// Counts the decision and remembers the certificate (statistics only: a failure here is
/// logged and changes nothing about the login, which is already decided). `logged_in`:
/// PostgreSQL accepted the password.
fn record(
    attempt: &LoginAttempt,
    d: &decision::Decision<'_>,
    logged_in: bool,
) -> Option<pg_twofactor_core::cert::CertKey> {
    match catch_unwind(AssertUnwindSafe(|| {
        shared_memory::record(attempt, d, logged_in)
    })) {
        Ok(cert) => cert,
        Err(_) => {
            report::log_info("pg_twofactor: could not update the statistics in shared memory; the decision stands");
            None
        }
    }
}

/// An internal-error refusal when no decision could be made: what can still be read from the
/// Port (the user name, the pg_hba.conf method) is read here, off the common path.
///
/// # Safety
/// As for [`decide`].
unsafe fn internal(port: *mut ffi::Port, why: &str) -> Refusal {
    let user = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per the function contract.
        unsafe { connection::bytes((*port).user_name) }
    }))
    .unwrap_or_default();
    let hba_method = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per the function contract; `hba` is PostgreSQL's chosen line, or null.
        unsafe { (*port).hba.as_ref().map(|h| base_method(h.auth_method)) }
    }))
    .ok()
    .flatten();
    log_internal(&user);
    let _ = catch_unwind(shared_memory::record_internal);
    Refusal {
        user,
        reason: Reason::Internal,
        detail: decision::sentence(why),
        hba_method,
    }
}

/// The decision-log line of a refusal without a decision (the Port could not be read, no
/// rules, a panic).
fn log_internal(user: &[u8]) {
    if settings::log_decisions() != LogDecisions::Off {
        report::log_info(&LogRecord::internal(user).to_string());
    }
}

/// The decision log (`pg_twofactor.log_decisions`): one LOG line per decision
/// ([`LogRecord`]), ending with the rules that could not be decided (`undecided`,
/// [`decision::Decision::undecided_text`]).
fn log_decision(attempt: &LoginAttempt, verdict: &Verdict, undecided: &str) {
    let what = match (settings::log_decisions(), verdict) {
        (LogDecisions::Off, _) => return,
        (LogDecisions::Refused, Verdict::Refused { .. } | Verdict::Reported { .. })
        | (LogDecisions::All, _) => verdict,
        (LogDecisions::Refused, _) => return,
    };
    report::log_info(&LogRecord::of(attempt, what, undecided).to_string());
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
        U::uaSSPI => BaseMethod::Other("sspi".into()),
        U::uaBSD => BaseMethod::Other("bsd".into()),
        // 18 added OAuth; 17's UserAuth is 16's (hba.h), ending with uaPeer
        #[cfg(feature = "pg18")]
        U::uaOAuth => BaseMethod::Other("oauth".into()),
        U::uaReject | U::uaImplicitReject => BaseMethod::Other("reject".into()),
        other => BaseMethod::Other(format!("method #{other}")),
    }
}

/// The SHA-256 of the SubjectPublicKeyInfo of the certificate that issued the client's
/// certificate, in the chain OpenSSL verified (for `issuer_key=`); `None` when there is no
/// verified chain or it cannot be read (a rule that pins a key then refuses).
///
/// # Safety
/// As for [`decide`].
unsafe fn issuer_key(port: *mut ffi::Port) -> Option<[u8; 32]> {
    // SAFETY: per the function contract; `ssl` is the connection's SSL object or null, and
    // the chain is owned by it for the life of the connection.
    let der = unsafe { connection::verified_issuer_der((*port).ssl) }?;
    pg_twofactor_core::cert::spki_sha256(&der).ok()
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
            PeerCert::Verified(VerifiedCert::new(connection::peer_der(p.peer)?))
        };
        if p.hba.is_null() {
            return Err("PostgreSQL chose no pg_hba.conf line.".into());
        }
        let hba = &*p.hba;
        #[cfg(has_hba_sourcefile)]
        let hba_file = (!hba.sourcefile.is_null()).then(|| {
            std::ffi::CStr::from_ptr(hba.sourcefile)
                .to_string_lossy()
                .into_owned()
        });
        #[cfg(not(has_hba_sourcefile))]
        let hba_file = None;
        let remote_hostname =
            (!p.remote_hostname.is_null()).then(|| connection::bytes(p.remote_hostname));
        Ok(LoginAttempt {
            database: connection::bytes(p.database_name),
            user: connection::bytes(p.user_name),
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
            issuer_key: None,
        })
    }
}
