//! Download protection (TS 33.246 §6.6.3, digest §7): a file object protected with the MTK in
//! an OMA DRM v2 DCF container, `application/vnd.oma.drm.dcf`.
//!
//! ```text
//! ftyp  'odcf', minor version 2, compatible 'odcf'
//! odrm  full box, 64-bit size
//!   odhe  full box: ContentType (u8 length + bytes)
//!     ohdr  full box: EncryptionMethod u8 | PaddingScheme u8 | PlaintextLength u64 |
//!           ContentIDLength u16 | RightsIssuerURLLength u16 | TextualHeadersLength u16 |
//!           ContentID | RightsIssuerURL | TextualHeaders ("Name:Value\0" each)
//!   odda  full box, 64-bit size: EncryptedDataLength u64 | IV (16) | ciphertext
//! ```
//!
//! The content key is the MTK itself (RFC 4563 §2, §7: with the Empty map MIKEY only supplies
//! the DCF key). Two methods: AES_128_CBC with RFC 2630 padding (method 1, padding 1) and
//! AES_128_CTR without padding (method 2, padding 0), the IV being the first counter block
//! (a 128-bit big-endian counter). The IV comes in as an argument: draw it at random per object.
//!
//! What the receiver needs to find its key travels in the Textual Headers, under names that are
//! our choice (digest unconfirmed point 12; `docs/profile.md`): see [`DcfKeyRef`].
//!
//! Sealing and opening stream: [`DcfSealer`] and [`DcfOpener`] take the data in chunks of any
//! size and never hold the object. DCF has no integrity check of its own: a wrong key or forged
//! bytes show as bad CBC padding or a wrong length where they can, and otherwise only in the
//! checksum the FDT gives for the object, which the receiver checks.

use aes::Aes128;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use base64::Engine as _;

use crate::keys::{KeyDomainId, MskId, Mtk, MtkId};

/// Media type of a DCF object.
pub const DCF_MEDIA_TYPE: &str = "application/vnd.oma.drm.dcf";

/// Textual header naming the Key Domain ID (6 hex digits). Our choice.
pub const HEADER_KEY_DOMAIN_ID: &str = "MBMS-Key-Domain-ID";
/// Textual header naming the MSK ID (8 hex digits). Our choice.
pub const HEADER_MSK_ID: &str = "MBMS-MSK-ID";
/// Textual header naming the MTK ID (4 hex digits). Our choice.
pub const HEADER_MTK_ID: &str = "MBMS-MTK-ID";
/// Textual header giving the URI of the `application/mikey` object that carries the MTK
/// message (the same URI as the FDT's `Decryption-KEY-URI`). Our choice.
pub const HEADER_MTK_URI: &str = "MBMS-MTK-URI";
/// Textual header carrying the MTK message itself, base64. Our choice; optional.
pub const HEADER_MTK_MESSAGE: &str = "MBMS-MTK-Message";

