//! The line parser: PostgreSQL's `parse_hba_line` for the columns a rule has (connection
//! type, database, user, address), then pg_twofactor's method and options.
//!
//! Where `hba.c` is followed:
//! - the connection type is compared without regard to quoting (`strcmp`), as is the method;
//! - database and user tokens keep their quoting; in the user column an unquoted `+` makes a
//!   role-membership check before anything else; on 16+ a token starting with `/` is a
//!   regular expression (quoted or not: `regcomp_auth_token` looks only at the first
//!   character) compiled when the rules are loaded, so a bad one is an error of its line;
//! - the address is `all`, `samehost`, `samenet` (unquoted), else `getaddrinfo` with
//!   `AI_NUMERICHOST` decides: an address (with a `/bits` suffix read by `strtol`, or a
//!   separate mask field) or, when it is not numeric, a host name (with a suffix: an error).

use super::token::{Field, Syntax, Token};
use super::{DbSpec, Rule, RuleDisplay, SanPolicy, UserSpec};
use crate::address::{self, AddrSpec};
use crate::methods::Method;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Checks that a regular expression compiles (PostgreSQL's own engine in the server).
pub trait RegexCheck {
    fn check(&self, pattern: &[u8]) -> Result<(), String>;
}

fn single<'a>(field: Option<&'a Field>, missing: &str, what: &str) -> Result<&'a Token, String> {
    let field = field.ok_or_else(|| format!("end-of-line before {missing}"))?;
    if field.len() > 1 {
        return Err(format!("multiple values specified for {what}"));
    }
    Ok(&field[0])
}

/// The address spec, the number of fields used, and the view's address and netmask text.
type ParsedAddress = (AddrSpec, usize, Option<String>, Option<String>);

fn parse_address(fields: &[Field]) -> Result<ParsedAddress, String> {
    let tok = single(fields.first(), "IP address specification", "host address")?;
    for (kw, spec) in [
        ("all", AddrSpec::All),
        ("samehost", AddrSpec::SameHost),
        ("samenet", AddrSpec::SameNet),
    ] {
        if tok.is_keyword(kw) {
            return Ok((spec, 1, Some(kw.into()), None));
        }
    }
    let (host, cidr) = match tok.text.iter().position(|&c| c == b'/') {
        Some(i) => (&tok.text[..i], Some(&tok.text[i + 1..])),
        None => (&tok.text[..], None),
    };
    let addr: IpAddr = match address::numeric_host(host) {
        Ok(Some(a)) => a,
        Ok(None) if cidr.is_some() => {
            return Err(format!(
                "specifying both host name and CIDR mask is invalid: \"{}\"",
                tok.lossy()
            ))
        }
        Ok(None) => {
            let shown = String::from_utf8_lossy(host).into_owned();
            return Ok((AddrSpec::Host(host.to_vec()), 1, Some(shown), None));
        }
        Err(e) => {
            return Err(format!(
                "invalid IP address \"{}\": {e}",
                String::from_utf8_lossy(host)
            ))
        }
    };
    if let Some(bits) = cidr {
        let mask = address::cidr_mask(addr.is_ipv4(), bits)
            .ok_or_else(|| format!("invalid CIDR mask in address \"{}\"", tok.lossy()))?;
        return Ok((
            AddrSpec::Net { addr, mask },
            1,
            Some(addr.to_string()),
            Some(mask.to_string()),
        ));
    }
    let mask_tok = single(fields.get(1), "netmask specification", "netmask")?;
    let mask = match address::numeric_host(&mask_tok.text) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(format!(
                "invalid IP mask \"{}\": {}",
                mask_tok.lossy(),
                address::gai_message(libc::EAI_NONAME)
            ))
        }
        Err(e) => return Err(format!("invalid IP mask \"{}\": {e}", mask_tok.lossy())),
    };
    if mask.is_ipv4() != addr.is_ipv4() {
        return Err("IP address and mask do not match".into());
    }
    Ok((
        AddrSpec::Net { addr, mask },
        2,
        Some(addr.to_string()),
        Some(mask.to_string()),
    ))
}

