//! The receiving side: keys looked up by MKI (several MTKs live around a switch), ROC
//! estimation and RFC 4771 synchronisation, replay windows, typed errors.

use std::collections::HashMap;

use bytes::BytesMut;

use super::replay::ReplayWindow;
use super::rtp::{RtpHeader, rtcp_ssrc};
use super::session::{MasterKeys, tag_matches};
use super::{RccMode, SrtpAuth, SrtpPolicy, UnprotectError, estimate_index, roc_of, seq_of};
use crate::keys::{Mtk, MtkSalt};

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
    streams: HashMap<u32, RecvStream>,
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
}

impl SrtpReceiver {
    /// A receiver with no keys. Without RCC, a new SSRC starts at ROC 0 (or the value given to
    /// [`set_initial_roc`](Self::set_initial_roc)); with RCC it waits for a ROC-carrying packet.
    pub fn new(policy: SrtpPolicy) -> Self {
        Self {
            policy,
            keys: Vec::new(),
            streams: HashMap::new(),
            initial_roc: None,
        }
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
    pub fn add_key(&mut self, mki: &[u8], mtk: &Mtk, salt: &MtkSalt) {
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
        provisional: Option<&HashMap<u32, u64>>,
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
        let local = match provisional.and_then(|p| p.get(&hdr.ssrc)) {
            Some(&top) => Some(
                stream
                    .and_then(|s| s.window.top())
                    .map_or(top, |t| t.max(top)),
            ),
            None => stream.and_then(|s| s.window.top()),
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
            (Some(top), _) => estimate_index(roc_of(top), seq_of(top), hdr.seq),
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
        })
    }

    /// Sequential commit: the replay window (and with it ROC and highest SEQ) moves on.
    fn commit(&mut self, ssrc: u32, index: u64) -> Result<(), UnprotectError> {
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
        let (ssrc, index, end) = (job.ssrc, job.index, job.end);
        open(&self.policy, &self.keys[job.key].keys, job)?;
        self.commit(ssrc, index)?;
        Ok(end)
    }

    /// Unprotects a batch: checks in order, crypto spread over rayon's pool, then the replay
    /// windows advance in order. Each accepted packet is truncated to its RTP plaintext.
    pub fn unprotect_batch(&mut self, pkts: &mut [BytesMut]) -> Vec<Result<(), UnprotectError>> {
        let mut pre = Vec::with_capacity(pkts.len());
        let mut jobs = Vec::with_capacity(pkts.len());
        let mut provisional = HashMap::new();
        for (i, pkt) in pkts.iter_mut().enumerate() {
            match self.prepare(AsMut::<[u8]>::as_mut(pkt), Some(&provisional)) {
                Ok(job) => {
                    let top = provisional.entry(job.ssrc).or_insert(job.index);
                    *top = (*top).max(job.index);
                    pre.push(Ok((job.ssrc, job.index, job.end)));
                    jobs.push((i, job));
                }
                Err(e) => pre.push(Err(e)),
            }
        }
        let (policy, keys) = (&self.policy, &self.keys);
        let verdicts: Vec<(usize, Result<(), UnprotectError>)> =
            crate::batch::map_owned(jobs, |(i, job)| (i, open(policy, &keys[job.key].keys, job)));
        for (i, v) in verdicts {
            if let Err(e) = v {
                pre[i] = Err(e);
            }
        }
        pkts.iter_mut()
            .zip(pre)
            .map(|(pkt, r)| {
                let (ssrc, index, end) = r?;
                self.commit(ssrc, index)?;
                pkt.truncate(end);
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

/// Parallel phase: authentication (constant time), then decryption.
fn open(policy: &SrtpPolicy, keys: &MasterKeys, job: Job<'_>) -> Result<(), UnprotectError> {
    let Job {
        pkt,
        hdr_len,
        end,
        ssrc,
        seq,
        index,
        ..
    } = job;
    let keys = &keys.srtp;
    let roc = roc_of(index).to_be_bytes();
    let (authenticated, tail) = pkt.split_at_mut(end);
    let tag = &tail[policy.mki_len..];
    let ok = match policy.srtp_auth {
        SrtpAuth::Null => true,
        SrtpAuth::HmacSha1 { .. } => tag_matches(tag, &keys.mac(authenticated, &roc)),
        SrtpAuth::Rcc { .. } if tag.is_empty() => true,
        SrtpAuth::Rcc { mode, rate, .. } if seq.is_multiple_of(rate) => match mode {
            RccMode::Mode3 => true,
            // The ROC in the tag is the one the index was built from; the MAC covers it.
            _ => tag_matches(&tag[4..], &keys.mac(authenticated, &roc)),
        },
        SrtpAuth::Rcc { .. } => tag_matches(tag, &keys.mac(authenticated, &roc)),
    };
    if !ok {
        return Err(UnprotectError::AuthFailed);
    }
    if policy.srtp_encrypt {
        keys.crypt(ssrc, index, &mut authenticated[hdr_len..]);
    }
    Ok(())
}
