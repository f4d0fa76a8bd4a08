//! The MSK lifecycle the BM-SC runs itself (`msk_lifetime_secs`): a first MSK, the next one
//! delivered ahead of its use and grantable to an MSK request, then made current.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Bmsc, Phone, Ue, config, kd};
use mbms_ua::xml::{StatusCode, parse_msk_response};

const TV1: &str = "urn:3gpp:mbms:service:tv1";

#[test]
fn the_next_msk_is_pushed_ahead_of_its_use_then_becomes_current() {
    let phone = Phone::new();
    let dir = tempfile::tempdir().unwrap();
    // tv1 (Key Group 1): MSK lifetime 3 s, the next MSK delivered 1 s before its use.
    let toml = config(&dir.path().join("state"), phone.port(), "").replace(
        &format!("id = \"{TV1}\"\n"),
        &format!("id = \"{TV1}\"\nmsk_lifetime_secs = 3\nmsk_lead_secs = 1\n"),
    );
    let bmsc = Bmsc::start(dir.path(), &toml, &["--no-verify"]);
    // The BM-SC creates the first MSK of the service itself.
    let start = Instant::now();
    let first = loop {
        if let Some(m) = bmsc.current_msk(TV1) {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no first MSK");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(first.msk_id.key_group(), 1);

    let mut ue = Ue::new(70);
    bmsc.provision(&ue);
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    let (m, _) = phone
        .recv(Duration::from_secs(5))
        .expect("current MSK at registration");
    assert_eq!(ue.open(&m).msk_id, first.msk_id);

    // About 2 s after the first MSK became current, the next one is pushed, while the
    // first is still current.
    let (m, _) = phone
        .recv(Duration::from_secs(5))
        .expect("next MSK pushed ahead");
    let next = ue.open(&m);
    assert_eq!(next.msk_id.key_group(), 1);
    assert!(next.msk_id > first.msk_id);
    assert_eq!(
        bmsc.current_msk(TV1).unwrap().msk_id,
        first.msk_id,
        "not yet current"
    );
    // A UE that missed it may ask for it.
    let r = ue.msk_request(&bmsc, &[(kd(), next.msk_id.0)]);
    let items = parse_msk_response(&r.body).unwrap();
    assert_eq!(items[0].status, StatusCode::OK, "{}", r.text());
    let (m, _) = phone
        .recv(Duration::from_secs(5))
        .expect("requested next MSK");
    assert_eq!(ue.open(&m).msk_id, next.msk_id);

    // At the end of the first MSK's lifetime the next one becomes current.
    let start = Instant::now();
    loop {
        if bmsc.current_msk(TV1).unwrap().msk_id == next.msk_id {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no switch to the next MSK"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the one after it is delivered ahead again.
    let (m, _) = phone.recv(Duration::from_secs(5)).expect("the MSK after");
    assert!(ue.open(&m).msk_id > next.msk_id);
    assert!(bmsc.stop().success());
}

/// Waits up to `secs` for `f` to hold.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(secs), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn old_msks_are_retired_after_msk_retire_secs_and_never_the_current_one() {
    let phone = Phone::new();
    let dir = tempfile::tempdir().unwrap();
    // tv1: MSKs changed by the admin only, kept 2 s after they stop being current.
    let toml = config(&dir.path().join("state"), phone.port(), "").replace(
        &format!("id = \"{TV1}\"\n"),
        &format!("id = \"{TV1}\"\nmsk_retire_secs = 2\n"),
    );
    let bmsc = Bmsc::start(dir.path(), &toml, &["--no-verify"]);
    let first = bmsc.new_msk(TV1);
    let second = bmsc.new_msk(TV1);
    assert!(second > first);
    assert!(bmsc.has_msk(kd(), first), "kept for msk_retire_secs");
    let switched = Instant::now();
    eventually(8, "the first MSK is never retired", || {
        !bmsc.has_msk(kd(), first)
    });
    assert!(
        switched.elapsed() >= Duration::from_millis(1500),
        "retired after {:?}, before msk_retire_secs",
        switched.elapsed()
    );
    assert!(bmsc.has_msk(kd(), second), "the current MSK stays");
    assert_eq!(bmsc.current_msk(TV1).unwrap().msk_id.0, second);
    // A retired MSK is not found any more: a UE asking for it gets 404 for that key.
    let mut ue = Ue::new(71);
    bmsc.provision(&ue);
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    phone
        .recv(Duration::from_secs(5))
        .expect("current MSK at registration");
    let r = ue.msk_request(&bmsc, &[(kd(), first), (kd(), second)]);
    let items = parse_msk_response(&r.body).unwrap();
    assert_eq!(items[0].status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(items[1].status, StatusCode::OK, "{}", r.text());
    // The next MSK numbers above all, retired ones included.
    let third = bmsc.new_msk(TV1);
    assert!(third > second);
    assert!(bmsc.log().contains("MSKs retired"), "{}", bmsc.log());
    assert!(bmsc.stop().success());
}

#[test]
fn a_self_run_service_retires_each_msk_after_the_switch() {
    let phone = Phone::new();
    let dir = tempfile::tempdir().unwrap();
    let toml = config(&dir.path().join("state"), phone.port(), "").replace(
        &format!("id = \"{TV1}\"\n"),
        &format!("id = \"{TV1}\"\nmsk_lifetime_secs = 2\nmsk_lead_secs = 1\nmsk_retire_secs = 1\n"),
    );
    let bmsc = Bmsc::start(dir.path(), &toml, &["--no-verify"]);
    let mut first = None;
    eventually(5, "no first MSK", || {
        first = bmsc.current_msk(TV1).map(|m| m.msk_id.0);
        first.is_some()
    });
    let first = first.unwrap();
    eventually(6, "no switch", || {
        bmsc.current_msk(TV1).unwrap().msk_id.0 > first
    });
    eventually(5, "the first MSK is not retired after the switch", || {
        !bmsc.has_msk(kd(), first)
    });
    let current = bmsc.current_msk(TV1).unwrap().msk_id.0;
    assert!(bmsc.has_msk(kd(), current));
    assert!(bmsc.stop().success());
}
