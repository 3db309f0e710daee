//! Which backend, route and rule an upstream attempt is for.
//!
//! Envoy tells the extproc through the request (upstream leg) or response (router leg)
//! attributes it lists: the chosen host's metadata, which the xds-server writes under
//! `infergate.backend`. Tests without Envoy may name the backend in headers instead, when the
//! server trusts them (the router leg always strips client-sent copies).

use std::collections::HashMap;

use envoy_types::pb::google::protobuf::Struct;

use crate::envoy::{Headers, struct_string, struct_struct};
use crate::keys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `namespace/name` of the backend.
    pub backend: String,
    pub route: Option<String>,
    pub rule: Option<usize>,
}

impl Target {
    /// From `ProcessingRequest.attributes`, either as the three host-metadata paths or as the
    /// whole `xds.upstream_host_metadata`.
    pub fn from_attributes(attributes: &HashMap<String, Struct>) -> Option<Target> {
        let attrs = attributes.get(keys::EXT_PROC_ATTRIBUTES_KEY)?;
        if let Some(backend) = struct_string(attrs, keys::ATTR_HOST_BACKEND) {
            return Some(Target {
                backend,
                route: struct_string(attrs, keys::ATTR_HOST_ROUTE),
                rule: struct_string(attrs, keys::ATTR_HOST_RULE).and_then(|r| parse_rule(&r)),
            });
        }
        if let Some(ours) = struct_struct(attrs, keys::ATTR_HOST_METADATA)
            .and_then(|m| struct_struct(m, "filter_metadata"))
            .and_then(|f| struct_struct(f, keys::BACKEND_METADATA_NAMESPACE))
        {
            return Some(Target {
                backend: struct_string(ours, keys::BACKEND_METADATA_NAME)?,
                route: struct_string(ours, keys::BACKEND_METADATA_ROUTE),
                rule: struct_string(ours, keys::BACKEND_METADATA_RULE).and_then(|r| parse_rule(&r)),
            });
        }
        // Envoy prints a whole message attribute as protobuf text (`ShortDebugString`).
        struct_string(attrs, keys::ATTR_HOST_METADATA).and_then(|text| from_text_proto(&text))
    }

    /// From the internal headers ([`keys::BACKEND_HEADER`] and friends).
    pub fn from_headers(headers: &Headers) -> Option<Target> {
        let backend = headers.get(keys::BACKEND_HEADER)?.trim();
        if backend.is_empty() {
            return None;
        }
        Some(Target {
            backend: backend.to_string(),
            route: headers
                .get(keys::ROUTE_HEADER)
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty()),
            rule: headers.get(keys::RULE_HEADER).and_then(parse_rule),
        })
    }
}

/// Reads our namespace out of `Metadata` in protobuf text format:
/// `filter_metadata { key: "infergate.backend" value { fields { key: "backend" value {
/// string_value: "ns/name" } } ... } }`.
fn from_text_proto(text: &str) -> Option<Target> {
    let marker = format!("key: \"{}\"", keys::BACKEND_METADATA_NAMESPACE);
    let start = text.find(&marker)? + marker.len();
    let block = balanced_block(&text[start..])?;
    let field = |name: &str| {
        let key = format!("key: \"{name}\"");
        let at = block.find(&key)? + key.len();
        let value = balanced_block(&block[at..])?;
        if let Some(i) = value.find("string_value: \"") {
            return quoted(&value[i + "string_value: ".len()..]);
        }
        let i = value.find("number_value: ")?;
        let n = value[i + "number_value: ".len()..]
            .split(|c: char| c.is_whitespace() || c == '}')
            .next()?;
        Some(n.to_string())
    };
    Some(Target {
        backend: field(keys::BACKEND_METADATA_NAME)?,
        route: field(keys::BACKEND_METADATA_ROUTE),
        rule: field(keys::BACKEND_METADATA_RULE).and_then(|r| parse_rule(&r)),
    })
}

/// The text inside the first `{ … }` of `s`, skipping braces inside quoted strings.
fn balanced_block(s: &str) -> Option<&str> {
    let open = s.find('{')?;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s[open..].char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The C-escaped string starting at the opening quote of `s`.
fn quoted(s: &str) -> Option<String> {
    let mut chars = s.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// Rule indexes arrive as text (`"1"`), or as a number Envoy formatted (`"1"` from `1.0`).
fn parse_rule(s: &str) -> Option<usize> {
    let s = s.trim();
    s.parse::<usize>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e9)
            .map(|f| f as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::{metadata, string_value};
    use envoy_types::pb::google::protobuf::{Value, value};

    fn attrs(fields: Vec<(&str, Value)>) -> HashMap<String, Struct> {
        HashMap::from([(
            keys::EXT_PROC_ATTRIBUTES_KEY.to_string(),
            Struct {
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            },
        )])
    }

    #[test]
    fn target_is_read_from_host_metadata_paths() {
        let t = Target::from_attributes(&attrs(vec![
            (keys::ATTR_HOST_BACKEND, string_value("default/openai")),
            (keys::ATTR_HOST_ROUTE, string_value("default/chat")),
            (keys::ATTR_HOST_RULE, string_value("2")),
        ]));
        assert_eq!(
            t,
            Some(Target {
                backend: "default/openai".into(),
                route: Some("default/chat".into()),
                rule: Some(2),
            })
        );
    }

    #[test]
    fn target_is_read_from_host_metadata_printed_as_text() {
        let text = r#"filter_metadata { key: "envoy.lb" value { fields { key: "backend" value { string_value: "wrong" } } } } filter_metadata { key: "infergate.backend" value { fields { key: "backend" value { string_value: "default/open\"ai" } } fields { key: "route" value { string_value: "default/chat" } } fields { key: "rule" value { number_value: 1 } } } }"#;
        let t =
            Target::from_attributes(&attrs(vec![(keys::ATTR_HOST_METADATA, string_value(text))]))
                .expect("target");
        assert_eq!(t.backend, "default/open\"ai");
        assert_eq!(t.route.as_deref(), Some("default/chat"));
        assert_eq!(t.rule, Some(1));
    }

    #[test]
    fn target_is_read_from_whole_host_metadata() {
        let inner = metadata(
            keys::BACKEND_METADATA_NAMESPACE,
            vec![
                ("backend".into(), string_value("default/openai")),
                ("rule".into(), string_value("0")),
            ],
        );
        let host = Struct {
            fields: HashMap::from([(
                "filter_metadata".to_string(),
                Value {
                    kind: Some(value::Kind::StructValue(inner)),
                },
            )]),
        };
        let t = Target::from_attributes(&attrs(vec![(
            keys::ATTR_HOST_METADATA,
            Value {
                kind: Some(value::Kind::StructValue(host)),
            },
        )]))
        .expect("target");
        assert_eq!(t.backend, "default/openai");
        assert_eq!(t.rule, Some(0));
        assert_eq!(t.route, None);
    }
}
