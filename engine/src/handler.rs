//! What an embedder implements: one [`Handler`] per worker (built by the
//! factory given to the engine), called on that worker's thread only, so it
//! needs no locks and may hold `Rc`s and spawn local tasks.

use crate::conn::Conn;
use bytes::Bytes;
use std::{borrow::Cow, net::SocketAddr};
use uringws_protocol::{
    handshake::{error_response_with_headers, Request, Upgrade},
    CloseCode, Message,
};

/// The answer to an upgrade request that is taken.
pub struct Accept<S> {
    /// Per-connection state, handed back in every callback.
    pub state: S,
    /// The subprotocol to confirm; it must be one the client offered.
    pub protocol: Option<Cow<'static, str>>,
}

impl<S> Accept<S> {
    pub fn new(state: S) -> Self {
        Accept {
            state,
            protocol: None,
        }
    }

    pub fn with_protocol(mut self, protocol: impl Into<Cow<'static, str>>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }
}

/// The answer to a request that is refused: an HTTP status and a body.
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

    /// The response bytes; a header that cannot be sent turns it into a 500.
    pub(crate) fn to_response(&self) -> Bytes {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, v)| (&**n, &**v)).collect();
        error_response_with_headers(self.status, &self.body, &headers).unwrap_or_else(|_| {
            uringws_protocol::handshake::error_response(500, "invalid response header")
        })
    }
}

/// Where a connection comes from, for the handler's decisions.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The remote address, when the kernel still knows it.
    pub addr: Option<SocketAddr>,
    /// The worker (and core) the connection lives on.
    pub worker: usize,
}

/// The callbacks of one worker. Only [`upgrade`](Handler::upgrade) and
/// [`message`](Handler::message) are required.
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
    fn http(&mut self, request: &Request<'_>, body: &[u8], peer: Peer) -> Bytes {
        let _ = (request, body, peer);
        uringws_protocol::handshake::error_response(404, "not found")
    }

    /// The connection is open: the 101 response is queued.
    fn open(&mut self, conn: &mut Conn<'_, Self::State>) {
        let _ = conn;
    }

    /// A text or binary message.
    fn message(&mut self, conn: &mut Conn<'_, Self::State>, message: Message);

    /// A ping; the engine already answered it when auto-pong is on.
    fn ping(&mut self, conn: &mut Conn<'_, Self::State>, payload: &Bytes) {
        let _ = (conn, payload);
    }

    fn pong(&mut self, conn: &mut Conn<'_, Self::State>, payload: &Bytes) {
        let _ = (conn, payload);
    }

    /// The send buffer fell back under the backpressure limit after a send
    /// returned [`SendStatus::Queued`](crate::SendStatus) or `Dropped`.
    fn drain(&mut self, conn: &mut Conn<'_, Self::State>) {
        let _ = conn;
    }

    /// The connection is over, called exactly once per opened connection:
    /// with the peer's close code, the code we sent for an error or a
    /// shutdown, or 1006 when the transport ended without a close frame.
    fn close(&mut self, conn: &mut Conn<'_, Self::State>, code: CloseCode, reason: &str) {
        let _ = (conn, code, reason);
    }
}
