//! The offline dry run: what `pg_twofactor_check()` would answer, from a rules file on disk,
//! with the core crate's own decision (`decide_all`, the hook's code path).
//!
//! What a server knows and a file does not is given: the `pg_hba.conf` method that checked the
//! password (`hba_method`), the roles the user is a member of (for `+role` rules), the methods
//! enabled besides the default ones. Host names are looked up with this machine's resolver. A
//! regular expression (16+) cannot be evaluated without PostgreSQL's engine: a rule that needs
//! one is undecidable here, and decided as the server decides an undecidable rule (in both
//! worlds).

use pg_twofactor_core::decision;
use pg_twofactor_core::dry_run::{self, ArgumentError, DryRun};
use pg_twofactor_core::methods::{MethodListError, MethodSet};
use pg_twofactor_core::os::network::SystemNetwork;
use pg_twofactor_core::rules::{self, AnyRegex, Catalog, Syntax};
use std::path::Path;

/// The login to check: the arguments `pg_twofactor_check(...)` takes, and what the server's
/// TLS would have verified.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    pub args: dry_run::Arguments<'a>,
    /// The key `issuer_key=` compares ([`pg_twofactor_core::cert::spki_sha256`] of the
    /// certificate's issuer in its verified chain, [`verify_chain`]), when known.
    pub issuer_key: Option<[u8; 32]>,
}

/// What the server would know besides the files.
#[derive(Debug, Clone, Default)]
pub struct Server {
    /// The PostgreSQL major whose `pg_hba.conf` syntax the rules follow.
    pub major: u32,
    /// `pg_twofactor.enabled_extra_auth_methods`.
    pub enabled_extra: String,
    /// The roles the user is a member of, directly or not.
    pub member_of: Vec<String>,
    /// `pg_twofactor.client_reason`: the message shown is the reason (else PostgreSQL's own).
    pub client_reason: bool,
}

impl Catalog for Server {
    fn is_member(&self, _user: &[u8], role: &[u8]) -> bool {
        self.member_of.iter().any(|r| r.as_bytes() == role)
    }
    fn regex_match(
        &self,
        pattern: &[u8],
        _subject: &[u8],
    ) -> Result<bool, pg_twofactor_core::rules::RegexError> {
        Err(pg_twofactor_core::rules::RegexError {
            pattern: pattern.to_vec(),
            reason: "a regular expression needs PostgreSQL's engine, which the offline check does not have".into(),
        })
    }
}

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("PostgreSQL {0} is not a major pg_twofactor supports (15, 16, 17, 18)")]
    Major(u32),
    #[error("{0}")]
    Rules(String),
    #[error(transparent)]
    Argument(#[from] ArgumentError),
    #[error("pg_twofactor.enabled_extra_auth_methods: {0}")]
    Methods(#[from] MethodListError),
}

/// The dry run's rows for `login` under the rules file at `rules_path`.
pub fn check(
    rules_path: &Path,
    login: &Login<'_>,
    server: &Server,
) -> Result<Vec<DryRun>, CheckError> {
    let syntax = Syntax::of_major(server.major).ok_or(CheckError::Major(server.major))?;
    let set = rules::parse_file(rules_path, syntax, &AnyRegex)
        .into_rule_set()
        .map_err(|errors| {
            CheckError::Rules(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    let mut attempt = dry_run::attempt(server.major, &login.args)?;
    attempt.issuer_key = login.issuer_key;
    let enabled = MethodSet::parse_extra(&server.enabled_extra)?;
    let image = set.image().map_err(|e| CheckError::Rules(e.to_string()))?;
    let d = decision::decide_all(
        image.view(),
        &attempt,
        enabled,
        &SystemNetwork::unbounded(),
        server,
    );
    Ok(dry_run::rows(&attempt, &d, server.client_reason))
}

/// Why PostgreSQL's TLS layer would refuse a client certificate before pg_twofactor sees it.
#[derive(Debug, thiserror::Error)]
pub enum TlsRefusal {
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("certificate verify failed: {why} (depth {depth}, subject \"{subject}\")")]
    Verify {
        why: &'static str,
        depth: u32,
        subject: String,
    },
}

/// Verifies the client certificate chain in `cert_pem` (the client's certificate first, then
/// any intermediates it sends) against the CAs of `ca_pem` (`ssl_ca_file`), as the server's TLS
/// layer does: the signatures up to a trusted CA, every certificate's validity dates at this
/// moment, and the purpose `sslclient` OpenSSL checks for a server verifying its client.
/// (`ssl_crl_file` and `ssl_crl_dir` are not consulted: a revoked certificate passes here.)
/// Returns the DER of the verified chain, the client's certificate first.
pub fn verify_chain(
    ca_path: &str,
    ca_pem: &[u8],
    cert_path: &str,
    cert_pem: &[u8],
) -> Result<Vec<Vec<u8>>, TlsRefusal> {
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509PurposeId, X509StoreContext, X509};
    let cas = X509::stack_from_pem(ca_pem)?;
    if cas.is_empty() {
        return Err(TlsRefusal::NoCertificate {
            path: ca_path.to_string(),
        });
    }
    let mut sent = X509::stack_from_pem(cert_pem)?.into_iter();
    let leaf = sent.next().ok_or_else(|| TlsRefusal::NoCertificate {
        path: cert_path.to_string(),
    })?;
    let mut store = X509StoreBuilder::new()?;
    for ca in cas {
        store.add_cert(ca)?;
    }
    store.set_purpose(X509PurposeId::SSL_CLIENT)?;
    let store = store.build();
    let mut chain = Stack::new()?;
    for intermediate in sent {
        chain.push(intermediate)?;
    }
    let mut ctx = X509StoreContext::new()?;
    let outcome = ctx.init(&store, &leaf, &chain, |c| {
        Ok(if c.verify_cert()? {
            let verified = c.chain().map(|chain| {
                chain
                    .iter()
                    .filter_map(|x| x.to_der().ok())
                    .collect::<Vec<_>>()
            });
            Ok(verified.unwrap_or_default())
        } else {
            // as PostgreSQL prints a DN (escaped): the certificate's text is the client's choice
            let subject = c
                .current_cert()
                .and_then(|x| x.to_der().ok())
                .and_then(|der| pg_twofactor_core::cert::CertInfo::from_der(&der).ok())
                .map(|info| info.subject)
                .unwrap_or_default();
            Err((c.error().error_string(), c.error_depth(), subject))
        })
    })?;
    outcome.map_err(|(why, depth, subject)| TlsRefusal::Verify {
        why,
        depth,
        subject,
    })
}
