//! The SQLite backend: one file (WAL, `synchronous=FULL`), `STRICT` tables, write transactions
//! that take the database lock at `BEGIN IMMEDIATE`, the schema version in `PRAGMA
//! user_version`. Version-1 and version-2 files are upgraded in place.
//!
//! Each function here is the body of the [`KeyStore`](crate::KeyStore) method of the same
//! name; checks that do not touch the database (empty reservations, out-of-range arguments)
//! are done by the caller before.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mbms_core::keyfile::MskFile;
use mbms_core::srtp::SRTP_MAX_PACKETS;
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, MtkId, MtkIdInterval, Muk};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::bmsc::{Registration, UeKeys, opt_u64};
use crate::{SCHEMA_VERSION, StoreError, msk_key};

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema version 1. Every table is `STRICT` and range-checked, so a bad value cannot be
/// written through SQL by mistake; reads validate again (a file can still be damaged).
const SCHEMA_V1: &str = "
CREATE TABLE msk (
    key_domain_id BLOB    NOT NULL CHECK (length(key_domain_id) = 3),
    msk_id        INTEGER NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    msk           BLOB    NOT NULL CHECK (length(msk) = 16),
    mtk_id_from   INTEGER NOT NULL CHECK (mtk_id_from BETWEEN 0 AND 65535),
    mtk_id_to     INTEGER NOT NULL CHECK (mtk_id_to BETWEEN mtk_id_from AND 65535),
    csb_id        INTEGER NOT NULL CHECK (csb_id BETWEEN 0 AND 4294967295),
    rand          BLOB             CHECK (rand IS NULL OR length(rand) = 16),
    PRIMARY KEY (key_domain_id, msk_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE service (
    name          TEXT    NOT NULL PRIMARY KEY,
    key_domain_id BLOB    NOT NULL,
    msk_id        INTEGER NOT NULL,
    FOREIGN KEY (key_domain_id, msk_id) REFERENCES msk (key_domain_id, msk_id)
) STRICT;

CREATE TABLE mtk_id_block (
    key_domain_id BLOB    NOT NULL CHECK (length(key_domain_id) = 3),
    msk_id        INTEGER NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    first         INTEGER NOT NULL CHECK (first BETWEEN 0 AND 65535),
    last          INTEGER NOT NULL CHECK (last BETWEEN first AND 65535),
    PRIMARY KEY (key_domain_id, msk_id, first)
) STRICT, WITHOUT ROWID;

CREATE TABLE mikey_counter (
    key_domain_id BLOB    NOT NULL CHECK (length(key_domain_id) = 3),
    msk_id        INTEGER NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    high          INTEGER NOT NULL CHECK (high BETWEEN 1 AND 4294967295),
    PRIMARY KEY (key_domain_id, msk_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE current_mtk (
    key_domain_id BLOB    NOT NULL CHECK (length(key_domain_id) = 3),
    msk_id        INTEGER NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    mtk_id        INTEGER NOT NULL CHECK (mtk_id BETWEEN 0 AND 65535),
    message       BLOB    NOT NULL,
    PRIMARY KEY (key_domain_id, msk_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE srtp_index (
    key_domain_id BLOB    NOT NULL CHECK (length(key_domain_id) = 3),
    msk_id        INTEGER NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    mtk_id        INTEGER NOT NULL CHECK (mtk_id BETWEEN 0 AND 65535),
    ssrc          INTEGER NOT NULL CHECK (ssrc BETWEEN 0 AND 4294967295),
    high          INTEGER NOT NULL CHECK (high BETWEEN 0 AND 281474976710656),
    PRIMARY KEY (key_domain_id, msk_id, mtk_id, ssrc)
) STRICT, WITHOUT ROWID;
";

/// Tables added by schema version 2: the BM-SC's provisioned UEs and registrations.
const SCHEMA_V2: &str = "
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

/// Added by schema version 3: the floor of every MUK's timestamp counter. A push of one MSK
/// to many UEs reserves, per batch, a single value above the floor and the counters of the
/// batch's UEs, and raises the floor to it, instead of writing one row per UE; a UE's own next
/// value is above both its row's counter and the floor (see `plan_shared`). The registrations
/// of a service are listed from a covering index, in B-TID order, without a look-up in the
/// table per row (a push to all UEs lists them all).
const SCHEMA_V3: &str = "
DROP INDEX registration_by_service;
CREATE INDEX registration_by_service ON registration (service, btid, ue_addr);

CREATE TABLE muk_floor (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    high INTEGER NOT NULL CHECK (high BETWEEN 0 AND 4294967295)
) STRICT;

INSERT INTO muk_floor (id, high) VALUES (1, 0);
";

/// An INTEGER column converted to `T`, or [`StoreError::Corrupt`].
fn int<T: TryFrom<i64>>(row: &Row<'_>, idx: usize, what: &'static str) -> Result<T, StoreError> {
    match row.get_ref(idx)? {
        ValueRef::Integer(v) => T::try_from(v).map_err(|_| StoreError::Corrupt(what)),
        _ => Err(StoreError::Corrupt(what)),
    }
}

/// A BLOB column, or [`StoreError::Corrupt`].
fn blob<'r>(row: &'r Row<'_>, idx: usize, what: &'static str) -> Result<&'r [u8], StoreError> {
    match row.get_ref(idx)? {
        ValueRef::Blob(b) => Ok(b),
        _ => Err(StoreError::Corrupt(what)),
    }
}

/// A BLOB column of exactly `N` bytes, or [`StoreError::Corrupt`].
fn blob_array<const N: usize>(
    row: &Row<'_>,
    idx: usize,
    what: &'static str,
) -> Result<[u8; N], StoreError> {
    blob(row, idx, what)?
        .try_into()
        .map_err(|_| StoreError::Corrupt(what))
}

/// Columns of the `msk` table in the order [`msk_from_row`] reads them.
const MSK_COLUMNS: &str = "m.key_domain_id, m.msk_id, m.msk, m.mtk_id_from, m.mtk_id_to, \
                           m.csb_id, m.rand";

fn msk_from_row(row: &Row<'_>) -> Result<MskFile, StoreError> {
    let key_domain_id = KeyDomainId(blob_array::<3>(row, 0, "msk.key_domain_id")?);
    let msk_id = MskId(int::<u32>(row, 1, "msk.msk_id")?);
    let msk = Msk::from_slice(blob(row, 2, "msk.msk")?).ok_or(StoreError::Corrupt("msk.msk"))?;
    let from = MtkId(int::<u16>(row, 3, "msk.mtk_id_from")?);
    let to = MtkId(int::<u16>(row, 4, "msk.mtk_id_to")?);
    if from > to {
        return Err(StoreError::Corrupt("msk.mtk_id_to"));
    }
    let csb_id = CsbId(int::<u32>(row, 5, "msk.csb_id")?);
    let rand = match row.get_ref(6)? {
        ValueRef::Null => None,
        ValueRef::Blob(b) => Some(b.try_into().map_err(|_| StoreError::Corrupt("msk.rand"))?),
        _ => return Err(StoreError::Corrupt("msk.rand")),
    };
    Ok(MskFile {
        key_domain_id,
        msk_id,
        msk,
        validity: MtkIdInterval { from, to },
        csb_id,
        rand,
    })
}

/// Opens (creating if need be) the file at `path` and sets it up.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    set_up(conn, path.to_path_buf())
}

/// Opens a store in memory.
pub(crate) fn open_in_memory() -> Result<Connection, StoreError> {
    let path = PathBuf::from(":memory:");
    let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })?;
    set_up(conn, path)
}

fn set_up(mut conn: Connection, shown: PathBuf) -> Result<Connection, StoreError> {
    let classify = |source: rusqlite::Error| match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
            path: shown.clone(),
        },
        _ => StoreError::Open {
            path: shown.clone(),
            source,
        },
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    // Reads the header: the first statement to fail on a file that is not a database.
    // In memory the mode stays "memory"; on a file system without shared memory it may
    // stay "delete", which with synchronous=FULL is as durable, only slower.
    let _mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(classify)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(classify)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(classify)?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(classify)?;
    match version {
        0 => {
            let tables: i64 = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(classify)?;
            if tables != 0 {
                return Err(StoreError::ForeignDatabase { path: shown });
            }
            tx.execute_batch(SCHEMA_V1).map_err(classify)?;
            tx.execute_batch(SCHEMA_V2).map_err(classify)?;
            tx.execute_batch(SCHEMA_V3).map_err(classify)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(classify)?;
        }
        1 | 2 => {
            if version == 1 {
                tx.execute_batch(SCHEMA_V2).map_err(classify)?;
            }
            tx.execute_batch(SCHEMA_V3).map_err(classify)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(classify)?;
        }
        v if v == i64::from(SCHEMA_VERSION) => {}
        v if v > i64::from(SCHEMA_VERSION) => {
            return Err(StoreError::NewerSchema {
                path: shown,
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        _ => return Err(StoreError::ForeignDatabase { path: shown }),
    }
    tx.commit().map_err(classify)?;
    Ok(conn)
}

/// Begins a write transaction holding the database's write lock from the start, so that the
/// read-then-write of a reservation cannot interleave with another process's.
fn write(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// The stored MSK (kd, msk_id), if any.
pub(crate) fn msk(
    conn: &Connection,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<MskFile>, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MSK_COLUMNS} FROM msk AS m WHERE m.key_domain_id = ?1 AND m.msk_id = ?2"
    ))?;
    let mut rows = stmt.query((kd, id))?;
    rows.next()?.map(msk_from_row).transpose()
}

/// Whether `mtk_id` lies in a block reserved for the MSK.
fn is_reserved(
    conn: &Connection,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
) -> Result<bool, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM mtk_id_block \
         WHERE key_domain_id = ?1 AND msk_id = ?2 AND first <= ?3 AND last >= ?3)",
        )?
        .query_row((kd, id, mtk_id.0), |r| r.get::<_, bool>(0))?)
}

