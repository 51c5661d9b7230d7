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

use super::error::{OptionError, ParseError};
use super::token::{Field, Syntax, Token};
use super::{Action, DbSpec, Rule, RuleDisplay, UserSpec};
use crate::address::{self, AddrSpec};
use crate::methods::Method;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Checks that a regular expression compiles (PostgreSQL's own engine in the server).
pub trait RegexCheck {
    fn check(&self, pattern: &[u8]) -> Result<(), String>;
}

fn single<'a>(
    field: Option<&'a Field>,
    missing: &'static str,
    what: &'static str,
) -> Result<&'a Token, ParseError> {
    let field = field.ok_or(ParseError::EndOfLineBefore(missing))?;
    if field.len() > 1 {
        return Err(ParseError::MultipleValues(what));
    }
    Ok(&field[0])
}

/// The address spec, the number of fields used, and the view's address and netmask text.
type ParsedAddress = (AddrSpec, usize, Option<String>, Option<String>);

fn parse_address(fields: &[Field]) -> Result<ParsedAddress, ParseError> {
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
        Ok(None) if cidr.is_some() => return Err(ParseError::HostNameWithMask(tok.lossy())),
        Ok(None) => {
            let shown = String::from_utf8_lossy(host).into_owned();
            return Ok((AddrSpec::Host(host.to_vec()), 1, Some(shown), None));
        }
        Err(e) => {
            return Err(ParseError::InvalidAddress {
                address: String::from_utf8_lossy(host).into_owned(),
                why: e.to_string(),
            })
        }
    };
    if let Some(bits) = cidr {
        let mask = address::cidr_mask(addr.is_ipv4(), bits)
            .ok_or_else(|| ParseError::InvalidCidrMask(tok.lossy()))?;
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
            return Err(invalid_mask(
                mask_tok,
                address::gai_message(libc::EAI_NONAME),
            ))
        }
        Err(e) => return Err(invalid_mask(mask_tok, e.to_string())),
    };
    if mask.is_ipv4() != addr.is_ipv4() {
        return Err(ParseError::MaskFamily);
    }
    Ok((
        AddrSpec::Net { addr, mask },
        2,
        Some(addr.to_string()),
        Some(mask.to_string()),
    ))
}

fn invalid_mask(mask: &Token, why: String) -> ParseError {
    ParseError::InvalidMask {
        mask: mask.lossy(),
        why,
    }
}

fn display_token(t: &Token) -> String {
    if t.quoted {
        format!("\"{}\"", t.lossy().replace('"', "\"\""))
    } else {
        t.lossy()
    }
}

fn regex_of(t: &Token, syntax: Syntax) -> Option<&[u8]> {
    (syntax.has_regex() && t.text.first() == Some(&b'/')).then(|| &t.text[1..])
}

fn check_regex(pattern: &[u8], regex: &dyn RegexCheck) -> Result<(), ParseError> {
    regex
        .check(pattern)
        .map_err(|why| ParseError::InvalidRegex {
            pattern: String::from_utf8_lossy(pattern).into_owned(),
            why,
        })
}

/// Parses one record into a rule.
pub fn parse_record(
    fields: &[Field],
    file: Arc<PathBuf>,
    line: usize,
    syntax: Syntax,
    regex: &dyn RegexCheck,
) -> Result<Rule, ParseError> {
    let conn = single(fields.first(), "connection type", "connection type")?;
    match conn.text.as_slice() {
        b"hostssl" => {}
        b"local" | b"host" | b"hostnossl" | b"hostgssenc" | b"hostnogssenc" => {
            return Err(ParseError::NotHostssl(conn.lossy()))
        }
        _ => return Err(ParseError::InvalidConnectionType(conn.lossy())),
    }

    let db_tokens = fields
        .get(1)
        .ok_or(ParseError::EndOfLineBefore("database specification"))?;
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
        .ok_or(ParseError::EndOfLineBefore("role specification"))?;
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
    let action = if method_name == Action::EXEMPT_NAME {
        Action::Exempt
    } else {
        Action::TwoFactor(Method::from_name(&method_name).ok_or_else(|| {
            let known: Vec<&str> = Method::all()
                .map(Method::name)
                .chain([Action::EXEMPT_NAME])
                .collect();
            if Method::from_name(&format!("2f-{method_name}")).is_some() {
                ParseError::PostgresMethod(method_name.clone())
            } else {
                ParseError::InvalidMethod {
                    method: method_name.clone(),
                    known: known.join(", "),
                }
            }
        })?)
    };

    let options: Vec<String> = rest[1..].iter().flatten().map(Token::lossy).collect();
    if let (Action::Exempt, Some(text)) = (action, options.first()) {
        let (name, _) = text
            .split_once('=')
            .ok_or_else(|| OptionError::NotNameValue(text.clone()))?;
        return Err(ParseError::OptionOnExempt {
            option: name.to_string(),
            method: Action::EXEMPT_NAME,
        });
    }
    let set = super::options::apply(options.iter().map(String::as_str))?;

    let display = RuleDisplay {
        conn_type: "hostssl".into(),
        databases: db_tokens.iter().map(display_token).collect(),
        users: user_tokens.iter().map(display_token).collect(),
        address: addr_text,
        netmask: mask_text,
        method: action.name().into(),
        options,
    };
    let fingerprint = display.fingerprint(&databases, &users, &address);
    Ok(Rule {
        file,
        line,
        databases,
        users,
        address,
        action,
        options: set,
        fingerprint,
        display,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    #[test]
    fn report_mode_and_exemptions() {
        for syntax in BOTH {
            let r = parse_one(
                syntax,
                "hostssl all test1 all 2f-md5 mode=report san=required",
            )
            .unwrap();
            assert_eq!(
                (r.options.mode, r.options.san),
                (Mode::Report, SanPolicy::Required)
            );
            assert_eq!(r.display.options, vec!["mode=report", "san=required"]);
            let r = parse_one(syntax, "hostssl all all 10.1.2.3/32 2f-exempt").unwrap();
            assert_eq!((r.action, r.options.mode), (Action::Exempt, Mode::Enforce));
            assert_eq!(r.display.method, "2f-exempt");
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
            assert_eq!(r.action, Action::TwoFactor(Method::ScramSha256));
            assert_eq!(r.options.san, SanPolicy::Required);
            assert_eq!(r.options.mode, Mode::Enforce);
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
            ("hostssl all all all 2f-trust", "invalid authentication method \"2f-trust\" (expected one of 2f-scram-sha-256, 2f-ldap, 2f-md5, 2f-password, 2f-radius, 2f-exempt)"),
            ("hostssl all all all 2f-md5 san", "authentication option not in name=value format: san"),
            ("hostssl all all all 2f-md5 san=maybe", "invalid value for authentication option \"san\": \"maybe\" (expected \"required\" or \"optional\")"),
            ("hostssl all all all 2f-md5 san=required san=optional", "authentication option \"san\" specified more than once"),
            ("hostssl all all all 2f-md5 clientcert=verify-full", "unrecognized authentication option name: \"clientcert\""),
            ("hostssl all all all 2f-md5 mode=audit", "invalid value for authentication option \"mode\": \"audit\" (expected \"enforce\" or \"report\")"),
            ("hostssl all all all 2f-md5 mode=report mode=enforce", "authentication option \"mode\" specified more than once"),
            ("hostssl all all all 2f-exempt mode=report", "authentication option \"mode\" is not valid for 2f-exempt, which checks nothing"),
            ("hostssl all all all 2f-exempt san=required", "authentication option \"san\" is not valid for 2f-exempt, which checks nothing"),
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
}
