//! The crate's one error type, and the one place where every error is mapped
//! to what the peer is told: an HTTP status during the handshake, a close
//! code once the connection is a WebSocket.

use crate::close::CloseCode;

/// Everything that can go wrong in the handshake or on an open connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- HTTP handshake (server side: answered with an HTTP status) ----
    /// The request head is not valid HTTP/1.x.
    #[error("malformed HTTP request: {0}")]
    MalformedHttp(httparse::Error),
    /// The request head grew past the configured limit before it was complete.
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    /// More header lines than the parser keeps.
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    /// A WebSocket upgrade must be a `GET`.
    #[error("method {0} is not GET")]
    MethodNotGet(String),
    /// A WebSocket upgrade needs HTTP/1.1 or later.
    #[error("HTTP/1.{0} cannot upgrade; HTTP/1.1 is required")]
    HttpVersion(u8),
    /// `Host` missing.
    #[error("missing Host header")]
    MissingHost,
    /// `Upgrade` missing or without the `websocket` token.
    #[error("missing or wrong Upgrade header (expected websocket)")]
    NotWebSocketUpgrade,
    /// `Connection` missing or without the `Upgrade` token.
    #[error("Connection header lacks the Upgrade token")]
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13 (answered with 426).
    #[error("unsupported Sec-WebSocket-Version (only 13)")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not base64 of 16 bytes.
    #[error("missing or invalid Sec-WebSocket-Key")]
    InvalidKey,
    /// A header that may appear once appeared more often.
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// The application chose a subprotocol the client did not offer.
    #[error("subprotocol {0:?} was not offered by the client")]
    SubprotocolNotOffered(String),
    /// A header to be sent has a name that is not a token or a value with
    /// CR, LF or another control character (it could inject header lines),
    /// or is one the writer sets itself (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`), which a second copy would
    /// contradict.
    #[error(
        "header {0:?} cannot be sent: its name is not a token or one the writer sets itself, or its value has a control character"
    )]
    InvalidHeader(String),

    // ---- request bodies (server side: answered with an HTTP status) ----
    /// A request with `Transfer-Encoding`: bodies are taken with
    /// `Content-Length` only (answered with 411, which asks for one).
    #[error(
        "send the body with Content-Length: Transfer-Encoding (chunked) request bodies are not decoded"
    )]
    TransferEncoding,
    /// A `Content-Length` that is not a plain decimal number.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// `Content-Length` given more than once with different values.
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    /// A declared body longer than the configured maximum.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// An `Expect` other than `100-continue` (answered with 417).
    #[error("unsupported Expect header (only 100-continue is)")]
    UnsupportedExpectation,
    /// A WebSocket upgrade request that declares a body: the bytes after
    /// its head would be taken for frames.
    #[error("a WebSocket upgrade request must not have a body")]
    UpgradeWithBody,

    // ---- HTTP handshake (client side: the server's answer is wrong) ----
    /// The server answered with another status than 101.
    #[error("server answered HTTP {0} instead of 101")]
    UnexpectedStatus(u16),
    /// The server's `Sec-WebSocket-Accept` does not match our key.
    #[error("Sec-WebSocket-Accept does not match the key sent")]
    AcceptMismatch,
    /// The server picked a subprotocol we did not offer.
    #[error("server chose subprotocol {0:?} which was not offered")]
    UnofferedSubprotocol(String),
    /// The server enabled an extension we did not offer.
    #[error("server enabled extension {0:?} which was not offered")]
    UnofferedExtension(String),
    /// The server's permessage-deflate answer breaks RFC 7692 §7 against
    /// our offer (an unknown or repeated parameter, a value out of range
    /// or above what we offered, a window for us we did not let it set).
    #[error("server's permessage-deflate answer: {0}")]
    DeflateAnswer(&'static str),

    // ---- frames and messages (answered with a close code) ----
    /// Opcode 0x3–0x7 or 0xB–0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV1/2/3 set without an extension that defines them.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// A control frame with a payload longer than 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(u64),
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A 64-bit payload length with the most significant bit set.
    #[error("64-bit payload length has its most significant bit set")]
    LengthTopBitSet,
    /// A client sent an unmasked frame to the server.
    #[error("client frame is not masked")]
    UnmaskedClientFrame,
    /// A server sent a masked frame to the client.
    #[error("server frame is masked")]
    MaskedServerFrame,
    /// A continuation frame arrived with no fragmented message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame arrived while a fragmented message was open.
    #[error("new data frame while a fragmented message is incomplete")]
    ExpectedContinuation,
    /// A frame's payload is larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge { size: u64, limit: usize },
    /// A message's payload is larger than the configured maximum.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge { size: u64, limit: usize },
    /// A compressed message (permessage-deflate) that does not inflate.
    #[error("compressed payload is not valid DEFLATE data")]
    BadCompressedData,
    /// A text message (or close reason) is not valid UTF-8.
    #[error("invalid UTF-8 in text payload")]
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    #[error("close frame payload of one byte")]
    CloseFrameTooShort,
    /// A close code that must not appear on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A data frame received after the peer's close frame.
    #[error("frame received after the close frame")]
    FrameAfterClose,

    // ---- API misuse (a local bug, not the peer's fault) ----
    /// A data frame or a second close was to be sent after our close frame.
    #[error("the connection is closing; no more frames may be sent")]
    SendAfterClose,
    /// A control payload over 125 bytes or a close reason that does not fit.
    #[error("control payload of {0} bytes exceeds 125")]
    ControlPayloadTooLong(usize),
    /// A response was to be sent with a status that cannot end one: not
    /// 200–599 (RFC 9110 §15; a 1xx is interim).
    #[error("status {0} cannot end a response")]
    InvalidStatus(u16),
}

