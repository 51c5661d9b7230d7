//! The rule options (`name=value` after the method), from one table: each row names an option,
//! the values it accepts and what a value sets in [`RuleOptions`]. Adding an option is one row
//! here, its field in [`RuleOptions`], and the code that acts on it (see
//! `docs/development.md`). The parser ([`super::parse`]) reports the errors PostgreSQL's
//! `parse_hba_auth_opt` would, in its words.

use super::error::OptionError;
use super::{Mode, SanPolicy};

/// What a rule's options set; the defaults are what a rule without options does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOptions {
    /// `mode=`: refuse (`enforce`) or only log and count (`report`).
    pub mode: Mode,
    /// `san=`: whether a certificate without SubjectAltName address entries is refused.
    pub san: SanPolicy,
    /// `issuer=`: the distinguished name the certificate's issuer must have, in the RFC 2253
    /// form PostgreSQL and `openssl x509 -issuer -nameopt RFC2253` print ([`crate::dn`]).
    pub issuer: Option<String>,
    /// `issuer_key=sha256:HEX`: the SHA-256 of the SubjectPublicKeyInfo of the certificate that
    /// issued the client's certificate in the chain TLS verified (a key pin beside the name
    /// pin: any CA `ssl_ca_file` trusts can sign an intermediate with a given name, not with a
    /// given key).
    pub issuer_key: Option<[u8; 32]>,
}

impl Default for RuleOptions {
    fn default() -> RuleOptions {
        RuleOptions {
            mode: Mode::Enforce,
            san: SanPolicy::Optional,
            issuer: None,
            issuer_key: None,
        }
    }
}

/// One rule option.
pub struct RuleOption {
    pub name: &'static str,
    /// The values it accepts, in the order the error message lists them; empty for an option
    /// whose value is free-form and checked by `set`.
    pub values: &'static [&'static str],
    /// Sets the option; an error says what a free-form value must be.
    pub set: fn(&mut RuleOptions, &str) -> Result<(), &'static str>,
}

/// Every rule option.
pub const OPTIONS: &[RuleOption] = &[
    RuleOption {
        name: "san",
        values: &["required", "optional"],
        set: |o, v| {
            o.san = match v {
                "required" => SanPolicy::Required,
                _ => SanPolicy::Optional,
            };
            Ok(())
        },
    },
    RuleOption {
        name: "mode",
        values: &["enforce", "report"],
        set: |o, v| {
            o.mode = match v {
                "report" => Mode::Report,
                _ => Mode::Enforce,
            };
            Ok(())
        },
    },
    RuleOption {
        name: "issuer",
        values: &[],
        set: |o, v| {
            if v.is_empty() {
                return Err("an issuer's distinguished name, such as \"CN=DB Admin CA,O=Example\"");
            }
            o.issuer = Some(v.to_string());
            Ok(())
        },
    },
    RuleOption {
        name: "issuer_key",
        values: &[],
        set: |o, v| {
            o.issuer_key = Some(parse_key_pin(v).ok_or(
                "\"sha256:\" and the 64 hexadecimal digits of the SHA-256 of the issuing CA's SubjectPublicKeyInfo",
            )?);
            Ok(())
        },
    },
];

/// `sha256:` and 64 hexadecimal digits (either case), as `sha256sum` prints a digest.
pub fn parse_key_pin(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// Applies the `name=value` options of a rule in order.
pub fn apply<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<RuleOptions, OptionError> {
    let mut options = RuleOptions::default();
    let mut seen: Vec<&str> = Vec::new();
    for text in texts {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| OptionError::NotNameValue(text.to_string()))?;
        let Some(option) = OPTIONS.iter().find(|o| o.name == name) else {
            return Err(OptionError::Unrecognized(name.to_string()));
        };
        if seen.contains(&option.name) {
            return Err(OptionError::Repeated(option.name));
        }
        seen.push(option.name);
        if !option.values.is_empty() && !option.values.contains(&value) {
            return Err(OptionError::NotOneOf {
                name: option.name,
                value: value.to_string(),
                expected: option.values,
            });
        }
        (option.set)(&mut options, value).map_err(|expected| OptionError::Invalid {
            name: option.name,
            value: value.to_string(),
            expected,
        })?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pin_is_sha256_and_64_hex_digits() {
        let hex = "00ff".repeat(16);
        let pin = parse_key_pin(&format!("sha256:{hex}")).unwrap();
        assert_eq!(pin[0], 0x00);
        assert_eq!(pin[1], 0xff);
        assert_eq!(
            parse_key_pin(&format!("sha256:{}", hex.to_uppercase())),
            Some(pin)
        );
        for bad in [
            hex.clone(),
            format!("sha1:{hex}"),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:{hex}0"),
            format!("sha256:{}g", &hex[1..]),
            "sha256:".into(),
        ] {
            assert_eq!(parse_key_pin(&bad), None, "{bad}");
        }
        let err = apply(["issuer_key=sha256:abc"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid value for authentication option \"issuer_key\": \"sha256:abc\" (\"sha256:\" and the 64 hexadecimal digits of the SHA-256 of the issuing CA's SubjectPublicKeyInfo)"
        );
        assert_eq!(
            apply([format!("issuer_key=sha256:{hex}").as_str()])
                .unwrap()
                .issuer_key,
            Some(pin)
        );
    }
}
