//! The server's `101 Switching Protocols`; refusals are plain HTTP
//! responses ([`crate::http`]).

use bytes::Bytes;

use super::accept_key;
use crate::http::head::{check_header, check_headers, header_len, HeadWriter};
use crate::Error;

const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";

/// Builds the 101 response for `key`; `protocol` was checked against the
/// offers by the caller.
pub(super) fn switching_protocols(
    key: &[u8],
    protocol: Option<&str>,
    extensions: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Bytes, Error> {
    const ACCEPT: &str = "Sec-WebSocket-Accept";
    const PROTOCOL: &str = "Sec-WebSocket-Protocol";
    const EXTENSIONS: &str = "Sec-WebSocket-Extensions";

    let accept = accept_key(key);
    let mut len = SWITCHING.len() + header_len(ACCEPT, &accept) + 2 + check_headers(headers)?;
    if let Some(protocol) = protocol {
        check_header(PROTOCOL, protocol)?;
        len += header_len(PROTOCOL, protocol.as_bytes());
    }
    if let Some(extensions) = extensions {
        check_header(EXTENSIONS, extensions)?;
        len += header_len(EXTENSIONS, extensions.as_bytes());
    }

    let mut head = HeadWriter::with_capacity(len);
    head.push(SWITCHING);
    head.header(ACCEPT, &accept);
    if let Some(protocol) = protocol {
        head.header(PROTOCOL, protocol.as_bytes());
    }
    if let Some(extensions) = extensions {
        head.header(EXTENSIONS, extensions.as_bytes());
    }
    for (name, value) in headers {
        head.header(name, value.as_bytes());
    }
    head.push(b"\r\n");
    Ok(head.finish())
}
