#!/usr/bin/env python3
"""Write the RTP capture fixtures of crates/mbms-sender/tests/pcap_source.rs.

Python standard library only: every frame, pcap record and pcapng block is packed with
`struct` from the format descriptions (draft-ietf-opsawg-pcap, draft-ietf-opsawg-pcapng,
tcpdump.org LINKTYPE_* pages, RFC 791/8200/768/3550), not with a capture library, so the files
check the Rust reader rather than share its assumptions. IPv4 header and UDP checksums are real,
so Wireshark shows no checksum warnings.

    python3 scripts/gen-pcap-fixtures.py            # writes testdata/pcap/*.pcap[ng]
    python3 scripts/gen-pcap-fixtures.py --out DIR

The output is deterministic (fixed timestamps, no randomness). The tests never run this script;
the files are committed. testdata/pcap/README.md lists what each file holds.

Conventions the tests rely on:
  * RTP packet `rtp(seq, ssrc, n)`: V=2, PT 96, timestamp seq*160, payload of n bytes
    (seq + i) & 0xff; default n = 20 (32-byte packet).
  * IPv4 10.1.2.3:40000 -> 239.1.1.1:<port>; IPv6 [2001:db8::3]:40000 -> [ff3e::1]:<port>.
  * Standard timestamp of packet i: second T0 + i with T0 = 1_700_000_000, fraction i ms + 7 us
    (microsecond files) or i ms + 7789 ns (nanosecond files and interfaces).
"""

import argparse
import os
import struct

T0 = 1_700_000_000
SSRC = 0x5EED0001
SSRC_A = 0xAAAA0001
SSRC_B = 0xBBBB0002

V4_SRC, V4_DST = bytes([10, 1, 2, 3]), bytes([239, 1, 1, 1])
V6_SRC = bytes.fromhex("20010db8000000000000000000000003")
V6_DST = bytes.fromhex("ff3e0000000000000000000000000001")
MAC_SRC = bytes.fromhex("020000000001")
MAC_DST = bytes.fromhex("01005e010101")  # IPv4 multicast MAC of 239.1.1.1

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
UDP, TCP, ICMPV6 = 17, 6, 58


# ---------------------------------------------------------------- RTP


def rtp(seq, ssrc, n=20, pt=96, csrcs=(), ext=None, padding=0):
    """RFC 3550 section 5.1 fixed header [+ CSRCs] [+ extension] + payload [+ padding]."""
    b0 = 0x80 | len(csrcs) | (0x10 if ext is not None else 0) | (0x20 if padding else 0)
    out = struct.pack("!BBHII", b0, pt, seq, (seq * 160) & 0xFFFFFFFF, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext is not None:
        profile, words, declared = ext
        out += struct.pack("!HH", profile, declared) + b"".join(struct.pack("!I", w) for w in words)
    out += bytes((seq + i) & 0xFF for i in range(n))
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


# ---------------------------------------------------------------- IP / UDP


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp(src_ip, dst_ip, dport, payload, sport=40000, length=None):
    """RFC 768; the checksum covers the RFC 768 / RFC 8200 section 8.1 pseudo-header."""
    ulen = 8 + len(payload) if length is None else length
    if len(src_ip) == 4:
        pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, UDP, 8 + len(payload))
    else:
        pseudo = src_ip + dst_ip + struct.pack("!IxxxB", 8 + len(payload), UDP)
    header = struct.pack("!HHHH", sport, dport, ulen, 0)
    csum = checksum(pseudo + header + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, ulen, csum) + payload


def ipv4(payload, proto=UDP, options=b"", flags_frag=0x4000, ihl=None, ident=1, total=None):
    """RFC 791 section 3.1, DF set by default."""
    assert len(options) % 4 == 0
    hlen = 20 + len(options)
    ihl = hlen // 4 if ihl is None else ihl
    total = hlen + len(payload) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, flags_frag, 64, proto, 0,
                         V4_SRC, V4_DST) + options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(upper, proto=UDP, ext=()):
    """RFC 8200 section 3; `ext` is a list of (header type, body after the 2 leading bytes)."""
    chain = [t for t, _ in ext] + [proto]
    body = b""
    for i, (_, rest) in enumerate(ext):
        whole = 2 + len(rest)
        assert whole % 8 == 0
        body += struct.pack("!BB", chain[i + 1], whole // 8 - 1) + rest
    body += upper
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), chain[0], 64, V6_SRC, V6_DST) + body


