//! The XML bodies of the HTTP procedures between UE and BM-SC: user service registration and
//! deregistration (TS 33.246 §6.3.2.1A/§6.3.2.1B), the MSK request (§6.3.2.2.1) and the
//! responses carrying one status code per requested item (§6.3.2.4). The schemas are those of
//! TS 26.346 §11.
//!
//! Both directions are provided: the BM-SC parses requests and writes responses, a UE client
//! writes requests and parses responses.
//!
//! Most element names and namespaces are **not** confirmed by our spec digest. Every name is a
//! `pub const` below whose doc comment says whether it is confirmed or our documented default,
//! so that a correction is a one-line change.
//!
//! # Parsing untrusted bodies
//!
//! The parsers never panic and answer every defect with a typed [`XmlError`]:
//! - UTF-8 only (a UTF-8 BOM is tolerated, a declared encoding other than UTF-8 is refused);
//! - a DOCTYPE anywhere is refused ([`XmlError::Doctype`]); no entity is ever expanded, only the
//!   five predefined entities and character references are resolved;
//! - the root's local name and namespace must match; prefixed and default namespace
//!   declarations are equivalent;
//! - elements of another namespace are skipped (the schemas allow `xs:any ##other`), elements
//!   without a namespace or unknown elements of our namespace are refused;
//! - at least one and at most [`MAX_ITEMS`] items, nesting at most [`MAX_DEPTH`] deep;
//! - content after the root element, a second root or an unclosed document are refused;
//! - duplicate items are kept in order: a response has one item per requested item.
//!
//! Attributes are ignored.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mbms_core::keys::{KeyDomainId, MskId};
use quick_xml::NsReader;
use quick_xml::events::{BytesDecl, BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;

// ---------------------------------------------------------------------------------------------
// Media types (TS 26.346 §11 / IANA registrations of the 3GPP MBMS media types).
// ---------------------------------------------------------------------------------------------

/// Media type of the registration request body (TS 33.246 §6.3.2.1A). Our documented default,
/// not confirmed by the spec digest.
pub const REGISTER_MEDIA_TYPE: &str = "application/mbms-register+xml";
/// Media type of the deregistration request body (TS 33.246 §6.3.2.1B). Our documented default,
/// not confirmed by the spec digest.
pub const DEREGISTER_MEDIA_TYPE: &str = "application/mbms-deregister+xml";
/// Media type of the (de)registration response body (TS 33.246 §6.3.2.1A/B, §6.3.2.4). Our
/// documented default, not confirmed by the spec digest.
pub const REGISTER_RESPONSE_MEDIA_TYPE: &str = "application/mbms-register-response+xml";
/// Media type of the MSK request body (TS 33.246 §6.3.2.2.1). Our documented default, not
/// confirmed by the spec digest.
pub const MSK_REQUEST_MEDIA_TYPE: &str = "application/mbms-msk+xml";
/// Media type of the MSK response body (TS 33.246 §6.3.2.2.1, §6.3.2.4). Our documented
/// default, not confirmed by the spec digest.
pub const MSK_RESPONSE_MEDIA_TYPE: &str = "application/mbms-msk-response+xml";

// ---------------------------------------------------------------------------------------------
// Root elements and namespaces (TS 26.346 §11).
// ---------------------------------------------------------------------------------------------

/// Root element of the registration request. Our documented default, not confirmed.
pub const REGISTER_ROOT: &str = "mbmsUserServiceRegistration";
/// Namespace of the registration request. Our documented default, not confirmed.
pub const REGISTER_NS: &str = "urn:3GPP:metadata:2005:MBMS:mbmsRegister";
/// Root element of the deregistration request. Our documented default, not confirmed.
pub const DEREGISTER_ROOT: &str = "mbmsUserServiceDeregistration";
/// Namespace of the deregistration request. Our documented default, not confirmed.
pub const DEREGISTER_NS: &str = "urn:3GPP:metadata:2005:MBMS:mbmsDeregister";
/// Root element of the (de)registration response. Our documented default, not confirmed.
pub const REGISTER_RESPONSE_ROOT: &str = "mbmsUserServiceRegistrationResponse";
/// Namespace of the (de)registration response. Our documented default, not confirmed.
pub const REGISTER_RESPONSE_NS: &str = "urn:3GPP:metadata:2005:MBMS:mbmsRegisterResponse";
/// Root element of the MSK request. Our documented default, not confirmed.
pub const MSK_REQUEST_ROOT: &str = "mbmsMSKRequest";
/// Namespace of the MSK request. Our documented default, not confirmed.
pub const MSK_REQUEST_NS: &str = "urn:3GPP:metadata:2005:MBMS:mskRequest";
/// Root element of the MSK response. Our documented default, not confirmed.
pub const MSK_RESPONSE_ROOT: &str = "mbmsMSKResponse";
/// Namespace of the MSK response. **Confirmed**: TS 26.346 Annex C.12 / §11.8.
pub const MSK_RESPONSE_NS: &str = "urn:3GPP:metadata:2005:MBMS:mskResponse";

// ---------------------------------------------------------------------------------------------
// Child elements (all in the namespace of their root). None of these names is confirmed.
// ---------------------------------------------------------------------------------------------

/// Element carrying one user service ID URI, in (de)registration requests and in
/// `serviceResponse`. Our documented default, not confirmed.
pub const SERVICE_ID_ELEMENT: &str = "serviceID";
/// Element carrying one base64 key identifier (Key Domain ID ‖ MSK ID), in MSK requests and in
/// `keyResponse`. Our documented default, not confirmed.
pub const KEY_ID_ELEMENT: &str = "keyID";
/// Element of the (de)registration response holding one service ID and its status code. Our
/// documented default, not confirmed.
pub const SERVICE_RESPONSE_ELEMENT: &str = "serviceResponse";
/// Element of the MSK response holding one key ID and its status code. Our documented default,
/// not confirmed.
pub const KEY_RESPONSE_ELEMENT: &str = "keyResponse";
/// Element carrying a 3-digit status code (TS 33.246 §6.3.2.4). Our documented default, not
/// confirmed.
pub const STATUS_CODE_ELEMENT: &str = "statusCode";

// ---------------------------------------------------------------------------------------------
// Limits.
// ---------------------------------------------------------------------------------------------

/// Most items (service IDs, key IDs or responses) accepted in one body. Our own limit.
pub const MAX_ITEMS: usize = 256;
/// Deepest element nesting accepted; the root is at depth 1. Our own limit.
pub const MAX_DEPTH: usize = 8;
/// Longest service ID accepted, in bytes after trimming surrounding whitespace. Our own limit.
pub const MAX_SERVICE_ID_LEN: usize = 1024;
/// Longest text accepted in any leaf element before trimming, in bytes after unescaping. Our
/// own limit; bounds the work done on a single element.
pub const MAX_TEXT_LEN: usize = 4096;
/// Length of a decoded key ID: Key Domain ID (3) ‖ MSK ID (4) (TS 33.246 §6.3.2.2.1).
pub const KEY_ID_LEN: usize = 7;

/// The XML declaration every written body starts with.
const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

// ---------------------------------------------------------------------------------------------
// Types.
// ---------------------------------------------------------------------------------------------

/// Which of the two service-list procedures a body belongs to (TS 33.246 §6.3.2.1A/B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Procedure {
    /// User service registration (§6.3.2.1A).
    Register,
    /// User service deregistration (§6.3.2.1B).
    Deregister,
}

