//! The PostgreSQL backend: the behaviour tests shared with SQLite (`tests/backends/mod.rs`),
//! then what is PostgreSQL's own: the schema on first open, refusals, instances starting
//! together, passwords kept out of errors, a lost connection.
//!
//! They need a server: see `tests/backends/mod.rs` (`MBMS_TEST_POSTGRES_URL`,
//! `MBMS_REQUIRE_POSTGRES`) and `scripts/postgres-for-tests.sh`.
#![allow(clippy::unwrap_used)]

mod backends;

use backends::{Backend, Postgres};
use mbms_core::MskId;
use mbms_keystore::{KeyStore, SCHEMA_VERSION, StoreError};

all_backend_tests!(Postgres::new());

fn tables(db: &Postgres) -> i64 {
    db.count("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
}

/// The password of the test URL, if it has one (to look for it in error messages).
fn password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let creds = &rest[..rest.find('@')?];
    Some(creds.split_once(':')?.1.to_owned()).filter(|p| p.len() >= 3)
}

#[test]
fn the_schema_is_created_at_the_first_open_and_found_at_the_next() {
    let Some(db) = Postgres::new() else { return };
    assert_eq!(tables(&db), 0);
    let store = db.open();
    assert_eq!(store.url_kind(), "postgres");
    assert_eq!(store.path(), None);
    assert_eq!(
        tables(&db),
        10,
        "9 tables of schema version 3 and mbms_meta"
    );
    assert_eq!(
        db.count("SELECT value::bigint FROM mbms_meta WHERE key = 'schema_version'"),
        i64::from(SCHEMA_VERSION)
    );
    // The Debug form names the database, without the password.
    let shown = format!("{store:?}");
    assert!(shown.contains(&db.name), "{shown}");
    if let Some(pw) = password(&db.url) {
        assert!(!shown.contains(&format!(":{pw}@")), "{shown}");
    }
    drop(store);
    let mut store = db.open();
    store
        .reserve_counters(backends::KD, backends::MSK_ID, 3)
        .unwrap();
    drop(store);
    let store = db.open();
    assert_eq!(tables(&db), 10);
    assert_eq!(
        store
            .counter_high_water(backends::KD, backends::MSK_ID)
            .unwrap(),
        Some(3)
    );
    // The schema's CHECK constraints are there: a 1-byte MSK does not fit.
    let mut raw = db.raw();
    let r = raw.batch_execute("INSERT INTO msk VALUES ('\\x010203', 1, '\\x00', 1, 2, 0, NULL)");
    assert!(r.is_err(), "a 1-byte MSK must not fit the schema");
    let r = raw.batch_execute("INSERT INTO mikey_counter VALUES ('\\x010203', 1, 4294967296)");
    assert!(r.is_err(), "a counter above 2^32-1 must not fit the schema");
}

#[test]
fn instances_starting_together_create_the_schema_once() {
    let Some(db) = Postgres::new() else { return };
    let barrier = std::sync::Barrier::new(6);
    std::thread::scope(|s| {
        for i in 0..6u32 {
            let (db, barrier) = (&db, &barrier);
            s.spawn(move || {
                barrier.wait();
                let mut store = KeyStore::open_url(&db.url).unwrap();
                store
                    .reserve_counters(backends::KD, backends::MSK_ID, 1)
                    .unwrap();
                store
                    .reserve_mtk_ids(backends::KD, MskId(i), backends::interval(1, 9), 1)
                    .unwrap();
            });
        }
    });
    assert_eq!(tables(&db), 10);
    assert_eq!(db.count("SELECT count(*) FROM mbms_meta"), 1);
    let store = db.open();
    assert_eq!(
        store
            .counter_high_water(backends::KD, backends::MSK_ID)
            .unwrap(),
        Some(6)
    );
}

#[test]
fn a_database_of_something_else_is_refused() {
    let Some(db) = Postgres::new() else { return };
    db.exec("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');");
    let err = KeyStore::open_url(&db.url).unwrap_err();
    assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&db.name), "{text}");
    assert!(
        text.contains("a PostgreSQL database, but not an MBMS key store"),
        "{text}"
    );
    if let Some(pw) = password(&db.url) {
        assert!(!text.contains(&format!(":{pw}@")), "{text}");
    }
    // Nothing was created.
    assert_eq!(tables(&db), 1);
}

