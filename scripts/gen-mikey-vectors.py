#!/usr/bin/env python3
"""Generate known-answer vectors for MBMS MIKEY message sealing.

INDEPENDENT IMPLEMENTATION.  This script was written only from the project's spec
digest (mbms-security.md sections 2, 3, 4, 5.2-5.4 and its "Unconfirmed points"
list), RFC 3830 and RFC 4563.  It does not use, and was not derived from, the Rust
code under crates/; its output is meant to check that code.  Primitives:
HMAC-SHA-1 from the Python standard library (hmac, hashlib) and AES-128 from the
`cryptography` package (AES-CM = AES in CTR mode, 128-bit big-endian counter
starting at the IV).

Running it prints testdata/mikey/mbms-messages-computed.txt to stdout:

    python3 scripts/gen-mikey-vectors.py > testdata/mikey/mbms-messages-computed.txt

The output is deterministic (no randomness); only the version numbers in the
first line depend on the interpreter and the installed `cryptography`.

Self-checks run on every invocation (any failure aborts without output):
  * the MIKEY PRF reproduces all 8 records of testdata/mikey/mikey-prf-computed.txt
    (a byte-identical copy of the spec's vectors/mikey-prf-computed.txt);
  * AES-CM reproduces the RFC 3711 B.2 keystream blocks
    (testdata/srtp/rfc3711-b2-aes-cm.txt);
  * the HDR encoder reproduces the GStreamer HDR encodings
    (testdata/mikey/gstreamer-mikey-encoding.txt);
  * every generated message is re-parsed by an independent payload walker: the
    next-payload chain is checked, the KEMAC MAC is recomputed and compared,
    the KEMAC is decrypted and the Key data sub-payload parsed back to the inputs;
    for the verification message the V MAC is recomputed.

Layout choices (the project's documented defaults, implemented exactly):
  * All messages: HDR version 1, PRF func 0 (MIKEY-1), next-payload chaining per
    RFC 3830 (HDR byte 2 = type of the first payload; last payload carries 0).
  * T payload: TS type COUNTER (2), 4-byte value.
  * KEMAC: encr alg 1 (AES-CM-128), encr data len u16, encr data = Key data
    sub-payload chain encrypted, MAC alg 1 (HMAC-SHA-1-160), 20-byte MAC over the
    whole message from the first HDR byte up to and including the MAC alg byte.
    KEMAC is always the last payload (next payload 0).
  * KEMAC keys from the pre-shared key (MUK for MSK messages, MSK for MTK
    messages), RFC 3830 §4.1.4: encr_key 16 B (0x150533E1), auth_key 20 B
    (0x2D22AC75), salt_key 14 B (0x29B88916); label = constant || 0xFF ||
    CSB ID (4 B) || RAND.  IV = (salt_key XOR (0x0000 || CSB ID || T64)) || 0x0000,
    T64 = the 32-bit COUNTER left-padded with zeros to 64 bits.
  * Key ID extension: one General Extension payload (21), ext type 3, u16 length,
    entries (type u8, len u8, value): Key Domain ID (0, 3 B), MSK ID (1, 4 B),
    and in MTK messages MTK ID (2, 2 B); placed directly after HDR.
  * MSK message: HDR(data type 0, V 1, CS ID map SRTP-ID (0) with #CS 0 when an
    SP payload is present, Empty map (1) with #CS 0 otherwise), EXT, T, RAND
    (len u8 + 16 B), ID(IDi), ID(IDr) (ID type u8, len u16, value), [SP], KEMAC
    with Key data: next 0, Type TGK (0) / KV Interval (2) -> 0x02, key len u16 16,
    MSK, VF len u8 2, VF (lowest MTK ID), VT len u8 2, VT (highest MTK ID).
  * SP (streaming only): policy no 1, prot type 0 (SRTP), param length u16,
    TLVs (type u8, len u8 = 1, value u8): (0,1) (1,16) (2,1) (3,20) (4,14) (5,0)
    (6,0) (7,1) (8,1) (10,1) (11,10) (12,0).
  * Verification message: HDR(data type 1, V 0, same CSB ID, same map type as
    the MSK message, #CS 0), EXT(KDID, MSK ID), T(same COUNTER as the MSK
    message), ID(IDr), V(next 0, alg 1, 20-byte MAC).  MAC = HMAC-SHA-1(auth_key
    from the MUK with the MSK message's CSB ID and RAND, message bytes up to and
    including the V alg byte || IDi value || IDr value || T as 4 bytes).
  * MTK message: HDR(data type 0, V 0, Empty map, #CS 0), EXT(KDID, MSK ID,
    MTK ID), T, RAND (16 B), KEMAC with Key data: streaming Type TGK+SALT / KV
    Null (0x10), key len 16, MTK, salt len u16 14, salt; download Type TGK / KV
    Null (0x00), key len 16, MTK, no salt; "no-rand" variant: streaming layout
    without the RAND payload, KEMAC keys derived with the MSK message's RAND.

Output format: line 1 is a "# source:" comment; then records of `name = value`
lines separated by blank lines.  `kind` is plain text; `counter`, `idi_type`,
`idr_type` and `cs_id_map_type` are decimal; every other value is lowercase hex
of the exact bytes (ID values are the hex of their ASCII text).
"""

