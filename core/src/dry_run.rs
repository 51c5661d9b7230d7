//! The dry run's input and output without PostgreSQL: a login described by arguments (as
//! `pg_twofactor_check(...)` takes them), checked against their size limits and turned into a
//! [`LoginAttempt`], and the rows that show a [`Decision`].

use crate::address::KnownHost;
use crate::cert::{der_from_pem, PemError};
use crate::decision::{Decision, LoginAttempt, PeerCert, Verdict, VerifiedCert};
use crate::handshake::{self, HandshakeRefusal, HandshakeVerdict};
use crate::methods::BaseMethod;
use crate::rules::RuleView;
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

/// An argument of the dry run that cannot be used; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    #[error("{argument} is {len} bytes long, more than the {max} bytes {why}")]
    TooLong {
        argument: &'static str,
        len: usize,
        max: usize,
        why: &'static str,
    },
    #[error("unrecognized pg_hba.conf authentication method \"{0}\"")]
    UnknownMethod(String),
    #[error("client_cert {0}")]
    Certificate(#[from] PemError),
    #[error("client_cert is {0} bytes long in DER, more than the {MAX_CERT_DER_BYTES} bytes of a certificate a TLS client can send (OpenSSL's limit)")]
    DerTooLong(usize),
    #[error("invalid client address \"{0}\"")]
    ClientAddress(String),
}

/// The client address of an `inet` value as text (`10.1.2.3`, `10.1.2.3/32`, `::1`).
pub fn client_address(text: &str) -> Result<IpAddr, ArgumentError> {
    let host = text.split('/').next().unwrap_or(text);
    host.parse()
        .map_err(|_| ArgumentError::ClientAddress(text.to_string()))
}

/// The longest user or database name PostgreSQL keeps of a login (`NAMEDATALEN - 1` bytes with
/// PostgreSQL's default `NAMEDATALEN` of 64; it cuts longer ones in the startup packet).
pub const MAX_NAME_BYTES: usize = 63;
/// The largest certificate a TLS client can send PostgreSQL: OpenSSL's default limit on the
/// certificate list a peer sends (`SSL_CTX_set_max_cert_list`, 100 kB), which PostgreSQL keeps.
pub const MAX_CERT_DER_BYTES: usize = 102_400;
/// The PEM form of such a certificate: base64 (4 characters per 3 bytes) in lines of 64, with
/// the BEGIN and END lines.
pub const MAX_CERT_PEM_BYTES: usize = MAX_CERT_DER_BYTES.div_ceil(3) * 4 * 65 / 64 + 128;
/// Longer than any method name PostgreSQL knows.
pub const MAX_METHOD_BYTES: usize = 32;
/// `value` unless it is longer than `max` bytes.
fn limited<'a>(
    argument: &'static str,
    value: &'a str,
    max: usize,
    why: &'static str,
) -> Result<&'a str, ArgumentError> {
    if value.len() > max {
        return Err(ArgumentError::TooLong {
            argument,
            len: value.len(),
            max,
            why,
        });
    }
    Ok(value)
}

/// The login a dry run judges, as `pg_twofactor_check(...)` and `pg_twofactor-cert check` both
/// take it: one field per argument of the SQL function.
#[derive(Debug, Clone, Copy)]
pub struct Arguments<'a> {
    pub user: &'a str,
    pub database: &'a str,
    /// The client's address (`inet` text; a `/32` or `/128` suffix allowed).
    pub client_addr: Option<&'a str>,
    /// The client certificate, PEM.
    pub client_cert: Option<&'a str>,
    /// The `pg_hba.conf` method PostgreSQL would have used (its name, e.g. `scram-sha-256`).
    pub hba_method: &'a str,
    pub ssl: bool,
    pub replication: bool,
}

impl<'a> Arguments<'a> {
    /// `user` logging in to `database`, with the SQL function's defaults: `scram-sha-256`, over
    /// TLS, no replication, no address, no certificate.
    pub fn login(user: &'a str, database: &'a str) -> Arguments<'a> {
        Arguments {
            user,
            database,
            client_addr: None,
            client_cert: None,
            hba_method: "scram-sha-256",
            ssl: true,
            replication: false,
        }
    }
}

