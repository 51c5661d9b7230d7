//! The tokenizer: PostgreSQL's `next_token`, `next_field_expand` and `tokenize_auth_file`
//! (`src/backend/libpq/hba.c`), over bytes, for the major the library is built for.
//!
//! What it reproduces, each with the place in `hba.c` (15 and 16+ unless said otherwise):
//! - physical lines are read up to `\n` and stripped of trailing `\r`/`\n` (`pg_strip_crlf`);
//!   a NUL byte is an error of its record (PostgreSQL reads lines as C strings, so what it
//!   makes of a NUL depends on `fgets` buffer sizes; pg_twofactor refuses to guess);
//! - a line ending in `\` continues on the next one, joined *as is*, no blank inserted, and the
//!   record keeps the number of its first line (`tokenize_auth_file`);
//! - blanks are space, tab and CR (`pg_isblank`); blanks *and commas* before a token are
//!   skipped, so `a, ,b` is `a,b` and a trailing comma is ignored (`next_token`);
//! - a `"` opens or closes quoting anywhere in a token and `""` inside quotes is a literal `"`;
//!   a token is *quoted* (a keyword in it is a plain name, `@` does not include) only when its
//!   first character is a quote: `+"Domain Admins"` is a role-membership check, `"+admins"` a
//!   name (`initial_quote`);
//! - an unquoted `#` starts a comment, even in the middle of a token;
//! - 15: a token may hold at most 255 bytes ("authentication file token too long",
//!   `MAX_TOKEN`); 16+: no limit;
//! - `@file` (unquoted, more than the `@`) is replaced by every token of that file, relative
//!   to the including file (`tokenize_inc_file` in 15, `tokenize_expand_file` in 16+);
//! - 16+: a record of exactly two fields whose first token is `include`, `include_if_exists`
//!   or `include_dir` pulls in other files' records (`tokenize_include_file`,
//!   `GetConfFilesInDir`), each keeping its own file name and line numbers.
//!
//! Files are read as bytes with [`read_limited`]: regular files only, at most
//! [`MAX_FILE_BYTES`], never blocking on a FIFO or device.

use super::error::{OpenFailure, TokenError};
use super::scratch::Scratch;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Whose `pg_hba.conf` syntax the rules follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// PostgreSQL 15: no regular expressions, no `include` directives, 255-byte tokens.
    Pg15,
    /// PostgreSQL 16, 17 and 18: `/regex` names, `include*` directives, unlimited tokens.
    Pg16,
}

impl Syntax {
    /// The syntax of a PostgreSQL major (`None` for one pg_twofactor does not support). 16, 17
    /// and 18 share it: 17.6's `hba.c` has 16.2's `next_token`, `next_field_expand`,
    /// `tokenize_auth_file`, `include*` directives, `check_db`, `check_role`, `check_hostname`
    /// and regex handling unchanged (17 only dropped the `db_user_namespace` md5 check of
    /// `parse_hba_line`, which the rules do not have); 18 added the `oauth` method only
    /// ([`crate::methods::BaseMethod::from_name`] takes the major for that).
    pub const fn of_major(major: u32) -> Option<Syntax> {
        match major {
            15 => Some(Syntax::Pg15),
            16..=18 => Some(Syntax::Pg16),
            _ => None,
        }
    }

    /// Whether a name starting with `/` is a regular expression (PostgreSQL 16+).
    pub fn has_regex(self) -> bool {
        self == Syntax::Pg16
    }

    fn has_include_directives(self) -> bool {
        self == Syntax::Pg16
    }

    /// `MAX_TOKEN - 1` in PostgreSQL 15's `next_token`.
    fn max_token(self) -> Option<usize> {
        match self {
            Syntax::Pg15 => Some(255),
            Syntax::Pg16 => None,
        }
    }
}

/// Nesting limit of `@file` and `include` (PostgreSQL 16's `CONF_FILE_MAX_DEPTH`; 15 has no
/// limit and overflows its stack on a cycle, so no working 15 configuration is refused here).
pub const MAX_DEPTH: usize = 10;

/// The largest rules or included file read (a FIFO or `/dev/zero` must not bloat the
/// postmaster during a reload).
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// One token: its bytes with quotes removed, and whether it started with a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: Vec<u8>,
    pub quoted: bool,
}

impl Token {
    /// `token_is_keyword`: unquoted and exactly `kw`.
    pub fn is_keyword(&self, kw: &str) -> bool {
        !self.quoted && self.text == kw.as_bytes()
    }

