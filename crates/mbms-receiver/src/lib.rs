//! `mbms-recv`: the UE's part of TS 33.246 on a bearer: joins the services' multicast groups (or
//! reads a capture), keys up from MIKEY MTK messages with the MSK from a key file, decrypts SRTP
//! with the MTK each packet's MKI names, and counts every datagram under one outcome.
//!
//! [`service`] is the sans-IO heart (datagrams in, counters out); [`cli`] adds sockets, the
//! capture reader, the decrypted-RTP pcap and the report.

pub mod cli;
pub mod download;
pub mod service;
