//! `--store URL`: the sender keys from the MSK the BM-SC made current in a key store they
//! share (here the store is filled through `mbms-keystore`, as `mbms-bmsc` does), and two
//! senders on one shared store never take up the same MSK at once.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{args, make_input, run};
use mbms_core::keyfile::MskFile;
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, MtkId, MtkIdInterval};

const SERVICE: &str = "urn:3gpp:mbms:service:tv1";

/// What the BM-SC stores when it creates an MSK for the service.
fn bmsc_msk(store_url: &str, number: u16) -> MskFile {
    let msk = MskFile {
        key_domain_id: KeyDomainId([0x00, 0xf1, 0x10]),
        msk_id: MskId::new(1, number),
        msk: Msk::from_bytes([0x5a ^ u8::try_from(number).unwrap(); 16]),
        validity: MtkIdInterval {
            from: MtkId(1),
            to: MtkId(u16::MAX),
        },
        csb_id: CsbId(0x0102_0304),
        rand: None,
    };
    let mut store = mbms_keystore::KeyStore::open_url(store_url).unwrap();
    store.put_msk(SERVICE, &msk).unwrap();
    msk
}

fn send_args(store_url: &str, state: &Path, input: &Path, out: &Path, rate: &str) -> Vec<String> {
    args([
        "send",
        "--service",
        SERVICE,
        "--store",
        store_url,
        "--state-dir",
        state.to_str().unwrap(),
        "--pcap",
        input.to_str().unwrap(),
        "--rate-pps",
        rate,
        "--no-network",
        "--pcap-out",
        out.to_str().unwrap(),
        "--progress",
        "never",
    ])
}

#[test]
fn the_sender_keys_from_the_msk_the_bmsc_made_current_in_a_shared_sqlite_store() {
    let dir = common::tempdir();
    let d = dir.path();
    let url = format!("sqlite:{}", d.join("bmsc").join("bmsc.db").display());
    std::fs::create_dir_all(d.join("bmsc")).unwrap();
    let input = d.join("in.pcap");
    make_input(&input, 2, 200, 300, 1000.0);
    bmsc_msk(&url, 1);
    let second = bmsc_msk(&url, 2); // the BM-SC's newer MSK is the current one

    let out = d.join("out.pcap");
    let o = run(send_args(&url, &d.join("state-a"), &input, &out, "100000"));
    o.assert_success();
    // Every MTK message opens with the BM-SC's current MSK.
    let sent = common::read_complete_pcap(&out);
    let mtk_messages: Vec<_> = sent.iter().filter(|u| u.dst.port() == 2269).collect();
    assert!(!mtk_messages.is_empty());
    for m in mtk_messages {
        common::open_mtk(&second, &m.payload);
    }
    // Its MTK IDs were reserved in the shared store, under that MSK.
    let store = mbms_keystore::KeyStore::open_url(&url).unwrap();
    assert!(
        store
            .current_mtk(second.key_domain_id, second.msk_id)
            .unwrap()
            .is_some()
    );

    // Two senders with their own state directories on the one shared store: one at a time.
    let started = std::time::Instant::now();
    let slow = |name: &str, state: &str| {
        common::spawn(send_args(
            &url,
            &d.join(state),
            &input,
            &d.join(name),
            "600",
        ))
    };
    let (b, c) = (slow("b.pcap", "state-b"), slow("c.pcap", "state-c"));
    let (ob, oc) = (common::wait(b, started), common::wait(c, started));
    ob.assert_no_panic();
    oc.assert_no_panic();
    let ok = [&ob, &oc].iter().filter(|o| o.status.success()).count();
    assert_eq!(
        ok, 1,
        "exactly one of two concurrent senders runs:\n{ob:?}\n{oc:?}"
    );
    let refused = if ob.status.success() { &oc } else { &ob };
    assert!(refused.assert_failure().contains("in use"), "{refused:?}");
}

#[test]
fn an_unusable_store_url_is_a_clear_error() {
    let dir = common::tempdir();
    let d = dir.path();
    let input = d.join("in.pcap");
    make_input(&input, 1, 100, 10, 1000.0);
    let o = run(send_args(
        "mysql://nope",
        &d.join("state"),
        &input,
        &d.join("o.pcap"),
        "1000",
    ));
    assert!(o.assert_failure().contains("mysql://nope"), "{o:?}");
    // An empty shared store: no MSK for the service yet.
    let url = format!("sqlite:{}", d.join("empty.db").display());
    let o = run(send_args(
        &url,
        &d.join("state"),
        &input,
        &d.join("o.pcap"),
        "1000",
    ));
    assert!(o.assert_failure().contains("no MSK for service"), "{o:?}");
}
