//! Plain HTTP/1.1 around the WebSocket handshake, without I/O: how long a
//! request's body is, and the complete responses a server sends to
//! requests it does not upgrade (or refuses to).
//!
//! A server parses the head with [`Request::parse`](crate::handshake::Request::parse).
//! A request that [`is_upgrade`](crate::handshake::Request::is_upgrade) goes
//! to [`upgrade`](crate::handshake::Request::upgrade), which refuses a
//! body. Any other request's body is framed by [`body_framing`]: read
//! [`BodyFraming::len`] bytes after the head (sending [`CONTINUE`] first if
//! the client waits for it), then answer with a [`Response`]. Every error
//! on the way has an [`Error::http_status`](crate::Error::http_status), and
//! `Response::from(&error)` is the answer that says so.

mod body;
pub(crate) mod head;
mod response;
mod status;

pub(crate) use body::check_no_body;
pub use body::{body_framing, BodyFraming, CONTINUE};
pub use response::{
    error_response, error_response_for, error_response_with_headers, http_response, Response,
};
pub use status::reason_phrase;
