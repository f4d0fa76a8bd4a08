//! One service as a UE sees it: MTK messages opened with the MSK(s), SRTP packets decrypted with
//! the MTK their MKI names, and every datagram counted under exactly one outcome. No sockets or
//! clock: datagrams come in with their arrival time.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use bytes::BytesMut;
use mbms_core::keyfile::MskFile;
use mbms_core::mbms::{MessageIds, MtkOpener, ReplayCounter, mki};
use mbms_core::srtp::{SrtpPolicy, SrtpReceiver, UnprotectError};
use mbms_core::{MbmsError, MskId};

/// How many MTKs of a service stay usable at once: the current one and a few before it, for
/// packets still in flight after a switch.
pub const KEPT_MTKS: usize = 4;

/// How long an SRTP packet under an MKI not (yet) known is held, waiting for its MTK message:
/// a new MTK's message leaves the sender just before the first packet under it, but the two
/// travel to different ports and may be read in either order.
pub const HOLD: Duration = Duration::from_millis(50);

/// At most this many packets are held per service; beyond, the oldest is counted and dropped.
pub const HOLD_MAX: usize = 256;

/// Where a service is on the bearer, and its keys.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Name in the report.
    pub name: String,
    /// Multicast group.
    pub group: IpAddr,
    /// UDP port of the SRTP packets.
    pub port: u16,
    /// UDP port of the MTK messages.
    pub mikey_port: u16,
    /// The MSKs (one key file each; several across an MSK change).
    pub msks: Vec<MskFile>,
    /// RFC 4771 RCC mode 2 with this ROC transmission rate, as the sender's `--rcc`.
    pub rcc: Option<u16>,
}

/// The counters of one service: the report.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Counters {
    /// Service name.
    pub name: String,
    /// SRTP packets decrypted and authenticated.
    pub packets_ok: u64,
    /// Their RTP bytes.
    pub bytes_ok: u64,
    /// SRTP packets whose tag did not verify.
    pub auth_failed: u64,
    /// SRTP packets refused as replays (index seen before or too old).
    pub replayed: u64,
    /// SRTP packets under an MKI no MTK message has given (yet).
    pub unknown_mki: u64,
    /// SRTP packets that came before any MTK of the service was known (a late joiner's wait).
    pub waiting_for_key: u64,
    /// SRTP packets whose ROC could not be known yet (RFC 4771 receivers before the first
    /// ROC-carrying packet): a late joiner's wait, like `waiting_for_key`.
    pub roc_not_synchronized: u64,
    /// Datagrams that were not SRTP packets at all, by reason.
    pub malformed: BTreeMap<String, u64>,
    /// MTK messages that gave a new MTK.
    pub mtk_accepted: u64,
    /// MTK messages that repeated a known MTK (late-joiner repeats).
    pub mtk_repeated: u64,
    /// MTK messages refused, by reason.
    pub mtk_rejected: BTreeMap<String, u64>,
    /// MTK IDs keyed, in order.
    pub mtk_ids: Vec<u16>,
    /// Time from the service's first datagram to its first decrypted packet, milliseconds.
    pub first_packet_ms: Option<f64>,
}

impl Counters {
    /// Whether anything went wrong (for `--strict`): any failure counter above zero, or no
    /// packet decrypted at all. Waiting for the first key or the first ROC is not a failure.
    pub fn failed(&self) -> bool {
        self.auth_failed + self.replayed + self.unknown_mki > 0
            || !self.malformed.is_empty()
            || !self.mtk_rejected.is_empty()
            || self.packets_ok == 0
    }
}

fn bump(map: &mut BTreeMap<String, u64>, reason: &str) {
    *map.entry(reason.to_owned()).or_default() += 1;
}

/// A short name of an MTK message refusal, for the report.
pub fn mtk_reason(e: &MbmsError) -> &'static str {
    match e {
        MbmsError::MacMismatch => "mac_mismatch",
        MbmsError::Replayed { .. } => "replayed",
        MbmsError::MtkIdOutsideInterval { .. } => "mtk_id_outside_interval",
        MbmsError::Decode(_) => "undecodable",
        MbmsError::KeyIdMismatch => "key_id_mismatch",
        MbmsError::BadKeyData(_) => "bad_key_data",
        MbmsError::MissingPayload(_) => "missing_payload",
        MbmsError::KemacNotLast => "kemac_not_last",
        MbmsError::NoRand => "no_rand",
        MbmsError::Unsupported(_) => "unsupported",
        _ => "other",
    }
}

