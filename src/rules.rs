//! The rules file: `pg_hba.conf` syntax, parsing and first-match lookup.
//!
//! ```text
//! # TYPE   DATABASE  USER   ADDRESS        METHOD            [OPTIONS]
//! hostssl  test      test1  127.0.0.1/32   2f-scram-sha-256  san=required
//! ```
//!
//! Tokens follow `pg_hba.conf`: `#` comments, double quotes (a quoted keyword is a plain name,
//! `""` is a literal quote), comma-separated lists, a trailing backslash continues a record on
//! the next line, and `@file` in the database and user columns includes names from another
//! file (relative to the including file's directory).

use crate::address::{self, AddrSpec, ClientName};
use crate::methods::Method;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One token of a field, remembering whether it was quoted (quoted keywords are plain names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
}

impl Token {
    fn is_keyword(&self, kw: &str) -> bool {
        !self.quoted && self.text == kw
    }
}

/// The fields of one record, each a list of tokens.
pub type Fields = Vec<Vec<Token>>;

/// An error in the rules file, naming the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    /// 0 when the error is about the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{} (file \"{}\")", self.message, self.file.display())
        } else {
            write!(
                f,
                "{} (line {} of configuration file \"{}\")",
                self.message,
                self.line,
                self.file.display()
            )
        }
    }
}

/// The DATABASE column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSpec {
    All,
    SameUser,
    SameRole,
    Replication,
    Name(String),
}

/// The USER column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSpec {
    All,
    /// `+role`: members of the role (directly or indirectly).
    MemberOf(String),
    Name(String),
}

/// Whether a certificate must carry SubjectAltName address entries (option `san=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanPolicy {
    /// No IP/DNS entries: the address check is skipped (Pangolin's behaviour). The default.
    Optional,
    /// No IP/DNS entries: the login is refused.
    Required,
}

/// A parsed rule line.
#[derive(Debug, Clone)]
pub struct Rule {
    pub line: usize,
    pub databases: Vec<DbSpec>,
    pub users: Vec<UserSpec>,
    pub address: AddrSpec,
    pub method: Method,
    pub san: SanPolicy,
    /// The columns as the view shows them.
    pub display: RuleDisplay,
}

/// The columns of a rule as `pg_twofactor_rules` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDisplay {
    pub conn_type: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    pub address: Option<String>,
    pub netmask: Option<String>,
    pub method: String,
    pub options: Vec<String>,
}

/// What the rule lookup needs to know about a connection.
pub struct Connection<'a> {
    pub database: &'a str,
    pub user: &'a str,
    /// A physical replication connection (only the `replication` keyword matches it).
    pub physical_replication: bool,
    pub client: &'a ClientName<'a>,
}

/// Role membership, answered by the catalog in the server.
pub trait Roles {
    /// Whether `user` is a member of `role`, directly or indirectly (not through superuser).
    fn is_member(&self, user: &str, role: &str) -> bool;
}

/// The result of reading a rules file: every record, parsed or with its error.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: PathBuf,
    /// Set when the file could not be read at all.
    pub file_error: Option<RuleError>,
    pub lines: Vec<(usize, Result<Rule, RuleError>)>,
}

/// A valid rules file, ready for lookups.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub path: PathBuf,
    pub rules: Vec<Rule>,
    /// For each user name, the (ascending) indexes of the rules that name it literally.
    by_user: HashMap<String, Vec<usize>>,
    /// The (ascending) indexes of rules that can match any user (`all`, `+role`).
    any_user: Vec<usize>,
}

const MAX_INCLUDE_DEPTH: usize = 10;

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