    /// The token for messages (lossy only here).
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// The comma-separated tokens of one field.
pub type Field = Vec<Token>;

/// One record as the tokenizer leaves it.
#[derive(Debug, Clone)]
pub struct TokLine {
    /// The file the record is in (an included file for records pulled in by `include`).
    pub file: Arc<PathBuf>,
    /// The number of its first line in that file.
    pub line: usize,
    /// The fields, or the tokenizer's error for the record.
    pub fields: Result<Vec<Field>, TokenError>,
}

/// Why a rules or included file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Loading it would need more memory than can be had now ([`memory_headroom`]).
    #[error("not enough memory to load the rules: {total} bytes of rules files so far (this file {len}) need about {need_mb} MB while they are loaded ({why})")]
    Memory {
        total: u64,
        len: u64,
        need_mb: u64,
        why: String,
    },
    /// It could not be opened or read, or is not a regular file of at most
    /// [`MAX_FILE_BYTES`] (the message as PostgreSQL's `%m` prints it).
    #[error("{}", os_message(.0))]
    Io(#[from] std::io::Error),
}

impl ReadError {
    /// The I/O error's kind (`None` for a lack of memory).
    pub fn kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            ReadError::Memory { .. } => None,
            ReadError::Io(e) => Some(e.kind()),
        }
    }
}

/// `strerror` text of an I/O error, as PostgreSQL's `%m` prints it.
pub fn os_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Loading rules files takes at most about this many times their size in address space at its
/// peak (the text, the parsed rules and their frozen copy; `benches/memory.rs` measures 39 at
/// 100,000 rules and 42 at 10,000; BENCHMARKS.md "Memory a load needs at its peak"), plus [`LOAD_MEMORY_SLACK`].
pub const LOAD_MEMORY_FACTOR: u64 = 64;
pub const LOAD_MEMORY_SLACK: u64 = 8 * 1024 * 1024;

/// Checks that the memory loading the rules files read so far plus this one of `len` bytes
/// needs can be had right now, by mapping
/// that much (writable, private: it counts against `RLIMIT_AS` and the overcommit limit like
/// the allocations it stands for) and unmapping it untouched. The postmaster cannot recover
/// from an allocation failing halfway through a load (Rust aborts, as PostgreSQL's own
/// `pg_hba.conf` reload turns out-of-memory into FATAL there); this turns the foreseeable
/// shortage into an error of the file, and the previous rules stay in force.
pub fn memory_headroom(len: u64) -> Result<(), ReadError> {
    let total = LOAD_BYTES.get().saturating_add(len);
    let need = total
        .saturating_mul(LOAD_MEMORY_FACTOR)
        .saturating_add(LOAD_MEMORY_SLACK);
    memory_available(need).map_err(|e| ReadError::Memory {
        total,
        len,
        need_mb: need / (1024 * 1024),
        why: os_message(&e),
    })?;
    LOAD_BYTES.set(total);
    Ok(())
}

pub use crate::os::memory_available;

thread_local! {
    /// Bytes of rules files read so far by the load running on this thread: every file of a
    /// load (includes, `@file`s, each time referenced) is tokenized before any is parsed and
    /// frozen, so the memory a load needs grows with their sum.
    static LOAD_BYTES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The digest of everything the load running on this thread has read so far
    /// ([`load_digest`]): each file's length and bytes, in the order they were read.
    static LOAD_DIGEST: std::cell::RefCell<Sha256> = std::cell::RefCell::new(Sha256::new());
}

/// Starts counting a new load for [`memory_headroom`].
pub fn start_load() {
    LOAD_BYTES.set(0);
    LOAD_DIGEST.with_borrow_mut(|d| *d = Sha256::new());
}

/// Reads a whole file as bytes: a regular file of at most [`MAX_FILE_BYTES`], when the memory
/// to load it is there ([`memory_headroom`]). Opening does not block (a FIFO is refused, not
/// waited on).
pub fn read_limited(path: &Path) -> Result<Scratch<u8>, ReadError> {
    let bytes = read_limited_uncounted(path)?;
    LOAD_DIGEST.with_borrow_mut(|d| digest_step(d, &bytes));
    Ok(bytes)
}

/// A SHA-256 over the bytes of the files in force.
pub type FilesDigest = [u8; 32];

