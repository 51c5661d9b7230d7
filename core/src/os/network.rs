//! The real [`Network`]: the system resolver and the machine's interfaces.
//!
//! During authentication the host-name lookups are bounded by what is left of
//! `authentication_timeout`: the resolver call runs on a short-lived thread and the backend
//! waits for it until the deadline, then gives up (the lookup fails, so the rule or the
//! certificate entry cannot be decided and the login is refused with that cause). PostgreSQL's
//! own timeout cannot interrupt a blocked `getaddrinfo`, and when it fires during
//! authentication the client is told nothing; giving up first keeps the refusal and its reason.

use super::{gai_message, sockaddr_ip};
use crate::address::{mask_from_prefix, InterfacesError, Lookup, Network};
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::Instant;

/// A lookup deadline: the instant, and the `authentication_timeout` (seconds) it derives from.
pub type Deadline = Option<(Instant, i32)>;

/// The system resolver, unbounded or bounded by a deadline.
pub struct SystemNetwork {
    /// The instant each lookup gives up, and the `authentication_timeout` (seconds) it derives
    /// from, for the message.
    /// Read at the first lookup (most logins make none), then kept.
    deadline: std::cell::OnceCell<Deadline>,
    /// Where the deadline comes from; `None`: unbounded.
    source: Option<fn() -> Deadline>,
}

impl SystemNetwork {
    /// Lookups that take as long as the resolver takes (the dry run, in an ordinary session).
    pub fn unbounded() -> SystemNetwork {
        SystemNetwork {
            deadline: std::cell::OnceCell::new(),
            source: None,
        }
    }

    /// Lookups that give up at the deadline `source` gives (the instant, and the
    /// `authentication_timeout` in seconds it derives from; `None`: no deadline), asked at the
    /// first lookup only.
    pub fn bounded_by(source: fn() -> Deadline) -> SystemNetwork {
        SystemNetwork {
            deadline: std::cell::OnceCell::new(),
            source: Some(source),
        }
    }

    /// Runs `lookup` here (unbounded) or on a thread of its own, waiting for it until the
    /// deadline. A thread still blocked in the resolver then is left behind, inside libc (and
    /// whatever NSS module the resolver uses) with its own result channel; the backend refuses
    /// the login and exits, which ends the thread. (An undecidable `mode=report` rule does not
    /// refuse, so then the session goes on with that thread blocked until the resolver gives
    /// up; it touches nothing of the backend's.)
    fn run<T: Send + 'static>(
        &self,
        lookup: impl FnOnce() -> Lookup<T> + Send + 'static,
    ) -> Lookup<T> {
        let deadline = *self
            .deadline
            .get_or_init(|| self.source.and_then(|source| source()));
        let Some((deadline, secs)) = deadline else {
            return lookup();
        };
        let timed_out = || {
            Lookup::Failed(format!(
                "no answer before authentication_timeout ({secs} s) ran out"
            ))
        };
        if Instant::now() >= deadline {
            return timed_out();
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = with_signals_blocked(|| {
            std::thread::Builder::new()
                .name("pg_twofactor lookup".into())
                // NSS modules (sssd, LDAP, mDNS) may want as much stack as the main thread;
                // this is address space, touched only as used
                .stack_size(8 * 1024 * 1024)
                .spawn(move || {
                    let _ = tx.send(lookup());
                })
        });
        if let Err(e) = spawned {
            return Lookup::Failed(format!("cannot start the lookup: {e}"));
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => timed_out(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Lookup::Failed("the lookup ended without an answer".into())
            }
        }
    }
}

/// Runs `f` with every signal blocked in this thread, so a thread started by `f` inherits a
/// mask that leaves PostgreSQL's signals to the backend's own thread; the mask is restored.
fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: sigset_t is plain data, filled by sigfillset before use; pthread_sigmask changes
    // only the calling thread's mask, and the previous mask is put back right after `f`
    // (which only starts a thread and cannot unwind past this point without the mask being
    // restored, since thread::Builder::spawn reports failure as a value). Signals arriving
    // meanwhile stay pending and are delivered when the old mask is restored.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// Error codes that mean a definite "no such name".
fn is_definite(rc: i32) -> bool {
    rc == libc::EAI_NONAME || rc == libc::EAI_NODATA
}

