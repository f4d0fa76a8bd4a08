//! # mbms-keystore
//!
//! Durable key state of the MBMS sender and the BM-SC key server: the MSK of each service, and
//! for each MSK the MTK IDs, MIKEY timestamp counters, the current MTK message and the SRTP
//! indexes that have been handed out; for the BM-SC, the provisioned UEs (B-TID, MUK, MRK),
//! the timestamp counter of each MUK and the registrations (with the UE's address).
//!
//! The state lives in one SQLite file by default ([`KeyStore::open`]), or in a PostgreSQL
//! database shared by several BM-SC and sender instances; [`KeyStore::open_url`] picks the
//! backend from a URL (`sqlite:PATH`, `postgres://…`). Both keep the same promises below.
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
//! ## PostgreSQL
//!
//! With `postgres://user:password@host:port/dbname` (or `postgresql://`, libpq's URL form as
//! the `postgres` crate parses it), every instance opens its own connection to one database,
//! and the same guarantees hold across instances:
//!
//! - The schema is that of SQLite's version 2 (same tables and CHECK constraints; `BYTEA`,
//!   `BIGINT`, `TEXT`), plus `mbms_meta(key, value)` holding `schema_version`. The first open
//!   creates it, in a transaction that holds a fixed advisory lock, so instances starting
//!   together do not race. A database with other tables but no `mbms_meta` is refused
//!   ([`StoreError::ForeignDatabase`]), a newer schema too ([`StoreError::NewerSchema`]).
//! - Every method that reserves or records is one transaction, committed before it returns.
//!   `COMMIT` is durable with `synchronous_commit` `on` (PostgreSQL's default; a session whose
//!   server default is `off` sets it back to `on`). A server run with `fsync=off` voids this.
//! - Reservations that read a high-water mark and then raise it (MTK ID blocks, the MIKEY
//!   counters and the current MTK of an MSK, SRTP marks; storing an MSK) first take a
//!   transaction-scoped advisory lock derived from (Key Domain ID, MSK ID), so two instances
//!   never hand out the same MTK ID or counter value, whether or not the MSK row exists. MUK
//!   counters lock their UE rows (`FOR NO KEY UPDATE`, in B-TID order, so batches never
//!   deadlock) after reading the counter floor `FOR SHARE`; a shared reservation (one value for
//!   a batch of UEs) locks the floor `FOR UPDATE` before reading the batch's counters, so own
//!   reservations wait for it and each of the two sees what the other committed.
//!   A transaction that fails with a serialization failure or deadlock is retried (3 times).
//! - Lock waits give up after 5 s (`lock_timeout`), like SQLite's busy timeout; connecting
//!   gives up after 10 s unless the URL sets `connect_timeout`. A connection found closed is
//!   re-established at the next call.
//! - TLS is not supported yet (the connection is made with `postgres::NoTls`): use a local
//!   server, a Unix socket (`host=/run/postgresql` as a URL parameter) or a tunnel.
//! - The password of the URL is never shown: errors and `Debug` show the URL without it.
//!
//! The store does no cryptography: MTK messages are opaque sealed bytes. MSKs are stored in the
//! clear (the file or database is a secret; protect it with file permissions or database
//! privileges), and neither [`KeyStore`] nor [`StoreError`] ever prints key bytes (PostgreSQL
//! errors are shown without the server's DETAIL, which can quote a row). Values read back are
//! validated: a damaged row gives [`StoreError::Corrupt`], never a panic.
//!
//! Creating the parent directory of the file is the caller's job.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::cell::RefCell;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use mbms_core::keyfile::MskFile;
use mbms_core::srtp::SRTP_MAX_PACKETS;
use mbms_core::{KeyDomainId, MskId, MtkId, MtkIdInterval};

mod bmsc;
mod pg;
mod sqlite;

pub use bmsc::{Registration, UeKeys};
pub use pg::PostgresError;

