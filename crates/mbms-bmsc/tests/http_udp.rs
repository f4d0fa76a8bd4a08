//! The BM-SC over real HTTP and UDP on loopback: registration, push, verification,
//! retransmission, MSK requests with several status codes, "no push" mode.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Bmsc, Phone, Ue, config, http, idr_of, kd};
use mbms_ua::xml::{StatusCode, parse_msk_response, parse_register_response};

const TV1: &str = "urn:3gpp:mbms:service:tv1";
const TV2: &str = "urn:3gpp:mbms:service:tv2";

/// Which key store the BM-SC of a test uses.
#[derive(Clone, Copy)]
enum Store {
    Sqlite,
    Postgres,
}

/// A running BM-SC and what must live as long as it.
struct Fixture {
    bmsc: Bmsc,
    _dir: tempfile::TempDir,
    _db: Option<common::PgDb>,
}

impl std::ops::Deref for Fixture {
    type Target = Bmsc;
    fn deref(&self) -> &Bmsc {
        &self.bmsc
    }
}

impl Fixture {
    fn stop(self) -> std::process::ExitStatus {
        self.bmsc.stop()
    }
}

thread_local! {
    static STORE: std::cell::Cell<Store> = const { std::cell::Cell::new(Store::Sqlite) };
}

/// Starts a BM-SC on the test's store (`None`: PostgreSQL wanted but not configured).
fn start(phone: &Phone, extra: &str, args: &[&str]) -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let db = match STORE.with(std::cell::Cell::get) {
        Store::Sqlite => None,
        Store::Postgres => Some(common::PgDb::new().expect("checked by the test macro")),
    };
    let extra = match &db {
        Some(db) => format!("{extra}\nstore = {:?}", db.url),
        None => extra.to_owned(),
    };
    let toml = config(&dir.path().join("state"), phone.port(), &extra);
    let bmsc = Bmsc::start(dir.path(), &toml, args);
    let keep = tempfile::tempdir().unwrap();
    (
        keep,
        Fixture {
            bmsc,
            _dir: dir,
            _db: db,
        },
    )
}

/// Each test body runs twice: on SQLite, and on PostgreSQL when `MBMS_TEST_POSTGRES_URL` is
/// set (required when `MBMS_REQUIRE_POSTGRES=1`).
macro_rules! on_both_stores {
    ($($body:ident => $sqlite:ident, $postgres:ident;)*) => {
        $(
            #[test]
            fn $sqlite() {
                STORE.with(|s| s.set(Store::Sqlite));
                $body();
            }

            #[test]
            fn $postgres() {
                if common::PgDb::new().is_none() {
                    return;
                }
                STORE.with(|s| s.set(Store::Postgres));
                $body();
            }
        )*
    };
}

on_both_stores! {
    register_push_verify => register_pushes_the_msk_which_opens_with_the_muk_and_the_verification_is_accepted, register_push_verify_postgres;
    retransmission => without_a_verification_the_message_is_retransmitted_then_the_ue_is_marked_for_pull, retransmission_postgres;
    verification_twice => a_verification_sent_twice_counts_once, verification_twice_postgres;
    msk_request => msk_request_answers_one_status_per_key_and_sends_only_the_granted_ones, msk_request_postgres;
    no_push => no_push_mode_sends_nothing_unasked_and_publishes_the_backoff_window, no_push_postgres;
    new_msk_to_all => a_new_msk_is_pushed_to_every_registered_ue_with_rising_counters, new_msk_to_all_postgres;
    download => download_services_get_msk_messages_with_the_empty_map, download_postgres;
    curl => curl_registers_with_its_own_digest_implementation, curl_postgres;
}

fn register_push_verify() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &[]);
    let mut ue = Ue::new(1);
    bmsc.provision(&ue);
    let msk_id = bmsc.new_msk(TV1);

    let r = ue.register(&bmsc, &[TV1, "urn:3gpp:mbms:service:nope"]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/mbms-register-response+xml")
    );
    let items = parse_register_response(&r.body).unwrap();
    let codes: Vec<(String, u16)> = items
        .iter()
        .map(|s| (s.service_id.clone(), s.status.0))
        .collect();
    assert_eq!(
        codes,
        vec![
            (TV1.to_owned(), 200),
            ("urn:3gpp:mbms:service:nope".to_owned(), 404)
        ]
    );

    let (msg, from) = phone.recv(Duration::from_secs(5)).expect("MSK push");
    assert_eq!(from, bmsc.push_from);
    let opened = ue.open(&msg);
    // Answer before the slow checks below (opening a store connection), as a UE would.
    phone
        .sock
        .send_to(&ue.verification(&opened), bmsc.push_from)
        .unwrap();
    let stored = bmsc.current_msk(TV1).unwrap();
    assert_eq!(opened.msk_id.0, msk_id);
    assert_eq!(opened.msk_id, stored.msk_id);
    assert_eq!(opened.key_domain_id, kd());
    assert_eq!(opened.msk, stored.msk, "the pushed MSK is the stored one");
    assert!(opened.verification_requested, "V flag set by default");
    assert!(opened.policy.is_some(), "streaming service: SP payload");
    bmsc.wait_push_count("verified", 1);
    assert_eq!(bmsc.push_count("pending"), 0);
    // Verified: nothing is retransmitted.
    let late = phone.drain(Duration::from_millis(600));
    assert!(
        late.is_empty(),
        "{} late datagrams, same as the push: {}; health {}\n{}",
        late.len(),
        late.iter().all(|m| *m == msg),
        bmsc.health(),
        bmsc.log()
    );
    assert_eq!(bmsc.push_count("retransmitted"), 0);
    // The registration is stored with the request's source address.
    let store = bmsc.store();
    assert_eq!(
        store.registration(&ue.btid, TV1).unwrap(),
        Some("127.0.0.1".parse().unwrap())
    );
    assert!(bmsc.stop().success());
}

