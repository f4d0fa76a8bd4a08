pub mod frame;
pub mod pcap;
