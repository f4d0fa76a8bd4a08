//! Tests of the XML bodies of the UE ↔ BM-SC procedures (TS 33.246 §6.3.2.1A/B, §6.3.2.2.1,
//! §6.3.2.4; TS 26.346 §11).

use std::time::{Duration, Instant};

use mbms_core::keys::{KeyDomainId, MskId};
use mbms_ua::xml::{
    self, KeyRef, KeyStatus, MAX_DEPTH, MAX_ITEMS, MAX_SERVICE_ID_LEN, MAX_TEXT_LEN, MskRequest,
    Procedure, ServiceList, ServiceStatus, StatusCode, XmlError,
};
use proptest::prelude::*;

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

fn key(domain: [u8; 3], group: u16, number: u16) -> KeyRef {
    KeyRef {
        key_domain_id: KeyDomainId(domain),
        msk_id: MskId::new(group, number),
    }
}

fn sample_key() -> KeyRef {
    key([0x32, 0xf4, 0x01], 0x0102, 0x0304)
}

fn services(ids: &[&str]) -> ServiceList {
    ServiceList {
        service_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn register_body(inner: &str) -> String {
    format!(
        "<mbmsUserServiceRegistration xmlns=\"{}\">{inner}</mbmsUserServiceRegistration>",
        xml::REGISTER_NS
    )
}

fn msk_body(inner: &str) -> String {
    format!(
        "<mbmsMSKRequest xmlns=\"{}\">{inner}</mbmsMSKRequest>",
        xml::MSK_REQUEST_NS
    )
}

fn parse_register(body: &str) -> Result<ServiceList, XmlError> {
    xml::parse_service_list(Procedure::Register, body.as_bytes())
}

fn parse_msk(body: &str) -> Result<MskRequest, XmlError> {
    xml::parse_msk_request(body.as_bytes())
}

/// Feeds `body` to every parser; used by the never-panic tests.
fn parse_all(body: &[u8]) {
    let _ = xml::parse_service_list(Procedure::Register, body);
    let _ = xml::parse_service_list(Procedure::Deregister, body);
    let _ = xml::parse_msk_request(body);
    let _ = xml::parse_register_response(body);
    let _ = xml::parse_msk_response(body);
}

fn sample_bodies() -> Vec<String> {
    let list = services(&["urn:3gpp:mbms:service:a", "urn:x:<&>\"'"]);
    let keys = vec![sample_key(), key([1, 2, 3], 0, 0xffff)];
    vec![
        xml::write_service_list(Procedure::Register, &list),
        xml::write_service_list(Procedure::Deregister, &list),
        xml::write_msk_request(&MskRequest { keys: keys.clone() }),
        xml::write_register_response(&[ServiceStatus {
            service_id: "urn:3gpp:mbms:service:a".into(),
            status: StatusCode::OK,
        }]),
        xml::write_msk_response(&[KeyStatus {
            key: keys[0],
            status: StatusCode::NOT_FOUND,
        }]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Round trips.
// ---------------------------------------------------------------------------------------------

#[test]
fn register_round_trip() {
    let list = services(&["urn:3gpp:mbms:service:xyz", "urn:3gpp:mbms:service:abc"]);
    let body = xml::write_service_list(Procedure::Register, &list);
    assert!(body.starts_with(DECL));
    assert!(body.contains(
        "<mbmsUserServiceRegistration xmlns=\"urn:3GPP:metadata:2005:MBMS:mbmsRegister\">"
    ));
    assert_eq!(parse_register(&body), Ok(list));
}

#[test]
fn deregister_round_trip() {
    let list = services(&["urn:3gpp:mbms:service:xyz"]);
    let body = xml::write_service_list(Procedure::Deregister, &list);
    assert!(body.contains(
        "<mbmsUserServiceDeregistration xmlns=\"urn:3GPP:metadata:2005:MBMS:mbmsDeregister\">"
    ));
    assert_eq!(
        xml::parse_service_list(Procedure::Deregister, body.as_bytes()),
        Ok(list)
    );
}

#[test]
fn service_id_escaping_round_trip() {
    let list = services(&[
        "urn:x:<&>\"'",
        "a&amp;b",
        "tab\there",
        "cr\rlf\nx",
        "ünï©ødé 😀",
    ]);
    for p in [Procedure::Register, Procedure::Deregister] {
        let body = xml::write_service_list(p, &list);
        assert!(body.contains("urn:x:&lt;&amp;&gt;&quot;&apos;"), "{body}");
        assert!(body.contains("a&amp;amp;b"));
        assert_eq!(
            xml::parse_service_list(p, body.as_bytes()),
            Ok(list.clone())
        );
    }
    let statuses: Vec<ServiceStatus> = list
        .service_ids
        .iter()
        .map(|id| ServiceStatus {
            service_id: id.clone(),
            status: StatusCode::FORBIDDEN,
        })
        .collect();
    let body = xml::write_register_response(&statuses);
    assert_eq!(xml::parse_register_response(body.as_bytes()), Ok(statuses));
}

#[test]
fn msk_request_round_trip() {
    let req = MskRequest {
        keys: vec![
            sample_key(),
            key([0, 0, 0], 0, 0),
            key([0xff; 3], 0xffff, 0xffff),
        ],
    };
    let body = xml::write_msk_request(&req);
    assert!(body.contains("<mbmsMSKRequest xmlns=\"urn:3GPP:metadata:2005:MBMS:mskRequest\">"));
    assert_eq!(xml::parse_msk_request(body.as_bytes()), Ok(req));
}

#[test]
fn register_response_round_trip() {
    let items = vec![
        ServiceStatus {
            service_id: "urn:3gpp:mbms:service:a".into(),
            status: StatusCode::OK,
        },
        ServiceStatus {
            service_id: "urn:3gpp:mbms:service:b".into(),
            status: StatusCode::NOT_FOUND,
        },
        ServiceStatus {
            service_id: "urn:3gpp:mbms:service:a".into(),
            status: StatusCode::UNAVAILABLE,
        },
    ];
    let body = xml::write_register_response(&items);
    assert!(body.contains(
        "<mbmsUserServiceRegistrationResponse xmlns=\"urn:3GPP:metadata:2005:MBMS:mbmsRegisterResponse\">"
    ));
    assert_eq!(xml::parse_register_response(body.as_bytes()), Ok(items));
}

#[test]
fn msk_response_round_trip() {
    let statuses = [
        StatusCode::OK,
        StatusCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::INTERNAL,
        StatusCode::UNAVAILABLE,
    ];
    let items: Vec<KeyStatus> = statuses
        .iter()
        .zip(0u16..)
        .map(|(s, n)| KeyStatus {
            key: key([1, 2, 3], 7, n),
            status: *s,
        })
        .collect();
    let body = xml::write_msk_response(&items);
    assert!(body.contains("<mbmsMSKResponse xmlns=\"urn:3GPP:metadata:2005:MBMS:mskResponse\">"));
    assert_eq!(xml::parse_msk_response(body.as_bytes()), Ok(items));
}

#[test]
fn msk_response_exact_output() {
    let body = xml::write_msk_response(&[KeyStatus {
        key: sample_key(),
        status: StatusCode::NOT_FOUND,
    }]);
    let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <mbmsMSKResponse xmlns=\"urn:3GPP:metadata:2005:MBMS:mskResponse\">\n  \
        <keyResponse>\n    \
        <keyID>MvQBAQIDBA==</keyID>\n    \
        <statusCode>404</statusCode>\n  \
        </keyResponse>\n\
        </mbmsMSKResponse>\n";
    assert_eq!(body, expected);
}

#[test]
fn key_ref_base64() {
    let k = sample_key();
    assert_eq!(k.to_bytes(), [0x32, 0xf4, 0x01, 1, 2, 3, 4]);
    assert_eq!(k.to_base64(), "MvQBAQIDBA==");
    assert_eq!(KeyRef::from_base64("MvQBAQIDBA=="), Ok(k));
    assert_eq!(KeyRef::from_base64(" \n\tMvQBAQIDBA==\r\n "), Ok(k));
    assert_eq!(KeyRef::from_bytes(k.to_bytes()), k);
}

#[test]
fn duplicates_kept_in_order() {
    let body =
        register_body("<serviceID>b</serviceID><serviceID>a</serviceID><serviceID>b</serviceID>");
    assert_eq!(parse_register(&body), Ok(services(&["b", "a", "b"])));
    let k = sample_key().to_base64();
    let body = msk_body(&format!("<keyID>{k}</keyID><keyID>{k}</keyID>"));
    assert_eq!(
        parse_msk(&body),
        Ok(MskRequest {
            keys: vec![sample_key(); 2]
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Accepted variants of the input.
// ---------------------------------------------------------------------------------------------

#[test]
fn prefixed_namespace_parses_like_default() {
    let k = sample_key().to_base64();
    let body = format!(
        "<r:mbmsMSKRequest xmlns:r=\"{}\"><r:keyID>{k}</r:keyID></r:mbmsMSKRequest>",
        xml::MSK_REQUEST_NS
    );
    assert_eq!(
        parse_msk(&body),
        Ok(MskRequest {
            keys: vec![sample_key()]
        })
    );

    let body = format!(
        "<p:mbmsUserServiceDeregistration xmlns:p=\"{}\"><p:serviceID>s</p:serviceID></p:mbmsUserServiceDeregistration>",
        xml::DEREGISTER_NS
    );
    assert_eq!(
        xml::parse_service_list(Procedure::Deregister, body.as_bytes()),
        Ok(services(&["s"]))
    );

    let body = format!(
        "<a:mbmsUserServiceRegistrationResponse xmlns:a=\"{}\"><a:serviceResponse>\
         <a:statusCode>200</a:statusCode><a:serviceID>s</a:serviceID>\
         </a:serviceResponse></a:mbmsUserServiceRegistrationResponse>",
        xml::REGISTER_RESPONSE_NS
    );
    assert_eq!(
        xml::parse_register_response(body.as_bytes()),
        Ok(vec![ServiceStatus {
            service_id: "s".into(),
            status: StatusCode::OK
        }])
    );

    // A prefix declared on the root and the default namespace mixed.
    let body = format!(
        "<m:mbmsMSKResponse xmlns:m=\"{ns}\"><keyResponse xmlns=\"{ns}\"><keyID>{k}</keyID>\
         <m:statusCode>503</m:statusCode></keyResponse></m:mbmsMSKResponse>",
        ns = xml::MSK_RESPONSE_NS
    );
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()),
        Ok(vec![KeyStatus {
            key: sample_key(),
            status: StatusCode::UNAVAILABLE
        }])
    );
}

#[test]
fn entities_and_character_references_unescaped() {
    let body = register_body("<serviceID>a&amp;b&lt;c&gt;d&quot;e&apos;f&#x41;&#66;</serviceID>");
    assert_eq!(parse_register(&body), Ok(services(&["a&b<c>d\"e'fAB"])));
}

#[test]
fn service_id_trimmed_and_cdata_comments_pis_accepted() {
    let body = format!(
        "\u{feff}{DECL}\n<!-- c --><?pi x?>\n{}\n<!-- after -->\n",
        register_body(
            "\n  <serviceID>\n\t urn:x <!-- inner --></serviceID><serviceID><![CDATA[a<b]]></serviceID>\n"
        )
    );
    assert_eq!(parse_register(&body), Ok(services(&["urn:x", "a<b"])));
}

#[test]
fn foreign_elements_ignored() {
    let k = sample_key().to_base64();
    let body = msk_body(&format!(
        "<x:ext xmlns:x=\"urn:other\"><x:deep a=\"1\"><anything/>text</x:deep></x:ext>\
         <keyID>{k}</keyID><y:e xmlns:y=\"urn:y\"/>"
    ));
    assert_eq!(
        parse_msk(&body),
        Ok(MskRequest {
            keys: vec![sample_key()]
        })
    );

    let body = format!(
        "<mbmsMSKResponse xmlns=\"{}\"><keyResponse><o:x xmlns:o=\"urn:o\">1</o:x>\
         <keyID>{k}</keyID><statusCode>404</statusCode></keyResponse></mbmsMSKResponse>",
        xml::MSK_RESPONSE_NS
    );
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()).map(|v| v.len()),
        Ok(1)
    );
}

#[test]
fn any_three_digit_status_accepted() {
    for (text, code) in [("100", 100), ("299", 299), (" 599 ", 599), ("404", 404)] {
        assert_eq!(StatusCode::parse(text), Ok(StatusCode(code)));
    }
}

#[test]
fn depth_limit_boundary() {
    let nest = |levels: usize| {
        let open = "<o:a xmlns:o=\"urn:o\">".repeat(levels);
        let close = "</o:a>".repeat(levels);
        register_body(&format!("{open}{close}<serviceID>s</serviceID>"))
    };
    // The root is at depth 1, so MAX_DEPTH - 1 nested foreign elements fit.
    assert_eq!(parse_register(&nest(MAX_DEPTH - 1)), Ok(services(&["s"])));
    assert_eq!(
        parse_register(&nest(MAX_DEPTH)),
        Err(XmlError::TooDeep { max: MAX_DEPTH })
    );
    // Self-closing elements count too.
    let body = register_body(&format!(
        "{}<o:a/>{}<serviceID>s</serviceID>",
        "<o:a xmlns:o=\"urn:o\">".repeat(MAX_DEPTH - 1),
        "</o:a>".repeat(MAX_DEPTH - 1)
    ));
    assert_eq!(
        parse_register(&body),
        Err(XmlError::TooDeep { max: MAX_DEPTH })
    );
}

#[test]
fn item_limit_boundary() {
    let ids: Vec<String> = (0..MAX_ITEMS).map(|i| format!("urn:s:{i}")).collect();
    let mut list = ServiceList { service_ids: ids };
    let body = xml::write_service_list(Procedure::Register, &list);
    assert_eq!(
        parse_register(&body).map(|l| l.service_ids.len()),
        Ok(MAX_ITEMS)
    );
    list.service_ids.push("urn:s:extra".into());
    let body = xml::write_service_list(Procedure::Register, &list);
    assert_eq!(
        parse_register(&body),
        Err(XmlError::TooManyItems { max: MAX_ITEMS })
    );

    let keys: Vec<KeyRef> = (0..=MAX_ITEMS)
        .map(|i| key([1, 2, 3], 1, u16::try_from(i).unwrap()))
        .collect();
    let ok = MskRequest {
        keys: keys[..MAX_ITEMS].to_vec(),
    };
    assert_eq!(
        xml::parse_msk_request(xml::write_msk_request(&ok).as_bytes()),
        Ok(ok)
    );
    let too_many = MskRequest { keys };
    assert_eq!(
        xml::parse_msk_request(xml::write_msk_request(&too_many).as_bytes()),
        Err(XmlError::TooManyItems { max: MAX_ITEMS })
    );

    let statuses: Vec<KeyStatus> = too_many
        .keys
        .iter()
        .map(|k| KeyStatus {
            key: *k,
            status: StatusCode::OK,
        })
        .collect();
    let body = xml::write_msk_response(&statuses[..MAX_ITEMS]);
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()).map(|v| v.len()),
        Ok(MAX_ITEMS)
    );
    let body = xml::write_msk_response(&statuses);
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()),
        Err(XmlError::TooManyItems { max: MAX_ITEMS })
    );
}

#[test]
fn service_id_length_boundary() {
    let ok = "u".repeat(MAX_SERVICE_ID_LEN);
    let body = xml::write_service_list(Procedure::Register, &services(&[&ok]));
    assert_eq!(parse_register(&body), Ok(services(&[&ok])));
    // Surrounding whitespace does not count.
    let body = register_body(&format!("<serviceID>   {ok}   </serviceID>"));
    assert_eq!(parse_register(&body), Ok(services(&[&ok])));

    let long = "u".repeat(MAX_SERVICE_ID_LEN + 1);
    let body = xml::write_service_list(Procedure::Register, &services(&[&long]));
    assert_eq!(
        parse_register(&body),
        Err(XmlError::ServiceIdTooLong {
            max: MAX_SERVICE_ID_LEN
        })
    );
    let huge = "u".repeat(MAX_TEXT_LEN + 1);
    let body = xml::write_service_list(Procedure::Register, &services(&[&huge]));
    assert_eq!(
        parse_register(&body),
        Err(XmlError::TextTooLong {
            element: xml::SERVICE_ID_ELEMENT,
            max: MAX_TEXT_LEN
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Refused input, one error variant each.
// ---------------------------------------------------------------------------------------------

#[test]
fn not_utf8_refused() {
    let mut body = register_body("<serviceID>x</serviceID>").into_bytes();
    body[40] = 0xff;
    assert_eq!(
        xml::parse_service_list(Procedure::Register, &body),
        Err(XmlError::NotUtf8)
    );
    // UTF-16 with BOM.
    let utf16: Vec<u8> = "\u{feff}<a/>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(xml::parse_msk_request(&utf16), Err(XmlError::NotUtf8));
}

#[test]
fn non_utf8_encoding_declaration_refused() {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{}",
        register_body("<serviceID>x</serviceID>")
    );
    assert_eq!(
        parse_register(&body),
        Err(XmlError::UnsupportedEncoding("ISO-8859-1".into()))
    );
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>{}",
        register_body("<serviceID>x</serviceID>")
    );
    assert_eq!(parse_register(&body), Ok(services(&["x"])));
}

#[test]
fn misplaced_declaration_refused() {
    let body = format!(
        "<!-- c -->{DECL}{}",
        register_body("<serviceID>x</serviceID>")
    );
    assert!(matches!(parse_register(&body), Err(XmlError::Malformed(_))));
}

#[test]
fn wrong_root_refused() {
    let body = register_body("<serviceID>x</serviceID>");
    assert_eq!(
        xml::parse_service_list(Procedure::Deregister, body.as_bytes()),
        Err(XmlError::WrongRoot {
            expected: xml::DEREGISTER_ROOT,
            found: xml::REGISTER_ROOT.into()
        })
    );
    assert_eq!(
        parse_msk(&body),
        Err(XmlError::WrongRoot {
            expected: xml::MSK_REQUEST_ROOT,
            found: xml::REGISTER_ROOT.into()
        })
    );
}

#[test]
fn wrong_namespace_refused() {
    let k = sample_key().to_base64();
    let body = format!("<mbmsMSKRequest xmlns=\"urn:wrong\"><keyID>{k}</keyID></mbmsMSKRequest>");
    assert_eq!(
        parse_msk(&body),
        Err(XmlError::WrongNamespace {
            expected: xml::MSK_REQUEST_NS,
            found: Some("urn:wrong".into())
        })
    );
    let body = format!("<mbmsMSKRequest><keyID>{k}</keyID></mbmsMSKRequest>");
    assert_eq!(
        parse_msk(&body),
        Err(XmlError::WrongNamespace {
            expected: xml::MSK_REQUEST_NS,
            found: None
        })
    );
    // The deregistration namespace on a registration root.
    let body = format!(
        "<mbmsUserServiceRegistration xmlns=\"{}\"><serviceID>x</serviceID></mbmsUserServiceRegistration>",
        xml::DEREGISTER_NS
    );
    assert_eq!(
        parse_register(&body),
        Err(XmlError::WrongNamespace {
            expected: xml::REGISTER_NS,
            found: Some(xml::DEREGISTER_NS.into())
        })
    );
}

#[test]
fn unknown_prefix_refused() {
    let body = "<r:mbmsMSKRequest><r:keyID>AAAAAAAAAA==</r:keyID></r:mbmsMSKRequest>";
    assert_eq!(parse_msk(body), Err(XmlError::UnknownPrefix("r".into())));
}

#[test]
fn doctype_refused() {
    let body = format!(
        "{DECL}<!DOCTYPE mbmsMSKRequest>{}",
        msk_body("<keyID>AAAAAAAAAA==</keyID>")
    );
    assert_eq!(parse_msk(&body), Err(XmlError::Doctype));
    let body = format!("{}<!DOCTYPE x>", msk_body("<keyID>AAAAAAAAAA==</keyID>"));
    assert_eq!(parse_msk(&body), Err(XmlError::Doctype));
    let body = msk_body("<!DOCTYPE x [<!ENTITY e \"x\">]><keyID>AAAAAAAAAA==</keyID>");
    assert_eq!(parse_msk(&body), Err(XmlError::Doctype));
    let body = msk_body("<o:x xmlns:o=\"urn:o\"><!DOCTYPE x></o:x><keyID>AAAAAAAAAA==</keyID>");
    assert_eq!(parse_msk(&body), Err(XmlError::Doctype));
}

#[test]
fn billion_laughs_refused_quickly() {
    let mut dtd = String::from("<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push_str("]>\n");
    let body = format!(
        "{DECL}\n{dtd}{}",
        register_body("<serviceID>&lol9;</serviceID>")
    );
    let start = Instant::now();
    assert_eq!(parse_register(&body), Err(XmlError::Doctype));
    for p in [Procedure::Register, Procedure::Deregister] {
        assert_eq!(
            xml::parse_service_list(p, body.as_bytes()),
            Err(XmlError::Doctype)
        );
    }
    assert!(start.elapsed() < Duration::from_secs(1));

    // Without the DTD the reference is merely unknown, never expanded.
    let body = register_body("<serviceID>&lol9;</serviceID>");
    assert_eq!(
        parse_register(&body),
        Err(XmlError::UnknownEntity("lol9".into()))
    );
}

#[test]
fn invalid_characters_refused() {
    let body = register_body("<serviceID>a&#1;b</serviceID>");
    assert_eq!(parse_register(&body), Err(XmlError::InvalidChar(1)));
    let body = register_body("<serviceID>a\u{1}b</serviceID>");
    assert_eq!(parse_register(&body), Err(XmlError::InvalidChar(1)));
    let body = register_body("<serviceID>a&#xFFFF;b</serviceID>");
    assert_eq!(parse_register(&body), Err(XmlError::InvalidChar(0xffff)));
    let body = register_body("<serviceID>a&#0;b</serviceID>");
    assert!(matches!(parse_register(&body), Err(XmlError::Malformed(_))));
}

#[test]
fn no_root_refused() {
    for body in ["", "   \n", DECL, "<!-- only a comment -->"] {
        assert_eq!(parse_register(body), Err(XmlError::NoRoot), "{body:?}");
    }
}

#[test]
fn text_outside_elements_refused() {
    assert_eq!(
        parse_register(&format!(
            "junk{}",
            register_body("<serviceID>x</serviceID>")
        )),
        Err(XmlError::UnexpectedText)
    );
    assert_eq!(
        parse_register(&register_body("text<serviceID>x</serviceID>")),
        Err(XmlError::UnexpectedText)
    );
    assert_eq!(
        parse_register(&register_body("<serviceID>x</serviceID>&amp;")),
        Err(XmlError::UnexpectedText)
    );
    assert_eq!(
        parse_register(&register_body("<![CDATA[x]]><serviceID>x</serviceID>")),
        Err(XmlError::UnexpectedText)
    );
    let body = format!(
        "<mbmsMSKResponse xmlns=\"{}\"><keyResponse>oops<keyID>AAAAAAAAAA==</keyID>\
         <statusCode>200</statusCode></keyResponse></mbmsMSKResponse>",
        xml::MSK_RESPONSE_NS
    );
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()),
        Err(XmlError::UnexpectedText)
    );
}

#[test]
fn trailing_content_refused() {
    let root = register_body("<serviceID>x</serviceID>");
    for tail in ["garbage", "<x/>", &root, "&amp;", "<![CDATA[ ]]>"] {
        assert_eq!(
            parse_register(&format!("{root}{tail}")),
            Err(XmlError::TrailingContent),
            "{tail:?}"
        );
    }
    // Whitespace, comments and PIs after the root are fine.
    assert_eq!(
        parse_register(&format!("{root}\n<!-- c --><?pi?>\n")),
        Ok(services(&["x"]))
    );
}

#[test]
fn unclosed_document_refused() {
    let body = register_body("<serviceID>x</serviceID>");
    for cut in [
        "</mbmsUserServiceRegistration>",
        "</serviceID></mbmsUserServiceRegistration>",
    ] {
        let truncated = body.strip_suffix(cut).unwrap();
        assert_eq!(
            parse_register(truncated),
            Err(XmlError::Unclosed),
            "{truncated}"
        );
    }
    let body = register_body("<o:x xmlns:o=\"urn:o\"><serviceID>x</serviceID>");
    let truncated = body.strip_suffix("</mbmsUserServiceRegistration>").unwrap();
    assert_eq!(parse_register(truncated), Err(XmlError::Unclosed));
    // Cut inside a tag: the tokenizer reports it.
    assert!(matches!(
        parse_register(&body[..30]),
        Err(XmlError::Malformed(_))
    ));
}

#[test]
fn mismatched_end_tag_refused() {
    let body = register_body("<serviceID>x</serviceId>");
    assert!(matches!(parse_register(&body), Err(XmlError::Malformed(_))));
}

#[test]
fn attributes_ignored_but_must_be_well_formed() {
    let body = register_body("<serviceID a=\"1\" o:b='&amp;' xmlns:o=\"urn:o\">x</serviceID>");
    assert_eq!(parse_register(&body), Ok(services(&["x"])));
    for inner in [
        "<serviceID a=\"1\" a=\"2\">x</serviceID>",
        "<serviceID a>x</serviceID>",
        "<serviceID a=\"1>x</serviceID>",
    ] {
        assert!(
            matches!(
                parse_register(&register_body(inner)),
                Err(XmlError::Malformed(_))
            ),
            "{inner}"
        );
    }
}

#[test]
fn unknown_element_of_our_namespace_refused() {
    let body = register_body("<serviceID>x</serviceID><keyID>y</keyID>");
    assert_eq!(
        parse_register(&body),
        Err(XmlError::UnexpectedElement("keyID".into()))
    );
    let body = format!(
        "<mbmsMSKResponse xmlns=\"{}\"><keyResponse><keyID>AAAAAAAAAA==</keyID>\
         <statusCode>200</statusCode><extra/></keyResponse></mbmsMSKResponse>",
        xml::MSK_RESPONSE_NS
    );
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()),
        Err(XmlError::UnexpectedElement("extra".into()))
    );
}