def udp4(dport, payload, **ip):
    return ipv4(udp(V4_SRC, V4_DST, dport, payload), **ip)


def udp6(dport, payload, ext=()):
    return ipv6(udp(V6_SRC, V6_DST, dport, payload), ext=ext)


def pad_n(n):
    """RFC 8200 section 4.2 PadN option filling n bytes (n >= 2)."""
    return struct.pack("!BB", 1, n - 2) + bytes(n - 2)


def fragment_ext(offset, more, ident=0x1234):
    """RFC 8200 section 4.5, as the body after Next Header and Reserved."""
    return struct.pack("!HI", (offset << 3) | more, ident)


# ---------------------------------------------------------------- link layers


def ethernet(ethertype, payload, tags=(), pad_byte=0x00):
    """IEEE 802.3 frame without FCS, padded to the 60-byte minimum; tags = [(TPID, VID)]."""
    frame = MAC_DST + MAC_SRC
    for tpid, vid in tags:
        frame += struct.pack("!HH", tpid, vid)
    frame += struct.pack("!H", ethertype) + payload
    return frame + bytes([pad_byte]) * max(0, 60 - len(frame))


def eth_ip(ip_packet):
    return ethernet(ETH_IPV4 if ip_packet[0] >> 4 == 4 else ETH_IPV6, ip_packet)


def linux_sll(ip_packet):
    """LINKTYPE_LINUX_SLL: packet type 4 (outgoing), ARPHRD_ETHER, 6-byte address."""
    proto = ETH_IPV4 if ip_packet[0] >> 4 == 4 else ETH_IPV6
    return struct.pack("!HHH8sH", 4, 1, 6, MAC_SRC, proto) + ip_packet


def linux_sll2(ip_packet):
    """LINKTYPE_LINUX_SLL2: protocol, reserved, ifindex 2, ARPHRD_ETHER, outgoing, 6-byte address."""
    proto = ETH_IPV4 if ip_packet[0] >> 4 == 4 else ETH_IPV6
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 4, 6, MAC_SRC) + ip_packet


def bsd_loopback(family, order):
    """LINKTYPE_NULL / LINKTYPE_LOOP: a 4-byte address family in byte order `order`."""
    return lambda ip_packet: struct.pack(order + "I", family) + ip_packet


def raw(ip_packet):
    return ip_packet


# ---------------------------------------------------------------- pcap


def pcap(records, link, order="<", nanos=False, snaplen=65535):
    """records: (seconds, fraction, data[, original length])."""
    out = struct.pack(order + "IHHiIII", 0xA1B23C4D if nanos else 0xA1B2C3D4, 2, 4, 0, 0,
                      snaplen, link)
    for rec in records:
        secs, frac, data = rec[:3]
        orig = rec[3] if len(rec) > 3 else len(data)
        out += struct.pack(order + "IIII", secs, frac, len(data), orig) + data
    return out


def std_ts(i, nanos=False):
    return T0 + i, (i * 1_000_000 + 7_789) if nanos else (i * 1000 + 7)


# ---------------------------------------------------------------- pcapng


def pad4(data):
    return data + bytes(-len(data) % 4)


def ng_block(o, btype, body):
    body = pad4(body)
    total = 12 + len(body)
    return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)


def ng_options(o, options):
    if not options:
        return b""
    out = b"".join(struct.pack(o + "HH", code, len(v)) + pad4(v) for code, v in options)
    return out + struct.pack(o + "HH", 0, 0)


def shb(o, options=()):
    return ng_block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                    + ng_options(o, options))


def idb(o, link, snaplen=0, options=()):
    return ng_block(o, 1, struct.pack(o + "HHI", link, 0, snaplen) + ng_options(o, options))


def epb(o, iface, units, data, options=()):
    return ng_block(o, 6, struct.pack(o + "IIIII", iface, units >> 32, units & 0xFFFFFFFF,
                                      len(data), len(data)) + pad4(data) + ng_options(o, options))


