//! The picker driven in-process as Envoy drives it (tonic client on 127.0.0.1, pods serving
//! fake vLLM metrics on 127.0.0.x), in both body modes.

#[path = "support/envoy.rs"]
mod envoy;
#[path = "support/pods.rs"]
mod pods;

use std::time::Duration;

use envoy::{MODES, Mode, Stream};
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use epp::datastore::{PodSource, PoolInfo};
use epp::director::Objective;
use epp::scheduling::config::EndpointPickerConfig;
use epp::scrape::ScrapeConfig;
use epp::{Config, Running};
use pods::FakePod;

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

#[derive(Default)]
struct Setup {
    picker: Option<&'static str>,
    objectives: Vec<Objective>,
}

/// A picker over `loads.len()` fake pods (waiting, running, kv each), every endpoint scraped.
async fn start(base: u8, loads: &[(u64, u64, f64)], setup: Setup) -> (Running, Vec<FakePod>) {
    let (pods, port) = pods::fake_pods(base, loads.len().max(1)).await;
    let pods: Vec<FakePod> = pods.into_iter().take(loads.len()).collect();
    for (pod, (w, r, kv)) in pods.iter().zip(loads) {
        pod.set_load(*w, *r, *kv);
    }
    let config = Config {
        pool: PoolInfo {
            name: "mistral".to_owned(),
            namespace: "default".to_owned(),
            target_ports: vec![port],
        },
        pods: PodSource::Static(pods.iter().map(FakePod::pod).collect()),
        picker: match setup.picker {
            Some(yaml) => EndpointPickerConfig::from_yaml(yaml).expect("picker config"),
            None => EndpointPickerConfig::default(),
        },
        scrape: ScrapeConfig {
            interval: Duration::from_millis(20),
            ..ScrapeConfig::default()
        },
        objectives: setup.objectives,
        ..Config::for_tests()
    };
    let running = epp::start(config).await.expect("start the picker");
    if !pods.is_empty() {
        scraped(&running).await;
    }
    (running, pods)
}

/// Waits until every endpoint has been scraped since now.
async fn scraped(running: &Running) {
    let before: Vec<u64> = running
        .datastore()
        .status()
        .iter()
        .map(|s| s.good_scrapes)
        .collect();
    tokio::time::timeout(
        envoy::WAIT,
        running.datastore().wait_for(|d| {
            let now = d.status();
            now.len() == before.len()
                && now
                    .iter()
                    .zip(&before)
                    .all(|(s, b)| s.good_scrapes > *b && s.fresh)
        }),
    )
    .await
    .expect("every endpoint scraped");
}

fn addr(pods: &[FakePod], i: usize) -> String {
    pods[i].addr.to_string()
}

