#!/usr/bin/env python3
"""Builds the DCF known-answer vectors (vectors.txt) from the box layout of the digest
(shared/spec §7.2; Bento4's Ap4OhdrAtom/Ap4OdheAtom/Ap4OddaAtom and Mp4DcfPackager), with
`struct` for the boxes and the `openssl enc` command for AES, independently of our Rust code.

    python3 testdata/dcf/make_vectors.py > testdata/dcf/vectors.txt
"""
import struct, subprocess, sys

def aes(mode, key, iv, data):
    # openssl pads CBC with PKCS#7 = RFC 2630 padding; CTR uses a 128-bit big-endian counter.
    r = subprocess.run(["openssl", "enc", "-e", f"-aes-128-{mode}", "-K", key.hex(), "-iv", iv.hex()],
                       input=data, capture_output=True, check=True)
    return r.stdout

def full(kind, body, large=False):
    payload = b"\0\0\0\0" + body               # version 0, flags 0
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload

def dcf(method, key, iv, plaintext, content_type, content_id, riu, headers):
    th = b"".join(n.encode() + b":" + v.encode() + b"\0" for n, v in headers)
    code, padding = {"cbc": (1, 1), "ctr": (2, 0)}[method]
    ohdr = full(b"ohdr", struct.pack(">BBQHHH", code, padding, len(plaintext), len(content_id),
                                     len(riu), len(th)) + content_id.encode() + riu.encode() + th)
    odhe = full(b"odhe", bytes([len(content_type)]) + content_type.encode() + ohdr)
    enc = iv + aes(method, key, iv, plaintext)
    odda = full(b"odda", struct.pack(">Q", len(enc)) + enc, large=True)
    odrm = full(b"odrm", odhe + odda, large=True)
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", b"odcf", 2, b"odcf")
    return ftyp + odrm

key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
iv_wrap = bytes.fromhex("fffffffffffffffffffffffffffffffe")   # the counter carries across all 128 bits
headers = [("MBMS-Key-Domain-ID", "12f410"), ("MBMS-MSK-ID", "00010002"), ("MBMS-MTK-ID", "0003"),
           ("MBMS-MTK-URI", "http://bmsc.example.org/keys/mtk-12f410-00010002-0003.mikey")]
print("# source: computed by testdata/dcf/make_vectors.py (Python struct + openssl enc, from the digest's DCF layout), not published; do not edit")
print("# fields: method size key iv content_type content_id object_hex; plaintext byte i = (7i + 3) mod 256")
for method in ("cbc", "ctr"):
    for size in (0, 1, 15, 16, 17, 100):
        pt = bytes((i * 7 + 3) & 0xff for i in range(size))
        for v in (iv,) + ((iv_wrap,) if method == "ctr" and size == 100 else ()):
            obj = dcf(method, key, v, pt, "video/mp4", "cid:clip1@bmsc.example.org", "", headers)
            print(method, size, key.hex(), v.hex(), "video/mp4", "cid:clip1@bmsc.example.org", obj.hex())
