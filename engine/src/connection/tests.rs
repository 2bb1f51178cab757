//! The connection state machine without a ring or a socket: bytes go in
//! as the worker's `on_recv` hands them over ([`Connection::receive`] in
//! the handshake, [`Connection::poll_event_in`] after it), time with
//! [`Outbox::now`], and sends are completed by hand as the worker's
//! `flush` and send completions would. What the server writes is read
//! back with a client-side decoder.

use super::*;
use bytes::BytesMut;
use uringws_protocol::{
    encoder::{encode_shared, write_client_frame},
    Decoder, DecoderConfig,
};

const SLOT: u32 = 3;
const GEN: u32 = 7;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The RFC 6455 §1.2 answer to [`KEY`].
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const UPGRADE: &str = "GET /chat?room=1 HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

// ---- setting up ----

fn outbox(configure: impl FnOnce(&mut EngineConfig)) -> Outbox {
    let mut config = EngineConfig::default();
    configure(&mut config);
    Outbox::new(Arc::new(config))
}

fn peer() -> SocketAddr {
    "192.0.2.1:40000".parse().unwrap()
}

/// A connection just accepted, at `ob.now`.
fn accepted(ob: &mut Outbox) -> Connection {
    Connection::new(
        Id {
            slot: SLOT,
            gen: GEN,
        },
        Some(peer()),
        ob,
    )
}

/// What `poll_head` handed to the decision, owned.
#[derive(Debug, PartialEq)]
enum Seen {
    Http {
        method: String,
        path: String,
        body: Vec<u8>,
    },
    Upgrade {
        path: String,
        key: String,
        /// The 101 that accepts it.
        response: Bytes,
    },
    Invalid(Error),
}

fn poll_head(conn: &mut Connection, ob: &mut Outbox) -> Option<(Seen, usize)> {
    conn.poll_head(ob, |head| match head {
        Head::Http { request, body } => Seen::Http {
            method: request.method().into(),
            path: request.path().into(),
            body: body.to_vec(),
        },
        Head::Upgrade(upgrade) => Seen::Upgrade {
            path: upgrade.request().path().into(),
            key: upgrade.key().into(),
            response: upgrade.response(None, None).unwrap(),
        },
        Head::Invalid(error) => Seen::Invalid(error),
    })
}

/// The error of a head that is refused.
fn invalid(request: &str, ob: &mut Outbox) -> Error {
    let mut conn = accepted(ob);
    conn.receive(request.as_bytes(), ob);
    match poll_head(&mut conn, ob) {
        Some((Seen::Invalid(error), _)) => error,
        other => panic!("not refused: {other:?}"),
    }
}

/// Takes a connection in its handshake through the upgrade as the worker
/// does (head, `upgrade`, drive) and writes the 101.
fn handshake(conn: &mut Connection, ob: &mut Outbox) {
    conn.receive(UPGRADE.as_bytes(), ob);
    let Some((Seen::Upgrade { response, .. }, head_len)) = poll_head(conn, ob) else {
        panic!("no upgrade");
    };
    assert_eq!(head_len, UPGRADE.len());
    conn.upgrade(response.clone(), head_len, ob);
    assert_eq!(
        conn.peer(),
        None,
        "the peer's address is kept past the handshake"
    );
    assert_eq!(drive(conn, ob), []);
    assert_eq!(written(conn, ob), response);
    assert!(conn.is_open());
}

/// An open connection with its 101 written, counters and lists cleared.
fn open_with(configure: impl FnOnce(&mut EngineConfig)) -> (Connection, Outbox) {
    let mut ob = outbox(configure);
    let mut conn = accepted(&mut ob);
    handshake(&mut conn, &mut ob);
    ob.counters = Counters::default();
    ob.wake.clear();
    (conn, ob)
}

fn open_conn() -> (Connection, Outbox) {
    open_with(|_| {})
}

// ---- client frames ----

fn client(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_client_frame(&mut out, opcode, fin, payload, MASK).unwrap();
    out.to_vec()
}

fn text(s: &str) -> Vec<u8> {
    client(OpCode::Text, true, s.as_bytes())
}

fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let payload = [&code.to_be_bytes()[..], reason.as_bytes()].concat();
    client(OpCode::Close, true, &payload)
}

// ---- events ----

/// An [`Event`], comparable.
#[derive(Debug, PartialEq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Drain,
    Dropped(u32),
    Closed(u16, String),
}

fn closed(code: u16, reason: &str) -> Ev {
    Ev::Closed(code, reason.into())
}

/// Every event there is now, reading on into `input` (what of it is taken
/// is cut off its front).
fn events_in(conn: &mut Connection, ob: &mut Outbox, input: &mut &[u8]) -> Vec<Ev> {
    let mut out = Vec::new();
    while let Some(event) = conn.poll_event_in(input, ob) {
        out.push(match event {
            Event::Message(Message::Text(t)) => Ev::Text(t.as_str().into()),
            Event::Message(Message::Binary(b)) => Ev::Binary(b.to_vec()),
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Drain => Ev::Drain,
            Event::Dropped(n) => Ev::Dropped(n),
            Event::Closed(r) => Ev::Closed(r.code.0, r.reason.as_str().into()),
        });
        assert!(out.len() < 1000, "events without end: {out:?}");
    }
    out
}

