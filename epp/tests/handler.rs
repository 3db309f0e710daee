//! The stream state machine message by message (no gRPC): odd orders, other body modes,
//! limits and garbage never panic and always answer what Envoy waits for.

#[path = "support/envoy.rs"]
mod envoy;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProtocolConfiguration};
use envoy_types::pb::google::protobuf::{Value, value};
use epp::datastore::{Datastore, Pod, PoolInfo};
use epp::director::Director;
use epp::handlers::{BodyMode, HandlerConfig, StreamHandler};
use epp::metrics::Metrics;
use epp::scheduling::Scheduler;
use epp::scrape::ScrapedMetrics;

const POD: &str = "10.0.0.1:8000";

fn director() -> Arc<Director> {
    let ds = Arc::new(Datastore::new(
        PoolInfo {
            target_ports: vec![8000],
            ..PoolInfo::default()
        },
        Duration::from_secs(2),
    ));
    ds.set_pods(vec![Pod::new("a", IpAddr::from([10, 0, 0, 1]))]);
    let scraped = ScrapedMetrics {
        waiting: Some(0),
        ..ScrapedMetrics::default()
    };
    let addr: SocketAddr = POD.parse().expect("addr");
    ds.record_scrape(addr, Ok(&scraped), Instant::now());
    Arc::new(Director::new(
        ds,
        Arc::new(Scheduler::with_defaults(1).expect("scheduler")),
        &[],
        Metrics::unregistered(),
    ))
}

fn handler(max_body: usize) -> StreamHandler {
    StreamHandler::new(
        director(),
        HandlerConfig {
            fallback_body_mode: BodyMode::FullDuplexStreamed,
            max_body_bytes: max_body,
        },
    )
}

fn with_mode(mut m: ProcessingRequest, mode: BodySendMode) -> ProcessingRequest {
    m.protocol_config = Some(ProtocolConfiguration {
        request_body_mode: mode as i32,
        response_body_mode: mode as i32,
        send_body_without_waiting_for_header_response: false,
    });
    m
}

fn body() -> Vec<u8> {
    envoy::chat_body("m", "hello")
}

#[test]
fn messages_in_any_order_never_panic() {
    let messages = || {
        vec![
            ProcessingRequest::default(),
            envoy::body_message(b"\xff\xfe not utf8", false),
            envoy::response_body(b"early", true),
            envoy::request_trailers(),
            envoy::response_headers(None),
            envoy::post_headers(&[]),
            envoy::body_message(&body(), true),
            envoy::post_headers(&[]),
            envoy::get_headers(),
            envoy::body_message(b"{}", true),
        ]
    };
    // Every rotation of the sequence, in every body mode Envoy has.
    for mode in [
        BodySendMode::None,
        BodySendMode::Streamed,
        BodySendMode::Buffered,
        BodySendMode::BufferedPartial,
        BodySendMode::FullDuplexStreamed,
        BodySendMode::Grpc,
    ] {
        let all = messages();
        for start in 0..all.len() {
            let mut h = handler(1024);
            let mut rotated = messages();
            rotated.rotate_left(start);
            for (i, m) in rotated.into_iter().enumerate() {
                let m = if i == 0 { with_mode(m, mode) } else { m };
                let _ = h.handle(m);
            }
        }
    }
    // An unknown body mode number and garbage metadata.
    let mut h = handler(1024);
    let mut first = envoy::post_headers(&[]);
    first.protocol_config = Some(ProtocolConfiguration {
        request_body_mode: 99,
        response_body_mode: -4,
        send_body_without_waiting_for_header_response: true,
    });
    first.metadata_context = Some(envoy::metadata(
        epp::keys::SUBSET_HINT_NAMESPACE,
        epp::keys::SUBSET_HINT,
        Value {
            kind: Some(value::Kind::NumberValue(3.0)),
        },
    ));
    let out = h.handle(first);
    assert!(
        envoy::pick_of(&out[0]).is_some(),
        "unknown mode: picked at the headers"
    );
}

