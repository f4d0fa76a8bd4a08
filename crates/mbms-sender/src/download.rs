//! `mbms-send download`: a download service (TS 33.246 §6.6.3). Files are protected with MTKs
//! as OMA DCF objects and sent, with the MTK messages that key them, in one FLUTE session
//! (`mbms-download`) onto the multicast bearer and into a pcap.

use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use mbms_capture::pcapout::PcapOut;
use mbms_core::dcf::{DcfHeader, DcfKeyRef, DcfMethod};
use mbms_core::{MtkId, Profile};
use mbms_download::sender::{DownloadSender, SessionConfig, protect_file};
use rand_core::RngCore;
use rayon::prelude::*;

use crate::SendError;
use crate::cli::{at_least, open_service_msk, os_rng, secs};
use crate::keystate::{Blocks, KeyState, RotationPolicy};
use crate::net::{Bearer, BearerOptions};

/// `mbms-send download` options.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Service (its MSK in the key store).
    #[arg(long, default_value = "default")]
    service: String,
    /// A file to send (repeatable).
    #[arg(long = "file", value_name = "FILE", help_heading = "Source")]
    files: Vec<PathBuf>,
    /// Send the regular files of this directory (not its subdirectories), in name order.
    #[arg(long, value_name = "DIR", help_heading = "Source")]
    dir: Option<PathBuf>,

    /// Multicast group of the FLUTE session.
    #[arg(long, help_heading = "Bearer")]
    group: Option<IpAddr>,
    /// UDP port of the FLUTE session.
    #[arg(long, default_value_t = 4001, help_heading = "Bearer")]
    port: u16,
    /// Outgoing interface: name (lo, eth0), index, or IPv4 address.
    #[arg(long, help_heading = "Bearer")]
    interface: Option<String>,
    /// Multicast TTL / hop limit.
    #[arg(long, default_value_t = 1, help_heading = "Bearer")]
    ttl: u8,
    /// Write the pcap only; open no socket.
    #[arg(long, help_heading = "Bearer")]
    no_network: bool,
    /// Transport Session Identifier.
    #[arg(long, default_value_t = 1, help_heading = "Bearer")]
    tsi: u64,

    /// Sending rate, bits a second of UDP payload.
    #[arg(long, default_value_t = 20e6, help_heading = "Pacing")]
    rate_bps: f64,
    /// No pacing: as fast as possible.
    #[arg(long, help_heading = "Pacing")]
    fast: bool,
    /// Carousel: every object (and the FDT) starts again this many seconds after its previous
    /// start, for late joiners and lost packets [default: each object sent once].
    #[arg(long, help_heading = "Pacing")]
    carousel_secs: Option<f64>,
    /// With a carousel: stop after every object was sent this many times.
    #[arg(long, default_value_t = 3, help_heading = "Pacing")]
    rounds: u64,

    /// Key state directory (SQLite key store).
    #[arg(long, default_value = "mbms-state", help_heading = "Keys")]
    state_dir: PathBuf,
    /// Key store shared with the BM-SC instead of the state directory's own.
    #[arg(long, value_name = "URL", help_heading = "Keys")]
    store: Option<String>,
    /// Take the MSK from this key file instead of the store.
    #[arg(long, value_name = "FILE", help_heading = "Keys")]
    msk_file: Option<PathBuf>,
    /// A new MTK for every so many files [default: one MTK for all].
    #[arg(long, help_heading = "Keys")]
    files_per_mtk: Option<usize>,
    /// DCF encryption method.
    #[arg(long, value_enum, default_value_t = Method::Cbc, help_heading = "Keys")]
    method: Method,
    /// Put the MTK message into each DCF object too (textual header MBMS-MTK-Message).
    #[arg(long, help_heading = "Keys")]
    inline_mtk: bool,
    /// Send the files unprotected (no DCF, no MTK message, no key store): for measuring what
    /// protection costs, side by side.
    #[arg(long, help_heading = "Keys")]
    no_protection: bool,

    /// Base of the objects' Content-Locations, ending in / [default:
    /// `http://bmsc.example.org/SERVICE/`].
    #[arg(long, help_heading = "Output")]
    base_url: Option<String>,
    /// Also write every datagram sent into this pcap.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pcap_out: Option<PathBuf>,
    /// Progress line on standard error every second.
    #[arg(long, help_heading = "Output")]
    progress: bool,
}

/// DCF encryption method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// AES_128_CBC with RFC 2630 padding.
    Cbc,
    /// AES_128_CTR.
    Ctr,
}

