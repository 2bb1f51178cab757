//! Durations on the command line, as k6 and most load tools take them:
//! `500ms`, `10s`, `2m`, `1h`, `1m30s`, `1.5s`; a bare number is seconds,
//! so `--duration 5` and `--duration 0.5` mean what they always meant.

use std::time::Duration;

/// The forms an error message names.
const FORMS: &str = "expected seconds (5, 0.5) or a number with units (500ms, 10s, 2m, 1h, 1m30s)";

/// Parses a duration flag's value.
///
/// ```
/// use std::time::Duration;
/// use uringws_load::duration::parse;
///
/// assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
/// assert!(parse("5 parsecs").is_err());
/// ```
pub fn parse(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    // Bare numbers first: humantime wants a unit on every number, and
    // scripts pass plain seconds (Python's str(5.0) is "5.0").
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("must be a non-negative, finite duration: {FORMS}"));
    }
    if value.starts_with('-') {
        return Err(format!("must be a non-negative duration: {FORMS}"));
    }
    humantime::parse_duration(value).map_err(|e| format!("{e}; {FORMS}"))
}

/// [`parse`], for how often a progress line comes: its figures are kept
/// per second, so a shorter interval could only repeat them.
pub fn parse_at_least_a_second(value: &str) -> Result<Duration, String> {
    let duration = parse(value)?;
    if duration < Duration::from_secs(1) {
        return Err("must be at least 1s: the figures behind it are per second".into());
    }
    Ok(duration)
}

/// Seconds as a JSON number, for a report's copy of the options.
pub fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("2m", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("1m30s", ms(90_000)),
            ("1m 30s", ms(90_000)),
            ("1.5s", ms(1500)),
            ("250us", Duration::from_micros(250)),
            ("5", ms(5000)),
            ("5.0", ms(5000)),
            ("0.5", ms(500)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (" 2s ", ms(2000)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_values_name_the_accepted_forms() {
        for text in [
            "",
            "abc",
            "10 parsecs",
            "-1",
            "-1s",
            "1e400",
            "NaN",
            "inf",
            "s5",
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains("500ms, 10s, 2m, 1h, 1m30s"), "{text:?}: {err}");
        }
    }

    #[test]
    fn progress_interval_is_whole_seconds_at_least() {
        assert_eq!(parse_at_least_a_second("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_at_least_a_second("500ms").is_err());
        assert!(parse_at_least_a_second("0").is_err());
    }
}
