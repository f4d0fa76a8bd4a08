//! The BM-SC's part of the store (schema version 2): provisioned UEs with their MUK and MRK,
//! the MIKEY timestamp counter of each MUK, and the registrations with the UE's address.
//!
//! The counter of a MUK is the T payload of the MSK messages sealed under it (TS 33.246
//! §6.3.2.3, RFC 3830 §6.6): it must rise strictly from message to message, across restarts,
//! so it is reserved and committed before a message carrying it is sealed.

use std::net::IpAddr;

use mbms_core::{KeyDomainId, Mrk, MskId, Muk};
use rusqlite::OptionalExtension;

use crate::{KeyStore, StoreError, blob_array, int, msk_key};

/// Tables added by schema version 2.
pub(crate) const SCHEMA_V2: &str = "
CREATE TABLE ue (
    btid    TEXT    NOT NULL PRIMARY KEY CHECK (length(btid) BETWEEN 1 AND 255),
    muk     BLOB    NOT NULL CHECK (length(muk) = 32),
    mrk     BLOB    NOT NULL CHECK (length(mrk) = 32),
    expires INTEGER          CHECK (expires IS NULL OR expires >= 0),
    counter INTEGER NOT NULL DEFAULT 0 CHECK (counter BETWEEN 0 AND 4294967295)
) STRICT;

CREATE TABLE registration (
    btid    TEXT    NOT NULL REFERENCES ue (btid) ON DELETE CASCADE,
    service TEXT    NOT NULL CHECK (length(service) BETWEEN 1 AND 1024),
    ue_addr TEXT    NOT NULL,
    since   INTEGER NOT NULL CHECK (since >= 0),
    PRIMARY KEY (btid, service)
) STRICT, WITHOUT ROWID;

CREATE INDEX registration_by_service ON registration (service);
";

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

fn opt_u64(v: Option<u64>) -> Result<Option<i64>, StoreError> {
    v.map(|v| i64::try_from(v).map_err(|_| StoreError::Corrupt("ue.expires")))
        .transpose()
}

impl KeyStore {
    /// Provisions (or re-provisions, after a new bootstrap) the UE `btid` with its keys. Its
    /// MUK counter is kept: counters only rise. Committed before return.
    pub fn put_ue(&mut self, btid: &str, keys: &UeKeys) -> Result<(), StoreError> {
        let expires = opt_u64(keys.expires)?;
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO ue (btid, muk, mrk, expires) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (btid) DO UPDATE SET muk = excluded.muk, mrk = excluded.mrk, \
             expires = excluded.expires",
            (
                btid,
                &keys.muk.expose()[..],
                &keys.mrk.expose()[..],
                expires,
            ),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Provisions many UEs in one transaction (see [`Self::put_ue`]).
    pub fn put_ues<'a>(
        &mut self,
        ues: impl IntoIterator<Item = (&'a str, &'a UeKeys)>,
    ) -> Result<(), StoreError> {
        let tx = self.write()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ue (btid, muk, mrk, expires) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (btid) DO UPDATE SET muk = excluded.muk, mrk = excluded.mrk, \
                 expires = excluded.expires",
            )?;
            for (btid, keys) in ues {
                stmt.execute((
                    btid,
                    &keys.muk.expose()[..],
                    &keys.mrk.expose()[..],
                    opt_u64(keys.expires)?,
                ))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The keys of the UE `btid`, if it is provisioned.
    pub fn ue(&self, btid: &str) -> Result<Option<UeKeys>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT muk, mrk, expires FROM ue WHERE btid = ?1")?;
        let mut rows = stmt.query([btid])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let muk = Muk::from_bytes(blob_array::<32>(row, 0, "ue.muk")?);
        let mrk = Mrk::from_bytes(blob_array::<32>(row, 1, "ue.mrk")?);
        let expires = match row.get_ref(2)? {
            rusqlite::types::ValueRef::Null => None,
            _ => Some(int::<u64>(row, 2, "ue.expires")?),
        };
        Ok(Some(UeKeys { muk, mrk, expires }))
    }