/// Every event there is now.
fn events(conn: &mut Connection, ob: &mut Outbox) -> Vec<Ev> {
    events_in(conn, ob, &mut &[][..])
}

/// The worker's `drive` up to the teardown: the events, then `after_input`.
fn drive(conn: &mut Connection, ob: &mut Outbox) -> Vec<Ev> {
    let out = events(conn, ob);
    conn.after_input(ob);
    out
}

/// Bytes from the peer as the worker's `on_recv` hands them over: into the
/// connection's buffer during the handshake, else read where they lie
/// (`drive_input`); then `after_input`.
fn feed(conn: &mut Connection, ob: &mut Outbox, bytes: &[u8]) -> Vec<Ev> {
    if conn.is_handshake() {
        conn.receive(bytes, ob);
        return drive(conn, ob);
    }
    let mut input = bytes;
    let out = events_in(conn, ob, &mut input);
    conn.after_input(ob);
    out
}

// ---- output ----

enum InFlight {
    Direct(Bytes),
    Vectored(Box<VectoredSend>),
}

/// Everything the connection writes, turn after turn as the worker's
/// `flush` submits it (the direct list first, then `poll_transmit` for a
/// connection on the ready list), each send completed in full.
fn written(conn: &mut Connection, ob: &mut Outbox) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut in_flight = None;
        for (slot, gen, frame) in std::mem::take(&mut ob.direct) {
            assert_eq!((slot, gen), (SLOT, GEN));
            if conn.start_direct() {
                assert!(in_flight.is_none(), "two direct sends in flight");
                in_flight = Some(InFlight::Direct(frame));
            }
        }
        if std::mem::take(&mut ob.ready).contains(&SLOT) {
            if let Some(send) = conn.poll_transmit() {
                assert!(in_flight.is_none(), "a vectored send beside a direct one");
                in_flight = Some(InFlight::Vectored(send));
            }
        }
        match in_flight {
            None => break,
            Some(InFlight::Direct(frame)) => {
                out.extend_from_slice(&frame);
                conn.on_sent(frame.len() as i32, None, ob);
            }
            Some(InFlight::Vectored(send)) => {
                out.extend(send.to_vec());
                conn.on_sent(send.len() as i32, Some(send), ob);
            }
        }
    }
    if !conn.is_closed() {
        assert_eq!(conn.queued(), 0, "bytes queued but no send to submit");
    }
    out
}

/// A server frame as a client reads it.
#[derive(Debug, PartialEq)]
enum Wire {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

fn wire_close(code: u16, reason: &str) -> Wire {
    Wire::Close(Some((code, reason.into())))
}

/// Decodes server frames; they must end on a frame boundary.
fn frames(bytes: &[u8]) -> Vec<Wire> {
    let mut decoder = Decoder::new(Role::Client, DecoderConfig::default());
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("a valid server frame") {
        out.push(match frame {
            Frame::Text(t) => Wire::Text(t.as_str().into()),
            Frame::Binary(b) => Wire::Binary(b.to_vec()),
            Frame::Ping(p) => Wire::Ping(p.to_vec()),
            Frame::Pong(p) => Wire::Pong(p.to_vec()),
            Frame::Close(c) => Wire::Close(c.map(|c| (c.code.0, c.reason.as_str().into()))),
        });
    }
    assert!(
        buf.is_empty() && !decoder.is_mid_message(),
        "a partial frame at the end"
    );
    out
}

/// What the connection writes now, decoded.
fn sent_frames(conn: &mut Connection, ob: &mut Outbox) -> Vec<Wire> {
    frames(&written(conn, ob))
}

// ---- handshake ----

#[test]
fn starts_in_its_handshake() {
    let mut ob = outbox(|_| {});
    let conn = accepted(&mut ob);
    assert!(matches!(
        conn.state(),
        State::Handshake {
            continue_sent: false
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
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &mut ob);
    assert!(poll_head(&mut conn, &mut ob).is_some());
    let response = Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conn.respond(response.clone(), &mut ob);
    assert_eq!(drive(&mut conn, &mut ob), []);
    assert!(!conn.is_done(), "done before the answer is written");
    conn.receive(b"GET /more HTTP/1.1\r\n\r\n", &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None, "read after the answer");
    assert_eq!(std::mem::take(&mut ob.ready), [SLOT]);
    let send = conn.poll_transmit().unwrap();
    assert_eq!(send.to_vec(), response);
    conn.on_sent(10, Some(send), &mut ob);
    assert!(!conn.is_done(), "done with part of the answer written");
    assert_eq!(written(&mut conn, &mut ob), response[10..]);
    assert!(conn.is_done());
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
    conn.upgrade(response.clone(), head_len, &mut ob);
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
    assert_eq!(conn.poll_timeout(&ob.config), Some(11_000));
    ob.now = 10_999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_handshake());
    ob.now = 11_000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Handshake);
    assert!(conn.is_closed() && conn.is_done());
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(conn.poll_timeout(&ob.config), None);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

// ---- open ----

#[test]
fn text_message_is_delivered() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &text("héllo wörld"));
    assert_eq!(evs, [Ev::Text("héllo wörld".into())]);
    assert_eq!(ob.counters.messages_in, 1);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn binary_message_is_delivered() {
    let (mut conn, mut ob) = open_conn();
    let data = [0u8, 0xff, 0x80, 7];
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Binary, true, &data));
    assert_eq!(evs, [Ev::Binary(data.to_vec())]);
}

