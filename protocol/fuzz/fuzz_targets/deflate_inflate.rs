//! permessage-deflate's inflate path fed arbitrary compressed messages in
//! arbitrary frames, against an arbitrary size limit; and arbitrary
//! messages through our compressor and back.
//!
//! Invariants: no panic; an inflated message never exceeds its limit, nor
//! does the memory made for it (beyond one byte, to see the limit passed);
//! what we compress inflates to what went in, message after message, with
//! or without context takeover, at any window.
#![no_main]

use libfuzzer_sys::{arbitrary, arbitrary::Arbitrary, fuzz_target};
use uringws_protocol::deflate::{Compressor, Decompressor};

#[derive(Arbitrary, Debug)]
struct Input {
    window_bits: u8,
    no_context_takeover: bool,
    level: u8,
    limit: u16,
    /// Compressed messages, each as its frames' payloads.
    received: Vec<Vec<Vec<u8>>>,
    /// Messages to compress and inflate back.
    sent: Vec<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let bits = 8 + input.window_bits % 8;
    let limit = usize::from(input.limit);
    let mut d = Decompressor::new(bits, input.no_context_takeover);
    for message in input.received.iter().take(16) {
        let mut out = Vec::new();
        let frames = message.len();
        for (i, frame) in message.iter().enumerate() {
            let result = d.decompress(frame, i + 1 == frames, limit, &mut out);
            // One byte past the limit shows it was passed.
            let most = if result.is_ok() { limit } else { limit + 1 };
            assert!(out.len() <= most, "{} inflated, limit {limit}", out.len());
            assert!(
                out.capacity() <= limit + 1,
                "{} made for {limit}",
                out.capacity()
            );
            if result.is_err() {
                // A failed message fails its connection; a reset one
                // starts clean.
                d.reset();
                break;
            }
        }
        if frames == 0 {
            let _ = d.decompress(&[], true, limit, &mut out);
        }
    }

    let bits = 9 + input.window_bits % 7;
    let mut c = Compressor::new(bits, input.no_context_takeover, u32::from(input.level % 10));
    let mut d = Decompressor::new(bits, input.no_context_takeover);
    for message in input.sent.iter().take(16) {
        let mut compressed = Vec::new();
        c.compress(message, &mut compressed);
        let mut out = Vec::new();
        d.decompress(&compressed, true, message.len(), &mut out)
            .expect("our own message inflates");
        assert_eq!(&out, message);
    }
});
