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