#[test]
fn unqualified_child_refused() {
    let body = format!(
        "<r:mbmsMSKRequest xmlns:r=\"{}\"><keyID>AAAAAAAAAA==</keyID></r:mbmsMSKRequest>",
        xml::MSK_REQUEST_NS
    );
    assert_eq!(
        parse_msk(&body),
        Err(XmlError::UnexpectedElement("keyID".into()))
    );
}

#[test]
fn element_inside_leaf_refused() {
    let body = register_body("<serviceID>x<b>y</b></serviceID>");
    assert_eq!(
        parse_register(&body),
        Err(XmlError::UnexpectedElement("b".into()))
    );
    let body = register_body("<serviceID>x<o:b xmlns:o=\"urn:o\"/></serviceID>");
    assert_eq!(
        parse_register(&body),
        Err(XmlError::UnexpectedElement("b".into()))
    );
}

#[test]
fn empty_service_id_refused() {
    for inner in [
        "<serviceID/>",
        "<serviceID></serviceID>",
        "<serviceID> \n\t </serviceID>",
    ] {
        assert_eq!(
            parse_register(&register_body(inner)),
            Err(XmlError::EmptyServiceId),
            "{inner}"
        );
    }
}

#[test]
fn no_items_refused() {
    assert_eq!(parse_register(&register_body("")), Err(XmlError::NoItems));
    assert_eq!(
        parse_register(&register_body("\n  <!-- none -->\n")),
        Err(XmlError::NoItems)
    );
    let body = format!("<mbmsMSKRequest xmlns=\"{}\"/>", xml::MSK_REQUEST_NS);
    assert_eq!(parse_msk(&body), Err(XmlError::NoItems));
    let body = xml::write_register_response(&[]);
    assert_eq!(
        xml::parse_register_response(body.as_bytes()),
        Err(XmlError::NoItems)
    );
    let body = xml::write_msk_response(&[]);
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()),
        Err(XmlError::NoItems)
    );
}

