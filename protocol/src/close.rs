//! Close codes (RFC 6455 §7.4) and close frame payloads.

use crate::{utf8::Utf8Bytes, Error};
use bytes::{BufMut, Bytes, BytesMut};

/// A close status code. Any `u16` can be held; [`CloseCode::is_sendable`]
/// says whether it may appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Never sent: stands for "the close frame had no code".
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Never sent: stands for "the connection ended without a close frame".
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// Never sent: stands for "the TLS handshake failed".
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether the code may be carried in a close frame: the defined codes
    /// 1000–1003 and 1007–1014, and 3000–4999 (registered and private use).
    /// 1004 is reserved, 1005/1006/1015 are only for local reporting, and
    /// everything else below 3000 is unassigned.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

/// The payload of a close frame that carried a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: CloseCode,
    pub reason: Utf8Bytes,
}

/// The largest close reason that fits a control frame next to its code.
pub const MAX_REASON_LEN: usize = 123;

impl CloseFrame {
    /// Parses a received close payload: empty means "no status" (`None`);
    /// one byte, a code that may not be sent, or a reason that is not UTF-8
    /// is a protocol error.
    pub fn parse(payload: Bytes) -> Result<Option<CloseFrame>, Error> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(Error::CloseFrameTooShort),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(Error::InvalidCloseCode(code.0));
                }
                let reason = Utf8Bytes::try_from(payload.slice(2..))?;
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }

    /// The payload to put in a close frame for `code` and `reason`.
    pub fn encode_payload(code: CloseCode, reason: &str) -> Result<Bytes, Error> {
        if !code.is_sendable() {
            return Err(Error::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(Error::ControlPayloadTooLong(reason.len() + 2));
        }
        let mut out = BytesMut::with_capacity(2 + reason.len());
        out.put_u16(code.0);
        out.put_slice(reason.as_bytes());
        Ok(out.freeze())
    }
}
