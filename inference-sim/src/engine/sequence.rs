//! One request inside the engine, and what the engine tells its caller.

use crate::kv_cache::BlockHash;

pub(crate) type SeqId = u64;

/// Why a request ended, with vLLM's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinishReason {
    Stop = 0,
    Length = 1,
    Abort = 2,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Abort => "abort",
        }
    }
}

/// What the engine needs to know about a request.
#[derive(Debug, Clone)]
pub(crate) struct SeqSpec {
    pub prompt_len: usize,
    /// Hashes of the prompt's full blocks (see `kv_cache::block_hashes`).
    pub block_hashes: Vec<BlockHash>,
    /// Tokens to generate (≥ 1).
    pub max_output: usize,
    /// Reported when the last token is generated.
    pub finish: FinishReason,
    pub adapter: Option<String>,
}

/// Token counts of a finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
}

/// The engine generated token `index` of request `id`; `done` is set on the last one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Emission {
    pub id: SeqId,
    pub index: usize,
    pub done: Option<(FinishReason, Usage)>,
}

/// A request waiting or running.
#[derive(Debug)]
pub(crate) struct Seq {
    pub id: SeqId,
    pub spec: SeqSpec,
    pub generated: usize,
    /// Tokens whose KV is computed (prompt first, then output).
    pub computed: usize,
    /// The blocks it holds, in order: `Some(hash)` when shared through the prefix cache.
    pub blocks: Vec<Option<BlockHash>>,
    /// Leading prompt blocks already offered to the prefix cache.
    pub registered: usize,
    /// Simulated times (seconds).
    pub arrival: Option<f64>,
    pub scheduled: Option<f64>,
    pub first_token: Option<f64>,
    pub last_token: Option<f64>,
    /// Prefix-cache hit at first admission, in tokens.
    pub cached_tokens: Option<usize>,
}

impl Seq {
    pub fn new(id: SeqId, spec: SeqSpec) -> Self {
        Self {
            id,
            spec,
            generated: 0,
            computed: 0,
            blocks: Vec::new(),
            registered: 0,
            arrival: None,
            scheduled: None,
            first_token: None,
            last_token: None,
            cached_tokens: None,
        }
    }

    /// Prompt plus tokens generated so far.
    pub fn num_tokens(&self) -> usize {
        self.spec.prompt_len + self.generated
    }

    /// Tokens to compute before the next token can be sampled (≥ 1 while not finished).
    pub fn remaining(&self) -> usize {
        self.num_tokens() - self.computed
    }

    pub fn is_finished(&self) -> bool {
        self.generated >= self.spec.max_output
    }

    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.spec.prompt_len,
            completion_tokens: self.generated,
            cached_tokens: self.cached_tokens.unwrap_or(0),
        }
    }
}
