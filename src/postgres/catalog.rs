//! What the rules lookup asks the server: role membership and PostgreSQL's own regular
//! expression engine, called exactly as `hba.c` calls them.
//!
//! Regexes (16+): `regcomp_auth_token` compiles `token + 1` with `pg_regcomp(...,
//! REG_ADVANCED, C_COLLATION_OID)` after `pg_mb2wchar_with_len`, and `check_db`/`check_role`
//! run `pg_regexec` on the name. Both happen before the database encoding is set (the
//! postmaster, and a backend during authentication, run as SQL_ASCII), so every byte is one
//! character; pg_twofactor compiles and runs them at the same points (load: postmaster;
//! match: the backend's authentication), so the conversion is the same.

use crate::postgres::ffi;
use pg_twofactor_core::rules::{Catalog, RegexCheck, RegexError};
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

/// A compiled regex, freed with `pg_regfree` when dropped.
struct Compiled(Box<ffi::pg_regex_t>);

impl Drop for Compiled {
    fn drop(&mut self) {
        // SAFETY: the regex_t was successfully compiled by pg_regcomp and is freed once; the
        // guard turns a PostgreSQL ERROR into a Rust panic instead of a longjmp over our frames
        // (main thread only, as every hook runs).
        unsafe { pg_guard_ffi_boundary(|| ffi::pg_regfree(&mut *self.0)) };
    }
}

/// The pattern as `pg_wchar`s, one per byte (see the module note on encodings).
fn wide(bytes: &[u8]) -> Vec<ffi::pg_wchar> {
    let mut out: Vec<ffi::pg_wchar> = vec![0; bytes.len() + 1];
    // SAFETY: `out` has room for len + 1 wide characters, as pg_mb2wchar_with_len requires;
    // `bytes` is readable for len bytes; guarded as in Drop above.
    let n = unsafe {
        pg_guard_ffi_boundary(|| {
            ffi::pg_mb2wchar_with_len(bytes.as_ptr().cast(), out.as_mut_ptr(), bytes.len() as i32)
        })
    };
    out.truncate(n.max(0) as usize);
    out
}

fn compile(pattern: &[u8]) -> Result<Compiled, String> {
    let w = wide(pattern);
    // SAFETY: regex_t is plain data that pg_regcomp initialises; zeroed is how hba.c starts it
    // (palloc0).
    let mut re: Box<ffi::pg_regex_t> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: `w` holds w.len() wide characters; `re` is a writable regex_t; guarded (the
    // engine reports out-of-memory as REG_ESPACE, but any ERROR must not longjmp over Rust).
    let rc = unsafe {
        pg_guard_ffi_boundary(|| {
            ffi::pg_regcomp(
                &mut *re,
                w.as_ptr(),
                w.len(),
                ffi::REG_ADVANCED as i32,
                ffi::C_COLLATION_OID,
            )
        })
    };
    if rc != 0 {
        let mut buf = [0 as std::ffi::c_char; 100];
        // SAFETY: pg_regerror writes at most buf.len() bytes, NUL-terminated, into `buf`.
        unsafe {
            pg_guard_ffi_boundary(|| ffi::pg_regerror(rc, &*re, buf.as_mut_ptr(), buf.len()))
        };
        // SAFETY: NUL-terminated by pg_regerror.
        let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        return Err(msg.to_string_lossy().into_owned());
    }
    Ok(Compiled(re))
}

/// Compiles each regex once to check it (rules load, view).
pub struct PgRegexCheck;

impl RegexCheck for PgRegexCheck {
    fn check(&self, pattern: &[u8]) -> Result<(), String> {
        compile(pattern).map(drop)
    }
}

/// The catalog during authentication: the login's role OID looked up once (as `check_hba`
/// does), regexes compiled at most once per connection.
pub struct ServerCatalog {
    user_oid: RefCell<Option<(Vec<u8>, pg_sys::Oid)>>,
    regexes: RefCell<HashMap<Vec<u8>, Compiled>>,
}

impl ServerCatalog {
    pub fn new() -> ServerCatalog {
        ServerCatalog {
            user_oid: RefCell::new(None),
            regexes: RefCell::new(HashMap::new()),
        }
    }

    fn role_oid(name: &[u8]) -> pg_sys::Oid {
        // A name with a NUL cannot be a role (PostgreSQL's names are C strings).
        let Ok(c) = CString::new(name) else {
            return pg_sys::InvalidOid;
        };
        // SAFETY: ClientAuthentication runs inside the startup transaction with the shared
        // catalogs available (PostgreSQL's own hba.c does this lookup at the same point);
        // missing_ok = true, so a missing role is InvalidOid, not an error.
        unsafe { pg_sys::get_role_oid(c.as_ptr(), true) }
    }
}

impl Default for ServerCatalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog for ServerCatalog {
    fn is_member(&self, user: &[u8], role: &[u8]) -> bool {
        let user_oid = {
            let mut cached = self.user_oid.borrow_mut();
            match &*cached {
                Some((u, oid)) if u == user => *oid,
                _ => {
                    let oid = Self::role_oid(user);
                    *cached = Some((user.to_vec(), oid));
                    oid
                }
            }
        };
        if user_oid == pg_sys::InvalidOid {
            return false;
        }
        let role_oid = Self::role_oid(role);
        // SAFETY: as in role_oid; is_member_of_role_nosuper reads the catalogs.
        role_oid != pg_sys::InvalidOid
            && unsafe { pg_sys::is_member_of_role_nosuper(user_oid, role_oid) }
    }

    fn regex_match(&self, pattern: &[u8], subject: &[u8]) -> Result<bool, RegexError> {
        let failed = |reason: String| RegexError {
            pattern: pattern.to_vec(),
            reason,
        };
        let mut cache = self.regexes.borrow_mut();
        if !cache.contains_key(pattern) {
            cache.insert(pattern.to_vec(), compile(pattern).map_err(failed)?);
        }
        let re = cache.get_mut(pattern).expect("just inserted");
        let w = wide(subject);
        // SAFETY: `re` is a compiled regex_t; `w` holds w.len() wide characters; no match
        // details are requested (nmatch 0, pmatch null), as regexec_auth_token does; guarded.
        let rc = unsafe {
            pg_guard_ffi_boundary(|| {
                ffi::pg_regexec(
                    &mut *re.0,
                    w.as_ptr(),
                    w.len(),
                    0,
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null_mut(),
                    0,
                )
            })
        };
        match rc as u32 {
            ffi::REG_OKAY => Ok(true),
            ffi::REG_NOMATCH => Ok(false),
            _ => {
                let mut buf = [0 as std::ffi::c_char; 100];
                // SAFETY: as in compile().
                unsafe {
                    pg_guard_ffi_boundary(|| {
                        ffi::pg_regerror(rc, &*re.0, buf.as_mut_ptr(), buf.len())
                    })
                };
                // SAFETY: NUL-terminated by pg_regerror.
                let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
                Err(failed(msg.to_string_lossy().into_owned()))
            }
        }
    }
}
