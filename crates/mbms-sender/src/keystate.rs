//! The sender's keys: the MSK, MTK rotation and announcement, and the reservations in the key
//! store that make a restart safe.
//!
//! The rules, each backed by a committed store transaction before the thing it covers is used:
//! - an MTK ID comes from a block reserved above every MTK ID reserved before under the MSK, so
//!   no restart reuses one (a crash loses at most the rest of a block);
//! - the MIKEY timestamp counter of MTK messages (also their KEMAC IV) comes from reserved
//!   blocks the same way;
//! - the current MTK is stored as its sealed MTK message (the store keeps no MTK in clear), and
//!   a datagram with SRTP index `i` of SSRC `s` under it is handed to the socket only once
//!   indexes up to at least `i` of `s` are reserved. A restart re-opens the stored message with
//!   the MSK and resumes every SSRC above its reserved mark: no (key, index) pair is used twice.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use mbms_core::keyfile::MskFile;
use mbms_core::mbms::{MskKey, MtkOpener, MtkParams, MtkSealer, ReplayCounter, mki};
use mbms_core::profile::MtkRand;
use mbms_core::srtp::SrtpSender;
use mbms_core::{Mtk, MtkId, MtkSalt, Profile};
use mbms_keystore::KeyStore;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::SendError;

/// When MTKs change and how often the current one is repeated.
#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// New MTK after this much time under the current one.
    pub every: Option<Duration>,
    /// New MTK after this many SRTP packets under the current one.
    pub every_packets: Option<u64>,
    /// Hard limit of SRTP packets under one MTK (key-usage limit); a new MTK comes first.
    pub max_packets: u64,
    /// The current MTK message is sent again after this much time, for late joiners.
    pub repeat: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            every: Some(Duration::from_secs(30)),
            every_packets: None,
            max_packets: DEFAULT_MAX_PACKETS,
            repeat: Duration::from_secs(1),
        }
    }
}

/// Default key-usage limit of one MTK: 2^31 SRTP packets, far below SRTP's 2^48 (RFC 3711
/// §9.2) so that the limit is reached by rotation, never by the SRTP context refusing.
pub const DEFAULT_MAX_PACKETS: u64 = 1 << 31;

/// Reservation block sizes.
#[derive(Debug, Clone, Copy)]
pub struct Blocks {
    /// MTK IDs per reservation.
    pub mtk_ids: u16,
    /// MIKEY counters per reservation.
    pub counters: u32,
    /// SRTP indexes per SSRC per reservation; must stay below 2^15 (the jump a receiver can
    /// follow after a restart).
    pub indexes: u64,
}

impl Default for Blocks {
    fn default() -> Self {
        Self {
            mtk_ids: 8,
            counters: 256,
            // Below 2^15: after a restart each stream jumps ahead by at most one block, and a
            // receiver estimates the index (RFC 3711 App. A) right only for jumps under 2^15.
            indexes: 1 << 14,
        }
    }
}

/// What the sender must do before the next packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing.
    Nothing,
    /// Switch to a new MTK (announce it first).
    Rotate,
    /// Send the current MTK message again.
    Repeat,
}

/// The MTK in use, with what is known of it in this run.
struct Current {
    id: MtkId,
    /// The key and salt, for repeats of its message.
    mtk: Mtk,
    salt: MtkSalt,
    since: Duration,
    /// When its message was last sent (`None`: not yet in this run).
    announced: Option<Duration>,
    packets: u64,
    /// Reserved SRTP index high-water mark per SSRC under this MTK.
    reserved: HashMap<u32, u64>,
}

/// The MTKs of one service under one MSK.
pub struct KeyState {
    store: KeyStore,
    msk: MskFile,
    sealer: MtkSealer,
    rng: ChaCha20Rng,
    deterministic: Option<u64>,
    policy: RotationPolicy,
    blocks: Blocks,
    ids: Option<RangeInclusive<u16>>,
    counters: Option<RangeInclusive<u32>>,
    current: Option<Current>,
    /// MTK messages sealed (for the stats).
    pub messages: u64,
    /// MTK switches.
    pub rotations: u64,
}

impl core::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyState")
            .field("msk_id", &self.msk.msk_id)
            .field("current", &self.current.as_ref().map(|c| c.id))
            .finish_non_exhaustive()
    }
}