#[test]
fn bad_key_id_refused() {
    for (text, err) in [
        ("not base64!", XmlError::InvalidBase64),
        ("MvQBAQIDBA", XmlError::InvalidBase64), // padding missing
        ("MvQBAQ IDBA==", XmlError::InvalidBase64), // inner whitespace
        ("MvQBAQIDBB==", XmlError::InvalidBase64), // non-canonical trailing bits
        ("MvQBAQID", XmlError::KeyIdLength(6)),
        ("MvQBAQIDBAU=", XmlError::KeyIdLength(8)),
        ("", XmlError::KeyIdLength(0)),
    ] {
        assert_eq!(KeyRef::from_base64(text), Err(err.clone()), "{text:?}");
        assert_eq!(
            parse_msk(&msk_body(&format!("<keyID>{text}</keyID>"))),
            Err(err),
            "{text:?}"
        );
    }
}

#[test]
fn bad_status_code_refused() {
    for text in [
        "",
        "99",
        "600",
        "999",
        "2000",
        "20a",
        "+20",
        "-20",
        "０００",
        "2 0",
    ] {
        assert_eq!(
            StatusCode::parse(text),
            Err(XmlError::InvalidStatusCode),
            "{text:?}"
        );
        let body = format!(
            "<mbmsUserServiceRegistrationResponse xmlns=\"{}\"><serviceResponse>\
             <serviceID>s</serviceID><statusCode>{text}</statusCode>\
             </serviceResponse></mbmsUserServiceRegistrationResponse>",
            xml::REGISTER_RESPONSE_NS
        );
        assert_eq!(
            xml::parse_register_response(body.as_bytes()),
            Err(XmlError::InvalidStatusCode),
            "{text:?}"
        );
    }
}