import hashlib
import hmac
import os
import platform
import struct
import sys

import cryptography
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# ---------------------------------------------------------------------------
# Code points (digest section 3)
# ---------------------------------------------------------------------------
PT_LAST, PT_KEMAC, PT_T, PT_ID, PT_V, PT_SP, PT_RAND = 0, 1, 5, 6, 9, 10, 11
PT_KEYDATA, PT_GENEXT = 20, 21

DT_PSK_INIT, DT_PSK_VER = 0, 1
MAP_SRTP_ID, MAP_EMPTY = 0, 1
TS_COUNTER = 2
ENCR_AES_CM_128 = 1
MAC_HMAC_SHA1_160 = 1
ID_NAI, ID_URI = 0, 1
KD_TGK, KD_TGK_SALT = 0, 1
KV_NULL, KV_INTERVAL = 0, 2
GENEXT_KEY_ID = 3
KEYID_DOMAIN, KEYID_MSK, KEYID_MTK = 0, 1, 2

C_ENCR, C_AUTH, C_SALT = 0x150533E1, 0x2D22AC75, 0x29B88916

# ---------------------------------------------------------------------------
# Crypto primitives
# ---------------------------------------------------------------------------


def hmac_sha1(key, data):
    return hmac.new(key, data, hashlib.sha1).digest()


def prf_p(s, label, m):
    """RFC 3830 §4.1.2 P(s, label, m): A_0 = label, A_i = HMAC(s, A_{i-1})."""
    out = b""
    a = label
    for _ in range(m):
        a = hmac_sha1(s, a)
        out += hmac_sha1(s, a + label)
    return out


def mikey_prf(inkey, label, outlen):
    """RFC 3830 §4.1.2 PRF; outlen in bytes."""
    n = (len(inkey) + 31) // 32
    m = (outlen * 8 + 159) // 160
    acc = bytes(20 * m)
    for i in range(n):
        chunk = inkey[32 * i : 32 * (i + 1)]
        p = prf_p(chunk, label, m)
        acc = bytes(x ^ y for x, y in zip(acc, p))
    return acc[:outlen]


def label_for(constant, cs_id, csb_id, rand):
    return struct.pack(">IBI", constant, cs_id, csb_id) + rand


def kemac_keys(psk, csb_id, rand):
    """RFC 3830 §4.1.4 key triple from a pre-shared key (cs_id 0xFF)."""
    encr = mikey_prf(psk, label_for(C_ENCR, 0xFF, csb_id, rand), 16)
    auth = mikey_prf(psk, label_for(C_AUTH, 0xFF, csb_id, rand), 20)
    salt = mikey_prf(psk, label_for(C_SALT, 0xFF, csb_id, rand), 14)
    return encr, auth, salt


def kemac_iv(salt_key, csb_id, counter):
    """RFC 3830 §4.2.3 IV with the 32-bit COUNTER padded to 64 bits."""
    assert len(salt_key) == 14
    x = b"\x00\x00" + struct.pack(">I", csb_id) + struct.pack(">Q", counter)
    return bytes(a ^ b for a, b in zip(salt_key, x)) + b"\x00\x00"


def aes_cm(key, iv, data):
    """AES-CM = AES-128 in CTR mode, 128-bit big-endian counter starting at iv."""
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


