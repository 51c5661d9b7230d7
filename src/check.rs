//! `pg_twofactor_check(...)`: the dry run. What would the hook decide for this login, with the
//! rules in force and this server's settings? It builds a [`LoginAttempt`] from its arguments
//! and calls [`decision::decide_all`], the hook's own decision path; nobody logs in. One row
//! for the deciding rule (or `not covered`), preceded by one for the first `mode=report` rule
//! the login matched, if any.
//!
//! What it cannot know is taken as given: that PostgreSQL's own method (the password) passed
//! with `hba_method`, and that the TLS layer verified the certificate against `ssl_ca_file`
//! (and its CRL); a certificate outside its validity dates gets a WARNING, since the TLS layer
//! refuses it before the hook runs.

use crate::address::KnownHost;
use crate::catalog::ServerCatalog;
use crate::cert::CertSummary;
use crate::decision::{self, Decision, LoginAttempt, PeerCert, Verdict};
use crate::methods::BaseMethod;
use crate::rules::Rule;
use crate::sysnet::SystemNetwork;
use crate::{gucs, store};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::net::IpAddr;

/// A row of the dry run: the rule, the verdict, and what the hook would say.
pub struct DryRun {
    pub rule_file: Option<String>,
    pub rule_line: Option<i32>,
    pub rule_method: Option<String>,
    pub rule_mode: Option<String>,
    pub verdict: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub detail: Option<String>,
}

fn error(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(code, message, "pg_twofactor_check");
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("an ERROR report returned")
}

/// The client address of an `inet` value as text (`10.1.2.3`, `10.1.2.3/32`, `::1`).
fn parse_addr(text: &str) -> Result<IpAddr, String> {
    let host = text.split('/').next().unwrap_or(text);
    host.parse()
        .map_err(|_| format!("invalid client address \"{text}\""))
}

/// The DER of the first certificate in `pem`.
fn parse_pem(pem: &str) -> Result<Vec<u8>, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("client_cert is not a PEM certificate: {e}"))?;
    if block.label != "CERTIFICATE" {
        return Err(format!(
            "client_cert holds a PEM \"{}\" block, not a CERTIFICATE",
            block.label
        ));
    }
    Ok(block.contents)
}

/// The longest user or database name PostgreSQL keeps of a login (`NAMEDATALEN - 1` bytes; it
/// cuts longer ones in the startup packet).
pub const MAX_NAME_BYTES: usize = pgrx::pg_sys::NAMEDATALEN as usize - 1;
/// The largest certificate a TLS client can send PostgreSQL: OpenSSL's default limit on the
/// certificate list a peer sends (`SSL_CTX_set_max_cert_list`, 100 kB), which PostgreSQL keeps.
pub const MAX_CERT_DER_BYTES: usize = 102_400;
/// The PEM form of such a certificate: base64 (4 characters per 3 bytes) in lines of 64, with
/// the BEGIN and END lines.
pub const MAX_CERT_PEM_BYTES: usize = MAX_CERT_DER_BYTES.div_ceil(3) * 4 * 65 / 64 + 128;
/// Longer than any method name PostgreSQL knows.
const MAX_METHOD_BYTES: usize = 32;
/// The memory a dry run may need at most (the certificate read, the rules searched, the rows
/// made), asked for before it starts ([`crate::rules::token::memory_available`]).
const DRY_RUN_MEMORY: u64 = 32 * 1024 * 1024;

/// `value` unless it is longer than `max` bytes (an ERROR naming the argument and the limit).
fn limited<'a>(argument: &str, value: &'a str, max: usize, why: &str) -> Result<&'a str, String> {
    if value.len() > max {
        return Err(format!(
            "{argument} is {} bytes long, more than the {max} bytes {why}",
            value.len()
        ));
    }
    Ok(value)
}

