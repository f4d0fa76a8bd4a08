//! Shared helpers of the `mbms-send` integration tests: running the binary, reading and writing
//! pcaps, a multicast listener on loopback with kernel receive timestamps, and an MBMS receiver
//! (MTK messages opened with the MSK, SRTP unprotected under the MTKs) built on mbms-core.
//!
//! Each test file uses a part of this module.

#![allow(dead_code, clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mbms_core::keyfile::MskFile;
use mbms_core::mbms::{MskKey, MtkOpener, OpenedMtk, ReplayCounter, mki};
use mbms_core::srtp::{SrtpPolicy, SrtpReceiver, UnprotectError};
use mbms_core::{Mtk, MtkSalt};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mbms-send")
}

/// Longest any single run of the binary may take in these tests.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A finished run of the binary.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Output {
    /// The last line of standard output, parsed as the JSON stats line.
    pub(crate) fn stats(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no stats line on stdout; stderr:\n{}", self.stderr));
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stats line {line:?} is not JSON: {e}"))
    }

    /// Asserts exit code 0 and no panic.
    pub(crate) fn assert_success(&self) -> &Self {
        self.assert_no_panic();
        assert!(
            self.status.success(),
            "mbms-send failed ({:?}); stderr:\n{}",
            self.status,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit without a panic; returns standard error.
    pub(crate) fn assert_failure(&self) -> &str {
        self.assert_no_panic();
        assert!(
            !self.status.success(),
            "mbms-send succeeded but should have failed; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        // A clean error exit, not a signal (a panic that aborts, a crash).
        assert_eq!(
            self.status.code(),
            Some(1),
            "expected exit code 1; stderr:\n{}",
            self.stderr
        );
        assert!(
            self.stderr.contains("mbms-send: error:"),
            "no error line on stderr:\n{}",
            self.stderr
        );
        &self.stderr
    }

    /// Asserts that standard error shows no panic.
    pub(crate) fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked"),
            "mbms-send panicked:\n{}",
            self.stderr
        );
    }
}

/// Starts the binary with `args`, standard output and error piped.
pub(crate) fn spawn<I, S>(args: I) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mbms-send starts")
}

/// Waits for `child` (killing it after [`RUN_TIMEOUT`]) and collects its output.
pub(crate) fn wait(child: Child, started: Instant) -> Output {
    let f = mbms_testkit::wait_child(child, started, RUN_TIMEOUT, "mbms-send");
    Output {
        status: f.status,
        stdout: f.stdout,
        stderr: f.stderr,
        elapsed: f.elapsed,
    }
}

/// Runs the binary with `args` to its end.
pub(crate) fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let started = Instant::now();
    wait(spawn(args), started)
}

