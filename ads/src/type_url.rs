//! Type URLs of the resource types Envoy asks for over ADS, taken from the generated messages'
//! `prost::Name` implementations so that they can never be misspelled.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

/// `type.googleapis.com/` + `PACKAGE` + `.` + `NAME` of a `prost::Name`, as a `&'static str`
/// built at compile time.
macro_rules! type_url_of {
    ($message:ty) => {{
        const PARTS: [&str; 4] = [
            "type.googleapis.com/",
            <$message as ::prost::Name>::PACKAGE,
            ".",
            <$message as ::prost::Name>::NAME,
        ];
        const LEN: usize = $crate::type_url::total_len(&PARTS);
        const BYTES: [u8; LEN] = $crate::type_url::concat(&PARTS);
        match ::std::str::from_utf8(&BYTES) {
            Ok(url) => url,
            // Concatenating valid UTF-8 strings is valid UTF-8; this arm is evaluated at compile time.
            Err(_) => panic!("type URL is not UTF-8"),
        }
    }};
}

/// `type.googleapis.com/envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER: &str = type_url_of!(Cluster);
/// `type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const ENDPOINT: &str = type_url_of!(ClusterLoadAssignment);
/// `type.googleapis.com/envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER: &str = type_url_of!(Listener);
/// `type.googleapis.com/envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE: &str = type_url_of!(RouteConfiguration);
/// `type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
pub const SECRET: &str = type_url_of!(Secret);

/// The type URLs this server knows by name, in the order Envoy first requests them.
pub const KNOWN: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];

/// Whether a request that names no resources is a wildcard subscription ("legacy wildcard"): only
/// for listeners and clusters, which Envoy always fetches whole.
pub(crate) fn legacy_wildcard(type_url: &str) -> bool {
    type_url == LISTENER || type_url == CLUSTER
}

/// A bounded label for metrics: the xDS short name, or `other` for anything a client made up.
pub(crate) fn metric_label(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER => "cds",
        ENDPOINT => "eds",
        LISTENER => "lds",
        ROUTE => "rds",
        SECRET => "sds",
        _ => "other",
    }
}

pub(crate) const fn total_len(parts: &[&str]) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < parts.len() {
        len += parts[i].len();
        i += 1;
    }
    len
}

pub(crate) const fn concat<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            out[at] = bytes[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Name;

    #[test]
    fn type_urls_match_what_prost_generates() {
        assert_eq!(CLUSTER, Cluster::type_url());
        assert_eq!(ENDPOINT, ClusterLoadAssignment::type_url());
        assert_eq!(LISTENER, Listener::type_url());
        assert_eq!(ROUTE, RouteConfiguration::type_url());
        assert_eq!(SECRET, Secret::type_url());
    }
}
