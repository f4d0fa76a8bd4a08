//! Key data sub-payloads (RFC 3830 §6.13) and their key validity data (§6.14).
//!
//! They travel as a chain inside the (encrypted) KEMAC data, each with its own next-payload
//! byte (20 = another Key data sub-payload, 0 = last).

use super::code::payload as pt;
use super::{put_u8_len, put_u16_len};
use crate::codec::Reader;
use crate::error::MikeyError;
use zeroize::Zeroize;

/// Key data Type, the high nibble of the type byte (digest §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDataType(pub u8);

impl KeyDataType {
    /// TEK Generation Key.
    pub const TGK: Self = Self(0);
    /// TGK with salt.
    pub const TGK_SALT: Self = Self(1);
    /// Traffic-encrypting key.
    pub const TEK: Self = Self(2);
    /// TEK with salt.
    pub const TEK_SALT: Self = Self(3);

    /// Whether a salt follows the key on the wire (the `+SALT` types 1, 3, 5).
    pub fn has_salt(self) -> bool {
        matches!(self.0, 1 | 3 | 5)
    }
}

/// Key validity data (RFC 3830 §6.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValidity {
    /// KV type 0: no validity data.
    Null,
    /// KV type 1: an SPI (or MKI).
    Spi(Vec<u8>),
    /// KV type 2: Valid-From and Valid-To.
    Interval {
        /// Valid-From.
        from: Vec<u8>,
        /// Valid-To.
        to: Vec<u8>,
    },
}

/// One Key data sub-payload. The key and salt are zeroized on drop, not printed, and compared
/// in constant time.
#[derive(Clone)]
pub struct KeyData {
    /// Key data type.
    pub kind: KeyDataType,
    /// The key.
    pub key: Vec<u8>,
    /// The salt, present exactly when `kind.has_salt()` on the wire.
    pub salt: Option<Vec<u8>>,
    /// Key validity.
    pub kv: KeyValidity,
}

impl Drop for KeyData {
    #[inline(never)]
    fn drop(&mut self) {
        self.key.zeroize();
        if let Some(s) = self.salt.as_mut() {
            s.zeroize();
        }
    }
}

impl PartialEq for KeyData {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        let salt_eq = match (&self.salt, &other.salt) {
            (Some(a), Some(b)) => bool::from(a.as_slice().ct_eq(b.as_slice())),
            (None, None) => true,
            _ => false,
        };
        // `&` rather than `&&`: no early exit on the key comparison.
        (self.kind == other.kind)
            & bool::from(self.key.as_slice().ct_eq(other.key.as_slice()))
            & salt_eq
            & (self.kv == other.kv)
    }
}

impl Eq for KeyData {}

impl core::fmt::Debug for KeyData {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyData")
            .field("kind", &self.kind)
            .field("key_len", &self.key.len())
            .field("salt_len", &self.salt.as_ref().map(Vec::len))
            .field("kv", &self.kv)
            .finish()
    }
}

impl KeyData {
    /// Decodes the whole chain of Key data sub-payloads found in decrypted KEMAC data.
    pub fn decode_chain(buf: &[u8]) -> Result<Vec<KeyData>, MikeyError> {
        const T: MikeyError = MikeyError::Truncated("Key data");
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        loop {
            let next = r.u8().ok_or(T)?;
            let type_kv = r.u8().ok_or(T)?;
            let kind = KeyDataType(type_kv >> 4);
            if kind.0 > 7 {
                return Err(MikeyError::UnknownKeyDataType(kind.0));
            }
            let key_len = r.u16().ok_or(T)?;
            // Held zeroizing until the sub-payload is complete: an error below drops them.
            let key = zeroize::Zeroizing::new(r.take(usize::from(key_len)).ok_or(T)?.to_vec());
            let salt = if kind.has_salt() {
                let n = r.u16().ok_or(T)?;
                Some(zeroize::Zeroizing::new(
                    r.take(usize::from(n)).ok_or(T)?.to_vec(),
                ))
            } else {
                None
            };
            let kv = match type_kv & 0x0f {
                0 => KeyValidity::Null,
                1 => {
                    let n = r.u8().ok_or(T)?;
                    KeyValidity::Spi(r.take(usize::from(n)).ok_or(T)?.to_vec())
                }
                2 => {
                    let n = r.u8().ok_or(T)?;
                    let from = r.take(usize::from(n)).ok_or(T)?.to_vec();
                    let n = r.u8().ok_or(T)?;
                    let to = r.take(usize::from(n)).ok_or(T)?.to_vec();
                    KeyValidity::Interval { from, to }
                }
                other => return Err(MikeyError::UnknownKvType(other)),
            };
            out.push(KeyData {
                kind,
                key: key.to_vec(),
                salt: salt.map(|s| s.to_vec()),
                kv,
            });
            match next {
                pt::LAST => break,
                pt::KEY_DATA => continue,
                other => return Err(MikeyError::MisplacedPayload(other)),
            }
        }
        if !r.is_empty() {
            return Err(MikeyError::TrailingData("Key data"));
        }
        Ok(out)
    }

    /// Appends this sub-payload with `next` as its next-payload field.
    pub fn encode(&self, next: u8, out: &mut Vec<u8>) {
        put_key_data(
            out,
            next,
            self.kind,
            &self.key,
            self.salt.as_deref(),
            &self.kv,
        );
    }

    /// Encodes a chain of sub-payloads.
    pub fn encode_chain(chain: &[KeyData], out: &mut Vec<u8>) {
        for (i, kd) in chain.iter().enumerate() {
            let next = if i + 1 < chain.len() {
                pt::KEY_DATA
            } else {
                pt::LAST
            };
            kd.encode(next, out);
        }
    }
}

/// Appends one Key data sub-payload. A salt is written exactly when `kind.has_salt()` (an
/// absent salt as zero length).
pub(crate) fn put_key_data(
    out: &mut Vec<u8>,
    next: u8,
    kind: KeyDataType,
    key: &[u8],
    salt: Option<&[u8]>,
    kv: &KeyValidity,
) {
    let kv_type = match kv {
        KeyValidity::Null => 0,
        KeyValidity::Spi(_) => 1,
        KeyValidity::Interval { .. } => 2,
    };
    out.push(next);
    out.push((kind.0 << 4) | kv_type);
    put_u16_len(out, key);
    if kind.has_salt() {
        put_u16_len(out, salt.unwrap_or(&[]));
    }
    match kv {
        KeyValidity::Null => {}
        KeyValidity::Spi(spi) => put_u8_len(out, spi),
        KeyValidity::Interval { from, to } => {
            put_u8_len(out, from);
            put_u8_len(out, to);
        }
    }
}
