//! The command line: `mbms-recv listen` (multicast) and `mbms-recv pcap` (offline).

use std::io::{BufWriter, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use clap::{Args, Parser, Subcommand};
use mbms_capture::pcap::{Filter, PcapSource};
use mbms_capture::pcapout::PcapOut;
use mbms_core::keyfile::MskFile;

use crate::service::{Counters, Outcome, ServiceRx, ServiceSpec};

const EXAMPLES: &str = "\
Examples:
  # Receive the demo of `mbms-send demo` (run it in another terminal) for 5 s
  mbms-recv listen --msk-file mbms-demo-state/demo.msk --group 239.255.0.1 --duration 5

  # Two services at once, each with its key file
  mbms-recv listen --service name=tv1,group=239.1.1.1,port=5004,msk=tv1.msk \\
                   --service name=tv2,group=239.1.1.2,port=5004,msk=tv2.msk --interface eth0

  # A download service: the files of `mbms-send download` into ./inbox, stop after 20
  mbms-recv download --msk-file files1.msk --group 239.1.1.2 --out-dir inbox --expect 20

  # Check a capture offline; fail (exit 1) on any auth failure, replay or rejected MTK message
  mbms-recv pcap out.pcap --msk-file tv1.msk --strict --rtp-out decrypted.pcap";

/// The UE side of an MBMS bearer (3GPP TS 33.246): keys up from MIKEY MTK messages with the
/// MSK, decrypts SRTP with the MTK each packet's MKI names, and counts every datagram.
#[derive(Debug, Parser)]
#[command(name = "mbms-recv", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Joins the services' multicast groups and receives until --duration, --idle or Ctrl-C.
    #[command(after_help = EXAMPLES)]
    Listen(ListenArgs),
    /// Reads a pcap/pcapng of a bearer (as fast as possible): datagrams go to the service whose
    /// group and port they were sent to.
    #[command(after_help = EXAMPLES)]
    Pcap(PcapArgs),
    /// Receives a download service (FLUTE, from a group or a capture): MTK messages opened with
    /// the MSK key files, DCF objects opened with their MTKs, files written to --out-dir.
    #[command(after_help = EXAMPLES)]
    Download(crate::download::DownloadArgs),
}

#[derive(Debug, Args)]
struct ServiceArgs {
    /// A service: name=N,group=G,port=P,mikey-port=M,msk=FILE[,msk=FILE2][,rcc=R] (repeatable).
    #[arg(long = "service", value_name = "SPEC")]
    services: Vec<String>,
    /// Key file of the (single) service given by --group (repeatable across an MSK change).
    #[arg(long, value_name = "FILE")]
    msk_file: Vec<PathBuf>,
    /// Multicast group of the single service.
    #[arg(long)]
    group: Option<IpAddr>,
    /// SRTP port of the single service [default: 5004].
    #[arg(long)]
    port: Option<u16>,
    /// MIKEY port of the single service [default: 2269].
    #[arg(long)]
    mikey_port: Option<u16>,
    /// RFC 4771 RCC mode 2 rate of the single service, as the sender's --rcc.
    #[arg(long, value_name = "R")]
    rcc: Option<u16>,
}

#[derive(Debug, Args)]
struct Common {
    /// Exit 1 if any service saw a failure (auth, replay, unknown MKI, malformed datagram,
    /// rejected MTK message) or decrypted nothing.
    #[arg(long)]
    strict: bool,
    /// Write the decrypted RTP into this pcap.
    #[arg(long, value_name = "FILE")]
    rtp_out: Option<PathBuf>,
    /// Progress line on standard error: auto (on a terminal), always, never.
    #[arg(long, default_value = "auto")]
    progress: String,
}

#[derive(Debug, Args)]
struct ListenArgs {
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    common: Common,
    /// Interface to join on: an IPv4 address or, for IPv6, an interface index [default: 127.0.0.1 / 0].
    #[arg(long)]
    interface: Option<String>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many seconds without a datagram, once one has come.
    #[arg(long)]
    idle: Option<f64>,
}

#[derive(Debug, Args)]
struct PcapArgs {
    /// The capture.
    file: PathBuf,
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    common: Common,
    /// Threads decrypting [default: 1].
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecvError(String);

pub(crate) fn err(m: impl Into<String>) -> RecvError {
    RecvError(m.into())
}

pub(crate) fn read_key_file(path: &Path) -> Result<MskFile, RecvError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    MskFile::parse(&text).map_err(|e| err(format!("{}: {e}", path.display())))
}

