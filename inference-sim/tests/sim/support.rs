//! Helpers: start a sim, talk HTTP to it, read its metrics, wait on conditions.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use inference_sim::{EngineState, Running, SimConfig};
use serde_json::Value;

pub const MODEL: &str = inference_sim::defaults::MODEL;

/// Fails the test if `future` takes longer than a few seconds.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(5), future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

pub async fn start(config: SimConfig) -> Running {
    inference_sim::start(config).await.expect("sim starts")
}

/// Waits until the engine state satisfies `condition`.
pub async fn until(
    sim: &Running,
    what: &str,
    condition: impl FnMut(&EngineState) -> bool,
) -> EngineState {
    within(what, sim.handle().wait_for(condition))
        .await
        .expect("sim running")
}

async fn send(method: &str, url: &str, body: String) -> (u16, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    let response = client.request(request).await.expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

pub async fn post_raw(url: &str, body: &str) -> (u16, Value) {
    let (status, bytes) = send("POST", url, body.to_owned()).await;
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, json)
}

pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, &body.to_string()).await
}

pub async fn get(url: &str) -> (u16, String) {
    let (status, bytes) = send("GET", url, String::new()).await;
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Posts a streaming request; returns the JSON of every `data:` event before `[DONE]`, which must
/// come last.
pub async fn stream(url: &str, body: &Value) -> Vec<Value> {
    let (status, bytes) = send("POST", url, body.to_string()).await;
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(status, 200, "{text}");
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data event: {e:?}"))
        })
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("JSON event"))
        .collect()
}

pub fn chat(content: &str, max_tokens: Option<u32>) -> Value {
    let mut body = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
    });
    if let Some(n) = max_tokens {
        body["max_tokens"] = n.into();
    }
    body
}

/// A prompt of about `words` distinct English-ish words, different per `tag`.
pub fn long_prompt(tag: &str, words: usize) -> String {
    (0..words)
        .map(|i| format!("{tag}{}", i % 997))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One sample of Prometheus text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus text exposition strictly: every sample belongs to a family declared by a
/// `# TYPE` line before it, label values are quoted, values are floats.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP "), "unexpected comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, HashMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                (name, parse_labels(body, line))
            }
        };
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no # TYPE before {line}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

fn parse_labels(body: &str, line: &str) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label in {line}"));
        labels.insert(key.to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The value of the one sample named `name` (any labels).
pub fn metric(samples: &[Sample], name: &str) -> f64 {
    let found: Vec<_> = samples.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "exactly one {name}");
    found[0].value
}

pub async fn metrics(sim: &Running) -> Vec<Sample> {
    let (status, text) = get(&format!("{}/metrics", sim.url())).await;
    assert_eq!(status, 200);
    parse_metrics(&text)
}

/// Labels of the `vllm:lora_requests_info` series with the latest timestamp, as pickers read it.
pub fn latest_lora_info(samples: &[Sample]) -> HashMap<String, String> {
    samples
        .iter()
        .filter(|s| s.name == "vllm:lora_requests_info")
        .max_by(|a, b| a.value.total_cmp(&b.value))
        .map(|s| s.labels.clone())
        .expect("vllm:lora_requests_info")
}