impl Procedure {
    /// The root element name of the request body.
    pub fn root_element(self) -> &'static str {
        match self {
            Self::Register => REGISTER_ROOT,
            Self::Deregister => DEREGISTER_ROOT,
        }
    }

    /// The namespace of the request body.
    pub fn namespace(self) -> &'static str {
        match self {
            Self::Register => REGISTER_NS,
            Self::Deregister => DEREGISTER_NS,
        }
    }

    /// The media type of the request body; both procedures answer with
    /// [`REGISTER_RESPONSE_MEDIA_TYPE`].
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Register => REGISTER_MEDIA_TYPE,
            Self::Deregister => DEREGISTER_MEDIA_TYPE,
        }
    }
}

/// The body of a registration or deregistration request: the user service IDs
/// (TS 33.246 §6.3.2.1A/B).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceList {
    /// The service ID URIs, in request order (duplicates kept).
    pub service_ids: Vec<String>,
}

/// One requested MSK: Key Domain ID ‖ MSK ID (TS 33.246 §6.3.2.2.1), carried as the base64 of
/// its 7 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRef {
    /// Key Domain ID (MCC ‖ MNC), 3 bytes.
    pub key_domain_id: KeyDomainId,
    /// MSK ID: Key Group (2) ‖ Key Number (2).
    pub msk_id: MskId,
}

impl KeyRef {
    /// The 7-byte wire form: Key Domain ID (3) ‖ MSK ID (4, big-endian).
    pub fn to_bytes(&self) -> [u8; KEY_ID_LEN] {
        let [d0, d1, d2] = self.key_domain_id.0;
        let [m0, m1, m2, m3] = self.msk_id.to_bytes();
        [d0, d1, d2, m0, m1, m2, m3]
    }

