//! The rules in force as one read-only image: a flat, position-independent byte layout built
//! from a parsed [`RuleSet`], that the login path reads in place.
//!
//! The postmaster builds the image at load, copies it into a mapping of its own, seals the
//! mapping read-only and publishes it; every backend inherits the mapping at fork and decides
//! straight from it ([`Image::find_passing`]). Nothing in the image is a pointer: every
//! reference is an offset from its start, every number little-endian, so the bytes mean the
//! same wherever they are mapped, and the types the login path reads ([`Image`], [`RuleView`],
//! the columns as [`DbSpec<&[u8]>`](DbSpec)) borrow the image and nothing else.
//!
//! Layout (offsets in bytes; a *span* is an offset and a length or count, two `u32`s):
//!
//! ```text
//! header   magic "pg2frul1" | rule count | offset of the rule table | user index span |
//!          any-user list span | flags (bit 0: some rule has issuer_key=) | slot table span
//! rules    one fixed-size record per rule, in file order (`Record::BYTES` each)
//! index    one entry per user name a rule names literally: name span | span of the
//!          ascending rule numbers that name it (u32 each); each name is written just
//!          before its numbers
//! slots    a hash table of the index: a power of two of u32 slots, at most half full, each
//!          0 (empty) or an entry's number + 1, probed linearly from the name's hash
//! data     names, file names, issuers, column entries and rule-number lists
//! ```
//!
//! A login reads a handful of pages of the image whatever the number of rules: the header, a
//! slot or two, one index entry, its name and numbers, the rules for any user, and the
//! records and data of the rules it examines (a rule's data are written together).
//!
//! The image is only ever read after [`build`] wrote it, in the same library, and every span
//! was checked against the image's length when it was written; [`Image::read`] checks the
//! header and the extent of each table. A read out of bounds would panic, which the hook turns
//! into a refused login.

use super::scratch::Scratch;
use super::{Action, DbSpec, Mode, Rule, RuleSet, SanPolicy, UserSpec};
use crate::address::AddrSpec;
use crate::methods::Method;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"pg2frul1";
const HEADER_BYTES: usize = 41;
const INDEX_ENTRY_BYTES: usize = 16;
const SLOT_BYTES: usize = 4;

/// The hash of a user name in the index: FNV-1a, the same in every process and build (the
/// table is built by the postmaster and probed by backends of the same library; its names
/// are the DBA's, so nobody chooses collisions).
fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
const COLUMN_ENTRY_BYTES: usize = 9;

/// Why rules could not be put into an image, or bytes are not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the rules take {bytes} bytes in memory, more than the 4 GB an image can address")]
    TooLarge { bytes: usize },
    #[error("the rules image is damaged: {0}")]
    Damaged(&'static str),
    /// The parser never makes one (PostgreSQL refuses such a line), and an image never holds
    /// one: a mask cut to another family's length would widen the network.
    #[error("line {line} of \"{file}\": an address and a mask of different families")]
    MixedFamilies { file: String, line: usize },
}

/// A span: where something starts in the image, and its length in bytes (or count of entries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    at: u32,
    len: u32,
}

/// Little-endian reads of an image's bytes.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn span_at(bytes: &[u8], at: usize) -> Span {
    Span {
        at: u32_at(bytes, at),
        len: u32_at(bytes, at + 4),
    }
}

/// The fixed-size record of one rule: the offsets of its fields.
struct Record;

impl Record {
    const FILE: usize = 0; // span of the file name's bytes
    const LINE: usize = 8; // u32
    const FINGERPRINT: usize = 12; // u64
    const ACTION: usize = 20; // 0: 2f-exempt, n: the nth method of `Method::all()`, from 1
    const MODE: usize = 21; // 0: enforce, 1: report
    const SAN: usize = 22; // 0: optional, 1: required
    const FLAGS: usize = 23; // bit 0: issuer=, bit 1: issuer_key=
    const ISSUER: usize = 24; // span of the issuer's text
    const ISSUER_KEY: usize = 32; // 32 bytes
    const DATABASES: usize = 64; // span of column entries
    const USERS: usize = 72; // span of column entries
    const ADDRESS: usize = 80; // 1 byte kind, then 32 bytes (see `Writer::address`)
    const BYTES: usize = 113;
}

