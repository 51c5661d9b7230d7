//! The mapping that holds the image of the rules in force: made by the postmaster, filled once,
//! sealed read-only, inherited by every backend at fork.
//!
//! A *private* anonymous mapping, starting on a 2 MB boundary with transparent huge pages
//! asked for (`MADV_HUGEPAGE`): fork() copies its page-table entries, so a backend reads the
//! image without a page fault, and with huge pages there is one entry per 2 MB to copy (a
//! 100,000-rule image is 9 of them and a tail). An image under 2 MB, or a kernel without
//! transparent huge pages, has ordinary pages, one entry each for fork to copy (BENCHMARKS.md,
//! "The rules image's mapping": 20 to 40 us more per fork at 2 MB, 240 us at 18 MB without huge
//! pages). A shared mapping, as before, made fork cost nothing extra but made each backend
//! fault in every page its lookup read (6 to 7 at 10,000 rules).
//!
//! Sealed (`PROT_READ`) before it is published: a stray write in any process faults in that
//! process. Code running as the server's OS user could `mprotect` its copy writable again;
//! private, the change would stay in that process (copy on write), never reach the rules of
//! other logins.
//!
//! The mapping starts with the image's length (8 bytes, native order), then the image, so
//! that one pointer says where the rules are and how long they are.

const PREFIX: usize = std::mem::size_of::<u64>();

use std::io;

/// A sealed copy of an image's bytes. Dropping it unmaps it (in this process only: a backend
/// forked earlier keeps its own mapping).
pub struct Sealed {
    at: *mut u8,
    /// The mapping's length: the prefix and the bytes.
    len: usize,
}

/// A transparent huge page: where the mapping starts, so that the kernel can back each whole
/// 2 MB of a large image with one page (one page-table entry for fork to copy).
const HUGE_PAGE: usize = 2 << 20;

impl Sealed {
    /// Copies `bytes`, after their length, into a new private anonymous mapping and makes it
    /// read-only. An error (no memory for the mapping, a protection that cannot be set) leaves
    /// nothing mapped.
    pub fn new(bytes: &[u8]) -> io::Result<Sealed> {
        let len = PREFIX + bytes.len();
        let sealed = Sealed {
            at: map_aligned(len)?,
            len,
        };
        // SAFETY: [at, at + len) is the mapping just made.
        unsafe { ask_for_huge_pages(sealed.at, len) };
        // SAFETY: the mapping is `len` writable bytes, page-aligned (so aligned for a u64),
        // new, so it does not overlap `bytes`.
        unsafe {
            sealed.at.cast::<u64>().write(bytes.len() as u64);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), sealed.at.add(PREFIX), bytes.len());
        }
        // SAFETY: [at, at + len) is the mapping made above.
        if unsafe { libc::mprotect(sealed.at.cast(), len, libc::PROT_READ) } != 0 {
            return Err(io::Error::last_os_error()); // `sealed` unmaps it
        }
        Ok(sealed)
    }

    /// Where it starts, for publishing ([`Sealed::from_raw`] takes it back, [`Sealed::bytes_at`]
    /// reads it).
    pub fn into_raw(self) -> *mut u8 {
        let at = self.at;
        std::mem::forget(self);
        at
    }

    /// The mapping [`Sealed::into_raw`] gave out.
    ///
    /// # Safety
    /// `at` came from `into_raw` in this process and is taken back once.
    pub unsafe fn from_raw(at: *mut u8) -> Sealed {
        // SAFETY: per the contract, `at` starts a live mapping that begins with its length.
        let bytes = unsafe { at.cast::<u64>().read() } as usize;
        Sealed {
            at,
            len: PREFIX + bytes,
        }
    }

    /// The bytes of the mapping [`Sealed::into_raw`] gave out, without taking it back.
    ///
    /// # Safety
    /// `at` came from `into_raw` in this process, and the mapping is not taken back while the
    /// slice lives.
    pub unsafe fn bytes_at<'a>(at: *const u8) -> &'a [u8] {
        // SAFETY: per the contract: a live, sealed mapping that begins with its length.
        unsafe {
            let len = at.cast::<u64>().read() as usize;
            std::slice::from_raw_parts(at.add(PREFIX), len)
        }
    }

    /// The bytes copied in.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping lives as long as `self`, and `into_raw` consumed no other copy.
        unsafe { Sealed::bytes_at(self.at) }
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length; nothing borrows it any more (a
        // borrow from `bytes` cannot outlive `self`).
        unsafe { libc::munmap(self.at.cast(), self.len) };
    }
}

