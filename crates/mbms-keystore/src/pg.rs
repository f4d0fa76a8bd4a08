//! The PostgreSQL backend: the tables of SQLite schema version 2 (`BYTEA`, `BIGINT`, `TEXT`,
//! the same CHECK constraints) plus `mbms_meta`, shared by every instance that opens the same
//! database.
//!
//! Concurrency: every method that writes is one transaction (`READ COMMITTED`), committed
//! before it returns. Those that read a high-water mark and then raise it first take
//! `pg_advisory_xact_lock` on a key made of the MSK's Key Domain ID and MSK ID, so they run one
//! after the other across connections, and each statement after the lock sees what the
//! previous holder committed. MUK counters lock their UE rows in B-TID order. A transaction
//! that fails with a serialization failure or a deadlock is run again, up to [`RETRIES`]
//! times.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use mbms_core::keyfile::MskFile;
use mbms_core::srtp::SRTP_MAX_PACKETS;
use mbms_core::{CsbId, KeyDomainId, Mrk, Msk, MskId, MtkId, MtkIdInterval, Muk};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement, Transaction};

use crate::bmsc::{Registration, UeKeys, opt_u64};
use crate::{SCHEMA_VERSION, StoreError, msk_key, next_counter_block, next_mtk_block};

/// How often a transaction that failed with a serialization failure or deadlock is retried.
const RETRIES: usize = 3;

/// Advisory lock held while the schema is checked or created ("MBMSSCHM").
const SCHEMA_LOCK: i64 = 0x4d42_4d53_5343_484d;

/// Tag in the top byte of the advisory lock keys of MSKs: below it, 24 bits of Key Domain ID
/// and 32 bits of MSK ID, so the keys of two MSKs never collide (nor with [`SCHEMA_LOCK`]).
const MSK_LOCK_TAG: i64 = 0x01 << 56;

/// `lock_timeout` of every session: like SQLite's busy timeout.
const LOCK_TIMEOUT: &str = "5s";

/// Connection timeout unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Up to this many UEs go into one statement of [`put_ues`].
const UE_CHUNK: usize = 1000;

/// The schema, created in one transaction at the first open. The same tables and CHECK
/// constraints as SQLite schema version 2.
const SCHEMA: &str = "
CREATE TABLE mbms_meta (
    key           TEXT   NOT NULL PRIMARY KEY,
    value         TEXT   NOT NULL
);

CREATE TABLE msk (
    key_domain_id BYTEA  NOT NULL CHECK (octet_length(key_domain_id) = 3),
    msk_id        BIGINT NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    msk           BYTEA  NOT NULL CHECK (octet_length(msk) = 16),
    mtk_id_from   BIGINT NOT NULL CHECK (mtk_id_from BETWEEN 0 AND 65535),
    mtk_id_to     BIGINT NOT NULL CHECK (mtk_id_to BETWEEN mtk_id_from AND 65535),
    csb_id        BIGINT NOT NULL CHECK (csb_id BETWEEN 0 AND 4294967295),
    rand          BYTEA           CHECK (rand IS NULL OR octet_length(rand) = 16),
    PRIMARY KEY (key_domain_id, msk_id)
);

CREATE TABLE service (
    name          TEXT   NOT NULL PRIMARY KEY,
    key_domain_id BYTEA  NOT NULL,
    msk_id        BIGINT NOT NULL,
    FOREIGN KEY (key_domain_id, msk_id) REFERENCES msk (key_domain_id, msk_id)
);

CREATE TABLE mtk_id_block (
    key_domain_id BYTEA  NOT NULL CHECK (octet_length(key_domain_id) = 3),
    msk_id        BIGINT NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    first         BIGINT NOT NULL CHECK (first BETWEEN 0 AND 65535),
    last          BIGINT NOT NULL CHECK (last BETWEEN first AND 65535),
    PRIMARY KEY (key_domain_id, msk_id, first)
);

CREATE TABLE mikey_counter (
    key_domain_id BYTEA  NOT NULL CHECK (octet_length(key_domain_id) = 3),
    msk_id        BIGINT NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    high          BIGINT NOT NULL CHECK (high BETWEEN 1 AND 4294967295),
    PRIMARY KEY (key_domain_id, msk_id)
);

CREATE TABLE current_mtk (
    key_domain_id BYTEA  NOT NULL CHECK (octet_length(key_domain_id) = 3),
    msk_id        BIGINT NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    mtk_id        BIGINT NOT NULL CHECK (mtk_id BETWEEN 0 AND 65535),
    message       BYTEA  NOT NULL,
    PRIMARY KEY (key_domain_id, msk_id)
);

CREATE TABLE srtp_index (
    key_domain_id BYTEA  NOT NULL CHECK (octet_length(key_domain_id) = 3),
    msk_id        BIGINT NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
    mtk_id        BIGINT NOT NULL CHECK (mtk_id BETWEEN 0 AND 65535),
    ssrc          BIGINT NOT NULL CHECK (ssrc BETWEEN 0 AND 4294967295),
    high          BIGINT NOT NULL CHECK (high BETWEEN 0 AND 281474976710656),
    PRIMARY KEY (key_domain_id, msk_id, mtk_id, ssrc)
);

CREATE TABLE ue (
    btid          TEXT   NOT NULL PRIMARY KEY CHECK (length(btid) BETWEEN 1 AND 255),
    muk           BYTEA  NOT NULL CHECK (octet_length(muk) = 32),
    mrk           BYTEA  NOT NULL CHECK (octet_length(mrk) = 32),
    expires       BIGINT          CHECK (expires IS NULL OR expires >= 0),
    counter       BIGINT NOT NULL DEFAULT 0 CHECK (counter BETWEEN 0 AND 4294967295)
);

CREATE TABLE registration (
    btid          TEXT   NOT NULL REFERENCES ue (btid) ON DELETE CASCADE,
    service       TEXT   NOT NULL CHECK (length(service) BETWEEN 1 AND 1024),
    ue_addr       TEXT   NOT NULL,
    since         BIGINT NOT NULL CHECK (since >= 0),
    PRIMARY KEY (btid, service)
);

