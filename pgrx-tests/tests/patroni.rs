//! A real high-availability cluster: etcd and two Patroni nodes (Debian's packages), each
//! PostgreSQL with pg_twofactor, configured by the recipe in docs/operating.md (`docs/patroni.yml`). The
//! second factor holds on whichever node leads, across a switchover and a failover; a rules
//! change applied with `patronictl reload` is in force on every node, a node whose copy is
//! broken keeps its last good rules and says so, and `pg_twofactor_status().rules_digest`
//! tells whether the nodes enforce the same rules files.

use pg_twofactor_e2e::cluster::can_run_as_root;
use pg_twofactor_e2e::patroni::{rest_request, wait_for, PatroniCluster, RESTAPI_PASSWORD, SCOPE};
use pg_twofactor_e2e::{rust_login, Cluster, Login, Outcome, San};

const PASSWORD: &str = "first-factor-pw";
const RULES: &str = "hostssl all test1 all 2f-scram-sha-256\n";

/// test1 needs both factors on `server`: refused without a certificate before the password
/// (its pg_hba.conf line has clientcert=verify-ca; the dry run names pg_twofactor's reason),
/// accepted with the certificate, and `other` (no rule) gets in on a password.
fn enforces(c: &PatroniCluster, i: usize, server: &Cluster) {
    let cert = server.client_cert(
        "test1",
        &["test1"],
        Some(&[San::Ip("127.0.0.1".parse().unwrap())]),
    );
    rust_login(server, &Login::new("test1", PASSWORD))
        .assert_refused_with("28000", "connection requires a valid client certificate");
    assert_eq!(
        c.sql(
            i,
            "SELECT verdict || ': ' || reason FROM pg_twofactor_check('test1', 'postgres', '127.0.0.1', NULL)"
        ),
        "refused: no client certificate"
    );
    rust_login(server, &Login::new("test1", PASSWORD).cert(&cert)).assert_accepted_as("test1");
    rust_login(server, &Login::new("other", PASSWORD)).assert_accepted_as("other");
}

/// Waits until `login` on `server` gets `want` (replication and reloads take a moment).
fn eventually(server: &Cluster, login: &Login, want: impl Fn(&Outcome) -> bool, what: &str) {
    let last = std::cell::RefCell::new(None);
    wait_for(
        60,
        || {
            let o = rust_login(server, login);
            let ok = want(&o);
            *last.borrow_mut() = Some(o);
            ok
        },
        || format!("{what}: last outcome {:?}", last.borrow()),
    );
}

fn refused(o: &Outcome) -> bool {
    matches!(o, Outcome::Refused { sqlstate, .. } if sqlstate == "28P01")
}

fn digest(c: &PatroniCluster, i: usize) -> String {
    c.sql(i, "SELECT rules_digest FROM pg_twofactor_status()")
}

#[test]
fn patroni_nodes_enforce_the_second_factor_whichever_leads() {
    if !can_run_as_root("Patroni runs PostgreSQL as the postgres OS user") {
        return;
    }
    let mut c = PatroniCluster::start(2, RULES);
    assert!(c.is_leader(0) && c.is_replica(1));
    c.sql(
        0,
        &format!(
            "CREATE ROLE test1 LOGIN PASSWORD '{PASSWORD}'; CREATE ROLE other LOGIN PASSWORD '{PASSWORD}'; \
             CREATE EXTENSION pg_twofactor"
        ),
    );
    let (s0, s1) = (c.server(0), c.server(1));
    // the leader, and the replica for a read-only login (once the roles have replicated)
    eventually(
        &s1,
        &Login::new("other", PASSWORD),
        |o| matches!(o, Outcome::Accepted { .. }),
        "the roles reach the replica",
    );
    enforces(&c, 0, &s0);
    enforces(&c, 1, &s1);
    // the same rules files on both nodes, outside the data directory
    assert_eq!(digest(&c, 0), digest(&c, 1));
    assert_eq!(digest(&c, 0).len(), 64, "a SHA-256 in hex");
    // and the same settings that decide a login (methods, handshake check, CA file's bytes)
    let settings = |i| c.sql(i, "SELECT settings_digest FROM pg_twofactor_status()");
    assert_eq!(settings(0), settings(1));
    assert_eq!(settings(0).len(), 64);
    for i in 0..2 {
        assert_eq!(
            c.sql(i, "SELECT count(*) FROM pg_twofactor_config_problems WHERE problem = 'rules file inside the data directory'"),
            "0"
        );
    }

    // switchover: the new leader enforces at once, the old one rejoins as a replica and
    // enforces too
    let out = c.patronictl(&[
        "switchover",
        SCOPE,
        "--leader",
        "node1",
        "--candidate",
        "node2",
        "--force",
    ]);
    assert!(
        out.status.success(),
        "patronictl switchover: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_until_leader(1, 90);
    enforces(&c, 1, &s1);
    c.wait_until_replica(0, 120);
    enforces(&c, 0, &s0);

    // the REST API's unsafe endpoints need the recipe's credentials; its health checks do not
    let port = c.nodes[0].rest_port;
    assert_eq!(rest_request(port, "POST", "/reload", None), 401);
    assert_eq!(
        rest_request(port, "POST", "/reload", Some("patroni:wrong-password")),
        401
    );
    assert_eq!(
        rest_request(
            port,
            "POST",
            "/reload",
            Some(&format!("patroni:{RESTAPI_PASSWORD}"))
        ),
        202
    );
    assert_eq!(rest_request(port, "GET", "/replica", None), 200);

    // a rules change copied to every node and applied with patronictl reload (which
    // authenticates with the same credentials): in force on all
    let both = format!("{RULES}hostssl all other all 2f-scram-sha-256\n");
    let before = digest(&c, 0);
    for i in 0..2 {
        c.write_rules(i, &both);
    }
    let out = c.patronictl(&["reload", SCOPE, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in [&s0, &s1] {
        eventually(
            s,
            &Login::new("other", PASSWORD),
            refused,
            "the new rules cover other",
        );
    }
    assert_eq!(digest(&c, 0), digest(&c, 1));
    assert_ne!(digest(&c, 0), before);

    // node1's copy is broken: it keeps its last good rules and says so; node2 applies the
    // change; their digests differ
    c.write_rules(0, "hostssl all test1 all 2f-no-such-method\n");
    c.write_rules(1, RULES);
    let out = c.patronictl(&["reload", SCOPE, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        &s1,
        &Login::new("other", PASSWORD),
        |o| matches!(o, Outcome::Accepted { .. }),
        "node2 applies the change",
    );
    wait_for(
        60,
        || {
            c.sql(
                0,
                "SELECT last_reload_error IS NOT NULL FROM pg_twofactor_status()",
            ) == "t"
        },
        || "node1 reports no failed reload".into(),
    );
    assert!(c
        .sql(0, "SELECT last_reload_error FROM pg_twofactor_status()")
        .contains("2f-no-such-method"));
    rust_login(&s0, &Login::new("other", PASSWORD))
        .assert_refused_with("28P01", "password authentication failed for user \"other\"");
    assert_ne!(digest(&c, 0), digest(&c, 1));
    // fixed and reloaded: the same again
    c.write_rules(0, RULES);
    let out = c.patronictl(&["reload", SCOPE, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        60,
        || digest(&c, 0) == digest(&c, 1),
        || "node1 did not load the fixed rules".into(),
    );

    // failover: the leader's machine dies (Patroni and the postmaster killed); the promoted
    // replica enforces from its first login
    c.kill_node(1);
    c.wait_until_leader(0, 120);
    enforces(&c, 0, &s0);
}
