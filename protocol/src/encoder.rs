//! Frame encoding. A server's frames are unmasked, so the payload is never
//! touched: a [`Frame`] is an inline header plus the caller's `Bytes`, ready
//! for a vectored write. A client's frames are masked, which needs a
//! writable payload. [`encode_shared`] puts header and payload in one
//! `Bytes` so a published message is encoded once and sent to many.
//! The `compressed_` forms carry a payload that permessage-deflate
//! compressed, in one frame with RSV1 set (RFC 7692 §6.1).

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

/// The header of a whole compressed message: only data frames may be.
fn compressed_header(
    opcode: OpCode,
    len: usize,
    mask: Option<[u8; 4]>,
) -> Result<FrameHeader, Error> {
    if !matches!(opcode, OpCode::Text | OpCode::Binary) {
        return Err(Error::ReservedBits);
    }
    Ok(FrameHeader {
        rsv1: true,
        ..header(opcode, true, len, mask)?
    })
}

/// A server frame (unmasked) around `payload`, which is shared, not copied.
/// `fin = false` starts or continues a fragmented message.
pub fn server_frame(opcode: OpCode, fin: bool, payload: Bytes) -> Result<Frame, Error> {
    let header = header(opcode, fin, payload.len(), None)?.encode();
    Ok(Frame { header, payload })
}

/// A server frame (unmasked, final, RSV1 set) around a compressed
/// message's `payload`.
pub fn compressed_server_frame(opcode: OpCode, payload: Bytes) -> Result<Frame, Error> {
    let header = compressed_header(opcode, payload.len(), None)?.encode();
    Ok(Frame { header, payload })
}

/// A client frame: masks `payload` in place with `mask`.
pub fn client_frame(
    opcode: OpCode,
    fin: bool,
    payload: BytesMut,
    mask: [u8; 4],
) -> Result<Frame, Error> {
    let header = header(opcode, fin, payload.len(), Some(mask))?;
    Ok(masked(header, payload, mask))
}

/// A final client frame with RSV1 set around a compressed message's
/// `payload`, masked in place with `mask`.
pub fn compressed_client_frame(
    opcode: OpCode,
    payload: BytesMut,
    mask: [u8; 4],
) -> Result<Frame, Error> {
    let header = compressed_header(opcode, payload.len(), Some(mask))?;
    Ok(masked(header, payload, mask))
}

fn masked(header: FrameHeader, mut payload: BytesMut, mask: [u8; 4]) -> Frame {
    apply_mask(&mut payload, mask, 0);
    Frame {
        header: header.encode(),
        payload: payload.freeze(),
    }
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
    let header = header(opcode, fin, payload.len(), Some(mask))?;
    write_masked(out, header, payload, mask);
    Ok(())
}

/// [`write_client_frame`] for a compressed message's `payload`: one final
/// frame with RSV1 set.
pub fn write_compressed_client_frame(
    out: &mut BytesMut,
    opcode: OpCode,
    payload: &[u8],
    mask: [u8; 4],
) -> Result<(), Error> {
    let header = compressed_header(opcode, payload.len(), Some(mask))?;
    write_masked(out, header, payload, mask);
    Ok(())
}

fn write_masked(out: &mut BytesMut, header: FrameHeader, payload: &[u8], mask: [u8; 4]) {
    let header = header.encode();
    out.reserve(header.as_slice().len() + payload.len());
    out.put_slice(header.as_slice());
    let start = out.len();
    out.put_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// A final, unmasked frame with header and payload in one `Bytes`, so every
/// subscriber of a topic gets a reference to the same encoded frame.
pub fn encode_shared(opcode: OpCode, payload: &[u8]) -> Result<Bytes, Error> {
    Ok(shared(header(opcode, true, payload.len(), None)?, payload))
}

/// [`encode_shared`] for a compressed message's `payload`, with RSV1 set.
pub fn encode_shared_compressed(opcode: OpCode, payload: &[u8]) -> Result<Bytes, Error> {
    Ok(shared(
        compressed_header(opcode, payload.len(), None)?,
        payload,
    ))
}

fn shared(header: FrameHeader, payload: &[u8]) -> Bytes {
    let header = header.encode();
    let mut out = BytesMut::with_capacity(header.as_slice().len() + payload.len());
    out.put_slice(header.as_slice());
    out.put_slice(payload);
    out.freeze()
}
