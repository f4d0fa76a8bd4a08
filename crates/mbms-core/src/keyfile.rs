//! The MSK key file (`--msk-file` of `mbms-send` and `mbms-recv`): one MSK with what a sender
//! and a receiver need besides the key, so that a test lab can key both ends without a BM-SC.
//!
//! ```text
//! # mbms MSK key file, version 1
//! key_domain_id = 12f410                       # MCC ‖ MNC, 3 bytes hex
//! msk_id        = 00010002                     # Key Group ‖ Key Number, 4 bytes hex
//! msk           = 00112233445566778899aabbccddeeff
//! mtk_id_from   = 1                            # key-validity interval of MTK IDs (decimal)
//! mtk_id_to     = 1000
//! csb_id        = 01020304                     # optional, 4 bytes hex (default 0)
//! rand          = a0a1a2a3a4a5a6a7a8a9aaabacadaeaf  # optional, 16 bytes hex: the RAND the
//!                                              # MTK messages' KEMAC keys derive from
//! ```
//! Blank lines and `#` comments are ignored; keys may come in any order; each must appear at
//! most once; unknown keys are refused (a typo must not go unnoticed). Parsing never panics and
//! names the line that was wrong. The file holds a secret: [`MskFile`]'s `Debug` does not print
//! the MSK; [`MskFile::render`] writes it, for saving the file.

use crate::keys::{CsbId, KeyDomainId, Msk, MskId, MtkId, MtkIdInterval};

/// What an MSK key file holds.
#[derive(Clone, PartialEq, Eq)]
pub struct MskFile {
    /// Key Domain ID.
    pub key_domain_id: KeyDomainId,
    /// MSK ID.
    pub msk_id: MskId,
    /// The MSK.
    pub msk: Msk,
    /// The MTK IDs the MSK may protect.
    pub validity: MtkIdInterval,
    /// CSB ID of the MTK messages (0 when absent).
    pub csb_id: CsbId,
    /// RAND of the MTK messages' KEMAC key derivation, if fixed by the file.
    pub rand: Option<[u8; 16]>,
}

impl core::fmt::Debug for MskFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MskFile")
            .field("key_domain_id", &self.key_domain_id)
            .field("msk_id", &self.msk_id)
            .field("msk", &self.msk)
            .field("validity", &self.validity)
            .field("csb_id", &self.csb_id)
            .finish_non_exhaustive()
    }
}

/// Why a key file was refused, with its 1-based line number (0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key file line {line}: {kind}")]
pub struct KeyFileError {
    /// Line number, 1-based; 0 when the error concerns the whole file (a missing key).
    pub line: usize,
    /// What was wrong.
    pub kind: KeyFileErrorKind,
}

