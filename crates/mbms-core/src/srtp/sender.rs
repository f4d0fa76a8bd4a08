//! The sending side: per-SSRC index tracking, key switches at packet boundaries, and the
//! guarantee that no (key, index) pair is used twice within a context.

use bytes::BytesMut;

use super::rtp::{RtpHeader, rtcp_ssrc};
use super::session::MasterKeys;
use super::{
    ProtectError, SRTCP_MAX_PACKETS, SRTP_MAX_PACKETS, SrtpPolicy, estimate_index, roc_of, seq_of,
};
use crate::keys::{Mtk, MtkSalt};
use crate::lanes::{MAX_LANES, MacInput, hmac_sha1_lanes, lanes};

/// Packets whose indexes [`SrtpSender::protect_batch`] assigns before handing them to the pool:
/// few enough that the other threads start sealing after about half a microsecond (an index
/// takes 6-10 ns), enough that a hand-off (one rayon task) is cheap against the crypto of the
/// run (tens of microseconds at 1200 bytes).
const PIPELINE: usize = 64;

struct SendKey {
    mki: Box<[u8]>,
    keys: MasterKeys,
    srtp_packets: u64,
    srtcp_packets: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct SendStream {
    /// Last SRTP index sent.
    last_index: Option<u64>,
    /// Last SRTCP index sent.
    srtcp_index: u32,
}

/// The SRTP sender of one session (one MSK's policy; the MTK changes over time).
pub struct SrtpSender {
    policy: SrtpPolicy,
    key: Option<SendKey>,
    streams: super::SsrcMap<SendStream>,
}

impl core::fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrtpSender")
            .field("policy", &self.policy)
            .field("mki", &self.key.as_ref().map(|k| &k.mki))
            .field("streams", &self.streams.len())
            .finish()
    }
}

/// What the sequential phase decided for one packet: its index and where its parts lie.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    hdr_len: usize,
    /// Length of the RTP packet (where the MKI goes).
    end: usize,
    /// Protected length.
    total: usize,
    ssrc: u32,
    seq: u16,
    index: u64,
}

/// One packet ready for the crypto: `pkt` is its protected length, MKI written.
struct Job<'a> {
    pkt: &'a mut [u8],
    plan: Plan,
}

impl<'a> Job<'a> {
    /// Writes the MKI after the packet in `buf` and makes the job.
    fn new(buf: &'a mut [u8], plan: Plan, mki: &[u8]) -> Self {
        let pkt = &mut buf[..plan.total];
        pkt[plan.end..plan.end + mki.len()].copy_from_slice(mki);
        Job { pkt, plan }
    }

    /// A placeholder filling the unused slots of a group's array; never sealed.
    fn blank() -> Job<'static> {
        Job {
            pkt: &mut [],
            plan: Plan::default(),
        }
    }
}

impl SrtpSender {
    /// A sender with no key yet.
    ///
    /// # Panics
    /// If the policy is not valid ([`SrtpPolicy::validate`]); see [`try_new`](Self::try_new).
    pub fn new(policy: SrtpPolicy) -> Self {
        match Self::try_new(policy) {
            Ok(s) => s,
            Err(e) => panic!("invalid SRTP policy: {e}"),
        }
    }

    /// A sender with no key yet, or the reason the policy is refused.
    pub fn try_new(policy: SrtpPolicy) -> Result<Self, super::PolicyError> {
        policy.validate()?;
        Ok(Self::unchecked(policy))
    }

