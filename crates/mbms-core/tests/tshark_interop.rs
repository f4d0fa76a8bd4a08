//! Interop with a MIKEY decoder we did not write: Wireshark's dissector, run through tshark.
//!
//! The test seals MSK, verification and MTK messages with mbms-core, writes them as UDP
//! datagrams to port 2269 into a pcap, dissects it with
//! `tshark -r <pcap> -d udp.port==2269,mikey -T pdml` and checks that
//! - no packet is malformed or carries expert info of error severity, and Wireshark consumed
//!   every byte of every message as MIKEY;
//! - the chain of payloads Wireshark reports (by field name and by its display name) is the
//!   one we sealed, and the payloads tile the message exactly;
//! - the field values Wireshark decodes match what we put in (HDR, Key ID extension, T, RAND,
//!   ID, SP, KEMAC, V).
//!
//! Wireshark's names (as of 4.0): `mikey.hdr` "Common Header (HDR)", `mikey.ext` "General
//! Extension (EXT)", `mikey.t` "Timestamp (T)", `mikey.rand` "RAND", `mikey.id` "ID",
//! `mikey.sp` "Security Policy (SP)", `mikey.kemac` "Key Data Transport (KEMAC)", `mikey.v`
//! "Ver msg (V)". It shows the Empty CS ID map (type 1, RFC 4563) as "CS ID map type: Unknown
//! (1)" and the Key ID extension (type 3) as "Extension type: Unknown (3)" with raw data, and
//! it does not decode the value of a COUNTER timestamp (the T payload spans it, though).
//!
//! tshark is required: install it with `apt-get install -y tshark`. Set `MBMS_SKIP_TSHARK=1`
//! to skip (with a message) where it is absent. `MBMS_WRITE_FIXTURES=1` also writes the pcap
//! to `testdata/pcap/mikey-messages.pcap`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mbms_core::mbms::{
    MskMessageParams, MtkParams, MtkSealer, ReplayCounter, open_msk_message, seal_msk_message,
    seal_verification,
};
use mbms_core::mikey::{Identity, MikeyMessage, Payload, SecurityPolicy};
use mbms_core::profile::{ExtPosition, MtkRand, VerificationKeyId};
use mbms_core::*;

const MIKEY_PORT: u16 = 2269;
const SRC: [u8; 4] = [127, 0, 0, 1];
const DST: [u8; 4] = [127, 0, 0, 2];
const CSB_ID: u32 = 0x0102_0304;
const KDID: [u8; 3] = [0x12, 0xf4, 0x10];
const IDI: &str = "bmsc.home1.net";
const IDR: &str = "btid-1234@bsf.home1.net";
/// `_ws.expert.severity` of PI_ERROR (epan/proto.h); PI_WARN is 0x0060_0000.
const PI_ERROR: u32 = 0x0080_0000;

/// `N` bytes `f(0), f(1), ...`.
fn byte_seq<const N: usize>(f: impl Fn(u8) -> u8) -> [u8; N] {
    core::array::from_fn(|i| f(u8::try_from(i).expect("short array")))
}

fn rand() -> [u8; 16] {
    byte_seq(|i| 0xa0 + i)
}

fn msk_id() -> MskId {
    MskId::new(1, 2)
}

/// A MIKEY payload as Wireshark should report it, with what to check in it.
#[derive(Debug, Clone)]
enum Pl {
    /// Common header.
    Hdr,
    /// RFC 4563 Key ID extension with this data (Key ID sub-payloads).
    KeyIdExt(Vec<u8>),
    /// COUNTER timestamp.
    T,
    /// RAND (always `rand()`).
    Rand,
    /// ID of this type (0 NAI, 1 URI) and value.
    Id(u8, &'static str),
    /// SRTP security policy (`SecurityPolicy::srtp_default(1)`).
    Sp,
    /// KEMAC whose encrypted Key data has this length.
    Kemac(usize),
    /// Verification payload.
    V,
}

impl Pl {
    /// Wireshark's field name of the payload subtree.
    fn field(&self) -> &'static str {
        match self {
            Pl::Hdr => "mikey.hdr",
            Pl::KeyIdExt(_) => "mikey.ext",
            Pl::T => "mikey.t",
            Pl::Rand => "mikey.rand",
            Pl::Id(..) => "mikey.id",
            Pl::Sp => "mikey.sp",
            Pl::Kemac(_) => "mikey.kemac",
            Pl::V => "mikey.v",
        }
    }

