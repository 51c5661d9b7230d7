//! Cross-checks of the rules file with `pg_hba.conf` and the server settings: the findings of
//! `pg_twofactor_config_problems`. Pure logic; the extension's `sql::config_problems` feeds it the rules file as it
//! is on disk, the rows of `pg_hba_file_rules` and the settings.
//!
//! Column comparisons follow `pg_hba.conf`'s meaning where the answer is certain (literal
//! names, `all`, CIDR networks) and assume "may match" otherwise (`+role`, regular
//! expressions, host names, `samehost`): a finding about overlap may be a false alarm, a
//! finding about shadowing never is. `pg_hba_file_rules` shows tokens without their quotes,
//! so a quoted `"all"` (a database or role named all) in `pg_hba.conf` reads as the keyword
//! here; the findings about `pg_hba.conf` lines assume nobody names a database or role after a
//! keyword.

use crate::address::{bits, AddrSpec};
use crate::methods::{Method, MethodSet};
use crate::rules::{Action, DbSpec, Mode, Rule, RuleError, UserSpec};
use std::net::IpAddr;

/// A `pg_hba.conf` line as `pg_hba_file_rules` shows it.
#[derive(Debug, Clone)]
pub struct HbaFileRule {
    pub file: String,
    pub line: usize,
    pub conn_type: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    pub address: Option<String>,
    pub netmask: Option<String>,
    pub method: String,
    /// The line's options as `pg_hba_file_rules` shows them (`clientcert=verify-ca`, ...).
    pub options: Vec<String>,
    /// The error `pg_hba_file_rules` reports for the line (then the other fields are empty).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The file and line the finding is about (`None` for server settings).
    pub file: Option<String>,
    pub line: Option<usize>,
    pub problem: String,
    pub detail: String,
}

/// The server settings the rules depend on.
pub struct ServerSettings {
    pub ssl: bool,
    /// `pg_twofactor.client_reason`.
    pub client_reason: bool,
    /// The server's data directory.
    pub data_directory: Option<String>,
    pub ssl_ca_file: Option<String>,
    /// The subjects (RFC 2253, [`crate::dn`]) of the certificates in `ssl_ca_file`; `None`
    /// when it is not set or could not be read.
    pub ca_names: Option<Vec<String>>,
    /// The SubjectPublicKeyInfo SHA-256s ([`crate::cert::spki_sha256`]) of the certificates in
    /// `ssl_ca_file`; `None` when it is not set or could not be read.
    pub ca_keys: Option<Vec<[u8; 32]>>,
    pub enabled: MethodSet,
    /// `pg_twofactor.handshake_check`.
    pub handshake_check: bool,
    /// `shared_preload_libraries`, in order, as written.
    pub preload_libraries: Vec<String>,
}

/// Modules whose login hook delays or counts failed logins: loaded after pg_twofactor, their
/// hook runs before pg_twofactor's and never sees a two-factor refusal.
pub const FAILED_LOGIN_MODULES: [&str; 3] = ["auth_delay", "credcheck", "pg_auth_mon"];

fn finding(severity: Severity, rule: &Rule, problem: &str, detail: String) -> Finding {
    Finding {
        severity,
        file: Some(rule.file.display().to_string()),
        line: Some(rule.line),
        problem: problem.into(),
        detail,
    }
}

fn pos(rule: &Rule) -> String {
    format!("{}:{}", rule.file.display(), rule.line)
}

/// A database token of `pg_hba_file_rules` as a [`DbSpec`].
fn db_spec(token: &str) -> DbSpec {
    match token {
        "all" => DbSpec::All,
        "sameuser" => DbSpec::SameUser,
        "samerole" | "samegroup" => DbSpec::SameRole,
        "replication" => DbSpec::Replication,
        t if t.starts_with('/') => DbSpec::Regex(t.as_bytes()[1..].to_vec()),
        t => DbSpec::Name(unquote(t).into_bytes()),
    }
}

fn user_spec(token: &str) -> UserSpec {
    match token {
        "all" => UserSpec::All,
        t if t.starts_with('+') => UserSpec::MemberOf(t.as_bytes()[1..].to_vec()),
        t if t.starts_with('/') => UserSpec::Regex(t.as_bytes()[1..].to_vec()),
        t => UserSpec::Name(unquote(t).into_bytes()),
    }
}

fn unquote(t: &str) -> String {
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        t[1..t.len() - 1].replace("\"\"", "\"")
    } else {
        t.to_string()
    }
}

fn addr_spec(address: Option<&str>, netmask: Option<&str>) -> AddrSpec {
    match (address, netmask) {
        (None, _) | (Some("all"), _) => AddrSpec::All,
        (Some("samehost"), _) => AddrSpec::SameHost,
        (Some("samenet"), _) => AddrSpec::SameNet,
        (Some(a), m) => match (a.parse::<IpAddr>(), m.map(str::parse::<IpAddr>)) {
            (Ok(addr), Some(Ok(mask))) => AddrSpec::Net { addr, mask },
            _ => AddrSpec::Host(a.as_bytes().to_vec()),
        },
    }
}

/// Whether some client address can match both.
fn addr_overlap(a: &AddrSpec, b: &AddrSpec) -> bool {
    match (a, b) {
        (AddrSpec::Net { addr: x, mask: mx }, AddrSpec::Net { addr: y, mask: my }) => {
            let ((v4x, x), (v4y, y)) = (bits(*x), bits(*y));
            v4x == v4y && (x ^ y) & bits(*mx).1 & bits(*my).1 == 0
        }
        _ => true,
    }
}

/// Whether every client address `inner` matches, `outer` matches too (certain answers only).
fn addr_covers(outer: &AddrSpec, inner: &AddrSpec) -> bool {
    match (outer, inner) {
        (AddrSpec::All, _) => true,
        (AddrSpec::Net { addr: x, mask: mx }, AddrSpec::Net { addr: y, mask: my }) => {
            let ((v4x, x), (v4y, y), mx, my) = (bits(*x), bits(*y), bits(*mx).1, bits(*my).1);
            v4x == v4y && mx & !my == 0 && (x ^ y) & mx == 0
        }
        (a, b) => a == b,
    }
}