impl Error {
    /// The HTTP status a server answers this error with (a refused
    /// handshake or request body), or `None` when the error does not happen
    /// while a server reads a request.
    pub fn http_status(&self) -> Option<u16> {
        Some(match self {
            Error::MalformedHttp(_)
            | Error::MissingHost
            | Error::HttpVersion(_)
            | Error::NotWebSocketUpgrade
            | Error::MissingConnectionUpgrade
            | Error::InvalidKey
            | Error::DuplicateHeader(_)
            | Error::InvalidContentLength
            | Error::ConflictingContentLength
            | Error::UpgradeWithBody => 400,
            Error::MethodNotGet(_) => 405,
            Error::TransferEncoding => 411,
            Error::BodyTooLarge { .. } => 413,
            Error::UnsupportedExpectation => 417,
            Error::UnsupportedVersion => 426,
            Error::HeadTooLarge { .. } | Error::TooManyHeaders { .. } => 431,
            Error::SubprotocolNotOffered(_) | Error::InvalidHeader(_) | Error::InvalidStatus(_) => {
                500
            }
            _ => return None,
        })
    }

    /// The close code sent to the peer when this error ends a connection, or
    /// `None` when the error does not happen on an open connection.
    pub fn close_code(&self) -> Option<CloseCode> {
        Some(match self {
            Error::ReservedOpcode(_)
            | Error::ReservedBits
            | Error::ControlFrameTooLong(_)
            | Error::FragmentedControlFrame
            | Error::LengthTopBitSet
            | Error::UnmaskedClientFrame
            | Error::MaskedServerFrame
            | Error::UnexpectedContinuation
            | Error::ExpectedContinuation
            | Error::CloseFrameTooShort
            | Error::InvalidCloseCode(_)
            | Error::FrameAfterClose => CloseCode::PROTOCOL_ERROR,
            Error::InvalidUtf8 | Error::BadCompressedData => CloseCode::INVALID_PAYLOAD,
            Error::FrameTooLarge { .. } | Error::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            _ => return None,
        })
    }
}