fn retransmission() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &[]);
    let mut ue = Ue::new(2);
    bmsc.provision(&ue);
    bmsc.new_msk(TV1);
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    // retries = 2, first_retry_ms = 150: sent at 0, resent at ~150 ms and ~450 ms.
    let got = phone.drain(Duration::from_millis(1500));
    assert_eq!(got.len(), 3, "first transmission and 2 retransmissions");
    assert!(
        got.iter().all(|m| *m == got[0]),
        "retransmissions repeat the message"
    );
    ue.open(&got[0]);
    bmsc.wait_push_count("marked_for_pull", 1);
    assert_eq!(bmsc.push_count("retransmitted"), 2);
    assert_eq!(bmsc.push_count("pending"), 0);
    // A late verification for a message given up on is not accepted.
    let opened = Ue::new(2).open(&got[0]);
    phone
        .sock
        .send_to(&ue.verification(&opened), bmsc.push_from)
        .unwrap();
    bmsc.wait_push_count("verification_rejected", 1);
    assert_eq!(bmsc.push_count("verified"), 0);
}

fn verification_twice() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &[]);
    let mut ue = Ue::new(3);
    bmsc.provision(&ue);
    bmsc.new_msk(TV1);
    ue.register(&bmsc, &[TV1]);
    let (msg, _) = phone.recv(Duration::from_secs(5)).unwrap();
    let opened = ue.open(&msg);
    let v = ue.verification(&opened);
    phone.sock.send_to(&v, bmsc.push_from).unwrap();
    bmsc.wait_push_count("verified", 1);
    phone.sock.send_to(&v, bmsc.push_from).unwrap();
    bmsc.wait_push_count("verification_rejected", 1);
    assert_eq!(bmsc.push_count("verified"), 1);
    // A verification under another MUK is rejected too.
    let mut other = Ue::new(4);
    bmsc.provision(&other);
    other.register(&bmsc, &[TV1]);
    let (msg, _) = phone.recv(Duration::from_secs(5)).unwrap();
    let opened = other.open(&msg);
    let forged = Ue::new(5).verification(&opened);
    phone.sock.send_to(&forged, bmsc.push_from).unwrap();
    bmsc.wait_push_count("verification_rejected", 2);
    assert_eq!(bmsc.push_count("verified"), 1);
}

fn msk_request() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &["--no-push", "--no-verify"]);
    let mut ue = Ue::new(6);
    bmsc.provision(&ue);
    let tv1 = bmsc.new_msk(TV1);
    let tv2 = bmsc.new_msk(TV2);
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    let r = ue.msk_request(&bmsc, &[(kd(), tv1), (kd(), 0x0009_0009), (kd(), tv2)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/mbms-msk-response+xml")
    );
    let items = parse_msk_response(&r.body).unwrap();
    let codes: Vec<(u32, StatusCode)> = items.iter().map(|k| (k.key.msk_id.0, k.status)).collect();
    assert_eq!(
        codes,
        vec![
            (tv1, StatusCode::OK),
            (0x0009_0009, StatusCode::NOT_FOUND),
            (tv2, StatusCode::FORBIDDEN)
        ]
    );
    let got = phone.drain(Duration::from_millis(800));
    assert_eq!(got.len(), 1, "one message, for the granted key");
    assert_eq!(ue.open(&got[0]).msk_id.0, tv1);
}

