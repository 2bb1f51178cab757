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

mod backpressure;
mod close;
mod deflate;
mod handshake;
mod open;
mod output;
mod proxied;
mod records;
mod timers;

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
    conn.upgrade(response.clone(), head_len, None, ob);
    assert_eq!(
        conn.peer(),
        None,
        "the peer's address is kept past the handshake"
    );
    assert_eq!(drive(conn, ob), []);
    assert_eq!(written(conn, ob), response);
    assert!(conn.is_open());
}

/// A plain request answered with a 200 that is not written yet.
fn answering_a_plain_request() -> (Connection, Outbox, Bytes) {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &mut ob);
    assert!(poll_head(&mut conn, &mut ob).is_some());
    let response = Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conn.respond(response.clone(), &mut ob);
    (conn, ob, response)
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
fn events_in(conn: &mut Connection, ob: &mut Outbox, input: &mut &mut [u8]) -> Vec<Ev> {
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
    events_in(conn, ob, &mut &mut [][..])
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
    // The worker unmasks where the bytes lie, in the ring's buffer.
    let mut bytes = bytes.to_vec();
    let out = events_in(conn, ob, &mut &mut bytes[..]);
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
            if let Some(send) = conn.poll_transmit(ob) {
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
            Frame::Compressed(c) => panic!("compressed, and not agreed: {c:?}"),
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

/// Every idle connection carries this (plus the worker's few bytes per
/// slot): what the idle-memory budget rests on. Grow it only with a
/// measured reason.
#[test]
fn an_idle_connection_is_nine_words() {
    assert_eq!(std::mem::size_of::<Connection>(), 64);
    assert_eq!(std::mem::size_of::<State>(), 8);
    assert_eq!(std::mem::size_of::<Session>(), 24);
}
