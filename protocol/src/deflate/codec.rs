//! One message's payload compressed and inflated (RFC 7692 §7.2): a raw
//! DEFLATE stream flushed at the end of each message, the flush's empty
//! stored block taken off by the sender and put back by the receiver.

use super::zlib::RawDeflate;
use crate::Error;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The end of the empty stored block a sync flush writes (§7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Inflated bytes first made room for: a small compressed message cannot
/// make us allocate more than this beyond what it really holds, and a
/// large one at most twice it, and never more than its limit.
const INFLATE_STEP: usize = 16 << 10;

/// A compressor for one direction of one connection (or, without context
/// takeover, for any number of them in turn).
pub struct Compressor {
    stream: Stream,
    no_context_takeover: bool,
}

/// flate2 on zlib-rs, or C zlib for its memory level (smaller per
/// connection, and faster to reset per message for a shared stream).
enum Stream {
    Flate(Compress),
    Zlib(RawDeflate),
}

impl Compressor {
    /// `window_bits` 9..=15 (lower values are taken as 9, as zlib does);
    /// `level` 0..=9. flate2 on zlib-rs, whose memLevel is 8: 250–380 KB,
    /// and no C code; the engine's streams use
    /// [`with_mem_level`](Self::with_mem_level).
    pub fn new(window_bits: u8, no_context_takeover: bool, level: u32) -> Compressor {
        let bits = window_bits.clamp(9, 15);
        Compressor {
            stream: Stream::Flate(Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                bits,
            )),
            no_context_takeover,
        }
    }

    /// As [`new`](Self::new), on C zlib with memLevel `mem_level` (1..=9):
    /// 2^(`mem_level` + 9) bytes of hash chains and match buffer, plus
    /// twice the window, for a stream of one connection's (about 8 KB at
    /// window 2^9, memLevel 1). Falls back on [`new`](Self::new) if zlib
    /// cannot allocate.
    pub fn with_mem_level(
        window_bits: u8,
        mem_level: u8,
        no_context_takeover: bool,
        level: u32,
    ) -> Compressor {
        match RawDeflate::new(window_bits, mem_level, level) {
            Some(stream) => Compressor {
                stream: Stream::Zlib(stream),
                no_context_takeover,
            },
            None => Compressor::new(window_bits, no_context_takeover, level),
        }
    }

    /// `payload` compressed as one message, appended to `out`.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if payload.is_empty() {
            // An empty stored block (§7.2.3.6). zlib writes nothing for a
            // second flush with no input between, and a receiver adding
            // the tail to nothing would be left inside a block.
            out.push(0x00);
            return;
        }
        let start = out.len();
        match &mut self.stream {
            Stream::Flate(stream) => flate_compress(stream, payload, out),
            Stream::Zlib(stream) => stream.compress(payload, out),
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.no_context_takeover {
            self.reset();
        }
    }

    /// Forgets the context: the next message refers to nothing before it,
    /// which a peer keeping context reads as well. For when the peer's
    /// window and ours part (a message we compressed was not sent so).
    pub fn reset(&mut self) {
        match &mut self.stream {
            Stream::Flate(stream) => stream.reset(),
            Stream::Zlib(stream) => stream.reset(),
        }
    }
}

