//! Interop with an SRTP implementation we did not write: libsrtp 2 (Cisco), driven by the small
//! C program `tests/libsrtp/harness.c`, so that no FFI (and no `unsafe`) is needed here.
//!
//! The test builds the harness with the system C compiler
//! (`cc -O2 -pthread -o <tmp>/libsrtp-harness tests/libsrtp/harness.c -lsrtp2`) and exchanges
//! packets with it through files of length-prefixed records (u32 big-endian length ‖ bytes):
//! - we protect (SRTP and SRTCP, 6-byte MBMS MKI, an MTK switch in the middle, sequence number
//!   wraps so the ROC advances, CSRCs and header extensions), libsrtp unprotects every packet
//!   and gives back our plaintexts; also with the 32-bit tag; libsrtp refuses our tampered and
//!   replayed packets;
//! - libsrtp protects (two master keys by MKI, a switch in the middle, SRTP and SRTCP, a
//!   sequence wrap), our [`SrtpReceiver`] unprotects them and refuses tampered, unknown-MKI and
//!   replayed ones with the matching [`UnprotectError`].
//!
//! libsrtp 2 (checked with 2.5.0) cannot unprotect SRTCP with an MKI when the SRTP and SRTCP
//! tag lengths differ, as with AES_CM_128_HMAC_SHA1_32 (SRTP 32-bit tag, SRTCP 80-bit tag per
//! RFC 4568 §6.2): `srtp_get_session_keys` looks for the MKI behind the *SRTP* tag length and
//! answers `srtp_err_status_bad_mki`. The 32-bit test accepts exactly that refusal for SRTCP and
//! opens those packets again with a libsrtp session whose SRTP tag is 80 bits.
//!
//! libsrtp is required: install it with `apt-get install -y libsrtp2-dev` (and a C compiler).
//! Set `MBMS_SKIP_LIBSRTP=1` to skip (with a message) where it is absent.

// Test code: fixed small values, and panics are the failure report.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bytes::BytesMut;
use mbms_core::mbms::mki;
use mbms_core::srtp::{SrtpPolicy, SrtpReceiver, SrtpSender, UnprotectError};
use mbms_core::{MskId, Mtk, MtkId, MtkSalt};

const HARNESS_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/libsrtp/harness.c");
const SSRC: u32 = 0x4d42_4d53;
/// libsrtp's `srtp_err_status_t` codes: auth_fail, replay_fail, replay_old, bad_mki.
const SRTP_ERR_AUTH_FAIL: i32 = 7;
const SRTP_ERR_REPLAY_FAIL: i32 = 9;
const SRTP_ERR_REPLAY_OLD: i32 = 10;
const SRTP_ERR_BAD_MKI: i32 = 25;

// ---- the harness ---------------------------------------------------------------------------

/// The built harness, or `None` when libsrtp is absent and `MBMS_SKIP_LIBSRTP=1`.
fn harness() -> Option<&'static Path> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_harness) {
        Ok(p) => Some(p),
        Err(why) => {
            if std::env::var("MBMS_SKIP_LIBSRTP").as_deref() == Ok("1") {
                eprintln!("SKIPPED: {why} (MBMS_SKIP_LIBSRTP=1)");
                return None;
            }
            panic!(
                "{why}; this interop test needs libsrtp 2 and a C compiler: \
                 `apt-get install -y libsrtp2-dev` (or set MBMS_SKIP_LIBSRTP=1 to skip it)"
            );
        }
    }
}

/// `Err` only when `cc` or libsrtp is missing; a harness that does not compile otherwise is a
/// test failure whatever the environment says.
fn build_harness() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libsrtp-harness");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("libsrtp-harness");
    // Build under a private name, then rename: concurrent test processes never run a half
    // written binary.
    let tmp = dir.join(format!("libsrtp-harness.{}", std::process::id()));
    let out = match Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-pthread", "-o"])
        .arg(&tmp)
        .arg(HARNESS_SRC)
        .arg("-lsrtp2")
        .output()
    {
        Ok(out) => out,
        Err(e) => return Err(format!("cannot run the C compiler `cc`: {e}")),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("srtp2/srtp.h") || stderr.contains("lsrtp2") {
            return Err(format!(
                "libsrtp 2 is not installed (cc: {})",
                stderr.trim()
            ));
        }
        panic!("building {HARNESS_SRC} failed:\n{stderr}");
    }
    if !stderr.trim().is_empty() {
        eprintln!("building {HARNESS_SRC}: compiler warnings:\n{stderr}");
    }
    std::fs::rename(&tmp, &exe).unwrap();
    Ok(exe)
}

