//! Loading rules leaves the C library's allocator as it found it.
//!
//! The postmaster reads the rules file and builds the image, then forks every backend from the
//! allocator state that leaves behind. glibc serves a request of 128 kB or more with a mapping
//! of its own, and the first time it *frees* such a mapping larger than that threshold it
//! raises the threshold to the freed size, for good, in the postmaster and in every backend
//! forked from it: each backend then serves its own large allocations from its heap, which
//! cost it page faults at every login (BENCHMARKS.md, "glibc's mmap threshold"). So a load may
//! free no mapped block above the threshold ([`pg_twofactor_core::rules::scratch`]).
//!
//! The threshold itself cannot be read, and whether a request is served by a mapping depends
//! on the free space the load left in the heap; so this binary puts its own `free` in front of
//! glibc's and counts the blocks that glibc's would take as a reason to raise it: mapped (bit
//! 1 of the size word before the block) and larger than 128 kB. A test binary of its own,
//! without the test harness: the check runs on the main thread, as the postmaster's load does,
//! with nothing else freeing beside it. Only on Linux with glibc (elsewhere it checks nothing).

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use pg_twofactor_core::rules::{load, AnyRegex, Syntax};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// glibc's first mmap threshold.
    const FIRST_THRESHOLD: usize = 128 * 1024;
    /// The size word's flag for a block served by a mapping of its own (`IS_MMAPPED`).
    const IS_MMAPPED: usize = 2;
    /// The size word's flag bits.
    const FLAGS: usize = 7;

    /// The mapped blocks above the first threshold freed so far, and the largest of them.
    static MAPPED_FREES: AtomicUsize = AtomicUsize::new(0);
    static LARGEST: AtomicUsize = AtomicUsize::new(0);

    extern "C" {
        /// glibc's own `free`, which the `free` below stands in front of.
        fn __libc_free(block: *mut std::ffi::c_void);
    }

    /// Every `free` of this binary (Rust's allocator calls it): counts, then frees.
    ///
    /// # Safety
    /// As for `free`: `block` is null or a live block from this process's `malloc`.
    #[no_mangle]
    pub unsafe extern "C" fn free(block: *mut std::ffi::c_void) {
        if !block.is_null() {
            // SAFETY: a live glibc block is preceded by its chunk header, whose second word (the
            // 8 bytes just before the block) is the chunk's size and flags.
            let word = unsafe { block.cast::<usize>().sub(1).read() };
            let size = word & !FLAGS;
            if word & IS_MMAPPED != 0 && size > FIRST_THRESHOLD {
                MAPPED_FREES.fetch_add(1, Ordering::Relaxed);
                LARGEST.fetch_max(size, Ordering::Relaxed);
            }
        }
        // SAFETY: the caller's contract is `free`'s.
        unsafe { __libc_free(block) }
    }

    /// Writes `n` rules to `path`, a line at a time.
    fn write_rules(path: &std::path::Path, n: usize) {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        for i in 0..n {
            writeln!(
                out,
                "hostssl db{i} user{i},other{} 10.{}.{}.0/24 2f-scram-sha-256",
                i % 7,
                i / 256 % 256,
                i % 256
            )
            .unwrap();
        }
    }

    pub fn check() {
        let dir = std::env::temp_dir().join(format!("pg2f-malloc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in [10_000, 100_000] {
            let path = dir.join(format!("rules-{n}.conf"));
            write_rules(&path, n);
            MAPPED_FREES.store(0, Ordering::Relaxed);
            let loaded = load(&path, Syntax::Pg16, &AnyRegex).expect("a valid file");
            let rules = loaded.rules;
            drop(loaded);
            let (frees, largest) = (
                MAPPED_FREES.load(Ordering::Relaxed),
                LARGEST.load(Ordering::Relaxed),
            );
            assert_eq!(rules, n);
            assert_eq!(
                frees, 0,
                "loading {n} rules freed {frees} mapped block(s) of more than 128 kB (the largest \
                 {largest} bytes), which raises glibc's mmap threshold for every backend: give \
                 vectors that grow with the rules back as rules::Scratch does"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
        // and a careless free is seen: a vector larger than all the free space the loads left in
        // the heap (which would serve a smaller one without a mapping)
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let heap_free = unsafe { libc::mallinfo2() }.fordblks;
        let careless: Vec<u8> = Vec::with_capacity(heap_free + (1 << 20));
        drop(std::hint::black_box(careless));
        assert_eq!(
            MAPPED_FREES.load(Ordering::Relaxed),
            1,
            "the count missed a free"
        );
        println!("loads of 10,000 and 100,000 rules freed no mapped block above glibc's threshold");
    }
}

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::check();
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    println!("not glibc: no mmap threshold to check");
}
