//! The Debian package (`bash .ci/package`): with the `cargo pgrx install` copy removed, the
//! `.deb` installed with `dpkg -i` on the machine's own PostgreSQL is what a DBA gets, and the
//! acceptance logins pass against it; `dpkg -r` removes it again. And the upgrade a DBA makes:
//! the previous release's package on a running cluster, the new package installed over it,
//! the restart, `ALTER EXTENSION pg_twofactor UPDATE`, with every object polled at each step.
//! Needs root, and the packages for `PG_CONFIG`'s major in `PG2F_PACKAGE_DEB` and
//! `PG2F_PACKAGE_PREVIOUS_DEB` (`.ci/test` sets them, `.ci/package-previous` builds the
//! previous one); the `cargo pgrx install` copy is put back at the end.

use pg_twofactor_e2e::client::{rust_login, two_factor, Login};
use pg_twofactor_e2e::cluster::{is_root, major_of_bindir, sharedir, Cluster};
use pg_twofactor_e2e::scenario::{self, PASSWORD};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The extension's files in `lib` and `ext`: the library, control file and SQL scripts.
fn extension_files(lib: &Path, ext: &Path) -> Vec<PathBuf> {
    let mut files = vec![lib.join("pg_twofactor.so")];
    for e in std::fs::read_dir(ext).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "pg_twofactor.control" || name.starts_with("pg_twofactor--") {
            files.push(e.path());
        }
    }
    files.retain(|f| f.exists());
    files.sort();
    files
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The packages' own files and names on this machine (Debian's PostgreSQL of `PG_CONFIG`).
struct Packaged {
    major: String,
    lib: PathBuf,
    ext: PathBuf,
    name: String,
}

fn packaged() -> Packaged {
    assert!(is_root(), "installing a package needs root");
    let bin = pg_twofactor_e2e::cluster::bindir();
    let major = major_of_bindir(&bin);
    let lib = PathBuf::from(format!("/usr/lib/postgresql/{major}/lib"));
    let ext = sharedir(&bin).join("extension");
    assert_eq!(
        ext,
        PathBuf::from(format!("/usr/share/postgresql/{major}/extension")),
        "the package scenario runs on Debian's own PostgreSQL"
    );
    let name = format!("postgresql-{major}-pg-twofactor");
    Packaged {
        major: major.to_string(),
        lib,
        ext,
        name,
    }
}

/// The package file named by the environment variable `var`; `None` (the scenario returns)
/// outside CI when it is not set. Under CI a scenario that cannot run is a failure: `.ci/test`
/// runs these with the packages it built, and skips them in the runs without.
fn package_file(var: &str) -> Option<String> {
    let file = std::env::var(var).ok();
    if file.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{var} is not set: under CI the package scenarios must run (from .ci/test)"
        );
        eprintln!("{var} is not set: the package scenarios run from .ci/test");
    }
    file
}

