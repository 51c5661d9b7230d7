//! Certificate shapes: CN variants and SubjectAltName IP, subnet, IPv6, DNS and e-mail
//! entries, checked against the address the client really connects from.

use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{
    psql_login, rust_login, two_factor, CertFiles, Cluster, Login, Outcome, San,
};

const CN_REASON: &str = "certificate CN does not match the user name";
const ADDR_REASON: &str = "client address does not match the certificate";

fn ip(s: &str) -> San {
    San::Ip(s.parse().unwrap())
}

fn subnet(a: &str, m: &str) -> San {
    San::Subnet(a.parse().unwrap(), m.parse().unwrap())
}

fn attempt(c: &Cluster, user: &str, cert: &CertFiles, from: &str, to: &str) -> Outcome {
    rust_login(c, &Login::new(user, PASSWORD).cert(cert).from(from).to(to))
}

#[track_caller]
fn accepted(c: &Cluster, user: &str, cert: &CertFiles, from: &str, to: &str) {
    let out = attempt(c, user, cert, from, to);
    out.assert_accepted_as(user);
    let Outcome::Accepted { client_addr, .. } = out else {
        unreachable!()
    };
    assert_eq!(
        client_addr, from,
        "the session sees the address the client bound"
    );
}

#[track_caller]
fn refused(c: &Cluster, user: &str, cert: &CertFiles, from: &str, to: &str, reason: &str) {
    attempt(c, user, cert, from, to).assert_refused(&two_factor(user, reason));
}

#[test]
fn subject_alt_name_ip_addresses_and_subnets() {
    let c = scenario::start(scenario::builder());
    let v4 = "127.0.0.1";
    let one = c.client_cert("ip-one", &["test1"], Some(&[ip("127.0.0.1")]));
    let two = c.client_cert("ip-two", &["test1"], Some(&[ip("127.0.0.2")]));
    let several = c.client_cert(
        "ip-several",
        &["test1"],
        Some(&[ip("10.1.1.1"), ip("127.0.0.4")]),
    );
    let net_ok = c.client_cert(
        "net-ok",
        &["test1"],
        Some(&[subnet("127.0.0.0", "255.255.255.0")]),
    );
    let net_bad = c.client_cert(
        "net-bad",
        &["test1"],
        Some(&[subnet("10.0.0.0", "255.0.0.0")]),
    );
    let six = c.client_cert("ip6", &["test1"], Some(&[ip("::1")]));
    let six_net = c.client_cert("ip6-net", &["test1"], Some(&[subnet("::", "ffff:ffff::")]));

    accepted(&c, "test1", &one, "127.0.0.1", v4);
    refused(&c, "test1", &one, "127.0.0.2", v4, ADDR_REASON);
    accepted(&c, "test1", &two, "127.0.0.2", v4);
    refused(&c, "test1", &two, "127.0.0.1", v4, ADDR_REASON);
    accepted(&c, "test1", &several, "127.0.0.4", v4);
    refused(&c, "test1", &several, "127.0.0.5", v4, ADDR_REASON);
    accepted(&c, "test1", &net_ok, "127.0.0.3", v4);
    accepted(&c, "test1", &net_ok, "127.0.0.200", v4);
    refused(&c, "test1", &net_bad, "127.0.0.3", v4, ADDR_REASON);
    accepted(&c, "test1", &six, "::1", "::1");
    refused(&c, "test1", &six, "127.0.0.1", v4, ADDR_REASON);
    refused(&c, "test1", &one, "::1", "::1", ADDR_REASON);
    accepted(&c, "test1", &six_net, "::1", "::1");
    // psql, connecting from 127.0.0.1
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&two))
        .assert_refused(&two_factor("test1", ADDR_REASON));
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&net_ok)).assert_accepted_as("test1");

    let log = c.log();
    assert!(
        log.contains("SubjectAltName: IP:10.0.0.0/255.0.0.0. Client address 127.0.0.3"),
        "{log}"
    );
    assert!(
        log.contains("SubjectAltName: IP:::1. Client address 127.0.0.1"),
        "{log}"
    );
}

/// The names the DNS scenario's server knows: its own hosts file, and a DNS that answers
/// every other question "no such name" (the host's DNS is never asked).
const DNS_HOSTS: &[u8] =
    b"127.0.0.1 app1.pg2f.test localhost\n127.0.0.6 app6.pg2f.test\n::1 localhost\n";

