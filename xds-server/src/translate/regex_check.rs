//! Regular expressions in route matches and rate limit selectors go to Envoy as RE2. One that
//! does not compile would make Envoy reject the whole route configuration (every route of the
//! listener, not just the bad one), so each is checked here first: a match with a bad pattern is
//! left out with a condition on its route, and the rest is served.

use super::Cx;
use super::assemble::RouteModel;
use super::ir::{MatchIr, PathMatchIr, StringMatchIr};
use crate::status::{Condition, reason};

/// Why `pattern` is not a usable regular expression, if it is not. The syntax accepted is
/// RE2's as Rust's `regex-syntax` parses it (no look-around, no backreferences).
pub fn check(pattern: &str) -> Result<(), String> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(|_| ())
        .map_err(|err| {
            format!(
                "regular expression {pattern:?} does not compile: {}",
                first_line(&err.to_string())
            )
        })
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// The first bad pattern of a match, described.
fn bad_pattern(m: &MatchIr) -> Option<String> {
    let mut patterns = Vec::new();
    if let PathMatchIr::Regex(p) = &m.path {
        patterns.push(("path", p));
    }
    for h in &m.headers {
        if let StringMatchIr::Regex(p) = &h.value {
            patterns.push(("header", p));
        }
    }
    for q in &m.query {
        if let StringMatchIr::Regex(p) = &q.value {
            patterns.push(("query parameter", p));
        }
    }
    patterns
        .into_iter()
        .find_map(|(what, p)| check(p).err().map(|e| format!("{what} match: {e}")))
}

/// Drops every route match with a bad pattern, with an `Accepted=False` condition naming it.
pub fn drop_bad_matches(cx: &mut Cx<'_>, routes: &mut [RouteModel]) {
    for route in routes.iter_mut() {
        let key = route.key.clone();
        route.rules.retain(|rule| match bad_pattern(&rule.matcher) {
            None => true,
            Some(message) => {
                let scope = rule.name.rsplit_once("/rule/").map_or_else(
                    || rule.name.clone(),
                    |(_, rest)| format!("rule {}", rest.replace("/match/", " match ")),
                );
                cx.status.push(
                    &key,
                    Condition::fail(
                        reason::ACCEPTED,
                        reason::UNSUPPORTED_VALUE,
                        format!("{message}; this match is not served"),
                    )
                    .scoped(scope),
                );
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_patterns() {
        assert!(check("^/v1/(chat|embeddings)/.*$").is_ok());
        assert!(check("gpt-4o.*").is_ok());
        let err = check("gpt-(4o").expect_err("unclosed group");
        assert!(err.contains("gpt-(4o"), "{err}");
        assert!(check("(?<=x)y").is_err(), "look-behind is not RE2");
    }
}
