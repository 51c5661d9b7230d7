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
//! - [`lookup`]: `check_hba`, `check_db`, `check_role`;
//! - [`error`]: what each stage reports, in PostgreSQL's words.
//!
//! Names (database, user, role, host) are bytes in the server encoding throughout.

pub mod error;
pub mod image;
pub mod lookup;
pub mod options;
pub mod parse;
pub mod scratch;
pub mod token;

pub use error::{OptionError, ParseError, RuleError, RuleProblem, TokenError};
pub use image::{Image, ImageError, OwnedImage, RuleView};
pub use lookup::{Catalog, Connection, Found, RegexError};
pub use options::RuleOptions;
pub use parse::RegexCheck;
pub use token::{Syntax, Token};

use crate::address::AddrSpec;
use crate::methods::Method;
use scratch::Scratch;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The DATABASE column: names as `B`, owned when parsed, borrowed from the image when read
/// ([`image`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DbSpec<B = Vec<u8>> {
    All,
    SameUser,
    SameRole,
    Replication,
    /// 16+: `/regex` (the pattern without the slash).
    Regex(B),
    Name(B),
}

/// The USER column, names as for [`DbSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserSpec<B = Vec<u8>> {
    All,
    /// `+role`: members of the role (directly or indirectly).
    MemberOf(B),
    /// 16+: `/regex` (the pattern without the slash).
    Regex(B),
    Name(B),
}

impl DbSpec<&[u8]> {
    /// The entry with names of its own.
    pub fn to_owned_spec(&self) -> DbSpec {
        match *self {
            DbSpec::All => DbSpec::All,
            DbSpec::SameUser => DbSpec::SameUser,
            DbSpec::SameRole => DbSpec::SameRole,
            DbSpec::Replication => DbSpec::Replication,
            DbSpec::Regex(p) => DbSpec::Regex(p.to_vec()),
            DbSpec::Name(n) => DbSpec::Name(n.to_vec()),
        }
    }
}

impl UserSpec<&[u8]> {
    /// The entry with names of its own.
    pub fn to_owned_spec(&self) -> UserSpec {
        match *self {
            UserSpec::All => UserSpec::All,
            UserSpec::MemberOf(r) => UserSpec::MemberOf(r.to_vec()),
            UserSpec::Regex(p) => UserSpec::Regex(p.to_vec()),
            UserSpec::Name(n) => UserSpec::Name(n.to_vec()),
        }
    }
}

/// Whether a certificate must carry SubjectAltName address entries (option `san=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanPolicy {
    /// No IP/DNS entries: the address check is skipped (Pangolin's behaviour). The default.
    Optional,
    /// No IP/DNS entries: the login is refused.
    Required,
}

/// What a matching rule does (its METHOD column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `2f-...`: the second factor is checked.
    TwoFactor(Method),
    /// `2f-exempt`: the connection is left to PostgreSQL (a first-match exemption above
    /// broader rules).
    Exempt,
}

impl Action {
    pub const EXEMPT_NAME: &'static str = "2f-exempt";

    pub fn name(self) -> &'static str {
        match self {
            Action::TwoFactor(m) => m.name(),
            Action::Exempt => Self::EXEMPT_NAME,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens when a rule's check fails (option `mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The login is refused. The default.
    Enforce,
    /// The would-be refusal is logged at WARNING and counted; the login goes on.
    Report,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Report => "report",
        }
    }
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
    pub action: Action,
    /// What its `name=value` options set ([`options`]).
    pub options: RuleOptions,
    /// The columns as the view shows them.
    pub display: RuleDisplay,
    /// A hash of the line's content (its columns as written): statistics of a rule start
    /// again when its content changes, and a changed file shows as a pending reload.
    pub fingerprint: u64,
}

