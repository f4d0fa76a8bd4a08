#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mbms_core::fuzzing::dcf_open(data));
