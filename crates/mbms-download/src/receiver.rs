//! The receiving half (the UE): ALC packets in, files out.
//!
//! Objects are reassembled by the [`flute`] crate's receiver, which checks each object's
//! `Content-MD5` from the FDT when the FDT gives one. An `application/mikey` object is opened
//! with the MSK it names; a DCF object is opened with the MTK its header names once that MTK
//! is known: an object that arrives before its key waits (and counts as waiting) until the key
//! object comes, then opens.
//!
//! MTK messages of a download session may arrive in any order (the carousel repeats them, and
//! loss reorders what completes first), so one whose counter is not above the last accepted
//! for its MSK is still opened, authenticated, to learn an MTK not known yet: it keys only the
//! objects whose headers name that MTK ID, and moves no replay state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::SystemTime;

use flute::core::UDPEndpoint;
use flute::receiver::writer::{
    ObjectMetadata, ObjectWriter, ObjectWriterBuilder, ObjectWriterBuilderResult,
};
use flute::receiver::{Config, MultiReceiver};
use mbms_core::dcf::{self, DCF_MEDIA_TYPE, DcfKeyRef};
use mbms_core::mbms::{MessageIds, MskKey, MtkOpener, ReplayCounter};
use mbms_core::{KeyDomainId, MbmsError, MskId, Mtk, MtkId};

use crate::{DownloadError, MIKEY_MEDIA_TYPE};

/// The largest object the receiver reassembles (larger ones are refused by its writer).
pub const MAX_OBJECT_LEN: usize = 1 << 30;

/// MTK messages of unknown MSKs kept until their MSK is added (the oldest are dropped).
pub const MAX_WAITING_MTK_MESSAGES: usize = 1024;

/// The largest `application/mikey` object accepted (an MTK message is about 100 bytes).
pub const MAX_MIKEY_OBJECT_LEN: usize = 64 << 10;

/// DCF objects kept waiting for their MTK, at most this many bytes in all (the oldest are
/// dropped first, and counted).
pub const MAX_WAITING_BYTES: usize = 1 << 30;

/// An object that receives nothing for this long is dropped (several carousel periods).
pub const OBJECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Locations remembered to recognise carousel repeats; the set starts again beyond this.
const MAX_SEEN: usize = 100_000;

/// A file that came out of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    /// Content-Location of the DCF object.
    pub location: String,
    /// The last path segment of the location, percent-decoded: the file's name (not checked:
    /// see [`file_name_of`]).
    pub name: String,
    /// Media type of the plaintext (the DCF's ContentType).
    pub content_type: String,
    /// The file's bytes.
    pub data: Vec<u8>,
    /// The key it was protected with.
    pub key: DcfKeyRef,
}

/// Counters of a receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Objects the FLUTE layer completed (MD5 checked where the FDT gave one).
    pub objects: u64,
    /// Objects that failed in the FLUTE layer (MD5 mismatch, size, timeout).
    pub object_errors: u64,
    /// MTKs learnt from MTK message objects.
    pub mtks: u64,
    /// MTK message objects that did not open (unknown MSK, bad MAC, …).
    pub bad_mtk_messages: u64,
    /// Files opened.
    pub files: u64,
    /// DCF objects that did not open (bad container, wrong key).
    pub bad_files: u64,
    /// DCF objects that arrived before their MTK (each counted once).
    pub waited_for_key: u64,
    /// DCF objects waiting for their MTK now.
    pub waiting: u64,
    /// MTK messages waiting for their MSK now.
    pub waiting_mtk_messages: u64,
    /// Objects of another media type, ignored.
    pub other_objects: u64,
    /// Objects completed again (a later carousel round) with the same location and bytes:
    /// ignored.
    pub duplicates: u64,
    /// DCF objects dropped while waiting for their MTK (over [`MAX_WAITING_BYTES`]).
    pub dropped_waiting: u64,
}