/// Builds the attempt; an argument that cannot be used is an ERROR naming it. Every argument
/// is checked against its size limit before anything is copied or parsed.
pub fn attempt(major: u32, args: &Arguments<'_>) -> Result<LoginAttempt, ArgumentError> {
    let Arguments {
        user,
        database,
        client_addr,
        client_cert,
        hba_method,
        ssl,
        replication,
    } = *args;
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
    let hba_method = BaseMethod::from_name(hba_method, major)
        .ok_or_else(|| ArgumentError::UnknownMethod(hba_method.to_string()))?;
    let cert = match client_cert {
        None => PeerCert::None,
        Some(_) if !ssl => PeerCert::None,
        Some(pem) => {
            let der = der_from_pem(pem)?;
            if der.len() > MAX_CERT_DER_BYTES {
                return Err(ArgumentError::DerTooLong(der.len()));
            }
            PeerCert::Verified(VerifiedCert::new(der))
        }
    };
    Ok(LoginAttempt {
        database: database.as_bytes().to_vec(),
        user: user.as_bytes().to_vec(),
        client_addr: client_addr.map(client_address).transpose()?,
        known_host: KnownHost::default(),
        physical_replication: replication,
        ssl_in_use: ssl,
        cert,
        hba_method,
        hba_line: 0,
        hba_file: None,
        issuer_key: None,
    })
}

/// The row for a verdict of `rule`. `client_reason`: whether a refused client is told the
/// reason (else it gets PostgreSQL's own failure of the method, and so does `message`).
pub fn row(
    rule: Option<&RuleView<'_>>,
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
        rule_mode: rule.map(|r| r.options.mode.name().to_string()),
        verdict: verdict.outcome().to_string(),
        reason: verdict.reason().map(|r| r.to_string()),
        message,
        detail: verdict.detail().map(str::to_string),
    }
}

/// What `pg_twofactor.handshake_check` does with the dry run's login: `Some` refusal when the
/// TLS handshake would already refuse its certificate (then no rule is ever asked).
pub fn handshake_refusal(
    attempt: &LoginAttempt,
    net: &dyn crate::address::Network,
) -> Option<HandshakeRefusal> {
    let PeerCert::Verified(cert) = &attempt.cert else {
        return None;
    };
    let client = attempt
        .client_addr
        .map(|addr| crate::address::ClientName::new(net, addr));
    match handshake::check(cert.der(), client.as_ref()) {
        HandshakeVerdict::Refused(r) => Some(r),
        HandshakeVerdict::Unbound | HandshakeVerdict::Matched => None,
    }
}

/// The one row of a login refused in the TLS handshake: no rule, the handshake's reason, the
/// server log's message and DETAIL.
pub fn handshake_row(attempt: &LoginAttempt, refusal: &HandshakeRefusal) -> DryRun {
    let client = attempt
        .client_addr
        .map_or_else(|| "(unknown)".to_string(), |a| a.to_string());
    DryRun {
        rule_file: None,
        rule_line: None,
        rule_method: None,
        rule_mode: None,
        verdict: "refused".into(),
        reason: Some(handshake::REASON.into()),
        message: Some(refusal.message(&client)),
        detail: Some(refusal.detail()),
    }
}

