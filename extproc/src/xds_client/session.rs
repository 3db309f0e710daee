//! The SotW exchange for the one config resource, apart from the transport: what a stream
//! asks for first, and how each response is answered (apply and ACK, or NACK and keep the last
//! good config). State here outlives streams.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;

use crate::config::{Config, ConfigStore};
use crate::keys::{CONFIG_RESOURCE_NAME, CONFIG_TYPE_URL};
use crate::{Error, Result};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;

/// What a response amounted to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// A new config was applied (and is ACKed); `errors` objects of it were left out.
    Applied { version: String, errors: usize },
    /// The config the store already has from this version; ACKed without rebuilding.
    Unchanged { version: String },
    /// The server has no config for us yet (or any more); ACKed, the store is left alone.
    NoConfig { version: String },
    /// The response was rejected (NACK); the last good config stays.
    Rejected { version: String, message: String },
    /// A response for a type we did not ask for; not answered.
    Ignored { type_url: String },
}

#[derive(Debug)]
pub(super) struct Session {
    node: Node,
    /// The last version ACKed, kept across streams: the `version_info` of NACKs and of the
    /// first request after a reconnect.
    acked_version: String,
    /// The xDS version of the config in the store, if one came over xDS.
    applied_version: Option<String>,
}

impl Session {
    pub(super) fn new(node: Node) -> Session {
        Session {
            node,
            acked_version: String::new(),
            applied_version: None,
        }
    }

    /// The first request of a stream: the only one carrying the node.
    pub(super) fn first_request(&self) -> DiscoveryRequest {
        DiscoveryRequest {
            node: Some(self.node.clone()),
            version_info: self.acked_version.clone(),
            ..subscription()
        }
    }

    /// Applies a response to `store` and returns the request answering it, if any.
    pub(super) fn on_response(
        &mut self,
        response: &DiscoveryResponse,
        store: &ConfigStore,
    ) -> (Outcome, Option<DiscoveryRequest>) {
        if response.type_url != CONFIG_TYPE_URL {
            let outcome = Outcome::Ignored {
                type_url: response.type_url.clone(),
            };
            return (outcome, None);
        }
        let version = response.version_info.clone();
        let config = match config_of(response) {
            Ok(config) => config,
            Err(err) => {
                let message = error_chain(&err);
                let nack = DiscoveryRequest {
                    version_info: self.acked_version.clone(),
                    response_nonce: response.nonce.clone(),
                    error_detail: Some(Status {
                        code: INVALID_ARGUMENT,
                        message: message.clone(),
                        details: Vec::new(),
                    }),
                    ..subscription()
                };
                return (Outcome::Rejected { version, message }, Some(nack));
            }
        };
        let outcome = match config {
            None => Outcome::NoConfig {
                version: version.clone(),
            },
            Some(_) if self.applied_version.as_deref() == Some(version.as_str()) => {
                Outcome::Unchanged {
                    version: version.clone(),
                }
            }
            Some(config) => {
                // Per-object errors are logged by the store; the xds-server reports them too.
                let errors = store.update(&config).len();
                self.applied_version = Some(version.clone());
                Outcome::Applied {
                    version: version.clone(),
                    errors,
                }
            }
        };
        let ack = DiscoveryRequest {
            version_info: version.clone(),
            response_nonce: response.nonce.clone(),
            ..subscription()
        };
        self.acked_version = version;
        (outcome, Some(ack))
    }
}

/// A request for our one resource, without node, version or nonce.
fn subscription() -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: CONFIG_TYPE_URL.to_owned(),
        resource_names: vec![CONFIG_RESOURCE_NAME.to_owned()],
        ..DiscoveryRequest::default()
    }
}

/// The config a response carries: `None` when it has no resource. A SotW resource is a bare
/// `Any` without its name; the server sends only the names we subscribe to, so the one
/// resource of our type is [`CONFIG_RESOURCE_NAME`].
fn config_of(response: &DiscoveryResponse) -> Result<Option<Config>> {
    let resource = match response.resources.as_slice() {
        [] => return Ok(None),
        [resource] => resource,
        many => {
            return Err(Error::XdsResource {
                message: format!(
                    "{} resources, expected only {CONFIG_RESOURCE_NAME:?}",
                    many.len()
                ),
            });
        }
    };
    if resource.type_url != CONFIG_TYPE_URL {
        return Err(Error::XdsResource {
            message: format!(
                "the resource is of type {:?}, expected {CONFIG_TYPE_URL:?}",
                resource.type_url
            ),
        });
    }
    Config::from_json(&resource.value).map(Some)
}

