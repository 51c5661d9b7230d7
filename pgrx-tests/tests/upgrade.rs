//! The extension's SQL across versions: a database upgraded from the released 0.1.0 (through
//! 0.2.0) with `ALTER EXTENSION pg_twofactor UPDATE` has exactly the objects of a fresh install.

use pg_twofactor_e2e::cluster::{is_root, sharedir};
use pg_twofactor_e2e::scenario;

/// Every object of the extension with what defines it: signature, result, C symbol,
/// strictness, volatility, parallel safety, grants, view definition and comment.
const OBJECTS: &str = "
SELECT string_agg(d, E'\\n' ORDER BY d) FROM (
  SELECT pg_describe_object(classid, objid, 0) || ' | ' || coalesce(
      CASE classid
        WHEN 'pg_proc'::regclass THEN (
          SELECT pg_get_function_arguments(p.oid) || ' -> ' || pg_get_function_result(p.oid)
                 || ' | ' || p.prosrc || ' ' || p.proisstrict || ' ' || p.provolatile::text || ' '
                 || p.proparallel::text || ' | ' || coalesce(p.proacl::text, 'default')
          FROM pg_proc p WHERE p.oid = objid)
        WHEN 'pg_class'::regclass THEN (
          SELECT pg_get_viewdef(c.oid) || ' | ' || coalesce(c.relacl::text, 'default')
          FROM pg_class c WHERE c.oid = objid)
      END, '?') || ' | ' || coalesce(obj_description(objid, classid::regclass::text), '') AS d
  FROM pg_depend
  WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
    AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_twofactor')
) objects";

/// The functions and views (18 also records the views' row types as members).
const COUNT: &str = "SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass \
    AND classid IN ('pg_proc'::regclass, 'pg_class'::regclass) AND deptype = 'e' AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_twofactor')";

#[test]
fn upgrade_from_0_1_0_equals_a_fresh_install() {
    let c = scenario::start(scenario::builder());
    // the released 0.1.0 install script, beside the current version's (installing it needs
    // write access to PostgreSQL's extension directory, as installing the extension does)
    let released = sharedir(&c.bin).join("extension/pg_twofactor--0.1.0.sql");
    assert!(
        is_root()
            || std::fs::metadata(released.parent().unwrap())
                .is_ok_and(|m| !m.permissions().readonly()),
        "the upgrade test writes {} and must run as root",
        released.display()
    );
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/pg_twofactor--0.1.0.sql"
        ),
        &released,
    )
    .unwrap();
    c.psql_admin("CREATE DATABASE fresh");
    c.psql_admin("CREATE DATABASE upgraded");
    c.psql_in("fresh", "CREATE EXTENSION pg_twofactor");
    c.psql_in("upgraded", "CREATE EXTENSION pg_twofactor VERSION '0.1.0'");
    let before = c.psql_in("upgraded", OBJECTS);
    assert_eq!(
        c.psql_in("upgraded", COUNT),
        "2",
        "0.1.0 has the rules function and view:\n{before}"
    );
    // 0.2.0 granted the rules and the dry run to pg_read_all_settings; 0.3.0 takes that back
    let granted = "SELECT has_function_privilege('pg_read_all_settings', 'pg_twofactor_rules()', 'EXECUTE'), \
        has_table_privilege('pg_read_all_settings', 'pg_twofactor_rules', 'SELECT'), \
        has_function_privilege('pg_read_all_settings', 'pg_twofactor_check(text, text, inet, text, text, boolean, boolean)', 'EXECUTE')";
    c.psql_in("upgraded", "ALTER EXTENSION pg_twofactor UPDATE TO '0.2.0'");
    assert_eq!(c.psql_in("upgraded", granted), "t|t|t");
    c.psql_in("upgraded", "ALTER EXTENSION pg_twofactor UPDATE TO '0.3.0'");
    assert_eq!(c.psql_in("upgraded", granted), "f|f|f");
    // between the new library and ALTER EXTENSION UPDATE: 0.3.0's pg_twofactor_status()
    // declares twelve columns, the library makes thirteen; the server must survive the call
    let old_status = c.psql_admin_raw_in(
        "upgraded",
        "SELECT rules_loaded > 0, ssl FROM pg_twofactor_status()",
    );
    assert_eq!(
        c.psql_admin("SELECT count(*) >= 0 FROM pg_stat_activity"),
        "t",
        "the server must still answer after 0.3.0's status was called: {old_status}"
    );
    c.psql_in("upgraded", "ALTER EXTENSION pg_twofactor UPDATE");
    assert_eq!(c.psql_in("upgraded", granted), "f|f|f");
    assert_eq!(
        c.psql_in(
            "upgraded",
            "SELECT handshake_check FROM pg_twofactor_status()"
        ),
        "off"
    );
    assert_eq!(
        c.psql_in(
            "upgraded",
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_twofactor'"
        ),
        c.psql_in(
            "fresh",
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_twofactor'"
        ),
    );
    let fresh = c.psql_in("fresh", OBJECTS);
    let upgraded = c.psql_in("upgraded", OBJECTS);
    assert_eq!(upgraded, fresh);
    assert_eq!(c.psql_in("fresh", COUNT), "11", "{fresh}");
    // and the upgraded objects work
    assert_eq!(
        c.psql_in(
            "upgraded",
            "SELECT count(*) > 0 FROM pg_twofactor_rules WHERE mode = 'enforce'"
        ),
        "t"
    );
    assert_eq!(
        c.psql_in(
            "upgraded",
            "SELECT rules_loaded > 0 FROM pg_twofactor_status()"
        ),
        "t"
    );
    c.psql_in("upgraded", "SELECT count(*) FROM pg_twofactor_stats");
    c.psql_in("upgraded", "SELECT count(*) FROM pg_twofactor_certificates");
    c.psql_in(
        "upgraded",
        "SELECT count(*) FROM pg_twofactor_config_problems",
    );
}