impl KeyState {
    /// Prepares the MTK state of `msk`. With `seed`, MTKs and the RAND come from it (the
    /// deterministic mode of tests); otherwise from the OS.
    pub fn new(
        store: KeyStore,
        msk: MskFile,
        profile: Profile,
        policy: RotationPolicy,
        blocks: Blocks,
        seed: Option<u64>,
    ) -> Result<Self, SendError> {
        let mut rng = match seed {
            Some(s) => ChaCha20Rng::seed_from_u64(s),
            None => ChaCha20Rng::try_from_os_rng().map_err(|e| SendError::Rng(e.to_string()))?,
        };
        // A fresh RAND each run (it travels in every MTK message): the KEMAC keys then differ
        // from any other run's, so even the same MSK used from two state directories (whose
        // counters both start at 1) never repeats a KEMAC key and IV. Only the profile that
        // leaves RAND out of MTK messages needs the MSK's own.
        let rand = match profile.mtk_rand {
            MtkRand::FromMsk => msk.rand.ok_or_else(|| {
                SendError::Config(
                    "MTK messages without RAND need the MSK's RAND (key file `rand`)".into(),
                )
            })?,
            MtkRand::InMessage => {
                let mut r = [0u8; 16];
                rng.fill_bytes(&mut r);
                r
            }
        };
        let sealer = MtkSealer::new(
            msk.key_domain_id,
            msk.msk_id,
            &msk.msk,
            msk.csb_id,
            rand,
            profile,
        );
        if let Some(hw) = store.counter_high_water(msk.key_domain_id, msk.msk_id)? {
            sealer.resume_counter(hw);
        }
        Ok(Self {
            store,
            msk,
            sealer,
            rng,
            deterministic: seed,
            policy,
            blocks,
            ids: None,
            counters: None,
            current: None,
            messages: 0,
            rotations: 0,
        })
    }

    /// The MSK.
    pub fn msk(&self) -> &MskFile {
        &self.msk
    }

    /// The current MTK ID.
    pub fn current_id(&self) -> Option<MtkId> {
        self.current.as_ref().map(|c| c.id)
    }

    /// Takes up the MTK stored by an earlier run, if it is one of this MSK: re-opens its
    /// message, keys `srtp` with it and resumes every SSRC above its reserved indexes.
    /// Returns the MTK ID taken up.
    pub fn resume(
        &mut self,
        srtp: &mut SrtpSender,
        now: Duration,
    ) -> Result<Option<MtkId>, SendError> {
        let (kd, msk_id) = (self.msk.key_domain_id, self.msk.msk_id);
        let Some((id, message)) = self.store.current_mtk(kd, msk_id)? else {
            return Ok(None);
        };
        let opened = MtkOpener::new(MskKey::from(&self.msk), ReplayCounter::default())
            .open(&message)
            .map_err(|e| SendError::StoredMtk(e.to_string()))?;
        if opened.mtk_id != id {
            return Err(SendError::StoredMtk(format!(
                "message is of MTK {:?}, stored as {id:?}",
                opened.mtk_id
            )));
        }
        let salt = opened
            .salt
            .ok_or_else(|| SendError::StoredMtk("message without an SRTP salt".into()))?;
        srtp.set_key(&mki(msk_id, id), &opened.mtk, &salt);
        let reserved: HashMap<u32, u64> = self
            .store
            .srtp_reservations(kd, msk_id, id)?
            .into_iter()
            .collect();
        for (&ssrc, &hw) in &reserved {
            srtp.resume_stream(ssrc, hw);
        }
        self.current = Some(Current {
            id,
            mtk: opened.mtk,
            salt,
            since: now,
            announced: None,
            packets: 0,
            reserved,
        });
        Ok(Some(id))
    }

    /// What is due before a packet at time `now`.
    pub fn due(&self, now: Duration) -> Due {
        let Some(c) = &self.current else {
            return Due::Rotate;
        };
        let p = &self.policy;
        if c.packets >= p.max_packets
            || p.every_packets.is_some_and(|n| c.packets >= n)
            || p.every.is_some_and(|t| now.saturating_sub(c.since) >= t)
        {
            return Due::Rotate;
        }
        match c.announced {
            Some(t) if now.saturating_sub(t) < p.repeat && t <= now => Due::Nothing,
            _ => Due::Repeat,
        }
    }

    /// Counts `n` SRTP packets under the current MTK.
    pub fn count_packets(&mut self, n: u64) {
        if let Some(c) = &mut self.current {
            c.packets += n;
        }
    }

    /// Room left under the current MTK before rotation by packet count.
    pub fn packets_left(&self) -> u64 {
        let Some(c) = &self.current else { return 0 };
        let limit = self
            .policy
            .every_packets
            .map_or(self.policy.max_packets, |n| n.min(self.policy.max_packets));
        limit.saturating_sub(c.packets)
    }

    fn next_mtk_id(&mut self) -> Result<MtkId, SendError> {
        if let Some(id) = self.ids.as_mut().and_then(Iterator::next) {
            return Ok(MtkId(id));
        }
        let mut r = self.store.reserve_mtk_ids(
            self.msk.key_domain_id,
            self.msk.msk_id,
            self.msk.validity,
            self.blocks.mtk_ids,
        )?;
        let id = r.next().ok_or(SendError::MtkIdsExhausted)?;
        self.ids = Some(r);
        Ok(MtkId(id))
    }

    fn next_counter(&mut self) -> Result<u32, SendError> {
        if let Some(c) = self.counters.as_mut().and_then(Iterator::next) {
            return Ok(c);
        }
        let mut r = self.store.reserve_counters(
            self.msk.key_domain_id,
            self.msk.msk_id,
            self.blocks.counters,
        )?;
        let c = r.next().ok_or(SendError::CountersExhausted)?;
        self.counters = Some(r);
        Ok(c)
    }