const ISSUER_SET: u8 = 1;
const ISSUER_KEY_SET: u8 = 2;

/// Column entry kinds (DATABASE and USER).
mod kind {
    pub const ALL: u8 = 0;
    pub const SAME_USER: u8 = 1;
    pub const SAME_ROLE: u8 = 2;
    pub const REPLICATION: u8 = 3;
    pub const REGEX: u8 = 4;
    pub const NAME: u8 = 5;
    pub const MEMBER_OF: u8 = 6;
}

/// ADDRESS kinds.
mod address_kind {
    pub const ALL: u8 = 0;
    pub const SAME_HOST: u8 = 1;
    pub const SAME_NET: u8 = 2;
    pub const NET_V4: u8 = 3;
    pub const NET_V6: u8 = 4;
    pub const HOST: u8 = 5;
}

/// An image in memory of its own (for tools, tests and benchmarks; the server copies
/// [`OwnedImage::bytes`] into its sealed mapping).
#[derive(Debug, Clone)]
pub struct OwnedImage(Scratch<u8>);

impl OwnedImage {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The image, read in place.
    pub fn view(&self) -> Image<'_> {
        Image::read(&self.0).expect("an image just built reads back")
    }
}

/// Builds the image of a rule set.
pub fn build(set: &RuleSet) -> Result<OwnedImage, ImageError> {
    let mut w = Writer {
        out: Scratch::from(vec![0; HEADER_BYTES + set.rules.len() * Record::BYTES]),
        files: Vec::new(),
    };
    for (i, rule) in set.rules.iter().enumerate() {
        w.rule(HEADER_BYTES + i * Record::BYTES, rule)?;
    }
    let (index, slots, any_user) = w.user_index(&set.rules)?;
    let rules = w.u32(set.rules.len())?;
    let rules_at = w.u32(HEADER_BYTES)?;
    let header = &mut w.out[..HEADER_BYTES];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&rules.to_le_bytes());
    header[12..16].copy_from_slice(&rules_at.to_le_bytes());
    put_span(header, 16, index);
    put_span(header, 24, any_user);
    header[32] = u8::from(set.rules.iter().any(|r| r.options.issuer_key.is_some()));
    put_span(header, 33, slots);
    Ok(OwnedImage(w.out))
}

fn put_span(out: &mut [u8], at: usize, span: Span) {
    out[at..at + 4].copy_from_slice(&span.at.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&span.len.to_le_bytes());
}

/// Writes an image: the header and rule table first (filled in place), data appended.
struct Writer {
    out: Scratch<u8>,
    /// Each file name written so far, by its bytes: rules of one file share it.
    files: Vec<(Vec<u8>, Span)>,
}

impl Writer {
    fn u32(&self, n: usize) -> Result<u32, ImageError> {
        u32::try_from(n).map_err(|_| ImageError::TooLarge {
            bytes: self.out.len().max(n),
        })
    }

    /// Appends bytes; their span.
    fn data(&mut self, bytes: &[u8]) -> Result<Span, ImageError> {
        let at = self.u32(self.out.len())?;
        let len = self.u32(bytes.len())?;
        self.out.extend_from_slice(bytes);
        self.u32(self.out.len())?;
        Ok(Span { at, len })
    }

    fn file(&mut self, name: &Path) -> Result<Span, ImageError> {
        let bytes = name.as_os_str().as_bytes();
        if let Some((_, span)) = self.files.iter().find(|(f, _)| f == bytes) {
            return Ok(*span);
        }
        let span = self.data(bytes)?;
        self.files.push((bytes.to_vec(), span));
        Ok(span)
    }

