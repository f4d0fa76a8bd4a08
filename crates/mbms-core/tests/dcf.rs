//! Download protection (OMA DCF v2, digest §7): known answers built independently of this code
//! (`testdata/dcf/make_vectors.py`: Python `struct` and `openssl enc`), NIST SP 800-38A blocks,
//! streamed round trips (0 B to 100 MiB, both methods), and every bad input a typed error.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use mbms_core::dcf::{
    self, DcfError, DcfHeader, DcfJob, DcfKeyRef, DcfMethod, DcfOpener, DcfSealer,
};
use mbms_core::{KeyDomainId, MskId, Mtk, MtkId};
use sha2::{Digest, Sha256};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn key_ref() -> DcfKeyRef {
    DcfKeyRef {
        key_domain_id: KeyDomainId([0x12, 0xf4, 0x10]),
        msk_id: MskId(0x0001_0002),
        mtk_id: MtkId(3),
        mtk_uri: Some("http://bmsc.example.org/keys/mtk-12f410-00010002-0003.mikey".into()),
        mtk_message: None,
    }
}

fn header(method: DcfMethod, len: u64) -> DcfHeader {
    DcfHeader {
        method,
        content_type: "video/mp4".into(),
        content_id: "cid:clip1@bmsc.example.org".into(),
        rights_issuer_url: String::new(),
        textual_headers: key_ref().textual_headers(),
        plaintext_len: len,
    }
}

fn method(s: &str) -> DcfMethod {
    match s {
        "cbc" => DcfMethod::AesCbc,
        "ctr" => DcfMethod::AesCtr,
        other => panic!("method {other}"),
    }
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 7 + 3) & 0xff) as u8).collect()
}

fn mtk(b: &[u8]) -> Mtk {
    Mtk::from_slice(b).unwrap()
}

#[test]
fn known_answers_from_the_independent_generator() {
    let text = include_str!("../../../testdata/dcf/vectors.txt");
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split(' ').collect();
        let (m, size, key, iv, ct, cid, want) = (
            method(f[0]),
            f[1].parse::<usize>().unwrap(),
            mtk(&hex(f[2])),
            <[u8; 16]>::try_from(hex(f[3])).unwrap(),
            f[4],
            f[5],
            hex(f[6]),
        );
        let pt = pattern(size);
        let mut h = header(m, size as u64);
        h.content_type = ct.into();
        h.content_id = cid.into();
        let got = dcf::seal(&h, &key, iv, &pt).unwrap();
        assert_eq!(hex::encode(&got), hex::encode(&want), "{} {size}", f[0]);
        assert_eq!(h.object_len().unwrap(), want.len() as u64);
        let (parsed, plain) = dcf::open(&want, &key).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(plain, pt);
        assert_eq!(parsed.key_ref().unwrap(), key_ref());
        n += 1;
    }
    assert_eq!(n, 13, "vectors in testdata/dcf/vectors.txt");
}

/// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt) and F.5.1 (CTR-AES128.Encrypt), first block:
/// the encrypted data of a DCF object is IV ‖ the standard mode's ciphertext.
#[test]
fn the_encrypted_data_is_iv_then_standard_cbc_or_ctr() {
    let key = mtk(&hex("2b7e151628aed2a6abf7158809cf4f3c"));
    let p1 = hex("6bc1bee22e409f96e93d7e117393172a");
    for (m, iv, c1) in [
        (
            DcfMethod::AesCbc,
            "000102030405060708090a0b0c0d0e0f",
            "7649abac8119b246cee98e9b12e9197d",
        ),
        (
            DcfMethod::AesCtr,
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            "874d6191b620e3261bef6864990db6ce",
        ),
    ] {
        let h = header(m, 16);
        let iv: [u8; 16] = hex(iv).try_into().unwrap();
        let obj = dcf::seal(&h, &key, iv, &p1).unwrap();
        let (_, at) = DcfHeader::parse(&obj).unwrap();
        assert_eq!(&obj[at..at + 16], &iv[..]);
        assert_eq!(hex::encode(&obj[at + 16..at + 32]), c1, "{m}");
        let expect_len = if m == DcfMethod::AesCbc {
            16 + 32
        } else {
            16 + 16
        };
        assert_eq!(
            obj.len() - at,
            expect_len,
            "{m}: a full padding block for CBC"
        );
    }
}

