//! Instructions per login, counted by callgrind in the login's backend: only inside
//! `secure_open_server` (the TLS handshake, with pg_twofactor's handshake check) and
//! `InitPostgres` (authentication: SCRAM, PostgreSQL's checks, pg_twofactor's hook), so that
//! the figures do not depend on a noisy machine or on what the session does afterwards.
//!
//! Configurations, all with `hostssl all bench 127.0.0.1/32 scram-sha-256
//! clientcert=verify-full` and a client certificate (CN bench, SubjectAltName 127.0.0.1):
//! PostgreSQL alone; pg_twofactor with 1 rule; pg_twofactor with 100,000 rules (the login's
//! last). For each, ROUNDS rounds (configurations in turn), each a server started under
//! `valgrind --tool=callgrind` and LOGINS logins; prints every login's count, the median per
//! configuration and its ratio to PostgreSQL alone, and what pg_twofactor's own code took in
//! each login (`callgrind_annotate`): its `ClientAuthentication_hook` inclusive, plus its
//! certificate-verify callback without OpenSSL's `X509_verify_cert` that the callback calls in
//! OpenSSL's place. The totals move by a few hundred thousand instructions from one login to
//! the next (the TLS key exchange is random); pg_twofactor's own part does not.
//!
//! Run as root after installing the extension (valgrind needed; about 10 minutes):
//!   cargo run --release -p pg_twofactor-e2e --example instructions [LOGINS=4] [ROUNDS=2]
//! PG_CONFIG chooses the PostgreSQL major, as for the tests.

use pg_twofactor_e2e::scenario::synthetic_rules;
use pg_twofactor_e2e::{rust_query, Cluster, Login, San};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-pw";
const HBA: &str = "hostssl all bench 127.0.0.1/32 scram-sha-256 clientcert=verify-full";

/// A cluster with role `bench`, stopped, ready to start under valgrind.
fn prepared(rules: Option<&str>) -> Cluster {
    let mut b = Cluster::builder()
        .hba(HBA)
        // no other process that runs InitPostgres: no autovacuum, no logical replication
        // launcher
        .setting("autovacuum = off")
        .setting("max_logical_replication_workers = 0")
        .without_dry_run_shadow();
    b = match rules {
        Some(r) => b.rules(r),
        None => b.without_preload(),
    };
    let mut c = b.start();
    c.psql_admin(&format!("CREATE ROLE bench LOGIN PASSWORD '{PASSWORD}'"));
    c.stop();
    c
}

/// The postmaster of `c` under callgrind, writing one file per process into `out`.
fn start_under_callgrind(c: &Cluster, out: &Path) -> Child {
    let child = Command::new("runuser")
        .args(["-u", "postgres", "--", "valgrind", "--tool=callgrind"])
        .args([
            "--collect-atstart=no",
            "--toggle-collect=secure_open_server",
        ])
        .arg("--toggle-collect=InitPostgres")
        .arg(format!(
            "--callgrind-out-file={}/callgrind.%p",
            out.display()
        ))
        .arg(c.bin.join("postgres"))
        .arg("-D")
        .arg(&c.data)
        .stdout(std::fs::File::create(out.join("server.log")).unwrap())
        .stderr(std::fs::File::create(out.join("server.err")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !Command::new(c.bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &c.port.to_string()])
        .status()
        .unwrap()
        .success()
    {
        assert!(started.elapsed() < Duration::from_secs(600), "not ready");
        std::thread::sleep(Duration::from_millis(500));
    }
    child
}

/// The callgrind files written so far.
fn files(out: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("callgrind.")
        })
        .collect()
}

/// The instructions each of `files` counted (those with a nonzero total).
fn counts(files: &[std::path::PathBuf]) -> Vec<u64> {
    files
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("totals: ").or(l.strip_prefix("summary: ")))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .filter(|n| *n > 0)
        .collect()
}

/// A number as callgrind_annotate prints it ("1,234").
fn number(text: &str) -> u64 {
    text.replace(',', "").parse().unwrap_or(0)
}

