//! A throwaway OpenLDAP `slapd` for one test: its own configuration and database in a
//! temporary directory, plain LDAP (with StartTLS) and LDAPS on loopback, stopped when dropped.
//! The harness talks to it with the `ldap3` client: a root-DSE search to see it is up, adds as
//! the directory admin, and a search and bind as each new user to see the entry works.

use crate::certs::Pki;
use crate::daemon::{wait_until, Daemon};
use crate::ports::free_port;
use ldap3::{LdapConn, Scope, SearchEntry};
use std::collections::HashSet;
use std::process::{Command, Stdio};

pub const BASE_DN: &str = "dc=example,dc=net";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=net";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=net";
pub const ADMIN_PASSWORD: &str = "directory-admin-secret";

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
        s.add(
            BASE_DN,
            &[
                ("objectClass", &["dcObject", "organization"]),
                ("o", &["example"]),
                ("dc", &["example"]),
            ],
        );
        s.add(
            PEOPLE_DN,
            &[
                ("objectClass", &["organizationalUnit"]),
                ("ou", &["people"]),
            ],
        );
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn connect(&self) -> ldap3::result::Result<LdapConn> {
        LdapConn::new(&self.url())
    }

    /// The naming contexts in the root DSE, anonymously: the server is up and serves the base.
    fn naming_contexts(&self) -> ldap3::result::Result<Vec<String>> {
        let mut ldap = self.connect()?;
        let (entries, _) = ldap
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])?
            .success()?;
        let _ = ldap.unbind();
        Ok(entries
            .into_iter()
            .flat_map(|e| {
                SearchEntry::construct(e)
                    .attrs
                    .remove("namingContexts")
                    .unwrap_or_default()
            })
            .collect())
    }

    fn wait_until_answering(&self) {
        wait_until(
            || {
                self.naming_contexts()
                    .is_ok_and(|c| c.iter().any(|dn| dn == BASE_DN))
            },
            || format!("slapd did not answer: {}", self.log()),
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Adds an entry as the directory admin.
    fn add(&self, dn: &str, attrs: &[(&str, &[&str])]) {
        let attrs: Vec<(&str, HashSet<&str>)> = attrs
            .iter()
            .map(|(name, values)| (*name, values.iter().copied().collect()))
            .collect();
        let mut ldap = self.connect().expect("connect to slapd");
        ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD)
            .and_then(|r| r.success())
            .expect("bind as the directory admin");
        ldap.add(dn, attrs)
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("add {dn}: {e}"));
        let _ = ldap.unbind();
    }

    /// Adds `uid=UID,ou=people,...` with a directory password, then finds it by uid and binds
    /// as it (the search+bind round trip PostgreSQL's ldap method makes).
    pub fn add_user(&self, uid: &str, password: &str) {
        let dn = format!("uid={uid},{PEOPLE_DN}");
        self.add(
            &dn,
            &[
                ("objectClass", &["inetOrgPerson"]),
                ("uid", &[uid]),
                ("cn", &[uid]),
                ("sn", &[uid]),
                ("userPassword", &[password]),
            ],
        );
        let mut ldap = self.connect().expect("connect to slapd");
        let (found, _) = ldap
            .search(
                PEOPLE_DN,
                Scope::OneLevel,
                &format!("(uid={uid})"),
                vec!["1.1"],
            )
            .and_then(|r| r.success())
            .expect("search for the new user");
        let found: Vec<String> = found
            .into_iter()
            .map(|e| SearchEntry::construct(e).dn)
            .collect();
        assert_eq!(found, vec![dn.clone()], "the new user is found by uid");
        ldap.simple_bind(&dn, password)
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("bind as {dn}: {e}"));
        let _ = ldap.unbind();
    }

    /// Stops the server (the directory is then unreachable).
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}