/// Splits one logical line into fields of tokens, following PostgreSQL's `next_token`.
pub fn tokenize_line(text: &str) -> Result<Fields, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut fields: Vec<Vec<Token>> = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    loop {
        while i < chars.len() && is_blank(chars[i]) {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '#' {
            break;
        }
        let mut buf = String::new();
        let (mut in_quote, mut was_quote, mut saw_quote, mut comma) = (false, false, false, false);
        while i < chars.len() && (!is_blank(chars[i]) || in_quote) {
            let c = chars[i];
            if c == '#' && !in_quote {
                break;
            }
            i += 1;
            if c == ',' && !in_quote {
                comma = true;
                break;
            }
            if c != '"' || was_quote {
                buf.push(c);
            }
            was_quote = in_quote && c == '"' && !was_quote;
            if c == '"' {
                in_quote = !in_quote;
                saw_quote = true;
            }
        }
        if in_quote {
            return Err("unterminated quoted string".into());
        }
        if !buf.is_empty() || saw_quote {
            current.push(Token {
                text: buf,
                quoted: saw_quote,
            });
        } else if comma {
            return Err("empty entry in a comma-separated list".into());
        }
        if !comma {
            if !current.is_empty() {
                fields.push(std::mem::take(&mut current));
            }
            if i < chars.len() && chars[i] == '#' {
                break;
            }
        }
    }
    if !current.is_empty() {
        return Err("comma at end of line".into());
    }
    Ok(fields)
}

/// Splits a file into logical lines (joining backslash continuations) with their first line
/// number, and tokenizes each.
pub fn tokenize_text(text: &str) -> Vec<(usize, Result<Fields, String>)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (idx, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (start, mut acc) = pending.take().unwrap_or((idx + 1, String::new()));
        if let Some(cont) = raw.strip_suffix('\\') {
            acc.push_str(cont);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(raw);
        let toks = tokenize_line(&acc);
        if !matches!(&toks, Ok(f) if f.is_empty()) {
            out.push((start, toks));
        }
    }
    if let Some((start, acc)) = pending {
        let toks = tokenize_line(&acc);
        if !matches!(&toks, Ok(f) if f.is_empty()) {
            out.push((start, toks));
        }
    }
    out
}

/// Replaces `@file` tokens by the tokens of that file (recursively, relative to `dir`).
fn expand_includes(tokens: &[Token], dir: &Path, depth: usize) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    for t in tokens {
        match t.text.strip_prefix('@') {
            Some(name) if !t.quoted && !name.is_empty() => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(format!(
                        "could not open file \"@{name}\": maximum nesting depth exceeded"
                    ));
                }
                let path = dir.join(name);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "could not open secondary authentication file \"@{name}\" as \"{}\": {e}",
                        path.display()
                    )
                })?;
                let inner_dir = path.parent().unwrap_or(dir).to_path_buf();
                for (line, toks) in tokenize_text(&text) {
                    let fields = toks.map_err(|e| {
                        format!("{e} in line {line} of file \"{}\"", path.display())
                    })?;
                    for field in fields {
                        out.extend(expand_includes(&field, &inner_dir, depth + 1)?);
                    }
                }
            }
            _ => out.push(t.clone()),
        }
    }
    Ok(out)
}

fn single<'a>(
    field: Option<&'a Vec<Token>>,
    missing: &str,
    what: &str,
) -> Result<&'a Token, String> {
    let field = field.ok_or_else(|| format!("end-of-line before {missing}"))?;
    if field.len() > 1 {
        return Err(format!("multiple values specified for {what}"));
    }
    Ok(&field[0])
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    // Accept a zone-less IPv6 or dotted IPv4 address, as getaddrinfo(AI_NUMERICHOST) would.
    s.parse::<IpAddr>().ok()
}

