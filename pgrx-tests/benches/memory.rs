//! Memory the rules in force occupy, at 10 to 100,000 rules: the bytes of their image
//! (`pg_twofactor_core::rules::image`), exactly what the postmaster keeps in its sealed mapping
//! and every backend inherits (and only reads). Run:
//! `cargo bench -p pg_twofactor-e2e --bench memory`.

use pg_twofactor_core::rules::{parse_text, AnyRegex, Syntax};
use pg_twofactor_e2e::scenario::synthetic_rules;
use std::path::Path;

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
        let image = set.image().unwrap();
        let peak = status_bytes("VmPeak:").saturating_sub(before);
        let bytes = image.bytes().len();
        println!(
            "| {n} | {} | {} | {} | {:.1} |",
            text.len(),
            bytes,
            bytes / n,
            peak as f64 / text.len() as f64
        );
        drop(set);
    }
}
