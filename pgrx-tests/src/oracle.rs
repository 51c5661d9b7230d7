//! The rules oracle: PostgreSQL's own `pg_hba.conf` matcher decides, pg_twofactor must agree.
//!
//! A seeded generator writes the same rule lines twice: once as `pg_hba.conf` (with `trust` or
//! `password`, followed by catch-all lines so PostgreSQL always chooses a line) and once as
//! the pg_twofactor rules file (with a 2f method), in two directory trees of identical shape
//! (`@files` and, on 16+, `include`, `include_if_exists`, `include_dir` files). The server
//! runs with `pg_twofactor.log_decisions = all`; for every login, the decision line carries
//! both the `pg_hba.conf` line PostgreSQL chose (`port->hba`) and the rule pg_twofactor
//! chose. They must be the same line of the same file, and "none" exactly when PostgreSQL
//! chose a catch-all line.
//!
//! The world: login roles with and without group memberships (nested, quoted names with
//! blanks, a name starting with `+`, LATIN1 names that are not UTF-8), a role that does not
//! exist, several databases, physical and logical replication connections, source addresses
//! 127.0.0.1, 127.0.0.2, 127.1.2.3, 127.0.0.11, ::1, addresses in the upper half of the
//! networks the rules write and at their ends (127.255.255.254, 127.0.255.255,
//! 127.1.255.255, 127.1.200.1) and (as root) a host in a network
//! namespace; host names come from the server's own hosts file (see
//! [`crate::cluster::ClusterBuilder::name_service`]).

use crate::cluster::Cluster;
use crate::netns::NetnsHost;
use crate::wire::{raw_login_at, RawLogin, RawOutcome};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// splitmix64: small, seedable, good enough to pick cases.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Login roles (bytes, LATIN1 where not ASCII).
pub const USERS: &[&[u8]] = &[
    b"alice",
    b"bob",
    b"carol",
    b"adm_dave",
    b"app_erin",
    b"+plus",
    b"Mixed Case",
    b"caf\xe9",
    b"\xfcser",
    b"postgres",
];
/// Group roles (NOLOGIN) and memberships (member, group).
pub const GROUPS: &[&[u8]] = &[b"staff", b"Domain Admins", b"admins", b"gr\xfcppe"];
pub const MEMBERS: &[(&[u8], &[u8])] = &[
    (b"alice", b"staff"),
    (b"carol", b"staff"),
    (b"admins", b"staff"),
    (b"adm_dave", b"admins"),
    (b"bob", b"Domain Admins"),
    (b"caf\xe9", b"Domain Admins"),
    (b"\xfcser", b"gr\xfcppe"),
];
/// A role that does not exist.
pub const GHOST: &[u8] = b"ghost";
/// Database names used by connections (they need not exist: the hook runs before the
/// database is opened).
pub const DATABASES: &[&[u8]] = &[
    b"postgres",
    b"alice",
    b"staff",
    b"Domain Admins",
    b"app1",
    b"appdb",
    b"caf\xe9",
    b"db two",
    b"+plus",
    b"bob",
];
pub const PASSWORD: &[u8] = b"oracle-pw";

/// The server's hosts file: every client address has a name, so no lookup reaches DNS.
pub const HOSTS: &[u8] = b"127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.0.2 two.oracle.test\n127.1.2.3 three.oracle.test\n127.0.0.11 caf\xe9.oracle.test\n10.213.7.2 ns.oracle.test\n10.213.7.1 gw.oracle.test\n127.255.255.254 top.oracle.test\n127.0.255.255 edge.oracle.test\n127.1.255.255 edge.other.test\n";

/// Client source addresses on loopback.
pub const SOURCES: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "127.1.2.3",
    "127.0.0.11",
    "::1",
    // the upper half of the networks the rules write, and their last addresses: a matcher that
    // narrows a network by one bit (or compares one bit short) differs here. 127.255.255.255
    // itself is the loopback network's broadcast address, which Linux will not send from.
    // 127.1.200.1 has no name: its reverse lookup is answered "no such name" (the oracle's DNS
    // server, crate::dns); the others are in HOSTS.
    "127.255.255.254",
    "127.0.255.255",
    "127.1.255.255",
    "127.1.200.1",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Major {
    Pg15,
    Pg16Plus,
}

