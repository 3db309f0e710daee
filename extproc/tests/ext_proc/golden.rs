//! Golden files: `testdata/in/<case>.json` (client request and upstream reply) →
//! `testdata/out/<case>.json` (what the upstream received, what the client got, the dynamic
//! metadata). `UPDATE_GOLDEN=1 cargo test -p extproc golden` rewrites the outputs.

use super::exchange::{self, Case};
use super::harness::{Harness, golden_config, testdata};
use super::provider_fake;

async fn check(case: &str) {
    let input = testdata().join("in").join(format!("{case}.json"));
    let bytes = std::fs::read(&input).expect("read case");
    let parsed: Case = serde_json::from_slice(&bytes).expect("parse case");
    let harness = Harness::start().await;
    let mut record = exchange::run(&harness, &parsed).await;
    normalize_reservation_times(&mut record);
    if let Err(e) = provider_fake::verify(&golden_config(), &record) {
        panic!("{case}: the provider would refuse the request: {e}");
    }
    let rendered = serde_json::to_string_pretty(&record).expect("render") + "\n";
    let mut outside = record.clone();
    if let Some(o) = outside.as_object_mut() {
        o.remove("upstream_request");
    }
    assert!(
        !outside.to_string().contains("upstream-secret"),
        "{case}: a credential leaked outside the upstream request: {outside}"
    );
    let output = testdata().join("out").join(format!("{case}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&output, &rendered).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&output).unwrap_or_default();
    assert_eq!(
        rendered,
        expected,
        "{case}: output differs from {}; run with UPDATE_GOLDEN=1 and review the diff",
        output.display()
    );
}

/// `<key>.reserved` values are `<estimate>:<unix seconds>`; the seconds change every run.
fn normalize_reservation_times(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key.ends_with(".reserved")
                    && let Some(s) = v.as_str()
                    && let Some((estimate, _)) = s.split_once(':')
                {
                    *v = serde_json::Value::String(format!("{estimate}:<unix seconds>"));
                } else {
                    normalize_reservation_times(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(normalize_reservation_times),
        _ => {}
    }
}

#[tokio::test]
async fn chat_completion_reaches_the_upstream_with_its_key_and_writes_costs() {
    check("chat").await;
}

#[tokio::test]
async fn streamed_chat_asks_for_usage_and_hides_the_usage_chunk_from_the_client() {
    check("chat_stream").await;
}

#[tokio::test]
async fn streamed_chat_that_asked_for_usage_keeps_its_usage_chunk() {
    check("chat_stream_with_usage").await;
}

#[tokio::test]
async fn model_override_and_body_mutation_change_only_what_the_upstream_sees() {
    check("chat_model_override").await;
}

#[tokio::test]
async fn completion_is_routed_and_its_usage_read() {
    check("completions").await;
}

#[tokio::test]
async fn streamed_completion_with_crlf_events_split_between_cr_and_lf_is_read() {
    check("completions_stream").await;
}

#[tokio::test]
async fn embeddings_are_routed_and_their_input_tokens_counted() {
    check("embeddings").await;
}

#[tokio::test]
async fn anthropic_message_goes_to_an_anthropic_backend_with_x_api_key() {
    check("messages").await;
}

#[tokio::test]
async fn streamed_anthropic_message_counts_usage_from_start_and_delta_events() {
    check("messages_stream").await;
}

#[tokio::test]
async fn models_are_listed_from_config_in_openai_shape() {
    check("models").await;
}

#[tokio::test]
async fn anthropic_models_are_listed_in_anthropic_shape() {
    check("anthropic_models").await;
}

#[tokio::test]
async fn backend_without_body_changes_gets_headers_only_and_no_client_key() {
    check("vllm_headers_only").await;
}

#[tokio::test]
async fn upstream_500_with_html_passes_through_untouched_without_costs() {
    check("upstream_500_html").await;
}

#[tokio::test]
async fn stream_cut_before_done_writes_no_costs() {
    check("chat_stream_cut").await;
}

#[tokio::test]
async fn chat_to_anthropic_is_a_messages_request_and_its_answer_a_chat_completion() {
    check("anthropic_chat").await;
}

#[tokio::test]
async fn system_and_developer_prompts_become_system_and_sampling_fields_carry_over() {
    check("anthropic_chat_system").await;
}

#[tokio::test]
async fn multi_turn_chat_keeps_alternating_roles_for_anthropic() {
    check("anthropic_chat_multi_turn").await;
}

#[tokio::test]
async fn tool_calls_and_results_become_tool_use_blocks_and_back() {
    check("anthropic_chat_tools").await;
}

#[tokio::test]
async fn data_url_and_http_images_become_anthropic_image_sources() {
    check("anthropic_chat_image").await;
}

#[tokio::test]
async fn reasoning_effort_becomes_a_thinking_budget_and_thinking_reasoning_content() {
    check("anthropic_chat_thinking").await;
}

#[tokio::test]
async fn anthropic_stream_with_crlf_and_split_events_becomes_openai_chunks_with_usage_hidden() {
    check("anthropic_chat_stream").await;
}

#[tokio::test]
async fn anthropic_stream_of_thinking_and_tool_use_becomes_tool_call_chunks_with_usage() {
    check("anthropic_chat_stream_tools").await;
}

#[tokio::test]
async fn anthropic_error_becomes_an_openai_error_with_the_provider_status() {
    check("anthropic_chat_error").await;
}

#[tokio::test]
async fn chat_anthropic_cannot_express_is_a_400_before_the_provider() {
    check("anthropic_chat_bad_request").await;
}

#[tokio::test]
async fn body_mutation_applies_to_the_translated_body() {
    check("anthropic_chat_body_mutation").await;
}

#[tokio::test]
async fn azure_gets_the_deployment_and_api_version_in_the_path_and_api_key() {
    check("azure_chat").await;
}

#[tokio::test]
async fn azure_embeddings_go_to_the_deployment_embeddings_path() {
    check("azure_embeddings").await;
}
