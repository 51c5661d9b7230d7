//! The TLS handshake check (`pg_twofactor.handshake_check`): OpenSSL's certificate-verify
//! callback on every `SSL_CTX` PostgreSQL makes (at start and at every reload, from
//! `openssl_tls_init_hook`). It runs PostgreSQL's own verification first (`X509_verify_cert`,
//! which calls PostgreSQL's `verify_cb` and so keeps its logging), then, for a certificate that
//! verified, checks its address binding ([`pg_twofactor_core::handshake`]). A refusal fails the
//! handshake: the client never sends a startup packet, so no password is ever exchanged.
//!
//! The callback runs inside OpenSSL's frames in a backend that has no PGPROC yet (InitProcess
//! follows the startup packet in 15-18): it never raises an ERROR, never unwinds, and never
//! takes an LWLock (the refusal is counted in atomics, [`crate::shared_memory`]).

use crate::postgres::{connection, ffi, report};
use crate::{settings, shared_memory};
use pg_twofactor_core::address::{self, ClientName, KnownHost};
use pg_twofactor_core::handshake::{self, HandshakeRefusal, HandshakeVerdict, RefusalCause};
use pg_twofactor_core::os::network::SystemNetwork;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the callback sits on the `SSL_CTX` in use: set in the postmaster when the TLS
/// context is made, inherited by every backend it forks.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether OpenSSL called the callback in this backend (for its one connection's certificate).
/// Another library's `openssl_tls_init_hook` may set a certificate-verify callback of its own
/// after ours, and OpenSSL keeps one: the login hook then finds a verified certificate that
/// never went through the check ([`ran`]) and refuses.
static RAN: AtomicBool = AtomicBool::new(false);

/// Whether this backend's client certificate went through the callback.
pub fn ran() -> bool {
    RAN.load(Ordering::Relaxed)
}

/// Puts the callback on a new `SSL_CTX` (called from `openssl_tls_init_hook`, before PostgreSQL
/// sets its own verification mode; PostgreSQL sets no certificate-verify callback of its own).
///
/// # Safety
/// `ctx` is the `SSL_CTX` PostgreSQL just made and handed to `openssl_tls_init_hook`.
pub unsafe fn install(ctx: *mut ffi::SSL_CTX) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: a valid SSL_CTX per the contract; the callback is a plain function that lives as
    // long as the library, and it takes no argument.
    unsafe {
        ffi::SSL_CTX_set_cert_verify_callback(
            ctx,
            Some(verify_client_certificate),
            std::ptr::null_mut(),
        )
    };
    INSTALLED.store(true, Ordering::Relaxed);
}

/// What `pg_twofactor_status()` shows: `on` when the setting is on and the callback sits on
/// the server's TLS context, otherwise why not.
pub fn state() -> &'static str {
    let ssl = crate::postgres::setting(c"ssl").as_deref() == Some("on");
    let ca = crate::postgres::setting(c"ssl_ca_file").is_some_and(|f| !f.is_empty());
    match (settings::handshake_check(), ssl, ca, INSTALLED.load(Ordering::Relaxed)) {
        (false, ..) => "off",
        (true, true, true, true) => "on",
        (true, false, ..) => "on, but not active: ssl is off",
        (true, true, false, _) => {
            "on, but not active: ssl_ca_file is empty, so no client certificate is requested"
        }
        (true, true, true, false) => {
            "on, but not active: this session's server process started before the TLS context had it"
        }
    }
}

