//! Complete responses to requests that are not upgrades, and refusals of
//! those that are; every one closes the connection after it.

use std::borrow::Cow;

use bytes::Bytes;

use super::head::{check_header, check_headers, decimal, header_len, HeadWriter};
use super::status::{is_final, reason_phrase};
use crate::Error;

const PLAIN: &str = "text/plain; charset=utf-8";

/// A response to a plain HTTP request: a status, headers and a body,
/// written out by [`encode`](Self::encode) with `Content-Length` and
/// `Connection: close`.
///
/// Nothing here can fail: a header that cannot be sent makes the response
/// a 500 that says which, and [`status`](Self::status) tells the status
/// that is sent.
///
/// ```
/// use uringws_protocol::http::Response;
///
/// let response = Response::bytes(202, "application/json", &b"{\"delivered\":3}"[..])
///     .header("Cache-Control", "no-store");
/// assert_eq!(response.status(), 202);
/// let wire = response.encode();
/// assert!(wire.starts_with(b"HTTP/1.1 202 Accepted\r\n"));
///
/// let broken = Response::text(200, "hi").header("X-Evil", "a\r\nSet-Cookie: b");
/// assert_eq!(broken.status(), 500);
/// assert!(broken.encode().starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    content_type: Option<Cow<'static, str>>,
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    body: Bytes,
}

impl Response {
    /// A response with no body and no `Content-Type`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response. Neither a `&'static str` nor
    /// a `String` is copied.
    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        let body = match body.into() {
            Cow::Borrowed(text) => Bytes::from_static(text.as_bytes()),
            Cow::Owned(text) => Bytes::from(text),
        };
        Response::bytes(status, PLAIN, body)
    }

    /// A response with a body of any type.
    pub fn bytes(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Bytes>,
    ) -> Self {
        Response {
            content_type: Some(content_type.into()),
            body: body.into(),
            ..Response::new(status)
        }
    }

    /// Adds a header, such as `Retry-After`, `WWW-Authenticate` or `Allow`
    /// (which replaces the `Allow: GET` a 405 otherwise carries). A
    /// `Content-Type` sets the content type. `Content-Length`,
    /// `Transfer-Encoding` and `Connection` are the encoder's own and make
    /// the response a 500, like a name that is not a token or a value with
    /// CR, LF or another control character.
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        let (name, value) = (name.into(), value.into());
        if name.eq_ignore_ascii_case("content-type") {
            self.content_type = Some(value);
        } else {
            self.headers.push((name, value));
        }
        self
    }

    /// The status [`encode`](Self::encode) sends: the one asked for, or 500
    /// when that is not a final status (200–599) or a header cannot be sent.
    pub fn status(&self) -> u16 {
        match self.checked() {
            Ok(_) => self.status,
            Err(_) => 500,
        }
    }

    /// The body as given.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Why [`encode`](Self::encode) sends a 500 instead of this response, if
    /// it does: worth a log line, as it is the application's bug.
    ///
    /// # Errors
    /// [`Error::InvalidStatus`] for a status that cannot end a response;
    /// [`Error::InvalidHeader`] for the first header that cannot be sent.
    pub fn check(&self) -> Result<(), Error> {
        self.checked().map(drop)
    }

    /// The complete response, head and body, ready to send.
    pub fn encode(&self) -> Bytes {
        match self.checked() {
            Ok(extra) => build_response(
                self.status,
                self.content_type.as_deref(),
                &self.body,
                &self.headers,
                extra,
            ),
            Err(error) => Response::from(&error).encode(),
        }
    }

    /// [`check`](Self::check), and the bytes the checked headers take.
    fn checked(&self) -> Result<usize, Error> {
        if !is_final(self.status) {
            return Err(Error::InvalidStatus(self.status));
        }
        let content_type = match &self.content_type {
            Some(value) => {
                check_header("Content-Type", value)?;
                header_len("Content-Type", value.as_bytes())
            }
            None => 0,
        };
        Ok(content_type + check_headers(&self.headers)?)
    }
}

