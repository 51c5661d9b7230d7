-- pg_twofactor 0.2.0 -> 0.3.0
-- Least privilege as PostgreSQL's own pg_hba_file_rules: the rules view and the dry run become
-- superuser-only (a DBA may GRANT them again). Parallel labels: the functions that read this
-- session's rules in force are PARALLEL RESTRICTED, the statistics reset (it writes shared
-- memory) PARALLEL UNSAFE. Keep this in step with sql/pg_twofactor.sql and the #[pg_extern]
-- attributes: the upgrade test compares an upgraded database with a fresh install.

\echo Use "ALTER EXTENSION pg_twofactor UPDATE TO '0.3.0'" to load this file. \quit

REVOKE EXECUTE ON FUNCTION pg_twofactor_rules() FROM pg_read_all_settings;
REVOKE SELECT ON pg_twofactor_rules FROM pg_read_all_settings;
REVOKE EXECUTE ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean)
    FROM pg_read_all_settings;

ALTER FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean) PARALLEL RESTRICTED;
ALTER FUNCTION pg_twofactor_status() PARALLEL RESTRICTED;
ALTER FUNCTION pg_twofactor_config_problems() PARALLEL RESTRICTED;
ALTER FUNCTION pg_twofactor_stats_reset() PARALLEL UNSAFE;
