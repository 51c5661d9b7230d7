//! The SQL surface: one file per SQL object the extension makes. The functions are made by
//! pgrx from the `#[pg_extern]`s here; the views over them, their comments and their grants
//! are in `sql/pg_twofactor.sql` (below), the upgrade scripts in `sql/`.
//!
//! - [`rules_view`]: `pg_twofactor_rules`, the rules file as it is on disk now;
//! - [`dry_run`]: `pg_twofactor_check(...)`, what the hook would decide for a login;
//! - [`status`]: `pg_twofactor_status()`, the rules in force and the settings they depend on;
//! - [`config_problems`]: `pg_twofactor_config_problems`, what the configuration check finds;
//! - [`statistics`]: `pg_twofactor_stats` and `pg_twofactor_stats_reset()`;
//! - [`certificates`]: `pg_twofactor_certificates`, the client certificates seen;
//! - [`library_version`]: `pg_twofactor_library_version()`, the library this server loaded;
//! - [`row_shape`]: each function's check that the SQL definition calling it declares the
//!   columns it builds (the upgrade window: a new library, an old definition).

use pgrx::prelude::*;

pub mod certificates;
pub mod config_problems;
pub mod dry_run;
pub mod library_version;
pub mod row_shape;
pub mod rules_view;
pub mod statistics;
pub mod status;

// The views, comments and grants of every SQL object.
extension_sql_file!("../../sql/pg_twofactor.sql", name = "objects", finalize);

/// A PostgreSQL timestamp for a column, NULL for 0 (never).
pub(super) fn timestamp(t: i64) -> Option<TimestampWithTimeZone> {
    (t != 0)
        .then(|| TimestampWithTimeZone::try_from(t).ok())
        .flatten()
}
