//! Any bytes as a rules file, read with each major's syntax: never a panic; every error names
//! its line (or is about the file as a whole); a file without errors gives a rule set whose
//! rules all come from lines of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_twofactor_core::rules::{parse_text, AnyRegex, Syntax};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for syntax in [Syntax::Pg15, Syntax::Pg16] {
        let parsed = parse_text(
            Path::new("/fuzz/pg_twofactor_hba.conf"),
            data,
            syntax,
            &AnyRegex,
        );
        let lines = data.split(|b| *b == b'\n').count();
        for e in parsed.errors() {
            if let Some(line) = e.line {
                assert!(
                    line >= 1 && line <= lines,
                    "error on line {line} of {lines}: {e}"
                );
            }
            assert!(!e.message().is_empty());
        }
        if let Ok(set) = parsed.into_rule_set() {
            for r in &set.rules {
                assert!(r.line >= 1 && r.line <= lines);
            }
            // the image the login path reads says what was parsed
            let image = set.image().unwrap();
            for (r, v) in set.rules.iter().zip(image.view().rules()) {
                assert_eq!((v.line, v.action), (r.line, r.action));
                assert_eq!(v.address().to_owned_spec(), r.address);
                assert!(v.users().map(|u| u.to_owned_spec()).eq(r.users.iter().cloned()));
                assert!(v.databases().map(|d| d.to_owned_spec()).eq(r.databases.iter().cloned()));
            }
        }
    }
});
