//! MSK delivery over UDP (TS 33.246 §6.3.2.3.1): MIKEY MSK messages sealed under each UE's
//! MUK, batched across cores, sent to the UE's stored address; verification replies checked;
//! retransmission with back-off; UEs that never answer are marked for pull.
//!
//! ```text
//! jobs (HTTP handlers, admin) --mpsc--> engine task
//!   batch: reserve the MUK counters (one committed transaction)          [blocking pool]
//!          (one value shared by the batch for pushes to many UEs)
//!          seal the messages across cores (rayon)                        [blocking pool]
//!          send_to(ue_addr:push.port) each
//!          V flag set: remember (UE address, Key Domain ID, MSK ID) -> sent message
//!   datagram from a UE: a verification message -> check its MAC against what was sent
//!   timer: unverified after first_retry_ms * 2^n -> resend the same bytes; after `retries`
//!          resends -> give up, count the UE as marked for pull
//! ```
//!
//! A retransmission repeats the identical message (same timestamp counter): a UE that did get
//! it but whose verification was lost sees a replayed counter and must answer again (RFC 3830
//! §5.1: a duplicate is answered with the same verification).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbms_core::batch::{MskJob, seal_msk_batch_into};
use mbms_core::keyfile::MskFile;
use mbms_core::mbms::{MessageIds, MskMessageParams, SentMskMessage, check_verification};
use mbms_core::mikey::{Identity, SecurityPolicy};
use mbms_core::profile::Profile;
use mbms_core::{KeyDomainId, MskId, Muk};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use std::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::config::{PushConfig, ServiceKind};
use crate::server::SharedStore;

/// One MSK message to deliver to one UE.
#[derive(Debug, Clone)]
pub struct PushJob {
    /// The UE's B-TID (IDr; selects its MUK and counter).
    pub btid: String,
    /// Where the UE is.
    pub ue_addr: IpAddr,
    /// The MSK to deliver.
    pub msk: Arc<MskFile>,
    /// Streaming (SP payload) or download (Empty map).
    pub kind: ServiceKind,
    /// Part of a push of one MSK to many UEs: the batch takes one timestamp counter value
    /// shared by all its UEs, above every MUK's counter (one row written, not one per UE).
    /// Otherwise the UE's own counter is raised.
    pub shared_counter: bool,
}

/// Counters of the push engine, as `/health` shows them.
#[derive(Debug, Default)]
pub struct PushStats {
    /// MSK messages sealed and sent (first transmissions).
    pub sent: AtomicU64,
    /// Retransmissions.
    pub retransmitted: AtomicU64,
    /// Verification messages that checked.
    pub verified: AtomicU64,
    /// Datagrams that were not a valid verification of an outstanding message (bad MAC,
    /// garbage, replays of an already verified message).
    pub verification_rejected: AtomicU64,
    /// UEs given up on after the last retransmission: they must pull.
    pub marked_for_pull: AtomicU64,
    /// Jobs dropped: UE not provisioned any more or its MUK counter exhausted.
    pub skipped: AtomicU64,
    /// `send_to` failures.
    pub send_errors: AtomicU64,
    /// Messages waiting for a verification now.
    pub pending: AtomicU64,
}

/// A snapshot of [`PushStats`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PushCounts {
    /// See [`PushStats::sent`].
    pub sent: u64,
    /// See [`PushStats::retransmitted`].
    pub retransmitted: u64,
    /// See [`PushStats::verified`].
    pub verified: u64,
    /// See [`PushStats::verification_rejected`].
    pub verification_rejected: u64,
    /// See [`PushStats::marked_for_pull`].
    pub marked_for_pull: u64,
    /// See [`PushStats::skipped`].
    pub skipped: u64,
    /// See [`PushStats::send_errors`].
    pub send_errors: u64,
    /// See [`PushStats::pending`].
    pub pending: u64,
}

impl PushStats {
    /// The counters now.
    pub fn snapshot(&self) -> PushCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PushCounts {
            sent: g(&self.sent),
            retransmitted: g(&self.retransmitted),
            verified: g(&self.verified),
            verification_rejected: g(&self.verification_rejected),
            marked_for_pull: g(&self.marked_for_pull),
            skipped: g(&self.skipped),
            send_errors: g(&self.send_errors),
            pending: g(&self.pending),
        }
    }
}

