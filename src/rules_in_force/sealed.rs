//! The mapping that holds the image of the rules in force: made by the postmaster, filled once,
//! sealed read-only, inherited by every backend at fork.
//!
//! A *shared* anonymous mapping: fork() does not copy its page tables, so forking a backend
//! costs the same with 100,000 rules as with none, and a backend maps in only the pages its
//! lookup reads. Sealed (`PROT_READ`) before it is published: a stray write in any process
//! faults in that process instead of changing the rules of every later login.

use std::io;

/// A sealed copy of an image's bytes. Dropping it unmaps it (in this process only: a backend
/// forked earlier keeps its own mapping).
pub struct Sealed {
    at: *mut u8,
    len: usize,
}

impl Sealed {
    /// Copies `bytes` into a new shared anonymous mapping and makes it read-only. An error
    /// (no memory for the mapping, a protection that cannot be set) leaves nothing mapped.
    pub fn new(bytes: &[u8]) -> io::Result<Sealed> {
        let len = bytes.len().max(1);
        // SAFETY: a new anonymous mapping at an address of the kernel's choice; it aliases
        // nothing.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let sealed = Sealed { at: at.cast(), len };
        // SAFETY: the mapping is `len >= bytes.len()` writable bytes, new, so it does not
        // overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), sealed.at, bytes.len()) };
        // SAFETY: [at, at + len) is the mapping made above, page-aligned by mmap.
        if unsafe { libc::mprotect(at, len, libc::PROT_READ) } != 0 {
            return Err(io::Error::last_os_error()); // `sealed` unmaps it
        }
        Ok(sealed)
    }

    /// Where it starts and how long it is, for publishing ([`Sealed::from_raw`] takes it back).
    pub fn into_raw(self) -> (*mut u8, usize) {
        let raw = (self.at, self.len);
        std::mem::forget(self);
        raw
    }

    /// The mapping [`Sealed::into_raw`] gave out.
    ///
    /// # Safety
    /// `(at, len)` came from `into_raw` in this process and is taken back once.
    pub unsafe fn from_raw(at: *mut u8, len: usize) -> Sealed {
        Sealed { at, len }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.at, self.len) }
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length; nothing borrows it any more (a
        // borrow from `bytes` cannot outlive `self`).
        unsafe { libc::munmap(self.at.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions of the mapping that contains `at`, from /proc/self/maps (`r--s`).
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
    fn the_copy_is_read_only_and_shared() {
        let sealed = Sealed::new(b"pg2frul1 and the rest").unwrap();
        assert!(sealed.bytes().starts_with(b"pg2frul1 and the rest"));
        let at = sealed.bytes().as_ptr() as usize;
        assert_eq!(permissions(at), "r--s");
        let (p, len) = sealed.into_raw();
        // SAFETY: taken back once, from into_raw just above.
        let back = unsafe { Sealed::from_raw(p, len) };
        assert!(back.bytes().starts_with(b"pg2frul1"));
        // (whether the drop unmaps it cannot be seen here: a test running beside this one may
        // map the same address at once)
    }

    #[test]
    fn an_empty_image_still_gets_a_mapping() {
        let sealed = Sealed::new(b"").unwrap();
        assert_eq!(sealed.bytes(), [0]);
    }
}
