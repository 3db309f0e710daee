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
    if let Some(o) = record.as_object_mut() {
        o.remove("_raw");
    }
    normalize_signature(&mut record);
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

/// A SigV4 signature covers the time it was made: the golden file shows its shape (the fake
/// provider has checked the signature itself).
fn normalize_signature(record: &mut serde_json::Value) {
    let Some(headers) = record
        .get_mut("upstream_request")
        .and_then(|r| r.get_mut("headers"))
    else {
        return;
    };
    if let Some(date) = headers.get_mut("x-amz-date") {
        *date = "<yyyymmddThhmmssZ>".into();
    }
    if let Some(auth) = headers.get_mut("authorization")
        && let Some(value) = auth.as_str()
        && value.starts_with("AWS4-HMAC-SHA256 ")
    {
        let mut parts = Vec::new();
        for part in value.split(", ") {
            if part.contains("Signature=") {
                parts.push("Signature=<signature>".to_string());
            } else if let Some((head, scope)) = part.split_once("Credential=") {
                // AKID/date/region/service/aws4_request
                let mut fields: Vec<&str> = scope.split('/').collect();
                if fields.len() > 1 {
                    fields[1] = "<yyyymmdd>";
                }
                parts.push(format!("{head}Credential={}", fields.join("/")));
            } else {
                parts.push(part.to_string());
            }
        }
        *auth = parts.join(", ").into();
    }
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

#[tokio::test]
async fn chat_to_bedrock_is_a_signed_converse_request_and_its_answer_a_chat_completion() {
    check("bedrock_chat").await;
}

#[tokio::test]
async fn system_prompts_and_sampling_become_bedrock_system_and_inference_config() {
    check("bedrock_chat_system").await;
}

#[tokio::test]
async fn multi_turn_chat_keeps_alternating_roles_for_bedrock() {
    check("bedrock_chat_multi_turn").await;
}

#[tokio::test]
async fn tool_calls_and_results_become_tool_use_and_tool_result_blocks_and_back() {
    check("bedrock_chat_tools").await;
}

#[tokio::test]
async fn data_url_images_become_bedrock_image_bytes() {
    check("bedrock_chat_image").await;
}

#[tokio::test]
async fn an_image_url_bedrock_cannot_fetch_is_a_400_before_the_provider() {
    check("bedrock_chat_image_url").await;
}

#[tokio::test]
async fn bedrock_event_stream_split_mid_frame_becomes_openai_chunks_with_usage_hidden() {
    check("bedrock_chat_stream").await;
}

#[tokio::test]
async fn bedrock_stream_of_reasoning_and_tool_use_becomes_tool_call_chunks_with_usage() {
    check("bedrock_chat_stream_tools").await;
}

#[tokio::test]
async fn bedrock_error_type_header_becomes_an_openai_error_with_the_provider_status() {
    check("bedrock_chat_error").await;
}

#[tokio::test]
async fn the_fake_bedrock_refuses_a_signature_that_does_not_cover_what_it_received() {
    let bytes = std::fs::read(testdata().join("in").join("bedrock_chat.json")).expect("read");
    let parsed: Case = serde_json::from_slice(&bytes).expect("parse case");
    let harness = Harness::start().await;
    let record = exchange::run(&harness, &parsed).await;
    let config = golden_config();
    provider_fake::verify(&config, &record).expect("the signed request passes");
    let tampered = [
        ("/_raw/body", serde_json::json!("{\"messages\":[]}")),
        (
            "/_raw/authority",
            serde_json::json!("elsewhere.example.com"),
        ),
        (
            "/upstream_request/path",
            serde_json::json!("/model/other/converse"),
        ),
        (
            "/upstream_request/headers/x-amz-date",
            serde_json::json!("20250603T100000Z"),
        ),
        (
            "/upstream_request/headers/x-amz-security-token",
            serde_json::json!("other"),
        ),
    ];
    for (pointer, value) in tampered {
        let mut changed = record.clone();
        *changed.pointer_mut(pointer).expect(pointer) = value;
        assert!(
            provider_fake::verify(&config, &changed).is_err(),
            "{pointer} changed after signing and the fake still accepted it"
        );
    }
}

#[tokio::test]
async fn aws_anthropic_chat_is_a_signed_invoke_model_request_with_an_anthropic_body() {
    check("aws_anthropic_chat").await;
}

#[tokio::test]
async fn aws_anthropic_chat_streams_decode_base64_chunks_into_openai_chunks() {
    check("aws_anthropic_chat_stream").await;
}

#[tokio::test]
async fn aws_anthropic_chat_errors_keep_the_status_in_openais_shape() {
    check("aws_anthropic_chat_error").await;
}

#[tokio::test]
async fn aws_anthropic_messages_are_rewrapped_and_answered_as_anthropic_would() {
    check("aws_anthropic_messages").await;
}

#[tokio::test]
async fn aws_anthropic_message_streams_become_anthropic_sse() {
    check("aws_anthropic_messages_stream").await;
}

#[tokio::test]
async fn aws_anthropic_message_errors_take_anthropics_shape() {
    check("aws_anthropic_messages_error").await;
}

#[tokio::test]
async fn anthropic_messages_reach_an_openai_backend_as_chat_completions() {
    check("messages_to_openai").await;
}

#[tokio::test]
async fn openai_chunks_stream_back_as_anthropic_events() {
    check("messages_to_openai_stream").await;
}

#[tokio::test]
async fn anthropic_tools_and_tool_use_map_to_openai_functions() {
    check("messages_to_openai_tools").await;
}

#[tokio::test]
async fn anthropic_image_blocks_become_data_urls() {
    check("messages_to_openai_image").await;
}

#[tokio::test]
async fn openai_errors_reach_anthropic_clients_in_their_shape() {
    check("messages_to_openai_error").await;
}

#[tokio::test]
async fn vertex_chat_is_generate_content_with_a_minted_token() {
    check("vertex_chat").await;
}

#[tokio::test]
async fn vertex_multi_turn_chat_alternates_user_and_model() {
    check("vertex_chat_multi_turn").await;
}

#[tokio::test]
async fn vertex_images_go_inline_or_by_file_uri() {
    check("vertex_chat_image").await;
}

#[tokio::test]
async fn vertex_function_calls_become_tool_calls() {
    check("vertex_chat_tools").await;
}

#[tokio::test]
async fn vertex_streams_become_openai_chunks() {
    check("vertex_chat_stream").await;
}

#[tokio::test]
async fn vertex_streamed_function_calls_end_with_usage() {
    check("vertex_chat_stream_tools").await;
}

#[tokio::test]
async fn vertex_errors_keep_their_status_in_openais_shape() {
    check("vertex_chat_error").await;
}

#[tokio::test]
async fn vertex_embeddings_are_predict_instances() {
    check("vertex_embeddings").await;
}

#[tokio::test]
async fn claude_on_vertex_is_raw_predict() {
    check("vertex_anthropic_chat").await;
}

#[tokio::test]
async fn a_gzip_encoded_provider_stream_translates_as_the_plain_one() {
    check("anthropic_chat_stream_gzip").await;
    let client = |case: &str| {
        let text = std::fs::read_to_string(testdata().join("out").join(format!("{case}.json")))
            .expect("golden");
        let record: serde_json::Value = serde_json::from_str(&text).expect("json");
        (
            record["client_response"]["body"]
                .as_array()
                .map(|chunks| chunks.iter().filter_map(|c| c.as_str()).collect::<String>()),
            record["client_response"]["headers"]
                .get("content-encoding")
                .cloned(),
        )
    };
    let (gzip_body, encoding) = client("anthropic_chat_stream_gzip");
    assert_eq!(gzip_body, client("anthropic_chat_stream").0);
    assert_eq!(encoding, None, "the client gets the stream decoded");
}

#[tokio::test]
async fn azure_tool_calls_pass_through_the_deployment_path() {
    check("azure_chat_tools").await;
}

#[tokio::test]
async fn azure_streams_pass_through_the_deployment_path() {
    check("azure_chat_stream").await;
}

#[tokio::test]
async fn azure_streamed_tool_calls_keep_the_asked_usage() {
    check("azure_chat_stream_tools").await;
}

#[tokio::test]
async fn aws_anthropic_tools_become_tool_use_and_back() {
    check("aws_anthropic_chat_tools").await;
}

#[tokio::test]
async fn aws_anthropic_streamed_tool_use_becomes_tool_call_deltas() {
    check("aws_anthropic_chat_stream_tools").await;
}

#[tokio::test]
async fn claude_on_vertex_streams_are_stream_raw_predict() {
    check("vertex_anthropic_chat_stream").await;
}

#[tokio::test]
async fn claude_on_vertex_takes_tools() {
    check("vertex_anthropic_chat_tools").await;
}

#[tokio::test]
async fn claude_on_vertex_takes_system_prompts() {
    check("vertex_anthropic_chat_system").await;
}

#[tokio::test]
async fn anthropic_messages_reach_claude_on_vertex_rewrapped() {
    check("vertex_anthropic_messages").await;
}

#[tokio::test]
async fn anthropic_message_streams_from_vertex_pass_as_they_are() {
    check("vertex_anthropic_messages_stream").await;
}

#[tokio::test]
async fn claude_on_bedrock_keeps_multi_turn_roles() {
    check("aws_anthropic_chat_multi_turn").await;
}

#[tokio::test]
async fn claude_on_bedrock_takes_images() {
    check("aws_anthropic_chat_image").await;
}

#[tokio::test]
async fn an_image_url_claude_on_bedrock_cannot_fetch_is_a_400_before_the_provider() {
    check("aws_anthropic_chat_image_url").await;
}