/// The columns of a rule as `pg_twofactor_rules` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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
    pub lines: Scratch<(Arc<PathBuf>, usize, Result<Rule, RuleError>)>,
    /// The main file does not end with a newline (perhaps cut short).
    pub unterminated: bool,
    /// [`token::load_digest`] of the files read (zeros for text parsed without reading files).
    pub bytes_digest: token::FilesDigest,
}

/// A valid rules file, parsed; lookups read its [`image`].
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub path: PathBuf,
    pub rules: Scratch<Rule>,
    /// The main file as read does not end with a newline (perhaps cut short).
    pub unterminated: bool,
    /// A SHA-256 over the bytes of the files it was read from ([`token::load_digest`]).
    pub bytes_digest: token::FilesDigest,
    /// Some rule has `issuer_key=`: only then does a login read its verified chain's issuer.
    pub pins_issuer_key: bool,
}

/// Accepts every regular expression (for callers that only display rules, and tests).
pub struct AnyRegex;

impl RegexCheck for AnyRegex {
    fn check(&self, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// A catalog without roles whose regular expressions match nothing (for callers without a
/// server: benchmarks, fuzzing, tests).
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn is_member(&self, _: &[u8], _: &[u8]) -> bool {
        false
    }
    fn regex_match(&self, _: &[u8], _: &[u8]) -> Result<bool, RegexError> {
        Ok(false)
    }
}

fn parse_lines(
    path: &Path,
    mut lines: Scratch<token::TokLine>,
    syntax: Syntax,
    regex: &dyn RegexCheck,
) -> ParsedFile {
    let lines = lines
        .drain(..)
        .map(|l| {
            let rule = l
                .fields
                .map_err(RuleProblem::from)
                .and_then(|fields| {
                    parse::parse_record(&fields, l.file.clone(), l.line, syntax, regex)
                        .map_err(RuleProblem::from)
                })
                .map_err(|problem| RuleError {
                    file: l.file.to_path_buf(),
                    line: Some(l.line),
                    problem,
                });
            (l.file, l.line, rule)
        })
        .collect();
    ParsedFile {
        path: path.to_path_buf(),
        file_error: None,
        lines,
        unterminated: false,
        bytes_digest: [0; 32],
    }
}

/// Parses file contents; `path` names the file in errors and anchors relative includes.
pub fn parse_text(path: &Path, text: &[u8], syntax: Syntax, regex: &dyn RegexCheck) -> ParsedFile {
    let mut lines = Scratch::new();
    token::start_load();
    token::Tokenizer { syntax }.text(path, text, 0, &mut lines);
    parse_lines(path, lines, syntax, regex)
}

/// Reads and parses a rules file from disk.
pub fn parse_file(path: &Path, syntax: Syntax, regex: &dyn RegexCheck) -> ParsedFile {
    match (token::Tokenizer { syntax }).file(path) {
        Ok((lines, unterminated)) => ParsedFile {
            unterminated,
            bytes_digest: token::load_digest(),
            ..parse_lines(path, lines, syntax, regex)
        },
        Err(e) => ParsedFile {
            path: path.to_path_buf(),
            file_error: Some(RuleError {
                file: path.to_path_buf(),
                line: None,
                problem: match e {
                    token::ReadError::Memory { .. } => RuleProblem::NoMemory(e.to_string()),
                    token::ReadError::Io(_) => RuleProblem::Unreadable(e.to_string()),
                },
            }),
            lines: Scratch::new(),
            unterminated: false,
            bytes_digest: [0; 32],
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
    pub fn into_rule_set(mut self) -> Result<RuleSet, Vec<RuleError>> {
        let errors = self.errors();
        if !errors.is_empty() {
            return Err(errors);
        }
        // collected in place: the rules take over the lines' buffer, which is never freed
        // (tests/load_leaves_malloc_alone.rs) nor copied
        let lines = std::mem::take(&mut *self.lines);
        let rules: Vec<Rule> = lines.into_iter().filter_map(|(_, _, r)| r.ok()).collect();
        Ok(RuleSet {
            unterminated: self.unterminated,
            bytes_digest: self.bytes_digest,
            ..RuleSet::new(self.path, rules)
        })
    }
}

/// What the postmaster keeps of a rules file it loads: the image, and what it reports about
/// the rules (the parsed rules themselves are freed by then).
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub image: OwnedImage,
    /// How many rules.
    pub rules: usize,
    /// [`RuleSet::digest`].
    pub digest: u64,
    /// [`token::load_digest`] of the files read.
    pub bytes_digest: token::FilesDigest,
    /// The main file does not end with a newline (perhaps cut short).
    pub unterminated: bool,
}

/// Reads a rules file and builds its image: what the postmaster does at start and at each
/// reload. Every vector that grows with the rules is given back as [`scratch`] describes, so
/// that the backends forked afterwards find the C library as PostgreSQL alone leaves it.
pub fn load(path: &Path, syntax: Syntax, regex: &dyn RegexCheck) -> Result<Loaded, Vec<RuleError>> {
    let set = parse_file(path, syntax, regex).into_rule_set()?;
    let image = set.image().map_err(|e| {
        vec![RuleError {
            file: set.path.clone(),
            line: None,
            problem: e.into(),
        }]
    })?;
    Ok(Loaded {
        image,
        rules: set.rules.len(),
        digest: set.digest(),
        bytes_digest: set.bytes_digest,
        unterminated: set.unterminated,
        path: set.path,
    })
}

impl RuleDisplay {
    /// A hash of the columns, the same in every process running this library (SipHash with
    /// fixed keys): the columns as shown, and the names and host names as the bytes they are
    /// (the shown text is converted lossily, so two names in a non-UTF-8 encoding that differ
    /// only in such bytes would otherwise look the same).
    pub fn fingerprint(&self, databases: &[DbSpec], users: &[UserSpec], address: &AddrSpec) -> u64 {
        use std::hash::{Hash, Hasher};
        #[allow(deprecated)] // SipHasher: fixed keys on purpose
        let mut h = std::hash::SipHasher::new();
        self.hash(&mut h);
        databases.hash(&mut h);
        users.hash(&mut h);
        address.hash(&mut h);
        h.finish()
    }
}

impl RuleSet {
    /// (file, line, content) of every rule, in order: two sets with the same list enforce the
    /// same thing.
    pub fn identity(&self) -> Vec<(&Path, usize, u64)> {
        self.rules
            .iter()
            .map(|r| (r.file.as_path(), r.line, r.fingerprint))
            .collect()
    }

    /// A hash of what the rules enforce, the same in every process running this library
    /// (SipHash with fixed keys): the hash of [`RuleSet::identity`], computed without building
    /// it.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        #[allow(deprecated)] // SipHasher: fixed keys, the same in every process
        let mut h = std::hash::SipHasher::new();
        // as a slice hashes: its length, then each element
        h.write_usize(self.rules.len());
        for r in &self.rules {
            (r.file.as_path(), r.line, r.fingerprint).hash(&mut h);
        }
        h.finish()
    }

    /// A rule set over `rules` (in file order).
    pub fn new(path: PathBuf, rules: impl Into<Scratch<Rule>>) -> RuleSet {
        let rules = rules.into();
        let pins_issuer_key = rules.iter().any(|r| r.options.issuer_key.is_some());
        RuleSet {
            path,
            rules,
            unterminated: false,
            bytes_digest: [0; 32],
            pins_issuer_key,
        }
    }

    pub fn empty(path: PathBuf) -> RuleSet {
        RuleSet::new(path, Vec::new())
    }

    /// The image the login path reads ([`image`]).
    pub fn image(&self) -> Result<OwnedImage, ImageError> {
        image::build(self)
    }
}

/// Helpers shared by the tests of the tokenizer, parser and lookup.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::address::{ClientName, StaticNetwork};