/// AES block size.
const BLOCK: usize = 16;
/// Size of `ftyp` as written.
const FTYP_LEN: u32 = 20;
/// Header of a full box with a 64-bit size: size32 = 1, type, largesize, version, flags.
const FULL64: usize = 20;
/// Header of a full box with a 32-bit size.
const FULL32: usize = 12;
/// The largest header (everything before the encrypted data) the opener accepts: the fields
/// are u16-counted, so a real header is far smaller.
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// Why a DCF object could not be built or opened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcfError {
    /// The input ended inside the named part.
    #[error("truncated DCF: input ends inside {0}")]
    Truncated(&'static str),
    /// Not an OMA DCF v2 file (no `ftyp` box with brand `odcf` first).
    #[error("not an OMA DCF file: {0}")]
    NotDcf(&'static str),
    /// A box whose size or contents disagree with the layout.
    #[error("bad {0} box: {1}")]
    BadBox(&'static str, &'static str),
    /// An encryption method other than AES_128_CBC (1) or AES_128_CTR (2).
    #[error("unsupported encryption method {0}")]
    UnsupportedMethod(u8),
    /// A padding scheme that does not go with the method (CBC needs RFC 2630, CTR none).
    #[error("padding scheme {padding} does not go with encryption method {method}")]
    BadPaddingScheme {
        /// EncryptionMethod.
        method: u8,
        /// PaddingScheme.
        padding: u8,
    },
    /// The header is larger than [`MAX_HEADER_LEN`] or a field than its u8/u16 length allows.
    #[error("{0} too long")]
    TooLong(&'static str),
    /// A textual header that is not `Name:Value` text, or an MBMS header with a bad value.
    #[error("bad textual header {0}")]
    BadTextualHeader(&'static str),
    /// An MBMS key header the object lacks.
    #[error("missing textual header {0}")]
    MissingTextualHeader(&'static str),
    /// The encrypted data length does not fit the plaintext length and method.
    #[error("encrypted data length {encrypted} does not fit plaintext length {plaintext}")]
    LengthMismatch {
        /// EncryptedDataLength.
        encrypted: u64,
        /// PlaintextLength.
        plaintext: u64,
    },
    /// More data than the header announced was given to a sealer or opener.
    #[error("more data than the {0} bytes announced")]
    TooMuchData(u64),
    /// The data ended before the announced length.
    #[error("data ends {missing} bytes before the announced length")]
    TooLittleData {
        /// Bytes still expected.
        missing: u64,
    },
    /// The data decrypted to another length than PlaintextLength: the wrong key (padding that
    /// happened to parse), or a forged header.
    #[error("decrypted {got} bytes, the header announced {announced}")]
    PlaintextLength {
        /// PlaintextLength.
        announced: u64,
        /// Bytes the data decrypted to.
        got: u64,
    },
    /// CBC padding that is not RFC 2630: the wrong key, or forged or damaged data.
    #[error("bad CBC padding (wrong key, or damaged data)")]
    BadPadding,
}

/// Encryption method of a DCF object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DcfMethod {
    /// AES_128_CBC with RFC 2630 padding (EncryptionMethod 1, PaddingScheme 1).
    AesCbc,
    /// AES_128_CTR, no padding (EncryptionMethod 2, PaddingScheme 0).
    AesCtr,
}

impl DcfMethod {
    /// The EncryptionMethod code.
    pub fn code(self) -> u8 {
        match self {
            Self::AesCbc => 1,
            Self::AesCtr => 2,
        }
    }

    /// The PaddingScheme code that goes with the method.
    pub fn padding_code(self) -> u8 {
        match self {
            Self::AesCbc => 1,
            Self::AesCtr => 0,
        }
    }

    /// The method of (EncryptionMethod, PaddingScheme).
    pub fn from_codes(method: u8, padding: u8) -> Result<Self, DcfError> {
        let m = match method {
            1 => Self::AesCbc,
            2 => Self::AesCtr,
            other => return Err(DcfError::UnsupportedMethod(other)),
        };
        if padding != m.padding_code() {
            return Err(DcfError::BadPaddingScheme { method, padding });
        }
        Ok(m)
    }

    /// EncryptedDataLength (IV included) of a plaintext of `len` bytes.
    pub fn encrypted_len(self, len: u64) -> Option<u64> {
        let body = match self {
            Self::AesCbc => (len / BLOCK as u64)
                .checked_add(1)?
                .checked_mul(BLOCK as u64)?,
            Self::AesCtr => len,
        };
        body.checked_add(BLOCK as u64)
    }
}

impl core::fmt::Display for DcfMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::AesCbc => "aes-128-cbc",
            Self::AesCtr => "aes-128-ctr",
        })
    }
}

/// What the receiver needs to find the key of a DCF object: Key Domain ID, MSK ID, MTK ID,
/// and where the MTK message is (a URI in the same FLUTE session) or the message itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcfKeyRef {
    /// Key Domain ID of the MSK.
    pub key_domain_id: KeyDomainId,
    /// MSK the MTK message is protected with.
    pub msk_id: MskId,
    /// MTK the object is protected with.
    pub mtk_id: MtkId,
    /// URI of the `application/mikey` object carrying the MTK message.
    pub mtk_uri: Option<String>,
    /// The MTK message itself.
    pub mtk_message: Option<Vec<u8>>,
}

impl DcfKeyRef {
    /// The textual headers that carry this reference, in a fixed order.
    pub fn textual_headers(&self) -> Vec<(String, String)> {
        let mut h = vec![
            (
                HEADER_KEY_DOMAIN_ID.to_owned(),
                hex::encode(self.key_domain_id.0),
            ),
            (HEADER_MSK_ID.to_owned(), format!("{:08x}", self.msk_id.0)),
            (HEADER_MTK_ID.to_owned(), format!("{:04x}", self.mtk_id.0)),
        ];
        if let Some(uri) = &self.mtk_uri {
            h.push((HEADER_MTK_URI.to_owned(), uri.clone()));
        }
        if let Some(msg) = &self.mtk_message {
            h.push((
                HEADER_MTK_MESSAGE.to_owned(),
                base64::engine::general_purpose::STANDARD.encode(msg),
            ));
        }
        h
    }
}

