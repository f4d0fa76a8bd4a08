//! The sending half: DCF objects and MTK message objects added to a FLUTE session whose
//! packets the caller reads and sends.
//!
//! Every object carries its MD5 in the FDT (`Content-MD5`); with a carousel interval each
//! object, and the FDT, is sent again at that interval for receivers that joined late or lost
//! packets.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use flute::core::{Oti, UDPEndpoint};
use flute::sender::{
    CarouselRepeatMode, FDTPublishMode, ObjectDesc, PriorityQueue, Sender, TransferConfig,
};
use mbms_core::dcf::{DCF_MEDIA_TYPE, DcfHeader, DcfSealer};
use mbms_core::{KeyDomainId, MskId, Mtk, MtkId};

use crate::{DownloadError, MIKEY_MEDIA_TYPE, key_object_path};

/// A download session's settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Transport Session Identifier (at most 48 bits).
    pub tsi: u64,
    /// Destination group address (for the FLUTE endpoint; the caller's socket sends there).
    pub group: String,
    /// Destination port.
    pub port: u16,
    /// Base of the objects' Content-Locations, ending in `/`
    /// (e.g. `http://bmsc.example.org/tv1/`).
    pub base_url: url::Url,
    /// Encoding symbol length: payload bytes per packet (no-code FEC).
    pub symbol_len: u16,
    /// Each object (and the FDT) starts again this long after its previous start; `None`: sent
    /// once.
    pub carousel: Option<Duration>,
}

impl SessionConfig {
    /// A session on `group:port` with base URL `base_url`, 1400-byte symbols, no carousel.
    pub fn new(tsi: u64, group: &str, port: u16, base_url: url::Url) -> Self {
        Self {
            tsi,
            group: group.to_owned(),
            port,
            base_url,
            symbol_len: 1400,
            carousel: None,
        }
    }
}

/// A FLUTE session carrying protected files and their MTK messages.
pub struct DownloadSender {
    flute: Sender,
    base: url::Url,
    carousel: Option<Duration>,
    locations: std::collections::HashSet<String>,
    /// Content-Location of a DCF object → the Content-Location of its key object, written
    /// into the FDT as `mbms2009:Decryption-KEY-URI`.
    key_uris: std::collections::HashMap<String, String>,
    symbol_len: u16,
    /// FDT instances the key link could not be added to (too large for one packet).
    pub fdt_unlinked: u64,
}

impl core::fmt::Debug for DownloadSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DownloadSender")
            .field("base", &self.base.as_str())
            .field("carousel", &self.carousel)
            .finish_non_exhaustive()
    }
}

/// The largest symbol length: an ALC packet must fit a 1500-byte MTU with IP, UDP and LCT
/// headers.
pub const MAX_SYMBOL_LEN: u16 = 1428;

impl DownloadSender {
    /// Starts a session.
    pub fn new(cfg: &SessionConfig) -> Result<Self, DownloadError> {
        if cfg.tsi >= 1 << 48 {
            return Err(DownloadError::Flute(format!(
                "TSI {} does not fit in 48 bits",
                cfg.tsi
            )));
        }
        if !(16..=MAX_SYMBOL_LEN).contains(&cfg.symbol_len) {
            return Err(DownloadError::Flute(format!(
                "symbol length {} outside 16..={MAX_SYMBOL_LEN}",
                cfg.symbol_len
            )));
        }
        if !cfg.base_url.as_str().ends_with('/') || cfg.base_url.cannot_be_a_base() {
            return Err(DownloadError::BadLocation(cfg.base_url.to_string()));
        }
        let oti = Oti::new_no_code(cfg.symbol_len, 64);
        let mut config = flute::sender::Config::default();
        if let Some(every) = cfg.carousel {
            config.fdt_carousel_mode = CarouselRepeatMode::IntervalBetweenStartTimes(every);
        }
        // An FDT instance before each object's transfer, listing the objects in transfer
        // (one at a time): every instance fits one packet, so that a receiver (or a dissector
        // without FDT reassembly, such as Wireshark's) reads each FDT packet on its own.
        config.fdt_publish_mode = FDTPublishMode::ObjectsBeingTransferred;
        config.priority_queues = std::collections::BTreeMap::from([(
            PriorityQueue::HIGHEST,
            PriorityQueue { multiplex_files: 1 },
        )]);
        let endpoint = UDPEndpoint::new(None, cfg.group.clone(), cfg.port);
        Ok(Self {
            flute: Sender::new(endpoint, cfg.tsi, &oti, &config),
            base: cfg.base_url.clone(),
            carousel: cfg.carousel,
            locations: std::collections::HashSet::new(),
            key_uris: std::collections::HashMap::new(),
            symbol_len: cfg.symbol_len,
            fdt_unlinked: 0,
        })
    }

    fn transfer(&self) -> TransferConfig {
        let mut t = TransferConfig::default();
        if let Some(every) = self.carousel {
            // One transfer, then (carousel) another every `every`, for as long as the object
            // stays in the session: the flute crate repeats back to back while the transfer
            // count is below `max_transfer_count`, and at the interval after that.
            t.max_transfer_count = 1;
            t.carousel_mode = Some(CarouselRepeatMode::IntervalBetweenStartTimes(every));
        }
        t
    }

