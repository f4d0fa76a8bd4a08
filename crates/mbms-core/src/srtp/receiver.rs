//! The receiving side: keys looked up by MKI (several MTKs live around a switch), ROC
//! estimation and RFC 4771 synchronisation, replay windows, typed errors.

use bytes::BytesMut;

use super::replay::ReplayWindow;
use super::rtp::{RtpHeader, rtcp_ssrc};
use super::session::{MasterKeys, tag_matches};
use super::{RccMode, SrtpAuth, SrtpPolicy, UnprotectError, estimate_index, roc_of, seq_of};
use crate::keys::{Mtk, MtkSalt};
use crate::lanes::{MAX_LANES, MacInput, hmac_sha1_lanes, lanes};

struct RecvKey {
    mki: Box<[u8]>,
    keys: MasterKeys,
}

#[derive(Debug, Clone, Copy, Default)]
struct RecvStream {
    /// Replay window over SRTP indexes; its top gives ROC and highest SEQ (RFC 3711 App. A).
    window: ReplayWindow,
    /// Replay window over SRTCP indexes.
    rtcp_window: ReplayWindow,
}

/// The SRTP receiver of one session.
pub struct SrtpReceiver {
    policy: SrtpPolicy,
    keys: Vec<RecvKey>,
    streams: super::SsrcMap<RecvStream>,
    initial_roc: Option<u32>,
}

impl core::fmt::Debug for SrtpReceiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrtpReceiver")
            .field("policy", &self.policy)
            .field(
                "mkis",
                &self.keys.iter().map(|k| &k.mki).collect::<Vec<_>>(),
            )
            .field("streams", &self.streams.len())
            .finish()
    }
}

/// A packet checked in the sequential phase, waiting for authentication and decryption.
struct Job<'a> {
    pkt: &'a mut [u8],
    key: usize,
    hdr_len: usize,
    end: usize,
    ssrc: u32,
    seq: u16,
    index: u64,
    /// The index was estimated from a packet of the same batch not yet authenticated.
    provisional: bool,
}

/// A batch packet between the phases.
struct Pending {
    ssrc: u32,
    seq: u16,
    index: u64,
    end: usize,
    provisional: bool,
}

impl SrtpReceiver {
    /// A receiver with no keys. Without RCC, a new SSRC starts at ROC 0 (or the value given to
    /// [`set_initial_roc`](Self::set_initial_roc)); with RCC it waits for a ROC-carrying packet.
    ///
    /// # Panics
    /// If the policy is not valid ([`SrtpPolicy::validate`]); see [`try_new`](Self::try_new).
    pub fn new(policy: SrtpPolicy) -> Self {
        match Self::try_new(policy) {
            Ok(r) => r,
            Err(e) => panic!("invalid SRTP policy: {e}"),
        }
    }

