//! The real [`Network`]: the system resolver and the machine's interfaces.

use crate::address::Network;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

pub struct SystemNetwork;

/// Converts a `sockaddr` of family AF_INET/AF_INET6 into an address.
///
/// # Safety
/// `sa` must be null or point to a sockaddr whose storage is at least as large as its family's
/// structure (as `getifaddrs` and PostgreSQL's `SockAddr` guarantee).
pub unsafe fn sockaddr_to_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null and, per the contract, backed by the structure of its family.
    unsafe {
        match (*sa).sa_family as i32 {
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

impl Network for SystemNetwork {
    fn reverse(&self, addr: IpAddr) -> Option<String> {
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
        if rc != 0 {
            return None;
        }
        // SAFETY: getnameinfo succeeded and NUL-terminated the buffer.
        let name = unsafe { CStr::from_ptr(host.as_ptr()) };
        name.to_str().ok().map(str::to_string)
    }

    fn forward(&self, name: &str) -> Vec<IpAddr> {
        (name, 0u16)
            .to_socket_addrs()
            .map(|it| it.map(|sa| sa.ip()).collect())
            .unwrap_or_default()
    }

    fn interfaces(&self) -> Vec<(IpAddr, IpAddr)> {
        let mut out = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list we free with freeifaddrs below; each
        // ifa_addr/ifa_netmask is null or a sockaddr of its family.
        unsafe {
            if libc::getifaddrs(&mut head) != 0 {
                return out;
            }
            let mut cur = head;
            while !cur.is_null() {
                if let (Some(a), Some(m)) = (
                    sockaddr_to_ip((*cur).ifa_addr),
                    sockaddr_to_ip((*cur).ifa_netmask),
                ) {
                    out.push((a, m));
                }
                cur = (*cur).ifa_next;
            }
            libc::freeifaddrs(head);
        }
        out
    }
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