fn literal_db(d: &DbSpec) -> Option<&[u8]> {
    match d {
        DbSpec::Name(n) => Some(n),
        _ => None,
    }
}

fn literal_user(u: &UserSpec) -> Option<&[u8]> {
    match u {
        UserSpec::Name(n) => Some(n),
        _ => None,
    }
}

/// Whether a connection can match both lists: only literal names on both sides can say no.
fn names_overlap<T>(a: &[T], b: &[T], literal: impl Fn(&T) -> Option<&[u8]>) -> bool {
    let (la, lb): (Vec<_>, Vec<_>) = (
        a.iter().map(&literal).collect(),
        b.iter().map(&literal).collect(),
    );
    if la.iter().any(Option::is_none) || lb.iter().any(Option::is_none) {
        return true;
    }
    la.iter().any(|x| lb.contains(x))
}

/// Whether a connection can match both database columns: `replication` (physical
/// replication) and the other entries (every other connection) never meet.
fn dbs_overlap(a: &[DbSpec], b: &[DbSpec]) -> bool {
    let replication = |l: &[DbSpec]| l.contains(&DbSpec::Replication);
    let others = |l: &[DbSpec]| -> Vec<DbSpec> {
        l.iter()
            .filter(|d| **d != DbSpec::Replication)
            .cloned()
            .collect()
    };
    let (oa, ob) = (others(a), others(b));
    (replication(a) && replication(b))
        || (!oa.is_empty() && !ob.is_empty() && names_overlap(&oa, &ob, literal_db))
}

fn dbs_cover(outer: &[DbSpec], inner: &[DbSpec]) -> bool {
    inner.iter().all(|d| {
        outer
            .iter()
            .any(|o| o == d || (*o == DbSpec::All && *d != DbSpec::Replication))
    })
}

fn users_cover(outer: &[UserSpec], inner: &[UserSpec]) -> bool {
    inner
        .iter()
        .all(|u| outer.iter().any(|o| o == u || *o == UserSpec::All))
}

/// Whether every address the column matches is a loopback address.
fn is_loopback(a: &AddrSpec) -> bool {
    match a {
        AddrSpec::Net {
            addr: IpAddr::V4(a),
            mask: IpAddr::V4(m),
        } => u32::from(*m) & 0xff00_0000 == 0xff00_0000 && a.octets()[0] == 127,
        AddrSpec::Net {
            addr: IpAddr::V6(a),
            mask: IpAddr::V6(m),
        } => u128::from(*m) == u128::MAX && *a == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    }
}

/// The findings about the server's settings (TLS, `client_reason`) and where the rules files
/// are.
fn settings_findings(
    rules: Result<&[Rule], &[RuleError]>,
    settings: &ServerSettings,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if !settings.ssl {
        out.push(Finding {
            severity: Severity::Error,
            file: None,
            line: None,
            problem: "ssl is off".into(),
            detail: "Every login a pg_twofactor rule covers is refused: there is no TLS, so no client certificate. Set ssl = on.".into(),
        });
    }
    if settings.ssl_ca_file.is_none() {
        out.push(Finding {
            severity: Severity::Error,
            file: None,
            line: None,
            problem: "ssl_ca_file is not set".into(),
            detail: "The server does not ask for client certificates, so every login a pg_twofactor rule covers is refused. Set ssl_ca_file to the CA that issues client certificates.".into(),
        });
    }
    if let (Some(data), Ok(rules)) = (&settings.data_directory, &rules) {
        let data = crate::rules::token::canonical_path(std::path::Path::new(data));
        let mut files: Vec<&std::path::Path> = rules.iter().map(|r| r.file.as_path()).collect();
        files.dedup();
        for file in files {
            if crate::rules::token::canonical_path(file).starts_with(&data) {
                out.push(Finding {
                    severity: Severity::Warning,
                    file: Some(file.display().to_string()),
                    line: None,
                    problem: "rules file inside the data directory".into(),
                    detail: format!(
                        "pg_basebackup copies it to a new standby and pg_rewind overwrites it with the source server's copy, so a node's rules can change behind the deployment of the rules files. Keep the rules files outside {} and point pg_twofactor.hba_file there.",
                        data.display()
                    ),
                });
            }
        }
    }
    out.extend(preload_order_finding(&settings.preload_libraries));
    if let Ok(rules) = rules {
        out.extend(handshake_finding(rules, settings));
    }
    if settings.client_reason {
        out.push(Finding {
            severity: Severity::Warning,
            file: None,
            line: None,
            problem: "pg_twofactor.client_reason is on".into(),
            detail: "A client refused by pg_twofactor is told the reason, and pg_twofactor decides after PostgreSQL's password check: anyone without a certificate can tell a right password (a two-factor refusal) from a wrong one (PostgreSQL's own failure) and so test passwords online. Set it off unless only trusted clients can reach the server.".into(),
        });
    }
    out
}

/// A module's name as `shared_preload_libraries` gives it (`$libdir/auth_delay.so`,
/// `auth_delay`): the file name without directory and `.so`.
fn module_name(entry: &str) -> &str {
    let base = entry.trim().rsplit('/').next().unwrap_or("");
    base.strip_suffix(".so").unwrap_or(base)
}