/// A SHA-256 over the bytes of every file a load read (the rules file and everything it
/// includes, each time it is read, in that order, each preceded by its length as 8 bytes
/// big-endian; not their paths, which may differ between nodes), so nodes can tell whether
/// they enforce files that are byte for byte the same.
pub fn load_digest() -> FilesDigest {
    LOAD_DIGEST.with_borrow(|d| d.clone().finalize().into())
}

fn digest_step(digest: &mut Sha256, bytes: &[u8]) {
    // with its length: the files' boundaries count
    digest.update((bytes.len() as u64).to_be_bytes());
    digest.update(bytes);
}

/// Lower-case hexadecimal, as `sha256sum` prints a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_limited_uncounted(path: &Path) -> Result<Scratch<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (pg_twofactor reads regular files only)",
        )
        .into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(
            std::io::Error::other(format!("file is larger than {MAX_FILE_BYTES} bytes")).into(),
        );
    }
    memory_headroom(meta.len())?;
    let mut buf = Scratch::new();
    buf.reserve_exact(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(
            std::io::Error::other(format!("file is larger than {MAX_FILE_BYTES} bytes")).into(),
        );
    }
    Ok(buf)
}

/// `canonicalize_path` for the cases that matter here: drops `.` and empty components and
/// folds `dir/..`.
pub fn canonical_path(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    out.iter().collect()
}

/// `AbsoluteConfigLocation` (16+) / `tokenize_inc_file` (15): `location` relative to the
/// directory of `calling_file`. 16's `canonicalize_path` folds `dir/..`; 15's left a `..` in
/// the middle of a path to the kernel (which differs where `dir` is a symbolic link).
pub fn relative_to(location: &[u8], calling_file: &Path, syntax: Syntax) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let loc = Path::new(std::ffi::OsStr::from_bytes(location));
    if loc.is_absolute() {
        return loc.to_path_buf();
    }
    let dir = calling_file.parent().unwrap_or(Path::new("/"));
    match syntax {
        Syntax::Pg16 => canonical_path(&dir.join(loc)),
        Syntax::Pg15 => dir.join(loc).components().collect(),
    }
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\r'
}

/// The physical-to-logical line step of `tokenize_auth_file`: each record's text and the
/// number of its first line.
pub fn logical_lines(bytes: &[u8]) -> Scratch<(usize, Vec<u8>)> {
    let mut out = Scratch::new();
    let mut rest = bytes;
    let mut line_number = 1;
    while !rest.is_empty() {
        let mut buf: Vec<u8> = Vec::new();
        let mut last_backslash_len = 0;
        let mut continuations = 0;
        // pg_get_line_append until a line does not end in a backslash (or the file ends)
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            buf.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            if buf.len() > last_backslash_len && buf.last() == Some(&b'\\') {
                buf.pop();
                last_backslash_len = buf.len();
                continuations += 1;
                continue;
            }
            break;
        }
        out.push((line_number, buf));
        line_number += continuations + 1;
    }
    out
}

/// `next_token`: the next token of `line` from `*pos`, with whether a comma ended it.
/// `Ok(None)` at the end of the line or at a comment.
fn next_token(
    line: &[u8],
    pos: &mut usize,
    syntax: Syntax,
) -> Result<Option<(Token, bool)>, TokenError> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut i = *pos;
    while at(i) != 0 && (is_blank(at(i)) || at(i) == b',') {
        i += 1;
    }
    let mut buf = Vec::new();
    let (mut in_quote, mut was_quote, mut saw_quote) = (false, false, false);
    let (mut initial_quote, mut comma) = (false, false);
    while at(i) != 0 && (!is_blank(at(i)) || in_quote) {
        let c = at(i);
        if c == b'#' && !in_quote {
            i = line.len();
            break;
        }
        if syntax.max_token().is_some_and(|max| buf.len() >= max) {
            *pos = line.len();
            return Err(TokenError::TooLong);
        }
        if c == b',' && !in_quote {
            // (left where it is: the next call skips leading blanks and commas)
            comma = true;
            break;
        }
        if c != b'"' || was_quote {
            buf.push(c);
        }
        was_quote = in_quote && c == b'"' && !was_quote;
        if c == b'"' {
            in_quote = !in_quote;
            saw_quote = true;
            if buf.is_empty() {
                initial_quote = true;
            }
        }
        i += 1;
    }
    *pos = i;
    if saw_quote || !buf.is_empty() {
        Ok(Some((
            Token {
                text: buf,
                quoted: initial_quote,
            },
            comma,
        )))
    } else {
        Ok(None)
    }
}