    /// Writes the record of `rule` at `at` and its data after everything written so far.
    fn rule(&mut self, at: usize, rule: &Rule) -> Result<(), ImageError> {
        let file = self.file(&rule.file)?;
        let issuer = match &rule.options.issuer {
            Some(text) => self.data(text.as_bytes())?,
            None => Span::default(),
        };
        let databases = self.columns(rule.databases.iter().map(database_entry))?;
        let users = self.columns(rule.users.iter().map(user_entry))?;
        let address = self.address(&rule.address).map_err(|e| match e {
            ImageError::MixedFamilies { .. } => ImageError::MixedFamilies {
                file: rule.file.display().to_string(),
                line: rule.line,
            },
            other => other,
        })?;
        let line = self.u32(rule.line)?;
        let r = &mut self.out[at..at + Record::BYTES];
        put_span(r, Record::FILE, file);
        r[Record::LINE..Record::LINE + 4].copy_from_slice(&line.to_le_bytes());
        r[Record::FINGERPRINT..Record::FINGERPRINT + 8]
            .copy_from_slice(&rule.fingerprint.to_le_bytes());
        r[Record::ACTION] = action_code(rule.action);
        r[Record::MODE] = u8::from(rule.options.mode == Mode::Report);
        r[Record::SAN] = u8::from(rule.options.san == SanPolicy::Required);
        put_span(r, Record::ISSUER, issuer);
        if let Some(key) = &rule.options.issuer_key {
            r[Record::ISSUER_KEY..Record::ISSUER_KEY + 32].copy_from_slice(key);
        }
        r[Record::FLAGS] = if rule.options.issuer.is_some() {
            ISSUER_SET
        } else {
            0
        } | if rule.options.issuer_key.is_some() {
            ISSUER_KEY_SET
        } else {
            0
        };
        put_span(r, Record::DATABASES, databases);
        put_span(r, Record::USERS, users);
        r[Record::ADDRESS..Record::ADDRESS + 33].copy_from_slice(&address);
        Ok(())
    }

    /// Writes the names of a column, then its entries (kind, span of the name); the span of
    /// the entries (count).
    fn columns<'s>(
        &mut self,
        entries: impl Iterator<Item = (u8, Option<&'s [u8]>)>,
    ) -> Result<Span, ImageError> {
        let mut table = Vec::new();
        let mut count = 0;
        for (kind, name) in entries {
            let name = match name {
                Some(bytes) => self.data(bytes)?,
                None => Span::default(),
            };
            let mut entry = [0u8; COLUMN_ENTRY_BYTES];
            entry[0] = kind;
            put_span(&mut entry, 1, name);
            table.extend_from_slice(&entry);
            count += 1;
        }
        let at = self.data(&table)?.at;
        Ok(Span {
            at,
            len: self.u32(count)?,
        })
    }

    /// The 33 bytes of an ADDRESS: its kind, then the network's address and mask (16 bytes
    /// each, an IPv4 address in the first 4) or the span of a host name.
    fn address(&mut self, spec: &AddrSpec) -> Result<[u8; 33], ImageError> {
        let mut out = [0u8; 33];
        out[0] = match spec {
            AddrSpec::All => address_kind::ALL,
            AddrSpec::SameHost => address_kind::SAME_HOST,
            AddrSpec::SameNet => address_kind::SAME_NET,
            AddrSpec::Net { addr, mask } if addr.is_ipv4() != mask.is_ipv4() => {
                return Err(ImageError::MixedFamilies {
                    file: String::new(),
                    line: 0,
                })
            }
            AddrSpec::Net { addr, mask } => {
                put_ip(&mut out[1..17], *addr);
                put_ip(&mut out[17..33], *mask);
                if addr.is_ipv4() {
                    address_kind::NET_V4
                } else {
                    address_kind::NET_V6
                }
            }
            AddrSpec::Host(name) => {
                put_span(&mut out, 1, self.data(name)?);
                address_kind::HOST
            }
        };
        Ok(out)
    }

    /// The user index: for each name a rule names literally, the rules that name it, and the
    /// rules that can match any user (`all`, `+role`, a regex); (index, slots, any user).
    fn user_index(&mut self, rules: &[Rule]) -> Result<(Span, Span, Span), ImageError> {
        let (named, any_user) = rules_by_user(rules);
        let mut entries: Scratch<(&[u8], Span, Span)> = Scratch::new();
        for group in named.chunk_by(|a, b| a.0 == b.0) {
            let name = group[0].0;
            let name_span = self.data(name)?;
            let numbers = self.rule_numbers(group.iter().map(|(_, n)| *n))?;
            entries.push((name, name_span, numbers));
        }
        let index = Span {
            at: self.u32(self.out.len())?,
            len: self.u32(entries.len())?,
        };
        for (_, name, numbers) in &entries {
            let mut entry = [0u8; INDEX_ENTRY_BYTES];
            put_span(&mut entry, 0, *name);
            put_span(&mut entry, 8, *numbers);
            self.data(&entry)?;
        }
        let slots = self.slots(entries.iter().map(|(name, ..)| *name))?;
        Ok((index, slots, self.rule_numbers(any_user.iter().copied())?))
    }

