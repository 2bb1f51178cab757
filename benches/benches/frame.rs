//! Decoding one masked client frame as a server does: header parse, limit
//! checks, SIMD unmask in place, UTF-8 validation for text, and the split
//! that hands the payload out without a copy.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use uringws_benches::{ascii_text, masked_frame};
use uringws_protocol::{Decoder, DecoderConfig, Message, OpCode, Role};

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (opcode, name) in [(OpCode::Binary, "binary"), (OpCode::Text, "text")] {
        for size in [64usize, 16 << 10] {
            let wire = masked_frame(opcode, &ascii_text(size));
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new(name, size), &wire, |b, wire| {
                let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
                b.iter_batched_ref(
                    || BytesMut::from(&wire[..]),
                    |buf| match decoder.decode(buf) {
                        Ok(Some(Message::Binary(p))) => p.len(),
                        Ok(Some(Message::Text(t))) => t.len(),
                        other => panic!("bench frame did not decode: {other:?}"),
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