    /// The Content-Location of `path` under the base URL: it must stay under the base (no
    /// scheme, no `..` out of it, no query or fragment).
    pub fn location(&self, path: &str) -> Result<url::Url, DownloadError> {
        let bad = || DownloadError::BadLocation(path.to_owned());
        if path.is_empty() || path.contains([':', '?', '#', '\\']) {
            return Err(bad());
        }
        let url = self.base.join(path).map_err(|_| bad())?;
        if !url.as_str().starts_with(self.base.as_str()) || url.as_str() == self.base.as_str() {
            return Err(bad());
        }
        Ok(url)
    }

    /// Takes `loc` for a new object: refused if another object of the session has it.
    fn claim(&mut self, loc: &url::Url) -> Result<(), DownloadError> {
        if self.locations.insert(loc.to_string()) {
            Ok(())
        } else {
            Err(DownloadError::BadLocation(format!(
                "{loc} is already an object of the session"
            )))
        }
    }

    /// The Content-Location of the MTK message object of (`kd`, `msk_id`, `mtk_id`): what a
    /// DCF's `MBMS-MTK-URI` names.
    pub fn key_location(&self, kd: KeyDomainId, msk_id: MskId, mtk_id: MtkId) -> url::Url {
        // The path is hex and fixed text: joining it to a valid base cannot fail.
        self.location(&key_object_path(kd, msk_id, mtk_id))
            .unwrap_or_else(|_| self.base.clone())
    }

    /// Adds the MTK message `message` of (`kd`, `msk_id`, `mtk_id`) as an `application/mikey`
    /// object; returns its TOI.
    pub fn add_mtk_message(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
        mtk_id: MtkId,
        message: Vec<u8>,
    ) -> Result<u128, DownloadError> {
        let loc = self.key_location(kd, msk_id, mtk_id);
        self.claim(&loc)?;
        let obj =
            ObjectDesc::create_from_buffer(message, MIKEY_MEDIA_TYPE, &loc, true, self.transfer())?;
        Ok(self.flute.add_object(0, obj)?)
    }

    /// Adds a DCF object held in memory under `name` (a path relative to the base URL), keyed
    /// by the MTK message object at `key_uri` (written into its FDT entry); returns its TOI.
    pub fn add_dcf(
        &mut self,
        name: &str,
        object: Vec<u8>,
        key_uri: Option<&url::Url>,
    ) -> Result<u128, DownloadError> {
        let loc = self.location(name)?;
        self.claim(&loc)?;
        self.link(&loc, key_uri);
        let obj =
            ObjectDesc::create_from_buffer(object, DCF_MEDIA_TYPE, &loc, true, self.transfer())?;
        Ok(self.flute.add_object(0, obj)?)
    }

    /// Adds the DCF object in file `path` under `name`, read from the file as it is sent (the
    /// object is not held in memory), keyed by the MTK message object at `key_uri`; returns
    /// its TOI.
    pub fn add_dcf_file(
        &mut self,
        name: &str,
        path: &Path,
        key_uri: Option<&url::Url>,
    ) -> Result<u128, DownloadError> {
        let loc = self.location(name)?;
        self.claim(&loc)?;
        self.link(&loc, key_uri);
        let obj = ObjectDesc::create_from_file(
            path,
            Some(&loc),
            DCF_MEDIA_TYPE,
            false,
            true,
            self.transfer(),
        )?;
        Ok(self.flute.add_object(0, obj)?)
    }