fn no_push() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &["--no-push"]);
    let mut ue = Ue::new(7);
    bmsc.provision(&ue);
    let id = bmsc.new_msk(TV1);
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    bmsc.new_msk(TV1);
    assert!(
        phone.drain(Duration::from_millis(700)).is_empty(),
        "no push in no-push mode"
    );
    assert_eq!(bmsc.push_count("sent"), 0);
    let d = http(
        bmsc.listen,
        "GET",
        &format!("/security-description?service={TV1}"),
        &[],
        b"",
    );
    assert_eq!(d.status, 200);
    let text = d.text();
    assert!(text.contains("mskRequestBackoffWindow=\"60\""), "{text}");
    assert!(text.contains("mskPush=\"false\""), "{text}");
    // The UE pulls: the current MSK (the second one) is granted, the first is not current.
    let current = bmsc.current_msk(TV1).unwrap().msk_id.0;
    assert_eq!(current, id + 1);
    let r = ue.msk_request(&bmsc, &[(kd(), current)]);
    let items = parse_msk_response(&r.body).unwrap();
    assert_eq!(items[0].status, StatusCode::OK);
    let (msg, _) = phone.recv(Duration::from_secs(5)).expect("requested MSK");
    assert_eq!(ue.open(&msg).msk_id.0, current);
}

fn new_msk_to_all() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &["--no-verify"]);
    let mut ues: Vec<Ue> = (10..15).map(Ue::new).collect();
    for ue in &mut ues {
        bmsc.provision(ue);
        assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    }
    // No MSK yet: nothing to push at registration.
    assert!(phone.drain(Duration::from_millis(300)).is_empty());
    let counter = |m: &[u8]| {
        mbms_core::mbms::MessageIds::peek(m)
            .unwrap()
            .counter
            .unwrap()
    };
    let mut last_shared = 0;
    for round in 0..4 {
        if round == 2 {
            // A message of UE 1's own (its MSK request) between two pushes to all: the next
            // shared value lies above it.
            let current = bmsc.current_msk(TV1).unwrap().msk_id.0;
            let r = ues[1].msk_request(&bmsc, &[(kd(), current)]);
            assert_eq!(r.status, 200, "{}", r.text());
            let own = phone.drain(Duration::from_millis(700));
            assert_eq!(own.len(), 1);
            assert!(counter(&own[0]) > last_shared);
            ues[1].open(&own[0]);
        }
        let id = bmsc.new_msk(TV1);
        let mut got = phone.drain(Duration::from_millis(700));
        assert_eq!(got.len(), ues.len(), "round {round}");
        got.sort_by_key(|m| idr_of(m));
        for (ue, msg) in ues.iter_mut().zip(&got) {
            assert_eq!(idr_of(msg), ue.btid);
            // open() checks the counter rises for this MUK.
            let opened = ue.open(msg);
            assert_eq!(opened.msk_id.0, id);
            assert!(!opened.verification_requested);
        }
        // A push to all is one shared counter value (one row written, not one per UE).
        let values: std::collections::BTreeSet<u32> = got.iter().map(|m| counter(m)).collect();
        assert_eq!(values.len(), 1, "round {round}: {values:?}");
        let shared = *values.first().unwrap();
        assert!(shared > last_shared, "round {round}");
        last_shared = shared;
    }
    // A deregistered UE gets no more pushes.
    let r = ues[0].deregister(&bmsc, &[TV1, TV2]);
    let items = parse_register_response(&r.body).unwrap();
    assert_eq!(items[0].status, StatusCode::OK);
    assert_eq!(
        items[1].status,
        StatusCode::NOT_FOUND,
        "was never registered"
    );
    bmsc.new_msk(TV1);
    let got = phone.drain(Duration::from_millis(700));
    assert_eq!(got.len(), ues.len() - 1);
    assert!(got.iter().all(|m| idr_of(m) != ues[0].btid));
}

fn download() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &["--no-verify"]);
    let mut ue = Ue::new(20);
    bmsc.provision(&ue);
    bmsc.new_msk("urn:3gpp:mbms:service:files");
    ue.register(&bmsc, &["urn:3gpp:mbms:service:files"]);
    let (msg, _) = phone.recv(Duration::from_secs(5)).unwrap();
    let opened = ue.open(&msg);
    assert!(opened.policy.is_none());
    assert_eq!(opened.msk_id.key_group(), 3);
}

fn curl() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is needed for this interop test (apt-get install -y curl)");
    }
    let phone = Phone::new();
    let (dir, bmsc) = start(&phone, "", &[]);
    let ue = Ue::new(30);
    bmsc.provision(&ue);
    bmsc.new_msk(TV1);
    let body = dir.path().join("register.xml");
    std::fs::write(
        &body,
        format!(
            "<mbmsUserServiceRegistration xmlns=\"urn:3GPP:metadata:2005:MBMS:mbmsRegister\">\
             <serviceID>{TV1}</serviceID></mbmsUserServiceRegistration>"
        ),
    )
    .unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "--digest", "-u"])
        .arg(format!("{}:{}", ue.btid, ue.password()))
        .args([
            "-H",
            "Content-Type: application/mbms-register+xml",
            "-w",
            "\n%{http_code}",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!(
            "http://{}/keymanagement?requesttype=register",
            bmsc.listen
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n200"),
        "curl: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("<statusCode>200</statusCode>"), "{text}");
    let (msg, _) = phone
        .recv(Duration::from_secs(5))
        .expect("push after curl's registration");
    assert_eq!(idr_of(&msg), ue.btid);
}
