//! Shared memory: the statistics and the certificates seen, each a fixed-size table
//! ([`pg_twofactor_core::stats`]) behind its own LWLock, made when the server starts and kept
//! across backends (and reset by crash recovery, like PostgreSQL's own shared memory).
//!
//! The hook records here; the SQL functions that show the tables are in
//! [`crate::sql::statistics`] and [`crate::sql::certificates`].

use pg_twofactor_core::cert::{CertKey, CertSummary};
use pg_twofactor_core::decision::{LoginAttempt, PeerCert, Verdict};
use pg_twofactor_core::rules::RuleView;
use pg_twofactor_core::stats::{
    CertSlot, CertTable, Counted, Outcome, SeenCert, StatRow, StatsTable,
};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic, PgLwLock};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A core table in shared memory (a local type, so that pgrx's trait can be implemented for it).
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct Shared<T>(T);

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

// SAFETY: plain Copy data (integers and byte arrays), no pointers: valid in every process that
// maps it.
unsafe impl PGRXSharedMemory for Shared<StatsTable> {}
// SAFETY: as above.
unsafe impl PGRXSharedMemory for Shared<CertTable> {}

// SAFETY: `new` only names the LWLock tranche; the lock is set up by pg_shmem_init! in
// _PG_init (init below) before any backend can use it.
static STATS: PgLwLock<Shared<StatsTable>> = unsafe { PgLwLock::new(c"pg_twofactor_stats") };
// SAFETY: as above.
static CERTS: PgLwLock<Shared<CertTable>> = unsafe { PgLwLock::new(c"pg_twofactor_certificates") };

// TLS handshakes refused by the handshake check, and when the last one was: atomics, because
// the handshake runs before the backend has a PGPROC, so it cannot take an LWLock.
// SAFETY: `new` only names the shared-memory area; pg_shmem_init! in _PG_init (init below)
// attaches it before any backend can use it.
static HANDSHAKE_REFUSED: PgAtomic<AtomicU64> =
    unsafe { PgAtomic::new(c"pg_twofactor_handshake_refused") };
// SAFETY: as above.
static HANDSHAKE_LAST: PgAtomic<AtomicI64> =
    unsafe { PgAtomic::new(c"pg_twofactor_handshake_last") };

/// Seconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_UNIX: i64 = 946_684_800;

pub fn init() {
    pg_shmem_init!(STATS);
    pg_shmem_init!(CERTS);
    pg_shmem_init!(HANDSHAKE_REFUSED);
    pg_shmem_init!(HANDSHAKE_LAST);
}

/// Counts a TLS handshake refused by the handshake check (no lock: see HANDSHAKE_REFUSED).
pub fn record_handshake_refusal() {
    HANDSHAKE_REFUSED.get().fetch_add(1, Ordering::Relaxed);
    HANDSHAKE_LAST.get().store(now(), Ordering::Relaxed);
}

/// The handshakes refused since start or the last reset, and when the last one was (0: never).
pub fn handshake_refusals() -> (u64, i64) {
    (
        HANDSHAKE_REFUSED.get().load(Ordering::Relaxed),
        HANDSHAKE_LAST.get().load(Ordering::Relaxed),
    )
}

/// The current time as a PostgreSQL timestamp.
pub fn now() -> i64 {
    // SAFETY: GetCurrentTimestamp only reads the clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Seconds since 1970 as a PostgreSQL timestamp.
pub fn pg_time(unix_secs: i64) -> i64 {
    unix_secs
        .saturating_sub(PG_EPOCH_UNIX)
        .saturating_mul(1_000_000)
}

fn count(table: &mut StatsTable, verdict: &Verdict, rule: Option<&RuleView<'_>>, now: i64) {
    let file = verdict.rule().map(|(f, _)| f.to_string_lossy());
    let decision = Counted {
        rule: match (&file, verdict.rule(), rule) {
            (Some(f), Some((_, line)), Some(r)) => Some((f.as_ref(), line as u32, r.fingerprint)),
            _ => None,
        },
        outcome: Outcome::of(verdict),
        reason: verdict.reason(),
    };
    table.record(&decision, now);
}

/// Counts a decision (and the report-mode rule's finding, if any), and remembers the client's
/// certificate when TLS verified one. Returns the certificate's key for the expiry warning
/// when the login goes on.
///
/// `logged_in`: PostgreSQL accepted the password. The tables are read by `pg_read_all_stats`,
/// who must not learn from them whether a password was right: a refusal (or a report-mode
/// finding) is counted, and a certificate's use recorded, whatever the password was;
/// acceptances, exemptions, logins no rule covers and a certificate's `last_accepted` only for
/// logins that go on, which are sessions that role sees anyway (`pg_stat_activity`).
pub fn record(
    attempt: &LoginAttempt,
    d: &pg_twofactor_core::decision::Decision<'_>,
    logged_in: bool,
) -> Option<CertKey> {
    let now = now();
    {
        let mut table = STATS.exclusive();
        if let Some((observed, rule)) = &d.report {
            count(&mut table, observed, Some(rule), now);
        }
        if logged_in || is_refusal(&d.verdict) {
            count(&mut table, &d.verdict, d.rule.as_ref(), now);
        }
    }
    let PeerCert::Verified(cert) = &attempt.cert else {
        return None;
    };
    // the decision's reading of the certificate when a rule read it (no second parse)
    let key = cert.key().ok()?;
    let seen = SeenCert {
        id: key.id,
        summary: None,
        not_after: pg_time(key.not_after),
        user: &String::from_utf8_lossy(&attempt.user),
        address: &attempt
            .client_addr
            .map_or_else(String::new, |a| a.to_string()),
        accepted: logged_in && !matches!(d.verdict, Verdict::Refused { .. }),
    };
    // a certificate seen before is recorded as it is; a new one's row needs its names, which
    // are printed outside the lock
    let recorded = CERTS.exclusive().record(&seen, now);
    if !recorded {
        let summary = CertSummary::from_der(cert.der()).ok()?;
        let seen = SeenCert {
            summary: Some(&summary),
            ..seen
        };
        CERTS.exclusive().record(&seen, now);
    }
    logged_in.then_some(key)
}

/// A verdict counted whatever the password (see [`record`]).
fn is_refusal(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Refused { .. } | Verdict::Reported { .. })
}

/// Counts a refusal made without a decision (the Port could not be read, no rules, a panic).
pub fn record_internal() {
    let decision = Counted {
        rule: None,
        outcome: Outcome::Refused,
        reason: Some(pg_twofactor_core::decision::Reason::Internal),
    };
    STATS.exclusive().record(&decision, now());
}

/// The statistics rows and when they were last reset.
pub fn stats_rows() -> (Vec<StatRow>, i64) {
    let t = STATS.share();
    (t.rows(), t.reset_at)
}

/// `pg_twofactor_stats_reset()`.
pub fn reset_stats() {
    let mut table = STATS.exclusive();
    table.reset(now());
    HANDSHAKE_REFUSED.get().store(0, Ordering::Relaxed);
    HANDSHAKE_LAST.get().store(0, Ordering::Relaxed);
}

/// The certificates seen.
pub fn certificate_rows() -> Vec<CertSlot> {
    CERTS.share().rows()
}