#[test]
fn fragmented_text_is_one_message_with_a_ping_between() {
    let (mut conn, mut ob) = open_conn();
    let fragments = [
        client(OpCode::Text, false, b"hel"),
        client(OpCode::Ping, true, b"!"),
        client(OpCode::Continuation, false, "lo ".as_bytes()),
        client(OpCode::Continuation, true, "wörld".as_bytes()),
    ]
    .concat();
    assert_eq!(
        feed(&mut conn, &mut ob, &fragments),
        [Ev::Ping(b"!".to_vec()), Ev::Text("hello wörld".into())]
    );
    assert_eq!(ob.counters.messages_in, 1);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Pong(b"!".to_vec())]);
}

#[test]
fn fragments_in_separate_reads_make_one_binary_message() {
    let (mut conn, mut ob) = open_conn();
    let first = client(OpCode::Binary, false, &[1, 2]);
    assert_eq!(feed(&mut conn, &mut ob, &first), []);
    let last = client(OpCode::Continuation, true, &[3]);
    let (a, b) = last.split_at(3);
    assert_eq!(feed(&mut conn, &mut ob, a), [], "half a frame");
    assert_eq!(feed(&mut conn, &mut ob, b), [Ev::Binary(vec![1, 2, 3])]);
}

#[test]
fn whole_frames_in_the_input_are_read_in_place_without_a_buffer() {
    let (mut conn, mut ob) = open_conn();
    let second = client(OpCode::Binary, true, b"b");
    let received = [text("a"), second.clone()].concat();
    let mut input = &received[..];
    let Some(Event::Message(Message::Text(t))) = conn.poll_event_in(&mut input, &mut ob) else {
        panic!("no message");
    };
    assert_eq!(t.as_str(), "a");
    assert_eq!(input, &second[..], "what was taken is cut off the front");
    assert!(conn.output.io.is_none(), "a buffer taken for a whole frame");
    assert_eq!(
        events_in(&mut conn, &mut ob, &mut input),
        [Ev::Binary(b"b".to_vec())]
    );
    assert!(input.is_empty() && conn.output.io.is_none());
}

#[test]
fn a_partial_frame_is_buffered_with_room_for_all_of_it() {
    let (mut conn, mut ob) = open_conn();
    let frame = client(OpCode::Binary, true, &[9; 1000]);
    let (head, rest) = frame.split_at(100);
    assert_eq!(feed(&mut conn, &mut ob, head), []);
    let inbuf = &conn
        .output
        .io
        .as_ref()
        .expect("no buffer for the rest")
        .inbuf;
    // The 8 header bytes are decoded; 92 of the 1000 payload bytes are in.
    assert_eq!(inbuf.len(), 92);
    assert!(inbuf.capacity() >= 1000, "room for {}", inbuf.capacity());
    assert_eq!(feed(&mut conn, &mut ob, rest), [Ev::Binary(vec![9; 1000])]);
    assert!(conn.output.io.is_none(), "an empty buffer is kept");
}

#[test]
fn a_large_frames_header_reserves_64_kib_not_its_length() {
    let (mut conn, mut ob) = open_conn();
    let frame = client(OpCode::Binary, true, &vec![0; 1 << 20]);
    // 2 bytes, an 8-byte length, the mask, and a little of the payload.
    assert_eq!(feed(&mut conn, &mut ob, &frame[..14 + 100]), []);
    let inbuf = &conn.output.io.as_ref().unwrap().inbuf;
    assert_eq!(inbuf.len(), 100);
    let capacity = inbuf.capacity();
    assert!(
        (RESERVE_AHEAD_MAX - 100..2 * RESERVE_AHEAD_MAX).contains(&capacity),
        "{capacity} bytes reserved for a frame of 1 MiB"
    );
    assert_eq!(
        feed(&mut conn, &mut ob, &frame[14 + 100..]),
        [Ev::Binary(vec![0; 1 << 20])]
    );
}

#[test]
fn ping_is_answered_with_a_pong_of_its_payload() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"abc"));
    assert_eq!(evs, [Ev::Ping(b"abc".to_vec())]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Pong(b"abc".to_vec())]
    );
    assert_eq!(ob.counters.messages_out, 0, "a pong is not a message");
}

