//! Status codes and their reason phrases: the one table every response
//! this crate writes takes its phrase from.

/// The standard reason phrase of `status`, or `""` for one this table does
/// not know (an empty reason phrase is valid HTTP/1.1).
///
/// It covers every status RFC 9110 §15 defines (with its current names,
/// such as `413 Content Too Large`) and those of RFC 6585.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// Whether `status` can end a response: RFC 9110 §15 puts every valid code
/// in 100–599, and a 1xx is interim, so a client would go on waiting for
/// the answer after it.
pub(crate) fn is_final(status: u16) -> bool {
    (200..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// The statuses uringws sends: the protocol's refusals (checked below),
    /// `100 Continue`, the `101` of an upgrade, and what the engine and the
    /// server answer with (`error_response`, `http_response` and `Reject`
    /// calls in their sources). A new one goes here.
    const SENT: &[u16] = &[
        100, 101, 200, 202, 400, 401, 403, 404, 405, 411, 413, 417, 426, 429, 431, 500, 503,
    ];

    /// RFC 9110 §15 (306 is unused) and RFC 6585 §3–§6.
    const DOCUMENTED: &[u16] = &[
        100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 308, 400,
        401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421,
        422, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 511,
    ];

    #[test]
    fn every_documented_status_has_a_phrase() {
        for &status in DOCUMENTED.iter().chain(SENT) {
            assert!(!reason_phrase(status).is_empty(), "{status}");
        }
        for status in [0, 99, 199, 299, 306, 418, 599, 600, 999, u16::MAX] {
            assert_eq!(reason_phrase(status), "", "{status}");
        }
    }

    #[test]
    fn every_refusal_is_a_sent_status() {
        let refusals = [
            Error::MalformedHttp(httparse::Error::Token),
            Error::HeadTooLarge { limit: 1 },
            Error::TooManyHeaders { limit: 1 },
            Error::MethodNotGet("POST".into()),
            Error::HttpVersion(0),
            Error::MissingHost,
            Error::NotWebSocketUpgrade,
            Error::MissingConnectionUpgrade,
            Error::UnsupportedVersion,
            Error::InvalidKey,
            Error::DuplicateHeader("Host"),
            Error::SubprotocolNotOffered("x".into()),
            Error::InvalidHeader("x".into()),
            Error::TransferEncoding,
            Error::InvalidContentLength,
            Error::ConflictingContentLength,
            Error::BodyTooLarge { limit: 1 },
            Error::UnsupportedExpectation,
            Error::UpgradeWithBody,
            Error::InvalidStatus(42),
        ];
        for error in refusals {
            let status = error.http_status().expect("a refusal has a status");
            assert!(SENT.contains(&status), "{error:?}: {status}");
        }
    }

    #[test]
    fn finals() {
        assert!(!is_final(100) && !is_final(101) && !is_final(199));
        assert!(is_final(200) && is_final(426) && is_final(599));
        assert!(!is_final(0) && !is_final(600) && !is_final(999));
    }
}
