//! Fixed-size tables for the statistics and the certificates seen, as plain Rust values that
//! can live in shared memory (no pointers, no heap): the extension's `shared_memory` module puts
//! one of each behind a PostgreSQL LWLock. Sizes are fixed when the library is built; when a
//! statistics table is full, further rows are counted together in an overflow row; when the
//! certificates table is full, the certificate seen longest ago makes room.

use crate::decision::{Reason, Verdict};

pub const STATS_SLOTS: usize = 4096;
pub const FILE_SLOTS: usize = 32;
pub const CERT_SLOTS: usize = 256;

/// Text of at most `N` bytes, cut at a character boundary.
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text {
            len: 0,
            bytes: [0; N],
        }
    }
}

impl<const N: usize> Text<N> {
    pub fn new(s: &str) -> Self {
        let mut cut = s.len().min(N);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut t = Self::default();
        t.bytes[..cut].copy_from_slice(&s.as_bytes()[..cut]);
        t.len = cut as u16;
        t
    }

    pub fn as_str(&self) -> &str {
        // the bytes were copied from a &str, cut at a character boundary
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// Which row a decision counts in: the rule (its file and line) and the reason.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Hash)]
pub struct Key {
    /// Index+1 into the file table; 0: no rule (not covered, or no decision).
    pub file: u8,
    pub line: u32,
    /// Index+1 into [`Reason::ALL`]; 0: the rule's total row.
    pub reason: u8,
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counters {
    pub checked: u64,
    pub accepted: u64,
    pub refused: u64,
    pub reported: u64,
    pub exempted: u64,
    pub not_covered: u64,
    /// PostgreSQL timestamps (microseconds since 2000); 0: never.
    pub last_checked: i64,
    pub last_accepted: i64,
    pub last_refused: i64,
    pub last_reported: i64,
}

impl Counters {
    fn count(&mut self, outcome: Outcome, now: i64) {
        self.checked += 1;
        self.last_checked = now;
        match outcome {
            Outcome::Accepted => {
                self.accepted += 1;
                self.last_accepted = now;
            }
            Outcome::Refused => {
                self.refused += 1;
                self.last_refused = now;
            }
            Outcome::Reported => {
                self.reported += 1;
                self.last_reported = now;
            }
            Outcome::Exempt => self.exempted += 1,
            Outcome::NotCovered => self.not_covered += 1,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct StatSlot {
    used: bool,
    key: Key,
    /// The content fingerprint of the rule when these counters started.
    content: u64,
    counters: Counters,
}

/// One decision to count.
pub struct Counted<'a> {
    /// The deciding rule's file, line and content fingerprint; `None` when no rule decided.
    pub rule: Option<(&'a str, u32, u64)>,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    NotCovered,
    Accepted,
    Refused,
    Reported,
    Exempt,
}

impl Outcome {
    pub fn of(verdict: &Verdict) -> Outcome {
        match verdict {
            Verdict::NotCovered => Outcome::NotCovered,
            Verdict::Accepted { .. } => Outcome::Accepted,
            Verdict::Refused { .. } => Outcome::Refused,
            Verdict::Reported { .. } => Outcome::Reported,
            Verdict::Exempt { .. } => Outcome::Exempt,
        }
    }
}

/// A row of the statistics view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub file: Option<String>,
    pub line: Option<u32>,
    pub reason: Option<Reason>,
    /// The row of decisions that found the table full.
    pub overflow: bool,
    pub counters: Counters,
}

/// Counters per rule and per reason: an open-addressing hash table (linear probing, no
/// deletions but a full reset), filled to at most [`STATS_ROWS`]; decisions for rows beyond
/// that are counted in one overflow row.
#[derive(Clone, Copy)]
pub struct StatsTable {
    slots: [StatSlot; STATS_SLOTS],
    rows: usize,
    overflow: Counters,
    files: [Text<1024>; FILE_SLOTS],
    files_used: usize,
    /// When the counters were last reset (0: never since start).
    pub reset_at: i64,
}

/// At most this many rows, so that probes stay short.
pub const STATS_ROWS: usize = STATS_SLOTS * 3 / 4;

impl Default for StatsTable {
    fn default() -> Self {
        StatsTable {
            slots: [StatSlot::default(); STATS_SLOTS],
            rows: 0,
            overflow: Counters::default(),
            files: [Text::default(); FILE_SLOTS],
            files_used: 0,
            reset_at: 0,
        }
    }
}

fn home(key: &Key) -> usize {
    use std::hash::{Hash, Hasher};
    #[allow(deprecated)] // SipHasher: fixed keys, the same in every process
    let mut h = std::hash::SipHasher::new();
    key.hash(&mut h);
    h.finish() as usize % STATS_SLOTS
}

impl StatsTable {
    /// The file's index+1 in the file table; `None` when the table is full (more included
    /// files than [`FILE_SLOTS`]): the decisions of rules in further files are counted in the
    /// overflow row, never under another file's name.
    fn file_index(&mut self, path: &str) -> Option<u8> {
        if let Some(i) = self.files[..self.files_used]
            .iter()
            .position(|f| f.as_str() == path)
        {
            return Some(i as u8 + 1);
        }
        if self.files_used == FILE_SLOTS {
            return None;
        }
        self.files[self.files_used] = Text::new(path);
        self.files_used += 1;
        Some(self.files_used as u8)
    }

    /// The index of `key`'s slot, or of the empty slot where it would go.
    fn probe(&self, key: &Key) -> usize {
        let mut i = home(key);
        while self.slots[i].used && self.slots[i].key != *key {
            i = (i + 1) % STATS_SLOTS;
        }
        i
    }

    /// The counters of `key` for a rule with `content`, started when missing or when the
    /// rule's content changed; the overflow row when the table is full.
    fn counters(&mut self, key: Key, content: u64) -> &mut Counters {
        let i = self.probe(&key);
        if !self.slots[i].used {
            if self.rows >= STATS_ROWS {
                return &mut self.overflow;
            }
            self.rows += 1;
            self.slots[i] = StatSlot {
                used: true,
                key,
                content,
                counters: Counters::default(),
            };
        } else if self.slots[i].content != content {
            // the rule's line changed since it was last counted: start again
            self.slots[i].content = content;
            self.slots[i].counters = Counters::default();
        }
        &mut self.slots[i].counters
    }

    /// Counts one decision at time `now` in the rule's total row and, for a refusal or a
    /// reported one, in the row of its reason.
    pub fn record(&mut self, d: &Counted<'_>, now: i64) {
        let (file, line, content) = match d.rule {
            Some((f, l, c)) => match self.file_index(f) {
                Some(file) => (file, l, c),
                None => {
                    self.overflow.count(d.outcome, now);
                    return;
                }
            },
            None => (0, 0, 0),
        };
        let total = Key {
            file,
            line,
            reason: 0,
        };
        self.counters(total, content).count(d.outcome, now);
        if let Some(r) = d.reason {
            let reason = Reason::ALL.iter().position(|x| *x == r).unwrap_or(0) as u8 + 1;
            self.counters(Key { reason, ..total }, content)
                .count(d.outcome, now);
        }
    }

    /// Every row, ordered by file, line and reason (no-rule rows first, overflow last). A
    /// reason row of a rule whose content changed since (and which has not been counted
    /// again) is left out.
    pub fn rows(&self) -> Vec<StatRow> {
        let current = |s: &StatSlot| {
            s.key.reason == 0 || {
                let total = &self.slots[self.probe(&Key { reason: 0, ..s.key })];
                total.used && total.content == s.content
            }
        };
        let mut rows: Vec<(Key, StatRow)> = self
            .slots
            .iter()
            .filter(|s| s.used && current(s))
            .map(|s| {
                let k = s.key;
                (
                    k,
                    StatRow {
                        file: (k.file != 0)
                            .then(|| self.files[k.file as usize - 1].as_str().to_string()),
                        line: (k.file != 0).then_some(k.line),
                        reason: (k.reason != 0).then(|| Reason::ALL[k.reason as usize - 1]),
                        overflow: false,
                        counters: s.counters,
                    },
                )
            })
            .collect();
        rows.sort_by_key(|(k, _)| (k.file, k.line, k.reason));
        let mut rows: Vec<StatRow> = rows.into_iter().map(|(_, r)| r).collect();
        if self.overflow.checked > 0 {
            rows.push(StatRow {
                file: None,
                line: None,
                reason: None,
                overflow: true,
                counters: self.overflow,
            });
        }
        rows
    }

    /// Clears every counter (in place: the table is too large for a temporary on the stack).
    pub fn reset(&mut self, now: i64) {
        self.slots.fill(StatSlot::default());
        self.files.fill(Text::default());
        self.rows = 0;
        self.files_used = 0;
        self.overflow = Counters::default();
        self.reset_at = now;
    }
}

/// What is known about one certificate seen at login.
#[derive(Clone, Copy, Default)]
pub struct CertSlot {
    used: bool,
    pub id: u64,
    pub common_name: Text<128>,
    pub serial: Text<64>,
    pub issuer: Text<256>,
    pub san: Text<512>,
    /// notAfter in PostgreSQL microseconds.
    pub not_after: i64,
    pub last_user: Text<64>,
    pub last_address: Text<48>,
    pub last_seen: i64,
    /// 0: never accepted.
    pub last_accepted: i64,
    pub logins: u64,
}

/// One login's certificate, to record.
pub struct SeenCert<'a> {
    /// [`crate::cert::CertKey::id`].
    pub id: u64,
    /// What its row shows, needed only for a certificate not in the table yet (see
    /// [`CertTable::record`]).
    pub summary: Option<&'a crate::cert::CertSummary>,
    /// notAfter in PostgreSQL microseconds.
    pub not_after: i64,
    pub user: &'a str,
    pub address: &'a str,
    pub accepted: bool,
}

/// The most recently seen certificates.
#[derive(Clone, Copy)]
pub struct CertTable {
    slots: [CertSlot; CERT_SLOTS],
    /// The ids of the used slots, 0 for a free one (an id of 0 is stored as 1): a lookup
    /// reads these 2 kB, not the slots.
    ids: [u64; CERT_SLOTS],
}

impl Default for CertTable {
    fn default() -> Self {
        CertTable {
            slots: [CertSlot::default(); CERT_SLOTS],
            ids: [0; CERT_SLOTS],
        }
    }
}

impl CertTable {
    /// Records a login with the certificate. `false`: the certificate is not in the table
    /// and `seen` has no summary to fill its row with (nothing was recorded: call again with
    /// one). Most logins present a certificate already seen, and so never print its names.
    pub fn record(&mut self, seen: &SeenCert<'_>, now: i64) -> bool {
        let id = seen.id.max(1);
        let i = match self.ids.iter().position(|x| *x == id) {
            Some(i) => i,
            None => {
                let Some(s) = seen.summary else {
                    return false;
                };
                let i = self.ids.iter().position(|x| *x == 0).unwrap_or_else(|| {
                    // full: the certificate seen longest ago makes room
                    self.slots
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, x)| x.last_seen)
                        .map_or(0, |(i, _)| i)
                });
                self.ids[i] = id;
                self.slots[i] = CertSlot {
                    used: true,
                    id: seen.id,
                    common_name: Text::new(&s.common_name),
                    serial: Text::new(&s.serial),
                    issuer: Text::new(&s.issuer),
                    san: Text::new(&s.san),
                    not_after: seen.not_after,
                    ..CertSlot::default()
                };
                i
            }
        };
        let slot = &mut self.slots[i];
        slot.last_user = Text::new(seen.user);
        slot.last_address = Text::new(seen.address);
        slot.last_seen = now;
        slot.logins += 1;
        if seen.accepted {
            slot.last_accepted = now;
        }
        true
    }

    /// The certificates, soonest expiry first.
    pub fn rows(&self) -> Vec<CertSlot> {
        let mut rows: Vec<CertSlot> = self.slots.iter().filter(|s| s.used).copied().collect();
        rows.sort_by_key(|s| s.not_after);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(rule: Option<(&str, u32, u64)>, outcome: Outcome, reason: Option<Reason>) -> Counted<'_> {
        Counted {
            rule,
            outcome,
            reason,
        }
    }

    #[test]
    fn exemptions_and_uncovered_logins_add_up() {
        let mut t = Box::<StatsTable>::default();
        let r = Some(("/d/r.conf", 1, 1));
        for now in [1, 2] {
            t.record(&d(r, Outcome::Exempt, None), now);
            t.record(&d(None, Outcome::NotCovered, None), now);
        }
        let rows = t.rows();
        assert_eq!(rows[0].counters.not_covered, 2);
        assert_eq!(rows[1].counters.exempted, 2);
        // three quarters of the slots at most, so that probes stay short
        assert_eq!(STATS_ROWS, 3072);
    }

    #[test]
    fn counts_per_rule_and_reason() {
        let mut t = Box::<StatsTable>::default();
        let r = Some(("/d/r.conf", 3, 77));
        t.record(&d(r, Outcome::Accepted, None), 10);
        t.record(&d(r, Outcome::Refused, Some(Reason::NoCertificate)), 20);
        t.record(&d(r, Outcome::Refused, Some(Reason::NoCertificate)), 30);
        t.record(&d(r, Outcome::Reported, Some(Reason::CnMismatch)), 40);
        t.record(&d(None, Outcome::NotCovered, None), 50);
        let rows = t.rows();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            (rows[0].file.as_deref(), rows[0].counters.not_covered),
            (None, 1)
        );
        let total = &rows[1];
        assert_eq!(
            (total.file.as_deref(), total.line, total.reason),
            (Some("/d/r.conf"), Some(3), None)
        );
        let c = total.counters;
        assert_eq!((c.checked, c.accepted, c.refused, c.reported), (4, 1, 2, 1));
        assert_eq!(
            (
                c.last_checked,
                c.last_accepted,
                c.last_refused,
                c.last_reported
            ),
            (40, 10, 30, 40)
        );
        assert_eq!(rows[2].reason, Some(Reason::NoCertificate));
        assert_eq!((rows[2].counters.checked, rows[2].counters.refused), (2, 2));
        assert_eq!(rows[3].reason, Some(Reason::CnMismatch));
        // the rule's line changed: its counters start again, its old reason rows go
        t.record(&d(Some(("/d/r.conf", 3, 78)), Outcome::Accepted, None), 60);
        let rows = t.rows();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[1].counters.checked, 1);
        t.reset(70);
        assert!(t.rows().is_empty());
        assert_eq!(t.reset_at, 70);
    }