#[test]
fn nothing_is_answered_after_an_immediate_response() {
    let mut h = handler(1024);
    assert!(
        h.handle(with_mode(
            envoy::post_headers(&[]),
            BodySendMode::FullDuplexStreamed
        ))
        .is_empty()
    );
    let out = h.handle(envoy::body_message(b"{oops", true));
    assert_eq!(envoy::immediate_of(&out[0]).map(|i| i.0), Some(400));
    assert!(h.is_done());
    assert!(h.handle(envoy::body_message(b"more", true)).is_empty());
    assert!(h.handle(envoy::response_headers(None)).is_empty());
}

#[test]
fn a_body_over_the_limit_is_answered_413() {
    let mut h = handler(100);
    h.handle(with_mode(
        envoy::post_headers(&[]),
        BodySendMode::FullDuplexStreamed,
    ));
    assert!(h.handle(envoy::body_message(&[b' '; 60], false)).is_empty());
    let out = h.handle(envoy::body_message(&[b' '; 60], false));
    assert_eq!(envoy::immediate_of(&out[0]).map(|i| i.0), Some(413));
}

#[test]
fn none_and_streamed_body_modes_pick_at_the_headers_and_let_the_body_through() {
    for mode in [BodySendMode::None, BodySendMode::Streamed] {
        let mut h = handler(1 << 20);
        let out = h.handle(with_mode(envoy::post_headers(&[]), mode));
        assert_eq!(out.len(), 1);
        let pick = envoy::pick_of(&out[0]).expect("pick at headers");
        assert_eq!(pick.header, POD);
        let out = h.handle(envoy::body_message(&body(), true));
        assert!(
            matches!(&out[0].response, Some(Response::RequestBody(b)) if b.response.is_none()),
            "{mode:?}: {out:?}"
        );
    }
}

#[test]
fn without_protocol_config_the_fallback_mode_applies() {
    for (fallback, answers_headers) in [
        (BodyMode::Buffered, true),
        (BodyMode::FullDuplexStreamed, false),
    ] {
        let mut h = StreamHandler::new(
            director(),
            HandlerConfig {
                fallback_body_mode: fallback,
                ..HandlerConfig::default()
            },
        );
        let out = h.handle(envoy::post_headers(&[]));
        assert_eq!(!out.is_empty(), answers_headers, "{fallback:?}");
        let out = h.handle(envoy::body_message(&body(), true));
        assert!(
            out.iter().any(|r| envoy::pick_of(r).is_some()),
            "{fallback:?}: {out:?}"
        );
    }
}

#[test]
fn a_client_sent_destination_header_is_overwritten_by_the_pick() {
    let mut h = handler(1 << 20);
    h.handle(with_mode(
        envoy::post_headers(&[("x-gateway-destination-endpoint", "6.6.6.6:1")]),
        BodySendMode::FullDuplexStreamed,
    ));
    let out = h.handle(envoy::body_message(&body(), true));
    let pick = envoy::pick_of(&out[0]).expect("pick");
    assert_eq!(pick.header, POD);
    let headers_response = match &out[0].response {
        Some(Response::RequestHeaders(h)) => h.response.as_ref().expect("common"),
        other => panic!("{other:?}"),
    };
    let option = &headers_response
        .header_mutation
        .as_ref()
        .expect("mutation")
        .set_headers[0];
    assert_eq!(
        option.append_action,
        envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
            as i32
    );
}

#[test]
fn served_endpoint_is_read_once_from_whichever_message_carries_it() {
    let mut h = handler(1 << 20);
    h.handle(with_mode(envoy::post_headers(&[]), BodySendMode::Buffered));
    h.handle(envoy::body_message(&body(), true));
    h.handle(envoy::response_headers(Some(envoy::served(POD))));
    assert_eq!(h.served(), Some(POD));
    h.handle(envoy::response_headers(Some(envoy::served("1.2.3.4:5"))));
    assert_eq!(h.served(), Some(POD), "the first report stands");
    assert_eq!(h.decision().map(|d| d.header_value()), Some(POD.to_owned()));
}
