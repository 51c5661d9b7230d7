//! Clients: a Rust client (tokio-postgres over OpenSSL, with a client certificate and an
//! optional source address, to play other hosts) and `psql`.

use crate::certs::CertFiles;
use crate::cluster::{bindir, Cluster};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use std::net::{IpAddr, SocketAddr};
use std::process::Command;

/// One login attempt.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub cert: Option<CertFiles>,
    /// The address the client connects from (bound before connecting); `None`: the OS picks.
    pub source: Option<IpAddr>,
    /// The server address to connect to.
    pub server: IpAddr,
    /// Connect without TLS (psql only).
    pub no_tls: bool,
    /// psql only: `sslmode` instead of `verify-full` (or `disable` for [`Login::without_tls`]),
    /// and further `key=value` connection parameters.
    pub sslmode: Option<String>,
    pub conninfo: Vec<String>,
}

impl Login {
    /// What the dry-run shadow needs of this login.
    fn shadowed(&self) -> crate::shadow::Login<'_> {
        crate::shadow::Login {
            user: &self.user,
            dbname: &self.dbname,
            cert: self.cert.as_ref().map(|f| f.cert.as_path()),
        }
    }

    /// `user` logging in to database `postgres` on 127.0.0.1 with `password`, no certificate.
    pub fn new(user: &str, password: &str) -> Login {
        Login {
            user: user.into(),
            password: password.into(),
            dbname: "postgres".into(),
            cert: None,
            source: None,
            server: "127.0.0.1".parse().unwrap(),
            no_tls: false,
            sslmode: None,
            conninfo: Vec::new(),
        }
    }

    pub fn cert(mut self, c: &CertFiles) -> Self {
        self.cert = Some(c.clone());
        self
    }

    pub fn from(mut self, source: &str) -> Self {
        self.source = Some(source.parse().unwrap());
        self
    }

    pub fn to(mut self, server: &str) -> Self {
        self.server = server.parse().unwrap();
        self
    }

    /// Connect without TLS (`sslmode=disable`; psql only).
    pub fn without_tls(mut self) -> Self {
        self.no_tls = true;
        self
    }

    /// psql with this `sslmode` (libpq's default is `prefer`).
    pub fn sslmode(mut self, mode: &str) -> Self {
        self.sslmode = Some(mode.into());
        self
    }

    /// psql with a further connection parameter, e.g. `channel_binding=require`.
    pub fn param(mut self, key_value: &str) -> Self {
        self.conninfo.push(key_value.into());
        self
    }

    pub fn db(mut self, dbname: &str) -> Self {
        self.dbname = dbname.into();
        self
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Logged in; the session answered `SELECT current_user, inet_client_addr()`.
    Accepted {
        current_user: String,
        client_addr: String,
    },
    /// The server refused; SQLSTATE (when the client reports it) and message.
    Refused { sqlstate: String, message: String },
    /// The connection failed without a server error (for example the TLS handshake, when the
    /// server does not accept the client's certificate). Rust client only.
    Failed(String),
}

impl Outcome {
    /// Panics unless accepted as `user`.
    #[track_caller]
    pub fn assert_accepted_as(&self, user: &str) {
        match self {
            Outcome::Accepted { current_user, .. } if current_user == user => {}
            other => panic!("expected a session as {user:?}, got {other:?}"),
        }
    }

    /// Panics unless refused with SQLSTATE 28000 and exactly `message`.
    #[track_caller]
    pub fn assert_refused(&self, message: &str) {
        match self {
            Outcome::Refused {
                sqlstate,
                message: m,
            } if m == message && (sqlstate == "28000" || sqlstate.is_empty()) => {}
            other => panic!("expected refusal {message:?} (28000), got {other:?}"),
        }
    }

    /// Panics unless the connection failed without a server error and the client's error
    /// names one of `causes` (a dropped connection, a TLS alert): a server that is down
    /// ("Connection refused") or a refusal does not pass.
    #[track_caller]
    pub fn assert_failed_with(&self, causes: &[&str]) {
        match self {
            Outcome::Failed(m) if causes.iter().any(|c| m.contains(c)) => {}
            other => panic!("expected a failed connection naming one of {causes:?}, got {other:?}"),
        }
    }

    /// Panics unless refused with exactly `sqlstate` and `message` (PostgreSQL's own failures,
    /// such as `28P01` for a wrong password).
    #[track_caller]
    pub fn assert_refused_with(&self, sqlstate: &str, message: &str) {
        match self {
            Outcome::Refused {
                sqlstate: s,
                message: m,
            } if m == message && s == sqlstate => {}
            other => panic!("expected refusal {message:?} ({sqlstate}), got {other:?}"),
        }
    }
}

/// The message of a two-factor refusal for `user` and `reason`.
pub fn two_factor(user: &str, reason: &str) -> String {
    format!("two-factor authentication failed for user \"{user}\": {reason}")
}

/// A TCP connection to `server` from `source` (bound before connecting; `None`: the OS picks).
pub async fn tcp_from(
    source: Option<IpAddr>,
    server: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if server.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(src) = source {
        socket.bind(SocketAddr::new(src, 0))?;
    }
    socket.connect(server).await
}

/// Logs in with the Rust client.
pub fn rust_login(cluster: &Cluster, login: &Login) -> Outcome {
    match rust_query(
        cluster,
        login,
        "SELECT current_user::text || '|' || host(inet_client_addr())",
    ) {
        Ok(row) => {
            let (user, addr) = row.split_once('|').unwrap_or((&row, ""));
            Outcome::Accepted {
                current_user: user.into(),
                client_addr: addr.into(),
            }
        }
        Err(refused) => refused,
    }
}

