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
    install_released_scripts(&c);
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
    assert_eq!(c.psql_in("fresh", COUNT), "12", "{fresh}");
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

/// Installs the released 0.1.0's install script (a fixture) beside the current version's, each
/// written beside its place and renamed into it: the tests of this file run at once, and a
/// server reading a script must never see one half written. The later released versions need
/// no script of their own: `CREATE EXTENSION pg_twofactor VERSION '0.3.0'` runs 0.1.0's and
/// then the update scripts of `sql/` (which never change once released), as PostgreSQL does
/// for a version without an install script.
fn install_released_scripts(c: &pg_twofactor_e2e::cluster::Cluster) {
    let dir = sharedir(&c.bin).join("extension");
    assert!(
        is_root() || std::fs::metadata(&dir).is_ok_and(|m| !m.permissions().readonly()),
        "the upgrade test writes into {} and must run as root",
        dir.display()
    );
    let name = "pg_twofactor--0.1.0.sql";
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let temporary = dir.join(format!(".{name}.{:?}", std::thread::current().id()));
    std::fs::copy(&fixture, &temporary)
        .and_then(|_| std::fs::rename(&temporary, dir.join(name)))
        .unwrap_or_else(|e| panic!("installing {name}: {e}"));
}

/// The released versions, whose SQL objects the new library must survive.
const RELEASED: [&str; 3] = ["0.1.0", "0.2.0", "0.3.0"];

/// The upgrade window: the new library loaded, a database still holding an earlier version's
/// SQL objects. Every object of every released version, called: rows, or an ERROR that names
/// `ALTER EXTENSION pg_twofactor UPDATE`; never a crash (a crashed backend restarts every
/// process of the server).
#[test]
fn every_released_versions_objects_answer_or_name_the_update() {
    let c = scenario::start(scenario::builder());
    install_released_scripts(&c);
    let postmaster = c.postmaster_pid();
    let mut outcomes = Vec::new();
    for version in RELEASED {
        let db = format!("v{}", version.replace('.', "_"));
        c.psql_admin(&format!("CREATE DATABASE {db}"));
        c.psql_in(
            &db,
            &format!("CREATE EXTENSION pg_twofactor VERSION '{version}'"),
        );
        for outcome in scenario::call_every_object(&c, &db) {
            assert_eq!(
                c.postmaster_pid(),
                postmaster,
                "{version}: {outcome}: the server restarted"
            );
            outcomes.push(format!("{version} {outcome}"));
        }
    }
    let outcomes = outcomes.join("\n");
    eprintln!("{outcomes}");
    // the shapes that differ (these crashed the server in 0.3)
    for crashed in [
        "0.1.0 SELECT count(*) FROM pg_twofactor_rules() t WHERE t::text IS NOT NULL -> error",
        "0.1.0 SELECT count(*) FROM pg_twofactor_rules t WHERE t::text IS NOT NULL -> error",
        "0.2.0 SELECT count(*) FROM pg_twofactor_status() t WHERE t::text IS NOT NULL -> error",
    ] {
        assert!(outcomes.contains(crashed), "{crashed}:\n{outcomes}");
    }
    // 0.3.0's status declares a prefix of 0.4.0's columns: it keeps answering
    assert!(
        outcomes.contains(
            "0.3.0 SELECT count(*) FROM pg_twofactor_status() t WHERE t::text IS NOT NULL -> rows"
        ),
        "{outcomes}"
    );
    assert!(
        !c.log().contains("terminated by signal"),
        "a backend crashed:\n{}",
        c.log()
    );
    // and each database gets the current objects by the update the ERROR names
    for version in RELEASED {
        let db = format!("v{}", version.replace('.', "_"));
        c.psql_in(&db, "ALTER EXTENSION pg_twofactor UPDATE");
        assert_eq!(
            c.psql_in(&db, "SELECT handshake_check FROM pg_twofactor_status()"),
            "off",
            "{version}"
        );
        assert_eq!(
            c.psql_in(&db, "SELECT count(*) > 0 FROM pg_twofactor_rules"),
            "t",
            "{version}"
        );
    }
}
