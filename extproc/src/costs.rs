//! `llmRequestCosts`: the numbers written to `io.envoy.ai_gateway` dynamic metadata at the end
//! of a successful response, for access logs and token rate limits.

mod cel;

use crate::config::{CostConfig, CostKind};

pub use self::cel::{CelProgram, CostInputs};

/// A compiled cost of a route.
#[derive(Debug, Clone)]
pub struct Cost {
    pub metadata_key: String,
    pub kind: CompiledCost,
}

#[derive(Debug, Clone)]
pub enum CompiledCost {
    InputToken,
    CachedInputToken,
    CacheCreationInputToken,
    OutputToken,
    TotalToken,
    ReasoningToken,
    Cel(std::sync::Arc<CelProgram>),
}

impl Cost {
    /// Compiles one entry; the error message names the metadata key and says what is wrong.
    pub fn compile(config: &CostConfig) -> Result<Cost, String> {
        if config.metadata_key.is_empty() {
            return Err("llmRequestCosts: metadataKey is empty".into());
        }
        let key = &config.metadata_key;
        let kind = match config.kind {
            CostKind::InputToken => CompiledCost::InputToken,
            CostKind::CachedInputToken => CompiledCost::CachedInputToken,
            CostKind::CacheCreationInputToken => CompiledCost::CacheCreationInputToken,
            CostKind::OutputToken => CompiledCost::OutputToken,
            CostKind::TotalToken => CompiledCost::TotalToken,
            CostKind::ReasoningToken => CompiledCost::ReasoningToken,
            CostKind::Cel => {
                let Some(expr) = config.cel.as_deref().filter(|e| !e.trim().is_empty()) else {
                    return Err(format!(
                        "llmRequestCosts {key}: type CEL needs a cel expression"
                    ));
                };
                let program = CelProgram::compile(expr)
                    .map_err(|err| format!("llmRequestCosts {key}: {err}"))?;
                CompiledCost::Cel(std::sync::Arc::new(program))
            }
        };
        Ok(Cost {
            metadata_key: config.metadata_key.clone(),
            kind,
        })
    }

    /// The cost of one response. A CEL expression that fails at run time (it passed the check at
    /// load) yields an error naming the key.
    pub fn evaluate(&self, inputs: &CostInputs<'_>) -> Result<u64, String> {
        let usage = inputs.usage;
        Ok(match &self.kind {
            CompiledCost::InputToken => usage.input_tokens(),
            CompiledCost::CachedInputToken => usage.cached_input_tokens(),
            CompiledCost::CacheCreationInputToken => usage.cache_creation_input_tokens(),
            CompiledCost::OutputToken => usage.output_tokens(),
            CompiledCost::TotalToken => usage.total_tokens(),
            CompiledCost::ReasoningToken => usage.reasoning_tokens(),
            CompiledCost::Cel(program) => program
                .evaluate(inputs)
                .map_err(|err| format!("llmRequestCosts {}: {err}", self.metadata_key))?,
        })
    }
}

/// Evaluates every cost; a failing one is logged and left out, the others are still written.
pub fn evaluate_all(costs: &[Cost], inputs: &CostInputs<'_>) -> Vec<(String, u64)> {
    costs
        .iter()
        .filter_map(|cost| match cost.evaluate(inputs) {
            Ok(value) => Some((cost.metadata_key.clone(), value)),
            Err(err) => {
                tracing::warn!(error = %err, "cost not written");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::TokenUsage;

    fn inputs(usage: &TokenUsage) -> CostInputs<'_> {
        CostInputs {
            model: "gpt-4o",
            backend: "default/openai",
            route_name: "default/chat",
            usage,
        }
    }

    fn cost(kind: CostKind, cel: Option<&str>) -> Result<Cost, String> {
        Cost::compile(&CostConfig {
            metadata_key: "k".into(),
            kind,
            cel: cel.map(str::to_string),
        })
    }

    #[test]
    fn token_costs_read_the_matching_counts() {
        let usage = TokenUsage {
            input: Some(10),
            cached_input: Some(4),
            output: Some(5),
            reasoning: Some(2),
            total: Some(15),
            ..TokenUsage::default()
        };
        let read = |kind| cost(kind, None).and_then(|c| c.evaluate(&inputs(&usage)));
        assert_eq!(read(CostKind::InputToken), Ok(10));
        assert_eq!(read(CostKind::CachedInputToken), Ok(4));
        assert_eq!(read(CostKind::OutputToken), Ok(5));
        assert_eq!(read(CostKind::ReasoningToken), Ok(2));
        assert_eq!(read(CostKind::TotalToken), Ok(15));
    }

    #[test]
    fn cel_cost_sees_model_backend_route_and_tokens() {
        let usage = TokenUsage {
            input: Some(10),
            output: Some(5),
            total: Some(15),
            ..TokenUsage::default()
        };
        let c = cost(
            CostKind::Cel,
            Some("model == 'gpt-4o' && backend == 'default/openai' && route_name == 'default/chat' ? input_tokens + output_tokens * uint(3) : uint(0)"),
        )
        .expect("compiles");
        assert_eq!(c.evaluate(&inputs(&usage)), Ok(25));
    }

    #[test]
    fn cel_cost_without_expression_is_rejected() {
        let err = cost(CostKind::Cel, None).expect_err("no expression");
        assert!(err.contains("needs a cel expression"), "{err}");
    }
}