def spb(o, data):
    return ng_block(o, 3, struct.pack(o + "I", len(data)) + data)


def obsolete_pb(o, iface, units, data):
    return ng_block(o, 2, struct.pack(o + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF,
                                      len(data), len(data)) + data)


def isb(o, iface, units):
    return ng_block(o, 5, struct.pack(o + "III", iface, units >> 32, units & 0xFFFFFFFF))


def nrb(o):
    """One IPv4 record (239.1.1.1 = "mbms-bearer") and the end record."""
    value = V4_DST + b"mbms-bearer\0"
    return ng_block(o, 4, struct.pack(o + "HH", 1, len(value)) + pad4(value)
                    + struct.pack(o + "HH", 0, 0))


def custom_block(o):
    """A Custom Block (0x00000BAD) under private enterprise number 32473 (RFC 5612 examples)."""
    return ng_block(o, 0x00000BAD, struct.pack(o + "I", 32473) + b"skip me")


def units_us(i):
    secs, frac = std_ts(i)
    return secs * 1_000_000 + frac


def units_ns(i):
    secs, frac = std_ts(i, nanos=True)
    return secs * 1_000_000_000 + frac


# ---------------------------------------------------------------- files


def std_pair(wrap, nanos, port=5004):
    """Packet 1 IPv4, packet 2 IPv6, both RTP with SSRC and standard timestamps."""
    return [
        std_ts(1, nanos) + (wrap(udp4(port, rtp(1, SSRC))),),
        std_ts(2, nanos) + (wrap(udp6(port, rtp(2, SSRC))),),
    ]


def link_type_files():
    files = {
        "rtp-ethernet.pcap": pcap(std_pair(eth_ip, False), 1, "<"),
        "rtp-linux-sll.pcap": pcap(std_pair(linux_sll, False), 113, ">"),
        "rtp-linux-sll2.pcap": pcap(std_pair(linux_sll2, True), 276, "<", nanos=True),
        "rtp-raw.pcap": pcap(std_pair(raw, True), 101, ">", nanos=True),
        "rtp-ipv4.pcap": pcap([std_ts(1) + (udp4(5004, rtp(1, SSRC)),),
                               std_ts(2) + (udp4(5004, rtp(2, SSRC)),)], 228, "<"),
        "rtp-ipv6.pcap": pcap([std_ts(1, True) + (udp6(5004, rtp(1, SSRC)),),
                               std_ts(2, True) + (udp6(5004, rtp(2, SSRC)),)], 229, ">",
                              nanos=True),
    }
    # LINKTYPE_NULL should be host order and LINKTYPE_LOOP network order; both appear.
    null = [
        (bsd_loopback(2, "<"), udp4), (bsd_loopback(30, "<"), udp6),   # Darwin AF_INET6
        (bsd_loopback(2, ">"), udp4), (bsd_loopback(24, ">"), udp6),   # NetBSD/OpenBSD
    ]
    loop = [
        (bsd_loopback(2, ">"), udp4), (bsd_loopback(28, ">"), udp6),   # FreeBSD
        (bsd_loopback(2, "<"), udp4), (bsd_loopback(10, "<"), udp6),   # Linux AF_INET6
    ]
    for name, link, order, fams in (("rtp-null.pcap", 0, "<", null),
                                    ("rtp-loop.pcap", 108, ">", loop)):
        records = [std_ts(i) + (wrap(ip(5004, rtp(i, SSRC))),)
                   for i, (wrap, ip) in enumerate(fams, start=1)]
        files[name] = pcap(records, link, order)
    return files


