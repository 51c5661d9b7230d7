//! The end-to-end test harness for pg_twofactor: generated certificates, real clusters with the
//! extension preloaded, and real clients (`psql` and a Rust client that can pick its source
//! address). The scenarios are in `tests/`.

pub mod certs;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod dns;
pub mod ldap;
pub mod netns;
pub mod oracle;
pub mod patroni;
pub mod ports;
pub mod radius;
pub mod scenario;
pub mod shadow;
pub mod wire;

pub use certs::{CertFiles, Pki, San};
pub use client::{
    psql_login, psql_run, rust_login, rust_query, two_factor, Login, Outcome, PsqlRun,
};
pub use cluster::Cluster;

/// A numeric setting from the environment (`LOAD_CLIENTS=300`), or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