/// `input` compressed and sync-flushed, appended to `out`.
fn flate_compress(stream: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) {
    loop {
        // Room for the input stored as it is, and the flush.
        out.reserve(input.len() + input.len() / 64 + 16);
        let before = stream.total_in();
        // A raw stream with a sync flush cannot fail on any input.
        let status = stream.compress_vec(input, out, FlushCompress::Sync);
        debug_assert!(status.is_ok(), "deflate: {status:?}");
        let used = (stream.total_in() - before) as usize;
        input = &input[used..];
        // The flush is complete once all went in and room is left.
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
}

/// A decompressor for one direction of one connection (or, without
/// context takeover, for any number of them in turn).
pub struct Decompressor {
    stream: Decompress,
    no_context_takeover: bool,
    /// A block with BFINAL ended the stream: a new one starts with the
    /// next message.
    ended: bool,
}

impl Decompressor {
    /// `window_bits` 8..=15: the peer's window; 8 is read with 9, which
    /// holds it.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Decompressor {
        Decompressor {
            stream: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            no_context_takeover,
            ended: false,
        }
    }

    /// Inflates part of one message's compressed payload (a frame's, in
    /// order; `last` with the final frame's), appending to `out`, which
    /// holds what the message inflated to so far. Past `limit` bytes of it,
    /// it stops with [`Error::MessageTooLarge`] before allocating more;
    /// data that is not DEFLATE fails with [`Error::BadCompressedData`].
    /// After either the decompressor must be dropped or [`reset`](Self::reset).
    pub fn decompress(
        &mut self,
        input: &[u8],
        last: bool,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.inflate(input, limit, out)?;
        if last {
            if !self.ended {
                self.inflate(&TAIL, limit, out)?;
            }
            if self.no_context_takeover || self.ended {
                self.reset();
            }
        }
        Ok(())
    }

    /// Forgets the stream: the next message starts a new one.
    pub fn reset(&mut self) {
        self.stream.reset(false);
        self.ended = false;
    }

    fn inflate(&mut self, mut input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        loop {
            if self.ended {
                // Nothing of the message may follow a final block.
                return match input.is_empty() {
                    true => Ok(()),
                    false => Err(Error::BadCompressedData),
                };
            }
            // One byte past the limit is room enough to see it passed.
            let room = limit.saturating_add(1).saturating_sub(out.len());
            if room == 0 {
                return Err(too_large(out.len(), limit));
            }
            if out.capacity() == out.len() {
                // Doubling, as a vector grows, but never past the limit.
                out.reserve_exact(out.len().max(INFLATE_STEP).min(room));
            }
            let (read, wrote) = (self.stream.total_in(), out.len());
            let status = self
                .stream
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| Error::BadCompressedData)?;
            let used = (self.stream.total_in() - read) as usize;
            input = &input[used..];
            if out.len() > limit {
                return Err(too_large(out.len(), limit));
            }
            if status == Status::StreamEnd {
                self.ended = true;
            } else if input.is_empty() && out.len() < out.capacity() {
                // All read, and room left: nothing more comes of it now.
                return Ok(());
            } else if used == 0 && out.len() == wrote {
                // Input and room, and no progress: not a stream zlib reads.
                return Err(Error::BadCompressedData);
            }
        }
    }
}