/// The package scenarios install and remove the same system package: one at a time.
static ONE_PACKAGE_SCENARIO_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `scenario` with the `cargo pgrx install` copy of the extension set aside (so only a
/// package's files are there), then removes the package (also when the scenario failed) and
/// puts the copy back.
fn with_the_cargo_copy_set_aside(p: &Packaged, scenario: impl FnOnce() + std::panic::UnwindSafe) {
    let _one = ONE_PACKAGE_SCENARIO_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let backup = tempfile::tempdir().unwrap();
    let installed = extension_files(&p.lib, &p.ext);
    assert!(
        !installed.is_empty(),
        "no cargo pgrx install copy to replace"
    );
    for f in &installed {
        std::fs::copy(f, backup.path().join(f.file_name().unwrap())).unwrap();
        std::fs::remove_file(f).unwrap();
    }
    let result = std::panic::catch_unwind(scenario);
    if result.is_err() {
        let _ = Command::new("dpkg").args(["-r", &p.name]).output();
    }
    for f in &installed {
        std::fs::copy(backup.path().join(f.file_name().unwrap()), f).unwrap();
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn the_debian_package_installs_works_and_removes() {
    let Some(deb) = package_file("PG2F_PACKAGE_DEB") else {
        return;
    };
    let p = packaged();
    let (major, lib, ext, name) = (&p.major, &p.lib, &p.ext, &p.name);
    with_the_cargo_copy_set_aside(&p, || {
        // without it, a server that preloads it does not start
        let mut c = scenario::builder().create();
        assert!(!c.try_start().status.success());
        assert!(c.log().contains("pg_twofactor"), "{}", c.log());
        drop(c);

        run(Command::new("dpkg").args(["-i", &deb]));
        let listed = run(Command::new("dpkg").args(["-L", name]));
        for f in [
            format!("/usr/lib/postgresql/{major}/lib/pg_twofactor.so"),
            format!("/usr/share/postgresql/{major}/extension/pg_twofactor.control"),
            format!("/usr/share/postgresql/{major}/extension/pg_twofactor--0.1.0--0.2.0.sql"),
            format!("/usr/share/postgresql/{major}/extension/pg_twofactor--0.2.0--0.3.0.sql"),
            format!("/usr/share/postgresql/{major}/extension/pg_twofactor--0.3.0--0.4.0.sql"),
            format!("/usr/share/doc/{name}/copyright"),
            format!("/usr/share/doc/{name}/docs/configuration.md"),
            format!("/usr/lib/postgresql/{major}/bin/pg_twofactor-cert"),
        ] {
            assert!(
                listed.lines().any(|l| l == f),
                "{f} not in the package:\n{listed}"
            );
        }
        let depends = run(Command::new("dpkg-query").args(["-W", "-f=${Depends}", name]));
        assert!(
            depends.contains(&format!("postgresql-{major}")),
            "{depends}"
        );

        // the acceptance logins, against the packaged library
        let c: Cluster = scenario::start(scenario::builder());
        let cert = scenario::cert_for(&c, "test1");
        rust_login(&c, &Login::new("test1", PASSWORD).cert(&cert)).assert_accepted_as("test1");
        rust_login(&c, &Login::new("test1", PASSWORD))
            .assert_refused(&two_factor("test1", "no client certificate"));
        let other = scenario::cert_for(&c, "other");
        rust_login(&c, &Login::new("test1", PASSWORD).cert(&other)).assert_refused(&two_factor(
            "test1",
            "certificate CN does not match the user name",
        ));
        c.psql_admin("CREATE EXTENSION IF NOT EXISTS pg_twofactor");
        assert_eq!(
            c.psql_admin("SELECT count(*) FROM pg_twofactor_rules WHERE error IS NULL"),
            "5"
        );
        assert_eq!(
            c.psql_admin("SELECT extversion = default_version FROM pg_extension, pg_available_extensions WHERE extname = 'pg_twofactor' AND name = extname"),
            "t"
        );
        // the packaged certificate tool reads the cluster's certificate as pg_twofactor does
        let inspected = run(Command::new(format!(
            "/usr/lib/postgresql/{major}/bin/pg_twofactor-cert"
        ))
        .args(["inspect", "--json"])
        .arg(&cert.cert));
        assert!(
            inspected.contains("\"common_names\":[\"test1\"]")
                && inspected.contains("\"addresses\":[\"127.0.0.1\"]"),
            "{inspected}"
        );
        drop(c);

        run(Command::new("dpkg").args(["-r", name]));
        assert!(
            extension_files(lib, ext).is_empty(),
            "dpkg -r left files behind"
        );
    });
}

/// The databases of the upgrade scenario, each with the extension.
const DATABASES: [&str; 2] = ["postgres", "app"];

/// The version of the extension's SQL objects in database `db`.
fn extversion(c: &Cluster, db: &str) -> String {
    c.psql_in(
        db,
        "SELECT extversion FROM pg_extension WHERE extname = 'pg_twofactor'",
    )
}

/// What a DBA's monitoring sees at one step of the upgrade: every object of every database
/// answers (rows, or the ERROR that names the update), a monitoring role's poll of the status
/// gives a row, and the second factor still decides. Returns the calls' outcomes.
fn poll_everything(c: &Cluster, step: &str) -> Vec<String> {
    let mut outcomes = Vec::new();
    for db in DATABASES {
        for outcome in scenario::call_every_object(c, db) {
            outcomes.push(format!("{step}: {db}: {outcome}"));
        }
    }
    let monitor = c.psql_admin_raw(
        "monitor",
        "SELECT count(*) FROM pg_twofactor_status() t WHERE t::text IS NOT NULL",
    );
    assert_eq!(
        String::from_utf8_lossy(&monitor.stdout).trim(),
        "1",
        "{step}: the monitoring role's poll of pg_twofactor_status(): {}",
        String::from_utf8_lossy(&monitor.stderr)
    );
    let cert = scenario::cert_for(c, "test1");
    rust_login(c, &Login::new("test1", PASSWORD).cert(&cert)).assert_accepted_as("test1");
    rust_login(c, &Login::new("test1", PASSWORD))
        .assert_refused(&two_factor("test1", "no client certificate"));
    outcomes
}

/// A DBA's upgrade from the previous release, as Debian does it: the previous package on a
/// running cluster whose databases have the extension; the new package installed over it while
/// the server runs (the server keeps the library it loaded); `ALTER EXTENSION ... UPDATE` tried
/// too early (refused: the server still runs the earlier library); the restart (the new
/// library, the earlier SQL objects: rows or the ERROR naming the update, never a crash); the
/// update in each database. Every object is polled at each step.
#[test]
fn the_previous_package_upgrades_in_place_on_a_running_cluster() {
    let Some(previous) = package_file("PG2F_PACKAGE_PREVIOUS_DEB") else {
        return;
    };
    let Some(current) = package_file("PG2F_PACKAGE_DEB") else {
        return;
    };
    let p = packaged();
    let installed_version =
        || run(Command::new("dpkg-query").args(["-W", "-f=${Version}", &p.name]));
    with_the_cargo_copy_set_aside(&p, || {
        run(Command::new("dpkg").args(["-i", &previous]));
        let previous_version = installed_version();
        let mut c: Cluster = scenario::start(scenario::builder());
        c.psql_admin("CREATE ROLE monitor LOGIN IN ROLE pg_monitor");
        c.psql_admin("CREATE DATABASE app");
        for db in DATABASES {
            c.psql_in(db, "CREATE EXTENSION pg_twofactor");
        }
        let released = extversion(&c, "app");
        let mut outcomes = poll_everything(&c, "previous package");

        // the new package over the previous one, the server running
        let postmaster = c.postmaster_pid();
        run(Command::new("dpkg").args(["-i", &current]));
        let current_version = installed_version();
        assert_ne!(current_version, previous_version, "{current} is no upgrade");
        let default_version = c.psql_admin(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_twofactor'",
        );
        assert_ne!(
            default_version, released,
            "{current} has no new SQL version"
        );
        outcomes.extend(poll_everything(&c, "new package, server not restarted"));
        // ALTER EXTENSION UPDATE before the restart: refused, nothing changed
        let early = c.psql_admin_raw_in("app", "ALTER EXTENSION pg_twofactor UPDATE");
        assert!(
            early.contains(&format!(
                "ERROR:  pg_twofactor {default_version} needs the pg_twofactor {default_version} library, and this server still runs an earlier one"
            )) && early.contains("HINT:  Restart the server, then run ALTER EXTENSION pg_twofactor UPDATE again."),
            "ALTER EXTENSION UPDATE before the restart:\n{early}"
        );
        assert_eq!(extversion(&c, "app"), released);
        assert_eq!(c.postmaster_pid(), postmaster, "the server restarted");

        // the restart: the new library under the previous SQL objects
        c.restart();
        let postmaster = c.postmaster_pid();
        outcomes.extend(poll_everything(&c, "restarted"));
        for db in DATABASES {
            c.psql_in(db, "ALTER EXTENSION pg_twofactor UPDATE");
            assert_eq!(extversion(&c, db), default_version);
            assert_eq!(
                c.psql_in(db, "SELECT pg_twofactor_library_version()"),
                default_version,
                "{db}"
            );
        }
        let updated = poll_everything(&c, "updated");
        assert!(
            updated.iter().all(|o| o.ends_with("-> rows")),
            "after the update every object gives rows:\n{}",
            updated.join("\n")
        );
        outcomes.extend(updated);
        assert_eq!(c.postmaster_pid(), postmaster, "the server restarted");
        assert!(
            !c.log().contains("terminated by signal"),
            "a backend crashed:\n{}",
            c.log()
        );
        eprintln!(
            "{previous_version} -> {current_version}:\n{}",
            outcomes.join("\n")
        );
        drop(c);
        run(Command::new("dpkg").args(["-r", &p.name]));
    });
}
