//! A `RateLimitDescriptor` as Envoy sends it → a typed [`Descriptor`].
//!
//! Policy: a descriptor we cannot read (no rule, a malformed limit, an unknown mode) is a
//! condition on that descriptor, never a failed request: the caller answers it OK with no limit
//! and counts it (see [`Invalid::reason`]). Nothing here panics on input.

use std::fmt;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use xxhash_rust::xxh3::Xxh3;

use crate::keys;
use crate::window::{Unit, UnknownUnit};

/// One descriptor, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The opaque rule id (`default/my-policy/0`), reported as the limit's name.
    pub rule: String,
    pub limit: Limit,
    pub mode: Mode,
    /// Counted and reported, never OVER_LIMIT.
    pub shadow: bool,
    /// What this descriptor adds (Envoy's rule: descriptor's, else the request's, else 1).
    pub hits: u64,
    /// Domain + rule + selector entries, hashed: the counter this descriptor updates.
    pub key: CounterKey,
}

/// `<requests>/<unit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u64,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Over if `used + hits > limit`.
    Plain,
    /// Over if `used >= limit` (the budget is spent); else adds the estimate.
    Reserve,
    /// Replaces an earlier reservation with the real usage; never over.
    Settle(Reservation),
}

/// What a settle says was reserved at request time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// `amount` reserved at Unix second `at`.
    At { amount: u64, at: u64 },
    /// `infergate.reserved` missing or malformed: the hits are added as a plain count, and the
    /// descriptor is counted as invalid.
    Malformed,
}

impl Mode {
    /// Label for metrics.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Reserve => keys::MODE_RESERVE,
            Mode::Settle(_) => keys::MODE_SETTLE,
        }
    }
}

/// The counter of a descriptor: xxh3-128 of the domain, the rule id and every selector entry in
/// order. The limit, mode, shadow flag and reservation are not part of it, so changing a limit
/// keeps the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey(pub u128);

impl fmt::Display for CounterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Why a descriptor is answered OK without being counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("descriptor has no {} entry", keys::RULE)]
    MissingRule,
    #[error("descriptor {rule:?} has no {} entry", keys::LIMIT)]
    MissingLimit { rule: String },
    #[error(
        "descriptor {rule:?}: {} {value:?} is not <requests>/<unit>",
        keys::LIMIT
    )]
    BadLimit { rule: String, value: String },
    #[error("descriptor {rule:?}: {}: {source}", keys::LIMIT)]
    BadUnit {
        rule: String,
        #[source]
        source: UnknownUnit,
    },
    #[error(
        "descriptor {rule:?}: {} {value:?} is not reserve or settle",
        keys::MODE
    )]
    BadMode { rule: String, value: String },
    #[error("descriptor {rule:?}: {} {value:?} is not true or false", keys::SHADOW)]
    BadShadow { rule: String, value: String },
    #[error("descriptor {rule:?}: entry {key} appears twice")]
    DuplicateEntry { rule: String, key: String },
    #[error("descriptor {rule:?}: negative hits are not supported")]
    NegativeHits { rule: String },
}

impl Invalid {
    /// Label for the `invalid_descriptors` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::MissingRule => "missing_rule",
            Invalid::MissingLimit { .. } => "missing_limit",
            Invalid::BadLimit { .. } | Invalid::BadUnit { .. } => "bad_limit",
            Invalid::BadMode { .. } => "bad_mode",
            Invalid::BadShadow { .. } => "bad_shadow",
            Invalid::DuplicateEntry { .. } => "duplicate_entry",
            Invalid::NegativeHits { .. } => "negative_hits",
        }
    }
}

/// Reason label for a settle whose reservation is missing or malformed (it is still counted).
pub const BAD_RESERVED_REASON: &str = "bad_reserved";