    /// The hash table of the index entries, `names` in entry order; its span (slot count).
    fn slots<'n>(
        &mut self,
        names: impl ExactSizeIterator<Item = &'n [u8]>,
    ) -> Result<Span, ImageError> {
        let count = (names.len() * 2).max(1).next_power_of_two();
        let table = self.data(&[])?.at as usize;
        self.out.resize(table + count * SLOT_BYTES, 0);
        self.u32(self.out.len())?;
        for (i, name) in names.enumerate() {
            let mut slot = name_hash(name) as usize & (count - 1);
            while u32_at(&self.out, table + slot * SLOT_BYTES) != 0 {
                slot = (slot + 1) & (count - 1);
            }
            let number = self.u32(i + 1)?;
            let at = table + slot * SLOT_BYTES;
            self.out[at..at + SLOT_BYTES].copy_from_slice(&number.to_le_bytes());
        }
        Ok(Span {
            at: self.u32(table)?,
            len: self.u32(count)?,
        })
    }

    /// Appends rule numbers (u32 each); their span (count).
    fn rule_numbers(
        &mut self,
        numbers: impl ExactSizeIterator<Item = usize>,
    ) -> Result<Span, ImageError> {
        let span = Span {
            at: self.u32(self.out.len())?,
            len: self.u32(numbers.len())?,
        };
        for n in numbers {
            let n = self.u32(n)?;
            self.data(&n.to_le_bytes())?;
        }
        Ok(span)
    }
}

/// Every (user name, rule number) where a rule names that user literally, sorted by name and
/// number, each once; and the numbers of the rules that can match any user (in file order).
/// Sorted in place rather than gathered in a hash map: nothing here is freed as a mapped
/// block ([`Scratch`]).
fn rules_by_user(rules: &[Rule]) -> (Scratch<(&[u8], usize)>, Scratch<usize>) {
    let mut named = Scratch::new();
    let mut any_user = Scratch::new();
    for (i, rule) in rules.iter().enumerate() {
        if !rule.users.iter().all(|u| matches!(u, UserSpec::Name(_))) {
            any_user.push(i);
            continue;
        }
        named.extend(rule.users.iter().filter_map(|u| match u {
            UserSpec::Name(n) => Some((n.as_slice(), i)),
            _ => None,
        }));
    }
    named.sort_unstable();
    named.dedup();
    (named, any_user)
}

fn put_ip(out: &mut [u8], ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
}

fn action_code(action: Action) -> u8 {
    match action {
        Action::Exempt => 0,
        Action::TwoFactor(m) => {
            let n = Method::all().position(|x| x == m).expect("a method");
            n as u8 + 1
        }
    }
}

fn database_entry(spec: &DbSpec) -> (u8, Option<&[u8]>) {
    match spec {
        DbSpec::All => (kind::ALL, None),
        DbSpec::SameUser => (kind::SAME_USER, None),
        DbSpec::SameRole => (kind::SAME_ROLE, None),
        DbSpec::Replication => (kind::REPLICATION, None),
        DbSpec::Regex(p) => (kind::REGEX, Some(p)),
        DbSpec::Name(n) => (kind::NAME, Some(n)),
    }
}

fn user_entry(spec: &UserSpec) -> (u8, Option<&[u8]>) {
    match spec {
        UserSpec::All => (kind::ALL, None),
        UserSpec::MemberOf(r) => (kind::MEMBER_OF, Some(r)),
        UserSpec::Regex(p) => (kind::REGEX, Some(p)),
        UserSpec::Name(n) => (kind::NAME, Some(n)),
    }
}

/// The rules in force, read in place from an image's bytes. Copying it copies a reference.
#[derive(Clone, Copy)]
pub struct Image<'a> {
    bytes: &'a [u8],
    rules: usize,
    rules_at: usize,
    index: Span,
    slots: Span,
    any_user: Span,
    pins_issuer_key: bool,
}