# ---------------------------------------------------------------------------
# Payload encoders (digest section 2)
# ---------------------------------------------------------------------------


def enc_hdr(data_type, next_pl, v_flag, csb_id, map_type, cs_entries=()):
    """HDR; cs_entries = SRTP-ID entries (policy_no, ssrc, roc)."""
    b = struct.pack(">BBBBIBB", 1, data_type, next_pl, (v_flag << 7) | 0, csb_id,
                    len(cs_entries), map_type)
    for pol, ssrc, roc in cs_entries:
        b += struct.pack(">BII", pol, ssrc, roc)
    return b


def enc_keyid_ext(next_pl, entries):
    body = b"".join(struct.pack(">BB", t, len(v)) + v for t, v in entries)
    return struct.pack(">BBH", next_pl, GENEXT_KEY_ID, len(body)) + body


def enc_t(next_pl, counter):
    return struct.pack(">BBI", next_pl, TS_COUNTER, counter)


def enc_rand(next_pl, rand):
    return struct.pack(">BB", next_pl, len(rand)) + rand


def enc_id(next_pl, id_type, value):
    return struct.pack(">BBH", next_pl, id_type, len(value)) + value


SP_PARAMS = [(0, 1), (1, 16), (2, 1), (3, 20), (4, 14), (5, 0), (6, 0), (7, 1),
             (8, 1), (10, 1), (11, 10), (12, 0)]


def enc_sp(next_pl):
    params = b"".join(struct.pack(">BBB", t, 1, v) for t, v in SP_PARAMS)
    return struct.pack(">BBBH", next_pl, 1, 0, len(params)) + params


def keydata_msk(msk, vf, vt):
    return (struct.pack(">BBH", PT_LAST, (KD_TGK << 4) | KV_INTERVAL, len(msk)) + msk
            + struct.pack(">B", len(vf)) + vf + struct.pack(">B", len(vt)) + vt)


def keydata_mtk(mtk, salt):
    if salt is None:
        return struct.pack(">BBH", PT_LAST, (KD_TGK << 4) | KV_NULL, len(mtk)) + mtk
    return (struct.pack(">BBH", PT_LAST, (KD_TGK_SALT << 4) | KV_NULL, len(mtk)) + mtk
            + struct.pack(">H", len(salt)) + salt)


def seal(prefix, keydata_plain, encr_key, auth_key, iv):
    """Append a KEMAC (last payload) to `prefix` and MAC the whole message."""
    ct = aes_cm(encr_key, iv, keydata_plain)
    head = struct.pack(">BBH", PT_LAST, ENCR_AES_CM_128, len(ct)) + ct + bytes([MAC_HMAC_SHA1_160])
    body = prefix + head
    mac = hmac_sha1(auth_key, body)
    return body + mac, ct, mac


# ---------------------------------------------------------------------------
# Independent parser used for the round-trip self-check
# ---------------------------------------------------------------------------


