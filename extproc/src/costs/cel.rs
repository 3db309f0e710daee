//! CEL cost expressions, with Envoy AI Gateway's variables and types: `model`, `backend`,
//! `route_name` (string) and `input_tokens`, `cached_input_tokens`,
//! `cache_creation_input_tokens`, `output_tokens`, `total_tokens`, `reasoning_tokens` (uint).
//!
//! The `cel` crate has no static type checker, so an expression is checked at load as Envoy AI
//! Gateway does: it must parse, reference only the variables above, and evaluate to a
//! non-negative int or a uint with every variable at a sample value.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value};

use crate::usage::TokenUsage;

const STRING_VARIABLES: &[&str] = &["model", "backend", "route_name"];
const UINT_VARIABLES: &[&str] = &[
    "input_tokens",
    "cached_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
    "total_tokens",
    "reasoning_tokens",
];

/// The standard environment, built once (building it registers every function).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// What a cost expression can see.
#[derive(Debug, Clone, Copy)]
pub struct CostInputs<'a> {
    /// The model the client asked for (`x-ai-eg-model`).
    pub model: &'a str,
    /// `namespace/name` of the backend that answered.
    pub backend: &'a str,
    /// `namespace/name` of the route.
    pub route_name: &'a str,
    pub usage: &'a TokenUsage,
}

/// A compiled and checked expression.
pub struct CelProgram {
    source: String,
    program: Program,
}

impl std::fmt::Debug for CelProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CelProgram").field(&self.source).finish()
    }
}

impl CelProgram {
    pub fn compile(source: &str) -> Result<CelProgram, String> {
        let program = ENV
            .compile(source)
            .map_err(|err| format!("cel {source:?} does not parse: {err}"))?;
        let unknown: Vec<String> = program
            .references()
            .variables()
            .into_iter()
            .filter(|v| !STRING_VARIABLES.contains(v) && !UINT_VARIABLES.contains(v))
            .map(str::to_string)
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "cel {source:?} uses unknown variable(s) {}; known: {}, {}",
                unknown.join(", "),
                STRING_VARIABLES.join(", "),
                UINT_VARIABLES.join(", ")
            ));
        }
        let compiled = CelProgram {
            source: source.to_string(),
            program,
        };
        let sample = TokenUsage::default();
        compiled
            .evaluate(&CostInputs {
                model: "model",
                backend: "namespace/backend",
                route_name: "namespace/route",
                usage: &sample,
            })
            .map_err(|err| format!("cel {source:?} with sample values: {err}"))?;
        Ok(compiled)
    }

    pub fn evaluate(&self, inputs: &CostInputs<'_>) -> Result<u64, String> {
        let usage = inputs.usage;
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("model", inputs.model);
        context.add_variable_from_value("backend", inputs.backend);
        context.add_variable_from_value("route_name", inputs.route_name);
        for (name, value) in [
            ("input_tokens", usage.input_tokens()),
            ("cached_input_tokens", usage.cached_input_tokens()),
            (
                "cache_creation_input_tokens",
                usage.cache_creation_input_tokens(),
            ),
            ("output_tokens", usage.output_tokens()),
            ("total_tokens", usage.total_tokens()),
            ("reasoning_tokens", usage.reasoning_tokens()),
        ] {
            context.add_variable_from_value(name, Value::UInt(value));
        }
        match self.program.execute(&context) {
            Ok(Value::UInt(v)) => Ok(v),
            Ok(Value::Int(v)) => u64::try_from(v).map_err(|_| format!("result is negative ({v})")),
            Ok(other) => Err(format!(
                "result must be an int or uint, got {:?} (wrap it in uint(...))",
                other.type_of()
            )),
            Err(err) => Err(format!("evaluation failed: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_that_does_not_parse_is_rejected_with_its_text() {
        let err = CelProgram::compile("input_tokens +").expect_err("bad syntax");
        assert!(err.contains("does not parse"), "{err}");
        assert!(err.contains("input_tokens +"), "{err}");
    }

    #[test]
    fn expression_with_an_unknown_variable_is_rejected() {
        let err = CelProgram::compile("prompt_tokens * uint(2)").expect_err("unknown variable");
        assert!(err.contains("unknown variable(s) prompt_tokens"), "{err}");
    }

    #[test]
    fn expression_that_is_not_a_number_is_rejected() {
        let err = CelProgram::compile("model").expect_err("string result");
        assert!(err.contains("must be an int or uint"), "{err}");
    }

    #[test]
    fn negative_result_is_rejected() {
        let err = CelProgram::compile("int(input_tokens) - 1").expect_err("negative");
        assert!(err.contains("negative"), "{err}");
    }
}