CREATE INDEX registration_by_service ON registration (service);
";

/// Added by schema version 3 (as in SQLite): the floor of every MUK's timestamp counter and a
/// covering index for listing a service's registrations in byte order.
const SCHEMA_V3: &str = "
DROP INDEX registration_by_service;
CREATE INDEX registration_by_service ON registration (service, btid COLLATE \"C\") INCLUDE (ue_addr);

CREATE TABLE muk_floor (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    high          BIGINT  NOT NULL CHECK (high BETWEEN 0 AND 4294967295)
);

INSERT INTO muk_floor (id, high) VALUES (1, 0);
";

/// An error of the PostgreSQL client or server. It is shown as the server's severity,
/// SQLSTATE and message, without the DETAIL and HINT fields, which can quote a row's values
/// (key bytes among them); [`Self::get_ref`] gives the whole error.
pub struct PostgresError(postgres::Error);

impl PostgresError {
    /// The SQLSTATE code (`"40001"`, …) of an error the server reported.
    pub fn code(&self) -> Option<&str> {
        self.0.code().map(SqlState::code)
    }

    /// The error of the `postgres` crate. Mind that its `Debug` and its source's `Display`
    /// show the server's DETAIL, which can quote the values of a row.
    pub fn get_ref(&self) -> &postgres::Error {
        &self.0
    }

    /// A serialization failure or deadlock: running the transaction again can succeed.
    fn is_transient(&self) -> bool {
        matches!(
            self.0.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
        )
    }
}

impl From<postgres::Error> for PostgresError {
    fn from(e: postgres::Error) -> Self {
        Self(e)
    }
}

impl core::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            return write!(
                f,
                "{} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            );
        }
        write!(f, "{}", self.0)?;
        // Not a server error: an I/O error, a bad connection string (the parser's messages
        // name options, not their values), a type mismatch.
        if let Some(source) = std::error::Error::source(&self.0) {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for PostgresError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("PostgresError")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// No source: the `postgres` crate's error would show the server's DETAIL.
impl std::error::Error for PostgresError {}

/// Whether `url` names a PostgreSQL database.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Decodes `%XX` escapes (leaving malformed ones as they are).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `url` without its password, to be shown: the password of the user info (split as the
/// `postgres` crate splits it: up to the first `@`, after the first `:`) and any `password`
/// query parameter are dropped. A string that is no `scheme://` URL and mentions a password
/// is not shown at all.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(i) = url.find("://") else {
        return if url.to_ascii_lowercase().contains("password") {
            "(connection string not shown: it holds a password)".to_owned()
        } else {
            url.to_owned()
        };
    };
    let (scheme, rest) = url.split_at(i + 3);
    let mut out = String::from(scheme);
    let rest = match rest.split_once('@') {
        Some((creds, rest)) => {
            out.push_str(creds.split_once(':').map_or(creds, |(user, _)| user));
            out.push('@');
            rest
        }
        None => rest,
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    out.push_str(base);
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| {
                let key = p.split_once('=').map_or(*p, |(k, _)| k);
                percent_decode(key) != b"password"
            })
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

/// A connection to the store's database, with its prepared statements.
pub(crate) struct PgConn {
    client: Client,
    /// To connect again when the connection was closed.
    config: Config,
    /// Statements prepared on this connection, by SQL text.
    statements: HashMap<&'static str, Statement>,
}

/// A client or a transaction, with the connection's prepared statements.
struct Db<'a, C> {
    client: &'a mut C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Db<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.client.query(&s, params)?)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.client.query_opt(&s, params)?)
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.client.query_one(&s, params)?)
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.client.execute(&s, params)?)
    }
}

/// Connects and sets the session up: `lock_timeout`, and `synchronous_commit` back to `on` if
/// the server's default turned it off (every other value makes `COMMIT` durable).
fn connect(config: &Config) -> Result<Client, postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(&format!(
        "SET lock_timeout = '{LOCK_TIMEOUT}'; \
         SELECT set_config('synchronous_commit', 'on', false) \
         WHERE current_setting('synchronous_commit') = 'off'"
    ))?;
    Ok(client)
}

