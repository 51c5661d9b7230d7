//! A real PostgreSQL cluster for one test: owned by an unprivileged OS user when the tests run
//! as root, TLS on with generated certificates, pg_twofactor preloaded.

use crate::certs::{CertFiles, Pki};
use crate::ports::free_port;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The OS user that owns clusters when the tests run as root.
pub const CLUSTER_OS_USER: &str = "postgres";

/// Lines the extension logs when it (re)reads the rules; used to wait for a reload.
const LOADED_MARK: &str = "pg_twofactor: loaded ";
const NOT_RELOADED_MARK: &str = "was not reloaded; the previous rules stay in force";

/// Whether this process runs as root (what a private name service or network namespace needs).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a scenario that needs root (a private name service, a memory limit, a file system)
/// can run: true as root. Otherwise it is skipped with `why` on stderr, except under CI
/// (`CI=true`, set by `.ci/run`), where a scenario that cannot run its full form fails.
pub fn can_run_as_root(why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{why}, and under CI every scenario must run: run the tests as root"
    );
    eprintln!("skipped: {why}");
    false
}

/// `.ci/majors`: the one place naming the PostgreSQL majors (Debian's own, which is also the
/// default, and where the others are installed). A data file: a name and its value(s) per line,
/// which `.ci/majors.sh` reads for the scripts and this for the harness.
const MAJORS_FILE: &str = include_str!("../../.ci/majors");

/// The value(s) given for `name` in `.ci/majors` (the rest of its line).
fn majors_setting(name: &str) -> String {
    MAJORS_FILE
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| {
            let (n, value) = l.trim().split_once(char::is_whitespace)?;
            (n == name).then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!(".ci/majors does not give {name}"))
}

/// Debian's own PostgreSQL major, the default of `PG_MAJOR` (`.ci/majors`).
pub fn debian_major() -> String {
    majors_setting("debian")
}

/// The `pg_config` of PostgreSQL major `major` where `.ci/setup` puts it (`.ci/majors`):
/// Debian's under `/usr/lib/postgresql/NN`, the others in `$PG_PREFIX_BASE/NN` (default
/// `/opt/pg_twofactor/pg/NN`).
pub fn pg_config_of(major: &str) -> String {
    if major == debian_major() {
        format!("/usr/lib/postgresql/{major}/bin/pg_config")
    } else {
        let base = std::env::var("PG_PREFIX_BASE").unwrap_or_else(|_| majors_setting("prefix"));
        format!("{base}/{major}/bin/pg_config")
    }
}

/// The `pg_config` the harness uses: `$PG_CONFIG`, else that of major `$PG_MAJOR` (default
/// Debian's), else the `pg_config` on the PATH.
pub fn pg_config() -> String {
    std::env::var("PG_CONFIG").unwrap_or_else(|_| {
        let major = std::env::var("PG_MAJOR").unwrap_or_else(|_| debian_major());
        let path = pg_config_of(&major);
        if Path::new(&path).exists() {
            path
        } else {
            "pg_config".into()
        }
    })
}