/// Parses the ADDRESS (and, when needed, the separate netmask) columns; returns the spec, the
/// number of fields consumed, and the display text.
fn parse_address(
    fields: &[Vec<Token>],
) -> Result<(AddrSpec, usize, Option<String>, Option<String>), String> {
    let tok = single(fields.first(), "IP address specification", "host address")?;
    let text = tok.text.as_str();
    if tok.is_keyword("all") {
        return Ok((AddrSpec::All, 1, Some("all".into()), None));
    }
    if tok.is_keyword("samehost") {
        return Ok((AddrSpec::SameHost, 1, Some("samehost".into()), None));
    }
    if tok.is_keyword("samenet") {
        return Ok((AddrSpec::SameNet, 1, Some("samenet".into()), None));
    }
    if let Some((addr_s, bits_s)) = text.split_once('/') {
        let addr = match parse_ip(addr_s) {
            Some(a) => a,
            None if !address::looks_numeric(addr_s) && address::is_host_name(addr_s) => {
                return Err(format!(
                    "specifying both host name and CIDR mask is invalid: \"{text}\""
                ))
            }
            None => return Err(format!("invalid IP address \"{addr_s}\"")),
        };
        let mask = bits_s
            .parse::<u32>()
            .ok()
            .filter(|_| bits_s.chars().all(|c| c.is_ascii_digit()))
            .and_then(|b| address::mask_from_prefix(addr.is_ipv4(), b))
            .ok_or_else(|| format!("invalid CIDR mask in address \"{text}\""))?;
        return Ok((
            AddrSpec::Net { addr, mask },
            1,
            Some(addr.to_string()),
            Some(mask.to_string()),
        ));
    }
    if let Some(addr) = parse_ip(text) {
        let mask_tok = single(fields.get(1), "netmask specification", "netmask")?;
        let mask = parse_ip(&mask_tok.text)
            .ok_or_else(|| format!("invalid IP mask \"{}\"", mask_tok.text))?;
        if mask.is_ipv4() != addr.is_ipv4() {
            return Err("IP address and mask do not match".into());
        }
        return Ok((
            AddrSpec::Net { addr, mask },
            2,
            Some(addr.to_string()),
            Some(mask.to_string()),
        ));
    }
    if address::looks_numeric(text) {
        return Err(format!("invalid IP address \"{text}\""));
    }
    if !address::is_host_name(text.trim_start_matches('.')) {
        return Err(format!("invalid IP address or host name \"{text}\""));
    }
    Ok((
        AddrSpec::Host(text.to_string()),
        1,
        Some(text.to_string()),
        None,
    ))
}

fn display_token(t: &Token) -> String {
    if t.quoted {
        format!("\"{}\"", t.text.replace('"', "\"\""))
    } else {
        t.text.clone()
    }
}