/// OpenSSL's certificate-verify callback. Returns what OpenSSL's own verification returned,
/// or 0 (with `X509_V_ERR_APPLICATION_VERIFICATION`) when the certificate's address binding
/// refuses the client.
unsafe extern "C" fn verify_client_certificate(
    store: *mut ffi::X509_STORE_CTX,
    _arg: *mut c_void,
) -> c_int {
    RAN.store(true, Ordering::Relaxed);
    // SAFETY: OpenSSL calls this with the store context it prepared for the peer's chain, in
    // place of the X509_verify_cert it would have called itself.
    let verified = unsafe { ffi::X509_verify_cert(store) };
    if verified <= 0 || !settings::handshake_check() {
        return verified;
    }
    let verdict = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `store` as above, during the handshake of this backend's connection.
        unsafe { judge(store) }
    }))
    .unwrap_or_else(|_| {
        HandshakeVerdict::Refused(HandshakeRefusal {
            cause: RefusalCause::Unreadable("the check failed unexpectedly".into()),
            certificate: None,
        })
    });
    let HandshakeVerdict::Refused(refusal) = verdict else {
        return verified;
    };
    // reporting must not change the verdict: a failure there still refuses; the log line
    // first, so that a failure to count cannot lose it
    let _ = catch_unwind(AssertUnwindSafe(|| log_refusal(&refusal)));
    let _ = catch_unwind(shared_memory::record_handshake_refusal);
    // SAFETY: `store` as above; the error is what OpenSSL reports for the failed handshake.
    unsafe { ffi::X509_STORE_CTX_set_error(store, ffi::X509_V_ERR_APPLICATION_VERIFICATION) };
    0
}

/// The verdict on the peer's certificate for this connection's client address.
///
/// # Safety
/// `store` is the store context OpenSSL handed to the certificate-verify callback.
unsafe fn judge(store: *mut ffi::X509_STORE_CTX) -> HandshakeVerdict {
    // SAFETY: get0 returns the peer's leaf certificate, owned by the store context.
    let peer = unsafe { ffi::X509_STORE_CTX_get0_cert(store) };
    if peer.is_null() {
        return HandshakeVerdict::Refused(HandshakeRefusal {
            cause: RefusalCause::Unreadable("OpenSSL gave no peer certificate".into()),
            certificate: None,
        });
    }
    // SAFETY: a valid X509, owned by the store context for the length of this call.
    let der = match unsafe { connection::peer_der(peer) } {
        Ok(der) => der,
        Err(why) => {
            return HandshakeVerdict::Refused(HandshakeRefusal {
                cause: RefusalCause::Unreadable(why),
                certificate: None,
            })
        }
    };
    let network = SystemNetwork::bounded_by(connection::startup_deadline);
    // SAFETY: MyProcPort is set before the handshake in 15-18 (BackendInitialize) and owned
    // by this backend for its life; null is handled.
    let client = unsafe { client_of(ffi::MyProcPort) };
    let name = client.map(|(addr, known)| ClientName::with_known(&network, addr, known));
    handshake::check(&der, name.as_ref())
}

/// The client's address and what PostgreSQL already knows of its host name.
///
/// # Safety
/// `port` is null or this backend's `Port`.
unsafe fn client_of(port: *mut ffi::Port) -> Option<(std::net::IpAddr, KnownHost)> {
    // SAFETY: per the contract; raddr is filled when the connection was accepted, and the
    // host name (set under log_hostname before the handshake) is a NUL-terminated string or
    // null.
    unsafe {
        let p = port.as_ref()?;
        let addr = address::sockaddr_ip(&p.raddr.addr as *const _ as *const libc::sockaddr)?;
        let known = KnownHost {
            name: (!p.remote_hostname.is_null()).then(|| connection::bytes(p.remote_hostname)),
            resolv: p.remote_hostname_resolv,
            errcode: p.remote_hostname_errcode,
        };
        Some((addr, known))
    }
}

/// One server-log line, never sent to the client (the TLS handshake is under way).
fn log_refusal(refusal: &HandshakeRefusal) {
    // SAFETY: as in client_of; MyProcPort is this backend's Port or null.
    let client = unsafe { client_of(ffi::MyProcPort) }
        .map_or_else(|| "(unknown)".to_string(), |(addr, _)| addr.to_string());
    report::log_server_only(&refusal.message(&client), &refusal.detail());
}
