//! The BM-SC's part of the store (schema version 2): provisioned UEs with their MUK and MRK,
//! the MIKEY timestamp counter of each MUK, and the registrations with the UE's address.
//!
//! The counter of a MUK is the T payload of the MSK messages sealed under it (TS 33.246
//! §6.3.2.3, RFC 3830 §6.6): it must rise strictly from message to message, across restarts,
//! so it is reserved and committed before a message carrying it is sealed.

use std::net::IpAddr;

use mbms_core::{KeyDomainId, Mrk, MskId, Muk};

use crate::{Conn, KeyStore, StoreError, dispatch, dispatch_mut, pg, sqlite};

/// The keys of a provisioned UE (its B-TID is the key of the record). `Debug` shows no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UeKeys {
    /// MBMS User Key: the key of the MSK messages sent to this UE.
    pub muk: Muk,
    /// MBMS Request Key: the UE's HTTP Digest password.
    pub mrk: Mrk,
    /// When the B-TID and its keys expire (Unix seconds), if they do.
    pub expires: Option<u64>,
}

/// One registration of a UE to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The UE's B-TID.
    pub btid: String,
    /// The service ID.
    pub service: String,
    /// The UE's address: where MSK messages are pushed.
    pub ue_addr: IpAddr,
}

pub(crate) fn opt_u64(v: Option<u64>) -> Result<Option<i64>, StoreError> {
    v.map(|v| i64::try_from(v).map_err(|_| StoreError::Corrupt("ue.expires")))
        .transpose()
}

impl KeyStore {
    /// Provisions (or re-provisions, after a new bootstrap) the UE `btid` with its keys. Its
    /// MUK counter is kept: counters only rise. Committed before return.
    pub fn put_ue(&mut self, btid: &str, keys: &UeKeys) -> Result<(), StoreError> {
        let expires = opt_u64(keys.expires)?;
        dispatch_mut!(self, c =>
            sqlite::put_ue(c, btid, keys, expires),
            pg::put_ue(c, btid, keys, expires))
    }

