//! A minimal PostgreSQL protocol client for what neither psql nor tokio-postgres can do: user
//! and database names as raw bytes (a LATIN1 cluster's names), a chosen source address, the
//! `replication` startup option, and running inside a network namespace. It speaks TLS
//! (optionally with a client certificate) and the `trust`, `password` and `scram-sha-256`
//! (without channel binding) methods, and can report which authentication messages the server
//! sent on the way; it stops when authentication has been decided.

use crate::certs::CertFiles;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// One raw login attempt.
#[derive(Debug, Clone)]
pub struct RawLogin {
    pub user: Vec<u8>,
    pub database: Vec<u8>,
    pub password: Vec<u8>,
    /// `replication=true` (physical) or `replication=database` (logical).
    pub replication: Option<&'static str>,
    pub source: Option<IpAddr>,
    pub server: SocketAddr,
    pub cert: Option<CertFiles>,
    /// After authentication, run `SELECT current_user` and report the session.
    pub query: bool,
}

/// How the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOutcome {
    /// Authentication succeeded (the server sent AuthenticationOk).
    Authenticated,
    /// A working session: what `SELECT current_user` returned, as bytes.
    Session { current_user: Vec<u8> },
    /// An ErrorResponse: SQLSTATE and message.
    Error { sqlstate: String, message: String },
}