/// Schema version this crate writes and reads (`PRAGMA user_version` in SQLite, `mbms_meta`'s
/// `schema_version` in PostgreSQL). Older SQLite files (version 1: sender state only; version
/// 2: no MUK counter floor) and version-2 PostgreSQL schemas are upgraded in place when opened.
pub const SCHEMA_VERSION: u32 = 3;

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
    /// The file is an SQLite database, but not a key store (it has tables of its own); or the
    /// PostgreSQL database has tables but no `mbms_meta` (then `path` is the URL without its
    /// password).
    #[error("{}: {}, but not an MBMS key store", .path.display(), database_kind(.path))]
    ForeignDatabase {
        /// The file (or the URL, without password).
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
    /// The file (or PostgreSQL database) was written by a newer version of this software.
    #[error(
        "{}: key store schema version {found} is newer than this program supports \
         ({supported}); upgrade the program",
        .path.display()
    )]
    NewerSchema {
        /// The file (or the URL, without password).
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
    /// The PostgreSQL database could not be connected to or set up.
    #[error("cannot open key store {url}: {source}")]
    OpenPostgres {
        /// The URL, without password.
        url: String,
        /// What the client or server reported.
        source: PostgresError,
    },
    /// The UE (B-TID) is not provisioned.
    #[error("unknown UE (B-TID not provisioned)")]
    UnknownUe,
    /// An SQLite operation failed.
    #[error("key store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL operation failed.
    #[error("key store: {0}")]
    Postgres(#[from] PostgresError),
    /// An SRTP high-water mark above 2^48 (RFC 3711 §9.2) was asked for.
    #[error("SRTP index {index} of SSRC {ssrc:08x} is above 2^48")]
    SrtpIndexOutOfRange {
        /// SSRC.
        ssrc: u32,
        /// The high-water mark asked for.
        index: u64,
    },
    /// The URL given to [`KeyStore::open_url`] names no backend (or an empty SQLite path).
    #[error("{url}: not a key store URL (expected sqlite:PATH, postgres://… or postgresql://…)")]
    UnsupportedUrl {
        /// The URL, without password.
        url: String,
    },
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        Self::Postgres(PostgresError::from(e))
    }
}

/// What [`StoreError::ForeignDatabase`] calls the database at `path`.
fn database_kind(path: &Path) -> &'static str {
    if pg::is_postgres_url(&path.to_string_lossy()) {
        "a PostgreSQL database"
    } else {
        "an SQLite database"
    }
}

/// The durable key state: one SQLite file, or a PostgreSQL database shared with other
/// instances. See the [crate documentation](crate) for what it guarantees.
///
/// Methods that reserve or record commit (and fsync) before they return. `Debug` shows only
/// the file's path (or the URL without password).
pub struct KeyStore {
    conn: Conn,
    path: Option<PathBuf>,
}

/// The connection of a [`KeyStore`].
enum Conn {
    Sqlite(rusqlite::Connection),
    /// The PostgreSQL client needs `&mut` even to read, hence the cell: the store stays `Send`
    /// (and, like an SQLite connection, not `Sync`).
    Postgres {
        /// The URL without password.
        url: String,
        conn: Box<RefCell<pg::PgConn>>,
    },
}

impl core::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.conn {
            Conn::Sqlite(_) => f
                .debug_struct("KeyStore")
                .field("path", &self.path)
                .finish_non_exhaustive(),
            Conn::Postgres { url, .. } => f
                .debug_struct("KeyStore")
                .field("url", url)
                .finish_non_exhaustive(),
        }
    }
}

/// The SQL key of an MSK: Key Domain ID as 3 bytes, MSK ID as an integer.
fn msk_key(kd: KeyDomainId, msk_id: MskId) -> ([u8; 3], i64) {
    (kd.0, i64::from(msk_id.0))
}

