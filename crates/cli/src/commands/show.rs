//! How values are shown to people, one way everywhere (the demo, its summary, the
//! report, the commands' tables): counts with their noun, durations, times, ARNs, and
//! lines kept to the terminal's width. JSON keeps the full values.

use std::io::IsTerminal;

/// `1 note`, `2 notes`, `0 notes`; `plural(3, "security-group rule")` →
/// `3 security-group rules`. Nouns ending in s, x, ch or sh take `es`; a consonant
/// and `y`, `ies`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let many = if ["s", "x", "ch", "sh"].iter().any(|e| noun.ends_with(e)) {
        format!("{noun}es")
    } else if let Some(stem) = noun.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{noun}s")
    };
    format!("{n} {many}")
}

/// A duration in seconds as `0.63 s`, `12.6 s`, `125 s`, `3 s`: always the unit after a
/// space; two decimals below 10 s, one below 100 s, none for whole seconds.
pub fn secs(s: f64) -> String {
    if (s * 1000.0).round() % 1000.0 == 0.0 {
        format!("{s:.0} s")
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 100.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// [`secs`] of milliseconds.
pub fn ms(ms: i64) -> String {
    secs(ms as f64 / 1000.0)
}

/// An RFC 3339 time as `2026-12-02 20:55:38 UTC` (to the second); text that is not
/// one is shown as it is.
pub fn when(at: &str) -> String {
    at.parse::<jiff::Timestamp>().map_or_else(
        |_| at.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// An ARN for reading: its resource (after the region and account), with the long hex
/// ids in it cut to 6 characters — `targetgroup/storefront-green/f72edf…`. Not an ARN:
/// unchanged.
pub fn short_arn(arn: &str) -> String {
    let mut parts = arn.splitn(6, ':');
    if parts.next() != Some("arn") {
        return arn.to_string();
    }
    let Some(resource) = parts.nth(4) else {
        return arn.to_string();
    };
    resource
        .split('/')
        .map(|seg| {
            if seg.len() > 8 && seg.chars().all(|c| c.is_ascii_hexdigit()) {
                format!("{}…", &seg[..6])
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The width to keep lines to: the terminal's when stdout is one, else `COLUMNS` when
/// set, else none (a file or a pipe gets whole lines).
pub fn width() -> Option<usize> {
    if std::io::stdout().is_terminal()
        && let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size()
    {
        return Some(usize::from(w));
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w| *w > 20)
}

/// `line` cut to `width` characters, its end replaced by `…` when cut.
pub fn fit(line: &str, width: Option<usize>) -> String {
    match width {
        Some(w) if line.chars().count() > w => {
            let mut s: String = line.chars().take(w.saturating_sub(1)).collect();
            s.push('…');
            s
        }
        _ => line.to_string(),
    }
}

/// `text` word-wrapped to `width` characters (100 when unknown), its first line starting
/// at column `first`, the next ones with `indent`.
pub fn wrap(text: &str, first: usize, indent: &str, width: Option<usize>) -> String {
    let width = width.unwrap_or(100);
    let mut out = String::new();
    let mut col = first;
    for (i, word) in text.split(' ').enumerate() {
        let n = word.chars().count();
        if i > 0 {
            if col + 1 + n > width && col > indent.chars().count() {
                out.push('\n');
                out.push_str(indent);
                col = indent.chars().count();
            } else {
                out.push(' ');
                col += 1;
            }
        }
        out.push_str(word);
        col += n;
    }
    out
}

/// A name for reading: each UUID in it cut to its first 8 characters
/// (`pvc-747a3a33-f873-4157-b1e1-7f82f790d3ef` → `pvc-747a3a33…`).
pub fn short_name(name: &str) -> String {
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < name.len() {
        if name.get(i..i + 36).is_some_and(is_uuid) {
            out.push_str(&name[i..i + 8]);
            out.push('…');
            i += 36;
        } else if let Some(c) = name[i..].chars().next() {
            out.push(c);
            i += c.len_utf8();
        } else {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_plural_only_when_not_one() {
        assert_eq!(plural(1, "note"), "1 note");
        assert_eq!(plural(0, "note"), "0 notes");
        assert_eq!(plural(2, "security-group rule"), "2 security-group rules");
        assert_eq!(plural(3, "match"), "3 matches");
        assert_eq!(plural(2, "policy"), "2 policies");
        assert_eq!(plural(2, "key"), "2 keys");
    }

    #[test]
    fn durations_have_one_form() {
        assert_eq!(secs(0.634), "0.63 s");
        assert_eq!(ms(634), "0.63 s");
        assert_eq!(secs(12.64), "12.6 s");
        assert_eq!(secs(125.2), "125 s");
        assert_eq!(ms(3000), "3 s");
    }

    #[test]
    fn times_are_shown_to_the_second_in_utc() {
        assert_eq!(
            when("2026-12-02T20:55:38.245702003Z"),
            "2026-12-02 20:55:38 UTC"
        );
        assert_eq!(when("not a time"), "not a time");
    }

    #[test]
    fn arns_are_shown_by_their_resource_with_ids_cut() {
        assert_eq!(
            short_arn(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/storefront-green/f72edf034fe26d73"
            ),
            "targetgroup/storefront-green/f72edf…"
        );
        assert_eq!(short_arn("sg-123"), "sg-123");
    }

    #[test]
    fn long_lines_are_cut_or_wrapped_to_the_width() {
        assert_eq!(fit("abcdef", Some(4)), "abc…");
        assert_eq!(fit("abcdef", None), "abcdef");
        assert_eq!(
            wrap("aaaa, bbbb, cccc", 0, "  ", Some(11)),
            "aaaa, bbbb,\n  cccc"
        );
        assert_eq!(
            short_name("PersistentVolume blue/pvc-747a3a33-f873-4157-b1e1-7f82f790d3ef"),
            "PersistentVolume blue/pvc-747a3a33…"
        );
    }
}
