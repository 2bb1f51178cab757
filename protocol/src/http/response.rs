//! Complete responses to requests that are not upgrades, and refusals of
//! those that are; every one closes the connection after it.

use bytes::Bytes;

use super::head::{check_header, check_headers, decimal, header_len, HeadWriter};
use super::status::reason_phrase;
use crate::Error;

/// A complete plain-text response that refuses a request and closes the
/// connection, meant for 4xx and 5xx statuses.
///
/// `426` carries `Sec-WebSocket-Version: 13` and `Upgrade: websocket` so the
/// client knows what to speak; `405` carries `Allow: GET` unless the caller
/// gives its own `Allow` ([`error_response_with_headers`]). A status outside
/// 100–999 cannot be written and is sent as 500.
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
    Ok(build_response(status, content_type, body, headers, extra))
}

/// The response refusing a handshake that failed with `error`: its
/// [`Error::http_status`] and its message as the body. An error that has no
/// HTTP status (not a handshake error) is answered with a bare 500.
pub fn error_response_for(error: &Error) -> Bytes {
    match error.http_status() {
        Some(status) => error_response(status, &error.to_string()),
        None => error_response(500, reason_phrase(500)),
    }
}

/// Writes an error response; `headers` were checked and take `extra` bytes.
fn build_error(status: u16, body: &str, headers: &[(&str, &str)], extra: usize) -> Bytes {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let extra = extra + header_len("Content-Type", PLAIN.as_bytes());
    build_response(status, PLAIN, body.as_bytes(), headers, extra)
}

/// Writes a response that closes the connection; `content_type` and
/// `headers` were checked and take `extra` bytes together.
fn build_response(
    status: u16,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
    extra: usize,
) -> Bytes {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
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
        405 if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("allow")) => {
            (b"close", b"Allow: GET\r\n")
        }
        _ => (b"close", b""),
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
        + header_len("Content-Length", length_digits)
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
    head.header("Content-Type", content_type.as_bytes());
    head.header("Content-Length", length_digits);
    head.header("Connection", connection);
    head.push(specific);
    for (name, value) in headers {
        head.header(name, value.as_bytes());
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
        for status in [0, 42, 1000, u16::MAX] {
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
}
