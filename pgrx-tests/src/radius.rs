//! A throwaway FreeRADIUS for one test: a self-contained `radiusd.conf` in a temporary
//! directory, loopback only, where a user authenticates with their password followed by the
//! current six-digit TOTP code (RFC 6238, SHA-1, 30-second steps), the way RADIUS two-factor
//! setups in front of PostgreSQL work. Stopped when dropped.

use crate::daemon::{wait_until, Daemon};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SHARED_SECRET: &str = "radius-shared-secret";

/// RFC 4648 base32 without padding (how FreeRADIUS's totp module takes `TOTP-Secret`).
pub fn base32(data: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(data)
}

/// The RFC 6238 code for `secret` at `unix_time`.
pub fn totp_at(secret: &[u8], unix_time: u64) -> String {
    let key = PKey::hmac(secret).unwrap();
    let mut signer = Signer::new(MessageDigest::sha1(), &key).unwrap();
    signer.update(&(unix_time / 30).to_be_bytes()).unwrap();
    let h = signer.sign_to_vec().unwrap();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The current code.
pub fn totp_now(secret: &[u8]) -> String {
    totp_at(secret, now())
}

/// A RADIUS user: name, password, TOTP secret.
pub struct RadiusUser {
    pub name: String,
    pub password: String,
    pub secret: Vec<u8>,
}

impl RadiusUser {
    pub fn new(name: &str) -> RadiusUser {
        RadiusUser {
            name: name.into(),
            password: format!("{name}-radius-pw"),
            secret: format!("{name}-totp-secret-0123").into_bytes(),
        }
    }

    /// What the user types: password followed by the current code.
    pub fn password_with_current_code(&self) -> String {
        format!("{}{}", self.password, totp_now(&self.secret))
    }
}

pub struct FreeRadius {
    dir: tempfile::TempDir,
    pub port: u16,
    daemon: Daemon,
}

impl FreeRadius {
    /// Starts FreeRADIUS (as the current user) with `users`, and waits until it is ready.
    pub fn start(users: &[&RadiusUser]) -> FreeRadius {
        let dir = tempfile::Builder::new()
            .prefix("pg2f-radius-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["log", "run", "mods-config"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let port = crate::ports::free_port();
        let mut users_file = String::new();
        for u in users {
            users_file.push_str(&format!(
                "{} Cleartext-Password := \"{}\", TOTP-Secret := \"{}\"\n",
                u.name,
                u.password,
                base32(&u.secret)
            ));
        }
        std::fs::write(d.join("users"), users_file).unwrap();
        let conf = format!(
            r#"
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/log
name = freeradius
confdir = {dir}
modconfdir = {dir}/mods-config
run_dir = {dir}/run
db_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = {dir}/run/radiusd.pid
max_request_time = 30
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {{
    destination = files
    file = {dir}/radius.log
    auth = yes
    auth_badpass = no
    auth_goodpass = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
thread pool {{
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 3
    max_requests_per_server = 0
}}
client pg {{
    ipaddr = 127.0.0.1
    secret = {SHARED_SECRET}
    require_message_authenticator = no
}}
modules {{
    always reject {{
        rcode = reject
    }}
    files {{
        filename = {dir}/users
    }}
    totp {{
        time_step = 30
        otp_length = 6
        lookback_steps = 1
        lookback_interval = 30
    }}
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
    }}
    authorize {{
        files
        if (!&control:Cleartext-Password) {{
            reject
        }}
        # the last six digits of what the user typed are the one-time code
        if (&User-Password =~ /^(.*)([0-9]{{6}})$/) {{
            update request {{
                &TOTP-Password := "%{{2}}"
            }}
            if ("%{{1}}" != "%{{control:Cleartext-Password}}") {{
                reject
            }}
            update control {{
                &Auth-Type := totp
            }}
        }}
        else {{
            reject
        }}
    }}
    authenticate {{
        Auth-Type totp {{
            totp
        }}
    }}
}}
"#,
            dir = d.display()
        );
        std::fs::write(d.join("radiusd.conf"), conf).unwrap();
        let check = Command::new("freeradius")
            .arg("-d")
            .arg(d)
            .args(["-C", "-X"])
            .output()
            .expect("freeradius (Debian package freeradius)");
        assert!(
            check.status.success(),
            "freeradius -C rejected the configuration:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("freeradius")
            .arg("-d")
            .arg(d)
            .arg("-f")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let r = FreeRadius {
            dir,
            port,
            daemon: Daemon::new(child),
        };
        r.wait_until_ready();
        r
    }

    fn wait_until_ready(&self) {
        wait_until(
            || self.log().contains("Ready to process requests"),
            || {
                format!(
                    "FreeRADIUS did not start:\n{}\n{}",
                    self.log(),
                    self.stderr()
                )
            },
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radius.log")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_and_rfc4648_vectors() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits
        let key = b"12345678901234567890";
        assert_eq!(totp_at(key, 59), "287082");
        assert_eq!(totp_at(key, 1111111109), "081804");
        assert_eq!(totp_at(key, 2000000000), "279037");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }
}