    /// Rebuilds a key reference from its 7-byte wire form.
    pub fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> Self {
        let [d0, d1, d2, m0, m1, m2, m3] = bytes;
        Self {
            key_domain_id: KeyDomainId([d0, d1, d2]),
            msk_id: MskId(u32::from_be_bytes([m0, m1, m2, m3])),
        }
    }

    /// The `keyID` text: standard base64 with padding of the 7 wire bytes.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.to_bytes())
    }

    /// Parses a `keyID` text: standard base64 with padding, surrounding XML whitespace ignored,
    /// decoding to exactly [`KEY_ID_LEN`] bytes.
    pub fn from_base64(s: &str) -> Result<Self, XmlError> {
        let bytes = BASE64
            .decode(trim_xml_ws(s))
            .map_err(|_| XmlError::InvalidBase64)?;
        let wire: [u8; KEY_ID_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| XmlError::KeyIdLength(bytes.len()))?;
        Ok(Self::from_bytes(wire))
    }
}

/// The body of an MSK request (TS 33.246 §6.3.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MskRequest {
    /// The requested keys, in request order (duplicates kept).
    pub keys: Vec<KeyRef>,
}

/// A per-item status code (TS 33.246 §6.3.2.4): an HTTP-style 3-digit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 200: success.
    pub const OK: Self = Self(200);
    /// 400: the request for this item is malformed.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401: authentication failed.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403: the user is not allowed this item.
    pub const FORBIDDEN: Self = Self(403);
    /// 404: unknown service or key.
    pub const NOT_FOUND: Self = Self(404);
    /// 500: internal error of the BM-SC.
    pub const INTERNAL: Self = Self(500);
    /// 503: service unavailable.
    pub const UNAVAILABLE: Self = Self(503);

    /// Parses a status code text: exactly three ASCII digits, 100..=599, surrounding XML
    /// whitespace ignored.
    pub fn parse(s: &str) -> Result<Self, XmlError> {
        let t = trim_xml_ws(s);
        if t.len() != 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(XmlError::InvalidStatusCode);
        }
        match t.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(Self(code)),
            _ => Err(XmlError::InvalidStatusCode),
        }
    }
}

impl core::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One item of a (de)registration response: a service ID and its status (TS 33.246 §6.3.2.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceStatus {
    /// The service ID as requested.
    pub service_id: String,
    /// The outcome for that service.
    pub status: StatusCode,
}

/// One item of an MSK response: a key and its status (TS 33.246 §6.3.2.2.1, §6.3.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyStatus {
    /// The key as requested.
    pub key: KeyRef,
    /// The outcome for that key.
    pub status: StatusCode,
}

/// Why a body was refused. Parsing never panics; every defect maps to one of these.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlError {
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The XML declaration names an encoding other than UTF-8.
    #[error("declared encoding {0:?} is not UTF-8")]
    UnsupportedEncoding(String),
    /// The XML is not well-formed (message from the tokenizer or ours).
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A DOCTYPE declaration (DTD) was found; DTDs are never processed.
    #[error("DOCTYPE declarations are not allowed")]
    Doctype,
    /// A reference to an entity other than the five predefined ones.
    #[error("unknown entity reference &{0};")]
    UnknownEntity(String),
    /// A character that XML 1.0 does not allow, raw or as a character reference.
    #[error("character U+{0:04X} is not allowed in XML")]
    InvalidChar(u32),
    /// An element uses a namespace prefix that is not declared.
    #[error("namespace prefix {0:?} is not declared")]
    UnknownPrefix(String),
    /// The document has no root element.
    #[error("no root element")]
    NoRoot,
    /// The root element has the wrong local name.
    #[error("root element is <{found}>, expected <{expected}>")]
    WrongRoot {
        /// The expected local name.
        expected: &'static str,
        /// The local name found.
        found: String,
    },
    /// The root element has the right name but the wrong namespace (or none).
    #[error("root namespace is {found:?}, expected {expected:?}")]
    WrongNamespace {
        /// The expected namespace.
        expected: &'static str,
        /// The namespace found, `None` when the root has no namespace.
        found: Option<String>,
    },
    /// An element of our namespace that is not allowed here, an element without namespace, or
    /// any element inside a text-only element.
    #[error("unexpected element <{0}>")]
    UnexpectedElement(String),
    /// Non-whitespace character data where only elements are allowed.
    #[error("unexpected character data")]
    UnexpectedText,
    /// Elements nested deeper than allowed.
    #[error("elements nested deeper than {max}")]
    TooDeep {
        /// The limit ([`MAX_DEPTH`]).
        max: usize,
    },
    /// The document ends before its root element is closed.
    #[error("document ends inside an element")]
    Unclosed,
    /// Content (character data, an element, a second root) after the root element.
    #[error("content after the root element")]
    TrailingContent,
    /// The root holds no item.
    #[error("no items")]
    NoItems,
    /// The root holds more items than allowed.
    #[error("more than {max} items")]
    TooManyItems {
        /// The limit ([`MAX_ITEMS`]).
        max: usize,
    },
    /// A response item lacks a required child.
    #[error("<{element}> lacks <{field}>")]
    MissingField {
        /// The item element.
        element: &'static str,
        /// The missing child.
        field: &'static str,
    },
    /// A response item has a child twice.
    #[error("<{element}> has <{field}> twice")]
    DuplicateField {
        /// The item element.
        element: &'static str,
        /// The repeated child.
        field: &'static str,
    },
    /// A service ID is empty after trimming.
    #[error("empty service ID")]
    EmptyServiceId,
    /// A service ID is longer than allowed after trimming.
    #[error("service ID longer than {max} bytes")]
    ServiceIdTooLong {
        /// The limit ([`MAX_SERVICE_ID_LEN`]).
        max: usize,
    },
    /// The text of a leaf element is longer than allowed.
    #[error("text of <{element}> longer than {max} bytes")]
    TextTooLong {
        /// The element.
        element: &'static str,
        /// The limit ([`MAX_TEXT_LEN`]).
        max: usize,
    },
    /// A key ID is not standard padded base64.
    #[error("key ID is not valid base64")]
    InvalidBase64,
    /// A key ID decodes to the wrong number of bytes.
    #[error("key ID decodes to {0} bytes, expected 7")]
    KeyIdLength(usize),
    /// A status code is not three digits in 100..=599.
    #[error("invalid status code")]
    InvalidStatusCode,
}