    /// Wireshark's display name of the payload (the start of the subtree's label).
    fn display(&self) -> &'static str {
        match self {
            Pl::Hdr => "Common Header (HDR)",
            Pl::KeyIdExt(_) => "General Extension (EXT)",
            Pl::T => "Timestamp (T)",
            Pl::Rand => "RAND",
            Pl::Id(..) => "ID",
            Pl::Sp => "Security Policy (SP)",
            Pl::Kemac(_) => "Key Data Transport (KEMAC)",
            Pl::V => "Ver msg (V)",
        }
    }
}

/// One message of the capture and what Wireshark should make of it.
struct Case {
    what: String,
    bytes: Vec<u8>,
    data_type: u8,
    v_flag: bool,
    /// 0 SRTP-ID, 1 Empty.
    map_type: u8,
    counter: u32,
    chain: Vec<Pl>,
}

/// Key ID extension data: (type, length, value) sub-payloads (RFC 4563 §4).
fn key_ids(mtk_id: Option<u16>) -> Vec<u8> {
    let mut d = vec![0x00, 3];
    d.extend_from_slice(&KDID);
    d.extend_from_slice(&[0x01, 4]);
    d.extend_from_slice(&msk_id().to_bytes());
    if let Some(id) = mtk_id {
        d.extend_from_slice(&[0x02, 2]);
        d.extend_from_slice(&id.to_be_bytes());
    }
    d
}

