//! HTTP Digest access authentication (RFC 7616, compatible with RFC 2617 clients) for the
//! BM-SC's HTTP procedures (3GPP TS 33.246 §6.3.2).
//!
//! In TS 33.246 the UE authenticates to the BM-SC with HTTP Digest, using its B-TID as the
//! user name and the MRK (MBMS Request Key) as the password. Following the GBA Ua convention
//! (TS 24.109, TS 33.220) the password string is the standard base64 encoding, with padding, of
//! the 32 MRK bytes: see [`mrk_password`].
//!
//! Server side, one request goes like this:
//!
//! 1. Without (valid) credentials, answer `401` with a [`Challenge`] whose nonce comes from
//!    [`NonceKey::issue`] (the caller supplies the time and 8 random bytes).
//! 2. With an `Authorization` header, [`Credentials::parse`] it, look the password up from the
//!    user name (the B-TID; if [`Credentials::userhash`] is set, first map the hash back to the
//!    user name, see [`Credentials::userhash_matches`]), then [`Credentials::verify`] and
//!    [`NonceKey::check`] the nonce. A correct response with a [`NonceState::Stale`] nonce is
//!    answered with a fresh challenge carrying `stale=true`.
//!
//! Stateless nonces cannot detect a replayed `nc` on their own; a server that needs replay
//! protection within the nonce lifetime keeps the highest `nc` seen per nonce itself.
//!
//! The RFC 2069 form without `qop` is never produced and never accepted. `SHA-512-256` and the
//! `username*` / `charset` extensions are not supported. Nothing in this module logs, and no
//! `Debug` or error output contains a password or key.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Longest `Authorization` / `WWW-Authenticate` value (in bytes) the parsers accept.
pub const MAX_HEADER_LEN: usize = 4096;

/// How far (in seconds) a nonce's issue time may lie in the future before
/// [`NonceKey::check`] calls it stale (tolerates clock steps between server instances).
pub const NONCE_FUTURE_SKEW_SECS: u64 = 5;

/// Length of a nonce issued by [`NonceKey::issue`]: 32 bytes in unpadded base64url.
const NONCE_LEN: usize = 43;

/// The Digest scheme name (matched case-insensitively).
const SCHEME: &str = "Digest";

/// Errors of parsing and verifying Digest headers.
///
/// No variant carries request data, so displaying one never leaks a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum DigestError {
    /// The header's authentication scheme is not `Digest`.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The header does not follow the auth-param syntax, or a value is ill-formed; the text
    /// says what was wrong.
    #[error("malformed Digest header: {0}")]
    Malformed(&'static str),
    /// A required parameter is absent.
    #[error("missing Digest parameter {0}")]
    MissingParam(&'static str),
    /// A parameter occurs more than once (RFC 7235 §2.2: each name only once).
    #[error("duplicate Digest parameter")]
    DuplicateParam,
    /// The `algorithm` is none of MD5, MD5-sess, SHA-256, SHA-256-sess.
    #[error("unsupported Digest algorithm")]
    UnsupportedAlgorithm,
    /// The `qop` is neither `auth` nor `auth-int`, or a challenge offers none of them.
    #[error("unsupported Digest qop")]
    UnsupportedQop,
    /// The credentials are for another realm than the server's.
    #[error("Digest realm does not match")]
    RealmMismatch,
    /// The credentials' `uri` differs from the request-target.
    #[error("Digest uri does not match the request-target")]
    UriMismatch,
    /// The credentials have no `qop` (the RFC 2069 form, never accepted).
    #[error("Digest credentials without qop are not accepted")]
    NoQop,
    /// The `response` is not the one the password gives.
    #[error("Digest response is wrong")]
    BadResponse,
    /// The header is longer than [`MAX_HEADER_LEN`].
    #[error("Digest header too long")]
    TooLong,
}

/// A Digest `algorithm` (RFC 7616 §3.3, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5`, the default when a header has no `algorithm` parameter.
    #[default]
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// The token as written in headers: `MD5`, `MD5-sess`, `SHA-256` or `SHA-256-sess`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether this is a `-sess` variant (A1 bound to nonce and cnonce, RFC 7616 §3.4.2).
    #[must_use]
    pub const fn is_sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// Hex digest H(parts concatenated), lowercase.
    fn hash_hex(self, parts: &[&[u8]]) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => digest_hex::<Md5>(parts),
            Self::Sha256 | Self::Sha256Sess => digest_hex::<Sha256>(parts),
        }
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    /// Parses the token case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or(DigestError::UnsupportedAlgorithm)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Digest quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication only; A2 = method:uri.
    Auth,
    /// `auth-int`: authentication with integrity of the body; A2 = method:uri:H(body).
    AuthInt,
}

