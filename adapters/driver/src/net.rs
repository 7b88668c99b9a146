//! UDP socket plumbing both adapters share: binding (dual stack where the
//! platform allows), which socket sends to which destination, and how a
//! source address is shown to the agent.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};

/// How many peers' last receiving socket are remembered before the memory
/// starts afresh (a hint only: routing falls back to the address family).
const REMEMBERED_PEERS: usize = 4096;

/// A receive buffer: larger than any datagram of the protocol
/// (`MAX_DATAGRAM`), so a longer one is seen as malformed, not truncated
/// into something that parses.
pub const RECV_BUF: usize = 2048;

/// Binds one non-blocking UDP socket to `address`. An IPv6 socket bound to
/// the unspecified address carries IPv4 too (dual stack) when
/// `dual_stack` is asked and the platform allows it; returns whether it
/// does.
pub fn bind_udp(address: SocketAddr, dual_stack: bool) -> io::Result<(std::net::UdpSocket, bool)> {
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

/// Binds every address of an endpoint: IPv6 sockets carry IPv4 too (dual
/// stack) only when no IPv4 address is bound beside them. Fails with
/// [`Error::Bind`](crate::Error::Bind) naming the address that could not be
/// bound.
pub fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<(std::net::UdpSocket, Local)>, crate::Error> {
    if addrs.is_empty() {
        return Err(crate::Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an endpoint needs at least one address to bind",
        )));
    }
    let has_v4 = addrs.iter().any(SocketAddr::is_ipv4);
    addrs
        .iter()
        .map(|&address| {
            let (udp, dual_stack) = bind_udp(address, !has_v4)
                .map_err(|source| crate::Error::Bind { address, source })?;
            let local = udp.local_addr()?;
            tracing::debug!(%address, %local, dual_stack, "UDP socket bound");
            Ok((udp, Local { address: local, dual_stack }))
        })
        .collect()
}

/// What routing needs to know of one bound socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    /// Its local address.
    pub address: SocketAddr,
    /// An IPv6 socket that also carries IPv4 (as v4-mapped addresses).
    pub dual_stack: bool,
}

impl Local {
    /// Whether this socket can send to `destination`.
    #[must_use]
    pub fn carries(&self, destination: &SocketAddr) -> bool {
        match (self.address, destination) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => true,
            (SocketAddr::V6(_), SocketAddr::V4(_)) => self.dual_stack,
            (SocketAddr::V4(_), SocketAddr::V6(_)) => false,
        }
    }

    fn same_scope(&self, destination: &SocketAddr) -> bool {
        let local = self.address.ip();
        local.is_unspecified() || local.is_loopback() == destination.ip().is_loopback()
    }
}

/// Which socket sends to which destination: the one the destination was
/// last heard on, else the first of its family whose scope (loopback or
/// not) matches, else any that carries it.
#[derive(Debug, Default)]
pub struct Routes {
    locals: Vec<Local>,
    last_heard: HashMap<SocketAddr, usize>,
}

impl Routes {
    /// Routes over sockets `locals`, indexed as given.
    #[must_use]
    pub fn new(locals: Vec<Local>) -> Self {
        Routes { locals, last_heard: HashMap::new() }
    }

    /// The local addresses.
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.locals.iter().map(|l| l.address).collect()
    }

    /// Whether some socket can send to `destination`.
    #[must_use]
    pub fn reaches(&self, destination: &SocketAddr) -> bool {
        self.locals.iter().any(|l| l.carries(destination))
    }

    /// Remembers that `from` was heard on socket `k`.
    pub fn heard(&mut self, from: SocketAddr, k: usize) {
        if self.last_heard.len() >= REMEMBERED_PEERS && !self.last_heard.contains_key(&from) {
            self.last_heard.clear();
        }
        self.last_heard.insert(from, k);
    }

    /// The socket to send to `destination` by, and the address to send to
    /// (v4-mapped on a dual-stack socket); an error naming the missing
    /// family if no socket carries it.
    pub fn route(&self, destination: SocketAddr) -> io::Result<(usize, SocketAddr)> {
        let k = self
            .last_heard
            .get(&destination)
            .copied()
            .filter(|&k| self.locals.get(k).is_some_and(|l| l.carries(&destination)))
            .or_else(|| {
                self.locals
                    .iter()
                    .position(|l| l.carries(&destination) && l.same_scope(&destination))
            })
            .or_else(|| self.locals.iter().position(|l| l.carries(&destination)))
            .ok_or_else(|| no_socket_for(&destination))?;
        let to = match (self.locals.get(k).map(|l| l.address), destination) {
            (Some(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            _ => destination,
        };
        Ok((k, to))
    }
}

/// The error of a destination that no socket carries.
#[must_use]
pub fn no_socket_for(destination: &SocketAddr) -> io::Error {
    let family = if destination.is_ipv4() { "IPv4" } else { "IPv6" };
    io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no socket of this endpoint can send to {destination}: bind an {family} address"),
    )
}

/// An IPv4 peer heard on a dual-stack socket arrives as a v4-mapped IPv6
/// address: the agent sees it as the IPv4 address it is, as cards name it.
#[must_use]
pub fn canonical(from: SocketAddr) -> SocketAddr {
    match from {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => from,
        },
        v4 => v4,
    }
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
    fn each_destination_goes_to_a_socket_of_its_family_and_scope() {
        let v4 = Local { address: "127.0.0.1:4000".parse().unwrap(), dual_stack: false };
        let any4 = Local { address: "0.0.0.0:4001".parse().unwrap(), dual_stack: false };
        let dual = Local { address: "[::]:4002".parse().unwrap(), dual_stack: true };
        let routes = Routes::new(vec![v4, any4]);
        assert_eq!(routes.route("127.0.0.1:9".parse().unwrap()).unwrap().0, 0);
        assert_eq!(routes.route("192.0.2.1:9".parse().unwrap()).unwrap().0, 1);
        let err = routes.route("[::1]:9".parse().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
        let mut routes = Routes::new(vec![dual]);
        let (k, to) = routes.route("192.0.2.1:9".parse().unwrap()).unwrap();
        assert_eq!((k, to), (0, "[::ffff:192.0.2.1]:9".parse().unwrap()));
        routes.heard("192.0.2.1:9".parse().unwrap(), 0);
        assert!(routes.reaches(&"[2001:db8::1]:9".parse().unwrap()));
    }

    #[test]
    fn a_port_in_use_is_a_bind_error_naming_the_address() {
        let (taken, _) = bind_udp("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let address = taken.local_addr().unwrap();
        match bind_all(&[address]) {
            Err(crate::Error::Bind { address: a, source }) => {
                assert_eq!(a, address);
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
        assert!(matches!(bind_all(&[]), Err(crate::Error::Io(_))));
    }
}