fn cases() -> Vec<Case> {
    let muk = Muk::from_bytes(byte_seq(|i| i));
    let msk = Msk::from_bytes(byte_seq(|i| 0x11 * (i & 0x0f)));
    let idi = Identity::uri(IDI);
    let idr = Identity::nai(IDR);
    let rand = rand();
    let policy = SecurityPolicy::srtp_default(1);
    let msk_ext = || Pl::KeyIdExt(key_ids(None));
    // Key data of an MSK: next, type|KV, key len, MSK (16), from len, from (2), to len, to (2).
    const MSK_KEY_DATA: usize = 4 + 16 + 1 + 2 + 1 + 2;
    let mut out = Vec::new();

    for (streaming, counter) in [(true, 7), (false, 8)] {
        let kind = if streaming { "streaming" } else { "download" };
        let map_type = if streaming { 0 } else { 1 };
        let params = MskMessageParams {
            key_domain_id: KeyDomainId(KDID),
            msk_id: msk_id(),
            msk: &msk,
            validity: MtkIdInterval {
                from: MtkId(1),
                to: MtkId(100),
            },
            policy: streaming.then_some(&policy),
            counter,
            csb_id: CsbId(CSB_ID),
            rand: &rand,
            idi: &idi,
            idr: &idr,
            verification_requested: true,
        };
        let mut bytes = Vec::new();
        seal_msk_message(&muk, &params, &Profile::default(), &mut bytes);
        let opened = open_msk_message(&muk, &bytes, &mut ReplayCounter::default())
            .expect("our own MSK message opens");
        let mut chain = vec![
            Pl::Hdr,
            msk_ext(),
            Pl::T,
            Pl::Rand,
            Pl::Id(1, IDI),
            Pl::Id(0, IDR),
        ];
        if streaming {
            chain.push(Pl::Sp);
        }
        chain.push(Pl::Kemac(MSK_KEY_DATA));
        out.push(Case {
            what: format!("MSK message ({kind})"),
            bytes,
            data_type: 0,
            v_flag: true,
            map_type,
            counter,
            chain,
        });

        let verification_profiles = if streaming {
            vec![VerificationKeyId::Included, VerificationKeyId::Omitted]
        } else {
            vec![VerificationKeyId::Included]
        };
        for key_id in verification_profiles {
            let profile = Profile {
                verification_key_id: key_id,
                ..Profile::default()
            };
            let mut bytes = Vec::new();
            seal_verification(&muk, &opened, &profile, &mut bytes);
            let mut chain = vec![Pl::Hdr];
            if key_id == VerificationKeyId::Included {
                chain.push(msk_ext());
            }
            chain.extend([Pl::T, Pl::Id(0, IDR), Pl::V]);
            out.push(Case {
                what: format!("verification message ({kind}, Key ID ext {key_id:?})"),
                bytes,
                data_type: 1,
                v_flag: false,
                map_type,
                counter,
                chain,
            });
        }
    }

    let mtk = Mtk::from_bytes([0x5a; 16]);
    let salt = MtkSalt::from_bytes([0xc3; 14]);
    let mut counter = 20;
    let mut mtk_id = 5;
    for (mtk_rand, ext_position) in [
        (MtkRand::InMessage, ExtPosition::AfterHeader),
        (MtkRand::FromMsk, ExtPosition::AfterHeader),
        (MtkRand::InMessage, ExtPosition::BeforeKemac),
    ] {
        let profile = Profile {
            mtk_rand,
            ext_position,
            ..Profile::default()
        };
        let sealer = MtkSealer::new(
            KeyDomainId(KDID),
            msk_id(),
            &msk,
            CsbId(CSB_ID),
            rand,
            profile,
        );
        for salt in [Some(&salt), None] {
            let mut bytes = Vec::new();
            let m = MtkParams {
                mtk_id: MtkId(mtk_id),
                mtk: &mtk,
                salt,
            };
            sealer
                .seal(&m, counter, &mut bytes)
                .expect("counters increase per sealer");
            // Key data: next, type|KV (Null), key len, MTK (16) [, salt len, salt (14)].
            let key_data = 4 + 16 + salt.map_or(0, |_| 2 + 14);
            let ext = Pl::KeyIdExt(key_ids(Some(mtk_id)));
            let mut chain = vec![Pl::Hdr];
            if ext_position == ExtPosition::AfterHeader {
                chain.push(ext.clone());
            }
            chain.push(Pl::T);
            if mtk_rand == MtkRand::InMessage {
                chain.push(Pl::Rand);
            }
            if ext_position == ExtPosition::BeforeKemac {
                chain.push(ext);
            }
            chain.push(Pl::Kemac(key_data));
            out.push(Case {
                what: format!(
                    "MTK message ({mtk_rand:?}, {ext_position:?}, {})",
                    if salt.is_some() { "TGK+SALT" } else { "TGK" }
                ),
                bytes,
                data_type: 0,
                v_flag: false,
                map_type: 1,
                counter,
                chain,
            });
            counter += 1;
            mtk_id += 1;
        }
    }
    out
}

fn pcap_bytes(cases: &[Case]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = mbms_testkit::UdpPcapWriter::new(&mut buf);
    // Fixed timestamps keep the pcap byte-for-byte reproducible.
    for (secs, c) in (1_700_000_000..).zip(cases) {
        let ts = Duration::from_secs(secs);
        w.write(ts, (SRC, MIKEY_PORT), (DST, MIKEY_PORT), &c.bytes);
    }
    buf
}

/// A file in the temp dir, removed on drop unless the test is failing (kept to inspect).
struct TempFile(PathBuf);

impl TempFile {
    fn new(stem: &str, ext: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{stem}-{}-{nanos}.{ext}", std::process::id());
        Self(std::env::temp_dir().join(name))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PDML (tshark -T pdml): one element per line, nesting by open/close tags.

#[derive(Debug, Default, Clone)]
struct Node {
    name: String,
    showname: String,
    show: String,
    value: String,
    pos: usize,
    size: usize,
    children: Vec<Node>,
}

impl Node {
    /// The first direct child with this field name.
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every node below (and including) this one, depth first.
    fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        for c in &self.children {
            c.walk(out);
        }
    }
}

fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// The value of attribute `key` in one PDML element line.
fn attr(line: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=\"");
    let start = line.find(&pat)? + pat.len();
    let len = line[start..].find('"')?;
    Some(unescape_xml(&line[start..start + len]))
}