fn connect(login: &RawLogin) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let stream = rt
        .block_on(crate::client::tcp_from(login.source, login.server))?
        .into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn read_message(s: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

fn error_fields(body: &[u8]) -> RawOutcome {
    let (mut sqlstate, mut msg) = (String::new(), String::new());
    for field in body.split(|&b| b == 0) {
        match field.first() {
            Some(b'C') => sqlstate = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'M') => msg = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    RawOutcome::Error {
        sqlstate,
        message: msg,
    }
}

/// Logs in over TLS and returns once authentication is decided.
pub fn raw_login(login: &RawLogin, ca: &std::path::Path) -> std::io::Result<RawOutcome> {
    raw_login_at(login, ca).map(|(outcome, _)| outcome)
}

/// What a raw login saw besides its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawTrace {
    /// The authentication request codes the server sent, in order (3 cleartext password,
    /// 10 SASL, 11 SASL continue, 12 SASL final: the server's proof that the SCRAM exchange
    /// succeeded, i.e. that the password was right; 0 OK).
    pub auth_codes: Vec<u32>,
    /// Every field of the ErrorResponse, if one came: (field type, value), e.g. `(b'F',
    /// "auth.c")`, in the order the server sent them.
    pub error_fields: Vec<(u8, String)>,
}

/// [`raw_login`], also returning what the server sent on the way.
pub fn raw_login_trace(
    login: &RawLogin,
    ca: &std::path::Path,
) -> std::io::Result<(RawOutcome, RawTrace)> {
    let mut tcp = connect(login)?;
    let mut trace = RawTrace::default();
    let outcome = login_over(login, ca, &mut tcp, &mut trace)?;
    Ok((outcome, trace))
}

/// What a client that reads every protocol message learns from one login attempt: whether the
/// TLS handshake was refused, whether the server asked for a password, and whether SCRAM's
/// server-final message came (which tells a right password). An attacker's tool sees exactly
/// this; psql shows less.
#[derive(Debug, Clone)]
pub struct Probe {
    /// How the attempt ended: the server's answer, or the client's error (its causes, joined).
    pub result: Result<RawOutcome, String>,
    pub trace: RawTrace,
}

impl Probe {
    /// The server asked for a password (cleartext 3, MD5 5 or SASL 10).
    pub fn asked_password(&self) -> bool {
        self.trace
            .auth_codes
            .iter()
            .any(|c| matches!(c, 3 | 5 | 10))
    }

    /// SCRAM's server-final message arrived: the server proved it knows the password, which it
    /// does only when the client's proof (the password) was right.
    pub fn scram_final(&self) -> bool {
        self.trace.auth_codes.contains(&12)
    }

    /// The server ended the connection in the TLS handshake, before any protocol message: a
    /// TLS alert, or the reset that replaces it. (With TLS 1.3 the client's handshake ends
    /// before the server has judged its certificate, so the client has already sent its startup
    /// packet when the alert comes; the server closes with that packet unread, and the kernel
    /// answers with a reset that can overtake the alert.) PostgreSQL answers every startup it
    /// reads with a message, so no message at all means the startup was never read; the
    /// scenarios also count the server's log line of each refusal.
    pub fn refused_in_handshake(&self) -> bool {
        self.trace.auth_codes.is_empty()
            && self.trace.error_fields.is_empty()
            && matches!(&self.result, Err(e) if e.contains("alert") || e.contains("reset by peer"))
    }
}

/// One login attempt as a raw-protocol client sees it ([`Probe`]); a TLS failure is a result,
/// not a panic.
pub fn probe(login: &RawLogin, ca: &std::path::Path) -> Probe {
    let mut trace = RawTrace::default();
    let result = connect(login)
        .and_then(|mut tcp| login_over(login, ca, &mut tcp, &mut trace))
        .map_err(|e| crate::client::with_causes(&e));
    Probe { result, trace }
}

/// [`raw_login`], also returning the client's own address and port (what the server logs as
/// `%r`).
pub fn raw_login_at(
    login: &RawLogin,
    ca: &std::path::Path,
) -> std::io::Result<(RawOutcome, SocketAddr)> {
    let mut tcp = connect(login)?;
    let local = tcp.local_addr()?;
    login_over(login, ca, &mut tcp, &mut RawTrace::default()).map(|o| (o, local))
}

fn login_over(
    login: &RawLogin,
    ca: &std::path::Path,
    tcp: &mut TcpStream,
    trace: &mut RawTrace,
) -> std::io::Result<RawOutcome> {
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?; // SSLRequest
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)?;
    if answer[0] != b'S' {
        return Err(std::io::Error::other("the server refused TLS"));
    }
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(std::io::Error::other)?;
    b.set_ca_file(ca).map_err(std::io::Error::other)?;
    b.set_verify(SslVerifyMode::PEER);
    if let Some(c) = &login.cert {
        b.set_certificate_file(&c.cert, SslFiletype::PEM)
            .map_err(std::io::Error::other)?;
        b.set_private_key_file(&c.key, SslFiletype::PEM)
            .map_err(std::io::Error::other)?;
    }
    let mut s = b
        .build()
        .configure()
        .map_err(std::io::Error::other)?
        .verify_hostname(false)
        .connect("localhost", tcp.try_clone()?)
        .map_err(std::io::Error::other)?;
    let mut startup = Vec::new();
    startup.extend_from_slice(&196608u32.to_be_bytes());
    for (k, v) in [
        (&b"user"[..], &login.user[..]),
        (b"database", &login.database[..]),
    ] {
        startup.extend_from_slice(k);
        startup.push(0);
        startup.extend_from_slice(v);
        startup.push(0);
    }
    if let Some(r) = login.replication {
        startup.extend_from_slice(b"replication\0");
        startup.extend_from_slice(r.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut packet = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&startup);
    s.write_all(&packet)?;
    let mut scram = None;
    loop {
        let (tag, body) = read_message(&mut s)?;
        let code = body
            .get(..4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if let (b'R', Some(c)) = (tag, code) {
            trace.auth_codes.push(c);
        }
        if tag == b'E' {
            trace.error_fields = body
                .split(|&b| b == 0)
                .filter(|f| !f.is_empty())
                .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
                .collect();
        }
        match tag {
            b'R' => match code {
                Some(0) if !login.query => return Ok(RawOutcome::Authenticated),
                Some(10) => {
                    let (first, state) = ScramClient::start();
                    let mut m = b"SCRAM-SHA-256\0".to_vec();
                    m.extend_from_slice(&(first.len() as u32).to_be_bytes());
                    m.extend_from_slice(first.as_bytes());
                    s.write_all(&message(b'p', &m))?;
                    scram = Some(state);
                }
                Some(11) => {
                    let state = scram
                        .as_ref()
                        .ok_or_else(|| std::io::Error::other("SASL continue before SASL"))?;
                    let last = state
                        .final_message(&login.password, &String::from_utf8_lossy(&body[4..]))
                        .map_err(std::io::Error::other)?;
                    s.write_all(&message(b'p', last.as_bytes()))?;
                }
                Some(12) => {} // SASL final: the server accepted our proof
                Some(0) => return session(&mut s),
                Some(3) => {
                    let mut pw = login.password.clone();
                    pw.push(0);
                    s.write_all(&message(b'p', &pw))?;
                }
                other => {
                    return Err(std::io::Error::other(format!(
                        "authentication request {other:?} is not supported by this client"
                    )))
                }
            },
            b'E' => return Ok(error_fields(&body)),
            _ => {}
        }
    }
}

/// The client side of SCRAM-SHA-256 without channel binding (RFC 5802, RFC 7677), as libpq
/// speaks it with `channel_binding=disable`.
struct ScramClient {
    nonce: String,
    first_bare: String,
}

impl ScramClient {
    fn start() -> (String, ScramClient) {
        let mut raw = [0u8; 18];
        openssl::rand::rand_bytes(&mut raw).unwrap();
        let nonce = openssl::base64::encode_block(&raw);
        let first_bare = format!("n=,r={nonce}");
        (
            format!("n,,{first_bare}"),
            ScramClient { nonce, first_bare },
        )
    }

    /// The client-final-message for the server-first-message `server_first`.
    fn final_message(&self, password: &[u8], server_first: &str) -> Result<String, String> {
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::sign::Signer;
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .ok_or_else(|| format!("no {k} in {server_first:?}"))
        };
        let nonce = attr("r=")?;
        if !nonce.starts_with(&self.nonce) {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = openssl::base64::decode_block(attr("s=")?).map_err(|e| e.to_string())?;
        let iterations: usize = attr("i=")?.parse().map_err(|_| "bad iteration count")?;
        let mut salted = [0u8; 32];
        openssl::pkcs5::pbkdf2_hmac(
            password,
            &salt,
            iterations,
            MessageDigest::sha256(),
            &mut salted,
        )
        .map_err(|e| e.to_string())?;
        let hmac = |key: &[u8], data: &[u8]| {
            let key = PKey::hmac(key).unwrap();
            let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
            signer.update(data).unwrap();
            signer.sign_to_vec().unwrap()
        };
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = openssl::sha::sha256(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        Ok(format!(
            "{without_proof},p={}",
            openssl::base64::encode_block(&proof)
        ))
    }
}

/// After AuthenticationOk: waits for ReadyForQuery, runs `SELECT current_user`.
fn session(s: &mut (impl Read + Write)) -> std::io::Result<RawOutcome> {
    let mut asked = false;
    let mut user = None;
    loop {
        let (tag, body) = read_message(s)?;
        match tag {
            b'E' => return Ok(error_fields(&body)),
            b'D' => {
                // DataRow: int16 count, int32 len, bytes
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                user = Some(body[6..6 + len.max(0) as usize].to_vec());
            }
            b'Z' if !asked => {
                s.write_all(&message(b'Q', b"SELECT current_user\0"))?;
                asked = true;
            }
            b'Z' => {
                s.write_all(&message(b'X', b""))?;
                return Ok(RawOutcome::Session {
                    current_user: user.unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
}