fn parse_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], DcfError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| DcfError::BadTextualHeader(what))?;
    Ok(out)
}

/// The header of a DCF object: everything but the encrypted data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcfHeader {
    /// Encryption method.
    pub method: DcfMethod,
    /// Media type of the plaintext (`odhe` ContentType, at most 255 bytes).
    pub content_type: String,
    /// ContentID (at most 65535 bytes).
    pub content_id: String,
    /// RightsIssuerURL (empty: no Rights Object is used in MBMS).
    pub rights_issuer_url: String,
    /// Textual headers, in order.
    pub textual_headers: Vec<(String, String)>,
    /// PlaintextLength.
    pub plaintext_len: u64,
}

impl DcfHeader {
    /// The value of textual header `name` (ASCII case-insensitive), the first if repeated.
    pub fn textual_header(&self, name: &str) -> Option<&str> {
        self.textual_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The MBMS key reference of the textual headers.
    pub fn key_ref(&self) -> Result<DcfKeyRef, DcfError> {
        let get = |name: &'static str| {
            self.textual_header(name)
                .map(str::trim)
                .ok_or(DcfError::MissingTextualHeader(name))
        };
        let key_domain_id = KeyDomainId(parse_hex::<3>(
            get(HEADER_KEY_DOMAIN_ID)?,
            HEADER_KEY_DOMAIN_ID,
        )?);
        let msk_id = MskId(u32::from_be_bytes(parse_hex::<4>(
            get(HEADER_MSK_ID)?,
            HEADER_MSK_ID,
        )?));
        let mtk_id = MtkId(u16::from_be_bytes(parse_hex::<2>(
            get(HEADER_MTK_ID)?,
            HEADER_MTK_ID,
        )?));
        let mtk_uri = self
            .textual_header(HEADER_MTK_URI)
            .map(|s| s.trim().to_owned());
        let mtk_message = match self.textual_header(HEADER_MTK_MESSAGE) {
            Some(b64) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| DcfError::BadTextualHeader(HEADER_MTK_MESSAGE))?,
            ),
            None => None,
        };
        Ok(DcfKeyRef {
            key_domain_id,
            msk_id,
            mtk_id,
            mtk_uri,
            mtk_message,
        })
    }

    /// EncryptedDataLength (IV included) of this object.
    pub fn encrypted_len(&self) -> Result<u64, DcfError> {
        self.method
            .encrypted_len(self.plaintext_len)
            .ok_or(DcfError::TooLong("plaintext"))
    }

    /// Total size of the DCF object.
    pub fn object_len(&self) -> Result<u64, DcfError> {
        let head = u64::try_from(self.encode()?.len()).map_err(|_| DcfError::TooLong("header"))?;
        head.checked_add(self.encrypted_len()?)
            .ok_or(DcfError::TooLong("plaintext"))
    }

    /// The bytes of the object before the encrypted data (`ftyp`, `odrm` header, `odhe`,
    /// `odda` header up to EncryptedDataLength).
    pub fn encode(&self) -> Result<Vec<u8>, DcfError> {
        let ct = self.content_type.as_bytes();
        let ct_len = u8::try_from(ct.len()).map_err(|_| DcfError::TooLong("content type"))?;
        let cid = self.content_id.as_bytes();
        let cid_len = u16::try_from(cid.len()).map_err(|_| DcfError::TooLong("content ID"))?;
        let riu = self.rights_issuer_url.as_bytes();
        let riu_len =
            u16::try_from(riu.len()).map_err(|_| DcfError::TooLong("rights issuer URL"))?;
        let mut th = Vec::new();
        for (name, value) in &self.textual_headers {
            if name.is_empty()
                || name.contains([':', '\0'])
                || value.contains('\0')
                || name.chars().any(char::is_control)
            {
                return Err(DcfError::BadTextualHeader("name or value"));
            }
            th.extend_from_slice(name.as_bytes());
            th.push(b':');
            th.extend_from_slice(value.as_bytes());
            th.push(0);
        }
        let th_len = u16::try_from(th.len()).map_err(|_| DcfError::TooLong("textual headers"))?;
        let enc_len = self.encrypted_len()?;

        let ohdr_len = FULL32 + 1 + 1 + 8 + 2 + 2 + 2 + cid.len() + riu.len() + th.len();
        let odhe_len = FULL32 + 1 + ct.len() + ohdr_len;
        let odda_len = enc_len
            .checked_add((FULL64 + 8) as u64)
            .ok_or(DcfError::TooLong("plaintext"))?;
        let odrm_len = odda_len
            .checked_add((FULL64 + odhe_len) as u64)
            .ok_or(DcfError::TooLong("plaintext"))?;
        let odhe_len32 = u32::try_from(odhe_len).map_err(|_| DcfError::TooLong("header"))?;
        let ohdr_len32 = u32::try_from(ohdr_len).map_err(|_| DcfError::TooLong("header"))?;

        let mut out = Vec::with_capacity(64 + odhe_len);
        // ftyp
        out.extend_from_slice(&FTYP_LEN.to_be_bytes());
        out.extend_from_slice(b"ftypodcf");
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(b"odcf");
        // odrm (64-bit size, version 0, flags 0)
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(b"odrm");
        out.extend_from_slice(&odrm_len.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        // odhe
        out.extend_from_slice(&odhe_len32.to_be_bytes());
        out.extend_from_slice(b"odhe");
        out.extend_from_slice(&[0; 4]);
        out.push(ct_len);
        out.extend_from_slice(ct);
        // ohdr
        out.extend_from_slice(&ohdr_len32.to_be_bytes());
        out.extend_from_slice(b"ohdr");
        out.extend_from_slice(&[0; 4]);
        out.push(self.method.code());
        out.push(self.method.padding_code());
        out.extend_from_slice(&self.plaintext_len.to_be_bytes());
        out.extend_from_slice(&cid_len.to_be_bytes());
        out.extend_from_slice(&riu_len.to_be_bytes());
        out.extend_from_slice(&th_len.to_be_bytes());
        out.extend_from_slice(cid);
        out.extend_from_slice(riu);
        out.extend_from_slice(&th);
        // odda (64-bit size), up to EncryptedDataLength
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(b"odda");
        out.extend_from_slice(&odda_len.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&enc_len.to_be_bytes());
        if out.len() > MAX_HEADER_LEN {
            return Err(DcfError::TooLong("header"));
        }
        Ok(out)
    }

    /// Parses the header at the start of `bytes` (a prefix of the object is enough). Returns
    /// the header and the offset of the encrypted data (its IV) in the object;
    /// [`DcfError::Truncated`] if `bytes` ends before that (give more).
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), DcfError> {
        let mut r = Reader { b: bytes, at: 0 };
        // ftyp first, brand odcf.
        let (ftyp_len, kind, hdr) = r.box_header("ftyp")?;
        if &kind != b"ftyp" {
            return Err(DcfError::NotDcf("the first box is not ftyp"));
        }
        if ftyp_len > 4096 {
            return Err(DcfError::BadBox("ftyp", "larger than 4096 bytes"));
        }
        let ftyp_body = r.take(
            usize::try_from(ftyp_len - hdr as u64).map_err(|_| DcfError::BadBox("ftyp", "size"))?,
            "ftyp",
        )?;
        if ftyp_body.len() < 8 || &ftyp_body[..4] != b"odcf" {
            return Err(DcfError::NotDcf("major brand is not odcf"));
        }
        // Boxes up to odrm (others, e.g. free, skipped).
        let odrm_end = loop {
            if r.at > MAX_HEADER_LEN {
                return Err(DcfError::TooLong("header"));
            }
            let start = r.at;
            let (len, kind, hdr) = r.box_header("box")?;
            if &kind == b"odrm" {
                r.full_box("odrm")?;
                break (start as u64)
                    .checked_add(len)
                    .ok_or(DcfError::BadBox("odrm", "size"))?;
            }
            let body = usize::try_from(len - hdr as u64)
                .ok()
                .filter(|b| *b <= MAX_HEADER_LEN)
                .ok_or(DcfError::TooLong("box before odrm"))?;
            r.take(body, "box")?;
        };
        // odhe
        let odhe_start = r.at;
        let (odhe_len, kind, _) = r.box_header("odhe")?;
        if &kind != b"odhe" {
            return Err(DcfError::BadBox("odrm", "odhe is not its first child"));
        }
        if odhe_len > MAX_HEADER_LEN as u64 {
            return Err(DcfError::TooLong("odhe"));
        }
        let odhe_end =
            odhe_start + usize::try_from(odhe_len).map_err(|_| DcfError::TooLong("odhe"))?;
        r.full_box("odhe")?;
        let ct_len = usize::from(r.u8("odhe")?);
        let content_type = r.text(ct_len, "odhe", "content type is not UTF-8")?;
        // ohdr
        let ohdr_start = r.at;
        let (ohdr_len, kind, _) = r.box_header("ohdr")?;
        if &kind != b"ohdr" {
            return Err(DcfError::BadBox("odhe", "ohdr is not its first child"));
        }
        let ohdr_end = ohdr_start
            .checked_add(usize::try_from(ohdr_len).map_err(|_| DcfError::TooLong("ohdr"))?)
            .ok_or(DcfError::TooLong("ohdr"))?;
        if ohdr_end > odhe_end {
            return Err(DcfError::BadBox("ohdr", "larger than its odhe"));
        }
        r.full_box("ohdr")?;
        let method_code = r.u8("ohdr")?;
        let padding_code = r.u8("ohdr")?;
        let plaintext_len = r.u64("ohdr")?;
        let cid_len = usize::from(r.u16("ohdr")?);
        let riu_len = usize::from(r.u16("ohdr")?);
        let th_len = usize::from(r.u16("ohdr")?);
        if r.at + cid_len + riu_len + th_len > ohdr_end {
            return Err(DcfError::BadBox("ohdr", "fields run past the box"));
        }
        let content_id = r.text(cid_len, "ohdr", "content ID is not UTF-8")?;
        let rights_issuer_url = r.text(riu_len, "ohdr", "rights issuer URL is not UTF-8")?;
        let th = r.take(th_len, "ohdr")?;
        let textual_headers = parse_textual_headers(th)?;
        let method = DcfMethod::from_codes(method_code, padding_code)?;
        // Children of ohdr and odhe after ohdr (e.g. grpi): skipped.
        r.skip_to(odhe_end, "odhe")?;
        // odda
        let odda_start = r.at;
        let (odda_len, kind, _) = r.box_header("odda")?;
        if &kind != b"odda" {
            return Err(DcfError::BadBox("odrm", "odda does not follow odhe"));
        }
        r.full_box("odda")?;
        let enc_len = r.u64("odda")?;
        let header = Self {
            method,
            content_type,
            content_id,
            rights_issuer_url,
            textual_headers,
            plaintext_len,
        };
        let want = header.encrypted_len()?;
        if enc_len != want {
            return Err(DcfError::LengthMismatch {
                encrypted: enc_len,
                plaintext: plaintext_len,
            });
        }
        let data_at = r.at;
        if data_at > MAX_HEADER_LEN {
            return Err(DcfError::TooLong("header"));
        }
        let odda_end = (odda_start as u64)
            .checked_add(odda_len)
            .ok_or(DcfError::BadBox("odda", "size"))?;
        if (data_at as u64).checked_add(enc_len) != Some(odda_end) {
            return Err(DcfError::BadBox(
                "odda",
                "size disagrees with EncryptedDataLength",
            ));
        }
        if odda_end > odrm_end {
            return Err(DcfError::BadBox("odda", "larger than its odrm"));
        }
        Ok((header, data_at))
    }
}

