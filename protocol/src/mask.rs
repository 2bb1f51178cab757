//! Payload masking (RFC 6455 §5.3).

/// XORs `buf` in place with `mask`, as if `buf` started `offset` bytes into
/// the payload.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[(offset + i) & 3];
    }
}
