//! Where a request's body ends (RFC 9112 §6): a `Content-Length` or
//! nothing. Chunked bodies are refused rather than decoded: the endpoints
//! that take a body are for backends, which can send `Content-Length`.

use crate::handshake::tokens::{list_elements, trim_ows};
use crate::handshake::Request;
use crate::Error;

/// The interim answer to `Expect: 100-continue`, sent before reading a body
/// the client holds back until it hears from the server (curl does for
/// bodies over 1 MiB).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a request's body is framed: the bytes after the head that belong to
/// it, and whether the client waits for [`CONTINUE`] before sending them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFraming {
    /// The body's length in bytes, at most the `max_body` asked with; 0
    /// without a `Content-Length`.
    pub len: usize,
    /// The client sent `Expect: 100-continue` (ignored in HTTP/1.0, as RFC
    /// 9110 §10.1.1 requires). Send [`CONTINUE`] if the body is not all
    /// there yet; once it is, the final answer makes it unnecessary.
    pub expect_continue: bool,
}

/// The body framing of a plain request (not an upgrade:
/// [`Request::upgrade`] refuses any body itself), or the error to refuse it
/// with; each error's [`http_status`](Error::http_status) is the answer.
///
/// # Errors
/// - [`Error::TransferEncoding`] (411) for any `Transfer-Encoding`, even
///   beside a `Content-Length` (which it would override, RFC 9112 §6.3),
///   and in HTTP/1.0, where RFC 9112 §6.1 calls it faulty framing;
/// - [`Error::InvalidContentLength`] (400) for a `Content-Length` that is
///   not digits between optional whitespace; a list such as `5, 5` is
///   refused too (RFC 9110 §8.6 allows either);
/// - [`Error::ConflictingContentLength`] (400) for several that differ;
/// - [`Error::UnsupportedExpectation`] (417) for an `Expect` holding
///   anything but `100-continue` (RFC 9110 §10.1.1);
/// - [`Error::BodyTooLarge`] (413) for a length above `max_body`, however
///   many digits it has.
pub fn body_framing(request: &Request<'_>, max_body: usize) -> Result<BodyFraming, Error> {
    if request.header("transfer-encoding").is_some() {
        return Err(Error::TransferEncoding);
    }
    let declared = declared_length(request)?;
    let mut expect_continue = false;
    for expectation in request.header_values("expect").flat_map(list_elements) {
        if !expectation.eq_ignore_ascii_case(b"100-continue") {
            return Err(Error::UnsupportedExpectation);
        }
        expect_continue = request.minor_version() >= 1;
    }
    match declared {
        Length::Fits(len) if len <= max_body => Ok(BodyFraming {
            len,
            expect_continue,
        }),
        _ => Err(Error::BodyTooLarge { limit: max_body }),
    }
}

/// Whether an upgrade request declares a body, which it must not: its
/// `Content-Length` is absent or 0, and it has no `Transfer-Encoding`.
pub(crate) fn check_no_body(request: &Request<'_>) -> Result<(), Error> {
    if request.header("transfer-encoding").is_some() {
        return Err(Error::UpgradeWithBody);
    }
    match declared_length(request)? {
        Length::Fits(0) => Ok(()),
        _ => Err(Error::UpgradeWithBody),
    }
}

/// A declared body length; `Overflows` is longer than any limit can be.
enum Length {
    Fits(usize),
    Overflows,
}

/// The length all `Content-Length` fields agree on (0 when there is none).
fn declared_length(request: &Request<'_>) -> Result<Length, Error> {
    let mut agreed: Option<&[u8]> = None;
    for value in request.header_values("content-length") {
        let digits = trim_ows(value);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(Error::InvalidContentLength);
        }
        // Compared as written, without leading zeros, so two values too
        // large for any integer type still compare exactly.
        let digits = significant(digits);
        match agreed {
            Some(previous) if previous != digits => return Err(Error::ConflictingContentLength),
            _ => agreed = Some(digits),
        }
    }
    let Some(digits) = agreed else {
        return Ok(Length::Fits(0));
    };
    Ok(digits
        .iter()
        .try_fold(0usize, |n, &d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .map_or(Length::Overflows, Length::Fits))
}

