//! The decision: given a login PostgreSQL has accepted, does the second factor hold?
//!
//! This is the one code path for the hook (and for anything later that must say what the hook
//! would do). It knows nothing of PostgreSQL's structures.

use crate::address::{ClientName, KnownHost, Network};
use crate::cert::{AddressFailure, CertError, CertInfo, CertKey};
use crate::methods::{BaseMethod, Method, MethodSet};
use crate::rules::token::hex;
use crate::rules::{Action, Catalog, Connection, Found, Image, Mode, RuleView, SanPolicy};
use std::cell::OnceCell;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// The client's certificate as TLS left it.
#[derive(Debug, Clone)]
pub enum PeerCert {
    /// No TLS, or TLS without a client certificate.
    None,
    /// The client sent a certificate that did not verify against `ssl_ca_file`.
    Unverified,
    /// A verified certificate.
    Verified(VerifiedCert),
}

/// A verified client certificate: its DER, and the checks' reading of it, made at most once
/// per login however many rules check it (the certificates seen reuse it).
#[derive(Debug, Clone)]
pub struct VerifiedCert {
    der: Vec<u8>,
    read: OnceCell<Result<CertInfo, CertError>>,
}

impl VerifiedCert {
    pub fn new(der: Vec<u8>) -> VerifiedCert {
        VerifiedCert {
            der,
            read: OnceCell::new(),
        }
    }

    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// What the checks read of it, read on first use.
    pub fn info(&self) -> Result<&CertInfo, &CertError> {
        self.read
            .get_or_init(|| CertInfo::from_der(&self.der))
            .as_ref()
    }

    /// Its key: from the checks' reading when a rule made one, else read for the key alone (a
    /// login no rule covers, or a certificate whose SubjectAltName the checks could not read:
    /// its key needs only the issuer and serial).
    pub fn key(&self) -> Result<CertKey, CertError> {
        match self.read.get() {
            Some(Ok(info)) => Ok(info.key),
            _ => CertKey::from_der(&self.der),
        }
    }
}

/// A login attempt that PostgreSQL's own method has accepted.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// The database and user names as the client sent them, in the server encoding.
    pub database: Vec<u8>,
    pub user: Vec<u8>,
    /// `None` for Unix-socket connections, which no rule covers.
    pub client_addr: Option<IpAddr>,
    /// What PostgreSQL already found out about the client's host name.
    pub known_host: KnownHost,
    pub physical_replication: bool,
    pub ssl_in_use: bool,
    pub cert: PeerCert,
    /// The method of the `pg_hba.conf` line PostgreSQL used, that line's number, and (16+)
    /// its file.
    pub hba_method: BaseMethod,
    pub hba_line: i32,
    pub hba_file: Option<String>,
    /// The SHA-256 of the SubjectPublicKeyInfo of the certificate that issued the client's
    /// certificate in the chain TLS verified ([`crate::cert::spki_sha256`]), for `issuer_key=`;
    /// `None` when it was not read (no rule in force asks for it) or could not be.
    pub issuer_key: Option<[u8; 32]>,
}

impl LoginAttempt {
    /// `file:line` of the `pg_hba.conf` line PostgreSQL used, for the log.
    pub fn hba_position(&self) -> String {
        if self.hba_line <= 0 {
            return "line not chosen (dry run)".into();
        }
        match &self.hba_file {
            Some(f) => format!("{f}:{}", self.hba_line),
            None => format!("line {}", self.hba_line),
        }
    }
}

/// Why a login was refused; `Display` is the REASON part of the client's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NoCertificate,
    MethodNotEnabled,
    BaseMethodMismatch,
    CnMismatch,
    AddressMismatch,
    Internal,
    IssuerMismatch,
    IssuerKeyMismatch,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::NoCertificate,
        Reason::MethodNotEnabled,
        Reason::BaseMethodMismatch,
        Reason::CnMismatch,
        Reason::AddressMismatch,
        Reason::Internal,
        Reason::IssuerMismatch,
        Reason::IssuerKeyMismatch,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::NoCertificate => "no client certificate",
            Reason::MethodNotEnabled => "method not enabled",
            Reason::BaseMethodMismatch => "pg_hba.conf method does not match the rule",
            Reason::CnMismatch => "certificate CN does not match the user name",
            Reason::AddressMismatch => "client address does not match the certificate",
            Reason::Internal => "internal error",
            Reason::IssuerMismatch => "certificate issuer does not match the rule",
            Reason::IssuerKeyMismatch => "certificate issuer key does not match the rule",
        })
    }
}

/// The outcome for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No rule covers the connection: PostgreSQL's decision stands.
    NotCovered,
    /// The rule at `rule_file:rule_line` matched and every check passed.
    Accepted {
        rule_file: PathBuf,
        rule_line: usize,
        detail: String,
    },
    /// Refused; `detail` is for the server log only.
    Refused {
        reason: Reason,
        rule_file: PathBuf,
        rule_line: usize,
        detail: String,
    },
    /// A `mode=report` rule would have refused: the login goes on, the refusal is logged at
    /// WARNING and counted.
    Reported {
        reason: Reason,
        rule_file: PathBuf,
        rule_line: usize,
        detail: String,
    },
    /// A `2f-exempt` rule matched first: PostgreSQL's decision stands.
    Exempt {
        rule_file: PathBuf,
        rule_line: usize,
    },
}

impl Verdict {
    /// The client-facing message of a refusal (a non-UTF-8 name is shown lossily).
    pub fn message(user: &[u8], reason: Reason) -> String {
        format!(
            "two-factor authentication failed for user \"{}\": {reason}",
            String::from_utf8_lossy(user)
        )
    }