impl Qop {
    /// The token as written in headers: `auth` or `auth-int`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

impl FromStr for Qop {
    type Err = DigestError;

    /// Parses the token case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("auth") {
            Ok(Self::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Ok(Self::AuthInt)
        } else {
            Err(DigestError::UnsupportedQop)
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Digest password for an MRK: the standard base64 encoding, with padding, of its 32
/// bytes (44 characters), following the GBA Ua convention of TS 24.109 / TS 33.220.
///
/// The string is zeroized when dropped.
#[must_use]
pub fn mrk_password(mrk: &[u8; 32]) -> Zeroizing<String> {
    // 32 bytes encode to exactly 44 characters: reserve them so the buffer never reallocates
    // (a reallocation would leave an unzeroized copy behind).
    let mut out = Zeroizing::new(String::with_capacity(44));
    STANDARD.encode_string(mrk, &mut out);
    out
}

/// The hashed user name of RFC 7616 §3.4.4: hex H(username ":" realm), with the hash of
/// `alg` (SHA-256 for both SHA-256 variants, MD5 for both MD5 variants).
#[must_use]
pub fn userhash(alg: Algorithm, username: &str, realm: &str) -> String {
    alg.hash_hex(&[username.as_bytes(), b":", realm.as_bytes()])
}

/// Server secret that issues and checks stateless nonces.
///
/// A nonce is `base64url-no-pad(issued_at ‖ random ‖ MAC)`: the issue time in seconds as a
/// big-endian u64 (8 bytes), 8 random bytes from the caller, and the first 16 bytes of
/// HMAC-SHA-256 under this key over those 16 bytes; 43 characters in all. The key is zeroized
/// on drop and not shown by `Debug`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct NonceKey([u8; 32]);

/// The verdict of [`NonceKey::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Issued by this key and young enough.
    Fresh,
    /// Issued by this key, but older than the maximum age or more than
    /// [`NONCE_FUTURE_SKEW_SECS`] in the future: challenge again with `stale=true`.
    Stale,
    /// Not a nonce of this key (bad encoding, length or MAC).
    Invalid,
}

impl NonceKey {
    /// Wraps a 32-byte secret (from the caller's RNG or configuration).
    #[must_use]
    pub const fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; new_from_slice cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    /// Issues a nonce at `now_secs` (seconds since an epoch of the caller's choice, the same
    /// for [`NonceKey::check`]) with 8 bytes from the caller's RNG.
    #[must_use]
    pub fn issue(&self, now_secs: u64, random: [u8; 8]) -> String {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&now_secs.to_be_bytes());
        raw[8..16].copy_from_slice(&random);
        let mut mac = self.mac();
        mac.update(&raw[..16]);
        let tag = mac.finalize().into_bytes();
        raw[16..].copy_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce at `now_secs`: [`NonceState::Fresh`] if it carries this key's MAC and was
    /// issued at most `max_age_secs` ago and at most [`NONCE_FUTURE_SKEW_SECS`] in the future,
    /// [`NonceState::Stale`] if the MAC is right but the age is not, [`NonceState::Invalid`]
    /// otherwise. The MAC is compared in constant time.
    #[must_use]
    pub fn check(&self, nonce: &str, now_secs: u64, max_age_secs: u64) -> NonceState {
        if nonce.len() != NONCE_LEN {
            return NonceState::Invalid;
        }
        let mut raw = [0u8; 32];
        // The decoder rejects non-zero trailing bits, so each nonce has one spelling.
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(32) => {}
            _ => return NonceState::Invalid,
        }
        let mut mac = self.mac();
        mac.update(&raw[..16]);
        if mac.verify_truncated_left(&raw[16..]).is_err() {
            return NonceState::Invalid;
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&raw[..8]);
        let issued = u64::from_be_bytes(issued);
        if issued.saturating_sub(now_secs) > NONCE_FUTURE_SKEW_SECS
            || now_secs.saturating_sub(issued) > max_age_secs
        {
            NonceState::Stale
        } else {
            NonceState::Fresh
        }
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

/// A Digest challenge: the value of a `WWW-Authenticate` header (RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space, e.g. the BM-SC's realm.
    pub realm: String,
    /// The server nonce (from [`NonceKey::issue`] on our side).
    pub nonce: String,
    /// Opaque data the client returns unchanged.
    pub opaque: Option<String>,
    /// The algorithm the client must use.
    pub algorithm: Algorithm,
    /// The qop values offered, in order; empty means the parameter is absent.
    pub qop: Vec<Qop>,
    /// Whether the previous request failed only because its nonce was stale.
    pub stale: bool,
}

impl Challenge {
    /// The `WWW-Authenticate` value: `Digest realm="…", qop="…", algorithm=…, nonce="…",
    /// opaque="…", stale=true` (`qop` only when non-empty, `opaque` when present, `stale`
    /// only when true). Control characters other than HTAB cannot appear in a quoted-string
    /// and are left out of quoted values.
    #[must_use]
    pub fn to_header(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str(SCHEME);
        out.push_str(" realm=");
        push_quoted(&mut out, &self.realm);
        if !self.qop.is_empty() {
            out.push_str(", qop=\"");
            for (i, q) in self.qop.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(q.as_str());
            }
            out.push('"');
        }
        out.push_str(", algorithm=");
        out.push_str(self.algorithm.as_str());
        out.push_str(", nonce=");
        push_quoted(&mut out, &self.nonce);
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        out
    }

