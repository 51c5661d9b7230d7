//! What a rules file costs every login, in figures that do not depend on a noisy machine:
//! minor page faults of a backend right after authentication, the postmaster's resident memory,
//! the time to load the rules, and the time from fork to "connection authorized".
//!
//! For each configuration a cluster (as the tests build them) is started and LOGINS covered
//! logins (TLS, client certificate, SCRAM) are made by a superuser whose session reads its own
//! `/proc/self/stat`. Configurations: PostgreSQL alone; pg_twofactor with an empty rules file;
//! 1, 1,000, 10,000 and 100,000 rules with the login's rule last; 10,000 rules for other users
//! only (the login is not covered). Prints a markdown table (medians).
//!
//! With CLUSTERS above 1, each configuration gets that many clusters, started in rounds (every
//! configuration once per round, in turn), and the table shows the median over its clusters
//! of each cluster's median, with the range of the clusters' fault medians: a backend's faults
//! move by a few pages from one cluster to the next with the address-space layout.
//!
//! Run as root after installing the extension:
//!   cargo run --release -p pg_twofactor-e2e --example rules_cost [LOGINS=30] [CLUSTERS=1]
//! PG_CONFIG chooses the PostgreSQL major, as for the tests.

use pg_twofactor_e2e::cluster::{log_line_millis, log_line_pid};
use pg_twofactor_e2e::scenario::synthetic_rules;
use pg_twofactor_e2e::{rust_query, Cluster, Login, San};
use std::collections::HashMap;

const PASSWORD: &str = "bench-pw";

