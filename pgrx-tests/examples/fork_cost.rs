//! What a read-only mapping of the rules image's size costs fork(), by how it is mapped: shared
//! (the kernel copies no page-table entries for it, and a child faults in each page it reads),
//! private (one entry per 4 kB page copied), or private on a 2 MB boundary with transparent
//! huge pages asked for (one entry per 2 MB), the private mapping tried for the rules image on
//! 2026-12-06 and not kept (BENCHMARKS.md, "The rules image's mapping": every fork is charged
//! the whole size of a private mapping under strict overcommit). Each child reads one byte of
//! the mapping and exits. Beside it, a 3 MB private heap like a postmaster's. Only one such mapping exists at a time (fork copies every mapping
//! of the process): each round maps, forks and unmaps each way in turn, so the machine's noise
//! falls on all of them alike. Printed are the minimum and median fork() times in
//! microseconds, the child's minor faults for its one read, and the huge pages the kernel
//! gave.
//!
//!   cargo run --release -p pg_twofactor-e2e --example fork_cost [MB=2,18] [ROUNDS=300]

use std::time::Instant;

const HUGE_PAGE: usize = 2 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Shared,
    Private,
    PrivateHuge,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Shared => "shared",
            Way::Private => "private",
            Way::PrivateHuge => "private, 2 MB-aligned, MADV_HUGEPAGE",
        }
    }
}

/// A filled, read-only mapping of `len` bytes mapped the given way, and what to unmap.
fn mapping(len: usize, way: Way) -> (*const u8, (*mut libc::c_void, usize)) {
    let flags = match way {
        Way::Shared => libc::MAP_SHARED,
        Way::Private | Way::PrivateHuge => libc::MAP_PRIVATE,
    } | libc::MAP_ANONYMOUS;
    // SAFETY: a new anonymous mapping of the kernel's choice, used only by this program.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len + HUGE_PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        );
        assert_ne!(at, libc::MAP_FAILED);
        let start = if way == Way::PrivateHuge {
            let start = (at as usize).next_multiple_of(HUGE_PAGE) as *mut libc::c_void;
            libc::madvise(start, len, libc::MADV_HUGEPAGE);
            start
        } else {
            at
        };
        std::ptr::write_bytes(start.cast::<u8>(), 1, len);
        libc::mprotect(start, len, libc::PROT_READ);
        (start.cast(), (at, len + HUGE_PAGE))
    }
}

/// kB of AnonHugePages in this process's mappings (the huge pages the kernel gave).
fn anon_huge_kb() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One fork: its time in the parent (µs) and the child's minor faults for reading one byte.
fn fork_once(at: *const u8, len: usize) -> (f64, i64) {
    let mut pipe = [0; 2];
    // SAFETY: pipe, fork, read, write, waitpid and _exit on this process's own descriptors;
    // the child reads a byte of a live mapping it inherited and exits without unwinding.
    unsafe {
        assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
        let started = Instant::now();
        let pid = libc::fork();
        let took = started.elapsed().as_secs_f64() * 1e6;
        if pid == 0 {
            let mut before: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut before);
            std::hint::black_box(std::ptr::read_volatile(at.add(len / 2)));
            let mut after: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut after);
            let faults = (after.ru_minflt - before.ru_minflt) as i64;
            libc::write(pipe[1], (&faults as *const i64).cast(), 8);
            libc::_exit(0);
        }
        let mut faults = 0i64;
        libc::read(pipe[0], (&mut faults as *mut i64).cast(), 8);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(pipe[0]);
        libc::close(pipe[1]);
        (took, faults)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .get(1)
        .map_or("2,18", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("sizes in MB, comma-separated"))
        .collect();
    let rounds: usize = args.get(2).map_or(300, |s| s.parse().unwrap());
    // a postmaster-like private heap that every fork copies alike
    let heap = vec![2u8; 3 << 20];
    let ways = [Way::Shared, Way::Private, Way::PrivateHuge];
    println!("| image | mapping | fork, min (us) | fork, median (us) | child's faults for one read | huge pages (kB) |");
    println!("|---:|---|---:|---:|---:|---:|");
    for mb in sizes {
        let len = mb << 20;
        let mut times = vec![Vec::new(); ways.len()];
        let mut faults = vec![0; ways.len()];
        let mut huge_kb = vec![0; ways.len()];
        for _ in 0..rounds {
            for (i, way) in ways.iter().enumerate() {
                let huge_before = anon_huge_kb();
                let (at, (whole, whole_len)) = mapping(len, *way);
                huge_kb[i] = anon_huge_kb() - huge_before;
                let (t, f) = fork_once(at, len);
                times[i].push(t);
                faults[i] = f;
                // SAFETY: the mapping made just above; the child that read it has exited.
                unsafe { libc::munmap(whole, whole_len) };
            }
        }
        for (i, way) in ways.iter().enumerate() {
            times[i].sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "| {mb} MB | {} | {:.0} | {:.0} | {} | {} |",
                way.name(),
                times[i][0],
                times[i][times[i].len() / 2],
                faults[i],
                huge_kb[i]
            );
        }
    }
    std::hint::black_box(&heap);
}
