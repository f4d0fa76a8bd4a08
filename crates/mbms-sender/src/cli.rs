//! The command line and the TOML service file: flags override the file, the file overrides
//! the built-in defaults.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mbms_core::keyfile::MskFile;
use mbms_core::srtp::{SrtpPolicy, SrtpSender};
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, MtkId, MtkIdInterval, Profile};
use mbms_keystore::KeyStore;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Deserialize;

use crate::generator::{Generator, GeneratorConfig};
use crate::keystate::{Blocks, KeyState, RotationPolicy};
use crate::net::BearerOptions;
use crate::pipeline::{self, Pacing, PipelineConfig, Progress, Protection};
use crate::{PcapFileSource, SendError, Source, Stats};
use mbms_capture::pcap::Filter;

const EXAMPLES: &str = "\
Examples:
  # The demo: a local MSK, three generated streams on 239.255.0.1:5004 over loopback, and a pcap
  mbms-send demo

  # Create an MSK for service tv1 and export it for a receiver or test lab
  mbms-send keys new --service tv1 --out tv1.msk

  # Stream a capture's RTP (destination port 5004 only) at its own timing, rotating MTKs every 10 s
  mbms-send send --service tv1 --pcap in.pcap --select-port 5004 --group 239.1.1.1 --interface eth0 --rotate-secs 10

  # Same service from a config file, twice as fast, with a copy of every datagram in out.pcap
  mbms-send send --config services.toml --service tv1 --speed 2 --pcap-out out.pcap

  # Benchmark: 1200-byte generated packets as fast as possible
  mbms-send send --msk-file tv1.msk --generate --payload-size 1200 --count 2000000 --fast --group 239.255.0.9 --interface lo

  # A download service: the files of a directory, 20 Mbit/s, a carousel every 5 s, three rounds
  mbms-send download --service files1 --dir ./outbox --group 239.1.1.2 --interface lo --carousel-secs 5 --pcap-out files.pcap

  # A byte-identical pcap for tests (fixed seed, no clock), no network
  mbms-send send --msk-file tv1.msk --generate --count 1000 --deterministic 7 --no-network --pcap-out fixed.pcap";

/// Streams protected MBMS services (3GPP TS 33.246: SRTP under MTKs, MTKs in MIKEY messages under
/// the MSK) onto a UDP multicast bearer and into pcaps.
#[derive(Debug, Parser)]
#[command(name = "mbms-send", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Streams one service (from a capture or the generator).
    #[command(after_help = EXAMPLES)]
    Send(Box<SendArgs>),
    /// The main job with no set-up: a local state directory and MSK, three generated streams
    /// sent to 239.255.0.1:5004 on the loopback interface with MTK rotation, and a pcap.
    Demo(DemoArgs),
    /// MSKs in the key store.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Sends files as a download service: protected with MTKs as OMA DCF objects, with their
    /// MTK messages, in a FLUTE session (FDT, optional carousel).
    Download(Box<crate::download::DownloadArgs>),
}