fn parse_textual_headers(th: &[u8]) -> Result<Vec<(String, String)>, DcfError> {
    let mut out = Vec::new();
    if th.is_empty() {
        return Ok(out);
    }
    // NUL-terminated "Name:Value" strings; a missing final NUL is tolerated.
    let th = th.strip_suffix(&[0]).unwrap_or(th);
    for item in th.split(|&b| b == 0) {
        let s = core::str::from_utf8(item).map_err(|_| DcfError::BadTextualHeader("not UTF-8"))?;
        let (name, value) = s
            .split_once(':')
            .ok_or(DcfError::BadTextualHeader("no ':' in Name:Value"))?;
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(DcfError::BadTextualHeader(
                "empty name or control characters in it",
            ));
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// A cursor over a prefix of the object.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DcfError> {
        let end = self.at.checked_add(n).ok_or(DcfError::Truncated(what))?;
        let s = self.b.get(self.at..end).ok_or(DcfError::Truncated(what))?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DcfError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DcfError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DcfError> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DcfError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    fn text(
        &mut self,
        n: usize,
        what: &'static str,
        bad: &'static str,
    ) -> Result<String, DcfError> {
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| DcfError::BadBox(what, bad))
    }

    /// A box header: (total size, type, header length). Size 0 ("to the end of the file") is
    /// not accepted: every box here has a known size.
    fn box_header(&mut self, what: &'static str) -> Result<(u64, [u8; 4], usize), DcfError> {
        let size32 = self.u32(what)?;
        let t = self.take(4, what)?;
        let kind = [t[0], t[1], t[2], t[3]];
        let (size, hdr) = match size32 {
            0 => return Err(DcfError::BadBox(what, "size 0 (to end of file)")),
            1 => (self.u64(what)?, 16),
            n => (u64::from(n), 8),
        };
        if size < hdr as u64 {
            return Err(DcfError::BadBox(what, "size smaller than its header"));
        }
        Ok((size, kind, hdr))
    }

    /// Version 0 and any flags of a full box.
    fn full_box(&mut self, what: &'static str) -> Result<(), DcfError> {
        if self.u32(what)? >> 24 != 0 {
            return Err(DcfError::BadBox(what, "version is not 0"));
        }
        Ok(())
    }

    fn skip_to(&mut self, end: usize, what: &'static str) -> Result<(), DcfError> {
        if end < self.at {
            return Err(DcfError::BadBox(what, "children run past the box"));
        }
        self.take(end - self.at, what).map(|_| ())
    }
}