/// Parses one record into a rule (PostgreSQL's `parse_hba_line`, for pg_twofactor's columns).
pub fn parse_record(fields: &[Vec<Token>], dir: &Path, line: usize) -> Result<Rule, String> {
    let conn = single(fields.first(), "connection type", "connection type")?;
    match conn.text.as_str() {
        "hostssl" if !conn.quoted => {}
        "local" | "host" | "hostnossl" | "hostgssenc" | "hostnogssenc" if !conn.quoted => {
            return Err(format!(
                "connection type \"{}\" cannot carry a two-factor method; pg_twofactor rules must be hostssl",
                conn.text
            ))
        }
        other => return Err(format!("invalid connection type \"{other}\"")),
    }

    let db_field = fields
        .get(1)
        .ok_or("end-of-line before database specification")?;
    let db_tokens = expand_includes(db_field, dir, 0)?;
    let databases = db_tokens
        .iter()
        .map(|t| match () {
            _ if t.is_keyword("all") => DbSpec::All,
            _ if t.is_keyword("sameuser") => DbSpec::SameUser,
            _ if t.is_keyword("samerole") || t.is_keyword("samegroup") => DbSpec::SameRole,
            _ if t.is_keyword("replication") => DbSpec::Replication,
            _ => DbSpec::Name(t.text.clone()),
        })
        .collect();

    let user_field = fields
        .get(2)
        .ok_or("end-of-line before role specification")?;
    let user_tokens = expand_includes(user_field, dir, 0)?;
    let users = user_tokens
        .iter()
        .map(|t| match t.text.strip_prefix('+') {
            _ if t.is_keyword("all") => UserSpec::All,
            Some(role) if !t.quoted => UserSpec::MemberOf(role.to_string()),
            _ => UserSpec::Name(t.text.clone()),
        })
        .collect();

    let (address, used, addr_text, mask_text) = parse_address(&fields[3.min(fields.len())..])?;
    let rest = &fields[3 + used..];

    let method_tok = single(rest.first(), "authentication method", "authentication type")?;
    let method = Method::from_name(&method_tok.text).ok_or_else(|| {
        let known: Vec<&str> = Method::ALL.iter().map(|(_, n, _)| *n).collect();
        if Method::from_name(&format!("2f-{}", method_tok.text)).is_some() {
            format!(
                "authentication method \"{0}\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-{0}\"",
                method_tok.text
            )
        } else {
            format!(
                "invalid authentication method \"{}\" (expected one of {})",
                method_tok.text,
                known.join(", ")
            )
        }
    })?;

    let mut san = None;
    let mut options = Vec::new();
    for field in &rest[1..] {
        for opt in field {
            let (name, value) = opt.text.split_once('=').ok_or_else(|| {
                format!(
                    "authentication option not in name=value format: {}",
                    opt.text
                )
            })?;
            match name {
                "san" => {
                    if san.is_some() {
                        return Err("authentication option \"san\" specified more than once".into());
                    }
                    san = Some(match value {
                        "required" => SanPolicy::Required,
                        "optional" => SanPolicy::Optional,
                        _ => {
                            return Err(format!(
                                "invalid value for authentication option \"san\": \"{value}\" (expected \"required\" or \"optional\")"
                            ))
                        }
                    });
                }
                _ => {
                    return Err(format!(
                        "unrecognized authentication option name: \"{name}\""
                    ))
                }
            }
            options.push(opt.text.clone());
        }
    }

    Ok(Rule {
        line,
        databases,
        users,
        address,
        method,
        san: san.unwrap_or(SanPolicy::Optional),
        display: RuleDisplay {
            conn_type: "hostssl".into(),
            databases: db_tokens.iter().map(display_token).collect(),
            users: user_tokens.iter().map(display_token).collect(),
            address: addr_text,
            netmask: mask_text,
            method: method.name().into(),
            options,
        },
    })
}

/// Parses file contents; `path` names the file in errors and anchors `@file` includes.
pub fn parse_text(path: &Path, text: &str) -> ParsedFile {
    let dir = path.parent().unwrap_or(Path::new("."));
    let lines = tokenize_text(text)
        .into_iter()
        .map(|(line, toks)| {
            let rule = toks.and_then(|fields| parse_record(&fields, dir, line));
            let rule = rule.map_err(|message| RuleError {
                file: path.to_path_buf(),
                line,
                message,
            });
            (line, rule)
        })
        .collect();
    ParsedFile {
        path: path.to_path_buf(),
        file_error: None,
        lines,
    }
}

/// Reads and parses a rules file from disk.
pub fn parse_file(path: &Path) -> ParsedFile {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse_text(path, &text),
            Err(e) => ParsedFile {
                path: path.to_path_buf(),
                file_error: Some(RuleError {
                    file: path.to_path_buf(),
                    line: text_line_of(e.as_bytes(), e.utf8_error().valid_up_to()),
                    message: "invalid byte sequence: the rules file must be UTF-8".into(),
                }),
                lines: Vec::new(),
            },
        },
        Err(e) => ParsedFile {
            path: path.to_path_buf(),
            file_error: Some(RuleError {
                file: path.to_path_buf(),
                line: 0,
                message: format!("could not open pg_twofactor rules file: {e}"),
            }),
            lines: Vec::new(),
        },
    }
}

fn text_line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset].iter().filter(|b| **b == b'\n').count()
}

