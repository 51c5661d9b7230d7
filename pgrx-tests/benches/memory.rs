//! Memory the rules in force occupy, at 10 to 100,000 rules: the bytes of the frozen rule set
//! in its arena (`pg_twofactor_core::arena`), exactly what the postmaster keeps and every backend
//! inherits (and only reads). Run: `cargo bench -p pg_twofactor-e2e --bench memory`.

use pg_twofactor_core::arena::Frozen;
use pg_twofactor_core::rules::{parse_text, AnyRegex, Syntax};
use pg_twofactor_e2e::scenario::synthetic_rules;
use std::path::Path;

/// Allocations go through the arena's allocator, as in the extension.
#[global_allocator]
static ALLOCATOR: pg_twofactor_core::arena::ArenaOrSystem = pg_twofactor_core::arena::ArenaOrSystem;

/// A `/proc/self/status` field in bytes (`VmSize:`, `VmPeak:`).
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn main() {
    println!("| rules | file bytes | bytes of the rules in force | bytes per rule | peak address space while loading / file bytes |");
    println!("|---:|---:|---:|---:|---:|");
    for n in [10, 1_000, 10_000, 100_000] {
        let text = synthetic_rules(n, "bench");
        // address space (what RLIMIT_AS and strict overcommit count, unused capacity included);
        // the sizes grow, so each load's peak is above the earlier ones' (VmPeak only grows)
        let before = status_bytes("VmSize:");
        let set = parse_text(
            Path::new("/bench/pg_twofactor_hba.conf"),
            text.as_bytes(),
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap();
        // SAFETY: deep_clone keeps nothing outside its result, which shares no memory with `set`.
        let frozen = unsafe { Frozen::new(|| set.deep_clone()) };
        let peak = status_bytes("VmPeak:").saturating_sub(before);
        println!(
            "| {n} | {} | {} | {} | {:.1} |",
            text.len(),
            frozen.bytes(),
            frozen.bytes() / n,
            peak as f64 / text.len() as f64
        );
        drop(set);
    }
}