/// A completed object from the FLUTE layer.
#[derive(Debug)]
struct Completed {
    location: String,
    content_type: String,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inbox {
    done: Vec<Completed>,
    errors: u64,
}

/// The FLUTE writer: collects each object in memory and hands it over when complete.
struct Collect {
    inbox: Rc<RefCell<Inbox>>,
}

struct Buffer {
    inbox: Rc<RefCell<Inbox>>,
    location: String,
    content_type: String,
    data: RefCell<Vec<u8>>,
    limit: usize,
}

/// The file name a Content-Location gives: its last path segment, percent-decoded (the caller
/// still checks that it is safe to use as a file name).
pub fn file_name_of(location: &str) -> String {
    let segment = match url::Url::parse(location) {
        Ok(u) => u
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("")
            .to_owned(),
        Err(_) => location.rsplit('/').next().unwrap_or("").to_owned(),
    };
    percent_encoding::percent_decode_str(&segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The media type of a Content-Type value, lower case, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl ObjectWriterBuilder for Collect {
    fn new_object_writer(
        &self,
        _endpoint: &UDPEndpoint,
        _tsi: &u64,
        _toi: &u128,
        meta: &ObjectMetadata,
        _now: SystemTime,
    ) -> ObjectWriterBuilderResult {
        let len = meta.transfer_length.or(meta.content_length).unwrap_or(0);
        let content_type = meta.content_type.clone().unwrap_or_default();
        let limit = if media_type(&content_type) == MIKEY_MEDIA_TYPE {
            MAX_MIKEY_OBJECT_LEN
        } else {
            MAX_OBJECT_LEN
        };
        if len > limit {
            self.inbox.borrow_mut().errors += 1;
            return ObjectWriterBuilderResult::Abort;
        }
        ObjectWriterBuilderResult::StoreObject(Box::new(Buffer {
            inbox: self.inbox.clone(),
            location: meta.content_location.clone(),
            content_type,
            // The length is the sender's claim: reserve little, grow as data comes.
            data: RefCell::new(Vec::with_capacity(len.min(1 << 20))),
            limit,
        }))
    }

    fn update_cache_control(
        &self,
        _endpoint: &UDPEndpoint,
        _tsi: &u64,
        _toi: &u128,
        _meta: &ObjectMetadata,
        _now: SystemTime,
    ) {
    }

    fn fdt_received(
        &self,
        _endpoint: &UDPEndpoint,
        _tsi: &u64,
        _fdt_xml: &str,
        _expires: SystemTime,
        _meta: &ObjectMetadata,
        _transfer_duration: std::time::Duration,
        _now: SystemTime,
        _ext_time: Option<SystemTime>,
    ) {
    }
}

impl ObjectWriter for Buffer {
    fn open(&self, _now: SystemTime) -> flute::error::Result<()> {
        Ok(())
    }

    fn write(&self, _sbn: u32, data: &[u8], _now: SystemTime) -> flute::error::Result<()> {
        let mut d = self.data.borrow_mut();
        if d.len() + data.len() > self.limit {
            return Err(flute::error::FluteError::new("object too large"));
        }
        d.extend_from_slice(data);
        Ok(())
    }

    fn complete(&self, _now: SystemTime) {
        let data = std::mem::take(&mut *self.data.borrow_mut());
        self.inbox.borrow_mut().done.push(Completed {
            location: self.location.clone(),
            content_type: self.content_type.clone(),
            data,
        });
    }

    fn error(&self, _now: SystemTime) {
        self.data.borrow_mut().clear();
        self.inbox.borrow_mut().errors += 1;
    }

    fn interrupted(&self, _now: SystemTime) {
        self.data.borrow_mut().clear();
    }

    fn enable_md5_check(&self) -> bool {
        true
    }
}

type MtkKey = (KeyDomainId, MskId, MtkId);

/// A download session receiver.
pub struct DownloadReceiver {
    flute: MultiReceiver,
    inbox: Rc<RefCell<Inbox>>,
    openers: HashMap<(KeyDomainId, MskId), MtkOpener>,
    mtks: HashMap<MtkKey, Mtk>,
    /// DCF objects waiting for their MTK, and their bytes.
    waiting: std::collections::VecDeque<Completed>,
    waiting_bytes: usize,
    /// MTK messages of MSKs not known yet (at most [`MAX_WAITING_MTK_MESSAGES`]).
    waiting_mtk: Vec<Vec<u8>>,
    files: Vec<ReceivedFile>,
    /// (Content-Location, hash of the bytes) of every object handled.
    seen: std::collections::HashSet<(String, u64)>,
    stats: DownloadStats,
}

impl core::fmt::Debug for DownloadReceiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DownloadReceiver")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for DownloadReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl DownloadReceiver {
    /// A receiver with no MSK yet.
    pub fn new() -> Self {
        let inbox = Rc::new(RefCell::new(Inbox::default()));
        let writer = Rc::new(Collect {
            inbox: inbox.clone(),
        });
        let config = Config {
            // Objects are kept across carousel rounds until complete, or until nothing came
            // for them for OBJECT_TIMEOUT.
            object_timeout: Some(OBJECT_TIMEOUT),
            // Incomplete blocks of one object kept (the crate's default, 10 MiB, makes an
            // object larger than that fail under loss: nearly every block is incomplete after
            // the first round, and the object is dropped instead of completed by the next).
            object_max_cache_size: Some(MAX_OBJECT_LEN),
            ..Config::default()
        };
        Self {
            flute: MultiReceiver::new(writer, Some(config), false),
            inbox,
            openers: HashMap::new(),
            mtks: HashMap::new(),
            waiting: std::collections::VecDeque::new(),
            waiting_bytes: 0,
            waiting_mtk: Vec::new(),
            files: Vec::new(),
            seen: std::collections::HashSet::new(),
            stats: DownloadStats::default(),
        }
    }

    /// Adds an MSK (from an MSK message or a key file): its MTK messages open from now on.
    pub fn add_msk(&mut self, key: MskKey) {
        let id = (key.key_domain_id, key.msk_id);
        self.openers
            .entry(id)
            .or_insert_with(|| MtkOpener::new(key, ReplayCounter::default()));
        let mut new_key = false;
        for msg in std::mem::take(&mut self.waiting_mtk) {
            new_key |= self.on_mtk_message(msg);
        }
        if new_key {
            self.retry_waiting();
        }
        self.drain();
    }

    fn retry_waiting(&mut self) {
        self.waiting_bytes = 0;
        for obj in std::mem::take(&mut self.waiting) {
            self.on_dcf(obj, false);
        }
    }

    /// Takes one ALC packet received from `endpoint`. A packet the FLUTE layer cannot parse is
    /// an error for that packet only.
    pub fn push(
        &mut self,
        endpoint: &UDPEndpoint,
        pkt: &[u8],
        now: SystemTime,
    ) -> Result<(), DownloadError> {
        let r = self.flute.push(endpoint, pkt, now);
        self.drain();
        r.map_err(DownloadError::from)
    }

    /// Drops state of sessions and objects that expired.
    pub fn cleanup(&mut self, now: SystemTime) {
        self.flute.cleanup(now);
    }

    /// The files opened since the last call.
    pub fn take_files(&mut self) -> Vec<ReceivedFile> {
        std::mem::take(&mut self.files)
    }

    /// The counters.
    pub fn stats(&self) -> DownloadStats {
        DownloadStats {
            waiting: self.waiting.len() as u64,
            waiting_mtk_messages: self.waiting_mtk.len() as u64,
            ..self.stats
        }
    }

    /// Handles the objects the FLUTE layer completed.
    fn drain(&mut self) {
        let (done, errors) = {
            let mut inbox = self.inbox.borrow_mut();
            (
                std::mem::take(&mut inbox.done),
                std::mem::take(&mut inbox.errors),
            )
        };
        self.stats.object_errors += errors;
        let mut new_key = false;
        for obj in done {
            self.stats.objects += 1;
            if self.seen.len() >= MAX_SEEN {
                self.seen.clear();
            }
            let digest = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                obj.data.hash(&mut h);
                h.finish()
            };
            if !self.seen.insert((obj.location.clone(), digest)) {
                self.stats.duplicates += 1;
                continue;
            }
            let ct = media_type(&obj.content_type);
            if ct == MIKEY_MEDIA_TYPE {
                new_key |= self.on_mtk_message(obj.data);
            } else if ct == DCF_MEDIA_TYPE {
                self.on_dcf(obj, true);
            } else {
                self.stats.other_objects += 1;
            }
        }
        if new_key {
            self.retry_waiting();
        }
    }

    /// Opens an MTK message (or keeps it until its MSK is added); returns whether it taught a
    /// new MTK.
    fn on_mtk_message(&mut self, message: Vec<u8>) -> bool {
        let bytes = &message[..];
        let Ok(ids) = MessageIds::peek(bytes) else {
            self.stats.bad_mtk_messages += 1;
            return false;
        };
        let (Some(kd), Some(msk_id)) = (ids.key_domain_id, ids.msk_id) else {
            self.stats.bad_mtk_messages += 1;
            return false;
        };
        let Some(opener) = self.openers.get_mut(&(kd, msk_id)) else {
            if self.waiting_mtk.len() >= MAX_WAITING_MTK_MESSAGES {
                self.waiting_mtk.remove(0);
            }
            self.waiting_mtk.push(message);
            return false;
        };
        let opened = match opener.open(bytes) {
            Ok(o) => o,
            Err(MbmsError::Replayed { .. }) => {
                // Out of order: authenticated, without moving the replay state.
                let mut fresh = MtkOpener::new(opener.key().clone(), ReplayCounter::default());
                match fresh.open(bytes) {
                    Ok(o) => o,
                    Err(_) => {
                        self.stats.bad_mtk_messages += 1;
                        return false;
                    }
                }
            }
            Err(_) => {
                self.stats.bad_mtk_messages += 1;
                return false;
            }
        };
        let key = (kd, msk_id, opened.mtk_id);
        if self.mtks.contains_key(&key) {
            return false;
        }
        self.mtks.insert(key, opened.mtk);
        self.stats.mtks += 1;
        true
    }

    fn on_dcf(&mut self, obj: Completed, first_time: bool) {
        let parsed = dcf::DcfHeader::parse(&obj.data).and_then(|(h, at)| {
            let r = h.key_ref()?;
            Ok((h, at, r))
        });
        let Ok((header, data_at, key_ref)) = parsed else {
            self.stats.bad_files += 1;
            return;
        };
        let id = (key_ref.key_domain_id, key_ref.msk_id, key_ref.mtk_id);
        if !self.mtks.contains_key(&id)
            && let Some(msg) = key_ref.mtk_message.clone()
        {
            // The object carries its MTK message (MBMS-MTK-Message): learn the key from it.
            if self.on_mtk_message(msg) {
                self.retry_waiting();
            }
        }
        let Some(mtk) = self.mtks.get(&id) else {
            if first_time {
                self.stats.waited_for_key += 1;
            }
            self.waiting_bytes += obj.data.len();
            self.waiting.push_back(obj);
            while self.waiting_bytes > MAX_WAITING_BYTES {
                let Some(dropped) = self.waiting.pop_front() else {
                    break;
                };
                self.waiting_bytes -= dropped.data.len();
                self.stats.dropped_waiting += 1;
            }
            return;
        };
        match dcf::open_parsed(&header, &obj.data[data_at..], mtk) {
            Ok(data) => {
                let name = file_name_of(&obj.location);
                self.stats.files += 1;
                self.files.push(ReceivedFile {
                    location: obj.location,
                    name,
                    content_type: header.content_type,
                    data,
                    key: key_ref,
                });
            }
            Err(_) => self.stats.bad_files += 1,
        }
    }
}
