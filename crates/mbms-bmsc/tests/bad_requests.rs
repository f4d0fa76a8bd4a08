//! Requests the BM-SC must refuse, over real HTTP and UDP on loopback: each gets its status
//! code (401 with a Digest challenge, 400, 404, 405, 413, 415) and changes nothing (no
//! registration stored, no MSK pushed); garbage datagrams on the push socket are counted and
//! survived; bad configurations and flags end the process with exit code 1 or 2; the trusted
//! proxy's `X-Forwarded-For`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Bmsc, DEREGISTER, MSK_REQUEST, Phone, REGISTER, Response, Ue, challenge_of, config, http,
    register_body, run_cli, try_parse_response,
};
use mbms_ua::digest::{Algorithm, Challenge, Credentials, Qop};

const TV1: &str = "urn:3gpp:mbms:service:tv1";
const TV2: &str = "urn:3gpp:mbms:service:tv2";
const FILES: &str = "urn:3gpp:mbms:service:files";
const SERVICES: [&str; 3] = [TV1, TV2, FILES];
const REALM: &str = "bmsc.example.org";
const REGISTER_TARGET: &str = "/keymanagement?requesttype=register";
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn start(phone: &Phone, extra: &str, args: &[&str]) -> (tempfile::TempDir, Bmsc) {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(&dir.path().join("state"), phone.port(), extra);
    let bmsc = Bmsc::start(dir.path(), &toml, args);
    (dir, bmsc)
}

/// A BM-SC with one provisioned UE and a current MSK for every service, so that a
/// registration that wrongly went through would be stored and pushed to.
fn start_armed(phone: &Phone, extra: &str, n: u8) -> (tempfile::TempDir, Bmsc, Ue) {
    let (dir, bmsc) = start(phone, extra, &["--no-verify"]);
    let ue = Ue::new(n);
    bmsc.provision(&ue);
    for s in SERVICES {
        bmsc.new_msk(s);
    }
    (dir, bmsc, ue)
}

/// Nothing was registered (no registration to any service), nothing was pushed.
fn assert_unchanged(bmsc: &Bmsc, phone: &Phone) {
    let store = bmsc.store();
    for s in SERVICES {
        assert_eq!(
            store.registrations(s).unwrap(),
            vec![],
            "no registration to {s} may be stored"
        );
    }
    drop(store);
    let got = phone.drain(Duration::from_millis(300));
    assert!(got.is_empty(), "{} datagram(s) pushed", got.len());
    assert_eq!(bmsc.push_count("sent"), 0);
}

/// An authenticated `POST target` with `content_type` (none if empty) and `extra` headers:
/// a fresh challenge, then the answer.
fn post_auth(
    bmsc: &Bmsc,
    ue: &mut Ue,
    target: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    let ch = Ue::challenge(bmsc, target);
    let auth = ue.authorization(&ch, target, body);
    let mut headers = vec![("Authorization", auth.as_str())];
    if !content_type.is_empty() {
        headers.push(("Content-Type", content_type));
    }
    headers.extend_from_slice(extra);
    http(bmsc.listen, "POST", target, &headers, body)
}

/// Asserts `r` is a 401 with a fresh, non-stale challenge for the realm.
fn assert_challenged(r: &Response, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    let ch = challenge_of(r);
    assert_eq!(ch.realm, REALM, "{what}");
    assert!(!ch.stale, "{what}: not a stale-nonce case");
}