pub(crate) fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// What the engine needs besides its jobs.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Ports, verification and retransmission.
    pub push: PushConfig,
    /// IDi of the messages: the BM-SC's NAF-ID.
    pub idi: Identity,
    /// Profile switches of the unconfirmed points.
    pub profile: Profile,
}

/// The handle HTTP handlers queue jobs on.
#[derive(Debug, Clone)]
pub struct PushHandle {
    tx: mpsc::UnboundedSender<Vec<PushJob>>,
    /// The engine's counters.
    pub stats: Arc<PushStats>,
    /// The local address pushes leave from (and verifications arrive at).
    pub local_addr: SocketAddr,
}

impl PushHandle {
    /// Queues jobs; they are sealed and sent in the engine's next batch. Returns `false` if
    /// the engine has stopped.
    pub fn queue(&self, jobs: Vec<PushJob>) -> bool {
        jobs.is_empty() || self.tx.send(jobs).is_ok()
    }
}

/// An MSK message waiting for its verification.
struct Pending {
    muk: Muk,
    sent: SentMskMessage,
    bytes: Vec<u8>,
    dest: SocketAddr,
    resends: u32,
    due: Instant,
}

/// Largest number of jobs sealed in one batch (one counter transaction, one rayon pass).
const BATCH: usize = 8192;

/// Datagrams per `sendmmsg`.
const SEND_BATCH: usize = 64;

