//! The rules oracle (see `pg_twofactor_e2e::oracle`): on a real cluster, for thousands of
//! logins over generated rule files, the rule pg_twofactor chooses is the `pg_hba.conf` line
//! PostgreSQL chooses for the same lines. `ORACLE_DECISIONS` (default 2000) sets how many
//! decisions are compared. The seed differs on every run (so CI tries new files each time) and is
//! printed; `ORACLE_SEED` replays a run. A difference prints the seed, the files and the
//! connection. At most [`MAX_SKIPPED_PERCENT`] of the logins may go uncompared (PostgreSQL
//! refused the password first, or two connections shared an address and port).

use pg_twofactor_e2e::cluster::bindir;
use pg_twofactor_e2e::netns::NetnsHost;
use pg_twofactor_e2e::oracle::{self, Major, HOSTS};
use pg_twofactor_e2e::{env_or, Cluster};

/// The share of logins the oracle may leave uncompared; seen: 0.6-1.5 % (docs/rule-matching.md).
const MAX_SKIPPED_PERCENT: usize = 5;

#[test]
fn pg_twofactor_chooses_the_line_postgresql_chooses() {
    let version = String::from_utf8(
        std::process::Command::new(bindir().join("pg_config"))
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let major = Major::of(&version);
    let target = env_or("ORACLE_DECISIONS", 2000) as usize;
    let seed = match std::env::var("ORACLE_SEED") {
        Ok(v) => v.parse().expect("ORACLE_SEED is a number"),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            now.as_secs() ^ u64::from(now.subsec_nanos()) << 20 ^ u64::from(std::process::id())
        }
    };
    eprintln!("oracle: seed {seed} (replay with ORACLE_SEED={seed})");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let netns = NetnsHost::for_scenario("oracle");
    if !root {
        eprintln!("not root: no private hosts file");
    }
    let mut builder = Cluster::builder()
        .encoding("LATIN1")
        .listen("*")
        .setting("log_min_messages = log")
        .setting(oracle::LOG_LINE_PREFIX);
    // a source without a name in HOSTS gets "no such name" from DNS, as PostgreSQL and
    // pg_twofactor both must read it (without the server, the lookup fails, which pg_twofactor
    // decides in both worlds and PostgreSQL reads as no match)
    let _dns = root.then(pg_twofactor_e2e::dns::NxDomainDns::start);
    if root {
        builder = builder.name_service(HOSTS);
    }
    let mut c = builder.create();
    oracle::configure(&c);
    let out = c.try_start();
    assert!(out.status.success(), "server did not start:\n{}", c.log());
    oracle::create_roles(&c);

    let plan = oracle::Plan {
        seed,
        target,
        per_round: 250,
        rules_per_round: 20,
        clients: env_or("ORACLE_CLIENTS", 4) as usize,
    };
    let tally = oracle::run(&c, major, plan, netns.as_ref());
    eprintln!(
        "oracle on {}: seed {seed}: {} decisions compared ({} covered by a rule, {} not covered), {} skipped (PostgreSQL refused the password first), {} differences",
        version.trim(),
        tally.decisions,
        tally.covered,
        tally.not_covered,
        tally.skipped,
        tally.mismatches.len()
    );
    assert!(
        tally.covered > target / 10 && tally.not_covered > target / 10,
        "{tally:?}"
    );
    let attempted = tally.decisions + tally.skipped;
    assert!(
        tally.skipped * 100 <= MAX_SKIPPED_PERCENT * attempted,
        "{} of {attempted} logins were not compared, more than {MAX_SKIPPED_PERCENT}% (seed {seed}): {tally:?}",
        tally.skipped
    );
    if !tally.mismatches.is_empty() {
        for m in tally.mismatches.iter().take(3) {
            eprintln!("{m}\n");
        }
        panic!(
            "{} of {} decisions differ from PostgreSQL's (first ones printed above; replay with ORACLE_SEED={seed} ORACLE_DECISIONS={target})",
            tally.mismatches.len(),
            tally.decisions
        );
    }
}
