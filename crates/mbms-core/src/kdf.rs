//! MIKEY key derivation (RFC 3830 §4.1) and the KEMAC transform keys (§4.2.3, §4.2.4).

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::{Zeroize, Zeroizing};

use crate::keys::CsbId;

type HmacSha1 = Hmac<Sha1>;
type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// XORs the AES-CM keystream of an expanded key from counter block `iv` (a 128-bit big-endian
/// counter, RFC 3711 §4.1.1, RFC 3830 §4.2.3) into `data`. The key schedule is copied, not
/// recomputed. Shared by the MIKEY KEMAC and SRTP.
pub(crate) fn aes_cm_xor(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let mut c = Aes128Ctr::from_core(ctr::CtrCore::inner_iv_init(cipher.clone(), iv.into()));
    c.apply_keystream(data);
}

/// Label constants of RFC 3830 §4.1.3 (keys from a TGK) and §4.1.4 (keys protecting the MIKEY
/// message, from the pre-shared key: the MUK for MSK messages, the MSK for MTK messages).
pub mod constant {
    /// §4.1.3: TEK derivation.
    pub const TEK: u32 = 0x2AD0_1C64;
    /// §4.1.3: authentication key.
    pub const TGK_AUTH: u32 = 0x1B5C_7973;
    /// §4.1.3: encryption key.
    pub const TGK_ENCR: u32 = 0x1579_8CEF;
    /// §4.1.3: salting key.
    pub const TGK_SALT: u32 = 0x39A2_C14B;
    /// §4.1.4: KEMAC encryption key.
    pub const ENCR: u32 = 0x1505_33E1;
    /// §4.1.4: KEMAC / V authentication key.
    pub const AUTH: u32 = 0x2D22_AC75;
    /// §4.1.4: KEMAC salting key.
    pub const SALT: u32 = 0x29B8_8916;
}

/// The cs_id of §4.1.4 labels.
pub const CS_ID_TRANSPORT: u8 = 0xff;

/// Longest label: constant (4) ‖ cs_id (1) ‖ csb_id (4) ‖ RAND (at most 255).
const MAX_LABEL: usize = 4 + 1 + 4 + 255;

/// Builds `constant ‖ cs_id ‖ csb_id ‖ RAND` into `buf` and returns the used part.
/// A RAND longer than 255 bytes (impossible on the wire) is cut.
fn label<'b>(
    buf: &'b mut [u8; MAX_LABEL],
    constant: u32,
    cs_id: u8,
    csb_id: CsbId,
    rand: &[u8],
) -> &'b [u8] {
    let rand = &rand[..rand.len().min(255)];
    buf[..4].copy_from_slice(&constant.to_be_bytes());
    buf[4] = cs_id;
    buf[5..9].copy_from_slice(&csb_id.0.to_be_bytes());
    buf[9..9 + rand.len()].copy_from_slice(rand);
    &buf[..9 + rand.len()]
}

/// `P(s, label, m)` of RFC 3830 §4.1.2, XORed into `out` (whose length sets m).
fn p_xor(s: &HmacSha1, label: &[u8], out: &mut [u8]) {
    //= RFC 3830 §4.1.2
    //# P (s, label, m) = HMAC (s, A_1 || label) || HMAC (s, A_2 || label) || ...
    //# A_0 = label, A_i = HMAC (s, A_(i-1))
    let mut a = {
        let mut h = s.clone();
        h.update(label);
        h.finalize().into_bytes()
    };
    let blocks = out.len().div_ceil(20);
    for (i, chunk) in out.chunks_mut(20).enumerate() {
        let mut h = s.clone();
        h.update(&a);
        h.update(label);
        let block = h.finalize().into_bytes();
        for (o, b) in chunk.iter_mut().zip(block.iter()) {
            *o ^= b;
        }
        // A_(i+1) is only needed if another block follows.
        if i + 1 < blocks {
            let mut h = s.clone();
            h.update(&a);
            a = h.finalize().into_bytes();
        }
    }
    a.zeroize();
}

/// The MIKEY PRF (RFC 3830 §4.1.2): fills `out` with `PRF(inkey, label, out.len())`.
///
/// The inkey is split into 256-bit chunks; the P outputs of all chunks are XORed.
pub fn mikey_prf(inkey: &[u8], label: &[u8], out: &mut [u8]) {
    out.fill(0);
    for s in inkey.chunks(32) {
        // invariant: HMAC accepts keys of any length.
        let mac = <HmacSha1 as Mac>::new_from_slice(s).expect("HMAC takes any key length");
        p_xor(&mac, label, out);
    }
}

/// `PRF(inkey, constant ‖ cs_id ‖ csb_id ‖ RAND)` into `out` (RFC 3830 §4.1.3 / §4.1.4).
pub fn derive(inkey: &[u8], constant: u32, cs_id: u8, csb_id: CsbId, rand: &[u8], out: &mut [u8]) {
    let mut buf = [0u8; MAX_LABEL];
    mikey_prf(inkey, label(&mut buf, constant, cs_id, csb_id, rand), out);
}

