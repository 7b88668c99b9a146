//! The endpoint's UDP sockets: binding (dual stack where allowed), which
//! socket sends to which destination, reading until `WouldBlock`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use peercollab_driver::Error;
use socket2::{Domain, Protocol, Socket, Type};

/// How many peers' last receiving socket are remembered before the memory
/// starts afresh (a hint only: routing falls back to the address family).
const REMEMBERED_PEERS: usize = 4096;

/// The receive buffer: larger than any datagram of the protocol
/// (`MAX_DATAGRAM`), so a longer one is seen as malformed, not truncated
/// into something that parses.
pub(crate) const RECV_BUF: usize = 2048;

/// One bound, registered socket.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) udp: UdpSocket,
    pub(crate) token: Token,
    pub(crate) local: SocketAddr,
    /// An IPv6 socket that also carries IPv4 (as v4-mapped addresses).
    pub(crate) dual_stack: bool,
}

/// The sockets of one endpoint.
#[derive(Debug)]
pub(crate) struct Sockets {
    pub(crate) list: Vec<Bound>,
    /// The socket each peer was last heard on: replies leave by it.
    last_heard: HashMap<SocketAddr, usize>,
}

impl Sockets {
    /// Binds one non-blocking socket per address and registers socket `k`
    /// under `Token(first.0 + k)`. IPv6 sockets carry IPv4 too (dual
    /// stack) when the platform allows it and no IPv4 address is bound
    /// beside them; otherwise they are IPv6 only.
    pub(crate) fn bind(
        addrs: &[SocketAddr],
        registry: &Registry,
        first: Token,
    ) -> Result<Self, Error> {
        if addrs.is_empty() {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an endpoint needs at least one address to bind",
            )));
        }
        let has_v4 = addrs.iter().any(SocketAddr::is_ipv4);
        let mut list: Vec<Bound> = Vec::with_capacity(addrs.len());
        for (k, &address) in addrs.iter().enumerate() {
            let token = first.0.checked_add(k).map(Token).ok_or_else(|| {
                Error::Io(io::Error::new(io::ErrorKind::InvalidInput, "socket tokens overflow"))
            })?;
            let (udp, dual_stack) =
                bind_one(address, !has_v4).map_err(|source| Error::Bind { address, source })?;
            let mut udp = UdpSocket::from_std(udp);
            let local = udp.local_addr()?;
            registry.register(&mut udp, token, Interest::READABLE)?;
            tracing::debug!(%address, %local, dual_stack, ?token, "UDP socket bound");
            list.push(Bound { udp, token, local, dual_stack });
        }
        Ok(Sockets { list, last_heard: HashMap::new() })
    }

    /// The socket registered under `token`.
    pub(crate) fn index_of(&self, token: Token) -> Option<usize> {
        self.list.iter().position(|s| s.token == token)
    }

    /// Whether some socket can send to `destination`.
    pub(crate) fn reaches(&self, destination: &SocketAddr) -> bool {
        self.list.iter().any(|s| carries(s, destination))
    }

    /// Remembers that `from` was heard on socket `k`.
    pub(crate) fn heard(&mut self, from: SocketAddr, k: usize) {
        if self.last_heard.len() >= REMEMBERED_PEERS && !self.last_heard.contains_key(&from) {
            self.last_heard.clear();
        }
        self.last_heard.insert(from, k);
    }

    /// Sends one datagram by the socket the destination was last heard on,
    /// else by the first of its family whose scope (loopback or not)
    /// matches, else by any that carries it.
    pub(crate) fn send(&self, destination: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let socket = self
            .last_heard
            .get(&destination)
            .and_then(|&k| self.list.get(k))
            .filter(|s| carries(s, &destination))
            .or_else(|| {
                self.list.iter().find(|s| carries(s, &destination) && same_scope(s, &destination))
            })
            .or_else(|| self.list.iter().find(|s| carries(s, &destination)))
            .ok_or_else(|| no_socket_for(&destination))?;
        let to = match (socket.local, destination) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            _ => destination,
        };
        let sent = socket.udp.send_to(datagram, to)?;
        if sent == datagram.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "datagram truncated"))
        }
    }

    /// The local addresses.
    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.list.iter().map(|s| s.local).collect()
    }
}

/// The error of a destination that no socket carries.
pub(crate) fn no_socket_for(destination: &SocketAddr) -> io::Error {
    let family = if destination.is_ipv4() { "IPv4" } else { "IPv6" };
    io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no socket of this endpoint can send to {destination}: bind an {family} address"),
    )
}

fn carries(socket: &Bound, destination: &SocketAddr) -> bool {
    match (socket.local, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => true,
        (SocketAddr::V6(_), SocketAddr::V4(_)) => socket.dual_stack,
        (SocketAddr::V4(_), SocketAddr::V6(_)) => false,
    }
}

fn same_scope(socket: &Bound, destination: &SocketAddr) -> bool {
    let local = socket.local.ip();
    local.is_unspecified() || local.is_loopback() == destination.ip().is_loopback()
}

/// An IPv4 peer heard on a dual-stack socket arrives as a v4-mapped IPv6
/// address: the agent sees it as the IPv4 address it is, as cards name it.
pub(crate) fn canonical(from: SocketAddr) -> SocketAddr {
    match from {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => from,
        },
        v4 => v4,
    }
}

fn bind_one(address: SocketAddr, dual_stack: bool) -> io::Result<(std::net::UdpSocket, bool)> {
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    let mut dual = false;
    if address.is_ipv6() {
        // Best effort: a platform without dual stack keeps IPv6 only.
        let want_dual = dual_stack && address.ip().is_unspecified();
        if socket.set_only_v6(!want_dual).is_ok() {
            dual = want_dual;
        }
        dual = dual && socket.only_v6().map(|only| !only).unwrap_or(false);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok((socket.into(), dual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_sources_are_seen_as_ipv4_and_others_unchanged() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:5000".parse::<SocketAddr>().unwrap());
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        let v4: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(canonical(v4), v4);
    }

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
