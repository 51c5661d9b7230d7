//! Certificates generated for each test run: a CA, a server certificate and client
//! certificates with the CN and SubjectAltName shapes the scenarios need.

use openssl::nid::Nid;
use openssl::x509::{X509NameBuilder, X509};
use pg_twofactor_cert::ca::{write_cert, write_key, Ca, KeyKind, Profile};
use pg_twofactor_cert::san::der_tlv;
pub use pg_twofactor_cert::san::{san_der, San};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A certificate and key on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A throwaway PKI in a directory, made with `pg_twofactor-cert`'s library (RSA 2048 keys;
/// client certificates carry only the SubjectAltName the scenario asks for).
#[derive(Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    ca: std::sync::Arc<Ca>,
}

const KEY: KeyKind = KeyKind::Rsa(2048);

/// The current UTC time as openssl ca's database writes it (YYMMDDHHMMSSZ).
fn utc_now_asn1() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%y%m%d%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Pki {
    /// A new CA in `dir`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = Ca::create("pg_twofactor test CA", 30, KEY).expect("a test CA");
        let ca_cert = dir.join("root.crt");
        write_cert(&ca_cert, &ca.cert, true).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca_cert,
            ca: std::sync::Arc::new(ca),
        }
    }

    /// Issues a certificate signed by the CA for `subject` (attribute, value) pairs, with an
    /// optional SubjectAltName (DER), written as `STEM.crt` and `STEM.key`.
    fn issue(&self, stem: &str, subject: &[(Nid, &str)], san: Option<Vec<San>>) -> CertFiles {
        let mut name = X509NameBuilder::new().unwrap();
        for (nid, value) in subject {
            name.append_entry_by_nid(*nid, value).unwrap();
        }
        self.issue_for(stem, &name.build(), san)
    }

    /// A client certificate whose one CN holds exactly `cn`'s bytes (a T61String, which
    /// OpenSSL and PostgreSQL pass on as raw bytes): a login in a LATIN1 cluster.
    pub fn client_raw_cn(&self, stem: &str, cn: &[u8], san: Option<&[San]>) -> CertFiles {
        let atv = der_tlv(
            0x30,
            &[der_tlv(0x06, &[0x55, 0x04, 0x03]), der_tlv(0x14, cn)].concat(),
        );
        let name = der_tlv(0x30, &der_tlv(0x31, &atv));
        let name = openssl::x509::X509Name::from_der(&name).unwrap();
        self.issue_for(stem, &name, san.map(<[San]>::to_vec))
    }

    fn issue_for(
        &self,
        stem: &str,
        name: &openssl::x509::X509NameRef,
        san: Option<Vec<San>>,
    ) -> CertFiles {
        self.issue_valid_for(stem, name, san, 30)
    }

    fn issue_valid_for(
        &self,
        stem: &str,
        name: &openssl::x509::X509NameRef,
        san: Option<Vec<San>>,
        days: u32,
    ) -> CertFiles {
        let (cert, key) = self
            .ca
            .issue(name, san.as_deref(), days, KEY, Profile::Bare)
            .expect("a test certificate");
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
        };
        write_cert(&files.cert, &cert, true).unwrap();
        write_key(&files.key, &key, true).unwrap();
        files
    }

    /// The CA's private key, written as `root.key` (mode 0600) for a scenario that uses it
    /// as a DBA would (`pg_twofactor-cert issue --ca-key`).
    pub fn ca_key_file(&self) -> PathBuf {
        let path = self.dir.join("root.key");
        write_key(&path, self.ca.key(), true).unwrap();
        path
    }

    /// A certificate revocation list signed by the CA that revokes `revoked`, written to `out`
    /// (PEM), made with `openssl ca -gencrl` as a CA operator would.
    pub fn revocation_list(&self, revoked: &[&CertFiles], out: &Path) {
        let dir = self.dir.join("crl-ca");
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("ca.key");
        write_key(&key, self.ca.key(), true).unwrap();
        let mut index = String::new();
        for c in revoked {
            let cert = X509::from_pem(&std::fs::read(&c.cert).unwrap()).unwrap();
            let serial = cert
                .serial_number()
                .to_bn()
                .unwrap()
                .to_hex_str()
                .unwrap()
                .to_string();
            let serial = if serial.len() % 2 == 1 {
                format!("0{serial}")
            } else {
                serial
            };
            // openssl ca's database: status, expiry, revocation time, serial, file, subject
            index.push_str(&format!(
                "R\t491231235959Z\t{}\t{serial}\tunknown\t/CN=revoked\n",
                utc_now_asn1()
            ));
        }
        std::fs::write(dir.join("index.txt"), index).unwrap();
        std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
        let config = dir.join("ca.cnf");
        std::fs::write(
            &config,
            format!(
                "[ca]\ndefault_ca = CA_default\n[CA_default]\ndatabase = {d}/index.txt\ncrlnumber = {d}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let status = std::process::Command::new("openssl")
            .args(["ca", "-gencrl", "-batch", "-config"])
            .arg(&config)
            .arg("-cert")
            .arg(&self.ca_cert)
            .arg("-keyfile")
            .arg(&key)
            .arg("-out")
            .arg(out)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "openssl ca -gencrl: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    /// The server's certificate: CN=localhost, SubjectAltName localhost, 127.0.0.1, ::1.
    pub fn server(&self) -> CertFiles {
        self.host_cert("server")
    }

    /// A certificate for a service on this host (CN=localhost, SubjectAltName localhost,
    /// 127.0.0.1, ::1), written as `STEM.crt` and `STEM.key`.
    pub fn host_cert(&self, stem: &str) -> CertFiles {
        let san = vec![
            San::Dns("localhost".into()),
            San::Ip(IpAddr::from([127, 0, 0, 1])),
            San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ];
        self.issue(stem, &[(Nid::COMMONNAME, "localhost")], Some(san))
    }

    /// A client certificate with the given CNs (none, one or several) and SubjectAltName
    /// entries (`None`: no SubjectAltName extension at all).
    pub fn client(&self, file_stem: &str, cns: &[&str], san: Option<&[San]>) -> CertFiles {
        let mut subject = vec![(Nid::ORGANIZATIONNAME, "pg_twofactor tests")];
        subject.extend(cns.iter().map(|cn| (Nid::COMMONNAME, *cn)));
        self.issue(file_stem, &subject, san.map(<[San]>::to_vec))
    }

    /// [`Pki::client`] with one CN, valid from now for `days` days (not 30).
    pub fn client_valid_for(
        &self,
        stem: &str,
        cn: &str,
        san: Option<&[San]>,
        days: u32,
    ) -> CertFiles {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "pg_twofactor tests")
            .unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        self.issue_valid_for(stem, &name.build(), san.map(<[San]>::to_vec), days)
    }
}
