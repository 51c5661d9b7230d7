//! Generates Rust bindings for the server's authentication structures.
//!
//! pgrx does not expose the `Port` fields pg_twofactor needs (`peer`, `peer_cert_valid`,
//! `ssl_in_use`, `hba`) nor `HbaLine`/`UserAuth`, so we run bindgen over the headers of the
//! PostgreSQL we are building against. The struct layouts therefore always match that server.
//!
//! The `pg_config` used is, in order: `$PGRX_PG_CONFIG_PATH` (set by `cargo pgrx`), the entry
//! for the enabled `pgNN` feature in `$PGRX_HOME/config.toml` (or `~/.pgrx/config.toml`), then
//! `pg_config` on `$PATH`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn enabled_pg_feature() -> Option<String> {
    (15..=18)
        .map(|v| format!("pg{v}"))
        .find(|f| env::var_os(format!("CARGO_FEATURE_{}", f.to_uppercase())).is_some())
}

fn pg_config_from_pgrx_toml(feature: &str) -> Option<PathBuf> {
    let home = env::var_os("PGRX_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".pgrx")))?;
    let text = std::fs::read_to_string(home.join("config.toml")).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == feature).then(|| PathBuf::from(value.trim().trim_matches('"')))
    })
}

fn pg_config_path() -> PathBuf {
    if let Some(p) = env::var_os("PGRX_PG_CONFIG_PATH") {
        return PathBuf::from(p);
    }
    if let Some(p) = enabled_pg_feature().and_then(|f| pg_config_from_pgrx_toml(&f)) {
        return p;
    }
    PathBuf::from("pg_config")
}

fn pg_config(pg_config: &Path, arg: &str) -> String {
    let out = Command::new(pg_config)
        .arg(arg)
        .output()
        .unwrap_or_else(|e| panic!("could not run {} {arg}: {e}", pg_config.display()));
    assert!(out.status.success(), "{} {arg} failed", pg_config.display());
    String::from_utf8(out.stdout)
        .expect("pg_config output is UTF-8")
        .trim()
        .to_string()
}

fn main() {
    println!("cargo:rerun-if-env-changed=PGRX_PG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PGRX_HOME");
    println!("cargo:rerun-if-changed=build.rs");

    let pg_config_bin = pg_config_path();
    let include_server = pg_config(&pg_config_bin, "--includedir-server");
    let version = pg_config(&pg_config_bin, "--version");

    let header = r#"
#include "postgres.h"
#include "libpq/libpq-be.h"
#include "libpq/hba.h"
#include "libpq/auth.h"
#include "utils/elog.h"
#include "regex/regex.h"
#include "mb/pg_wchar.h"
#include "catalog/pg_collation_d.h"
#include "utils/timeout.h"
#include "miscadmin.h"
"#;

    let bindings = bindgen::Builder::default()
        .header_contents("pg_twofactor_auth.h", header)
        .clang_arg(format!("-I{include_server}"))
        .allowlist_type("Port")
        .allowlist_type("HbaLine")
        .allowlist_type("UserAuth")
        .allowlist_type("ClientAuthentication_hook_type")
        .allowlist_type("openssl_tls_init_hook_typ")
        .allowlist_var("ClientAuthentication_hook")
        // the connection during the TLS handshake (set before it in 15-18)
        .allowlist_var("MyProcPort")
        .allowlist_var("openssl_tls_init_hook")
        .allowlist_function("errstart")
        .allowlist_function("errfinish")
        .allowlist_function("errcode")
        .allowlist_function("errmsg")
        .allowlist_function("errdetail_log")
        .allowlist_function("errhint")
        // PostgreSQL's regular expression engine, as hba.c calls it (16+ regex names)
        .allowlist_type("pg_regex_t")
        .allowlist_function("pg_regcomp")
        .allowlist_function("pg_regexec")
        .allowlist_function("pg_regerror")
        .allowlist_function("pg_regfree")
        .allowlist_function("pg_mb2wchar_with_len")
        .allowlist_var("REG_ADVANCED")
        .allowlist_var("REG_OKAY")
        .allowlist_var("REG_NOMATCH")
        .allowlist_var("C_COLLATION_OID")
        // the authentication timeout (PerformAuthentication arms STATEMENT_TIMEOUT for it):
        // host-name lookups in the hook give up before it fires
        .allowlist_type("TimeoutId")
        .allowlist_function("get_timeout_active")
        .allowlist_function("get_timeout_finish_time")
        .constified_enum_module("TimeoutId")
        .constified_enum_module("UserAuth")
        // pgrx declares PostgreSQL callbacks as "C-unwind"; so do we.
        .override_abi(bindgen::Abi::CUnwind, ".*")
        // OpenSSL's objects are only ever handled through pointers here.
        .opaque_type("SSL")
        .opaque_type("SSL_CTX")
        .opaque_type("X509")
        .derive_default(false)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on the headers in {include_server}: {e}"));

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("auth_bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("could not write auth_bindings.rs");

    // openssl_tls_init_hook (PostgreSQL 14 and later) is how the postmaster tells us about a
    // reload; without it the rules are read at server start only.
    println!("cargo::rustc-check-cfg=cfg(has_tls_init_hook)");
    let mut generated = std::fs::read_to_string(&out).expect("read back auth_bindings.rs");
    // regex.h says `#define regex_t pg_regex_t`; depending on the clang version bindgen names
    // PostgreSQL's struct either way. The Rust side always says pg_regex_t.
    if !generated.contains("pub struct pg_regex_t") && generated.contains("pub struct regex_t") {
        generated.push_str("\npub type pg_regex_t = regex_t;\n");
        std::fs::write(&out, &generated).expect("write auth_bindings.rs");
    }
    if generated.contains("pub static mut openssl_tls_init_hook") {
        println!("cargo:rustc-cfg=has_tls_init_hook");
    }
    // HbaLine.sourcefile (16+: pg_hba.conf can include other files)
    println!("cargo::rustc-check-cfg=cfg(has_hba_sourcefile)");
    if generated.contains("pub sourcefile:") {
        println!("cargo:rustc-cfg=has_hba_sourcefile");
    }
    println!("cargo:rustc-env=PG_TWOFACTOR_BUILT_AGAINST={version}");
}