impl ParsedFile {
    /// All errors, in file order.
    pub fn errors(&self) -> Vec<RuleError> {
        self.file_error
            .iter()
            .cloned()
            .chain(
                self.lines
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().err().cloned()),
            )
            .collect()
    }

    /// The rule set when the file is valid, every error otherwise.
    pub fn into_rule_set(self) -> Result<RuleSet, Vec<RuleError>> {
        let errors = self.errors();
        if !errors.is_empty() {
            return Err(errors);
        }
        let rules = self.lines.into_iter().filter_map(|(_, r)| r.ok()).collect();
        Ok(RuleSet::new(self.path, rules))
    }
}

impl Rule {
    fn matches_database(&self, c: &Connection<'_>, roles: &dyn Roles) -> bool {
        self.databases.iter().any(|d| {
            if c.physical_replication {
                return *d == DbSpec::Replication;
            }
            match d {
                DbSpec::All => true,
                DbSpec::SameUser => c.database == c.user,
                DbSpec::SameRole => roles.is_member(c.user, c.database),
                DbSpec::Replication => false,
                DbSpec::Name(n) => n == c.database,
            }
        })
    }

    fn matches_user(&self, c: &Connection<'_>, roles: &dyn Roles) -> bool {
        self.users.iter().any(|u| match u {
            UserSpec::All => true,
            UserSpec::MemberOf(role) => roles.is_member(c.user, role),
            UserSpec::Name(n) => n == c.user,
        })
    }

    /// Whether the rule applies to the connection (same order of checks as `check_hba`).
    pub fn matches(&self, c: &Connection<'_>, roles: &dyn Roles) -> bool {
        self.address.matches(c.client)
            && self.matches_database(c, roles)
            && self.matches_user(c, roles)
    }
}

impl RuleSet {
    /// A rule set over `rules` (in file order), indexed by the user names they mention.
    pub fn new(path: PathBuf, rules: Vec<Rule>) -> RuleSet {
        let mut by_user: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_user = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.users.iter().all(|u| matches!(u, UserSpec::Name(_))) {
                for u in &rule.users {
                    if let UserSpec::Name(n) = u {
                        let list = by_user.entry(n.clone()).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
            } else {
                any_user.push(i);
            }
        }
        RuleSet {
            path,
            rules,
            by_user,
            any_user,
        }
    }

    pub fn empty(path: PathBuf) -> RuleSet {
        RuleSet::new(path, Vec::new())
    }

    /// The first rule that applies to the connection. Only rules that can match the user are
    /// examined (those naming it, and those for `all` or a role), in file order.
    pub fn find(&self, c: &Connection<'_>, roles: &dyn Roles) -> Option<&Rule> {
        let named = self.by_user.get(c.user).map(Vec::as_slice).unwrap_or(&[]);
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (named.get(i), self.any_user.get(j)) {
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, None) => return None,
            };
            let rule = &self.rules[next];
            if rule.matches(c, roles) {
                return Some(rule);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::StaticNetwork;

    fn tok(text: &str, quoted: bool) -> Token {
        Token {
            text: text.into(),
            quoted,
        }
    }

    fn parse_one(line: &str) -> Result<Rule, String> {
        let fields = tokenize_line(line)?;
        parse_record(&fields, Path::new("/nonexistent"), 1)
    }

    fn err(line: &str) -> String {
        parse_one(line).unwrap_err()
    }

    #[test]
    fn tokenizer_follows_pg_hba() {
        let f = tokenize_line("hostssl  a,\"b c\", d  all # comment").unwrap();
        assert_eq!(
            f,
            vec![
                vec![tok("hostssl", false)],
                vec![tok("a", false), tok("b c", true), tok("d", false)],
                vec![tok("all", false)],
            ]
        );
        let f = tokenize_line("\"say \"\"hi\"\"\"").unwrap();
        assert_eq!(f, vec![vec![tok("say \"hi\"", true)]]);
        assert_eq!(
            tokenize_line("# only a comment").unwrap(),
            Vec::<Vec<Token>>::new()
        );
        assert_eq!(tokenize_line("a#b").unwrap(), vec![vec![tok("a", false)]]);
        assert_eq!(tokenize_line("\"\"").unwrap(), vec![vec![tok("", true)]]);
        assert_eq!(
            tokenize_line("\"open").unwrap_err(),
            "unterminated quoted string"
        );
        assert_eq!(
            tokenize_line("a, ,b").unwrap_err(),
            "empty entry in a comma-separated list"
        );
        assert_eq!(tokenize_line("a,").unwrap_err(), "comma at end of line");
    }

    #[test]
    fn continuation_lines_keep_first_line_number() {
        let t =
            tokenize_text("# header\n\nhostssl all \\\n  all all 2f-md5\nhostssl x y all 2f-md5\n");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].0, 3);
        assert_eq!(t[0].1.as_ref().unwrap().len(), 5);
        assert_eq!(t[1].0, 5);
    }

