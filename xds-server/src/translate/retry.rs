//! `BackendTrafficPolicy.spec.retry` → the retry policy of the routes the policy targets.
//!
//! With it, a provider that answers with an error (a 503 from Bedrock, a 429) can be retried
//! on the next priority's backend; without it, only what never reached an upstream is retried
//! (see `build::route`). Each attempt runs the upstream leg again, so a request failing over
//! from one provider to another is translated afresh for the second.

use std::collections::BTreeMap;
use std::time::Duration;

use infergate_crds::envoy_gateway::{Retry, RetryTrigger};

use super::Cx;
use super::duration;
use super::ir::RetryIr;
use super::rate_limit::{Target, resolve_targets};
use crate::object::ObjectKey;
use crate::status::{Condition, reason};

/// Envoy Gateway's retry when a policy has `retry: {}`: two retries on connection failures,
/// refused streams, gRPC UNAVAILABLE/CANCELLED and HTTP 503.
const DEFAULT_NUM_RETRIES: u32 = 2;
const DEFAULT_TRIGGERS: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const DEFAULT_STATUS_CODES: &[u32] = &[503];

/// The compiled retry policies, by what they target.
#[derive(Debug, Default)]
pub struct Retries {
    routes: BTreeMap<ObjectKey, RetryIr>,
    /// By Gateway: for one listener (`sectionName`) or, with `None`, all of them.
    gateways: BTreeMap<ObjectKey, Vec<(Option<String>, RetryIr)>>,
}

impl Retries {
    /// The retry of a route placed on `listener` of `gateway`: a policy on the route wins over
    /// one on its Gateway.
    pub fn for_placement(
        &self,
        route: &ObjectKey,
        gateway: &ObjectKey,
        listener: &str,
    ) -> Option<RetryIr> {
        if let Some(retry) = self.routes.get(route) {
            return Some(retry.clone());
        }
        let listeners = self.gateways.get(gateway)?;
        // A listener's own policy wins over the Gateway-wide one.
        listeners
            .iter()
            .find(|(section, _)| section.as_deref() == Some(listener))
            .or_else(|| listeners.iter().find(|(section, _)| section.is_none()))
            .map(|(_, retry)| retry.clone())
    }
}

pub fn compile(cx: &mut Cx<'_>) -> Retries {
    let snapshot = cx.snapshot;
    let mut out = Retries::default();
    for (key, policy) in snapshot.backend_traffic_policies() {
        let spec = &policy.spec;
        let Some(retry) = &spec.retry else {
            continue;
        };
        let compiled = match compile_retry(retry) {
            Ok(compiled) => compiled,
            Err(message) => {
                cx.status.push(
                    key,
                    Condition::fail(reason::ACCEPTED, reason::INVALID, message).scoped("retry"),
                );
                continue;
            }
        };
        // The rate limit compiler reports bad targets when it resolves them too.
        let reported_there = spec.rate_limit.as_ref().is_some_and(|r| r.global.is_some())
            && cx.options.ratelimit.is_some();
        let refs = spec.target_ref.iter().chain(&spec.target_refs);
        let targets = resolve_targets(cx, key, refs, !reported_there);
        if !targets.is_empty() {
            let message = format!(
                "retry on {} ({} retries) applied to {} target(s)",
                compiled.retry_on,
                compiled.num_retries,
                targets.len()
            );
            cx.status.push(
                key,
                Condition::ok(reason::ACCEPTED, reason::ACCEPTED, message).scoped("retry"),
            );
        }
        for target in targets {
            match target {
                Target::Route(route) => {
                    out.routes.entry(route).or_insert_with(|| compiled.clone());
                }
                Target::Gateway(gateway, section) => out
                    .gateways
                    .entry(gateway)
                    .or_default()
                    .push((section, compiled.clone())),
            }
        }
    }
    out
}