/// `auth_delay` (or another module of [`FAILED_LOGIN_MODULES`]) loaded after pg_twofactor:
/// its login hook runs first, calls pg_twofactor's, which ends the process on a refusal, so it
/// never delays or counts a two-factor refusal.
fn preload_order_finding(libraries: &[String]) -> Option<Finding> {
    let late = libraries
        .iter()
        .map(|l| module_name(l))
        .skip_while(|n| *n != "pg_twofactor")
        .find(|n| FAILED_LOGIN_MODULES.contains(n))?;
    Some(Finding {
        severity: Severity::Warning,
        file: None,
        line: None,
        problem: format!("{late} is loaded after pg_twofactor"),
        detail: format!(
            "shared_preload_libraries names {late} after pg_twofactor, so {late}'s login hook runs first and pg_twofactor's refusal ends the connection before {late} sees it: two-factor refusals are neither delayed nor counted. Put pg_twofactor last (shared_preload_libraries = '{late}, pg_twofactor') and restart."
        ),
    })
}

/// Enforcing rules while `pg_twofactor.handshake_check` is off: a certificate bound to other
/// addresses reaches the password exchange, and SCRAM's final message tells its holder whether
/// the password was right before the rule refuses.
fn handshake_finding(rules: &[Rule], settings: &ServerSettings) -> Option<Finding> {
    if settings.handshake_check {
        return None;
    }
    let enforcing: Vec<&Rule> = rules
        .iter()
        .filter(|r| matches!(r.action, Action::TwoFactor(_)) && r.options.mode != Mode::Report)
        .collect();
    let first = enforcing.first()?;
    Some(Finding {
        severity: Severity::Warning,
        file: Some(first.file.display().to_string()),
        line: Some(first.line),
        problem: "pg_twofactor.handshake_check is off".into(),
        detail: format!(
            "{} rule(s), the first at {}, check a certificate's SubjectAltName addresses only after PostgreSQL's password exchange: a client whose certificate is bound to other addresses can still test passwords (SCRAM's final message tells a right one). Set pg_twofactor.handshake_check = on to refuse it in the TLS handshake.",
            enforcing.len(),
            pos(first)
        ),
    })
}

/// Whether a `pg_hba.conf` line makes PostgreSQL require a verified client certificate before
/// its method runs (`clientcert=verify-ca` or `verify-full`, or the `cert` method).
fn requires_certificate(h: &HbaFileRule) -> bool {
    h.method == "cert"
        || h.options
            .iter()
            .any(|o| o == "clientcert=verify-ca" || o == "clientcert=verify-full")
}

/// The findings about each rule: shadowed by an earlier rule, or at odds with the `pg_hba.conf`
/// lines that can cover the same logins, or with the methods enabled.
/// `issuer_key=` that no certificate of `ssl_ca_file` has: right only when clients send the
/// issuing intermediate themselves; otherwise every login the rule covers is refused.
fn issuer_key_finding(rule: &Rule, settings: &ServerSettings) -> Option<Finding> {
    let (want, keys) = (
        rule.options.issuer_key.as_ref()?,
        settings.ca_keys.as_ref()?,
    );
    if keys.contains(want) {
        return None;
    }
    Some(finding(
        Severity::Warning,
        rule,
        "issuer_key= matches no CA of ssl_ca_file",
        format!(
            "No certificate in ssl_ca_file has the key sha256:{}, so unless clients send an intermediate CA certificate with that key, every login this rule covers is refused (\"certificate issuer key does not match the rule\"). The pin of a CA certificate is what `openssl x509 -in CA.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum` prints.",
            crate::rules::token::hex(want)
        ),
    ))
}

/// What each rule's own checks find, rule by rule, one function per check, in the order the
/// configuration check lists them.
fn rule_findings(rules: &[Rule], hba: &[HbaFileRule], settings: &ServerSettings) -> Vec<Finding> {
    let hba = hba_lines(hba);
    let mut out = Vec::new();
    // each pg_hba.conf line is named once, for the first rule that reaches it
    let (mut no_clientcert_lines, mut clear_text_lines) = (Vec::new(), Vec::new());
    for (i, rule) in rules.iter().enumerate() {
        out.extend(issuer_key_finding(rule, settings));
        out.extend(issuer_name_finding(rule, settings));
        out.extend(shadowed_finding(rule, &rules[..i]));
        let Action::TwoFactor(method) = rule.action else {
            out.push(exemption_finding(rule));
            continue;
        };
        out.extend(report_mode_finding(rule));
        out.extend(method_not_enabled_finding(rule, method, settings));
        out.extend(password_beyond_loopback_finding(rule, method));
        let tls_lines = reached(rule, &hba, TLS_LINE_TYPES);
        out.extend(unsatisfiable_finding(rule, method, &tls_lines));
        out.extend(without_clientcert_findings(
            rule,
            &tls_lines,
            &mut no_clientcert_lines,
        ));
        for h in reached(rule, &hba, CLEAR_TEXT_LINE_TYPES) {
            if h.0.method != "reject" && first_time(&mut clear_text_lines, h.0) {
                out.push(clear_text(rule, h.0));
            }
        }
    }
    out
}

/// The lines of `pg_hba_file_rules` without errors, with their columns read as specs.
fn hba_lines(hba: &[HbaFileRule]) -> Vec<HbaLine<'_>> {
    hba.iter()
        .filter(|h| h.error.is_none())
        .map(|h| {
            (
                h,
                h.databases.iter().map(|d| db_spec(d)).collect(),
                h.users.iter().map(|u| user_spec(u)).collect(),
                addr_spec(h.address.as_deref(), h.netmask.as_deref()),
            )
        })
        .collect()
}

