//! What a request will answer: its length and text, fixed before it is queued.
//!
//! Both depend only on `--seed`, the prompt's tokens, the adapter and the request's own `seed`, so a
//! request gets the same answer whatever else the server is doing.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::engine::FinishReason;
use crate::rng::Rng;

const WORDS: &[&str] = &[
    "the",
    "model",
    "serves",
    "tokens",
    "from",
    "a",
    "simulated",
    "GPU",
    "with",
    "cache",
    "blocks",
    "and",
    "every",
    "request",
    "waits",
    "in",
    "queue",
    "until",
    "batch",
    "has",
    "room",
    "for",
    "it",
    "prefix",
    "hits",
    "skip",
    "prefill",
    "time",
    "while",
    "decode",
    "steps",
    "grow",
    "slower",
    "as",
    "more",
    "sequences",
    "run",
    "together",
    "adapters",
    "load",
    "on",
    "demand",
    "evicting",
    "least",
    "recently",
    "used",
    "ones",
    "so",
    "routing",
    "matters",
    "when",
    "load",
    "is",
    "high",
    "gateway",
    "picks",
    "an",
    "endpoint",
    "by",
    "reading",
    "metrics",
    "that",
    "this",
    "server",
    "exports",
    "just",
    "like",
    "vLLM",
    "does",
    "today",
];

/// How long the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    /// `max_tokens` was set: generate exactly this many (finish reason `length`).
    Exactly(usize),
    /// No limit given: draw uniformly from `mean/2 ..= 3·mean/2`, at most `cap` (reason `stop`).
    Sampled { mean: usize, cap: usize },
}

/// The answer of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    /// Text of each output token; the answer is their concatenation.
    pub tokens: Vec<String>,
    /// Why generation ends after the last token.
    pub finish: FinishReason,
}

/// The answer for a prompt.
pub(crate) fn output(
    seed: u64,
    prompt: &[u32],
    adapter: Option<&str>,
    request_seed: Option<i64>,
    length: Length,
) -> Output {
    let mut key = Vec::with_capacity(prompt.len() * 4 + 16);
    for id in prompt {
        key.extend_from_slice(&id.to_le_bytes());
    }
    key.extend_from_slice(adapter.unwrap_or("").as_bytes());
    key.extend_from_slice(&request_seed.unwrap_or(0).to_le_bytes());
    let mut rng = Rng::new(xxh3_64_with_seed(&key, seed));

    let (len, finish) = match length {
        Length::Exactly(n) => (n, FinishReason::Length),
        Length::Sampled { mean, cap } => {
            let drawn = rng.between((mean / 2).max(1), (mean * 3 / 2).max(1));
            if drawn >= cap {
                (cap, FinishReason::Length)
            } else {
                (drawn, FinishReason::Stop)
            }
        }
    };
    let mut tokens = Vec::with_capacity(len);
    let mut capital = true;
    for i in 0..len {
        let roll = rng.below(100);
        let token = if i > 0 && i + 1 < len && roll < 6 && !capital {
            capital = true;
            ".".to_owned()
        } else if i > 0 && i + 1 < len && roll < 10 && !capital {
            ",".to_owned()
        } else {
            let word = WORDS[rng.below(WORDS.len())];
            let word = if capital {
                capital = false;
                capitalize(word)
            } else {
                word.to_owned()
            };
            if i == 0 { word } else { format!(" {word}") }
        };
        tokens.push(token);
    }
    Output { tokens, finish }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_lengths_end_for_length_and_sampled_ones_for_stop() {
        let out = output(1, &[1, 2, 3], None, None, Length::Exactly(5));
        assert_eq!((out.tokens.len(), out.finish), (5, FinishReason::Length));
        let out = output(
            1,
            &[1, 2, 3],
            None,
            None,
            Length::Sampled {
                mean: 100,
                cap: 1000,
            },
        );
        assert!((50..=150).contains(&out.tokens.len()));
        assert_eq!(out.finish, FinishReason::Stop);
        let out = output(
            1,
            &[1, 2, 3],
            None,
            None,
            Length::Sampled { mean: 100, cap: 10 },
        );
        assert_eq!((out.tokens.len(), out.finish), (10, FinishReason::Length));
    }

    #[test]
    fn the_answer_depends_on_seed_prompt_and_adapter_only() {
        let a = output(1, &[1, 2, 3], None, None, Length::Exactly(20));
        assert_eq!(a, output(1, &[1, 2, 3], None, None, Length::Exactly(20)));
        assert_ne!(a, output(2, &[1, 2, 3], None, None, Length::Exactly(20)));
        assert_ne!(a, output(1, &[1, 2, 4], None, None, Length::Exactly(20)));
        assert_ne!(
            a,
            output(1, &[1, 2, 3], Some("x"), None, Length::Exactly(20))
        );
        assert_ne!(a, output(1, &[1, 2, 3], None, Some(9), Length::Exactly(20)));
    }

    #[test]
    fn the_text_reads_like_sentences() {
        let out = output(3, &[9], None, None, Length::Exactly(40));
        let text = out.tokens.concat();
        assert!(text.starts_with(char::is_uppercase), "{text}");
        assert!(!text.starts_with(' '));
    }
}
