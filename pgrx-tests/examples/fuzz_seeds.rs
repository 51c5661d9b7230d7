//! The seed corpus of the fuzz targets (`bash .ci/fuzz` runs this first): rule lines of every
//! column form, and client certificates (DER) issued by the test harness's CA in the shapes the
//! scenarios use: one CN with IP, IPv6 and DNS SubjectAltNames, a subnet, several CNs, no
//! SubjectAltName, a CN that is not UTF-8.
//!   cargo run -p pg_twofactor-e2e --example fuzz_seeds -- fuzz/corpus

use pg_twofactor_e2e::{Pki, San};
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: fuzz_seeds CORPUS_DIR"),
    );
    let rules = out.join("rules_file");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("simple"),
        "hostssl test test1 127.0.0.1/32 2f-scram-sha-256\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("forms"),
        "# c\nhostssl \"all\",db +admins,@users 10.0.0.0 255.0.0.0 2f-md5 san=required mode=report\n\
         hostssl all all .example.com 2f-exempt\nhostssl /^a all samenet 2f-ldap \\\n  mode=enforce\n\
         include other.conf\n",
    )
    .unwrap();

    let certs = out.join("certificate");
    std::fs::create_dir_all(&certs).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let ip = |s: &str| San::Ip(s.parse().unwrap());
    let issued = [
        (
            "seed",
            pki.client(
                "seed",
                &["test1"],
                Some(&[ip("127.0.0.1"), ip("::1"), San::Dns("localhost".into())]),
            ),
        ),
        (
            "subnet",
            pki.client(
                "subnet",
                &["test1"],
                Some(&[San::Subnet(
                    "10.0.0.0".parse().unwrap(),
                    "255.0.0.0".parse().unwrap(),
                )]),
            ),
        ),
        (
            "two-cns",
            pki.client("two-cns", &["test1", "test2"], Some(&[ip("127.0.0.1")])),
        ),
        ("no-san", pki.client("no-san", &["test1"], None)),
        (
            "latin1-cn",
            pki.client_raw_cn("latin1-cn", b"j\xf6rg", Some(&[ip("127.0.0.1")])),
        ),
    ];
    for (name, files) in issued {
        let pem = std::fs::read(&files.cert).unwrap();
        let der = openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap();
        std::fs::write(certs.join(format!("{name}.der")), der).unwrap();
    }
}