def vlan_file():
    hbh = pad_n(6)
    dstopts = pad_n(6)
    # RFC 8754 segment routing header, Segments Left 0, one segment (the destination).
    srh = struct.pack("!BBBBH", 4, 0, 0, 0, 0) + V6_DST
    frames = [
        # 1: 802.1Q VID 100, IPv4 with a Router Alert option (RFC 2113), IHL 6.
        ethernet(ETH_IPV4, udp4(5004, rtp(1, SSRC), options=bytes([0x94, 4, 0, 0])),
                 tags=[(0x8100, 100)]),
        # 2: 802.1ad S-tag VID 200 + 802.1Q C-tag VID 100, IPv6 with hop-by-hop, destination
        #    options and routing headers.
        ethernet(ETH_IPV6, udp6(5004, rtp(2, SSRC), ext=[(0, hbh), (60, dstopts), (43, srh)]),
                 tags=[(0x88A8, 200), (0x8100, 100)]),
        # 3: pre-802.1ad S-tag 0x9100 + 802.1Q.
        ethernet(ETH_IPV4, udp4(5004, rtp(3, SSRC)), tags=[(0x9100, 300), (0x8100, 100)]),
        # 4: a 40-byte IPv4 packet in a 60-byte frame: 6 bytes of (non-zero) Ethernet padding.
        ethernet(ETH_IPV4, udp4(5004, rtp(4, SSRC, n=0)), pad_byte=0x5A),
        # 5: IPv6 atomic fragment (RFC 6946): offset 0, M 0 -- a whole packet.
        ethernet(ETH_IPV6, udp6(5004, rtp(5, SSRC), ext=[(44, fragment_ext(0, 0))])),
    ]
    return pcap([std_ts(i) + (f,) for i, f in enumerate(frames, start=1)], 1, "<")


def mixed_file():
    arp = ethernet(ETH_ARP, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_SRC, V4_SRC,
                                        bytes(6), V4_DST))
    tcp = ipv4(struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 65535, 0, 0), proto=TCP)
    echo = struct.pack("!BBHHH", 128, 0, 0, 1, 1) + b"ping"
    pseudo = V6_SRC + V6_DST + struct.pack("!IxxxB", len(echo), ICMPV6)
    echo = echo[:2] + struct.pack("!H", checksum(pseudo + echo)) + echo[4:]
    icmp6 = ipv6(echo, proto=ICMPV6)
    udp_whole = udp(V4_SRC, V4_DST, 5004, rtp(99, SSRC_A, n=1400))
    frag_first = ipv4(udp_whole[:1480], flags_frag=0x2000, ident=7)
    frag_last = ipv4(udp_whole[1480:], flags_frag=1480 // 8, ident=7)
    frag6 = ipv6(udp(V6_SRC, V6_DST, 5004, rtp(98, SSRC_A))[:24], proto=UDP,
                 ext=[(44, fragment_ext(0, 1))])
    dns = bytes.fromhex("1234010000010000000000000764656661756c7400000100 01".replace(" ", ""))
    rtcp_sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, SSRC_A, 0, 0, 0, 0, 0)
    cc15 = bytes([0x8F, 96]) + bytes(18)
    ext_ok = rtp(12, SSRC_A, ext=(0xBEDE, [0x10AA0000], 1))
    ext_long = rtp(13, SSRC_A, ext=(0xBEDE, [0x10AA0000], 100))
    big = eth_ip(udp4(5004, rtp(14, SSRC_A, n=200)))
    bad_ihl = ipv4(udp(V4_SRC, V4_DST, 5004, rtp(15, SSRC_A)), ihl=4)
    bad_udp_len = ipv4(udp(V4_SRC, V4_DST, 5004, rtp(16, SSRC_A), length=400))
    llc = MAC_DST + MAC_SRC + struct.pack("!H", 38) + bytes([0x42, 0x42, 0x03]) + bytes(35)
    rtp_csrc_pad = rtp(21, SSRC_A, csrcs=(0x0C0C0001, 0x0C0C0002), padding=4)
    frames = [
        eth_ip(udp4(5004, rtp(10, SSRC_A))),        # 1  ok
        arp,                                        # 2  not_ip
        eth_ip(udp4(5006, rtp(20, SSRC_B))),        # 3  ok
        eth_ip(tcp),                                # 4  not_udp
        eth_ip(udp6(5004, rtp(11, SSRC_B))),        # 5  ok
        eth_ip(icmp6),                              # 6  not_udp
        eth_ip(frag_first),                         # 7  fragment
        eth_ip(frag_last),                          # 8  fragment
        eth_ip(frag6),                              # 9  fragment
        eth_ip(udp4(53, dns)),                      # 10 not_rtp (port 53)
        eth_ip(udp4(5005, rtcp_sr)),                # 11 not_rtp (port 5005)
        eth_ip(udp4(5004, cc15)),                   # 12 not_rtp
        eth_ip(udp4(5004, ext_ok)),                 # 13 ok
        eth_ip(udp4(5004, ext_long)),               # 14 not_rtp
        big[:64],                                   # 15 truncated (caplen 64 < origlen)
        eth_ip(bad_ihl),                            # 16 bad_header
        eth_ip(bad_udp_len),                        # 17 bad_header
        llc,                                        # 18 not_ip
        eth_ip(udp6(5006, rtp_csrc_pad)),           # 19 ok
    ]
    records = []
    for i, f in enumerate(frames, start=1):
        orig = len(big) if i == 15 else len(f)
        records.append(std_ts(i) + (f, orig))
    return pcap(records, 1, "<")