#[test]
fn no_authorization_header_gets_a_digest_challenge_offering_auth_and_auth_int() {
    let phone = Phone::new();
    let (_dir, bmsc, _ue) = start_armed(&phone, "", 1);
    let body = register_body(&[TV1]);
    let mut nonces = Vec::new();
    for (rt, media) in [
        ("register", REGISTER),
        ("deregister", DEREGISTER),
        ("msk-request", MSK_REQUEST),
    ] {
        let target = format!("/keymanagement?requesttype={rt}");
        let r = http(
            bmsc.listen,
            "POST",
            &target,
            &[("Content-Type", media)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 401, "{rt}: {}", r.text());
        let header = r.header("www-authenticate").expect("WWW-Authenticate");
        assert!(header.starts_with("Digest "), "{header}");
        let ch = Challenge::parse(header).unwrap();
        assert_eq!(ch.realm, REALM);
        assert_eq!(ch.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert!(!ch.stale);
        assert_eq!(ch.nonce.len(), 43, "{}", ch.nonce);
        nonces.push(ch.nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "every challenge has a nonce of its own");
    // Authorization headers that are not Digest credentials are answered the same way.
    for bad in [
        "Basic dGlkMUBic2YuZXhhbXBsZS5vcmc6eA==",
        "Digest",
        "Digest username=\"tid1@bsf.example.org\"",
        "Digest username=\"tid1@bsf.example.org\", realm=\"bmsc.example.org\", \
         nonce=\"x\", uri=\"/keymanagement?requesttype=register\", response=\"not hex\"",
    ] {
        let r = http(
            bmsc.listen,
            "POST",
            REGISTER_TARGET,
            &[("Content-Type", REGISTER), ("Authorization", bad)],
            body.as_bytes(),
        );
        assert_challenged(&r, bad);
    }
    assert_unchanged(&bmsc, &phone);
}

#[test]
fn wrong_password_unknown_btid_and_expired_btid_get_401() {
    let phone = Phone::new();
    let (_dir, bmsc, ue) = start_armed(&phone, "", 2);

    let mut wrong_password = Ue::with_keys(&ue.btid, ue.muk, [0x55; 32]);
    assert_challenged(&wrong_password.register(&bmsc, &[TV1]), "wrong MRK");
    // The MUK as password (a plausible mix-up) is wrong too.
    let mut muk_as_mrk = Ue::with_keys(&ue.btid, ue.muk, ue.muk);
    assert_challenged(&muk_as_mrk.register(&bmsc, &[TV1]), "MUK as MRK");

    let mut unknown = Ue::new(99);
    assert_challenged(&unknown.register(&bmsc, &[TV1]), "unknown B-TID");

    let mut expired = Ue::new(3);
    let (btid, muk, mrk) = (expired.btid.clone(), expired.muk, expired.mrk);
    let provision = |expires: u64| {
        let body = serde_json::json!({
            "btid": btid, "muk": hex::encode(muk), "mrk": hex::encode(mrk), "expires": expires
        })
        .to_string();
        let r = http(bmsc.admin, "POST", "/admin/ue", &[], body.as_bytes());
        assert_eq!(r.status, 204, "{}", r.text());
    };
    provision(1);
    assert_challenged(&expired.register(&bmsc, &[TV1]), "expired B-TID");
    assert_unchanged(&bmsc, &phone);

    // Controls: the same B-TID with an expiry in the future, and the right password, work.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    provision(now + 3600);
    assert_eq!(expired.register(&bmsc, &[TV1]).status, 200);
    let mut ue = ue;
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    assert_eq!(bmsc.store().registrations(TV1).unwrap().len(), 2);
}

#[test]
fn forged_and_garbage_nonces_get_401() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "", 4);
    let body = register_body(&[TV1]);
    let real = Ue::challenge(&bmsc, REGISTER_TARGET);
    // Same length and alphabet as a real nonce, one character of its MAC changed.
    let mut flipped = real.nonce.clone().into_bytes();
    flipped[30] = if flipped[30] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // A nonce made up whole: a timestamp of now in the right format, no valid MAC.
    let made_up = "AAAAAGoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    assert_eq!(made_up.len(), 43);
    for nonce in [
        "garbage".to_owned(),
        String::new(),
        flipped,
        made_up,
        format!("{}x", real.nonce),
    ] {
        let ch = Challenge {
            nonce: nonce.clone(),
            ..real.clone()
        };
        let auth = ue.authorization(&ch, REGISTER_TARGET, body.as_bytes());
        let r = http(
            bmsc.listen,
            "POST",
            REGISTER_TARGET,
            &[("Content-Type", REGISTER), ("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_challenged(&r, &format!("nonce {nonce:?}"));
    }
    assert_unchanged(&bmsc, &phone);
    // Control: the real nonce works.
    let auth = ue.authorization(&real, REGISTER_TARGET, body.as_bytes());
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER), ("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_nonce_older_than_nonce_max_age_gets_401_with_stale_true() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "nonce_max_age_secs = 1", 5);
    let body = register_body(&[TV1]);
    let old = Ue::challenge(&bmsc, REGISTER_TARGET);
    std::thread::sleep(Duration::from_millis(2500));
    let auth = ue.authorization(&old, REGISTER_TARGET, body.as_bytes());
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER), ("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let fresh = challenge_of(&r);
    assert!(
        fresh.stale,
        "stale=true: {:?}",
        r.header("www-authenticate")
    );
    assert_eq!(fresh.realm, REALM);
    assert_ne!(fresh.nonce, old.nonce, "a new nonce comes with stale=true");
    assert_unchanged(&bmsc, &phone);
    // The client retries with the new nonce at once, as RFC 7616 §3.3 says it may.
    let auth = ue.authorization(&fresh, REGISTER_TARGET, body.as_bytes());
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER), ("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        bmsc.store().registration(&ue.btid, TV1).unwrap(),
        Some(LOOPBACK)
    );
}

#[test]
fn a_replayed_request_and_a_nonce_count_going_back_are_refused() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "", 6);
    let body = register_body(&[TV1]);
    let ch = Ue::challenge(&bmsc, REGISTER_TARGET);
    let auth = ue.authorization(&ch, REGISTER_TARGET, body.as_bytes());
    let headers = [("Content-Type", REGISTER), ("Authorization", auth.as_str())];
    let first = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &headers,
        body.as_bytes(),
    );
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(phone.drain(Duration::from_millis(300)).len(), 1, "one push");
    // Deregister, so that a replayed registration would show in the store.
    assert_eq!(ue.deregister(&bmsc, &[TV1]).status, 200);
    assert_eq!(bmsc.store().registration(&ue.btid, TV1).unwrap(), None);
    let sent = bmsc.push_count("sent");

    let replay = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &headers,
        body.as_bytes(),
    );
    assert_challenged(&replay, "replayed request");
    // The same nonce with a lower nonce count (the response itself is right).
    let password = ue.password();
    let answer = |nc: u32| {
        Credentials::answer(
            &ch,
            &ue.btid,
            &password,
            "POST",
            REGISTER_TARGET,
            Some(body.as_bytes()),
            "c0ffee00",
            nc,
        )
        .to_header()
    };
    let (five, three) = (answer(5), answer(3));
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER), ("Authorization", &five)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "nc 5 after nc 1: {}", r.text());
    assert_eq!(ue.deregister(&bmsc, &[TV1]).status, 200);
    let sent = sent + 1;
    for (auth, what) in [(&three, "nc 3 after nc 5"), (&five, "nc 5 again")] {
        let r = http(
            bmsc.listen,
            "POST",
            REGISTER_TARGET,
            &[("Content-Type", REGISTER), ("Authorization", auth)],
            body.as_bytes(),
        );
        assert_challenged(&r, what);
    }
    assert_eq!(bmsc.store().registration(&ue.btid, TV1).unwrap(), None);
    assert_eq!(
        phone.drain(Duration::from_millis(300)).len(),
        1,
        "only nc 5's push"
    );
    assert_eq!(bmsc.push_count("sent"), sent);
}

