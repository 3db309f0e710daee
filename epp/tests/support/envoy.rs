//! Drives the picker's ext_proc service as Envoy does: one gRPC stream per HTTP request,
//! messages in Envoy's order, `protocol_config` on the first.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, Metadata};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, HttpTrailers, ProcessingRequest, ProcessingResponse,
    ProtocolConfiguration, body_mutation,
};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value};
use tokio::sync::mpsc;
use tonic::Streaming;

pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Buffered,
    FullDuplex,
}

pub const MODES: [Mode; 2] = [Mode::Buffered, Mode::FullDuplex];

impl Mode {
    fn envoy(self) -> i32 {
        match self {
            Mode::Buffered => BodySendMode::Buffered as i32,
            Mode::FullDuplex => BodySendMode::FullDuplexStreamed as i32,
        }
    }
}

/// One ext_proc stream.
pub struct Stream {
    pub mode: Mode,
    tx: mpsc::Sender<ProcessingRequest>,
    rx: Streaming<ProcessingResponse>,
    first: bool,
}

impl Stream {
    pub async fn open(grpc: SocketAddr, mode: Mode) -> Stream {
        let mut client = ExternalProcessorClient::connect(format!("http://{grpc}"))
            .await
            .expect("connect to the picker");
        let (tx, rx) = mpsc::channel(64);
        let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
        let response = client.process(outbound).await.expect("open stream");
        Stream {
            mode,
            tx,
            rx: response.into_inner(),
            first: true,
        }
    }

    pub async fn send(&mut self, mut message: ProcessingRequest) {
        if self.first {
            message.protocol_config = Some(ProtocolConfiguration {
                request_body_mode: self.mode.envoy(),
                response_body_mode: self.mode.envoy(),
                send_body_without_waiting_for_header_response: false,
            });
            self.first = false;
        }
        self.tx.send(message).await.expect("stream open");
    }

    /// The next response (panics after [`WAIT`]).
    pub async fn recv(&mut self) -> ProcessingResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("a response, not the end of the stream")
    }

    /// The stream ends (after an immediate response).
    pub async fn expect_end(&mut self) {
        let next = tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("the end in time");
        assert!(matches!(next, Ok(None)), "expected the end, got {next:?}");
    }

    /// Sends a POST with `body` (split in `chunks` pieces in full-duplex mode) and returns every
    /// response up to and including the last request-body answer (or an immediate response).
    pub async fn post(
        &mut self,
        headers: ProcessingRequest,
        body: &[u8],
        chunks: usize,
    ) -> Vec<ProcessingResponse> {
        let mut out = Vec::new();
        self.send(headers).await;
        if self.mode == Mode::Buffered {
            let r = self.recv().await;
            let immediate = is_immediate(&r);
            out.push(r);
            if immediate {
                return out;
            }
            self.send(body_message(body, true)).await;
        } else {
            let size = body.len().div_ceil(chunks.max(1)).max(1);
            let pieces: Vec<&[u8]> = if body.is_empty() {
                vec![&[][..]]
            } else {
                body.chunks(size).collect()
            };
            let last = pieces.len() - 1;
            for (i, piece) in pieces.into_iter().enumerate() {
                self.send(body_message(piece, i == last)).await;
            }
        }
        loop {
            let r = self.recv().await;
            let done = is_immediate(&r) || is_last_request_body(&r, self.mode);
            out.push(r);
            if done {
                return out;
            }
        }
    }
}

pub fn is_immediate(r: &ProcessingResponse) -> bool {
    matches!(r.response, Some(Response::ImmediateResponse(_)))
}

fn is_last_request_body(r: &ProcessingResponse, mode: Mode) -> bool {
    match &r.response {
        Some(Response::RequestBody(b)) => match mode {
            Mode::Buffered => true,
            Mode::FullDuplex => {
                streamed_chunk(r).is_some_and(|(_, eos)| eos) || b.response.is_none()
            }
        },
        _ => false,
    }
}

/// Body and end_of_stream of a streamed request- or response-body answer.
pub fn streamed_chunk(r: &ProcessingResponse) -> Option<(Vec<u8>, bool)> {
    let common = match &r.response {
        Some(Response::RequestBody(b)) | Some(Response::ResponseBody(b)) => b.response.as_ref()?,
        _ => return None,
    };
    match common.body_mutation.as_ref()?.mutation.as_ref()? {
        body_mutation::Mutation::StreamedResponse(s) => Some((s.body.clone(), s.end_of_stream)),
        _ => None,
    }
}

pub fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
    HeaderMap {
        headers: headers
            .iter()
            .map(|(k, v)| HeaderValue {
                key: (*k).to_owned(),
                raw_value: v.as_bytes().to_vec(),
                ..HeaderValue::default()
            })
            .collect(),
    }
}

/// Request headers of a request with a body (POST /v1/chat/completions), plus `extra`.
pub fn post_headers(extra: &[(&str, &str)]) -> ProcessingRequest {
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway"),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    ProcessingRequest {
        request: Some(Request::RequestHeaders(HttpHeaders {
            headers: Some(header_map(&headers)),
            end_of_stream: false,
            ..HttpHeaders::default()
        })),
        ..ProcessingRequest::default()
    }
}