/// The directory with PostgreSQL's programs (`--bindir` of [`pg_config`]).
pub fn bindir() -> PathBuf {
    let pg_config = pg_config();
    let out = Command::new(&pg_config)
        .arg("--bindir")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {pg_config}: {e}"));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `pg_config --sharedir` of the PostgreSQL whose programs are in `bin`.
pub fn sharedir(bin: &Path) -> PathBuf {
    let out = Command::new(bin.join("pg_config"))
        .arg("--sharedir")
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A temporary directory for a cluster (removed when the handle is dropped), readable by the
/// cluster's OS user.
fn cluster_root(prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, root)
}

/// The PostgreSQL major of the programs in `bin`.
pub fn major_of_bindir(bin: &Path) -> u32 {
    let out = Command::new(bin.join("pg_config"))
        .arg("--version")
        .output()
        .expect("pg_config --version");
    let v = String::from_utf8_lossy(&out.stdout);
    v.split_whitespace()
        .nth(1)
        .and_then(|n| n.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the major from {v:?}"))
}

/// Runs a server program as the cluster's OS user.
fn as_cluster_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", CLUSTER_OS_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub fn chown_to_cluster_user(path: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .arg("-R")
            .arg(CLUSTER_OS_USER)
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "chown {}", path.display());
    }
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sets the soft `RLIMIT_AS` of process `pid` (`None`: unlimited), with util-linux's `prlimit`
/// run as the cluster's OS user: the same user may change its own processes' soft limits (root
/// would need CAP_SYS_RESOURCE for another user's). Backends forked afterwards inherit it.
pub fn set_address_space_limit(pid: i32, soft: Option<u64>) {
    let soft = soft.map_or("unlimited".to_string(), |b| b.to_string());
    let out = as_cluster_user(Path::new("prlimit"))
        .arg(format!("--pid={pid}"))
        .arg(format!("--as={soft}:"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The address space (`VmSize`) of process `pid`, in bytes.
pub fn address_space_of(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

/// `Some(whether it is "all")` when `line` sets `pg_twofactor.log_decisions`.
fn log_decisions_all(line: &str) -> Option<bool> {
    let value = line
        .trim()
        .strip_prefix("pg_twofactor.log_decisions")?
        .trim_start()
        .strip_prefix('=')?;
    Some(value.trim().trim_matches('\'') == "all")
}

/// Sets up a cluster: `pg_hba.conf` lines, the rules file, extra settings.
pub struct ClusterBuilder {
    extra_files: Vec<(String, Vec<u8>)>,
    hba: Vec<String>,
    rules: Vec<u8>,
    settings: Vec<String>,
    preload: bool,
    shadow: bool,
    client_reason: bool,
    encoding: String,
    listen: String,
    hosts: Option<Vec<u8>>,
    resolver: String,
    host_conf: &'static str,
    at: Option<PathBuf>,
    port: Option<u16>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            extra_files: Vec::new(),
            hba: Vec::new(),
            rules: Vec::new(),
            settings: Vec::new(),
            preload: true,
            shadow: true,
            client_reason: true,
            encoding: "UTF8".into(),
            listen: "127.0.0.1,::1".into(),
            hosts: None,
            resolver: "options timeout:1 attempts:1".into(),
            host_conf: "multi on\n",
            at: None,
            port: None,
        }
    }
}

impl ClusterBuilder {
    /// A `pg_hba.conf` line (after the built-in `local all all trust` for the harness).
    pub fn hba(mut self, line: &str) -> Self {
        self.hba.push(line.to_string());
        self
    }

    /// The contents of `pg_twofactor_hba.conf`.
    pub fn rules(mut self, text: &str) -> Self {
        self.rules = text.as_bytes().to_vec();
        self
    }

    /// The contents of `pg_twofactor_hba.conf` as bytes (names in a non-UTF-8 encoding).
    pub fn rules_bytes(mut self, text: &[u8]) -> Self {
        self.rules = text.to_vec();
        self
    }

    /// Another file in the data directory (for example a rules file at another path).
    pub fn create_rules_at(mut self, relative: &str, text: &str) -> Self {
        self.extra_files
            .push((relative.to_string(), text.as_bytes().to_vec()));
        self
    }

    /// A `postgresql.conf` line.
    pub fn setting(mut self, line: &str) -> Self {
        self.settings.push(line.to_string());
        self
    }

    /// The server encoding (initdb -E), UTF8 unless set.
    pub fn encoding(mut self, enc: &str) -> Self {
        self.encoding = enc.to_string();
        self
    }

    /// `listen_addresses` (default `127.0.0.1,::1`).
    pub fn listen(mut self, addrs: &str) -> Self {
        self.listen = addrs.to_string();
        self
    }

    /// Runs the server with a name service of the test's own: `/etc/hosts` replaced by `hosts`
    /// and DNS pointed at a loopback address where nothing answers (every DNS question fails
    /// at once with "temporary failure"), in a private mount namespace. Needs root.
    pub fn name_service(mut self, hosts: &[u8]) -> Self {
        self.hosts = Some(hosts.to_vec());
        self
    }

    /// With [`ClusterBuilder::name_service`]: a name's forward lookup gives only the first line
    /// of the hosts file that names it (`host.conf`: `multi off`; Debian's is `multi on`), while
    /// an address's reverse lookup still finds its own line. Two lines naming one host then make
    /// a hosts file that lies one way, like a reverse zone whose owner names a host that does
    /// not resolve back to it.
    pub fn first_hosts_line_only(mut self) -> Self {
        self.host_conf = "multi off\n";
        self
    }

    /// `resolv.conf` options of [`ClusterBuilder::name_service`] (default
    /// `options timeout:1 attempts:1`).
    pub fn resolver_options(mut self, line: &str) -> Self {
        self.resolver = line.to_string();
        self
    }

    /// Puts the cluster in `dir` (data directory `dir/data`, certificates `dir/certs`, log
    /// `dir/server.log`, Unix socket in `dir`) instead of a temporary directory, and keeps the
    /// directory when the handle is dropped (for the demo). A cluster left running there by an
    /// earlier run is stopped and the directory emptied first.
    pub fn at(mut self, dir: &Path) -> Self {
        self.at = Some(dir.to_path_buf());
        self
    }

    /// The TCP port (default: a free one from [`crate::ports::free_port`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Leave `pg_twofactor.client_reason` at its default (off). Without this the harness turns
    /// it on, so that the scenarios' refusal checks can name the reason the client is given;
    /// `tests/refusals.rs` and `tests/deployment.rs` check the default.
    pub fn default_client_reason(mut self) -> Self {
        self.client_reason = false;
        self
    }

    /// Leave this cluster out of dry-run shadowing ([`crate::shadow`]): for scenarios that
    /// check the decision log's own default or count every decision line.
    pub fn without_dry_run_shadow(mut self) -> Self {
        self.shadow = false;
        self
    }

    /// Do not put pg_twofactor in shared_preload_libraries.
    pub fn without_preload(mut self) -> Self {
        self.preload = false;
        self
    }

    /// Creates the cluster and starts it; panics when the server does not start.
    pub fn start(self) -> Cluster {
        let mut c = self.create();
        let out = c.try_start();
        assert!(
            out.status.success(),
            "server did not start; log:\n{}",
            c.log()
        );
        c
    }

    /// Creates the cluster without starting it.
    pub fn create(self) -> Cluster {
        let bin = bindir();
        let (dir, root) = match &self.at {
            None => {
                let (dir, root) = cluster_root("pg2f-e2e-");
                (Some(dir), root)
            }
            Some(at) => {
                if let Ok(pid_file) = std::fs::read_to_string(at.join("data/postmaster.pid")) {
                    let stopped = as_cluster_user(&bin.join("pg_ctl"))
                        .args(["-w", "-m", "fast", "-D"])
                        .arg(at.join("data"))
                        .arg("stop")
                        .output()
                        .is_ok_and(|o| o.status.success());
                    // a stale pid file (the server is gone) is fine; a server that is still
                    // there keeps its directory
                    let pid: i32 = pid_file
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    // SAFETY: kill with signal 0 only checks whether the process exists.
                    let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
                    assert!(
                        stopped || !alive,
                        "a server (pid {pid}) is running in {} and could not be stopped",
                        at.display()
                    );
                }
                if at.exists() {
                    std::fs::remove_dir_all(at).unwrap();
                }
                std::fs::create_dir_all(at).unwrap();
                std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).unwrap();
                (None, at.clone())
            }
        };
        let pki = Pki::new(&root.join("certs"));
        let server = pki.server();
        let data = root.join("data");
        chown_to_cluster_user(&root);
        check(
            "initdb",
            as_cluster_user(&bin.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    &self.encoding,
                    "--locale=C",
                    "-D",
                ])
                .arg(&data)
                .output()
                .unwrap(),
        );
        // the server reads its certificate and key from its own data directory
        std::fs::copy(&server.cert, data.join("server.crt")).unwrap();
        std::fs::copy(&server.key, data.join("server.key")).unwrap();
        std::fs::copy(&pki.ca_cert, data.join("root.crt")).unwrap();
        let port = self.port.unwrap_or_else(free_port);
        let mut conf = vec![
            format!("port = {port}"),
            format!("listen_addresses = '{}'", self.listen),
            format!("unix_socket_directories = '{}'", root.display()),
            "ssl = on".into(),
            "ssl_cert_file = 'server.crt'".into(),
            "ssl_key_file = 'server.key'".into(),
            "ssl_ca_file = 'root.crt'".into(),
            "lc_messages = 'C'".into(),
            "fsync = off".into(),
            "password_encryption = 'scram-sha-256'".into(),
            "log_line_prefix = '%m [%p] '".into(),
        ];
        if self.preload {
            conf.push("shared_preload_libraries = 'pg_twofactor'".into());
        }
        let shadow =
            dry_run_shadow_enabled() && self.shadow && self.preload && self.encoding == "UTF8";
        if shadow {
            // the shadow compares with the decision log (a scenario's own setting comes later
            // and wins)
            conf.push("pg_twofactor.log_decisions = all".into());
        }
        if self.preload && self.client_reason {
            // refusal checks name the reason (the default, off, is what refusals.rs checks)
            conf.push("pg_twofactor.client_reason = on".into());
        }
        conf.extend(self.settings);
        let logs_all = conf
            .iter()
            .rev()
            .find_map(|l| log_decisions_all(l))
            .unwrap_or(false);
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str("\n# pg_twofactor e2e\n");
        pg_conf.push_str(&conf.join("\n"));
        pg_conf.push('\n');
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        let mut hba = String::from("local all all trust\n");
        for l in &self.hba {
            hba.push_str(l);
            hba.push('\n');
        }
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        std::fs::write(data.join("pg_twofactor_hba.conf"), &self.rules).unwrap();
        for (rel, text) in &self.extra_files {
            let p = data.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let name_service = self.hosts.map(|hosts| {
            let dir = root.join("etc");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("hosts"), hosts).unwrap();
            std::fs::write(
                dir.join("resolv.conf"),
                format!("nameserver 127.83.0.53\n{}\n", self.resolver),
            )
            .unwrap();
            std::fs::write(dir.join("nsswitch.conf"), "hosts: files dns\n").unwrap();
            std::fs::write(dir.join("host.conf"), self.host_conf).unwrap();
            dir
        });
        chown_to_cluster_user(&root);
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        Cluster {
            _dir: dir,
            root: root.clone(),
            data,
            port,
            pki,
            bin,
            log_file: root.join("server.log"),
            running: false,
            name_service,
            encoding: self.encoding,
            shadow,
            logs_all: std::sync::atomic::AtomicBool::new(logs_all),
        }
    }
}