/// Seals `src` streaming in chunks of `chunk` and opens the result streaming in chunks of
/// `chunk2`; returns the plaintext.
fn round_trip(m: DcfMethod, pt: &[u8], chunk: usize, chunk2: usize) -> Vec<u8> {
    let key = mtk(&[0x5a; 16]);
    let h = header(m, pt.len() as u64);
    let mut obj = Vec::new();
    let mut s = DcfSealer::new(&h, &key, [0x11; 16], &mut obj).unwrap();
    for c in pt.chunks(chunk.max(1)) {
        s.update(c, &mut obj).unwrap();
    }
    s.finish(&mut obj).unwrap();
    assert_eq!(
        obj,
        dcf::seal(&h, &key, [0x11; 16], pt).unwrap(),
        "chunking"
    );
    assert_eq!(obj.len() as u64, h.object_len().unwrap());
    let (parsed, at) = DcfHeader::parse(&obj).unwrap();
    assert_eq!(parsed, h);
    let mut o = DcfOpener::new(&parsed, &key).unwrap();
    let mut out = Vec::new();
    for c in obj[at..].chunks(chunk2.max(1)) {
        o.update(c, &mut out).unwrap();
    }
    o.finish(&mut out).unwrap();
    out
}

#[test]
fn round_trips_of_small_sizes_in_any_chunking() {
    for m in [DcfMethod::AesCbc, DcfMethod::AesCtr] {
        for size in [0usize, 1, 15, 16, 17, 31, 32, 33, 1000] {
            let pt = pattern(size);
            for (c1, c2) in [(1, 1), (7, 16), (16, 5), (17, 33), (4096, 4096)] {
                assert_eq!(round_trip(m, &pt, c1, c2), pt, "{m} {size} {c1}/{c2}");
            }
        }
    }
}

#[test]
fn round_trips_of_one_mebibyte() {
    let pt: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for m in [DcfMethod::AesCbc, DcfMethod::AesCtr] {
        assert_eq!(round_trip(m, &pt, 65_536, 1500), pt, "{m}");
        let (h, plain) = dcf::open(
            &dcf::seal(&header(m, pt.len() as u64), &mtk(&[1; 16]), [2; 16], &pt).unwrap(),
            &mtk(&[1; 16]),
        )
        .unwrap();
        assert_eq!(h.plaintext_len, 1 << 20);
        assert_eq!(plain, pt);
    }
}

/// 100 MiB through sealer and opener chunk by chunk, never held whole: SHA-256 of what went
/// in equals SHA-256 of what came out.
#[test]
fn round_trips_of_one_hundred_mebibytes_streamed() {
    const SIZE: u64 = 100 << 20;
    const CHUNK: usize = 1 << 20;
    for m in [DcfMethod::AesCbc, DcfMethod::AesCtr] {
        let key = mtk(&[0x77; 16]);
        let h = header(m, SIZE);
        let mut head = Vec::new();
        let mut sealer = DcfSealer::new(&h, &key, [0x99; 16], &mut head).unwrap();
        let (parsed, at) = DcfHeader::parse(&head).unwrap();
        assert_eq!(at + 16, head.len(), "the header, then the IV");
        let mut opener = DcfOpener::new(&parsed, &key).unwrap();
        let mut plain = Vec::new();
        opener.update(&head[at..], &mut plain).unwrap();
        let (mut h_in, mut h_out) = (Sha256::new(), Sha256::new());
        let mut block = vec![0u8; CHUNK];
        let mut enc = Vec::with_capacity(CHUNK + 32);
        let mut total_enc = 16u64;
        for k in 0..(SIZE / CHUNK as u64) {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (k as usize ^ i.wrapping_mul(31)) as u8;
            }
            h_in.update(&block);
            enc.clear();
            sealer.update(&block, &mut enc).unwrap();
            total_enc += enc.len() as u64;
            plain.clear();
            opener.update(&enc, &mut plain).unwrap();
            h_out.update(&plain);
        }
        enc.clear();
        sealer.finish(&mut enc).unwrap();
        total_enc += enc.len() as u64;
        plain.clear();
        opener.update(&enc, &mut plain).unwrap();
        opener.finish(&mut plain).unwrap();
        h_out.update(&plain);
        assert_eq!(total_enc, h.encrypted_len().unwrap(), "{m}");
        assert_eq!(h_in.finalize(), h_out.finalize(), "{m}");
    }
}

