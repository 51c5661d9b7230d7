//! `pg_twofactor-cert`'s library: the certificates pg_twofactor needs, made, read and checked
//! with the same code as the extension.
//!
//! - [`san`]: SubjectAltName entries as a DBA writes them (`10.1.2.3`, `10.1.0.0/16`,
//!   `fd00::/64`, `DNS:app1.example.com`), encoded as the extension reads them (a subnet is an
//!   8- or 32-byte iPAddress, which OpenSSL's own syntax cannot write);
//! - [`ca`]: a CA from its certificate and key; issuing a client certificate with a new key, or
//!   signing a certificate request so the client's key never leaves the client;
//! - [`inspect`]: what pg_twofactor will read from a certificate;
//! - [`check`]: the offline dry run: a rules file, a login, a client address and a certificate
//!   give the verdict, the rule and the reason `pg_twofactor_check()` would give.
//!
//! The test harness makes its certificates with [`ca`] too, so the project has one PKI code.

pub mod ca;
pub mod check;
pub mod inspect;
pub mod san;
