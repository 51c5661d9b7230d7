//! `pg_twofactor-cert`, run as a DBA runs it (the commands of docs/certificates.md): a CA's
//! certificates bound to IPv4 and IPv6 subnets and a DNS name, a signed certificate request,
//! read back by OpenSSL and by `inspect`, accepted by a real server from inside their subnet
//! and refused from outside it (a network-namespace host included), the offline `check`
//! agreeing with `pg_twofactor_check()`, and bad input refused with its reason.

use pg_twofactor_e2e::cluster::major_of_bindir;
use pg_twofactor_e2e::dns::NxDomainDns;
use pg_twofactor_e2e::netns::{NetnsHost, HOST_ADDR, PEER_ADDR};
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{rust_login, two_factor, CertFiles, Cluster, Login};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ADDR_REASON: &str = "client address does not match the certificate";

/// The tool: `PG2F_CERT_TOOL`, else the debug build in this workspace (`.ci/test` builds it).
fn tool() -> PathBuf {
    if let Ok(p) = std::env::var("PG2F_CERT_TOOL") {
        return PathBuf::from(p);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/pg_twofactor-cert");
    assert!(
        built.exists(),
        "{} is not built: run cargo build -p pg_twofactor_cert (or set PG2F_CERT_TOOL)",
        built.display()
    );
    built
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with exit status `code` and says `message` on stderr.
#[track_caller]
fn fails(out: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(code) && stderr.contains(message),
        "expected exit {code} and {message:?}, got {:?}:\n{}{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Dba {
    tool: PathBuf,
    dir: PathBuf,
    ca_cert: PathBuf,
    ca_key: PathBuf,
}

impl Dba {
    /// Runs the tool's `command` with the CA's certificate and key, then `rest`.
    fn with_ca(&self, command: &str, rest: &[&str]) -> Output {
        let mut args = vec![
            command,
            "--ca-cert",
            s(&self.ca_cert),
            "--ca-key",
            s(&self.ca_key),
        ];
        args.extend_from_slice(rest);
        run(&self.tool, &args)
    }

    /// `pg_twofactor-cert issue` for `login` with `sans`, into `stem`.crt/.key.
    fn issue(&self, login: &str, stem: &str, sans: &[&str]) -> CertFiles {
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
        };
        let mut args = vec![
            "issue",
            "--ca-cert",
            s(&self.ca_cert),
            "--ca-key",
            s(&self.ca_key),
            "--login",
            login,
            "--days",
            "30",
            "--out-cert",
            s(&files.cert),
            "--out-key",
            s(&files.key),
        ];
        for san in sans {
            args.extend(["--san", san]);
        }
        let stdout = ok(&run(&self.tool, &args));
        assert!(
            !stdout.contains("PRIVATE KEY"),
            "the key is never printed: {stdout}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is its owner's only");
        // OpenSSL verifies it against the CA and reads it
        let verify = ok(&run(
            Path::new("openssl"),
            &["verify", "-CAfile", s(&self.ca_cert), s(&files.cert)],
        ));
        assert!(verify.contains(": OK"), "{verify}");
        let text = ok(&run(
            Path::new("openssl"),
            &["x509", "-noout", "-text", "-in", s(&files.cert)],
        ));
        assert!(
            text.contains(&format!("Subject: CN = {login}"))
                && text.contains("TLS Web Client Authentication"),
            "{text}"
        );
        files
    }
}

/// The names the first scenario's server knows (its own hosts file; every other name is
/// unknown to its DNS, [`NxDomainDns`]).
const HOSTS: &[u8] = b"127.0.0.1 app1.pg2f.test localhost\n::1 localhost\n";

/// `pg_twofactor-cert check` of `app` to `postgres` from 127.0.0.1 under the cluster's rules
/// file, with `cert` verified against `ca` when given.
fn offline_check(c: &Cluster, dba: &Dba, cert: &Path, ca: Option<&Path>) -> Output {
    let rules = c.data.join("pg_twofactor_hba.conf");
    let major = major_of_bindir(&c.bin).to_string();
    let mut args = vec![
        "check",
        "--rules",
        s(&rules),
        "--user",
        "app",
        "--database",
        "postgres",
        "--address",
        "127.0.0.1",
        "--cert",
        s(cert),
        "--major",
        &major,
    ];
    if let Some(ca) = ca {
        args.extend(["--ca-file", s(ca)]);
    }
    run(&dba.tool, &args)
}

fn cluster(netns: bool, names: bool) -> (Cluster, Dba) {
    let mut builder = scenario::builder().rules("hostssl all app all 2f-scram-sha-256\n");
    if netns {
        builder = builder.listen(&format!("127.0.0.1,::1,{HOST_ADDR}"));
    }
    if names {
        builder = builder.name_service(HOSTS);
    }
    let c = builder.start();
    c.create_user("app", PASSWORD);
    c.create_user("alice", PASSWORD);
    let dba = Dba {
        tool: tool(),
        dir: c.pki.dir.join("dba"),
        ca_cert: c.pki.ca_cert.clone(),
        ca_key: c.pki.ca_key_file(),
    };
    std::fs::create_dir_all(&dba.dir).unwrap();
    (c, dba)
}

#[test]
fn a_dba_goes_from_a_ca_to_subnet_bound_logins() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    let _dns = NxDomainDns::start();
    let netns = NetnsHost::for_scenario("certtool");
    let (c, dba) = cluster(netns.is_some(), true);
    let login = |files: &CertFiles, from: &str, to: &str| {
        rust_login(
            &c,
            &Login::new("app", PASSWORD).cert(files).from(from).to(to),
        )
    };
    // an IPv4 subnet: 127.0.0.0/29 holds 127.0.0.1 to 127.0.0.7
    let v4 = dba.issue("app", "app-v4", &["127.0.0.0/29"]);
    login(&v4, "127.0.0.2", "127.0.0.1").assert_accepted_as("app");
    login(&v4, "127.0.0.9", "127.0.0.1").assert_refused(&two_factor("app", ADDR_REASON));
    // an IPv6 subnet: ::/127 holds ::1; fd00::/64 does not
    let v6 = dba.issue("app", "app-v6", &["::/127"]);
    login(&v6, "::1", "::1").assert_accepted_as("app");
    let v6_elsewhere = dba.issue("app", "app-v6-away", &["fd00::/64"]);
    login(&v6_elsewhere, "::1", "::1").assert_refused(&two_factor("app", ADDR_REASON));
    // a DNS name: 127.0.0.1 is app1.pg2f.test, 127.0.0.3 has no name
    let named = dba.issue("app", "app-dns", &["DNS:app1.pg2f.test"]);
    login(&named, "127.0.0.1", "127.0.0.1").assert_accepted_as("app");
    login(&named, "127.0.0.3", "127.0.0.1").assert_refused(&two_factor("app", ADDR_REASON));
    // the namespace host: refused with the loopback subnet's certificate, accepted with one
    // for its own subnet
    if let Some(host) = &netns {
        let theirs = dba.issue("app", "app-peer", &["10.213.7.0/24"]);
        let from_peer = |files: &CertFiles| {
            std::thread::scope(|sc| {
                sc.spawn(|| {
                    host.enter_on_this_thread();
                    rust_login(&c, &Login::new("app", PASSWORD).cert(files).to(HOST_ADDR))
                })
                .join()
                .unwrap()
            })
        };
        from_peer(&v4).assert_refused(&two_factor("app", ADDR_REASON));
        let outcome = from_peer(&theirs);
        outcome.assert_accepted_as("app");
        assert!(format!("{outcome:?}").contains(PEER_ADDR), "{outcome:?}");
    }

    // inspect: what pg_twofactor will read
    let json = ok(&run(&dba.tool, &["inspect", "--json", s(&v4.cert)]));
    assert!(
        json.contains("\"common_names\":[\"app\"]")
            && json.contains("\"subnets\":[\"127.0.0.0/29\"]")
            && json.contains("\"addresses\":[]"),
        "{json}"
    );
    let text = ok(&run(&dba.tool, &["inspect", s(&v6.cert)]));
    assert!(text.contains("subnets:          ::/127"), "{text}");

    // check: the offline dry run says what pg_twofactor_check() says
    let rules = c.data.join("pg_twofactor_hba.conf");
    let major = major_of_bindir(&c.bin).to_string();
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    let pem = std::fs::read_to_string(&v4.cert).unwrap();
    for (addr, exit) in [("127.0.0.2", 0), ("127.0.0.9", 1)] {
        let out = run(
            &dba.tool,
            &[
                "check",
                "--rules",
                s(&rules),
                "--user",
                "app",
                "--database",
                "postgres",
                "--address",
                addr,
                "--cert",
                s(&v4.cert),
                "--ca-file",
                s(&dba.ca_cert),
                "--major",
                &major,
            ],
        );
        assert_eq!(out.status.code(), Some(exit), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let server = c.psql_admin(&format!(
            "SELECT 'verdict: ' || verdict || coalesce(E'\\nreason:  ' || reason, '') FROM pg_twofactor_check('app', 'postgres', '{addr}', '{pem}')"
        ));
        assert!(
            stdout.starts_with(&server),
            "offline:\n{stdout}\nserver:\n{server}"
        );
    }
}

#[test]
fn a_signed_request_keeps_the_clients_key_on_the_client() {
    let (c, dba) = cluster(false, false);
    let key = dba.dir.join("alice.key");
    let csr = dba.dir.join("alice.csr");
    ok(&run(
        Path::new("openssl"),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=alice",
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
        ],
    ));
    let cert = dba.dir.join("alice.crt");
    ok(&dba.with_ca(
        "sign",
        &[
            "--csr",
            s(&csr),
            "--login",
            "alice",
            "--san",
            "127.0.0.1",
            "--out-cert",
            s(&cert),
        ],
    ));
    c.write_rules("hostssl all alice all 2f-scram-sha-256\n");
    c.reload();
    let files = CertFiles { cert, key };
    rust_login(&c, &Login::new("alice", PASSWORD).cert(&files)).assert_accepted_as("alice");
    rust_login(
        &c,
        &Login::new("alice", PASSWORD).cert(&files).from("127.0.0.2"),
    )
    .assert_refused(&two_factor("alice", ADDR_REASON));
    // `sign` of alice's request with `args`, into OUT.crt
    let sign = |args: &[&str], out: &str| {
        let out = dba.dir.join(format!("{out}.crt"));
        let mut all = vec!["--csr", s(&csr)];
        all.extend_from_slice(args);
        all.extend(["--out-cert", s(&out)]);
        dba.with_ca("sign", &all)
    };
    // a request for someone else is not signed for alice
    let out = sign(&["--login", "bob", "--san", "127.0.0.1"], "bob");
    fails(&out, 2, "has CN \"alice\", not the login \"bob\"");
    // the login is the CA's choice, never taken from the request
    fails(
        &sign(&["--san", "127.0.0.1"], "a2"),
        2,
        "--login is required",
    );
    // and where it may be used from is chosen explicitly
    fails(&sign(&["--login", "alice"], "a3"), 2, "give --san ENTRY");
    assert!(!dba.dir.join("a2.crt").exists() && !dba.dir.join("a3.crt").exists());
}

