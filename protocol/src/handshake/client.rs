//! The client side: writing the opening handshake request and checking the
//! server's answer (RFC 6455 §4.1).

use base64::Engine as _;
use bytes::Bytes;

use super::tokens::{has_token, parse_extensions, trim_ows, Extensions};
use super::{accept_key, DEFAULT_MAX_HEAD, MAX_HEADERS, WEBSOCKET_VERSION};
use crate::http::head::{check_header, check_headers, header_len, is_token, HeadWriter};
use crate::Error;

/// What the client asks for. Build it with [`ClientRequest::new`] and set
/// the optional fields with struct update syntax:
///
/// ```
/// use uringws_protocol::handshake::{ClientHandshake, ClientRequest};
///
/// let request = ClientRequest {
///     protocols: &["chat"],
///     origin: Some("https://example.com"),
///     ..ClientRequest::new("example.com:8080", "/ws?room=1")
/// };
/// let (handshake, bytes) = ClientHandshake::new(&request)?;
/// assert!(bytes.starts_with(b"GET /ws?room=1 HTTP/1.1\r\nHost: example.com:8080\r\n"));
/// # Ok::<(), uringws_protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The `Host` header: host, and port unless it is the scheme's default.
    pub host: &'a str,
    /// Path and query, e.g. `/chat?room=1`; empty means `/`.
    pub path: &'a str,
    /// Subprotocols to offer, most preferred first; each must be a token.
    pub protocols: &'a [&'a str],
    /// The `Sec-WebSocket-Extensions` offer, e.g.
    /// `permessage-deflate; client_max_window_bits`.
    pub extensions: Option<&'a str>,
    /// The `Origin` header, for servers that check it.
    pub origin: Option<&'a str>,
    /// Any other headers, e.g. `Authorization` or `Cookie`.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> ClientRequest<'a> {
    /// A request for `path` on `host` with no offers and no extra headers.
    pub const fn new(host: &'a str, path: &'a str) -> Self {
        ClientRequest {
            host,
            path,
            protocols: &[],
            extensions: None,
            origin: None,
            headers: &[],
        }
    }
}

/// The client's half of a handshake in progress: what the server's answer
/// must match.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    accept: [u8; 28],
    protocols: Vec<String>,
    extensions: Option<String>,
    max_head: usize,
}

