//! Shared helpers of the `mbms-recv` integration tests: running `mbms-recv` and `mbms-send`
//! (the sibling binary of the workspace), the JSON report, key files and captures made by the
//! sender, pcap reading/rewriting (fault injection), and waiting for a multicast join.
//!
//! Each test file uses a part of this module.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::missing_panics_doc
)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mbms_core::keyfile::MskFile;

/// `mbms-recv`, the binary under test.
pub(crate) fn recv_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mbms-recv"))
}

/// `mbms-send`: another package's binary, so not in `CARGO_BIN_EXE_*`; `cargo test --workspace`
/// builds it next to `mbms-recv`.
pub(crate) fn send_bin() -> PathBuf {
    let recv = recv_bin();
    let send = recv
        .parent()
        .unwrap()
        .join(format!("mbms-send{}", std::env::consts::EXE_SUFFIX));
    assert!(
        send.is_file(),
        "{} not found: these tests drive the sender binary too; run `cargo build -p mbms-sender` \
         (or `cargo test --workspace`) first",
        send.display()
    );
    send
}

/// Longest any single run of a binary may take in these tests.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A finished run of a binary.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Output {
    /// The last line of standard output, parsed as JSON (the report of `mbms-recv`, the stats of
    /// `mbms-send`).
    pub(crate) fn json(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no JSON line on stdout; stderr:\n{}", self.stderr));
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {line:?} is not JSON: {e}; stderr:\n{}", self.stderr))
    }

    /// The report of `mbms-recv`.
    pub(crate) fn report(&self) -> Report {
        let v = self.json();
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("report {v} does not have the expected shape: {e}"))
    }

    /// Asserts exit code 0 and no panic.
    pub(crate) fn assert_success(&self) -> &Self {
        self.assert_no_panic();
        assert!(
            self.status.success(),
            "run failed ({:?}); stdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a clean error exit of `mbms-recv` (code 1, one `mbms-recv: error:` line, no
    /// report); returns standard error.
    pub(crate) fn assert_error(&self) -> &str {
        self.assert_no_panic();
        assert_eq!(
            self.status.code(),
            Some(1),
            "expected exit code 1; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains("mbms-recv: error:"),
            "no error line on stderr:\n{}",
            self.stderr
        );
        &self.stderr
    }

    /// Asserts that standard error shows no panic (and no abort by signal).
    pub(crate) fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked"),
            "panicked:\n{}",
            self.stderr
        );
        assert!(
            self.status.code().is_some(),
            "killed by a signal ({:?}); stderr:\n{}",
            self.status,
            self.stderr
        );
    }
}

/// Starts `bin` with `args`, standard output and error piped.
pub(crate) fn spawn<I, S>(bin: &Path, args: I) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()))
}

/// Waits for `child` (killing it after [`RUN_TIMEOUT`]) and collects its output.
pub(crate) fn wait(child: Child, started: Instant) -> Output {
    let f = mbms_testkit::wait_child(child, started, RUN_TIMEOUT, "mbms-recv");
    Output {
        status: f.status,
        stdout: f.stdout,
        stderr: f.stderr,
        elapsed: f.elapsed,
    }
}

/// Runs `bin` with `args` to its end.
pub(crate) fn run<I, S>(bin: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let started = Instant::now();
    wait(spawn(bin, args), started)
}

/// Runs `mbms-recv` with `args` to its end.
pub(crate) fn recv<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(&recv_bin(), args)
}

/// Runs `mbms-send` with `args` to its end.
pub(crate) fn send<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(&send_bin(), args)
}

/// A path as a command-line argument.
pub(crate) fn p(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// A directory of its own for one test.
pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// The counters of one service in the report.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Counters {
    pub(crate) name: String,
    pub(crate) packets_ok: u64,
    pub(crate) bytes_ok: u64,
    pub(crate) auth_failed: u64,
    pub(crate) replayed: u64,
    pub(crate) unknown_mki: u64,
    pub(crate) waiting_for_key: u64,
    pub(crate) roc_not_synchronized: u64,
    pub(crate) malformed: BTreeMap<String, u64>,
    pub(crate) mtk_accepted: u64,
    pub(crate) mtk_repeated: u64,
    pub(crate) mtk_rejected: BTreeMap<String, u64>,
    pub(crate) mtk_ids: Vec<u16>,
    pub(crate) first_packet_ms: Option<f64>,
}

