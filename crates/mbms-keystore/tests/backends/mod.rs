//! Behaviour tests of the key store written once and run against each backend: SQLite (by
//! `tests/backends_sqlite.rs`) and PostgreSQL (by `tests/postgres.rs`). A [`Backend`] opens any
//! number of stores on one state (a file, a database) and changes it behind their back.
//!
//! PostgreSQL needs a server: `MBMS_TEST_POSTGRES_URL` is an admin URL (a role that may
//! create databases, e.g. `postgres://mbms:mbms@127.0.0.1/postgres`); each test creates its
//! own database `mbms_test_<pid>_<n>` and drops it at the end. Without the variable the tests
//! print "skipped: MBMS_TEST_POSTGRES_URL unset" and pass, unless `MBMS_REQUIRE_POSTGRES=1`,
//! which makes them fail. `scripts/postgres-for-tests.sh` sets a local server up.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::error::Error as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mbms_core::keyfile::MskFile;
use mbms_core::{CsbId, KeyDomainId, Mrk, Msk, MskId, MtkId, MtkIdInterval, Muk};
use mbms_keystore::{KeyStore, Registration, StoreError, UeKeys};

/// One key state that stores can be opened on.
pub trait Backend: Sync {
    /// A new store (a new connection) on the state.
    fn open(&self) -> KeyStore;
    /// Runs `sql` (no parameters; the same text on both backends) behind the stores' back.
    fn exec(&self, sql: &str);
    /// Runs `sql` with the CHECK constraints out of the way, to damage rows.
    fn exec_unchecked(&self, sql: &str);
    /// The one integer `sql` selects.
    fn count(&self, sql: &str) -> i64;
    /// `"sqlite"` or `"postgres"`.
    fn kind(&self) -> &'static str;
}

/// An SQLite file in a temporary directory, opened through `KeyStore::open_url`.
pub struct Sqlite {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Sqlite {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.sqlite");
        Self { _dir: dir, path }
    }

    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }
}

impl Backend for Sqlite {
    fn open(&self) -> KeyStore {
        KeyStore::open_url(&format!("sqlite:{}", self.path.display())).unwrap()
    }

    fn exec(&self, sql: &str) {
        self.raw().execute_batch(sql).unwrap();
    }

    fn exec_unchecked(&self, sql: &str) {
        let conn = self.raw();
        conn.pragma_update(None, "ignore_check_constraints", true)
            .unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn count(&self, sql: &str) -> i64 {
        self.raw().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

/// A fresh PostgreSQL database of its own, dropped at the end.
pub struct Postgres {
    admin: String,
    pub name: String,
    /// The database's URL (with the admin URL's credentials).
    pub url: String,
}

/// The admin URL of the test server, or `None` (after saying so) if the tests are skipped.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("MBMS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("MBMS_REQUIRE_POSTGRES").as_deref() == Ok("1") => panic!(
            "MBMS_REQUIRE_POSTGRES=1 but MBMS_TEST_POSTGRES_URL is unset: the PostgreSQL \
             tests need a server (run scripts/postgres-for-tests.sh and export the URL it \
             prints)"
        ),
        _ => {
            println!("skipped: MBMS_TEST_POSTGRES_URL unset");
            None
        }
    }
}

/// `url` with its database name replaced by `name`.
pub fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}

