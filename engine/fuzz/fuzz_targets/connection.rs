//! One connection's state machine fed arbitrary orders of what can happen
//! to it in a worker: bytes from the peer (upgrade and plain requests,
//! valid masked frames, frames with arbitrary header bits, garbage),
//! split at arbitrary points; time passing and the timers running; the
//! handler's sends and closes, in its callbacks and from other threads;
//! shutdown; sends submitted and completed in full, in part or with an
//! error; the end of the stream and a torn-down transport.
//!
//! After every step the invariants below must hold; `check` and `Wire`
//! say which. In short: no panic; the connection's life only moves on
//! (handshake, open, closing, closed) and a connection that is done stays
//! done, writes nothing more, holds nothing queued and has no deadline;
//! one send in flight at a time, and nothing queued without a send to
//! carry it; what is queued stays within the backpressure limit plus one
//! message and one close frame, and what is buffered from the peer within
//! the head, body and frame limits; every `SendStatus` means what it says;
//! what goes out is the 101 (or the 100 Continue and the answer, and
//! nothing after it) and then valid server frames, with valid close codes,
//! nothing after the close, and, in order, exactly the messages the
//! handler's sends admitted; the handler hears nothing before the
//! upgrade, of each message the peer sent while the stream was well
//! formed, and of the close exactly once; and once the timers ran, no
//! handshake, close or idle timeout is overdue and the next deadline is
//! ahead.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::{arbitrary, arbitrary::Arbitrary, fuzz_target};
use std::{sync::OnceLock, time::Duration};
use uringws_engine::{
    fuzzing::{Answer, Event, Harness, Head, Script, PIECE},
    protocol::{
        close::MAX_REASON_LEN,
        deflate::{Compressor, Decompressor, DeflateParams, ServerDeflate},
        encoder::{encode_shared, write_client_frame, write_compressed_client_frame},
        handshake::parse_extensions,
        http::{Response, CONTINUE},
        CloseCode, DecoderConfig, Message as Frame, OpCode, Role, Session, Utf8Bytes,
    },
    BackpressurePolicy, Compression, Conn, EngineConfig, Message, SendStatus,
};

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    /// What the handler does in its callbacks (`open`, then each event),
    /// one each, in turn; nothing once they run out.
    reactions: Vec<Action>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
struct Config {
    /// Backpressure limit in units of 8 bytes: 0 to 512 KiB.
    limit: u16,
    close_policy: bool,
    handshake_ms: u16,
    /// 0: never.
    idle_ms: u16,
    /// 0: no pings.
    ping_ms: u16,
    close_ms: u16,
    auto_pong: bool,
    max_head: u16,
    max_body: u16,
    max_frame: u16,
    /// The message limit, in frames of `max_frame`.
    message_frames: u8,
    refuse_upgrades: bool,
    /// permessage-deflate: `% 4` off, shared, dedicated compressors,
    /// dedicated compressors and decompressors.
    deflate: u8,
    /// Messages shorter go uncompressed.
    deflate_min: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The peer writes this after what it wrote before.
    Write(Piece),
    /// A receive completes with the next bytes of what the peer wrote.
    Receive(u16),
    /// Receives of up to 16 KiB (the engine's receive buffers) until all
    /// the peer wrote has arrived.
    ReceiveAll,
    Advance(u16),
    Timers,
    /// A `ConnRef`'s send or close.
    Command(Action),
    Shutdown,
    Flush,
    Complete(Completion),
    EndOfStream,
    Teardown,
    Wake,
    /// A worker's turn: flush and write all there is, timers, wakes.
    Turn,
}

