//! A real Patroni cluster for the HA scenario: an etcd and Patroni nodes on loopback ports,
//! each PostgreSQL with pg_twofactor, configured by `docs/patroni.yml` (the recipe in docs/operating.md)
//! with only its directories moved here. Patroni and PostgreSQL run as the `postgres` OS user.

use crate::certs::Pki;
use crate::cluster::{bindir, chown_to_cluster_user, Cluster, CLUSTER_OS_USER};
use crate::daemon::Daemon;
use crate::ports::free_port;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The documented Patroni configuration, shared by every node.
pub const RECIPE: &str = include_str!("../../docs/patroni.yml");
/// The scope (cluster name) in [`RECIPE`].
pub const SCOPE: &str = "pg2f";
pub const SUPERUSER_PASSWORD: &str = "patroni-superuser-pw";
pub const REPLICATION_PASSWORD: &str = "patroni-replication-pw";
/// The REST API's password (the user is the recipe's, `patroni`).
pub const RESTAPI_PASSWORD: &str = "patroni-restapi-pw";

/// Standard base64 with padding (for an HTTP basic-authentication header).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A command run as the cluster's OS user, directly (`setpriv` execs it: its pid is the
/// command's, so killing it kills the command), with Patroni's environment.
fn as_postgres(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        CLUSTER_OS_USER,
        "--regid",
        CLUSTER_OS_USER,
        "--init-groups",
        "--",
        program,
    ]);
    c.env("HOME", "/var/lib/postgresql");
    c
}

pub struct Node {
    pub name: String,
    /// This node's `/etc/patroni` of the recipe: its configuration, TLS files and rules file.
    pub etc: PathBuf,
    pub pg_port: u16,
    pub rest_port: u16,
    pub data: PathBuf,
    log: PathBuf,
    patroni: Option<Daemon>,
}

pub struct PatroniCluster {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub pki: Pki,
    pub bin: PathBuf,
    etcd_port: u16,
    _etcd: Daemon,
    pub nodes: Vec<Node>,
}

/// The HTTP status of `GET path` on the Patroni REST API at `port` (0: no answer).
pub fn rest_status(port: u16, path: &str) -> u16 {
    rest_request(port, "GET", path, None)
}

/// The HTTP status of `method path` on the Patroni REST API at `port`, with basic
/// authentication when `credentials` (`user:password`) are given (0: no answer).
pub fn rest_request(port: u16, method: &str, path: &str, credentials: Option<&str>) -> u16 {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    ) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let authorization = credentials
        .map(|c| format!("Authorization: Basic {}\r\n", base64(c.as_bytes())))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{authorization}Content-Length: 0\r\n\r\n"
    );
    if s.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Polls `ready` every 200 ms for up to `secs`; panics with `why()` if it never holds.
