//! The MBMS key delivery chain with embedded demo keys: the BM-SC seals an MSK message for one
//! UE, the UE opens it and answers with a verification message, the BM-SC checks it, then seals
//! MTK messages that the UE opens.
//!
//! ```text
//! cargo run --release -p mbms-core --example mikey-demo [-- --pcap mikey.pcap]
//! ```
//! With `--pcap`, every message is also written as UDP to port 2269 into a pcap that Wireshark
//! and tshark dissect (`tshark -r mikey.pcap -d udp.port==2269,mikey -V`).
//! The keys are fixed demo values, never use them for a real service.

use std::time::Duration;

use mbms_core::mbms::{
    MessageIds, MskKey, MskMessageParams, MtkOpener, MtkParams, MtkSealer, ReplayCounter,
    SentMskMessage, check_verification, open_msk_message, seal_msk_message, seal_verification,
};
use mbms_core::mikey::{Identity, MikeyMessage, SecurityPolicy};
use mbms_core::*;

const BMSC: ([u8; 4], u16) = ([127, 0, 0, 1], 2269);
const UE: ([u8; 4], u16) = ([127, 0, 0, 2], 2269);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut pcap = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pcap" => pcap = Some(args.next().ok_or("--pcap needs a file name")?),
            "-h" | "--help" => {
                println!("usage: mikey-demo [--pcap FILE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let mut writer = match &pcap {
        Some(p) => Some(mbms_testkit::UdpPcapWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut t = 0u64;
    let mut emit = |what: &str, src, dst, bytes: &[u8]| {
        let msg = MikeyMessage::decode(bytes).expect("own message decodes");
        let kinds: Vec<_> = msg.payloads.iter().map(|p| p.kind()).collect();
        println!(
            "{what:<22} {:>4} bytes  payload types {kinds:?}",
            bytes.len()
        );
        if let Some(w) = writer.as_mut() {
            w.write(Duration::from_millis(t), src, dst, bytes);
            t += 20;
        }
    };

    let profile = Profile::default();
    let muk = Muk::from_bytes([
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
        0x1e, 0x1f,
    ]);
    let msk = Msk::from_bytes([
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ]);
    let (kdid, msk_id) = (KeyDomainId([0x12, 0xf4, 0x10]), MskId::new(1, 2));
    let rand: [u8; 16] = [
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae,
        0xaf,
    ];
    let policy = SecurityPolicy::srtp_default(1);
    let (idi, idr) = (
        Identity::uri("bmsc.home1.net"),
        Identity::nai("btid-1234@bsf.home1.net"),
    );
    let params = MskMessageParams {
        key_domain_id: kdid,
        msk_id,
        msk: &msk,
        validity: MtkIdInterval {
            from: MtkId(1),
            to: MtkId(100),
        },
        policy: Some(&policy),
        counter: 1,
        csb_id: CsbId(0x0102_0304),
        rand: &rand,
        idi: &idi,
        idr: &idr,
        verification_requested: true,
    };

    // BM-SC -> UE: MSK push.
    let mut msk_msg = Vec::new();
    seal_msk_message(&muk, &params, &profile, &mut msk_msg);
    emit("MSK message", BMSC, UE, &msk_msg);

    // UE: open, answer.
    let mut muk_replay = ReplayCounter::default();
    let opened = open_msk_message(&muk, &msk_msg, &mut muk_replay)?;
    println!(
        "  UE opened MSK {:?} of key domain {:?}, MTK IDs {:?}",
        opened.msk_id, opened.key_domain_id, opened.validity
    );
    let mut verification = Vec::new();
    seal_verification(&muk, &opened, &profile, &mut verification);
    emit("verification message", UE, BMSC, &verification);
    check_verification(
        &muk,
        &SentMskMessage::from_params(&params),
        &verification,
        &profile,
    )?;
    println!("  BM-SC accepted the verification");

    // BM-SC -> all UEs: MTK messages on the bearer.
    let sealer = MtkSealer::new(kdid, msk_id, &msk, CsbId(0x0102_0304), rand, profile);
    let mut opener = MtkOpener::new(MskKey::from(opened), ReplayCounter::default());
    for (counter, mtk_id, fill) in [(10u32, 1u16, 0x01u8), (11, 2, 0x02), (12, 3, 0x03)] {
        let mtk = Mtk::from_bytes([fill; 16]);
        let salt = MtkSalt::from_bytes([0xc3; 14]);
        let mut m = Vec::new();
        sealer.seal(
            &MtkParams {
                mtk_id: MtkId(mtk_id),
                mtk: &mtk,
                salt: Some(&salt),
            },
            counter,
            &mut m,
        )?;
        emit("MTK message", BMSC, ([239, 1, 1, 1], 2269), &m);
        let ids = MessageIds::peek(&m)?;
        let got = opener.open(&m)?;
        assert_eq!(got.mtk, mtk);
        println!(
            "  UE opened MTK {:?} (MKI {}) counter {:?}",
            got.mtk_id,
            hex(&mbms_core::mbms::mki(msk_id, got.mtk_id)),
            ids.counter
        );
    }
    if let Some(p) = pcap {
        println!("wrote {p}: tshark -r {p} -d udp.port==2269,mikey -V");
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
