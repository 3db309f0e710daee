//! Free loopback ports.
//!
//! Prefer binding `127.0.0.1:0` yourself (the fake upstreams do, Envoy's admin does): a port found
//! here is free when returned, and another process could take it before it is bound again.
//!
//! To make that rare, ports come from below the kernel's ephemeral range (32768 and up by
//! default), which every outgoing connection of the tests, Envoy and the services draws from, and
//! this process never hands out one port twice.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

/// Ports to draw from: below the ephemeral range, clear of the benchmark's fixed ports
/// (24000, 28000–29999) and the gateway's defaults (18000, 18001, 19000).
const RANGES: [(u16, u16); 2] = [(20000, 23999), (30000, 32767)];
const TRIES: usize = 64;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(free_addr()?.port())
}

/// `127.0.0.1:<port>` that was free a moment ago.
pub fn free_addr() -> std::io::Result<SocketAddr> {
    let mut handed = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..TRIES {
        let port = candidate();
        if handed.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            handed.insert(port);
            return listener.local_addr();
        }
    }
    // Everything tried was taken: let the kernel pick.
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    handed.insert(addr.port());
    Ok(addr)
}

/// A pseudo-random port of [`RANGES`] (std's per-process random hash keys seed it).
fn candidate() -> u16 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let total: u64 = RANGES.iter().map(|(lo, hi)| u64::from(hi - lo) + 1).sum();
    let mut pick = hasher.finish() % total;
    for (lo, hi) in RANGES {
        let size = u64::from(hi - lo) + 1;
        if pick < size {
            return lo + u16::try_from(pick).unwrap_or(0);
        }
        pick -= size;
    }
    RANGES[0].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().expect("port")).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        assert!(
            ports
                .iter()
                .all(|p| RANGES.iter().any(|(lo, hi)| (lo..=hi).contains(&p))),
            "{ports:?}"
        );
    }
}
