//! The two-factor methods, the PostgreSQL method each one builds on, and which are enabled.
//!
//! Everything about a two-factor method is one row of [`METHODS`]: its name in the rules file,
//! the `pg_hba.conf` method it builds on, and whether it is on by default. The list of
//! methods in errors, the GUC's description and the view come from the table. Adding a method
//! is its variant of [`Method`], its row, and (for a new base method) the [`BaseMethod`]
//! variant with PostgreSQL's failure text and the hook's mapping from PostgreSQL's method
//! (see `docs/development.md`).

use std::fmt;

/// A PostgreSQL authentication method as named in `pg_hba.conf`, i.e. the first factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseMethod {
    ScramSha256,
    Md5,
    Password,
    Ldap,
    Radius,
    /// Any other `pg_hba.conf` method (trust, cert, peer, radius, ...), by its `pg_hba.conf` name.
    Other(String),
}

impl fmt::Display for BaseMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BaseMethod::ScramSha256 => "scram-sha-256",
            BaseMethod::Md5 => "md5",
            BaseMethod::Password => "password",
            BaseMethod::Ldap => "ldap",
            BaseMethod::Radius => "radius",
            BaseMethod::Other(name) => name,
        })
    }
}

/// The SQLSTATE PostgreSQL's `auth_failed()` reports for a failed method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// 28P01 `invalid_password` (password, md5, scram-sha-256).
    InvalidPassword,
    /// 28000 `invalid_authorization_specification` (every other method).
    InvalidAuthorization,
}

impl BaseMethod {
    /// The method named as in `pg_hba.conf` (PostgreSQL's names are lower case); `None` for
    /// a name PostgreSQL `major` does not know (`oauth` is 18's).
    pub fn from_name(name: &str, major: u32) -> Option<BaseMethod> {
        Some(match name {
            "scram-sha-256" => BaseMethod::ScramSha256,
            "md5" => BaseMethod::Md5,
            "password" => BaseMethod::Password,
            "ldap" => BaseMethod::Ldap,
            "radius" => BaseMethod::Radius,
            "trust" | "reject" | "gss" | "sspi" | "ident" | "peer" | "pam" | "bsd" | "cert" => {
                BaseMethod::Other(name.into())
            }
            "oauth" if major >= 18 => BaseMethod::Other(name.into()),
            _ => return None,
        })
    }

    /// What PostgreSQL itself reports to the client when this method fails (`auth_failed()` in
    /// `src/backend/libpq/auth.c`, the same in 15, 16, 17 and 18): the SQLSTATE and the untranslated
    /// message, whose one `%s` is the user name. PostgreSQL translates it with `lc_messages`.
    pub fn postgres_failure(&self) -> (FailureCode, &'static str) {
        use FailureCode::*;
        match self {
            BaseMethod::ScramSha256 | BaseMethod::Md5 | BaseMethod::Password => (
                InvalidPassword,
                "password authentication failed for user \"%s\"",
            ),
            BaseMethod::Ldap => (
                InvalidAuthorization,
                "LDAP authentication failed for user \"%s\"",
            ),
            BaseMethod::Radius => (
                InvalidAuthorization,
                "RADIUS authentication failed for user \"%s\"",
            ),
            BaseMethod::Other(name) => (
                InvalidAuthorization,
                match name.as_str() {
                    "reject" => "authentication failed for user \"%s\": host rejected",
                    "trust" => "\"trust\" authentication failed for user \"%s\"",
                    "ident" => "Ident authentication failed for user \"%s\"",
                    "peer" => "Peer authentication failed for user \"%s\"",
                    "gss" => "GSSAPI authentication failed for user \"%s\"",
                    "sspi" => "SSPI authentication failed for user \"%s\"",
                    "pam" => "PAM authentication failed for user \"%s\"",
                    "bsd" => "BSD authentication failed for user \"%s\"",
                    "cert" => "certificate authentication failed for user \"%s\"",
                    "oauth" => "OAuth bearer authentication failed for user \"%s\"",
                    _ => "authentication failed for user \"%s\": invalid authentication method",
                },
            ),
        }
    }
}

/// A two-factor method as written in the rules file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ScramSha256,
    Md5,
    Password,
    Ldap,
    Radius,
}

/// Everything about one two-factor method.
pub struct MethodInfo {
    pub method: Method,
    /// Its name in the rules file.
    pub name: &'static str,
    /// The `pg_hba.conf` method that must have checked the password.
    pub base: BaseMethod,
    /// On without being listed in `pg_twofactor.enabled_extra_auth_methods`.
    pub enabled_by_default: bool,
}

/// Every two-factor method, the ones on by default first.
pub const METHODS: [MethodInfo; 5] = [
    MethodInfo {
        method: Method::ScramSha256,
        name: "2f-scram-sha-256",
        base: BaseMethod::ScramSha256,
        enabled_by_default: true,
    },
    MethodInfo {
        method: Method::Ldap,
        name: "2f-ldap",
        base: BaseMethod::Ldap,
        enabled_by_default: true,
    },
    MethodInfo {
        method: Method::Md5,
        name: "2f-md5",
        base: BaseMethod::Md5,
        enabled_by_default: false,
    },
    MethodInfo {
        method: Method::Password,
        name: "2f-password",
        base: BaseMethod::Password,
        enabled_by_default: false,
    },
    MethodInfo {
        method: Method::Radius,
        name: "2f-radius",
        base: BaseMethod::Radius,
        enabled_by_default: false,
    },
];