#[test]
fn batch_sealing_gives_what_one_by_one_gives() {
    let key = mtk(&[3; 16]);
    let pts: Vec<Vec<u8>> = (0..40).map(|i| pattern(i * 37)).collect();
    let headers: Vec<DcfHeader> = pts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let m = if i % 2 == 0 {
                DcfMethod::AesCbc
            } else {
                DcfMethod::AesCtr
            };
            header(m, p.len() as u64)
        })
        .collect();
    let jobs: Vec<DcfJob<'_>> = pts
        .iter()
        .zip(&headers)
        .enumerate()
        .map(|(i, (p, h))| DcfJob {
            header: h,
            mtk: &key,
            iv: [i as u8; 16],
            plaintext: p,
        })
        .collect();
    let got = dcf::seal_batch(&jobs);
    for (j, g) in jobs.iter().zip(got) {
        assert_eq!(
            g.unwrap(),
            dcf::seal(j.header, j.mtk, j.iv, j.plaintext).unwrap()
        );
    }
    // A job whose plaintext is not the announced length: an error for it alone.
    let short = header(DcfMethod::AesCtr, 10);
    let bad = [DcfJob {
        header: &short,
        mtk: &key,
        iv: [0; 16],
        plaintext: &[1, 2, 3],
    }];
    assert_eq!(
        dcf::seal_batch(&bad)[0],
        Err(DcfError::TooLittleData { missing: 7 })
    );
}

#[test]
fn every_truncation_is_a_typed_error() {
    let key = mtk(&[9; 16]);
    for m in [DcfMethod::AesCbc, DcfMethod::AesCtr] {
        let obj = dcf::seal(&header(m, 40), &key, [4; 16], &pattern(40)).unwrap();
        for cut in 0..obj.len() {
            let r = dcf::open(&obj[..cut], &key);
            assert!(
                matches!(r, Err(DcfError::Truncated(_))),
                "{m} cut {cut}: {r:?}"
            );
        }
        let mut long = obj.clone();
        long.push(0);
        assert!(matches!(dcf::open(&long, &key), Err(DcfError::BadBox(..))));
        // Streaming: the data stops early.
        let (h, at) = DcfHeader::parse(&obj).unwrap();
        let mut o = DcfOpener::new(&h, &key).unwrap();
        let mut out = Vec::new();
        o.update(&obj[at..obj.len() - 3], &mut out).unwrap();
        assert_eq!(
            o.finish(&mut out),
            Err(DcfError::TooLittleData { missing: 3 })
        );
        let mut o = DcfOpener::new(&h, &key).unwrap();
        let mut data = obj[at..].to_vec();
        data.push(0);
        assert!(matches!(
            o.update(&data, &mut out),
            Err(DcfError::TooMuchData(_))
        ));
    }
}

#[test]
fn a_wrong_key_fails_cbc_padding_and_a_sealer_checks_its_length() {
    let pt = pattern(100);
    let obj = dcf::seal(
        &header(DcfMethod::AesCbc, 100),
        &mtk(&[1; 16]),
        [2; 16],
        &pt,
    )
    .unwrap();
    for k in 2..=40u8 {
        // Opening with a wrong key gives the right padding (12 bytes of 12) and length with
        // probability 2^-96: every one is refused.
        let r = dcf::open(&obj, &mtk(&[k; 16]));
        assert!(
            matches!(
                r,
                Err(DcfError::BadPadding | DcfError::PlaintextLength { .. })
            ),
            "key {k}: {r:?}"
        );
    }
    // A flipped ciphertext bit in the last block: refused too (or at least not silent
    // equality with the original).
    let mut forged = obj.clone();
    let n = forged.len();
    forged[n - 1] ^= 0x01;
    match dcf::open(&forged, &mtk(&[1; 16])) {
        Err(DcfError::BadPadding) => {}
        Ok((_, p)) => panic!("forged object opened to {} bytes", p.len()),
        Err(e) => panic!("unexpected {e}"),
    }

    let h = header(DcfMethod::AesCtr, 5);
    let mut out = Vec::new();
    let mut s = DcfSealer::new(&h, &mtk(&[1; 16]), [0; 16], &mut out).unwrap();
    assert_eq!(s.update(&[0; 6], &mut out), Err(DcfError::TooMuchData(5)));
    s.update(&[0; 4], &mut out).unwrap();
    assert_eq!(
        s.finish(&mut out),
        Err(DcfError::TooLittleData { missing: 1 })
    );
}