/// `Vec<String>` from string-likes, for building command lines.
pub(crate) fn args<I, S>(parts: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    parts
        .into_iter()
        .map(|s| s.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// Creates an MSK for `service` in the state directory `state`, writes its key file
/// `key_file` and returns it parsed.
pub(crate) fn new_msk(state: &Path, service: &str, key_file: &Path) -> MskFile {
    run([
        OsStr::new("keys"),
        OsStr::new("new"),
        OsStr::new("--state-dir"),
        state.as_os_str(),
        OsStr::new("--service"),
        OsStr::new(service),
        OsStr::new("--out"),
        key_file.as_os_str(),
    ])
    .assert_success();
    MskFile::parse(&std::fs::read_to_string(key_file).unwrap()).unwrap()
}

/// Writes a plain-RTP input capture with the sender itself: `streams` generated streams of
/// `payload`-byte packets, `count` packets at `rate` packets a second of media time (pcap
/// timestamps from media time), Ethernet/IPv4/UDP to port 5004.
pub(crate) fn make_input(path: &Path, streams: u32, payload: usize, count: u64, rate: f64) {
    let out = run(args([
        "send",
        "--generate",
        "--streams",
        &streams.to_string(),
        "--payload-size",
        &payload.to_string(),
        "--count",
        &count.to_string(),
        "--gen-rate",
        &rate.to_string(),
        "--protection",
        "none",
        "--no-network",
        "--fast",
        "--deterministic",
        "1",
        "--progress",
        "never",
        "--pcap-out",
        path.to_str().unwrap(),
    ]));
    out.assert_success();
    assert_eq!(out.stats()["packets"], count);
}

/// One UDP datagram of a pcap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Udp {
    pub(crate) ts: Duration,
    pub(crate) src: SocketAddrV4,
    pub(crate) dst: SocketAddrV4,
    pub(crate) ttl: u8,
    pub(crate) payload: Vec<u8>,
}

/// Strips Ethernet, IPv4 and UDP headers off a frame, checking their lengths and the IPv4
/// header checksum.
pub(crate) fn parse_frame(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, u8, &[u8])> {
    let eth = frame.get(..14)?;
    if eth[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total != ip.len() || ip[9] != 17 {
        return None;
    }
    if ip_checksum(&ip[..ihl]) != 0 {
        return None;
    }
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[ihl..];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if ulen != udp.len() {
        return None;
    }
    Some((
        SocketAddrV4::new(src_ip, sport),
        SocketAddrV4::new(dst_ip, dport),
        ip[8],
        &udp[8..],
    ))
}

/// The UDP datagrams of a classic Ethernet pcap, and whether the file ended cleanly (false:
/// it stops inside a record, as a pcap of a killed writer may).
pub(crate) fn read_pcap(path: &Path) -> (Vec<Udp>, bool) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = match pcap_file::pcap::PcapReader::new(file) {
        Ok(r) => r,
        // Not even a whole file header.
        Err(_) => return (Vec::new(), false),
    };
    assert_eq!(
        reader.header().datalink,
        pcap_file::DataLink::ETHERNET,
        "{}",
        path.display()
    );
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet() {
        let Ok(p) = p else {
            return (out, false);
        };
        assert_eq!(p.data.len(), p.orig_len as usize, "snapped frame");
        let (src, dst, ttl, payload) = parse_frame(&p.data)
            .unwrap_or_else(|| panic!("{}: frame {} is not IPv4/UDP", path.display(), out.len()));
        out.push(Udp {
            ts: p.timestamp,
            src,
            dst,
            ttl,
            payload: payload.to_vec(),
        });
    }
    (out, true)
}

/// All datagrams of a pcap that must be complete.
pub(crate) fn read_complete_pcap(path: &Path) -> Vec<Udp> {
    let (d, complete) = read_pcap(path);
    assert!(complete, "{}: pcap ends inside a record", path.display());
    d
}

/// The Internet checksum of `b` (0 over a header that carries a right one).
pub(crate) fn ip_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/UDP frame (UDP checksum 0: none) of `payload` to `dst`.
pub(crate) fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x01, 0x00, 0x5e, 0x7f, 0x00, 0x01];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    let total = u16::try_from(20 + 8 + payload.len()).unwrap();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 1, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.ip().octets());
    ip.extend_from_slice(&dst.ip().octets());
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Writes an Ethernet pcap (snap length 256 KiB) of UDP `payloads` to `dst_port`, one per
/// millisecond.
pub(crate) fn write_udp_pcap(path: &Path, dst_port: u16, payloads: &[Vec<u8>]) {
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        snaplen: 256 * 1024,
        ..Default::default()
    };
    let f = std::fs::File::create(path).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::with_header(f, header).unwrap();
    let src = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 40_000);
    let dst = SocketAddrV4::new(Ipv4Addr::new(239, 1, 1, 1), dst_port);
    for (i, p) in payloads.iter().enumerate() {
        let frame = udp_frame(src, dst, p);
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_millis(i as u64);
        let pkt = pcap_file::pcap::PcapPacket::new(ts, u32::try_from(frame.len()).unwrap(), &frame);
        w.write_packet(&pkt).unwrap();
    }
}

/// An RTP packet: V=2, PT 96, `seq`, timestamp `seq * 160`, `ssrc`, `n` payload bytes.
pub(crate) fn rtp(seq: u16, ssrc: u32, n: usize) -> Vec<u8> {
    let mut out = vec![0x80, 96];
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend((0..n).map(|i| (usize::from(seq) + i) as u8));
    out
}

