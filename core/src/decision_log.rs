//! The decision log (`pg_twofactor.log_decisions`) as one typed value: the hook formats a
//! [`LogRecord`] into its LOG line, and the test harness and tools parse the line back with
//! [`LogRecord::find`]. One definition of the format, so a change of it changes both.
//!
//! ```text
//! pg_twofactor decision: refused (no client certificate); rule /etc/r.conf:3; pg_hba.conf /etc/pg_hba.conf:7; user "test1"; database "postgres"; client 127.0.0.1
//! pg_twofactor decision: refused (internal error); rule unknown; user "test1"
//! ```
//! A decision whose rules could not all be decided ends with `; undecided: ` and the
//! undecidable rules ([`crate::decision::Decision::undecided_text`]). User and database names
//! are quoted, with `"`, `\` and control characters escaped as Rust's `escape_debug` does.

use crate::decision::{LoginAttempt, Verdict};
use std::fmt;

/// What every decision line starts with (after PostgreSQL's `log_line_prefix`).
pub const PREFIX: &str = "pg_twofactor decision: ";

/// One decision-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// `accepted`, `refused`, `reported`, `exempt` or `not covered`.
    pub outcome: String,
    /// The reason of a refusal or report (`no client certificate`).
    pub reason: Option<String>,
    /// The deciding rule as `file:line`, `none`, or `unknown` (a refusal without a decision).
    pub rule: String,
    /// The `pg_hba.conf` line PostgreSQL chose, as `file:line` or `line N`; `None` on a
    /// refusal without a decision.
    pub hba: Option<String>,
    /// The login's user name (unescaped).
    pub user: String,
    /// The database (unescaped); `None` on a refusal without a decision.
    pub database: Option<String>,
    /// The client's address, or `local` (a Unix-domain socket).
    pub client: Option<String>,
    /// The rules that could not be decided, as listed after `; undecided: `.
    pub undecided: Option<String>,
}

impl LogRecord {
    /// The record of `verdict` for `attempt`; `undecided` as
    /// [`crate::decision::Decision::undecided_text`] gives it.
    pub fn of(attempt: &LoginAttempt, verdict: &Verdict, undecided: &str) -> LogRecord {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        LogRecord {
            outcome: verdict.outcome().to_string(),
            reason: verdict.reason().map(|r| r.to_string()),
            rule: verdict.rule_position(),
            hba: Some(attempt.hba_position()),
            user: lossy(&attempt.user),
            database: Some(lossy(&attempt.database)),
            client: Some(
                attempt
                    .client_addr
                    .map_or_else(|| "local".to_string(), |a| a.to_string()),
            ),
            undecided: undecided.strip_prefix("; undecided: ").map(str::to_string),
        }
    }

    /// The record of a refusal made without a decision (the `Port` could not be read, no
    /// rules, a panic).
    pub fn internal(user: &[u8]) -> LogRecord {
        LogRecord {
            outcome: "refused".into(),
            reason: Some(crate::decision::Reason::Internal.to_string()),
            rule: "unknown".into(),
            hba: None,
            user: String::from_utf8_lossy(user).into_owned(),
            database: None,
            client: None,
            undecided: None,
        }
    }

    /// The record in a server-log line (anything before [`PREFIX`] is PostgreSQL's
    /// `log_line_prefix`); `None` for a line that holds no decision or cannot be read.
    pub fn find(line: &str) -> Option<LogRecord> {
        let (_, text) = line.split_once(PREFIX)?;
        let (head, rest) = text.split_once("; rule ")?;
        let (outcome, reason) = match head.split_once(" (") {
            Some((o, r)) => (o, Some(r.strip_suffix(')')?.to_string())),
            None => (head, None),
        };
        let (rule, rest) = rest.split_once("; ")?;
        let (hba, rest) = match rest.strip_prefix("pg_hba.conf ") {
            Some(r) => {
                let (hba, rest) = r.split_once("; ")?;
                (Some(hba.to_string()), rest)
            }
            None => (None, rest),
        };
        let (user, mut rest) = quoted(rest.strip_prefix("user ")?)?;
        let mut database = None;
        if let Some(r) = rest.strip_prefix("; database ") {
            let (d, r) = quoted(r)?;
            database = Some(d);
            rest = r;
        }
        let mut client = None;
        if let Some(r) = rest.strip_prefix("; client ") {
            // (an address holds no "; "; what follows it lists the undecidable rules)
            let end = r.find("; ").unwrap_or(r.len());
            client = Some(r[..end].to_string());
            rest = &r[end..];
        }
        let undecided = match rest {
            "" => None,
            r => Some(r.strip_prefix("; undecided: ")?.to_string()),
        };
        Some(LogRecord {
            outcome: outcome.to_string(),
            reason,
            rule: rule.to_string(),
            hba,
            user,
            database,
            client,
            undecided,
        })
    }

