//! The digests `pg_twofactor_status()` shows, so that a DBA can tell whether two nodes enforce
//! the same thing: `rules_digest`, a SHA-256 over the bytes of the rules files in force
//! ([`crate::rules::token::load_digest`]), and `settings_digest`, a SHA-256 over
//! [`settings_text`]: the other settings that decide a login.

use crate::rules::token::hex;
use sha2::{Digest, Sha256};

/// What decides a login beside the rules files, as `settings_digest` hashes it.
pub struct EnforcementSettings<'a> {
    /// The methods enabled (`pg_twofactor.enabled_extra_auth_methods` with the default ones),
    /// by name.
    pub enabled_methods: &'a [String],
    pub handshake_check: bool,
    pub ssl: bool,
    /// The bytes of `ssl_ca_file` (the CAs a client certificate is verified against), or why
    /// they could not be read; `None`: not set.
    pub ca_file: Option<Result<&'a [u8], String>>,
    /// The bytes of `ssl_crl_file`, likewise.
    pub crl_file: Option<Result<&'a [u8], String>>,
}

fn file_line(name: &str, file: &Option<Result<&[u8], String>>) -> String {
    match file {
        None => format!("{name}=\n"),
        Some(Ok(bytes)) => format!("{name}=sha256:{}\n", hex(&Sha256::digest(bytes))),
        Some(Err(why)) => format!("{name}=unreadable: {why}\n"),
    }
}

/// The text `settings_digest` is the SHA-256 of: one `name=value` line per setting, the
/// methods sorted, the files by the SHA-256 of their bytes (not their paths, which may differ
/// between nodes).
pub fn settings_text(s: &EnforcementSettings<'_>) -> String {
    let mut methods: Vec<&str> = s.enabled_methods.iter().map(String::as_str).collect();
    methods.sort_unstable();
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "pg_twofactor.enabled_methods={}\npg_twofactor.handshake_check={}\nssl={}\n{}{}",
        methods.join(","),
        on(s.handshake_check),
        on(s.ssl),
        file_line("ssl_ca_file", &s.ca_file),
        file_line("ssl_crl_file", &s.crl_file)
    )
}

/// `settings_digest`: the SHA-256 of [`settings_text`], in hexadecimal.
pub fn settings_digest(s: &EnforcementSettings<'_>) -> String {
    hex(&Sha256::digest(settings_text(s).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(
        methods: &'a [String],
        ca: Option<Result<&'a [u8], String>>,
    ) -> EnforcementSettings<'a> {
        EnforcementSettings {
            enabled_methods: methods,
            handshake_check: true,
            ssl: true,
            ca_file: ca,
            crl_file: None,
        }
    }

    #[test]
    fn the_text_names_every_setting_and_hashes_the_files() {
        let methods = ["2f-scram-sha-256".to_string(), "2f-md5".to_string()];
        let text = settings_text(&settings(&methods, Some(Ok(b"abc"))));
        assert_eq!(
            text,
            "pg_twofactor.enabled_methods=2f-md5,2f-scram-sha-256\npg_twofactor.handshake_check=on\nssl=on\nssl_ca_file=sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nssl_crl_file=\n"
        );
    }

    #[test]
    fn each_setting_changes_the_digest() {
        let one = ["2f-scram-sha-256".to_string()];
        let two = ["2f-scram-sha-256".to_string(), "2f-md5".to_string()];
        let base = settings_digest(&settings(&one, Some(Ok(b"abc"))));
        assert_eq!(base.len(), 64);
        let others = [
            settings_digest(&settings(&two, Some(Ok(b"abc")))),
            settings_digest(&settings(&one, Some(Ok(b"abd")))),
            settings_digest(&settings(&one, None)),
            settings_digest(&settings(&one, Some(Err("gone".into())))),
            settings_digest(&EnforcementSettings {
                handshake_check: false,
                ..settings(&one, Some(Ok(b"abc")))
            }),
            settings_digest(&EnforcementSettings {
                ssl: false,
                ..settings(&one, Some(Ok(b"abc")))
            }),
            settings_digest(&EnforcementSettings {
                crl_file: Some(Ok(b"")),
                ..settings(&one, Some(Ok(b"abc")))
            }),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(*other, base, "change {i}");
        }
    }

    #[test]
    fn the_rules_digest_is_the_sha256_of_each_files_length_and_bytes() {
        use crate::rules::token::{load_digest, read_limited, start_load};
        let dir = std::env::temp_dir().join(format!("pg2f-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), b"abc").unwrap();
        std::fs::write(dir.join("b"), b"").unwrap();
        start_load();
        read_limited(&dir.join("a")).unwrap();
        read_limited(&dir.join("b")).unwrap();
        let mut want = Sha256::new();
        want.update(3u64.to_be_bytes());
        want.update(b"abc");
        want.update(0u64.to_be_bytes());
        assert_eq!(load_digest(), <[u8; 32]>::from(want.finalize()));
        start_load();
        read_limited(&dir.join("a")).unwrap();
        assert_ne!(
            load_digest(),
            <[u8; 32]>::from(Sha256::digest(b"abc")),
            "the length counts"
        );
        // a new load starts a new digest
        let one_file = load_digest();
        read_limited(&dir.join("b")).unwrap();
        start_load();
        read_limited(&dir.join("a")).unwrap();
        assert_eq!(load_digest(), one_file);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