#[derive(Debug, Args)]
struct SendArgs {
    /// TOML file of services ([[service]] tables with the long option names as keys, `-` or `_`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Service to send (its MSK in the key store, its table in the config file).
    #[arg(long, default_value = "default")]
    service: String,
    #[command(flatten)]
    opts: ServiceOpts,
    /// Progress line on standard error.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// State directory of the demo (created if missing).
    #[arg(long, default_value = "mbms-demo-state")]
    state_dir: PathBuf,
    /// The pcap of everything sent.
    #[arg(long, default_value = "mbms-demo.pcap")]
    pcap_out: PathBuf,
    /// Seconds of media to send.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Creates a new MSK for a service in the key store (it becomes the service's current MSK).
    New {
        /// State directory.
        #[arg(long, default_value = "mbms-state")]
        state_dir: PathBuf,
        /// Service.
        #[arg(long, default_value = "default")]
        service: String,
        /// Key Domain ID, 3 bytes hex (MCC ‖ MNC; default 00f110, test network 001-01).
        #[arg(long, default_value = "00f110")]
        key_domain_id: String,
        /// MTK IDs the MSK may protect, FROM-TO.
        #[arg(long, default_value = "1-65535")]
        mtk_ids: String,
        /// Also writes the MSK key file here (docs/keyfile.md), for receivers and test labs.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Writes a service's current MSK as a key file.
    Export {
        /// State directory.
        #[arg(long, default_value = "mbms-state")]
        state_dir: PathBuf,
        /// Service.
        #[arg(long, default_value = "default")]
        service: String,
        /// Key file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    /// When standard error is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ProtectionArg {
    /// SRTP under rotating MTKs, MTK messages on the bearer.
    Srtp,
    /// No protection and no MTK messages: for measuring the cost of protection only.
    None,
}

/// The settings of a service: options on the command line, keys in a `[[service]]` table.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceOpts {
    /// Multicast group (IPv4 or IPv6) of the bearer.
    #[arg(long, help_heading = "Bearer")]
    group: Option<IpAddr>,
    /// UDP port of the media (SRTP) datagrams [default: 5004].
    #[arg(long, help_heading = "Bearer")]
    port: Option<u16>,
    /// UDP port of the MIKEY MTK messages [default: 2269].
    #[arg(long, help_heading = "Bearer")]
    mikey_port: Option<u16>,
    /// Outgoing interface: name (lo, eth0), index, or IPv4 address.
    #[arg(long, help_heading = "Bearer")]
    interface: Option<String>,
    /// Multicast TTL / hop limit [default: 1].
    #[arg(long, help_heading = "Bearer")]
    ttl: Option<u8>,
    /// Deliver to listeners on this host too (IP_MULTICAST_LOOP) [default: true].
    #[arg(long, help_heading = "Bearer", num_args = 0..=1, default_missing_value = "true")]
    loopback: Option<bool>,
    /// Local UDP port to send from [default: ephemeral; 50000 with --deterministic].
    #[arg(long, help_heading = "Bearer")]
    source_port: Option<u16>,
    /// Use UDP GSO for batched sends [default: true].
    #[arg(long, help_heading = "Bearer", num_args = 0..=1, default_missing_value = "true")]
    gso: Option<bool>,
    /// Write the pcap only; open no socket.
    #[arg(long, help_heading = "Bearer", num_args = 0..=1, default_missing_value = "true")]
    no_network: Option<bool>,

    /// RTP capture to send (pcap or pcapng; Ethernet, Linux cooked, raw IP; IPv4/IPv6).
    #[arg(long, value_name = "FILE", help_heading = "Source")]
    pcap: Option<PathBuf>,
    /// Only RTP to this UDP destination port (repeatable).
    #[arg(long, value_name = "PORT", help_heading = "Source")]
    #[serde(default)]
    select_port: Vec<u16>,
    /// Only RTP of this SSRC, hex (repeatable).
    #[arg(long, value_name = "SSRC", help_heading = "Source")]
    #[serde(default)]
    select_ssrc: Vec<String>,
    /// Play the capture this many times (0: until stopped); sequence numbers continue.
    #[arg(long = "loop", value_name = "N", help_heading = "Source")]
    #[serde(rename = "loop")]
    loop_count: Option<u64>,
    /// Use the built-in generator instead of a capture.
    #[arg(long, help_heading = "Source", num_args = 0..=1, default_missing_value = "true")]
    generate: Option<bool>,
    /// Generator: RTP streams [default: 1].
    #[arg(long, help_heading = "Source")]
    streams: Option<u32>,
    /// Generator: RTP payload bytes [default: 1200].
    #[arg(long, help_heading = "Source")]
    payload_size: Option<usize>,
    /// Generator: packets a second, all streams [default: 1000].
    #[arg(long, help_heading = "Source")]
    gen_rate: Option<f64>,
    /// Generator: packets in all.
    #[arg(long, help_heading = "Source")]
    count: Option<u64>,
    /// Generator: seconds of media.
    #[arg(long, help_heading = "Source")]
    duration: Option<f64>,

    /// Pace at the source's timing times this factor [default: 1].
    #[arg(long, help_heading = "Pacing")]
    speed: Option<f64>,
    /// Pace at this many packets a second.
    #[arg(long, help_heading = "Pacing")]
    rate_pps: Option<f64>,
    /// Pace at this many bits a second (UDP payload).
    #[arg(long, help_heading = "Pacing")]
    rate_bps: Option<f64>,
    /// No pacing: as fast as possible.
    #[arg(long, help_heading = "Pacing", num_args = 0..=1, default_missing_value = "true")]
    fast: Option<bool>,

    /// Key state directory (SQLite key store) [default: mbms-state].
    #[arg(long, help_heading = "Keys")]
    state_dir: Option<PathBuf>,
    /// Key store shared with the BM-SC instead of the state directory's own: `sqlite:PATH`
    /// (e.g. the BM-SC's `bmsc.db`) or `postgres://user:password@host/db`. The service's
    /// current MSK is the one the BM-SC made current (name the service by its service ID).
    #[arg(long, value_name = "URL", help_heading = "Keys")]
    store: Option<String>,
    /// Take the MSK from this key file (docs/keyfile.md) instead of the store.
    #[arg(long, value_name = "FILE", help_heading = "Keys")]
    msk_file: Option<PathBuf>,
    /// New MTK every so many seconds [default: 30].
    #[arg(long, help_heading = "Keys")]
    rotate_secs: Option<f64>,
    /// New MTK every so many packets.
    #[arg(long, help_heading = "Keys")]
    rotate_packets: Option<u64>,
    /// Repeat the current MTK message every so many seconds [default: 1].
    #[arg(long, help_heading = "Keys")]
    repeat_secs: Option<f64>,
    /// Key-usage limit: packets under one MTK at most [default: 2^31].
    #[arg(long, help_heading = "Keys")]
    mtk_max_packets: Option<u64>,
    /// RFC 4771 RCC mode 2: the ROC travels in every R-th packet, so receivers joining after a
    /// sequence number wrap can decrypt (receivers need the same --rcc) [default: off].
    #[arg(long, value_name = "R", help_heading = "Keys")]
    rcc: Option<u16>,
    /// Protection [default: srtp]; `none` is for benchmarks only.
    #[arg(long, value_enum, help_heading = "Keys")]
    protection: Option<ProtectionArg>,

    /// Also write every datagram sent into this pcap.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pcap_out: Option<PathBuf>,
    /// Deterministic mode for tests: keys from this seed, pcap times from media time.
    #[arg(long, value_name = "SEED", help_heading = "Output")]
    deterministic: Option<u64>,
    /// Threads protecting packets, the one that reads the source among them [default: the CPUs
    /// less 1 (the sender thread), at least 2 where there are 2; with --read-thread, the CPUs
    /// less 2, at least 1].
    #[arg(long, help_heading = "Output")]
    crypto_threads: Option<usize>,
    /// Read the source on a thread of its own, not between batches on the protecting thread
    /// [default: false].
    #[arg(long, help_heading = "Output", num_args = 0..=1, default_missing_value = "true")]
    read_thread: Option<bool>,
    /// Packets per pipeline batch, 1 to 1024 [default: 1024].
    #[arg(long, help_heading = "Output")]
    batch: Option<usize>,
}

macro_rules! overlay {
    ($a:ident, $b:ident; $($f:ident),*) => { $( if $a.$f.is_none() { $a.$f = $b.$f.clone(); } )* };
}

impl ServiceOpts {
    /// `self` (the command line) over `file`.
    fn over(mut self, file: &ServiceOpts) -> Self {
        overlay!(self, file; group, port, mikey_port, interface, ttl, loopback, source_port, gso,
            no_network, pcap, loop_count, generate, streams, payload_size, gen_rate, count,
            duration, speed, rate_pps, rate_bps, fast, state_dir, store, msk_file, rotate_secs,
            rotate_packets, repeat_secs, mtk_max_packets, protection, pcap_out, deterministic,
            batch, crypto_threads, read_thread, rcc);
        if self.select_port.is_empty() {
            self.select_port = file.select_port.clone();
        }
        if self.select_ssrc.is_empty() {
            self.select_ssrc = file.select_ssrc.clone();
        }
        self
    }
}

fn load_config(path: &Path, service: &str) -> Result<ServiceOpts, SendError> {
    let bad = |m: String| SendError::Config(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    let mut found = None;
    for (k, v) in &doc {
        if k != "service" {
            return Err(bad(format!(
                "unknown top-level key {k:?} (expected [[service]] tables)"
            )));
        }
        let list = v
            .as_array()
            .ok_or_else(|| bad("`service` must be an array of tables ([[service]])".into()))?;
        for t in list {
            let mut t = t
                .as_table()
                .cloned()
                .ok_or_else(|| bad("each [[service]] must be a table".into()))?;
            let name = t
                .remove("name")
                .and_then(|n| n.as_str().map(str::to_owned))
                .ok_or_else(|| bad("a [[service]] without a `name`".into()))?;
            if name == service {
                // Keys are the long option names, with `-` or `_`.
                let t: toml::Table = t
                    .into_iter()
                    .map(|(k, v)| (k.replace('-', "_"), v))
                    .collect();
                let opts = ServiceOpts::deserialize(toml::Value::Table(t))
                    .map_err(|e| bad(format!("service {name:?}: {e}")))?;
                found = Some(opts);
            }
        }
    }
    found.ok_or_else(|| bad(format!("no [[service]] named {service:?}")))
}

pub(crate) fn store_at(dir: &Path) -> Result<KeyStore, SendError> {
    let err =
        |e: std::io::Error| SendError::Config(format!("state directory {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    // The store holds MSKs in clear: the directory is the owner's alone.
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(err)?;
    Ok(KeyStore::open(&dir.join("keys.sqlite"))?)
}

/// A key store shared with the BM-SC, and the directory of its MSK lock files: beside the
/// SQLite file (so that senders sharing it see each other's locks), or the state directory
/// for PostgreSQL (where the store's session lock covers other hosts).
pub(crate) fn shared_store(url: &str, state_dir: &Path) -> Result<(KeyStore, PathBuf), SendError> {
    let store = KeyStore::open_url(url)?;
    let dir = match store.path() {
        Some(file) => file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        None => {
            let err = |e: std::io::Error| {
                SendError::Config(format!("state directory {}: {e}", state_dir.display()))
            };
            std::fs::create_dir_all(state_dir).map_err(err)?;
            state_dir.to_path_buf()
        }
    };
    Ok((store, dir))
}

/// Takes the MSK's lock in the state directory for the whole run: two senders on one MSK would
/// both take up its stored MTK and reuse (key, SRTP index) pairs. The lock is the kernel's
/// (`flock`), so it goes with the process, even on `kill -9`.
pub(crate) fn lock_msk(
    dir: &Path,
    msk: &MskFile,
) -> Result<nix::fcntl::Flock<std::fs::File>, SendError> {
    let path = dir.join(format!(
        "msk-{}-{:08x}.lock",
        hex::encode(msk.key_domain_id.0),
        msk.msk_id.0
    ));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SendError::Output(path.clone(), e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        SendError::Config(format!(
            "{}: MSK {:?} is in use by another mbms-send on this state directory ({e})",
            path.display(),
            msk.msk_id
        ))
    })
}

fn parse_hex<const N: usize>(what: &str, s: &str) -> Result<[u8; N], SendError> {
    let v = hex::decode(s).map_err(|e| SendError::Config(format!("{what} {s:?}: {e}")))?;
    v.try_into()
        .map_err(|_| SendError::Config(format!("{what} {s:?}: {N} bytes expected")))
}

fn new_msk(
    rng: &mut ChaCha20Rng,
    kd: KeyDomainId,
    msk_id: MskId,
    validity: MtkIdInterval,
) -> MskFile {
    let mut k = [0u8; 16];
    rng.fill_bytes(&mut k);
    let mut rand = [0u8; 16];
    rng.fill_bytes(&mut rand);
    let msk = Msk::from_bytes(k);
    zeroize::Zeroize::zeroize(&mut k);
    MskFile {
        key_domain_id: kd,
        msk_id,
        msk,
        validity,
        csb_id: CsbId(0),
        rand: Some(rand),
    }
}

fn write_key_file(path: &Path, msk: &MskFile) -> Result<(), SendError> {
    let err = |e: std::io::Error| SendError::Output(path.to_owned(), e);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(err)?;
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(err)?;
    let mut text = msk.render();
    let r = f.write_all(text.as_bytes()).map_err(err);
    zeroize::Zeroize::zeroize(&mut text);
    r?;
    f.sync_all().map_err(err)
}

/// The key store of a sending run and the service's MSK, locked for this process: the MSK of
/// `msk_file` (stored as the service's MSK) or else the store's current one; the store is
/// the state directory's own or, with `store_url`, one shared with the BM-SC. Refused if
/// another `mbms-send` holds the MSK (lock file beside the store, PostgreSQL session lock).
pub(crate) fn open_service_msk(
    service: &str,
    state_dir: &Path,
    store_url: Option<&str>,
    msk_file: Option<&Path>,
) -> Result<(KeyStore, MskFile, nix::fcntl::Flock<std::fs::File>), SendError> {
    let (mut store, lock_dir) = match store_url {
        None => (store_at(state_dir)?, state_dir.to_path_buf()),
        Some(url) => shared_store(url, state_dir)?,
    };
    let msk = match msk_file {
        Some(p) => {
            let bad = |e: String| SendError::KeyFile(p.to_path_buf(), e);
            let text = std::fs::read_to_string(p).map_err(|e| bad(e.to_string()))?;
            let msk = MskFile::parse(&text).map_err(|e| bad(e.to_string()))?;
            store.put_msk(service, &msk)?;
            msk
        }
        None => store.current_msk(service)?.ok_or_else(|| {
            SendError::Config(format!(
                "no MSK for service {service:?} in {}: create one with `mbms-send keys new --service {service}` or give --msk-file",
                store_url.map_or_else(|| state_dir.display().to_string(), str::to_owned)
            ))
        })?,
    };
    let lock = lock_msk(&lock_dir, &msk)?;
    if !store.lock_msk_for_session(msk.key_domain_id, msk.msk_id)? {
        return Err(SendError::Config(format!(
            "MSK {:?} is in use by another mbms-send on this key store",
            msk.msk_id
        )));
    }
    Ok((store, msk, lock))
}

pub(crate) fn os_rng() -> Result<ChaCha20Rng, SendError> {
    ChaCha20Rng::try_from_os_rng().map_err(|e| SendError::Rng(e.to_string()))
}

/// The next MSK ID of a key domain: one above every MSK ID stored under it (any service).
fn next_msk_id(store: &KeyStore, kd: KeyDomainId) -> Result<MskId, SendError> {
    match store.highest_msk_id(kd)? {
        Some(m) => {
            m.0.checked_add(1)
                .map(MskId)
                .ok_or_else(|| SendError::Config("every MSK ID of the key domain is used".into()))
        }
        None => Ok(MskId::new(1, 1)),
    }
}

fn keys_cmd(cmd: KeysCmd) -> Result<(), SendError> {
    match cmd {
        KeysCmd::New {
            state_dir,
            service,
            key_domain_id,
            mtk_ids,
            out,
        } => {
            let kd = KeyDomainId(parse_hex::<3>("key domain ID", &key_domain_id)?);
            let (from, to) = mtk_ids
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                .filter(|(a, b): &(u16, u16)| a <= b)
                .ok_or_else(|| {
                    SendError::Config(format!(
                        "--mtk-ids {mtk_ids:?}: FROM-TO expected, e.g. 1-65535"
                    ))
                })?;
            let mut store = store_at(&state_dir)?;
            let id = next_msk_id(&store, kd)?;
            let msk = new_msk(
                &mut os_rng()?,
                kd,
                id,
                MtkIdInterval {
                    from: MtkId(from),
                    to: MtkId(to),
                },
            );
            store.put_msk(&service, &msk)?;
            if let Some(p) = &out {
                write_key_file(p, &msk)?;
            }
            println!(
                "service {service}: new MSK {:?} (MTK IDs {from}-{to}) in {}{}",
                msk.msk_id,
                state_dir.display(),
                out.map(|p| format!(", key file {}", p.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
        KeysCmd::Export {
            state_dir,
            service,
            out,
        } => {
            let store = store_at(&state_dir)?;
            let msk = store.current_msk(&service)?.ok_or_else(|| {
                SendError::Config(format!(
                    "no MSK for service {service:?} in {}",
                    state_dir.display()
                ))
            })?;
            write_key_file(&out, &msk)
        }
    }
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
        Cmd::Send(a) => send_cmd(*a),
        Cmd::Demo(a) => demo_cmd(a),
        Cmd::Keys(k) => keys_cmd(k),
        Cmd::Download(a) => crate::download::download_cmd(*a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mbms-send: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn send_cmd(a: SendArgs) -> Result<(), SendError> {
    let opts = match &a.config {
        Some(path) => a.opts.over(&load_config(path, &a.service)?),
        None => a.opts,
    };
    let progress = match a.progress {
        ProgressMode::Auto | ProgressMode::Always => true,
        ProgressMode::Never => false,
    };
    run_service(
        &a.service,
        opts,
        progress,
        a.progress == ProgressMode::Always,
    )
}

fn demo_cmd(a: DemoArgs) -> Result<(), SendError> {
    let service = "demo";
    let mut store = store_at(&a.state_dir)?;
    if store.current_msk(service)?.is_none() {
        let msk = new_msk(
            &mut os_rng()?,
            KeyDomainId([0x00, 0xf1, 0x10]),
            MskId::new(1, 1),
            MtkIdInterval {
                from: MtkId(1),
                to: MtkId(u16::MAX),
            },
        );
        store.put_msk(service, &msk)?;
    }
    let msk = store
        .current_msk(service)?
        .ok_or_else(|| SendError::Config("demo MSK missing".into()))?;
    drop(store);
    let key_file = a.state_dir.join("demo.msk");
    write_key_file(&key_file, &msk)?;
    let opts = ServiceOpts {
        group: Some(
            "239.255.0.1"
                .parse()
                .map_err(|_| SendError::Config("group".into()))?,
        ),
        interface: Some("lo".into()),
        generate: Some(true),
        streams: Some(3),
        payload_size: Some(1200),
        gen_rate: Some(600.0),
        duration: Some(a.duration),
        rotate_secs: Some(1.0),
        repeat_secs: Some(0.25),
        state_dir: Some(a.state_dir.clone()),
        pcap_out: Some(a.pcap_out.clone()),
        ..ServiceOpts::default()
    };
    eprintln!(
        "mbms-send demo: 3 streams x 200 packets/s of 1200-byte RTP for {} s to 239.255.0.1:5004 on lo,\n  MTK messages on port 2269, a new MTK every second; MSK key file {}",
        a.duration,
        key_file.display()
    );
    run_service(service, opts, true, false)?;
    eprintln!(
        "mbms-send demo: wrote {}; look at it with\n  tshark -r {} -d udp.port==5004,rtp -d udp.port==2269,mikey",
        a.pcap_out.display(),
        a.pcap_out.display()
    );
    Ok(())
}

/// `v` if it is a finite number of at least `min`.
pub(crate) fn at_least(what: &str, v: f64, min: f64) -> Result<f64, SendError> {
    if v.is_finite() && v >= min {
        Ok(v)
    } else {
        Err(SendError::Config(format!(
            "{what} {v}: a number of at least {min} expected"
        )))
    }
}

pub(crate) fn secs(what: &str, v: f64) -> Result<Duration, SendError> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| SendError::Config(format!("{what} {v}: not a duration in seconds")))
}

fn run_service(
    service: &str,
    o: ServiceOpts,
    progress: bool,
    force_progress: bool,
) -> Result<(), SendError> {
    let no_network = o.no_network.unwrap_or(false);
    let group = match (o.group, no_network) {
        (Some(g), _) => g,
        (None, true) => "239.255.0.1"
            .parse()
            .map_err(|_| SendError::Config("group".into()))?,
        (None, false) => {
            return Err(SendError::Config(
                "no multicast group: give --group (or `group` in the config file)".into(),
            ));
        }
    };
    let port = o.port.unwrap_or(5004);
    let mikey_port = o.mikey_port.unwrap_or(2269);
    let ttl = o.ttl.unwrap_or(1);
    let protection = match o.protection.unwrap_or(ProtectionArg::Srtp) {
        ProtectionArg::Srtp => Protection::Srtp,
        ProtectionArg::None => Protection::Off,
    };
    let policy = SrtpPolicy::without_sp(o.rcc)
        .map_err(|e| SendError::Config(format!("SRTP policy (--rcc): {e}")))?;
    let srtp =
        SrtpSender::try_new(policy).map_err(|e| SendError::Config(format!("SRTP policy: {e}")))?;
    let headroom = srtp.max_overhead();

    // Keys.
    let (keys, _msk_lock) = if protection == Protection::Srtp {
        let state_dir = o
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("mbms-state"));
        let (store, msk, lock) = open_service_msk(
            service,
            &state_dir,
            o.store.as_deref(),
            o.msk_file.as_deref(),
        )?;
        let rotation = RotationPolicy {
            every: o
                .rotate_secs
                .map(|s| secs("--rotate-secs", at_least("--rotate-secs", s, 0.1)?))
                .transpose()?
                .or(if o.rotate_packets.is_some() {
                    None
                } else {
                    Some(Duration::from_secs(30))
                }),
            every_packets: match o.rotate_packets {
                Some(0) => return Err(SendError::Config("--rotate-packets 0: at least 1".into())),
                n => n,
            },
            max_packets: match o.mtk_max_packets {
                Some(0) => return Err(SendError::Config("--mtk-max-packets 0: at least 1".into())),
                n => n.unwrap_or(crate::keystate::DEFAULT_MAX_PACKETS),
            },
            repeat: secs(
                "--repeat-secs",
                at_least("--repeat-secs", o.repeat_secs.unwrap_or(1.0), 0.01)?,
            )?,
        };
        let keys = KeyState::new(
            store,
            msk,
            Profile::default(),
            rotation,
            Blocks::default(),
            o.deterministic,
        )?;
        (Some(keys), Some(lock))
    } else {
        (None, None)
    };

    // Source.
    let source: Box<dyn Source> = match (&o.pcap, o.generate.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(SendError::Config(
                "give either --pcap or --generate, not both".into(),
            ));
        }
        (Some(p), false) => {
            let ssrcs = o
                .select_ssrc
                .iter()
                .map(|s| {
                    u32::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| {
                        SendError::Config(format!("--select-ssrc {s:?}: hex SSRC expected"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let filter = Filter {
                dst_ports: o.select_port.clone(),
                ssrcs,
                any_udp: false,
            };
            let keep = o.loop_count.unwrap_or(1) != 1;
            Box::new(PcapFileSource::open(
                p,
                filter,
                crate::MAX_DATAGRAM - headroom,
                headroom,
                keep,
            )?)
        }
        (None, true) => {
            let cfg = GeneratorConfig {
                streams: o.streams.unwrap_or(1),
                payload_size: o
                    .payload_size
                    .unwrap_or(1200)
                    .min(crate::MAX_DATAGRAM - headroom - 12),
                rate: at_least("--gen-rate", o.gen_rate.unwrap_or(1000.0), 0.001)?,
                count: o.count,
                duration: o.duration.map(|d| secs("--duration", d)).transpose()?,
                seed: o
                    .deterministic
                    .unwrap_or_else(|| os_rng().map(|mut r| r.next_u64()).unwrap_or(1)),
            };
            if cfg.count.is_none() && cfg.duration.is_none() {
                eprintln!(
                    "mbms-send: generating until stopped (Ctrl-C); --count or --duration set an end"
                );
            }
            Box::new(Generator::new(cfg, headroom))
        }
        (None, false) => {
            return Err(SendError::Config(
                "no source: give --pcap FILE or --generate".into(),
            ));
        }
    };

    let pacing = match (o.fast.unwrap_or(false), o.rate_pps, o.rate_bps, o.speed) {
        (true, None, None, None) => Pacing::Fast,
        (false, Some(p), None, None) => Pacing::Packets(at_least("--rate-pps", p, 0.001)?),
        (false, None, Some(b), None) => Pacing::Bits(at_least("--rate-bps", b, 1.0)?),
        (false, None, None, speed) => Pacing::Source {
            speed: at_least("--speed", speed.unwrap_or(1.0), 0.001)?,
        },
        _ => {
            return Err(SendError::Config(
                "give at most one of --fast, --rate-pps, --rate-bps, --speed".into(),
            ));
        }
    };
    if let (Some(i), Some(out)) = (&o.pcap, &o.pcap_out)
        && std::fs::canonicalize(i).ok() == std::fs::canonicalize(out).ok()
    {
        return Err(SendError::Config(format!(
            "--pcap-out {} is the input capture",
            out.display()
        )));
    }
    let source_port = o.source_port.or(o.deterministic.map(|_| 50_000));
    let network = (!no_network).then(|| BearerOptions {
        group,
        interface: o.interface.clone(),
        ttl: u32::from(ttl),
        loopback: o.loopback.unwrap_or(true),
        source_port,
        gso: o.gso.unwrap_or(true),
        send_buffer: 8 << 20,
    });
    let read_thread = o.read_thread.unwrap_or(false);
    let cfg = PipelineConfig {
        media_dst: SocketAddr::new(group, port),
        mikey_dst: SocketAddr::new(group, mikey_port),
        network,
        pacing,
        protection,
        // At most 1024: packets protected but not yet sent (queues of 8 batches) add to the
        // jump of a stream's index after a crash, which must stay under 2^15.
        batch: match o.batch.unwrap_or(1024) {
            n @ 1..=1024 => n,
            n => return Err(SendError::Config(format!("--batch {n}: 1 to 1024"))),
        },
        deterministic: o.deterministic.is_some(),
        pcap_src: pipeline::default_pcap_src(group, source_port.unwrap_or(50_000)),
        pcap_out: o.pcap_out.clone(),
        ttl,
        progress: match (force_progress, progress) {
            (true, _) => Progress::Always,
            (false, true) => Progress::OnTerminal,
            (false, false) => Progress::Never,
        },
        passes: o.loop_count.unwrap_or(1),
        crypto_threads: o
            .crypto_threads
            .unwrap_or_else(|| default_crypto_threads(read_thread, cpus())),
        read_thread,
    };

    let stop = Arc::new(AtomicBool::new(false));
    // The first SIGINT/SIGTERM stops the run; a second ends the process at once. One thread
    // takes the signals in order: per-signal flag handlers could run at the same moment on two
    // threads, each see the other's signal as not yet there, and miss the second.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| SendError::Config(format!("signal handler: {e}")))?;
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if stop.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        std::process::exit(130);
                    }
                }
            })
            .map_err(|e| SendError::Config(format!("signal thread: {e}")))?;
    }
    let mut srtp = srtp;
    let mut keys = keys;
    if let Some(id) = match keys.as_mut() {
        Some(k) => k.resume(&mut srtp, Duration::ZERO)?,
        None => None,
    } {
        eprintln!("mbms-send: resuming MTK ID {} from the key store", id.0);
    }
    let r = pipeline::run(source, keys, srtp, cfg, stop);
    match r {
        Ok(stats) => {
            print_stats(&stats);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn print_stats(s: &Stats) {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let skipped: serde_json::Map<String, serde_json::Value> = s
        .skipped
        .iter()
        .map(|(k, v)| (k.clone(), (*v).into()))
        .collect();
    let v = serde_json::json!({
        "packets": s.packets,
        "bytes": s.bytes,
        "mikey_datagrams": s.mikey_datagrams,
        "mtk_messages": s.mtk_messages,
        "mtk_rotations": s.mtk_rotations,
        "last_mtk_id": s.last_mtk_id,
        "skipped": skipped,
        "gso_sends": s.gso_sends,
        "elapsed_s": s.elapsed.as_secs_f64(),
        "packets_per_s": s.packets as f64 / secs,
        "gbit_per_s": s.bytes as f64 * 8.0 / secs / 1e9,
        "interrupted": s.interrupted,
    });
    println!("{v}");
}

/// The CPUs this process may run on (1 if unknown).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Threads of the protecting pool when `--crypto-threads` is not given. A thread of the pool
/// also reads the source (unless `read_thread`), so the pool takes all but the sender thread's
/// CPU, and at least 2 threads on 2 CPUs: there a second thread taking half of each batch's
/// crypto sent 1.19 times (median of 8 rounds side by side, `docs/sender.md`) what one thread
/// reading and protecting alone sent. With a reader thread of its own, its CPU is taken off too.
fn default_crypto_threads(read_thread: bool, cpus: usize) -> usize {
    if read_thread {
        cpus.saturating_sub(2).max(1)
    } else {
        cpus.saturating_sub(1).max(cpus.min(2))
    }
}

#[cfg(test)]
mod tests {
    use super::default_crypto_threads;

    #[test]
    fn crypto_threads_by_cpus() {
        let inline: Vec<usize> = (1..=8).map(|c| default_crypto_threads(false, c)).collect();
        assert_eq!(inline, [1, 2, 2, 3, 4, 5, 6, 7]);
        let threaded: Vec<usize> = (1..=8).map(|c| default_crypto_threads(true, c)).collect();
        assert_eq!(threaded, [1, 1, 1, 2, 3, 4, 5, 6]);
    }
}
