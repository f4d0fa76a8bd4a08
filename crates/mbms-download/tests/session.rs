//! A download session end to end in memory: files protected under two MTKs (an MTK rotation,
//! one with each DCF method), their MTK messages as `application/mikey` objects, FLUTE packets
//! from the sender pushed into the receiver with and without loss; the carousel repairs the
//! loss, objects that complete before their key wait for it, and every file comes out
//! byte-identical.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::time::{Duration, SystemTime};

use flute::core::UDPEndpoint;
use mbms_core::dcf::{DcfHeader, DcfKeyRef, DcfMethod};
use mbms_core::mbms::{MskKey, MtkParams, MtkSealer};
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, Mtk, MtkId, MtkIdInterval, Profile};
use mbms_download::receiver::DownloadReceiver;
use mbms_download::sender::{DownloadSender, SessionConfig, protect_file};

const KD: KeyDomainId = KeyDomainId([0x12, 0xf4, 0x10]);
const MSK_ID: MskId = MskId(0x0001_0002);
const GROUP: &str = "239.1.2.3";
const PORT: u16 = 4001;

fn msk_key() -> MskKey {
    MskKey {
        key_domain_id: KD,
        msk_id: MSK_ID,
        msk: Msk::from_bytes([0x3c; 16]),
        validity: MtkIdInterval {
            from: MtkId(1),
            to: MtkId(100),
        },
        rand: Some(vec![0x44; 16]),
        policy: None,
    }
}

/// The MTK message announcing `mtk` as MTK `mtk_id` under the test MSK (CSB ID `csb`), with
/// timestamp counter `counter`.
fn mtk_message(csb: CsbId, mtk_id: MtkId, mtk: &Mtk, counter: u32) -> Vec<u8> {
    let key = msk_key();
    let sealer = MtkSealer::new(KD, MSK_ID, &key.msk, csb, [0x44; 16], Profile::default());
    let mut msg = Vec::new();
    sealer
        .seal(
            &MtkParams {
                mtk_id,
                mtk,
                salt: None,
            },
            counter,
            &mut msg,
        )
        .unwrap();
    msg
}

/// A deterministic generator (xorshift) for file contents and packet loss.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

struct Session {
    sender: DownloadSender,
    files: Vec<(String, Vec<u8>)>,
}

/// 20 files of mixed sizes, the first ten under MTK 1 (CBC), the rest under MTK 2 (CTR);
/// the key objects are added after the files so that files can complete first.
fn session(dir: &std::path::Path, carousel: Option<Duration>) -> Session {
    let mtks = [
        (MtkId(1), Mtk::from_bytes([0x01; 16])),
        (MtkId(2), Mtk::from_bytes([0x02; 16])),
    ];
    let mut cfg = SessionConfig::new(
        7,
        GROUP,
        PORT,
        url::Url::parse("http://bmsc.example.org/tv1/").unwrap(),
    );
    cfg.carousel = carousel;
    let mut sender = DownloadSender::new(&cfg).unwrap();
    let sizes = [
        0usize,
        1,
        15,
        16,
        17,
        1399,
        1400,
        1401,
        4096,
        10_000,
        65_536,
        100_000,
        250_000,
        1 << 20,
        3,
        31,
        2800,
        77_777,
        500_000,
        2 << 20,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let (mtk_id, mtk) = &mtks[i / 10];
        let method = if i < 10 {
            DcfMethod::AesCbc
        } else {
            DcfMethod::AesCtr
        };
        let name = format!("file-{i:02}.bin");
        let data = rng.bytes(*size);
        let src = dir.join(&name);
        std::fs::write(&src, &data).unwrap();
        let key_ref = DcfKeyRef {
            key_domain_id: KD,
            msk_id: MSK_ID,
            mtk_id: *mtk_id,
            mtk_uri: Some(sender.key_location(KD, MSK_ID, *mtk_id).to_string()),
            mtk_message: None,
        };
        let header = DcfHeader {
            method,
            content_type: "application/octet-stream".into(),
            content_id: format!("cid:{name}@bmsc.example.org"),
            rights_issuer_url: String::new(),
            textual_headers: key_ref.textual_headers(),
            plaintext_len: *size as u64,
        };
        let dst = dir.join(format!("{name}.dcf"));
        let iv: [u8; 16] = rng.bytes(16).try_into().unwrap();
        let len = protect_file(&src, &dst, &header, mtk, iv).unwrap();
        assert_eq!(len, header.object_len().unwrap());
        let key_uri = sender.key_location(KD, MSK_ID, *mtk_id);
        sender.add_dcf_file(&name, &dst, Some(&key_uri)).unwrap();
        files.push((name, data));
    }
    for (n, (mtk_id, mtk)) in mtks.iter().enumerate() {
        let msg = mtk_message(CsbId(0x0a0b_0c0d), *mtk_id, mtk, n as u32 + 1);
        sender.add_mtk_message(KD, MSK_ID, *mtk_id, msg).unwrap();
    }
    Session { sender, files }
}