    /// Removes the UE `btid` and its registrations. Returns whether it was provisioned.
    pub fn remove_ue(&mut self, btid: &str) -> Result<bool, StoreError> {
        let tx = self.write()?;
        let n = tx.execute("DELETE FROM ue WHERE btid = ?1", [btid])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Number of provisioned UEs.
    pub fn ue_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM ue", [], |r| r.get(0))?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("ue count"))
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
        let tx = self.write()?;
        let known: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM ue WHERE btid = ?1)")?
            .query_row([btid], |r| r.get(0))?;
        if !known {
            return Err(StoreError::UnknownUe);
        }
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO registration (btid, service, ue_addr, since) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (btid, service) \
                 DO UPDATE SET ue_addr = excluded.ue_addr, since = excluded.since",
            )?;
            let addr = ue_addr.to_string();
            for service in services {
                stmt.execute((btid, service, &addr, now))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes the registrations of the UE `btid` to `services`, in one transaction. Returns
    /// how many existed. Committed before return.
    pub fn deregister(&mut self, btid: &str, services: &[&str]) -> Result<usize, StoreError> {
        let tx = self.write()?;
        let mut n = 0;
        {
            let mut stmt =
                tx.prepare_cached("DELETE FROM registration WHERE btid = ?1 AND service = ?2")?;
            for service in services {
                n += stmt.execute((btid, service))?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// The address the UE `btid` registered to `service` from, if it is registered.
    pub fn registration(&self, btid: &str, service: &str) -> Result<Option<IpAddr>, StoreError> {
        let addr: Option<String> = self
            .conn
            .prepare_cached("SELECT ue_addr FROM registration WHERE btid = ?1 AND service = ?2")?
            .query_row((btid, service), |r| r.get(0))
            .optional()?;
        addr.map(|a| {
            a.parse()
                .map_err(|_| StoreError::Corrupt("registration.ue_addr"))
        })
        .transpose()
    }

    /// Every registration to `service`, by B-TID.
    pub fn registrations(&self, service: &str) -> Result<Vec<Registration>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT btid, ue_addr FROM registration WHERE service = ?1 ORDER BY btid",
        )?;
        let mut rows = stmt.query([service])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let btid: String = row.get(0)?;
            let addr: String = row.get(1)?;
            out.push(Registration {
                btid,
                service: service.to_owned(),
                ue_addr: addr
                    .parse()
                    .map_err(|_| StoreError::Corrupt("registration.ue_addr"))?,
            });
        }
        Ok(out)
    }

    /// The services the UE `btid` is registered to whose current MSK is (`kd`, `msk_id`).
    pub fn services_for_msk(
        &self,
        btid: &str,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Vec<String>, StoreError> {
        let (kd, id) = msk_key(kd, msk_id);
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.service FROM registration AS r JOIN service AS s ON s.name = r.service \
             WHERE r.btid = ?1 AND s.key_domain_id = ?2 AND s.msk_id = ?3 ORDER BY r.service",
        )?;
        let rows = stmt.query_map((btid, kd, id), |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Reserves the next MIKEY timestamp counter value of the MUK of each UE of `btids`, in
    /// one transaction: item `i` is UE `i`'s value, strictly above every value reserved for
    /// that MUK before (the first is 1), or `None` if the UE is not provisioned or its counter
    /// is exhausted (it needs a new bootstrap). A UE listed twice gets two values. Committed
    /// before return: a message may carry the value once this returns.
    pub fn reserve_muk_counters(&mut self, btids: &[&str]) -> Result<Vec<Option<u32>>, StoreError> {
        let tx = self.write()?;
        let mut out = Vec::with_capacity(btids.len());
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE ue SET counter = counter + 1 \
                 WHERE btid = ?1 AND counter < 4294967295 RETURNING counter",
            )?;
            for btid in btids {
                let v: Option<i64> = stmt.query_row([btid], |r| r.get(0)).optional()?;
                out.push(
                    v.map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("ue.counter")))
                        .transpose()?,
                );
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// The highest MIKEY counter value reserved for the MUK of `btid` (0 before the first).
    pub fn muk_counter(&self, btid: &str) -> Result<Option<u32>, StoreError> {
        let v: Option<i64> = self
            .conn
            .prepare_cached("SELECT counter FROM ue WHERE btid = ?1")?
            .query_row([btid], |r| r.get(0))
            .optional()?;
        v.map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("ue.counter")))
            .transpose()
    }

    /// The highest MSK ID stored in Key Group `group` of Key Domain `kd`, if any.
    pub fn highest_msk_id_in_group(
        &self,
        kd: KeyDomainId,
        group: u16,
    ) -> Result<Option<MskId>, StoreError> {
        let lo = i64::from(group) << 16;
        let v: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT max(msk_id) FROM msk WHERE key_domain_id = ?1 AND msk_id BETWEEN ?2 AND ?3",
            )?
            .query_row((&kd.0[..], lo, lo | 0xffff), |r| r.get(0))?;
        v.map(|v| {
            u32::try_from(v)
                .map(MskId)
                .map_err(|_| StoreError::Corrupt("msk.msk_id"))
        })
        .transpose()
    }

    /// The stored MSK (`kd`, `msk_id`), if any.
    pub fn msk(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Option<mbms_core::keyfile::MskFile>, StoreError> {
        crate::stored_msk(&self.conn, kd, msk_id)
    }
}