impl std::fmt::Debug for Image<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} rules, {} bytes)", self.rules, self.bytes.len())
    }
}

fn fits(bytes: &[u8], at: usize, count: u32, each: usize) -> bool {
    (count as usize)
        .checked_mul(each)
        .and_then(|n| n.checked_add(at))
        .is_some_and(|end| end <= bytes.len())
}

impl<'a> Image<'a> {
    /// The image in `bytes`, after checking its header and the extent of its tables.
    pub fn read(bytes: &'a [u8]) -> Result<Image<'a>, ImageError> {
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err(ImageError::Damaged("no image header"));
        }
        let image = Image {
            bytes,
            rules: u32_at(bytes, 8) as usize,
            rules_at: u32_at(bytes, 12) as usize,
            index: span_at(bytes, 16),
            any_user: span_at(bytes, 24),
            pins_issuer_key: bytes[32] & 1 == 1,
            slots: span_at(bytes, 33),
        };
        let tables = [
            (image.rules_at, image.rules as u32, Record::BYTES),
            (image.index.at as usize, image.index.len, INDEX_ENTRY_BYTES),
            (image.any_user.at as usize, image.any_user.len, 4),
            (image.slots.at as usize, image.slots.len, SLOT_BYTES),
        ];
        if !tables
            .iter()
            .all(|(at, n, each)| fits(bytes, *at, *n, *each))
        {
            return Err(ImageError::Damaged("a table ends past the image"));
        }
        // a power of two, so that a name's probe can wrap with a mask; never 0
        if !image.slots.len.is_power_of_two() {
            return Err(ImageError::Damaged("the index has no hash table"));
        }
        Ok(image)
    }

    /// Its size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// Some rule has `issuer_key=`: only then does a login read its verified chain's issuer.
    pub fn pins_issuer_key(&self) -> bool {
        self.pins_issuer_key
    }

    /// Rule number `i` (from 0, in file order).
    pub fn rule(&self, i: usize) -> RuleView<'a> {
        assert!(i < self.rules, "rule {i} of {}", self.rules);
        let at = self.rules_at + i * Record::BYTES;
        RuleView::read(self.bytes, &self.bytes[at..at + Record::BYTES], i)
    }

    pub fn rules(&self) -> impl Iterator<Item = RuleView<'a>> + '_ {
        (0..self.rules).map(|i| self.rule(i))
    }

    fn span(&self, span: Span) -> &'a [u8] {
        &self.bytes[span.at as usize..span.at as usize + span.len as usize]
    }

    /// The numbers of the rules that name `user` literally (ascending).
    pub(super) fn rules_naming(&self, user: &[u8]) -> RuleNumbers<'a> {
        let mask = self.slots.len as usize - 1;
        let mut at = name_hash(user) as usize & mask;
        // at most half the slots are taken, so an empty one ends every probe
        loop {
            let slot = u32_at(self.bytes, self.slots.at as usize + at * SLOT_BYTES) as usize;
            if slot == 0 {
                return RuleNumbers(&[]);
            }
            // an entry the index does not have: a damaged image, refused rather than misread
            assert!(
                slot <= self.index.len as usize,
                "slot {slot} past the index"
            );
            let entry = self.index.at as usize + (slot - 1) * INDEX_ENTRY_BYTES;
            if self.span(span_at(self.bytes, entry)) == user {
                return RuleNumbers(self.numbers(span_at(self.bytes, entry + 8)));
            }
            at = (at + 1) & mask;
        }
    }

    /// The numbers of the rules that can match any user (ascending).
    pub(super) fn rules_for_any_user(&self) -> RuleNumbers<'a> {
        RuleNumbers(self.numbers(self.any_user))
    }

    fn numbers(&self, list: Span) -> &'a [u8] {
        &self.bytes[list.at as usize..list.at as usize + 4 * list.len as usize]
    }
}

/// Ascending rule numbers, in place in the image.
pub(super) struct RuleNumbers<'a>(&'a [u8]);

impl RuleNumbers<'_> {
    pub(super) fn get(&self, i: usize) -> Option<usize> {
        let bytes = self.0.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize)
    }
}