/// Builds the attempt; an argument that cannot be used is an ERROR naming it. Every argument
/// is checked against its size limit before anything is copied or parsed.
pub fn attempt(
    user: &str,
    database: &str,
    client_addr: Option<&str>,
    client_cert: Option<&str>,
    hba_method: &str,
    ssl: bool,
    replication: bool,
) -> Result<LoginAttempt, String> {
    let user = limited(
        "user_name",
        user,
        MAX_NAME_BYTES,
        "PostgreSQL keeps of a user name",
    )?;
    let database = limited(
        "database",
        database,
        MAX_NAME_BYTES,
        "PostgreSQL keeps of a database name",
    )?;
    let hba_method = limited(
        "hba_method",
        hba_method,
        MAX_METHOD_BYTES,
        "of any authentication method name",
    )?;
    let client_cert = client_cert
        .map(|pem| {
            limited(
                "client_cert",
                pem,
                MAX_CERT_PEM_BYTES,
                "of a certificate a TLS client can send (OpenSSL's 100 kB limit, in PEM)",
            )
        })
        .transpose()?;
    let hba_method = BaseMethod::from_name(hba_method).ok_or_else(|| {
        format!("unrecognized pg_hba.conf authentication method \"{hba_method}\"")
    })?;
    let cert = match client_cert {
        None => PeerCert::None,
        Some(_) if !ssl => PeerCert::None,
        Some(pem) => {
            let der = parse_pem(pem)?;
            if der.len() > MAX_CERT_DER_BYTES {
                return Err(format!(
                    "client_cert is {} bytes long in DER, more than the {MAX_CERT_DER_BYTES} bytes of a certificate a TLS client can send (OpenSSL's limit)",
                    der.len()
                ));
            }
            PeerCert::Verified(der)
        }
    };
    Ok(LoginAttempt {
        database: database.as_bytes().to_vec(),
        user: user.as_bytes().to_vec(),
        client_addr: client_addr.map(parse_addr).transpose()?,
        known_host: KnownHost::default(),
        physical_replication: replication,
        ssl_in_use: ssl,
        cert,
        hba_method,
        hba_line: 0,
        hba_file: None,
    })
}

/// The row for a verdict of `rule`. `client_reason`: whether a refused client is told the
/// reason (else it gets PostgreSQL's own failure of the method, and so does `message`).
pub fn row(
    rule: Option<&Rule>,
    attempt: &LoginAttempt,
    verdict: &Verdict,
    client_reason: bool,
) -> DryRun {
    let message = match verdict {
        Verdict::Refused { reason, .. } if client_reason => {
            Some(Verdict::message(&attempt.user, *reason))
        }
        Verdict::Refused { .. } => Some(
            attempt
                .hba_method
                .postgres_failure()
                .1
                .replace("%s", &String::from_utf8_lossy(&attempt.user)),
        ),
        _ => None,
    };
    DryRun {
        rule_file: verdict.rule().map(|(f, _)| f.display().to_string()),
        rule_line: verdict.rule().map(|(_, l)| l as i32),
        rule_method: rule.map(|r| r.action.name().to_string()),
        rule_mode: rule.map(|r| r.mode.name().to_string()),
        verdict: verdict.outcome().to_string(),
        reason: verdict.reason().map(|r| r.to_string()),
        message,
        detail: verdict.detail().map(str::to_string),
    }
}

/// The rows of a decision: the report-mode rule's finding first, if any, then the verdict.
pub fn rows(attempt: &LoginAttempt, d: &Decision<'_>, client_reason: bool) -> Vec<DryRun> {
    d.report
        .iter()
        .map(|(v, r)| row(Some(r), attempt, v, client_reason))
        .chain(std::iter::once(row(
            d.rule,
            attempt,
            &d.verdict,
            client_reason,
        )))
        .collect()
}

/// Warns when the certificate would not get through PostgreSQL's TLS layer at all.
fn warn_if_not_valid_now(pem: &str) {
    let Ok(der) = parse_pem(pem) else { return };
    let Ok(cert) = CertSummary::from_der(&der) else {
        pgrx::warning!(
            "client_cert could not be read; a login with it is refused (\"internal error\")"
        );
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now < cert.not_before || now > cert.not_after {
        pgrx::warning!(
            "client_cert is not valid now (valid from {} to {}); PostgreSQL's TLS layer refuses it before pg_twofactor sees it",
            crate::expiry::utc(cert.not_before),
            crate::expiry::utc(cert.not_after)
        );
    }
}

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_restricted)]
fn pg_twofactor_check(
    user_name: &str,
    database: &str,
    client_addr: Option<pgrx::Inet>,
    client_cert: Option<&str>,
    hba_method: default!(&str, "'scram-sha-256'"),
    ssl: default!(bool, true),
    replication: default!(bool, false),
) -> TableIterator<
    'static,
    (
        name!(rule_file, Option<String>),
        name!(rule_line, Option<i32>),
        name!(rule_method, Option<String>),
        name!(rule_mode, Option<String>),
        name!(verdict, String),
        name!(reason, Option<String>),
        name!(message, Option<String>),
        name!(detail, Option<String>),
    ),
