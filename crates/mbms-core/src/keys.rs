//! Key and identifier types of the MBMS key hierarchy (3GPP TS 33.246 §6.3, digest §1, §8.7).
//!
//! Secrets are fixed-size arrays, zeroized on drop, and their `Debug` prints no key material.
//! Identifiers are newtypes with their wire width.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length of the key in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw key bytes.
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Copies a key from a slice of exactly [`Self::LEN`] bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                let arr: [u8; $len] = bytes.try_into().ok()?;
                Some(Self(arr))
            }

            /// The key bytes. Handle with care: never log them.
            pub fn expose(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            /// Constant-time comparison.
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl Eq for $name {}
    };
}

secret!(
    /// MBMS User Key: the per-UE pre-shared key of MSK messages (256 bits: Ks_int_NAF for
    /// GBA_U, or K_AF for AKMA per TS 33.501 W.4.1.3).
    Muk,
    32
);
secret!(
    /// MBMS Request Key: the UE's HTTP Digest password towards the BM-SC (256 bits:
    /// Ks_ext_NAF for GBA_U).
    Mrk,
    32
);
secret!(
    /// MBMS Service Key: the pre-shared key of MTK messages (128 bits).
    Msk,
    16
);
secret!(
    /// MBMS Traffic Key: the SRTP master key or DCF content key (128 bits).
    Mtk,
    16
);
secret!(
    /// The SRTP master salt delivered with an MTK (112 bits).
    MtkSalt,
    14
);
/// Key Domain ID: MCC ‖ MNC, 3 bytes (TS 31.102 EF_MSK; digest §8.7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDomainId(pub [u8; 3]);

/// MSK ID: Key Group part (bytes 0–1) ‖ Key Number part (bytes 2–3), big-endian (digest §8.7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MskId(pub u32);

impl MskId {
    /// Builds an MSK ID from its Key Group and Key Number parts.
    pub fn new(key_group: u16, key_number: u16) -> Self {
        Self((u32::from(key_group) << 16) | u32::from(key_number))
    }

    /// The Key Group part (bytes 0–1).
    pub fn key_group(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The Key Number part (bytes 2–3).
    pub fn key_number(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// Wire form, 4 bytes big-endian.
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

/// MTK ID: a 16-bit counter, incremented per MTK update (digest §8.7, tagged \[M\]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MtkId(pub u16);

impl MtkId {
    /// Wire form, 2 bytes big-endian.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
}

/// MIKEY Crypto Session Bundle ID (RFC 3830 §6.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CsbId(pub u32);

/// The MTK IDs an MSK may protect: the KV Interval of the MSK's Key data sub-payload,
/// inclusive at both ends (digest §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MtkIdInterval {
    /// Lowest MTK ID (Valid-From).
    pub from: MtkId,
    /// Highest MTK ID (Valid-To).
    pub to: MtkId,
}

impl MtkIdInterval {
    /// Whether `id` lies inside the interval.
    pub fn contains(&self, id: MtkId) -> bool {
        self.from <= id && id <= self.to
    }
}

impl core::fmt::Debug for KeyDomainId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "KeyDomainId({:02x}{:02x}{:02x})",
            self.0[0], self.0[1], self.0[2]
        )
    }
}

impl core::fmt::Debug for MskId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MskId({:08x})", self.0)
    }
}

impl core::fmt::Debug for MtkId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MtkId({:04x})", self.0)
    }
}

impl core::fmt::Debug for CsbId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CsbId({:08x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_bytes() {
        let k = Msk::from_bytes([0xab; 16]);
        let s = format!("{k:?}");
        assert_eq!(s, "Msk(<redacted>)");
        assert!(!s.to_lowercase().contains("ab"));
    }

    #[test]
    fn msk_id_parts_are_group_then_number() {
        let id = MskId::new(0x0102, 0x0304);
        assert_eq!(id.to_bytes(), [1, 2, 3, 4]);
        assert_eq!(id.key_group(), 0x0102);
        assert_eq!(id.key_number(), 0x0304);
    }
}