// ---------------------------------------------------------------------------------------------
// Public parse and write functions.
// ---------------------------------------------------------------------------------------------

/// Parses a registration or deregistration request body (TS 33.246 §6.3.2.1A/B).
pub fn parse_service_list(p: Procedure, body: &[u8]) -> Result<ServiceList, XmlError> {
    let doc = DocSpec {
        root: p.root_element(),
        ns: p.namespace(),
        item: SERVICE_ID_ELEMENT,
    };
    let service_ids = parse_items(body, &doc, |w, empty| {
        parse_service_id(&w.leaf_text(SERVICE_ID_ELEMENT, empty)?)
    })?;
    Ok(ServiceList { service_ids })
}

/// Writes a registration or deregistration request body (TS 33.246 §6.3.2.1A/B). The writer
/// does not validate: an empty list or an invalid service ID gives a body the parser refuses.
pub fn write_service_list(p: Procedure, list: &ServiceList) -> String {
    let mut out = open_document(p.root_element(), p.namespace());
    for id in &list.service_ids {
        push_leaf(&mut out, 1, SERVICE_ID_ELEMENT, id);
    }
    close_document(out, p.root_element())
}

/// Parses an MSK request body (TS 33.246 §6.3.2.2.1).
pub fn parse_msk_request(body: &[u8]) -> Result<MskRequest, XmlError> {
    let doc = DocSpec {
        root: MSK_REQUEST_ROOT,
        ns: MSK_REQUEST_NS,
        item: KEY_ID_ELEMENT,
    };
    let keys = parse_items(body, &doc, |w, empty| {
        KeyRef::from_base64(&w.leaf_text(KEY_ID_ELEMENT, empty)?)
    })?;
    Ok(MskRequest { keys })
}

/// Writes an MSK request body (TS 33.246 §6.3.2.2.1).
pub fn write_msk_request(req: &MskRequest) -> String {
    let mut out = open_document(MSK_REQUEST_ROOT, MSK_REQUEST_NS);
    for key in &req.keys {
        push_leaf(&mut out, 1, KEY_ID_ELEMENT, &key.to_base64());
    }
    close_document(out, MSK_REQUEST_ROOT)
}

/// Writes a (de)registration response body: one `serviceResponse` per item
/// (TS 33.246 §6.3.2.1A/B, §6.3.2.4).
pub fn write_register_response(items: &[ServiceStatus]) -> String {
    let mut out = open_document(REGISTER_RESPONSE_ROOT, REGISTER_RESPONSE_NS);
    for item in items {
        push_response_item(
            &mut out,
            SERVICE_RESPONSE_ELEMENT,
            SERVICE_ID_ELEMENT,
            &item.service_id,
            item.status,
        );
    }
    close_document(out, REGISTER_RESPONSE_ROOT)
}