#[tokio::test]
async fn normal_pick_sets_header_metadata_and_clears_the_route_cache_in_both_body_modes() {
    let (running, pods) = start(
        11,
        &[(10, 4, 0.5), (0, 1, 0.1), (10, 4, 0.5)],
        Setup::default(),
    )
    .await;
    let body = envoy::chat_body(MODEL, "Say this is a test");
    for mode in MODES {
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        let out = stream.post(envoy::post_headers(&[]), &body, 3).await;
        match mode {
            Mode::Buffered => {
                assert_eq!(out.len(), 2, "{out:?}");
                assert!(
                    matches!(&out[0].response, Some(Response::RequestHeaders(h)) if h.response.is_none()),
                    "headers are continued as they are: {:?}",
                    out[0]
                );
                let pick = envoy::pick_of(&out[1]).expect("the body answer routes");
                assert_eq!(pick.header, addr(&pods, 1));
                assert_eq!(pick.metadata, pick.header);
                assert!(pick.clear_route_cache);
            }
            Mode::FullDuplex => {
                let pick =
                    envoy::pick_of(&out[0]).expect("the headers answer comes first and routes");
                assert_eq!(pick.header, addr(&pods, 1));
                assert_eq!(pick.metadata, pick.header);
                assert!(pick.clear_route_cache);
                assert!(
                    pick.set_headers
                        .contains(&("content-length".to_owned(), body.len().to_string()))
                );
                let echoed: Vec<u8> = out[1..]
                    .iter()
                    .flat_map(|r| envoy::streamed_chunk(r).expect("streamed body").0)
                    .collect();
                assert_eq!(echoed, body, "the body goes on unchanged");
                assert!(
                    envoy::streamed_chunk(out.last().expect("body"))
                        .expect("chunk")
                        .1
                );
            }
        }
    }
    let metrics = envoy::http_get(running.bound().metrics, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "epp_picks_total{{endpoint=\"{}\"}} 2",
            addr(&pods, 1)
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("epp_pick_duration_seconds_count 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn fallback_list_orders_endpoints_by_score() {
    let yaml = r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: max-score-picker
  parameters:
    maxNumOfEndpoints: 3
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
"#;
    let setup = Setup {
        picker: Some(yaml),
        ..Setup::default()
    };
    let (running, pods) = start(11, &[(5, 0, 0.0), (10, 0, 0.0), (0, 0, 0.0)], setup).await;
    let expected = format!("{},{},{}", addr(&pods, 2), addr(&pods, 0), addr(&pods, 1));
    for mode in MODES {
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        let out = stream
            .post(envoy::post_headers(&[]), &envoy::chat_body(MODEL, "hi"), 1)
            .await;
        let pick = out.iter().find_map(envoy::pick_of).expect("a pick");
        assert_eq!(pick.header, expected, "{mode:?}");
        assert_eq!(pick.metadata, expected, "{mode:?}");
    }
}

#[tokio::test]
async fn subset_hint_restricts_the_pick_to_the_listed_endpoints() {
    let (running, pods) = start(
        11,
        &[(0, 0, 0.0), (10, 0, 0.9), (10, 0, 0.9)],
        Setup::default(),
    )
    .await;
    for mode in MODES {
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        let mut headers = envoy::post_headers(&[]);
        headers.metadata_context = Some(envoy::subset_hint(&[addr(&pods, 2)]));
        let out = stream
            .post(headers, &envoy::chat_body(MODEL, "hi"), 1)
            .await;
        let pick = out.iter().find_map(envoy::pick_of).expect("a pick");
        assert_eq!(
            pick.header,
            addr(&pods, 2),
            "{mode:?}: only the hinted endpoint"
        );
    }
}

#[tokio::test]
async fn empty_subset_hint_is_answered_with_503() {
    let (running, _pods) = start(11, &[(0, 0, 0.0), (0, 0, 0.0)], Setup::default()).await;
    for subset in [vec![], vec!["10.9.9.9:8000".to_owned()]] {
        for mode in MODES {
            let mut stream = Stream::open(running.bound().grpc, mode).await;
            let mut headers = envoy::post_headers(&[]);
            headers.metadata_context = Some(envoy::subset_hint(&subset));
            let out = stream
                .post(headers, &envoy::chat_body(MODEL, "hi"), 1)
                .await;
            let (status, body) =
                envoy::immediate_of(out.last().expect("an answer")).expect("an immediate response");
            assert_eq!(status, 503, "{mode:?} {subset:?}: {body}");
            assert!(body.contains("subset"), "{body}");
            stream.expect_end().await;
        }
    }
}

#[tokio::test]
async fn pool_without_ready_pods_is_answered_with_503() {
    let (running, _pods) = start(11, &[], Setup::default()).await;
    for mode in MODES {
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        let out = stream
            .post(envoy::post_headers(&[]), &envoy::chat_body(MODEL, "hi"), 2)
            .await;
        let (status, body) =
            envoy::immediate_of(out.last().expect("an answer")).expect("an immediate response");
        assert_eq!(status, 503, "{mode:?}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
        assert_eq!(json["error"]["code"], "no_ready_endpoint");
    }
    let mut stream = Stream::open(running.bound().grpc, Mode::FullDuplex).await;
    stream.send(envoy::get_headers()).await;
    let (status, _) = envoy::immediate_of(&stream.recv().await).expect("immediate");
    assert_eq!(status, 503, "a GET too");
}

#[tokio::test]
async fn sheddable_request_under_saturation_is_answered_with_429_and_others_still_pass() {
    let setup = Setup {
        objectives: vec![
            Objective {
                name: "batch".to_owned(),
                priority: -1,
            },
            Objective {
                name: "critical".to_owned(),
                priority: 10,
            },
        ],
        ..Setup::default()
    };
    // Every pod over the default queue threshold (5): the pool is saturated.
    let (running, pods) = start(11, &[(9, 8, 0.5), (12, 8, 0.5)], setup).await;
    for mode in MODES {
        // Sheddable by header.
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        let out = stream
            .post(
                envoy::post_headers(&[(epp::keys::OBJECTIVE_HEADER, "batch")]),
                &envoy::chat_body(MODEL, "hi"),
                1,
            )
            .await;
        let (status, body) = envoy::immediate_of(out.last().expect("answer")).expect("immediate");
        assert_eq!(status, 429, "{mode:?}: {body}");
        // Sheddable by model name (the objective is named after the model).
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        let out = stream
            .post(
                envoy::post_headers(&[]),
                &envoy::chat_body("batch", "hi"),
                1,
            )
            .await;
        assert_eq!(
            envoy::immediate_of(out.last().expect("answer")).map(|i| i.0),
            Some(429)
        );
        // Critical and unclassified requests are still picked (the less loaded pod).
        for extra in [vec![(epp::keys::OBJECTIVE_HEADER, "critical")], vec![]] {
            let mut stream = Stream::open(running.bound().grpc, mode).await;
            let out = stream
                .post(
                    envoy::post_headers(&extra),
                    &envoy::chat_body(MODEL, "hi"),
                    1,
                )
                .await;
            let pick = out.iter().find_map(envoy::pick_of).expect("picked");
            assert_eq!(pick.header, addr(&pods, 0));
        }
    }
    // Once the pool has room, sheddable requests pass too.
    pods[0].set_load(0, 1, 0.1);
    pods[1].set_load(1, 1, 0.1);
    scraped(&running).await;
    let mut stream = Stream::open(running.bound().grpc, Mode::FullDuplex).await;
    let out = stream
        .post(
            envoy::post_headers(&[(epp::keys::OBJECTIVE_HEADER, "batch")]),
            &envoy::chat_body(MODEL, "hi"),
            1,
        )
        .await;
    assert!(out.iter().find_map(envoy::pick_of).is_some(), "{out:?}");
    let metrics = envoy::http_get(running.bound().metrics, "/metrics").await;
    assert!(metrics.contains("epp_shed_total 4"), "{metrics}");
}

#[tokio::test]
async fn unparsable_body_is_answered_with_400() {
    let (running, _pods) = start(11, &[(0, 0, 0.0)], Setup::default()).await;
    let bodies: [&[u8]; 4] = [
        b"{not json",
        b"[1, 2, 3]",
        br#"{"messages": [{"role": "user", "content": "no model"}]}"#,
        br#"{"model": 42}"#,
    ];
    for body in bodies {
        for mode in MODES {
            let mut stream = Stream::open(running.bound().grpc, mode).await;
            let out = stream.post(envoy::post_headers(&[]), body, 2).await;
            let (status, text) =
                envoy::immediate_of(out.last().expect("answer")).expect("immediate");
            assert_eq!(
                status,
                400,
                "{mode:?} {}: {text}",
                String::from_utf8_lossy(body)
            );
            let json: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
            assert_eq!(json["error"]["type"], "invalid_request_error");
            stream.expect_end().await;
        }
    }
}

#[tokio::test]
async fn get_without_body_is_picked_at_the_request_headers() {
    let (running, pods) = start(11, &[(3, 0, 0.0), (0, 0, 0.0)], Setup::default()).await;
    for mode in MODES {
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        stream.send(envoy::get_headers()).await;
        let answer = stream.recv().await;
        assert!(
            matches!(answer.response, Some(Response::RequestHeaders(_))),
            "{answer:?}"
        );
        let pick = envoy::pick_of(&answer).expect("routes at the headers");
        assert_eq!(pick.header, addr(&pods, 1), "{mode:?}");
        assert!(
            !pick.set_headers.iter().any(|(k, _)| k == "content-length"),
            "no body, no length"
        );
        // The response goes through untouched.
        stream.send(envoy::response_headers(None)).await;
        assert!(matches!(
            stream.recv().await.response,
            Some(Response::ResponseHeaders(_))
        ));
    }
}

#[tokio::test]
async fn served_endpoint_metadata_is_recorded() {
    let yaml = r#"
plugins:
- type: queue-scorer
- type: max-score-picker
  parameters: {maxNumOfEndpoints: 2}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: queue-scorer}, {pluginRef: max-score-picker}]
"#;
    let setup = Setup {
        picker: Some(yaml),
        ..Setup::default()
    };
    let (running, pods) = start(11, &[(0, 0, 0.0), (4, 0, 0.0)], setup).await;
    for (i, mode) in MODES.into_iter().enumerate() {
        let mut stream = Stream::open(running.bound().grpc, mode).await;
        let out = stream
            .post(envoy::post_headers(&[]), &envoy::chat_body(MODEL, "hi"), 1)
            .await;
        let pick = out.iter().find_map(envoy::pick_of).expect("a pick");
        assert_eq!(
            pick.header,
            format!("{},{}", addr(&pods, 0), addr(&pods, 1))
        );
        // Envoy retried on the fallback and says so with the response headers.
        stream
            .send(envoy::response_headers(Some(envoy::served(&addr(
                &pods, 1,
            )))))
            .await;
        assert!(matches!(
            stream.recv().await.response,
            Some(Response::ResponseHeaders(_))
        ));
        let body = br#"{"choices":[]}"#;
        stream.send(envoy::response_body(body, true)).await;
        let answer = stream.recv().await;
        match mode {
            Mode::FullDuplex => assert_eq!(
                envoy::streamed_chunk(&answer),
                Some((body.to_vec(), true)),
                "the response body is streamed back"
            ),
            Mode::Buffered => assert!(
                matches!(&answer.response, Some(Response::ResponseBody(b)) if b.response.is_none())
            ),
        }
        let metrics = envoy::http_get(running.bound().metrics, "/metrics").await;
        let n = i + 1;
        assert!(
            metrics.contains(&format!(
                "epp_served_total{{endpoint=\"{}\"}} {n}",
                addr(&pods, 1)
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!("epp_served_fallback_total {n}")),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn full_duplex_body_is_resent_in_chunks_under_64k_with_its_length() {
    let (running, pods) = start(11, &[(0, 0, 0.0)], Setup::default()).await;
    let body = envoy::chat_body(MODEL, &"lorem ipsum ".repeat(15_000));
    assert!(body.len() > 150_000);
    let mut stream = Stream::open(running.bound().grpc, Mode::FullDuplex).await;
    let out = stream.post(envoy::post_headers(&[]), &body, 7).await;
    let pick = envoy::pick_of(&out[0]).expect("headers answer first");
    assert_eq!(pick.header, addr(&pods, 0));
    assert!(
        pick.set_headers
            .contains(&("content-length".to_owned(), body.len().to_string()))
    );
    let chunks: Vec<(Vec<u8>, bool)> = out[1..]
        .iter()
        .map(|r| envoy::streamed_chunk(r).expect("streamed chunk"))
        .collect();
    assert!(chunks.len() >= 3);
    assert!(chunks.iter().all(|(c, _)| c.len() <= 62_000));
    assert!(chunks[..chunks.len() - 1].iter().all(|(_, eos)| !eos));
    assert!(chunks.last().expect("last").1);
    let joined: Vec<u8> = chunks.into_iter().flat_map(|(c, _)| c).collect();
    assert_eq!(joined, body);
}

#[tokio::test]
async fn full_duplex_request_trailers_complete_the_body() {
    let (running, pods) = start(11, &[(0, 0, 0.0)], Setup::default()).await;
    let body = envoy::chat_body(MODEL, "with trailers");
    let mut stream = Stream::open(running.bound().grpc, Mode::FullDuplex).await;
    stream.send(envoy::post_headers(&[])).await;
    stream.send(envoy::body_message(&body, false)).await;
    stream.send(envoy::request_trailers()).await;
    let pick = envoy::pick_of(&stream.recv().await).expect("headers answer routes");
    assert_eq!(pick.header, addr(&pods, 0));
    let (chunk, eos) = envoy::streamed_chunk(&stream.recv().await).expect("body");
    assert_eq!(chunk, body);
    assert!(!eos, "trailers follow, so the body does not end the stream");
    assert!(matches!(
        stream.recv().await.response,
        Some(Response::RequestTrailers(_))
    ));
}

#[tokio::test]
async fn health_reports_readiness_once_pods_are_scraped() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let (pods, port) = pods::fake_pods(11, 1).await;
    let config = Config {
        pool: PoolInfo {
            target_ports: vec![port],
            ..PoolInfo::default()
        },
        ..Config::for_tests()
    };
    let running = epp::start(config).await.expect("start");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", running.bound().health))
            .expect("URL")
            .connect()
            .await
            .expect("connect health");
    let mut health = HealthClient::new(channel);
    let request = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    // Waits (on the Watch stream, no polling) until `service` reports `want`.
    let mut wait_status = async |service: &str, want: ServingStatus| {
        let mut updates = health
            .watch(request(service))
            .await
            .expect("watch")
            .into_inner();
        tokio::time::timeout(envoy::WAIT, async {
            loop {
                let r = updates.message().await.expect("ok").expect("an update");
                if r.status == want as i32 {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{service} never became {want:?}"));
    };
    // The seeds' liveness probe asks `inference-extension`: serving while the pool is empty.
    for service in ["liveness", "inference-extension"] {
        wait_status(service, ServingStatus::Serving).await;
    }
    for service in ["readiness", "envoy.service.ext_proc.v3.ExternalProcessor"] {
        wait_status(service, ServingStatus::NotServing).await;
    }
    running.datastore().set_pods(vec![pods[0].pod()]);
    for service in ["readiness", "envoy.service.ext_proc.v3.ExternalProcessor"] {
        wait_status(service, ServingStatus::Serving).await;
    }
    // An emptied pool is not ready again; liveness does not care.
    running.datastore().set_pods(Vec::new());
    wait_status("readiness", ServingStatus::NotServing).await;
    wait_status("liveness", ServingStatus::Serving).await;
    wait_status("inference-extension", ServingStatus::Serving).await;
}

#[tokio::test]
async fn pods_from_a_watch_channel_follow_the_control_plane() {
    let (pods, port) = pods::fake_pods(11, 2).await;
    let (tx, rx) = tokio::sync::watch::channel(Vec::new());
    let config = Config {
        pool: PoolInfo {
            target_ports: vec![port],
            ..PoolInfo::default()
        },
        pods: PodSource::Watch(rx),
        scrape: ScrapeConfig {
            interval: Duration::from_millis(20),
            ..ScrapeConfig::default()
        },
        ..Config::for_tests()
    };
    let running = epp::start(config).await.expect("start");
    let grpc = running.bound().grpc;
    let pick = async |mode| {
        let mut stream = Stream::open(grpc, mode).await;
        let out = stream
            .post(envoy::post_headers(&[]), &envoy::chat_body(MODEL, "hi"), 1)
            .await;
        let last = out.last().expect("an answer");
        envoy::pick_of(last)
            .map(|p| p.header)
            .or_else(|| out.iter().find_map(envoy::pick_of).map(|p| p.header))
            .ok_or_else(|| envoy::immediate_of(last).map(|i| i.0))
    };
    assert_eq!(pick(Mode::FullDuplex).await, Err(Some(503)), "no pods yet");

    tx.send(vec![pods[1].pod()]).expect("send pods");
    tokio::time::timeout(envoy::WAIT, running.wait_ready())
        .await
        .expect("ready once the pod is scraped");
    assert_eq!(pick(Mode::Buffered).await, Ok(addr(&pods, 1)));

    tx.send(vec![pods[0].pod()]).expect("send pods");
    let only = pods[0].addr;
    tokio::time::timeout(
        envoy::WAIT,
        running.datastore().wait_for(|d| {
            let status = d.status();
            status.len() == 1 && status[0].addr == only && status[0].fresh
        }),
    )
    .await
    .expect("the new pod replaces the old one");
    assert_eq!(
        pick(Mode::FullDuplex).await,
        Ok(addr(&pods, 0)),
        "the removed pod is gone"
    );

    tx.send(Vec::new()).expect("send pods");
    tokio::time::timeout(
        envoy::WAIT,
        running.datastore().wait_for(|d| d.endpoints().is_empty()),
    )
    .await
    .expect("emptied");
    assert_eq!(pick(Mode::Buffered).await, Err(Some(503)));
}
