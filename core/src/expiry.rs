//! Dates and the expiry notice of a client certificate (`pg_twofactor.expiry_warning`): the
//! words; the extension's `hooks::expiry` sends them.

/// `unix` seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The client's notice when `not_after` is less than `warn` seconds after `now` (all in
/// seconds since 1970); `None` otherwise or when `warn` is 0.
pub fn notice(not_after: i64, now: i64, warn: i64) -> Option<String> {
    if warn <= 0 || not_after - now >= warn {
        return None;
    }
    let days = (not_after - now).div_euclid(86_400);
    Some(format!(
        "your client certificate expires on {} ({})",
        utc(not_after),
        match days {
            d if d < 0 => "it has expired".to_string(),
            0 => "in less than a day".to_string(),
            1 => "in 1 day".to_string(),
            d => format!("in {d} days"),
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_from_warn_seconds_before_expiry() {
        let (now, day) = (1_000_000_000, 86_400);
        let warn = 30 * day;
        assert_eq!(notice(now + warn, now, warn), None);
        assert!(notice(now + warn - 1, now, warn)
            .unwrap()
            .ends_with("(in 29 days)"));
        assert!(notice(now + 2 * day + 5, now, warn)
            .unwrap()
            .ends_with("(in 2 days)"));
        assert!(notice(now + day, now, warn)
            .unwrap()
            .ends_with("(in 1 day)"));
        assert!(notice(now + 100, now, warn)
            .unwrap()
            .ends_with("(in less than a day)"));
        assert!(notice(now - 10, now, warn)
            .unwrap()
            .ends_with("(it has expired)"));
        assert_eq!(notice(now + 100, now, 0), None);
    }

    #[test]
    fn dates_across_leap_days_centuries_and_eras() {
        // as Python's datetime prints them (an independent calendar)
        for (unix, text) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (-1, "1969-12-31 23:59:59 UTC"),
            (951_868_799, "2000-02-29 23:59:59 UTC"),
            (951_868_800, "2000-03-01 00:00:00 UTC"),
            (-2_203_891_200, "1900-03-01 00:00:00 UTC"),
            (4_107_456_000, "2100-02-28 00:00:00 UTC"),
            (4_107_542_400, "2100-03-01 00:00:00 UTC"),
            (1_709_251_199, "2024-02-29 23:59:59 UTC"),
            (253_402_300_799, "9999-12-31 23:59:59 UTC"),
        ] {
            assert_eq!(utc(unix), text, "{unix}");
        }
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_083_199), "2026-11-30 23:59:59 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn notices_within_the_window_only() {
        let day = 86_400;
        assert_eq!(notice(100 * day, 0, 14 * day), None);
        assert_eq!(notice(14 * day, 0, 14 * day), None);
        assert_eq!(
            notice(3 * day + 5, 0, 14 * day).unwrap(),
            "your client certificate expires on 1970-01-04 00:00:05 UTC (in 3 days)"
        );
        assert!(notice(5, 0, 14 * day)
            .unwrap()
            .ends_with("(in less than a day)"));
        assert!(notice(-5, 0, 14 * day)
            .unwrap()
            .ends_with("(it has expired)"));
        assert_eq!(notice(5, 0, 0), None);
    }
}