/// One `sendmmsg` of up to [`SEND_BATCH`] messages, each to its own UE. Returns how many the
/// kernel took (at least one), or the error of the first.
fn send_batch(socket: &UdpSocket, batch: &[Sealed]) -> std::io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let iovs: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|s| [IoSlice::new(&s.bytes)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = batch
        .iter()
        .map(|s| Some(SockaddrStorage::from(s.dest)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
    let cmsgs: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &iovs,
        &addrs,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(sent.count())
}

/// The push socket. It is not registered with the runtime: with write interest, each datagram
/// the kernel frees after sending it (`sock_wfree`, the socket's write space) would call into
/// the runtime's epoll and wake its waiting thread, which perf put at about a fifth of the
/// push engine's time in a 1 M-UE push. Sends are non-blocking (`MSG_DONTWAIT`; when the send
/// buffer is full, which happens only when the interface queue is, a send waits a millisecond
/// and tries again), and a thread of its own receives the UEs' verification messages.
struct PushSocket {
    socket: Arc<UdpSocket>,
    incoming: mpsc::Receiver<(Vec<u8>, SocketAddr)>,
}

/// How often the receiving thread looks whether the engine is gone.
const RECV_POLL: Duration = Duration::from_millis(200);

impl PushSocket {
    fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(addr)?);
        socket.set_read_timeout(Some(RECV_POLL))?;
        // Best effort: the kernel caps it at net.core.wmem_max.
        let _ = socket2::SockRef::from(&*socket).set_send_buffer_size(4 << 20);
        let (tx, incoming) = mpsc::channel(4096);
        let reader = socket.clone();
        std::thread::Builder::new()
            .name("bmsc-push-recv".into())
            .spawn(move || {
                let mut buf = vec![0u8; 2048];
                while !tx.is_closed() {
                    match reader.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if tx.blocking_send((buf[..n].to_vec(), from)).is_err() {
                                return;
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) =>
                        {
                            if tx.is_closed() {
                                return;
                            }
                        }
                        // After `Drop` shut the socket, the receive fails at once: the channel
                        // is closed by then.
                        Err(_) if tx.is_closed() => return,
                        Err(e) => {
                            tracing::debug!(error = %e, "push socket receive");
                            // Not a busy loop if the error persists.
                            std::thread::sleep(RECV_POLL);
                        }
                    }
                }
            })?;
        Ok(Self { socket, incoming })
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Runs `send` until it does not find the send buffer full (nor is interrupted).
    async fn send<T>(
        &self,
        mut send: impl FnMut(&UdpSocket) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        loop {
            match send(&self.socket) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl Drop for PushSocket {
    /// Wakes the receiving thread at once (its receive returns), so that it sees the engine
    /// gone and lets the socket go.
    fn drop(&mut self) {
        // Closed first, so that the woken thread finds it closed and ends.
        self.incoming.close();
        let _ = socket2::SockRef::from(&*self.socket).shutdown(std::net::Shutdown::Read);
    }
}

/// `sendto` without blocking.
fn send_one(socket: &UdpSocket, bytes: &[u8], dest: SocketAddr) -> std::io::Result<usize> {
    use nix::sys::socket::{MsgFlags, SockaddrStorage, sendto};
    use std::os::fd::AsRawFd;
    Ok(sendto(
        socket.as_raw_fd(),
        bytes,
        &SockaddrStorage::from(dest),
        MsgFlags::MSG_DONTWAIT,
    )?)
}

/// Binds the push socket and starts the engine on the current tokio runtime. The engine runs
/// until `shutdown` turns true, then finishes the batch in hand and returns.
pub async fn start(
    settings: PushSettings,
    store: Arc<Mutex<SharedStore>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(PushHandle, tokio::task::JoinHandle<()>)> {
    let socket = PushSocket::bind(settings.push.bind)?;
    let local_addr = socket.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PushJob>>();
    let stats = Arc::new(PushStats::default());
    let handle = PushHandle {
        tx,
        stats: stats.clone(),
        local_addr,
    };
    let task = tokio::spawn(async move {
        let mut engine = Engine {
            settings,
            store,
            socket,
            stats,
            pending: HashMap::new(),
            rng: None,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
                jobs = rx.recv() => {
                    let Some(mut jobs) = jobs else { break };
                    while jobs.len() < BATCH {
                        match rx.try_recv() {
                            Ok(more) => jobs.extend(more),
                            Err(_) => break,
                        }
                    }
                    engine.deliver(jobs).await;
                }
                Some((datagram, from)) = engine.socket.incoming.recv() => {
                    engine.on_datagram(&datagram, from);
                }
                _ = tick.tick() => engine.retransmit().await,
            }
        }
    });
    Ok((handle, task))
}

struct Engine {
    settings: PushSettings,
    store: Arc<Mutex<SharedStore>>,
    socket: PushSocket,
    stats: Arc<PushStats>,
    pending: HashMap<(String, KeyDomainId, MskId), Pending>,
    rng: Option<ChaCha20Rng>,
}

/// A sealed message ready to send.
struct Sealed {
    btid: String,
    bytes: Vec<u8>,
    dest: SocketAddr,
    /// What checking the UE's verification needs; only when the V flag is set.
    verify: Option<(Muk, SentMskMessage)>,
}

/// Sealed messages of one chunk, or why there are none.
type SealOutcome = Result<Vec<Sealed>, String>;

impl Engine {
    /// Seals `chunk` on the blocking pool (counters reserved, then sealed across cores).
    fn spawn_seal(&mut self, chunk: Vec<PushJob>) -> Option<tokio::task::JoinHandle<SealOutcome>> {
        // One RNG per chunk, seeded from the engine's (itself seeded from the OS once).
        let parent = match self.rng.as_mut() {
            Some(r) => r,
            None => match ChaCha20Rng::try_from_os_rng() {
                Ok(r) => self.rng.insert(r),
                Err(e) => {
                    tracing::error!(error = %e, "no OS randomness: MSK messages not sent");
                    return None;
                }
            },
        };
        let mut rng = ChaCha20Rng::from_rng(parent);
        let store = self.store.clone();
        let settings = self.settings.clone();
        let stats = self.stats.clone();
        Some(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let sealed = seal_batch(&store, &settings, &stats, &chunk, &mut rng)
                .map_err(|e| format!("key store: {e}"));
            tracing::debug!(
                jobs = chunk.len(),
                seal_us = duration_us(started.elapsed()),
                "push batch sealed"
            );
            sealed
        }))
    }

    /// Seals and sends `jobs` in chunks; chunk `k + 1` is sealed while chunk `k` is sent.
    async fn deliver(&mut self, jobs: Vec<PushJob>) {
        // Owned chunks: the jobs move into the sealing tasks, nothing is copied.
        // A chunk's jobs all take a shared counter or all their own, so that the counters
        // are reserved in the order the messages leave.
        let mut jobs = jobs.into_iter().peekable();
        let mut chunks = std::iter::from_fn(|| {
            let shared = jobs.peek()?.shared_counter;
            let mut chunk = Vec::with_capacity(BATCH.min(jobs.len()));
            while chunk.len() < BATCH
                && let Some(job) = jobs.next_if(|j| j.shared_counter == shared)
            {
                chunk.push(job);
            }
            Some(chunk)
        });
        let Some(first) = chunks.next() else { return };
        let mut next = self.spawn_seal(first);
        while let Some(task) = next.take() {
            if let Some(chunk) = chunks.next() {
                next = self.spawn_seal(chunk);
            }
            let sealed = match task.await {
                Ok(Ok(sealed)) => sealed,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "MSK messages not sent");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "sealing task failed");
                    continue;
                }
            };
            let started = Instant::now();
            let n = sealed.len();
            self.send_all(sealed).await;
            tracing::debug!(
                messages = n,
                send_us = duration_us(started.elapsed()),
                "push batch sent"
            );
        }
    }

    /// Sends sealed messages, up to [`SEND_BATCH`] per `sendmmsg`, waiting for the socket to
    /// drain when it is full; remembers those that wait for a verification.
    async fn send_all(&mut self, sealed: Vec<Sealed>) {
        let first = Duration::from_millis(self.settings.push.first_retry_ms);
        let mut at = 0;
        while at < sealed.len() {
            let batch = &sealed[at..sealed.len().min(at + SEND_BATCH)];
            let sent = self.socket.send(|s| send_batch(s, batch)).await;
            let n = match sent {
                Ok(n) => n.max(1).min(batch.len()),
                Err(e) => {
                    // The first message of the batch failed (e.g. no route to that UE): count
                    // it and go on with the next.
                    bump(&self.stats.send_errors);
                    tracing::warn!(btid = %batch[0].btid, dest = %batch[0].dest, error = %e, "MSK push not sent");
                    at += 1;
                    continue;
                }
            };
            self.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
            at += n;
        }
        let due = Instant::now() + first;
        for s in sealed {
            let Some((muk, sent)) = s.verify else {
                continue;
            };
            let key = (s.btid, sent.key_domain_id, sent.msk_id);
            let p = Pending {
                muk,
                sent,
                bytes: s.bytes,
                dest: s.dest,
                resends: 0,
                due,
            };
            if self.pending.insert(key, p).is_none() {
                bump(&self.stats.pending);
            }
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let ids = match MessageIds::peek(bytes) {
            Ok(ids) => ids,
            Err(e) => {
                bump(&self.stats.verification_rejected);
                tracing::debug!(%from, error = %e, "not a MIKEY message");
                return;
            }
        };
        let (Some(kd), Some(msk_id)) = (ids.key_domain_id, ids.msk_id) else {
            bump(&self.stats.verification_rejected);
            tracing::debug!(%from, "verification without Key Domain ID and MSK ID");
            return;
        };
        // The UE names itself in IDr (its B-TID); without IDr, the one outstanding message to
        // the sender's address for that MSK.
        let key = match ids
            .idr
            .as_ref()
            .map(|i| String::from_utf8_lossy(&i.value).into_owned())
        {
            Some(btid) => (btid, kd, msk_id),
            None => match self
                .pending
                .iter()
                .find(|((_, k, m), p)| *k == kd && *m == msk_id && p.dest.ip() == from.ip())
            {
                Some((k, _)) => k.clone(),
                None => (String::new(), kd, msk_id),
            },
        };
        let Some(p) = self.pending.get(&key).filter(|p| p.dest.ip() == from.ip()) else {
            bump(&self.stats.verification_rejected);
            tracing::debug!(%from, ?msk_id, "verification for no outstanding MSK message");
            return;
        };
        match check_verification(&p.muk, &p.sent, bytes, &self.settings.profile) {
            Ok(()) => {
                tracing::debug!(btid = %key.0, ?msk_id, "MSK delivery verified");
                self.pending.remove(&key);
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                bump(&self.stats.verified);
            }
            Err(e) => {
                bump(&self.stats.verification_rejected);
                tracing::info!(%from, ?msk_id, error = %e, "verification message rejected");
            }
        }
    }

    async fn retransmit(&mut self) {
        let now = Instant::now();
        let retries = self.settings.push.retries;
        let first = self.settings.push.first_retry_ms;
        let due: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(p) = self.pending.get_mut(&key) else {
                continue;
            };
            if p.resends >= retries {
                tracing::warn!(btid = %key.0, msk_id = ?key.2, "no verification: UE marked for pull");
                self.pending.remove(&key);
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                bump(&self.stats.marked_for_pull);
                continue;
            }
            p.resends += 1;
            let wait = first.saturating_mul(1u64 << p.resends.min(20));
            p.due = now + Duration::from_millis(wait);
            match self.socket.send(|s| send_one(s, &p.bytes, p.dest)).await {
                Ok(_) => bump(&self.stats.retransmitted),
                Err(e) => {
                    bump(&self.stats.send_errors);
                    tracing::warn!(dest = %p.dest, error = %e, "retransmission not sent");
                }
            }
        }
    }
}