/// The rows of a decision: the report-mode rule's finding first, if any, then the verdict.
pub fn rows(attempt: &LoginAttempt, d: &Decision<'_>, client_reason: bool) -> Vec<DryRun> {
    d.report
        .iter()
        .map(|(v, r)| row(Some(r), attempt, v, client_reason))
        .chain(std::iter::once(row(
            d.rule.as_ref(),
            attempt,
            &d.verdict,
            client_reason,
        )))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_check_refuses_a_certificate_bound_elsewhere_before_any_rule() {
        let net = crate::address::StaticNetwork::default();
        let at = |addr: &str, cert: PeerCert| LoginAttempt {
            cert,
            ..attempt(
                15,
                &Arguments {
                    client_addr: Some(addr),
                    ..ud()
                },
            )
            .unwrap()
        };
        // bound to 127.0.0.1 and ::1
        let der = include_bytes!("testdata/handshake-loopback.der").to_vec();
        assert!(handshake_refusal(
            &at(
                "127.0.0.1",
                PeerCert::Verified(VerifiedCert::new(der.clone()))
            ),
            &net
        )
        .is_none());
        assert!(handshake_refusal(&at("10.1.2.3", PeerCert::None), &net).is_none());
        let refused = at("10.1.2.3", PeerCert::Verified(VerifiedCert::new(der)));
        let r = handshake_refusal(&refused, &net).expect("refused in the handshake");
        let row = handshake_row(&refused, &r);
        assert_eq!(
            (row.rule_line, row.verdict.as_str(), row.reason.as_deref()),
            (None, "refused", Some(handshake::REASON))
        );
        assert!(row.message.unwrap().contains("of client 10.1.2.3"));
    }

    /// user "u" to database "d", the SQL function's defaults otherwise
    fn ud() -> Arguments<'static> {
        Arguments::login("u", "d")
    }

    #[test]
    fn arguments_of_exactly_the_limit_are_taken() {
        let name = "x".repeat(MAX_NAME_BYTES);
        assert!(attempt(15, &Arguments::login(&name, &name)).is_ok());
        // a PEM block whose DER is exactly 100 kB ("QUFB" is "AAA", "QQ==" is "A")
        let b64 = format!("{}QQ==", "QUFB".repeat(MAX_CERT_DER_BYTES / 3));
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let a = attempt(
            15,
            &Arguments {
                client_cert: Some(&pem),
                ..ud()
            },
        )
        .unwrap();
        assert!(matches!(a.cert, PeerCert::Verified(c) if c.der().len() == MAX_CERT_DER_BYTES));
    }

    #[test]
    fn a_refused_row_says_what_the_client_is_told() {
        let a = attempt(
            15,
            &Arguments {
                hba_method: "md5",
                ..ud()
            },
        )
        .unwrap();
        let refused = Verdict::Refused {
            reason: crate::decision::Reason::NoCertificate,
            rule_file: "/r.conf".into(),
            rule_line: 3,
            detail: "Rule /r.conf:3.".into(),
        };
        assert_eq!(
            row(None, &a, &refused, true).message.as_deref(),
            Some("two-factor authentication failed for user \"u\": no client certificate")
        );
        // client_reason off: PostgreSQL's own failure of the method
        assert_eq!(
            row(None, &a, &refused, false).message.as_deref(),
            Some("password authentication failed for user \"u\"")
        );
        assert_eq!(row(None, &a, &Verdict::NotCovered, true).message, None);
        let d = Decision {
            verdict: refused,
            rule: None,
            report: None,
            undecided: Vec::new(),
        };
        let rows = rows(&a, &d, false);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].verdict, "refused");
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            attempt(
                15,
                &Arguments {
                    client_addr: Some("10.1.2.3/32"),
                    hba_method: "md5",
                    ..ud()
                }
            )
            .unwrap()
            .client_addr,
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(
            attempt(
                15,
                &Arguments {
                    hba_method: "scram",
                    ..ud()
                }
            )
            .unwrap_err()
            .to_string(),
            "unrecognized pg_hba.conf authentication method \"scram\""
        );
        assert!(attempt(
            15,
            &Arguments {
                client_cert: Some("junk"),
                hba_method: "md5",
                ..ud()
            }
        )
        .unwrap_err()
        .to_string()
        .starts_with("client_cert is not a PEM certificate"));
        assert_eq!(
            attempt(
                15,
                &Arguments {
                    client_cert: Some(
                        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
                    ),
                    hba_method: "md5",
                    ..ud()
                }
            )
            .unwrap_err()
            .to_string(),
            "client_cert holds a PEM \"PRIVATE KEY\" block, not a CERTIFICATE"
        );
        // every argument has a size limit, checked before it is copied or parsed
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            attempt(
                15,
                &Arguments {
                    user: &long,
                    hba_method: "md5",
                    ..ud()
                }
            )
            .unwrap_err()
            .to_string(),
            "user_name is 64 bytes long, more than the 63 bytes PostgreSQL keeps of a user name"
        );
        assert!(attempt(
            15,
            &Arguments {
                database: &long,
                hba_method: "md5",
                ..ud()
            }
        )
        .unwrap_err()
        .to_string()
        .starts_with("database is 64 bytes long"));
        assert!(attempt(
            15,
            &Arguments {
                hba_method: &long,
                ..ud()
            }
        )
        .unwrap_err()
        .to_string()
        .starts_with("hba_method is 64 bytes long"));
        let huge = "A".repeat(MAX_CERT_PEM_BYTES + 1);
        assert!(attempt(15, &Arguments { client_cert: Some(&huge), hba_method: "md5", ..ud() })
            .unwrap_err()
            .to_string()
            .starts_with(&format!("client_cert is {} bytes long, more than the {MAX_CERT_PEM_BYTES} bytes of a certificate a TLS client can send", MAX_CERT_PEM_BYTES + 1)));
        // a PEM block within the PEM limit whose DER is over 100 kB (no line breaks)
        let b64 = "QUFB".repeat(MAX_CERT_DER_BYTES / 3 + 1);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        assert!(pem.len() <= MAX_CERT_PEM_BYTES);
        let e = attempt(
            15,
            &Arguments {
                client_cert: Some(&pem),
                hba_method: "md5",
                ..ud()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("client_cert is 102402 bytes long in DER"),
            "{e}"
        );
        assert_eq!(MAX_CERT_PEM_BYTES, 138_797);
        // without TLS no certificate reaches the server
        assert!(matches!(
            attempt(
                15,
                &Arguments {
                    client_cert: Some("ignored"),
                    hba_method: "md5",
                    ssl: false,
                    ..ud()
                }
            )
            .unwrap()
            .cert,
            PeerCert::None
        ));
    }
}