/// Stores `msk` and, with a service, makes it the service's current MSK.
pub(crate) fn put_msk(
    conn: &mut Connection,
    service: Option<&str>,
    msk: &MskFile,
) -> Result<(), StoreError> {
    let tx = write(conn)?;
    match self::msk(&tx, msk.key_domain_id, msk.msk_id)? {
        Some(old) if old != *msk => {
            return Err(StoreError::MskConflict {
                key_domain_id: msk.key_domain_id,
                msk_id: msk.msk_id,
            });
        }
        Some(_) => {}
        None => {
            let (kd, id) = msk_key(msk.key_domain_id, msk.msk_id);
            tx.execute(
                "INSERT INTO msk (key_domain_id, msk_id, msk, mtk_id_from, mtk_id_to, \
                 csb_id, rand) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                (
                    kd,
                    id,
                    &msk.msk.expose()[..],
                    msk.validity.from.0,
                    msk.validity.to.0,
                    msk.csb_id.0,
                    msk.rand.as_ref().map(|r| &r[..]),
                ),
            )?;
        }
    }
    if let Some(service) = service {
        let (kd, id) = msk_key(msk.key_domain_id, msk.msk_id);
        tx.execute(
            "INSERT INTO service (name, key_domain_id, msk_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET key_domain_id = excluded.key_domain_id, \
             msk_id = excluded.msk_id",
            (service, kd, id),
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn current_msk(conn: &Connection, service: &str) -> Result<Option<MskFile>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MSK_COLUMNS} FROM service AS s JOIN msk AS m \
         ON m.key_domain_id = s.key_domain_id AND m.msk_id = s.msk_id WHERE s.name = ?1"
    ))?;
    let mut rows = stmt.query([service])?;
    rows.next()?.map(msk_from_row).transpose()
}