#[test]
fn bad_input_is_refused_with_its_reason() {
    let (_c, dba) = cluster(false, false);
    let t = &dba.tool;
    // a CA key that is not the CA certificate's
    let other_key = dba.dir.join("other.key");
    ok(&run(
        Path::new("openssl"),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            s(&other_key),
        ],
    ));
    let out = run(
        t,
        &[
            "issue",
            "--ca-cert",
            s(&dba.ca_cert),
            "--ca-key",
            s(&other_key),
            "--login",
            "app",
        ],
    );
    fails(&out, 2, "does not belong to the CA certificate");
    // a subnet with host bits set
    let out = dba.with_ca("issue", &["--login", "app", "--san", "10.1.2.3/16"]);
    fails(
        &out,
        2,
        "subnet \"10.1.2.3/16\" has host bits set: the network is 10.1.0.0/16",
    );
    // an unreadable file
    let out = run(t, &["inspect", "/nonexistent/app.crt"]);
    fails(
        &out,
        2,
        "could not read /nonexistent/app.crt: No such file or directory",
    );
    // no key is overwritten without --force
    let first = dba.issue("app", "app-once", &["127.0.0.1"]);
    let out = dba.with_ca(
        "issue",
        &[
            "--login",
            "app",
            "--no-san",
            "--out-cert",
            s(&dba.dir.join("x.crt")),
            "--out-key",
            s(&first.key),
        ],
    );
    fails(&out, 2, "File exists");
    // a symbolic link planted where the key goes is never written through
    let target = dba.dir.join("victim");
    std::fs::write(&target, "untouched").unwrap();
    let planted = dba.dir.join("planted.key");
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    let planted_cert = dba.dir.join("planted.crt");
    let with_link = |force: bool| {
        let mut args = vec![
            "--login",
            "app",
            "--no-san",
            "--out-cert",
            s(&planted_cert),
            "--out-key",
            s(&planted),
        ];
        if force {
            args.push("--force");
        }
        dba.with_ca("issue", &args)
    };
    fails(&with_link(false), 2, "File exists");
    std::fs::remove_file(&planted_cert).ok();
    ok(&with_link(true));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    let meta = std::fs::symlink_metadata(&planted).unwrap();
    assert!(
        meta.is_file(),
        "--force replaced the link with the key file"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // issue, like sign, wants --san or --no-san
    let out = dba.with_ca(
        "issue",
        &["--login", "app", "--out-cert", s(&dba.dir.join("y.crt"))],
    );
    fails(
        &out,
        2,
        "or --no-san for a certificate usable from any address",
    );
    // --help says how, with examples
    let help = ok(&run(t, &["--help"]));
    assert!(
        help.contains("EXAMPLES") && help.contains("--san 10.1.0.0/16"),
        "{help}"
    );
}