impl ClientHandshake {
    /// Writes the request with a fresh random key. Send the bytes, then
    /// feed what comes back to [`parse_response`](Self::parse_response).
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] when a field holds CR, LF or another control
    /// character, the host is empty, the path holds a space, or a
    /// subprotocol is not a token.
    pub fn new(request: &ClientRequest<'_>) -> Result<(Self, Bytes), Error> {
        Self::with_key(request, rand::random())
    }

    /// Like [`new`](Self::new) with a given key. RFC 6455 §4.1 wants a fresh
    /// random key per connection; this exists for tests and reproducible
    /// runs.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_key(request: &ClientRequest<'_>, key: [u8; 16]) -> Result<(Self, Bytes), Error> {
        const PROTOCOL: &str = "Sec-WebSocket-Protocol";
        const EXTENSIONS: &str = "Sec-WebSocket-Extensions";
        const FIXED: &[u8] =
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
        debug_assert_eq!(WEBSOCKET_VERSION, "13");

        let path = if request.path.is_empty() {
            "/"
        } else {
            request.path
        };
        // A space would end the request target; the rest would break the line.
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::InvalidHeader("request target".into()));
        }
        if request.host.is_empty() {
            return Err(Error::InvalidHeader("Host".into()));
        }
        check_header("Host", request.host)?;
        if let Some(origin) = request.origin {
            check_header("Origin", origin)?;
        }
        if let Some(extensions) = request.extensions {
            check_header(EXTENSIONS, extensions)?;
        }
        // Tokens cannot hold commas, so the joined list splits back exactly.
        if !request.protocols.iter().all(|p| is_token(p.as_bytes())) {
            return Err(Error::InvalidHeader(PROTOCOL.into()));
        }
        let extra = check_headers(request.headers)?;

        let mut key_text = [0u8; 24];
        let written = base64::engine::general_purpose::STANDARD.encode_slice(key, &mut key_text);
        debug_assert_eq!(written, Ok(24));

        let protocols_len = match request.protocols {
            [] => 0,
            list => {
                let joined: usize =
                    list.iter().map(|p| p.len()).sum::<usize>() + 2 * (list.len() - 1);
                PROTOCOL.len() + 2 + joined + 2
            }
        };
        let len = b"GET ".len()
            + path.len()
            + b" HTTP/1.1\r\n".len()
            + header_len("Host", request.host.as_bytes())
            + FIXED.len()
            + header_len("Sec-WebSocket-Key", &key_text)
            + request
                .origin
                .map_or(0, |o| header_len("Origin", o.as_bytes()))
            + protocols_len
            + request
                .extensions
                .map_or(0, |e| header_len(EXTENSIONS, e.as_bytes()))
            + extra
            + 2;

        let mut head = HeadWriter::with_capacity(len);
        head.push(b"GET ");
        head.push(path.as_bytes());
        head.push(b" HTTP/1.1\r\n");
        head.header("Host", request.host.as_bytes());
        head.push(FIXED);
        head.header("Sec-WebSocket-Key", &key_text);
        if let Some(origin) = request.origin {
            head.header("Origin", origin.as_bytes());
        }
        if let [first, rest @ ..] = request.protocols {
            head.push(PROTOCOL.as_bytes());
            head.push(b": ");
            head.push(first.as_bytes());
            for protocol in rest {
                head.push(b", ");
                head.push(protocol.as_bytes());
            }
            head.push(b"\r\n");
        }
        if let Some(extensions) = request.extensions {
            head.header(EXTENSIONS, extensions.as_bytes());
        }
        for (name, value) in request.headers {
            head.header(name, value.as_bytes());
        }
        head.push(b"\r\n");

        let handshake = ClientHandshake {
            accept: accept_key(&key_text),
            protocols: request.protocols.iter().map(|p| (*p).to_owned()).collect(),
            extensions: request.extensions.map(str::to_owned),
            max_head: DEFAULT_MAX_HEAD,
        };
        Ok((handshake, head.finish()))
    }

    /// Sets the size limit for the response head (default
    /// [`DEFAULT_MAX_HEAD`]).
    pub fn with_max_head(mut self, max_head: usize) -> Self {
        self.max_head = max_head;
        self
    }

    /// Parses and checks the server's response head at the start of `buf`.
    ///
    /// Returns `Ok(None)` while the head is incomplete. On success, bytes
    /// from [`Response::head_len`] on are already WebSocket frames.
    ///
    /// # Errors
    /// [`Error::HeadTooLarge`], [`Error::TooManyHeaders`],
    /// [`Error::MalformedHttp`] as for requests;
    /// [`Error::UnexpectedStatus`] for anything but 101;
    /// [`Error::NotWebSocketUpgrade`], [`Error::MissingConnectionUpgrade`];
    /// [`Error::AcceptMismatch`] for a missing, repeated or wrong
    /// `Sec-WebSocket-Accept`; [`Error::UnofferedSubprotocol`];
    /// [`Error::UnofferedExtension`].
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<Response>, Error> {
        let window = &buf[..buf.len().min(self.max_head)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > self.max_head => {
                return Err(Error::HeadTooLarge {
                    limit: self.max_head,
                })
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::TooManyHeaders { limit: MAX_HEADERS })
            }
            Err(e) => return Err(Error::MalformedHttp(e)),
        };
        match parsed.code {
            Some(101) => {}
            Some(code) => return Err(Error::UnexpectedStatus(code)),
            // httparse sets the code before it reports a complete head.
            None => return Err(Error::MalformedHttp(httparse::Error::Status)),
        }

        let mut websocket = false;
        let mut connection_upgrade = false;
        let mut accepts = 0u32;
        let mut accept_ok = false;
        let mut protocol: Option<String> = None;
        let mut extensions = String::new();
        for field in parsed.headers.iter() {
            let name = field.name;
            if name.eq_ignore_ascii_case("upgrade") {
                websocket |= has_token(field.value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection_upgrade |= has_token(field.value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
                accepts += 1;
                accept_ok = trim_ows(field.value) == self.accept;
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                let value = String::from_utf8_lossy(trim_ows(field.value));
                // One value, exactly as offered; a list or a second header
                // cannot be what we offered.
                if protocol.is_some() || !self.protocols.iter().any(|p| *p == value) {
                    return Err(Error::UnofferedSubprotocol(value.into_owned()));
                }
                protocol = Some(value.into_owned());
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                let value = std::str::from_utf8(field.value).map_err(|_| {
                    Error::UnofferedExtension(String::from_utf8_lossy(field.value).into_owned())
                })?;
                self.check_extensions(value)?;
                if !extensions.is_empty() {
                    extensions.push_str(", ");
                }
                extensions.push_str(value);
            }
        }
        if !websocket {
            return Err(Error::NotWebSocketUpgrade);
        }
        if !connection_upgrade {
            return Err(Error::MissingConnectionUpgrade);
        }
        if accepts != 1 || !accept_ok {
            return Err(Error::AcceptMismatch);
        }
        Ok(Some(Response {
            head_len,
            protocol,
            extensions,
        }))
    }

    /// Every extension the server agreed to must be one we offered (by name;
    /// checking the parameters is the extension's own negotiation).
    fn check_extensions(&self, value: &str) -> Result<(), Error> {
        let offers = self.extensions.as_deref().unwrap_or("");
        for agreed in parse_extensions(value) {
            if !parse_extensions(offers)
                .any(|offer| offer.name().eq_ignore_ascii_case(agreed.name()))
            {
                return Err(Error::UnofferedExtension(agreed.name().to_owned()));
            }
        }
        Ok(())
    }
}

