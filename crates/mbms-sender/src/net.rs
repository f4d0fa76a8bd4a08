//! The MBMS bearer: a UDP socket sending to a multicast group, with batched sends.
//!
//! Runs of equal-sized datagrams to one destination go out in one `sendmsg` with UDP GSO
//! (Linux ≥ 4.18: the kernel cuts the buffer into datagrams of `segment` bytes), which is what
//! makes a million datagrams a second affordable. If the kernel or the route refuses GSO, the
//! bearer falls back to one `sendto` per datagram for the rest of the run. All through
//! `socket2` and `nix`: no `unsafe` here.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use socket2::{Domain, Protocol, Socket, Type};

/// Largest number of segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 on older
/// kernels).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Largest GSO buffer: an IP datagram's 64 KiB less the IPv6 and UDP headers.
pub const MAX_GSO_BYTES: usize = 65_535 - 40 - 8;

/// How the bearer socket is set up.
#[derive(Debug, Clone)]
pub struct BearerOptions {
    /// Multicast group (or unicast address) the datagrams go to.
    pub group: IpAddr,
    /// Outgoing interface: an IPv4 address, an interface name (`lo`, `eth0`) or index.
    pub interface: Option<String>,
    /// Multicast TTL (IPv6 hop limit).
    pub ttl: u32,
    /// Whether this host's own listeners get the datagrams (IP_MULTICAST_LOOP).
    pub loopback: bool,
    /// Local UDP port to send from (ephemeral if `None`).
    pub source_port: Option<u16>,
    /// Use UDP GSO when the kernel takes it.
    pub gso: bool,
    /// Socket send buffer, bytes.
    pub send_buffer: usize,
}

/// Why the bearer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A socket call failed.
    #[error("{what}: {source}")]
    Socket {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The outgoing interface was not found.
    #[error(
        "interface {0:?} not found (give an interface name such as lo, an index, or an address)"
    )]
    NoInterface(String),
    /// The kernel has no route to the group.
    #[error(
        "no route to {group}: {source} (give --interface, e.g. --interface lo for this host only, or add a multicast route)"
    )]
    NoRoute {
        /// The group.
        group: IpAddr,
        /// The OS error.
        source: io::Error,
    },
}

fn sock_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Socket { what, source }
}

/// Resolves `--interface` for IPv4 (an address) and IPv6 (an index).
enum Interface {
    V4(Ipv4Addr),
    Index(u32),
}

fn resolve_interface(name: &str, v6: bool) -> Result<Interface, NetError> {
    if let (Ok(a), false) = (name.parse::<Ipv4Addr>(), v6) {
        return Ok(Interface::V4(a));
    }
    let index = name.parse::<u32>().ok();
    if v6 {
        if let Some(i) = index {
            return Ok(Interface::Index(i));
        }
        let i = nix::net::if_::if_nametoindex(name)
            .map_err(|_| NetError::NoInterface(name.to_owned()))?;
        return Ok(Interface::Index(i));
    }
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| NetError::Socket {
        what: "listing interfaces".into(),
        source: e.into(),
    })?;
    for ifa in addrs {
        let same = match index {
            Some(i) => nix::net::if_::if_nametoindex(ifa.interface_name.as_str()) == Ok(i),
            None => ifa.interface_name == name,
        };
        if !same {
            continue;
        }
        if let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
            return Ok(Interface::V4(sin.ip()));
        }
    }
    Err(NetError::NoInterface(name.to_owned()))
}

/// The sending socket of one service.
pub struct Bearer {
    socket: UdpSocket,
    local: SocketAddr,
    gso: bool,
    /// GSO sends done (for the stats).
    pub gso_sends: u64,
}