impl Network for SystemNetwork {
    fn reverse(&self, addr: IpAddr) -> Lookup<Vec<u8>> {
        self.run(move || reverse(addr))
    }

    fn forward(&self, name: &[u8]) -> Lookup<Vec<IpAddr>> {
        let name = name.to_vec();
        self.run(move || forward(&name))
    }

    fn interfaces(&self) -> Result<Vec<(IpAddr, IpAddr)>, InterfacesError> {
        interfaces()
    }
}

fn reverse(addr: IpAddr) -> Lookup<Vec<u8>> {
    let sa: raw_sockaddr::SockAddr = SocketAddr::new(addr, 0).into();
    let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    // SAFETY: `sa` is a valid sockaddr of the given length; `host` is a writable buffer of
    // the length passed; no service buffer is requested.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if is_definite(rc) {
        return Lookup::NotFound;
    }
    if rc != 0 {
        return Lookup::Failed(gai_message(rc));
    }
    // SAFETY: getnameinfo succeeded and NUL-terminated the buffer.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Lookup::Found(name.to_bytes().to_vec())
}

fn forward(name: &[u8]) -> Lookup<Vec<IpAddr>> {
    let Ok(c) = std::ffi::CString::new(name) else {
        return Lookup::NotFound;
    };
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: a NUL-terminated name, no service, no hints (as PostgreSQL's check_hostname);
    // the result list is freed below.
    let rc = unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), std::ptr::null(), &mut res) };
    if is_definite(rc) {
        return Lookup::NotFound;
    }
    if rc != 0 {
        return Lookup::Failed(gai_message(rc));
    }
    let mut out = Vec::new();
    let mut cur = res;
    // SAFETY: a list returned by a successful getaddrinfo; each ai_addr is a sockaddr of its
    // family (or null); freed exactly once.
    unsafe {
        while !cur.is_null() {
            if let Some(a) = sockaddr_ip((*cur).ai_addr) {
                out.push(a);
            }
            cur = (*cur).ai_next;
        }
        libc::freeaddrinfo(res);
    }
    Lookup::Found(out)
}

fn interfaces() -> Result<Vec<(IpAddr, IpAddr)>, InterfacesError> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free with freeifaddrs below; each
    // ifa_addr/ifa_netmask is null or a sockaddr of its family.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return Err(InterfacesError {
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        let mut cur = head;
        while !cur.is_null() {
            if let Some(a) = sockaddr_ip((*cur).ifa_addr) {
                // run_ifaddr_callback: a missing, zero or other-family mask is all ones
                let all_ones = mask_from_prefix(a.is_ipv4(), if a.is_ipv4() { 32 } else { 128 })
                    .expect("valid prefix");
                let m = match sockaddr_ip((*cur).ifa_netmask) {
                    Some(m) if m.is_ipv4() == a.is_ipv4() && !m.is_unspecified() => m,
                    _ => all_ones,
                };
                out.push((a, m));
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    Ok(out)
}

/// A sockaddr built from a `SocketAddr`, for `getnameinfo`.
mod raw_sockaddr {
    use std::net::SocketAddr;

    pub struct SockAddr {
        storage: libc::sockaddr_storage,
        len: libc::socklen_t,
    }

    impl From<SocketAddr> for SockAddr {
        fn from(sa: SocketAddr) -> Self {
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let len = match sa {
                SocketAddr::V4(v4) => {
                    // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
                    let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
                    sin.sin_family = libc::AF_INET as libc::sa_family_t;
                    sin.sin_port = v4.port().to_be();
                    sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                    std::mem::size_of::<libc::sockaddr_in>()
                }
                SocketAddr::V6(v6) => {
                    // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
                    let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
                    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sin6.sin6_port = v6.port().to_be();
                    sin6.sin6_addr.s6_addr = v6.ip().octets();
                    std::mem::size_of::<libc::sockaddr_in6>()
                }
            };
            SockAddr {
                storage,
                len: len as libc::socklen_t,
            }
        }
    }

    impl SockAddr {
        pub fn as_ptr(&self) -> *const libc::sockaddr {
            &self.storage as *const _ as *const libc::sockaddr
        }
        pub fn len(&self) -> libc::socklen_t {
            self.len
        }
    }
}
