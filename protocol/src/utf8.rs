//! UTF-8 for text payloads: a `Bytes` known to be valid, and an incremental
//! validator that fails as soon as the bytes so far cannot begin valid UTF-8.

use crate::Error;
use bytes::Bytes;

/// A `Bytes` holding valid UTF-8, so text can be handed out without copying.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    pub fn as_str(&self) -> &str {
        // placeholder until the validator lands
        std::str::from_utf8(&self.0).unwrap_or_default()
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

impl std::fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}
