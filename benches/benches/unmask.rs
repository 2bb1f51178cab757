//! Unmasking throughput: the SIMD dispatch against the portable fallback.
//!
//! Payloads sit where the decoder finds them: right after a masked frame
//! header in a read buffer, so never 32-byte aligned. Each buffer here starts
//! at the header length past a 64-byte boundary (6, 8 or 14 bytes, the masked
//! header sizes for these payload lengths), which keeps the alignment the same
//! from run to run instead of whatever the allocator hands out.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use uringws_protocol::mask::{apply_mask, apply_mask_fallback};

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// Length of a masked frame header for a payload of `len` bytes.
fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 6,
        126..=65535 => 8,
        _ => 14,
    }
}

/// A buffer holding a `len`-byte payload and where that payload starts.
fn payload_buffer(len: usize) -> (Vec<u8>, usize) {
    let buf: Vec<u8> = (0..len + 128).map(|i| i as u8).collect();
    let start = buf.as_ptr().align_offset(64) + header_len(len);
    (buf, start)
}

type MaskFn = fn(&mut [u8], [u8; 4], usize);

fn bench_group(c: &mut Criterion, name: &str, f: MaskFn) {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (len, label) in SIZES {
        let (mut buf, start) = payload_buffer(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            // Masking in place over and over just flips the bytes back and
            // forth; the cost per call is the same either way.
            b.iter(|| f(black_box(&mut buf[start..start + len]), black_box(MASK), 1));
        });
    }
    group.finish();
}

fn unmask(c: &mut Criterion) {
    bench_group(c, "apply_mask", apply_mask);
    bench_group(c, "apply_mask_fallback", apply_mask_fallback);
}

criterion_group!(benches, unmask);
criterion_main!(benches);
