//! # mbms-bmsc
//!
//! The BM-SC key management function of 3GPP TS 33.246 (§6.3.1–6.3.2): UEs register to MBMS
//! user services over HTTP (authenticated with HTTP Digest, B-TID as user name and MRK as
//! password), the BM-SC stores each UE's address from the source address of its registration,
//! and delivers the services' MSKs in MIKEY MSK messages sealed under the UE's MUK, pushed over
//! UDP (with an optional verification reply, retransmitted with back-off) or requested by the
//! UE (basic MSK request, missed key update).
//!
//! - [`config`]: the TOML configuration and its defaults.
//! - [`server`]: the HTTP side (axum on tokio): `/keymanagement`, the admin API, `/health`.
//! - [`push`]: the UDP side: batches of MSK messages sealed across cores, sent, verified,
//!   retransmitted.
//! - [`cli`]: the `mbms-bmsc` command line.
//!
//! The durable state (UEs, MUK counters, registrations, MSKs) lives in `mbms-keystore`.

pub mod cli;
pub mod config;
pub mod push;
pub mod server;