/// What became of one SRTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decrypted: the RTP packet is the first `len` bytes.
    Ok(usize),
    /// Counted under a failure.
    Refused,
    /// Its MKI names no MTK known yet: held (a copy) for up to [`HOLD`], and decrypted by the
    /// [`on_mikey`](ServiceRx::on_mikey) that brings its MTK, or counted when it expires.
    Held,
}

/// A packet waiting for its MTK.
struct HeldPacket {
    at: Duration,
    /// Whether the service knew some MTK when the packet came (`unknown_mki` rather than
    /// `waiting_for_key` if it expires).
    keyed: bool,
    pkt: BytesMut,
}

/// One service's receiving state.
pub struct ServiceRx {
    spec: ServiceSpec,
    openers: Vec<(MskId, MtkOpener)>,
    srtp: SrtpReceiver,
    keyed: VecDeque<[u8; mbms_core::mbms::MKI_LEN]>,
    held: VecDeque<HeldPacket>,
    first_seen: Option<Duration>,
    /// The counters.
    pub counters: Counters,
}

impl core::fmt::Debug for ServiceRx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServiceRx")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl ServiceRx {
    /// A receiver for `spec`; the SRTP policy is the default one of MSKs from key files
    /// (docs/profile.md), with RCC mode 2 when `spec.rcc` says so.
    pub fn new(spec: ServiceSpec) -> Result<Self, String> {
        let policy = SrtpPolicy::without_sp(spec.rcc).map_err(|e| format!("SRTP policy: {e}"))?;
        let srtp = SrtpReceiver::try_new(policy).map_err(|e| format!("SRTP policy: {e}"))?;
        let openers = spec
            .msks
            .iter()
            .map(|m| (m.msk_id, MtkOpener::new(m.into(), ReplayCounter::default())))
            .collect();
        let counters = Counters {
            name: spec.name.clone(),
            ..Counters::default()
        };
        Ok(Self {
            spec,
            openers,
            srtp,
            keyed: VecDeque::new(),
            held: VecDeque::new(),
            first_seen: None,
            counters,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &ServiceSpec {
        &self.spec
    }

    fn seen(&mut self, now: Duration) {
        self.first_seen.get_or_insert(now);
    }

    /// Whether an MTK message belongs to one of this service's MSKs (by the MSK ID of its Key
    /// ID extension): services that share a MIKEY port each take their own messages.
    pub fn owns(&self, bytes: &[u8]) -> bool {
        MessageIds::peek(bytes)
            .ok()
            .and_then(|ids| ids.msk_id)
            .is_some_and(|id| self.openers.iter().any(|(m, _)| *m == id))
    }

    /// An MTK message (a datagram to the MIKEY port) arriving at `now`. Returns the held packets
    /// its MTK decrypted, with their arrival times, in arrival order.
    pub fn on_mikey(&mut self, now: Duration, bytes: &[u8]) -> Vec<(Duration, BytesMut)> {
        self.seen(now);
        self.expire(now);
        let Some(name) = self.open_mikey(bytes) else {
            return Vec::new();
        };
        // Packets held for this MTK get their turn now, in the order they came.
        let (mine, others): (Vec<HeldPacket>, Vec<HeldPacket>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| self.srtp.policy().mki_of(&h.pkt) == Some(&name[..]));
        self.held = others.into();
        let mut out = Vec::new();
        for mut h in mine {
            let r = self.srtp.unprotect(&mut h.pkt);
            if let Outcome::Ok(len) = self.settle(h.at, r, h.keyed) {
                h.pkt.truncate(len);
                out.push((h.at, h.pkt));
            }
        }
        out
    }

    /// Opens an MTK message and keys SRTP with a new MTK; the MKI of that new MTK.
    fn open_mikey(&mut self, bytes: &[u8]) -> Option<[u8; mbms_core::mbms::MKI_LEN]> {
        let ids = match MessageIds::peek(bytes) {
            Ok(ids) => ids,
            Err(e) => {
                bump(&mut self.counters.mtk_rejected, mtk_reason(&e));
                return None;
            }
        };
        let Some(opener) = self
            .openers
            .iter_mut()
            .find(|(id, _)| ids.msk_id == Some(*id))
            .map(|(_, o)| o)
        else {
            bump(&mut self.counters.mtk_rejected, "unknown_msk");
            return None;
        };
        let opened = match opener.open(bytes) {
            Ok(o) => o,
            Err(e) => {
                bump(&mut self.counters.mtk_rejected, mtk_reason(&e));
                return None;
            }
        };
        let Some(salt) = opened.salt.as_ref() else {
            bump(&mut self.counters.mtk_rejected, "no_salt");
            return None;
        };
        let msk_id = opener.key().msk_id;
        let name = mki(msk_id, opened.mtk_id);
        if self.keyed.contains(&name) {
            self.counters.mtk_repeated += 1;
            return None;
        }
        self.srtp.add_key(&name, &opened.mtk, salt);
        self.keyed.push_back(name);
        if self.keyed.len() > KEPT_MTKS
            && let Some(old) = self.keyed.pop_front()
        {
            self.srtp.remove_key(&old);
        }
        self.counters.mtk_accepted += 1;
        self.counters.mtk_ids.push(opened.mtk_id.0);
        Some(name)
    }

    /// An SRTP packet arriving at `now`, decrypted in place.
    pub fn on_media(&mut self, now: Duration, pkt: &mut [u8]) -> Outcome {
        self.seen(now);
        self.expire(now);
        let r = self.srtp.unprotect(pkt);
        if matches!(r, Err(UnprotectError::UnknownMki)) {
            return self.hold(now, BytesMut::from(&pkt[..]));
        }
        self.settle(now, r, !self.keyed.is_empty())
    }

    /// A run of SRTP packets, packet `i` arriving at `times[i]` (the last time for any packet
    /// without one), decrypted in place across the rayon pool; outcome `i` belongs to packet
    /// `i` (each accepted packet is cut to its RTP, each [`Outcome::Held`] one taken).
    pub fn on_media_batch(&mut self, times: &[Duration], pkts: &mut [BytesMut]) -> Vec<Outcome> {
        let last = times.last().copied().unwrap_or_default();
        self.seen(times.first().copied().unwrap_or(last));
        self.expire(times.first().copied().unwrap_or(last));
        let results = self.srtp.unprotect_batch(pkts);
        let keyed = !self.keyed.is_empty();
        results
            .into_iter()
            .zip(pkts.iter_mut())
            .enumerate()
            .map(|(i, (r, p))| {
                let at = times.get(i).copied().unwrap_or(last);
                match r {
                    // The hold takes the packet itself (the caller keeps an empty buffer).
                    Err(UnprotectError::UnknownMki) => self.hold(at, std::mem::take(p)),
                    r => self.settle(at, r.map(|()| p.len()), keyed),
                }
            })
            .collect()
    }

    /// Counts every packet still held (the end of a run).
    pub fn finish(&mut self) {
        self.expire(Duration::MAX);
    }

    fn hold(&mut self, at: Duration, pkt: BytesMut) -> Outcome {
        if self.held.len() >= HOLD_MAX
            && let Some(h) = self.held.pop_front()
        {
            self.count_unkeyed(h.keyed);
        }
        let keyed = !self.keyed.is_empty();
        self.held.push_back(HeldPacket { at, keyed, pkt });
        Outcome::Held
    }

    /// Counts and drops the packets held longer than [`HOLD`] at `now`.
    fn expire(&mut self, now: Duration) {
        while let Some(h) = self.held.front() {
            if now.saturating_sub(h.at) <= HOLD {
                break;
            }
            let keyed = h.keyed;
            self.held.pop_front();
            self.count_unkeyed(keyed);
        }
    }

    fn count_unkeyed(&mut self, keyed: bool) {
        if keyed {
            self.counters.unknown_mki += 1;
        } else {
            self.counters.waiting_for_key += 1;
        }
    }

    fn settle(&mut self, at: Duration, r: Result<usize, UnprotectError>, keyed: bool) -> Outcome {
        let c = &mut self.counters;
        match r {
            Ok(len) => {
                c.packets_ok += 1;
                c.bytes_ok += len as u64;
                if c.first_packet_ms.is_none() {
                    let from = self.first_seen.unwrap_or(at);
                    c.first_packet_ms = Some(at.saturating_sub(from).as_secs_f64() * 1e3);
                }
                return Outcome::Ok(len);
            }
            Err(UnprotectError::AuthFailed) => c.auth_failed += 1,
            Err(UnprotectError::Replayed) => c.replayed += 1,
            Err(UnprotectError::UnknownMki) if !keyed => c.waiting_for_key += 1,
            Err(UnprotectError::UnknownMki) => c.unknown_mki += 1,
            Err(UnprotectError::RocNotSynchronized) => c.roc_not_synchronized += 1,
            Err(UnprotectError::TooShort) => bump(&mut c.malformed, "too_short"),
            Err(UnprotectError::TooManyStreams) => bump(&mut c.malformed, "too_many_streams"),
            Err(UnprotectError::Malformed(_)) => bump(&mut c.malformed, "not_srtp"),
            Err(_) => bump(&mut c.malformed, "other"),
        }
        Outcome::Refused
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use super::*;
    use mbms_core::mbms::{MtkParams, MtkSealer};
    use mbms_core::mikey::SecurityPolicy;
    use mbms_core::srtp::SrtpSender;
    use mbms_core::{CsbId, KeyDomainId, Msk, MtkId, MtkIdInterval, MtkSalt, Profile};

    fn msk(id: u32, key: u8) -> MskFile {
        MskFile {
            key_domain_id: KeyDomainId([0, 0xf1, 0x10]),
            msk_id: MskId(id),
            msk: Msk::from_bytes([key; 16]),
            validity: MtkIdInterval {
                from: MtkId(1),
                to: MtkId(100),
            },
            csb_id: CsbId(0),
            rand: None,
        }
    }

    /// A head-end in miniature: MTK messages under `m`, SRTP under the MTK.
    struct Head {
        m: MskFile,
        sealer: MtkSealer,
        srtp: SrtpSender,
        counter: u32,
        seq: u16,
    }

    impl Head {
        fn new(m: MskFile) -> Self {
            Self::with_policy(m, SecurityPolicy::srtp_default(1))
        }
        fn with_policy(m: MskFile, sp: SecurityPolicy) -> Self {
            let sealer = MtkSealer::new(
                m.key_domain_id,
                m.msk_id,
                &m.msk,
                m.csb_id,
                [7; 16],
                Profile::default(),
            );
            let policy = SrtpPolicy::from_mikey(&sp).unwrap();
            Self {
                m,
                sealer,
                srtp: SrtpSender::new(policy),
                counter: 0,
                seq: 100,
            }
        }
        /// The MTK message of MTK `id` (a new counter each call); keys the sender with it.
        fn mtk(&mut self, id: u16) -> Vec<u8> {
            let (mtk, salt) = (
                mbms_core::Mtk::from_bytes([id as u8; 16]),
                MtkSalt::from_bytes([9; 14]),
            );
            self.counter += 1;
            let mut out = Vec::new();
            let p = MtkParams {
                mtk_id: MtkId(id),
                mtk: &mtk,
                salt: Some(&salt),
            };
            self.sealer.seal(&p, self.counter, &mut out).unwrap();
            self.srtp
                .set_key(&mki(self.m.msk_id, MtkId(id)), &mtk, &salt);
            out
        }
        fn packet(&mut self) -> BytesMut {
            self.seq = self.seq.wrapping_add(1);
            let mut p = BytesMut::from(&[0x80, 96, 0, 0, 0, 0, 0, 1, 0xca, 0xfe, 0, 1][..]);
            p[2..4].copy_from_slice(&self.seq.to_be_bytes());
            p.extend_from_slice(b"payload bytes");
            self.srtp.protect(&mut p).unwrap();
            p
        }
    }

    fn rx(msks: Vec<MskFile>) -> ServiceRx {
        rx_rcc(msks, None)
    }

    fn rx_rcc(msks: Vec<MskFile>, rcc: Option<u16>) -> ServiceRx {
        ServiceRx::new(ServiceSpec {
            name: "t".into(),
            group: "239.1.1.1".parse().unwrap(),
            port: 5004,
            mikey_port: 2269,
            msks,
            rcc,
        })
        .unwrap()
    }

    #[test]
    fn every_datagram_lands_in_one_counter() {
        let mut h = Head::new(msk(1, 0x11));
        let mut r = rx(vec![msk(1, 0x11)]);
        let t = Duration::ZERO;
        let early = h.mtk(1);
        // A packet read before its MTK message (two sockets, either order) is held, then
        // decrypted when the message comes.
        let mut before = h.packet();
        assert_eq!(r.on_media(t, &mut before), Outcome::Held);
        let released = r.on_mikey(t, &early);
        assert_eq!(released.len(), 1);
        assert_eq!(r.counters.packets_ok, 1);
        assert_eq!(r.counters.waiting_for_key, 0);
        let mut ok = h.packet();
        let copy = ok.clone();
        assert!(matches!(r.on_media(t, &mut ok), Outcome::Ok(_)));
        let mut dup = copy.clone();
        assert_eq!(r.on_media(t, &mut dup), Outcome::Refused);
        assert_eq!(r.counters.replayed, 1);
        let mut flipped = h.packet();
        let n = flipped.len();
        flipped[n - 17] ^= 1; // the last payload byte, before MKI (6) and tag (10)
        assert_eq!(r.on_media(t, &mut flipped), Outcome::Refused);
        assert_eq!(r.counters.auth_failed, 1);
        // A repeat of MTK 1 (new counter) is counted as a repeat; the old message again is a
        // replay.
        let repeat = h.mtk(1);
        r.on_mikey(t, &repeat);
        r.on_mikey(t, &early);
        assert_eq!((r.counters.mtk_accepted, r.counters.mtk_repeated), (1, 1));
        assert_eq!(r.counters.mtk_rejected.get("replayed"), Some(&1));
        // An MTK the receiver never got: held, then unknown MKI once the hold expires, not an
        // auth failure.
        let _unseen = h.mtk(2);
        let mut p = h.packet();
        assert_eq!(r.on_media(t, &mut p), Outcome::Held);
        assert_eq!(r.counters.unknown_mki, 0);
        r.on_mikey(t + HOLD + Duration::from_millis(1), b"");
        assert_eq!(r.counters.unknown_mki, 1);
        r.on_mikey(t, b"not mikey at all");
        assert_eq!(r.counters.mtk_rejected.get("undecodable"), Some(&2));
        let mut short = BytesMut::from(&b"tiny"[..]);
        assert_eq!(r.on_media(t, &mut short), Outcome::Refused);
        assert_eq!(r.counters.malformed.values().sum::<u64>(), 1);
        assert_eq!(r.counters.packets_ok, 2);
        assert!(r.counters.failed());
    }

    #[test]
    fn msk_change_and_foreign_msk() {
        let (mut h1, mut h2) = (Head::new(msk(1, 0x11)), Head::new(msk(2, 0x22)));
        let mut r = rx(vec![msk(1, 0x11), msk(2, 0x22)]);
        let t = Duration::from_millis(5);
        r.on_mikey(t, &h1.mtk(1));
        let mut a = h1.packet();
        assert!(matches!(r.on_media(t, &mut a), Outcome::Ok(_)));
        r.on_mikey(t, &h2.mtk(1));
        h2.seq = h1.seq;
        let mut b = h2.packet();
        assert!(matches!(r.on_media(t, &mut b), Outcome::Ok(_)));
        assert_eq!(r.counters.mtk_ids, [1, 1]);
        let mut h3 = Head::new(msk(3, 0x33));
        r.on_mikey(t, &h3.mtk(1));
        assert_eq!(r.counters.mtk_rejected.get("unknown_msk"), Some(&1));
        // The same MSK ID under another key: the MAC does not verify.
        let mut forged = Head::new(msk(1, 0x99));
        forged.counter = 50;
        r.on_mikey(t, &forged.mtk(5));
        assert_eq!(r.counters.mtk_rejected.get("mac_mismatch"), Some(&1));
        assert_eq!(r.counters.packets_ok, 2);
        assert!(r.counters.failed(), "rejected MTK messages fail --strict");
    }

    #[test]
    fn batches_count_like_single_packets() {
        let mut h = Head::new(msk(1, 0x11));
        let msg = h.mtk(3);
        let pkts: Vec<BytesMut> = (0..9).map(|_| h.packet()).collect();
        let (mut one, mut many) = (rx(vec![msk(1, 0x11)]), rx(vec![msk(1, 0x11)]));
        one.on_mikey(Duration::ZERO, &msg);
        many.on_mikey(Duration::ZERO, &msg);
        let mut batch = pkts.clone();
        batch.push(pkts[2].clone()); // a duplicate
        batch[4][20] ^= 0x80; // a flipped bit
        for p in batch.clone() {
            let mut p = p;
            one.on_media(Duration::ZERO, &mut p);
        }
        let times = vec![Duration::ZERO; batch.len()];
        many.on_media_batch(&times, &mut batch);
        assert_eq!(one.counters, many.counters);
        assert_eq!(
            (
                many.counters.packets_ok,
                many.counters.replayed,
                many.counters.auth_failed
            ),
            (8, 1, 1)
        );
    }

    /// RFC 4771: a receiver joining after the sequence number wrapped learns the ROC from the
    /// next ROC-carrying packet and decrypts from there; without RCC it could not.
    #[test]
    fn late_joiner_after_a_wrap_syncs_its_roc_with_rcc() {
        let sp = SecurityPolicy::srtp_rcc_mode2(1, 4);
        let mut h = Head::with_policy(msk(1, 0x11), sp);
        h.seq = 0xfff0;
        let msg = h.mtk(1);
        for _ in 0..40 {
            h.packet(); // wraps: ROC 1 from here on
        }
        let mut r = rx_rcc(vec![msk(1, 0x11)], Some(4));
        r.on_mikey(Duration::ZERO, &msg);
        let mut outcomes = Vec::new();
        for _ in 0..12 {
            let mut p = h.packet();
            outcomes.push(r.on_media(Duration::ZERO, &mut p));
        }
        let first_ok = outcomes
            .iter()
            .position(|o| matches!(o, Outcome::Ok(_)))
            .unwrap();
        assert!(
            first_ok < 4,
            "synchronised within one ROC period: {outcomes:?}"
        );
        assert!(
            outcomes[first_ok..]
                .iter()
                .all(|o| matches!(o, Outcome::Ok(_)))
        );
        assert_eq!(r.counters.roc_not_synchronized, first_ok as u64);
        assert_eq!(r.counters.auth_failed, 0);

        // The same late join without RCC: the receiver guesses ROC 0 and every packet fails.
        let mut h = Head::new(msk(1, 0x11));
        h.seq = 0xfff0;
        let msg = h.mtk(1);
        for _ in 0..40 {
            h.packet();
        }
        let mut r = rx(vec![msk(1, 0x11)]);
        r.on_mikey(Duration::ZERO, &msg);
        for _ in 0..4 {
            let mut p = h.packet();
            assert_eq!(r.on_media(Duration::ZERO, &mut p), Outcome::Refused);
        }
        assert_eq!(r.counters.auth_failed, 4);
    }

    /// Packets of a batch that came before their MTK message are held like single ones: the
    /// message releases those younger than HOLD, the older ones count as waiting.
    #[test]
    fn batch_packets_are_held_until_their_key() {
        let mut h = Head::new(msk(1, 0x11));
        let msg = h.mtk(1);
        let mut batch: Vec<BytesMut> = (0..10).map(|_| h.packet()).collect();
        let times: Vec<Duration> = (0..10).map(|i| Duration::from_millis(i * 10)).collect();
        let mut r = rx(vec![msk(1, 0x11)]);
        let outcomes = r.on_media_batch(&times, &mut batch);
        assert!(outcomes.iter().all(|o| *o == Outcome::Held), "{outcomes:?}");
        // At 100 ms, packets from 50 ms on are younger than HOLD: 5 of them.
        let released = r.on_mikey(Duration::from_millis(100), &msg);
        assert_eq!(released.len(), 5);
        assert_eq!((r.counters.packets_ok, r.counters.waiting_for_key), (5, 5));
    }
}