/// Offset of the ohdr EncryptionMethod byte in an object of [`header`].
fn method_offset(obj: &[u8]) -> usize {
    obj.windows(4).position(|w| w == b"ohdr").unwrap() + 8
}

#[test]
fn forged_headers_are_typed_errors() {
    let key = mtk(&[9; 16]);
    let obj = dcf::seal(&header(DcfMethod::AesCbc, 20), &key, [4; 16], &pattern(20)).unwrap();
    let at = method_offset(&obj);
    let set = |i: usize, v: u8| {
        let mut o = obj.clone();
        o[i] = v;
        o
    };
    assert_eq!(
        dcf::open(&set(at, 7), &key).unwrap_err(),
        DcfError::UnsupportedMethod(7)
    );
    assert_eq!(
        dcf::open(&set(at + 1, 0), &key).unwrap_err(),
        DcfError::BadPaddingScheme {
            method: 1,
            padding: 0
        }
    );
    // CTR with the CBC object's lengths: the encrypted length no longer fits.
    let mut ctr = set(at, 2);
    ctr[at + 1] = 0;
    assert!(matches!(
        dcf::open(&ctr, &key),
        Err(DcfError::LengthMismatch { .. })
    ));
    // PlaintextLength changed: to another number of blocks, or within the last block.
    assert!(matches!(
        dcf::open(&set(at + 9, 40), &key),
        Err(DcfError::LengthMismatch { .. })
    ));
    assert_eq!(
        dcf::open(&set(at + 9, 21), &key).unwrap_err(),
        DcfError::PlaintextLength {
            announced: 21,
            got: 20
        }
    );
    // Not a DCF: another brand, another first box.
    assert!(matches!(
        dcf::open(&set(8, b'x'), &key),
        Err(DcfError::NotDcf(_))
    ));
    assert!(matches!(
        dcf::open(&set(4, b'x'), &key),
        Err(DcfError::NotDcf(_))
    ));
    // A box of size 0 or smaller than its header.
    let mut zero = obj.clone();
    zero[20..24].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(dcf::open(&zero, &key), Err(DcfError::BadBox(..))));
    let mut tiny = obj.clone();
    tiny[20..24].copy_from_slice(&3u32.to_be_bytes());
    assert!(matches!(dcf::open(&tiny, &key), Err(DcfError::BadBox(..))));
    // ohdr version 1.
    let ohdr = obj.windows(4).position(|w| w == b"ohdr").unwrap();
    assert!(matches!(
        dcf::open(&set(ohdr + 4, 1), &key),
        Err(DcfError::BadBox("ohdr", _))
    ));
    // A textual-headers length running past the box.
    let th_len_at = at + 1 + 1 + 8 + 2 + 2;
    let mut th = obj.clone();
    th[th_len_at..th_len_at + 2].copy_from_slice(&0xffffu16.to_be_bytes());
    assert!(matches!(
        dcf::open(&th, &key),
        Err(DcfError::BadBox("ohdr", _))
    ));
}