    #[test]
    fn parses_a_full_rule() {
        let r = parse_one(
            "hostssl test,\"all\" test1,+admins 127.0.0.1/32 2f-scram-sha-256 san=required",
        )
        .unwrap();
        assert_eq!(
            r.databases,
            vec![DbSpec::Name("test".into()), DbSpec::Name("all".into())]
        );
        assert_eq!(
            r.users,
            vec![
                UserSpec::Name("test1".into()),
                UserSpec::MemberOf("admins".into())
            ]
        );
        assert_eq!(r.method, Method::ScramSha256);
        assert_eq!(r.san, SanPolicy::Required);
        assert_eq!(r.display.address.as_deref(), Some("127.0.0.1"));
        assert_eq!(r.display.netmask.as_deref(), Some("255.255.255.255"));
        assert_eq!(r.display.databases, vec!["test", "\"all\""]);
        assert_eq!(r.display.options, vec!["san=required"]);
        let r = parse_one("hostssl all all 10.0.0.0 255.0.0.0 2f-md5").unwrap();
        assert_eq!(
            r.address,
            AddrSpec::Net {
                addr: "10.0.0.0".parse().unwrap(),
                mask: "255.0.0.0".parse().unwrap()
            }
        );
        assert_eq!(r.san, SanPolicy::Optional);
        let r = parse_one("hostssl all all db.example.com 2f-ldap").unwrap();
        assert_eq!(r.address, AddrSpec::Host("db.example.com".into()));
        let r = parse_one("hostssl all all ::1/128 2f-password").unwrap();
        assert_eq!(
            r.display.netmask.as_deref(),
            Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            parse_one("hostssl replication all samenet 2f-md5")
                .unwrap()
                .databases,
            vec![DbSpec::Replication]
        );
        assert_eq!(
            parse_one("hostssl samegroup all samehost 2f-md5")
                .unwrap()
                .address,
            AddrSpec::SameHost
        );
    }

