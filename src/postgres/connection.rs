//! What the hooks read of a connection: C strings of the `Port`, the client certificate's DER
//! from OpenSSL, and the deadline host-name lookups must keep, during the TLS handshake
//! (`STARTUP_PACKET_TIMEOUT`) or during authentication (`authentication_timeout`).

use crate::postgres::ffi;
use pgrx::pg_sys;
use std::ffi::CStr;

/// How long before `authentication_timeout` fires the hook's host-name lookups give up, so
/// that the refusal (and its reason) reaches the client and the log first: half a second, or a
/// quarter of `authentication_timeout` when that is shorter than two seconds.
const LOOKUP_MARGIN_US: i64 = 500_000;

/// The instant host-name lookups must give up by, and `authentication_timeout` in seconds:
/// the margin before the timeout `id` fires. `None` when it is not armed.
fn deadline_before(id: ffi::TimeoutId::Type) -> Option<(std::time::Instant, i32)> {
    // SAFETY: called in the backend on its one thread; these read the timeout module's table
    // (a valid id), AuthenticationTimeout is a plain int GUC, and GetCurrentTimestamp only
    // reads the clock.
    let (fire_at, now, secs) = unsafe {
        if !ffi::get_timeout_active(id) {
            return None;
        }
        (
            ffi::get_timeout_finish_time(id),
            pg_sys::GetCurrentTimestamp(),
            pg_sys::AuthenticationTimeout,
        )
    };
    let margin = LOOKUP_MARGIN_US.min(i64::from(secs) * 1_000_000 / 4);
    let left = (fire_at - now - margin).max(0) as u64;
    Some((
        std::time::Instant::now() + std::time::Duration::from_micros(left),
        secs,
    ))
}

/// During authentication: the timeout PerformAuthentication armed (it reuses
/// STATEMENT_TIMEOUT for `authentication_timeout`, in 15, 16, 17 and 18).
pub fn authentication_deadline() -> Option<(std::time::Instant, i32)> {
    deadline_before(ffi::TimeoutId::STATEMENT_TIMEOUT)
}

/// During the TLS handshake: STARTUP_PACKET_TIMEOUT, which BackendInitialize arms with
/// `authentication_timeout` before the SSL negotiation (15-18).
pub fn startup_deadline() -> Option<(std::time::Instant, i32)> {
    deadline_before(ffi::TimeoutId::STARTUP_PACKET_TIMEOUT)
}

/// # Safety
/// `p` is null or a NUL-terminated string.
pub unsafe fn bytes(p: *const std::ffi::c_char) -> Vec<u8> {
    if p.is_null() {
        Vec::new()
    } else {
        // SAFETY: per the contract.
        unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
    }
}

/// The DER of the client's certificate.
///
/// # Safety
/// `peer` is a valid X509 that stays alive for the call: the one PostgreSQL's TLS layer stored
/// in the Port, or the one OpenSSL's store context holds during verification.
pub unsafe fn peer_der(peer: *mut ffi::X509) -> Result<Vec<u8>, String> {
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

/// The DER of the certificate that issued the client's certificate in the chain OpenSSL
/// verified for this connection (`SSL_get0_verified_chain`: the client's certificate first,
/// then each issuer; a client certificate that is itself a trusted CA is its own issuer).
/// `None` without TLS or without a verified chain.
///
/// # Safety
/// `ssl` is null or the connection's live SSL object.
pub unsafe fn verified_issuer_der(ssl: *mut ffi::SSL) -> Option<Vec<u8>> {
    if ssl.is_null() {
        return None;
    }
    // SAFETY: a live SSL object; the stack it returns is owned by it (no reference taken).
    let chain = unsafe { ffi::SSL_get0_verified_chain(ssl) };
    if chain.is_null() {
        return None;
    }
    // SAFETY: `chain` is a valid STACK_OF(X509) for the life of `ssl`.
    let count = unsafe { ffi::OPENSSL_sk_num(chain) };
    let index = match count {
        1 => 0,
        n if n >= 2 => 1,
        _ => return None,
    };
    // SAFETY: `index` < count; the element is an X509 owned by the stack.
    let issuer = unsafe { ffi::OPENSSL_sk_value(chain, index) }.cast::<ffi::X509>();
    if issuer.is_null() {
        return None;
    }
    // SAFETY: a valid X509, alive as long as `ssl`.
    unsafe { peer_der(issuer) }.ok()
}