pub fn admin_client(admin: &str) -> postgres::Client {
    postgres::Client::connect(admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to MBMS_TEST_POSTGRES_URL: {e}"))
}

impl Postgres {
    /// A new empty database, or `None` if the PostgreSQL tests are skipped.
    pub fn new() -> Option<Self> {
        Self::new_with("").map(|r| r.unwrap())
    }

    /// A new empty database made with `options` (`CREATE DATABASE name options`): `None` if
    /// the PostgreSQL tests are skipped, `Some(Err)` if the server refuses the options.
    pub fn new_with(options: &str) -> Option<Result<Self, postgres::Error>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let admin = postgres_admin_url()?;
        let name = format!(
            "mbms_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = admin_client(&admin);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        if let Err(e) = client.batch_execute(&format!("CREATE DATABASE {name} {options}")) {
            return Some(Err(e));
        }
        let url = with_dbname(&admin, &name);
        Some(Ok(Self { admin, name, url }))
    }

    pub fn raw(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `sql` with SQLite's blob literals `x'…'` written as PostgreSQL's `'\x…'::bytea`.
fn pg_blobs(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find("x'") {
        let (head, tail) = rest.split_at(i);
        let literal = !head.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let end = tail[2..].find('\'');
        match end {
            Some(end) if literal => {
                out.push_str(head);
                out.push_str(&format!("'\\x{}'::bytea", &tail[2..2 + end]));
                rest = &tail[2 + end + 1..];
            }
            _ => {
                out.push_str(head);
                out.push_str("x'");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Backend for Postgres {
    fn open(&self) -> KeyStore {
        KeyStore::open_url(&self.url).unwrap()
    }

    fn exec(&self, sql: &str) {
        self.raw().batch_execute(&pg_blobs(sql)).unwrap();
    }

    fn exec_unchecked(&self, sql: &str) {
        let mut raw = self.raw();
        raw.batch_execute(
            "DO $$ DECLARE r record; BEGIN
               FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
                        WHERE contype = 'c' AND connamespace = current_schema()::regnamespace
               LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
               END LOOP; END $$",
        )
        .unwrap();
        raw.batch_execute(&pg_blobs(sql)).unwrap();
    }

    fn count(&self, sql: &str) -> i64 {
        self.raw().query_one(sql, &[]).unwrap().get(0)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

/// One `#[test]` per body, each on a backend of its own made by `$make` (an
/// `Option<impl Backend>`: `None` skips).
#[macro_export]
macro_rules! backend_tests {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(backend) = $make else { return };
                backends::$name(&backend);
            }
        )*
    };
}

/// Every body, for `backend_tests!`.
#[macro_export]
macro_rules! all_backend_tests {
    ($make:expr) => {
        backend_tests!($make;
            mtk_id_reservations_increase_across_reopen,
            counter_reservations_increase_across_reopen,
            mtk_ids_exhaust_at_the_end_of_the_validity_interval,
            mtk_ids_exhaust_at_u16_max,
            mtk_ids_jump_to_a_later_validity_start_but_never_back,
            counters_exhaust_at_u32_max,
            msk_put_switch_and_reopen,
            msk_conflict_is_refused_and_changes_nothing,
            set_current_mtk_needs_a_reserved_increasing_id,
            srtp_reservations_never_go_down,
            corrupt_rows_give_corrupt_not_panics,
            debug_and_errors_never_show_key_bytes,
            put_ue_round_trips_and_reprovisioning_keeps_the_counter,
            put_ues_provisions_many_in_one_call_and_keeps_counters,
            put_ues_last_keys_of_a_btid_win_and_large_batches_work,
            an_expiry_beyond_the_store_range_is_refused_and_stores_nothing,
            muk_counters_rise_strictly_per_ue_and_survive_reopening,
            muk_counters_with_keys_return_the_current_muk,
            muk_counters_end_at_u32_max,
            muk_counters_of_any_btid_text_and_near_exhaustion,
            shared_muk_counters_lie_above_every_counter_and_raise_the_floor,
            shared_muk_counters_are_not_dragged_by_one_ue_nor_pass_u32_max,
            concurrent_shared_and_own_muk_counters_never_repeat_for_a_ue,
            register_needs_a_provisioned_ue_and_reregistering_updates_the_address,
            deregister_counts_what_existed,
            register_many_stores_known_ues_in_one_commit_and_the_last_item_wins,
            registrations_of_a_service_are_listed_by_btid_in_byte_order,
            remove_ue_takes_its_registrations_with_it,
            services_for_msk_are_the_registered_services_whose_current_msk_it_is,
            highest_msk_id_in_group_looks_at_one_group_of_one_key_domain,
            retiring_deletes_older_msks_of_the_group_but_no_current_one_nor_reservations,
            corrupt_bmsc_rows_give_corrupt_not_panics,
            every_reservation_survives_a_new_connection,
            concurrent_stores_never_hand_out_a_value_twice,
        );
    };
}

// --- Fixtures ---

pub const KD: KeyDomainId = KeyDomainId([0x12, 0xf4, 0x10]);
pub const MSK_ID: MskId = MskId(0x0001_0002);
const TV1: &str = "urn:3gpp:mbms:service:tv1";
const TV2: &str = "urn:3gpp:mbms:service:tv2";
const FILES: &str = "urn:3gpp:mbms:service:files";
const A: &str = "tidA@bsf.example.org";
const B: &str = "tidB@bsf.example.org";
const C: &str = "tidC@bsf.example.org";

pub fn interval(from: u16, to: u16) -> MtkIdInterval {
    MtkIdInterval {
        from: MtkId(from),
        to: MtkId(to),
    }
}

pub fn msk_file(msk_id: MskId, key: u8) -> MskFile {
    MskFile {
        key_domain_id: KD,
        msk_id,
        msk: Msk::from_bytes([key; 16]),
        validity: interval(1, 1000),
        csb_id: CsbId(0x0102_0304),
        rand: Some([0xa5; 16]),
    }
}

fn msk_in(kd: KeyDomainId, id: u32, key: u8) -> MskFile {
    MskFile {
        key_domain_id: kd,
        msk_id: MskId(id),
        msk: Msk::from_bytes([key; 16]),
        validity: interval(1, u16::MAX),
        csb_id: CsbId(0x0a0b_0c0d),
        rand: None,
    }
}

pub fn keys(n: u8, expires: Option<u64>) -> UeKeys {
    UeKeys {
        muk: Muk::from_bytes([n; 32]),
        mrk: Mrk::from_bytes([n ^ 0xff; 32]),
        expires,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// --- MSKs, MTK IDs, MIKEY counters, SRTP indexes ---

pub fn mtk_id_reservations_increase_across_reopen(b: &dyn Backend) {
    let v = interval(10, 1000);
    let mut last = None;
    for round in 0..4 {
        let mut store = b.open();
        for _ in 0..3 {
            let r = store.reserve_mtk_ids(KD, MSK_ID, v, 5).unwrap();
            assert_eq!(r.end() - r.start(), 4, "round {round}: full block of 5");
            match last {
                None => assert_eq!(*r.start(), 10, "first reservation starts at validity.from"),
                Some(prev) => assert_eq!(*r.start(), prev + 1, "round {round}"),
            }
            last = Some(*r.end());
        }
        drop(store);
    }
    assert_eq!(last, Some(10 + 4 * 3 * 5 - 1));
    // Another MSK has its own sequence.
    let mut store = b.open();
    let r = store.reserve_mtk_ids(KD, MskId(7), v, 1).unwrap();
    assert_eq!(r, 10..=10);
    // And so has the same MSK ID under another Key Domain ID.
    let r = store
        .reserve_mtk_ids(KeyDomainId([0x12, 0xf4, 0x11]), MSK_ID, v, 1)
        .unwrap();
    assert_eq!(r, 10..=10);
}

pub fn counter_reservations_increase_across_reopen(b: &dyn Backend) {
    {
        let mut store = b.open();
        assert_eq!(store.counter_high_water(KD, MSK_ID).unwrap(), None);
        assert_eq!(store.reserve_counters(KD, MSK_ID, 100).unwrap(), 1..=100);
        assert_eq!(store.reserve_counters(KD, MSK_ID, 1).unwrap(), 101..=101);
    }
    let mut store = b.open();
    assert_eq!(store.counter_high_water(KD, MSK_ID).unwrap(), Some(101));
    assert_eq!(store.reserve_counters(KD, MSK_ID, 10).unwrap(), 102..=111);
    assert_eq!(store.counter_high_water(KD, MskId(9)).unwrap(), None);
}

pub fn mtk_ids_exhaust_at_the_end_of_the_validity_interval(b: &dyn Backend) {
    let mut store = b.open();
    let v = interval(5, 12);
    assert_eq!(store.reserve_mtk_ids(KD, MSK_ID, v, 6).unwrap(), 5..=10);
    assert_eq!(
        store.reserve_mtk_ids(KD, MSK_ID, v, 6).unwrap(),
        11..=12,
        "fewer than n when fewer are left"
    );
    for _ in 0..2 {
        assert!(matches!(
            store.reserve_mtk_ids(KD, MSK_ID, v, 1),
            Err(StoreError::MtkIdsExhausted { validity, .. }) if validity == v
        ));
    }
    assert!(matches!(
        store.reserve_mtk_ids(KD, MSK_ID, v, 0),
        Err(StoreError::EmptyReservation)
    ));
}

pub fn mtk_ids_exhaust_at_u16_max(b: &dyn Backend) {
    let mut store = b.open();
    let v = interval(65_530, 65_535);
    assert_eq!(
        store.reserve_mtk_ids(KD, MSK_ID, v, u16::MAX).unwrap(),
        65_530..=65_535
    );
    assert!(matches!(
        store.reserve_mtk_ids(KD, MSK_ID, v, 1),
        Err(StoreError::MtkIdsExhausted { .. })
    ));
    // Even a wider interval asked for later cannot go back below what was reserved.
    assert!(matches!(
        store.reserve_mtk_ids(KD, MSK_ID, interval(0, 65_535), 1),
        Err(StoreError::MtkIdsExhausted { .. })
    ));
}

pub fn mtk_ids_jump_to_a_later_validity_start_but_never_back(b: &dyn Backend) {
    let mut store = b.open();
    let mut reserve = |from, to| {
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(from, to), 3)
            .unwrap()
    };
    assert_eq!(reserve(1, 100), 1..=3);
    assert_eq!(reserve(50, 100), 50..=52);
    assert_eq!(reserve(1, 100), 53..=55);
    // 10 lies in no reserved block.
    assert!(matches!(
        store.set_current_mtk(KD, MSK_ID, MtkId(10), b"m"),
        Err(StoreError::NotReserved {
            mtk_id: MtkId(10),
            ..
        })
    ));
}

pub fn counters_exhaust_at_u32_max(b: &dyn Backend) {
    let mut store = b.open();
    assert_eq!(
        store.reserve_counters(KD, MSK_ID, u32::MAX - 10).unwrap(),
        1..=u32::MAX - 10
    );
    assert_eq!(
        store.reserve_counters(KD, MSK_ID, 100).unwrap(),
        u32::MAX - 9..=u32::MAX
    );
    assert!(matches!(
        store.reserve_counters(KD, MSK_ID, 1),
        Err(StoreError::CountersExhausted { .. })
    ));
    assert_eq!(
        store.counter_high_water(KD, MSK_ID).unwrap(),
        Some(u32::MAX)
    );
    assert!(matches!(
        store.reserve_counters(KD, MskId(3), 0),
        Err(StoreError::EmptyReservation)
    ));
}

pub fn msk_put_switch_and_reopen(b: &dyn Backend) {
    let a = msk_file(MSK_ID, 0x11);
    let bb = msk_file(MskId(0x0001_0003), 0x22);
    {
        let mut store = b.open();
        assert_eq!(store.current_msk("tv1").unwrap(), None);
        assert_eq!(store.highest_msk_id(KD).unwrap(), None);
        store.put_msk("tv1", &a).unwrap();
        store.put_msk("tv1", &a).unwrap(); // identical: fine
        store.put_msk("tv2", &a).unwrap(); // shared by two services
        assert_eq!(store.current_msk("tv1").unwrap(), Some(a.clone()));
        store.put_msk("tv1", &bb).unwrap();
    }
    let mut store = b.open();
    assert_eq!(store.current_msk("tv1").unwrap(), Some(bb.clone()));
    assert_eq!(store.current_msk("tv2").unwrap(), Some(a.clone()));
    assert_eq!(store.current_msk("tv3").unwrap(), None);
    assert_eq!(store.highest_msk_id(KD).unwrap(), Some(MskId(0x0001_0003)));
    assert_eq!(store.highest_msk_id(KeyDomainId([1, 2, 3])).unwrap(), None);
    assert_eq!(store.msk(KD, MSK_ID).unwrap(), Some(a.clone()));
    // Back to the old MSK: allowed, it is the same key.
    store.put_msk("tv1", &a).unwrap();
    assert_eq!(store.current_msk("tv1").unwrap(), Some(a));
    // rand None round-trips too, and the highest MSK ID is not the last one put.
    let mut c = msk_file(MskId(0x0000_0001), 0x33);
    c.rand = None;
    store.put_msk("radio", &c).unwrap();
    assert_eq!(store.current_msk("radio").unwrap(), Some(c));
    assert_eq!(store.highest_msk_id(KD).unwrap(), Some(MskId(0x0001_0003)));
    // The largest MSK ID fits.
    let top = msk_file(MskId(u32::MAX), 0x44);
    store.put_msk("top", &top).unwrap();
    assert_eq!(store.highest_msk_id(KD).unwrap(), Some(MskId(u32::MAX)));
    assert_eq!(store.msk(KD, MskId(u32::MAX)).unwrap(), Some(top));
}

pub fn msk_conflict_is_refused_and_changes_nothing(b: &dyn Backend) {
    let mut store = b.open();
    let a = msk_file(MSK_ID, 0x11);
    store.put_msk("tv1", &a).unwrap();

    let other_key = msk_file(MSK_ID, 0x99);
    let mut other_validity = a.clone();
    other_validity.validity = interval(1, 2000);
    let mut other_rand = a.clone();
    other_rand.rand = None;
    let mut other_csb = a.clone();
    other_csb.csb_id = CsbId(5);
    for (what, bad) in [
        ("key", other_key),
        ("validity", other_validity),
        ("rand", other_rand),
        ("csb_id", other_csb),
    ] {
        for service in ["tv1", "tv9"] {
            let err = store.put_msk(service, &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::MskConflict {
                        key_domain_id: KD,
                        msk_id: MSK_ID
                    }
                ),
                "{what}: {err}"
            );
        }
    }
    assert_eq!(store.current_msk("tv1").unwrap(), Some(a));
    assert_eq!(store.current_msk("tv9").unwrap(), None);
}

pub fn set_current_mtk_needs_a_reserved_increasing_id(b: &dyn Backend) {
    let v = interval(1, 100);
    {
        let mut store = b.open();
        assert_eq!(store.current_mtk(KD, MSK_ID).unwrap(), None);
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(1), b"m1"),
            Err(StoreError::NotReserved { .. })
        ));
        assert_eq!(store.reserve_mtk_ids(KD, MSK_ID, v, 4).unwrap(), 1..=4);
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(5), b"m5"),
            Err(StoreError::NotReserved {
                mtk_id: MtkId(5),
                ..
            })
        ));
        // Reserved for another MSK only: still refused.
        assert!(matches!(
            store.set_current_mtk(KD, MskId(99), MtkId(2), b"x"),
            Err(StoreError::NotReserved { .. })
        ));
        store.set_current_mtk(KD, MSK_ID, MtkId(2), b"m2").unwrap();
        store.set_current_mtk(KD, MSK_ID, MtkId(2), b"m2").unwrap(); // idempotent
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(2), b"other"),
            Err(StoreError::MtkIdNotIncreasing { .. })
        ));
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(1), b"m1"),
            Err(StoreError::MtkIdNotIncreasing {
                current: MtkId(2),
                requested: MtkId(1)
            })
        ));
        store.set_current_mtk(KD, MSK_ID, MtkId(3), b"m3").unwrap();
    }
    let store = b.open();
    assert_eq!(
        store.current_mtk(KD, MSK_ID).unwrap(),
        Some((MtkId(3), b"m3".to_vec()))
    );
}

