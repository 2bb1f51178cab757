//! The server side: parsing the client's request head and validating it as
//! a WebSocket opening handshake (RFC 6455 §4.2.1).

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;

use super::tokens::{has_token, list_elements, parse_extensions, trim_ows, Extension};
use super::{response, MAX_HEADERS, WEBSOCKET_VERSION};
use crate::Error;

/// A parsed HTTP/1.x request head, borrowing the buffer it was parsed from.
///
/// Parsing neither copies the head nor allocates, so a server can look at
/// the path, query and cookies and serve plain HTTP (say `/health`) from
/// the same parse before deciding whether to [`upgrade`](Self::upgrade).
#[derive(Clone)]
pub struct Request<'a> {
    method: &'a str,
    target: &'a str,
    minor_version: u8,
    head_len: usize,
    header_count: usize,
    headers: [httparse::Header<'a>; MAX_HEADERS],
}

impl<'a> Request<'a> {
    /// Parses the request head at the start of `buf`.
    ///
    /// Returns `Ok(None)` while the head is incomplete: read more and call
    /// again with the whole buffer. Bytes after the head (see
    /// [`head_len`](Self::head_len)) are left alone; they may already be
    /// WebSocket frames.
    ///
    /// # Errors
    /// [`Error::HeadTooLarge`] once `buf` holds more than `max_head` bytes
    /// without a complete head, or the head itself is longer;
    /// [`Error::TooManyHeaders`] past [`MAX_HEADERS`];
    /// [`Error::MalformedHttp`] for anything `httparse` refuses.
    pub fn parse(buf: &'a [u8], max_head: usize) -> Result<Option<Self>, Error> {
        // Parsing only the first `max_head` bytes bounds the work per call,
        // and a complete head found there is within the limit by itself.
        let window = &buf[..buf.len().min(max_head)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let head_len = match parsed.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > max_head => {
                return Err(Error::HeadTooLarge { limit: max_head })
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::TooManyHeaders { limit: MAX_HEADERS })
            }
            Err(e) => return Err(Error::MalformedHttp(e)),
        };
        // httparse fills all three before it reports a complete head.
        let (Some(method), Some(target), Some(minor_version)) =
            (parsed.method, parsed.path, parsed.version)
        else {
            return Err(Error::MalformedHttp(httparse::Error::Token));
        };
        let header_count = parsed.headers.len();
        // `parsed` borrowed `headers` only; the slices it found borrow `buf`,
        // so the array can move into the result.
        Ok(Some(Request {
            method,
            target,
            minor_version,
            head_len,
            header_count,
            headers,
        }))
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent, e.g. `/chat?room=1`.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The target up to the first `?`.
    pub fn path(&self) -> &'a str {
        self.target
            .split_once('?')
            .map_or(self.target, |(path, _)| path)
    }

    /// The target after the first `?` (without it), if there is a `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// How many bytes of the buffer the head took, blank line included.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    fn fields(&self) -> &[httparse::Header<'a>] {
        &self.headers[..self.header_count]
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }

    /// The values of every header called `name`, in order: a list-valued
    /// header may be split over several lines.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.fields()
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Every header as `(name, value)`, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.fields().iter().map(|h| (h.name, h.value))
    }

    /// The `Origin` header, which browsers always send; compare it with the
    /// allowed origins to stop other sites' pages from connecting.
    pub fn origin(&self) -> Option<&'a [u8]> {
        self.header("origin")
    }

    /// Whether the client asks for a WebSocket (`Upgrade: websocket`).
    /// Such a request should go to [`upgrade`](Self::upgrade) even if it is
    /// otherwise broken, so the client learns why it was refused.
    pub fn is_upgrade(&self) -> bool {
        self.header_values("upgrade")
            .any(|v| has_token(v, "websocket"))
    }

    /// Validates the request as a WebSocket opening handshake.
    ///
    /// Checks go from the HTTP layer inwards, so the error names the
    /// outermost problem: method (405), HTTP version, a body (an upgrade
    /// has none: `Content-Length` absent or 0, no `Transfer-Encoding`),
    /// `Host`, the `Upgrade`/`Connection` tokens, then
    /// `Sec-WebSocket-Version` (426, which tells an old-draft client what to
    /// speak; such clients send no `Sec-WebSocket-Key`, so checking the key
    /// first would hide that), then the key.
    ///
    /// # Errors
    /// [`Error::MethodNotGet`], [`Error::HttpVersion`],
    /// [`Error::UpgradeWithBody`], [`Error::InvalidContentLength`],
    /// [`Error::ConflictingContentLength`], [`Error::MissingHost`],
    /// [`Error::DuplicateHeader`] (`Host`, `Sec-WebSocket-Version`),
    /// [`Error::NotWebSocketUpgrade`], [`Error::MissingConnectionUpgrade`],
    /// [`Error::UnsupportedVersion`], [`Error::InvalidKey`]. Map them to a
    /// response with [`error_response_for`](super::error_response_for).
    pub fn upgrade(&self) -> Result<Upgrade<'_>, Error> {
        if self.method != "GET" {
            return Err(Error::MethodNotGet(self.method.to_owned()));
        }
        if self.minor_version != 1 {
            return Err(Error::HttpVersion(self.minor_version));
        }
        // RFC 9110 §9.3.1: a GET's content has no meaning and a reason to
        // suspect request smuggling; here the bytes after the head are
        // frames, so a declared body would be read as frames too.
        crate::http::check_no_body(self)?;

        // One pass over the headers; the checks below then run in the order
        // documented above regardless of the order of the header lines.
        let mut hosts = 0u32;
        let mut websocket = false;
        let mut connection_upgrade = false;
        let mut versions = 0u32;
        let mut version: &[u8] = b"";
        let mut keys = 0u32;
        let mut key: &[u8] = b"";
        for field in self.fields() {
            let name = field.name;
            if name.eq_ignore_ascii_case("host") {
                hosts += 1;
            } else if name.eq_ignore_ascii_case("upgrade") {
                websocket |= has_token(field.value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection_upgrade |= has_token(field.value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                versions += 1;
                version = field.value;
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                keys += 1;
                key = field.value;
            }
        }

        match hosts {
            0 => return Err(Error::MissingHost),
            1 => {}
            // RFC 9112 §3.2: more than one Host is answered with 400.
            _ => return Err(Error::DuplicateHeader("Host")),
        }
        if !websocket {
            return Err(Error::NotWebSocketUpgrade);
        }
        if !connection_upgrade {
            return Err(Error::MissingConnectionUpgrade);
        }
        if versions > 1 {
            return Err(Error::DuplicateHeader("Sec-WebSocket-Version"));
        }
        if trim_ows(version) != WEBSOCKET_VERSION.as_bytes() {
            return Err(Error::UnsupportedVersion);
        }
        if keys != 1 {
            return Err(Error::InvalidKey);
        }
        let key = valid_key(trim_ows(key)).ok_or(Error::InvalidKey)?;
        Ok(Upgrade { request: self, key })
    }
}

