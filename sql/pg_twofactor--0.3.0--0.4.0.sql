-- pg_twofactor 0.3.0 -> 0.4.0
-- New pg_twofactor_library_version(): the version of the library the server loaded (created
-- first, as the check that the server was restarted with the 0.4.0 library).
-- pg_twofactor_status() gains handshake_check (whether the TLS handshake checks a client
-- certificate's address binding) and settings_digest (a SHA-256 over the other settings that
-- decide a login; rules_digest becomes a SHA-256 too): the function is made again, with its
-- comment and grants.
-- Keep this in step with sql/pg_twofactor.sql and the #[pg_extern] attributes: the upgrade
-- test compares an upgraded database with a fresh install.

\echo Use "ALTER EXTENSION pg_twofactor UPDATE TO '0.4.0'" to load this file. \quit

-- First, before anything changes: this server must run the 0.4.0 library. pg_twofactor is
-- preloaded, so a new package takes effect only at the restart; before it the 0.3.0 library
-- would build 0.3.0's rows for the definitions below. pg_twofactor_library_version()'s C
-- symbol exists only in the 0.4.0 library and later: creating it fails in an earlier one
-- (undefined_function), and the whole update is rolled back.
DO $pg_twofactor$
BEGIN
  CREATE FUNCTION "pg_twofactor_library_version"() RETURNS TEXT
  STRICT STABLE PARALLEL SAFE
  LANGUAGE c
  AS 'MODULE_PATHNAME', 'pg_twofactor_library_version_wrapper';
EXCEPTION WHEN undefined_function THEN
  RAISE EXCEPTION 'pg_twofactor 0.4.0 needs the pg_twofactor 0.4.0 library, and this server still runs an earlier one'
    USING ERRCODE = 'object_not_in_prerequisite_state',
          DETAIL = 'pg_twofactor is loaded by shared_preload_libraries: a new library takes effect when the server restarts.',
          HINT = 'Restart the server, then run ALTER EXTENSION pg_twofactor UPDATE again.';
END
$pg_twofactor$;
COMMENT ON FUNCTION pg_twofactor_library_version() IS
    'The version of the pg_twofactor library this server loaded (at its start); the SQL objects'' version is pg_extension.extversion';

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
