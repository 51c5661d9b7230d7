//! The lookup: PostgreSQL's `check_hba`, `check_db` and `check_role` for a connection that
//! PostgreSQL has accepted.
//!
//! - Per rule, in file order: the address first, then the database, then the user, as
//!   `check_hba` does; the first rule that matches decides.
//! - `check_db`: a physical replication connection matches only the unquoted `replication`
//!   keyword; otherwise `all`, `sameuser` (database name equals user name), `samerole`/
//!   `samegroup` (the user is a member of the role named like the database), `replication`
//!   never, then (16+) a regex, then the exact name.
//! - `check_role`: `+role` (membership, not via superuser), `all`, (16+) a regex, the exact
//!   name. Names are bytes compared exactly.
//! - Where PostgreSQL would treat a failed lookup as "no match", pg_twofactor treats the
//!   column as *undecided*: if the rest of the rule matches, the rule is reported as
//!   [`Found::Undecided`] and the caller refuses the login.

use super::{DbSpec, Image, RuleView, UserSpec};
use crate::address::{ClientName, Tri};

/// What the catalog answers: role membership and regular expressions (PostgreSQL's own
/// engine, `REG_ADVANCED`, C collation, in the server).
pub trait Catalog {
    /// `is_member`: whether `user` is a member of `role`, directly or indirectly, not through
    /// superuser; false when either role does not exist.
    fn is_member(&self, user: &[u8], role: &[u8]) -> bool;
    /// Whether `pattern` matches `subject`; an error when the engine cannot tell.
    fn regex_match(&self, pattern: &[u8], subject: &[u8]) -> Result<bool, RegexError>;
}

/// Why a regular expression of a rule could not be evaluated: the pattern, and the engine's
/// reason (PostgreSQL's `pg_regerror` text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("regular expression \"{}\" could not be evaluated: {reason}", String::from_utf8_lossy(.pattern))]
pub struct RegexError {
    pub pattern: Vec<u8>,
    pub reason: String,
}

/// What the lookup needs to know about a connection.
pub struct Connection<'a> {
    pub database: &'a [u8],
    pub user: &'a [u8],
    /// A physical replication connection (only the `replication` keyword matches it).
    pub physical_replication: bool,
    pub client: &'a ClientName<'a>,
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Found<'r> {
    /// No rule covers the connection.
    None,
    Rule(RuleView<'r>),
    /// This rule matches unless a lookup that failed would have said otherwise.
    Undecided {
        rule: RuleView<'r>,
        cause: String,
    },
}

fn regex(catalog: &dyn Catalog, pattern: &[u8], subject: &[u8]) -> Tri {
    match catalog.regex_match(pattern, subject) {
        Ok(b) => Tri::from_bool(b),
        Err(e) => Tri::Unknown(e.to_string()),
    }
}

impl RuleView<'_> {
    fn matches_database(&self, c: &Connection<'_>, catalog: &dyn Catalog) -> Tri {
        Tri::any(self.databases().map(|d| {
            if c.physical_replication {
                return Tri::from_bool(d == DbSpec::Replication);
            }
            match d {
                DbSpec::All => Tri::Yes,
                DbSpec::SameUser => Tri::from_bool(c.database == c.user),
                DbSpec::SameRole => Tri::from_bool(catalog.is_member(c.user, c.database)),
                DbSpec::Replication => Tri::No,
                DbSpec::Regex(p) => regex(catalog, p, c.database),
                DbSpec::Name(n) => Tri::from_bool(n == c.database),
            }
        }))
    }

    fn matches_user(&self, c: &Connection<'_>, catalog: &dyn Catalog) -> Tri {
        Tri::any(self.users().map(|u| match u {
            UserSpec::MemberOf(role) => Tri::from_bool(catalog.is_member(c.user, role)),
            UserSpec::All => Tri::Yes,
            UserSpec::Regex(p) => regex(catalog, p, c.user),
            UserSpec::Name(n) => Tri::from_bool(n == c.user),
        }))
    }

    /// Whether the rule applies to the connection (same order of checks as `check_hba`).
    pub fn matches(&self, c: &Connection<'_>, catalog: &dyn Catalog) -> Tri {
        self.address()
            .matches(c.client)
            .and(|| self.matches_database(c, catalog))
            .and(|| self.matches_user(c, catalog))
    }
}

impl<'r> Image<'r> {
    /// The first rule that applies to the connection. Only rules that can match the user are
    /// examined (those naming it, and those for `all`, a role or a regex), in file order.
    pub fn find(&self, c: &Connection<'_>, catalog: &dyn Catalog) -> Found<'r> {
        self.find_passing(c, catalog, |_| false)
    }

    /// [`Image::find`], except that a matching (or undecided) rule for which `pass` returns
    /// true is handed to it and the search goes on past it.
    pub fn find_passing(
        &self,
        c: &Connection<'_>,
        catalog: &dyn Catalog,
        mut pass: impl FnMut(&Found<'r>) -> bool,
    ) -> Found<'r> {
        let named = self.rules_naming(c.user);
        let any_user = self.rules_for_any_user();
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (named.get(i), any_user.get(j)) {
                (Some(a), Some(b)) if a < b => {
                    i += 1;
                    a
                }
                (_, Some(b)) => {
                    j += 1;
                    b
                }
                (Some(a), None) => {
                    i += 1;
                    a
                }
                (None, None) => return Found::None,
            };
            let rule = self.rule(next);
            let found = match rule.matches(c, catalog) {
                Tri::Yes => Found::Rule(rule),
                Tri::Unknown(cause) => Found::Undecided { rule, cause },
                Tri::No => continue,
            };
            if !pass(&found) {
                return found;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use crate::address::{ClientName, StaticNetwork};

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
        let s = parse_text(Path::new("/r.conf"), &text, Syntax::Pg15, &AnyRegex)
            .into_rule_set()
            .unwrap();
        struct Latin1;
        impl Catalog for Latin1 {
            fn is_member(&self, user: &[u8], role: &[u8]) -> bool {
                user == b"j\xf6rg" && role == b"gr\xfcppe"
            }
            fn regex_match(&self, _: &[u8], _: &[u8]) -> Result<bool, RegexError> {
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
            match s.image().unwrap().view().find(&c, &Latin1) {
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
            match s.image().unwrap().view().find(&c, &roles) {
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
        let set = set(Syntax::Pg15, text);
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
        let set = set(Syntax::Pg15, &text);
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