/// What the harness reported: the summary counters and, per refused packet, libsrtp's error.
#[derive(Debug)]
struct Outcome {
    ok: usize,
    fail: usize,
    /// (record index, libsrtp error code) of every refused packet.
    failures: Vec<(usize, i32)>,
    /// One record per input record; empty where libsrtp refused the packet.
    records: Vec<Vec<u8>>,
}

fn run_harness(exe: &Path, work: &Path, args: &[&str], input: &[Vec<u8>]) -> Outcome {
    let (inp, outp) = (work.join("in.bin"), work.join("out.bin"));
    write_records(&inp, input);
    let _ = std::fs::remove_file(&outp);
    let out = Command::new(exe)
        .args(args)
        .arg(&inp)
        .arg(&outp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "harness {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let field = |name: &str| -> usize {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_else(|| panic!("no {name}= in harness output {stdout:?}"))
            .parse()
            .unwrap()
    };
    let failures = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("fail index="))
        .map(|l| {
            let (i, e) = l.split_once(" error=").unwrap();
            (i.parse().unwrap(), e.parse().unwrap())
        })
        .collect();
    let records = read_records(&outp);
    assert_eq!(
        records.len(),
        input.len(),
        "harness wrote one record per packet"
    );
    Outcome {
        ok: field("ok"),
        fail: field("fail"),
        failures,
        records,
    }
}

fn write_records(path: &Path, pkts: &[Vec<u8>]) {
    let mut out = Vec::with_capacity(pkts.iter().map(|p| p.len() + 4).sum());
    for p in pkts {
        out.extend_from_slice(&u32::try_from(p.len()).unwrap().to_be_bytes());
        out.extend_from_slice(p);
    }
    std::fs::write(path, out).unwrap();
}