/// Parses a (de)registration response body (TS 33.246 §6.3.2.1A/B, §6.3.2.4). Inside each
/// `serviceResponse`, `serviceID` and `statusCode` must occur exactly once, in either order.
pub fn parse_register_response(body: &[u8]) -> Result<Vec<ServiceStatus>, XmlError> {
    let doc = DocSpec {
        root: REGISTER_RESPONSE_ROOT,
        ns: REGISTER_RESPONSE_NS,
        item: SERVICE_RESPONSE_ELEMENT,
    };
    let item = ItemSpec {
        element: SERVICE_RESPONSE_ELEMENT,
        id_field: SERVICE_ID_ELEMENT,
    };
    parse_items(body, &doc, |w, empty| {
        let (service_id, status) = w.response_item(&item, empty, parse_service_id)?;
        Ok(ServiceStatus { service_id, status })
    })
}

/// Writes an MSK response body: one `keyResponse` per item (TS 33.246 §6.3.2.2.1, §6.3.2.4).
pub fn write_msk_response(items: &[KeyStatus]) -> String {
    let mut out = open_document(MSK_RESPONSE_ROOT, MSK_RESPONSE_NS);
    for item in items {
        push_response_item(
            &mut out,
            KEY_RESPONSE_ELEMENT,
            KEY_ID_ELEMENT,
            &item.key.to_base64(),
            item.status,
        );
    }
    close_document(out, MSK_RESPONSE_ROOT)
}

/// Parses an MSK response body (TS 33.246 §6.3.2.2.1, §6.3.2.4). Inside each `keyResponse`,
/// `keyID` and `statusCode` must occur exactly once, in either order.
pub fn parse_msk_response(body: &[u8]) -> Result<Vec<KeyStatus>, XmlError> {
    let doc = DocSpec {
        root: MSK_RESPONSE_ROOT,
        ns: MSK_RESPONSE_NS,
        item: KEY_RESPONSE_ELEMENT,
    };
    let item = ItemSpec {
        element: KEY_RESPONSE_ELEMENT,
        id_field: KEY_ID_ELEMENT,
    };
    parse_items(body, &doc, |w, empty| {
        let (key, status) = w.response_item(&item, empty, KeyRef::from_base64)?;
        Ok(KeyStatus { key, status })
    })
}

// ---------------------------------------------------------------------------------------------
// Writing.
// ---------------------------------------------------------------------------------------------

/// Starts a body: XML declaration and the root start tag with its default namespace.
fn open_document(root: &str, ns: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(XML_DECL);
    out.push('<');
    out.push_str(root);
    out.push_str(" xmlns=\"");
    push_escaped(&mut out, ns);
    out.push_str("\">\n");
    out
}

/// Ends a body with the root end tag.
fn close_document(mut out: String, root: &str) -> String {
    push_end_tag(&mut out, root);
    out.push('\n');
    out
}

/// Appends `<name>escaped text</name>` on its own indented line.
fn push_leaf(out: &mut String, indent: usize, name: &str, text: &str) {
    push_indent(out, indent);
    push_start_tag(out, name);
    push_escaped(out, text);
    push_end_tag(out, name);
    out.push('\n');
}

/// Appends one response item: `<element><id_field>id</id_field><statusCode>…</statusCode>`.
fn push_response_item(out: &mut String, element: &str, id_field: &str, id: &str, s: StatusCode) {
    push_indent(out, 1);
    push_start_tag(out, element);
    out.push('\n');
    push_leaf(out, 2, id_field, id);
    push_leaf(out, 2, STATUS_CODE_ELEMENT, &s.to_string());
    push_indent(out, 1);
    push_end_tag(out, element);
    out.push('\n');
}

fn push_indent(out: &mut String, levels: usize) {
    for _ in 0..levels {
        out.push_str("  ");
    }
}