/// What a rule's options set, read from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionsView<'a> {
    pub mode: Mode,
    pub san: SanPolicy,
    pub issuer: Option<&'a str>,
    pub issuer_key: Option<&'a [u8; 32]>,
}

/// One rule, read in place from the image: the fields the decision reads, decoded, and its
/// columns, decoded as they are walked.
#[derive(Clone, Copy)]
pub struct RuleView<'a> {
    /// Its number in the image (from 0, in file order).
    pub number: usize,
    pub file: &'a Path,
    pub line: usize,
    pub fingerprint: u64,
    pub action: Action,
    pub options: OptionsView<'a>,
    databases: Span,
    users: Span,
    image: &'a [u8],
    record: &'a [u8],
}

impl std::fmt::Debug for RuleView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rule {}:{} ({})",
            self.file.display(),
            self.line,
            self.action
        )
    }
}

fn bytes_of(image: &[u8], span: Span) -> &[u8] {
    &image[span.at as usize..span.at as usize + span.len as usize]
}

/// An action code read back; an unknown code as the strictest reading, the first method.
fn action_of(code: u8) -> Action {
    match code {
        0 => Action::Exempt,
        n => Action::TwoFactor(
            Method::all()
                .nth(usize::from(n - 1))
                .unwrap_or(Method::ScramSha256),
        ),
    }
}