/// The files of the command line, checked.
fn source_files(a: &DownloadArgs) -> Result<Vec<PathBuf>, SendError> {
    let mut files = a.files.clone();
    if let Some(dir) = &a.dir {
        let err = |e: std::io::Error| SendError::Config(format!("--dir {}: {e}", dir.display()));
        let mut listed = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            if entry.file_type().map_err(err)?.is_file() {
                listed.push(entry.path());
            }
        }
        listed.sort();
        files.extend(listed);
    }
    if files.is_empty() {
        return Err(SendError::Config(
            "nothing to send: give --file FILE (repeatable) or --dir DIR".into(),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for f in &files {
        let meta =
            std::fs::metadata(f).map_err(|e| SendError::Config(format!("{}: {e}", f.display())))?;
        if !meta.is_file() {
            return Err(SendError::Config(format!("{}: not a file", f.display())));
        }
        let name = file_name(f)?;
        if !names.insert(name.clone()) {
            return Err(SendError::Config(format!(
                "two files named {name:?}: names must be unique in a session"
            )));
        }
    }
    Ok(files)
}

fn file_name(f: &Path) -> Result<String, SendError> {
    f.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SendError::Config(format!("{}: no usable file name", f.display())))
}

/// Runs `mbms-send download`.
pub fn download_cmd(a: DownloadArgs) -> Result<(), SendError> {
    let files = source_files(&a)?;
    let group = match (a.group, a.no_network) {
        (Some(g), _) => g,
        (None, true) => IpAddr::from([239, 255, 0, 2]),
        (None, false) => {
            return Err(SendError::Config("no multicast group: give --group".into()));
        }
    };
    let rate = at_least("--rate-bps", a.rate_bps, 1000.0)?;
    let carousel = a
        .carousel_secs
        .map(|s| secs("--carousel-secs", at_least("--carousel-secs", s, 0.01)?))
        .transpose()?;
    if a.rounds == 0 {
        return Err(SendError::Config("--rounds must be at least 1".into()));
    }
    let base = a
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://bmsc.example.org/{}/", a.service));
    let base = url::Url::parse(&base)
        .ok()
        .filter(|u| u.as_str().ends_with('/') && !u.cannot_be_a_base())
        .ok_or_else(|| {
            SendError::Config(format!(
                "--base-url {base:?}: an absolute URL ending in / expected"
            ))
        })?;

    let mut cfg = SessionConfig::new(a.tsi, &group.to_string(), a.port, base);
    cfg.carousel = carousel;
    let mut session =
        DownloadSender::new(&cfg).map_err(|e| SendError::Config(format!("FLUTE session: {e}")))?;

    let work = a.state_dir.join(format!("download-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| SendError::Output(work.clone(), e))?;
    let _cleanup = RemoveDir(work.clone());
    let started = Instant::now();
    let mut plain_bytes = 0u64;
    let mut mtk_ids: Vec<MtkId> = Vec::new();
    let mut tois = Vec::new();
    let mut msk_label = String::new();
    // Held for the run: the MSK lock file and the key state (with its store session lock).
    let mut _held = None;
    if a.no_protection {
        for src in &files {
            let name = file_name(src)?;
            plain_bytes += std::fs::metadata(src)
                .map_err(|e| SendError::Config(format!("{}: {e}", src.display())))?
                .len();
            let toi = session
                .add_plain_file(&name, src, content_type_of(&name))
                .map_err(|e| SendError::Config(format!("FLUTE: {}: {e}", src.display())))?;
            tois.push(toi);
        }
    } else {
        // Keys: the MSK, its lock, the MTK state.
        let (store, msk, _lock) = open_service_msk(
            &a.service,
            &a.state_dir,
            a.store.as_deref(),
            a.msk_file.as_deref(),
        )?;
        let (kd, msk_id) = (msk.key_domain_id, msk.msk_id);
        let mut keys = KeyState::new(
            store,
            msk,
            Profile::default(),
            RotationPolicy::default(),
            Blocks::default(),
            None,
        )?;

        // Protect: the files in groups of `files_per_mtk`, one new MTK per group, across cores;
        // the DCF objects go to a work directory and are read from there as they are sent.
        let per = a.files_per_mtk.unwrap_or(files.len()).max(1);
        let method = match a.method {
            Method::Cbc => DcfMethod::AesCbc,
            Method::Ctr => DcfMethod::AesCtr,
        };
        let mut rng = os_rng()?;
        for chunk in files.chunks(per) {
            let mut message = Vec::new();
            let (mtk_id, mtk) = keys.download_mtk(&mut message)?;
            mtk_ids.push(mtk_id);
            let key_ref = DcfKeyRef {
                key_domain_id: kd,
                msk_id,
                mtk_id,
                mtk_uri: Some(session.key_location(kd, msk_id, mtk_id).to_string()),
                mtk_message: a.inline_mtk.then(|| message.clone()),
            };
            let jobs: Vec<(PathBuf, PathBuf, DcfHeader, [u8; 16])> = chunk
                .iter()
                .enumerate()
                .map(|(i, src)| {
                    let len = std::fs::metadata(src)
                        .map_err(|e| SendError::Config(format!("{}: {e}", src.display())))?
                        .len();
                    let name = file_name(src)?;
                    let mut iv = [0u8; 16];
                    rng.fill_bytes(&mut iv);
                    let header = DcfHeader {
                        method,
                        content_type: content_type_of(&name).into(),
                        content_id: format!(
                            "cid:{name}@{}",
                            cfg.base_url.host_str().unwrap_or("bmsc")
                        ),
                        rights_issuer_url: String::new(),
                        textual_headers: key_ref.textual_headers(),
                        plaintext_len: len,
                    };
                    Ok((
                        src.clone(),
                        work.join(format!("{i}-{name}.dcf")),
                        header,
                        iv,
                    ))
                })
                .collect::<Result<_, SendError>>()?;
            jobs.par_iter()
                .map(|(src, dst, header, iv)| {
                    protect_file(src, dst, header, &mtk, *iv).map_err(|e| {
                        SendError::Config(format!("protecting {}: {e}", src.display()))
                    })
                })
                .collect::<Result<Vec<u64>, SendError>>()?;
            session
                .add_mtk_message(kd, msk_id, mtk_id, message)
                .map_err(|e| SendError::Config(format!("FLUTE: {e}")))?;
            let key_uri = session.key_location(kd, msk_id, mtk_id);
            for (src, dst, header, _) in &jobs {
                plain_bytes += header.plaintext_len;
                let toi = session
                    .add_dcf_file(&file_name(src)?, dst, Some(&key_uri))
                    .map_err(|e| SendError::Config(format!("FLUTE: {}: {e}", src.display())))?;
                tois.push(toi);
            }
        }
        msk_label = format!("{:08x}", msk_id.0);
        _held = Some((_lock, keys));
    }
    let protect_secs = started.elapsed().as_secs_f64();

    // Send.
    let dst = SocketAddr::new(group, a.port);
    let mut bearer = if a.no_network {
        None
    } else {
        Some(Bearer::open(&BearerOptions {
            group,
            interface: a.interface.clone(),
            ttl: u32::from(a.ttl),
            loopback: true,
            source_port: None,
            gso: false,
            send_buffer: 4 << 20,
        })?)
    };
    let src = bearer.as_ref().map_or_else(
        || SocketAddr::new(IpAddr::from([192, 0, 2, 1]), 50000),
        Bearer::local_addr,
    );
    let mut pcap = match &a.pcap_out {
        Some(p) => Some(
            PcapOut::new(
                BufWriter::new(
                    std::fs::File::create(p).map_err(|e| SendError::Output(p.clone(), e))?,
                ),
                a.ttl,
            )
            .map_err(|e| SendError::Output(p.clone(), e))?,
        ),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| SendError::Config(format!("signal handler: {e}")))?;
    }
    session
        .publish(SystemTime::now())
        .map_err(|e| SendError::Config(format!("FLUTE: {e}")))?;
    let rounds = if carousel.is_some() { a.rounds } else { 1 };
    let send_start = Instant::now();
    let (mut packets, mut bytes) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut due = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            eprintln!("mbms-send: stopped");
            break;
        }
        let now = SystemTime::now();
        let Some(pkt) = session.read(now) else {
            if tois
                .iter()
                // An object sent its last time leaves the session (None).
                .all(|t| session.transfers(*t).is_none_or(|n| n >= rounds))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if !a.fast {
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            due = due.max(Instant::now() - Duration::from_millis(20))
                + Duration::from_secs_f64(pkt.len() as f64 * 8.0 / rate);
        }
        if let Some(b) = bearer.as_mut() {
            b.send_vectored(dst, pkt.len(), &[std::io::IoSlice::new(&pkt)])
                .map_err(|e| SendError::Send(dst, e))?;
        }
        if let Some(p) = pcap.as_mut() {
            let ts = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            p.write(ts, src, dst, &pkt)
                .map_err(|e| SendError::Output(a.pcap_out.clone().unwrap_or_default(), e))?;
        }
        packets += 1;
        bytes += pkt.len() as u64;
        if a.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "mbms-send: {packets} packets, {:.1} MB, {:.1} Mbit/s",
                bytes as f64 / 1e6,
                bytes as f64 * 8.0 / send_start.elapsed().as_secs_f64() / 1e6
            );
        }
    }
    if let Some(p) = pcap.take() {
        p.finish()
            .map_err(|e| SendError::Output(a.pcap_out.clone().unwrap_or_default(), e))?;
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "files": files.len(),
        "plaintext_bytes": plain_bytes,
        "mtks": mtk_ids.iter().map(|m| m.0).collect::<Vec<_>>(),
        "msk_id": msk_label,
        "protected": !a.no_protection,
        "packets": packets,
        "bytes": bytes,
        "protect_seconds": protect_secs,
        "send_seconds": send_secs,
        "rounds": rounds,
    });
    println!("{summary}");
    Ok(())
}

/// A directory removed when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The media type of a file from its extension (the DCF's ContentType).
fn content_type_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt") => "text/plain",
        Some("html" | "htm") => "text/html",
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("mp4" | "m4v") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("mp3") => "audio/mpeg",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}