fn too_large(size: usize, limit: usize) -> Error {
    Error::MessageTooLarge {
        size: size as u64,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn inflate(d: &mut Decompressor, compressed: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        d.decompress(compressed, true, LIMIT, &mut out)?;
        Ok(out)
    }

    fn compress(c: &mut Compressor, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        c.compress(payload, &mut out);
        out
    }

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::from("[");
        for i in 0..n {
            s.push_str(&format!(
                r#"{{"id":{i},"price":{}.25,"symbol":"SYM{}"}},"#,
                i * 7,
                i % 13
            ));
        }
        s.push(']');
        s.into_bytes()
    }

    /// Found by the fuzz target: zlib flushes nothing for an empty
    /// message after a flush, and the receiver was left inside a block.
    #[test]
    fn empty_messages_in_a_row_with_context_takeover() {
        for mut c in [
            Compressor::new(10, false, 4),
            Compressor::with_mem_level(10, 1, false, 4),
        ] {
            let mut d = Decompressor::new(10, false);
            for message in [&b""[..], b"", b"", b"x", b"", b"xx"] {
                let compressed = compress(&mut c, message);
                let mut out = Vec::new();
                d.decompress(&compressed, true, message.len(), &mut out)
                    .unwrap();
                assert_eq!(out, message);
            }
        }
    }

    /// Both backends, and the memory levels at either end.
    fn compressors(bits: u8, no_context_takeover: bool, level: u32) -> [Compressor; 3] {
        [
            Compressor::new(bits, no_context_takeover, level),
            Compressor::with_mem_level(bits, 1, no_context_takeover, level),
            Compressor::with_mem_level(bits, 9, no_context_takeover, level),
        ]
    }

    #[test]
    fn rfc_7692_examples_inflate() {
        // §7.2.3.1: "Hello" in one block; §7.2.3.2: again, with the
        // first's window; §7.2.3.3: no compression; §7.2.3.5: two blocks;
        // §7.2.3.4: a final block.
        let mut d = Decompressor::new(15, false);
        assert_eq!(
            inflate(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).unwrap(),
            b"Hello"
        );
        assert_eq!(
            inflate(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00]).unwrap(),
            b"Hello"
        );
        let mut d = Decompressor::new(15, true);
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate(&mut d, &stored).unwrap(), b"Hello");
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate(&mut d, &two).unwrap(), b"Hello");
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&mut d, &last).unwrap(), b"Hello");
        // §7.2.3.6: an empty message is one 0x00 byte.
        assert_eq!(inflate(&mut d, &[0x00]).unwrap(), b"");
    }

    #[test]
    fn what_we_compress_inflates_with_the_same_parameters() {
        let each = [(15, true), (15, false), (9, true), (9, false)]
            .into_iter()
            .flat_map(|(bits, no_ctx)| compressors(bits, no_ctx, 6).map(|c| (bits, no_ctx, c)));
        for (bits, no_context_takeover, mut c) in each {
            let mut d = Decompressor::new(bits, no_context_takeover);
            for payload in [
                Vec::new(),
                b"a".to_vec(),
                json(3),
                json(2000),
                json(3),
                vec![0; 100_000],
            ] {
                let compressed = compress(&mut c, &payload);
                assert!(
                    !compressed.ends_with(&TAIL),
                    "the flush's tail is taken off"
                );
                assert_eq!(
                    inflate(&mut d, &compressed).unwrap(),
                    payload,
                    "{bits} {no_context_takeover}"
                );
            }
        }
        // Our empty message is the RFC's.
        for mut c in compressors(15, true, 6) {
            assert_eq!(compress(&mut c, b""), [0x00]);
        }
    }

    #[test]
    fn context_takeover_reuses_the_window_and_no_takeover_does_not() {
        let message = json(20);
        for mut c in compressors(15, false, 6) {
            let first = compress(&mut c, &message);
            let second = compress(&mut c, &message);
            assert!(
                second.len() * 4 < first.len(),
                "{} then {}",
                first.len(),
                second.len()
            );
            // A reset forgets the window; a peer keeping context reads on.
            c.reset();
            let third = compress(&mut c, &message);
            assert_eq!(third, first);
            let mut d = Decompressor::new(15, false);
            for compressed in [&first, &second, &third] {
                assert_eq!(inflate(&mut d, compressed).unwrap(), message);
            }
        }
        let mut c = Compressor::new(15, false, 6);
        compress(&mut c, &message);
        let second = compress(&mut c, &message);
        // Without the first message's window, the second is unreadable
        // (or reads wrong): a fresh decompressor must not accept it.
        let fresh = inflate(&mut Decompressor::new(15, false), &second);
        assert!(fresh != Ok(message.clone()));
        // Without takeover each message stands alone.
        let mut c = Compressor::new(15, true, 6);
        let first = compress(&mut c, &message);
        let second = compress(&mut c, &message);
        assert_eq!(first, second);
        assert_eq!(
            inflate(&mut Decompressor::new(15, true), &second).unwrap(),
            message
        );
    }

    #[test]
    fn a_message_fed_in_frames_inflates_the_same() {
        let message = json(500);
        let compressed = compress(&mut Compressor::new(15, true, 6), &message);
        let mut d = Decompressor::new(15, true);
        for piece in [1, 7, 100, compressed.len()] {
            let mut out = Vec::new();
            let parts: Vec<&[u8]> = compressed.chunks(piece).collect();
            for (i, part) in parts.iter().enumerate() {
                d.decompress(part, i + 1 == parts.len(), LIMIT, &mut out)
                    .unwrap();
            }
            assert_eq!(out, message, "pieces of {piece}");
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit_before_its_memory_is_spent() {
        // 16 MiB of zeros compress to about 16 KiB.
        let bomb = compress(&mut Compressor::new(15, true, 6), &vec![0; 16 << 20]);
        assert!(bomb.len() < 32 << 10);
        let mut out = Vec::new();
        let limit = 1 << 20;
        let result = Decompressor::new(15, true).decompress(&bomb, true, limit, &mut out);
        assert!(
            matches!(
                result,
                Err(Error::MessageTooLarge {
                    limit: 1_048_576,
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(
            out.capacity() <= limit + INFLATE_STEP,
            "{} allocated",
            out.capacity()
        );
        assert_eq!(
            result.unwrap_err().close_code(),
            Some(crate::CloseCode::MESSAGE_TOO_BIG)
        );
        // Exactly at the limit is allowed.
        let exact = compress(&mut Compressor::new(15, true, 6), &vec![1; limit]);
        let mut out = Vec::new();
        Decompressor::new(15, true)
            .decompress(&exact, true, limit, &mut out)
            .unwrap();
        assert_eq!(out.len(), limit);
    }

    /// Found by the connection fuzz target: "no limit" overflowed.
    #[test]
    fn no_limit_is_usize_max() {
        let message = json(10);
        let compressed = compress(&mut Compressor::new(15, true, 6), &message);
        let mut out = Vec::new();
        Decompressor::new(15, true)
            .decompress(&compressed, true, usize::MAX, &mut out)
            .unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn data_that_is_not_deflate_fails_with_1007() {
        for bad in [
            &[0xff, 0xff, 0xff, 0xff][..],
            // A stored block whose length and its complement disagree.
            &[0x00, 0x05, 0x00, 0x00, 0x00, b'H'],
            // Reserved block type 3.
            &[0x06],
            // A final block, then more of the same message.
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x00],
        ] {
            let result = inflate(&mut Decompressor::new(15, true), bad);
            assert_eq!(result, Err(Error::BadCompressedData), "{bad:x?}");
            assert_eq!(
                Error::BadCompressedData.close_code(),
                Some(crate::CloseCode::INVALID_PAYLOAD)
            );
        }
    }
}
