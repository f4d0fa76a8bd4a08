//! The GBA key derivation that gives a NAF (here the BM-SC) its keys (3GPP TS 33.220 Annex B;
//! digest §5.1), used to provision MUK and MRK when no BSF is at hand.
//!
//! ```text
//! KDF(Key, S) = HMAC-SHA-256(Key, S),  S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ …   (Li: 2-byte length)
//! Ks_(ext_)NAF = KDF(Ks, 0x01 ‖ "gba-me" ‖ RAND ‖ IMPI ‖ NAF_ID)
//! Ks_int_NAF   = KDF(Ks, 0x01 ‖ "gba-u"  ‖ RAND ‖ IMPI ‖ NAF_ID)
//! NAF_ID       = FQDN of the NAF ‖ Ua security protocol identifier (MBMS: 01 00 00 00 01)
//! ```
//! With GBA_U, MUK = Ks_int_NAF and MRK = Ks_ext_NAF (TS 33.246 §6.1, digest §1). The GBA_ME
//! derivation of TS 33.246 Annex F is unconfirmed (digest point 13) and not provided.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::keys::{Mrk, Muk};

//= TS 33.220 H.3
//# (0x01,0x00,0x00,0x00,0x01) MBMS security (TS 33.246)
/// The Ua security protocol identifier of MBMS (TS 33.220 Table H.3).
pub const UA_PROTOCOL_MBMS: [u8; 5] = [0x01, 0x00, 0x00, 0x00, 0x01];

/// Which NAF key the derivation gives (the P0 string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NafKeyKind {
    /// `"gba-me"`: Ks_NAF (GBA_ME) and Ks_ext_NAF (GBA_U).
    Ext,
    /// `"gba-u"`: Ks_int_NAF (GBA_U).
    Int,
}

/// NAF_ID: the NAF's FQDN followed by the Ua security protocol identifier.
pub fn naf_id(fqdn: &str, ua_protocol: [u8; 5]) -> Vec<u8> {
    let mut id = fqdn.as_bytes().to_vec();
    id.extend_from_slice(&ua_protocol);
    id
}

/// `KDF(Ks, FC=0x01 ‖ P0 ‖ RAND ‖ IMPI ‖ NAF_ID)` of TS 33.220 Annex B.
///
/// # Panics
/// If a parameter is longer than 65535 bytes (its length does not fit in `Li`).
pub fn naf_key(
    ks: &[u8; 32],
    kind: NafKeyKind,
    rand: &[u8; 16],
    impi: &str,
    naf_id: &[u8],
) -> [u8; 32] {
    let p0: &[u8] = match kind {
        NafKeyKind::Ext => b"gba-me",
        NafKeyKind::Int => b"gba-u",
    };
    // HMAC accepts any key length; a 32-byte key cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(ks).unwrap_or_else(|_| unreachable!());
    mac.update(&[0x01]);
    for p in [p0, &rand[..], impi.as_bytes(), naf_id] {
        let len = u16::try_from(p.len()).expect("GBA KDF parameter longer than 65535 bytes");
        mac.update(p);
        mac.update(&len.to_be_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// MUK and MRK of a GBA_U UE: `MUK = Ks_int_NAF`, `MRK = Ks_ext_NAF`.
pub fn gba_u_keys(ks: &[u8; 32], rand: &[u8; 16], impi: &str, naf_id: &[u8]) -> (Muk, Mrk) {
    let mut int = naf_key(ks, NafKeyKind::Int, rand, impi, naf_id);
    let mut ext = naf_key(ks, NafKeyKind::Ext, rand, impi, naf_id);
    let keys = (Muk::from_bytes(int), Mrk::from_bytes(ext));
    zeroize::Zeroize::zeroize(&mut int);
    zeroize::Zeroize::zeroize(&mut ext);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Python's `hmac`/`hashlib` (testdata/gba/README.md):
    /// Ks = 00 01 … 1f, RAND = a0 a1 … af, IMPI "user@ims.mnc001.mcc001.3gppnetwork.org",
    /// NAF_ID = "bmsc.example.org" ‖ 01 00 00 00 01.
    #[test]
    fn naf_keys_match_an_independent_computation() {
        let ks: [u8; 32] =
            hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
                .expect("hex")
                .try_into()
                .expect("32 bytes");
        let rand: [u8; 16] = hex::decode("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
            .expect("hex")
            .try_into()
            .expect("16 bytes");
        let impi = "user@ims.mnc001.mcc001.3gppnetwork.org";
        let naf = naf_id("bmsc.example.org", UA_PROTOCOL_MBMS);
        let want = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/gba/naf-keys.txt"
        ))
        .expect("testdata/gba/naf-keys.txt");
        let field = |name: &str| -> String {
            want.lines()
                .find_map(|l| l.strip_prefix(name))
                .expect(name)
                .trim()
                .to_owned()
        };
        let ext = naf_key(&ks, NafKeyKind::Ext, &rand, impi, &naf);
        let int = naf_key(&ks, NafKeyKind::Int, &rand, impi, &naf);
        assert_eq!(hex::encode(ext), field("ks_ext_naf="));
        assert_eq!(hex::encode(int), field("ks_int_naf="));
        let (muk, mrk) = gba_u_keys(&ks, &rand, impi, &naf);
        assert_eq!(muk.expose(), &int);
        assert_eq!(mrk.expose(), &ext);
    }
}
