#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mbms_core::fuzzing::lanes_differential(data));
