//! Time in Magpie: UTC milliseconds since the epoch in storage, ISO 8601 with offset
//! (`2024-05-01T12:00:00+00:00`, as Mautic) on the API.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `YYYY-MM-DD<between>HH:MM:SS<after>`. Four-digit years are formatted by hand: this runs
/// for every date of every contact in every answer, and chrono parses its format string on
/// each call. Other years go through chrono, which signs them (`+10000`, `-0001`).
fn by_hand(t: DateTime<Utc>, between: char, after: &str) -> String {
    use chrono::Timelike;
    if !(0..=9999).contains(&t.year()) {
        return t
            .format(&format!("%Y-%m-%d{between}%H:%M:%S{after}"))
            .to_string();
    }
    format!(
        "{:04}-{:02}-{:02}{between}{:02}:{:02}:{:02}{after}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2024-05-01T12:00:00+00:00`
pub fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| by_hand(t, 'T', "+00:00"))
        .unwrap_or_default()
}

pub fn iso_opt(ms: Option<i64>) -> serde_json::Value {
    ms.map_or(serde_json::Value::Null, |ms| {
        serde_json::Value::String(iso(ms))
    })
}

/// `2024-05-01 12:00:00` — the storage and display form of datetime fields.
pub fn sql_datetime(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| by_hand(t, ' ', ""))
        .unwrap_or_default()
}

/// Parses the date-time forms API clients send: RFC 3339 (`2024-05-01T12:00:00Z`,
/// with offset or fraction), `2024-05-01 12:00:00`, `2024-05-01 12:00`,
/// `2024-05-01T12:00`, or a bare date (midnight UTC). Values without an offset are UTC.
/// In UTC the moment must fall in the years 0001–9999, which text comparisons (and SQL)
/// order right: `9999-12-31T23:59:59-05:00` would be the year 10000.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let t = match parse_with_offset(s) {
        Some(t) => t.with_timezone(&Utc),
        None => parse_naive(without_utc_suffix(s))?,
    };
    in_range(t.year()).then_some(t)
}

/// The date a date or a date and time names as written, in its own time zone:
/// `1990-02-28T23:30:00-05:00` is the 28th.
pub fn parse_written_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let date = match parse_with_offset(s) {
        Some(t) => t.naive_local().date(),
        None => parse_naive(without_utc_suffix(s))?.date_naive(),
    };
    in_range(date.year()).then_some(date)
}

/// With an offset, as RFC 3339 or as PHP's DATE_ISO8601 (`+0200`) writes it.
fn parse_with_offset(s: &str) -> Option<DateTime<chrono::FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    [
        "%Y-%m-%d %H:%M:%S%:z",
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ]
    .iter()
    .find_map(|format| DateTime::parse_from_str(s, format).ok())
}

/// `2024-05-01 12:00:00 UTC` (or `GMT`) without its zone, which is the default.
fn without_utc_suffix(s: &str) -> &str {
    s.strip_suffix(" UTC")
        .or_else(|| s.strip_suffix(" GMT"))
        .map_or(s, str::trim_end)
}

/// A date and time without an offset, taken as UTC; or a date alone (midnight).
fn parse_naive(s: &str) -> Option<DateTime<Utc>> {
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    parse_date(s).map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)))
}

/// Dates and times are taken in the years 0001–9999 only: four-digit years, which their
/// text (stored, and compared in SQL) orders right.
fn in_range(year: i32) -> bool {
    (1..=9999).contains(&year)
}

/// `YYYY-MM-DD` in the years 0001–9999, as datetimes.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| in_range(d.year()))
}

pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_date_times() {
        let cases = [
            ("2024-05-01T12:00:00+00:00", Some("2024-05-01 12:00:00")),
            ("2024-05-01T14:00:00+02:00", Some("2024-05-01 12:00:00")),
            ("2024-05-01T12:00:00Z", Some("2024-05-01 12:00:00")),
            ("2024-05-01T12:00:00.123Z", Some("2024-05-01 12:00:00")),
            ("2024-05-01 12:00:00", Some("2024-05-01 12:00:00")),
            ("2024-05-01 12:00", Some("2024-05-01 12:00:00")),
            ("2024-05-01", Some("2024-05-01 00:00:00")),
            ("2024-02-30", None),
            ("2024-05-01 25:00:00", None),
            ("2024-05-01T14:00:00+0200", Some("2024-05-01 12:00:00")),
            ("2024-05-01 14:00:00+0200", Some("2024-05-01 12:00:00")),
            ("2024-05-01 12:00:00 UTC", Some("2024-05-01 12:00:00")),
            ("2024-05-01T12:00:00Z UTC", None),
            ("yesterday", None),
            ("", None),
            ("9999-12-31T23:59:59-05:00", None),
            ("9999-12-31T23:59:59Z", Some("9999-12-31 23:59:59")),
            ("0001-01-01T00:30:00+01:00", None),
            ("0001-01-01 00:00:00", Some("0001-01-01 00:00:00")),
            ("0000-06-01", None),
        ];
        for (input, want) in cases {
            let got = parse_datetime(input).map(|t| sql_datetime(t.timestamp_millis()));
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }

    #[test]
    fn formats_iso_with_offset() {
        assert_eq!(iso(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso(1_714_564_800_000), "2024-05-01T12:00:00+00:00");
    }

    /// The hand-made formats are chrono's, outside four-digit years too.
    #[test]
    fn formats_sql_datetimes_as_chrono_does() {
        for ms in [
            0,
            1_714_564_800_999,
            -1,
            -62_135_596_800_000, // 0001-01-01
            253_402_300_799_000, // 9999-12-31 23:59:59
            253_402_300_800_000, // 10000-01-01
            -62_198_755_200_000, // year -1
        ] {
            let chrono = |format: &str| {
                Utc.timestamp_millis_opt(ms)
                    .single()
                    .map(|t| t.format(format).to_string())
                    .unwrap_or_default()
            };
            assert_eq!(sql_datetime(ms), chrono("%Y-%m-%d %H:%M:%S"), "{ms}");
            assert_eq!(iso(ms), chrono("%Y-%m-%dT%H:%M:%S+00:00"), "{ms}");
        }
        assert_eq!(sql_datetime(1_714_564_800_000), "2024-05-01 12:00:00");
    }
}