/// pg_twofactor's own instructions in one callgrind file (see the module's comment).
fn own(file: &Path) -> u64 {
    let out = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--tree=calling", "--threshold=100"])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = 0;
    let mut in_callback = false;
    for l in text.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        let star = l.contains(" *  ");
        if star {
            in_callback = l.contains("hooks::handshake::verify_client_certificate");
            if in_callback || l.contains("hooks::client_authentication [") {
                total += number(first);
            }
        } else if in_callback && l.contains(" >  ") && l.contains("X509_verify_cert ") {
            total -= number(first);
        }
    }
    total
}

fn measure(c: &Cluster, logins: usize) -> Vec<(u64, u64)> {
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut server = start_under_callgrind(c, out.path());
    let cert = c.client_cert(
        "bench",
        &["bench"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    let login = Login::new("bench", PASSWORD).cert(&cert);
    // pg_isready's connections have ended and written their files; the logins' come next
    std::thread::sleep(Duration::from_secs(2));
    let before = files(out.path());
    for _ in 0..logins {
        assert_eq!(rust_query(c, &login, "SELECT 1::text").unwrap(), "1");
    }
    // a fast shutdown: once it returns, every backend has ended and written its file
    let stopped = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(c.bin.join("pg_ctl"))
        .args(["-w", "-t", "600", "-m", "fast", "-D"])
        .arg(&c.data)
        .arg("stop")
        .status()
        .unwrap();
    assert!(stopped.success());
    server.wait().unwrap();
    let logins_files: Vec<_> = files(out.path())
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let logins_files: Vec<_> = logins_files
        .into_iter()
        .filter(|f| !counts(std::slice::from_ref(f)).is_empty())
        .collect();
    let counted: Vec<(u64, u64)> = logins_files
        .iter()
        .map(|f| (counts(std::slice::from_ref(f))[0], own(f)))
        .collect();
    assert_eq!(counted.len(), logins, "one count per login: {counted:?}");
    if let Ok(keep) = std::env::var("PG2F_KEEP_CALLGRIND") {
        for f in &logins_files {
            let _ = std::fs::copy(f, Path::new(&keep).join(f.file_name().unwrap()));
        }
    }
    counted
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let logins = args.next().unwrap_or(4);
    let rounds = args.next().unwrap_or(2);
    let many = synthetic_rules(100_000, "bench");
    let configs: [(&str, Cluster); 3] = [
        ("scram-sha-256 clientcert=verify-full alone", prepared(None)),
        (
            "pg_twofactor, 1 rule",
            prepared(Some(&synthetic_rules(1, "bench"))),
        ),
        ("pg_twofactor, 100,000 rules", prepared(Some(&many))),
    ];
    let mut seen: Vec<Vec<(u64, u64)>> = vec![Vec::new(); configs.len()];
    for _ in 0..rounds {
        for ((_, c), s) in configs.iter().zip(&mut seen) {
            s.extend(measure(c, logins));
        }
    }
    // the first login of each server builds the relation cache: the medians are of the others
    let warm = |s: &[(u64, u64)]| -> Vec<(u64, u64)> {
        let first = s.iter().map(|(t, _)| *t).max().unwrap_or(0);
        s.iter()
            .copied()
            .filter(|(t, _)| *t < first * 9 / 10)
            .collect()
    };
    let alone = median(warm(&seen[0]).iter().map(|(t, _)| *t).collect());
    println!("| configuration | instructions per login (median, warm) | ratio to alone | pg_twofactor's own (median) | own / alone | every login (total, own) |");
    println!("|---|---:|---:|---:|---:|---|");
    for ((name, _), s) in configs.iter().zip(&seen) {
        let w = warm(s);
        let m = median(w.iter().map(|(t, _)| *t).collect());
        let o = median(w.iter().map(|(_, o)| *o).collect());
        println!(
            "| {name} | {m} | {:.4} | {o} | {:.4} | {s:?} |",
            m as f64 / alone as f64,
            o as f64 / alone as f64
        );
    }
}