    fn unchecked(policy: SrtpPolicy) -> Self {
        Self {
            policy,
            key: None,
            streams: super::SsrcMap::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &SrtpPolicy {
        &self.policy
    }

    /// Switches to a new master key (MTK and salt) named by `mki`, from the next packet on.
    /// Session keys are derived here, once. Indexes continue per SSRC across the switch.
    ///
    /// # Panics
    /// If `mki` is not `policy.mki_len` bytes long.
    pub fn set_key(&mut self, mki: &[u8], mtk: &Mtk, salt: &MtkSalt) {
        assert_eq!(
            mki.len(),
            self.policy.mki_len,
            "MKI length differs from the policy's"
        );
        let m = mki.to_vec();
        self.key = Some(SendKey {
            mki: m.into(),
            keys: MasterKeys::derive(mtk, salt),
            srtp_packets: 0,
            srtcp_packets: 0,
        });
    }

    /// The MKI of the current key.
    pub fn mki(&self) -> Option<&[u8]> {
        self.key.as_ref().map(|k| &k.mki[..])
    }

    /// Raises the last SRTP index sent on `ssrc`, e.g. after a restart from persisted state
    /// under the same MTK; the next packet must have a higher index. It never lowers the index
    /// (that could reuse a (key, index) pair). A restart without persisted indexes needs a new
    /// MTK.
    pub fn resume_stream(&mut self, ssrc: u32, last_index: u64) {
        let s = self.streams.entry(ssrc).or_default();
        let last = last_index.min(SRTP_MAX_PACKETS - 1);
        s.last_index = Some(s.last_index.map_or(last, |l| l.max(last)));
    }

    /// Raises the last SRTCP index sent on `ssrc` (see [`resume_stream`](Self::resume_stream)).
    pub fn resume_rtcp(&mut self, ssrc: u32, last_srtcp_index: u32) {
        let s = self.streams.entry(ssrc).or_default();
        s.srtcp_index = s.srtcp_index.max(last_srtcp_index.min(0x7fff_ffff));
    }

    /// The last SRTCP index sent on `ssrc`, to persist with [`last_index`](Self::last_index).
    pub fn last_srtcp_index(&self, ssrc: u32) -> Option<u32> {
        self.streams
            .get(&ssrc)
            .map(|s| s.srtcp_index)
            .filter(|i| *i > 0)
    }

    /// The last SRTP index sent on `ssrc`.
    pub fn last_index(&self, ssrc: u32) -> Option<u64> {
        self.streams.get(&ssrc).and_then(|s| s.last_index)
    }

    /// Protected length of an RTP packet of `len` bytes with sequence number `seq`.
    pub fn protected_len(&self, len: usize, seq: u16) -> usize {
        len + self.policy.mki_len + self.policy.srtp_auth.tag_len(seq)
    }

    /// Largest growth of a packet when protected (MKI and longest tag): reserve this much.
    pub fn max_overhead(&self) -> usize {
        self.policy.mki_len + self.policy.srtp_auth.max_tag_len()
    }

    /// [`assign`] with this sender's policy, key and streams.
    fn assign(&mut self, packet: &[u8], room: usize) -> Result<Plan, ProtectError> {
        let packets = self.key.as_mut().map(|k| &mut k.srtp_packets);
        assign(&self.policy, packets, &mut self.streams, packet, room)
    }

    /// Protects the RTP packet in `buf[..len]` in place; `buf` must have room for the MKI and
    /// tag after it. Returns the protected length.
    pub fn protect_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, ProtectError> {
        let packet = buf
            .get(..len)
            .ok_or(ProtectError::Malformed("length beyond buffer"))?;
        let plan = self.assign(packet, buf.len())?;
        let key = self.key.as_ref().ok_or(ProtectError::NoKey)?;
        let job = Job::new(buf, plan, &key.mki);
        seal_group(&self.policy, &key.keys, &mut [job]);
        Ok(plan.total)
    }

    /// Protects an RTP packet held in a `BytesMut`, growing it by the MKI and tag.
    pub fn protect(&mut self, pkt: &mut BytesMut) -> Result<(), ProtectError> {
        let len = pkt.len();
        pkt.resize(len + self.max_overhead(), 0);
        let r = self.protect_in_place(pkt, len);
        settle(pkt, len, r)
    }

    /// Protects a batch: header checks and indexes in input order on the calling thread, 64
    /// packets at a time, each run's crypto (with growing its packets by MKI and tag) handed to
    /// rayon's pool as soon as its indexes are known, while the next run's are assigned. Result
    /// `i` belongs to packet `i`; a refused packet is left as it was. Reserve
    /// [`max_overhead`](Self::max_overhead) bytes of capacity per packet to avoid reallocation.
    pub fn protect_batch(&mut self, pkts: &mut [BytesMut]) -> Vec<Result<(), ProtectError>> {
        let overhead = self.max_overhead();
        let mut results = Vec::with_capacity(pkts.len());
        let Self {
            policy,
            key,
            streams,
        } = self;
        // The key's packet count for the sequential phase, its session keys and MKI for the
        // sealing (without a key every packet is refused, so nothing is sealed).
        let (mut key_packets, sealing) = match key.as_mut() {
            Some(k) => (Some(&mut k.srtp_packets), Some((&k.keys, &k.mki[..]))),
            None => (None, None),
        };
        let policy = &*policy;
        // Indexes are assigned in order, PIPELINE packets at a time; each run is sealed on the
        // pool as soon as its indexes are known (refused packets stay out: they are left as they
        // were), while the next run's are assigned.
        crate::batch::pipelined(
            pkts,
            PIPELINE,
            |run| {
                let mut work: Vec<(&mut BytesMut, Plan)> = Vec::with_capacity(run.len());
                for p in run {
                    let room = p.len() + overhead;
                    match assign(policy, key_packets.as_deref_mut(), streams, p, room) {
                        Ok(plan) => {
                            results.push(Ok(()));
                            work.push((p, plan));
                        }
                        Err(e) => results.push(Err(e)),
                    }
                }
                work
            },
            |mut work| {
                if let Some((keys, mki)) = sealing {
                    crate::batch::for_each_chunk(&mut work, lanes(), |group| {
                        seal_packets(policy, keys, mki, group);
                    });
                }
            },
        );
        results
    }

    /// Protects the RTCP packet in `buf[..len]` in place (RFC 3711 §3.4): encrypts from byte 8,
    /// appends E ‖ SRTCP index, the MKI and the HMAC-SHA-1 tag. Returns the protected length.
    pub fn protect_rtcp_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, ProtectError> {
        let ssrc = rtcp_ssrc(
            buf.get(..len)
                .ok_or(ProtectError::Malformed("length beyond buffer"))?,
        )?;
        let key = self.key.as_mut().ok_or(ProtectError::NoKey)?;
        let mki_len = key.mki.len();
        let total = len + 4 + mki_len + self.policy.srtcp_tag_len;
        if buf.len() < total {
            return Err(ProtectError::BufferTooSmall { needed: total });
        }
        let stream = self.streams.entry(ssrc).or_default();
        let index = stream.srtcp_index + 1;
        if u64::from(index) >= SRTCP_MAX_PACKETS || key.srtcp_packets >= SRTCP_MAX_PACKETS {
            return Err(ProtectError::KeyExhausted);
        }
        stream.srtcp_index = index;
        key.srtcp_packets += 1;
        let keys = &key.keys.srtcp;
        if self.policy.srtcp_encrypt {
            keys.crypt(ssrc, u64::from(index), &mut buf[8..len]);
        }
        //= RFC 3711 §3.4
        //# E-flag (1 bit) || SRTCP index (31 bits)
        let e_index = (u32::from(self.policy.srtcp_encrypt) << 31) | index;
        buf[len..len + 4].copy_from_slice(&e_index.to_be_bytes());
        let mac = keys.mac(&buf[..len + 4], &[]);
        buf[len + 4..len + 4 + mki_len].copy_from_slice(&key.mki);
        let tag_at = len + 4 + mki_len;
        buf[tag_at..total].copy_from_slice(&mac[..self.policy.srtcp_tag_len]);
        Ok(total)
    }
}

/// Sequential phase: checks the packet's header and the room in `buf`, assigns its index and
/// counts it against the key limit (`key_packets`, the key's packet count; `None`: no key).
/// `room` is the buffer length the packet will have (the batch path grows its buffers later, in
/// the parallel phase). A function of the sender's parts rather than a method, so that the batch
/// path can assign indexes while other threads seal with the key's session keys.
fn assign(
    policy: &SrtpPolicy,
    key_packets: Option<&mut u64>,
    streams: &mut super::SsrcMap<SendStream>,
    packet: &[u8],
    room: usize,
) -> Result<Plan, ProtectError> {
    let hdr = RtpHeader::parse(packet)?;
    let key_packets = key_packets.ok_or(ProtectError::NoKey)?;
    if *key_packets >= SRTP_MAX_PACKETS {
        return Err(ProtectError::KeyExhausted);
    }
    let len = packet.len();
    let total = len + policy.mki_len + policy.srtp_auth.tag_len(hdr.seq);
    if room < total {
        return Err(ProtectError::BufferTooSmall { needed: total });
    }
    let stream = streams.entry(hdr.ssrc).or_default();
    let index = match stream.last_index {
        None => u64::from(hdr.seq),
        Some(last) => {
            let index = match estimate_index(roc_of(last), seq_of(last), hdr.seq) {
                Some(index) => index,
                None if roc_of(last) == u32::MAX => return Err(ProtectError::KeyExhausted),
                // Before index 0: an old packet, or a sequence number jump the caller
                // must renumber.
                None => {
                    return Err(ProtectError::IndexNotIncreasing {
                        ssrc: hdr.ssrc,
                        index: u64::from(hdr.seq),
                        last,
                    });
                }
            };
            if index <= last {
                return Err(ProtectError::IndexNotIncreasing {
                    ssrc: hdr.ssrc,
                    index,
                    last,
                });
            }
            index
        }
    };
    if index >= SRTP_MAX_PACKETS {
        return Err(ProtectError::KeyExhausted);
    }
    stream.last_index = Some(index);
    *key_packets += 1;
    Ok(Plan {
        hdr_len: hdr.len,
        end: len,
        total,
        ssrc: hdr.ssrc,
        seq: hdr.seq,
        index,
    })
}

/// Cuts a packet grown by the MKI and tag room to its protected length, or back to its original
/// length `len` when it was refused (left as it was).
fn settle(
    pkt: &mut BytesMut,
    len: usize,
    r: Result<usize, ProtectError>,
) -> Result<(), ProtectError> {
    pkt.truncate(*r.as_ref().unwrap_or(&len));
    r.map(|_| ())
}

/// Grows each packet of a group to its protected length (MKI and tag) and seals them together.
fn seal_packets(
    policy: &SrtpPolicy,
    keys: &MasterKeys,
    mki: &[u8],
    group: &mut [(&mut BytesMut, Plan)],
) {
    debug_assert!(
        group.len() <= MAX_LANES,
        "groups come from chunks of lanes()"
    );
    let n = group.len();
    let mut jobs: [Job<'_>; MAX_LANES] = core::array::from_fn(|_| Job::blank());
    for (job, (pkt, plan)) in jobs.iter_mut().zip(group.iter_mut()) {
        pkt.resize(plan.total, 0);
        *job = Job::new(pkt, *plan, mki);
    }
    seal_group(policy, keys, &mut jobs[..n]);
}

/// The crypto of up to [`lanes()`] prepared packets (one, on the single-packet path): encryption,
/// then their MACs computed together (multi-lane HMAC-SHA-1), then the tags.
fn seal_group(policy: &SrtpPolicy, keys: &MasterKeys, jobs: &mut [Job<'_>]) {
    debug_assert!(
        jobs.len() <= MAX_LANES,
        "groups come from chunks of lanes()"
    );
    let keys = &keys.srtp;
    if policy.srtp_encrypt {
        for job in jobs.iter_mut() {
            let p = &job.plan;
            keys.crypt(p.ssrc, p.index, &mut job.pkt[p.hdr_len..p.end]);
        }
    }
    let mut rocs = [[0u8; 4]; MAX_LANES];
    for (r, job) in rocs.iter_mut().zip(jobs.iter()) {
        *r = roc_of(job.plan.index).to_be_bytes();
    }
    let mut macs = [[0u8; 20]; MAX_LANES];
    let mut slot = [usize::MAX; MAX_LANES];
    {
        let blank = MacInput {
            key: &keys.lanes,
            data: &[],
            trailer: &[],
        };
        let mut inputs = [blank; MAX_LANES];
        let mut n = 0;
        for (i, job) in jobs.iter().enumerate() {
            if policy.srtp_auth.layout(job.plan.seq).has_mac() {
                inputs[n] = MacInput {
                    key: &keys.lanes,
                    data: &job.pkt[..job.plan.end],
                    trailer: &rocs[i],
                };
                slot[i] = n;
                n += 1;
            }
        }
        hmac_sha1_lanes(&inputs[..n], &mut macs[..n]);
    }
    for (i, job) in jobs.iter_mut().enumerate() {
        let layout = policy.srtp_auth.layout(job.plan.seq);
        let mac = macs.get(slot[i]).copied().unwrap_or([0; 20]);
        layout.write(
            &mut job.pkt[job.plan.end + policy.mki_len..],
            &rocs[i],
            &mac,
        );
    }
}