fn element(line: &str) -> Node {
    let num = |k: &str| attr(line, k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Node {
        name: attr(line, "name").unwrap_or_default(),
        showname: attr(line, "showname").unwrap_or_default(),
        show: attr(line, "show").unwrap_or_default(),
        value: attr(line, "value").unwrap_or_default(),
        pos: num("pos"),
        size: num("size"),
        children: Vec::new(),
    }
}

/// Parses tshark's PDML into one node per packet, whose children are the protocols.
fn parse_pdml(xml: &str) -> Vec<Node> {
    let mut packets = Vec::new();
    let mut stack: Vec<Node> = Vec::new();
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<packet") {
            stack.push(Node {
                name: "packet".into(),
                ..Node::default()
            });
        } else if line.starts_with("</packet>") {
            let p = stack.pop().expect("PDML: </packet> without <packet>");
            assert!(stack.is_empty(), "PDML: unclosed elements in a packet");
            packets.push(p);
        } else if line.starts_with("<proto ") || line.starts_with("<field ") {
            let node = element(line);
            if line.ends_with("/>") {
                let top = stack.last_mut().expect("PDML: element outside a packet");
                top.children.push(node);
            } else {
                stack.push(node);
            }
        } else if line.starts_with("</proto>") || line.starts_with("</field>") {
            let node = stack.pop().expect("PDML: unbalanced close tag");
            let top = stack.last_mut().expect("PDML: close tag outside a packet");
            top.children.push(node);
        }
    }
    assert!(stack.is_empty(), "PDML: unterminated packet");
    packets
}

#[test]
fn pdml_parser_reads_nesting_and_attributes() {
    let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<pdml version="0" creator="wireshark/4.0.17">
<packet>
  <proto name="mikey" showname="Multimedia Internet KEYing: PSK ver msg" size="80" pos="42">
    <field name="mikey.hdr" showname="Common Header (HDR) Type: PSK ver msg" size="10" pos="42" show="" value="">
      <field name="mikey.type" showname="Data Type: PSK ver msg (1)" size="1" pos="43" show="1" value="01"/>
    </field>
    <field name="mikey.id" showname="ID NAI: a&amp;b" size="5" pos="52" show="" value="">
      <field name="mikey.id.data" showname="ID: a&amp;b&quot;" size="3" pos="56" show="a&amp;b&quot;" value="612662"/>
    </field>
  </proto>
</packet>
</pdml>
"#;
    let packets = parse_pdml(xml);
    assert_eq!(packets.len(), 1);
    let mikey = packets[0].child("mikey").unwrap();
    assert_eq!((mikey.pos, mikey.size), (42, 80));
    let names: Vec<_> = mikey.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mikey.hdr", "mikey.id"]);
    let hdr = &mikey.children[0];
    assert_eq!(hdr.child("mikey.type").unwrap().show, "1");
    let id = mikey.children[1].child("mikey.id.data").unwrap();
    assert_eq!((id.show.as_str(), id.value.as_str()), ("a&b\"", "612662"));
}

// ---------------------------------------------------------------------------------------------
// Checks of one dissected packet.

/// Collects mismatches of one packet, prefixed with the case name.
struct Checker<'c> {
    case: &'c Case,
    problems: Vec<String>,
}

