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

use super::{DbSpec, Rule, RuleSet, UserSpec};
use crate::address::{ClientName, Tri};

/// What the catalog answers: role membership and regular expressions (PostgreSQL's own
/// engine, `REG_ADVANCED`, C collation, in the server).
pub trait Catalog {
    /// `is_member`: whether `user` is a member of `role`, directly or indirectly, not through
    /// superuser; false when either role does not exist.
    fn is_member(&self, user: &[u8], role: &[u8]) -> bool;
    /// Whether `pattern` matches `subject`; an error when the engine cannot tell.
    fn regex_match(&self, pattern: &[u8], subject: &[u8]) -> Result<bool, String>;
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
    Rule(&'r Rule),
    /// This rule matches unless a lookup that failed would have said otherwise.
    Undecided {
        rule: &'r Rule,
        cause: String,
    },
}

fn regex(catalog: &dyn Catalog, pattern: &[u8], subject: &[u8]) -> Tri {
    match catalog.regex_match(pattern, subject) {
        Ok(b) => Tri::from_bool(b),
        Err(e) => Tri::Unknown(format!(
            "regular expression \"{}\" could not be evaluated: {e}",
            String::from_utf8_lossy(pattern)
        )),
    }
}

impl Rule {
    fn matches_database(&self, c: &Connection<'_>, catalog: &dyn Catalog) -> Tri {
        Tri::any(self.databases.iter().map(|d| {
            if c.physical_replication {
                return Tri::from_bool(*d == DbSpec::Replication);
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
        Tri::any(self.users.iter().map(|u| match u {
            UserSpec::MemberOf(role) => Tri::from_bool(catalog.is_member(c.user, role)),
            UserSpec::All => Tri::Yes,
            UserSpec::Regex(p) => regex(catalog, p, c.user),
            UserSpec::Name(n) => Tri::from_bool(n == c.user),
        }))
    }

    /// Whether the rule applies to the connection (same order of checks as `check_hba`).
    pub fn matches(&self, c: &Connection<'_>, catalog: &dyn Catalog) -> Tri {
        self.address
            .matches(c.client)
            .and(|| self.matches_database(c, catalog))
            .and(|| self.matches_user(c, catalog))
    }
}

impl RuleSet {
    /// The first rule that applies to the connection. Only rules that can match the user are
    /// examined (those naming it, and those for `all`, a role or a regex), in file order.
    pub fn find(&self, c: &Connection<'_>, catalog: &dyn Catalog) -> Found<'_> {
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
                (None, None) => return Found::None,
            };
            let rule = &self.rules[next];
            match rule.matches(c, catalog) {
                Tri::Yes => return Found::Rule(rule),
                Tri::Unknown(cause) => return Found::Undecided { rule, cause },
                Tri::No => {}
            }
        }
    }
}
