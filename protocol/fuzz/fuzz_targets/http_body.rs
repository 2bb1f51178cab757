//! Arbitrary bytes as a plain request's head, framed against a limit taken
//! from the input, and as the parts of a response: no panic, a framed body
//! is never over the limit and has the length the headers say, every
//! refusal has a status, and every encoded response, whatever went into
//! it, is one well-formed head with the status `status()` reports.
//!
//! Input: one byte choosing the limit, two bytes of status, then the head;
//! the same bytes split at 0xFF (never in UTF-8) give a header name, its
//! value, a content type and a body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringws_protocol::handshake::Request;
use uringws_protocol::http::{body_framing, Response};

const MAX_HEAD: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let [scale, status_lo, status_hi, rest @ ..] = data else {
        return;
    };
    // Limits of 0 to 16 MiB - 1, and none at all, so short lengths in the
    // input land on both sides of the limit.
    let max = match *scale {
        u8::MAX => usize::MAX,
        s => (1usize << (s % 25)) - 1,
    };
    let status = u16::from_le_bytes([*status_lo, *status_hi]);

    let request = match Request::parse(rest, MAX_HEAD) {
        Ok(Some(request)) => Some(request),
        Ok(None) => None,
        Err(e) => {
            assert!(e.http_status().is_some(), "{e:?} has no status");
            None
        }
    };
    if let Some(request) = request.as_ref().filter(|r| !r.is_upgrade()) {
        match body_framing(request, max) {
            Ok(framing) => {
                assert!(framing.len <= max, "{} > {max}", framing.len);
                assert_eq!(framing.len, declared(request), "{request:?}");
                assert!(request.minor_version() >= 1 || !framing.expect_continue);
                assert!(request.header("transfer-encoding").is_none());
            }
            Err(e) => {
                let refusal = e
                    .http_status()
                    .unwrap_or_else(|| panic!("{e:?} has no status"));
                assert!(matches!(refusal, 400 | 411 | 413 | 417), "{e:?}: {refusal}");
                let response = Response::from(&e);
                assert_eq!(response.status(), refusal);
                assert_well_formed(&response.encode(), refusal);
            }
        }
    }

    // A response built from whatever the input holds, plus the request's
    // own header lines when it parsed.
    let mut parts = rest.split(|&b| b == 0xff);
    let mut text = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (name, value, content_type) = (text(), text(), text());
    let body = parts.next().unwrap_or_default().to_vec();
    let mut response = if content_type.is_empty() {
        Response::text(status, String::from_utf8_lossy(&body).into_owned())
    } else {
        Response::bytes(status, content_type, body)
    };
    response = response.header(name, value);
    if let Some(request) = &request {
        for (name, value) in request.headers().take(4) {
            let value = String::from_utf8_lossy(value).into_owned();
            response = response.header(name.to_owned(), value);
        }
    }
    let sent = response.status();
    match response.check() {
        Ok(()) => assert_eq!(sent, status),
        Err(e) => assert_eq!(sent, 500, "{e:?}"),
    }
    assert_well_formed(&response.encode(), sent);
});

/// The body length the Content-Length fields say, read independently of
/// the crate: they all agree (or `body_framing` would have refused).
fn declared(request: &Request<'_>) -> usize {
    let mut declared = None;
    for value in request.header_values("content-length") {
        let text = std::str::from_utf8(value).expect("accepted Content-Length is ASCII");
        let n: u128 = text
            .trim_matches([' ', '\t'])
            .parse()
            .expect("accepted Content-Length is a number below the limit");
        assert!(
            declared.is_none_or(|d| d == n),
            "accepted conflicting lengths"
        );
        declared = Some(n);
    }
    usize::try_from(declared.unwrap_or(0)).expect("below the limit")
}

/// One complete response with `status`: `HTTP/1.1 NNN ` first, header lines
/// without a bare CR or LF, each a token, a colon and a value, one
/// Content-Length that counts the body exactly (none on 204 and 304), and
/// `Connection: close`.
fn assert_well_formed(wire: &[u8], status: u16) {
    let prefix = format!("HTTP/1.1 {status:03} ");
    assert!(
        wire.starts_with(prefix.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(wire)
    );
    assert!((200..=599).contains(&status), "{status}");
    let end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the head ends");
    let (head, body) = (&wire[..end], &wire[end + 4..]);
    let lines: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    let mut content_lengths = Vec::new();
    let mut connection_close = false;
    for (i, &line) in lines.iter().enumerate() {
        // Every line but the last ends in CR before the LF that split it;
        // the last had its CRLF cut off with the blank line.
        let line = if i + 1 == lines.len() {
            line
        } else {
            line.strip_suffix(b"\r").expect("LF only after CR")
        };
        assert!(!line.contains(&b'\r'), "bare CR in {line:?}");
        if i == 0 {
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').expect("name: value");
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        assert!(!name.is_empty(), "empty name");
        assert!(
            name.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "name {name:?} is not a token"
        );
        assert!(
            value.iter().all(|&b| b >= 0x20 && b != 0x7f || b == b'\t'),
            "control character in {value:?}"
        );
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if name.eq_ignore_ascii_case(b"content-length") {
            content_lengths.push(value.to_vec());
        }
        if name.eq_ignore_ascii_case(b"connection") {
            assert!(!connection_close, "two Connection headers");
            connection_close = value.ends_with(b"close");
        }
        assert!(!name.eq_ignore_ascii_case(b"transfer-encoding"));
    }
    assert!(connection_close, "no Connection: close");
    if matches!(status, 204 | 304) {
        assert!(content_lengths.is_empty() && body.is_empty());
    } else {
        assert_eq!(content_lengths, [body.len().to_string().into_bytes()]);
    }
    // And a real parser agrees on the status.
    let mut headers = [httparse::EMPTY_HEADER; 80];
    let mut parsed = httparse::Response::new(&mut headers);
    assert_eq!(parsed.parse(wire), Ok(httparse::Status::Complete(end + 4)));
    assert_eq!(parsed.code, Some(status));
}
