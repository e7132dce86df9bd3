//! What a handler knows of the connection its request came on: the client's address, and
//! whether the connection's socket would take more bytes now.
//!
//! Event streams need the second to tell a reader that stopped reading (its socket stays full)
//! from one localmarathon has not got round to writing to (its socket has room). For that the
//! connection keeps a duplicate of the socket's descriptor, taken when it is accepted: it is
//! only ever polled, never read, written or shut down, and it is closed with the connection.
//! Each accepted connection also sends what is written at once (`TCP_NODELAY`).

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::net::TcpListener;

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address.
    pub remote: SocketAddr,
    /// The socket, to poll; `None` if it could not be duplicated.
    socket: Option<Arc<OwnedFd>>,
}

impl Connection {
    /// Whether the kernel would take more bytes on this connection now. Unknown counts as no.
    pub fn has_room(&self) -> bool {
        let Some(socket) = &self.socket else {
            return false;
        };
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLOUT))
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        // Sent at once (`TCP_NODELAY`), as Jetty's connectors do for Marathon: a small write
        // (an event, an answer) never waits for the peer to acknowledge the one before it.
        if let Err(e) = stream.io().set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let socket = match stream.io().as_fd().try_clone_to_owned() {
            Ok(fd) => Some(Arc::new(fd)),
            Err(e) => {
                tracing::warn!(error = %e, "no duplicate of a connection's socket; its event stream counts as full");
                None
            }
        };
        Connection {
            remote: *stream.remote_addr(),
            socket,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Write};

    use super::*;

    /// A connection whose peer never reads: its socket has room until it is filled.
    #[tokio::test]
    async fn a_socket_has_room_until_its_reader_leaves_it_full() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut accepted, remote) = listener.accept().unwrap();
        let connection = Connection {
            remote,
            socket: Some(Arc::new(accepted.as_fd().try_clone_to_owned().unwrap())),
        };
        assert!(connection.has_room());
        accepted.set_nonblocking(true).unwrap();
        let block = [0u8; 64 * 1024];
        loop {
            match accepted.write(&block) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(!connection.has_room());
        drop(peer);
    }
}