pub(crate) fn highest_msk_id(
    conn: &Connection,
    kd: KeyDomainId,
) -> Result<Option<MskId>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT MAX(msk_id) FROM msk WHERE key_domain_id = ?1")?;
    let mut rows = stmt.query([&kd.0[..]])?;
    match rows.next()? {
        Some(row) if !matches!(row.get_ref(0)?, ValueRef::Null) => {
            Ok(Some(MskId(int(row, 0, "msk.msk_id")?)))
        }
        _ => Ok(None),
    }
}

/// `n` is not 0.
pub(crate) fn reserve_mtk_ids(
    conn: &mut Connection,
    kd: KeyDomainId,
    msk_id: MskId,
    validity: MtkIdInterval,
    n: u16,
) -> Result<RangeInclusive<u16>, StoreError> {
    let exhausted = StoreError::MtkIdsExhausted {
        key_domain_id: kd,
        msk_id,
        validity,
    };
    let tx = write(conn)?;
    let (kd_blob, id) = msk_key(kd, msk_id);
    let high: Option<u16> = {
        let mut stmt = tx.prepare_cached(
            "SELECT max(last) FROM mtk_id_block WHERE key_domain_id = ?1 AND msk_id = ?2",
        )?;
        let mut rows = stmt.query((kd_blob, id))?;
        match rows.next()? {
            Some(row) if !matches!(row.get_ref(0)?, ValueRef::Null) => {
                Some(int::<u16>(row, 0, "mtk_id_block.last")?)
            }
            _ => None,
        }
    };
    let (start, end) = crate::next_mtk_block(high, validity, n).ok_or(exhausted)?;
    tx.execute(
        "INSERT INTO mtk_id_block (key_domain_id, msk_id, first, last) \
         VALUES (?1, ?2, ?3, ?4)",
        (kd_blob, id, start, end),
    )?;
    tx.commit()?;
    Ok(start..=end)
}