    #[test]
    fn rules_in_files_beyond_the_file_table_count_in_the_overflow_row() {
        let mut t = Box::<StatsTable>::default();
        let names: Vec<String> = (0..=FILE_SLOTS)
            .map(|i| format!("/d/inc{i}.conf"))
            .collect();
        for name in &names {
            t.record(&d(Some((name, 1, 1)), Outcome::Accepted, None), 1);
        }
        t.record(
            &d(
                Some((&names[FILE_SLOTS], 2, 1)),
                Outcome::Refused,
                Some(Reason::NoCertificate),
            ),
            2,
        );
        let rows = t.rows();
        // one row per file that has a slot, each under its own name; the 33rd file's two
        // decisions in the overflow row, never under the 32nd file's name
        assert_eq!(rows.len(), FILE_SLOTS + 1, "{rows:?}");
        for (row, name) in rows.iter().zip(&names[..FILE_SLOTS]) {
            assert_eq!(
                (row.file.as_deref(), row.counters.checked),
                (Some(name.as_str()), 1)
            );
        }
        let last = rows.last().unwrap();
        assert!(last.overflow);
        assert_eq!(
            (
                last.counters.checked,
                last.counters.accepted,
                last.counters.refused
            ),
            (2, 1, 1)
        );
    }

    #[test]
    fn a_full_table_counts_further_rows_in_the_overflow_row() {
        let mut t = Box::<StatsTable>::default();
        for i in 0..STATS_ROWS as u32 {
            t.record(&d(Some(("/f", i, 1)), Outcome::Accepted, None), 1);
        }
        assert_eq!(t.rows().len(), STATS_ROWS);
        t.record(
            &d(
                Some(("/f", 99_999, 1)),
                Outcome::Refused,
                Some(Reason::CnMismatch),
            ),
            2,
        );
        // rows already there still count
        t.record(&d(Some(("/f", 7, 1)), Outcome::Accepted, None), 3);
        let rows = t.rows();
        assert_eq!(rows.len(), STATS_ROWS + 1);
        let last = rows.last().unwrap();
        assert!(last.overflow);
        assert_eq!((last.counters.checked, last.counters.refused), (2, 2));
        assert_eq!(
            rows.iter()
                .find(|r| r.line == Some(7))
                .unwrap()
                .counters
                .checked,
            2
        );
    }

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(Text::<4>::new("jörg").as_str(), "jör");
        assert_eq!(Text::<3>::new("jörg").as_str(), "jö");
        assert_eq!(Text::<2>::new("jörg").as_str(), "j");
    }

    #[test]
    fn certificates_are_kept_by_identity_and_the_oldest_make_room() {
        let mut t = Box::<CertTable>::default();
        let summary = |id: u64| crate::cert::CertSummary {
            common_name: format!("u{id}"),
            serial: format!("{id:X}"),
            issuer: "CN=ca".into(),
            not_before: 0,
            not_after: 0,
            san: "none".into(),
            id,
        };
        for id in 1..CERT_SLOTS as u64 + 2 {
            let s = summary(id);
            let seen = SeenCert {
                id,
                summary: None,
                not_after: 1000 - id as i64,
                user: "u",
                address: "127.0.0.1",
                accepted: id % 2 == 0,
            };
            // a certificate not seen before needs its summary
            assert!(!t.record(&seen, id as i64 + 1));
            let seen = SeenCert {
                summary: Some(&s),
                ..seen
            };
            assert!(t.record(&seen, id as i64 + 1));
        }
        let rows = t.rows();
        assert_eq!(rows.len(), CERT_SLOTS);
        assert!(
            rows.iter().all(|r| r.id != 0),
            "the first one seen was evicted"
        );
        assert_eq!(rows[0].id, CERT_SLOTS as u64 + 1, "soonest expiry first");
        // one already seen is recorded without a summary, and keeps what its row shows
        assert!(t.record(
            &SeenCert {
                id: 5,
                summary: None,
                not_after: 0,
                user: "v",
                address: "::1",
                accepted: false,
            },
            9999,
        ));
        let r = t.rows().into_iter().find(|r| r.id == 5).unwrap();
        assert_eq!(
            (
                r.logins,
                r.last_user.as_str(),
                r.last_address.as_str(),
                r.last_accepted
            ),
            (2, "v", "::1", 0)
        );
        // what the view shows of the certificate, as first recorded
        assert_eq!(
            (
                r.common_name.as_str(),
                r.serial.as_str(),
                r.issuer.as_str(),
                r.san.as_str(),
                r.not_after
            ),
            ("u5", "5", "CN=ca", "none", 995)
        );
    }
}