#[test]
fn ping_is_not_answered_without_auto_pong() {
    let (mut conn, mut ob) = open_with(|c| c.auto_pong = false);
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"abc"));
    assert_eq!(evs, [Ev::Ping(b"abc".to_vec())]);
    assert_eq!(conn.queued(), 0);
    assert!(ob.direct.is_empty() && ob.ready.is_empty());
}

#[test]
fn pong_is_reported_and_not_answered() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Pong, true, b"xyz"));
    assert_eq!(evs, [Ev::Pong(b"xyz".to_vec())]);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn invalid_utf8_closes_with_1007_and_reads_nothing_more() {
    let (mut conn, mut ob) = open_conn();
    let bad = [
        client(OpCode::Text, true, &[b'o', 0xff, b'k']),
        text("after"),
    ]
    .concat();
    assert_eq!(
        feed(&mut conn, &mut ob, &bad),
        [closed(1007, "invalid UTF-8 in text payload")]
    );
    assert_eq!(feed(&mut conn, &mut ob, &text("later")), []);
    assert_eq!(ob.counters.messages_in, 0);
    assert!(!conn.is_done(), "done before our close is written");
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1007, "")]);
    assert!(
        conn.is_done(),
        "the peer's answer is waited for after an error"
    );
}

#[test]
fn frame_over_max_frame_size_closes_with_1009_at_its_header() {
    let (mut conn, mut ob) = open_with(|c| c.decoder.max_frame_size = 16);
    let at_limit = client(OpCode::Binary, true, &[7; 16]);
    assert_eq!(
        feed(&mut conn, &mut ob, &at_limit),
        [Ev::Binary(vec![7; 16])]
    );
    let over = client(OpCode::Binary, true, &[7; 17]);
    // Two header bytes and the mask: the payload need not arrive.
    assert_eq!(
        feed(&mut conn, &mut ob, &over[..6]),
        [closed(1009, "frame of 17 bytes exceeds the limit of 16")]
    );
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1009, "")]);
    assert!(conn.is_done());
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        feed(&mut conn, &mut ob, &[0x81, 0x02, b'h', b'i']),
        [closed(1002, "client frame is not masked")]
    );
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1002, "")]);
}

#[test]
fn frame_after_the_peers_close_is_not_delivered() {
    let (mut conn, mut ob) = open_conn();
    let bytes = [close_frame(1000, "bye"), text("late")].concat();
    assert_eq!(feed(&mut conn, &mut ob, &bytes), [closed(1000, "bye")]);
    assert_eq!(feed(&mut conn, &mut ob, &text("later")), []);
    assert_eq!(ob.counters.messages_in, 0);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
}

// ---- close orders ----

#[test]
fn peer_close_is_echoed_reported_and_done_once_written() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        feed(&mut conn, &mut ob, &close_frame(4000, "done")),
        [closed(4000, "done")]
    );
    assert!(!conn.is_done(), "done before the reply is written");
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(4000, "")]);
    assert!(conn.is_done());
    assert_eq!(events(&mut conn, &mut ob), []);
}

#[test]
fn empty_peer_close_is_reported_1005_and_answered_empty() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Close, true, b""));
    assert_eq!(evs, [closed(1005, "")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Close(None)]);
    assert!(conn.is_done());
}

#[test]
fn our_close_is_reported_once_and_ends_with_the_peers_close() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        conn.send(OpCode::Text, "last".into(), &mut ob),
        SendStatus::Sent
    );
    conn.close(CloseCode::NORMAL, "bye", &mut ob);
    assert_eq!(ob.wake, [SLOT], "the handler is to hear of it");
    assert_eq!(drive(&mut conn, &mut ob), [closed(1000, "bye")]);
    assert_eq!(events(&mut conn, &mut ob), [], "reported twice");
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("last".into()), wire_close(1000, "bye")]
    );
    assert!(!conn.is_done(), "done before the peer answered");
    assert_eq!(feed(&mut conn, &mut ob, &text("in flight")), []);
    assert_eq!(ob.counters.messages_in, 0);
    assert!(!conn.is_done());
    assert_eq!(feed(&mut conn, &mut ob, &close_frame(1000, "")), []);
    assert!(conn.is_done());
    assert_eq!(
        written(&mut conn, &mut ob),
        b"",
        "the peer's close answered after ours"
    );
}

#[test]
fn data_and_the_peers_close_in_one_read_end_our_close() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, "bye", &mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1000, "bye")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "bye")]);
    let received = [
        text("one"),
        client(OpCode::Ping, true, b"two"),
        close_frame(1000, ""),
    ]
    .concat();
    assert_eq!(feed(&mut conn, &mut ob, &received), []);
    assert!(conn.is_done());
    assert_eq!(
        written(&mut conn, &mut ob),
        b"",
        "a pong or close after ours"
    );
}

