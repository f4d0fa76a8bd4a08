//! `mbms-recv download`: the UE side of a download service. Reassembles the FLUTE session's
//! objects (the `flute` crate, MD5 from the FDT checked), opens the MTK messages with the MSK
//! key files, opens each DCF object with the MTK its header names, and writes the files.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use flute::core::UDPEndpoint;
use mbms_capture::pcap::{Filter, PcapSource};
use mbms_core::mbms::MskKey;
use mbms_download::receiver::{DownloadReceiver, ReceivedFile};

use crate::cli::{RecvError, err, join, read_key_file};

/// `mbms-recv download` options.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Key file of an MSK of the session (repeatable, e.g. across an MSK change).
    #[arg(long, value_name = "FILE", required = true)]
    msk_file: Vec<PathBuf>,
    /// Directory the files are written to (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Read this capture (pcap/pcapng) instead of listening.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Multicast group of the FLUTE session (to listen).
    #[arg(long)]
    group: Option<IpAddr>,
    /// UDP port of the FLUTE session.
    #[arg(long, default_value_t = 4001)]
    port: u16,
    /// Interface to join on: an IPv4 address or, for IPv6, an interface index [default:
    /// 127.0.0.1 / 0].
    #[arg(long)]
    interface: Option<String>,
    /// Stop once this many files are written.
    #[arg(long)]
    expect: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many seconds without a datagram, once one has come.
    #[arg(long)]
    idle: Option<f64>,
    /// Drop this fraction (0 to 1) of the datagrams received, at random: for test labs, to
    /// exercise the carousel.
    #[arg(long, default_value_t = 0.0)]
    simulate_loss: f64,
    /// Exit 1 if a DCF object or MTK message did not open, a file name was refused, a file
    /// could not be written, or fewer files than --expect came.
    #[arg(long)]
    strict: bool,
    /// Replace files that already exist in --out-dir (by default they are kept, and the
    /// received file is counted as refused).
    #[arg(long)]
    overwrite: bool,
}

/// Where a received file may be written: its name must be one plain path segment.
fn safe_name(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255;
    ok.then_some(name)
}

struct Run {
    rx: DownloadReceiver,
    out_dir: PathBuf,
    overwrite: bool,
    write_errors: u64,
    existing: u64,
    written: Vec<serde_json::Value>,
    refused_names: u64,
    loss: f64,
    dropped: u64,
    datagrams: u64,
    bad_datagrams: u64,
    rng: u64,
}

impl Run {
    fn take(
        &mut self,
        endpoint: &UDPEndpoint,
        data: &[u8],
        now: SystemTime,
    ) -> Result<(), RecvError> {
        self.datagrams += 1;
        if self.loss > 0.0 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if (self.rng % 1_000_000) as f64 / 1_000_000.0 < self.loss {
                self.dropped += 1;
                return Ok(());
            }
        }
        if self.rx.push(endpoint, data, now).is_err() {
            self.bad_datagrams += 1;
        }
        for f in self.rx.take_files() {
            self.write(f)?;
        }
        Ok(())
    }

    fn write(&mut self, f: ReceivedFile) -> Result<(), RecvError> {
        let Some(name) = safe_name(&f.name) else {
            self.refused_names += 1;
            eprintln!("mbms-recv: refused file name {:?} ({})", f.name, f.location);
            return Ok(());
        };
        let path = self.out_dir.join(name);
        if !self.overwrite && std::fs::symlink_metadata(&path).is_ok() {
            self.existing += 1;
            eprintln!(
                "mbms-recv: {} exists: kept (give --overwrite to replace it)",
                path.display()
            );
            return Ok(());
        }
        // A fixed temporary name: the received name may be as long as the system allows.
        let part = self
            .out_dir
            .join(format!(".mbms-recv-{}.part", std::process::id()));
        let written = (|| {
            let mut file = std::fs::File::create(&part)?;
            file.write_all(&f.data)?;
            file.sync_all()?;
            std::fs::rename(&part, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&part);
            self.write_errors += 1;
            eprintln!("mbms-recv: {}: {e}", path.display());
            return Ok(());
        }
        self.written.push(serde_json::json!({
            "name": name,
            "bytes": f.data.len(),
            "content_type": f.content_type,
            "mtk_id": f.key.mtk_id.0,
            "msk_id": format!("{:08x}", f.key.msk_id.0),
        }));
        Ok(())
    }

    fn done(&self, expect: Option<u64>) -> bool {
        expect.is_some_and(|n| self.written.len() as u64 >= n)
    }
}