    /// Parses one Digest challenge (a `WWW-Authenticate` value holding a single challenge).
    /// `realm` and `nonce` are required; `algorithm` defaults to MD5; unknown qop tokens and
    /// unknown parameters (`domain`, `charset`, `userhash`, …) are ignored, but a `qop` that
    /// offers neither `auth` nor `auth-int` is [`DigestError::UnsupportedQop`]; `stale` is
    /// true only for `true` (any case).
    pub fn parse(header: &str) -> Result<Self, DigestError> {
        let mut params = parse_digest(header)?;
        let realm = take(&mut params, "realm").ok_or(DigestError::MissingParam("realm"))?;
        let nonce = take(&mut params, "nonce").ok_or(DigestError::MissingParam("nonce"))?;
        let opaque = take(&mut params, "opaque");
        let algorithm = match take(&mut params, "algorithm") {
            Some(a) => a.parse()?,
            None => Algorithm::Md5,
        };
        let mut qop = Vec::new();
        if let Some(list) = take(&mut params, "qop") {
            for item in list.split(',') {
                if let Ok(q) = item.trim_matches([' ', '\t']).parse::<Qop>()
                    && !qop.contains(&q)
                {
                    qop.push(q);
                }
            }
            if qop.is_empty() {
                return Err(DigestError::UnsupportedQop);
            }
        }
        let stale = take(&mut params, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true"));
        Ok(Self {
            realm,
            nonce,
            opaque,
            algorithm,
            qop,
            stale,
        })
    }
}

/// Digest credentials: the value of an `Authorization` header (RFC 7616 §3.4).
///
/// Holds no password; `response` is the hex digest, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (the B-TID), or H(username:realm) when `userhash` is set.
    pub username: String,
    /// The realm of the challenge.
    pub realm: String,
    /// The server nonce of the challenge.
    pub nonce: String,
    /// The request-target the client used (`uri` parameter).
    pub uri: String,
    /// The request digest, lowercase hex.
    pub response: String,
    /// The algorithm (MD5 when the header has none).
    pub algorithm: Algorithm,
    /// The client nonce (present whenever `qop` is).
    pub cnonce: Option<String>,
    /// The nonce count (present whenever `qop` is); written as 8 hex digits.
    pub nc: Option<u32>,
    /// The qop the client chose; `None` is the RFC 2069 form, which `verify` rejects.
    pub qop: Option<Qop>,
    /// Opaque data returned from the challenge.
    pub opaque: Option<String>,
    /// Whether `username` is the hash of RFC 7616 §3.4.4 (see [`userhash`]).
    pub userhash: bool,
}

impl Credentials {
    /// Parses an `Authorization` value (`Digest …`): quoted-string and token values, in any
    /// order, with the list syntax of RFC 7235 (commas, optional whitespace, empty list
    /// elements; an obsolete line fold counts as whitespace). `username`, `realm`, `nonce`,
    /// `uri` and `response` are required, and `cnonce` and `nc` when `qop` is present; `nc` is
    /// 8 hex digits; `response` must be hex (stored lowercase). Unknown parameters are ignored.
    /// A duplicate parameter, a scheme other than Digest, or more than [`MAX_HEADER_LEN`]
    /// bytes is an error.
    pub fn parse(header: &str) -> Result<Self, DigestError> {
        let mut params = parse_digest(header)?;
        let username =
            take(&mut params, "username").ok_or(DigestError::MissingParam("username"))?;
        let realm = take(&mut params, "realm").ok_or(DigestError::MissingParam("realm"))?;
        let nonce = take(&mut params, "nonce").ok_or(DigestError::MissingParam("nonce"))?;
        let uri = take(&mut params, "uri").ok_or(DigestError::MissingParam("uri"))?;
        let mut response =
            take(&mut params, "response").ok_or(DigestError::MissingParam("response"))?;
        if response.is_empty() || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::Malformed("response is not hex"));
        }
        response.make_ascii_lowercase();
        let algorithm = match take(&mut params, "algorithm") {
            Some(a) => a.parse()?,
            None => Algorithm::Md5,
        };
        let qop = take(&mut params, "qop")
            .map(|q| q.parse::<Qop>())
            .transpose()?;
        let cnonce = take(&mut params, "cnonce");
        let nc = take(&mut params, "nc").map(|n| parse_nc(&n)).transpose()?;
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(DigestError::MissingParam("cnonce"));
            }
            if nc.is_none() {
                return Err(DigestError::MissingParam("nc"));
            }
        }
        let opaque = take(&mut params, "opaque");
        let userhash = match take(&mut params, "userhash") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(DigestError::Malformed("userhash is not true or false")),
        };
        Ok(Self {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce,
            nc,
            qop,
            opaque,
            userhash,
        })
    }

    /// Client side: answers `ch` for a request `method` `uri` (for UE clients and tests).
    ///
    /// Picks `auth-int` if the challenge offers it and a body is given (or `auth` is not
    /// offered; a missing body then counts as empty), else `auth`. A challenge without `qop`
    /// is answered with `auth` too: the RFC 2069 form is never produced. `nc` and `cnonce`
    /// are the caller's; `opaque` is copied from the challenge. To send a hashed user name
    /// (RFC 7616 §3.4.4), replace `username` by [`userhash`] afterwards and set `userhash`:
    /// the response is computed over the plain name either way.
    #[must_use]
    #[allow(clippy::too_many_arguments)] // the signature is the documented API
    pub fn answer(
        ch: &Challenge,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        body: Option<&[u8]>,
        cnonce: &str,
        nc: u32,
    ) -> Self {
        let offers_int = ch.qop.contains(&Qop::AuthInt);
        let offers_auth = ch.qop.is_empty() || ch.qop.contains(&Qop::Auth);
        let qop = if offers_int && (body.is_some() || !offers_auth) {
            Qop::AuthInt
        } else {
            Qop::Auth
        };
        let response = compute_response(&ResponseInput {
            algorithm: ch.algorithm,
            username,
            realm: &ch.realm,
            password,
            nonce: &ch.nonce,
            cnonce,
            nc,
            qop,
            method,
            uri,
            body: body.unwrap_or_default(),
        });
        Self {
            username: username.to_owned(),
            realm: ch.realm.clone(),
            nonce: ch.nonce.clone(),
            uri: uri.to_owned(),
            response,
            algorithm: ch.algorithm,
            cnonce: Some(cnonce.to_owned()),
            nc: Some(nc),
            qop: Some(qop),
            opaque: ch.opaque.clone(),
            userhash: false,
        }
    }

    /// The `Authorization` value, in the order of RFC 7616 §3.9.1: `Digest username="…",
    /// realm="…", uri="…", algorithm=…, nonce="…", nc=…, cnonce="…", qop=…, response="…",
    /// opaque="…", userhash=true` (optional parameters only when present, `userhash` only
    /// when true). `algorithm`, `nc` and `qop` are tokens, the rest quoted-strings; control
    /// characters other than HTAB are left out of quoted values.
    #[must_use]
    pub fn to_header(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str(SCHEME);
        out.push_str(" username=");
        push_quoted(&mut out, &self.username);
        out.push_str(", realm=");
        push_quoted(&mut out, &self.realm);
        out.push_str(", uri=");
        push_quoted(&mut out, &self.uri);
        out.push_str(", algorithm=");
        out.push_str(self.algorithm.as_str());
        out.push_str(", nonce=");
        push_quoted(&mut out, &self.nonce);
        if let Some(nc) = self.nc {
            out.push_str(", nc=");
            out.push_str(&format_nc(nc));
        }
        if let Some(cnonce) = &self.cnonce {
            out.push_str(", cnonce=");
            push_quoted(&mut out, cnonce);
        }
        if let Some(qop) = self.qop {
            out.push_str(", qop=");
            out.push_str(qop.as_str());
        }
        out.push_str(", response=");
        push_quoted(&mut out, &self.response);
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        if self.userhash {
            out.push_str(", userhash=true");
        }
        out
    }

    /// Server side: checks the credentials of a request against the user's `password`.
    ///
    /// In order: `realm` must equal the server's `realm` ([`DigestError::RealmMismatch`]),
    /// `uri` must equal the request-target `request_uri` exactly
    /// ([`DigestError::UriMismatch`]), `qop` must be present ([`DigestError::NoQop`]; with it
    /// `cnonce` and `nc`, else [`DigestError::MissingParam`]); then the response is recomputed
    /// (over `body` for `auth-int`) and compared in constant time
    /// ([`DigestError::BadResponse`]).
    ///
    /// `self.username` must be the plain user name: when `self.userhash` is set the server
    /// first maps the hash back (e.g. with [`Credentials::userhash_matches`] over its users)
    /// and stores the resolved name in `username` before calling this.
    ///
    /// The nonce (see [`NonceKey::check`]), `opaque` and `nc` replay are the caller's to check.
    pub fn verify(
        &self,
        realm: &str,
        method: &str,
        request_uri: &str,
        password: &str,
        body: &[u8],
    ) -> Result<(), DigestError> {
        if self.realm != realm {
            return Err(DigestError::RealmMismatch);
        }
        if self.uri != request_uri {
            return Err(DigestError::UriMismatch);
        }
        let qop = self.qop.ok_or(DigestError::NoQop)?;
        let cnonce = self
            .cnonce
            .as_deref()
            .ok_or(DigestError::MissingParam("cnonce"))?;
        let nc = self.nc.ok_or(DigestError::MissingParam("nc"))?;
        let expected = compute_response(&ResponseInput {
            algorithm: self.algorithm,
            username: &self.username,
            realm,
            password,
            nonce: &self.nonce,
            cnonce,
            nc,
            qop,
            method,
            uri: request_uri,
            body,
        });
        let received = self.response.to_ascii_lowercase();
        if bool::from(expected.as_bytes().ct_eq(received.as_bytes())) {
            Ok(())
        } else {
            Err(DigestError::BadResponse)
        }
    }

    /// Whether the (hashed) `username` of these credentials is [`userhash`] of `candidate`
    /// in their realm and algorithm, compared in constant time. For servers resolving
    /// `userhash=true` credentials.
    #[must_use]
    pub fn userhash_matches(&self, candidate: &str) -> bool {
        let expected = userhash(self.algorithm, candidate, &self.realm);
        let received = self.username.to_ascii_lowercase();
        bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
    }
}

