//! The rules file: `pg_hba.conf` syntax with PostgreSQL's exact meaning for the major the
//! library is built against, parsing and first-match lookup.
//!
//! ```text
//! # TYPE   DATABASE  USER   ADDRESS        METHOD            [OPTIONS]
//! hostssl  test      test1  127.0.0.1/32   2f-scram-sha-256  san=required
//! ```
//!
//! Split along PostgreSQL's own seams in `src/backend/libpq/hba.c`:
//! - [`token`]: `next_token`, `next_field_expand`, `tokenize_auth_file` (lines, quoting,
//!   continuation, `@file`, and on 16+ `include`, `include_if_exists`, `include_dir`);
//! - [`parse`]: `parse_hba_line` for the columns a rule has;
//! - [`lookup`]: `check_hba`, `check_db`, `check_role`.
//!
//! Names (database, user, role, host) are bytes in the server encoding throughout.

pub mod lookup;
pub mod parse;
pub mod token;

pub use lookup::{Catalog, Connection, Found};
pub use parse::RegexCheck;
pub use token::{Syntax, Token};

use crate::address::AddrSpec;
use crate::methods::Method;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An error in the rules file, naming the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    /// `None` when the error is about the file as a whole.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            None => write!(f, "{} (file \"{}\")", self.message, self.file.display()),
            Some(line) => write!(
                f,
                "{} (line {} of configuration file \"{}\")",
                self.message,
                line,
                self.file.display()
            ),
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
    /// 16+: `/regex` (the pattern without the slash).
    Regex(Vec<u8>),
    Name(Vec<u8>),
}

/// The USER column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSpec {
    All,
    /// `+role`: members of the role (directly or indirectly).
    MemberOf(Vec<u8>),
    /// 16+: `/regex` (the pattern without the slash).
    Regex(Vec<u8>),
    Name(Vec<u8>),
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
    /// The file the rule is in (the rules file or, on 16+, a file it includes).
    pub file: Arc<PathBuf>,
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

/// The result of reading a rules file: every record, parsed or with its error.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: PathBuf,
    /// Set when the file could not be read at all.
    pub file_error: Option<RuleError>,
    /// In order: (file, line, rule or error).
    pub lines: Vec<(Arc<PathBuf>, usize, Result<Rule, RuleError>)>,
}

/// A valid rules file, ready for lookups.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub path: PathBuf,
    pub rules: Vec<Rule>,
    /// For each user name, the (ascending) indexes of the rules that name it literally.
    by_user: HashMap<Vec<u8>, Vec<usize>>,
    /// The (ascending) indexes of rules that can match any user (`all`, `+role`, regex).
    any_user: Vec<usize>,
}

/// Accepts every regular expression (for callers that only display rules, and tests).
pub struct AnyRegex;

impl RegexCheck for AnyRegex {
    fn check(&self, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

fn parse_lines(
    path: &Path,
    lines: Vec<token::TokLine>,
    syntax: Syntax,
    regex: &dyn RegexCheck,
) -> ParsedFile {
    let lines = lines
        .into_iter()
        .map(|l| {
            let rule = l.fields.and_then(|fields| {
                parse::parse_record(&fields, l.file.clone(), l.line, syntax, regex)
            });
            let rule = rule.map_err(|message| RuleError {
                file: l.file.to_path_buf(),
                line: Some(l.line),
                message,
            });
            (l.file, l.line, rule)
        })
        .collect();
    ParsedFile {
        path: path.to_path_buf(),
        file_error: None,
        lines,
    }
}

/// Parses file contents; `path` names the file in errors and anchors relative includes.
pub fn parse_text(path: &Path, text: &[u8], syntax: Syntax, regex: &dyn RegexCheck) -> ParsedFile {
    let mut lines = Vec::new();
    token::Tokenizer { syntax }.text(path, text, 0, &mut lines);
    parse_lines(path, lines, syntax, regex)
}

/// Reads and parses a rules file from disk.
pub fn parse_file(path: &Path, syntax: Syntax, regex: &dyn RegexCheck) -> ParsedFile {
    match (token::Tokenizer { syntax }).file(path) {
        Ok(lines) => parse_lines(path, lines, syntax, regex),
        Err(e) => ParsedFile {
            path: path.to_path_buf(),
            file_error: Some(RuleError {
                file: path.to_path_buf(),
                line: None,
                message: format!("could not open pg_twofactor rules file: {e}"),
            }),
            lines: Vec::new(),
        },
    }
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
                    .filter_map(|(_, _, r)| r.as_ref().err().cloned()),
            )
            .collect()
    }

