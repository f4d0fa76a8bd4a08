//! # mbms-core
//!
//! The sans-IO core of an MBMS security head-end (3GPP TS 33.246): MIKEY MSK and MTK messages,
//! their key derivation, and (in later modules) the traffic protection they key.
//!
//! ```text
//!            MUK (per UE)                    MSK (per service)
//! BM-SC --MSK message (UDP, p-t-p)--> UE --MTK message (bearer)--> UE: MTK -> SRTP / DCF
//!   seal_msk_message / open_msk_message     MtkSealer::seal / MtkOpener::open
//! ```
//!
//! The crate opens no sockets, starts no threads of its own (batches run on rayon's pool), reads
//! no clock and draws no randomness: timestamps, counters, CSB IDs and RANDs come in as
//! arguments. Decoders never panic on untrusted bytes; secrets are fixed-size, zeroized on drop
//! and never printed; MACs are compared in constant time.
//!
//! Choices where TS 33.246 text is unconfirmed are listed in `docs/profile.md` and switched by
//! [`Profile`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod codec;
pub mod dcf;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gba;
pub mod kdf;
pub mod keyfile;
pub mod keys;
mod lanes;
pub mod mbms;
pub mod mikey;
pub mod profile;
pub mod srtp;

pub use error::{MbmsError, MikeyError};
pub use keys::{CsbId, KeyDomainId, Mrk, Msk, MskId, Mtk, MtkId, MtkIdInterval, MtkSalt, Muk};
pub use profile::Profile;