/// The cipher of one object.
enum Cipher {
    Cbc { aes: Box<Aes128>, prev: [u8; BLOCK] },
    Ctr(Box<ctr::Ctr128BE<Aes128>>),
}

impl Cipher {
    fn new(method: DcfMethod, key: &Mtk, iv: &[u8; BLOCK]) -> Self {
        match method {
            DcfMethod::AesCbc => Self::Cbc {
                aes: Box::new(Aes128::new(GenericArray::from_slice(key.expose()))),
                prev: *iv,
            },
            DcfMethod::AesCtr => Self::Ctr(Box::new(ctr::Ctr128BE::<Aes128>::new(
                GenericArray::from_slice(key.expose()),
                GenericArray::from_slice(iv),
            ))),
        }
    }
}

/// Seals one object, streaming: [`DcfSealer::new`] gives the header bytes, [`Self::update`]
/// the encrypted data of each chunk, [`Self::finish`] the last (padded) block.
pub struct DcfSealer {
    cipher: Cipher,
    /// Plaintext bytes still expected.
    remaining: u64,
    /// CBC: the bytes of an incomplete block.
    partial: [u8; BLOCK],
    partial_len: usize,
}

impl core::fmt::Debug for DcfSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DcfSealer")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl DcfSealer {
    /// Starts an object described by `header` (its `plaintext_len` is the number of bytes
    /// that will follow), keyed by `mtk`, with `iv` (draw it at random per object). Appends
    /// the header and the IV to `out`.
    pub fn new(
        header: &DcfHeader,
        mtk: &Mtk,
        iv: [u8; BLOCK],
        out: &mut Vec<u8>,
    ) -> Result<Self, DcfError> {
        out.extend_from_slice(&header.encode()?);
        out.extend_from_slice(&iv);
        Ok(Self {
            cipher: Cipher::new(header.method, mtk, &iv),
            remaining: header.plaintext_len,
            partial: [0; BLOCK],
            partial_len: 0,
        })
    }

    /// Encrypts the next chunk, appending to `out` (CBC holds back an incomplete block).
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), DcfError> {
        let n = input.len() as u64;
        if n > self.remaining {
            return Err(DcfError::TooMuchData(self.remaining));
        }
        self.remaining -= n;
        match &mut self.cipher {
            Cipher::Ctr(c) => {
                let at = out.len();
                out.extend_from_slice(input);
                c.apply_keystream(&mut out[at..]);
            }
            Cipher::Cbc { aes, prev } => {
                out.reserve(input.len() + BLOCK);
                if self.partial_len > 0 {
                    let take = (BLOCK - self.partial_len).min(input.len());
                    self.partial[self.partial_len..self.partial_len + take]
                        .copy_from_slice(&input[..take]);
                    self.partial_len += take;
                    input = &input[take..];
                    if self.partial_len < BLOCK {
                        return Ok(());
                    }
                    let block = self.partial;
                    cbc_encrypt_block(aes, prev, &block, out);
                    self.partial_len = 0;
                }
                let mut blocks = input.chunks_exact(BLOCK);
                for b in &mut blocks {
                    let mut block = [0u8; BLOCK];
                    block.copy_from_slice(b);
                    cbc_encrypt_block(aes, prev, &block, out);
                }
                let rest = blocks.remainder();
                self.partial[..rest.len()].copy_from_slice(rest);
                self.partial_len = rest.len();
            }
        }
        Ok(())
    }

    /// Ends the object: CBC appends the padded last block. Fails if fewer bytes came than the
    /// header announced.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), DcfError> {
        if self.remaining > 0 {
            return Err(DcfError::TooLittleData {
                missing: self.remaining,
            });
        }
        if let Cipher::Cbc { aes, prev } = &mut self.cipher {
            // RFC 2630 §6.3: pad with k - (l mod k) bytes of that value.
            let pad = u8::try_from(BLOCK - self.partial_len).unwrap_or(16);
            let mut block = self.partial;
            block[self.partial_len..].fill(pad);
            cbc_encrypt_block(aes, prev, &block, out);
        }
        Ok(())
    }
}