    /// The `pg_hba.conf` file (`None` when only the line is known) and line.
    pub fn hba_file_line(&self) -> Option<(Option<&str>, &str)> {
        let hba = self.hba.as_deref()?;
        Some(match hba.strip_prefix("line ") {
            Some(n) => (None, n),
            None => {
                let (f, n) = hba.rsplit_once(':')?;
                (Some(f), n)
            }
        })
    }

    /// The outcome with its reason, as the line gives it: `refused (no client certificate)`.
    pub fn verdict(&self) -> String {
        match &self.reason {
            Some(r) => format!("{} ({r})", self.outcome),
            None => self.outcome.clone(),
        }
    }
}

impl fmt::Display for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}; rule {}", self.verdict(), self.rule)?;
        if let Some(hba) = &self.hba {
            write!(f, "; pg_hba.conf {hba}")?;
        }
        write!(f, "; user \"{}\"", self.user.escape_debug())?;
        if let Some(d) = &self.database {
            write!(f, "; database \"{}\"", d.escape_debug())?;
        }
        if let Some(c) = &self.client {
            write!(f, "; client {c}")?;
        }
        if let Some(u) = &self.undecided {
            write!(f, "; undecided: {u}")?;
        }
        Ok(())
    }
}

/// A `"`-quoted name escaped by `escape_debug` at the start of `s`: the name and what follows
/// the closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[1 + i + 1..])),
            '\\' => match chars.next()?.1 {
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'n' => out.push('\n'),
                '0' => out.push('\0'),
                'u' => {
                    let mut hex = String::new();
                    if chars.next()?.1 != '{' {
                        return None;
                    }
                    loop {
                        match chars.next()?.1 {
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord {
            outcome: "refused".into(),
            reason: Some("no client certificate".into()),
            rule: "/etc/r.conf:3".into(),
            hba: Some("/etc/pg_hba.conf:7".into()),
            user: "test1".into(),
            database: Some("postgres".into()),
            client: Some("127.0.0.1".into()),
            undecided: None,
        }
    }

    #[test]
    fn lines_read_back_as_written() {
        let r = record();
        let line = r.to_string();
        assert_eq!(
            line,
            "pg_twofactor decision: refused (no client certificate); rule /etc/r.conf:3; pg_hba.conf /etc/pg_hba.conf:7; user \"test1\"; database \"postgres\"; client 127.0.0.1"
        );
        let logged = format!("2026-12-02 10:00:00 UTC [123] LOG:  {line}");
        assert_eq!(LogRecord::find(&logged), Some(r.clone()));
        assert_eq!(r.hba_file_line(), Some((Some("/etc/pg_hba.conf"), "7")));

        // names with quotes, "; ", backslashes, control and non-ASCII characters
        let odd = LogRecord {
            outcome: "accepted".into(),
            reason: None,
            user: "a\"; database \"b\\c\n\u{7}é".into(),
            database: Some("d; client x".into()),
            client: Some("::1".into()),
            hba: Some("line 4".into()),
            undecided: Some(
                "rule /r:2 (2f-md5) checked as if it applied (could not resolve, x; y)".into(),
            ),
            ..r.clone()
        };
        assert_eq!(LogRecord::find(&odd.to_string()), Some(odd.clone()));
        assert_eq!(odd.hba_file_line(), Some((None, "4")));

        let internal = LogRecord::internal(b"x\"y");
        assert_eq!(
            internal.to_string(),
            "pg_twofactor decision: refused (internal error); rule unknown; user \"x\\\"y\""
        );
        assert_eq!(LogRecord::find(&internal.to_string()), Some(internal));

        assert_eq!(
            LogRecord::find("LOG:  connection authorized: user=test1"),
            None
        );
        assert_eq!(
            LogRecord::find("pg_twofactor decision: accepted; rule x; user \"unterminated"),
            None
        );
    }
}