/// Accepts a key that is base64 of exactly 16 bytes (RFC 6455 §4.1), which
/// is 24 characters with `==` padding. Non-zero trailing bits are tolerated:
/// the accept value hashes the text, not the decoded bytes.
fn valid_key(key: &[u8]) -> Option<&str> {
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    if key.len() != 24 {
        return None;
    }
    let mut decoded = [0u8; 18];
    match LENIENT.decode_slice(key, &mut decoded) {
        // Valid base64 is ASCII, so this never fails; it avoids `unsafe`.
        Ok(16) => std::str::from_utf8(key).ok(),
        _ => None,
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the headers that were parsed; the rest of the array is empty.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("minor_version", &self.minor_version)
            .field("head_len", &self.head_len)
            .field("headers", &self.fields())
            .finish()
    }
}

/// A request that passed [`Request::upgrade`]: a valid WebSocket opening
/// handshake, waiting for the application to accept it with
/// [`response`](Self::response) or refuse it with an error response.
#[derive(Debug, Clone, Copy)]
pub struct Upgrade<'r> {
    request: &'r Request<'r>,
    key: &'r str,
}

impl<'r> Upgrade<'r> {
    /// The request this upgrade came from (path, query, cookies…).
    pub fn request(&self) -> &'r Request<'r> {
        self.request
    }

