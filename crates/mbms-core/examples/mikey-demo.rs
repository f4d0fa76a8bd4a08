//! The MBMS key delivery chain with embedded demo keys: the BM-SC seals an MSK message for one
//! UE, the UE opens it and answers with a verification message, the BM-SC checks it, then seals
//! MTK messages that the UE opens, and protects SRTP packets under each MTK that the UE opens by
//! MKI.
//!
//! ```text
//! cargo run --release -p mbms-core --example mikey-demo [-- --pcap mikey.pcap]
//! ```
//! With `--pcap`, the MIKEY messages are also written as UDP to port 2269 and the SRTP packets
//! to port 5004, into a pcap that Wireshark and tshark dissect
//! (`tshark -r mikey.pcap -d udp.port==2269,mikey -d udp.port==5004,rtp -V`).
//! The keys are fixed demo values, never use them for a real service.

use std::time::Duration;

use bytes::BytesMut;
use mbms_core::mbms::{
    MessageIds, MskKey, MskMessageParams, MtkOpener, MtkParams, MtkSealer, ReplayCounter,
    SentMskMessage, check_verification, open_msk_message, seal_msk_message, seal_verification,
};
use mbms_core::mikey::{Identity, MikeyMessage, SecurityPolicy};
use mbms_core::srtp::{SrtpPolicy, SrtpReceiver, SrtpSender};
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
    let mut out = Capture {
        writer: match &pcap {
            Some(p) => Some(mbms_testkit::UdpPcapWriter::new(std::fs::File::create(p)?)),
            None => None,
        },
        t: 0,
    };
    // MIKEY messages are printed with their payload chain; SRTP packets only captured.
    let mut emit = |what: &str, src, dst, bytes: &[u8]| {
        if what != "SRTP" {
            let msg = MikeyMessage::decode(bytes).expect("own message decodes");
            let kinds: Vec<_> = msg.payloads.iter().map(|p| p.kind()).collect();
            println!(
                "{what:<22} {:>4} bytes  payload types {kinds:?}",
                bytes.len()
            );
        }
        out.write(src, dst, bytes);
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

    // The SRTP policy travels with the MSK (RFC 4563 §7).
    let policy = SrtpPolicy::from_mikey(opened.policy.as_ref().ok_or("streaming MSK without SP")?)?;
    let mut srtp_tx = SrtpSender::new(policy);
    let mut srtp_rx = SrtpReceiver::new(policy);
    let mut rtp_seq = 0xfff0u16;

    // BM-SC -> all UEs: MTK messages on the bearer, each followed by SRTP packets under it.
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
        let mki = mbms_core::mbms::mki(msk_id, got.mtk_id);
        println!(
            "  UE opened MTK {:?} (MKI {}) counter {:?}",
            got.mtk_id,
            hex(&mki),
            ids.counter
        );

        // The head-end switches to the new MTK at a packet boundary; the UE keys by MKI.
        srtp_tx.set_key(&mki, &mtk, &salt);
        srtp_rx.add_key(
            &mki,
            &got.mtk,
            got.salt.as_ref().ok_or("streaming MTK without salt")?,
        );
        let mut opened_packets = 0;
        for n in 0..8u8 {
            rtp_seq = rtp_seq.wrapping_add(1);
            let mut rtp = vec![0x80, 96];
            rtp.extend_from_slice(&rtp_seq.to_be_bytes());
            rtp.extend_from_slice(&[0, 0, 0, n, 0xca, 0xfe, 0xba, 0xbe]);
            rtp.extend_from_slice(b"MBMS demo payload");
            let mut pkt = BytesMut::from(&rtp[..]);
            srtp_tx.protect(&mut pkt)?;
            emit("SRTP", BMSC_RTP, GROUP_RTP, &pkt);
            let len = srtp_rx.unprotect(&mut pkt)?;
            assert_eq!(&pkt[..len], &rtp[..]);
            opened_packets += 1;
        }
        println!("  {opened_packets} SRTP packets protected under it and opened by the UE");
    }
    if let Some(p) = pcap {
        println!("wrote {p}: tshark -r {p} -d udp.port==2269,mikey -d udp.port==5004,rtp -V");
    }
    Ok(())
}

/// The pcap being written, if any, and the time of its next packet.
struct Capture {
    writer: Option<mbms_testkit::UdpPcapWriter<std::fs::File>>,
    t: u64,
}

impl Capture {
    fn write(&mut self, src: ([u8; 4], u16), dst: ([u8; 4], u16), bytes: &[u8]) {
        if let Some(w) = self.writer.as_mut() {
            w.write(Duration::from_millis(self.t), src, dst, bytes);
            self.t += 20;
        }
    }
}

const BMSC_RTP: ([u8; 4], u16) = ([127, 0, 0, 1], 5004);
const GROUP_RTP: ([u8; 4], u16) = ([239, 1, 1, 1], 5004);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