    pub const BOTH: [Syntax; 2] = [Syntax::Pg15, Syntax::Pg16];

    /// A catalog for tests: memberships as data, regexes as "starts with" for `^x` patterns
    /// (PostgreSQL's engine is exercised end to end), `(` as an engine failure.
    pub struct Members(pub Vec<(&'static str, &'static str)>);
    impl Catalog for Members {
        fn is_member(&self, user: &[u8], role: &[u8]) -> bool {
            self.0
                .iter()
                .any(|(u, r)| u.as_bytes() == user && r.as_bytes() == role)
        }
        fn regex_match(&self, pattern: &[u8], subject: &[u8]) -> Result<bool, RegexError> {
            match pattern {
                [b'^', rest @ ..] => Ok(subject.starts_with(rest)),
                p if p.contains(&b'(') => Err(RegexError {
                    pattern: p.to_vec(),
                    reason: "out of memory".into(),
                }),
                p => Ok(subject.windows(p.len().max(1)).any(|w| w == p) || p.is_empty()),
            }
        }
    }
    pub struct RejectParen;
    impl RegexCheck for RejectParen {
        fn check(&self, p: &[u8]) -> Result<(), String> {
            if p.contains(&b')') {
                Err("parentheses () not balanced".into())
            } else {
                Ok(())
            }
        }
    }

