//! Token budget reservations (DESIGN.md §6, ratelimit/README.md).
//!
//! Before the response exists, the router leg writes an estimate of every cost the request can
//! be charged, as `<cost key>.reserve` in `io.envoy.ai_gateway` metadata; the rate limit filter
//! reserves it. When the upstream's response ends, the leg writes the real cost under
//! `<cost key>` and `<cost key>.reserved = <estimate>:<unix seconds>`, and the rate limit
//! service replaces the estimate with the real cost. A response that failed upstream costs 0
//! (the reservation is refunded); one the leg never saw end (a cut stream, a local reply)
//! leaves the estimate charged, never less.
//!
//! The estimates are upper bounds for typical traffic: input tokens as one per
//! [`BYTES_PER_INPUT_TOKEN`] bytes of the request body (JSON syntax included), output tokens as
//! the client's `max_completion_tokens` / `max_tokens`, or [`DEFAULT_OUTPUT_ESTIMATE`].

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::google::protobuf::{Struct, Value};

use crate::api::{Endpoint, ParsedRequest};
use crate::config::RuntimeConfig;
use crate::costs::{CompiledCost, CostInputs};
use crate::envoy;
use crate::keys::{
    AI_GATEWAY_METADATA_NAMESPACE, METADATA_RESERVE_SUFFIX, METADATA_RESERVED_SUFFIX,
};
use crate::usage::TokenUsage;

/// Request body bytes per estimated input token.
pub const BYTES_PER_INPUT_TOKEN: usize = 4;
/// Output tokens reserved when the client sets no limit.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

/// What one request reserved: an estimate per cost key, and when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reservation {
    estimates: BTreeMap<String, u64>,
    at_unix_secs: u64,
}