#[test]
fn issuer_pins_a_rule_to_one_of_the_trusted_cas() {
    use pg_twofactor_cert::ca::{login_subject, write_cert, write_key, Ca, KeyKind, Profile};
    use pg_twofactor_e2e::San;
    use std::io::Write;
    let (c, dba) = cluster(false, false);
    // a second CA, trusted by ssl_ca_file too
    let users_ca = Ca::create("pg_twofactor users CA", 30, KeyKind::EcP256).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(c.data.join("root.crt"))
        .unwrap()
        .write_all(&users_ca.cert.to_pem().unwrap())
        .unwrap();
    c.write_rules(
        "hostssl all app all 2f-scram-sha-256 issuer=\"CN=pg_twofactor test CA\"\n\
         hostssl all alice all 2f-scram-sha-256 issuer=\"CN=Nobody's CA,O=Example\"\n",
    );
    c.reload();
    let admin = dba.issue("app", "app-admin", &["127.0.0.1"]);
    let (cert, key) = users_ca
        .issue(
            &login_subject("app").unwrap(),
            Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
            30,
            KeyKind::EcP256,
            Profile::Client,
        )
        .unwrap();
    let users = CertFiles {
        cert: dba.dir.join("app-users.crt"),
        key: dba.dir.join("app-users.key"),
    };
    write_cert(&users.cert, &cert, true).unwrap();
    write_key(&users.key, &key, true).unwrap();

    rust_login(&c, &Login::new("app", PASSWORD).cert(&admin)).assert_accepted_as("app");
    let mark = c.log_mark();
    rust_login(&c, &Login::new("app", PASSWORD).cert(&users)).assert_refused(&two_factor(
        "app",
        "certificate issuer does not match the rule",
    ));
    let log = c.log_since(mark);
    assert!(
        log.contains("The certificate's issuer is \"CN=pg_twofactor users CA\", and the rule requires issuer \"CN=pg_twofactor test CA\""),
        "{log}"
    );
    // shown, checked and counted
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    assert_eq!(
        c.psql_admin("SELECT options FROM pg_twofactor_rules WHERE line_number = 1"),
        "{\"issuer=CN=pg_twofactor test CA\"}"
    );
    let problems = c.psql_admin(
        "SELECT line_number || ' ' || severity || ' ' || problem FROM pg_twofactor_config_problems WHERE problem LIKE 'issuer=%'",
    );
    assert_eq!(problems, "2 error issuer= names no CA of ssl_ca_file");
    assert_eq!(
        c.psql_admin("SELECT sum(refused) FROM pg_twofactor_stats WHERE reason = 'certificate issuer does not match the rule'"),
        "1"
    );
    // the offline check knows the option too
    let out = offline_check(&c, &dba, &users.cert, Some(&c.data.join("root.crt")));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("reason:  certificate issuer does not match the rule"),
        "{out:?}"
    );
}