impl Major {
    /// From `pg_config --version` of the server under test.
    pub fn of(cluster_bin_version: &str) -> Major {
        if cluster_bin_version.contains(" 15.") {
            Major::Pg15
        } else {
            Major::Pg16Plus
        }
    }
}

fn quote(name: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &c in name {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
    out
}

/// A name as a token: quoted when it must be, sometimes quoted or partly quoted anyway.
fn name_token(rng: &mut Rng, name: &[u8]) -> Vec<u8> {
    let needs = name.iter().any(|c| b" \t,#\"".contains(c))
        || name.first() == Some(&b'+')
        || name.first() == Some(&b'@')
        || name.first() == Some(&b'/')
        || [
            &b"all"[..],
            b"sameuser",
            b"samerole",
            b"samegroup",
            b"replication",
        ]
        .contains(&name);
    if needs || rng.chance(20) {
        quote(name)
    } else if name.len() > 2 && rng.chance(10) {
        // quoting that does not start the token: the same name, still unquoted
        let mut t = name[..1].to_vec();
        t.extend(quote(&name[1..]));
        t
    } else {
        name.to_vec()
    }
}

/// A keyword, sometimes with quotes that do not start it (still the keyword).
fn keyword(rng: &mut Rng, kw: &str) -> Vec<u8> {
    if rng.chance(15) {
        let mut t = kw.as_bytes()[..1].to_vec();
        t.extend(quote(&kw.as_bytes()[1..]));
        t
    } else {
        kw.as_bytes().to_vec()
    }
}

fn db_token(rng: &mut Rng, major: Major) -> Vec<u8> {
    let regexes: &[&[u8]] = &[b"/^app", b"/^(alice|staff)$", b"/e$", b"/^caf", b"/o"];
    match rng.below(if major == Major::Pg15 { 10 } else { 12 }) {
        0 => keyword(rng, "all"),
        1 => keyword(rng, "sameuser"),
        2 => {
            let kw = if rng.chance(50) {
                "samerole"
            } else {
                "samegroup"
            };
            keyword(rng, kw)
        }
        3 => keyword(rng, "replication"),
        4 => quote(b"all"),
        5 => b"@dbs.txt".to_vec(),
        6..=9 => {
            let db = *rng.pick(DATABASES);
            name_token(rng, db)
        }
        10 => {
            let r = *rng.pick(regexes);
            r.to_vec()
        }
        _ => {
            let r = *rng.pick(regexes);
            quote(r) // quoted: still a regex (regcomp_auth_token looks at the first byte)
        }
    }
}

fn user_token(rng: &mut Rng, major: Major) -> Vec<u8> {
    let regexes: &[&[u8]] = &[b"/^adm_", b"/^a", b"/er$", b"/^c", b"/s"];
    match rng.below(if major == Major::Pg15 { 11 } else { 13 }) {
        0 => keyword(rng, "all"),
        1 => quote(b"all"),
        2 => {
            let g = *rng.pick(GROUPS);
            let mut t = b"+".to_vec();
            t.extend(name_token(rng, g));
            t
        }
        3 => b"+\"Domain Admins\"".to_vec(),
        4 => quote(b"+plus"),
        5 => b"+plus".to_vec(), // membership of a role "plus" that does not exist
        6 => b"@users.txt".to_vec(),
        7 => b"@\"users list.txt\"".to_vec(),
        8..=10 => {
            let u = if rng.chance(10) {
                GHOST
            } else {
                *rng.pick(USERS)
            };
            name_token(rng, u)
        }
        11 => rng.pick(regexes).to_vec(),
        _ => {
            let r = *rng.pick(regexes);
            quote(r)
        }
    }
}

fn address(rng: &mut Rng) -> Vec<u8> {
    let forms: &[&str] = &[
        "all",
        "samehost",
        "samenet",
        "127.0.0.0/8",
        "127.0.0.2/32",
        "127.0.0.2 255.255.255.255",
        "127.0.0.0 255.255.0.0",
        "127.1.0.0/16",
        "127.0.0.11/32",
        "127.0.0.10/31",
        "127.0.128.0 255.255.128.0",
        "::1/128",
        "::1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "0.0.0.0/0",
        "::/0",
        "10.213.7.0/24",
        "10.213.7.2/32",
        "127.1/32",
        "::ffff:127.0.0.2/128",
        "localhost",
        "two.oracle.test",
        ".oracle.test",
        "ns.oracle.test",
        "TWO.Oracle.Test",
        ".test",
        "three.oracle.test",
        "nine.oracle.test",
        "127.0.0.0/+8",
    ];
    let f = *rng.pick(forms);
    if f == ".oracle.test" && rng.chance(30) {
        return quote(f.as_bytes()); // a quoted host name is still a host name
    }
    f.as_bytes().to_vec()
}

fn field(rng: &mut Rng, gen: &mut dyn FnMut(&mut Rng) -> Vec<u8>) -> Vec<u8> {
    let n = 1 + rng.below(3);
    let mut out = Vec::new();
    for i in 0..n {
        if i > 0 {
            const SEPARATORS: [&[u8]; 4] = [b",", b", ", b",,", b",\t"];
            let sep: &[u8] = SEPARATORS[rng.below(SEPARATORS.len())];
            out.extend_from_slice(sep);
        }
        out.extend(gen(rng));
    }
    out
}

/// One rule line without its method: `hostssl DB USER ADDRESS`.
fn rule_columns(rng: &mut Rng, major: Major) -> Vec<u8> {
    let mut line = if rng.chance(10) {
        quote(b"hostssl")
    } else {
        b"hostssl".to_vec()
    };
    const BLANKS: [&[u8]; 4] = [b" ", b"	", b"  ", b" 	 "];
    let blank = |rng: &mut Rng| -> &'static [u8] { BLANKS[rng.below(BLANKS.len())] };
    line.extend_from_slice(blank(rng));
    line.extend(field(rng, &mut |r| db_token(r, major)));
    line.extend_from_slice(blank(rng));
    line.extend(field(rng, &mut |r| user_token(r, major)));
    line.extend_from_slice(blank(rng));
    line.extend(address(rng));
    line.extend_from_slice(blank(rng));
    line
}

/// Splits a line with backslash continuations at random places (joined as is by the server).
fn continue_lines(rng: &mut Rng, line: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut extra = 0;
    let mut start = 0;
    while rng.chance(25) && line.len() > start + 2 {
        let cut = start + 1 + rng.below(line.len() - start - 1);
        out.extend_from_slice(&line[start..cut]);
        out.extend_from_slice(b"\\\n");
        extra += 1;
        start = cut;
    }
    out.extend_from_slice(&line[start..]);
    (out, extra)
}

/// One file of the generated tree: its relative path and its records.
#[derive(Debug, Clone)]
enum Item {
    Rule(Vec<u8>),
    Blank,
    Comment,
    Include(&'static str, &'static str),
}

/// A generated pair of trees.
pub struct Generated {
    /// Relative path -> (pg_hba text, rules text).
    pub files: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// Line numbers of the catch-all lines in the pg_hba main file.
    pub catch_all_from: usize,
}

const MAIN: &str = "main.conf";
/// After the generated lines of the pg_hba.conf tree: PostgreSQL always finds a line.
const CATCH_ALL: &[u8] =
    b"host all all all trust\nhost replication all all trust\nlocal all all trust\n";

/// Creates the roles and points the (not yet started) cluster at the generated trees.
pub fn configure(cluster: &Cluster) {
    let root = cluster.root.join("oracle");
    for tree in ["hba", "2f"] {
        std::fs::create_dir_all(root.join(tree)).unwrap();
    }
    std::fs::write(root.join("hba").join(MAIN), CATCH_ALL).unwrap();
    std::fs::write(root.join("2f").join(MAIN), b"").unwrap();
    crate::cluster::chown_to_cluster_user(&root);
    cluster.append_settings(&[
        &format!("hba_file = '{}'", root.join("hba").join(MAIN).display()),
        &format!(
            "pg_twofactor.hba_file = '{}'",
            root.join("2f").join(MAIN).display()
        ),
        "pg_twofactor.log_decisions = all",
        "pg_twofactor.enabled_extra_auth_methods = '2f-md5, 2f-password'",
        "max_wal_senders = 20",
    ]);
}

/// Creates the world's roles (the cluster runs, in a LATIN1 database).
pub fn create_roles(cluster: &Cluster) {
    let q = |n: &[u8]| quote(n);
    for u in USERS.iter().filter(|u| **u != b"postgres") {
        let mut sql = b"CREATE ROLE ".to_vec();
        sql.extend(q(u));
        sql.extend_from_slice(b" LOGIN PASSWORD 'oracle-pw'");
        cluster.psql_admin_bytes(&sql);
    }
    cluster.psql_admin("ALTER ROLE postgres PASSWORD 'oracle-pw'");
    for g in GROUPS {
        let mut sql = b"CREATE ROLE ".to_vec();
        sql.extend(q(g));
        sql.extend_from_slice(b" NOLOGIN PASSWORD 'oracle-pw'");
        cluster.psql_admin_bytes(&sql);
    }
    for (m, g) in MEMBERS {
        let mut sql = b"GRANT ".to_vec();
        sql.extend(q(g));
        sql.extend_from_slice(b" TO ");
        sql.extend(q(m));
        cluster.psql_admin_bytes(&sql);
    }
    cluster.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
}

/// Generates the files of one round.
pub fn generate(rng: &mut Rng, major: Major, rules: usize) -> Generated {
    let mut layout: Vec<(String, Vec<Item>)> = vec![(MAIN.to_string(), Vec::new())];
    if major == Major::Pg16Plus {
        for f in ["inc/one.conf", "conf.d/10-a.conf", "conf.d/20-b.conf"] {
            layout.push((f.to_string(), Vec::new()));
        }
    }
    for _ in 0..rules {
        let f = if major == Major::Pg16Plus {
            rng.below(layout.len())
        } else {
            0
        };
        let items = &mut layout[f].1;
        if rng.chance(10) {
            items.push(if rng.chance(50) {
                Item::Blank
            } else {
                Item::Comment
            });
        }
        items.push(Item::Rule(rule_columns(rng, major)));
    }
    if major == Major::Pg16Plus {
        // the directives, at random places of the main file
        let main = &mut layout[0].1;
        for inc in [
            Item::Include("include", "inc/one.conf"),
            Item::Include("include_dir", "conf.d"),
            Item::Include("include_if_exists", "inc/missing.conf"),
            Item::Include("\"include\"", "inc/empty.conf"),
        ] {
            let at = rng.below(main.len() + 1);
            main.insert(at, inc);
        }
    }
    let mut files = Vec::new();
    let mut catch_all_from = 0;
    for (name, items) in &layout {
        let (mut hba, mut two) = (Vec::new(), Vec::new());
        let mut line_no = 1;
        for item in items {
            let (text_hba, text_2f, extra) = match item {
                Item::Blank => (b"\n".to_vec(), b"\n".to_vec(), 0),
                Item::Comment => (
                    b"# a comment, \"quoted\" @x\n".to_vec(),
                    b"# a comment, \"quoted\" @x\n".to_vec(),
                    0,
                ),
                Item::Include(kw, target) => {
                    let l = format!("{kw} {target}\n").into_bytes();
                    (l.clone(), l, 0)
                }
                Item::Rule(cols) => {
                    let (cont, extra) = continue_lines(rng, cols);
                    let method = if rng.chance(50) {
                        &b"trust"[..]
                    } else {
                        b"password"
                    };
                    let comment: &[u8] = if rng.chance(10) {
                        b" # trailing comment"
                    } else {
                        b""
                    };
                    let mut h = cont.clone();
                    h.extend_from_slice(method);
                    h.extend_from_slice(comment);
                    h.push(b'\n');
                    let mut t = cont;
                    t.extend_from_slice(b"2f-scram-sha-256");
                    t.extend_from_slice(comment);
                    t.push(b'\n');
                    (h, t, extra)
                }
            };
            hba.extend(text_hba);
            two.extend(text_2f);
            line_no += 1 + extra;
        }
        if name == MAIN {
            catch_all_from = line_no;
            hba.extend_from_slice(CATCH_ALL);
        }
        files.push((name.clone(), hba, two));
    }
    files.push(("inc/empty.conf".into(), Vec::new(), Vec::new()));
    for (name, text) in [
        (
            "users.txt",
            &b"alice, \"bob\"\n# comment\n+staff @sub/more.txt\n"[..],
        ),
        ("users list.txt", b"carol \"+plus\" caf\xe9\n"),
        ("sub/more.txt", b"adm_dave\n"),
        ("dbs.txt", b"app1 \"db two\"\n@\"more dbs.txt\"\n"),
        ("more dbs.txt", b"caf\xe9, staff\n"),
    ] {
        // @files are read relative to the file that names them: one copy beside each
        for dir in ["", "inc/", "conf.d/"] {
            files.push((format!("{dir}{name}"), text.to_vec(), text.to_vec()));
        }
    }
    Generated {
        files,
        catch_all_from,
    }
}

/// Writes both trees under `root/hba` and `root/2f`.
pub fn write_trees(root: &Path, g: &Generated) {
    for (tree, pick) in [("hba", 0), ("2f", 1)] {
        let dir = root.join(tree);
        let _ = std::fs::remove_dir_all(&dir);
        for (name, hba, two) in &g.files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, if pick == 0 { hba } else { two }).unwrap();
        }
    }
}

