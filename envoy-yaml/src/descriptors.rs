//! The Envoy API descriptors compiled by `build.rs`.

use std::sync::LazyLock;

use prost_reflect::DescriptorPool;

static FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy.fds"));

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    // Cannot fail at run time: build.rs wrote this set from a successful protox compilation, and a
    // test decodes it.
    DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("descriptor set compiled by build.rs")
});

/// Every message of the compiled Envoy API files and their imports.
pub fn descriptor_pool() -> &'static DescriptorPool {
    &POOL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_holds_the_types_infergate_sends_to_envoy() {
        for name in [
            "envoy.config.listener.v3.Listener",
            "envoy.config.route.v3.RouteConfiguration",
            "envoy.config.cluster.v3.Cluster",
            "envoy.config.endpoint.v3.ClusterLoadAssignment",
            "envoy.config.bootstrap.v3.Bootstrap",
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "envoy.extensions.filters.http.router.v3.Router",
            "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec",
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "envoy.extensions.clusters.aggregate.v3.ClusterConfig",
            "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
            "envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost",
        ] {
            assert!(
                descriptor_pool().get_message_by_name(name).is_some(),
                "{name} missing"
            );
        }
    }
}
