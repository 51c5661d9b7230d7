//! The operating system's C functions, the one place in the core crate with `unsafe` code
//! (the crate denies it everywhere else): numeric addresses and socket addresses, the C
//! library's character classes, memory probes, and [`network`], the system resolver and the
//! machine's interfaces.

pub mod network;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `getaddrinfo(AI_NUMERICHOST)`, as `parse_hba_line` reads the ADDRESS column: the address,
/// `Ok(None)` when it is not numeric (then it is a host name), or the resolver's error.
pub fn numeric_host(text: &[u8]) -> Result<Option<IpAddr>, String> {
    let Ok(c) = std::ffi::CString::new(text) else {
        return Ok(None);
    };
    // SAFETY: addrinfo is plain data; all-zero is a valid "no hints" value we then fill in.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_NUMERICHOST;
    hints.ai_family = libc::AF_UNSPEC;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated host, no service, valid hints; `res` is freed below.
    let rc = unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc == libc::EAI_NONAME {
        return Ok(None);
    }
    if rc != 0 || res.is_null() {
        return Err(gai_message(rc));
    }
    // SAFETY: getaddrinfo succeeded, so `res` is a valid list whose ai_addr is a sockaddr of
    // its family; we read the first entry and free the list once.
    let addr = unsafe {
        let a = sockaddr_ip((*res).ai_addr);
        libc::freeaddrinfo(res);
        a
    };
    Ok(addr)
}

/// The text of a `getaddrinfo`/`getnameinfo` error code.
pub fn gai_message(rc: i32) -> String {
    // SAFETY: gai_strerror returns a static NUL-terminated string for any code.
    unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) }
        .to_string_lossy()
        .into_owned()
}

/// Converts a `sockaddr` of family AF_INET/AF_INET6 into an address.
///
/// # Safety
/// `sa` must be null or point to a sockaddr whose storage is at least as large as its family's
/// structure (as `getaddrinfo`, `getifaddrs` and PostgreSQL's `SockAddr` guarantee).
pub unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null and, per the contract, backed by the structure of its family.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// `tolower` of a byte if `isupper` says it is upper case, by the process's `LC_CTYPE` (the C
/// library's classes, as PostgreSQL's `pg_strcasecmp` folds bytes with the high bit set).
pub fn ctype_lower(c: u8) -> u8 {
    // SAFETY: isupper/tolower are defined for every unsigned char value.
    unsafe {
        if libc::isupper(i32::from(c)) != 0 {
            libc::tolower(i32::from(c)) as u8
        } else {
            c
        }
    }
}

/// Whether `need` bytes of memory can be had right now: maps that much (writable, private: it
/// counts against `RLIMIT_AS` and the overcommit limit like the allocations it stands for)
/// and unmaps it untouched. Rust cannot recover from a failed allocation (it aborts the
/// process, which PostgreSQL treats as a crash of every session), so code that a failure
/// would hit halfway (a load in the postmaster, a SQL call in a backend) asks first and turns
/// the foreseeable shortage into an error.
pub fn memory_available(need: u64) -> Result<(), std::io::Error> {
    let len = usize::try_from(need).map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing; nothing
    // reads or writes it, and it is unmapped with the same length right away.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        libc::munmap(p, len);
    }
    Ok(())
}

/// Hands the free pages of the C library's heap back to the operating system (glibc's
/// `malloc_trim(0)`, every arena; nothing on other C libraries).
pub fn trim_malloc_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is invalidated.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit tests run in the C locale, where no byte above 0x7F is upper case: the fold
    /// leaves them as they are (fidelity.rs's LATIN1 cluster covers another locale end to end).
    #[test]
    fn in_the_c_locale_high_bytes_fold_to_themselves() {
        for c in [0x80u8, 0xC4, 0xD6, 0xFF] {
            assert_eq!(ctype_lower(c), c);
        }
    }
}
