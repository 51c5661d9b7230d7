//! The demo behind `bash .ci/demo`: a cluster with TLS, certificates, a rules file and users,
//! built by the test harness ([`ClusterBuilder`], [`Pki`]); then one login accepted and each kind
//! of refusal (a certificate bound elsewhere in the TLS handshake, before any password), a
//! report-mode rule and an expiring certificate, with `psql`; then the dry run,
//! the statistics, the certificates seen, the status and the configuration check.
//!
//! The cluster keeps running in `DEMO_DIR` (default `/tmp/pg_twofactor-demo`) on `DEMO_PORT`
//! (default 5499); the end of the output says how to log in and how to stop it. Run as root
//! after installing the extension (`.ci/demo` does both); `PG_CONFIG` or `PG_MAJOR` chooses the
//! PostgreSQL major, as for the tests.

use pg_twofactor_e2e::{Cluster, San};
use std::path::PathBuf;
use std::process::Command;

const PASSWORD: &str = "demo-password";

/// `pg_hba.conf` after the harness's `local all all trust`.
/// Covered logins need a CA-verified certificate before their password (`clientcert=verify-ca`);
/// `trial`, whose rule only reports, does not yet.
const HBA: &[&str] = &[
    "hostssl all      legacy 127.0.0.1/32  md5            clientcert=verify-ca",
    "hostssl all      sloppy 127.0.0.1/32  password       clientcert=verify-ca",
    "hostssl all      trial  127.0.0.1/32  scram-sha-256",
    "hostssl all      all    127.0.0.1/32  scram-sha-256  clientcert=verify-ca",
    "# a deliberate flaw for the configuration check below: clear-text logins for everyone",
    "host    all      all    127.0.0.1/32  scram-sha-256",
];

const RULES: &str = "\
# TYPE   DATABASE USER    ADDRESS       METHOD
hostssl  all      test1   127.0.0.1/32  2f-scram-sha-256
hostssl  all      legacy  127.0.0.1/32  2f-md5
hostssl  all      sloppy  127.0.0.1/32  2f-scram-sha-256
# staged rollout: checked and counted, a failure is logged, the login goes on
hostssl  all      trial   127.0.0.1/32  2f-scram-sha-256  mode=report
# a deliberate flaw: line 2 already decides every login this line could match
hostssl  all      test1   127.0.0.1/32  2f-scram-sha-256  san=required
";

