//! Shared pieces of the engine's integration tests: a configurable echo
//! handler that records what happens on the workers, starting and stopping
//! an engine on 127.0.0.1, a tungstenite client, and a raw client for
//! hand-crafted bytes that reads frames and HTTP responses itself.
//!
//! Every wait is bounded: a test that hangs is a failed test.

#![allow(dead_code)]

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{tungstenite, MaybeTlsStream, WebSocketStream};
use uringws_engine::{
    protocol::{
        encoder::write_client_frame,
        handshake::{Request, Upgrade},
        http::Response,
        OpCode,
    },
    Accept, Conn, ConnId, Engine, EngineConfig, EngineHandle, Handler, Message, Peer, Reject,
    WorkerContext,
};

/// The bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future` for at most `limit`, panicking with `what` past it.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `cond` every few milliseconds until it holds, for at most `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------
// What the handlers saw
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Open {
        worker: usize,
        id: ConnId,
    },
    Close {
        worker: usize,
        id: ConnId,
        code: u16,
        reason: String,
    },
    Drain {
        worker: usize,
        id: ConnId,
        buffered: usize,
    },
}

/// Events recorded by the handlers of all workers, in the order they
/// happened on each worker.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
    /// The worker whose handler saw each upgrade request, and its `Peer`.
    pub peers: Mutex<Vec<(usize, Peer)>>,
}