pub fn srtp_reservations_never_go_down(b: &dyn Backend) {
    let mtk = MtkId(1);
    {
        let mut store = b.open();
        assert!(matches!(
            store.reserve_srtp_indexes(KD, MSK_ID, mtk, &[(1, 10)]),
            Err(StoreError::NotReserved { .. })
        ));
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(1, 10), 2)
            .unwrap();
        store
            .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(0xdead_beef, 1000), (7, 50)])
            .unwrap();
        // Lower for one SSRC, higher for the other, and a new one.
        store
            .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(0xdead_beef, 10), (7, 70), (3, 1)])
            .unwrap();
        // The same SSRC twice in one call: the higher wins.
        store
            .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(3, 500), (3, 20)])
            .unwrap();
        store.reserve_srtp_indexes(KD, MSK_ID, mtk, &[]).unwrap();
    }
    let mut store = b.open();
    assert_eq!(
        store.srtp_reservations(KD, MSK_ID, mtk).unwrap(),
        vec![(3, 500), (7, 70), (0xdead_beef, 1000)]
    );
    assert_eq!(
        store.srtp_reservations(KD, MSK_ID, MtkId(2)).unwrap(),
        vec![]
    );

    // 2^48 is the largest mark; above it the whole call is refused.
    let max = 1u64 << 48;
    store
        .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(9, max)])
        .unwrap();
    for bad in [max + 1, u64::MAX] {
        assert!(matches!(
            store.reserve_srtp_indexes(KD, MSK_ID, mtk, &[(7, 80), (1, bad)]),
            Err(StoreError::SrtpIndexOutOfRange { ssrc: 1, index }) if index == bad
        ));
    }
    assert_eq!(
        store.srtp_reservations(KD, MSK_ID, mtk).unwrap(),
        vec![(3, 500), (7, 70), (9, max), (0xdead_beef, 1000)]
    );
}

pub fn corrupt_rows_give_corrupt_not_panics(b: &dyn Backend) {
    {
        let mut store = b.open();
        store.put_msk("tv1", &msk_file(MSK_ID, 0x11)).unwrap();
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(1, 10), 1)
            .unwrap();
        store
            .reserve_srtp_indexes(KD, MSK_ID, MtkId(1), &[(1, 5)])
            .unwrap();
    }
    b.exec_unchecked(
        "UPDATE msk SET msk = x'0011';
         UPDATE srtp_index SET high = 281474976710657;",
    );
    let store = b.open();
    assert!(matches!(
        store.current_msk("tv1"),
        Err(StoreError::Corrupt("msk.msk"))
    ));
    assert!(matches!(
        store.msk(KD, MSK_ID),
        Err(StoreError::Corrupt("msk.msk"))
    ));
    assert!(matches!(
        store.srtp_reservations(KD, MSK_ID, MtkId(1)),
        Err(StoreError::Corrupt("srtp_index.high"))
    ));
    drop(store);
    b.exec_unchecked("UPDATE msk SET msk = x'11111111111111111111111111111111', mtk_id_to = 0;");
    let store = b.open();
    assert!(matches!(
        store.current_msk("tv1"),
        Err(StoreError::Corrupt("msk.mtk_id_to"))
    ));
}

pub fn debug_and_errors_never_show_key_bytes(b: &dyn Backend) {
    let mut store = b.open();
    store.put_msk("tv1", &msk_file(MSK_ID, 0xab)).unwrap();
    store.put_ue(A, &keys(0xab, None)).unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    let err = store.put_msk("tv1", &msk_file(MSK_ID, 0xcd)).unwrap_err();
    // Rows the schema refuses: the server's error must not quote them.
    let mut inverted = msk_file(MskId(77), 0xcd);
    inverted.validity = interval(10, 5);
    let refused = store.put_msk("tv2", &inverted).unwrap_err();
    let long_btid = "x".repeat(300);
    let refused_ue = store.put_ue(&long_btid, &keys(0xcd, None)).unwrap_err();
    let refused_ues = store
        .put_ues([("", &keys(0xcd, None)), (B, &keys(0xcd, None))])
        .unwrap_err();
    assert_eq!(
        store.ue(B).unwrap(),
        None,
        "one transaction: nothing stored"
    );
    for e in [err, refused, refused_ue, refused_ues] {
        for text in [format!("{e:?}"), e.to_string(), format!("{:?}", e.source())] {
            let text = text.to_lowercase();
            for bytes in ["cdcd", "abab", "205, 205", "171, 171", "\\xcd"] {
                assert!(!text.contains(bytes), "{text}");
            }
        }
    }
}

// --- The BM-SC's tables ---

pub fn put_ue_round_trips_and_reprovisioning_keeps_the_counter(b: &dyn Backend) {
    let mut store = b.open();
    assert_eq!(store.ue(A).unwrap(), None);
    assert_eq!(store.muk_counter(A).unwrap(), None);
    assert_eq!(store.ue_count().unwrap(), 0);

    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, Some(1_900_000_000))).unwrap();
    assert_eq!(store.ue(A).unwrap(), Some(keys(1, None)));
    assert_eq!(store.ue(B).unwrap(), Some(keys(2, Some(1_900_000_000))));
    assert_eq!(
        store.ue("tidA@BSF.example.org").unwrap(),
        None,
        "B-TIDs are exact"
    );
    assert_eq!(store.ue_count().unwrap(), 2);
    assert_eq!(store.muk_counter(A).unwrap(), Some(0));

    assert_eq!(
        store.reserve_muk_counters(&[A, A, A]).unwrap(),
        vec![Some(1), Some(2), Some(3)]
    );
    // A new bootstrap: new keys and expiry for the same B-TID; the counter stays.
    store.put_ue(A, &keys(9, Some(42))).unwrap();
    assert_eq!(store.ue(A).unwrap(), Some(keys(9, Some(42))));
    assert_eq!(store.muk_counter(A).unwrap(), Some(3));
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![Some(4)]);
    store.put_ue(A, &keys(9, None)).unwrap();
    assert_eq!(store.ue(A).unwrap().unwrap().expires, None);
    assert_eq!(store.ue_count().unwrap(), 2);
    drop(store);

    let store = b.open();
    assert_eq!(store.ue(A).unwrap(), Some(keys(9, None)));
    assert_eq!(store.ue(B).unwrap(), Some(keys(2, Some(1_900_000_000))));
    assert_eq!(store.muk_counter(A).unwrap(), Some(4));
    assert_eq!(store.muk_counter(B).unwrap(), Some(0));
}