struct Config {
    name: &'static str,
    preload: bool,
    rules: Option<String>,
    /// Rules put in force by a reload once the server runs (the postmaster's heap is settled
    /// then), in place of `rules`.
    reloaded: Option<String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn status_kb(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Per backend pid: "connection received" to "connection authorized", in ms.
fn fork_to_auth(log: &str) -> Vec<f64> {
    let mut received: HashMap<&str, i64> = HashMap::new();
    let mut out = Vec::new();
    for l in log.lines() {
        let (Some(pid), Some(t)) = (log_line_pid(l), log_line_millis(l)) else {
            continue;
        };
        if l.contains("connection received:") {
            received.insert(pid, t);
        } else if l.contains("connection authorized:") {
            if let Some(t0) = received.get(pid) {
                out.push((t - t0) as f64);
            }
        }
    }
    out
}

/// One cluster's figures: faults (median), postmaster RSS and anonymous RSS (kB), rules in
/// memory (kB), load (ms), fork to authorized (ms, median).
struct Figures {
    faults: f64,
    rss: u64,
    anon: u64,
    rules_kb: Option<u64>,
    load_ms: Option<f64>,
    fork_to_auth: f64,
    /// Pages of the rules image a login's backend has mapped in (the Rss of its mapping).
    image_pages: Option<u64>,
    /// The backend's `[heap]` Private_Dirty (kB): heap pages it wrote (copied from the
    /// postmaster's or new).
    heap_dirty_kb: u64,
}

/// (Rss kB of the mapping of `size_kb` named "/dev/zero (deleted)", Private_Dirty kB of
/// `[heap]`) from a `/proc/PID/smaps` text.
fn smaps_figures(smaps: &str, size_kb: Option<u64>) -> (Option<u64>, u64) {
    let mut image = None;
    let mut heap = 0;
    let mut current = "";
    let mut size = 0;
    for l in smaps.lines() {
        let field = |name: &str| {
            l.strip_prefix(name)
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        };
        if l.split_whitespace().next().is_some_and(|a| a.contains('-')) && !l.ends_with(':') {
            current = l;
        } else if let Some(v) = field("Size:") {
            size = v;
        } else if let Some(v) = field("Rss:") {
            if current.ends_with("/dev/zero (deleted)") && Some(size) == size_kb {
                image = Some(v / 4);
            }
        } else if let Some(v) = field("Private_Dirty:") {
            if current.ends_with("[heap]") {
                heap += v;
            }
        }
    }
    (image, heap)
}

fn measure(cfg: &Config, logins: usize) -> Figures {
    let mut b = Cluster::builder()
        .hba("hostssl all bench 127.0.0.1/32 scram-sha-256")
        .setting("log_connections = on");
    b = match &cfg.rules {
        Some(r) => b.rules(r),
        None => b,
    };
    if !cfg.preload {
        b = b.without_preload();
    }
    let c = b.start();
    if let Some(text) = &cfg.reloaded {
        c.write_rules(text);
        c.reload();
    }
    c.psql_admin(&format!(
        "CREATE ROLE bench SUPERUSER LOGIN PASSWORD '{PASSWORD}'"
    ));
    let cert = c.client_cert(
        "bench",
        &["bench"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    let login = Login::new("bench", PASSWORD).cert(&cert);
    let mut faults = Vec::new();
    for _ in 0..logins {
        let stat = rust_query(
            &c,
            &login,
            "SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 10)",
        )
        .unwrap_or_else(|o| panic!("{}: {o:?}", cfg.name));
        faults.push(stat.parse::<f64>().unwrap());
    }
    let smaps = rust_query(&c, &login, "SELECT pg_read_file('/proc/self/smaps')")
        .unwrap_or_else(|o| panic!("{}: {o:?}", cfg.name));
    // PG2F_SMAPS_DIR: keep each configuration's last backend smaps, to compare mappings
    if let Ok(dir) = std::env::var("PG2F_SMAPS_DIR") {
        let file = cfg.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        std::fs::write(std::path::Path::new(&dir).join(file), &smaps).unwrap();
    }
    let pid = std::fs::read_to_string(c.data.join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let log = c.log();
    // "pg_twofactor: loaded N rule(s) from "FILE" in T ms (B bytes)"
    let loaded = log
        .lines()
        .filter_map(|l| l.split_once("\" in ").map(|(_, r)| r))
        .next_back()
        .and_then(|r| {
            let (ms, rest) = r.split_once(" ms (")?;
            let bytes = rest.split_once(" bytes")?.0;
            Some((ms.parse::<f64>().ok()?, bytes.parse::<u64>().ok()?))
        });
    let image_kb = loaded.map(|(_, bytes)| bytes.div_ceil(4096) * 4);
    let (image_pages, heap_dirty_kb) = smaps_figures(&smaps, image_kb);
    Figures {
        image_pages,
        heap_dirty_kb,
        faults: median(faults),
        rss: status_kb(&pid, "VmRSS:"),
        anon: status_kb(&pid, "RssAnon:"),
        rules_kb: loaded.map(|(_, b)| b / 1024),
        load_ms: loaded.map(|(ms, _)| ms),
        fork_to_auth: median(fork_to_auth(&log)),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let logins: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let clusters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let covered_last = |n: usize| Some(synthetic_rules(n, "bench"));
    let configs = [
        Config {
            name: "PostgreSQL alone",
            preload: false,
            rules: None,
            reloaded: None,
        },
        Config {
            name: "pg_twofactor, empty rules file",
            preload: true,
            rules: Some(String::new()),
            reloaded: None,
        },
        Config {
            name: "1 rule",
            preload: true,
            rules: covered_last(1),
            reloaded: None,
        },
        Config {
            name: "1,000 rules, the login's last",
            preload: true,
            rules: covered_last(1_000),
            reloaded: None,
        },
        Config {
            name: "10,000 rules, the login's last",
            preload: true,
            rules: covered_last(10_000),
            reloaded: None,
        },
        Config {
            name: "100,000 rules, the login's last",
            preload: true,
            rules: covered_last(100_000),
            reloaded: None,
        },
        Config {
            name: "10,000 rules, the login's last, put in force by a reload after start",
            preload: true,
            rules: covered_last(1),
            reloaded: covered_last(10_000),
        },
        Config {
            name: "10,000 rules for other users (not covered)",
            preload: true,
            rules: Some(synthetic_rules(10_001, "nobody-at-all")),
            reloaded: None,
        },
    ];
    let mut figures: Vec<Vec<Figures>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..clusters {
        for (cfg, seen) in configs.iter().zip(&mut figures) {
            seen.push(measure(cfg, logins));
        }
    }
    println!("| configuration | backend minor faults after authentication | faults, range over clusters | rules image pages a backend read | backend heap Private_Dirty (kB) | postmaster RSS (kB) | postmaster anonymous RSS (kB) | rules in memory (kB) | rules load (ms) | fork to authorized (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (cfg, seen) in configs.iter().zip(&figures) {
        let of = |f: &dyn Fn(&Figures) -> f64| median(seen.iter().map(f).collect());
        let faults: Vec<f64> = seen.iter().map(|f| f.faults).collect();
        let (low, high) = faults
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
        let dash = |v: Option<f64>, digits: usize| {
            v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
        };
        println!(
            "| {} | {:.0} | {low:.0}–{high:.0} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {:.1} |",
            cfg.name,
            of(&|f| f.faults),
            dash(
                seen[0]
                    .image_pages
                    .map(|_| of(&|f| f.image_pages.map_or(f64::NAN, |p| p as f64))),
                0
            ),
            of(&|f| f.heap_dirty_kb as f64),
            of(&|f| f.rss as f64),
            of(&|f| f.anon as f64),
            dash(seen[0].rules_kb.map(|k| k as f64), 0),
            dash(
                seen[0]
                    .load_ms
                    .map(|_| of(&|f| f.load_ms.unwrap_or(f64::NAN))),
                1
            ),
            of(&|f| f.fork_to_auth),
        );
    }
}