def not_rtp_file():
    dns = bytes.fromhex("abcd01000001000000000000076578616d706c6500000100 01".replace(" ", ""))
    rtcp_rr = struct.pack("!BBHI", 0x80, 201, 1, SSRC_A)
    stun = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, bytes(range(12)))
    frames = [linux_sll(udp4(53, dns)), linux_sll(udp4(5005, rtcp_rr)),
              linux_sll(udp6(3478, stun))]
    return pcap([std_ts(i) + (f,) for i, f in enumerate(frames, start=1)], 113, "<")


def two_interfaces_file():
    o = "<"
    v4 = lambda i, port=5004: udp4(port, rtp(i, SSRC))
    v6 = lambda i: udp6(5004, rtp(i, SSRC))
    return b"".join([
        shb(o, [(4, b"gen-pcap-fixtures.py")]),                       # shb_userappl
        idb(o, 1, 0, [(2, b"eth0")]),                                 # if 0: Ethernet, us
        idb(o, 101, 65535, [(2, b"tun0"), (9, bytes([9]))]),          # if 1: raw IP, ns
        epb(o, 0, units_us(1), eth_ip(v4(1))),
        nrb(o),
        epb(o, 1, units_ns(2), v6(2)),
        isb(o, 0, units_us(2)),
        spb(o, eth_ip(v6(3))),                                        # interface 0, no time
        epb(o, 1, units_ns(4), udp4(9, b"\x12\x34not rtp")),     # UDP discard port
        custom_block(o),
        epb(o, 0, units_us(4), eth_ip(v4(4)),
            [(2, struct.pack(o + "I", 2)), (1, b"outbound")]),      # epb_flags, comment
        obsolete_pb(o, 1, units_ns(5), v6(5)),
    ])


def two_sections_file():
    big, little = ">", "<"
    half = 1 << 19  # 0.5 s in 2^-20 s units
    return b"".join([
        shb(big),
        idb(big, 276, 0, [(9, bytes([0x94])), (14, struct.pack(">q", 100))]),  # 2^-20 s, +100 s
        epb(big, 0, ((T0 + 1) << 20) + half, linux_sll2(udp4(5004, rtp(1, SSRC)))),
        shb(little),
        idb(little, 0),                                               # NULL, default us
        epb(little, 0, units_us(2), bsd_loopback(30, "<")(udp6(5004, rtp(2, SSRC)))),
    ])


def unknown_link_files():
    o = "<"
    wlan = bytes.fromhex("48000000") + bytes(20)                      # 802.11 null data frame
    return {
        "unknown-link.pcap": pcap([std_ts(1) + (wlan,)], 105, "<"),
        "unknown-link.pcapng": b"".join([
            shb(o),
            idb(o, 1),
            epb(o, 0, units_us(1), eth_ip(udp4(5004, rtp(1, SSRC)))),
            idb(o, 147),                                              # LINKTYPE_USER0
            epb(o, 1, units_us(2), wlan),
        ]),
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "testdata", "pcap"))
    out = parser.parse_args().out
    files = link_type_files()
    files.update({
        "rtp-vlan.pcap": vlan_file(),
        "mixed.pcap": mixed_file(),
        "not-rtp.pcap": not_rtp_file(),
        "two-interfaces.pcapng": two_interfaces_file(),
        "two-sections.pcapng": two_sections_file(),
    })
    files.update(unknown_link_files())
    for name, data in sorted(files.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{len(data):6d}  {name}")


if __name__ == "__main__":
    main()