    /// The rule set when the file is valid, every error otherwise.
    pub fn into_rule_set(self) -> Result<RuleSet, Vec<RuleError>> {
        let errors = self.errors();
        if !errors.is_empty() {
            return Err(errors);
        }
        let rules = self
            .lines
            .into_iter()
            .filter_map(|(_, _, r)| r.ok())
            .collect();
        Ok(RuleSet::new(self.path, rules))
    }
}

impl RuleSet {
    /// A rule set over `rules` (in file order), indexed by the user names they mention.
    pub fn new(path: PathBuf, rules: Vec<Rule>) -> RuleSet {
        let mut by_user: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{ClientName, StaticNetwork};

    const BOTH: [Syntax; 2] = [Syntax::Pg15, Syntax::Pg16];

    /// A catalog for tests: memberships as data, regexes as "starts with" for `^x` patterns
    /// (PostgreSQL's engine is exercised end to end), `(` as an engine failure.
    pub(crate) struct Members(pub Vec<(&'static str, &'static str)>);
    impl Catalog for Members {
        fn is_member(&self, user: &[u8], role: &[u8]) -> bool {
            self.0
                .iter()
                .any(|(u, r)| u.as_bytes() == user && r.as_bytes() == role)
        }
        fn regex_match(&self, pattern: &[u8], subject: &[u8]) -> Result<bool, String> {
            match pattern {
                [b'^', rest @ ..] => Ok(subject.starts_with(rest)),
                p if p.contains(&b'(') => Err("out of memory".into()),
                p => Ok(subject.windows(p.len().max(1)).any(|w| w == p) || p.is_empty()),
            }
        }
    }
    struct RejectParen;
    impl RegexCheck for RejectParen {
        fn check(&self, p: &[u8]) -> Result<(), String> {
            if p.contains(&b')') {
                Err("parentheses () not balanced".into())
            } else {
                Ok(())
            }
        }
    }

    fn parse_one(syntax: Syntax, line: &str) -> Result<Rule, String> {
        let p = parse_text(
            Path::new("/nonexistent/r.conf"),
            line.as_bytes(),
            syntax,
            &RejectParen,
        );
        p.lines.into_iter().next().unwrap().2.map_err(|e| e.message)
    }

    fn err(line: &str) -> String {
        let a = parse_one(Syntax::Pg15, line).unwrap_err();
        assert_eq!(
            a,
            parse_one(Syntax::Pg16, line).unwrap_err(),
            "15/16 differ for {line:?}"
        );
        a
    }

    fn set(syntax: Syntax, text: &str) -> RuleSet {
        parse_text(Path::new("/r.conf"), text.as_bytes(), syntax, &AnyRegex)
            .into_rule_set()
            .unwrap()
    }

    fn find(
        set: &RuleSet,
        net: &StaticNetwork,
        roles: &Members,
        db: &str,
        user: &str,
        addr: &str,
        repl: bool,
    ) -> Option<usize> {
        let client = ClientName::new(net, addr.parse().unwrap());
        let c = Connection {
            database: db.as_bytes(),
            user: user.as_bytes(),
            physical_replication: repl,
            client: &client,
        };
        match set.find(&c, roles) {
            Found::None => None,
            Found::Rule(r) => Some(r.line),
            Found::Undecided { rule, cause } => panic!("undecided at line {}: {cause}", rule.line),
        }
    }

    #[test]
    fn parses_a_full_rule() {
        for syntax in BOTH {
            let r = parse_one(
                syntax,
                "hostssl test,\"all\" test1,+admins,+\"Domain Admins\",\"+lit\" 127.0.0.1/32 2f-scram-sha-256 san=required",
            )
            .unwrap();
            assert_eq!(
                r.databases,
                vec![
                    DbSpec::Name(b"test".to_vec()),
                    DbSpec::Name(b"all".to_vec())
                ]
            );
            assert_eq!(
                r.users,
                vec![
                    UserSpec::Name(b"test1".to_vec()),
                    UserSpec::MemberOf(b"admins".to_vec()),
                    UserSpec::MemberOf(b"Domain Admins".to_vec()),
                    UserSpec::Name(b"+lit".to_vec()),
                ]
            );
            assert_eq!(r.method, Method::ScramSha256);
            assert_eq!(r.san, SanPolicy::Required);
            assert_eq!(r.display.address.as_deref(), Some("127.0.0.1"));
            assert_eq!(r.display.netmask.as_deref(), Some("255.255.255.255"));
            assert_eq!(r.display.databases, vec!["test", "\"all\""]);
            let r = parse_one(syntax, "\"hostssl\" all all 10.0.0.0 255.0.0.0 2f-md5").unwrap();
            assert_eq!(
                r.address,
                AddrSpec::Net {
                    addr: "10.0.0.0".parse().unwrap(),
                    mask: "255.0.0.0".parse().unwrap()
                }
            );
            // not numeric for getaddrinfo: a host name, as in PostgreSQL
            for host in ["db.example.com", "10.0.0.300", "bad!host", "\"all\""] {
                let r = parse_one(syntax, &format!("hostssl all all {host} 2f-ldap")).unwrap();
                assert_eq!(
                    r.address,
                    AddrSpec::Host(host.trim_matches('"').as_bytes().to_vec())
                );
            }
            let r = parse_one(syntax, "hostssl all all ::1/128 2f-password").unwrap();
            assert_eq!(
                r.display.netmask.as_deref(),
                Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
            );
            let r = parse_one(syntax, "hostssl all all 127.1/+8 2f-password").unwrap();
            assert_eq!(r.display.address.as_deref(), Some("127.0.0.1"));
            assert_eq!(r.display.netmask.as_deref(), Some("255.0.0.0"));
            assert_eq!(
                parse_one(syntax, "hostssl replication all samenet 2f-md5")
                    .unwrap()
                    .databases,
                vec![DbSpec::Replication]
            );
            assert_eq!(
                parse_one(syntax, "hostssl samegroup all samehost 2f-md5")
                    .unwrap()
                    .address,
                AddrSpec::SameHost
            );
        }
    }

    #[test]
    fn regexes_are_16_only_and_checked_at_load() {
        let r = parse_one(
            Syntax::Pg16,
            "hostssl /^app,\"/^q\" /^adm_,+/x,\"/lit\" all 2f-md5",
        )
        .unwrap();
        assert_eq!(
            r.databases,
            vec![
                DbSpec::Regex(b"^app".to_vec()),
                DbSpec::Regex(b"^q".to_vec())
            ]
        );
        // quoting does not stop a regex (regcomp_auth_token looks at the first character only)
        assert_eq!(
            r.users,
            vec![
                UserSpec::Regex(b"^adm_".to_vec()),
                UserSpec::MemberOf(b"/x".to_vec()),
                UserSpec::Regex(b"lit".to_vec())
            ]
        );
        let r = parse_one(Syntax::Pg15, "hostssl /^app /^adm_ all 2f-md5").unwrap();
        assert_eq!(r.databases, vec![DbSpec::Name(b"/^app".to_vec())]);
        assert_eq!(r.users, vec![UserSpec::Name(b"/^adm_".to_vec())]);
        assert_eq!(
            parse_one(Syntax::Pg16, "hostssl all /a) all 2f-md5").unwrap_err(),
            "invalid regular expression \"a)\": parentheses () not balanced"
        );
        assert!(parse_one(Syntax::Pg15, "hostssl all /a) all 2f-md5").is_ok());
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
            ("hostssl all all 10.0.0.300/32 2f-md5", "specifying both host name and CIDR mask is invalid: \"10.0.0.300/32\""),
            ("hostssl all all 10.0.0.0/33 2f-md5", "invalid CIDR mask in address \"10.0.0.0/33\""),
            ("hostssl all all 10.0.0.0/x 2f-md5", "invalid CIDR mask in address \"10.0.0.0/x\""),
            ("hostssl all all db.example/24 2f-md5", "specifying both host name and CIDR mask is invalid: \"db.example/24\""),
            ("hostssl all all 10.0.0.0", "end-of-line before netmask specification"),
            ("hostssl all all 10.0.0.0 255.0.0.x 2f-md5", "invalid IP mask \"255.0.0.x\": Name or service not known"),
            ("hostssl all all 10.0.0.0 ffff:: 2f-md5", "IP address and mask do not match"),
            ("hostssl all all all", "end-of-line before authentication method"),
            ("hostssl all all all 2f-md5,2f-password", "multiple values specified for authentication type"),
            ("hostssl all all all scram-sha-256", "authentication method \"scram-sha-256\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-scram-sha-256\""),
            ("hostssl all all all 2f-trust", "invalid authentication method \"2f-trust\" (expected one of 2f-scram-sha-256, 2f-ldap, 2f-md5, 2f-password, 2f-radius)"),
            ("hostssl all all all 2f-md5 san", "authentication option not in name=value format: san"),
            ("hostssl all all all 2f-md5 san=maybe", "invalid value for authentication option \"san\": \"maybe\" (expected \"required\" or \"optional\")"),
            ("hostssl all all all 2f-md5 san=required san=optional", "authentication option \"san\" specified more than once"),
            ("hostssl all all all 2f-md5 clientcert=verify-full", "unrecognized authentication option name: \"clientcert\""),
        ];
        for (line, want) in cases {
            assert_eq!(&err(line), want, "for line {line:?}");
        }
        assert_eq!(
            parse_one(Syntax::Pg16, "include missing.conf").unwrap_err(),
            "could not open file \"/nonexistent/missing.conf\": No such file or directory"
        );
        assert_eq!(
            parse_one(Syntax::Pg15, "include missing.conf").unwrap_err(),
            "invalid connection type \"include\""
        );
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let p = parse_text(
            Path::new("/etc/x/pg_twofactor_hba.conf"),
            b"hostssl all all all 2f-md5\n\nhost all \\\n all all 2f-md5\n",
            Syntax::BUILT,
            &AnyRegex,
        );
        let errors = p.into_rule_set().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "connection type \"host\" cannot carry a two-factor method; pg_twofactor rules must be hostssl (line 3 of configuration file \"/etc/x/pg_twofactor_hba.conf\")"
        );
        let missing = parse_file(
            Path::new("/nonexistent/pg_twofactor_hba.conf"),
            Syntax::BUILT,
            &AnyRegex,
        );
        assert_eq!(
            missing.errors()[0].to_string(),
            "could not open pg_twofactor rules file: No such file or directory (file \"/nonexistent/pg_twofactor_hba.conf\")"
        );
    }

    #[test]
    fn a_continued_line_is_one_rule() {
        for syntax in BOTH {
            let s = set(
                syntax,
                "hostssl all ad\\\nmin 127.0.0.1/32 \\\n2f-scram-sha-256\n",
            );
            assert_eq!(s.rules[0].users, vec![UserSpec::Name(b"admin".to_vec())]);
            assert_eq!(s.rules[0].line, 1);
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
hostssl test +\"Domain Admins\" all 2f-md5
";
        for syntax in BOTH {
            let set = set(syntax, text);
            let net = StaticNetwork::default();
            let roles = Members(vec![
                ("ann", "admins"),
                ("bob", "test"),
                ("dom", "Domain Admins"),
            ]);
            let f = |db, user, addr, repl| find(&set, &net, &roles, db, user, addr, repl);
            assert_eq!(f("test", "test1", "127.0.0.1", false), Some(6));
            assert_eq!(f("test", "test1", "127.0.0.9", false), None);
            assert_eq!(f("other", "test1", "127.0.0.1", false), None);
            assert_eq!(f("test", "ann", "127.0.0.9", false), Some(4));
            assert_eq!(f("test", "all", "10.0.0.1", false), Some(5));
            assert_eq!(f("alice", "alice", "127.0.0.2", false), Some(2));
            assert_eq!(f("test", "bob", "127.0.0.3", false), Some(3));
            assert_eq!(f("anything", "test1", "127.0.0.1", true), Some(1));
            assert_eq!(f("test", "dom", "10.0.0.1", false), Some(7));
            // names compare exactly; an IPv4-mapped client is not an IPv4 client (check_ip)
            assert_eq!(f("Test", "test1", "127.0.0.1", false), None);
            assert_eq!(f("test", "Test1", "127.0.0.1", false), None);
            assert_eq!(f("test", "test1", "::ffff:127.0.0.1", false), None);
        }
    }

    #[test]
    fn regex_names_match_on_16() {
        let s = set(
            Syntax::Pg16,
            "hostssl all /^adm_ all 2f-md5\nhostssl /^app all all 2f-ldap\n",
        );
        let net = StaticNetwork::default();
        let roles = Members(vec![]);
        assert_eq!(
            find(&s, &net, &roles, "x", "adm_bob", "10.0.0.1", false),
            Some(1)
        );
        assert_eq!(
            find(&s, &net, &roles, "app1", "bob", "10.0.0.1", false),
            Some(2)
        );
        assert_eq!(find(&s, &net, &roles, "x", "bob", "10.0.0.1", false), None);
        let s15 = set(Syntax::Pg15, "hostssl all /^adm_ all 2f-md5\n");
        assert_eq!(
            find(&s15, &net, &roles, "x", "adm_bob", "10.0.0.1", false),
            None
        );
        assert_eq!(
            find(&s15, &net, &roles, "x", "/^adm_", "10.0.0.1", false),
            Some(1)
        );
    }

    #[test]
    fn names_are_bytes() {
        let mut text =
            b"hostssl all caf\xe9 all 2f-md5\nhostssl all +gr\xfcppe all 2f-ldap\n".to_vec();
        text.extend_from_slice(b"hostssl \xff all all 2f-password\n");
        let s = parse_text(Path::new("/r.conf"), &text, Syntax::BUILT, &AnyRegex)
            .into_rule_set()
            .unwrap();
        struct Latin1;
        impl Catalog for Latin1 {
            fn is_member(&self, user: &[u8], role: &[u8]) -> bool {
                user == b"j\xf6rg" && role == b"gr\xfcppe"
            }
            fn regex_match(&self, _: &[u8], _: &[u8]) -> Result<bool, String> {
                Ok(false)
            }
        }
        let net = StaticNetwork::default();
        let client = ClientName::new(&net, "10.0.0.1".parse().unwrap());
        let line = |db: &[u8], user: &[u8]| {
            let c = Connection {
                database: db,
                user,
                physical_replication: false,
                client: &client,
            };
            match s.find(&c, &Latin1) {
                Found::Rule(r) => Some(r.line),
                _ => None,
            }
        };
        assert_eq!(line(b"d", b"caf\xe9"), Some(1));
        assert_eq!(line(b"d", "café".as_bytes()), None);
        assert_eq!(line(b"d", b"j\xf6rg"), Some(2));
        assert_eq!(line(b"\xff", b"x"), Some(3));
        assert_eq!(line(b"\xfe", b"x"), None);
    }

    #[test]
    fn undecidable_rules_count_as_matching() {
        let mut net = StaticNetwork::default();
        net.reverse_fails.push("10.0.0.5".parse().unwrap());
        net.interfaces_fail = true;
        let text = "\
hostssl all bob db.example.com 2f-md5
hostssl all alice db.example.com 2f-md5
hostssl all carol samenet 2f-md5
hostssl all /( all 2f-md5
";
        let s = set(Syntax::Pg16, text);
        let roles = Members(vec![]);
        let outcome = |user: &str| {
            let client = ClientName::new(&net, "10.0.0.5".parse().unwrap());
            let c = Connection {
                database: b"d",
                user: user.as_bytes(),
                physical_replication: false,
                client: &client,
            };
            match s.find(&c, &roles) {
                Found::None => "none".to_string(),
                Found::Rule(r) => format!("rule {}", r.line),
                Found::Undecided { rule, cause } => format!("undecided {}: {cause}", rule.line),
            }
        };
        assert_eq!(
            outcome("alice"),
            "undecided 2: reverse lookup of 10.0.0.5 failed: Temporary failure in name resolution"
        );
        assert_eq!(
            outcome("carol"),
            "undecided 3: could not enumerate network interfaces: Cannot allocate memory"
        );
        assert_eq!(
            outcome("dave"),
            "undecided 4: regular expression \"(\" could not be evaluated: out of memory"
        );
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
        let set = set(Syntax::BUILT, text);
        let net = StaticNetwork::default();
        let roles = Members(vec![("carol", "staff")]);
        let f = |user, addr| find(&set, &net, &roles, "d", user, addr, false);
        assert_eq!(f("alice", "127.0.0.5"), Some(1));
        assert_eq!(f("bob", "127.0.0.5"), Some(2));
        assert_eq!(f("alice", "127.0.0.6"), Some(4));
        assert_eq!(f("carol", "127.0.0.6"), Some(3));
        assert_eq!(f("dave", "127.0.0.6"), Some(5));
        assert_eq!(
            find(
                &RuleSet::empty("/x".into()),
                &net,
                &roles,
                "d",
                "u",
                "::1",
                false
            ),
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
        let set = set(Syntax::BUILT, &text);
        assert_eq!(set.rules.len(), 10_000);
        let net = StaticNetwork::default();
        assert_eq!(
            find(
                &set,
                &net,
                &Members(vec![]),
                "db9999",
                "user9999",
                "10.39.15.1",
                false
            ),
            Some(10_000)
        );
    }
}
