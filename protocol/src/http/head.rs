//! Writing HTTP heads: one allocation sized up front, and no caller-provided
//! text that could end a header line early.

use bytes::{Bytes, BytesMut};

use crate::Error;

/// An HTTP head being written into a buffer whose size was computed first.
pub(crate) struct HeadWriter(BytesMut);

impl HeadWriter {
    pub(crate) fn with_capacity(len: usize) -> Self {
        HeadWriter(BytesMut::with_capacity(len))
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Writes `name: value\r\n`; the size is [`header_len`].
    pub(crate) fn header(&mut self, name: &str, value: &[u8]) {
        self.push(name.as_bytes());
        self.push(b": ");
        self.push(value);
        self.push(b"\r\n");
    }

    pub(crate) fn finish(self) -> Bytes {
        debug_assert_eq!(
            self.0.len(),
            self.0.capacity(),
            "head size computed wrongly"
        );
        self.0.freeze()
    }
}

/// Bytes [`HeadWriter::header`] writes.
pub(crate) fn header_len(name: &str, value: &[u8]) -> usize {
    name.len() + 2 + value.len() + 2
}

/// `tchar` of RFC 9110 §5.6.2: what header names, methods and
/// WebSocket subprotocols and extension names are made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty run of `tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `value` can follow `name: ` without ending the line or the head.
/// Control characters other than HTAB are refused: CR and LF would let the
/// value inject headers or a body, and NUL and friends break parsers.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Headers that frame the message. The writers set them from what they
/// know; a second copy from a caller would contradict them, and a peer
/// picking the other one would read the body (or the next message) wrongly.
const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// Checks a caller-provided header before it goes into a head.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), Error> {
    let framing = FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f));
    if !framing && is_token(name.as_bytes()) && is_field_value(value.as_bytes()) {
        Ok(())
    } else {
        Err(Error::InvalidHeader(name.to_owned()))
    }
}

/// Checks every caller-provided header and returns the bytes they take.
pub(crate) fn check_headers<N, V>(headers: &[(N, V)]) -> Result<usize, Error>
where
    N: AsRef<str>,
    V: AsRef<str>,
{
    headers.iter().try_fold(0, |len, (name, value)| {
        let (name, value) = (name.as_ref(), value.as_ref());
        check_header(name, value)?;
        Ok(len + header_len(name, value.as_bytes()))
    })
}

/// Decimal digits of `n`, written into `buf` without going through
/// `fmt`, so the head size can be known before writing.
pub(crate) fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        let mut buf = [0; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(7, &mut buf), b"7");
        assert_eq!(decimal(1234, &mut buf), b"1234");
        assert_eq!(
            decimal(usize::MAX, &mut buf),
            usize::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn header_checks() {
        assert!(check_header("Retry-After", "30").is_ok());
        assert!(check_header("X-Tab", "a\tb").is_ok());
        for (name, value) in [
            ("X-Evil", "a\r\nSet-Cookie: x=1"),
            ("X-Evil", "a\nb"),
            ("X-Evil", "a\rb"),
            ("X-Evil", "a\0b"),
            ("X-Evil\r\nA", "b"),
            ("X Evil", "b"),
            ("X:Evil", "b"),
            ("", "b"),
            ("Content-Length", "0"),
            ("transfer-encoding", "chunked"),
            ("CONNECTION", "keep-alive"),
        ] {
            assert_eq!(
                check_header(name, value),
                Err(Error::InvalidHeader(name.to_owned())),
                "{name:?}: {value:?}"
            );
        }
    }
}