/// One connection of the oracle.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub user: Vec<u8>,
    pub database: Vec<u8>,
    pub replication: Option<&'static str>,
    pub source: IpAddr,
    pub in_netns: bool,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {:?} database {:?} replication {:?} from {}{}",
            String::from_utf8_lossy(&self.user),
            String::from_utf8_lossy(&self.database),
            self.replication,
            self.source,
            if self.in_netns {
                " (namespace host)"
            } else {
                ""
            }
        )
    }
}

pub fn attempt(rng: &mut Rng, netns: bool) -> Attempt {
    let user = if rng.chance(5) {
        GHOST.to_vec()
    } else if rng.chance(5) {
        rng.pick(GROUPS).to_vec()
    } else {
        rng.pick(USERS).to_vec()
    };
    let database = if rng.chance(15) {
        user.clone()
    } else {
        rng.pick(DATABASES).to_vec()
    };
    let replication = match rng.below(20) {
        0 => Some("true"),
        1 => Some("database"),
        _ => None,
    };
    let in_netns = netns && rng.chance(10);
    let source = if in_netns {
        crate::netns::PEER_ADDR.parse().unwrap()
    } else {
        rng.pick(SOURCES).parse().unwrap()
    };
    Attempt {
        user,
        database,
        replication,
        source,
        in_netns,
    }
}

