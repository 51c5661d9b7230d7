//! The mapping that holds the image of the rules in force: made by the postmaster, filled once,
//! sealed read-only, inherited by every backend at fork.
//!
//! A *shared* anonymous mapping: fork() does not copy its page tables, so forking a backend
//! costs the same with 100,000 rules as with none, and a backend maps in only the pages its
//! lookup reads. Not a private one: that would spare a backend those few page faults, but
//! Linux charges every fork the whole size of a private mapping that was ever writable, so
//! under `vm.overcommit_memory=2` each backend would be charged the image again (a shared
//! mapping is charged once; BENCHMARKS.md, "The rules image's mapping").
//!
//! Sealed (`PROT_READ`) before it is published: a stray write in any process faults in that
//! process instead of changing the rules of every later login. (Sealing stops mistakes, not
//! code that means harm: code running as the server's OS user could `mprotect` the pages
//! writable again, and shared, they would then change for every process; such code can already
//! do worse.)
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

impl Sealed {
    /// Copies `bytes`, after their length, into a new shared anonymous mapping and makes it
    /// read-only. An error (no memory for the mapping, a protection that cannot be set) leaves
    /// nothing mapped.
    pub fn new(bytes: &[u8]) -> io::Result<Sealed> {
        let len = PREFIX + bytes.len();
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
        // SAFETY: the mapping is `len` writable bytes, page-aligned (so aligned for a u64),
        // new, so it does not overlap `bytes`.
        unsafe {
            sealed.at.cast::<u64>().write(bytes.len() as u64);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), sealed.at.add(PREFIX), bytes.len());
        }
        // SAFETY: [at, at + len) is the mapping made above.
        if unsafe { libc::mprotect(at, len, libc::PROT_READ) } != 0 {
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

    #[test]
    fn an_empty_copy_still_gets_a_mapping() {
        let sealed = Sealed::new(b"").unwrap();
        assert_eq!(sealed.bytes(), b"");
    }
}
