//! pg_twofactor's logic, without PostgreSQL.
//!
//! Everything here is plain Rust over bytes and values, unit-tested without a server; the
//! extension crate (`pg_twofactor`, the repository's root) is the glue that feeds it what
//! PostgreSQL knows and reports what it decides. Nothing here links to PostgreSQL or its
//! bindings (`.ci/test` checks it).
//!
//! - [`methods`]: the two-factor methods, their base methods and PostgreSQL's failure texts;
//! - [`address`]: client addresses, networks and host names, as `hba.c` compares them;
//! - [`cert`]: what a client certificate says (CN, SubjectAltName) and whether it matches;
//! - [`rules`]: the rules file, tokenized, parsed and looked up as `hba.c` does it, for the
//!   [`rules::Syntax`] of the major given;
//! - [`decision`]: one login's verdict and its reason;
//! - [`handshake`]: the check of a certificate's address binding during the TLS handshake,
//!   before any login or password;
//! - [`printable`]: text a client chose (certificate names), escaped for logs and terminals;
//! - [`dn`]: distinguished names in the RFC 2253 form PostgreSQL and OpenSSL print;
//! - [`decision_log`]: the decision-log line as a value, formatted by the hook and read back
//!   by the test harness;
//! - [`dry_run`]: a login described by arguments, for `pg_twofactor_check(...)` and the
//!   command line;
//! - [`expiry`]: dates in UTC and the notice of a certificate that expires soon;
//! - [`config_check`]: the configuration problems the DBA is warned about;
//! - [`os`]: the operating system's C functions, the only module allowed `unsafe` code; in it
//!   [`os::network`], the system resolver (bounded by a deadline during a login) and the
//!   machine's interfaces, the real [`address::Network`];
//! - [`stats`]: the statistics tables kept in shared memory (plain data, no pointers);
//! - [`digests`]: the digests of the rules files and of the settings that decide a login.

#![deny(unsafe_code)]

pub mod address;
pub mod cert;
pub mod config_check;
pub mod decision;
pub mod decision_log;
pub mod digests;
pub mod dn;
pub mod dry_run;
pub mod expiry;
pub mod handshake;
pub mod methods;
#[allow(unsafe_code)]
pub mod os;
pub mod printable;
pub mod rules;
pub mod stats;