/// `error: cause: cause`, for logs and NACKs (a cause repeating the one before is left out).
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut last = message.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && text != last {
            message.push_str(": ");
            message.push_str(&text);
        }
        last = text;
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::Any;

    use super::*;

    fn response(version: &str, nonce: &str, values: &[&[u8]]) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: version.to_owned(),
            nonce: nonce.to_owned(),
            type_url: CONFIG_TYPE_URL.to_owned(),
            resources: values
                .iter()
                .map(|value| Any {
                    type_url: CONFIG_TYPE_URL.to_owned(),
                    value: value.to_vec(),
                })
                .collect(),
            ..DiscoveryResponse::default()
        }
    }

    fn session() -> Session {
        Session::new(Node {
            id: "extproc-test".to_owned(),
            ..Node::default()
        })
    }

    #[test]
    fn the_first_request_names_the_node_type_and_resource() {
        let request = session().first_request();
        assert_eq!(request.node.map(|n| n.id).as_deref(), Some("extproc-test"));
        assert_eq!(request.type_url, CONFIG_TYPE_URL);
        assert_eq!(request.resource_names, vec![CONFIG_RESOURCE_NAME]);
        assert!(request.response_nonce.is_empty() && request.version_info.is_empty());
    }

    #[test]
    fn a_good_config_is_applied_and_acked_without_the_node() {
        let store = ConfigStore::new();
        let mut session = session();
        let (outcome, ack) =
            session.on_response(&response("v1", "1", &[br#"{"version":"a"}"#]), &store);
        assert_eq!(
            outcome,
            Outcome::Applied {
                version: "v1".to_owned(),
                errors: 0
            }
        );
        let ack = ack.unwrap_or_default();
        assert_eq!(
            (ack.version_info.as_str(), ack.response_nonce.as_str()),
            ("v1", "1")
        );
        assert!(ack.node.is_none() && ack.error_detail.is_none());
        assert_eq!(store.load().version, "a");
        assert_eq!(session.first_request().version_info, "v1");
    }

    #[test]
    fn bad_json_is_nacked_with_the_last_acked_version_and_the_config_stays() {
        let store = ConfigStore::new();
        let mut session = session();
        session.on_response(&response("v1", "1", &[br#"{"version":"a"}"#]), &store);
        let (outcome, nack) = session.on_response(&response("v2", "2", &[b"{nope"]), &store);
        assert!(matches!(outcome, Outcome::Rejected { version, .. } if version == "v2"));
        let nack = nack.unwrap_or_default();
        assert_eq!(
            (nack.version_info.as_str(), nack.response_nonce.as_str()),
            ("v1", "2")
        );
        let detail = nack.error_detail.unwrap_or_default();
        assert_eq!(detail.code, 3);
        assert!(
            detail.message.starts_with("parsing extproc config: "),
            "{}",
            detail.message
        );
        assert_eq!(store.load().version, "a");
        assert_eq!(store.generation(), 1);
    }

    #[test]
    fn no_resource_is_acked_and_keeps_the_store() {
        let store = ConfigStore::new();
        let mut session = session();
        let (outcome, ack) = session.on_response(&response("empty", "1", &[]), &store);
        assert_eq!(
            outcome,
            Outcome::NoConfig {
                version: "empty".to_owned()
            }
        );
        assert!(ack.is_some_and(|a| a.error_detail.is_none() && a.version_info == "empty"));
        assert_eq!(store.generation(), 0);
    }

    #[test]
    fn the_same_version_again_is_acked_without_a_rebuild() {
        let store = ConfigStore::new();
        let mut session = session();
        session.on_response(&response("v1", "1", &[b"{}"]), &store);
        let (outcome, ack) = session.on_response(&response("v1", "2", &[b"{}"]), &store);
        assert_eq!(
            outcome,
            Outcome::Unchanged {
                version: "v1".to_owned()
            }
        );
        assert!(ack.is_some_and(|a| a.response_nonce == "2"));
        assert_eq!(store.generation(), 1);
    }

    #[test]
    fn two_resources_or_a_foreign_resource_type_are_nacked() {
        let store = ConfigStore::new();
        let mut session = session();
        let (outcome, _) = session.on_response(&response("v1", "1", &[b"{}", b"{}"]), &store);
        assert!(
            matches!(outcome, Outcome::Rejected { message, .. } if message.contains("2 resources"))
        );
        let mut foreign = response("v2", "2", &[b"{}"]);
        foreign.resources[0].type_url = "type.googleapis.com/other".to_owned();
        let (outcome, _) = session.on_response(&foreign, &store);
        assert!(matches!(outcome, Outcome::Rejected { message, .. } if message.contains("other")));
        assert_eq!(store.generation(), 0);
    }

    #[test]
    fn a_response_of_another_type_is_not_answered() {
        let mut other = response("v1", "1", &[]);
        other.type_url = "type.googleapis.com/other".to_owned();
        let (outcome, request) = session().on_response(&other, &ConfigStore::new());
        assert!(matches!(outcome, Outcome::Ignored { .. }));
        assert!(request.is_none());
    }
}