/// A server's valid `101` answer to our handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    head_len: usize,
    protocol: Option<String>,
    extensions: String,
}

impl Response {
    /// How many bytes of the buffer the head took; what follows is frames.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The extensions the server agreed to, with their parameters, in the
    /// order they apply.
    pub fn extensions(&self) -> Extensions<'_> {
        parse_extensions(&self.extensions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{error_response, Request};

    const KEY: [u8; 16] = *b"the sample nonce";

    fn handshake(request: &ClientRequest<'_>) -> (ClientHandshake, Bytes) {
        ClientHandshake::with_key(request, KEY).unwrap()
    }

    fn response(accept: &str, extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
        )
    }

    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn request_bytes() {
        let (_, bytes) = handshake(&ClientRequest {
            protocols: &["chat", "superchat"],
            extensions: Some("permessage-deflate; client_max_window_bits"),
            origin: Some("http://example.com"),
            headers: &[("Cookie", "a=b")],
            ..ClientRequest::new("server.example.com", "/chat")
        });
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nCookie: a=b\r\n\r\n"
        );
        let (_, bytes) = handshake(&ClientRequest::new("h", ""));
        assert!(bytes.starts_with(b"GET / HTTP/1.1\r\nHost: h\r\n"));
    }

    #[test]
    fn random_keys_differ() {
        let request = ClientRequest::new("h", "/");
        let (a, _) = ClientHandshake::new(&request).unwrap();
        let (b, _) = ClientHandshake::new(&request).unwrap();
        assert_ne!(a.accept, b.accept);
    }

    #[test]
    fn request_rejects_injection() {
        let base = ClientRequest::new("h", "/");
        let cases = [
            (
                ClientRequest {
                    host: "h\r\nX: y",
                    ..base
                },
                "Host",
            ),
            (ClientRequest { host: "", ..base }, "Host"),
            (
                ClientRequest {
                    path: "/a b",
                    ..base
                },
                "request target",
            ),
            (
                ClientRequest {
                    path: "/a\r\nX: y",
                    ..base
                },
                "request target",
            ),
            (
                ClientRequest {
                    origin: Some("o\n"),
                    ..base
                },
                "Origin",
            ),
            (
                ClientRequest {
                    extensions: Some("x\r\n"),
                    ..base
                },
                "Sec-WebSocket-Extensions",
            ),
            (
                ClientRequest {
                    protocols: &["a, b"],
                    ..base
                },
                "Sec-WebSocket-Protocol",
            ),
            (
                ClientRequest {
                    protocols: &[""],
                    ..base
                },
                "Sec-WebSocket-Protocol",
            ),
            (
                ClientRequest {
                    protocols: &["a\r\n"],
                    ..base
                },
                "Sec-WebSocket-Protocol",
            ),
            (
                ClientRequest {
                    headers: &[("X", "1\r\n\r\n")],
                    ..base
                },
                "X",
            ),
            (
                ClientRequest {
                    headers: &[("X\r\nY", "1")],
                    ..base
                },
                "X\r\nY",
            ),
        ];
        for (request, name) in cases {
            assert_eq!(
                ClientHandshake::new(&request).unwrap_err(),
                Error::InvalidHeader(name.into()),
                "{request:?}"
            );
        }
    }

    #[test]
    fn round_trip_through_the_server_parser() {
        let offer = "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame";
        let (client, request) = ClientHandshake::new(&ClientRequest {
            protocols: &["v2.chat", "v1.chat"],
            extensions: Some(offer),
            origin: Some("https://example.com"),
            headers: &[("Authorization", "Bearer t")],
            ..ClientRequest::new("example.com:9001", "/ws?room=7")
        })
        .unwrap();

        let mut wire = request.to_vec();
        wire.extend_from_slice(b"\x81\x80\0\0\0\0"); // an early frame
        let req = Request::parse(&wire, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(req.head_len(), request.len());
        assert_eq!((req.path(), req.query()), ("/ws", Some("room=7")));
        assert_eq!(req.header("authorization"), Some(&b"Bearer t"[..]));
        let up = req.upgrade().unwrap();
        assert_eq!(up.origin(), Some(&b"https://example.com"[..]));
        assert_eq!(up.protocols().collect::<Vec<_>>(), ["v2.chat", "v1.chat"]);
        let names: Vec<_> = up.extensions().map(|e| e.name()).collect();
        assert_eq!(names, ["permessage-deflate", "x-webkit-deflate-frame"]);

        let answer = up
            .response(
                Some("v1.chat"),
                Some("permessage-deflate; client_max_window_bits=10"),
            )
            .unwrap();
        let mut wire = answer.to_vec();
        wire.extend_from_slice(b"\x81\x02hi");
        let resp = client.parse_response(&wire).unwrap().unwrap();
        assert_eq!(resp.head_len(), answer.len());
        assert_eq!(resp.protocol(), Some("v1.chat"));
        let agreed: Vec<_> = resp
            .extensions()
            .map(|e| (e.name(), e.params().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            agreed,
            [(
                "permessage-deflate",
                vec![("client_max_window_bits", Some("10"))]
            )]
        );

        let answer = up.response(None, None).unwrap();
        let resp = client.parse_response(&answer).unwrap().unwrap();
        assert_eq!((resp.protocol(), resp.extensions().count()), (None, 0));
    }

    #[test]
    fn rfc_example_response() {
        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let resp = response(ACCEPT, "");
        assert_eq!(
            client
                .parse_response(resp.as_bytes())
                .unwrap()
                .unwrap()
                .head_len(),
            resp.len()
        );
        // Case and list variations of the required tokens.
        let resp = format!(
            "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
             sec-websocket-accept:  {ACCEPT} \r\n\r\n"
        );
        assert!(client.parse_response(resp.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn accept_must_match() {
        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let bad = [
            response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo", ""),
            response("S3pPLMBiTxaQ9kYGzzhZRbK+xOo=", ""),
            response("", ""),
            response(ACCEPT, &format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_owned(),
        ];
        for resp in bad {
            assert_eq!(
                client.parse_response(resp.as_bytes()),
                Err(Error::AcceptMismatch),
                "{resp}"
            );
        }
    }

    #[test]
    fn status_must_be_101() {
        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let not_found = error_response(404, "no such path");
        assert_eq!(
            client.parse_response(&not_found),
            Err(Error::UnexpectedStatus(404))
        );
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            client.parse_response(ok.as_bytes()),
            Err(Error::UnexpectedStatus(200))
        );
    }

    #[test]
    fn upgrade_tokens_required() {
        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
        assert_eq!(
            client.parse_response(resp.as_bytes()),
            Err(Error::NotWebSocketUpgrade)
        );
        let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
        assert_eq!(
            client.parse_response(resp.as_bytes()),
            Err(Error::MissingConnectionUpgrade)
        );
    }

    #[test]
    fn subprotocol_must_have_been_offered() {
        let (client, _) = handshake(&ClientRequest {
            protocols: &["chat"],
            ..ClientRequest::new("h", "/")
        });
        let ok = response(ACCEPT, "Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            client
                .parse_response(ok.as_bytes())
                .unwrap()
                .unwrap()
                .protocol(),
            Some("chat")
        );
        for (extra, chosen) in [
            ("Sec-WebSocket-Protocol: superchat\r\n", "superchat"),
            ("Sec-WebSocket-Protocol: Chat\r\n", "Chat"),
            (
                "Sec-WebSocket-Protocol: chat, superchat\r\n",
                "chat, superchat",
            ),
            (
                "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n",
                "chat",
            ),
            ("Sec-WebSocket-Protocol: \r\n", ""),
        ] {
            let resp = response(ACCEPT, extra);
            assert_eq!(
                client.parse_response(resp.as_bytes()),
                Err(Error::UnofferedSubprotocol(chosen.into())),
                "{extra}"
            );
        }
        // Nothing offered: any choice is wrong.
        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let resp = response(ACCEPT, "Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            client.parse_response(resp.as_bytes()),
            Err(Error::UnofferedSubprotocol("chat".into()))
        );
    }

    #[test]
    fn extensions_must_have_been_offered() {
        let (client, _) = handshake(&ClientRequest {
            extensions: Some("permessage-deflate; client_max_window_bits"),
            ..ClientRequest::new("h", "/")
        });
        let resp = response(
            ACCEPT,
            "Sec-WebSocket-Extensions: Permessage-Deflate; server_no_context_takeover\r\n",
        );
        let parsed = client.parse_response(resp.as_bytes()).unwrap().unwrap();
        assert_eq!(
            parsed
                .extensions()
                .next()
                .unwrap()
                .param("server_no_context_takeover"),
            Some(None)
        );
        let resp = response(
            ACCEPT,
            "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: x-foo; a=1\r\n",
        );
        assert_eq!(
            client.parse_response(resp.as_bytes()),
            Err(Error::UnofferedExtension("x-foo".into()))
        );

        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let resp = response(ACCEPT, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(
            client.parse_response(resp.as_bytes()),
            Err(Error::UnofferedExtension("permessage-deflate".into()))
        );
    }

    #[test]
    fn incremental_response_parse() {
        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let resp = response(ACCEPT, "");
        let mut wire = resp.clone().into_bytes();
        wire.extend_from_slice(b"\x81\x02hi");
        for end in 0..resp.len() {
            assert_eq!(client.parse_response(&wire[..end]), Ok(None), "at {end}");
        }
        for end in resp.len()..=wire.len() {
            assert_eq!(
                client
                    .parse_response(&wire[..end])
                    .unwrap()
                    .unwrap()
                    .head_len(),
                resp.len()
            );
        }
    }

    #[test]
    fn response_head_limit() {
        let (client, _) = handshake(&ClientRequest::new("h", "/"));
        let resp = response(ACCEPT, "");
        let client = client.with_max_head(resp.len() - 1);
        assert_eq!(
            client.parse_response(resp.as_bytes()),
            Err(Error::HeadTooLarge {
                limit: resp.len() - 1
            })
        );
        assert_eq!(
            client.parse_response(&resp.as_bytes()[..resp.len() - 1]),
            Ok(None)
        );
        let client = client.with_max_head(resp.len());
        assert!(client.parse_response(resp.as_bytes()).unwrap().is_some());
    }
}