    fn fresh_key(&mut self, id: MtkId) -> (Mtk, MtkSalt) {
        let mut k = [0u8; 16];
        let mut s = [0u8; 14];
        match self.deterministic {
            // One stream per MTK ID: a restart in deterministic mode, which takes a new MTK
            // ID, never draws the same key again.
            Some(seed) => {
                let mut r = ChaCha20Rng::seed_from_u64(seed);
                r.set_stream((u64::from(self.msk.msk_id.0) << 16) | u64::from(id.0));
                r.fill_bytes(&mut k);
                r.fill_bytes(&mut s);
            }
            None => {
                self.rng.fill_bytes(&mut k);
                self.rng.fill_bytes(&mut s);
            }
        }
        let key = (Mtk::from_bytes(k), MtkSalt::from_bytes(s));
        zeroize::Zeroize::zeroize(&mut k);
        zeroize::Zeroize::zeroize(&mut s);
        key
    }

    fn seal(
        &mut self,
        id: MtkId,
        mtk: &Mtk,
        salt: &MtkSalt,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let counter = self.next_counter()?;
        self.sealer.seal(
            &MtkParams {
                mtk_id: id,
                mtk,
                salt: Some(salt),
            },
            counter,
            out,
        )?;
        self.messages += 1;
        Ok(())
    }

    /// Switches to a new MTK: reserves its ID, seals its MTK message into `out`, stores it
    /// (committed) and keys `srtp` with it from the next packet on.
    pub fn rotate(
        &mut self,
        srtp: &mut SrtpSender,
        now: Duration,
        out: &mut Vec<u8>,
    ) -> Result<MtkId, SendError> {
        let id = self.next_mtk_id()?;
        let (mtk, salt) = self.fresh_key(id);
        self.seal(id, &mtk, &salt, out)?;
        self.store
            .set_current_mtk(self.msk.key_domain_id, self.msk.msk_id, id, out)?;
        srtp.set_key(&mki(self.msk.msk_id, id), &mtk, &salt);
        self.current = Some(Current {
            id,
            mtk,
            salt,
            since: now,
            announced: Some(now),
            packets: 0,
            reserved: HashMap::new(),
        });
        self.rotations += 1;
        Ok(id)
    }

    /// A new MTK for download objects (TS 33.246 §6.6.3: Key data type TGK, no salt): reserves
    /// its ID and a counter (committed), seals its MTK message into `out`. The download session
    /// carries the message as an object; the MTK keys the DCF objects given to it.
    pub fn download_mtk(&mut self, out: &mut Vec<u8>) -> Result<(MtkId, Mtk), SendError> {
        let id = self.next_mtk_id()?;
        let (mtk, _salt) = self.fresh_key(id);
        let counter = self.next_counter()?;
        self.sealer.seal(
            &MtkParams {
                mtk_id: id,
                mtk: &mtk,
                salt: None,
            },
            counter,
            out,
        )?;
        self.messages += 1;
        self.rotations += 1;
        Ok((id, mtk))
    }

    /// Seals the current MTK again (a new counter) into `out`, for late joiners.
    pub fn repeat(&mut self, now: Duration, out: &mut Vec<u8>) -> Result<(), SendError> {
        let Some(mut c) = self.current.take() else {
            return Ok(());
        };
        let r = self.seal(c.id, &c.mtk, &c.salt, out);
        c.announced = Some(now);
        self.current = Some(c);
        r
    }

    /// Reserves (committed) SRTP indexes so that every index `srtp` has assigned to the SSRCs
    /// in `ssrcs` is covered: call before handing their packets to the socket.
    pub fn cover_indexes(&mut self, srtp: &SrtpSender, ssrcs: &[u32]) -> Result<(), SendError> {
        let Some(c) = &mut self.current else {
            return Ok(());
        };
        let needs = |ssrc: &u32| match srtp.last_index(*ssrc) {
            Some(last) => c.reserved.get(ssrc).is_none_or(|&hw| hw < last),
            None => false,
        };
        if !ssrcs.iter().any(needs) {
            return Ok(());
        }
        // Top up every stream of the batch at once: streams moving together then share one
        // commit (one fsync) per block instead of one each.
        let block = self.blocks.indexes;
        let want: Vec<(u32, u64)> = ssrcs
            .iter()
            .filter_map(|&s| {
                let hw = srtp.last_index(s)?.saturating_add(block);
                Some((s, hw.min(mbms_core::srtp::SRTP_MAX_PACKETS - 1)))
            })
            .collect();
        if want.is_empty() {
            return Ok(());
        }
        self.store
            .reserve_srtp_indexes(self.msk.key_domain_id, self.msk.msk_id, c.id, &want)?;
        c.reserved.extend(want);
        Ok(())
    }
}