#[test]
fn a_newer_or_unknown_schema_version_is_refused() {
    let Some(db) = Postgres::new() else { return };
    drop(db.open());
    db.exec(&format!(
        "UPDATE mbms_meta SET value = '{}' WHERE key = 'schema_version'",
        SCHEMA_VERSION + 1
    ));
    let err = KeyStore::open_url(&db.url).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. }
            if found == i64::from(SCHEMA_VERSION + 1) && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
    assert!(err.to_string().contains(&db.name), "{err}");

    db.exec("UPDATE mbms_meta SET value = '1' WHERE key = 'schema_version'");
    let err = KeyStore::open_url(&db.url).unwrap_err();
    assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");

    db.exec("UPDATE mbms_meta SET value = 'two' WHERE key = 'schema_version'");
    let err = KeyStore::open_url(&db.url).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt("mbms_meta.schema_version")),
        "{err:?}"
    );
    db.exec("DELETE FROM mbms_meta");
    let err = KeyStore::open_url(&db.url).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt("mbms_meta.schema_version")),
        "{err:?}"
    );
}

#[test]
fn a_version_2_schema_is_upgraded_in_place_and_keeps_its_counters() {
    let Some(db) = Postgres::new() else { return };
    {
        let mut store = db.open();
        store.put_ue("tidA", &backends::keys(1, None)).unwrap();
        assert_eq!(
            store.reserve_muk_counters(&["tidA", "tidA"]).unwrap(),
            vec![Some(1), Some(2)]
        );
    }
    // Back to what version 2 created: no counter floor, registrations indexed by service only.
    db.exec(
        "DROP TABLE muk_floor; DROP INDEX registration_by_service; \
         CREATE INDEX registration_by_service ON registration (service); \
         UPDATE mbms_meta SET value = '2' WHERE key = 'schema_version'",
    );
    let mut store = db.open();
    assert_eq!(
        db.count("SELECT value::bigint FROM mbms_meta WHERE key = 'schema_version'"),
        i64::from(SCHEMA_VERSION)
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'registration_by_service' \
             AND indexdef LIKE '%INCLUDE (ue_addr)%'"
        ),
        1,
        "covering index"
    );
    assert_eq!(store.muk_counter("tidA").unwrap(), Some(2));
    assert_eq!(
        store
            .reserve_shared_muk_counter_with_keys(&["tidA"])
            .unwrap(),
        vec![Some((3, backends::keys(1, None).muk))]
    );
    drop(store);
    assert_eq!(db.open().muk_counter("tidA").unwrap(), Some(3));
}

/// No server needed: nothing listens on port 1.
#[test]
fn connection_errors_show_the_url_without_its_password() {
    for (url, shown) in [
        (
            "postgres://mbms:topsecret@127.0.0.1:1/keys?connect_timeout=5",
            "postgres://mbms@127.0.0.1:1/keys?connect_timeout=5",
        ),
        (
            "postgresql://mbms@127.0.0.1:1/keys?password=topsecret",
            "postgresql://mbms@127.0.0.1:1/keys",
        ),
        // Not parseable: the error names the URL, still without the password.
        (
            "postgres://mbms:topsecret@127.0.0.1:notaport/keys",
            "postgres://mbms@127.0.0.1:notaport/keys",
        ),
    ] {
        let err = KeyStore::open_url(url).unwrap_err();
        assert!(
            matches!(&err, StoreError::OpenPostgres { url, .. } if url == shown),
            "{err:?}"
        );
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("topsecret"), "{text}");
            assert!(text.contains(shown), "{text}");
        }
    }
}

