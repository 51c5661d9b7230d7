//! A streaming standby with pg_twofactor preloaded enforces its own rules file for read-only
//! logins, and goes on enforcing it after promotion. The rules file is per node: it is not
//! replicated.

use pg_twofactor_e2e::daemon::wait_until;
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use pg_twofactor_e2e::{rust_login, rust_query, two_factor, Login};

#[test]
fn a_standby_enforces_its_own_rules_before_and_after_promotion() {
    let primary = scenario::start(scenario::builder().hba("local replication all trust"));
    let test1 = scenario::cert_for(&primary, "test1");
    let other = scenario::cert_for(&primary, "other");
    // the standby's rules also cover "other"; the primary's do not
    let standby_rules = format!(
        "{}hostssl all other all 2f-scram-sha-256\n",
        scenario::RULES
    );
    let standby = primary.standby(&standby_rules);
    wait_until(
        || standby.psql_admin("SELECT pg_is_in_recovery()") == "t",
        || standby.log(),
    );

    // the primary: "other" needs no certificate
    rust_login(&primary, &Login::new("other", PASSWORD)).assert_accepted_as("other");
    // the standby (read-only logins): its own rules
    rust_login(&standby, &Login::new("other", PASSWORD))
        .assert_refused(&two_factor("other", "no client certificate"));
    rust_login(&standby, &Login::new("other", PASSWORD).cert(&other)).assert_accepted_as("other");
    rust_login(&standby, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    assert_eq!(
        rust_query(
            &standby,
            &Login::new("test1", PASSWORD).cert(&test1),
            "SELECT pg_is_in_recovery()::text"
        )
        .unwrap(),
        "true"
    );

    // promotion: same process, same rules
    assert_eq!(standby.psql_admin("SELECT pg_promote()"), "t");
    wait_until(
        || standby.psql_admin("SELECT pg_is_in_recovery()") == "f",
        || standby.log(),
    );
    rust_login(&standby, &Login::new("other", PASSWORD))
        .assert_refused(&two_factor("other", "no client certificate"));
    rust_login(&standby, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    assert_eq!(
        rust_query(
            &standby,
            &Login::new("test1", PASSWORD).cert(&test1),
            "SELECT (pg_is_in_recovery() OR txid_current() IS NULL)::text"
        )
        .unwrap(),
        "false",
        "the promoted node takes writes"
    );
    // and a reload of the promoted node reads its own file
    standby.write_rules(scenario::RULES);
    standby.reload();
    rust_login(&standby, &Login::new("other", PASSWORD)).assert_accepted_as("other");
}
