//! Certificates generated for each test run: a CA, a server certificate and client
//! certificates with the CN and SubjectAltName shapes the scenarios need.

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509Extension, X509NameBuilder, X509};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One SubjectAltName entry.
#[derive(Debug, Clone)]
pub enum San {
    Ip(IpAddr),
    /// Address plus mask (an 8- or 32-byte iPAddress).
    Subnet(IpAddr, IpAddr),
    Dns(String),
    Email(String),
}

/// A certificate and key on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A throwaway PKI in a directory.
#[derive(Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    ca: X509,
    ca_key: PKey<Private>,
}

fn new_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("pkey")
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(120, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// DER of a SubjectAltName extension value (GeneralNames), built by hand so subnets (8- and
/// 32-byte iPAddress entries, which OpenSSL's config syntax cannot express) are possible.
pub fn san_der(entries: &[San]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        body.extend(match e {
            San::Email(s) => der_tlv(0x81, s.as_bytes()),
            San::Dns(s) => der_tlv(0x82, s.as_bytes()),
            San::Ip(a) => der_tlv(0x87, &ip_bytes(*a)),
            San::Subnet(a, m) => {
                let mut b = ip_bytes(*a);
                b.extend(ip_bytes(*m));
                der_tlv(0x87, &b)
            }
        });
    }
    der_tlv(0x30, &body)
}

/// The current UTC time as openssl ca's database writes it (YYMMDDHHMMSSZ).
fn utc_now_asn1() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%y%m%d%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write_pem(path: &Path, pem: &[u8]) {
    std::fs::write(path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn write_key(path: &Path, key: &PKey<Private>) {
    write_pem(path, &key.private_key_to_pem_pkcs8().unwrap());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Pki {
    /// A new CA in `dir`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = new_key();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "pg_twofactor test CA")
            .unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&ca_key).unwrap();
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
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        let ca = b.build();
        let ca_cert = dir.join("root.crt");
        write_pem(&ca_cert, &ca.to_pem().unwrap());
        Pki {
            dir: dir.to_path_buf(),
            ca_cert,
            ca,
            ca_key,
        }
    }

    /// Issues a certificate signed by the CA for `subject` (attribute, value) pairs, with an
    /// optional SubjectAltName (DER), written as `STEM.crt` and `STEM.key`.
    fn issue(&self, stem: &str, subject: &[(Nid, &str)], san: Option<Vec<u8>>) -> CertFiles {
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
        self.issue_for(stem, &name, san.map(san_der))
    }

    fn issue_for(
        &self,
        stem: &str,
        name: &openssl::x509::X509NameRef,
        san: Option<Vec<u8>>,
    ) -> CertFiles {
        self.issue_valid_for(stem, name, san, 30)
    }

    fn issue_valid_for(
        &self,
        stem: &str,
        name: &openssl::x509::X509NameRef,
        san: Option<Vec<u8>>,
        days: u32,
    ) -> CertFiles {
        let key = new_key();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_subject_name(name).unwrap();
        b.set_issuer_name(self.ca.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(days).unwrap())
            .unwrap();
        if let Some(der) = san {
            let oid = Asn1Object::from_str("2.5.29.17").unwrap();
            let value = Asn1OctetString::new_from_bytes(&der).unwrap();
            b.append_extension(X509Extension::new_from_der(&oid, false, &value).unwrap())
                .unwrap();
        }
        b.sign(&self.ca_key, MessageDigest::sha256()).unwrap();
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
        };
        write_pem(&files.cert, &b.build().to_pem().unwrap());
        write_key(&files.key, &key);
        files
    }

    /// A certificate revocation list signed by the CA that revokes `revoked`, written to `out`
    /// (PEM), made with `openssl ca -gencrl` as a CA operator would.
    pub fn revocation_list(&self, revoked: &[&CertFiles], out: &Path) {
        let dir = self.dir.join("crl-ca");
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("ca.key");
        write_key(&key, &self.ca_key);
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
        let san = san_der(&[
            San::Dns("localhost".into()),
            San::Ip(IpAddr::from([127, 0, 0, 1])),
            San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ]);
        self.issue(stem, &[(Nid::COMMONNAME, "localhost")], Some(san))
    }

    /// A client certificate with the given CNs (none, one or several) and SubjectAltName
    /// entries (`None`: no SubjectAltName extension at all).
    pub fn client(&self, file_stem: &str, cns: &[&str], san: Option<&[San]>) -> CertFiles {
        let mut subject = vec![(Nid::ORGANIZATIONNAME, "pg_twofactor tests")];
        subject.extend(cns.iter().map(|cn| (Nid::COMMONNAME, *cn)));
        self.issue(file_stem, &subject, san.map(san_der))
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
        self.issue_valid_for(stem, &name.build(), san.map(san_der), days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_der_encodes_general_names() {
        let der = san_der(&[San::Ip("10.0.0.1".parse().unwrap()), San::Dns("a".into())]);
        assert_eq!(der, vec![0x30, 9, 0x87, 4, 10, 0, 0, 1, 0x82, 1, b'a']);
        let sub = san_der(&[San::Subnet(
            "10.0.0.0".parse().unwrap(),
            "255.0.0.0".parse().unwrap(),
        )]);
        assert_eq!(sub, vec![0x30, 10, 0x87, 8, 10, 0, 0, 0, 255, 0, 0, 0]);
    }
}