fn read_records(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    let mut rest = &data[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .expect("truncated record length");
        let len = u32::from_be_bytes(*len) as usize;
        assert!(tail.len() >= len, "truncated record");
        out.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    out
}

/// A scratch directory for one test, removed when the test passes.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("libsrtp-interop")
            .join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ---- keys and packets ----------------------------------------------------------------------

/// One master key: MTK, salt and the MBMS MKI (MSK ID ‖ MTK ID).
struct Master {
    mtk: Mtk,
    salt: MtkSalt,
    mki: [u8; 6],
}

fn masters() -> [Master; 2] {
    let msk_id = MskId::new(0x0102, 0x0304);
    let make = |seed: u8, mtk_id: u16| Master {
        mtk: Mtk::from_bytes(core::array::from_fn(|i| {
            seed.wrapping_mul(31).wrapping_add(i as u8 * 7)
        })),
        salt: MtkSalt::from_bytes(core::array::from_fn(|i| {
            seed ^ (0xa5u8.wrapping_add(i as u8 * 13))
        })),
        mki: mki(msk_id, MtkId(mtk_id)),
    };
    [make(1, 0x0007), make(2, 0x0008)]
}

/// The harness key file: the SRTP tag length and every master key with its MKI.
fn key_file(work: &Path, tag_len: usize, keys: &[Master]) -> PathBuf {
    let mut text = format!("# written by libsrtp_interop.rs\ntag {tag_len}\nwindow 1024\n");
    for k in keys {
        writeln!(
            text,
            "key {} salt {} mki {}",
            hex::encode(k.mtk.expose()),
            hex::encode(k.salt.expose()),
            hex::encode(k.mki)
        )
        .unwrap();
    }
    let path = work.join(format!("keys-{tag_len}.txt"));
    std::fs::write(&path, text).unwrap();
    path
}

/// xorshift64: reproducible test data without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-enough in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

/// An RTP packet: payload type 96 (marker random), some with CSRCs and a one-byte-header
/// extension (RFC 8285), payload of 0..=1400 random bytes.
fn rtp_packet(rng: &mut XorShift, seq: u16, ts: u32) -> Vec<u8> {
    let cc = if rng.below(4) == 0 {
        1 + rng.below(3)
    } else {
        0
    };
    let ext_words = if rng.below(5) == 0 {
        1 + rng.below(3)
    } else {
        0
    };
    let marker = rng.below(8) == 0;
    let mut p = vec![
        0x80 | ((ext_words > 0) as u8) << 4 | cc as u8,
        (marker as u8) << 7 | 96,
    ];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    for i in 0..cc {
        p.extend_from_slice(&(0x1000_0000 + i as u32).to_be_bytes());
    }
    if ext_words > 0 {
        p.extend_from_slice(&[0xbe, 0xde]);
        p.extend_from_slice(&(ext_words as u16).to_be_bytes());
        let at = p.len();
        p.resize(at + 4 * ext_words, 0);
        rng.fill(&mut p[at..]);
    }
    let at = p.len();
    p.resize(at + rng.below(1401), 0);
    rng.fill(&mut p[at..]);
    p
}

/// A compound RTCP packet: a sender report of [`SSRC`] and an APP packet of random length.
fn rtcp_packet(rng: &mut XorShift, rtp_ts: u32, sent: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(&rng.next().to_be_bytes()); // NTP timestamp
    p.extend_from_slice(&rtp_ts.to_be_bytes());
    p.extend_from_slice(&sent.to_be_bytes());
    p.extend_from_slice(&(sent.wrapping_mul(700)).to_be_bytes());
    let words = rng.below(40);
    p.extend_from_slice(&[0x80, 204]);
    p.extend_from_slice(&(2 + words as u16).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(b"MBMS");
    let at = p.len();
    p.resize(at + 4 * words, 0);
    rng.fill(&mut p[at..]);
    p
}

/// A stream of `rtp_count` RTP packets (sequence numbers from `first_seq`, wrapping) with an
/// RTCP packet after every `rtcp_every` RTP packets. Returns (packet, is RTCP, RTP count before).
fn stream(
    seed: u64,
    rtp_count: usize,
    first_seq: u16,
    rtcp_every: usize,
) -> Vec<(Vec<u8>, bool, usize)> {
    let mut rng = XorShift(seed);
    let mut out = Vec::with_capacity(rtp_count + rtp_count / rtcp_every + 1);
    for i in 0..rtp_count {
        let ts = (i as u32).wrapping_mul(3000);
        out.push((
            rtp_packet(&mut rng, first_seq.wrapping_add(i as u16), ts),
            false,
            i,
        ));
        if (i + 1) % rtcp_every == 0 {
            out.push((rtcp_packet(&mut rng, ts, i as u32 + 1), true, i + 1));
        }
    }
    out
}

fn is_rtcp(pkt: &[u8]) -> bool {
    (192..=223).contains(&pkt[1])
}

// ---- we protect, libsrtp unprotects ---------------------------------------------------------

/// Protects the stream with our sender (switching to the second MTK before RTP packet
/// `switch_at`); RTP packets go through `protect_in_place` and, every other run between two
/// RTCP packets, through `protect_batch`.
fn protect_ours(
    policy: SrtpPolicy,
    keys: &[Master],
    pkts: &[(Vec<u8>, bool, usize)],
    switch_at: usize,
) -> Vec<Vec<u8>> {
    let mut tx = SrtpSender::new(policy);
    tx.set_key(&keys[0].mki, &keys[0].mtk, &keys[0].salt);
    let mut switched = false;
    let mut out = Vec::with_capacity(pkts.len());
    let mut run: Vec<BytesMut> = Vec::new();
    let mut runs = 0usize;
    let flush =
        |tx: &mut SrtpSender, run: &mut Vec<BytesMut>, out: &mut Vec<Vec<u8>>, runs: &mut usize| {
            if *runs % 2 == 1 {
                let res = tx.protect_batch(run);
                assert!(res.iter().all(Result::is_ok), "protect_batch: {res:?}");
                out.extend(run.drain(..).map(|p| p.to_vec()));
            } else {
                for p in run.drain(..) {
                    let len = p.len();
                    let mut buf = p.to_vec();
                    buf.resize(len + tx.max_overhead(), 0);
                    let n = tx.protect_in_place(&mut buf, len).unwrap();
                    buf.truncate(n);
                    out.push(buf);
                }
            }
            *runs += 1;
        };
    for (pkt, rtcp, rtp_before) in pkts {
        if !switched && *rtp_before >= switch_at {
            flush(&mut tx, &mut run, &mut out, &mut runs);
            tx.set_key(&keys[1].mki, &keys[1].mtk, &keys[1].salt);
            switched = true;
        }
        if *rtcp {
            flush(&mut tx, &mut run, &mut out, &mut runs);
            let mut buf = pkt.clone();
            buf.resize(pkt.len() + 4 + policy.mki_len + policy.srtcp_tag_len, 0);
            let n = tx.protect_rtcp_in_place(&mut buf, pkt.len()).unwrap();
            assert_eq!(n, buf.len());
            out.push(buf);
        } else {
            run.push(BytesMut::from(&pkt[..]));
        }
    }
    flush(&mut tx, &mut run, &mut out, &mut runs);
    assert_eq!(out.len(), pkts.len());
    out
}

/// The MKI a protected packet carries.
fn mki_of<'a>(protected: &'a [u8], policy: &SrtpPolicy) -> &'a [u8] {
    let tag = if is_rtcp(protected) {
        policy.srtcp_tag_len
    } else {
        policy
            .srtp_auth
            .tag_len(u16::from_be_bytes([protected[2], protected[3]]))
    };
    let end = protected.len() - tag;
    &protected[end - policy.mki_len..end]
}

