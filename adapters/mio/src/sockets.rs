//! The endpoint's UDP sockets: binding (dual stack where allowed), which
//! socket sends to which destination, reading until `WouldBlock`.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use peercollab_driver::Error;
use peercollab_driver::net::{self, Routes};

pub(crate) use peercollab_driver::net::{RECV_BUF, canonical};

/// One bound, registered socket.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) udp: UdpSocket,
    pub(crate) token: Token,
    pub(crate) local: SocketAddr,
}

/// The sockets of one endpoint.
#[derive(Debug)]
pub(crate) struct Sockets {
    pub(crate) list: Vec<Bound>,
    /// Which socket sends to which destination (`peercollab_driver::net`).
    routes: Routes,
}

impl Sockets {
    /// Binds one non-blocking socket per address (`net::bind_all`: IPv6
    /// sockets carry IPv4 too when the platform allows it and no IPv4
    /// address is bound beside them) and registers socket `k` under
    /// `Token(first.0 + k)`.
    pub(crate) fn bind(
        addrs: &[SocketAddr],
        registry: &Registry,
        first: Token,
    ) -> Result<Self, Error> {
        let bound = net::bind_all(addrs)?;
        let mut list: Vec<Bound> = Vec::with_capacity(bound.len());
        let mut locals = Vec::with_capacity(bound.len());
        for (k, (udp, local)) in bound.into_iter().enumerate() {
            let token = first.0.checked_add(k).map(Token).ok_or_else(|| {
                Error::Io(io::Error::new(io::ErrorKind::InvalidInput, "socket tokens overflow"))
            })?;
            let mut udp = UdpSocket::from_std(udp);
            registry.register(&mut udp, token, Interest::READABLE)?;
            list.push(Bound { udp, token, local: local.address });
            locals.push(local);
        }
        Ok(Sockets { list, routes: Routes::new(locals) })
    }

    /// The socket registered under `token`.
    pub(crate) fn index_of(&self, token: Token) -> Option<usize> {
        self.list.iter().position(|s| s.token == token)
    }

    /// Whether some socket can send to `destination`.
    pub(crate) fn reaches(&self, destination: &SocketAddr) -> bool {
        self.routes.reaches(destination)
    }

    /// Remembers that `from` was heard on socket `k`.
    pub(crate) fn heard(&mut self, from: SocketAddr, k: usize) {
        self.routes.heard(from, k);
    }

    /// Sends one datagram by the socket `net::Routes` picks.
    pub(crate) fn send(&self, destination: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let (k, to) = self.routes.route(destination)?;
        let socket = self.list.get(k).ok_or_else(|| net::no_socket_for(&destination))?;
        let sent = socket.udp.send_to(datagram, to)?;
        if sent == datagram.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "datagram truncated"))
        }
    }

    /// The local addresses.
    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.routes.local_addrs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_destination_goes_to_a_socket_of_its_family() {
        let poll = mio::Poll::new().unwrap();
        let v4: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sockets = Sockets::bind(&[v4], poll.registry(), Token(0)).unwrap();
        assert!(sockets.reaches(&"127.0.0.1:9".parse().unwrap()));
        assert!(!sockets.reaches(&"[::1]:9".parse().unwrap()));
        let err = sockets.send("[::1]:9".parse().unwrap(), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
        assert_eq!(sockets.index_of(Token(0)), Some(0));
        assert_eq!(sockets.index_of(Token(1)), None);
    }
}