/// Everything the request digest depends on.
struct ResponseInput<'a> {
    algorithm: Algorithm,
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    nc: u32,
    qop: Qop,
    method: &'a str,
    uri: &'a str,
    body: &'a [u8],
}

/// RFC 7616 §3.4.1–3.4.3: response = KD(H(A1), nonce:nc:cnonce:qop:H(A2)), lowercase hex.
fn compute_response(i: &ResponseInput<'_>) -> String {
    let alg = i.algorithm;
    // H(A1) is password-equivalent: keep it in zeroizing buffers. The password is fed to the
    // hash directly, never copied into a formatted string.
    let mut ha1 = Zeroizing::new(alg.hash_hex(&[
        i.username.as_bytes(),
        b":",
        i.realm.as_bytes(),
        b":",
        i.password.as_bytes(),
    ]));
    if alg.is_sess() {
        ha1 = Zeroizing::new(alg.hash_hex(&[
            ha1.as_bytes(),
            b":",
            i.nonce.as_bytes(),
            b":",
            i.cnonce.as_bytes(),
        ]));
    }
    let ha2 = match i.qop {
        Qop::Auth => alg.hash_hex(&[i.method.as_bytes(), b":", i.uri.as_bytes()]),
        Qop::AuthInt => {
            let hbody = alg.hash_hex(&[i.body]);
            alg.hash_hex(&[
                i.method.as_bytes(),
                b":",
                i.uri.as_bytes(),
                b":",
                hbody.as_bytes(),
            ])
        }
    };
    let nc = format_nc(i.nc);
    alg.hash_hex(&[
        ha1.as_bytes(),
        b":",
        i.nonce.as_bytes(),
        b":",
        nc.as_bytes(),
        b":",
        i.cnonce.as_bytes(),
        b":",
        i.qop.as_str().as_bytes(),
        b":",
        ha2.as_bytes(),
    ])
}