fn ours_to_libsrtp(policy: SrtpPolicy, tag_len: usize, rtp_count: usize, name: &str) {
    let Some(exe) = harness() else { return };
    let work = WorkDir::new(name);
    let keys = masters();
    let switch_at = rtp_count / 2;
    // Start 1000 below the wrap: the first wrap comes early, the others every 65 536 packets.
    let first_seq = 0xffff - 1000;
    let pkts = stream(0x5eed_0000 + tag_len as u64, rtp_count, first_seq, 97);
    let protected = protect_ours(policy, &keys, &pkts, switch_at);
    let mut rtcp = 0;
    for ((plain, is_rtcp_pkt, rtp_before), p) in pkts.iter().zip(&protected) {
        let key = usize::from(*rtp_before >= switch_at);
        assert_eq!(mki_of(p, &policy), keys[key].mki);
        let overhead = if *is_rtcp_pkt {
            4 + 6 + policy.srtcp_tag_len
        } else {
            6 + tag_len
        };
        assert_eq!(p.len(), plain.len() + overhead);
        rtcp += usize::from(*is_rtcp_pkt);
    }
    let wraps = (usize::from(first_seq) + rtp_count) >> 16;
    eprintln!(
        "{name}: {rtp_count} SRTP + {rtcp} SRTCP packets, {wraps} sequence wraps, MTK switch at {switch_at}"
    );

    let key_path = key_file(&work.0, tag_len, &keys);
    let key_arg = key_path.to_str().unwrap();
    let out = run_harness(exe, &work.0, &["unprotect", key_arg], &protected);
    // libsrtp 2.x looks for the MKI of an SRTCP packet behind the *SRTP* tag length
    // (srtp_get_session_keys takes the tag length of rtp_auth for both): with the 32-bit SRTP
    // tag and the 80-bit SRTCP tag it finds no MKI in any SRTCP packet and answers
    // srtp_err_status_bad_mki. Those packets are opened again below by a libsrtp session whose
    // SRTP tag length equals the SRTCP one (which changes nothing else for SRTCP).
    let libsrtp_mki_bug = tag_len != policy.srtcp_tag_len;
    let known = |&(i, e): &(usize, i32)| libsrtp_mki_bug && pkts[i].1 && e == SRTP_ERR_BAD_MKI;
    let refused: Vec<_> = out.failures.iter().filter(|f| !known(f)).collect();
    assert!(
        refused.is_empty(),
        "libsrtp refused {} packets, first ones: {:?}",
        refused.len(),
        &refused[..refused.len().min(10)]
    );
    assert_eq!(out.ok + out.failures.len(), pkts.len());
    for (i, ((plain, ..), got)) in pkts.iter().zip(&out.records).enumerate() {
        if got.is_empty() && out.failures.iter().any(|f| f.0 == i) {
            continue; // the known SRTCP refusal
        }
        assert!(
            got == plain,
            "packet {i}: libsrtp's plaintext differs from ours"
        );
    }
    if !out.failures.is_empty() {
        let idx: Vec<usize> = out.failures.iter().map(|f| f.0).collect();
        let srtcp: Vec<Vec<u8>> = idx.iter().map(|&i| protected[i].clone()).collect();
        let key10 = key_file(&work.0, policy.srtcp_tag_len, &keys);
        let again = run_harness(
            exe,
            &work.0,
            &["unprotect", key10.to_str().unwrap()],
            &srtcp,
        );
        assert_eq!(
            (again.ok, again.fail),
            (srtcp.len(), 0),
            "SRTCP through an 80-bit session: {again:?}"
        );
        for (&i, got) in idx.iter().zip(&again.records) {
            assert!(
                *got == pkts[i].0,
                "SRTCP packet {i}: libsrtp's plaintext differs from ours"
            );
        }
        eprintln!(
            "{name}: libsrtp refused {} of {rtcp} SRTCP packets with bad_mki (its MKI lookup uses \
             the SRTP tag length); a session with an 80-bit SRTP tag opened all of them",
            idx.len()
        );
    }

    // libsrtp refuses what it must: a flipped bit (payload, tag), a replay, a packet behind
    // the replay window. Fresh session: the first packet is accepted, then the others.
    let first = protected[0].clone();
    let mut flipped_body = protected[1].clone();
    let at = flipped_body.len() - 6 - tag_len - 1; // last byte before the MKI
    flipped_body[at] ^= 0x01;
    let mut flipped_tag = protected[1].clone();
    *flipped_tag.last_mut().unwrap() ^= 0x80;
    // Ahead of protected[2] by more than the 1024-packet window.
    let late = protected[(3000..).find(|&j| !is_rtcp(&protected[j])).unwrap()].clone();
    let cases = vec![
        first.clone(),
        flipped_body,
        flipped_tag,
        protected[1].clone(),
        first,
        late,
        protected[2].clone(),
    ];
    let out = run_harness(exe, &work.0, &["unprotect", key_arg], &cases);
    assert_eq!(out.ok, 3, "{out:?}");
    assert_eq!(out.failures.len(), out.fail);
    let codes: Vec<i32> = out.failures.iter().map(|f| f.1).collect();
    assert_eq!(
        out.failures.iter().map(|f| f.0).collect::<Vec<_>>(),
        [1, 2, 4, 6],
        "{out:?}"
    );
    assert_eq!(codes[..2], [SRTP_ERR_AUTH_FAIL, SRTP_ERR_AUTH_FAIL]);
    assert_eq!(codes[2], SRTP_ERR_REPLAY_FAIL);
    assert!(
        [SRTP_ERR_REPLAY_OLD, SRTP_ERR_REPLAY_FAIL].contains(&codes[3]),
        "{codes:?}"
    );
}

