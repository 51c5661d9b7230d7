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

/// A call of every function and view of the extension in the current database, one per line,
/// each reading every column of every row (`t::text`).
const EVERY_OBJECT_CALL: &str = "
SELECT CASE
         WHEN p.proname = 'pg_twofactor_check'
           THEN 'SELECT count(*) FROM pg_twofactor_check(''test1'', ''test'', ''127.0.0.1'', NULL) t WHERE t::text IS NOT NULL'
         WHEN p.prorettype = 'void'::regtype THEN 'SELECT ' || p.proname || '() IS NULL'
         ELSE 'SELECT count(*) FROM ' || p.proname || '() t WHERE t::text IS NOT NULL'
       END
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_twofactor')
UNION ALL
SELECT 'SELECT count(*) FROM ' || c.relname || ' t WHERE t::text IS NOT NULL'
FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND c.relkind = 'v'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_twofactor')
ORDER BY 1";

/// Calls every function and view of the extension in database `db` ([`EVERY_OBJECT_CALL`]) as
/// the superuser: each must give rows, or the ERROR that names `ALTER EXTENSION pg_twofactor
/// UPDATE` (an earlier version's SQL objects under this library); panics otherwise, with the
/// server's log. Returns `"CALL -> rows"` or `"CALL -> error"` per call.
pub fn call_every_object(c: &Cluster, db: &str) -> Vec<String> {
    let mut outcomes = Vec::new();
    for call in c.psql_in(db, EVERY_OBJECT_CALL).lines() {
        let mark = c.log_mark();
        let out = c.psql_admin_raw_in(db, call);
        let answered = out.trim().parse::<u64>().is_ok() || out.trim() == "f";
        let named_the_update = out.contains("ERROR:")
            && out.contains("HINT:  Run ALTER EXTENSION pg_twofactor UPDATE in this database.");
        assert!(
            answered || named_the_update,
            "{db}: {call}: neither rows nor the update's ERROR:\n{out}\nserver log:\n{}",
            c.log_since(mark)
        );
        outcomes.push(format!(
            "{call} -> {}",
            if answered { "rows" } else { "error" }
        ));
    }
    outcomes
}