/// Connects to the database of `url` and checks (or creates) the schema. Returns the
/// connection and the URL to show (without password).
pub(crate) fn open(url: &str) -> Result<(PgConn, String), StoreError> {
    let shown = redact_url(url);
    let failed = |source: PostgresError| StoreError::OpenPostgres {
        url: shown.clone(),
        source,
    };
    let mut config: Config = url.parse().map_err(|e: postgres::Error| failed(e.into()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let client = connect(&config).map_err(|e| failed(e.into()))?;
    let mut conn = PgConn {
        client,
        config,
        statements: HashMap::new(),
    };
    conn.set_up(&shown).map_err(|e| match e {
        StoreError::Postgres(source) => failed(source),
        e => e,
    })?;
    Ok((conn, shown))
}

impl PgConn {
    /// Checks the schema, creating it in an empty database, under [`SCHEMA_LOCK`].
    fn set_up(&mut self, shown: &str) -> Result<(), StoreError> {
        self.write(Some(SCHEMA_LOCK), |db| {
            let row = db.query_one(
                "SELECT count(*) FILTER (WHERE tablename = 'mbms_meta'), count(*) \
                 FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
                &[],
            )?;
            let (meta, tables): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            if meta == 0 {
                if tables != 0 {
                    return Err(StoreError::ForeignDatabase { path: shown.into() });
                }
                db.client.batch_execute(SCHEMA)?;
                db.client.batch_execute(SCHEMA_V3)?;
                db.execute(
                    "INSERT INTO mbms_meta (key, value) VALUES ('schema_version', $1)",
                    &[&SCHEMA_VERSION.to_string()],
                )?;
                return Ok(());
            }
            let version = db
                .query_opt(
                    "SELECT value FROM mbms_meta WHERE key = 'schema_version'",
                    &[],
                )?
                .and_then(|row| row.try_get::<_, String>(0).ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or(StoreError::Corrupt("mbms_meta.schema_version"))?;
            match version {
                v if v == i64::from(SCHEMA_VERSION) => Ok(()),
                2 => {
                    db.client.batch_execute(SCHEMA_V3)?;
                    db.execute(
                        "UPDATE mbms_meta SET value = $1 WHERE key = 'schema_version'",
                        &[&SCHEMA_VERSION.to_string()],
                    )?;
                    Ok(())
                }
                v if v > i64::from(SCHEMA_VERSION) => Err(StoreError::NewerSchema {
                    path: shown.into(),
                    found: v,
                    supported: SCHEMA_VERSION,
                }),
                _ => Err(StoreError::ForeignDatabase { path: shown.into() }),
            }
        })
    }

    /// Connects again if the connection was closed (the server restarted, the network
    /// failed): the call that saw it fail has returned an error already.
    fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            self.client = connect(&self.config)?;
            self.statements.clear();
        }
        Ok(())
    }

    /// The connection, for reads outside a transaction (each statement is its own).
    fn read(&mut self) -> Result<Db<'_, Client>, StoreError> {
        self.ensure_open()?;
        Ok(Db {
            client: &mut self.client,
            statements: &mut self.statements,
        })
    }

    /// Runs `f` in a transaction, after taking the advisory lock `lock` if any, and commits
    /// if `f` succeeds (rolls back otherwise). A serialization failure or deadlock runs it
    /// again, up to [`RETRIES`] times.
    fn write<T>(
        &mut self,
        lock: Option<i64>,
        mut f: impl FnMut(&mut Db<'_, Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.ensure_open()?;
        let mut retries = 0;
        loop {
            match self.attempt(lock, &mut f) {
                Err(StoreError::Postgres(e)) if retries < RETRIES && e.is_transient() => {
                    retries += 1;
                }
                result => return result,
            }
        }
    }

    fn attempt<T>(
        &mut self,
        lock: Option<i64>,
        f: &mut impl FnMut(&mut Db<'_, Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.client.transaction()?;
        let value = {
            let mut db = Db {
                client: &mut tx,
                statements: &mut self.statements,
            };
            if let Some(key) = lock {
                db.execute("SELECT pg_advisory_xact_lock($1)", &[&key])?;
            }
            f(&mut db)?
        };
        tx.commit()?;
        Ok(value)
    }
}

/// The advisory lock key of the MSK (`kd`, `msk_id`).
fn msk_lock(kd: KeyDomainId, msk_id: MskId) -> i64 {
    let [a, b, c] = kd.0;
    MSK_LOCK_TAG | i64::from(u32::from_be_bytes([0, a, b, c])) << 32 | i64::from(msk_id.0)
}

/// A `BIGINT` column converted to `T`, or [`StoreError::Corrupt`].
fn int<T: TryFrom<i64>>(row: &Row, idx: usize, what: &'static str) -> Result<T, StoreError> {
    let v: i64 = row.try_get(idx).map_err(|_| StoreError::Corrupt(what))?;
    T::try_from(v).map_err(|_| StoreError::Corrupt(what))
}

/// A nullable `BIGINT` column converted to `T`, or [`StoreError::Corrupt`].
fn opt_int<T: TryFrom<i64>>(
    row: &Row,
    idx: usize,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    let v: Option<i64> = row.try_get(idx).map_err(|_| StoreError::Corrupt(what))?;
    v.map(|v| T::try_from(v).map_err(|_| StoreError::Corrupt(what)))
        .transpose()
}

/// A `BYTEA` column, or [`StoreError::Corrupt`].
fn bytes<'r>(row: &'r Row, idx: usize, what: &'static str) -> Result<&'r [u8], StoreError> {
    row.try_get(idx).map_err(|_| StoreError::Corrupt(what))
}

/// A `BYTEA` column of exactly `N` bytes, or [`StoreError::Corrupt`].
fn bytes_array<const N: usize>(
    row: &Row,
    idx: usize,
    what: &'static str,
) -> Result<[u8; N], StoreError> {
    bytes(row, idx, what)?
        .try_into()
        .map_err(|_| StoreError::Corrupt(what))
}

/// Columns of the `msk` table in the order [`msk_from_row`] reads them.
macro_rules! msk_columns {
    () => {
        "m.key_domain_id, m.msk_id, m.msk, m.mtk_id_from, m.mtk_id_to, m.csb_id, m.rand"
    };
}

fn msk_from_row(row: &Row) -> Result<MskFile, StoreError> {
    let key_domain_id = KeyDomainId(bytes_array::<3>(row, 0, "msk.key_domain_id")?);
    let msk_id = MskId(int::<u32>(row, 1, "msk.msk_id")?);
    let msk = Msk::from_slice(bytes(row, 2, "msk.msk")?).ok_or(StoreError::Corrupt("msk.msk"))?;
    let from = MtkId(int::<u16>(row, 3, "msk.mtk_id_from")?);
    let to = MtkId(int::<u16>(row, 4, "msk.mtk_id_to")?);
    if from > to {
        return Err(StoreError::Corrupt("msk.mtk_id_to"));
    }
    let csb_id = CsbId(int::<u32>(row, 5, "msk.csb_id")?);
    let rand = row
        .try_get::<_, Option<&[u8]>>(6)
        .map_err(|_| StoreError::Corrupt("msk.rand"))?
        .map(|b| b.try_into().map_err(|_| StoreError::Corrupt("msk.rand")))
        .transpose()?;
    Ok(MskFile {
        key_domain_id,
        msk_id,
        msk,
        validity: MtkIdInterval { from, to },
        csb_id,
        rand,
    })
}

fn stored_msk<C: GenericClient>(
    db: &mut Db<'_, C>,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<MskFile>, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    let kd: &[u8] = &kd;
    db.query_opt(
        concat!(
            "SELECT ",
            msk_columns!(),
            " FROM msk AS m WHERE m.key_domain_id = $1 AND m.msk_id = $2"
        ),
        &[&kd, &id],
    )?
    .map(|row| msk_from_row(&row))
    .transpose()
}

/// Whether `mtk_id` lies in a block reserved for the MSK.
fn is_reserved<C: GenericClient>(
    db: &mut Db<'_, C>,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
) -> Result<bool, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    let kd: &[u8] = &kd;
    Ok(db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM mtk_id_block \
             WHERE key_domain_id = $1 AND msk_id = $2 AND first <= $3 AND last >= $3)",
            &[&kd, &id, &i64::from(mtk_id.0)],
        )?
        .try_get(0)?)
}

