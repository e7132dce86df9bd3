//! Free loopback ports.
//!
//! A port is free when the kernel hands it out for `127.0.0.1:0`; it is released again before
//! the caller binds it, so another process may take it in between. Callers that start servers
//! on these ports retry with fresh ones when the bind fails (see [`crate::EtcdServer::start`]).

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
///
/// # Panics
/// If the kernel hands out no port at all.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    // Holding the listeners until all are picked keeps the kernel from handing out one twice.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)).expect("cannot bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("bound listener").port())
        .collect()
}
