//! ClusterLoadAssignment: one locality per backend, carrying its priority and weight.

use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::listener::socket_address;
use super::metadata;
use crate::translate::ir::{EndpointIr, EndpointsIr, LocalityIr};

pub fn cluster_load_assignment(ir: &EndpointsIr) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: ir.cluster.clone(),
        endpoints: ir
            .localities
            .iter()
            .filter(|l| l.weight > 0)
            .map(locality)
            .collect(),
        ..Default::default()
    }
}

/// One endpoint on a Unix socket.
pub fn pipe_load_assignment(cluster: &str, path: &str) -> ClusterLoadAssignment {
    use envoy_types::pb::envoy::config::core::v3::{Address, Pipe, address::Address as Kind};
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(Kind::Pipe(Pipe {
                    path: path.to_string(),
                    mode: 0,
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![endpoint],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn locality(ir: &LocalityIr) -> LocalityLbEndpoints {
    LocalityLbEndpoints {
        locality: Some(Locality {
            sub_zone: ir.name.clone(),
            ..Default::default()
        }),
        lb_endpoints: ir.endpoints.iter().map(lb_endpoint).collect(),
        load_balancing_weight: Some(UInt32Value { value: ir.weight }),
        priority: ir.priority,
        ..Default::default()
    }
}

fn lb_endpoint(ir: &EndpointIr) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(&ir.address, ir.port)),
            hostname: if ir.is_ip() {
                String::new()
            } else {
                ir.address.clone()
            },
            ..Default::default()
        })),
        metadata: metadata(&ir.metadata),
        ..Default::default()
    }
}