/// A certificate for `cn` signed by `ca` that expired yesterday (the tool never makes one).
fn expired(ca: &pg_twofactor_cert::ca::Ca, cn: &str, path: &Path) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::x509::X509;
    let key = pg_twofactor_cert::ca::new_key(pg_twofactor_cert::ca::KeyKind::EcP256).unwrap();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&pg_twofactor_cert::ca::login_subject(cn).unwrap())
        .unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now - 10 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now - 86_400).unwrap())
        .unwrap();
    b.sign(ca.key(), MessageDigest::sha256()).unwrap();
    std::fs::write(path, b.build().to_pem().unwrap()).unwrap();
}

/// `check --cert` verifies the certificate as the server's TLS layer would before any rule: a
/// certificate of a CA that `ssl_ca_file` does not hold, or one past its dates, is refused there
/// (the server refuses it in the handshake, so "accepted" would be wrong); without the CA file
/// it cannot say, and says so.
#[test]
fn check_verifies_the_chain_and_the_dates_as_tls_does() {
    use pg_twofactor_cert::ca::{Ca, KeyKind};
    let (c, dba) = cluster(false, false);
    let check = |cert: &Path, ca: Option<&Path>| offline_check(&c, &dba, cert, ca);
    let good = dba.issue("app", "app-good", &["127.0.0.1"]);
    let out = check(&good.cert, Some(&dba.ca_cert));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verdict: accepted"),
        "{out:?}"
    );
    // another CA's certificate, right in every other way
    let other = Ca::create("Someone else's CA", 30, KeyKind::EcP256).unwrap();
    let stranger = dba.dir.join("stranger.crt");
    let (cert, _) = other
        .issue(
            &pg_twofactor_cert::ca::login_subject("app").unwrap(),
            Some(&[pg_twofactor_e2e::San::Ip("127.0.0.1".parse().unwrap())]),
            30,
            KeyKind::EcP256,
            pg_twofactor_cert::ca::Profile::Client,
        )
        .unwrap();
    std::fs::write(&stranger, cert.to_pem().unwrap()).unwrap();
    let out = check(&stranger, Some(&dba.ca_cert));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout.contains("verdict: refused")
            && stdout.contains("reason:  certificate refused by TLS")
            && stdout.contains("unable to get local issuer certificate"),
        "{stdout}"
    );
    // the CA's own certificate, expired
    let ca = Ca::load(&dba.ca_cert, &dba.ca_key).unwrap();
    let old = dba.dir.join("expired.crt");
    expired(&ca, "app", &old);
    let out = check(&old, Some(&dba.ca_cert));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout.contains("certificate has expired"), "{stdout}");
    fails(&check(&good.cert, None), 2, "--cert needs --ca-file FILE");
}

