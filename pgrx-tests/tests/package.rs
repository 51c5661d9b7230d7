//! The Debian package (`bash .ci/package`): with the `cargo pgrx install` copy removed, the
//! `.deb` installed with `dpkg -i` on the machine's own PostgreSQL is what a DBA gets, and the
//! acceptance logins pass against it; `dpkg -r` removes it again. Needs root and the path of
//! the package for `PG_CONFIG`'s major in `PG2F_PACKAGE_DEB` (`.ci/test` sets both); the
//! `cargo pgrx install` copy is put back at the end.

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

#[test]
fn the_debian_package_installs_works_and_removes() {
    let Ok(deb) = std::env::var("PG2F_PACKAGE_DEB") else {
        // under CI a scenario that cannot run is a failure, not a pass (.ci/test runs this one
        // with the package it built, and skips it in the runs without one)
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PG2F_PACKAGE_DEB is not set: under CI the package scenario must run (from .ci/test)"
        );
        eprintln!("PG2F_PACKAGE_DEB is not set: the package scenario runs from .ci/test");
        return;
    };
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

    // the cargo pgrx install copy, kept to be put back
    let backup = tempfile::tempdir().unwrap();
    let installed = extension_files(&lib, &ext);
    assert!(
        !installed.is_empty(),
        "no cargo pgrx install copy to replace"
    );
    for f in &installed {
        std::fs::copy(f, backup.path().join(f.file_name().unwrap())).unwrap();
        std::fs::remove_file(f).unwrap();
    }
    let restore = || {
        for f in &installed {
            std::fs::copy(backup.path().join(f.file_name().unwrap()), f).unwrap();
        }
    };
    let result = std::panic::catch_unwind(|| {
        // without it, a server that preloads it does not start
        let mut c = scenario::builder().create();
        assert!(!c.try_start().status.success());
        assert!(c.log().contains("pg_twofactor"), "{}", c.log());
        drop(c);

        run(Command::new("dpkg").args(["-i", &deb]));
        let listed = run(Command::new("dpkg").args(["-L", &name]));
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
        let depends = run(Command::new("dpkg-query").args(["-W", "-f=${Depends}", &name]));
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

        run(Command::new("dpkg").args(["-r", &name]));
        assert!(
            extension_files(&lib, &ext).is_empty(),
            "dpkg -r left files behind"
        );
    });
    if result.is_err() {
        let _ = Command::new("dpkg").args(["-r", &name]).output();
    }
    restore();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