fn push_start_tag(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn push_end_tag(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Escapes text and attribute values: the five markup characters become predefined entities
/// and control characters (including TAB, LF, CR) become character references, so that
/// end-of-line normalisation cannot alter them.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c < ' ' => {
                out.push_str("&#");
                out.push_str(&u32::from(c).to_string());
                out.push(';');
            }
            c => out.push(c),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: value checks.
// ---------------------------------------------------------------------------------------------

/// XML whitespace (XML 1.0 production `S`).
fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn trim_xml_ws(s: &str) -> &str {
    s.trim_matches(is_xml_ws)
}

fn is_all_ws(s: &str) -> bool {
    s.chars().all(is_xml_ws)
}

/// A character allowed by XML 1.0 production `Char` (surrogates cannot occur in a `str`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

fn check_chars(s: &str) -> Result<(), XmlError> {
    match s.chars().find(|&c| !is_xml_char(c)) {
        Some(c) => Err(XmlError::InvalidChar(u32::from(c))),
        None => Ok(()),
    }
}

/// Validates a service ID text: trimmed, non-empty, at most [`MAX_SERVICE_ID_LEN`] bytes.
fn parse_service_id(text: &str) -> Result<String, XmlError> {
    let id = trim_xml_ws(text);
    if id.is_empty() {
        return Err(XmlError::EmptyServiceId);
    }
    if id.len() > MAX_SERVICE_ID_LEN {
        return Err(XmlError::ServiceIdTooLong {
            max: MAX_SERVICE_ID_LEN,
        });
    }
    Ok(id.to_owned())
}

fn malformed(e: impl core::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Parsing: documents.
// ---------------------------------------------------------------------------------------------

/// The shape of a body: a root holding a list of one kind of item element.
struct DocSpec {
    root: &'static str,
    ns: &'static str,
    item: &'static str,
}

/// The shape of a response item: an ID child and a status code child.
struct ItemSpec {
    element: &'static str,
    id_field: &'static str,
}

/// Parses a whole body: prolog, root with its items, epilog.
fn parse_items<'i, T>(
    body: &'i [u8],
    doc: &DocSpec,
    mut read_item: impl FnMut(&mut Walker<'i>, bool) -> Result<T, XmlError>,
) -> Result<Vec<T>, XmlError> {
    let mut w = Walker::new(body, doc.ns)?;
    let root_empty = w.open_root(doc)?;
    let mut items = Vec::new();
    if !root_empty {
        while let Some(empty) = w.next_item(doc)? {
            if items.len() == MAX_ITEMS {
                return Err(XmlError::TooManyItems { max: MAX_ITEMS });
            }
            items.push(read_item(&mut w, empty)?);
        }
    }
    w.finish()?;
    if items.is_empty() {
        return Err(XmlError::NoItems);
    }
    Ok(items)
}

/// An element name, classified against the document's namespace.
enum Name {
    /// In the document's namespace: the local name.
    Ours(String),
    /// In another namespace: namespace and local name.
    Foreign(String, String),
    /// In no namespace: the local name.
    Unqualified(String),
}

impl Name {
    fn local(&self) -> &str {
        match self {
            Self::Ours(l) | Self::Foreign(_, l) | Self::Unqualified(l) => l,
        }
    }
}

/// A simplified event.
enum Ev<'i> {
    /// A start tag (`empty` for `<x/>`).
    Open { name: Name, empty: bool },
    /// Character data, unescaped. `literal` is false for CDATA and references.
    Text { text: Cow<'i, str>, literal: bool },
    /// An end tag.
    Close,
    /// End of input.
    Eof,
}

/// A namespace-aware event source over one body that enforces the document-wide rules (no
/// DOCTYPE, UTF-8 only, depth limit, legal characters, predefined entities only).
struct Walker<'i> {
    reader: NsReader<&'i [u8]>,
    ns: &'static str,
    depth: usize,
    started: bool,
}

impl<'i> Walker<'i> {
    fn new(body: &'i [u8], ns: &'static str) -> Result<Self, XmlError> {
        let text = core::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.allow_unmatched_ends = false;
        config.allow_dangling_amp = false;
        config.trim_text(false);
        Ok(Self {
            reader,
            ns,
            depth: 0,
            started: false,
        })
    }

    /// The next simplified event.
    fn next(&mut self) -> Result<Ev<'i>, XmlError> {
        loop {
            let (res, event) = self.reader.read_resolved_event().map_err(malformed)?;
            let ns = classify_ns(res, self.ns);
            let first = !self.started;
            self.started = true;
            match event {
                Event::Start(e) => {
                    let name = ns.name(&e)?;
                    self.enter(self.depth + 1)?;
                    self.depth += 1;
                    return Ok(Ev::Open { name, empty: false });
                }
                Event::Empty(e) => {
                    let name = ns.name(&e)?;
                    self.enter(self.depth + 1)?;
                    return Ok(Ev::Open { name, empty: true });
                }
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Ev::Close);
                }
                Event::Text(t) => return text_event(t.xml10_content(), true),
                Event::CData(c) => return text_event(c.xml10_content(), false),
                Event::GeneralRef(r) => return resolve_reference(&r),
                Event::Decl(d) => check_decl(&d, first)?,
                Event::Comment(_) | Event::PI(_) => {}
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Eof => return Ok(Ev::Eof),
            }
        }
    }

    /// Refuses an element that would sit at `depth`, deeper than [`MAX_DEPTH`].
    fn enter(&self, depth: usize) -> Result<(), XmlError> {
        if depth > MAX_DEPTH {
            return Err(XmlError::TooDeep { max: MAX_DEPTH });
        }
        Ok(())
    }

    /// Reads the prolog and the root start tag; returns whether the root is empty (`<r/>`).
    fn open_root(&mut self, doc: &DocSpec) -> Result<bool, XmlError> {
        loop {
            match self.next()? {
                Ev::Text { text, literal } if literal && is_all_ws(&text) => {}
                Ev::Text { .. } => return Err(XmlError::UnexpectedText),
                Ev::Open { name, empty } => {
                    check_root(&name, doc)?;
                    return Ok(empty);
                }
                Ev::Close => return Err(malformed("end tag before the root element")),
                Ev::Eof => return Err(XmlError::NoRoot),
            }
        }
    }

    /// Advances to the next item element directly inside the root, skipping whitespace and
    /// foreign elements. Returns `Some(empty)` for an item, `None` once the root is closed.
    fn next_item(&mut self, doc: &DocSpec) -> Result<Option<bool>, XmlError> {
        loop {
            match self.next()? {
                Ev::Open { name, empty } => match name {
                    Name::Ours(local) if local == doc.item => return Ok(Some(empty)),
                    Name::Foreign(..) => self.skip(empty)?,
                    other => return Err(XmlError::UnexpectedElement(other.local().to_owned())),
                },
                Ev::Text { text, .. } => require_ws(&text)?,
                Ev::Close => return Ok(None),
                Ev::Eof => return Err(XmlError::Unclosed),
            }
        }
    }

    /// Reads after the root: only whitespace, comments and processing instructions.
    fn finish(&mut self) -> Result<(), XmlError> {
        loop {
            match self.next()? {
                Ev::Eof => return Ok(()),
                Ev::Text { text, literal } if literal && is_all_ws(&text) => {}
                _ => return Err(XmlError::TrailingContent),
            }
        }
    }

    /// Skips the content of a foreign element whose start tag was just read.
    fn skip(&mut self, empty: bool) -> Result<(), XmlError> {
        let mut open = usize::from(!empty);
        while open > 0 {
            match self.next()? {
                Ev::Open { empty: false, .. } => open += 1,
                Ev::Close => open -= 1,
                Ev::Open { .. } | Ev::Text { .. } => {}
                Ev::Eof => return Err(XmlError::Unclosed),
            }
        }
        Ok(())
    }

    /// Reads the text of a text-only element whose start tag was just read.
    fn leaf_text(&mut self, element: &'static str, empty: bool) -> Result<String, XmlError> {
        let mut out = String::new();
        if empty {
            return Ok(out);
        }
        loop {
            match self.next()? {
                Ev::Text { text, .. } => {
                    if out.len().saturating_add(text.len()) > MAX_TEXT_LEN {
                        return Err(XmlError::TextTooLong {
                            element,
                            max: MAX_TEXT_LEN,
                        });
                    }
                    out.push_str(&text);
                }
                Ev::Open { name, .. } => {
                    return Err(XmlError::UnexpectedElement(name.local().to_owned()));
                }
                Ev::Close => return Ok(out),
                Ev::Eof => return Err(XmlError::Unclosed),
            }
        }
    }

    /// Reads a response item whose start tag was just read: exactly one ID child (parsed by
    /// `parse_id`) and one `statusCode`, in either order; foreign elements are skipped.
    fn response_item<T>(
        &mut self,
        item: &ItemSpec,
        empty: bool,
        parse_id: impl Fn(&str) -> Result<T, XmlError>,
    ) -> Result<(T, StatusCode), XmlError> {
        let mut id = None;
        let mut status = None;
        if !empty {
            while let Some((local, child_empty)) = self.next_child()? {
                if local == item.id_field {
                    let value = parse_id(&self.leaf_text(item.id_field, child_empty)?)?;
                    set_once(&mut id, value, item.element, item.id_field)?;
                } else if local == STATUS_CODE_ELEMENT {
                    let text = self.leaf_text(STATUS_CODE_ELEMENT, child_empty)?;
                    let value = StatusCode::parse(&text)?;
                    set_once(&mut status, value, item.element, STATUS_CODE_ELEMENT)?;
                } else {
                    return Err(XmlError::UnexpectedElement(local));
                }
            }
        }
        let id = id.ok_or(XmlError::MissingField {
            element: item.element,
            field: item.id_field,
        })?;
        let status = status.ok_or(XmlError::MissingField {
            element: item.element,
            field: STATUS_CODE_ELEMENT,
        })?;
        Ok((id, status))
    }

    /// Advances to the next child of our namespace inside an element-only element, skipping
    /// whitespace and foreign elements. Returns `None` once the element is closed.
    fn next_child(&mut self) -> Result<Option<(String, bool)>, XmlError> {
        loop {
            match self.next()? {
                Ev::Open { name, empty } => match name {
                    Name::Ours(local) => return Ok(Some((local, empty))),
                    Name::Foreign(..) => self.skip(empty)?,
                    Name::Unqualified(local) => return Err(XmlError::UnexpectedElement(local)),
                },
                Ev::Text { text, .. } => require_ws(&text)?,
                Ev::Close => return Ok(None),
                Ev::Eof => return Err(XmlError::Unclosed),
            }
        }
    }
}

