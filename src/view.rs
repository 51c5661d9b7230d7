//! `pg_twofactor_rules`: the rules file as it is on disk now, errors included, shaped like
//! `pg_hba_file_rules`, so a DBA can check an edit before reloading.

use crate::{gucs, rules};
use pgrx::prelude::*;

type Row = (
    Option<i32>,
    Option<String>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    Option<String>,
);

fn rows() -> Vec<Row> {
    let parsed = rules::parse_file(&gucs::hba_file());
    let mut out: Vec<Row> = Vec::new();
    if let Some(e) = &parsed.file_error {
        let line = (e.line > 0).then_some(e.line as i32);
        out.push((
            line,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some(e.to_string()),
        ));
    }
    for (line, result) in parsed.lines {
        out.push(match result {
            Ok(rule) => {
                let d = rule.display;
                (
                    Some(line as i32),
                    Some(d.conn_type),
                    Some(d.databases),
                    Some(d.users),
                    d.address,
                    d.netmask,
                    Some(d.method),
                    (!d.options.is_empty()).then_some(d.options),
                    None,
                )
            }
            Err(e) => (
                Some(line as i32),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some(e.message),
            ),
        });
    }
    out
}

#[allow(clippy::type_complexity)] // the column list is the SQL signature
#[pg_extern(volatile, parallel_safe)]
fn pg_twofactor_rules() -> TableIterator<
    'static,
    (
        name!(line_number, Option<i32>),
        name!(type, Option<String>),
        name!(database, Option<Vec<String>>),
        name!(user_name, Option<Vec<String>>),
        name!(address, Option<String>),
        name!(netmask, Option<String>),
        name!(auth_method, Option<String>),
        name!(options, Option<Vec<String>>),
        name!(error, Option<String>),
    ),
> {
    TableIterator::new(rows())
}

extension_sql!(
    r#"
CREATE VIEW pg_twofactor_rules AS SELECT * FROM pg_twofactor_rules();
COMMENT ON VIEW pg_twofactor_rules IS 'The pg_twofactor rules file as it is on disk now, with errors; like pg_hba_file_rules';
REVOKE ALL ON FUNCTION pg_twofactor_rules() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_twofactor_rules() TO pg_read_all_settings;
REVOKE ALL ON pg_twofactor_rules FROM PUBLIC;
GRANT SELECT ON pg_twofactor_rules TO pg_read_all_settings;
"#,
    name = "rules_view",
    requires = [pg_twofactor_rules]
);
