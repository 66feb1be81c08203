//! Durations as baton prints them back (`5m`, `4m30s`, `500ms`), in the form the command
//! line's duration flags read.

use std::time::Duration;

/// Prints a duration the way the command line's duration flags read it, largest whole
/// units first (`4m30s`).
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
    fn prints_what_it_reads() {
        for (ms, text) in [
            (300_000, "5m"),
            (270_000, "4m30s"),
            (500, "500ms"),
            (0, "0s"),
        ] {
            assert_eq!(show(Duration::from_millis(ms)), text);
        }
        assert_eq!(show(Duration::from_millis(3_723_000)), "1h2m3s");
    }
}