impl Bearer {
    /// Opens the socket, sets the multicast options and checks that the group is routable.
    pub fn open(o: &BearerOptions) -> Result<Self, NetError> {
        let v6 = o.group.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(sock_err("creating the UDP socket"))?;
        let iface = o
            .interface
            .as_deref()
            .map(|n| resolve_interface(n, v6))
            .transpose()?;
        if o.group.is_multicast() {
            if v6 {
                s.set_multicast_hops_v6(o.ttl)
                    .map_err(sock_err("setting the multicast hop limit"))?;
                s.set_multicast_loop_v6(o.loopback)
                    .map_err(sock_err("setting multicast loopback"))?;
            } else {
                s.set_multicast_ttl_v4(o.ttl)
                    .map_err(sock_err("setting the multicast TTL"))?;
                s.set_multicast_loop_v4(o.loopback)
                    .map_err(sock_err("setting multicast loopback"))?;
            }
            set_interface(&s, iface.as_ref())?;
        }
        if o.send_buffer > 0 {
            // Best effort: the kernel caps it at net.core.wmem_max.
            let _ = s.set_send_buffer_size(o.send_buffer);
        }
        let bind: SocketAddr = match (v6, &iface) {
            (false, Some(Interface::V4(a))) => (IpAddr::V4(*a), o.source_port.unwrap_or(0)).into(),
            (false, _) => (Ipv4Addr::UNSPECIFIED, o.source_port.unwrap_or(0)).into(),
            (true, _) => (std::net::Ipv6Addr::UNSPECIFIED, o.source_port.unwrap_or(0)).into(),
        };
        if o.source_port.is_some() {
            s.set_reuse_address(true)
                .map_err(sock_err("setting SO_REUSEADDR"))?;
        }
        s.bind(&bind.into())
            .map_err(sock_err(format!("binding the source address {bind}")))?;
        let socket: UdpSocket = s.into();
        // Route check on a twin socket: connect() looks the route up and fails now, with a
        // message, rather than on the first send.
        let probe = route_probe(o, iface.as_ref(), v6)?;
        let local_ip = probe.ip();
        let port = socket
            .local_addr()
            .map_err(sock_err("reading the local address"))?
            .port();
        Ok(Self {
            socket,
            local: SocketAddr::new(local_ip, port),
            gso: o.gso,
            gso_sends: 0,
        })
    }

    /// The address the datagrams come from (the route's source address and the bound port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether GSO is (still) in use.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends the datagrams `parts` to `dst`: all of `segment` bytes but the last, which may be
    /// shorter. One GSO `sendmsg` when there are several, without copying them together.
    pub fn send_vectored(
        &mut self,
        dst: SocketAddr,
        segment: usize,
        parts: &[IoSlice<'_>],
    ) -> io::Result<()> {
        if parts.len() > 1 && self.gso {
            let seg = u16::try_from(segment).map_err(io::Error::other)?;
            let addr = SockaddrStorage::from(dst);
            let cmsg = [ControlMessage::UdpGsoSegments(&seg)];
            match sendmsg(
                self.socket.as_raw_fd(),
                parts,
                &cmsg,
                MsgFlags::empty(),
                Some(&addr),
            ) {
                Ok(_) => {
                    self.gso_sends += 1;
                    return Ok(());
                }
                Err(nix::errno::Errno::EIO)
                | Err(nix::errno::Errno::EINVAL)
                | Err(nix::errno::Errno::ENOPROTOOPT)
                | Err(nix::errno::Errno::EOPNOTSUPP) => self.gso = false,
                Err(e) => return Err(e.into()),
            }
        }
        for d in parts {
            self.send_one(dst, d)?;
        }
        Ok(())
    }

    fn send_one(&self, dst: SocketAddr, d: &[u8]) -> io::Result<()> {
        loop {
            match self.socket.send_to(d, dst) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The outgoing interface of multicast sends (resolved for the socket's family).
fn set_interface(s: &Socket, iface: Option<&Interface>) -> Result<(), NetError> {
    match iface {
        Some(Interface::V4(a)) => s.set_multicast_if_v4(a),
        Some(Interface::Index(i)) => s.set_multicast_if_v6(*i),
        None => Ok(()),
    }
    .map_err(sock_err("setting the multicast interface"))
}

fn route_probe(
    o: &BearerOptions,
    iface: Option<&Interface>,
    v6: bool,
) -> Result<SocketAddr, NetError> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let p = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(sock_err("creating the route probe socket"))?;
    set_interface(&p, iface)?;
    let target = SocketAddr::new(o.group, 9);
    p.connect(&target.into())
        .map_err(|source| NetError::NoRoute {
            group: o.group,
            source,
        })?;
    let local = p
        .local_addr()
        .map_err(sock_err("reading the route's source address"))?;
    local.as_socket().ok_or_else(|| NetError::NoRoute {
        group: o.group,
        source: io::Error::other("no source address"),
    })
}
