//! The requests the engine itself refuses, and with which status: the one
//! place the engine (not the protocol crate, not the handler) picks an HTTP
//! status. Protocol errors carry theirs (`Error::http_status`), handlers
//! choose theirs ([`Reject`](crate::Reject)).

use uringws_protocol::http::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An upgrade during a graceful shutdown.
    ShuttingDown,
    /// An upgrade past the worker's capacity (`max_connections_per_worker`,
    /// or what the open-files limit leaves).
    AtCapacity,
    /// The handler's `upgrade` or `http` panicked.
    HandlerPanicked,
    /// The handler's answer cannot be sent as it is (a subprotocol the
    /// client did not offer, a header with CR or LF).
    InvalidHandlerAnswer,
}

impl Refusal {
    pub(crate) fn status(self) -> u16 {
        match self {
            Refusal::ShuttingDown | Refusal::AtCapacity => 503,
            Refusal::HandlerPanicked | Refusal::InvalidHandlerAnswer => 500,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::ShuttingDown => "server shutting down",
            Refusal::AtCapacity => "too many connections",
            Refusal::HandlerPanicked => "internal error",
            Refusal::InvalidHandlerAnswer => "internal error: invalid response",
        }
    }

    pub(crate) fn response(self) -> Response {
        Response::text(self.status(), self.reason())
    }
}