/// `issuer=` naming no CA of `ssl_ca_file`: every login the rule covers is refused.
fn issuer_name_finding(rule: &Rule, settings: &ServerSettings) -> Option<Finding> {
    let (issuer, names) = (rule.options.issuer.as_ref()?, settings.ca_names.as_ref()?);
    if names.contains(issuer) {
        return None;
    }
    let held = if names.is_empty() {
        "no certificate".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(finding(
        Severity::Error,
        rule,
        "issuer= names no CA of ssl_ca_file",
        format!(
            "No certificate in ssl_ca_file has the subject \"{issuer}\" (it holds {held}), so every login this rule covers is refused (\"certificate issuer does not match the rule\"). Write the issuer as `openssl x509 -noout -subject -nameopt RFC2253` prints the CA's certificate."
        ),
    ))
}

/// An earlier rule matching every connection this one would: it never decides anything.
fn shadowed_finding(rule: &Rule, earlier: &[Rule]) -> Option<Finding> {
    let e = earlier.iter().find(|e| {
        dbs_cover(&e.databases, &rule.databases)
            && users_cover(&e.users, &rule.users)
            && addr_covers(&e.address, &rule.address)
    })?;
    Some(finding(
        Severity::Warning,
        rule,
        "rule is shadowed by an earlier rule",
        format!(
            "Rule {} matches every connection this rule would match, so this rule never decides anything.",
            pos(e)
        ),
    ))
}

fn exemption_finding(rule: &Rule) -> Finding {
    finding(
        Severity::Info,
        rule,
        "exemption",
        "Connections that match this 2f-exempt rule first are left to PostgreSQL: no client certificate is required.".into(),
    )
}

fn report_mode_finding(rule: &Rule) -> Option<Finding> {
    (rule.options.mode == Mode::Report).then(|| {
        finding(
            Severity::Info,
            rule,
            "rule in report mode",
            "mode=report: failed checks are logged at WARNING and counted, and the login goes on. Remove the option to enforce the rule.".into(),
        )
    })
}

fn method_not_enabled_finding(
    rule: &Rule,
    method: Method,
    settings: &ServerSettings,
) -> Option<Finding> {
    (!settings.enabled.contains(method)).then(|| {
        finding(
            Severity::Warning,
            rule,
            "method not enabled",
            format!(
                "{method} is not listed in pg_twofactor.enabled_extra_auth_methods, so every login this rule covers is refused."
            ),
        )
    })
}

fn password_beyond_loopback_finding(rule: &Rule, method: Method) -> Option<Finding> {
    (method == Method::Password && !is_loopback(&rule.address)).then(|| {
        finding(
            Severity::Warning,
            rule,
            "2f-password for addresses other than loopback",
            "The password method sends the password itself (inside TLS) and the server sees it; prefer 2f-scram-sha-256 for clients on other hosts.".into(),
        )
    })
}

/// No TLS line the rule's connections reach has the rule's base method: each login is refused.
fn unsatisfiable_finding(
    rule: &Rule,
    method: Method,
    tls_lines: &[&HbaLine<'_>],
) -> Option<Finding> {
    let base = method.base().to_string();
    (!tls_lines.iter().any(|l| l.0.method == base)).then(|| {
        finding(
            Severity::Warning,
            rule,
            "no pg_hba.conf line can satisfy the rule",
            format!(
                "No host or hostssl line of pg_hba.conf with method {base} is reached by the connections this rule covers, so each of their logins is refused."
            ),
        )
    })
}

/// The TLS lines an enforcing rule reaches that do not require a client certificate
/// themselves (each line once, `seen`).
fn without_clientcert_findings(
    rule: &Rule,
    tls_lines: &[&HbaLine<'_>],
    seen: &mut Vec<(String, usize)>,
) -> Vec<Finding> {
    if rule.options.mode == Mode::Report {
        return Vec::new();
    }
    tls_lines
        .iter()
        .map(|l| l.0)
        .filter(|h| h.method != "reject" && !requires_certificate(h) && first_time(seen, h))
        .map(|h| without_clientcert(rule, h))
        .collect()
}

/// A `pg_hba.conf` line with its columns read as the rules' own.
type HbaLine<'h> = (&'h HbaFileRule, Vec<DbSpec>, Vec<UserSpec>, AddrSpec);

/// The line types a TLS connection can match (hostnogssenc: any connection without GSSAPI
/// encryption).
const TLS_LINE_TYPES: &[&str] = &["host", "hostssl", "hostnogssenc"];
/// The line types a connection without TLS can match.
const CLEAR_TEXT_LINE_TYPES: &[&str] = &["host", "hostnossl", "hostnogssenc"];

/// The lines of `types` that connections the rule covers can reach, in `pg_hba.conf`'s order:
/// each that may match one of them, up to the first that certainly matches all of them
/// (`pg_hba.conf` is first-match too: nothing after that line is reached).
fn reached<'a, 'h>(rule: &Rule, hba: &'a [HbaLine<'h>], types: &[&str]) -> Vec<&'a HbaLine<'h>> {
    let mut out = Vec::new();
    for line in hba
        .iter()
        .filter(|l| types.contains(&l.0.conn_type.as_str()))
    {
        let (_, dbs, users, addr) = line;
        if dbs_overlap(&rule.databases, dbs)
            && names_overlap(&rule.users, users, literal_user)
            && addr_overlap(&rule.address, addr)
        {
            out.push(line);
        }
        if dbs_cover(dbs, &rule.databases)
            && users_cover(users, &rule.users)
            && addr_covers(addr, &rule.address)
        {
            break;
        }
    }
    out
}

/// Whether `h` is reported for the first time (one finding per line, whichever rule reaches it
/// first).
fn first_time(seen: &mut Vec<(String, usize)>, h: &HbaFileRule) -> bool {
    let key = (h.file.clone(), h.line);
    if seen.contains(&key) {
        return false;
    }
    seen.push(key);
    true
}

/// A line a covered login reaches with no certificate required before the password.
fn without_clientcert(rule: &Rule, h: &HbaFileRule) -> Finding {
    Finding {
        severity: Severity::Warning,
        file: Some(h.file.clone()),
        line: Some(h.line),
        problem: "covered login without clientcert: a client without a certificate can test passwords".into(),
        detail: format!(
            "A login that rule {} covers can match this {} line, which does not require a client certificate: a client without one is asked for the password, and pg_twofactor refuses it only afterwards (SCRAM's final message tells a right password). Add clientcert=verify-ca (or verify-full) to the line; on a host line, use hostssl.",
            pos(rule),
            h.conn_type
        ),
    }
}

/// A line a covered login reaches without TLS.
fn clear_text(rule: &Rule, h: &HbaFileRule) -> Finding {
    Finding {
        severity: Severity::Warning,
        file: Some(h.file.clone()),
        line: Some(h.line),
        problem: "pg_hba.conf line accepts connections without TLS for a covered login".into(),
        detail: format!(
            "A login that rule {} covers can match this {} line without TLS: libpq's default sslmode=prefer retries without TLS when a TLS login is refused, and the password exchange then happens in the clear before pg_twofactor refuses it. Use hostssl, or put a hostnossl ... reject line for these users above it.",
            pos(rule),
            h.conn_type
        ),
    }
}

/// Every finding, errors first.
pub fn findings(
    rules: Result<&[Rule], &[RuleError]>,
    hba: &[HbaFileRule],
    settings: &ServerSettings,
) -> Vec<Finding> {
    let mut out = settings_findings(rules, settings);
    let rules = match rules {
        Ok(r) => r,
        Err(errors) => {
            out.extend(errors.iter().map(|e| Finding {
                severity: Severity::Error,
                file: Some(e.file.display().to_string()),
                line: e.line,
                problem: "the rules file has an error".into(),
                detail: format!(
                    "{}. A reload keeps the previous rules in force.",
                    e.message()
                ),
            }));
            out.sort_by_key(|f| f.severity);
            return out;
        }
    };
    out.extend(hba.iter().filter_map(|h| {
        h.error.as_ref().map(|e| Finding {
            severity: Severity::Error,
            file: Some(h.file.clone()),
            line: Some(h.line),
            problem: "pg_hba.conf has an error".into(),
            detail: format!(
                "{e}. PostgreSQL does not load a pg_hba.conf with errors (a reload keeps the previous one), so the checks below are about a file that is not in force."
            ),
        })
    }));
    out.extend(rule_findings(rules, hba, settings));
    // errors first, then warnings, then information, each in file order (a stable sort)
    out.sort_by_key(|f| f.severity);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{parse_text, AnyRegex, Syntax};
    use std::path::Path;

    fn net(text: &str) -> AddrSpec {
        let (a, m) = text.split_once(' ').unwrap();
        addr_spec(Some(a), Some(m))
    }

    #[test]
    fn address_columns_compared_as_sets_of_clients() {
        assert_eq!(addr_spec(None, None), AddrSpec::All);
        assert_eq!(addr_spec(Some("all"), None), AddrSpec::All);
        assert_eq!(addr_spec(Some("samehost"), None), AddrSpec::SameHost);
        assert_eq!(addr_spec(Some("samenet"), None), AddrSpec::SameNet);
        assert_eq!(
            addr_spec(Some("db.example.com"), None),
            AddrSpec::Host(b"db.example.com".to_vec())
        );
        assert_eq!(
            addr_spec(Some("10.0.0.0"), None),
            AddrSpec::Host(b"10.0.0.0".to_vec())
        );
        let n8 = net("10.0.0.0 255.0.0.0");
        let n16 = net("10.1.0.0 255.255.0.0");
        let other16 = net("10.2.0.0 255.255.0.0");
        let v6 = net("::1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        // overlap: some client in both
        assert!(addr_overlap(&n8, &n16) && addr_overlap(&n16, &n8));
        assert!(!addr_overlap(&n16, &other16));
        assert!(!addr_overlap(&n8, &v6));
        assert!(addr_overlap(&AddrSpec::SameHost, &n16));
        // cover: every client of the inner one in the outer one
        assert!(addr_covers(&n8, &n16));
        assert!(!addr_covers(&n16, &n8));
        assert!(!addr_covers(&n16, &other16));
        assert!(!addr_covers(&n8, &v6));
        assert!(addr_covers(&AddrSpec::All, &v6));
        assert!(!addr_covers(&n8, &AddrSpec::All));
        assert!(addr_covers(&AddrSpec::SameNet, &AddrSpec::SameNet));
        assert!(!addr_covers(&AddrSpec::SameNet, &AddrSpec::SameHost));
        // loopback: every address of the column
        assert!(is_loopback(&net("127.0.0.0 255.0.0.0")));
        assert!(is_loopback(&net("127.1.2.3 255.255.255.255")));
        assert!(!is_loopback(&net("127.0.0.0 254.0.0.0")));
        assert!(!is_loopback(&net("10.0.0.0 255.0.0.0")));
        assert!(is_loopback(&v6));
        assert!(!is_loopback(&net(
            "::1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"
        )));
        assert!(!is_loopback(&net(
            "::2 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        )));
    }

    #[test]
    fn database_and_user_columns_compared_as_sets() {
        use crate::rules::{DbSpec as D, UserSpec as U};
        let name = |s: &str| D::Name(s.as_bytes().to_vec());
        let user = |s: &str| U::Name(s.as_bytes().to_vec());
        // replication connections and the others never meet
        assert!(!dbs_overlap(&[D::Replication], &[D::All]));
        assert!(dbs_overlap(&[D::Replication], &[D::Replication, name("a")]));
        assert!(dbs_overlap(&[name("a"), name("b")], &[name("b")]));
        assert!(!dbs_overlap(&[name("a")], &[name("b")]));
        assert!(dbs_overlap(&[name("a")], &[D::SameUser]));
        assert!(!dbs_overlap(&[name("a")], &[]));
        // all covers every database but replication
        assert!(dbs_cover(&[D::All], &[name("a"), D::SameRole]));
        assert!(!dbs_cover(&[D::All], &[D::Replication]));
        assert!(dbs_cover(&[name("a"), name("b")], &[name("b")]));
        assert!(!dbs_cover(&[name("a")], &[name("a"), name("b")]));
        assert!(users_cover(
            &[U::All],
            &[user("x"), U::MemberOf(b"g".to_vec())]
        ));
        assert!(users_cover(&[user("x"), user("y")], &[user("y")]));
        assert!(!users_cover(&[user("x")], &[user("y")]));
        assert!(names_overlap(&[user("x")], &[U::All], literal_user));
        assert!(!names_overlap(&[user("x")], &[user("y")], literal_user));
    }

    #[test]
    fn pg_hba_file_rules_columns_read_back_as_specs() {
        use crate::rules::{DbSpec as D, UserSpec as U};
        let b = |s: &str| s.as_bytes().to_vec();
        for (token, spec) in [
            ("all", D::All),
            ("sameuser", D::SameUser),
            ("samerole", D::SameRole),
            ("samegroup", D::SameRole),
            ("replication", D::Replication),
            ("/^db", D::Regex(b("^db"))),
            ("app", D::Name(b("app"))),
            ("\"all\"", D::Name(b("all"))),
            ("\"a\"\"b\"", D::Name(b("a\"b"))),
        ] {
            assert_eq!(db_spec(token), spec, "{token}");
        }
        for (token, spec) in [
            ("all", U::All),
            ("+admins", U::MemberOf(b("admins"))),
            ("/^a", U::Regex(b("^a"))),
            ("alice", U::Name(b("alice"))),
            ("\"+plus\"", U::Name(b("+plus"))),
        ] {
            assert_eq!(user_spec(token), spec, "{token}");
        }
        // only a token both starting and ending with a quote is quoted
        for t in ["\"ab", "ab\"", "\"", "a"] {
            assert_eq!(unquote(t), t);
        }
    }

    fn hba(lines: &[(&str, &str, &str, &str, &str)]) -> Vec<HbaFileRule> {
        lines
            .iter()
            .enumerate()
            .map(|(i, (t, d, u, a, method_and_options))| {
                let mut words = method_and_options.split_whitespace();
                let m = words.next().unwrap_or_default();
                let (address, netmask) = match a.split_once('/') {
                    Some((addr, mask)) => (Some(addr.to_string()), Some(mask.to_string())),
                    None => (Some(a.to_string()), None),
                };
                HbaFileRule {
                    file: "/d/pg_hba.conf".into(),
                    line: i + 1,
                    conn_type: t.to_string(),
                    databases: d.split(',').map(str::to_string).collect(),
                    users: u.split(',').map(str::to_string).collect(),
                    address,
                    netmask,
                    method: m.to_string(),
                    options: words.map(str::to_string).collect(),
                    error: None,
                }
            })
            .collect()
    }

    fn run(rules: &str, hba: &[HbaFileRule], settings: &ServerSettings) -> Vec<String> {
        let set = parse_text(
            Path::new("/d/r.conf"),
            rules.as_bytes(),
            Syntax::Pg15,
            &AnyRegex,
        )
        .into_rule_set()
        .unwrap();
        findings(Ok(&set.rules), hba, settings)
            .into_iter()
            .map(|f| {
                format!(
                    "{} {}:{} {}",
                    f.severity.name(),
                    f.file.unwrap_or_default(),
                    f.line.unwrap_or(0),
                    f.problem
                )
            })
            .collect()
    }

    fn good() -> ServerSettings {
        ServerSettings {
            ssl: true,
            client_reason: false,
            data_directory: None,
            ssl_ca_file: Some("root.crt".into()),
            ca_names: None,
            ca_keys: None,
            enabled: MethodSet::defaults(),
            handshake_check: true,
            preload_libraries: vec!["pg_twofactor".into()],
        }
    }

    const NET: &str = "10.0.0.0/255.0.0.0";
    const SCRAM_CA: &str = "scram-sha-256 clientcert=verify-ca";

    #[test]
    fn a_sound_configuration_has_no_findings() {
        let h = hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]);
        assert_eq!(
            run(
                "hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n",
                &h,
                &good()
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_finding_and_what_clears_it() {
        let h = hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]);
        // settings
        let bad = ServerSettings {
            ssl: false,
            client_reason: true,
            data_directory: None,
            ssl_ca_file: None,
            ca_names: None,
            ca_keys: None,
            enabled: MethodSet::defaults(),
            handshake_check: true,
            preload_libraries: vec![],
        };
        assert_eq!(
            run("hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n", &h, &bad),
            vec![
                "error :0 ssl is off",
                "error :0 ssl_ca_file is not set",
                "warning :0 pg_twofactor.client_reason is on"
            ]
        );
        // the rules file inside the data directory (/d here), and outside it
        let inside = ServerSettings {
            data_directory: Some("/d/./".into()),
            ..good()
        };
        assert_eq!(
            run(
                "hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n",
                &h,
                &inside
            ),
            vec!["warning /d/r.conf:0 rules file inside the data directory"]
        );
        let outside = ServerSettings {
            data_directory: Some("/data".into()),
            ..good()
        };
        assert!(run(
            "hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n",
            &h,
            &outside
        )
        .is_empty());
        // shadowed (and cleared by narrowing the earlier rule)
        let shadow = "hostssl all all 10.0.0.0/8 2f-scram-sha-256\nhostssl db alice 10.1.0.0/16 2f-scram-sha-256\n";
        assert_eq!(
            run(shadow, &h, &good()),
            vec!["warning /d/r.conf:2 rule is shadowed by an earlier rule"]
        );
        assert!(run(&shadow.replacen("all all", "all bob", 1), &h, &good()).is_empty());
        // +role or a host name never count as certain cover
        assert!(run(
            "hostssl all +admins all 2f-scram-sha-256\nhostssl all alice all 2f-scram-sha-256\n",
            &h,
            &good()
        )
        .is_empty());
        // `all` does not cover replication
        assert!(run(
            "hostssl all all all 2f-scram-sha-256\nhostssl replication all all 2f-scram-sha-256\n",
            &hba(&[("hostssl", "all,replication", "all", "all", SCRAM_CA)]),
            &good()
        )
        .is_empty());
        // gated method, and 2f-password away from loopback
        let pw = "hostssl all alice 10.1.0.0/16 2f-password\n";
        let pw_hba = hba(&[(
            "hostssl",
            "all",
            "all",
            NET,
            "password clientcert=verify-ca",
        )]);
        assert_eq!(
            run(pw, &pw_hba, &good()),
            vec![
                "warning /d/r.conf:1 method not enabled",
                "warning /d/r.conf:1 2f-password for addresses other than loopback"
            ]
        );
        let enabled = ServerSettings {
            enabled: MethodSet::parse_extra("2f-password").unwrap(),
            ..good()
        };
        let local_pw = "hostssl all alice 127.0.0.1/32 2f-password\n";
        let local_hba = hba(&[(
            "hostssl",
            "all",
            "all",
            "127.0.0.0/255.0.0.0",
            "password clientcert=verify-full",
        )]);
        assert!(run(local_pw, &local_hba, &enabled).is_empty());
        // no usable pg_hba.conf line: wrong method, or no overlapping address
        assert_eq!(
            run(
                "hostssl all alice 10.1.0.0/16 2f-md5\n",
                &h,
                &ServerSettings {
                    enabled: MethodSet::parse_extra("2f-md5").unwrap(),
                    ..good()
                }
            ),
            vec!["warning /d/r.conf:1 no pg_hba.conf line can satisfy the rule"]
        );
        assert_eq!(
            run(
                "hostssl all alice 192.168.0.0/16 2f-scram-sha-256\n",
                &h,
                &good()
            ),
            vec!["warning /d/r.conf:1 no pg_hba.conf line can satisfy the rule"]
        );
        // first match in pg_hba.conf: a password line for alice above the scram line
        let shadowed_hba = hba(&[
            (
                "hostssl",
                "all",
                "alice",
                NET,
                "password clientcert=verify-ca",
            ),
            ("hostssl", "all", "all", NET, SCRAM_CA),
        ]);
        assert_eq!(
            run(
                "hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n",
                &shadowed_hba,
                &good()
            ),
            vec!["warning /d/r.conf:1 no pg_hba.conf line can satisfy the rule"]
        );
        // a reject line above a clear-text line stops it
        let guarded = hba(&[
            ("hostssl", "all", "all", NET, SCRAM_CA),
            ("hostnossl", "all", "alice", "all", "reject"),
            ("host", "all", "all", NET, "scram-sha-256"),
        ]);
        assert!(run(
            "hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n",
            &guarded,
            &good()
        )
        .is_empty());
        // a clear-text line a covered login can match (and one it cannot)
        let with_host = hba(&[
            ("hostssl", "all", "all", NET, SCRAM_CA),
            ("host", "all", "bob", NET, "scram-sha-256"),
            ("hostnossl", "all", "bob", NET, "reject"),
            ("host", "all", "all", NET, "scram-sha-256"),
        ]);
        assert_eq!(
            run("hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n", &with_host, &good()),
            vec!["warning /d/pg_hba.conf:4 pg_hba.conf line accepts connections without TLS for a covered login"]
        );
        // hostnogssenc lines take connections without TLS too
        let nogss = hba(&[
            ("hostssl", "all", "all", NET, SCRAM_CA),
            ("hostnogssenc", "all", "all", NET, "scram-sha-256"),
        ]);
        assert_eq!(
            run("hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n", &nogss, &good()),
            vec!["warning /d/pg_hba.conf:2 pg_hba.conf line accepts connections without TLS for a covered login"]
        );
        // `all` never matches physical replication: a replication rule needs a replication line
        let repl = hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]);
        assert_eq!(
            run(
                "hostssl replication alice 10.1.0.0/16 2f-scram-sha-256\n",
                &repl,
                &good()
            ),
            vec!["warning /d/r.conf:1 no pg_hba.conf line can satisfy the rule"]
        );
        // a pg_hba.conf with an error
        let mut broken = hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]);
        broken.push(HbaFileRule {
            error: Some("invalid authentication method \"scram\"".into()),
            ..broken[0].clone()
        });
        broken[1].line = 2;
        assert_eq!(
            run(
                "hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n",
                &broken,
                &good()
            ),
            vec!["error /d/pg_hba.conf:2 pg_hba.conf has an error"]
        );
        // information: report mode and exemptions
        assert_eq!(
            run("hostssl all all 10.9.9.9/32 2f-exempt\nhostssl all alice 10.1.0.0/16 2f-scram-sha-256 mode=report\n", &h, &good()),
            vec!["info /d/r.conf:1 exemption", "info /d/r.conf:2 rule in report mode"]
        );
    }

    #[test]
    fn what_lets_a_client_without_the_right_certificate_test_passwords() {
        let rule = "hostssl all alice 10.1.0.0/16 2f-scram-sha-256\n";
        // (a) a covered login can reach a line that asks for no certificate
        let plain = hba(&[("hostssl", "all", "all", NET, "scram-sha-256")]);
        assert_eq!(
            run(rule, &plain, &good()),
            vec!["warning /d/pg_hba.conf:1 covered login without clientcert: a client without a certificate can test passwords"]
        );
        let full = hba(&[(
            "hostssl",
            "all",
            "all",
            NET,
            "scram-sha-256 clientcert=verify-full",
        )]);
        assert!(run(rule, &full, &good()).is_empty());
        // only the lines a covered login reaches: one below a line that covers the rule is not
        let below = hba(&[
            ("hostssl", "all", "all", NET, SCRAM_CA),
            ("hostssl", "all", "all", NET, "scram-sha-256"),
        ]);
        assert!(run(rule, &below, &good()).is_empty());
        // a line for other users, and a reject line, let no covered login test a password
        let others = hba(&[
            ("hostssl", "all", "bob", NET, "scram-sha-256"),
            ("hostssl", "all", "carol", NET, "reject"),
            ("hostssl", "all", "all", NET, SCRAM_CA),
        ]);
        assert!(run(rule, &others, &good()).is_empty());
        // report-mode rules and exemptions enforce nothing: no such warning
        assert_eq!(
            run(
                "hostssl all alice 10.1.0.0/16 2f-scram-sha-256 mode=report\n",
                &plain,
                &good()
            ),
            vec!["info /d/r.conf:1 rule in report mode"]
        );
        // (b) the handshake check is off while rules enforce
        let off = ServerSettings {
            handshake_check: false,
            ..good()
        };
        let two = format!("{rule}hostssl all bob 10.1.0.0/16 2f-scram-sha-256\n");
        let found = findings(
            Ok(&parse_text(
                Path::new("/d/r.conf"),
                two.as_bytes(),
                Syntax::Pg15,
                &AnyRegex,
            )
            .into_rule_set()
            .unwrap()
            .rules),
            &hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]),
            &off,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].problem.as_str(), found[0].line),
            ("pg_twofactor.handshake_check is off", Some(1))
        );
        assert!(found[0]
            .detail
            .starts_with("2 rule(s), the first at /d/r.conf:1,"));
        // nothing enforces: nothing to warn about
        assert!(run(
            "hostssl all alice 10.1.0.0/16 2f-scram-sha-256 mode=report\n",
            &hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]),
            &off
        )
        .iter()
        .all(|f| !f.contains("handshake_check")));
        // one finding per pg_hba.conf line, however many rules reach it
        assert_eq!(
            run(&two, &plain, &good()),
            vec!["warning /d/pg_hba.conf:1 covered login without clientcert: a client without a certificate can test passwords"]
        );
        // (c) a module that delays or counts failed logins, loaded after pg_twofactor
        let late = ServerSettings {
            preload_libraries: vec!["pg_twofactor".into(), "$libdir/auth_delay.so".into()],
            ..good()
        };
        assert_eq!(
            run(
                rule,
                &hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]),
                &late
            ),
            vec!["warning :0 auth_delay is loaded after pg_twofactor"]
        );
        for fine in [
            vec!["auth_delay", "pg_twofactor"],
            vec!["credcheck", "pg_stat_statements", "pg_twofactor"],
            vec!["pg_twofactor", "pg_stat_statements"],
        ] {
            let s = ServerSettings {
                preload_libraries: fine.iter().map(|l| l.to_string()).collect(),
                ..good()
            };
            assert!(
                run(rule, &hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]), &s).is_empty(),
                "{fine:?}"
            );
        }
        let credcheck = ServerSettings {
            preload_libraries: vec!["pg_twofactor".into(), " credcheck".into()],
            ..good()
        };
        assert_eq!(
            run(
                rule,
                &hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]),
                &credcheck
            ),
            vec!["warning :0 credcheck is loaded after pg_twofactor"]
        );
    }

    #[test]
    fn issuer_key_should_be_a_key_of_ssl_ca_file() {
        let h = hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]);
        let pin = [7u8; 32];
        let rule = format!(
            "hostssl all alice 10.1.0.0/16 2f-scram-sha-256 issuer_key=sha256:{}\n",
            crate::rules::token::hex(&pin)
        );
        let with = |keys: &[[u8; 32]]| ServerSettings {
            ca_keys: Some(keys.to_vec()),
            ..good()
        };
        assert_eq!(
            run(&rule, &h, &with(&[[8u8; 32]])),
            vec!["warning /d/r.conf:1 issuer_key= matches no CA of ssl_ca_file"]
        );
        assert!(run(&rule, &h, &with(&[[8u8; 32], pin])).is_empty());
        assert!(run(&rule, &h, &good()).is_empty());
    }

    #[test]
    fn issuer_must_name_a_ca_of_ssl_ca_file() {
        let h = hba(&[("hostssl", "all", "all", NET, SCRAM_CA)]);
        let rule = "hostssl all alice 10.1.0.0/16 2f-scram-sha-256 issuer=\"CN=Team CA\"\n";
        let with = |names: &[&str]| ServerSettings {
            ca_names: Some(names.iter().map(|n| n.to_string()).collect()),
            ..good()
        };
        assert_eq!(
            run(rule, &h, &with(&["CN=Other CA"])),
            vec!["error /d/r.conf:1 issuer= names no CA of ssl_ca_file"]
        );
        assert!(run(rule, &h, &with(&["CN=Other CA", "CN=Team CA"])).is_empty());
        // ssl_ca_file unreadable: nothing to compare with, no finding
        assert!(run(rule, &h, &good()).is_empty());
    }

    #[test]
    fn rules_file_errors_are_findings() {
        let set = parse_text(
            Path::new("/d/r.conf"),
            b"hostssl all all all 2f-nothing\n",
            Syntax::Pg15,
            &AnyRegex,
        );
        let errors = set.errors();
        let f = findings(Err(&errors), &[], &good());
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].severity, f[0].line), (Severity::Error, Some(1)));
        assert!(f[0]
            .detail
            .starts_with("invalid authentication method \"2f-nothing\""));
    }

    #[test]
    fn network_overlap_and_cover_are_exact() {
        let net = |a: &str, m: &str| AddrSpec::Net {
            addr: a.parse().unwrap(),
            mask: m.parse().unwrap(),
        };
        let big = net("10.0.0.0", "255.0.0.0");
        let small = net("10.1.0.0", "255.255.0.0");
        let other = net("192.168.0.0", "255.255.0.0");
        assert!(addr_overlap(&big, &small) && addr_overlap(&small, &big));
        assert!(!addr_overlap(&big, &other));
        assert!(addr_covers(&big, &small) && !addr_covers(&small, &big));
        assert!(
            !addr_overlap(&big, &net("::", "::")),
            "families never match each other"
        );
        assert!(is_loopback(&net("127.0.0.1", "255.255.255.255")));
        assert!(!is_loopback(&net("127.0.0.0", "254.0.0.0")));
        assert!(is_loopback(&net(
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        )));
    }
}