/// What one decision line says: (PostgreSQL's line, pg_twofactor's rule).
fn parse_decision(line: &str) -> Option<(String, String)> {
    let record = pg_twofactor_core::decision_log::LogRecord::find(line)?;
    Some((record.hba?, record.rule))
}

/// The log line prefix the oracle's cluster uses: `%r` (client address and port) tells which
/// connection a decision belongs to.
pub const LOG_LINE_PREFIX: &str = "log_line_prefix = '%m [%p] %r '";

/// Decisions in `log`, by the client's `address(port)`; `None` when two lines share a key.
fn decisions_by_client(log: &str) -> std::collections::HashMap<String, Option<(String, String)>> {
    let mut out = std::collections::HashMap::new();
    for line in log.lines() {
        let Some(d) = parse_decision(line) else {
            continue;
        };
        let Some(client) = line.split("] ").nth(1).and_then(|r| r.split(' ').next()) else {
            continue;
        };
        out.entry(client.to_string())
            .and_modify(|e| *e = None)
            .or_insert(Some(d));
    }
    out
}

fn raw(cluster: &Cluster, a: &Attempt) -> RawLogin {
    RawLogin {
        user: a.user.clone(),
        database: a.database.clone(),
        password: PASSWORD.to_vec(),
        replication: a.replication,
        source: (!a.in_netns).then_some(a.source),
        server: if a.in_netns {
            SocketAddr::new(crate::netns::HOST_ADDR.parse().unwrap(), cluster.port)
        } else if a.source.is_ipv6() {
            SocketAddr::new("::1".parse().unwrap(), cluster.port)
        } else {
            SocketAddr::new("127.0.0.1".parse().unwrap(), cluster.port)
        },
        cert: None,
        query: false,
    }
}

