//! UTF-8 for text payloads: [`Utf8Bytes`], a `Bytes` known to be valid so text
//! is handed out without a copy, and [`Utf8Validator`], which checks a text
//! message piece by piece and fails as soon as the bytes so far cannot be
//! the start of valid UTF-8 — even in the middle of a frame, so a peer that
//! sends garbage is cut off before the rest of a large frame arrives.

use crate::Error;
use bytes::Bytes;
use std::ops::Deref;

/// A `Bytes` that holds valid UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Text from a static string, without allocating.
    pub const fn from_static(text: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(text.as_bytes()))
    }

    /// Wraps bytes this crate has already validated.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor (`TryFrom<Bytes>`, `from_static`, the
        // `From<String>`/`From<&str>` impls and `from_validated`, which the
        // decoder calls only after `Utf8Validator` accepted the whole
        // payload) guarantees the bytes are valid UTF-8, and `Bytes` is
        // immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = Error;
    fn try_from(bytes: Bytes) -> Result<Self, Error> {
        simdutf8::basic::from_utf8(&bytes).map_err(|_| Error::InvalidUtf8)?;
        Ok(Utf8Bytes(bytes))
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Utf8Bytes(Bytes::from(text))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Bytes {
        text.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// Validates UTF-8 fed in pieces of any size.
///
/// Between pieces it keeps at most three bytes: the start of a code point
/// that the next piece completes.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece. Fails when the bytes so far cannot begin
    /// valid UTF-8, whatever might follow.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), Error> {
        if self.partial_len > 0 {
            input = self.complete_partial(input)?;
            if self.partial_len > 0 {
                return Ok(());
            }
        }
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            // `error_len() == None` means the input ends inside a code point
            // that could still be completed: keep its bytes for the next piece.
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Error::InvalidUtf8),
        }
    }

    /// Finishes the code point begun in the previous piece; returns what is
    /// left of `input` after it.
    fn complete_partial<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], Error> {
        let have = usize::from(self.partial_len);
        let width = match self.partial[0] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        let take = (width - have).min(input.len());
        self.partial[have..have + take].copy_from_slice(&input[..take]);
        let candidate = &self.partial[..have + take];
        match simdutf8::compat::from_utf8(candidate) {
            Ok(_) => {
                self.partial_len = 0;
                Ok(&input[take..])
            }
            Err(e) if e.error_len().is_none() && have + take < width => {
                self.partial_len = (have + take) as u8;
                Ok(&input[take..])
            }
            Err(_) => Err(Error::InvalidUtf8),
        }
    }

    /// Whether the text so far ended on a code point boundary; a message
    /// that ends otherwise is invalid.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Checks the end of the message.
    pub fn finish(&mut self) -> Result<(), Error> {
        let complete = self.is_complete();
        self.partial_len = 0;
        if complete {
            Ok(())
        } else {
            Err(Error::InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_feed(bytes: &[u8], cuts: &[usize]) -> Result<(), Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, bytes.len());
            v.feed(&bytes[start..cut])?;
            start = cut;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn fails_fast_mid_message() {
        // "κόσμε" then a byte that can never continue it, then valid text.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        assert_eq!(v.feed(&[0xED, 0xA0]), Err(Error::InvalidUtf8)); // surrogate prefix
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xF4, 0x90]), Err(Error::InvalidUtf8)); // above U+10FFFF
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xC0]), Err(Error::InvalidUtf8)); // overlong lead
        let mut v = Utf8Validator::new();
        v.feed(&[0xF0]).unwrap();
        assert_eq!(v.feed(&[0x80]), Err(Error::InvalidUtf8)); // overlong 4-byte
    }

    #[test]
    fn incomplete_end_is_invalid() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xE2, 0x82]).unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(Error::InvalidUtf8));
    }

    #[test]
    fn code_point_split_byte_by_byte() {
        let text = "a€𝄞ü".as_bytes();
        let cuts: Vec<usize> = (1..text.len()).collect();
        assert_eq!(split_feed(text, &cuts), Ok(()));
    }

    proptest! {
        #[test]
        fn agrees_with_std_for_any_split(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), 0x80u8..0xC0, 0xE0u8..0xF5], 0..64),
            mut cuts in proptest::collection::vec(0usize..64, 0..8),
        ) {
            cuts.sort_unstable();
            let expect = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(split_feed(&bytes, &cuts).is_ok(), expect);
        }

        /// Long enough for the SIMD path, with a bad byte anywhere.
        #[test]
        fn long_inputs_agree_with_std(
            text in "\\PC{40,300}",
            flip in proptest::option::of((0usize..1200, any::<u8>())),
            mut cuts in proptest::collection::vec(0usize..1200, 0..4),
        ) {
            let mut bytes = text.into_bytes();
            if let Some((at, byte)) = flip {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            cuts.sort_unstable();
            let expect = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(split_feed(&bytes, &cuts).is_ok(), expect);
        }

        #[test]
        fn valid_text_any_split(text in "\\PC{0,40}", mut cuts in proptest::collection::vec(0usize..200, 0..8)) {
            cuts.sort_unstable();
            prop_assert_eq!(split_feed(text.as_bytes(), &cuts), Ok(()));
        }

        /// Fail-fast: the validator errs on the first piece after which no
        /// continuation could make the text valid.
        #[test]
        fn fails_at_first_impossible_prefix(
            bytes in proptest::collection::vec(prop_oneof![any::<u8>(), 0x80u8..0xC0], 1..32),
        ) {
            let mut v = Utf8Validator::new();
            for i in 0..bytes.len() {
                let fed = v.feed(&bytes[i..=i]);
                let prefix = &bytes[..=i];
                let could_continue = match std::str::from_utf8(prefix) {
                    Ok(_) => true,
                    Err(e) => e.error_len().is_none(),
                };
                prop_assert_eq!(fed.is_ok(), could_continue, "prefix {:x?}", prefix);
                if fed.is_err() { break; }
            }
        }
    }
}