fn digest_hex<D: sha2::Digest>(parts: &[&[u8]]) -> String {
    let mut d = D::new();
    for p in parts {
        d.update(p);
    }
    hex::encode(d.finalize())
}

fn format_nc(nc: u32) -> String {
    format!("{nc:08x}")
}

fn parse_nc(s: &str) -> Result<u32, DigestError> {
    // from_str_radix alone would accept a sign and fewer digits.
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DigestError::Malformed("nc is not 8 hex digits"));
    }
    u32::from_str_radix(s, 16).map_err(|_| DigestError::Malformed("nc is not 8 hex digits"))
}

/// Appends `v` as a quoted-string, escaping `"` and `\`; control characters other than HTAB
/// (CR, LF, NUL, …) cannot be represented and are left out, so no header can be injected.
fn push_quoted(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(c),
            c if c.is_ascii_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Removes and returns the value of parameter `name` (lowercase).
fn take(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let i = params.iter().position(|(n, _)| n == name)?;
    Some(params.swap_remove(i).1)
}

/// tchar of RFC 7230 §3.2.6.
const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// A byte cursor over a header value.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Whether whitespace (SP, HTAB, or an obsolete line fold) starts here.
    fn at_ows(&self) -> bool {
        self.ows_len() > 0
    }

    fn ows_len(&self) -> usize {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        match rest {
            [b' ' | b'\t', ..] => 1,
            [b'\r', b'\n', b' ' | b'\t', ..] => 3,
            [b'\n', b' ' | b'\t', ..] => 2,
            _ => 0,
        }
    }

    /// Skips OWS / BWS (RFC 7230 §3.2.3), counting an obs-fold as whitespace (§3.2.4).
    fn skip_ows(&mut self) {
        loop {
            let n = self.ows_len();
            if n == 0 {
                break;
            }
            self.pos += n;
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        // tchars are ASCII, so this slice is valid UTF-8.
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default()
    }

    /// Reads a quoted-string (RFC 7230 §3.2.6) after its opening quote, unescaping
    /// quoted-pairs.
    fn quoted(&mut self) -> Result<String, DigestError> {
        let mut out = Vec::new();
        loop {
            let b = self
                .peek()
                .ok_or(DigestError::Malformed("unterminated quoted-string"))?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self
                        .peek()
                        .ok_or(DigestError::Malformed("unterminated quoted-string"))?;
                    if is_ctl(e) {
                        return Err(DigestError::Malformed("control character in quoted-string"));
                    }
                    self.pos += 1;
                    out.push(e);
                }
                b if is_ctl(b) => {
                    return Err(DigestError::Malformed("control character in quoted-string"));
                }
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| DigestError::Malformed("invalid UTF-8"))
    }
}