/// Includes one file (name, missing is fine, records out).
type IncludeFn<'a> = dyn Fn(&[u8], bool, &mut Vec<TokLine>) -> Result<(), TokenError> + 'a;

/// Reads and tokenizes files, following `@file` and `include*` (16+) as PostgreSQL does.
pub struct Tokenizer {
    pub syntax: Syntax,
}

impl Tokenizer {
    /// Every record of `path` (and of the files it includes), in order. A file that cannot be
    /// read is an `Err`; errors inside it are records with an error.
    /// Also says whether the file (not empty) lacks a final newline, from the bytes read.
    pub fn file(&self, path: &Path) -> Result<(Scratch<TokLine>, bool), ReadError> {
        start_load();
        let bytes = read_limited(path)?;
        let unterminated = bytes.last().is_some_and(|b| *b != b'\n');
        let mut out = Scratch::new();
        self.text(path, &bytes, 0, &mut out);
        Ok((out, unterminated))
    }

    /// Tokenizes `bytes` as the contents of `path` (at include depth `depth`) into `out`.
    pub fn text(&self, path: &Path, bytes: &[u8], depth: usize, out: &mut Vec<TokLine>) {
        let file = Arc::new(path.to_path_buf());
        for (line, text) in logical_lines(bytes).drain(..) {
            let mut fields = Vec::new();
            let mut pos = 0;
            let mut err = text.contains(&0).then_some(TokenError::NulByte);
            while pos < text.len() && err.is_none() {
                let before = pos;
                match self.field(&text, &mut pos, path, depth) {
                    // (a field that read nothing is the end of the line: never loop on it)
                    Ok(_) if pos == before => break,
                    Ok(f) if f.is_empty() => {}
                    Ok(f) => fields.push(f),
                    Err(e) => err = Some(e),
                }
            }
            if fields.is_empty() && err.is_none() {
                continue;
            }
            if err.is_none() && fields.len() == 2 && self.syntax.has_include_directives() {
                match self.directive(&fields, path, depth, out) {
                    Some(Ok(())) => continue,
                    Some(Err(e)) => err = Some(e),
                    None => {}
                }
            }
            out.push(TokLine {
                file: file.clone(),
                line,
                fields: match err {
                    Some(e) => Err(e),
                    None => Ok(fields),
                },
            });
        }
    }

    /// `next_field_expand`: one field's tokens, `@file` expanded.
    fn field(
        &self,
        line: &[u8],
        pos: &mut usize,
        path: &Path,
        depth: usize,
    ) -> Result<Field, TokenError> {
        let mut tokens = Vec::new();
        while let Some((tok, comma)) = next_token(line, pos, self.syntax)? {
            if !tok.quoted && tok.text.len() > 1 && tok.text[0] == b'@' {
                self.expand_at_file(&tok.text[1..], path, depth + 1, &mut tokens)?;
            } else {
                tokens.push(tok);
            }
            if !comma {
                break;
            }
        }
        Ok(tokens)
    }

    fn open_error(&self, name: &[u8], full: &Path, why: OpenFailure) -> TokenError {
        TokenError::Open {
            // 15 reads only `@file`s, and its message quotes the name
            at_name: match self.syntax {
                Syntax::Pg15 => Some(String::from_utf8_lossy(name).into_owned()),
                Syntax::Pg16 => None,
            },
            file: full.to_path_buf(),
            why,
        }
    }

    /// Reads an included file (`@file` or `include*`) at `depth`.
    fn read_included(
        &self,
        name: &[u8],
        full: &Path,
        depth: usize,
    ) -> Result<Scratch<u8>, (Option<std::io::ErrorKind>, TokenError)> {
        if depth > MAX_DEPTH {
            return Err((None, self.open_error(name, full, OpenFailure::TooDeep)));
        }
        read_limited(full).map_err(|e| {
            let why = OpenFailure::Read(e.to_string());
            (e.kind(), self.open_error(name, full, why))
        })
    }

    /// `tokenize_expand_file`: appends every token of the file to `tokens`.
    fn expand_at_file(
        &self,
        name: &[u8],
        outer: &Path,
        depth: usize,
        tokens: &mut Field,
    ) -> Result<(), TokenError> {
        let full = relative_to(name, outer, self.syntax);
        let bytes = self.read_included(name, &full, depth).map_err(|(_, e)| e)?;
        let mut lines = Vec::new();
        self.text(&full, &bytes, depth, &mut lines);
        for l in lines {
            for f in l.fields? {
                tokens.extend(f);
            }
        }
        Ok(())
    }

