//! The rules in force in this process.
//!
//! The postmaster reads the file at startup and again on each reload; backends are forked from
//! the postmaster and so start with the rules that were in force when they were forked. Nothing
//! is read from disk on a connection.

use crate::arena::Frozen;
use crate::catalog::PgRegexCheck;
use crate::elog;
use crate::gucs;
use crate::rules::{self, RuleError, RuleSet, Syntax};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The rules in force: a leaked `Box`, replaced (and the old one freed) only by `install`, which
/// runs in the postmaster (start and reload), never while a [`with_current`] call is running.
/// Backends inherit it at fork and only read it: no lock, no reference count, nothing in the
/// login path writes to memory shared with the postmaster.
static CURRENT: AtomicPtr<Frozen<RuleSet>> = AtomicPtr::new(std::ptr::null_mut());

/// Runs `f` on the rules in force; `None` only if they were never loaded (then every covered
/// login fails).
pub fn with_current<R>(f: impl FnOnce(&RuleSet) -> R) -> Option<R> {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: a non-null CURRENT points to a live Box made by `install`; it is freed only by a
    // later `install` in the same process, which cannot run during `f` (processes are
    // single-threaded, and `install` never calls back into `with_current`), so the reference
    // does not outlive it.
    (!p.is_null()).then(|| f(unsafe { &*p }))
}

/// The rules file parsed, and how long reading and parsing took.
fn read() -> (Result<RuleSet, Vec<RuleError>>, std::time::Duration) {
    let started = std::time::Instant::now();
    let set = rules::parse_file(&gucs::hba_file(), Syntax::BUILT, &PgRegexCheck).into_rule_set();
    (set, started.elapsed())
}

fn install(set: RuleSet, parse_took: std::time::Duration) {
    // The rules in force live in their own arena; the parsed original and everything parsing
    // left behind are freed, so the malloc heap every backend inherits holds no holes among
    // live rules (see `arena`).
    let started = std::time::Instant::now();
    // SAFETY: deep_clone keeps nothing it allocates anywhere but in the returned copy, which
    // shares no memory with `set`; the frozen rules are only ever read by reference
    // (`with_current`), never cloned out.
    let frozen = unsafe { Frozen::new(|| set.deep_clone()) };
    drop(set);
    let msg = format!(
        "pg_twofactor: loaded {} rule(s) from \"{}\" in {:.1} ms ({} bytes)",
        frozen.rules.len(),
        frozen.path.display(),
        (parse_took + started.elapsed()).as_secs_f64() * 1000.0,
        frozen.bytes()
    );
    let old = CURRENT.swap(Box::into_raw(Box::new(frozen)), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: `old` came from Box::into_raw in an earlier install and was just unpublished;
        // no with_current call is running (see CURRENT).
        drop(unsafe { Box::from_raw(old) });
    }
    // Hand the freed memory back to the OS so the postmaster stays small.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is invalidated.
    unsafe {
        libc::malloc_trim(0);
    }
    elog::log_info(&msg);
}

/// At server start: a missing or invalid file stops the server, naming the file and line.
pub fn load_at_startup() {
    // SAFETY: a plain read of a PostgreSQL global in the postmaster's main thread; the ssl
    // setting has been read from postgresql.conf before shared_preload_libraries are loaded.
    if !unsafe { pgrx::pg_sys::EnableSSL } {
        elog::warn_config(
            "pg_twofactor: ssl is off, so every login a pg_twofactor rule covers will be refused",
            Some("Set ssl = on and ssl_ca_file; pg_twofactor also re-reads its rules only when TLS is re-initialised on reload."),
        );
    }
    match read() {
        (Ok(set), took) => install(set, took),
        (Err(errors), _) => {
            for e in &errors {
                elog::log_config(&e.to_string());
            }
            elog::fatal_config(
                &format!(
                    "could not load pg_twofactor rules file \"{}\": {}",
                    gucs::hba_file().display(),
                    errors[0]
                ),
                Some("Fix the rules file (see the lines logged above) and start the server again."),
            );
        }
    }
}

/// On reload: a valid file replaces the rules; an invalid one is logged line by line and the
/// previous rules stay in force.
pub fn reload() {
    match read() {
        (Ok(set), took) => install(set, took),
        (Err(errors), _) => {
            for e in &errors {
                elog::log_config(&e.to_string());
            }
            elog::log_config(&format!(
                "pg_twofactor rules file \"{}\" was not reloaded; the previous rules stay in force",
                gucs::hba_file().display()
            ));
        }
    }
}