#[test]
fn crossing_closes_end_with_one_report_and_one_close_frame() {
    let (mut conn, mut ob) = open_conn();
    // The peer's close is already read when the handler, on the message
    // before it, closes too.
    let received = [text("a"), close_frame(1001, "peer")].concat();
    let mut input = &received[..];
    let Some(Event::Message(Message::Text(t))) = conn.poll_event_in(&mut input, &mut ob) else {
        panic!("no message first");
    };
    assert_eq!(t.as_str(), "a");
    conn.close(CloseCode::NORMAL, "ours", &mut ob);
    assert_eq!(
        events_in(&mut conn, &mut ob, &mut input),
        [closed(1000, "ours")]
    );
    assert!(input.is_empty(), "the peer's close is not read");
    conn.after_input(&mut ob);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "ours")]);
    assert!(conn.is_done());
}

#[test]
fn close_timeout_while_waiting_for_the_peer_ends_it() {
    let (mut conn, mut ob) = open_with(|c| c.close_timeout = Duration::from_secs(5));
    ob.now = 1000;
    conn.close(CloseCode::NORMAL, "", &mut ob);
    assert_eq!(drive(&mut conn, &mut ob), [closed(1000, "")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
    assert_eq!(conn.poll_timeout(&ob.config), Some(6000));
    ob.now = 5999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(!conn.is_done());
    ob.now = 6000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Closing);
    assert!(conn.is_closed() && conn.is_done());
    assert_eq!(events(&mut conn, &mut ob), [], "reported twice");
    assert_eq!(conn.poll_timeout(&ob.config), None);
}

#[test]
fn transport_lost_while_open_reports_1006_once() {
    let (mut conn, mut ob) = open_conn();
    conn.on_transport_closed(&mut ob);
    assert!(conn.is_done());
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")]
    );
    conn.on_transport_closed(&mut ob);
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn transport_lost_while_closing_after_the_report_reports_nothing_more() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::GOING_AWAY, "away", &mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1001, "away")]);
    conn.on_transport_closed(&mut ob);
    assert!(conn.is_closed() && conn.is_done());
    assert_eq!(events(&mut conn, &mut ob), []);
}

#[test]
fn transport_lost_before_the_close_report_is_taken_reports_it_once() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::GOING_AWAY, "away", &mut ob);
    conn.on_transport_closed(&mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1001, "away")]);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn close_during_the_handshake_drops_without_a_report() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /chat HTTP/1.1\r\nHost: x\r\n", &mut ob);
    conn.close(CloseCode::NORMAL, "no", &mut ob);
    assert!(conn.is_closed() && conn.is_done());
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(written(&mut conn, &mut ob), b"");
    conn.receive(b"\r\n", &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
}

#[test]
fn close_twice_reports_and_sends_once() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, "first", &mut ob);
    conn.close(CloseCode::GOING_AWAY, "second", &mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1000, "first")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "first")]);
}

#[test]
fn sends_after_close_are_dropped() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, "", &mut ob);
    let frame = encode_shared(OpCode::Text, b"pub").unwrap();
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(
        conn.send_encoded(frame.clone(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
    assert_eq!(ob.counters.messages_out, 0);
    assert_eq!(ob.counters.backpressure_drops, 0, "not a backpressure drop");
    // So are those after the peer's close.
    let (mut conn, mut ob) = open_conn();
    feed(&mut conn, &mut ob, &close_frame(1000, ""));
    assert_eq!(
        conn.send(OpCode::Binary, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(conn.send_encoded(frame, &mut ob), SendStatus::Dropped);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
}

#[test]
fn close_reason_is_cut_to_123_bytes_at_a_char_boundary() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, &"é".repeat(70), &mut ob);
    let cut = "é".repeat(61);
    assert_eq!(events(&mut conn, &mut ob), [closed(1000, &cut)]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, &cut)]);
}

// ---- timers ----

#[test]
fn poll_timeout_follows_the_state() {
    let mut ob = outbox(|c| {
        c.handshake_timeout = Duration::from_secs(10);
        c.idle_timeout = Duration::from_secs(120);
        c.ping_interval = Duration::from_secs(30);
        c.close_timeout = Duration::from_secs(5);
    });
    ob.now = 100;
    let mut conn = accepted(&mut ob);
    assert_eq!(conn.poll_timeout(&ob.config), Some(10_100));
    ob.now = 500;
    handshake(&mut conn, &mut ob);
    assert_eq!(
        conn.poll_timeout(&ob.config),
        Some(30_500),
        "the ping first"
    );
    let no_ping = EngineConfig {
        ping_interval: Duration::ZERO,
        ..(*ob.config).clone()
    };
    assert_eq!(conn.poll_timeout(&no_ping), Some(120_500), "then idleness");
    ob.now = 700;
    conn.close(CloseCode::NORMAL, "", &mut ob);
    assert_eq!(conn.poll_timeout(&ob.config), Some(5700));
    conn.on_transport_closed(&mut ob);
    assert_eq!(conn.poll_timeout(&ob.config), None);
}

#[test]
fn idle_timeout_closes_with_1001() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.ping_interval = Duration::ZERO;
    });
    assert_eq!(conn.poll_timeout(&ob.config), Some(1000));
    ob.now = 999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    ob.now = 1000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Idle);
    assert_eq!(drive(&mut conn, &mut ob), [closed(1001, "idle timeout")]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [wire_close(1001, "idle timeout")]
    );
    assert!(!conn.is_done(), "the peer's close is waited for");
}