#[test]
fn credentials_for_another_uri_are_refused() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "", 7);
    let body = register_body(&[TV1]);
    for signed_for in [
        "/keymanagement?requesttype=deregister",
        "/keymanagement",
        "/keymanagement?requesttype=register&x=1",
        "http://bmsc.example.org/keymanagement?requesttype=register",
        "/other?requesttype=register",
    ] {
        let ch = Ue::challenge(&bmsc, REGISTER_TARGET);
        let auth = ue.authorization(&ch, signed_for, body.as_bytes());
        let r = http(
            bmsc.listen,
            "POST",
            REGISTER_TARGET,
            &[("Content-Type", REGISTER), ("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_challenged(&r, signed_for);
    }
    assert_unchanged(&bmsc, &phone);
}

#[test]
fn a_body_changed_after_the_auth_int_response_was_computed_is_refused() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "", 8);
    let signed = register_body(&[TV2]);
    let sent = register_body(&[TV1]);
    assert_eq!(
        signed.len(),
        sent.len(),
        "same length: only the content differs"
    );
    let ch = Ue::challenge(&bmsc, REGISTER_TARGET);
    let auth = ue.authorization(&ch, REGISTER_TARGET, signed.as_bytes());
    assert_eq!(
        Credentials::parse(&auth).unwrap().qop,
        Some(Qop::AuthInt),
        "the body is covered"
    );
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER), ("Authorization", &auth)],
        sent.as_bytes(),
    );
    assert_challenged(&r, "tampered body");
    // One byte appended.
    let ch = Ue::challenge(&bmsc, REGISTER_TARGET);
    let auth = ue.authorization(&ch, REGISTER_TARGET, signed.as_bytes());
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER), ("Authorization", &auth)],
        format!("{signed} ").as_bytes(),
    );
    assert_challenged(&r, "body with a byte appended");
    assert_unchanged(&bmsc, &phone);
}

#[test]
fn authenticated_requests_with_the_wrong_content_type_get_415() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "", 9);
    let body = register_body(&[TV1]);
    for media in [
        "application/xml",
        "text/xml",
        MSK_REQUEST,
        DEREGISTER,
        "application/mbms-register-response+xml",
        "application/mbms-register+json",
        "",
    ] {
        let r = post_auth(&bmsc, &mut ue, REGISTER_TARGET, media, body.as_bytes(), &[]);
        assert_eq!(r.status, 415, "Content-Type {media:?}: {}", r.text());
        assert!(r.text().contains(REGISTER), "{}", r.text());
    }
    let msk_body = mbms_ua::xml::write_msk_request(&mbms_ua::xml::MskRequest {
        keys: vec![mbms_ua::xml::KeyRef {
            key_domain_id: common::kd(),
            msk_id: mbms_core::MskId(0x0001_0001),
        }],
    });
    let r = post_auth(
        &bmsc,
        &mut ue,
        "/keymanagement?requesttype=msk-request",
        REGISTER,
        msk_body.as_bytes(),
        &[],
    );
    assert_eq!(r.status, 415, "{}", r.text());
    assert_unchanged(&bmsc, &phone);
    // Control: parameters and case of the media type do not matter.
    let r = post_auth(
        &bmsc,
        &mut ue,
        REGISTER_TARGET,
        "Application/MBMS-Register+XML; charset=utf-8",
        body.as_bytes(),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn malformed_bodies_get_400() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "", 10);
    let ns = "urn:3GPP:metadata:2005:MBMS:mbmsRegister";
    let bomb = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">\
         <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
         <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\n\
         <mbmsUserServiceRegistration xmlns=\"{ns}\"><serviceID>&lol3;</serviceID>\
         </mbmsUserServiceRegistration>"
    );
    let xxe = format!(
        "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
         <mbmsUserServiceRegistration xmlns=\"{ns}\"><serviceID>&x;</serviceID>\
         </mbmsUserServiceRegistration>"
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", vec![]),
        (
            "unclosed root",
            format!("<mbmsUserServiceRegistration xmlns=\"{ns}\"><serviceID>{TV1}</serviceID>")
                .into_bytes(),
        ),
        ("not XML", b"serviceID=urn:3gpp:mbms:service:tv1".to_vec()),
        (
            "wrong root",
            format!("<mbmsUserServiceDeregistration xmlns=\"{ns}\"><serviceID>{TV1}</serviceID></mbmsUserServiceDeregistration>")
                .into_bytes(),
        ),
        (
            "wrong namespace",
            format!("<mbmsUserServiceRegistration xmlns=\"urn:example:other\"><serviceID>{TV1}</serviceID></mbmsUserServiceRegistration>")
                .into_bytes(),
        ),
        (
            "no namespace",
            format!("<mbmsUserServiceRegistration><serviceID>{TV1}</serviceID></mbmsUserServiceRegistration>")
                .into_bytes(),
        ),
        ("entity bomb", bomb.into_bytes()),
        ("external entity", xxe.into_bytes()),
        (
            "no service",
            format!("<mbmsUserServiceRegistration xmlns=\"{ns}\"/>").into_bytes(),
        ),
        (
            "empty service ID",
            format!("<mbmsUserServiceRegistration xmlns=\"{ns}\"><serviceID> </serviceID></mbmsUserServiceRegistration>")
                .into_bytes(),
        ),
        (
            "not UTF-8",
            [
                format!("<mbmsUserServiceRegistration xmlns=\"{ns}\"><serviceID>").as_bytes(),
                &[0xff, 0xfe],
                b"</serviceID></mbmsUserServiceRegistration>",
            ]
            .concat(),
        ),
        (
            "second root",
            format!("<mbmsUserServiceRegistration xmlns=\"{ns}\"><serviceID>{TV1}</serviceID></mbmsUserServiceRegistration><x/>")
                .into_bytes(),
        ),
    ];
    for (what, body) in &cases {
        let r = post_auth(&bmsc, &mut ue, REGISTER_TARGET, REGISTER, body, &[]);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    // The same for the other two procedures.
    let r = post_auth(
        &bmsc,
        &mut ue,
        "/keymanagement?requesttype=deregister",
        DEREGISTER,
        register_body(&[TV1]).as_bytes(),
        &[],
    );
    assert_eq!(
        r.status,
        400,
        "registration body to deregister: {}",
        r.text()
    );
    let r = post_auth(
        &bmsc,
        &mut ue,
        "/keymanagement?requesttype=msk-request",
        MSK_REQUEST,
        b"<mbmsMSKRequest xmlns=\"urn:3GPP:metadata:2005:MBMS:mskRequest\"><keyID>!!</keyID></mbmsMSKRequest>",
        &[],
    );
    assert_eq!(r.status, 400, "bad key ID: {}", r.text());
    assert_unchanged(&bmsc, &phone);
}

