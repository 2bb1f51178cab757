//! The HTTP/1.1 upgrade handshake (RFC 6455 §4).

/// The only protocol version this crate speaks.
pub const WEBSOCKET_VERSION: &str = "13";