type Answer = (RawOutcome, SocketAddr);

fn login_all(jobs: Vec<(usize, RawLogin)>, ca: PathBuf) -> Vec<(usize, Answer)> {
    jobs.into_iter()
        .map(|(i, l)| {
            let r = raw_login_at(&l, &ca)
                .unwrap_or_else(|e| panic!("connection failed for {l:?}: {e}"));
            (i, r)
        })
        .collect()
}

/// Makes every attempt, `clients` at a time (those from the namespace host on one thread
/// inside it); returns the outcomes and client addresses in the attempts' order.
fn connect_all(
    cluster: &Cluster,
    attempts: &[Attempt],
    netns: Option<&NetnsHost>,
    clients: usize,
) -> Vec<Answer> {
    let clients = clients.max(1);
    let ca = cluster.pki.ca_cert.clone();
    let share = |pick: &dyn Fn(usize, &Attempt) -> bool| -> Vec<(usize, RawLogin)> {
        attempts
            .iter()
            .enumerate()
            .filter(|(i, a)| pick(*i, a))
            .map(|(i, a)| (i, raw(cluster, a)))
            .collect()
    };
    let mut results: Vec<Option<Answer>> = vec![None; attempts.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                let mine = share(&|i, a| !a.in_netns && i % clients == t);
                let ca = ca.clone();
                scope.spawn(move || login_all(mine, ca))
            })
            .collect();
        if let Some(ns) = netns {
            let mine = share(&|_, a| a.in_netns);
            let ca = ca.clone();
            for (i, r) in ns.run(move || login_all(mine, ca)) {
                results[i] = Some(r);
            }
        }
        for h in handles {
            for (i, r) in h.join().expect("client thread") {
                results[i] = Some(r);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every attempt ran"))
        .collect()
}

/// The oracle's result.
#[derive(Default, Debug)]
pub struct Tally {
    pub decisions: usize,
    pub covered: usize,
    pub not_covered: usize,
    /// PostgreSQL refused before the hook ran (a role that does not exist on a password line).
    pub skipped: usize,
    pub mismatches: Vec<String>,
}

/// How much the oracle runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub seed: u64,
    /// Decisions to compare (whole rounds are run until there are at least this many).
    pub target: usize,
    pub per_round: usize,
    pub rules_per_round: usize,
    /// Concurrent clients.
    pub clients: usize,
}

