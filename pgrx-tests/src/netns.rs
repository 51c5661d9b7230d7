//! A second host for tests: a network namespace joined to this one by a veth pair, on an
//! address range used only on that link. Clients run in it on a thread that has entered the
//! namespace (`setns`), so the test process needs no helper program. Needs root.

use std::net::IpAddr;
use std::process::Command;

/// The host side and the namespace side of the link.
pub const HOST_ADDR: &str = "10.213.7.1";
pub const PEER_ADDR: &str = "10.213.7.2";

/// A namespace host; deleted (with its link) when dropped.
pub struct NetnsHost {
    pub name: String,
    link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes every `pg2f-*` namespace and every link that holds [`HOST_ADDR`] (what a run that was
/// killed before its `Drop` left behind).
fn remove_leftovers() {
    let listed = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for line in listed(&["netns", "list"]).lines() {
        if let Some(name) = line
            .split_whitespace()
            .next()
            .filter(|n| n.starts_with("pg2f-"))
        {
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in listed(&["-o", "addr", "show", "to", HOST_ADDR]).lines() {
        // "7: p2foracle@if6    inet 10.213.7.1/24 ..."
        if let Some(link) = line.split_whitespace().nth(1) {
            let _ = ip(&["link", "del", link.split('@').next().unwrap_or(link)]);
        }
    }
}

impl NetnsHost {
    /// The second host for a scenario that can run with loopback clients alone: created as
    /// root; `None` when not root or when it cannot be made, said on stderr, except under CI
    /// (`CI=true`), where a scenario that cannot run its full form fails instead.
    pub fn for_scenario(tag: &str) -> Option<NetnsHost> {
        let made = if crate::cluster::is_root() {
            NetnsHost::create(tag)
        } else {
            Err("not root".into())
        };
        match made {
            Ok(host) => Some(host),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "no network-namespace host ({e}), and under CI every scenario runs in full"
                );
                eprintln!("no network-namespace host ({e}): loopback clients only");
                None
            }
        }
    }

    /// Creates the namespace `pg2f-<tag>` with PEER_ADDR, linked to HOST_ADDR here.
    pub fn create(tag: &str) -> Result<NetnsHost, String> {
        let name = format!("pg2f-{tag}");
        let link = format!("p2f{}", &tag[..tag.len().min(8)]);
        let peer = format!("{link}n");
        // leftovers of an interrupted run, of this scenario or another (they all use the same
        // addresses: a link left holding HOST_ADDR would take this one's traffic)
        remove_leftovers();
        let _ = ip(&["link", "del", &link]);
        ip(&["netns", "add", &name])?;
        let host = NetnsHost {
            name: name.clone(),
            link: link.clone(),
        };
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &name])?;
        ip(&["addr", "add", &format!("{HOST_ADDR}/24"), "dev", &link])?;
        ip(&["link", "set", &link, "up"])?;
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{PEER_ADDR}/24"),
            "dev",
            &peer,
        ])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", &peer, "up"])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
        Ok(host)
    }

    pub fn peer(&self) -> IpAddr {
        PEER_ADDR.parse().unwrap()
    }

    /// Runs `f` on a new thread that has entered the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// Moves the calling thread into the namespace for good: its new sockets are the
    /// namespace host's (for a thread a scenario spawned for that purpose).
    pub fn enter_on_this_thread(&self) {
        enter(&self.path());
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

fn enter(path: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    use std::os::fd::AsRawFd;
    // SAFETY: setns on this thread only (CLONE_NEWNET), with an open namespace fd.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for NetnsHost {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.link]);
    }
}
