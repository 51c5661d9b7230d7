//! A minimal PostgreSQL protocol client for what neither psql nor tokio-postgres can do: user
//! and database names as raw bytes (a LATIN1 cluster's names), a chosen source address, the
//! `replication` startup option, and running inside a network namespace. It speaks TLS
//! (optionally with a client certificate) and the `trust` and `password` methods, which is all
//! the rules oracle needs; it stops when authentication has been decided.

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

/// [`raw_login`], also returning the client's own address and port (what the server logs as
/// `%r`).
pub fn raw_login_at(
    login: &RawLogin,
    ca: &std::path::Path,
) -> std::io::Result<(RawOutcome, SocketAddr)> {
    let mut tcp = connect(login)?;
    let local = tcp.local_addr()?;
    login_over(login, ca, &mut tcp).map(|o| (o, local))
}

fn login_over(
    login: &RawLogin,
    ca: &std::path::Path,
    tcp: &mut TcpStream,
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
    loop {
        let (tag, body) = read_message(&mut s)?;
        match tag {
            b'R' => match body
                .get(..4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            {
                Some(0) if !login.query => return Ok(RawOutcome::Authenticated),
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