pub fn put_ues_provisions_many_in_one_call_and_keeps_counters(b: &dyn Backend) {
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.reserve_muk_counters(&[A, A]).unwrap();
    let (ka, kb, kc) = (keys(11, None), keys(12, Some(5)), keys(13, None));
    store.put_ues([(A, &ka), (B, &kb), (C, &kc)]).unwrap();
    assert_eq!(store.ue_count().unwrap(), 3);
    assert_eq!(store.ue(A).unwrap(), Some(ka));
    assert_eq!(store.ue(B).unwrap(), Some(kb));
    assert_eq!(store.ue(C).unwrap(), Some(kc));
    assert_eq!(store.muk_counter(A).unwrap(), Some(2));
    assert_eq!(store.muk_counter(C).unwrap(), Some(0));
    // An entry the store cannot hold refuses the whole call.
    let (kd, bad) = (keys(14, None), keys(15, Some(u64::MAX)));
    let r = store.put_ues([("tidD", &kd), ("tidE", &bad)]);
    assert!(matches!(r, Err(StoreError::Corrupt("ue.expires"))), "{r:?}");
    assert_eq!(store.ue("tidD").unwrap(), None, "one transaction");
    assert_eq!(store.ue_count().unwrap(), 3);
    // Nothing to provision is fine.
    store.put_ues([]).unwrap();
    assert_eq!(store.ue_count().unwrap(), 3);
}

pub fn put_ues_last_keys_of_a_btid_win_and_large_batches_work(b: &dyn Backend) {
    let mut store = b.open();
    let (k1, k2, k3) = (keys(1, None), keys(2, Some(7)), keys(3, None));
    store.put_ues([(A, &k1), (B, &k3), (A, &k2)]).unwrap();
    assert_eq!(store.ue(A).unwrap(), Some(k2));
    assert_eq!(store.ue(B).unwrap(), Some(k3));
    // More UEs than one statement of the PostgreSQL backend takes.
    let names: Vec<String> = (0..2500).map(|i| format!("tid{i:05}@bsf")).collect();
    let k = keys(4, Some(99));
    store
        .put_ues(names.iter().map(|n| (n.as_str(), &k)))
        .unwrap();
    assert_eq!(store.ue_count().unwrap(), 2502);
    assert_eq!(store.ue("tid02499@bsf").unwrap(), Some(k.clone()));
    assert_eq!(store.ue("tid00000@bsf").unwrap(), Some(k));
    let batch: Vec<&str> = names.iter().map(String::as_str).collect();
    let got = store.reserve_muk_counters(&batch).unwrap();
    assert!(got.iter().all(|v| *v == Some(1)));
}

pub fn an_expiry_beyond_the_store_range_is_refused_and_stores_nothing(b: &dyn Backend) {
    let mut store = b.open();
    let r = store.put_ue(A, &keys(1, Some(u64::MAX)));
    assert!(matches!(r, Err(StoreError::Corrupt("ue.expires"))), "{r:?}");
    assert_eq!(store.ue(A).unwrap(), None);
    let max = u64::try_from(i64::MAX).unwrap();
    store.put_ue(A, &keys(1, Some(max))).unwrap();
    assert_eq!(store.ue(A).unwrap().unwrap().expires, Some(max));
}

pub fn muk_counters_rise_strictly_per_ue_and_survive_reopening(b: &dyn Backend) {
    {
        let mut store = b.open();
        store.put_ue(A, &keys(1, None)).unwrap();
        store.put_ue(B, &keys(2, None)).unwrap();
        assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![Some(1)]);
        // Listed twice: two values; unknown: None; order of the answer = order of the ask.
        assert_eq!(
            store
                .reserve_muk_counters(&[B, A, "nobody", A, B, ""])
                .unwrap(),
            vec![Some(1), Some(2), None, Some(3), Some(2), None]
        );
        assert_eq!(store.reserve_muk_counters(&[]).unwrap(), vec![]);
        assert_eq!(store.muk_counter(A).unwrap(), Some(3));
        assert_eq!(store.muk_counter(B).unwrap(), Some(2));
        assert_eq!(store.muk_counter("nobody").unwrap(), None);
        let many = vec![A; 1000];
        let got = store.reserve_muk_counters(&many).unwrap();
        let want: Vec<Option<u32>> = (4..1004).map(Some).collect();
        assert_eq!(got, want);
    }
    let mut store = b.open();
    assert_eq!(store.muk_counter(A).unwrap(), Some(1003));
    assert_eq!(store.muk_counter(B).unwrap(), Some(2));
    assert_eq!(
        store.reserve_muk_counters(&[A, B]).unwrap(),
        vec![Some(1004), Some(3)]
    );
    drop(store);
    // Two stores on one state share the sequence.
    let mut one = b.open();
    let mut two = b.open();
    assert_eq!(one.reserve_muk_counters(&[A]).unwrap(), vec![Some(1005)]);
    assert_eq!(two.reserve_muk_counters(&[A]).unwrap(), vec![Some(1006)]);
    assert_eq!(one.muk_counter(A).unwrap(), Some(1006));
}

pub fn muk_counters_with_keys_return_the_current_muk(b: &dyn Backend) {
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    let got = store
        .reserve_muk_counters_with_keys(&[A, "nobody", B, A])
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some((1, keys(1, None).muk)),
            None,
            Some((1, keys(2, None).muk)),
            Some((2, keys(1, None).muk)),
        ]
    );
    store.put_ue(A, &keys(3, None)).unwrap();
    assert_eq!(
        store.reserve_muk_counters_with_keys(&[A]).unwrap(),
        vec![Some((3, keys(3, None).muk))]
    );
    assert_eq!(
        store.reserve_muk_counters(&[A, B]).unwrap(),
        vec![Some(4), Some(2)]
    );
    assert_eq!(store.reserve_muk_counters_with_keys(&[]).unwrap(), vec![]);
    b.exec("UPDATE ue SET counter = 4294967295 WHERE btid = 'tidB@bsf.example.org'");
    assert_eq!(
        store.reserve_muk_counters_with_keys(&[B, A]).unwrap(),
        vec![None, Some((5, keys(3, None).muk))]
    );
}

pub fn muk_counters_end_at_u32_max(b: &dyn Backend) {
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    b.exec("UPDATE ue SET counter = 4294967294 WHERE btid = 'tidA@bsf.example.org'");
    assert_eq!(store.muk_counter(A).unwrap(), Some(u32::MAX - 1));
    // The last value, then none; the other UE is not affected; a UE listed after the
    // exhausted one still gets its value.
    assert_eq!(
        store.reserve_muk_counters(&[A, A, B, A]).unwrap(),
        vec![Some(u32::MAX), None, Some(1), None]
    );
    assert_eq!(store.muk_counter(A).unwrap(), Some(u32::MAX));
    drop(store);
    let mut store = b.open();
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![None]);
    assert_eq!(store.muk_counter(A).unwrap(), Some(u32::MAX));
    // Re-provisioning does not reset an exhausted counter: a new B-TID is needed.
    store.put_ue(A, &keys(3, None)).unwrap();
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![None]);
    b.exec("UPDATE ue SET counter = 4294967295 WHERE btid = 'tidB@bsf.example.org'");
    assert_eq!(store.reserve_muk_counters(&[B]).unwrap(), vec![None]);
    assert_eq!(store.muk_counter(B).unwrap(), Some(u32::MAX));
}

