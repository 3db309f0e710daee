//! The same seed gives the same answers, whatever the timing.

use inference_sim::SimConfig;

use crate::support::*;

async fn answers(seed: u64) -> Vec<(String, u64)> {
    let sim = start(SimConfig {
        seed,
        output_tokens_mean: 20,
        ..SimConfig::for_tests(0.01)
    })
    .await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let mut out = Vec::new();
    for prompt in ["one", "two", "three"] {
        // No max_tokens: the length is drawn too.
        let (status, body) = post(&url, &chat(prompt, None)).await;
        assert_eq!(status, 200, "{body}");
        out.push((
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["usage"]["completion_tokens"]
                .as_u64()
                .unwrap_or_default(),
        ));
    }
    out
}

#[tokio::test]
async fn the_same_seed_gives_the_same_text_and_lengths() {
    let first = answers(7).await;
    assert_eq!(first, answers(7).await);
    assert_ne!(first, answers(8).await);
    let lengths: Vec<_> = first.iter().map(|(_, n)| *n).collect();
    assert!(lengths.iter().all(|n| (10..=30).contains(n)), "{lengths:?}");
    assert!(
        lengths.windows(2).any(|w| w[0] != w[1]),
        "lengths vary: {lengths:?}"
    );
}
