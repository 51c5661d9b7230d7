//! pg_twofactor: two-factor login for stock PostgreSQL.
//!
//! `pg_hba.conf` keeps checking the password with PostgreSQL's own methods; the rules file
//! (`pg_twofactor_hba.conf`) says which logins must also present a verified client certificate
//! whose CN is the login and whose SubjectAltName matches the client address.
//!
//! Pure logic: [`methods`], [`address`], [`rules`], [`cert`], [`decision`], [`counters`],
//! [`lint`].
//! PostgreSQL glue: [`gucs`], [`store`], [`hooks`], [`catalog`], [`elog`], [`ffi`], [`sysnet`].
//! SQL interface: [`view`] (the rules view), [`check`] (the dry run), [`status`], [`shmem`]
//! (statistics and certificates seen, with [`expiry`] warnings).

pub mod address;
pub mod cert;
pub mod counters;
pub mod decision;
pub mod lint;
pub mod methods;
pub mod rules;

pub mod arena;
pub mod catalog;
pub mod check;
pub mod elog;
pub mod expiry;
pub mod ffi;
pub mod gucs;
pub mod hooks;
pub mod shmem;
pub mod status;
pub mod store;
pub mod sysnet;
pub mod view;

use pgrx::prelude::*;

::pgrx::pg_module_magic!();

/// Rust allocations go to `malloc`, except while the rules in force are being frozen into their
/// own arena (see [`arena`]).
#[global_allocator]
static ALLOCATOR: arena::ArenaOrSystem = arena::ArenaOrSystem;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: a plain read of a PostgreSQL global, on the main thread.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        elog::error_not_preloaded();
    }
    gucs::init();
    shmem::init();
    hooks::init();
    store::load_at_startup();
}
