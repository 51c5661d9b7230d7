//! The GUCs, registered in one place and read through typed accessors.

use pg_twofactor_core::methods::MethodSet;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub const DEFAULT_HBA_FILE: &str = "pg_twofactor_hba.conf";

static HBA_FILE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"pg_twofactor_hba.conf"));
static EXTRA_METHODS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));

/// `pg_twofactor.log_decisions`: which decisions get a LOG line.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogDecisions {
    #[name = c"off"]
    Off,
    #[name = c"refused"]
    Refused,
    #[name = c"all"]
    All,
}

static CLIENT_REASON: GucSetting<bool> = GucSetting::<bool>::new(false);

static HANDSHAKE_CHECK: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `pg_twofactor.expiry_warning`, in minutes (PostgreSQL time units: '14d', '36h').
static EXPIRY_WARNING: GucSetting<i32> = GucSetting::<i32>::new(14 * 24 * 60);

static LOG_DECISIONS: GucSetting<LogDecisions> = GucSetting::<LogDecisions>::new(LogDecisions::Off);

/// The parsed value of `pg_twofactor.enabled_extra_auth_methods`, kept by its assign hook so
/// the login hook never parses it. Processes are single-threaded; the atomic only avoids
/// `static mut`.
static ENABLED_BITS: AtomicU32 = AtomicU32::new(0);

/// "Two-factor methods enabled besides 2f-scram-sha-256 and 2f-ldap.", from the method table.
fn extra_methods_description() -> &'static std::ffi::CStr {
    let always = pg_twofactor_core::methods::names(true);
    let text = match always.rsplit_once(", ") {
        Some((head, last)) => format!("Two-factor methods enabled besides {head} and {last}."),
        None => format!("Two-factor methods enabled besides {always}."),
    };
    // registered once per process, for the life of the process (PostgreSQL keeps the pointer)
    Box::leak(
        std::ffi::CString::new(text)
            .expect("method names hold no NUL")
            .into_boxed_c_str(),
    )
}

