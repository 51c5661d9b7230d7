//! pg_twofactor: two-factor login for stock PostgreSQL.
//!
//! `pg_hba.conf` keeps checking the password with PostgreSQL's own methods; the rules file
//! (`pg_twofactor_hba.conf`) says which logins must also present a verified client certificate
//! whose CN is the login and whose SubjectAltName matches the client address.
//!
//! This crate is the glue between PostgreSQL and the logic in [`pg_twofactor_core`], grouped
//! by what it talks to:
//! - [`hooks`]: the login hook (and the certificate-expiry notice it leaves) and the reload hook;
//! - [`settings`]: the GUCs;
//! - [`rules_in_force`]: the rules this process enforces, loaded at start and on reload, as a
//!   read-only image ([`pg_twofactor_core::rules::image`]) in a sealed mapping;
//! - [`shared_memory`]: the statistics and the certificates seen;
//! - [`postgres`]: the server's structures, catalog, regular expressions and error reporting;
//! - [`sql`]: the SQL surface, one file per SQL object.

pub mod hooks;
pub mod postgres;
pub mod rules_in_force;
pub mod settings;
pub mod shared_memory;
pub mod sql;

use pgrx::prelude::*;

::pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: a plain read of a PostgreSQL global, on the main thread.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        postgres::report::error_not_preloaded();
    }
    settings::init();
    shared_memory::init();
    hooks::init();
    rules_in_force::load_at_startup();
}