/// RTP header fields of a (S)RTP packet: (sequence number, SSRC).
pub(crate) fn seq_ssrc(p: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

/// MKI length of the sender's SRTP policy (MSK ID ‖ MTK ID).
pub(crate) const MKI_LEN: usize = 6;
/// Tag length of the sender's SRTP policy (HMAC-SHA-1 80).
pub(crate) const TAG_LEN: usize = 10;

/// The SRTP policy the sender uses (no `--rcc`).
pub(crate) fn srtp_policy() -> SrtpPolicy {
    let p = SrtpPolicy::without_sp(None).unwrap();
    assert_eq!(p.mki_len, MKI_LEN);
    p
}

/// The MTK ID in the MKI of an SRTP packet (the MKI precedes the 10-byte tag).
pub(crate) fn mtk_id_of(srtp: &[u8]) -> (u32, u16) {
    let m = &srtp[srtp.len() - TAG_LEN - MKI_LEN..srtp.len() - TAG_LEN];
    (
        u32::from_be_bytes([m[0], m[1], m[2], m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// The MSK as a receiver keeps it, from the key file.
pub(crate) fn msk_key(msk: &MskFile) -> MskKey {
    MskKey::from(msk)
}

/// Opens one MTK message under `msk`, whatever its counter (a fresh replay state).
pub(crate) fn open_mtk(msk: &MskFile, message: &[u8]) -> OpenedMtk {
    MtkOpener::new(msk_key(msk), ReplayCounter::default())
        .open(message)
        .unwrap_or_else(|e| panic!("MTK message does not open: {e}"))
}

/// Whether two opened MTK messages carry the same key (MTK and salt).
pub(crate) fn same_key(a: &OpenedMtk, b: &OpenedMtk) -> bool {
    a.mtk == b.mtk && a.salt == b.salt
}

/// An MBMS receiver: MTK messages opened under the MSK (counters must rise), SRTP packets
/// unprotected under the MTK their MKI names.
pub(crate) struct MbmsReceiver {
    msk: MskFile,
    opener: MtkOpener,
    srtp: SrtpReceiver,
    /// MTKs known, by ID.
    pub(crate) mtks: HashMap<u16, (Mtk, Option<MtkSalt>)>,
    /// Every MTK message opened, in order.
    pub(crate) opened: Vec<OpenedMtk>,
}

impl MbmsReceiver {
    pub(crate) fn new(msk: &MskFile) -> Self {
        Self {
            msk: msk.clone(),
            opener: MtkOpener::new(msk_key(msk), ReplayCounter::default()),
            srtp: SrtpReceiver::new(srtp_policy()),
            mtks: HashMap::new(),
            opened: Vec::new(),
        }
    }

    /// Opens an MTK message and keys SRTP with its MTK. Panics if it does not open (bad MAC,
    /// counter not above the last one, ...), or if a known MTK ID comes with another key.
    pub(crate) fn on_mikey(&mut self, message: &[u8]) -> OpenedMtk {
        let o = self
            .opener
            .open(message)
            .unwrap_or_else(|e| panic!("MTK message #{} refused: {e}", self.opened.len() + 1));
        let salt = o.salt.clone().expect("MTK message carries a salt");
        match self.mtks.get(&o.mtk_id.0) {
            Some((k, s)) => assert!(
                *k == o.mtk && s.as_ref() == Some(&salt),
                "MTK ID {} announced again with another key",
                o.mtk_id.0
            ),
            None => {
                self.srtp
                    .add_key(&mki(self.msk.msk_id, o.mtk_id), &o.mtk, &salt);
                self.mtks.insert(o.mtk_id.0, (o.mtk.clone(), Some(salt)));
            }
        }
        self.opened.push(o.clone());
        o
    }

    /// Unprotects an SRTP packet; the RTP packet.
    pub(crate) fn on_srtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, UnprotectError> {
        let mut buf = packet.to_vec();
        let n = self.srtp.unprotect(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The highest SRTP index accepted on `ssrc`.
    pub(crate) fn highest_index(&self, ssrc: u32) -> Option<u64> {
        self.srtp.highest_index(ssrc)
    }
}

/// A receiver for the stream of `first` (its first packet in a run), with the keys of the run
/// and the initial ROC under which `first` authenticates.
pub(crate) fn find_roc(
    msk: &MskFile,
    keys: &[OpenedMtk],
    first: &[u8],
    max_roc: u32,
) -> Option<SrtpReceiver> {
    let build = |roc: u32| {
        let mut rx = SrtpReceiver::new(srtp_policy());
        rx.set_initial_roc(roc);
        for o in keys {
            rx.add_key(&mki(msk.msk_id, o.mtk_id), &o.mtk, o.salt.as_ref().unwrap());
        }
        rx
    };
    (0..=max_roc).find_map(|roc| {
        let mut buf = first.to_vec();
        build(roc).unprotect(&mut buf).ok().map(|_| build(roc))
    })
}

/// A datagram received by a [`Listener`].
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// Kernel receive timestamp (SO_TIMESTAMPNS), ns since the epoch.
    pub(crate) ts: i128,
    /// The local port it arrived on.
    pub(crate) port: u16,
    pub(crate) bytes: Vec<u8>,
    /// Datagrams the kernel had dropped on this socket before this one (SO_RXQ_OVFL).
    pub(crate) drops: u32,
}

/// Listens to a multicast group on loopback on several ports. The sockets are joined before
/// [`listen`](Self::listen) returns, so nothing sent after that is missed.
pub(crate) struct Listener {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Received>>>,
}

impl Listener {
    pub(crate) fn listen(group: Ipv4Addr, ports: &[u16]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for &port in ports {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            s.set_reuse_address(true).unwrap();
            // Bound to the group: only datagrams to this group, not another test's.
            s.bind(&SocketAddrV4::new(group, port).into()).unwrap();
            s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
            let _ = s.set_multicast_all_v4(false);
            // Beyond net.core.rmem_max where allowed (CAP_NET_ADMIN), else up to it.
            if setsockopt(&s, sockopt::RcvBufForce, &(16 << 20)).is_err() {
                let _ = s.set_recv_buffer_size(16 << 20);
            }
            // Report kernel drops (a full receive queue) with the datagrams.
            setsockopt(&s, sockopt::RxqOvfl, &1).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            setsockopt(&s, sockopt::ReceiveTimestampns, &true).unwrap();
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || receive_loop(&s, port, &stop)));
        }
        Self { stop, threads }
    }

    /// Stops listening (after draining what is queued); every datagram of every port, in
    /// order of kernel receive time. Panics if the kernel dropped any for a full queue (a
    /// test machine too slow to keep up, not a sender fault).
    pub(crate) fn finish(self) -> Vec<Received> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Received> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let drops = all.iter().map(|r| r.drops).max().unwrap_or(0);
        assert_eq!(
            drops, 0,
            "the listener's receive queue overflowed: the kernel dropped {drops} datagrams"
        );
        // Stable: datagrams of one port keep their queue order on equal timestamps.
        all.sort_by_key(|r| r.ts);
        all
    }
}

fn receive_loop(s: &Socket, port: u16, stop: &AtomicBool) -> Vec<Received> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let mut cmsg = nix::cmsg_space!(TimeSpec, u32);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<SockaddrIn>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
            Ok(m) => {
                let (mut ts, mut drops) = (None, 0);
                for c in m.cmsgs().unwrap() {
                    match c {
                        ControlMessageOwned::ScmTimestampns(t) => {
                            ts = Some(
                                i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()),
                            );
                        }
                        ControlMessageOwned::RxqOvfl(n) => drops = n,
                        _ => {}
                    }
                }
                let n = m.bytes;
                out.push(Received {
                    ts: ts.expect("SO_TIMESTAMPNS timestamp"),
                    port,
                    bytes: buf[..n].to_vec(),
                    drops,
                });
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {
                if stopping {
                    return out;
                }
            }
            Err(e) => panic!("recvmsg on port {port}: {e}"),
        }
    }
}

/// A directory of its own for one test.
pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