/// Decimal digits without their leading zeros; `0` stays `0`.
fn significant(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&d| d == b'0').count();
    &digits[zeros.min(digits.len() - 1)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::DEFAULT_MAX_HEAD;
    use crate::http::reason_phrase;

    const MAX: usize = 1000;

    /// `POST /publish` with the given header lines.
    fn head(headers: &[&str]) -> String {
        let mut head = String::from("POST /publish?topic=a HTTP/1.1\r\nHost: a\r\n");
        for line in headers {
            head += line;
            head += "\r\n";
        }
        head + "\r\n"
    }

    fn framing(head: &str, max: usize) -> Result<BodyFraming, Error> {
        let request = Request::parse(head.as_bytes(), DEFAULT_MAX_HEAD)
            .unwrap()
            .unwrap();
        body_framing(&request, max)
    }

    fn len_of(headers: &[&str]) -> Result<usize, Error> {
        framing(&head(headers), MAX).map(|f| f.len)
    }

    fn status_of(headers: &[&str]) -> u16 {
        framing(&head(headers), MAX)
            .unwrap_err()
            .http_status()
            .unwrap()
    }

    #[test]
    fn no_body() {
        assert_eq!(
            framing(&head(&[]), MAX),
            Ok(BodyFraming {
                len: 0,
                expect_continue: false
            })
        );
        assert_eq!(len_of(&["Content-Length: 0"]), Ok(0));
        assert_eq!(
            framing(&head(&["Content-Length: 0"]), 0).map(|f| f.len),
            Ok(0)
        );
    }

    #[test]
    fn content_length() {
        assert_eq!(len_of(&["Content-Length: 42"]), Ok(42));
        assert_eq!(len_of(&["content-length: 1000"]), Ok(MAX));
        assert_eq!(len_of(&["CONTENT-LENGTH: 007"]), Ok(7));
        assert_eq!(len_of(&["Content-Length: \t 42 \t"]), Ok(42));
    }

    #[test]
    fn invalid_content_length_is_400() {
        for value in [
            "", " ", "+1", "-1", "1 2", "1,1", "1, 1", "0x10", "1.0", "1e3", "١", "ten", "\"4\"",
        ] {
            let line = format!("Content-Length: {value}");
            assert_eq!(
                len_of(&[&line]),
                Err(Error::InvalidContentLength),
                "{value:?}"
            );
            assert_eq!(status_of(&[&line]), 400);
        }
        // One bad value among good ones.
        assert_eq!(
            len_of(&["Content-Length: 4", "Content-Length: x"]),
            Err(Error::InvalidContentLength)
        );
    }

    #[test]
    fn repeated_content_length() {
        assert_eq!(len_of(&["Content-Length: 5", "Content-Length: 5"]), Ok(5));
        assert_eq!(len_of(&["Content-Length: 5", "content-length: 05 "]), Ok(5));
        let conflict = ["Content-Length: 5", "Content-Length: 6"];
        assert_eq!(len_of(&conflict), Err(Error::ConflictingContentLength));
        assert_eq!(status_of(&conflict), 400);
        // Even when one of them would be refused as too large anyway.
        let huge = format!("Content-Length: {}", "9".repeat(40));
        assert_eq!(
            len_of(&["Content-Length: 5", &huge]),
            Err(Error::ConflictingContentLength)
        );
        let huge2 = format!("Content-Length: {}8", "9".repeat(39));
        assert_eq!(
            len_of(&[&huge, &huge2]),
            Err(Error::ConflictingContentLength)
        );
    }

    #[test]
    fn too_large_is_413() {
        let over = ["Content-Length: 1001"];
        assert_eq!(len_of(&over), Err(Error::BodyTooLarge { limit: MAX }));
        assert_eq!(status_of(&over), 413);
        assert_eq!(
            framing(&head(&["Content-Length: 1"]), 0),
            Err(Error::BodyTooLarge { limit: 0 })
        );
        for digits in [
            u64::MAX.to_string(),
            (u128::from(u64::MAX) + 1).to_string(),
            u128::MAX.to_string(),
            "9".repeat(4000),
        ] {
            let line = format!("Content-Length: {digits}");
            assert_eq!(status_of(&[&line]), 413, "{digits}");
            // No limit makes a value past usize fit.
            let head = head(&[&line]);
            if digits.len() > 20 || digits.parse::<u128>().unwrap() > usize::MAX as u128 {
                assert_eq!(
                    framing(&head, usize::MAX),
                    Err(Error::BodyTooLarge { limit: usize::MAX })
                );
            }
        }
        let max = format!("Content-Length: {}", usize::MAX);
        assert_eq!(
            framing(&head(&[&max]), usize::MAX).map(|f| f.len),
            Ok(usize::MAX)
        );
        // Leading zeros do not make a small value large.
        let padded = format!("Content-Length: {}12", "0".repeat(100));
        assert_eq!(len_of(&[&padded]), Ok(12));
    }

    #[test]
    fn transfer_encoding_is_411() {
        for lines in [
            &["Transfer-Encoding: chunked"][..],
            &["transfer-encoding: CHUNKED"],
            &["TRANSFER-ENCODING: gzip, chunked"],
            &["Transfer-Encoding: identity"],
            &["Transfer-Encoding:"],
            &["Content-Length: 5", "Transfer-Encoding: chunked"],
            &["Transfer-Encoding: chunked", "Content-Length: x"],
        ] {
            assert_eq!(len_of(lines), Err(Error::TransferEncoding), "{lines:?}");
            assert_eq!(status_of(lines), 411);
        }
        let http10 = head(&["Transfer-Encoding: chunked"]).replace("HTTP/1.1", "HTTP/1.0");
        assert_eq!(framing(&http10, MAX), Err(Error::TransferEncoding));
        let message = Error::TransferEncoding.to_string();
        assert!(message.contains("Content-Length") && message.contains("chunked"));
    }

    #[test]
    fn expect_continue() {
        for value in [
            "100-continue",
            "100-Continue",
            "100-CONTINUE",
            " 100-continue ",
            "100-continue, 100-continue",
        ] {
            let line = format!("Expect: {value}");
            assert_eq!(
                framing(&head(&["Content-Length: 10", &line]), MAX),
                Ok(BodyFraming {
                    len: 10,
                    expect_continue: true
                }),
                "{value:?}"
            );
        }
        let lower = head(&["expect: 100-continue", "Content-Length: 10"]);
        assert!(framing(&lower, MAX).unwrap().expect_continue);
        // RFC 9110 §10.1.1: an HTTP/1.0 client cannot be sent a 100.
        let http10 = lower.replace("HTTP/1.1", "HTTP/1.0");
        assert_eq!(
            framing(&http10, MAX),
            Ok(BodyFraming {
                len: 10,
                expect_continue: false
            })
        );
        // An empty list expects nothing.
        assert!(!framing(&head(&["Expect:"]), MAX).unwrap().expect_continue);
    }

    #[test]
    fn other_expectations_are_417() {
        for value in [
            "101-continue",
            "100-continue; x=1",
            "100-continue, foo",
            "foo",
            "100-continuee",
            "100",
        ] {
            let line = format!("Expect: {value}");
            let lines = ["Content-Length: 10", line.as_str()];
            assert_eq!(
                len_of(&lines),
                Err(Error::UnsupportedExpectation),
                "{value:?}"
            );
            assert_eq!(status_of(&lines), 417);
        }
        let split = ["Expect: 100-continue", "Expect: foo"];
        assert_eq!(len_of(&split), Err(Error::UnsupportedExpectation));
        assert_eq!(reason_phrase(417), "Expectation Failed");
    }

    #[test]
    fn framing_errors_before_the_expectation_and_the_size() {
        let lines = ["Expect: foo", "Content-Length: x"];
        assert_eq!(len_of(&lines), Err(Error::InvalidContentLength));
        let lines = ["Expect: foo", "Content-Length: 5000"];
        assert_eq!(len_of(&lines), Err(Error::UnsupportedExpectation));
    }

    #[test]
    fn continue_is_the_100_of_the_table() {
        assert_eq!(
            CONTINUE,
            format!("HTTP/1.1 100 {}\r\n\r\n", reason_phrase(100)).as_bytes()
        );
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(significant(b"0"), b"0");
        assert_eq!(significant(b"000"), b"0");
        assert_eq!(significant(b"0010"), b"10");
        assert_eq!(significant(b"10"), b"10");
    }
}