/// The three keys protecting a MIKEY message (RFC 3830 §4.1.4), as raw bytes for tests and
/// known-answer checks. Zeroized on drop.
pub struct KemacKeyMaterial {
    /// encr_key, 128 bits (AES-CM-128, §4.2.3).
    pub encr: Zeroizing<[u8; 16]>,
    /// auth_key, 160 bits (HMAC-SHA-1-160, §4.2.4).
    pub auth: Zeroizing<[u8; 20]>,
    /// salt_key, 112 bits.
    pub salt: Zeroizing<[u8; 14]>,
}

impl KemacKeyMaterial {
    /// Derives the §4.1.4 key triple from a pre-shared key (MUK or MSK), the CSB ID and the RAND.
    ///
    /// Only one HMAC keying per 256-bit chunk of the pre-shared key is done for all three keys.
    pub fn derive(psk: &[u8], csb_id: CsbId, rand: &[u8]) -> Self {
        //= RFC 3830 §4.1.4
        //# label = constant || 0xFF || csb_id || RAND
        let mut k = Self {
            encr: Zeroizing::new([0; 16]),
            auth: Zeroizing::new([0; 20]),
            salt: Zeroizing::new([0; 14]),
        };
        let mut buf = [0u8; MAX_LABEL];
        for s in psk.chunks(32) {
            // invariant: HMAC accepts keys of any length.
            let mac = <HmacSha1 as Mac>::new_from_slice(s).expect("HMAC takes any key length");
            let l = label(&mut buf, constant::ENCR, CS_ID_TRANSPORT, csb_id, rand);
            p_xor(&mac, l, &mut k.encr[..]);
            let l = label(&mut buf, constant::AUTH, CS_ID_TRANSPORT, csb_id, rand);
            p_xor(&mac, l, &mut k.auth[..]);
            let l = label(&mut buf, constant::SALT, CS_ID_TRANSPORT, csb_id, rand);
            p_xor(&mac, l, &mut k.salt[..]);
        }
        k
    }
}

/// KEMAC transform keys ready for use: the AES key schedule is expanded and the HMAC keyed once,
/// so that sealing or opening many messages under the same (key, CSB ID, RAND) redoes neither
/// the PRF nor the key setup.
#[derive(Clone)]
pub struct KemacKeys {
    cipher: Aes128,
    mac: HmacSha1,
    salt: Zeroizing<[u8; 14]>,
}

impl KemacKeys {
    /// Derives and prepares the keys (RFC 3830 §4.1.4).
    pub fn derive(psk: &[u8], csb_id: CsbId, rand: &[u8]) -> Self {
        Self::from_material(&KemacKeyMaterial::derive(psk, csb_id, rand))
    }

    /// Prepares already derived key material.
    pub fn from_material(m: &KemacKeyMaterial) -> Self {
        Self {
            cipher: Aes128::new(m.encr.as_ref().into()),
            // invariant: HMAC accepts keys of any length.
            mac: <HmacSha1 as Mac>::new_from_slice(&m.auth[..]).expect("HMAC takes any key length"),
            salt: m.salt.clone(),
        }
    }

    /// The AES-CM IV of RFC 3830 §4.2.3: `(S XOR (0x0000 ‖ CSB ID ‖ T)) ‖ 0x0000`, with T the
    /// 64-bit timestamp (a 32-bit COUNTER padded with leading zeros, docs/profile.md).
    pub fn iv(&self, csb_id: CsbId, t64: u64) -> [u8; 16] {
        //= RFC 3830 §4.2.3
        //# IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt[..]);
        for (o, b) in iv[2..6].iter_mut().zip(csb_id.0.to_be_bytes()) {
            *o ^= b;
        }
        for (o, b) in iv[6..14].iter_mut().zip(t64.to_be_bytes()) {
            *o ^= b;
        }
        iv
    }

    /// Encrypts or decrypts `data` in place with AES-CM-128 from `iv`.
    pub fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        aes_cm_xor(&self.cipher, iv, data);
    }

    /// HMAC-SHA-1-160 over the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut h = self.mac.clone();
        for p in parts {
            h.update(p);
        }
        h.finalize().into_bytes().into()
    }

    /// Checks an HMAC-SHA-1-160 tag over `parts` in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut h = self.mac.clone();
        for p in parts {
            h.update(p);
        }
        h.verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prf_output_longer_than_one_block_is_chained() {
        // Two blocks: the second must differ from an independent counter-mode block, which is
        // what the chained A_i give (digest §5.2).
        let mut out = [0u8; 40];
        mikey_prf(&[7; 16], b"label", &mut out);
        assert_ne!(out[..20], out[20..]);
    }
}
