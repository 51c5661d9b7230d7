//! A test server started as a child process (slapd, FreeRADIUS): killed when stopped or dropped.

use std::process::Child;
use std::time::{Duration, Instant};

pub struct Daemon(Option<Child>);

impl Daemon {
    pub fn new(child: Child) -> Daemon {
        Daemon(Some(child))
    }

    /// The process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// Whether the process has ended (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Kills the process and waits for it; afterwards the service is unreachable.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `ready` every 100 ms for up to 30 s; panics with `why()` if it never becomes true.
pub fn wait_until(mut ready: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(100));
    }
}
