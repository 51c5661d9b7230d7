//! Login throughput with and without pg_twofactor, side by side on one cluster: what does the
//! second factor cost per login? Behind `bash .ci/bench-logins [SECONDS=8] [ROUNDS=8]`.
//!
//! A cluster built by the test harness (TLS, generated certificates) runs `pgbench -C` (a new
//! TLS connection with a client certificate and SCRAM for every transaction) in these
//! configurations:
//!   a       PostgreSQL alone: hostssl ... scram-sha-256 clientcert=verify-full
//!   b       the same, plus pg_twofactor preloaded with one matching 2f-scram-sha-256 rule
//!   c1000   b with 1,000 rules, the matching rule last
//!   c10000  b with 10,000 rules, the matching rule last
//!   c100000 b with 100,000 rules, the matching rule last
//!   u10000  b with 10,000 rules for other users only (the login is not covered)
//!   h       b with pg_twofactor.handshake_check = on (the certificate, bound to 127.0.0.1, is
//!           also checked in the TLS handshake)
//! `BENCH_CONFIGS=a,b,h` runs only those (a is always among them: the ratios are to a).
//! The configurations run in rotating order, ROUNDS times, SECONDS each, restarting the server
//! between runs. Prints markdown tables: median logins/s, spread, and the median of the
//! per-round ratios to a (each round's figure divided by a's figure of the same round); then
//! the postmaster's and a fresh backend's memory and pg_twofactor's shared memory.
//!
//! Run as root after installing the extension (`.ci/bench-logins` does both):
//!   cargo run -p pg_twofactor-e2e --example bench_logins [SECONDS] [ROUNDS]
//! `PG_CONFIG` or `PG_MAJOR` chooses the PostgreSQL major, as for the tests.