    /// A receiver with no keys, or the reason the policy is refused.
    pub fn try_new(policy: SrtpPolicy) -> Result<Self, super::PolicyError> {
        policy.validate()?;
        Ok(Self {
            policy,
            keys: Vec::new(),
            streams: super::SsrcMap::default(),
            initial_roc: None,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &SrtpPolicy {
        &self.policy
    }

    /// ROC assumed for a new SSRC (e.g. from a MIKEY SRTP-ID map).
    pub fn set_initial_roc(&mut self, roc: u32) {
        self.initial_roc = Some(roc);
    }

    /// Adds (or replaces) the master key named by `mki`.
    ///
    /// # Panics
    /// If `mki` is not `policy.mki_len` bytes long.
    pub fn add_key(&mut self, mki: &[u8], mtk: &Mtk, salt: &MtkSalt) {
        assert_eq!(
            mki.len(),
            self.policy.mki_len,
            "MKI length differs from the policy's"
        );
        let keys = MasterKeys::derive(mtk, salt);
        match self.keys.iter_mut().find(|k| &k.mki[..] == mki) {
            Some(k) => k.keys = keys,
            None => self.keys.push(RecvKey {
                mki: mki.into(),
                keys,
            }),
        }
    }

    /// Forgets the key named by `mki`.
    pub fn remove_key(&mut self, mki: &[u8]) {
        self.keys.retain(|k| &k.mki[..] != mki);
    }

    /// Number of keys held.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The highest SRTP index accepted on `ssrc`.
    pub fn highest_index(&self, ssrc: u32) -> Option<u64> {
        self.streams.get(&ssrc).and_then(|s| s.window.top())
    }

    fn find_key(&self, mki: &[u8]) -> Result<usize, UnprotectError> {
        self.keys
            .iter()
            .position(|k| &k.mki[..] == mki)
            .ok_or(UnprotectError::UnknownMki)
    }

    /// Sequential phase: framing, key lookup, index estimation and the replay pre-check.
    ///
    /// `provisional` holds, for the batch path, the highest index of each SSRC among the
    /// packets already prepared in the batch, so that a stream synchronised by an RCC packet
    /// (or wrapping its sequence number) early in a batch is estimated right later in it. If such
    /// a packet then fails authentication, the packets estimated from it fail as well.
    fn prepare<'a>(
        &self,
        pkt: &'a mut [u8],
        provisional: Option<&super::SsrcMap<u64>>,
    ) -> Result<Job<'a>, UnprotectError> {
        let hdr = RtpHeader::parse(pkt)?;
        let tag_len = self.policy.srtp_auth.tag_len(hdr.seq);
        let mki_len = self.policy.mki_len;
        let end = pkt
            .len()
            .checked_sub(tag_len + mki_len)
            .filter(|e| *e >= hdr.len)
            .ok_or(UnprotectError::TooShort)?;
        let key = self.find_key(&pkt[end..end + mki_len])?;
        let stream = self.streams.get(&hdr.ssrc);
        let real = stream.and_then(|s| s.window.top());
        let local = match provisional.and_then(|p| p.get(&hdr.ssrc)) {
            Some(&top) => Some(real.map_or(top, |t| t.max(top))),
            None => real,
        };
        let auth = self.policy.srtp_auth;
        let index = match (local, auth) {
            //= RFC 4771 §2
            //# during authentication processing ROC_local is replaced by ROC_sender
            (_, SrtpAuth::Rcc { mode, .. })
                if auth.carries_roc(hdr.seq) && (mode != RccMode::Mode3 || local.is_none()) =>
            {
                let t = end + mki_len;
                let roc = u32::from_be_bytes([pkt[t], pkt[t + 1], pkt[t + 2], pkt[t + 3]]);
                (u64::from(roc) << 16) | u64::from(hdr.seq)
            }
            (Some(top), _) => {
                estimate_index(roc_of(top), seq_of(top), hdr.seq).ok_or(UnprotectError::Replayed)?
            }
            (None, SrtpAuth::Rcc { .. }) => return Err(UnprotectError::RocNotSynchronized),
            (None, _) => (u64::from(self.initial_roc.unwrap_or(0)) << 16) | u64::from(hdr.seq),
        };
        if stream.is_some_and(|s| !s.window.is_fresh(index)) {
            return Err(UnprotectError::Replayed);
        }
        Ok(Job {
            pkt,
            key,
            hdr_len: hdr.len,
            end,
            ssrc: hdr.ssrc,
            seq: hdr.seq,
            index,
            provisional: local != real,
        })
    }

    /// Whether an accepted packet with sequence number `seq` moves the replay window (and with
    /// it ROC and highest SEQ). Where the policy authenticates packets, only authenticated ones
    /// do, so that a forged packet without a MAC (RCC mode 1 packets without ROC) cannot shift
    /// the ROC. Policies without any MAC (NULL, RCC mode 3) have no such protection: every
    /// packet moves it (docs/profile.md).
    fn advances(&self, seq: u16) -> bool {
        match self.policy.srtp_auth {
            SrtpAuth::Null
            | SrtpAuth::Rcc {
                mode: RccMode::Mode3,
                ..
            } => true,
            auth => auth.layout(seq).has_mac(),
        }
    }

    /// Sequential commit: the replay window (and with it ROC and highest SEQ) moves on.
    fn commit(&mut self, ssrc: u32, seq: u16, index: u64) -> Result<(), UnprotectError> {
        if !self.advances(seq) {
            return Ok(());
        }
        if self.streams.len() >= super::MAX_STREAMS && !self.streams.contains_key(&ssrc) {
            return Err(UnprotectError::TooManyStreams);
        }
        let s = self.streams.entry(ssrc).or_default();
        // A duplicate inside one batch passed the pre-check with it; refuse the second here.
        if !s.window.is_fresh(index) {
            return Err(UnprotectError::Replayed);
        }
        s.window.accept(index);
        Ok(())
    }

    /// Unprotects the SRTP packet `pkt` in place. Returns the length of the RTP packet, which
    /// is now plaintext at `pkt[..len]`.
    pub fn unprotect(&mut self, pkt: &mut [u8]) -> Result<usize, UnprotectError> {
        let job = self.prepare(pkt, None)?;
        let (ssrc, seq, index, end) = (job.ssrc, job.seq, job.index, job.end);
        let mut one = [(0, job, Ok(()))];
        open_group(&self.policy, &self.keys, &mut one);
        let [(_, job, verdict)] = one;
        verdict?;
        if let Err(e) = self.commit(ssrc, seq, index) {
            // Refused after decryption: do not leave the plaintext behind.
            job.pkt.fill(0);
            return Err(e);
        }
        Ok(end)
    }

    /// Unprotects a batch: checks in order, crypto spread over rayon's pool, then the replay
    /// windows advance in order. Each accepted packet is truncated to its RTP plaintext.
    pub fn unprotect_batch(&mut self, pkts: &mut [BytesMut]) -> Vec<Result<(), UnprotectError>> {
        let n = pkts.len();
        let mut pre: Vec<Result<Pending, UnprotectError>> = Vec::with_capacity(n);
        let mut jobs = Vec::with_capacity(pkts.len());
        let mut provisional = super::SsrcMap::default();
        for (i, pkt) in pkts.iter_mut().enumerate() {
            match self.prepare(AsMut::<[u8]>::as_mut(pkt), Some(&provisional)) {
                Ok(job) => {
                    if self.advances(job.seq) {
                        let top = provisional.entry(job.ssrc).or_insert(job.index);
                        *top = (*top).max(job.index);
                    }
                    pre.push(Ok(Pending {
                        ssrc: job.ssrc,
                        seq: job.seq,
                        index: job.index,
                        end: job.end,
                        provisional: job.provisional,
                    }));
                    jobs.push((i, job, Ok(())));
                }
                Err(e) => pre.push(Err(e)),
            }
        }
        let (policy, keys) = (&self.policy, &self.keys);
        crate::batch::for_each_chunk(&mut jobs, lanes(), |group| open_group(policy, keys, group));
        let mut verdicts = vec![Ok(()); n];
        for (i, _, verdict) in jobs {
            verdicts[i] = verdict;
        }
        pkts.iter_mut()
            .zip(pre)
            .zip(verdicts)
            .map(|((pkt, p), verdict)| {
                let p = p?;
                match verdict {
                    Ok(()) => {}
                    // Estimated from a packet earlier in the batch that may have been forged:
                    // try again alone, against the state the authentic packets left. The packet
                    // is still ciphertext, since only authentic packets are decrypted.
                    Err(UnprotectError::AuthFailed) if p.provisional => {
                        let end = self.unprotect(pkt)?;
                        pkt.truncate(end);
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
                if let Err(e) = self.commit(p.ssrc, p.seq, p.index) {
                    // A duplicate within the batch: decrypted, then refused; wipe the plaintext.
                    pkt.fill(0);
                    return Err(e);
                }
                pkt.truncate(p.end);
                Ok(())
            })
            .collect()
    }

    /// Unprotects the SRTCP packet `pkt` in place; returns the length of the plaintext RTCP.
    pub fn unprotect_rtcp(&mut self, pkt: &mut [u8]) -> Result<usize, UnprotectError> {
        let ssrc = rtcp_ssrc(pkt)?;
        let (mki_len, tag_len) = (self.policy.mki_len, self.policy.srtcp_tag_len);
        let end = pkt
            .len()
            .checked_sub(4 + mki_len + tag_len)
            .filter(|e| *e >= 8)
            .ok_or(UnprotectError::TooShort)?;
        let key = self.find_key(&pkt[end + 4..end + 4 + mki_len])?;
        let e_index = u32::from_be_bytes([pkt[end], pkt[end + 1], pkt[end + 2], pkt[end + 3]]);
        let index = u64::from(e_index & 0x7fff_ffff);
        if self
            .streams
            .get(&ssrc)
            .is_some_and(|s| !s.rtcp_window.is_fresh(index))
        {
            return Err(UnprotectError::Replayed);
        }
        let keys = &self.keys[key].keys.srtcp;
        let mac = keys.mac(&pkt[..end + 4], &[]);
        if !tag_matches(&pkt[end + 4 + mki_len..], &mac) {
            return Err(UnprotectError::AuthFailed);
        }
        if self.streams.len() >= super::MAX_STREAMS && !self.streams.contains_key(&ssrc) {
            return Err(UnprotectError::TooManyStreams);
        }
        if e_index >> 31 == 1 {
            keys.crypt(ssrc, index, &mut pkt[8..end]);
        }
        self.streams
            .entry(ssrc)
            .or_default()
            .rtcp_window
            .accept(index);
        Ok(end)
    }
}

/// The crypto of up to [`lanes()`] packets (one, on the single-packet path): their MACs computed
/// together (multi-lane HMAC-SHA-1), each verified in constant time, the authentic ones
/// decrypted. Verdicts go into
/// `verdicts[i]` for job `i`.
fn open_group(
    policy: &SrtpPolicy,
    keys: &[RecvKey],
    jobs: &mut [(usize, Job<'_>, Result<(), UnprotectError>)],
) {
    debug_assert!(
        jobs.len() <= MAX_LANES,
        "groups come from chunks of lanes()"
    );
    let mut rocs = [[0u8; 4]; MAX_LANES];
    for (r, (_, job, _)) in rocs.iter_mut().zip(jobs.iter()) {
        *r = roc_of(job.index).to_be_bytes();
    }
    let mut macs = [[0u8; 20]; MAX_LANES];
    let mut slot = [usize::MAX; MAX_LANES];
    {
        let Some((_, first, _)) = jobs.first() else {
            return;
        };
        let blank = MacInput {
            key: &keys[first.key].keys.srtp.lanes,
            data: &[],
            trailer: &[],
        };
        let mut inputs = [blank; MAX_LANES];
        let mut n = 0;
        for (i, (_, job, _)) in jobs.iter().enumerate() {
            if policy.srtp_auth.layout(job.seq).has_mac() {
                inputs[n] = MacInput {
                    key: &keys[job.key].keys.srtp.lanes,
                    data: &job.pkt[..job.end],
                    trailer: &rocs[i],
                };
                slot[i] = n;
                n += 1;
            }
        }
        hmac_sha1_lanes(&inputs[..n], &mut macs[..n]);
    }
    for (i, (_, job, verdict)) in jobs.iter_mut().enumerate() {
        let layout = policy.srtp_auth.layout(job.seq);
        let mac = macs.get(slot[i]).copied().unwrap_or([0; 20]);
        let (authenticated, tail) = job.pkt.split_at_mut(job.end);
        *verdict = if layout.verify(&tail[policy.mki_len..], &mac) {
            if policy.srtp_encrypt {
                keys[job.key].keys.srtp.crypt(
                    job.ssrc,
                    job.index,
                    &mut authenticated[job.hdr_len..],
                );
            }
            Ok(())
        } else {
            Err(UnprotectError::AuthFailed)
        };
    }
}