/// Runs rounds of connections against `cluster` (configured by [`configure`]) until
/// `plan.target` decisions have been compared.
pub fn run(cluster: &Cluster, major: Major, plan: Plan, netns: Option<&NetnsHost>) -> Tally {
    let Plan {
        seed,
        target,
        per_round,
        rules_per_round,
        clients,
    } = plan;
    let root = cluster.root.join("oracle");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let hba_root = root.join("hba");
    let two_root = root.join("2f");
    let mut round = 0;
    while tally.decisions < target {
        assert!(
            round < 10 * (target / per_round + 1),
            "too many connections skipped: {tally:?}"
        );
        round += 1;
        let g = generate(&mut rng, major, rules_per_round);
        write_trees(&root, &g);
        crate::cluster::chown_to_cluster_user(&root);
        cluster.reload();
        let errors =
            cluster.psql_admin("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL");
        assert_eq!(
            errors,
            "0",
            "PostgreSQL rejected the generated pg_hba.conf (seed {seed}, round {round}):\n{}\n{}",
            cluster.psql_admin(
                "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL"
            ),
            dump(&g)
        );
        let ours =
            cluster.psql_admin("SELECT count(*) FROM pg_twofactor_rules WHERE error IS NOT NULL");
        assert_eq!(ours, "0", "pg_twofactor rejected rules PostgreSQL accepts (seed {seed}, round {round}):\n{}\n{}", cluster.psql_admin("SELECT file_name, line_number, error FROM pg_twofactor_rules WHERE error IS NOT NULL"), dump(&g));
        let attempts: Vec<Attempt> = (0..per_round)
            .map(|_| attempt(&mut rng, netns.is_some()))
            .collect();
        let mark = cluster.log_mark();
        let results = connect_all(cluster, &attempts, netns, clients);
        let log = cluster.log_since(mark);
        let decisions = decisions_by_client(&log);
        for (a, (outcome, local)) in attempts.iter().zip(results) {
            let key = format!("{}({})", local.ip(), local.port());
            let Some(found) = decisions.get(&key) else {
                match &outcome {
                    RawOutcome::Error { message, .. }
                        if message.starts_with("password authentication failed") =>
                    {
                        tally.skipped += 1;
                        continue;
                    }
                    other => panic!("no decision logged for {a} ({key}): {other:?}\n{log}"),
                }
            };
            let Some((hba, rule)) = found else {
                tally.skipped += 1; // two connections of the round had the same address and port
                continue;
            };
            tally.decisions += 1;
            let expected = expected_rule(hba, &hba_root, &two_root, g.catch_all_from);
            if rule == "none" {
                tally.not_covered += 1;
            } else {
                tally.covered += 1;
            }
            if &expected != rule {
                tally.mismatches.push(format!(
                    "seed {seed}, round {round}: {a}: PostgreSQL chose pg_hba.conf {hba}, so the rule should be {expected}; pg_twofactor chose {rule}\n{}",
                    dump(&g)
                ));
            }
        }
    }
    tally
}