    /// The client's `Sec-WebSocket-Key`, trimmed; 24 base64 characters.
    pub fn key(&self) -> &'r str {
        self.key
    }

    /// The `Origin` header, if any.
    pub fn origin(&self) -> Option<&'r [u8]> {
        self.request.origin()
    }

    /// The subprotocols offered in all `Sec-WebSocket-Protocol` headers, in
    /// the client's order of preference. Values that are not UTF-8 cannot be
    /// tokens and are skipped.
    pub fn protocols(&self) -> impl Iterator<Item = &'r str> + 'r {
        self.request
            .header_values("sec-websocket-protocol")
            .flat_map(list_elements)
            .filter_map(|p| std::str::from_utf8(p).ok())
    }

    /// The extension offers in all `Sec-WebSocket-Extensions` headers, in
    /// order. Values that are not UTF-8 are skipped, which only means those
    /// offers are not taken up.
    pub fn extensions(&self) -> impl Iterator<Item = Extension<'r>> + 'r {
        self.request
            .header_values("sec-websocket-extensions")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(parse_extensions)
    }

    /// The `101 Switching Protocols` response accepting this handshake.
    ///
    /// `protocol` must be one of [`protocols`](Self::protocols);
    /// `extensions` is the agreed `Sec-WebSocket-Extensions` value, if any.
    ///
    /// # Errors
    /// [`Error::SubprotocolNotOffered`]; [`Error::InvalidHeader`] if
    /// `extensions` holds a control character such as CR or LF.
    pub fn response(
        &self,
        protocol: Option<&str>,
        extensions: Option<&str>,
    ) -> Result<Bytes, Error> {
        self.response_with_headers(protocol, extensions, &[])
    }

    /// Like [`response`](Self::response), plus extra headers such as
    /// `Set-Cookie`.
    ///
    /// # Errors
    /// As [`response`](Self::response); [`Error::InvalidHeader`] for a
    /// header name that is not a token or a value with a control character.
    pub fn response_with_headers(
        &self,
        protocol: Option<&str>,
        extensions: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Bytes, Error> {
        if let Some(chosen) = protocol {
            // Offered values come from parsed header lines, so a match also
            // proves the value is safe to echo.
            if !self.protocols().any(|offered| offered == chosen) {
                return Err(Error::SubprotocolNotOffered(chosen.to_owned()));
            }
        }
        response::switching_protocols(self.key.as_bytes(), protocol, extensions, headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::DEFAULT_MAX_HEAD;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /// The RFC 6455 §1.2 example request with one header swapped out,
    /// removed (`None` value) or added.
    fn request_with(changes: &[(&str, Option<&str>)]) -> String {
        let mut headers: Vec<(String, String)> = [
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Origin", "http://example.com"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Version", "13"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        for (name, value) in changes {
            match (headers.iter().position(|(n, _)| n == name), value) {
                (Some(i), Some(v)) => headers[i].1 = v.to_string(),
                (Some(i), None) => {
                    headers.remove(i);
                }
                (None, Some(v)) => headers.push((name.to_string(), v.to_string())),
                (None, None) => {}
            }
        }
        let mut head = String::from("GET /chat?room=1&x=%20 HTTP/1.1\r\n");
        for (n, v) in headers {
            head += &format!("{n}: {v}\r\n");
        }
        head + "\r\n"
    }

    fn parse(head: &str) -> Request<'_> {
        Request::parse(head.as_bytes(), DEFAULT_MAX_HEAD)
            .unwrap()
            .unwrap()
    }

    fn upgrade_error(head: &str) -> Error {
        parse(head).upgrade().unwrap_err()
    }

    #[test]
    fn rfc_example_request() {
        let head = request_with(&[]);
        let req = parse(&head);
        assert_eq!(req.method(), "GET");
        assert_eq!(req.target(), "/chat?room=1&x=%20");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1&x=%20"));
        assert_eq!(req.minor_version(), 1);
        assert_eq!(req.head_len(), head.len());
        assert_eq!(req.header("HOST"), Some(&b"server.example.com"[..]));
        assert_eq!(req.header("x-missing"), None);
        assert_eq!(req.origin(), Some(&b"http://example.com"[..]));
        assert_eq!(req.headers().count(), 7);
        assert_eq!(
            req.headers().next(),
            Some(("Host", &b"server.example.com"[..]))
        );
        assert!(req.is_upgrade());

        let up = req.upgrade().unwrap();
        assert_eq!(up.key(), KEY);
        assert_eq!(up.origin(), Some(&b"http://example.com"[..]));
        assert_eq!(up.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        assert_eq!(up.extensions().count(), 0);
        assert_eq!(up.request().path(), "/chat");

        let resp = up.response(Some("chat"), None).unwrap();
        assert_eq!(
            &resp[..],
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
            )
            .as_bytes()
        );
    }

    #[test]
    fn path_and_query_forms() {
        let head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!((parse(head).path(), parse(head).query()), ("/", None));
        let head = "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!((parse(head).path(), parse(head).query()), ("/a", Some("")));
        let head = "GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            (parse(head).path(), parse(head).query()),
            ("/a", Some("b?c"))
        );
    }

    #[test]
    fn plain_get_is_not_an_upgrade() {
        let head = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
        let req = parse(head);
        assert!(!req.is_upgrade());
        let err = req.upgrade().unwrap_err();
        assert_eq!(err, Error::NotWebSocketUpgrade);
        assert_eq!(err.http_status(), Some(400));
    }

    #[test]
    fn method_must_be_get() {
        let head = request_with(&[]).replacen("GET", "POST", 1);
        let err = upgrade_error(&head);
        assert_eq!(err, Error::MethodNotGet("POST".into()));
        assert_eq!(err.http_status(), Some(405));
    }

    #[test]
    fn http_1_0_cannot_upgrade() {
        let head = request_with(&[]).replacen("HTTP/1.1", "HTTP/1.0", 1);
        let err = upgrade_error(&head);
        assert_eq!(err, Error::HttpVersion(0));
        assert_eq!(err.http_status(), Some(400));
    }

    /// The RFC example request with extra header lines at its end.
    fn request_plus(lines: &[&str]) -> String {
        let extra: String = lines.iter().map(|line| format!("{line}\r\n")).collect();
        request_with(&[]).replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1)
    }

    #[test]
    fn upgrade_has_no_body() {
        for lines in [
            &["Content-Length: 1"][..],
            &["Content-Length: 99999999999999999999999999"],
            &["Transfer-Encoding: chunked"],
            &["transfer-encoding: identity", "Content-Length: 0"],
            &[
                "Content-Length: 0",
                "Content-Length: 0",
                "Transfer-Encoding:",
            ],
        ] {
            let err = upgrade_error(&request_plus(lines));
            assert_eq!(err, Error::UpgradeWithBody, "{lines:?}");
            assert_eq!(err.http_status(), Some(400));
        }
        for (lines, expected) in [
            (&["Content-Length: x"][..], Error::InvalidContentLength),
            (
                &["Content-Length: 0", "Content-Length: 1"],
                Error::ConflictingContentLength,
            ),
        ] {
            let err = upgrade_error(&request_plus(lines));
            assert_eq!(err, expected, "{lines:?}");
            assert_eq!(err.http_status(), Some(400));
        }
        // Some clients say so explicitly.
        for lines in [
            &["Content-Length: 0"][..],
            &["Content-Length: 000"],
            &["Content-Length:  0 ", "content-length: 0"],
        ] {
            assert!(parse(&request_plus(lines)).upgrade().is_ok(), "{lines:?}");
        }
        // The method is still the outermost problem.
        let head = request_plus(&["Content-Length: 5"]).replacen("GET", "POST", 1);
        assert_eq!(upgrade_error(&head), Error::MethodNotGet("POST".into()));
    }

    #[test]
    fn host_required_once() {
        let err = upgrade_error(&request_with(&[("Host", None)]));
        assert_eq!(err, Error::MissingHost);
        assert_eq!(err.http_status(), Some(400));
        let err = upgrade_error(&request_with(&[("HOST", Some("other"))]));
        assert_eq!(err, Error::DuplicateHeader("Host"));
        assert_eq!(err.http_status(), Some(400));
    }

    #[test]
    fn upgrade_header_needs_websocket() {
        for change in [None, Some("h2c"), Some(""), Some("websockets")] {
            let err = upgrade_error(&request_with(&[("Upgrade", change)]));
            assert_eq!(err, Error::NotWebSocketUpgrade, "{change:?}");
            assert_eq!(err.http_status(), Some(400));
        }
        for ok in [
            "WebSocket",
            "h2c, websocket",
            " websocket ",
            "foo,WEBSOCKET",
        ] {
            assert!(
                parse(&request_with(&[("Upgrade", Some(ok))]))
                    .upgrade()
                    .is_ok(),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn connection_header_needs_upgrade() {
        for change in [None, Some("keep-alive"), Some("upgrades"), Some("")] {
            let err = upgrade_error(&request_with(&[("Connection", change)]));
            assert_eq!(err, Error::MissingConnectionUpgrade, "{change:?}");
            assert_eq!(err.http_status(), Some(400));
        }
        for ok in [
            "keep-alive, Upgrade",
            "upgrade",
            "UPGRADE",
            "keep-alive,upgrade",
            "  Upgrade  ,close",
        ] {
            assert!(
                parse(&request_with(&[("Connection", Some(ok))]))
                    .upgrade()
                    .is_ok(),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn repeated_list_headers_combine() {
        // `Connection: keep-alive` + `Connection: Upgrade` on separate lines.
        let head = request_with(&[("Connection", Some("keep-alive"))]).replacen(
            "\r\n\r\n",
            "\r\nconnection: Upgrade\r\nUpgrade: h2c\r\nSec-WebSocket-Protocol: third\r\n\r\n",
            1,
        );
        let req = parse(&head);
        let up = req.upgrade().unwrap();
        assert_eq!(
            up.protocols().collect::<Vec<_>>(),
            ["chat", "superchat", "third"]
        );
        assert_eq!(req.header_values("connection").count(), 2);
        assert_eq!(req.header("connection"), Some(&b"keep-alive"[..]));
    }

    #[test]
    fn header_names_any_case() {
        let head = request_with(&[])
            .replace("Sec-WebSocket-Key", "sec-websocket-key")
            .replace("Sec-WebSocket-Version", "SEC-WEBSOCKET-VERSION")
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("Host:", "hOsT:");
        assert_eq!(parse(&head).upgrade().unwrap().key(), KEY);
    }

    #[test]
    fn version_must_be_13() {
        for change in [Some("12"), Some("8"), Some("13, 8"), Some(""), None] {
            let err = upgrade_error(&request_with(&[("Sec-WebSocket-Version", change)]));
            assert_eq!(err, Error::UnsupportedVersion, "{change:?}");
            assert_eq!(err.http_status(), Some(426));
            let resp = super::super::error_response_for(&err);
            let text = std::str::from_utf8(&resp).unwrap();
            assert!(
                text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
                "{text}"
            );
            assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
            assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
        }
        let head =
            request_with(&[]).replacen("\r\n\r\n", "\r\nSec-WebSocket-Version: 13\r\n\r\n", 1);
        assert_eq!(
            upgrade_error(&head),
            Error::DuplicateHeader("Sec-WebSocket-Version")
        );
    }

    #[test]
    fn version_checked_before_key() {
        // A hixie-76 client sends neither; it should learn to speak 13.
        let head = request_with(&[("Sec-WebSocket-Version", None), ("Sec-WebSocket-Key", None)]);
        assert_eq!(upgrade_error(&head), Error::UnsupportedVersion);
    }

    #[test]
    fn key_must_be_16_bytes_of_base64() {
        for change in [
            None,
            Some(""),
            Some("dGhlIHNhbXBsZSBub25jZQ"),   // no padding
            Some("dGhlIHNhbXBsZSBub25jZQ="),  // 23 characters
            Some("dGhlIHNhbXBsZSBub25jZXg="), // 17 bytes
            Some("dGhlIHNhbXBsZSBub25jZXh4"), // 18 bytes
            Some("dGhlIHNhbXBsZSBub25j"),     // 15 bytes
            Some("dGhlIHNhbXBsZSBub25jZQ==="),
            Some("dGhlIHNhbXBsZSBub25jZ!=="), // not base64
            Some("dGhlIHNhbXBs ZSBub25jZQ="),
            Some("dGhlIHNhbXBsZSBub25jZQ-_"), // URL-safe alphabet
        ] {
            let err = upgrade_error(&request_with(&[("Sec-WebSocket-Key", change)]));
            assert_eq!(err, Error::InvalidKey, "{change:?}");
            assert_eq!(err.http_status(), Some(400));
        }
        // Two keys, even equal ones.
        let head = request_with(&[]).replacen(
            "\r\n\r\n",
            &format!("\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"),
            1,
        );
        assert_eq!(upgrade_error(&head), Error::InvalidKey);
        // Trailing bits that are not zero still name 16 bytes.
        let head = request_with(&[("Sec-WebSocket-Key", Some("dGhlIHNhbXBsZSBub25jZR=="))]);
        assert_eq!(
            parse(&head).upgrade().unwrap().key(),
            "dGhlIHNhbXBsZSBub25jZR=="
        );
    }

    #[test]
    fn incremental_parse_byte_by_byte() {
        let head = request_with(&[]);
        let mut wire = head.clone().into_bytes();
        wire.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]); // a frame right behind the head
        for end in 0..head.len() {
            assert!(
                Request::parse(&wire[..end], DEFAULT_MAX_HEAD)
                    .unwrap()
                    .is_none(),
                "at {end}"
            );
        }
        for end in head.len()..=wire.len() {
            let req = Request::parse(&wire[..end], DEFAULT_MAX_HEAD)
                .unwrap()
                .unwrap();
            assert_eq!(req.head_len(), head.len());
            assert!(req.upgrade().is_ok());
        }
    }

    #[test]
    fn head_too_large() {
        let head = request_with(&[]);
        let limit = head.len() - 1;
        // Complete but over the limit.
        let err = Request::parse(head.as_bytes(), limit).unwrap_err();
        assert_eq!(err, Error::HeadTooLarge { limit });
        assert_eq!(err.http_status(), Some(431));
        // Exactly at the limit is fine, with or without bytes behind it.
        assert!(Request::parse(head.as_bytes(), head.len())
            .unwrap()
            .is_some());
        let more = head.clone() + "trailing";
        assert!(Request::parse(more.as_bytes(), head.len())
            .unwrap()
            .is_some());
        // Incomplete: fine up to the limit, an error past it.
        let partial = &head.as_bytes()[..head.len() - 2];
        assert!(Request::parse(partial, partial.len()).unwrap().is_none());
        assert_eq!(
            Request::parse(partial, partial.len() - 1).unwrap_err(),
            Error::HeadTooLarge {
                limit: partial.len() - 1
            }
        );
        // A peer that never ends its head.
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(DEFAULT_MAX_HEAD));
        assert_eq!(
            Request::parse(endless.as_bytes(), DEFAULT_MAX_HEAD).unwrap_err(),
            Error::HeadTooLarge {
                limit: DEFAULT_MAX_HEAD
            }
        );
    }

    #[test]
    fn too_many_headers() {
        let many = |n: usize| {
            let mut head = String::from("GET / HTTP/1.1\r\n");
            for i in 0..n {
                head += &format!("X-{i}: v\r\n");
            }
            head + "\r\n"
        };
        assert_eq!(parse(&many(MAX_HEADERS)).headers().count(), MAX_HEADERS);
        let err = Request::parse(many(MAX_HEADERS + 1).as_bytes(), DEFAULT_MAX_HEAD).unwrap_err();
        assert_eq!(err, Error::TooManyHeaders { limit: MAX_HEADERS });
        assert_eq!(err.http_status(), Some(431));
    }

    #[test]
    fn malformed_http() {
        for bad in [
            "GET / HTTP/2.0\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ] {
            let err = Request::parse(bad.as_bytes(), DEFAULT_MAX_HEAD).unwrap_err();
            assert!(matches!(err, Error::MalformedHttp(_)), "{bad:?}: {err:?}");
            assert_eq!(err.http_status(), Some(400));
        }
    }

    #[test]
    fn subprotocol_must_have_been_offered() {
        let head = request_with(&[]);
        let req = parse(&head);
        let up = req.upgrade().unwrap();
        let err = up.response(Some("graphql-ws"), None).unwrap_err();
        assert_eq!(err, Error::SubprotocolNotOffered("graphql-ws".into()));
        assert_eq!(err.http_status(), Some(500));
        // Case matters: browsers compare the answer exactly.
        assert!(up.response(Some("Chat"), None).is_err());
        assert!(up.response(Some("superchat"), None).is_ok());
        assert!(up.response(None, None).is_ok());

        let head = request_with(&[("Sec-WebSocket-Protocol", None)]);
        let req = parse(&head);
        let up = req.upgrade().unwrap();
        assert_eq!(up.protocols().count(), 0);
        assert!(up.response(Some("chat"), None).is_err());
    }

    #[test]
    fn extension_offers() {
        let offer = "permessage-deflate; client_max_window_bits, permessage-deflate; \
                     server_no_context_takeover; server_max_window_bits=\"10\"";
        let head = request_with(&[("Sec-WebSocket-Extensions", Some(offer))]);
        let req = parse(&head);
        let up = req.upgrade().unwrap();
        let offers: Vec<_> = up
            .extensions()
            .map(|e| (e.name(), e.params().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            offers,
            [
                ("permessage-deflate", vec![("client_max_window_bits", None)]),
                (
                    "permessage-deflate",
                    vec![
                        ("server_no_context_takeover", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
            ]
        );
        let resp = up
            .response(None, Some("permessage-deflate; server_max_window_bits=10"))
            .unwrap();
        assert!(resp.ends_with(
            b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n\r\n"
        ));
    }

    #[test]
    fn response_rejects_injection() {
        let head = request_with(&[]);
        let req = parse(&head);
        let up = req.upgrade().unwrap();
        let err = up
            .response(None, Some("permessage-deflate\r\nSet-Cookie: a=b"))
            .unwrap_err();
        assert_eq!(err, Error::InvalidHeader("Sec-WebSocket-Extensions".into()));
        assert!(up
            .response_with_headers(None, None, &[("Set-Cookie", "a=b\r\n\r\n<html>")])
            .is_err());
        assert!(up
            .response_with_headers(None, None, &[("Set\r\nCookie", "a=b")])
            .is_err());
        let resp = up
            .response_with_headers(None, None, &[("Set-Cookie", "a=b; HttpOnly")])
            .unwrap();
        assert!(resp.ends_with(b"\r\nSet-Cookie: a=b; HttpOnly\r\n\r\n"));
    }

    #[test]
    fn debug_shows_only_parsed_headers() {
        let head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let text = format!("{:?}", parse(head));
        assert_eq!(text.matches("Header").count(), 1, "{text}");
    }
}