#[test]
fn silence_is_pinged_then_closed_when_no_pong_comes() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::ZERO;
        c.ping_interval = Duration::from_secs(1);
    });
    assert_eq!(conn.poll_timeout(&ob.config), Some(1000));
    ob.now = 1000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert_eq!(drive(&mut conn, &mut ob), []);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Ping(vec![])]);
    assert_eq!(conn.poll_timeout(&ob.config), Some(2000));
    ob.now = 1999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert_eq!(written(&mut conn, &mut ob), b"", "pinged twice");
    ob.now = 2000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Ping);
    assert_eq!(drive(&mut conn, &mut ob), [closed(1001, "ping timeout")]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [wire_close(1001, "ping timeout")]
    );
}

#[test]
fn a_frame_answers_the_pending_ping() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(3);
        c.ping_interval = Duration::from_secs(1);
    });
    ob.now = 1000;
    conn.handle_timeout(&mut ob);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Ping(vec![])]);
    ob.now = 1500;
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Pong, true, b""));
    assert_eq!(evs, [Ev::Pong(vec![])]);
    assert_eq!(conn.poll_timeout(&ob.config), Some(2500), "the next ping");
    ob.now = 2000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    assert_eq!(written(&mut conn, &mut ob), b"");
    ob.now = 2500;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Ping(vec![])]);
}

#[test]
fn a_frame_resets_the_idle_deadline() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.ping_interval = Duration::ZERO;
    });
    ob.now = 600;
    assert_eq!(feed(&mut conn, &mut ob, &text("still here")).len(), 1);
    assert_eq!(conn.poll_timeout(&ob.config), Some(1600));
    ob.now = 1000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    ob.now = 1600;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Idle);
}

#[test]
fn zero_idle_timeout_and_ping_interval_leave_an_open_connection_without_deadline() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::ZERO;
        c.ping_interval = Duration::ZERO;
    });
    assert_eq!(conn.poll_timeout(&ob.config), None);
    ob.now = 1 << 40;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn timeout_beyond_u64_milliseconds_is_far_off_not_an_overflow() {
    // The server takes timeouts as f64 seconds: `idle_timeout = 1e17` is
    // accepted and is more milliseconds than a u64 holds.
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(u64::MAX);
        c.ping_interval = Duration::ZERO;
    });
    ob.now = 1000;
    assert_eq!(feed(&mut conn, &mut ob, &text("activity")).len(), 1);
    assert!(conn.poll_timeout(&ob.config).is_none_or(|at| at > 1 << 60));
    ob.now = 2000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
}

// ---- backpressure ----

#[test]
fn send_status_is_sent_then_queued_then_dropped_at_the_limit() {
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 100);
    let ten = Bytes::from_static(b"0123456789");
    assert_eq!(
        conn.send(OpCode::Text, ten.clone(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(conn.queued(), 12);
    assert_eq!(
        conn.send(OpCode::Text, ten.clone(), &mut ob),
        SendStatus::Queued
    );
    let rest = Bytes::from(vec![1; 74]);
    assert_eq!(conn.send(OpCode::Binary, rest, &mut ob), SendStatus::Queued);
    assert_eq!(conn.queued(), 100);
    assert_eq!(conn.send(OpCode::Text, ten, &mut ob), SendStatus::Dropped);
    assert_eq!(conn.queued(), 100);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [
            Wire::Text("0123456789".into()),
            Wire::Text("0123456789".into()),
            Wire::Binary(vec![1; 74])
        ]
    );
}

#[test]
fn drop_policy_reports_the_drop_count_once_and_wakes_the_connection() {
    let (mut conn, mut ob) = open_with(|c| {
        c.backpressure_limit = 100;
        c.backpressure_policy = BackpressurePolicy::Drop;
    });
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    for _ in 0..3 {
        assert_eq!(
            conn.send(OpCode::Text, "x".into(), &mut ob),
            SendStatus::Dropped
        );
    }
    let frame = encode_shared(OpCode::Text, b"pub").unwrap();
    assert_eq!(conn.send_encoded(frame, &mut ob), SendStatus::Dropped);
    assert_eq!(ob.wake, [SLOT], "woken once for the lot");
    assert_eq!(ob.counters.backpressure_drops, 4);
    assert_eq!(ob.counters.backpressure_closes, 0);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Dropped(4)]);
    assert_eq!(events(&mut conn, &mut ob), []);
    ob.wake.clear();
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(ob.wake, [SLOT]);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Dropped(1)]);
    assert!(conn.is_open());
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Binary(vec![0; 100])]
    );
}