impl From<&Error> for Response {
    /// The refusal for `error`: its [`Error::http_status`] with its message
    /// as the body, or a bare 500 for an error that has no status.
    fn from(error: &Error) -> Self {
        match error.http_status() {
            Some(status) => Response::text(status, error.to_string()),
            None => Response::text(500, reason_phrase(500)),
        }
    }
}

/// A complete plain-text response that refuses a request and closes the
/// connection, meant for 4xx and 5xx statuses.
///
/// `426` carries `Sec-WebSocket-Version: 13` and `Upgrade: websocket` so the
/// client knows what to speak; `405` carries `Allow: GET` unless the caller
/// gives its own `Allow` ([`error_response_with_headers`]). A status outside
/// 200–599 cannot end a response and is sent as 500.
pub fn error_response(status: u16, body: &str) -> Bytes {
    // Nothing caller-provided goes into a header here, so nothing can fail.
    build_error(status, body, &[], 0)
}

/// [`error_response`] plus extra headers, such as `Retry-After` on 429 and
/// 503 or `WWW-Authenticate` on 401.
///
/// # Errors
/// [`Error::InvalidHeader`] for a name that is not a token or a value with
/// CR, LF or another control character.
pub fn error_response_with_headers(
    status: u16,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Bytes, Error> {
    let extra = check_headers(headers)?;
    Ok(build_error(status, body, headers, extra))
}

/// A complete response to a plain HTTP request (not an upgrade), such as a
/// health check or a page, after which the server closes the connection.
///
/// # Errors
/// [`Error::InvalidHeader`] for a content type, header name or value that
/// cannot be sent.
pub fn http_response(
    status: u16,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Result<Bytes, Error> {
    check_header("Content-Type", content_type)?;
    let extra = check_headers(headers)? + header_len("Content-Type", content_type.as_bytes());
    Ok(build_response(
        status,
        Some(content_type),
        body,
        headers,
        extra,
    ))
}

/// The response refusing a request that failed with `error`: its
/// [`Error::http_status`] and its message as the body. An error that has no
/// HTTP status (not a handshake error) is answered with a bare 500.
pub fn error_response_for(error: &Error) -> Bytes {
    Response::from(error).encode()
}

/// Writes an error response; `headers` were checked and take `extra` bytes.
fn build_error(status: u16, body: &str, headers: &[(&str, &str)], extra: usize) -> Bytes {
    let extra = extra + header_len("Content-Type", PLAIN.as_bytes());
    build_response(status, Some(PLAIN), body.as_bytes(), headers, extra)
}

/// Writes a response that closes the connection; `content_type` and
/// `headers` were checked and take `extra` bytes together.
fn build_response<N, V>(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    headers: &[(N, V)],
    extra: usize,
) -> Bytes
where
    N: AsRef<str>,
    V: AsRef<str>,
{
    let status = if is_final(status) { status } else { 500 };
    let reason = reason_phrase(status);
    let (connection, specific): (&[u8], &[u8]) = match status {
        // RFC 9110 §15.5.16 and §7.8: a 426 names the protocol in `Upgrade`,
        // and a sender of `Upgrade` lists it in `Connection`.
        426 => (
            b"Upgrade, close",
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        ),
        // The WebSocket endpoints' default; a caller that names its own
        // Allow (a POST-only route) must not get two.
        405 if !headers
            .iter()
            .any(|(n, _)| n.as_ref().eq_ignore_ascii_case("allow")) =>
        {
            (b"close", b"Allow: GET\r\n")
        }
        _ => (b"close", b""),
    };
    // RFC 9110 §6.4.1 and §8.6: a 204 or 304 ends with its head, and a
    // Content-Length would be wrong (204) or claim the length of a body
    // that is not there (304).
    let (body, length): (&[u8], bool) = match status {
        204 | 304 => (b"", false),
        _ => (body, true),
    };
    let mut status_digits = [0; 20];
    let status_digits = decimal(usize::from(status), &mut status_digits);
    let mut length_digits = [0; 20];
    let length_digits = decimal(body.len(), &mut length_digits);

    let len = b"HTTP/1.1 ".len()
        + status_digits.len()
        + 1
        + reason.len()
        + 2
        + if length {
            header_len("Content-Length", length_digits)
        } else {
            0
        }
        + header_len("Connection", connection)
        + specific.len()
        + extra
        + 2
        + body.len();

    let mut head = HeadWriter::with_capacity(len);
    head.push(b"HTTP/1.1 ");
    head.push(status_digits);
    head.push(b" ");
    head.push(reason.as_bytes());
    head.push(b"\r\n");
    if let Some(content_type) = content_type {
        head.header("Content-Type", content_type.as_bytes());
    }
    if length {
        head.header("Content-Length", length_digits);
    }
    head.header("Connection", connection);
    head.push(specific);
    for (name, value) in headers {
        head.header(name.as_ref(), value.as_ref().as_bytes());
    }
    head.push(b"\r\n");
    head.push(body);
    head.finish()
}
#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    /// Parses an error response back with httparse: status, headers, body.
    fn parse(bytes: &Bytes) -> (u16, String, Vec<(String, String)>, String) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = resp.parse(bytes).unwrap() else {
            panic!("incomplete: {}", text(bytes))
        };
        let fields = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect::<Vec<_>>();
        let content_length: usize = fields
            .iter()
            .find(|(n, _)| n == "Content-Length")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert_eq!(bytes.len() - len, content_length);
        (
            resp.code.unwrap(),
            resp.reason.unwrap().to_owned(),
            fields,
            text(bytes)[len..].to_owned(),
        )
    }

    fn has(fields: &[(String, String)], name: &str, value: &str) -> bool {
        fields.iter().any(|(n, v)| n == name && v == value)
    }

    #[test]
    fn reason_phrases() {
        for (status, reason) in [
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (426, "Upgrade Required"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
        ] {
            let resp = error_response(status, "nope");
            let (code, phrase, fields, body) = parse(&resp);
            assert_eq!(
                (code, phrase.as_str(), body.as_str()),
                (status, reason, "nope")
            );
            assert!(has(&fields, "Content-Type", "text/plain; charset=utf-8"));
            assert!(has(&fields, "Content-Length", "4"));
        }
        assert_eq!(reason_phrase(599), "");
        assert!(text(&error_response(599, "")).starts_with("HTTP/1.1 599 \r\n"));
    }

    #[test]
    fn exact_bytes_of_a_404() {
        assert_eq!(
            text(&error_response(404, "no such room\n")),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\
             Connection: close\r\n\r\nno such room\n"
        );
    }

    #[test]
    fn status_specific_headers() {
        let (_, _, fields, _) = parse(&error_response(426, ""));
        assert!(has(&fields, "Sec-WebSocket-Version", "13"));
        assert!(has(&fields, "Upgrade", "websocket"));
        assert!(has(&fields, "Connection", "Upgrade, close"));
        let (_, _, fields, _) = parse(&error_response(405, ""));
        assert!(has(&fields, "Allow", "GET"));
        let own = error_response_with_headers(405, "", &[("Allow", "POST")]).unwrap();
        let (_, _, fields, _) = parse(&own);
        let allows: Vec<_> = fields.iter().filter(|(n, _)| n == "Allow").collect();
        assert_eq!(allows.len(), 1, "{fields:?}");
        assert!(has(&fields, "Allow", "POST"));
        assert!(has(&fields, "Connection", "close"));
        let (_, _, fields, _) = parse(&error_response(400, ""));
        assert!(!fields
            .iter()
            .any(|(n, _)| n == "Allow" || n == "Sec-WebSocket-Version"));
    }

    #[test]
    fn out_of_range_status_is_500() {
        // 1xx too: it is interim, and the client would wait for more.
        for status in [0, 42, 100, 101, 199, 600, 999, 1000, u16::MAX] {
            assert!(text(&error_response(status, ""))
                .starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        }
    }

    #[test]
    fn extra_headers() {
        let resp = error_response_with_headers(503, "busy", &[("Retry-After", "5")]).unwrap();
        let (code, _, fields, body) = parse(&resp);
        assert_eq!((code, body.as_str()), (503, "busy"));
        assert!(has(&fields, "Retry-After", "5"));
        let resp =
            error_response_with_headers(401, "", &[("WWW-Authenticate", "Bearer"), ("X-A", "")])
                .unwrap();
        let (_, _, fields, _) = parse(&resp);
        assert!(has(&fields, "WWW-Authenticate", "Bearer") && has(&fields, "X-A", ""));
    }

    #[test]
    fn extra_headers_cannot_inject() {
        for (name, value) in [
            ("Retry-After", "5\r\nSet-Cookie: a=b"),
            ("Retry-After", "5\n"),
            ("Retry-After\r\n", "5"),
            ("Retry After", "5"),
        ] {
            assert_eq!(
                error_response_with_headers(429, "", &[(name, value)]),
                Err(Error::InvalidHeader(name.to_owned()))
            );
        }
    }

    #[test]
    fn from_errors() {
        let resp = error_response_for(&Error::MethodNotGet("POST".into()));
        let (code, _, fields, body) = parse(&resp);
        assert_eq!(code, 405);
        assert!(has(&fields, "Allow", "GET"));
        assert_eq!(body, "method POST is not GET");
        let (code, ..) = parse(&error_response_for(&Error::HeadTooLarge { limit: 10 }));
        assert_eq!(code, 431);
        let (code, _, _, body) = parse(&error_response_for(&Error::InvalidUtf8));
        assert_eq!((code, body.as_str()), (500, "Internal Server Error"));
    }

    #[test]
    fn body_may_hold_anything() {
        let (_, _, _, body) = parse(&error_response(400, "line\r\n\r\nHTTP/1.1 200 OK\r\n"));
        assert_eq!(body, "line\r\n\r\nHTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn plain_http_response() {
        let resp = http_response(
            200,
            "application/json",
            b"{\"ok\":true}",
            &[("Cache-Control", "no-store")],
        )
        .unwrap();
        let (code, _, fields, body) = parse(&resp);
        assert_eq!(code, 200);
        assert!(has(&fields, "Content-Type", "application/json"));
        assert!(has(&fields, "Content-Length", "11"));
        assert!(has(&fields, "Cache-Control", "no-store"));
        assert!(has(&fields, "Connection", "close"));
        assert_eq!(body, "{\"ok\":true}");
        assert!(matches!(
            http_response(200, "text/html\r\nX: y", b"", &[]),
            Err(Error::InvalidHeader(_))
        ));
    }

    #[test]
    fn publish_answer_has_its_phrase() {
        // It went out as `HTTP/1.1 202 ` once: the table lacked 202.
        let resp = http_response(202, "application/json", b"{}", &[]).unwrap();
        assert!(text(&resp).starts_with("HTTP/1.1 202 Accepted\r\n"));
    }

    #[test]
    fn no_content_and_not_modified_end_with_the_head() {
        for status in [204, 304] {
            let resp = Response::text(status, "ignored").encode();
            let wire = text(&resp);
            assert!(wire.ends_with("\r\n\r\n"), "{wire}");
            assert!(!wire.contains("Content-Length"), "{wire}");
            assert!(!wire.contains("ignored"), "{wire}");
        }
    }

    #[test]
    fn typed_text_response() {
        let resp = Response::text(404, "no such room\n");
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.check(), Ok(()));
        assert_eq!(&resp.body()[..], b"no such room\n");
        assert_eq!(resp.encode(), error_response(404, "no such room\n"));
        let owned = Response::text(404, String::from("no such room\n"));
        assert_eq!(owned.encode(), resp.encode());
    }

    #[test]
    fn typed_bytes_response_with_headers() {
        let resp = Response::bytes(202, "application/json", Bytes::from_static(b"{\"n\":1}"))
            .header("Cache-Control", "no-store")
            .header(String::from("X-Request"), String::from("7"));
        assert_eq!(resp.status(), 202);
        let (code, phrase, fields, body) = parse(&resp.encode());
        assert_eq!(
            (code, phrase.as_str(), body.as_str()),
            (202, "Accepted", "{\"n\":1}")
        );
        assert!(has(&fields, "Content-Type", "application/json"));
        assert!(has(&fields, "Cache-Control", "no-store"));
        assert!(has(&fields, "X-Request", "7"));
        assert!(has(&fields, "Connection", "close"));
        assert_eq!(
            resp.encode(),
            http_response(
                202,
                "application/json",
                b"{\"n\":1}",
                &[("Cache-Control", "no-store"), ("X-Request", "7")]
            )
            .unwrap()
        );
    }

    #[test]
    fn typed_empty_response() {
        let resp = Response::new(200);
        assert_eq!(
            text(&resp.encode()),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn content_type_header_sets_the_content_type() {
        let resp = Response::text(200, "<p>").header("content-type", "text/html");
        let (_, _, fields, _) = parse(&resp.encode());
        let types: Vec<_> = fields.iter().filter(|(n, _)| n == "Content-Type").collect();
        assert_eq!(
            types,
            [&("Content-Type".to_owned(), "text/html".to_owned())]
        );
        let resp = Response::new(200).header("Content-Type", "text/html");
        assert!(has(&parse(&resp.encode()).2, "Content-Type", "text/html"));
    }

    #[test]
    fn typed_status_specific_headers() {
        let (_, _, fields, _) = parse(&Response::new(405).encode());
        assert!(has(&fields, "Allow", "GET"));
        let own = Response::text(405, "use POST").header("allow", "POST");
        let (_, _, fields, _) = parse(&own.encode());
        assert_eq!(
            fields
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("allow"))
                .count(),
            1
        );
        assert!(has(&fields, "allow", "POST"));
        let (_, _, fields, _) = parse(&Response::new(426).encode());
        assert!(has(&fields, "Sec-WebSocket-Version", "13"));
    }

    #[test]
    fn header_that_cannot_be_sent_is_a_500() {
        for (name, value) in [
            ("Retry-After", "5\r\nSet-Cookie: a=b"),
            ("Retry-After", "5\n"),
            ("Retry-After", "a\0b"),
            ("Retry-After\r\n", "5"),
            ("Retry After", "5"),
            ("", "5"),
            ("Content-Length", "99"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
            ("Content-Type", "text/html\r\nX: y"),
        ] {
            let resp = Response::text(429, "slow down").header(name, value);
            assert_eq!(resp.status(), 500, "{name:?}: {value:?}");
            let expected = if name == "Content-Type" {
                "Content-Type"
            } else {
                name
            };
            assert_eq!(resp.check(), Err(Error::InvalidHeader(expected.to_owned())));
            let wire = resp.encode();
            let (code, _, fields, body) = parse(&wire);
            assert_eq!(code, 500);
            assert!(!fields
                .iter()
                .any(|(n, _)| n == "Set-Cookie" || n == "Retry-After"));
            assert!(body.contains("cannot be sent"), "{body}");
            assert!(!body.contains('\r') && !body.contains('\n'), "{body:?}");
        }
        let bad_type = Response::bytes(200, "text/html\nX: y", &b"x"[..]);
        assert_eq!(bad_type.status(), 500);
        assert_eq!(parse(&bad_type.encode()).0, 500);
    }

    #[test]
    fn status_that_cannot_end_a_response_is_a_500() {
        for status in [0, 100, 101, 199, 600, 1000] {
            let resp = Response::text(status, "x");
            assert_eq!(resp.status(), 500);
            assert_eq!(resp.check(), Err(Error::InvalidStatus(status)));
            assert_eq!(parse(&resp.encode()).0, 500);
        }
        assert_eq!(Response::new(599).status(), 599);
    }

    #[test]
    fn from_an_error() {
        let resp = Response::from(&Error::TransferEncoding);
        assert_eq!(resp.status(), 411);
        let (code, phrase, _, body) = parse(&resp.encode());
        assert_eq!((code, phrase.as_str()), (411, "Length Required"));
        assert!(body.contains("Content-Length"), "{body}");
        assert_eq!(resp.encode(), error_response_for(&Error::TransferEncoding));
        for (error, status) in [
            (Error::InvalidContentLength, 400),
            (Error::ConflictingContentLength, 400),
            (Error::BodyTooLarge { limit: 9 }, 413),
            (Error::UnsupportedExpectation, 417),
            (Error::UpgradeWithBody, 400),
            (Error::InvalidUtf8, 500),
        ] {
            assert_eq!(Response::from(&error).status(), status, "{error:?}");
            assert_eq!(parse(&error_response_for(&error)).0, status, "{error:?}");
        }
    }
}
