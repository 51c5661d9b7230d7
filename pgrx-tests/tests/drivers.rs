//! The drivers applications use, against `pg_twofactor.handshake_check`: asyncpg (Python),
//! pgjdbc (Java) and node-postgres (JavaScript) get a clean TLS failure, promptly, for a
//! certificate bound to other addresses (never a hang, never a password exchange), and a
//! session with the certificate bound to their own address. `.ci/setup --tests` installs them
//! (`PG2F_CLIENTS`, default /opt/pg_twofactor/clients; pgjdbc from Debian); a missing driver
//! fails the scenario under CI and is skipped, with a message, elsewhere.

use pg_twofactor_e2e::certs::{CertFiles, San};
use pg_twofactor_e2e::scenario::PASSWORD;
use pg_twofactor_e2e::Cluster;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HBA: &str = "hostssl all all all scram-sha-256 clientcert=verify-ca";
const RULES: &str = "hostssl all test1 all 2f-scram-sha-256\n";

fn clients_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("PG2F_CLIENTS").unwrap_or_else(|_| "/opt/pg_twofactor/clients".into()),
    )
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// A driver: its name and how to run one login with it, or why it cannot run here.
struct Driver {
    name: &'static str,
    command: fn() -> Result<Command, String>,
}

fn asyncpg() -> Result<Command, String> {
    let python = clients_dir().join("venv/bin/python3");
    if !python.exists() {
        return Err(format!(
            "{} is missing (.ci/setup --tests)",
            python.display()
        ));
    }
    let mut cmd = Command::new(python);
    cmd.arg(scripts().join("asyncpg_login.py"));
    Ok(cmd)
}

fn node_postgres() -> Result<Command, String> {
    let modules = clients_dir().join("node/node_modules");
    if !modules.join("pg").exists() {
        return Err(format!(
            "{}/pg is missing (.ci/setup --tests)",
            modules.display()
        ));
    }
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", modules)
        .arg(scripts().join("pg_login.js"));
    Ok(cmd)
}

fn pgjdbc() -> Result<Command, String> {
    let jar = Path::new("/usr/share/java/postgresql.jar");
    if !jar.exists() {
        return Err("/usr/share/java/postgresql.jar is missing (libpostgresql-jdbc-java)".into());
    }
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(jar)
        .arg(scripts().join("JdbcLogin.java"));
    Ok(cmd)
}

const DRIVERS: &[Driver] = &[
    Driver {
        name: "asyncpg",
        command: asyncpg,
    },
    Driver {
        name: "node-postgres",
        command: node_postgres,
    },
    Driver {
        name: "pgjdbc",
        command: pgjdbc,
    },
];

/// pgjdbc reads a client key as PKCS#8 DER.
fn pk8(files: &CertFiles) -> PathBuf {
    let out = files.key.with_extension("pk8");
    let status = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(&files.key)
        .arg("-out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "openssl pkcs8 failed");
    out
}

/// Runs one login; returns (exit code, what it printed, how long it took).
fn login(
    driver: &Driver,
    c: &Cluster,
    files: &CertFiles,
) -> Result<(i32, String, Duration), String> {
    let key = if driver.name == "pgjdbc" {
        pk8(files)
    } else {
        files.key.clone()
    };
    let mut cmd = (driver.command)()?;
    cmd.args(["127.0.0.1", &c.port.to_string(), "test1", PASSWORD])
        .arg(&c.pki.ca_cert)
        .arg(&files.cert)
        .arg(&key);
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("{}: {e}", driver.name))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text, started.elapsed()))
}

#[test]
fn drivers_get_a_clean_tls_failure_for_a_certificate_bound_elsewhere() {
    let c = Cluster::builder()
        .hba(HBA)
        .rules(RULES)
        .setting("pg_twofactor.handshake_check = on")
        .start();
    c.create_user("test1", PASSWORD);
    let away = c.client_cert(
        "test1-away",
        &["test1"],
        Some(&[San::Ip("10.9.9.9".parse().unwrap())]),
    );
    let home = c.client_cert(
        "test1-home",
        &["test1"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    let ci = std::env::var("CI").as_deref() == Ok("true");
    for driver in DRIVERS {
        // positive control: the certificate bound to 127.0.0.1 gets a session
        let (code, text, _) = match login(driver, &c, &home) {
            Ok(r) => r,
            Err(why) => {
                assert!(
                    !ci,
                    "{}: {why}, and under CI every scenario runs in full",
                    driver.name
                );
                eprintln!("{}: skipped: {why}", driver.name);
                continue;
            }
        };
        assert!(
            code == 0 && text.contains("session: test1"),
            "{}: the right certificate must log in: exit {code}: {text}",
            driver.name
        );
        // the certificate bound to 10.9.9.9: a failure (exit 1, not the hang exit 2), never a
        // password failure, and the server logged the handshake refusal
        let mark = c.log_mark();
        let (code, text, took) = login(driver, &c, &away).unwrap();
        assert_eq!(code, 1, "{}: expected a clean failure: {text}", driver.name);
        assert!(
            !text.contains("password authentication failed") && !text.contains("28P01"),
            "{}: the password exchange must not happen: {text}",
            driver.name
        );
        let log = c.log_since_when(mark, |l| {
            l.contains("pg_twofactor refused the TLS handshake")
        });
        assert!(
            log.contains("pg_twofactor refused the TLS handshake of client 127.0.0.1"),
            "{}: {log}",
            driver.name
        );
        eprintln!("{}: refused in {took:?}: {}", driver.name, text.trim());
    }
}
