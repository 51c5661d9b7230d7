//! Shared memory: the statistics and the certificates seen, each a fixed-size table
//! ([`counters`](crate::counters)) behind its own LWLock, made when the server starts and kept
//! across backends (and reset by crash recovery, like PostgreSQL's own shared memory).
//!
//! Also `pg_twofactor_stats`, `pg_twofactor_stats_reset()` and `pg_twofactor_certificates`.

use crate::cert::CertSummary;
use crate::counters::{CertTable, Decision, Outcome, SeenCert, StatsTable};
use crate::decision::{LoginAttempt, PeerCert, Verdict};
use crate::rules::Rule;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};

// SAFETY: plain Copy data (integers and byte arrays), no pointers: valid in every process that
// maps it.
unsafe impl PGRXSharedMemory for StatsTable {}
// SAFETY: as above.
unsafe impl PGRXSharedMemory for CertTable {}

// SAFETY: `new` only names the LWLock tranche; the lock is set up by pg_shmem_init! in
// _PG_init (init below) before any backend can use it.
static STATS: PgLwLock<StatsTable> = unsafe { PgLwLock::new(c"pg_twofactor_stats") };
// SAFETY: as above.
static CERTS: PgLwLock<CertTable> = unsafe { PgLwLock::new(c"pg_twofactor_certificates") };

/// Seconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_UNIX: i64 = 946_684_800;

pub fn init() {
    pg_shmem_init!(STATS);
    pg_shmem_init!(CERTS);
}

fn now() -> i64 {
    // SAFETY: GetCurrentTimestamp only reads the clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Seconds since 1970 as a PostgreSQL timestamp.
pub fn pg_time(unix_secs: i64) -> i64 {
    unix_secs
        .saturating_sub(PG_EPOCH_UNIX)
        .saturating_mul(1_000_000)
}

fn count(table: &mut StatsTable, verdict: &Verdict, rule: Option<&Rule>, now: i64) {
    let file = verdict.rule().map(|(f, _)| f.to_string_lossy());
    let decision = Decision {
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
/// certificate when TLS verified one. Returns the certificate's summary for the expiry
/// warning.
pub fn record(attempt: &LoginAttempt, d: &crate::decision::Decision<'_>) -> Option<CertSummary> {
    let now = now();
    {
        let mut table = STATS.exclusive();
        if let Some((observed, rule)) = &d.report {
            count(&mut table, observed, Some(rule), now);
        }
        count(&mut table, &d.verdict, d.rule, now);
    }
    let PeerCert::Verified(der) = &attempt.cert else {
        return None;
    };
    let summary = CertSummary::from_der(der).ok()?;
    let seen = SeenCert {
        summary: &summary,
        not_after: pg_time(summary.not_after),
        user: &String::from_utf8_lossy(&attempt.user),
        address: &attempt
            .client_addr
            .map_or_else(String::new, |a| a.to_string()),
        accepted: !matches!(d.verdict, Verdict::Refused { .. }),
    };
    CERTS.exclusive().record(&seen, now);
    Some(summary)
}

/// Counts a refusal made without a decision (the Port could not be read, no rules, a panic).
pub fn record_internal() {
    let decision = Decision {
        rule: None,
        outcome: Outcome::Refused,
        reason: Some(crate::decision::Reason::Internal),
    };
    STATS.exclusive().record(&decision, now());
}

fn ts(t: i64) -> Option<TimestampWithTimeZone> {
    (t != 0)
        .then(|| TimestampWithTimeZone::try_from(t).ok())
        .flatten()
}

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_safe)]
fn pg_twofactor_stats() -> TableIterator<
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
    let (rows, reset_at) = {
        let t = STATS.share();
        (t.rows(), t.reset_at)
    };
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
            ts(c.last_checked),
            ts(c.last_accepted),
            ts(c.last_refused),
            ts(c.last_reported),
            ts(reset_at),
        )
    }))
}

#[pg_extern(volatile, parallel_unsafe)]
fn pg_twofactor_stats_reset() {
    STATS.exclusive().reset(now());
}

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_safe)]
fn pg_twofactor_certificates() -> TableIterator<
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
    let rows = CERTS.share().rows();
    let now = now();
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
            ts(r.last_seen),
            ts(r.last_accepted),
            r.logins as i64,
        )
    }))
}
