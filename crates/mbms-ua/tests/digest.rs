//! HTTP Digest (RFC 7616 / RFC 2617) for the BM-SC: published examples, independently computed
//! vectors, error cases, stateless nonces and parser robustness.
//!
//! Sources of the expected values:
//! - RFC 7616 §3.9.1 (MD5 and SHA-256 responses, and the literal header texts) and RFC 2617
//!   §3.5 (MD5, password "Circle Of Life"). Both response values were also recomputed with
//!   Python's hashlib (script below) and agree.
//! - Everything marked "Python" was computed once, independently of this crate, with the
//!   following standard-library script (Python 3, `python3 vec.py`); its output is pasted
//!   into the constants below:
//!
//! ```text
//! import base64, hashlib, hmac
//! def H(alg, b): return getattr(hashlib, alg)(b).hexdigest()
//! def resp(alg, sess, u, p, realm, nonce, nc, cn, qop, m, uri, body=b""):
//!     ha1 = H(alg, f"{u}:{realm}:{p}".encode())
//!     if sess: ha1 = H(alg, f"{ha1}:{nonce}:{cn}".encode())
//!     ha2 = H(alg, f"{m}:{uri}".encode()) if qop == "auth" \
//!         else H(alg, f"{m}:{uri}:{H(alg, body)}".encode())
//!     return H(alg, f"{ha1}:{nonce}:{nc:08x}:{cn}:{qop}:{ha2}".encode())
//! R = ("Mufasa", "Circle of Life", "http-auth@example.org",
//!      "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", 1,
//!      "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
//! BODY = b'<?xml version="1.0" encoding="UTF-8"?>\n<requestToRegister><serviceId>' \
//!        b'urn:example:svc:1</serviceId></requestToRegister>\n'
//! for alg, sess, qop, m, uri, body in [
//!     ("md5", False, "auth-int", "POST", "/keymanagement?requesttype=register", BODY),
//!     ("sha256", False, "auth-int", "POST", "/keymanagement?requesttype=register", BODY),
//!     ("md5", True, "auth", "GET", "/dir/index.html", b""),
//!     ("sha256", True, "auth", "GET", "/dir/index.html", b""),
//!     ("md5", True, "auth-int", "POST", "/keymanagement?requesttype=register", BODY),
//!     ("sha256", True, "auth-int", "POST", "/keymanagement?requesttype=register", BODY)]:
//!     print(alg, sess, qop, resp(alg, sess, *R[:4], R[4], R[5], qop, m, uri, body))
//! mrk = bytes(range(32)); pw = base64.b64encode(mrk).decode(); print("mrk_password", pw)
//! print("mbms", resp("sha256", False,
//!     "Zm9vYmFyYmF6cXV4MTIzNA==@bsf.mnc001.mcc001.pub.3gppnetwork.org", pw,
//!     "bmsc.mnc001.mcc001.pub.3gppnetwork.org", "AAAAAGVTxAABAgMEBQYHCA", 2, "0a4f113b",
//!     "auth-int", "POST", "/keymanagement?requesttype=register", BODY))
//! print("userhash", H("sha256", b"Mufasa:http-auth@example.org"),
//!       H("md5", b"Mufasa:http-auth@example.org"))
//! key = bytes(range(0x80, 0xa0)); msg = (1700000000).to_bytes(8, "big") + bytes(range(1, 9))
//! print("nonce", base64.urlsafe_b64encode(
//!     msg + hmac.new(key, msg, hashlib.sha256).digest()[:16]).rstrip(b"=").decode())
//! ```

use mbms_ua::digest::{
    Algorithm, Challenge, Credentials, DigestError, MAX_HEADER_LEN, NONCE_FUTURE_SKEW_SECS,
    NonceKey, NonceState, Qop, mrk_password, userhash,
};
use proptest::prelude::*;

// RFC 7616 §3.9.1 inputs.
const USER: &str = "Mufasa";
const PASS: &str = "Circle of Life";
const REALM: &str = "http-auth@example.org";
const URI: &str = "/dir/index.html";
const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
const RFC7616_MD5: &str = "8ca523f5e9506fed4657c9700eebdbec";
const RFC7616_SHA256: &str = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

// RFC 7616 §3.9.1, the two WWW-Authenticate values as printed (after "WWW-Authenticate: "),
// with the RFC's line folds kept as obs-fold (LF + spaces).
const RFC7616_CHALLENGE_SHA256: &str = "Digest
    realm=\"http-auth@example.org\",
    qop=\"auth, auth-int\",
    algorithm=SHA-256,
    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",
    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
const RFC7616_CHALLENGE_MD5: &str = "Digest
    realm=\"http-auth@example.org\",
    qop=\"auth, auth-int\",
    algorithm=MD5,
    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",
    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

// RFC 7616 §3.9.1, the MD5 Authorization value as printed.
const RFC7616_AUTHZ_MD5: &str = "Digest username=\"Mufasa\",
    realm=\"http-auth@example.org\",
    uri=\"/dir/index.html\",
    algorithm=MD5,
    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",
    nc=00000001,
    cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",
    qop=auth,
    response=\"8ca523f5e9506fed4657c9700eebdbec\",
    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

// RFC 7616 §3.9.1, the SHA-256 Authorization value. The RFC prints the 64-digit response
// split over two lines (a typesetting wrap inside the quoted-string); it is joined here.
const RFC7616_AUTHZ_SHA256: &str = "Digest username=\"Mufasa\",
    realm=\"http-auth@example.org\",
    uri=\"/dir/index.html\",
    algorithm=SHA-256,
    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",
    nc=00000001,
    cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",
    qop=auth,
    response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",
    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

// RFC 2617 §3.5, as printed (indentation shortened).
const RFC2617_CHALLENGE: &str = "Digest
        realm=\"testrealm@host.com\",
        qop=\"auth,auth-int\",
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
const RFC2617_AUTHZ: &str = "Digest username=\"Mufasa\",
        realm=\"testrealm@host.com\",
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",
        uri=\"/dir/index.html\",
        qop=auth,
        nc=00000001,
        cnonce=\"0a4f113b\",
        response=\"6629fae49393a05397450978507c4ef1\",
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

