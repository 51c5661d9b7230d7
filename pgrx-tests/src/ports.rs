//! The one port picker of the harness, for clusters, `slapd` and FreeRADIUS alike.

use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};

/// A loopback port that is free right now for TCP on 127.0.0.1 and ::1 and for UDP on
/// 127.0.0.1, so any of the harness's servers can take it. Each test process draws from its
/// own range of 100 ports (by process id) and walks it in turn, so parallel test binaries and
/// servers that bind a moment after the check do not collide; the ranges lie below Linux's
/// ephemeral ports (32768 and up), which the clients' own connections use.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 12000 + (std::process::id() % 200) as u16 * 100;
    for _ in 0..1000 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 100;
        let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok();
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        if v4 && v6 && udp {
            return port;
        }
    }
    panic!("no free loopback port in {base}..{}", base + 100)
}