#[derive(Arbitrary, Debug)]
enum Completion {
    All,
    /// `n % (len + 1)` bytes.
    Part(u16),
    Error(u8),
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Upgrade(Handshake),
    Plain {
        body: Vec<u8>,
        expect_continue: bool,
    },
    /// One message in `fragments` frames (at least one), with a ping
    /// after the first when given.
    Message {
        payload: Payload,
        fragments: u8,
        ping: Option<Vec<u8>>,
        mask: [u8; 4],
    },
    /// One message compressed (permessage-deflate, as agreed) in
    /// `fragments` frames (at least one).
    Compressed {
        payload: Payload,
        fragments: u8,
        mask: [u8; 4],
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: Code,
        reason: String,
    },
    EmptyClose,
    /// A frame with this first byte (FIN, RSV, opcode: any bits), its
    /// length encoded right, masked or not.
    Frame {
        first: u8,
        masked: bool,
        payload: Vec<u8>,
    },
    /// A masked frame header announcing `len` bytes, and no payload.
    Header {
        first: u8,
        len: u64,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Text(String),
    Binary(Vec<u8>),
    /// Up to 64 KiB of ASCII.
    Big {
        text: bool,
        len: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct Handshake {
    path: u8,
    protocols: bool,
    extensions: bool,
    origin: bool,
    lowercase: bool,
    keep_alive: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Code {
    Normal,
    GoingAway,
    Private(u8),
    Any(u16),
}

impl Code {
    fn get(self) -> CloseCode {
        CloseCode(match self {
            Code::Normal => 1000,
            Code::GoingAway => 1001,
            Code::Private(n) => 4000 + u16::from(n),
            Code::Any(n) => n,
        })
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Action {
    Nothing,
    Text(Size),
    Binary(Size),
    Ping(u8),
    /// A frame encoded once for many, as a publication is.
    Encoded {
        text: bool,
        size: Size,
    },
    Close {
        code: Code,
        reason: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Tiny(u8),
    Small(u16),
    /// (n + 1) KiB: up to 256 KiB.
    Large(u8),
}

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Tiny(n) => n.into(),
            Size::Small(n) => n.into(),
            Size::Large(n) => (usize::from(n) + 1) << 10,
        }
    }
}

/// ASCII, varied so that messages differ.
fn fill(at: usize, len: usize) -> Bytes {
    const MAX: usize = (256 << 10) + 256;
    static FILL: OnceLock<Bytes> = OnceLock::new();
    let fill = FILL.get_or_init(|| (0..MAX).map(|i| b'!' + (i % 94) as u8).collect());
    let at = at % 256;
    fill.slice(at..at + len.min(MAX - at))
}

fn text(bytes: Bytes) -> Utf8Bytes {
    Utf8Bytes::try_from(bytes).expect("ASCII")
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The offer of an upgrade with `extensions`: Chromium's.
const OFFER: &str = "permessage-deflate; client_max_window_bits";
const PATHS: [&str; 4] = ["/", "/chat?room=1", "/echo", "/a/b?c=d&e=%20"];
/// What each frame of the engine's own may add to the queue's cost: a
/// header, a control frame's payload, two pieces.
const CONTROL: usize = 2 + 125 + 2 * PIECE;
/// The 1008 close of the backpressure policy: header, code, reason.
const POLICY_CLOSE: usize = 2 + 2 + "backpressure limit".len();

impl Handshake {
    fn bytes(&self) -> Vec<u8> {
        let mut headers = vec![
            "Host: example.com".to_owned(),
            "Upgrade: websocket".to_owned(),
            match self.keep_alive {
                true => "Connection: keep-alive, Upgrade".to_owned(),
                false => "Connection: Upgrade".to_owned(),
            },
            format!("Sec-WebSocket-Key: {KEY}"),
            "Sec-WebSocket-Version: 13".to_owned(),
        ];
        if self.protocols {
            headers.push("Sec-WebSocket-Protocol: chat, superchat".to_owned());
        }
        if self.extensions {
            headers.push(format!("Sec-WebSocket-Extensions: {OFFER}"));
        }
        if self.origin {
            headers.push("Origin: http://example.com".to_owned());
        }
        let mut head = format!(
            "GET {} HTTP/1.1\r\n",
            PATHS[usize::from(self.path) % PATHS.len()]
        );
        for header in headers {
            let (name, value) = header.split_once(':').expect("name: value");
            let name = match self.lowercase {
                true => name.to_ascii_lowercase(),
                false => name.to_owned(),
            };
            head.push_str(&format!("{name}:{value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

fn client_frame(out: &mut BytesMut, opcode: OpCode, fin: bool, payload: &[u8], mask: [u8; 4]) {
    write_client_frame(out, opcode, fin, payload, mask).expect("a valid frame");
}

fn control(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(125)]
}

/// The peer's side: what it wrote, what of it has arrived, and the
/// messages the connection must report while the stream is well formed.
#[derive(Default)]
struct Peer {
    /// What it wrote and has not arrived yet.
    stream: BytesMut,
    /// Bytes that arrived.
    received: usize,
    /// Only a valid upgrade followed by valid frames within the limits so
    /// far; the messages are checked only while this holds.
    clean: bool,
    upgrade_written: bool,
    /// (text, payload, offset in all it wrote where its last frame ends).
    messages: Vec<(bool, Bytes, usize)>,
    /// What permessage-deflate its upgrade agreed to, as the server will
    /// decide, and its compressor.
    deflate: Option<DeflateParams>,
    compressor: Option<Compressor>,
}

/// What a server with `config` agrees to for an upgrade offering `offer`.
fn agreed(config: &EngineConfig, offer: &str) -> Option<DeflateParams> {
    let policy = config.compression?.policy;
    policy.negotiate(parse_extensions(offer)).map(|a| a.params)
}

impl Peer {
    fn write(&mut self, piece: &Piece, config: &EngineConfig) {
        let start = self.end();
        let frame_ok = |len: usize| len <= config.decoder.max_frame_size;
        let mut keeps_clean = false;
        match piece {
            Piece::Upgrade(handshake) => {
                let head = handshake.bytes();
                keeps_clean = start == 0 && head.len() <= config.max_head;
                if keeps_clean {
                    let offer = if handshake.extensions { OFFER } else { "" };
                    self.deflate = agreed(config, offer);
                    self.compressor = self.deflate.map(|p| {
                        Compressor::new(p.client_max_window_bits, p.client_no_context_takeover, 6)
                    });
                }
                self.upgrade_written = true;
                self.stream.extend_from_slice(&head);
            }
            Piece::Compressed {
                payload,
                fragments,
                mask,
            } => {
                let (is_text, data) = payload.get(start);
                let mut packed = Vec::new();
                // Without an agreement, a fresh stream: RSV1 is refused.
                self.compressor
                    .get_or_insert_with(|| Compressor::new(15, true, 6))
                    .compress(&data, &mut packed);
                let n = usize::from(*fragments).clamp(1, packed.len().max(1));
                let size = packed.len().div_ceil(n).max(1);
                let parts: Vec<&[u8]> = packed.chunks(size).collect();
                let last = parts.len() - 1;
                for (i, part) in parts.iter().enumerate() {
                    let opcode = match (i, is_text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    if last == 0 {
                        write_compressed_client_frame(&mut self.stream, opcode, part, *mask)
                            .expect("a data frame");
                        continue;
                    }
                    let at = self.stream.len();
                    client_frame(&mut self.stream, opcode, i == last, part, *mask);
                    if i == 0 {
                        // RSV1 on the first frame only.
                        self.stream[at] |= 0x40;
                    }
                }
                let limit = config.decoder.max_message_size;
                keeps_clean = self.deflate.is_some()
                    && parts.iter().all(|p| frame_ok(p.len()))
                    && packed.len() <= limit
                    && data.len() <= limit;
                if keeps_clean && self.clean {
                    self.messages.push((is_text, data, self.end()));
                }
            }
            Piece::Plain {
                body,
                expect_continue,
            } => {
                let mut head = format!(
                    "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: {}\r\n",
                    body.len()
                );
                if *expect_continue {
                    head.push_str("Expect: 100-continue\r\n");
                }
                head.push_str("\r\n");
                self.stream.extend_from_slice(head.as_bytes());
                self.stream.extend_from_slice(body);
            }
            Piece::Message {
                payload,
                fragments,
                ping,
                mask,
            } => {
                let (is_text, data) = payload.get(start);
                let n = usize::from(*fragments).clamp(1, data.len().max(1));
                let size = data.len().div_ceil(n).max(1);
                let mut parts: Vec<&[u8]> = data.chunks(size).collect();
                if parts.is_empty() {
                    parts.push(&[]);
                }
                let mut fits = data.len() <= config.decoder.max_message_size;
                let last = parts.len() - 1;
                for (i, part) in parts.iter().enumerate() {
                    let opcode = match (i, is_text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    client_frame(&mut self.stream, opcode, i == last, part, *mask);
                    fits &= frame_ok(part.len());
                    if let (0, Some(ping)) = (i, ping) {
                        let ping = control(ping);
                        client_frame(&mut self.stream, OpCode::Ping, true, ping, *mask);
                        fits &= frame_ok(ping.len());
                    }
                }
                keeps_clean = fits;
                if fits && self.clean {
                    self.messages.push((is_text, data, self.end()));
                }
            }
            Piece::Ping(payload) | Piece::Pong(payload) => {
                let opcode = match piece {
                    Piece::Ping(_) => OpCode::Ping,
                    _ => OpCode::Pong,
                };
                let payload = control(payload);
                client_frame(&mut self.stream, opcode, true, payload, [1, 2, 3, 4]);
                keeps_clean = frame_ok(payload.len());
            }
            Piece::Close { code, reason } => {
                let mut reason = reason.as_str();
                while reason.len() > MAX_REASON_LEN {
                    let mut end = reason.len() - 1;
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    reason = &reason[..end];
                }
                let payload = [&code.get().0.to_be_bytes()[..], reason.as_bytes()].concat();
                client_frame(
                    &mut self.stream,
                    OpCode::Close,
                    true,
                    &payload,
                    [9, 8, 7, 6],
                );
                // What follows a close is not read; nothing after it is
                // expected, so the stream is clean no more.
            }
            Piece::EmptyClose => {
                client_frame(&mut self.stream, OpCode::Close, true, &[], [0; 4]);
            }
            Piece::Frame {
                first,
                masked,
                payload,
            } => {
                let len = payload.len();
                let mask_bit = if *masked { 0x80 } else { 0 };
                self.stream.extend_from_slice(&[*first]);
                match len {
                    0..=125 => self.stream.extend_from_slice(&[mask_bit | len as u8]),
                    126..=0xffff => {
                        self.stream.extend_from_slice(&[mask_bit | 126]);
                        self.stream.extend_from_slice(&(len as u16).to_be_bytes());
                    }
                    _ => {
                        self.stream.extend_from_slice(&[mask_bit | 127]);
                        self.stream.extend_from_slice(&(len as u64).to_be_bytes());
                    }
                }
                if *masked {
                    self.stream.extend_from_slice(&[5, 6, 7, 8]);
                    self.stream.extend(
                        payload
                            .iter()
                            .zip([5, 6, 7, 8].iter().cycle())
                            .map(|(b, m)| b ^ m),
                    );
                } else {
                    self.stream.extend_from_slice(payload);
                }
            }
            Piece::Header { first, len } => {
                self.stream.extend_from_slice(&[*first, 0x80 | 127]);
                self.stream.extend_from_slice(&len.to_be_bytes());
                self.stream.extend_from_slice(&[1, 2, 3, 4]);
            }
            Piece::Raw(bytes) => self.stream.extend_from_slice(bytes),
        }
        // Clean from a first valid upgrade on, while every piece keeps it.
        self.clean = match piece {
            Piece::Upgrade(_) => keeps_clean,
            _ => self.clean && keeps_clean,
        };
    }

    /// The next `n` bytes it wrote, at most, as they arrive.
    fn take(&mut self, n: usize) -> Option<Bytes> {
        let n = n.min(self.stream.len());
        if n == 0 {
            return None;
        }
        self.received += n;
        Some(self.stream.split_to(n).freeze())
    }

    /// How much it wrote.
    fn end(&self) -> usize {
        self.received + self.stream.len()
    }

    /// Messages whose last frame has arrived.
    fn arrived(&self) -> usize {
        self.messages
            .iter()
            .take_while(|(_, _, end)| *end <= self.received)
            .count()
    }
}

impl Payload {
    /// Whether it is text, and its bytes (a big one from `fill` at `at`).
    fn get(&self, at: usize) -> (bool, Bytes) {
        match self {
            Payload::Text(s) => (true, Bytes::copy_from_slice(s.as_bytes())),
            Payload::Binary(b) => (false, Bytes::copy_from_slice(b)),
            Payload::Big { text, len } => (*text, fill(at, usize::from(*len))),
        }
    }
}

/// What the connection wrote, read as a client reads it.
struct Wire {
    /// Bytes written in all.
    total: usize,
    /// What was written up to the end of the 101 (or all of it, when the
    /// answer is not an upgrade, which must be short).
    written: Vec<u8>,
    /// The answer to the head, once decided.
    answer: Option<Answer>,
    /// Bytes of `written` that are the 101 (or the answer).
    head: usize,
    client: Session,
    /// The client's decompressor, once permessage-deflate is agreed.
    inflater: Option<Decompressor>,
    buf: BytesMut,
    /// Data messages read so far.
    data: usize,
    pongs: usize,
    /// The code of the close frame written (1005 for an empty one).
    close: Option<CloseCode>,
}

impl Wire {
    fn new() -> Wire {
        let limits = DecoderConfig {
            max_frame_size: usize::MAX,
            max_message_size: usize::MAX,
            allow_rsv1: false,
        };
        Wire {
            total: 0,
            written: Vec::new(),
            answer: None,
            head: 0,
            client: Session::new(Role::Client, limits),
            inflater: None,
            buf: BytesMut::new(),
            data: 0,
            pongs: 0,
            close: None,
        }
    }

    /// Bytes that went out: the 100 Continue and the answer (a prefix of
    /// them, exactly), or the 101 and then frames, every one valid, with
    /// the handler's admitted messages in order and none after the close.
    fn wrote(&mut self, bytes: &[u8], admitted: &[(OpCode, Bytes)]) {
        self.total += bytes.len();
        if let Some(Answer::Upgrade(response, _)) = &self.answer {
            if self.head == response.len() {
                self.buf.extend_from_slice(bytes);
                return self.frames(admitted);
            }
        }
        self.written.extend_from_slice(bytes);
        let prefix = |a: &[u8], b: &[u8]| a.len() <= b.len() && b.starts_with(a);
        let written = &self.written[..];
        match &self.answer {
            None => assert!(
                prefix(written, CONTINUE),
                "wrote {written:?} before any answer"
            ),
            Some(Answer::Respond(response)) => {
                let after_continue = written.strip_prefix(CONTINUE).unwrap_or(b"\xff");
                assert!(
                    prefix(written, CONTINUE)
                        || prefix(written, response)
                        || prefix(after_continue, response),
                    "wrote {written:?} for the answer {response:?}"
                );
            }
            Some(Answer::Upgrade(response, _)) => {
                let n = written.len().min(response.len());
                assert_eq!(&written[..n], &response[..n], "not the 101");
                self.head = n;
                self.buf.extend_from_slice(&written[n..]);
                self.frames(admitted);
            }
        }
    }

    fn frames(&mut self, admitted: &[(OpCode, Bytes)]) {
        loop {
            let frame = match self.client.decode(&mut self.buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => panic!("an invalid server frame: {e:?}"),
            };
            match frame {
                Frame::Text(t) => self.data_message(OpCode::Text, t.into_bytes(), admitted),
                Frame::Binary(b) => self.data_message(OpCode::Binary, b, admitted),
                Frame::Compressed(c) => {
                    let inflater = self.inflater.as_mut().expect("compressed, not agreed");
                    match c.inflate(inflater, usize::MAX) {
                        Ok(Frame::Text(t)) => {
                            self.data_message(OpCode::Text, t.into_bytes(), admitted)
                        }
                        Ok(Frame::Binary(b)) => self.data_message(OpCode::Binary, b, admitted),
                        other => panic!("a compressed message that inflates to {other:?}"),
                    }
                }
                Frame::Ping(_) => {}
                Frame::Pong(_) => self.pongs += 1,
                Frame::Close(close) => {
                    // The decoder refused codes that may not be sent.
                    assert_eq!(
                        self.data,
                        admitted.len(),
                        "admitted messages after the close"
                    );
                    self.close = Some(close.map_or(CloseCode::NO_STATUS, |c| c.code));
                }
            }
        }
    }

    fn data_message(&mut self, opcode: OpCode, payload: Bytes, admitted: &[(OpCode, Bytes)]) {
        let Some((sent_opcode, sent)) = admitted.get(self.data) else {
            panic!("a message on the wire that no send admitted");
        };
        assert_eq!(
            (opcode, &payload),
            (*sent_opcode, sent),
            "message {}",
            self.data
        );
        self.data += 1;
    }
}

/// The handler, and what it heard.
struct Model {
    reactions: std::vec::IntoIter<Action>,
    refuse_upgrades: bool,
    /// What the server agrees to, and whether it did.
    deflate: Option<ServerDeflate>,
    compressing: bool,
    policy_closes: bool,
    now: u64,
    opened: bool,
    /// The code the handler's `close` was given.
    reported: Option<CloseCode>,
    peer: Peer,
    wire: Wire,
    /// Data messages the connection took, in order, as the peer must get them.
    admitted: Vec<(OpCode, Bytes)>,
    /// The most one admitted message (or control frame) costs.
    biggest: usize,
    /// What the head's answer costs while queued.
    answer_cost: usize,
    messages: Vec<(bool, Bytes)>,
    pings: usize,
    /// When a frame last came in while open (or the upgrade).
    last_activity: u64,
    sends: u64,
    /// Sends answered `Queued`, and how many of them the last drain came
    /// after: each is owed a drain once the queue is under half the limit.
    queued_sends: u64,
    drained: u64,
    /// A drain may be wanted: a send was queued or dropped since the last.
    drain_wanted: bool,
}

impl Model {
    /// One action of the handler on `conn`; every `SendStatus` is checked
    /// against what was queued before and after.
    fn act(&mut self, conn: &mut Conn<'_, ()>, action: Action) {
        let before = conn.buffered();
        self.sends += 1;
        let at = self.sends as usize;
        let (status, opcode, payload, wire_len) = match action {
            Action::Nothing => return,
            Action::Close { code, reason } => {
                let reason = std::str::from_utf8(&fill(at, usize::from(reason)))
                    .unwrap()
                    .to_owned();
                conn.close(code.get(), &reason);
                return;
            }
            Action::Text(size) => {
                let payload = fill(at, size.get());
                let status = conn.send_text(text(payload.clone()));
                (
                    status,
                    OpCode::Text,
                    payload.clone(),
                    wire_len(payload.len()),
                )
            }
            Action::Binary(size) => {
                let payload = fill(at, size.get());
                let status = conn.send_binary(payload.clone());
                (
                    status,
                    OpCode::Binary,
                    payload.clone(),
                    wire_len(payload.len()),
                )
            }
            Action::Ping(len) => {
                let payload = fill(at, usize::from(len));
                let status = conn.ping(payload.clone());
                let len = payload.len().min(125);
                (status, OpCode::Ping, payload, wire_len(len))
            }
            Action::Encoded { text, size } => {
                let payload = fill(at, size.get());
                let opcode = if text { OpCode::Text } else { OpCode::Binary };
                let frame = encode_shared(opcode, &payload).expect("a data frame");
                let len = frame.len();
                (conn.send_encoded(frame), opcode, payload, len)
            }
        };
        let after = conn.buffered();
        match status {
            SendStatus::Sent | SendStatus::Queued => {
                assert_eq!(
                    status == SendStatus::Sent,
                    before == 0,
                    "{status:?} with {before} queued"
                );
                // Compressed only when that made it shorter.
                let compressible = self.compressing && opcode != OpCode::Ping;
                match compressible && !matches!(action, Action::Encoded { .. }) {
                    true => assert!(
                        after > before && after <= before + wire_len,
                        "{status:?} but {before} -> {after} queued for {wire_len}"
                    ),
                    false => assert_eq!(after, before + wire_len, "{status:?} but not queued"),
                }
                if opcode != OpCode::Ping {
                    self.admitted.push((opcode, payload));
                }
                if status == SendStatus::Queued {
                    self.queued_sends += 1;
                }
                self.drain_wanted = true;
                self.biggest = self.biggest.max(wire_len + 2 * PIECE);
            }
            SendStatus::Dropped => {
                self.drain_wanted = true;
                // Not queued; the backpressure policy may close instead.
                let closed = self.policy_closes && after == before + POLICY_CLOSE;
                assert!(
                    after == before || closed,
                    "dropped but {before} -> {after} queued"
                );
            }
        }
    }

    fn react(&mut self, conn: &mut Conn<'_, ()>) {
        if let Some(action) = self.reactions.next() {
            self.act(conn, action);
        }
    }
}

/// A server frame's bytes on the wire for a payload of `len`.
fn wire_len(len: usize) -> usize {
    len + match len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

impl Script for Model {
    fn decide(&mut self, head: Head<'_>) -> Answer {
        let answer = match head {
            Head::Http { .. } => Answer::Respond(Response::text(200, "ok").encode()),
            Head::Invalid(error) => Answer::Respond(Response::from(&error).encode()),
            Head::Upgrade(_) if self.refuse_upgrades => {
                Answer::Respond(Response::text(403, "no").encode())
            }
            Head::Upgrade(upgrade) => {
                let agreed = self
                    .deflate
                    .and_then(|policy| policy.negotiate(upgrade.extensions()));
                let extensions = agreed.as_ref().map(|a| a.response());
                match upgrade.response(None, extensions) {
                    Ok(response) => {
                        let params = agreed.map(|a| a.params);
                        if let Some(p) = params {
                            self.compressing = true;
                            self.wire.client.set_compressed(true);
                            self.wire.inflater = Some(Decompressor::new(
                                p.server_max_window_bits,
                                p.server_no_context_takeover,
                            ));
                        }
                        Answer::Upgrade(response, params)
                    }
                    Err(e) => panic!("an accepted upgrade without a 101: {e:?}"),
                }
            }
        };
        assert!(self.wire.answer.is_none(), "a second head decided");
        let (Answer::Upgrade(bytes, _) | Answer::Respond(bytes)) = &answer;
        self.answer_cost = CONTINUE.len() + bytes.len() + 2 * PIECE;
        self.wire.answer = Some(answer.clone());
        answer
    }

    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        assert!(
            matches!(self.wire.answer, Some(Answer::Upgrade(..))),
            "open without an upgrade"
        );
        assert!(!self.opened, "opened twice");
        self.opened = true;
        self.last_activity = self.now;
        self.react(conn);
    }

    fn event(&mut self, conn: &mut Conn<'_, ()>, event: Event) {
        assert!(self.opened, "{event:?} before the upgrade");
        assert!(
            self.reported.is_none(),
            "{event:?} after the close was reported"
        );
        match &event {
            Event::Message(message) => {
                let (is_text, bytes) = match message {
                    Message::Text(t) => (true, t.clone().into_bytes()),
                    Message::Binary(b) => (false, b.clone()),
                };
                let n = self.messages.len();
                if let Some((want_text, want, _)) = self.peer.messages.get(n) {
                    assert_eq!(
                        (is_text, &bytes),
                        (*want_text, want),
                        "message {n} from the peer"
                    );
                }
                self.messages.push((is_text, bytes));
                self.last_activity = self.now;
            }
            Event::Ping(_) => {
                self.pings += 1;
                self.last_activity = self.now;
            }
            Event::Pong(_) => self.last_activity = self.now,
            Event::Drain => {
                assert!(self.drain_wanted, "a drain no send wanted");
                self.drain_wanted = false;
                self.drained = self.queued_sends;
            }
            Event::Dropped(n) => assert!(*n > 0, "no drops reported"),
            Event::Closed(report) => {
                let code = report.code;
                assert!(
                    code.is_sendable()
                        || code == CloseCode::NO_STATUS
                        || code == CloseCode::ABNORMAL,
                    "reported {code:?}"
                );
                assert!(report.reason.len() <= MAX_REASON_LEN, "{report:?}");
                self.reported = Some(code);
            }
        }
        self.react(conn);
    }
}

/// Where a connection's life is; it only moves on.
fn phase(h: &Harness) -> u8 {
    match (h.is_handshake(), h.is_open(), h.is_closed()) {
        (true, _, _) => 0,
        (_, true, _) => 1,
        (_, _, false) => 2,
        _ => 3,
    }
}

struct Run {
    h: Harness,
    m: Model,
    phase: u8,
    /// When the connection entered its phase (as seen after each step; a
    /// step happens at one time).
    since: u64,
    done: bool,
    limits: Limits,
}

struct Limits {
    backpressure: usize,
    handshake: u64,
    idle: u64,
    close: u64,
    input: usize,
}

impl Run {
    fn step(&mut self, op: &Op) {
        let (h, m) = (&mut self.h, &mut self.m);
        match op {
            Op::Write(piece) => m.peer.write(piece, h.config()),
            Op::Receive(n) => {
                if let Some(bytes) = m.peer.take(usize::from(*n).max(1)) {
                    h.receive(&bytes, m);
                }
            }
            Op::ReceiveAll => {
                while let Some(bytes) = self.m.peer.take(16 << 10) {
                    self.h.receive(&bytes, &mut self.m);
                    self.check();
                }
            }
            Op::Advance(ms) => {
                let now = h.now() + u64::from(*ms);
                h.set_now(now);
                m.now = now;
            }
            Op::Timers => self.timers(),
            Op::Command(action) => {
                // What the command sent is noted before the drive after it,
                // whose callbacks may send more.
                h.command(|conn| m.act(conn, *action));
                h.drive(m);
            }
            Op::Shutdown => h.shutdown(m),
            Op::Flush => self.flush(),
            Op::Complete(completion) => {
                if let Some(len) = h.in_flight() {
                    let result = match completion {
                        Completion::All => len as i32,
                        Completion::Part(n) => (usize::from(*n) % (len + 1)) as i32,
                        Completion::Error(e) => -i32::from(*e % 120 + 1),
                    };
                    self.complete(result);
                }
            }
            Op::EndOfStream => h.end_of_stream(m),
            Op::Teardown => h.teardown(m),
            Op::Wake => h.wake(m),
            Op::Turn => {
                let mut sends = 0;
                while let Some(len) = self.h.flush() {
                    self.complete(len as i32);
                    sends += 1;
                    assert!(sends < 10_000, "writes without end");
                }
                self.check();
                self.timers();
                self.h.wake(&mut self.m);
            }
        }
        self.check();
    }

    fn flush(&mut self) {
        let shut_idle = self.h.is_shut() && self.h.in_flight().is_none();
        let in_flight = self.h.flush();
        assert!(
            !shut_idle || in_flight.is_none(),
            "a send after the teardown"
        );
        let h = &self.h;
        assert!(
            in_flight.is_some() || h.is_closed() || h.queued() == 0,
            "{} bytes queued and no send for them",
            h.queued()
        );
    }

    fn complete(&mut self, result: i32) {
        let owed = self.m.queued_sends;
        let wrote = self.h.complete(result, &mut self.m);
        self.m.wire.wrote(&wrote, &self.m.admitted);
        // A send told `Queued` hears of the drain at the first completion
        // that leaves the queue under half the limit.
        let h = &self.h;
        if h.is_open() && self.m.drained < owed && h.queued() < self.limits.backpressure / 2 {
            panic!(
                "{} bytes queued, under half the limit, and no drain",
                h.queued()
            );
        }
    }

    fn timers(&mut self) {
        let rounds = self.h.run_timers(8, &mut self.m);
        assert!(rounds <= 2, "the deadline was due {rounds} times in a row");
        self.check();
        let (h, now) = (&self.h, self.h.now());
        if let Some(at) = h.poll_timeout() {
            assert!(
                at > now,
                "the deadline {at} is not ahead of {now} after the timers ran"
            );
        }
        let l = &self.limits;
        if h.is_handshake() {
            assert!(now < self.since + l.handshake, "handshake past its timeout");
        }
        if self.phase == 2 {
            assert!(now < self.since + l.close, "closing past its timeout");
        }
        if h.is_open() && l.idle > 0 {
            assert!(now < self.m.last_activity + l.idle, "idle past its timeout");
        }
    }

    fn check(&mut self) {
        let (h, m) = (&self.h, &self.m);
        let phase = phase(h);
        assert!(
            phase >= self.phase,
            "went back from phase {} to {phase}",
            self.phase
        );
        if phase != self.phase {
            self.phase = phase;
            self.since = h.now();
        }
        assert!(!self.done || h.is_done(), "done, then not");
        self.done = h.is_done();
        if h.is_shut() {
            assert!(
                h.is_closed() && h.queued() == 0,
                "torn down with {} queued",
                h.queued()
            );
            assert_eq!(h.poll_timeout(), None, "a deadline after the teardown");
        }
        if m.opened && !h.is_open() {
            assert!(m.reported.is_some(), "left open without a close report");
        }
        if let (Some(wrote), Some(reported)) = (m.wire.close, m.reported) {
            assert_eq!(wrote, reported, "closed with one code, reported another");
        }
        // What the worker relies on to tear a connection down: whatever
        // made it done also asked for the drive that notices.
        assert!(h.is_shut() || !h.is_done(), "done and not torn down");
        if let Some(len) = h.in_flight() {
            assert!(len > 0, "an empty send in flight");
        }
        let most = self.limits.backpressure + m.answer_cost + m.biggest + CONTROL;
        assert!(
            h.load() <= most,
            "{} queued (cost {}), limit {}",
            h.queued(),
            h.load(),
            self.limits.backpressure
        );
        assert!(h.queued() <= h.load());
        assert!(
            h.buffered_input() <= self.limits.input,
            "{} bytes buffered from the peer",
            h.buffered_input()
        );
        if h.is_open() && m.peer.clean {
            let arrived = m.peer.arrived();
            assert!(
                m.messages.len() >= arrived,
                "{arrived} messages arrived, {} reported",
                m.messages.len()
            );
        }
        assert_eq!(h.messages_in(), m.messages.len() as u64);
        assert_eq!(h.bytes_out(), m.wire.total as u64);
        let pongs = m.wire.pongs;
        match h.config().auto_pong {
            true => assert!(pongs <= m.pings, "{pongs} pongs for {} pings", m.pings),
            false => assert_eq!(pongs, 0, "pongs without auto-pong"),
        }
    }
}

fuzz_target!(|input: Input| {
    let c = &input.config;
    let max_frame = usize::from(c.max_frame);
    let config = EngineConfig {
        max_head: c.max_head.into(),
        max_body: c.max_body.into(),
        decoder: DecoderConfig {
            max_frame_size: max_frame,
            max_message_size: max_frame * usize::from(c.message_frames),
            allow_rsv1: false,
        },
        backpressure_limit: usize::from(c.limit) * 8,
        backpressure_policy: match c.close_policy {
            true => BackpressurePolicy::Close,
            false => BackpressurePolicy::Drop,
        },
        handshake_timeout: Duration::from_millis(c.handshake_ms.into()),
        idle_timeout: Duration::from_millis(c.idle_ms.into()),
        ping_interval: Duration::from_millis(c.ping_ms.into()),
        close_timeout: Duration::from_millis(c.close_ms.into()),
        auto_pong: c.auto_pong,
        compression: match c.deflate % 4 {
            0 => None,
            1 => Some(Compression::shared()),
            2 => Some(Compression::dedicated(9)),
            _ => {
                let mut both = Compression::dedicated(10);
                both.policy.client_no_context_takeover = false;
                Some(both)
            }
        }
        .map(|compression| Compression {
            min_size: c.deflate_min.into(),
            ..compression
        }),
        ..EngineConfig::default()
    };
    let limits = Limits {
        backpressure: config.backpressure_limit,
        handshake: c.handshake_ms.into(),
        idle: c.idle_ms.into(),
        close: c.close_ms.into(),
        input: (config.max_head + config.max_body).max(14 + max_frame),
    };
    let model = Model {
        reactions: input.reactions.into_iter(),
        refuse_upgrades: c.refuse_upgrades,
        deflate: config.compression.map(|c| c.policy),
        compressing: false,
        policy_closes: c.close_policy,
        now: 0,
        opened: false,
        reported: None,
        peer: Peer::default(),
        wire: Wire::new(),
        admitted: Vec::new(),
        biggest: CONTROL,
        answer_cost: 0,
        messages: Vec::new(),
        pings: 0,
        last_activity: 0,
        sends: 0,
        queued_sends: 0,
        drained: 0,
        drain_wanted: false,
    };
    let mut run = Run {
        h: Harness::new(config, 0),
        m: model,
        phase: 0,
        since: 0,
        done: false,
        limits,
    };
    for op in &input.ops {
        run.step(op);
    }
});