fn current_mtk_of<C: GenericClient>(
    db: &mut Db<'_, C>,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<(MtkId, Vec<u8>)>, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    let kd: &[u8] = &kd;
    db.query_opt(
        "SELECT mtk_id, message FROM current_mtk WHERE key_domain_id = $1 AND msk_id = $2",
        &[&kd, &id],
    )?
    .map(|row| {
        Ok((
            MtkId(int::<u16>(&row, 0, "current_mtk.mtk_id")?),
            bytes(&row, 1, "current_mtk.message")?.to_vec(),
        ))
    })
    .transpose()
}

fn high_counter<C: GenericClient>(
    db: &mut Db<'_, C>,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<u32>, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    let kd: &[u8] = &kd;
    db.query_opt(
        "SELECT high FROM mikey_counter WHERE key_domain_id = $1 AND msk_id = $2",
        &[&kd, &id],
    )?
    .map(|row| int::<u32>(&row, 0, "mikey_counter.high"))
    .transpose()
}

pub(crate) fn msk(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<MskFile>, StoreError> {
    stored_msk(&mut pg.read()?, kd, msk_id)
}

/// Stores `msk` and, with a service, makes it the service's current MSK.
pub(crate) fn put_msk(
    pg: &mut PgConn,
    service: Option<&str>,
    msk: &MskFile,
) -> Result<(), StoreError> {
    let (kd, id) = msk_key(msk.key_domain_id, msk.msk_id);
    let kd: &[u8] = &kd;
    pg.write(Some(msk_lock(msk.key_domain_id, msk.msk_id)), |db| {
        match stored_msk(db, msk.key_domain_id, msk.msk_id)? {
            Some(old) if old != *msk => {
                return Err(StoreError::MskConflict {
                    key_domain_id: msk.key_domain_id,
                    msk_id: msk.msk_id,
                });
            }
            Some(_) => {}
            None => {
                let key: &[u8] = &msk.msk.expose()[..];
                let rand: Option<&[u8]> = msk.rand.as_ref().map(|r| &r[..]);
                db.execute(
                    "INSERT INTO msk (key_domain_id, msk_id, msk, mtk_id_from, mtk_id_to, \
                     csb_id, rand) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &kd,
                        &id,
                        &key,
                        &i64::from(msk.validity.from.0),
                        &i64::from(msk.validity.to.0),
                        &i64::from(msk.csb_id.0),
                        &rand,
                    ],
                )?;
            }
        }
        if let Some(service) = service {
            db.execute(
                "INSERT INTO service (name, key_domain_id, msk_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET key_domain_id = EXCLUDED.key_domain_id, \
                 msk_id = EXCLUDED.msk_id",
                &[&service, &kd, &id],
            )?;
        }
        Ok(())
    })
}

pub(crate) fn current_msk(pg: &mut PgConn, service: &str) -> Result<Option<MskFile>, StoreError> {
    pg.read()?
        .query_opt(
            concat!(
                "SELECT ",
                msk_columns!(),
                " FROM service AS s JOIN msk AS m \
                 ON m.key_domain_id = s.key_domain_id AND m.msk_id = s.msk_id WHERE s.name = $1"
            ),
            &[&service],
        )?
        .map(|row| msk_from_row(&row))
        .transpose()
}

pub(crate) fn highest_msk_id(
    pg: &mut PgConn,
    kd: KeyDomainId,
) -> Result<Option<MskId>, StoreError> {
    let kd: &[u8] = &kd.0;
    let row = pg.read()?.query_one(
        "SELECT max(msk_id) FROM msk WHERE key_domain_id = $1",
        &[&kd],
    )?;
    Ok(opt_int::<u32>(&row, 0, "msk.msk_id")?.map(MskId))
}

/// `n` is not 0.
pub(crate) fn reserve_mtk_ids(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
    validity: MtkIdInterval,
    n: u16,
) -> Result<RangeInclusive<u16>, StoreError> {
    let (kd_bytes, id) = msk_key(kd, msk_id);
    let kd_bytes: &[u8] = &kd_bytes;
    pg.write(Some(msk_lock(kd, msk_id)), |db| {
        let row = db.query_one(
            "SELECT max(last) FROM mtk_id_block WHERE key_domain_id = $1 AND msk_id = $2",
            &[&kd_bytes, &id],
        )?;
        let high = opt_int::<u16>(&row, 0, "mtk_id_block.last")?;
        let (start, end) =
            next_mtk_block(high, validity, n).ok_or(StoreError::MtkIdsExhausted {
                key_domain_id: kd,
                msk_id,
                validity,
            })?;
        db.execute(
            "INSERT INTO mtk_id_block (key_domain_id, msk_id, first, last) \
             VALUES ($1, $2, $3, $4)",
            &[&kd_bytes, &id, &i64::from(start), &i64::from(end)],
        )?;
        Ok(start..=end)
    })
}

/// `n` is not 0.
pub(crate) fn reserve_counters(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
    n: u32,
) -> Result<RangeInclusive<u32>, StoreError> {
    let (kd_bytes, id) = msk_key(kd, msk_id);
    let kd_bytes: &[u8] = &kd_bytes;
    pg.write(Some(msk_lock(kd, msk_id)), |db| {
        let high = high_counter(db, kd, msk_id)?;
        let (start, end) = next_counter_block(high, n).ok_or(StoreError::CountersExhausted {
            key_domain_id: kd,
            msk_id,
        })?;
        db.execute(
            "INSERT INTO mikey_counter (key_domain_id, msk_id, high) VALUES ($1, $2, $3) \
             ON CONFLICT (key_domain_id, msk_id) DO UPDATE SET high = EXCLUDED.high",
            &[&kd_bytes, &id, &i64::from(end)],
        )?;
        Ok(start..=end)
    })
}