    /// Provisions many UEs in one transaction (see [`Self::put_ue`]).
    pub fn put_ues<'a>(
        &mut self,
        ues: impl IntoIterator<Item = (&'a str, &'a UeKeys)>,
    ) -> Result<(), StoreError> {
        dispatch_mut!(self, c => sqlite::put_ues(c, ues), pg::put_ues(c, ues))
    }

    /// The keys of the UE `btid`, if it is provisioned.
    pub fn ue(&self, btid: &str) -> Result<Option<UeKeys>, StoreError> {
        dispatch!(self, c => sqlite::ue(c, btid), pg::ue(c, btid))
    }

    /// Removes the UE `btid` and its registrations. Returns whether it was provisioned.
    pub fn remove_ue(&mut self, btid: &str) -> Result<bool, StoreError> {
        dispatch_mut!(self, c => sqlite::remove_ue(c, btid), pg::remove_ue(c, btid))
    }

    /// Number of provisioned UEs.
    pub fn ue_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, c => sqlite::ue_count(c), pg::ue_count(c))
    }

    /// Registers the UE `btid` to every service of `services` from address `ue_addr` at
    /// `now` (Unix seconds), in one transaction; a registration that exists gets the new
    /// address. The UE must be provisioned ([`StoreError::UnknownUe`]). Committed before
    /// return.
    pub fn register(
        &mut self,
        btid: &str,
        services: &[&str],
        ue_addr: IpAddr,
        now: u64,
    ) -> Result<(), StoreError> {
        let now = i64::try_from(now).map_err(|_| StoreError::Corrupt("registration.since"))?;
        dispatch_mut!(self, c =>
            sqlite::register(c, btid, services, ue_addr, now),
            pg::register(c, btid, services, ue_addr, now))
    }

    /// Registers many (B-TID, service, address) items at `now` in one transaction (one commit
    /// for all: what a server answering many registrations at once, or a bulk import, needs).
    /// Item `i` of the result tells whether item `i` was stored: `false` when its UE is not
    /// provisioned. Later items win over earlier ones of the same (B-TID, service). Committed
    /// before return.
    pub fn register_many(
        &mut self,
        items: &[(&str, &str, IpAddr)],
        now: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let now = i64::try_from(now).map_err(|_| StoreError::Corrupt("registration.since"))?;
        dispatch_mut!(self, c =>
            sqlite::register_many(c, items, now),
            pg::register_many(c, items, now))
    }

    /// Removes the registrations of the UE `btid` to `services`, in one transaction. Returns
    /// how many existed. Committed before return.
    pub fn deregister(&mut self, btid: &str, services: &[&str]) -> Result<usize, StoreError> {
        dispatch_mut!(self, c =>
            sqlite::deregister(c, btid, services),
            pg::deregister(c, btid, services))
    }

    /// The address the UE `btid` registered to `service` from, if it is registered.
    pub fn registration(&self, btid: &str, service: &str) -> Result<Option<IpAddr>, StoreError> {
        dispatch!(self, c =>
            sqlite::registration(c, btid, service),
            pg::registration(c, btid, service))
    }

    /// Every registration to `service`, by B-TID (in byte order).
    pub fn registrations(&self, service: &str) -> Result<Vec<Registration>, StoreError> {
        dispatch!(self, c => sqlite::registrations(c, service), pg::registrations(c, service))
    }

    /// The services the UE `btid` is registered to whose current MSK is (`kd`, `msk_id`), in
    /// byte order.
    pub fn services_for_msk(
        &self,
        btid: &str,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, c =>
            sqlite::services_for_msk(c, btid, kd, msk_id),
            pg::services_for_msk(c, btid, kd, msk_id))
    }

    /// Reserves the next MIKEY timestamp counter value of the MUK of each UE of `btids`, in
    /// one transaction: item `i` is UE `i`'s value, strictly above every value reserved for
    /// that MUK before (the first is 1), or `None` if the UE is not provisioned or its counter
    /// is exhausted (it needs a new bootstrap). A UE listed twice gets two values. Committed
    /// before return: a message may carry the value once this returns.
    pub fn reserve_muk_counters(&mut self, btids: &[&str]) -> Result<Vec<Option<u32>>, StoreError> {
        dispatch_mut!(self, c =>
            sqlite::reserve_muk_counters(c, btids),
            pg::reserve_muk_counters(c, btids))
    }

    /// Like [`Self::reserve_muk_counters`], and returns each UE's MUK with its counter, read
    /// in the same statement: what sealing a batch of MSK messages needs, in one transaction.
    pub fn reserve_muk_counters_with_keys(
        &mut self,
        btids: &[&str],
    ) -> Result<Vec<Option<(u32, Muk)>>, StoreError> {
        dispatch_mut!(self, c =>
            sqlite::reserve_muk_counters_with_keys(c, btids),
            pg::reserve_muk_counters_with_keys(c, btids))
    }

    /// Like [`Self::reserve_muk_counters_with_keys`] for a push of one MSK to many UEs: the
    /// UEs of `btids` get one value, above the store-wide floor and above each of their own
    /// counters (a UE listed twice gets the next value for its second item, and so on), and
    /// the floor, below every MUK's next value, rises to the highest handed out. One row is
    /// written whatever the number of UEs. A UE whose own counter is more than
    /// [`crate::SHARED_COUNTER_SLACK`] above the floor continues its own sequence instead (its
    /// row is written), so that it cannot drag every UE's counter up. `None` for a UE not
    /// provisioned, whose counter is damaged or exhausted, or whose value would pass
    /// `u32::MAX`. Committed before return.
    pub fn reserve_shared_muk_counter_with_keys(
        &mut self,
        btids: &[&str],
    ) -> Result<Vec<Option<(u32, Muk)>>, StoreError> {
        dispatch_mut!(self, c =>
            sqlite::reserve_shared_muk_counter_with_keys(c, btids),
            pg::reserve_shared_muk_counter_with_keys(c, btids))
    }

    /// The highest MIKEY counter value reserved for the MUK of `btid` (0 before the first):
    /// the higher of its own counter and the floor raised by shared reservations.
    pub fn muk_counter(&self, btid: &str) -> Result<Option<u32>, StoreError> {
        dispatch!(self, c => sqlite::muk_counter(c, btid), pg::muk_counter(c, btid))
    }

    /// The highest MSK ID stored in Key Group `group` of Key Domain `kd`, if any.
    pub fn highest_msk_id_in_group(
        &self,
        kd: KeyDomainId,
        group: u16,
    ) -> Result<Option<MskId>, StoreError> {
        dispatch!(self, c =>
            sqlite::highest_msk_id_in_group(c, kd, group),
            pg::highest_msk_id_in_group(c, kd, group))
    }

    /// Retires the MSKs of `current`'s Key Group (Key Domain `kd`) below `current`: deletes
    /// their keys, except those still some service's current MSK, and returns the MSK IDs
    /// deleted, in ascending order. Their MTK ID, counter and SRTP index reservations stay, so
    /// that an ID retired here can never be reserved from its start again; MSK IDs above
    /// `current` (the next MSK) are not touched, so a new MSK still numbers above all.
    /// Committed before return.
    pub fn retire_msks_before(
        &mut self,
        kd: KeyDomainId,
        current: MskId,
    ) -> Result<Vec<MskId>, StoreError> {
        dispatch_mut!(self, c =>
            sqlite::retire_msks_before(c, kd, current),
            pg::retire_msks_before(c, kd, current))
    }

    /// The stored MSK (`kd`, `msk_id`), if any.
    pub fn msk(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Option<mbms_core::keyfile::MskFile>, StoreError> {
        dispatch!(self, c => sqlite::msk(c, kd, msk_id), pg::msk(c, kd, msk_id))
    }
}