fn display_token(t: &Token) -> String {
    if t.quoted {
        format!("\"{}\"", t.lossy().replace('"', "\"\""))
    } else {
        t.lossy()
    }
}

fn regex_of<'t>(t: &'t Token, syntax: Syntax) -> Option<&'t [u8]> {
    (syntax.has_regex() && t.text.first() == Some(&b'/')).then(|| &t.text[1..])
}

fn check_regex(pattern: &[u8], regex: &dyn RegexCheck) -> Result<(), String> {
    regex.check(pattern).map_err(|e| {
        format!(
            "invalid regular expression \"{}\": {e}",
            String::from_utf8_lossy(pattern)
        )
    })
}

/// Parses one record into a rule.
pub fn parse_record(
    fields: &[Field],
    file: Arc<PathBuf>,
    line: usize,
    syntax: Syntax,
    regex: &dyn RegexCheck,
) -> Result<Rule, String> {
    let conn = single(fields.first(), "connection type", "connection type")?;
    match conn.text.as_slice() {
        b"hostssl" => {}
        b"local" | b"host" | b"hostnossl" | b"hostgssenc" | b"hostnogssenc" => {
            return Err(format!(
                "connection type \"{}\" cannot carry a two-factor method; pg_twofactor rules must be hostssl",
                conn.lossy()
            ))
        }
        _ => return Err(format!("invalid connection type \"{}\"", conn.lossy())),
    }

    let db_tokens = fields
        .get(1)
        .ok_or("end-of-line before database specification")?;
    let mut databases = Vec::with_capacity(db_tokens.len());
    for t in db_tokens {
        databases.push(match () {
            _ if t.is_keyword("all") => DbSpec::All,
            _ if t.is_keyword("sameuser") => DbSpec::SameUser,
            _ if t.is_keyword("samerole") || t.is_keyword("samegroup") => DbSpec::SameRole,
            _ if t.is_keyword("replication") => DbSpec::Replication,
            _ => match regex_of(t, syntax) {
                Some(p) => {
                    check_regex(p, regex)?;
                    DbSpec::Regex(p.to_vec())
                }
                None => DbSpec::Name(t.text.clone()),
            },
        });
    }

    let user_tokens = fields
        .get(2)
        .ok_or("end-of-line before role specification")?;
    let mut users = Vec::with_capacity(user_tokens.len());
    for t in user_tokens {
        users.push(match t.text.first() {
            Some(b'+') if !t.quoted => UserSpec::MemberOf(t.text[1..].to_vec()),
            _ if t.is_keyword("all") => UserSpec::All,
            _ => match regex_of(t, syntax) {
                Some(p) => {
                    check_regex(p, regex)?;
                    UserSpec::Regex(p.to_vec())
                }
                None => UserSpec::Name(t.text.clone()),
            },
        });
    }

    let (address, used, addr_text, mask_text) = parse_address(&fields[3.min(fields.len())..])?;
    let rest = &fields[3 + used..];

    let method_tok = single(rest.first(), "authentication method", "authentication type")?;
    let method_name = method_tok.lossy();
    let method = Method::from_name(&method_name).ok_or_else(|| {
        let known: Vec<&str> = Method::ALL.iter().map(|(_, n, _)| *n).collect();
        if Method::from_name(&format!("2f-{method_name}")).is_some() {
            format!(
                "authentication method \"{method_name}\" belongs in pg_hba.conf; a pg_twofactor rule names a two-factor method such as \"2f-{method_name}\""
            )
        } else {
            format!(
                "invalid authentication method \"{method_name}\" (expected one of {})",
                known.join(", ")
            )
        }
    })?;

    let mut san = None;
    let mut options = Vec::new();
    for field in &rest[1..] {
        for opt in field {
            let text = opt.lossy();
            let (name, value) = text
                .split_once('=')
                .ok_or_else(|| format!("authentication option not in name=value format: {text}"))?;
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
            options.push(text.clone());
        }
    }

    Ok(Rule {
        file,
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
