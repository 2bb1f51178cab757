//! Frame headers (RFC 6455 §5.2): parsing with the checks that need no
//! connection context, and encoding with the shortest length form.

use crate::Error;

/// Frame opcodes. The reserved ones (0x3–0x7, 0xB–0xF) are a parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    pub fn from_u8(bits: u8) -> Result<OpCode, Error> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(Error::ReservedOpcode(other)),
        })
    }

    /// Control frames (close, ping, pong) may interleave a fragmented message.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// The largest header: 2 bytes, 8 bytes of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The most a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub rsv1: bool,
    pub rsv2: bool,
    pub rsv3: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// A final, unmasked frame without reserved bits.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Parses a header from the front of `buf`. Returns the header and its
    /// length, or `None` when `buf` does not hold the whole header yet.
    ///
    /// Checks here are those that hold for every connection: reserved
    /// opcodes, the 64-bit length's top bit, and control frames being short
    /// and unfragmented. Masking and reserved bits depend on the role and on
    /// negotiated extensions, so the [`Decoder`](crate::Decoder) checks them.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, Error> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & 0x0F)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut len) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
                _ => return Ok(None),
            },
            127 => match buf.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
                Some(bytes) => {
                    let n = u64::from_be_bytes(bytes);
                    if n >> 63 != 0 {
                        return Err(Error::LengthTopBitSet);
                    }
                    (n, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if opcode.is_control() {
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(Error::ControlFrameTooLong(payload_len));
            }
            if !fin {
                return Err(Error::FragmentedControlFrame);
            }
        }
        let mask = if masked {
            match buf
                .get(len..len + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
            {
                Some(m) => {
                    len += 4;
                    Some(m)
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, len)))
    }

    /// The encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes the header with the shortest length form.
    pub fn encode(&self) -> EncodedHeader {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        bytes[0] = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = 2;
        match self.payload_len {
            n @ 0..=125 => bytes[1] = mask_bit | n as u8,
            n @ 126..=0xFFFF => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                len = 4;
            }
            n => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&n.to_be_bytes());
                len = 10;
            }
        }
        if let Some(mask) = self.mask {
            bytes[len..len + 4].copy_from_slice(&mask);
            len += 4;
        }
        EncodedHeader {
            bytes,
            len: len as u8,
        }
    }
}

/// An encoded frame header held inline, so writing one costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodedHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl EncodedHeader {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for EncodedHeader {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for EncodedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EncodedHeader")
            .field(&self.as_slice())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn needs_more_until_complete() {
        let h = FrameHeader {
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::new(OpCode::Binary, 70_000)
        };
        let enc = h.encode();
        let bytes = enc.as_slice();
        assert_eq!(bytes.len(), 14);
        for cut in 0..bytes.len() {
            assert_eq!(FrameHeader::parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(FrameHeader::parse(bytes), Ok(Some((h, 14))));
    }

    #[test]
    fn shortest_length_form() {
        for (len, hlen, marker) in [
            (0u64, 2, 0u8),
            (125, 2, 125),
            (126, 4, 126),
            (0xFFFF, 4, 126),
            (0x1_0000, 10, 127),
            (u64::MAX >> 1, 10, 127),
        ] {
            let enc = FrameHeader::new(OpCode::Binary, len).encode();
            assert_eq!(enc.as_slice().len(), hlen, "len {len}");
            assert_eq!(enc.as_slice()[1], marker);
            assert_eq!(FrameHeader::new(OpCode::Binary, len).encoded_len(), hlen);
        }
    }

    #[test]
    fn reserved_opcodes_rejected() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0]),
                Err(Error::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frame_rules() {
        for op in [0x8u8, 0x9, 0xA] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 126, 0, 126]),
                Err(Error::ControlFrameTooLong(126))
            );
            assert_eq!(
                FrameHeader::parse(&[op, 0]),
                Err(Error::FragmentedControlFrame)
            );
            assert!(FrameHeader::parse(&[0x80 | op, 125]).is_ok());
        }
    }

    #[test]
    fn length_top_bit_rejected() {
        let mut buf = vec![0x82, 127];
        buf.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(FrameHeader::parse(&buf), Err(Error::LengthTopBitSet));
    }

    #[test]
    fn reserved_bits_are_reported_not_rejected() {
        let (h, _) = FrameHeader::parse(&[0xF1, 0]).unwrap().unwrap();
        assert!(h.rsv1 && h.rsv2 && h.rsv3 && h.fin);
    }

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn header_round_trip(
            opcode in any_opcode(),
            fin: bool, rsv1: bool, rsv2: bool, rsv3: bool,
            mask: Option<[u8; 4]>,
            len in prop_oneof![0u64..=125, 126u64..=0xFFFF, 0x1_0000u64..(1 << 63)],
        ) {
            let control = opcode.is_control();
            let h = FrameHeader {
                fin: fin || control,
                rsv1, rsv2, rsv3, opcode, mask,
                payload_len: if control { len % 126 } else { len },
            };
            let enc = h.encode();
            prop_assert_eq!(enc.as_slice().len(), h.encoded_len());
            prop_assert_eq!(FrameHeader::parse(enc.as_slice()), Ok(Some((h, h.encoded_len()))));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = FrameHeader::parse(&bytes);
        }
    }
}