/// Runs the session on a virtual clock (1 ms steps) until the receiver has every file or
/// `limit` of virtual time passed; drops each packet with probability `loss`.
fn run(s: &mut Session, rx: &mut DownloadReceiver, loss: f64, limit: Duration) -> usize {
    let endpoint = UDPEndpoint::new(None, GROUP.to_owned(), PORT);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    s.sender.publish(start).unwrap();
    let mut rng = Rng(12345);
    let mut got = Vec::new();
    let mut packets = 0;
    let mut now = start;
    while now < start + limit && got.len() < s.files.len() {
        while let Some(pkt) = s.sender.read(now) {
            packets += 1;
            let drop = (rng.next() % 10_000) as f64 / 10_000.0 < loss;
            if !drop {
                rx.push(&endpoint, &pkt, now).unwrap();
            }
        }
        got.extend(rx.take_files());
        now += Duration::from_millis(1);
    }
    got.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got.len(), s.files.len(), "files received: {:?}", rx.stats());
    for (f, (name, data)) in got.iter().zip(&s.files) {
        assert_eq!(&f.name, name);
        assert_eq!(f.data.len(), data.len(), "{name}");
        assert!(f.data == *data, "{name} differs");
        assert_eq!(f.content_type, "application/octet-stream");
        assert_eq!(f.key.msk_id, MSK_ID);
    }
    packets
}

#[test]
fn twenty_files_across_an_mtk_rotation_arrive_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    let mut rx = DownloadReceiver::new();
    rx.add_msk(msk_key());
    run(&mut s, &mut rx, 0.0, Duration::from_secs(120));
    let st = rx.stats();
    assert_eq!(st.files, 20);
    assert_eq!(st.mtks, 2);
    assert_eq!(
        (st.bad_files, st.bad_mtk_messages, st.object_errors),
        (0, 0, 0)
    );
    assert!(
        st.waited_for_key > 0,
        "the key objects go last: files wait for them ({st:?})"
    );
    assert_eq!(st.waiting, 0);
}

#[test]
fn the_carousel_recovers_five_percent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), Some(Duration::from_millis(2000)));
    let mut rx = DownloadReceiver::new();
    rx.add_msk(msk_key());
    let lossy = run(&mut s, &mut rx, 0.05, Duration::from_secs(600));
    let st = rx.stats();
    assert_eq!(st.files, 20, "{st:?}");
    assert_eq!(st.bad_files, 0);
    // Without loss the same session needs one round; with loss it took more.
    let dir2 = tempfile::tempdir().unwrap();
    let mut s2 = session(dir2.path(), Some(Duration::from_millis(2000)));
    let mut rx2 = DownloadReceiver::new();
    rx2.add_msk(msk_key());
    let clean = run(&mut s2, &mut rx2, 0.0, Duration::from_secs(600));
    assert!(
        lossy > clean + clean / 2,
        "{lossy} packets with loss, {clean} without: the carousel did not repeat"
    );
}

#[test]
fn without_the_msk_everything_waits_and_opens_once_it_is_added() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    let mut rx = DownloadReceiver::new();
    let endpoint = UDPEndpoint::new(None, GROUP.to_owned(), PORT);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    s.sender.publish(now).unwrap();
    let mut t = now;
    for _ in 0..1_000_000 {
        match s.sender.read(t) {
            Some(pkt) => rx.push(&endpoint, &pkt, t).unwrap(),
            None => t += Duration::from_millis(1),
        }
        if rx.stats().objects == 22 {
            break;
        }
    }
    let st = rx.stats();
    assert_eq!(st.objects, 22, "{st:?}");
    assert_eq!((st.files, st.waiting, st.waiting_mtk_messages), (0, 20, 2));
    assert!(rx.take_files().is_empty());
    // The MSK arrives (an MSK message, a pull): the kept MTK messages open, then the files.
    rx.add_msk(msk_key());
    let st = rx.stats();
    assert_eq!(
        (st.mtks, st.files, st.waiting, st.waiting_mtk_messages),
        (2, 20, 0, 0)
    );
    let mut got = rx.take_files();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    for (f, (name, data)) in got.iter().zip(&s.files) {
        assert_eq!(&f.name, name);
        assert!(f.data == *data, "{name}");
    }
    // A second MSK for nothing in this session changes nothing.
    let mut other = msk_key();
    other.msk_id = MskId(0x0001_0009);
    rx.add_msk(other);
    assert_eq!(rx.stats().files, 20);
}