#[test]
fn missing_and_duplicate_fields_refused() {
    let wrap = |inner: &str| {
        format!(
            "<mbmsUserServiceRegistrationResponse xmlns=\"{}\"><serviceResponse>{inner}\
             </serviceResponse></mbmsUserServiceRegistrationResponse>",
            xml::REGISTER_RESPONSE_NS
        )
    };
    let cases = [
        (
            "<statusCode>200</statusCode>",
            XmlError::MissingField {
                element: xml::SERVICE_RESPONSE_ELEMENT,
                field: xml::SERVICE_ID_ELEMENT,
            },
        ),
        (
            "<serviceID>s</serviceID>",
            XmlError::MissingField {
                element: xml::SERVICE_RESPONSE_ELEMENT,
                field: xml::STATUS_CODE_ELEMENT,
            },
        ),
        (
            "<serviceID>s</serviceID><serviceID>t</serviceID><statusCode>200</statusCode>",
            XmlError::DuplicateField {
                element: xml::SERVICE_RESPONSE_ELEMENT,
                field: xml::SERVICE_ID_ELEMENT,
            },
        ),
        (
            "<serviceID>s</serviceID><statusCode>200</statusCode><statusCode>200</statusCode>",
            XmlError::DuplicateField {
                element: xml::SERVICE_RESPONSE_ELEMENT,
                field: xml::STATUS_CODE_ELEMENT,
            },
        ),
    ];
    for (inner, err) in cases {
        assert_eq!(
            xml::parse_register_response(wrap(inner).as_bytes()),
            Err(err),
            "{inner}"
        );
    }
    let body = format!(
        "<mbmsMSKResponse xmlns=\"{}\"><keyResponse/></mbmsMSKResponse>",
        xml::MSK_RESPONSE_NS
    );
    assert_eq!(
        xml::parse_msk_response(body.as_bytes()),
        Err(XmlError::MissingField {
            element: xml::KEY_RESPONSE_ELEMENT,
            field: xml::KEY_ID_ELEMENT
        })
    );
}