/// A running (or created) cluster. Stopped when dropped.
pub struct Cluster {
    /// The temporary directory holding the cluster (`None` for [`ClusterBuilder::at`]).
    _dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub pki: Pki,
    pub bin: PathBuf,
    log_file: PathBuf,
    running: bool,
    /// The directory with the server's own hosts, resolv.conf and nsswitch.conf.
    name_service: Option<PathBuf>,
    encoding: String,
    /// Whether logins to this cluster are shadowed by the dry run ([`crate::shadow`]).
    pub shadow: bool,
    /// Whether the server logs every decision (`pg_twofactor.log_decisions = all` last in
    /// `postgresql.conf`, as the builder and [`Cluster::append_settings`] wrote it).
    logs_all: std::sync::atomic::AtomicBool,
}

impl Cluster {
    /// Whether the server has a name service of its own ([`ClusterBuilder::name_service`]):
    /// then names resolve differently for the server and for this process.
    pub fn has_own_name_service(&self) -> bool {
        self.name_service.is_some()
    }

    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// A streaming standby of this (running) cluster, made with `pg_basebackup -R` over the
    /// Unix socket (`pg_hba.conf` must allow `local replication`), with its own port, socket
    /// directory and log, and `rules` as its own rules file (the rules file is per node: it is
    /// not replicated). Started.
    pub fn standby(&self, rules: &str) -> Cluster {
        let (dir, root) = cluster_root("pg2f-e2e-standby-");
        chown_to_cluster_user(&root);
        let data = root.join("data");
        check(
            "pg_basebackup",
            as_cluster_user(&self.bin.join("pg_basebackup"))
                .arg("-h")
                .arg(&self.root)
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-X",
                    "stream",
                    "-R",
                    "-D",
                ])
                .arg(&data)
                .output()
                .unwrap(),
        );
        let port = free_port();
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str(&format!(
            "\n# standby\nport = {port}\nunix_socket_directories = '{}'\n",
            root.display()
        ));
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(data.join("pg_twofactor_hba.conf"), rules).unwrap();
        chown_to_cluster_user(&root);
        let mut standby = Cluster {
            _dir: Some(dir),
            root: root.clone(),
            data,
            port,
            pki: self.pki.clone(),
            bin: self.bin.clone(),
            log_file: root.join("server.log"),
            running: false,
            name_service: None,
            encoding: self.encoding.clone(),
            // read-only: the extension cannot be created there
            shadow: false,
            logs_all: std::sync::atomic::AtomicBool::new(false),
        };
        let out = standby.try_start();
        assert!(out.status.success(), "standby start: {}", standby.log());
        standby
    }

    /// Starts the server; returns pg_ctl's result (the server log tells why it failed).
    pub fn try_start(&mut self) -> Output {
        let mut cmd = match &self.name_service {
            None => as_cluster_user(&self.bin.join("pg_ctl")),
            Some(etc) => {
                assert!(is_root(), "a private name service needs root");
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c"]).arg(format!(
                    "for f in hosts resolv.conf nsswitch.conf host.conf; do mount --bind {}/$f /etc/$f || exit 1; done; exec runuser -u {} -- \"$0\" \"$@\"",
                    etc.display(),
                    CLUSTER_OS_USER
                ));
                c.arg(self.bin.join("pg_ctl"));
                c
            }
        };
        let out = cmd
            // libldap in the server trusts this cluster's CA (for ldaptls=1 and ldaps)
            .env("LDAPTLS_CACERT", &self.pki.ca_cert)
            .args(["-w", "-t", "60", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log_file)
            .arg("start")
            .output()
            .unwrap();
        self.running = out.status.success();
        out
    }

    /// Stops the server at once (`-m immediate`).
    pub fn stop(&mut self) {
        self.stop_mode("immediate");
    }

    fn stop_mode(&mut self, mode: &str) {
        if self.running {
            let _ = as_cluster_user(&self.bin.join("pg_ctl"))
                .args(["-w", "-m", mode, "-D"])
                .arg(&self.data)
                .arg("stop")
                .output();
            self.running = false;
        }
    }

    /// Stops the server cleanly (`-m fast`) and starts it again; panics when it does not start.
    pub fn restart(&mut self) {
        self.stop_mode("fast");
        let out = self.try_start();
        assert!(
            out.status.success(),
            "server did not restart; log:\n{}",
            self.log()
        );
    }

    /// Leaves the server running after the handle is gone (for the demo; with
    /// [`ClusterBuilder::at`], so the directory stays too). Returns its `pg_ctl stop` command.
    pub fn keep_running(mut self) -> String {
        self.running = false;
        let as_user = if is_root() {
            format!("runuser -u {CLUSTER_OS_USER} -- ")
        } else {
            String::new()
        };
        format!(
            "{as_user}{} -D {} stop",
            self.bin.join("pg_ctl").display(),
            self.data.display()
        )
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_file
    }

    /// The whole server log.
    pub fn log(&self) -> String {
        // the server writes names in its own encoding: read the log lossily
        String::from_utf8_lossy(&std::fs::read(&self.log_file).unwrap_or_default()).into_owned()
    }

    /// A position in the log (its length in bytes), for [`Cluster::log_since`].
    pub fn log_mark(&self) -> usize {
        std::fs::metadata(&self.log_file).map_or(0, |m| m.len() as usize)
    }

    /// What the server logged after `mark`, read lossily.
    pub fn log_since(&self, mark: usize) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut buf = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_file) {
            if f.seek(SeekFrom::Start(mark as u64)).is_ok() {
                let _ = f.read_to_end(&mut buf);
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// What the server logged after `mark`, once `done` holds for it or 30 s have passed (the
    /// caller asserts on the text it gets). For lines a server process writes after the client
    /// has already seen the outcome: a failed TLS handshake is logged after the alert is sent.
    pub fn log_since_when(&self, mark: usize, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let log = self.log_since(mark);
            if done(&log) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Runs SQL as the superuser over the Unix socket; returns unaligned, tuples-only output.
    pub fn psql_admin(&self, sql: &str) -> String {
        let out = check(
            &format!("psql {sql:?}"),
            self.psql_admin_raw("postgres", sql),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Runs SQL over the Unix socket as `user`, returning psql's output whatever happened.
    pub fn psql_admin_raw(&self, user: &str, sql: &str) -> Output {
        self.psql_as(user, "postgres", sql.as_ref())
    }

    /// Runs SQL as the superuser in database `db`; returns psql's output whether it failed or
    /// not (stdout and stderr, for the assertion's message).
    pub fn psql_admin_raw_in(&self, db: &str, sql: &str) -> String {
        let out = self.psql_as("postgres", db, sql.as_ref());
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Runs SQL as the superuser in database `db`; panics on failure.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self.psql_as("postgres", db, sql.as_ref());
        String::from_utf8(check(&format!("psql {sql:?} in {db}"), out).stdout)
            .unwrap()
            .trim()
            .to_string()
    }

    /// Runs SQL given as bytes in the server encoding (names that are not UTF-8) as the
    /// superuser; panics on failure.
    pub fn psql_admin_bytes(&self, sql: &[u8]) -> String {
        use std::os::unix::ffi::OsStrExt;
        let out = check(
            &format!("psql {}", String::from_utf8_lossy(sql)),
            self.psql_as("postgres", "postgres", std::ffi::OsStr::from_bytes(sql)),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// psql over the Unix socket as `user`, in the server's encoding.
    fn psql_as(&self, user: &str, db: &str, sql: &std::ffi::OsStr) -> Output {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.root)
            .args(["-p", &self.port.to_string(), "-U", user, "-d", db, "-c"])
            .arg(sql)
            .env("PGCLIENTENCODING", &self.encoding)
            // a hung server is a failure within minutes, never a stalled CI run
            .env("PGCONNECT_TIMEOUT", "30")
            .env("PGOPTIONS", "-c statement_timeout=300s")
            .output()
            .unwrap()
    }

    /// How pg_twofactor's messages name line `n` of this cluster's `pg_hba.conf`: `line N` on
    /// PostgreSQL 15, `FILE:N` on 16+ (where pg_hba.conf can include other files).
    pub fn hba_position(&self, n: usize) -> String {
        if major_of_bindir(&self.bin) == 15 {
            format!("line {n}")
        } else {
            format!("{}:{n}", self.data.join("pg_hba.conf").display())
        }
    }

    /// Creates a login role with a password.
    pub fn create_user(&self, name: &str, password: &str) {
        self.psql_admin(&format!(
            "CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"
        ));
    }

    /// Replaces the rules file (takes effect on the next reload).
    pub fn write_rules(&self, text: &str) {
        std::fs::write(self.data.join("pg_twofactor_hba.conf"), text).unwrap();
    }

    /// A handle on a server that something else runs (a Patroni node): the harness's clients
    /// and psql talk to it over `socket_dir` and `port`; dropping it stops nothing. Its log is
    /// not the harness's to read (empty), and it is not shadowed by the dry run.
    pub fn run_elsewhere(
        socket_dir: PathBuf,
        data: PathBuf,
        port: u16,
        pki: Pki,
        bin: PathBuf,
    ) -> Cluster {
        Cluster {
            _dir: None,
            log_file: data.join("pg2f-no-log"),
            root: socket_dir,
            data,
            port,
            pki,
            bin,
            running: false,
            name_service: None,
            encoding: "UTF8".into(),
            shadow: false,
            logs_all: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the server logs every decision ([`crate::shadow`] relies on it).
    pub fn logs_all_decisions(&self) -> bool {
        self.logs_all.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The postmaster's process id (from `postmaster.pid`).
    pub fn postmaster_pid(&self) -> i32 {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Appends settings to postgresql.conf (take effect on reload or restart).
    pub fn append_settings(&self, lines: &[&str]) {
        if let Some(all) = lines.iter().rev().find_map(|l| log_decisions_all(l)) {
            self.logs_all
                .store(all, std::sync::atomic::Ordering::Relaxed);
        }
        let path = self.data.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&path).unwrap();
        for l in lines {
            conf.push_str(l);
            conf.push('\n');
        }
        std::fs::write(path, conf).unwrap();
    }

    fn reload_marks(&self) -> usize {
        let log = self.log();
        log.matches(LOADED_MARK).count() + log.matches(NOT_RELOADED_MARK).count()
    }

    /// Reloads the configuration and waits until the postmaster has re-read the rules file
    /// (it logs either that it loaded the rules or that it kept the previous ones).
    pub fn reload(&self) {
        let before = self.reload_marks();
        assert_eq!(self.psql_admin("SELECT pg_reload_conf()"), "t");
        crate::daemon::wait_until(
            || self.reload_marks() > before,
            || format!("reload not seen in the log:\n{}", self.log()),
        );
    }

    /// A client certificate issued by this cluster's CA.
    pub fn client_cert(
        &self,
        stem: &str,
        cns: &[&str],
        san: Option<&[crate::certs::San]>,
    ) -> CertFiles {
        self.pki.client(stem, cns, san)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("PG2F_PRINT_SERVER_LOG").is_some() {
            eprintln!(
                "==== server log of {} ====\n{}",
                self.data.display(),
                self.log()
            );
        }
    }
}

/// Milliseconds since midnight of a server log line's `%m` timestamp
/// (`2026-11-26 15:04:05.123 UTC [pid] ...`, the `log_line_prefix` of these clusters).
pub fn log_line_millis(line: &str) -> Option<i64> {
    let time = line.split(' ').nth(1)?;
    let (hms, ms) = time.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<i64>().ok()?)
}

/// The process id field (`[pid]`) of a server log line.
pub fn log_line_pid(line: &str) -> Option<&str> {
    line.split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(pid, _)| pid)
}

/// `PG2F_DRY_RUN_SHADOW=1`: every login a scenario makes through the harness's clients is also
/// put to the dry run ([`crate::shadow`]).
pub fn dry_run_shadow_enabled() -> bool {
    std::env::var("PG2F_DRY_RUN_SHADOW").is_ok_and(|v| v == "1")
}