use pg_twofactor_e2e::cluster::chown_to_cluster_user;
use pg_twofactor_e2e::scenario::synthetic_rules;
use pg_twofactor_e2e::{Cluster, San};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "bench-pw";
const ALL_CONFIGS: &[&str] = &["a", "b", "c1000", "c10000", "c100000", "u10000", "h"];

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: bench_logins [SECONDS] [ROUNDS]"))
        .collect();
    let secs = args.first().copied().unwrap_or(8);
    let rounds = args.get(1).copied().unwrap_or(8);
    let chosen = std::env::var("BENCH_CONFIGS").unwrap_or_default();
    let configs: Vec<&str> = ALL_CONFIGS
        .iter()
        .copied()
        .filter(|c| chosen.is_empty() || *c == "a" || chosen.split(',').any(|x| x.trim() == *c))
        .collect();

    let others = synthetic_rules(10_000, "bench");
    let others = others
        .lines()
        .take(9_999)
        .fold(String::new(), |s, l| s + l + "\n")
        + "hostssl all nobody 127.0.0.1/32 2f-scram-sha-256\n";
    let mut c = Cluster::builder()
        .without_preload()
        .listen("127.0.0.1")
        .hba("hostssl all bench 127.0.0.1/32  scram-sha-256 clientcert=verify-full")
        // PostgreSQL's defaults where the test clusters differ
        .setting("fsync = on")
        .setting("max_connections = 50")
        .setting("include_if_exists = 'bench.conf'")
        .create_rules_at("rules-1.conf", &synthetic_rules(1, "bench"))
        .create_rules_at("rules-1000.conf", &synthetic_rules(1_000, "bench"))
        .create_rules_at("rules-10000.conf", &synthetic_rules(10_000, "bench"))
        .create_rules_at("rules-100000.conf", &synthetic_rules(100_000, "bench"))
        .create_rules_at("rules-other-10000.conf", &others)
        .start();
    c.create_user("bench", PASSWORD);
    c.pki.client(
        "bench",
        &["bench"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    let script = c.root.join("select1.sql");
    std::fs::write(&script, "SELECT 1;\n").unwrap();
    let dir = c.pki.dir.display().to_string();
    let conn = format!(
        "host=127.0.0.1 port={} user=bench dbname=postgres sslmode=verify-full sslrootcert={dir}/root.crt sslcert={dir}/bench.crt sslkey={dir}/bench.key",
        c.port
    );

    // sanity: in b the extension is active (a certificate PostgreSQL's clientcert=verify-full
    // accepts, right CN, but bound to another address, is refused), and the login works
    configure(&mut c, "b");
    c.pki.client(
        "bench-elsewhere",
        &["bench"],
        Some(&[San::Ip("10.20.30.40".parse().unwrap())]),
    );
    let elsewhere = conn.replace("/bench.", "/bench-elsewhere.");
    assert!(
        !psql(&c, &elsewhere, "SELECT 1").status.success(),
        "sanity check failed: a certificate bound to another address was accepted in configuration b"
    );
    let ok = psql(&c, &conn, "SELECT 1");
    assert!(ok.status.success(), "the benchmark login fails: {ok:?}");

    let mut results: HashMap<&str, Vec<f64>> = HashMap::new();
    for r in 1..=rounds as usize {
        // rotate the order each round so no configuration always runs first
        for k in 0..configs.len() {
            let cfg = configs[(k + r) % configs.len()];
            configure(&mut c, cfg);
            let out = Command::new(c.bin.join("pgbench"))
                .args([
                    "-n",
                    "-C",
                    "-T",
                    &secs.to_string(),
                    "-c",
                    "2",
                    "-j",
                    "2",
                    "-f",
                ])
                .arg(&script)
                .arg(&conn)
                .env("PGPASSWORD", PASSWORD)
                .output()
                .expect("run pgbench");
            let tps: f64 = String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("tps = "))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no tps from pgbench: {out:?}"));
            eprintln!("round {r}: {cfg} {tps} logins/s");
            results.entry(cfg).or_default().push(tps);
        }
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "Login throughput: pgbench -C -c 2 -j 2 -T {secs}, {rounds} rounds, {cores} cores, {cpu}"
    );
    println!();
    println!("| configuration | median logins/s | min | max | median / a | median of per-round ratios to a | per-round ratios |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let a = results["a"].clone();
    for cfg in &configs {
        let v = &results[cfg];
        let ratios: Vec<f64> = v.iter().zip(&a).map(|(x, y)| x / y).collect();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        println!(
            "| {cfg} | {:.2} | {min:.2} | {max:.2} | {:.4} | {:.4} | {}|",
            median(v),
            median(v) / median(&a),
            median(&ratios),
            ratios
                .iter()
                .map(|r| format!("{r:.4} "))
                .collect::<String>()
        );
    }
    println!();
    println!("| configuration | postmaster RSS kB | fresh backend Private_Dirty kB | pg_twofactor shared memory bytes |");
    println!("|---|---:|---:|---:|");
    for cfg in ["a", "b", "c10000"] {
        configure(&mut c, cfg);
        memory_line(&c, cfg, &conn);
    }
}

/// Switches the server to configuration `cfg` (its `bench.conf`) and restarts it.
fn configure(c: &mut Cluster, cfg: &str) {
    let rules = match cfg {
        "a" => None,
        "b" | "h" => Some("rules-1.conf"),
        "c1000" => Some("rules-1000.conf"),
        "c10000" => Some("rules-10000.conf"),
        "c100000" => Some("rules-100000.conf"),
        "u10000" => Some("rules-other-10000.conf"),
        _ => unreachable!("configuration {cfg}"),
    };
    let conf = match rules {
        None => "shared_preload_libraries = ''\n".to_string(),
        Some(f) => format!(
            "shared_preload_libraries = 'pg_twofactor'\npg_twofactor.hba_file = '{f}'\npg_twofactor.handshake_check = {}\n",
            if cfg == "h" { "on" } else { "off" }
        ),
    };
    let path = c.data.join("bench.conf");
    std::fs::write(&path, conf).unwrap();
    chown_to_cluster_user(&path);
    let mark = c.log_mark();
    c.restart();
    // the configuration is the one meant: its rules file loaded, or no pg_twofactor at all
    let log = c.log_since(mark);
    let loaded = log
        .split("pg_twofactor: loaded ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next());
    let expected = rules.map(|f| {
        std::fs::read_to_string(c.data.join(f))
            .unwrap()
            .lines()
            .count()
            .to_string()
    });
    assert_eq!(
        loaded,
        expected.as_deref(),
        "configuration {cfg}: rules loaded at start"
    );
}

fn psql(c: &Cluster, conn: &str, sql: &str) -> std::process::Output {
    Command::new(c.bin.join("psql"))
        .args(["-X", "-At", "-d", conn, "-c", sql])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("run psql")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A field of `/proc/PID/smaps_rollup`, in kB.
fn smaps_kb(pid: &str, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The postmaster's RSS, a fresh idle backend's private dirty memory, pg_twofactor's shared
/// memory.
fn memory_line(c: &Cluster, cfg: &str, conn: &str) {
    let pid_file = std::fs::read_to_string(c.data.join("postmaster.pid")).unwrap();
    let postmaster = pid_file.lines().next().unwrap().trim().to_string();
    let mut session = Command::new(c.bin.join("psql"))
        .args(["-X", "-At", "-d", conn, "-c", "SELECT pg_sleep(3)"])
        .env("PGPASSWORD", PASSWORD)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run psql");
    std::thread::sleep(Duration::from_millis(1500));
    let backend = c.psql_admin("SELECT pid FROM pg_stat_activity WHERE usename = 'bench' LIMIT 1");
    let shm = c.psql_admin(
        "SELECT coalesce(sum(allocated_size), 0) FROM pg_shmem_allocations WHERE name ILIKE '%twofactor%'",
    );
    println!(
        "| {cfg} | {} | {} | {shm} |",
        smaps_kb(&postmaster, "Rss:"),
        smaps_kb(&backend, "Private_Dirty:")
    );
    session.wait().unwrap();
}
