//! # mbms-download
//!
//! MBMS download delivery with TS 33.246 protection: files protected with the MTK as OMA DCF
//! objects ([`mbms_core::dcf`]) and the MIKEY MTK messages that key them, carried as
//! `application/mikey` objects, in one FLUTE session (RFC 6726, TS 26.346 §7), framed by the
//! [`flute`] crate.
//!
//! ```text
//! sender:   file --DcfSealer--> .dcf object ─┐
//!           MtkSealer --> application/mikey ─┴─> flute::Sender (FDT + carousel) --> ALC packets
//! receiver: ALC packets --> flute::MultiReceiver --> objects
//!           application/mikey --MtkOpener(MSK)--> MTK (by Key Domain ID, MSK ID, MTK ID)
//!           DCF object --header's key reference--> MTK --DcfOpener--> file
//! ```
//!
//! Both halves take time as an argument and hand packets in and out: the sockets, pacing and
//! files live in the binaries (`mbms-send`, `mbms-recv`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod receiver;
pub mod sender;

use mbms_core::{KeyDomainId, MskId, MtkId};

/// Media type of MTK message objects (RFC 3830 §10).
pub const MIKEY_MEDIA_TYPE: &str = "application/mikey";

/// Why a download session step failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The FLUTE layer refused (bad configuration, object too large, bad packet).
    #[error("FLUTE: {0}")]
    Flute(String),
    /// A file name or URL that cannot make a Content-Location.
    #[error("bad content location {0:?}")]
    BadLocation(String),
    /// Building or opening a DCF object.
    #[error("DCF: {0}")]
    Dcf(#[from] mbms_core::dcf::DcfError),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

impl From<flute::error::FluteError> for DownloadError {
    fn from(e: flute::error::FluteError) -> Self {
        Self::Flute(e.0.to_string())
    }
}

/// The path, under the session's base URL, of the object carrying the MTK message of
/// (`kd`, `msk_id`, `mtk_id`): `keys/mtk-<kd>-<msk id>-<mtk id>.mikey`, in hex.
pub fn key_object_path(kd: KeyDomainId, msk_id: MskId, mtk_id: MtkId) -> String {
    format!(
        "keys/mtk-{}-{:08x}-{:04x}.mikey",
        hex::encode(kd.0),
        msk_id.0,
        mtk_id.0
    )
}