/// Every FDT instance fits one packet (an instance before each object, listing the object in
/// transfer), and together they list every object with its type and MD5.
#[test]
fn each_fdt_instance_fits_one_packet_and_they_list_every_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    assert_eq!(s.sender.object_count(), 22);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    s.sender.publish(now).unwrap();
    let mut files = std::collections::BTreeSet::new();
    let mut linked = 0;
    let mut t = now;
    for _ in 0..200_000 {
        let Some(pkt) = s.sender.read(t) else {
            t += Duration::from_millis(1);
            if files.len() == 22 {
                break;
            }
            continue;
        };
        let alc = flute::core::alc::parse_alc_pkt(&pkt).unwrap();
        if alc.lct.toi != 0 {
            continue;
        }
        // Payload ID 0/0 (no-code FEC) and the whole instance in this packet.
        let xml = std::str::from_utf8(&pkt[alc.data_payload_offset..]).unwrap();
        assert_eq!(alc.transfer_length, Some(xml.len() as u64), "one packet");
        assert!(xml.starts_with("<?xml") && xml.trim_end().ends_with("</FDT-Instance>"));
        for file in xml.split("<File ").skip(1) {
            let attr = |name: &str| {
                let at = file.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                file[at..at + file[at..].find('"').unwrap()].to_owned()
            };
            assert!(!attr("Content-MD5").is_empty());
            if attr("Content-Type") == "application/vnd.oma.drm.dcf" {
                // The key link: the entry names the MTK message object of its MTK (files
                // 0-9 under MTK 1, 10-19 under MTK 2).
                let n: u16 = attr("Content-Location")
                    .trim_start_matches("http://bmsc.example.org/tv1/file-")
                    .trim_end_matches(".bin")
                    .parse()
                    .unwrap();
                assert_eq!(
                    attr("mbms2009:Decryption-KEY-URI"),
                    format!(
                        "http://bmsc.example.org/tv1/keys/mtk-12f410-00010002-000{}.mikey",
                        n / 10 + 1
                    )
                );
                linked += 1;
            }
            files.insert((attr("Content-Location"), attr("Content-Type")));
        }
    }
    assert_eq!(files.len(), 22, "{files:?}");
    assert!(linked >= 20, "every DCF entry carries its key link");
    assert_eq!(s.sender.fdt_unlinked, 0);
    let types: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "application/vnd.oma.drm.dcf")
            .count(),
        20
    );
    assert_eq!(
        types.iter().filter(|t| **t == "application/mikey").count(),
        2
    );
    assert!(
        files
            .iter()
            .any(|(l, _)| l == "http://bmsc.example.org/tv1/keys/mtk-12f410-00010002-0001.mikey")
    );
    assert!(
        files
            .iter()
            .any(|(l, _)| l == "http://bmsc.example.org/tv1/file-00.bin")
    );
}