fn cbc_encrypt_block(aes: &Aes128, prev: &mut [u8; BLOCK], block: &[u8; BLOCK], out: &mut Vec<u8>) {
    let mut x = GenericArray::clone_from_slice(block);
    for (a, p) in x.iter_mut().zip(prev.iter()) {
        *a ^= p;
    }
    aes.encrypt_block(&mut x);
    prev.copy_from_slice(&x);
    out.extend_from_slice(&x);
}

/// Opens one object, streaming: give it the encrypted data (from the header's data offset on,
/// IV first) in chunks of any size; it appends the plaintext. CBC holds back the last block
/// until [`Self::finish`], which checks the padding and the length.
pub struct DcfOpener {
    method: DcfMethod,
    key: Mtk,
    cipher: Option<Cipher>,
    /// Encrypted bytes (IV included) still expected.
    remaining: u64,
    plaintext_len: u64,
    written: u64,
    /// IV bytes, then (CBC) ciphertext bytes not yet decrypted.
    held: Vec<u8>,
    /// CBC: blocks being decrypted.
    scratch: Vec<aes::Block>,
}

impl core::fmt::Debug for DcfOpener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DcfOpener")
            .field("method", &self.method)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

/// CBC ciphertext blocks decrypted per batch (AES-NI decrypts several in parallel).
const CBC_BATCH: usize = 64;