/// `inspect` prints the issuer exactly as the rule option `issuer=` takes it: OpenSSL's
/// `-nameopt RFC2253` form, which is PostgreSQL's.
#[test]
fn inspect_prints_the_issuer_as_issuer_takes_it() {
    let (_c, dba) = cluster(false, false);
    let cert = dba.issue("app", "app-issuer", &["127.0.0.1"]);
    let openssl = ok(&run(
        Path::new("openssl"),
        &[
            "x509",
            "-noout",
            "-issuer",
            "-nameopt",
            "RFC2253",
            "-in",
            s(&cert.cert),
        ],
    ));
    let want = openssl.trim().trim_start_matches("issuer=").trim();
    let text = ok(&run(&dba.tool, &["inspect", s(&cert.cert)]));
    assert!(
        text.contains(&format!("issuer:           {want}\n")),
        "{want}\n{text}"
    );
    let json = ok(&run(&dba.tool, &["inspect", "--json", s(&cert.cert)]));
    assert!(
        json.contains(&format!("\"issuer\":\"{want}\"")),
        "{want}\n{json}"
    );
}

/// A certificate's text is the client's choice (any CA-issued name will do): a CN and a DNS
/// SubjectAltName carrying a newline and a terminal escape sequence never reach the server log
/// or the tool's output as such, in the login hook's refusal, the handshake check's refusal and
/// `inspect`.
#[test]
fn certificate_text_is_escaped_in_the_log_and_the_tool_output() {
    use pg_twofactor_e2e::San;
    let (c, dba) = cluster(false, false);
    let cn: &[u8] = b"app\nLOG:  forged line\x1b[2J";
    let evil = c.pki.client_raw_cn(
        "evil",
        cn,
        Some(&[
            San::Dns("x\n\x1b[31m.example".into()),
            San::Ip("127.0.0.1".parse().unwrap()),
        ]),
    );
    let clean = |text: &str, what: &str| {
        assert!(
            !text.contains('\x1b'),
            "{what} holds a raw escape:\n{text:?}"
        );
        assert!(
            !text.contains("\nLOG:  forged"),
            "{what} holds a forged line:\n{text}"
        );
        assert!(
            text.contains("\\x1b[2J") || text.contains("\\1B[2J"),
            "{what}:\n{text}"
        );
    };
    // the login hook: the CN is not the login
    let mark = c.log_mark();
    rust_login(&c, &Login::new("app", PASSWORD).cert(&evil)).assert_refused(&two_factor(
        "app",
        "certificate CN does not match the user name",
    ));
    let log = c.log_since(mark);
    clean(&log, "the login hook's refusal");
    assert!(log.contains("DNS:x\\x0a\\x1b[31m.example"), "{log}");
    // the handshake check: the SubjectAltName does not name 127.0.0.2
    c.append_settings(&["pg_twofactor.handshake_check = on"]);
    c.reload();
    let mark = c.log_mark();
    let _ = rust_login(
        &c,
        &Login::new("app", PASSWORD).cert(&evil).from("127.0.0.2"),
    );
    let log = c.log_since_when(mark, |l| l.contains("refused the TLS handshake"));
    assert!(log.contains("refused the TLS handshake"), "{log}");
    clean(&log, "the handshake check's refusal");
    // the tool, for people and for scripts
    let text = ok(&run(&dba.tool, &["inspect", s(&evil.cert)]));
    clean(&text, "inspect");
    assert!(
        text.contains("CN:               app\\x0aLOG:  forged line\\x1b[2J"),
        "{text}"
    );
    let json = ok(&run(&dba.tool, &["inspect", "--json", s(&evil.cert)]));
    clean(&json, "inspect --json");
}

