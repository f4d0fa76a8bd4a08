//! A multicast reader for benchmarks: joins a group on an interface address, drains it as fast
//! as it can and prints what it got as one JSON line when the stream stops (idle for 1 s after
//! the first datagram) or after `--max-secs`.
//!
//! With UDP GRO on (the default) the kernel hands over runs of datagrams in one read, each run
//! with its segment size, so the reader costs little per datagram; the count is still exact
//! (`bytes / segment`, the last one shorter).
//!
//! usage: mcast-sink GROUP PORT [IFACE_ADDR] [--no-gro] [--max-secs S]

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut pos = Vec::new();
    let (mut gro, mut max_secs) = (true, 600.0f64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-gro" => gro = false,
            "--max-secs" => max_secs = args.next().ok_or("--max-secs needs a value")?.parse()?,
            _ => pos.push(a),
        }
    }
    let [group, port, rest @ ..] = &pos[..] else {
        return Err("usage: mcast-sink GROUP PORT [IFACE_ADDR] [--no-gro] [--max-secs S]".into());
    };
    let group: Ipv4Addr = group.parse()?;
    let port: u16 = port.parse()?;
    let iface: Ipv4Addr = rest
        .first()
        .map_or(Ok(Ipv4Addr::LOCALHOST), |s| s.parse())?;

    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    let _ = s.set_recv_buffer_size(64 << 20);
    s.bind(&SocketAddrV4::new(group, port).into())?;
    s.join_multicast_v4(&group, &iface)?;
    let sock: UdpSocket = s.into();
    if gro {
        setsockopt(&sock, sockopt::UdpGroSegment, &true)?;
    }
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    eprintln!("mcast-sink: listening on {group}:{port} via {iface} (GRO {gro})");

    let mut buf = vec![0u8; 65_536];
    let mut cmsg = nix::cmsg_space!(i32);
    let (mut datagrams, mut bytes, mut reads) = (0u64, 0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, Instant::now());
    let start = Instant::now();
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) {
            Ok(m) => {
                let n = m.bytes;
                let mut seg = n;
                for c in m.cmsgs()? {
                    if let ControlMessageOwned::UdpGroSegments(s) = c {
                        seg = usize::try_from(s).unwrap_or(n).max(1);
                    }
                }
                datagrams += n.div_ceil(seg.max(1)) as u64;
                bytes += n as u64;
                reads += 1;
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let idle = first.is_some() && last.elapsed() > Duration::from_secs(1);
        if idle || start.elapsed().as_secs_f64() > max_secs {
            break;
        }
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!(
        "{{\"datagrams\":{datagrams},\"bytes\":{bytes},\"reads\":{reads},\"seconds\":{secs:.6},\"datagrams_per_s\":{:.0}}}",
        if secs > 0.0 {
            datagrams as f64 / secs
        } else {
            0.0
        }
    );
    Ok(())
}