/// Logs in with the Rust client and returns the one text value `sql` yields in the new
/// session, or the refusal.
pub fn rust_query(cluster: &Cluster, login: &Login, sql: &str) -> Result<String, Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mark = cluster.log_mark();
    let result = rt.block_on(rust_query_async(cluster, login, sql));
    crate::shadow::compare(cluster, &login.shadowed(), mark, true, result.is_ok());
    result
}

async fn rust_query_async(cluster: &Cluster, login: &Login, sql: &str) -> Result<String, Outcome> {
    assert!(
        !login.no_tls,
        "the Rust client always uses TLS; use psql_login for plain connections"
    );
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_ca_file(&cluster.pki.ca_cert).unwrap();
    builder.set_verify(SslVerifyMode::PEER);
    if let Some(c) = &login.cert {
        builder
            .set_certificate_file(&c.cert, SslFiletype::PEM)
            .unwrap();
        builder
            .set_private_key_file(&c.key, SslFiletype::PEM)
            .unwrap();
    }
    let connector = builder.build();
    let tls = postgres_openssl::TlsConnector::new(connector.configure().unwrap(), "localhost");

    let server = SocketAddr::new(login.server, cluster.port);
    let stream = tcp_from(login.source, server)
        .await
        .unwrap_or_else(|e| panic!("connect {server} from {:?}: {e}", login.source));

    let mut config = tokio_postgres::Config::new();
    config
        .user(&login.user)
        .password(&login.password)
        .dbname(&login.dbname)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    // a hung server or hook is a named failure within minutes, not a stalled CI run
    let limit = std::time::Duration::from_secs(LOGIN_LIMIT_SECS);
    tokio::time::timeout(limit, login_and_query(config, stream, tls, sql))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the login of {:?} to {server} did not finish within {LOGIN_LIMIT_SECS} s",
                login.user
            )
        })
}

/// How long a Rust-client login and its query may take before the test fails.
const LOGIN_LIMIT_SECS: u64 = 120;

async fn login_and_query(
    config: tokio_postgres::Config,
    stream: tokio::net::TcpStream,
    tls: postgres_openssl::TlsConnector,
    sql: &str,
) -> Result<String, Outcome> {
    match config.connect_raw(stream, tls).await {
        Ok((client, connection)) => {
            let conn = tokio::spawn(connection);
            let row = client
                .query_one(sql, &[])
                .await
                .expect("a query in the new session");
            drop(client);
            let _ = conn.await;
            Ok(row.get(0))
        }
        Err(e) => match e.as_db_error() {
            Some(db) => Err(Outcome::Refused {
                sqlstate: db.code().code().to_string(),
                message: db.message().to_string(),
            }),
            None => Err(Outcome::Failed(with_causes(&e))),
        },
    }
}

/// An error and every error under it ("error communicating with the server: ...: tlsv1 alert
/// unknown ca"), so that a check can name the cause.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// What `psql` printed.
#[derive(Debug, Clone)]
pub struct PsqlRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl PsqlRun {
    /// Every `FATAL:  ...` message the server sent, in order (libpq reports each attempt, e.g.
    /// the TLS attempt and the plain retry of `sslmode=prefer`).
    pub fn fatals(&self) -> Vec<String> {
        self.stderr
            .split("FATAL:  ")
            .skip(1)
            .map(|m| m.lines().next().unwrap_or("").trim().to_string())
            .collect()
    }
}

/// Runs `psql` for `login` (sslmode=verify-full unless the login says otherwise) from the
/// default source address, querying `current_user|client address`.
pub fn psql_run(cluster: &Cluster, login: &Login) -> PsqlRun {
    let sslmode = match (&login.sslmode, login.no_tls) {
        (Some(m), _) => m.as_str(),
        (None, true) => "disable",
        (None, false) => "verify-full",
    };
    let mut conninfo = format!(
        "host={} port={} user={} dbname={} sslmode={sslmode} sslrootcert={}",
        login.server,
        cluster.port,
        login.user,
        login.dbname,
        cluster.pki.ca_cert.display()
    );
    match &login.cert {
        Some(c) => conninfo.push_str(&format!(
            " sslcert={} sslkey={}",
            c.cert.display(),
            c.key.display()
        )),
        None => conninfo.push_str(" sslcert=/nonexistent sslkey=/nonexistent"),
    }
    for kv in &login.conninfo {
        conninfo.push(' ');
        conninfo.push_str(kv);
    }
    assert!(
        login.source.is_none(),
        "psql cannot choose its source address"
    );
    let out = Command::new(bindir().join("psql"))
        .args(["-X", "-A", "-t", "-d", &conninfo, "-c"])
        .arg("SELECT current_user || '|' || host(inet_client_addr())")
        .env("PGPASSWORD", &login.password)
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .unwrap();
    PsqlRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// Logs in with `psql` (sslmode=verify-full unless the login says otherwise).
pub fn psql_login(cluster: &Cluster, login: &Login) -> Outcome {
    let mark = cluster.log_mark();
    let run = psql_run(cluster, login);
    // one attempt only with sslmode verify-full (TLS) or disable (no TLS); libpq's other modes
    // may try twice
    if login.sslmode.is_none() {
        crate::shadow::compare(cluster, &login.shadowed(), mark, !login.no_tls, run.success);
    }
    if run.success {
        let (user, addr) = run.stdout.split_once('|').unwrap_or((&run.stdout, ""));
        return Outcome::Accepted {
            current_user: user.into(),
            client_addr: addr.into(),
        };
    }
    // psql: error: connection to server at "...", port N failed: FATAL:  MESSAGE
    match run.fatals().first() {
        Some(msg) => Outcome::Refused {
            sqlstate: String::new(),
            message: msg.clone(),
        },
        None => panic!(
            "psql failed without a FATAL from the server: {}",
            run.stderr
        ),
    }
}
