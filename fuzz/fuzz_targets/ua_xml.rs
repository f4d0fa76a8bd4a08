//! The UE ↔ BM-SC XML bodies (TS 33.246 §6.3.2.1A/B, §6.3.2.2.1, §6.3.2.4) fed arbitrary bytes:
//! every parser answers with a value or a typed error, never a panic, and every value that
//! parses survives write → parse unchanged.
#![no_main]
use mbms_ua::xml::{self, Procedure};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for p in [Procedure::Register, Procedure::Deregister] {
        if let Ok(list) = xml::parse_service_list(p, data) {
            let body = xml::write_service_list(p, &list);
            assert_eq!(xml::parse_service_list(p, body.as_bytes()), Ok(list));
        }
    }
    if let Ok(req) = xml::parse_msk_request(data) {
        let body = xml::write_msk_request(&req);
        assert_eq!(xml::parse_msk_request(body.as_bytes()), Ok(req));
    }
    if let Ok(items) = xml::parse_register_response(data) {
        let body = xml::write_register_response(&items);
        assert_eq!(xml::parse_register_response(body.as_bytes()), Ok(items));
    }
    if let Ok(items) = xml::parse_msk_response(data) {
        let body = xml::write_msk_response(&items);
        assert_eq!(xml::parse_msk_response(body.as_bytes()), Ok(items));
    }
});