#[test]
fn close_policy_closes_with_1008_over_the_limit() {
    let (mut conn, mut ob) = open_with(|c| {
        c.backpressure_limit = 100;
        c.backpressure_policy = BackpressurePolicy::Close;
    });
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(ob.wake, [SLOT]);
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1008, "backpressure limit")]
    );
    assert_eq!(
        (
            ob.counters.backpressure_drops,
            ob.counters.backpressure_closes
        ),
        (1, 1)
    );
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(
        ob.counters.backpressure_drops, 1,
        "closing, not over the limit"
    );
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [
            Wire::Binary(vec![0; 100]),
            wire_close(1008, "backpressure limit")
        ]
    );
}

#[test]
fn drain_is_reported_once_the_queue_falls_under_half_the_limit() {
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 100);
    let sixty = Bytes::from(vec![6; 60]);
    assert_eq!(
        conn.send(OpCode::Binary, sixty.clone(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(
        conn.send(OpCode::Binary, sixty, &mut ob),
        SendStatus::Queued
    );
    assert_eq!(events(&mut conn, &mut ob), []);
    let send = conn.poll_transmit().unwrap();
    assert_eq!(send.len(), 124);
    conn.on_sent(30, Some(send), &mut ob);
    assert_eq!(conn.queued(), 94);
    assert_eq!(events(&mut conn, &mut ob), [], "94 is over half of 100");
    let send = conn.poll_transmit().unwrap();
    conn.on_sent(45, Some(send), &mut ob);
    assert_eq!(conn.queued(), 49);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Drain]);
    assert_eq!(events(&mut conn, &mut ob), [], "drained twice");
    ob.wake.clear();
    written(&mut conn, &mut ob);
    assert!(ob.wake.is_empty(), "woken with no drain wanted");
    assert_eq!(events(&mut conn, &mut ob), []);
}

#[test]
fn counters_track_messages_and_bytes_both_ways() {
    let (mut conn, mut ob) = open_conn();
    let input = [
        text("one"),
        client(OpCode::Binary, true, b"two"),
        client(OpCode::Ping, true, b"p"),
    ]
    .concat();
    assert_eq!(feed(&mut conn, &mut ob, &input).len(), 3);
    assert_eq!(ob.counters.messages_in, 2, "a ping is not a message");
    // The worker's on_recv counts bytes_in: counted here too, twice.
    assert_eq!(ob.counters.bytes_in, 0);
    conn.send(OpCode::Text, "reply".into(), &mut ob);
    let frame = encode_shared(OpCode::Text, b"pub").unwrap();
    conn.send_encoded(frame, &mut ob);
    assert_eq!(ob.counters.messages_out, 2, "a pong is not a message");
    let out = written(&mut conn, &mut ob);
    assert_eq!(
        frames(&out),
        [
            Wire::Pong(b"p".to_vec()),
            Wire::Text("reply".into()),
            Wire::Text("pub".into())
        ]
    );
    assert_eq!(ob.counters.bytes_out, out.len() as u64);
    assert_eq!(out.len(), 3 + 7 + 5);
}

#[test]
fn auto_pong_refused_by_backpressure_is_not_a_dropped_message() {
    let (mut conn, mut ob) = open_with(|c| {
        c.backpressure_limit = 100;
        c.backpressure_policy = BackpressurePolicy::Drop;
    });
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"p"));
    assert_eq!(evs, [Ev::Ping(b"p".to_vec())]);
    assert_eq!(ob.counters.backpressure_drops, 0);
}

#[test]
fn auto_pong_behind_queued_data_reports_no_drain() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        conn.send(OpCode::Text, "first".into(), &mut ob),
        SendStatus::Sent
    );
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"p"));
    assert_eq!(evs, [Ev::Ping(b"p".to_vec())]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("first".into()), Wire::Pong(b"p".to_vec())]
    );
    assert_eq!(events(&mut conn, &mut ob), []);
}

// ---- output ----

#[test]
fn short_vectored_send_sends_the_rest_next() {
    let (mut conn, mut ob) = open_conn();
    conn.send(OpCode::Text, "hello world".into(), &mut ob);
    assert_eq!(std::mem::take(&mut ob.ready), [SLOT]);
    let send = conn.poll_transmit().unwrap();
    let all = send.to_vec();
    assert_eq!(all.len(), 13);
    assert!(conn.poll_transmit().is_none(), "two sends in flight");
    conn.on_sent(5, Some(send), &mut ob);
    assert_eq!(conn.queued(), 8);
    assert_eq!(
        std::mem::take(&mut ob.ready),
        [SLOT],
        "the rest is not listed"
    );
    let send = conn.poll_transmit().unwrap();
    assert_eq!(send.to_vec(), all[5..]);
    conn.on_sent(8, Some(send), &mut ob);
    assert_eq!(conn.queued(), 0);
    assert!(
        conn.output.io.is_none(),
        "an idle connection holds its buffers"
    );
    assert_eq!(frames(&all), [Wire::Text("hello world".into())]);
    assert_eq!(ob.counters.bytes_out, 13);
}

