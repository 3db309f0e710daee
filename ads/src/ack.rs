//! ACK/NACK bookkeeping for one resource type on one stream.
//!
//! Every response carries a fresh nonce. A request echoing the latest nonce answers that response:
//! without `error_detail` it is an ACK, with it a NACK. A request echoing an older nonce is stale.
//! The version a reply refers to is the one we sent with the nonce, not the request's
//! `version_info` (after a NACK, Envoy reports the version it kept).

use std::time::{Duration, Instant};

/// How a request relates to the responses sent for its type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reply {
    /// No nonce: the first request of a type, or (Delta) a spontaneous subscription change.
    NoNonce,
    /// The proxy accepted the latest response.
    Ack { version: String, latency: Duration },
    /// The proxy rejected the latest response.
    Nack { version: String, detail: String },
    /// The latest nonce again, already answered: a subscription change at the same version.
    Again,
    /// An older nonce; a newer response is on its way to the proxy.
    Stale,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct AckState {
    last_nonce: Option<String>,
    sent_version: Option<String>,
    sent_at: Option<Instant>,
    in_flight: bool,
    nacked_version: Option<String>,
}

impl AckState {
    /// Classifies a request by its nonce and records an ACK or NACK.
    pub(crate) fn reply(&mut self, nonce: &str, error_detail: Option<&str>) -> Reply {
        if nonce.is_empty() {
            return Reply::NoNonce;
        }
        if self.last_nonce.as_deref() != Some(nonce) {
            return Reply::Stale;
        }
        if !self.in_flight {
            return Reply::Again;
        }
        self.in_flight = false;
        let version = self.sent_version.clone().unwrap_or_default();
        match error_detail {
            Some(detail) => {
                self.nacked_version = Some(version.clone());
                Reply::Nack {
                    version,
                    detail: detail.to_owned(),
                }
            }
            None => Reply::Ack {
                version,
                latency: self.sent_at.map(|at| at.elapsed()).unwrap_or_default(),
            },
        }
    }

    pub(crate) fn sent(&mut self, nonce: String, version: &str) {
        if self.sent_version.as_deref() != Some(version) {
            self.nacked_version = None;
        }
        self.last_nonce = Some(nonce);
        self.sent_version = Some(version.to_owned());
        self.sent_at = Some(Instant::now());
        self.in_flight = true;
    }

    /// Delta: the proxy already has `version` of everything it subscribes to.
    pub(crate) fn up_to_date(&mut self, version: &str) {
        self.sent_version = Some(version.to_owned());
    }

    pub(crate) fn never_sent(&self) -> bool {
        self.last_nonce.is_none()
    }

    /// Whether a response is waiting for its ACK or NACK.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight
    }

    pub(crate) fn sent_version(&self) -> Option<&str> {
        self.sent_version.as_deref()
    }

    /// Whether the proxy rejected exactly this version (so it must not be sent again).
    pub(crate) fn is_nacked(&self, version: &str) -> bool {
        self.nacked_version.as_deref() == Some(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_nonce() {
        let mut acks = AckState::default();
        assert_eq!(acks.reply("", None), Reply::NoNonce);
        acks.sent("1".to_owned(), "v1");
        assert_eq!(acks.reply("0", None), Reply::Stale);
        assert!(matches!(acks.reply("1", None), Reply::Ack { version, .. } if version == "v1"));
        assert_eq!(acks.reply("1", None), Reply::Again);
        acks.sent("2".to_owned(), "v2");
        assert_eq!(
            acks.reply("2", Some("bad")),
            Reply::Nack {
                version: "v2".to_owned(),
                detail: "bad".to_owned()
            }
        );
        assert!(acks.is_nacked("v2"));
        acks.sent("3".to_owned(), "v3");
        assert!(!acks.is_nacked("v2"));
    }
}