    /// 16+: handles an `include`, `include_if_exists` or `include_dir` record. `None` when the
    /// record is not one.
    fn directive(
        &self,
        fields: &[Field],
        path: &Path,
        depth: usize,
        out: &mut Vec<TokLine>,
    ) -> Option<Result<(), TokenError>> {
        let first = &fields[0][0].text;
        let second = &fields[1][0].text;
        let include = |name: &[u8], missing_ok: bool, out: &mut Vec<TokLine>| {
            let full = relative_to(name, path, self.syntax);
            match self.read_included(name, &full, depth + 1) {
                Ok(bytes) => {
                    self.text(&full, &bytes, depth + 1, out);
                    Ok(())
                }
                Err((Some(std::io::ErrorKind::NotFound), _)) if missing_ok => Ok(()),
                Err((_, e)) => Err(e),
            }
        };
        match first.as_slice() {
            b"include" => Some(include(second, false, out)),
            b"include_if_exists" => Some(include(second, true, out)),
            b"include_dir" => Some(self.include_dir(second, path, out, &include)),
            _ => None,
        }
    }

    /// `GetConfFilesInDir` + `tokenize_include_file` for each file: `*.conf` not starting with
    /// `.`, directories skipped, in byte order of the full path; errors are collected.
    fn include_dir(
        &self,
        dir_name: &[u8],
        path: &Path,
        out: &mut Vec<TokLine>,
        include: &IncludeFn<'_>,
    ) -> Result<(), TokenError> {
        use std::os::unix::ffi::OsStrExt;
        if dir_name.iter().all(|c| b" \t\r\n".contains(c)) {
            return Err(TokenError::EmptyDirectoryName);
        }
        let dir = relative_to(dir_name, path, self.syntax);
        let entries =
            std::fs::read_dir(&dir).map_err(|_| TokenError::OpenDirectory(dir.clone()))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|_| TokenError::OpenDirectory(dir.clone()))?;
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.len() < 6 || name[0] == b'.' || !name.ends_with(b".conf") {
                continue;
            }
            let full = canonical_path(&dir.join(std::ffi::OsStr::from_bytes(name)));
            let meta = std::fs::metadata(&full).map_err(|_| TokenError::StatFile(full.clone()))?;
            if !meta.is_dir() {
                files.push(full);
            }
        }
        files.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        let mut errors = Vec::new();
        for f in files {
            if let Err(e) = include(f.as_os_str().as_bytes(), false, out) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TokenError::InDirectory(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_canonicalized_as_postgresql_16_does() {
        for (path, canonical) in [
            ("/a/b/../c", "/a/c"),
            ("/a/./b//c/", "/a/b/c"),
            ("/../a", "/a"),
            ("/a/..", "/"),
            ("a/../../b", "../b"),
        ] {
            assert_eq!(
                canonical_path(Path::new(path)),
                Path::new(canonical),
                "{path}"
            );
        }
    }

    #[test]
    fn blanks_are_space_tab_and_carriage_return() {
        assert!([b' ', b'\t', b'\r'].into_iter().all(is_blank));
        assert!(![b'\n', b'\x0b', b'\x0c', b'a', b',']
            .into_iter()
            .any(is_blank));
    }

    #[test]
    fn a_continuation_never_eats_the_backslash_before_it() {
        // "a" and two backslashes, then an empty line: the second backslash continues the line,
        // the first stays (PostgreSQL's last_backslash_buflen), and the empty line ends it
        assert_eq!(
            *logical_lines(b"a\\\\\n\nb\n"),
            vec![(1, b"a\\".to_vec()), (3, b"b".to_vec())]
        );
    }

    #[test]
    fn the_syntax_of_each_major() {
        assert_eq!(Syntax::of_major(14), None);
        assert_eq!(Syntax::of_major(15), Some(Syntax::Pg15));
        for major in 16..=18 {
            assert_eq!(Syntax::of_major(major), Some(Syntax::Pg16), "{major}");
        }
        assert_eq!(Syntax::of_major(19), None);
    }

    #[test]
    fn the_memory_a_load_needs_is_asked_for_first() {
        assert_eq!(MAX_FILE_BYTES, 33_554_432);
        assert!(memory_available(1 << 20).is_ok());
        // more than any address space
        assert!(memory_available(1 << 62).is_err());
        start_load();
        match memory_headroom(1 << 50) {
            Err(ReadError::Memory {
                total,
                len,
                need_mb,
                ..
            }) => {
                // 64 times the bytes read, plus 8 MB
                assert_eq!((total, len, need_mb), (1 << 50, 1 << 50, (1 << 36) + 8));
            }
            other => panic!("{other:?}"),
        }
        // a failed check counts nothing; a small one counts its bytes
        assert!(memory_headroom(10).is_ok());
        assert_eq!(LOAD_BYTES.get(), 10);
        start_load();
        assert_eq!(LOAD_BYTES.get(), 0);
    }

    #[test]
    fn a_file_of_the_limit_is_read_whole_and_one_byte_more_refused() {
        let dir = std::env::temp_dir().join(format!("pg2f-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // sparse files of exactly the limit (read whole) and one byte more (refused)
        let at_limit = dir.join("at-limit");
        std::fs::File::create(&at_limit)
            .unwrap()
            .set_len(MAX_FILE_BYTES)
            .unwrap();
        start_load();
        assert_eq!(
            read_limited(&at_limit).unwrap().len() as u64,
            MAX_FILE_BYTES
        );
        let over = dir.join("over");
        std::fs::File::create(&over)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        assert_eq!(
            read_limited(&over).unwrap_err().to_string(),
            "file is larger than 33554432 bytes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn t(text: &str, quoted: bool) -> Token {
        Token {
            text: text.as_bytes().to_vec(),
            quoted,
        }
    }

    fn fields(syntax: Syntax, text: &str) -> Result<Vec<Field>, TokenError> {
        let mut out = Vec::new();
        Tokenizer { syntax }.text(
            Path::new("/nonexistent/r.conf"),
            text.as_bytes(),
            0,
            &mut out,
        );
        assert!(out.len() <= 1, "one record expected: {out:?}");
        out.pop().map(|l| l.fields).unwrap_or(Ok(Vec::new()))
    }

    fn both(text: &str) -> Result<Vec<Field>, TokenError> {
        let a = fields(Syntax::Pg15, text);
        assert_eq!(
            a,
            fields(Syntax::Pg16, text),
            "15 and 16 differ on {text:?}"
        );
        a
    }

    #[test]
    fn quotes_mark_a_token_only_when_they_start_it() {
        assert_eq!(
            both("+\"Domain Admins\" \"+x\" al\"l\" \"\"").unwrap(),
            vec![
                vec![t("+Domain Admins", false)],
                vec![t("+x", true)],
                vec![t("all", false)],
                vec![t("", true)],
            ]
        );
        assert_eq!(
            both("\"say \"\"hi\"\"\"").unwrap(),
            vec![vec![t("say \"hi\"", true)]]
        );
        // an unterminated quote takes the rest of the line, as in PostgreSQL
        assert_eq!(both("\"open x").unwrap(), vec![vec![t("open x", true)]]);
    }

    #[test]
    fn commas_and_blanks_as_postgresql_reads_them() {
        assert_eq!(
            both("a, ,b c ,d e,").unwrap(),
            vec![
                vec![t("a", false), t("b", false)],
                vec![t("c", false)],
                vec![t("d", false)],
                vec![t("e", false)],
            ]
        );
        assert_eq!(
            both("a,,b").unwrap(),
            vec![vec![t("a", false), t("b", false)]]
        );
        assert_eq!(both(",a").unwrap(), vec![vec![t("a", false)]]);
        assert_eq!(both("\"a,b\"").unwrap(), vec![vec![t("a,b", true)]]);
        assert_eq!(both("a#b c").unwrap(), vec![vec![t("a", false)]]);
        assert_eq!(both("# only a comment").unwrap(), Vec::<Field>::new());
        assert_eq!(
            both("\"#\" x").unwrap(),
            vec![vec![t("#", true)], vec![t("x", false)]]
        );
    }

    #[test]
    fn continuation_joins_lines_as_they_are() {
        let l = logical_lines(b"hostssl all ad\\\nmin all 2f-md5\nnext\n");
        assert_eq!(l[0], (1, b"hostssl all admin all 2f-md5".to_vec()));
        assert_eq!(l[1], (3, b"next".to_vec()));
        let l = logical_lines(b"a\\\r\n\\\nb\r\nc");
        assert_eq!(*l, vec![(1, b"ab".to_vec()), (4, b"c".to_vec())]);
        // a NUL is kept (and makes its record an error, see names_are_bytes)
        assert_eq!(
            *logical_lines(b"ab\0cd\nx"),
            vec![(1, b"ab\0cd".to_vec()), (2, b"x".to_vec())]
        );
        // a backslash at the end of the file
        assert_eq!(*logical_lines(b"a\\"), vec![(1, b"a".to_vec())]);
    }

    #[test]
    fn token_length_limit_is_15_only() {
        let long = "x".repeat(256);
        assert_eq!(
            fields(Syntax::Pg15, &format!("a {long}"))
                .unwrap_err()
                .to_string(),
            "authentication file token too long"
        );
        assert_eq!(
            fields(Syntax::Pg16, &format!("a {long}")).unwrap()[1][0]
                .text
                .len(),
            256
        );
        assert!(fields(Syntax::Pg15, &"y".repeat(255)).is_ok());
    }

    #[test]
    fn names_are_bytes() {
        let f = both("caf\u{e9}").unwrap();
        assert_eq!(f[0][0].text, "café".as_bytes());
        let mut out = Vec::new();
        Tokenizer {
            syntax: Syntax::Pg15,
        }
        .text(Path::new("/x"), b"caf\xe9 \xff", 0, &mut out);
        let f = out[0].fields.as_ref().unwrap();
        assert_eq!(f[0][0].text, b"caf\xe9");
        assert_eq!(f[1][0].text, b"\xff");
        let mut out = Vec::new();
        Tokenizer {
            syntax: Syntax::Pg16,
        }
        .text(Path::new("/x"), b"ok\nal\\\0\nice\n", 0, &mut out);
        assert_eq!(out[0].fields.as_ref().unwrap()[0][0].lossy(), "ok");
        assert_eq!(
            (out[1].line, out[1].fields.as_ref().unwrap_err().to_string()),
            (2, "invalid NUL byte in the line".to_string())
        );
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pg2f-tok-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn at_files_with_quotes_and_spaces() {
        let d = tempdir("at");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(
            d.join("users list.txt"),
            "alice, bob\n# c\ncarol @sub/more\n",
        )
        .unwrap();
        std::fs::write(d.join("sub/more"), "dave \"@lit\"").unwrap();
        let main = d.join("r.conf");
        for syntax in [Syntax::Pg15, Syntax::Pg16] {
            let mut out = Vec::new();
            Tokenizer { syntax }.text(
                &main,
                b"x @\"users list.txt\",e \"@users list.txt\"",
                0,
                &mut out,
            );
            let f = out[0].fields.as_ref().unwrap();
            let names: Vec<_> = f[1].iter().map(Token::lossy).collect();
            assert_eq!(names, ["alice", "bob", "carol", "dave", "@lit", "e"]);
            assert_eq!(f[2], vec![t("@users list.txt", true)]);
        }
        // a cycle stops at the nesting limit with an error, never loops
        std::fs::write(d.join("loop"), "@loop").unwrap();
        let mut out = Vec::new();
        Tokenizer {
            syntax: Syntax::Pg16,
        }
        .text(&main, b"x @loop", 0, &mut out);
        assert!(out[0]
            .fields
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("maximum nesting depth exceeded"));
        let mut out = Vec::new();
        Tokenizer {
            syntax: Syntax::Pg15,
        }
        .text(&main, b"x @missing", 0, &mut out);
        assert_eq!(
            out[0].fields.as_ref().unwrap_err().to_string(),
            format!(
                "could not open secondary authentication file \"@missing\" as \"{}\": No such file or directory",
                d.join("missing").display()
            )
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let d = tempdir("fifo");
        let fifo = d.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = read_limited(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(read_limited(Path::new("/dev/zero")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The records of `main` (16 syntax) as "file:line:first token", or the record's error.
    fn records(syntax: Syntax, main: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let text = std::fs::read(main).unwrap();
        Tokenizer { syntax }.text(main, &text, 0, &mut out);
        out.iter()
            .map(|l| match &l.fields {
                Ok(f) => format!(
                    "{}:{}:{}",
                    l.file.file_name().unwrap().to_string_lossy(),
                    l.line,
                    f[0][0].lossy()
                ),
                Err(e) => e.to_string(),
            })
            .collect()
    }

    /// A chain of `levels` files below `main` (each naming the next with `link`, e.g.
    /// `"include"` or `"@"`), the last holding the record `leaf`; returns `main`.
    fn chain(dir: &Path, link: &str, levels: usize) -> PathBuf {
        for i in 0..levels {
            let next = format!("f{}.conf", i + 1);
            let text = if link == "@" {
                format!("all @{next} all md5\n")
            } else {
                format!("{link} {next}\n")
            };
            std::fs::write(dir.join(format!("f{i}.conf")), text).unwrap();
        }
        std::fs::write(dir.join(format!("f{levels}.conf")), "leaf\n").unwrap();
        dir.join("f0.conf")
    }

    #[test]
    fn nesting_stops_at_the_depth_limit_for_at_files_and_includes() {
        for (syntax, link) in [
            (Syntax::Pg16, "include"),
            (Syntax::Pg15, "@"),
            (Syntax::Pg16, "@"),
        ] {
            let deepest = (1..=MAX_DEPTH + 2)
                .take_while(|&levels| {
                    let d = tempdir(&format!("depth-{link}-{syntax:?}-{levels}"));
                    let got = records(syntax, &chain(&d, link, levels));
                    !got.iter()
                        .any(|r| r.contains("maximum nesting depth exceeded"))
                })
                .last();
            assert_eq!(deepest, Some(MAX_DEPTH), "{syntax:?} {link}");
        }
    }

    #[test]
    fn include_dir_takes_every_conf_file_whatever_its_name_length() {
        let d = tempdir("incdir-names");
        std::fs::create_dir_all(d.join("conf.d")).unwrap();
        for name in ["a.conf", "a-longer-name.conf", ".conf", "x.conf.bak"] {
            std::fs::write(d.join("conf.d").join(name), format!("{name}\n")).unwrap();
        }
        let main = d.join("r.conf");
        std::fs::write(&main, "include_dir conf.d\n").unwrap();
        assert_eq!(
            records(Syntax::Pg16, &main),
            ["a-longer-name.conf:1:a-longer-name.conf", "a.conf:1:a.conf"]
        );
    }

    #[test]
    fn a_lone_at_sign_is_a_name() {
        assert_eq!(
            both("all @ all md5"),
            Ok(vec![
                vec![t("all", false)],
                vec![t("@", false)],
                vec![t("all", false)],
                vec![t("md5", false)]
            ])
        );
    }

    #[test]
    fn include_directives_are_16_only() {
        let d = tempdir("inc");
        std::fs::create_dir_all(d.join("conf.d/skipdir.conf")).unwrap();
        std::fs::write(d.join("conf.d/b.conf"), "b1\n\nb3 x\n").unwrap();
        std::fs::write(d.join("conf.d/a.conf"), "a1\n").unwrap();
        std::fs::write(d.join("conf.d/.hidden.conf"), "no\n").unwrap();
        std::fs::write(d.join("conf.d/c.txt"), "no\n").unwrap();
        std::fs::write(d.join("one.conf"), "one\n").unwrap();
        let main = d.join("r.conf");
        let text = b"first\ninclude one.conf\ninclude_dir conf.d\ninclude_if_exists none.conf\n\"include\" one.conf\nlast\n";
        let mut out = Vec::new();
        Tokenizer {
            syntax: Syntax::Pg16,
        }
        .text(&main, text, 0, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|l| {
                (
                    l.file.file_name().unwrap().to_string_lossy().into_owned(),
                    l.line,
                    l.fields.as_ref().unwrap()[0][0].lossy(),
                )
            })
            .collect();
        let want = [
            ("r.conf", 1, "first"),
            ("one.conf", 1, "one"),
            ("a.conf", 1, "a1"),
            ("b.conf", 1, "b1"),
            ("b.conf", 3, "b3"),
            ("one.conf", 1, "one"),
            ("r.conf", 6, "last"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(f, l, t)| (f.to_string(), *l, t.to_string()))
            .collect();
        assert_eq!(got, want);
        // 15: an include line is just a record (which the line parser then rejects)
        let mut out = Vec::new();
        Tokenizer {
            syntax: Syntax::Pg15,
        }
        .text(&main, b"include one.conf\n", 0, &mut out);
        assert_eq!(out[0].fields.as_ref().unwrap()[0][0].lossy(), "include");
        // a missing include is an error on the include line
        let mut out = Vec::new();
        Tokenizer {
            syntax: Syntax::Pg16,
        }
        .text(&main, b"\ninclude none.conf\n", 0, &mut out);
        assert_eq!(out[0].line, 2);
        assert!(out[0]
            .fields
            .as_ref()
            .unwrap_err()
            .to_string()
            .starts_with("could not open file"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