    #[test]
    fn every_parse_error_message() {
        let cases: &[(&str, &str)] = &[
            ("host all all all 2f-md5", "connection type \"host\" cannot carry a two-factor method; pg_twofactor rules must be hostssl"),
            ("local all all 2f-md5", "connection type \"local\" cannot carry a two-factor method; pg_twofactor rules must be hostssl"),
            ("hostsll all all all 2f-md5", "invalid connection type \"hostsll\""),
            ("hostssl,host all all all 2f-md5", "multiple values specified for connection type"),
            ("hostssl", "end-of-line before database specification"),
            ("hostssl all", "end-of-line before role specification"),
            ("hostssl all all", "end-of-line before IP address specification"),
            ("hostssl all all 1.2.3.4/32,5.6.7.8/32 2f-md5", "multiple values specified for host address"),
            ("hostssl all all 10.0.0.300/32 2f-md5", "invalid IP address \"10.0.0.300\""),
            ("hostssl all all 10.0.0.300 2f-md5", "invalid IP address \"10.0.0.300\""),
            ("hostssl all all fe80::zz 2f-md5", "invalid IP address \"fe80::zz\""),
            ("hostssl all all 10.0.0.0/33 2f-md5", "invalid CIDR mask in address \"10.0.0.0/33\""),
            ("hostssl all all 10.0.0.0/x 2f-md5", "invalid CIDR mask in address \"10.0.0.0/x\""),
            ("hostssl all all db.example/24 2f-md5", "specifying both host name and CIDR mask is invalid: \"db.example/24\""),
            ("hostssl all all bad!host 2f-md5", "invalid IP address or host name \"bad!host\""),
            ("hostssl all all 10.0.0.0", "end-of-line before netmask specification"),
            ("hostssl all all 10.0.0.0 255.0.0.x 2f-md5", "invalid IP mask \"255.0.0.x\""),
            ("hostssl all all 10.0.0.0 ffff:: 2f-md5", "IP address and mask do not match"),
            ("hostssl all all all", "end-of-line before authentication method"),
            ("hostssl all all all 2f-md5,2f-password", "multiple values specified for authentication type"),
            ("hostssl all all all scram-sha-256", "authentication method \"scram-sha-256\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-scram-sha-256\""),
            ("hostssl all all all 2f-trust", "invalid authentication method \"2f-trust\" (expected one of 2f-scram-sha-256, 2f-ldap, 2f-md5, 2f-password, 2f-radius)"),
            ("hostssl all all all 2f-md5 san", "authentication option not in name=value format: san"),
            ("hostssl all all all 2f-md5 san=maybe", "invalid value for authentication option \"san\": \"maybe\" (expected \"required\" or \"optional\")"),
            ("hostssl all all all 2f-md5 san=required san=optional", "authentication option \"san\" specified more than once"),
            ("hostssl all all all 2f-md5 clientcert=verify-full", "unrecognized authentication option name: \"clientcert\""),
            ("hostssl all @missing all 2f-md5", "could not open secondary authentication file \"@missing\" as \"/nonexistent/missing\": No such file or directory (os error 2)"),
        ];
        for (line, want) in cases {
            assert_eq!(&err(line), want, "for line {line:?}");
        }
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let p = parse_text(
            Path::new("/etc/x/pg_twofactor_hba.conf"),
            "hostssl all all all 2f-md5\n\nhost all all all 2f-md5\n",
        );
        let errors = p.clone().into_rule_set().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "connection type \"host\" cannot carry a two-factor method; pg_twofactor rules must be hostssl (line 3 of configuration file \"/etc/x/pg_twofactor_hba.conf\")"
        );
        let missing = parse_file(Path::new("/nonexistent/pg_twofactor_hba.conf"));
        assert_eq!(
            missing.errors()[0].to_string(),
            "could not open pg_twofactor rules file: No such file or directory (os error 2) (file \"/nonexistent/pg_twofactor_hba.conf\")"
        );
    }

    #[test]
    fn includes_are_expanded_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("pg2f-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(
            dir.join("users.txt"),
            "alice, bob\n# comment\ncarol @sub/more.txt\n",
        )
        .unwrap();
        std::fs::write(dir.join("sub/more.txt"), "dave").unwrap();
        std::fs::write(
            dir.join("rules.conf"),
            "hostssl all @users.txt all 2f-scram-sha-256\n",
        )
        .unwrap();
        let set = parse_file(&dir.join("rules.conf")).into_rule_set().unwrap();
        let names: Vec<_> = set.rules[0].display.users.clone();
        assert_eq!(names, vec!["alice", "bob", "carol", "dave"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    struct Members(Vec<(&'static str, &'static str)>);
    impl Roles for Members {
        fn is_member(&self, user: &str, role: &str) -> bool {
            self.0.iter().any(|(u, r)| *u == user && *r == role)
        }
    }

    #[test]
    fn first_match_wins_with_pg_hba_semantics() {
        let text = "\
hostssl replication all all 2f-password
hostssl sameuser all 127.0.0.2/32 2f-md5
hostssl samerole all 127.0.0.3/32 2f-md5
hostssl test +admins 127.0.0.0/8 2f-ldap
hostssl test \"all\" all 2f-md5
hostssl test test1 127.0.0.1/32 2f-scram-sha-256
";
        let set = parse_text(Path::new("/r.conf"), text)
            .into_rule_set()
            .unwrap();
        let net = StaticNetwork::default();
        let roles = Members(vec![("ann", "admins"), ("bob", "test")]);
        let find = |db: &str, user: &str, addr: &str, repl: bool| {
            let client = ClientName::new(&net, addr.parse().unwrap());
            let c = Connection {
                database: db,
                user,
                physical_replication: repl,
                client: &client,
            };
            set.find(&c, &roles).map(|r| r.line)
        };
        assert_eq!(find("test", "test1", "127.0.0.1", false), Some(6));
        assert_eq!(find("test", "test1", "127.0.0.9", false), None);
        assert_eq!(find("other", "test1", "127.0.0.1", false), None);
        assert_eq!(find("test", "ann", "127.0.0.9", false), Some(4));
        assert_eq!(find("test", "all", "10.0.0.1", false), Some(5));
        assert_eq!(find("alice", "alice", "127.0.0.2", false), Some(2));
        assert_eq!(find("test", "bob", "127.0.0.3", false), Some(3));
        assert_eq!(find("anything", "test1", "127.0.0.1", true), Some(1));
        // user names and database names compare exactly
        assert_eq!(find("Test", "test1", "127.0.0.1", false), None);
        assert_eq!(find("test", "Test1", "127.0.0.1", false), None);
    }

    #[test]
    fn user_index_keeps_file_order() {
        let text = "\
hostssl all alice,alice 127.0.0.5/32 2f-md5
hostssl all all 127.0.0.5/32 2f-password
hostssl all +staff all 2f-ldap
hostssl all alice,bob all 2f-scram-sha-256
hostssl all all all 2f-md5
";
        let set = parse_text(Path::new("/r.conf"), text)
            .into_rule_set()
            .unwrap();
        let net = StaticNetwork::default();
        let roles = Members(vec![("carol", "staff")]);
        let find = |user: &str, addr: &str| {
            let client = ClientName::new(&net, addr.parse().unwrap());
            let c = Connection {
                database: "d",
                user,
                physical_replication: false,
                client: &client,
            };
            set.find(&c, &roles).map(|r| r.line)
        };
        assert_eq!(find("alice", "127.0.0.5"), Some(1));
        assert_eq!(find("bob", "127.0.0.5"), Some(2));
        assert_eq!(find("alice", "127.0.0.6"), Some(4));
        assert_eq!(find("carol", "127.0.0.6"), Some(3));
        assert_eq!(find("dave", "127.0.0.6"), Some(5));
        assert_eq!(
            RuleSet::empty("/x".into())
                .find(
                    &Connection {
                        database: "d",
                        user: "u",
                        physical_replication: false,
                        client: &ClientName::new(&net, "::1".parse().unwrap())
                    },
                    &roles
                )
                .map(|r| r.line),
            None
        );
    }

    #[test]
    fn ten_thousand_rules_load_and_match() {
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!(
                "hostssl db{i} user{i} 10.{}.{}.0/24 2f-scram-sha-256\n",
                i / 256,
                i % 256
            ));
        }
        let set = parse_text(Path::new("/big.conf"), &text)
            .into_rule_set()
            .unwrap();
        assert_eq!(set.rules.len(), 10_000);
        let net = StaticNetwork::default();
        let client = ClientName::new(&net, "10.39.15.1".parse().unwrap());
        let c = Connection {
            database: "db9999",
            user: "user9999",
            physical_replication: false,
            client: &client,
        };
        assert_eq!(set.find(&c, &Members(vec![])).map(|r| r.line), Some(10_000));
    }
}