#[test]
fn a_wrong_password_is_an_open_error_without_the_password() {
    let Some(db) = Postgres::new() else { return };
    let Some(pw) = password(&db.url) else {
        println!("skipped: the test URL has no password");
        return;
    };
    let bad = db.url.replacen(&format!(":{pw}@"), ":wrong-Pa55word@", 1);
    let err = KeyStore::open_url(&bad).unwrap_err();
    assert!(matches!(err, StoreError::OpenPostgres { .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("wrong-Pa55word"), "{text}");
    }
    // The server's answer is in the message (an authentication error; with `trust`
    // authentication the wrong password is simply accepted and we never get here).
    if let StoreError::OpenPostgres { source, .. } = &err {
        assert!(source.code().is_some() || !source.to_string().is_empty());
    }
}

#[test]
fn a_lost_connection_is_reestablished_at_the_next_call() {
    let Some(db) = Postgres::new() else { return };
    let mut store = db.open();
    assert_eq!(
        store
            .reserve_counters(backends::KD, backends::MSK_ID, 10)
            .unwrap(),
        1..=10
    );
    // The server ends every other session of the database (as a restart would).
    let mut admin = db.raw();
    let ended = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(ended, 1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut failures = 0;
    let range = loop {
        match store.reserve_counters(backends::KD, backends::MSK_ID, 10) {
            Ok(r) => break r,
            Err(e) => {
                assert!(matches!(e, StoreError::Postgres(_)), "{e:?}");
                failures += 1;
                assert!(failures < 2, "the connection was not re-established: {e}");
            }
        }
    };
    assert_eq!(range, 11..=20, "the sequence goes on where it was");
    assert_eq!(
        store
            .counter_high_water(backends::KD, backends::MSK_ID)
            .unwrap(),
        Some(20)
    );
}

#[test]
fn test_database_urls_replace_the_database_name() {
    assert_eq!(
        backends::with_dbname("postgres://u:p@h:5/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:5/x?sslmode=disable"
    );
    assert_eq!(backends::with_dbname("postgres://h", "x"), "postgres://h/x");
}

/// B-TIDs and services are listed in byte order (as SQLite's BINARY collation) even in a
/// database whose default collation is a linguistic one.
#[test]
fn listings_are_in_byte_order_under_a_linguistic_collation() {
    let Some(db) = Postgres::new_with("LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0")
    else {
        return;
    };
    let db = match db {
        Ok(db) => db,
        Err(e) => {
            println!("skipped: the server cannot create an ICU database: {e}");
            return;
        }
    };
    assert_eq!(
        db.count("SELECT count(*) FROM (VALUES ('Zulu'), ('alpha')) AS v (x) WHERE x < 'Zulu'"),
        1,
        "the database's collation is a linguistic one"
    );
    backends::registrations_of_a_service_are_listed_by_btid_in_byte_order(&db);
    let mut store = db.open();
    store.put_ue("ue", &backends::keys(1, None)).unwrap();
    let services = ["svc-b", "Svc-a", "svc_a", "svc-A"];
    store
        .register("ue", &services, "192.0.2.1".parse().unwrap(), 1)
        .unwrap();
    for s in services {
        store
            .put_msk(s, &backends::msk_file(backends::MSK_ID, 1))
            .unwrap();
    }
    assert_eq!(
        store
            .services_for_msk("ue", backends::KD, backends::MSK_ID)
            .unwrap(),
        vec!["Svc-a", "svc-A", "svc-b", "svc_a"]
    );
}

#[test]
fn one_session_at_a_time_holds_a_senders_msk_lock() {
    let Some(db) = Postgres::new() else { return };
    let kd = mbms_core::KeyDomainId([0x00, 0xf1, 0x10]);
    let (mut a, mut b) = (db.open(), db.open());
    assert!(a.lock_msk_for_session(kd, MskId(0x0001_0001)).unwrap());
    assert!(!b.lock_msk_for_session(kd, MskId(0x0001_0001)).unwrap());
    // Another MSK is free; the lock is not a transaction lock of the same MSK.
    assert!(b.lock_msk_for_session(kd, MskId(0x0001_0002)).unwrap());
    a.reserve_mtk_ids(kd, MskId(0x0001_0001), backends::interval(1, 10), 2)
        .unwrap();
    b.reserve_mtk_ids(kd, MskId(0x0001_0001), backends::interval(1, 10), 2)
        .unwrap();
    // The lock goes with the connection: once the server has seen the client go (it ends
    // the backend after the client closes, not before `drop` returns).
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.lock_msk_for_session(kd, MskId(0x0001_0001)).unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its connection by 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SQLite: always granted (the sender locks a file beside the store instead).
    let dir = tempfile::tempdir().unwrap();
    let mut s = KeyStore::open(&dir.path().join("k.db")).unwrap();
    assert!(s.lock_msk_for_session(kd, MskId(1)).unwrap());
    assert!(s.lock_msk_for_session(kd, MskId(1)).unwrap());
}