pub fn init() {
    ENABLED_BITS.store(MethodSet::defaults().bits(), Ordering::Relaxed);
    // SAFETY: the hooks are #[pg_guard]ed, so a Rust panic becomes a PostgreSQL error.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"pg_twofactor.hba_file",
            c"The pg_twofactor rules file.",
            c"A relative path is resolved against the directory that holds pg_hba.conf. Re-read on reload.",
            &HBA_FILE,
            GucContext::Sighup,
            GucFlags::SUPERUSER_ONLY,
            Some(check_hba_file),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"pg_twofactor.enabled_extra_auth_methods",
            extra_methods_description(),
            c"A comma-separated list, for example '2f-md5, 2f-password'.",
            &EXTRA_METHODS,
            GucContext::Sighup,
            GucFlags::from_bits_retain(pg_sys::GUC_LIST_INPUT as i32),
            Some(check_extra_methods),
            Some(assign_extra_methods),
            None,
        );
    }
    GucRegistry::define_enum_guc(
        c"pg_twofactor.log_decisions",
        c"Which two-factor decisions are logged: off, refused or all.",
        c"One LOG line per decision with the rule file and line, the pg_hba.conf line PostgreSQL used, the verdict and the reason.",
        &LOG_DECISIONS,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_bool_guc(
        c"pg_twofactor.client_reason",
        c"Whether a client refused by pg_twofactor is told the reason.",
        c"Off by default: pg_twofactor decides after the password check, so a reason shown to the client would tell it that the password was right. When off, the client is sent PostgreSQL's own failure of the pg_hba.conf method (for example 28P01 password authentication failed) and the server log keeps the reason. With scram-sha-256, PostgreSQL has already sent SCRAM's final message, which a client speaking the protocol itself can see.",
        &CLIENT_REASON,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_bool_guc(
        c"pg_twofactor.handshake_check",
        c"Whether a client certificate is checked against the client's address during the TLS handshake.",
        c"When on, a client certificate whose SubjectAltName names IP addresses, subnets or DNS names, none of which is the client's, fails the TLS handshake: no login and no password exchange follow, whatever the login. Certificates without such entries, and clients without a certificate, are left to the rules and pg_hba.conf.",
        &HANDSHAKE_CHECK,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_twofactor.expiry_warning",
        c"Warn about a login whose client certificate expires within this time.",
        c"The server log gets a WARNING and the client a NOTICE. 0 turns the warning off.",
        &EXPIRY_WARNING,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_MIN,
    );
    // SAFETY: called from _PG_init in the postmaster, after our GUCs are defined, as
    // PostgreSQL's own contrib modules do; the name is a NUL-terminated static string.
    // From here on an unknown pg_twofactor.* setting is reported instead of kept as a
    // placeholder.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"pg_twofactor".as_ptr()) };
}

/// Whether the client is told why pg_twofactor refused it.
pub fn client_reason() -> bool {
    CLIENT_REASON.get()
}

/// Whether the TLS handshake checks a client certificate's address binding.
pub fn handshake_check() -> bool {
    HANDSHAKE_CHECK.get()
}

/// How long before its expiry a certificate gets a warning, in seconds; 0: never.
pub fn expiry_warning_secs() -> i64 {
    i64::from(EXPIRY_WARNING.get()) * 60
}

/// Which decisions to log.
pub fn log_decisions() -> LogDecisions {
    LOG_DECISIONS.get()
}

/// # Safety
/// Called by PostgreSQL's GUC machinery with a valid (possibly null) string.
unsafe fn value_of(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per the contract, a non-null pointer is a NUL-terminated GUC string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Tells the GUC machinery why a value was rejected.
fn reject_with_detail(detail: &str) -> bool {
    let detail = CString::new(detail).unwrap_or_default();
    // SAFETY: GUC_check_errdetail_string is read by the GUC code right after the check hook
    // returns false; pstrdup copies into the current memory context, which outlives that use.
    unsafe { pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr()) };
    false
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_hba_file(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value.
    let value = unsafe { value_of(*newval) };
    if value.trim().is_empty() {
        return reject_with_detail("The rules file name must not be empty.");
    }
    true
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_extra_methods(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value.
    let value = unsafe { value_of(*newval) };
    match MethodSet::parse_extra(&value) {
        Ok(_) => true,
        Err(e) => reject_with_detail(&pg_twofactor_core::decision::sentence(&e.to_string())),
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_extra_methods(newval: *const c_char, _extra: *mut c_void) {
    // SAFETY: PostgreSQL passes the value its check hook accepted.
    let value = unsafe { value_of(newval) };
    // The check hook accepted it; should parsing fail anyway, keep only the defaults (fail closed).
    let set = MethodSet::parse_extra(&value).unwrap_or_else(|_| MethodSet::defaults());
    ENABLED_BITS.store(set.bits(), Ordering::Relaxed);
}

/// The enabled two-factor methods.
pub fn enabled_methods() -> MethodSet {
    MethodSet::from_bits(ENABLED_BITS.load(Ordering::Relaxed))
}

/// The directory holding pg_hba.conf.
fn hba_conf_dir() -> PathBuf {
    // SAFETY: HbaFileName is set by PostgreSQL before shared_preload_libraries are loaded and
    // stays a valid NUL-terminated string (or null) for the life of the process.
    let hba = unsafe {
        let p = pg_sys::HbaFileName;
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    hba.as_deref()
        .and_then(|h| Path::new(h).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The rules file, with a relative `pg_twofactor.hba_file` resolved against pg_hba.conf's
/// directory.
pub fn rules_file() -> PathBuf {
    // The check hook rejects an empty value; a null one (never set) means the default.
    let value = HBA_FILE
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_HBA_FILE.to_string());
    let p = PathBuf::from(value);
    if p.is_absolute() {
        p
    } else {
        hba_conf_dir().join(p)
    }
}