    /// Adds the file `path` as it is (no protection), of media type `content_type`, under
    /// `name`: for measuring what protection costs, and for public content.
    pub fn add_plain_file(
        &mut self,
        name: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<u128, DownloadError> {
        let loc = self.location(name)?;
        self.claim(&loc)?;
        let obj = ObjectDesc::create_from_file(
            path,
            Some(&loc),
            content_type,
            false,
            true,
            self.transfer(),
        )?;
        Ok(self.flute.add_object(0, obj)?)
    }

    /// Removes an object from the session (and from the next FDT).
    pub fn remove(&mut self, toi: u128) -> bool {
        self.flute.remove_object(toi)
    }

    /// Publishes a new FDT instance listing the objects added so far.
    pub fn publish(&mut self, now: SystemTime) -> Result<(), DownloadError> {
        Ok(self.flute.publish(now)?)
    }

    fn link(&mut self, loc: &url::Url, key_uri: Option<&url::Url>) {
        if let Some(k) = key_uri {
            self.key_uris.insert(loc.to_string(), k.to_string());
        }
    }

    /// The next ALC packet to send, if one is due at `now`. FDT instances get the
    /// `mbms2009:Decryption-KEY-URI` of each DCF object's entry (TS 26.346 §7.2.10.2), which
    /// the `flute` crate does not write itself.
    pub fn read(&mut self, now: SystemTime) -> Option<Vec<u8>> {
        let pkt = self.flute.read(now)?;
        if self.key_uris.is_empty() {
            return Some(pkt);
        }
        match link_fdt(&pkt, &self.key_uris, self.symbol_len) {
            Linked::Done(p) => Some(p),
            Linked::NotFdt => Some(pkt),
            Linked::Unchanged => {
                self.fdt_unlinked += 1;
                Some(pkt)
            }
        }
    }

    /// The FDT instance as it is published now (XML).
    pub fn fdt_xml(&self, now: SystemTime) -> Result<Vec<u8>, DownloadError> {
        Ok(self.flute.fdt_xml_data(now)?)
    }

    /// How many times the object `toi` was sent so far (`None`: not in the session).
    pub fn transfers(&mut self, toi: u128) -> Option<u64> {
        self.flute.nb_transfers(toi)
    }

    /// Objects in the FDT.
    pub fn object_count(&self) -> usize {
        self.flute.nb_objects()
    }
}

/// Chunk size of [`protect_file`].
const CHUNK: usize = 1 << 20;

/// Protects the file `src` into the DCF file `dst`, streaming (one chunk in memory at a time).
/// `header.plaintext_len` must be `src`'s length; returns the DCF object's length.
pub fn protect_file(
    src: &Path,
    dst: &Path,
    header: &DcfHeader,
    mtk: &Mtk,
    iv: [u8; 16],
) -> Result<u64, DownloadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { path, source }
    };
    let mut input = std::fs::File::open(src).map_err(io(src))?;
    let mut output = std::io::BufWriter::new(std::fs::File::create(dst).map_err(io(dst))?);
    let mut out = Vec::with_capacity(CHUNK + 64);
    let mut sealer = DcfSealer::new(header, mtk, iv, &mut out)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io(src))?;
        if n == 0 {
            break;
        }
        sealer.update(&buf[..n], &mut out)?;
        output.write_all(&out).map_err(io(dst))?;
        total += out.len() as u64;
        out.clear();
    }
    sealer.finish(&mut out)?;
    output.write_all(&out).map_err(io(dst))?;
    output.flush().map_err(io(dst))?;
    Ok(total + out.len() as u64)
}

/// What [`link_fdt`] did.
enum Linked {
    /// Not an FDT packet.
    NotFdt,
    /// An FDT instance with the key links added.
    Done(Vec<u8>),
    /// An FDT instance left as it was (several packets, no namespace, too large with links).
    Unchanged,
}

/// Adds `mbms2009:Decryption-KEY-URI="…"` to each `<File>` of a one-packet FDT instance whose
/// Content-Location has a key in `key_uris`, and rewrites the transfer length in EXT_FTI
/// (no-code FEC: HET 64, bytes 2..8 of the extension, RFC 5445).
fn link_fdt(
    pkt: &[u8],
    key_uris: &std::collections::HashMap<String, String>,
    symbol_len: u16,
) -> Linked {
    let Ok(alc) = flute::core::alc::parse_alc_pkt(pkt) else {
        return Linked::NotFdt;
    };
    if alc.lct.toi != 0 || alc.fdt_info.is_none() {
        return Linked::NotFdt;
    }
    let payload = &pkt[alc.data_payload_offset..];
    if alc.transfer_length != Some(payload.len() as u64) {
        return Linked::Unchanged;
    }
    let Ok(xml) = std::str::from_utf8(payload) else {
        return Linked::Unchanged;
    };
    if !xml.contains("xmlns:mbms2009=") {
        return Linked::Unchanged;
    }
    let mut out = String::with_capacity(xml.len() + 256);
    let mut rest = xml;
    let mut changed = false;
    while let Some(at) = rest.find("<File ") {
        let (head, tail) = rest.split_at(at + "<File ".len());
        out.push_str(head);
        let end = tail.find('>').unwrap_or(tail.len());
        let element = &tail[..end];
        let location = element
            .split_once("Content-Location=\"")
            .and_then(|(_, v)| v.split_once('"'))
            .map(|(v, _)| v);
        if let Some(key) = location.and_then(|l| key_uris.get(l))
            && !element.contains("Decryption-KEY-URI")
        {
            out.push_str("mbms2009:Decryption-KEY-URI=\"");
            out.push_str(key);
            out.push_str("\" ");
            changed = true;
        }
        rest = tail;
    }
    out.push_str(rest);
    if !changed {
        return Linked::NotFdt;
    }
    if out.len() > usize::from(symbol_len) {
        return Linked::Unchanged;
    }
    let mut header = pkt[..alc.data_payload_offset].to_vec();
    // EXT_FTI among the header extensions.
    let mut at = alc.lct.header_ext_offset as usize;
    let mut patched = false;
    while at + 4 <= alc.lct.len {
        let het = header[at];
        let hel = if het >= 128 {
            4
        } else {
            usize::from(header[at + 1]) * 4
        };
        if hel == 0 || at + hel > alc.lct.len {
            break;
        }
        if het == 64 && hel >= 8 {
            let len = (out.len() as u64).to_be_bytes();
            header[at + 2..at + 8].copy_from_slice(&len[2..]);
            patched = true;
            break;
        }
        at += hel;
    }
    if !patched {
        return Linked::Unchanged;
    }
    header.extend_from_slice(out.as_bytes());
    Linked::Done(header)
}
