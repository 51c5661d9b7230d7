//! The rules in force in this process.
//!
//! The postmaster reads the file at startup and again on each reload; backends are forked from
//! the postmaster and so start with the rules that were in force when they were forked. Nothing
//! is read from disk on a connection.

use crate::catalog::PgRegexCheck;
use crate::elog;
use crate::gucs;
use crate::rules::{self, RuleError, RuleSet, Syntax};
use std::sync::{Arc, Mutex};

static RULES: Mutex<Option<Arc<RuleSet>>> = Mutex::new(None);

/// The rules in force, `None` only if they were never loaded (then every covered login fails).
pub fn current() -> Option<Arc<RuleSet>> {
    RULES.lock().ok().and_then(|g| g.clone())
}

fn read() -> Result<RuleSet, Vec<RuleError>> {
    rules::parse_file(&gucs::hba_file(), Syntax::BUILT, &PgRegexCheck).into_rule_set()
}

fn install(set: RuleSet) {
    let msg = format!(
        "pg_twofactor: loaded {} rule(s) from \"{}\"",
        set.rules.len(),
        set.path.display()
    );
    if let Ok(mut g) = RULES.lock() {
        *g = Some(Arc::new(set));
    }
    // Parsing freed far more than the rules keep; hand it back to the OS so the postmaster
    // (which every backend is forked from) stays small.
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
        Ok(set) => install(set),
        Err(errors) => {
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
        Ok(set) => install(set),
        Err(errors) => {
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