// Python (see the module comment).
const BODY: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<requestToRegister><serviceId>urn:example:svc:1</serviceId></requestToRegister>\n";
const KM_URI: &str = "/keymanagement?requesttype=register";

/// Unfolds the RFC's line folds (LF + indentation) into single spaces.
fn unfold(s: &str) -> String {
    s.split('\n')
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join(" ")
}

fn rfc7616_challenge(algorithm: Algorithm, qop: Vec<Qop>) -> Challenge {
    Challenge {
        realm: REALM.into(),
        nonce: NONCE.into(),
        opaque: Some(OPAQUE.into()),
        algorithm,
        qop,
        stale: false,
    }
}

fn rfc7616_creds(algorithm: Algorithm) -> Credentials {
    let ch = rfc7616_challenge(algorithm, vec![Qop::Auth]);
    Credentials::answer(&ch, USER, PASS, "GET", URI, None, CNONCE, 1)
}

// ---------------------------------------------------------------- published examples

#[test]
fn rfc7616_3_9_1_md5() {
    let ch = Challenge::parse(RFC7616_CHALLENGE_MD5).unwrap();
    assert_eq!(
        ch,
        rfc7616_challenge(Algorithm::Md5, vec![Qop::Auth, Qop::AuthInt])
    );
    // No body: the client picks qop=auth, as in the RFC.
    let c = Credentials::answer(&ch, USER, PASS, "GET", URI, None, CNONCE, 1);
    assert_eq!(c.response, RFC7616_MD5);
    assert_eq!(c.qop, Some(Qop::Auth));
    assert_eq!(c.to_header(), unfold(RFC7616_AUTHZ_MD5));
    assert_eq!(c.verify(REALM, "GET", URI, PASS, b""), Ok(()));
}

#[test]
fn rfc7616_3_9_1_sha256() {
    let ch = Challenge::parse(RFC7616_CHALLENGE_SHA256).unwrap();
    assert_eq!(
        ch,
        rfc7616_challenge(Algorithm::Sha256, vec![Qop::Auth, Qop::AuthInt])
    );
    let c = Credentials::answer(&ch, USER, PASS, "GET", URI, None, CNONCE, 1);
    assert_eq!(c.response, RFC7616_SHA256);
    assert_eq!(c.to_header(), unfold(RFC7616_AUTHZ_SHA256));
    assert_eq!(c.verify(REALM, "GET", URI, PASS, b""), Ok(()));
}

