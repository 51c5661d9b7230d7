//! The rules in force in this process.
//!
//! The postmaster reads the file at startup and again on each reload; backends are forked from
//! the postmaster and so start with the rules that were in force when they were forked. Nothing
//! is read from disk on a connection.

mod sealed;

use crate::postgres::catalog::PgRegexCheck;
use crate::postgres::report;
use crate::settings;
use pg_twofactor_core::rules::token::FilesDigest;
use pg_twofactor_core::rules::{self, Image, Loaded, RuleError, RuleProblem, RuleSet};
use sealed::Sealed;
use std::sync::atomic::{fence, AtomicI64, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// The image of the rules in force ([`pg_twofactor_core::rules::image`]): its sealed mapping
/// ([`Sealed::into_raw`]), which starts with the image's length. Replaced (and the old mapping
/// unmapped) only by `install`, which runs in the postmaster (start and reload), never while a
/// [`with_current`] call is running. Backends inherit the mapping at fork and only read it: no
/// lock, no reference count, nothing on the heap.
static CURRENT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// Runs `f` on the image of the rules in force; `None` only if they were never loaded (then
/// every covered login fails).
pub fn with_current<R>(f: impl FnOnce(Image<'_>) -> R) -> Option<R> {
    let at = CURRENT.load(Ordering::Acquire);
    if at.is_null() {
        return None;
    }
    // SAFETY: a non-null CURRENT comes from Sealed::into_raw in `install`; it is taken back
    // (and unmapped) only by a later `install` in the same process, which cannot run during
    // `f` (processes are single-threaded, and `install` never calls back into
    // `with_current`), so the slice does not outlive it.
    let bytes = unsafe { Sealed::bytes_at(at) };
    // `install` published only an image that read back; a failure here is refused as no rules
    Image::read(bytes).ok().map(f)
}

/// What the postmaster last did with the rules file, for [`status`]: published in a page
/// shared with every backend (a shared anonymous mapping made in the postmaster before the
/// first fork). Only the postmaster writes it, under a sequence lock (`seq` odd while writing);
/// readers retry until they see an even, unchanged `seq`. Every field is atomic, so a reader
/// racing a write sees a stale or torn value and retries, never undefined behaviour.
#[repr(C)]
struct Published {
    seq: AtomicU64,
    /// Counts the rule sets the postmaster installed that differ from the one before (1 after
    /// start).
    generation: AtomicU64,
    /// When the rules in force were loaded (PostgreSQL timestamp, microseconds since 2000).
    loaded_at: AtomicI64,
    rules: AtomicUsize,
    /// [`digest`] of the rules in force.
    digest: AtomicU64,
    /// The SHA-256 over the bytes of the files they were read from (`token::load_digest`).
    bytes_digest: [AtomicU8; 32],
    /// The last reload that failed since the last one that worked: when, and its messages.
    error_at: AtomicI64,
    error_len: AtomicUsize,
    error: [AtomicU8; ERROR_BYTES],
}

const ERROR_BYTES: usize = 2000;

static PUBLISHED: AtomicPtr<Published> = AtomicPtr::new(std::ptr::null_mut());

/// This process's copy of the generation and load time of [`CURRENT`] (inherited at fork).
static LOCAL_GENERATION: AtomicU64 = AtomicU64::new(0);
static LOCAL_LOADED_AT: AtomicI64 = AtomicI64::new(0);

/// The shared page, mapped on first use in the postmaster (at start, before any fork).
fn published() -> Option<&'static Published> {
    let p = PUBLISHED.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: a non-null PUBLISHED is a mapping of size_of::<Published>() that is never
        // unmapped, zero-initialised (all-zero atomics are valid values).
        return Some(unsafe { &*p });
    }
    // SAFETY: an anonymous shared mapping with no address hint; mmap has no other
    // preconditions. Zero-filled by the kernel.
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Published>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        return None;
    }
    PUBLISHED.store(m.cast(), Ordering::Release);
    // SAFETY: as above, just mapped.
    Some(unsafe { &*m.cast::<Published>() })
}

fn publish(write: impl FnOnce(&Published)) {
    if let Some(p) = published() {
        p.seq.fetch_add(1, Ordering::Relaxed);
        // the odd sequence number is visible before any of the writes below
        fence(Ordering::Release);
        write(p);
        p.seq.fetch_add(1, Ordering::Release);
    }
}