/// How far above the floor a UE's own counter may be and still take part in a shared MUK
/// counter reservation. A UE further above (it has had more than this many messages of its
/// own since the floor last rose past it) keeps its own sequence in shared batches too, so that
/// one UE whose counter ran far ahead, or to the end, cannot drag the floor, and every other
/// UE, with it. A shared batch thus raises the floor by at most this much plus its repeats.
pub const SHARED_COUNTER_SLACK: i64 = 1 << 16;

/// The MUK counter floor as stored, checked: a value outside `0..=u32::MAX` is damage.
fn checked_floor(high: i64) -> Result<i64, StoreError> {
    if (0..=i64::from(u32::MAX)).contains(&high) {
        Ok(high)
    } else {
        Err(StoreError::Corrupt("muk_floor.high"))
    }
}

/// What a shared MUK counter reservation hands out and writes.
struct SharedPlan<'a> {
    /// Item `i`'s value (`None`: unknown UE, damaged or exhausted counter).
    values: Vec<Option<u32>>,
    /// The new floor, if it rises.
    floor: Option<i64>,
    /// New own counters of the UEs that keep their own sequence (above the floor's reach).
    own: std::collections::HashMap<&'a str, i64>,
}

/// Plans a shared reservation under `floor`, for `items` (each a B-TID and its stored counter,
/// `None` if the UE is not provisioned). The batch value is one above the floor and above the
/// counter of every UE of the batch within [`SHARED_COUNTER_SLACK`] of the floor; such a UE's
/// second item gets the next value, and so on, and the floor rises to the highest value handed
/// out. A UE further above continues its own counter (`own`). A stored counter outside
/// `0..=u32::MAX` (damaged) or at `u32::MAX` (exhausted) gets no value and bounds nothing; a
/// value past `u32::MAX` is not handed out.
fn plan_shared<'a>(floor: i64, items: &[(&'a str, Option<i64>)]) -> SharedPlan<'a> {
    let max = i64::from(u32::MAX);
    let reach = floor + SHARED_COUNTER_SLACK;
    let base = items
        .iter()
        .filter_map(|(_, c)| *c)
        // An exhausted UE (at `u32::MAX`) gets nothing and bounds nothing: near the end of
        // the floor it would otherwise push the batch value past the end for every UE.
        .filter(|c| (0..=reach.min(max - 1)).contains(c))
        .fold(floor, i64::max);
    let mut shared_seen: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    let mut own: std::collections::HashMap<&'a str, i64> = std::collections::HashMap::new();
    let mut high = floor;
    let values = items
        .iter()
        .map(|&(btid, counter)| {
            let c = counter.filter(|c| (0..max).contains(c))?;
            let value = if c <= reach {
                let n = shared_seen.entry(btid).or_insert(0);
                *n += 1;
                let v = base + *n;
                if v <= max {
                    high = high.max(v);
                }
                v
            } else {
                let last = own.entry(btid).or_insert(c);
                if *last >= max {
                    return None;
                }
                *last += 1;
                *last
            };
            u32::try_from(value).ok()
        })
        .collect();
    SharedPlan {
        values,
        floor: (high > floor).then_some(high),
        own,
    }
}

/// The next block of at most `n` (≥ 1) MTK IDs within `validity` above `high`, the highest
/// reserved so far; `None` if none is left.
fn next_mtk_block(high: Option<u16>, validity: MtkIdInterval, n: u16) -> Option<(u16, u16)> {
    let start = match high {
        None => validity.from.0,
        Some(h) => h.checked_add(1)?.max(validity.from.0),
    };
    if start > validity.to.0 {
        return None;
    }
    Some((start, start.saturating_add(n - 1).min(validity.to.0)))
}

/// The next block of at most `n` (≥ 1) MIKEY counter values above `high`, the highest
/// reserved so far (the first is 1); `None` once `u32::MAX` has been reserved.
fn next_counter_block(high: Option<u32>, n: u32) -> Option<(u32, u32)> {
    let start = match high {
        None => 1,
        Some(h) => h.checked_add(1)?,
    };
    Some((start, start.saturating_add(n - 1)))
}