impl<'a> RuleView<'a> {
    fn read(image: &'a [u8], record: &'a [u8], number: usize) -> RuleView<'a> {
        let flags = record[Record::FLAGS];
        let issuer = (flags & ISSUER_SET != 0).then(|| {
            // written from a String; anything else can match no issuer's text
            std::str::from_utf8(bytes_of(image, span_at(record, Record::ISSUER)))
                .unwrap_or("\u{FFFD}")
        });
        let issuer_key = (flags & ISSUER_KEY_SET != 0).then(|| {
            record[Record::ISSUER_KEY..Record::ISSUER_KEY + 32]
                .try_into()
                .expect("32 bytes")
        });
        RuleView {
            number,
            file: Path::new(std::ffi::OsStr::from_bytes(bytes_of(
                image,
                span_at(record, Record::FILE),
            ))),
            line: u32_at(record, Record::LINE) as usize,
            fingerprint: u64_at(record, Record::FINGERPRINT),
            action: action_of(record[Record::ACTION]),
            options: OptionsView {
                mode: if record[Record::MODE] == 1 {
                    Mode::Report
                } else {
                    Mode::Enforce
                },
                san: if record[Record::SAN] == 0 {
                    SanPolicy::Optional
                } else {
                    SanPolicy::Required
                },
                issuer,
                issuer_key,
            },
            databases: span_at(record, Record::DATABASES),
            users: span_at(record, Record::USERS),
            image,
            record,
        }
    }

    /// The entries of a column: (kind, name).
    fn column(&self, span: Span) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let image = self.image;
        let table =
            &image[span.at as usize..span.at as usize + span.len as usize * COLUMN_ENTRY_BYTES];
        table
            .chunks_exact(COLUMN_ENTRY_BYTES)
            .map(move |e| (e[0], bytes_of(image, span_at(e, 1))))
    }

    /// The DATABASE column.
    pub fn databases(&self) -> impl Iterator<Item = DbSpec<&'a [u8]>> + 'a {
        self.column(self.databases).map(|(k, name)| match k {
            kind::ALL => DbSpec::All,
            kind::SAME_USER => DbSpec::SameUser,
            kind::SAME_ROLE => DbSpec::SameRole,
            kind::REPLICATION => DbSpec::Replication,
            kind::REGEX => DbSpec::Regex(name),
            _ => DbSpec::Name(name),
        })
    }

    /// The USER column.
    pub fn users(&self) -> impl Iterator<Item = UserSpec<&'a [u8]>> + 'a {
        self.column(self.users).map(|(k, name)| match k {
            kind::ALL => UserSpec::All,
            kind::MEMBER_OF => UserSpec::MemberOf(name),
            kind::REGEX => UserSpec::Regex(name),
            _ => UserSpec::Name(name),
        })
    }

    /// The ADDRESS column.
    pub fn address(&self) -> AddrSpec<&'a [u8]> {
        let a = &self.record[Record::ADDRESS..Record::ADDRESS + 33];
        let v4 = |b: &[u8]| IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&b[..4]).expect("4")));
        let v6 = |b: &[u8]| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).expect("16")));
        match a[0] {
            address_kind::ALL => AddrSpec::All,
            address_kind::SAME_HOST => AddrSpec::SameHost,
            address_kind::SAME_NET => AddrSpec::SameNet,
            address_kind::NET_V4 => AddrSpec::Net {
                addr: v4(&a[1..17]),
                mask: v4(&a[17..33]),
            },
            address_kind::NET_V6 => AddrSpec::Net {
                addr: v6(&a[1..17]),
                mask: v6(&a[17..33]),
            },
            _ => AddrSpec::Host(bytes_of(self.image, span_at(a, 1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::*;

    const RULES: &str = "\
hostssl all alice 127.0.0.1/32 2f-scram-sha-256
hostssl sameuser,samerole,replication,db1,/^re bob,+admins,/^x,\"q r\" 10.0.0.0 255.0.0.0 2f-md5 mode=report san=required
hostssl all all ::1/128 2f-exempt
hostssl all alice,carol .example.com 2f-ldap issuer=\"CN=CA,O=Org\" issuer_key=sha256:0000000000000000000000000000000000000000000000000000000000000001
hostssl db2 all samehost 2f-password
hostssl db2 carol samenet 2f-radius
";

    /// Every field of every rule reads back as it was parsed.
    #[test]
    fn every_field_reads_back() {
        let set = set(Syntax::Pg16, RULES);
        let owned = build(&set).unwrap();
        let image = owned.view();
        assert_eq!(image.len(), set.rules.len());
        assert!(!image.is_empty());
        assert!(image.pins_issuer_key());
        assert_eq!(image.rules().count(), set.rules.len());
        assert_eq!(
            format!("{image:?}"),
            format!("Image(6 rules, {} bytes)", owned.bytes().len())
        );
        assert_eq!(
            format!("{:?}", image.rule(0)),
            "rule /r.conf:1 (2f-scram-sha-256)"
        );
        for (parsed, view) in set.rules.iter().zip(image.rules()) {
            assert_eq!(view.file, parsed.file.as_path());
            assert_eq!(view.line, parsed.line);
            assert_eq!(view.fingerprint, parsed.fingerprint);
            assert_eq!(view.action, parsed.action);
            assert_eq!(view.options.mode, parsed.options.mode);
            assert_eq!(view.options.san, parsed.options.san);
            assert_eq!(view.options.issuer, parsed.options.issuer.as_deref());
            assert_eq!(view.options.issuer_key, parsed.options.issuer_key.as_ref());
            let dbs: Vec<DbSpec> = view.databases().map(|d| d.to_owned_spec()).collect();
            assert_eq!(dbs, parsed.databases);
            let users: Vec<UserSpec> = view.users().map(|u| u.to_owned_spec()).collect();
            assert_eq!(users, parsed.users);
            assert_eq!(view.address().to_owned_spec(), parsed.address);
        }
    }

    #[test]
    fn the_user_index_lists_each_name_s_rules_and_the_rules_for_anyone() {
        let owned = build(&set(Syntax::Pg16, RULES)).unwrap();
        let image = owned.view();
        let list = |n: RuleNumbers<'_>| (0..).map_while(|i| n.get(i)).collect::<Vec<_>>();
        assert_eq!(list(image.rules_naming(b"alice")), [0, 3]);
        assert_eq!(list(image.rules_naming(b"carol")), [3, 5]);
        assert_eq!(list(image.rules_naming(b"bob")), Vec::<usize>::new());
        assert_eq!(list(image.rules_naming(b"q r")), Vec::<usize>::new());
        assert_eq!(list(image.rules_naming(b"")), Vec::<usize>::new());
        assert_eq!(list(image.rules_naming(b"zzz")), Vec::<usize>::new());
        assert_eq!(list(image.rules_for_any_user()), [1, 2, 4]);
    }

    /// Enough names for the probes to collide: each finds its own rules, and names that no
    /// rule has (or a prefix, or the name with a byte more) find none.
    #[test]
    fn every_name_is_found_through_the_slots_and_no_other() {
        let mut text = String::new();
        for i in 0..700 {
            text.push_str(&format!("hostssl all u{i},shared all 2f-md5\n"));
        }
        let set = set(Syntax::Pg15, &text);
        let owned = build(&set).unwrap();
        let image = owned.view();
        assert_eq!(image.slots.len, 2048);
        for i in 0..700 {
            let found = image.rules_naming(format!("u{i}").as_bytes());
            assert_eq!((found.get(0), found.get(1)), (Some(i), None), "u{i}");
            assert_eq!(image.rules_naming(format!("u{i}x").as_bytes()).get(0), None);
        }
        assert_eq!(image.rules_naming(b"u").get(0), None);
        assert_eq!(image.rules_naming(b"shared").get(699), Some(699));
    }

    /// The index's hash is FNV-1a (64 bits), as documented: the published test vectors.
    #[test]
    fn the_name_hash_is_fnv_1a() {
        assert_eq!(name_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(name_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// What the parser never makes is refused, not narrowed: an IPv4 network with an IPv6
    /// mask; and the flag of `issuer_key=` follows the rules, not the set's field.
    #[test]
    fn an_address_and_a_mask_of_different_families_are_refused() {
        let mut set = set(Syntax::Pg15, RULES);
        set.rules[0].address = AddrSpec::Net {
            addr: "10.0.0.0".parse().unwrap(),
            mask: "ffff::".parse().unwrap(),
        };
        assert_eq!(
            build(&set).unwrap_err().to_string(),
            "line 1 of \"/r.conf\": an address and a mask of different families"
        );
        let mut unpinned = super::super::testutil::set(Syntax::Pg16, RULES);
        unpinned.pins_issuer_key = false;
        assert!(build(&unpinned).unwrap().view().pins_issuer_key());
    }

    #[test]
    fn an_empty_rule_set_is_an_image_too() {
        let owned = build(&RuleSet::empty("/r.conf".into())).unwrap();
        let image = owned.view();
        assert!(image.is_empty());
        assert!(!image.pins_issuer_key());
        assert_eq!(image.bytes(), HEADER_BYTES + SLOT_BYTES);
        assert_eq!(image.rules_naming(b"x").get(0), None);
    }

    #[test]
    fn bytes_that_are_no_image_are_refused() {
        let owned = build(&set(Syntax::Pg15, RULES)).unwrap();
        let bytes = owned.bytes();
        assert!(Image::read(&bytes[..HEADER_BYTES - 1]).is_err());
        // a whole header whose tables are missing
        assert_eq!(
            Image::read(&bytes[..HEADER_BYTES]).unwrap_err(),
            ImageError::Damaged("a table ends past the image")
        );
        let mut wrong = bytes.to_vec();
        wrong[0] = b'x';
        assert_eq!(
            Image::read(&wrong).unwrap_err(),
            ImageError::Damaged("no image header")
        );
        // the rule table cut short
        let cut = &bytes[..HEADER_BYTES + Record::BYTES];
        assert_eq!(
            Image::read(cut).unwrap_err().to_string(),
            "the rules image is damaged: a table ends past the image"
        );
        // a hash table of no slots
        let mut no_slots = bytes.to_vec();
        no_slots[37..41].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            Image::read(&no_slots).unwrap_err(),
            ImageError::Damaged("the index has no hash table")
        );
    }

    #[test]
    fn an_image_means_the_same_at_any_address() {
        let owned = build(&set(Syntax::Pg16, RULES)).unwrap();
        let moved: Vec<u8> = owned.bytes().to_vec();
        let a = owned.view();
        let b = Image::read(&moved).unwrap();
        for (x, y) in a.rules().zip(b.rules()) {
            assert_eq!((x.file, x.line, x.action), (y.file, y.line, y.action));
            assert_eq!(x.address(), y.address());
        }
    }

    #[test]
    fn rules_of_one_file_share_its_name() {
        let set = set(Syntax::Pg15, RULES);
        let name = b"/r.conf";
        let count = |b: &[u8]| b.windows(name.len()).filter(|w| w == name).count();
        assert_eq!(count(build(&set).unwrap().bytes()), 1);
    }
}