def parse(msg):
    """Walk HDR + payload chain; return (hdr dict, list of (type, start, end, fields))."""
    assert msg[0] == 1, "version"
    hdr = {"data_type": msg[1], "v": msg[3] >> 7, "prf": msg[3] & 0x7F,
           "csb_id": struct.unpack(">I", msg[4:8])[0], "ncs": msg[8], "map": msg[9]}
    pos = 10
    if hdr["map"] == MAP_SRTP_ID:
        pos += 9 * hdr["ncs"]
    else:
        assert hdr["map"] == MAP_EMPTY and hdr["ncs"] == 0
    nxt = msg[2]
    pls = []
    while nxt != PT_LAST:
        start = pos
        np_ = msg[pos]
        f = {}
        if nxt == PT_GENEXT:
            f["type"] = msg[pos + 1]
            ln = struct.unpack(">H", msg[pos + 2 : pos + 4])[0]
            body = msg[pos + 4 : pos + 4 + ln]
            assert len(body) == ln
            ents, i = [], 0
            while i < ln:
                t, l = body[i], body[i + 1]
                ents.append((t, body[i + 2 : i + 2 + l]))
                i += 2 + l
            assert i == ln
            f["entries"] = ents
            pos += 4 + ln
        elif nxt == PT_T:
            assert msg[pos + 1] == TS_COUNTER
            f["counter"] = struct.unpack(">I", msg[pos + 2 : pos + 6])[0]
            pos += 6
        elif nxt == PT_RAND:
            l = msg[pos + 1]
            f["rand"] = msg[pos + 2 : pos + 2 + l]
            pos += 2 + l
        elif nxt == PT_ID:
            f["id_type"] = msg[pos + 1]
            l = struct.unpack(">H", msg[pos + 2 : pos + 4])[0]
            f["value"] = msg[pos + 4 : pos + 4 + l]
            pos += 4 + l
        elif nxt == PT_SP:
            f["policy_no"], f["prot"] = msg[pos + 1], msg[pos + 2]
            l = struct.unpack(">H", msg[pos + 3 : pos + 5])[0]
            body = msg[pos + 5 : pos + 5 + l]
            ps, i = [], 0
            while i < l:
                t, pl = body[i], body[i + 1]
                ps.append((t, body[i + 2 : i + 2 + pl]))
                i += 2 + pl
            assert i == l
            f["params"] = ps
            pos += 5 + l
        elif nxt == PT_KEMAC:
            assert np_ == PT_LAST
            f["encr_alg"] = msg[pos + 1]
            l = struct.unpack(">H", msg[pos + 2 : pos + 4])[0]
            f["encr_data"] = msg[pos + 4 : pos + 4 + l]
            f["mac_alg"] = msg[pos + 4 + l]
            f["mac_start"] = pos + 5 + l
            f["mac"] = msg[pos + 5 + l : pos + 25 + l]
            pos += 25 + l
        elif nxt == PT_V:
            assert np_ == PT_LAST
            f["alg"] = msg[pos + 1]
            f["mac_start"] = pos + 2
            f["mac"] = msg[pos + 2 : pos + 22]
            pos += 22
        else:
            raise AssertionError("unexpected payload %d" % nxt)
        pls.append((nxt, start, pos, f))
        nxt = np_
    assert pos == len(msg), "trailing bytes"
    return hdr, pls


def parse_keydata(pt):
    assert pt[0] == PT_LAST
    typ, kv = pt[1] >> 4, pt[1] & 0x0F
    l = struct.unpack(">H", pt[2:4])[0]
    out = {"type": typ, "kv": kv, "key": pt[4 : 4 + l]}
    i = 4 + l
    if typ in (KD_TGK_SALT, 3):
        sl = struct.unpack(">H", pt[i : i + 2])[0]
        out["salt"] = pt[i + 2 : i + 2 + sl]
        i += 2 + sl
    if kv == KV_INTERVAL:
        vl = pt[i]
        out["vf"] = pt[i + 1 : i + 1 + vl]
        i += 1 + vl
        tl = pt[i]
        out["vt"] = pt[i + 1 : i + 1 + tl]
        i += 1 + tl
    elif kv == 1:
        sl = pt[i]
        out["spi"] = pt[i + 1 : i + 1 + sl]
        i += 1 + sl
    assert i == len(pt)
    return out


def check_kemac_roundtrip(msg, psk, rand_fallback, expect):
    """Re-derive keys from what the receiver sees, verify MAC, decrypt, compare."""
    hdr, pls = parse(msg)
    kinds = [p[0] for p in pls]
    rands = [p[3]["rand"] for p in pls if p[0] == PT_RAND]
    rand = rands[0] if rands else rand_fallback
    counter = [p[3]["counter"] for p in pls if p[0] == PT_T][0]
    assert kinds[-1] == PT_KEMAC and kinds[0] == PT_GENEXT
    k = pls[-1][3]
    assert k["encr_alg"] == ENCR_AES_CM_128 and k["mac_alg"] == MAC_HMAC_SHA1_160
    encr, auth, salt = kemac_keys(psk, hdr["csb_id"], rand)
    assert hmac.compare_digest(hmac_sha1(auth, msg[: k["mac_start"]]), k["mac"]), "KEMAC MAC"
    pt = aes_cm(encr, kemac_iv(salt, hdr["csb_id"], counter), k["encr_data"])
    kd = parse_keydata(pt)
    for name, val in expect.items():
        assert kd.get(name) == val, "key data field %s" % name
    return hdr, pls


# ---------------------------------------------------------------------------
# Self-checks against published / shared vectors
# ---------------------------------------------------------------------------


