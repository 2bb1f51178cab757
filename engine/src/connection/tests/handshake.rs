//! The request head and the upgrade.

use super::*;

#[test]
fn starts_in_its_handshake() {
    let mut ob = outbox(|_| {});
    let conn = accepted(&mut ob);
    assert!(matches!(
        conn.state(),
        State::Handshake {
            continue_sent: false,
            proxy_header: false
        }
    ));
    assert_eq!(conn.peer(), Some(peer()));
}

#[test]
fn head_in_pieces_is_complete_at_its_blank_line() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    let (a, rest) = UPGRADE.split_at(30);
    let (b, c) = rest.split_at(rest.len() - 1);
    conn.receive(a.as_bytes(), &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
    conn.receive(b.as_bytes(), &mut ob);
    assert_eq!(
        poll_head(&mut conn, &mut ob),
        None,
        "the last \\n is missing"
    );
    conn.after_input(&mut ob);
    conn.receive(c.as_bytes(), &mut ob);
    let Some((seen, head_len)) = poll_head(&mut conn, &mut ob) else {
        panic!("complete head not seen");
    };
    assert_eq!(head_len, UPGRADE.len());
    let Seen::Upgrade {
        path,
        key,
        response,
    } = seen
    else {
        panic!("{seen:?}");
    };
    assert_eq!((path.as_str(), key.as_str()), ("/chat", KEY));
    let response = std::str::from_utf8(&response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    assert!(response.contains(ACCEPT), "{response}");
    assert_eq!(conn.queued(), 0, "nothing is answered before the decision");
    assert!(conn.is_handshake());
}

#[test]
fn upgrade_without_a_key_or_malformed_is_invalid_with_400() {
    let mut ob = outbox(|_| {});
    let no_key = UPGRADE.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    let error = invalid(&no_key, &mut ob);
    assert_eq!(
        (error.clone(), error.http_status()),
        (Error::InvalidKey, Some(400))
    );
    let error = invalid("GET /chat HTTP/1.1\r\nHost\r\n\r\n", &mut ob);
    assert!(matches!(error, Error::MalformedHttp(_)), "{error:?}");
    assert_eq!(error.http_status(), Some(400));
}

#[test]
fn upgrade_with_post_is_invalid_with_405() {
    let mut ob = outbox(|_| {});
    let error = invalid(&UPGRADE.replace("GET", "POST"), &mut ob);
    assert_eq!(error, Error::MethodNotGet("POST".into()));
    assert_eq!(error.http_status(), Some(405));
}

#[test]
fn upgrade_with_version_8_is_invalid_with_426() {
    let mut ob = outbox(|_| {});
    let old = UPGRADE.replace("Version: 13", "Version: 8");
    let error = invalid(&old, &mut ob);
    assert_eq!(error, Error::UnsupportedVersion);
    assert_eq!(error.http_status(), Some(426));
}

#[test]
fn head_over_max_head_is_invalid_with_431() {
    let mut ob = outbox(|c| c.max_head = 64);
    let mut conn = accepted(&mut ob);
    let endless = format!("GET /chat HTTP/1.1\r\nX-Long: {}", "a".repeat(100));
    conn.receive(&endless.as_bytes()[..64], &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None, "64 bytes are allowed");
    conn.receive(&endless.as_bytes()[64..65], &mut ob);
    let Some((Seen::Invalid(error), head_len)) = poll_head(&mut conn, &mut ob) else {
        panic!("not refused");
    };
    assert_eq!(error, Error::HeadTooLarge { limit: 64 });
    assert_eq!((error.http_status(), head_len), (Some(431), 0));
}

#[test]
fn plain_request_is_complete_only_with_all_of_its_body() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    let head = "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
    conn.receive(head.as_bytes(), &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
    conn.receive(b"hello", &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
    conn.receive(b"world", &mut ob);
    let expected = Seen::Http {
        method: "POST".into(),
        path: "/publish".into(),
        body: b"helloworld".to_vec(),
    };
    assert_eq!(poll_head(&mut conn, &mut ob), Some((expected, head.len())));
    assert_eq!(conn.queued(), 0, "no 100 Continue without Expect");
    assert!(ob.ready.is_empty());
}

#[test]
fn expect_100_continue_is_answered_once_while_the_body_is_missing() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    let head = "PUT /data HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
                Content-Length: 6\r\n\r\n";
    conn.receive(head.as_bytes(), &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
    assert_eq!(ob.ready, [SLOT]);
    assert_eq!(written(&mut conn, &mut ob), CONTINUE);
    conn.receive(b"abc", &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
    assert_eq!(conn.queued(), 0, "a second 100 Continue");
    conn.receive(b"def", &mut ob);
    let Some((Seen::Http { body, .. }, _)) = poll_head(&mut conn, &mut ob) else {
        panic!("body not complete");
    };
    assert_eq!(body, b"abcdef");
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn expect_100_continue_with_the_body_already_there_is_not_answered() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    let request = "PUT /data HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
                   Content-Length: 2\r\n\r\nok";
    conn.receive(request.as_bytes(), &mut ob);
    assert!(matches!(
        poll_head(&mut conn, &mut ob),
        Some((Seen::Http { .. }, _))
    ));
    assert_eq!(conn.queued(), 0);
}

#[test]
fn chunked_request_is_invalid_with_411() {
    let mut ob = outbox(|_| {});
    let error = invalid(
        "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        &mut ob,
    );
    assert_eq!(error, Error::TransferEncoding);
    assert_eq!(error.http_status(), Some(411));
}

#[test]
fn body_over_max_body_is_invalid_with_413() {
    let mut ob = outbox(|c| c.max_body = 16);
    let at_limit = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n";
    let mut conn = accepted(&mut ob);
    conn.receive(at_limit.as_bytes(), &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None, "16 bytes are allowed");
    let error = invalid(&at_limit.replace("16", "17"), &mut ob);
    assert_eq!(error, Error::BodyTooLarge { limit: 16 });
    assert_eq!(error.http_status(), Some(413));
}

#[test]
fn respond_closes_once_the_answer_is_written() {
    let (mut conn, mut ob, response) = answering_a_plain_request();
    assert_eq!(drive(&mut conn, &mut ob), []);
    assert!(!conn.is_done(&ob), "done before the answer is written");
    conn.receive(b"GET /more HTTP/1.1\r\n\r\n", &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None, "read after the answer");
    assert_eq!(std::mem::take(&mut ob.ready), [SLOT]);
    let send = conn.poll_transmit(&mut ob).unwrap();
    assert_eq!(send.to_vec(), response);
    conn.on_sent(10, Some(send), &mut ob);
    assert!(!conn.is_done(&ob), "done with part of the answer written");
    assert_eq!(written(&mut conn, &mut ob), response[10..]);
    assert!(conn.is_done(&ob));
    assert_eq!(
        events(&mut conn, &mut ob),
        [],
        "a plain request reports no close"
    );
}

#[test]
fn bytes_after_the_upgrade_head_are_the_first_frames() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    let pipelined = [
        UPGRADE.as_bytes(),
        &text("first"),
        &client(OpCode::Binary, true, b"second"),
    ]
    .concat();
    conn.receive(&pipelined, &mut ob);
    let Some((Seen::Upgrade { response, .. }, head_len)) = poll_head(&mut conn, &mut ob) else {
        panic!("no upgrade");
    };
    conn.upgrade(response.clone(), head_len, None, &mut ob);
    assert_eq!(
        drive(&mut conn, &mut ob),
        [Ev::Text("first".into()), Ev::Binary(b"second".to_vec())]
    );
    assert_eq!(written(&mut conn, &mut ob), response);
}

#[test]
fn handshake_timeout_closes_without_a_report() {
    let mut ob = outbox(|c| c.handshake_timeout = Duration::from_secs(10));
    ob.now = 1000;
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /chat HTTP/1.1\r\n", &mut ob);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(11_000));
    ob.now = 10_999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_handshake());
    ob.now = 11_000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Handshake);
    assert!(conn.is_closed() && conn.is_done(&ob));
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), None);
    assert_eq!(written(&mut conn, &mut ob), b"");
}