impl Recorder {
    pub fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn opens(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Open { .. }))
            .count()
    }

    pub fn opens_on(&self, worker: usize) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Open { worker: w, .. } if *w == worker))
            .count()
    }

    /// `(code, reason)` of every `close` callback so far.
    pub fn closes(&self) -> Vec<(u16, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Close { code, reason, .. } => Some((code, reason)),
                _ => None,
            })
            .collect()
    }

    pub fn drains(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Drain { .. }))
            .count()
    }

    /// Every opened connection got exactly one `close`, and no connection
    /// got one without being opened.
    pub fn assert_one_close_per_open(&self) {
        let events = self.events();
        let opened: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Open { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        for id in &opened {
            let closes = events
                .iter()
                .filter(|e| matches!(e, Event::Close { id: c, .. } if c == id))
                .count();
            assert_eq!(
                closes, 1,
                "connection {id:?} got {closes} close callbacks: {events:?}"
            );
        }
        for e in &events {
            if let Event::Close { id, .. } = e {
                assert!(
                    opened.contains(id),
                    "close without open for {id:?}: {events:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------

/// Called on open, on the worker's thread.
pub type OpenHook = Arc<dyn Fn(&mut Conn<'_, ()>) + Send + Sync>;
/// Called for every text or binary message before the echo; returning
/// `true` means "handled": no echo.
pub type MessageHook = Arc<dyn Fn(&mut Conn<'_, ()>, &Message) -> bool + Send + Sync>;
pub type DrainHook = Arc<dyn Fn(&mut Conn<'_, ()>) + Send + Sync>;
/// A plain HTTP request and its body; `None` falls back to the trait's default (404).
pub type HttpHook = Arc<dyn Fn(&Request<'_>, &[u8]) -> Option<Response> + Send + Sync>;
/// An upgrade request; `Some` refuses it.
pub type UpgradeHook = Arc<dyn Fn(&Upgrade<'_>) -> Option<Reject> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Hooks {
    pub open: Option<OpenHook>,
    pub message: Option<MessageHook>,
    pub drain: Option<DrainHook>,
    pub http: Option<HttpHook>,
    pub upgrade: Option<UpgradeHook>,
}

/// Echoes text and binary messages, records opens, closes and drains.
pub struct Echo {
    pub worker: usize,
    pub recorder: Arc<Recorder>,
    pub hooks: Hooks,
}

impl Handler for Echo {
    type State = ();

    fn upgrade(&mut self, upgrade: &Upgrade<'_>, peer: Peer) -> Result<Accept<()>, Reject> {
        self.recorder
            .peers
            .lock()
            .unwrap()
            .push((self.worker, peer));
        if let Some(hook) = &self.hooks.upgrade {
            if let Some(reject) = hook(upgrade) {
                return Err(reject);
            }
        }
        Ok(Accept::new(()))
    }

    fn http(&mut self, request: &Request<'_>, body: &[u8], peer: Peer) -> Response {
        if let Some(response) = self
            .hooks
            .http
            .as_ref()
            .and_then(|hook| hook(request, body))
        {
            return response;
        }
        // The trait's default answer.
        struct Default;
        impl Handler for Default {
            type State = ();
            fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
                unreachable!()
            }
            fn message(&mut self, _: &mut Conn<'_, ()>, _: Message) {}
        }
        Default.http(request, body, peer)
    }

    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        self.recorder.push(Event::Open {
            worker: self.worker,
            id: conn.id(),
        });
        if let Some(hook) = &self.hooks.open {
            hook(conn);
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        if let Some(hook) = &self.hooks.message {
            if hook(conn, &message) {
                return;
            }
        }
        match message {
            Message::Text(text) => {
                conn.send_text(text);
            }
            Message::Binary(data) => {
                conn.send_binary(data);
            }
        }
    }

    fn drain(&mut self, conn: &mut Conn<'_, ()>) {
        self.recorder.push(Event::Drain {
            worker: self.worker,
            id: conn.id(),
            buffered: conn.buffered(),
        });
        if let Some(hook) = &self.hooks.drain {
            hook(conn);
        }
    }

    fn close(
        &mut self,
        conn: &mut Conn<'_, ()>,
        code: uringws_engine::protocol::CloseCode,
        reason: &str,
    ) {
        self.recorder.push(Event::Close {
            worker: self.worker,
            id: conn.id(),
            code: code.0,
            reason: reason.to_owned(),
        });
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// The defaults, with timeouts short enough for tests.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        close_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(3),
        ..EngineConfig::default()
    }
}

/// An engine with unpinned workers (two unless said) on 127.0.0.1 and a
/// fresh port.
pub struct TestServer {
    engine: Option<Engine>,
    pub addr: SocketAddr,
    pub recorder: Arc<Recorder>,
}

impl TestServer {
    pub fn start(config: EngineConfig, hooks: Hooks) -> TestServer {
        TestServer::start_with_workers(config, hooks, 2)
    }

    pub fn start_with_workers(config: EngineConfig, hooks: Hooks, workers: usize) -> TestServer {
        let recorder = Arc::new(Recorder::default());
        let rec = recorder.clone();
        let engine = Engine::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .workers(workers)
            .pin(false)
            .config(config)
            .start(move |context: &WorkerContext| {
                assert_eq!(context.engine.workers(), workers);
                Echo {
                    worker: context.worker,
                    recorder: rec.clone(),
                    hooks: hooks.clone(),
                }
            })
            .expect("engine starts");
        let addr = engine.local_addrs()[0];
        assert_ne!(addr.port(), 0, "local_addrs has the real port");
        TestServer {
            engine: Some(engine),
            addr,
            recorder,
        }
    }

    pub fn echo(config: EngineConfig) -> TestServer {
        TestServer::start(config, Hooks::default())
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn handle(&self) -> EngineHandle {
        self.engine.as_ref().expect("running").handle()
    }

    /// Waits for the workers to exit (after a shutdown) for at most
    /// `limit`, returning how long it took.
    pub async fn join(&mut self, limit: Duration) -> Duration {
        let engine = self.engine.take().expect("running");
        let start = Instant::now();
        let joined = tokio::task::spawn_blocking(move || engine.join());
        let result = within(limit, "engine.join()", joined)
            .await
            .expect("join task");
        result.expect("workers exit cleanly");
        start.elapsed()
    }

    /// Graceful shutdown, then join within shutdown_timeout plus a margin.
    pub async fn stop(mut self) {
        self.handle().shutdown();
        self.join(WAIT).await;
    }
}

impl Drop for TestServer {
    /// A test that failed half-way still stops its workers (without waiting
    /// for them: the process is about to report the failure anyway).
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.handle().shutdown();
            std::thread::spawn(move || {
                let _ = engine.join();
            });
        }
    }
}

/// The server's resident set, from /proc (the engine runs in this process).
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

// ---------------------------------------------------------------------------
// A real WebSocket client
// ---------------------------------------------------------------------------

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub use tungstenite::Message as WsMessage;

pub async fn ws_connect(addr: SocketAddr) -> Ws {
    let url = format!("ws://{addr}/");
    let (ws, response) = within(
        WAIT,
        "websocket connect",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("websocket handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// The next data message (text or binary), skipping pings and pongs.
pub async fn ws_next_data(ws: &mut Ws) -> WsMessage {
    loop {
        let message = within(WAIT, "next websocket message", ws.next())
            .await
            .expect("stream not ended")
            .expect("no websocket error");
        match message {
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => return other,
        }
    }
}

/// Sends `message` and checks that the same message comes back.
pub async fn ws_echo(ws: &mut Ws, message: WsMessage) {
    within(WAIT, "send", ws.send(message.clone()))
        .await
        .expect("send");
    let echo = ws_next_data(ws).await;
    assert!(echo == message, "echo differs from what was sent");
}

/// Connects, checks one echo, closes normally.
pub async fn ws_check_echo(addr: SocketAddr, text: &str) {
    let mut ws = ws_connect(addr).await;
    ws_echo(&mut ws, WsMessage::text(text)).await;
    ws_echo(&mut ws, WsMessage::binary(text.as_bytes().to_vec())).await;
    ws_close(&mut ws).await;
}

/// Starts the close handshake (1000) and reads until the server's answer.
pub async fn ws_close(ws: &mut Ws) {
    let frame = tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    };
    within(WAIT, "close", ws.close(Some(frame)))
        .await
        .expect("close sent");
    loop {
        match within(WAIT, "close reply", ws.next()).await {
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// A raw client
// ---------------------------------------------------------------------------

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A masked client frame.
pub fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_client_frame(&mut out, opcode, fin, payload, [0x37, 0xfa, 0x21, 0x3d])
        .expect("valid frame");
    out.to_vec()
}

/// A frame as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    pub fn is_close(&self) -> bool {
        self.opcode == 0x8
    }

    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        assert!(self.is_close(), "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).expect("utf-8 text")
    }
}

impl std::fmt::Display for RawFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "opcode {} fin {} len {}",
            self.opcode,
            self.fin,
            self.payload.len()
        )
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a read from the server ended when it did not yield what we asked.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Orderly end (FIN).
    Eof,
    /// The connection was reset.
    Reset,
}

pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = within(WAIT, "tcp connect", TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub fn from_stream(stream: TcpStream) -> RawClient {
        RawClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Connects and completes a WebSocket upgrade.
    pub async fn upgrade(addr: SocketAddr) -> RawClient {
        let mut client = RawClient::connect(addr).await;
        client.send(upgrade_request("/").as_bytes()).await;
        let response = client
            .read_http_head()
            .await
            .expect("a response to the upgrade");
        assert_eq!(response.status, 101, "upgrade answered {response:?}");
        assert_eq!(response.header("sec-websocket-accept"), Some(ACCEPT));
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within(WAIT, "raw write", self.stream.write_all(bytes))
            .await
            .expect("raw write");
    }

    pub async fn send_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.send(&client_frame(opcode, fin, payload)).await;
    }

    /// Reads more bytes into the buffer; `Err` when the connection ended.
    async fn fill(&mut self) -> Result<(), End> {
        self.buf.reserve(64 << 10);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(End::Eof),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(End::Reset),
            Err(e) => panic!("raw read: {e}"),
        }
    }

    /// Bytes received and not yet parsed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// An HTTP response head (and a body as long as its Content-Length).
    pub async fn read_http_head(&mut self) -> Result<HttpResponse, End> {
        within(WAIT, "http response", async {
            loop {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut response = httparse::Response::new(&mut headers);
                if let httparse::Status::Complete(head_len) = response
                    .parse(&self.buf)
                    .expect("a well-formed HTTP response")
                {
                    let status = response.code.unwrap();
                    let headers: Vec<(String, String)> = response
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| {
                            v.trim().parse().expect("numeric content-length")
                        });
                    while self.buf.len() < head_len + length {
                        self.fill().await?;
                    }
                    self.buf.advance(head_len);
                    let body = self.buf.split_to(length).to_vec();
                    return Ok(HttpResponse {
                        status,
                        headers,
                        body,
                    });
                }
                self.fill().await?;
            }
        })
        .await
    }

    /// The next frame, or how the connection ended; panics after `limit`.
    pub async fn read_frame_within(&mut self, limit: Duration) -> Result<RawFrame, End> {
        within(limit, "a frame from the server", async {
            loop {
                if let Some(frame) = self.parse_frame() {
                    return Ok(frame);
                }
                self.fill().await?;
            }
        })
        .await
    }

    pub async fn read_frame(&mut self) -> Result<RawFrame, End> {
        self.read_frame_within(WAIT).await
    }

    /// Like `read_frame` but gives up quietly after `limit`.
    pub async fn try_read_frame(&mut self, limit: Duration) -> Option<Result<RawFrame, End>> {
        tokio::time::timeout(limit, async {
            loop {
                if let Some(frame) = self.parse_frame() {
                    return Ok(frame);
                }
                self.fill().await?;
            }
        })
        .await
        .ok()
    }

    /// Reads until the connection ends; returns the bytes that came first.
    pub async fn read_to_end(&mut self, limit: Duration) -> (Vec<u8>, End) {
        within(limit, "the connection to end", async {
            loop {
                if let Err(end) = self.fill().await {
                    return (self.buf.split().to_vec(), end);
                }
            }
        })
        .await
    }

    fn parse_frame(&mut self) -> Option<RawFrame> {
        let buf = &self.buf[..];
        if buf.len() < 2 {
            return None;
        }
        let fin = buf[0] & 0x80 != 0;
        let rsv = (buf[0] >> 4) & 0x7;
        let opcode = buf[0] & 0x0f;
        assert_eq!(buf[1] & 0x80, 0, "server frames are not masked");
        let (len, header) = match buf[1] & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return None;
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return None;
                }
                (u64::from_be_bytes(buf[2..10].try_into().unwrap()), 10)
            }
            n => (u64::from(n), 2),
        };
        let len = usize::try_from(len).unwrap();
        if buf.len() < header + len {
            return None;
        }
        self.buf.advance(header);
        let payload = self.buf.split_to(len).to_vec();
        Some(RawFrame {
            fin,
            rsv,
            opcode,
            payload,
        })
    }

    /// Reads frames until a close frame, which it returns with the frames
    /// before it; `Err` with those frames if the connection ended first.
    pub async fn read_until_close(
        &mut self,
        limit: Duration,
    ) -> (Vec<RawFrame>, Result<RawFrame, End>) {
        let mut before = Vec::new();
        let end = within(limit, "a close frame", async {
            loop {
                match self.read_frame_within(limit).await {
                    Ok(frame) if frame.is_close() => return Ok(frame),
                    Ok(frame) => before.push(frame),
                    Err(end) => return Err(end),
                }
            }
        })
        .await;
        (before, end)
    }
}

// ---------------------------------------------------------------------------
// A handler that floods its client on request (backpressure tests)
// ---------------------------------------------------------------------------

/// What the flooding handler saw of its sends.
#[derive(Debug, Default)]
pub struct FloodLog {
    /// One entry per flood: the status of every send and `buffered()`
    /// right after it.
    pub floods: Mutex<Vec<Vec<(uringws_engine::SendStatus, usize)>>>,
}

impl FloodLog {
    pub fn floods_done(&self) -> usize {
        self.floods.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<(uringws_engine::SendStatus, usize)> {
        self.floods
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect()
    }
}

pub const FLOOD_TRIGGER: &str = "flood";

/// On the text "flood", sends `count` binary messages of `size` bytes, each
/// a fresh allocation filled with one byte value (so a reader can check a
/// frame is whole), and logs every status. Other messages are echoed.
pub fn flood_hook(log: Arc<FloodLog>, count: usize, size: usize) -> MessageHook {
    Arc::new(move |conn, message| {
        if !matches!(message, Message::Text(t) if t.as_str() == FLOOD_TRIGGER) {
            return false;
        }
        let base = log.floods_done() * count;
        let mut statuses = Vec::with_capacity(count);
        for i in 0..count {
            let payload = Bytes::from(vec![((base + i) % 251) as u8; size]);
            let status = conn.send_binary(payload);
            statuses.push((status, conn.buffered()));
        }
        log.floods.lock().unwrap().push(statuses);
        true
    })
}

/// Checks a binary frame of the flood: whole and of one byte value.
pub fn assert_flood_frame(frame: &RawFrame, size: usize) {
    assert_eq!(frame.opcode, 0x2, "a flood frame: {frame}");
    assert!(frame.fin);
    assert_eq!(frame.payload.len(), size, "flood frame length");
    let first = frame.payload[0];
    assert!(
        frame.payload.iter().all(|&b| b == first),
        "flood frame is uniform"
    );
}
