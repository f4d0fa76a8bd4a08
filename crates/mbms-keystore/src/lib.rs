//! # mbms-keystore
//!
//! Durable key state of the MBMS sender and the BM-SC key server, kept in one SQLite file: the
//! MSK of each service, and for each MSK the MTK IDs, MIKEY timestamp counters, the current MTK
//! message and the SRTP indexes that have been handed out; for the BM-SC, the provisioned UEs
//! (B-TID, MUK, MRK), the timestamp counter of each MUK and the registrations (with the UE's
//! address).
//!
//! ## The durability guarantee
//!
//! No restart — even after `kill -9` or a power cut at any instant — ever reuses an MTK ID, a
//! MIKEY replay counter, or an SRTP (key, index) pair. The store gets there by *reserving*:
//!
//! ```text
//! caller                      KeyStore                         SQLite file (WAL, synchronous=FULL)
//! reserve_mtk_ids(.., 4) ---> BEGIN IMMEDIATE; next = high+1;
//!                             INSERT block; COMMIT  ---------> fsync'ed before return
//!            <--- 17..=20     (only now may 17..=20 be used)
//! after a crash: reserve_mtk_ids(..) starts at 21, whatever of 17..=20 was really sent.
//! ```
//!
//! - Every reservation is one committed, fsync'ed transaction *before* the method returns, so a
//!   value the caller has seen is on disk. Values reserved but never used are simply skipped
//!   after a restart; this is the price of the guarantee, and why callers reserve in blocks.
//! - Reservations only move up: a new block starts strictly above every block before it
//!   (MTK IDs, counters), and SRTP high-water marks are raised, never lowered.
//! - Writers take the database lock at `BEGIN` (`IMMEDIATE`), so two processes sharing one file
//!   serialize their reservations instead of handing out the same values.
//!
//! The store does no cryptography: MTK messages are opaque sealed bytes. MSKs are stored in the
//! clear (the file is a secret; protect it with file permissions), and neither [`KeyStore`] nor
//! [`StoreError`] ever prints key bytes. Values read back are validated: a damaged row gives
//! [`StoreError::Corrupt`], never a panic.
//!
//! Creating the parent directory of the file is the caller's job.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mbms_core::keyfile::MskFile;
use mbms_core::srtp::SRTP_MAX_PACKETS;
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, MtkId, MtkIdInterval};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, Row, Transaction, TransactionBehavior};

mod bmsc;

pub use bmsc::{Registration, UeKeys};

/// Schema version this crate writes and reads (`PRAGMA user_version`). Version 1 files (sender
/// state only) are upgraded in place when opened.
pub const SCHEMA_VERSION: u32 = 2;

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