/// A control character not allowed in a quoted-string (HTAB is).
const fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Parses `Digest` followed by a list of auth-params (RFC 7235 §2.1, §4.1–4.2) into
/// lowercase names and unquoted values.
fn parse_digest(header: &str) -> Result<Vec<(String, String)>, DigestError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong);
    }
    let mut c = Cursor {
        s: header.as_bytes(),
        pos: 0,
    };
    c.skip_ows();
    let scheme = c.token();
    if scheme.is_empty() {
        return Err(DigestError::Malformed("no auth-scheme"));
    }
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(DigestError::NotDigest);
    }
    if !c.at_end() && !c.at_ows() {
        return Err(DigestError::Malformed("no space after the auth-scheme"));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    loop {
        c.skip_ows();
        match c.peek() {
            None => break,
            Some(b',') => {
                // An empty list element (RFC 7230 §7).
                c.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = c.token().to_ascii_lowercase();
        if name.is_empty() {
            return Err(DigestError::Malformed("expected a parameter name"));
        }
        c.skip_ows();
        if c.peek() != Some(b'=') {
            return Err(DigestError::Malformed(
                "expected '=' after a parameter name",
            ));
        }
        c.pos += 1;
        c.skip_ows();
        let value = if c.peek() == Some(b'"') {
            c.pos += 1;
            c.quoted()?
        } else {
            let t = c.token();
            if t.is_empty() {
                return Err(DigestError::Malformed(
                    "expected a token or quoted-string value",
                ));
            }
            t.to_owned()
        };
        if !seen.insert(name.clone()) {
            return Err(DigestError::DuplicateParam);
        }
        params.push((name, value));
        c.skip_ows();
        match c.peek() {
            None => break,
            Some(b',') => c.pos += 1,
            Some(_) => return Err(DigestError::Malformed("expected ',' between parameters")),
        }
    }
    Ok(params)
}
