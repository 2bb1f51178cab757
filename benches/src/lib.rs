//! Criterion micro-benchmarks live in `benches/benches/`; this library holds
//! the inputs they share so every bench measures the same bytes.

use bytes::BytesMut;
use uringws_protocol::{encoder::write_client_frame, OpCode};

/// `len` bytes of printable ASCII.
pub fn ascii_text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b' ' + (i % 95) as u8).collect()
}

/// About `len` bytes of text mixing 1- to 4-byte code points, cut on a
/// code point boundary.
pub fn multibyte_text(len: usize) -> Vec<u8> {
    let sample = "Grüße, κόσμε, 世界, 😀 — ";
    let mut text = sample.repeat(len / sample.len() + 1);
    let mut end = len.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.into_bytes()
}

/// A single masked client frame, as a server reads it.
pub fn masked_frame(opcode: OpCode, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    write_client_frame(&mut out, opcode, true, payload, [0x37, 0xfa, 0x21, 0x3d])
        .expect("data frames of any size encode");
    out
}