    /// The rule that decided, as (file, line); `None` when no rule covers the connection.
    pub fn rule(&self) -> Option<(&std::path::Path, usize)> {
        match self {
            Verdict::NotCovered => None,
            Verdict::Accepted {
                rule_file,
                rule_line,
                ..
            }
            | Verdict::Refused {
                rule_file,
                rule_line,
                ..
            }
            | Verdict::Reported {
                rule_file,
                rule_line,
                ..
            }
            | Verdict::Exempt {
                rule_file,
                rule_line,
            } => Some((rule_file, *rule_line)),
        }
    }

    /// The rule that decided, as `file:line`, or `none`.
    pub fn rule_position(&self) -> String {
        match self.rule() {
            None => "none".into(),
            Some((file, line)) => format!("{}:{line}", file.display()),
        }
    }

    /// The outcome in a word or two, as the decision log and the dry run name it.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::NotCovered => "not covered",
            Verdict::Accepted { .. } => "accepted",
            Verdict::Refused { .. } => "refused",
            Verdict::Reported { .. } => "reported",
            Verdict::Exempt { .. } => "exempt",
        }
    }

    /// The reason of a refusal or a reported would-be refusal.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Verdict::Refused { reason, .. } | Verdict::Reported { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// The detail for the server log, when there is one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Verdict::Accepted { detail, .. }
            | Verdict::Refused { detail, .. }
            | Verdict::Reported { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// Decides a login. `enabled` is the set of enabled methods, `net` answers name lookups and
/// interface questions, `catalog` answers role membership and regular expressions.
pub fn decide(
    rules: Image<'_>,
    attempt: &LoginAttempt,
    enabled: MethodSet,
    net: &dyn Network,
    catalog: &dyn Catalog,
) -> Verdict {
    decide_all(rules, attempt, enabled, net, catalog).verdict
}

/// Everything the hook, the statistics and the dry run need to know about one login.
#[derive(Debug)]
pub struct Decision<'r> {
    /// What happens to the login.
    pub verdict: Verdict,
    /// The rule that decided it (`None`: not covered).
    pub rule: Option<RuleView<'r>>,
    /// The first `mode=report` rule the login matched before that, with what it found
    /// (`Accepted` or `Reported`). A report rule never decides: the rules after it still apply.
    pub report: Option<(Verdict, RuleView<'r>)>,
    /// The `2f-exempt` and enforcing rules whose match could not be decided, in file order,
    /// with the cause: each was decided in both worlds (an exemption skipped, an enforcing
    /// rule's checks required).
    pub undecided: Vec<(RuleView<'r>, String)>,
}

impl Decision<'_> {
    /// The undecidable rules for the decision log: `""`, or `; undecided: rule F:L (2f-exempt)
    /// skipped (CAUSE), rule F:L (2f-...) checked as if it applied (CAUSE)`.
    pub fn undecided_text(&self) -> String {
        if self.undecided.is_empty() {
            return String::new();
        }
        let rules: Vec<String> = self
            .undecided
            .iter()
            .map(|(r, cause)| {
                format!(
                    "rule {}:{} ({}) {} ({cause})",
                    r.file.display(),
                    r.line,
                    r.action,
                    match r.action {
                        Action::Exempt => "skipped",
                        Action::TwoFactor(_) => "checked as if it applied",
                    }
                )
            })
            .collect();
        format!("; undecided: {}", rules.join(", "))
    }
}

/// [`decide`], with the deciding rule and the report-mode observation.
///
/// A rule whose match cannot be decided (a lookup failed) is decided in both worlds: the login
/// must pass as if the rule applied *and* as if it did not. So an undecidable `2f-exempt` or
/// `mode=report` rule is skipped (the rules below decide), and an undecidable enforcing rule
/// requires its own checks and whatever decides without it. Nobody gets in with a password
/// alone, and nobody whom no rule covers is locked out by an outage.
pub fn decide_all<'r>(
    rules: Image<'r>,
    attempt: &LoginAttempt,
    enabled: MethodSet,
    net: &dyn Network,
    catalog: &dyn Catalog,
) -> Decision<'r> {
    let Some(addr) = attempt.client_addr else {
        return Decision {
            verdict: Verdict::NotCovered,
            rule: None,
            report: None,
            undecided: Vec::new(),
        };
    };
    let client = ClientName::with_known(net, addr, attempt.known_host.clone());
    let conn = Connection {
        database: &attempt.database,
        user: &attempt.user,
        physical_replication: attempt.physical_replication,
        client: &client,
    };
    let mut report = None;
    // Undecidable rules passed over, in file order: an enforcing one with its verdict as if
    // it applied, an exemption or report rule with `None` (it was skipped).
    let mut undecided: Vec<(RuleView<'r>, String, Option<Verdict>)> = Vec::new();
    let found = rules.find_passing(&conn, catalog, |found| {
        let (rule, cause) = match found {
            Found::Rule(r) => (*r, None),
            Found::Undecided { rule, cause } => (*rule, Some(cause)),
            Found::None => return false,
        };
        let reports =
            rule.options.mode == Mode::Report && matches!(rule.action, Action::TwoFactor(_));
        if reports {
            // a report rule never decides: the rules below it apply in either world
            if report.is_none() {
                let verdict = match cause {
                    Some(cause) => undecided_report(&rule, attempt, addr, cause),
                    None => decide_rule(&rule, attempt, addr, &client, enabled),
                };
                report = Some((as_reported(verdict), rule));
            }
            return true;
        }
        let Some(cause) = cause else {
            return false; // a decided rule decides
        };
        let as_if_applied = match rule.action {
            Action::Exempt => None,
            Action::TwoFactor(_) => Some(decide_rule(&rule, attempt, addr, &client, enabled)),
        };
        undecided.push((rule, cause.clone(), as_if_applied));
        true
    });
    let (verdict, rule) = match found {
        Found::None => (Verdict::NotCovered, None),
        Found::Rule(rule) => (
            decide_rule(&rule, attempt, addr, &client, enabled),
            Some(rule),
        ),
        // every undecidable rule was passed over above
        Found::Undecided { rule, cause } => {
            (undecided_report(&rule, attempt, addr, &cause), Some(rule))
        }
    };
    if undecided.is_empty() {
        return Decision {
            verdict,
            rule,
            report,
            undecided: Vec::new(),
        };
    }
    let passed = undecided
        .iter()
        .map(|(r, cause, _)| (*r, cause.clone()))
        .collect();
    let (verdict, rule) = both_worlds(undecided, verdict, rule);
    Decision {
        verdict,
        rule,
        report,
        undecided: passed,
    }
}

