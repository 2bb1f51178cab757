//! permessage-deflate per message, by size: what compressing a JSON
//! message costs (the shared stream's: C zlib at memLevel 8, level 6, no
//! context) and what inflating it costs (zlib-rs), beside the bytes it
//! saves, which are printed once per size. It is what the server's
//! `compression_min_size` default rests on.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::fmt::Write as _;
use std::time::Duration;
use uringws_protocol::deflate::{Compressor, Decompressor};

/// JSON of about `size` bytes: records whose keys repeat and whose values
/// vary, as an API's push messages do.
fn json(size: usize) -> Vec<u8> {
    let mut out = String::from("[");
    let mut i = 0usize;
    while out.len() + 2 < size {
        let _ = write!(
            out,
            r#"{{"id":{},"px":{}.{:02},"sym":"S{}"}},"#,
            1000 + i * 37,
            100 + i * 7 % 900,
            i * 13 % 100,
            i % 17
        );
        i += 1;
    }
    out.truncate(size.saturating_sub(1).max(1));
    out.push(']');
    out.into_bytes()
}

fn per_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for size in [32usize, 64, 128, 256, 512, 1024, 4096] {
        let message = json(size);
        let mut compressor = Compressor::with_mem_level(15, 8, true, 6);
        let mut packed = Vec::new();
        compressor.compress(&message, &mut packed);
        eprintln!(
            "deflate: {size} B of JSON -> {} B ({:.0} % saved)",
            packed.len(),
            100.0 * (1.0 - packed.len() as f64 / message.len() as f64)
        );
        group.throughput(Throughput::Bytes(message.len() as u64));
        group.bench_with_input(BenchmarkId::new("compress", size), &message, |b, m| {
            let mut out = Vec::with_capacity(2 * m.len() + 64);
            b.iter(|| {
                out.clear();
                compressor.compress(black_box(m), &mut out);
                out.len()
            })
        });
        let mut decompressor = Decompressor::new(15, true);
        group.bench_with_input(BenchmarkId::new("inflate", size), &packed, |b, p| {
            let mut out = Vec::with_capacity(2 * size);
            b.iter(|| {
                out.clear();
                decompressor
                    .decompress(black_box(p), true, 1 << 20, &mut out)
                    .map(|()| out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, per_message);
criterion_main!(benches);