impl Descriptor {
    /// Reads one descriptor of a request for `domain` whose `hits_addend` is `request_hits`.
    pub fn parse(
        domain: &str,
        descriptor: &RateLimitDescriptor,
        request_hits: u32,
    ) -> Result<Descriptor, Invalid> {
        let mut control: [Option<&str>; 5] = [None; 5];
        let mut hasher = Xxh3::new();
        hash_str(&mut hasher, domain);
        let mut selectors = Vec::new();
        for entry in &descriptor.entries {
            match keys::CONTROL_KEYS.iter().position(|k| *k == entry.key) {
                Some(i) => {
                    if control[i].is_some() {
                        return Err(Invalid::DuplicateEntry {
                            rule: control[0].unwrap_or_default().to_owned(),
                            key: entry.key.clone(),
                        });
                    }
                    control[i] = Some(&entry.value);
                }
                None => selectors.push(entry),
            }
        }
        let [rule, limit, mode, shadow, reserved] = control;
        let rule = rule.filter(|r| !r.is_empty()).ok_or(Invalid::MissingRule)?;
        let owned_rule = || rule.to_owned();
        let limit = parse_limit(limit.ok_or_else(|| Invalid::MissingLimit { rule: owned_rule() })?)
            .map_err(|err| err.for_rule(rule))?;
        let mode = match mode {
            None => Mode::Plain,
            Some(keys::MODE_RESERVE) => Mode::Reserve,
            Some(keys::MODE_SETTLE) => Mode::Settle(
                reserved
                    .and_then(parse_reserved)
                    .unwrap_or(Reservation::Malformed),
            ),
            Some(other) => {
                return Err(Invalid::BadMode {
                    rule: owned_rule(),
                    value: other.to_owned(),
                });
            }
        };
        let shadow = match shadow {
            None | Some(keys::SHADOW_FALSE) => false,
            Some(keys::SHADOW_TRUE) => true,
            Some(other) => {
                return Err(Invalid::BadShadow {
                    rule: owned_rule(),
                    value: other.to_owned(),
                });
            }
        };
        if descriptor.is_negative_hits {
            return Err(Invalid::NegativeHits { rule: owned_rule() });
        }
        let hits = match &descriptor.hits_addend {
            Some(hits) => hits.value,
            None if request_hits != 0 => u64::from(request_hits),
            None => 1,
        };
        hash_str(&mut hasher, rule);
        for entry in selectors {
            hash_str(&mut hasher, &entry.key);
            hash_str(&mut hasher, &entry.value);
        }
        Ok(Descriptor {
            rule: owned_rule(),
            limit,
            mode,
            shadow,
            hits,
            key: CounterKey(hasher.digest128()),
        })
    }
}

/// Length-prefixed, so `("ab", "c")` and `("a", "bc")` hash differently.
fn hash_str(hasher: &mut Xxh3, s: &str) {
    hasher.update(&(s.len() as u64).to_le_bytes());
    hasher.update(s.as_bytes());
}

/// A limit error before we know it belongs to a rule.
enum LimitError {
    Shape(String),
    Unit(UnknownUnit),
}

impl LimitError {
    fn for_rule(self, rule: &str) -> Invalid {
        match self {
            LimitError::Shape(value) => Invalid::BadLimit {
                rule: rule.to_owned(),
                value,
            },
            LimitError::Unit(source) => Invalid::BadUnit {
                rule: rule.to_owned(),
                source,
            },
        }
    }
}

fn parse_limit(value: &str) -> Result<Limit, LimitError> {
    let shape = || LimitError::Shape(value.to_owned());
    let (requests, unit) = value.split_once('/').ok_or_else(shape)?;
    let requests = parse_u64(requests).ok_or_else(shape)?;
    let unit = unit.parse::<Unit>().map_err(LimitError::Unit)?;
    Ok(Limit { requests, unit })
}

/// `<n>:<unix_seconds>`.
fn parse_reserved(value: &str) -> Option<Reservation> {
    let (amount, at) = value.split_once(':')?;
    Some(Reservation::At {
        amount: parse_u64(amount)?,
        at: parse_u64(at)?,
    })
}

