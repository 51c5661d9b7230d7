//! The standard setup most scenarios share: users for each method, `pg_hba.conf` lines giving
//! each its first factor, matching two-factor rules, and the client certificates.

use crate::certs::{CertFiles, San};
use crate::cluster::{Cluster, ClusterBuilder};

pub const PASSWORD: &str = "first-factor-pw";

/// `pg_hba.conf`: md5user uses md5, pwuser password, mismatch md5 (its rule wants scram),
/// everyone else scram-sha-256, over TLS or not.
pub const HBA: &[&str] = &[
    "hostssl all md5user all md5",
    "hostssl all pwuser all password",
    "hostssl all mismatch all md5",
    "hostssl all all all scram-sha-256",
    "host all all all scram-sha-256",
];

/// The rules: one per user; `other` has none.
pub const RULES: &str = "\
# TYPE  DATABASE USER      ADDRESS  METHOD
hostssl all      md5user   all      2f-md5
hostssl all      pwuser    all      2f-password
hostssl all      mismatch  all      2f-scram-sha-256
hostssl all      sanreq    all      2f-scram-sha-256  san=required
hostssl all      test1     all      2f-scram-sha-256
";

pub const USERS: &[&str] = &["test1", "md5user", "pwuser", "mismatch", "sanreq", "other"];

/// A cluster builder with [`HBA`] and [`RULES`].
pub fn builder() -> ClusterBuilder {
    HBA.iter()
        .fold(Cluster::builder().rules(RULES), |b, l| b.hba(l))
}

/// `builder` with `auth_delay` loaded before pg_twofactor (so it is the hook pg_twofactor
/// chains to), delaying failed logins by `ms`, and every decision logged.
pub fn with_auth_delay(builder: ClusterBuilder, ms: u64) -> ClusterBuilder {
    builder
        .setting("shared_preload_libraries = 'auth_delay,pg_twofactor'")
        .setting(&format!("auth_delay.milliseconds = {ms}"))
        .setting("pg_twofactor.log_decisions = all")
}

/// Starts `builder` and creates [`USERS`] with [`PASSWORD`].
pub fn start(builder: ClusterBuilder) -> Cluster {
    let c = builder.start();
    for u in USERS {
        c.create_user(u, PASSWORD);
    }
    c
}

/// A certificate for `user` bound to 127.0.0.1.
pub fn cert_for(c: &Cluster, user: &str) -> CertFiles {
    c.client_cert(
        user,
        &[user],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    )
}

/// A rules file of `n` rules where only the last covers `user` (from 127.0.0.1): the worst case
/// for the first-match lookup. The others name other users, databases and networks.
pub fn synthetic_rules(n: usize, user: &str) -> String {
    let mut rules = String::with_capacity(n * 64);
    for i in 0..n.saturating_sub(1) {
        rules.push_str(&format!(
            "hostssl db{i} user{i} 10.{}.{}.0/24 2f-scram-sha-256\n",
            i / 256 % 256,
            i % 256
        ));
    }
    rules.push_str(&format!(
        "hostssl all {user} 127.0.0.1/32 2f-scram-sha-256\n"
    ));
    rules
}
