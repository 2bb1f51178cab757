//! Frame encoding. A server's frames are unmasked, so the payload is never
//! touched: a [`Frame`] is an inline header plus the caller's `Bytes`, ready
//! for a vectored write. A client's frames are masked, which needs a
//! writable payload. [`encode_shared`] puts header and payload in one
//! `Bytes` so a published message is encoded once and sent to many.

use crate::{
    frame::{EncodedHeader, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD},
    mask::apply_mask,
    Error,
};
use bytes::{BufMut, Bytes, BytesMut};

/// An encoded frame in two pieces, for a vectored write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: EncodedHeader,
    pub payload: Bytes,
}

impl Frame {
    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        self.header.as_slice().len() + self.payload.len()
    }

    /// Header and payload in one buffer (a copy of the payload).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.wire_len());
        out.put_slice(self.header.as_slice());
        out.put_slice(&self.payload);
        out.freeze()
    }
}

fn check_control(opcode: OpCode, len: usize) -> Result<(), Error> {
    if opcode.is_control() && len > MAX_CONTROL_PAYLOAD {
        return Err(Error::ControlPayloadTooLong(len));
    }
    Ok(())
}

fn header(
    opcode: OpCode,
    fin: bool,
    len: usize,
    mask: Option<[u8; 4]>,
) -> Result<FrameHeader, Error> {
    check_control(opcode, len)?;
    if opcode.is_control() && !fin {
        return Err(Error::FragmentedControlFrame);
    }
    Ok(FrameHeader {
        fin,
        mask,
        ..FrameHeader::new(opcode, len as u64)
    })
}

/// A server frame (unmasked) around `payload`, which is shared, not copied.
/// `fin = false` starts or continues a fragmented message.
pub fn server_frame(opcode: OpCode, fin: bool, payload: Bytes) -> Result<Frame, Error> {
    let header = header(opcode, fin, payload.len(), None)?.encode();
    Ok(Frame { header, payload })
}

/// A client frame: masks `payload` in place with `mask`.
pub fn client_frame(
    opcode: OpCode,
    fin: bool,
    mut payload: BytesMut,
    mask: [u8; 4],
) -> Result<Frame, Error> {
    let header = header(opcode, fin, payload.len(), Some(mask))?.encode();
    apply_mask(&mut payload, mask, 0);
    Ok(Frame {
        header,
        payload: payload.freeze(),
    })
}

/// Appends a masked client frame carrying a copy of `payload` to `out`: one
/// buffer for many frames, as a load generator writes them.
pub fn write_client_frame(
    out: &mut BytesMut,
    opcode: OpCode,
    fin: bool,
    payload: &[u8],
    mask: [u8; 4],
) -> Result<(), Error> {
    let header = header(opcode, fin, payload.len(), Some(mask))?.encode();
    out.reserve(header.as_slice().len() + payload.len());
    out.put_slice(header.as_slice());
    let start = out.len();
    out.put_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
    Ok(())
}

/// A final, unmasked frame with header and payload in one `Bytes`, so every
/// subscriber of a topic gets a reference to the same encoded frame.
pub fn encode_shared(opcode: OpCode, payload: &[u8]) -> Result<Bytes, Error> {
    let header = header(opcode, true, payload.len(), None)?.encode();
    let mut out = BytesMut::with_capacity(header.as_slice().len() + payload.len());
    out.put_slice(header.as_slice());
    out.put_slice(payload);
    Ok(out.freeze())
}