def read_records(path):
    recs, cur = [], {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("#"):
                continue
            if not line:
                if cur:
                    recs.append(cur)
                cur = {}
                continue
            k, v = (s.strip() for s in line.split("=", 1))
            cur[k] = v
    if cur:
        recs.append(cur)
    return recs


def selfcheck_prf():
    path = os.environ.get("MIKEY_PRF_VECTORS",
                          os.path.join(REPO, "testdata", "mikey", "mikey-prf-computed.txt"))
    recs = read_records(path)
    assert len(recs) == 8, "expected 8 PRF records in %s" % path
    for r in recs:
        h = lambda n: bytes.fromhex(r[n])
        label = h("constant") + h("cs_id") + h("csb_id") + h("rand")
        assert label == h("label")
        out = h("outkey")
        assert mikey_prf(h("inkey"), label, len(out)) == out, "PRF mismatch: %s" % r["label"]


def selfcheck_aes_cm():
    recs = read_records(os.path.join(REPO, "testdata", "srtp", "rfc3711-b2-aes-cm.txt"))
    assert len(recs) == 6
    for r in recs:
        ks = aes_cm(bytes.fromhex(r["session_key"]), bytes.fromhex(r["counter"]), bytes(16))
        assert ks == bytes.fromhex(r["keystream"])
    # Counter continuity: block 1 of a stream started at the IV is the "…0001" block.
    r0, r1 = recs[0], recs[1]
    ks = aes_cm(bytes.fromhex(r0["session_key"]), bytes.fromhex(r0["counter"]), bytes(32))
    assert ks[16:] == bytes.fromhex(r1["keystream"])


def selfcheck_hdr():
    recs = read_records(os.path.join(REPO, "testdata", "mikey", "gstreamer-mikey-encoding.txt"))
    assert enc_hdr(DT_PSK_INIT, 0, 0, 0x12345678, MAP_SRTP_ID) == bytes.fromhex(recs[0]["encoded"])
    e = enc_hdr(DT_PSK_INIT, 0, 0, 0x12345678, MAP_SRTP_ID,
                [(1, 0x12345678, 0), (2, 0x23456789, 1)])
    assert e == bytes.fromhex(recs[1]["encoded"])


# ---------------------------------------------------------------------------
# Vector inputs
# ---------------------------------------------------------------------------
MUK = bytes(range(32))
KDID = bytes.fromhex("12f410")
MSK_ID = bytes.fromhex("00010002")
MSK = bytes.fromhex("00112233445566778899aabbccddeeff")
VALIDITY_FROM = bytes.fromhex("0001")
VALIDITY_TO = bytes.fromhex("0064")
CSB_ID = 0x01020304
RAND = bytes(range(0xA0, 0xB0))
IDI_TYPE, IDI = ID_URI, b"bmsc.home1.net"
IDR_TYPE, IDR = ID_NAI, b"btid-1234@bsf.home1.net"


def build_msk(counter, streaming):
    map_type = MAP_SRTP_ID if streaming else MAP_EMPTY
    encr, auth, salt = kemac_keys(MUK, CSB_ID, RAND)
    iv = kemac_iv(salt, CSB_ID, counter)
    kd = keydata_msk(MSK, VALIDITY_FROM, VALIDITY_TO)
    prefix = (enc_hdr(DT_PSK_INIT, PT_GENEXT, 1, CSB_ID, map_type)
              + enc_keyid_ext(PT_T, [(KEYID_DOMAIN, KDID), (KEYID_MSK, MSK_ID)])
              + enc_t(PT_RAND, counter)
              + enc_rand(PT_ID, RAND)
              + enc_id(PT_ID, IDI_TYPE, IDI)
              + enc_id(PT_SP if streaming else PT_KEMAC, IDR_TYPE, IDR)
              + (enc_sp(PT_KEMAC) if streaming else b""))
    msg, ct, mac = seal(prefix, kd, encr, auth, iv)

    hdr, pls = check_kemac_roundtrip(msg, MUK, None, {
        "type": KD_TGK, "kv": KV_INTERVAL, "key": MSK, "vf": VALIDITY_FROM, "vt": VALIDITY_TO})
    assert (hdr["data_type"], hdr["v"], hdr["prf"], hdr["ncs"], hdr["map"]) == (0, 1, 0, 0, map_type)
    exp = [PT_GENEXT, PT_T, PT_RAND, PT_ID, PT_ID] + ([PT_SP] if streaming else []) + [PT_KEMAC]
    assert [p[0] for p in pls] == exp
    assert pls[0][3]["entries"] == [(KEYID_DOMAIN, KDID), (KEYID_MSK, MSK_ID)]
    if streaming:
        assert pls[5][3]["params"] == [(t, bytes([v])) for t, v in SP_PARAMS]

    rec = [
        ("kind", "msk-streaming" if streaming else "msk-download"),
        ("muk", MUK.hex()), ("msk", MSK.hex()),
        ("key_domain_id", KDID.hex()), ("msk_id", MSK_ID.hex()),
        ("csb_id", "%08x" % CSB_ID), ("cs_id_map_type", str(map_type)),
        ("rand", RAND.hex()), ("counter", str(counter)),
        ("idi_type", str(IDI_TYPE)), ("idi", IDI.hex()),
        ("idr_type", str(IDR_TYPE)), ("idr", IDR.hex()),
        ("validity_from", VALIDITY_FROM.hex()), ("validity_to", VALIDITY_TO.hex()),
        ("encr_key", encr.hex()), ("auth_key", auth.hex()), ("salt_key", salt.hex()),
        ("iv", iv.hex()), ("key_data_plain", kd.hex()), ("key_data_encrypted", ct.hex()),
        ("mac", mac.hex()), ("message", msg.hex()),
    ]
    return rec, msg


def build_verification(msk_msg):
    """UE's reply to the (streaming) MSK message, built only from what the UE sees."""
    hdr, pls = parse(msk_msg)
    counter = [p[3]["counter"] for p in pls if p[0] == PT_T][0]
    rand = [p[3]["rand"] for p in pls if p[0] == PT_RAND][0]
    ids = [p[3] for p in pls if p[0] == PT_ID]
    idi, idr = ids[0]["value"], ids[1]["value"]
    _, auth, _ = kemac_keys(MUK, hdr["csb_id"], rand)
    body = (enc_hdr(DT_PSK_VER, PT_GENEXT, 0, hdr["csb_id"], hdr["map"])
            + enc_keyid_ext(PT_T, [(KEYID_DOMAIN, KDID), (KEYID_MSK, MSK_ID)])
            + enc_t(PT_ID, counter)
            + enc_id(PT_V, ids[1]["id_type"], idr)
            + struct.pack(">BB", PT_LAST, MAC_HMAC_SHA1_160))
    mac_input = body + idi + idr + struct.pack(">I", counter)
    mac = hmac_sha1(auth, mac_input)
    msg = body + mac

    vh, vpls = parse(msg)
    assert (vh["data_type"], vh["v"], vh["ncs"], vh["map"]) == (1, 0, 0, hdr["map"])
    assert [p[0] for p in vpls] == [PT_GENEXT, PT_T, PT_ID, PT_V]
    v = vpls[-1][3]
    assert v["alg"] == MAC_HMAC_SHA1_160
    assert msg[: v["mac_start"]] + IDI + IDR + struct.pack(">I", counter) == mac_input
    assert hmac.compare_digest(hmac_sha1(auth, mac_input), v["mac"])

    rec = [
        ("kind", "verification"),
        ("muk", MUK.hex()),
        ("key_domain_id", KDID.hex()), ("msk_id", MSK_ID.hex()),
        ("csb_id", "%08x" % hdr["csb_id"]), ("cs_id_map_type", str(hdr["map"])),
        ("rand", rand.hex()), ("counter", str(counter)),
        ("idi_type", str(IDI_TYPE)), ("idi", idi.hex()),
        ("idr_type", str(IDR_TYPE)), ("idr", idr.hex()),
        ("auth_key", auth.hex()), ("mac_input", mac_input.hex()),
        ("mac", mac.hex()), ("message", msg.hex()),
    ]
    return rec


def build_mtk(kind, mtk_id, mtk, salt, counter, with_rand):
    encr, auth, salt_key = kemac_keys(MSK, CSB_ID, RAND)
    iv = kemac_iv(salt_key, CSB_ID, counter)
    kd = keydata_mtk(mtk, salt)
    prefix = (enc_hdr(DT_PSK_INIT, PT_GENEXT, 0, CSB_ID, MAP_EMPTY)
              + enc_keyid_ext(PT_T, [(KEYID_DOMAIN, KDID), (KEYID_MSK, MSK_ID),
                                     (KEYID_MTK, mtk_id)])
              + enc_t(PT_RAND if with_rand else PT_KEMAC, counter)
              + (enc_rand(PT_KEMAC, RAND) if with_rand else b""))
    msg, ct, mac = seal(prefix, kd, encr, auth, iv)

    expect = {"type": KD_TGK_SALT if salt is not None else KD_TGK, "kv": KV_NULL, "key": mtk}
    if salt is not None:
        expect["salt"] = salt
    hdr, pls = check_kemac_roundtrip(msg, MSK, None if with_rand else RAND, expect)
    assert (hdr["data_type"], hdr["v"], hdr["prf"], hdr["ncs"], hdr["map"]) == (0, 0, 0, 0, MAP_EMPTY)
    exp = [PT_GENEXT, PT_T] + ([PT_RAND] if with_rand else []) + [PT_KEMAC]
    assert [p[0] for p in pls] == exp
    assert pls[0][3]["entries"] == [(KEYID_DOMAIN, KDID), (KEYID_MSK, MSK_ID), (KEYID_MTK, mtk_id)]
    if not with_rand:
        # Without the MSK message's RAND the receiver must not be able to open it
        # with some other RAND (sanity: keys really depend on the fallback RAND).
        try:
            check_kemac_roundtrip(msg, MSK, bytes(16), expect)
        except AssertionError:
            pass
        else:
            raise AssertionError("no-rand message verified with a wrong RAND")

    rec = [("kind", kind), ("msk", MSK.hex()), ("mtk", mtk.hex())]
    if salt is not None:
        rec.append(("salt", salt.hex()))
    rec += [
        ("key_domain_id", KDID.hex()), ("msk_id", MSK_ID.hex()), ("mtk_id", mtk_id.hex()),
        ("csb_id", "%08x" % CSB_ID), ("cs_id_map_type", str(MAP_EMPTY)),
        ("rand", RAND.hex()), ("counter", str(counter)),
        ("encr_key", encr.hex()), ("auth_key", auth.hex()), ("salt_key", salt_key.hex()),
        ("iv", iv.hex()), ("key_data_plain", kd.hex()), ("key_data_encrypted", ct.hex()),
        ("mac", mac.hex()), ("message", msg.hex()),
    ]
    return rec


def main():
    if not __debug__:
        sys.exit("gen-mikey-vectors.py: the self-checks use assert; do not run with python -O")
    selfcheck_prf()
    selfcheck_aes_cm()
    selfcheck_hdr()

    # Cross-check the §5.4 digest values used directly by the records below.
    assert kemac_keys(MUK, CSB_ID, RAND)[0].hex() == "fc61f199821acb262bfe0c6aeaff9c8e"
    assert kemac_keys(MSK, CSB_ID, RAND)[2].hex() == "40e1415fbcbca4e4a14ef7f8264b"

    records = []
    rec, msk_stream_msg = build_msk(7, streaming=True)
    records.append(rec)
    records.append(build_msk(8, streaming=False)[0])
    records.append(build_verification(msk_stream_msg))
    records.append(build_mtk("mtk-streaming", bytes.fromhex("0005"), b"\x5a" * 16,
                             b"\xc3" * 14, 10, with_rand=True))
    records.append(build_mtk("mtk-download", bytes.fromhex("0006"), b"\x5a" * 16,
                             None, 11, with_rand=True))
    records.append(build_mtk("mtk-no-rand", bytes.fromhex("0005"), b"\x5a" * 16,
                             b"\xc3" * 14, 12, with_rand=False))

    lines = ["# source: COMPUTED, NOT PUBLISHED: scripts/gen-mikey-vectors.py (independent Python "
             "implementation of RFC 3830/4563 and the digest's MBMS profile; Python %s, "
             "cryptography %s)" % (platform.python_version(), cryptography.__version__)]
    for i, rec in enumerate(records):
        if i:
            lines.append("")
        lines += ["%s = %s" % (k, v) for k, v in rec]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
