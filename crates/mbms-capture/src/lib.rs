//! Capture files for the MBMS head-end, shared by the sender (`mbms-send`) and the receiver
//! (`mbms-recv`); no sockets, no threads.
//!
//! - [`frame`]: one captured frame (Ethernet with VLAN tags, Linux cooked v1/v2, raw IP,
//!   IPv4, IPv6, BSD loopback) decoded to its UDP datagram, never panicking: every frame that is
//!   not one is a typed [`frame::Skip`] reason;
//! - [`pcap`]: pcap and pcapng files read into RTP packets (or every UDP datagram), with counted
//!   skips and errors that name the file, record and offset;
//! - [`pcapout`]: datagrams written as Ethernet/IPv4-or-IPv6/UDP frames with valid checksums.

pub mod frame;
pub mod pcap;
pub mod pcapout;