/// Runs `$sqlite` with the SQLite connection bound to `$c`, or `$pg` with the PostgreSQL one
/// (`&mut PgConn`) bound to `$c`.
macro_rules! dispatch {
    ($store:expr, $c:ident => $sqlite:expr, $pg:expr) => {
        match &$store.conn {
            Conn::Sqlite($c) => $sqlite,
            Conn::Postgres { conn, .. } => {
                let $c = &mut *conn.borrow_mut();
                $pg
            }
        }
    };
}

/// Like `dispatch!`, for methods taking `&mut self`.
macro_rules! dispatch_mut {
    ($store:expr, $c:ident => $sqlite:expr, $pg:expr) => {
        match &mut $store.conn {
            Conn::Sqlite($c) => $sqlite,
            Conn::Postgres { conn, .. } => {
                let $c = conn.get_mut();
                $pg
            }
        }
    };
}
pub(crate) use {dispatch, dispatch_mut};

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
        Ok(Self {
            conn: Conn::Sqlite(sqlite::open(path)?),
            path: Some(path.to_path_buf()),
        })
    }

    /// Opens a key store that lives in memory only and vanishes on drop: for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            conn: Conn::Sqlite(sqlite::open_in_memory()?),
            path: None,
        })
    }

    /// Opens the key store named by `url`:
    ///
    /// - `sqlite:PATH` — the SQLite file `PATH`, as [`Self::open`] (`PATH` is taken as it is,
    ///   without percent-decoding; a leading `//` is dropped, so `sqlite:///var/lib/k.db` is
    ///   `/var/lib/k.db` and `sqlite://k.db` is `k.db`). `sqlite::memory:` is
    ///   [`Self::open_in_memory`].
    /// - `postgres://…` or `postgresql://…` — a PostgreSQL database, in libpq's URL form
    ///   (`postgres://user:password@host:port/dbname?param=value`, as the `postgres` crate
    ///   parses it; no TLS). The schema is created at the first open; see the
    ///   [crate documentation](crate).
    ///
    /// Anything else gives [`StoreError::UnsupportedUrl`]; a PostgreSQL server that cannot be
    /// reached or logged in to gives [`StoreError::OpenPostgres`]. No error shows the URL's
    /// password.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            return match path {
                "" => Err(StoreError::UnsupportedUrl {
                    url: url.to_owned(),
                }),
                ":memory:" => Self::open_in_memory(),
                _ => Self::open(Path::new(path)),
            };
        }
        if pg::is_postgres_url(url) {
            let (conn, shown) = pg::open(url)?;
            return Ok(Self {
                conn: Conn::Postgres {
                    url: shown,
                    conn: Box::new(RefCell::new(conn)),
                },
                path: None,
            });
        }
        Err(StoreError::UnsupportedUrl {
            url: pg::redact_url(url),
        })
    }

    /// The file of the store (`None` in memory and on PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Marks the MSK (`kd`, `msk_id`) as used by this process for as long as the store stays
    /// open, so that two senders never take up the same current MTK: `Ok(false)` if another
    /// holds it. On PostgreSQL a session advisory lock (it goes with the connection, and so
    /// with the process, even on `kill -9`; a lost and re-opened connection loses it). On
    /// SQLite always `Ok(true)`: there the caller takes a lock file beside the store file.
    pub fn lock_msk_for_session(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<bool, StoreError> {
        dispatch_mut!(self, _c => Ok(true), pg::lock_msk_for_session(_c, kd, msk_id))
    }

    /// Which backend holds the state: `"sqlite"` or `"postgres"`.
    pub fn url_kind(&self) -> &'static str {
        match self.conn {
            Conn::Sqlite(_) => "sqlite",
            Conn::Postgres { .. } => "postgres",
        }
    }

    /// Stores the MSK of `service` (a name like `"tv1"`) and makes it the service's current
    /// MSK. A service has at most one current MSK; putting another MSK (another Key Domain ID
    /// or MSK ID) replaces it, and the MSKs stay stored.
    ///
    /// Putting an MSK that is already stored is fine if it is identical (key, validity, CSB ID
    /// and RAND); otherwise [`StoreError::MskConflict`], and nothing changes. Several services
    /// may share one MSK. Committed before return.
    pub fn put_msk(&mut self, service: &str, msk: &MskFile) -> Result<(), StoreError> {
        dispatch_mut!(self, c =>
            sqlite::put_msk(c, Some(service), msk),
            pg::put_msk(c, Some(service), msk))
    }

    /// Stores an MSK without making it any service's current MSK: the BM-SC's *next* MSK,
    /// delivered ahead of its use. Same rules as [`Self::put_msk`] for an MSK already stored.
    /// Committed before return.
    pub fn put_next_msk(&mut self, msk: &MskFile) -> Result<(), StoreError> {
        dispatch_mut!(self, c => sqlite::put_msk(c, None, msk), pg::put_msk(c, None, msk))
    }

    /// The current MSK of `service`, if any.
    pub fn current_msk(&self, service: &str) -> Result<Option<MskFile>, StoreError> {
        dispatch!(self, c => sqlite::current_msk(c, service), pg::current_msk(c, service))
    }

    /// The highest MSK ID stored under Key Domain ID `kd` (any service), if any: a new MSK of
    /// that key domain takes a higher one.
    pub fn highest_msk_id(&self, kd: KeyDomainId) -> Result<Option<MskId>, StoreError> {
        dispatch!(self, c => sqlite::highest_msk_id(c, kd), pg::highest_msk_id(c, kd))
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
        dispatch_mut!(self, c =>
            sqlite::reserve_mtk_ids(c, kd, msk_id, validity, n),
            pg::reserve_mtk_ids(c, kd, msk_id, validity, n))
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
        dispatch_mut!(self, c =>
            sqlite::reserve_counters(c, kd, msk_id, n),
            pg::reserve_counters(c, kd, msk_id, n))
    }

    /// The highest MIKEY counter value ever reserved for the MSK (`None` if none).
    pub fn counter_high_water(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Option<u32>, StoreError> {
        dispatch!(self, c =>
            sqlite::counter_high_water(c, kd, msk_id),
            pg::counter_high_water(c, kd, msk_id))
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
        dispatch_mut!(self, c =>
            sqlite::set_current_mtk(c, kd, msk_id, mtk_id, message),
            pg::set_current_mtk(c, kd, msk_id, mtk_id, message))
    }

    /// The current MTK of the MSK (`kd`, `msk_id`): its ID and sealed MTK message.
    pub fn current_mtk(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<Option<(MtkId, Vec<u8>)>, StoreError> {
        dispatch!(self, c =>
            sqlite::current_mtk(c, kd, msk_id),
            pg::current_mtk(c, kd, msk_id))
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
        dispatch_mut!(self, c =>
            sqlite::reserve_srtp_indexes(c, kd, msk_id, mtk_id, &checked),
            pg::reserve_srtp_indexes(c, kd, msk_id, mtk_id, &checked))
    }

    /// All `(ssrc, reserved high-water mark)` pairs of the MTK (`kd`, `msk_id`, `mtk_id`), by
    /// SSRC.
    pub fn srtp_reservations(
        &self,
        kd: KeyDomainId,
        msk_id: MskId,
        mtk_id: MtkId,
    ) -> Result<Vec<(u32, u64)>, StoreError> {
        dispatch!(self, c =>
            sqlite::srtp_reservations(c, kd, msk_id, mtk_id),
            pg::srtp_reservations(c, kd, msk_id, mtk_id))
    }
}
