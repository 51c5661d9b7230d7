-- pg_twofactor 0.3.0 -> 0.4.0
-- pg_twofactor_status() gains handshake_check (whether the TLS handshake checks a client
-- certificate's address binding) and settings_digest (a SHA-256 over the other settings that
-- decide a login; rules_digest becomes a SHA-256 too): the function is made again, with its
-- comment and grants.
-- Keep this in step with sql/pg_twofactor.sql and the #[pg_extern] attributes: the upgrade
-- test compares an upgraded database with a fresh install.

\echo Use "ALTER EXTENSION pg_twofactor UPDATE TO '0.4.0'" to load this file. \quit

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
	"enabled_methods" TEXT[],
	"handshake_check" TEXT,
	"settings_digest" TEXT
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_status_wrapper';
COMMENT ON FUNCTION pg_twofactor_status() IS
    'pg_twofactor: rules in force (and a digest of their files), pending reload, last reload error, TLS settings, enabled methods, the handshake check, a digest of the settings that decide a login';
REVOKE ALL ON FUNCTION pg_twofactor_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_status() TO pg_read_all_settings;
