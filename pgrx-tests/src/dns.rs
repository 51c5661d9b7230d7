//! A DNS server of the test's own, at the address the clusters' private name service asks
//! ([`RESOLVER`], see [`ClusterBuilder::name_service`](crate::cluster::ClusterBuilder::name_service)),
//! that answers every question "no such name" (NXDOMAIN). With it, a name or address the
//! private hosts file does not hold has no name, as on a machine whose DNS knows nothing of the
//! test's addresses, and the host's own DNS is never asked. (Without it nothing listens there
//! and every question fails at once as a temporary failure: a lookup that cannot be decided.)

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Where the private name service's `resolv.conf` points.
pub const RESOLVER: &str = "127.83.0.53:53";

/// One server at a time may hold the address (scenarios of one test binary take turns).
static TURN: Mutex<()> = Mutex::new(());

/// The NXDOMAIN server; it stops when dropped.
pub struct NxDomainDns {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _turn: MutexGuard<'static, ()>,
}

/// The answer to `query`: the same ID and question, response, recursion available, NXDOMAIN,
/// no records (`None` for a packet that is not a whole query).
pub fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    // the question: QNAME's labels up to the root label, then QTYPE and QCLASS
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += usize::from(query[end]) + 1;
    }
    end += 1 + 4;
    if end > query.len() {
        return None;
    }
    let mut reply = query[..end].to_vec();
    reply[2] = 0x80 | (query[2] & 0x79); // QR, the query's opcode and RD
    reply[3] = 0x80 | 3; // RA, RCODE 3: NXDOMAIN
    reply[4..6].copy_from_slice(&[0, 1]); // one question
    reply[6..12].fill(0); // no answer, authority or additional records
    Some(reply)
}

impl NxDomainDns {
    pub fn start() -> NxDomainDns {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let socket = UdpSocket::bind(RESOLVER).expect("bind the test's DNS server");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = nxdomain(&buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        NxDomainDns {
            stop,
            thread: Some(thread),
            _turn: turn,
        }
    }
}

impl Drop for NxDomainDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_no_such_name_to_the_question_asked() {
        // ID 0x1234, RD, one question: "a.b" PTR IN, plus an EDNS OPT record
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend([1, b'a', 1, b'b', 0, 0, 12, 0, 1]);
        q.extend([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        let r = nxdomain(&q).unwrap();
        assert_eq!(&r[..12], &[0x12, 0x34, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[12..], &[1, b'a', 1, b'b', 0, 0, 12, 0, 1]);
        assert_eq!(nxdomain(&r), None, "a response is not answered");
        assert_eq!(nxdomain(&q[..14]), None, "a cut question is not answered");
    }
}
