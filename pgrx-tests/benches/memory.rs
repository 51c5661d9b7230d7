//! Heap memory a loaded rule set occupies, at 10 and 10,000 rules, measured with a counting
//! allocator. Each backend inherits the postmaster's copy at fork (copy-on-write), so this is
//! also the most a backend can add. Run: `cargo bench -p pg_twofactor-e2e --bench memory`.

use pg_twofactor::rules::{parse_text, AnyRegex, Syntax};
use pg_twofactor_e2e::scenario::synthetic_rules;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    println!("| rules | heap bytes retained by the loaded rule set | bytes per rule |");
    println!("|---:|---:|---:|");
    for n in [10, 1_000, 10_000] {
        let text = synthetic_rules(n, "bench");
        let before = LIVE.load(Ordering::Relaxed);
        let set = parse_text(
            Path::new("/bench/pg_twofactor_hba.conf"),
            text.as_bytes(),
            Syntax::BUILT,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap();
        let used = LIVE.load(Ordering::Relaxed) - before;
        println!("| {n} | {used} | {} |", used / n as isize);
        drop(set);
    }
}
