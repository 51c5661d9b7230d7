//! `pg_twofactor_library_version()`: the version of the pg_twofactor library this server
//! loaded. pg_twofactor is in `shared_preload_libraries`, so a new package takes effect only at
//! the next restart; until then the library is the earlier one, whatever is on disk. Beside
//! `pg_extension.extversion` (the version of the SQL objects in this database) it tells a DBA
//! which of the two steps of an upgrade is still to do.
//!
//! The 0.3.0 -> 0.4.0 update script creates this function first: its C symbol exists only in
//! the 0.4.0 library and later, so `ALTER EXTENSION pg_twofactor UPDATE` run before the restart
//! fails before it changes anything (an earlier library would build earlier rows for the new
//! definitions).

use pgrx::prelude::*;

#[pg_extern(stable, parallel_safe)]
fn pg_twofactor_library_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