impl Checker<'_> {
    fn fail(&mut self, msg: String) {
        self.problems.push(format!("{}: {msg}", self.case.what));
    }

    /// A direct child field of `parent`, or a recorded problem.
    fn field<'n>(&mut self, parent: &'n Node, name: &str) -> Option<&'n Node> {
        let f = parent.child(name);
        if f.is_none() {
            self.fail(format!("{}: Wireshark shows no field {name}", parent.name));
        }
        f
    }

    /// Field `name` of `parent` has `show` equal to `want`.
    fn show(&mut self, parent: &Node, name: &str, want: &str) {
        if let Some(f) = self.field(parent, name)
            && f.show != want
        {
            let (got, label) = (f.show.clone(), f.showname.clone());
            self.fail(format!("{name} = {got:?} ({label}), expected {want:?}"));
        }
    }

    /// Field `name` of `parent` has the raw bytes `want`.
    fn bytes(&mut self, parent: &Node, name: &str, want: &[u8]) {
        if let Some(f) = self.field(parent, name)
            && !f.value.eq_ignore_ascii_case(&hex::encode(want))
        {
            let got = f.value.clone();
            let want = hex::encode(want);
            self.fail(format!("{name} bytes = {got}, expected {want}"));
        }
    }

    /// Field `name` of `parent` shows `label` in its display text.
    fn label(&mut self, parent: &Node, name: &str, label: &str) {
        if let Some(f) = self.field(parent, name)
            && !f.showname.contains(label)
        {
            let got = f.showname.clone();
            self.fail(format!(
                "{name} is displayed as {got:?}, expected {label:?} in it"
            ));
        }
    }

    fn packet(&mut self, packet: &Node) {
        let case = self.case;
        // (1) Nothing malformed, no expert info of error severity (anywhere in the packet).
        let mut all = Vec::new();
        packet.walk(&mut all);
        if let Some(m) = all.iter().find(|n| n.name == "_ws.malformed") {
            self.fail(format!("tshark flags the packet malformed: {}", m.showname));
        }
        for n in &all {
            if n.name == "_ws.expert" {
                let severity = n
                    .child("_ws.expert.severity")
                    .and_then(|s| s.show.parse::<u32>().ok())
                    .unwrap_or(0);
                if severity >= PI_ERROR {
                    self.fail(format!(
                        "tshark expert info of error severity: {}",
                        n.showname
                    ));
                } else {
                    eprintln!("note: {}: tshark expert info: {}", case.what, n.showname);
                }
            }
        }
        let protocols = packet
            .child("frame")
            .and_then(|f| f.child("frame.protocols"))
            .map(|p| p.show.clone())
            .unwrap_or_default();
        if protocols != "eth:ethertype:ip:udp:mikey" {
            self.fail(format!(
                "frame.protocols = {protocols:?}, expected MIKEY as the last layer"
            ));
        }
        let Some(mikey) = packet.child("mikey") else {
            self.fail("Wireshark did not dissect the datagram as MIKEY".into());
            return;
        };
        if mikey.size != case.bytes.len() {
            let size = mikey.size;
            self.fail(format!(
                "MIKEY spans {size} bytes, the message has {}",
                case.bytes.len()
            ));
        }

        // (2) The payload chain, by field name and display name, tiling the message.
        let got: Vec<&Node> = mikey
            .children
            .iter()
            .filter(|c| c.name.starts_with("mikey."))
            .collect();
        let got_names: Vec<String> = got.iter().map(|n| n.showname.clone()).collect();
        let want_names: Vec<&str> = case.chain.iter().map(Pl::display).collect();
        let same = got.len() == case.chain.len()
            && got
                .iter()
                .zip(&case.chain)
                .all(|(n, p)| n.name == p.field() && n.showname.starts_with(p.display()));
        if !same {
            self.fail(format!(
                "payload chain is {got_names:?}, expected {want_names:?}"
            ));
            return;
        }
        let mut at = mikey.pos;
        for n in &got {
            if n.pos != at {
                let (name, pos) = (n.name.clone(), n.pos);
                self.fail(format!(
                    "{name} starts at frame offset {pos}, expected {at}"
                ));
            }
            at = n.pos + n.size;
        }
        if at != mikey.pos + case.bytes.len() {
            self.fail(format!(
                "the payloads end at frame offset {at}, not at the message end"
            ));
        }

        // (3) Field values.
        let msg = MikeyMessage::decode(&case.bytes).expect("our own message decodes");
        let kemac = msg.payloads.iter().find_map(|p| match p {
            Payload::Kemac(k) => Some(k),
            _ => None,
        });
        let tail = &case.bytes[case.bytes.len().saturating_sub(20)..];
        for (node, pl) in got.iter().zip(&case.chain) {
            match pl {
                Pl::Hdr => {
                    self.show(node, "mikey.version", "1");
                    self.show(node, "mikey.type", &case.data_type.to_string());
                    self.label(
                        node,
                        "mikey.type",
                        if case.data_type == 0 {
                            "Pre-shared"
                        } else {
                            "PSK ver msg"
                        },
                    );
                    self.show(node, "mikey.v.set", if case.v_flag { "1" } else { "0" });
                    self.show(node, "mikey.prf_func", "0");
                    self.bytes(node, "mikey.csb_id", &CSB_ID.to_be_bytes());
                    self.show(node, "mikey.cs_count", "0");
                    self.show(node, "mikey.cs_id_map_type", &case.map_type.to_string());
                    if case.map_type == 0 {
                        self.label(node, "mikey.cs_id_map_type", "SRTP-ID");
                    }
                }
                Pl::KeyIdExt(data) => {
                    self.show(node, "mikey.ext.type", "3");
                    self.show(node, "mikey.ext.len", &data.len().to_string());
                    // Wireshark 4.0 does not know type 3 and shows the data raw; a later
                    // version may decode the Key IDs instead.
                    if node.child("mikey.ext.data").is_some() {
                        self.bytes(node, "mikey.ext.data", data);
                    }
                }
                Pl::T => {
                    self.show(node, "mikey.t.ts_type", "2");
                    self.label(node, "mikey.t.ts_type", "COUNTER");
                    // Wireshark does not decode the COUNTER value, but the T payload it
                    // frames must be next-payload, type, then our 4-byte counter.
                    let start = node.pos.saturating_sub(mikey.pos);
                    let framed = case.bytes.get(start..start + node.size).unwrap_or_default();
                    let counter = case.counter.to_be_bytes();
                    if node.size != 6 || framed.get(2..) != Some(&counter[..]) {
                        let framed = hex::encode(framed);
                        let want = hex::encode(counter);
                        self.fail(format!("T framed as {framed}, expected ..02{want}"));
                    }
                    for c in node.children.iter().filter(|c| c.name.contains("counter")) {
                        if !c.value.eq_ignore_ascii_case(&hex::encode(counter)) {
                            let (name, value) = (c.name.clone(), c.value.clone());
                            self.fail(format!("{name} = {value}, expected {}", case.counter));
                        }
                    }
                }
                Pl::Rand => {
                    self.show(node, "mikey.rand.len", "16");
                    self.bytes(node, "mikey.rand.data", &rand());
                }
                Pl::Id(id_type, value) => {
                    self.show(node, "mikey.id.type", &id_type.to_string());
                    self.label(
                        node,
                        "mikey.id.type",
                        if *id_type == 0 { "NAI" } else { "URI" },
                    );
                    self.show(node, "mikey.id.len", &value.len().to_string());
                    self.show(node, "mikey.id.data", value);
                }
                Pl::Sp => {
                    self.show(node, "mikey.sp.no", "1");
                    self.show(node, "mikey.sp.proto_type", "0");
                    self.label(node, "mikey.sp.proto_type", "SRTP");
                    self.show(node, "mikey.sp.encr_alg", "1");
                    self.label(node, "mikey.sp.encr_alg", "AES-CM");
                    self.show(node, "mikey.sp.encr_len", "16");
                    self.show(node, "mikey.sp.auth_alg", "1");
                    self.label(node, "mikey.sp.auth_alg", "HMAC-SHA-1");
                    self.show(node, "mikey.sp.auth_key_len", "20");
                    self.show(node, "mikey.sp.salt_len", "14");
                    self.show(node, "mikey.sp.prf", "0");
                    self.show(node, "mikey.sp.kd_rate", "0");
                    self.show(node, "mikey.sp.srtp_encr", "1");
                    self.show(node, "mikey.sp.srtcp_encr", "1");
                    self.show(node, "mikey.sp.srtp_auth", "1");
                    self.show(node, "mikey.sp.auth_tag_len", "10");
                    self.show(node, "mikey.sp.srtp_prefix", "0");
                }
                Pl::Kemac(key_data_len) => {
                    self.show(node, "mikey.kemac.encr_alg", "1");
                    self.label(node, "mikey.kemac.encr_alg", "AES-CM-128");
                    self.show(node, "mikey.kemac.key_data_len", &key_data_len.to_string());
                    if let Some(k) = kemac {
                        self.bytes(node, "mikey.kemac.key_data", &k.encr_data);
                    }
                    self.show(node, "mikey.kemac.mac_alg", "1");
                    self.label(node, "mikey.kemac.mac_alg", "HMAC-SHA-1-160");
                    self.bytes(node, "mikey.kemac.mac", tail);
                }
                Pl::V => {
                    self.show(node, "mikey.v.auth_alg", "1");
                    self.label(node, "mikey.v.auth_alg", "HMAC-SHA-1-160");
                    self.bytes(node, "mikey.v.ver_data", tail);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// tshark's version line, or `None` when it is not installed.
fn tshark_version() -> Option<String> {
    match Command::new("tshark").arg("--version").output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run tshark: {e}"),
    }
}

fn write_fixture(pcap: &[u8]) {
    let dir = mbms_testkit::testdata_dir().join("pcap");
    std::fs::create_dir_all(&dir).expect("create testdata/pcap");
    let path = dir.join("mikey-messages.pcap");
    std::fs::write(&path, pcap).expect("write the pcap fixture");
    eprintln!("wrote {} ({} bytes)", path.display(), pcap.len());
}

fn dissect(pcap: &Path) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-n",
            "-d",
            &format!("udp.port=={MIKEY_PORT},mikey"),
            "-T",
            "pdml",
        ])
        .output()
        .expect("run tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tshark failed ({}) on {}:\n{stderr}",
        out.status,
        pcap.display()
    );
    String::from_utf8(out.stdout).expect("tshark PDML is UTF-8")
}

