//! A certificate authority from its certificate and key, and the certificates it makes.

use crate::san::{san_der, San};
use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509Extension, X509Name, X509NameBuilder, X509NameRef, X509Req, X509};
use std::path::Path;

/// The kind of key made for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// EC on P-256 (prime256v1), the default.
    EcP256,
    /// RSA of that many bits.
    Rsa(u32),
}

/// The extensions of a certificate made here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A client certificate: `basicConstraints CA:FALSE`, key usage for signatures, extended
    /// key usage `clientAuth`, key identifiers (what `pg_twofactor-cert` issues).
    Client,
    /// Only the SubjectAltName, if any (the test harness's certificates, whose shapes the
    /// scenarios choose).
    Bare,
}

/// What went wrong, in words a DBA acts on.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("could not read {path}: {why}")]
    Read { path: String, why: String },
    #[error("{path} does not hold a PEM {what}: {why}")]
    Pem {
        path: String,
        what: &'static str,
        why: String,
    },
    #[error("the CA key {key} does not belong to the CA certificate {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("the certificate request {0} is not signed by its own key")]
    CsrSignature(String),
    #[error("the certificate request {path} has CN \"{cn}\", not the login \"{login}\"")]
    CsrCn {
        path: String,
        cn: String,
        login: String,
    },
    #[error("the certificate request {path} has {count} CN attributes; pg_twofactor requires exactly one, the login")]
    CsrCns { path: String, count: usize },
    #[error("the login must not be empty")]
    EmptyLogin,
    #[error("could not write {path}: {why}")]
    Write { path: String, why: String },
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] ErrorStack),
}

fn read(path: &Path) -> Result<Vec<u8>, CaError> {
    std::fs::read(path).map_err(|e| CaError::Read {
        path: path.display().to_string(),
        why: pg_twofactor_core::rules::token::os_message(&e),
    })
}

fn pem_error<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(ErrorStack) -> CaError + 'a {
    move |e| CaError::Pem {
        path: path.display().to_string(),
        what,
        why: e
            .errors()
            .first()
            .and_then(|e| e.reason().map(str::to_string))
            .unwrap_or_else(|| "no PEM block found".into()),
    }
}

/// A new private key.
pub fn new_key(kind: KeyKind) -> Result<PKey<Private>, CaError> {
    Ok(match kind {
        KeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)?
        }
        KeyKind::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits)?)?,
    })
}

/// A random 120-bit serial number.
fn serial() -> Result<Asn1Integer, CaError> {
    let mut bn = BigNum::new()?;
    bn.rand(120, MsbOption::ONE, false)?;
    Ok(bn.to_asn1_integer()?)
}

/// The subject of a login's certificate: one CN, the login.
pub fn login_subject(login: &str) -> Result<X509Name, CaError> {
    if login.is_empty() {
        return Err(CaError::EmptyLogin);
    }
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, login)?;
    Ok(name.build())
}

/// Writes a private key as PKCS#8 PEM, readable by its owner only (mode 0600 from the start:
/// never readable by others, not even for a moment). `overwrite`: replace an existing file
/// ([`write_file`]).
pub fn write_key(path: &Path, key: &PKey<Private>, overwrite: bool) -> Result<(), CaError> {
    write_file(path, &key.private_key_to_pem_pkcs8()?, 0o600, overwrite)
}

/// Writes a certificate as PEM. `overwrite`: replace an existing file ([`write_file`]).
pub fn write_cert(path: &Path, cert: &X509, overwrite: bool) -> Result<(), CaError> {
    write_file(path, &cert.to_pem()?, 0o644, overwrite)
}