/// Why a key-store operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Every MIKEY counter value of the MSK has been reserved: a new MSK is needed.
    #[error(
        "MIKEY counters of MSK {key_domain_id:?}/{msk_id:?} are exhausted: a new MSK is needed"
    )]
    CountersExhausted {
        /// Key Domain ID of the MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID.
        msk_id: MskId,
    },
    /// A value read back from the file is out of range or of the wrong type or length.
    #[error("key store is corrupt: bad value in {0}")]
    Corrupt(&'static str),
    /// A reservation of zero values was asked for.
    #[error("a reservation must ask for at least one value")]
    EmptyReservation,
    /// The file is an SQLite database, but not a key store (it has tables of its own).
    #[error("{}: an SQLite database, but not an MBMS key store", .path.display())]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
    },
    /// The MSK is already stored with a different key, validity, CSB ID or RAND.
    #[error("MSK {key_domain_id:?}/{msk_id:?} is already stored with different contents")]
    MskConflict {
        /// Key Domain ID of the MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID.
        msk_id: MskId,
    },
    /// The MTK ID is not above the current MTK's (or equal to it with a different message):
    /// recording it would reuse an MTK ID.
    #[error("MTK ID {requested:?} is not above the current MTK ID {current:?}")]
    MtkIdNotIncreasing {
        /// The current MTK ID.
        current: MtkId,
        /// The MTK ID asked for.
        requested: MtkId,
    },
    /// Every MTK ID of the validity interval has been reserved: a new MSK is needed.
    #[error(
        "MTK IDs {}..={} of MSK {:?}/{:?} are exhausted: a new MSK is needed",
        .validity.from.0, .validity.to.0, .key_domain_id, .msk_id
    )]
    MtkIdsExhausted {
        /// Key Domain ID of the MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID.
        msk_id: MskId,
        /// The validity interval the reservation was asked within.
        validity: MtkIdInterval,
    },
    /// The file was written by a newer version of this software.
    #[error(
        "{}: key store schema version {found} is newer than this program supports \
         ({supported}); upgrade the program",
        .path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Schema version found in the file.
        found: i64,
        /// Newest schema version this crate reads.
        supported: u32,
    },
    /// The file is not an SQLite database.
    #[error("{}: not an SQLite database (not a key store)", .path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The MTK ID was never reserved for this MSK with [`KeyStore::reserve_mtk_ids`].
    #[error("MTK ID {mtk_id:?} of MSK {key_domain_id:?}/{msk_id:?} was never reserved")]
    NotReserved {
        /// Key Domain ID of the MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID.
        msk_id: MskId,
        /// The MTK ID.
        mtk_id: MtkId,
    },
    /// The file could not be opened or set up.
    #[error("cannot open key store {}: {source}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        source: rusqlite::Error,
    },
    /// The UE (B-TID) is not provisioned.
    #[error("unknown UE (B-TID not provisioned)")]
    UnknownUe,
    /// An SQLite operation failed.
    #[error("key store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An SRTP high-water mark above 2^48 (RFC 3711 §9.2) was asked for.
    #[error("SRTP index {index} of SSRC {ssrc:08x} is above 2^48")]
    SrtpIndexOutOfRange {
        /// SSRC.
        ssrc: u32,
        /// The high-water mark asked for.
        index: u64,
    },
}

/// The durable key state, in one SQLite file. See the [crate documentation](crate) for what
/// it guarantees.
///
/// Methods that reserve or record commit (and fsync) before they return. `Debug` shows only
/// the file's path.
pub struct KeyStore {
    conn: Connection,
    path: Option<PathBuf>,
}

impl core::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The SQL key of an MSK: Key Domain ID as a 3-byte BLOB, MSK ID as an INTEGER.
fn msk_key(kd: KeyDomainId, msk_id: MskId) -> ([u8; 3], i64) {
    (kd.0, i64::from(msk_id.0))
}

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