/// Request headers of a GET without a body.
pub fn get_headers() -> ProcessingRequest {
    ProcessingRequest {
        request: Some(Request::RequestHeaders(HttpHeaders {
            headers: Some(header_map(&[(":method", "GET"), (":path", "/v1/models")])),
            end_of_stream: true,
            ..HttpHeaders::default()
        })),
        ..ProcessingRequest::default()
    }
}

pub fn body_message(body: &[u8], end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(Request::RequestBody(HttpBody {
            body: body.to_vec(),
            end_of_stream,
            ..HttpBody::default()
        })),
        ..ProcessingRequest::default()
    }
}

pub fn request_trailers() -> ProcessingRequest {
    ProcessingRequest {
        request: Some(Request::RequestTrailers(HttpTrailers::default())),
        ..ProcessingRequest::default()
    }
}

pub fn response_headers(metadata: Option<Metadata>) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(Request::ResponseHeaders(HttpHeaders {
            headers: Some(header_map(&[
                (":status", "200"),
                ("content-type", "application/json"),
            ])),
            end_of_stream: false,
            ..HttpHeaders::default()
        })),
        metadata_context: metadata,
        ..ProcessingRequest::default()
    }
}

pub fn response_body(body: &[u8], end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(Request::ResponseBody(HttpBody {
            body: body.to_vec(),
            end_of_stream,
            ..HttpBody::default()
        })),
        ..ProcessingRequest::default()
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_owned())),
    }
}

/// `metadata_context` with `namespace` / `key` = `value`.
pub fn metadata(namespace: &str, key: &str, value: Value) -> Metadata {
    Metadata {
        filter_metadata: HashMap::from([(
            namespace.to_owned(),
            Struct {
                fields: HashMap::from([(key.to_owned(), value)]),
            },
        )]),
        ..Metadata::default()
    }
}

/// The subset hint Envoy sends: `envoy.lb.subset_hint` / `x-gateway-destination-endpoint-subset`.
pub fn subset_hint(endpoints: &[String]) -> Metadata {
    metadata(
        epp::keys::SUBSET_HINT_NAMESPACE,
        epp::keys::SUBSET_HINT,
        Value {
            kind: Some(value::Kind::ListValue(ListValue {
                values: endpoints.iter().map(|e| string(e)).collect(),
            })),
        },
    )
}

/// The served endpoint Envoy reports: `envoy.lb` / `x-gateway-destination-endpoint-served`.
pub fn served(endpoint: &str) -> Metadata {
    metadata(
        epp::keys::DESTINATION_ENDPOINT_NAMESPACE,
        epp::keys::DESTINATION_ENDPOINT_SERVED,
        string(endpoint),
    )
}

/// What a pick response says: the header value, the metadata value, clear_route_cache, and
/// every header set.
#[derive(Debug)]
pub struct Pick {
    pub header: String,
    pub metadata: String,
    pub clear_route_cache: bool,
    pub set_headers: Vec<(String, String)>,
}

/// Reads the routing answer: in BUFFERED the request-body response, in FULL_DUPLEX_STREAMED
/// (or without a body) the request-headers response.
pub fn pick_of(r: &ProcessingResponse) -> Option<Pick> {
    let common = match &r.response {
        Some(Response::RequestHeaders(h)) => h.response.as_ref()?,
        Some(Response::RequestBody(b)) => b.response.as_ref()?,
        _ => return None,
    };
    let mutation = common.header_mutation.as_ref()?;
    let set_headers: Vec<(String, String)> = mutation
        .set_headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| {
            (
                h.key.clone(),
                String::from_utf8_lossy(&h.raw_value).into_owned(),
            )
        })
        .collect();
    let header = set_headers
        .iter()
        .find(|(k, _)| k == epp::keys::DESTINATION_ENDPOINT)?
        .1
        .clone();
    let md = r.dynamic_metadata.as_ref()?;
    let inner = match md
        .fields
        .get(epp::keys::DESTINATION_ENDPOINT_NAMESPACE)?
        .kind
        .as_ref()?
    {
        value::Kind::StructValue(s) => s,
        _ => return None,
    };
    let metadata = match inner
        .fields
        .get(epp::keys::DESTINATION_ENDPOINT)?
        .kind
        .as_ref()?
    {
        value::Kind::StringValue(s) => s.clone(),
        _ => return None,
    };
    Some(Pick {
        header,
        metadata,
        clear_route_cache: common.clear_route_cache,
        set_headers,
    })
}

/// Status and body of an immediate response.
pub fn immediate_of(r: &ProcessingResponse) -> Option<(i32, String)> {
    match &r.response {
        Some(Response::ImmediateResponse(i)) => Some((
            i.status.as_ref().map_or(0, |s| s.code),
            String::from_utf8_lossy(&i.body).into_owned(),
        )),
        _ => None,
    }
}

/// A chat body with this user message.
pub fn chat_body(model: &str, content: &str) -> Vec<u8> {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
    })
    .to_string()
    .into_bytes()
}

/// GET `path` over plain HTTP/1.0 and return the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(text)
}
