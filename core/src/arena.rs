//! Where the rules in force live: a bump arena in its own memory mappings, outside `malloc`'s
//! heap.
//!
//! Every backend is forked from the postmaster. If the rule set sat in the postmaster's `malloc`
//! heap among the holes that parsing left, a backend's first allocations would write into those
//! holes (and glibc into every free chunk it sorts) and copy page after page of the
//! postmaster's heap: about a hundred extra page faults per connection at 10,000 rules. So the
//! rules are parsed as usual, then copied into an [`Arena`] ([`Frozen::new`]), and the parsed
//! original is dropped: the heap is left with free memory only, which `malloc_trim` returns to
//! the system. Backends only read the arena. Its chunks are shared anonymous mappings, so
//! fork() does not copy their page tables either: forking costs the same whatever the number
//! of rules.
//!
//! The crate's global allocator sends allocations to the arena that is being filled on this
//! thread (only inside [`Frozen::new`]), everything else to `malloc`; memory inside an arena is
//! released with the whole arena, never one allocation at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Chunks of every live arena: (start, end, arena id) triples; start 0 = free slot.
const SLOTS: usize = 64;
static CHUNKS: [AtomicUsize; SLOTS * 3] = [const { AtomicUsize::new(0) }; SLOTS * 3];
/// Lowest start and highest end of any chunk ever registered: a quick "not an arena pointer".
static LOW: AtomicUsize = AtomicUsize::new(usize::MAX);
static HIGH: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

const FIRST_CHUNK: usize = 1 << 20;

/// The arena being filled on this thread.
#[derive(Clone, Copy)]
struct Filling {
    id: usize,
    next: usize,
    end: usize,
    next_chunk: usize,
    used: usize,
}

thread_local! {
    // const-initialised and without a destructor: reading it never allocates.
    static FILLING: Cell<Option<Filling>> = const { Cell::new(None) };
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

fn in_arena(p: usize) -> bool {
    if p < LOW.load(Ordering::Acquire) || p >= HIGH.load(Ordering::Acquire) {
        return false;
    }
    (0..SLOTS).any(|i| {
        let start = CHUNKS[i * 3].load(Ordering::Acquire);
        start != 0 && p >= start && p < CHUNKS[i * 3 + 1].load(Ordering::Acquire)
    })
}

/// Maps a new chunk of at least `size` bytes for arena `id`; `None` if no mapping or slot.
fn new_chunk(id: usize, size: usize) -> Option<(usize, usize)> {
    let page = page_size();
    let len = size.div_ceil(page) * page;
    // SAFETY: a new anonymous mapping (shared, see below) at an address of the kernel's
    // choice; it aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            // Shared, not private: fork() does not copy the page tables of a shared mapping,
            // so forking a backend costs the same with 100,000 rules as with none, and each
            // backend maps in only the pages it reads. Nothing writes to it after filling.
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let (start, end) = (p as usize, p as usize + len);
    for i in 0..SLOTS {
        if CHUNKS[i * 3]
            .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            CHUNKS[i * 3 + 1].store(end, Ordering::Release);
            CHUNKS[i * 3 + 2].store(id, Ordering::Release);
            CHUNKS[i * 3].store(start, Ordering::Release);
            LOW.fetch_min(start, Ordering::AcqRel);
            HIGH.fetch_max(end, Ordering::AcqRel);
            return Some((start, end));
        }
    }
    // SAFETY: the mapping was created just above and nothing points into it.
    unsafe { libc::munmap(p, len) };
    None
}

/// Bump-allocates `layout` in the arena being filled, or `None` (then `malloc` serves it).
fn arena_alloc(layout: Layout) -> Option<*mut u8> {
    let mut f = FILLING.with(Cell::get)?;
    let mut at = f.next.checked_next_multiple_of(layout.align())?;
    if at.checked_add(layout.size())? > f.end {
        let size = f.next_chunk.max(layout.size() + layout.align());
        let (start, end) = new_chunk(f.id, size)?;
        f.next_chunk = size.saturating_mul(2);
        f.end = end;
        at = start.checked_next_multiple_of(layout.align())?;
    }
    f.next = at + layout.size();
    f.used += layout.size();
    FILLING.with(|c| c.set(Some(f)));
    Some(at as *mut u8)
}