#[test]
fn wireshark_dissects_mbms_messages_as_sealed() {
    let cases = cases();
    let pcap = pcap_bytes(&cases);
    if std::env::var("MBMS_WRITE_FIXTURES").as_deref() == Ok("1") {
        write_fixture(&pcap);
    }

    let Some(version) = tshark_version() else {
        if std::env::var("MBMS_SKIP_TSHARK").as_deref() == Ok("1") {
            eprintln!("SKIPPED: tshark is not installed (MBMS_SKIP_TSHARK=1)");
            return;
        }
        panic!(
            "tshark is not installed; this interop test needs it: `apt-get install -y tshark` \
             (or set MBMS_SKIP_TSHARK=1 to skip it)"
        );
    };
    eprintln!("dissecting with {version}");

    let file = TempFile::new("mbms-tshark-interop", "pcap");
    std::fs::write(&file.0, &pcap).expect("write the temp pcap");
    let packets = parse_pdml(&dissect(&file.0));
    assert_eq!(
        packets.len(),
        cases.len(),
        "tshark read {} packets from {}, we wrote {}",
        packets.len(),
        file.0.display(),
        cases.len()
    );

    let mut problems = Vec::new();
    for (case, packet) in cases.iter().zip(&packets) {
        let mut c = Checker {
            case,
            problems: Vec::new(),
        };
        c.packet(packet);
        if !c.problems.is_empty() {
            problems.append(&mut c.problems);
            problems.push(format!(
                "{}: message bytes {}",
                case.what,
                hex::encode(&case.bytes)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{version} disagrees with mbms-core on {} (kept for inspection):\n{}",
        file.0.display(),
        problems.join("\n")
    );
    eprintln!("{} messages dissected cleanly", cases.len());
}