#[test]
fn unknown_or_missing_requesttype_gets_400() {
    let phone = Phone::new();
    let (_dir, bmsc, mut ue) = start_armed(&phone, "", 11);
    let body = register_body(&[TV1]);
    for target in [
        "/keymanagement",
        "/keymanagement?",
        "/keymanagement?requesttype=",
        "/keymanagement?requesttype=bogus",
        "/keymanagement?requesttype=REGISTER",
        "/keymanagement?request=register",
        "/keymanagement?requesttype=register&requesttype=deregister",
    ] {
        // Without credentials, and with credentials that are right for this target.
        let r = http(
            bmsc.listen,
            "POST",
            target,
            &[("Content-Type", REGISTER)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        let ch = Ue::challenge(&bmsc, REGISTER_TARGET);
        let auth = ue.authorization(&ch, target, body.as_bytes());
        let r = http(
            bmsc.listen,
            "POST",
            target,
            &[("Content-Type", REGISTER), ("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 400, "{target} (authenticated): {}", r.text());
    }
    assert_unchanged(&bmsc, &phone);
}

/// Sends the head of a POST with `Content-Length: declared` and `sent` body bytes (from
/// another thread, so a server that stops reading cannot block this one), and returns the
/// response read within `within` (`None` if none came).
fn post_declaring(
    bmsc: &Bmsc,
    extra_headers: &str,
    declared: usize,
    sent: usize,
    within: Duration,
) -> Option<Response> {
    let mut s = TcpStream::connect(bmsc.listen).unwrap();
    let head = format!(
        "POST {REGISTER_TARGET} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: {REGISTER}\r\nContent-Length: {declared}\r\n{extra_headers}\r\n",
        bmsc.listen
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(within)).unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = sent;
        while left > 0 {
            let n = left.min(chunk.len());
            if w.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n;
        }
        // Keep the connection open (no FIN): the server must answer without the rest.
        w
    });
    let deadline = Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let response = loop {
        if let Some(r) = try_parse_response(&raw) {
            break Some(r);
        }
        if Instant::now() > deadline {
            break None;
        }
        match s.read(&mut buf) {
            Ok(0) => break try_parse_response(&raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break try_parse_response(&raw),
        }
    };
    let _ = s.shutdown(std::net::Shutdown::Both);
    drop(writer.join().unwrap());
    response
}

#[test]
fn a_body_over_max_body_bytes_gets_413_and_the_server_does_not_wait_for_all_of_it() {
    let phone = Phone::new();
    let (_dir, bmsc, _ue) = start_armed(&phone, "", 12);
    let mib = 1024 * 1024;
    // All of 1 MiB offered.
    let t = Instant::now();
    let r = post_declaring(&bmsc, "", mib, mib, Duration::from_secs(5)).expect("an answer");
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(5));
    // 64 KiB of a declared 1 MiB, then nothing: the answer comes without the rest.
    let r = post_declaring(&bmsc, "", mib, 64 * 1024, Duration::from_secs(5))
        .expect("413 without the whole body");
    assert_eq!(r.status, 413, "{}", r.text());
    // The limit is exact: 16384 bytes are read (and the request is then challenged),
    // 16385 are not.
    let body = vec![b' '; 16384];
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER)],
        &body,
    );
    assert_eq!(
        r.status,
        401,
        "16384 bytes are within the limit: {}",
        r.text()
    );
    let body = vec![b' '; 16385];
    let r = http(
        bmsc.listen,
        "POST",
        REGISTER_TARGET,
        &[("Content-Type", REGISTER)],
        &body,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    // The admin API has the same limit.
    let body = vec![b' '; 16385];
    let r = http(bmsc.admin, "POST", "/admin/ue", &[], &body);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(bmsc.health()["status"], "ok");
    assert_unchanged(&bmsc, &phone);
}

/// `max_body_bytes` is documented (config.rs) as "larger: 413 before the body is read": a
/// declared `Content-Length` above the limit should be refused from the head alone.
#[test]
fn a_declared_content_length_over_max_body_bytes_gets_413_before_any_body_byte() {
    let phone = Phone::new();
    let (_dir, bmsc, _ue) = start_armed(&phone, "", 13);
    let r = post_declaring(&bmsc, "", 1024 * 1024, 0, Duration::from_secs(3));
    assert_eq!(
        r.map(|r| r.status),
        Some(413),
        "no answer to a head declaring 1 MiB"
    );
}

#[test]
fn other_methods_on_keymanagement_get_405() {
    let phone = Phone::new();
    let (_dir, bmsc, _ue) = start_armed(&phone, "", 14);
    for method in ["GET", "PUT", "DELETE"] {
        let r = http(bmsc.listen, method, REGISTER_TARGET, &[], b"");
        assert_eq!(r.status, 405, "{method}: {}", r.text());
        assert!(
            r.header("allow").is_some_and(|a| a.contains("POST")),
            "{method}: Allow: {:?}",
            r.header("allow")
        );
    }
    // The admin API is not served on the UE-facing port, and the reverse.
    let r = http(bmsc.listen, "POST", "/admin/ue", &[], b"{}");
    assert_eq!(r.status, 404);
    let r = http(bmsc.admin, "POST", REGISTER_TARGET, &[], b"");
    assert_eq!(r.status, 404);
    assert_unchanged(&bmsc, &phone);
}

fn admin(bmsc: &Bmsc, method: &str, target: &str, body: &str) -> Response {
    http(bmsc.admin, method, target, &[], body.as_bytes())
}

#[test]
fn admin_api_refuses_bad_requests_with_400_and_unknown_things_with_404() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &[]);
    let k = "11".repeat(32);
    let rand = "22".repeat(16);
    let long_btid = "b".repeat(256);
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "btid=x".into()),
        ("truncated JSON", "{\"btid\": \"x\"".into()),
        ("not an object", "[]".into()),
        ("empty object", "{}".into()),
        ("no keys", r#"{"btid": "t@b"}"#.into()),
        ("muk only", format!(r#"{{"btid": "t@b", "muk": "{k}"}}"#)),
        ("mrk only", format!(r#"{{"btid": "t@b", "mrk": "{k}"}}"#)),
        ("no btid", format!(r#"{{"muk": "{k}", "mrk": "{k}"}}"#)),
        (
            "empty btid",
            format!(r#"{{"btid": "", "muk": "{k}", "mrk": "{k}"}}"#),
        ),
        (
            "btid of 256 bytes",
            format!(r#"{{"btid": "{long_btid}", "muk": "{k}", "mrk": "{k}"}}"#),
        ),
        (
            "muk not hex",
            format!(
                r#"{{"btid": "t@b", "muk": "{}", "mrk": "{k}"}}"#,
                "zz".repeat(32)
            ),
        ),
        (
            "mrk too short",
            format!(
                r#"{{"btid": "t@b", "muk": "{k}", "mrk": "{}"}}"#,
                "11".repeat(31)
            ),
        ),
        (
            "muk too long",
            format!(r#"{{"btid": "t@b", "muk": "{k}00", "mrk": "{k}"}}"#),
        ),
        (
            "muk/mrk and ks/rand/impi",
            format!(
                r#"{{"btid": "t@b", "muk": "{k}", "mrk": "{k}", "ks": "{k}", "rand": "{rand}", "impi": "i@ims"}}"#
            ),
        ),
        (
            "muk and ks",
            format!(
                r#"{{"btid": "t@b", "muk": "{k}", "ks": "{k}", "rand": "{rand}", "impi": "i@ims"}}"#
            ),
        ),
        (
            "ks without impi",
            format!(r#"{{"btid": "t@b", "ks": "{k}", "rand": "{rand}"}}"#),
        ),
        (
            "rand of 15 bytes",
            format!(
                r#"{{"btid": "t@b", "ks": "{k}", "rand": "{}", "impi": "i@ims"}}"#,
                "22".repeat(15)
            ),
        ),
        (
            "ks not hex",
            format!(
                r#"{{"btid": "t@b", "ks": "{}", "rand": "{rand}", "impi": "i@ims"}}"#,
                "g".repeat(64)
            ),
        ),
        (
            "unknown field",
            format!(r#"{{"btid": "t@b", "muk": "{k}", "mrk": "{k}", "admin": true}}"#),
        ),
        (
            "negative expires",
            format!(r#"{{"btid": "t@b", "muk": "{k}", "mrk": "{k}", "expires": -1}}"#),
        ),
        (
            "expires as a string",
            format!(r#"{{"btid": "t@b", "muk": "{k}", "mrk": "{k}", "expires": "soon"}}"#),
        ),
        (
            "btid not a string",
            format!(r#"{{"btid": 7, "muk": "{k}", "mrk": "{k}"}}"#),
        ),
    ];
    for (what, body) in &cases {
        let r = admin(&bmsc, "POST", "/admin/ue", body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    assert_eq!(bmsc.health()["ues"], 0, "no UE provisioned");
    assert_eq!(bmsc.store().ue_count().unwrap(), 0);

    let r = admin(&bmsc, "DELETE", "/admin/ue?btid=unknown", "");
    assert_eq!(r.status, 404, "{}", r.text());
    let r = admin(&bmsc, "DELETE", "/admin/ue", "");
    assert_eq!(r.status, 400, "no btid: {}", r.text());

    let r = admin(
        &bmsc,
        "POST",
        "/admin/msk",
        r#"{"service": "urn:3gpp:mbms:service:nope"}"#,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    for (what, body) in [
        ("not JSON", "service=tv1"),
        ("no service", "{}"),
        ("service not a string", r#"{"service": 1}"#),
        (
            "unknown field",
            r#"{"service": "urn:3gpp:mbms:service:tv1", "x": 1}"#,
        ),
    ] {
        let r = admin(&bmsc, "POST", "/admin/msk", body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    for s in SERVICES {
        assert!(bmsc.current_msk(s).is_none(), "no MSK created for {s}");
    }
    // Methods the admin routes do not have.
    assert_eq!(admin(&bmsc, "GET", "/admin/ue", "").status, 405);
    assert_eq!(admin(&bmsc, "GET", "/admin/msk", "").status, 405);

    // Control: a good request after all that works, and can be deleted once.
    let ok = format!(r#"{{"btid": "t@b", "muk": "{k}", "mrk": "{k}"}}"#);
    assert_eq!(admin(&bmsc, "POST", "/admin/ue", &ok).status, 204);
    assert_eq!(admin(&bmsc, "DELETE", "/admin/ue?btid=t@b", "").status, 204);
    assert_eq!(admin(&bmsc, "DELETE", "/admin/ue?btid=t@b", "").status, 404);
    assert_unchanged(&bmsc, &phone);
}

/// An `expires` too large for the store is the client's error, not the server's.
#[test]
fn admin_expires_beyond_the_store_range_gets_400() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &[]);
    let k = "11".repeat(32);
    let body = format!(
        r#"{{"btid": "t@b", "muk": "{k}", "mrk": "{k}", "expires": {}}}"#,
        u64::MAX
    );
    let r = admin(&bmsc, "POST", "/admin/ue", &body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(bmsc.store().ue_count().unwrap(), 0);
}

#[test]
fn gba_u_provisioning_gives_a_ue_that_registers_and_opens_its_push() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &["--no-verify"]);
    let msk_id = bmsc.new_msk(TV1);
    let ks: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let rand: [u8; 16] = std::array::from_fn(|i| 0xa0 + u8::try_from(i).unwrap());
    let impi = "user@ims.mnc001.mcc001.3gppnetwork.org";
    let btid = "gba-u-tid@bsf.example.org";
    let body = serde_json::json!({
        "btid": btid, "ks": hex::encode(ks), "rand": hex::encode(rand), "impi": impi
    })
    .to_string();
    let r = http(bmsc.admin, "POST", "/admin/ue", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());

    let naf = mbms_core::gba::naf_id(REALM, mbms_core::gba::UA_PROTOCOL_MBMS);
    let (muk, mrk) = mbms_core::gba::gba_u_keys(&ks, &rand, impi, &naf);
    assert_ne!(muk.expose(), mrk.expose());
    let stored = bmsc.store().ue(btid).unwrap().expect("provisioned");
    assert_eq!(stored.muk.expose(), muk.expose(), "MUK = Ks_int_NAF");
    assert_eq!(stored.mrk.expose(), mrk.expose(), "MRK = Ks_ext_NAF");

    // Keys derived for another IMPI or another NAF do not authenticate.
    let (_, other_mrk) = mbms_core::gba::gba_u_keys(&ks, &rand, "other@ims", &naf);
    let mut wrong = Ue::with_keys(btid, *muk.expose(), *other_mrk.expose());
    assert_eq!(wrong.register(&bmsc, &[TV1]).status, 401);
    let other_naf = mbms_core::gba::naf_id("bmsc.other.org", mbms_core::gba::UA_PROTOCOL_MBMS);
    let (_, other_mrk) = mbms_core::gba::gba_u_keys(&ks, &rand, impi, &other_naf);
    let mut wrong = Ue::with_keys(btid, *muk.expose(), *other_mrk.expose());
    assert_eq!(wrong.register(&bmsc, &[TV1]).status, 401);
    assert!(phone.drain(Duration::from_millis(200)).is_empty());

    let mut ue = Ue::with_keys(btid, *muk.expose(), *mrk.expose());
    let r = ue.register(&bmsc, &[TV1]);
    assert_eq!(r.status, 200, "{}", r.text());
    let (msg, _) = phone.recv(Duration::from_secs(5)).expect("MSK push");
    let opened = ue.open(&msg);
    assert_eq!(opened.msk_id.0, msk_id);
    assert_eq!(opened.msk, bmsc.current_msk(TV1).unwrap().msk);
}

#[test]
fn garbage_datagrams_to_the_push_socket_are_counted_and_the_server_stays_up() {
    let phone = Phone::new();
    // Verification on, and slow retransmissions: the real message stays pending throughout.
    let (_dir, bmsc) = start(&phone, "", &["--first-retry-ms", "10000"]);
    let mut ue = Ue::new(15);
    bmsc.provision(&ue);
    bmsc.new_msk(TV1);
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    let (msg, _) = phone.recv(Duration::from_secs(5)).expect("MSK push");

    // Pseudo-random bytes (xorshift), a truncated MSK message, the MSK message echoed back,
    // an empty datagram, and one larger than the receive buffer.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[0]
        })
        .collect();
    let garbage: Vec<Vec<u8>> = vec![
        random,
        msg[..msg.len() / 2].to_vec(),
        msg[..10].to_vec(),
        msg.clone(),
        vec![],
        vec![0x01; 3000],
    ];
    for (i, d) in garbage.iter().enumerate() {
        phone.sock.send_to(d, bmsc.push_from).unwrap();
        bmsc.wait_push_count("verification_rejected", u64::try_from(i).unwrap() + 1);
    }
    let h = bmsc.health();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["push"]["verified"], 0);
    assert_eq!(
        h["push"]["verification_rejected"],
        u64::try_from(garbage.len()).unwrap()
    );
    // Still serving: the real verification of the message is accepted (it is still pending:
    // the echo did not clear it).
    let opened = ue.open(&msg);
    phone
        .sock
        .send_to(&ue.verification(&opened), bmsc.push_from)
        .unwrap();
    bmsc.wait_push_count("verified", 1);
    let mut other = Ue::new(16);
    bmsc.provision(&other);
    assert_eq!(other.register(&bmsc, &[TV1]).status, 200);
    let got = phone.drain(Duration::from_millis(500));
    assert!(
        got.iter().any(|m| common::idr_of(m) == other.btid),
        "the new registration is pushed to"
    );
}

/// Writes a config file into `dir` and runs `mbms-bmsc serve --config` with it.
fn serve_with(dir: &Path, toml: &str) -> common::Exit {
    let path = dir.join("bmsc.toml");
    std::fs::write(&path, toml).unwrap();
    run_cli(
        &["serve", "--config", path.to_str().unwrap()],
        Duration::from_secs(5),
    )
}

#[test]
fn configuration_errors_exit_1_with_an_error_line_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let base = config(&state, 40000, "");
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown key", config(&state, 40000, "bogus = 1"), "bogus"),
        (
            "unknown key in [push]",
            base.replace("[push]\n", "[push]\nspeed = 3\n"),
            "speed",
        ),
        (
            "bad key_domain_id",
            config(&state, 40000, "key_domain_id = \"zz\""),
            "key_domain_id",
        ),
        (
            "key_domain_id of 4 bytes",
            config(&state, 40000, "key_domain_id = \"00f11000\""),
            "key_domain_id",
        ),
        (
            "unreachable PostgreSQL store",
            config(
                &state,
                40000,
                "store = \"postgres://mbms:secret@127.0.0.1:1/mbms\"",
            ),
            "cannot open key store",
        ),
        (
            "unsupported store URL",
            config(&state, 40000, "store = \"mysql://x\""),
            "store",
        ),
        (
            "duplicate service IDs",
            format!("{base}\n[[service]]\nid = \"{TV1}\"\n"),
            "listed twice",
        ),
        (
            "nonce_max_age_secs = 0",
            config(&state, 40000, "nonce_max_age_secs = 0"),
            "nonce_max_age_secs",
        ),
        ("push port 0", config(&state, 0, ""), "push.port"),
    ];
    for (what, toml, names) in &cases {
        let out = serve_with(dir.path(), toml);
        assert_eq!(out.code, Some(1), "{what}: {out:?}");
        assert!(out.elapsed < Duration::from_secs(5), "{what}: {out:?}");
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("mbms-bmsc: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{what}: {:?}", out.stderr);
        assert!(
            out.stderr.starts_with("mbms-bmsc: error:"),
            "{what}: the error comes first: {:?}",
            out.stderr
        );
        assert!(out.stderr.contains(names), "{what}: {:?}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{what}: {:?}", out.stderr);
        assert!(
            !out.stderr.contains("secret"),
            "{what}: password shown: {:?}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{what}: no listening line");
        assert!(
            !state.exists(),
            "{what}: the state directory is not created"
        );
    }
    // A file that does not exist.
    let out = run_cli(
        &[
            "serve",
            "--config",
            dir.path().join("missing.toml").to_str().unwrap(),
        ],
        Duration::from_secs(5),
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("mbms-bmsc: error: cannot read"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

/// The error of every configuration mistake is one line (as `mbms-send`'s are, docs/sender.md),
/// so that logs and scripts can take the first line as the whole message.
#[test]
fn a_configuration_parse_error_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for extra in ["bogus = 1", "nonce_max_age_secs = \"x\""] {
        let out = serve_with(dir.path(), &config(&state, 40000, extra));
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
    }
}

#[test]
fn bad_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["serve", "--bogus"],
        vec!["serve", "--state-dir", state, "--listen", "not-an-address"],
        vec!["serve", "--state-dir", state, "--push-port", "70000"],
        vec!["serve", "--state-dir", state, "--retries", "-1"],
        vec!["serve", "--state-dir", state, "--log-format", "xml"],
        vec!["ue", "add", "--state-dir", state, "--btid", "x"],
    ] {
        let out = run_cli(&args, Duration::from_secs(5));
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: usage on stderr");
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
    }
    assert!(!Path::new(state).exists());
    let out = run_cli(&["--help"], Duration::from_secs(5));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("serve"), "{out:?}");
}

/// Registers `ue` to TV1 with `X-Forwarded-For: xff` and returns the stored address.
fn register_forwarded(bmsc: &Bmsc, ue: &mut Ue, xff: &[&str]) -> Option<IpAddr> {
    let body = register_body(&[TV1]);
    let extra: Vec<(&str, &str)> = xff.iter().map(|v| ("X-Forwarded-For", *v)).collect();
    let r = post_auth(bmsc, ue, REGISTER_TARGET, REGISTER, body.as_bytes(), &extra);
    assert_eq!(r.status, 200, "{}", r.text());
    bmsc.store().registration(&ue.btid, TV1).unwrap()
}

#[test]
fn x_forwarded_for_is_ignored_without_a_trusted_proxy() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "", &[]);
    let mut ue = Ue::new(17);
    bmsc.provision(&ue);
    bmsc.new_msk(TV1);
    assert_eq!(
        register_forwarded(&bmsc, &mut ue, &["10.1.2.3"]),
        Some(LOOPBACK)
    );
    // So the push goes to the request's source, where the phone is.
    let (msg, _) = phone
        .recv(Duration::from_secs(5))
        .expect("push to 127.0.0.1");
    assert_eq!(common::idr_of(&msg), ue.btid);
    // A proxy other than the peer is not trusted either.
    let phone2 = Phone::new();
    let (_dir2, bmsc2) = start(&phone2, "trusted_proxy = \"10.0.0.1\"", &[]);
    bmsc2.provision(&ue);
    assert_eq!(
        register_forwarded(&bmsc2, &mut ue, &["10.1.2.3"]),
        Some(LOOPBACK)
    );
}

#[test]
fn x_forwarded_for_from_the_trusted_proxy_is_the_ue_address() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "trusted_proxy = \"127.0.0.1\"", &[]);
    let mut ue = Ue::new(18);
    bmsc.provision(&ue);
    // No MSK: nothing is pushed to the (unreachable) forwarded address.
    assert_eq!(
        register_forwarded(&bmsc, &mut ue, &["10.1.2.3"]),
        Some("10.1.2.3".parse().unwrap())
    );
    assert_eq!(
        register_forwarded(&bmsc, &mut ue, &[" 2001:db8::7 "]),
        Some("2001:db8::7".parse().unwrap())
    );
    // Without the header, or with one that is no address: the peer's address.
    assert_eq!(register_forwarded(&bmsc, &mut ue, &[]), Some(LOOPBACK));
    assert_eq!(
        register_forwarded(&bmsc, &mut ue, &["not-an-address"]),
        Some(LOOPBACK)
    );
    assert_eq!(bmsc.push_count("sent"), 0);
}

/// A proxy appends the address it saw to `X-Forwarded-For` (nginx
/// `$proxy_add_x_forwarded_for`) or adds a header line of its own (HAProxy `forwardfor`); what
/// the UE itself sent comes first. Only the last address is the trusted proxy's word.
#[test]
fn x_forwarded_for_takes_the_address_the_trusted_proxy_added() {
    let phone = Phone::new();
    let (_dir, bmsc) = start(&phone, "trusted_proxy = \"127.0.0.1\"", &[]);
    let mut ue = Ue::new(19);
    bmsc.provision(&ue);
    // The UE sent "X-Forwarded-For: 192.0.2.66"; the proxy appended its peer 10.1.2.3.
    assert_eq!(
        register_forwarded(&bmsc, &mut ue, &["192.0.2.66, 10.1.2.3"]),
        Some("10.1.2.3".parse().unwrap()),
        "appended by the proxy"
    );
    assert_eq!(
        register_forwarded(&bmsc, &mut ue, &["192.0.2.66", "10.1.2.4"]),
        Some("10.1.2.4".parse().unwrap()),
        "header line added by the proxy"
    );
}

/// With `listen = "[::]:PORT"` (dual stack), an IPv4 UE's peer address is IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`): it must be stored as the IPv4 address it is, or the pushes (from the
/// IPv4 push socket) cannot reach it. Needs IPv6 on the host.
#[test]
fn an_ipv4_ue_of_a_dual_stack_listener_is_stored_as_ipv4_and_gets_its_push() {
    let phone = Phone::new();
    let (_dir, mut bmsc) = start(&phone, "", &["--listen", "[::]:0", "--no-verify"]);
    bmsc.listen = std::net::SocketAddr::new(LOOPBACK, bmsc.listen.port());
    let mut ue = Ue::new(40);
    bmsc.provision(&ue);
    bmsc.new_msk(TV1);
    assert_eq!(ue.register(&bmsc, &[TV1]).status, 200);
    let pushed = phone.recv(Duration::from_secs(2));
    assert!(
        pushed.is_some(),
        "no MSK push to the IPv4 UE; health {}",
        bmsc.health()
    );
    assert_eq!(
        bmsc.store().registration(&ue.btid, TV1).unwrap(),
        Some(LOOPBACK)
    );
}

/// The same for the trusted proxy: `trusted_proxy = "127.0.0.1"` must match an IPv4 proxy
/// that connects to a dual-stack listener.
#[test]
fn the_trusted_proxy_is_recognized_behind_a_dual_stack_listener() {
    let phone = Phone::new();
    let (_dir, mut bmsc) = start(
        &phone,
        "trusted_proxy = \"127.0.0.1\"",
        &["--listen", "[::]:0"],
    );
    bmsc.listen = std::net::SocketAddr::new(LOOPBACK, bmsc.listen.port());
    let mut ue = Ue::new(41);
    bmsc.provision(&ue);
    assert_eq!(
        register_forwarded(&bmsc, &mut ue, &["10.1.2.3"]),
        Some("10.1.2.3".parse().unwrap())
    );
}

/// RFC 7616 §3.3: stale=true only "if … the nonce is invalid and the response is valid for
/// that nonce"; otherwise the client retries with the same wrong password without asking the
/// user again.
#[test]
fn a_stale_nonce_with_a_wrong_password_is_not_called_stale() {
    let phone = Phone::new();
    let (_dir, bmsc, ue) = start_armed(&phone, "nonce_max_age_secs = 1", 42);
    let body = register_body(&[TV1]);
    let old = Ue::challenge(&bmsc, REGISTER_TARGET);
    std::thread::sleep(Duration::from_millis(2500));
    for mut wrong in [Ue::with_keys(&ue.btid, ue.muk, [0x55; 32]), Ue::new(43)] {
        let auth = wrong.authorization(&old, REGISTER_TARGET, body.as_bytes());
        let r = http(
            bmsc.listen,
            "POST",
            REGISTER_TARGET,
            &[("Content-Type", REGISTER), ("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_challenged(&r, &wrong.btid);
    }
}