/// Plain decimal digits only (no sign, no spaces).
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
    use envoy_types::pb::google::protobuf::UInt64Value;

    use super::*;

    fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(key, value)| Entry {
                    key: (*key).to_owned(),
                    value: (*value).to_owned(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn parse(entries: &[(&str, &str)]) -> Result<Descriptor, Invalid> {
        Descriptor::parse("infergate", &descriptor(entries), 0)
    }

    const RULE: (&str, &str) = (keys::RULE, "default/my-policy/0");
    const LIMIT: (&str, &str) = (keys::LIMIT, "1000/minute");
    const USER: (&str, &str) = ("x-user-id", "alice");

    #[test]
    fn a_full_descriptor_parses_into_rule_limit_mode_and_key() {
        let parsed = parse(&[
            RULE,
            USER,
            LIMIT,
            (keys::MODE, "reserve"),
            (keys::SHADOW, "true"),
        ])
        .expect("valid");
        assert_eq!(parsed.rule, "default/my-policy/0");
        assert_eq!(
            parsed.limit,
            Limit {
                requests: 1000,
                unit: Unit::Minute
            }
        );
        assert_eq!(parsed.mode, Mode::Reserve);
        assert!(parsed.shadow);
        assert_eq!(parsed.hits, 1);
        assert_eq!(parsed.key.to_string().len(), 32);
    }

    #[test]
    fn settle_reads_the_reservation() {
        let parsed = parse(&[
            RULE,
            LIMIT,
            (keys::MODE, "settle"),
            (keys::RESERVED, "250:1700000000"),
        ])
        .expect("valid");
        assert_eq!(
            parsed.mode,
            Mode::Settle(Reservation::At {
                amount: 250,
                at: 1_700_000_000
            })
        );
    }

    #[test]
    fn a_bad_or_missing_reservation_is_a_malformed_settle_not_an_invalid_descriptor() {
        for reserved in [
            Some("250"),
            Some("x:1"),
            Some("1:"),
            Some("-1:5"),
            Some(""),
            None,
        ] {
            let mut entries = vec![RULE, LIMIT, (keys::MODE, "settle")];
            if let Some(reserved) = reserved {
                entries.push((keys::RESERVED, reserved));
            }
            let parsed = parse(&entries).expect("counted anyway");
            assert_eq!(
                parsed.mode,
                Mode::Settle(Reservation::Malformed),
                "{reserved:?}"
            );
        }
    }

    #[test]
    fn a_descriptor_without_a_rule_is_invalid() {
        assert_eq!(parse(&[LIMIT, USER]), Err(Invalid::MissingRule));
        assert_eq!(parse(&[(keys::RULE, ""), LIMIT]), Err(Invalid::MissingRule));
        assert_eq!(Invalid::MissingRule.reason(), "missing_rule");
    }

    #[test]
    fn bad_limits_are_invalid() {
        for limit in [
            "",
            "1000",
            "/minute",
            "ten/minute",
            "-5/minute",
            "1 /minute",
        ] {
            let err = parse(&[RULE, (keys::LIMIT, limit)]).expect_err(limit);
            assert!(matches!(err, Invalid::BadLimit { .. }), "{limit}: {err:?}");
            assert_eq!(err.reason(), "bad_limit");
        }
        assert!(matches!(parse(&[RULE]), Err(Invalid::MissingLimit { .. })));
    }

    #[test]
    fn an_unknown_unit_is_invalid() {
        let err = parse(&[RULE, (keys::LIMIT, "10/fortnight")]).expect_err("unit");
        assert!(matches!(err, Invalid::BadUnit { .. }), "{err:?}");
        assert!(err.to_string().contains("fortnight"), "{err}");
    }

    #[test]
    fn unknown_modes_shadow_values_duplicates_and_negative_hits_are_invalid() {
        assert!(matches!(
            parse(&[RULE, LIMIT, (keys::MODE, "refund")]),
            Err(Invalid::BadMode { .. })
        ));
        assert!(matches!(
            parse(&[RULE, LIMIT, (keys::SHADOW, "yes")]),
            Err(Invalid::BadShadow { .. })
        ));
        assert!(matches!(
            parse(&[RULE, LIMIT, LIMIT]),
            Err(Invalid::DuplicateEntry { .. })
        ));
        let mut negative = descriptor(&[RULE, LIMIT]);
        negative.is_negative_hits = true;
        assert!(matches!(
            Descriptor::parse("infergate", &negative, 0),
            Err(Invalid::NegativeHits { .. })
        ));
    }

    #[test]
    fn hits_come_from_the_descriptor_then_the_request_then_one() {
        let mut with_hits = descriptor(&[RULE, LIMIT]);
        with_hits.hits_addend = Some(UInt64Value { value: 42 });
        assert_eq!(
            Descriptor::parse("d", &with_hits, 7).map(|d| d.hits),
            Ok(42)
        );
        with_hits.hits_addend = Some(UInt64Value { value: 0 });
        assert_eq!(Descriptor::parse("d", &with_hits, 7).map(|d| d.hits), Ok(0));
        let plain = descriptor(&[RULE, LIMIT]);
        assert_eq!(Descriptor::parse("d", &plain, 7).map(|d| d.hits), Ok(7));
        assert_eq!(Descriptor::parse("d", &plain, 0).map(|d| d.hits), Ok(1));
    }

    #[test]
    fn the_counter_key_follows_domain_rule_and_selectors_but_not_limit_or_mode() {
        let key = |domain: &str, entries: &[(&str, &str)]| {
            Descriptor::parse(domain, &descriptor(entries), 0)
                .expect("valid")
                .key
        };
        let base = key("infergate", &[RULE, USER, LIMIT]);
        assert_eq!(
            base,
            key(
                "infergate",
                &[
                    RULE,
                    (keys::LIMIT, "5/hour"),
                    USER,
                    (keys::MODE, "reserve"),
                    (keys::SHADOW, "true")
                ]
            )
        );
        assert_ne!(base, key("other", &[RULE, USER, LIMIT]));
        assert_ne!(base, key("infergate", &[RULE, ("x-user-id", "bob"), LIMIT]));
        assert_ne!(
            base,
            key("infergate", &[(keys::RULE, "default/other/0"), USER, LIMIT])
        );
        assert_ne!(
            key("infergate", &[RULE, ("a", "bc"), LIMIT]),
            key("infergate", &[RULE, ("ab", "c"), LIMIT])
        );
        assert_ne!(
            key(
                "infergate",
                &[RULE, USER, ("x-ai-eg-model", "gpt-4o"), LIMIT]
            ),
            key(
                "infergate",
                &[RULE, ("x-ai-eg-model", "gpt-4o"), USER, LIMIT]
            )
        );
    }
}