/// A shared reservation (a push of one MSK to many UEs) hands the UEs of the batch one value,
/// above the floor and above each of their counters, the next one to a UE listed again, and
/// raises the floor to the highest: each UE's next own value, and the next shared one, lie
/// above it.
pub fn shared_muk_counters_lie_above_every_counter_and_raise_the_floor(b: &dyn Backend) {
    let mut store = b.open();
    for (i, ue) in [A, B, C].into_iter().enumerate() {
        store
            .put_ue(ue, &keys(u8::try_from(i).unwrap() + 1, None))
            .unwrap();
    }
    assert_eq!(
        store.reserve_muk_counters(&[A, A, A, B]).unwrap(),
        vec![Some(1), Some(2), Some(3), Some(1)]
    );
    let got = store
        .reserve_shared_muk_counter_with_keys(&[B, A, "nobody", A])
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some((4, keys(2, None).muk)),
            Some((4, keys(1, None).muk)),
            None,
            Some((5, keys(1, None).muk)),
        ],
        "one value above the batch's highest counter (3), the next for the repeat"
    );
    // One row written: the floor, the highest value handed out, is every UE's, even one not
    // in the batch; the UEs' own counters did not move.
    assert_eq!(b.count("SELECT high FROM muk_floor"), 5);
    assert_eq!(
        b.count("SELECT counter FROM ue WHERE btid = 'tidA@bsf.example.org'"),
        3
    );
    for ue in [A, B, C] {
        assert_eq!(store.muk_counter(ue).unwrap(), Some(5), "{ue}");
    }
    assert_eq!(store.muk_counter("nobody").unwrap(), None);
    assert_eq!(
        store.reserve_muk_counters(&[B, C, C]).unwrap(),
        vec![Some(6), Some(6), Some(7)],
        "own values start above the floor"
    );
    assert_eq!(store.muk_counter(A).unwrap(), Some(5));
    // Above C's own 7, and A (at the floor, 5) gets the same value.
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[A, C]).unwrap(),
        vec![Some((8, keys(1, None).muk)), Some((8, keys(3, None).muk))]
    );
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[]).unwrap(),
        vec![]
    );
    // The MUK read is the current one.
    store.put_ue(A, &keys(9, None)).unwrap();
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[A]).unwrap(),
        vec![Some((9, keys(9, None).muk))]
    );
    drop(store);
    // All of it survives a new connection.
    let mut store = b.open();
    assert_eq!(store.muk_counter(B).unwrap(), Some(9));
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![Some(10)]);
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[B]).unwrap(),
        vec![Some((10, keys(2, None).muk))],
        "B's batch: only B's counter and the floor count, not A's own 10"
    );
}

/// A UE whose counter ran far ahead of the floor (more than `SHARED_COUNTER_SLACK` own values),
/// or to the end, keeps its own sequence in shared batches: it neither drags the floor (and
/// every other UE) up nor stops the batch. A shared value past `u32::MAX` is not handed out.
pub fn shared_muk_counters_are_not_dragged_by_one_ue_nor_pass_u32_max(b: &dyn Backend) {
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    store.put_ue(C, &keys(3, None)).unwrap();
    // B far ahead, C at the end.
    b.exec("UPDATE ue SET counter = 1000000 WHERE btid = 'tidB@bsf.example.org'");
    b.exec("UPDATE ue SET counter = 4294967295 WHERE btid = 'tidC@bsf.example.org'");
    assert_eq!(
        store
            .reserve_shared_muk_counter_with_keys(&[A, B, C, B])
            .unwrap(),
        vec![
            Some((1, keys(1, None).muk)),
            Some((1_000_001, keys(2, None).muk)),
            None,
            Some((1_000_002, keys(2, None).muk)),
        ]
    );
    assert_eq!(b.count("SELECT high FROM muk_floor"), 1);
    assert_eq!(
        store.muk_counter(B).unwrap(),
        Some(1_000_002),
        "B's own row"
    );
    assert_eq!(store.muk_counter(A).unwrap(), Some(1));
    // Within reach of the floor, a counter does raise the batch value.
    b.exec("UPDATE ue SET counter = 60000 WHERE btid = 'tidA@bsf.example.org'");
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[A]).unwrap(),
        vec![Some((60001, keys(1, None).muk))]
    );
    // Near the end of the floor, an exhausted UE (C) within the slack does not take the
    // others' values with it.
    b.exec("UPDATE muk_floor SET high = 4294967290");
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[A, C]).unwrap(),
        vec![Some((4_294_967_291, keys(1, None).muk)), None]
    );
    // The last value, then none, item by item.
    b.exec("UPDATE muk_floor SET high = 4294967294");
    assert_eq!(
        store
            .reserve_shared_muk_counter_with_keys(&[A, A, "nobody"])
            .unwrap(),
        vec![Some((u32::MAX, keys(1, None).muk)), None, None]
    );
    assert_eq!(store.muk_counter(A).unwrap(), Some(u32::MAX));
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[A]).unwrap(),
        vec![None]
    );
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![None]);
}

/// Stores on one state, each in its own thread, mix 40 shared reservations of all UEs with own
/// reservations of some: no UE is ever handed a value twice, the values
/// each thread gets for a UE rise, and the stored counter is at least the highest handed out.
pub fn concurrent_shared_and_own_muk_counters_never_repeat_for_a_ue(b: &dyn Backend) {
    const THREADS: usize = 3;
    provision_ues(b);
    let barrier = std::sync::Barrier::new(THREADS);
    let handed: Vec<Vec<(String, u32)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut store = b.open();
                    let mut got = Vec::new();
                    barrier.wait();
                    for i in 0..40usize {
                        let (batch, values) = if (i + t) % 2 == 0 {
                            let values = store.reserve_shared_muk_counter_with_keys(&UES);
                            (UES.to_vec(), values.unwrap())
                        } else {
                            let some = &UES[t % UES.len()..];
                            let mut batch = some.to_vec();
                            batch.push(some[0]);
                            let values = store.reserve_muk_counters_with_keys(&batch);
                            (batch, values.unwrap())
                        };
                        got.extend(
                            batch
                                .iter()
                                .zip(values)
                                .map(|(ue, v)| ((*ue).to_owned(), v.unwrap().0)),
                        );
                    }
                    got
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let store = b.open();
    let mut per_ue: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for thread in &handed {
        let mut last: BTreeMap<&str, u32> = BTreeMap::new();
        for (ue, v) in thread {
            if let Some(prev) = last.insert(ue, *v) {
                assert!(*v > prev, "{ue}: {v} after {prev} in one thread");
            }
            per_ue.entry(ue.clone()).or_default().push(*v);
        }
    }
    for ue in UES {
        let mut values = per_ue.remove(ue).unwrap();
        let n = values.len();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), n, "{ue}: a value handed out twice");
        let high = store.muk_counter(ue).unwrap().unwrap();
        assert!(high >= *values.last().unwrap(), "{ue}: stored {high}");
    }
}

pub fn muk_counters_of_any_btid_text_and_near_exhaustion(b: &dyn Backend) {
    let mut store = b.open();
    // B-TIDs the batch encoding must carry as they are: quotes, backslashes, control
    // characters, JSON-looking text, non-ASCII.
    let odd = [
        "q\"uote@bsf",
        "back\\slash@bsf",
        "tab\tnl\n\u{1}@bsf",
        "[\"x\",1]",
        "ünïcødé@bsf",
        "tidA@bsf.example.org ",
    ];
    for (i, btid) in odd.iter().enumerate() {
        store
            .put_ue(btid, &keys(u8::try_from(i).unwrap() + 20, None))
            .unwrap();
    }
    store.put_ue(A, &keys(1, None)).unwrap();
    let mut ask: Vec<&str> = odd.to_vec();
    ask.push(A);
    ask.extend(odd.iter().rev());
    let got = store.reserve_muk_counters_with_keys(&ask).unwrap();
    for (i, btid) in odd.iter().enumerate() {
        let muk = keys(u8::try_from(i).unwrap() + 20, None).muk;
        assert_eq!(got[i], Some((1, muk.clone())), "{btid:?}");
        assert_eq!(got[ask.len() - 1 - i], Some((2, muk)), "{btid:?}");
        assert_eq!(store.muk_counter(btid).unwrap(), Some(2), "{btid:?}");
    }
    assert_eq!(got[odd.len()], Some((1, keys(1, None).muk)));
    // Two values left, asked three times among others: the first two get them.
    b.exec("UPDATE ue SET counter = 4294967293 WHERE btid = 'tidA@bsf.example.org'");
    assert_eq!(
        store.reserve_muk_counters(&[A, odd[0], A, A]).unwrap(),
        vec![Some(u32::MAX - 1), Some(3), Some(u32::MAX), None]
    );
    // Exactly as many left as asked: all granted.
    b.exec("UPDATE ue SET counter = 4294967292 WHERE btid = 'tidA@bsf.example.org'");
    assert_eq!(
        store.reserve_muk_counters(&[A, A, A]).unwrap(),
        vec![Some(u32::MAX - 2), Some(u32::MAX - 1), Some(u32::MAX)]
    );
}