/// The names of the methods on by default (`true`) or not, as a list for messages:
/// `2f-md5, 2f-password, 2f-radius`.
pub fn names(enabled_by_default: bool) -> String {
    let names: Vec<&str> = METHODS
        .iter()
        .filter(|i| i.enabled_by_default == enabled_by_default)
        .map(|i| i.name)
        .collect();
    names.join(", ")
}

impl Method {
    /// Every method, in the order of [`METHODS`].
    pub fn all() -> impl Iterator<Item = Method> {
        METHODS.iter().map(|i| i.method)
    }

    /// Its row of [`METHODS`].
    pub fn info(self) -> &'static MethodInfo {
        const TABLE: &[MethodInfo] = &METHODS;
        TABLE
            .iter()
            .find(|i| i.method == self)
            .expect("every Method has a row in METHODS")
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Self::all().find(|m| m.name() == name)
    }

    /// Whether the method is on without being listed as an extra method.
    pub fn enabled_by_default(self) -> bool {
        self.info().enabled_by_default
    }

    /// The `pg_hba.conf` method that must have checked the password.
    pub fn base(self) -> BaseMethod {
        self.info().base.clone()
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of enabled methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSet(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodListError {
    #[error("unknown two-factor method \"{0}\"; accepted entries are {extra} (and {always}, which are always enabled)", extra = names(false), always = names(true))]
    Unknown(String),
    #[error("empty entry in the list of methods (two commas in a row, or a trailing comma)")]
    Empty,
}

impl MethodSet {
    /// The methods enabled when `pg_twofactor.enabled_extra_auth_methods` is empty.
    pub fn defaults() -> MethodSet {
        MethodSet(
            Method::all()
                .filter(|m| m.enabled_by_default())
                .map(Method::bit)
                .fold(0, std::ops::BitOr::bitor),
        )
    }

    pub fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn from_bits(bits: u32) -> MethodSet {
        MethodSet(bits)
    }

    /// Parses the value of `pg_twofactor.enabled_extra_auth_methods`: a comma-separated list,
    /// whitespace allowed around entries, names compared case-insensitively. The result always
    /// includes the methods that are enabled by default.
    pub fn parse_extra(value: &str) -> Result<MethodSet, MethodListError> {
        let mut set = MethodSet::defaults();
        if value.trim().is_empty() {
            return Ok(set);
        }
        for entry in value.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(MethodListError::Empty);
            }
            let m = Method::from_name(&entry.to_ascii_lowercase())
                .ok_or_else(|| MethodListError::Unknown(entry.to_string()))?;
            set.0 |= m.bit();
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_methods_by_their_pg_hba_conf_names() {
        use BaseMethod::*;
        for major in [15, 16, 17, 18] {
            for (name, method) in [
                ("scram-sha-256", ScramSha256),
                ("md5", Md5),
                ("password", Password),
                ("ldap", Ldap),
                ("radius", Radius),
            ] {
                assert_eq!(BaseMethod::from_name(name, major), Some(method), "{name}");
            }
            for name in [
                "trust", "reject", "gss", "sspi", "ident", "peer", "pam", "bsd", "cert",
            ] {
                assert_eq!(
                    BaseMethod::from_name(name, major),
                    Some(Other(name.into())),
                    "{name}"
                );
            }
            assert_eq!(BaseMethod::from_name("SCRAM-SHA-256", major), None);
            assert_eq!(BaseMethod::from_name("crypt", major), None);
        }
        assert_eq!(BaseMethod::from_name("oauth", 17), None);
        assert_eq!(
            BaseMethod::from_name("oauth", 18),
            Some(Other("oauth".into()))
        );
        assert_eq!(
            BaseMethod::from_name("oauth", 19),
            Some(Other("oauth".into()))
        );
    }

    #[test]
    fn each_method_fails_with_postgresqls_own_message() {
        use BaseMethod::*;
        use FailureCode::*;
        let password = (
            InvalidPassword,
            "password authentication failed for user \"%s\"",
        );
        assert_eq!(ScramSha256.postgres_failure(), password);
        assert_eq!(Md5.postgres_failure(), password);
        assert_eq!(Password.postgres_failure(), password);
        for (method, message) in [
            (Ldap, "LDAP authentication failed for user \"%s\""),
            (Radius, "RADIUS authentication failed for user \"%s\""),
            (
                Other("reject".into()),
                "authentication failed for user \"%s\": host rejected",
            ),
            (
                Other("trust".into()),
                "\"trust\" authentication failed for user \"%s\"",
            ),
            (
                Other("ident".into()),
                "Ident authentication failed for user \"%s\"",
            ),
            (
                Other("peer".into()),
                "Peer authentication failed for user \"%s\"",
            ),
            (
                Other("gss".into()),
                "GSSAPI authentication failed for user \"%s\"",
            ),
            (
                Other("sspi".into()),
                "SSPI authentication failed for user \"%s\"",
            ),
            (
                Other("pam".into()),
                "PAM authentication failed for user \"%s\"",
            ),
            (
                Other("bsd".into()),
                "BSD authentication failed for user \"%s\"",
            ),
            (
                Other("cert".into()),
                "certificate authentication failed for user \"%s\"",
            ),
            (
                Other("oauth".into()),
                "OAuth bearer authentication failed for user \"%s\"",
            ),
            (
                Other("bogus".into()),
                "authentication failed for user \"%s\": invalid authentication method",
            ),
        ] {
            assert_eq!(method.postgres_failure(), (InvalidAuthorization, message));
        }
    }

    #[test]
    fn a_method_set_as_bits_and_back() {
        let d = MethodSet::defaults();
        assert_eq!(d.bits(), Method::ScramSha256.bit() | Method::Ldap.bit());
        assert_eq!(MethodSet::from_bits(d.bits()), d);
        let all = Method::all().fold(0, |acc, m| acc | m.bit());
        assert!(Method::all().all(|m| MethodSet::from_bits(all).contains(m)));
        assert_eq!(MethodSet::from_bits(0).bits(), 0);
    }

    #[test]
    fn defaults_are_scram_and_ldap() {
        let d = MethodSet::defaults();
        assert!(d.contains(Method::ScramSha256));
        assert!(d.contains(Method::Ldap));
        assert!(!d.contains(Method::Md5));
        assert!(!d.contains(Method::Password));
        assert_eq!(MethodSet::parse_extra("").unwrap(), d);
        assert_eq!(MethodSet::parse_extra("   ").unwrap(), d);
    }

    #[test]
    fn extra_list_with_whitespace_and_case() {
        let s = MethodSet::parse_extra(" 2f-md5 ,\t2F-Password ").unwrap();
        assert!(s.contains(Method::Md5) && s.contains(Method::Password));
        let s = MethodSet::parse_extra("2f-md5").unwrap();
        assert!(s.contains(Method::Md5) && !s.contains(Method::Password));
        assert!(!s.contains(Method::Radius));
        assert!(MethodSet::parse_extra("2f-radius")
            .unwrap()
            .contains(Method::Radius));
        // always-enabled methods are accepted as no-ops
        assert_eq!(
            MethodSet::parse_extra("2f-scram-sha-256, 2f-ldap").unwrap(),
            MethodSet::defaults()
        );
    }

    #[test]
    fn extra_list_errors_name_the_entry() {
        let e = MethodSet::parse_extra("2f-md5, md5").unwrap_err();
        assert_eq!(e, MethodListError::Unknown("md5".into()));
        assert_eq!(
            e.to_string(),
            "unknown two-factor method \"md5\"; accepted entries are 2f-md5, 2f-password, 2f-radius (and 2f-scram-sha-256, 2f-ldap, which are always enabled)"
        );
        assert_eq!(
            MethodSet::parse_extra("2f-md5,").unwrap_err(),
            MethodListError::Empty
        );
        assert_eq!(
            MethodListError::Empty.to_string(),
            "empty entry in the list of methods (two commas in a row, or a trailing comma)"
        );
    }

    #[test]
    fn postgres_failures_follow_auth_failed() {
        for m in [
            BaseMethod::ScramSha256,
            BaseMethod::Md5,
            BaseMethod::Password,
        ] {
            assert_eq!(
                m.postgres_failure(),
                (
                    FailureCode::InvalidPassword,
                    "password authentication failed for user \"%s\""
                )
            );
        }
        assert_eq!(
            BaseMethod::Ldap.postgres_failure(),
            (
                FailureCode::InvalidAuthorization,
                "LDAP authentication failed for user \"%s\""
            )
        );
        assert_eq!(
            BaseMethod::Radius.postgres_failure().1,
            "RADIUS authentication failed for user \"%s\""
        );
        assert_eq!(
            BaseMethod::Other("trust".into()).postgres_failure().1,
            "\"trust\" authentication failed for user \"%s\""
        );
        assert_eq!(
            BaseMethod::Other("method #42".into()).postgres_failure().1,
            "authentication failed for user \"%s\": invalid authentication method"
        );
        // every format has exactly one %s and nothing else a printf would interpret
        for name in [
            "reject", "trust", "ident", "peer", "gss", "sspi", "pam", "bsd", "cert", "oauth", "x",
        ] {
            let (_, f) = BaseMethod::Other(name.into()).postgres_failure();
            assert_eq!(f.matches('%').count(), 1, "{f}");
            assert_eq!(f.matches("%s").count(), 1, "{f}");
        }
    }

    #[test]
    fn names_and_bases_round_trip() {
        for MethodInfo {
            method: m, name, ..
        } in METHODS
        {
            assert_eq!(Method::from_name(name), Some(m));
            assert_eq!(m.name(), name);
            assert_eq!(format!("2f-{}", m.base()), name);
        }
        assert_eq!(Method::from_name("scram-sha-256"), None);
        assert_eq!(BaseMethod::Other("trust".into()).to_string(), "trust");
    }
}