fn parse_spec(spec: &str, n: usize) -> Result<ServiceSpec, RecvError> {
    let bad = |m: String| err(format!("--service {spec:?}: {m}"));
    let (mut name, mut group, mut port, mut mikey, mut msks, mut rcc) = (
        format!("service{n}"),
        None,
        5004u16,
        2269u16,
        Vec::new(),
        None,
    );
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
        match k.trim() {
            "name" => name = v.to_owned(),
            "group" => group = Some(v.parse().map_err(|_| bad(format!("group {v:?}")))?),
            "port" => port = v.parse().map_err(|_| bad(format!("port {v:?}")))?,
            "mikey-port" | "mikey_port" => {
                mikey = v.parse().map_err(|_| bad(format!("mikey-port {v:?}")))?;
            }
            "msk" => msks.push(read_key_file(Path::new(v))?),
            "rcc" => rcc = Some(v.parse().map_err(|_| bad(format!("rcc {v:?}")))?),
            other => return Err(bad(format!("unknown key {other:?}"))),
        }
    }
    let group = group.ok_or_else(|| bad("no group=".into()))?;
    if msks.is_empty() {
        return Err(bad("no msk=FILE".into()));
    }
    Ok(ServiceSpec {
        name,
        group,
        port,
        mikey_port: mikey,
        msks,
        rcc,
    })
}

