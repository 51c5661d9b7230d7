//! A throwaway OpenLDAP `slapd` for one test: its own configuration and database in a
//! temporary directory, plain LDAP (with StartTLS) and LDAPS on loopback, stopped when dropped.

use crate::certs::Pki;
use crate::daemon::{wait_until, Daemon};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub const BASE_DN: &str = "dc=example,dc=net";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=net";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=net";
pub const ADMIN_PASSWORD: &str = "directory-admin-secret";

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Slapd {
    dir: tempfile::TempDir,
    pub port: u16,
    pub ldaps_port: u16,
    daemon: Daemon,
}

impl Slapd {
    /// Starts slapd with a TLS certificate from `pki` and waits until it answers.
    pub fn start(pki: &Pki) -> Slapd {
        let dir = tempfile::Builder::new()
            .prefix("pg2f-slapd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("db")).unwrap();
        let tls = pki.host_cert("slapd");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {dir}/slapd.pid\n\
             TLSCACertificateFile {ca}\n\
             TLSCertificateFile {cert}\n\
             TLSCertificateKeyFile {key}\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {dir}/db\n",
            dir = d.display(),
            ca = pki.ca_cert.display(),
            cert = tls.cert.display(),
            key = tls.key.display(),
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        let (port, ldaps_port) = (free_port(), free_port());
        let child = Command::new("slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{ldaps_port}/"
            ))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("slapd.log")).unwrap())
            .spawn()
            .expect("start slapd (Debian package slapd)");
        let s = Slapd {
            dir,
            port,
            ldaps_port,
            daemon: Daemon::new(child),
        };
        s.wait_until_answering();
        s.ldapadd(&format!(
            "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n\
             dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n"
        ));
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn wait_until_answering(&self) {
        let answers = || {
            Command::new("ldapsearch")
                .args([
                    "-x",
                    "-H",
                    &self.url(),
                    "-b",
                    "",
                    "-s",
                    "base",
                    "namingContexts",
                ])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        wait_until(answers, || format!("slapd did not answer: {}", self.log()));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    fn ldapadd(&self, ldif: &str) {
        let path: PathBuf = self.dir.path().join("add.ldif");
        std::fs::write(&path, ldif).unwrap();
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ldapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds `uid=UID,ou=people,...` with a directory password.
    pub fn add_user(&self, uid: &str, password: &str) {
        self.ldapadd(&format!(
            "dn: uid={uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}\n"
        ));
    }

    /// Stops the server (the directory is then unreachable).
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}