impl DcfOpener {
    /// An opener for the object `header` describes, keyed by `mtk`.
    pub fn new(header: &DcfHeader, mtk: &Mtk) -> Result<Self, DcfError> {
        Ok(Self {
            method: header.method,
            key: mtk.clone(),
            cipher: None,
            remaining: header.encrypted_len()?,
            plaintext_len: header.plaintext_len,
            written: 0,
            held: Vec::with_capacity(BLOCK * (CBC_BATCH + 1)),
            scratch: Vec::with_capacity(CBC_BATCH),
        })
    }

    /// Decrypts the next chunk of encrypted data, appending plaintext to `out`.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), DcfError> {
        let n = input.len() as u64;
        if n > self.remaining {
            return Err(DcfError::TooMuchData(self.remaining));
        }
        self.remaining -= n;
        if self.cipher.is_none() {
            let take = (BLOCK - self.held.len()).min(input.len());
            self.held.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.held.len() < BLOCK {
                return Ok(());
            }
            let mut iv = [0u8; BLOCK];
            iv.copy_from_slice(&self.held);
            self.held.clear();
            self.cipher = Some(Cipher::new(self.method, &self.key, &iv));
        }
        let before = out.len();
        match self.cipher.as_mut() {
            Some(Cipher::Ctr(c)) => {
                out.extend_from_slice(input);
                c.apply_keystream(&mut out[before..]);
            }
            Some(Cipher::Cbc { aes, prev }) => {
                // Decrypt every whole block but the last (it may be the padded one).
                self.held.extend_from_slice(input);
                let whole = self.held.len() / BLOCK;
                let upto = if self.held.len().is_multiple_of(BLOCK) {
                    whole.saturating_sub(1) * BLOCK
                } else {
                    whole * BLOCK
                };
                for chunk in self.held[..upto].chunks(CBC_BATCH * BLOCK) {
                    cbc_decrypt(aes, prev, chunk, &mut self.scratch, out);
                }
                self.held.drain(..upto);
            }
            None => {}
        }
        self.written += (out.len() - before) as u64;
        Ok(())
    }

    /// Ends the object: checks that all the data came, the CBC padding, and the plaintext
    /// length the header announced.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), DcfError> {
        if self.remaining > 0 {
            return Err(DcfError::TooLittleData {
                missing: self.remaining,
            });
        }
        if let Some(Cipher::Cbc { aes, prev }) = self.cipher.as_mut() {
            if self.held.len() != BLOCK {
                return Err(DcfError::BadBox("odda", "CBC data is not whole blocks"));
            }
            let mut last = Vec::with_capacity(BLOCK);
            cbc_decrypt(aes, prev, &self.held, &mut self.scratch, &mut last);
            let pad = last[BLOCK - 1];
            let ok_pad = (1..=16u8).contains(&pad)
                && last[BLOCK - usize::from(pad)..].iter().all(|&b| b == pad);
            if !ok_pad {
                return Err(DcfError::BadPadding);
            }
            out.extend_from_slice(&last[..BLOCK - usize::from(pad)]);
            self.written += (BLOCK - usize::from(pad)) as u64;
        }
        if self.written != self.plaintext_len {
            return Err(DcfError::PlaintextLength {
                announced: self.plaintext_len,
                got: self.written,
            });
        }
        Ok(())
    }
}

