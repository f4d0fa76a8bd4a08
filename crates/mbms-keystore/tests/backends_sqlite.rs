//! The behaviour tests shared with the PostgreSQL backend (`tests/backends/mod.rs`), on an
//! SQLite file opened through `KeyStore::open_url("sqlite:…")`.
#![allow(clippy::unwrap_used)]

mod backends;

all_backend_tests!(Some(backends::Sqlite::new()));

use mbms_keystore::{KeyStore, StoreError};

#[test]
fn sqlite_urls_name_files_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.sqlite");
    {
        let mut store = KeyStore::open(&path).unwrap();
        store
            .reserve_counters(backends::KD, backends::MSK_ID, 7)
            .unwrap();
    }
    // sqlite:PATH and sqlite://PATH open the same file as KeyStore::open.
    for url in [
        format!("sqlite:{}", path.display()),
        format!("sqlite://{}", path.display()),
    ] {
        let store = KeyStore::open_url(&url).unwrap();
        assert_eq!(store.path(), Some(path.as_path()), "{url}");
        assert_eq!(store.url_kind(), "sqlite");
        assert_eq!(
            store
                .counter_high_water(backends::KD, backends::MSK_ID)
                .unwrap(),
            Some(7),
            "{url}"
        );
    }
    let store = KeyStore::open_url("sqlite::memory:").unwrap();
    assert_eq!(store.path(), None);
    assert_eq!(store.url_kind(), "sqlite");
    for bad in [
        "sqlite:",
        "sqlite://",
        "file:k.sqlite",
        "k.sqlite",
        "mysql://root:pw@db/x",
    ] {
        let err = KeyStore::open_url(bad).unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedUrl { .. }),
            "{bad}: {err:?}"
        );
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
}