/// The verdict when undecidable rules were passed over on the way to `below` (what decides as
/// if none of them applied, by `below_rule`): the first undecidable enforcing rule whose own
/// checks refuse refuses; else what decides below refuses; else the login is accepted, by the
/// first undecidable enforcing rule (its checks passed) or as `below` says. Every DETAIL says
/// which world refused and which rules could not be decided.
fn both_worlds<'r>(
    undecided: Vec<(RuleView<'r>, String, Option<Verdict>)>,
    below: Verdict,
    below_rule: Option<RuleView<'r>>,
) -> (Verdict, Option<RuleView<'r>>) {
    let note = |skip: Option<&RuleView<'_>>| {
        undecided
            .iter()
            .filter(|(r, ..)| skip.is_none_or(|s| r.number != s.number))
            .map(|(r, cause, as_if)| {
                sentence(&format!(
                    "rule {}:{} ({}) could not be decided ({cause}), so {}",
                    r.file.display(),
                    r.line,
                    r.action,
                    match as_if {
                        None => "it was skipped".to_string(),
                        Some(v) if v.reason().is_none() => {
                            "its checks were required, and they passed".to_string()
                        }
                        Some(_) => "its checks were required".to_string(),
                    }
                ))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    // world "it applies": the first undecidable enforcing rule that refuses
    for (rule, cause, as_if) in &undecided {
        if let Some(Verdict::Refused {
            reason,
            rule_file,
            rule_line,
            detail,
        }) = as_if
        {
            let others = note(Some(rule));
            return (
                Verdict::Refused {
                    reason: *reason,
                    rule_file: rule_file.clone(),
                    rule_line: *rule_line,
                    detail: join(&[
                        detail,
                        &sentence(&format!(
                            "whether the rule applies cannot be decided ({cause}), and it refuses the login as if it applied"
                        )),
                        &others,
                    ]),
                },
                Some(*rule),
            );
        }
    }
    let notes = note(None);
    match below {
        // world "it does not apply": what decides below refuses
        Verdict::Refused {
            reason,
            rule_file,
            rule_line,
            detail,
        } => (
            Verdict::Refused {
                reason,
                rule_file,
                rule_line,
                detail: join(&[
                    &detail,
                    "The rules above this one that could not be decided do not spare the login from it.",
                    &notes,
                ]),
            },
            below_rule,
        ),
        Verdict::Accepted {
            rule_file,
            rule_line,
            detail,
        } => (
            Verdict::Accepted {
                rule_file,
                rule_line,
                detail: join(&[&detail, &notes]),
            },
            below_rule,
        ),
        // not covered or exempt below: the first undecidable enforcing rule (whose checks
        // passed) accepts; with none, PostgreSQL's decision stands as below says
        other => {
            let first = undecided
                .iter()
                .find_map(|(r, _, as_if)| as_if.as_ref().map(|v| (*r, v)));
            match first {
                Some((
                    rule,
                    Verdict::Accepted {
                        rule_file,
                        rule_line,
                        detail,
                    },
                )) => (
                    Verdict::Accepted {
                        rule_file: rule_file.clone(),
                        rule_line: *rule_line,
                        detail: join(&[detail, &notes]),
                    },
                    Some(rule),
                ),
                _ => (other, below_rule),
            }
        }
    }
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A refusal becomes a reported would-be refusal.
fn as_reported(verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Refused {
            reason,
            rule_file,
            rule_line,
            detail,
        } => Verdict::Reported {
            reason,
            rule_file,
            rule_line,
            detail,
        },
        other => other,
    }
}

/// What a `mode=report` rule whose match cannot be decided reports (it never decides).
fn undecided_report(
    rule: &RuleView<'_>,
    attempt: &LoginAttempt,
    addr: IpAddr,
    cause: &str,
) -> Verdict {
    Verdict::Refused {
        reason: Reason::Internal,
        rule_file: rule.file.to_path_buf(),
        rule_line: rule.line,
        detail: format!(
            "{}. {}",
            rule_context(rule, attempt, addr),
            sentence(&format!(
                "whether the rule applies cannot be decided: {cause}"
            ))
        ),
    }
}

/// The verdict of the rule that matched.
fn decide_rule(
    rule: &RuleView<'_>,
    attempt: &LoginAttempt,
    addr: IpAddr,
    client: &ClientName<'_>,
    enabled: MethodSet,
) -> Verdict {
    match rule.action {
        Action::Exempt => Verdict::Exempt {
            rule_file: rule.file.to_path_buf(),
            rule_line: rule.line,
        },
        Action::TwoFactor(method) => check_rule(rule, method, attempt, addr, client, enabled),
    }
}

/// `text` as a sentence of a DETAIL (PostgreSQL's message style): capitalised, ending with a
/// period.
pub fn sentence(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    let mut chars = text.trim().chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn rule_context(rule: &RuleView<'_>, attempt: &LoginAttempt, addr: IpAddr) -> String {
    format!(
        "Rule {}:{} ({}); pg_hba.conf {} ({}); client address {}",
        rule.file.display(),
        rule.line,
        rule.action,
        attempt.hba_position(),
        attempt.hba_method,
        addr
    )
}

fn check_rule(
    rule: &RuleView<'_>,
    method: Method,
    attempt: &LoginAttempt,
    addr: IpAddr,
    client: &ClientName<'_>,
    enabled: MethodSet,
) -> Verdict {
    let mut detail = rule_context(rule, attempt, addr);
    match rule_steps(rule, method, attempt, client, enabled, &mut detail) {
        Ok(checked) => Verdict::Accepted {
            rule_file: rule.file.to_path_buf(),
            rule_line: rule.line,
            detail: format!(
                "{detail}. {}",
                if checked {
                    "The client address matched the SubjectAltName."
                } else {
                    "The certificate has no SubjectAltName address entries."
                }
            ),
        },
        Err(StepRefusal(reason, why)) => Verdict::Refused {
            reason,
            rule_file: rule.file.to_path_buf(),
            rule_line: rule.line,
            detail: format!("{detail}. {}", sentence(&why)),
        },
    }
}

/// A step of [`check_rule`] refusing: the reason, and why (a sentence for the detail).
struct StepRefusal(Reason, String);

/// The steps of a rule, in order; each refuses or lets the next one run. `Ok`: whether the
/// client address was checked against SubjectAltName entries. `detail` gains the
/// certificate's subject and SubjectAltName once it is read.
fn rule_steps(
    rule: &RuleView<'_>,
    method: Method,
    attempt: &LoginAttempt,
    client: &ClientName<'_>,
    enabled: MethodSet,
    detail: &mut String,
) -> Result<bool, StepRefusal> {
    let cert = verified_certificate(attempt)?; // 1
    method_enabled(method, enabled)?; // 2
    first_factor_is_the_base_method(method, attempt)?; // 3
    let cert = cert
        .info()
        .map_err(|e| StepRefusal(Reason::Internal, e.to_string()))?;
    detail.push_str(&format!(
        "; certificate subject \"{}\"; SubjectAltName: {}",
        cert.subject,
        cert.san_text()
    ));
    issuer_is_the_named_one(rule, cert)?; // 3b
    issuer_key_is_the_pinned_one(rule, attempt)?; // 3c
    cert.check_cn(&attempt.user) // 4
        .map_err(|why| StepRefusal(Reason::CnMismatch, why.to_string()))?;
    address_matches(rule, cert, client) // 5
}

/// 1. TLS with a verified client certificate.
fn verified_certificate(attempt: &LoginAttempt) -> Result<&VerifiedCert, StepRefusal> {
    let why = match &attempt.cert {
        PeerCert::Verified(cert) if attempt.ssl_in_use => return Ok(cert),
        PeerCert::Unverified => "the client certificate was not verified",
        _ if !attempt.ssl_in_use => "the connection does not use TLS",
        _ => "the client sent no certificate",
    };
    Err(StepRefusal(Reason::NoCertificate, why.into()))
}

/// 2. The rule's method is enabled.
fn method_enabled(method: Method, enabled: MethodSet) -> Result<(), StepRefusal> {
    if enabled.contains(method) {
        return Ok(());
    }
    Err(StepRefusal(
        Reason::MethodNotEnabled,
        format!("{method} is not listed in pg_twofactor.enabled_extra_auth_methods"),
    ))
}

/// 3. The first factor was the rule's base method.
fn first_factor_is_the_base_method(
    method: Method,
    attempt: &LoginAttempt,
) -> Result<(), StepRefusal> {
    if attempt.hba_method == method.base() {
        return Ok(());
    }
    Err(StepRefusal(
        Reason::BaseMethodMismatch,
        format!(
            "{} requires pg_hba.conf method {}, but the connection matched a {} line",
            method,
            method.base(),
            attempt.hba_method
        ),
    ))
}

/// 3b. The certificate's issuer is the one the rule names (option `issuer=`), compared as
/// PostgreSQL compares distinguished names (`clientname=DN`): the RFC 2253 text, exactly.
fn issuer_is_the_named_one(rule: &RuleView<'_>, cert: &CertInfo) -> Result<(), StepRefusal> {
    let Some(want) = rule.options.issuer else {
        return Ok(());
    };
    let issuer = cert.issuer();
    if issuer == want {
        return Ok(());
    }
    Err(StepRefusal(
        Reason::IssuerMismatch,
        format!(
            "the certificate's issuer is \"{issuer}\", and the rule requires issuer \"{want}\""
        ),
    ))
}

/// 3c. The key of the certificate's issuer is the one the rule pins (option `issuer_key=`):
/// any CA `ssl_ca_file` trusts can sign an intermediate with a given name, not with this key.
fn issuer_key_is_the_pinned_one(
    rule: &RuleView<'_>,
    attempt: &LoginAttempt,
) -> Result<(), StepRefusal> {
    let Some(want) = rule.options.issuer_key else {
        return Ok(());
    };
    if attempt.issuer_key.as_ref() == Some(want) {
        return Ok(());
    }
    let got = match &attempt.issuer_key {
        Some(k) => format!("sha256:{}", hex(k)),
        None => "unknown (the verified chain could not be read)".into(),
    };
    Err(StepRefusal(
        Reason::IssuerKeyMismatch,
        format!(
            "the key of the certificate's issuer is {got}, and the rule requires issuer_key=sha256:{}",
            hex(want)
        ),
    ))
}

/// 5. The client address matches the SubjectAltName entries, when there are any (and with
///    `san=required` there must be some). `Ok`: whether there were.
fn address_matches(
    rule: &RuleView<'_>,
    cert: &CertInfo,
    client: &ClientName<'_>,
) -> Result<bool, StepRefusal> {
    match cert.check_address(client) {
        Err(AddressFailure::Mismatch(why)) => Err(StepRefusal(Reason::AddressMismatch, why)),
        Err(AddressFailure::Undecided(why)) => Err(StepRefusal(Reason::Internal, why)),
        Ok(false) if rule.options.san == SanPolicy::Required => Err(StepRefusal(
            Reason::AddressMismatch,
            "the certificate has no SubjectAltName IP or DNS entries and the rule says san=required"
                .into(),
        )),
        Ok(checked) => Ok(checked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::StaticNetwork;
    use crate::rules::{parse_text, AnyRegex, NoCatalog, OwnedImage, RuleSet, Syntax};
    use std::path::Path;

    /// A certificate is read once however often the checks ask, and its key is the one a
    /// reading for the key alone gives; an unreadable one is an error either way.
    #[test]
    fn a_verified_certificate_is_read_once() {
        let der = include_bytes!("testdata/alice.der").to_vec();
        let alone = CertKey::from_der(&der).unwrap();
        let cert = VerifiedCert::new(der.clone());
        assert_eq!(cert.key().unwrap(), alone, "before any check read it");
        let first: *const CertInfo = cert.info().unwrap();
        assert!(std::ptr::eq(first, cert.info().unwrap()), "read again");
        assert_eq!(cert.key().unwrap(), alone, "after the checks read it");
        assert_eq!(cert.der(), der.as_slice());
        let bad = VerifiedCert::new(b"not a certificate".to_vec());
        assert!(bad.key().is_err());
        assert!(bad.info().is_err());
        assert!(bad.key().is_err(), "after the checks failed to read it");
        // a SubjectAltName the checks cannot read: refused by them, and still the key the
        // certificates seen have always taken from its issuer and serial
        let der = include_bytes!("testdata/handshake-bad-san.der").to_vec();
        let alone = CertKey::from_der(&der).unwrap();
        let cert = VerifiedCert::new(der);
        assert!(cert.info().is_err());
        assert_eq!(cert.key().unwrap(), alone);
    }

    fn attempt(cert: PeerCert, method: BaseMethod) -> LoginAttempt {
        LoginAttempt {
            database: b"test".to_vec(),
            user: b"test1".to_vec(),
            client_addr: Some("127.0.0.1".parse().unwrap()),
            known_host: KnownHost::default(),
            physical_replication: false,
            ssl_in_use: true,
            cert,
            hba_method: method,
            hba_line: 7,
            hba_file: None,
            issuer_key: None,
        }
    }

    fn rules() -> OwnedImage {
        parse_text(
            Path::new("/d/pg_twofactor_hba.conf"),
            b"hostssl test test1 127.0.0.1/32 2f-md5\nhostssl test test1 all 2f-scram-sha-256\nhostssl all +x,bad.example.com bad.example.com 2f-md5\n",
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap()
    }

    fn run(a: &LoginAttempt, enabled: MethodSet) -> Verdict {
        decide(
            rules().view(),
            a,
            enabled,
            &StaticNetwork::default(),
            &NoCatalog,
        )
    }

    fn reason(v: &Verdict) -> Option<Reason> {
        match v {
            Verdict::Refused { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    fn detail(v: &Verdict) -> &str {
        match v {
            Verdict::Refused { detail, .. } => detail,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_certificate_is_refused_with_the_reason_in_the_detail() {
        let enabled = MethodSet::defaults();
        let a = attempt(PeerCert::Unverified, BaseMethod::Md5);
        assert!(
            detail(&run(&a, enabled)).ends_with("The client certificate was not verified."),
            "{:?}",
            run(&a, enabled)
        );
        let mut a = attempt(PeerCert::None, BaseMethod::Md5);
        a.ssl_in_use = false;
        assert!(detail(&run(&a, enabled)).ends_with("The connection does not use TLS."));
        let a = attempt(PeerCert::None, BaseMethod::Md5);
        assert!(detail(&run(&a, enabled)).ends_with("The client sent no certificate."));
    }

    #[test]
    fn checks_run_in_order() {
        // no certificate comes before "method not enabled" (rule 1 is 2f-md5, not enabled)
        let a = attempt(PeerCert::None, BaseMethod::Md5);
        assert_eq!(
            reason(&run(&a, MethodSet::defaults())),
            Some(Reason::NoCertificate)
        );
        let a = attempt(PeerCert::Unverified, BaseMethod::Md5);
        assert_eq!(
            reason(&run(&a, MethodSet::defaults())),
            Some(Reason::NoCertificate)
        );
        let mut a = attempt(
            PeerCert::Verified(VerifiedCert::new(vec![1])),
            BaseMethod::Md5,
        );
        a.ssl_in_use = false;
        assert_eq!(
            reason(&run(&a, MethodSet::defaults())),
            Some(Reason::NoCertificate)
        );
        // garbage DER: the method gate and base check come first, then the parse fails closed
        let a = attempt(
            PeerCert::Verified(VerifiedCert::new(vec![1])),
            BaseMethod::Md5,
        );
        assert_eq!(
            reason(&run(&a, MethodSet::defaults())),
            Some(Reason::MethodNotEnabled)
        );
        let md5 = MethodSet::parse_extra("2f-md5").unwrap();
        let a = attempt(
            PeerCert::Verified(VerifiedCert::new(vec![1])),
            BaseMethod::ScramSha256,
        );
        let v = run(&a, md5);
        assert_eq!(reason(&v), Some(Reason::BaseMethodMismatch));
        let Verdict::Refused {
            detail, rule_line, ..
        } = v
        else {
            unreachable!()
        };
        assert_eq!(rule_line, 1);
        assert_eq!(
            detail,
            "Rule /d/pg_twofactor_hba.conf:1 (2f-md5); pg_hba.conf line 7 (scram-sha-256); client address 127.0.0.1. 2f-md5 requires pg_hba.conf method md5, but the connection matched a scram-sha-256 line."
        );
        let a = attempt(
            PeerCert::Verified(VerifiedCert::new(vec![1])),
            BaseMethod::Md5,
        );
        assert_eq!(reason(&run(&a, md5)), Some(Reason::Internal));
    }

    #[test]
    fn report_rules_observe_and_exemptions_come_first() {
        let rules = parse_text(
            Path::new("/d/r.conf"),
            b"hostssl all test1 127.0.0.2/32 2f-exempt\nhostssl all test1,trial all 2f-scram-sha-256 mode=report\nhostssl all bad.example.com bad.example.com 2f-exempt\nhostssl all test1,other all 2f-scram-sha-256\nhostssl all +x,bad.example.com bad.example.com 2f-scram-sha-256 mode=report\n",
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap();
        let run = |a: &LoginAttempt| {
            decide_all(
                rules.view(),
                a,
                MethodSet::defaults(),
                &StaticNetwork::default(),
                &NoCatalog,
            )
        };
        let report = |d: &Decision<'_>| {
            d.report
                .as_ref()
                .map(|(v, r)| (v.outcome(), v.reason(), r.line))
        };
        // a report rule records its would-be refusal, and the enforcing rule below it still
        // decides: a report rule never switches an enforcing rule off
        let a = attempt(PeerCert::None, BaseMethod::ScramSha256);
        let d = run(&a);
        assert_eq!(
            report(&d),
            Some(("reported", Some(Reason::NoCertificate), 2))
        );
        assert!(d
            .report
            .as_ref()
            .unwrap()
            .0
            .detail()
            .unwrap()
            .ends_with("The client sent no certificate."));
        assert_eq!(
            (d.verdict.outcome(), d.verdict.rule_position().as_str()),
            ("refused", "/d/r.conf:4")
        );
        // with no rule below it, the login goes on (not covered)
        let mut a = attempt(PeerCert::None, BaseMethod::ScramSha256);
        a.user = b"trial".to_vec();
        let d = run(&a);
        assert_eq!(
            report(&d),
            Some(("reported", Some(Reason::NoCertificate), 2))
        );
        assert_eq!(d.verdict, Verdict::NotCovered);
        // the exemption matches first
        let mut a = attempt(PeerCert::None, BaseMethod::ScramSha256);
        a.client_addr = Some("127.0.0.2".parse().unwrap());
        let d = run(&a);
        assert_eq!(
            d.verdict,
            Verdict::Exempt {
                rule_file: "/d/r.conf".into(),
                rule_line: 1
            }
        );
        assert_eq!(report(&d), None);
        // an exemption that cannot be decided is skipped: the rules below decide, and none
        // covers this user (the undecidable report rule at line 5 only reports)
        let mut a = attempt(PeerCert::None, BaseMethod::ScramSha256);
        a.user = b"bad.example.com".to_vec();
        a.known_host = KnownHost {
            name: None,
            resolv: -2,
            errcode: libc::EAI_AGAIN,
        };
        let d = run(&a);
        assert_eq!(d.verdict, Verdict::NotCovered);
        assert_eq!(report(&d), Some(("reported", Some(Reason::Internal), 5)));
        // an undecidable report rule reports, and the search goes on
        let rules = parse_text(
            Path::new("/d/r.conf"),
            b"hostssl all all bad.example.com 2f-scram-sha-256 mode=report\nhostssl all test1 all 2f-scram-sha-256\n",
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap();
        let mut a = attempt(PeerCert::None, BaseMethod::ScramSha256);
        a.known_host = KnownHost {
            name: None,
            resolv: -2,
            errcode: libc::EAI_AGAIN,
        };
        let d = decide_all(
            rules.view(),
            &a,
            MethodSet::defaults(),
            &StaticNetwork::default(),
            &NoCatalog,
        );
        assert_eq!(report(&d), Some(("reported", Some(Reason::Internal), 1)));
        assert_eq!(
            (d.verdict.outcome(), d.verdict.rule_position().as_str()),
            ("refused", "/d/r.conf:2")
        );
    }

    #[test]
    fn uncovered_connections_are_left_alone() {
        let mut a = attempt(PeerCert::None, BaseMethod::Md5);
        a.user = b"someone".to_vec();
        assert_eq!(run(&a, MethodSet::defaults()), Verdict::NotCovered);
        a.client_addr = None;
        a.user = b"test1".to_vec();
        assert_eq!(run(&a, MethodSet::defaults()), Verdict::NotCovered);
    }

    #[test]
    fn an_undecidable_rule_requires_its_checks_with_the_cause() {
        let mut a = attempt(PeerCert::None, BaseMethod::Md5);
        a.user = b"bad.example.com".to_vec();
        a.known_host = KnownHost {
            name: None,
            resolv: -2,
            errcode: libc::EAI_AGAIN,
        };
        let v = run(&a, MethodSet::defaults());
        let Verdict::Refused {
            reason,
            rule_line,
            detail,
            ..
        } = v
        else {
            panic!("{v:?}")
        };
        // as if it applied, its own checks refuse: no certificate
        assert_eq!((reason, rule_line), (Reason::NoCertificate, 3));
        assert!(
            detail.ends_with(". The client sent no certificate. Whether the rule applies cannot be decided (host name lookup for 127.0.0.1 failed: Temporary failure in name resolution), and it refuses the login as if it applied."),
            "{detail}"
        );
        // a definite "no such name" is simply no match
        a.known_host.errcode = libc::EAI_NONAME;
        assert_eq!(run(&a, MethodSet::defaults()), Verdict::NotCovered);
    }

    /// The login PostgreSQL accepted from `addr` as `user` with the `alice.der` certificate
    /// (CN=alice, no SubjectAltName) or none, while the reverse lookup of every address fails.
    fn during_an_outage(user: &str, addr: &str, cert: bool) -> Decision<'static> {
        static RULES: std::sync::OnceLock<OwnedImage> = std::sync::OnceLock::new();
        let rules = RULES.get_or_init(|| {
            parse_text(
                Path::new("/d/r.conf"),
                b"hostssl all all .mon.example.com 2f-exempt
hostssl all alice 10.0.0.0/8 2f-scram-sha-256
hostssl all carol .db.example.com 2f-scram-sha-256
hostssl all carol 10.0.0.0/8 2f-scram-sha-256 san=required
",
                Syntax::Pg15,
                &AnyRegex,
            )
            .into_rule_set()
            .unwrap()
            .image()
            .unwrap()
        });
        let cert = if cert {
            PeerCert::Verified(VerifiedCert::new(
                include_bytes!("testdata/alice.der").to_vec(),
            ))
        } else {
            PeerCert::None
        };
        let mut a = attempt(cert, BaseMethod::ScramSha256);
        a.user = user.as_bytes().to_vec();
        a.client_addr = Some(addr.parse().unwrap());
        let net = StaticNetwork {
            reverse_fails: vec![addr.parse().unwrap()],
            ..StaticNetwork::default()
        };
        decide_all(rules.view(), &a, MethodSet::defaults(), &net, &NoCatalog)
    }

    #[test]
    fn an_outage_locks_out_nobody_no_rule_covers_and_lets_nobody_in_on_a_password() {
        // bob: no rule covers him whether or not the exemption applies
        let d = during_an_outage("bob", "10.1.2.3", false);
        assert_eq!(d.verdict, Verdict::NotCovered);
        // alice with a valid certificate: the rule below the undecidable exemption accepts
        let d = during_an_outage("alice", "10.1.2.3", true);
        assert_eq!(
            (d.verdict.outcome(), d.verdict.rule_position().as_str()),
            ("accepted", "/d/r.conf:2")
        );
        assert!(d.verdict.detail().unwrap().ends_with(
            "Rule /d/r.conf:1 (2f-exempt) could not be decided (reverse lookup of 10.1.2.3 failed: Temporary failure in name resolution), so it was skipped."
        ), "{:?}", d.verdict);
        assert_eq!(
            d.undecided_text(),
            "; undecided: rule /d/r.conf:1 (2f-exempt) skipped (reverse lookup of 10.1.2.3 failed: Temporary failure in name resolution)"
        );
        // alice on her password alone: refused by the rule below, which says why it applied
        let d = during_an_outage("alice", "10.1.2.3", false);
        assert_eq!(
            (
                d.verdict.outcome(),
                d.verdict.reason(),
                d.verdict.rule_position().as_str()
            ),
            ("refused", Some(Reason::NoCertificate), "/d/r.conf:2")
        );
        assert!(d.verdict.detail().unwrap().contains(
            "The client sent no certificate. The rules above this one that could not be decided do not spare the login from it. Rule /d/r.conf:1 (2f-exempt) could not be decided"
        ), "{:?}", d.verdict);
        // outside 10/8 alice is covered only by the exemption: not covered
        let d = during_an_outage("alice", "192.0.2.1", false);
        assert_eq!(d.verdict, Verdict::NotCovered);
        // carol: an undecidable enforcing rule requires its own checks (no certificate: refused
        // by it, as if it applied) ...
        let d = during_an_outage("carol", "192.0.2.1", false);
        assert_eq!(
            (
                d.verdict.outcome(),
                d.verdict.reason(),
                d.verdict.rule_position().as_str()
            ),
            ("refused", Some(Reason::NoCertificate), "/d/r.conf:3")
        );
        assert!(d.verdict.detail().unwrap().contains("and it refuses the login as if it applied. Rule /d/r.conf:1 (2f-exempt) could not be decided"), "{:?}", d.verdict);
        assert_eq!(
            d.undecided_text(),
            "; undecided: rule /d/r.conf:1 (2f-exempt) skipped (reverse lookup of 192.0.2.1 failed: Temporary failure in name resolution), rule /d/r.conf:3 (2f-scram-sha-256) checked as if it applied (reverse lookup of 192.0.2.1 failed: Temporary failure in name resolution)"
        );
        // ... and those of the rule below: alice's certificate has the wrong CN for carol
        let d = during_an_outage("carol", "10.1.2.3", true);
        assert_eq!(
            (d.verdict.reason(), d.verdict.rule_position().as_str()),
            (Some(Reason::CnMismatch), "/d/r.conf:3")
        );
    }

    #[test]
    fn an_undecidable_rule_accepts_only_when_the_rule_below_accepts_too() {
        let rules = parse_text(
            Path::new("/d/r.conf"),
            b"hostssl all alice .db.example.com 2f-scram-sha-256
hostssl all alice 10.0.0.0/8 2f-scram-sha-256 san=required
",
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap();
        let net = StaticNetwork {
            reverse_fails: vec!["10.1.2.3".parse().unwrap(), "192.0.2.1".parse().unwrap()],
            ..StaticNetwork::default()
        };
        let mut a = attempt(
            PeerCert::Verified(VerifiedCert::new(
                include_bytes!("testdata/alice.der").to_vec(),
            )),
            BaseMethod::ScramSha256,
        );
        a.user = b"alice".to_vec();
        // outside 10/8: line 1's checks pass and nothing below covers the login
        a.client_addr = Some("192.0.2.1".parse().unwrap());
        let d = decide_all(rules.view(), &a, MethodSet::defaults(), &net, &NoCatalog);
        assert_eq!(
            (d.verdict.outcome(), d.verdict.rule_position().as_str()),
            ("accepted", "/d/r.conf:1")
        );
        assert!(
            d.verdict
                .detail()
                .unwrap()
                .ends_with("so its checks were required, and they passed."),
            "{:?}",
            d.verdict
        );
        // inside 10/8: line 1's checks pass, but line 2 (san=required) refuses
        a.client_addr = Some("10.1.2.3".parse().unwrap());
        let d = decide_all(rules.view(), &a, MethodSet::defaults(), &net, &NoCatalog);
        assert_eq!(
            (d.verdict.reason(), d.verdict.rule_position().as_str()),
            (Some(Reason::AddressMismatch), "/d/r.conf:2")
        );
    }

    #[test]
    fn reasons_read_as_specified() {
        let msgs: Vec<String> = Reason::ALL
            .iter()
            .map(|r| Verdict::message(b"u", *r))
            .collect();
        assert_eq!(
            msgs,
            vec![
                "two-factor authentication failed for user \"u\": no client certificate",
                "two-factor authentication failed for user \"u\": method not enabled",
                "two-factor authentication failed for user \"u\": pg_hba.conf method does not match the rule",
                "two-factor authentication failed for user \"u\": certificate CN does not match the user name",
                "two-factor authentication failed for user \"u\": client address does not match the certificate",
                "two-factor authentication failed for user \"u\": internal error",
                "two-factor authentication failed for user \"u\": certificate issuer does not match the rule",
                "two-factor authentication failed for user \"u\": certificate issuer key does not match the rule",
            ]
        );
    }

    #[test]
    fn details_are_sentences() {
        assert_eq!(
            sentence("the client sent no certificate"),
            "The client sent no certificate."
        );
        assert_eq!(sentence("2f-md5 is off."), "2f-md5 is off.");
        assert_eq!(sentence(""), ".");
    }

    #[test]
    fn issuer_pins_the_rule_to_one_ca() {
        // alice.der is self-signed: its issuer is CN=alice
        let rules = parse_text(
            Path::new("/d/r.conf"),
            b"hostssl all alice 10.0.0.0/8 2f-scram-sha-256 issuer=\"CN=alice\"\nhostssl all alice all 2f-scram-sha-256 issuer=\"CN=DB Admin CA,O=Example\"\n",
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap();
        let mut a = attempt(
            PeerCert::Verified(VerifiedCert::new(
                include_bytes!("testdata/alice.der").to_vec(),
            )),
            BaseMethod::ScramSha256,
        );
        a.user = b"alice".to_vec();
        a.client_addr = Some("10.1.2.3".parse().unwrap());
        let net = StaticNetwork::default();
        let d = decide_all(rules.view(), &a, MethodSet::defaults(), &net, &NoCatalog);
        assert!(
            matches!(d.verdict, Verdict::Accepted { .. }),
            "{:?}",
            d.verdict
        );
        a.client_addr = Some("192.0.2.1".parse().unwrap());
        let d = decide_all(rules.view(), &a, MethodSet::defaults(), &net, &NoCatalog);
        assert_eq!(
            (d.verdict.reason(), d.verdict.rule_position().as_str()),
            (Some(Reason::IssuerMismatch), "/d/r.conf:2")
        );
        assert!(
            d.verdict.detail().unwrap().ends_with(
                "The certificate's issuer is \"CN=alice\", and the rule requires issuer \"CN=DB Admin CA,O=Example\"."
            ),
            "{:?}",
            d.verdict
        );
        // an empty issuer is an error of the line
        let e = parse_text(
            Path::new("/d/r.conf"),
            b"hostssl all alice all 2f-scram-sha-256 issuer=\n",
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap_err();
        assert_eq!(
            e[0].message(),
            "invalid value for authentication option \"issuer\": \"\" (an issuer's distinguished name, such as \"CN=DB Admin CA,O=Example\")"
        );
    }

    #[test]
    fn issuer_key_pins_the_rule_to_one_key() {
        // alice.der is self-signed: its issuer's key is its own
        let alice = include_bytes!("testdata/alice.der").to_vec();
        let key = crate::cert::spki_sha256(&alice).unwrap();
        let other = [0x5a; 32];
        let rules = parse_text(
            Path::new("/d/r.conf"),
            format!(
                "hostssl all alice 10.0.0.0/8 2f-scram-sha-256 issuer_key=sha256:{}\nhostssl all alice all 2f-scram-sha-256 issuer_key=sha256:{}\n",
                hex(&key),
                hex(&other)
            )
            .as_bytes(),
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap()
        .image()
        .unwrap();
        assert!(rules.view().pins_issuer_key());
        let mut a = attempt(
            PeerCert::Verified(VerifiedCert::new(alice)),
            BaseMethod::ScramSha256,
        );
        a.user = b"alice".to_vec();
        a.client_addr = Some("10.1.2.3".parse().unwrap());
        let net = StaticNetwork::default();
        let decide = |a: &LoginAttempt| {
            decide_all(rules.view(), a, MethodSet::defaults(), &net, &NoCatalog).verdict
        };
        // the key not read: refused, never taken as a match
        assert_eq!(decide(&a).reason(), Some(Reason::IssuerKeyMismatch));
        assert!(
            decide(&a).detail().unwrap().contains("is unknown"),
            "{:?}",
            decide(&a)
        );
        a.issuer_key = Some(key);
        assert!(
            matches!(decide(&a), Verdict::Accepted { .. }),
            "{:?}",
            decide(&a)
        );
        // the second rule pins another key
        a.client_addr = Some("192.0.2.1".parse().unwrap());
        let v = decide(&a);
        assert_eq!(
            (v.reason(), v.rule_position().as_str()),
            (Some(Reason::IssuerKeyMismatch), "/d/r.conf:2")
        );
        assert!(
            v.detail().unwrap().ends_with(&format!(
                "The key of the certificate's issuer is sha256:{}, and the rule requires issuer_key=sha256:{}.",
                hex(&key),
                hex(&other)
            )),
            "{v:?}"
        );
        // a rule set without the option never reads the chain
        let plain = RuleSet::new("/d/r.conf".into(), Vec::new())
            .image()
            .unwrap();
        assert!(!plain.view().pins_issuer_key());
    }
}