/// CBC-decrypts whole blocks `data` (chained from `prev`), appending the plaintext.
fn cbc_decrypt(
    aes: &Aes128,
    prev: &mut [u8; BLOCK],
    data: &[u8],
    scratch: &mut Vec<aes::Block>,
    out: &mut Vec<u8>,
) {
    scratch.clear();
    scratch.extend(data.chunks_exact(BLOCK).map(GenericArray::clone_from_slice));
    aes.decrypt_blocks(scratch);
    let mut c_prev: &[u8] = prev;
    for (p, c) in scratch.iter().zip(data.chunks_exact(BLOCK)) {
        out.extend(p.iter().zip(c_prev).map(|(x, y)| x ^ y));
        c_prev = c;
    }
    if let Some(last) = data.len().checked_sub(BLOCK) {
        prev.copy_from_slice(&data[last..]);
    }
}

/// Seals a whole object in memory.
pub fn seal(
    header: &DcfHeader,
    mtk: &Mtk,
    iv: [u8; BLOCK],
    plaintext: &[u8],
) -> Result<Vec<u8>, DcfError> {
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    let mut s = DcfSealer::new(header, mtk, iv, &mut out)?;
    s.update(plaintext, &mut out)?;
    s.finish(&mut out)?;
    Ok(out)
}

/// Opens a whole object in memory with `mtk`. Returns the header and the plaintext. Bytes
/// after the object are refused. (To choose the key from the header, parse it first with
/// [`DcfHeader::parse`] and use a [`DcfOpener`].)
pub fn open(object: &[u8], mtk: &Mtk) -> Result<(DcfHeader, Vec<u8>), DcfError> {
    let (header, at) = DcfHeader::parse(object)?;
    let plaintext = open_parsed(&header, &object[at..], mtk)?;
    Ok((header, plaintext))
}

/// Opens the encrypted data `data` (from the data offset [`DcfHeader::parse`] gave to the end
/// of the object) of the object `header` describes: for a caller that parsed the header
/// already (to pick the key from it). Bytes after the object are refused.
pub fn open_parsed(header: &DcfHeader, data: &[u8], mtk: &Mtk) -> Result<Vec<u8>, DcfError> {
    let enc = header.encrypted_len()?;
    if (data.len() as u64) < enc {
        return Err(DcfError::Truncated("odda"));
    }
    if data.len() as u64 > enc {
        return Err(DcfError::BadBox("odrm", "bytes after odda"));
    }
    let mut out = Vec::with_capacity(usize::try_from(header.plaintext_len).unwrap_or(0));
    let mut o = DcfOpener::new(header, mtk)?;
    o.update(data, &mut out)?;
    o.finish(&mut out)?;
    Ok(out)
}

/// One object of a batch: header, key, IV, plaintext.
#[derive(Debug)]
pub struct DcfJob<'a> {
    /// Header (its `plaintext_len` must be the plaintext's length).
    pub header: &'a DcfHeader,
    /// Content key.
    pub mtk: &'a Mtk,
    /// IV (random per object).
    pub iv: [u8; BLOCK],
    /// The file's bytes.
    pub plaintext: &'a [u8],
}

/// Seals many objects, across rayon's pool with the `parallel` feature; results in job order.
pub fn seal_batch(jobs: &[DcfJob<'_>]) -> Vec<Result<Vec<u8>, DcfError>> {
    let one = |j: &DcfJob<'_>| seal(j.header, j.mtk, j.iv, j.plaintext);
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        jobs.par_iter().map(one).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        jobs.iter().map(one).collect()
    }
}