pub fn wait_for(secs: u64, mut ready: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl PatroniCluster {
    /// Starts etcd and `n` Patroni nodes with `rules` as the rules file of every node, and
    /// waits until one node leads and the others replicate.
    pub fn start(n: usize, rules: &str) -> PatroniCluster {
        let dir = tempfile::Builder::new()
            .prefix("pg2f-patroni-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pki = Pki::new(&root.join("certs"));
        let server = pki.server();
        let bin = bindir();
        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd_data = root.join("etcd");
        let etcd_log = std::fs::File::create(root.join("etcd.log")).unwrap();
        let etcd = Command::new("etcd")
            .args(["--name", "pg2f", "--data-dir"])
            .arg(&etcd_data)
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=pg2f=http://127.0.0.1:{peer_port}"
            ))
            .stdout(Stdio::from(etcd_log.try_clone().unwrap()))
            .stderr(Stdio::from(etcd_log))
            .spawn()
            .expect("start etcd (Debian's etcd-server)");
        let etcd = Daemon::new(etcd);
        wait_for(
            30,
            || rest_status(etcd_port, "/health") == 200,
            || {
                format!(
                    "etcd did not come up:\n{}",
                    std::fs::read_to_string(root.join("etcd.log")).unwrap_or_default()
                )
            },
        );

        let nodes = (1..=n)
            .map(|i| {
                let node_dir = root.join(format!("node{i}"));
                // each node has its own /etc/patroni, as on separate machines
                let etc = node_dir.join("etc");
                std::fs::create_dir_all(etc.join("tls")).unwrap();
                std::fs::create_dir_all(etc.join("run")).unwrap();
                std::fs::copy(&server.cert, etc.join("tls/server.crt")).unwrap();
                std::fs::copy(&server.key, etc.join("tls/server.key")).unwrap();
                std::fs::copy(&pki.ca_cert, etc.join("tls/root.crt")).unwrap();
                std::fs::set_permissions(
                    etc.join("tls/server.key"),
                    std::fs::Permissions::from_mode(0o600),
                )
                .unwrap();
                std::fs::write(etc.join("pg_twofactor_hba.conf"), rules).unwrap();
                // the recipe as documented, with its directories moved into this test's
                let config = RECIPE
                    .replace("/etc/patroni/", &format!("{}/", etc.display()))
                    .replace("/usr/lib/postgresql/15/bin", &bin.display().to_string());
                std::fs::write(etc.join("patroni.yml"), config).unwrap();
                Node {
                    name: format!("node{i}"),
                    etc,
                    pg_port: free_port(),
                    rest_port: free_port(),
                    data: node_dir.join("data"),
                    log: node_dir.join("patroni.log"),
                    patroni: None,
                }
            })
            .collect();
        chown_to_cluster_user(&root);
        let mut c = PatroniCluster {
            _dir: dir,
            root,
            pki,
            bin,
            etcd_port,
            _etcd: etcd,
            nodes,
        };
        // the first node bootstraps, then the others join it
        c.start_node(0);
        c.wait_until_leader(0, 90);
        for i in 1..n {
            c.start_node(i);
        }
        for i in 1..n {
            c.wait_until_replica(i, 120);
        }
        c
    }

    fn node_env(&self, cmd: &mut Command, i: usize) {
        let n = &self.nodes[i];
        cmd.env("PATRONI_NAME", &n.name)
            .env(
                "PATRONI_RESTAPI_LISTEN",
                format!("127.0.0.1:{}", n.rest_port),
            )
            .env(
                "PATRONI_RESTAPI_CONNECT_ADDRESS",
                format!("127.0.0.1:{}", n.rest_port),
            )
            .env(
                "PATRONI_POSTGRESQL_LISTEN",
                format!("127.0.0.1:{}", n.pg_port),
            )
            .env(
                "PATRONI_POSTGRESQL_CONNECT_ADDRESS",
                format!("127.0.0.1:{}", n.pg_port),
            )
            .env("PATRONI_POSTGRESQL_DATA_DIR", &n.data)
            .env(
                "PATRONI_ETCD3_HOSTS",
                format!("127.0.0.1:{}", self.etcd_port),
            )
            .env("PATRONI_SUPERUSER_PASSWORD", SUPERUSER_PASSWORD)
            .env("PATRONI_REPLICATION_PASSWORD", REPLICATION_PASSWORD)
            .env("PATRONI_RESTAPI_PASSWORD", RESTAPI_PASSWORD);
    }

    /// Starts node `i`'s Patroni.
    pub fn start_node(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.nodes[i].log)
            .unwrap();
        let mut cmd = as_postgres("patroni");
        cmd.arg(self.nodes[i].etc.join("patroni.yml"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        self.node_env(&mut cmd, i);
        let child = cmd.spawn().expect("start patroni");
        self.nodes[i].patroni = Some(Daemon::new(child));
    }

    /// The node's Patroni log.
    pub fn patroni_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    pub fn is_leader(&self, i: usize) -> bool {
        rest_status(self.nodes[i].rest_port, "/primary") == 200
    }

    pub fn is_replica(&self, i: usize) -> bool {
        rest_status(self.nodes[i].rest_port, "/replica") == 200
    }

    pub fn wait_until_leader(&self, i: usize, secs: u64) {
        wait_for(
            secs,
            || self.is_leader(i),
            || {
                format!(
                    "{} did not become the leader:\n{}",
                    self.nodes[i].name,
                    self.patroni_log(i)
                )
            },
        );
    }

    pub fn wait_until_replica(&self, i: usize, secs: u64) {
        wait_for(
            secs,
            || self.is_replica(i),
            || {
                format!(
                    "{} did not become a replica:\n{}",
                    self.nodes[i].name,
                    self.patroni_log(i)
                )
            },
        );
    }

    /// `patronictl -c CONFIG ARGS...` (with node 0's environment for the DCS address).
    pub fn patronictl(&self, args: &[&str]) -> Output {
        let mut cmd = as_postgres("patronictl");
        cmd.arg("-c")
            .arg(self.nodes[0].etc.join("patroni.yml"))
            .args(args);
        self.node_env(&mut cmd, 0);
        cmd.output().expect("run patronictl")
    }

    /// A harness handle on node `i`'s server (the Rust client and psql talk to it; Patroni
    /// runs it).
    pub fn server(&self, i: usize) -> Cluster {
        Cluster::run_elsewhere(
            self.nodes[i].etc.join("run"),
            self.nodes[i].data.clone(),
            self.nodes[i].pg_port,
            self.pki.clone(),
            self.bin.clone(),
        )
    }

    /// SQL as the superuser on node `i`, over its Unix socket as the postgres OS user (the
    /// recipe's `local all all peer`).
    pub fn psql(&self, i: usize, sql: &str) -> Output {
        let mut cmd = as_postgres(&self.bin.join("psql").display().to_string());
        cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.nodes[i].etc.join("run"))
            .args([
                "-p",
                &self.nodes[i].pg_port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ]);
        cmd.output().unwrap()
    }

    /// [`PatroniCluster::psql`], panicking on failure; the output trimmed.
    pub fn sql(&self, i: usize, sql: &str) -> String {
        let out = self.psql(i, sql);
        assert!(
            out.status.success(),
            "{} on {}: {}",
            sql,
            self.nodes[i].name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The postmaster's pid of node `i`.
    pub fn postmaster_pid(&self, i: usize) -> Option<i32> {
        std::fs::read_to_string(self.nodes[i].data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Node `i`'s machine dies: its Patroni and its postmaster are killed (SIGKILL).
    pub fn kill_node(&mut self, i: usize) {
        let pm = self.postmaster_pid(i);
        if let Some(mut p) = self.nodes[i].patroni.take() {
            p.stop();
        }
        if let Some(pid) = pm {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Writes node `i`'s copy of the rules file (every node has its own, as deployed).
    pub fn write_rules(&self, i: usize, text: &str) {
        std::fs::write(self.nodes[i].etc.join("pg_twofactor_hba.conf"), text).unwrap();
    }

    pub fn data_of(&self, i: usize) -> &Path {
        &self.nodes[i].data
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        // Patroni stops PostgreSQL on SIGTERM; then whatever is left is stopped at once
        for n in &mut self.nodes {
            if let Some(d) = &n.patroni {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(d.pid() as i32, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &mut self.nodes {
            if let Some(mut d) = n.patroni.take() {
                while !d.exited() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                d.stop();
            }
            if n.data.join("postmaster.pid").exists() {
                let _ = Command::new("runuser")
                    .args(["-u", CLUSTER_OS_USER, "--"])
                    .arg(self.bin.join("pg_ctl"))
                    .args(["-w", "-m", "immediate", "-D"])
                    .arg(&n.data)
                    .arg("stop")
                    .output();
            }
        }
        if std::env::var_os("PG2F_PRINT_SERVER_LOG").is_some() {
            for i in 0..self.nodes.len() {
                eprintln!(
                    "==== patroni log of {} ====\n{}",
                    self.nodes[i].name,
                    self.patroni_log(i)
                );
            }
        }
    }
}