/// Reserves the MUK counters of the jobs (one committed transaction: each UE's own, or one
/// value shared by the batch when its jobs are a push to many UEs), then seals the messages
/// across the rayon pool. Jobs whose UE is gone or whose counter is exhausted are skipped.
fn seal_batch(
    store: &Mutex<SharedStore>,
    settings: &PushSettings,
    stats: &PushStats,
    jobs: &[PushJob],
    rng: &mut ChaCha20Rng,
) -> Result<Vec<Sealed>, mbms_keystore::StoreError> {
    let started = Instant::now();
    let reserved = {
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let btids: Vec<&str> = jobs.iter().map(|j| j.btid.as_str()).collect();
        if jobs.first().is_some_and(|j| j.shared_counter) {
            store.reserve_shared_muk_counter_with_keys(&btids)?
        } else {
            store.reserve_muk_counters_with_keys(&btids)?
        }
    };
    tracing::debug!(
        jobs = jobs.len(),
        reserve_us = duration_us(started.elapsed()),
        "MUK counters reserved"
    );
    let policy = SecurityPolicy::srtp_default(1);
    let mut prepared = Vec::with_capacity(jobs.len());
    for (job, reserved) in jobs.iter().zip(reserved) {
        let Some((counter, muk)) = reserved else {
            bump(&stats.skipped);
            continue;
        };
        let mut rand = [0u8; 16];
        rng.fill_bytes(&mut rand);
        prepared.push((job, counter, muk, rand, Identity::nai(job.btid.as_bytes())));
    }
    let params: Vec<MskMessageParams<'_>> = prepared
        .iter()
        .map(|(job, counter, _, rand, idr)| MskMessageParams {
            key_domain_id: job.msk.key_domain_id,
            msk_id: job.msk.msk_id,
            msk: &job.msk.msk,
            validity: job.msk.validity,
            policy: match job.kind {
                ServiceKind::Streaming => Some(&policy),
                ServiceKind::Download => None,
            },
            counter: *counter,
            csb_id: job.msk.csb_id,
            rand,
            idi: &settings.idi,
            idr,
            verification_requested: settings.push.verify,
        })
        .collect();
    let batch: Vec<MskJob<'_>> = prepared
        .iter()
        .zip(&params)
        .map(|((_, _, muk, _, _), p)| MskJob { muk, params: *p })
        .collect();
    let mut outs = Vec::new();
    seal_msk_batch_into(&batch, &settings.profile, &mut outs);
    let port = settings.push.port;
    let verify: Vec<Option<SentMskMessage>> = params
        .iter()
        .map(|p| settings.push.verify.then(|| SentMskMessage::from_params(p)))
        .collect();
    drop(batch);
    drop(params);
    Ok(prepared
        .into_iter()
        .zip(verify)
        .zip(outs)
        .map(|(((job, _, muk, _, _), sent), bytes)| Sealed {
            btid: job.btid.clone(),
            bytes,
            dest: SocketAddr::new(job.ue_addr, port),
            verify: sent.map(|sent| (muk, sent)),
        })
        .collect())
}