#[test]
fn send_encoded_to_an_idle_connection_goes_direct_and_the_next_queues_behind() {
    let (mut conn, mut ob) = open_conn();
    assert!(conn.output.io.is_none());
    let first = encode_shared(OpCode::Text, b"first").unwrap();
    let second = encode_shared(OpCode::Text, b"second").unwrap();
    assert_eq!(conn.send_encoded(first.clone(), &mut ob), SendStatus::Sent);
    assert_eq!(ob.direct, [(SLOT, GEN, first.clone())]);
    assert!(conn.output.io.is_none(), "an Io taken for a direct send");
    assert!(ob.ready.is_empty());
    assert_eq!(conn.queued(), first.len());
    assert_eq!(conn.send_encoded(second, &mut ob), SendStatus::Queued);
    assert_eq!(ob.direct.len(), 1);
    assert_eq!(ob.ready, [SLOT]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("first".into()), Wire::Text("second".into())]
    );
    assert!(conn.output.io.is_none());
}

#[test]
fn short_direct_send_ends_the_connection() {
    let (mut conn, mut ob) = open_conn();
    let frame = encode_shared(OpCode::Text, b"publication").unwrap();
    conn.send_encoded(frame, &mut ob);
    assert!(conn.start_direct());
    assert!(conn.sending());
    conn.on_sent(4, None, &mut ob);
    assert!(conn.is_closed() && conn.is_done());
    assert!(!conn.sending());
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")]
    );
}

#[test]
fn send_error_ends_the_connection() {
    let (mut conn, mut ob) = open_conn();
    conn.send(OpCode::Text, "x".into(), &mut ob);
    let send = conn.poll_transmit().unwrap();
    conn.on_sent(-libc::ECONNRESET, Some(send), &mut ob);
    assert!(conn.is_closed() && conn.is_done());
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")]
    );
    assert_eq!(conn.poll_transmit().map(|s| s.len()), None);
}

#[test]
fn after_input_turns_one_small_reply_into_a_direct_send() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"abc"));
    assert_eq!(evs.len(), 1);
    let pong = Bytes::from_static(&[0x8a, 3, b'a', b'b', b'c']);
    assert_eq!(ob.direct, [(SLOT, GEN, pong)]);
    assert!(
        conn.output.io.is_none(),
        "the Io is kept for a direct reply"
    );
    assert!(conn.poll_transmit().is_none(), "sent twice");
    assert!(conn.start_direct());
    conn.on_sent(5, None, &mut ob);
    assert!(conn.is_open() && !conn.sending());
    assert_eq!(conn.queued(), 0);
}

#[test]
fn a_reply_over_the_direct_copy_limit_stays_vectored() {
    let (mut conn, mut ob) = open_conn();
    let big = "x".repeat(output::DIRECT_COPY_MAX);
    conn.send(OpCode::Text, big.clone().into(), &mut ob);
    conn.after_input(&mut ob);
    assert!(ob.direct.is_empty());
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Text(big)]);
}

#[test]
fn shutdown_closes_an_open_connection_with_1001() {
    let (mut conn, mut ob) = open_conn();
    conn.shutdown(&mut ob);
    assert_eq!(ob.wake, [SLOT]);
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1001, "server shutting down")]
    );
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [wire_close(1001, "server shutting down")]
    );
    assert!(!conn.is_done(), "the peer's close is waited for");
    feed(&mut conn, &mut ob, &close_frame(1001, ""));
    assert!(conn.is_done());
}

#[test]
fn shutdown_drops_a_connection_in_its_handshake() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /chat HTTP/1.1\r\n", &mut ob);
    conn.shutdown(&mut ob);
    assert!(conn.is_closed() && conn.is_done());
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn an_answer_being_written_when_the_peer_shuts_its_side_still_goes_out() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &mut ob);
    assert!(poll_head(&mut conn, &mut ob).is_some());
    let response = Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conn.respond(response.clone(), &mut ob);
    conn.on_end_of_stream(&mut ob);
    assert!(!conn.is_done(), "the answer is not written yet");
    assert_eq!(written(&mut conn, &mut ob), response);
    assert!(conn.is_done());
}

#[test]
fn the_end_of_the_stream_while_open_is_a_lost_connection() {
    let (mut conn, mut ob) = open_conn();
    conn.on_end_of_stream(&mut ob);
    assert!(conn.is_done());
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")]
    );
}

#[test]
fn pings_while_over_the_limit_queue_no_pongs() {
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 100);
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    let queued = conn.queued();
    for _ in 0..50 {
        let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"p"));
        assert_eq!(evs, [Ev::Ping(b"p".to_vec())]);
    }
    assert_eq!(
        conn.queued(),
        queued,
        "a peer that pings without reading cannot grow the queue"
    );
}

#[test]
fn a_drain_comes_after_a_send_completes_not_when_a_send_is_queued() {
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 10_000);
    assert_eq!(
        conn.send(OpCode::Text, "a".into(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(
        conn.send(OpCode::Text, "b".into(), &mut ob),
        SendStatus::Queued
    );
    assert_eq!(events(&mut conn, &mut ob), [], "nothing was written yet");
    assert_eq!(written(&mut conn, &mut ob).len(), 6);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Drain]);
    assert_eq!(events(&mut conn, &mut ob), []);
}
