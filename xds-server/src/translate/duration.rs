//! Gateway API durations (`1h`, `30s`, `500ms`, `1m30s`; GEP-2257).

use std::time::Duration;

/// Parses a Gateway API duration; `None` if malformed.
pub fn parse(input: &str) -> Option<Duration> {
    if input.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = input;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 || digits > 5 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return None;
        };
        total += unit * u32::try_from(n).ok()?;
        rest = &rest[len..];
        parts += 1;
        if parts > 4 {
            return None;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_api_durations_parse() {
        assert_eq!(parse("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "10d",
            "-1s",
            "123456s",
            "1h1m1s1ms1s",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
