//! `${VAR}` substitution in string values, done after YAML parsing so a value can never change
//! the structure of a document. `$${VAR}` is a literal `${VAR}`.

/// Replaces `${NAME}` in every string of `value` using `lookup`. Returns the names that
/// `lookup` did not know; the value is left untouched where they occur.
pub fn substitute(
    value: &mut serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut missing = Vec::new();
    walk(value, lookup, &mut missing);
    missing.sort();
    missing.dedup();
    missing
}

fn walk(
    value: &mut serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) {
    match value {
        serde_json::Value::String(s) if s.contains('$') => {
            *s = substitute_str(s, lookup, missing);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, lookup, missing)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, lookup, missing)),
        _ => {}
    }
}

fn substitute_str(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(escaped) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = body.find('}') else {
            out.push_str(tail);
            return out;
        };
        let name = &body[..end];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        match (valid, valid.then(|| lookup(name)).flatten()) {
            (true, Some(v)) => out.push_str(&v),
            (true, None) => {
                missing.push(name.to_string());
                out.push_str(&tail[..end + 3]);
            }
            (false, _) => out.push_str(&tail[..end + 3]),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "API_KEY" => Some("sk-123".into()),
            "QUOTE" => Some("a\"b: c".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_in_nested_strings_are_replaced() {
        let mut v = json!({"a": ["x-${API_KEY}-y", {"b": "${API_KEY}"}], "n": 3});
        assert!(substitute(&mut v, &lookup).is_empty());
        assert_eq!(v, json!({"a": ["x-sk-123-y", {"b": "sk-123"}], "n": 3}));
    }

    #[test]
    fn values_with_yaml_syntax_stay_plain_strings() {
        let mut v = json!({"k": "${QUOTE}"});
        substitute(&mut v, &lookup);
        assert_eq!(v, json!({"k": "a\"b: c"}));
    }

    #[test]
    fn unknown_variables_are_reported_and_left_in_place() {
        let mut v = json!({"k": "${NOPE} and ${NOPE} and ${ALSO}"});
        assert_eq!(
            substitute(&mut v, &lookup),
            vec!["ALSO".to_string(), "NOPE".to_string()]
        );
        assert_eq!(v, json!({"k": "${NOPE} and ${NOPE} and ${ALSO}"}));
    }

    #[test]
    fn escapes_and_lone_dollars_are_literal() {
        let mut v = json!({"k": "$${API_KEY} costs $5 ${unterminated"});
        assert!(substitute(&mut v, &lookup).is_empty());
        assert_eq!(v, json!({"k": "${API_KEY} costs $5 ${unterminated"}));
    }
}