pub fn register_needs_a_provisioned_ue_and_reregistering_updates_the_address(b: &dyn Backend) {
    let mut store = b.open();
    let r = store.register(A, &[TV1, TV2], ip("192.0.2.1"), 1000);
    assert!(matches!(r, Err(StoreError::UnknownUe)), "{r:?}");
    assert_eq!(store.registration(A, TV1).unwrap(), None);
    assert_eq!(store.registrations(TV1).unwrap(), vec![]);

    store.put_ue(A, &keys(1, None)).unwrap();
    store
        .register(A, &[TV1, TV2], ip("192.0.2.1"), 1000)
        .unwrap();
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(A, TV2).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(A, FILES).unwrap(), None);
    store
        .register(A, &[TV2, FILES], ip("2001:db8::1"), 2000)
        .unwrap();
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(A, TV2).unwrap(), Some(ip("2001:db8::1")));
    assert_eq!(
        store.registration(A, FILES).unwrap(),
        Some(ip("2001:db8::1"))
    );
    // A service listed twice, and no services at all, are fine.
    store
        .register(A, &[TV1, TV1], ip("192.0.2.9"), 3000)
        .unwrap();
    store.register(A, &[], ip("192.0.2.10"), 3000).unwrap();
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.9")));
    assert_eq!(store.registrations(TV1).unwrap().len(), 1);
    // A time the store cannot hold is an error, not a panic, and changes nothing.
    let r = store.register(A, &[TV1], ip("192.0.2.11"), u64::MAX);
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.9")));
    drop(store);
    let store = b.open();
    assert_eq!(store.registration(A, TV2).unwrap(), Some(ip("2001:db8::1")));
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.9")));
    assert_eq!(
        b.count("SELECT since FROM registration WHERE service = 'urn:3gpp:mbms:service:tv1'"),
        3000
    );
}

pub fn register_many_stores_known_ues_in_one_commit_and_the_last_item_wins(b: &dyn Backend) {
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    let stored = store
        .register_many(
            &[
                (A, TV1, ip("192.0.2.1")),
                (C, TV1, ip("192.0.2.3")),
                (B, TV1, ip("192.0.2.2")),
                (A, TV1, ip("2001:db8::1")),
                (B, TV2, ip("192.0.2.2")),
            ],
            500,
        )
        .unwrap();
    assert_eq!(stored, vec![true, false, true, true, true]);
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("2001:db8::1")));
    assert_eq!(store.registration(C, TV1).unwrap(), None);
    assert_eq!(store.registrations(TV1).unwrap().len(), 2);
    assert_eq!(store.register_many(&[], 500).unwrap(), Vec::<bool>::new());
    assert!(matches!(
        store.register_many(&[(A, TV1, ip("192.0.2.1"))], u64::MAX),
        Err(StoreError::Corrupt(_))
    ));
    // 25 000 items (more than one PostgreSQL chunk) in one call.
    let many: Vec<String> = (0..25_000).map(|i| format!("bulk{i}@bsf")).collect();
    let k = keys(3, None);
    store
        .put_ues(many.iter().map(|b| (b.as_str(), &k)))
        .unwrap();
    let items: Vec<(&str, &str, IpAddr)> = many
        .iter()
        .map(|b| (b.as_str(), FILES, ip("198.51.100.7")))
        .collect();
    assert!(store.register_many(&items, 600).unwrap().iter().all(|s| *s));
    drop(store);
    let store = b.open();
    assert_eq!(store.registrations(FILES).unwrap().len(), 25_000);
    assert_eq!(
        store.registration("bulk24999@bsf", FILES).unwrap(),
        Some(ip("198.51.100.7"))
    );
}

pub fn deregister_counts_what_existed(b: &dyn Backend) {
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    store
        .register(A, &[TV1, TV2, FILES], ip("192.0.2.1"), 1)
        .unwrap();
    store.register(B, &[TV1], ip("192.0.2.2"), 1).unwrap();
    assert_eq!(
        store
            .deregister(A, &[TV1, "urn:3gpp:mbms:service:nope", TV2])
            .unwrap(),
        2
    );
    assert_eq!(store.deregister(A, &[TV1, TV2]).unwrap(), 0, "already gone");
    assert_eq!(store.deregister("nobody", &[TV1]).unwrap(), 0);
    assert_eq!(store.deregister(A, &[]).unwrap(), 0);
    assert_eq!(store.registration(A, TV1).unwrap(), None);
    assert_eq!(store.registration(A, FILES).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(B, TV1).unwrap(), Some(ip("192.0.2.2")));
    assert_eq!(store.deregister(A, &[FILES, FILES]).unwrap(), 1);
    assert_eq!(store.ue_count().unwrap(), 2, "deregistering keeps the UE");
}

pub fn registrations_of_a_service_are_listed_by_btid_in_byte_order(b: &dyn Backend) {
    let mut store = b.open();
    // Byte order: 'Z' < '_' < 'a' (a linguistic collation would put "alpha" first).
    let (z, u, al) = ("Zulu", "_under", "alpha");
    for (btid, n) in [(C, 3), (A, 1), (B, 2), (z, 4), (u, 5), (al, 6)] {
        store.put_ue(btid, &keys(n, None)).unwrap();
    }
    store.register(C, &[TV1], ip("192.0.2.3"), 1).unwrap();
    store
        .register(A, &[TV1, TV2], ip("2001:db8::a"), 1)
        .unwrap();
    store.register(B, &[TV2], ip("192.0.2.2"), 1).unwrap();
    for btid in [al, u, z] {
        store.register(btid, &[FILES], ip("192.0.2.9"), 1).unwrap();
    }
    let reg = |btid: &str, service: &str, addr: &str| Registration {
        btid: btid.to_owned(),
        service: service.to_owned(),
        ue_addr: ip(addr),
    };
    assert_eq!(
        store.registrations(TV1).unwrap(),
        vec![reg(A, TV1, "2001:db8::a"), reg(C, TV1, "192.0.2.3")]
    );
    assert_eq!(
        store.registrations(TV2).unwrap(),
        vec![reg(A, TV2, "2001:db8::a"), reg(B, TV2, "192.0.2.2")]
    );
    assert_eq!(
        store.registrations(FILES).unwrap(),
        vec![
            reg(z, FILES, "192.0.2.9"),
            reg(u, FILES, "192.0.2.9"),
            reg(al, FILES, "192.0.2.9")
        ]
    );
    assert_eq!(
        store.registrations("urn:3gpp:mbms:service:none").unwrap(),
        vec![]
    );
}

pub fn remove_ue_takes_its_registrations_with_it(b: &dyn Backend) {
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    store.register(A, &[TV1, TV2], ip("192.0.2.1"), 1).unwrap();
    store.register(B, &[TV1], ip("192.0.2.2"), 1).unwrap();
    store.reserve_muk_counters(&[A, A]).unwrap();

    assert!(store.remove_ue(A).unwrap());
    assert!(!store.remove_ue(A).unwrap(), "already removed");
    assert!(!store.remove_ue("nobody").unwrap());
    assert_eq!(store.ue(A).unwrap(), None);
    assert_eq!(store.muk_counter(A).unwrap(), None);
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![None]);
    assert_eq!(store.registration(A, TV1).unwrap(), None);
    assert_eq!(store.registrations(TV2).unwrap(), vec![]);
    assert_eq!(
        store.registrations(TV1).unwrap(),
        vec![Registration {
            btid: B.into(),
            service: TV1.into(),
            ue_addr: ip("192.0.2.2")
        }]
    );
    assert_eq!(store.ue_count().unwrap(), 1);
    let r = store.register(A, &[TV1], ip("192.0.2.1"), 2);
    assert!(matches!(r, Err(StoreError::UnknownUe)), "{r:?}");
    drop(store);
    assert_eq!(
        b.count("SELECT count(*) FROM registration WHERE btid = 'tidA@bsf.example.org'"),
        0
    );
}

pub fn services_for_msk_are_the_registered_services_whose_current_msk_it_is(b: &dyn Backend) {
    let kd = KeyDomainId([0x00, 0xf1, 0x10]);
    let mut store = b.open();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    store
        .register(A, &[TV1, TV2, FILES], ip("192.0.2.1"), 1)
        .unwrap();
    store.register(B, &[TV2], ip("192.0.2.2"), 1).unwrap();
    let (m1, m2, m3) = (0x0001_0001, 0x0003_0001, 0x0001_0002);
    let ids = |store: &KeyStore, btid: &str, id: u32| {
        store.services_for_msk(btid, kd, MskId(id)).unwrap()
    };
    assert_eq!(ids(&store, A, m1), Vec::<String>::new(), "no MSK yet");

    store.put_msk(TV1, &msk_in(kd, m1, 1)).unwrap();
    store.put_msk(TV2, &msk_in(kd, m1, 1)).unwrap();
    store.put_msk(FILES, &msk_in(kd, m2, 2)).unwrap();
    assert_eq!(ids(&store, A, m1), vec![TV1.to_owned(), TV2.to_owned()]);
    assert_eq!(ids(&store, A, m2), vec![FILES.to_owned()]);
    assert_eq!(ids(&store, B, m1), vec![TV2.to_owned()]);
    assert_eq!(ids(&store, B, m2), Vec::<String>::new());
    assert_eq!(ids(&store, "nobody", m1), Vec::<String>::new());
    assert_eq!(
        store
            .services_for_msk(A, KeyDomainId([1, 2, 3]), MskId(m1))
            .unwrap(),
        Vec::<String>::new()
    );
    store.put_msk(TV1, &msk_in(kd, m3, 3)).unwrap();
    assert_eq!(ids(&store, A, m1), vec![TV2.to_owned()]);
    assert_eq!(ids(&store, A, m3), vec![TV1.to_owned()]);
    store.deregister(A, &[TV2]).unwrap();
    assert_eq!(ids(&store, A, m1), Vec::<String>::new());
    assert_eq!(store.msk(kd, MskId(m1)).unwrap(), Some(msk_in(kd, m1, 1)));
    assert_eq!(store.msk(kd, MskId(0x0009_0009)).unwrap(), None);
}

