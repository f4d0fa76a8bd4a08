//! # mbms-ua
//!
//! The HTTP procedures between the UE and the BM-SC (3GPP TS 33.246 §6.3.2 and Annex G; the
//! bodies are TS 26.346 §11 schemas): the XML bodies of registration, deregistration and the MSK
//! request with their per-item status codes, and HTTP Digest authentication with the B-TID as
//! user name and the MRK as password. Sans-IO: no sockets, clock or RNG; time, nonces and
//! secrets come in as arguments. Used by the BM-SC (`mbms-bmsc`) and by UE-side clients.
#![warn(missing_docs)]

pub mod digest;
pub mod xml;