/// One 12 MB object (above the flute crate's default 10 MiB of incomplete blocks per object)
/// under 5% loss, paced at 400 Mbit/s: the receiver keeps its partial blocks across carousel
/// rounds until the object is complete.
#[test]
fn an_object_above_ten_mebibytes_completes_under_loss() {
    let key = msk_key();
    let mtk = Mtk::from_bytes([0x09; 16]);
    let msg = mtk_message(CsbId(1), MtkId(5), &mtk, 1);
    let mut cfg = SessionConfig::new(
        7,
        GROUP,
        PORT,
        url::Url::parse("http://bmsc.example.org/tv1/").unwrap(),
    );
    cfg.carousel = Some(Duration::from_millis(1500));
    let mut sender = DownloadSender::new(&cfg).unwrap();
    let data = Rng(77).bytes(12_000_000);
    let key_ref = DcfKeyRef {
        key_domain_id: KD,
        msk_id: MSK_ID,
        mtk_id: MtkId(5),
        mtk_uri: None,
        mtk_message: None,
    };
    let header = DcfHeader {
        method: DcfMethod::AesCtr,
        content_type: "video/mp4".into(),
        content_id: "cid:big@bmsc.example.org".into(),
        rights_issuer_url: String::new(),
        textual_headers: key_ref.textual_headers(),
        plaintext_len: data.len() as u64,
    };
    let object = mbms_core::dcf::seal(&header, &mtk, [3; 16], &data).unwrap();
    sender.add_mtk_message(KD, MSK_ID, MtkId(5), msg).unwrap();
    sender.add_dcf("big.mp4", object, None).unwrap();
    let mut rx = DownloadReceiver::new();
    rx.add_msk(key);
    let endpoint = UDPEndpoint::new(None, GROUP.to_owned(), PORT);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    sender.publish(start).unwrap();
    let mut rng = Rng(4242);
    let mut now = start;
    let mut got = Vec::new();
    while got.is_empty() && now < start + Duration::from_secs(60) {
        match sender.read(now) {
            Some(pkt) => {
                if rng.next() % 100 >= 5 {
                    rx.push(&endpoint, &pkt, now).unwrap();
                }
                now += Duration::from_nanos(28_600);
            }
            None => now += Duration::from_millis(1),
        }
        got.extend(rx.take_files());
    }
    assert_eq!(got.len(), 1, "{:?}", rx.stats());
    assert!(got[0].data == data);
    assert_eq!(rx.stats().object_errors, 0, "{:?}", rx.stats());
}

#[test]
fn names_are_percent_decoded_and_locations_stay_under_the_base() {
    use mbms_download::receiver::file_name_of;
    assert_eq!(file_name_of("http://x.org/a/my%20file.txt"), "my file.txt");
    assert_eq!(file_name_of("http://x.org/a/%C3%A9.txt"), "é.txt");
    assert_eq!(file_name_of("http://x.org/a/b.txt?v=2"), "b.txt");
    assert_eq!(file_name_of("http://x.org/a/"), "");
    assert_eq!(file_name_of("http://x.org/a/..%2Fetc"), "../etc");
    let cfg = SessionConfig::new(
        7,
        GROUP,
        PORT,
        url::Url::parse("http://bmsc.example.org/tv1/").unwrap(),
    );
    let mut s = DownloadSender::new(&cfg).unwrap();
    for bad in ["", "news:x", "../x", "a?b", "a#b", "http://evil/x", "/abs"] {
        assert!(s.location(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        s.location("my file.txt").unwrap().as_str(),
        "http://bmsc.example.org/tv1/my%20file.txt"
    );
    // Two names that make one Content-Location: the second is refused.
    s.add_dcf("a b", vec![1], None).unwrap();
    assert!(s.add_dcf("a%20b", vec![2], None).is_err());
    assert_eq!(s.object_count(), 1);
}

#[test]
fn an_inline_mtk_message_opens_an_object_without_its_key_object() {
    let key = msk_key();
    let mtk = Mtk::from_bytes([0x0a; 16]);
    let msg = mtk_message(CsbId(1), MtkId(9), &mtk, 3);
    let key_ref = DcfKeyRef {
        key_domain_id: KD,
        msk_id: MSK_ID,
        mtk_id: MtkId(9),
        mtk_uri: None,
        mtk_message: Some(msg),
    };
    let header = DcfHeader {
        method: DcfMethod::AesCbc,
        content_type: "text/plain".into(),
        content_id: "cid:x@bmsc.example.org".into(),
        rights_issuer_url: String::new(),
        textual_headers: key_ref.textual_headers(),
        plaintext_len: 5,
    };
    let object = mbms_core::dcf::seal(&header, &mtk, [1; 16], b"hello").unwrap();
    let cfg = SessionConfig::new(
        7,
        GROUP,
        PORT,
        url::Url::parse("http://bmsc.example.org/tv1/").unwrap(),
    );
    let mut sender = DownloadSender::new(&cfg).unwrap();
    sender.add_dcf("hello.txt", object, None).unwrap();
    let mut rx = DownloadReceiver::new();
    rx.add_msk(key);
    let endpoint = UDPEndpoint::new(None, GROUP.to_owned(), PORT);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    sender.publish(now).unwrap();
    while let Some(pkt) = sender.read(now) {
        rx.push(&endpoint, &pkt, now).unwrap();
    }
    let files = rx.take_files();
    assert_eq!(files.len(), 1, "{:?}", rx.stats());
    assert_eq!(files[0].data, b"hello");
    assert_eq!(rx.stats().mtks, 1);
}