pub fn retiring_deletes_older_msks_of_the_group_but_no_current_one_nor_reservations(
    b: &dyn Backend,
) {
    let kd = KeyDomainId([0x00, 0xf1, 0x10]);
    let other = KeyDomainId([0x12, 0xf4, 0x10]);
    let mut store = b.open();
    // Group 1: 1, 2 (current of "shared"), 3, 4 (current of "tv"), 5 (next); group 2: 1;
    // another key domain: group 1, 1.
    for id in [0x0001_0001, 0x0001_0003] {
        store.put_next_msk(&msk_in(kd, id, 1)).unwrap();
    }
    store
        .put_msk("shared", &msk_in(kd, 0x0001_0002, 2))
        .unwrap();
    store.put_msk("tv", &msk_in(kd, 0x0001_0004, 4)).unwrap();
    store.put_next_msk(&msk_in(kd, 0x0001_0005, 5)).unwrap();
    store.put_msk("g2", &msk_in(kd, 0x0002_0001, 6)).unwrap();
    store.put_next_msk(&msk_in(kd, 0x0002_0000, 6)).unwrap();
    store.put_next_msk(&msk_in(other, 0x0001_0001, 7)).unwrap();
    // The MSK to be retired has reservations under it.
    let got = store
        .reserve_mtk_ids(kd, MskId(0x0001_0003), interval(1, 100), 10)
        .unwrap();
    assert_eq!(got, 1..=10);
    let counters = store.reserve_counters(kd, MskId(0x0001_0003), 5).unwrap();

    assert_eq!(
        store.retire_msks_before(kd, MskId(0x0001_0004)).unwrap(),
        vec![MskId(0x0001_0001), MskId(0x0001_0003)]
    );
    let has = |store: &KeyStore, k, id| store.msk(k, MskId(id)).unwrap().is_some();
    assert!(!has(&store, kd, 0x0001_0001));
    assert!(
        has(&store, kd, 0x0001_0002),
        "still a service's current MSK"
    );
    assert!(!has(&store, kd, 0x0001_0003));
    assert!(has(&store, kd, 0x0001_0004), "the current one itself");
    assert!(has(&store, kd, 0x0001_0005), "the next one");
    assert!(has(&store, kd, 0x0002_0000), "another group");
    assert!(has(&store, kd, 0x0002_0001));
    assert!(has(&store, other, 0x0001_0001), "another key domain");
    assert_eq!(
        store.highest_msk_id_in_group(kd, 1).unwrap(),
        Some(MskId(0x0001_0005))
    );
    // Nothing left to retire: an empty answer, not an error.
    assert_eq!(
        store.retire_msks_before(kd, MskId(0x0001_0004)).unwrap(),
        vec![]
    );
    drop(store);
    // The reservations of a retired MSK survive it: never handed out again.
    let mut store = b.open();
    let again = store
        .reserve_mtk_ids(kd, MskId(0x0001_0003), interval(1, 100), 10)
        .unwrap();
    assert_eq!(again, 11..=20);
    let after = store.reserve_counters(kd, MskId(0x0001_0003), 5).unwrap();
    assert!(
        after.start() > counters.end(),
        "{after:?} after {counters:?}"
    );
    // Once "shared" moves on, its old MSK can go too.
    store
        .put_msk("shared", &msk_in(kd, 0x0001_0005, 5))
        .unwrap();
    assert_eq!(
        store.retire_msks_before(kd, MskId(0x0001_0005)).unwrap(),
        vec![MskId(0x0001_0002)],
        "0x0001_0004 is still the current MSK of tv"
    );
}

pub fn highest_msk_id_in_group_looks_at_one_group_of_one_key_domain(b: &dyn Backend) {
    let kd = KeyDomainId([0x00, 0xf1, 0x10]);
    let mut store = b.open();
    assert_eq!(store.highest_msk_id_in_group(kd, 1).unwrap(), None);
    let other = KeyDomainId([0x12, 0xf4, 0x10]);
    for (k, id, svc) in [
        (kd, 0x0001_0001, "a"),
        (kd, 0x0001_0005, "b"),
        (kd, 0x0001_0003, "c"),
        (kd, 0x0002_0007, "d"),
        (kd, 0x0000_ffff, "e"),
        (kd, 0xffff_ffff, "f"),
        (kd, 0xffff_0000, "g"),
        (other, 0x0001_0009, "h"),
    ] {
        store.put_msk(svc, &msk_in(k, id, 7)).unwrap();
    }
    let h = |k, g| store.highest_msk_id_in_group(k, g).unwrap();
    assert_eq!(h(kd, 1), Some(MskId(0x0001_0005)), "not the last stored");
    assert_eq!(h(kd, 2), Some(MskId(0x0002_0007)));
    assert_eq!(h(kd, 0), Some(MskId(0x0000_ffff)));
    assert_eq!(h(kd, 0xffff), Some(MskId(0xffff_ffff)));
    assert_eq!(h(kd, 3), None);
    assert_eq!(h(other, 1), Some(MskId(0x0001_0009)));
    assert_eq!(h(other, 2), None);
    assert_eq!(h(KeyDomainId([9, 9, 9]), 1), None);
}

pub fn corrupt_bmsc_rows_give_corrupt_not_panics(b: &dyn Backend) {
    {
        let mut store = b.open();
        for (btid, n) in [(A, 1), (B, 2), (C, 3)] {
            store.put_ue(btid, &keys(n, None)).unwrap();
        }
        store.register(A, &[TV1], ip("192.0.2.1"), 1).unwrap();
        store.register(B, &[TV1, TV2], ip("192.0.2.2"), 1).unwrap();
    }
    // No CHECK constraint on ue_addr: plain SQL writes a bad one.
    b.exec(
        "UPDATE registration SET ue_addr = 'not-an-ip' \
         WHERE btid = 'tidB@bsf.example.org' AND service = 'urn:3gpp:mbms:service:tv1'",
    );
    let store = b.open();
    assert!(matches!(
        store.registration(B, TV1),
        Err(StoreError::Corrupt("registration.ue_addr"))
    ));
    assert!(matches!(
        store.registrations(TV1),
        Err(StoreError::Corrupt("registration.ue_addr"))
    ));
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(B, TV2).unwrap(), Some(ip("192.0.2.2")));
    assert_eq!(store.registrations(TV2).unwrap().len(), 1);
    drop(store);

    b.exec_unchecked(
        "UPDATE ue SET muk = x'0011' WHERE btid = 'tidA@bsf.example.org';
         UPDATE ue SET expires = -5 WHERE btid = 'tidB@bsf.example.org';
         UPDATE ue SET counter = -1 WHERE btid = 'tidC@bsf.example.org';",
    );
    let mut store = b.open();
    assert!(matches!(store.ue(A), Err(StoreError::Corrupt("ue.muk"))));
    assert!(matches!(
        store.ue(B),
        Err(StoreError::Corrupt("ue.expires"))
    ));
    assert!(matches!(
        store.muk_counter(C),
        Err(StoreError::Corrupt("ue.counter"))
    ));
    // A damaged counter is never raised or handed out, by either kind of reservation.
    assert_eq!(store.reserve_muk_counters(&[C]).unwrap(), vec![None]);
    assert_eq!(
        store
            .reserve_shared_muk_counter_with_keys(&[C])
            .unwrap()
            .into_iter()
            .map(|v| v.map(|(c, _)| c))
            .collect::<Vec<_>>(),
        vec![None]
    );
    assert!(matches!(
        store.reserve_muk_counters_with_keys(&[A]),
        Err(StoreError::Corrupt("ue.muk"))
    ));
    drop(store);

    b.exec_unchecked(
        "UPDATE ue SET muk = x'0000000000000000000000000000000000000000000000000000000000000000',
                       mrk = x'00' WHERE btid = 'tidA@bsf.example.org';
         UPDATE ue SET counter = 4294967296, expires = NULL WHERE btid = 'tidB@bsf.example.org';",
    );
    let mut store = b.open();
    assert!(matches!(store.ue(A), Err(StoreError::Corrupt("ue.mrk"))));
    assert!(matches!(
        store.muk_counter(B),
        Err(StoreError::Corrupt("ue.counter"))
    ));
    // An out-of-range counter is never raised further or handed out.
    assert_eq!(store.reserve_muk_counters(&[B]).unwrap(), vec![None]);
    assert_eq!(store.ue(B).unwrap().map(|k| k.expires), Some(None));
}