pub(crate) fn counter_high_water(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<u32>, StoreError> {
    high_counter(&mut pg.read()?, kd, msk_id)
}

pub(crate) fn set_current_mtk(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
    message: &[u8],
) -> Result<(), StoreError> {
    let (kd_bytes, id) = msk_key(kd, msk_id);
    let kd_bytes: &[u8] = &kd_bytes;
    pg.write(Some(msk_lock(kd, msk_id)), |db| {
        if !is_reserved(db, kd, msk_id, mtk_id)? {
            return Err(StoreError::NotReserved {
                key_domain_id: kd,
                msk_id,
                mtk_id,
            });
        }
        if let Some((current, old)) = current_mtk_of(db, kd, msk_id)? {
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
        db.execute(
            "INSERT INTO current_mtk (key_domain_id, msk_id, mtk_id, message) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_domain_id, msk_id) DO UPDATE \
             SET mtk_id = EXCLUDED.mtk_id, message = EXCLUDED.message",
            &[&kd_bytes, &id, &i64::from(mtk_id.0), &message],
        )?;
        Ok(())
    })
}

pub(crate) fn current_mtk(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Option<(MtkId, Vec<u8>)>, StoreError> {
    current_mtk_of(&mut pg.read()?, kd, msk_id)
}

/// `checked`: `(ssrc, upto)` pairs already checked against 2^48.
pub(crate) fn reserve_srtp_indexes(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
    checked: &[(u32, i64)],
) -> Result<(), StoreError> {
    let (kd_bytes, id) = msk_key(kd, msk_id);
    let kd_bytes: &[u8] = &kd_bytes;
    let mtk = i64::from(mtk_id.0);
    pg.write(Some(msk_lock(kd, msk_id)), |db| {
        if !is_reserved(db, kd, msk_id, mtk_id)? {
            return Err(StoreError::NotReserved {
                key_domain_id: kd,
                msk_id,
                mtk_id,
            });
        }
        for &(ssrc, upto) in checked {
            db.execute(
                "INSERT INTO srtp_index (key_domain_id, msk_id, mtk_id, ssrc, high) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (key_domain_id, msk_id, mtk_id, ssrc) \
                 DO UPDATE SET high = GREATEST(srtp_index.high, EXCLUDED.high)",
                &[&kd_bytes, &id, &mtk, &i64::from(ssrc), &upto],
            )?;
        }
        Ok(())
    })
}

pub(crate) fn srtp_reservations(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
) -> Result<Vec<(u32, u64)>, StoreError> {
    let (kd_bytes, id) = msk_key(kd, msk_id);
    let kd_bytes: &[u8] = &kd_bytes;
    let rows = pg.read()?.query(
        "SELECT ssrc, high FROM srtp_index \
         WHERE key_domain_id = $1 AND msk_id = $2 AND mtk_id = $3 ORDER BY ssrc",
        &[&kd_bytes, &id, &i64::from(mtk_id.0)],
    )?;
    rows.iter()
        .map(|row| {
            let ssrc = int::<u32>(row, 0, "srtp_index.ssrc")?;
            let high = int::<u64>(row, 1, "srtp_index.high")?;
            if high > SRTP_MAX_PACKETS {
                return Err(StoreError::Corrupt("srtp_index.high"));
            }
            Ok((ssrc, high))
        })
        .collect()
}

// --- The BM-SC's tables ---

/// `expires` is the checked `keys.expires`.
pub(crate) fn put_ue(
    pg: &mut PgConn,
    btid: &str,
    keys: &UeKeys,
    expires: Option<i64>,
) -> Result<(), StoreError> {
    let muk: &[u8] = &keys.muk.expose()[..];
    let mrk: &[u8] = &keys.mrk.expose()[..];
    pg.write(None, |db| {
        db.execute(
            "INSERT INTO ue (btid, muk, mrk, expires) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (btid) DO UPDATE SET muk = EXCLUDED.muk, mrk = EXCLUDED.mrk, \
             expires = EXCLUDED.expires",
            &[&btid, &muk, &mrk, &expires],
        )?;
        Ok(())
    })
}

/// MUK, MRK and expiry of a UE, as bound to a statement.
type UeRow<'a> = (&'a [u8], &'a [u8], Option<i64>);

/// In chunks of [`UE_CHUNK`] rows per statement, in B-TID order (so that two instances
/// provisioning overlapping sets lock rows in the same order); the last keys of a B-TID
/// listed twice win, as in SQLite.
pub(crate) fn put_ues<'a>(
    pg: &mut PgConn,
    ues: impl IntoIterator<Item = (&'a str, &'a UeKeys)>,
) -> Result<(), StoreError> {
    let mut rows: BTreeMap<&str, UeRow<'_>> = BTreeMap::new();
    for (btid, keys) in ues {
        let row = (
            &keys.muk.expose()[..],
            &keys.mrk.expose()[..],
            opt_u64(keys.expires)?,
        );
        rows.insert(btid, row);
    }
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = rows.into_iter().collect();
    pg.write(None, |db| {
        for chunk in rows.chunks(UE_CHUNK) {
            let btids: Vec<&str> = chunk.iter().map(|(b, _)| *b).collect();
            let muks: Vec<&[u8]> = chunk.iter().map(|(_, r)| r.0).collect();
            let mrks: Vec<&[u8]> = chunk.iter().map(|(_, r)| r.1).collect();
            let expires: Vec<Option<i64>> = chunk.iter().map(|(_, r)| r.2).collect();
            db.execute(
                "INSERT INTO ue (btid, muk, mrk, expires) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bigint[]) \
                 ON CONFLICT (btid) DO UPDATE SET muk = EXCLUDED.muk, mrk = EXCLUDED.mrk, \
                 expires = EXCLUDED.expires",
                &[&btids, &muks, &mrks, &expires],
            )?;
        }
        Ok(())
    })
}

pub(crate) fn ue(pg: &mut PgConn, btid: &str) -> Result<Option<UeKeys>, StoreError> {
    let Some(row) = pg
        .read()?
        .query_opt("SELECT muk, mrk, expires FROM ue WHERE btid = $1", &[&btid])?
    else {
        return Ok(None);
    };
    let muk = Muk::from_bytes(bytes_array::<32>(&row, 0, "ue.muk")?);
    let mrk = Mrk::from_bytes(bytes_array::<32>(&row, 1, "ue.mrk")?);
    let expires = opt_int::<u64>(&row, 2, "ue.expires")?;
    Ok(Some(UeKeys { muk, mrk, expires }))
}

pub(crate) fn remove_ue(pg: &mut PgConn, btid: &str) -> Result<bool, StoreError> {
    pg.write(None, |db| {
        Ok(db.execute("DELETE FROM ue WHERE btid = $1", &[&btid])? > 0)
    })
}

/// Takes the session-level advisory lock of one sender on the MSK (`kd`, `msk_id`), held
/// until the connection closes (the process ends): `false` if another session holds it.
pub(crate) fn lock_msk_for_session(
    pg: &mut PgConn,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<bool, StoreError> {
    // Tag 0x02 in the top byte: apart from the transaction locks of the same MSK (0x01).
    let key = (msk_lock(kd, msk_id) & !(0xff_i64 << 56)) | (0x02_i64 << 56);
    let row = pg
        .read()?
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?;
    row.try_get::<_, bool>(0)
        .map_err(|_| StoreError::Corrupt("pg_try_advisory_lock"))
}

pub(crate) fn ue_count(pg: &mut PgConn) -> Result<u64, StoreError> {
    let row = pg.read()?.query_one("SELECT count(*) FROM ue", &[])?;
    int::<u64>(&row, 0, "ue count")
}

/// `now` is the checked time of registration.
pub(crate) fn register(
    pg: &mut PgConn,
    btid: &str,
    services: &[&str],
    ue_addr: IpAddr,
    now: i64,
) -> Result<(), StoreError> {
    let addr = ue_addr.to_string();
    // The same rows in the same order in every transaction: no deadlock between two
    // registrations of one UE.
    let mut sorted = services.to_vec();
    sorted.sort_unstable();
    pg.write(None, |db| {
        // Keeps the UE from being removed until the registrations are in.
        if db
            .query_opt("SELECT 1 FROM ue WHERE btid = $1 FOR KEY SHARE", &[&btid])?
            .is_none()
        {
            return Err(StoreError::UnknownUe);
        }
        for service in &sorted {
            db.execute(
                "INSERT INTO registration (btid, service, ue_addr, since) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (btid, service) \
                 DO UPDATE SET ue_addr = EXCLUDED.ue_addr, since = EXCLUDED.since",
                &[&btid, service, &addr, &now],
            )?;
        }
        Ok(())
    })
}

pub(crate) fn register_many(
    pg: &mut PgConn,
    items: &[(&str, &str, IpAddr)],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    // One row per (B-TID, service), the last item winning (ON CONFLICT may not touch a row
    // twice in one statement), in one order for every transaction (no deadlocks).
    let mut last: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for (btid, service, addr) in items {
        last.insert((*btid, *service), addr.to_string());
    }
    let stored: std::collections::HashSet<(String, String)> = pg.write(None, |db| {
        let mut stored = std::collections::HashSet::new();
        let keys: Vec<_> = last.iter().collect();
        for chunk in keys.chunks(10_000) {
            let btids: Vec<&str> = chunk.iter().map(|((b, _), _)| *b).collect();
            let services: Vec<&str> = chunk.iter().map(|((_, s), _)| *s).collect();
            let addrs: Vec<&str> = chunk.iter().map(|(_, a)| a.as_str()).collect();
            let rows = db.query(
                "INSERT INTO registration (btid, service, ue_addr, since) \
                 SELECT t.b, t.s, t.a, $4 FROM unnest($1::text[], $2::text[], $3::text[]) \
                 AS t(b, s, a) WHERE EXISTS (SELECT 1 FROM ue WHERE ue.btid = t.b) \
                 ON CONFLICT (btid, service) \
                 DO UPDATE SET ue_addr = EXCLUDED.ue_addr, since = EXCLUDED.since \
                 RETURNING btid, service",
                &[&btids, &services, &addrs, &now],
            )?;
            for row in rows {
                stored.insert((row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?));
            }
        }
        Ok(stored)
    })?;
    Ok(items
        .iter()
        .map(|(b, s, _)| stored.contains(&((*b).to_owned(), (*s).to_owned())))
        .collect())
}

pub(crate) fn deregister(
    pg: &mut PgConn,
    btid: &str,
    services: &[&str],
) -> Result<usize, StoreError> {
    let n = pg.write(None, |db| {
        db.execute(
            "DELETE FROM registration WHERE btid = $1 AND service = ANY($2)",
            &[&btid, &services],
        )
    })?;
    usize::try_from(n).map_err(|_| StoreError::Corrupt("registration count"))
}

fn parse_addr(addr: &str) -> Result<IpAddr, StoreError> {
    addr.parse()
        .map_err(|_| StoreError::Corrupt("registration.ue_addr"))
}

pub(crate) fn registration(
    pg: &mut PgConn,
    btid: &str,
    service: &str,
) -> Result<Option<IpAddr>, StoreError> {
    pg.read()?
        .query_opt(
            "SELECT ue_addr FROM registration WHERE btid = $1 AND service = $2",
            &[&btid, &service],
        )?
        .map(|row| parse_addr(row.try_get(0)?))
        .transpose()
}

pub(crate) fn registrations(
    pg: &mut PgConn,
    service: &str,
) -> Result<Vec<Registration>, StoreError> {
    // COLLATE "C": byte order, as SQLite's BINARY collation.
    let rows = pg.read()?.query(
        "SELECT btid, ue_addr FROM registration WHERE service = $1 ORDER BY btid COLLATE \"C\"",
        &[&service],
    )?;
    rows.iter()
        .map(|row| {
            Ok(Registration {
                btid: row.try_get(0)?,
                service: service.to_owned(),
                ue_addr: parse_addr(row.try_get(1)?)?,
            })
        })
        .collect()
}

pub(crate) fn services_for_msk(
    pg: &mut PgConn,
    btid: &str,
    kd: KeyDomainId,
    msk_id: MskId,
) -> Result<Vec<String>, StoreError> {
    let (kd, id) = msk_key(kd, msk_id);
    let kd: &[u8] = &kd;
    let rows = pg.read()?.query(
        "SELECT r.service FROM registration AS r JOIN service AS s ON s.name = r.service \
         WHERE r.btid = $1 AND s.key_domain_id = $2 AND s.msk_id = $3 \
         ORDER BY r.service COLLATE \"C\"",
        &[&btid, &kd, &id],
    )?;
    rows.iter()
        .map(|row| Ok(row.try_get::<_, String>(0)?))
        .collect()
}

/// The MUK counters of `btids` (and their MUKs if `with_keys`). The UE rows are locked
/// (`FOR NO KEY UPDATE`) in B-TID order, so two batches never deadlock, then the counters
/// are handed out in the order of `btids` and written back in one statement.
#[allow(clippy::type_complexity)]
fn reserve_muk(
    pg: &mut PgConn,
    btids: &[&str],
    with_keys: bool,
) -> Result<Vec<Option<(u32, Option<Muk>)>>, StoreError> {
    if btids.is_empty() {
        return Ok(Vec::new());
    }
    let mut distinct = btids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    pg.write(None, |db| {
        // Shared with a concurrent shared reservation (which takes it for update), so that
        // this one sees the floor that one raises, or that one sees the counters written here.
        let floor = muk_floor(db, false)?;
        let rows = if with_keys {
            db.query(
                "SELECT btid, counter, muk FROM ue WHERE btid = ANY($1) \
                 ORDER BY btid COLLATE \"C\" FOR NO KEY UPDATE",
                &[&distinct],
            )?
        } else {
            db.query(
                "SELECT btid, counter FROM ue WHERE btid = ANY($1) \
                 ORDER BY btid COLLATE \"C\" FOR NO KEY UPDATE",
                &[&distinct],
            )?
        };
        // B-TID -> (counter, MUK bytes, changed). Like SQLite's `UPDATE … WHERE counter <
        // 4294967295 RETURNING`, a counter at (or, damaged, above) the end gives `None`, and
        // the values handed out are checked, the stored ones are not.
        let mut ues: HashMap<String, (i64, Option<Vec<u8>>, bool)> = HashMap::new();
        for row in &rows {
            let btid: String = row.try_get(0)?;
            let stored: i64 = row
                .try_get(1)
                .map_err(|_| StoreError::Corrupt("ue.counter"))?;
            // A damaged counter (outside the range) is never raised or handed out: as one at
            // the end.
            let counter = if (0..=i64::from(u32::MAX)).contains(&stored) {
                stored.max(floor)
            } else {
                i64::from(u32::MAX)
            };
            let muk = if with_keys {
                Some(bytes(row, 2, "ue.muk")?.to_vec())
            } else {
                None
            };
            ues.insert(btid, (counter, muk, false));
        }
        let mut out = Vec::with_capacity(btids.len());
        for btid in btids {
            out.push(match ues.get_mut(*btid) {
                Some((counter, muk, changed)) if *counter < i64::from(u32::MAX) => {
                    *counter += 1;
                    *changed = true;
                    let value =
                        u32::try_from(*counter).map_err(|_| StoreError::Corrupt("ue.counter"))?;
                    let muk = muk
                        .as_deref()
                        .map(|b| Muk::from_slice(b).ok_or(StoreError::Corrupt("ue.muk")))
                        .transpose()?;
                    Some((value, muk))
                }
                _ => None,
            });
        }
        let (names, counters): (Vec<&str>, Vec<i64>) = ues
            .iter()
            .filter(|(_, (_, _, changed))| *changed)
            .map(|(btid, (counter, _, _))| (btid.as_str(), *counter))
            .unzip();
        write_counters(db, &names, &counters)?;
        Ok(out)
    })
}

pub(crate) fn reserve_muk_counters(
    pg: &mut PgConn,
    btids: &[&str],
) -> Result<Vec<Option<u32>>, StoreError> {
    Ok(reserve_muk(pg, btids, false)?
        .into_iter()
        .map(|item| item.map(|(counter, _)| counter))
        .collect())
}

pub(crate) fn reserve_muk_counters_with_keys(
    pg: &mut PgConn,
    btids: &[&str],
) -> Result<Vec<Option<(u32, Muk)>>, StoreError> {
    reserve_muk(pg, btids, true)?
        .into_iter()
        .map(|item| {
            item.map(|(counter, muk)| Ok((counter, muk.ok_or(StoreError::Corrupt("ue.muk"))?)))
                .transpose()
        })
        .collect()
}

/// The MUK counter floor, its row locked for update (`raise`) or shared.
fn muk_floor(db: &mut Db<'_, Transaction<'_>>, raise: bool) -> Result<i64, StoreError> {
    let row = if raise {
        db.query_one("SELECT high FROM muk_floor WHERE id = 1 FOR UPDATE", &[])?
    } else {
        db.query_one("SELECT high FROM muk_floor WHERE id = 1 FOR SHARE", &[])?
    };
    let high: i64 = row
        .try_get(0)
        .map_err(|_| StoreError::Corrupt("muk_floor.high"))?;
    crate::checked_floor(high)
}

/// Sets the stored counter of each UE of `names` to the matching one of `counters`.
fn write_counters(
    db: &mut Db<'_, Transaction<'_>>,
    names: &[&str],
    counters: &[i64],
) -> Result<(), StoreError> {
    if !names.is_empty() {
        db.execute(
            "UPDATE ue SET counter = v.counter \
             FROM unnest($1::text[], $2::bigint[]) AS v (btid, counter) \
             WHERE ue.btid = v.btid",
            &[&names, &counters],
        )?;
    }
    Ok(())
}

pub(crate) fn reserve_shared_muk_counter_with_keys(
    pg: &mut PgConn,
    btids: &[&str],
) -> Result<Vec<Option<(u32, Muk)>>, StoreError> {
    if btids.is_empty() {
        return Ok(Vec::new());
    }
    pg.write(None, |db| {
        // Locked for update: own reservations (which lock it shared before their UE rows)
        // wait, so the counters read next cannot change before this commits.
        let floor = muk_floor(db, true)?;
        let rows = db.query(
            // No row locks (nor their B-TID order) needed: see the floor above.
            "SELECT btid, counter, muk FROM ue WHERE btid = ANY($1)",
            &[&btids],
        )?;
        let mut ues: HashMap<String, (i64, Vec<u8>)> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let counter: i64 = row
                .try_get(1)
                .map_err(|_| StoreError::Corrupt("ue.counter"))?;
            ues.insert(
                row.try_get(0)?,
                (counter, bytes(row, 2, "ue.muk")?.to_vec()),
            );
        }
        let items: Vec<(&str, Option<i64>)> = btids
            .iter()
            .map(|b| (*b, ues.get(*b).map(|(c, _)| *c)))
            .collect();
        let plan = crate::plan_shared(floor, &items);
        if let Some(high) = plan.floor {
            db.execute("UPDATE muk_floor SET high = $1 WHERE id = 1", &[&high])?;
        }
        let (names, counters): (Vec<&str>, Vec<i64>) =
            plan.own.iter().map(|(b, c)| (*b, *c)).unzip();
        write_counters(db, &names, &counters)?;
        btids
            .iter()
            .zip(plan.values)
            .map(|(btid, value)| {
                let (Some(value), Some((_, muk))) = (value, ues.get(*btid)) else {
                    return Ok(None);
                };
                Ok(Some((
                    value,
                    Muk::from_slice(muk).ok_or(StoreError::Corrupt("ue.muk"))?,
                )))
            })
            .collect()
    })
}

pub(crate) fn muk_counter(pg: &mut PgConn, btid: &str) -> Result<Option<u32>, StoreError> {
    let Some(row) = pg.read()?.query_opt(
        "SELECT counter, (SELECT high FROM muk_floor WHERE id = 1) FROM ue WHERE btid = $1",
        &[&btid],
    )?
    else {
        return Ok(None);
    };
    let own = int::<u32>(&row, 0, "ue.counter")?;
    let floor = int::<u32>(&row, 1, "muk_floor.high")?;
    Ok(Some(own.max(floor)))
}

pub(crate) fn highest_msk_id_in_group(
    pg: &mut PgConn,
    kd: KeyDomainId,
    group: u16,
) -> Result<Option<MskId>, StoreError> {
    let lo = i64::from(group) << 16;
    let kd: &[u8] = &kd.0;
    let row = pg.read()?.query_one(
        "SELECT max(msk_id) FROM msk WHERE key_domain_id = $1 AND msk_id BETWEEN $2 AND $3",
        &[&kd, &lo, &(lo | 0xffff)],
    )?;
    Ok(opt_int::<u32>(&row, 0, "msk.msk_id")?.map(MskId))
}

pub(crate) fn retire_msks_before(
    pg: &mut PgConn,
    kd: KeyDomainId,
    current: MskId,
) -> Result<Vec<MskId>, StoreError> {
    let lo = i64::from(current.key_group()) << 16;
    let hi = i64::from(current.0);
    let kd: &[u8] = &kd.0;
    let rows = pg.write(None, |db| {
        db.query(
            "DELETE FROM msk WHERE key_domain_id = $1 AND msk_id >= $2 AND msk_id < $3 \
             AND NOT EXISTS (SELECT 1 FROM service AS s \
                 WHERE s.key_domain_id = msk.key_domain_id AND s.msk_id = msk.msk_id) \
             RETURNING msk_id",
            &[&kd, &lo, &hi],
        )
    })?;
    let mut ids = rows
        .iter()
        .map(|r| int::<u32>(r, 0, "msk.msk_id").map(MskId))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_passwords() {
        for (url, shown) in [
            (
                "postgres://mbms:secret@127.0.0.1/postgres",
                "postgres://mbms@127.0.0.1/postgres",
            ),
            (
                "postgresql://mbms:s%40c:ret@db:5433/keys?password=x&connect_timeout=3",
                "postgresql://mbms@db:5433/keys?connect_timeout=3",
            ),
            ("postgres://db/keys?pass%77ord=x", "postgres://db/keys"),
            ("postgres://mbms@db/keys", "postgres://mbms@db/keys"),
            ("postgres://db", "postgres://db"),
            ("mysql://root:pw@db/x", "mysql://root@db/x"),
            (
                "host=db password=pw",
                "(connection string not shown: it holds a password)",
            ),
            ("keys.sqlite", "keys.sqlite"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn msk_lock_keys_are_distinct_and_tagged() {
        let a = msk_lock(KeyDomainId([0xff, 0xff, 0xff]), MskId(u32::MAX));
        let b = msk_lock(KeyDomainId([0, 0, 0]), MskId(0));
        let c = msk_lock(KeyDomainId([0, 0, 1]), MskId(0));
        assert_eq!(a, 0x01ff_ffff_ffff_ffff);
        assert_eq!(b, 0x0100_0000_0000_0000);
        assert_eq!(c, 0x0100_0001_0000_0000);
        assert_ne!(SCHEMA_LOCK >> 56, 1);
    }
}
