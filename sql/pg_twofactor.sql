-- pg_twofactor's views, comments and grants. The functions themselves are generated from the
-- Rust sources (#[pg_extern]); this file is appended to the install script after them.
-- The upgrade scripts (sql/pg_twofactor--A--B.sql) repeat what changed between versions: keep
-- them in step (the upgrade test compares an upgraded database with a fresh install).
--
-- Who may read what (README "Deploying it securely"): what reveals the rules (their view, the
-- dry run) is superuser-only, like pg_hba_file_rules; a DBA may GRANT it. The status and the
-- statistics name no rule's content and stay readable by the monitoring roles.

CREATE VIEW pg_twofactor_rules AS SELECT * FROM pg_twofactor_rules();
COMMENT ON VIEW pg_twofactor_rules IS
    'The pg_twofactor rules file as it is on disk now, with errors; like pg_hba_file_rules';
REVOKE ALL ON FUNCTION pg_twofactor_rules() FROM PUBLIC;
REVOKE ALL ON pg_twofactor_rules FROM PUBLIC;

COMMENT ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean) IS
    'Dry run: what pg_twofactor would decide for a login, with the rules in force; nobody logs in';
REVOKE ALL ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean) FROM PUBLIC;

COMMENT ON FUNCTION pg_twofactor_status() IS
    'pg_twofactor: rules in force (and a digest of their files), pending reload, last reload error, TLS settings, enabled methods, the handshake check, a digest of the settings that decide a login';
REVOKE ALL ON FUNCTION pg_twofactor_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_status() TO pg_read_all_settings;

CREATE VIEW pg_twofactor_stats AS SELECT * FROM pg_twofactor_stats();
COMMENT ON VIEW pg_twofactor_stats IS
    'pg_twofactor decisions per rule and per reason since start or pg_twofactor_stats_reset(); one row per connection attempt';
REVOKE ALL ON FUNCTION pg_twofactor_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_stats() TO pg_read_all_stats;
REVOKE ALL ON pg_twofactor_stats FROM PUBLIC;
GRANT SELECT ON pg_twofactor_stats TO pg_read_all_stats;

COMMENT ON FUNCTION pg_twofactor_stats_reset() IS 'Resets the counters of pg_twofactor_stats';
REVOKE ALL ON FUNCTION pg_twofactor_stats_reset() FROM PUBLIC;

CREATE VIEW pg_twofactor_certificates AS SELECT * FROM pg_twofactor_certificates();
COMMENT ON VIEW pg_twofactor_certificates IS
    'Client certificates seen at login (the most recent ones), soonest expiry first';
REVOKE ALL ON FUNCTION pg_twofactor_certificates() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_certificates() TO pg_read_all_stats;
REVOKE ALL ON pg_twofactor_certificates FROM PUBLIC;
GRANT SELECT ON pg_twofactor_certificates TO pg_read_all_stats;

CREATE VIEW pg_twofactor_config_problems AS SELECT * FROM pg_twofactor_config_problems();
COMMENT ON VIEW pg_twofactor_config_problems IS
    'Problems found by cross-checking the pg_twofactor rules file with pg_hba.conf and the server settings; empty means none';
-- it reads pg_hba_file_rules, which only superusers (and roles granted it) may read
REVOKE ALL ON FUNCTION pg_twofactor_config_problems() FROM PUBLIC;
REVOKE ALL ON pg_twofactor_config_problems FROM PUBLIC;

COMMENT ON FUNCTION pg_twofactor_library_version() IS
    'The version of the pg_twofactor library this server loaded (at its start); the SQL objects'' version is pg_extension.extversion';
