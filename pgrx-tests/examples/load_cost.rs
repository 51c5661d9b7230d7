//! How long loading the rules takes beside PostgreSQL reading its own `pg_hba.conf`, on the same
//! server and the same lines.
//!
//! One cluster (as the tests build them) with pg_twofactor preloaded, a rules file of LINES
//! synthetic rules (`scenario::synthetic_rules`) and a `pg_hba.conf` with the same lines (the
//! method `scram-sha-256` for `2f-scram-sha-256`). Then ROUNDS rounds, alternating:
//! - pg_twofactor: a reload; the time the postmaster logs for reading, parsing and putting the
//!   rules in force ("loaded N rule(s) ... in T ms": read, tokenize, parse, build the image,
//!   seal it);
//! - PostgreSQL: `SELECT count(*) FROM pg_hba_file_rules` timed inside the server
//!   (`clock_timestamp()` around it in a PL/pgSQL function): PostgreSQL reads, tokenizes and
//!   parses the whole `pg_hba.conf` (and builds a row for each line).
//!
//! Prints both series, their medians and the ratio of the medians.
//!
//! Run as root after installing the extension:
//!   cargo run --release -p pg_twofactor-e2e --example load_cost [LINES=100000] [ROUNDS=7]
//! PG_CONFIG chooses the PostgreSQL major, as for the tests.

use pg_twofactor_e2e::scenario::synthetic_rules;
use pg_twofactor_e2e::Cluster;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The load time of the last "pg_twofactor: loaded" line of `log`, in ms.
fn last_load_ms(log: &str) -> Option<f64> {
    let line = log.lines().rfind(|l| l.contains("pg_twofactor: loaded "))?;
    let (_, rest) = line.split_once("\" in ")?;
    rest.split_once(" ms")?.0.parse().ok()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let lines = args.next().unwrap_or(100_000);
    let rounds = args.next().unwrap_or(7);
    let rules = synthetic_rules(lines, "bench");
    let mut b = Cluster::builder().rules(&rules);
    for l in rules.lines() {
        b = b.hba(&l.replace("2f-scram-sha-256", "scram-sha-256"));
    }
    let c = b.start();
    c.psql_admin(
        "CREATE FUNCTION hba_file_rules_ms() RETURNS float8 LANGUAGE plpgsql AS $$
         DECLARE t timestamptz := clock_timestamp(); n bigint;
         BEGIN
           SELECT count(*) INTO n FROM pg_hba_file_rules;
           RETURN extract(epoch FROM clock_timestamp() - t) * 1000;
         END $$",
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        c.reload();
        ours.push(last_load_ms(&c.log()).expect("a load time in the log"));
        let ms = c.psql_admin("SELECT hba_file_rules_ms()");
        theirs.push(ms.trim().parse::<f64>().unwrap());
    }
    let rows = c.psql_admin("SELECT count(*) FROM pg_hba_file_rules");
    println!(
        "{lines} lines ({} rows in pg_hba_file_rules), {rounds} rounds",
        rows.trim()
    );
    println!("pg_twofactor load (ms):         {ours:.1?}");
    println!("pg_hba_file_rules (ms):         {theirs:.1?}");
    let (a, b) = (median(ours), median(theirs));
    println!(
        "medians: pg_twofactor {a:.1} ms, pg_hba_file_rules {b:.1} ms, ratio {:.2}",
        a / b
    );
}