fn specs(a: &ServiceArgs) -> Result<Vec<ServiceSpec>, RecvError> {
    let mut out = a
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| parse_spec(s, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    match (a.group, a.msk_file.is_empty()) {
        (Some(group), false) => out.push(ServiceSpec {
            name: "default".into(),
            group,
            port: a.port.unwrap_or(5004),
            mikey_port: a.mikey_port.unwrap_or(2269),
            msks: a
                .msk_file
                .iter()
                .map(|p| read_key_file(p))
                .collect::<Result<_, _>>()?,
            rcc: a.rcc,
        }),
        (None, false) => return Err(err("--msk-file needs --group (or use --service)")),
        (Some(_), true) => return Err(err("--group needs --msk-file")),
        (None, true) => {}
    }
    if out.is_empty() {
        return Err(err(
            "no service: give --group G --msk-file F, or --service SPEC",
        ));
    }
    Ok(out)
}

/// Runs the command line; the exit code.
pub fn main_with(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let r = match cli.cmd {
        Cmd::Listen(a) => listen(&a),
        Cmd::Pcap(a) => pcap(&a),
        Cmd::Download(a) => crate::download::download(&a),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("mbms-recv: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the report; whether the run passes (`--strict`).
fn report(services: &[ServiceRx], strict: bool, extra: Option<serde_json::Value>) -> bool {
    let counters: Vec<&Counters> = services.iter().map(|s| &s.counters).collect();
    let ok = !strict || counters.iter().all(|c| !c.failed());
    let mut v = serde_json::json!({ "services": counters, "strict_ok": ok });
    if let (Some(extra), Some(map)) = (extra, v.as_object_mut()) {
        map.insert("run".into(), extra);
    }
    println!("{v}");
    if !ok {
        eprintln!("mbms-recv: --strict: a service saw failures or decrypted nothing");
    }
    ok
}

struct RtpOut {
    path: PathBuf,
    w: PcapOut<BufWriter<std::fs::File>>,
}

impl RtpOut {
    fn open(path: &Path) -> Result<Self, RecvError> {
        let f = std::fs::File::create(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let w = PcapOut::new(BufWriter::new(f), 1)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            w,
        })
    }
    fn write(
        &mut self,
        ts: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        rtp: &[u8],
    ) -> Result<(), RecvError> {
        self.w
            .write(ts, src, dst, rtp)
            .map_err(|e| err(format!("{}: {e}", self.path.display())))
    }
    fn finish(self) -> Result<(), RecvError> {
        self.w
            .finish()
            .map(|_| ())
            .map_err(|e| err(format!("{}: {e}", self.path.display())))
    }
}

fn progress_on(mode: &str) -> Result<bool, RecvError> {
    match mode {
        "auto" => Ok(std::io::stderr().is_terminal()),
        "always" => Ok(true),
        "never" => Ok(false),
        other => Err(err(format!("--progress {other:?}: auto, always or never"))),
    }
}

/// The receiving state of every service the arguments name.
fn receivers(a: &ServiceArgs) -> Result<Vec<ServiceRx>, RecvError> {
    specs(a)?
        .into_iter()
        .map(ServiceRx::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)
}

fn pcap(a: &PcapArgs) -> Result<bool, RecvError> {
    let mut services = receivers(&a.services)?;
    let progress = progress_on(&a.common.progress)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.max(1))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let filter = Filter {
        any_udp: true,
        ..Filter::default()
    };
    let mut src =
        PcapSource::open(&a.file, filter, usize::MAX, 0).map_err(|e| err(e.to_string()))?;
    // Reading (and copying out) the capture overlaps with decryption: a thread of its own.
    type Batch = Result<Vec<mbms_capture::pcap::RtpPacket>, String>;
    let (ptx, prx) = crossbeam_channel::bounded::<Batch>(8);
    let reader = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(1024);
        loop {
            match src.next_packet() {
                Ok(Some(p)) => {
                    batch.push(p);
                    if batch.len() == 1024 {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(1024));
                        if ptx.send(Ok(full)).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {
                    let _ = ptx.send(Ok(batch));
                    return;
                }
                Err(e) => {
                    let _ = ptx.send(Ok(batch));
                    let _ = ptx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    let mut out = a.common.rtp_out.as_deref().map(RtpOut::open).transpose()?;
    let started = Instant::now();
    let (mut datagrams, mut unmatched) = (0u64, 0u64);
    let mut first_ts = None;
    // Runs of media datagrams of one service are decrypted as a batch; an MTK message (or a
    // datagram of another service) ends the run first, so keys apply in capture order.
    let mut run: Vec<Entry> = Vec::new();
    let mut run_service = usize::MAX;
    let mut last_progress = Instant::now();
    // Per service, the source of its last SRTP packet: written as the source of packets
    // released from the hold by an MTK message.
    let mut last_src: Vec<Option<SocketAddr>> = vec![None; services.len()];
    let result = pool.install(|| -> Result<(), RecvError> {
        let flush = |run: &mut Vec<Entry>,
                     svc: usize,
                     services: &mut [ServiceRx],
                     out: &mut Option<RtpOut>|
         -> Result<(), RecvError> {
            let Some(s) = services.get_mut(svc) else {
                run.clear();
                return Ok(());
            };
            let times: Vec<Duration> = run.iter().map(|r| r.now).collect();
            let mut pkts: Vec<BytesMut> = run
                .iter_mut()
                .map(|r| std::mem::take(&mut r.data))
                .collect();
            let outcomes = s.on_media_batch(&times, &mut pkts);
            if let Some(o) = out.as_mut() {
                for ((r, p), oc) in run.iter().zip(&pkts).zip(outcomes) {
                    if let Outcome::Ok(len) = oc {
                        o.write(r.ts, r.src, r.dst, &p[..len])?;
                    }
                }
            }
            run.clear();
            Ok(())
        };
        for item in prx.iter() {
            let batch = match item {
                Ok(b) => b,
                Err(e) => {
                    flush(&mut run, run_service, &mut services, &mut out)?;
                    return Err(err(e));
                }
            };
            for p in batch {
                datagrams += 1;
                let t0 = *first_ts.get_or_insert(p.ts);
                let now = p.ts.saturating_sub(t0);
                let at = |s: &ServiceRx, port| s.spec().group == p.dst.ip() && port == p.dst.port();
                let i = match services.iter().position(|s| at(s, s.spec().port)) {
                    Some(i) => Some((i, true)),
                    // Services may share a MIKEY port: the message goes to the one holding its
                    // MSK (the first sharing one counts it otherwise).
                    None => services
                        .iter()
                        .position(|s| at(s, s.spec().mikey_port) && s.owns(&p.data))
                        .or_else(|| services.iter().position(|s| at(s, s.spec().mikey_port)))
                        .map(|i| (i, false)),
                };
                let Some((i, media)) = i else {
                    unmatched += 1;
                    continue;
                };
                if !media || i != run_service || run.len() >= 1024 {
                    flush(&mut run, run_service, &mut services, &mut out)?;
                    run_service = i;
                }
                if media {
                    last_src[i] = Some(p.src);
                    run.push(Entry {
                        now,
                        ts: p.ts,
                        src: p.src,
                        dst: p.dst,
                        data: p.data,
                    });
                } else {
                    let released = services[i].on_mikey(now, &p.data);
                    if let Some(o) = out.as_mut() {
                        let dst =
                            SocketAddr::new(services[i].spec().group, services[i].spec().port);
                        for (at, rtp) in released {
                            o.write(
                                t0.saturating_add(at),
                                last_src[i].unwrap_or(p.src),
                                dst,
                                &rtp,
                            )?;
                        }
                    }
                }
                if progress && last_progress.elapsed() >= Duration::from_secs(1) {
                    eprint!("\r{datagrams:>10} datagrams");
                    last_progress = Instant::now();
                }
            }
        }
        flush(&mut run, run_service, &mut services, &mut out)
    });
    for s in &mut services {
        s.finish();
    }
    // Unblocks the reader if decryption stopped early (an error), then waits for it.
    drop(prx);
    let _ = reader.join();
    if progress {
        eprintln!();
    }
    if let Some(o) = out {
        o.finish()?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "mbms-recv: {datagrams} datagrams in {secs:.3} s ({:.0} datagrams/s), {unmatched} to no service",
        datagrams as f64 / secs.max(1e-9)
    );
    result?;
    // The report of a capture depends on the capture only (no wall-clock fields).
    Ok(report(
        &services,
        a.common.strict,
        Some(serde_json::json!({ "datagrams": datagrams, "unmatched": unmatched })),
    ))
}

/// An SRTP packet of a capture waiting in a run: its time from the capture's start, its capture
/// timestamp, addresses and bytes.
struct Entry {
    now: Duration,
    ts: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    data: BytesMut,
}

struct Arrival {
    now: Duration,
    service: usize,
    media: bool,
    src: SocketAddr,
    dst: SocketAddr,
    data: BytesMut,
}

/// A socket bound to `group:port` and joined to `group` on `iface`, with a 100 ms read
/// timeout.
pub(crate) fn join(group: IpAddr, port: u16, iface: Option<&str>) -> Result<UdpSocket, RecvError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let e = |what: &str, x: std::io::Error| err(format!("{} port {port}: {what}: {x}", group));
    let domain = if group.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|x| e("socket", x))?;
    s.set_reuse_address(true)
        .map_err(|x| e("SO_REUSEADDR", x))?;
    let _ = s.set_recv_buffer_size(16 << 20);
    s.bind(&SocketAddr::new(group, port).into())
        .map_err(|x| e("bind", x))?;
    match group {
        IpAddr::V4(g) => {
            let i: Ipv4Addr = iface
                .unwrap_or("127.0.0.1")
                .parse()
                .map_err(|_| err("--interface: an IPv4 address for an IPv4 group"))?;
            s.join_multicast_v4(&g, &i).map_err(|x| e("join", x))?;
        }
        IpAddr::V6(g) => {
            let i: u32 = iface
                .unwrap_or("0")
                .parse()
                .map_err(|_| err("--interface: an interface index for an IPv6 group"))?;
            s.join_multicast_v6(&g, i).map_err(|x| e("join", x))?;
        }
    }
    let sock: UdpSocket = s.into();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|x| e("timeout", x))?;
    Ok(sock)
}

/// One read: the bytes, the datagram size they are made of (GRO; all of them when not
/// coalesced) and the source; `None` on a timeout or a signal (an error ends the thread's
/// datagrams the same way: the socket is the run's).
fn recv_run(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, usize, SocketAddr)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut cmsg = nix::cmsg_space!(i32);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let m = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .ok()?;
    let n = m.bytes;
    let mut seg = n;
    for c in m.cmsgs().ok()? {
        if let ControlMessageOwned::UdpGroSegments(s) = c {
            seg = usize::try_from(s).unwrap_or(n);
        }
    }
    let src = m.address.and_then(|a| {
        if let Some(v4) = a.as_sockaddr_in() {
            Some(SocketAddr::from((v4.ip(), v4.port())))
        } else {
            a.as_sockaddr_in6()
                .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
        }
    })?;
    Some((n, seg, src))
}

fn listen(a: &ListenArgs) -> Result<bool, RecvError> {
    let mut services = receivers(&a.services)?;
    let progress = progress_on(&a.common.progress)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| err(e.to_string()))?;
    }
    let (tx, rx) = crossbeam_channel::bounded::<Arrival>(65_536);
    let started = Instant::now();
    let mut threads = Vec::new();
    for (i, s) in services.iter().enumerate() {
        for (port, media) in [(s.spec().port, true), (s.spec().mikey_port, false)] {
            let sock = join(s.spec().group, port, a.interface.as_deref())?;
            let (tx, stop) = (tx.clone(), stop.clone());
            let dst = SocketAddr::new(s.spec().group, port);
            // UDP GRO on the SRTP socket: the kernel hands over runs of datagrams of one
            // size in one read (split again here), which keeps up with a sender at line rate.
            if media {
                let _ = nix::sys::socket::setsockopt(
                    &sock,
                    nix::sys::socket::sockopt::UdpGroSegment,
                    &true,
                );
            }
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Some((n, seg, src)) = recv_run(&sock, &mut buf) else {
                        continue;
                    };
                    let now = started.elapsed();
                    // One allocation per read, cut into its datagrams.
                    let mut run = BytesMut::from(&buf[..n]);
                    while !run.is_empty() {
                        let d = run.split_to(seg.max(1).min(run.len()));
                        let a = Arrival {
                            now,
                            service: i,
                            media,
                            src,
                            dst,
                            data: d,
                        };
                        if tx.send(a).is_err() {
                            return;
                        }
                    }
                }
            }));
        }
    }
    drop(tx);
    let mut out = a.common.rtp_out.as_deref().map(RtpOut::open).transpose()?;
    let duration = a.duration.map(Duration::from_secs_f64);
    let idle = a.idle.map(Duration::from_secs_f64);
    let mut last = None::<Instant>;
    let mut last_progress = Instant::now();
    let mut n = 0u64;
    let mut last_src: Vec<Option<SocketAddr>> = vec![None; services.len()];
    loop {
        if stop.load(Ordering::Relaxed)
            || duration.is_some_and(|d| started.elapsed() >= d)
            || idle.zip(last).is_some_and(|(d, l)| l.elapsed() >= d)
        {
            break;
        }
        let Ok(mut arr) = rx.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        last = Some(Instant::now());
        n += 1;
        let wall = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        };
        if arr.media {
            let s = &mut services[arr.service];
            if let Outcome::Ok(len) = s.on_media(arr.now, &mut arr.data)
                && let Some(o) = out.as_mut()
            {
                o.write(wall(), arr.src, arr.dst, &arr.data[..len])?;
            }
            last_src[arr.service] = Some(arr.src);
        } else {
            // Services that share a group and MIKEY port each get every message on their own
            // socket: each takes only the messages of its own MSKs.
            let shared = |s: &ServiceRx| {
                s.spec().group == arr.dst.ip() && s.spec().mikey_port == arr.dst.port()
            };
            let mine = services[arr.service].owns(&arr.data);
            let other_owner = services
                .iter()
                .enumerate()
                .any(|(j, s)| j != arr.service && shared(s) && s.owns(&arr.data));
            if mine || !other_owner {
                let s = &mut services[arr.service];
                let released = s.on_mikey(arr.now, &arr.data);
                if let Some(o) = out.as_mut() {
                    let dst = SocketAddr::new(s.spec().group, s.spec().port);
                    let src = last_src[arr.service].unwrap_or(arr.src);
                    for (_, rtp) in released {
                        o.write(wall(), src, dst, &rtp)?;
                    }
                }
            }
        }
        if progress && last_progress.elapsed() >= Duration::from_secs(1) {
            let ok: u64 = services.iter().map(|s| s.counters.packets_ok).sum();
            eprint!("\r{n:>10} datagrams  {ok:>10} decrypted");
            last_progress = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    for s in &mut services {
        s.finish();
    }
    for t in threads {
        let _ = t.join();
    }
    if progress {
        eprintln!();
    }
    if let Some(o) = out {
        o.finish()?;
    }
    Ok(report(
        &services,
        a.common.strict,
        Some(serde_json::json!({ "datagrams": n, "elapsed_s": started.elapsed().as_secs_f64() })),
    ))
}