#[test]
fn ours_protect_libsrtp_unprotects_hmac_sha1_80() {
    ours_to_libsrtp(
        SrtpPolicy::aes_cm_128_hmac_sha1_80(),
        10,
        70_000,
        "ours-to-libsrtp-80",
    );
}

#[test]
fn ours_protect_libsrtp_unprotects_hmac_sha1_32() {
    ours_to_libsrtp(
        SrtpPolicy::aes_cm_128_hmac_sha1_32(),
        4,
        20_000,
        "ours-to-libsrtp-32",
    );
}

// ---- libsrtp protects, we unprotect ---------------------------------------------------------

fn libsrtp_to_ours(policy: SrtpPolicy, tag_len: usize, rtp_count: usize, name: &str) {
    let Some(exe) = harness() else { return };
    let work = WorkDir::new(name);
    let keys = masters();
    let first_seq = 0xffff - 2000;
    let pkts = stream(0x0dd_ba11 + tag_len as u64, rtp_count, first_seq, 50);
    // The switch is counted in records (RTP and RTCP), as the harness schedule is.
    let switch_record = pkts.len() / 2;
    let key_path = key_file(&work.0, tag_len, &keys);
    let plain: Vec<Vec<u8>> = pkts.iter().map(|p| p.0.clone()).collect();
    let schedule = format!("switch-at={switch_record}");
    let out = run_harness(
        exe,
        &work.0,
        &["protect", key_path.to_str().unwrap(), &schedule],
        &plain,
    );
    assert_eq!(
        (out.ok, out.fail),
        (plain.len(), 0),
        "libsrtp refused to protect: {:?}",
        out.failures
    );
    let protected = out.records;
    for (i, ((p, rtcp, _), sp)) in pkts.iter().zip(&protected).enumerate() {
        let overhead = if *rtcp {
            4 + 6 + policy.srtcp_tag_len
        } else {
            6 + tag_len
        };
        assert_eq!(sp.len(), p.len() + overhead, "packet {i}");
        assert_eq!(
            mki_of(sp, &policy),
            keys[usize::from(i >= switch_record)].mki,
            "packet {i}"
        );
    }

    // Our receiver, both keys; RTP one by one and, every third run, as a batch.
    let mut rx = SrtpReceiver::new(policy);
    for k in &keys {
        rx.add_key(&k.mki, &k.mtk, &k.salt);
    }
    let mut i = 0;
    let mut runs = 0;
    while i < protected.len() {
        if is_rtcp(&protected[i]) {
            let mut pkt = protected[i].clone();
            let n = rx
                .unprotect_rtcp(&mut pkt)
                .unwrap_or_else(|e| panic!("SRTCP packet {i}: {e}"));
            assert!(pkt[..n] == plain[i], "SRTCP packet {i}: plaintext differs");
            i += 1;
            continue;
        }
        let end = (i..protected.len())
            .find(|&j| is_rtcp(&protected[j]))
            .unwrap_or(protected.len());
        if runs % 3 == 2 {
            let mut batch: Vec<BytesMut> = protected[i..end]
                .iter()
                .map(|p| BytesMut::from(&p[..]))
                .collect();
            let res = rx.unprotect_batch(&mut batch);
            for (k, (r, p)) in res.iter().zip(&batch).enumerate() {
                assert_eq!(*r, Ok(()), "SRTP packet {} (batch)", i + k);
                assert!(
                    p[..] == plain[i + k],
                    "SRTP packet {} (batch): plaintext differs",
                    i + k
                );
            }
        } else {
            for j in i..end {
                let mut pkt = protected[j].clone();
                let n = rx
                    .unprotect(&mut pkt)
                    .unwrap_or_else(|e| panic!("SRTP packet {j}: {e}"));
                assert!(pkt[..n] == plain[j], "SRTP packet {j}: plaintext differs");
            }
        }
        runs += 1;
        i = end;
    }
    let last_seq = first_seq.wrapping_add(rtp_count as u16 - 1);
    assert_eq!(
        rx.highest_index(SSRC),
        Some((1 << 16) | u64::from(last_seq)),
        "ROC advanced once"
    );

    // Everything again: replays.
    for j in [0, 1, protected.len() / 2, protected.len() - 1] {
        let mut pkt = protected[j].clone();
        let r = if is_rtcp(&pkt) {
            rx.unprotect_rtcp(&mut pkt)
        } else {
            rx.unprotect(&mut pkt)
        };
        assert_eq!(r, Err(UnprotectError::Replayed), "packet {j} again");
    }

    // Tampered libsrtp packets, on a fresh receiver (nothing accepted yet).
    // An RTP packet with a plain 12-byte header and a payload.
    let rtp = (0..plain.len())
        .find(|&j| plain[j][0] == 0x80 && !is_rtcp(&plain[j]) && plain[j].len() > 12)
        .unwrap();
    let rtcp = protected.iter().position(|p| is_rtcp(p)).unwrap();
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&keys[0].mki, &keys[0].mtk, &keys[0].salt);
    let tamper = |pkt: &[u8], at: usize, bit: u8| {
        let mut p = pkt.to_vec();
        p[at] ^= bit;
        p
    };
    let len = protected[rtp].len();
    let (mki_at, rtcp_tag) = (len - tag_len - 6, policy.srtcp_tag_len);
    for (what, at) in [("header", 1), ("payload", mki_at - 1), ("tag", len - 1)] {
        let mut p = tamper(&protected[rtp], at, 0x04);
        assert_eq!(
            rx.unprotect(&mut p),
            Err(UnprotectError::AuthFailed),
            "flipped bit in the {what}"
        );
    }
    let mut p = tamper(&protected[rtp], mki_at + 5, 0x01); // last MKI byte: MTK ID 7 -> 6
    assert_eq!(
        rx.unprotect(&mut p),
        Err(UnprotectError::UnknownMki),
        "MKI not held"
    );
    let second_key = protected.iter().rposition(|p| !is_rtcp(p)).unwrap();
    let mut p = protected[second_key].clone();
    assert_eq!(
        rx.unprotect(&mut p),
        Err(UnprotectError::UnknownMki),
        "second MTK not added yet"
    );
    let rlen = protected[rtcp].len();
    let mut p = tamper(&protected[rtcp], rlen - rtcp_tag - 6 - 1, 0x01); // SRTCP index
    assert_eq!(
        rx.unprotect_rtcp(&mut p),
        Err(UnprotectError::AuthFailed),
        "flipped SRTCP index"
    );
    let mut p = tamper(&protected[rtcp], 12, 0x80);
    assert_eq!(
        rx.unprotect_rtcp(&mut p),
        Err(UnprotectError::AuthFailed),
        "flipped SRTCP payload"
    );
    let mut p = tamper(&protected[rtcp], rlen - rtcp_tag - 1, 0x01); // MKI
    assert_eq!(
        rx.unprotect_rtcp(&mut p),
        Err(UnprotectError::UnknownMki),
        "SRTCP MKI not held"
    );
    // The untouched packets still open (failures did not move the windows), once.
    let mut p = protected[rtp].clone();
    assert_eq!(rx.unprotect(&mut p).map(|n| p[..n] == plain[rtp]), Ok(true));
    let mut p = protected[rtp].clone();
    assert_eq!(
        rx.unprotect(&mut p),
        Err(UnprotectError::Replayed),
        "duplicate SRTP"
    );
    let mut p = protected[rtcp].clone();
    assert_eq!(
        rx.unprotect_rtcp(&mut p).map(|n| p[..n] == plain[rtcp]),
        Ok(true)
    );
    let mut p = protected[rtcp].clone();
    assert_eq!(
        rx.unprotect_rtcp(&mut p),
        Err(UnprotectError::Replayed),
        "duplicate SRTCP"
    );
}

#[test]
fn libsrtp_protects_ours_unprotects_hmac_sha1_80() {
    libsrtp_to_ours(
        SrtpPolicy::aes_cm_128_hmac_sha1_80(),
        10,
        6000,
        "libsrtp-to-ours-80",
    );
}

#[test]
fn libsrtp_protects_ours_unprotects_hmac_sha1_32() {
    libsrtp_to_ours(
        SrtpPolicy::aes_cm_128_hmac_sha1_32(),
        4,
        3000,
        "libsrtp-to-ours-32",
    );
}