impl Counters {
    /// Media datagrams refused, whatever the reason (waiting for the first key excluded).
    pub(crate) fn media_failures(&self) -> u64 {
        self.auth_failed
            + self.replayed
            + self.unknown_mki
            + self.roc_not_synchronized
            + self.malformed.values().sum::<u64>()
    }

    /// Every media datagram, under whichever outcome it was counted.
    pub(crate) fn media_datagrams(&self) -> u64 {
        self.packets_ok + self.media_failures() + self.waiting_for_key
    }

    /// Every MIKEY datagram, under whichever outcome it was counted.
    pub(crate) fn mikey_datagrams(&self) -> u64 {
        self.mtk_accepted + self.mtk_repeated + self.mtk_rejected.values().sum::<u64>()
    }

    /// Asserts that nothing at all went wrong.
    pub(crate) fn assert_clean(&self) {
        assert_eq!(self.media_failures(), 0, "media failures: {self:?}");
        assert!(
            self.mtk_rejected.is_empty(),
            "MTK messages rejected: {self:?}"
        );
    }
}

/// The whole report of a run.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Report {
    pub(crate) services: Vec<Counters>,
    pub(crate) strict_ok: bool,
    pub(crate) run: serde_json::Value,
}

impl Report {
    /// The only service.
    pub(crate) fn one(&self) -> &Counters {
        assert_eq!(self.services.len(), 1, "{self:?}");
        &self.services[0]
    }

    /// The service named `name`.
    pub(crate) fn service(&self, name: &str) -> &Counters {
        self.services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name:?} in {self:?}"))
    }

    /// `run.<key>` as a number.
    pub(crate) fn run_u64(&self, key: &str) -> u64 {
        self.run[key]
            .as_u64()
            .unwrap_or_else(|| panic!("run.{key} missing in {}", self.run))
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and captures made by the sender
// ---------------------------------------------------------------------------------------------

/// Creates a new MSK for `service` in the key store `state` (it becomes the service's current
/// MSK), writes its key file `out` and returns it parsed.
pub(crate) fn new_msk(state: &Path, service: &str, out: &Path) -> MskFile {
    send([
        "keys",
        "new",
        "--state-dir",
        &p(state),
        "--service",
        service,
        "--out",
        &p(out),
    ])
    .assert_success();
    MskFile::parse(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// Writes a plain-RTP input capture with the sender (`--protection none`): `streams` generated
/// streams of `payload`-byte packets, `count` packets at `rate` packets a second of media time.
pub(crate) fn make_plain_input(path: &Path, streams: u32, payload: usize, count: u64, rate: f64) {
    let out = send([
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
        &p(path),
    ]);
    out.assert_success();
    assert_eq!(out.json()["packets"], count);
}

/// Where a service is on the bearer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bearer {
    pub(crate) group: Ipv4Addr,
    pub(crate) port: u16,
    pub(crate) mikey_port: u16,
}

impl Bearer {
    pub(crate) const fn new(group: Ipv4Addr, port: u16, mikey_port: u16) -> Self {
        Self {
            group,
            port,
            mikey_port,
        }
    }

    /// `--group G --port P --mikey-port M` (for either binary).
    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            "--group".into(),
            self.group.to_string(),
            "--port".into(),
            self.port.to_string(),
            "--mikey-port".into(),
            self.mikey_port.to_string(),
        ]
    }

    /// `name=N,group=G,port=P,mikey-port=M` and one `msk=F` per key file (for `--service`).
    pub(crate) fn service_spec(&self, name: &str, keys: &[&Path]) -> String {
        let mut s = format!(
            "name={name},group={},port={},mikey-port={}",
            self.group, self.port, self.mikey_port
        );
        for k in keys {
            s.push_str(",msk=");
            s.push_str(&p(k));
        }
        s
    }
}