/// Runs `mbms-recv download`; whether the run passes (`--strict`).
pub fn download(a: &DownloadArgs) -> Result<bool, RecvError> {
    if !(0.0..1.0).contains(&a.simulate_loss) {
        return Err(err("--simulate-loss: a fraction from 0 to below 1"));
    }
    for (what, v) in [("--duration", a.duration), ("--idle", a.idle)] {
        if let Some(v) = v
            && !(0.0..1e9).contains(&v)
        {
            return Err(err(format!("{what} {v}: a number of seconds expected")));
        }
    }
    std::fs::create_dir_all(&a.out_dir)
        .map_err(|e| err(format!("{}: {e}", a.out_dir.display())))?;
    let mut rx = DownloadReceiver::new();
    for p in &a.msk_file {
        rx.add_msk(MskKey::from(&read_key_file(p)?));
    }
    let mut run = Run {
        rx,
        out_dir: a.out_dir.clone(),
        overwrite: a.overwrite,
        write_errors: 0,
        existing: 0,
        written: Vec::new(),
        refused_names: 0,
        loss: a.simulate_loss,
        dropped: 0,
        datagrams: 0,
        bad_datagrams: 0,
        rng: 0x2545_f491_4f6c_dd1d,
    };
    let started = Instant::now();
    match &a.pcap {
        Some(file) => {
            let filter = Filter {
                dst_ports: vec![a.port],
                any_udp: true,
                ..Filter::default()
            };
            let mut src =
                PcapSource::open(file, filter, usize::MAX, 0).map_err(|e| err(e.to_string()))?;
            while let Some(p) = src.next_packet().map_err(|e| err(e.to_string()))? {
                let endpoint = UDPEndpoint::new(None, p.dst.ip().to_string(), p.dst.port());
                run.take(&endpoint, &p.data, SystemTime::UNIX_EPOCH + p.ts)?;
                if run.done(a.expect) {
                    break;
                }
            }
        }
        None => listen(a, &mut run)?,
    }
    let st = run.rx.stats();
    let expect_ok = a.expect.is_none_or(|n| run.written.len() as u64 >= n);
    // Object errors of the FLUTE layer (a transfer that ended incomplete, an MD5 mismatch) are
    // counted, not failures: the carousel sends the object again. What decides is whether
    // every expected file came, and nothing failed to open.
    let failed =
        st.bad_files + st.bad_mtk_messages + run.refused_names + run.write_errors + run.existing
            > 0;
    let ok = !a.strict || (expect_ok && !failed);
    let report = serde_json::json!({
        "files": run.written,
        "written": run.written.len(),
        "datagrams": run.datagrams,
        "dropped_by_simulated_loss": run.dropped,
        "bad_datagrams": run.bad_datagrams,
        "objects": st.objects,
        "duplicate_objects": st.duplicates,
        "object_errors": st.object_errors,
        "mtks": st.mtks,
        "bad_mtk_messages": st.bad_mtk_messages,
        "bad_files": st.bad_files,
        "waited_for_key": st.waited_for_key,
        "still_waiting_for_key": st.waiting,
        "mtk_messages_waiting_for_msk": st.waiting_mtk_messages,
        "refused_names": run.refused_names,
        "write_errors": run.write_errors,
        "kept_existing": run.existing,
        "dropped_waiting_for_key": st.dropped_waiting,
        "seconds": started.elapsed().as_secs_f64(),
        "strict_ok": ok,
    });
    println!("{report}");
    if !ok {
        eprintln!("mbms-recv: --strict: failures or missing files (see the report)");
    }
    Ok(ok)
}

fn listen(a: &DownloadArgs, run: &mut Run) -> Result<(), RecvError> {
    let group = a
        .group
        .ok_or_else(|| err("give --group (or --pcap FILE to read a capture)"))?;
    let sock = join(group, a.port, a.interface.as_deref())?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| err(e.to_string()))?;
    }
    let endpoint = UDPEndpoint::new(None, group.to_string(), a.port);
    let started = Instant::now();
    let duration = a.duration.map(Duration::from_secs_f64);
    let idle = a.idle.map(Duration::from_secs_f64);
    let mut last = None::<Instant>;
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) && !run.done(a.expect) {
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if let (Some(i), Some(l)) = (idle, last)
            && l.elapsed() >= i
        {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                last = Some(Instant::now());
                run.take(&endpoint, &buf[..n], SystemTime::now())?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                run.rx.cleanup(SystemTime::now());
            }
            Err(e) => return Err(err(format!("receiving: {e}"))),
        }
    }
    Ok(())
}