/// Stores `value` in an empty slot, refusing a second occurrence.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    element: &'static str,
    field: &'static str,
) -> Result<(), XmlError> {
    if slot.is_some() {
        return Err(XmlError::DuplicateField { element, field });
    }
    *slot = Some(value);
    Ok(())
}

fn require_ws(text: &str) -> Result<(), XmlError> {
    if is_all_ws(text) {
        Ok(())
    } else {
        Err(XmlError::UnexpectedText)
    }
}

/// Checks the root's local name, then its namespace.
fn check_root(name: &Name, doc: &DocSpec) -> Result<(), XmlError> {
    if name.local() != doc.root {
        return Err(XmlError::WrongRoot {
            expected: doc.root,
            found: name.local().to_owned(),
        });
    }
    let found = match name {
        Name::Ours(_) => return Ok(()),
        Name::Foreign(ns, _) => Some(ns.clone()),
        Name::Unqualified(_) => None,
    };
    Err(XmlError::WrongNamespace {
        expected: doc.ns,
        found,
    })
}

/// The namespace of an event, detached from the reader's borrow.
enum ResolvedNs {
    Ours,
    Other(String),
    None,
    UnknownPrefix(String),
}

fn classify_ns(res: ResolveResult<'_>, ours: &str) -> ResolvedNs {
    match res {
        ResolveResult::Bound(ns) if ns.as_ref() == ours.as_bytes() => ResolvedNs::Ours,
        ResolveResult::Bound(ns) => {
            ResolvedNs::Other(String::from_utf8_lossy(ns.as_ref()).into_owned())
        }
        ResolveResult::Unbound => ResolvedNs::None,
        ResolveResult::Unknown(prefix) => {
            ResolvedNs::UnknownPrefix(String::from_utf8_lossy(&prefix).into_owned())
        }
    }
}