fn compile_retry(retry: &Retry) -> Result<RetryIr, String> {
    let num_retries = match retry.num_retries {
        None => DEFAULT_NUM_RETRIES,
        Some(n) => u32::try_from(n).map_err(|_| format!("numRetries {n} is negative"))?,
    };
    let attempts_per_priority = match retry.num_attempts_per_priority {
        None => None,
        Some(n) if n >= 1 => u32::try_from(n).ok(),
        Some(n) => return Err(format!("numAttemptsPerPriority {n} must be at least 1")),
    };
    let (retry_on, status_codes) = match &retry.retry_on {
        None => (DEFAULT_TRIGGERS.to_string(), DEFAULT_STATUS_CODES.to_vec()),
        Some(on) => {
            let mut triggers: Vec<&str> = on.triggers.iter().map(|t| trigger(*t)).collect();
            if let Some(bad) = on
                .http_status_codes
                .iter()
                .find(|c| !(100..=599).contains(*c))
            {
                return Err(format!("httpStatusCodes: {bad} is not an HTTP status"));
            }
            // Listing codes means retrying on them, as Envoy Gateway reads it.
            if !on.http_status_codes.is_empty() && !triggers.contains(&"retriable-status-codes") {
                triggers.push("retriable-status-codes");
            }
            if triggers.is_empty() {
                return Err("retryOn lists neither triggers nor httpStatusCodes".into());
            }
            triggers.dedup();
            let codes = on.http_status_codes.iter().map(|&c| u32::from(c)).collect();
            (triggers.join(","), codes)
        }
    };
    let per_retry = retry.per_retry.as_ref();
    let parse = |field: &str, text: &Option<String>| -> Result<Option<Duration>, String> {
        text.as_deref()
            .map(|t| {
                duration::parse(t)
                    .ok_or_else(|| format!("perRetry.{field} {t:?} is not a duration"))
            })
            .transpose()
    };
    let per_try_timeout = parse("timeout", &per_retry.and_then(|p| p.timeout.clone()))?;
    let back_off = per_retry.and_then(|p| p.back_off.as_ref());
    let base = parse(
        "backOff.baseInterval",
        &back_off.and_then(|b| b.base_interval.clone()),
    )?;
    let max = parse(
        "backOff.maxInterval",
        &back_off.and_then(|b| b.max_interval.clone()),
    )?;
    if let (Some(base), Some(max)) = (base, max)
        && max < base
    {
        return Err("perRetry.backOff.maxInterval is below baseInterval".into());
    }
    if base.is_some_and(|b| b.is_zero()) {
        return Err("perRetry.backOff.baseInterval must be above zero".into());
    }
    Ok(RetryIr {
        retry_on,
        num_retries,
        status_codes,
        per_try_timeout,
        back_off: base.map(|base| (base, max)),
        attempts_per_priority,
    })
}

/// The Envoy `retry_on` name of a trigger.
fn trigger(t: RetryTrigger) -> &'static str {
    match t {
        RetryTrigger::Error5xx => "5xx",
        RetryTrigger::GatewayError => "gateway-error",
        RetryTrigger::Reset => "reset",
        RetryTrigger::ResetBeforeRequest => "reset-before-request",
        RetryTrigger::ConnectFailure => "connect-failure",
        RetryTrigger::Retriable4xx => "retriable-4xx",
        RetryTrigger::RefusedStream => "refused-stream",
        RetryTrigger::RetriableStatusCodes => "retriable-status-codes",
        RetryTrigger::Cancelled => "cancelled",
        RetryTrigger::DeadlineExceeded => "deadline-exceeded",
        RetryTrigger::Internal => "internal",
        RetryTrigger::ResourceExhausted => "resource-exhausted",
        RetryTrigger::Unavailable => "unavailable",
    }
}

#[cfg(test)]
mod tests {
    use infergate_crds::envoy_gateway::{BackOffPolicy, PerRetryPolicy, RetryOn};

    use super::*;

    #[test]
    fn status_codes_imply_their_trigger_and_durations_parse() {
        let retry = Retry {
            num_retries: Some(3),
            retry_on: Some(RetryOn {
                triggers: vec![RetryTrigger::ConnectFailure],
                http_status_codes: vec![500, 503],
            }),
            per_retry: Some(PerRetryPolicy {
                timeout: Some("10s".into()),
                back_off: Some(BackOffPolicy {
                    base_interval: Some("100ms".into()),
                    max_interval: Some("1s".into()),
                }),
            }),
            ..Retry::default()
        };
        let ir = compile_retry(&retry).expect("valid");
        assert_eq!(ir.retry_on, "connect-failure,retriable-status-codes");
        assert_eq!(ir.status_codes, [500, 503]);
        assert_eq!(ir.num_retries, 3);
        assert_eq!(ir.per_try_timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            ir.back_off,
            Some((Duration::from_millis(100), Some(Duration::from_secs(1))))
        );
    }

    #[test]
    fn an_empty_retry_gets_envoy_gateways_defaults_and_bad_values_are_errors() {
        let ir = compile_retry(&Retry::default()).expect("valid");
        assert_eq!(ir.retry_on, DEFAULT_TRIGGERS);
        assert_eq!(ir.status_codes, [503]);
        assert_eq!(ir.num_retries, 2);
        let bad = |retry: Retry| compile_retry(&retry).expect_err("invalid");
        assert!(
            bad(Retry {
                num_retries: Some(-1),
                ..Retry::default()
            })
            .contains("negative")
        );
        let codes = Retry {
            retry_on: Some(RetryOn {
                triggers: vec![],
                http_status_codes: vec![999],
            }),
            ..Retry::default()
        };
        assert!(bad(codes).contains("999"));
        let slow = Retry {
            per_retry: Some(PerRetryPolicy {
                timeout: Some("soon".into()),
                back_off: None,
            }),
            ..Retry::default()
        };
        assert!(bad(slow).contains("soon"));
    }
}
