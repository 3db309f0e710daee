//! Free loopback ports.
//!
//! Prefer binding `127.0.0.1:0` yourself (the fake upstreams do, Envoy's admin does): a port found
//! here is free when returned, and another process could take it before it is bound again.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(free_addr()?.port())
}

/// `127.0.0.1:<port>` that was free a moment ago.
pub fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}