/// The stored MSK (kd, msk_id), if any.
fn stored_msk(
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

impl KeyStore {
    /// Opens the key store at `path`, creating the file and its schema if there is none.
    ///
    /// Sets `journal_mode=WAL`, `synchronous=FULL` (every commit is fsync'ed), a busy timeout
    /// of 5 s and foreign keys. The parent directory must exist.
    ///
    /// Refuses a file that is not an SQLite database ([`StoreError::NotADatabase`]), an SQLite
    /// database of something else ([`StoreError::ForeignDatabase`]) and a key store of a newer
    /// schema ([`StoreError::NewerSchema`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::set_up(conn, path.to_path_buf(), Some(path.to_path_buf()))
    }

    /// Opens a key store that lives in memory only and vanishes on drop: for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::set_up(conn, path, None)
    }

    /// The file of the store (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn set_up(
        mut conn: Connection,
        shown: PathBuf,
        path: Option<PathBuf>,
    ) -> Result<Self, StoreError> {
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
                tx.execute_batch(bmsc::SCHEMA_V2).map_err(classify)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(classify)?;
            }
            1 => {
                tx.execute_batch(bmsc::SCHEMA_V2).map_err(classify)?;
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
        Ok(Self { conn, path })
    }

    /// Begins a write transaction holding the database's write lock from the start, so that
    /// the read-then-write of a reservation cannot interleave with another process's.
    fn write(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Stores the MSK of `service` (a name like `"tv1"`) and makes it the service's current
    /// MSK. A service has at most one current MSK; putting another MSK (another Key Domain ID
    /// or MSK ID) replaces it, and the MSKs stay stored.
    ///
    /// Putting an MSK that is already stored is fine if it is identical (key, validity, CSB ID
    /// and RAND); otherwise [`StoreError::MskConflict`], and nothing changes. Several services
    /// may share one MSK. Committed before return.
    pub fn put_msk(&mut self, service: &str, msk: &MskFile) -> Result<(), StoreError> {
        let tx = self.write()?;
        match stored_msk(&tx, msk.key_domain_id, msk.msk_id)? {
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
        let (kd, id) = msk_key(msk.key_domain_id, msk.msk_id);
        tx.execute(
            "INSERT INTO service (name, key_domain_id, msk_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET key_domain_id = excluded.key_domain_id, \
             msk_id = excluded.msk_id",
            (service, kd, id),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The current MSK of `service`, if any.
    pub fn current_msk(&self, service: &str) -> Result<Option<MskFile>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MSK_COLUMNS} FROM service AS s JOIN msk AS m \
             ON m.key_domain_id = s.key_domain_id AND m.msk_id = s.msk_id WHERE s.name = ?1"
        ))?;
        let mut rows = stmt.query([service])?;
        rows.next()?.map(msk_from_row).transpose()
    }

    /// The highest MSK ID stored under Key Domain ID `kd` (any service), if any: a new MSK of
    /// that key domain takes a higher one.
    pub fn highest_msk_id(&self, kd: KeyDomainId) -> Result<Option<MskId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT MAX(msk_id) FROM msk WHERE key_domain_id = ?1")?;
        let mut rows = stmt.query([&kd.0[..]])?;
        match rows.next()? {
            Some(row) if !matches!(row.get_ref(0)?, ValueRef::Null) => {
                Ok(Some(MskId(int(row, 0, "msk.msk_id")?)))
            }
            _ => Ok(None),
        }
    }

    /// Reserves the next `n` MTK IDs of the MSK (`kd`, `msk_id`): strictly above every MTK ID
    /// reserved before for that MSK, and within `validity` (the first reservation starts at
    /// `validity.from`).
    ///
    /// Returns the inclusive range reserved, shorter than `n` if the interval has fewer left;
    /// [`StoreError::MtkIdsExhausted`] if none are left, [`StoreError::EmptyReservation`] if
    /// `n` is 0. Committed before return: the IDs may be used once this returns, and no later
    /// call, in this or any later process, returns them again.
    pub fn reserve_mtk_ids(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
        validity: MtkIdInterval,
        n: u16,
    ) -> Result<RangeInclusive<u16>, StoreError> {
        if n == 0 {
            return Err(StoreError::EmptyReservation);
        }
        let exhausted = StoreError::MtkIdsExhausted {
            key_domain_id: kd,
            msk_id,
            validity,
        };
        let tx = self.write()?;
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
        let start = match high {
            None => validity.from.0,
            Some(h) => match h.checked_add(1) {
                Some(next) => next.max(validity.from.0),
                None => return Err(exhausted),
            },
        };
        if start > validity.to.0 {
            return Err(exhausted);
        }
        let end = start.saturating_add(n - 1).min(validity.to.0);
        tx.execute(
            "INSERT INTO mtk_id_block (key_domain_id, msk_id, first, last) \
             VALUES (?1, ?2, ?3, ?4)",
            (kd_blob, id, start, end),
        )?;
        tx.commit()?;
        Ok(start..=end)
    }

    /// Reserves the next `n` values of the MIKEY timestamp counter of MTK messages under the
    /// MSK (`kd`, `msk_id`): strictly above every value reserved before (the first reservation
    /// starts at 1).
    ///
    /// Returns the inclusive range reserved, shorter than `n` near `u32::MAX`;
    /// [`StoreError::CountersExhausted`] once `u32::MAX` has been reserved,
    /// [`StoreError::EmptyReservation`] if `n` is 0. Committed before return.
    pub fn reserve_counters(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
        n: u32,
    ) -> Result<RangeInclusive<u32>, StoreError> {
        if n == 0 {
            return Err(StoreError::EmptyReservation);
        }
        let tx = self.write()?;
        let start = match high_counter(&tx, kd, msk_id)? {
            None => 1,
            Some(h) => h.checked_add(1).ok_or(StoreError::CountersExhausted {
                key_domain_id: kd,
                msk_id,
            })?,
        };
        let end = start.saturating_add(n - 1);
        let (kd_blob, id) = msk_key(kd, msk_id);
        tx.execute(
            "INSERT INTO mikey_counter (key_domain_id, msk_id, high) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key_domain_id, msk_id) DO UPDATE SET high = excluded.high",
            (kd_blob, id, end),
        )?;
        tx.commit()?;
        Ok(start..=end)
    }

    /// The highest MIKEY counter value ever reserved for the MSK (`None` if none).
    pub fn counter_high_water(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Option<u32>, StoreError> {
        high_counter(&self.conn, kd, msk_id)
    }

    /// Records the current MTK of the MSK (`kd`, `msk_id`) as its sealed MIKEY MTK message
    /// (opaque bytes: the store does no cryptography), replacing the previous one.
    ///
    /// `mtk_id` must have been reserved with [`Self::reserve_mtk_ids`]
    /// ([`StoreError::NotReserved`] otherwise) and must be above the current MTK's ID
    /// ([`StoreError::MtkIdNotIncreasing`] otherwise): re-recording the current MTK ID is
    /// accepted only with the identical message. Committed before return.
    pub fn set_current_mtk(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
        mtk_id: MtkId,
        message: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.write()?;
        if !is_reserved(&tx, kd, msk_id, mtk_id)? {
            return Err(StoreError::NotReserved {
                key_domain_id: kd,
                msk_id,
                mtk_id,
            });
        }
        if let Some((current, old)) = current_mtk_of(&tx, kd, msk_id)? {
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

    /// The current MTK of the MSK (`kd`, `msk_id`): its ID and sealed MTK message.
    pub fn current_mtk(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Option<(MtkId, Vec<u8>)>, StoreError> {
        current_mtk_of(&self.conn, kd, msk_id)
    }

    /// Raises, in one transaction, the reserved SRTP index high-water mark of each
    /// `(ssrc, upto)` pair under the MTK (`kd`, `msk_id`, `mtk_id`) to at least `upto`; a mark
    /// is never lowered. Whether `upto` counts as the last usable index or one past it is the
    /// caller's convention; either way it is at most 2^48 (RFC 3711 §9.2).
    ///
    /// The MTK ID must have been reserved ([`StoreError::NotReserved`]); an `upto` above 2^48
    /// gives [`StoreError::SrtpIndexOutOfRange`] and changes nothing. Committed before return.
    pub fn reserve_srtp_indexes(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
        mtk_id: MtkId,
        reservations: &[(u32, u64)],
    ) -> Result<(), StoreError> {
        let mut checked = Vec::with_capacity(reservations.len());
        for &(ssrc, upto) in reservations {
            match i64::try_from(upto) {
                Ok(v) if upto <= SRTP_MAX_PACKETS => checked.push((ssrc, v)),
                _ => return Err(StoreError::SrtpIndexOutOfRange { ssrc, index: upto }),
            }
        }
        let tx = self.write()?;
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
            for (ssrc, upto) in checked {
                stmt.execute((kd_blob, id, mtk_id.0, ssrc, upto))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// All `(ssrc, reserved high-water mark)` pairs of the MTK (`kd`, `msk_id`, `mtk_id`), by
    /// SSRC.
    pub fn srtp_reservations(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
        mtk_id: MtkId,
    ) -> Result<Vec<(u32, u64)>, StoreError> {
        let (kd_blob, id) = msk_key(kd, msk_id);
        let mut stmt = self.conn.prepare_cached(
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
}

fn high_counter(
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

fn current_mtk_of(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_is_wal_fsynced_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&dir.path().join("k.sqlite")).unwrap();
        let pragma = |name: &str| -> String {
            store
                .conn
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
        let err = store.conn.execute(
            "INSERT INTO msk VALUES (x'010203', 1, x'00', 1, 2, 0, NULL)",
            [],
        );
        assert!(err.is_err(), "a 1-byte MSK must not fit the schema");
    }
}