/// The global allocator: the arena being filled, else `malloc`.
pub struct ArenaOrSystem;

// SAFETY: arena memory is handed out once per allocation (bump pointer, aligned as asked) and
// never reused until its whole arena is unmapped by `Frozen::drop`, after every value in it was
// dropped; everything else is the system allocator's, unchanged.
unsafe impl GlobalAlloc for ArenaOrSystem {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match arena_alloc(layout) {
            Some(p) => p,
            // SAFETY: the caller's contract, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !in_arena(ptr as usize) {
            // SAFETY: not arena memory, so the system allocator gave it out.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(ptr as usize) {
            // SAFETY: not arena memory, so the system allocator gave it out.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees a valid layout for new_size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for alloc.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and do not overlap (the new
            // one is a fresh allocation).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

/// A value whose heap memory is all in its own arena.
pub struct Frozen<T> {
    value: std::mem::ManuallyDrop<T>,
    id: usize,
    bytes: usize,
}

impl<T> Frozen<T> {
    /// Runs `build` with this thread's allocations going to a new arena and keeps its result
    /// there. Allocations that find no mapping fall back to `malloc` and stay valid.
    ///
    /// # Safety
    /// Everything `build` allocates is released with the arena when the `Frozen` is dropped.
    /// So `build` must not stash an allocation anywhere but in its result (a cache, a global,
    /// a lazily initialised standard-library value), and nothing may be cloned out of the
    /// frozen value that shares memory with it (an `Arc` or `Rc` clone) and outlive it.
    pub unsafe fn new(build: impl FnOnce() -> T) -> Frozen<T> {
        /// Ends the filling, also when `build` panics, and records how much it used.
        struct Restore<'a>(Option<Filling>, &'a Cell<usize>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let done = FILLING.with(|c| c.replace(self.0));
                self.1.set(done.map_or(0, |f| f.used));
                // After a panic in `build` the arena stays mapped (a leak, never a dangling
                // pointer): the panic's own payload was allocated in it.
            }
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let used = Cell::new(0);
        let value = {
            let outer = FILLING.with(|c| {
                c.replace(Some(Filling {
                    id,
                    next: 0,
                    end: 0,
                    next_chunk: FIRST_CHUNK,
                    used: 0,
                }))
            });
            let _restore = Restore(outer, &used);
            build()
        };
        seal(id);
        Frozen {
            value: std::mem::ManuallyDrop::new(value),
            id,
            bytes: used.get(),
        }
    }

    /// Bytes allocated in the arena (the frozen value's heap memory).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl<T> Deref for Frozen<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for Frozen<T> {
    fn drop(&mut self) {
        // The value is not dropped: its memory goes with the chunks, and dropping it could
        // write (reference counts) into pages that running backends share. Only allocations
        // that fell back to malloc (when a mapping failed) are leaked.
        release(self.id);
    }
}

/// Makes every chunk of arena `id` read-only: once filled, nothing writes to the rules in
/// force, so a stray write (in any backend, which shares these pages) faults in the process
/// that made it instead of silently changing the rules of every later login. A chunk whose
/// protection cannot be changed stays writable (`mprotect` fails only for invalid arguments).
fn seal(id: usize) {
    for i in 0..SLOTS {
        let start = CHUNKS[i * 3].load(Ordering::Acquire);
        if start == 0 || start == usize::MAX || CHUNKS[i * 3 + 2].load(Ordering::Acquire) != id {
            continue;
        }
        let end = CHUNKS[i * 3 + 1].load(Ordering::Acquire);
        // SAFETY: [start, end) is a whole mapping made by new_chunk for this arena (page
        // aligned); its values are only ever read from now on (Frozen hands out shared
        // references only, and its Drop unmaps without dropping them).
        unsafe { libc::mprotect(start as *mut libc::c_void, end - start, libc::PROT_READ) };
    }
}

/// Unmaps every chunk of arena `id`. Nothing may point into them any more.
fn release(id: usize) {
    for i in 0..SLOTS {
        let start = CHUNKS[i * 3].load(Ordering::Acquire);
        if start == 0 || start == usize::MAX || CHUNKS[i * 3 + 2].load(Ordering::Acquire) != id {
            continue;
        }
        let end = CHUNKS[i * 3 + 1].load(Ordering::Acquire);
        CHUNKS[i * 3].store(0, Ordering::Release);
        // SAFETY: this chunk belongs to arena `id` only, whose values were dropped (by
        // Frozen::drop or by unwinding out of `build`), so nothing points into it any more.
        unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
    }
}

#[cfg(test)]
// the Vecs are the point: heap allocations, to see where they land
#[allow(clippy::useless_vec)]
mod tests {
    use super::*;