#[test]
fn rfc7616_3_9_1_challenge_to_header_is_the_rfc_text() {
    for (alg, text) in [
        (Algorithm::Sha256, RFC7616_CHALLENGE_SHA256),
        (Algorithm::Md5, RFC7616_CHALLENGE_MD5),
    ] {
        let ch = rfc7616_challenge(alg, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(ch.to_header(), unfold(text));
    }
}

#[test]
fn rfc7616_3_9_1_parse_literal_authorization_headers() {
    for (alg, text, response) in [
        (Algorithm::Md5, RFC7616_AUTHZ_MD5, RFC7616_MD5),
        (Algorithm::Sha256, RFC7616_AUTHZ_SHA256, RFC7616_SHA256),
    ] {
        let c = Credentials::parse(text).unwrap();
        let want = Credentials {
            username: USER.into(),
            realm: REALM.into(),
            nonce: NONCE.into(),
            uri: URI.into(),
            response: response.into(),
            algorithm: alg,
            cnonce: Some(CNONCE.into()),
            nc: Some(1),
            qop: Some(Qop::Auth),
            opaque: Some(OPAQUE.into()),
            userhash: false,
        };
        assert_eq!(c, want);
        assert_eq!(c.verify(REALM, "GET", URI, PASS, b""), Ok(()));
        // The same text with CRLF folds, and unfolded.
        assert_eq!(
            Credentials::parse(&text.replace('\n', "\r\n")).unwrap(),
            want
        );
        assert_eq!(Credentials::parse(&unfold(text)).unwrap(), want);
        // RFC 2617's capital-O password (RFC 7616 erratum 4495) does not verify.
        assert_eq!(
            c.verify(REALM, "GET", URI, "Circle Of Life", b""),
            Err(DigestError::BadResponse)
        );
    }
}

#[test]
fn rfc2617_3_5_example() {
    let ch = Challenge::parse(RFC2617_CHALLENGE).unwrap();
    assert_eq!(ch.realm, "testrealm@host.com");
    assert_eq!(
        ch.algorithm,
        Algorithm::Md5,
        "no algorithm parameter means MD5"
    );
    assert_eq!(ch.qop, vec![Qop::Auth, Qop::AuthInt]);
    assert_eq!(
        ch.opaque.as_deref(),
        Some("5ccc069c403ebaf9f0171e9517f40e41")
    );
    let mine = Credentials::answer(
        &ch,
        "Mufasa",
        "Circle Of Life",
        "GET",
        URI,
        None,
        "0a4f113b",
        1,
    );
    assert_eq!(mine.response, "6629fae49393a05397450978507c4ef1");

    let theirs = Credentials::parse(RFC2617_AUTHZ).unwrap();
    assert_eq!(theirs.algorithm, Algorithm::Md5);
    assert_eq!(theirs.response, "6629fae49393a05397450978507c4ef1");
    assert_eq!(theirs.nc, Some(1));
    assert_eq!(theirs.cnonce.as_deref(), Some("0a4f113b"));
    assert_eq!(
        theirs.verify("testrealm@host.com", "GET", URI, "Circle Of Life", b""),
        Ok(())
    );
    // Same fields, but our header always carries algorithm: compare parsed forms.
    assert_eq!(Credentials::parse(&mine.to_header()).unwrap(), theirs);
}

// ---------------------------------------------------------------- computed vectors

#[test]
fn auth_int_cross_checked_with_python() {
    for (alg, want) in [
        (Algorithm::Md5, "664f751d903ddf91c1b55e9d02e088e8"),
        (
            Algorithm::Sha256,
            "771602a4bf8dfe095b8fdecc96d75dfa149150f4b731d4cef16e32b82f2b230a",
        ),
    ] {
        let ch = rfc7616_challenge(alg, vec![Qop::Auth, Qop::AuthInt]);
        let c = Credentials::answer(&ch, USER, PASS, "POST", KM_URI, Some(BODY), CNONCE, 1);
        assert_eq!(c.qop, Some(Qop::AuthInt));
        assert_eq!(c.response, want, "{alg}");
        assert_eq!(c.verify(REALM, "POST", KM_URI, PASS, BODY), Ok(()));
        // The body is covered: one changed byte, or an empty body, fails.
        let mut tampered = BODY.to_vec();
        tampered[50] ^= 1;
        assert_eq!(
            c.verify(REALM, "POST", KM_URI, PASS, &tampered),
            Err(DigestError::BadResponse)
        );
        assert_eq!(
            c.verify(REALM, "POST", KM_URI, PASS, b""),
            Err(DigestError::BadResponse)
        );
        let parsed = Credentials::parse(&c.to_header()).unwrap();
        assert_eq!(parsed, c);
        assert_eq!(parsed.verify(REALM, "POST", KM_URI, PASS, BODY), Ok(()));
    }
}

#[test]
fn sess_variants_cross_checked_with_python() {
    let cases = [
        (
            Algorithm::Md5Sess,
            "GET",
            URI,
            None,
            "e783283f46242139c486a698fec7211d",
        ),
        (
            Algorithm::Sha256Sess,
            "GET",
            URI,
            None,
            "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7",
        ),
        (
            Algorithm::Md5Sess,
            "POST",
            KM_URI,
            Some(BODY),
            "7c1eed3b0acc993249eafdef3787d00c",
        ),
        (
            Algorithm::Sha256Sess,
            "POST",
            KM_URI,
            Some(BODY),
            "0557028465648de7c136a86b82daeeb53c4a77b3ae658b8ccd12c4721aa83ac6",
        ),
    ];
    for (alg, method, uri, body, want) in cases {
        let ch = rfc7616_challenge(alg, vec![Qop::Auth, Qop::AuthInt]);
        let c = Credentials::answer(&ch, USER, PASS, method, uri, body, CNONCE, 1);
        assert_eq!(c.response, want, "{alg} {method}");
        let header = c.to_header();
        assert!(
            header.contains(&format!("algorithm={}", alg.as_str())),
            "{header}"
        );
        let parsed = Credentials::parse(&header).unwrap();
        assert_eq!(parsed.algorithm, alg);
        let body = body.unwrap_or_default();
        assert_eq!(parsed.verify(REALM, method, uri, PASS, body), Ok(()));
        // -sess binds H(A1) to the cnonce: another cnonce gives another response.
        let mut other = parsed.clone();
        other.cnonce = Some("x".into());
        assert_eq!(
            other.verify(REALM, method, uri, PASS, body),
            Err(DigestError::BadResponse)
        );
        // And differs from the non-sess algorithm.
        let mut plain = parsed.clone();
        plain.algorithm = if alg == Algorithm::Md5Sess {
            Algorithm::Md5
        } else {
            Algorithm::Sha256
        };
        assert_eq!(
            plain.verify(REALM, method, uri, PASS, body),
            Err(DigestError::BadResponse)
        );
    }
}

#[test]
fn mrk_password_known_value() {
    let mrk: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    // Python: base64.b64encode(bytes(range(32)))
    assert_eq!(
        mrk_password(&mrk).as_str(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    assert_eq!(mrk_password(&[0xff; 32]).len(), 44);
    assert!(mrk_password(&[0xff; 32]).ends_with('='));
    assert!(mrk_password(&[0xfb; 32]).contains('+') || mrk_password(&[0xfb; 32]).contains('/'));
}

#[test]
fn mbms_b_tid_and_mrk_end_to_end() {
    let mrk: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let b_tid = "Zm9vYmFyYmF6cXV4MTIzNA==@bsf.mnc001.mcc001.pub.3gppnetwork.org";
    let realm = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";
    let ch = Challenge {
        realm: realm.into(),
        nonce: "AAAAAGVTxAABAgMEBQYHCA".into(),
        opaque: None,
        algorithm: Algorithm::Sha256,
        qop: vec![Qop::AuthInt],
        stale: false,
    };
    let ch = Challenge::parse(&ch.to_header()).unwrap();
    let pw = mrk_password(&mrk);
    let c = Credentials::answer(&ch, b_tid, &pw, "POST", KM_URI, Some(BODY), "0a4f113b", 2);
    // Python ("mbms").
    assert_eq!(
        c.response,
        "711929f61a59799674780e5c70176beb03fee32e7932b5f151b82af8a28a29b2"
    );
    let header = c.to_header();
    assert!(header.contains("nc=00000002, "), "{header}");
    assert!(header.contains("qop=auth-int, "), "{header}");
    assert!(!header.contains("opaque"), "{header}");
    let server = Credentials::parse(&header).unwrap();
    assert_eq!(server.username, b_tid);
    assert_eq!(
        server.verify(realm, "POST", KM_URI, &mrk_password(&mrk), BODY),
        Ok(())
    );
    let mut other = mrk;
    other[31] ^= 1;
    assert_eq!(
        server.verify(realm, "POST", KM_URI, &mrk_password(&other), BODY),
        Err(DigestError::BadResponse)
    );
}

// ---------------------------------------------------------------- verification errors

#[test]
fn wrong_password_realm_uri() {
    let c = rfc7616_creds(Algorithm::Sha256);
    assert_eq!(
        c.verify(REALM, "GET", URI, "Circle of Lif", b""),
        Err(DigestError::BadResponse)
    );
    assert_eq!(
        c.verify(REALM, "GET", URI, "", b""),
        Err(DigestError::BadResponse)
    );
    assert_eq!(
        c.verify("other@example.org", "GET", URI, PASS, b""),
        Err(DigestError::RealmMismatch)
    );
    // Realms are case-sensitive.
    assert_eq!(
        c.verify("HTTP-auth@example.org", "GET", URI, PASS, b""),
        Err(DigestError::RealmMismatch)
    );
    assert_eq!(
        c.verify(REALM, "GET", "/dir/index.htm", PASS, b""),
        Err(DigestError::UriMismatch)
    );
    assert_eq!(
        c.verify(REALM, "GET", "/dir/index.html?x", PASS, b""),
        Err(DigestError::UriMismatch)
    );
    assert_eq!(
        c.verify(REALM, "POST", URI, PASS, b""),
        Err(DigestError::BadResponse)
    );
}

#[test]
fn tampered_fields_fail() {
    let good = rfc7616_creds(Algorithm::Md5);
    type Tamper = (&'static str, fn(&mut Credentials));
    let tamper: [Tamper; 8] = [
        ("nc", |c| c.nc = Some(2)),
        ("cnonce", |c| {
            c.cnonce = Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZK".into())
        }),
        ("nonce", |c| {
            c.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0w".into()
        }),
        ("response", |c| {
            c.response = "8ca523f5e9506fed4657c9700eebdbed".into()
        }),
        ("response short", |c| {
            c.response = "8ca523f5e9506fed4657c9700eebdbe".into()
        }),
        ("username", |c| c.username = "mufasa".into()),
        ("algorithm", |c| c.algorithm = Algorithm::Sha256),
        ("qop", |c| c.qop = Some(Qop::AuthInt)),
    ];
    for (what, f) in tamper {
        let mut c = good.clone();
        f(&mut c);
        assert_eq!(
            c.verify(REALM, "GET", URI, PASS, b""),
            Err(DigestError::BadResponse),
            "{what}"
        );
        // Also through a header round trip.
        let c = Credentials::parse(&c.to_header()).unwrap();
        assert_eq!(
            c.verify(REALM, "GET", URI, PASS, b""),
            Err(DigestError::BadResponse),
            "{what}"
        );
    }
    // An upper-case response is the same digest.
    let mut upper = good.clone();
    upper.response.make_ascii_uppercase();
    assert_eq!(upper.verify(REALM, "GET", URI, PASS, b""), Ok(()));
    let parsed = Credentials::parse(&upper.to_header()).unwrap();
    assert_eq!(parsed.response, RFC7616_MD5);
}

#[test]
fn tampered_nc_in_header_text_fails() {
    let text = unfold(RFC7616_AUTHZ_MD5);
    for (from, to) in [
        ("nc=00000001", "nc=00000002"),
        ("cnonce=\"f2/", "cnonce=\"f3/"),
        ("nonce=\"7ypf", "nonce=\"7ypg"),
    ] {
        let c = Credentials::parse(&text.replace(from, to)).unwrap();
        assert_eq!(
            c.verify(REALM, "GET", URI, PASS, b""),
            Err(DigestError::BadResponse),
            "{to}"
        );
    }
}

#[test]
fn missing_qop_is_rejected() {
    // The RFC 2069 form: no qop, nc, cnonce. It parses, but never verifies, even with the
    // response RFC 2069 would compute (RFC 2617 §3.5's "1949323746fe6a43ef61f9606e7febea"
    // for "CircleOfLife").
    let rfc2069 = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
        response=\"1949323746fe6a43ef61f9606e7febea\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let c = Credentials::parse(rfc2069).unwrap();
    assert_eq!(c.qop, None);
    assert_eq!(c.nc, None);
    assert_eq!(c.cnonce, None);
    assert_eq!(
        c.verify("testrealm@host.com", "GET", URI, "CircleOfLife", b""),
        Err(DigestError::NoQop)
    );
    // Dropping qop from valid credentials.
    let mut c = rfc7616_creds(Algorithm::Sha256);
    c.qop = None;
    assert_eq!(
        c.verify(REALM, "GET", URI, PASS, b""),
        Err(DigestError::NoQop)
    );
    let c = Credentials::parse(&c.to_header()).unwrap();
    assert_eq!(
        c.verify(REALM, "GET", URI, PASS, b""),
        Err(DigestError::NoQop)
    );
    // qop without cnonce / nc, built by hand.
    let mut c = rfc7616_creds(Algorithm::Md5);
    c.cnonce = None;
    assert_eq!(
        c.verify(REALM, "GET", URI, PASS, b""),
        Err(DigestError::MissingParam("cnonce"))
    );
    let mut c = rfc7616_creds(Algorithm::Md5);
    c.nc = None;
    assert_eq!(
        c.verify(REALM, "GET", URI, PASS, b""),
        Err(DigestError::MissingParam("nc"))
    );
}

// ---------------------------------------------------------------- parsing

#[test]
fn credentials_parse_errors() {
    let base = unfold(RFC7616_AUTHZ_MD5);
    let cases: Vec<(String, DigestError)> = vec![
        (
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==".into(),
            DigestError::NotDigest,
        ),
        ("Bearer abc".into(), DigestError::NotDigest),
        (
            base.replacen("Digest", "Digests", 1),
            DigestError::NotDigest,
        ),
        ("".into(), DigestError::Malformed("no auth-scheme")),
        ("   ".into(), DigestError::Malformed("no auth-scheme")),
        ("=x".into(), DigestError::Malformed("no auth-scheme")),
        ("Digest".into(), DigestError::MissingParam("username")),
        (
            "Digest,username=\"a\"".into(),
            DigestError::Malformed("no space after the auth-scheme"),
        ),
        (
            "Digest abc".into(),
            DigestError::Malformed("expected '=' after a parameter name"),
        ),
        (
            "Digest QWxhZGRpbjpvcGVuIHNlc2FtZQ==".into(),
            DigestError::Malformed("expected a token or quoted-string value"),
        ),
        (format!("{base}, nc=00000002"), DigestError::DuplicateParam),
        (format!("{base}, NC=00000002"), DigestError::DuplicateParam),
        (format!("{base}, foo=1, foo=2"), DigestError::DuplicateParam),
        (
            base.replace("username=\"Mufasa\", ", ""),
            DigestError::MissingParam("username"),
        ),
        (
            base.replace("realm=\"http-auth@example.org\", ", ""),
            DigestError::MissingParam("realm"),
        ),
        (
            base.replace("uri=\"/dir/index.html\", ", ""),
            DigestError::MissingParam("uri"),
        ),
        (
            base.replace(&format!("nonce=\"{NONCE}\", "), ""),
            DigestError::MissingParam("nonce"),
        ),
        (
            base.replace(&format!("response=\"{RFC7616_MD5}\", "), ""),
            DigestError::MissingParam("response"),
        ),
        (
            base.replace(&format!("cnonce=\"{CNONCE}\", "), ""),
            DigestError::MissingParam("cnonce"),
        ),
        (
            base.replace("nc=00000001, ", ""),
            DigestError::MissingParam("nc"),
        ),
        (
            base.replace("algorithm=MD5", "algorithm=SHA-512-256"),
            DigestError::UnsupportedAlgorithm,
        ),
        (
            base.replace("algorithm=MD5", "algorithm=MD5x"),
            DigestError::UnsupportedAlgorithm,
        ),
        (
            base.replace("qop=auth", "qop=auth-conf"),
            DigestError::UnsupportedQop,
        ),
        (
            base.replace("qop=auth", "qop=\"auth, auth-int\""),
            DigestError::UnsupportedQop,
        ),
        (
            base.replace("nc=00000001", "nc=0000001"),
            DigestError::Malformed("nc is not 8 hex digits"),
        ),
        (
            base.replace("nc=00000001", "nc=000000001"),
            DigestError::Malformed("nc is not 8 hex digits"),
        ),
        (
            base.replace("nc=00000001", "nc=+0000001"),
            DigestError::Malformed("nc is not 8 hex digits"),
        ),
        (
            base.replace("nc=00000001", "nc=0000000g"),
            DigestError::Malformed("nc is not 8 hex digits"),
        ),
        (
            base.replace(RFC7616_MD5, "8ca523f5e9506fed4657c9700eebdbeZ"),
            DigestError::Malformed("response is not hex"),
        ),
        (
            base.replace(&format!("\"{RFC7616_MD5}\""), "\"\""),
            DigestError::Malformed("response is not hex"),
        ),
        (
            format!("{base}, userhash=yes"),
            DigestError::Malformed("userhash is not true or false"),
        ),
        (
            base.replace("\"Mufasa\"", "\"Mufasa"),
            DigestError::Malformed("expected ',' between parameters"),
        ),
        (
            format!("{base}, x=\"open"),
            DigestError::Malformed("unterminated quoted-string"),
        ),
        (
            format!("{base}, x=\"a\\"),
            DigestError::Malformed("unterminated quoted-string"),
        ),
        (
            base.replace("Mufasa", "Mu\rfasa"),
            DigestError::Malformed("control character in quoted-string"),
        ),
        (
            base.replace("Mufasa", "Mu\nfasa"),
            DigestError::Malformed("control character in quoted-string"),
        ),
        (
            base.replace("Mufasa", "Mu\0fasa"),
            DigestError::Malformed("control character in quoted-string"),
        ),
        (
            base.replace("Mufasa", "Mu\\\u{7f}fasa"),
            DigestError::Malformed("control character in quoted-string"),
        ),
        (
            format!("{base}, x="),
            DigestError::Malformed("expected a token or quoted-string value"),
        ),
        (
            format!("{base}, x=,"),
            DigestError::Malformed("expected a token or quoted-string value"),
        ),
        (
            format!("{base}, =x"),
            DigestError::Malformed("expected a parameter name"),
        ),
        (
            format!("{base}, x y"),
            DigestError::Malformed("expected '=' after a parameter name"),
        ),
        (
            format!("{base}, x=y z"),
            DigestError::Malformed("expected ',' between parameters"),
        ),
        (
            format!("{base}\n"),
            DigestError::Malformed("expected ',' between parameters"),
        ),
        (
            format!("{base},\r\nx=y"),
            DigestError::Malformed("expected a parameter name"),
        ),
    ];
    for (header, want) in cases {
        assert_eq!(Credentials::parse(&header), Err(want), "{header:?}");
    }
}

#[test]
fn too_long_headers_are_rejected() {
    let base = unfold(RFC7616_AUTHZ_MD5);
    let pad = MAX_HEADER_LEN - base.len() - ", x=\"\"".len();
    let fits = format!("{base}, x=\"{}\"", "a".repeat(pad));
    assert_eq!(fits.len(), MAX_HEADER_LEN);
    assert!(Credentials::parse(&fits).is_ok());
    let over = format!("{base}, x=\"{}\"", "a".repeat(pad + 1));
    assert_eq!(Credentials::parse(&over), Err(DigestError::TooLong));
    assert_eq!(
        Challenge::parse(&"x".repeat(MAX_HEADER_LEN + 1)),
        Err(DigestError::TooLong)
    );
    assert_eq!(
        Credentials::parse(&"Digest ".repeat(1000)),
        Err(DigestError::TooLong)
    );
}

#[test]
fn credentials_parse_is_liberal_in_form() {
    let want = Credentials::parse(&unfold(RFC7616_AUTHZ_MD5)).unwrap();
    let variants = [
        // Scheme and names case-insensitively, tokens case-insensitively.
        "digest USERNAME=\"Mufasa\", Realm=\"http-auth@example.org\", URI=\"/dir/index.html\", \
         Algorithm=md5, NONCE=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", NC=00000001, \
         CNonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", QOP=AUTH, \
         Response=\"8CA523F5E9506FED4657C9700EEBDBEC\", \
         Opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        // Another order, no spaces, quoted tokens (as curl sends algorithm), unknown params,
        // empty list elements, tabs and BWS around '='.
        "DIGEST\t, ,opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\",,response = \
         \"8ca523f5e9506fed4657c9700eebdbec\",qop=\"auth\",cnonce=\
         \"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",nc=\"00000001\",\
         nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\talgorithm=\"MD5\",\
         uri=\"/dir/index.html\",realm=\"http-auth@example.org\",charset=UTF-8,\
         username=\"Mufasa\", foo=\"b\\\"ar\" ,",
        // Token forms where the value allows it, and an escaped character.
        "  Digest username=Mufasa, realm=\"http-auth@example.org\", uri=\"/dir/index.html\", \
         nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
         cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
         response=8ca523f5e9506fed4657c9700eebdbec, \
         opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkP\\qMAFRtzCUYo5tdS\", userhash=FALSE  ",
    ];
    for v in variants {
        assert_eq!(Credentials::parse(v).as_ref(), Ok(&want), "{v}");
    }
    // No algorithm parameter means MD5.
    let no_alg = unfold(RFC7616_AUTHZ_MD5).replace("algorithm=MD5, ", "");
    assert_eq!(Credentials::parse(&no_alg).as_ref(), Ok(&want));
    // Algorithm tokens in any case.
    for (tok, alg) in [
        ("md5-SESS", Algorithm::Md5Sess),
        ("sha-256", Algorithm::Sha256),
        ("Sha-256-Sess", Algorithm::Sha256Sess),
    ] {
        let h = unfold(RFC7616_AUTHZ_MD5).replace("algorithm=MD5", &format!("algorithm={tok}"));
        assert_eq!(Credentials::parse(&h).unwrap().algorithm, alg);
    }
    let h = unfold(RFC7616_AUTHZ_MD5).replace("qop=auth", "qop=Auth-Int");
    assert_eq!(Credentials::parse(&h).unwrap().qop, Some(Qop::AuthInt));
}

#[test]
fn quoted_values_escape_and_never_inject() {
    let mut c = rfc7616_creds(Algorithm::Md5);
    c.username = "a\"b\\c d,e=f".into();
    c.opaque = Some("tab\there, ünïcödé".into());
    let h = c.to_header();
    assert!(h.contains(r#"username="a\"b\\c d,e=f""#), "{h}");
    assert_eq!(Credentials::parse(&h).unwrap(), c);
    // CR, LF and other controls cannot be written in a quoted-string: they are left out.
    c.username = "evil\r\nX-Injected: 1".into();
    let h = c.to_header();
    assert!(!h.contains('\r') && !h.contains('\n'), "{h:?}");
    assert_eq!(
        Credentials::parse(&h).unwrap().username,
        "evilX-Injected: 1"
    );
    let ch = Challenge {
        realm: "r\n\u{0}".into(),
        nonce: "n\r".into(),
        opaque: Some("\u{7f}o".into()),
        algorithm: Algorithm::Md5,
        qop: vec![],
        stale: false,
    };
    let h = ch.to_header();
    assert_eq!(
        h,
        "Digest realm=\"r\", algorithm=MD5, nonce=\"n\", opaque=\"o\""
    );
}

#[test]
fn challenge_parse() {
    let ch = Challenge::parse(
        "digest nonce=abc, REALM=\"r\", qop=\"auth-conf, AUTH-INT,auth, auth\", \
         algorithm=sha-256-sess, stale=TRUE, domain=\"/a /b\", charset=UTF-8, userhash=true",
    )
    .unwrap();
    assert_eq!(
        ch,
        Challenge {
            realm: "r".into(),
            nonce: "abc".into(),
            opaque: None,
            algorithm: Algorithm::Sha256Sess,
            qop: vec![Qop::AuthInt, Qop::Auth],
            stale: true,
        }
    );
    assert!(
        !Challenge::parse("Digest realm=r, nonce=n, stale=false")
            .unwrap()
            .stale
    );
    assert!(
        !Challenge::parse("Digest realm=r, nonce=n, stale=\"yes\"")
            .unwrap()
            .stale
    );
    assert!(
        Challenge::parse("Digest realm=r, nonce=n, stale=\"true\"")
            .unwrap()
            .stale
    );
    assert!(
        Challenge::parse("Digest realm=r, nonce=n")
            .unwrap()
            .qop
            .is_empty()
    );
    for (h, e) in [
        ("Basic realm=\"r\"", DigestError::NotDigest),
        ("Digest nonce=n", DigestError::MissingParam("realm")),
        ("Digest realm=r", DigestError::MissingParam("nonce")),
        (
            "Digest realm=r, nonce=n, qop=\"auth-conf\"",
            DigestError::UnsupportedQop,
        ),
        (
            "Digest realm=r, nonce=n, qop=\"\"",
            DigestError::UnsupportedQop,
        ),
        (
            "Digest realm=r, nonce=n, algorithm=SHA-512-256",
            DigestError::UnsupportedAlgorithm,
        ),
        (
            "Digest realm=r, nonce=n, realm=s",
            DigestError::DuplicateParam,
        ),
        // Two challenges in one value are not supported.
        (
            "Digest realm=r, nonce=n, Basic realm=\"x\"",
            DigestError::Malformed("expected '=' after a parameter name"),
        ),
    ] {
        assert_eq!(Challenge::parse(h), Err(e), "{h}");
    }
}

#[test]
fn answer_picks_qop() {
    let body = Some(&b"x"[..]);
    let pick = |qop: Vec<Qop>, body: Option<&[u8]>| {
        let ch = rfc7616_challenge(Algorithm::Sha256, qop);
        Credentials::answer(&ch, USER, PASS, "POST", URI, body, CNONCE, 7)
    };
    assert_eq!(
        pick(vec![Qop::Auth, Qop::AuthInt], body).qop,
        Some(Qop::AuthInt)
    );
    assert_eq!(
        pick(vec![Qop::Auth, Qop::AuthInt], None).qop,
        Some(Qop::Auth)
    );
    assert_eq!(pick(vec![Qop::Auth], body).qop, Some(Qop::Auth));
    assert_eq!(
        pick(vec![], body).qop,
        Some(Qop::Auth),
        "never the RFC 2069 form"
    );
    // Only auth-int offered and no body: auth-int over the empty body.
    let c = pick(vec![Qop::AuthInt], None);
    assert_eq!(c.qop, Some(Qop::AuthInt));
    assert_eq!(c.verify(REALM, "POST", URI, PASS, b""), Ok(()));
    // auth ignores the body when verifying.
    let c = pick(vec![Qop::Auth], body);
    assert_eq!(c.verify(REALM, "POST", URI, PASS, b"anything"), Ok(()));
    assert_eq!(c.nc, Some(7));
    assert!(c.to_header().contains("nc=00000007"));
    assert_eq!(c.opaque.as_deref(), Some(OPAQUE));
    let mut max = pick(vec![Qop::Auth], None);
    max.nc = Some(u32::MAX);
    assert!(max.to_header().contains("nc=ffffffff"));
    assert_eq!(
        Credentials::parse(&max.to_header()).unwrap().nc,
        Some(u32::MAX)
    );
}

#[test]
fn userhash_support() {
    // Python ("userhash").
    assert_eq!(
        userhash(Algorithm::Sha256, USER, REALM),
        "a947aad205e80e429958a387394944c6b496301e79f89d35a4cc23b6ee12b5b6"
    );
    assert_eq!(
        userhash(Algorithm::Sha256Sess, USER, REALM),
        userhash(Algorithm::Sha256, USER, REALM)
    );
    assert_eq!(
        userhash(Algorithm::Md5, USER, REALM),
        "4238f3a16167373febb9bc4d43db9cc4"
    );

    // Client: answer, then hash the name (the response stays over the plain name).
    let mut c = rfc7616_creds(Algorithm::Sha256);
    c.username = userhash(Algorithm::Sha256, USER, REALM);
    c.userhash = true;
    let h = c.to_header();
    assert!(h.ends_with(", userhash=true"), "{h}");
    let received = Credentials::parse(&h).unwrap();
    assert!(received.userhash);
    assert_eq!(received, c);
    // Unresolved, the hash is not the user name.
    assert_eq!(
        received.verify(REALM, "GET", URI, PASS, b""),
        Err(DigestError::BadResponse)
    );
    // Server: map the hash back, then verify with the resolved name.
    let users = ["Simba", "Mufasa", "Nala"];
    let name = users.iter().find(|u| received.userhash_matches(u)).unwrap();
    assert_eq!(*name, USER);
    let mut resolved = received.clone();
    resolved.username = (*name).into();
    assert_eq!(resolved.verify(REALM, "GET", URI, PASS, b""), Ok(()));
    assert_eq!(resolved.response, RFC7616_SHA256);
}

// ---------------------------------------------------------------- nonces

const NOW: u64 = 1_700_000_000;

fn key() -> NonceKey {
    let mut k = [0u8; 32];
    for (b, v) in k.iter_mut().zip(0x80u8..) {
        *b = v;
    }
    NonceKey::new(k)
}

#[test]
fn nonce_known_answer() {
    // Python ("nonce"): key 80..9f, issued 1700000000, random 01..08.
    let n = key().issue(NOW, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(n, "AAAAAGVT8QABAgMEBQYHCC-fLTRVzJxyr1duNo39aoM");
    assert_eq!(n.len(), 43);
    assert_eq!(
        key().issue(NOW, [1, 2, 3, 4, 5, 6, 7, 8]),
        n,
        "deterministic"
    );
    assert_ne!(key().issue(NOW, [1, 2, 3, 4, 5, 6, 7, 9]), n);
    assert_ne!(key().issue(NOW + 1, [1, 2, 3, 4, 5, 6, 7, 8]), n);
}

#[test]
fn nonce_fresh_and_stale() {
    let k = key();
    let n = k.issue(NOW, [9; 8]);
    assert_eq!(k.check(&n, NOW, 300), NonceState::Fresh);
    assert_eq!(k.check(&n, NOW + 300, 300), NonceState::Fresh);
    assert_eq!(k.check(&n, NOW + 301, 300), NonceState::Stale);
    assert_eq!(k.check(&n, u64::MAX, 300), NonceState::Stale);
    assert_eq!(k.check(&n, NOW + 1, 0), NonceState::Stale);
    assert_eq!(k.check(&n, NOW, 0), NonceState::Fresh);
    // From the future: tolerated up to the skew, stale beyond.
    assert_eq!(
        k.check(&n, NOW - NONCE_FUTURE_SKEW_SECS, 300),
        NonceState::Fresh
    );
    assert_eq!(
        k.check(&n, NOW - NONCE_FUTURE_SKEW_SECS - 1, 300),
        NonceState::Stale
    );
    assert_eq!(k.check(&n, 0, u64::MAX), NonceState::Stale);
    // Extreme issue times do not overflow.
    let n = k.issue(u64::MAX, [0; 8]);
    assert_eq!(k.check(&n, u64::MAX, 0), NonceState::Fresh);
    assert_eq!(k.check(&n, 0, u64::MAX), NonceState::Stale);
    let n = k.issue(0, [0; 8]);
    assert_eq!(k.check(&n, 0, 0), NonceState::Fresh);
    assert_eq!(k.check(&n, u64::MAX, u64::MAX), NonceState::Fresh);
}

#[test]
fn nonce_tampered_wrong_key_garbage() {
    let k = key();
    let n = k.issue(NOW, [9; 8]);
    // Every other character at every position (the last one also covers non-canonical
    // trailing bits).
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..n.len() {
        for c in alphabet.chars() {
            let mut t: Vec<char> = n.chars().collect();
            if t[i] == c {
                continue;
            }
            t[i] = c;
            let t: String = t.into_iter().collect();
            assert_eq!(k.check(&t, NOW, 300), NonceState::Invalid, "{t}");
        }
    }
    let other = NonceKey::new([0x80; 32]);
    assert_eq!(other.check(&n, NOW, 300), NonceState::Invalid);
    let garbage = [
        String::new(),
        "a".into(),
        n[..42].to_string(),
        format!("{n}A"),
        format!("{n}="),
        format!(" {}", &n[1..]),
        format!("{}+", &n[..42]),
        format!("{}/", &n[..42]),
        format!("{}.", &n[..42]),
        "=".repeat(43),
        "A".repeat(43),
        "é".repeat(21) + "A",
        "\0".repeat(43),
        NONCE.into(),
        "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
    ];
    for g in garbage {
        assert_eq!(k.check(&g, NOW, 300), NonceState::Invalid, "{g:?}");
    }
    // Issued nonces are tokens (base64url): fine as quoted-string or token values.
    let ch = Challenge {
        realm: "r".into(),
        nonce: n.clone(),
        opaque: None,
        algorithm: Algorithm::Sha256,
        qop: vec![Qop::Auth],
        stale: true,
    };
    let h = ch.to_header();
    assert!(h.ends_with(", stale=true"), "{h}");
    assert_eq!(Challenge::parse(&h).unwrap(), ch);
    assert_eq!(
        Challenge::parse(&h.replace(&format!("\"{n}\""), &n)).unwrap(),
        ch
    );
}

#[test]
fn debug_output_hides_secrets() {
    let k = NonceKey::new([0xab; 32]);
    let d = format!("{k:?}");
    assert!(
        !d.to_ascii_lowercase().contains("ab, ab") && !d.contains("171"),
        "{d}"
    );
    assert!(d.contains("redacted"));
    let c = rfc7616_creds(Algorithm::Md5);
    assert!(!format!("{c:?}").contains(PASS));
    let e = c.verify(REALM, "GET", URI, "secret-pw", b"").unwrap_err();
    assert!(!format!("{e} {e:?}").contains("secret-pw"));
}

// ---------------------------------------------------------------- robustness

/// Parses with every entry point; must never panic.
fn parse_all(s: &str) {
    let _ = Credentials::parse(s);
    let _ = Challenge::parse(s);
    let _ = key().check(s, NOW, 300);
}

#[test]
fn truncations_and_deletions_never_panic() {
    for base in [
        RFC7616_AUTHZ_MD5,
        RFC7616_AUTHZ_SHA256,
        RFC2617_AUTHZ,
        RFC7616_CHALLENGE_MD5,
    ] {
        let b = base.as_bytes();
        for i in 0..=b.len() {
            parse_all(&String::from_utf8_lossy(&b[..i]));
            parse_all(&String::from_utf8_lossy(&b[i..]));
            if i < b.len() {
                let mut d = b.to_vec();
                d.remove(i);
                let d = String::from_utf8_lossy(&d);
                parse_all(&d);
                if let Ok(c) = Credentials::parse(&d) {
                    let _ = c.verify(REALM, "GET", URI, PASS, b"");
                }
            }
        }
    }
}

fn header_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Digest ".to_string()),
        Just(", ".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\r\n ".to_string()),
        Just("\n".to_string()),
        Just("\t".to_string()),
        Just("username".to_string()),
        Just("nc=".to_string()),
        Just("qop=".to_string()),
        Just("response=".to_string()),
        Just("algorithm=".to_string()),
        "[a-zA-Z0-9/+=_-]{0,12}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn mutated_strategy() -> impl Strategy<Value = String> {
    let bases = prop_oneof![
        Just(RFC7616_AUTHZ_MD5.to_string()),
        Just(unfold(RFC7616_AUTHZ_SHA256)),
        Just(RFC2617_AUTHZ.to_string()),
        Just(RFC7616_CHALLENGE_SHA256.to_string()),
    ];
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8);
    (bases, edits).prop_map(|(base, edits)| {
        let mut b = base.into_bytes();
        for (at, byte, op) in edits {
            if b.is_empty() {
                b.push(byte);
                continue;
            }
            let i = at.index(b.len());
            match op {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                2 => {
                    b.remove(i);
                }
                _ => b.truncate(i),
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    })
}

fn text() -> impl Strategy<Value = String> {
    // Printable ASCII (including '"' and '\\'), HTAB and some non-ASCII.
    "[ -~\täß€]{0,40}"
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Md5),
        Just(Algorithm::Md5Sess),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha256Sess),
    ]
}

fn opt_qop() -> impl Strategy<Value = Option<Qop>> {
    prop_oneof![Just(None), Just(Some(Qop::Auth)), Just(Some(Qop::AuthInt))]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_headers_never_panic(s in header_strategy()) {
        parse_all(&s);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        parse_all(&s);
        parse_all(&format!("Digest {s}"));
    }

    #[test]
    fn mutated_headers_never_panic(s in mutated_strategy()) {
        parse_all(&s);
        if let Ok(c) = Credentials::parse(&s) {
            let _ = c.verify(REALM, "GET", URI, PASS, b"");
            prop_assert_eq!(Credentials::parse(&c.to_header()), Ok(c));
        }
        if let Ok(ch) = Challenge::parse(&s) {
            prop_assert_eq!(Challenge::parse(&ch.to_header()), Ok(ch));
        }
    }

    #[test]
    fn credentials_round_trip(
        username in text(), realm in text(), nonce in text(), uri in text(),
        response in "[0-9a-f]{1,64}", algorithm in algorithm(),
        cnonce in prop::option::of(text()), nc in prop::option::of(any::<u32>()),
        qop in opt_qop(), opaque in prop::option::of(text()), userhash in any::<bool>(),
    ) {
        // The parser requires cnonce and nc whenever qop is present.
        let (cnonce, nc) = if qop.is_some() {
            (Some(cnonce.unwrap_or_default()), Some(nc.unwrap_or(1)))
        } else {
            (cnonce, nc)
        };
        let c = Credentials {
            username, realm, nonce, uri, response, algorithm, cnonce, nc, qop, opaque, userhash,
        };
        prop_assert_eq!(Credentials::parse(&c.to_header()), Ok(c));
    }

    #[test]
    fn challenge_round_trip(
        realm in text(), nonce in text(), opaque in prop::option::of(text()),
        algorithm in algorithm(),
        qop in prop_oneof![
            Just(vec![]), Just(vec![Qop::Auth]), Just(vec![Qop::AuthInt]),
            Just(vec![Qop::Auth, Qop::AuthInt]), Just(vec![Qop::AuthInt, Qop::Auth]),
        ],
        stale in any::<bool>(),
    ) {
        let ch = Challenge { realm, nonce, opaque, algorithm, qop, stale };
        prop_assert_eq!(Challenge::parse(&ch.to_header()), Ok(ch));
    }

    #[test]
    fn answer_then_verify(
        username in text(), password in text(), realm in text(), uri in text(),
        method in "[A-Z]{1,8}", body in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        algorithm in algorithm(), nc in any::<u32>(), cnonce in text(),
        issued in any::<u64>(), random in any::<[u8; 8]>(),
    ) {
        let k = key();
        let ch = Challenge {
            realm: realm.clone(), nonce: k.issue(issued, random), opaque: None, algorithm,
            qop: vec![Qop::Auth, Qop::AuthInt], stale: false,
        };
        let c = Credentials::answer(&ch, &username, &password, &method, &uri,
            body.as_deref(), &cnonce, nc);
        let c = Credentials::parse(&c.to_header()).unwrap();
        let body = body.unwrap_or_default();
        prop_assert_eq!(c.verify(&realm, &method, &uri, &password, &body), Ok(()));
        prop_assert_eq!(k.check(&c.nonce, issued, 0), NonceState::Fresh);
        let wrong = format!("{password}x");
        prop_assert_eq!(
            c.verify(&realm, &method, &uri, &wrong, &body), Err(DigestError::BadResponse));
        let mut bumped = c.clone();
        bumped.nc = Some(nc.wrapping_add(1));
        prop_assert_eq!(
            bumped.verify(&realm, &method, &uri, &password, &body), Err(DigestError::BadResponse));
    }
}
