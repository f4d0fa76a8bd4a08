//! SRTP key derivation (RFC 3711 §4.3, key derivation rate 0) and the per-packet transforms
//! with session keys prepared once per master key: the AES key schedule expanded, the HMAC
//! keyed. Nothing here allocates.

use aes::Aes128;
use aes::cipher::KeyInit;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::kdf::aes_cm_xor;
use crate::keys::{Mtk, MtkSalt};

/// Key derivation labels (RFC 3711 §4.3.2).
pub mod label {
    /// SRTP encryption key.
    pub const SRTP_ENCR: u8 = 0x00;
    /// SRTP authentication key.
    pub const SRTP_AUTH: u8 = 0x01;
    /// SRTP salt.
    pub const SRTP_SALT: u8 = 0x02;
    /// SRTCP encryption key.
    pub const SRTCP_ENCR: u8 = 0x03;
    /// SRTCP authentication key.
    pub const SRTCP_AUTH: u8 = 0x04;
    /// SRTCP salt.
    pub const SRTCP_SALT: u8 = 0x05;
}

/// RFC 3711 §4.3.1 with key derivation rate 0: `PRF(master_key, (label ‖ 0^48) XOR master_salt)`,
/// the AES-CM keystream from IV = x·2^16, truncated to `out.len()`.
pub fn derive_session_key(
    master_key: &[u8; 16],
    master_salt: &[u8; 14],
    label: u8,
    out: &mut [u8],
) {
    //= RFC 3711 §4.3.1
    //# key_id = label || r;  x = key_id XOR master_salt
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    let cipher = Aes128::new(master_key.into());
    aes_cm_xor(&cipher, &iv, out);
}

/// The session keys of one direction-independent transform (SRTP or SRTCP).
#[derive(Clone)]
pub(crate) struct SessionKeys {
    cipher: Aes128,
    /// The same encryption key for the VAES kernel (empty where the CPU lacks it).
    round_keys: mbms_simd::Aes128RoundKeys,
    salt: Zeroizing<[u8; 14]>,
    /// The same authentication key for the multi-lane batch path.
    pub(crate) lanes: crate::lanes::HmacKey,
}

impl SessionKeys {
    fn derive(master_key: &Mtk, master_salt: &MtkSalt, labels: [u8; 3]) -> Self {
        let (mk, ms) = (master_key.expose(), master_salt.expose());
        let mut k = Zeroizing::new([0u8; 16]);
        let mut a = Zeroizing::new([0u8; 20]);
        let mut s = Zeroizing::new([0u8; 14]);
        derive_session_key(mk, ms, labels[0], &mut k[..]);
        derive_session_key(mk, ms, labels[1], &mut a[..]);
        derive_session_key(mk, ms, labels[2], &mut s[..]);
        Self {
            cipher: Aes128::new((&*k).into()),
            round_keys: mbms_simd::Aes128RoundKeys::new(&k),
            lanes: crate::lanes::HmacKey::new(&a[..]),
            salt: s,
        }
    }

    /// XORs the keystream for (SSRC, index) into `data` (RFC 3711 §4.1.1):
    /// `IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16)`.
    pub(crate) fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        //= RFC 3711 §4.1.1
        //# IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)
        // As one 128-bit big-endian number: k_s in bytes 0..14, SSRC in 4..8, i (48 bits) in
        // 8..14.
        let mut salt = [0u8; 16];
        salt[..14].copy_from_slice(&self.salt[..]);
        let iv = (u128::from_be_bytes(salt)
            ^ (u128::from(ssrc) << 64)
            ^ (u128::from(index & 0xFFFF_FFFF_FFFF) << 16))
            .to_be_bytes();
        // VAES where the CPU has it, else the `aes` crate (AES-NI or software).
        if !mbms_simd::aes128_ctr_xor(&self.round_keys, &iv, data) {
            aes_cm_xor(&self.cipher, &iv, data);
        }
    }

    /// Full HMAC-SHA-1 over `authenticated ‖ trailer` (trailer: the ROC for SRTP, empty for
    /// SRTCP).
    pub(crate) fn mac(&self, authenticated: &[u8], trailer: &[u8]) -> [u8; 20] {
        // One lane of the multi-lane HMAC: its key state is zeroized on drop, which the `hmac`
        // crate's is not.
        let mut out = [[0u8; 20]];
        crate::lanes::hmac_sha1_lanes(
            &[crate::lanes::MacInput {
                key: &self.lanes,
                data: authenticated,
                trailer,
            }],
            &mut out,
        );
        out[0]
    }
}

/// Constant-time comparison of a received tag with the first bytes of a computed MAC.
pub(crate) fn tag_matches(received: &[u8], mac: &[u8]) -> bool {
    mac.get(..received.len())
        .is_some_and(|m| bool::from(m.ct_eq(received)))
}

/// SRTP and SRTCP session keys of one master key (one MTK with its salt).
#[derive(Clone)]
pub(crate) struct MasterKeys {
    pub(crate) srtp: SessionKeys,
    pub(crate) srtcp: SessionKeys,
}

impl MasterKeys {
    pub(crate) fn derive(master_key: &Mtk, master_salt: &MtkSalt) -> Self {
        use label::*;
        Self {
            srtp: SessionKeys::derive(master_key, master_salt, [SRTP_ENCR, SRTP_AUTH, SRTP_SALT]),
            srtcp: SessionKeys::derive(
                master_key,
                master_salt,
                [SRTCP_ENCR, SRTCP_AUTH, SRTCP_SALT],
            ),
        }
    }
}
