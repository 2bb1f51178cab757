//! The HTTP/1.1 upgrade handshake (RFC 6455 §4), both ends, without I/O.
//!
//! Server: [`Request::parse`] the bytes read so far until it returns a
//! request, serve it as plain HTTP or call [`Request::upgrade`] to validate
//! it as a WebSocket opening handshake, then send [`Upgrade::response`] (or
//! an [`error_response`] built from the error).
//!
//! Client: [`ClientHandshake::new`] returns the request bytes to send and the
//! state that checks the server's answer with
//! [`ClientHandshake::parse_response`].
//!
//! In both directions the bytes after the head (`head_len`) already belong to
//! the WebSocket connection: a peer may send frames right behind its head.

mod client;
#[cfg(test)]
mod proptests;
mod request;
mod response;
pub(crate) mod tokens;

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub use client::{ClientHandshake, ClientRequest, Response};
pub use request::{Request, Upgrade};
// Refusals are plain HTTP; they live in `http` and stay reachable here,
// where a server that answers handshakes looks for them.
pub use crate::http::{
    error_response, error_response_for, error_response_with_headers, http_response, reason_phrase,
};
pub use tokens::{parse_extensions, Extension, ExtensionParams, Extensions};

/// The only protocol version this crate speaks.
pub const WEBSOCKET_VERSION: &str = "13";

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A head limit that fits browser requests with a fair amount of cookies
/// while keeping what one unauthenticated peer can make us buffer small.
pub const DEFAULT_MAX_HEAD: usize = 8 * 1024;

/// How many header fields a head may have. Browsers send 10–20. A
/// [`Request`] keeps one 32-byte slot per possible field (2 KiB, no heap),
/// so this bounds both its size and the parse time.
pub const MAX_HEADERS: usize = 64;

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64 of
/// SHA-1(key ‖ [`ACCEPT_GUID`]), with the key as sent (not decoded).
///
/// The result is always 28 ASCII bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28 padded base64 characters.
    let written = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut out);
    debug_assert_eq!(written, Ok(28));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