> {
    if let Err(e) = crate::rules::token::memory_available(DRY_RUN_MEMORY) {
        error(
            PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
            format!(
                "not enough memory for the dry run: it needs up to {} MB ({})",
                DRY_RUN_MEMORY / (1024 * 1024),
                crate::rules::token::os_message(&e)
            ),
            None,
        );
    }
    let addr = client_addr.map(|a| a.0);
    let attempt = attempt(
        user_name,
        database,
        addr.as_deref(),
        client_cert,
        hba_method,
        ssl,
        replication,
    )
    .unwrap_or_else(|e| error(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e, None));
    if let (Some(pem), true) = (client_cert, ssl) {
        warn_if_not_valid_now(pem);
    }
    if let Some(server) = store::server_state() {
        if server.generation != store::local_state().0 {
            error(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "this session started before the rules file was last reloaded, so it holds older rules than new logins get".into(),
                Some("Reconnect and run the check again."),
            );
        }
    }
    let rows = store::with_current(|rules| {
        let d = decision::decide_all(
            rules,
            &attempt,
            gucs::enabled_methods(),
            &SystemNetwork::unbounded(),
            &ServerCatalog::new(),
        );
        rows(&attempt, &d, gucs::client_reason())
    })
    .unwrap_or_else(|| {
        error(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "no pg_twofactor rules are loaded".into(),
            None,
        )
    });
    TableIterator::new(rows.into_iter().map(|row| {
        (
            row.rule_file,
            row.rule_line,
            row.rule_method,
            row.rule_mode,
            row.verdict,
            row.reason,
            row.message,
            row.detail,
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            attempt("u", "d", Some("10.1.2.3/32"), None, "md5", true, false)
                .unwrap()
                .client_addr,
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(
            attempt("u", "d", None, None, "scram", true, false).unwrap_err(),
            "unrecognized pg_hba.conf authentication method \"scram\""
        );
        assert!(attempt("u", "d", None, Some("junk"), "md5", true, false)
            .unwrap_err()
            .starts_with("client_cert is not a PEM certificate"));
        assert_eq!(
            attempt(
                "u",
                "d",
                None,
                Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                "md5",
                true,
                false
            )
            .unwrap_err(),
            "client_cert holds a PEM \"PRIVATE KEY\" block, not a CERTIFICATE"
        );
        // every argument has a size limit, checked before it is copied or parsed
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            attempt(&long, "d", None, None, "md5", true, false).unwrap_err(),
            "user_name is 64 bytes long, more than the 63 bytes PostgreSQL keeps of a user name"
        );
        assert!(attempt("u", &long, None, None, "md5", true, false)
            .unwrap_err()
            .starts_with("database is 64 bytes long"));
        assert!(attempt("u", "d", None, None, &long, true, false)
            .unwrap_err()
            .starts_with("hba_method is 64 bytes long"));
        let huge = "A".repeat(MAX_CERT_PEM_BYTES + 1);
        assert!(attempt("u", "d", None, Some(&huge), "md5", true, false)
            .unwrap_err()
            .starts_with(&format!("client_cert is {} bytes long, more than the {MAX_CERT_PEM_BYTES} bytes of a certificate a TLS client can send", MAX_CERT_PEM_BYTES + 1)));
        // a PEM block within the PEM limit whose DER is over 100 kB (no line breaks)
        let b64 = "QUFB".repeat(MAX_CERT_DER_BYTES / 3 + 1);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        assert!(pem.len() <= MAX_CERT_PEM_BYTES);
        let e = attempt("u", "d", None, Some(&pem), "md5", true, false).unwrap_err();
        assert!(
            e.starts_with("client_cert is 102402 bytes long in DER"),
            "{e}"
        );
        assert_eq!(MAX_CERT_PEM_BYTES, 138_797);
        // without TLS no certificate reaches the server
        assert!(matches!(
            attempt("u", "d", None, Some("ignored"), "md5", false, false)
                .unwrap()
                .cert,
            PeerCert::None
        ));
    }
}
