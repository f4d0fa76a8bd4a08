//! Entry points for the fuzz targets in `fuzz/` (rustls, quinn). Each asserts an invariant
//! beyond "no panic".

use crate::keys::{KeyDomainId, Msk, MskId, MtkId, MtkIdInterval, Muk};
use crate::mbms::{MskKey, MtkOpener, ReplayCounter, open_msk_message};
use crate::mikey::MikeyMessage;

/// Decode arbitrary bytes; whatever decodes must encode back to the same bytes.
pub fn mikey_decode(data: &[u8]) {
    if let Ok(msg) = MikeyMessage::decode(data) {
        let again = msg.to_bytes();
        assert_eq!(again, data, "decode -> encode is not the identity");
        assert_eq!(MikeyMessage::decode(&again).as_ref(), Ok(&msg));
    }
}

/// Open arbitrary bytes as MSK and MTK messages with fixed keys: never panics, and a failed
/// open leaves the replay state untouched.
pub fn mbms_open(data: &[u8]) {
    let muk = Muk::from_bytes([0x11; 32]);
    let mut replay = ReplayCounter { last: Some(5) };
    if open_msk_message(&muk, data, &mut replay).is_err() {
        assert_eq!(replay.last, Some(5));
    }
    let key = MskKey {
        key_domain_id: KeyDomainId([0x12, 0xf4, 0x10]),
        msk_id: MskId(0x0001_0002),
        msk: Msk::from_bytes([0x22; 16]),
        validity: MtkIdInterval {
            from: MtkId(1),
            to: MtkId(0xfff0),
        },
        rand: Some(vec![0x33; 16]),
        policy: None,
    };
    let mut opener = MtkOpener::new(key, ReplayCounter { last: Some(5) });
    if opener.open(data).is_err() {
        assert_eq!(opener.replay().last, Some(5));
    }
}