/// Writes `bytes` to a file that did not exist before, made with `mode`: `O_CREAT | O_EXCL`,
/// which never opens an existing file and never follows a symbolic link at `path` (one planted
/// there makes the write fail, it does not redirect the key). With `overwrite`, the new file is
/// made that way beside `path` and renamed onto it: the rename replaces whatever `path` was,
/// a symbolic link included, without writing through it.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> Result<(), CaError> {
    let write_error = |e: std::io::Error| CaError::Write {
        path: path.display().to_string(),
        why: pg_twofactor_core::rules::token::os_message(&e),
    };
    if !overwrite {
        return write_new(path, bytes, mode).map_err(write_error);
    }
    let name = path
        .file_name()
        .ok_or_else(|| write_error(std::io::Error::other("the path names no file")))?;
    let temporary = path.with_file_name(format!(
        ".{}.new-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written =
        write_new(&temporary, bytes, mode).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(write_error)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A certificate authority: its certificate and its key.
pub struct Ca {
    pub cert: X509,
    key: PKey<Private>,
}

impl Ca {
    /// The CA of `cert_path` and `key_path` (PEM); the key must be the certificate's.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Ca, CaError> {
        let cert =
            X509::from_pem(&read(cert_path)?).map_err(pem_error(cert_path, "certificate"))?;
        let key = PKey::private_key_from_pem(&read(key_path)?)
            .map_err(pem_error(key_path, "private key"))?;
        if !cert.public_key()?.public_eq(&key) {
            return Err(CaError::KeyMismatch {
                cert: cert_path.display().to_string(),
                key: key_path.display().to_string(),
            });
        }
        Ok(Ca { cert, key })
    }

    /// A new self-signed CA named `CN=cn`, valid from now for `days` days.
    pub fn create(cn: &str, days: u32, kind: KeyKind) -> Result<Ca, CaError> {
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
        Ca::with_subject(&name.build(), days, kind)
    }

    /// A new self-signed CA named `name`, valid from now for `days` days.
    pub fn with_subject(name: &X509NameRef, days: u32, kind: KeyKind) -> Result<Ca, CaError> {
        let key = new_key(kind)?;
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(name)?;
        b.set_issuer_name(name)?;
        b.set_pubkey(&key)?;
        let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Ca {
            cert: b.build(),
            key,
        })
    }

    /// The CA's private key.
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// A certificate for `subject` with a new key of `kind`, valid from now for `days` days.
    pub fn issue(
        &self,
        subject: &X509NameRef,
        san: Option<&[San]>,
        days: u32,
        kind: KeyKind,
        profile: Profile,
    ) -> Result<(X509, PKey<Private>), CaError> {
        let key = new_key(kind)?;
        let cert = self.build(subject, &key, san, days, profile)?;
        Ok((cert, key))
    }

    /// A certificate for `login` and the key of a certificate request (read from `path`, for
    /// messages): its signature must verify, and it must name no CN or exactly `login` (the
    /// requester does not choose the account). The request's extensions are not copied: the
    /// SubjectAltName is `san`, chosen by the CA.
    pub fn sign(
        &self,
        csr: &X509Req,
        path: &str,
        login: &str,
        san: Option<&[San]>,
        days: u32,
        profile: Profile,
    ) -> Result<X509, CaError> {
        let key = csr.public_key()?;
        if !csr.verify(&key)? {
            return Err(CaError::CsrSignature(path.to_string()));
        }
        let cns: Vec<String> = csr
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
            .collect();
        match cns.as_slice() {
            [] => {}
            [cn] if cn == login => {}
            [cn] => {
                return Err(CaError::CsrCn {
                    path: path.to_string(),
                    cn: pg_twofactor_core::printable::printable(cn),
                    login: pg_twofactor_core::printable::printable(login),
                })
            }
            many => {
                return Err(CaError::CsrCns {
                    path: path.to_string(),
                    count: many.len(),
                })
            }
        }
        let subject = login_subject(login)?;
        self.build(&subject, &key, san, days, profile)
    }

    fn build<T: openssl::pkey::HasPublic>(
        &self,
        subject: &X509NameRef,
        key: &PKey<T>,
        san: Option<&[San]>,
        days: u32,
        profile: Profile,
    ) -> Result<X509, CaError> {
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(subject)?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(key)?;
        let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        if profile == Profile::Client {
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .build()?,
            )?;
            b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
            let ski =
                SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.cert), None))?;
            b.append_extension(ski)?;
            // (a CA certificate without a key identifier gets none in its certificates)
            if self.cert.subject_key_id().is_some() {
                let aki = AuthorityKeyIdentifier::new()
                    .keyid(false)
                    .build(&b.x509v3_context(Some(&self.cert), None))?;
                b.append_extension(aki)?;
            }
        }
        if let Some(entries) = san {
            // by DER: a subnet is an 8- or 32-byte iPAddress, which OpenSSL's text syntax
            // cannot write
            let oid = Asn1Object::from_str("2.5.29.17")?;
            let value = Asn1OctetString::new_from_bytes(&san_der(entries))?;
            b.append_extension(X509Extension::new_from_der(&oid, false, &value)?)?;
        }
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok(b.build())
    }
}