#[test]
fn textual_headers_carry_the_key_reference() {
    let mut r = key_ref();
    r.mtk_message = Some(vec![1, 0, 0xff, 0x80, 7]);
    let mut h = header(DcfMethod::AesCtr, 3);
    h.textual_headers = r.textual_headers();
    h.textual_headers.push(("X-Other".into(), "a:b c".into()));
    let obj = dcf::seal(&h, &mtk(&[1; 16]), [0; 16], b"abc").unwrap();
    let (parsed, _) = DcfHeader::parse(&obj).unwrap();
    assert_eq!(parsed.key_ref().unwrap(), r);
    assert_eq!(parsed.textual_header("x-other"), Some("a:b c"));
    assert_eq!(parsed.textual_header(dcf::HEADER_MSK_ID), Some("00010002"));

    let with = |pairs: &[(&str, &str)]| {
        let mut h = header(DcfMethod::AesCtr, 0);
        h.textual_headers = pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        let obj = dcf::seal(&h, &mtk(&[1; 16]), [0; 16], b"").unwrap();
        DcfHeader::parse(&obj).unwrap().0.key_ref()
    };
    let kd = ("MBMS-Key-Domain-ID", "12f410");
    let msk = ("MBMS-MSK-ID", "00010002");
    let mtk_id = ("MBMS-MTK-ID", "0003");
    assert!(with(&[kd, msk, mtk_id]).is_ok());
    assert_eq!(
        with(&[kd, msk]),
        Err(DcfError::MissingTextualHeader(dcf::HEADER_MTK_ID))
    );
    assert_eq!(
        with(&[("MBMS-Key-Domain-ID", "12f41"), msk, mtk_id]),
        Err(DcfError::BadTextualHeader(dcf::HEADER_KEY_DOMAIN_ID))
    );
    assert_eq!(
        with(&[kd, ("MBMS-MSK-ID", "0001000g"), mtk_id]),
        Err(DcfError::BadTextualHeader(dcf::HEADER_MSK_ID))
    );
    assert_eq!(
        with(&[kd, msk, mtk_id, ("MBMS-MTK-Message", "!!")]),
        Err(DcfError::BadTextualHeader(dcf::HEADER_MTK_MESSAGE))
    );
    // What cannot be encoded is refused when sealing.
    for (n, v) in [("", "x"), ("a:b", "x"), ("a", "x\0y"), ("a\nb", "x")] {
        let mut h = header(DcfMethod::AesCtr, 0);
        h.textual_headers = vec![(n.into(), v.into())];
        assert!(
            matches!(
                dcf::seal(&h, &mtk(&[1; 16]), [0; 16], b""),
                Err(DcfError::BadTextualHeader(_))
            ),
            "{n:?}: {v:?}"
        );
    }
    let mut h = header(DcfMethod::AesCtr, 0);
    h.content_type = "x".repeat(256);
    assert_eq!(
        dcf::seal(&h, &mtk(&[1; 16]), [0; 16], b""),
        Err(DcfError::TooLong("content type"))
    );
}

/// Inputs the `dcf_open` fuzz target found: an `odrm` size that overflowed when added to its
/// offset, and a textual header name with a control character (parsed, but refused when
/// sealed again).
#[test]
fn fuzz_regressions() {
    for h in [
        "00000014667479706f646366000000026f646366000000016f64726dffffffffffffffff000000000000012500000000000000d56f6468650000000009766964656f2f6d7034000000bf6f68647200b5000000000101000000000001001a000000896369643a636c69703140626d73632e6578616d706c652e6f72674d424d532d4b65792d446f6d61696e2d49443a313266343130004d424d532d4d534b2d49443a3030303130303032004d424d532d4d544b2d49443a30303033004d424d532d4d544b2d5552493a687474703a2f2f626d73632e6578616d706c652e6f72672f6b6579732f6d746b2d3132663431302d30303031303030322d303030332e6d696b657900000000016f646461000000000000003c000000000000000000000020000102030405060708090a0b0c0d0e0f120670e9d142292550e51667f1fca68c",
        "00000014667479706f646366000000026f646366000000016f64726d000000000000011600000000000000d56f6468650000000009766964656f2f6d7034000000bf6f68647200fffe0002000000000000000001001a000000896369643a636c69703140626d73632e6578616d706c652e6f72674d424d532d4b65792d440b0c0d0e0f2d49443a313266343130004d424d532d4d534b2d49443a3030303130303032004d424d532d4d544b2d49443a30303033004d424d532d4d544b2d5552493a687474703a2f2f626d73632e6578616d706c652e6f72672f6b6579732f6d746b2d3132663431302d30303031303030322d303030332e6d696b657900000000016f646461000000000000002d000000000000000000000011000102030405060708090a0b0c0d0e0f53",
    ] {
        let data = hex(h);
        mbms_core::fuzzing::dcf_open(&data);
        assert!(dcf::open(&data, &mtk(&[0x42; 16])).is_err());
    }
}

#[test]
fn a_plaintext_length_near_the_u64_limit_is_refused_not_wrapped() {
    for m in [DcfMethod::AesCbc, DcfMethod::AesCtr] {
        let h = header(m, u64::MAX - 20);
        assert_eq!(h.encode(), Err(DcfError::TooLong("plaintext")), "{m}");
        let mut out = Vec::new();
        assert!(DcfSealer::new(&h, &mtk(&[1; 16]), [0; 16], &mut out).is_err());
    }
}