// --- Durability and concurrency ---

/// Everything reserved or recorded is there for a new connection (a new process).
pub fn every_reservation_survives_a_new_connection(b: &dyn Backend) {
    let v = interval(1, 1000);
    {
        let mut store = b.open();
        store.put_msk("tv1", &msk_file(MSK_ID, 0x11)).unwrap();
        assert_eq!(store.reserve_mtk_ids(KD, MSK_ID, v, 10).unwrap(), 1..=10);
        assert_eq!(store.reserve_counters(KD, MSK_ID, 500).unwrap(), 1..=500);
        store
            .set_current_mtk(KD, MSK_ID, MtkId(4), b"sealed")
            .unwrap();
        store
            .reserve_srtp_indexes(KD, MSK_ID, MtkId(4), &[(0x1234, 1 << 20)])
            .unwrap();
        store.put_ue(A, &keys(1, Some(77))).unwrap();
        assert_eq!(
            store.reserve_muk_counters(&[A, A, A]).unwrap(),
            vec![Some(1), Some(2), Some(3)]
        );
        store.register(A, &[TV1], ip("192.0.2.1"), 5).unwrap();
    }
    let mut store = b.open();
    assert_eq!(
        store.current_msk("tv1").unwrap(),
        Some(msk_file(MSK_ID, 0x11))
    );
    assert_eq!(store.reserve_mtk_ids(KD, MSK_ID, v, 1).unwrap(), 11..=11);
    assert_eq!(store.counter_high_water(KD, MSK_ID).unwrap(), Some(500));
    assert_eq!(
        store.current_mtk(KD, MSK_ID).unwrap(),
        Some((MtkId(4), b"sealed".to_vec()))
    );
    assert_eq!(
        store.srtp_reservations(KD, MSK_ID, MtkId(4)).unwrap(),
        vec![(0x1234, 1 << 20)]
    );
    assert_eq!(store.ue(A).unwrap(), Some(keys(1, Some(77))));
    assert_eq!(store.muk_counter(A).unwrap(), Some(3));
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.url_kind(), b.kind());
}

/// What one thread of [`concurrent_stores_never_hand_out_a_value_twice`] was handed out.
#[derive(Default)]
struct Handed {
    mtk_ids: Vec<(u16, u16)>,
    counters: Vec<(u32, u32)>,
    muk: Vec<(String, u32)>,
    current_set: Vec<u16>,
    srtp: Vec<(u16, u32, u64)>,
}

const UES: [&str; 5] = ["ue0", "ue1", "ue2", "ue3", "ue4"];

/// Provisions every UE of [`UES`], each with its own keys.
fn provision_ues(b: &dyn Backend) {
    let mut store = b.open();
    for (i, ue) in UES.iter().enumerate() {
        store
            .put_ue(ue, &keys(u8::try_from(i).unwrap(), None))
            .unwrap();
    }
}

/// Four stores (connections) on one state, each in its own thread, reserve MTK ID blocks and
/// MIKEY counter blocks of the same MSK, MUK counters of the same UEs (batches in different
/// orders, with repeats), set the current MTK and raise SRTP marks, for about 2 s. No value
/// is handed out twice, and MTK IDs, counters and MUK counters form gap-free sequences.
pub fn concurrent_stores_never_hand_out_a_value_twice(b: &dyn Backend) {
    const THREADS: usize = 4;
    let run = Duration::from_secs(2);
    let validity = interval(1, u16::MAX);
    provision_ues(b);
    let barrier = std::sync::Barrier::new(THREADS);
    let handed: Vec<Handed> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut store = b.open();
                    let mut h = Handed::default();
                    // This thread's batch: the UEs rotated by t, and one of them twice.
                    let mut batch: Vec<&str> = UES
                        .iter()
                        .cycle()
                        .skip(t)
                        .take(UES.len())
                        .copied()
                        .collect();
                    batch.push(UES[t % UES.len()]);
                    barrier.wait();
                    let end = Instant::now() + run;
                    let mut i: u32 = 0;
                    while Instant::now() < end {
                        i += 1;
                        let n = u16::try_from(i % 3 + 1).unwrap();
                        match store.reserve_mtk_ids(KD, MSK_ID, validity, n) {
                            Ok(r) => {
                                h.mtk_ids.push((*r.start(), *r.end()));
                                let id = MtkId(*r.end());
                                match store.set_current_mtk(KD, MSK_ID, id, &r.end().to_be_bytes())
                                {
                                    Ok(()) => h.current_set.push(id.0),
                                    Err(StoreError::MtkIdNotIncreasing { .. }) => {}
                                    Err(e) => panic!("set_current_mtk: {e}"),
                                }
                                let ssrc = u32::try_from(t).unwrap();
                                let upto = u64::from(i) * 100;
                                store
                                    .reserve_srtp_indexes(
                                        KD,
                                        MSK_ID,
                                        id,
                                        &[(ssrc, upto), (99, upto)],
                                    )
                                    .unwrap();
                                h.srtp.push((id.0, ssrc, upto));
                            }
                            Err(StoreError::MtkIdsExhausted { .. }) => {}
                            Err(e) => panic!("reserve_mtk_ids: {e}"),
                        }
                        let r = store
                            .reserve_counters(KD, MSK_ID, u32::from(n) * 10)
                            .unwrap();
                        h.counters.push((*r.start(), *r.end()));
                        let got = if i.is_multiple_of(2) {
                            store.reserve_muk_counters(&batch).unwrap()
                        } else {
                            store
                                .reserve_muk_counters_with_keys(&batch)
                                .unwrap()
                                .into_iter()
                                .map(|v| v.map(|(c, _)| c))
                                .collect()
                        };
                        for (ue, v) in batch.iter().zip(got) {
                            h.muk.push(((*ue).to_owned(), v.unwrap()));
                        }
                    }
                    h
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let store = b.open();

    // MTK IDs: blocks that tile 1..=high without overlap or gap.
    let mut blocks: Vec<(u16, u16)> = handed.iter().flat_map(|h| h.mtk_ids.clone()).collect();
    assert!(blocks.len() > 20, "too few reservations: {}", blocks.len());
    blocks.sort_unstable();
    let mut next = 1u32;
    for &(first, last) in &blocks {
        assert_eq!(
            u32::from(first),
            next,
            "MTK ID blocks overlap or leave a gap"
        );
        assert!(last >= first);
        next = u32::from(last) + 1;
    }
    // MIKEY counters of the MSK: the same, and the high-water mark is the last value.
    let mut ranges: Vec<(u32, u32)> = handed.iter().flat_map(|h| h.counters.clone()).collect();
    ranges.sort_unstable();
    let mut next = 1u32;
    for &(first, last) in &ranges {
        assert_eq!(first, next, "counter blocks overlap or leave a gap");
        next = last + 1;
    }
    assert_eq!(
        store.counter_high_water(KD, MSK_ID).unwrap(),
        Some(next - 1)
    );
    // MUK counters: per UE, every value from 1 to the stored counter, each once.
    let mut per_ue: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (ue, v) in handed.iter().flat_map(|h| h.muk.clone()) {
        per_ue.entry(ue).or_default().push(v);
    }
    for ue in UES {
        let mut values = per_ue.remove(ue).unwrap();
        values.sort_unstable();
        let high = store.muk_counter(ue).unwrap().unwrap();
        let want: Vec<u32> = (1..=high).collect();
        assert!(
            values == want,
            "{ue}: MUK counter values repeat or skip (high {high})"
        );
    }
    // The current MTK only rose: it is the highest one any thread set.
    let highest_set = handed
        .iter()
        .flat_map(|h| h.current_set.clone())
        .max()
        .unwrap();
    assert_eq!(
        store.current_mtk(KD, MSK_ID).unwrap().unwrap().0,
        MtkId(highest_set)
    );
    // SRTP marks are the highest raised for each (MTK, SSRC).
    let mut want: BTreeMap<(u16, u32), u64> = BTreeMap::new();
    for &(mtk, ssrc, upto) in handed.iter().flat_map(|h| h.srtp.iter()) {
        for ssrc in [ssrc, 99] {
            let e = want.entry((mtk, ssrc)).or_default();
            *e = (*e).max(upto);
        }
    }
    for (&(mtk, ssrc), &upto) in want.iter().step_by(7) {
        let got = store.srtp_reservations(KD, MSK_ID, MtkId(mtk)).unwrap();
        assert!(
            got.contains(&(ssrc, upto)),
            "MTK {mtk} SSRC {ssrc}: {got:?}"
        );
    }
}