/// `n` is not 0.
pub(crate) fn reserve_counters(
    conn: &mut Connection,
    kd: KeyDomainId,
    msk_id: MskId,
    n: u32,
) -> Result<RangeInclusive<u32>, StoreError> {
    let tx = write(conn)?;
    let high = counter_high_water(&tx, kd, msk_id)?;
    let (start, end) = crate::next_counter_block(high, n).ok_or(StoreError::CountersExhausted {
        key_domain_id: kd,
        msk_id,
    })?;
    let (kd_blob, id) = msk_key(kd, msk_id);
    tx.execute(
        "INSERT INTO mikey_counter (key_domain_id, msk_id, high) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key_domain_id, msk_id) DO UPDATE SET high = excluded.high",
        (kd_blob, id, end),
    )?;
    tx.commit()?;
    Ok(start..=end)
}

pub(crate) fn counter_high_water(
    conn: &Connection,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<u32>, StoreError> {
    let (kd_blob, id) = msk_key(kd, msk_id);
    let mut stmt = conn.prepare_cached(
        "SELECT high FROM mikey_counter WHERE key_domain_id = ?1 AND msk_id = ?2",
    )?;
    let mut rows = stmt.query((kd_blob, id))?;
    rows.next()?
        .map(|row| int::<u32>(row, 0, "mikey_counter.high"))
        .transpose()
}

pub(crate) fn set_current_mtk(
    conn: &mut Connection,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
    message: &[u8],
) -> Result<(), StoreError> {
    let tx = write(conn)?;
    if !is_reserved(&tx, kd, msk_id, mtk_id)? {
        return Err(StoreError::NotReserved {
            key_domain_id: kd,
            msk_id,
            mtk_id,
        });
    }
    if let Some((current, old)) = current_mtk(&tx, kd, msk_id)? {
        if current > mtk_id || (current == mtk_id && old != message) {
            return Err(StoreError::MtkIdNotIncreasing {
                current,
                requested: mtk_id,
            });
        }
        if current == mtk_id {
            return Ok(());
        }
    }
    let (kd_blob, id) = msk_key(kd, msk_id);
    tx.execute(
        "INSERT INTO current_mtk (key_domain_id, msk_id, mtk_id, message) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key_domain_id, msk_id) DO UPDATE \
         SET mtk_id = excluded.mtk_id, message = excluded.message",
        (kd_blob, id, mtk_id.0, message),
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn current_mtk(
    conn: &Connection,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<(MtkId, Vec<u8>)>, StoreError> {
    let (kd_blob, id) = msk_key(kd, msk_id);
    let mut stmt = conn.prepare_cached(
        "SELECT mtk_id, message FROM current_mtk WHERE key_domain_id = ?1 AND msk_id = ?2",
    )?;
    let mut rows = stmt.query((kd_blob, id))?;
    rows.next()?
        .map(|row| {
            Ok((
                MtkId(int::<u16>(row, 0, "current_mtk.mtk_id")?),
                blob(row, 1, "current_mtk.message")?.to_vec(),
            ))
        })
        .transpose()
}

/// `checked`: `(ssrc, upto)` pairs already checked against 2^48.
pub(crate) fn reserve_srtp_indexes(
    conn: &mut Connection,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
    checked: &[(u32, i64)],
) -> Result<(), StoreError> {
    let tx = write(conn)?;
    if !is_reserved(&tx, kd, msk_id, mtk_id)? {
        return Err(StoreError::NotReserved {
            key_domain_id: kd,
            msk_id,
            mtk_id,
        });
    }
    {
        let (kd_blob, id) = msk_key(kd, msk_id);
        let mut stmt = tx.prepare_cached(
            "INSERT INTO srtp_index (key_domain_id, msk_id, mtk_id, ssrc, high) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (key_domain_id, msk_id, mtk_id, ssrc) \
             DO UPDATE SET high = max(high, excluded.high)",
        )?;
        for &(ssrc, upto) in checked {
            stmt.execute((kd_blob, id, mtk_id.0, ssrc, upto))?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn srtp_reservations(
    conn: &Connection,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
) -> Result<Vec<(u32, u64)>, StoreError> {
    let (kd_blob, id) = msk_key(kd, msk_id);
    let mut stmt = conn.prepare_cached(
        "SELECT ssrc, high FROM srtp_index \
         WHERE key_domain_id = ?1 AND msk_id = ?2 AND mtk_id = ?3 ORDER BY ssrc",
    )?;
    let mut rows = stmt.query((kd_blob, id, mtk_id.0))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let ssrc = int::<u32>(row, 0, "srtp_index.ssrc")?;
        let high = int::<u64>(row, 1, "srtp_index.high")?;
        if high > SRTP_MAX_PACKETS {
            return Err(StoreError::Corrupt("srtp_index.high"));
        }
        out.push((ssrc, high));
    }
    Ok(out)
}

// --- The BM-SC's tables (schema version 2) ---

/// `expires` is the checked `keys.expires`.
pub(crate) fn put_ue(
    conn: &mut Connection,
    btid: &str,
    keys: &UeKeys,
    expires: Option<i64>,
) -> Result<(), StoreError> {
    let tx = write(conn)?;
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

pub(crate) fn put_ues<'a>(
    conn: &mut Connection,
    ues: impl IntoIterator<Item = (&'a str, &'a UeKeys)>,
) -> Result<(), StoreError> {
    let tx = write(conn)?;
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

pub(crate) fn ue(conn: &Connection, btid: &str) -> Result<Option<UeKeys>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT muk, mrk, expires FROM ue WHERE btid = ?1")?;
    let mut rows = stmt.query([btid])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let muk = Muk::from_bytes(blob_array::<32>(row, 0, "ue.muk")?);
    let mrk = mbms_core::Mrk::from_bytes(blob_array::<32>(row, 1, "ue.mrk")?);
    let expires = match row.get_ref(2)? {
        ValueRef::Null => None,
        _ => Some(int::<u64>(row, 2, "ue.expires")?),
    };
    Ok(Some(UeKeys { muk, mrk, expires }))
}

pub(crate) fn remove_ue(conn: &mut Connection, btid: &str) -> Result<bool, StoreError> {
    let tx = write(conn)?;
    let n = tx.execute("DELETE FROM ue WHERE btid = ?1", [btid])?;
    tx.commit()?;
    Ok(n > 0)
}

pub(crate) fn ue_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM ue", [], |r| r.get(0))?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt("ue count"))
}

/// `now` is the checked time of registration.
pub(crate) fn register(
    conn: &mut Connection,
    btid: &str,
    services: &[&str],
    ue_addr: IpAddr,
    now: i64,
) -> Result<(), StoreError> {
    let tx = write(conn)?;
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

pub(crate) fn register_many(
    conn: &mut Connection,
    items: &[(&str, &str, IpAddr)],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    let tx = write(conn)?;
    let mut stored = Vec::with_capacity(items.len());
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO registration (btid, service, ue_addr, since) \
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM ue WHERE btid = ?1) \
             ON CONFLICT (btid, service) \
             DO UPDATE SET ue_addr = excluded.ue_addr, since = excluded.since",
        )?;
        for (btid, service, addr) in items {
            stored.push(stmt.execute((btid, service, addr.to_string(), now))? > 0);
        }
    }
    tx.commit()?;
    Ok(stored)
}

pub(crate) fn deregister(
    conn: &mut Connection,
    btid: &str,
    services: &[&str],
) -> Result<usize, StoreError> {
    let tx = write(conn)?;
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

pub(crate) fn registration(
    conn: &Connection,
    btid: &str,
    service: &str,
) -> Result<Option<IpAddr>, StoreError> {
    let addr: Option<String> = conn
        .prepare_cached("SELECT ue_addr FROM registration WHERE btid = ?1 AND service = ?2")?
        .query_row((btid, service), |r| r.get(0))
        .optional()?;
    addr.map(|a| {
        a.parse()
            .map_err(|_| StoreError::Corrupt("registration.ue_addr"))
    })
    .transpose()
}

pub(crate) fn registrations(
    conn: &Connection,
    service: &str,
) -> Result<Vec<Registration>, StoreError> {
    let mut stmt = conn.prepare_cached(
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

pub(crate) fn services_for_msk(
    conn: &Connection,
    btid: &str,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Vec<String>, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    let mut stmt = conn.prepare_cached(
        "SELECT r.service FROM registration AS r JOIN service AS s ON s.name = r.service \
         WHERE r.btid = ?1 AND s.key_domain_id = ?2 AND s.msk_id = ?3 ORDER BY r.service",
    )?;
    let rows = stmt.query_map((btid, kd, id), |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The MUK counter floor (schema 3's `muk_floor`).
fn muk_floor(conn: &Connection) -> Result<i64, StoreError> {
    let high: i64 = conn
        .prepare_cached("SELECT high FROM muk_floor WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    crate::checked_floor(high)
}

pub(crate) fn reserve_muk_counters(
    conn: &mut Connection,
    btids: &[&str],
) -> Result<Vec<Option<u32>>, StoreError> {
    Ok(reserve_muk_counters_with_keys(conn, btids)?
        .into_iter()
        .map(|item| item.map(|(counter, _)| counter))
        .collect())
}

pub(crate) fn reserve_muk_counters_with_keys(
    conn: &mut Connection,
    btids: &[&str],
) -> Result<Vec<Option<(u32, Muk)>>, StoreError> {
    let tx = write(conn)?;
    let floor = muk_floor(&tx)?;
    let mut out = Vec::with_capacity(btids.len());
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE ue SET counter = max(counter, ?2) + 1 \
             WHERE btid = ?1 AND counter >= 0 AND max(counter, ?2) < 4294967295 \
             RETURNING counter, muk",
        )?;
        for btid in btids {
            let mut rows = stmt.query((btid, floor))?;
            let item = match rows.next()? {
                Some(row) => Some((
                    int::<u32>(row, 0, "ue.counter")?,
                    Muk::from_bytes(blob_array::<32>(row, 1, "ue.muk")?),
                )),
                None => None,
            };
            out.push(item);
        }
    }
    tx.commit()?;
    Ok(out)
}

pub(crate) fn reserve_shared_muk_counter_with_keys(
    conn: &mut Connection,
    btids: &[&str],
) -> Result<Vec<Option<(u32, Muk)>>, StoreError> {
    let tx = write(conn)?;
    let floor = muk_floor(&tx)?;
    let mut rows: Vec<Option<(i64, Muk)>> = Vec::with_capacity(btids.len());
    {
        let mut stmt = tx.prepare_cached("SELECT counter, muk FROM ue WHERE btid = ?1")?;
        for btid in btids {
            let mut r = stmt.query([btid])?;
            rows.push(match r.next()? {
                // Any integer: a damaged one gets no value (`plan_shared`).
                Some(row) => Some((
                    int::<i64>(row, 0, "ue.counter")?,
                    Muk::from_bytes(blob_array::<32>(row, 1, "ue.muk")?),
                )),
                None => None,
            });
        }
    }
    let items: Vec<(&str, Option<i64>)> = btids
        .iter()
        .zip(&rows)
        .map(|(b, r)| (*b, r.as_ref().map(|(c, _)| *c)))
        .collect();
    let plan = crate::plan_shared(floor, &items);
    if let Some(high) = plan.floor {
        tx.prepare_cached("UPDATE muk_floor SET high = ?1 WHERE id = 1")?
            .execute([high])?;
    }
    {
        let mut stmt = tx.prepare_cached("UPDATE ue SET counter = ?2 WHERE btid = ?1")?;
        for (btid, counter) in &plan.own {
            stmt.execute((btid, counter))?;
        }
    }
    tx.commit()?;
    Ok(plan
        .values
        .into_iter()
        .zip(rows)
        .map(|(v, r)| Some((v?, r?.1)))
        .collect())
}

pub(crate) fn muk_counter(conn: &Connection, btid: &str) -> Result<Option<u32>, StoreError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT counter FROM ue WHERE btid = ?1")?
        .query_row([btid], |r| r.get(0))
        .optional()?;
    let Some(v) = v else { return Ok(None) };
    let own = u32::try_from(v).map_err(|_| StoreError::Corrupt("ue.counter"))?;
    let floor =
        u32::try_from(muk_floor(conn)?).map_err(|_| StoreError::Corrupt("muk_floor.high"))?;
    Ok(Some(own.max(floor)))
}

pub(crate) fn highest_msk_id_in_group(
    conn: &Connection,
    kd: KeyDomainId,
    group: u16,
) -> Result<Option<MskId>, StoreError> {
    let lo = i64::from(group) << 16;
    let v: Option<i64> = conn
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

pub(crate) fn retire_msks_before(
    conn: &mut Connection,
    kd: KeyDomainId,
    current: MskId,
) -> Result<Vec<MskId>, StoreError> {
    let lo = i64::from(current.key_group()) << 16;
    let tx = write(conn)?;
    let mut ids = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "DELETE FROM msk WHERE key_domain_id = ?1 AND msk_id >= ?2 AND msk_id < ?3 \
             AND NOT EXISTS (SELECT 1 FROM service AS s \
                 WHERE s.key_domain_id = msk.key_domain_id AND s.msk_id = msk.msk_id) \
             RETURNING msk_id",
        )?;
        let mut rows = stmt.query((&kd.0[..], lo, i64::from(current.0)))?;
        while let Some(row) = rows.next()? {
            ids.push(MskId(int::<u32>(row, 0, "msk.msk_id")?));
        }
    }
    tx.commit()?;
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use crate::{Conn, KeyStore, SCHEMA_VERSION};

    fn conn(store: &KeyStore) -> &rusqlite::Connection {
        match &store.conn {
            Conn::Sqlite(c) => c,
            Conn::Postgres { .. } => panic!("not an SQLite store"),
        }
    }

    #[test]
    fn file_store_is_wal_fsynced_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&dir.path().join("k.sqlite")).unwrap();
        let pragma = |name: &str| -> String {
            conn(&store)
                .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
        assert_eq!(pragma("synchronous"), "Integer(2)"); // FULL
        assert_eq!(pragma("foreign_keys"), "Integer(1)");
        assert_eq!(pragma("user_version"), format!("Integer({SCHEMA_VERSION})"));
        assert_eq!(pragma("busy_timeout"), "Integer(5000)");
    }

    #[test]
    fn schema_v1_is_strict_about_lengths() {
        let store = KeyStore::open_in_memory().unwrap();
        let err = conn(&store).execute(
            "INSERT INTO msk VALUES (x'010203', 1, x'00', 1, 2, 0, NULL)",
            [],
        );
        assert!(err.is_err(), "a 1-byte MSK must not fit the schema");
    }
}
