-- pg_twofactor 0.1.0 -> 0.2.0
-- The rules view gains rule_number, file_name and mode; the dry run, status, statistics,
-- certificates and configuration-problems functions and views are new. Keep this in step with
-- the generated install script and sql/pg_twofactor.sql: the upgrade test compares a database
-- upgraded from 0.1.0 with a fresh install, object by object.

\echo Use "ALTER EXTENSION pg_twofactor UPDATE TO '0.2.0'" to load this file. \quit

DROP VIEW pg_twofactor_rules;
DROP FUNCTION pg_twofactor_rules();

CREATE FUNCTION "pg_twofactor_certificates"() RETURNS TABLE (
	"common_name" TEXT,
	"serial" TEXT,
	"issuer" TEXT,
	"not_after" timestamp with time zone,
	"days_left" INT,
	"subject_alt_name" TEXT,
	"last_user" TEXT,
	"last_client_addr" TEXT,
	"last_seen" timestamp with time zone,
	"last_accepted" timestamp with time zone,
	"logins" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_certificates_wrapper';

CREATE FUNCTION "pg_twofactor_check"(
	"user_name" TEXT,
	"database" TEXT,
	"client_addr" inet,
	"client_cert" TEXT,
	"hba_method" TEXT DEFAULT 'scram-sha-256',
	"ssl" bool DEFAULT true,
	"replication" bool DEFAULT false
) RETURNS TABLE (
	"rule_file" TEXT,
	"rule_line" INT,
	"rule_method" TEXT,
	"rule_mode" TEXT,
	"verdict" TEXT,
	"reason" TEXT,
	"message" TEXT,
	"detail" TEXT
)
VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_check_wrapper';

CREATE FUNCTION "pg_twofactor_config_problems"() RETURNS TABLE (
	"severity" TEXT,
	"file_name" TEXT,
	"line_number" INT,
	"problem" TEXT,
	"detail" TEXT
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_config_problems_wrapper';

CREATE FUNCTION "pg_twofactor_rules"() RETURNS TABLE (
	"rule_number" INT,
	"file_name" TEXT,
	"line_number" INT,
	"type" TEXT,
	"database" TEXT[],
	"user_name" TEXT[],
	"address" TEXT,
	"netmask" TEXT,
	"auth_method" TEXT,
	"options" TEXT[],
	"mode" TEXT,
	"error" TEXT
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_rules_wrapper';

CREATE FUNCTION "pg_twofactor_stats"() RETURNS TABLE (
	"rule_file" TEXT,
	"rule_line" INT,
	"reason" TEXT,
	"checked" bigint,
	"accepted" bigint,
	"refused" bigint,
	"reported" bigint,
	"exempted" bigint,
	"not_covered" bigint,
	"last_checked" timestamp with time zone,
	"last_accepted" timestamp with time zone,
	"last_refused" timestamp with time zone,
	"last_reported" timestamp with time zone,
	"stats_reset" timestamp with time zone
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_stats_wrapper';

CREATE FUNCTION "pg_twofactor_stats_reset"() RETURNS void
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_stats_reset_wrapper';

CREATE FUNCTION "pg_twofactor_status"() RETURNS TABLE (
	"rules_file" TEXT,
	"rules_loaded" bigint,
	"loaded_at" timestamp with time zone,
	"reload_pending" bool,
	"file_error" TEXT,
	"last_reload_error" TEXT,
	"last_reload_error_at" timestamp with time zone,
	"session_rules_current" bool,
	"ssl" bool,
	"ssl_ca_file" TEXT,
	"enabled_methods" TEXT[]
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_twofactor_status_wrapper';

CREATE VIEW pg_twofactor_rules AS SELECT * FROM pg_twofactor_rules();
COMMENT ON VIEW pg_twofactor_rules IS
    'The pg_twofactor rules file as it is on disk now, with errors; like pg_hba_file_rules';
REVOKE ALL ON FUNCTION pg_twofactor_rules() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_rules() TO pg_read_all_settings;
REVOKE ALL ON pg_twofactor_rules FROM PUBLIC;
GRANT SELECT ON pg_twofactor_rules TO pg_read_all_settings;

COMMENT ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean) IS
    'Dry run: what pg_twofactor would decide for a login, with the rules in force; nobody logs in';
REVOKE ALL ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_check(text, text, inet, text, text, boolean, boolean)
    TO pg_read_all_settings;

COMMENT ON FUNCTION pg_twofactor_status() IS
    'pg_twofactor: rules in force, pending reload, last reload error, TLS settings, enabled methods';
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
REVOKE ALL ON FUNCTION pg_twofactor_config_problems() FROM PUBLIC;
REVOKE ALL ON pg_twofactor_config_problems FROM PUBLIC;
