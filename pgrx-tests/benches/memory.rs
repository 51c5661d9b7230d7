//! Memory the rules in force occupy, at 10 to 100,000 rules: the bytes of the frozen rule set
//! in its arena (`pg_twofactor::arena`), exactly what the postmaster keeps and every backend
//! inherits (and only reads). Run: `cargo bench -p pg_twofactor-e2e --bench memory`.

use pg_twofactor::arena::Frozen;
use pg_twofactor::rules::{parse_text, AnyRegex, Syntax};
use pg_twofactor_e2e::scenario::synthetic_rules;
use std::path::Path;

fn main() {
    println!("| rules | bytes of the rules in force | bytes per rule |");
    println!("|---:|---:|---:|");
    for n in [10, 1_000, 10_000, 100_000] {
        let text = synthetic_rules(n, "bench");
        let set = parse_text(
            Path::new("/bench/pg_twofactor_hba.conf"),
            text.as_bytes(),
            Syntax::BUILT,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap();
        // SAFETY: deep_clone keeps nothing outside its result, which shares no memory with `set`.
        let frozen = unsafe { Frozen::new(|| set.deep_clone()) };
        println!("| {n} | {} | {} |", frozen.bytes(), frozen.bytes() / n);
    }
}