/// The rule pg_twofactor must choose when PostgreSQL chose `hba` (`file:line` or `line N`).
fn expected_rule(hba: &str, hba_root: &Path, two_root: &Path, catch_all_from: usize) -> String {
    let (file, line) = match hba.strip_prefix("line ") {
        Some(n) => (hba_root.join(MAIN), n.parse::<usize>().unwrap()),
        None => {
            let (f, n) = hba.rsplit_once(':').expect("file:line");
            (PathBuf::from(f), n.parse::<usize>().unwrap())
        }
    };
    let rel = file
        .strip_prefix(hba_root)
        .unwrap_or_else(|_| panic!("{hba} is outside the generated tree"));
    if rel == Path::new(MAIN) && line >= catch_all_from {
        return "none".into();
    }
    format!("{}:{line}", two_root.join(rel).display())
}

/// The generated files, for a failure report.
pub fn dump(g: &Generated) -> String {
    let mut out = String::new();
    for (name, hba, two) in &g.files {
        let _ = writeln!(
            out,
            "--- {name} (pg_hba.conf tree)\n{}",
            String::from_utf8_lossy(hba)
        );
        let _ = writeln!(
            out,
            "--- {name} (rules tree)\n{}",
            String::from_utf8_lossy(two)
        );
    }
    out
}