    #[test]
    fn values_live_in_the_arena_and_outside_allocations_do_not() {
        let outside = vec![1u8; 100];
        // SAFETY: (as for every Frozen::new in these tests) the closure keeps nothing outside
        // its result, and nothing is cloned out of a frozen value that shares its memory.
        let frozen = unsafe {
            Frozen::new(|| {
                let mut v: Vec<String> = Vec::new();
                for i in 0..10_000 {
                    v.push(format!("rule {i}"));
                }
                v
            })
        };
        assert!(in_arena(frozen.as_ptr() as usize));
        assert!(in_arena(frozen[9_999].as_ptr() as usize));
        assert_eq!(frozen[1234], "rule 1234");
        assert!(!in_arena(outside.as_ptr() as usize));
        assert!(frozen.bytes() >= 10_000 * 6);
        // allocations after the arena is filled go to malloc again
        let after = vec![2u8; 100];
        assert!(!in_arena(after.as_ptr() as usize));
        // a chunk larger than the first one
        // SAFETY: as above.
        let big = unsafe { Frozen::new(|| vec![7u8; 3 << 20]) };
        assert!(in_arena(big.as_ptr() as usize));
        assert_eq!(big[(3 << 20) - 1], 7);
        let first = frozen.as_ptr() as usize;
        drop(frozen);
        assert!(!in_arena(first), "the chunks are released with the arena");
        drop(big);
    }

    #[test]
    fn a_frozen_value_is_read_only() {
        // SAFETY: as above.
        let frozen = unsafe { Frozen::new(|| vec![5u8; 8192]) };
        let p = frozen.as_ptr() as *mut u8;
        assert!(in_arena(p as usize));
        // SAFETY: fork in a test process: the child only writes to memory and exits, both
        // async-signal-safe (no allocation, no lock).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: deliberately unsound, in a child that is expected to die of it: the
            // write must fault.
            unsafe {
                std::ptr::write_volatile(p.add(100), 9);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "a write into the frozen value did not fault (status {status:#x})"
        );
        assert_eq!(frozen[100], 5);
        drop(frozen);
    }

    #[test]
    fn a_clone_out_of_the_arena_is_independent() {
        // SAFETY: as above; `clone` below copies out of the arena, it shares nothing.
        let frozen = unsafe { Frozen::new(|| vec![String::from("a"), String::from("b")]) };
        let copy: Vec<String> = frozen.clone();
        assert!(!in_arena(copy[0].as_ptr() as usize));
        drop(frozen);
        assert_eq!(copy, ["a", "b"]);
    }

    #[test]
    fn a_panic_while_filling_ends_the_filling_and_keeps_the_payload_readable() {
        let seen = std::sync::Mutex::new(0usize);
        let r = std::panic::catch_unwind(|| {
            // SAFETY: as above.
            unsafe {
                Frozen::new(|| {
                    let v = vec![1u8; 4096];
                    *seen.lock().unwrap() = v.as_ptr() as usize;
                    assert!(in_arena(v.as_ptr() as usize));
                    panic!("build failed");
                })
            }
        });
        let Err(payload) = r else {
            panic!("build did not panic")
        };
        assert!(in_arena(*seen.lock().unwrap()), "kept mapped");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"build failed"));
        assert!(FILLING.with(Cell::get).is_none(), "no longer filling");
        let after = vec![0u8; 16];
        assert!(!in_arena(after.as_ptr() as usize));
    }
}