/// A new private anonymous writable mapping of `len` bytes starting on a [`HUGE_PAGE`]
/// boundary: one of `len + HUGE_PAGE` bytes, its unaligned head and its tail unmapped.
fn map_aligned(len: usize) -> io::Result<*mut u8> {
    let reserved = len + HUGE_PAGE;
    // SAFETY: a new anonymous mapping at an address of the kernel's choice; it aliases
    // nothing.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserved,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if at == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let start = (at as usize).next_multiple_of(HUGE_PAGE);
    let head = start - at as usize;
    let end = (start + len).next_multiple_of(page_size());
    let tail = at as usize + reserved - end;
    // SAFETY: [at, start) and [end, at + reserved) lie in the mapping just made, which nothing
    // else uses yet; both are page-aligned (the mapping is, and HUGE_PAGE and end are
    // multiples of the page size). Unmapping nothing (a length of 0) is refused, so skipped.
    unsafe {
        if head > 0 {
            libc::munmap(at, head);
        }
        if tail > 0 {
            libc::munmap(end as *mut libc::c_void, tail);
        }
    }
    Ok(start as *mut u8)
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Asks the kernel to back the mapping's whole 2 MB stretches with transparent huge pages: a
/// fork then copies one entry per 2 MB instead of 512, and a backend reads the image without
/// a page fault. Only advice: without transparent huge pages (a kernel without them, or
/// `never`) the mapping keeps ordinary pages, which fork copies one entry each.
///
/// # Safety
/// `[at, at + len)` is a mapping this module made.
unsafe fn ask_for_huge_pages(at: *mut u8, len: usize) {
    // SAFETY: per the contract; madvise changes no contents.
    unsafe { libc::madvise(at.cast(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions of the mapping that contains `at`, from /proc/self/maps (`r--p`).
    fn permissions(at: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find_map(|l| {
                let (range, rest) = l.split_once(' ')?;
                let (start, end) = range.split_once('-')?;
                let (start, end) = (
                    usize::from_str_radix(start, 16).ok()?,
                    usize::from_str_radix(end, 16).ok()?,
                );
                (start <= at && at < end).then(|| rest[..4].to_string())
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_copy_is_read_only_and_private() {
        let sealed = Sealed::new(b"pg2frul1 and the rest").unwrap();
        assert!(sealed.bytes().starts_with(b"pg2frul1 and the rest"));
        let at = sealed.bytes().as_ptr() as usize;
        assert_eq!(permissions(at), "r--p");
        let p = sealed.into_raw();
        // SAFETY: from into_raw just above, not taken back yet.
        assert_eq!(unsafe { Sealed::bytes_at(p) }, b"pg2frul1 and the rest");
        // SAFETY: taken back once, from into_raw just above.
        let back = unsafe { Sealed::from_raw(p) };
        assert_eq!(back.bytes(), b"pg2frul1 and the rest");
        assert_eq!(back.len, 8 + 21);
        // (whether the drop unmaps it cannot be seen here: a test running beside this one may
        // map the same address at once)
    }

    /// The mapping starts on a huge-page boundary (what lets the kernel use huge pages), and a
    /// copy larger than one huge page reads back whole.
    #[test]
    fn the_copy_starts_on_a_huge_page_boundary() {
        let bytes: Vec<u8> = (0..HUGE_PAGE + 12_345).map(|i| (i % 251) as u8).collect();
        let sealed = Sealed::new(&bytes).unwrap();
        assert_eq!(sealed.at as usize % HUGE_PAGE, 0);
        assert_eq!(sealed.bytes(), bytes.as_slice());
        assert_eq!(permissions(sealed.at as usize + HUGE_PAGE), "r--p");
    }

    #[test]
    fn an_empty_copy_still_gets_a_mapping() {
        let sealed = Sealed::new(b"").unwrap();
        assert_eq!(sealed.bytes(), b"");
    }
}