fn main() {
    let dir = PathBuf::from(
        std::env::var("DEMO_DIR").unwrap_or_else(|_| "/tmp/pg_twofactor-demo".into()),
    );
    let port: u16 = std::env::var("DEMO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5499);

    println!("==> cluster in {}/data, port {port}", dir.display());
    println!("    (pg_twofactor.client_reason = on, so that the refusals below show their reason; the default is off: see docs/security.md)");
    let c = HBA
        .iter()
        .fold(Cluster::builder().at(&dir).port(port), |b, l| b.hba(l))
        .listen("127.0.0.1")
        .rules(RULES)
        .setting("# pg_twofactor.enabled_extra_auth_methods = '2f-md5, 2f-password'")
        // a certificate bound to other addresses fails the TLS handshake, before any password
        .setting("pg_twofactor.handshake_check = on")
        // The demo shows why each login is refused, so it tells the client (and its
        // configuration check warns about that). Off, the default, a refused client gets
        // PostgreSQL's own wrong-password error, so that a client without a certificate
        // cannot tell a right password from a wrong one.
        .default_client_reason()
        .setting("pg_twofactor.client_reason = on")
        .start();
    for u in ["test1", "legacy", "sloppy", "trial"] {
        c.create_user(u, PASSWORD);
    }
    c.psql_admin("CREATE EXTENSION pg_twofactor");

    println!(
        "==> certificates (CA, server, clients) in {}",
        c.pki.dir.display()
    );
    let here = [San::Ip("127.0.0.1".parse().unwrap())];
    c.pki.client("test1", &["test1"], Some(&here)); // the good one
    c.pki.client(
        "test1-elsewhere",
        &["test1"],
        Some(&[San::Ip("10.20.30.40".parse().unwrap())]), // bound to another host
    );
    c.pki.client("mallory", &["mallory"], Some(&here)); // someone else's certificate
    for u in ["legacy", "sloppy", "trial"] {
        c.pki.client(u, &[u], Some(&here));
    }
    c.pki
        .client_valid_for("test1-expiring", "test1", Some(&here), 3); // expires in 3 days

    println!();
    println!("==> the rules, as pg_twofactor_rules shows them");
    show(&c, "SELECT line_number, type, database, user_name, address, auth_method, options, mode, error FROM pg_twofactor_rules");

    println!("==> logins");
    let attempts: &[(&str, &str, Option<&str>)] = &[
        ("password + the right certificate", "test1", Some("test1")),
        (
            "password, no certificate (clientcert=verify-ca: refused by PostgreSQL before the password)",
            "test1",
            None,
        ),
        (
            "password + a certificate bound to another address (refused in the TLS handshake, before the password)",
            "test1",
            Some("test1-elsewhere"),
        ),
        (
            "password + someone else's certificate",
            "test1",
            Some("mallory"),
        ),
        ("2f-md5 while it is not enabled", "legacy", Some("legacy")),
        (
            "a 2f-scram-sha-256 rule, but pg_hba.conf checked the password with 'password'",
            "sloppy",
            Some("sloppy"),
        ),
        (
            "a mode=report rule, no certificate: let in, and logged",
            "trial",
            None,
        ),
        (
            "a certificate that expires in 3 days: let in, with a notice",
            "test1",
            Some("test1-expiring"),
        ),
    ];
    for (title, user, cert) in attempts {
        try_login(&c, title, user, *cert);
    }

    println!();
    println!("==> what the server log says about the refusals, the reported login and the expiring certificate");
    // each such line and the one after it (the DETAIL), as `grep -A1` would show them
    let log = c.log();
    let lines: Vec<&str> = log.lines().collect();
    let mut last_shown = None;
    for (i, l) in lines.iter().enumerate() {
        if l.contains("two-factor authentication failed")
            || l.contains("refused the TLS handshake")
            || l.contains("expires on")
        {
            if last_shown.is_some_and(|s| s + 1 < i) {
                println!("    --");
            }
            println!("    {l}");
            if let Some(next) = lines.get(i + 1) {
                println!("    {next}");
            }
            last_shown = Some(i + 1);
        }
    }

    let certs = c.pki.dir.display().to_string();
    println!();
    println!("==> dry run: which of these certificates would let test1 in from 127.0.0.1? (nobody logs in)");
    show(&c, &format!("SELECT certificate, rule_line, verdict, reason FROM (VALUES ('test1'), ('test1-elsewhere'), ('mallory'), (NULL)) c(certificate), pg_twofactor_check('test1', 'postgres', '127.0.0.1', pg_read_file('{certs}/' || certificate || '.crt'))"));
    println!("==> dry run: trial (report mode) without a certificate");
    show(&c, "SELECT rule_line, rule_mode, verdict, reason FROM pg_twofactor_check('trial', 'postgres', '127.0.0.1', NULL)");

    println!();
    println!("==> statistics after these logins (one row per rule, and per rule and reason)");
    show(&c, "SELECT regexp_replace(rule_file, '.*/', '') AS file, rule_line, coalesce(reason, '(all)') AS reason, checked, accepted, refused, reported FROM pg_twofactor_stats WHERE rule_file IS NOT NULL OR reason LIKE 'refused in the TLS handshake%'");
    println!("==> certificates seen, soonest expiry first");
    show(&c, "SELECT common_name, serial, not_after::date, days_left, last_user, last_client_addr, last_accepted IS NOT NULL AS accepted, logins FROM pg_twofactor_certificates");
    println!("==> status");
    show(&c, "SELECT rules_loaded, loaded_at, reload_pending, last_reload_error, ssl, ssl_ca_file, enabled_methods, handshake_check FROM pg_twofactor_status()");
    println!("==> configuration problems (this demo's configuration has some on purpose)");
    show(&c, "SELECT severity, regexp_replace(file_name, '.*/', '') AS file, line_number AS line, problem FROM pg_twofactor_config_problems");

    let login = format!(
        "PGPASSWORD={PASSWORD} {}/psql \"{}\"",
        c.bin.display(),
        conninfo(&c, "test1", Some("test1"))
    );
    let log_path = c.log_path().display().to_string();
    let data = c.data.display().to_string();
    let stop = c.keep_running();
    println!();
    println!("The demo cluster is running (data: {data}, log: {log_path}, certificates: {certs}).");
    println!("Log in:   {login}");
    println!("Stop it:  {stop}");
}

/// A libpq connection string for `user` with certificate `cert` (`None`: none sent).
fn conninfo(c: &Cluster, user: &str, cert: Option<&str>) -> String {
    let dir = c.pki.dir.display();
    let mut s = format!(
        "host=127.0.0.1 port={} dbname=postgres user={user} sslmode=verify-full sslrootcert={dir}/root.crt",
        c.port
    );
    match cert {
        Some(stem) => s.push_str(&format!(
            " sslcert={dir}/{stem}.crt sslkey={dir}/{stem}.key"
        )),
        None => s.push_str(" sslcert=/nonexistent sslkey=/nonexistent"),
    }
    s
}

/// One login with `psql`, its command line and what it printed, indented.
fn try_login(c: &Cluster, title: &str, user: &str, cert: Option<&str>) {
    let conn = conninfo(c, user, cert);
    println!("--- {title}");
    println!("    psql \"{conn}\"");
    let out = Command::new(c.bin.join("psql"))
        .args(["-X", "-At", "-d", &conn, "-c"])
        .arg("SELECT 'accepted: logged in as ' || current_user")
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("run psql");
    // psql writes a NOTICE (stderr) before the query's result (stdout)
    for text in [&out.stderr, &out.stdout] {
        for l in String::from_utf8_lossy(text).lines() {
            println!("    {l}");
        }
    }
}

/// Runs `sql` as the superuser and prints psql's aligned output.
fn show(c: &Cluster, sql: &str) {
    let out = Command::new(c.bin.join("psql"))
        .arg("-X")
        .arg("-h")
        .arg(&c.root)
        .args(["-p", &c.port.to_string(), "-U", "postgres", "-c", sql])
        .output()
        .expect("run psql");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "psql failed: {sql}");
}
