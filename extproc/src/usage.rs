//! Token usage of one response, in the gateway's own terms (the API modules fill it).

/// Token counts a response reported. `None` means the response did not say, which is not the
/// same as zero for metrics: only reported counts are recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input: Option<u64>,
    pub cached_input: Option<u64>,
    pub cache_creation_input: Option<u64>,
    pub output: Option<u64>,
    pub reasoning: Option<u64>,
    pub total: Option<u64>,
}

impl TokenUsage {
    /// Whether any count was reported.
    pub fn is_reported(&self) -> bool {
        *self != TokenUsage::default()
    }

    /// Takes every count `later` reports, keeping ours where it says nothing (streams report
    /// usage piecewise, e.g. Anthropic's `message_start` then `message_delta`).
    pub fn merge(&mut self, later: TokenUsage) {
        fn take(mine: &mut Option<u64>, theirs: Option<u64>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        take(&mut self.input, later.input);
        take(&mut self.cached_input, later.cached_input);
        take(&mut self.cache_creation_input, later.cache_creation_input);
        take(&mut self.output, later.output);
        take(&mut self.reasoning, later.reasoning);
        take(&mut self.total, later.total);
    }

    pub fn input_tokens(&self) -> u64 {
        self.input.unwrap_or(0)
    }
    pub fn cached_input_tokens(&self) -> u64 {
        self.cached_input.unwrap_or(0)
    }
    pub fn cache_creation_input_tokens(&self) -> u64 {
        self.cache_creation_input.unwrap_or(0)
    }
    pub fn output_tokens(&self) -> u64 {
        self.output.unwrap_or(0)
    }
    pub fn reasoning_tokens(&self) -> u64 {
        self.reasoning.unwrap_or(0)
    }
    /// The reported total, or input + output when the response gives no total (Anthropic).
    pub fn total_tokens(&self) -> u64 {
        self.total
            .unwrap_or_else(|| self.input_tokens().saturating_add(self.output_tokens()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_counts_replace_earlier_ones_and_missing_ones_keep_them() {
        let mut usage = TokenUsage {
            input: Some(10),
            output: Some(1),
            ..TokenUsage::default()
        };
        usage.merge(TokenUsage {
            output: Some(7),
            ..TokenUsage::default()
        });
        assert_eq!(usage.input, Some(10));
        assert_eq!(usage.output, Some(7));
        assert_eq!(usage.total_tokens(), 17);
    }
}
