//! Plain HTTP/1.1 around the WebSocket handshake, without I/O: the
//! complete responses a server sends to requests it does not upgrade (or
//! refuses to), and the one table of reason phrases they use.

pub(crate) mod head;
mod response;
mod status;

pub use response::{
    error_response, error_response_for, error_response_with_headers, http_response,
};
pub use status::reason_phrase;
