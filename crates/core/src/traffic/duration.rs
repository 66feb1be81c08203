//! Durations as people type them on the command line (`5m`, `30s`, `500ms`, `1h`) and
//! as baton prints them back.

use std::time::Duration;

/// Parses `<number><unit>…` with units `ms`, `s`, `m`, `h` (`5m`, `4m30s`, `500ms`); a
/// bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: write e.g. 5m, 30s or 500ms");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let (unit, tail) = rest.split_at(letters);
        let scale = match unit {
            "ms" => 1,
            "" | "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(format!(
                    "{text:?} has an unknown unit {unit:?}: use ms, s, m or h (e.g. 5m)"
                ));
            }
        };
        millis = n
            .checked_mul(scale)
            .and_then(|v| millis.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(millis))
}

/// Prints a duration the way [`parse`] reads it, largest whole units first (`4m30s`).
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let s = (ms + 500) / 1_000;
    let (h, m, s) = (s / 3_600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || out.is_empty() {
        out += &format!("{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_units_people_type() {
        let cases = [
            ("5m", 300_000),
            ("30s", 30_000),
            ("500ms", 500),
            ("2h", 7_200_000),
            ("45", 45_000),
            ("0s", 0),
            ("4m30s", 270_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for text in ["", "m", "5 minutes", "1.5s", "-3s", "5d"] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(text.trim()), "{err}");
        }
        assert!(parse("99999999999999999h").is_err());
    }

    #[test]
    fn prints_what_it_reads() {
        for (ms, text) in [
            (300_000, "5m"),
            (270_000, "4m30s"),
            (500, "500ms"),
            (0, "0s"),
        ] {
            assert_eq!(show(Duration::from_millis(ms)), text);
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)));
        }
        assert_eq!(show(Duration::from_millis(3_723_000)), "1h2m3s");
    }
}