impl Reservation {
    /// Estimates every cost the routes serving `request.model` define (every costed route's
    /// costs when none lists the model by name, as with regex matches); nothing, without work,
    /// when no route defines costs.
    pub fn estimate(
        config: &RuntimeConfig,
        endpoint: Endpoint,
        request: &ParsedRequest,
        body_len: usize,
    ) -> Reservation {
        let routes = config.costed.for_model(&request.model);
        if routes.is_empty() {
            return Reservation::default();
        }
        let input = body_len.div_ceil(BYTES_PER_INPUT_TOKEN).max(1) as u64;
        let output = match endpoint {
            Endpoint::Embeddings => 0,
            _ => request.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
        };
        let usage = TokenUsage {
            input: Some(input),
            output: Some(output),
            total: Some(input.saturating_add(output)),
            ..TokenUsage::default()
        };
        let mut estimates = BTreeMap::new();
        for route in routes {
            let inputs = CostInputs {
                model: &request.model,
                backend: "",
                route_name: &route.name,
                usage: &usage,
            };
            for cost in &route.costs {
                let value = match &cost.kind {
                    CompiledCost::InputToken
                    | CompiledCost::CachedInputToken
                    | CompiledCost::CacheCreationInputToken => input,
                    CompiledCost::OutputToken | CompiledCost::ReasoningToken => output,
                    CompiledCost::TotalToken => input.saturating_add(output),
                    CompiledCost::Cel(_) => cost
                        .evaluate(&inputs)
                        .unwrap_or(input.saturating_add(output)),
                };
                let slot = estimates.entry(cost.metadata_key.clone()).or_insert(0);
                *slot = (*slot).max(value);
            }
        }
        Reservation {
            estimates,
            at_unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.estimates.is_empty()
    }

    /// `io.envoy.ai_gateway: {<key>.reserve: "<estimate>"}` for the rate limit filter.
    pub fn request_metadata(&self) -> Option<Struct> {
        if self.is_empty() {
            return None;
        }
        let fields = self
            .estimates
            .iter()
            .map(|(key, n)| {
                (
                    format!("{key}{METADATA_RESERVE_SUFFIX}"),
                    envoy::string_value(n.to_string()),
                )
            })
            .collect();
        Some(envoy::metadata(AI_GATEWAY_METADATA_NAMESPACE, fields))
    }

    /// `<key>.reserved = "<estimate>:<unix seconds>"` for each reserved key, for the stream-end
    /// settlement.
    pub fn settle_fields(&self) -> Vec<(String, Value)> {
        self.estimates
            .iter()
            .map(|(key, n)| {
                (
                    format!("{key}{METADATA_RESERVED_SUFFIX}"),
                    envoy::string_value(format!("{n}:{}", self.at_unix_secs)),
                )
            })
            .collect()
    }

    /// The reserved cost keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.estimates.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, CostConfig, CostKind, RouteConfig, RuleConfig};

    fn config(costs: Vec<CostConfig>) -> RuntimeConfig {
        let config = Config {
            routes: vec![RouteConfig {
                name: "default/r".into(),
                rules: vec![RuleConfig {
                    models: vec!["m".into()],
                    ..Default::default()
                }],
                llm_request_costs: costs,
                ..Default::default()
            }],
            ..Default::default()
        };
        config.build().config
    }

    fn cost(key: &str, kind: CostKind, cel: Option<&str>) -> CostConfig {
        CostConfig {
            metadata_key: key.into(),
            kind,
            cel: cel.map(str::to_string),
        }
    }

    fn request(max: Option<u64>) -> ParsedRequest {
        ParsedRequest {
            model: "m".into(),
            stream: false,
            include_usage: false,
            max_output_tokens: max,
        }
    }

    #[test]
    fn estimates_follow_each_cost_kind() {
        let config = config(vec![
            cost("in", CostKind::InputToken, None),
            cost("out", CostKind::OutputToken, None),
            cost("total", CostKind::TotalToken, None),
            cost(
                "cel",
                CostKind::Cel,
                Some("input_tokens + output_tokens * 2u"),
            ),
        ]);
        let r = Reservation::estimate(&config, Endpoint::ChatCompletions, &request(Some(50)), 400);
        assert_eq!(
            r.estimates,
            BTreeMap::from([
                ("in".to_string(), 100),
                ("out".to_string(), 50),
                ("total".to_string(), 150),
                ("cel".to_string(), 200),
            ])
        );
        let fields = r.settle_fields();
        assert_eq!(fields.len(), 4);
        assert!(fields.iter().any(|(k, _)| k == "total.reserved"));
    }

    #[test]
    fn no_output_limit_reserves_the_default_and_embeddings_reserve_none() {
        let config = config(vec![cost("out", CostKind::OutputToken, None)]);
        let r = Reservation::estimate(&config, Endpoint::ChatCompletions, &request(None), 10);
        assert_eq!(r.estimates["out"], DEFAULT_OUTPUT_ESTIMATE);
        let r = Reservation::estimate(&config, Endpoint::Embeddings, &request(None), 10);
        assert_eq!(r.estimates["out"], 0);
    }

    #[test]
    fn a_model_only_a_costless_route_serves_reserves_nothing() {
        let mut config = Config {
            routes: vec![RouteConfig {
                name: "default/r".into(),
                rules: vec![RuleConfig {
                    models: vec!["m".into()],
                    ..Default::default()
                }],
                llm_request_costs: vec![cost("in", CostKind::InputToken, None)],
                ..Default::default()
            }],
            ..Default::default()
        };
        config.routes.push(RouteConfig {
            name: "default/free".into(),
            rules: vec![RuleConfig {
                models: vec!["free".into()],
                ..Default::default()
            }],
            ..Default::default()
        });
        let config = config.build().config;
        let mut free = request(None);
        free.model = "free".into();
        let r = Reservation::estimate(&config, Endpoint::ChatCompletions, &free, 10);
        assert!(r.is_empty(), "{r:?}");
        // A model no route lists by name (a regex match) reserves every costed route's keys.
        let mut other = request(None);
        other.model = "unlisted".into();
        let r = Reservation::estimate(&config, Endpoint::ChatCompletions, &other, 10);
        assert_eq!(r.keys().collect::<Vec<_>>(), vec!["in"]);
    }

    #[test]
    fn a_route_without_costs_reserves_nothing() {
        let config = config(Vec::new());
        let r = Reservation::estimate(&config, Endpoint::ChatCompletions, &request(None), 10);
        assert!(r.is_empty() && r.request_metadata().is_none());
    }
}