/// What the postmaster last published, as a backend sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub generation: u64,
    pub loaded_at: i64,
    pub rules: usize,
    pub digest: u64,
    pub bytes_digest: FilesDigest,
    /// When and why the last reload failed, if the rules were not replaced since.
    pub error: Option<(i64, String)>,
}

/// The postmaster's state, read consistently; `None` if the library never loaded rules (or,
/// in theory, if the postmaster kept rewriting it during a million attempts).
pub fn server_state() -> Option<ServerState> {
    let p = published()?;
    for _ in 0..1_000_000 {
        let before = p.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let len = p.error_len.load(Ordering::Relaxed).min(ERROR_BYTES);
        let text: Vec<u8> = p.error[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let state = ServerState {
            generation: p.generation.load(Ordering::Relaxed),
            loaded_at: p.loaded_at.load(Ordering::Relaxed),
            rules: p.rules.load(Ordering::Relaxed),
            digest: p.digest.load(Ordering::Relaxed),
            bytes_digest: p.bytes_digest.each_ref().map(|b| b.load(Ordering::Relaxed)),
            error: (len > 0).then(|| {
                (
                    p.error_at.load(Ordering::Relaxed),
                    String::from_utf8_lossy(&text).into_owned(),
                )
            }),
        };
        fence(Ordering::Acquire);
        if p.seq.load(Ordering::Relaxed) == before {
            return (state.generation > 0).then_some(state);
        }
    }
    None
}

/// The generation and load time of the rules this process uses.
pub fn local_state() -> (u64, i64) {
    (
        LOCAL_GENERATION.load(Ordering::Acquire),
        LOCAL_LOADED_AT.load(Ordering::Acquire),
    )
}

/// The rules file as it is on disk now: its rule set, or its errors.
pub fn read_disk() -> Result<RuleSet, Vec<RuleError>> {
    rules::parse_file(
        &settings::rules_file(),
        crate::postgres::SYNTAX,
        &PgRegexCheck,
    )
    .into_rule_set()
}

fn now() -> i64 {
    // SAFETY: GetCurrentTimestamp only reads the clock.
    unsafe { pgrx::pg_sys::GetCurrentTimestamp() }
}

/// The rules file loaded ([`rules::load`]), and how long reading, parsing and building its
/// image took.
fn read() -> (Result<Loaded, Vec<RuleError>>, std::time::Duration) {
    let started = std::time::Instant::now();
    let loaded = rules::load(
        &settings::rules_file(),
        crate::postgres::SYNTAX,
        &PgRegexCheck,
    );
    (loaded, started.elapsed())
}

/// The image in a sealed mapping, or the error that keeps the previous rules in force.
fn seal(loaded: &Loaded) -> Result<Sealed, RuleError> {
    let whole_file = |problem: RuleProblem| RuleError {
        file: loaded.path.clone(),
        line: None,
        problem,
    };
    let bytes = loaded.image.bytes();
    let sealed = Sealed::new(bytes).map_err(|e| {
        whole_file(RuleProblem::NotSealed {
            bytes: bytes.len(),
            why: e.to_string(),
        })
    })?;
    Image::read(sealed.bytes()).map_err(|e| whole_file(e.into()))?;
    Ok(sealed)
}

/// Puts a loaded rules file in force: its image sealed in a mapping of its own, the copy the
/// load built freed, so that the `malloc` heap every backend inherits holds no rules at all.
fn install(loaded: Loaded, load_took: std::time::Duration) -> Result<(), Vec<RuleError>> {
    let started = std::time::Instant::now();
    let sealed = seal(&loaded).map_err(|e| vec![e])?;
    let Loaded {
        path,
        image,
        rules,
        digest,
        bytes_digest,
        ..
    } = loaded;
    let msg = format!(
        "pg_twofactor: loaded {} rule(s) from \"{}\" in {:.1} ms ({} bytes)",
        rules,
        path.display(),
        (load_took + started.elapsed()).as_secs_f64() * 1000.0,
        sealed.bytes().len()
    );
    drop(image);
    let old = CURRENT.swap(sealed.into_raw(), Ordering::AcqRel);
    let loaded_at = now();
    let mut generation = 0;
    publish(|p| {
        // a reload that leaves the rules as they were keeps the generation: sessions forked
        // before it still hold the rules in force
        let same =
            p.generation.load(Ordering::Relaxed) > 0 && p.digest.load(Ordering::Relaxed) == digest;
        generation = if same {
            p.generation.load(Ordering::Relaxed)
        } else {
            p.generation.fetch_add(1, Ordering::Relaxed) + 1
        };
        p.loaded_at.store(loaded_at, Ordering::Relaxed);
        p.rules.store(rules, Ordering::Relaxed);
        p.digest.store(digest, Ordering::Relaxed);
        for (slot, b) in p.bytes_digest.iter().zip(bytes_digest) {
            slot.store(b, Ordering::Relaxed);
        }
        p.error_len.store(0, Ordering::Relaxed);
    });
    LOCAL_GENERATION.store(generation, Ordering::Release);
    LOCAL_LOADED_AT.store(loaded_at, Ordering::Release);
    if !old.is_null() {
        // SAFETY: `old` came from Sealed::into_raw in an earlier install and was just
        // unpublished; no with_current call is running (see CURRENT).
        drop(unsafe { Sealed::from_raw(old) });
    }
    // Hand the freed memory back to the OS so the postmaster stays small.
    pg_twofactor_core::os::trim_malloc_heap();
    report::log_info(&msg);
    Ok(())
}

/// A WARNING when the rules file about to be put in force does not end with a newline. A file
/// cut short (written in place on a full disk, an interrupted copy) usually ends inside a line,
/// which is an error; a cut just before a line's newline leaves a valid file that may lack the
/// rules after it, and this says so. (A cut just after a newline cannot be seen at all.)
/// PostgreSQL accepts such a file, and so does pg_twofactor. Only the main file is checked, from
/// the bytes the load read (the file is not opened again).
fn warn_if_unterminated(loaded: &Loaded) {
    if loaded.unterminated {
        let path = &loaded.path;
        report::warn_config(
            &format!(
                "pg_twofactor rules file \"{}\" does not end with a newline",
                path.display()
            ),
            Some("If the file was cut short (written in place on a full disk, an interrupted copy), the rules after its last line are missing: check that its last rule is the one it should end with. Replace the file by writing a new one beside it and renaming it over the old one."),
        );
    }
}

/// Reads the rules file and puts it in force; an invalid file is logged line by line and its
/// errors returned (the rules in force stay as they were).
fn load() -> Result<(), Vec<RuleError>> {
    let (loaded, took) = read();
    let installed = loaded.and_then(|loaded| {
        // before the "loaded" line, which is what a reload is known to be done by
        warn_if_unterminated(&loaded);
        install(loaded, took)
    });
    if let Err(errors) = &installed {
        for e in errors {
            report::log_config(&e.to_string());
        }
    }
    installed
}

/// At server start: a missing or invalid file stops the server, naming the file and line.
pub fn load_at_startup() {
    // SAFETY: a plain read of a PostgreSQL global in the postmaster's main thread; the ssl
    // setting has been read from postgresql.conf before shared_preload_libraries are loaded.
    if !unsafe { pgrx::pg_sys::EnableSSL } {
        report::warn_config(
            "pg_twofactor: ssl is off, so every login a pg_twofactor rule covers will be refused",
            Some("Set ssl = on and ssl_ca_file; pg_twofactor also re-reads its rules only when TLS is re-initialised on reload."),
        );
    }
    if let Err(errors) = load() {
        report::fatal_config(
            &format!(
                "could not load pg_twofactor rules file \"{}\": {}",
                settings::rules_file().display(),
                errors[0]
            ),
            Some("Fix the rules file (see the lines logged above) and start the server again."),
        );
    }
}

/// On reload: a valid file replaces the rules; an invalid one is logged line by line and the
/// previous rules stay in force.
pub fn reload() {
    if let Err(errors) = load() {
        report::log_config(&format!(
            "pg_twofactor rules file \"{}\" was not reloaded; the previous rules stay in force",
            settings::rules_file().display()
        ));
        let text = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let mut bytes = text.as_bytes();
        if bytes.len() > ERROR_BYTES {
            bytes = &bytes[..ERROR_BYTES];
        }
        let at = now();
        publish(|p| {
            for (slot, b) in p.error.iter().zip(bytes) {
                slot.store(*b, Ordering::Relaxed);
            }
            p.error_len.store(bytes.len(), Ordering::Relaxed);
            p.error_at.store(at, Ordering::Relaxed);
        });
    }
}
