-- pg_twofactor 0.2.0 -> 0.3.0
-- pg_twofactor_status() gains rules_digest. Least privilege as PostgreSQL's own pg_hba_file_rules: the rules view and the dry run become
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
-- The status gains rules_digest (a digest over the bytes of the rules files in force, to
-- compare nodes): the function is made again, with its comment and grants.
DROP FUNCTION pg_twofactor_status();
CREATE FUNCTION "pg_twofactor_status"() RETURNS TABLE (
	"rules_file" TEXT,
	"rules_loaded" bigint,
	"loaded_at" timestamp with time zone,
	"reload_pending" bool,
	"rules_digest" TEXT,
	"file_error" TEXT,
	"last_reload_error" TEXT,
	"last_reload_error_at" timestamp with time zone,
	"session_rules_current" bool,
	"ssl" bool,
	"ssl_ca_file" TEXT,
	"enabled_methods" TEXT[]
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_status_wrapper';
COMMENT ON FUNCTION pg_twofactor_status() IS
    'pg_twofactor: rules in force (and a digest of their files), pending reload, last reload error, TLS settings, enabled methods';
REVOKE ALL ON FUNCTION pg_twofactor_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_status() TO pg_read_all_settings;
ALTER FUNCTION pg_twofactor_config_problems() PARALLEL RESTRICTED;
ALTER FUNCTION pg_twofactor_stats_reset() PARALLEL UNSAFE;