/// A deterministic protected capture from the generator (`--no-network --fast --deterministic`:
/// MTK rotation and repeats on media time, byte-identical every run).
#[derive(Debug, Clone)]
pub(crate) struct Protected {
    pub(crate) seed: u64,
    pub(crate) streams: u32,
    pub(crate) payload: usize,
    pub(crate) count: u64,
    pub(crate) rate: f64,
    pub(crate) rotate_secs: f64,
    /// A new MTK every so many packets instead of `rotate_secs`.
    pub(crate) rotate_packets: Option<u64>,
    pub(crate) repeat_secs: f64,
}

impl Default for Protected {
    fn default() -> Self {
        Self {
            seed: 5,
            streams: 2,
            payload: 100,
            count: 600,
            rate: 1000.0,
            rotate_secs: 0.2,
            rotate_packets: None,
            repeat_secs: 0.1,
        }
    }
}

impl Protected {
    /// Writes the capture to `out` with a fresh key store in `state` and the key file `key`;
    /// the sender's stats line.
    pub(crate) fn make(
        &self,
        state: &Path,
        key: &Path,
        bearer: &Bearer,
        out: &Path,
    ) -> serde_json::Value {
        let mut a = vec![
            "send".to_owned(),
            "--state-dir".into(),
            p(state),
            "--msk-file".into(),
            p(key),
            "--generate".into(),
            "--streams".into(),
            self.streams.to_string(),
            "--payload-size".into(),
            self.payload.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--gen-rate".into(),
            self.rate.to_string(),
            "--repeat-secs".into(),
            self.repeat_secs.to_string(),
            "--no-network".into(),
            "--fast".into(),
            "--deterministic".into(),
            self.seed.to_string(),
            "--progress".into(),
            "never".into(),
            "--pcap-out".into(),
            p(out),
        ];
        match self.rotate_packets {
            Some(n) => a.extend(["--rotate-packets".into(), n.to_string()]),
            None => a.extend(["--rotate-secs".into(), self.rotate_secs.to_string()]),
        }
        a.extend(bearer.args());
        let o = send(&a);
        o.assert_success();
        let stats = o.json();
        assert_eq!(stats["packets"], self.count, "{stats}");
        stats
    }
}

// ---------------------------------------------------------------------------------------------
// Captures
// ---------------------------------------------------------------------------------------------

/// One UDP datagram of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Udp {
    pub(crate) ts: Duration,
    pub(crate) src: SocketAddrV4,
    pub(crate) dst: SocketAddrV4,
    pub(crate) payload: Vec<u8>,
}

/// Strips Ethernet, IPv4 and UDP headers off a frame.
pub(crate) fn parse_frame(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    let eth = frame.get(..14)?;
    if eth[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 || ip[9] != 17 {
        return None;
    }
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[ihl..];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    Some((
        SocketAddrV4::new(src_ip, sport),
        SocketAddrV4::new(dst_ip, dport),
        udp.get(8..ulen)?,
    ))
}

/// The UDP datagrams of a complete Ethernet pcap.
pub(crate) fn read_udp(path: &Path) -> Vec<Udp> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    assert_eq!(reader.header().datalink, pcap_file::DataLink::ETHERNET);
    let mut out = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (src, dst, payload) = parse_frame(&pkt.data)
            .unwrap_or_else(|| panic!("{}: frame {} is not IPv4/UDP", path.display(), out.len()));
        out.push(Udp {
            ts: pkt.timestamp,
            src,
            dst,
            payload: payload.to_vec(),
        });
    }
    out
}

/// The Internet checksum of `b`.
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

/// An Ethernet/IPv4/UDP frame of `payload` (UDP checksum 0: none).
pub(crate) fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let o = dst.ip().octets();
    let mut f = vec![0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]];
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

/// Writes `datagrams` as a classic Ethernet pcap (µs timestamps).
pub(crate) fn write_udp(path: &Path, datagrams: &[Udp]) {
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        snaplen: 256 * 1024,
        ..Default::default()
    };
    let f = std::fs::File::create(path).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::with_header(f, header).unwrap();
    for d in datagrams {
        let frame = udp_frame(d.src, d.dst, &d.payload);
        let pkt =
            pcap_file::pcap::PcapPacket::new(d.ts, u32::try_from(frame.len()).unwrap(), &frame);
        w.write_packet(&pkt).unwrap();
    }
}

/// The RTP payloads (UDP payloads) of a capture, in order.
pub(crate) fn payloads(path: &Path) -> Vec<Vec<u8>> {
    read_udp(path).into_iter().map(|u| u.payload).collect()
}