    pub fn parse_one(syntax: Syntax, line: &str) -> Result<Rule, String> {
        let mut p = parse_text(
            Path::new("/nonexistent/r.conf"),
            line.as_bytes(),
            syntax,
            &RejectParen,
        );
        let first = p.lines.drain(..).next().unwrap();
        first.2.map_err(|e| e.message())
    }

    pub fn err(line: &str) -> String {
        let a = parse_one(Syntax::Pg15, line).unwrap_err();
        assert_eq!(
            a,
            parse_one(Syntax::Pg16, line).unwrap_err(),
            "15/16 differ for {line:?}"
        );
        a
    }

    pub fn set(syntax: Syntax, text: &str) -> RuleSet {
        parse_text(Path::new("/r.conf"), text.as_bytes(), syntax, &AnyRegex)
            .into_rule_set()
            .unwrap()
    }

    pub fn find(
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
        let image = set.image().unwrap();
        match image.view().find(&c, roles) {
            Found::None => None,
            Found::Rule(r) => Some(r.line),
            Found::Undecided { rule, cause } => panic!("undecided at line {}: {cause}", rule.line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    /// The digest hashes what `identity` lists, as a slice hashes, so it stays the value that
    /// earlier builds computed from the list itself.
    #[test]
    fn the_digest_is_the_hash_of_the_identity_list() {
        use std::hash::{Hash, Hasher};
        let set = set(
            Syntax::Pg16,
            "hostssl all a all 2f-md5\nhostssl db b,c 10.0.0.0/8 2f-scram-sha-256\n",
        );
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        set.identity().hash(&mut h);
        assert_eq!(set.digest(), h.finish());
        assert_ne!(set.digest(), RuleSet::empty(set.path.clone()).digest());
    }

    #[test]
    fn a_load_reports_the_rules_and_their_image() {
        let dir = tempfile_dir();
        let path = dir.join("load.conf");
        std::fs::write(&path, "hostssl all a all 2f-md5\nhostssl all b all 2f-md5").unwrap();
        let loaded = load(&path, Syntax::Pg16, &AnyRegex).unwrap();
        let set = parse_file(&path, Syntax::Pg16, &AnyRegex)
            .into_rule_set()
            .unwrap();
        assert_eq!(loaded.rules, 2);
        assert_eq!(loaded.image.view().len(), 2);
        assert_eq!(loaded.digest, set.digest());
        assert_eq!(loaded.bytes_digest, set.bytes_digest);
        assert_ne!(loaded.bytes_digest, [0; 32]);
        assert!(loaded.unterminated);
        assert_eq!(loaded.path, path);
        std::fs::write(&path, "hostssl all a all 2f-nothing\n").unwrap();
        let errors = load(&path, Syntax::Pg16, &AnyRegex).unwrap_err();
        assert_eq!(errors[0].line, Some(1));
    }

    #[test]
    fn a_loaded_file_carries_the_digest_of_its_bytes_into_the_rule_set() {
        use sha2::{Digest, Sha256};
        let dir = tempfile_dir();
        let path = dir.join("digest.conf");
        let text = b"hostssl all a all 2f-md5\nhostssl all b all 2f-scram-sha-256\n";
        std::fs::write(&path, text).unwrap();
        let mut expected = Sha256::new();
        expected.update((text.len() as u64).to_be_bytes());
        expected.update(text);
        let expected: token::FilesDigest = expected.finalize().into();
        let parsed = parse_file(&path, Syntax::Pg15, &AnyRegex);
        assert_eq!(parsed.bytes_digest, expected);
        let set = parsed.into_rule_set().unwrap();
        assert_eq!(set.bytes_digest, expected);
        // (file, line, fingerprint) of each rule, in order
        let identity: Vec<(PathBuf, usize)> = set
            .identity()
            .into_iter()
            .map(|(f, l, _)| (f.to_path_buf(), l))
            .collect();
        assert_eq!(identity, vec![(path.clone(), 1), (path.clone(), 2)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn modes_by_name_and_the_catalog_without_a_server() {
        assert_eq!(
            (Mode::Enforce.name(), Mode::Report.name()),
            ("enforce", "report")
        );
        assert!(!NoCatalog.is_member(b"alice", b"admins"));
        assert_eq!(NoCatalog.regex_match(b"^a", b"alice"), Ok(false));
    }

    #[test]
    fn a_main_file_without_a_final_newline_is_noticed_from_the_bytes_read() {
        let dir = tempfile_dir();
        let path = dir.join("r.conf");
        for (text, unterminated) in [
            (&b"hostssl all a all 2f-md5\n"[..], false),
            (b"hostssl all a all 2f-md5", true),
            (b"", false),
        ] {
            std::fs::write(&path, text).unwrap();
            let parsed = parse_file(&path, Syntax::Pg15, &AnyRegex);
            assert_eq!(parsed.unterminated, unterminated, "{text:?}");
            assert_eq!(parsed.into_rule_set().unwrap().unterminated, unterminated);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory for a test's files.
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pg2f-rules-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn fingerprints_tell_names_apart_by_their_bytes() {
        // two LATIN1 names that differ only in bytes that are not UTF-8 (shown alike, lossily)
        let fp = |text: &[u8]| {
            let set = parse_text(Path::new("/d/r.conf"), text, Syntax::Pg15, &AnyRegex)
                .into_rule_set()
                .unwrap();
            (set.rules[0].display.clone(), set.rules[0].fingerprint)
        };
        let (shown_e, e) = fp(b"hostssl caf\xe9 ren\xe9 caf\xe9.example 2f-md5\n");
        let (shown_f, f) = fp(b"hostssl caf\xe8 ren\xe8 caf\xe8.example 2f-md5\n");
        assert_eq!(shown_e, shown_f, "the view shows both alike");
        assert_ne!(e, f);
        for other in [
            &b"hostssl caf\xe9 ren\xe8 caf\xe9.example 2f-md5\n"[..],
            b"hostssl caf\xe8 ren\xe9 caf\xe9.example 2f-md5\n",
            b"hostssl caf\xe9 ren\xe9 caf\xe8.example 2f-md5\n",
        ] {
            assert_ne!(fp(other).1, e);
        }
        assert_eq!(fp(b"hostssl caf\xe9 ren\xe9 caf\xe9.example 2f-md5\n").1, e);
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let p = parse_text(
            Path::new("/etc/x/pg_twofactor_hba.conf"),
            b"hostssl all all all 2f-md5\n\nhost all \\\n all all 2f-md5\n",
            Syntax::Pg15,
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
            Syntax::Pg15,
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
}
