//! What pg_twofactor will read from a certificate, with the core crate's own reading.

use pg_twofactor_core::cert::{der_from_pem, CertInfo, CertSummary, PemError, SanEntry};
use pg_twofactor_core::expiry::utc;
use pg_twofactor_core::printable::printable;

/// A certificate as pg_twofactor reads it.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The subject as PostgreSQL prints a DN (RFC 2253, control characters escaped).
    pub subject: String,
    /// Every CN attribute's bytes (pg_twofactor requires exactly one, equal to the login).
    pub common_names: Vec<Vec<u8>>,
    pub san: Vec<SanEntry>,
    /// The issuer exactly as the rule option `issuer=` takes it (PostgreSQL's RFC 2253 form).
    pub issuer: String,
    /// The serial number in hexadecimal.
    pub serial: String,
    /// Validity, seconds since 1970.
    pub not_before: i64,
    pub not_after: i64,
}

/// A file that is not a certificate pg_twofactor can read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{path} {source}")]
    Pem { path: String, source: PemError },
    #[error("{path}: {why}")]
    Cert { path: String, why: String },
}

impl Inspection {
    /// The certificate in `bytes` (PEM or DER) read from `path` (for messages).
    pub fn read(path: &str, bytes: &[u8]) -> Result<Inspection, InspectError> {
        let der = if bytes.starts_with(b"-----BEGIN") {
            der_from_pem(&String::from_utf8_lossy(bytes)).map_err(|source| InspectError::Pem {
                path: path.to_string(),
                source,
            })?
        } else {
            bytes.to_vec()
        };
        let cert_error = |e: pg_twofactor_core::cert::CertError| InspectError::Cert {
            path: path.to_string(),
            why: e.to_string(),
        };
        let info = CertInfo::from_der(&der).map_err(cert_error)?;
        let summary = CertSummary::from_der(&der).map_err(cert_error)?;
        Ok(Inspection {
            subject: info.subject,
            common_names: info.common_names,
            san: info.san,
            issuer: summary.issuer,
            serial: summary.serial,
            not_before: summary.not_before,
            not_after: summary.not_after,
        })
    }

    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// For people.
    pub fn text(&self, now: i64) -> String {
        let mut out = String::new();
        let cns: Vec<String> = self.common_names.iter().map(|c| name(c)).collect();
        out.push_str(&format!("subject:          {}\n", self.subject));
        out.push_str(&format!(
            "CN:               {}{}\n",
            if cns.is_empty() {
                "(none)".to_string()
            } else {
                cns.join(", ")
            },
            match cns.len() {
                1 => "",
                0 => "  (pg_twofactor refuses it: no CN)",
                _ => "  (pg_twofactor refuses it: more than one CN)",
            }
        ));
        let kinds = |pick: fn(&SanEntry) -> bool| -> String {
            let v: Vec<String> = self.san.iter().filter(|e| pick(e)).map(entry).collect();
            if v.is_empty() {
                "(none)".into()
            } else {
                v.join(", ")
            }
        };
        out.push_str(&format!(
            "addresses:        {}\n",
            kinds(|e| matches!(e, SanEntry::Ip(_) | SanEntry::BadIp(_)))
        ));
        out.push_str(&format!(
            "subnets:          {}\n",
            kinds(|e| matches!(e, SanEntry::Subnet { .. }))
        ));
        out.push_str(&format!(
            "DNS names:        {}\n",
            kinds(|e| matches!(e, SanEntry::Dns(_)))
        ));
        out.push_str(&format!(
            "other names:      {}\n",
            kinds(|e| matches!(e, SanEntry::Other(_)))
        ));
        if !self.san.iter().any(is_address) {
            out.push_str("address check:    none (no IP, subnet or DNS entry; a rule with san=required refuses it)\n");
        }
        out.push_str(&format!("issuer:           {}\n", self.issuer));
        out.push_str(&format!("serial:           {}\n", self.serial));
        out.push_str(&format!("not before:       {}\n", utc(self.not_before)));
        out.push_str(&format!(
            "not after:        {} ({})\n",
            utc(self.not_after),
            match self.days_left(now) {
                d if d < 0 => "expired".to_string(),
                1 => "1 day left".to_string(),
                d => format!("{d} days left"),
            }
        ));
        out
    }

    /// For scripts: one JSON object.
    pub fn json(&self, now: i64) -> String {
        let list = |pick: fn(&SanEntry) -> bool| -> String {
            let v: Vec<String> = self
                .san
                .iter()
                .filter(|e| pick(e))
                .map(|e| json_string(&entry(e)))
                .collect();
            format!("[{}]", v.join(","))
        };
        let cns: Vec<String> = self
            .common_names
            .iter()
            .map(|c| json_string(&name(c)))
            .collect();
        format!(
            "{{\"subject\":{},\"common_names\":[{}],\"addresses\":{},\"subnets\":{},\"dns_names\":{},\"other_names\":{},\"issuer\":{},\"serial\":{},\"not_before\":{},\"not_after\":{},\"days_left\":{}}}",
            json_string(&self.subject),
            cns.join(","),
            list(|e| matches!(e, SanEntry::Ip(_) | SanEntry::BadIp(_))),
            list(|e| matches!(e, SanEntry::Subnet { .. })),
            list(|e| matches!(e, SanEntry::Dns(_))),
            list(|e| matches!(e, SanEntry::Other(_))),
            json_string(&self.issuer),
            json_string(&self.serial),
            json_string(&utc(self.not_before)),
            json_string(&utc(self.not_after)),
            self.days_left(now)
        )
    }
}

fn is_address(e: &SanEntry) -> bool {
    !matches!(e, SanEntry::Other(_))
}

/// An entry without its `IP:`/`DNS:` prefix; a subnet as address/prefix when its mask is one.
fn entry(e: &SanEntry) -> String {
    match e {
        SanEntry::Ip(a) => a.to_string(),
        SanEntry::Subnet { addr, mask } => match prefix(*mask) {
            Some(p) => format!("{addr}/{p}"),
            None => format!("{addr}/{mask}"),
        },
        SanEntry::Dns(n) => printable(n),
        other => printable(&other.to_string()),
    }
}

/// The prefix length of a contiguous mask.
fn prefix(mask: std::net::IpAddr) -> Option<u32> {
    let (bits, width) = match mask {
        std::net::IpAddr::V4(m) => (u128::from(u32::from(m)) << 96, 32),
        std::net::IpAddr::V6(m) => (u128::from(m), 128),
    };
    let ones = bits.leading_ones();
    (bits.count_ones() == ones && ones <= width).then_some(ones)
}

/// A CN's bytes: as text when they are UTF-8 (escaped: [`printable`]), each other byte as
/// `\xNN`.
pub fn name(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => printable(s),
        Err(_) => bytes
            .iter()
            .map(|b| match b {
                0x20..=0x7e if *b != b'\\' => (*b as char).to_string(),
                _ => format!("\\x{b:02x}"),
            })
            .collect(),
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_prefixes_and_json() {
        assert_eq!(name(b"test1"), "test1");
        assert_eq!(name(b"j\xf6rg"), "j\\xf6rg");
        assert_eq!(name("jörg".as_bytes()), "jörg");
        assert_eq!(prefix("255.255.0.0".parse().unwrap()), Some(16));
        assert_eq!(prefix("ffff:ffff:ffff:ffff::".parse().unwrap()), Some(64));
        assert_eq!(prefix("255.0.255.0".parse().unwrap()), None);
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