/// RTP header fields: (sequence number, SSRC).
pub(crate) fn seq_ssrc(p: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

/// Checks a decrypted generator packet against the generator's pattern (mbms-sender
/// generator.rs `payload()`): 12-byte RTP header, then (stream, packet number) big-endian,
/// then byte `i` is `(n + i) mod 256`. Returns (stream, packet number).
pub(crate) fn check_generated(rtp: &[u8], payload_size: usize) -> (u32, u32) {
    assert_eq!(rtp.len(), 12 + payload_size, "RTP length");
    assert_eq!(rtp[0], 0x80, "RTP version / flags");
    let pl = &rtp[12..];
    let stream = u32::from_be_bytes([pl[0], pl[1], pl[2], pl[3]]);
    let n = u32::from_be_bytes([pl[4], pl[5], pl[6], pl[7]]);
    for (i, &b) in pl.iter().enumerate().skip(8) {
        assert_eq!(
            b,
            (n as usize).wrapping_add(i) as u8,
            "payload byte {i} of packet {n} of stream {stream}"
        );
    }
    (stream, n)
}

// ---------------------------------------------------------------------------------------------
// Live runs
// ---------------------------------------------------------------------------------------------

/// `/proc/net/igmp` users of `group` on the loopback device (None: the file is not there).
fn igmp_users(group: Ipv4Addr) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/net/igmp").ok()?;
    // Groups are printed as the 32-bit address in host byte order (little-endian here).
    let hex = format!("{:08X}", u32::from_le_bytes(group.octets()));
    let mut on_lo = false;
    for line in text.lines() {
        if !line.starts_with('\t') {
            on_lo = line.split_whitespace().nth(1) == Some("lo");
            continue;
        }
        let mut f = line.split_whitespace();
        if on_lo && f.next() == Some(hex.as_str()) {
            return f.next().and_then(|u| u.parse().ok());
        }
    }
    Some(0)
}

/// Waits until `users` sockets have joined `group` on loopback (a receiver is ready), or a
/// fixed half second where `/proc/net/igmp` is not available.
pub(crate) fn wait_joined(group: Ipv4Addr, users: u32, child: &mut Child) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("mbms-recv ended ({status:?}) before joining {group}");
        }
        match igmp_users(group) {
            None => {
                std::thread::sleep(Duration::from_millis(500));
                return;
            }
            Some(n) if n >= users => {
                // The receiving threads start right after the join; datagrams queue meanwhile.
                return;
            }
            Some(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mbms-recv did not join {group} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `mbms-recv listen`; killed if dropped before [`finish`](Self::finish) (a failed
/// test leaves no receiver behind).
pub(crate) struct Listening {
    child: Option<Child>,
    started: Instant,
}

impl Listening {
    /// Starts `mbms-recv listen` with `args` and waits until its sockets (2 per service in
    /// `groups`) have joined.
    pub(crate) fn start(args: &[String], groups: &[Ipv4Addr]) -> Self {
        let mut me = Self::start_now(args);
        for g in groups {
            wait_joined(*g, 2, me.child.as_mut().unwrap());
        }
        me
    }

    /// Starts it without waiting for the join.
    pub(crate) fn start_now(args: &[String]) -> Self {
        let started = Instant::now();
        let child = spawn(
            &recv_bin(),
            std::iter::once("listen".to_owned()).chain(args.iter().cloned()),
        );
        Self {
            child: Some(child),
            started,
        }
    }

    /// The process id (to signal it).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the end of the run.
    pub(crate) fn finish(mut self) -> Output {
        wait(self.child.take().unwrap(), self.started)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `mbms-send send` of the capture `input` (or with extra generator args) to `bearer` on `lo`,
/// paced, with the key file `key`.
pub(crate) fn send_live(state: &Path, key: &Path, bearer: &Bearer, extra: &[&str]) -> Output {
    let mut a = vec![
        "send".to_owned(),
        "--state-dir".into(),
        p(state),
        "--msk-file".into(),
        p(key),
        "--interface".into(),
        "lo".into(),
        "--progress".into(),
        "never".into(),
    ];
    a.extend(bearer.args());
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    let o = send(&a);
    o.assert_success();
    o
}