/// An intermediate CA named exactly like `name` (an existing CA's subject), signed by `root`:
/// what any CA that `ssl_ca_file` trusts can mint.
fn same_named_intermediate(
    root: &pg_twofactor_cert::ca::Ca,
    name: &openssl::x509::X509NameRef,
    dir: &Path,
) -> pg_twofactor_cert::ca::Ca {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
    use openssl::x509::X509;
    use pg_twofactor_cert::ca::{new_key, write_cert, write_key, Ca, KeyKind};
    let key = new_key(KeyKind::EcP256).unwrap();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::ONE, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(name).unwrap();
    b.set_issuer_name(root.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(Some(&root.cert), None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(root.key(), MessageDigest::sha256()).unwrap();
    let (cert_path, key_path) = (dir.join("twin-ca.crt"), dir.join("twin-ca.key"));
    write_cert(&cert_path, &b.build(), true).unwrap();
    write_key(&key_path, &key, true).unwrap();
    Ca::load(&cert_path, &key_path).unwrap()
}

/// `issuer_key=` pins a rule to the issuing CA's key, where `issuer=` pins only a name: a second
/// CA that `ssl_ca_file` trusts mints an intermediate bearing the pinned CA's exact name, and
/// its client certificate (sent with that intermediate, as libpq sends a chain) passes the name
/// pin and is refused by the key pin, with its own reason, in the log, the statistics, the dry
/// run, the offline check, and the configuration check.
#[test]
fn issuer_key_pins_the_cas_key_where_issuer_pins_only_its_name() {
    use pg_twofactor_cert::ca::{login_subject, Ca, KeyKind, Profile};
    use pg_twofactor_e2e::{psql_run, San};
    use std::io::Write;
    let (c, dba) = cluster(false, false);
    c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
    // the pin, computed as the documentation says
    let pin = ok(&run(
        Path::new("sh"),
        &[
            "-c",
            &format!(
                "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | sha256sum",
                s(&dba.ca_cert)
            ),
        ],
    ));
    let pin = pin.split_whitespace().next().unwrap().to_string();
    assert_eq!(pin.len(), 64, "{pin}");
    // a second root, trusted too; it mints a twin of the pinned CA's name
    let other_root = Ca::create("Another trusted root", 30, KeyKind::EcP256).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(c.data.join("root.crt"))
        .unwrap()
        .write_all(&other_root.cert.to_pem().unwrap())
        .unwrap();
    let pinned = Ca::load(&dba.ca_cert, &dba.ca_key).unwrap();
    let twin = same_named_intermediate(&other_root, pinned.cert.subject_name(), &dba.dir);
    let (leaf, leaf_key) = twin
        .issue(
            &login_subject("app").unwrap(),
            Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
            30,
            KeyKind::EcP256,
            Profile::Client,
        )
        .unwrap();
    let forged = CertFiles {
        cert: dba.dir.join("app-twin.crt"),
        key: dba.dir.join("app-twin.key"),
    };
    // the client's certificate, then the intermediate it sends
    let chain = [leaf.to_pem().unwrap(), twin.cert.to_pem().unwrap()].concat();
    std::fs::write(&forged.cert, &chain).unwrap();
    pg_twofactor_cert::ca::write_key(&forged.key, &leaf_key, true).unwrap();
    let genuine = dba.issue("app", "app-genuine", &["127.0.0.1"]);
    let login = |files: &CertFiles| psql_run(&c, &Login::new("app", PASSWORD).cert(files));

    // the name pin lets the twin's certificate in: that is the gap
    c.write_rules("hostssl all app all 2f-scram-sha-256 issuer=\"CN=pg_twofactor test CA\"\n");
    c.reload();
    let run_twin = login(&forged);
    assert!(
        run_twin.success && run_twin.stdout.starts_with("app|"),
        "{run_twin:?}"
    );

    // the key pin refuses it, and still lets the genuine certificate in
    c.write_rules(&format!(
        "hostssl all app all 2f-scram-sha-256 issuer=\"CN=pg_twofactor test CA\" issuer_key=sha256:{pin}\n"
    ));
    c.reload();
    let run_genuine = login(&genuine);
    assert!(
        run_genuine.success && run_genuine.stdout.starts_with("app|"),
        "{run_genuine:?}"
    );
    c.psql_admin("SELECT pg_twofactor_stats_reset()");
    let mark = c.log_mark();
    let run_twin = login(&forged);
    assert!(!run_twin.success, "{run_twin:?}");
    let log = c.log_since(mark);
    assert!(
        log.contains("certificate issuer key does not match the rule")
            && log.contains(&format!("and the rule requires issuer_key=sha256:{pin}")),
        "{log}"
    );
    assert_eq!(
        c.psql_admin("SELECT sum(refused) FROM pg_twofactor_stats WHERE reason = 'certificate issuer key does not match the rule'"),
        "1"
    );
    assert!(c
        .psql_admin("SELECT options FROM pg_twofactor_rules")
        .contains(&format!("issuer_key=sha256:{pin}")),);
    // the dry run, given the chain the client sends
    let chain_text = String::from_utf8(chain.clone()).unwrap();
    assert_eq!(
        c.psql_admin(&format!(
            "SELECT verdict || ' ' || reason FROM pg_twofactor_check('app', 'postgres', '127.0.0.1', '{chain_text}')"
        )),
        "refused certificate issuer key does not match the rule"
    );
    // the offline check, verifying the chain against ssl_ca_file
    let out = offline_check(&c, &dba, &forged.cert, Some(&c.data.join("root.crt")));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("reason:  certificate issuer key does not match the rule"),
        "{out:?}"
    );
    // a pin of no CA of ssl_ca_file is a configuration problem
    c.write_rules(&format!(
        "hostssl all app all 2f-scram-sha-256 issuer_key=sha256:{}\n",
        "ab".repeat(32)
    ));
    assert_eq!(
        c.psql_admin("SELECT severity || ' ' || problem FROM pg_twofactor_config_problems WHERE problem LIKE 'issuer_key=%'"),
        "warning issuer_key= matches no CA of ssl_ca_file"
    );
}