/// What was wrong in a key file.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileErrorKind {
    /// A key given twice.
    #[error("`{0}` given twice")]
    Duplicate(&'static str),
    /// A value that is not hex of the right length.
    #[error("`{key}` must be {bytes} bytes of hex")]
    BadHex {
        /// The key.
        key: &'static str,
        /// The length expected.
        bytes: usize,
    },
    /// A value that is not a number in range.
    #[error("`{0}` must be a number from 0 to 65535")]
    BadNumber(&'static str),
    /// The interval's lower end is above its upper end.
    #[error("mtk_id_from is above mtk_id_to")]
    EmptyInterval,
    /// A line that is not `key = value`.
    #[error("expected `key = value`")]
    NotKeyValue,
    /// A required key is absent.
    #[error("`{0}` is missing")]
    Missing(&'static str),
    /// A key this format does not have.
    #[error("unknown key `{0}`")]
    Unknown(String),
}

const KEYS: [&str; 7] = [
    "key_domain_id",
    "msk_id",
    "msk",
    "mtk_id_from",
    "mtk_id_to",
    "csb_id",
    "rand",
];

fn hex_array<const N: usize>(key: &'static str, v: &str) -> Result<[u8; N], KeyFileErrorKind> {
    let mut out = [0u8; N];
    hex::decode_to_slice(v, &mut out).map_err(|_| KeyFileErrorKind::BadHex { key, bytes: N })?;
    Ok(out)
}

impl MskFile {
    /// Parses the text of a key file.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut values: [Option<(usize, &str)>; 7] = [None; 7];
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |kind| KeyFileError { line, kind };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let (k, v) = content
                .split_once('=')
                .ok_or(err(KeyFileErrorKind::NotKeyValue))?;
            let (k, v) = (k.trim(), v.trim());
            let slot = KEYS
                .iter()
                .position(|known| *known == k)
                .ok_or_else(|| err(KeyFileErrorKind::Unknown(k.to_string())))?;
            if values[slot].is_some() {
                return Err(err(KeyFileErrorKind::Duplicate(KEYS[slot])));
            }
            values[slot] = Some((line, v));
        }
        let get = |slot: usize| {
            values[slot].ok_or(KeyFileError {
                line: 0,
                kind: KeyFileErrorKind::Missing(KEYS[slot]),
            })
        };
        let at = |(line, _): (usize, &str), kind| KeyFileError { line, kind };
        let hex = |slot: usize| -> Result<(usize, &str), KeyFileError> { get(slot) };
        let kd = hex(0)?;
        let key_domain_id = KeyDomainId(hex_array::<3>(KEYS[0], kd.1).map_err(|k| at(kd, k))?);
        let mi = hex(1)?;
        let msk_id = MskId(u32::from_be_bytes(
            hex_array::<4>(KEYS[1], mi.1).map_err(|k| at(mi, k))?,
        ));
        let mk = hex(2)?;
        let msk = Msk::from_bytes(hex_array::<16>(KEYS[2], mk.1).map_err(|k| at(mk, k))?);
        let number = |slot: usize| -> Result<u16, KeyFileError> {
            let v = get(slot)?;
            v.1.parse::<u16>()
                .map_err(|_| at(v, KeyFileErrorKind::BadNumber(KEYS[slot])))
        };
        let (from, to) = (number(3)?, number(4)?);
        if from > to {
            let line = get(3)?.0;
            return Err(KeyFileError {
                line,
                kind: KeyFileErrorKind::EmptyInterval,
            });
        }
        let csb_id = match values[5] {
            Some(v) => CsbId(u32::from_be_bytes(
                hex_array::<4>(KEYS[5], v.1).map_err(|k| at(v, k))?,
            )),
            None => CsbId(0),
        };
        let rand = match values[6] {
            Some(v) => Some(hex_array::<16>(KEYS[6], v.1).map_err(|k| at(v, k))?),
            None => None,
        };
        Ok(Self {
            key_domain_id,
            msk_id,
            msk,
            validity: MtkIdInterval {
                from: MtkId(from),
                to: MtkId(to),
            },
            csb_id,
            rand,
        })
    }

    /// The file's text, MSK included: for writing the file, never for logs.
    pub fn render(&self) -> String {
        let hex = |b: &[u8]| hex::encode(b);
        let mut s = String::from(
            "# mbms MSK key file, version 1 (docs/keyfile.md). Secret: keep it private.\n",
        );
        s += &format!("key_domain_id = {}\n", hex(&self.key_domain_id.0));
        s += &format!("msk_id = {}\n", hex(&self.msk_id.to_bytes()));
        s += &format!("msk = {}\n", hex(self.msk.expose()));
        s += &format!("mtk_id_from = {}\n", self.validity.from.0);
        s += &format!("mtk_id_to = {}\n", self.validity.to.0);
        s += &format!("csb_id = {}\n", hex(&self.csb_id.0.to_be_bytes()));
        if let Some(r) = &self.rand {
            s += &format!("rand = {}\n", hex(r));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# comment\nkey_domain_id = 12f410\nmsk_id = 00010002  # trailing comment\n\
        msk = 00112233445566778899AABBCCDDEEFF\nmtk_id_from = 1\nmtk_id_to = 1000\n";

    #[test]
    fn parses_renders_and_parses_again() {
        let f = MskFile::parse(GOOD).unwrap();
        assert_eq!(f.key_domain_id, KeyDomainId([0x12, 0xf4, 0x10]));
        assert_eq!(f.msk_id, MskId(0x0001_0002));
        assert_eq!(
            f.validity,
            MtkIdInterval {
                from: MtkId(1),
                to: MtkId(1000)
            }
        );
        assert_eq!((f.csb_id, f.rand), (CsbId(0), None));
        assert!(!format!("{f:?}").contains("0011223344"));
        let mut g = f.clone();
        g.rand = Some([0xa0; 16]);
        g.csb_id = CsbId(7);
        assert_eq!(MskFile::parse(&g.render()).unwrap(), g);
    }

    #[test]
    fn every_mistake_names_its_line() {
        let cases: [(&str, usize, KeyFileErrorKind); 8] = [
            (
                "msk_id = 0001",
                3,
                KeyFileErrorKind::BadHex {
                    key: "msk_id",
                    bytes: 4,
                },
            ),
            (
                "msk = zz112233445566778899aabbccddeeff",
                4,
                KeyFileErrorKind::BadHex {
                    key: "msk",
                    bytes: 16,
                },
            ),
            (
                "mtk_id_to = 70000",
                6,
                KeyFileErrorKind::BadNumber("mtk_id_to"),
            ),
            ("mtk_id_to = 0", 5, KeyFileErrorKind::EmptyInterval),
            ("msk_id 00010002", 3, KeyFileErrorKind::NotKeyValue),
            ("mks = 00", 4, KeyFileErrorKind::Unknown("mks".into())),
            (
                "key_domain_id = 12f411",
                3,
                KeyFileErrorKind::Duplicate("key_domain_id"),
            ),
            ("", 0, KeyFileErrorKind::Missing("msk_id")),
        ];
        for (replacement, line, kind) in cases {
            // Replace the line the case is about (or add a duplicate).
            let mut lines: Vec<&str> = GOOD.lines().collect();
            match replacement.split('=').next().map(str::trim) {
                Some("key_domain_id") => lines[2] = replacement,
                Some("msk_id") | Some("msk_id 00010002") | Some("") => lines[2] = replacement,
                Some("msk") | Some("mks") => lines[3] = replacement,
                Some("mtk_id_to") => lines[5] = replacement,
                _ => unreachable!(),
            }
            let text = lines.join("\n");
            assert_eq!(
                MskFile::parse(&text),
                Err(KeyFileError { line, kind }),
                "{replacement:?}"
            );
        }
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for text in [
            "=",
            "==",
            "msk=",
            "#",
            "\u{feff}msk = 00",
            "msk_id = ééééé",
            "mtk_id_from = -1",
        ] {
            let _ = MskFile::parse(text);
        }
    }
}