#[test]
fn subject_alt_name_dns_names() {
    if !pg_twofactor_e2e::cluster::can_run_as_root("a private name service needs root") {
        return;
    }
    let _dns = pg_twofactor_e2e::dns::NxDomainDns::start();
    let c = scenario::start(scenario::builder().name_service(DNS_HOSTS));
    let local = c.client_cert(
        "dns-app1",
        &["test1"],
        Some(&[San::Dns("app1.pg2f.test".into())]),
    );
    let nowhere = c.client_cert(
        "dns-nowhere",
        &["test1"],
        Some(&[San::Dns("nonexistent.invalid".into())]),
    );
    let mixed = c.client_cert(
        "dns-mixed",
        &["test1"],
        Some(&[San::Dns("nonexistent.invalid".into()), ip("127.0.0.6")]),
    );
    // 127.0.0.1 reverse-resolves to app1.pg2f.test, which resolves back to 127.0.0.1
    accepted(&c, "test1", &local, "127.0.0.1", "127.0.0.1");
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&local)).assert_accepted_as("test1");
    // 127.0.0.2 has no name (DNS says so)
    refused(&c, "test1", &local, "127.0.0.2", "127.0.0.1", ADDR_REASON);
    refused(&c, "test1", &nowhere, "127.0.0.1", "127.0.0.1", ADDR_REASON);
    accepted(&c, "test1", &mixed, "127.0.0.6", "127.0.0.1");
    refused(&c, "test1", &mixed, "127.0.0.1", "127.0.0.1", ADDR_REASON);
    let log = c.log();
    assert!(
        log.contains("SubjectAltName: DNS:nonexistent.invalid. Client address 127.0.0.1 (reverse lookup: app1.pg2f.test) matches none"),
        "{log}"
    );
}

#[test]
fn certificates_without_address_entries() {
    let c = scenario::start(scenario::builder());
    let none = c.client_cert("no-san", &["test1"], None);
    let email = c.client_cert(
        "email-san",
        &["test1"],
        Some(&[San::Email("test1@example.com".into())]),
    );
    // Pangolin's rule: no IP/DNS entries, no address check
    accepted(&c, "test1", &none, "127.0.0.9", "127.0.0.1");
    accepted(&c, "test1", &email, "127.0.0.10", "127.0.0.1");
    accepted(&c, "test1", &none, "::1", "::1");
    // san=required refuses them
    let none_req = c.client_cert("no-san-req", &["sanreq"], None);
    let email_req = c.client_cert(
        "email-san-req",
        &["sanreq"],
        Some(&[San::Email("x@example.com".into())]),
    );
    let ip_req = c.client_cert("ip-san-req", &["sanreq"], Some(&[ip("127.0.0.1")]));
    refused(
        &c,
        "sanreq",
        &none_req,
        "127.0.0.1",
        "127.0.0.1",
        ADDR_REASON,
    );
    refused(
        &c,
        "sanreq",
        &email_req,
        "127.0.0.1",
        "127.0.0.1",
        ADDR_REASON,
    );
    accepted(&c, "sanreq", &ip_req, "127.0.0.1", "127.0.0.1");
    refused(&c, "sanreq", &ip_req, "127.0.0.2", "127.0.0.1", ADDR_REASON);
    let log = c.log();
    assert!(log.contains("SubjectAltName: email:x@example.com. The certificate has no SubjectAltName IP or DNS entries and the rule says san=required"), "{log}");
}

#[test]
fn common_name_must_be_exactly_the_login() {
    let c = scenario::start(scenario::builder());
    let san = [ip("127.0.0.1")];
    let wrong = c.client_cert("cn-wrong", &["test2"], Some(&san));
    let missing = c.client_cert("cn-missing", &[], Some(&san));
    let twice = c.client_cert("cn-twice", &["test1", "test1"], Some(&san));
    let case = c.client_cert("cn-case", &["Test1"], Some(&san));
    let prefix = c.client_cert("cn-prefix", &["test"], Some(&san));
    for cert in [&wrong, &missing, &twice, &case, &prefix] {
        refused(&c, "test1", cert, "127.0.0.1", "127.0.0.1", CN_REASON);
    }
    psql_login(&c, &Login::new("test1", PASSWORD).cert(&missing))
        .assert_refused(&two_factor("test1", CN_REASON));
    // a CN mismatch is reported before an address mismatch (check 4 before check 5)
    let both = c.client_cert("cn-and-ip-wrong", &["test2"], Some(&[ip("10.0.0.1")]));
    refused(&c, "test1", &both, "127.0.0.1", "127.0.0.1", CN_REASON);
    let log = c.log();
    assert!(log.contains("The certificate has no CN."), "{log}");
    assert!(
        log.contains("The certificate has 2 CN attributes; exactly one is required"),
        "{log}"
    );
    assert!(
        log.contains("Certificate CN \"Test1\" is not the login \"test1\""),
        "{log}"
    );
}
