//! What an embedder implements: one [`Handler`] per worker (built by the
//! factory given to the engine), called on that worker's thread only, so it
//! needs no locks and may hold `Rc`s and spawn local tasks.

use crate::conn::Conn;
use bytes::Bytes;
use std::{borrow::Cow, fmt, net::SocketAddr, sync::Arc};
use uringws_protocol::{
    handshake::{Request, Upgrade},
    http::Response,
    CloseCode, Utf8Bytes,
};

/// A data message: what [`Handler::message`] receives. Control frames
/// have callbacks of their own ([`Handler::ping`], [`Handler::pong`],
/// [`Handler::close`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Valid UTF-8, checked before the callback.
    Text(Utf8Bytes),
    Binary(Bytes),
}

/// A connection's identity: unique among the engine's live connections,
/// and not equal to that of any connection that closed on the same worker
/// within the last 4 billion accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) worker: u32,
    pub(crate) slot: u32,
    pub(crate) gen: u32,
}

impl ConnId {
    /// The worker (and core) the connection lives on.
    pub fn worker(self) -> usize {
        self.worker as usize
    }

    /// A small index, unique among the worker's live connections and
    /// reused after they close: for side tables kept in a `Vec`.
    pub fn index(self) -> usize {
        self.slot as usize
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.worker, self.slot, self.gen)
    }
}

/// The answer to an upgrade request that is taken.
pub struct Accept<S> {
    /// Per-connection state, handed back in every callback.
    pub state: S,
    /// The subprotocol to confirm; it must be one the client offered.
    pub protocol: Option<Cow<'static, str>>,
    /// More headers for the 101 response (`Set-Cookie`, say).
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

impl<S> Accept<S> {
    pub fn new(state: S) -> Self {
        Accept {
            state,
            protocol: None,
            headers: Vec::new(),
        }
    }

    pub fn with_protocol(mut self, protocol: impl Into<Cow<'static, str>>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// A header for the 101 response. One that cannot be sent (a name
    /// that is not a token, a value with CR or LF) refuses the upgrade
    /// with 500 rather than write a broken response.
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The answer to an upgrade that is refused: an HTTP status, a plain-text
/// body and maybe headers (`Retry-After`, `WWW-Authenticate`).
#[derive(Debug, Clone)]
pub struct Reject {
    pub status: u16,
    pub body: Cow<'static, str>,
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

impl Reject {
    pub fn new(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        Reject {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(crate) fn into_response(self) -> Response {
        self.headers.into_iter().fold(
            Response::text(self.status, self.body),
            |response, (name, value)| response.header(name, value),
        )
    }
}

/// Where a connection comes from, for the handler's decisions.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address, when it is known: the socket's peer or, from
    /// a [trusted proxy](crate::EngineConfig::trusted_proxies), what its
    /// PROXY header or `X-Forwarded-For` says (port 0 from the latter).
    pub addr: Option<SocketAddr>,
    /// The socket's peer, a trusted proxy, when `addr` is what a proxy
    /// said.
    pub via: Option<SocketAddr>,
    /// The worker (and core) the connection lives on.
    pub worker: usize,
    /// Whether it came through a TLS listener (`wss://`).
    pub tls: bool,
    /// The name a TLS client asked for (SNI), if it sent one.
    pub server_name: Option<Arc<str>>,
}

impl Peer {
    /// `X-Forwarded-For`'s client, said by `from` (the client address so
    /// far), when a trusted proxy said one.
    pub(crate) fn forwarded(&mut self, client: Option<SocketAddr>, from: SocketAddr) {
        if let Some(client) = client {
            self.via.get_or_insert(from);
            self.addr = Some(client);
        }
    }
}

/// The callbacks of one worker. Only [`upgrade`](Handler::upgrade) and
/// [`message`](Handler::message) are required.
///
/// Callbacks run on the worker's thread between its I/O: one that blocks
/// (a synchronous database call, a long computation) stalls every
/// connection of that core. Start such work with
/// `tokio::task::spawn_local` and answer through a [`ConnRef`](crate::ConnRef)
/// (`conn.handle()`), as `examples/async_handler.rs` shows. A callback that
/// panics closes its connection with 1011 (an HTTP request gets a 500) and
/// the worker goes on serving the others.
pub trait Handler: 'static {
    /// Per-connection state, created at upgrade.
    type State: 'static;

    /// A WebSocket upgrade request that passed the protocol's checks: accept
    /// it (with state and maybe a subprotocol) or refuse it with a status.
    fn upgrade(&mut self, upgrade: &Upgrade<'_>, peer: Peer)
        -> Result<Accept<Self::State>, Reject>;

    /// A plain HTTP request (no upgrade) and its body (Content-Length
    /// bytes, at most [`max_body`](crate::EngineConfig::max_body); chunked
    /// bodies are refused with 411 before this is called). The answer is
    /// sent and the connection closed. Default: 404.
    fn http(&mut self, request: &Request<'_>, body: &[u8], peer: Peer) -> Response {
        let _ = (request, body, peer);
        Response::text(404, "not found")
    }

    /// The connection is open: the 101 response is queued.
    fn open(&mut self, conn: &mut Conn<'_, Self::State>) {
        let _ = conn;
    }

    /// A text or binary message. A payload of 1 KiB or more that arrived
    /// whole shares the worker's receive buffer (no copy): sending it back
    /// sends from there, but while it is kept the buffer stays out of the
    /// ring. The engine copies instead once half the ring is held
    /// that way, so nothing stalls; a handler that stores messages for long
    /// still does better to keep a copy (`Bytes::copy_from_slice`).
    fn message(&mut self, conn: &mut Conn<'_, Self::State>, message: Message);

    /// A ping; the engine already answered it when auto-pong is on.
    fn ping(&mut self, conn: &mut Conn<'_, Self::State>, payload: &Bytes) {
        let _ = (conn, payload);
    }

    fn pong(&mut self, conn: &mut Conn<'_, Self::State>, payload: &Bytes) {
        let _ = (conn, payload);
    }

    /// The send buffer fell back under half the backpressure limit after a
    /// send returned [`SendStatus::Queued`](crate::SendStatus) or `Dropped`.
    fn drain(&mut self, conn: &mut Conn<'_, Self::State>) {
        let _ = conn;
    }

    /// `messages` sends or publications to this connection were refused
    /// since the last call because it is over its backpressure limit
    /// ([`BackpressurePolicy::Drop`](crate::BackpressurePolicy)); called
    /// after the callback or fan-out that caused them.
    fn dropped(&mut self, conn: &mut Conn<'_, Self::State>, messages: u32) {
        let _ = (conn, messages);
    }

    /// The connection is over, called exactly once per opened connection:
    /// with the peer's close code, the code we sent for an error or a
    /// shutdown, or 1006 when the transport ended without a close frame.
    /// Nothing sent from here goes out.
    fn close(&mut self, conn: &mut Conn<'_, Self::State>, code: CloseCode, reason: &str) {
        let _ = (conn, code, reason);
    }
}