#[test]
fn errors_display() {
    let e = XmlError::WrongRoot {
        expected: xml::MSK_REQUEST_ROOT,
        found: "x".into(),
    };
    assert_eq!(
        e.to_string(),
        "root element is <x>, expected <mbmsMSKRequest>"
    );
}

#[test]
fn procedure_metadata() {
    assert_eq!(
        Procedure::Register.media_type(),
        "application/mbms-register+xml"
    );
    assert_eq!(
        Procedure::Deregister.media_type(),
        "application/mbms-deregister+xml"
    );
    assert_eq!(
        xml::REGISTER_RESPONSE_MEDIA_TYPE,
        "application/mbms-register-response+xml"
    );
    assert_eq!(xml::MSK_REQUEST_MEDIA_TYPE, "application/mbms-msk+xml");
    assert_eq!(
        xml::MSK_RESPONSE_MEDIA_TYPE,
        "application/mbms-msk-response+xml"
    );
}

// ---------------------------------------------------------------------------------------------
// Never panic.
// ---------------------------------------------------------------------------------------------

/// Fragments spliced into valid bodies by the mutation test.
const FRAGMENTS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "&",
    "&amp;",
    "&#0;",
    "&#x10FFFF;",
    "&lol;",
    "<!DOCTYPE x>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "xmlns=\"\"",
    "xmlns:a=\"urn:a\"",
    "a:",
    ":",
    "\"",
    "'",
    "=",
    " ",
    "\u{0}",
    "\u{feff}",
    "é",
    "<serviceID>",
    "</serviceID>",
    "<keyID>",
    "</keyID>",
    "<statusCode>",
    "</statusCode>",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 0usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(i, f)| Mutation::Insert(i, f)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *m {
        Mutation::Flip(i, b) if !body.is_empty() => {
            let i = i % body.len();
            body[i] ^= b;
        }
        Mutation::Flip(..) => {}
        Mutation::Delete(i, n) => {
            let start = at(i, body.len());
            let end = (start + n).min(body.len());
            body.drain(start..end);
        }
        Mutation::Insert(i, f) => {
            let start = at(i, body.len());
            body.splice(start..start, FRAGMENTS[f].bytes());
        }
        Mutation::Truncate(i) => body.truncate(at(i, body.len())),
        Mutation::Duplicate(i, n) => {
            let start = at(i, body.len());
            let end = (start + n).min(body.len());
            let copy = body[start..end].to_vec();
            body.splice(end..end, copy);
        }
    }
}