impl ResolvedNs {
    /// Classifies the name of a start tag, after checking that its attributes are well-formed
    /// (their values are otherwise ignored).
    fn name(self, start: &BytesStart<'_>) -> Result<Name, XmlError> {
        for attr in start.attributes().with_checks(true) {
            attr.map_err(malformed)?;
        }
        let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        match self {
            Self::Ours => Ok(Name::Ours(local)),
            Self::Other(ns) => Ok(Name::Foreign(ns, local)),
            Self::None => Ok(Name::Unqualified(local)),
            Self::UnknownPrefix(prefix) => Err(XmlError::UnknownPrefix(prefix)),
        }
    }
}

fn text_event<'i, E: core::fmt::Display>(
    content: Result<Cow<'i, str>, E>,
    literal: bool,
) -> Result<Ev<'i>, XmlError> {
    let text = content.map_err(malformed)?;
    check_chars(&text)?;
    Ok(Ev::Text { text, literal })
}

/// Resolves a character reference or one of the five predefined entities; nothing else.
fn resolve_reference<'i>(r: &BytesRef<'i>) -> Result<Ev<'i>, XmlError> {
    let text = if r.is_char_ref() {
        let c = r
            .resolve_char_ref()
            .map_err(malformed)?
            .ok_or_else(|| malformed("bad character reference"))?;
        if !is_xml_char(c) {
            return Err(XmlError::InvalidChar(u32::from(c)));
        }
        Cow::Owned(c.to_string())
    } else {
        let name = r.decode().map_err(malformed)?;
        match quick_xml::escape::resolve_xml_entity(&name) {
            Some(s) => Cow::Borrowed(s),
            None => return Err(XmlError::UnknownEntity(name.into_owned())),
        }
    };
    Ok(Ev::Text {
        text,
        literal: false,
    })
}

/// Accepts an XML declaration only as the very first thing, and only for UTF-8.
fn check_decl(decl: &BytesDecl<'_>, first: bool) -> Result<(), XmlError> {
    if !first {
        return Err(malformed("XML declaration not at the start"));
    }
    match decl.encoding() {
        None => Ok(()),
        Some(Err(e)) => Err(malformed(e)),
        Some(Ok(enc)) if enc.eq_ignore_ascii_case(b"utf-8") => Ok(()),
        Some(Ok(enc)) => Err(XmlError::UnsupportedEncoding(
            String::from_utf8_lossy(&enc).into_owned(),
        )),
    }
}