fn service_id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9:/._<>&\"' \t\r\n\u{e9}\u{1F600}\u{FFFD}-]{1,40}"
        .prop_map(|s| s.trim_matches([' ', '\t', '\r', '\n']).to_owned())
        .prop_filter("non-empty after trim", |s| !s.is_empty())
}

fn key_ref() -> impl Strategy<Value = KeyRef> {
    (any::<[u8; 3]>(), any::<u32>()).prop_map(|(d, m)| KeyRef {
        key_domain_id: KeyDomainId(d),
        msk_id: MskId(m),
    })
}

fn status() -> impl Strategy<Value = StatusCode> {
    (100u16..=599).prop_map(StatusCode)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_all(&body);
    }

    #[test]
    fn random_text_never_panics(body in "[<>/&;#x:=\"' a-zA-Z0-9!?\\[\\]-]{0,200}") {
        parse_all(body.as_bytes());
    }

    #[test]
    fn mutated_bodies_never_panic(
        which in 0usize..5,
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let bodies = sample_bodies();
        let mut body = bodies[which].clone().into_bytes();
        for m in &mutations {
            apply(&mut body, m);
        }
        parse_all(&body);
    }

    #[test]
    fn service_list_round_trips(
        ids in proptest::collection::vec(service_id(), 1..8),
        deregister in any::<bool>(),
    ) {
        let p = if deregister { Procedure::Deregister } else { Procedure::Register };
        let list = ServiceList { service_ids: ids };
        let body = xml::write_service_list(p, &list);
        prop_assert_eq!(xml::parse_service_list(p, body.as_bytes()), Ok(list));
    }

    #[test]
    fn msk_bodies_round_trip(
        items in proptest::collection::vec((key_ref(), status()), 1..8),
    ) {
        let req = MskRequest { keys: items.iter().map(|(k, _)| *k).collect() };
        let body = xml::write_msk_request(&req);
        prop_assert_eq!(xml::parse_msk_request(body.as_bytes()), Ok(req));
        let resp: Vec<KeyStatus> =
            items.iter().map(|(k, s)| KeyStatus { key: *k, status: *s }).collect();
        let body = xml::write_msk_response(&resp);
        prop_assert_eq!(xml::parse_msk_response(body.as_bytes()), Ok(resp));
    }

    #[test]
    fn register_response_round_trips(
        items in proptest::collection::vec((service_id(), status()), 1..8),
    ) {
        let resp: Vec<ServiceStatus> = items
            .into_iter()
            .map(|(service_id, status)| ServiceStatus { service_id, status })
            .collect();
        let body = xml::write_register_response(&resp);
        prop_assert_eq!(xml::parse_register_response(body.as_bytes()), Ok(resp));
    }
}
